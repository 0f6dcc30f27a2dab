// SPDX-License-Identifier: MIT
/*
 * PCI bus 0: configuration mechanism #1 and ECAM as Linux's probes use them, the type 0 header's
 * read-only and writable bits, BAR sizing/assignment/moves and their dispatch, the capability list,
 * INTx routing and sharing, and hostile config traffic.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/pci/pci.h"

#define ECAM 0xe0000000ull
#define MMIO32 0xc0000000ull
#define MMIO32_SIZE 0x20000000ull
#define MMIO64 0x1000000000ull
#define MMIO64_SIZE 0x1000000000ull
#define IOWIN 0xc000u
#define IOWIN_SIZE 0x4000u

#define TEST_VENDOR 0x1af4
#define TEST_DEVICE 0x1041
#define TEST_SLOT 3

struct testdev {
	struct pci_device pdev;
	int accesses;
	unsigned int last_bar;
	uint64_t last_offset;
	uint32_t last_len;
	bool last_write;
	uint8_t last_data[8];
	int config_writes;
	uint32_t last_cfg_off, last_cfg_len;
	int mapped_calls;
	uint64_t mapped_gpa[PCI_NR_BARS];
};

struct fixture {
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct testdev dev;   /* slot 3: BAR0 mem32 4 KiB, BAR1 mem32 prefetchable 64 KiB, BAR2/3 mem64 16 KiB, BAR4 I/O 32 */
	struct testdev other; /* for sharing and slot tests, not registered by setup */
	int level[24];
	int irq_calls;
};

static void dev_bar_access(struct pci_device *pdev, unsigned int bar, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	struct testdev *t = pdev->opaque;

	t->accesses++;
	t->last_bar = bar;
	t->last_offset = offset;
	t->last_len = len;
	t->last_write = is_write;
	if (is_write)
		memcpy(t->last_data, data, len);
	else
		memset(data, 0xa0 + (int)bar, len);
}

static void dev_config_write(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct testdev *t = pdev->opaque;

	t->config_writes++;
	t->last_cfg_off = offset;
	t->last_cfg_len = len;
}

static void dev_bar_mapped(struct pci_device *pdev, unsigned int bar, uint64_t gpa)
{
	struct testdev *t = pdev->opaque;

	t->mapped_calls++;
	t->mapped_gpa[bar] = gpa;
}

static const struct pci_device_ops test_ops = {
	.bar_access = dev_bar_access,
	.config_write = dev_config_write,
	.bar_mapped = dev_bar_mapped,
};

static void fake_irq(void *opaque, uint32_t gsi, int level)
{
	struct fixture *f = opaque;

	if (gsi < 24)
		f->level[gsi] = level;
	f->irq_calls++;
}

static void testdev_init(struct testdev *t, bool intx)
{
	const struct pci_device_info info = {
		.name = "test", .vendor = TEST_VENDOR, .device = TEST_DEVICE, .subsystem_vendor = 0x1af4,
		.subsystem = 0x1100, .class_code = 0x020000, .revision = 1, .intx = intx,
	};

	memset(t, 0, sizeof(*t));
	pci_device_init(&t->pdev, &info, &test_ops, t);
	for (int i = 0; i < PCI_NR_BARS; i++)
		t->mapped_gpa[i] = PCI_BAR_UNMAPPED;
}

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));
	struct pci_bus_config cfg = {
		.ecam_base = ECAM, .mmio32_base = MMIO32, .mmio32_size = MMIO32_SIZE, .mmio64_base = MMIO64,
		.mmio64_size = MMIO64_SIZE, .io_base = IOWIN, .io_size = IOWIN_SIZE, .intx_set = fake_irq,
	};

	cfg.intx_opaque = f;
	bus_init(&f->pio, "pio");
	bus_init(&f->mmio, "mmio");
	f->pci = pci_bus_create(&cfg);
	assert_non_null(f->pci);
	assert_int_equal(pci_bus_attach(f->pci, &f->pio, &f->mmio), 0);

	testdev_init(&f->dev, true);
	assert_int_equal(pci_device_add_bar(&f->dev.pdev, 0, 4096, PCI_BAR_MEM32, false), 0);
	assert_int_equal(pci_device_add_bar(&f->dev.pdev, 1, 65536, PCI_BAR_MEM32, true), 0);
	assert_int_equal(pci_device_add_bar(&f->dev.pdev, 2, 16384, PCI_BAR_MEM64, false), 0);
	assert_int_equal(pci_device_add_bar(&f->dev.pdev, 4, 32, PCI_BAR_IO, false), 0);
	assert_int_equal(pci_register_device(f->pci, &f->dev.pdev, TEST_SLOT), TEST_SLOT);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pci_bus_destroy(f->pci);
	bus_destroy(&f->pio);
	bus_destroy(&f->mmio);
	test_free(f);
	return 0;
}

