// SPDX-License-Identifier: MIT
#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/vcpu_emulate.h"
#include "lib/log.h"
#include "vmm/vm.h"

/* What an exit handler tells the run loop. */
enum exit_action {
	EXIT_CONTINUE = 0,
	EXIT_STOP = 1, /* the handler called vm_stop() */
};

typedef enum exit_action (*exit_handler_fn)(struct vcpu *vcpu);

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: KVM_RUN must return EINTR. */
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

/*
 * vcpu_control's kick, its lock held and the thread live (so vcpu->thread names a thread that has not
 * been joined). immediate_exit covers a kick that lands before the thread enters KVM_RUN.
 */
static void vcpu_kick(void *owner)
{
	struct vcpu *vcpu = owner;

	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

struct vcpu *vcpu_create(struct vm *vm, unsigned int id)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct vcpu *vcpu;
	int err;

	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return NULL;
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->run = MAP_FAILED;
	vcpu_control_init(&vcpu->ctl, vcpu_kick, vcpu);
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		goto fail;
	vcpu->run = mmap(NULL, vm->kvm.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED)
		goto fail;
	cpuid = cpuid_get_supported(vm->kvm.fd);
	if (!cpuid)
		goto fail;
	cpuid_filter(cpuid, CPUID_MAX_ENTRIES, id, vm->nr_vcpus, vm->kvm.pvm);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		goto fail;
	free(cpuid);
	return vcpu;
fail:
	err = errno;
	free(cpuid);
	vcpu_destroy(vcpu);
	errno = err;
	return NULL;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (!vcpu)
		return;
	if (vcpu->emu)
		x86_emu_destroy(vcpu->emu);
	profile_destroy(vcpu->profile);
	if (vcpu->run != MAP_FAILED)
		munmap(vcpu->run, vcpu->vm->kvm.run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu_control_destroy(&vcpu->ctl);
	free(vcpu);
}

void vcpu_request_sample(struct vcpu *vcpu)
{
	atomic_store(&vcpu->sample_pending, true);
	vcpu_control_kick(&vcpu->ctl);
}

static void take_sample(struct vcpu *vcpu)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	atomic_store(&vcpu->sample_pending, false);
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return;
	profile_record(vcpu->profile, regs.rip, sregs.cs.dpl == 3);
}

static void log_unknown_port(struct vm *vm, uint16_t port, bool is_write)
{
	uint8_t bit = (uint8_t)(1u << (port & 7));

	if (atomic_fetch_or(&vm->unknown_port_logged[port >> 3], bit) & bit)
		return;
	pr_info("guest %s unemulated I/O port 0x%x (logged once per port)", is_write ? "wrote" : "read", port);
}

static enum exit_action handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t i;

	/* data_offset and count*size come from KVM and stay within the kvm_run mapping. */
	for (i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!bus_access(&vm->pio_bus, run->io.port, data, run->io.size, is_write)) {
			if (!is_write)
				memset(data, 0xff, run->io.size);
			log_unknown_port(vm, run->io.port, is_write);
		}
	}
	return EXIT_CONTINUE;
}

static enum exit_action handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;

	if (run->mmio.len > sizeof(run->mmio.data))
		return EXIT_CONTINUE;
	if (!bus_access(&vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write)) {
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, run->mmio.len);
		pthread_mutex_lock(&vm->lock);
		pr_warn_ratelimited(&vm->mmio_ratelimit, "guest %s unemulated MMIO address 0x%llx",
				    run->mmio.is_write ? "wrote" : "read", (unsigned long long)run->mmio.phys_addr);
		pthread_mutex_unlock(&vm->lock);
	}
	return EXIT_CONTINUE;
}

static enum exit_action handle_shutdown(struct vcpu *vcpu)
{
	if (vm_guest_memory_lost(vcpu->vm)) {
		vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: " VM_GUEST_MEMORY_LOST_MESSAGE, vcpu->id);
		return EXIT_STOP;
	}
	vm_stop(vcpu->vm, VM_STOP_REBOOT, "guest triple fault (CPU reset) on vCPU %u", vcpu->id);
	return EXIT_STOP;
}

