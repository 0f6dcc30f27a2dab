// SPDX-License-Identifier: MIT
/*
 * Intel 8042 keyboard controller with an AT (MF2) keyboard and no AUX device. Commands follow the IBM
 * PC/AT and PS/2 technical references ("Keyboard/Auxiliary Device Controller", "Keyboard and Auxiliary
 * Device"); the answers are chosen so that Linux's i8042 driver (drivers/input/serio/i8042.c) finds a
 * working controller and keyboard at once and decides there is no AUX port:
 *
 *  - 0xD3 (write AUX output buffer, the "AUX loop") is not implemented, as on an AT-type controller:
 *    the parameter byte then goes to the keyboard, which rejects it (0xFE, not a command), and
 *    i8042_check_aux() sees a reply without the AUX-data status bit and fails the loop test without
 *    waiting for a timeout;
 *  - 0xA9 (AUX interface test) answers 0x02, "clock line stuck high" - what an empty PS/2 socket with
 *    its pull-ups reads as. Linux accepts 0x00, 0xFA and 0xFF as a working port and treats any other
 *    answer after a failed loop test as "no AUX port" (quietly, no message);
 *  - the keyboard answers every command at once (ACK 0xFA, its ID 0xAB 0x83, self-test 0xAA), so
 *    atkbd's probe waits for nothing, and it types: i8042_send_ctrl_alt_del() is Firecracker's
 *    SendCtrlAltDel, which a Linux guest with atkbd and the VT keyboard turns into a reboot.
 *
 * The keyboard speaks scan code set 2; with the command byte's translation bit set (the firmware
 * default) the controller turns it into set 1 on the way, as a real 8042 does. The output buffer holds
 * one byte, as on the chip; the keyboard's further bytes wait in a small queue and move into the
 * buffer as the guest reads it, one interrupt each. A controller reply overwrites what is unread.
 */
#include "devices/legacy/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

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

/* Keyboard commands and answers (PS/2 keyboard reference, "Commands"); scan code set 2 bytes. */
#define KBD_CMD_SET_LEDS 0xed
#define KBD_CMD_ECHO 0xee
#define KBD_CMD_SCANCODE_SET 0xf0
#define KBD_CMD_GET_ID 0xf2
#define KBD_CMD_TYPEMATIC 0xf3
#define KBD_CMD_RESEND 0xfe
#define KBD_CMD_RESET 0xff
#define KBD_ACK 0xfa
#define KBD_RESEND 0xfe
#define KBD_BAT_OK 0xaa
#define KBD_ID_0 0xab      /* MF2 keyboard */
#define KBD_ID_1 0x83
#define KBD_SET2_BREAK 0xf0 /* set 2: the next code is a key release */
#define KBD_SET2_EXTENDED 0xe0
#define KBD_SET2_LCTRL 0x14
#define KBD_SET2_LALT 0x11
#define KBD_SET2_DELETE 0x71 /* after KBD_SET2_EXTENDED */

/* Keyboard bytes that can wait behind the output buffer: Firecracker's i8042 buffer size. */
#define KBD_QUEUE_SIZE 16

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

	/* The keyboard: bytes (after translation) waiting for the output buffer, oldest at kbd_head. */
	uint8_t kbd_queue[KBD_QUEUE_SIZE];
	unsigned int kbd_head, kbd_len;
	uint8_t kbd_param_for; /* a command waiting for its parameter byte (0xED, 0xF0, 0xF3), or 0 */
	uint8_t kbd_last;      /* the last byte the keyboard sent, for its resend command */
	bool xlate_break;      /* translation swallowed a set-2 break prefix: the next code gets bit 7 */
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

/* Drop what the keyboard had queued, and an unread byte in the output buffer. */
static void kbd_flush(struct i8042 *dev)
{
	dev->kbd_head = dev->kbd_len = 0;
	dev->xlate_break = false;
	dev->status &= ~(STR_OBF | STR_AUXDATA);
}

/* A reply from the controller itself: it replaces whatever was waiting to be read. */
static void controller_reply(struct i8042 *dev, uint8_t byte, bool aux)
{
	kbd_flush(dev);
	i8042_reply(dev, byte, aux);
}

/*
 * The controller's set 2 -> set 1 translation (IBM PS/2 reference, "Scan Code Translation") for the
 * codes this keyboard sends; bytes from 0x80 up (prefixes, ACK, BAT, ID) pass unchanged but for the
 * ID's 0x83, and a code with no entry here passes as it is.
 */
static uint8_t xlate_set2(uint8_t code)
{
	static const struct {
		uint8_t set2, set1;
	} table[] = {
		{ KBD_SET2_LCTRL, 0x1d }, { KBD_SET2_LALT, 0x38 }, { KBD_SET2_DELETE, 0x53 }, { KBD_ID_1, 0x41 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].set2 == code)
			return table[i].set1;
	return code;
}

