/* SPDX-License-Identifier: MIT */
/* The host's KVM: /dev/kvm, its API version and the capabilities kiln relies on. */
#ifndef KILN_VMM_KVM_H
#define KILN_VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>

struct kvm_host {
	int fd;             /* /dev/kvm */
	size_t run_size;    /* KVM_GET_VCPU_MMAP_SIZE */
	bool pvm;           /* KVM is PVM (no VT-x/AMD-V): guest kernel code runs emulated */
	int max_vcpus;      /* KVM_CAP_MAX_VCPUS */
};

/*
 * Open /dev/kvm and check API version 12 and every capability kiln needs (user memory, in-kernel
 * irqchip, PIT2, TSS address, extended CPUID, immediate exit, ...). Returns 0, or -errno with a message
 * in `err` (`err_size` bytes) naming what is missing.
 */
int kvm_host_open(struct kvm_host *kvm, char *err, size_t err_size) __attribute__((warn_unused_result));
void kvm_host_close(struct kvm_host *kvm);

/* True when /dev/kvm is provided by kvm_pvm (checks /sys/module/kvm_pvm). */
bool kvm_host_is_pvm(void);

#endif
