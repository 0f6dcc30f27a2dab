// SPDX-License-Identifier: MIT
#include "arch/x86/pvh.h"

#include <errno.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "lib/log.h"

#define PVH_CS 0x10
#define PVH_DS 0x18
#define PVH_TSS 0x20
#define X86_CR0_PE (1ull << 0)
#define X86_CR0_ET (1ull << 4)

#define fail(err, err_size, ret, ...) (errmsg_set((err), (err_size), __VA_ARGS__), (ret))

static uint64_t align8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

int pvh_start_info_build(uint8_t *buf, size_t buf_size, uint64_t buf_gpa, const struct e820_table *e820,
			 uint64_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size)
{
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC_VALUE,
		.version = HVM_START_INFO_VERSION,
		.cmdline_paddr = cmdline_gpa,
		.memmap_entries = e820->nr,
	};
	uint64_t memmap_off = align8(sizeof(si));
	uint64_t modlist_off = align8(memmap_off + (uint64_t)e820->nr * sizeof(struct hvm_memmap_table_entry));
	uint64_t end = modlist_off + (initrd_size ? sizeof(struct hvm_modlist_entry) : 0);
	unsigned int i;

	if (end > buf_size)
		return -ENOSPC;
	memset(buf, 0, end);
	si.memmap_paddr = buf_gpa + memmap_off;
	/* The e820 entries are packed 20-byte records; the PVH map pads each to 24. */
	for (i = 0; i < e820->nr; i++) {
		struct hvm_memmap_table_entry m = {
			.addr = e820->entries[i].addr, .size = e820->entries[i].size, .type = e820->entries[i].type,
		};

		memcpy(buf + memmap_off + i * sizeof(m), &m, sizeof(m));
	}
	if (initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = initrd_gpa, .size = initrd_size };

		si.nr_modules = 1;
		si.modlist_paddr = buf_gpa + modlist_off;
		memcpy(buf + modlist_off, &mod, sizeof(mod));
	}
	memcpy(buf, &si, sizeof(si));
	return (int)end;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) | (limit & 0xffffu);
}

/* Does the 32-bit entry lie inside one of the segments kiln loads ([paddr, paddr + memsz))? */
static bool entry_in_segments(const struct kernel_image *img, uint64_t entry)
{
	for (unsigned int i = 0; i < img->nr_segments; i++)
		if (entry >= img->segments[i].paddr && entry - img->segments[i].paddr < img->segments[i].memsz)
			return true;
	return false;
}

int pvh_boot_load(const struct guest_memory *mem, const struct kernel_image *img, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, unsigned int nr_cpus, struct pvh_boot_info *info, char *err,
		  size_t err_size)
{
	/* The selectors match what the entry state loads; the guest brings its own GDT before it reloads them. */
	const uint64_t gdt[] = {
		0,
		0,
		gdt_entry(0xc09b, 0, 0xfffff), /* 0x10: 32-bit code, flat, DPL0 */
		gdt_entry(0xc093, 0, 0xfffff), /* 0x18: 32-bit data, flat */
		gdt_entry(0x008b, 0, 0x67),    /* 0x20: busy 32-bit TSS */
		0,
	};
	struct e820_table e820;
	uint8_t *page;
	int ret;

	memset(info, 0, sizeof(*info));
	if (!img->has_pvh_entry)
		return fail(err, err_size, -ENOEXEC, "the kernel has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note)");
	/* Refused here, not found at run time as a vCPU executing whatever RAM holds there. */
	if (!entry_in_segments(img, img->pvh_entry))
		return fail(err, err_size, -ENOEXEC, "the PVH entry 0x%x is outside every loaded segment (0x%llx-0x%llx)",
			    img->pvh_entry, (unsigned long long)img->load_start, (unsigned long long)img->load_end);
	ret = x86_boot_load(mem, img, initrd, initrd_len, cmdline, nr_cpus, &info->x86, err, err_size);
	if (ret)
		return ret;
	ret = e820_build(&e820, guest_memory_low_size(mem), guest_memory_high_size(mem));
	if (ret)
		return fail(err, err_size, ret, "cannot build the memory map");
	page = guest_memory_hva(mem, X86_PVH_START_INFO_GPA, X86_PVH_START_INFO_SIZE);
	if (!page)
		return fail(err, err_size, -ENOSPC, "guest RAM too small for the PVH start_info");
	ret = pvh_start_info_build(page, X86_PVH_START_INFO_SIZE, X86_PVH_START_INFO_GPA, &e820, info->x86.cmdline_gpa,
				   info->x86.initrd_gpa, info->x86.initrd_size);
	if (ret < 0)
		return fail(err, err_size, ret, "the PVH memory map does not fit its page");
	if (guest_memory_write(mem, X86_BOOT_GDT_GPA, gdt, sizeof(gdt)))
		return fail(err, err_size, -ENOSPC, "guest RAM too small for the boot GDT");
	info->entry = img->pvh_entry;
	info->start_info_gpa = X86_PVH_START_INFO_GPA;
	return 0;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type, .present = 1, .dpl = 0,
		.db = 1, .s = 1, .l = 0, .g = 1,
	};
}

int pvh_setup_vcpu(int vcpu_fd, const struct pvh_boot_info *info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int ret;

	/* MSRs and FPU reset values as for the 64-bit entry; the mode is replaced below. */
	ret = x86_boot_setup_vcpu(vcpu_fd, &info->x86);
	if (ret)
		return ret;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs = flat_segment(PVH_CS, 0xb);
	sregs.ds = flat_segment(PVH_DS, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .selector = PVH_TSS, .type = 0xb, .present = 1 };
	sregs.gdt.base = X86_BOOT_GDT_GPA;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	/* ET is read-only one on every CPU since the 486; the ABI's "all other writeable bits" are clear. */
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = info->entry;
	regs.rbx = info->start_info_gpa;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}
