// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for virtio-blk's request handling (src/devices/virtio/block.c, virtio 1.2 s5.2)
 * over the real virtio PCI transport, PCI bus, virtqueue and raw image backend (synchronous engine),
 * as tests/unit/test_virtio_blk.c sets them up with a fake KVM: the input is a hostile driver's guest
 * RAM (descriptor table, available ring, request headers, data, discard segments), and the harness
 * plays the rest of the driver through the device's registers, then lets the device process the
 * queue. No loop thread: the harness runs the device event loop itself (loop_run_once), so a
 * run is deterministic and its end is known.
 *
 * Two disks of 256 sectors (128 KiB, image files in $TMPDIR or /dev/shm): 0 writable with cache
 * Writeback (FLUSH, DISCARD, WRITE_ZEROES offered), 1 read-only.
 *
 * Input: byte 0: bit 0 the disk; bits 1-4 log2(queue size) % 9 (sizes 1..256). Byte 1: features
 * the driver accepts: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 FLUSH; bit 3 reset the device while
 * its requests are in flight; bit 4 notify twice. The rest (up to 64 KiB): guest RAM from GPA 0,
 * copied again at 4 GiB (the high region). Guest RAM is 2 MiB around a hole: [0, 1 MiB) and
 * [4 GiB, 4 GiB + 1 MiB). Descriptor table at GPA 0, available ring at 0x1000, used ring at 0x2000
 * (the device's; zeroed before each run).
 *
 * Invariants (abort on violation): the device goes live; it neither hangs nor keeps a request in
 * flight once the loop is idle; the images keep their size and the read-only one its contents;
 * every used ring entry names a head below the queue size, with a length of 1 (the status byte) up to
 * the disk's size + 1 (a whole-disk read), unless the guest aimed the device's writes at its own rings
 * (then they hold what it asked for); after a reset, nothing more is written into guest RAM.
 *
 * Seeds (KILN_FUZZ_SEEDS): well-formed IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES requests,
 * one chain with an indirect table.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include <linux/kvm.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "backends/block/raw.h"
#include "devices/pci/pci.h"
#include "devices/virtio/block.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "fake_driver.h"
#include "fake_vmm.h"
#include "fuzz_common.h"
#include "lib/log.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/memory.h"

#define RAM_SIZE (2u << 20)
#define HOLE_START (1u << 20)
#define DATA_MAX (64u << 10)
#define DESC_GPA 0x0ull
#define AVAIL_GPA 0x1000ull
#define USED_GPA 0x2000ull
#define RING_END 0x3000ull
#define IMAGE_SIZE (128u << 10)
#define NR_DISKS 2
#define MAX_ROUNDS 100000 /* loop iterations before the harness calls it a hang */

struct disk {
	struct virtio_blk *blk;
	struct virtio_pci *t;
	struct fake_driver drv; /* the driver's side of its registers and queue */
	int fd; /* the image, for checks on the host */
};

struct fuzz_state {
	struct fake_vmm vm; /* its fake KVM accepts everything */
	struct disk disks[NR_DISKS];
	uint8_t pattern[IMAGE_SIZE]; /* what each image holds at the start of a run */
	uint8_t scratch[IMAGE_SIZE];
	uint8_t *ram_copy;           /* guest RAM after a reset, to compare */
	bool dma_to_rings;           /* this run's guest aims device writes at its rings (dma_may_hit_rings) */
};

static struct fuzz_state *fuzz;

/* ---- the driver's side ---- */

/* Reset the device and bring it up as Linux does (s3.1.1), accepting `want` of what it offers. */
static void driver_init(struct disk *d, uint16_t qsize, uint64_t want)
{
	CHECK(fake_driver_reset(&d->drv) == 0);
	CHECK(fake_driver_accept(&d->drv, fake_driver_begin(&d->drv) & want) & VIRTIO_STATUS_FEATURES_OK);
	fake_driver_queue(&d->drv, 0, qsize, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR);
}

static void driver_ok(struct disk *d)
{
	CHECK(fake_driver_live(&d->drv) == FAKE_DRIVER_STATUS_LIVE);
}

/* The guest's notify write for queue 0 (2 bytes, what Linux issues). */
static void notify(const struct disk *d)
{
	fake_virtio_notify(&d->drv.fv, 0);
}

/* Run the device event loop until it is idle and nothing is in flight. */
static void run_loop(struct disk *d)
{
	unsigned int rounds = 0;

	for (;;) {
		bool busy = virtio_blk_in_flight(d->blk) > 0;
		int n = loop_run_once(&fuzz->vm.loop, busy ? 1000 : 0);

		CHECK(n >= 0);
		if (n == 0 && !busy)
			break;
		CHECK_MSG(++rounds < MAX_ROUNDS, "the device is still busy after %u rounds", rounds);
	}
	CHECK(virtio_blk_in_flight(d->blk) == 0);
}

/* ---- set-up ---- */

static void write_seeds(const char *dir);

static int make_image(const char *dir, struct virtio_pci_params *p, struct disk *d, bool read_only, int slot)
{
	struct virtio_blk_params bp = {
		.read_only = read_only,
		.id = read_only ? "fuzz-ro" : "fuzz-rw-serial-20byte",
		.cache = read_only ? VIRTIO_BLK_CACHE_UNSAFE : VIRTIO_BLK_CACHE_WRITEBACK,
		.engine = RAW_ENGINE_SYNC,
	};
	char path[4096];

	snprintf(path, sizeof(path), "%s/kiln-fuzz-blk-XXXXXX", dir);
	d->fd = mkstemp(path);
	if (d->fd < 0 || pwrite(d->fd, fuzz->pattern, IMAGE_SIZE, 0) != IMAGE_SIZE)
		return -1;
	bp.path = path;
	p->slot = slot;
	d->blk = virtio_blk_create(p, &bp);
	unlink(path); /* the backend and d->fd keep it open */
	if (!d->blk)
		return -1;
	d->t = virtio_blk_transport(d->blk);
	fake_driver_attach(&d->drv, &fuzz->vm, virtio_pci_device(d->t), slot);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true, .accept_all = true,
	};
	struct virtio_pci_params p;
	const char *dir = getenv("TMPDIR");
	struct fuzz_state *f;

	(void)argc;
	(void)argv;
	if (fuzz_seed_dir())
		write_seeds(fuzz_seed_dir());
	log_set_level(LOG_ERROR);
	if (!dir || access(dir, W_OK))
		dir = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	f = fuzz = calloc(1, sizeof(*fuzz));
	CHECK(f);
	f->ram_copy = malloc(RAM_SIZE);
	CHECK(f->ram_copy);
	for (unsigned int i = 0; i < IMAGE_SIZE; i++)
		f->pattern[i] = (uint8_t)(i * 7 + (i >> 9));
	CHECK(fake_vmm_init(&f->vm, &cfg) == 0);
	p = fake_vmm_virtio_params(&f->vm, 0);
	CHECK(make_image(dir, &p, &f->disks[0], false, 3) == 0);
	CHECK(make_image(dir, &p, &f->disks[1], true, 4) == 0);
	return 0;
}

