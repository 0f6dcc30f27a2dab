/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one memfd mapped MAP_SHARED | MAP_NORESERVE (pages are allocated on first touch; a memfd
 * can later be shared with a snapshot writer or another process), split into at most two KVM memory
 * slots around the MMIO hole below 4 GiB.
 */
#ifndef KILN_VMM_MEMORY_H
#define KILN_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEMORY_MAX_REGIONS 2

struct guest_region {
	uint64_t gpa;        /* guest physical start */
	uint64_t size;       /* bytes */
	uint8_t *hva;        /* host virtual start */
	uint64_t fd_offset;  /* offset in the memfd */
};

struct guest_memory {
	int memfd;           /* -1 when RAM is a private mapping of a snapshot's memory file */
	uint8_t *base;       /* the whole memfd (or memory file) mapped */
	uint64_t size;       /* total RAM, bytes */
	unsigned int nr_regions;
	struct guest_region regions[GUEST_MEMORY_MAX_REGIONS];
};

/*
 * Create `size` bytes of guest RAM (a multiple of 4 KiB). RAM that would overlap the hole
 * [hole_start, 4 GiB) continues at 4 GiB. Returns 0 or -errno.
 */
int guest_memory_init(struct guest_memory *mem, uint64_t size, uint64_t hole_start) __attribute__((warn_unused_result));
void guest_memory_destroy(struct guest_memory *mem);

/*
 * Guest RAM of `size` bytes laid out as guest_memory_init does, with its contents from the first
 * `size` bytes of the file `fd` (a snapshot's memory file, in the memfd's layout). With `copy` false the
 * file is mapped MAP_PRIVATE: pages are read on first touch and copied on first write, so the file is
 * never changed and several VMs can share its page cache; memfd is then -1. With `copy` the file is read
 * into a new memfd now (holes stay unallocated), as if the VM had written it. Returns 0 or -errno.
 */
int guest_memory_init_from_file(struct guest_memory *mem, uint64_t size, uint64_t hole_start, int fd, bool copy)
	__attribute__((warn_unused_result));

/*
 * Write guest RAM to `fd` at offset 0 (`mem->size` bytes, in the memfd's layout): pages that are all
 * zero are left as holes (a sparse file), so a mostly empty guest gives a small file. Returns 0 or -errno.
 */
int guest_memory_save(const struct guest_memory *mem, int fd) __attribute__((warn_unused_result));

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

/* Copy into / out of guest RAM, bounds-checked. Returns 0 or -EFAULT. */
int guest_memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len)
	__attribute__((warn_unused_result));
int guest_memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len)
	__attribute__((warn_unused_result));

#endif
