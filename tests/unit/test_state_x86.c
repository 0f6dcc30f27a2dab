// SPDX-License-Identifier: MIT
/*
 * The x86 states' codec tables (src/arch/x86/kvm_state.c, pvm.c: sections VCPU, IRQC, PIT, CLCK, PVM)
 * against the bytes kiln 8d1a722's hand-written encoders wrote: each state filled with distinctive
 * non-zero values in every field encodes to exactly its golden payload (state_x86_golden.h, captured
 * from those encoders), and the golden payload decodes back to the same struct. A vCPU with every
 * array full is checked by length and CRC-32 (its payload is 37621 bytes). Then the round trips and
 * refusals: every shorter prefix, one byte more, unknown versions, values no device can hold.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "arch/x86/kvm_state.h"
#include "arch/x86/pvm.h"
#include "lib/codec.h"

#define CLOCK_NS 0x0123456789abcdefull

/* Every field of a vCPU non-zero (but the few zeros XSAVE/LAPIC byte patterns make); `full`: every array full. */
static void fill_vcpu(struct x86_vcpu_state *st, bool full)
{
	struct kvm_segment *const segs[] = { &st->sregs.cs, &st->sregs.ds, &st->sregs.es, &st->sregs.fs,
					     &st->sregs.gs, &st->sregs.ss, &st->sregs.tr, &st->sregs.ldt };
	uint64_t regs[18];

	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < 18; i++)
		regs[i] = 0xa0a1a2a3a4a5a600ull + i;
	memcpy(&st->regs, regs, sizeof(regs));
	for (unsigned int k = 0; k < 8; k++)
		*segs[k] = (struct kvm_segment){
			.base = 0x1000000000ull * (k + 1) + 0x123, .limit = 0x10000 + k,
			.selector = (uint16_t)(8 * k + 3), .type = (uint8_t)(k + 8), .present = 1, .dpl = (uint8_t)(k % 3 + 1), .db = 1, .s = 1, .l = 1,
			.g = 1, .avl = 1, .unusable = 1,
		};
	st->sregs.gdt = (struct kvm_dtable){ .base = 0xfffffe0000001000ull, .limit = 0x7f };
	st->sregs.idt = (struct kvm_dtable){ .base = 0xfffffe0000000000ull, .limit = 0xfff };
	st->sregs.cr0 = 0x80050033;
	st->sregs.cr2 = 0x7f0000001234ull;
	st->sregs.cr3 = 0x1234000;
	st->sregs.cr4 = 0x3606f0;
	st->sregs.cr8 = 0xf;
	st->sregs.efer = 0xd01;
	st->sregs.apic_base = 0xfee00900;
	for (unsigned int i = 0; i < 4; i++)
		st->sregs.interrupt_bitmap[i] = 0x8000000000000001ull << i;
	st->xsave_size = full ? X86_XSAVE_MAX_SIZE : 4096;
	for (unsigned int i = 0; i < st->xsave_size; i++)
		st->xsave[i] = (uint8_t)(i * 7 + 3);
	st->xcrs.nr_xcrs = full ? KVM_MAX_XCRS : 2;
	st->xcrs.flags = 0x5a;
	for (unsigned int i = 0; i < st->xcrs.nr_xcrs; i++)
		st->xcrs.xcrs[i] = (struct kvm_xcr){ .xcr = i + 1, .value = 0x700000000ull + i };
	st->nr_msrs = full ? X86_MAX_MSRS : 3;
	for (unsigned int i = 0; i < st->nr_msrs; i++)
		st->msrs[i] = (struct kvm_msr_entry){ .index = 0xc0000080 + i, .data = 0x1122334455667788ull ^ i };
	for (unsigned int i = 0; i < sizeof(st->lapic.regs); i++)
		st->lapic.regs[i] = (char)(i * 13 + 1);
	st->events.exception.injected = 1;
	st->events.exception.nr = 14;
	st->events.exception.has_error_code = 1;
	st->events.exception.pending = 1;
	st->events.exception.error_code = 0xdead;
	st->events.interrupt.injected = 1;
	st->events.interrupt.nr = 0x30;
	st->events.interrupt.soft = 1;
	st->events.interrupt.shadow = 3;
	st->events.nmi.injected = 1;
	st->events.nmi.pending = 1;
	st->events.nmi.masked = 1;
	st->events.sipi_vector = 0x9a;
	st->events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			   KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD |
			   KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
	st->events.smi.smm = 1;
	st->events.smi.pending = 1;
	st->events.smi.smm_inside_nmi = 1;
	st->events.smi.latched_init = 1;
	st->events.triple_fault.pending = 1;
	st->events.exception_has_payload = 1;
	st->events.exception_payload = 0xfeedface12345678ull;
	for (unsigned int i = 0; i < 4; i++)
		st->debugregs.db[i] = 0xffffffff81000000ull + i;
	st->debugregs.dr6 = 0xffff0ff0;
	st->debugregs.dr7 = 0x400;
	st->debugregs.flags = 1;
	st->mp_state.mp_state = KVM_MP_STATE_HALTED;
	st->tsc_khz = 2100000;
	st->nr_cpuid = full ? X86_MAX_CPUID : 3;
	for (unsigned int i = 0; i < st->nr_cpuid; i++)
		st->cpuid[i] = (struct kvm_cpuid_entry2){
			.function = 0x80000000 + i, .index = i + 1, .flags = 1, .eax = 0x10 + i, .ebx = 0x756e6547,
			.ecx = 0x6c65746e, .edx = 0x49656e69 + i,
		};
}

