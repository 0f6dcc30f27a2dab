// SPDX-License-Identifier: MIT
/*
 * The Unicorn driver: everything the dedicated and direct handlers do not cover runs as exactly one
 * instruction in Unicorn over the vCPU state, with the guest pages it touches mapped zero-copy from guest
 * RAM. Instructions whose semantics depend on state Unicorn does not model for a guest kernel (descriptor
 * tables, privilege changes, MSRs, I/O, TSC, segment selectors, YMM/ZMM...) are refused before anything runs.
 *
 * How Unicorn is driven, and why:
 *  - One instruction is run with RFLAGS.TF set: QEMU then ends the translation block after that instruction
 *    and raises #DB, which our interrupt hook turns into a stop. uc_emu_start(count = 1) would do the same,
 *    but its counting hook makes every translation cost about 1 ms in Unicorn 2.0.1 (measured), against
 *    about 10 us this way. Instructions that read or write TF (pushf/popf/iret) are refused for this reason.
 *  - Unicorn runs with paging off (CR0.PG clear, still in 64-bit mode): its "physical" addresses are the
 *    guest's virtual addresses, and guest pages are mapped at their virtual address on demand, each through
 *    mem->translate + mem->gpa_to_hva, then all unmapped after the step (translations change between steps).
 *  - Translated blocks are cached by Unicorn per address, and a block cached for an address may have been
 *    translated from other bytes mapped there in an earlier step. Unmapping appears to drop them when runs
 *    are driven this way (with count > 0 it demonstrably does not), but that is Unicorn-internal behaviour,
 *    so the code range is also invalidated explicitly before every run (uc_ctl_remove_cache, ~0.2 us).
 *    The code buffer is not reclaimed by invalidation (~0.4 KiB per step) and a full buffer makes Unicorn
 *    clear 1 GiB, so the engine is recreated every X86_EMU_RECYCLE_STEPS steps (RSS stays under ~20 MiB).
 *  - Unicorn 2.0.1 raises neither #NM for CR0.TS nor #GP for reserved MXCSR bits; both are checked here.
 *    The exceptions it does raise (#DE, #GP, #SS, #AC, #MF, #XM) are queued for the guest, error code 0.
 *  - Cost: ~35-45 us per instruction, most of it QEMU rebuilding its physical memory map on each
 *    uc_mem_map_ptr/uc_mem_unmap; the dedicated and direct handlers take well under 1 us.
 */
#include "arch/x86/emulate_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define UC_STRINGIFY_(x) #x
#define UC_STRINGIFY(x) UC_STRINGIFY_(x)
/* The library's soname follows its API major version (Debian's libunicorn2: libunicorn.so.2). */
#define UNICORN_SONAME "libunicorn.so." UC_STRINGIFY(UC_API_MAJOR)

/* REP string instructions run one iteration per Unicorn run (TF semantics); bound the work per step. */
#define EMU_MAX_REP_ITERATIONS 4096
/* Unicorn steps before the engine is recreated to return its translation buffer (see the file comment). */
#define X86_EMU_RECYCLE_STEPS 20000

/*
 * At the end of every step: the pages Unicorn stored into are announced (mem->written) now that its run is
 * over, so the stores precede the marks, and everything is unmapped.
 */
static void emu_uc_unmap_all(struct x86_emu *emu)
{
	unsigned int i;

	for (i = 0; i < emu->nr_pages; i++) {
		if (emu->pages[i].written && emu->mem->written)
			emu->mem->written(emu->mem->opaque, emu->pages[i].gpa, PAGE_SIZE);
		emu->uc_lib.mem_unmap(emu->uc, emu->pages[i].gva, PAGE_SIZE);
	}
	emu->nr_pages = 0;
}

static struct emu_page *emu_uc_find_page(struct x86_emu *emu, uint64_t page)
{
	unsigned int i;

	for (i = 0; i < emu->nr_pages; i++)
		if (emu->pages[i].gva == page)
			return &emu->pages[i];
	return NULL;
}

/*
 * Map the guest page holding `va` into Unicorn at its virtual address. Returns 0, or -EFAULT with the fault
 * recorded (#PF/#GP), -ENXIO for non-RAM, -ENOSPC when the step maps too many pages.
 */
