// SPDX-License-Identifier: MIT
/* i8042 keyboard controller with an AT keyboard: commands, status bits, interrupts, reset, Ctrl+Alt+Del. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/legacy/i8042.h"

#define STR_OBF 0x01
#define STR_IBF 0x02
#define STR_SYS 0x04
#define STR_CMD 0x08
#define STR_KEYLOCK 0x10
#define STR_AUXDATA 0x20

struct fake {
	struct i8042 *dev;
	int resets;
	int kbd_edges, aux_edges; /* rising edges seen on IRQ 1 and IRQ 12 */
	int kbd_level, aux_level;
};

static void fake_irq_set(void *opaque, uint32_t gsi, int level)
{
	struct fake *f = opaque;

	if (gsi == 1) {
		if (level && !f->kbd_level)
			f->kbd_edges++;
		f->kbd_level = level;
	} else if (gsi == 12) {
		if (level && !f->aux_level)
			f->aux_edges++;
		f->aux_level = level;
	} else {
		fail_msg("interrupt on unexpected GSI %u", gsi);
	}
}

static void fake_reset(void *opaque)
{
	struct fake *f = opaque;

	f->resets++;
}

static int setup(void **state)
{
	struct fake *f = test_calloc(1, sizeof(*f));
	struct irq_line kbd = { .set = fake_irq_set, .opaque = f, .gsi = 1 };
	struct irq_line aux = { .set = fake_irq_set, .opaque = f, .gsi = 12 };

	f->dev = i8042_create(kbd, aux, fake_reset, f);
	assert_non_null(f->dev);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	i8042_destroy(f->dev);
	test_free(f);
	return 0;
}

static void cmd(struct fake *f, uint8_t c)
{
	i8042_command_io(f->dev, 0, &c, 1, true);
}

static void wdata(struct fake *f, uint8_t v)
{
	i8042_data_io(f->dev, 0, &v, 1, true);
}

static uint8_t status(struct fake *f)
{
	uint8_t v = 0;

	i8042_command_io(f->dev, 0, &v, 1, false);
	return v;
}

static uint8_t rdata(struct fake *f)
{
	uint8_t v = 0;

	i8042_data_io(f->dev, 0, &v, 1, false);
	return v;
}

/* Read the controller command byte as Linux's i8042_command(I8042_CMD_CTL_RCTR) does. */
static uint8_t read_ctr(struct fake *f)
{
	cmd(f, 0x20);
	assert_true(status(f) & STR_OBF);
	return rdata(f);
}

static void write_ctr(struct fake *f, uint8_t ctr)
{
	cmd(f, 0x60);
	wdata(f, ctr);
}

static void test_initial_status(void **state)
{
	struct fake *f = *state;
	uint8_t s = status(f);

	assert_int_equal(s & (STR_OBF | STR_IBF), 0); /* nothing to read, ready for input */
	assert_true(s & STR_SYS);                     /* POST passed */
	assert_true(s & STR_KEYLOCK);                 /* not inhibited: Linux would warn otherwise */
	assert_int_equal(f->resets, 0);
}

static void test_self_test(void **state)
{
	struct fake *f = *state;

	cmd(f, 0xaa);
	assert_int_equal(status(f) & (STR_OBF | STR_IBF | STR_AUXDATA), STR_OBF);
	assert_true(status(f) & STR_CMD); /* the last write went to the command port */
	assert_int_equal(rdata(f), 0x55);
	assert_int_equal(status(f) & STR_OBF, 0); /* reading emptied the buffer */
	cmd(f, 0xab);
	assert_int_equal(rdata(f), 0x00); /* keyboard interface test passes */
}

