// SPDX-License-Identifier: MIT
/* 16550A UART: register model, loopback, receive path and interrupt behaviour as Linux's 8250 driver uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/legacy/serial.h"

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

struct fake {
	struct serial *s;
	int levels[64]; /* every level the device drove, in order */
	int nr_levels;
	uint32_t last_gsi;
	uint8_t out[8192];
	size_t nr_out;
};

static void fake_irq_set(void *opaque, uint32_t gsi, int level)
{
	struct fake *f = opaque;

	f->last_gsi = gsi;
	if (f->nr_levels < (int)(sizeof(f->levels) / sizeof(f->levels[0])))
		f->levels[f->nr_levels++] = level;
}

static void fake_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct fake *f = opaque;

	for (size_t i = 0; i < len && f->nr_out < sizeof(f->out); i++)
		f->out[f->nr_out++] = buf[i];
}

static int setup(void **state)
{
	struct fake *f = test_calloc(1, sizeof(*f));
	struct irq_line irq = { .set = fake_irq_set, .opaque = f, .gsi = SERIAL_COM1_IRQ };

	f->s = serial_create(irq, fake_out, f);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	serial_destroy(f->s);
	test_free(f);
	return 0;
}

static uint8_t rd(struct fake *f, uint64_t reg)
{
	uint8_t v = 0x5a;

	serial_io(f->s, reg, &v, 1, false);
	return v;
}

static void wr(struct fake *f, uint64_t reg, uint8_t v)
{
	serial_io(f->s, reg, &v, 1, true);
}

/* Write a register and read it straight back, as a driver probing for the UART does. */
static uint8_t wr_rd(struct fake *f, uint64_t reg, uint8_t v)
{
	wr(f, reg, v);
	return rd(f, reg);
}

/* The current level: the last one driven, 0 if none yet. */
static int level(const struct fake *f)
{
	return f->nr_levels ? f->levels[f->nr_levels - 1] : 0;
}

static void test_thr_reaches_out(void **state)
{
	struct fake *f = *state;

	wr(f, THR, 'h');
	wr(f, THR, 'i');
	assert_int_equal(f->nr_out, 2);
	assert_memory_equal(f->out, "hi", 2);
	assert_int_equal(rd(f, LSR) & 0x60, 0x60); /* THRE | TEMT: transmission is instantaneous */
	assert_int_equal(rd(f, LSR) & 0x01, 0);    /* nothing received */
	assert_int_equal(f->nr_levels, 0);         /* no interrupt enabled, none raised */
}

static void test_scratch_and_lcr(void **state)
{
	struct fake *f = *state;

	assert_int_equal(wr_rd(f, SCR, 0xa5), 0xa5);
	assert_int_equal(wr_rd(f, SCR, 0x5a), 0x5a);
	assert_int_equal(wr_rd(f, LCR, 0x1b), 0x1b);
}

static void test_ier_probe(void **state)
{
	struct fake *f = *state;

	/* Linux's autoconfig: IER keeps its low nibble and reads 0 in bits 7:4. */
	assert_int_equal(wr_rd(f, IER, 0), 0);
	assert_int_equal(wr_rd(f, IER, 0xff), 0x0f);
	wr(f, IER, 0);
}

static void test_divisor_latch(void **state)
{
	struct fake *f = *state;

	wr(f, LCR, 0x83); /* DLAB, 8N1 */
	wr(f, DLL, 0x01);
	wr(f, DLM, 0x02);
	assert_int_equal(rd(f, DLL), 0x01);
	assert_int_equal(rd(f, DLM), 0x02);
	assert_int_equal(f->nr_out, 0); /* DLL is not THR */
	wr(f, LCR, 0x03);
	assert_int_equal(rd(f, IER), 0); /* DLM is not IER */
	wr(f, THR, 'x');
	assert_int_equal(f->nr_out, 1);
	wr(f, LCR, 0x83);
	assert_int_equal(rd(f, DLL), 0x01);
	assert_int_equal(rd(f, DLM), 0x02);
}

static void test_fifo_16550a(void **state)
{
	struct fake *f = *state;

	assert_int_equal(rd(f, IIR), 0x01); /* FIFOs off: no interrupt, bits 7:6 clear */
	wr(f, FCR, 0x01);
	assert_int_equal(rd(f, IIR) >> 6, 3); /* 16550A */
	assert_int_equal(rd(f, IIR) & 0x0f, 0x01);
	/* Linux's 16750 check: a 64-byte FIFO request does not set IIR bit 5. */
	wr(f, FCR, 0x21);
	assert_int_equal(rd(f, IIR) & 0xe0, 0xc0);
	/* IIR is never 0 with the FIFOs on, so the EFR probes (LCR 0x80 / 0xbf) find no 16650. */
	wr(f, LCR, 0xbf);
	assert_int_not_equal(rd(f, IIR), 0);
	wr(f, LCR, 0);
	wr(f, FCR, 0);
	assert_int_equal(rd(f, IIR) >> 6, 0);
}

