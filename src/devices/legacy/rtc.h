/* SPDX-License-Identifier: MIT */
/*
 * MC146818 CMOS real-time clock at I/O 0x70 (index) / 0x71 (data), giving the host's wall-clock time
 * (UTC), plus the CMOS bytes firmware leaves for the OS (memory sizes, century).
 */
#ifndef KILN_DEVICES_LEGACY_RTC_H
#define KILN_DEVICES_LEGACY_RTC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vmm/snapshot_file.h"

#define RTC_INDEX_PORT 0x70
#define RTC_NR_PORTS 2

/* Source of wall-clock time (seconds since the epoch, UTC); tests inject a fixed clock. */
typedef time_t (*rtc_clock_fn)(void *opaque);

struct rtc;

/*
 * `mem_below_4g` and `mem_above_4g` are guest RAM sizes in bytes, reported in the CMOS memory-size
 * registers (0x30/0x31 and 0x34/0x35 and 0x5b-0x5d, as PC firmware does). `clock` may be NULL for the
 * host's real time. Returns NULL with errno on failure.
 */
struct rtc *rtc_create(uint64_t mem_below_4g, uint64_t mem_above_4g, rtc_clock_fn clock, void *clock_opaque);
void rtc_destroy(struct rtc *rtc);

/*
 * Bus handler for ports 0x70-0x71 (offset 0 = index, 1 = data; bit 7 of the index, the PC's NMI mask,
 * is ignored). Registers per the MC146818A data sheet; register B's DM and 24/12 bits apply to reads and
 * writes of the time registers; a guest that writes the time reads its own time from then on. No
 * interrupts: IRQ 8 is never raised and register C reads 0. Thread-safe.
 */
void rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshot state (section RTC): the index register, CMOS RAM, the guest's offset from host time and
 * the time held while register B's SET bit stops updates. Restored, the guest's clock reads host time
 * plus the same offset: it has kept running while the snapshot was stored, as a battery-backed RTC does.
 */
#define RTC_STATE_CMOS_SIZE 128

struct rtc_state {
	uint8_t index;
	uint8_t cmos[RTC_STATE_CMOS_SIZE];
	int64_t offset;                 /* guest time minus host time, seconds */
	int32_t set_sec, set_min, set_hour, set_mday, set_mon, set_year, set_wday; /* struct tm fields */
};

void rtc_save(struct rtc *rtc, struct rtc_state *st);
void rtc_restore(struct rtc *rtc, const struct rtc_state *st);

/*
 * The RTC section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): the index
 * register (below RTC_STATE_CMOS_SIZE), the CMOS bytes, the offset (le64, within 2^52 s) and the seven
 * time fields (le32 each). Time fields are not bounded: timegm normalises whatever the guest wrote.
 */
extern const struct codec_table rtc_state_codec;

/* The device type (vmm/device.h): the CMOS RTC. */
struct vm_device_type;
extern const struct vm_device_type rtc_device_type;

#endif