static uint32_t le(const uint8_t *d, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void put(uint8_t *d, uint64_t v, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t pio_read(struct fixture *f, uint16_t port, uint32_t len)
{
	uint8_t d[4] = { 0x5a, 0x5a, 0x5a, 0x5a };

	assert_true(bus_access(&f->pio, port, d, len, false));
	return le(d, len);
}

static void pio_write(struct fixture *f, uint16_t port, uint32_t val, uint32_t len)
{
	uint8_t d[4];

	put(d, val, len);
	assert_true(bus_access(&f->pio, port, d, len, true));
}

static uint32_t conf1_addr(unsigned int bus, unsigned int dev, unsigned int fn, unsigned int reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read(struct fixture *f, unsigned int dev, unsigned int reg, uint32_t len)
{
	pio_write(f, 0xcf8, conf1_addr(0, dev, 0, reg), 4);
	return pio_read(f, (uint16_t)(0xcfc + (reg & 3)), len);
}

static void cfg_write(struct fixture *f, unsigned int dev, unsigned int reg, uint32_t val, uint32_t len)
{
	pio_write(f, 0xcf8, conf1_addr(0, dev, 0, reg), 4);
	pio_write(f, (uint16_t)(0xcfc + (reg & 3)), val, len);
}

static uint64_t mmio_read(struct fixture *f, uint64_t gpa, uint32_t len)
{
	uint8_t d[8];

	memset(d, 0x5a, sizeof(d));
	if (!bus_access(&f->mmio, gpa, d, len, false))
		memset(d, 0xee, sizeof(d)); /* nothing registered at all */
	return len == 8 ? (uint64_t)le(d, 4) | (uint64_t)le(d + 4, 4) << 32 : le(d, len);
}

static void mmio_write(struct fixture *f, uint64_t gpa, uint64_t val, uint32_t len)
{
	uint8_t d[8];

	put(d, val, len);
	bus_access(&f->mmio, gpa, d, len, true);
}

static uint32_t ecam_read(struct fixture *f, unsigned int dev, unsigned int fn, unsigned int reg, uint32_t len)
{
	return (uint32_t)mmio_read(f, ECAM + ((uint64_t)dev << 15 | fn << 12 | reg), len);
}

static void ecam_write(struct fixture *f, unsigned int dev, unsigned int fn, unsigned int reg, uint32_t val, uint32_t len)
{
	mmio_write(f, ECAM + ((uint64_t)dev << 15 | fn << 12 | reg), val, len);
}

static uint64_t bar_addr(struct fixture *f, unsigned int dev, unsigned int bar)
{
	uint32_t lo = cfg_read(f, dev, PCI_BASE_ADDRESS_0 + 4 * bar, 4);

	if (lo & 1)
		return lo & ~3u;
	if ((lo & 6) == 4)
		return (uint64_t)cfg_read(f, dev, PCI_BASE_ADDRESS_0 + 4 * (bar + 1), 4) << 32 | (lo & ~0xfu);
	return lo & ~0xfu;
}

/* ---- mechanism #1 ---- */

static void test_conf1_host_bridge(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 4), PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(cfg_read(f, 0, 0x08, 4) >> 8, PCI_CLASS_HOST_BRIDGE);
	/* Linux's pci_sanity_check: class word at 0x0a. */
	assert_int_equal(cfg_read(f, 0, 0x0a, 2), 0x0600);
	assert_int_equal(cfg_read(f, 0, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(cfg_read(f, 0, PCI_INTERRUPT_PIN, 1), 0);
	for (unsigned int bar = 0; bar < 6; bar++) {
		cfg_write(f, 0, PCI_BASE_ADDRESS_0 + 4 * bar, 0xffffffff, 4);
		assert_int_equal(cfg_read(f, 0, PCI_BASE_ADDRESS_0 + 4 * bar, 4), 0); /* no BARs */
	}
	/* The test device. */
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_VENDOR_ID, 2), TEST_VENDOR);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_DEVICE_ID, 2), TEST_DEVICE);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x08, 4), 0x02000001);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
}

static void test_conf1_address_register(void **state)
{
	struct fixture *f = *state;

	/* Linux's pci_check_type1: a dword write of 0x80000000 reads back. */
	pio_write(f, 0xcf8, 0x80000000, 4);
	assert_int_equal(pio_read(f, 0xcf8, 4), 0x80000000);
	/* Reserved bits 30:24 and 1:0 read 0. */
	pio_write(f, 0xcf8, 0xffffffff, 4);
	assert_int_equal(pio_read(f, 0xcf8, 4), 0x80fffffc);
	/* Byte and word accesses to 0xcf8-0xcfb are not CONFIG_ADDRESS (PCI 3.0 s3.2.2.3.2). */
	pio_write(f, 0xcf8, 0x80001800, 4);
	pio_write(f, 0xcfb, 0x01, 1);
	pio_write(f, 0xcf8, 0x00, 1);
	pio_write(f, 0xcfa, 0x0000, 2);
	assert_int_equal(pio_read(f, 0xcf8, 4), 0x80001800);
	/* ... and read all-ones, so Linux's type 2 probe (inb(0xcf8) == 0) fails. */
	assert_int_equal(pio_read(f, 0xcf8, 1), 0xff);
	assert_int_equal(pio_read(f, 0xcfa, 1), 0xff);
	assert_int_equal(pio_read(f, 0xcf9, 2), 0xffff);
}

static void test_conf1_enable_bit(void **state)
{
	struct fixture *f = *state;

	pio_write(f, 0xcf8, conf1_addr(0, 0, 0, 0) & ~0x80000000u, 4);
	assert_int_equal(pio_read(f, 0xcfc, 4), 0xffffffff);
	/* A write with the enable bit clear reaches nothing. */
	pio_write(f, 0xcf8, conf1_addr(0, TEST_SLOT, 0, PCI_COMMAND) & ~0x80000000u, 4);
	pio_write(f, 0xcfc, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_COMMAND, 2), 0);
	assert_int_equal(f->dev.config_writes, 0);
}

