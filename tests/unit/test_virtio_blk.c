// SPDX-License-Identifier: MIT
/*
 * virtio-blk (virtio 1.2 s5.2) and the raw image backend, against a fake KVM as in test_virtio_pci.c: a
 * real PCI bus reached through ECAM and the BAR window, rings and buffers in memfd guest memory, a
 * temporary image file. The test plays the driver (tests/lib/fake_driver.h), well-behaved and hostile,
 * runs the device event loop itself (completions from io_uring or the I/O thread reach it through the
 * backend's eventfd) and checks the image on the host. Every device test runs with both engines (io_uring
 * and the synchronous I/O thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "backends/block/raw.h"
#include "devices/pci/msix.h"
#include "devices/virtio/block.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "lib/log.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"

#include "fake_driver.h"
#include "fake_vmm.h"

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB)
#define SLOT 3

#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA 0x12000ull
#define HDR_GPA 0x20000ull   /* request i: header at HDR_GPA + 64 i, status at + 32 */
#define DATA_GPA 0x100000ull /* data buffers: 15 MiB */
#define QSIZE 64

#define IMAGE_SIZE (4 * MIB)
#define CAPACITY (IMAGE_SIZE / 512)

#define ALL_TRANSPORT (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | \
		       VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC))

/* ---- fixture ---- */

/* What a test wants: given as the cmocka prestate. */
struct variant {
	enum raw_engine engine;
	bool read_only;
	enum virtio_blk_cache cache;
	const char *id;
};

struct fixture {
	struct variant v;
	struct fake_vmm vm;
	struct fake_driver drv;
	struct virtio_blk *blk;
	struct virtio_pci *t;
	char path[64];
	int fd;           /* the image, for checks on the host */
	unsigned int slot; /* next header/status slot */
};

static struct virtio_blk_params blk_params(struct fixture *f)
{
	return (struct virtio_blk_params){
		.path = f->path, .read_only = f->v.read_only, .id = f->v.id, .cache = f->v.cache, .engine = f->v.engine,
	};
}

/* A 4 MiB image whose sector s holds bytes (s * 7 + i) & 0xff, i the byte index. */
static int make_image(struct fixture *f)
{
	uint8_t sector[512];

	snprintf(f->path, sizeof(f->path), "/tmp/kiln-blk-test-XXXXXX");
	f->fd = mkstemp(f->path);
	if (f->fd < 0)
		return -1;
	for (uint64_t s = 0; s < CAPACITY; s++) {
		for (unsigned int i = 0; i < 512; i++)
			sector[i] = (uint8_t)(s * 7 + i);
		if (pwrite(f->fd, sector, 512, (off_t)(s * 512)) != 512)
			return -1;
	}
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true, /* run by the test */
	};
	struct virtio_pci_params p;
	struct virtio_blk_params bp;

	if (!f)
		return -1;
	f->v = *(struct variant *)*state;
	if (make_image(f) || fake_vmm_init(&f->vm, &cfg))
		return -1;
	p = fake_vmm_virtio_params(&f->vm, SLOT);
	bp = blk_params(f);
	f->blk = virtio_blk_create(&p, &bp);
	if (!f->blk)
		return -1;
	f->t = virtio_blk_transport(f->blk);
	fake_driver_attach(&f->drv, &f->vm, virtio_pci_device(f->t), SLOT);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	/* vm_destroy's order: loop gone, then the bus, then the devices, then routing. */
	fake_vmm_stop(&f->vm);
	virtio_blk_destroy(f->blk);
	fake_vmm_destroy(&f->vm);
	close(f->fd);
	unlink(f->path);
	free(f);
	return 0;
}

/* ---- driver-side helpers ---- */

static uint64_t config_read(struct fixture *f, uint32_t off, uint32_t len)
{
	if (len == 8)
		return config_read(f, off, 4) | config_read(f, off + 4, 4) << 32;
	return fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_DEVICE_OFFSET + off, len);
}

static void *hva(struct fixture *f, uint64_t gpa, uint64_t len)
{
	return fake_vmm_hva(&f->vm, gpa, len);
}

#define STATUS_LIVE FAKE_DRIVER_STATUS_LIVE

/* s3.1.1 as Linux does it, accepting `features` (all the device offers when ~0). INTx, no MSI-X. */
static void driver_init_features(struct fixture *f, uint64_t features)
{
	uint64_t offered;

	assert_int_equal(fake_driver_reset(&f->drv), 0);
	offered = fake_driver_begin(&f->drv);
	assert_int_equal(fake_driver_accept(&f->drv, offered & features), FAKE_DRIVER_STATUS_FEATURES);
	fake_driver_queue(&f->drv, 0, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR);
	f->slot = 0;
	assert_int_equal(fake_driver_live(&f->drv), STATUS_LIVE);
}

static void driver_init(struct fixture *f)
{
	driver_init_features(f, ~0ull);
}

/* Lay the chain out in consecutive descriptors (wrapping) and offer it. Returns the head. */
static uint16_t submit_chain(struct fixture *f, const struct fake_seg *segs, unsigned int n)
{
	return fake_driver_submit(&f->drv, 0, segs, n);
}

/* KVM signalling the queue's ioeventfd after the guest's notify write. */
static void kick(struct fixture *f)
{
	assert_int_equal(fake_driver_kick(&f->drv, 0), 0);
}

static uint16_t used_idx(struct fixture *f)
{
	return fake_driver_used_idx(&f->drv, 0);
}