static void fill_irqchip(struct x86_irqchip_state *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned int k = 0; k < 2; k++)
		st->pic[k] = (struct kvm_pic_state){
			.last_irr = (uint8_t)(0x11 + k), .irr = (uint8_t)(0x12 + k), .imr = (uint8_t)(0x13 + k),
			.isr = (uint8_t)(0x14 + k), .priority_add = (uint8_t)(5 + k),
			.irq_base = (uint8_t)(0x20 + 8 * k), .read_reg_select = 1, .poll = 1, .special_mask = 1,
			.init_state = (uint8_t)(2 + k), .auto_eoi = 1, .rotate_on_auto_eoi = 1,
			.special_fully_nested_mode = 1, .init4 = 1, .elcr = (uint8_t)(0x0c + k),
			.elcr_mask = (uint8_t)(0xf8 - k),
		};
	st->ioapic.base_address = 0xfec00000;
	st->ioapic.ioregsel = 0x10;
	st->ioapic.id = 0x02000000;
	st->ioapic.irr = 0xabcdef;
	for (unsigned int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		st->ioapic.redirtbl[i].bits = 0x0100000000010030ull + ((uint64_t)i << 40) + i;
}

static void fill_pit(struct kvm_pit_state2 *st)
{
	static const uint8_t modes[3] = { 2, 0xff, 5 };

	memset(st, 0, sizeof(*st));
	for (unsigned int k = 0; k < 3; k++)
		st->channels[k] = (struct kvm_pit_channel_state){
			.count = 0x10000 - 1000 * k, .latched_count = (uint16_t)(0x1234 + k),
			.count_latched = (uint8_t)(2 + k), .status_latched = 1, .status = (uint8_t)(0x36 + k),
			.read_state = (uint8_t)(4 - k), .write_state = (uint8_t)(k + 1), .write_latch = (uint8_t)(0x55 + k),
			.rw_mode = 3, .mode = modes[k], .bcd = 1, .gate = 1,
		};
	st->flags = KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;
}

static void fill_pvm(struct pvm_vcpu_state *st)
{
	memset(st, 0, sizeof(*st));
	st->guest_lstar = 0xffffffff81a00080ull;
	st->lstar_written = true;
	st->syscalls = 0x1122334455667788ull;
}

#include "state_x86_golden.h"

#define BUF_SIZE (128u << 10)

