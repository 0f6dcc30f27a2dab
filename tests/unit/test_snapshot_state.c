// SPDX-License-Identifier: MIT
/*
 * Every device's snapshot state: save, encode, decode, restore into a fresh device, and the device
 * then behaves as the original did; every decoder refuses a payload that is short, long, of a newer
 * version or holds values the device cannot. The virtio transport and MSI-X run over a real PCI bus
 * and event loop against a fake KVM (as in test_virtio_pci.c), with a virtio-rng whose queue keeps
 * working after the restore. Also DISK records (the x86 KVM states are in test_state_x86.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/serial.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/snapshot.h"

#define BUF_SIZE (64u << 10)

/* Encode with `encode` into a fresh buffer; returns it, its length in *len. */
#define ENCODE(encode, st, outlen)                                       \
	({                                                               \
		uint8_t *b_ = malloc(BUF_SIZE);                          \
		struct snap_enc e_;                                      \
		assert_non_null(b_);                                     \
		snap_enc_init(&e_, b_, BUF_SIZE);                        \
		encode((st), &e_);                                       \
		assert_true(snap_enc_ok(&e_));                           \
		*(outlen) = e_.len;                                      \
		b_;                                                      \
	})

/*
 * A decoder must take exactly `buf` and refuse: every shorter prefix, one byte more, version 0 and
 * version + 1. `st` is scratch space of the decoder's type.
 */
#define CHECK_DECODER(decode, st, buf, len, version)                                                         \
	do {                                                                                                  \
		char err_[256];                                                                               \
		uint8_t *longer_ = calloc(1, (len) + 1);                                                      \
		assert_non_null(longer_);                                                                     \
		assert_int_equal(decode((st), (buf), (len), (version), err_, sizeof(err_)), 0);               \
		for (size_t n_ = 0; n_ < (len); n_ += ((len) > 64 ? 7 : 1))                                  \
			assert_int_not_equal(decode((st), (buf), n_, (version), err_, sizeof(err_)), 0);       \
		memcpy(longer_, (buf), (len));                                                                \
		assert_int_equal(decode((st), longer_, (len) + 1, (version), err_, sizeof(err_)), -EINVAL);   \
		assert_int_equal(decode((st), (buf), (len), (version) + 1, err_, sizeof(err_)), -ENOTSUP);    \
		assert_int_equal(decode((st), (buf), (len), 0, err_, sizeof(err_)), -ENOTSUP);                \
		assert_true(strlen(err_) > 0);                                                                \
		free(longer_);                                                                                \
	} while (0)

/*
 * ENCODE and CHECK_DECODER functions for a state described by codec table <name>_codec (lib/codec.h):
 * <name>_enc and <name>_dec.
 */
