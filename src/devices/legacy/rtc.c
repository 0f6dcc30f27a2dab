// SPDX-License-Identifier: MIT
/*
 * MC146818A real-time clock and CMOS RAM, per the Motorola MC146818A data sheet (address map, table 3
 * "time, calendar and alarm data modes", registers A-D) and the IBM PC/AT CMOS layout for the bytes
 * firmware leaves behind.
 *
 * Time is not kept by a ticking register file: every read of a time register converts the clock
 * callback's current time plus `offset` (what the guest set minus what the host said at that moment).
 * So the guest's clock advances exactly as the host's does, and the host clock may be injected in tests.
 *
 * Not modelled: periodic, alarm and update-ended interrupts (IRQ 8 is never raised, register C always
 * reads 0 - Linux's rtc-cmos then falls back to polling for RTC_UIE, and nothing at boot needs them);
 * the update-in-progress window (UIP always reads 0: each read is coherent on its own); stopping the
 * clock through the register A divider bits; daylight-saving mode (register B bit 0) is stored only.
 */
#include "devices/legacy/rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

#define CMOS_SIZE 128
#define NMI_DISABLE 0x80 /* bit 7 of the index port gates NMI on a PC, not part of the index */

/* Time, calendar and alarm registers. */
#define REG_SECONDS 0x00
#define REG_SECONDS_ALARM 0x01
#define REG_MINUTES 0x02
#define REG_MINUTES_ALARM 0x03
#define REG_HOURS 0x04
#define REG_HOURS_ALARM 0x05
#define REG_DAY_OF_WEEK 0x06
#define REG_DAY_OF_MONTH 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define REG_CENTURY 0x32 /* IBM PC/AT; ACPI FADT "century" points here */

#define A_UIP 0x80
#define A_DEFAULT 0x26 /* 32.768 kHz time base, 1.024 kHz periodic rate */
#define B_SET 0x80
#define B_UIE 0x10
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define B_DEFAULT B_24H /* BCD, 24-hour: what PC firmware leaves and Linux assumes */
#define D_VRT 0x80
#define HOUR_PM 0x80

/* IBM PC/AT CMOS memory-size bytes. */
#define CMOS_BASE_MEM_LO 0x15 /* KiB below 1 MiB */
#define CMOS_EXT_MEM_LO 0x17  /* KiB from 1 MiB, at most 0xffff */
#define CMOS_CHECKSUM_HI 0x2e /* sum of 0x10-0x2d, big-endian */
#define CMOS_EXT_MEM2_LO 0x30 /* copy of 0x17/0x18 set by POST */
#define CMOS_MEM_16M_LO 0x34  /* 64 KiB units from 16 MiB up to 4 GiB (SeaBIOS/QEMU convention) */
#define CMOS_MEM_4G_LO 0x5b   /* 64 KiB units above 4 GiB, 3 bytes */

struct rtc {
	pthread_mutex_t lock;
	rtc_clock_fn clock;
	void *clock_opaque;
	uint8_t index;
	uint8_t cmos[CMOS_SIZE]; /* everything but the time registers, which are computed */
	time_t offset;           /* guest time minus host time, seconds */
	struct tm set_tm;        /* time registers while register B's SET bit holds updates off */
	struct ratelimit bad_access_rl;
};

static time_t rtc_host_now(const struct rtc *rtc)
{
	return rtc->clock ? rtc->clock(rtc->clock_opaque) : time(NULL);
}

