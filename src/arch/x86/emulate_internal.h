/* SPDX-License-Identifier: MIT */
/*
 * Internals of the x86 instruction emulator, shared by its files (the public API is emulate.h):
 *  emulate.c          public API, fetch and decode, dispatch, dedicated handlers (int3, clac/stac, fwait), stats;
 *  emulate_access.c   vCPU mode and exception queueing, guest memory with #PF/#GP, registers and operands;
 *  emulate_direct.c   instructions executed directly: popcnt, movbe, pclmulqdq, clflush*, cmpxchg8b/16b;
 *  emulate_fpu.c      FXSAVE/FXRSTOR and the XSAVE family over x87/SSE state;
 *  emulate_unicorn.c  everything else, one instruction at a time in Unicorn.
 * Nothing here is for use outside src/arch/x86/emulate*.c.
 */
#ifndef KILN_ARCH_X86_EMULATE_INTERNAL_H
#define KILN_ARCH_X86_EMULATE_INTERNAL_H

#include "arch/x86/emulate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* MXCSR bits this emulator accepts (DAZ included, as on every CPU with SSE2); the rest raise #GP. */
#define MXCSR_MASK 0xffffu
#define MXCSR_DEFAULT 0x1f80u

/* Pages one Unicorn step may map: code (2) plus data, with room for a few REP string iterations. */
#define EMU_MAX_PAGES 16

enum emu_access {
	ACC_READ,
	ACC_WRITE,
	ACC_FETCH,
};

struct emu_page {
	uint64_t gva;
	uint64_t gpa;        /* the page's guest physical address */
	bool writeable;
	bool written;        /* Unicorn stored into it during this step (UC_HOOK_MEM_WRITE) */
};

/*
 * The Unicorn functions kiln calls, resolved from the shared library with dlopen when the first instruction
 * needs Unicorn: libunicorn is 19 MB with ~80,000 relocations, which cost every kiln process ~4.5 ms at exec
 * when linked, although only PVM hosts ever use it, and there only for rare instructions. Types come from
 * unicorn.h, so a mismatch with the header is a compile error.
 */
struct uc_lib {
	void *handle;                    /* dlopen handle; NULL until loaded */
	__typeof__(uc_open) *open;
	__typeof__(uc_close) *close;
	__typeof__(uc_hook_add) *hook_add;
	__typeof__(uc_mem_map_ptr) *mem_map_ptr;
	__typeof__(uc_mem_unmap) *mem_unmap;
	__typeof__(uc_reg_read) *reg_read;
	__typeof__(uc_reg_write) *reg_write;
	__typeof__(uc_reg_read_batch) *reg_read_batch;
	__typeof__(uc_reg_write_batch) *reg_write_batch;
	__typeof__(uc_emu_start) *emu_start;
	__typeof__(uc_emu_stop) *emu_stop;
	__typeof__(uc_ctl) *ctl;
};

/* The emulator: decoders, the Unicorn engine, and the state of the step in progress. */
struct x86_emu {
	ZydisDecoder dec64;
	ZydisDecoder dec32;
	ZydisDecoder dec16;
	struct uc_lib uc_lib;    /* per emulator (no process-wide state); dlopen counts the references */
	uc_engine *uc;           /* created on first use (emu_uc_open), recycled every X86_EMU_RECYCLE_STEPS */
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
	uint64_t gpa[2];
	size_t len[2];
	unsigned int nr;
	const struct x86_emu_mem_ops *mem; /* for the written hook */
};

/*
 * emulate_access.c: the vCPU and guest memory as the handlers see them. Functions returning int return 0
 * or -errno; an enum x86_emu_result is the step's result, to be returned by the handler as it is.
 */

/* Record why the step is UNSUPPORTED (a static string for x86_emu_strerror()); returns X86_EMU_UNSUPPORTED. */
enum x86_emu_result emu_unsupported(struct x86_emu *emu, const char *why);

/* Current privilege level: CS.RPL in protected mode, 0 in real mode. */
unsigned int emu_cpu_cpl(const struct x86_emu_cpu *cpu);
/* Is the vCPU in 64-bit mode (EFER.LMA and CS.L)? */
bool emu_cpu_long64(const struct x86_emu_cpu *cpu);
/* Code size in bits: 64, 32 or 16. */
unsigned int emu_cpu_code_bits(const struct x86_emu_cpu *cpu);
/* Advance rip by `len` bytes with the wrap-around of the current code size; marks regs dirty. */
void emu_cpu_advance(struct x86_emu_cpu *cpu, size_t len);

