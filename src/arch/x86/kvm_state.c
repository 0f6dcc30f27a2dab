// SPDX-License-Identifier: MIT
/* x86 KVM state for snapshots: the model and the restore order are in kvm_state.h. */
#include "arch/x86/kvm_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/log.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0u
#define MSR_BATCH 64u   /* entries per KVM_GET/SET_MSRS call */

/* The highest KVM_MP_STATE_* (KVM_MP_STATE_AP_RESET_HOLD). */
#define MP_STATE_MAX 9u

int x86_msr_list_get(int kvm_fd, struct x86_msr_list *list)
{
	struct kvm_msr_list *l = malloc(sizeof(*l) + X86_MAX_MSRS * sizeof(uint32_t));

	if (!l)
		return -ENOMEM;
	l->nmsrs = X86_MAX_MSRS;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int ret = -errno;

		free(l);
		return ret;
	}
	list->nr = l->nmsrs < X86_MAX_MSRS ? l->nmsrs : X86_MAX_MSRS;
	memcpy(list->index, l->indices, list->nr * sizeof(uint32_t));
	free(l);
	return 0;
}

/* kvm_msrs with room for a batch. */
struct msr_batch {
	struct kvm_msrs hdr;
	struct kvm_msr_entry entries[MSR_BATCH];
};

/*
 * Read every MSR of `list` that KVM accepts: KVM_GET_MSRS stops at the first one it refuses and says
 * how many it read, so the refused one is skipped and the batch goes on after it.
 */
static int get_msrs(int vcpu_fd, const struct x86_msr_list *list, struct x86_vcpu_state *st)
{
	struct msr_batch b;
	uint32_t next = 0;

	st->nr_msrs = 0;
	while (next < list->nr) {
		uint32_t n = list->nr - next < MSR_BATCH ? list->nr - next : MSR_BATCH;
		int got;

		memset(&b, 0, sizeof(b));
		b.hdr.nmsrs = n;
		for (uint32_t i = 0; i < n; i++)
			b.entries[i].index = list->index[next + i];
		got = ioctl(vcpu_fd, KVM_GET_MSRS, &b);
		if (got < 0)
			return -errno;
		for (int i = 0; i < got; i++)
			st->msrs[st->nr_msrs++] = b.entries[i];
		/* entries[got] was refused (not for this vCPU's CPUID): skip it. */
		next += (uint32_t)got + ((uint32_t)got < n ? 1 : 0);
	}
	return 0;
}

#define GET(req, arg, what)                                                                      \
	do {                                                                                     \
		if (ioctl(vcpu_fd, req, arg) < 0) {                                              \
			ret = -errno;                                                            \
			errmsg_set(err, err_size, "%s: %s", what, strerror(errno));              \
			goto out;                                                                \
		}                                                                                \
	} while (0)

