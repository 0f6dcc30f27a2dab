// SPDX-License-Identifier: MIT
/*
 * Unit tests of the x86 instruction emulator (src/arch/x86/emulate.c) over a fake guest: 64 KiB of
 * "guest RAM" identity-mapped at GVA 0 (and again at KERNEL_BASE), one read-only page, one MMIO page,
 * everything else unmapped. Each test places instruction bytes at rip, steps once and checks the exact effect.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/emulate.h"

#define RAM_SIZE 0x10000ull
#define KERNEL_BASE 0xffffffff81000000ull /* second mapping of the RAM, like the kernel text mapping */
#define RO_PAGE 0x6000ull                 /* translate() reports this page read-only */
#define MMIO_GVA 0x40000ull               /* translates to a GPA that is not RAM */
#define MMIO_GPA 0xfee00000ull
#define UNMAPPED 0x200000ull

#define CODE 0x1000ull
#define DATA 0x3000ull
#define STACK_TOP 0x9000ull

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define RFLAGS_CF (1ull << 0)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_AC (1ull << 18)

struct fixture {
	struct x86_emu *emu;
	uint8_t *ram;
	uint64_t remap_from; /* when set, GVA page remap_from translates to GPA page remap_to */
	uint64_t remap_to;
	bool ro_enabled;
	struct x86_emu_mem_ops mem;
	struct x86_emu_cpu cpu;
	struct x86_emu_stats stats;
};

static int fake_translate(void *opaque, uint64_t gva, uint64_t *gpa, bool *writeable)
{
	struct fixture *f = opaque;

	if (f->remap_from && gva == f->remap_from) {
		*gpa = f->remap_to;
		*writeable = true;
		return 0;
	}
	if (gva >= KERNEL_BASE && gva - KERNEL_BASE < RAM_SIZE)
		gva -= KERNEL_BASE;
	if (gva < RAM_SIZE) {
		*gpa = gva;
		*writeable = !(f->ro_enabled && (gva & ~0xfffull) == RO_PAGE);
		return 0;
	}
	if ((gva & ~0xfffull) == MMIO_GVA) {
		*gpa = MMIO_GPA + (gva & 0xfff);
		*writeable = true;
		return 0;
	}
	return -14; /* -EFAULT */
}

static void *fake_gpa_to_hva(void *opaque, uint64_t gpa, size_t len)
{
	struct fixture *f = opaque;

	/* The contract: never a range crossing a 4 KiB page. */
	assert_true(len <= 4096 && (gpa & ~0xfffull) == ((gpa + len - 1) & ~0xfffull));
	if (gpa + len <= RAM_SIZE)
		return f->ram + gpa;
	return NULL;
}

static void cpu_reset_outputs(struct x86_emu_cpu *cpu)
{
	cpu->regs_dirty = false;
	cpu->sregs_dirty = false;
	cpu->fpu_dirty = false;
	cpu->exception_pending = false;
	cpu->exception_vector = 0;
	cpu->exception_has_error_code = false;
	cpu->exception_error_code = 0;
}

/* A 64-bit kernel: CS.L, CPL0, paging in long mode, SSE enabled, FPU in its FNINIT state. */
static void cpu_init64(struct x86_emu_cpu *cpu, uint64_t rip)
{
	memset(cpu, 0, sizeof(*cpu));
	cpu->regs.rip = rip;
	cpu->regs.rflags = 0x2;
	cpu->regs.rsp = STACK_TOP;
	cpu->sregs.cs = (struct kvm_segment){ .selector = 0x10, .type = 11, .present = 1, .dpl = 0, .s = 1, .l = 1 };
	cpu->sregs.ds = (struct kvm_segment){ .selector = 0x18, .type = 3, .present = 1, .s = 1, .db = 1 };
	cpu->sregs.ss = cpu->sregs.ds;
	cpu->sregs.es = cpu->sregs.ds;
	cpu->sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	cpu->sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	cpu->sregs.efer = EFER_LME | EFER_LMA | EFER_NXE;
	cpu->fpu.fcw = 0x37f;
	cpu->fpu.mxcsr = 0x1f80;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0, RAM_SIZE);
	f->emu = x86_emu_create();
	assert_non_null(f->emu);
	f->mem = (struct x86_emu_mem_ops){ .translate = fake_translate, .gpa_to_hva = fake_gpa_to_hva, .opaque = f };
	cpu_init64(&f->cpu, CODE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	x86_emu_destroy(f->emu);
	free(f->ram);
	free(f);
	return 0;
}

/* Place `bytes` at the current rip (in RAM) and step, fetching through the fake page tables. */
static enum x86_emu_result step_mem(struct fixture *f, const uint8_t *bytes, size_t len)
{
	uint64_t rip = f->cpu.regs.rip;

	if (rip >= KERNEL_BASE)
		rip -= KERNEL_BASE;
	if (rip + len <= RAM_SIZE)
		memcpy(f->ram + rip, bytes, len);
	cpu_reset_outputs(&f->cpu);
	return x86_emu_step(f->emu, &f->cpu, &f->mem, NULL, 0, &f->stats);
}

/* The same, also passing the bytes as KVM reports them. */
static enum x86_emu_result step_insn(struct fixture *f, const uint8_t *bytes, size_t len)
{
	uint64_t rip = f->cpu.regs.rip;

	if (rip + len <= RAM_SIZE)
		memcpy(f->ram + rip, bytes, len);
	cpu_reset_outputs(&f->cpu);
	return x86_emu_step(f->emu, &f->cpu, &f->mem, bytes, len, &f->stats);
}

#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })
#define STEP(f, ...) step_mem(f, BYTES(__VA_ARGS__))
#define STEP_INSN(f, ...) step_insn(f, BYTES(__VA_ARGS__))

static void assert_no_exception(const struct x86_emu_cpu *cpu)
{
	assert_false(cpu->exception_pending);
}

static void assert_exception(const struct x86_emu_cpu *cpu, uint8_t vector, bool has_ec, uint32_t ec)
{
	assert_true(cpu->exception_pending);
	assert_int_equal(cpu->exception_vector, vector);
	assert_int_equal(cpu->exception_has_error_code, has_ec);
	if (has_ec)
		assert_int_equal(cpu->exception_error_code, ec);
}

static uint64_t load64(const struct fixture *f, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, f->ram + gpa, 8);
	return v;
}

static void store64(struct fixture *f, uint64_t gpa, uint64_t v)
{
	memcpy(f->ram + gpa, &v, 8);
}

static uint64_t xmm_q(const struct x86_emu_cpu *cpu, int reg, int half)
{
	uint64_t v;

	memcpy(&v, cpu->fpu.xmm[reg] + 8 * half, 8);
	return v;
}