static void test_conf1_unaligned(void **state)
{
	struct fixture *f = *state;
	uint32_t id = PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR;

	pio_write(f, 0xcf8, conf1_addr(0, 0, 0, 0), 4);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(pio_read(f, (uint16_t)(0xcfc + i), 1), (id >> (8 * i)) & 0xff);
	assert_int_equal(pio_read(f, 0xcfe, 2), PCI_HOST_BRIDGE_DEVICE);
	assert_int_equal(pio_read(f, 0xcfd, 2), (id >> 8) & 0xffff);
	/* Running past 0xcff: refused. */
	assert_int_equal(pio_read(f, 0xcfd, 4), 0xffffffff);
	assert_int_equal(pio_read(f, 0xcff, 2), 0xffff);
	/* Register bits 1:0 of CONFIG_ADDRESS are ignored: the data port offset selects the byte. */
	pio_write(f, 0xcf8, conf1_addr(0, TEST_SLOT, 0, PCI_INTERRUPT_LINE) | 3, 4);
	assert_int_equal(pio_read(f, 0xcfd, 1), 1); /* Interrupt Pin = INTA# */
	/* A byte write lands on its byte only. */
	cfg_write(f, TEST_SLOT, PCI_INTERRUPT_LINE, 0x0b, 1);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_INTERRUPT_LINE, 4) & 0xffff, 0x010b);
}

static void test_absent_devices(void **state)
{
	struct fixture *f = *state;

	for (unsigned int d = 0; d < PCI_MAX_DEVICES; d++) {
		uint32_t v = cfg_read(f, d, 0, 4);

		if (d == 0 || d == TEST_SLOT)
			assert_int_not_equal(v, 0xffffffff);
		else
			assert_int_equal(v, 0xffffffff);
		/* Functions 1-7 do not exist (header type bit 7 clear). */
		for (unsigned int fn = 1; fn < 8; fn++) {
			pio_write(f, 0xcf8, conf1_addr(0, d, fn, 0), 4);
			assert_int_equal(pio_read(f, 0xcfc, 4), 0xffffffff);
		}
	}
	/* Buses other than 0 are empty. */
	pio_write(f, 0xcf8, conf1_addr(1, 0, 0, 0), 4);
	assert_int_equal(pio_read(f, 0xcfc, 4), 0xffffffff);
	pio_write(f, 0xcf8, conf1_addr(255, TEST_SLOT, 0, 0), 4);
	assert_int_equal(pio_read(f, 0xcfc, 2), 0xffff);
	/* Writes to absent devices go nowhere. */
	pio_write(f, 0xcf8, conf1_addr(0, 7, 0, PCI_COMMAND), 4);
	pio_write(f, 0xcfc, 0xffffffff, 4);
	assert_int_equal(cfg_read(f, 7, 0, 4), 0xffffffff);
}

/* ---- ECAM ---- */

static void test_ecam(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(ecam_read(f, 0, 0, 0, 4), PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(ecam_read(f, 0, 0, 0x0b, 1), 0x06);
	assert_int_equal(ecam_read(f, 0, 0, 0x0a, 2), 0x0600);
	assert_int_equal(ecam_read(f, TEST_SLOT, 0, 0, 2), TEST_VENDOR);
	assert_int_equal(ecam_read(f, 5, 0, 0, 4), 0xffffffff);
	assert_int_equal(ecam_read(f, TEST_SLOT, 1, 0, 4), 0xffffffff);
	assert_int_equal(ecam_read(f, 31, 7, 0xffc, 4), 0xffffffff);
	/* Extended space exists and is empty: no extended capabilities, not an alias of 0x00. */
	assert_int_equal(ecam_read(f, 0, 0, 0x100, 4), 0);
	assert_int_equal(ecam_read(f, TEST_SLOT, 0, 0xffc, 4), 0);
	ecam_write(f, TEST_SLOT, 0, 0x100, 0xffffffff, 4);
	assert_int_equal(ecam_read(f, TEST_SLOT, 0, 0x100, 4), 0);
	/* Writes through ECAM show through mechanism #1 and the reverse. */
	ecam_write(f, TEST_SLOT, 0, PCI_INTERRUPT_LINE, 0x42, 1);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_INTERRUPT_LINE, 1), 0x42);
	cfg_write(f, TEST_SLOT, PCI_CACHE_LINE_SIZE, 0x10, 1);
	assert_int_equal(ecam_read(f, TEST_SLOT, 0, PCI_CACHE_LINE_SIZE, 1), 0x10);
	assert_int_equal(f->dev.last_cfg_off, PCI_CACHE_LINE_SIZE);
	assert_int_equal(f->dev.last_cfg_len, 1);
	/* Misaligned or 8-byte accesses are refused (PCIe s7.2.2): all-ones, writes dropped. */
	assert_int_equal(ecam_read(f, 0, 0, 1, 2), 0xffff);
	assert_int_equal(ecam_read(f, 0, 0, 2, 4), 0xffffffff);
	assert_int_equal(mmio_read(f, ECAM, 8), ~0ull);
	ecam_write(f, TEST_SLOT, 0, PCI_INTERRUPT_LINE - 1, 0x7777, 2);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_INTERRUPT_LINE, 1), 0x42);
	/* Only bus 0 is decoded: 1 MiB. */
	assert_int_equal(mmio_read(f, ECAM + PCI_ECAM_BUS_SIZE, 4), 0xeeeeeeee);
}