int x86_vcpu_state_get(int vcpu_fd, const struct x86_msr_list *list, uint32_t xsave_size, struct x86_vcpu_state *st,
		       char *err, size_t err_size)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_xsave *xsave = NULL;
	int ret = 0, khz;

	memset(st, 0, sizeof(*st));
	if (xsave_size < sizeof(struct kvm_xsave))
		xsave_size = sizeof(struct kvm_xsave);
	if (xsave_size > X86_XSAVE_MAX_SIZE) {
		errmsg_set(err, err_size, "XSAVE area of %u bytes: more than kiln keeps (%u)", xsave_size,
			   X86_XSAVE_MAX_SIZE);
		return -ENOTSUP;
	}
	xsave = calloc(1, xsave_size);
	cpuid = calloc(1, sizeof(*cpuid) + X86_MAX_CPUID * sizeof(cpuid->entries[0]));
	if (!xsave || !cpuid) {
		ret = -ENOMEM;
		goto out;
	}
	GET(KVM_GET_REGS, &st->regs, "KVM_GET_REGS");
	GET(KVM_GET_SREGS, &st->sregs, "KVM_GET_SREGS");
	/* KVM_GET_XSAVE2 when the area outgrows struct kvm_xsave (api.rst "KVM_GET_XSAVE2"). */
	GET(xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave, "KVM_GET_XSAVE");
	st->xsave_size = xsave_size;
	memcpy(st->xsave, xsave, xsave_size);
	GET(KVM_GET_XCRS, &st->xcrs, "KVM_GET_XCRS");
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		st->xcrs.nr_xcrs = KVM_MAX_XCRS;
	ret = get_msrs(vcpu_fd, list, st);
	if (ret) {
		errmsg_set(err, err_size, "KVM_GET_MSRS: %s", strerror(-ret));
		goto out;
	}
	GET(KVM_GET_LAPIC, &st->lapic, "KVM_GET_LAPIC");
	GET(KVM_GET_VCPU_EVENTS, &st->events, "KVM_GET_VCPU_EVENTS");
	GET(KVM_GET_DEBUGREGS, &st->debugregs, "KVM_GET_DEBUGREGS");
	GET(KVM_GET_MP_STATE, &st->mp_state, "KVM_GET_MP_STATE");
	cpuid->nent = X86_MAX_CPUID;
	GET(KVM_GET_CPUID2, cpuid, "KVM_GET_CPUID2");
	st->nr_cpuid = cpuid->nent < X86_MAX_CPUID ? cpuid->nent : X86_MAX_CPUID;
	memcpy(st->cpuid, cpuid->entries, st->nr_cpuid * sizeof(st->cpuid[0]));
	khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	st->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
out:
	free(xsave);
	free(cpuid);
	return ret;
}

#undef GET

/* Write MSRs (all, or all but / only the TSC deadline); warn about each one KVM refuses. */
static int set_msrs(int vcpu_fd, const struct x86_vcpu_state *st, bool deadline)
{
	struct msr_batch b;
	uint32_t i = 0;

	while (i < st->nr_msrs) {
		uint32_t n = 0;
		int done;

		memset(&b, 0, sizeof(b));
		for (; i < st->nr_msrs && n < MSR_BATCH; i++)
			if ((st->msrs[i].index == MSR_IA32_TSC_DEADLINE) == deadline)
				b.entries[n++] = st->msrs[i];
		b.hdr.nmsrs = n;
		while (b.hdr.nmsrs) {
			done = ioctl(vcpu_fd, KVM_SET_MSRS, &b);
			if (done < 0)
				return -errno;
			if ((uint32_t)done == b.hdr.nmsrs)
				break;
			pr_warn("restore: KVM refused MSR 0x%x = 0x%llx; the guest continues without it",
				b.entries[done].index, (unsigned long long)b.entries[done].data);
			memmove(b.entries, b.entries + done + 1, (b.hdr.nmsrs - (uint32_t)done - 1) * sizeof(b.entries[0]));
			b.hdr.nmsrs -= (uint32_t)done + 1;
		}
	}
	return 0;
}

#define SET(req, arg, what)                                                                      \
	do {                                                                                     \
		if (ioctl(vcpu_fd, req, arg) < 0) {                                              \
			ret = -errno;                                                            \
			errmsg_set(err, err_size, "%s refused the snapshot's state: %s", what,   \
				   strerror(errno));                                             \
			goto out;                                                                \
		}                                                                                \
	} while (0)

