/* SPDX-License-Identifier: MIT */
/*
 * Trap entry for the test guests. Every vector pushes (error code or 0, vector) and jumps to a common
 * path. A trap from user mode (CPL3) ends run_user(): the kernel context saved there is restored and
 * run_user() returns with what user mode left. A trap from kernel mode calls kernel_trap().
 */
	.section .bss
	.align 16
	.globl user_saved_ctx
user_saved_ctx:            /* rsp rbx rbp r12 r13 r14 r15 result-pointer */
	.skip 8 * 8

	.text
	.macro stub vec, has_error
	.align 16
trap_stub_\vec:
	.if \has_error == 0
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
	.endm

	stub 0, 0
	stub 1, 0
	stub 2, 0
	stub 3, 0
	stub 4, 0
	stub 5, 0
	stub 6, 0
	stub 7, 0
	stub 8, 1
	stub 9, 0
	stub 10, 1
	stub 11, 1
	stub 12, 1
	stub 13, 1
	stub 14, 1
	stub 15, 0
	stub 16, 0
	stub 17, 1
	stub 18, 0
	stub 19, 0
	stub 20, 0
	stub 21, 1
	stub 22, 0
	stub 23, 0
	stub 24, 0
	stub 25, 0
	stub 26, 0
	stub 27, 0
	stub 28, 0
	stub 29, 1
	stub 30, 1
	stub 31, 0

	/* Frame on entry: vector, error, rip, cs, rflags, rsp, ss. */
trap_common:
	testq $3, 24(%rsp)          /* CS.RPL of the interrupted code */
	jnz from_user
	/* Kernel-mode trap: save the GPRs and call kernel_trap(frame). */
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rsp, %rdi
	call kernel_trap
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $16, %rsp              /* vector, error code */
	iretq

from_user:
	/* Fill *result: vector, rax, rip, error code, cs (struct user_result layout). */
	movq user_saved_ctx+56(%rip), %rdi
	movq (%rsp), %rcx
	movl %ecx, 0(%rdi)
	movq %rax, 8(%rdi)
	movq 16(%rsp), %rcx
	movq %rcx, 16(%rdi)
	movq 8(%rsp), %rcx
	movq %rcx, 24(%rdi)
	movq 24(%rsp), %rcx
	movq %rcx, 32(%rdi)
	/* Back into run_user()'s caller with the kernel's callee-saved registers. */
	leaq user_saved_ctx(%rip), %rax
	movq 0(%rax), %rsp
	movq 8(%rax), %rbx
	movq 16(%rax), %rbp
	movq 24(%rax), %r12
	movq 32(%rax), %r13
	movq 40(%rax), %r14
	movq 48(%rax), %r15
	ret

	/* void run_user(void (*fn)(void), void *stack_top, struct user_result *res) */
	.globl run_user
run_user:
	leaq user_saved_ctx(%rip), %rax
	movq %rsp, 0(%rax)
	movq %rbx, 8(%rax)
	movq %rbp, 16(%rax)
	movq %r12, 24(%rax)
	movq %r13, 32(%rax)
	movq %r14, 40(%rax)
	movq %r15, 48(%rax)
	movq %rdx, 56(%rax)
	pushq $0x2b                 /* SS: user data */
	pushq %rsi                  /* RSP */
	pushq $0x2                  /* RFLAGS: interrupts off */
	pushq $0x33                 /* CS: user code, 64-bit */
	pushq %rdi                  /* RIP */
	iretq

	.section .rodata
	.align 8
	.globl trap_stub_table
trap_stub_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad trap_stub_\n
	.endr

	.section .note.GNU-stack, "", @progbits
