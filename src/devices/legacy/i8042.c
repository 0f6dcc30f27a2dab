// SPDX-License-Identifier: MIT
/*
 * Intel 8042 keyboard controller with nothing plugged in. Commands follow the IBM PC/AT and PS/2
 * technical references ("Keyboard/Auxiliary Device Controller"); the answers are chosen so that
 * Linux's i8042 driver (drivers/input/serio/i8042.c) finds a working controller, decides there is no
 * AUX port, and atkbd's probe of the keyboard port fails at once:
 *
 *  - 0xD3 (write AUX output buffer, the "AUX loop") is not implemented, as on an AT-type controller:
 *    the parameter byte then goes to the keyboard, which NAKs it, and i8042_check_aux() sees a reply
 *    without the AUX-data status bit and fails the loop test without waiting for a timeout;
 *  - 0xA9 (AUX interface test) answers 0x02, "clock line stuck high" - what an empty PS/2 socket with
 *    its pull-ups reads as. Linux accepts 0x00, 0xFA and 0xFF as a working port and treats any other
 *    answer after a failed loop test as "no AUX port" (quietly, no message);
 *  - every byte sent to the keyboard is answered with 0xFE (NAK/resend): libps2 retries once and gives
 *    up, so atkbd_probe() fails within microseconds instead of waiting out its ACK timeouts.
 *
 * The output buffer holds one byte, as on the chip; a new reply overwrites an unread one.
 */
#include "devices/legacy/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

/* Status register (read at 0x64). */
#define STR_OBF 0x01     /* output buffer full */
#define STR_IBF 0x02     /* input buffer full: never, commands complete at once */
#define STR_SYS 0x04     /* system flag: mirrors CTR bit 2 */
#define STR_CMD 0x08     /* last write was to 0x64 (command) rather than 0x60 (data) */
#define STR_KEYLOCK 0x10 /* 1 = keyboard not inhibited; 0 makes Linux warn "Keylock active" */
#define STR_AUXDATA 0x20 /* the byte in the output buffer came from the AUX port */

/* Controller command byte ("CTR"). */
#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40
/* What firmware leaves: translation on, system flag set, keyboard interrupt on, AUX disabled. */
#define CTR_DEFAULT (CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT)

/* Output port (0xD0/0xD1). Bit 0 drives the CPU reset line, active low; bit 1 is the A20 gate. */
#define OUTPORT_RESET_N 0x01
#define OUTPORT_A20 0x02
#define OUTPORT_DEFAULT 0xcf /* reset inactive, A20 on, buffers empty, clock/data lines high */

#define REPLY_SELF_TEST_OK 0x55
#define REPLY_INTERFACE_OK 0x00
#define REPLY_CLOCK_STUCK_HIGH 0x02
#define REPLY_NAK 0xfe

/* The command waiting for its parameter byte at 0x60, if any. */
enum i8042_pending {
	PENDING_NONE = 0,
	PENDING_WRITE_CTR = 0x60,
	PENDING_WRITE_OUTPORT = 0xd1,
	PENDING_WRITE_KBD_OBUF = 0xd2,
	PENDING_WRITE_AUX = 0xd4,
};

struct i8042 {
	pthread_mutex_t lock;
	struct irq_line kbd_irq, aux_irq;
	i8042_reset_fn reset;
	void *reset_opaque;

	uint8_t status;
	uint8_t ctr;
	uint8_t outport;
	uint8_t obuf; /* last byte placed in the output buffer; reads again while OBF is clear */
	enum i8042_pending pending;
	struct ratelimit bad_access_rl;
};

/* Place a reply in the output buffer and interrupt if the command byte asks for it (edge: pulse). */
static void i8042_reply(struct i8042 *dev, uint8_t byte, bool aux)
{
	dev->obuf = byte;
	dev->status |= STR_OBF;
	if (aux) {
		dev->status |= STR_AUXDATA;
		if (dev->ctr & CTR_AUXINT) {
			irq_line_set(&dev->aux_irq, 1);
			irq_line_set(&dev->aux_irq, 0);
		}
	} else {
		dev->status &= ~STR_AUXDATA;
		if (dev->ctr & CTR_KBDINT) {
			irq_line_set(&dev->kbd_irq, 1);
			irq_line_set(&dev->kbd_irq, 0);
		}
	}
}

