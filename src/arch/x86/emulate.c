// SPDX-License-Identifier: MIT
/*
 * x86 instruction emulation for what the host's KVM refuses (see emulate.h).
 *
 * Three tiers, chosen after decoding with Zydis:
 *  1. dedicated handlers for instructions with trivial or vCPU-event semantics: int3, clac/stac, fwait;
 *  2. direct implementations for instructions Unicorn 2.0.1 cannot execute (its TCG CPU model lacks
 *     POPCNT, MOVBE, PCLMULQDQ, CLFLUSHOPT/CLWB and the whole XSAVE family, whatever model is chosen) or
 *     cannot execute correctly for a multi-vCPU guest (CMPXCHG8B/16B must be atomic against the other vCPUs,
 *     which run natively: done with a host LOCK CMPXCHG16B on guest RAM), plus FXSAVE/FXRSTOR, which share
 *     the XSAVE legacy-region code;
 *  3. everything else runs as exactly one instruction in Unicorn over the vCPU state, with the guest pages
 *     it touches mapped zero-copy from guest RAM. Instructions whose semantics depend on state Unicorn does
 *     not model for a guest kernel (descriptor tables, privilege changes, MSRs, I/O, TSC, segment selectors,
 *     YMM/ZMM...) are refused before anything runs.
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
 *
 * Not modelled (refused, or documented where an instruction is executed anyway): YMM/ZMM/AVX state, XSAVE
 * components other than x87 and SSE, MMIO operands, segment selectors and descriptor loads, debug
 * registers and RFLAGS.TF single-stepping of the guest, SMAP/U/S checks (translate() reports only present and
 * writeable), alignment checks Unicorn does not make (misaligned MOVAPS/MOVDQA do not raise #GP), atomicity
 * of LOCK-prefixed instructions other than CMPXCHG8B/16B (those are refused), 16/32-bit code (only the
 * dedicated handlers work there).
 */
#include "arch/x86/emulate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <Zydis/Zydis.h>
#include <unicorn/unicorn.h>

#define PAGE_SIZE 4096ull
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define RFLAGS_CF (1ull << 0)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_VM (1ull << 17)
#define RFLAGS_AC (1ull << 18)

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_EM (1ull << 2)
#define CR0_TS (1ull << 3)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_SMEP (1ull << 20)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define VEC_DE 0
#define VEC_DB 1
#define VEC_BP 3
#define VEC_UD 6
#define VEC_NM 7
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14
#define VEC_MF 16
#define VEC_AC 17
#define VEC_XM 19

/* Page-fault error code bits, Intel SDM vol. 3 s4.7. */
#define PF_P (1u << 0)
#define PF_W (1u << 1)
#define PF_U (1u << 2)
#define PF_I (1u << 4)

/* MXCSR bits this emulator accepts (DAZ included, as on every CPU with SSE2); the rest raise #GP. */
#define MXCSR_MASK 0xffffu
#define MXCSR_DEFAULT 0x1f80u

#define XFEATURE_X87 (1ull << 0)
#define XFEATURE_SSE (1ull << 1)
#define XCOMP_BV_COMPACTED (1ull << 63)

/* Pages one Unicorn step may map: code (2) plus data, with room for a few REP string iterations. */
#define EMU_MAX_PAGES 16
/* REP string instructions run one iteration per Unicorn run (TF semantics); bound the work per step. */
#define EMU_MAX_REP_ITERATIONS 4096
/* Unicorn steps before the engine is recreated to return its translation buffer (see the file comment). */
#define X86_EMU_RECYCLE_STEPS 20000

enum emu_access {
	ACC_READ,
	ACC_WRITE,
	ACC_FETCH,
};

struct emu_page {
	uint64_t gva;
	bool writeable;
};

struct x86_emu {
	ZydisDecoder dec64;
	ZydisDecoder dec32;
	ZydisDecoder dec16;
	uc_engine *uc;
	uint64_t uc_steps;
	const char *error; /* why the last step was UNSUPPORTED */

	/* Per step: the state the Unicorn hooks work on. */
	struct x86_emu_cpu *cpu;
	const struct x86_emu_mem_ops *mem;
	struct emu_page pages[EMU_MAX_PAGES];
	unsigned int nr_pages;
	bool fault;          /* a #PF is to be queued: fault_addr, fault_code */
	bool gp_fault;       /* a non-canonical access: #GP(0) */
	bool unsupported;    /* a hook met something out of scope (MMIO, too many pages) */
	uint64_t fault_addr;
	uint32_t fault_code;
	int intr;            /* vector Unicorn raised during the run, -1 if none */
};

/* One instruction as decoded. */
struct emu_insn {
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
	size_t nr_bytes;
};

/* A guest virtual range resolved to at most two host pieces (ranges never exceed one page). */
struct guest_span {
	uint8_t *hva[2];
	size_t len[2];
	unsigned int nr;
};

static enum x86_emu_result unsupported(struct x86_emu *emu, const char *why)
{
	emu->error = why;
	return X86_EMU_UNSUPPORTED;
}

/* ---- vCPU mode helpers ---- */

static unsigned int cpu_cpl(const struct x86_emu_cpu *cpu)
{
	if (!(cpu->sregs.cr0 & CR0_PE))
		return 0;
	return cpu->sregs.cs.selector & 3;
}

static bool cpu_long64(const struct x86_emu_cpu *cpu)
{
	return (cpu->sregs.efer & EFER_LMA) && cpu->sregs.cs.l;
}

/* Code size in bits: 64, 32 or 16. */
static unsigned int cpu_code_bits(const struct x86_emu_cpu *cpu)
{
	if (cpu_long64(cpu))
		return 64;
	if ((cpu->sregs.cr0 & CR0_PE) && cpu->sregs.cs.db)
		return 32;
	return 16;
}

static uint64_t cpu_code_linear(const struct x86_emu_cpu *cpu, uint64_t ip)
{
	if (cpu_long64(cpu))
		return ip;
	return (uint32_t)(cpu->sregs.cs.base + ip);
}

/* Advance rip by `len` with the wrap-around of the current code size. */
static void cpu_advance(struct x86_emu_cpu *cpu, size_t len)
{
	uint64_t rip = cpu->regs.rip + len;

	switch (cpu_code_bits(cpu)) {
	case 32:
		rip = (uint32_t)rip;
		break;
	case 16:
		rip = (uint16_t)rip;
		break;
	default:
		break;
	}
	cpu->regs.rip = rip;
	cpu->regs_dirty = true;
}

static void queue_exception(struct x86_emu_cpu *cpu, uint8_t vector, bool has_error_code, uint32_t error_code)
{
	cpu->exception_pending = true;
	cpu->exception_vector = vector;
	cpu->exception_has_error_code = has_error_code;
	cpu->exception_error_code = error_code;
}

/* Queue #PF: CR2 goes through sregs, nothing else changes (Intel SDM vol. 3 s4.7). */
static void queue_page_fault(struct x86_emu_cpu *cpu, uint64_t addr, uint32_t error_code)
{
	cpu->sregs.cr2 = addr;
	cpu->sregs_dirty = true;
	queue_exception(cpu, VEC_PF, true, error_code);
}

static uint32_t pf_error_code(const struct x86_emu_cpu *cpu, enum emu_access acc, bool present)
{
	uint32_t code = present ? PF_P : 0;

	if (acc == ACC_WRITE)
		code |= PF_W;
	if (cpu_cpl(cpu) == 3)
		code |= PF_U;
	/* I/D is reported only when instruction fetches can fault for NX or SMEP (SDM vol. 3 s4.7). */
	if (acc == ACC_FETCH && ((cpu->sregs.cr4 & CR4_SMEP) ||
				 ((cpu->sregs.cr4 & CR4_PAE) && (cpu->sregs.efer & EFER_NXE))))
		code |= PF_I;
	return code;
}

static bool is_canonical(uint64_t va)
{
	return (uint64_t)((int64_t)(va << 16) >> 16) == va;
}

/* Supervisor writes ignore read-only pages unless CR0.WP (SDM vol. 3 s4.6.1). */
static bool write_protect_applies(const struct x86_emu_cpu *cpu)
{
	return cpu_cpl(cpu) == 3 || (cpu->sregs.cr0 & CR0_WP);
}

/* ---- guest memory for the directly implemented instructions ---- */

/*
 * Resolve [gva, gva + len) (len <= 4096) for an access. Returns 0, -EFAULT with the fault recorded in emu
 * (#PF, or #GP for a non-canonical address), or -ENXIO when the range is not guest RAM.
 */
