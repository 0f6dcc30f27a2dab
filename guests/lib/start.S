/* SPDX-License-Identifier: MIT */
/* Entry from kiln: 64-bit mode, RSI = boot_params (Linux 64-bit boot protocol); or from pvh.S with RSI = 0. */
	.section .text.start, "ax"
	.globl _start
_start:
	cli
	leaq boot_stack_top(%rip), %rsp
	movq %rsi, %rdi
	call guest_main
1:	hlt
	jmp 1b

	.section .bss
	.align 16
boot_stack:
	.skip 65536
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
