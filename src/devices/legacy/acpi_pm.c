// SPDX-License-Identifier: MIT
/*
 * ACPI fixed-hardware PM registers, per ACPI 6.4 s4.8.3 "PM1 Event Grouping", "PM1 Control Grouping"
 * and "Power Management Timer" (register bits: tables 4.16-4.19).
 *
 * The 12 ports are one little register file; an access of any size is split into bytes, each handled
 * by the register it falls in, so a guest that writes PM1_CNT one byte at a time gets what a 16-bit
 * write would do (SLP_TYP and SLP_EN share the high byte). A read takes one snapshot of the file, so
 * a 32-bit timer read is coherent.
 *
 * Modelled: PWRBTN_STS/PWRBTN_EN and the SCI they drive; PM1_EN stores every enable bit the spec
 * defines; SCI_EN always reads 1; SLP_TYP is stored; SLP_EN with the \_S5 type powers off.
 * Not modelled: TMR_STS (the timer's carry never sets it: Linux neither enables TMR_EN nor needs it),
 * RTC_STS (the FADT sets FIX_RTC), WAK_STS (the VM never wakes: S5 ends it, other states are refused),
 * BM_STS/GBL_STS (no bus master arbitration, no firmware holding the global lock), GBL_RLS.
 */
#include "devices/legacy/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

/* Offsets in the block. */
#define PM1_STS 0x0
#define PM1_EN 0x2
#define PM1_CNT 0x4
#define PM_TMR 0x8
_Static_assert(ACPI_PM1A_EVT_PORT == ACPI_PM_BASE_PORT + PM1_STS, "PM1 event block");
_Static_assert(ACPI_PM1A_CNT_PORT == ACPI_PM_BASE_PORT + PM1_CNT, "PM1 control block");
_Static_assert(ACPI_PM_TMR_PORT == ACPI_PM_BASE_PORT + PM_TMR, "PM timer");
_Static_assert(ACPI_PM_TMR_PORT + ACPI_PM_TMR_LEN == ACPI_PM_BASE_PORT + ACPI_PM_NR_PORTS, "block size");

/* PM1_STS / PM1_EN bits (tables 4.16, 4.17). */
#define PM1_TMR 0x0001
#define PM1_GBL 0x0020
#define PM1_PWRBTN 0x0100
#define PM1_SLPBTN 0x0200
#define PM1_RTC 0x0400
#define PM1_PCIEXP_WAKE_DIS 0x4000
#define PM1_EN_WRITABLE (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_PCIEXP_WAKE_DIS)
/* Enable bits that route a status bit to the SCI (PCIEXP_WAKE_DIS is a wake control, not an event). */
#define PM1_SCI_EVENTS (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)

/* PM1_CNT bits (table 4.19). */
#define CNT_SCI_EN 0x0001
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_TYP_MASK (0x7 << CNT_SLP_TYP_SHIFT)
#define CNT_SLP_EN 0x2000

#define NS_PER_SEC 1000000000ull

struct acpi_pm {
	pthread_mutex_t lock;
	struct irq_line sci;
	int sci_level;
	uint16_t sts;
	uint16_t en;
	uint16_t slp_typ; /* SLP_TYP as last written, in place (bits 10-12) */
	acpi_pm_poweroff_fn poweroff;
	void *poweroff_opaque;
	bool powered_off;
	acpi_pm_clock_fn clock;
	void *clock_opaque;
	uint64_t start_ns;
	struct ratelimit sleep_rl;
	struct ratelimit bad_access_rl;
};

static uint64_t acpi_pm_now(const struct acpi_pm *pm)
{
	return pm->clock ? pm->clock(pm->clock_opaque) : time_now_ns();
}

/*
 * Ticks of the 3.579545 MHz timer since creation, truncated to the register's 32 bits. Whole seconds
 * and the remainder are scaled apart so nothing overflows 64 bits however long the VM runs; the
 * result is floor(ns * HZ / 1e9), hence monotonic in ns.
 */
static uint32_t acpi_pm_ticks(const struct acpi_pm *pm)
{
	/* Modulo 2^64: a restored timer's start may lie before this host's clock began (acpi_pm_restore). */
	uint64_t ns = acpi_pm_now(pm) - pm->start_ns;

	return (uint32_t)(ns / NS_PER_SEC * ACPI_PM_TIMER_HZ + ns % NS_PER_SEC * ACPI_PM_TIMER_HZ / NS_PER_SEC);
}