#define CODEC_FUNCTIONS(name)                                                                                \
	static void name##_enc(const void *st, struct snap_enc *e)                                           \
	{                                                                                                    \
		assert_int_equal(codec_encode(&name##_codec, st, e), 0);                                     \
	}                                                                                                    \
	static int name##_dec(void *st, const void *data, size_t len, uint32_t version, char *err, size_t err_size) \
	{                                                                                                    \
		return codec_decode(&name##_codec, st, data, len, version, err, err_size);                   \
	}

CODEC_FUNCTIONS(pci_bus_state)
CODEC_FUNCTIONS(pci_function_state)
CODEC_FUNCTIONS(msix_state)
CODEC_FUNCTIONS(virtio_pci_state)
CODEC_FUNCTIONS(virtio_rng_state)
CODEC_FUNCTIONS(virtio_blk_state)
CODEC_FUNCTIONS(virtio_net_state)

/* ---- interrupt lines ---- */

struct irq_log {
	int level[32];
	int changes;
};

static void log_irq(void *opaque, uint32_t gsi, int level)
{
	struct irq_log *l = opaque;

	if (gsi < 32)
		l->level[gsi] = level;
	l->changes++;
}

/* ---- UART ---- */

/* prefix_enc / prefix_dec: the codec table prefix_codec with the signatures ENCODE and CHECK_DECODER take. */
#define STATE_CODEC_FNS(prefix, type)                                                                     \
	static void prefix##_enc(const type *st, struct snap_enc *e)                                      \
	{                                                                                                 \
		assert_int_equal(codec_encode(&prefix##_codec, st, e), 0);                                \
	}                                                                                                 \
	static int prefix##_dec(type *st, const void *data, size_t len, uint32_t version, char *err,      \
				size_t err_size)                                                          \
	{                                                                                                 \
		return codec_decode(&prefix##_codec, st, data, len, version, err, err_size);              \
	}

STATE_CODEC_FNS(serial_state, struct serial_state)

static void uart_out(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
}

static uint8_t uart_rd(struct serial *s, unsigned int reg)
{
	uint8_t v = 0;

	serial_io(s, reg, &v, 1, false);
	return v;
}

static void uart_wr(struct serial *s, unsigned int reg, uint8_t v)
{
	serial_io(s, reg, &v, 1, true);
}

static void test_serial_round_trip(void **state)
{
	struct irq_log l1 = { 0 }, l2 = { 0 };
	struct serial *a = serial_create((struct irq_line){ log_irq, &l1, 4 }, uart_out, NULL);
	struct serial *b = serial_create((struct irq_line){ log_irq, &l2, 4 }, uart_out, NULL);
	struct serial_state *st = malloc(sizeof(*st)), *st2 = malloc(sizeof(*st2));
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[256];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	/* 115200 8N1 with FIFOs, interrupts on receive and THR empty, OUT2 on, a scratch byte. */
	uart_wr(a, 3, 0x80);
	uart_wr(a, 0, 0x01);
	uart_wr(a, 1, 0x00);
	uart_wr(a, 3, 0x03);
	uart_wr(a, 2, 0xc1);
	uart_wr(a, 4, 0x0b);
	uart_wr(a, 7, 0x5a);
	uart_wr(a, 1, 0x03);
	assert_int_equal(serial_receive(a, (const uint8_t *)"hello", 5), 5);
	assert_int_equal(uart_rd(a, 0), 'h'); /* the ring's head moves: the state must keep the order */

	serial_save(a, st);
	buf = ENCODE(serial_state_enc, st, &len);
	CHECK_DECODER(serial_state_dec, st2, buf, len, serial_state_codec.version);
	assert_int_equal(serial_state_dec(st2, buf, len, serial_state_codec.version, err, sizeof(err)), 0);
	serial_restore(b, st2);
	assert_int_equal(l2.changes, 0); /* an edge-triggered line is not driven by a restore */

	/* Same state, same bytes. */
	serial_save(b, st2);
	buf2 = ENCODE(serial_state_enc, st2, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	/* And the same behaviour: registers, the rest of the input in order, the interrupt. */
	assert_int_equal(uart_rd(b, 7), 0x5a);
	assert_int_equal(uart_rd(b, 3), 0x03);
	assert_int_equal(uart_rd(b, 2) & 0x0f, uart_rd(a, 2) & 0x0f);
	for (const char *p = "ello"; *p; p++) {
		assert_int_equal(uart_rd(a, 0), *p);
		assert_int_equal(uart_rd(b, 0), *p);
	}
	assert_int_equal(uart_rd(b, 5) & 0x01, 0);
	uart_wr(b, 3, 0x83);
	assert_int_equal(uart_rd(b, 0), 0x01); /* divisor latch */

	/* Values the device cannot hold. */
	st->rx_count = SERIAL_RX_BUFFER + 1;
	free(buf2);
	buf2 = malloc(BUF_SIZE);
	{
		struct snap_enc e;

		snap_enc_init(&e, buf2, BUF_SIZE);
		snap_put_bytes(&e, buf, 11);
		snap_put_u32(&e, SERIAL_RX_BUFFER + 1);
		assert_int_equal(serial_state_dec(st2, buf2, e.len, serial_state_codec.version, err, sizeof(err)),
				 -EINVAL);
	}
	memcpy(buf2, buf, len);
	buf2[0] = 0xf0; /* IER bits 7:4 */
	assert_int_equal(serial_state_dec(st2, buf2, len, serial_state_codec.version, err, sizeof(err)), -EINVAL);
	memcpy(buf2, buf, len);
	buf2[10] = 2; /* irq level */
	assert_int_equal(serial_state_dec(st2, buf2, len, serial_state_codec.version, err, sizeof(err)), -EINVAL);

	free(buf);
	free(buf2);
	free(st);
	free(st2);
	serial_destroy(a);
	serial_destroy(b);
}

/* ---- i8042 ---- */

STATE_CODEC_FNS(i8042_state, struct i8042_state)

static void kbd_reset(void *opaque)
{
	(*(int *)opaque)++;
}

static void test_i8042_round_trip(void **state)
{
	struct irq_log l = { 0 };
	struct irq_line kbd = { log_irq, &l, 1 }, aux = { log_irq, &l, 12 };
	int resets = 0;
	struct i8042 *a = i8042_create(kbd, aux, kbd_reset, &resets), *b = i8042_create(kbd, aux, kbd_reset, &resets);
	struct i8042_state st, st2;
	uint8_t v, *buf;
	size_t len;
	char err[256];

	(void)state;
	/* Write the command byte, then leave "write output port" waiting for its data byte. */
	v = 0x60;
	i8042_command_io(a, 0, &v, 1, true);
	v = 0x45;
	i8042_data_io(a, 0, &v, 1, true);
	v = 0xd1;
	i8042_command_io(a, 0, &v, 1, true);

	/* Ctrl+Alt+Del typed: the keyboard's bytes wait in its queue, the first in the output buffer. */
	assert_int_equal(i8042_send_ctrl_alt_del(a), 0);
	v = 0;
	i8042_data_io(a, 0, &v, 1, false); /* the guest reads one: the queue's head moves */

	i8042_save(a, &st);
	assert_true(st.kbd_len > 0);
	buf = ENCODE(i8042_state_enc, &st, &len);
	CHECK_DECODER(i8042_state_dec, &st2, buf, len, i8042_state_codec.version);
	assert_int_equal(i8042_state_dec(&st2, buf, len, i8042_state_codec.version, err, sizeof(err)), 0);
	l.changes = 0;
	i8042_restore(b, &st2);
	assert_int_equal(l.changes, 0);

	/* The rest of the key sequence comes out of both in the same order. */
	for (int i = 0; i < 12; i++) {
		uint8_t x = 0, y = 0, sx = 0, sy = 0;

		i8042_command_io(a, 0, &sx, 1, false);
		i8042_command_io(b, 0, &sy, 1, false);
		assert_int_equal(sx & 0x01, sy & 0x01);
		if (!(sx & 0x01))
			break;
		i8042_data_io(a, 0, &x, 1, false);
		i8042_data_io(b, 0, &y, 1, false);
		assert_int_equal(x, y);
	}

	/* The pending 0xd1 survived: a data byte with bit 0 clear now resets the machine. */
	assert_int_equal(resets, 0);
	v = 0xfe;
	i8042_data_io(b, 0, &v, 1, true);
	assert_int_equal(resets, 1);

	buf[4] = 0x42; /* not a command that waits for data */
	assert_int_equal(i8042_state_dec(&st2, buf, len, i8042_state_codec.version, err, sizeof(err)), -EINVAL);
	buf[4] = 0;
	buf[5] = 17; /* more bytes than the keyboard queue holds */
	assert_int_equal(i8042_state_dec(&st2, buf, len, i8042_state_codec.version, err, sizeof(err)), -EINVAL);
	buf[5] = st.kbd_len;
	buf[0] |= 0x02; /* input buffer full */
	assert_int_equal(i8042_state_dec(&st2, buf, len, i8042_state_codec.version, err, sizeof(err)), -EINVAL);
	free(buf);
	i8042_destroy(a);
	i8042_destroy(b);
}

/* ---- RTC ---- */

STATE_CODEC_FNS(rtc_state, struct rtc_state)

static time_t fixed_clock(void *opaque)
{
	return *(time_t *)opaque;
}

static uint8_t rtc_rd(struct rtc *r, uint8_t reg)
{
	uint8_t v = reg;

	rtc_io(r, 0, &v, 1, true);
	rtc_io(r, 1, &v, 1, false);
	return v;
}

static void rtc_wr(struct rtc *r, uint8_t reg, uint8_t val)
{
	rtc_io(r, 0, &reg, 1, true);
	rtc_io(r, 1, &val, 1, true);
}

static void test_rtc_round_trip(void **state)
{
	time_t now_a = 1700000000, now_b = 1700000000 + 3600; /* the restore happens an hour later */
	struct rtc *a = rtc_create(64 << 20, 0, fixed_clock, &now_a), *b = rtc_create(32 << 20, 0, fixed_clock, &now_b);
	struct rtc_state st, st2;
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	/* The guest sets its clock to 2001-02-03 04:05:06 (binary mode) and writes a CMOS byte. */
	rtc_wr(a, 0x0b, 0x86);
	rtc_wr(a, 0x00, 6);
	rtc_wr(a, 0x02, 5);
	rtc_wr(a, 0x04, 4);
	rtc_wr(a, 0x07, 3);
	rtc_wr(a, 0x08, 2);
	rtc_wr(a, 0x09, 1);
	rtc_wr(a, 0x32, 20);
	rtc_wr(a, 0x0b, 0x06);
	rtc_wr(a, 0x40, 0x77);
	assert_int_equal(rtc_rd(a, 0x04), 4);

	rtc_save(a, &st);
	buf = ENCODE(rtc_state_enc, &st, &len);
	CHECK_DECODER(rtc_state_dec, &st2, buf, len, rtc_state_codec.version);
	assert_int_equal(rtc_state_dec(&st2, buf, len, rtc_state_codec.version, err, sizeof(err)), 0);
	rtc_restore(b, &st2);

	/* CMOS (memory sizes included) is the snapshot's; the clock kept running for the hour. */
	assert_int_equal(rtc_rd(b, 0x40), 0x77);
	assert_int_equal(rtc_rd(b, 0x34), rtc_rd(a, 0x34));
	assert_int_equal(rtc_rd(b, 0x0b), 0x06);
	assert_int_equal(rtc_rd(b, 0x04), 5);
	assert_int_equal(rtc_rd(b, 0x02), 5);
	assert_int_equal(rtc_rd(b, 0x09), 1);

	buf[0] = 0x80; /* index outside CMOS */
	assert_int_equal(rtc_state_dec(&st2, buf, len, rtc_state_codec.version, err, sizeof(err)), -EINVAL);
	free(buf);
	rtc_destroy(a);
	rtc_destroy(b);
}

/* ---- ACPI PM ---- */

STATE_CODEC_FNS(acpi_pm_state, struct acpi_pm_state)

static uint64_t fake_ns(void *opaque)
{
	return *(uint64_t *)opaque;
}

static void no_poweroff(void *opaque)
{
	(void)opaque;
}

static void test_acpi_pm_round_trip(void **state)
{
	uint64_t t_a = 5000000000ull, t_b = 123;
	struct irq_log la = { 0 }, lb = { 0 };
	struct acpi_pm *a, *b;
	struct acpi_pm_state st, st2;
	uint8_t en[2] = { 0x00, 0x01 }, *buf; /* PWRBTN_EN */
	uint32_t before, after;
	size_t len;
	char err[256];

	(void)state;
	a = acpi_pm_create((struct irq_line){ log_irq, &la, 9 }, no_poweroff, NULL, fake_ns, &t_a);
	b = acpi_pm_create((struct irq_line){ log_irq, &lb, 9 }, no_poweroff, NULL, fake_ns, &t_b);
	t_a += 1000000000ull; /* the timer ran one second */
	acpi_pm_io(a, 2, en, 2, true);
	assert_true(acpi_pm_press_power_button(a));
	assert_int_equal(la.level[9], 1);
	before = acpi_pm_timer(a);

	acpi_pm_save(a, &st);
	buf = ENCODE(acpi_pm_state_enc, &st, &len);
	CHECK_DECODER(acpi_pm_state_dec, &st2, buf, len, acpi_pm_state_codec.version);
	assert_int_equal(acpi_pm_state_dec(&st2, buf, len, acpi_pm_state_codec.version, err, sizeof(err)), 0);
	acpi_pm_restore(b, &st2);
	/* The level-triggered SCI is driven again, and the timer continues from where it was. */
	assert_int_equal(lb.level[9], 1);
	after = acpi_pm_timer(b);
	assert_int_equal(after, before);
	t_b += 1000000000ull;
	assert_int_equal(acpi_pm_timer(b) - after, ACPI_PM_TIMER_HZ);

	/* Status bit set but SCI low: a state the device cannot be in. */
	buf[6 + 1] = 0; /* sci_level byte */
	assert_int_equal(acpi_pm_state_dec(&st2, buf, len, acpi_pm_state_codec.version, err, sizeof(err)), -EINVAL);
	free(buf);
	acpi_pm_destroy(a);
	acpi_pm_destroy(b);
}

/* ---- PCI, MSI-X, virtio-pci, virtio-rng over a fake KVM ---- */

#define MIB (1ull << 20)
#define RAM_SIZE (32 * MIB)
#define ECAM 0xe0000000ull
#define MMIO32 0xc0000000ull
#define MMIO32_SIZE 0x10000000ull
#define SLOT 3
#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA 0x12000ull
#define BUF_GPA 0x20000ull
#define QSIZE 16

struct fake_kvm {
	int nr_routes;
	int irqfds;
	int ioeventfds;
	uint64_t ioeventfd_addr;
	atomic_int msi;
	int intx[24];
};

static int fake_routing(void *opaque, const struct kvm_irq_routing *t)
{
	((struct fake_kvm *)opaque)->nr_routes = (int)t->nr;
	return 0;
}

static int fake_irqfd(void *opaque, const struct kvm_irqfd *req)
{
	struct fake_kvm *k = opaque;

	k->irqfds += (req->flags & KVM_IRQFD_FLAG_DEASSIGN) ? -1 : 1;
	return 0;
}

static int fake_signal_msi(void *opaque, const struct kvm_msi *msi)
{
	(void)msi;
	atomic_fetch_add(&((struct fake_kvm *)opaque)->msi, 1);
	return 1;
}

static const struct irq_routing_ops fake_rt = { fake_routing, fake_irqfd, fake_signal_msi };

static int fake_ioeventfd(void *opaque, const struct kvm_ioeventfd *req)
{
	struct fake_kvm *k = opaque;

	if (req->flags & KVM_IOEVENTFD_FLAG_DEASSIGN) {
		k->ioeventfds--;
	} else {
		k->ioeventfds++;
		k->ioeventfd_addr = req->addr;
	}
	return 0;
}

static const struct virtio_ioeventfd_ops fake_ioev = { fake_ioeventfd };

static void fake_intx(void *opaque, uint32_t gsi, int level)
{
	if (gsi < 24)
		((struct fake_kvm *)opaque)->intx[gsi] = level;
}

struct machine {
	struct fake_kvm kvm;
	struct guest_memory mem;
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct irq_routing *rt;
	struct loop loop;
	struct virtio_rng *rng;
	struct virtio_pci *t;
	uint64_t bar;
};

static struct machine *machine_create(void)
{
	struct machine *m = calloc(1, sizeof(*m));
	struct pci_bus_config cfg = {
		.ecam_base = ECAM, .mmio32_base = MMIO32, .mmio32_size = MMIO32_SIZE, .intx_set = fake_intx,
		.intx_opaque = NULL,
	};
	struct virtio_pci_params p;

	assert_non_null(m);
	cfg.intx_opaque = &m->kvm;
	assert_int_equal(guest_memory_init(&m->mem, RAM_SIZE, RAM_SIZE), 0);
	bus_init(&m->pio, "pio");
	bus_init(&m->mmio, "mmio");
	m->pci = pci_bus_create(&cfg);
	assert_non_null(m->pci);
	assert_int_equal(pci_bus_attach(m->pci, &m->pio, &m->mmio), 0);
	m->rt = irq_routing_create(&fake_rt, &m->kvm, 64);
	assert_non_null(m->rt);
	assert_int_equal(loop_init(&m->loop), 0);
	assert_int_equal(loop_start(&m->loop), 0);
	p = (struct virtio_pci_params){
		.pci = m->pci, .slot = SLOT, .rt = m->rt, .loop = &m->loop, .mem = &m->mem, .vm_fd = -1,
		.ioeventfd_ops = &fake_ioev, .ioeventfd_opaque = &m->kvm,
	};
	m->rng = virtio_rng_create(&p);
	assert_non_null(m->rng);
	m->t = virtio_rng_transport(m->rng);
	return m;
}

static void machine_destroy(struct machine *m)
{
	loop_destroy(&m->loop);
	pci_bus_destroy(m->pci);
	virtio_rng_destroy(m->rng);
	irq_routing_destroy(m->rt);
	bus_destroy(&m->pio);
	bus_destroy(&m->mmio);
	guest_memory_destroy(&m->mem);
	free(m);
}

static uint64_t rd(struct machine *m, uint64_t gpa, uint32_t len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	assert_true(bus_access(&m->mmio, gpa, d, len, false));
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void wr(struct machine *m, uint64_t gpa, uint64_t val, uint32_t len)
{
	uint8_t d[8];

	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(val >> (8 * i));
	assert_true(bus_access(&m->mmio, gpa, d, len, true));
}

#define CFG(reg) (ECAM + ((uint64_t)SLOT << 15) + (reg))
#define COMMON(m, off) ((m)->bar + VIRTIO_PCI_COMMON_OFFSET + (off))

static uint16_t *ring16(struct machine *m, uint64_t gpa)
{
	uint16_t *p = guest_memory_hva(&m->mem, gpa, 2);

	assert_non_null(p);
	return p;
}

/* A guest driver bringing the rng up with MSI-X (vector 0 config, 1 queue 0), as Linux does. */
static void driver_init(struct machine *m)
{
	unsigned int cap;

	/* BAR 0 moved by the guest to the window's second half, then decoding on. */
	wr(m, CFG(PCI_BASE_ADDRESS_0), MMIO32 + 0x100000, 4);
	wr(m, CFG(PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	m->bar = MMIO32 + 0x100000;
	cap = msix_cap_offset(virtio_pci_msix(m->t));
	wr(m, CFG(cap + MSIX_CAP_CONTROL), MSIX_CONTROL_ENABLE, 2);
	for (unsigned int v = 0; v < 2; v++) {
		uint64_t e = m->bar + VIRTIO_PCI_MSIX_TABLE_OFFSET + v * MSIX_ENTRY_SIZE;

		wr(m, e + MSIX_ENTRY_ADDR_LO, 0xfee00000, 4);
		wr(m, e + MSIX_ENTRY_DATA, 0x40 + v, 4);
		wr(m, e + MSIX_ENTRY_CTRL, 0, 4);
	}
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_GFSELECT), 1, 4);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_GF), 1, 4); /* VERSION_1 */
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_STATUS), 0x0b, 1);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_MSIX), 0, 2);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_SIZE), QSIZE, 2);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_DESCLO), DESC_GPA, 4);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_AVAILLO), AVAIL_GPA, 4);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_USEDLO), USED_GPA, 4);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_MSIX), 1, 2);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_Q_ENABLE), 1, 2);
	wr(m, COMMON(m, VIRTIO_PCI_COMMON_STATUS), 0x0f, 1);
	assert_int_equal(virtio_pci_status(m->t), 0x0f);
}

