// SPDX-License-Identifier: MIT
#include "arch/x86/boot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/acpi.h"
#include "arch/x86/bootparam.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "lib/log.h"

#define PAGE_SIZE 4096ull
#define PDE_2M_COUNT 512
#define PT_PRESENT (1ull << 0)
#define PT_WRITE (1ull << 1)
#define PT_USER (1ull << 2)
#define PT_PS (1ull << 7)
#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define BOOT_TSS 0x20
/* Protocol version kiln speaks when it builds the setup header itself (for a bare ELF vmlinux). */
#define KILN_BOOT_PROTOCOL 0x020f
#define DEFAULT_CMDLINE_SIZE 2048
/* boot.rst: initrd_addr_max default for kernels that do not say. */
#define DEFAULT_INITRD_ADDR_MAX 0x37ffffffu

#define X86_CR0_PE (1ull << 0)
#define X86_CR0_MP (1ull << 1)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_PAE (1ull << 5)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MISC_ENABLE_FAST_STRING 1ull
#define MTRR_ENABLE (1ull << 11)
#define MTRR_TYPE_WRBACK 6ull

#define fail(err, err_size, ret, ...) (errmsg_set((err), (err_size), __VA_ARGS__), (ret))

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) | (limit & 0xffffu);
}

/* Identity map of 0-4 GiB with 2 MiB pages, user-accessible so test guests can run CPL3 code on it. */
static int write_page_tables(const struct guest_memory *mem)
{
	uint64_t *pml4 = guest_memory_hva(mem, X86_PML4_GPA, PAGE_SIZE);
	uint64_t *pdpt = guest_memory_hva(mem, X86_PDPT_GPA, PAGE_SIZE);
	uint64_t *pd = guest_memory_hva(mem, X86_PD_GPA, 4 * PAGE_SIZE);
	const uint64_t flags = PT_PRESENT | PT_WRITE | PT_USER;
	unsigned int i;

	if (!pml4 || !pdpt || !pd)
		return -ENOSPC;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = X86_PDPT_GPA | flags;
	for (i = 0; i < 4; i++)
		pdpt[i] = (X86_PD_GPA + i * PAGE_SIZE) | flags;
	for (i = 0; i < 4 * PDE_2M_COUNT; i++)
		pd[i] = ((uint64_t)i << 21) | flags | PT_PS;
	return 0;
}

static int write_gdt(const struct guest_memory *mem)
{
	const uint64_t gdt[] = {
		0,
		0,
		gdt_entry(0xa09b, 0, 0xfffff), /* 0x10: 64-bit code, DPL0 */
		gdt_entry(0xc093, 0, 0xfffff), /* 0x18: data, DPL0 */
		gdt_entry(0x808b, 0, 0x67),    /* 0x20: busy 64-bit TSS (KVM needs a usable TR) */
		0,
	};

	return guest_memory_write(mem, X86_BOOT_GDT_GPA, gdt, sizeof(gdt));
}

