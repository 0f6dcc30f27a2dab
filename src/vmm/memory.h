/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one mapping of `size` bytes, split into at most two KVM memory slots around the MMIO hole
 * below 4 GiB, held by one of several backends (enum guest_memory_kind, memory_backend.c): a shared
 * memfd (the default: pages allocated on first touch, shareable with a snapshot writer or another
 * process), a MAP_PRIVATE mapping of a snapshot's memory file, private anonymous memory, or a hugetlb
 * memfd. What each supports is in docs/design.md "Guest memory".
 *
 * Offsets ("RAM offsets") count bytes from the start of the mapping: the memfd's and the snapshot memory
 * file's layout, in which the region above 4 GiB follows the one below the hole.
 *
 * Every write kiln itself makes into guest RAM goes through guest_memory_write, or is announced after the
 * fact by guest_memory_mark_written (a write made in place through a host address: a device's read
 * completion, a TAP read, an emulated store). With write tracking on, those calls set the written pages'
 * bits in a dirty bitmap; the guest's own writes are KVM's dirty log, not this.
 */
#ifndef KILN_VMM_MEMORY_H
#define KILN_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUEST_MEMORY_MAX_REGIONS 2
/* The write tracking granularity, bytes. */
#define GUEST_MEMORY_PAGE_SIZE 4096ull
/* A hugetlb backend's page (the x86 default huge page), bytes. */
#define GUEST_MEMORY_HUGE_PAGE_SIZE (2ull << 20)

enum guest_memory_kind {
	GUEST_MEMORY_MEMFD,        /* memfd, MAP_SHARED | MAP_NORESERVE (guest_memory_init, and --copy restores) */
	GUEST_MEMORY_FILE_PRIVATE, /* a snapshot's memory file, MAP_PRIVATE: copy-on-write over its page cache */
	GUEST_MEMORY_ANON,         /* MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE */
	GUEST_MEMORY_HUGETLB,      /* memfd with MFD_HUGETLB (2 MiB pages), MAP_SHARED, reserved at creation */
	GUEST_MEMORY_NR_KINDS,
};

struct guest_region {
	uint64_t gpa;        /* guest physical start */
	uint64_t size;       /* bytes */
	uint8_t *hva;        /* host virtual start */
	uint64_t fd_offset;  /* RAM offset of the region (offset in the memfd or memory file) */
};

struct guest_memory_backend_ops;

struct guest_memory {
	enum guest_memory_kind kind;
	const struct guest_memory_backend_ops *ops; /* the kind's table; NULL before creation */
	int memfd;           /* the memfd (MEMFD, HUGETLB), else -1 */
	uint8_t *base;       /* the whole RAM mapped */
	uint64_t size;       /* total RAM, bytes */
	unsigned int nr_regions;
	struct guest_region regions[GUEST_MEMORY_MAX_REGIONS];
	/*
	 * Write tracking: one bit per 4 KiB page of RAM offset, set atomically. `dirty` is the bitmap while
	 * tracking is on and NULL while off (the one branch a write pays); the allocation stays in
	 * `dirty_bitmap` until guest_memory_destroy, so a thread that read `dirty` just before tracking was
	 * turned off still writes into live memory.
	 */
	uint64_t *dirty;
	uint64_t *dirty_bitmap;
};

/* How to create guest RAM (guest_memory_create). */
struct guest_memory_params {
	enum guest_memory_kind kind;
	uint64_t size;        /* bytes: a multiple of 4 KiB (of 2 MiB for HUGETLB) */
	uint64_t hole_start;  /* RAM that would overlap [hole_start, 4 GiB) continues at 4 GiB; 4 KiB aligned */
	int file_fd;          /* FILE_PRIVATE: the memory file mapped (kept open by the caller); else unused */
};

/*
 * Create guest RAM as `p` says, laid out around the hole. Returns 0 or -errno: EINVAL (a size or hole
 * not aligned as above, an unknown kind), ENOMEM (HUGETLB: fewer free huge pages than `size` needs; see
 * /proc/sys/vm/nr_hugepages), or what memfd_create, ftruncate and mmap say.
 */
int guest_memory_create(struct guest_memory *mem, const struct guest_memory_params *p)
	__attribute__((warn_unused_result));

/* guest_memory_create with a shared memfd (GUEST_MEMORY_MEMFD). Returns 0 or -errno. */
int guest_memory_init(struct guest_memory *mem, uint64_t size, uint64_t hole_start) __attribute__((warn_unused_result));
void guest_memory_destroy(struct guest_memory *mem);

/*
 * Guest RAM of `size` bytes laid out as guest_memory_init does, with its contents from the first
 * `size` bytes of the file `fd` (a snapshot's memory file, in the memfd's layout). With `copy` false the
 * file is mapped MAP_PRIVATE (GUEST_MEMORY_FILE_PRIVATE): pages are read on first touch and copied on
 * first write, so the file is never changed and several VMs can share its page cache; memfd is then -1.
 * With `copy` the file is read into a new memfd now (GUEST_MEMORY_MEMFD; holes stay unallocated), as if
 * the VM had written it. Returns 0 or -errno.
 */
int guest_memory_init_from_file(struct guest_memory *mem, uint64_t size, uint64_t hole_start, int fd, bool copy)
	__attribute__((warn_unused_result));

