// SPDX-License-Identifier: MIT
/*
 * How the emulator's handlers see the vCPU and guest memory: the vCPU's mode (CPL, code size), exceptions
 * queued for the caller to inject, guest virtual ranges resolved through the guest page tables to host
 * memory (raising #PF/#GP as the CPU would), general-purpose registers and memory operands. Used by the
 * dedicated and direct handlers and by the Unicorn driver alike.
 */
#include "arch/x86/emulate_internal.h"

#include <errno.h>
#include <string.h>

/* Page-fault error code bits, Intel SDM vol. 3 s4.7. */
#define PF_P (1u << 0)
#define PF_W (1u << 1)
#define PF_U (1u << 2)
#define PF_I (1u << 4)

enum x86_emu_result emu_unsupported(struct x86_emu *emu, const char *why)
{
	emu->error = why;
	return X86_EMU_UNSUPPORTED;
}

/* ---- vCPU mode helpers ---- */

unsigned int emu_cpu_cpl(const struct x86_emu_cpu *cpu)
{
	if (!(cpu->sregs.cr0 & CR0_PE))
		return 0;
	return cpu->sregs.cs.selector & 3;
}

bool emu_cpu_long64(const struct x86_emu_cpu *cpu)
{
	return (cpu->sregs.efer & EFER_LMA) && cpu->sregs.cs.l;
}

/* Code size in bits: 64, 32 or 16. */
unsigned int emu_cpu_code_bits(const struct x86_emu_cpu *cpu)
{
	if (emu_cpu_long64(cpu))
		return 64;
	if ((cpu->sregs.cr0 & CR0_PE) && cpu->sregs.cs.db)
		return 32;
	return 16;
}

/* Advance rip by `len` with the wrap-around of the current code size. */
void emu_cpu_advance(struct x86_emu_cpu *cpu, size_t len)
{
	uint64_t rip = cpu->regs.rip + len;

	switch (emu_cpu_code_bits(cpu)) {
	case 32:
		rip = (uint32_t)rip;
		break;
	case 16:
		rip = (uint16_t)rip;
		break;
	default:
		break;
	}
	cpu->regs.rip = rip;
	cpu->regs_dirty = true;
}

void emu_queue_exception(struct x86_emu_cpu *cpu, uint8_t vector, bool has_error_code, uint32_t error_code)
{
	cpu->exception_pending = true;
	cpu->exception_vector = vector;
	cpu->exception_has_error_code = has_error_code;
	cpu->exception_error_code = error_code;
}

/* Queue #PF: CR2 goes through sregs, nothing else changes (Intel SDM vol. 3 s4.7). */
void emu_queue_page_fault(struct x86_emu_cpu *cpu, uint64_t addr, uint32_t error_code)
{
	cpu->sregs.cr2 = addr;
	cpu->sregs_dirty = true;
	emu_queue_exception(cpu, VEC_PF, true, error_code);
}

uint32_t emu_pf_error_code(const struct x86_emu_cpu *cpu, enum emu_access acc, bool present)
{
	uint32_t code = present ? PF_P : 0;

	if (acc == ACC_WRITE)
		code |= PF_W;
	if (emu_cpu_cpl(cpu) == 3)
		code |= PF_U;
	/* I/D is reported only when instruction fetches can fault for NX or SMEP (SDM vol. 3 s4.7). */
	if (acc == ACC_FETCH && ((cpu->sregs.cr4 & CR4_SMEP) ||
				 ((cpu->sregs.cr4 & CR4_PAE) && (cpu->sregs.efer & EFER_NXE))))
		code |= PF_I;
	return code;
}

bool emu_is_canonical(uint64_t va)
{
	return (uint64_t)((int64_t)(va << 16) >> 16) == va;
}

/* Supervisor writes ignore read-only pages unless CR0.WP (SDM vol. 3 s4.6.1). */
bool emu_write_protect_applies(const struct x86_emu_cpu *cpu)
{
	return emu_cpu_cpl(cpu) == 3 || (cpu->sregs.cr0 & CR0_WP);
}

/* ---- guest memory for the directly implemented instructions ---- */

/*
 * Resolve [gva, gva + len) (len <= 4096) for an access. Returns 0, -EFAULT with the fault recorded in emu
 * (#PF, or #GP for a non-canonical address), or -ENXIO when the range is not guest RAM.
 */