static void i8042_set_ctr(struct i8042 *dev, uint8_t ctr)
{
	dev->ctr = ctr;
	dev->status = (dev->status & ~STR_SYS) | (ctr & CTR_SYS);
}

/* Returns true when the write drives the CPU reset line (output port bit 0 low). */
static bool i8042_write_outport(struct i8042 *dev, uint8_t val)
{
	dev->outport = val | OUTPORT_RESET_N; /* the line is pulsed, not held: the machine restarts */
	return !(val & OUTPORT_RESET_N);
}

/* A command byte written to 0x64. Returns true when it resets the machine. */
static bool i8042_command(struct i8042 *dev, uint8_t cmd)
{
	dev->pending = PENDING_NONE;
	switch (cmd) {
	case 0x20: /* read CTR (0x20-0x3f read controller RAM; only byte 0, the CTR, means anything) */
		i8042_reply(dev, dev->ctr, false);
		break;
	case 0x60: /* write CTR: next data byte */
	case 0xd1: /* write output port: next data byte */
	case 0xd2: /* write keyboard output buffer: next data byte comes back as if from the keyboard */
	case 0xd4: /* write to the AUX device: next data byte */
		dev->pending = (enum i8042_pending)cmd;
		break;
	case 0xa7: /* disable AUX interface */
		i8042_set_ctr(dev, dev->ctr | CTR_AUXDIS);
		break;
	case 0xa8: /* enable AUX interface */
		i8042_set_ctr(dev, dev->ctr & ~CTR_AUXDIS);
		break;
	case 0xa9: /* AUX interface test */
		i8042_reply(dev, REPLY_CLOCK_STUCK_HIGH, false);
		break;
	case 0xaa: /* controller self-test; a passing test sets the system flag */
		i8042_set_ctr(dev, dev->ctr | CTR_SYS);
		i8042_reply(dev, REPLY_SELF_TEST_OK, false);
		break;
	case 0xab: /* keyboard interface test: the lines themselves are fine */
		i8042_reply(dev, REPLY_INTERFACE_OK, false);
		break;
	case 0xad: /* disable keyboard interface */
		i8042_set_ctr(dev, dev->ctr | CTR_KBDDIS);
		break;
	case 0xae: /* enable keyboard interface */
		i8042_set_ctr(dev, dev->ctr & ~CTR_KBDDIS);
		break;
	case 0xd0: /* read output port */
		i8042_reply(dev, dev->outport, false);
		break;
	default:
		/* 0xF0-0xFF pulse output port bits 3:0 low for 6 us; bit 0 is the CPU reset line. */
		if (cmd >= 0xf0)
			return !(cmd & 0x01);
		/* Anything else (0xD3 included, see the top of the file) is ignored, as unknown commands are. */
		break;
	}
	return false;
}

/* A data byte written to 0x60. Returns true when it resets the machine. */
static bool i8042_data(struct i8042 *dev, uint8_t val)
{
	enum i8042_pending pending = dev->pending;

	dev->pending = PENDING_NONE;
	switch (pending) {
	case PENDING_WRITE_CTR:
		i8042_set_ctr(dev, val);
		break;
	case PENDING_WRITE_OUTPORT:
		return i8042_write_outport(dev, val);
	case PENDING_WRITE_KBD_OBUF:
		i8042_reply(dev, val, false);
		break;
	case PENDING_WRITE_AUX:
		/* Nothing on the AUX port: the controller gives up sending and reports a NAK from it. */
		i8042_reply(dev, REPLY_NAK, true);
		break;
	case PENDING_NONE:
		/* A byte for the keyboard, which is absent: NAK it so the driver gives up at once. */
		i8042_reply(dev, REPLY_NAK, false);
		break;
	}
	return false;
}

struct i8042 *i8042_create(struct irq_line kbd_irq, struct irq_line aux_irq, i8042_reset_fn reset, void *opaque)
{
	struct i8042 *dev = calloc(1, sizeof(*dev));
	int err;

	if (!dev)
		return NULL;
	err = pthread_mutex_init(&dev->lock, NULL);
	if (err) {
		free(dev);
		errno = err;
		return NULL;
	}
	dev->kbd_irq = kbd_irq;
	dev->aux_irq = aux_irq;
	dev->reset = reset;
	dev->reset_opaque = opaque;
	dev->status = STR_KEYLOCK;
	i8042_set_ctr(dev, CTR_DEFAULT);
	dev->outport = OUTPORT_DEFAULT;
	dev->bad_access_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	return dev;
}

