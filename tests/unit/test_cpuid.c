// SPDX-License-Identifier: MIT
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "arch/x86/cpuid.h"

static struct kvm_cpuid2 *make_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 16 * sizeof(struct kvm_cpuid_entry2));

	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x806c1, .ebx = 0xff0800,
						   .ecx = 0x81202000 | (1u << 13), .edx = 0x178bfbff };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
						   .eax = 0xfc004121 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0xa, .eax = 0x7300402, .ebx = 1 };
	c->entries[5] = (struct kvm_cpuid_entry2){ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b };
	/* KVM's features: clocksource2, async PF, steal time, PV EOI, PV_UNHALT, PV_TLB_FLUSH, PV_SEND_IPI,
	 * PV_SCHED_YIELD, MAP_GPA_RANGE. */
	c->entries[6] = (struct kvm_cpuid_entry2){ .function = 0x40000001,
						   .eax = (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7) |
							  (1u << 9) | (1u << 11) | (1u << 13) | (1u << 16) };
	c->nent = 7;
	return c;
}

static void test_leaf1(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	struct kvm_cpuid_entry2 *e;

	(void)state;
	cpuid_filter(c, 16, 3, 4, false);
	e = cpuid_find(c, 1, 0);
	assert_non_null(e);
	assert_int_equal(e->ebx >> 24, 3);           /* initial APIC ID */
	assert_int_equal((e->ebx >> 16) & 0xff, 4);  /* logical processors */
	assert_true(e->ecx & (1u << 31));            /* hypervisor */
	assert_true(e->ecx & (1u << 13));            /* CX16 kept on real hardware */
	assert_true(e->edx & (1u << 28));            /* HTT with >1 CPU */
	free(c);
}

static void test_pvm_masks_cx16(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();

	(void)state;
	cpuid_filter(c, 16, 0, 1, true);
	assert_false(cpuid_find(c, 1, 0)->ecx & (1u << 13));
	assert_false(cpuid_find(c, 1, 0)->edx & (1u << 28));
	free(c);
}

/* On PVM the features that need hypercalls go; the others stay. Real hardware keeps them all. */
static void test_pvm_masks_hypercall_features(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	uint32_t all = cpuid_find(c, 0x40000001, 0)->eax;

	(void)state;
	cpuid_filter(c, 16, 0, 4, true);
	assert_int_equal(cpuid_find(c, 0x40000001, 0)->eax, (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 9));
	free(c);
	c = make_cpuid();
	cpuid_filter(c, 16, 0, 4, false);
	assert_int_equal(cpuid_find(c, 0x40000001, 0)->eax, all);
	free(c);
}

static void test_missing_subleaf_added(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	struct kvm_cpuid_entry2 *core;

	(void)state;
	c->entries[3] = c->entries[5]; /* drop 0xb.1, as KVM reports it */
	c->nent = 5;
	cpuid_filter(c, 16, 1, 2, false);
	core = cpuid_find(c, 0xb, 1);
	assert_non_null(core);
	assert_int_equal(core->index, 1);
	assert_int_equal(core->ebx, 2);
	assert_int_equal(core->edx, 1);
	/* No room: nothing is written past the capacity. */
	c->nent = 5;
	c->entries[3] = c->entries[4];
	c->nent = 4;
	cpuid_filter(c, 4, 0, 2, false);
	assert_int_equal(c->nent, 4);
	free(c);
}

static void test_topology(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	struct kvm_cpuid_entry2 *smt, *core;

	(void)state;
	cpuid_filter(c, 16, 5, 6, false);
	smt = cpuid_find(c, 0xb, 0);
	core = cpuid_find(c, 0xb, 1);
	assert_int_equal(smt->ebx, 1);
	assert_int_equal((smt->ecx >> 8) & 0xff, 1);
	assert_int_equal(core->eax, 3); /* 6 CPUs need 3 bits */
	assert_int_equal(core->ebx, 6);
	assert_int_equal((core->ecx >> 8) & 0xff, 2);
	assert_int_equal(core->edx, 5);
	assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 5);
	assert_int_equal(cpuid_find(c, 0xa, 0)->eax, 0);
	/* Subleaf 2 terminates the list (type 0). */
	assert_int_equal((cpuid_find(c, 0xb, 2)->ecx >> 8) & 0xff, 0);
	/* KVM's own leaves pass through. */
	assert_int_equal(cpuid_find(c, 0x40000000, 0)->ebx, 0x4b4d564b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf1),
		cmocka_unit_test(test_pvm_masks_cx16),
		cmocka_unit_test(test_pvm_masks_hypercall_features),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_missing_subleaf_added),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