/* ---- one run ---- */

/* Guest RAM at `gpa` (`len` bytes), or NULL when it is not all RAM. */
static const uint8_t *ram_at(uint64_t gpa, uint64_t len)
{
	return guest_memory_hva(&fuzz->vm.mem, gpa, len);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	uint64_t a_end = a + alen < a ? UINT64_MAX : a + alen; /* a hostile address may wrap */

	return a < b + blen && b < a_end;
}

/*
 * Could the guest have pointed the device's writes (read data, status bytes, GET_ID) at the rings or
 * at an indirect table? Then the used ring holds what the guest asked for, not what the device pushed,
 * and check_used has nothing to say. Conservative: every writable descriptor, direct or in an indirect
 * table the descriptor table names, against the rings and the indirect tables.
 */
static bool dma_may_hit_rings(uint16_t qsize)
{
	struct { uint64_t gpa, len; } tables[256], writes[256 * 17];
	unsigned int nt = 0, nw = 0;

	for (unsigned int i = 0; i < qsize; i++) {
		const uint8_t *d = ram_at(DESC_GPA + 16u * i, 16);
		uint64_t addr;
		uint32_t len;
		uint16_t flags;

		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		memcpy(&flags, d + 12, 2);
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			const uint8_t *t = ram_at(addr, len);

			tables[nt].gpa = addr;
			tables[nt++].len = len;
			for (uint32_t k = 0; t && k < len / 16 && nw < sizeof(writes) / sizeof(writes[0]); k++) {
				uint64_t a;
				uint32_t l;
				uint16_t fl;

				memcpy(&a, t + 16u * k, 8);
				memcpy(&l, t + 16u * k + 8, 4);
				memcpy(&fl, t + 16u * k + 12, 2);
				if (fl & VIRTQ_DESC_F_WRITE) {
					writes[nw].gpa = a;
					writes[nw++].len = l;
				}
			}
		} else if ((flags & VIRTQ_DESC_F_WRITE) && nw < sizeof(writes) / sizeof(writes[0])) {
			writes[nw].gpa = addr;
			writes[nw++].len = len;
		}
	}
	for (unsigned int w = 0; w < nw; w++) {
		if (overlaps(writes[w].gpa, writes[w].len, 0, RING_END))
			return true;
		for (unsigned int t = 0; t < nt; t++)
			if (overlaps(writes[w].gpa, writes[w].len, tables[t].gpa, tables[t].len))
				return true;
	}
	return false;
}

