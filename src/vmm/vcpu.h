/* SPDX-License-Identifier: MIT */
/*
 * A vCPU: its KVM fd, the shared kvm_run page and the thread that runs KVM_RUN and handles exits
 * through one table indexed by exit reason. Between two KVM_RUNs the thread serves its state machine
 * (vmm/vcpu_control.h: running, paused, exited; a request slot for pause, resume and calls such as
 * saving its registers); a poster kicks it out of KVM_RUN with VCPU_KICK_SIGNAL and
 * kvm_run.immediate_exit. The thread leaves when the VM stops (vm_stop: vcpu_control_exit).
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
#include "vmm/vcpu_control.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;           /* written under ctl.lock before ctl.live; then the main thread's, to join */
	struct vcpu_control ctl;       /* state, request slot; owner: this struct */
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

/* Start the vCPU's thread (running, or paused when a pause was posted before). Returns 0 or -errno. */
int vcpu_start(struct vcpu *vcpu) __attribute__((warn_unused_result));

/* Ask the vCPU thread to record where its guest is (profiling); from the main loop. */
void vcpu_request_sample(struct vcpu *vcpu);

/* Log the vCPU's general and segment registers (a VM that stops on an error). */
void vcpu_dump_registers(struct vcpu *vcpu);

/* Install the (empty) kick signal handler once per process. */
void vcpu_signals_init(void);

#endif
