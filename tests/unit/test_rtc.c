// SPDX-License-Identifier: MIT
/* MC146818A RTC/CMOS against an injected clock: formats, status registers, guest-set time, memory bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/legacy/rtc.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

/* 2026-11-21 15:04:05 UTC, a Saturday. */
#define T0 ((time_t)1795273445)

struct fake {
	struct rtc *rtc;
	time_t now;
};

static time_t fake_clock(void *opaque)
{
	const struct fake *f = opaque;

	return f->now;
}

static struct fake *fake_new(uint64_t below, uint64_t above)
{
	struct fake *f = test_calloc(1, sizeof(*f));

	f->now = T0;
	f->rtc = rtc_create(below, above, fake_clock, f);
	assert_non_null(f->rtc);
	return f;
}

static int setup(void **state)
{
	*state = fake_new(512 * MIB, 0);
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	rtc_destroy(f->rtc);
	test_free(f);
	return 0;
}

static uint8_t cmos_read(struct fake *f, uint8_t index)
{
	uint8_t v = 0;

	rtc_io(f->rtc, 0, &index, 1, true);
	rtc_io(f->rtc, 1, &v, 1, false);
	return v;
}

static void cmos_write(struct fake *f, uint8_t index, uint8_t v)
{
	rtc_io(f->rtc, 0, &index, 1, true);
	rtc_io(f->rtc, 1, &v, 1, true);
}

/* The time and date registers in the order the guest reads them, century (0x32) last: each as the clock has it. */
struct cmos_time {
	uint8_t sec, min, hour, wday, mday, mon, year, century;
};

static void cmos_check_time(struct fake *f, struct cmos_time want)
{
	static const uint8_t index[] = { 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32 };
	const uint8_t value[] = {
		want.sec, want.min, want.hour, want.wday, want.mday, want.mon, want.year, want.century,
	};

	for (size_t i = 0; i < sizeof(index); i++) {
		uint8_t got = cmos_read(f, index[i]);

		if (got != value[i])
			print_message("CMOS register 0x%02x\n", index[i]);
		assert_int_equal(got, value[i]);
	}
}

static void test_bcd_time(void **state)
{
	struct fake *f = *state;

	assert_int_equal(cmos_read(f, 0x0b), 0x02); /* BCD, 24-hour */
	/* 15:04:05 on Saturday 21 November 2026. */
	cmos_check_time(f, (struct cmos_time){ 0x05, 0x04, 0x15, 0x07, 0x21, 0x11, 0x26, 0x20 });
	/* Each read takes the clock afresh. */
	f->now += 10;
	assert_int_equal(cmos_read(f, 0x00), 0x15);
}

static void test_binary_time(void **state)
{
	struct fake *f = *state;

	cmos_write(f, 0x0b, 0x06); /* binary, 24-hour */
	assert_int_equal(cmos_read(f, 0x0b), 0x06);
	cmos_check_time(f, (struct cmos_time){ 5, 4, 15, 7, 21, 11, 26, 20 });
}

static void test_12_hour(void **state)
{
	struct fake *f = *state;

	cmos_write(f, 0x0b, 0x00); /* BCD, 12-hour */
	assert_int_equal(cmos_read(f, 0x04), 0x83); /* 3 PM */
	cmos_write(f, 0x0b, 0x04);                  /* binary, 12-hour */
	assert_int_equal(cmos_read(f, 0x04), 0x83);
	f->now = T0 - 15 * 3600; /* 00:04:05: 12 AM */
	assert_int_equal(cmos_read(f, 0x04), 12);
	f->now = T0 - 3 * 3600; /* 12:04:05: 12 PM */
	assert_int_equal(cmos_read(f, 0x04), 0x80 | 12);
	f->now = T0 - 4 * 3600; /* 11 AM */
	cmos_write(f, 0x0b, 0x00);
	assert_int_equal(cmos_read(f, 0x04), 0x11);
}

