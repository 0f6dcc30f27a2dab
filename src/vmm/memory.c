// SPDX-License-Identifier: MIT
#include "vmm/memory.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FOUR_GIB (1ull << 32)

int guest_memory_init(struct guest_memory *mem, uint64_t size, uint64_t hole_start)
{
	int ret;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size == 0 || (size & 0xfff) || hole_start > FOUR_GIB || (hole_start & 0xfff))
		return -EINVAL;
	mem->memfd = memfd_create("kiln-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto err;
	}
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem->memfd, 0);
	if (mem->base == MAP_FAILED) {
		ret = -errno;
		mem->base = NULL;
		goto err;
	}
	/* Guest RAM is never part of a host core dump. */
	madvise(mem->base, size, MADV_DONTDUMP);
	guest_memory_layout(mem, size, hole_start);
	return 0;
err:
	close(mem->memfd);
	mem->memfd = -1;
	return ret;
}

void guest_memory_destroy(struct guest_memory *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
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
	int ret;

	if (copy) {
		ret = guest_memory_init(mem, size, hole_start);
		if (ret)
			return ret;
		ret = read_data(fd, mem->base, size);
		if (ret)
			guest_memory_destroy(mem);
		return ret;
	}
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size == 0 || (size & 0xfff) || hole_start > FOUR_GIB || (hole_start & 0xfff))
		return -EINVAL;
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (mem->base == MAP_FAILED) {
		ret = -errno;
		mem->base = NULL;
		return ret;
	}
	madvise(mem->base, size, MADV_DONTDUMP);
	guest_memory_layout(mem, size, hole_start);
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < 4096 / sizeof(*q); i++)
		if (q[i])
			return false;
	return true;
}

static int write_at(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int guest_memory_save(const struct guest_memory *mem, int fd)
{
	const uint64_t page = 4096, chunk = 1ull << 20;
	uint64_t off = 0;
	int ret;

	/* The file's length first: every page left unwritten below is then a hole that reads as zero. */
	if (ftruncate(fd, (off_t)mem->size) < 0)
		return -errno;
	while (off < mem->size) {
		uint64_t end = off + chunk < mem->size ? off + chunk : mem->size, run;

		/*
		 * A memfd knows which of its pages were never touched (SEEK_DATA skips them without reading a
		 * byte); a private mapping does not, so each page is looked at.
		 */
		if (mem->memfd >= 0) {
			off_t data = lseek(mem->memfd, (off_t)off, SEEK_DATA);

			if (data < 0 || (uint64_t)data >= mem->size)
				break;
			if ((uint64_t)data > off) {
				off = (uint64_t)data & ~(page - 1);
				continue;
			}
		}
		while (off < end) {
			if (page_is_zero(mem->base + off)) {
				off += page;
				continue;
			}
			for (run = off + page; run < end && !page_is_zero(mem->base + run); run += page)
				;
			ret = write_at(fd, mem->base + off, (size_t)(run - off), (off_t)off);
			if (ret)
				return ret;
			off = run;
		}
	}
	return 0;
}