/*
 * A byte from the keyboard, through the controller's translation when the command byte asks for it:
 * into the output buffer (with IRQ 1) when it is free, else queued. False when the queue is full.
 */
static bool kbd_send(struct i8042 *dev, uint8_t byte)
{
	dev->kbd_last = byte;
	if (dev->ctr & CTR_XLATE) {
		if (byte == KBD_SET2_BREAK) {
			dev->xlate_break = true;
			return true;
		}
		byte = (uint8_t)(xlate_set2(byte) | (dev->xlate_break ? 0x80 : 0));
		dev->xlate_break = false;
	}
	if (!(dev->status & STR_OBF) && !dev->kbd_len) {
		i8042_reply(dev, byte, false);
		return true;
	}
	if (dev->kbd_len == KBD_QUEUE_SIZE)
		return false;
	dev->kbd_queue[(dev->kbd_head + dev->kbd_len) % KBD_QUEUE_SIZE] = byte;
	dev->kbd_len++;
	return true;
}

/* The guest read the output buffer: the keyboard's next byte, if any, takes its place. */
static void kbd_refill(struct i8042 *dev)
{
	uint8_t byte;

	if (!dev->kbd_len || (dev->status & STR_OBF))
		return;
	byte = dev->kbd_queue[dev->kbd_head];
	dev->kbd_head = (dev->kbd_head + 1) % KBD_QUEUE_SIZE;
	dev->kbd_len--;
	i8042_reply(dev, byte, false);
}

