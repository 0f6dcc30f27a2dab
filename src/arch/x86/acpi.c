// SPDX-License-Identifier: MIT
/*
 * ACPI table builder, per ACPI 6.4 chapter 5.2 "ACPI System Description Tables". Table layouts:
 * RSDP s5.2.5.3 (table 5.3), header s5.2.6 (table 5.4), XSDT s5.2.8, FADT s5.2.9 (table 5.9, flags
 * table 5.10, IA-PC boot architecture flags table 5.11), FACS s5.2.10 (table 5.14), MADT s5.2.12
 * (tables 5.43-5.52), MCFG: PCI Firmware spec 3.3 s4.1.2 (tables 4-2, 4-3).
 *
 * The buffer holds, in order: RSDP, FACS (64-byte aligned), DSDT, FADT, MADT, MCFG, XSDT, each
 * 16-byte aligned. There is no RSDT: an ACPI 2.0+ OS (any x86-64 Linux) follows the XSDT.
 *
 * FADT choices: a full (not hardware-reduced) ACPI platform, because Linux's power-off path and the
 * fixed power button use the PM1 registers; SMI_CMD = 0 (ACPI mode is always on, no SMM handshake);
 * no GPE blocks, no RESET_REG (the i8042 reset and triple faults already end the VM, and port 0xcf9
 * belongs to the PCI configuration ports); C2/C3 latencies above their "not supported" limits.
 */
#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "devices/legacy/acpi_pm.h"
#include "dsdt_aml.h" /* generated: static const unsigned char dsdt_aml[] */

_Static_assert(X86_PCI_IO_BASE + X86_PCI_IO_SIZE - 1 == X86_PCI_IO_LAST && X86_PCI_IO_LAST <= 0xffff, "PCI I/O");
_Static_assert(X86_PCI_IO_BASE >= ACPI_PM_BASE_PORT + ACPI_PM_NR_PORTS && X86_PCI_IO_BASE >= 0xd00, "PCI I/O");
_Static_assert(X86_PCI_MMIO32_GPA + X86_PCI_MMIO32_SIZE - 1 == X86_PCI_MMIO32_LAST, "PCI window ends");
_Static_assert(X86_PCI_MMIO32_LAST < X86_PCIE_ECAM_GPA, "PCI window below ECAM");
_Static_assert(X86_PCIE_ECAM_SIZE == 256u << 20, "the DSDT's bus range 0-255 needs 256 MiB of ECAM");

#define OEM_ID "KILN  "
#define OEM_REVISION 1
#define CREATOR_ID "KILN"
#define CREATOR_REVISION 1

struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* first 20 bytes (the ACPI 1.0 structure) */
	char oem_id[6];
	uint8_t revision; /* 2: ACPI 2.0+ */
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* whole structure */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure, ACPI 6.4 s5.2.3.2 (table 5.1). */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_vendor_id[8];
} __attribute__((packed));

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
	uint8_t type; /* 0 */
	uint8_t length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type; /* 1 */
	uint8_t length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type; /* 2: interrupt source override */
	uint8_t length;
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type; /* 4 */
	uint8_t length;
	uint8_t processor_uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct acpi_mcfg {
	struct acpi_header h;
	uint8_t reserved[8];
	uint64_t base_address;
	uint16_t segment;
	uint8_t start_bus;
	uint8_t end_bus;
	uint32_t reserved1;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "rsdp");
_Static_assert(sizeof(struct acpi_header) == 36, "header");
_Static_assert(sizeof(struct acpi_fadt) == 276, "fadt v6");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "fadt x_dsdt");
_Static_assert(sizeof(struct acpi_facs) == 64, "facs");
_Static_assert(sizeof(struct madt_lapic) == 8 && sizeof(struct madt_ioapic) == 12, "madt entries");
_Static_assert(sizeof(struct madt_iso) == 10 && sizeof(struct madt_lapic_nmi) == 6, "madt entries");
_Static_assert(sizeof(struct acpi_mcfg) == 60, "mcfg");

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* FADT flags (table 5.10). */
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_FIX_RTC (1u << 6)    /* RTC_STS/RTC_EN are not in PM1 */
#define FADT_TMR_VAL_EXT (1u << 8)
/* IA-PC boot architecture flags (table 5.11). */
#define BOOT_LEGACY_DEVICES (1u << 0)
#define BOOT_8042 (1u << 1)
#define BOOT_VGA_NOT_PRESENT (1u << 2)
#define BOOT_PCIE_ASPM_CONTROLS (1u << 4) /* the OS must not touch ASPM: virtual links have none */

#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC_ENABLED 1u
#define MADT_POLARITY_HIGH 0x1
#define MADT_TRIGGER_LEVEL 0xc
#define LAPIC_ALL_PROCESSORS 0xff