static void test_ecam_all_buses(void **state)
{
	struct fixture *f = *state;
	struct pci_bus_config cfg = { .ecam_base = 0x80000000, .ecam_nr_buses = 256 };
	struct pci_bus *pci = pci_bus_create(&cfg);
	struct bus mmio, pio;
	uint8_t d[4];

	(void)f;
	assert_non_null(pci);
	bus_init(&mmio, "mmio");
	bus_init(&pio, "pio");
	assert_int_equal(pci_bus_attach(pci, &pio, &mmio), 0);
	/* The MCFG may say buses 0-255: all are decoded, only bus 0 has devices. */
	assert_true(bus_access(&mmio, 0x80000000, d, 4, false));
	assert_int_equal(d[0] | d[1] << 8, PCI_HOST_BRIDGE_VENDOR);
	assert_true(bus_access(&mmio, 0x80000000 + (1u << 20), d, 4, false));
	assert_int_equal(d[0] & d[1] & d[2] & d[3], 0xff);
	assert_true(bus_access(&mmio, 0x8ffffffc, d, 4, false));
	assert_int_equal(d[0] & d[1] & d[2] & d[3], 0xff);
	assert_false(bus_access(&mmio, 0x90000000, d, 4, false));
	bus_destroy(&mmio);
	bus_destroy(&pio);
	pci_bus_destroy(pci);
}

/* ---- header bits ---- */

static void test_readonly_and_writable_bits(void **state)
{
	struct fixture *f = *state;
	uint32_t before[16];

	for (unsigned int i = 0; i < 16; i++)
		before[i] = cfg_read(f, TEST_SLOT, 4 * i, 4);
	cfg_write(f, TEST_SLOT, PCI_VENDOR_ID, 0xffffffff, 4);
	cfg_write(f, TEST_SLOT, 0x08, 0xffffffff, 4);   /* revision, class */
	cfg_write(f, TEST_SLOT, 0x0c, 0xffffffff, 4);   /* cache line, latency, header type, BIST */
	cfg_write(f, TEST_SLOT, 0x2c, 0xffffffff, 4);   /* subsystem */
	cfg_write(f, TEST_SLOT, 0x34, 0xffffffff, 4);   /* capabilities pointer */
	cfg_write(f, TEST_SLOT, 0x3c, 0xffffffff, 4);   /* line, pin, min_gnt, max_lat */
	assert_int_equal(cfg_read(f, TEST_SLOT, 0, 4), before[0]);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x08, 4), before[2]);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x0c, 4), (before[3] & ~0xffu) | 0xff); /* only cache line size */
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x2c, 4), before[11]);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x34, 4), before[13]);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0x3c, 4), (before[15] & ~0xffu) | 0xff); /* only interrupt line */
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_INTERRUPT_PIN, 1), 1);
	/* Command: IO, Memory, Bus Master, Interrupt Disable are writable; the rest read 0. */
	cfg_write(f, TEST_SLOT, PCI_COMMAND, 0xffff, 2);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_COMMAND, 2), 0x0407);
	cfg_write(f, TEST_SLOT, PCI_COMMAND, 0, 2);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_COMMAND, 2), 0);
	/* Status: writing ones to it changes nothing (RW1C bits are clear, the rest read-only). */
	cfg_write(f, TEST_SLOT, PCI_STATUS, 0xffff, 2);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_STATUS, 2), 0);
	/* Host bridge: same story. */
	cfg_write(f, 0, PCI_VENDOR_ID, 0, 4);
	cfg_write(f, 0, PCI_HEADER_TYPE, 0x80, 1);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 2), PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(cfg_read(f, 0, PCI_HEADER_TYPE, 1), 0);
	/* The expansion ROM BAR is not implemented: sizing reads 0. */
	cfg_write(f, TEST_SLOT, PCI_ROM_ADDRESS, 0xffffffff, 4);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_ROM_ADDRESS, 4), 0);
}

/* ---- BARs ---- */

/* The sizing protocol of PCI 3.0 s6.2.5.1 on one BAR register: returns what all-ones reads back as. */
static uint32_t size_probe(struct fixture *f, unsigned int reg)
{
	uint32_t old = cfg_read(f, TEST_SLOT, reg, 4), probe;

	cfg_write(f, TEST_SLOT, reg, 0xffffffff, 4);
	probe = cfg_read(f, TEST_SLOT, reg, 4);
	cfg_write(f, TEST_SLOT, reg, old, 4);
	assert_int_equal(cfg_read(f, TEST_SLOT, reg, 4), old);
	return probe;
}

static void test_bar_sizing_mem32(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(size_probe(f, PCI_BASE_ADDRESS_0), 0xfffff000);       /* 4 KiB, 32-bit, not prefetchable */
	assert_int_equal(size_probe(f, PCI_BASE_ADDRESS_0 + 4), 0xffff0008);   /* 64 KiB, prefetchable */
}