void i8042_destroy(struct i8042 *dev)
{
	if (!dev)
		return;
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

/* Common entry for both ports; `port` says which (I8042_DATA_PORT or I8042_COMMAND_PORT). */
static void i8042_io(struct i8042 *dev, unsigned int port, uint64_t offset, uint8_t *data, uint32_t len,
		     bool is_write)
{
	i8042_reset_fn reset_fn;
	void *reset_opaque;
	bool reset = false;

	pthread_mutex_lock(&dev->lock);
	if (len != 1 || offset != 0) {
		if (ratelimit_ok(&dev->bad_access_rl))
			pr_debug("i8042: ignoring %u-byte %s at port 0x%x+%llu", len, is_write ? "write" : "read",
				 port, (unsigned long long)offset);
		if (!is_write)
			memset(data, 0xff, len);
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	if (port == I8042_DATA_PORT) {
		if (is_write) {
			dev->status &= ~STR_CMD;
			reset = i8042_data(dev, data[0]);
		} else {
			data[0] = dev->obuf;
			dev->status &= ~(STR_OBF | STR_AUXDATA);
		}
	} else {
		if (is_write) {
			dev->status |= STR_CMD;
			reset = i8042_command(dev, data[0]);
		} else {
			data[0] = dev->status;
		}
	}
	reset_fn = reset ? dev->reset : NULL;
	reset_opaque = dev->reset_opaque;
	pthread_mutex_unlock(&dev->lock);
	/* Outside the lock, and without touching `dev` again: the reset path may re-create devices. */
	if (reset_fn)
		reset_fn(reset_opaque);
}

void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	i8042_io(opaque, I8042_DATA_PORT, offset, data, len, is_write);
}

void i8042_command_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	i8042_io(opaque, I8042_COMMAND_PORT, offset, data, len, is_write);
}

/* ---- snapshot state ---- */

void i8042_save(struct i8042 *dev, struct i8042_state *st)
{
	pthread_mutex_lock(&dev->lock);
	st->status = dev->status;
	st->ctr = dev->ctr;
	st->outport = dev->outport;
	st->obuf = dev->obuf;
	st->pending = (uint8_t)dev->pending;
	pthread_mutex_unlock(&dev->lock);
}

void i8042_restore(struct i8042 *dev, const struct i8042_state *st)
{
	pthread_mutex_lock(&dev->lock);
	dev->status = st->status;
	dev->ctr = st->ctr;
	dev->outport = st->outport;
	dev->obuf = st->obuf;
	dev->pending = (enum i8042_pending)st->pending;
	pthread_mutex_unlock(&dev->lock);
}

void i8042_state_encode(const struct i8042_state *st, struct snap_enc *e)
{
	snap_put_u8(e, st->status);
	snap_put_u8(e, st->ctr);
	snap_put_u8(e, st->outport);
	snap_put_u8(e, st->obuf);
	snap_put_u8(e, st->pending);
}

int i8042_state_decode(struct i8042_state *st, const void *data, size_t len, uint32_t version, char *err,
		       size_t err_size)
{
	struct snap_dec d;

	memset(st, 0, sizeof(*st));
	if (version != I8042_STATE_VERSION) {
		errmsg_set(err, err_size, "i8042 state version %u is not known to this kiln (%u)", version,
			   I8042_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	st->status = snap_get_u8(&d);
	st->ctr = snap_get_u8(&d);
	st->outport = snap_get_u8(&d);
	st->obuf = snap_get_u8(&d);
	st->pending = snap_get_u8(&d);
	if (!snap_dec_done(&d)) {
		errmsg_set(err, err_size, "i8042 state: %zu bytes, not what version %u holds", len, version);
		return -EINVAL;
	}
	switch (st->pending) {
	case PENDING_NONE:
	case PENDING_WRITE_CTR:
	case PENDING_WRITE_OUTPORT:
	case PENDING_WRITE_KBD_OBUF:
	case PENDING_WRITE_AUX:
		break;
	default:
		errmsg_set(err, err_size, "i8042 state: unknown pending command 0x%02x", st->pending);
		return -EINVAL;
	}
	if (st->status & STR_IBF) {
		errmsg_set(err, err_size, "i8042 state: input buffer full, which this controller never is");
		return -EINVAL;
	}
	return 0;
}