static int guest_span_get(struct x86_emu *emu, uint64_t gva, size_t len, enum emu_access acc,
			  struct guest_span *span)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	size_t done = 0;

	span->nr = 0;
	if (len == 0 || len > PAGE_SIZE)
		return -EINVAL;
	if (cpu_long64(cpu) && (!is_canonical(gva) || !is_canonical(gva + len - 1))) {
		emu->gp_fault = true;
		return -EFAULT;
	}
	while (done < len) {
		uint64_t va = gva + done;
		size_t chunk = PAGE_SIZE - (va & ~PAGE_MASK);
		uint64_t gpa;
		bool writeable = false;
		void *hva;

		if (chunk > len - done)
			chunk = len - done;
		if (emu->mem->translate(emu->mem->opaque, va & PAGE_MASK, &gpa, &writeable) < 0) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = pf_error_code(cpu, acc, false);
			return -EFAULT;
		}
		if (acc == ACC_WRITE && !writeable && write_protect_applies(cpu)) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = pf_error_code(cpu, acc, true);
			return -EFAULT;
		}
		hva = emu->mem->gpa_to_hva(emu->mem->opaque, (gpa & PAGE_MASK) + (va & ~PAGE_MASK), chunk);
		if (!hva)
			return -ENXIO;
		span->hva[span->nr] = hva;
		span->len[span->nr] = chunk;
		span->nr++;
		done += chunk;
	}
	return 0;
}

static void span_read(const struct guest_span *span, size_t off, void *buf, size_t len)
{
	uint8_t *out = buf;
	unsigned int i;

	for (i = 0; i < span->nr && len; i++) {
		size_t n;

		if (off >= span->len[i]) {
			off -= span->len[i];
			continue;
		}
		n = span->len[i] - off;
		if (n > len)
			n = len;
		memcpy(out, span->hva[i] + off, n);
		out += n;
		len -= n;
		off = 0;
	}
}

static void span_write(const struct guest_span *span, size_t off, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	unsigned int i;

	for (i = 0; i < span->nr && len; i++) {
		size_t n;

		if (off >= span->len[i]) {
			off -= span->len[i];
			continue;
		}
		n = span->len[i] - off;
		if (n > len)
			n = len;
		memcpy(span->hva[i] + off, in, n);
		in += n;
		len -= n;
		off = 0;
	}
}

/* Turn a guest_span_get() failure into the step's result. */
static enum x86_emu_result span_failed(struct x86_emu *emu, int ret)
{
	if (ret == -EFAULT) {
		if (emu->gp_fault)
			queue_exception(emu->cpu, VEC_GP, true, 0);
		else
			queue_page_fault(emu->cpu, emu->fault_addr, emu->fault_code);
		return X86_EMU_OK;
	}
	if (ret == -ENXIO)
		return unsupported(emu, "memory operand is not guest RAM (MMIO)");
	return unsupported(emu, "memory operand out of range");
}

/* ---- registers and operands ---- */

/* The kvm_regs slot of a general-purpose register of any width, NULL for others. */
static uint64_t *gpr_slot(struct kvm_regs *regs, ZydisRegister reg)
{
	switch (ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, reg)) {
	case ZYDIS_REGISTER_RAX: return (uint64_t *)&regs->rax;
	case ZYDIS_REGISTER_RBX: return (uint64_t *)&regs->rbx;
	case ZYDIS_REGISTER_RCX: return (uint64_t *)&regs->rcx;
	case ZYDIS_REGISTER_RDX: return (uint64_t *)&regs->rdx;
	case ZYDIS_REGISTER_RSI: return (uint64_t *)&regs->rsi;
	case ZYDIS_REGISTER_RDI: return (uint64_t *)&regs->rdi;
	case ZYDIS_REGISTER_RSP: return (uint64_t *)&regs->rsp;
	case ZYDIS_REGISTER_RBP: return (uint64_t *)&regs->rbp;
	case ZYDIS_REGISTER_R8: return (uint64_t *)&regs->r8;
	case ZYDIS_REGISTER_R9: return (uint64_t *)&regs->r9;
	case ZYDIS_REGISTER_R10: return (uint64_t *)&regs->r10;
	case ZYDIS_REGISTER_R11: return (uint64_t *)&regs->r11;
	case ZYDIS_REGISTER_R12: return (uint64_t *)&regs->r12;
	case ZYDIS_REGISTER_R13: return (uint64_t *)&regs->r13;
	case ZYDIS_REGISTER_R14: return (uint64_t *)&regs->r14;
	case ZYDIS_REGISTER_R15: return (uint64_t *)&regs->r15;
	default: return NULL;
	}
}

static bool gpr_is_high_byte(ZydisRegister reg)
{
	return reg == ZYDIS_REGISTER_AH || reg == ZYDIS_REGISTER_BH || reg == ZYDIS_REGISTER_CH ||
	       reg == ZYDIS_REGISTER_DH;
}

static int gpr_read(struct kvm_regs *regs, ZydisRegister reg, uint64_t *val)
{
	uint64_t *slot = gpr_slot(regs, reg);
	unsigned int width = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, reg);

	if (!slot)
		return -EINVAL;
	if (gpr_is_high_byte(reg))
		*val = (*slot >> 8) & 0xff;
	else if (width >= 64)
		*val = *slot;
	else
		*val = *slot & ((1ull << width) - 1);
	return 0;
}

/* Write with x86-64 semantics: 32-bit writes zero-extend, 8/16-bit writes merge. */
static int gpr_write(struct kvm_regs *regs, ZydisRegister reg, uint64_t val)
{
	uint64_t *slot = gpr_slot(regs, reg);
	unsigned int width = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, reg);

	if (!slot)
		return -EINVAL;
	if (gpr_is_high_byte(reg))
		*slot = (*slot & ~0xff00ull) | ((val & 0xff) << 8);
	else if (width == 64)
		*slot = val;
	else if (width == 32)
		*slot = (uint32_t)val;
	else
		*slot = (*slot & ~((1ull << width) - 1)) | (val & ((1ull << width) - 1));
	return 0;
}

/* Index 0-15 of an XMM register, -1 for others. */
static int xmm_index(ZydisRegister reg)
{
	if (reg >= ZYDIS_REGISTER_XMM0 && reg <= ZYDIS_REGISTER_XMM15)
		return reg - ZYDIS_REGISTER_XMM0;
	return -1;
}

/*
 * Linear address of a memory operand in 64-bit mode: base + index * scale + disp, truncated to the address
 * size, plus the FS/GS base (the other segment bases are 0 in 64-bit mode). -EINVAL for operand kinds
 * that are not plain memory references.
 */
static int operand_address(const struct x86_emu_cpu *cpu, const struct emu_insn *ei, const ZydisDecodedOperand *op,
			   uint64_t *gva)
{
	struct kvm_regs regs = cpu->regs;
	uint64_t ea = (uint64_t)op->mem.disp.value;
	uint64_t v;

	if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
		return -EINVAL;
	if (op->mem.base == ZYDIS_REGISTER_RIP || op->mem.base == ZYDIS_REGISTER_EIP) {
		ea += cpu->regs.rip + ei->in.length;
	} else if (op->mem.base != ZYDIS_REGISTER_NONE) {
		if (gpr_read(&regs, op->mem.base, &v) < 0)
			return -EINVAL;
		ea += v;
	}
	if (op->mem.index != ZYDIS_REGISTER_NONE) {
		if (gpr_read(&regs, op->mem.index, &v) < 0)
			return -EINVAL;
		ea += v * op->mem.scale;
	}
	if (ei->in.address_width == 32)
		ea = (uint32_t)ea;
	else if (ei->in.address_width == 16)
		ea = (uint16_t)ea;
	if (op->mem.segment == ZYDIS_REGISTER_FS)
		ea += cpu->sregs.fs.base;
	else if (op->mem.segment == ZYDIS_REGISTER_GS)
		ea += cpu->sregs.gs.base;
	*gva = ea;
	return 0;
}