static void test_bar_sizing_mem64(void **state)
{
	struct fixture *f = *state;
	uint32_t lo = size_probe(f, PCI_BASE_ADDRESS_0 + 8), hi = size_probe(f, PCI_BASE_ADDRESS_0 + 12);
	uint64_t mask = (uint64_t)hi << 32 | (lo & ~0xfu);

	assert_int_equal(lo & 0xf, 0x4); /* 64-bit memory */
	assert_int_equal(hi, 0xffffffff);
	assert_int_equal(~mask + 1, 16384);
	/* A BAR larger than 4 GiB sizes through the upper half too. */
	{
		struct testdev *t = &f->other;

		testdev_init(t, false);
		assert_int_equal(pci_device_add_bar(&t->pdev, 0, 8ull << 30, PCI_BAR_MEM64, true), 0);
		assert_int_equal(pci_register_device(f->pci, &t->pdev, 5), 5);
		cfg_write(f, 5, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
		cfg_write(f, 5, PCI_BASE_ADDRESS_0 + 4, 0xffffffff, 4);
		assert_int_equal(cfg_read(f, 5, PCI_BASE_ADDRESS_0, 4), 0x0000000c);
		assert_int_equal(cfg_read(f, 5, PCI_BASE_ADDRESS_0 + 4, 4), 0xfffffffe);
	}
}

static void test_bar_sizing_io(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(size_probe(f, PCI_BASE_ADDRESS_0 + 16), 0x0000ffe1); /* 32 ports, bits 31:16 hardwired 0 */
	/* BAR5 is not implemented. */
	assert_int_equal(size_probe(f, PCI_BASE_ADDRESS_0 + 20), 0);
}

static void test_bar_assignment(void **state)
{
	struct fixture *f = *state;
	uint64_t b0 = bar_addr(f, TEST_SLOT, 0), b1 = bar_addr(f, TEST_SLOT, 1), b2 = bar_addr(f, TEST_SLOT, 2);
	uint64_t b4 = bar_addr(f, TEST_SLOT, 4);

	assert_true(b0 >= MMIO32 && b0 + 4096 <= MMIO32 + MMIO32_SIZE && b0 % 4096 == 0);
	assert_true(b1 >= MMIO32 && b1 + 65536 <= MMIO32 + MMIO32_SIZE && b1 % 65536 == 0);
	assert_true(b0 + 4096 <= b1 || b1 + 65536 <= b0);
	assert_true(b2 >= MMIO64 && b2 + 16384 <= MMIO64 + MMIO64_SIZE && b2 % 16384 == 0);
	assert_true(b4 >= IOWIN && b4 + 32 <= IOWIN + IOWIN_SIZE && b4 % 32 == 0);
	/* Assigned, but nothing decodes before the guest enables it. */
	assert_int_equal(f->dev.mapped_calls, 0);
	assert_int_equal(mmio_read(f, b0, 4), 0xffffffff);
	assert_int_equal(f->dev.accesses, 0);
}

static void test_bar_dispatch(void **state)
{
	struct fixture *f = *state;
	uint64_t b0 = bar_addr(f, TEST_SLOT, 0), b2 = bar_addr(f, TEST_SLOT, 2), b4 = bar_addr(f, TEST_SLOT, 4);
	uint8_t d[4];
	int n;

	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(f->dev.mapped_gpa[0], b0);
	assert_int_equal(f->dev.mapped_gpa[2], b2);
	assert_int_equal(f->dev.mapped_gpa[4], PCI_BAR_UNMAPPED); /* I/O still off */
	assert_int_equal(mmio_read(f, b0 + 0x10, 4), 0xa0a0a0a0);
	assert_int_equal(f->dev.last_bar, 0);
	assert_int_equal(f->dev.last_offset, 0x10);
	assert_int_equal(f->dev.last_len, 4);
	mmio_write(f, b2 + 0x3ff8, 0x1122334455667788ull, 8);
	assert_int_equal(f->dev.last_bar, 2);
	assert_int_equal(f->dev.last_offset, 0x3ff8);
	assert_true(f->dev.last_write);
	assert_int_equal(le(f->dev.last_data, 4), 0x55667788);
	/* An access running past the BAR's end is not the device's. */
	n = f->dev.accesses;
	assert_int_equal(mmio_read(f, b0 + 4094, 4), 0xffffffff);
	assert_int_equal(mmio_read(f, b0 + 4096, 4), 0xffffffff);
	assert_int_equal(f->dev.accesses, n);
	/* I/O BAR. */
	memset(d, 0, sizeof(d));
	assert_true(bus_access(&f->pio, b4 + 2, d, 2, false));
	assert_int_equal(d[0], 0xff); /* decoding off */
	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
	assert_int_equal(f->dev.mapped_gpa[4], b4);
	assert_true(bus_access(&f->pio, b4 + 2, d, 2, false));
	assert_int_equal(d[0], 0xa4);
	assert_int_equal(f->dev.last_bar, 4);
	assert_int_equal(f->dev.last_offset, 2);
	/* Memory decoding off again: unmapped, and the device is told. */
	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_IO, 2);
	assert_int_equal(f->dev.mapped_gpa[0], PCI_BAR_UNMAPPED);
	assert_int_equal(mmio_read(f, b0, 4), 0xffffffff);
}

