// SPDX-License-Identifier: MIT
/* x86 KVM state for snapshots: the model and the restore order are in kvm_state.h. */
#include "arch/x86/kvm_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
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
		errmsg_set(err, err_size, "vCPU state: events.flags has unknown bits 0x%x", st->events.flags & ~VCPU_EVENT_FLAGS);
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

/* ---- encoding ---- */

static void put_segment(struct snap_enc *e, const struct kvm_segment *s)
{
	snap_put_u64(e, s->base);
	snap_put_u32(e, s->limit);
	snap_put_u16(e, s->selector);
	snap_put_u8(e, s->type);
	snap_put_u8(e, s->present);
	snap_put_u8(e, s->dpl);
	snap_put_u8(e, s->db);
	snap_put_u8(e, s->s);
	snap_put_u8(e, s->l);
	snap_put_u8(e, s->g);
	snap_put_u8(e, s->avl);
	snap_put_u8(e, s->unusable);
	snap_put_u8(e, 0);
}

static bool get_segment(struct snap_dec *d, struct kvm_segment *s)
{
	uint8_t pad;

	s->base = snap_get_u64(d);
	s->limit = snap_get_u32(d);
	s->selector = snap_get_u16(d);
	s->type = snap_get_u8(d);
	s->present = snap_get_u8(d);
	s->dpl = snap_get_u8(d);
	s->db = snap_get_u8(d);
	s->s = snap_get_u8(d);
	s->l = snap_get_u8(d);
	s->g = snap_get_u8(d);
	s->avl = snap_get_u8(d);
	s->unusable = snap_get_u8(d);
	pad = snap_get_u8(d); /* written as 0: anything else is not a file this kiln wrote */
	return s->type < 16 && s->present <= 1 && s->dpl <= 3 && s->db <= 1 && s->s <= 1 && s->l <= 1 && s->g <= 1 &&
	       s->avl <= 1 && s->unusable <= 1 && !pad;
}

static void put_dtable(struct snap_enc *e, const struct kvm_dtable *t)
{
	snap_put_u64(e, t->base);
	snap_put_u16(e, t->limit);
}

static void get_dtable(struct snap_dec *d, struct kvm_dtable *t)
{
	t->base = snap_get_u64(d);
	t->limit = snap_get_u16(d);
}

/* The 18 general registers in struct kvm_regs order. */
static __u64 *reg_ptr(struct kvm_regs *r, unsigned int i)
{
	__u64 *const regs[] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rsp, &r->rbp, &r->r8,
				   &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags };

	return regs[i];
}

#define NR_REGS 18u

static const struct kvm_segment *segment_at(const struct kvm_sregs *s, unsigned int i)
{
	const struct kvm_segment *const segs[] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr, &s->ldt };

	return segs[i];
}

#define NR_SEGMENTS 8u