static struct virtq_used_elem used_elem(struct fixture *f, uint16_t i)
{
	return fake_driver_used_elem(&f->drv, 0, i);
}

/* Run the device event loop until `cond` holds (bounded: FAKE_VMM_WAIT_MS). */
#define WAIT_UNTIL(cond) do { bool ok_; FAKE_VMM_WAIT(&f->vm, ok_, (cond)); assert_true(ok_); } while (0)

/* Run the loop until it has nothing left to do (to show that something does NOT happen). */
static void settle(struct fixture *f)
{
	fake_vmm_run_idle(&f->vm);
}

/* A request slot: header at hdr_gpa(s), status byte at status_gpa(s). */
static uint64_t hdr_gpa(unsigned int s)
{
	return HDR_GPA + 64ull * s;
}

static uint64_t status_gpa(unsigned int s)
{
	return hdr_gpa(s) + 32;
}

static unsigned int new_slot(struct fixture *f, uint32_t type, uint64_t sector)
{
	unsigned int s = f->slot++ % 256;
	uint8_t hdr[16] = { 0 }, poison = 0xee;

	for (int i = 0; i < 4; i++)
		hdr[i] = (uint8_t)(type >> (8 * i));
	for (int i = 0; i < 8; i++)
		hdr[8 + i] = (uint8_t)(sector >> (8 * i));
	assert_int_equal(guest_memory_write(&f->vm.mem, hdr_gpa(s), hdr, 16), 0);
	assert_int_equal(guest_memory_write(&f->vm.mem, status_gpa(s), &poison, 1), 0);
	return s;
}

static uint8_t slot_status(struct fixture *f, unsigned int s)
{
	uint8_t v;

	assert_int_equal(guest_memory_read(&f->vm.mem, status_gpa(s), &v, 1), 0);
	return v;
}

/* Offer the chain, kick, wait for it to be used; returns the status byte. */
static uint8_t run_chain(struct fixture *f, unsigned int s, const struct fake_seg *segs, unsigned int n)
{
	uint16_t before = used_idx(f), head = submit_chain(f, segs, n);

	kick(f);
	WAIT_UNTIL(used_idx(f) == (uint16_t)(before + 1));
	assert_int_equal(used_elem(f, before).id, head);
	return slot_status(f, s);
}

/* The usual shape: header, one data buffer (writable for IN), status. `len` 0: no data descriptor. */
static uint8_t request(struct fixture *f, uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	unsigned int s = new_slot(f, type, sector);
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct fake_seg segs[3] = { { hdr_gpa(s), 16, false } };
	unsigned int n = 1;

	if (len)
		segs[n++] = (struct fake_seg){ data, len, in };
	segs[n++] = (struct fake_seg){ status_gpa(s), 1, true };
	return run_chain(f, s, segs, n);
}

/* Fill guest memory with a pattern seeded by `seed`. */
static void fill(struct fixture *f, uint64_t gpa, size_t len, unsigned int seed)
{
	uint8_t *p = hva(f, gpa, len);

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + seed + (i >> 9));
}

/* The image's sector s as make_image wrote it. */
static bool sector_original(const uint8_t *p, uint64_t s)
{
	for (unsigned int i = 0; i < 512; i++)
		if (p[i] != (uint8_t)(s * 7 + i))
			return false;
	return true;
}

/* Sector `s` of the image file still holds what make_image() wrote there. */
static void check_sector_original(struct fixture *f, uint64_t s)
{
	uint8_t buf[512];

	assert_int_equal(pread(f->fd, buf, 512, (off_t)(s * 512)), 512);
	assert_true(sector_original(buf, s));
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* What the host filesystem may allocate for its own bookkeeping when a hole splits an extent. */
#define SLACK (64 * 1024)

static uint64_t allocated_bytes(struct fixture *f)
{
	struct stat st;

	assert_int_equal(fstat(f->fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static uint8_t discard_like(struct fixture *f, uint32_t type, uint64_t sector, uint32_t count, uint32_t flags)
{
	uint8_t seg[16];

	for (int i = 0; i < 8; i++)
		seg[i] = (uint8_t)(sector >> (8 * i));
	for (int i = 0; i < 4; i++) {
		seg[8 + i] = (uint8_t)(count >> (8 * i));
		seg[12 + i] = (uint8_t)(flags >> (8 * i));
	}
	assert_int_equal(guest_memory_write(&f->vm.mem, DATA_GPA, seg, 16), 0);
	return request(f, type, 0, DATA_GPA, 16);
}

/* ---- tests ---- */

static void test_discovery(void **state)
{
	struct fixture *f = *state;
	struct pci_device *pdev = virtio_pci_device(f->t);
	uint64_t want = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | ALL_TRANSPORT;

	assert_int_equal(pci_config_read16(pdev, PCI_DEVICE_ID), 0x1042);
	assert_int_equal(pci_config_read32(pdev, PCI_REVISION_ID) >> 8, VIRTIO_BLK_PCI_CLASS);
	if (f->v.read_only)
		want |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		want |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (f->v.cache == VIRTIO_BLK_CACHE_WRITEBACK)
		want |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	assert_int_equal(fake_virtio_device_features(&f->drv.fv), want);

	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_CAPACITY, 8), CAPACITY);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_SIZE_MAX, 4), 0);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_SEG_MAX, 4), VIRTIO_BLK_QUEUE_SIZE - 2);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_WRITEBACK, 1), 0);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_NUM_QUEUES, 2), 1);
	if (!f->v.read_only) {
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4), VIRTIO_BLK_MAX_DISCARD_SECTORS);
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4), 1);
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4), 8);
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4),
				VIRTIO_BLK_MAX_DISCARD_SECTORS);
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4), 1);
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), 1);
	} else {
		assert_int_equal(config_read(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4), 0);
	}
	/* Read-only for the driver: a write changes nothing. */
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_DEVICE_OFFSET + VIRTIO_BLK_CFG_CAPACITY, 1, 4);
	assert_int_equal(config_read(f, VIRTIO_BLK_CFG_CAPACITY, 8), CAPACITY);

	assert_int_equal(virtio_blk_capacity_bytes(f->blk), IMAGE_SIZE);
	assert_string_equal(virtio_blk_path(f->blk), f->path);
	{
		/* The engine asked for, unless this host has no io_uring at all. */
		struct io_uring ring;
		bool have_uring = io_uring_queue_init(4, &ring, 0) == 0;

		if (have_uring)
			io_uring_queue_exit(&ring);
		if (have_uring || f->v.engine == RAW_ENGINE_SYNC)
			assert_int_equal(virtio_blk_engine(f->blk), f->v.engine);
	}
}