/* Post one 64-byte writable buffer and notify; wait until the device has used it. */
static void request(struct machine *m, uint16_t n)
{
	uint8_t *desc = guest_memory_hva(&m->mem, DESC_GPA, 16 * QSIZE);
	uint16_t slot = n % QSIZE;
	uint64_t addr = BUF_GPA + slot * 64;
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 8; i++)
		desc[slot * 16 + i] = (uint8_t)(addr >> (8 * i));
	desc[slot * 16 + 8] = 64;
	desc[slot * 16 + 12] = VIRTQ_DESC_F_WRITE;
	ring16(m, AVAIL_GPA + 4 + 2 * slot)[0] = slot;
	__atomic_store_n(ring16(m, AVAIL_GPA + 2), (uint16_t)(n + 1), __ATOMIC_RELEASE);
	/* The notify write: 2 bytes at the queue's address (the fake ioeventfd did not take it). */
	wr(m, m->bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	for (int i = 0; i < 2000 && __atomic_load_n(ring16(m, USED_GPA + 2), __ATOMIC_ACQUIRE) != n + 1; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(*ring16(m, USED_GPA + 2), n + 1);
}

struct pci_snapshot {
	uint8_t *fn, *msix, *vp, *rng, *bus;
	size_t fn_len, msix_len, vp_len, rng_len, bus_len;
};

static void take(struct machine *m, struct pci_snapshot *s)
{
	struct pci_function_state *fn = malloc(sizeof(*fn));
	struct msix_state *ms = malloc(sizeof(*ms));
	struct virtio_pci_state *vp = malloc(sizeof(*vp));
	struct virtio_rng_state rs;
	struct pci_bus_state bs;

	virtio_pci_freeze(m->t);
	pci_bus_save(m->pci, &bs);
	pci_function_save(virtio_pci_device(m->t), fn);
	msix_save(virtio_pci_msix(m->t), ms);
	virtio_pci_save(m->t, vp);
	virtio_rng_save(m->rng, &rs);
	virtio_pci_thaw(m->t);
	s->bus = ENCODE(pci_bus_state_enc, &bs, &s->bus_len);
	s->fn = ENCODE(pci_function_state_enc, fn, &s->fn_len);
	s->msix = ENCODE(msix_state_enc, ms, &s->msix_len);
	s->vp = ENCODE(virtio_pci_state_enc, vp, &s->vp_len);
	s->rng = ENCODE(virtio_rng_state_enc, &rs, &s->rng_len);
	assert_int_equal(s->msix_len, 4 + ms->nr * MSIX_ENTRY_SIZE + msix_pba_size(ms->nr));
	assert_int_equal(s->vp_len, 40 + vp->nr_queues * 40);
	free(fn);
	free(ms);
	free(vp);
}

static int put_back(struct machine *m, const struct pci_snapshot *s, char *err, size_t err_size)
{
	struct pci_function_state *fn = malloc(sizeof(*fn));
	struct msix_state *ms = malloc(sizeof(*ms));
	struct virtio_pci_state *vp = malloc(sizeof(*vp));
	struct virtio_rng_state rs;
	struct pci_bus_state bs;
	int ret;

	assert_int_equal(pci_bus_state_dec(&bs, s->bus, s->bus_len, pci_bus_state_codec.version, err, err_size), 0);
	assert_int_equal(pci_function_state_dec(fn, s->fn, s->fn_len, pci_function_state_codec.version, err, err_size),
			 0);
	assert_int_equal(msix_state_dec(ms, s->msix, s->msix_len, msix_state_codec.version, err, err_size), 0);
	assert_int_equal(virtio_pci_state_dec(vp, s->vp, s->vp_len, virtio_pci_state_codec.version, err, err_size), 0);
	assert_int_equal(virtio_rng_state_dec(&rs, s->rng, s->rng_len, virtio_rng_state_codec.version, err, err_size),
			 0);
	ret = pci_bus_restore(m->pci, &bs, err, err_size);
	ret = ret ?: pci_function_restore(virtio_pci_device(m->t), fn, err, err_size);
	ret = ret ?: msix_restore(virtio_pci_msix(m->t), ms, err, err_size);
	ret = ret ?: virtio_pci_restore(m->t, vp, err, err_size);
	if (!ret)
		virtio_rng_restore(m->rng, &rs);
	free(fn);
	free(ms);
	free(vp);
	return ret;
}

static void free_snapshot(struct pci_snapshot *s)
{
	free(s->bus);
	free(s->fn);
	free(s->msix);
	free(s->vp);
	free(s->rng);
}

static void test_virtio_rng_round_trip(void **state)
{
	struct machine *a = machine_create(), *b = machine_create();
	struct pci_snapshot s;
	uint64_t bytes;
	char err[256];

	(void)state;
	driver_init(a);
	request(a, 0);
	request(a, 1);
	bytes = virtio_rng_bytes(a->rng);
	assert_int_equal(bytes, 128);
	take(a, &s);

	/* Guest RAM goes with the snapshot (the memory file); the device state with the sections. */
	memcpy(b->mem.base, a->mem.base, RAM_SIZE);
	b->bar = a->bar;
	assert_int_equal(put_back(b, &s, err, sizeof(err)), 0);

	/* The restored device: same status, BAR where the guest put it, the queue's notify address
	 * registered there, MSI-X vectors routed with irqfds, the byte count carried over. */
	assert_int_equal(virtio_pci_status(b->t), 0x0f);
	assert_int_equal(rd(b, CFG(PCI_BASE_ADDRESS_0), 4) & ~0xfu, a->bar);
	assert_int_equal(b->kvm.ioeventfds, 1);
	assert_int_equal(b->kvm.ioeventfd_addr, a->bar + VIRTIO_PCI_NOTIFY_OFFSET);
	assert_int_equal(b->kvm.irqfds, 2);
	assert_int_equal(virtio_rng_bytes(b->rng), bytes);
	wr(b, COMMON(b, VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
	assert_int_equal(rd(b, COMMON(b, VIRTIO_PCI_COMMON_Q_SIZE), 2), QSIZE);
	assert_int_equal(rd(b, COMMON(b, VIRTIO_PCI_COMMON_Q_MSIX), 2), 1);
	assert_int_equal(rd(b, COMMON(b, VIRTIO_PCI_COMMON_Q_DESCLO), 4), DESC_GPA);

	/* The queue goes on from its indices: the third request is used at index 3. */
	request(b, 2);
	assert_int_equal(virtio_rng_bytes(b->rng), bytes + 64);
	/* The original, untouched by all this, goes on too (a clone does not steal its queue). */
	request(a, 2);

	/* Encoding the restored device gives the original's bytes back (but for the indices moved on). */
	free_snapshot(&s);
	machine_destroy(a);
	machine_destroy(b);
}

static void test_virtio_restore_refusals(void **state)
{
	struct machine *a = machine_create(), *b = machine_create(), *c;
	struct virtio_pci_state *vp = malloc(sizeof(*vp)), *vp2 = malloc(sizeof(*vp2));
	struct pci_function_state *fn = malloc(sizeof(*fn));
	struct msix_state *ms = malloc(sizeof(*ms)), *ms2 = malloc(sizeof(*ms2));
	struct pci_snapshot s;
	struct pci_bus_state bs;
	char err[256];

	(void)state;
	driver_init(a);
	request(a, 0);
	take(a, &s);

	CHECK_DECODER(pci_bus_state_dec, &bs, s.bus, s.bus_len, pci_bus_state_codec.version);
	CHECK_DECODER(pci_function_state_dec, fn, s.fn, s.fn_len, pci_function_state_codec.version);
	CHECK_DECODER(msix_state_dec, ms, s.msix, s.msix_len, msix_state_codec.version);
	CHECK_DECODER(virtio_pci_state_dec, vp, s.vp, s.vp_len, virtio_pci_state_codec.version);

	/* Another device's config space (its read-only device ID differs) is refused by the function. */
	assert_int_equal(pci_function_state_dec(fn, s.fn, s.fn_len, pci_function_state_codec.version, err, sizeof(err)),
			 0);
	fn->config[PCI_DEVICE_ID] ^= 1;
	assert_int_equal(pci_function_restore(virtio_pci_device(b->t), fn, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "read-only"));

	/* A different set of slots. */
	assert_int_equal(pci_bus_state_dec(&bs, s.bus, s.bus_len, pci_bus_state_codec.version, err, sizeof(err)), 0);
	bs.slots |= 1u << 7;
	assert_int_equal(pci_bus_restore(b->pci, &bs, err, sizeof(err)), -EINVAL);

	/* MSI-X: another vector count; a pending bit past the last vector. */
	assert_int_equal(msix_state_dec(ms, s.msix, s.msix_len, msix_state_codec.version, err, sizeof(err)), 0);
	*ms2 = *ms;
	ms2->nr = 1;
	assert_int_equal(msix_restore(virtio_pci_msix(b->t), ms2, err, sizeof(err)), -EINVAL);
	s.msix[s.msix_len - 1] = 0x80;
	assert_int_equal(msix_state_dec(ms2, s.msix, s.msix_len, msix_state_codec.version, err, sizeof(err)), -EINVAL);

	/* The transport: another device type, rings outside RAM, impossible queue values. */
	assert_int_equal(virtio_pci_state_dec(vp, s.vp, s.vp_len, virtio_pci_state_codec.version, err, sizeof(err)), 0);
	*vp2 = *vp;
	vp2->device_id = VIRTIO_ID_NET;
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);
	*vp2 = *vp;
	vp2->queues[0].desc = RAM_SIZE + 0x1000;
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);
	assert_int_equal(b->kvm.ioeventfds, 0); /* nothing left half set up */
	*vp2 = *vp;
	vp2->queues[0].size = 3;
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);
	*vp2 = *vp;
	vp2->queues[0].vq.last_avail_idx = (uint16_t)(vp2->queues[0].vq.used_idx + QSIZE + 1);
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);
	*vp2 = *vp;
	vp2->driver_features = 0; /* FEATURES_OK without VERSION_1 */
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);
	*vp2 = *vp;
	vp2->config_msix_vector = 7;
	assert_int_equal(virtio_pci_restore(b->t, vp2, err, sizeof(err)), -EINVAL);

	/* And the good state still loads into a fresh machine after all that. */
	c = machine_create();
	memcpy(c->mem.base, a->mem.base, RAM_SIZE);
	c->bar = a->bar;
	s.msix[s.msix_len - 1] = 0;
	assert_int_equal(put_back(c, &s, err, sizeof(err)), 0);
	request(c, 1);

	free_snapshot(&s);
	free(vp);
	free(vp2);
	free(fn);
	free(ms);
	free(ms2);
	machine_destroy(a);
	machine_destroy(b);
	machine_destroy(c);
}