static void test_fcr_clears_receiver(void **state)
{
	struct fake *f = *state;

	wr(f, FCR, 0x01);
	assert_int_equal(serial_receive(f->s, (const uint8_t *)"abc", 3), 3);
	wr(f, FCR, 0x03); /* clear RCVR */
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(serial_rx_space(f->s), SERIAL_RX_BUFFER);
}

static void test_loopback(void **state)
{
	struct fake *f = *state;

	/* Linux's loop test: MCR = LOOP | OUT2 | RTS must read back MSR status 0x90 (DCD | CTS). */
	wr(f, MCR, MCR_LOOP | 0x0a);
	assert_int_equal(rd(f, MSR) & 0xf0, 0x90);
	wr(f, MCR, MCR_LOOP | 0x05); /* DTR, OUT1 -> DSR, RI */
	assert_int_equal(rd(f, MSR) & 0xf0, 0x60);
	wr(f, MCR, MCR_LOOP);
	assert_int_equal(rd(f, MSR), 0x06); /* nothing asserted; DDSR, and TERI as RI fell */
	assert_int_equal(rd(f, MSR), 0x00); /* reading cleared the deltas */

	wr(f, THR, 'L');
	wr(f, THR, 'B');
	assert_int_equal(f->nr_out, 0); /* nothing leaves the chip */
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 'L');
	assert_int_equal(rd(f, RBR), 'B');
	assert_int_equal(rd(f, LSR) & 0x01, 0);

	wr(f, MCR, 0);
	assert_int_equal(rd(f, MSR) & 0xf0, 0xb0); /* DCD | DSR | CTS from the host side */
	wr(f, THR, 'o');
	assert_int_equal(f->nr_out, 1);
}

static void test_loopback_overrun(void **state)
{
	struct fake *f = *state;

	wr(f, MCR, MCR_LOOP);
	for (int i = 0; i < SERIAL_RX_BUFFER; i++)
		wr(f, THR, (uint8_t)i);
	assert_int_equal(rd(f, LSR) & 0x03, 0x01); /* full, nothing lost yet */
	wr(f, THR, 0xee);                          /* no room: lost */
	assert_int_equal(rd(f, LSR) & 0x03, 0x03); /* DR | OE */
	assert_int_equal(rd(f, LSR) & 0x02, 0);    /* OE clears on read */
	assert_int_equal(rd(f, RBR), 0);           /* the first byte, not the lost one */
}

static void test_receive(void **state)
{
	struct fake *f = *state;

	assert_int_equal(serial_rx_space(f->s), SERIAL_RX_BUFFER);
	assert_int_equal(serial_receive(f->s, (const uint8_t *)"xyz", 3), 3);
	assert_int_equal(serial_rx_space(f->s), SERIAL_RX_BUFFER - 3);
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 'x');
	assert_int_equal(rd(f, RBR), 'y');
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 'z');
	assert_int_equal(rd(f, LSR) & 0x01, 0);
}

static void test_receive_full(void **state)
{
	struct fake *f = *state;
	static uint8_t big[SERIAL_RX_BUFFER + 100];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(serial_receive(f->s, big, 100), 100);
	/* Only what fits is taken; the rest stays with the caller, so this is not an overrun. */
	assert_int_equal(serial_receive(f->s, big + 100, SERIAL_RX_BUFFER), SERIAL_RX_BUFFER - 100);
	assert_int_equal(serial_rx_space(f->s), 0);
	assert_int_equal(serial_receive(f->s, big, 1), 0);
	assert_int_equal(rd(f, LSR) & 0x02, 0);
	for (size_t i = 0; i < SERIAL_RX_BUFFER; i++)
		assert_int_equal(rd(f, RBR), big[i]); /* order kept across the ring's wrap */
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	/* The ring wraps correctly once drained. */
	assert_int_equal(serial_receive(f->s, (const uint8_t *)"ok", 2), 2);
	assert_int_equal(rd(f, RBR), 'o');
	assert_int_equal(rd(f, RBR), 'k');
}