/* The used ring as the device left it: heads below the queue size, lengths a chain can hold. */
static void check_used(uint16_t qsize)
{
	uint16_t idx;
	unsigned int n;

	if (fuzz->dma_to_rings)
		return;
	idx = fake_vq_used_idx(&fuzz->vm.mem, USED_GPA);
	n = idx < qsize ? idx : qsize;
	for (unsigned int i = 0; i < n; i++) {
		struct virtq_used_elem u = fake_vq_used_elem(&fuzz->vm.mem, USED_GPA, qsize, (uint16_t)i);

		CHECK_MSG(u.id < qsize, "used ring entry %u: head %u, queue size %u", i, u.id, qsize);
		/* Data read into the guest plus the status byte: never more than the disk, never nothing. */
		CHECK_MSG(u.len >= 1 && u.len <= IMAGE_SIZE + 1, "used ring entry %u: length %u", i, u.len);
	}
}

static void check_images(const struct disk *d, bool read_only)
{
	struct stat st;

	CHECK(fstat(d->fd, &st) == 0);
	CHECK_MSG(st.st_size == IMAGE_SIZE, "the image is now %lld bytes", (long long)st.st_size);
	if (read_only) {
		CHECK(pread(d->fd, fuzz->scratch, IMAGE_SIZE, 0) == IMAGE_SIZE);
		CHECK_MSG(!memcmp(fuzz->scratch, fuzz->pattern, IMAGE_SIZE), "the read-only image changed");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state *f = fuzz;
	struct disk *d;
	bool read_only;
	uint16_t qsize;
	uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_RO) |
			VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	size_t n;

	if (size < 2)
		return 0;
	read_only = data[0] & 1;
	d = &f->disks[read_only];
	qsize = (uint16_t)(1u << ((data[0] >> 1) % 9));
	if (data[1] & 1)
		want |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (data[1] & 2)
		want |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	if (data[1] & 4)
		want |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	n = size - 2 < DATA_MAX ? size - 2 : DATA_MAX;

	if (!read_only)
		CHECK(pwrite(d->fd, f->pattern, IMAGE_SIZE, 0) == IMAGE_SIZE);
	driver_init(d, qsize, want);
	/* The reset above waited for the last run's requests: now guest RAM is the input's. */
	memset(f->vm.mem.regions[0].hva, 0, f->vm.mem.regions[0].size);
	memset(f->vm.mem.regions[1].hva, 0, f->vm.mem.regions[1].size);
	memcpy(f->vm.mem.regions[0].hva, data + 2, n);
	memcpy(f->vm.mem.regions[1].hva, data + 2, n);
	memset(f->vm.mem.regions[0].hva + USED_GPA, 0, RING_END - USED_GPA);
	f->dma_to_rings = dma_may_hit_rings(qsize);
	driver_ok(d);

	notify(d);
	if (data[1] & 8) {
		/* Reset with requests in flight: they are dropped, and guest RAM is left alone from then on. */
		CHECK(loop_run_once(&f->vm.loop, 0) >= 0);
		fake_virtio_set_status(&d->drv.fv, 0);
		CHECK(virtio_blk_in_flight(d->blk) == 0);
		memcpy(f->ram_copy, f->vm.mem.regions[0].hva, RAM_SIZE / 2);
		memcpy(f->ram_copy + RAM_SIZE / 2, f->vm.mem.regions[1].hva, RAM_SIZE / 2);
		run_loop(d);
		CHECK_MSG(!memcmp(f->ram_copy, f->vm.mem.regions[0].hva, RAM_SIZE / 2) &&
				  !memcmp(f->ram_copy + RAM_SIZE / 2, f->vm.mem.regions[1].hva, RAM_SIZE / 2),
			  "guest RAM written after the device was reset");
	} else {
		run_loop(d);
		if (data[1] & 16) {
			notify(d);
			run_loop(d);
		}
		check_used(qsize);
	}
	check_images(d, read_only);
	return 0;
}