static void test_read_write(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[8192];
	unsigned int s;

	driver_init(f);
	/* Read sectors 10..17 (what make_image wrote). */
	memset(hva(f, DATA_GPA, 4096), 0, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 10, DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(used_elem(f, 0).len, 4096 + 1);
	for (int i = 0; i < 8; i++)
		assert_true(sector_original((uint8_t *)hva(f, DATA_GPA, 4096) + 512 * i, 10 + i));

	/* Write 8 KiB at sector 100 from two buffers; the image holds it. */
	fill(f, DATA_GPA + MIB, 8192, 3);
	s = new_slot(f, VIRTIO_BLK_T_OUT, 100);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false },
			{ DATA_GPA + MIB, 1536, false },
			{ DATA_GPA + MIB + 1536, 8192 - 1536, false },
			{ status_gpa(s), 1, true },
		};

		assert_int_equal(run_chain(f, s, segs, 4), VIRTIO_BLK_S_OK);
	}
	assert_int_equal(pread(f->fd, buf, 8192, 100 * 512), 8192);
	assert_memory_equal(buf, hva(f, DATA_GPA + MIB, 8192), 8192);
	check_sector_original(f, 99);
	check_sector_original(f, 116);

	/* Read it back through the device, into three buffers with the header and status sharing none. */
	memset(hva(f, DATA_GPA + 2 * MIB, 8192), 0, 8192);
	s = new_slot(f, VIRTIO_BLK_T_IN, 100);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 8, false },
			{ hdr_gpa(s) + 8, 8, false },
			{ DATA_GPA + 2 * MIB, 512, true },
			{ DATA_GPA + 2 * MIB + 512, 4096, true },
			{ DATA_GPA + 2 * MIB + 4608, 8192 - 4608, true },
			{ status_gpa(s), 1, true },
		};

		assert_int_equal(run_chain(f, s, segs, 6), VIRTIO_BLK_S_OK);
	}
	assert_memory_equal(hva(f, DATA_GPA + 2 * MIB, 8192), hva(f, DATA_GPA + MIB, 8192), 8192);

	/* The status byte sharing the data's last descriptor (framing is free, s2.6.4). */
	memset(hva(f, DATA_GPA + 3 * MIB, 1024), 0xaa, 1024);
	s = new_slot(f, VIRTIO_BLK_T_IN, 0);
	{
		struct fake_seg segs[] = { { hdr_gpa(s), 16, false }, { DATA_GPA + 3 * MIB, 513, true } };
		uint16_t before = used_idx(f);

		submit_chain(f, segs, 2);
		kick(f);
		WAIT_UNTIL(used_idx(f) == (uint16_t)(before + 1));
		assert_true(sector_original(hva(f, DATA_GPA + 3 * MIB, 512), 0));
		assert_int_equal(*(uint8_t *)hva(f, DATA_GPA + 3 * MIB + 512, 1), VIRTIO_BLK_S_OK);
	}
	/* A zero-length transfer is fine and does nothing. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 5, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

/* A request through an indirect table (s2.7.5.3): one ring descriptor, the chain in the table. */
static void test_indirect(void **state)
{
	struct fixture *f = *state;
	const uint64_t table = DATA_GPA + 4 * MIB;
	unsigned int s;
	uint16_t head;

	driver_init(f);
	assert_true(f->drv.features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC));
	fill(f, DATA_GPA, 4096, 11);
	s = new_slot(f, VIRTIO_BLK_T_OUT, 200);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false }, { DATA_GPA, 1024, false }, { DATA_GPA + 1024, 3072, false },
			{ status_gpa(s), 1, true },
		};

		head = fake_driver_submit_indirect(&f->drv, 0, table, segs, 4);
	}
	kick(f);
	WAIT_UNTIL(used_idx(f) == 1);
	assert_int_equal(used_elem(f, 0).id, head);
	assert_int_equal(slot_status(f, s), VIRTIO_BLK_S_OK);
	/* Read back through another table, into one buffer: what was written. */
	memset(hva(f, DATA_GPA + MIB, 4096), 0, 4096);
	s = new_slot(f, VIRTIO_BLK_T_IN, 200);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false }, { DATA_GPA + MIB, 4096, true }, { status_gpa(s), 1, true },
		};

		head = fake_driver_submit_indirect(&f->drv, 0, table + 0x1000, segs, 3);
	}
	kick(f);
	WAIT_UNTIL(used_idx(f) == 2);
	assert_int_equal(used_elem(f, 1).id, head);
	assert_int_equal(used_elem(f, 1).len, 4096 + 1);
	assert_int_equal(slot_status(f, s), VIRTIO_BLK_S_OK);
	assert_memory_equal(hva(f, DATA_GPA + MIB, 4096), hva(f, DATA_GPA, 4096), 4096);
}