static int emu_uc_map(struct x86_emu *emu, uint64_t va, enum emu_access acc)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint64_t page = va & PAGE_MASK, gpa;
	struct emu_page *p = emu_uc_find_page(emu, page);
	bool writeable = false;
	void *hva;

	if (!emu_is_canonical(va)) {
		emu->gp_fault = true;
		return -EFAULT;
	}
	if (p) {
		if (acc == ACC_WRITE && !p->writeable) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = emu_pf_error_code(cpu, acc, true);
			return -EFAULT;
		}
		return 0;
	}
	if (emu->nr_pages == EMU_MAX_PAGES)
		return -ENOSPC;
	if (emu->mem->translate(emu->mem->opaque, page, &gpa, &writeable) < 0) {
		emu->fault = true;
		emu->fault_addr = va;
		emu->fault_code = emu_pf_error_code(cpu, acc, false);
		return -EFAULT;
	}
	if (!emu_write_protect_applies(cpu))
		writeable = true;
	if (acc == ACC_WRITE && !writeable) {
		emu->fault = true;
		emu->fault_addr = va;
		emu->fault_code = emu_pf_error_code(cpu, acc, true);
		return -EFAULT;
	}
	hva = emu->mem->gpa_to_hva(emu->mem->opaque, gpa & PAGE_MASK, PAGE_SIZE);
	if (!hva)
		return -ENXIO;
	if (emu->uc_lib.mem_map_ptr(emu->uc, page, PAGE_SIZE, UC_PROT_READ | UC_PROT_EXEC | (writeable ? UC_PROT_WRITE : 0),
			   hva) != UC_ERR_OK)
		return -ENOMEM;
	emu->pages[emu->nr_pages].gva = page;
	emu->pages[emu->nr_pages].gpa = gpa & PAGE_MASK;
	emu->pages[emu->nr_pages].writeable = writeable;
	emu->pages[emu->nr_pages].written = false;
	emu->nr_pages++;
	return 0;
}

/* Map every page of [va, va + len). */
static int emu_uc_map_range(struct x86_emu *emu, uint64_t va, uint64_t len, enum emu_access acc)
{
	uint64_t end = va + (len ? len : 1) - 1;
	uint64_t page;
	int ret;

	ret = emu_uc_map(emu, va, acc);
	for (page = (va & PAGE_MASK) + PAGE_SIZE; ret == 0 && page <= (end & PAGE_MASK) && page > va; page += PAGE_SIZE)
		ret = emu_uc_map(emu, page, acc);
	return ret;
}

static void emu_uc_record_failure(struct x86_emu *emu, int ret)
{
	if (ret == -ENXIO || ret == -ENOSPC || ret == -ENOMEM)
		emu->unsupported = true;
}

/* UC_HOOK_MEM_UNMAPPED: map the page on first touch; returning false stops the run. */
static bool emu_uc_hook_unmapped(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value,
				 void *opaque)
{
	struct x86_emu *emu = opaque;
	enum emu_access acc = ACC_READ;
	int ret;

	(void)uc;
	(void)value;
	if (type == UC_MEM_WRITE_UNMAPPED)
		acc = ACC_WRITE;
	else if (type == UC_MEM_FETCH_UNMAPPED)
		acc = ACC_FETCH;
	ret = emu_uc_map_range(emu, address, size > 0 ? (uint64_t)size : 1, acc);
	emu_uc_record_failure(emu, ret);
	return ret == 0;
}

/*
 * UC_HOOK_MEM_WRITE, before each store Unicorn makes: note the page(s) as written, for emu_uc_unmap_all to
 * announce after the run (announcing here would precede the store). A store to a page not mapped yet cannot
 * reach this hook: UC_HOOK_MEM_UNMAPPED maps it first.
 */
static void emu_uc_hook_write(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value,
			      void *opaque)
{
	struct x86_emu *emu = opaque;
	uint64_t last = address + (size > 0 ? (uint64_t)size - 1 : 0);
	struct emu_page *p;

	(void)uc;
	(void)type;
	(void)value;
	if ((p = emu_uc_find_page(emu, address & PAGE_MASK)))
		p->written = true;
	if ((last & PAGE_MASK) != (address & PAGE_MASK) && (p = emu_uc_find_page(emu, last & PAGE_MASK)))
		p->written = true;
}

/* UC_HOOK_MEM_WRITE_PROT: a write to a page translate() reported read-only. */
static bool emu_uc_hook_prot(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value,
			     void *opaque)
{
	struct x86_emu *emu = opaque;

	(void)uc;
	(void)size;
	(void)value;
	emu->fault = true;
	emu->fault_addr = address;
	emu->fault_code = emu_pf_error_code(emu->cpu, type == UC_MEM_FETCH_PROT ? ACC_FETCH :
					     type == UC_MEM_WRITE_PROT ? ACC_WRITE : ACC_READ, true);
	return false;
}

/* UC_HOOK_INTR: #DB from our RFLAGS.TF ends the instruction; any other vector is an exception it raised. */
static void emu_uc_hook_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
	struct x86_emu *emu = opaque;

	emu->intr = (int)intno;
	emu->uc_lib.emu_stop(uc);
}

/* Resolve one symbol into `*slot`; false when the library lacks it. */
static bool uc_lib_sym(void *handle, const char *name, void *slot)
{
	void *f = dlsym(handle, name);

	memcpy(slot, &f, sizeof(f)); /* object to function pointer: POSIX dlsym's documented use */
	return f != NULL;
}

