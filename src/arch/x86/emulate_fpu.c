// SPDX-License-Identifier: MIT
/*
 * FXSAVE/FXRSTOR and the XSAVE family (XSAVE, XSAVEOPT, XSAVEC, XSAVES, XRSTOR, XRSTORS), executed directly
 * over the x87 and SSE state kvm_fpu holds: Unicorn 2.0.1 lacks the XSAVE family, and FXSAVE/FXRSTOR share
 * its legacy-region code. Other state components (AVX...) are refused: kvm_fpu cannot hold them.
 */
#include "arch/x86/emulate_internal.h"

#include <string.h>

#define XFEATURE_X87 (1ull << 0)
#define XFEATURE_SSE (1ull << 1)
#define XCOMP_BV_COMPACTED (1ull << 63)

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

	ret = emu_span_get(emu, gva, sizeof(area), ACC_WRITE, &span);
	if (ret < 0)
		return emu_span_failed(emu, ret);
	memset(area, 0, sizeof(area));
	fx_store_x87(&cpu->fpu, area, wide);
	fx_store_mxcsr(&cpu->fpu, area);
	memcpy(area + FX_XMM0, cpu->fpu.xmm, sizeof(cpu->fpu.xmm));
	emu_span_write(&span, 0, area, sizeof(area));
	emu_cpu_advance(cpu, ei->in.length);
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

	ret = emu_span_get(emu, gva, sizeof(area), ACC_READ, &span);
	if (ret < 0)
		return emu_span_failed(emu, ret);
	emu_span_read(&span, 0, area, sizeof(area));
	memcpy(&mxcsr, area + FX_MXCSR, 4);
	if (mxcsr & ~MXCSR_MASK) {
		emu_queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	fx_load_x87(&cpu->fpu, area, wide);
	cpu->fpu.mxcsr = mxcsr;
	memcpy(cpu->fpu.xmm, area + FX_XMM0, sizeof(cpu->fpu.xmm));
	cpu->fpu_dirty = true;
	emu_cpu_advance(cpu, ei->in.length);
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

	ret = emu_span_get(emu, gva, sizeof(area), ACC_WRITE, &span);
	if (ret < 0)
		return emu_span_failed(emu, ret);
	emu_span_read(&span, 0, area, sizeof(area));
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
	emu_span_write(&span, 0, area, compacted ? sizeof(area) : XSAVE_XSTATE_BV + 8);
	emu_cpu_advance(cpu, ei->in.length);
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

	ret = emu_span_get(emu, gva, sizeof(area), ACC_READ, &span);
	if (ret < 0)
		return emu_span_failed(emu, ret);
	emu_span_read(&span, 0, area, sizeof(area));
	memcpy(&xstate_bv, area + XSAVE_XSTATE_BV, 8);
	memcpy(&xcomp_bv, area + XSAVE_XCOMP_BV, 8);
	if (!(xcomp_bv & XCOMP_BV_COMPACTED)) {
		if (supervisor || !all_zero(area + XSAVE_XCOMP_BV, 16))
			goto gp;
		if (xstate_bv & ~xcr0) {
			if (!cpu->xcr0)
				return emu_unsupported(emu, "xrstor: XSTATE_BV beyond x87/SSE and XCR0 unknown");
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
				return emu_unsupported(emu, "xrstor: XCOMP_BV beyond x87/SSE and XCR0/XSS unknown");
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
	emu_cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
gp:
	emu_queue_exception(cpu, VEC_GP, true, 0);
	return X86_EMU_OK;
}

/* Common checks of FXSAVE/FXRSTOR and the XSAVE family, then the instruction itself. */
enum x86_emu_result emu_state_save_restore(struct x86_emu *emu, const struct emu_insn *ei)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	const ZydisDecodedOperand *op = emu_mem_operand(ei);
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

	if (!op || emu_operand_address(cpu, ei, op, &gva) < 0)
		return emu_unsupported(emu, "xsave/fxsave: unexpected operand");
	if (fx) {
		/* FXSAVE/FXRSTOR: #UD if CR0.EM, #NM if CR0.TS, #GP if not 16-byte aligned (SDM vol. 2A). */
		if (cpu->sregs.cr0 & CR0_EM) {
			emu_queue_exception(cpu, VEC_UD, false, 0);
			return X86_EMU_OK;
		}
		if (cpu->sregs.cr0 & CR0_TS) {
			emu_queue_exception(cpu, VEC_NM, false, 0);
			return X86_EMU_OK;
		}
		if (gva & 15) {
			emu_queue_exception(cpu, VEC_GP, true, 0);
			return X86_EMU_OK;
		}
		if (m == ZYDIS_MNEMONIC_FXSAVE || m == ZYDIS_MNEMONIC_FXSAVE64)
			return emu_fxsave(emu, ei, gva, wide);
		return emu_fxrstor(emu, ei, gva, wide);
	}
	/* XSAVE family: #UD if CR4.OSXSAVE = 0, #NM if CR0.TS, #GP if not 64-byte aligned (SDM vol. 2C). */
	if (!(cpu->sregs.cr4 & CR4_OSXSAVE)) {
		emu_queue_exception(cpu, VEC_UD, false, 0);
		return X86_EMU_OK;
	}
	if (cpu->sregs.cr0 & CR0_TS) {
		emu_queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	if (supervisor && emu_cpu_cpl(cpu) != 0) {
		emu_queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	if (gva & 63) {
		emu_queue_exception(cpu, VEC_GP, true, 0);
		return X86_EMU_OK;
	}
	request = (uint32_t)cpu->regs.rax | ((uint64_t)(uint32_t)cpu->regs.rdx << 32);
	/* Without XCR0 (or with IA32_XSS in play) only requests for x87/SSE alone are decidable. */
	if ((!cpu->xcr0 || supervisor) && (request & ~(XFEATURE_X87 | XFEATURE_SSE)))
		return emu_unsupported(emu, "xsave family: request beyond x87/SSE with XCR0/XSS unknown");
	rfbm = request & effective_xcr0(cpu);
	if (rfbm & ~(XFEATURE_X87 | XFEATURE_SSE))
		return emu_unsupported(emu, "xsave family: state components beyond x87/SSE (AVX...) are not modelled");
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
