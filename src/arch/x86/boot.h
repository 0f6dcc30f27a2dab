/* SPDX-License-Identifier: MIT */
/*
 * Booting an x86-64 kernel the way Linux's 64-bit boot protocol describes (Documentation/arch/x86/boot.rst
 * protocol 2.15, "64-bit Boot Protocol"): the kernel's ELF segments at their physical addresses, a zero
 * page (struct boot_params) with the setup header, command line, initrd and e820 map, identity-mapped
 * page tables and a flat GDT built by kiln, and the boot CPU entered in long mode at the 64-bit entry with
 * RSI pointing at boot_params. Test guests are plain ELF files booted the same way.
 */
#ifndef KILN_ARCH_X86_BOOT_H
#define KILN_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/kernel_image.h"
#include "vmm/memory.h"

struct x86_boot_info {
	uint64_t entry;           /* guest physical 64-bit entry point */
	uint64_t boot_params_gpa; /* RSI at entry */
	uint64_t stack_gpa;       /* RSP at entry */
	uint64_t initrd_gpa;      /* 0 when there is no initrd */
	uint64_t initrd_size;
	uint64_t cmdline_gpa;
	uint64_t mptable_gpa;
};

/*
 * Write everything the boot CPU needs into guest RAM: kernel segments, boot_params, command line
 * (`cmdline`, NUL-terminated, at most the kernel's cmdline_size), initrd (`initrd`, `initrd_len` bytes,
 * placed page-aligned as high as initrd_addr_max and RAM allow, above the kernel), e820 map, MP table
 * for `nr_cpus`, page tables and GDT. Returns 0 or -errno with a reason in `err`:
 * -ENOSPC when the kernel or initrd do not fit guest RAM, -E2BIG for an overlong command line.
 */
int x86_boot_load(const struct guest_memory *mem, const struct kernel_image *img, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, unsigned int nr_cpus, struct x86_boot_info *info, char *err,
		  size_t err_size) __attribute__((warn_unused_result));

/*
 * Put the boot vCPU (fd `vcpu_fd`) in the protocol's 64-bit entry state: long mode, paging with kiln's
 * identity map, CS = 0x10 (64-bit code), DS/ES/SS = 0x18, interrupts off, RIP = entry, RSI = boot_params;
 * plus the MSR and FPU reset values firmware would leave. Returns 0 or -errno.
 */
int x86_boot_setup_vcpu(int vcpu_fd, const struct x86_boot_info *info) __attribute__((warn_unused_result));

#endif