void x86_vcpu_state_encode(const struct x86_vcpu_state *st, struct snap_enc *e)
{
	struct kvm_regs regs = st->regs;
	const struct kvm_vcpu_events *ev = &st->events;
	uint32_t i, nr_xcrs = st->xcrs.nr_xcrs <= KVM_MAX_XCRS ? st->xcrs.nr_xcrs : 0;

	for (i = 0; i < NR_REGS; i++)
		snap_put_u64(e, *reg_ptr(&regs, i));
	for (i = 0; i < NR_SEGMENTS; i++)
		put_segment(e, segment_at(&st->sregs, i));
	put_dtable(e, &st->sregs.gdt);
	put_dtable(e, &st->sregs.idt);
	snap_put_u64(e, st->sregs.cr0);
	snap_put_u64(e, st->sregs.cr2);
	snap_put_u64(e, st->sregs.cr3);
	snap_put_u64(e, st->sregs.cr4);
	snap_put_u64(e, st->sregs.cr8);
	snap_put_u64(e, st->sregs.efer);
	snap_put_u64(e, st->sregs.apic_base);
	for (i = 0; i < sizeof(st->sregs.interrupt_bitmap) / sizeof(st->sregs.interrupt_bitmap[0]); i++)
		snap_put_u64(e, st->sregs.interrupt_bitmap[i]);

	snap_put_u32(e, st->xsave_size);
	snap_put_bytes(e, st->xsave, st->xsave_size <= X86_XSAVE_MAX_SIZE ? st->xsave_size : 0);
	snap_put_u32(e, nr_xcrs);
	snap_put_u32(e, st->xcrs.flags);
	for (i = 0; i < nr_xcrs; i++) {
		snap_put_u32(e, st->xcrs.xcrs[i].xcr);
		snap_put_u64(e, st->xcrs.xcrs[i].value);
	}
	snap_put_u32(e, st->nr_msrs <= X86_MAX_MSRS ? st->nr_msrs : 0);
	for (i = 0; i < st->nr_msrs && i < X86_MAX_MSRS; i++) {
		snap_put_u32(e, st->msrs[i].index);
		snap_put_u64(e, st->msrs[i].data);
	}
	snap_put_bytes(e, st->lapic.regs, sizeof(st->lapic.regs));

	snap_put_u8(e, ev->exception.injected);
	snap_put_u8(e, ev->exception.nr);
	snap_put_u8(e, ev->exception.has_error_code);
	snap_put_u8(e, ev->exception.pending);
	snap_put_u32(e, ev->exception.error_code);
	snap_put_u8(e, ev->interrupt.injected);
	snap_put_u8(e, ev->interrupt.nr);
	snap_put_u8(e, ev->interrupt.soft);
	snap_put_u8(e, ev->interrupt.shadow);
	snap_put_u8(e, ev->nmi.injected);
	snap_put_u8(e, ev->nmi.pending);
	snap_put_u8(e, ev->nmi.masked);
	snap_put_u32(e, ev->sipi_vector);
	snap_put_u32(e, ev->flags);
	snap_put_u8(e, ev->smi.smm);
	snap_put_u8(e, ev->smi.pending);
	snap_put_u8(e, ev->smi.smm_inside_nmi);
	snap_put_u8(e, ev->smi.latched_init);
	snap_put_u8(e, ev->triple_fault.pending);
	snap_put_u8(e, ev->exception_has_payload);
	snap_put_u64(e, ev->exception_payload);

	for (i = 0; i < 4; i++)
		snap_put_u64(e, st->debugregs.db[i]);
	snap_put_u64(e, st->debugregs.dr6);
	snap_put_u64(e, st->debugregs.dr7);
	snap_put_u64(e, st->debugregs.flags);
	snap_put_u32(e, st->mp_state.mp_state);
	snap_put_u32(e, st->tsc_khz);

	snap_put_u32(e, st->nr_cpuid <= X86_MAX_CPUID ? st->nr_cpuid : 0);
	for (i = 0; i < st->nr_cpuid && i < X86_MAX_CPUID; i++) {
		const struct kvm_cpuid_entry2 *c = &st->cpuid[i];

		snap_put_u32(e, c->function);
		snap_put_u32(e, c->index);
		snap_put_u32(e, c->flags);
		snap_put_u32(e, c->eax);
		snap_put_u32(e, c->ebx);
		snap_put_u32(e, c->ecx);
		snap_put_u32(e, c->edx);
	}
}

#define BAD(...)                                           \
	do {                                               \
		errmsg_set(err, err_size, __VA_ARGS__);    \
		return -EINVAL;                            \
	} while (0)