static void test_many_in_flight(void **state)
{
	struct fixture *f = *state;
	enum { N = 20, LEN = 64 * 1024 };
	unsigned int slots[N];
	uint16_t before;

	driver_init(f);
	/* N writes of 64 KiB offered at once, one kick. */
	before = used_idx(f);
	for (unsigned int i = 0; i < N; i++) {
		fill(f, DATA_GPA + (uint64_t)i * LEN, LEN, i);
		slots[i] = new_slot(f, VIRTIO_BLK_T_OUT, 128ull * i);
		struct fake_seg segs[] = {
			{ hdr_gpa(slots[i]), 16, false },
			{ DATA_GPA + (uint64_t)i * LEN, LEN, false },
			{ status_gpa(slots[i]), 1, true },
		};
		submit_chain(f, segs, 3);
	}
	kick(f);
	WAIT_UNTIL(used_idx(f) == (uint16_t)(before + N));
	for (unsigned int i = 0; i < N; i++) {
		uint8_t buf[LEN];

		assert_int_equal(slot_status(f, slots[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(pread(f->fd, buf, LEN, (off_t)(128ull * i * 512)), LEN);
		assert_memory_equal(buf, hva(f, DATA_GPA + (uint64_t)i * LEN, LEN), LEN);
	}
	assert_int_equal(virtio_blk_in_flight(f->blk), 0);
}

static void test_flush(void **state)
{
	struct fixture *f = *state;

	driver_init(f);
	fill(f, DATA_GPA, 4096, 9);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	if (f->v.cache == VIRTIO_BLK_CACHE_WRITEBACK) {
		assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
		/* A flush carrying data is malformed. */
		assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	} else {
		/* Unsafe: FLUSH is not offered, so not supported either. */
		assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_UNSUPP);
	}
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

static void test_writeback_without_flush_negotiated(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];

	/* A driver that ignores FLUSH: writes are made stable one by one (RWF_DSYNC) and still work. */
	driver_init_features(f, ~VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	fill(f, DATA_GPA, 4096, 21);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 40, DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 4096, 40 * 512), 4096);
	assert_memory_equal(buf, hva(f, DATA_GPA, 4096), 4096);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_WRITE_ZEROES, 40, 8, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 4096, 40 * 512), 4096);
	assert_true(all_zero(buf, 4096));
}

static void test_get_id(void **state)
{
	struct fixture *f = *state;
	const char *id = f->v.id ? f->v.id : "";
	char want[20] = { 0 };

	memcpy(want, id, strnlen(id, 20));
	driver_init(f);
	memset(hva(f, DATA_GPA, 64), 0x55, 64);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 20), VIRTIO_BLK_S_OK);
	assert_memory_equal(hva(f, DATA_GPA, 20), want, 20);
	assert_int_equal(used_elem(f, 0).len, 21);
	/* A larger buffer gets 20 bytes, the rest untouched; a smaller one what fits. */
	memset(hva(f, DATA_GPA, 64), 0x55, 64);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 32), VIRTIO_BLK_S_OK);
	assert_memory_equal(hva(f, DATA_GPA, 20), want, 20);
	assert_int_equal(*(uint8_t *)hva(f, DATA_GPA + 20, 1), 0x55);
	memset(hva(f, DATA_GPA, 64), 0x55, 64);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 4), VIRTIO_BLK_S_OK);
	assert_memory_equal(hva(f, DATA_GPA, 4), want, 4);
	assert_int_equal(*(uint8_t *)hva(f, DATA_GPA + 4, 1), 0x55);
	/* No buffer at all: malformed. */
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 0, 0), VIRTIO_BLK_S_IOERR);
}

static void test_discard(void **state)
{
	struct fixture *f = *state;
	uint64_t before, after;

	driver_init(f);
	assert_int_equal(fsync(f->fd), 0);
	before = allocated_bytes(f);
	assert_true(before >= IMAGE_SIZE);
	/* 1 MiB at 1 MiB. */
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 2048, 2048, 0), VIRTIO_BLK_S_OK);
	after = allocated_bytes(f);
	assert_true(after + MIB - SLACK <= before);
	/* The neighbours are intact. */
	check_sector_original(f, 2047);
	check_sector_original(f, 4096);
	/* s5.2.6.2: unmap (or any flag) on a discard is UNSUPP; beyond the disk is IOERR; 0 sectors is fine. */
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0x80), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, CAPACITY - 4, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 0, VIRTIO_BLK_MAX_DISCARD_SECTORS + 8, 0),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 8, 0, 0), VIRTIO_BLK_S_OK);
	/* Two segments when max_discard_seg is 1; half a segment. */
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA_GPA, 32), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA_GPA, 8), VIRTIO_BLK_S_IOERR);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