/* The first explicit memory operand, NULL if none. */
static const ZydisDecodedOperand *mem_operand(const struct emu_insn *ei)
{
	unsigned int i;

	for (i = 0; i < ei->in.operand_count_visible; i++)
		if (ei->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
			return &ei->ops[i];
	return NULL;
}

/* ---- stats ---- */

static void stats_count(struct x86_emu_stats *stats, ZydisMnemonic mnemonic)
{
	const char *name = ZydisMnemonicGetString(mnemonic);
	unsigned int i;

	if (!stats)
		return;
	if (!name)
		name = "?";
	for (i = 0; i < stats->nr_kinds && i < X86_EMU_MAX_KINDS; i++) {
		if (strcmp(stats->kinds[i].mnemonic, name) == 0) {
			stats->kinds[i].count++;
			return;
		}
	}
	if (stats->nr_kinds >= X86_EMU_MAX_KINDS) {
		stats->other++;
		return;
	}
	i = stats->nr_kinds++;
	snprintf(stats->kinds[i].mnemonic, sizeof(stats->kinds[i].mnemonic), "%s", name);
	stats->kinds[i].count = 1;
}

/* ---- dedicated handlers ---- */

/* INT3: a trap, so the #BP frame holds the next instruction's address (SDM vol. 3 s6.5). */
static enum x86_emu_result emu_int3(struct x86_emu *emu, const struct emu_insn *ei)
{
	cpu_advance(emu->cpu, ei->in.length);
	queue_exception(emu->cpu, VEC_BP, false, 0);
	return X86_EMU_OK;
}

/* CLAC/STAC: RFLAGS.AC; #UD outside CPL0 (SDM vol. 2A). */
static enum x86_emu_result emu_clac_stac(struct x86_emu *emu, const struct emu_insn *ei, bool set)
{
	struct x86_emu_cpu *cpu = emu->cpu;

	if (cpu_cpl(cpu) != 0) {
		queue_exception(cpu, VEC_UD, false, 0);
		return X86_EMU_OK;
	}
	if (set)
		cpu->regs.rflags |= RFLAGS_AC;
	else
		cpu->regs.rflags &= ~RFLAGS_AC;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/*
 * FWAIT: checks for pending unmasked x87 exceptions. Those are not modelled here (x87 exceptions are
 * not delivered through this emulator, and KVM_GET_FPU's FSW is taken as having none pending), so it only
 * raises #NM when CR0.MP and CR0.TS are both set (SDM vol. 2A, WAIT/FWAIT), and otherwise advances rip.
 */
static enum x86_emu_result emu_fwait(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;

	if ((cpu->sregs.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS)) {
		queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* ---- direct implementations (64-bit mode, CPL0) ---- */

/* #UD/#NM for instructions touching SSE state (SDM vol. 3 s13.2, vol. 2 table 2-18). */
static bool sse_unusable(struct x86_emu_cpu *cpu)
{
	if ((cpu->sregs.cr0 & CR0_EM) || !(cpu->sregs.cr4 & CR4_OSFXSR)) {
		queue_exception(cpu, VEC_UD, false, 0);
		return true;
	}
	if (cpu->sregs.cr0 & CR0_TS) {
		queue_exception(cpu, VEC_NM, false, 0);
		return true;
	}
	return false;
}

static uint64_t bswap_n(uint64_t v, unsigned int bytes)
{
	switch (bytes) {
	case 2: return __builtin_bswap16((uint16_t)v);
	case 4: return __builtin_bswap32((uint32_t)v);
	default: return __builtin_bswap64(v);
	}
}

/* Read a register or memory source operand of up to 8 bytes. */
static int read_source(struct x86_emu *emu, const struct emu_insn *ei, const ZydisDecodedOperand *op, uint64_t *val)
{
	struct guest_span span;
	uint64_t gva;
	int ret;

	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER)
		return gpr_read(&emu->cpu->regs, op->reg.value, val);
	if (operand_address(emu->cpu, ei, op, &gva) < 0 || op->size > 64)
		return -EINVAL;
	ret = guest_span_get(emu, gva, op->size / 8, ACC_READ, &span);
	if (ret < 0)
		return ret;
	*val = 0;
	span_read(&span, 0, val, op->size / 8);
	return 0;
}

/* POPCNT r, r/m: count; ZF = (source == 0); OF SF AF CF PF cleared (SDM vol. 2B). */
static enum x86_emu_result emu_popcnt(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint64_t src;
	int ret;

	ret = read_source(emu, ei, &ei->ops[1], &src);
	if (ret < 0)
		return span_failed(emu, ret);
	if (gpr_write(&cpu->regs, ei->ops[0].reg.value, (uint64_t)__builtin_popcountll(src)) < 0)
		return unsupported(emu, "popcnt: unexpected operand");
	cpu->regs.rflags &= ~(RFLAGS_OF | RFLAGS_SF | RFLAGS_ZF | RFLAGS_AF | RFLAGS_CF | RFLAGS_PF);
	if (src == 0)
		cpu->regs.rflags |= RFLAGS_ZF;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* MOVBE r, m / m, r: byte-swapping load or store, flags unchanged (SDM vol. 2B). */
static enum x86_emu_result emu_movbe(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *dst = &ei->ops[0], *src = &ei->ops[1];
	unsigned int bytes = dst->size / 8;
	struct guest_span span;
	uint64_t gva, val = 0;
	int ret;

	if (bytes != 2 && bytes != 4 && bytes != 8)
		return unsupported(emu, "movbe: unexpected operand size");
	if (dst->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		ret = read_source(emu, ei, src, &val);
		if (ret < 0)
			return span_failed(emu, ret);
		if (gpr_write(&cpu->regs, dst->reg.value, bswap_n(val, bytes)) < 0)
			return unsupported(emu, "movbe: unexpected operand");
	} else {
		if (gpr_read(&cpu->regs, src->reg.value, &val) < 0 || operand_address(cpu, ei, dst, &gva) < 0)
			return unsupported(emu, "movbe: unexpected operand");
		ret = guest_span_get(emu, gva, bytes, ACC_WRITE, &span);
		if (ret < 0)
			return span_failed(emu, ret);
		val = bswap_n(val, bytes);
		span_write(&span, 0, &val, bytes);
	}
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* Carry-less 64x64 -> 128-bit multiplication. */
static void clmul64(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
	uint64_t l = 0, h = 0;
	unsigned int i;

	for (i = 0; i < 64; i++) {
		if (b & (1ull << i)) {
			l ^= a << i;
			if (i)
				h ^= a >> (64 - i);
		}
	}
	*lo = l;
	*hi = h;
}

/* PCLMULQDQ xmm1, xmm2/m128, imm8 (SDM vol. 2B): legacy SSE form, m128 must be 16-byte aligned. */
static enum x86_emu_result emu_pclmulqdq(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	int dst = xmm_index(ei->ops[0].reg.value);
	uint8_t imm = (uint8_t)ei->ops[2].imm.value.u;
	uint64_t a[2], b[2], lo, hi;

	if (dst < 0 || ei->ops[2].type != ZYDIS_OPERAND_TYPE_IMMEDIATE)
		return unsupported(emu, "pclmulqdq: unexpected operand");
	if (sse_unusable(cpu))
		return X86_EMU_OK;
	memcpy(a, cpu->fpu.xmm[dst], 16);
	if (ei->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER) {
		int src = xmm_index(ei->ops[1].reg.value);

		if (src < 0)
			return unsupported(emu, "pclmulqdq: unexpected operand");
		memcpy(b, cpu->fpu.xmm[src], 16);
	} else {
		struct guest_span span;
		uint64_t gva;
		int ret;

		if (operand_address(cpu, ei, &ei->ops[1], &gva) < 0)
			return unsupported(emu, "pclmulqdq: unexpected operand");
		if (gva & 15) {
			queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		ret = guest_span_get(emu, gva, 16, ACC_READ, &span);
		if (ret < 0)
			return span_failed(emu, ret);
		span_read(&span, 0, b, 16);
	}
	clmul64(a[imm & 1], b[(imm >> 4) & 1], &lo, &hi);
	memcpy(cpu->fpu.xmm[dst], &lo, 8);
	memcpy(cpu->fpu.xmm[dst] + 8, &hi, 8);
	cpu->fpu_dirty = true;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/*
 * CLFLUSH/CLFLUSHOPT/CLWB: the host's caches are coherent with what the guest sees, so only the
 * page-fault behaviour (the operand is checked like a read, SDM vol. 2A) is emulated. MMIO is fine.
 */
static enum x86_emu_result emu_cache_flush(struct x86_emu *emu, const struct emu_insn *ei)
{
	const ZydisDecodedOperand *op = mem_operand(ei);
	struct guest_span span;
	uint64_t gva;
	int ret;

	if (!op || operand_address(emu->cpu, ei, op, &gva) < 0)
		return unsupported(emu, "cache flush: unexpected operand");
	ret = guest_span_get(emu, gva, 1, ACC_READ, &span);
	if (ret < 0 && ret != -ENXIO)
		return span_failed(emu, ret);
	cpu_advance(emu->cpu, ei->in.length);
	return X86_EMU_OK;
}

/* LOCK CMPXCHG16B on host memory: atomic against the other vCPUs, which run natively on the same RAM. */
static bool host_cmpxchg16b(void *ptr, uint64_t *lo, uint64_t *hi, uint64_t new_lo, uint64_t new_hi)
{
	bool ok;

	__asm__ __volatile__("lock cmpxchg16b %1"
			     : "=@ccz"(ok), "+m"(*(volatile unsigned __int128 *)ptr), "+a"(*lo), "+d"(*hi)
			     : "b"(new_lo), "c"(new_hi)
			     : "memory");
	return ok;
}

static bool host_cmpxchg8(void *ptr, uint64_t *old, uint64_t new_val)
{
	bool ok;

	__asm__ __volatile__("lock cmpxchgq %3, %1"
			     : "=@ccz"(ok), "+m"(*(volatile uint64_t *)ptr), "+a"(*old)
			     : "r"(new_val)
			     : "memory");
	return ok;
}

/*
 * CMPXCHG16B m128 / CMPXCHG8B m64 (SDM vol. 2A): compare RDX:RAX (EDX:EAX) with memory, store RCX:RBX
 * (ECX:EBX) when equal, else load memory into RDX:RAX (EDX:EAX); ZF = equal; other flags unchanged.
 * The destination is always written (the old value on failure), so a read-only page faults as a write.
 */
static enum x86_emu_result emu_cmpxchg_wide(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *op = mem_operand(ei);
	struct guest_span span;
	uint64_t gva;
	bool ok;
	int ret;

	if (!op || operand_address(cpu, ei, op, &gva) < 0)
		return unsupported(emu, "cmpxchg8b/16b: unexpected operand");
	if (op->size == 128) {
		uint64_t lo = cpu->regs.rax, hi = cpu->regs.rdx;

		if (gva & 15) {
			queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		ret = guest_span_get(emu, gva, 16, ACC_WRITE, &span);
		if (ret < 0)
			return span_failed(emu, ret);
		ok = host_cmpxchg16b(span.hva[0], &lo, &hi, cpu->regs.rbx, cpu->regs.rcx);
		if (!ok) {
			cpu->regs.rax = lo;
			cpu->regs.rdx = hi;
		}
	} else if (op->size == 64) {
		uint64_t old = (uint32_t)cpu->regs.rax | ((uint64_t)(uint32_t)cpu->regs.rdx << 32);
		uint64_t new_val = (uint32_t)cpu->regs.rbx | ((uint64_t)(uint32_t)cpu->regs.rcx << 32);

		/* A misaligned LOCK on the host is a split lock (slow, possibly fatal under split-lock detection). */
		if (gva & 7)
			return unsupported(emu, "cmpxchg8b: misaligned operand");
		ret = guest_span_get(emu, gva, 8, ACC_WRITE, &span);
		if (ret < 0)
			return span_failed(emu, ret);
		ok = host_cmpxchg8(span.hva[0], &old, new_val);
		if (!ok) {
			/* 32-bit register writes: the upper halves are cleared. */
			cpu->regs.rax = (uint32_t)old;
			cpu->regs.rdx = old >> 32;
		}
	} else {
		return unsupported(emu, "cmpxchg8b/16b: unexpected operand size");
	}
	if (ok)
		cpu->regs.rflags |= RFLAGS_ZF;
	else
		cpu->regs.rflags &= ~RFLAGS_ZF;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* ---- FXSAVE/FXRSTOR and the XSAVE family: x87 and SSE components only ---- */

/*
 * Legacy region layout (FXSAVE format, SDM vol. 1 s10.5.1 / vol. 2A FXSAVE tables 3-46, 3-47): shared by
 * FXSAVE/FXRSTOR and the XSAVE family (SDM vol. 1 s13.4.1). The XSAVE header follows at 512.
 */
#define FX_FCW 0
#define FX_FSW 2
#define FX_FTW 4
#define FX_FOP 6
#define FX_FIP 8
#define FX_FCS 12
#define FX_FDP 16
#define FX_FDS 20
#define FX_MXCSR 24
#define FX_MXCSR_MASK 28
#define FX_ST0 32
#define FX_XMM0 160
#define FX_SIZE 512
#define XSAVE_XSTATE_BV 512
#define XSAVE_XCOMP_BV 520
#define XSAVE_HEADER_SIZE 64
#define XSAVE_MIN_SIZE (FX_SIZE + XSAVE_HEADER_SIZE)

/* x87 part of the legacy region; `wide` is the REX.W form (64-bit FIP/FDP, no FCS/FDS). */
static void fx_store_x87(const struct kvm_fpu *fpu, uint8_t *area, bool wide)
{
	uint16_t fop = fpu->last_opcode & 0x7ff;
	unsigned int i;

	memcpy(area + FX_FCW, &fpu->fcw, 2);
	memcpy(area + FX_FSW, &fpu->fsw, 2);
	area[FX_FTW] = fpu->ftwx;
	area[FX_FTW + 1] = 0;
	memcpy(area + FX_FOP, &fop, 2);
	if (wide) {
		memcpy(area + FX_FIP, &fpu->last_ip, 8);
		memcpy(area + FX_FDP, &fpu->last_dp, 8);
	} else {
		uint32_t ip = (uint32_t)fpu->last_ip, dp = (uint32_t)fpu->last_dp;

		/* KVM's kvm_fpu carries no FCS/FDS: they are stored as 0 (deprecated on current CPUs). */
		memcpy(area + FX_FIP, &ip, 4);
		memset(area + FX_FCS, 0, 4);
		memcpy(area + FX_FDP, &dp, 4);
		memset(area + FX_FDS, 0, 4);
	}
	for (i = 0; i < 8; i++)
		memcpy(area + FX_ST0 + 16 * i, fpu->fpr[i], 10);
}

static void fx_load_x87(struct kvm_fpu *fpu, const uint8_t *area, bool wide)
{
	unsigned int i;

	memcpy(&fpu->fcw, area + FX_FCW, 2);
	memcpy(&fpu->fsw, area + FX_FSW, 2);
	fpu->ftwx = area[FX_FTW];
	memcpy(&fpu->last_opcode, area + FX_FOP, 2);
	fpu->last_opcode &= 0x7ff;
	if (wide) {
		memcpy(&fpu->last_ip, area + FX_FIP, 8);
		memcpy(&fpu->last_dp, area + FX_FDP, 8);
	} else {
		uint32_t ip, dp;

		memcpy(&ip, area + FX_FIP, 4);
		memcpy(&dp, area + FX_FDP, 4);
		fpu->last_ip = ip;
		fpu->last_dp = dp;
	}
	for (i = 0; i < 8; i++) {
		memset(fpu->fpr[i], 0, sizeof(fpu->fpr[i]));
		memcpy(fpu->fpr[i], area + FX_ST0 + 16 * i, 10);
	}
}

/* x87 initial configuration (SDM vol. 1 s13.6): FCW 037FH, everything else 0, all registers empty. */
static void x87_init(struct kvm_fpu *fpu)
{
	memset(fpu->fpr, 0, sizeof(fpu->fpr));
	fpu->fcw = 0x37f;
	fpu->fsw = 0;
	fpu->ftwx = 0;
	fpu->last_opcode = 0;
	fpu->last_ip = 0;
	fpu->last_dp = 0;
}

static void fx_store_mxcsr(const struct kvm_fpu *fpu, uint8_t *area)
{
	uint32_t mask = MXCSR_MASK;

	memcpy(area + FX_MXCSR, &fpu->mxcsr, 4);
	memcpy(area + FX_MXCSR_MASK, &mask, 4);
}

/* FXSAVE/FXSAVE64 m512 (SDM vol. 2A): bytes 416-511 are left alone, as the CPU does. */
static enum x86_emu_result emu_fxsave(struct x86_emu *emu, const struct emu_insn *ei, uint64_t gva, bool wide)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint8_t area[FX_XMM0 + 16 * 16];
	struct guest_span span;
	int ret;

	ret = guest_span_get(emu, gva, sizeof(area), ACC_WRITE, &span);
	if (ret < 0)
		return span_failed(emu, ret);
	memset(area, 0, sizeof(area));
	fx_store_x87(&cpu->fpu, area, wide);
	fx_store_mxcsr(&cpu->fpu, area);
	memcpy(area + FX_XMM0, cpu->fpu.xmm, sizeof(cpu->fpu.xmm));
	span_write(&span, 0, area, sizeof(area));
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* FXRSTOR/FXRSTOR64 m512 (SDM vol. 2A): #GP(0) for reserved MXCSR bits, before any state changes. */
static enum x86_emu_result emu_fxrstor(struct x86_emu *emu, const struct emu_insn *ei, uint64_t gva, bool wide)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint8_t area[FX_XMM0 + 16 * 16];
	struct guest_span span;
	uint32_t mxcsr;
	int ret;

	ret = guest_span_get(emu, gva, sizeof(area), ACC_READ, &span);
	if (ret < 0)
		return span_failed(emu, ret);
	span_read(&span, 0, area, sizeof(area));
	memcpy(&mxcsr, area + FX_MXCSR, 4);
	if (mxcsr & ~MXCSR_MASK) {
		queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	fx_load_x87(&cpu->fpu, area, wide);
	cpu->fpu.mxcsr = mxcsr;
	memcpy(cpu->fpu.xmm, area + FX_XMM0, sizeof(cpu->fpu.xmm));
	cpu->fpu_dirty = true;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/*
 * XCR0 for the XSAVE family: the caller's value, or, when it does not know it (0), x87|SSE, which only
 * serves requests that ask for nothing else (checked by the caller of this function).
 */
static uint64_t effective_xcr0(const struct x86_emu_cpu *cpu)
{
	return cpu->xcr0 ? cpu->xcr0 : (XFEATURE_X87 | XFEATURE_SSE);
}

/*
 * XSAVE/XSAVEOPT (standard form) and XSAVEC/XSAVES (compacted form), SDM vol. 1 s13.7, s13.9-s13.11:
 * RFBM = XCR0 & EDX:EAX must stay within x87|SSE (the state kvm_fpu holds). XINUSE is taken as 1 for both
 * components, which the SDM allows (an in-init component may be reported in use), so XSAVEOPT writes
 * everything and XSTATE_BV gets every RFBM bit.
 */
static enum x86_emu_result emu_xsave(struct x86_emu *emu, const struct emu_insn *ei, uint64_t gva, bool wide,
				     bool compacted, uint64_t rfbm)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint8_t area[XSAVE_XCOMP_BV + 8];
	struct guest_span span;
	uint64_t xstate_bv, xcomp_bv;
	int ret;

	ret = guest_span_get(emu, gva, sizeof(area), ACC_WRITE, &span);
	if (ret < 0)
		return span_failed(emu, ret);
	span_read(&span, 0, area, sizeof(area));
	if (rfbm & XFEATURE_X87)
		fx_store_x87(&cpu->fpu, area, wide);
	if (rfbm & XFEATURE_SSE) {
		fx_store_mxcsr(&cpu->fpu, area);
		memcpy(area + FX_XMM0, cpu->fpu.xmm, sizeof(cpu->fpu.xmm));
	}
	memcpy(&xstate_bv, area + XSAVE_XSTATE_BV, 8);
	if (compacted) {
		/* XSAVEC/XSAVES write XSTATE_BV = RFBM & XINUSE and XCOMP_BV = RFBM | bit 63. */
		xstate_bv = rfbm;
		xcomp_bv = rfbm | XCOMP_BV_COMPACTED;
		memcpy(area + XSAVE_XCOMP_BV, &xcomp_bv, 8);
	} else {
		/* XSAVE/XSAVEOPT update only the RFBM bits of XSTATE_BV and nothing else in the header. */
		xstate_bv = (xstate_bv & ~rfbm) | rfbm;
	}
	memcpy(area + XSAVE_XSTATE_BV, &xstate_bv, 8);
	span_write(&span, 0, area, compacted ? sizeof(area) : XSAVE_XSTATE_BV + 8);
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	while (len--)
		if (*p++)
			return false;
	return true;
}

/*
 * XRSTOR (standard or compacted form by XCOMP_BV[63]) and XRSTORS (compacted only), SDM vol. 1 s13.8,
 * s13.12 and the XRSTOR pseudocode in vol. 2B. All checks happen before any state changes.
 */
static enum x86_emu_result emu_xrstor(struct x86_emu *emu, const struct emu_insn *ei, uint64_t gva, bool wide,
				      bool supervisor, uint64_t rfbm)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint64_t xcr0 = effective_xcr0(cpu);
	uint8_t area[XSAVE_MIN_SIZE];
	uint64_t xstate_bv, xcomp_bv, restore, init;
	bool load_mxcsr;
	struct guest_span span;
	uint32_t mxcsr = MXCSR_DEFAULT;
	int ret;

	ret = guest_span_get(emu, gva, sizeof(area), ACC_READ, &span);
	if (ret < 0)
		return span_failed(emu, ret);
	span_read(&span, 0, area, sizeof(area));
	memcpy(&xstate_bv, area + XSAVE_XSTATE_BV, 8);
	memcpy(&xcomp_bv, area + XSAVE_XCOMP_BV, 8);
	if (!(xcomp_bv & XCOMP_BV_COMPACTED)) {
		if (supervisor || !all_zero(area + XSAVE_XCOMP_BV, 16))
			goto gp;
		if (xstate_bv & ~xcr0) {
			if (!cpu->xcr0)
				return unsupported(emu, "xrstor: XSTATE_BV beyond x87/SSE and XCR0 unknown");
			goto gp;
		}
		restore = rfbm & xstate_bv;
		init = rfbm & ~xstate_bv;
		/* The standard form loads MXCSR whenever RFBM[1] or RFBM[2] is set, whatever XSTATE_BV says. */
		load_mxcsr = rfbm & XFEATURE_SSE;
		if (load_mxcsr)
			memcpy(&mxcsr, area + FX_MXCSR, 4);
	} else {
		uint64_t format = xcomp_bv & ~XCOMP_BV_COMPACTED;

		if (!all_zero(area + XSAVE_XSTATE_BV + 16, XSAVE_HEADER_SIZE - 16) || (xstate_bv & ~format))
			goto gp;
		/* XRSTORS may also name IA32_XSS components, which are not known here. */
		if (format & ~xcr0) {
			if (!cpu->xcr0 || supervisor)
				return unsupported(emu, "xrstor: XCOMP_BV beyond x87/SSE and XCR0/XSS unknown");
			goto gp;
		}
		restore = rfbm & format & xstate_bv;
		init = (rfbm & ~xstate_bv) | (rfbm & ~format);
		/* The compacted form loads MXCSR with the SSE component, or sets it to 1F80H on init. */
		load_mxcsr = rfbm & XFEATURE_SSE;
		if (restore & XFEATURE_SSE)
			memcpy(&mxcsr, area + FX_MXCSR, 4);
	}
	if (load_mxcsr && (mxcsr & ~MXCSR_MASK))
		goto gp;

	if (restore & XFEATURE_X87)
		fx_load_x87(&cpu->fpu, area, wide);
	else if (init & XFEATURE_X87)
		x87_init(&cpu->fpu);
	if (load_mxcsr)
		cpu->fpu.mxcsr = mxcsr;
	if (restore & XFEATURE_SSE)
		memcpy(cpu->fpu.xmm, area + FX_XMM0, sizeof(cpu->fpu.xmm));
	else if (init & XFEATURE_SSE)
		memset(cpu->fpu.xmm, 0, sizeof(cpu->fpu.xmm));
	cpu->fpu_dirty = true;
	cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
gp:
	queue_exception(cpu, VEC_GP, true, 0);
	return X86_EMU_OK;
}

/* Common checks of FXSAVE/FXRSTOR and the XSAVE family, then the instruction itself. */
static enum x86_emu_result emu_state_save_restore(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *op = mem_operand(ei);
	ZydisMnemonic m = ei->in.mnemonic;
	bool fx = m == ZYDIS_MNEMONIC_FXSAVE || m == ZYDIS_MNEMONIC_FXSAVE64 || m == ZYDIS_MNEMONIC_FXRSTOR ||
		  m == ZYDIS_MNEMONIC_FXRSTOR64;
	bool supervisor = m == ZYDIS_MNEMONIC_XSAVES || m == ZYDIS_MNEMONIC_XSAVES64 ||
			  m == ZYDIS_MNEMONIC_XRSTORS || m == ZYDIS_MNEMONIC_XRSTORS64;
	/* The REX.W forms (Zydis names them ...64) store 64-bit FIP/FDP instead of FCS/FDS (SDM vol. 1 s13.5.1). */
	bool wide = m == ZYDIS_MNEMONIC_FXSAVE64 || m == ZYDIS_MNEMONIC_FXRSTOR64 || m == ZYDIS_MNEMONIC_XSAVE64 ||
		    m == ZYDIS_MNEMONIC_XSAVEOPT64 || m == ZYDIS_MNEMONIC_XSAVEC64 || m == ZYDIS_MNEMONIC_XSAVES64 ||
		    m == ZYDIS_MNEMONIC_XRSTOR64 || m == ZYDIS_MNEMONIC_XRSTORS64;
	uint64_t gva, request, rfbm;

	if (!op || operand_address(cpu, ei, op, &gva) < 0)
		return unsupported(emu, "xsave/fxsave: unexpected operand");
	if (fx) {
		/* FXSAVE/FXRSTOR: #UD if CR0.EM, #NM if CR0.TS, #GP if not 16-byte aligned (SDM vol. 2A). */
		if (cpu->sregs.cr0 & CR0_EM) {
			queue_exception(cpu, VEC_UD, false, 0);
			return X86_EMU_OK;
		}
		if (cpu->sregs.cr0 & CR0_TS) {
			queue_exception(cpu, VEC_NM, false, 0);
			return X86_EMU_OK;
		}
		if (gva & 15) {
			queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		if (m == ZYDIS_MNEMONIC_FXSAVE || m == ZYDIS_MNEMONIC_FXSAVE64)
			return emu_fxsave(emu, ei, gva, wide);
		return emu_fxrstor(emu, ei, gva, wide);
	}
	/* XSAVE family: #UD if CR4.OSXSAVE = 0, #NM if CR0.TS, #GP if not 64-byte aligned (SDM vol. 2C). */
	if (!(cpu->sregs.cr4 & CR4_OSXSAVE)) {
		queue_exception(cpu, VEC_UD, false, 0);
		return X86_EMU_OK;
	}
	if (cpu->sregs.cr0 & CR0_TS) {
		queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	if (supervisor && cpu_cpl(cpu) != 0) {
		queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	if (gva & 63) {
		queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	request = (uint32_t)cpu->regs.rax | ((uint64_t)(uint32_t)cpu->regs.rdx << 32);
	/* Without XCR0 (or with IA32_XSS in play) only requests for x87/SSE alone are decidable. */
	if ((!cpu->xcr0 || supervisor) && (request & ~(XFEATURE_X87 | XFEATURE_SSE)))
		return unsupported(emu, "xsave family: request beyond x87/SSE with XCR0/XSS unknown");
	rfbm = request & effective_xcr0(cpu);
	if (rfbm & ~(XFEATURE_X87 | XFEATURE_SSE))
		return unsupported(emu, "xsave family: state components beyond x87/SSE (AVX...) are not modelled");
	switch (m) {
	case ZYDIS_MNEMONIC_XSAVE:
	case ZYDIS_MNEMONIC_XSAVE64:
	case ZYDIS_MNEMONIC_XSAVEOPT:
	case ZYDIS_MNEMONIC_XSAVEOPT64:
		return emu_xsave(emu, ei, gva, wide, false, rfbm);
	case ZYDIS_MNEMONIC_XSAVEC:
	case ZYDIS_MNEMONIC_XSAVEC64:
	case ZYDIS_MNEMONIC_XSAVES:
	case ZYDIS_MNEMONIC_XSAVES64:
		return emu_xsave(emu, ei, gva, wide, true, rfbm);
	default:
		return emu_xrstor(emu, ei, gva, wide, supervisor, rfbm);
	}
}

/* ---- Unicorn ---- */

static void emu_uc_unmap_all(struct x86_emu *emu)
{
	unsigned int i;

	for (i = 0; i < emu->nr_pages; i++)
		uc_mem_unmap(emu->uc, emu->pages[i].gva, PAGE_SIZE);
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

	if (!is_canonical(va)) {
		emu->gp_fault = true;
		return -EFAULT;
	}
	if (p) {
		if (acc == ACC_WRITE && !p->writeable) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = pf_error_code(cpu, acc, true);
			return -EFAULT;
		}
		return 0;
	}
	if (emu->nr_pages == EMU_MAX_PAGES)
		return -ENOSPC;
	if (emu->mem->translate(emu->mem->opaque, page, &gpa, &writeable) < 0) {
		emu->fault = true;
		emu->fault_addr = va;
		emu->fault_code = pf_error_code(cpu, acc, false);
		return -EFAULT;
	}
	if (!write_protect_applies(cpu))
		writeable = true;
	if (acc == ACC_WRITE && !writeable) {
		emu->fault = true;
		emu->fault_addr = va;
		emu->fault_code = pf_error_code(cpu, acc, true);
		return -EFAULT;
	}
	hva = emu->mem->gpa_to_hva(emu->mem->opaque, gpa & PAGE_MASK, PAGE_SIZE);
	if (!hva)
		return -ENXIO;
	if (uc_mem_map_ptr(emu->uc, page, PAGE_SIZE, UC_PROT_READ | UC_PROT_EXEC | (writeable ? UC_PROT_WRITE : 0),
			   hva) != UC_ERR_OK)
		return -ENOMEM;
	emu->pages[emu->nr_pages].gva = page;
	emu->pages[emu->nr_pages].writeable = writeable;
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
	emu->fault_code = pf_error_code(emu->cpu, type == UC_MEM_FETCH_PROT ? ACC_FETCH :
					 type == UC_MEM_WRITE_PROT ? ACC_WRITE : ACC_READ, true);
	return false;
}

/* UC_HOOK_INTR: #DB from our RFLAGS.TF ends the instruction; any other vector is an exception it raised. */
static void emu_uc_hook_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
	struct x86_emu *emu = opaque;

	emu->intr = (int)intno;
	uc_emu_stop(uc);
}

static int emu_uc_open(struct x86_emu *emu)
{
	uc_hook hook;

	if (uc_open(UC_ARCH_X86, UC_MODE_64, &emu->uc) != UC_ERR_OK) {
		emu->uc = NULL;
		return -ENOMEM;
	}
	if (uc_hook_add(emu->uc, &hook, UC_HOOK_MEM_UNMAPPED, (void *)emu_uc_hook_unmapped, emu, 1, 0) != UC_ERR_OK ||
	    uc_hook_add(emu->uc, &hook, UC_HOOK_MEM_PROT, (void *)emu_uc_hook_prot, emu, 1, 0) != UC_ERR_OK ||
	    uc_hook_add(emu->uc, &hook, UC_HOOK_INTR, (void *)emu_uc_hook_intr, emu, 1, 0) != UC_ERR_OK) {
		uc_close(emu->uc);
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
	err = uc_reg_write(uc, UC_X86_REG_CR0, &cr0);
	if (!err)
		err = uc_reg_write(uc, UC_X86_REG_CR4, &cr4);
	if (!err)
		err = uc_reg_write_batch(uc, (int *)uc_gpr_ids, ptrs, UC_NR_GPRS);
	if (!err)
		err = uc_reg_write(uc, UC_X86_REG_FS_BASE, &cpu->sregs.fs.base);
	if (!err)
		err = uc_reg_write(uc, UC_X86_REG_GS_BASE, &cpu->sregs.gs.base);
	if (!err)
		err = uc_reg_write(uc, UC_X86_REG_MXCSR, &mxcsr);
	for (i = 0; i < 16 && !err; i++)
		err = uc_reg_write(uc, UC_X86_REG_XMM0 + (int)i, cpu->fpu.xmm[i]);
	if (x87 && !err) {
		uint16_t fcw = cpu->fpu.fcw, fsw = cpu->fpu.fsw, tag = x87_full_tag(cpu->fpu.ftwx);
		uint16_t fop = cpu->fpu.last_opcode;
		uint64_t fip = cpu->fpu.last_ip, fdp = cpu->fpu.last_dp;

		/* FSW first: its TOP field decides which physical registers ST0-ST7 name. */
		err = uc_reg_write(uc, UC_X86_REG_FPSW, &fsw);
		if (!err)
			err = uc_reg_write(uc, UC_X86_REG_FPCW, &fcw);
		/* kvm_fpu's ftwx is by physical register, like Unicorn's tag word. */
		if (!err)
			err = uc_reg_write(uc, UC_X86_REG_FPTAG, &tag);
		for (i = 0; i < 8 && !err; i++)
			err = uc_reg_write(uc, UC_X86_REG_ST0 + (int)i, cpu->fpu.fpr[i]);
		if (!err)
			err = uc_reg_write(uc, UC_X86_REG_FOP, &fop);
		if (!err)
			err = uc_reg_write(uc, UC_X86_REG_FIP, &fip);
		if (!err)
			err = uc_reg_write(uc, UC_X86_REG_FDP, &fdp);
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
	err = uc_reg_read_batch(uc, (int *)uc_gpr_ids, ptrs, UC_NR_GPRS);
	if (!err)
		err = uc_reg_read(uc, UC_X86_REG_FS_BASE, &fs_base);
	if (!err)
		err = uc_reg_read(uc, UC_X86_REG_GS_BASE, &gs_base);
	if (!err)
		err = uc_reg_read(uc, UC_X86_REG_MXCSR, &out->fpu.mxcsr);
	for (i = 0; i < 16 && !err; i++)
		err = uc_reg_read(uc, UC_X86_REG_XMM0 + (int)i, out->fpu.xmm[i]);
	if (x87 && !err) {
		uint16_t tag = 0, fop = 0;
		uint64_t fip = 0, fdp = 0;

		err = uc_reg_read(uc, UC_X86_REG_FPSW, &out->fpu.fsw);
		if (!err)
			err = uc_reg_read(uc, UC_X86_REG_FPCW, &out->fpu.fcw);
		if (!err)
			err = uc_reg_read(uc, UC_X86_REG_FPTAG, &tag);
		for (i = 0; i < 8 && !err; i++)
			err = uc_reg_read(uc, UC_X86_REG_ST0 + (int)i, out->fpu.fpr[i]);
		if (!err)
			err = uc_reg_read(uc, UC_X86_REG_FOP, &fop);
		if (!err)
			err = uc_reg_read(uc, UC_X86_REG_FIP, &fip);
		if (!err)
			err = uc_reg_read(uc, UC_X86_REG_FDP, &fdp);
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
		if (operand_address(emu->cpu, ei, op, &gva) < 0)
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
	err = uc_emu_start(emu->uc, start, start + ei->in.length, 0, 0);
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

static enum x86_emu_result emu_unicorn(struct x86_emu *emu, const struct emu_insn *ei)
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
		return unsupported(emu, why);
	/*
	 * #UD/#NM that Unicorn 2.0.1 does not raise (it ignores CR0.TS): SSE needs CR4.OSFXSR and !CR0.EM,
	 * MMX !CR0.EM (#UD), both !CR0.TS (#NM); x87 raises #NM for CR0.EM or CR0.TS (SDM vol. 3 s2.5, s13.2).
	 */
	if (insn_uses_sse(ei)) {
		if (sse_unusable(cpu))
			return X86_EMU_OK;
	} else if (insn_uses_mmx(ei)) {
		if (cpu->sregs.cr0 & (CR0_EM | CR0_TS)) {
			queue_exception(cpu, (cpu->sregs.cr0 & CR0_EM) ? VEC_UD : VEC_NM, false, 0);
			return X86_EMU_OK;
		}
	} else if (x87 && (cpu->sregs.cr0 & (CR0_EM | CR0_TS))) {
		queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	/* LDMXCSR: Unicorn loads reserved bits instead of raising #GP(0). */
	if (ei->in.mnemonic == ZYDIS_MNEMONIC_LDMXCSR) {
		const ZydisDecodedOperand *op = mem_operand(ei);
		uint64_t val;

		if (!op)
			return unsupported(emu, "ldmxcsr: unexpected operand");
		ret = read_source(emu, ei, op, &val);
		if (ret < 0)
			return span_failed(emu, ret);
		if (val & ~(uint64_t)MXCSR_MASK) {
			queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
	}

	if (!emu->uc || emu->uc_steps >= X86_EMU_RECYCLE_STEPS) {
		if (emu->uc)
			uc_close(emu->uc);
		emu->uc = NULL;
		if (emu_uc_open(emu) < 0)
			return unsupported(emu, "cannot create the Unicorn engine");
	}
	emu->uc_steps++;
	emu->nr_pages = 0;

	ret = emu_uc_map_range(emu, rip, ei->in.length, ACC_FETCH);
	if (ret == 0)
		ret = emu_uc_premap_operands(emu, ei);
	if (ret == 0) {
		/* Blocks cached for this address may come from other bytes mapped there in an earlier step. */
		uc_ctl_remove_cache(emu->uc, rip, rip + ei->in.length);
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
			return unsupported(emu, "Unicorn raised an unexpected exception");
		}
		emu_uc_unmap_all(emu);
		queue_exception(cpu, (uint8_t)emu->intr, has_error_code, 0);
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
		return span_failed(emu, -EFAULT);
	if (ret == -ENXIO || emu->unsupported)
		return unsupported(emu, "operand is not guest RAM (MMIO) or touches too many pages");
	return unsupported(emu, "Unicorn cannot execute the instruction");
}

/* ---- decoding and dispatch ---- */

/*
 * Fetch up to 15 instruction bytes at rip through the guest page tables. Returns the byte count (> 0);
 * when the second page is unmapped, fewer bytes and *next_fault set. -EFAULT when the first byte cannot be
 * fetched (fault recorded), -ENXIO for code outside RAM.
 */
static int emu_fetch(struct x86_emu *emu, uint8_t *buf, bool *next_fault)
{
	uint64_t va = cpu_code_linear(emu->cpu, emu->cpu->regs.rip);
	size_t first = PAGE_SIZE - (va & ~PAGE_MASK);
	struct guest_span span;
	int ret;

	*next_fault = false;
	if (first >= ZYDIS_MAX_INSTRUCTION_LENGTH) {
		ret = guest_span_get(emu, va, ZYDIS_MAX_INSTRUCTION_LENGTH, ACC_FETCH, &span);
		if (ret < 0)
			return ret;
		span_read(&span, 0, buf, ZYDIS_MAX_INSTRUCTION_LENGTH);
		return ZYDIS_MAX_INSTRUCTION_LENGTH;
	}
	ret = guest_span_get(emu, va, first, ACC_FETCH, &span);
	if (ret < 0)
		return ret;
	span_read(&span, 0, buf, first);
	ret = guest_span_get(emu, va + first, ZYDIS_MAX_INSTRUCTION_LENGTH - first, ACC_FETCH, &span);
	if (ret == -EFAULT) {
		/* Matters only if the instruction does extend there; the decoder decides. */
		*next_fault = true;
		return (int)first;
	}
	if (ret < 0)
		return ret;
	span_read(&span, 0, buf + first, ZYDIS_MAX_INSTRUCTION_LENGTH - first);
	return ZYDIS_MAX_INSTRUCTION_LENGTH;
}

static const ZydisDecoder *emu_decoder(const struct x86_emu *emu, const struct x86_emu_cpu *cpu)
{
	switch (cpu_code_bits(cpu)) {
	case 64:
		return &emu->dec64;
	case 32:
		return &emu->dec32;
	default:
		return &emu->dec16;
	}
}

/* Decode; -EAGAIN when the bytes end early (the caller checks whether that is a fetch fault). */
static int emu_decode(const struct x86_emu *emu, const struct x86_emu_cpu *cpu, struct emu_insn *ei)
{
	ZyanStatus st = ZydisDecoderDecodeFull(emu_decoder(emu, cpu), ei->bytes, ei->nr_bytes, &ei->in, ei->ops);

	if (st == ZYDIS_STATUS_NO_MORE_DATA)
		return -EAGAIN;
	return ZYAN_SUCCESS(st) ? 0 : -EINVAL;
}

/* Instructions implemented here rather than in Unicorn; only in 64-bit mode at CPL0. */
static bool emu_direct(struct x86_emu *emu, const struct emu_insn *ei, enum x86_emu_result *res)
{
	switch (ei->in.mnemonic) {
	case ZYDIS_MNEMONIC_POPCNT:
		*res = emu_popcnt(emu, ei);
		return true;
	case ZYDIS_MNEMONIC_MOVBE:
		*res = emu_movbe(emu, ei);
		return true;
	case ZYDIS_MNEMONIC_PCLMULQDQ:
		*res = emu_pclmulqdq(emu, ei);
		return true;
	case ZYDIS_MNEMONIC_CLFLUSH:
	case ZYDIS_MNEMONIC_CLFLUSHOPT:
	case ZYDIS_MNEMONIC_CLWB:
		*res = emu_cache_flush(emu, ei);
		return true;
	case ZYDIS_MNEMONIC_CMPXCHG16B:
	case ZYDIS_MNEMONIC_CMPXCHG8B:
		*res = emu_cmpxchg_wide(emu, ei);
		return true;
	case ZYDIS_MNEMONIC_FXSAVE:
	case ZYDIS_MNEMONIC_FXSAVE64:
	case ZYDIS_MNEMONIC_FXRSTOR:
	case ZYDIS_MNEMONIC_FXRSTOR64:
	case ZYDIS_MNEMONIC_XSAVE:
	case ZYDIS_MNEMONIC_XSAVE64:
	case ZYDIS_MNEMONIC_XSAVEOPT:
	case ZYDIS_MNEMONIC_XSAVEOPT64:
	case ZYDIS_MNEMONIC_XSAVEC:
	case ZYDIS_MNEMONIC_XSAVEC64:
	case ZYDIS_MNEMONIC_XSAVES:
	case ZYDIS_MNEMONIC_XSAVES64:
	case ZYDIS_MNEMONIC_XRSTOR:
	case ZYDIS_MNEMONIC_XRSTOR64:
	case ZYDIS_MNEMONIC_XRSTORS:
	case ZYDIS_MNEMONIC_XRSTORS64:
		*res = emu_state_save_restore(emu, ei);
		return true;
	default:
		return false;
	}
}

/* Did execution happen (as opposed to a fault being raised before it)? Decides what the stats count. */
static bool emu_executed(const struct x86_emu_cpu *cpu, const struct emu_insn *ei)
{
	return !cpu->exception_pending || ei->in.mnemonic == ZYDIS_MNEMONIC_INT3;
}

static enum x86_emu_result emu_dispatch(struct x86_emu *emu, struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	enum x86_emu_result res;

	switch (ei->in.mnemonic) {
	case ZYDIS_MNEMONIC_INT3:
		return emu_int3(emu, ei);
	case ZYDIS_MNEMONIC_CLAC:
		return emu_clac_stac(emu, ei, false);
	case ZYDIS_MNEMONIC_STAC:
		return emu_clac_stac(emu, ei, true);
	case ZYDIS_MNEMONIC_FWAIT:
		return emu_fwait(emu, ei);
	default:
		break;
	}
	if (!cpu_long64(cpu))
		return unsupported(emu, "only 64-bit code is emulated beyond int3/clac/stac/fwait");
	/* translate() reports no U/S bit, so user-mode accesses could not be checked. */
	if (cpu_cpl(cpu) != 0)
		return unsupported(emu, "only CPL0 code is emulated beyond int3/clac/stac/fwait");
	if (emu_direct(emu, ei, &res))
		return res;
	return emu_unicorn(emu, ei);
}

struct x86_emu *x86_emu_create(void)
{
	struct x86_emu *emu = calloc(1, sizeof(*emu));

	if (!emu)
		return NULL;
	if (!ZYAN_SUCCESS(ZydisDecoderInit(&emu->dec64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)) ||
	    !ZYAN_SUCCESS(ZydisDecoderInit(&emu->dec32, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32)) ||
	    !ZYAN_SUCCESS(ZydisDecoderInit(&emu->dec16, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16))) {
		free(emu);
		errno = EINVAL;
		return NULL;
	}
	if (emu_uc_open(emu) < 0) {
		free(emu);
		errno = ENOMEM;
		return NULL;
	}
	return emu;
}

void x86_emu_destroy(struct x86_emu *emu)
{
	if (!emu)
		return;
	if (emu->uc)
		uc_close(emu->uc);
	free(emu);
}

const char *x86_emu_strerror(const struct x86_emu *emu)
{
	return emu && emu->error ? emu->error : "no error";
}

enum x86_emu_result x86_emu_step(struct x86_emu *emu, struct x86_emu_cpu *cpu, const struct x86_emu_mem_ops *mem,
				 const uint8_t *insn, size_t insn_len, struct x86_emu_stats *stats)
{
	struct emu_insn ei;
	enum x86_emu_result res;
	bool next_fault = false;
	int ret;

	if (!emu || !cpu || !mem || !mem->translate || !mem->gpa_to_hva)
		return X86_EMU_UNSUPPORTED;
	emu->error = NULL;
	emu->cpu = cpu;
	emu->mem = mem;
	emu->fault = false;
	emu->gp_fault = false;
	emu->unsupported = false;
	emu->nr_pages = 0;
	cpu->exception_pending = false;
	cpu->exception_vector = 0;
	cpu->exception_has_error_code = false;
	cpu->exception_error_code = 0;

	/* Guest single-stepping would need #DB with DR6.BS, which kvm_sregs cannot carry; VM86 is out of scope. */
	if (cpu->regs.rflags & (RFLAGS_TF | RFLAGS_VM))
		return unsupported(emu, "RFLAGS.TF or VM86 mode");

	memset(&ei, 0, sizeof(ei));
	if (insn && insn_len) {
		ei.nr_bytes = insn_len < sizeof(ei.bytes) ? insn_len : sizeof(ei.bytes);
		memcpy(ei.bytes, insn, ei.nr_bytes);
	} else {
		ret = emu_fetch(emu, ei.bytes, &next_fault);
		if (ret == -EFAULT)
			return span_failed(emu, ret);
		if (ret < 0)
			return unsupported(emu, "instruction is not in guest RAM");
		ei.nr_bytes = (size_t)ret;
	}
	ret = emu_decode(emu, cpu, &ei);
	if (ret == -EAGAIN && insn && insn_len) {
		/* KVM reported fewer bytes than the instruction has: read them from guest memory. */
		ret = emu_fetch(emu, ei.bytes, &next_fault);
		if (ret == -EFAULT)
			return span_failed(emu, ret);
		if (ret < 0)
			return unsupported(emu, "instruction is not in guest RAM");
		ei.nr_bytes = (size_t)ret;
		insn = NULL;
		insn_len = 0;
		ret = emu_decode(emu, cpu, &ei);
	}
	if (ret == -EAGAIN && next_fault) {
		/* The instruction continues on an unmapped page: the fetch faults there. */
		uint64_t va = cpu_code_linear(cpu, cpu->regs.rip) + ei.nr_bytes;

		queue_page_fault(cpu, va, pf_error_code(cpu, ACC_FETCH, false));
		return X86_EMU_OK;
	}
	if (ret < 0)
		return unsupported(emu, "undecodable instruction");

	/*
	 * Unicorn executes the bytes in guest memory, not `insn`: if the guest changed them since KVM fetched
	 * them, decode what is there now so that what is checked is what runs.
	 */
	if (insn && insn_len && cpu_long64(cpu) && cpu_cpl(cpu) == 0) {
		uint8_t now[ZYDIS_MAX_INSTRUCTION_LENGTH];
		struct emu_insn fresh;
		struct guest_span span;

		ret = guest_span_get(emu, cpu->regs.rip, ei.in.length, ACC_FETCH, &span);
		if (ret == 0) {
			span_read(&span, 0, now, ei.in.length);
			if (memcmp(now, ei.bytes, ei.in.length) != 0) {
				memset(&fresh, 0, sizeof(fresh));
				ret = emu_fetch(emu, fresh.bytes, &next_fault);
				if (ret > 0) {
					fresh.nr_bytes = (size_t)ret;
					if (emu_decode(emu, cpu, &fresh) < 0)
						return unsupported(emu, "code changed under the emulator and is undecodable");
					ei = fresh;
				}
			}
		}
		emu->fault = false;
		emu->gp_fault = false;
	}

	res = emu_dispatch(emu, &ei);
	if (res == X86_EMU_OK && emu_executed(cpu, &ei))
		stats_count(stats, ei.in.mnemonic);
	return res;
}

size_t x86_emu_disasm(const uint8_t *insn, size_t insn_len, bool long_mode, uint64_t rip, char *buf, size_t size)
{
	ZydisDecoder dec;
	ZydisFormatter fmt;
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];

	if (!buf || !size)
		return 0;
	snprintf(buf, size, "(bad)");
	if (!insn || !insn_len)
		return 0;
	if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, long_mode ? ZYDIS_MACHINE_MODE_LONG_64 : ZYDIS_MACHINE_MODE_LEGACY_32,
					   long_mode ? ZYDIS_STACK_WIDTH_64 : ZYDIS_STACK_WIDTH_32)) ||
	    !ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, insn, insn_len, &in, ops)) ||
	    !ZYAN_SUCCESS(ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL)) ||
	    /* The style of the contract's example: "ldmxcsr dword ptr [rsp+0x4]". */
	    !ZYAN_SUCCESS(ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_FORCE_SIZE, ZYAN_TRUE)) ||
	    !ZYAN_SUCCESS(ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_DISP_PADDING, ZYDIS_PADDING_DISABLED)) ||
	    !ZYAN_SUCCESS(ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_IMM_PADDING, ZYDIS_PADDING_DISABLED)) ||
	    !ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&fmt, &in, ops, in.operand_count_visible, buf, size, rip,
							  NULL))) {
		snprintf(buf, size, "(bad)");
		return 0;
	}
	return in.length;
}