/* A byte the guest sent to the keyboard (data port, no controller command pending). */
static void kbd_receive(struct i8042 *dev, uint8_t val)
{
	uint8_t param_for = dev->kbd_param_for;

	/* A keyboard clears its output when the host sends it something. */
	kbd_flush(dev);
	dev->kbd_param_for = 0;
	if (param_for) {
		kbd_send(dev, KBD_ACK);
		/* Scan code set 0 is "report the set in use": always set 2 (with the controller translating). */
		if (param_for == KBD_CMD_SCANCODE_SET && val == 0)
			kbd_send(dev, 0x02);
		return;
	}
	switch (val) {
	case KBD_CMD_SET_LEDS:
	case KBD_CMD_SCANCODE_SET:
	case KBD_CMD_TYPEMATIC:
		dev->kbd_param_for = val;
		kbd_send(dev, KBD_ACK);
		break;
	case KBD_CMD_ECHO:
		kbd_send(dev, KBD_CMD_ECHO);
		break;
	case KBD_CMD_GET_ID:
		kbd_send(dev, KBD_ACK);
		kbd_send(dev, KBD_ID_0);
		kbd_send(dev, KBD_ID_1);
		break;
	case KBD_CMD_RESEND:
		kbd_send(dev, dev->kbd_last);
		break;
	case KBD_CMD_RESET:
		kbd_send(dev, KBD_ACK);
		kbd_send(dev, KBD_BAT_OK);
		break;
	default:
		if (val >= 0xf4) {
			/* Enable, disable, defaults, the set-3 key type commands: nothing to keep. */
			kbd_send(dev, KBD_ACK);
			break;
		}
		/* Not a command (0xEF, 0xF1, or a stray byte such as the AUX loop's): "resend". */
		kbd_send(dev, KBD_RESEND);
		break;
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
		controller_reply(dev, dev->ctr, false);
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
		controller_reply(dev, REPLY_CLOCK_STUCK_HIGH, false);
		break;
	case 0xaa: /* controller self-test; a passing test sets the system flag */
		i8042_set_ctr(dev, dev->ctr | CTR_SYS);
		controller_reply(dev, REPLY_SELF_TEST_OK, false);
		break;
	case 0xab: /* keyboard interface test: the lines themselves are fine */
		controller_reply(dev, REPLY_INTERFACE_OK, false);
		break;
	case 0xad: /* disable keyboard interface */
		i8042_set_ctr(dev, dev->ctr | CTR_KBDDIS);
		break;
	case 0xae: /* enable keyboard interface */
		i8042_set_ctr(dev, dev->ctr & ~CTR_KBDDIS);
		break;
	case 0xd0: /* read output port */
		controller_reply(dev, dev->outport, false);
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
		controller_reply(dev, val, false);
		break;
	case PENDING_WRITE_AUX:
		/* Nothing on the AUX port: the controller gives up sending and reports a NAK from it. */
		controller_reply(dev, REPLY_NAK, true);
		break;
	case PENDING_NONE:
		kbd_receive(dev, val);
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

/* ---- the device type (vmm/device.h): the keyboard controller, always present ---- */

static void *i8042_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	struct irq_line kbd = { .set = ctx->set_irq, .opaque = ctx->irq_opaque, .gsi = I8042_KBD_IRQ };
	struct irq_line aux = { .set = ctx->set_irq, .opaque = ctx->irq_opaque, .gsi = I8042_AUX_IRQ };

	return i8042_create(kbd, aux, ctx->events.reset, ctx->events.opaque);
}

VM_DEVICE_ADAPTERS(i8042, i8042_destroy, i8042_save, i8042_restore)

static const struct vm_device_ports i8042_ports[] = {
	{ I8042_DATA_PORT, 1, i8042_data_io },
	{ I8042_COMMAND_PORT, 1, i8042_command_io },
	{ 0 },
};

const struct vm_device_type i8042_device_type = {
	.name = "i8042",
	.count = vm_device_count_one,
	.create = i8042_new,
	.ports = i8042_ports,
	.destroy = i8042_destroy_dev,
	.section = SNAP_ID_I8042,
	.codec = &i8042_state_codec,
	.save = i8042_save_dev,
	.restore = i8042_restore_dev,
};

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
			kbd_refill(dev);
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

int i8042_send_ctrl_alt_del(struct i8042 *dev)
{
	/* Press Ctrl, Alt, Delete; release them in the reverse order (set 2). */
	static const uint8_t keys[] = {
		KBD_SET2_LCTRL, KBD_SET2_LALT, KBD_SET2_EXTENDED, KBD_SET2_DELETE,
		KBD_SET2_EXTENDED, KBD_SET2_BREAK, KBD_SET2_DELETE, KBD_SET2_BREAK, KBD_SET2_LALT,
		KBD_SET2_BREAK, KBD_SET2_LCTRL,
	};
	int ret = 0;

	pthread_mutex_lock(&dev->lock);
	/* All or nothing: translation only ever shortens the sequence, so the set-2 length is enough. */
	if (KBD_QUEUE_SIZE - dev->kbd_len < sizeof(keys)) {
		ret = -ENOSPC;
	} else {
		for (size_t i = 0; i < sizeof(keys); i++)
			kbd_send(dev, keys[i]);
	}
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

/* ---- snapshot state ---- */

_Static_assert(I8042_KBD_QUEUE_SIZE == KBD_QUEUE_SIZE, "keyboard queue");

void i8042_save(struct i8042 *dev, struct i8042_state *st)
{
	pthread_mutex_lock(&dev->lock);
	memset(st, 0, sizeof(*st));
	st->status = dev->status;
	st->ctr = dev->ctr;
	st->outport = dev->outport;
	st->obuf = dev->obuf;
	st->pending = (uint8_t)dev->pending;
	st->kbd_len = (uint8_t)dev->kbd_len;
	for (unsigned int i = 0; i < dev->kbd_len; i++)
		st->kbd_queue[i] = dev->kbd_queue[(dev->kbd_head + i) % KBD_QUEUE_SIZE];
	st->kbd_param_for = dev->kbd_param_for;
	st->kbd_last = dev->kbd_last;
	st->xlate_break = dev->xlate_break;
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
	dev->kbd_head = 0;
	dev->kbd_len = st->kbd_len <= KBD_QUEUE_SIZE ? st->kbd_len : KBD_QUEUE_SIZE;
	memcpy(dev->kbd_queue, st->kbd_queue, dev->kbd_len);
	dev->kbd_param_for = st->kbd_param_for;
	dev->kbd_last = st->kbd_last;
	dev->xlate_break = st->xlate_break;
	pthread_mutex_unlock(&dev->lock);
}

/* What a table cannot say: the pending and keyboard commands this controller knows; IBF never set. */
static int i8042_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct i8042_state *st = p;

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
	if (st->kbd_param_for && st->kbd_param_for != KBD_CMD_SET_LEDS && st->kbd_param_for != KBD_CMD_SCANCODE_SET &&
	    st->kbd_param_for != KBD_CMD_TYPEMATIC) {
		errmsg_set(err, err_size, "i8042 state: kbd_param_for 0x%02x is no keyboard command with a parameter",
			   st->kbd_param_for);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field i8042_state_fields[] = {
	CODEC_UINT(struct i8042_state, status, 1, 1),
	CODEC_UINT(struct i8042_state, ctr, 1, 1),
	CODEC_UINT(struct i8042_state, outport, 1, 1),
	CODEC_UINT(struct i8042_state, obuf, 1, 1),
	CODEC_UINT(struct i8042_state, pending, 1, 1),
	CODEC_RANGE(struct i8042_state, kbd_len, 1, 1, 0, I8042_KBD_QUEUE_SIZE),
	CODEC_UINT_VARRAY(struct i8042_state, kbd_queue, kbd_len, 1, 1),
	CODEC_UINT(struct i8042_state, kbd_param_for, 1, 1),
	CODEC_UINT(struct i8042_state, kbd_last, 1, 1),
	CODEC_BOOL(struct i8042_state, xlate_break, 1),
};

const struct codec_table i8042_state_codec =
	CODEC_TABLE(struct i8042_state, "i8042 state", 1, 1, i8042_state_fields, i8042_state_check);