static void test_write_zeroes(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[65536];
	uint64_t before;

	driver_init(f);
	assert_int_equal(fsync(f->fd), 0);
	/* Without unmap: zeroes, space stays allocated (ZERO_RANGE). */
	before = allocated_bytes(f);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_WRITE_ZEROES, 300, 128, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 65536, 300 * 512), 65536);
	assert_true(all_zero(buf, 65536));
	assert_true(allocated_bytes(f) + SLACK >= before);
	check_sector_original(f, 299);
	check_sector_original(f, 428);
	/* With unmap: zeroes, and the range deallocated. */
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_WRITE_ZEROES, 4096, 2048, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 65536, 4096 * 512), 65536);
	assert_true(all_zero(buf, 65536));
	assert_true(allocated_bytes(f) + MIB - SLACK <= before);
	/* The guest reads zeroes too. */
	memset(hva(f, DATA_GPA + MIB, 4096), 0xff, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 300, DATA_GPA + MIB, 4096), VIRTIO_BLK_S_OK);
	assert_true(all_zero(hva(f, DATA_GPA + MIB, 4096), 4096));
	/* Unknown flags: UNSUPP. */
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2), VIRTIO_BLK_S_UNSUPP);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];

	driver_init(f);
	assert_true(f->drv.features & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	fill(f, DATA_GPA, 4096, 1);
	/* s5.2.6.2: IOERR and nothing written. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 4096), VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(f->fd, buf, 4096, 0), 4096);
	for (int i = 0; i < 8; i++)
		assert_true(sector_original(buf + 512 * i, (uint64_t)i));
	/* Neither discard nor write-zeroes is offered. */
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(discard_like(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(pread(f->fd, buf, 4096, 0), 4096);
	assert_true(sector_original(buf, 0));
	/* Reads work. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 3, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	assert_true(sector_original(hva(f, DATA_GPA, 512), 3));
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512];

	driver_init(f);
	fill(f, DATA_GPA, 8192, 5);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAPACITY, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, CAPACITY - 1, DATA_GPA, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, CAPACITY - 1, DATA_GPA, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, DATA_GPA, 512), VIRTIO_BLK_S_IOERR);
	/* Not whole sectors. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA_GPA, 100), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 513), VIRTIO_BLK_S_IOERR);
	/* The last sector itself is fine. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, CAPACITY - 1, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(f->fd, buf, 512, (CAPACITY - 1) * 512), 512);
	assert_memory_equal(buf, hva(f, DATA_GPA, 512), 512);
	/* Nothing past the image's end was written. */
	assert_int_equal(lseek(f->fd, 0, SEEK_END), IMAGE_SIZE);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	unsigned int s;

	driver_init(f);
	/* Header shorter than 16 bytes. */
	s = new_slot(f, VIRTIO_BLK_T_IN, 0);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 12, false }, { DATA_GPA, 512, true }, { status_gpa(s), 1, true },
		};

		assert_int_equal(run_chain(f, s, segs, 3), VIRTIO_BLK_S_IOERR);
	}
	/* Only a status byte. */
	s = new_slot(f, VIRTIO_BLK_T_IN, 0);
	{
		struct fake_seg segs[] = { { status_gpa(s), 1, true } };

		assert_int_equal(run_chain(f, s, segs, 1), VIRTIO_BLK_S_IOERR);
	}
	/* A read with readable data after the header. */
	s = new_slot(f, VIRTIO_BLK_T_IN, 0);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false }, { DATA_GPA, 512, false }, { DATA_GPA + 4096, 512, true },
			{ status_gpa(s), 1, true },
		};

		assert_int_equal(run_chain(f, s, segs, 4), VIRTIO_BLK_S_IOERR);
	}
	/* A write with writable bytes before the status. */
	s = new_slot(f, VIRTIO_BLK_T_OUT, 0);
	{
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false }, { DATA_GPA, 512, false }, { DATA_GPA + 4096, 512, true },
			{ status_gpa(s), 1, true },
		};

		assert_int_equal(run_chain(f, s, segs, 4), VIRTIO_BLK_S_IOERR);
	}
	/* Types kiln does not implement: UNSUPP (s5.2.6). */
	assert_int_equal(request(f, 99, 0, DATA_GPA, 512), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_LIFETIME, 0, DATA_GPA, 8), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_SECURE_ERASE, 0, DATA_GPA, 16), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, 2 /* legacy SCSI */, 0, DATA_GPA, 512), VIRTIO_BLK_S_UNSUPP);
	/* Still working. */
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 1, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	assert_true(sector_original(hva(f, DATA_GPA, 512), 1));
}

static void test_no_status_byte(void **state)
{
	struct fixture *f = *state;
	unsigned int s;

	/* Every descriptor device-readable: there is no status byte to write, the device needs a reset. */
	for (int variant = 0; variant < 2; variant++) {
		driver_init(f);
		s = new_slot(f, VIRTIO_BLK_T_OUT, 0);
		{
			struct fake_seg out[] = {
				{ hdr_gpa(s), 16, false }, { DATA_GPA, 512, false }, { status_gpa(s), 1, false },
			};
			struct fake_seg flush[] = { { hdr_gpa(s), 16, false } };

			submit_chain(f, variant ? flush : out, variant ? 1 : 3);
		}
		kick(f);
		WAIT_UNTIL(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		settle(f);
		assert_int_equal(used_idx(f), 0);
		assert_int_equal(slot_status(f, s), 0xee);
	}
	/* A reset and a new initialisation bring it back. */
	driver_init(f);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 2, DATA_GPA, 512), VIRTIO_BLK_S_OK);
	assert_true(sector_original(hva(f, DATA_GPA, 512), 2));
}

