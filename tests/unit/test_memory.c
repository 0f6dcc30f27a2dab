// SPDX-License-Identifier: MIT
/*
 * Guest memory: each backend (map, read/write, discard, share_fd, populate, save), the write tracking
 * behind guest_memory_write / guest_memory_mark_written, and the writers that must go through it: the
 * virtqueue's used ring and chain writes, raw's read hook, the x86 emulator's stores.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/emulate.h"
#include "backends/block/raw.h"
#include "devices/virtio/virtqueue.h"
#include "fake_vmm.h"
#include "vmm/memory.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define PAGE 4096ull
/* 8 MiB with the hole at 4 MiB: RAM is [0, 4 MiB) and [4 GiB, 4 GiB + 4 MiB), RAM offsets [0, 8 MiB). */
#define RAM_SIZE (8 * MIB)
#define HOLE_START (4 * MIB)
#define HIGH_BASE (4 * GIB)

/* ---- helpers ---- */

static void create(struct guest_memory *mem, enum guest_memory_kind kind, int file_fd)
{
	struct guest_memory_params p = { .kind = kind, .size = RAM_SIZE, .hole_start = HOLE_START, .file_fd = file_fd };

	assert_int_equal(guest_memory_create(mem, &p), 0);
	assert_int_equal(mem->kind, kind);
	assert_int_equal(mem->nr_regions, 2);
	assert_int_equal(mem->regions[1].gpa, HIGH_BASE);
}

/* A memory file of RAM_SIZE bytes: page i (of the first 32) holds the byte 0x40 + i, the rest is a hole. */
static int memory_file(void)
{
	char path[] = "/tmp/kiln-test-memory-XXXXXX";
	uint8_t page[PAGE];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, RAM_SIZE), 0);
	for (unsigned int i = 0; i < 32; i++) {
		memset(page, 0x40 + i, sizeof(page));
		assert_int_equal(pwrite(fd, page, sizeof(page), (off_t)(i * PAGE)), (ssize_t)PAGE);
	}
	return fd;
}

static uint8_t byte_at(const struct guest_memory *mem, uint64_t gpa)
{
	uint8_t v;

	assert_int_equal(guest_memory_read(mem, gpa, &v, 1), 0);
	return v;
}

/* Every byte of page `gpa` is `v`. */
static void assert_page(const struct guest_memory *mem, uint64_t gpa, uint8_t v)
{
	const uint8_t *p = guest_memory_hva(mem, gpa, PAGE);

	assert_non_null(p);
	for (uint64_t i = 0; i < PAGE; i++)
		if (p[i] != v)
			fail_msg("gpa 0x%llx + %llu: 0x%02x, expected 0x%02x", (unsigned long long)gpa,
				 (unsigned long long)i, p[i], v);
}

static void fill(struct guest_memory *mem, uint64_t gpa, uint8_t v, uint64_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	memset(buf, v, len);
	assert_int_equal(guest_memory_write(mem, gpa, buf, len), 0);
	free(buf);
}