static void set_xmm(struct x86_emu_cpu *cpu, int reg, uint64_t lo, uint64_t hi)
{
	memcpy(cpu->fpu.xmm[reg], &lo, 8);
	memcpy(cpu->fpu.xmm[reg] + 8, &hi, 8);
}

/* ---- dedicated handlers ---- */

static void test_int3(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(STEP(f, 0xcc), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 1);
	assert_exception(&f->cpu, 3, false, 0);
	assert_true(f->cpu.regs_dirty);
	assert_false(f->cpu.fpu_dirty);
	assert_false(f->cpu.sregs_dirty);
}

static void test_clac_stac(void **state)
{
	struct fixture *f = *state;

	f->cpu.regs.rflags |= RFLAGS_AC;
	assert_int_equal(STEP(f, 0x0f, 0x01, 0xca), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 3);
	assert_false(f->cpu.regs.rflags & RFLAGS_AC);
	assert_int_equal(f->cpu.regs.rflags, 0x2);
	assert_no_exception(&f->cpu);
	assert_true(f->cpu.regs_dirty);

	assert_int_equal(STEP(f, 0x0f, 0x01, 0xcb), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 6);
	assert_true(f->cpu.regs.rflags & RFLAGS_AC);
	assert_no_exception(&f->cpu);

	/* #UD outside CPL0, rip unchanged. */
	f->cpu.sregs.cs.selector = 0x33;
	f->cpu.sregs.cs.dpl = 3;
	assert_int_equal(STEP(f, 0x0f, 0x01, 0xcb), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 6);
	assert_exception(&f->cpu, 6, false, 0);
}

static void test_fwait(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(STEP(f, 0x9b), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 1);
	assert_no_exception(&f->cpu);
	assert_false(f->cpu.fpu_dirty);

	/* FWAIT with CR0.MP and CR0.TS raises #NM. */
	f->cpu.sregs.cr0 |= CR0_TS;
	assert_int_equal(STEP(f, 0x9b), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 1);
	assert_exception(&f->cpu, 7, false, 0);
}

/* ---- directly implemented ---- */

static void test_popcnt(void **state)
{
	struct fixture *f = *state;

	/* popcnt rax, rcx */
	f->cpu.regs.rcx = 0xff00ff00000000f1ull;
	f->cpu.regs.rflags = 0x2 | RFLAGS_CF | RFLAGS_ZF;
	assert_int_equal(STEP(f, 0xf3, 0x48, 0x0f, 0xb8, 0xc1), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 21);
	assert_int_equal(f->cpu.regs.rflags, 0x2); /* ZF clear, CF cleared */
	assert_int_equal(f->cpu.regs.rip, CODE + 5);
	assert_no_exception(&f->cpu);

	/* popcnt eax, dword [rdi]: zero source sets ZF, the 32-bit write zero-extends. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rax = 0xdeadbeefdeadbeefull;
	f->cpu.regs.rdi = DATA;
	store64(f, DATA, 0xffffffff00000000ull);
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0xb8, 0x07), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 0);
	assert_int_equal(f->cpu.regs.rflags, 0x2 | RFLAGS_ZF);
	assert_int_equal(f->cpu.regs.rip, CODE + 4);

	/* popcnt cx, word [rdi+4]: 16-bit write merges. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rcx = 0x1111111111111111ull;
	assert_int_equal(STEP(f, 0x66, 0xf3, 0x0f, 0xb8, 0x4f, 0x04), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rcx, 0x1111111111110010ull);
}

/* lock cmpxchg16b [rdi] on memory hi:lo, RDX:RAX expecting 0x2222:0x1111 and RCX:RBX offering 0xbbbb:0xaaaa. */
static void cmpxchg16b_step(struct fixture *f, uint64_t lo, uint64_t hi)
{
	store64(f, DATA, lo);
	store64(f, DATA + 8, hi);
	f->cpu.regs.rdi = DATA;
	f->cpu.regs.rax = 0x1111;
	f->cpu.regs.rdx = 0x2222;
	f->cpu.regs.rbx = 0xaaaa;
	f->cpu.regs.rcx = 0xbbbb;
	assert_int_equal(STEP(f, 0xf0, 0x48, 0x0f, 0xc7, 0x0f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
}

static void test_cmpxchg16b_success(void **state)
{
	struct fixture *f = *state;

	cmpxchg16b_step(f, 0x1111, 0x2222);
	assert_int_equal(load64(f, DATA), 0xaaaa);
	assert_int_equal(load64(f, DATA + 8), 0xbbbb);
	assert_int_equal(f->cpu.regs.rax, 0x1111);
	assert_int_equal(f->cpu.regs.rdx, 0x2222);
	assert_true(f->cpu.regs.rflags & RFLAGS_ZF);
	assert_int_equal(f->cpu.regs.rip, CODE + 5);
}

static void test_cmpxchg16b_failure(void **state)
{
	struct fixture *f = *state;

	f->cpu.regs.rflags |= RFLAGS_ZF | RFLAGS_CF;
	cmpxchg16b_step(f, 0x1234, 0x5678);
	assert_int_equal(load64(f, DATA), 0x1234);
	assert_int_equal(load64(f, DATA + 8), 0x5678);
	assert_int_equal(f->cpu.regs.rax, 0x1234);
	assert_int_equal(f->cpu.regs.rdx, 0x5678);
	assert_false(f->cpu.regs.rflags & RFLAGS_ZF);
	assert_true(f->cpu.regs.rflags & RFLAGS_CF); /* other flags unchanged */

	/* Misaligned: #GP(0), nothing changes. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rdi = DATA + 8;
	assert_int_equal(STEP(f, 0xf0, 0x48, 0x0f, 0xc7, 0x0f), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	assert_int_equal(f->cpu.regs.rip, CODE);

	/* cmpxchg8b [rdi] (failure): EDX:EAX gets memory, upper halves cleared. */
	f->cpu.regs.rdi = DATA;
	f->cpu.regs.rax = 0xffffffff00000000ull;
	f->cpu.regs.rdx = 0xffffffff00000000ull;
	assert_int_equal(STEP(f, 0xf0, 0x0f, 0xc7, 0x0f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.regs.rax, 0x1234);
	assert_int_equal(f->cpu.regs.rdx, 0);
	assert_false(f->cpu.regs.rflags & RFLAGS_ZF);
	/* ... then success. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rbx = 0x77;
	f->cpu.regs.rcx = 0x88;
	assert_int_equal(STEP(f, 0xf0, 0x0f, 0xc7, 0x0f), X86_EMU_OK);
	assert_true(f->cpu.regs.rflags & RFLAGS_ZF);
	assert_int_equal(load64(f, DATA), 0x0000008800000077ull);
}

static void test_movbe_pclmulqdq(void **state)
{
	struct fixture *f = *state;

	/* movbe rax, [rdi] */
	store64(f, DATA, 0x0102030405060708ull);
	f->cpu.regs.rdi = DATA;
	assert_int_equal(STEP(f, 0x48, 0x0f, 0x38, 0xf0, 0x07), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 0x0807060504030201ull);
	/* movbe [rdi+8], eax */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x38, 0xf1, 0x47, 0x08), X86_EMU_OK);
	assert_int_equal(load64(f, DATA + 8) & 0xffffffff, 0x01020304);

	/* pclmulqdq xmm0, xmm1, 0x11: high qwords; (x+1)*(x+1) = x^2+1 carry-less. */
	f->cpu.regs.rip = CODE;
	set_xmm(&f->cpu, 0, 0xdead, 3);
	set_xmm(&f->cpu, 1, 0xbeef, 3);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0x3a, 0x44, 0xc1, 0x11), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 0, 0), 5);
	assert_int_equal(xmm_q(&f->cpu, 0, 1), 0);
	assert_true(f->cpu.fpu_dirty);
	/* pclmulqdq xmm0, [rdi], 0x00 with a high bit: 2^63 * 2 = 2^64. */
	f->cpu.regs.rip = CODE;
	set_xmm(&f->cpu, 0, 1ull << 63, 0);
	store64(f, DATA, 2);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0x3a, 0x44, 0x07, 0x00), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 0, 0), 0);
	assert_int_equal(xmm_q(&f->cpu, 0, 1), 1);
}