static int load_segments(const struct guest_memory *mem, const struct kernel_image *img)
{
	unsigned int i;

	for (i = 0; i < img->nr_segments; i++) {
		const struct kernel_segment *s = &img->segments[i];
		uint8_t *dst = guest_memory_hva(mem, s->paddr, s->memsz);

		if (!dst)
			return -ENOSPC;
		memcpy(dst, img->elf + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}

static void fill_setup_header(struct boot_params *bp, const struct kernel_image *img)
{
	struct setup_header *hdr = &bp->hdr;

	if (img->from_bzimage) {
		*hdr = img->hdr;
	} else {
		memset(hdr, 0, sizeof(*hdr));
		hdr->boot_flag = SETUP_BOOT_FLAG;
		hdr->header = SETUP_HDRS_MAGIC;
		hdr->version = KILN_BOOT_PROTOCOL;
		hdr->kernel_alignment = 0x1000000;
		hdr->initrd_addr_max = 0x7fffffff;
		hdr->cmdline_size = X86_CMDLINE_MAX - 1;
		hdr->xloadflags = XLF_KERNEL_64;
	}
	hdr->type_of_loader = LOADER_TYPE_UNDEFINED;
	hdr->loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	hdr->heap_end_ptr = 0xfe00;
	hdr->code32_start = (uint32_t)img->load_start;
}

/* Highest page-aligned address for the initrd: below initrd_addr_max, RAM's end below 4 GiB, and 4 GiB. */
static int place_initrd(const struct guest_memory *mem, const struct boot_params *bp, const struct kernel_image *img,
			size_t len, uint64_t *gpa)
{
	uint64_t max = bp->hdr.version >= 0x0203 && bp->hdr.initrd_addr_max ? bp->hdr.initrd_addr_max
									  : DEFAULT_INITRD_ADDR_MAX;
	uint64_t top = guest_memory_low_size(mem);
	uint64_t addr;

	if ((uint64_t)max + 1 < top)
		top = (uint64_t)max + 1;
	if (len > top)
		return -ENOSPC;
	addr = (top - len) & ~(PAGE_SIZE - 1);
	if (addr < img->load_end || addr < X86_HIGH_MEMORY_START)
		return -ENOSPC;
	*gpa = addr;
	return 0;
}

int x86_boot_load(const struct guest_memory *mem, const struct kernel_image *img, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, unsigned int nr_cpus, struct x86_boot_info *info, char *err,
		  size_t err_size)
{
	struct boot_params *bp;
	struct e820_table e820;
	size_t cmdline_len = cmdline ? strlen(cmdline) : 0;
	uint32_t cmdline_max;
	uint8_t *mp;
	int ret;

	memset(info, 0, sizeof(*info));
	if (img->load_end > guest_memory_low_size(mem) || img->load_start < X86_HIGH_MEMORY_START)
		return fail(err, err_size, -ENOSPC,
			    "kernel occupies 0x%llx-0x%llx: outside guest RAM below 4 GiB (1 MiB-0x%llx)",
			    (unsigned long long)img->load_start, (unsigned long long)img->load_end,
			    (unsigned long long)guest_memory_low_size(mem));
	bp = guest_memory_hva(mem, X86_ZERO_PAGE_GPA, sizeof(*bp));
	if (!bp)
		return fail(err, err_size, -ENOSPC, "guest RAM too small for the zero page");
	memset(bp, 0, sizeof(*bp));
	fill_setup_header(bp, img);

	ret = load_segments(mem, img);
	if (ret)
		return fail(err, err_size, ret, "kernel segments do not fit guest RAM");

	cmdline_max = bp->hdr.version >= 0x0206 && bp->hdr.cmdline_size ? bp->hdr.cmdline_size : DEFAULT_CMDLINE_SIZE - 1;
	if (cmdline_max > X86_CMDLINE_MAX - 1)
		cmdline_max = X86_CMDLINE_MAX - 1;
	if (cmdline_len > cmdline_max)
		return fail(err, err_size, -E2BIG, "kernel command line is %zu bytes; this kernel takes at most %u",
			    cmdline_len, cmdline_max);
	if (guest_memory_write(mem, X86_CMDLINE_GPA, cmdline ? cmdline : "", cmdline_len + 1))
		return fail(err, err_size, -ENOSPC, "guest RAM too small for the command line");
	bp->hdr.cmd_line_ptr = (uint32_t)X86_CMDLINE_GPA;
	info->cmdline_gpa = X86_CMDLINE_GPA;

	if (initrd && initrd_len) {
		uint64_t gpa;

		if (place_initrd(mem, bp, img, initrd_len, &gpa))
			return fail(err, err_size, -ENOSPC, "initrd of %zu bytes does not fit guest RAM above the kernel",
				    initrd_len);
		if (guest_memory_write(mem, gpa, initrd, initrd_len))
			return fail(err, err_size, -ENOSPC, "initrd does not fit guest RAM");
		bp->hdr.ramdisk_image = (uint32_t)gpa;
		bp->hdr.ramdisk_size = (uint32_t)initrd_len;
		bp->ext_ramdisk_image = (uint32_t)(gpa >> 32);
		bp->ext_ramdisk_size = (uint32_t)((uint64_t)initrd_len >> 32);
		info->initrd_gpa = gpa;
		info->initrd_size = initrd_len;
	}

	ret = e820_build(&e820, guest_memory_low_size(mem), guest_memory_high_size(mem));
	if (ret)
		return fail(err, err_size, ret, "cannot build the e820 map");
	memcpy(bp->e820_table, e820.entries, e820.nr * sizeof(e820.entries[0]));
	bp->e820_entries = (uint8_t)e820.nr;

	if (mptable_size(nr_cpus) > X86_LEGACY_HOLE_START - X86_EBDA_GPA)
		return fail(err, err_size, -E2BIG, "MP table for %u CPUs does not fit the EBDA", nr_cpus);
	mp = guest_memory_hva(mem, X86_EBDA_GPA, mptable_size(nr_cpus));
	if (!mp || !mptable_write(mp, X86_EBDA_GPA, nr_cpus))
		return fail(err, err_size, -EINVAL, "cannot write the MP table for %u CPUs", nr_cpus);
	info->mptable_gpa = X86_EBDA_GPA;

	/* ACPI tables in the BIOS area; the MP table stays for guests booted with acpi=off. */
	{
		uint8_t *tables = guest_memory_hva(mem, X86_ACPI_TABLES_GPA, X86_ACPI_TABLES_SIZE);
		uint64_t rsdp;

		if (!tables || acpi_build(tables, X86_ACPI_TABLES_SIZE, X86_ACPI_TABLES_GPA, nr_cpus, &rsdp))
			return fail(err, err_size, -EINVAL, "cannot write the ACPI tables for %u CPUs", nr_cpus);
		bp->acpi_rsdp_addr = rsdp;
	}

	if (write_page_tables(mem) || write_gdt(mem))
		return fail(err, err_size, -ENOSPC, "guest RAM too small for boot page tables");

	info->entry = img->entry;
	info->boot_params_gpa = X86_ZERO_PAGE_GPA;
	info->stack_gpa = X86_BOOT_STACK_GPA;
	return 0;
}

static void set_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type, bool code64)
{
	*seg = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type, .present = 1, .dpl = 0,
		.db = code64 ? 0 : 1, .s = 1, .l = code64 ? 1 : 0, .g = 1,
	};
}