/* Pages of [gpa, gpa + len) resident in this process (mincore). */
static uint64_t resident(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	unsigned char vec[256];
	uint64_t n = 0;

	assert_true(len / PAGE <= sizeof(vec));
	assert_int_equal(mincore(guest_memory_hva(mem, gpa, len), len, vec), 0);
	for (uint64_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

/* ---- backends ---- */

/* Map, write/read, discard (reads `after` again), populate: what every backend must do. */
static void exercise(struct guest_memory *mem, uint8_t after_low, uint8_t after_high)
{
	/* Read/write in both regions, through the API and the host address. */
	fill(mem, 0x10000, 0xa5, 3 * PAGE);
	fill(mem, HIGH_BASE + 0x20000, 0x5a, PAGE);
	assert_page(mem, 0x11000, 0xa5);
	assert_page(mem, HIGH_BASE + 0x20000, 0x5a);
	assert_int_equal(*(uint8_t *)guest_memory_hva(mem, 0x12fff, 1), 0xa5);

	/* Discard: alignment and RAM checked first. */
	assert_int_equal(guest_memory_discard(mem, 0x10001, PAGE), -EINVAL);
	assert_int_equal(guest_memory_discard(mem, 0x10000, 100), -EINVAL);
	assert_int_equal(guest_memory_discard(mem, HOLE_START - PAGE, 2 * PAGE), -EFAULT); /* into the hole */
	assert_int_equal(guest_memory_discard(mem, 0x10000, 2 * PAGE), 0);
	assert_page(mem, 0x10000, after_low);
	assert_page(mem, 0x11000, after_low == 0 ? 0 : (uint8_t)(after_low + 1));
	assert_page(mem, 0x12000, 0xa5); /* outside the range: kept */
	assert_int_equal(guest_memory_discard(mem, HIGH_BASE + 0x20000, PAGE), 0);
	assert_page(mem, HIGH_BASE + 0x20000, after_high);

	/* Populate: the range is resident afterwards, its contents as they were. */
	fill(mem, 0x40000, 0x77, PAGE);
	assert_int_equal(guest_memory_populate(mem, 0x40000, 64 * PAGE), 0);
	assert_int_equal(resident(mem, 0x40000, 64 * PAGE), 64);
	assert_page(mem, 0x40000, 0x77);
	assert_int_equal(guest_memory_populate(mem, HIGH_BASE, 16 * PAGE), 0);
	assert_int_equal(resident(mem, HIGH_BASE, 16 * PAGE), 16);
	assert_int_equal(guest_memory_populate(mem, 0x40000, 1), -EINVAL);
}

/* share_fd gives the memfd: another mapping of it sees this one's writes and the other way round. */
static void assert_shares(struct guest_memory *mem)
{
	int fd = guest_memory_share_fd(mem);
	uint8_t *other;

	assert_true(fd >= 0);
	assert_int_equal(fd, mem->memfd);
	other = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(other != MAP_FAILED);
	fill(mem, HIGH_BASE + PAGE, 0x31, 8);
	assert_int_equal(other[HOLE_START + PAGE], 0x31); /* RAM offset of 4 GiB + 4 KiB */
	other[5] = 0x32;
	assert_int_equal(byte_at(mem, 5), 0x32);
	munmap(other, RAM_SIZE);
}

static void test_memfd(void **state)
{
	struct guest_memory mem;

	(void)state;
	create(&mem, GUEST_MEMORY_MEMFD, -1);
	assert_string_equal(guest_memory_kind_name(mem.kind), "memfd");
	exercise(&mem, 0, 0);
	assert_shares(&mem);
	guest_memory_destroy(&mem);
	assert_int_equal(mem.memfd, -1);
	assert_null(mem.base);
}

static void test_init_is_memfd(void **state)
{
	struct guest_memory mem;

	(void)state;
	assert_int_equal(guest_memory_init(&mem, RAM_SIZE, HOLE_START), 0);
	assert_int_equal(mem.kind, GUEST_MEMORY_MEMFD);
	assert_true(guest_memory_share_fd(&mem) >= 0);
	guest_memory_destroy(&mem);
	assert_int_equal(guest_memory_init(&mem, RAM_SIZE + 1, HOLE_START), -EINVAL);
	assert_int_equal(mem.memfd, -1);
}

static void test_anonymous(void **state)
{
	struct guest_memory mem;

	(void)state;
	create(&mem, GUEST_MEMORY_ANON, -1);
	assert_string_equal(guest_memory_kind_name(mem.kind), "anonymous");
	assert_int_equal(mem.memfd, -1);
	exercise(&mem, 0, 0);
	assert_int_equal(guest_memory_share_fd(&mem), -ENOTSUP);
	guest_memory_destroy(&mem);
}

/* A private file mapping discards back to the file's bytes and never changes the file. */
static void test_file_private(void **state)
{
	struct guest_memory mem;
	uint8_t v;
	int fd = memory_file();

	(void)state;
	assert_int_equal(guest_memory_init_from_file(&mem, RAM_SIZE, HOLE_START, fd, false), 0);
	assert_int_equal(mem.kind, GUEST_MEMORY_FILE_PRIVATE);
	assert_string_equal(guest_memory_kind_name(mem.kind), "file-private");
	assert_int_equal(mem.memfd, -1);
	assert_page(&mem, 0x3000, 0x43);
	/* Pages 0x10 and 0x11 of the file are bytes 0x50, 0x51; the high region is a hole in the file. */
	exercise(&mem, 0x50, 0);
	assert_int_equal(guest_memory_share_fd(&mem), -ENOTSUP);
	/* The file was never written. */
	assert_int_equal(pread(fd, &v, 1, 0x10000), 1);
	assert_int_equal(v, 0x50);
	assert_int_equal(pread(fd, &v, 1, 0x12000), 1); /* the mapping wrote 0xa5 there */
	assert_int_equal(v, 0x52);
	guest_memory_destroy(&mem);

	/* --copy: a memfd filled from the file, shareable. */
	assert_int_equal(guest_memory_init_from_file(&mem, RAM_SIZE, HOLE_START, fd, true), 0);
	assert_int_equal(mem.kind, GUEST_MEMORY_MEMFD);
	assert_page(&mem, 0x1f000, 0x5f);
	assert_page(&mem, 0x20000, 0);
	exercise(&mem, 0, 0);
	assert_shares(&mem);
	guest_memory_destroy(&mem);
	close(fd);
}

/* Saving is the same file whatever the backend: pages in place, zero pages as holes. */
static void test_save_every_backend(void **state)
{
	enum guest_memory_kind kinds[] = { GUEST_MEMORY_MEMFD, GUEST_MEMORY_ANON, GUEST_MEMORY_FILE_PRIVATE };
	int src = memory_file();

	(void)state;
	for (unsigned int i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char path[] = "/tmp/kiln-test-save-XXXXXX";
		struct guest_memory mem, back;
		struct stat st;
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		unlink(path);
		create(&mem, kinds[i], src);
		fill(&mem, HIGH_BASE + 0x5000, 0x99, PAGE);
		assert_int_equal(guest_memory_save(&mem, fd), 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, RAM_SIZE);
		/* One page, or 33 with the file's: not the whole 8 MiB. */
		assert_true((uint64_t)st.st_blocks * 512 <= 64 * PAGE);
		assert_int_equal(guest_memory_init_from_file(&back, RAM_SIZE, HOLE_START, fd, false), 0);
		assert_page(&back, HIGH_BASE + 0x5000, 0x99);
		assert_page(&back, 0x2000, kinds[i] == GUEST_MEMORY_FILE_PRIVATE ? 0x42 : 0);
		guest_memory_destroy(&back);
		guest_memory_destroy(&mem);
		close(fd);
	}
	close(src);
}

/* hugetlb needs reserved huge pages: without them creation fails clearly (ENOMEM), and the test says so. */
static void test_hugetlb(void **state)
{
	struct guest_memory_params p = { .kind = GUEST_MEMORY_HUGETLB, .size = RAM_SIZE, .hole_start = HOLE_START };
	struct guest_memory mem;
	int ret;

	(void)state;
	p.size = RAM_SIZE + PAGE; /* not a multiple of 2 MiB */
	assert_int_equal(guest_memory_create(&mem, &p), -EINVAL);
	p.size = RAM_SIZE;
	p.hole_start = HOLE_START + PAGE;
	assert_int_equal(guest_memory_create(&mem, &p), -EINVAL);
	p.hole_start = HOLE_START;
	ret = guest_memory_create(&mem, &p);
	if (ret == -ENOMEM || ret == -EINVAL || ret == -ENOSYS) {
		assert_int_equal(mem.memfd, -1);
		assert_null(mem.base);
		fprintf(stderr, "[  SKIPPED ] hugetlb: this host cannot back %llu MiB with 2 MiB pages (%s): "
			"reserve them with /proc/sys/vm/nr_hugepages to test this backend\n", (unsigned long long)(RAM_SIZE / MIB),
			strerror(-ret));
		skip();
	}
	assert_int_equal(ret, 0);
	assert_string_equal(guest_memory_kind_name(mem.kind), "hugetlb");
	fill(&mem, 0x200000, 0x11, PAGE);
	assert_int_equal(guest_memory_discard(&mem, 0x200000, PAGE), -EINVAL); /* 2 MiB granularity */
	assert_int_equal(guest_memory_discard(&mem, 0x200000, 2 * MIB), 0);
	assert_page(&mem, 0x200000, 0);
	assert_int_equal(guest_memory_populate(&mem, HIGH_BASE, 2 * MIB), 0);
	assert_shares(&mem);
	guest_memory_destroy(&mem);
}

static void test_bad_params(void **state)
{
	struct guest_memory_params p = { .kind = GUEST_MEMORY_NR_KINDS, .size = RAM_SIZE, .hole_start = HOLE_START };
	struct guest_memory mem;

	(void)state;
	assert_int_equal(guest_memory_create(&mem, &p), -EINVAL);
	p.kind = GUEST_MEMORY_FILE_PRIVATE;
	p.file_fd = -1;
	assert_int_equal(guest_memory_create(&mem, &p), -EBADF);
	assert_null(mem.ops);
	assert_string_equal(guest_memory_kind_name(GUEST_MEMORY_NR_KINDS), "unknown");
}

/* ---- write tracking ---- */

struct dirty {
	uint64_t bm[RAM_SIZE / PAGE / 64];
	long n;
};

static void collect(struct guest_memory *mem, struct dirty *d)
{
	assert_int_equal(guest_memory_dirty_words(mem), sizeof(d->bm) / sizeof(d->bm[0]));
	d->n = guest_memory_dirty_collect(mem, d->bm, sizeof(d->bm) / sizeof(d->bm[0]));
	assert_true(d->n >= 0);
}

static bool dirty_at(const struct dirty *d, uint64_t ram_off)
{
	uint64_t page = ram_off / PAGE;

	return d->bm[page / 64] >> (page % 64) & 1;
}

/* Exactly the pages at RAM offsets offs[0..n) are dirty. */
static void assert_dirty(const struct dirty *d, const uint64_t *offs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!dirty_at(d, offs[i]))
			fail_msg("page at RAM offset 0x%llx is not dirty", (unsigned long long)offs[i]);
	if (d->n != (long)n)
		fail_msg("%ld dirty pages, expected %u", d->n, n);
}

static void test_tracking_off(void **state)
{
	struct guest_memory mem;
	struct dirty d;

	(void)state;
	create(&mem, GUEST_MEMORY_MEMFD, -1);
	assert_false(guest_memory_dirty_enabled(&mem));
	fill(&mem, 0x1000, 1, 8);
	assert_int_equal(guest_memory_dirty_collect(&mem, d.bm, sizeof(d.bm) / sizeof(d.bm[0])), -ENODATA);
	assert_int_equal(guest_memory_dirty_enable(&mem), 0);
	assert_true(guest_memory_dirty_enabled(&mem));
	assert_int_equal(guest_memory_dirty_collect(&mem, d.bm, 1), -EINVAL);
	collect(&mem, &d);
	assert_dirty(&d, NULL, 0); /* what was written before tracking is not in it */
	guest_memory_dirty_disable(&mem);
	fill(&mem, 0x1000, 2, 8);
	guest_memory_mark_written(&mem, 0x5000, 1);
	collect(&mem, &d);
	assert_dirty(&d, NULL, 0);
	guest_memory_destroy(&mem);
}

static void test_tracking_exact_pages(void **state)
{
	struct guest_memory mem;
	struct dirty d;
	uint8_t buf[16] = { 0 };

	(void)state;
	create(&mem, GUEST_MEMORY_ANON, -1);
	assert_int_equal(guest_memory_dirty_enable(&mem), 0);

	/* Crossing a page boundary: both pages; the high region at its RAM offset. */
	assert_int_equal(guest_memory_write(&mem, 0x1ffe, buf, 4), 0);
	assert_int_equal(guest_memory_write(&mem, HIGH_BASE + 0x3000, buf, 1), 0);
	assert_int_equal(guest_memory_write(&mem, HIGH_BASE + 0x3fff, buf, 1), 0);
	/* A failed write marks nothing. */
	assert_int_equal(guest_memory_write(&mem, HOLE_START - 8, buf, 16), -EFAULT);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ 0x1000, 0x2000, HOLE_START + 0x3000 }, 3);
	/* Collecting cleared them. */
	collect(&mem, &d);
	assert_dirty(&d, NULL, 0);

	/* mark_written across the hole: the last low page and the first high page, nothing for the hole. */
	guest_memory_mark_written(&mem, HOLE_START - 8, HIGH_BASE - HOLE_START + 16);
	/* Words and bits at the edges: a 64-page run starting mid-word, the last page of RAM, past RAM. */
	guest_memory_mark_written(&mem, 0x100000 + 32 * PAGE, 64 * PAGE);
	guest_memory_mark_written(&mem, HIGH_BASE + HOLE_START - 1, 100);
	guest_memory_mark_written(&mem, 0, 0);
	guest_memory_mark_written(&mem, UINT64_MAX - 10, 100);
	collect(&mem, &d);
	assert_true(dirty_at(&d, HOLE_START - PAGE));
	assert_true(dirty_at(&d, HOLE_START));
	assert_true(dirty_at(&d, 0x100000 + 32 * PAGE));
	assert_true(dirty_at(&d, 0x100000 + 95 * PAGE));
	assert_false(dirty_at(&d, 0x100000 + 31 * PAGE));
	assert_false(dirty_at(&d, 0x100000 + 96 * PAGE));
	assert_true(dirty_at(&d, RAM_SIZE - PAGE));
	assert_int_equal(d.n, 2 + 64 + 1);

	/* Host-address forms: outside RAM ignored, iovecs up to `len` bytes. */
	{
		uint8_t *low = guest_memory_hva(&mem, 0x7000, PAGE), *high = guest_memory_hva(&mem, HIGH_BASE, PAGE);
		struct iovec iov[3] = {
			{ .iov_base = low + PAGE - 2, .iov_len = 4 }, /* 0x7ffe..0x8001: two pages */
			{ .iov_base = buf, .iov_len = sizeof(buf) },  /* not guest memory */
			{ .iov_base = high, .iov_len = PAGE },        /* beyond len: not marked */
		};

		guest_memory_mark_written_hva(&mem, buf, sizeof(buf));
		guest_memory_mark_written_iov(&mem, iov, 3, 4 + sizeof(buf));
	}
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ 0x7000, 0x8000 }, 2);

	/* A discard changes contents: marked. Disabled tracking keeps its bits for a last collect. */
	assert_int_equal(guest_memory_discard(&mem, HIGH_BASE + 0x10000, 2 * PAGE), 0);
	guest_memory_dirty_disable(&mem);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ HOLE_START + 0x10000, HOLE_START + 0x11000 }, 2);
	guest_memory_destroy(&mem);
	assert_null(mem.dirty_bitmap);
}