int emu_uc_lib_load(struct x86_emu *emu)
{
	struct uc_lib *l = &emu->uc_lib;

	if (l->handle)
		return 0;
	l->handle = dlopen(UNICORN_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!l->handle) {
		emu->error = "cannot load " UNICORN_SONAME " (Debian package libunicorn2)";
		return -ENOENT;
	}
	if (!uc_lib_sym(l->handle, "uc_open", &l->open) || !uc_lib_sym(l->handle, "uc_close", &l->close) ||
	    !uc_lib_sym(l->handle, "uc_hook_add", &l->hook_add) ||
	    !uc_lib_sym(l->handle, "uc_mem_map_ptr", &l->mem_map_ptr) ||
	    !uc_lib_sym(l->handle, "uc_mem_unmap", &l->mem_unmap) ||
	    !uc_lib_sym(l->handle, "uc_reg_read", &l->reg_read) || !uc_lib_sym(l->handle, "uc_reg_write", &l->reg_write) ||
	    !uc_lib_sym(l->handle, "uc_reg_read_batch", &l->reg_read_batch) ||
	    !uc_lib_sym(l->handle, "uc_reg_write_batch", &l->reg_write_batch) ||
	    !uc_lib_sym(l->handle, "uc_emu_start", &l->emu_start) || !uc_lib_sym(l->handle, "uc_emu_stop", &l->emu_stop) ||
	    !uc_lib_sym(l->handle, "uc_ctl", &l->ctl)) {
		dlclose(l->handle);
		memset(l, 0, sizeof(*l));
		emu->error = UNICORN_SONAME " lacks a function kiln needs";
		return -ENOENT;
	}
	return 0;
}

int x86_emu_preload(char *err, size_t err_size)
{
	void *h = dlopen(UNICORN_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);

	if (!h) {
		snprintf(err, err_size, "cannot load %s: %s", UNICORN_SONAME, dlerror());
		return -ENOENT;
	}
	/* Drops this call's reference only: RTLD_NODELETE keeps it mapped, and emu_uc_lib_load's dlopen
	 * then finds it among the loaded objects by name without a lookup on the file system. */
	dlclose(h);
	return 0;
}

void emu_uc_lib_release(struct x86_emu *emu)
{
	if (emu->uc)
		emu->uc_lib.close(emu->uc);
	emu->uc = NULL;
	if (emu->uc_lib.handle)
		dlclose(emu->uc_lib.handle);
	memset(&emu->uc_lib, 0, sizeof(emu->uc_lib));
}

int emu_uc_open(struct x86_emu *emu)
{
	uc_hook hook;
	int ret = emu_uc_lib_load(emu);

	if (ret)
		return ret;
	if (emu->uc_lib.open(UC_ARCH_X86, UC_MODE_64, &emu->uc) != UC_ERR_OK) {
		emu->uc = NULL;
		return -ENOMEM;
	}
	if (emu->uc_lib.hook_add(emu->uc, &hook, UC_HOOK_MEM_UNMAPPED, (void *)emu_uc_hook_unmapped, emu, 1, 0) != UC_ERR_OK ||
	    emu->uc_lib.hook_add(emu->uc, &hook, UC_HOOK_MEM_PROT, (void *)emu_uc_hook_prot, emu, 1, 0) != UC_ERR_OK ||
	    emu->uc_lib.hook_add(emu->uc, &hook, UC_HOOK_MEM_WRITE, (void *)emu_uc_hook_write, emu, 1, 0) != UC_ERR_OK ||
	    emu->uc_lib.hook_add(emu->uc, &hook, UC_HOOK_INTR, (void *)emu_uc_hook_intr, emu, 1, 0) != UC_ERR_OK) {
		emu->uc_lib.close(emu->uc);
		emu->uc = NULL;
		return -ENOMEM;
	}
	emu->uc_steps = 0;
	return 0;
}

/* Registers exchanged with Unicorn on every run, in kvm_regs order, then RIP and RFLAGS. */
static const int uc_gpr_ids[] = {
	UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI, UC_X86_REG_RDI,
	UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
	UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15, UC_X86_REG_RIP, UC_X86_REG_RFLAGS,
};
#define UC_NR_GPRS (sizeof(uc_gpr_ids) / sizeof(uc_gpr_ids[0]))

static uint64_t *kvm_regs_slot(struct kvm_regs *r, unsigned int i)
{
	/* struct kvm_regs is rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8-r15, rip, rflags: all __u64. */
	return (uint64_t *)r + i;
}

/*
 * The x87 registers exchanged with Unicorn, in this order: FSW first, since its TOP field decides which
 * physical registers ST0-ST7 name when they are written.
 */
