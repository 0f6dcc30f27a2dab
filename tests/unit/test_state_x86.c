// SPDX-License-Identifier: MIT
/*
 * The x86 states' codec tables (src/arch/x86/kvm_state.c, pvm.c: sections VCPU, IRQC, PIT, CLCK, PVM)
 * against the bytes kiln 8d1a722's hand-written encoders wrote: each state filled with distinctive
 * non-zero values in every field encodes to exactly its golden payload (state_x86_golden.h, captured
 * from those encoders), and the golden payload decodes back to the same struct. A vCPU with every
 * array full is checked by length and CRC-32 (its payload is 38 KiB). Then the round trips and
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
			.base = 0x1000000000ull * (k + 1) + 0x123, .limit = 0x10000 + k, .selector = (uint16_t)(8 * k + 3),
			.type = (uint8_t)(k + 8), .present = 1, .dpl = (uint8_t)(k % 3 + 1), .db = 1, .s = 1, .l = 1,
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
	st->events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW |
			   KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
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
			.isr = (uint8_t)(0x14 + k), .priority_add = (uint8_t)(5 + k), .irq_base = (uint8_t)(0x20 + 8 * k),
			.read_reg_select = 1, .poll = 1, .special_mask = 1, .init_state = (uint8_t)(2 + k), .auto_eoi = 1,
			.rotate_on_auto_eoi = 1, .special_fully_nested_mode = 1, .init4 = 1, .elcr = (uint8_t)(0x0c + k),
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
			.count = 0x10000 - 1000 * k, .latched_count = (uint16_t)(0x1234 + k), .count_latched = (uint8_t)(2 + k),
			.status_latched = 1, .status = (uint8_t)(0x36 + k), .read_state = (uint8_t)(4 - k),
			.write_state = (uint8_t)(k + 1), .write_latch = (uint8_t)(0x55 + k), .rw_mode = 3, .mode = modes[k],
			.bcd = 1, .gate = 1,
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

#ifndef GOLDEN_GENERATOR
#include "state_x86_golden.h"
#endif

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

/* The hand-written encoders the tables replace write the golden payloads too (until they are deleted). */
static void test_golden_old_encoders(void **state)
{
	struct x86_vcpu_state *st = malloc(sizeof(*st));
	uint8_t *buf = malloc(BUF_SIZE), *golden;
	struct x86_irqchip_state chip;
	struct kvm_pit_state2 pit;
	struct pvm_vcpu_state pvm;
	struct snap_enc e;
	size_t glen;

	(void)state;
	assert_non_null(st);
	assert_non_null(buf);
#define OLD(encode_call, hex)                                             \
	do {                                                              \
		snap_enc_init(&e, buf, BUF_SIZE);                         \
		encode_call;                                              \
		golden = unhex((hex), &glen);                             \
		assert_int_equal(e.len, glen);                            \
		assert_memory_equal(buf, golden, glen);                   \
		free(golden);                                             \
	} while (0)
	fill_vcpu(st, false);
	OLD(x86_vcpu_state_encode(st, &e), vcpu_golden);
	fill_irqchip(&chip);
	OLD(x86_irqchip_state_encode(&chip, &e), irqchip_golden);
	fill_pit(&pit);
	OLD(x86_pit_state_encode(&pit, &e), pit_golden);
	OLD(x86_clock_state_encode(CLOCK_NS, &e), clock_golden);
	fill_pvm(&pvm);
	OLD(pvm_vcpu_state_encode(&pvm, &e), pvm_golden);
#undef OLD
	fill_vcpu(st, true);
	snap_enc_init(&e, buf, BUF_SIZE);
	x86_vcpu_state_encode(st, &e);
	assert_int_equal(e.len, VCPU_FULL_LEN);
	assert_int_equal(crc32(0, buf, (uInt)e.len), VCPU_FULL_CRC);
	free(buf);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_vcpu),
		cmocka_unit_test(test_golden_chips),
		cmocka_unit_test(test_golden_old_encoders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
