// SPDX-License-Identifier: MIT
#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_CX16 (1u << 13)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
/*
 * KVM's paravirtual features (Documentation/virt/kvm/x86/cpuid.rst, leaf 0x40000001 EAX) that make the
 * guest issue hypercalls (VMCALL/VMMCALL): PV spinlock kick, PV IPIs, PV yield, MAP_GPA_RANGE.
 */
#define CPUID_KVM_FEATURES 0x40000001u
#define KVM_FEATURE_PV_UNHALT_BIT (1u << 7)
#define KVM_FEATURE_PV_SEND_IPI_BIT (1u << 11)
#define KVM_FEATURE_PV_SCHED_YIELD_BIT (1u << 13)
#define KVM_FEATURE_HC_MAP_GPA_RANGE_BIT (1u << 16)
#define CPUID_KVM_HYPERCALL_FEATURES (KVM_FEATURE_PV_UNHALT_BIT | KVM_FEATURE_PV_SEND_IPI_BIT | \
				      KVM_FEATURE_PV_SCHED_YIELD_BIT | KVM_FEATURE_HC_MAP_GPA_RANGE_BIT)
#define CPUID_TOPO_TYPE_SMT 1u
#define CPUID_TOPO_TYPE_CORE 2u

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd)
{
	struct kvm_cpuid2 *cpuid;

	cpuid = calloc(1, sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return NULL;
	cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		int err = errno;

		free(cpuid);
		errno = err;
		return NULL;
	}
	return cpuid;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, unsigned int function, unsigned int index)
{
	unsigned int i;

	for (i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

/* Bits needed to number n things: ceil(log2(n)). */
static unsigned int order_base_2(unsigned int n)
{
	unsigned int bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

/*
 * KVM lists only subleaf 0 of the extended topology leaves; Linux reads subleaf 1 for the core level
 * and stops at the first subleaf of type 0. Add what is missing, if there is room.
 */
static void add_topology_subleaves(struct kvm_cpuid2 *cpuid, unsigned int capacity, unsigned int function)
{
	unsigned int index;

	if (!cpuid_find(cpuid, function, 0))
		return;
	for (index = 1; index <= 2; index++) {
		if (cpuid_find(cpuid, function, index) != cpuid_find(cpuid, function, 0) && cpuid_find(cpuid, function, index))
			continue;
		if (cpuid->nent >= capacity)
			return;
		cpuid->entries[cpuid->nent++] = (struct kvm_cpuid_entry2){
			.function = function, .index = index, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		};
	}
}

void cpuid_filter(struct kvm_cpuid2 *cpuid, unsigned int capacity, unsigned int vcpu_id, unsigned int nr_vcpus, bool pvm)
{
	unsigned int core_bits = order_base_2(nr_vcpus);
	unsigned int i;

	add_topology_subleaves(cpuid, capacity, 0xb);
	add_topology_subleaves(cpuid, capacity, 0x1f);

	for (i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			if (pvm)
				e->ecx &= ~CPUID_1_ECX_CX16;
			/* EBX: [31:24] initial APIC ID, [23:16] logical processors per package, [15:8] CLFLUSH line/8. */
			e->ebx = (vcpu_id << 24) | ((nr_vcpus & 0xff) << 16) | (8u << 8);
			if (nr_vcpus > 1)
				e->edx |= CPUID_1_EDX_HTT;
			else
				e->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 4:
			/* Deterministic cache parameters: EAX[31:26] = cores per package - 1, [25:14] sharing. */
			e->eax &= 0x3fff;
			e->eax |= ((nr_vcpus - 1) & 0x3f) << 26;
			/* Every level private to its core (one thread per core). */
			break;
		case CPUID_KVM_FEATURES:
			/*
			 * PVM's emulator answers a guest kernel's VMCALL by trying to patch it into the other
			 * vendor's hypercall instruction in place, which faults on the read-only kernel text
			 * (seen: Linux with 4 vCPUs oopsed at KVM_HC_SEND_IPI). Without these features Linux
			 * uses APIC IPIs, plain HLT and native spinlocks, which need no hypercall.
			 */
			if (pvm)
				e->eax &= ~CPUID_KVM_HYPERCALL_FEATURES;
			break;
		case 0xa:
			/* No PMU: kiln does not virtualise performance counters. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: level 0 SMT (1 thread), level 1 core (nr_vcpus); EDX x2APIC ID. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (CPUID_TOPO_TYPE_SMT << 8) | 0;
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = nr_vcpus;
				e->ecx = (CPUID_TOPO_TYPE_CORE << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			e->edx = vcpu_id;
			break;
		default:
			break;
		}
	}
}
