// SPDX-License-Identifier: MIT
/*
 * 16550A UART, register model per the National Semiconductor PC16550D data sheet (June 1995).
 *
 * Transmission is instantaneous: a byte written to THR goes to the `out` callback at once, so THR and
 * the transmitter are always empty (LSR.THRE = LSR.TEMT = 1). Reception is buffered: bytes the host
 * hands to serial_receive() wait in a SERIAL_RX_BUFFER-byte ring that stands in for the 16-byte RX FIFO.
 *
 * The interrupt output is a level: it is high while an interrupt enabled in IER is pending and, as on
 * a PC where the -OUT2 pin gates the UART's INTR onto the ISA bus, MCR.OUT2 is set and the chip is not
 * in loopback (loopback forces -OUT2 inactive, data sheet, MCR bit 4).
 */
#include "devices/legacy/serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

/* Register offsets (data sheet, "Register Summary"). */
#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_DLL 0 /* DLAB=1 */
#define UART_IER 1 /* DLAB=0 */
#define UART_DLM 1 /* DLAB=1 */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI 0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f  /* bits 7:4 are always 0 on a 16550A */

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_FIFO_ENABLED 0xc0 /* both bits: a 16550A with working FIFOs */

#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RCVR 0x02
#define FCR_TRIGGER_MASK 0xc0

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTA_MASK 0x0f

struct serial {
	pthread_mutex_t lock;
	struct irq_line irq;
	serial_out_fn out;
	void *out_opaque;

	uint8_t ier;
	uint8_t fcr; /* FIFO enable and trigger bits as last written */
	uint8_t lcr;
	uint8_t mcr;
	uint8_t lsr_errors; /* OE, sticky until LSR is read */
	uint8_t msr;        /* status bits 7:4 and delta bits 3:0 */
	uint8_t scr;
	uint8_t dll, dlm;
	bool thre_pending; /* THRE interrupt armed: set by THR writes and by enabling ETBEI */
	int irq_level;     /* last level driven on `irq` */
	struct ratelimit bad_access_rl;

	/* Bytes waiting for the guest: rx[rx_head .. rx_head + rx_count) modulo the size. */
	size_t rx_head, rx_count;
	uint8_t rx[SERIAL_RX_BUFFER];
};

