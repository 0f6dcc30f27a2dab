// SPDX-License-Identifier: MIT
/* Guest RAM: layout, translation, the one write path and its tracking; the backends are in memory_backend.c. */
#include "vmm/memory.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/memory_backend.h"

#define FOUR_GIB (1ull << 32)
#define PAGE_SHIFT 12

static void reset(struct guest_memory *mem)
{
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
}

int guest_memory_create(struct guest_memory *mem, const struct guest_memory_params *p)
{
	const struct guest_memory_backend_ops *ops = guest_memory_backend(p->kind);
	int ret;

	reset(mem);
	if (!ops)
		return -EINVAL;
	if (p->size == 0 || (p->size & (ops->alignment - 1)) || p->hole_start > FOUR_GIB ||
	    (p->hole_start & (ops->alignment - 1)))
		return -EINVAL;
	mem->kind = p->kind;
	ret = ops->map(mem, p);
	if (ret) {
		reset(mem);
		return ret;
	}
	mem->ops = ops;
	guest_memory_layout(mem, p->size, p->hole_start);
	return 0;
}

int guest_memory_init(struct guest_memory *mem, uint64_t size, uint64_t hole_start)
{
	struct guest_memory_params p = { .kind = GUEST_MEMORY_MEMFD, .size = size, .hole_start = hole_start };

	return guest_memory_create(mem, &p);
}

void guest_memory_destroy(struct guest_memory *mem)
{
	if (mem->ops) {
		mem->ops->destroy(mem);
	} else {
		/* Filled by hand (tests): what there is. */
		if (mem->base)
			munmap(mem->base, mem->size);
		if (mem->memfd >= 0)
			close(mem->memfd);
	}
	free(mem->dirty_bitmap);
	reset(mem);
}

const char *guest_memory_kind_name(enum guest_memory_kind kind)
{
	const struct guest_memory_backend_ops *ops = guest_memory_backend(kind);

	return ops ? ops->name : "unknown";
}

/* Read [0, size) of `fd` into `dst`, skipping holes (SEEK_DATA/SEEK_HOLE): those stay untouched zeros. */
static int read_data(int fd, uint8_t *dst, uint64_t size)
{
	off_t off = 0;

	while ((uint64_t)off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				return 0; /* only a hole (or the trailer) is left */
			return -errno;
		}
		if ((uint64_t)data >= size)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		for (off = data; off < hole;) {
			ssize_t n = pread(fd, dst + off, (size_t)(hole - off), off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			off += n;
		}
	}
	return 0;
}

int guest_memory_init_from_file(struct guest_memory *mem, uint64_t size, uint64_t hole_start, int fd, bool copy)
{
	struct guest_memory_params p = {
		.kind = GUEST_MEMORY_FILE_PRIVATE, .size = size, .hole_start = hole_start, .file_fd = fd,
	};
	int ret;

	if (!copy)
		return guest_memory_create(mem, &p);
	ret = guest_memory_init(mem, size, hole_start);
	if (ret)
		return ret;
	ret = read_data(fd, mem->base, size);
	if (ret)
		guest_memory_destroy(mem);
	return ret;
}

int guest_memory_save(const struct guest_memory *mem, int fd)
{
	if (!mem->ops)
		return -EINVAL;
	return mem->ops->save(mem, fd);
}

/*
 * The RAM offset of guest range [gpa, gpa + len), which must be all RAM: within one region, or running on
 * into the next where the two are adjacent in guest physical addresses (a hole that starts at 4 GiB), and
 * then in RAM offsets too. Returns 0 or -EFAULT.
 */
static int ram_offset(const struct guest_memory *mem, uint64_t gpa, uint64_t len, uint64_t *off)
{
	uint64_t left = len, at = gpa;
	bool first = true;

	for (unsigned int i = 0; i < mem->nr_regions && left; i++) {
		const struct guest_region *r = &mem->regions[i];
		uint64_t in;

		if (first ? (at < r->gpa || at - r->gpa >= r->size) : at != r->gpa)
			continue;
		if (first)
			*off = r->fd_offset + (at - r->gpa);
		first = false;
		in = r->size - (at - r->gpa);
		if (in >= left)
			return 0;
		left -= in;
		at = r->gpa + r->size;
	}
	return -EFAULT;
}

/* Checks for discard and populate: page-aligned (to the backend's page) RAM. */
static int range_check(const struct guest_memory *mem, uint64_t gpa, uint64_t len, uint64_t *off)
{
	uint64_t align;

	if (!mem->ops)
		return -EINVAL;
	align = mem->ops->alignment;
	if (len == 0 || (gpa & (align - 1)) || (len & (align - 1)))
		return -EINVAL;
	return ram_offset(mem, gpa, len, off);
}

int guest_memory_discard(struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	uint64_t off;
	int ret = range_check(mem, gpa, len, &off);

	if (ret)
		return ret;
	ret = mem->ops->discard(mem, off, len);
	if (ret == 0)
		guest_memory_mark_written_hva(mem, mem->base + off, len);
	return ret;
}

int guest_memory_populate(struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	uint64_t off;
	int ret = range_check(mem, gpa, len, &off);

	return ret ? ret : mem->ops->populate(mem, off, len);
}

int guest_memory_share_fd(const struct guest_memory *mem)
{
	return mem->ops ? mem->ops->share_fd(mem) : -ENOTSUP;
}