/* The guest's view of the time now, broken down (UTC). */
static void rtc_guest_tm(const struct rtc *rtc, struct tm *tm)
{
	time_t t = rtc_host_now(rtc) + rtc->offset;

	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

static bool rtc_is_time_reg(unsigned int reg)
{
	switch (reg) {
	case REG_SECONDS:
	case REG_MINUTES:
	case REG_HOURS:
	case REG_DAY_OF_WEEK:
	case REG_DAY_OF_MONTH:
	case REG_MONTH:
	case REG_YEAR:
	case REG_CENTURY:
		return true;
	}
	return false;
}

/* Binary value to the register format register B selects. Values past two digits keep the low two. */
static uint8_t rtc_encode(const struct rtc *rtc, int v)
{
	if (v < 0)
		v = 0;
	if (rtc->cmos[REG_B] & B_DM_BINARY)
		return (uint8_t)v;
	v %= 100;
	return (uint8_t)((v / 10) << 4 | v % 10);
}

/* Register format to binary. A hostile BCD byte (nibbles past 9) decodes to a large value; timegm() normalises it. */
static int rtc_decode(const struct rtc *rtc, uint8_t v)
{
	if (rtc->cmos[REG_B] & B_DM_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_encode_hour(const struct rtc *rtc, int hour)
{
	int h12;

	if (rtc->cmos[REG_B] & B_24H)
		return rtc_encode(rtc, hour);
	h12 = hour % 12 ? hour % 12 : 12;
	return rtc_encode(rtc, h12) | (hour >= 12 ? HOUR_PM : 0);
}

static int rtc_decode_hour(const struct rtc *rtc, uint8_t v)
{
	int h;

	if (rtc->cmos[REG_B] & B_24H)
		return rtc_decode(rtc, v);
	h = rtc_decode(rtc, v & ~HOUR_PM) % 12; /* 12 AM is hour 0, 12 PM hour 12 */
	return (v & HOUR_PM) ? h + 12 : h;
}

static uint8_t rtc_read_time(const struct rtc *rtc, unsigned int reg)
{
	struct tm tm;

	if (rtc->cmos[REG_B] & B_SET)
		tm = rtc->set_tm;
	else
		rtc_guest_tm(rtc, &tm);
	switch (reg) {
	case REG_SECONDS:
		return rtc_encode(rtc, tm.tm_sec);
	case REG_MINUTES:
		return rtc_encode(rtc, tm.tm_min);
	case REG_HOURS:
		return rtc_encode_hour(rtc, tm.tm_hour);
	case REG_DAY_OF_WEEK:
		return rtc_encode(rtc, tm.tm_wday + 1); /* 1 = Sunday */
	case REG_DAY_OF_MONTH:
		return rtc_encode(rtc, tm.tm_mday);
	case REG_MONTH:
		return rtc_encode(rtc, tm.tm_mon + 1);
	case REG_YEAR:
		return rtc_encode(rtc, (tm.tm_year + 1900) % 100);
	case REG_CENTURY:
		return rtc_encode(rtc, (tm.tm_year + 1900) / 100);
	}
	return 0xff;
}

/* Replace one field of `tm` with a value the guest wrote to time register `reg`. */
static void rtc_apply_time(const struct rtc *rtc, struct tm *tm, unsigned int reg, uint8_t v)
{
	int year = tm->tm_year + 1900;

	switch (reg) {
	case REG_SECONDS:
		tm->tm_sec = rtc_decode(rtc, v);
		break;
	case REG_MINUTES:
		tm->tm_min = rtc_decode(rtc, v);
		break;
	case REG_HOURS:
		tm->tm_hour = rtc_decode_hour(rtc, v);
		break;
	case REG_DAY_OF_WEEK:
		/* Kept for reads while SET holds; afterwards the day of the week follows from the date. */
		tm->tm_wday = rtc_decode(rtc, v) - 1;
		break;
	case REG_DAY_OF_MONTH:
		tm->tm_mday = rtc_decode(rtc, v);
		break;
	case REG_MONTH:
		tm->tm_mon = rtc_decode(rtc, v) - 1;
		break;
	case REG_YEAR:
		tm->tm_year = year / 100 * 100 + rtc_decode(rtc, v) - 1900;
		break;
	case REG_CENTURY:
		tm->tm_year = rtc_decode(rtc, v) * 100 + year % 100 - 1900;
		break;
	}
}

/* Make the guest's clock read `tm` now. */
static void rtc_set_offset(struct rtc *rtc, const struct tm *tm)
{
	struct tm copy = *tm; /* timegm() normalises its argument */

	copy.tm_isdst = 0;
	rtc->offset = timegm(&copy) - rtc_host_now(rtc);
}

static void rtc_write_time(struct rtc *rtc, unsigned int reg, uint8_t v)
{
	struct tm tm;

	if (rtc->cmos[REG_B] & B_SET) {
		rtc_apply_time(rtc, &rtc->set_tm, reg, v);
		return;
	}
	/* The chip accepts time writes without SET too (the next update may race them; here none does). */
	rtc_guest_tm(rtc, &tm);
	rtc_apply_time(rtc, &tm, reg, v);
	rtc_set_offset(rtc, &tm);
}

static void rtc_write_b(struct rtc *rtc, uint8_t v)
{
	uint8_t old = rtc->cmos[REG_B];

	if ((v & B_SET) && !(old & B_SET)) {
		/* Updates stop: the registers hold the time of this moment until the guest rewrites them. */
		rtc_guest_tm(rtc, &rtc->set_tm);
		v &= ~B_UIE; /* setting SET clears UIE (data sheet, register B) */
	} else if (!(v & B_SET) && (old & B_SET)) {
		/* Updates resume from the time the guest wrote. */
		rtc_set_offset(rtc, &rtc->set_tm);
	}
	rtc->cmos[REG_B] = v;
}

static uint8_t rtc_read(struct rtc *rtc, unsigned int reg)
{
	uint8_t v;

	if (rtc_is_time_reg(reg))
		return rtc_read_time(rtc, reg);
	switch (reg) {
	case REG_A:
		return rtc->cmos[REG_A] & ~A_UIP;
	case REG_C:
		v = rtc->cmos[REG_C]; /* interrupt flags: reading clears them */
		rtc->cmos[REG_C] = 0;
		return v;
	case REG_D:
		return D_VRT; /* the battery is always good */
	}
	return rtc->cmos[reg];
}

static void rtc_write(struct rtc *rtc, unsigned int reg, uint8_t v)
{
	if (rtc_is_time_reg(reg)) {
		rtc_write_time(rtc, reg, v);
		return;
	}
	switch (reg) {
	case REG_A:
		rtc->cmos[REG_A] = v & ~A_UIP;
		break;
	case REG_B:
		rtc_write_b(rtc, v);
		break;
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		rtc->cmos[reg] = v;
		break;
	}
}

static void rtc_put16(uint8_t *p, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Memory-size bytes as PC firmware (and SeaBIOS for the 16M/4G fields) leaves them. */
static void rtc_set_memory(struct rtc *rtc, uint64_t below_4g, uint64_t above_4g)
{
	const uint64_t mib = 1024 * 1024;
	uint64_t ext_kib = below_4g > mib ? (below_4g - mib) / 1024 : 0;
	uint64_t mem_16m = below_4g > 16 * mib ? (below_4g - 16 * mib) / 65536 : 0;
	uint64_t mem_4g = above_4g / 65536;
	unsigned int sum = 0;

	rtc_put16(&rtc->cmos[CMOS_BASE_MEM_LO], 640);
	rtc_put16(&rtc->cmos[CMOS_EXT_MEM_LO], ext_kib);
	rtc_put16(&rtc->cmos[CMOS_EXT_MEM2_LO], ext_kib);
	rtc_put16(&rtc->cmos[CMOS_MEM_16M_LO], mem_16m);
	if (mem_4g > 0xffffff)
		mem_4g = 0xffffff;
	rtc->cmos[CMOS_MEM_4G_LO] = (uint8_t)mem_4g;
	rtc->cmos[CMOS_MEM_4G_LO + 1] = (uint8_t)(mem_4g >> 8);
	rtc->cmos[CMOS_MEM_4G_LO + 2] = (uint8_t)(mem_4g >> 16);
	for (unsigned int i = 0x10; i < CMOS_CHECKSUM_HI; i++)
		sum += rtc->cmos[i];
	rtc->cmos[CMOS_CHECKSUM_HI] = (uint8_t)(sum >> 8);
	rtc->cmos[CMOS_CHECKSUM_HI + 1] = (uint8_t)sum;
}

struct rtc *rtc_create(uint64_t mem_below_4g, uint64_t mem_above_4g, rtc_clock_fn clock, void *clock_opaque)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));
	int err;

	if (!rtc)
		return NULL;
	err = pthread_mutex_init(&rtc->lock, NULL);
	if (err) {
		free(rtc);
		errno = err;
		return NULL;
	}
	rtc->clock = clock;
	rtc->clock_opaque = clock_opaque;
	rtc->cmos[REG_A] = A_DEFAULT;
	rtc->cmos[REG_B] = B_DEFAULT;
	rtc->bad_access_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	/* 0x10 (floppy types) and 0x12 (disk types) stay 0: none, so Linux's floppy driver finds no drive. */
	rtc_set_memory(rtc, mem_below_4g, mem_above_4g);
	return rtc;
}

void rtc_destroy(struct rtc *rtc)
{
	if (!rtc)
		return;
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

/* ---- the device type (vmm/device.h): the CMOS RTC, always present ---- */

static void *rtc_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	return rtc_create(guest_memory_low_size(ctx->mem), guest_memory_high_size(ctx->mem), NULL, NULL);
}

VM_DEVICE_ADAPTERS(rtc, rtc_destroy, rtc_save, rtc_restore)

static const struct vm_device_ports rtc_ports[] = { { RTC_INDEX_PORT, RTC_NR_PORTS, rtc_io }, { 0 } };

const struct vm_device_type rtc_device_type = {
	.name = "rtc",
	.count = vm_device_count_one,
	.create = rtc_new,
	.ports = rtc_ports,
	.destroy = rtc_destroy_dev,
	.section = SNAP_ID_RTC,
	.codec = &rtc_state_codec,
	.save = rtc_save_dev,
	.restore = rtc_restore_dev,
};

void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *rtc = opaque;

	pthread_mutex_lock(&rtc->lock);
	if (len != 1 || offset >= RTC_NR_PORTS) {
		if (ratelimit_ok(&rtc->bad_access_rl))
			pr_debug("rtc: ignoring %u-byte %s at offset %llu", len, is_write ? "write" : "read",
				 (unsigned long long)offset);
		if (!is_write)
			memset(data, 0xff, len);
	} else if (offset == 0) {
		/* The index port is write-only on a PC; reads float. */
		if (is_write)
			rtc->index = data[0] & ~NMI_DISABLE;
		else
			data[0] = 0xff;
	} else if (is_write) {
		rtc_write(rtc, rtc->index, data[0]);
	} else {
		data[0] = rtc_read(rtc, rtc->index);
	}
	pthread_mutex_unlock(&rtc->lock);
}