static void test_status_registers(void **state)
{
	struct fake *f = *state;

	assert_int_equal(cmos_read(f, 0x0a), 0x26);
	cmos_write(f, 0x0a, 0xa5); /* UIP is read-only and always clear */
	assert_int_equal(cmos_read(f, 0x0a), 0x25);
	assert_int_equal(cmos_read(f, 0x0d), 0x80); /* VRT */
	cmos_write(f, 0x0d, 0x00);
	assert_int_equal(cmos_read(f, 0x0d), 0x80);
	cmos_write(f, 0x0c, 0xff); /* read-only */
	assert_int_equal(cmos_read(f, 0x0c), 0x00);
	assert_int_equal(cmos_read(f, 0x0c), 0x00);
	/* Alarm registers are plain storage. */
	cmos_write(f, 0x01, 0x30);
	cmos_write(f, 0x03, 0x45);
	cmos_write(f, 0x05, 0x12);
	assert_int_equal(cmos_read(f, 0x01), 0x30);
	assert_int_equal(cmos_read(f, 0x03), 0x45);
	assert_int_equal(cmos_read(f, 0x05), 0x12);
}

static void test_nmi_bit_masked(void **state)
{
	struct fake *f = *state;

	assert_int_equal(cmos_read(f, 0x80 | 0x04), 0x15);
	assert_int_equal(cmos_read(f, 0x80 | 0x0d), 0x80);
	cmos_write(f, 0x80 | 0x40, 0x5a);
	assert_int_equal(cmos_read(f, 0x40), 0x5a);
}

static void test_guest_sets_time(void **state)
{
	struct fake *f = *state;

	/* As Linux's mc146818_set_time(): SET, write the fields, clear SET. */
	cmos_write(f, 0x0b, 0x02 | 0x80);
	f->now += 3; /* updates are held while SET is on */
	assert_int_equal(cmos_read(f, 0x00), 0x05);
	cmos_write(f, 0x00, 0x50);
	cmos_write(f, 0x02, 0x59);
	cmos_write(f, 0x04, 0x23);
	cmos_write(f, 0x07, 0x31);
	cmos_write(f, 0x08, 0x12);
	cmos_write(f, 0x09, 0x99);
	cmos_write(f, 0x32, 0x19);
	assert_int_equal(cmos_read(f, 0x02), 0x59); /* written fields read back while SET holds */
	cmos_write(f, 0x0b, 0x02);
	assert_int_equal(cmos_read(f, 0x0b), 0x02);

	/* 1999-12-31 23:59:50, a Friday, now; then it runs with the host clock. */
	assert_int_equal(cmos_read(f, 0x00), 0x50);
	assert_int_equal(cmos_read(f, 0x06), 0x06);
	f->now += 9;
	assert_int_equal(cmos_read(f, 0x00), 0x59);
	assert_int_equal(cmos_read(f, 0x09), 0x99);
	f->now += 1; /* into the next century */
	cmos_check_time(f, (struct cmos_time){ 0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20 }); /* Saturday */
}

static void test_guest_sets_time_binary_12h(void **state)
{
	struct fake *f = *state;

	cmos_write(f, 0x0b, 0x80 | 0x04); /* SET, binary, 12-hour */
	cmos_write(f, 0x04, 0x80 | 12);   /* 12 PM */
	cmos_write(f, 0x02, 30);
	cmos_write(f, 0x0b, 0x04);
	cmos_write(f, 0x0b, 0x06); /* back to 24-hour */
	assert_int_equal(cmos_read(f, 0x04), 12);
	assert_int_equal(cmos_read(f, 0x02), 30);
	/* A write without SET moves the clock too. */
	cmos_write(f, 0x04, 7);
	f->now += 60;
	assert_int_equal(cmos_read(f, 0x04), 7);
	assert_int_equal(cmos_read(f, 0x02), 31);
	assert_int_equal(cmos_read(f, 0x07), 21); /* the date was untouched */
}

static void test_memory_512m(void **state)
{
	struct fake *f = *state;

	assert_int_equal(cmos_read(f, 0x15) | cmos_read(f, 0x16) << 8, 640);
	assert_int_equal(cmos_read(f, 0x17) | cmos_read(f, 0x18) << 8, 0xffff); /* 511 MiB: capped */
	assert_int_equal(cmos_read(f, 0x30) | cmos_read(f, 0x31) << 8, 0xffff);
	assert_int_equal(cmos_read(f, 0x34) | cmos_read(f, 0x35) << 8, (512 - 16) * 16);
	assert_int_equal(cmos_read(f, 0x5b), 0);
	assert_int_equal(cmos_read(f, 0x5c), 0);
	assert_int_equal(cmos_read(f, 0x5d), 0);
	assert_int_equal(cmos_read(f, 0x10), 0); /* no floppy drives */
}