static void test_bar_move(void **state)
{
	struct fixture *f = *state;
	uint64_t old = bar_addr(f, TEST_SLOT, 0), new = MMIO32 + 0x1000000, b2 = bar_addr(f, TEST_SLOT, 2);
	int n;

	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, (uint32_t)new, 4);
	assert_int_equal(f->dev.mapped_gpa[0], new);
	n = f->dev.accesses;
	assert_int_equal(mmio_read(f, old, 4), 0xffffffff);
	assert_int_equal(f->dev.accesses, n);
	assert_int_equal(mmio_read(f, new + 8, 4), 0xa0a0a0a0);
	assert_int_equal(f->dev.accesses, n + 1);
	assert_int_equal(f->dev.last_offset, 8);
	/* The sizing probe with decoding on: the all-ones address is outside the window, so nothing decodes. */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	assert_int_equal(f->dev.mapped_gpa[0], PCI_BAR_UNMAPPED);
	assert_int_equal(mmio_read(f, new, 4), 0xffffffff);
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, (uint32_t)new, 4);
	assert_int_equal(mmio_read(f, new, 4), 0xa0a0a0a0);
	/* Moved outside every window (e.g. into RAM): not decoded. */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, 0x100000, 4);
	assert_int_equal(f->dev.mapped_gpa[0], PCI_BAR_UNMAPPED);
	/* The window's last 64 KiB decode; one step further is the ECAM, which a BAR cannot shadow. */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 4, (uint32_t)(MMIO32 + MMIO32_SIZE - 0x10000), 4);
	assert_int_equal(f->dev.mapped_gpa[1], MMIO32 + MMIO32_SIZE - 0x10000);
	assert_int_equal(mmio_read(f, MMIO32 + MMIO32_SIZE - 4, 4), 0xa1a1a1a1);
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 4, (uint32_t)ECAM, 4);
	assert_int_equal(f->dev.mapped_gpa[1], PCI_BAR_UNMAPPED);
	assert_int_equal(ecam_read(f, 0, 0, 0, 2), PCI_HOST_BRIDGE_VENDOR);
	/* A 64-bit BAR moved into the 32-bit window, upper half first. */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 12, 0, 4);
	assert_int_equal(f->dev.mapped_gpa[2], PCI_BAR_UNMAPPED); /* b2's low half, upper 0: outside */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 8, (uint32_t)(MMIO32 + 0x2000000), 4);
	assert_int_equal(f->dev.mapped_gpa[2], MMIO32 + 0x2000000);
	assert_int_equal(mmio_read(f, MMIO32 + 0x2000000 + 0x100, 1), 0xa2);
	assert_int_equal(mmio_read(f, b2, 4), 0xffffffff);
	/* Two BARs programmed to overlap: the guest's problem, but no crash and one of them answers. */
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, (uint32_t)(MMIO32 + 0x2000000), 4);
	assert_int_not_equal(mmio_read(f, MMIO32 + 0x2000000, 4), 0xffffffff);
}

static void test_bar_declaration_errors(void **state)
{
	struct fixture *f = *state;
	struct testdev *t = &f->other;

	testdev_init(t, false);
	assert_int_equal(pci_device_add_bar(&t->pdev, 6, 4096, PCI_BAR_MEM32, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 3000, PCI_BAR_MEM32, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 8, PCI_BAR_MEM32, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 512, PCI_BAR_IO, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 5, 4096, PCI_BAR_MEM64, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 0, PCI_BAR_MEM32, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 4096, PCI_BAR_NONE, false), -EINVAL);
	assert_int_equal(pci_device_add_bar(&t->pdev, 1, 4096, PCI_BAR_MEM64, false), 0);
	assert_int_equal(pci_device_add_bar(&t->pdev, 2, 4096, PCI_BAR_MEM32, false), -EBUSY); /* upper half */
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 16, PCI_BAR_MEM64, false), -EBUSY);
	assert_int_equal(pci_device_add_bar(&t->pdev, 1, 4096, PCI_BAR_MEM32, false), -EBUSY);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 16, PCI_BAR_MEM32, false), 0);
}

static void test_register_slots(void **state)
{
	struct fixture *f = *state;
	static struct testdev many[PCI_MAX_DEVICES];
	struct testdev *t = &f->other;
	int slot;

	testdev_init(t, false);
	assert_int_equal(pci_register_device(f->pci, &t->pdev, 0), -EINVAL);  /* the host bridge's */
	assert_int_equal(pci_register_device(f->pci, &t->pdev, 32), -EINVAL);
	assert_int_equal(pci_register_device(f->pci, &t->pdev, TEST_SLOT), -EBUSY);
	assert_int_equal(pci_register_device(f->pci, &t->pdev, -1), 1);       /* lowest free */
	assert_int_equal(pci_register_device(f->pci, &t->pdev, 2), -EINVAL);  /* already registered */
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 4096, PCI_BAR_MEM32, false), -EBUSY);
	assert_int_equal(pci_add_capability(&t->pdev, 0x09, 4), -EBUSY);
	for (slot = 0; slot < PCI_MAX_DEVICES; slot++) {
		testdev_init(&many[slot], false);
		if (pci_register_device(f->pci, &many[slot].pdev, -1) < 0)
			break;
	}
	assert_int_equal(slot, PCI_MAX_DEVICES - 3); /* 0, 1 and 3 were taken */
	assert_int_equal(pci_register_device(f->pci, &many[slot].pdev, -1), -ENOSPC);
}