/* Drive the SCI from the status and enable bits. Caller holds the lock. */
static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	int level = (pm->sts & pm->en & PM1_SCI_EVENTS) != 0;

	if (level != pm->sci_level) {
		pm->sci_level = level;
		irq_line_set(&pm->sci, level);
	}
}

/* Byte `i` of the register file, as a read sees it; `tmr` is the timer sampled once for the access. */
static uint8_t acpi_pm_read_byte(const struct acpi_pm *pm, uint64_t i, uint32_t tmr)
{
	uint16_t cnt = CNT_SCI_EN | pm->slp_typ; /* SLP_EN is write-only: reads 0 */

	switch (i) {
	case PM1_STS:
	case PM1_STS + 1:
		return (uint8_t)(pm->sts >> (8 * (i - PM1_STS)));
	case PM1_EN:
	case PM1_EN + 1:
		return (uint8_t)(pm->en >> (8 * (i - PM1_EN)));
	case PM1_CNT:
	case PM1_CNT + 1:
		return (uint8_t)(cnt >> (8 * (i - PM1_CNT)));
	case PM_TMR:
	case PM_TMR + 1:
	case PM_TMR + 2:
	case PM_TMR + 3:
		return (uint8_t)(tmr >> (8 * (i - PM_TMR)));
	}
	return 0xff;
}

/*
 * Apply one written byte. Returns the SLP_TYP to enter when the byte sets SLP_EN, else -1.
 * Caller holds the lock.
 */
static int acpi_pm_write_byte(struct acpi_pm *pm, uint64_t i, uint8_t v)
{
	uint16_t shifted;

	switch (i) {
	case PM1_STS:
	case PM1_STS + 1:
		pm->sts &= (uint16_t)~((unsigned int)v << (8 * (i - PM1_STS))); /* write 1 to clear */
		break;
	case PM1_EN:
	case PM1_EN + 1: {
		unsigned int shift = 8 * (unsigned int)(i - PM1_EN);

		pm->en = (uint16_t)((pm->en & ~(0xffu << shift)) | (((unsigned int)v << shift) & PM1_EN_WRITABLE));
		break;
	}
	case PM1_CNT + 1:
		shifted = (uint16_t)(v << 8);
		pm->slp_typ = shifted & CNT_SLP_TYP_MASK;
		if (shifted & CNT_SLP_EN)
			return pm->slp_typ >> CNT_SLP_TYP_SHIFT;
		break;
	default:
		/* PM1_CNT's low byte (SCI_EN read-only, BM_RLD and GBL_RLS unmodelled), the gap, the timer. */
		break;
	}
	return -1;
}

void acpi_pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	bool poweroff = false;
	int sleep_type = -1;
	uint32_t i;

	if (len == 0 || len > 8)
		return;
	pthread_mutex_lock(&pm->lock);
	if ((offset >= ACPI_PM_NR_PORTS || offset + len > ACPI_PM_NR_PORTS) && ratelimit_ok(&pm->bad_access_rl))
		pr_debug("acpi-pm: %u-byte %s at offset %llu runs past the block", len, is_write ? "write" : "read",
			 (unsigned long long)offset);
	if (!is_write) {
		uint32_t tmr = acpi_pm_ticks(pm);

		for (i = 0; i < len; i++)
			data[i] = offset + i < ACPI_PM_NR_PORTS ? acpi_pm_read_byte(pm, offset + i, tmr) : 0xff;
		pthread_mutex_unlock(&pm->lock);
		return;
	}
	for (i = 0; i < len && offset + i < ACPI_PM_NR_PORTS; i++) {
		int t = acpi_pm_write_byte(pm, offset + i, data[i]);

		if (t >= 0)
			sleep_type = t;
	}
	acpi_pm_update_sci(pm);
	if (sleep_type == ACPI_SLP_TYP_S5) {
		poweroff = !pm->powered_off;
		pm->powered_off = true;
	} else if (sleep_type >= 0 && ratelimit_ok(&pm->sleep_rl)) {
		pr_warn("acpi-pm: guest asked for sleep type %d; only S5 (type %d) is supported, ignored", sleep_type,
			ACPI_SLP_TYP_S5);
	}
	pthread_mutex_unlock(&pm->lock);
	/* Outside the lock: the callback stops the VM, which may kick the vCPU threads. */
	if (poweroff && pm->poweroff)
		pm->poweroff(pm->poweroff_opaque);
}

bool acpi_pm_press_power_button(struct acpi_pm *pm)
{
	bool listening;

	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_PWRBTN;
	listening = (pm->en & PM1_PWRBTN) != 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return listening;
}

