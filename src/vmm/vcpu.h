/* SPDX-License-Identifier: MIT */
/*
 * A vCPU: its KVM fd, the shared kvm_run page and the thread that runs KVM_RUN and handles exits
 * through one table indexed by exit reason. The thread stops when the VM stops: vm_stop() sets
 * immediate_exit and kicks it out of KVM_RUN with a signal.
 */
#ifndef KILN_VMM_VCPU_H
#define KILN_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "arch/x86/emulate.h"
#include "arch/x86/pvm.h"
#include "vmm/profile.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	struct x86_emu *emu;           /* created on the first emulation failure */
	struct x86_emu_stats emu_stats;
	uint64_t nr_exits;
	struct pvm_vcpu_state pvm;     /* SYSCALL completion on PVM hosts */
	struct profile *profile;       /* RIP samples, when profiling */
	atomic_bool sample_pending;    /* the main loop asked for a sample */
	_Atomic int tid;               /* the thread's host id (gettid), 0 until it runs: GET /vcpus, for pinning */
};

/* Signal that kicks a vCPU thread out of KVM_RUN. */
#define VCPU_KICK_SIGNAL SIGUSR1

/* Create vCPU `id` of `vm`: KVM_CREATE_VCPU, map kvm_run, set CPUID. Returns NULL with errno. */
struct vcpu *vcpu_create(struct vm *vm, unsigned int id);
void vcpu_destroy(struct vcpu *vcpu);

/* Start the vCPU's thread. Returns 0 or -errno. */
int vcpu_start(struct vcpu *vcpu) __attribute__((warn_unused_result));

/* Make the vCPU thread leave KVM_RUN soon (from any thread). */
void vcpu_kick(struct vcpu *vcpu);

/* Ask the vCPU thread to record where its guest is (profiling); from the main loop. */
void vcpu_request_sample(struct vcpu *vcpu);

/* Install the (empty) kick signal handler once per process. */
void vcpu_signals_init(void);

#endif