static enum exit_action handle_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_stop(vcpu->vm, VM_STOP_POWEROFF, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_stop(vcpu->vm, VM_STOP_REBOOT, "guest reset");
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		vm_stop(vcpu->vm, VM_STOP_ERROR, "guest crashed (system event)");
		break;
	default:
		vm_stop(vcpu->vm, VM_STOP_ERROR, "unknown KVM system event %u", vcpu->run->system_event.type);
		break;
	}
	return EXIT_STOP;
}

void vcpu_dump_registers(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		pr_err("vCPU %u: cannot read registers: %s", vcpu->id, strerror(errno));
		return;
	}
	pr_err("vCPU %u: rip=%016llx rsp=%016llx rflags=%08llx cs=%04x(dpl %u, l %u) cr0=%llx cr3=%llx cr4=%llx efer=%llx",
	       vcpu->id, r.rip, r.rsp, r.rflags, s.cs.selector, s.cs.dpl, s.cs.l, s.cr0, s.cr3, s.cr4, s.efer);
	pr_err("  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx", r.rax, r.rbx, r.rcx, r.rdx);
	pr_err("  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx", r.rsi, r.rdi, r.rbp, r.r8);
	pr_err("  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx", r.r9, r.r10, r.r11, r.r12);
	pr_err("  r13=%016llx r14=%016llx r15=%016llx cr2=%016llx", r.r13, r.r14, r.r15, s.cr2);
}

/*
 * The host refused to emulate an instruction (PVM hosts run guest kernel code in an emulator).
 * arch/x86/vcpu_emulate.c executes it; anything kiln cannot execute ends the VM.
 */
static enum exit_action handle_emulation_failure(struct vcpu *vcpu)
{
	const struct x86_vcpu_emu v = {
		.vcpu_fd = vcpu->fd, .id = vcpu->id, .run = vcpu->run, .mem = &vcpu->vm->mem, .emu = &vcpu->emu,
		.stats = &vcpu->emu_stats, .pvm = vcpu->vm->pvm_syscall_trap ? &vcpu->pvm : NULL,
	};
	char err[160];
	int ret = x86_vcpu_emulate(&v, err, sizeof(err));

	if (ret == 0)
		return EXIT_CONTINUE;
	if (ret == -ENOEXEC)
		vcpu_dump_registers(vcpu);
	vm_stop(vcpu->vm, VM_STOP_ERROR, "%s", err);
	return EXIT_STOP;
}

static enum exit_action handle_internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t i;

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
		return handle_emulation_failure(vcpu);
	pr_err("vCPU %u: KVM internal error, suberror %u, %u data words", vcpu->id, run->internal.suberror,
	       run->internal.ndata);
	for (i = 0; i < run->internal.ndata && i < 16; i++)
		pr_err("  data[%u] = 0x%llx", i, (unsigned long long)run->internal.data[i]);
	vcpu_dump_registers(vcpu);
	vm_stop(vcpu->vm, VM_STOP_ERROR, "KVM internal error (suberror %u)", run->internal.suberror);
	return EXIT_STOP;
}

static enum exit_action handle_fail_entry(struct vcpu *vcpu)
{
	pr_err("vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", vcpu->id,
	       (unsigned long long)vcpu->run->fail_entry.hardware_entry_failure_reason);
	vcpu_dump_registers(vcpu);
	vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU entry failed");
	return EXIT_STOP;
}

static enum exit_action handle_hlt(struct vcpu *vcpu)
{
	/* With the in-kernel LAPIC, HLT stays in KVM; a HLT exit means the CPU can never wake. */
	vm_stop(vcpu->vm, VM_STOP_POWEROFF, "vCPU %u halted", vcpu->id);
	return EXIT_STOP;
}

