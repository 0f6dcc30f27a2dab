// SPDX-License-Identifier: MIT
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"

struct probe {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
};

static void handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct probe *p = opaque;

	p->offset = offset;
	p->len = len;
	p->is_write = is_write;
	p->calls++;
	if (!is_write)
		memset(data, 0xab, len);
}

static void test_register_and_dispatch(void **state)
{
	struct bus bus;
	struct probe a = { 0 }, b = { 0 };
	uint8_t data[4] = { 0 };

	(void)state;
	bus_init(&bus, "pio");
	assert_int_equal(bus_register(&bus, 0x3f8, 8, handler, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x60, 1, handler, &b, "b"), 0);
	assert_true(bus_access(&bus, 0x3fd, data, 1, false));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.offset, 5);
	assert_int_equal(data[0], 0xab);
	assert_true(bus_access(&bus, 0x60, data, 1, true));
	assert_int_equal(b.calls, 1);
	assert_true(b.is_write);
	/* Just outside both ranges. */
	assert_false(bus_access(&bus, 0x400, data, 1, false));
	assert_false(bus_access(&bus, 0x3f7, data, 1, false));
	assert_false(bus_access(&bus, 0x61, data, 1, false));
	assert_false(bus_access(&bus, 0, data, 1, false));
	bus_destroy(&bus);
}

static void test_overlap_rejected(void **state)
{
	struct bus bus;
	struct probe p = { 0 };

	(void)state;
	bus_init(&bus, "mmio");
	assert_int_equal(bus_register(&bus, 0x1000, 0x1000, handler, &p, "x"), 0);
	assert_int_equal(bus_register(&bus, 0x1fff, 1, handler, &p, "y"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x800, 0x801, handler, &p, "y"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x0, 0x10000, handler, &p, "y"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x800, 0x800, handler, &p, "y"), 0);
	assert_int_equal(bus_register(&bus, 0x2000, 1, handler, &p, "z"), 0);
	assert_int_equal(bus_register(&bus, 0x5000, 0, handler, &p, "z"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, handler, &p, "z"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 1, handler, &p, "top"), 0);
	assert_non_null(bus_find(&bus, UINT64_MAX));
	bus_destroy(&bus);
}

static void test_many_ranges_sorted(void **state)
{
	struct bus bus;
	struct probe p = { 0 };
	uint8_t d;
	int i;

	(void)state;
	bus_init(&bus, "pio");
	/* Registered in a scrambled order: lookups must still find each one. */
	for (i = 0; i < 100; i++) {
		uint64_t base = (uint64_t)((i * 37) % 100) * 16;

		assert_int_equal(bus_register(&bus, base, 8, handler, &p, "r"), 0);
	}
	for (i = 0; i < 100; i++) {
		assert_true(bus_access(&bus, (uint64_t)i * 16 + 7, &d, 1, false));
		assert_false(bus_access(&bus, (uint64_t)i * 16 + 8, &d, 1, false));
	}
	assert_int_equal(p.calls, 100);
	bus_destroy(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_dispatch),
		cmocka_unit_test(test_overlap_rejected),
		cmocka_unit_test(test_many_ranges_sorted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