/* ---- through Unicorn ---- */

static void test_ldmxcsr_stmxcsr(void **state)
{
	struct fixture *f = *state;
	uint32_t v = 0x1fa0, got;

	/* ldmxcsr [rdi] */
	memcpy(f->ram + DATA, &v, 4);
	f->cpu.regs.rdi = DATA;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x17), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x1fa0);
	assert_true(f->cpu.fpu_dirty);
	assert_int_equal(f->cpu.regs.rip, CODE + 3);

	/* stmxcsr [rdi+4] */
	f->cpu.regs.rip = CODE;
	f->cpu.fpu.mxcsr = 0x9fc0;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x5f, 0x04), X86_EMU_OK);
	memcpy(&got, f->ram + DATA + 4, 4);
	assert_int_equal(got, 0x9fc0);
	assert_false(f->cpu.fpu_dirty);

	/* ldmxcsr with a reserved bit: #GP(0), MXCSR unchanged. */
	f->cpu.regs.rip = CODE;
	v = 0x1f80 | (1u << 20);
	memcpy(f->ram + DATA, &v, 4);
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x17), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x9fc0);
	assert_int_equal(f->cpu.regs.rip, CODE);

	/* With CR0.TS: #NM (Unicorn 2.0.1 itself ignores TS). */
	f->cpu.sregs.cr0 |= CR0_TS;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x17), X86_EMU_OK);
	assert_exception(&f->cpu, 7, false, 0);
}

static void test_movd_xmm15(void **state)
{
	struct fixture *f = *state;

	/* movd xmm15, ecx: the bytes Linux's blake2s hit (66 44 0f 6e f9), passed as KVM reports them. */
	f->cpu.regs.rcx = 0xffffffff12345678ull;
	set_xmm(&f->cpu, 15, ~0ull, ~0ull);
	assert_int_equal(STEP_INSN(f, 0x66, 0x44, 0x0f, 0x6e, 0xf9), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(xmm_q(&f->cpu, 15, 0), 0x12345678);
	assert_int_equal(xmm_q(&f->cpu, 15, 1), 0);
	assert_int_equal(f->cpu.regs.rip, CODE + 5);
	assert_true(f->cpu.fpu_dirty);
	assert_true(f->cpu.regs_dirty);
	assert_false(f->cpu.sregs_dirty);
}

static void test_sse_moves(void **state)
{
	struct fixture *f = *state;

	f->cpu.regs.rdi = DATA;
	store64(f, DATA, 0x1111111111111111ull);
	store64(f, DATA + 8, 0x2222222222222222ull);

	/* movq xmm0, [rdi]: upper half zeroed */
	set_xmm(&f->cpu, 0, ~0ull, ~0ull);
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x7e, 0x07), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 0, 0), 0x1111111111111111ull);
	assert_int_equal(xmm_q(&f->cpu, 0, 1), 0);
	/* movq [rdi+16], xmm1 */
	f->cpu.regs.rip = CODE;
	set_xmm(&f->cpu, 1, 0xabcdef, 0x99);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0xd6, 0x4f, 0x10), X86_EMU_OK);
	assert_int_equal(load64(f, DATA + 16), 0xabcdef);
	assert_int_equal(load64(f, DATA + 24), 0);
	/* movdqa xmm2, [rdi] */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x66, 0x0f, 0x6f, 0x17), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 2, 0), 0x1111111111111111ull);
	assert_int_equal(xmm_q(&f->cpu, 2, 1), 0x2222222222222222ull);
	/* movdqu [rdi+0x21], xmm2 (unaligned) */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x7f, 0x57, 0x21), X86_EMU_OK);
	assert_int_equal(load64(f, DATA + 0x21), 0x1111111111111111ull);
	assert_int_equal(load64(f, DATA + 0x29), 0x2222222222222222ull);
	/* movaps xmm3, xmm2 */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x28, 0xda), X86_EMU_OK);
	assert_memory_equal(f->cpu.fpu.xmm[3], f->cpu.fpu.xmm[2], 16);
	/* movups xmm4, [rdi+0x21] */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x10, 0x67, 0x21), X86_EMU_OK);
	assert_memory_equal(f->cpu.fpu.xmm[4], f->cpu.fpu.xmm[2], 16);
	/* movaps [rdi+0x40], xmm4 */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x29, 0x67, 0x40), X86_EMU_OK);
	assert_memory_equal(f->ram + DATA + 0x40, f->cpu.fpu.xmm[4], 16);
	/* movq rax, xmm4 (66 48 0f 7e e0) */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x66, 0x48, 0x0f, 0x7e, 0xe0), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 0x1111111111111111ull);
	assert_no_exception(&f->cpu);
}