/* Modem status inputs: the host side always looks like a connected, ready modem. */
static uint8_t serial_modem_inputs(const struct serial *s)
{
	uint8_t m = 0;

	if (!(s->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	/* Loopback wiring (data sheet, MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
	if (s->mcr & MCR_RTS)
		m |= MSR_CTS;
	if (s->mcr & MCR_DTR)
		m |= MSR_DSR;
	if (s->mcr & MCR_OUT1)
		m |= MSR_RI;
	if (s->mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

/* Latch new modem inputs into MSR, setting the delta bits for what changed (data sheet, MSR). */
static void serial_update_msr(struct serial *s)
{
	uint8_t old = s->msr & ~MSR_DELTA_MASK, now = serial_modem_inputs(s), changed = old ^ now;
	uint8_t delta = 0;

	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		delta |= MSR_TERI;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	s->msr = now | (s->msr & MSR_DELTA_MASK) | delta;
}

/* The highest-priority pending interrupt enabled in IER, as IIR bits 3:0 (data sheet, "Interrupt Control Functions" table). */
static uint8_t serial_pending(const struct serial *s)
{
	if ((s->ier & IER_ELSI) && (s->lsr_errors & LSR_OE))
		return IIR_RLSI;
	if ((s->ier & IER_ERBFI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_ETBEI) && s->thre_pending)
		return IIR_THRI;
	if ((s->ier & IER_EDSSI) && (s->msr & MSR_DELTA_MASK))
		return IIR_MSI;
	return IIR_NO_INT;
}

/* Drive the interrupt line after any state change; only changes reach the interrupt controller. */
static void serial_update_irq(struct serial *s)
{
	int level = serial_pending(s) != IIR_NO_INT && (s->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

static void serial_rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

/* Append one byte; false when the buffer is full. */
static bool serial_rx_push(struct serial *s, uint8_t byte)
{
	if (s->rx_count == SERIAL_RX_BUFFER)
		return false;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_BUFFER] = byte;
	s->rx_count++;
	return true;
}

static uint8_t serial_rx_pop(struct serial *s)
{
	uint8_t byte;

	if (!s->rx_count)
		return 0; /* an empty RBR reads as the data sheet leaves it: undefined; 0 is as good as any */
	byte = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_BUFFER;
	s->rx_count--;
	return byte;
}

static void serial_write_thr(struct serial *s, uint8_t byte)
{
	/*
	 * Writing THR clears the THRE interrupt (interrupt control table); it comes back when the byte has left, which
	 * here is at once. Driving the line low in between gives an interrupt controller with edge-triggered
	 * ISA inputs (the PIC, the IOAPIC's ISA pins) a fresh rising edge for every byte, as the real chip's
	 * transmission time does; without it a THRE left pending would never interrupt again.
	 */
	s->thre_pending = false;
	serial_update_irq(s);
	if (s->mcr & MCR_LOOP) {
		/* Loopback: the transmitter shift register feeds the receiver; nothing leaves the chip. */
		if (!serial_rx_push(s, byte))
			s->lsr_errors |= LSR_OE; /* the receiver had no room: the byte is lost */
	} else if (s->out) {
		s->out(s->out_opaque, &byte, 1);
	}
	/* The byte left THR at once, so THR is empty again: that re-arms the THRE interrupt. */
	s->thre_pending = true;
}

static void serial_write_fcr(struct serial *s, uint8_t val)
{
	/* Changing FCR0 clears both FIFOs (data sheet, FCR); FCR1 clears the receiver. TX has nothing to clear. */
	if (((val ^ s->fcr) & FCR_ENABLE_FIFO) || (val & FCR_CLEAR_RCVR))
		serial_rx_clear(s);
	s->fcr = val & (FCR_ENABLE_FIFO | FCR_TRIGGER_MASK);
}

static void serial_write(struct serial *s, unsigned int reg, uint8_t val)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case UART_THR:
		if (dlab)
			s->dll = val;
		else
			serial_write_thr(s, val);
		break;
	case UART_IER:
		if (dlab) {
			s->dlm = val;
		} else {
			/*
			 * Enabling ETBEI while THR is empty raises THRE at once. Linux's start_tx relies on it,
			 * and its THRE test at port startup checks that the interrupt is re-asserted.
			 */
			if ((val & IER_ETBEI) && !(s->ier & IER_ETBEI))
				s->thre_pending = true;
			s->ier = val & IER_MASK;
		}
		break;
	case UART_FCR:
		serial_write_fcr(s, val);
		break;
	case UART_LCR:
		s->lcr = val;
		break;
	case UART_MCR:
		s->mcr = val & MCR_MASK;
		serial_update_msr(s);
		break;
	case UART_LSR:
		/* Writing LSR is for factory test only (data sheet, LSR); ignore it. */
		break;
	case UART_MSR:
		break; /* read-only */
	case UART_SCR:
		s->scr = val;
		break;
	}
}

static uint8_t serial_read(struct serial *s, unsigned int reg)
{
	bool dlab = s->lcr & LCR_DLAB;
	uint8_t val = 0;

	switch (reg) {
	case UART_RBR:
		val = dlab ? s->dll : serial_rx_pop(s);
		break;
	case UART_IER:
		val = dlab ? s->dlm : s->ier;
		break;
	case UART_IIR:
		val = serial_pending(s);
		/* Reading IIR while THRE is the reported source clears that interrupt (interrupt control table). */
		if (val == IIR_THRI)
			s->thre_pending = false;
		if (s->fcr & FCR_ENABLE_FIFO)
			val |= IIR_FIFO_ENABLED;
		break;
	case UART_LCR:
		val = s->lcr;
		break;
	case UART_MCR:
		val = s->mcr;
		break;
	case UART_LSR:
		val = LSR_THRE | LSR_TEMT | s->lsr_errors;
		if (s->rx_count)
			val |= LSR_DR;
		s->lsr_errors = 0; /* reading LSR clears the error bits and the line-status interrupt */
		break;
	case UART_MSR:
		val = s->msr;
		s->msr &= ~MSR_DELTA_MASK;
		break;
	case UART_SCR:
		val = s->scr;
		break;
	}
	return val;
}

struct serial *serial_create(struct irq_line irq, serial_out_fn out, void *out_opaque)
{
	struct serial *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return NULL;
	err = pthread_mutex_init(&s->lock, NULL);
	if (err) {
		free(s);
		errno = err;
		return NULL;
	}
	s->irq = irq;
	s->out = out;
	s->out_opaque = out_opaque;
	s->dll = 0x0c; /* 9600 baud from the 1.8432 MHz clock: what PC firmware leaves */
	s->bad_access_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	serial_update_msr(s);
	s->msr &= ~MSR_DELTA_MASK; /* the modem was "connected" before power-on: no change to report */
	return s;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- the device type (vmm/device.h): COM1, always present ---- */

static void *serial_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	struct irq_line irq = { .set = ctx->set_irq, .opaque = ctx->irq_opaque, .gsi = SERIAL_COM1_IRQ };

	return serial_create(irq, ctx->events.console_out, ctx->events.opaque);
}

VM_DEVICE_ADAPTERS(serial, serial_destroy, serial_save, serial_restore)

static const struct vm_device_ports serial_ports[] = { { SERIAL_COM1_BASE, SERIAL_NR_PORTS, serial_io }, { 0 } };

const struct vm_device_type serial_device_type = {
	.name = "serial",
	.count = vm_device_count_one,
	.create = serial_new,
	.ports = serial_ports,
	.destroy = serial_destroy_dev,
	.section = SNAP_ID_UART,
	.codec = &serial_state_codec,
	.save = serial_save_dev,
	.restore = serial_restore_dev,
};

void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (len != 1 || offset >= SERIAL_NR_PORTS) {
		/* The UART has only byte registers; a wider access is a confused or hostile guest. */
		if (ratelimit_ok(&s->bad_access_rl))
			pr_debug("serial: ignoring %u-byte %s at offset %llu", len, is_write ? "write" : "read",
				 (unsigned long long)offset);
		if (!is_write)
			memset(data, 0xff, len);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (is_write)
		serial_write(s, (unsigned int)offset, data[0]);
	else
		data[0] = serial_read(s, (unsigned int)offset);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	/*
	 * Bytes that do not fit stay with the caller, so nothing is lost and LSR.OE is not set: an overrun
	 * would make Linux insert a NUL flagged TTY_OVERRUN into the guest's input. Host input is accepted
	 * in loopback mode too (the data sheet disconnects the line then), so that a guest stuck in
	 * loopback cannot stall the host-side reader, which waits for serial_rx_space() to become non-zero.
	 */
	pthread_mutex_lock(&s->lock);
	while (n < len && serial_rx_push(s, buf[n]))
		n++;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_space(struct serial *s)
{
	size_t space;

	pthread_mutex_lock(&s->lock);
	space = SERIAL_RX_BUFFER - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return space;
}

/* ---- snapshot state ---- */

void serial_save(struct serial *s, struct serial_state *st)
{
	pthread_mutex_lock(&s->lock);
	memset(st, 0, sizeof(*st));
	st->ier = s->ier;
	st->fcr = s->fcr;
	st->lcr = s->lcr;
	st->mcr = s->mcr;
	st->lsr_errors = s->lsr_errors;
	st->msr = s->msr;
	st->scr = s->scr;
	st->dll = s->dll;
	st->dlm = s->dlm;
	st->thre_pending = s->thre_pending;
	st->irq_level = s->irq_level != 0;
	st->rx_count = (uint32_t)s->rx_count;
	for (size_t i = 0; i < s->rx_count; i++)
		st->rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_BUFFER];
	pthread_mutex_unlock(&s->lock);
}

void serial_restore(struct serial *s, const struct serial_state *st)
{
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier;
	s->fcr = st->fcr;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->lsr_errors = st->lsr_errors;
	s->msr = st->msr;
	s->scr = st->scr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->thre_pending = st->thre_pending;
	s->irq_level = st->irq_level;
	s->rx_head = 0;
	s->rx_count = st->rx_count <= SERIAL_RX_BUFFER ? st->rx_count : SERIAL_RX_BUFFER;
	memcpy(s->rx, st->rx, s->rx_count);
	pthread_mutex_unlock(&s->lock);
}

/* What a table cannot say: the FCR and LSR bits a 16550A holds (IER and MCR are ranges). */
static int serial_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct serial_state *st = p;

	if (st->fcr & ~(FCR_ENABLE_FIFO | FCR_TRIGGER_MASK)) {
		errmsg_set(err, err_size, "UART state: fcr 0x%02x has bits the device cannot hold", st->fcr);
		return -EINVAL;
	}
	if (st->lsr_errors & ~LSR_OE) {
		errmsg_set(err, err_size, "UART state: lsr_errors 0x%02x has bits the device cannot hold",
			   st->lsr_errors);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field serial_state_fields[] = {
	CODEC_RANGE(struct serial_state, ier, 1, 1, 0, IER_MASK),
	CODEC_UINT(struct serial_state, fcr, 1, 1),
	CODEC_UINT(struct serial_state, lcr, 1, 1),
	CODEC_RANGE(struct serial_state, mcr, 1, 1, 0, MCR_MASK),
	CODEC_UINT(struct serial_state, lsr_errors, 1, 1),
	CODEC_UINT(struct serial_state, msr, 1, 1),
	CODEC_UINT(struct serial_state, scr, 1, 1),
	CODEC_UINT(struct serial_state, dll, 1, 1),
	CODEC_UINT(struct serial_state, dlm, 1, 1),
	CODEC_BOOL(struct serial_state, thre_pending, 1),
	CODEC_BOOL(struct serial_state, irq_level, 1),
	CODEC_RANGE(struct serial_state, rx_count, 4, 1, 0, SERIAL_RX_BUFFER),
	CODEC_UINT_VARRAY(struct serial_state, rx, rx_count, 1, 1),
};

const struct codec_table serial_state_codec =
	CODEC_TABLE(struct serial_state, "UART state", 1, 1, serial_state_fields, serial_state_check);