/* IA32_LSTAR accesses, filtered on PVM hosts to complete user-mode SYSCALLs (arch/x86/pvm.h). */
static enum exit_action handle_msr(struct vcpu *vcpu)
{
	int ret = pvm_msr_exit(vcpu->fd, &vcpu->vm->mem, &vcpu->pvm, vcpu->run);

	if (ret) {
		vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: MSR 0x%x: %s", vcpu->id, vcpu->run->msr.index, strerror(-ret));
		return EXIT_STOP;
	}
	return EXIT_CONTINUE;
}

static enum exit_action handle_intr(struct vcpu *vcpu)
{
	(void)vcpu;
	return EXIT_CONTINUE;
}

static const exit_handler_fn exit_handlers[] = {
	[KVM_EXIT_IO] = handle_io,
	[KVM_EXIT_MMIO] = handle_mmio,
	[KVM_EXIT_HLT] = handle_hlt,
	[KVM_EXIT_SHUTDOWN] = handle_shutdown,
	[KVM_EXIT_FAIL_ENTRY] = handle_fail_entry,
	[KVM_EXIT_INTR] = handle_intr,
	[KVM_EXIT_INTERNAL_ERROR] = handle_internal_error,
	[KVM_EXIT_SYSTEM_EVENT] = handle_system_event,
	[KVM_EXIT_X86_RDMSR] = handle_msr,
	[KVM_EXIT_X86_WRMSR] = handle_msr,
};

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	char name[16];
	sigset_t set;

	atomic_store(&vcpu->tid, (int)gettid());
	snprintf(name, sizeof(name), "kiln-vcpu%u", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	sigaddset(&set, SIGBUS); /* the emulator's fault on lost guest RAM reaches vm.c's handler */
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	/* Each turn: the request slot first (a paused vCPU waits in there), then the guest. */
	while (vcpu_control_serve(&vcpu->ctl)) {
		uint32_t reason;
		exit_handler_fn handler;

		if (!atomic_load(&vm->first_run_ns)) {
			uint64_t zero = 0;

			atomic_compare_exchange_strong(&vm->first_run_ns, &zero, time_now_ns());
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			int err = errno;

			if (err == EINTR || err == EAGAIN) {
				/* Cleared before the slot is looked at: a kick from now on is seen either way. */
				__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				if (vcpu->profile && atomic_load(&vcpu->sample_pending))
					take_sample(vcpu);
				if (vm->hooks.slow_exit_ms) /* a test build's hook: one plain load on this path */
					test_hooks_slow_exit(&vm->hooks, vcpu_control_pending(&vcpu->ctl));
				continue;
			}
			if (err == EFAULT && vm_guest_memory_lost(vm))
				vm_stop(vm, VM_STOP_ERROR, "vCPU %u: " VM_GUEST_MEMORY_LOST_MESSAGE, vcpu->id);
			else
				vm_stop(vm, VM_STOP_ERROR, "vCPU %u: KVM_RUN failed: %s", vcpu->id, strerror(err));
			break;
		}
		vcpu->nr_exits++;
		reason = vcpu->run->exit_reason;
		handler = reason < sizeof(exit_handlers) / sizeof(exit_handlers[0]) ? exit_handlers[reason] : NULL;
		if (!handler) {
			vcpu_dump_registers(vcpu);
			vm_stop(vm, VM_STOP_ERROR, "vCPU %u: unhandled KVM exit reason %u", vcpu->id, reason);
			break;
		}
		if (handler(vcpu) == EXIT_STOP)
			break;
		if (vm->hooks.slow_exit_ms)
			test_hooks_slow_exit(&vm->hooks, vcpu_control_pending(&vcpu->ctl));
	}
	vcpu_control_leave(&vcpu->ctl);
	return NULL;
}

/* vcpu_control_start's spawn, its lock held: the thread's first serve waits for it. */
static int spawn(void *arg)
{
	struct vcpu *vcpu = arg;
	int ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);

	if (ret)
		return -ret;
	vcpu->thread_started = true;
	return 0;
}

int vcpu_start(struct vcpu *vcpu)
{
	return vcpu_control_start(&vcpu->ctl, spawn, vcpu);
}
