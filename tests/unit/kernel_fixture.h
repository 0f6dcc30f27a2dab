/* SPDX-License-Identifier: MIT */
/*
 * What test_boot_params.c (the Linux boot protocol) and test_pvh.c (PVH boot) share: 64 MiB of guest RAM
 * with the x86 MMIO hole, and a parsed one-segment kernel image whose ELF bytes are 0xcc, so that what the
 * loader copies can be told from the zeroes around it. Header-only, as virtio_pci_fixture.h.
 */
#ifndef KILN_TESTS_UNIT_KERNEL_FIXTURE_H
#define KILN_TESTS_UNIT_KERNEL_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/kernel_image.h"
#include "arch/x86/layout.h"
#include "vmm/memory.h"

#define MIB (1ull << 20)

struct fixture {
	struct guest_memory mem;
	struct kernel_image img;
	uint8_t elf[8192];
};

/*
 * The fixture with its kernel's one segment at `paddr`, `memsz` bytes in memory of which the ELF's second
 * page (file offset 4096) is the file part, entered at `entry`.
 */
static inline struct fixture *kernel_fixture_create(uint64_t paddr, uint64_t memsz, uint64_t entry)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(guest_memory_init(&f->mem, 64 * MIB, X86_MMIO_HOLE_START), 0);
	memset(f->elf, 0xcc, sizeof(f->elf));
	f->img.elf = f->elf;
	f->img.elf_size = sizeof(f->elf);
	f->img.nr_segments = 1;
	f->img.segments[0] = (struct kernel_segment){ .paddr = paddr, .filesz = 4096, .memsz = memsz, .offset = 4096 };
	f->img.load_start = paddr;
	f->img.load_end = paddr + memsz;
	f->img.entry = entry;
	return f;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;

	guest_memory_destroy(&f->mem);
	free(f);
	return 0;
}

#endif