static void test_sse_alu(void **state)
{
	struct fixture *f = *state;
	uint8_t idx[16], want[16];
	int i;

	/* pxor xmm0, xmm1 */
	set_xmm(&f->cpu, 0, 0xff00ff00ff00ff00ull, 0x1);
	set_xmm(&f->cpu, 1, 0x0ff00ff00ff00ff0ull, 0x3);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0xef, 0xc1), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 0, 0), 0xf0f0f0f0f0f0f0f0ull);
	assert_int_equal(xmm_q(&f->cpu, 0, 1), 0x2);
	/* paddd xmm0, xmm1: per-dword wrap-around */
	f->cpu.regs.rip = CODE;
	set_xmm(&f->cpu, 0, 0xffffffff00000001ull, 0x0000000500000007ull);
	set_xmm(&f->cpu, 1, 0x0000000200000002ull, 0x0000000100000001ull);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0xfe, 0xc1), X86_EMU_OK);
	assert_int_equal(xmm_q(&f->cpu, 0, 0), 0x0000000100000003ull);
	assert_int_equal(xmm_q(&f->cpu, 0, 1), 0x0000000600000008ull);
	/* pshufb xmm0, xmm1 (SSSE3): reverse the bytes */
	f->cpu.regs.rip = CODE;
	for (i = 0; i < 16; i++) {
		f->cpu.fpu.xmm[0][i] = (uint8_t)(0x10 + i);
		idx[i] = (uint8_t)(15 - i);
		want[i] = (uint8_t)(0x10 + 15 - i);
	}
	memcpy(f->cpu.fpu.xmm[1], idx, 16);
	assert_int_equal(STEP(f, 0x66, 0x0f, 0x38, 0x00, 0xc1), X86_EMU_OK);
	assert_memory_equal(f->cpu.fpu.xmm[0], want, 16);
	assert_no_exception(&f->cpu);
}

/* A preloaded Unicorn stays mapped, and the next emulator's Unicorn instruction uses it. */
static void test_preload_then_unicorn(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	assert_int_equal(x86_emu_preload(err, sizeof(err)), 0);
	assert_int_equal(x86_emu_preload(err, sizeof(err)), 0);
	assert_non_null(dlopen("libunicorn.so.2", RTLD_NOW | RTLD_NOLOAD));
	assert_int_equal(STEP(f, 0xd9, 0xe8), X86_EMU_OK); /* fld1: Unicorn's */
	assert_true(f->cpu.fpu_dirty);
}

static void test_x87_via_unicorn(void **state)
{
	struct fixture *f = *state;
	double d;

	/* fld1 then fstp qword [rdi]: the x87 stack round trip through Unicorn. */
	assert_int_equal(STEP(f, 0xd9, 0xe8), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_true(f->cpu.fpu_dirty);
	assert_int_equal((f->cpu.fpu.fsw >> 11) & 7, 7); /* TOP decremented */
	assert_int_equal(f->cpu.fpu.ftwx, 0x80);        /* physical register 7 valid */
	assert_int_equal(f->cpu.fpu.fpr[0][9], 0x3f);   /* ST0 = 1.0: exponent 3FFFh */
	assert_int_equal(f->cpu.fpu.fpr[0][7], 0x80);
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rdi = DATA;
	assert_int_equal(STEP(f, 0xdd, 0x1f), X86_EMU_OK);
	memcpy(&d, f->ram + DATA, 8);
	assert_true(d == 1.0);
	assert_int_equal((f->cpu.fpu.fsw >> 11) & 7, 0);
	assert_int_equal(f->cpu.fpu.ftwx, 0);
}

static void test_fxsave_fxrstor(void **state)
{
	struct fixture *f = *state;
	uint32_t mxcsr;
	uint16_t fcw;
	int i;

	for (i = 0; i < 16; i++)
		set_xmm(&f->cpu, i, 0x100 + i, 0x200 + i);
	f->cpu.fpu.mxcsr = 0x1fc0;
	f->cpu.fpu.fcw = 0x27f;
	f->cpu.fpu.ftwx = 0x81;
	f->cpu.fpu.fpr[0][9] = 0x40;
	f->cpu.fpu.last_ip = 0xffffffff81234567ull;
	f->cpu.regs.rdi = DATA;
	/* fxsave64 [rdi] */
	assert_int_equal(STEP(f, 0x48, 0x0f, 0xae, 0x07), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_false(f->cpu.fpu_dirty);
	memcpy(&fcw, f->ram + DATA, 2);
	assert_int_equal(fcw, 0x27f);
	assert_int_equal(f->ram[DATA + 4], 0x81);
	assert_int_equal(load64(f, DATA + 8), 0xffffffff81234567ull);
	memcpy(&mxcsr, f->ram + DATA + 24, 4);
	assert_int_equal(mxcsr, 0x1fc0);
	assert_int_equal(f->ram[DATA + 32 + 9], 0x40);
	assert_memory_equal(f->ram + DATA + 160, f->cpu.fpu.xmm, 256);

	/* Clobber the state, then fxrstor64 [rdi] brings it back. */
	memset(f->cpu.fpu.xmm, 0, sizeof(f->cpu.fpu.xmm));
	f->cpu.fpu.mxcsr = 0x1f80;
	f->cpu.fpu.fcw = 0x37f;
	f->cpu.fpu.ftwx = 0;
	f->cpu.fpu.fpr[0][9] = 0;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x48, 0x0f, 0xae, 0x0f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_true(f->cpu.fpu_dirty);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x1fc0);
	assert_int_equal(f->cpu.fpu.fcw, 0x27f);
	assert_int_equal(f->cpu.fpu.ftwx, 0x81);
	assert_int_equal(f->cpu.fpu.fpr[0][9], 0x40);
	assert_int_equal(xmm_q(&f->cpu, 7, 1), 0x207);

	/* fxsave [rdi+8]: misaligned, #GP(0). */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x47, 0x08), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	assert_int_equal(f->cpu.regs.rip, CODE);
}