static void test_rda_interrupt(void **state)
{
	struct fake *f = *state;

	wr(f, MCR, MCR_OUT2 | 0x03);
	wr(f, IER, 0x01);
	assert_int_equal(f->nr_levels, 0);
	assert_int_equal(serial_receive(f->s, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(f->nr_levels, 1);
	assert_int_equal(level(f), 1);
	assert_int_equal(f->last_gsi, SERIAL_COM1_IRQ);
	assert_int_equal(rd(f, IIR) & 0x0f, 0x04);
	assert_int_equal(rd(f, RBR), 'a');
	assert_int_equal(f->nr_levels, 1); /* still data: no change driven */
	assert_int_equal(rd(f, RBR), 'b');
	assert_int_equal(f->nr_levels, 2);
	assert_int_equal(level(f), 0);
	assert_int_equal(rd(f, IIR) & 0x0f, 0x01);
}

static void test_thre_interrupt(void **state)
{
	struct fake *f = *state;
	int n;

	wr(f, MCR, MCR_OUT2);
	wr(f, IER, 0x02); /* enabling ETBEI with THR empty raises THRE at once */
	assert_int_equal(level(f), 1);
	assert_int_equal(rd(f, IIR), 0x02);
	assert_int_equal(level(f), 0); /* the IIR read cleared it */
	assert_int_equal(rd(f, IIR), 0x01);

	wr(f, THR, 'x'); /* THR empties again at once */
	assert_int_equal(level(f), 1);
	n = f->nr_levels;
	wr(f, THR, 'y'); /* writing THR clears THRE, then re-raises it: a fresh edge for the PIC */
	assert_int_equal(f->nr_levels, n + 2);
	assert_int_equal(f->levels[n], 0);
	assert_int_equal(level(f), 1);
	assert_int_equal(rd(f, IIR), 0x02);
	assert_int_equal(level(f), 0);

	/* Linux's THRE test: IER=0 then IER=THRI must re-assert the interrupt. */
	wr(f, IER, 0);
	wr(f, IER, 0x02);
	assert_int_equal(level(f), 1);
	assert_int_equal(rd(f, IIR) & 0x0f, 0x02);
	/* Rewriting IER with ETBEI already set does not re-arm it. */
	wr(f, IER, 0x03);
	assert_int_equal(level(f), 0);
	assert_int_equal(rd(f, IIR), 0x01);
	/* Each change was driven exactly once. */
	for (int i = 1; i < f->nr_levels; i++)
		assert_int_not_equal(f->levels[i], f->levels[i - 1]);
}

static void test_out2_gates_irq(void **state)
{
	struct fake *f = *state;

	wr(f, MCR, 0x03); /* DTR | RTS, no OUT2 */
	wr(f, IER, 0x0f);
	assert_int_equal(serial_receive(f->s, (const uint8_t *)"a", 1), 1);
	wr(f, THR, 'x');
	assert_int_equal(f->nr_levels, 0);
	assert_int_equal(rd(f, IIR) & 0x0f, 0x04); /* pending inside the chip all the same */
	wr(f, MCR, 0x0b);                          /* OUT2 on: the pending interrupt reaches the PIC */
	assert_int_equal(level(f), 1);
	wr(f, MCR, 0x03);
	assert_int_equal(level(f), 0);
	/* Loopback forces -OUT2 inactive: no interrupt to the PIC even with OUT2 set. */
	wr(f, MCR, MCR_LOOP | MCR_OUT2);
	assert_int_equal(level(f), 0);
}

static void test_iir_priority(void **state)
{
	struct fake *f = *state;

	wr(f, MCR, MCR_OUT2 | MCR_LOOP);
	wr(f, IER, 0x0f);
	wr(f, MCR, MCR_OUT2 | MCR_LOOP | 0x02); /* RTS -> CTS: modem status change */
	for (int i = 0; i < SERIAL_RX_BUFFER + 1; i++)
		wr(f, THR, 'a'); /* fills RX, then overruns; THRE armed */
	assert_int_equal(rd(f, IIR) & 0x0f, 0x06); /* line status first */
	assert_int_equal(rd(f, LSR) & 0x02, 0x02);
	assert_int_equal(rd(f, IIR) & 0x0f, 0x04); /* then received data */
	wr(f, FCR, 0x02);                          /* drop it */
	assert_int_equal(rd(f, IIR) & 0x0f, 0x02); /* then THR empty, cleared by this read */
	assert_int_equal(rd(f, IIR) & 0x0f, 0x00); /* then modem status */
	assert_int_equal(rd(f, MSR) & 0x01, 0x01); /* DCTS */
	assert_int_equal(rd(f, IIR) & 0x0f, 0x01);
}

static void test_hostile_accesses(void **state)
{
	struct fake *f = *state;
	uint8_t buf[8];

	wr(f, SCR, 0x42);
	memset(buf, 0, sizeof(buf));
	serial_io(f->s, 0, buf, 2, false);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0xff);
	memset(buf, 'q', sizeof(buf));
	serial_io(f->s, 0, buf, 4, true);
	serial_io(f->s, 7, buf, 8, true);
	serial_io(f->s, 8, buf, 1, true);
	serial_io(f->s, ~0ull, buf, 1, true);
	serial_io(f->s, 100, buf, 1, false);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(f->nr_out, 0);
	assert_int_equal(rd(f, SCR), 0x42);
	/* Every register, every value: no crash. */
	for (int reg = 0; reg < SERIAL_NR_PORTS; reg++)
		for (int v = 0; v < 256; v++) {
			wr(f, (uint64_t)reg, (uint8_t)v);
			(void)rd(f, (uint64_t)reg);
		}
	serial_receive(f->s, buf, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_thr_reaches_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_and_lcr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ier_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_16550a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcr_clears_receiver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rda_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out2_gates_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iir_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_accesses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