uint32_t acpi_pm_timer(struct acpi_pm *pm)
{
	uint32_t v;

	pthread_mutex_lock(&pm->lock);
	v = acpi_pm_ticks(pm);
	pthread_mutex_unlock(&pm->lock);
	return v;
}

struct acpi_pm *acpi_pm_create(struct irq_line sci, acpi_pm_poweroff_fn poweroff, void *poweroff_opaque,
			       acpi_pm_clock_fn clock, void *clock_opaque)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	int err;

	if (!pm)
		return NULL;
	err = pthread_mutex_init(&pm->lock, NULL);
	if (err) {
		free(pm);
		errno = err;
		return NULL;
	}
	pm->sci = sci;
	pm->poweroff = poweroff;
	pm->poweroff_opaque = poweroff_opaque;
	pm->clock = clock;
	pm->clock_opaque = clock_opaque;
	pm->start_ns = acpi_pm_now(pm);
	pm->sleep_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	pm->bad_access_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	return pm;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

/* ---- the device type (vmm/device.h): ACPI power management, always present ---- */

#define SNAP_ID_ACPI SNAP_FOURCC('A', 'C', 'P', 'I') /* its snapshot section */

static void *acpi_pm_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	struct irq_line sci = { .set = ctx->set_irq, .opaque = ctx->irq_opaque, .gsi = ACPI_SCI_IRQ };

	return acpi_pm_create(sci, ctx->events.poweroff, ctx->events.opaque, NULL, NULL);
}

VM_DEVICE_ADAPTERS(acpi_pm, acpi_pm_destroy, acpi_pm_save, acpi_pm_restore)

static const struct vm_device_ports acpi_pm_ports[] = { { ACPI_PM_BASE_PORT, ACPI_PM_NR_PORTS, acpi_pm_io }, { 0 } };

const struct vm_device_type acpi_pm_device_type = {
	.name = "acpi-pm",
	.count = vm_device_count_one,
	.create = acpi_pm_new,
	.ports = acpi_pm_ports,
	.destroy = acpi_pm_destroy_dev,
	.section = SNAP_ID_ACPI,
	.codec = &acpi_pm_state_codec,
	.save = acpi_pm_save_dev,
	.restore = acpi_pm_restore_dev,
};

/* ---- snapshot state ---- */

void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st)
{
	uint64_t now;

	pthread_mutex_lock(&pm->lock);
	now = acpi_pm_now(pm);
	memset(st, 0, sizeof(*st));
	st->sts = pm->sts;
	st->en = pm->en;
	st->slp_typ = pm->slp_typ;
	st->powered_off = pm->powered_off;
	st->sci_level = pm->sci_level != 0;
	st->timer_ns = now - pm->start_ns;
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *st)
{
	uint64_t now;

	pthread_mutex_lock(&pm->lock);
	now = acpi_pm_now(pm);
	pm->sts = st->sts;
	pm->en = st->en;
	pm->slp_typ = st->slp_typ;
	pm->powered_off = st->powered_off;
	pm->start_ns = now - st->timer_ns; /* modulo 2^64, as acpi_pm_ticks subtracts it */
	pm->sci_level = 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* What a table cannot say: only bits the registers hold, and the SCI level the registers imply. */
static int acpi_pm_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct acpi_pm_state *st = p;

	if ((st->en & ~PM1_EN_WRITABLE) || (st->slp_typ & ~CNT_SLP_TYP_MASK)) {
		errmsg_set(err, err_size,
			   "ACPI PM state: en 0x%04x or slp_typ 0x%04x has bits the registers cannot hold", st->en,
			   st->slp_typ);
		return -EINVAL;
	}
	if (st->sci_level != ((st->sts & st->en & PM1_SCI_EVENTS) != 0)) {
		errmsg_set(err, err_size, "ACPI PM state: sci_level %d, but PM1 status and enable say %d",
			   st->sci_level, !st->sci_level);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field acpi_pm_state_fields[] = {
	CODEC_UINT(struct acpi_pm_state, sts, 2, 1),
	CODEC_UINT(struct acpi_pm_state, en, 2, 1),
	CODEC_UINT(struct acpi_pm_state, slp_typ, 2, 1),
	CODEC_BOOL(struct acpi_pm_state, powered_off, 1),
	CODEC_BOOL(struct acpi_pm_state, sci_level, 1),
	CODEC_UINT(struct acpi_pm_state, timer_ns, 8, 1),
};

const struct codec_table acpi_pm_state_codec =
	CODEC_TABLE(struct acpi_pm_state, "ACPI PM state", 1, 1, acpi_pm_state_fields, acpi_pm_state_check);