/* Queue an exception for the caller to inject after the step. */
void emu_queue_exception(struct x86_emu_cpu *cpu, uint8_t vector, bool has_error_code, uint32_t error_code);
/* Queue #PF for linear address `addr`, setting CR2 (Intel SDM vol. 3 s4.7). */
void emu_queue_page_fault(struct x86_emu_cpu *cpu, uint64_t addr, uint32_t error_code);
/* #PF error code for an access of kind `acc`; `present` when the page is mapped (SDM vol. 3 s4.7). */
uint32_t emu_pf_error_code(const struct x86_emu_cpu *cpu, enum emu_access acc, bool present);
/* Is `va` a canonical 48-bit address? */
bool emu_is_canonical(uint64_t va);
/* Do read-only pages stop this write (CPL3, or CR0.WP at CPL0-2; SDM vol. 3 s4.6.1)? */
bool emu_write_protect_applies(const struct x86_emu_cpu *cpu);

/*
 * Resolve guest virtual [gva, gva + len) (len <= 4096 bytes) for an access through emu->mem. Returns 0,
 * -EFAULT with the fault recorded in emu (#PF, or #GP for a non-canonical address), -ENXIO when the range
 * is not guest RAM, -EINVAL for a bad length.
 */
int emu_span_get(struct x86_emu *emu, uint64_t gva, size_t len, enum emu_access acc, struct guest_span *span)
	__attribute__((warn_unused_result));
/* Copy `len` bytes at offset `off` of a resolved span out of / into guest memory. */
void emu_span_read(const struct guest_span *span, size_t off, void *buf, size_t len);
void emu_span_write(const struct guest_span *span, size_t off, const void *buf, size_t len);
/* Bytes [off, off + len) of the span were stored to in place (a host cmpxchg): tell mem->written. */
void emu_span_written(const struct guest_span *span, size_t off, size_t len);
/* Turn an emu_span_get() (or emu_read_source()) failure into the step's result: queue the fault, or UNSUPPORTED. */
enum x86_emu_result emu_span_failed(struct x86_emu *emu, int ret);

/* Read / write a general-purpose register of any width (x86-64 write semantics); -EINVAL for other registers. */
int emu_gpr_read(struct kvm_regs *regs, ZydisRegister reg, uint64_t *val) __attribute__((warn_unused_result));
int emu_gpr_write(struct kvm_regs *regs, ZydisRegister reg, uint64_t val) __attribute__((warn_unused_result));
/* Linear address of a plain memory operand in 64-bit mode; -EINVAL for other operand kinds. */
int emu_operand_address(const struct x86_emu_cpu *cpu, const struct emu_insn *ei, const ZydisDecodedOperand *op,
			uint64_t *gva) __attribute__((warn_unused_result));
/* The first explicit memory operand of `ei`, NULL if none. */
const ZydisDecodedOperand *emu_mem_operand(const struct emu_insn *ei);
/* Read a register or memory source operand of up to 8 bytes; errors as emu_span_get(). */
int emu_read_source(struct x86_emu *emu, const struct emu_insn *ei, const ZydisDecodedOperand *op, uint64_t *val)
	__attribute__((warn_unused_result));
/* Queue #UD/#NM and return true when SSE state is unusable (SDM vol. 3 s13.2, vol. 2 table 2-18). */
bool emu_sse_unusable(struct x86_emu_cpu *cpu);

/* emulate_direct.c: one instruction each, 64-bit mode at CPL0 (SDM vol. 2). */
enum x86_emu_result emu_popcnt(struct x86_emu *emu, const struct emu_insn *ei);
enum x86_emu_result emu_movbe(struct x86_emu *emu, const struct emu_insn *ei);
enum x86_emu_result emu_pclmulqdq(struct x86_emu *emu, const struct emu_insn *ei);
/* CLFLUSH, CLFLUSHOPT, CLWB. */
enum x86_emu_result emu_cache_flush(struct x86_emu *emu, const struct emu_insn *ei);
/* CMPXCHG8B, CMPXCHG16B: atomic against the other vCPUs. */
enum x86_emu_result emu_cmpxchg_wide(struct x86_emu *emu, const struct emu_insn *ei);

/* emulate_fpu.c: FXSAVE/FXRSTOR and the XSAVE family (all their forms), 64-bit mode at CPL0. */
enum x86_emu_result emu_state_save_restore(struct x86_emu *emu, const struct emu_insn *ei);

/* emulate_unicorn.c */
/*
 * Load libunicorn into emu->uc_lib (dlopen, RTLD_NOW | RTLD_LOCAL) unless loaded. Returns 0, or -ENOENT
 * with emu->error saying why (library missing, or a function missing from it).
 */
int emu_uc_lib_load(struct x86_emu *emu) __attribute__((warn_unused_result));
/* Close the engine and drop this emulator's reference to the library. */
void emu_uc_lib_release(struct x86_emu *emu);
/*
 * Create the Unicorn engine in emu->uc with its hooks, loading the library first if needed. Returns 0,
 * -ENOENT (library, see emu_uc_lib_load) or -ENOMEM, with emu->uc NULL on failure.
 */
int emu_uc_open(struct x86_emu *emu) __attribute__((warn_unused_result));
/* Run `ei` (64-bit mode, CPL0) as one instruction in Unicorn, or refuse it. */
enum x86_emu_result emu_unicorn(struct x86_emu *emu, const struct emu_insn *ei);

#endif