void *guest_memory_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		/* Written so that no sum can overflow: gpa and len come from the guest. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t guest_memory_low_size(const struct guest_memory *mem)
{
	return mem->nr_regions ? mem->regions[0].size : 0;
}

uint64_t guest_memory_high_size(const struct guest_memory *mem)
{
	return mem->nr_regions > 1 ? mem->regions[1].size : 0;
}

int guest_memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_memory_hva(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	guest_memory_mark_written_hva(mem, dst, len);
	return 0;
}

int guest_memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len)
{
	const void *src = guest_memory_hva(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

void guest_memory_layout(struct guest_memory *mem, uint64_t size, uint64_t hole_start)
{
	uint64_t low = size < hole_start ? size : hole_start;

	mem->size = size;
	mem->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .hva = mem->base, .fd_offset = 0 };
	mem->nr_regions = 1;
	if (size > low) {
		mem->regions[1] = (struct guest_region){
			.gpa = FOUR_GIB, .size = size - low, .hva = mem->base ? mem->base + low : NULL, .fd_offset = low,
		};
		mem->nr_regions = 2;
	}
}

/* ---- write tracking ---- */

/* Set the bits of the pages RAM offsets [off, off + len) touch (len > 0, inside RAM). */
static void mark_offsets(uint64_t *bm, uint64_t off, uint64_t len)
{
	uint64_t first = off >> PAGE_SHIFT, last = (off + len - 1) >> PAGE_SHIFT;

	for (uint64_t w = first / 64; w <= last / 64; w++) {
		uint64_t lo = w == first / 64 ? first % 64 : 0, hi = w == last / 64 ? last % 64 : 63;
		uint64_t mask = (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) & ~((1ull << lo) - 1);

		/* Release: whoever sees the bit (collect's acquire) sees the bytes written before it. */
		__atomic_fetch_or(&bm[w], mask, __ATOMIC_RELEASE);
	}
}

void guest_memory_mark_written_hva(const struct guest_memory *mem, const void *hva, uint64_t len)
{
	uint64_t *bm = __atomic_load_n(&mem->dirty, __ATOMIC_ACQUIRE);
	uintptr_t p = (uintptr_t)hva, base = (uintptr_t)mem->base;
	uint64_t off;

	if (__builtin_expect(!bm, 1))
		return;
	if (!len || p >= base + mem->size || p + len <= base)
		return;
	/* Clip to RAM: the part outside is not guest memory (a bounce buffer next to it, say). */
	if (p < base) {
		len -= base - p;
		p = base;
	}
	off = p - base;
	if (len > mem->size - off)
		len = mem->size - off;
	mark_offsets(bm, off, len);
}

void guest_memory_mark_written(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	if (__builtin_expect(!__atomic_load_n(&mem->dirty, __ATOMIC_RELAXED), 1))
		return;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];
		uint64_t start, end;

		/* The overlap of [gpa, gpa + len) with the region, without overflowing sums. */
		start = gpa > r->gpa ? gpa - r->gpa : 0;
		if (start >= r->size || (gpa < r->gpa && len <= r->gpa - gpa))
			continue;
		end = len > UINT64_MAX - gpa || gpa + len - r->gpa > r->size ? r->size : gpa + len - r->gpa;
		guest_memory_mark_written_hva(mem, r->hva + start, end - start);
	}
}

void guest_memory_mark_written_iov(const struct guest_memory *mem, const struct iovec *iov, unsigned int n,
				   uint64_t len)
{
	if (__builtin_expect(!__atomic_load_n(&mem->dirty, __ATOMIC_RELAXED), 1))
		return;
	for (unsigned int i = 0; i < n && len; i++) {
		uint64_t k = iov[i].iov_len < len ? iov[i].iov_len : len;

		guest_memory_mark_written_hva(mem, iov[i].iov_base, k);
		len -= k;
	}
}

size_t guest_memory_dirty_words(const struct guest_memory *mem)
{
	uint64_t pages = (mem->size + GUEST_MEMORY_PAGE_SIZE - 1) >> PAGE_SHIFT;

	return (size_t)((pages + 63) / 64);
}

int guest_memory_dirty_enable(struct guest_memory *mem)
{
	if (!mem->dirty_bitmap) {
		mem->dirty_bitmap = calloc(guest_memory_dirty_words(mem), sizeof(uint64_t));
		if (!mem->dirty_bitmap)
			return -ENOMEM;
	}
	__atomic_store_n(&mem->dirty, mem->dirty_bitmap, __ATOMIC_RELEASE);
	return 0;
}

void guest_memory_dirty_disable(struct guest_memory *mem)
{
	__atomic_store_n(&mem->dirty, NULL, __ATOMIC_RELEASE);
}

bool guest_memory_dirty_enabled(const struct guest_memory *mem)
{
	return __atomic_load_n(&mem->dirty, __ATOMIC_ACQUIRE) != NULL;
}

long guest_memory_dirty_collect(struct guest_memory *mem, uint64_t *out, size_t words)
{
	long n = 0;

	if (words != guest_memory_dirty_words(mem))
		return -EINVAL;
	if (!mem->dirty_bitmap)
		return -ENODATA;
	for (size_t w = 0; w < words; w++) {
		out[w] = __atomic_exchange_n(&mem->dirty_bitmap[w], 0, __ATOMIC_ACQUIRE);
		n += __builtin_popcountll(out[w]);
	}
	return n;
}
