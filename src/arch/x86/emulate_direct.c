// SPDX-License-Identifier: MIT
/*
 * Instructions executed directly rather than in Unicorn (64-bit mode, CPL0): POPCNT, MOVBE, PCLMULQDQ and
 * CLFLUSHOPT/CLWB, which Unicorn 2.0.1's TCG CPU model lacks, CLFLUSH with them, and CMPXCHG8B/16B, which
 * must be atomic against the other vCPUs running natively on the same RAM (done with a host LOCK CMPXCHG on
 * guest RAM). FXSAVE/FXRSTOR and the XSAVE family are in emulate_fpu.c.
 */
#include "arch/x86/emulate_internal.h"

#include <errno.h>
#include <string.h>

/* Index 0-15 of an XMM register, -1 for others. */
static int xmm_index(ZydisRegister reg)
{
	if (reg >= ZYDIS_REGISTER_XMM0 && reg <= ZYDIS_REGISTER_XMM15)
		return reg - ZYDIS_REGISTER_XMM0;
	return -1;
}

static uint64_t bswap_n(uint64_t v, unsigned int bytes)
{
	switch (bytes) {
	case 2: return __builtin_bswap16((uint16_t)v);
	case 4: return __builtin_bswap32((uint32_t)v);
	default: return __builtin_bswap64(v);
	}
}