/* ---- snapshot state ---- */

_Static_assert(RTC_STATE_CMOS_SIZE == CMOS_SIZE, "CMOS size");

void rtc_save(struct rtc *rtc, struct rtc_state *st)
{
	pthread_mutex_lock(&rtc->lock);
	memset(st, 0, sizeof(*st));
	st->index = rtc->index;
	memcpy(st->cmos, rtc->cmos, CMOS_SIZE);
	st->offset = (int64_t)rtc->offset;
	st->set_sec = rtc->set_tm.tm_sec;
	st->set_min = rtc->set_tm.tm_min;
	st->set_hour = rtc->set_tm.tm_hour;
	st->set_mday = rtc->set_tm.tm_mday;
	st->set_mon = rtc->set_tm.tm_mon;
	st->set_year = rtc->set_tm.tm_year;
	st->set_wday = rtc->set_tm.tm_wday;
	pthread_mutex_unlock(&rtc->lock);
}

void rtc_restore(struct rtc *rtc, const struct rtc_state *st)
{
	pthread_mutex_lock(&rtc->lock);
	rtc->index = st->index & (CMOS_SIZE - 1);
	memcpy(rtc->cmos, st->cmos, CMOS_SIZE);
	rtc->offset = (time_t)st->offset;
	memset(&rtc->set_tm, 0, sizeof(rtc->set_tm));
	rtc->set_tm.tm_sec = st->set_sec;
	rtc->set_tm.tm_min = st->set_min;
	rtc->set_tm.tm_hour = st->set_hour;
	rtc->set_tm.tm_mday = st->set_mday;
	rtc->set_tm.tm_mon = st->set_mon;
	rtc->set_tm.tm_year = st->set_year;
	rtc->set_tm.tm_wday = st->set_wday;
	pthread_mutex_unlock(&rtc->lock);
}

