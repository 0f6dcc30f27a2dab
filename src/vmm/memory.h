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
	int memfd;
	uint8_t *base;       /* the whole memfd mapped */
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