int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *st, char *err, size_t err_size)
{
	struct kvm_vcpu_events events = st->events;
	struct kvm_cpuid2 *cpuid;
	struct kvm_xsave *xsave;
	int ret = 0, khz;

	cpuid = calloc(1, sizeof(*cpuid) + X86_MAX_CPUID * sizeof(cpuid->entries[0]));
	xsave = calloc(1, st->xsave_size > sizeof(*xsave) ? st->xsave_size : sizeof(*xsave));
	if (!cpuid || !xsave) {
		ret = -ENOMEM;
		goto out;
	}
	if (st->nr_cpuid) {
		cpuid->nent = st->nr_cpuid;
		memcpy(cpuid->entries, st->cpuid, st->nr_cpuid * sizeof(st->cpuid[0]));
		SET(KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
	}
	khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (st->tsc_khz && khz > 0 && (uint32_t)khz != st->tsc_khz &&
	    ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)st->tsc_khz) < 0)
		pr_warn("restore: the snapshot's TSC ran at %u kHz, this host's at %d kHz and KVM cannot scale it: "
			"guest time runs %s", st->tsc_khz, khz, (uint32_t)khz > st->tsc_khz ? "fast" : "slow");
	SET(KVM_SET_SREGS, &st->sregs, "KVM_SET_SREGS");
	SET(KVM_SET_REGS, &st->regs, "KVM_SET_REGS");
	if (st->xcrs.nr_xcrs)
		SET(KVM_SET_XCRS, &st->xcrs, "KVM_SET_XCRS");
	memcpy(xsave, st->xsave, st->xsave_size);
	SET(KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE");
	ret = set_msrs(vcpu_fd, st, false);
	if (ret) {
		errmsg_set(err, err_size, "KVM_SET_MSRS: %s", strerror(-ret));
		goto out;
	}
	SET(KVM_SET_LAPIC, &st->lapic, "KVM_SET_LAPIC");
	ret = set_msrs(vcpu_fd, st, true);
	if (ret) {
		errmsg_set(err, err_size, "KVM_SET_MSRS (TSC deadline): %s", strerror(-ret));
		goto out;
	}
	/* What KVM_GET_VCPU_EVENTS reported valid, and the NMI and SIPI fields it always fills. */
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	SET(KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
	SET(KVM_SET_MP_STATE, &st->mp_state, "KVM_SET_MP_STATE");
	SET(KVM_SET_DEBUGREGS, &st->debugregs, "KVM_SET_DEBUGREGS");
out:
	free(cpuid);
	free(xsave);
	return ret;
}

#undef SET

/* ---- the VCPU section's field table ---- */

/* A byte KVM uses as a boolean: 0 or 1 on the wire, as in the struct (not CODEC_BOOL: the member is a __u8). */
#define FLAG_U8(T, f) CODEC_RANGE(T, f, 1, 1, 0, 1)

/* The 18 general registers in struct kvm_regs order. */
static const struct codec_field regs_fields[] = {
	CODEC_UINT(struct kvm_regs, rax, 8, 1),    CODEC_UINT(struct kvm_regs, rbx, 8, 1),
	CODEC_UINT(struct kvm_regs, rcx, 8, 1),    CODEC_UINT(struct kvm_regs, rdx, 8, 1),
	CODEC_UINT(struct kvm_regs, rsi, 8, 1),    CODEC_UINT(struct kvm_regs, rdi, 8, 1),
	CODEC_UINT(struct kvm_regs, rsp, 8, 1),    CODEC_UINT(struct kvm_regs, rbp, 8, 1),
	CODEC_UINT(struct kvm_regs, r8, 8, 1),     CODEC_UINT(struct kvm_regs, r9, 8, 1),
	CODEC_UINT(struct kvm_regs, r10, 8, 1),    CODEC_UINT(struct kvm_regs, r11, 8, 1),
	CODEC_UINT(struct kvm_regs, r12, 8, 1),    CODEC_UINT(struct kvm_regs, r13, 8, 1),
	CODEC_UINT(struct kvm_regs, r14, 8, 1),    CODEC_UINT(struct kvm_regs, r15, 8, 1),
	CODEC_UINT(struct kvm_regs, rip, 8, 1),    CODEC_UINT(struct kvm_regs, rflags, 8, 1),
};
static const struct codec_table regs_codec = CODEC_TABLE(struct kvm_regs, "regs", 1, 1, regs_fields, NULL);

/* A segment register as KVM_GET_SREGS gives it: a 4-bit type, a DPL, the rest one-bit attributes. */
static const struct codec_field segment_fields[] = {
	CODEC_UINT(struct kvm_segment, base, 8, 1),
	CODEC_UINT(struct kvm_segment, limit, 4, 1),
	CODEC_UINT(struct kvm_segment, selector, 2, 1),
	CODEC_RANGE(struct kvm_segment, type, 1, 1, 0, 15),
	FLAG_U8(struct kvm_segment, present),
	CODEC_RANGE(struct kvm_segment, dpl, 1, 1, 0, 3),
	FLAG_U8(struct kvm_segment, db),
	FLAG_U8(struct kvm_segment, s),
	FLAG_U8(struct kvm_segment, l),
	FLAG_U8(struct kvm_segment, g),
	FLAG_U8(struct kvm_segment, avl),
	FLAG_U8(struct kvm_segment, unusable),
	CODEC_PAD(1, 1), /* struct kvm_segment's padding */
};
static const struct codec_table segment_codec = CODEC_TABLE(struct kvm_segment, "segment", 1, 1, segment_fields, NULL);

static const struct codec_field dtable_fields[] = {
	CODEC_UINT(struct kvm_dtable, base, 8, 1),
	CODEC_UINT(struct kvm_dtable, limit, 2, 1),
};
static const struct codec_table dtable_codec = CODEC_TABLE(struct kvm_dtable, "dtable", 1, 1, dtable_fields, NULL);

#define SEGMENT(f) CODEC_STRUCT(struct kvm_sregs, f, &segment_codec, 1)

static const struct codec_field sregs_fields[] = {
	SEGMENT(cs), SEGMENT(ds), SEGMENT(es), SEGMENT(fs), SEGMENT(gs), SEGMENT(ss), SEGMENT(tr), SEGMENT(ldt),
	CODEC_STRUCT(struct kvm_sregs, gdt, &dtable_codec, 1),
	CODEC_STRUCT(struct kvm_sregs, idt, &dtable_codec, 1),
	CODEC_UINT(struct kvm_sregs, cr0, 8, 1),
	CODEC_UINT(struct kvm_sregs, cr2, 8, 1),
	CODEC_UINT(struct kvm_sregs, cr3, 8, 1),
	CODEC_UINT(struct kvm_sregs, cr4, 8, 1),
	CODEC_UINT(struct kvm_sregs, cr8, 8, 1),
	CODEC_UINT(struct kvm_sregs, efer, 8, 1),
	CODEC_UINT(struct kvm_sregs, apic_base, 8, 1),
	CODEC_UINT_ARRAY(struct kvm_sregs, interrupt_bitmap, 8, 1),
};
static const struct codec_table sregs_codec = CODEC_TABLE(struct kvm_sregs, "sregs", 1, 1, sregs_fields, NULL);

#undef SEGMENT

static const struct codec_field xcr_fields[] = {
	CODEC_UINT(struct kvm_xcr, xcr, 4, 1),
	CODEC_UINT(struct kvm_xcr, value, 8, 1),
};
static const struct codec_table xcr_codec = CODEC_TABLE(struct kvm_xcr, "xcr", 1, 1, xcr_fields, NULL);

static const struct codec_field xcrs_fields[] = {
	CODEC_RANGE(struct kvm_xcrs, nr_xcrs, 4, 1, 0, KVM_MAX_XCRS),
	CODEC_UINT(struct kvm_xcrs, flags, 4, 1),
	CODEC_VARRAY(struct kvm_xcrs, xcrs, nr_xcrs, &xcr_codec, 1),
};
static const struct codec_table xcrs_codec = CODEC_TABLE(struct kvm_xcrs, "xcrs", 1, 1, xcrs_fields, NULL);

static const struct codec_field msr_fields[] = {
	CODEC_UINT(struct kvm_msr_entry, index, 4, 1),
	CODEC_UINT(struct kvm_msr_entry, data, 8, 1),
};
static const struct codec_table msr_codec = CODEC_TABLE(struct kvm_msr_entry, "msr", 1, 1, msr_fields, NULL);

/* KVM_GET_VCPU_EVENTS: vectors below 32 for exceptions, the rest booleans; `flags` is checked in vcpu_check. */
static const struct codec_field events_fields[] = {
	FLAG_U8(struct kvm_vcpu_events, exception.injected),
	CODEC_RANGE(struct kvm_vcpu_events, exception.nr, 1, 1, 0, 31),
	FLAG_U8(struct kvm_vcpu_events, exception.has_error_code),
	FLAG_U8(struct kvm_vcpu_events, exception.pending),
	CODEC_UINT(struct kvm_vcpu_events, exception.error_code, 4, 1),
	FLAG_U8(struct kvm_vcpu_events, interrupt.injected),
	CODEC_UINT(struct kvm_vcpu_events, interrupt.nr, 1, 1),
	FLAG_U8(struct kvm_vcpu_events, interrupt.soft),
	CODEC_UINT(struct kvm_vcpu_events, interrupt.shadow, 1, 1),
	FLAG_U8(struct kvm_vcpu_events, nmi.injected),
	FLAG_U8(struct kvm_vcpu_events, nmi.pending),
	FLAG_U8(struct kvm_vcpu_events, nmi.masked),
	CODEC_UINT(struct kvm_vcpu_events, sipi_vector, 4, 1),
	CODEC_UINT(struct kvm_vcpu_events, flags, 4, 1),
	FLAG_U8(struct kvm_vcpu_events, smi.smm),
	FLAG_U8(struct kvm_vcpu_events, smi.pending),
	FLAG_U8(struct kvm_vcpu_events, smi.smm_inside_nmi),
	FLAG_U8(struct kvm_vcpu_events, smi.latched_init),
	FLAG_U8(struct kvm_vcpu_events, triple_fault.pending),
	FLAG_U8(struct kvm_vcpu_events, exception_has_payload),
	CODEC_UINT(struct kvm_vcpu_events, exception_payload, 8, 1),
};
static const struct codec_table events_codec = CODEC_TABLE(struct kvm_vcpu_events, "events", 1, 1, events_fields,
							   NULL);

static const struct codec_field debugregs_fields[] = {
	CODEC_UINT_ARRAY(struct kvm_debugregs, db, 8, 1),
	CODEC_UINT(struct kvm_debugregs, dr6, 8, 1),
	CODEC_UINT(struct kvm_debugregs, dr7, 8, 1),
	CODEC_UINT(struct kvm_debugregs, flags, 8, 1),
};
static const struct codec_table debugregs_codec = CODEC_TABLE(struct kvm_debugregs, "debugregs", 1, 1,
							      debugregs_fields, NULL);

static const struct codec_field cpuid_fields[] = {
	CODEC_UINT(struct kvm_cpuid_entry2, function, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, index, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, flags, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, eax, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, ebx, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, ecx, 4, 1),
	CODEC_UINT(struct kvm_cpuid_entry2, edx, 4, 1),
};
static const struct codec_table cpuid_codec = CODEC_TABLE(struct kvm_cpuid_entry2, "cpuid", 1, 1, cpuid_fields,
							  NULL);

#define VCPU_EVENT_FLAGS                                                                                       \
	(uint32_t)(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW | \
		   KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

/* What the table cannot say: XSAVE areas come in 64-byte units (SDM vol 1 s13.4), the event flags KVM knows. */
static int vcpu_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct x86_vcpu_state *st = p;

	(void)version;
	if (st->xsave_size % 64) {
		errmsg_set(err, err_size, "vCPU state: xsave_size is %u, not a multiple of 64", st->xsave_size);
		return -EINVAL;
	}
	if (st->events.flags & ~VCPU_EVENT_FLAGS) {
		errmsg_set(err, err_size, "vCPU state: events.flags has unknown bits 0x%x",
			   st->events.flags & ~VCPU_EVENT_FLAGS);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field vcpu_fields[] = {
	CODEC_STRUCT(struct x86_vcpu_state, regs, &regs_codec, 1),
	CODEC_STRUCT(struct x86_vcpu_state, sregs, &sregs_codec, 1),
	CODEC_RANGE(struct x86_vcpu_state, xsave_size, 4, 1, sizeof(struct kvm_xsave), X86_XSAVE_MAX_SIZE),
	CODEC_UINT_VARRAY(struct x86_vcpu_state, xsave, xsave_size, 1, 1),
	CODEC_STRUCT(struct x86_vcpu_state, xcrs, &xcrs_codec, 1),
	CODEC_RANGE(struct x86_vcpu_state, nr_msrs, 4, 1, 0, X86_MAX_MSRS),
	CODEC_VARRAY(struct x86_vcpu_state, msrs, nr_msrs, &msr_codec, 1),
	CODEC_BYTES(struct x86_vcpu_state, lapic.regs, 1),
	CODEC_STRUCT(struct x86_vcpu_state, events, &events_codec, 1),
	CODEC_STRUCT(struct x86_vcpu_state, debugregs, &debugregs_codec, 1),
	CODEC_RANGE(struct x86_vcpu_state, mp_state.mp_state, 4, 1, 0, MP_STATE_MAX),
	CODEC_UINT(struct x86_vcpu_state, tsc_khz, 4, 1),
	CODEC_RANGE(struct x86_vcpu_state, nr_cpuid, 4, 1, 0, X86_MAX_CPUID),
	CODEC_VARRAY(struct x86_vcpu_state, cpuid, nr_cpuid, &cpuid_codec, 1),
};
const struct codec_table x86_vcpu_state_codec = CODEC_TABLE(struct x86_vcpu_state, "vCPU state", 1, 1, vcpu_fields,
							    vcpu_check);

/* ---- irqchip, PIT, clock ---- */

int x86_irqchip_state_get(int vm_fd, struct x86_irqchip_state *st)
{
	struct kvm_irqchip chip;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return -errno;
		if (id == KVM_IRQCHIP_IOAPIC)
			st->ioapic = chip.chip.ioapic;
		else
			st->pic[id] = chip.chip.pic;
	}
	return 0;
}

int x86_irqchip_state_set(int vm_fd, const struct x86_irqchip_state *st)
{
	struct kvm_irqchip chip;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			chip.chip.ioapic = st->ioapic;
		else
			chip.chip.pic = st->pic[id];
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return -errno;
	}
	return 0;
}

int x86_pit_state_get(int vm_fd, struct kvm_pit_state2 *st)
{
	memset(st, 0, sizeof(*st));
	return ioctl(vm_fd, KVM_GET_PIT2, st) < 0 ? -errno : 0;
}

int x86_pit_state_set(int vm_fd, const struct kvm_pit_state2 *st)
{
	struct kvm_pit_state2 copy = *st;

	return ioctl(vm_fd, KVM_SET_PIT2, &copy) < 0 ? -errno : 0;
}

/* ---- the IRQC, PIT and CLCK field tables ---- */

/* KVM uses priority_add and init_state as small numbers; the flags are booleans (8259A data sheet). */
static const struct codec_field pic_fields[] = {
	CODEC_UINT(struct kvm_pic_state, last_irr, 1, 1),
	CODEC_UINT(struct kvm_pic_state, irr, 1, 1),
	CODEC_UINT(struct kvm_pic_state, imr, 1, 1),
	CODEC_UINT(struct kvm_pic_state, isr, 1, 1),
	CODEC_RANGE(struct kvm_pic_state, priority_add, 1, 1, 0, 7),
	CODEC_UINT(struct kvm_pic_state, irq_base, 1, 1),
	FLAG_U8(struct kvm_pic_state, read_reg_select),
	FLAG_U8(struct kvm_pic_state, poll),
	FLAG_U8(struct kvm_pic_state, special_mask),
	CODEC_RANGE(struct kvm_pic_state, init_state, 1, 1, 0, 3),
	FLAG_U8(struct kvm_pic_state, auto_eoi),
	FLAG_U8(struct kvm_pic_state, rotate_on_auto_eoi),
	FLAG_U8(struct kvm_pic_state, special_fully_nested_mode),
	FLAG_U8(struct kvm_pic_state, init4),
	CODEC_UINT(struct kvm_pic_state, elcr, 1, 1),
	CODEC_UINT(struct kvm_pic_state, elcr_mask, 1, 1),
};
static const struct codec_table pic_codec = CODEC_TABLE(struct kvm_pic_state, "PIC", 1, 1, pic_fields, NULL);

static const struct codec_field ioapic_fields[] = {
	CODEC_UINT(struct kvm_ioapic_state, base_address, 8, 1),
	CODEC_UINT(struct kvm_ioapic_state, ioregsel, 4, 1),
	CODEC_UINT(struct kvm_ioapic_state, id, 4, 1),
	CODEC_RANGE(struct kvm_ioapic_state, irr, 4, 1, 0, (1u << KVM_IOAPIC_NUM_PINS) - 1), /* a bit per pin */
	CODEC_UINT_ARRAY(struct kvm_ioapic_state, redirtbl, 8, 1), /* each entry's `bits` */
};
static const struct codec_table ioapic_codec = CODEC_TABLE(struct kvm_ioapic_state, "IOAPIC", 1, 1, ioapic_fields,
							   NULL);

/* An ICW2 vector base has its low 3 bits zero (8259A data sheet): the IRQ number goes there. */
static int irqchip_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct x86_irqchip_state *st = p;

	(void)version;
	for (unsigned int i = 0; i < 2; i++)
		if (st->pic[i].irq_base & 7) {
			errmsg_set(err, err_size, "irqchip state: pic[%u].irq_base is 0x%x, not a multiple of 8", i,
				   st->pic[i].irq_base);
			return -EINVAL;
		}
	return 0;
}