static const int uc_x87_ids[] = {
	UC_X86_REG_FPSW, UC_X86_REG_FPCW, UC_X86_REG_FPTAG, UC_X86_REG_ST0, UC_X86_REG_ST1,
	UC_X86_REG_ST2,  UC_X86_REG_ST3,  UC_X86_REG_ST4,   UC_X86_REG_ST5, UC_X86_REG_ST6,
	UC_X86_REG_ST7,  UC_X86_REG_FOP,  UC_X86_REG_FIP,   UC_X86_REG_FDP,
};
#define UC_NR_X87 (sizeof(uc_x87_ids) / sizeof(uc_x87_ids[0]))

/* Where each of uc_x87_ids is read from or written to, for reg_read_batch/reg_write_batch. */
static void uc_x87_ptrs(void **ptrs, uint16_t *fsw, uint16_t *fcw, uint16_t *tag, uint8_t (*fpr)[16], uint16_t *fop,
			uint64_t *fip, uint64_t *fdp)
{
	unsigned int i;

	ptrs[0] = fsw;
	ptrs[1] = fcw;
	ptrs[2] = tag;
	for (i = 0; i < 8; i++)
		ptrs[3 + i] = fpr[i];
	ptrs[11] = fop;
	ptrs[12] = fip;
	ptrs[13] = fdp;
}

/* Full x87 tag word from the abridged one (FXSAVE format); only empty (11b) vs not matters to Unicorn. */
static uint16_t x87_full_tag(uint8_t ftwx)
{
	uint16_t tag = 0;
	unsigned int i;

	for (i = 0; i < 8; i++)
		if (!(ftwx & (1u << i)))
			tag |= 3u << (2 * i);
	return tag;
}

static uint8_t x87_abridged_tag(uint16_t tag)
{
	uint8_t ftwx = 0;
	unsigned int i;

	for (i = 0; i < 8; i++)
		if (((tag >> (2 * i)) & 3) != 3)
			ftwx |= 1u << i;
	return ftwx;
}

/* Copy the vCPU state into Unicorn. CR0.PG stays clear: Unicorn's addresses are guest virtual ones. */
static int emu_uc_load(struct x86_emu *emu, const struct x86_emu_cpu *cpu, bool x87)
{
	uc_engine *uc = emu->uc;
	uint64_t cr0 = (cpu->sregs.cr0 & (CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE)) | CR0_PE;
	uint64_t cr4 = cpu->sregs.cr4 & (CR4_OSFXSR | CR4_OSXMMEXCPT);
	uint64_t vals[UC_NR_GPRS];
	void *ptrs[UC_NR_GPRS];
	uint32_t mxcsr = cpu->fpu.mxcsr;
	unsigned int i;
	uc_err err = UC_ERR_OK;

	for (i = 0; i < UC_NR_GPRS; i++) {
		vals[i] = *kvm_regs_slot((struct kvm_regs *)&cpu->regs, i);
		ptrs[i] = &vals[i];
	}
	vals[UC_NR_GPRS - 1] |= RFLAGS_TF;
	err = emu->uc_lib.reg_write(uc, UC_X86_REG_CR0, &cr0);
	if (!err)
		err = emu->uc_lib.reg_write(uc, UC_X86_REG_CR4, &cr4);
	if (!err)
		err = emu->uc_lib.reg_write_batch(uc, (int *)uc_gpr_ids, ptrs, UC_NR_GPRS);
	if (!err)
		err = emu->uc_lib.reg_write(uc, UC_X86_REG_FS_BASE, &cpu->sregs.fs.base);
	if (!err)
		err = emu->uc_lib.reg_write(uc, UC_X86_REG_GS_BASE, &cpu->sregs.gs.base);
	if (!err)
		err = emu->uc_lib.reg_write(uc, UC_X86_REG_MXCSR, &mxcsr);
	for (i = 0; i < 16 && !err; i++)
		err = emu->uc_lib.reg_write(uc, UC_X86_REG_XMM0 + (int)i, cpu->fpu.xmm[i]);
	if (x87 && !err) {
		uint16_t fcw = cpu->fpu.fcw, fsw = cpu->fpu.fsw, tag = x87_full_tag(cpu->fpu.ftwx);
		uint16_t fop = cpu->fpu.last_opcode;
		uint64_t fip = cpu->fpu.last_ip, fdp = cpu->fpu.last_dp;

		void *x87_ptrs[UC_NR_X87];

		/* kvm_fpu's ftwx is by physical register, like Unicorn's tag word. */
		/* The cast drops const only: reg_write_batch reads through the pointers. */
		uc_x87_ptrs(x87_ptrs, &fsw, &fcw, &tag, (uint8_t (*)[16])cpu->fpu.fpr, &fop, &fip, &fdp);
		err = emu->uc_lib.reg_write_batch(uc, (int *)uc_x87_ids, x87_ptrs, UC_NR_X87);
	}
	return err == UC_ERR_OK ? 0 : -EIO;
}