int emu_span_get(struct x86_emu *emu, uint64_t gva, size_t len, enum emu_access acc, struct guest_span *span)
{
	struct x86_emu_cpu *cpu = emu->cpu;
	size_t done = 0;

	span->nr = 0;
	span->mem = emu->mem;
	if (len == 0 || len > PAGE_SIZE)
		return -EINVAL;
	if (emu_cpu_long64(cpu) && (!emu_is_canonical(gva) || !emu_is_canonical(gva + len - 1))) {
		emu->gp_fault = true;
		return -EFAULT;
	}
	while (done < len) {
		uint64_t va = gva + done;
		size_t chunk = PAGE_SIZE - (va & ~PAGE_MASK);
		uint64_t gpa;
		bool writeable = false;
		void *hva;

		if (chunk > len - done)
			chunk = len - done;
		if (emu->mem->translate(emu->mem->opaque, va & PAGE_MASK, &gpa, &writeable) < 0) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = emu_pf_error_code(cpu, acc, false);
			return -EFAULT;
		}
		if (acc == ACC_WRITE && !writeable && emu_write_protect_applies(cpu)) {
			emu->fault = true;
			emu->fault_addr = va;
			emu->fault_code = emu_pf_error_code(cpu, acc, true);
			return -EFAULT;
		}
		gpa = (gpa & PAGE_MASK) + (va & ~PAGE_MASK);
		hva = emu->mem->gpa_to_hva(emu->mem->opaque, gpa, chunk);
		if (!hva)
			return -ENXIO;
		span->hva[span->nr] = hva;
		span->gpa[span->nr] = gpa;
		span->len[span->nr] = chunk;
		span->nr++;
		done += chunk;
	}
	return 0;
}

/*
 * Copy between the span and a buffer, piece by piece: a load into `out`, or a store from `in`, which with
 * `in` NULL only announces the store. One walk, so that loads and stores split the span alike.
 */
static void span_copy(const struct guest_span *span, size_t off, bool load, uint8_t *out, const uint8_t *in,
		      size_t len)
{
	unsigned int i;

	for (i = 0; i < span->nr && len; i++) {
		size_t n;

		if (off >= span->len[i]) {
			off -= span->len[i];
			continue;
		}
		n = span->len[i] - off;
		if (n > len)
			n = len;
		if (load) {
			memcpy(out, span->hva[i] + off, n);
			out += n;
		} else {
			if (in) {
				memcpy(span->hva[i] + off, in, n);
				in += n;
			}
			/* After the store: a write tracker that sees the page must see the bytes. */
			if (span->mem && span->mem->written)
				span->mem->written(span->mem->opaque, span->gpa[i] + off, n);
		}
		len -= n;
		off = 0;
	}
}

void emu_span_read(const struct guest_span *span, size_t off, void *buf, size_t len)
{
	span_copy(span, off, true, buf, NULL, len);
}

void emu_span_write(const struct guest_span *span, size_t off, const void *buf, size_t len)
{
	span_copy(span, off, false, NULL, buf, len);
}

void emu_span_written(const struct guest_span *span, size_t off, size_t len)
{
	span_copy(span, off, false, NULL, NULL, len);
}

/* Turn a emu_span_get() failure into the step's result. */
enum x86_emu_result emu_span_failed(struct x86_emu *emu, int ret)
{
	if (ret == -EFAULT) {
		if (emu->gp_fault)
			emu_queue_exception(emu->cpu, VEC_GP, true, 0);
		else
			emu_queue_page_fault(emu->cpu, emu->fault_addr, emu->fault_code);
		return X86_EMU_OK;
	}
	if (ret == -ENXIO)
		return emu_unsupported(emu, "memory operand is not guest RAM (MMIO)");
	return emu_unsupported(emu, "memory operand out of range");
}

/* ---- registers and operands ---- */

/* The kvm_regs slot of a general-purpose register of any width, NULL for others. */
static uint64_t *gpr_slot(struct kvm_regs *regs, ZydisRegister reg)
{
	switch (ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, reg)) {
	case ZYDIS_REGISTER_RAX: return (uint64_t *)&regs->rax;
	case ZYDIS_REGISTER_RBX: return (uint64_t *)&regs->rbx;
	case ZYDIS_REGISTER_RCX: return (uint64_t *)&regs->rcx;
	case ZYDIS_REGISTER_RDX: return (uint64_t *)&regs->rdx;
	case ZYDIS_REGISTER_RSI: return (uint64_t *)&regs->rsi;
	case ZYDIS_REGISTER_RDI: return (uint64_t *)&regs->rdi;
	case ZYDIS_REGISTER_RSP: return (uint64_t *)&regs->rsp;
	case ZYDIS_REGISTER_RBP: return (uint64_t *)&regs->rbp;
	case ZYDIS_REGISTER_R8: return (uint64_t *)&regs->r8;
	case ZYDIS_REGISTER_R9: return (uint64_t *)&regs->r9;
	case ZYDIS_REGISTER_R10: return (uint64_t *)&regs->r10;
	case ZYDIS_REGISTER_R11: return (uint64_t *)&regs->r11;
	case ZYDIS_REGISTER_R12: return (uint64_t *)&regs->r12;
	case ZYDIS_REGISTER_R13: return (uint64_t *)&regs->r13;
	case ZYDIS_REGISTER_R14: return (uint64_t *)&regs->r14;
	case ZYDIS_REGISTER_R15: return (uint64_t *)&regs->r15;
	default: return NULL;
	}
}

