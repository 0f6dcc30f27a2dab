// SPDX-License-Identifier: MIT
/*
 * ACPI tables (arch/x86/acpi.c, dsdt.asl) and the PM register device (devices/legacy/acpi_pm.c).
 * Tables are checked the way an OS reads them: from the RSDP, through the XSDT and the FADT's
 * pointers, translating guest physical addresses back to buffer offsets. When iasl is installed, its
 * disassembler must accept every table too.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/pci/pci.h"

#define GPA X86_ACPI_TABLES_GPA
#define BUF_SIZE X86_ACPI_TABLES_SIZE

extern char **environ;

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

struct tables {
	uint8_t buf[BUF_SIZE];
	size_t size;
	const uint8_t *rsdp, *xsdt, *fadt, *facs, *dsdt, *madt, *mcfg;
};

/* Buffer address of a guest physical address the tables point at, checking `len` bytes fit. */
static const uint8_t *at(const struct tables *t, uint64_t gpa, size_t len)
{
	assert_true(gpa >= GPA);
	assert_true(gpa - GPA + len <= t->size);
	return t->buf + (gpa - GPA);
}

/* A table with a standard header: signature, length inside the buffer, zero checksum. */
static const uint8_t *table_at(const struct tables *t, uint64_t gpa, const char *sig)
{
	const uint8_t *p = at(t, gpa, 36);
	uint32_t len = rd32(p + 4);

	assert_memory_equal(p, sig, 4);
	assert_true(len >= 36);
	at(t, gpa, len);
	assert_int_equal(sum(p, len), 0);
	assert_memory_equal(p + 10, "KILN  ", 6);
	return p;
}

static void build(struct tables *t, unsigned int cpus)
{
	uint64_t rsdp_gpa = 0, xsdt_gpa;
	unsigned int i, n;

	memset(t, 0, sizeof(*t));
	t->size = acpi_tables_size(cpus);
	assert_true(t->size > 0 && t->size <= BUF_SIZE);
	assert_int_equal(acpi_build(t->buf, sizeof(t->buf), GPA, cpus, &rsdp_gpa), 0);
	assert_int_equal(rsdp_gpa, GPA);

	/* RSDP: ACPI 6.4 s5.2.5.3. */
	t->rsdp = at(t, rsdp_gpa, 36);
	assert_int_equal(rsdp_gpa % 16, 0);
	assert_memory_equal(t->rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(t->rsdp, 20), 0);
	assert_int_equal(sum(t->rsdp, 36), 0);
	assert_int_equal(t->rsdp[15], 2);
	assert_int_equal(rd32(t->rsdp + 20), 36);
	xsdt_gpa = rd64(t->rsdp + 24);

	t->xsdt = table_at(t, xsdt_gpa, "XSDT");
	n = (rd32(t->xsdt + 4) - 36) / 8;
	assert_int_equal(36 + 8 * n, rd32(t->xsdt + 4));
	for (i = 0; i < n; i++) {
		uint64_t gpa = rd64(t->xsdt + 36 + 8 * i);
		const uint8_t *p = at(t, gpa, 4);

		if (!memcmp(p, "FACP", 4)) {
			assert_null(t->fadt);
			t->fadt = table_at(t, gpa, "FACP");
		} else if (!memcmp(p, "APIC", 4)) {
			assert_null(t->madt);
			t->madt = table_at(t, gpa, "APIC");
		} else if (!memcmp(p, "MCFG", 4)) {
			assert_null(t->mcfg);
			t->mcfg = table_at(t, gpa, "MCFG");
		} else {
			fail_msg("unexpected table %.4s in the XSDT", (const char *)p);
		}
	}
	assert_non_null(t->fadt);
	assert_non_null(t->madt);
	assert_non_null(t->mcfg);
	t->dsdt = table_at(t, rd64(t->fadt + 140), "DSDT");
	t->facs = at(t, rd64(t->fadt + 132), 64);
}

/* ACPI 6.4 s5.2.3.2 Generic Address Structure: system I/O `port`, `bits` wide. */
static void check_io_gas(const uint8_t *gas, uint16_t port, uint8_t bits)
{
	assert_int_equal(gas[0], 1);
	assert_int_equal(gas[1], bits);
	assert_int_equal(gas[2], 0);
	assert_int_equal(rd64(gas + 4), port);
}