static void test_xsave_xrstor(void **state)
{
	struct fixture *f = *state;
	uint64_t area = DATA + 0x200; /* 64-byte aligned */
	uint32_t mxcsr;
	int i;

	f->cpu.sregs.cr4 |= CR4_OSXSAVE;
	f->cpu.xcr0 = 3;
	f->cpu.regs.rdi = area;
	f->cpu.regs.rax = ~0ull; /* Linux passes all ones: RFBM = XCR0 */
	f->cpu.regs.rdx = ~0ull;
	for (i = 0; i < 16; i++)
		set_xmm(&f->cpu, i, 0x1000 + i, 0x2000 + i);
	f->cpu.fpu.mxcsr = 0x1fa0;
	store64(f, area + 512, 0x4);     /* XSTATE_BV bit 2 must survive (not in RFBM) */
	store64(f, area + 520, 0);

	/* xsave [rdi] */
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x27), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.regs.rip, CODE + 3);
	assert_int_equal(load64(f, area + 512), 0x7);
	memcpy(&mxcsr, f->ram + area + 24, 4);
	assert_int_equal(mxcsr, 0x1fa0);
	assert_memory_equal(f->ram + area + 160, f->cpu.fpu.xmm, 256);

	/* xrstor [rdi] from a modified image. */
	store64(f, area + 512, 0x3);
	store64(f, area + 160 + 16 * 5, 0x5555);
	memset(f->cpu.fpu.xmm, 0, sizeof(f->cpu.fpu.xmm));
	f->cpu.fpu.mxcsr = 0x1f80;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_true(f->cpu.fpu_dirty);
	assert_int_equal(xmm_q(&f->cpu, 5, 0), 0x5555);
	assert_int_equal(xmm_q(&f->cpu, 9, 1), 0x2009);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x1fa0);

	/* XSTATE_BV = 0: x87 and XMM go to their initial state; the standard form still loads MXCSR. */
	store64(f, area + 512, 0);
	f->cpu.fpu.fcw = 0x27f;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(xmm_q(&f->cpu, 5, 0), 0);
	assert_int_equal(f->cpu.fpu.fcw, 0x37f);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x1fa0);

	/* Reserved header bytes (standard form): #GP(0). */
	store64(f, area + 528, 1);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	store64(f, area + 528, 0);

	/* xsavec [rdi]: compacted header. */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xc7, 0x27), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(load64(f, area + 512), 0x3);
	assert_int_equal(load64(f, area + 520), 0x8000000000000003ull);
	/* ... and xrstor of the compacted image */
	f->cpu.regs.rip = CODE;
	f->cpu.fpu.mxcsr = 0x1f80;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.fpu.mxcsr, 0x1fa0);

	/* Misaligned: #GP(0). */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rdi = area + 16;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x27), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	f->cpu.regs.rdi = area;

	/* XCR0 with AVX and a request for it: not modelled. */
	f->cpu.xcr0 = 7;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_UNSUPPORTED);
	assert_non_null(strstr(x86_emu_strerror(f->emu), "beyond x87/SSE"));
	/* ... but a request for x87|SSE only is fine. */
	f->cpu.regs.rax = 3;
	f->cpu.regs.rdx = 0;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x27), X86_EMU_OK);
	assert_no_exception(&f->cpu);

	/* XCR0 unknown (0): all-ones requests are undecidable, x87|SSE requests are served. */
	f->cpu.xcr0 = 0;
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rax = ~0ull;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_UNSUPPORTED);
	f->cpu.regs.rax = 3;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_no_exception(&f->cpu);

	/* CR4.OSXSAVE clear: #UD. */
	f->cpu.sregs.cr4 &= ~CR4_OSXSAVE;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x2f), X86_EMU_OK);
	assert_exception(&f->cpu, 6, false, 0);
}

/* ---- faults ---- */

static void test_page_fault_unmapped(void **state)
{
	struct fixture *f = *state;
	struct x86_emu_cpu before;

	/* mov rax, [rdi] with rdi unmapped: #PF, CR2 = address, error code 0 (read, not present, supervisor). */
	f->cpu.regs.rdi = UNMAPPED + 0x18;
	f->cpu.regs.rax = 0x77;
	set_xmm(&f->cpu, 3, 1, 2);
	before = f->cpu;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0);
	assert_int_equal(f->cpu.sregs.cr2, UNMAPPED + 0x18);
	assert_true(f->cpu.sregs_dirty);
	assert_false(f->cpu.regs_dirty);
	assert_false(f->cpu.fpu_dirty);
	assert_memory_equal(&f->cpu.regs, &before.regs, sizeof(before.regs));
	assert_memory_equal(&f->cpu.fpu, &before.fpu, sizeof(before.fpu));
	before.sregs.cr2 = f->cpu.sregs.cr2;
	assert_memory_equal(&f->cpu.sregs, &before.sregs, sizeof(before.sregs));

	/* A write (movdqu [rdi], xmm3): W set. */
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x7f, 0x1f), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0x2);
	assert_int_equal(f->cpu.regs.rip, CODE);

	/* Through a direct handler (cmpxchg16b always writes). */
	f->cpu.regs.rdi = UNMAPPED;
	assert_int_equal(STEP(f, 0xf0, 0x48, 0x0f, 0xc7, 0x0f), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0x2);
	assert_int_equal(f->cpu.sregs.cr2, UNMAPPED);

	/* From user mode the U/S bit would be set; a read-only page gives P|W. */
	f->ro_enabled = true;
	f->cpu.regs.rdi = RO_PAGE + 8;
	assert_int_equal(STEP(f, 0x48, 0x89, 0x07), X86_EMU_OK); /* mov [rdi], rax */
	assert_exception(&f->cpu, 14, true, 0x3);
	assert_int_equal(f->cpu.sregs.cr2, RO_PAGE + 8);
	assert_int_equal(load64(f, RO_PAGE + 8), 0);
	/* ... unless CR0.WP is clear (supervisor writes ignore read-only pages). */
	f->cpu.sregs.cr0 &= ~CR0_WP;
	assert_int_equal(STEP(f, 0x48, 0x89, 0x07), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(load64(f, RO_PAGE + 8), 0x77);
}

static void test_page_fault_fetch(void **state)
{
	struct fixture *f = *state;

	/* rip on an unmapped page: #PF with I/D (EFER.NXE is set). */
	f->cpu.regs.rip = UNMAPPED + 0x10;
	assert_int_equal(STEP(f, 0x90), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0x10);
	assert_int_equal(f->cpu.sregs.cr2, UNMAPPED + 0x10);
	assert_int_equal(f->cpu.regs.rip, UNMAPPED + 0x10);

	/* An instruction running into an unmapped page faults at that page. */
	f->cpu.regs.rip = RAM_SIZE - 2;
	memcpy(f->ram + RAM_SIZE - 2, (const uint8_t[]){ 0x66, 0x0f }, 2);
	cpu_reset_outputs(&f->cpu);
	assert_int_equal(x86_emu_step(f->emu, &f->cpu, &f->mem, NULL, 0, NULL), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0x10);
	assert_int_equal(f->cpu.sregs.cr2, RAM_SIZE);
}

static void test_non_canonical(void **state)
{
	struct fixture *f = *state;

	f->cpu.regs.rdi = 0x0000900000000000ull;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_OK);
	assert_exception(&f->cpu, 13, true, 0);
	assert_int_equal(f->cpu.regs.rip, CODE);
}

