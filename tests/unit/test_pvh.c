// SPDX-License-Identifier: MIT
/* PVH boot (Xen's docs/misc/pvh.pandoc; start_info.h version 1): start_info, memory map, module list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"

#include "kernel_fixture.h"

static int setup(void **state)
{
	struct fixture *f = kernel_fixture_create(2 * MIB, MIB, 2 * MIB);

	f->img.has_pvh_entry = true;
	f->img.pvh_entry = 2 * MIB + 0x1e68;
	*state = f;
	return 0;
}

static void test_start_info_layout(void **state)
{
	(void)state;
	/* Offsets from Xen's public/arch-x86/hvm/start_info.h, which guests hard-code. */
	assert_int_equal(offsetof(struct hvm_start_info, magic), 0);
	assert_int_equal(offsetof(struct hvm_start_info, nr_modules), 12);
	assert_int_equal(offsetof(struct hvm_start_info, modlist_paddr), 16);
	assert_int_equal(offsetof(struct hvm_start_info, cmdline_paddr), 24);
	assert_int_equal(offsetof(struct hvm_start_info, rsdp_paddr), 32);
	assert_int_equal(offsetof(struct hvm_start_info, memmap_paddr), 40);
	assert_int_equal(offsetof(struct hvm_start_info, memmap_entries), 48);
	assert_int_equal(offsetof(struct hvm_memmap_table_entry, type), 16);
	assert_int_equal(offsetof(struct hvm_modlist_entry, cmdline_paddr), 16);
}

static void test_build_without_initrd(void **state)
{
	struct e820_table e820;
	struct hvm_start_info si;
	struct hvm_memmap_table_entry m;
	uint8_t buf[4096];
	int used;

	(void)state;
	assert_int_equal(e820_build(&e820, 64 * MIB, 0), 0);
	memset(buf, 0xaa, sizeof(buf));
	used = pvh_start_info_build(buf, sizeof(buf), 0x6000, &e820, 0x20000, 0, 0);
	assert_true(used > (int)sizeof(si));
	memcpy(&si, buf, sizeof(si));
	assert_int_equal(si.magic, 0x336ec578);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.flags, 0);
	assert_int_equal(si.nr_modules, 0);
	assert_int_equal(si.modlist_paddr, 0);
	assert_int_equal(si.cmdline_paddr, 0x20000);
	assert_int_equal(si.rsdp_paddr, 0);
	assert_int_equal(si.memmap_entries, e820.nr);
	/* The map follows start_info in the same buffer, 8-byte aligned, as guest-physical addresses. */
	assert_int_equal(si.memmap_paddr, 0x6000 + 56);
	assert_int_equal(used, 56 + e820.nr * 24);
	for (unsigned int i = 0; i < e820.nr; i++) {
		memcpy(&m, buf + 56 + i * 24, sizeof(m));
		assert_int_equal(m.addr, e820.entries[i].addr);
		assert_int_equal(m.size, e820.entries[i].size);
		assert_int_equal(m.type, e820.entries[i].type);
		assert_int_equal(m.reserved, 0);
	}
	/* Bytes past what was used are untouched. */
	assert_int_equal(buf[used], 0xaa);
}

static void test_build_with_initrd(void **state)
{
	struct e820_table e820;
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	uint8_t buf[4096];
	int used;

	(void)state;
	assert_int_equal(e820_build(&e820, 64 * MIB, 0), 0);
	used = pvh_start_info_build(buf, sizeof(buf), 0x6000, &e820, 0x20000, 0x3000000, 12345);
	memcpy(&si, buf, sizeof(si));
	assert_int_equal(si.nr_modules, 1);
	assert_int_equal(si.modlist_paddr, 0x6000 + 56 + e820.nr * 24);
	memcpy(&mod, buf + (si.modlist_paddr - 0x6000), sizeof(mod));
	assert_int_equal(mod.paddr, 0x3000000);
	assert_int_equal(mod.size, 12345);
	assert_int_equal(mod.cmdline_paddr, 0);
	assert_int_equal(used, (int)(si.modlist_paddr - 0x6000 + 32));
}

static void test_build_too_small(void **state)
{
	struct e820_table e820;
	uint8_t buf[64];

	(void)state;
	assert_int_equal(e820_build(&e820, 64 * MIB, 0), 0);
	assert_int_equal(pvh_start_info_build(buf, sizeof(buf), 0x6000, &e820, 0, 0, 0), -ENOSPC);
}

static void test_boot_load(void **state)
{
	struct fixture *f = *state;
	struct pvh_boot_info info;
	const struct hvm_start_info *si;
	const struct hvm_memmap_table_entry *map;
	const struct hvm_modlist_entry *mod;
	const uint64_t *gdt;
	uint8_t initrd[5000];
	uint64_t ram = 0;
	char err[128];

	memset(initrd, 0x5a, sizeof(initrd));
	assert_int_equal(pvh_boot_load(&f->mem, &f->img, initrd, sizeof(initrd), "pio=10 idle", 1, &info, err,
				       sizeof(err)), 0);
	assert_int_equal(info.entry, 2 * MIB + 0x1e68);
	assert_int_equal(info.start_info_gpa, X86_PVH_START_INFO_GPA);
	si = guest_memory_hva(&f->mem, X86_PVH_START_INFO_GPA, sizeof(*si));
	assert_non_null(si);
	assert_int_equal(si->magic, HVM_START_MAGIC_VALUE);
	assert_string_equal((const char *)guest_memory_hva(&f->mem, si->cmdline_paddr, 12), "pio=10 idle");
	/* The memory map covers the guest's 64 MiB of RAM, as the 64-bit entry's e820 does. */
	map = guest_memory_hva(&f->mem, si->memmap_paddr, si->memmap_entries * sizeof(*map));
	assert_non_null(map);
	for (unsigned int i = 0; i < si->memmap_entries; i++)
		if (map[i].type == HVM_MEMMAP_TYPE_RAM)
			ram += map[i].size;
	assert_int_equal(ram, 64 * MIB - (0x100000 - 0x9fc00));
	/* The initrd is module 0, its bytes in place, above the kernel. */
	assert_int_equal(si->nr_modules, 1);
	mod = guest_memory_hva(&f->mem, si->modlist_paddr, sizeof(*mod));
	assert_non_null(mod);
	assert_int_equal(mod->size, sizeof(initrd));
	assert_true(mod->paddr >= f->img.load_end);
	assert_memory_equal(guest_memory_hva(&f->mem, mod->paddr, sizeof(initrd)), initrd, sizeof(initrd));
	/* The boot GDT's code segment is 32-bit (D set, L clear), as the entry state's CS. */
	gdt = guest_memory_hva(&f->mem, X86_BOOT_GDT_GPA, 6 * 8);
	assert_non_null(gdt);
	assert_true(gdt[2] & (1ull << 54));
	assert_false(gdt[2] & (1ull << 53));
	/* Kernel bytes loaded. */
	assert_int_equal(*(uint8_t *)guest_memory_hva(&f->mem, 2 * MIB, 1), 0xcc);
}

static void test_boot_load_without_note(void **state)
{
	struct fixture *f = *state;
	struct pvh_boot_info info;
	char err[128];

	f->img.has_pvh_entry = false;
	assert_int_equal(pvh_boot_load(&f->mem, &f->img, NULL, 0, "", 1, &info, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "PVH"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_info_layout),
		cmocka_unit_test(test_build_without_initrd),
		cmocka_unit_test(test_build_with_initrd),
		cmocka_unit_test(test_build_too_small),
		cmocka_unit_test_setup_teardown(test_boot_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_load_without_note, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