#define FADT_REVISION 6
#define FADT_MINOR_VERSION 4
#define MADT_REVISION 5
#define FACS_VERSION 2
#define PM_PROFILE_UNSPECIFIED 0
#define P_LVL2_NOT_SUPPORTED 101
#define P_LVL3_NOT_SUPPORTED 1001
#define CMOS_CENTURY 0x32 /* devices/legacy/rtc.c */

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((size_t)(a) - 1))
#define FACS_OFFSET 64 /* after the RSDP, at the FACS's 64-byte alignment */
#define DSDT_OFFSET (FACS_OFFSET + sizeof(struct acpi_facs))
#define FADT_OFFSET ALIGN_UP(DSDT_OFFSET + sizeof(dsdt_aml), 16)
#define MADT_OFFSET ALIGN_UP(FADT_OFFSET + sizeof(struct acpi_fadt), 16)
#define XSDT_ENTRIES 3 /* FADT, MADT, MCFG */

static size_t madt_size(unsigned int nr_cpus)
{
	return sizeof(struct acpi_madt) + nr_cpus * sizeof(struct madt_lapic) + sizeof(struct madt_ioapic) +
	       sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi);
}

static size_t mcfg_offset(unsigned int nr_cpus)
{
	return ALIGN_UP(MADT_OFFSET + madt_size(nr_cpus), 16);
}

static size_t xsdt_offset(unsigned int nr_cpus)
{
	return ALIGN_UP(mcfg_offset(nr_cpus) + sizeof(struct acpi_mcfg), 16);
}

size_t acpi_tables_size(unsigned int nr_cpus)
{
	if (nr_cpus == 0 || nr_cpus > ACPI_MAX_CPUS)
		return 0;
	return xsdt_offset(nr_cpus) + sizeof(struct acpi_header) + XSDT_ENTRIES * sizeof(uint64_t);
}

static uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

/* Fill a table header; the checksum is set by finish_table() once the body is written. */
static void fill_header(struct acpi_header *h, const char *signature, uint32_t length, uint8_t revision)
{
	memcpy(h->signature, signature, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, "KILN", 4);
	memcpy(h->oem_table_id + 4, signature, 4);
	h->oem_revision = OEM_REVISION;
	memcpy(h->creator_id, CREATOR_ID, 4);
	h->creator_revision = CREATOR_REVISION;
}

static void finish_table(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum((const uint8_t *)h, h->length);
}

static struct acpi_gas io_gas(uint16_t port, uint8_t len, uint8_t access)
{
	return (struct acpi_gas){
		.space_id = GAS_SYSTEM_IO, .bit_width = (uint8_t)(8 * len), .access_size = access, .address = port,
	};
}

static void write_fadt(struct acpi_fadt *f, uint64_t facs_gpa, uint64_t dsdt_gpa)
{
	fill_header(&f->h, "FACP", sizeof(*f), FADT_REVISION);
	/* X_FIRMWARE_CTRL only: table 5.9 wants FIRMWARE_CTRL zero when it is set. */
	f->x_firmware_ctrl = facs_gpa;
	f->dsdt = (uint32_t)dsdt_gpa;
	f->x_dsdt = dsdt_gpa;
	f->preferred_pm_profile = PM_PROFILE_UNSPECIFIED;
	f->sci_int = ACPI_SCI_IRQ;
	f->smi_cmd = 0;
	f->pm1a_evt_blk = ACPI_PM1A_EVT_PORT;
	f->pm1a_cnt_blk = ACPI_PM1A_CNT_PORT;
	f->pm_tmr_blk = ACPI_PM_TMR_PORT;
	f->pm1_evt_len = ACPI_PM1_EVT_LEN;
	f->pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f->pm_tmr_len = ACPI_PM_TMR_LEN;
	f->p_lvl2_lat = P_LVL2_NOT_SUPPORTED;
	f->p_lvl3_lat = P_LVL3_NOT_SUPPORTED;
	f->century = CMOS_CENTURY;
	f->iapc_boot_arch = BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_VGA_NOT_PRESENT | BOOT_PCIE_ASPM_CONTROLS;
	/* PWR_BUTTON clear: the power button is the fixed-feature one (PWRBTN_STS in PM1_STS). */
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_TMR_VAL_EXT;
	f->minor_version = FADT_MINOR_VERSION;
	f->x_pm1a_evt_blk = io_gas(ACPI_PM1A_EVT_PORT, ACPI_PM1_EVT_LEN, GAS_ACCESS_WORD);
	f->x_pm1a_cnt_blk = io_gas(ACPI_PM1A_CNT_PORT, ACPI_PM1_CNT_LEN, GAS_ACCESS_WORD);
	f->x_pm_tmr_blk = io_gas(ACPI_PM_TMR_PORT, ACPI_PM_TMR_LEN, GAS_ACCESS_DWORD);
	memcpy(f->hypervisor_vendor_id, "KILNVMM ", 8);
	finish_table(&f->h);
}

static void write_facs(struct acpi_facs *facs)
{
	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = FACS_VERSION;
	/* Waking vectors and the global lock stay 0: nothing sleeps, no firmware shares the lock. */
}