/* Offer `n` writes of `len` bytes each without waiting. */
static void offer_writes(struct fixture *f, unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		unsigned int s = new_slot(f, VIRTIO_BLK_T_OUT, (uint64_t)i * (len / 512));
		struct fake_seg segs[] = {
			{ hdr_gpa(s), 16, false },
			{ DATA_GPA + (uint64_t)i * len, len, false },
			{ status_gpa(s), 1, true },
		};

		submit_chain(f, segs, 3);
	}
}

static void test_reset_with_requests_in_flight(void **state)
{
	struct fixture *f = *state;
	uint16_t after_reset;

	driver_init(f);
	fill(f, DATA_GPA, 20 * 128 * 1024, 4);
	offer_writes(f, 20, 128 * 1024);
	kick(f);
	WAIT_UNTIL(virtio_blk_in_flight(f->blk) > 0 || used_idx(f) > 0);
	/* Reset while the device works through them: when it returns, nothing is in flight... */
	fake_virtio_set_status(&f->drv.fv, 0);
	assert_int_equal(fake_virtio_status(&f->drv.fv), 0);
	assert_int_equal(virtio_blk_in_flight(f->blk), 0);
	/* ...and nothing more reaches the old ring. */
	after_reset = used_idx(f);
	settle(f);
	assert_int_equal(used_idx(f), after_reset);
	/* The device works after a new initialisation. */
	driver_init(f);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA_GPA + 4 * MIB, 512), VIRTIO_BLK_S_OK);
}

static void test_quiesce(void **state)
{
	struct fixture *f = *state;

	driver_init(f);
	fill(f, DATA_GPA, 20 * 128 * 1024, 6);
	offer_writes(f, 20, 128 * 1024);
	kick(f);
	/*
	 * Once the loop thread has taken them (one queue_notify under the device lock takes all 20), a
	 * quiesce returns with every one completed and used.
	 */
	WAIT_UNTIL(virtio_blk_in_flight(f->blk) > 0 || used_idx(f) > 0);
	assert_int_equal(virtio_blk_quiesce(f->blk), 0);
	assert_int_equal(virtio_blk_in_flight(f->blk), 0);
	assert_int_equal(used_idx(f), 20);
	for (unsigned int i = 0; i < 20; i++)
		assert_int_equal(slot_status(f, i), VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_blk_quiesce(f->blk), 0);
	/* What a snapshot does next: the completed writes made stable (fdatasync). */
	assert_int_equal(virtio_blk_sync(f->blk), 0);
}

static void test_image_locked(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci_params p = fake_vmm_virtio_params(&f->vm, SLOT);
	struct virtio_blk_params bp = blk_params(f);

	/* The fixture's device holds the image: a second device (another VM) cannot open it. */
	p.slot = SLOT + 1;
	bp.read_only = false;
	assert_null(virtio_blk_create(&p, &bp));
	assert_int_equal(errno, EAGAIN);
	bp.read_only = true;
	if (f->v.read_only) {
		/* Readers share. */
		struct virtio_blk *second = virtio_blk_create(&p, &bp);

		assert_non_null(second);
		/* It stays on the PCI bus until pci_bus_destroy: destroyed in the teardown's order. */
		loop_destroy(&f->vm.loop);
		pci_bus_destroy(f->vm.pci);
		virtio_blk_destroy(second);
		f->vm.pci = NULL;
		assert_int_equal(loop_init(&f->vm.loop), 0);
	} else {
		assert_null(virtio_blk_create(&p, &bp));
		assert_int_equal(errno, EAGAIN);
	}
}

/*
 * Figures, not limits: what the device path costs without a guest kernel. 64 MiB in 256 KiB requests,
 * 16 in flight, against the (page-cached) image: the virtqueue walk, the backend and the completion.
 */
static void test_throughput_figures(void **state)
{
	struct fixture *f = *state;
	enum { N = 16, LEN = 256 * 1024, PASSES = 16 };

	driver_init(f);
	for (int write = 0; write < 2; write++) {
		uint64_t t0 = time_now_ns(), ns;

		for (int pass = 0; pass < PASSES; pass++) {
			uint16_t before = used_idx(f);

			for (unsigned int i = 0; i < N; i++) {
				unsigned int s = new_slot(f, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
						(uint64_t)i * (LEN / 512));
				struct fake_seg segs[] = {
					{ hdr_gpa(s), 16, false },
					{ DATA_GPA + (uint64_t)i * LEN, LEN, !write },
					{ status_gpa(s), 1, true },
				};

				submit_chain(f, segs, 3);
			}
			kick(f);
			WAIT_UNTIL(used_idx(f) == (uint16_t)(before + N));
		}
		ns = time_now_ns() - t0;
		print_message("virtio-blk %s, %s: %.0f MB/s (64 MiB in 256 KiB requests, 16 in flight)\n",
			      f->v.engine == RAW_ENGINE_IO_URING ? "io_uring" : "sync", write ? "write" : "read",
			      (double)N * LEN * PASSES / ((double)ns / 1e9) / 1e6);
	}
}

/* ---- the raw backend alone ---- */