static void test_virtqueue_indices(void **state)
{
	struct guest_memory mem;
	struct virtqueue vq;
	struct vq_indices in = { .last_avail_idx = 7, .used_idx = 5, .signalled_used = 4 }, out;

	(void)state;
	assert_int_equal(guest_memory_init(&mem, 4 * MIB, 4 * MIB), 0);
	assert_int_equal(vq_init(&vq, &mem, 8, 0x1000, 0x2000, 0x3000, true, false), 0);
	assert_int_equal(vq_restore_indices(&vq, &in), 0);
	vq_save_indices(&vq, &out);
	/* The two chains popped but not pushed are offered again. */
	assert_int_equal(out.last_avail_idx, 5);
	assert_int_equal(out.used_idx, 5);
	assert_int_equal(out.signalled_used, 4);
	assert_false(out.broken);
	in.last_avail_idx = 14; /* 9 outstanding in an 8-entry queue */
	assert_int_equal(vq_restore_indices(&vq, &in), -EINVAL);
	in = (struct vq_indices){ .last_avail_idx = 1, .used_idx = 0xffff, .broken = true }; /* wraps: 2 outstanding */
	assert_int_equal(vq_restore_indices(&vq, &in), 0);
	assert_true(vq.broken);
	guest_memory_destroy(&mem);
}