/* ---- the writers ---- */

#define QSIZE 8
#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x20000ull
#define USED_GPA 0x30000ull
#define BUF_GPA (HIGH_BASE + 0x40000ull)

/* vq_push marks the used ring's element and index; chain writes mark their bytes; EVENT_IDX's avail_event. */
static void test_virtqueue_marks(void **state)
{
	struct guest_memory mem;
	struct virtqueue vq;
	struct vq_chain *c = malloc(sizeof(*c));
	uint16_t avail_idx = 0;
	struct dirty d;

	(void)state;
	assert_non_null(c);
	create(&mem, GUEST_MEMORY_MEMFD, -1);
	assert_int_equal(vq_init(&vq, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), 0);
	/* A readable descriptor, then a writable buffer straddling a page boundary. */
	fake_vq_write_desc(&mem, DESC_GPA, 0, 0x50000, 64, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_write_desc(&mem, DESC_GPA, 1, BUF_GPA + PAGE - 8, 32, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_offer(&mem, AVAIL_GPA, QSIZE, &avail_idx, 0);
	assert_int_equal(guest_memory_dirty_enable(&mem), 0);
	collect(&mem, &d);

	/* Popping reads only. */
	assert_int_equal(vq_pop(&vq, c), 1);
	collect(&mem, &d);
	assert_dirty(&d, NULL, 0);

	/* 4 bytes at offset 2 of the writable part: the first page only; then into the second page. */
	assert_int_equal(vq_chain_write(c, 2, "abcd", 4), 4);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ HOLE_START + 0x40000 }, 1);
	vq_chain_mark_written(c, 8, 24);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ HOLE_START + 0x41000 }, 1);

	/* The push: the used ring's page, whatever the buffer. */
	assert_int_equal(vq_push(&vq, 0, 32), 0);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ USED_GPA }, 1);
	assert_int_equal(fake_vq_used_idx(&mem, USED_GPA), 1);

	/* avail_event sits at the used ring's end. */
	vq_enable_notify(&vq);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ USED_GPA }, 1);
	guest_memory_destroy(&mem);
	free(c);
}

