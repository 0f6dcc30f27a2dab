/* SPDX-License-Identifier: MIT */
/*
 * Intel 8042 keyboard controller at I/O 0x60 (data) and 0x64 (status/command), with an AT keyboard
 * and no AUX device. It exists so Linux's i8042 driver probes quietly, so the guest can reset the
 * machine by pulsing the CPU reset line (command 0xFE), the classic PC reboot, and so the host can
 * type Ctrl+Alt+Del (Firecracker's SendCtrlAltDel).
 */
#ifndef KILN_DEVICES_LEGACY_I8042_H
#define KILN_DEVICES_LEGACY_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/irq.h"
#include "vmm/snapshot_file.h"

#define I8042_DATA_PORT 0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12

/*
 * Called (on a vCPU thread, without the device lock held) when the guest resets the machine through the
 * controller: command 0xFE, any 0xF0-0xFF pulse with bit 0 clear, or an output-port write (0xD1)
 * with bit 0 clear.
 */
typedef void (*i8042_reset_fn)(void *opaque);

struct i8042;

/*
 * `kbd_irq` is IRQ 1, `aux_irq` IRQ 12; both are pulsed (1 then 0) when a byte enters the output
 * buffer and the command byte enables that interrupt. Returns NULL with errno on failure.
 */
struct i8042 *i8042_create(struct irq_line kbd_irq, struct irq_line aux_irq, i8042_reset_fn reset, void *opaque);
void i8042_destroy(struct i8042 *dev);

/*
 * Bus handlers: register data_io at 0x60 (len 1) and command_io at 0x64 (len 1). Thread-safe.
 * Commands per the IBM PC/AT and PS/2 technical references, "Keyboard/Auxiliary Device Controller".
 */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void i8042_command_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Type Ctrl+Alt+Del on the keyboard: press Left Ctrl, Left Alt, Delete, then release them (scan code
 * set 2: 14 11 E0 71 E0 F0 71 F0 11 F0 14; set 1 when the controller translates: 1D 38 E0 53 E0 D3 B8
 * 9D), one IRQ 1 per byte as the guest reads them. Linux's keyboard driver (atkbd + the VT keyboard)
 * reboots on it, or signals init when init asked for that. Thread-safe. Returns 0, or -ENOSPC when the
 * keyboard's queue has no room for the whole sequence (the guest is not reading its keyboard).
 */
int i8042_send_ctrl_alt_del(struct i8042 *dev) __attribute__((warn_unused_result));

/*
 * Snapshot state (section I842): the controller's registers, the command waiting for its data byte, and
 * the keyboard: its queued bytes (oldest first), a command waiting for its parameter, its last byte.
 */
#define I8042_KBD_QUEUE_SIZE 16

struct i8042_state {
	uint8_t status, ctr, outport, obuf;
	uint8_t pending;        /* 0 or the command (0x60, 0xd1, 0xd2, 0xd4) waiting for a data byte */
	uint8_t kbd_len;        /* bytes in kbd_queue, at most I8042_KBD_QUEUE_SIZE */
	uint8_t kbd_queue[I8042_KBD_QUEUE_SIZE];
	uint8_t kbd_param_for;  /* 0 or the keyboard command (0xed, 0xf0, 0xf3) waiting for its parameter */
	uint8_t kbd_last;
	bool xlate_break;
};

/* Copy the state out / load a decoded state (no interrupt is raised: replies are pulses). Thread-safe. */
void i8042_save(struct i8042 *dev, struct i8042_state *st);
void i8042_restore(struct i8042 *dev, const struct i8042_state *st);

/*
 * The I842 section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): status, command
 * byte, output port, output buffer, pending command, kbd_len (at most I8042_KBD_QUEUE_SIZE) and that
 * many queued bytes, the keyboard command awaiting a parameter, the last byte sent, the translation
 * state. Decoding refuses commands the controller does not know and a full input buffer.
 */
extern const struct codec_table i8042_state_codec;

/* The device type (vmm/device.h): the i8042. */
struct vm_device_type;
extern const struct vm_device_type i8042_device_type;

#endif