static void test_ctr_read_write(void **state)
{
	struct fake *f = *state;
	uint8_t ctr = read_ctr(f);

	assert_true(ctr & 0x04); /* system flag */
	write_ctr(f, 0x56);
	assert_int_equal(status(f) & STR_CMD, 0); /* the last write went to the data port */
	assert_int_equal(status(f) & STR_OBF, 0); /* writing the CTR produces no reply */
	assert_int_equal(read_ctr(f), 0x56);
	assert_true(status(f) & STR_SYS);
	write_ctr(f, 0x00);
	assert_int_equal(status(f) & STR_SYS, 0); /* SYS mirrors CTR bit 2 */
	/* Keyboard and AUX enable/disable commands flip CTR bits 4 and 5. */
	cmd(f, 0xad);
	assert_int_equal(read_ctr(f), 0x10);
	cmd(f, 0xa7);
	assert_int_equal(read_ctr(f), 0x30);
	cmd(f, 0xae);
	assert_int_equal(read_ctr(f), 0x20);
	cmd(f, 0xa8);
	assert_int_equal(read_ctr(f), 0x00);
}

static void test_reset_command(void **state)
{
	struct fake *f = *state;

	cmd(f, 0xfe);
	assert_int_equal(f->resets, 1);
	cmd(f, 0x20); /* other commands do not reset */
	(void)rdata(f);
	assert_int_equal(f->resets, 1);
}

static void test_pulse_output_lines(void **state)
{
	struct fake *f = *state;
	int expected = 0;

	for (unsigned int c = 0xf0; c <= 0xff; c++) {
		cmd(f, (uint8_t)c);
		if (!(c & 1))
			expected++;
		assert_int_equal(f->resets, expected);
	}
	assert_int_equal(expected, 8);
}

static void test_output_port(void **state)
{
	struct fake *f = *state;

	cmd(f, 0xd0);
	assert_true(rdata(f) & 0x01); /* reset line inactive */
	cmd(f, 0xd1);
	wdata(f, 0xdf); /* A20 on, reset line high: what Linux's real-mode A20 code writes */
	assert_int_equal(f->resets, 0);
	cmd(f, 0xd0);
	assert_int_equal(rdata(f), 0xdf);
	cmd(f, 0xd1);
	wdata(f, 0xde); /* reset line low */
	assert_int_equal(f->resets, 1);
}

static void test_irq1_only_when_enabled(void **state)
{
	struct fake *f = *state;

	write_ctr(f, 0x00); /* KBDINT off */
	cmd(f, 0xaa);
	(void)rdata(f);
	wdata(f, 0xf2);
	(void)rdata(f);
	assert_int_equal(f->kbd_edges, 0);

	write_ctr(f, 0x01); /* KBDINT on */
	cmd(f, 0xaa);
	assert_int_equal(f->kbd_edges, 1);
	assert_int_equal(f->kbd_level, 0); /* an edge: pulsed, not held */
	(void)rdata(f);
	wdata(f, 0xf2); /* a byte for the keyboard: its ACK is another byte, another interrupt */
	assert_int_equal(f->kbd_edges, 2);
	assert_int_equal(rdata(f), 0xfa);
	assert_int_equal(f->kbd_edges, 3); /* the ID's first byte follows once the ACK is read */
	assert_int_equal(rdata(f), 0xab);
	assert_int_equal(rdata(f), 0x83); /* CTR 0x01: no translation */
	assert_int_equal(f->kbd_edges, 4);
	assert_int_equal(status(f) & STR_OBF, 0);
	cmd(f, 0xad); /* commands without a reply do not interrupt */
	write_ctr(f, 0x01);
	assert_int_equal(f->kbd_edges, 4);
	assert_int_equal(f->aux_edges, 0);
}

/* A byte written to the keyboard and the bytes it answers, read back one by one. */
struct kbd_exchange {
	uint8_t send;
	uint8_t nr_reply;
	uint8_t reply[3];
};

static void kbd_exchanges(struct fake *f, const struct kbd_exchange *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		wdata(f, x[i].send);
		for (unsigned int j = 0; j < x[i].nr_reply; j++)
			assert_int_equal(rdata(f), x[i].reply[j]);
	}
}

#define KBD_EXCHANGES(f, x) kbd_exchanges((f), (x), sizeof(x) / sizeof((x)[0]))