static void test_memory_small(void **state)
{
	struct fake *f = fake_new(32 * MIB, 0);

	assert_int_equal(cmos_read(f, 0x17) | cmos_read(f, 0x18) << 8, 31 * 1024);
	assert_int_equal(cmos_read(f, 0x30) | cmos_read(f, 0x31) << 8, 31 * 1024);
	assert_int_equal(cmos_read(f, 0x34) | cmos_read(f, 0x35) << 8, 16 * 16);
	rtc_destroy(f->rtc);
	test_free(f);
	(void)state;
}

static void test_memory_6g(void **state)
{
	/* 6 GiB with the PCI hole at 3 GiB: 3 GiB below 4 GiB, 3 GiB above. */
	struct fake *f = fake_new(3 * GIB, 3 * GIB);
	uint32_t above = cmos_read(f, 0x5b) | cmos_read(f, 0x5c) << 8 | (uint32_t)cmos_read(f, 0x5d) << 16;

	assert_int_equal(above, 3 * GIB / 65536);
	assert_int_equal(cmos_read(f, 0x5b), 0x00);
	assert_int_equal(cmos_read(f, 0x5c), 0xc0);
	assert_int_equal(cmos_read(f, 0x5d), 0x00);
	assert_int_equal(cmos_read(f, 0x34) | cmos_read(f, 0x35) << 8, (3 * GIB - 16 * MIB) / 65536);
	assert_int_equal(cmos_read(f, 0x17) | cmos_read(f, 0x18) << 8, 0xffff);
	rtc_destroy(f->rtc);
	test_free(f);

	/* Past 1 TiB above 4 GiB the 3-byte field saturates. */
	f = fake_new(3 * GIB, 2048 * GIB);
	assert_int_equal(cmos_read(f, 0x5b) & cmos_read(f, 0x5c) & cmos_read(f, 0x5d), 0xff);
	rtc_destroy(f->rtc);
	test_free(f);
	(void)state;
}

static void test_every_index(void **state)
{
	struct fake *f = *state;
	uint8_t buf[8];

	for (unsigned int i = 0; i < 0x80; i++) {
		(void)cmos_read(f, (uint8_t)i);
		cmos_write(f, (uint8_t)i, 0xff);
		(void)cmos_read(f, (uint8_t)i);
		cmos_write(f, (uint8_t)i, (uint8_t)i);
	}
	/* Plain CMOS RAM keeps what was written. */
	assert_int_equal(cmos_read(f, 0x40), 0x40);
	assert_int_equal(cmos_read(f, 0x7f), 0x7f);
	/* Hostile BCD and binary values in every time register while SET holds: normalised, no crash. */
	for (unsigned int b = 0; b < 4; b++) {
		cmos_write(f, 0x0b, (uint8_t)(0x80 | b << 1));
		for (unsigned int reg = 0; reg < 10; reg += 1)
			cmos_write(f, (uint8_t)reg, 0xff);
		cmos_write(f, 0x32, 0xff);
		cmos_write(f, 0x0b, (uint8_t)(b << 1));
		for (unsigned int reg = 0; reg < 10; reg++)
			(void)cmos_read(f, (uint8_t)reg);
	}
	/* Bad sizes and offsets are ignored. */
	memset(buf, 0, sizeof(buf));
	rtc_io(f->rtc, 1, buf, 4, false);
	assert_int_equal(buf[3], 0xff);
	rtc_io(f->rtc, 2, buf, 1, true);
	rtc_io(f->rtc, ~0ull, buf, 1, false);
	rtc_io(f->rtc, 0, buf, 2, true);
	buf[0] = 0;
	rtc_io(f->rtc, 0, buf, 1, false); /* the index port reads as floating */
	assert_int_equal(buf[0], 0xff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bcd_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_12_hour, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nmi_bit_masked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_sets_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_sets_time_binary_12h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_512m, setup, teardown),
		cmocka_unit_test(test_memory_small),
		cmocka_unit_test(test_memory_6g),
		cmocka_unit_test_setup_teardown(test_every_index, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
