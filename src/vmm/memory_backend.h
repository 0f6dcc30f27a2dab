/* SPDX-License-Identifier: MIT */
/*
 * Guest-memory backends: one const ops table per enum guest_memory_kind (memory_backend.c). memory.c
 * checks every range against the layout and turns guest physical addresses into RAM offsets before it
 * calls them, so a backend sees only page-aligned ranges inside [0, mem->size).
 */
#ifndef KILN_VMM_MEMORY_BACKEND_H
#define KILN_VMM_MEMORY_BACKEND_H

#include <stdint.h>

#include "vmm/memory.h"

struct guest_memory_backend_ops {
	const char *name;
	/* Sizes, holes and discard ranges are multiples of this (bytes). */
	uint64_t alignment;
	/* Map p->size bytes: set mem->base and mem->memfd (or -1). 0 or -errno, nothing left behind on error. */
	int (*map)(struct guest_memory *mem, const struct guest_memory_params *p);
	/* Unmap and close what map made. */
	void (*destroy)(struct guest_memory *mem);
	/* Release RAM offsets [off, off + len): see guest_memory_discard for what they read afterwards. */
	int (*discard)(struct guest_memory *mem, uint64_t off, uint64_t len);
	/* The fd another process can map, or -ENOTSUP. */
	int (*share_fd)(const struct guest_memory *mem);
	/* Fault RAM offsets [off, off + len) in without changing them. */
	int (*populate)(struct guest_memory *mem, uint64_t off, uint64_t len);
	/* guest_memory_save. */
	int (*save)(const struct guest_memory *mem, int fd);
};

/* The table of `kind`, NULL for an unknown kind. */
const struct guest_memory_backend_ops *guest_memory_backend(enum guest_memory_kind kind);

#endif
