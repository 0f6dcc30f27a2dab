/* SPDX-License-Identifier: MIT */
/*
 * The x86 state KVM holds for a VM, read and written for snapshots (Documentation/virt/kvm/api.rst:
 * KVM_GET/SET_REGS, SREGS, XSAVE, XCRS, MSRS, LAPIC, VCPU_EVENTS, MP_STATE, DEBUGREGS, CPUID2,
 * TSC_KHZ; KVM_GET/SET_IRQCHIP, PIT2, CLOCK), as plain structs, each with a versioned codec table
 * (lib/codec.h) for its section (VCPU, IRQC, PIT and CLCK of docs/snapshot-format.md).
 *
 * Register pages that are hardware formats (the XSAVE area, Intel SDM vol 1 s13.4; the local APIC
 * register page, SDM vol 3 s11.4.1) are carried as the bytes KVM gives; everything else field by field.
 */
#ifndef KILN_ARCH_X86_KVM_STATE_H
#define KILN_ARCH_X86_KVM_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/codec.h"

#define X86_XSAVE_MAX_SIZE 16384u   /* bytes: 4 KiB today, ~11 KiB with AMX (KVM_CAP_XSAVE2) */
#define X86_MAX_MSRS 1024u
#define X86_MAX_CPUID 256u

/* One vCPU, everything KVM_RUN depends on. */
struct x86_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t xsave_size;                 /* bytes of xsave used, 4096..X86_XSAVE_MAX_SIZE */
	uint8_t xsave[X86_XSAVE_MAX_SIZE];   /* struct kvm_xsave's region */
	struct kvm_xcrs xcrs;                /* nr_xcrs 0 when the guest has no XSAVE (PVM hosts) */
	uint32_t nr_msrs;
	struct kvm_msr_entry msrs[X86_MAX_MSRS];
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp_state;
	uint32_t tsc_khz;                    /* 0: unknown */
	uint32_t nr_cpuid;
	struct kvm_cpuid_entry2 cpuid[X86_MAX_CPUID];
};

/* The MSRs KVM says a VMM should save (KVM_GET_MSR_INDEX_LIST on /dev/kvm). */
struct x86_msr_list {
	uint32_t nr;
	uint32_t index[X86_MAX_MSRS];
};

/* Fill `list` from the /dev/kvm fd `kvm_fd`. Returns 0 or -errno. */
int x86_msr_list_get(int kvm_fd, struct x86_msr_list *list) __attribute__((warn_unused_result));

/*
 * Read vCPU `vcpu_fd`'s state, the vCPU stopped (not in KVM_RUN). MSRs: those of `list` that
 * KVM_GET_MSRS accepts for this vCPU (some in the list depend on CPUID). `xsave_size` is
 * KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM (0 or at most 4096: KVM_GET_XSAVE). Returns 0 or
 * -errno with a message naming the ioctl.
 */
int x86_vcpu_state_get(int vcpu_fd, const struct x86_msr_list *list, uint32_t xsave_size, struct x86_vcpu_state *st,
		       char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Load `st` into a vCPU that has not run, in the order the state depends on itself: CPUID, SREGS
 * (modes, APIC base), REGS, XCRS then XSAVE, MSRs but the TSC deadline, LAPIC (which resets its
 * timer), the TSC deadline, VCPU_EVENTS, MP_STATE, DEBUGREGS. A TSC frequency other than this host's
 * is set with KVM_SET_TSC_KHZ where KVM can scale, else warned about; an MSR KVM refuses is warned
 * about by index. Returns 0 or -errno with a message naming the ioctl KVM refused.
 */
int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Section VCPU (instance = vCPU index): struct x86_vcpu_state, version 1 (8d1a722's), read back to
 * version 1. Decoding checks the exact length, counts and sizes within the limits above (XSAVE in
 * 64-byte units), segment attributes, event flags and booleans, the MP state; the register values
 * themselves are KVM's to judge on restore.
 */
extern const struct codec_table x86_vcpu_state_codec;

/* The in-kernel irqchip: both PICs and the IOAPIC (section IRQC). */
struct x86_irqchip_state {
	struct kvm_pic_state pic[2];         /* master, slave */
	struct kvm_ioapic_state ioapic;
};

int x86_irqchip_state_get(int vm_fd, struct x86_irqchip_state *st) __attribute__((warn_unused_result));
/* After every vCPU's LAPIC: KVM re-delivers the IOAPIC's pending requests on load. */
int x86_irqchip_state_set(int vm_fd, const struct x86_irqchip_state *st) __attribute__((warn_unused_result));
/*
 * Section IRQC: struct x86_irqchip_state, version 1, read back to version 1; register values the
 * 8259A and IOAPIC cannot hold are refused.
 */
extern const struct codec_table x86_irqchip_state_codec;

/* The in-kernel PIT (section PIT). count_load_time is not kept: KVM restarts each count on load. */
int x86_pit_state_get(int vm_fd, struct kvm_pit_state2 *st) __attribute__((warn_unused_result));
int x86_pit_state_set(int vm_fd, const struct kvm_pit_state2 *st) __attribute__((warn_unused_result));
/* Section PIT: struct kvm_pit_state2, version 1, read back to version 1; 8254-impossible values refused. */
extern const struct codec_table x86_pit_state_codec;

/* kvmclock (section CLCK): the guest's clock in ns when the VM was paused (KVM_GET_CLOCK). */
struct x86_clock_state {
	uint64_t clock_ns;
};

/* Section CLCK: struct x86_clock_state (a bare uint64_t does too), version 1, read back to version 1. */
extern const struct codec_table x86_clock_state_codec;

#endif