/* The backend's name ("memfd", "file-private", "anonymous", "hugetlb"), for messages. */
const char *guest_memory_kind_name(enum guest_memory_kind kind);

/*
 * Write guest RAM to `fd` at offset 0 (`mem->size` bytes, in the memfd's layout): pages that are all
 * zero are left as holes (a sparse file), so a mostly empty guest gives a small file. Returns 0 or -errno.
 */
int guest_memory_save(const struct guest_memory *mem, int fd) __attribute__((warn_unused_result));

/*
 * Give back the host memory behind guest range [gpa, gpa + len) (page-aligned, all RAM: the MMIO hole
 * is not). Afterwards the range reads as zeroes, except on FILE_PRIVATE, where it reads the memory
 * file's bytes again (the private copies are dropped, MADV_DONTNEED). MEMFD and HUGETLB punch a hole
 * (HUGETLB: 2 MiB aligned). The range is marked written when write tracking is on: its contents
 * changed. Returns 0, -EINVAL (alignment), -EFAULT (not RAM), or what fallocate/madvise say.
 */
int guest_memory_discard(struct guest_memory *mem, uint64_t gpa, uint64_t len) __attribute__((warn_unused_result));

/*
 * Fault guest range [gpa, gpa + len) (page-aligned, RAM only) in now, so the guest's first touches do not
 * wait for the host: MADV_POPULATE_WRITE (Linux 5.14) where the kernel has it, else a write of each page
 * with its own value. FILE_PRIVATE populates for reading (MADV_POPULATE_READ, else a read of each page):
 * writing would copy every page and lose the page cache the clones share. Contents do not change.
 * Returns 0, -EINVAL, -EFAULT (not RAM), -ENOMEM (HUGETLB out of huge pages), or what madvise says.
 */
int guest_memory_populate(struct guest_memory *mem, uint64_t gpa, uint64_t len) __attribute__((warn_unused_result));

/*
 * A file descriptor of guest RAM another process can map (MAP_SHARED, at the RAM offsets) to see and
 * change the same memory: for local migration and fd passing. The fd stays owned by `mem` (dup it to
 * keep it). Returns the fd, or -ENOTSUP for backends whose memory is private to this process
 * (FILE_PRIVATE, ANON).
 */
int guest_memory_share_fd(const struct guest_memory *mem) __attribute__((warn_unused_result));

/*
 * The regions guest_memory_init gives `size` bytes of RAM around the hole, over `mem->base` (hva NULL
 * when base is): sets size, nr_regions and regions.
 */
void guest_memory_layout(struct guest_memory *mem, uint64_t size, uint64_t hole_start);

/* Host address of guest range [gpa, gpa+len) if it lies within one RAM region, else NULL. */
void *guest_memory_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* RAM below the hole and above 4 GiB, bytes. */
uint64_t guest_memory_low_size(const struct guest_memory *mem);
uint64_t guest_memory_high_size(const struct guest_memory *mem);

/*
 * Copy into / out of guest RAM, bounds-checked (one region). guest_memory_write marks the bytes written
 * (guest_memory_mark_written). Returns 0 or -EFAULT.
 */
int guest_memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len)
	__attribute__((warn_unused_result));
int guest_memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len)
	__attribute__((warn_unused_result));

/*
 * Write tracking for writes kiln makes itself (the guest's are KVM's dirty log).
 *
 * guest_memory_mark_written: kiln has just written guest range [gpa, gpa + len) in place through a host
 * address. Call it after the write, from any thread: with tracking on, the 4 KiB pages the range touches
 * get their bits set (atomically, release ordered after the write, so a collector that sees a bit sees the
 * data); with tracking off it is one branch. Parts of the range that are not RAM are ignored.
 * guest_memory_mark_written_hva: the same for host range [hva, hva + len), which may lie in guest RAM
 * (ignored where not: a bounce buffer). guest_memory_mark_written_iov: the first `len` bytes of iov[0..n).
 */
void guest_memory_mark_written(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
void guest_memory_mark_written_hva(const struct guest_memory *mem, const void *hva, uint64_t len);
void guest_memory_mark_written_iov(const struct guest_memory *mem, const struct iovec *iov, unsigned int n,
				   uint64_t len);

/*
 * Turn tracking on (the bitmap is allocated at the first call, all clear; pages written while tracking
 * was off are not in it, bits left from an earlier period stay until collected) or off (bits set so far
 * stay, for a last collect). Returns 0 or -ENOMEM.
 */
int guest_memory_dirty_enable(struct guest_memory *mem) __attribute__((warn_unused_result));
void guest_memory_dirty_disable(struct guest_memory *mem);
bool guest_memory_dirty_enabled(const struct guest_memory *mem);

/* Bitmap words guest_memory_dirty_collect fills: one bit per 4 KiB page of RAM offset, 64 per word. */
size_t guest_memory_dirty_words(const struct guest_memory *mem);

/*
 * Move the dirty bits into out[0 .. words) and clear them (each word atomically exchanged, so a page
 * written during the collection is in this result or the next). Bit b of out[w] is the page at RAM offset
 * (64 w + b) * 4 KiB. `words` must be guest_memory_dirty_words. Returns the number of dirty pages, or
 * -EINVAL for a wrong `words`, -ENODATA when tracking was never enabled.
 */
long guest_memory_dirty_collect(struct guest_memory *mem, uint64_t *out, size_t words)
	__attribute__((warn_unused_result));

#endif
