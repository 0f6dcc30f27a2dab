/* SPDX-License-Identifier: MIT */
/*
 * The CPUID a guest sees: KVM_GET_SUPPORTED_CPUID filtered per vCPU (Intel SDM vol 2A "CPUID";
 * Documentation/virt/kvm/x86/cpuid.rst for the KVM leaves).
 */
#ifndef KILN_ARCH_X86_CPUID_H
#define KILN_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

#define CPUID_MAX_ENTRIES 256

/* Allocate a kvm_cpuid2 with room for CPUID_MAX_ENTRIES and fill it from KVM_GET_SUPPORTED_CPUID. NULL with errno. */
struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd);

/*
 * Adjust `cpuid` (a per-vCPU copy with room for `capacity` entries) for vCPU `vcpu_id` of `nr_vcpus`: hypervisor bit set, initial APIC ID
 * and logical processor count in leaf 1, topology in leaves 4, 0xB and 0x1F (one thread per core, all
 * cores in one package), performance monitoring (leaf 0xA) off. On PVM hosts also clears the feature
 * bits that masking does reach there (CX16: the host cannot emulate cmpxchg16b in guest kernel mode) and
 * KVM's paravirtual features that need hypercalls (PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD,
 * HC_MAP_GPA_RANGE in leaf 0x40000001), which the host's emulator cannot take from guest kernel mode.
 */
void cpuid_filter(struct kvm_cpuid2 *cpuid, unsigned int capacity, unsigned int vcpu_id, unsigned int nr_vcpus, bool pvm);

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, unsigned int function, unsigned int index);

#endif
