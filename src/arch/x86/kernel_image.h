/* SPDX-License-Identifier: MIT */
/*
 * Kernel images kiln boots: an ELF64 executable (Linux's vmlinux, or a test guest) loaded by physical
 * address, or a bzImage (Linux x86 boot protocol >= 2.08) whose compressed payload kiln decompresses
 * itself into the ELF vmlinux.
 */
#ifndef KILN_ARCH_X86_KERNEL_IMAGE_H
#define KILN_ARCH_X86_KERNEL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/bootparam.h"

#define KERNEL_IMAGE_MAX_SEGMENTS 16
/* Largest decompressed kernel kiln accepts. */
#define KERNEL_IMAGE_MAX_SIZE (512ull << 20)

struct kernel_segment {
	uint64_t paddr;   /* guest physical load address (p_paddr) */
	uint64_t filesz;  /* bytes copied from the file */
	uint64_t memsz;   /* bytes occupied in memory; the rest after filesz is zeroed */
	uint64_t offset;  /* file offset within elf */
};

struct kernel_image {
	uint8_t *elf;          /* the ELF image (owned: file contents or decompressed payload) */
	size_t elf_size;
	uint64_t entry;        /* physical 64-bit entry point: e_entry translated to a physical address */
	uint64_t load_start;   /* lowest paddr of any PT_LOAD */
	uint64_t load_end;     /* highest paddr + memsz */
	unsigned int nr_segments;
	struct kernel_segment segments[KERNEL_IMAGE_MAX_SEGMENTS];
	bool is_linux;         /* a bzImage, or an ELF with a "Linux" note or a Xen GUEST_OS "linux" note */
	bool from_bzimage;
	struct setup_header hdr; /* the bzImage's setup header when from_bzimage */
	bool has_pvh_entry;    /* XEN_ELFNOTE_PHYS32_ENTRY note present */
	uint32_t pvh_entry;
};

/*
 * Parse a kernel file's contents (`data`, `len`): ELF64 x86-64 ET_EXEC, or a bzImage whose payload is
 * decompressed (see payload.h). The ELF is validated against truncation: headers, program headers and
 * every segment's file range must lie inside the file; segments must not overlap (physically) or wrap,
 * and must end at or below 64 GiB (whether they fit guest RAM is boot.c's check). On failure `img` is
 * left zeroed. Returns 0, or -EINVAL (malformed, with a reason in `err`), -ENOTSUP (e.g. 32-bit ELF,
 * ET_DYN, boot protocol < 2.08, bzip2/lzo payload), -ENOMEM.
 */
int kernel_image_parse(const uint8_t *data, size_t len, struct kernel_image *img, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Read a regular file fully into a malloc'd buffer (at most max_len bytes). Returns 0 or -errno:
 * -EFBIG when larger than max_len, -EISDIR/-EINVAL when not a regular file.
 */
int kernel_image_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
	__attribute__((warn_unused_result));

void kernel_image_free(struct kernel_image *img);

#endif