int x86_boot_setup_vcpu(int vcpu_fd, const struct x86_boot_info *info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[11];
	} msrs = { 0 };
	static const uint32_t msr_zero[] = {
		MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_STAR, MSR_LSTAR,
		MSR_CSTAR, MSR_KERNEL_GS_BASE, MSR_SYSCALL_MASK, MSR_IA32_TSC,
	};
	unsigned int i, n = 0;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	set_segment(&sregs.cs, BOOT_CS, 0xb, true);
	set_segment(&sregs.ds, BOOT_DS, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .selector = BOOT_TSS, .type = 0xb, .present = 1 };
	sregs.gdt.base = X86_BOOT_GDT_GPA;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
	sregs.cr3 = X86_PML4_GPA;
	sregs.cr4 = X86_CR4_PAE;
	sregs.efer = X86_EFER_LME | X86_EFER_LMA;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2; /* bit 1 is reserved-one; IF clear as the protocol requires */
	regs.rip = info->entry;
	regs.rsi = info->boot_params_gpa;
	regs.rsp = regs.rbp = info->stack_gpa;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;   /* x87 reset state: all exceptions masked, extended precision */
	fpu.mxcsr = 0x1f80; /* SSE reset state: all exceptions masked */
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	for (i = 0; i < sizeof(msr_zero) / sizeof(msr_zero[0]); i++)
		msrs.entries[n++] = (struct kvm_msr_entry){ .index = msr_zero[i], .data = 0 };
	msrs.entries[n++] = (struct kvm_msr_entry){ .index = MSR_IA32_MISC_ENABLE, .data = MISC_ENABLE_FAST_STRING };
	msrs.entries[n++] = (struct kvm_msr_entry){ .index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE | MTRR_TYPE_WRBACK };
	msrs.hdr.nmsrs = n;
	/* KVM_SET_MSRS returns how many it set; a host that refuses some (PVM) still boots Linux. */
	if (ioctl(vcpu_fd, KVM_SET_MSRS, &msrs) < 0)
		return -errno;
	return 0;
}
