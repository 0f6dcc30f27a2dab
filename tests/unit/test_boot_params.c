// SPDX-License-Identifier: MIT
/* The zero page, command line, initrd placement and page tables x86_boot_load() writes (boot protocol 2.15). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvm.h"

#include "kernel_fixture.h"

static int setup(void **state)
{
	*state = kernel_fixture_create(16 * MIB, 3 * MIB, 16 * MIB + 0x40);
	return 0;
}

static struct boot_params *zero_page(struct fixture *f)
{
	return guest_memory_hva(&f->mem, X86_ZERO_PAGE_GPA, sizeof(struct boot_params));
}

static void test_elf_boot(void **state)
{
	struct fixture *f = *state;
	uint8_t initrd[10000];
	struct x86_boot_info info;
	struct boot_params *bp;
	char err[128];
	const uint8_t *k;
	uint64_t *pml4, *pd;

	memset(initrd, 0x5a, sizeof(initrd));
	assert_int_equal(x86_boot_load(&f->mem, &f->img, initrd, sizeof(initrd), "console=ttyS0 quiet", 2, &info, err,
				       sizeof(err)), 0);
	assert_int_equal(info.entry, 16 * MIB + 0x40);
	assert_int_equal(info.boot_params_gpa, X86_ZERO_PAGE_GPA);
	bp = zero_page(f);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, SETUP_HDRS_MAGIC);
	assert_true(bp->hdr.version >= 0x0206);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_true(bp->hdr.loadflags & LOADED_HIGH);
	/* Command line. */
	assert_int_equal(bp->hdr.cmd_line_ptr, X86_CMDLINE_GPA);
	assert_string_equal((char *)guest_memory_hva(&f->mem, X86_CMDLINE_GPA, 20), "console=ttyS0 quiet");
	/* Kernel segment: file bytes then zeroes (bss). */
	k = guest_memory_hva(&f->mem, 16 * MIB, 3 * MIB);
	assert_int_equal(k[0], 0xcc);
	assert_int_equal(k[4095], 0xcc);
	assert_int_equal(k[4096], 0);
	assert_int_equal(k[3 * MIB - 1], 0);
	/* initrd: page-aligned, at the top of RAM, above the kernel, contents intact. */
	assert_int_equal(bp->hdr.ramdisk_size, sizeof(initrd));
	assert_int_equal(bp->hdr.ramdisk_image % 4096, 0);
	assert_true(bp->hdr.ramdisk_image >= 19 * MIB);
	assert_true(bp->hdr.ramdisk_image + sizeof(initrd) <= 64 * MIB);
	assert_true(64 * MIB - (bp->hdr.ramdisk_image + sizeof(initrd)) < 4096);
	assert_memory_equal(guest_memory_hva(&f->mem, bp->hdr.ramdisk_image, sizeof(initrd)), initrd, sizeof(initrd));
	/* e820 in the zero page. */
	assert_int_equal(bp->e820_entries, 3);
	assert_int_equal(bp->e820_table[2].addr + bp->e820_table[2].size, 64 * MIB);
	/* MP table in the EBDA. */
	assert_memory_equal(guest_memory_hva(&f->mem, X86_EBDA_GPA, 4), "_MP_", 4);
	/* Identity map: PML4[0] -> PDPT, PD entry n maps n * 2 MiB. */
	pml4 = guest_memory_hva(&f->mem, X86_PML4_GPA, 4096);
	pd = guest_memory_hva(&f->mem, X86_PD_GPA, 4 * 4096);
	assert_int_equal(pml4[0] & ~0xfffull, X86_PDPT_GPA);
	assert_true(pml4[0] & 1);
	assert_int_equal(pd[8] & ~0xfffull, 16 * MIB);
	assert_true(pd[8] & (1u << 7));
	assert_int_equal(pd[2047] & ~0xfffull, (2047ull << 21));
}

