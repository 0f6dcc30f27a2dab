/* SPDX-License-Identifier: MIT */
/*
 * PVH entry (Xen's x86/HVM direct boot ABI, docs/misc/pvh.pandoc), so a test guest boots on QEMU
 * (`-kernel guest.elf`) and on kiln with "boot": "pvh" as well as through kiln's 64-bit entry.
 *
 * The XEN_ELFNOTE_PHYS32_ENTRY note names pvh_start. The VMM enters it in flat 32-bit protected mode,
 * paging off, EBX = physical address of struct hvm_start_info. pvh_start records EBX, switches to long
 * mode on page tables assembled here (the same 0-4 GiB identity map kiln builds for its 64-bit entry:
 * 2 MiB pages, user-accessible), and joins _start with RSI = 0: no boot_params, so the runtime reads the
 * command line from start_info instead (guest_cmdline()).
 *
 * The page tables are data, not code: on PVM hosts guest kernel code runs emulated at about a million
 * instructions a second, and filling 2048 entries in a loop would add milliseconds to every boot.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PTE_P_W_U 0x7
#define PDE_2M (0x7 | 0x80)
#define CR4_PAE 0x20
#define CR0_PG_NE_MP_PE 0x80000023
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

	.section .note.Xen, "a", @note
	.balign 4
	.long 4                         /* namesz: "Xen\0" */
	.long 4                         /* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.long pvh_start
	.balign 4

	.text
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, pvh_start_info
	lgdt pvh_gdt_desc
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pvh_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $CR0_PG_NE_MP_PE, %eax
	movl %eax, %cr0
	ljmp $0x10, $pvh_long

	.code64
pvh_long:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	xorl %esi, %esi
	jmp _start

	.section .rodata
	.balign 8
pvh_gdt:
	.quad 0
	.quad 0
	.quad 0x00af9b000000ffff        /* 0x10: 64-bit code, as kiln's boot GDT */
	.quad 0x00cf93000000ffff        /* 0x18: data */
pvh_gdt_end:
pvh_gdt_desc:
	.word pvh_gdt_end - pvh_gdt - 1
	.long pvh_gdt

	.data
	.balign 4
	/* The hvm_start_info address from EBX; 0 when entered through the 64-bit entry. */
	.globl pvh_start_info
pvh_start_info:
	.long 0

	.balign 4096
pvh_pml4:
	.quad pvh_pdpt + PTE_P_W_U
	.fill 511, 8, 0
pvh_pdpt:
	.quad pvh_pd + PTE_P_W_U
	.quad pvh_pd + 0x1000 + PTE_P_W_U
	.quad pvh_pd + 0x2000 + PTE_P_W_U
	.quad pvh_pd + 0x3000 + PTE_P_W_U
	.fill 508, 8, 0
pvh_pd:
	.set pvh_addr, 0
	.rept 2048
	.quad pvh_addr + PDE_2M
	.set pvh_addr, pvh_addr + 0x200000
	.endr

	.section .note.GNU-stack, "", @progbits
