// SPDX-License-Identifier: MIT
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "devices/pci/pci.h"

#define GPA 0x9fc00

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static void check_table(unsigned int cpus)
{
	uint8_t buf[4096];
	const uint8_t *mpc;
	uint16_t len, count;
	size_t n = mptable_write(buf, GPA, cpus);
	unsigned int i, processors = 0, bsp = 0, ioapics = 0, intsrc = 0, pci_intsrc = 0, buses = 0;
	const uint8_t *p;

	assert_int_equal(n, mptable_size(cpus));
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(sum(buf, 16), 0);
	assert_int_equal(*(uint32_t *)(buf + 4), GPA + 16);
	assert_int_equal(buf[8], 1);  /* length in paragraphs */
	assert_int_equal(buf[9], 4);  /* spec 1.4 */
	mpc = buf + 16;
	assert_memory_equal(mpc, "PCMP", 4);
	len = *(const uint16_t *)(mpc + 4);
	count = *(const uint16_t *)(mpc + 34);
	assert_int_equal(16 + len, n);
	assert_int_equal(sum(mpc, len), 0);
	assert_int_equal(*(const uint32_t *)(mpc + 36), X86_LAPIC_GPA);
	/* Walk the entries by type, as Linux's smp_read_mpc does. */
	p = mpc + 44;
	for (i = 0; i < count; i++) {
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], processors);
			assert_true(p[3] & 1);
			if (p[3] & 2)
				bsp++;
			processors++;
			p += 20;
			break;
		case 1:
			/* PCI bus 0 (its MP ID must be the PCI bus number), then ISA. */
			assert_int_equal(p[1], buses);
			assert_memory_equal(p + 2, buses == 0 ? "PCI   " : "ISA   ", 6);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], cpus);
			assert_int_equal(*(const uint32_t *)(p + 4), X86_IOAPIC_GPA);
			ioapics++;
			p += 8;
			break;
		case 3:
			if (p[4] == 1) {
				assert_int_equal(p[5], p[7]); /* ISA IRQ n -> IOAPIC pin n */
				intsrc++;
			} else {
				unsigned int slot = p[5] >> 2;

				/* PCI: slot << 2 | INTA#, level/active-high, to the slot's INTx GSI (pci.h). */
				assert_int_equal(p[4], 0);
				assert_int_equal(p[5] & 3, 0);
				assert_int_equal(*(const uint16_t *)(p + 2), 0x000d);
				assert_int_equal(p[7], pci_intx_gsi(slot, 1));
				assert_int_equal(slot, pci_intsrc + 1);
				pci_intsrc++;
			}
			p += 8;
			break;
		case 4:
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, mpc + len);
	assert_int_equal(processors, cpus);
	assert_int_equal(bsp, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(intsrc, 16);
	assert_int_equal(pci_intsrc, MPTABLE_PCI_SLOTS);
	assert_int_equal(buses, 2);
}

static void test_one_cpu(void **state)
{
	(void)state;
	check_table(1);
}

static void test_32_cpus_fit_the_ebda(void **state)
{
	(void)state;
	check_table(32);
	assert_true(mptable_size(32) <= X86_LEGACY_HOLE_START - X86_EBDA_GPA);
}

static void test_bad_counts(void **state)
{
	uint8_t buf[16];

	(void)state;
	assert_int_equal(mptable_write(buf, GPA, 0), 0);
	assert_int_equal(mptable_write(buf, GPA, 255), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_cpu),
		cmocka_unit_test(test_32_cpus_fit_the_ebda),
		cmocka_unit_test(test_bad_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