struct raw_done {
	int calls;
	int last;
};

static void raw_done_cb(void *opaque, struct raw_request *req)
{
	struct raw_done *d = opaque;

	d->calls++;
	d->last = req->result;
}

static struct raw_disk *raw_open_test(const char *path, bool ro, enum raw_engine engine, struct raw_done *done,
				      char *err, size_t err_size)
{
	struct raw_params p = {
		.path = path, .read_only = ro, .engine = engine, .queue_depth = 8, .complete = raw_done_cb,
				.opaque = done,
	};

	return raw_open(&p, err, err_size);
}

/* A 1 MiB image made from the mkstemp() template `path` (which it completes): its fd, or -1 if none could be made. */
static int raw_tmp_image(char *path)
{
	int fd = mkstemp(path);

	if (fd >= 0)
		assert_int_equal(ftruncate(fd, MIB), 0);
	return fd;
}

static void raw_tmp_image_remove(int fd, const char *path)
{
	close(fd);
	unlink(path);
}

static void test_raw_lock_messages(void **state)
{
	char path[] = "/tmp/kiln-raw-lock-XXXXXX", err[256];
	struct raw_done done = { 0 };
	struct raw_disk *a, *b;
	int fd = raw_tmp_image(path);

	(void)state;
	assert_true(fd >= 0);
	a = raw_open_test(path, false, RAW_ENGINE_SYNC, &done, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(raw_size(a), MIB);
	b = raw_open_test(path, false, RAW_ENGINE_IO_URING, &done, err, sizeof(err));
	assert_null(b);
	assert_int_equal(errno, EAGAIN);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "is locked by another process"));
	b = raw_open_test(path, true, RAW_ENGINE_SYNC, &done, err, sizeof(err));
	assert_null(b);
	assert_int_equal(errno, EAGAIN);
	raw_close(a);
	/* Two readers, then no writer while they are there. */
	a = raw_open_test(path, true, RAW_ENGINE_SYNC, &done, err, sizeof(err));
	b = raw_open_test(path, true, RAW_ENGINE_SYNC, &done, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(raw_open_test(path, false, RAW_ENGINE_SYNC, &done, err, sizeof(err)));
	assert_int_equal(errno, EAGAIN);
	raw_close(a);
	raw_close(b);
	/* Missing files and directories, named. */
	assert_null(raw_open_test("/nonexistent/disk.img", false, RAW_ENGINE_SYNC, &done, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/nonexistent/disk.img"));
	assert_null(raw_open_test("/tmp", true, RAW_ENGINE_SYNC, &done, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	raw_tmp_image_remove(fd, path);
}

/* Submit one request, push it to the engine and wait for it: each step must succeed. */
static void raw_run(struct raw_disk *d, struct raw_request *req)
{
	assert_int_equal(raw_submit(d, req), 0);
	raw_commit(d);
	assert_int_equal(raw_drain(d), 0);
}

/* Write a pattern, read it back, write zeroes without unmap, read zeroes: through the raw API. */
static void raw_roundtrip(const char *path, enum raw_engine engine)
{
	static uint8_t wbuf[256 * 1024], rbuf[256 * 1024];
	struct raw_done done = { 0 };
	struct raw_request req;
	struct iovec iov;
	char err[256];
	struct raw_disk *d = raw_open_test(path, false, engine, &done, err, sizeof(err));

	assert_non_null(d);
	for (size_t i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (uint8_t)(i * 31 + 7);
	memset(&req, 0, sizeof(req));
	iov = (struct iovec){ wbuf, sizeof(wbuf) };
	req = (struct raw_request){ .op = RAW_OP_WRITE, .offset = 4096, .iov = &iov, .iovcnt = 1 };
	raw_run(d, &req);
	assert_int_equal(done.calls, 1);
	assert_int_equal(done.last, 0);

	iov = (struct iovec){ rbuf, sizeof(rbuf) };
	req = (struct raw_request){ .op = RAW_OP_READ, .offset = 4096, .iov = &iov, .iovcnt = 1 };
	raw_run(d, &req);
	assert_int_equal(done.last, 0);
	assert_memory_equal(rbuf, wbuf, sizeof(wbuf));

	/* 200 KiB of zeroes in the middle, without unmap. */
	req = (struct raw_request){ .op = RAW_OP_WRITE_ZEROES, .offset = 4096 + 8192, .len = 200 * 1024 };
	raw_run(d, &req);
	assert_int_equal(done.last, 0);
	iov = (struct iovec){ rbuf, sizeof(rbuf) };
	req = (struct raw_request){ .op = RAW_OP_READ, .offset = 4096, .iov = &iov, .iovcnt = 1 };
	raw_run(d, &req);
	assert_memory_equal(rbuf, wbuf, 8192);
	assert_true(all_zero(rbuf + 8192, 200 * 1024));
	assert_memory_equal(rbuf + 8192 + 200 * 1024, wbuf + 8192 + 200 * 1024, sizeof(wbuf) - 8192 - 200 * 1024);

	/* Refusals: past the end, nothing to do, writes to a read-only image. */
	req = (struct raw_request){ .op = RAW_OP_DISCARD, .offset = MIB - 512, .len = 1024 };
	assert_int_equal(raw_submit(d, &req), -EINVAL);
	req = (struct raw_request){ .op = RAW_OP_DISCARD, .offset = 0, .len = 0 };
	assert_int_equal(raw_submit(d, &req), -EINVAL);
	raw_close(d);
	d = raw_open_test(path, true, engine, &done, err, sizeof(err));
	assert_non_null(d);
	iov = (struct iovec){ wbuf, 512 };
	req = (struct raw_request){ .op = RAW_OP_WRITE, .offset = 0, .iov = &iov, .iovcnt = 1 };
	assert_int_equal(raw_submit(d, &req), -EROFS);
	req = (struct raw_request){ .op = RAW_OP_FLUSH };
	raw_run(d, &req);
	raw_close(d);
}

static void test_raw_engines(void **state)
{
	char path[] = "/tmp/kiln-raw-XXXXXX";
	int fd = raw_tmp_image(path);

	(void)state;
	assert_true(fd >= 0);
	raw_roundtrip(path, RAW_ENGINE_SYNC);
	raw_roundtrip(path, RAW_ENGINE_IO_URING);
	raw_tmp_image_remove(fd, path);
}

/* tmpfs has PUNCH_HOLE but no ZERO_RANGE: write-zeroes falls back to writing zeroes. */
static void test_raw_tmpfs_fallbacks(void **state)
{
	char path[] = "/dev/shm/kiln-raw-XXXXXX";
	int fd = raw_tmp_image(path);

	(void)state;
	if (fd < 0)
		skip();
	raw_roundtrip(path, RAW_ENGINE_IO_URING);
	raw_roundtrip(path, RAW_ENGINE_SYNC);
	raw_tmp_image_remove(fd, path);
}

/*
 * io_uring refused by a seccomp filter (as a container runtime may): raw_open falls back to the
 * synchronous engine and works. In a child process, since a filter cannot be removed.
 */
static void test_raw_io_uring_fallback(void **state)
{
	char path[] = "/tmp/kiln-raw-seccomp-XXXXXX";
	int fd = raw_tmp_image(path), wstatus;
	pid_t pid;

	(void)state;
	assert_true(fd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sock_filter filter[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
		struct raw_done done = { 0 };
		struct raw_disk *d;
		char err[256];

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(2);
		d = raw_open_test(path, false, RAW_ENGINE_IO_URING, &done, err, sizeof(err));
		if (!d || raw_engine(d) != RAW_ENGINE_SYNC)
			_exit(3);
		raw_close(d);
		raw_roundtrip(path, RAW_ENGINE_IO_URING);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	assert_true(WIFEXITED(wstatus));
	assert_int_equal(WEXITSTATUS(wstatus), 0);
	raw_tmp_image_remove(fd, path);
}

/* ---- the variants ---- */

static const struct variant uring_wb = { RAW_ENGINE_IO_URING, false, VIRTIO_BLK_CACHE_WRITEBACK, "rootfs" };
static const struct variant sync_wb = { RAW_ENGINE_SYNC, false, VIRTIO_BLK_CACHE_WRITEBACK,
		"a_drive_id_of_32_characters_xyz" };
static const struct variant uring_unsafe = { RAW_ENGINE_IO_URING, false, VIRTIO_BLK_CACHE_UNSAFE, NULL };
static const struct variant sync_unsafe = { RAW_ENGINE_SYNC, false, VIRTIO_BLK_CACHE_UNSAFE, "exactly_20_chars_id_" };
static const struct variant uring_ro = { RAW_ENGINE_IO_URING, true, VIRTIO_BLK_CACHE_UNSAFE, "ro" };
static const struct variant sync_ro = { RAW_ENGINE_SYNC, true, VIRTIO_BLK_CACHE_WRITEBACK, "ro" };

#define T(fn, v) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&(v))
#define BOTH(fn, u, s) T(fn, u), T(fn, s)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_discovery, uring_wb, sync_wb),
		BOTH(test_discovery, uring_unsafe, sync_unsafe),
		BOTH(test_discovery, uring_ro, sync_ro),
		BOTH(test_read_write, uring_wb, sync_wb),
		BOTH(test_read_write, uring_unsafe, sync_unsafe),
		BOTH(test_indirect, uring_wb, sync_wb),
		BOTH(test_many_in_flight, uring_wb, sync_wb),
		BOTH(test_flush, uring_wb, sync_wb),
		BOTH(test_flush, uring_unsafe, sync_unsafe),
		BOTH(test_writeback_without_flush_negotiated, uring_wb, sync_wb),
		BOTH(test_get_id, uring_wb, sync_wb),
		BOTH(test_get_id, uring_unsafe, sync_unsafe),
		BOTH(test_discard, uring_wb, sync_wb),
		BOTH(test_write_zeroes, uring_wb, sync_wb),
		BOTH(test_read_only, uring_ro, sync_ro),
		BOTH(test_out_of_range, uring_wb, sync_wb),
		BOTH(test_malformed, uring_wb, sync_wb),
		BOTH(test_no_status_byte, uring_wb, sync_wb),
		BOTH(test_reset_with_requests_in_flight, uring_wb, sync_wb),
		BOTH(test_quiesce, uring_wb, sync_wb),
		BOTH(test_image_locked, uring_wb, sync_ro),
		BOTH(test_throughput_figures, uring_unsafe, sync_unsafe),
		cmocka_unit_test(test_raw_lock_messages),
		cmocka_unit_test(test_raw_engines),
		cmocka_unit_test(test_raw_tmpfs_fallbacks),
		cmocka_unit_test(test_raw_io_uring_fallback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