static void test_window_exhaustion(void **state)
{
	struct fixture *f = *state;
	struct pci_bus_config cfg = { .mmio32_base = 0x80000000, .mmio32_size = 0x10000, .io_base = 0x1000, .io_size = 0x100 };
	struct pci_bus *pci = pci_bus_create(&cfg);
	struct testdev *t = &f->other;

	assert_non_null(pci);
	testdev_init(t, false);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 0x8000, PCI_BAR_MEM32, false), 0);
	assert_int_equal(pci_device_add_bar(&t->pdev, 1, 0x8000, PCI_BAR_MEM32, false), 0);
	assert_int_equal(pci_device_add_bar(&t->pdev, 2, 0x1000, PCI_BAR_MEM64, false), 0); /* no 64-bit window, no room */
	assert_int_equal(pci_register_device(pci, &t->pdev, 1), -ENOSPC);
	/* Nothing stayed allocated: a device that fits still gets the window's start. */
	testdev_init(t, false);
	assert_int_equal(pci_device_add_bar(&t->pdev, 0, 0x10000, PCI_BAR_MEM32, false), 0);
	assert_int_equal(pci_device_add_bar(&t->pdev, 1, 0x100, PCI_BAR_IO, false), 0);
	assert_int_equal(pci_register_device(pci, &t->pdev, 1), 1);
	assert_int_equal(pci_config_read32(&t->pdev, PCI_BASE_ADDRESS_0), 0x80000000);
	assert_int_equal(pci_config_read32(&t->pdev, PCI_BASE_ADDRESS_0 + 4), 0x1001);
	pci_bus_destroy(pci);

	/* Bad configurations. */
	cfg = (struct pci_bus_config){ .mmio32_base = 0xfff00000, .mmio32_size = 0x200000 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .io_base = 0xff00, .io_size = 0x200 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .ecam_base = 0xe0001000 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .ecam_base = 0xe0000000, .mmio32_base = 0xd0000000, .mmio32_size = 0x20000000 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .ecam_base = 0xe0000000, .ecam_nr_buses = 256, .mmio32_base = 0xef000000,
				       .mmio32_size = 0x1000000 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .ecam_base = 0xe8000000, .ecam_nr_buses = 256 }; /* not 256 MiB-aligned */
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .ecam_base = 0xe0000000, .ecam_nr_buses = 257 };
	assert_null(pci_bus_create(&cfg));
	cfg = (struct pci_bus_config){ .mmio32_base = 0xc0000000, .mmio32_size = 0x1000, .mmio64_base = 0xc0000000,
				       .mmio64_size = 0x1000 };
	assert_null(pci_bus_create(&cfg));
}

/* ---- capabilities ---- */

