/* SPDX-License-Identifier: MIT */
/*
 * Running on PVM hosts: KVM without VT-x/AMD-V (the kvm_pvm module), where guest user mode runs natively
 * but guest kernel mode is emulated by the host kernel at about a million instructions a second, and
 * that emulator refuses some instructions (../shared/PVM-HOST.md has the measurements).
 */
#ifndef KILN_ARCH_X86_PVM_H
#define KILN_ARCH_X86_PVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/codec.h"
#include "vmm/memory.h"

/*
 * Linux command-line options that keep a guest kernel off instructions the PVM host cannot emulate
 * and that kiln would otherwise emulate one exit at a time. Appended by kiln on PVM hosts only.
 */
const char *pvm_linux_cmdline(void);

/*
 * Append `extra` to the command line `cmdline` (which may be NULL) into a new malloc'd string;
 * options the user already gave (same key before '=') are not added twice, except initcall_blacklist=,
 * which Linux accumulates. NULL on ENOMEM.
 */
char *pvm_cmdline_append(const char *cmdline, const char *extra);

/*
 * 64-bit SYSCALL from guest user mode on PVM hosts.
 *
 * Measured (/tmp/pvm-syscall, see ../shared/PVM-HOST.md): a user-mode SYSCALL does everything but the
 * switch to CPL0: RCX/R11 are saved, RFLAGS masked, RIP = IA32_LSTAR, yet CS stays the user's. kiln
 * completes it. Guest writes and reads of IA32_LSTAR exit to kiln (KVM MSR filter); kiln keeps the
 * guest's value and gives the CPU a trap address instead, PVM_SYSCALL_TRAP_GVA, which kiln maps
 * user-accessible in the guest's kernel page tables onto a guest-physical page with no memory behind it.
 * A SYSCALL then lands there, the instruction fetch fails with an emulation-failure exit, and kiln
 * switches CS/SS to the kernel's (from IA32_STAR) and RIP to the guest's LSTAR. SYSRET works natively.
 *
 * The trap address is in a hole of Linux's x86-64 memory map (Documentation/arch/x86/x86_64/mm.rst:
 * fffffe8000000000, "unused hole"); every process's page tables copy the kernel half from swapper_pg_dir,
 * where kiln puts the entry when the kernel writes LSTAR. Page-table isolation (PTI) would keep user page
 * tables without it, so kiln also passes `nopti` on PVM hosts.
 */
#define PVM_SYSCALL_TRAP_GVA 0xfffffe8000000000ull

struct pvm_vcpu_state {
	uint64_t guest_lstar;   /* what the guest last wrote to IA32_LSTAR */
	bool lstar_written;
	uint64_t syscalls;      /* SYSCALLs completed by kiln */
};

/*
 * Section PVM (instance = vCPU index): struct pvm_vcpu_state, version 1, read back to version 1;
 * decoding checks the exact length and that the LSTAR is canonical.
 */
extern const struct codec_table pvm_vcpu_state_codec;

/*
 * Enable the trap on VM fd `vm_fd`: user-space MSR exits for IA32_LSTAR reads and writes, and kiln's
 * page tables for the trap address written into guest RAM (`mem`, reserved in the e820 map).
 * Returns 0 or -errno (e.g. -ENOTSUP when KVM lacks KVM_CAP_X86_USER_SPACE_MSR / MSR filters).
 */
int pvm_syscall_trap_init(int vm_fd, const struct guest_memory *mem) __attribute__((warn_unused_result));

/*
 * The MSR filter part of pvm_syscall_trap_init alone, for a VM restored from a snapshot: its guest RAM
 * already holds kiln's trap page tables as they were (rewriting them would dirty restored memory).
 */
int pvm_syscall_trap_filter(int vm_fd) __attribute__((warn_unused_result));

/*
 * KVM_EXIT_X86_WRMSR / KVM_EXIT_X86_RDMSR for a filtered MSR on vCPU `vcpu_fd`. A write of LSTAR is
 * recorded, the trap address goes to the CPU, and the trap entry is placed in the guest's current page
 * tables. Returns 0 or -errno; sets run->msr.error as the guest must see it.
 */
int pvm_msr_exit(int vcpu_fd, const struct guest_memory *mem, struct pvm_vcpu_state *st, struct kvm_run *run)
	__attribute__((warn_unused_result));

/*
 * Called on an emulation-failure exit with the vCPU's registers: when it is a SYSCALL landing at the
 * trap address, complete the SYSCALL (write regs/sregs back) and return 1. A landing that no SYSCALL
 * made (user code jumping there: RFLAGS.IF still set) gets a page fault, as the address has no user
 * mapping in the guest's view; returns 1 too. Returns 0 when the exit is something else, -errno on error.
 */
int pvm_syscall_landing(int vcpu_fd, struct pvm_vcpu_state *st, struct kvm_regs *regs, struct kvm_sregs *sregs)
	__attribute__((warn_unused_result));

#endif