static const struct codec_field irqchip_fields[] = {
	CODEC_ARRAY(struct x86_irqchip_state, pic, &pic_codec, 1),
	CODEC_STRUCT(struct x86_irqchip_state, ioapic, &ioapic_codec, 1),
};
const struct codec_table x86_irqchip_state_codec = CODEC_TABLE(struct x86_irqchip_state, "irqchip state", 1, 1,
							       irqchip_fields, irqchip_check);

/*
 * 8254 data sheet: counts up to 65536, modes 0-5 (6 and 7 alias 2 and 3), RW modes 1-3; KVM keeps mode
 * 0xff and RW mode 0 for a channel never programmed (the mode is checked in pit_check).
 */
static const struct codec_field pit_channel_fields[] = {
	CODEC_RANGE(struct kvm_pit_channel_state, count, 4, 1, 0, 0x10000),
	CODEC_UINT(struct kvm_pit_channel_state, latched_count, 2, 1),
	CODEC_RANGE(struct kvm_pit_channel_state, count_latched, 1, 1, 0, 4),
	FLAG_U8(struct kvm_pit_channel_state, status_latched),
	CODEC_UINT(struct kvm_pit_channel_state, status, 1, 1),
	CODEC_RANGE(struct kvm_pit_channel_state, read_state, 1, 1, 0, 4),
	CODEC_RANGE(struct kvm_pit_channel_state, write_state, 1, 1, 0, 4),
	CODEC_UINT(struct kvm_pit_channel_state, write_latch, 1, 1),
	CODEC_RANGE(struct kvm_pit_channel_state, rw_mode, 1, 1, 0, 3),
	CODEC_UINT(struct kvm_pit_channel_state, mode, 1, 1),
	FLAG_U8(struct kvm_pit_channel_state, bcd),
	FLAG_U8(struct kvm_pit_channel_state, gate),
};
static const struct codec_table pit_channel_codec = CODEC_TABLE(struct kvm_pit_channel_state, "PIT channel", 1, 1,
								 pit_channel_fields, NULL);

