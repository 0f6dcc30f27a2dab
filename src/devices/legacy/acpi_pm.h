/* SPDX-License-Identifier: MIT */
/*
 * ACPI fixed-hardware power management registers in I/O space (ACPI 6.4 s4.8 "ACPI Hardware
 * Features"): the PM1a event block (PM1_STS, PM1_EN), the PM1a control block (PM1_CNT: SCI_EN,
 * SLP_TYP, SLP_EN) and the PM timer. Together with the FADT (arch/x86/acpi.c) and the \_S5 object
 * of the DSDT they let a guest power off through ACPI, and kiln press a fixed-feature power button.
 *
 * Ports, as QEMU's PIIX4/ICH9 firmware places them (0x600 is clear of every other kiln port):
 *   0x600-0x603  PM1a event block: PM1_STS (0x600, 16 bits), PM1_EN (0x602, 16 bits)
 *   0x604-0x605  PM1a control block: PM1_CNT
 *   0x606-0x607  unused (reads all-ones)
 *   0x608-0x60b  PM timer: 32 bits (FADT TMR_VAL_EXT) at 3.579545 MHz
 * The SCI is ISA IRQ 9, level-triggered, active high (the MADT says so with an override).
 */
#ifndef KILN_DEVICES_LEGACY_ACPI_PM_H
#define KILN_DEVICES_LEGACY_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/irq.h"
#include "vmm/snapshot_file.h"

#define ACPI_PM_BASE_PORT 0x600
#define ACPI_PM_NR_PORTS 12
#define ACPI_PM1A_EVT_PORT 0x600
#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1A_CNT_PORT 0x604
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_PORT 0x608
#define ACPI_PM_TMR_LEN 4
#define ACPI_PM_TIMER_HZ 3579545
#define ACPI_SCI_IRQ 9
/*
 * SLP_TYP values of the DSDT's \_S0 and \_S5 packages (src/arch/x86/dsdt.asl writes them as literals;
 * tests/unit/test_acpi.c checks the compiled DSDT against these); SLP_EN with \_S5's ends the VM.
 */
#define ACPI_SLP_TYP_S0 0
#define ACPI_SLP_TYP_S5 5

/* Monotonic time in nanoseconds; tests inject a fake clock. */
typedef uint64_t (*acpi_pm_clock_fn)(void *opaque);
/* The guest entered S5: stop the VM. Called once, on the vCPU thread that wrote SLP_EN, no lock held. */
typedef void (*acpi_pm_poweroff_fn)(void *opaque);

struct acpi_pm;

/*
 * Create the device. `sci` is the SCI's interrupt line (GSI ACPI_SCI_IRQ), driven as a level: high
 * while PM1_STS & PM1_EN has a bit set. `clock` may be NULL for CLOCK_MONOTONIC; the PM timer counts
 * from 0 at creation. Returns NULL with errno on failure.
 */
struct acpi_pm *acpi_pm_create(struct irq_line sci, acpi_pm_poweroff_fn poweroff, void *poweroff_opaque,
			       acpi_pm_clock_fn clock, void *clock_opaque);
void acpi_pm_destroy(struct acpi_pm *pm);

/*
 * Bus handler for ports ACPI_PM_BASE_PORT..+ACPI_PM_NR_PORTS-1 (ACPI 6.4 s4.8.3.1 PM1 event
 * grouping, s4.8.3.2 PM1 control grouping, s4.8.3.3 power management timer). Any access size at any
 * offset: each byte goes to the register it falls in; bytes past the block read all-ones and are
 * dropped on writes. PM1_STS bits are write-1-to-clear; PM1_CNT reads SCI_EN as 1 (ACPI is always
 * enabled: the FADT has no SMI_CMD); SLP_EN with SLP_TYP == ACPI_SLP_TYP_S5 calls `poweroff` once,
 * other sleep types are ignored (rate-limited log). The timer is read-only. Thread-safe.
 */
void acpi_pm_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Press the fixed-feature power button (ACPI 6.4 s4.8.2.2.1.1): set PWRBTN_STS and raise the SCI if
 * the guest enabled PWRBTN_EN. Returns whether it had: false means no OS driver is listening (no
 * ACPI button driver yet, or none at all), so the press cannot shut the guest down. Thread-safe.
 */
bool acpi_pm_press_power_button(struct acpi_pm *pm);

/* The PM timer's value now (what a read of ACPI_PM_TMR_PORT returns), for tests. */
uint32_t acpi_pm_timer(struct acpi_pm *pm);

/*
 * Snapshot state (section ACPI): PM1 status, enable and SLP_TYP, whether S5 was entered, the SCI level
 * and the PM timer's count in nanoseconds (restored, the timer goes on from where it was).
 */

struct acpi_pm_state {
	uint16_t sts, en, slp_typ;
	bool powered_off;
	bool sci_level;
	uint64_t timer_ns;              /* time the PM timer has counted, ns */
};

void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st);

/*
 * Load a decoded state. The SCI (level-triggered) is driven again if the state has it high, so the
 * irqchip's line and the device agree.
 */
void acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *st);

/*
 * The ACPI section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): PM1_STS,
 * PM1_EN, SLP_TYP (le16 each), S5 entered, SCI level, the PM timer's count in ns (le64). Decoding
 * refuses bits the registers do not hold and an SCI level the registers do not imply.
 */
extern const struct codec_table acpi_pm_state_codec;

/* The device type (vmm/device.h): ACPI PM. */
struct vm_device_type;
extern const struct vm_device_type acpi_pm_device_type;

#endif