static bool gpr_is_high_byte(ZydisRegister reg)
{
	return reg == ZYDIS_REGISTER_AH || reg == ZYDIS_REGISTER_BH || reg == ZYDIS_REGISTER_CH ||
	       reg == ZYDIS_REGISTER_DH;
}

int emu_gpr_read(struct kvm_regs *regs, ZydisRegister reg, uint64_t *val)
{
	uint64_t *slot = gpr_slot(regs, reg);
	unsigned int width = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, reg);

	if (!slot)
		return -EINVAL;
	if (gpr_is_high_byte(reg))
		*val = (*slot >> 8) & 0xff;
	else if (width >= 64)
		*val = *slot;
	else
		*val = *slot & ((1ull << width) - 1);
	return 0;
}

/* Write with x86-64 semantics: 32-bit writes zero-extend, 8/16-bit writes merge. */
int emu_gpr_write(struct kvm_regs *regs, ZydisRegister reg, uint64_t val)
{
	uint64_t *slot = gpr_slot(regs, reg);
	unsigned int width = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, reg);

	if (!slot)
		return -EINVAL;
	if (gpr_is_high_byte(reg))
		*slot = (*slot & ~0xff00ull) | ((val & 0xff) << 8);
	else if (width == 64)
		*slot = val;
	else if (width == 32)
		*slot = (uint32_t)val;
	else
		*slot = (*slot & ~((1ull << width) - 1)) | (val & ((1ull << width) - 1));
	return 0;
}

/*
 * Linear address of a memory operand in 64-bit mode: base + index * scale + disp, truncated to the address
 * size, plus the FS/GS base (the other segment bases are 0 in 64-bit mode). -EINVAL for operand kinds
 * that are not plain memory references.
 */
int emu_operand_address(const struct x86_emu_cpu *cpu, const struct emu_insn *ei, const ZydisDecodedOperand *op,
			uint64_t *gva)
{
	struct kvm_regs regs = cpu->regs;
	uint64_t ea = (uint64_t)op->mem.disp.value;
	uint64_t v;

	if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
		return -EINVAL;
	if (op->mem.base == ZYDIS_REGISTER_RIP || op->mem.base == ZYDIS_REGISTER_EIP) {
		ea += cpu->regs.rip + ei->in.length;
	} else if (op->mem.base != ZYDIS_REGISTER_NONE) {
		if (emu_gpr_read(&regs, op->mem.base, &v) < 0)
			return -EINVAL;
		ea += v;
	}
	if (op->mem.index != ZYDIS_REGISTER_NONE) {
		if (emu_gpr_read(&regs, op->mem.index, &v) < 0)
			return -EINVAL;
		ea += v * op->mem.scale;
	}
	if (ei->in.address_width == 32)
		ea = (uint32_t)ea;
	else if (ei->in.address_width == 16)
		ea = (uint16_t)ea;
	if (op->mem.segment == ZYDIS_REGISTER_FS)
		ea += cpu->sregs.fs.base;
	else if (op->mem.segment == ZYDIS_REGISTER_GS)
		ea += cpu->sregs.gs.base;
	*gva = ea;
	return 0;
}

/* The first explicit memory operand, NULL if none. */
const ZydisDecodedOperand *emu_mem_operand(const struct emu_insn *ei)
{
	unsigned int i;

	for (i = 0; i < ei->in.operand_count_visible; i++)
		if (ei->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
			return &ei->ops[i];
	return NULL;
}

/* ---- operands and state checks shared by the direct handlers and the Unicorn path ---- */

/* #UD/#NM for instructions touching SSE state (SDM vol. 3 s13.2, vol. 2 table 2-18). */
bool emu_sse_unusable(struct x86_emu_cpu *cpu)
{
	if ((cpu->sregs.cr0 & CR0_EM) || !(cpu->sregs.cr4 & CR4_OSFXSR)) {
		emu_queue_exception(cpu, VEC_UD, false, 0);
		return true;
	}
	if (cpu->sregs.cr0 & CR0_TS) {
		emu_queue_exception(cpu, VEC_NM, false, 0);
		return true;
	}
	return false;
}

/* Read a register or memory source operand of up to 8 bytes. */
int emu_read_source(struct x86_emu *emu, const struct emu_insn *ei, const ZydisDecodedOperand *op, uint64_t *val)
{
	struct guest_span span;
	uint64_t gva;
	int ret;

	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER)
		return emu_gpr_read(&emu->cpu->regs, op->reg.value, val);
	if (emu_operand_address(emu->cpu, ei, op, &gva) < 0 || op->size > 64)
		return -EINVAL;
	ret = emu_span_get(emu, gva, op->size / 8, ACC_READ, &span);
	if (ret < 0)
		return ret;
	*val = 0;
	emu_span_read(&span, 0, val, op->size / 8);
	return 0;
}