static void test_fadt(void **state)
{
	static struct tables t;
	const uint8_t *f;
	uint32_t flags;
	uint16_t boot;

	(void)state;
	build(&t, 2);
	f = t.fadt;
	assert_int_equal(rd32(f + 4), 276); /* revision 6 layout */
	assert_int_equal(f[8], 6);
	assert_int_equal(rd16(f + 46), ACPI_SCI_IRQ);
	assert_int_equal(rd32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	assert_int_equal(rd32(f + 56), ACPI_PM1A_EVT_PORT);
	assert_int_equal(rd32(f + 60), 0);
	assert_int_equal(rd32(f + 64), ACPI_PM1A_CNT_PORT);
	assert_int_equal(rd32(f + 68), 0);
	assert_int_equal(rd32(f + 76), ACPI_PM_TMR_PORT);
	assert_int_equal(rd32(f + 80), 0); /* no GPE0 block */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_true(rd16(f + 96) > 100);  /* no C2 */
	assert_true(rd16(f + 98) > 1000); /* no C3 */
	assert_int_equal(f[108], 0x32);    /* CMOS century */
	boot = rd16(f + 109);
	assert_true(boot & (1u << 1));     /* 8042 */
	assert_true(boot & (1u << 2));     /* VGA not present */
	assert_false(boot & (1u << 3));    /* MSI supported */
	assert_false(boot & (1u << 5));    /* CMOS RTC present */
	flags = rd32(f + 112);
	assert_true(flags & (1u << 0));    /* WBINVD */
	assert_true(flags & (1u << 2));    /* PROC_C1 */
	assert_false(flags & (1u << 4));   /* fixed-feature power button */
	assert_true(flags & (1u << 5));    /* no sleep button */
	assert_true(flags & (1u << 8));    /* 32-bit PM timer */
	assert_false(flags & (1u << 10));  /* no RESET_REG */
	assert_false(flags & (1u << 20));  /* not hardware-reduced */
	/* FACS through X_FIRMWARE_CTRL only, DSDT through both fields. */
	assert_int_equal(rd32(f + 36), 0);
	assert_int_equal(rd64(f + 132) % 64, 0);
	assert_int_equal(rd32(f + 40), rd64(f + 140));
	check_io_gas(f + 148, ACPI_PM1A_EVT_PORT, 32);
	check_io_gas(f + 172, ACPI_PM1A_CNT_PORT, 16);
	check_io_gas(f + 208, ACPI_PM_TMR_PORT, 32);
	assert_int_equal(rd64(f + 160 + 4), 0); /* no PM1b */
	assert_int_equal(rd64(f + 220 + 4), 0); /* no X_GPE0 */

	assert_memory_equal(t.facs, "FACS", 4);
	assert_int_equal(rd32(t.facs + 4), 64);
}

static void check_madt(unsigned int cpus)
{
	static struct tables t;
	const uint8_t *m, *p, *end;
	unsigned int lapics = 0, ioapics = 0, sci_override = 0, nmis = 0;

	build(&t, cpus);
	m = t.madt;
	assert_int_equal(m[8], 5);
	assert_int_equal(rd32(m + 36), X86_LAPIC_GPA);
	assert_int_equal(rd32(m + 40) & 1, 1); /* PCAT_COMPAT */
	end = m + rd32(m + 4);
	for (p = m + 44; p < end; p += p[1]) {
		assert_true(p[1] >= 2 && p + p[1] <= end);
		switch (p[0]) {
		case 0: /* processor local APIC */
			assert_int_equal(p[1], 8);
			assert_int_equal(p[2], lapics); /* UID */
			assert_int_equal(p[3], lapics); /* APIC ID */
			assert_int_equal(rd32(p + 4) & 1, 1);
			lapics++;
			break;
		case 1: /* IOAPIC */
			assert_int_equal(p[1], 12);
			assert_int_equal(p[2], cpus);
			assert_int_equal(rd32(p + 4), X86_IOAPIC_GPA);
			assert_int_equal(rd32(p + 8), 0);
			ioapics++;
			break;
		case 2: /* interrupt source override */
			assert_int_equal(p[1], 10);
			assert_int_equal(p[2], 0);
			assert_int_not_equal(p[3], 0); /* IRQ 0 stays on GSI 0: no override */
			if (p[3] == ACPI_SCI_IRQ) {
				assert_int_equal(rd32(p + 4), ACPI_SCI_IRQ);
				assert_int_equal(rd16(p + 8), 0x000d); /* level, active high */
				sci_override++;
			}
			break;
		case 4: /* local APIC NMI */
			assert_int_equal(p[1], 6);
			assert_int_equal(p[2], 0xff);
			assert_int_equal(p[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(lapics, cpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(sci_override, 1);
	assert_int_equal(nmis, 1);
}

static void test_madt(void **state)
{
	(void)state;
	check_madt(1);
	check_madt(4);
	check_madt(32);
	check_madt(ACPI_MAX_CPUS);
}

static void test_mcfg(void **state)
{
	static struct tables t;

	(void)state;
	build(&t, 1);
	assert_int_equal(rd32(t.mcfg + 4), 60);
	assert_int_equal(rd64(t.mcfg + 44), X86_PCIE_ECAM_GPA);
	assert_int_equal(rd16(t.mcfg + 52), 0);
	assert_int_equal(t.mcfg[54], 0);
	assert_int_equal(t.mcfg[55], 255);
	assert_int_equal((t.mcfg[55] + 1) << 20, X86_PCIE_ECAM_SIZE);
}

/* AML integer encoding (ACPI 6.4 s20.2.3) the way iasl emits it: smallest form. */
static size_t aml_int(uint8_t *out, uint64_t v)
{
	size_t n, i;

	if (v <= 1) {
		out[0] = (uint8_t)v; /* ZeroOp, OneOp */
		return 1;
	}
	if (v <= 0xff) {
		out[0] = 0x0a;
		n = 1;
	} else if (v <= 0xffff) {
		out[0] = 0x0b;
		n = 2;
	} else if (v <= 0xffffffff) {
		out[0] = 0x0c;
		n = 4;
	} else {
		out[0] = 0x0e;
		n = 8;
	}
	for (i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

/* A four-element package of integers, as PackageOp PkgLength NumElements elements (short PkgLength). */
static size_t aml_package4(uint8_t *out, const uint64_t v[4])
{
	size_t n = 3;

	for (unsigned int i = 0; i < 4; i++)
		n += aml_int(out + n, v[i]);
	out[0] = 0x12;
	out[1] = (uint8_t)(n - 1);
	out[2] = 4;
	return n;
}

static void expect_name_package(const uint8_t *dsdt, size_t len, const char *name, const uint64_t v[4])
{
	uint8_t want[64];
	size_t n = 0;

	memcpy(want, name, 4);
	n = 4 + aml_package4(want + 4, v);
	assert_non_null(memmem(dsdt, len, want, n));
}

/* Name (`name`, EisaId (`id`)): the compressed EISA ID as a DWord (ACPI 6.4 s19.6.35). */
static void expect_eisa_id(const uint8_t *dsdt, size_t len, const char *name, const char *id)
{
	uint8_t want[9];

	memcpy(want, name, 4);
	want[4] = 0x0c;
	want[5] = (uint8_t)((id[0] - '@') << 2 | (id[1] - '@') >> 3);
	want[6] = (uint8_t)(((id[1] - '@') & 7) << 5 | (id[2] - '@'));
	want[7] = (uint8_t)strtoul((char[]){ id[3], id[4], 0 }, NULL, 16);
	want[8] = (uint8_t)strtoul((char[]){ id[5], id[6], 0 }, NULL, 16);
	assert_non_null(memmem(dsdt, len, want, sizeof(want)));
}

static void test_dsdt(void **state)
{
	static struct tables t;
	static uint8_t prt[128 * 16];
	const uint64_t s5[4] = { ACPI_SLP_TYP_S5, ACPI_SLP_TYP_S5, 0, 0 };
	const uint64_t s0[4] = { ACPI_SLP_TYP_S0, ACPI_SLP_TYP_S0, 0, 0 };
	uint32_t len;
	size_t n = 0;
	uint8_t want[24];

	(void)state;
	build(&t, 1);
	len = rd32(t.dsdt + 4);
	assert_int_equal(t.dsdt[8], 2); /* 64-bit integers */
	assert_memory_equal(t.dsdt + 16, "KILNDSDT", 8);
	/* The sleep states acpi_pm.c acts on. */
	expect_name_package(t.dsdt, len, "_S5_", s5);
	expect_name_package(t.dsdt, len, "_S0_", s0);
	assert_non_null(memmem(t.dsdt, len, "_PIC", 4));
	/* The _PRT is pci_intx_gsi() (pins from 1 there, from 0 in ACPI), entry by entry, in order. */
	for (unsigned int slot = 0; slot < 32; slot++)
		for (unsigned int pin = 0; pin < 4; pin++) {
			const uint64_t e[4] = { (uint64_t)slot << 16 | 0xffff, pin, 0, pci_intx_gsi(slot, pin + 1) };

			n += aml_package4(prt + n, e);
		}
	assert_non_null(memmem(t.dsdt, len, prt, n));
	/* The PCI0 WordIO window: minimum, maximum, translation, length (ACPI 6.4 s6.4.3.5.3). */
	memcpy(want, (uint16_t[]){ X86_PCI_IO_BASE, X86_PCI_IO_LAST, 0, X86_PCI_IO_SIZE }, 8);
	assert_non_null(memmem(t.dsdt, len, want, 8));
	/* The PCI0 DWordMemory window: minimum, maximum, translation, length (ACPI 6.4 s6.4.3.5.2). */
	memcpy(want, (uint32_t[]){ X86_PCI_MMIO32_GPA, X86_PCI_MMIO32_LAST, 0, X86_PCI_MMIO32_SIZE }, 16);
	assert_non_null(memmem(t.dsdt, len, want, 16));
	/* The ECAM window in the motherboard resources: Memory32Fixed, read-write (s6.4.3.4). */
	memcpy(want, (uint8_t[]){ 0x86, 0x09, 0x00, 0x01 }, 4);
	memcpy(want + 4, (uint32_t[]){ X86_PCIE_ECAM_GPA, X86_PCIE_ECAM_SIZE }, 8);
	assert_non_null(memmem(t.dsdt, len, want, 12));
	/* The devices Linux binds drivers to, by _HID (and the bridge's _CID). */
	expect_eisa_id(t.dsdt, len, "_HID", "PNP0A08");
	expect_eisa_id(t.dsdt, len, "_CID", "PNP0A03");
	expect_eisa_id(t.dsdt, len, "_HID", "PNP0C02");
	expect_eisa_id(t.dsdt, len, "_HID", "PNP0501");
	expect_eisa_id(t.dsdt, len, "_HID", "PNP0B00");
	expect_eisa_id(t.dsdt, len, "_HID", "PNP0303");
}

static void test_bad_arguments(void **state)
{
	static uint8_t buf[BUF_SIZE];
	uint64_t rsdp = 0;

	(void)state;
	assert_int_equal(acpi_tables_size(0), 0);
	assert_int_equal(acpi_tables_size(ACPI_MAX_CPUS + 1), 0);
	assert_true(acpi_tables_size(ACPI_MAX_CPUS) <= X86_ACPI_TABLES_SIZE);
	assert_int_equal(acpi_build(buf, sizeof(buf), GPA, 0, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(buf, sizeof(buf), GPA, ACPI_MAX_CPUS + 1, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(buf, sizeof(buf), GPA + 16, 1, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(buf, sizeof(buf), (1ull << 32) - 64, 1, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(buf, sizeof(buf), UINT64_MAX - 63, 1, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(buf, acpi_tables_size(4) - 1, GPA, 4, &rsdp), -ENOSPC);
	assert_int_equal(acpi_build(buf, acpi_tables_size(4), GPA, 4, &rsdp), 0);
}

/* Run iasl with `args` (NULL-terminated), its output discarded; true when it exits 0. */
static bool run_iasl(char *const args[])
{
	posix_spawn_file_actions_t fa;
	int status = -1;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, "iasl", &fa, NULL, args, environ) == 0)
		waitpid(pid, &status, 0);
	posix_spawn_file_actions_destroy(&fa);
	return status == 0;
}

static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n >= 0 && (size_t)n < size - 1);
	buf[n] = 0;
	return (size_t)n;
}

/*
 * iasl's disassembler must decode the table without complaint, and its output must compile back to
 * the same bytes (but for the compiler ID and revision, which iasl writes, and so the checksum).
 */
static void iasl_round_trip(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	static char text[256 * 1024];
	char dat[256], dsl[256], aml[256], prefix[256], prefix2[256];
	char *disassemble[] = { "iasl", "-vs", "-p", prefix, "-d", dat, NULL };
	char *compile[] = { "iasl", "-vs", "-p", prefix2, dsl, NULL };
	bool header = memcmp(p, "FACS", 4) != 0;
	size_t n;
	int fd;

	snprintf(dat, sizeof(dat), "%s/%s.dat", dir, name);
	snprintf(prefix, sizeof(prefix), "%s/%s", dir, name);
	snprintf(dsl, sizeof(dsl), "%s/%s.dsl", dir, name);
	snprintf(prefix2, sizeof(prefix2), "%s/%s-again", dir, name);
	snprintf(aml, sizeof(aml), "%s/%s-again.aml", dir, name);
	fd = open(dat, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);

	assert_true(run_iasl(disassemble));
	slurp(dsl, text, sizeof(text));
	if (strstr(text, "Incorrect") || strstr(text, "Invalid") || strstr(text, "Unknown") || strstr(text, "Error"))
		fail_msg("iasl -d %s: %s", name, text);
	assert_true(run_iasl(compile));
	n = slurp(aml, text, sizeof(text));
	assert_int_equal(n, len);
	for (size_t i = 0; i < len; i++)
		if (!header || (i != 9 && (i < 28 || i >= 36)))
			assert_int_equal((uint8_t)text[i], p[i]);
}

static void test_iasl_accepts_tables(void **state)
{
	static struct tables t;
	char dir[] = "/tmp/kiln-acpi-XXXXXX";
	char cmd[300];

	(void)state;
	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		printf("SKIPPING: iasl not installed (Debian package acpica-tools)\n");
		skip();
	}
	build(&t, 4);
	assert_non_null(mkdtemp(dir));
	/* Not the RSDP: this iasl's disassembler takes only tables with a standard header (and the FACS). */
	iasl_round_trip(dir, "xsdt", t.xsdt, rd32(t.xsdt + 4));
	iasl_round_trip(dir, "facp", t.fadt, rd32(t.fadt + 4));
	iasl_round_trip(dir, "facs", t.facs, 64);
	iasl_round_trip(dir, "apic", t.madt, rd32(t.madt + 4));
	iasl_round_trip(dir, "mcfg", t.mcfg, rd32(t.mcfg + 4));
	iasl_round_trip(dir, "dsdt", t.dsdt, rd32(t.dsdt + 4));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* --- ACPI PM device ------------------------------------------------------------------------------ */

struct pm_fixture {
	struct acpi_pm *pm;
	uint64_t now_ns;
	int level;
	unsigned int irq_calls;
	unsigned int poweroffs;
};

static uint64_t fake_clock(void *opaque)
{
	return ((struct pm_fixture *)opaque)->now_ns;
}

static void fake_irq(void *opaque, uint32_t gsi, int level)
{
	struct pm_fixture *f = opaque;

	assert_int_equal(gsi, ACPI_SCI_IRQ);
	f->level = level;
	f->irq_calls++;
}

static void fake_poweroff(void *opaque)
{
	((struct pm_fixture *)opaque)->poweroffs++;
}

static int pm_setup(void **state)
{
	struct pm_fixture *f = calloc(1, sizeof(*f));
	struct irq_line sci = { .set = fake_irq, .gsi = ACPI_SCI_IRQ };

	if (!f)
		return -1;
	f->now_ns = 123456789; /* the timer counts from creation, not from the clock's zero */
	sci.opaque = f;
	f->pm = acpi_pm_create(sci, fake_poweroff, f, fake_clock, f);
	if (!f->pm) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int pm_teardown(void **state)
{
	struct pm_fixture *f = *state;

	acpi_pm_destroy(f->pm);
	free(f);
	return 0;
}

static uint32_t pm_read(struct pm_fixture *f, unsigned int port, uint32_t len)
{
	uint8_t data[8] = { 0 };
	uint32_t v = 0;

	acpi_pm_io(f->pm, port - ACPI_PM_BASE_PORT, data, len, false);
	memcpy(&v, data, len < 4 ? len : 4);
	return v;
}

static void pm_write(struct pm_fixture *f, unsigned int port, uint32_t len, uint32_t v)
{
	uint8_t data[8] = { 0 };

	memcpy(data, &v, len < 4 ? len : 4);
	acpi_pm_io(f->pm, port - ACPI_PM_BASE_PORT, data, len, true);
}

#define PM1_STS ACPI_PM1A_EVT_PORT
#define PM1_EN (ACPI_PM1A_EVT_PORT + 2)
#define PM1_CNT ACPI_PM1A_CNT_PORT
#define PWRBTN 0x0100
#define SLP_EN 0x2000

static void test_pm_status_write_one_to_clear(void **state)
{
	struct pm_fixture *f = *state;

	assert_int_equal(pm_read(f, PM1_STS, 2), 0);
	assert_false(acpi_pm_press_power_button(f->pm)); /* nobody enabled it */
	assert_int_equal(pm_read(f, PM1_STS, 2), PWRBTN);
	pm_write(f, PM1_STS, 2, 0);                       /* writing 0 changes nothing */
	assert_int_equal(pm_read(f, PM1_STS, 2), PWRBTN);
	pm_write(f, PM1_STS, 2, (uint16_t)~PWRBTN);       /* nor do other bits */
	assert_int_equal(pm_read(f, PM1_STS, 2), PWRBTN);
	pm_write(f, PM1_STS + 1, 1, PWRBTN >> 8);         /* the high byte alone clears it */
	assert_int_equal(pm_read(f, PM1_STS, 2), 0);
	assert_int_equal(f->level, 0);
	assert_int_equal(f->irq_calls, 0);
}

static void test_pm_enable_gates_sci(void **state)
{
	struct pm_fixture *f = *state;

	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->level, 0);
	pm_write(f, PM1_EN, 2, PWRBTN); /* enabling a pending event raises the SCI */
	assert_int_equal(pm_read(f, PM1_EN, 2), PWRBTN);
	assert_int_equal(f->level, 1);
	pm_write(f, PM1_STS, 2, PWRBTN); /* the OS handles it: the level drops */
	assert_int_equal(f->level, 0);
	assert_true(acpi_pm_press_power_button(f->pm));
	assert_int_equal(f->level, 1);
	assert_true(acpi_pm_press_power_button(f->pm)); /* a second press: still one level */
	assert_int_equal(f->irq_calls, 3);
	pm_write(f, PM1_EN, 2, 0); /* disabling masks it, the status stays */
	assert_int_equal(f->level, 0);
	assert_int_equal(pm_read(f, PM1_STS, 2), PWRBTN);
	/* A 32-bit write covers both registers: clear the status, enable again. */
	pm_write(f, PM1_STS, 4, (uint32_t)PWRBTN << 16 | PWRBTN);
	assert_int_equal(pm_read(f, PM1_STS, 4), (uint32_t)PWRBTN << 16);
	assert_int_equal(f->level, 0);
}

static void test_pm_s5_powers_off_once(void **state)
{
	struct pm_fixture *f = *state;

	assert_int_equal(pm_read(f, PM1_CNT, 2) & 1, 1); /* SCI_EN */
	pm_write(f, PM1_CNT, 2, ACPI_SLP_TYP_S5 << 10);   /* Linux writes SLP_TYP first... */
	assert_int_equal(f->poweroffs, 0);
	assert_int_equal(pm_read(f, PM1_CNT, 2), 1 | ACPI_SLP_TYP_S5 << 10);
	pm_write(f, PM1_CNT, 2, ACPI_SLP_TYP_S5 << 10 | SLP_EN); /* ...then adds SLP_EN */
	assert_int_equal(f->poweroffs, 1);
	assert_int_equal(pm_read(f, PM1_CNT, 2) & SLP_EN, 0); /* write-only */
	pm_write(f, PM1_CNT, 2, ACPI_SLP_TYP_S5 << 10 | SLP_EN);
	assert_int_equal(f->poweroffs, 1);
}

static void test_pm_s5_byte_write(void **state)
{
	struct pm_fixture *f = *state;

	pm_write(f, PM1_CNT + 1, 1, (ACPI_SLP_TYP_S5 << 10 | SLP_EN) >> 8);
	assert_int_equal(f->poweroffs, 1);
}

static void test_pm_other_sleep_types_ignored(void **state)
{
	struct pm_fixture *f = *state;

	for (uint32_t typ = 0; typ < 8; typ++) {
		if (typ == ACPI_SLP_TYP_S5)
			continue;
		pm_write(f, PM1_CNT, 2, typ << 10 | SLP_EN);
		assert_int_equal(pm_read(f, PM1_CNT, 2), 1 | typ << 10);
	}
	assert_int_equal(f->poweroffs, 0);
}

static void test_pm_timer(void **state)
{
	struct pm_fixture *f = *state;
	const uint64_t start = f->now_ns;
	uint32_t prev = 0, v;
	uint64_t ns;

	assert_int_equal(pm_read(f, ACPI_PM_TMR_PORT, 4), 0);
	f->now_ns = start + 1000000000ull;
	assert_int_equal(pm_read(f, ACPI_PM_TMR_PORT, 4), ACPI_PM_TIMER_HZ);
	f->now_ns = start + 280; /* one tick is 279.4 ns */
	assert_int_equal(pm_read(f, ACPI_PM_TMR_PORT, 4), 1);
	/* Monotonic at fine steps. */
	for (ns = 0; ns < 10000000; ns += 997) {
		f->now_ns = start + ns;
		v = acpi_pm_timer(f->pm);
		assert_true(v >= prev);
		prev = v;
	}
	/* 32 bits wide: 2^32 ticks (about 1200 s) later it reads the same, and it wraps through zero. */
	f->now_ns = start + 5000000000ull;
	v = acpi_pm_timer(f->pm);
	f->now_ns = start + 5000000000ull + 1199864031882ull; /* 2^32 / HZ seconds, to the tick */
	assert_true(acpi_pm_timer(f->pm) - v <= 1);
	f->now_ns = start + 1199864031882ull - 3000;
	v = acpi_pm_timer(f->pm);
	assert_true(v > 0xffffff00u);
	f->now_ns = start + 1199864031882ull + 3000;
	assert_true(acpi_pm_timer(f->pm) < 0x100);
	/* After ten years of uptime one second is still HZ ticks: no 64-bit overflow. */
	f->now_ns = start + 315360000ull * 1000000000ull;
	v = acpi_pm_timer(f->pm);
	f->now_ns += 1000000000ull;
	assert_int_equal((uint32_t)(acpi_pm_timer(f->pm) - v), ACPI_PM_TIMER_HZ);
	/* Byte reads see the same counter; writes are ignored. */
	f->now_ns = start + 3000000000ull;
	v = acpi_pm_timer(f->pm);
	assert_int_equal(pm_read(f, ACPI_PM_TMR_PORT + 2, 1), (v >> 16) & 0xff);
	pm_write(f, ACPI_PM_TMR_PORT, 4, 0);
	assert_int_equal(pm_read(f, ACPI_PM_TMR_PORT, 4), v);
}

static void test_pm_hostile_accesses(void **state)
{
	struct pm_fixture *f = *state;
	static const uint32_t lens[] = { 0, 1, 2, 3, 4, 8, 9, 64 };
	uint8_t data[64];

	/*
	 * Every size at every offset, reads and writes of all-ones: nothing crashes, nothing outside the
	 * buffer is touched, and no write powers off (all-ones in PM1_CNT is SLP_TYP 7, not S5).
	 */
	for (uint64_t off = 0; off < ACPI_PM_NR_PORTS + 8; off++)
		for (unsigned int i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			memset(data, 0xff, sizeof(data));
			acpi_pm_io(f->pm, off, data, lens[i], true);
			acpi_pm_io(f->pm, off, data, lens[i], false);
		}
	/* Reads past the block float high; the unused ports 0x606-0x607 too. */
	memset(data, 0, sizeof(data));
	acpi_pm_io(f->pm, ACPI_PM_NR_PORTS - 1, data, 4, false);
	assert_int_equal(data[1], 0xff);
	assert_int_equal(data[3], 0xff);
	assert_int_equal(pm_read(f, ACPI_PM_BASE_PORT + 6, 2), 0xffff);
	/* All-ones written to PM1_EN keeps only defined enable bits. */
	assert_int_equal(pm_read(f, PM1_EN, 2), 0x4721);
	assert_int_equal(f->poweroffs, 0);
	assert_int_equal(f->level, 0); /* every enable bit set, but no status */
	/* Accesses longer than 8 bytes (no bus makes them) leave the buffer alone. */
	memset(data, 0x5a, sizeof(data));
	acpi_pm_io(f->pm, 0, data, 16, false);
	assert_int_equal(data[0], 0x5a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fadt),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_mcfg),
		cmocka_unit_test(test_dsdt),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_iasl_accepts_tables),
		cmocka_unit_test_setup_teardown(test_pm_status_write_one_to_clear, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_enable_gates_sci, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_s5_powers_off_once, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_s5_byte_write, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_other_sleep_types_ignored, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_timer, pm_setup, pm_teardown),
		cmocka_unit_test_setup_teardown(test_pm_hostile_accesses, pm_setup, pm_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