/* The keyboard's answers to what atkbd sends while probing and activating it: all at once. */
static void test_keyboard_commands(void **state)
{
	/* SETLEDS and its parameter, typematic rate and its parameter: an ACK each. */
	static const struct kbd_exchange probe[] = {
		{ 0xed, 1, { 0xfa } }, { 0x00, 1, { 0xfa } }, { 0xf3, 1, { 0xfa } }, { 0x20, 1, { 0xfa } },
	};
	static const struct kbd_exchange activate[] = {
		/* Enable, disable, defaults: ACK. Echo: echoed. Reset: ACK and the self-test's 0xAA. */
		{ 0xf4, 1, { 0xfa } }, { 0xf5, 1, { 0xfa } }, { 0xf6, 1, { 0xfa } },
		{ 0xee, 1, { 0xee } },
		{ 0xff, 2, { 0xfa, 0xaa } },
		/* Resend: the last byte again. */
		{ 0xfe, 1, { 0xaa } },
		/* Which scan code set: 2. */
		{ 0xf0, 1, { 0xfa } }, { 0x00, 2, { 0xfa, 0x02 } },
		/* Not a command: "resend" (0xFE), as a real keyboard answers. */
		{ 0xef, 1, { 0xfe } }, { 0x5a, 1, { 0xfe } },
	};
	static const struct kbd_exchange untranslated[] = { { 0xf2, 3, { 0xfa, 0xab, 0x83 } } };
	static const struct kbd_exchange cut_short[] = { { 0xf2, 0, { 0 } }, { 0xee, 1, { 0xee } } };
	struct fake *f = *state;

	/* GETID: ACK and an MF2 keyboard's ID, its 0x83 translated to 0x41 (the firmware's CTR translates). */
	wdata(f, 0xf2);
	assert_int_equal(status(f) & (STR_OBF | STR_AUXDATA), STR_OBF);
	assert_int_equal(rdata(f), 0xfa);
	assert_int_equal(rdata(f), 0xab);
	assert_int_equal(rdata(f), 0x41);
	assert_int_equal(status(f) & STR_OBF, 0);
	KBD_EXCHANGES(f, probe);
	assert_int_equal(status(f) & STR_OBF, 0);
	KBD_EXCHANGES(f, activate);
	/* Without translation, the ID comes as the keyboard sends it. */
	write_ctr(f, 0x05);
	KBD_EXCHANGES(f, untranslated);
	/* A command cuts short an answer not yet read. */
	KBD_EXCHANGES(f, cut_short);
	assert_int_equal(status(f) & STR_OBF, 0);
	/* 0xD2 echoes a byte as if the keyboard had sent it. */
	cmd(f, 0xd2);
	assert_int_equal(status(f) & STR_OBF, 0);
	wdata(f, 0x1c);
	assert_int_equal(status(f) & (STR_OBF | STR_AUXDATA), STR_OBF);
	assert_int_equal(rdata(f), 0x1c);
}

/* Read the bytes the keyboard has for the guest, as Linux's i8042 interrupt handler does: one per IRQ 1. */
static size_t read_keys(struct fake *f, uint8_t *out, size_t max)
{
	size_t n = 0;

	while ((status(f) & STR_OBF) && n < max) {
		assert_int_equal(status(f) & STR_AUXDATA, 0);
		out[n++] = rdata(f);
	}
	return n;
}

static void test_ctrl_alt_del_translated(void **state)
{
	static const uint8_t want[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d }; /* set 1 */
	struct fake *f = *state;
	uint8_t got[32];
	size_t n;

	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), 0);
	assert_int_equal(f->kbd_edges, 1); /* the first byte is in the buffer */
	n = read_keys(f, got, sizeof(got));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(f->kbd_edges, (int)sizeof(want)); /* one interrupt per byte */
	assert_int_equal(f->resets, 0);                   /* the keys reset nothing: the guest decides */
}

static void test_ctrl_alt_del_set2(void **state)
{
	static const uint8_t want[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 };
	struct fake *f = *state;
	uint8_t got[32];

	write_ctr(f, 0x05); /* KBDINT and SYS, no translation: Linux then talks set 2 itself */
	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), 0);
	assert_int_equal(read_keys(f, got, sizeof(got)), sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(f->kbd_edges, (int)sizeof(want));
}