static void test_cross_page(void **state)
{
	struct fixture *f = *state;
	int i;

	/* movdqu xmm0, [rdi] across pages 0x3000/0x4000 */
	for (i = 0; i < 16; i++)
		f->ram[DATA + 0xff8 + i] = (uint8_t)(0xa0 + i);
	f->cpu.regs.rdi = DATA + 0xff8;
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x6f, 0x07), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_memory_equal(f->cpu.fpu.xmm[0], f->ram + DATA + 0xff8, 16);
	/* and a store across the same boundary */
	f->cpu.regs.rip = CODE;
	set_xmm(&f->cpu, 1, 0x0102030405060708ull, 0x1112131415161718ull);
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x7f, 0x0f), X86_EMU_OK);
	assert_memory_equal(f->ram + DATA + 0xff8, f->cpu.fpu.xmm[1], 16);

	/* Crossing into an unmapped page: #PF at the page start, nothing written. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rdi = RAM_SIZE - 8;
	memset(f->ram + RAM_SIZE - 8, 0, 8);
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x7f, 0x0f), X86_EMU_OK);
	assert_exception(&f->cpu, 14, true, 0x2);
	assert_int_equal(f->cpu.sregs.cr2, RAM_SIZE);
	assert_int_equal(load64(f, RAM_SIZE - 8), 0);

	/* The instruction itself crossing a page boundary: movd xmm15, ecx at 0x1ffe. */
	f->cpu.regs.rip = 0x1ffe;
	f->cpu.regs.rcx = 0x42;
	assert_int_equal(STEP(f, 0x66, 0x44, 0x0f, 0x6e, 0xf9), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.regs.rip, 0x2003);
	assert_int_equal(xmm_q(&f->cpu, 15, 0), 0x42);
}

static void test_mmio_operand(void **state)
{
	struct fixture *f = *state;

	f->cpu.regs.rdi = MMIO_GVA + 0x30;
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x17), X86_EMU_UNSUPPORTED); /* ldmxcsr [rdi] */
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_UNSUPPORTED); /* mov rax, [rdi] */
	assert_int_equal(f->cpu.regs.rip, CODE);
	assert_false(f->cpu.regs_dirty);
}

/* ---- refusals ---- */

static void test_undecodable(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(STEP(f, 0x06), X86_EMU_UNSUPPORTED);            /* push es: invalid in 64-bit mode */
	assert_int_equal(STEP(f, 0xf0, 0x90), X86_EMU_UNSUPPORTED);      /* lock nop */
	assert_int_equal(STEP_INSN(f, 0xf0, 0x90), X86_EMU_UNSUPPORTED); /* the same, as KVM reports it */
	assert_int_equal(STEP(f, 0x0f, 0x04), X86_EMU_UNSUPPORTED);      /* no such opcode */
	assert_int_equal(f->cpu.regs.rip, CODE);
	assert_false(f->cpu.exception_pending);
}

static void test_truncated_insn_bytes(void **state)
{
	struct fixture *f = *state;
	const uint8_t reported[] = { 0x66, 0x44, 0x0f }; /* movd xmm15, ecx cut short */

	/* KVM reported fewer bytes than the instruction has: the rest comes from guest memory. */
	memcpy(f->ram + CODE, (const uint8_t[]){ 0x66, 0x44, 0x0f, 0x6e, 0xf9 }, 5);
	f->cpu.regs.rcx = 7;
	cpu_reset_outputs(&f->cpu);
	assert_int_equal(x86_emu_step(f->emu, &f->cpu, &f->mem, reported, sizeof(reported), NULL), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(xmm_q(&f->cpu, 15, 0), 7);
	assert_int_equal(f->cpu.regs.rip, CODE + 5);
}

static void test_mmx_and_misc(void **state)
{
	struct fixture *f = *state;
	uint64_t a = 0x0000000100000002ull, b = 0x0000000300000004ull, sum;

	/* paddd mm0, mm1 with TOP = 0: MM0/MM1 are ST0/ST1 in kvm_fpu. CR4.OSFXSR does not matter for MMX. */
	f->cpu.sregs.cr4 &= ~CR4_OSFXSR;
	memcpy(f->cpu.fpu.fpr[0], &a, 8);
	memcpy(f->cpu.fpu.fpr[1], &b, 8);
	assert_int_equal(STEP(f, 0x0f, 0xfe, 0xc1), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	memcpy(&sum, f->cpu.fpu.fpr[0], 8);
	assert_int_equal(sum, 0x0000000400000006ull);
	assert_int_equal(f->cpu.fpu.ftwx, 0xff); /* MMX marks all registers valid */
	assert_int_equal((f->cpu.fpu.fsw >> 11) & 7, 0);
	/* ... while SSE without CR4.OSFXSR is #UD */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x66, 0x0f, 0xef, 0xc1), X86_EMU_OK);
	assert_exception(&f->cpu, 6, false, 0);
	/* MMX with CR0.EM: #UD; with CR0.TS: #NM */
	f->cpu.sregs.cr0 |= 1ull << 2;
	assert_int_equal(STEP(f, 0x0f, 0xfe, 0xc1), X86_EMU_OK);
	assert_exception(&f->cpu, 6, false, 0);
	f->cpu.sregs.cr0 &= ~(1ull << 2);
	f->cpu.sregs.cr0 |= CR0_TS;
	assert_int_equal(STEP(f, 0x0f, 0xfe, 0xc1), X86_EMU_OK);
	assert_exception(&f->cpu, 7, false, 0);
	f->cpu.sregs.cr0 &= ~CR0_TS;

	/* endbr64 is a NOP */
	assert_int_equal(STEP(f, 0xf3, 0x0f, 0x1e, 0xfa), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 4);
	/* bts [rdi], rax with a bit offset that reaches the next page: only that page is accessed. */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rdi = DATA;
	f->cpu.regs.rax = 0x1000 * 8 + 3;
	assert_int_equal(STEP(f, 0x48, 0x0f, 0xab, 0x07), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->ram[DATA + 0x1000], 0x08);
}

