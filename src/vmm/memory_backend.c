// SPDX-License-Identifier: MIT
/*
 * The guest-memory backends (memory_backend.h): how RAM is mapped, given back, shared, populated and saved
 * for each enum guest_memory_kind. What combines with what is in docs/design.md "Guest memory".
 */
#include "vmm/memory_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif

#define PAGE GUEST_MEMORY_PAGE_SIZE

/* ---- mapping ---- */

/* Map `fd` (or anonymous memory when fd < 0) as guest RAM: set mem->base. 0 or -errno. */
static int map_ram(struct guest_memory *mem, uint64_t size, int flags, int fd)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	mem->base = p;
	/* Guest RAM is never part of a host core dump. */
	madvise(mem->base, size, MADV_DONTDUMP);
	return 0;
}

/* A memfd of `size` bytes mapped MAP_SHARED with `map_flags` added. */
static int memfd_map_common(struct guest_memory *mem, uint64_t size, unsigned int mfd_flags, int map_flags)
{
	int ret;

	mem->memfd = memfd_create("kiln-guest-ram", MFD_CLOEXEC | mfd_flags);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto err;
	}
	ret = map_ram(mem, size, MAP_SHARED | map_flags, mem->memfd);
	if (ret)
		goto err;
	return 0;
err:
	close(mem->memfd);
	mem->memfd = -1;
	return ret;
}

/* Pages are allocated on first touch (MAP_NORESERVE): a 4 GiB guest that uses 100 MiB costs 100 MiB. */
static int memfd_map(struct guest_memory *mem, const struct guest_memory_params *p)
{
	return memfd_map_common(mem, p->size, 0, MAP_NORESERVE);
}

/*
 * Without MAP_NORESERVE, on purpose: hugetlb reserves the huge pages at mmap time, so a host without
 * enough of them fails here with ENOMEM instead of the guest dying of SIGBUS at first touch. EINVAL comes
 * from a kernel without hugetlbfs (or a size the huge page size does not divide).
 */
static int hugetlb_map(struct guest_memory *mem, const struct guest_memory_params *p)
{
	return memfd_map_common(mem, p->size, MFD_HUGETLB, 0);
}

static int file_private_map(struct guest_memory *mem, const struct guest_memory_params *p)
{
	if (p->file_fd < 0)
		return -EBADF;
	return map_ram(mem, p->size, MAP_PRIVATE | MAP_NORESERVE, p->file_fd);
}