static void test_virtio_blk_state(void **state)
{
	struct virtio_blk_state st = { .capacity = 2048, .read_only = true }, st2;
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	memcpy(st.id, "kiln_data_disk", 14);
	buf = ENCODE(virtio_blk_state_enc, &st, &len);
	CHECK_DECODER(virtio_blk_state_dec, &st2, buf, len, virtio_blk_state_codec.version);
	assert_int_equal(virtio_blk_state_dec(&st2, buf, len, virtio_blk_state_codec.version, err, sizeof(err)), 0);
	assert_int_equal(st2.capacity, 2048);
	assert_true(st2.read_only);
	assert_memory_equal(st2.id, st.id, sizeof(st.id));
	buf[8] = 2; /* read_only */
	assert_int_equal(virtio_blk_state_dec(&st2, buf, len, virtio_blk_state_codec.version, err, sizeof(err)),
			 -EINVAL);
	free(buf);
}

static void test_virtio_net_state(void **state)
{
	struct virtio_net_state st = { .mac = { 0x02, 0x6b, 0x69, 0x6c, 0x6e, 0x01 } }, st2;
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	st.stats.rx_packets = 7;
	st.stats.tx_bytes = 1500;
	buf = ENCODE(virtio_net_state_enc, &st, &len);
	CHECK_DECODER(virtio_net_state_dec, &st2, buf, len, virtio_net_state_codec.version);
	assert_int_equal(virtio_net_state_dec(&st2, buf, len, virtio_net_state_codec.version, err, sizeof(err)), 0);
	assert_memory_equal(st2.mac, st.mac, 6);
	assert_int_equal(st2.stats.rx_packets, 7);
	assert_int_equal(st2.stats.tx_bytes, 1500);
	buf[0] |= 1; /* a multicast address */
	assert_int_equal(virtio_net_state_dec(&st2, buf, len, virtio_net_state_codec.version, err, sizeof(err)),
			 -EINVAL);
	free(buf);
}

