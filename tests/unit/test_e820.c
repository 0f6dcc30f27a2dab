// SPDX-License-Identifier: MIT
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"

static void test_small_guest(void **state)
{
	struct e820_table t;

	(void)state;
	assert_int_equal(e820_build(&t, 128ull << 20, 0), 0);
	assert_int_equal(t.nr, 3);
	assert_int_equal(t.entries[0].addr, 0);
	assert_int_equal(t.entries[0].size, X86_EBDA_GPA);
	assert_int_equal(t.entries[0].type, E820_TYPE_RAM);
	assert_int_equal(t.entries[1].addr, X86_EBDA_GPA);
	assert_int_equal(t.entries[1].addr + t.entries[1].size, 0x100000);
	assert_int_equal(t.entries[1].type, E820_TYPE_RESERVED);
	assert_int_equal(t.entries[2].addr, 0x100000);
	assert_int_equal(t.entries[2].addr + t.entries[2].size, 128ull << 20);
	assert_int_equal(t.entries[2].type, E820_TYPE_RAM);
}

static void test_guest_above_4g(void **state)
{
	struct e820_table t;

	(void)state;
	assert_int_equal(e820_build(&t, X86_MMIO_HOLE_START, 3ull << 30), 0);
	assert_int_equal(t.nr, 4);
	assert_int_equal(t.entries[2].addr + t.entries[2].size, X86_MMIO_HOLE_START);
	assert_int_equal(t.entries[3].addr, 1ull << 32);
	assert_int_equal(t.entries[3].size, 3ull << 30);
}

static void test_rejects(void **state)
{
	struct e820_table t = { 0 };
	unsigned int i;

	(void)state;
	assert_int_equal(e820_build(&t, 0x80000, 0), -EINVAL);
	assert_int_equal(e820_add(&t, 0x1000, 0, E820_TYPE_RAM), -EINVAL);
	assert_int_equal(e820_add(&t, UINT64_MAX - 10, 100, E820_TYPE_RAM), -EINVAL);
	assert_int_equal(e820_add(&t, 0x10000, 0x1000, E820_TYPE_RAM), 0);
	/* Overlapping or out of order. */
	assert_int_equal(e820_add(&t, 0x10800, 0x1000, E820_TYPE_RAM), -EINVAL);
	assert_int_equal(e820_add(&t, 0x0, 0x1000, E820_TYPE_RAM), -EINVAL);
	for (i = 1; i < E820_MAX_ENTRIES_ZEROPAGE; i++)
		assert_int_equal(e820_add(&t, 0x100000ull * i, 0x1000, E820_TYPE_RAM), 0);
	assert_int_equal(e820_add(&t, 1ull << 40, 0x1000, E820_TYPE_RAM), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_guest),
		cmocka_unit_test(test_guest_above_4g),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