int x86_vcpu_state_decode(struct x86_vcpu_state *st, const void *data, size_t len, uint32_t version, char *err,
			  size_t err_size)
{
	struct kvm_vcpu_events *ev = &st->events;
	struct snap_dec d;
	uint32_t i;
	bool ok = true;

	memset(st, 0, sizeof(*st));
	if (version != X86_VCPU_STATE_VERSION) {
		errmsg_set(err, err_size, "vCPU state version %u is not known to this kiln (%u)", version,
			   X86_VCPU_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	for (i = 0; i < NR_REGS; i++)
		*reg_ptr(&st->regs, i) = snap_get_u64(&d);
	ok &= get_segment(&d, &st->sregs.cs);
	ok &= get_segment(&d, &st->sregs.ds);
	ok &= get_segment(&d, &st->sregs.es);
	ok &= get_segment(&d, &st->sregs.fs);
	ok &= get_segment(&d, &st->sregs.gs);
	ok &= get_segment(&d, &st->sregs.ss);
	ok &= get_segment(&d, &st->sregs.tr);
	ok &= get_segment(&d, &st->sregs.ldt);
	if (!ok)
		BAD("vCPU state: a segment register holds impossible attributes");
	get_dtable(&d, &st->sregs.gdt);
	get_dtable(&d, &st->sregs.idt);
	st->sregs.cr0 = snap_get_u64(&d);
	st->sregs.cr2 = snap_get_u64(&d);
	st->sregs.cr3 = snap_get_u64(&d);
	st->sregs.cr4 = snap_get_u64(&d);
	st->sregs.cr8 = snap_get_u64(&d);
	st->sregs.efer = snap_get_u64(&d);
	st->sregs.apic_base = snap_get_u64(&d);
	for (i = 0; i < sizeof(st->sregs.interrupt_bitmap) / sizeof(st->sregs.interrupt_bitmap[0]); i++)
		st->sregs.interrupt_bitmap[i] = snap_get_u64(&d);

	st->xsave_size = snap_get_u32(&d);
	if (st->xsave_size < sizeof(struct kvm_xsave) || st->xsave_size > X86_XSAVE_MAX_SIZE || st->xsave_size % 64)
		BAD("vCPU state: XSAVE area of %u bytes (%zu to %u)", st->xsave_size, sizeof(struct kvm_xsave),
		    X86_XSAVE_MAX_SIZE);
	snap_get_bytes(&d, st->xsave, st->xsave_size);
	st->xcrs.nr_xcrs = snap_get_u32(&d);
	st->xcrs.flags = snap_get_u32(&d);
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		BAD("vCPU state: %u XCRs (at most %u)", st->xcrs.nr_xcrs, KVM_MAX_XCRS);
	for (i = 0; i < st->xcrs.nr_xcrs; i++) {
		st->xcrs.xcrs[i].xcr = snap_get_u32(&d);
		st->xcrs.xcrs[i].value = snap_get_u64(&d);
	}
	st->nr_msrs = snap_get_u32(&d);
	if (st->nr_msrs > X86_MAX_MSRS)
		BAD("vCPU state: %u MSRs (at most %u)", st->nr_msrs, X86_MAX_MSRS);
	for (i = 0; i < st->nr_msrs; i++) {
		st->msrs[i].index = snap_get_u32(&d);
		st->msrs[i].data = snap_get_u64(&d);
	}
	snap_get_bytes(&d, st->lapic.regs, sizeof(st->lapic.regs));

	ev->exception.injected = snap_get_u8(&d);
	ev->exception.nr = snap_get_u8(&d);
	ev->exception.has_error_code = snap_get_u8(&d);
	ev->exception.pending = snap_get_u8(&d);
	ev->exception.error_code = snap_get_u32(&d);
	ev->interrupt.injected = snap_get_u8(&d);
	ev->interrupt.nr = snap_get_u8(&d);
	ev->interrupt.soft = snap_get_u8(&d);
	ev->interrupt.shadow = snap_get_u8(&d);
	ev->nmi.injected = snap_get_u8(&d);
	ev->nmi.pending = snap_get_u8(&d);
	ev->nmi.masked = snap_get_u8(&d);
	ev->sipi_vector = snap_get_u32(&d);
	ev->flags = snap_get_u32(&d);
	ev->smi.smm = snap_get_u8(&d);
	ev->smi.pending = snap_get_u8(&d);
	ev->smi.smm_inside_nmi = snap_get_u8(&d);
	ev->smi.latched_init = snap_get_u8(&d);
	ev->triple_fault.pending = snap_get_u8(&d);
	ev->exception_has_payload = snap_get_u8(&d);
	ev->exception_payload = snap_get_u64(&d);
	if (ev->exception.injected > 1 || ev->exception.has_error_code > 1 || ev->exception.pending > 1 ||
	    ev->exception.nr >= 32 || ev->interrupt.injected > 1 || ev->interrupt.soft > 1 || ev->nmi.injected > 1 ||
	    ev->nmi.pending > 1 || ev->nmi.masked > 1 || ev->smi.smm > 1 || ev->smi.pending > 1 ||
	    ev->smi.smm_inside_nmi > 1 || ev->smi.latched_init > 1 || ev->triple_fault.pending > 1 ||
	    ev->exception_has_payload > 1 ||
	    (ev->flags & ~(uint32_t)(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
				     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD |
				     KVM_VCPUEVENT_VALID_TRIPLE_FAULT)))
		BAD("vCPU state: impossible pending events");

	for (i = 0; i < 4; i++)
		st->debugregs.db[i] = snap_get_u64(&d);
	st->debugregs.dr6 = snap_get_u64(&d);
	st->debugregs.dr7 = snap_get_u64(&d);
	st->debugregs.flags = snap_get_u64(&d);
	st->mp_state.mp_state = snap_get_u32(&d);
	if (st->mp_state.mp_state > MP_STATE_MAX)
		BAD("vCPU state: MP state %u (0 to %u)", st->mp_state.mp_state, MP_STATE_MAX);
	st->tsc_khz = snap_get_u32(&d);

	st->nr_cpuid = snap_get_u32(&d);
	if (st->nr_cpuid > X86_MAX_CPUID)
		BAD("vCPU state: %u CPUID entries (at most %u)", st->nr_cpuid, X86_MAX_CPUID);
	for (i = 0; i < st->nr_cpuid; i++) {
		struct kvm_cpuid_entry2 *c = &st->cpuid[i];

		c->function = snap_get_u32(&d);
		c->index = snap_get_u32(&d);
		c->flags = snap_get_u32(&d);
		c->eax = snap_get_u32(&d);
		c->ebx = snap_get_u32(&d);
		c->ecx = snap_get_u32(&d);
		c->edx = snap_get_u32(&d);
	}
	if (!snap_dec_done(&d))
		BAD("vCPU state: %zu bytes, not what its counts say", len);
	return 0;
}

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

static void put_pic(struct snap_enc *e, const struct kvm_pic_state *p)
{
	const uint8_t f[] = { p->last_irr, p->irr, p->imr, p->isr, p->priority_add, p->irq_base, p->read_reg_select,
			      p->poll, p->special_mask, p->init_state, p->auto_eoi, p->rotate_on_auto_eoi,
			      p->special_fully_nested_mode, p->init4, p->elcr, p->elcr_mask };

	snap_put_bytes(e, f, sizeof(f));
}

static bool get_pic(struct snap_dec *d, struct kvm_pic_state *p)
{
	uint8_t f[16];

	snap_get_bytes(d, f, sizeof(f));
	*p = (struct kvm_pic_state){
		.last_irr = f[0], .irr = f[1], .imr = f[2], .isr = f[3], .priority_add = f[4], .irq_base = f[5],
		.read_reg_select = f[6], .poll = f[7], .special_mask = f[8], .init_state = f[9], .auto_eoi = f[10],
		.rotate_on_auto_eoi = f[11], .special_fully_nested_mode = f[12], .init4 = f[13], .elcr = f[14],
		.elcr_mask = f[15],
	};
	/* KVM uses priority_add and init_state as small numbers; the flags are booleans (8259A data sheet). */
	return p->priority_add < 8 && p->init_state < 4 && p->read_reg_select <= 1 && p->poll <= 1 &&
	       p->special_mask <= 1 && p->auto_eoi <= 1 && p->rotate_on_auto_eoi <= 1 &&
	       p->special_fully_nested_mode <= 1 && p->init4 <= 1 && (p->irq_base & 7) == 0;
}

void x86_irqchip_state_encode(const struct x86_irqchip_state *st, struct snap_enc *e)
{
	put_pic(e, &st->pic[0]);
	put_pic(e, &st->pic[1]);
	snap_put_u64(e, st->ioapic.base_address);
	snap_put_u32(e, st->ioapic.ioregsel);
	snap_put_u32(e, st->ioapic.id);
	snap_put_u32(e, st->ioapic.irr);
	for (unsigned int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		snap_put_u64(e, st->ioapic.redirtbl[i].bits);
}

int x86_irqchip_state_decode(struct x86_irqchip_state *st, const void *data, size_t len, uint32_t version, char *err,
			     size_t err_size)
{
	struct snap_dec d;
	bool ok;

	memset(st, 0, sizeof(*st));
	if (version != X86_IRQCHIP_STATE_VERSION) {
		errmsg_set(err, err_size, "irqchip state version %u is not known to this kiln (%u)", version,
			   X86_IRQCHIP_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	ok = get_pic(&d, &st->pic[0]);
	ok &= get_pic(&d, &st->pic[1]);
	st->ioapic.base_address = snap_get_u64(&d);
	st->ioapic.ioregsel = snap_get_u32(&d);
	st->ioapic.id = snap_get_u32(&d);
	st->ioapic.irr = snap_get_u32(&d);
	for (unsigned int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		st->ioapic.redirtbl[i].bits = snap_get_u64(&d);
	if (!snap_dec_done(&d))
		BAD("irqchip state: %zu bytes, not what version %u holds", len, version);
	if (!ok || st->ioapic.irr >> KVM_IOAPIC_NUM_PINS)
		BAD("irqchip state: register values the PIC/IOAPIC cannot hold");
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

void x86_pit_state_encode(const struct kvm_pit_state2 *st, struct snap_enc *e)
{
	for (unsigned int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &st->channels[i];
		const uint8_t f[] = { c->count_latched, c->status_latched, c->status, c->read_state, c->write_state,
				      c->write_latch, c->rw_mode, c->mode, c->bcd, c->gate };

		snap_put_u32(e, c->count);
		snap_put_u16(e, c->latched_count);
		snap_put_bytes(e, f, sizeof(f));
	}
	snap_put_u32(e, st->flags);
}

int x86_pit_state_decode(struct kvm_pit_state2 *st, const void *data, size_t len, uint32_t version, char *err,
			 size_t err_size)
{
	struct snap_dec d;

	memset(st, 0, sizeof(*st));
	if (version != X86_PIT_STATE_VERSION) {
		errmsg_set(err, err_size, "PIT state version %u is not known to this kiln (%u)", version,
			   X86_PIT_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	for (unsigned int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &st->channels[i];
		uint8_t f[10];

		c->count = snap_get_u32(&d);
		c->latched_count = snap_get_u16(&d);
		snap_get_bytes(&d, f, sizeof(f));
		c->count_latched = f[0];
		c->status_latched = f[1];
		c->status = f[2];
		c->read_state = f[3];
		c->write_state = f[4];
		c->write_latch = f[5];
		c->rw_mode = f[6];
		c->mode = f[7];
		c->bcd = f[8];
		c->gate = f[9];
		/*
		 * 8254 data sheet: counts up to 65536, modes 0-5 (6 and 7 alias 2 and 3), RW modes 1-3; KVM keeps
		 * mode 0xff and RW mode 0 for a channel never programmed.
		 */
		if (c->count > 0x10000 || (c->mode > 7 && c->mode != 0xff) || c->rw_mode > 3 || c->bcd > 1 || c->gate > 1 ||
		    c->status_latched > 1 || c->read_state > 4 || c->write_state > 4 || c->count_latched > 4)
			BAD("PIT state: channel %u holds values an 8254 cannot", i);
	}
	st->flags = snap_get_u32(&d);
	if (!snap_dec_done(&d))
		BAD("PIT state: %zu bytes, not what version %u holds", len, version);
	if (st->flags & ~(uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON))
		BAD("PIT state: unknown flags 0x%x", st->flags);
	return 0;
}

void x86_clock_state_encode(uint64_t clock_ns, struct snap_enc *e)
{
	snap_put_u64(e, clock_ns);
}

int x86_clock_state_decode(uint64_t *clock_ns, const void *data, size_t len, uint32_t version, char *err,
			   size_t err_size)
{
	struct snap_dec d;

	*clock_ns = 0;
	if (version != X86_CLOCK_STATE_VERSION) {
		errmsg_set(err, err_size, "clock state version %u is not known to this kiln (%u)", version,
			   X86_CLOCK_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	*clock_ns = snap_get_u64(&d);
	if (!snap_dec_done(&d))
		BAD("clock state: %zu bytes, not what version %u holds", len, version);
	return 0;
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