/* ---- DISK records ---- */

STATE_CODEC_FNS(snap_disk, struct snap_disk)

static void test_disk_record(void **state)
{
	char path[] = "/tmp/kiln-disk-XXXXXX";
	struct snap_disk d, d2;
	int fd = mkstemp(path);
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(snap_disk_record(&d, path, true), 0);
	assert_int_equal(d.size, 1 << 20);
	buf = ENCODE(snap_disk_enc, &d, &len);
	CHECK_DECODER(snap_disk_dec, &d2, buf, len, snap_disk_codec.version);
	assert_int_equal(snap_disk_dec(&d2, buf, len, snap_disk_codec.version, err, sizeof(err)), 0);
	assert_string_equal(d2.path, path);
	assert_true(d2.read_only);
	assert_int_equal(snap_disk_check(&d2, NULL, false, err, sizeof(err)), 0);
	/* The disk grew: refused. Gone: refused. */
	assert_int_equal(ftruncate(fd, 2 << 20), 0);
	assert_int_equal(snap_disk_check(&d2, NULL, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bytes"));
	close(fd);
	unlink(path);
	assert_int_equal(snap_disk_check(&d2, NULL, false, err, sizeof(err)), -ENOENT);
	buf[4] = 0; /* a NUL inside the path */
	assert_int_equal(snap_disk_dec(&d2, buf, len, snap_disk_codec.version, err, sizeof(err)), -EINVAL);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_round_trip),
		cmocka_unit_test(test_i8042_round_trip),
		cmocka_unit_test(test_rtc_round_trip),
		cmocka_unit_test(test_acpi_pm_round_trip),
		cmocka_unit_test(test_virtio_rng_round_trip),
		cmocka_unit_test(test_virtio_restore_refusals),
		cmocka_unit_test(test_virtqueue_indices),
		cmocka_unit_test(test_virtio_blk_state),
		cmocka_unit_test(test_virtio_net_state),
		cmocka_unit_test(test_disk_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