/* raw's filled hook sees every byte a read put into the buffers, so virtio-blk can mark them. */
struct raw_env {
	struct guest_memory *mem;
	uint64_t filled;
	bool done;
};

static void raw_filled(void *opaque, const struct iovec *iov, unsigned int iovcnt, uint64_t len)
{
	struct raw_env *e = opaque;

	e->filled += len;
	guest_memory_mark_written_iov(e->mem, iov, iovcnt, len);
}

static void raw_done(void *opaque, struct raw_request *req)
{
	struct raw_env *e = opaque;

	assert_int_equal(req->result, 0);
	e->done = true;
}

static void test_raw_read_marks(void **state)
{
	enum raw_engine engines[] = { RAW_ENGINE_SYNC, RAW_ENGINE_IO_URING };
	char path[] = "/tmp/kiln-test-raw-XXXXXX";
	int fd = mkstemp(path);
	struct guest_memory mem;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MIB), 0);
	close(fd);
	create(&mem, GUEST_MEMORY_MEMFD, -1);
	for (unsigned int i = 0; i < 2; i++) {
		struct raw_env e = { .mem = &mem };
		struct raw_params p = { .path = path, .read_only = true, .engine = engines[i], .queue_depth = 4,
					.complete = raw_done, .filled = raw_filled, .opaque = &e };
		struct iovec iov[2] = {
			{ .iov_base = guest_memory_hva(&mem, 0x9000, 512), .iov_len = 512 },
			{ .iov_base = guest_memory_hva(&mem, HIGH_BASE + 0xa000, 2 * PAGE), .iov_len = 2 * PAGE },
		};
		struct raw_request req = { .op = RAW_OP_READ, .offset = 0, .iov = iov, .iovcnt = 2 };
		char err[256];
		struct raw_disk *disk = raw_open(&p, err, sizeof(err));
		struct dirty d;

		assert_non_null(disk);
		assert_int_equal(guest_memory_dirty_enable(&mem), 0);
		collect(&mem, &d);
		assert_int_equal(raw_submit(disk, &req), 0);
		raw_commit(disk);
		assert_int_equal(raw_drain(disk), 0);
		assert_true(e.done);
		assert_int_equal(e.filled, 512 + 2 * PAGE);
		collect(&mem, &d);
		assert_dirty(&d, (uint64_t[]){ 0x9000, HOLE_START + 0xa000, HOLE_START + 0xb000 }, 3);
		raw_close(disk);
	}
	guest_memory_destroy(&mem);
	unlink(path);
}

