/* SPDX-License-Identifier: MIT */
/*
 * PVH boot (Xen's "x86/HVM direct boot ABI", docs/misc/pvh.pandoc; start_info layout from Xen's
 * public/arch-x86/hvm/start_info.h, version 1): a kernel whose ELF carries a XEN_ELFNOTE_PHYS32_ENTRY
 * note is entered at that 32-bit physical address in flat 32-bit protected mode with paging off, EBX
 * holding the physical address of a struct hvm_start_info (command line, modules, memory map, RSDP).
 * This is the entry QEMU's `-kernel` uses for ELF kernels, so one guest image boots on both VMMs.
 * kiln's default remains Linux's 64-bit entry (boot.h); PVH is chosen with "kiln": {"boot": "pvh"}.
 */
#ifndef KILN_ARCH_X86_PVH_H
#define KILN_ARCH_X86_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "arch/x86/e820.h"
#include "arch/x86/kernel_image.h"
#include "vmm/memory.h"

#define HVM_START_MAGIC_VALUE 0x336ec578u /* "xEn3" with the 0x80 bit of the "E" set */
#define HVM_START_INFO_VERSION 1          /* version 1 adds the memory map */
/* hvm_memmap_table_entry.type: the e820/ACPI address range types. */
#define HVM_MEMMAP_TYPE_RAM 1
#define HVM_MEMMAP_TYPE_RESERVED 2

/* The page kiln writes start_info, the memory map and the module list into (free below the zero page). */
#define X86_PVH_START_INFO_GPA 0x6000ull
#define X86_PVH_START_INFO_SIZE 0x1000ull

struct hvm_start_info {
	uint32_t magic;          /* HVM_START_MAGIC_VALUE */
	uint32_t version;        /* HVM_START_INFO_VERSION */
	uint32_t flags;          /* SIF_xxx: none for kiln */
	uint32_t nr_modules;
	uint64_t modlist_paddr;  /* struct hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr;  /* NUL-terminated; 0 = none */
	uint64_t rsdp_paddr;     /* ACPI RSDP; 0 = none (kiln has no ACPI tables yet) */
	uint64_t memmap_paddr;   /* struct hvm_memmap_table_entry[memmap_entries] (version >= 1) */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes (version 1)");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr at 40");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry is 24 bytes");

struct pvh_boot_info {
	uint32_t entry;          /* the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) */
	uint64_t start_info_gpa; /* EBX at entry */
	struct x86_boot_info x86; /* command line, initrd and MP table as placed for the 64-bit protocol */
};

/*
 * Build start_info, the memory map (`e820`) and, when `initrd_size` is non-zero, a one-entry module
 * list into `buf` (`buf_size` bytes), which the guest will see at `buf_gpa`. `cmdline_gpa` 0 means no
 * command line. Returns the bytes used, or -ENOSPC when they do not fit `buf`.
 */
int pvh_start_info_build(uint8_t *buf, size_t buf_size, uint64_t buf_gpa, const struct e820_table *e820,
			 uint64_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size)
	__attribute__((warn_unused_result));

/*
 * Load a kernel for PVH entry: everything x86_boot_load() places (segments, command line, initrd, MP
 * table; its zero page is left unused), plus start_info at X86_PVH_START_INFO_GPA and a flat 32-bit GDT.
 * Returns 0 or -errno with a reason in `err`: -ENOEXEC when the image has no PVH note, and
 * x86_boot_load()'s errors.
 */
int pvh_boot_load(const struct guest_memory *mem, const struct kernel_image *img, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, unsigned int nr_cpus, struct pvh_boot_info *info, char *err,
		  size_t err_size) __attribute__((warn_unused_result));

/*
 * Put the boot vCPU in the PVH entry state (pvh.pandoc "x86/HVM direct boot ABI"): CR0 = PE only, CR4 =
 * 0, EFER = 0, CS a flat 32-bit execute/read segment, DS/ES/SS flat 32-bit data, TR a busy 32-bit TSS
 * at base 0 with limit 0x67, EFLAGS with IF, TF and VM clear, EIP = entry, EBX = start_info. MSRs and
 * FPU as x86_boot_setup_vcpu() leaves them. Returns 0 or -errno.
 */
int pvh_setup_vcpu(int vcpu_fd, const struct pvh_boot_info *info) __attribute__((warn_unused_result));

#endif