/* POPCNT r, r/m: count; ZF = (source == 0); OF SF AF CF PF cleared (SDM vol. 2B). */
enum x86_emu_result emu_popcnt(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	uint64_t src;
	int ret;

	ret = emu_read_source(emu, ei, &ei->ops[1], &src);
	if (ret < 0)
		return emu_span_failed(emu, ret);
	if (emu_gpr_write(&cpu->regs, ei->ops[0].reg.value, (uint64_t)__builtin_popcountll(src)) < 0)
		return emu_unsupported(emu, "popcnt: unexpected operand");
	cpu->regs.rflags &= ~(RFLAGS_OF | RFLAGS_SF | RFLAGS_ZF | RFLAGS_AF | RFLAGS_CF | RFLAGS_PF);
	if (src == 0)
		cpu->regs.rflags |= RFLAGS_ZF;
	emu_cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/* MOVBE r, m / m, r: byte-swapping load or store, flags unchanged (SDM vol. 2B). */
enum x86_emu_result emu_movbe(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *dst = &ei->ops[0], *src = &ei->ops[1];
	unsigned int bytes = dst->size / 8;
	struct guest_span span;
	uint64_t gva, val = 0;
	int ret;

	if (bytes != 2 && bytes != 4 && bytes != 8)
		return emu_unsupported(emu, "movbe: unexpected operand size");
	if (dst->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		ret = emu_read_source(emu, ei, src, &val);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		if (emu_gpr_write(&cpu->regs, dst->reg.value, bswap_n(val, bytes)) < 0)
			return emu_unsupported(emu, "movbe: unexpected operand");
	} else {
		if (emu_gpr_read(&cpu->regs, src->reg.value, &val) < 0 || emu_operand_address(cpu, ei, dst, &gva) < 0)
			return emu_unsupported(emu, "movbe: unexpected operand");
		ret = emu_span_get(emu, gva, bytes, ACC_WRITE, &span);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		val = bswap_n(val, bytes);
		emu_span_write(&span, 0, &val, bytes);
	}
	emu_cpu_advance(cpu, ei->in.length);
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
enum x86_emu_result emu_pclmulqdq(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	int dst = xmm_index(ei->ops[0].reg.value);
	uint8_t imm = (uint8_t)ei->ops[2].imm.value.u;
	uint64_t a[2], b[2], lo, hi;

	if (dst < 0 || ei->ops[2].type != ZYDIS_OPERAND_TYPE_IMMEDIATE)
		return emu_unsupported(emu, "pclmulqdq: unexpected operand");
	if (emu_sse_unusable(cpu))
		return X86_EMU_OK;
	memcpy(a, cpu->fpu.xmm[dst], 16);
	if (ei->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER) {
		int src = xmm_index(ei->ops[1].reg.value);

		if (src < 0)
			return emu_unsupported(emu, "pclmulqdq: unexpected operand");
		memcpy(b, cpu->fpu.xmm[src], 16);
	} else {
		struct guest_span span;
		uint64_t gva;
		int ret;

		if (emu_operand_address(cpu, ei, &ei->ops[1], &gva) < 0)
			return emu_unsupported(emu, "pclmulqdq: unexpected operand");
		if (gva & 15) {
			emu_queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		ret = emu_span_get(emu, gva, 16, ACC_READ, &span);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		emu_span_read(&span, 0, b, 16);
	}
	clmul64(a[imm & 1], b[(imm >> 4) & 1], &lo, &hi);
	memcpy(cpu->fpu.xmm[dst], &lo, 8);
	memcpy(cpu->fpu.xmm[dst] + 8, &hi, 8);
	cpu->fpu_dirty = true;
	emu_cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}

/*
 * CLFLUSH/CLFLUSHOPT/CLWB: the host's caches are coherent with what the guest sees, so only the
 * page-fault behaviour (the operand is checked like a read, SDM vol. 2A) is emulated. MMIO is fine.
 */
enum x86_emu_result emu_cache_flush(struct x86_emu *emu, const struct emu_insn *ei)
{
	const ZydisDecodedOperand *op = emu_mem_operand(ei);
	struct guest_span span;
	uint64_t gva;
	int ret;

	if (!op || emu_operand_address(emu->cpu, ei, op, &gva) < 0)
		return emu_unsupported(emu, "cache flush: unexpected operand");
	ret = emu_span_get(emu, gva, 1, ACC_READ, &span);
	if (ret < 0 && ret != -ENXIO)
		return emu_span_failed(emu, ret);
	emu_cpu_advance(emu->cpu, ei->in.length);
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
enum x86_emu_result emu_cmpxchg_wide(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *op = emu_mem_operand(ei);
	struct guest_span span;
	uint64_t gva;
	bool ok;
	int ret;

	if (!op || emu_operand_address(cpu, ei, op, &gva) < 0)
		return emu_unsupported(emu, "cmpxchg8b/16b: unexpected operand");
	if (op->size == 128) {
		uint64_t lo = cpu->regs.rax, hi = cpu->regs.rdx;

		if (gva & 15) {
			emu_queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		ret = emu_span_get(emu, gva, 16, ACC_WRITE, &span);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		ok = host_cmpxchg16b(span.hva[0], &lo, &hi, cpu->regs.rbx, cpu->regs.rcx);
		if (ok) /* a failed compare stores the old value back: nothing changed */
			emu_span_written(&span, 0, 16);
		if (!ok) {
			cpu->regs.rax = lo;
			cpu->regs.rdx = hi;
		}
	} else if (op->size == 64) {
		uint64_t old = (uint32_t)cpu->regs.rax | ((uint64_t)(uint32_t)cpu->regs.rdx << 32);
		uint64_t new_val = (uint32_t)cpu->regs.rbx | ((uint64_t)(uint32_t)cpu->regs.rcx << 32);

		/* A misaligned LOCK on the host is a split lock (slow, possibly fatal under split-lock detection). */
		if (gva & 7)
			return emu_unsupported(emu, "cmpxchg8b: misaligned operand");
		ret = emu_span_get(emu, gva, 8, ACC_WRITE, &span);
		if (ret < 0)
			return emu_span_failed(emu, ret);
		ok = host_cmpxchg8(span.hva[0], &old, new_val);
		if (ok)
			emu_span_written(&span, 0, 8);
		if (!ok) {
			/* 32-bit register writes: the upper halves are cleared. */
			cpu->regs.rax = (uint32_t)old;
			cpu->regs.rdx = old >> 32;
		}
	} else {
		return emu_unsupported(emu, "cmpxchg8b/16b: unexpected operand size");
	}
	if (ok)
		cpu->regs.rflags |= RFLAGS_ZF;
	else
		cpu->regs.rflags &= ~RFLAGS_ZF;
	emu_cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
}