static void write_madt(struct acpi_madt *m, unsigned int nr_cpus)
{
	uint8_t *p = (uint8_t *)(m + 1);
	unsigned int i;

	fill_header(&m->h, "APIC", (uint32_t)madt_size(nr_cpus), MADT_REVISION);
	m->lapic_address = (uint32_t)X86_LAPIC_GPA;
	m->flags = MADT_PCAT_COMPAT; /* the 8259s exist (KVM's in-kernel PIC); the OS masks them */
	for (i = 0; i < nr_cpus; i++, p += sizeof(struct madt_lapic))
		*(struct madt_lapic *)p = (struct madt_lapic){
			.type = 0, .length = sizeof(struct madt_lapic), .processor_uid = (uint8_t)i,
			.apic_id = (uint8_t)i, .flags = MADT_LAPIC_ENABLED,
		};
	*(struct madt_ioapic *)p = (struct madt_ioapic){
		.type = 1, .length = sizeof(struct madt_ioapic), .ioapic_id = (uint8_t)nr_cpus,
		.address = (uint32_t)X86_IOAPIC_GPA, .gsi_base = 0,
	};
	p += sizeof(struct madt_ioapic);
	/*
	 * Only the SCI is overridden, for its trigger mode: ISA IRQs are edge-triggered unless an override
	 * says otherwise (s5.2.12.5). IRQ 0 needs none: KVM's PIT raises GSI 0, which KVM routes to IOAPIC
	 * pin 0, and without an override the OS maps ISA IRQ 0 to GSI 0 too.
	 */
	*(struct madt_iso *)p = (struct madt_iso){
		.type = 2, .length = sizeof(struct madt_iso), .bus = 0, .source = ACPI_SCI_IRQ, .gsi = ACPI_SCI_IRQ,
		.flags = MADT_POLARITY_HIGH | MADT_TRIGGER_LEVEL,
	};
	p += sizeof(struct madt_iso);
	/* LINT1 is NMI on every processor, as on PC hardware (flags 0: conforms to the bus). */
	*(struct madt_lapic_nmi *)p = (struct madt_lapic_nmi){
		.type = 4, .length = sizeof(struct madt_lapic_nmi), .processor_uid = LAPIC_ALL_PROCESSORS, .flags = 0,
		.lint = 1,
	};
	finish_table(&m->h);
}

static void write_mcfg(struct acpi_mcfg *m)
{
	fill_header(&m->h, "MCFG", sizeof(*m), 1);
	m->base_address = X86_PCIE_ECAM_GPA;
	m->segment = 0;
	m->start_bus = 0;
	m->end_bus = (uint8_t)((X86_PCIE_ECAM_SIZE >> 20) - 1);
	finish_table(&m->h);
}

static void write_xsdt(struct acpi_header *h, const uint64_t *entries, unsigned int n)
{
	fill_header(h, "XSDT", (uint32_t)(sizeof(*h) + n * sizeof(uint64_t)), 1);
	memcpy(h + 1, entries, n * sizeof(uint64_t)); /* 8-byte entries at offset 36: unaligned, hence memcpy */
	finish_table(h);
}

static void write_rsdp(struct acpi_rsdp *r, uint64_t xsdt_gpa)
{
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, OEM_ID, 6);
	r->revision = 2;
	r->length = sizeof(*r);
	r->xsdt_address = xsdt_gpa;
	r->checksum = acpi_checksum((const uint8_t *)r, 20);
	r->extended_checksum = acpi_checksum((const uint8_t *)r, sizeof(*r));
}

int acpi_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned int nr_cpus, uint64_t *rsdp_gpa)
{
	size_t total = acpi_tables_size(nr_cpus);
	uint64_t entries[XSDT_ENTRIES];

	if (!total || gpa % 64 || gpa > (1ull << 32) - total)
		return -EINVAL;
	if (size < total)
		return -ENOSPC;
	memset(buf, 0, total);

	write_facs((struct acpi_facs *)(buf + FACS_OFFSET));
	memcpy(buf + DSDT_OFFSET, dsdt_aml, sizeof(dsdt_aml));
	write_fadt((struct acpi_fadt *)(buf + FADT_OFFSET), gpa + FACS_OFFSET, gpa + DSDT_OFFSET);
	write_madt((struct acpi_madt *)(buf + MADT_OFFSET), nr_cpus);
	write_mcfg((struct acpi_mcfg *)(buf + mcfg_offset(nr_cpus)));
	entries[0] = gpa + FADT_OFFSET;
	entries[1] = gpa + MADT_OFFSET;
	entries[2] = gpa + mcfg_offset(nr_cpus);
	write_xsdt((struct acpi_header *)(buf + xsdt_offset(nr_cpus)), entries, XSDT_ENTRIES);
	write_rsdp((struct acpi_rsdp *)buf, gpa + xsdt_offset(nr_cpus));
	*rsdp_gpa = gpa;
	return 0;
}