/* The bytes of hex string `hex`, in a fresh buffer; their number in *len. */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2;
	uint8_t *b = malloc(n ? n : 1);

	assert_non_null(b);
	assert_int_equal(strlen(hex) % 2, 0);
	for (size_t i = 0; i < n; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		b[i] = (uint8_t)v;
	}
	*len = n;
	return b;
}

/* `st` encoded with table `t`, in a fresh buffer of BUF_SIZE bytes; its length in *len. */
static uint8_t *encode(const struct codec_table *t, const void *st, size_t *len)
{
	uint8_t *b = malloc(BUF_SIZE);
	struct snap_enc e;

	assert_non_null(b);
	snap_enc_init(&e, b, BUF_SIZE);
	assert_int_equal(codec_encode(t, st, &e), 0);
	assert_true(e.len <= codec_max_size(t));
	*len = e.len;
	return b;
}

/*
 * `st` (t->size bytes, padding zeroed) encodes to exactly the golden payload `hex`, and the golden
 * payload decodes back to `st`, byte for byte.
 */
static void check_golden(const struct codec_table *t, const void *st, const char *hex)
{
	size_t len, glen;
	uint8_t *golden = unhex(hex, &glen), *buf = encode(t, st, &len);
	void *st2 = malloc(t->size);
	char err[256] = "";

	assert_non_null(st2);
	assert_int_equal(len, glen);
	assert_memory_equal(buf, golden, glen);
	assert_int_equal(t->version, 1);
	if (codec_decode(t, st2, golden, glen, 1, err, sizeof(err)))
		fail_msg("%s: the golden payload does not decode: %s", t->name, err);
	assert_memory_equal(st2, st, t->size);
	free(st2);
	free(buf);
	free(golden);
}

static void test_golden_vcpu(void **state)
{
	struct x86_vcpu_state *st = malloc(sizeof(*st)), *st2 = malloc(sizeof(*st2));
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	assert_non_null(st);
	assert_non_null(st2);
	fill_vcpu(st, false);
	check_golden(&x86_vcpu_state_codec, st, vcpu_golden);

	/* Every array full: the most a vCPU section holds. */
	fill_vcpu(st, true);
	buf = encode(&x86_vcpu_state_codec, st, &len);
	assert_int_equal(len, VCPU_FULL_LEN);
	assert_int_equal(len, codec_max_size(&x86_vcpu_state_codec));
	assert_int_equal(crc32(0, buf, (uInt)len), VCPU_FULL_CRC);
	assert_int_equal(codec_decode(&x86_vcpu_state_codec, st2, buf, len, 1, err, sizeof(err)), 0);
	assert_memory_equal(st, st2, sizeof(*st));
	free(buf);
	free(st);
	free(st2);
}

static void test_golden_chips(void **state)
{
	struct x86_irqchip_state chip;
	struct kvm_pit_state2 pit;
	struct pvm_vcpu_state pvm;
	uint64_t clock = CLOCK_NS;

	(void)state;
	fill_irqchip(&chip);
	check_golden(&x86_irqchip_state_codec, &chip, irqchip_golden);
	fill_pit(&pit);
	check_golden(&x86_pit_state_codec, &pit, pit_golden);
	assert_int_equal(x86_clock_state_codec.size, sizeof(clock));
	check_golden(&x86_clock_state_codec, &clock, clock_golden);
	fill_pvm(&pvm);
	check_golden(&pvm_vcpu_state_codec, &pvm, pvm_golden);
}

/*
 * A decoder must take exactly `buf` and refuse: every shorter prefix, one byte more, version 0 and
 * version + 1. `st` is scratch space of the table's type.
 */
