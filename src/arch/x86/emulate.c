// SPDX-License-Identifier: MIT
/*
 * x86 instruction emulation for what the host's KVM refuses (see emulate.h): the public API, fetching and
 * decoding, and dispatch.
 *
 * Three tiers, chosen after decoding with Zydis:
 *  1. dedicated handlers for instructions with trivial or vCPU-event semantics: int3, clac/stac, fwait (here);
 *  2. direct implementations for instructions Unicorn 2.0.1 cannot execute (its TCG CPU model lacks
 *     POPCNT, MOVBE, PCLMULQDQ, CLFLUSHOPT/CLWB and the whole XSAVE family, whatever model is chosen) or
 *     cannot execute correctly for a multi-vCPU guest (CMPXCHG8B/16B must be atomic against the other vCPUs,
 *     which run natively: done with a host LOCK CMPXCHG16B on guest RAM), plus FXSAVE/FXRSTOR, which share
 *     the XSAVE legacy-region code (emulate_direct.c, emulate_fpu.c);
 *  3. everything else runs as exactly one instruction in Unicorn over the vCPU state, with the guest pages
 *     it touches mapped zero-copy from guest RAM (emulate_unicorn.c, which also says how and why). Instructions
 *     whose semantics depend on state Unicorn does not model for a guest kernel (descriptor tables, privilege
 *     changes, MSRs, I/O, TSC, segment selectors, YMM/ZMM...) are refused before anything runs.
 * All of them reach the vCPU and guest memory through emulate_access.c.
 *
 * Not modelled (refused, or documented where an instruction is executed anyway): YMM/ZMM/AVX state, XSAVE
 * components other than x87 and SSE, MMIO operands, segment selectors and descriptor loads, debug
 * registers and RFLAGS.TF single-stepping of the guest, SMAP/U/S checks (translate() reports only present and
 * writeable), alignment checks Unicorn does not make (misaligned MOVAPS/MOVDQA do not raise #GP), atomicity
 * of LOCK-prefixed instructions other than CMPXCHG8B/16B (those are refused), 16/32-bit code (only the
 * dedicated handlers work there).
 */
#include "arch/x86/emulate_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Linear address of code at `ip`: CS.base applies outside 64-bit mode (32-bit wrap-around). */
static uint64_t cpu_code_linear(const struct x86_emu_cpu *cpu, uint64_t ip)
{
	if (emu_cpu_long64(cpu))
		return ip;
	return (uint32_t)(cpu->sregs.cs.base + ip);
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
	emu_cpu_advance(emu->cpu, ei->in.length);
	emu_queue_exception(emu->cpu, VEC_BP, false, 0);
	return X86_EMU_OK;
}

/* CLAC/STAC: RFLAGS.AC; #UD outside CPL0 (SDM vol. 2A). */
static enum x86_emu_result emu_clac_stac(struct x86_emu *emu, const struct emu_insn *ei, bool set)
{
	struct x86_emu_cpu *cpu = emu->cpu;

	if (emu_cpu_cpl(cpu) != 0) {
		emu_queue_exception(cpu, VEC_UD, false, 0);
		return X86_EMU_OK;
	}
	if (set)
		cpu->regs.rflags |= RFLAGS_AC;
	else
		cpu->regs.rflags &= ~RFLAGS_AC;
	emu_cpu_advance(cpu, ei->in.length);
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
		emu_queue_exception(cpu, VEC_NM, false, 0);
		return X86_EMU_OK;
	}
	emu_cpu_advance(cpu, ei->in.length);
	return X86_EMU_OK;
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
		ret = emu_span_get(emu, va, ZYDIS_MAX_INSTRUCTION_LENGTH, ACC_FETCH, &span);
		if (ret < 0)
			return ret;
		emu_span_read(&span, 0, buf, ZYDIS_MAX_INSTRUCTION_LENGTH);
		return ZYDIS_MAX_INSTRUCTION_LENGTH;
	}
	ret = emu_span_get(emu, va, first, ACC_FETCH, &span);
	if (ret < 0)
		return ret;
	emu_span_read(&span, 0, buf, first);
	ret = emu_span_get(emu, va + first, ZYDIS_MAX_INSTRUCTION_LENGTH - first, ACC_FETCH, &span);
	if (ret == -EFAULT) {
		/* Matters only if the instruction does extend there; the decoder decides. */
		*next_fault = true;
		return (int)first;
	}
	if (ret < 0)
		return ret;
	emu_span_read(&span, 0, buf + first, ZYDIS_MAX_INSTRUCTION_LENGTH - first);
	return ZYDIS_MAX_INSTRUCTION_LENGTH;
}