static void test_privileged(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(STEP(f, 0x0f, 0x30), X86_EMU_UNSUPPORTED); /* wrmsr */
	assert_non_null(strstr(x86_emu_strerror(f->emu), "privileged"));
	assert_int_equal(STEP(f, 0x48, 0xcf), X86_EMU_UNSUPPORTED);       /* iretq */
	assert_int_equal(STEP(f, 0xf4), X86_EMU_UNSUPPORTED);             /* hlt */
	assert_int_equal(STEP(f, 0x0f, 0xa2), X86_EMU_UNSUPPORTED);       /* cpuid */
	assert_int_equal(STEP(f, 0x0f, 0x22, 0xd8), X86_EMU_UNSUPPORTED); /* mov cr3, rax */
	assert_int_equal(STEP(f, 0x0f, 0x31), X86_EMU_UNSUPPORTED);       /* rdtsc */
	assert_int_equal(STEP(f, 0xec), X86_EMU_UNSUPPORTED);             /* in al, dx */
	assert_int_equal(STEP(f, 0x0f, 0x05), X86_EMU_UNSUPPORTED);       /* syscall */
	assert_int_equal(STEP(f, 0xcd, 0x80), X86_EMU_UNSUPPORTED);       /* int 0x80 */
	assert_int_equal(STEP(f, 0xff, 0x1f), X86_EMU_UNSUPPORTED);       /* call far [rdi] */
	assert_int_equal(STEP(f, 0x8c, 0xd8), X86_EMU_UNSUPPORTED);       /* mov eax, ds */
	assert_int_equal(STEP(f, 0x0f, 0x01, 0x07), X86_EMU_UNSUPPORTED); /* sgdt [rdi] */
	assert_int_equal(STEP(f, 0x9c), X86_EMU_UNSUPPORTED);             /* pushfq */
	assert_int_equal(STEP(f, 0xfb), X86_EMU_UNSUPPORTED);             /* sti */
	assert_int_equal(STEP(f, 0x0f, 0x01, 0xd0), X86_EMU_UNSUPPORTED); /* xgetbv */
	f->cpu.regs.rdi = DATA;
	assert_int_equal(STEP(f, 0xf0, 0x48, 0x01, 0x07), X86_EMU_UNSUPPORTED); /* lock add [rdi], rax */
	assert_int_equal(STEP(f, 0x48, 0x87, 0x07), X86_EMU_UNSUPPORTED);       /* xchg [rdi], rax */
	assert_int_equal(STEP(f, 0xc5, 0xf9, 0xef, 0xc0), X86_EMU_UNSUPPORTED); /* vpxor xmm0, xmm0, xmm0 */
	assert_int_equal(STEP(f, 0x48, 0x0f, 0xc7, 0xf0), X86_EMU_UNSUPPORTED); /* rdrand rax */
	assert_int_equal(f->cpu.regs.rip, CODE);
	assert_false(f->cpu.regs_dirty);

	/* Guest single-stepping (RFLAGS.TF) is not modelled. */
	f->cpu.regs.rflags |= RFLAGS_TF;
	assert_int_equal(STEP(f, 0x90), X86_EMU_UNSUPPORTED);
}

static void test_mode_32bit(void **state)
{
	struct fixture *f = *state;

	/* Compatibility mode (CS.L = 0, CS.D = 1): only the dedicated handlers work. */
	f->cpu.sregs.cs.l = 0;
	f->cpu.sregs.cs.db = 1;
	assert_int_equal(STEP(f, 0x66, 0x0f, 0x6e, 0xf9), X86_EMU_UNSUPPORTED);
	assert_int_equal(STEP(f, 0x0f, 0xae, 0x17), X86_EMU_UNSUPPORTED);
	assert_int_equal(STEP(f, 0xcc), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 1);
	assert_exception(&f->cpu, 3, false, 0);
	/* Legacy protected mode, eip wraps at 4 GiB. */
	f->cpu.sregs.efer = 0;
	f->cpu.regs.rip = 0xfffffffdull;
	f->remap_from = 0xfffff000ull;
	f->remap_to = 0x5000;
	memcpy(f->ram + 0x5ffd, (const uint8_t[]){ 0x0f, 0x01, 0xcb }, 3); /* stac */
	cpu_reset_outputs(&f->cpu);
	assert_int_equal(x86_emu_step(f->emu, &f->cpu, &f->mem, NULL, 0, NULL), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, 0);
	assert_true(f->cpu.regs.rflags & RFLAGS_AC);
}

/* ---- more Unicorn behaviour ---- */

static void test_control_flow_and_stack(void **state)
{
	struct fixture *f = *state;

	/* push rax */
	f->cpu.regs.rax = 0x1122334455667788ull;
	assert_int_equal(STEP(f, 0x50), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rsp, STACK_TOP - 8);
	assert_int_equal(load64(f, STACK_TOP - 8), 0x1122334455667788ull);
	/* call +0x100: rip = target, return address pushed */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0xe8, 0x00, 0x01, 0x00, 0x00), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 5 + 0x100);
	assert_int_equal(load64(f, STACK_TOP - 16), CODE + 5);
	/* ret */
	assert_int_equal(STEP(f, 0xc3), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 5);
	assert_int_equal(f->cpu.regs.rsp, STACK_TOP - 8);
	/* jz taken and not taken */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rflags |= RFLAGS_ZF;
	assert_int_equal(STEP(f, 0x74, 0x10), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 0x12);
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rflags &= ~RFLAGS_ZF;
	assert_int_equal(STEP(f, 0x74, 0x10), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rip, CODE + 2);
	/* div rcx with rcx = 0: #DE, nothing changes */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rcx = 0;
	assert_int_equal(STEP(f, 0x48, 0xf7, 0xf1), X86_EMU_OK);
	assert_exception(&f->cpu, 0, false, 0);
	assert_int_equal(f->cpu.regs.rip, CODE);
	/* rep movsb of 300 bytes completes in one step */
	f->cpu.regs.rsi = DATA;
	f->cpu.regs.rdi = DATA + 0x800;
	f->cpu.regs.rcx = 300;
	memset(f->ram + DATA, 0x5a, 300);
	assert_int_equal(STEP(f, 0xf3, 0xa4), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.regs.rcx, 0);
	assert_int_equal(f->cpu.regs.rip, CODE + 2);
	assert_int_equal(f->cpu.regs.rdi, DATA + 0x800 + 300);
	assert_int_equal(f->ram[DATA + 0x800 + 299], 0x5a);
	/* BMI1 (VEX-encoded GPR instruction): andn rax, rbx, rcx */
	f->cpu.regs.rip = CODE;
	f->cpu.regs.rbx = 0xf0;
	f->cpu.regs.rcx = 0xff;
	assert_int_equal(STEP(f, 0xc4, 0xe2, 0xe0, 0xf2, 0xc1), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 0x0f);
}

static void test_kernel_addresses(void **state)
{
	struct fixture *f = *state;

	/* Code at a kernel-text address, rip-relative load: mov rax, [rip+0x100] */
	f->cpu.regs.rip = KERNEL_BASE + CODE;
	store64(f, CODE + 7 + 0x100, 0xabcdef0123456789ull);
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00), X86_EMU_OK);
	assert_no_exception(&f->cpu);
	assert_int_equal(f->cpu.regs.rax, 0xabcdef0123456789ull);
	assert_int_equal(f->cpu.regs.rip, KERNEL_BASE + CODE + 7);
	/* gs: override (per-CPU data): mov rax, gs:[0x28] */
	f->cpu.regs.rip = CODE;
	f->cpu.sregs.gs.base = KERNEL_BASE + DATA;
	store64(f, DATA + 0x28, 0x600d);
	assert_int_equal(STEP(f, 0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 0x600d);
	assert_false(f->cpu.sregs_dirty);
}