static int anon_map(struct guest_memory *mem, const struct guest_memory_params *p)
{
	return map_ram(mem, p->size, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
}

static void ram_destroy(struct guest_memory *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	mem->base = NULL;
	mem->memfd = -1;
}

/* ---- discard ---- */

/* A hole in the memfd: its pages go back to the host and read as zeroes (in every mapping of it). */
static int discard_punch(struct guest_memory *mem, uint64_t off, uint64_t len)
{
	if (fallocate(mem->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

/*
 * MADV_DONTNEED drops the range's pages from this mapping. For anonymous memory they read as zeroes
 * afterwards; for a MAP_PRIVATE file mapping the private copies are dropped and the range reads the
 * file's bytes again (the snapshot's contents, not zeroes).
 */
static int discard_dontneed(struct guest_memory *mem, uint64_t off, uint64_t len)
{
	if (madvise(mem->base + off, len, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

/* ---- sharing ---- */

static int share_memfd(const struct guest_memory *mem)
{
	return mem->memfd >= 0 ? mem->memfd : -ENOTSUP;
}

/* Private memory: another process mapping the file would not see this process's writes. */
static int share_none(const struct guest_memory *mem)
{
	(void)mem;
	return -ENOTSUP;
}

/* ---- populating ---- */

/*
 * MADV_POPULATE_* where the kernel has it; before 5.14 (EINVAL) one access per page instead. The write
 * touch is an atomic add of 0: it changes nothing even while vCPUs write the same page.
 */
static int populate_range(struct guest_memory *mem, uint64_t off, uint64_t len, bool write)
{
	uint64_t step = mem->kind == GUEST_MEMORY_HUGETLB ? GUEST_MEMORY_HUGE_PAGE_SIZE : PAGE;

	if (madvise(mem->base + off, len, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
		return 0;
	if (errno != EINVAL)
		return errno == EFAULT ? -ENOMEM : -errno; /* EFAULT: SIGBUS-class failure (out of huge pages) */
	for (uint64_t o = off; o < off + len; o += step) {
		uint8_t *p = mem->base + o;

		if (write)
			__atomic_fetch_add(p, 0, __ATOMIC_RELAXED);
		else
			(void)__atomic_load_n(p, __ATOMIC_RELAXED);
	}
	return 0;
}

static int populate_write(struct guest_memory *mem, uint64_t off, uint64_t len)
{
	return populate_range(mem, off, len, true);
}

/* Reading keeps the page cache shared with the other clones of the snapshot; writes still copy on demand. */
static int populate_read(struct guest_memory *mem, uint64_t off, uint64_t len)
{
	return populate_range(mem, off, len, false);
}

/* ---- saving ---- */

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE / sizeof(*q); i++)
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

/*
 * Write the non-zero pages of RAM to `fd`. With `data_fd` (a memfd), SEEK_DATA skips the pages never
 * touched without reading a byte; a private mapping does not know them, so each page is looked at (as it
 * is where the file system cannot answer SEEK_DATA).
 */
static int save_pages(const struct guest_memory *mem, int fd, int data_fd)
{
	const uint64_t chunk = 1ull << 20;
	uint64_t off = 0;
	int ret;

	/* The file's length first: every page left unwritten below is then a hole that reads as zero. */
	if (ftruncate(fd, (off_t)mem->size) < 0)
		return -errno;
	while (off < mem->size) {
		uint64_t end = off + chunk < mem->size ? off + chunk : mem->size, run;

		if (data_fd >= 0) {
			off_t data = lseek(data_fd, (off_t)off, SEEK_DATA);

			if (data < 0 && errno == ENXIO)
				break; /* only holes are left */
			if (data >= 0 && (uint64_t)data >= mem->size)
				break;
			if (data >= 0 && (uint64_t)data > off) {
				off = (uint64_t)data & ~(PAGE - 1);
				continue;
			}
		}
		while (off < end) {
			if (page_is_zero(mem->base + off)) {
				off += PAGE;
				continue;
			}
			for (run = off + PAGE; run < end && !page_is_zero(mem->base + run); run += PAGE)
				;
			ret = write_at(fd, mem->base + off, (size_t)(run - off), (off_t)off);
			if (ret)
				return ret;
			off = run;
		}
	}
	return 0;
}

static int save_memfd(const struct guest_memory *mem, int fd)
{
	return save_pages(mem, fd, mem->memfd);
}

static int save_mapping(const struct guest_memory *mem, int fd)
{
	return save_pages(mem, fd, -1);
}

/* ---- the tables ---- */

static const struct guest_memory_backend_ops memfd_ops = {
	.name = "memfd",
	.alignment = PAGE,
	.map = memfd_map,
	.destroy = ram_destroy,
	.discard = discard_punch,
	.share_fd = share_memfd,
	.populate = populate_write,
	.save = save_memfd,
};

static const struct guest_memory_backend_ops file_private_ops = {
	.name = "file-private",
	.alignment = PAGE,
	.map = file_private_map,
	.destroy = ram_destroy,
	.discard = discard_dontneed,
	.share_fd = share_none,
	.populate = populate_read,
	.save = save_mapping,
};

static const struct guest_memory_backend_ops anon_ops = {
	.name = "anonymous",
	.alignment = PAGE,
	.map = anon_map,
	.destroy = ram_destroy,
	.discard = discard_dontneed,
	.share_fd = share_none,
	.populate = populate_write,
	.save = save_mapping,
};

/* hugetlbfs answers SEEK_DATA as if every byte were data: save_pages then looks at each page. */
static const struct guest_memory_backend_ops hugetlb_ops = {
	.name = "hugetlb",
	.alignment = GUEST_MEMORY_HUGE_PAGE_SIZE,
	.map = hugetlb_map,
	.destroy = ram_destroy,
	.discard = discard_punch,
	.share_fd = share_memfd,
	.populate = populate_write,
	.save = save_memfd,
};

static const struct guest_memory_backend_ops *const backends[GUEST_MEMORY_NR_KINDS] = {
	[GUEST_MEMORY_MEMFD] = &memfd_ops,
	[GUEST_MEMORY_FILE_PRIVATE] = &file_private_ops,
	[GUEST_MEMORY_ANON] = &anon_ops,
	[GUEST_MEMORY_HUGETLB] = &hugetlb_ops,
};

const struct guest_memory_backend_ops *guest_memory_backend(enum guest_memory_kind kind)
{
	return (unsigned int)kind < GUEST_MEMORY_NR_KINDS ? backends[kind] : NULL;
}