/* Read Unicorn's state into `out` (a copy of the vCPU state). */
static int emu_uc_save(struct x86_emu *emu, struct x86_emu_cpu *out, bool x87)
{
	uc_engine *uc = emu->uc;
	uint64_t vals[UC_NR_GPRS];
	void *ptrs[UC_NR_GPRS];
	uint64_t fs_base, gs_base;
	unsigned int i;
	uc_err err;

	for (i = 0; i < UC_NR_GPRS; i++)
		ptrs[i] = &vals[i];
	err = emu->uc_lib.reg_read_batch(uc, (int *)uc_gpr_ids, ptrs, UC_NR_GPRS);
	if (!err)
		err = emu->uc_lib.reg_read(uc, UC_X86_REG_FS_BASE, &fs_base);
	if (!err)
		err = emu->uc_lib.reg_read(uc, UC_X86_REG_GS_BASE, &gs_base);
	if (!err)
		err = emu->uc_lib.reg_read(uc, UC_X86_REG_MXCSR, &out->fpu.mxcsr);
	for (i = 0; i < 16 && !err; i++)
		err = emu->uc_lib.reg_read(uc, UC_X86_REG_XMM0 + (int)i, out->fpu.xmm[i]);
	if (x87 && !err) {
		uint16_t tag = 0, fop = 0;
		uint64_t fip = 0, fdp = 0;

		void *x87_ptrs[UC_NR_X87];

		uc_x87_ptrs(x87_ptrs, &out->fpu.fsw, &out->fpu.fcw, &tag, out->fpu.fpr, &fop, &fip, &fdp);
		err = emu->uc_lib.reg_read_batch(uc, (int *)uc_x87_ids, x87_ptrs, UC_NR_X87);
		out->fpu.ftwx = x87_abridged_tag(tag);
		out->fpu.last_opcode = fop;
		out->fpu.last_ip = fip;
		out->fpu.last_dp = fdp;
	}
	if (err)
		return -EIO;
	for (i = 0; i < UC_NR_GPRS; i++)
		*kvm_regs_slot(&out->regs, i) = vals[i];
	/* TF was ours; RF is cleared once an instruction completes (SDM vol. 3 s18.3.1.1). */
	out->regs.rflags &= ~(RFLAGS_TF | RFLAGS_RF);
	out->sregs.fs.base = fs_base;
	out->sregs.gs.base = gs_base;
	return 0;
}

/* Does the instruction touch x87/MMX state (which costs extra register copies)? */
static bool insn_uses_x87(const struct emu_insn *ei)
{
	unsigned int i;

	if (ei->in.meta.isa_ext == ZYDIS_ISA_EXT_X87 || ei->in.meta.isa_ext == ZYDIS_ISA_EXT_MMX ||
	    (ei->in.attributes & (ZYDIS_ATTRIB_FPU_STATE_CR | ZYDIS_ATTRIB_FPU_STATE_CW)))
		return true;
	for (i = 0; i < ei->in.operand_count; i++) {
		const ZydisDecodedOperand *op = &ei->ops[i];
		ZydisRegisterClass c;

		if (op->type != ZYDIS_OPERAND_TYPE_REGISTER)
			continue;
		c = ZydisRegisterGetClass(op->reg.value);
		if (c == ZYDIS_REGCLASS_X87 || c == ZYDIS_REGCLASS_MMX || op->reg.value == ZYDIS_REGISTER_X87CONTROL ||
		    op->reg.value == ZYDIS_REGISTER_X87STATUS || op->reg.value == ZYDIS_REGISTER_X87TAG)
			return true;
	}
	return false;
}

static bool insn_uses_mmx(const struct emu_insn *ei)
{
	unsigned int i;

	if (ei->in.meta.isa_ext == ZYDIS_ISA_EXT_MMX)
		return true;
	for (i = 0; i < ei->in.operand_count; i++)
		if (ei->ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    ZydisRegisterGetClass(ei->ops[i].reg.value) == ZYDIS_REGCLASS_MMX)
			return true;
	return false;
}

static bool insn_uses_sse(const struct emu_insn *ei)
{
	unsigned int i;

	for (i = 0; i < ei->in.operand_count; i++) {
		const ZydisDecodedOperand *op = &ei->ops[i];

		if (op->type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    (ZydisRegisterGetClass(op->reg.value) == ZYDIS_REGCLASS_XMM || op->reg.value == ZYDIS_REGISTER_MXCSR))
			return true;
	}
	return false;
}

/*
 * Instructions Unicorn must not run for a guest kernel: their result depends on state it does not hold
 * (descriptor tables, segment selectors, MSRs, TSC, XCR0, I/O, control/debug registers), they change
 * privilege or control flow across privilege levels, they read or write RFLAGS.TF (used here for
 * single-stepping), or they must be atomic against other vCPUs. Returns the reason, NULL if allowed.
 */