/* ---- the x86 emulator's stores ---- */

#define CODE 0x1000ull
#define DATA 0x3ff8ull /* 8 bytes below a page boundary */

static int id_translate(void *opaque, uint64_t gva, uint64_t *gpa, bool *writeable)
{
	(void)opaque;
	*gpa = gva;
	*writeable = true;
	return 0;
}

static void *id_gpa_to_hva(void *opaque, uint64_t gpa, size_t len)
{
	return guest_memory_hva(opaque, gpa, len);
}

static void id_written(void *opaque, uint64_t gpa, size_t len)
{
	guest_memory_mark_written(opaque, gpa, len);
}

static void cpu64(struct x86_emu_cpu *cpu, const struct guest_memory *mem, const uint8_t *insn, size_t len)
{
	memset(cpu, 0, sizeof(*cpu));
	cpu->regs.rip = CODE;
	cpu->regs.rflags = 0x2;
	cpu->regs.rsp = 0x8000;
	cpu->sregs.cs = (struct kvm_segment){ .selector = 0x10, .type = 11, .present = 1, .s = 1, .l = 1 };
	cpu->sregs.ds = (struct kvm_segment){ .selector = 0x18, .type = 3, .present = 1, .s = 1, .db = 1 };
	cpu->sregs.ss = cpu->sregs.es = cpu->sregs.ds;
	cpu->sregs.cr0 = 0x80010033ull; /* PE MP ET NE WP PG */
	cpu->sregs.cr4 = 0x620ull;      /* PAE OSFXSR OSXMMEXCPT */
	cpu->sregs.efer = 0xd00ull;     /* LME LMA NXE */
	cpu->fpu.fcw = 0x37f;
	cpu->fpu.mxcsr = 0x1f80;
	memcpy(guest_memory_hva(mem, CODE, len), insn, len);
}

