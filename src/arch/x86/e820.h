/* SPDX-License-Identifier: MIT */
/* The BIOS-style e820 memory map handed to Linux in boot_params (ACPI 6.4 s15 "System Address Map"). */
#ifndef KILN_ARCH_X86_E820_H
#define KILN_ARCH_X86_E820_H

#include <stdint.h>

#include "arch/x86/bootparam.h"

struct e820_table {
	unsigned int nr;
	struct boot_e820_entry entries[E820_MAX_ENTRIES_ZEROPAGE];
};

/* Append a range. Returns 0, -EINVAL for an empty/wrapping range or one below the previous end, -ENOSPC. */
int e820_add(struct e820_table *t, uint64_t addr, uint64_t size, uint32_t type) __attribute__((warn_unused_result));

/*
 * The map for a guest with `low_ram` bytes of RAM from 0 and `high_ram` bytes from 4 GiB:
 * conventional memory up to the EBDA, the EBDA and the legacy hole reserved, RAM from 1 MiB.
 * Returns 0 or -EINVAL when low_ram is below 1 MiB.
 */
int e820_build(struct e820_table *t, uint64_t low_ram, uint64_t high_ram) __attribute__((warn_unused_result));

#endif
