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
	free(vcpu);
}

void vcpu_kick(struct vcpu *vcpu)
{
	/* immediate_exit covers a kick that lands before the thread enters KVM_RUN. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vcpu->thread_started)
		pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_request_sample(struct vcpu *vcpu)
{
	atomic_store(&vcpu->sample_pending, true);
	vcpu_kick(vcpu);
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

static void dump_registers(struct vcpu *vcpu)
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

static int emu_translate(void *opaque, uint64_t gva, uint64_t *gpa, bool *writeable)
{
	struct vcpu *vcpu = opaque;
	struct kvm_translation tr = { .linear_address = gva };

	if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -EFAULT;
	*gpa = tr.physical_address;
	*writeable = tr.writeable;
	return 0;
}

static void *emu_gpa_to_hva(void *opaque, uint64_t gpa, size_t len)
{
	struct vcpu *vcpu = opaque;

	return guest_memory_hva(&vcpu->vm->mem, gpa, len);
}

/* The emulator stored into guest RAM from userspace, where KVM's dirty log cannot see it. */
static void emu_written(void *opaque, uint64_t gpa, size_t len)
{
	struct vcpu *vcpu = opaque;

	guest_memory_mark_written(&vcpu->vm->mem, gpa, len);
}

#define XSAVE_MXCSR_OFFSET 24     /* legacy (FXSAVE) region, Intel SDM vol 1 s10.5.1 */
#define XSAVE_XSTATE_BV_OFFSET 512 /* XSAVE header */
#define XFEATURE_MASK_FPSSE 3ull

/*
 * x87/SSE state for the emulator. KVM_GET_FPU/KVM_SET_FPU carry the x87 and XMM registers but not
 * MXCSR (KVM leaves struct kvm_fpu's mxcsr unused), so MXCSR travels through the XSAVE area.
 */
static int emu_get_fpu(struct vcpu *vcpu, struct x86_emu_cpu *cpu)
{
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;

	if (ioctl(vcpu->fd, KVM_GET_FPU, &cpu->fpu) < 0 || ioctl(vcpu->fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	memcpy(&cpu->fpu.mxcsr, (uint8_t *)xsave.region + XSAVE_MXCSR_OFFSET, sizeof(cpu->fpu.mxcsr));
	cpu->xcr0 = 0; /* unknown unless KVM reports it */
	if (ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) == 0) {
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
			if (xcrs.xcrs[i].xcr == 0)
				cpu->xcr0 = xcrs.xcrs[i].value;
	}
	return 0;
}

static int emu_set_fpu(struct vcpu *vcpu, const struct x86_emu_cpu *cpu)
{
	struct kvm_xsave xsave;
	uint64_t xstate_bv;
	uint8_t *region = (uint8_t *)xsave.region;

	if (ioctl(vcpu->fd, KVM_SET_FPU, &cpu->fpu) < 0 || ioctl(vcpu->fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	memcpy(region + XSAVE_MXCSR_OFFSET, &cpu->fpu.mxcsr, sizeof(cpu->fpu.mxcsr));
	/* KVM loads MXCSR from the area only when the SSE (or AVX) component is marked present. */
	memcpy(&xstate_bv, region + XSAVE_XSTATE_BV_OFFSET, sizeof(xstate_bv));
	xstate_bv |= XFEATURE_MASK_FPSSE;
	memcpy(region + XSAVE_XSTATE_BV_OFFSET, &xstate_bv, sizeof(xstate_bv));
	return ioctl(vcpu->fd, KVM_SET_XSAVE, &xsave) < 0 ? -errno : 0;
}

/* Write back what the emulator changed, then inject the exception it queued. */
static int emu_commit(struct vcpu *vcpu, struct x86_emu_cpu *cpu)
{
	if (cpu->sregs_dirty && ioctl(vcpu->fd, KVM_SET_SREGS, &cpu->sregs) < 0)
		return -errno;
	if (cpu->regs_dirty && ioctl(vcpu->fd, KVM_SET_REGS, &cpu->regs) < 0)
		return -errno;
	if (cpu->fpu_dirty) {
		int ret = emu_set_fpu(vcpu, cpu);

		if (ret)
			return ret;
	}
	if (cpu->exception_pending) {
		struct kvm_vcpu_events ev;

		if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return -errno;
		ev.exception.injected = 1;
		ev.exception.nr = cpu->exception_vector;
		ev.exception.has_error_code = cpu->exception_has_error_code;
		ev.exception.error_code = cpu->exception_error_code;
		ev.flags = 0;
		if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return -errno;
	}
	return 0;
}

/*
 * The host refused to emulate an instruction (PVM hosts run guest kernel code in an emulator).
 * Execute it here; anything kiln cannot execute ends the VM with the instruction and registers.
 */
static enum exit_action handle_emulation_failure(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	const struct x86_emu_mem_ops mem = {
		.translate = emu_translate, .gpa_to_hva = emu_gpa_to_hva, .written = emu_written, .opaque = vcpu,
	};
	const uint8_t *insn = NULL;
	size_t insn_len = 0;
	struct x86_emu_cpu cpu;
	char text[96];
	int ret;

	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size <= sizeof(run->emulation_failure.insn_bytes)) {
		insn = run->emulation_failure.insn_bytes;
		insn_len = run->emulation_failure.insn_size;
	}
	if (!vcpu->emu) {
		vcpu->emu = x86_emu_create();
		if (!vcpu->emu) {
			vm_stop(vcpu->vm, VM_STOP_ERROR, "cannot create the instruction emulator: %s", strerror(errno));
			return EXIT_STOP;
		}
	}
	memset(&cpu, 0, sizeof(cpu));
	if (ioctl(vcpu->fd, KVM_GET_REGS, &cpu.regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &cpu.sregs) < 0) {
		vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: cannot read state for emulation: %s", vcpu->id, strerror(errno));
		return EXIT_STOP;
	}
	if (vcpu->vm->pvm_syscall_trap) {
		ret = pvm_syscall_landing(vcpu->fd, &vcpu->pvm, &cpu.regs, &cpu.sregs);
		if (ret == 1)
			return EXIT_CONTINUE;
		if (ret < 0) {
			vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: cannot complete a SYSCALL: %s", vcpu->id, strerror(-ret));
			return EXIT_STOP;
		}
	}
	ret = emu_get_fpu(vcpu, &cpu);
	if (ret) {
		vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: cannot read FPU state: %s", vcpu->id, strerror(-ret));
		return EXIT_STOP;
	}
	if (x86_emu_step(vcpu->emu, &cpu, &mem, insn, insn_len, &vcpu->emu_stats) == X86_EMU_OK) {
		ret = emu_commit(vcpu, &cpu);
		if (ret == 0)
			return EXIT_CONTINUE;
		vm_stop(vcpu->vm, VM_STOP_ERROR, "vCPU %u: cannot write emulated state: %s", vcpu->id, strerror(-ret));
		return EXIT_STOP;
	}
	if (insn_len)
		x86_emu_disasm(insn, insn_len, cpu.sregs.cs.l, cpu.regs.rip, text, sizeof(text));
	else
		snprintf(text, sizeof(text), "(instruction bytes not reported)");
	{
		char hex[3 * 16 + 1] = "";
		size_t i;

		for (i = 0; i < insn_len; i++)
			snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", insn[i]);
		pr_err("vCPU %u: the host cannot emulate the instruction at rip %016llx and kiln cannot either: %s [%s] (%s)",
		       vcpu->id, cpu.regs.rip, text, hex, x86_emu_strerror(vcpu->emu));
	}
	dump_registers(vcpu);
	vm_stop(vcpu->vm, VM_STOP_ERROR, "unemulated instruction at rip 0x%llx: %s", cpu.regs.rip, text);
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
	dump_registers(vcpu);
	vm_stop(vcpu->vm, VM_STOP_ERROR, "KVM internal error (suberror %u)", run->internal.suberror);
	return EXIT_STOP;
}

static enum exit_action handle_fail_entry(struct vcpu *vcpu)
{
	pr_err("vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", vcpu->id,
	       (unsigned long long)vcpu->run->fail_entry.hardware_entry_failure_reason);
	dump_registers(vcpu);
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
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (!atomic_load(&vm->stopping)) {
		uint32_t reason;
		exit_handler_fn handler;

		if (!atomic_load(&vm->first_run_ns)) {
			uint64_t zero = 0;

			atomic_compare_exchange_strong(&vm->first_run_ns, &zero, time_now_ns());
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				if (vcpu->profile && atomic_load(&vcpu->sample_pending))
					take_sample(vcpu);
				if (atomic_load(&vm->pause_requested))
					vm_vcpu_park(vm);
				continue;
			}
			vm_stop(vm, VM_STOP_ERROR, "vCPU %u: KVM_RUN failed: %s", vcpu->id, strerror(errno));
			break;
		}
		vcpu->nr_exits++;
		reason = vcpu->run->exit_reason;
		handler = reason < sizeof(exit_handlers) / sizeof(exit_handlers[0]) ? exit_handlers[reason] : NULL;
		if (!handler) {
			dump_registers(vcpu);
			vm_stop(vm, VM_STOP_ERROR, "vCPU %u: unhandled KVM exit reason %u", vcpu->id, reason);
			break;
		}
		if (handler(vcpu) == EXIT_STOP)
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	int ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);

	if (ret)
		return -ret;
	vcpu->thread_started = true;
	return 0;
}
