/* SPDX-License-Identifier: MIT */
/*
 * 8250/16550A UART (the PC's COM1 at I/O 0x3f8, IRQ 4), enough for Linux's 8250 driver with
 * `console=ttyS0`: interrupt-driven output and input. Register model per the National
 * Semiconductor PC16550D data sheet (RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR, DLL/DLM).
 */
#ifndef KILN_DEVICES_LEGACY_SERIAL_H
#define KILN_DEVICES_LEGACY_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/irq.h"
#include "vmm/snapshot_file.h"

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_NR_PORTS 8
/* Bytes from the host side held for the guest: more than a 16550's 16-byte FIFO, so a paste is not lost. */
#define SERIAL_RX_BUFFER 4096

/* Where transmitted bytes go (the console). Called with the device lock held; must not call back in. */
typedef void (*serial_out_fn)(void *opaque, const uint8_t *buf, size_t len);

struct serial;

/*
 * Returns NULL with errno on failure. `irq` is driven as a level, and only when it changes: high while
 * an interrupt enabled in IER is pending (PC16550D, interrupt control table) and MCR.OUT2 is set outside loopback (on a
 * PC, -OUT2 gates the UART onto the ISA IRQ line). A THR write drops and re-raises it, so
 * edge-triggered interrupt controllers see one edge per transmitted byte.
 */
struct serial *serial_create(struct irq_line irq, serial_out_fn out, void *out_opaque);
void serial_destroy(struct serial *s);

/* Bus handler for the 8 ports at the device's base (offset 0..7); 1-byte accesses; thread-safe. */
void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Queue bytes from the host for the guest to read. Returns how many were accepted (0 when full); the
 * caller keeps the rest, so this never signals an overrun (LSR.OE) to the guest. Thread-safe.
 */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/* Free space in the receive buffer, in bytes: the caller stops reading its input while this is 0. */
size_t serial_rx_space(struct serial *s);

/*
 * Snapshot state (section UART, docs/snapshot-format.md): the registers, the receive buffer (oldest
 * byte first) and the level last driven on the interrupt line.
 */
struct serial_state {
	uint8_t ier, fcr, lcr, mcr, lsr_errors, msr, scr, dll, dlm;
	bool thre_pending;
	bool irq_level;
	uint32_t rx_count;              /* bytes in rx, at most SERIAL_RX_BUFFER */
	uint8_t rx[SERIAL_RX_BUFFER];
};

/* Copy the device's state out (thread-safe). */
void serial_save(struct serial *s, struct serial_state *st);

/*
 * Load a decoded state. The interrupt line is not driven: the ISA line is edge-triggered, and the
 * in-kernel irqchip's restored state already holds any edge that was in flight. Thread-safe.
 */
void serial_restore(struct serial *s, const struct serial_state *st);

/*
 * The UART section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): the nine
 * registers, THRE pending, the interrupt line level, rx_count (le32, at most SERIAL_RX_BUFFER) and
 * that many received bytes. Decoding refuses register bits the device cannot hold.
 */
extern const struct codec_table serial_state_codec;

/* The device type (vmm/device.h): COM1. */
struct vm_device_type;
extern const struct vm_device_type serial_device_type;

#endif