static const char *insn_refusal(const struct emu_insn *ei)
{
	const ZydisDecodedInstruction *in = &ei->in;
	unsigned int i;

	if (in->encoding == ZYDIS_INSTRUCTION_ENCODING_VEX) {
		/* BMI1/BMI2 are VEX-encoded GPR instructions; everything else VEX touches YMM state. */
		if (in->meta.category != ZYDIS_CATEGORY_BMI1 && in->meta.category != ZYDIS_CATEGORY_BMI2)
			return "AVX (VEX) instructions are not modelled";
	} else if (in->encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY) {
		return "EVEX/XOP/3DNow! instructions are not modelled";
	}
	if (in->attributes & ZYDIS_ATTRIB_IS_PRIVILEGED)
		return "privileged instruction";
	if (in->meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
		return "far control transfer";
	if (in->attributes & ZYDIS_ATTRIB_HAS_LOCK)
		return "LOCK-prefixed instruction (atomicity against other vCPUs)";
	/* ENDBR32/64 are NOPs unless CET is enabled, and kiln's guests run without CET. */
	if (in->mnemonic == ZYDIS_MNEMONIC_ENDBR32 || in->mnemonic == ZYDIS_MNEMONIC_ENDBR64)
		return NULL;
	switch (in->meta.category) {
	case ZYDIS_CATEGORY_SYSTEM:
	case ZYDIS_CATEGORY_SYSCALL:
	case ZYDIS_CATEGORY_SYSRET:
	case ZYDIS_CATEGORY_INTERRUPT:
	case ZYDIS_CATEGORY_IO:
	case ZYDIS_CATEGORY_IOSTRINGOP:
	case ZYDIS_CATEGORY_VTX:
	case ZYDIS_CATEGORY_SEGOP:
	case ZYDIS_CATEGORY_XSAVE:
	case ZYDIS_CATEGORY_XSAVEOPT:
	case ZYDIS_CATEGORY_RDWRFSGS:
	case ZYDIS_CATEGORY_RDRAND:
	case ZYDIS_CATEGORY_RDSEED:
	case ZYDIS_CATEGORY_RDPID:
	case ZYDIS_CATEGORY_RDPRU:
	case ZYDIS_CATEGORY_PKU:
	case ZYDIS_CATEGORY_SGX:
	case ZYDIS_CATEGORY_PT:
	case ZYDIS_CATEGORY_UINTR:
	case ZYDIS_CATEGORY_CET:
	case ZYDIS_CATEGORY_WAITPKG:
	case ZYDIS_CATEGORY_KEYLOCKER:
	case ZYDIS_CATEGORY_KEYLOCKER_WIDE:
	case ZYDIS_CATEGORY_ENQCMD:
	case ZYDIS_CATEGORY_MPX:
	case ZYDIS_CATEGORY_PCONFIG:
	case ZYDIS_CATEGORY_TSX_LDTRK:
	case ZYDIS_CATEGORY_HRESET:
	case ZYDIS_CATEGORY_SERIALIZE:
	case ZYDIS_CATEGORY_AMD3DNOW:
		return "system or unmodelled-state instruction";
	default:
		break;
	}
	switch (in->mnemonic) {
	case ZYDIS_MNEMONIC_IRET:
	case ZYDIS_MNEMONIC_IRETD:
	case ZYDIS_MNEMONIC_IRETQ:
		return "iret";
	case ZYDIS_MNEMONIC_PUSHF:
	case ZYDIS_MNEMONIC_PUSHFD:
	case ZYDIS_MNEMONIC_PUSHFQ:
	case ZYDIS_MNEMONIC_POPF:
	case ZYDIS_MNEMONIC_POPFD:
	case ZYDIS_MNEMONIC_POPFQ:
		return "pushf/popf (RFLAGS.TF is the emulator's)";
	case ZYDIS_MNEMONIC_CLI:
	case ZYDIS_MNEMONIC_STI:
		return "cli/sti (interrupt shadow not modelled)";
	case ZYDIS_MNEMONIC_CPUID:
	case ZYDIS_MNEMONIC_UD0:
	case ZYDIS_MNEMONIC_UD1:
	case ZYDIS_MNEMONIC_UD2:
		return "cpuid/ud";
	case ZYDIS_MNEMONIC_XCHG:
		/* XCHG with memory is implicitly locked. */
		for (i = 0; i < in->operand_count_visible; i++)
			if (ei->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
				return "xchg with memory (atomicity against other vCPUs)";
		break;
	default:
		break;
	}
	for (i = 0; i < in->operand_count; i++) {
		const ZydisDecodedOperand *op = &ei->ops[i];

		if (op->type != ZYDIS_OPERAND_TYPE_REGISTER)
			continue;
		switch (ZydisRegisterGetClass(op->reg.value)) {
		case ZYDIS_REGCLASS_SEGMENT:
		case ZYDIS_REGCLASS_TABLE:
		case ZYDIS_REGCLASS_TEST:
		case ZYDIS_REGCLASS_CONTROL:
		case ZYDIS_REGCLASS_DEBUG:
		case ZYDIS_REGCLASS_MASK:
		case ZYDIS_REGCLASS_BOUND:
		case ZYDIS_REGCLASS_YMM:
		case ZYDIS_REGCLASS_ZMM:
		case ZYDIS_REGCLASS_TMM:
			return "operand in unmodelled register state";
		default:
			break;
		}
		switch (op->reg.value) {
		case ZYDIS_REGISTER_XCR0:
		case ZYDIS_REGISTER_PKRU:
		case ZYDIS_REGISTER_UIF:
			return "operand in unmodelled register state";
		default:
			break;
		}
	}
	return NULL;
}

/*
 * Map the pages of the memory operands before running, so a fault is raised before the instruction has
 * done anything (Unicorn would otherwise have done the accesses that precede the faulting one). Only
 * accesses whose address is certain: explicit operands (not of prefetch/nop, which never fault) and the
 * stack slot of push/pop/call/ret. String instructions (REP with RCX = 0 accesses nothing), BT* with a
 * register bit offset (the byte accessed is elsewhere) and POP to memory (addressed after the RSP update)
 * are mapped on demand by the hook, as are all hidden operands but the stack slot.
 */
static int emu_uc_premap_operands(struct x86_emu *emu, const struct emu_insn *ei)
{
	ZydisInstructionCategory cat = ei->in.meta.category;
	ZydisMnemonic m = ei->in.mnemonic;
	unsigned int i;
	int ret;

	if (cat == ZYDIS_CATEGORY_PREFETCH || cat == ZYDIS_CATEGORY_NOP || cat == ZYDIS_CATEGORY_WIDENOP ||
	    cat == ZYDIS_CATEGORY_STRINGOP)
		return 0;
	if ((m == ZYDIS_MNEMONIC_BT || m == ZYDIS_MNEMONIC_BTS || m == ZYDIS_MNEMONIC_BTR || m == ZYDIS_MNEMONIC_BTC) &&
	    ei->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER)
		return 0;
	for (i = 0; i < ei->in.operand_count; i++) {
		const ZydisDecodedOperand *op = &ei->ops[i];
		enum emu_access acc = (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) ? ACC_WRITE : ACC_READ;
		bool stack = op->mem.base == ZYDIS_REGISTER_RSP || op->mem.base == ZYDIS_REGISTER_ESP;
		uint64_t gva, len = op->size / 8;

		if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM || !len ||
		    !op->actions || len > PAGE_SIZE)
			continue;
		if (op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN ? !stack : cat == ZYDIS_CATEGORY_POP)
			continue;
		if (emu_operand_address(emu->cpu, ei, op, &gva) < 0)
			continue;
		/* Zydis describes a push's slot as [rsp]: the write goes below it. */
		if (op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN && (cat == ZYDIS_CATEGORY_PUSH || cat == ZYDIS_CATEGORY_CALL))
			gva -= len;
		ret = emu_uc_map_range(emu, gva, len, acc);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Exceptions Unicorn raises with the architectural meaning for these instructions; error code 0 if any. */
static bool uc_vector_injectable(int vector, bool *has_error_code)
{
	switch (vector) {
	case VEC_DE:
	case VEC_NM:
	case VEC_MF:
	case VEC_XM:
		*has_error_code = false;
		return true;
	case VEC_SS:
	case VEC_GP:
	case VEC_AC:
		*has_error_code = true;
		return true;
	default:
		return false;
	}
}

/* One Unicorn run from the state in `cur`; updates `cur` on success. Returns 0, 1 for an exception, <0. */
static int emu_uc_run_once(struct x86_emu *emu, struct x86_emu_cpu *cur, const struct emu_insn *ei, bool x87,
			   struct x86_emu_cpu *out)
{
	uint64_t start = cur->regs.rip;
	struct x86_emu_cpu tmp;
	uc_err err;

	if (emu_uc_load(emu, cur, x87) < 0)
		return -EIO;
	emu->intr = -1;
	err = emu->uc_lib.emu_start(emu->uc, start, start + ei->in.length, 0, 0);
	if (err != UC_ERR_OK)
		return -EFAULT;
	if (emu->intr >= 0 && emu->intr != VEC_DB)
		return 1;
	tmp = *cur;
	if (emu_uc_save(emu, &tmp, x87) < 0)
		return -EIO;
	/* Stopped neither by our #DB nor at the next instruction: something unexpected ran. */
	if (emu->intr != VEC_DB && tmp.regs.rip != start + ei->in.length)
		return -EIO;
	*out = tmp;
	return 0;
}

enum x86_emu_result emu_unicorn(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	struct x86_emu_cpu done, next;
	uint64_t rip = cpu->regs.rip;
	bool x87 = insn_uses_x87(ei);
	bool rep = ei->in.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE);
	const char *why;
	unsigned int iter;
	int ret;

	why = insn_refusal(ei);
	if (why)
		return emu_unsupported(emu, why);
	/*
	 * #UD/#NM that Unicorn 2.0.1 does not raise (it ignores CR0.TS): SSE needs CR4.OSFXSR and !CR0.EM,
	 * MMX !CR0.EM (#UD), both !CR0.TS (#NM); x87 raises #NM for CR0.EM or CR0.TS (SDM vol. 3 s2.5, s13.2).
	 */
	if (insn_uses_sse(ei)) {
		if (emu_sse_unusable(cpu))
			return X86_EMU_OK;
	} else if (insn_uses_mmx(ei)) {
		if (cpu->sregs.cr0 & (CR0_EM | CR0_TS)) {
			emu_queue_exception(cpu, (cpu->sregs.cr0 & CR0_EM) ? VEC_UD : VEC_NM, false, 0);
			return X86_EMU_OK;
		}
	} else if (x87 && (cpu->sregs.cr0 & (CR0_EM | CR0_TS))) {
		emu_queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	/* LDMXCSR: Unicorn loads reserved bits instead of raising #GP(0). */
	if (ei->in.mnemonic == ZYDIS_MNEMONIC_LDMXCSR) {
		const ZydisDecodedOperand *op = emu_mem_operand(ei);
		uint64_t val;

		if (!op)
			return emu_unsupported(emu, "ldmxcsr: unexpected operand");
		ret = emu_read_source(emu, ei, op, &val);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		if (val & ~(uint64_t)MXCSR_MASK) {
			emu_queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
	}

	if (!emu->uc || emu->uc_steps >= X86_EMU_RECYCLE_STEPS) {
		if (emu->uc)
			emu->uc_lib.close(emu->uc);
		emu->uc = NULL;
		if (emu_uc_open(emu) < 0)
			return emu_unsupported(emu, emu->uc_lib.handle ? "cannot create the Unicorn engine" : emu->error);
	}
	emu->uc_steps++;
	emu->nr_pages = 0;

	ret = emu_uc_map_range(emu, rip, ei->in.length, ACC_FETCH);
	if (ret == 0)
		ret = emu_uc_premap_operands(emu, ei);
	if (ret == 0) {
		/* Blocks cached for this address may come from other bytes mapped there in an earlier step. */
		emu->uc_lib.ctl(emu->uc, UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2), rip, rip + ei->in.length);
	}
	if (ret < 0)
		goto failed;

	next = *cpu;
	for (iter = 0;; iter++) {
		ret = emu_uc_run_once(emu, &next, ei, x87, &done);
		if (ret != 0)
			break;
		next = done;
		/* A REP string instruction stops after each iteration with rip unchanged: run the next one. */
		if (!rep || done.regs.rip != rip || iter + 1 >= EMU_MAX_REP_ITERATIONS ||
		    emu->nr_pages + 4 > EMU_MAX_PAGES)
			break;
	}
	if (ret != 0 && iter > 0) {
		/* Later iterations failed: commit the completed ones; re-execution raises the fault precisely. */
		emu->fault = false;
		emu->gp_fault = false;
		emu->unsupported = false;
		ret = 0;
	}
	if (ret == 1) {
		bool has_error_code;

		if (!uc_vector_injectable(emu->intr, &has_error_code)) {
			emu_uc_unmap_all(emu);
			return emu_unsupported(emu, "Unicorn raised an unexpected exception");
		}
		emu_uc_unmap_all(emu);
		emu_queue_exception(cpu, (uint8_t)emu->intr, has_error_code, 0);
		return X86_EMU_OK;
	}
	if (ret < 0)
		goto failed;
	emu_uc_unmap_all(emu);

	if (memcmp(&done.regs, &cpu->regs, sizeof(cpu->regs)) != 0) {
		cpu->regs = done.regs;
		cpu->regs_dirty = true;
	}
	if (done.sregs.fs.base != cpu->sregs.fs.base || done.sregs.gs.base != cpu->sregs.gs.base) {
		cpu->sregs.fs.base = done.sregs.fs.base;
		cpu->sregs.gs.base = done.sregs.gs.base;
		cpu->sregs_dirty = true;
	}
	if (memcmp(&done.fpu, &cpu->fpu, sizeof(cpu->fpu)) != 0) {
		cpu->fpu = done.fpu;
		cpu->fpu_dirty = true;
	}
	return X86_EMU_OK;

failed:
	emu_uc_unmap_all(emu);
	if (emu->fault || emu->gp_fault)
		return emu_span_failed(emu, -EFAULT);
	if (ret == -ENXIO || emu->unsupported)
		return emu_unsupported(emu, "operand is not guest RAM (MMIO) or touches too many pages");
	return emu_unsupported(emu, "Unicorn cannot execute the instruction");
}
