// SPDX-License-Identifier: MIT
#include "arch/x86/e820.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"

int e820_add(struct e820_table *t, uint64_t addr, uint64_t size, uint32_t type)
{
	const struct boot_e820_entry *last;

	if (size == 0 || addr + size < addr)
		return -EINVAL;
	if (t->nr) {
		last = &t->entries[t->nr - 1];
		if (addr < last->addr + last->size)
			return -EINVAL;
	}
	if (t->nr == E820_MAX_ENTRIES_ZEROPAGE)
		return -ENOSPC;
	t->entries[t->nr++] = (struct boot_e820_entry){ .addr = addr, .size = size, .type = type };
	return 0;
}

int e820_build(struct e820_table *t, uint64_t low_ram, uint64_t high_ram)
{
	int ret;

	memset(t, 0, sizeof(*t));
	if (low_ram <= X86_HIGH_MEMORY_START)
		return -EINVAL;
	ret = e820_add(t, 0, X86_EBDA_GPA, E820_TYPE_RAM);
	/* The EBDA (MP table) and the VGA/option-ROM/BIOS area up to 1 MiB are not RAM to the OS. */
	ret = ret ?: e820_add(t, X86_EBDA_GPA, X86_HIGH_MEMORY_START - X86_EBDA_GPA, E820_TYPE_RESERVED);
	ret = ret ?: e820_add(t, X86_HIGH_MEMORY_START, low_ram - X86_HIGH_MEMORY_START, E820_TYPE_RAM);
	if (high_ram)
		ret = ret ?: e820_add(t, 1ull << 32, high_ram, E820_TYPE_RAM);
	return ret;
}