static void test_emulator_marks(void **state)
{
	/* movbe [rdi], rax (direct: a span crossing the page); lock cmpxchg16b [rsi]; fstp qword [rdi] (Unicorn). */
	static const uint8_t movbe[] = { 0x48, 0x0f, 0x38, 0xf1, 0x07 };
	static const uint8_t cmpxchg[] = { 0xf0, 0x48, 0x0f, 0xc7, 0x0e };
	static const uint8_t fstp[] = { 0xdd, 0x1f };
	struct guest_memory mem;
	struct x86_emu_cpu cpu;
	struct x86_emu *emu = x86_emu_create();
	struct x86_emu_mem_ops ops = {
		.translate = id_translate, .gpa_to_hva = id_gpa_to_hva, .written = id_written, .opaque = &mem,
	};
	struct dirty d;

	(void)state;
	assert_non_null(emu);
	create(&mem, GUEST_MEMORY_MEMFD, -1);
	assert_int_equal(guest_memory_dirty_enable(&mem), 0);

	cpu64(&cpu, &mem, movbe, sizeof(movbe));
	cpu.regs.rdi = DATA + 4;
	cpu.regs.rax = 0x0102030405060708ull;
	collect(&mem, &d);
	assert_int_equal(x86_emu_step(emu, &cpu, &ops, NULL, 0, NULL), X86_EMU_OK);
	assert_int_equal(byte_at(&mem, DATA + 4), 0x01);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ 0x3000, 0x4000 }, 2);

	cpu64(&cpu, &mem, cmpxchg, sizeof(cmpxchg));
	cpu.regs.rsi = 0x6000; /* holds zeroes: rdx:rax = 0 compares equal */
	cpu.regs.rbx = 1;
	collect(&mem, &d);
	assert_int_equal(x86_emu_step(emu, &cpu, &ops, NULL, 0, NULL), X86_EMU_OK);
	assert_int_equal(byte_at(&mem, 0x6000), 1);
	collect(&mem, &d);
	assert_dirty(&d, (uint64_t[]){ 0x6000 }, 1);

	cpu64(&cpu, &mem, fstp, sizeof(fstp));
	cpu.regs.rdi = 0x7000;
	cpu.fpu.fsw = 7u << 11; /* TOP 7, ST0 = physical register 7 = 0.0, tagged valid */
	cpu.fpu.ftwx = 0x80;
	collect(&mem, &d);
	if (x86_emu_step(emu, &cpu, &ops, NULL, 0, NULL) != X86_EMU_OK) {
		fprintf(stderr, "[  SKIPPED ] emulator: Unicorn stores not checked: %s\n", x86_emu_strerror(emu));
		x86_emu_destroy(emu);
		guest_memory_destroy(&mem);
		skip();
	}
	collect(&mem, &d);
	/* The stored page only: the code page was mapped writeable but only fetched. */
	assert_dirty(&d, (uint64_t[]){ 0x7000 }, 1);
	x86_emu_destroy(emu);
	guest_memory_destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memfd),
		cmocka_unit_test(test_init_is_memfd),
		cmocka_unit_test(test_anonymous),
		cmocka_unit_test(test_file_private),
		cmocka_unit_test(test_save_every_backend),
		cmocka_unit_test(test_hugetlb),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_tracking_off),
		cmocka_unit_test(test_tracking_exact_pages),
		cmocka_unit_test(test_virtqueue_marks),
		cmocka_unit_test(test_raw_read_marks),
		cmocka_unit_test(test_emulator_marks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