static void test_capability_list(void **state)
{
	struct fixture *f = *state;
	struct testdev *t = &f->other;
	static const uint8_t ids[] = { 0x09, 0x10, 0x05 };
	static const uint8_t lens[] = { 5, 0x3c, 24 };
	int offs[3];
	unsigned int ptr, n = 0;

	testdev_init(t, false);
	assert_int_equal(pci_add_capability(&t->pdev, 0x09, 1), -EINVAL);
	for (int i = 0; i < 3; i++) {
		offs[i] = pci_add_capability(&t->pdev, ids[i], lens[i]);
		assert_true(offs[i] >= PCI_CAP_START && offs[i] % 4 == 0);
		if (i)
			assert_true(offs[i] >= offs[i - 1] + lens[i - 1]);
	}
	assert_int_equal(pci_add_capability(&t->pdev, 0x09, 0x80), -ENOSPC);
	assert_int_equal(pci_register_device(f->pci, &t->pdev, 9), 9);

	/* Walk it as an OS does: Status bit 4, the pointer at 0x34, then each capability's next pointer. */
	assert_true(cfg_read(f, 9, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	ptr = cfg_read(f, 9, PCI_CAPABILITY_LIST, 1);
	while (ptr && n < 48) {
		assert_int_equal(ptr, offs[n]);
		assert_int_equal(cfg_read(f, 9, ptr, 1), ids[n]);
		ptr = cfg_read(f, 9, ptr + 1, 1) & 0xfc;
		n++;
	}
	assert_int_equal(n, 3);
	/* The list is read-only. */
	cfg_write(f, 9, (unsigned int)offs[0], 0xffffffff, 4);
	assert_int_equal(cfg_read(f, 9, (unsigned int)offs[0], 2), 0x09 | (unsigned int)offs[1] << 8);
	/* No capabilities: Status bit 4 clear, pointer 0. */
	assert_false(cfg_read(f, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_read(f, 0, PCI_CAPABILITY_LIST, 1), 0);
}

/* ---- INTx ---- */

static void test_intx(void **state)
{
	struct fixture *f = *state;
	struct pci_device *d = &f->dev.pdev;
	uint32_t gsi = pci_intx_gsi(TEST_SLOT, 1);

	assert_int_equal(gsi, 16 + TEST_SLOT);
	assert_int_equal(pci_intx_gsi(8, 1), 16);
	assert_int_equal(pci_intx_gsi(31, 1), 23);
	assert_int_equal(pci_intx_gsi(1, 4), 20);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_INTERRUPT_LINE, 1), gsi);

	pci_intx_set(d, 1);
	assert_int_equal(f->level[gsi], 1);
	assert_true(cfg_read(f, TEST_SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_intx_set(d, 1); /* no change, no call */
	assert_int_equal(f->irq_calls, 1);
	/* Interrupt Disable drops the line; the status bit still shows the request. */
	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
	assert_int_equal(f->level[gsi], 0);
	assert_true(cfg_read(f, TEST_SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	cfg_write(f, TEST_SLOT, PCI_COMMAND, 0, 2);
	assert_int_equal(f->level[gsi], 1);
	pci_intx_set(d, 0);
	assert_int_equal(f->level[gsi], 0);
	assert_false(cfg_read(f, TEST_SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* A device without an interrupt pin never drives anything. */
	testdev_init(&f->other, false);
	assert_int_equal(pci_register_device(f->pci, &f->other.pdev, 4), 4);
	assert_int_equal(cfg_read(f, 4, PCI_INTERRUPT_PIN, 1), 0);
	pci_intx_set(&f->other.pdev, 1);
	assert_int_equal(f->irq_calls, 4);
}

static void test_intx_shared(void **state)
{
	struct fixture *f = *state;
	struct testdev *b = &f->other;
	uint32_t gsi = pci_intx_gsi(TEST_SLOT, 1);

	/* Slot 3 + 8 shares slot 3's GSI: the line is the OR of both requests. */
	testdev_init(b, true);
	assert_int_equal(pci_register_device(f->pci, &b->pdev, TEST_SLOT + 8), TEST_SLOT + 8);
	assert_int_equal(cfg_read(f, TEST_SLOT + 8, PCI_INTERRUPT_LINE, 1), gsi);
	pci_intx_set(&f->dev.pdev, 1);
	pci_intx_set(&b->pdev, 1);
	assert_int_equal(f->level[gsi], 1);
	pci_intx_set(&f->dev.pdev, 0);
	assert_int_equal(f->level[gsi], 1);
	cfg_write(f, TEST_SLOT + 8, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
	assert_int_equal(f->level[gsi], 0);
	pci_intx_set(&f->dev.pdev, 1);
	assert_int_equal(f->level[gsi], 1);
	pci_intx_set(&f->dev.pdev, 0);
	assert_int_equal(f->level[gsi], 0);
	cfg_write(f, TEST_SLOT + 8, PCI_COMMAND, 0, 2);
	assert_int_equal(f->level[gsi], 1);
	pci_intx_set(&b->pdev, 0);
	assert_int_equal(f->level[gsi], 0);
	assert_int_equal(f->irq_calls, 6);
}

/* ---- hostile guests ---- */

static uint32_t rng(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void test_hostile_config(void **state)
{
	struct fixture *f = *state;
	static const uint32_t lens[] = { 1, 2, 3, 4, 8 };
	uint32_t s = 12345;
	uint8_t d[8];

	for (int i = 0; i < 200000; i++) {
		uint32_t r = rng(&s), len = lens[r % 5], val = rng(&s);
		uint64_t off;

		switch (r % 7) {
		case 0: /* CONFIG_ADDRESS, any value, any size */
			put(d, val | 0x80000000u, 8);
			bus_access(&f->pio, 0xcf8 + rng(&s) % 8, d, len > 4 ? 4 : len, rng(&s) & 1);
			break;
		case 1: /* a config register of a real device through mechanism #1 */
			pio_write(f, 0xcf8, conf1_addr(0, (r >> 4) & 1 ? TEST_SLOT : 0, 0, rng(&s) & 0xff), 4);
			put(d, val, 8);
			bus_access(&f->pio, 0xcfc + rng(&s) % 4, d, len > 4 ? 4 : len, rng(&s) & 1);
			break;
		case 2: /* anywhere in the ECAM */
			off = rng(&s) % PCI_ECAM_BUS_SIZE;
			if (r & 0x100)
				off = ((uint64_t)TEST_SLOT << 15) | (off & 0x3f);
			put(d, val, 8);
			bus_access(&f->mmio, ECAM + off, d, len, rng(&s) & 1);
			break;
		case 3: /* BAR accesses anywhere in the windows */
			put(d, val, 8);
			bus_access(&f->mmio, MMIO32 + rng(&s) % MMIO32_SIZE, d, len, rng(&s) & 1);
			bus_access(&f->pio, IOWIN + rng(&s) % IOWIN_SIZE, d, len > 4 ? 4 : len, rng(&s) & 1);
			break;
		case 4: /* point the BARs at likely addresses */
			cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 4 * (rng(&s) % 6),
				  (uint32_t)(MMIO32 + (rng(&s) % 64) * 0x1000), 4);
			break;
		case 5:
			cfg_write(f, TEST_SLOT, PCI_COMMAND, val, 2);
			break;
		default:
			bus_access(&f->mmio, MMIO64 + rng(&s) % 0x100000, d, len, rng(&s) & 1);
			break;
		}
	}
	/* Identity survived; the bus still works. */
	assert_int_equal(cfg_read(f, 0, 0, 4), PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(cfg_read(f, TEST_SLOT, 0, 2), TEST_VENDOR);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 4, 4) & 0xf, 0x8);
	assert_int_equal(cfg_read(f, TEST_SLOT, PCI_BASE_ADDRESS_0 + 16, 4) & 0xffff0003, 0x1);
	cfg_write(f, TEST_SLOT, PCI_BASE_ADDRESS_0, (uint32_t)MMIO32, 4);
	cfg_write(f, TEST_SLOT, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(mmio_read(f, MMIO32 + 4, 4), 0xa0a0a0a0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_conf1_host_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf1_address_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf1_enable_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf1_unaligned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ecam, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_all_buses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_and_writable_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing_mem32, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing_mem64, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_assignment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_declaration_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_config, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