/*
 * emu_fetch() into ei for decoding. False when there is nothing to decode, with *res the step's result: the
 * fetch's page fault queued, or unsupported for code outside RAM.
 */
static bool emu_fetch_insn(struct x86_emu *emu, struct emu_insn *ei, bool *next_fault, enum x86_emu_result *res)
{
	int ret = emu_fetch(emu, ei->bytes, next_fault);

	if (ret == -EFAULT) {
		*res = emu_span_failed(emu, ret);
		return false;
	}
	if (ret < 0) {
		*res = emu_unsupported(emu, "instruction is not in guest RAM");
		return false;
	}
	ei->nr_bytes = (size_t)ret;
	return true;
}

static const ZydisDecoder *emu_decoder(const struct x86_emu *emu, const struct x86_emu_cpu *cpu)
{
	switch (emu_cpu_code_bits(cpu)) {
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
	if (!emu_cpu_long64(cpu))
		return emu_unsupported(emu, "only 64-bit code is emulated beyond int3/clac/stac/fwait");
	/* translate() reports no U/S bit, so user-mode accesses could not be checked. */
	if (emu_cpu_cpl(cpu) != 0)
		return emu_unsupported(emu, "only CPL0 code is emulated beyond int3/clac/stac/fwait");
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
	/* Unicorn is loaded and its engine created when an instruction first needs it (emu_unicorn). */
	return emu;
}

void x86_emu_destroy(struct x86_emu *emu)
{
	if (!emu)
		return;
	emu_uc_lib_release(emu);
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
		return emu_unsupported(emu, "RFLAGS.TF or VM86 mode");

	memset(&ei, 0, sizeof(ei));
	if (insn && insn_len) {
		ei.nr_bytes = insn_len < sizeof(ei.bytes) ? insn_len : sizeof(ei.bytes);
		memcpy(ei.bytes, insn, ei.nr_bytes);
	} else if (!emu_fetch_insn(emu, &ei, &next_fault, &res)) {
		return res;
	}
	ret = emu_decode(emu, cpu, &ei);
	if (ret == -EAGAIN && insn && insn_len) {
		/* KVM reported fewer bytes than the instruction has: read them from guest memory. */
		if (!emu_fetch_insn(emu, &ei, &next_fault, &res))
			return res;
		insn = NULL;
		insn_len = 0;
		ret = emu_decode(emu, cpu, &ei);
	}
	if (ret == -EAGAIN && next_fault) {
		/* The instruction continues on an unmapped page: the fetch faults there. */
		uint64_t va = cpu_code_linear(cpu, cpu->regs.rip) + ei.nr_bytes;

		emu_queue_page_fault(cpu, va, emu_pf_error_code(cpu, ACC_FETCH, false));
		return X86_EMU_OK;
	}
	if (ret < 0)
		return emu_unsupported(emu, "undecodable instruction");

	/*
	 * Unicorn executes the bytes in guest memory, not `insn`: if the guest changed them since KVM fetched
	 * them, decode what is there now so that what is checked is what runs.
	 */
	if (insn && insn_len && emu_cpu_long64(cpu) && emu_cpu_cpl(cpu) == 0) {
		uint8_t now[ZYDIS_MAX_INSTRUCTION_LENGTH];
		struct emu_insn fresh;
		struct guest_span span;

		ret = emu_span_get(emu, cpu->regs.rip, ei.in.length, ACC_FETCH, &span);
		if (ret == 0) {
			emu_span_read(&span, 0, now, ei.in.length);
			if (memcmp(now, ei.bytes, ei.in.length) != 0) {
				memset(&fresh, 0, sizeof(fresh));
				ret = emu_fetch(emu, fresh.bytes, &next_fault);
				if (ret > 0) {
					fresh.nr_bytes = (size_t)ret;
					if (emu_decode(emu, cpu, &fresh) < 0)
						return emu_unsupported(emu, "code changed under the emulator and is undecodable");
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
