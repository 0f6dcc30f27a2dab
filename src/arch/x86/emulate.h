/* SPDX-License-Identifier: MIT */
/*
 * x86 instruction emulation for what the host's KVM refuses.
 *
 * On PVM hosts (KVM without VT-x) guest kernel code is emulated by the host kernel, whose emulator
 * rejects some instructions with KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION
 * (cmpxchg16b, xrstor, int3, clac/stac, popcnt, fwait, ldmxcsr, SSE moves, ...). kiln executes such an
 * instruction itself: decode (Zydis), then either a dedicated handler (int3, clac/stac, fwait) or a
 * general CPU emulator (Unicorn) that runs exactly one instruction over the vCPU's registers and the
 * guest pages the instruction touches, mapped zero-copy from guest RAM.
 *
 * The emulator knows nothing of KVM file descriptors: the caller passes a snapshot of the vCPU state
 * and memory callbacks, and writes the state back when x86_emu_step() returns 0. That keeps it
 * testable without /dev/kvm (tests/unit/test_emulate.c).
 */
#ifndef KILN_ARCH_X86_EMULATE_H
#define KILN_ARCH_X86_EMULATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Architectural state the emulator reads and may change. */
struct x86_emu_cpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu; /* x87/SSE state: xmm[16][16], mxcsr, fpr, fcw, fsw, ftwx... */
	bool regs_dirty;    /* set by the emulator when regs must be written back (KVM_SET_REGS) */
	bool sregs_dirty;   /* ... KVM_SET_SREGS */
	bool fpu_dirty;     /* ... KVM_SET_FPU */

	/*
	 * An exception the caller must inject (KVM_SET_VCPU_EVENTS) after writing the state back. Outputs:
	 * x86_emu_step() clears them on entry (the *_dirty flags it only ever sets).
	 */
	bool exception_pending;
	uint8_t exception_vector;
	bool exception_has_error_code;
	uint32_t exception_error_code;

	/*
	 * Guest XCR0 (KVM_GET_XCRS), read by the XSAVE family only; 0 when the caller does not know it. Then only
	 * requests for x87/SSE alone (EDX:EAX & ~3 == 0) are served, XCR0 being assumed to enable both; others
	 * are UNSUPPORTED. Components beyond x87/SSE (AVX...) are always UNSUPPORTED: kvm_fpu cannot hold them.
	 */
	uint64_t xcr0;
};

/* Guest memory access as the emulated instruction sees it. */
struct x86_emu_mem_ops {
	/*
	 * Translate guest virtual address `gva` through the guest's current page tables
	 * (KVM_TRANSLATE). Returns 0 and sets *gpa, or -EFAULT when not mapped.
	 * *writeable is set when the mapping allows writes.
	 */
	int (*translate)(void *opaque, uint64_t gva, uint64_t *gpa, bool *writeable);
	/*
	 * Host address of guest physical range [gpa, gpa+len) when it is guest RAM, else NULL.
	 * The emulator never asks for a range crossing a 4 KiB page boundary.
	 */
	void *(*gpa_to_hva)(void *opaque, uint64_t gpa, size_t len);
	/*
	 * Optional (NULL: nobody tracks writes): the emulator has just stored into guest physical range
	 * [gpa, gpa+len) through a host address gpa_to_hva gave (guest_memory_mark_written). The range never
	 * crosses a 4 KiB page; for a page Unicorn wrote, it is the whole page.
	 */
	void (*written)(void *opaque, uint64_t gpa, size_t len);
	void *opaque;
};

/* Counts per instruction kind, for `kiln run --verbose`. */
#define X86_EMU_MAX_KINDS 64
struct x86_emu_stats {
	unsigned int nr_kinds;
	struct {
		char mnemonic[24]; /* lower-case mnemonic as Zydis prints it, e.g. "ldmxcsr" */
		uint64_t count;
	} kinds[X86_EMU_MAX_KINDS];
	uint64_t other; /* emulated instructions beyond X86_EMU_MAX_KINDS distinct kinds */
};

struct x86_emu; /* opaque: decoder + emulator engine, one per vCPU (not thread-safe) */

/* Create one emulator (per vCPU). Returns NULL with errno set on failure. */
struct x86_emu *x86_emu_create(void);
void x86_emu_destroy(struct x86_emu *emu);

/*
 * Map Unicorn (libunicorn.so.2) into the process now, for good (RTLD_NODELETE), so that an emulator's
 * first Unicorn instruction later finds it loaded and opens no file: what a process calls before a
 * sandbox forbids opening files (PVM hosts only: elsewhere the host never refuses an instruction).
 * Costs ~4 ms and ~6 MiB of RSS on the development host (docs/design.md, "The VMM process: libraries
 * and start-up"). Returns 0, or -ENOENT with dlerror()'s reason in `err` (`err_size` bytes).
 */
int x86_emu_preload(char *err, size_t err_size) __attribute__((warn_unused_result));

enum x86_emu_result {
	X86_EMU_OK = 0,          /* instruction executed (or an exception queued); write the state back */
	X86_EMU_UNSUPPORTED = 1, /* the emulator does not handle this instruction: the caller ends the VM */
};

/*
 * Execute the instruction at cpu->regs.rip (guest virtual, in the mode given by cpu->sregs).
 * `insn`/`insn_len` are the instruction bytes when KVM reported them (KVM_INTERNAL_ERROR_EMULATION
 * with KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES); pass NULL/0 to have them fetched
 * through `mem`. On success advances rip, updates registers, flags, FPU/SSE state and guest memory,
 * sets the *_dirty flags, and counts the kind in `stats` (may be NULL).
 * A guest memory operand that is not mapped queues #PF (vector 14, error code per Intel SDM 4.7,
 * CR2 is set in cpu->sregs.cr2) instead of failing.
 * Returns X86_EMU_OK or X86_EMU_UNSUPPORTED; never aborts on any input.
 */
enum x86_emu_result x86_emu_step(struct x86_emu *emu, struct x86_emu_cpu *cpu, const struct x86_emu_mem_ops *mem,
				 const uint8_t *insn, size_t insn_len, struct x86_emu_stats *stats)
	__attribute__((warn_unused_result));

/*
 * Why the last x86_emu_step() returned X86_EMU_UNSUPPORTED (a static string, for the error message that
 * ends the VM), or "no error".
 */
const char *x86_emu_strerror(const struct x86_emu *emu);

/*
 * Disassemble the instruction bytes `insn` (64-bit mode when `long_mode`) into `buf`
 * ("ldmxcsr dword ptr [rsp+0x4]"). Returns the instruction length, or 0 when undecodable
 * (then buf holds "(bad)").
 */
size_t x86_emu_disasm(const uint8_t *insn, size_t insn_len, bool long_mode, uint64_t rip, char *buf, size_t size);

#endif