/* 2^52 s, about 140 million years: far past any date, and host time + offset cannot overflow. */
#define RTC_MAX_OFFSET ((int64_t)1 << 52)

/*
 * What a table cannot say: the offset is signed. The time fields are not bounded: they are whatever
 * the guest wrote (timegm normalises them).
 */
static int rtc_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct rtc_state *st = p;

	if (st->offset > RTC_MAX_OFFSET || st->offset < -RTC_MAX_OFFSET) {
		errmsg_set(err, err_size, "RTC state: offset %lld s from host time is out of range", (long long)st->offset);
		return -EINVAL;
	}
	return 0;
}

/* The int64 and int32 fields travel as their two's complement bits (le64, le32). */
static const struct codec_field rtc_state_fields[] = {
	CODEC_RANGE(struct rtc_state, index, 1, 1, 0, CMOS_SIZE - 1),
	CODEC_BYTES(struct rtc_state, cmos, 1),
	CODEC_UINT(struct rtc_state, offset, 8, 1),
	CODEC_UINT(struct rtc_state, set_sec, 4, 1),
	CODEC_UINT(struct rtc_state, set_min, 4, 1),
	CODEC_UINT(struct rtc_state, set_hour, 4, 1),
	CODEC_UINT(struct rtc_state, set_mday, 4, 1),
	CODEC_UINT(struct rtc_state, set_mon, 4, 1),
	CODEC_UINT(struct rtc_state, set_year, 4, 1),
	CODEC_UINT(struct rtc_state, set_wday, 4, 1),
};

const struct codec_table rtc_state_codec =
	CODEC_TABLE(struct rtc_state, "RTC state", 1, 1, rtc_state_fields, rtc_state_check);
