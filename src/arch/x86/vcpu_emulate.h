/* SPDX-License-Identifier: MIT */
/*
 * The glue between a KVM vCPU and kiln's x86 instruction emulator (emulate.h): on an emulation-failure
 * exit (KVM_INTERNAL_ERROR_EMULATION: PVM hosts run guest kernel code in an emulator that refuses some
 * instructions) read the vCPU's registers and FPU state, complete a PVM SYSCALL landing, step the
 * emulator over guest memory, and write back what it changed. vmm/vcpu.c calls it from its exit table.
 */
#ifndef KILN_ARCH_X86_VCPU_EMULATE_H
#define KILN_ARCH_X86_VCPU_EMULATE_H

#include <linux/kvm.h>
#include <stddef.h>

#include "arch/x86/emulate.h"
#include "arch/x86/pvm.h"
#include "vmm/memory.h"

/* One vCPU as the emulator sees it. */
struct x86_vcpu_emu {
	int vcpu_fd;
	unsigned int id;                /* messages */
	struct kvm_run *run;            /* the exit's instruction bytes */
	struct guest_memory *mem;
	struct x86_emu **emu;           /* created here on first use; the vCPU frees it */
	struct x86_emu_stats *stats;
	struct pvm_vcpu_state *pvm;     /* the PVM SYSCALL trap's state, or NULL without the trap */
};

/*
 * Execute the instruction KVM refused. Returns 0 when the vCPU goes on (executed, or a SYSCALL
 * completed), else -errno with the reason in `err` (the VM must stop): -ENOEXEC when kiln cannot
 * execute it either (the instruction and the emulator's reason are logged; the caller dumps the
 * registers), another -errno when an ioctl on the vCPU failed.
 */
int x86_vcpu_emulate(const struct x86_vcpu_emu *v, char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