#define PIT_FLAGS (uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON)

static int pit_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct kvm_pit_state2 *st = p;

	(void)version;
	for (unsigned int i = 0; i < 3; i++)
		if (st->channels[i].mode > 7 && st->channels[i].mode != 0xff) {
			errmsg_set(err, err_size, "PIT state: channels[%u].mode is %u, allowed 0 to 7 or 255", i,
				   st->channels[i].mode);
			return -EINVAL;
		}
	if (st->flags & ~PIT_FLAGS) {
		errmsg_set(err, err_size, "PIT state: flags has unknown bits 0x%x", st->flags & ~PIT_FLAGS);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field pit_fields[] = {
	CODEC_ARRAY(struct kvm_pit_state2, channels, &pit_channel_codec, 1),
	CODEC_UINT(struct kvm_pit_state2, flags, 4, 1),
};
const struct codec_table x86_pit_state_codec = CODEC_TABLE(struct kvm_pit_state2, "PIT state", 1, 1, pit_fields,
							   pit_check);

static const struct codec_field clock_fields[] = {
	CODEC_UINT(struct x86_clock_state, clock_ns, 8, 1),
};
const struct codec_table x86_clock_state_codec = CODEC_TABLE(struct x86_clock_state, "clock state", 1, 1,
							     clock_fields, NULL);
