// SPDX-License-Identifier: MIT
/* A vCPU's emulation-failure exit run through kiln's emulator: the model is in vcpu_emulate.h. */
#include "arch/x86/vcpu_emulate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/log.h"

static int emu_translate(void *opaque, uint64_t gva, uint64_t *gpa, bool *writeable)
{
	const struct x86_vcpu_emu *v = opaque;
	struct kvm_translation tr = { .linear_address = gva };

	if (ioctl(v->vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -EFAULT;
	*gpa = tr.physical_address;
	*writeable = tr.writeable;
	return 0;
}

static void *emu_gpa_to_hva(void *opaque, uint64_t gpa, size_t len)
{
	const struct x86_vcpu_emu *v = opaque;

	return guest_memory_hva(v->mem, gpa, len);
}

/* The emulator stored into guest RAM from userspace, where KVM's dirty log cannot see it. */
static void emu_written(void *opaque, uint64_t gpa, size_t len)
{
	const struct x86_vcpu_emu *v = opaque;

	guest_memory_mark_written(v->mem, gpa, len);
}

#define XSAVE_MXCSR_OFFSET 24     /* legacy (FXSAVE) region, Intel SDM vol 1 s10.5.1 */
#define XSAVE_XSTATE_BV_OFFSET 512 /* XSAVE header */
#define XFEATURE_MASK_FPSSE 3ull

/*
 * x87/SSE state for the emulator. KVM_GET_FPU/KVM_SET_FPU carry the x87 and XMM registers but not
 * MXCSR (KVM leaves struct kvm_fpu's mxcsr unused), so MXCSR travels through the XSAVE area.
 */
static int emu_get_fpu(int fd, struct x86_emu_cpu *cpu)
{
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;

	if (ioctl(fd, KVM_GET_FPU, &cpu->fpu) < 0 || ioctl(fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	memcpy(&cpu->fpu.mxcsr, (uint8_t *)xsave.region + XSAVE_MXCSR_OFFSET, sizeof(cpu->fpu.mxcsr));
	cpu->xcr0 = 0; /* unknown unless KVM reports it */
	if (ioctl(fd, KVM_GET_XCRS, &xcrs) == 0) {
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
			if (xcrs.xcrs[i].xcr == 0)
				cpu->xcr0 = xcrs.xcrs[i].value;
	}
	return 0;
}

static int emu_set_fpu(int fd, const struct x86_emu_cpu *cpu)
{
	struct kvm_xsave xsave;
	uint64_t xstate_bv;
	uint8_t *region = (uint8_t *)xsave.region;

	if (ioctl(fd, KVM_SET_FPU, &cpu->fpu) < 0 || ioctl(fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	memcpy(region + XSAVE_MXCSR_OFFSET, &cpu->fpu.mxcsr, sizeof(cpu->fpu.mxcsr));
	/* KVM loads MXCSR from the area only when the SSE (or AVX) component is marked present. */
	memcpy(&xstate_bv, region + XSAVE_XSTATE_BV_OFFSET, sizeof(xstate_bv));
	xstate_bv |= XFEATURE_MASK_FPSSE;
	memcpy(region + XSAVE_XSTATE_BV_OFFSET, &xstate_bv, sizeof(xstate_bv));
	return ioctl(fd, KVM_SET_XSAVE, &xsave) < 0 ? -errno : 0;
}

/* Write back what the emulator changed, then inject the exception it queued. */
static int emu_commit(int fd, struct x86_emu_cpu *cpu)
{
	if (cpu->sregs_dirty && ioctl(fd, KVM_SET_SREGS, &cpu->sregs) < 0)
		return -errno;
	if (cpu->regs_dirty && ioctl(fd, KVM_SET_REGS, &cpu->regs) < 0)
		return -errno;
	if (cpu->fpu_dirty) {
		int ret = emu_set_fpu(fd, cpu);

		if (ret)
			return ret;
	}
	if (cpu->exception_pending) {
		struct kvm_vcpu_events ev;

		if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return -errno;
		ev.exception.injected = 1;
		ev.exception.nr = cpu->exception_vector;
		ev.exception.has_error_code = cpu->exception_has_error_code;
		ev.exception.error_code = cpu->exception_error_code;
		ev.flags = 0;
		if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return -errno;
	}
	return 0;
}

/* Log the instruction kiln cannot execute; its one-line reason into `err`. */
static void report_unemulated(const struct x86_vcpu_emu *v, const struct x86_emu_cpu *cpu, const uint8_t *insn,
			      size_t insn_len, char *err, size_t err_size)
{
	char text[96], hex[3 * 16 + 1] = "";

	if (insn_len)
		x86_emu_disasm(insn, insn_len, cpu->sregs.cs.l, cpu->regs.rip, text, sizeof(text));
	else
		snprintf(text, sizeof(text), "(instruction bytes not reported)");
	for (size_t i = 0; i < insn_len; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", insn[i]);
	pr_err("vCPU %u: the host cannot emulate the instruction at rip %016llx and kiln cannot either: %s [%s] (%s)",
	       v->id, cpu->regs.rip, text, hex, x86_emu_strerror(*v->emu));
	errmsg_set(err, err_size, "unemulated instruction at rip 0x%llx: %s", cpu->regs.rip, text);
}

int x86_vcpu_emulate(const struct x86_vcpu_emu *v, char *err, size_t err_size)
{
	const struct kvm_run *run = v->run;
	const struct x86_emu_mem_ops mem = {
		.translate = emu_translate, .gpa_to_hva = emu_gpa_to_hva, .written = emu_written, .opaque = (void *)v,
	};
	const uint8_t *insn = NULL;
	size_t insn_len = 0;
	struct x86_emu_cpu cpu;
	int ret;

	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size <= sizeof(run->emulation_failure.insn_bytes)) {
		insn = run->emulation_failure.insn_bytes;
		insn_len = run->emulation_failure.insn_size;
	}
	if (!*v->emu) {
		*v->emu = x86_emu_create();
		if (!*v->emu) {
			ret = -errno;
			errmsg_set(err, err_size, "cannot create the instruction emulator: %s", strerror(errno));
			return ret;
		}
	}
	memset(&cpu, 0, sizeof(cpu));
	if (ioctl(v->vcpu_fd, KVM_GET_REGS, &cpu.regs) < 0 || ioctl(v->vcpu_fd, KVM_GET_SREGS, &cpu.sregs) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "vCPU %u: cannot read state for emulation: %s", v->id, strerror(errno));
		return ret;
	}
	if (v->pvm) {
		ret = pvm_syscall_landing(v->vcpu_fd, v->pvm, &cpu.regs, &cpu.sregs);
		if (ret == 1)
			return 0;
		if (ret < 0) {
			errmsg_set(err, err_size, "vCPU %u: cannot complete a SYSCALL: %s", v->id, strerror(-ret));
			return ret;
		}
	}
	ret = emu_get_fpu(v->vcpu_fd, &cpu);
	if (ret) {
		errmsg_set(err, err_size, "vCPU %u: cannot read FPU state: %s", v->id, strerror(-ret));
		return ret;
	}
	if (x86_emu_step(*v->emu, &cpu, &mem, insn, insn_len, v->stats) != X86_EMU_OK) {
		report_unemulated(v, &cpu, insn, insn_len, err, err_size);
		return -ENOEXEC;
	}
	ret = emu_commit(v->vcpu_fd, &cpu);
	if (ret)
		errmsg_set(err, err_size, "vCPU %u: cannot write emulated state: %s", v->id, strerror(-ret));
	return ret;
}