/* A guest that never reads its keyboard: the queue fills, the sequence is refused whole, nothing breaks. */
static void test_ctrl_alt_del_not_read(void **state)
{
	static const uint8_t want[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d };
	struct fake *f = *state;
	uint8_t got[64];

	write_ctr(f, 0x44); /* translation on, IRQ 1 off */
	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), 0);
	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), -ENOSPC);
	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), -ENOSPC);
	assert_int_equal(f->kbd_edges, 0);
	assert_int_equal(read_keys(f, got, sizeof(got)), sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	/* Read: room again. */
	assert_int_equal(i8042_send_ctrl_alt_del(f->dev), 0);
	/* A controller command's reply replaces the keys not yet read (Linux flushes before commands). */
	assert_int_equal(read_ctr(f), 0x44);
	assert_int_equal(status(f) & STR_OBF, 0);
}

static void test_absent_aux(void **state)
{
	struct fake *f = *state;
	uint8_t param;

	/* As i8042_controller_init() leaves it: keyboard disabled, its interrupt off. */
	write_ctr(f, (uint8_t)((read_ctr(f) & ~0x01) | 0x10));
	f->kbd_edges = 0; /* the CTR read itself interrupted: the firmware's CTR enables IRQ 1 */
	/* Linux's i8042_check_aux(): the loop test must fail ... */
	cmd(f, 0xd3);
	wdata(f, 0x5a);
	if (status(f) & STR_OBF) {
		/* A reply without the AUX bit: __i8042_command() returns -1 without reading it. */
		assert_int_equal(status(f) & STR_AUXDATA, 0);
	}
	/* ... and the interface test must answer neither 0x00, 0xfa nor 0xff. */
	cmd(f, 0xa9);
	assert_true(status(f) & STR_OBF);
	param = rdata(f);
	assert_true(param != 0x00 && param != 0xfa && param != 0xff);

	/* A byte for the AUX device is answered by the controller on its behalf, with IRQ 12 if enabled. */
	write_ctr(f, 0x02);
	cmd(f, 0xd4);
	wdata(f, 0xf4);
	assert_int_equal(status(f) & (STR_OBF | STR_AUXDATA), STR_OBF | STR_AUXDATA);
	assert_int_equal(f->aux_edges, 1);
	assert_int_equal(f->kbd_edges, 0);
	assert_int_equal(rdata(f), 0xfe);
	assert_int_equal(status(f) & (STR_OBF | STR_AUXDATA), 0);
}

static void test_unknown_and_hostile(void **state)
{
	struct fake *f = *state;
	uint8_t buf[8] = { 0 };

	for (unsigned int c = 0; c < 0xf0; c++) {
		if (c == 0xd1) /* would take the next byte as the output port */
			continue;
		cmd(f, (uint8_t)c);
		wdata(f, 0xff);
		(void)rdata(f);
		(void)status(f);
	}
	assert_int_equal(f->resets, 0);
	/* A data byte after an unknown command goes to the keyboard, not to a stale command. */
	cmd(f, 0x60);
	cmd(f, 0x12);
	wdata(f, 0x77);
	assert_int_equal(rdata(f), 0xfe);
	assert_int_not_equal(read_ctr(f), 0x77);

	i8042_command_io(f->dev, 0, buf, 2, false);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0xff);
	buf[0] = 0xfe;
	i8042_command_io(f->dev, 0, buf, 4, true); /* not a 1-byte write: not a reset */
	i8042_command_io(f->dev, 1, buf, 1, true);
	i8042_data_io(f->dev, 3, buf, 1, true);
	i8042_data_io(f->dev, 0, buf, 8, false);
	assert_int_equal(f->resets, 0);
	assert_int_equal(status(f) & STR_OBF, 0); /* the ignored write to 0x60 produced no reply */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_initial_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_test, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctr_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pulse_output_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq1_only_when_enabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyboard_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_alt_del_translated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_alt_del_set2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_alt_del_not_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_aux, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_hostile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