static void test_bzimage_header_kept(void **state)
{
	struct fixture *f = *state;
	struct x86_boot_info info;
	char err[128];

	f->img.from_bzimage = true;
	f->img.hdr.boot_flag = 0xaa55;
	f->img.hdr.header = SETUP_HDRS_MAGIC;
	f->img.hdr.version = 0x020f;
	f->img.hdr.cmdline_size = 255;
	f->img.hdr.initrd_addr_max = 32 * MIB - 1;
	f->img.hdr.kernel_alignment = 0x200000;
	assert_int_equal(x86_boot_load(&f->mem, &f->img, (const uint8_t *)"x", 1, "a b c", 1, &info, err, sizeof(err)), 0);
	assert_int_equal(zero_page(f)->hdr.kernel_alignment, 0x200000);
	assert_int_equal(zero_page(f)->hdr.type_of_loader, 0xff);
	/* initrd_addr_max is the highest address of the initrd's last byte. */
	assert_true(info.initrd_gpa + 1 <= 32 * MIB);
	assert_true(info.initrd_gpa >= 32 * MIB - 4096);
}

static void test_cmdline_too_long(void **state)
{
	struct fixture *f = *state;
	struct x86_boot_info info;
	char err[128], cmdline[300];

	f->img.from_bzimage = true;
	f->img.hdr.version = 0x020f;
	f->img.hdr.cmdline_size = 255;
	memset(cmdline, 'a', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = 0;
	assert_int_equal(x86_boot_load(&f->mem, &f->img, NULL, 0, cmdline, 1, &info, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "at most 255"));
}

static void test_initrd_too_big(void **state)
{
	struct fixture *f = *state;
	struct x86_boot_info info;
	char err[128];
	size_t len = 46 * MIB; /* 64 MiB of RAM, kernel to 19 MiB */
	uint8_t *initrd = calloc(1, len);

	assert_int_equal(x86_boot_load(&f->mem, &f->img, initrd, len, "", 1, &info, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "initrd"));
	free(initrd);
}

static void test_kernel_outside_ram(void **state)
{
	struct fixture *f = *state;
	struct x86_boot_info info;
	char err[128];

	f->img.segments[0].paddr = 63 * MIB;
	f->img.load_start = 63 * MIB;
	f->img.load_end = 66 * MIB;
	assert_int_equal(x86_boot_load(&f->mem, &f->img, NULL, 0, "", 1, &info, err, sizeof(err)), -ENOSPC);
	f->img.segments[0].paddr = 0x1000;
	f->img.load_start = 0x1000;
	f->img.load_end = 0x2000;
	assert_int_equal(x86_boot_load(&f->mem, &f->img, NULL, 0, "", 1, &info, err, sizeof(err)), -ENOSPC);
}

static void test_memory_split_around_hole(void **state)
{
	struct guest_memory mem;

	(void)state;
	assert_int_equal(guest_memory_init(&mem, 4096 * MIB, X86_MMIO_HOLE_START), 0);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(guest_memory_low_size(&mem), X86_MMIO_HOLE_START);
	assert_int_equal(guest_memory_high_size(&mem), 1024 * MIB);
	assert_non_null(guest_memory_hva(&mem, (1ull << 32) + 5, 10));
	assert_null(guest_memory_hva(&mem, X86_MMIO_HOLE_START, 1));
	assert_null(guest_memory_hva(&mem, X86_MMIO_HOLE_START - 4, 8)); /* straddles the end */
	assert_null(guest_memory_hva(&mem, UINT64_MAX - 2, 8));
	assert_null(guest_memory_hva(&mem, 0, UINT64_MAX));
	guest_memory_destroy(&mem);
}

static void test_pvm_cmdline(void **state)
{
	char *s;

	(void)state;
	s = pvm_cmdline_append("console=ttyS0 noxsave", "clearcpuid=popcnt noxsave mitigations=off");
	assert_string_equal(s, "console=ttyS0 noxsave clearcpuid=popcnt mitigations=off");
	free(s);
	/* A user's own clearcpuid= wins. */
	s = pvm_cmdline_append("clearcpuid=avx", "clearcpuid=popcnt quiet");
	assert_string_equal(s, "clearcpuid=avx quiet");
	free(s);
	/* initcall_blacklist= accumulates in Linux: kiln's is added beside the user's. */
	s = pvm_cmdline_append("initcall_blacklist=foo", "initcall_blacklist=bar quiet");
	assert_string_equal(s, "initcall_blacklist=foo initcall_blacklist=bar quiet");
	free(s);
	s = pvm_cmdline_append(NULL, "a=1  b");
	assert_string_equal(s, "a=1 b");
	free(s);
	assert_true(strlen(pvm_linux_cmdline()) < 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_elf_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_header_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmdline_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initrd_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_outside_ram, setup, teardown),
		cmocka_unit_test(test_memory_split_around_hole),
		cmocka_unit_test(test_pvm_cmdline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