static void test_translation_changes(void **state)
{
	struct fixture *f = *state;

	/* Pages are not kept mapped between steps: a changed translation is seen at once. */
	store64(f, DATA, 1);
	store64(f, 0x5000, 2);
	f->cpu.regs.rdi = DATA;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 1);
	f->remap_from = DATA;
	f->remap_to = 0x5000;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rax, 2);
	/* Different code at the same rip, same length, right after: not a stale translation. */
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x0f), X86_EMU_OK); /* mov rcx, [rdi] */
	assert_int_equal(f->cpu.regs.rcx, 2);
}

static void test_insn_bytes_differ(void **state)
{
	struct fixture *f = *state;
	const uint8_t reported[] = { 0x48, 0x8b, 0x07 }; /* mov rax, [rdi] */

	/* Memory now holds mov rcx, [rdi]: what runs is what is in memory, decoded again. */
	memcpy(f->ram + CODE, (const uint8_t[]){ 0x48, 0x8b, 0x0f }, 3);
	store64(f, DATA, 9);
	f->cpu.regs.rdi = DATA;
	cpu_reset_outputs(&f->cpu);
	assert_int_equal(x86_emu_step(f->emu, &f->cpu, &f->mem, reported, sizeof(reported), NULL), X86_EMU_OK);
	assert_int_equal(f->cpu.regs.rcx, 9);
	assert_int_equal(f->cpu.regs.rax, 0);
}

static void test_stats(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	assert_int_equal(STEP(f, 0xcc), X86_EMU_OK);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x9b), X86_EMU_OK);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0xcc), X86_EMU_OK);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x66, 0x0f, 0xef, 0xc1), X86_EMU_OK);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x30), X86_EMU_UNSUPPORTED); /* not counted */
	f->cpu.regs.rdi = UNMAPPED;
	assert_int_equal(STEP(f, 0x48, 0x8b, 0x07), X86_EMU_OK);   /* faulted: not counted */
	assert_int_equal(f->stats.nr_kinds, 3);
	assert_string_equal(f->stats.kinds[0].mnemonic, "int3");
	assert_int_equal(f->stats.kinds[0].count, 2);
	assert_string_equal(f->stats.kinds[1].mnemonic, "fwait");
	assert_int_equal(f->stats.kinds[1].count, 1);
	assert_string_equal(f->stats.kinds[2].mnemonic, "pxor");
	assert_int_equal(f->stats.other, 0);

	/* Beyond X86_EMU_MAX_KINDS distinct kinds, the rest goes to `other`. */
	for (i = f->stats.nr_kinds; i < X86_EMU_MAX_KINDS; i++)
		snprintf(f->stats.kinds[i].mnemonic, sizeof(f->stats.kinds[i].mnemonic), "k%u", i);
	f->stats.nr_kinds = X86_EMU_MAX_KINDS;
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0x0f, 0x01, 0xca), X86_EMU_OK);
	assert_int_equal(f->stats.other, 1);
	f->cpu.regs.rip = CODE;
	assert_int_equal(STEP(f, 0xcc), X86_EMU_OK);
	assert_int_equal(f->stats.kinds[0].count, 3);
}

static void test_disasm(void **state)
{
	char buf[96];

	(void)state;
	assert_int_equal(x86_emu_disasm(BYTES(0x0f, 0xae, 0x54, 0x24, 0x04), true, 0xffffffff81000000ull, buf,
					sizeof(buf)), 5);
	assert_string_equal(buf, "ldmxcsr dword ptr [rsp+0x4]");
	assert_int_equal(x86_emu_disasm(BYTES(0x66, 0x44, 0x0f, 0x6e, 0xf9), true, 0, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "movd xmm15, ecx");
	assert_int_equal(x86_emu_disasm(BYTES(0xf0, 0x48, 0x0f, 0xc7, 0x0f), true, 0, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "lock cmpxchg16b xmmword ptr [rdi]");
	assert_int_equal(x86_emu_disasm(BYTES(0xcc, 0x90), false, 0, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "int3");
	assert_int_equal(x86_emu_disasm(BYTES(0x06), true, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "(bad)");
	assert_int_equal(x86_emu_disasm(NULL, 0, true, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "(bad)");
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Place the `len` instruction bytes at CODE and step them `n` times: the microseconds per step. */
static double time_steps(struct fixture *f, const uint8_t *insn, size_t len, int n)
{
	double t0;

	memcpy(f->ram + CODE, insn, len);
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		f->cpu.regs.rip = CODE;
		cpu_reset_outputs(&f->cpu);
		assert_int_equal(x86_emu_step(f->emu, &f->cpu, &f->mem, NULL, 0, &f->stats), X86_EMU_OK);
	}
	return (now_us() - t0) / n;
}

/* Measured, not asserted: the cost per emulated instruction, for the three paths. */
static void test_timing(void **state)
{
	static const uint8_t ldmxcsr[] = { 0x0f, 0xae, 0x17 };            /* ldmxcsr [rdi] */
	static const uint8_t popcnt[] = { 0xf3, 0x48, 0x0f, 0xb8, 0xc1 }; /* popcnt rax, rcx */
	static const uint8_t clac[] = { 0x0f, 0x01, 0xca };
	struct fixture *f = *state;
	const int n = 10000;
	uint32_t v = 0x1f80;
	double unicorn, direct, dedicated;

	memcpy(f->ram + DATA, &v, 4);
	f->cpu.regs.rdi = DATA;
	unicorn = time_steps(f, ldmxcsr, sizeof(ldmxcsr), n);
	assert_int_equal(f->cpu.regs.rip, CODE + 3);
	direct = time_steps(f, popcnt, sizeof(popcnt), n);
	dedicated = time_steps(f, clac, sizeof(clac), n);
	printf("[ TIMING   ] per instruction over %d steps: ldmxcsr (Unicorn) %.2f us, popcnt (direct) %.2f us, "
	       "clac (dedicated) %.2f us\n", n, unicorn, direct, dedicated);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_int3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clac_stac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fwait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_popcnt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmpxchg16b_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmpxchg16b_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_movbe_pclmulqdq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ldmxcsr_stmxcsr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_movd_xmm15, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sse_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sse_alu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_x87_via_unicorn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preload_then_unicorn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fxsave_fxrstor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xsave_xrstor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_fault_unmapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_fault_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_canonical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_operand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undecodable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_insn_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmx_and_misc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_privileged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_32bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_flow_and_stack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_translation_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insn_bytes_differ, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test(test_disasm),
		cmocka_unit_test_setup_teardown(test_timing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