/* ---- seeds ---- */

struct seed {
	uint8_t buf[2 + 0x9000];
	uint16_t next_desc, avail_idx;
};

static void put_desc(struct seed *s, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *p = s->buf + 2 + DESC_GPA + 16u * i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* A request at GPA `hdr`: type and sector, then the chain header -> data -> status in the ring. */
static void add_request(struct seed *s, uint64_t hdr, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
			bool data_writable)
{
	uint16_t head = s->next_desc, n = 0;

	memcpy(s->buf + 2 + hdr, &type, 4);
	memcpy(s->buf + 2 + hdr + 8, &sector, 8);
	s->buf[2 + hdr + 32] = 0xee; /* the status byte, to be overwritten */
	put_desc(s, (uint16_t)(head + n), hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(head + n + 1));
	n++;
	if (len) {
		uint16_t flags = (uint16_t)(VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0));

		put_desc(s, (uint16_t)(head + n), data, len, flags, (uint16_t)(head + n + 1));
		n++;
	}
	put_desc(s, (uint16_t)(head + n), hdr + 32, 1, VIRTQ_DESC_F_WRITE, 0);
	n++;
	s->next_desc = (uint16_t)(head + n);
	memcpy(s->buf + 2 + AVAIL_GPA + 4 + 2u * s->avail_idx, &head, 2);
	s->avail_idx++;
	memcpy(s->buf + 2 + AVAIL_GPA + 2, &s->avail_idx, 2);
}

static void write_seeds(const char *dir)
{
	static struct seed s;
	uint8_t seg[16] = { 0 };
	uint64_t sector = 8;
	uint32_t count = 8, unmap = 1;

	/* Queue of 32 on the writable disk, FLUSH accepted: one request of each kind (19 descriptors). */
	s.buf[0] = 5 << 1;
	s.buf[1] = 4;
	add_request(&s, 0x4000, VIRTIO_BLK_T_IN, 2, 0x6000, 1024, true);
	add_request(&s, 0x4040, VIRTIO_BLK_T_OUT, 4, 0x6400, 512, false);
	add_request(&s, 0x4080, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	add_request(&s, 0x40c0, VIRTIO_BLK_T_GET_ID, 0, 0x6800, 20, true);
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &count, 4);
	memcpy(s.buf + 2 + 0x5000, seg, 16);
	add_request(&s, 0x4100, VIRTIO_BLK_T_DISCARD, 0, 0x5000, 16, false);
	memcpy(seg + 12, &unmap, 4);
	memcpy(s.buf + 2 + 0x5010, seg, 16);
	add_request(&s, 0x4140, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0x5010, 16, false);
	add_request(&s, 0x4180, 99, 0, 0, 0, false); /* an unknown type: UNSUPP */
	fuzz_write_seed(dir, "requests-rw", s.buf, 2 + 0x6c00);

	/* The same on the read-only disk (writes refused), with EVENT_IDX, notified twice. */
	s.buf[0] = 5 << 1 | 1;
	s.buf[1] = 1 | 16;
	fuzz_write_seed(dir, "requests-ro", s.buf, 2 + 0x6c00);

	/* One read through an indirect table at 0x3000, queue of 8; then reset while it is in flight. */
	memset(&s, 0, sizeof(s));
	s.buf[0] = 3 << 1;
	s.buf[1] = 2;
	put_desc(&s, 0, 0x3000, 48, VIRTQ_DESC_F_INDIRECT, 0);
	{
		uint8_t *t = s.buf + 2 + 0x3000;
		uint64_t a[3] = { 0x4000, 0x8000, 0x4020 };
		uint32_t l[3] = { 16, 4096, 1 };
		uint16_t fl[3] = { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE };

		for (uint16_t i = 0; i < 3; i++) {
			uint16_t next = (uint16_t)(i + 1);

			memcpy(t + 16 * i, &a[i], 8);
			memcpy(t + 16 * i + 8, &l[i], 4);
			memcpy(t + 16 * i + 12, &fl[i], 2);
			memcpy(t + 16 * i + 14, &next, 2);
		}
	}
	s.avail_idx = 1;
	memcpy(s.buf + 2 + AVAIL_GPA + 2, &s.avail_idx, 2);
	fuzz_write_seed(dir, "indirect-read", s.buf, 2 + 0x4030);
	s.buf[1] = 2 | 8;
	fuzz_write_seed(dir, "indirect-read-reset", s.buf, 2 + 0x4030);
	exit(0);
}