static void check_decoder(const struct codec_table *t, void *st, const uint8_t *buf, size_t len)
{
	uint8_t *longer = calloc(1, len + 1);
	char err[256] = "";

	assert_non_null(longer);
	assert_int_equal(codec_decode(t, st, buf, len, t->version, err, sizeof(err)), 0);
	for (size_t n = 0; n < len; n += (len > 64 ? 7 : 1))
		assert_int_not_equal(codec_decode(t, st, buf, n, t->version, err, sizeof(err)), 0);
	memcpy(longer, buf, len);
	assert_int_equal(codec_decode(t, st, longer, len + 1, t->version, err, sizeof(err)), -EINVAL);
	assert_int_equal(codec_decode(t, st, buf, len, t->version + 1, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(codec_decode(t, st, buf, len, 0, err, sizeof(err)), -ENOTSUP);
	assert_true(strlen(err) > 0);
	free(longer);
}

/* Decode with table `t` at its version; `err` must be a char array. */
#define DECODE(t, st, buf, len) codec_decode((t), (st), (buf), (len), (t)->version, err, sizeof(err))

static void test_vcpu_state_round_trip(void **state)
{
	const struct codec_table *t = &x86_vcpu_state_codec;
	struct x86_vcpu_state *st = calloc(1, sizeof(*st)), *st2 = calloc(1, sizeof(*st2));
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[256];

	(void)state;
	st->regs.rip = 0xffffffff81000000ull;
	st->regs.rflags = 0x202;
	st->regs.r15 = 15;
	st->sregs.cs = (struct kvm_segment){ .selector = 0x10, .type = 11, .present = 1, .s = 1, .l = 1, .g = 1,
					      .limit = 0xffffffff };
	st->sregs.tr = (struct kvm_segment){ .base = 0x12345000, .type = 11, .present = 1, .limit = 0x67 };
	st->sregs.cr0 = 0x80050033;
	st->sregs.cr4 = 0x6f0;
	st->sregs.efer = 0xd01;
	st->sregs.apic_base = 0xfee00900;
	st->sregs.gdt = (struct kvm_dtable){ .base = 0x1000, .limit = 0x7f };
	st->xsave_size = 4096;
	for (unsigned int i = 0; i < 4096; i++)
		st->xsave[i] = (uint8_t)(i * 7);
	st->xcrs.nr_xcrs = 1;
	st->xcrs.xcrs[0].value = 7;
	st->nr_msrs = 3;
	st->msrs[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 123456789 };
	st->msrs[1] = (struct kvm_msr_entry){ .index = 0xc0000082, .data = 0xfffffe8000000000ull };
	st->msrs[2] = (struct kvm_msr_entry){ .index = 0x4b564d01, .data = 0x7000 | 1 };
	memset(st->lapic.regs, 0x11, sizeof(st->lapic.regs));
	st->events.interrupt.injected = 1;
	st->events.interrupt.nr = 0x30;
	st->events.flags = KVM_VCPUEVENT_VALID_SHADOW;
	st->debugregs.dr7 = 0x400;
	st->mp_state.mp_state = KVM_MP_STATE_HALTED;
	st->tsc_khz = 2000000;
	st->nr_cpuid = 2;
	st->cpuid[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd, .ebx = 0x756e6547 };
	st->cpuid[1] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0, .flags = 1, .ebx = 0x9c2 };

	buf = encode(t, st, &len);
	check_decoder(t, st2, buf, len);
	assert_int_equal(DECODE(t, st2, buf, len), 0);
	assert_memory_equal(&st->regs, &st2->regs, sizeof(st->regs));
	assert_int_equal(st2->sregs.cs.l, 1);
	assert_int_equal(st2->sregs.tr.base, 0x12345000);
	assert_int_equal(st2->sregs.efer, 0xd01);
	assert_int_equal(st2->nr_msrs, 3);
	assert_int_equal(st2->msrs[1].data, 0xfffffe8000000000ull);
	assert_memory_equal(st->xsave, st2->xsave, 4096);
	assert_int_equal(st2->events.interrupt.nr, 0x30);
	assert_int_equal(st2->mp_state.mp_state, KVM_MP_STATE_HALTED);
	assert_int_equal(st2->cpuid[1].ebx, 0x9c2);
	buf2 = encode(t, st2, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	/* Impossible values: a segment's DPL, the XSAVE size, the MP state, an event flag; each named. */
	st2->sregs.cs.dpl = 4;
	free(buf2);
	buf2 = encode(t, st2, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: sregs.cs.dpl is 4, allowed 0 to 3");
	st->xsave_size = 100;
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: xsave_size is 100, allowed 4096 to 16384");
	st->xsave_size = 4100; /* in range, but not whole 64-byte units */
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: xsave_size is 4100, not a multiple of 64");
	st->xsave_size = 4096;
	st->mp_state.mp_state = 77;
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_non_null(strstr(err, "mp_state.mp_state is 77"));
	st->mp_state.mp_state = 0;
	st->events.nmi.pending = 2;
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_non_null(strstr(err, "events.nmi.pending is 2"));
	st->events.nmi.pending = 0;
	st->events.flags = KVM_VCPUEVENT_VALID_SHADOW | 0x80;
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: events.flags has unknown bits 0x80");
	st->events.flags = KVM_VCPUEVENT_VALID_SHADOW;
	/* Counts beyond their arrays: refused by name before any element is read. */
	st->nr_msrs = X86_MAX_MSRS + 1;
	assert_int_equal(codec_encode(t, st, &(struct snap_enc){ .buf = buf2, .size = BUF_SIZE }), -EINVAL);
	st->nr_msrs = 3;
	free(buf2);
	buf2 = encode(t, st, &len2);
	/* nr_xcrs: after the registers, segments, dtables, 7 control registers, the bitmap and XSAVE */
	memcpy(buf2 + 18 * 8 + 8 * 24 + 2 * 10 + 7 * 8 + 4 * 8 + 4 + 4096, &(uint32_t){ KVM_MAX_XCRS + 1 }, 4);
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: xcrs.nr_xcrs is 17, allowed 0 to 16");
	/*
	 * Found by tests/fuzz/fuzz_snapshot.c: a segment's padding byte (after `unusable`) was not checked,
	 * so a file with something there decoded, and the next snapshot silently wrote 0 instead.
	 */
	free(buf2);
	buf2 = encode(t, st, &len2);
	assert_int_equal(DECODE(t, st2, buf2, len2), 0);
	buf2[18 * 8 + 23] = 1; /* CS, the first segment after the 18 general registers: its 24th byte */
	assert_int_equal(DECODE(t, st2, buf2, len2), -EINVAL);
	assert_string_equal(err, "vCPU state: sregs.cs.reserved bytes are not zero");
	free(buf);
	free(buf2);
	free(st);
	free(st2);
}

static void test_chip_states_round_trip(void **state)
{
	struct x86_irqchip_state chip = { 0 }, chip2;
	struct kvm_pit_state2 pit = { 0 }, pit2;
	struct pvm_vcpu_state pvm = { .guest_lstar = 0xffffffff81a00080ull, .lstar_written = true, .syscalls = 42 }, pvm2;
	uint64_t clock = 123456789012ull, clock2;
	uint8_t *buf;
	size_t len;
	char err[256];

	(void)state;
	chip.pic[0] = (struct kvm_pic_state){ .irr = 0x10, .imr = 0xfb, .irq_base = 0x20, .elcr_mask = 0xf8, .init4 = 1 };
	chip.pic[1] = (struct kvm_pic_state){ .imr = 0xff, .irq_base = 0x28, .elcr_mask = 0xde };
	chip.ioapic.base_address = 0xfec00000;
	chip.ioapic.irr = 1u << 4;
	chip.ioapic.redirtbl[4].bits = 0x0000000000000031ull;
	buf = encode(&x86_irqchip_state_codec, &chip, &len);
	check_decoder(&x86_irqchip_state_codec, &chip2, buf, len);
	assert_int_equal(DECODE(&x86_irqchip_state_codec, &chip2, buf, len), 0);
	assert_memory_equal(&chip.pic, &chip2.pic, sizeof(chip.pic));
	assert_int_equal(chip2.ioapic.redirtbl[4].bits, 0x31);
	buf[4] = 9; /* priority_add of the master PIC */
	assert_int_equal(DECODE(&x86_irqchip_state_codec, &chip2, buf, len), -EINVAL);
	assert_string_equal(err, "irqchip state: pic[0].priority_add is 9, allowed 0 to 7");
	buf[4] = 0;
	buf[16 + 5] = 0x29; /* irq_base of the slave PIC: not a multiple of 8 */
	assert_int_equal(DECODE(&x86_irqchip_state_codec, &chip2, buf, len), -EINVAL);
	assert_string_equal(err, "irqchip state: pic[1].irq_base is 0x29, not a multiple of 8");
	buf[16 + 5] = 0x28;
	buf[32 + 16 + 3] = 1; /* IOAPIC irr bit 24: a pin it does not have */
	assert_int_equal(DECODE(&x86_irqchip_state_codec, &chip2, buf, len), -EINVAL);
	assert_non_null(strstr(err, "ioapic.irr is 16777232"));
	free(buf);

	pit.channels[0] = (struct kvm_pit_channel_state){ .count = 0x10000, .mode = 0xff, .gate = 1 };
	pit.channels[2] = (struct kvm_pit_channel_state){ .count = 1193, .mode = 3, .rw_mode = 3, .gate = 0 };
	buf = encode(&x86_pit_state_codec, &pit, &len);
	check_decoder(&x86_pit_state_codec, &pit2, buf, len);
	assert_int_equal(DECODE(&x86_pit_state_codec, &pit2, buf, len), 0);
	assert_int_equal(pit2.channels[2].count, 1193);
	assert_int_equal(pit2.channels[0].mode, 0xff);
	buf[0] = 0x01;
	buf[2] = 0x01; /* count 0x10001 */
	assert_int_equal(DECODE(&x86_pit_state_codec, &pit2, buf, len), -EINVAL);
	assert_string_equal(err, "PIT state: channels[0].count is 65537, allowed 0 to 65536");
	buf[0] = buf[2] = 0;
	buf[2 * 16 + 13] = 8; /* channel 2's mode: neither 0-7 nor 0xff */
	assert_int_equal(DECODE(&x86_pit_state_codec, &pit2, buf, len), -EINVAL);
	assert_string_equal(err, "PIT state: channels[2].mode is 8, allowed 0 to 7 or 255");
	buf[2 * 16 + 13] = 3;
	buf[48] = 4; /* flags: an unknown bit */
	assert_int_equal(DECODE(&x86_pit_state_codec, &pit2, buf, len), -EINVAL);
	assert_string_equal(err, "PIT state: flags has unknown bits 0x4");
	free(buf);

	buf = encode(&x86_clock_state_codec, &clock, &len);
	check_decoder(&x86_clock_state_codec, &clock2, buf, len);
	assert_int_equal(DECODE(&x86_clock_state_codec, &clock2, buf, len), 0);
	assert_int_equal(clock2, clock);
	free(buf);

	buf = encode(&pvm_vcpu_state_codec, &pvm, &len);
	check_decoder(&pvm_vcpu_state_codec, &pvm2, buf, len);
	assert_int_equal(DECODE(&pvm_vcpu_state_codec, &pvm2, buf, len), 0);
	assert_int_equal(pvm2.guest_lstar, pvm.guest_lstar);
	assert_true(pvm2.lstar_written);
	assert_int_equal(pvm2.syscalls, 42);
	buf[6] = 0x12; /* a non-canonical LSTAR */
	assert_int_equal(DECODE(&pvm_vcpu_state_codec, &pvm2, buf, len), -EINVAL);
	assert_string_equal(err, "PVM SYSCALL trap state: guest_lstar 0xff12ffff81a00080 is not canonical");
	buf[6] = 0xff;
	buf[8] = 2; /* lstar_written */
	assert_int_equal(DECODE(&pvm_vcpu_state_codec, &pvm2, buf, len), -EINVAL);
	assert_string_equal(err, "PVM SYSCALL trap state: lstar_written is 2, not a boolean");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_vcpu),
		cmocka_unit_test(test_golden_chips),
		cmocka_unit_test(test_vcpu_state_round_trip),
		cmocka_unit_test(test_chip_states_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
