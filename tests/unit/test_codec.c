// SPDX-License-Identifier: MIT
/*
 * The versioned state codec (lib/codec.h): a test struct with every field kind, its version 1 and
 * version 2 tables; round trips, the exact bytes of each kind, older versions defaulted, newer and
 * unknown versions refused, every truncation and every extension refused, ranges, reserved bits and
 * bytes, VARRAY counts (stored and computed), messages naming the field.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/codec.h"

struct pair {
	uint32_t key;
	uint64_t value;
};

struct demo {
	uint8_t a;                      /* v1 */
	uint16_t b;                     /* v1, 0..1000 */
	bool on;                        /* v1 */
	uint8_t id[3];                  /* v1 */
	bool f0, f1, f2;                /* v1, FLAGS */
	struct pair one;                /* v1 */
	uint64_t words[2];              /* v1, encoded as u32 each */
	uint32_t nr;                    /* v1 */
	struct pair list[4];            /* v1, nr of them */
	uint32_t nbytes;
	uint8_t blob[16];               /* v1, nbytes of them */
	uint32_t added;                 /* v2, default 77 */
	uint16_t old;                   /* v1 only */
};

static const struct codec_field pair_fields[] = {
	CODEC_UINT(struct pair, key, 4, 1),
	CODEC_UINT(struct pair, value, 8, 1),
};
static const struct codec_table pair_codec = CODEC_TABLE(struct pair, "pair", 1, 1, pair_fields, NULL);

#define DEMO_FIELDS_V1                                                                                     \
	CODEC_UINT(struct demo, a, 1, 1), CODEC_RANGE(struct demo, b, 2, 1, 0, 1000), CODEC_BOOL(struct demo, on, 1), \
	CODEC_BYTES(struct demo, id, 1), CODEC_PAD(1, 1),                                                  \
	CODEC_FLAGS(struct demo, "flags", 1, CODEC_BIT(struct demo, f0), CODEC_BIT(struct demo, f1),       \
		    CODEC_BIT(struct demo, f2)),                                                           \
	CODEC_STRUCT(struct demo, one, &pair_codec, 1), CODEC_UINT_ARRAY(struct demo, words, 4, 1),        \
	CODEC_RANGE(struct demo, nr, 4, 1, 0, 4), CODEC_VARRAY(struct demo, list, nr, &pair_codec, 1),     \
	CODEC_RANGE(struct demo, nbytes, 1, 1, 0, 16), CODEC_UINT_VARRAY(struct demo, blob, nbytes, 1, 1)

static int demo_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct demo *d = p;

	if (d->a == 0xee) {
		snprintf(err, err_size, "demo: a is 0xee");
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field demo_v1_fields[] = {
	DEMO_FIELDS_V1,
	CODEC_UINT(struct demo, old, 2, 1),
};
static const struct codec_table demo_v1 = CODEC_TABLE(struct demo, "demo state", 1, 1, demo_v1_fields, demo_check);

/* Version 2: `added` appears (default 77 for version 1 payloads), `old` is gone. */
static const struct codec_field demo_v2_fields[] = {
	DEMO_FIELDS_V1,
	{ .name = "old", .kind = CODEC_UINT, .since = 1, .until = 1, .offset = offsetof(struct demo, old),
	  .size = 2, .wire = 2 },
	{ .name = "added", .kind = CODEC_UINT, .since = 2, .offset = offsetof(struct demo, added), .size = 4,
	  .wire = 4, .def = 77 },
};
static const struct codec_table demo_v2 = CODEC_TABLE(struct demo, "demo state", 2, 1, demo_v2_fields, demo_check);

static struct demo sample(void)
{
	struct demo d = {
		.a = 0x11, .b = 999, .on = true, .id = { 'a', 'b', 'c' }, .f0 = true, .f2 = true,
		.one = { .key = 0x01020304, .value = 0x1122334455667788ull }, .words = { 7, 0xffffffffu },
		.nr = 2, .list = { { 1, 10 }, { 2, 20 } }, .nbytes = 3, .blob = { 9, 8, 7 }, .added = 5, .old = 0x4242,
	};

	return d;
}

/* The bytes version 1 holds for sample(), spelled out: the layout is a file format. */
static const uint8_t sample_v1[] = {
	0x11,                                           /* a */
	0xe7, 0x03,                                     /* b = 999 */
	0x01,                                           /* on */
	'a', 'b', 'c',                                  /* id */
	0x00,                                           /* reserved */
	0x05,                                           /* flags: f0 | f2 << 2 */
	0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* one */
	0x07, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,          /* words as u32 */
	0x02, 0, 0, 0,                                  /* nr */
	1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0,            /* list[0] */
	2, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0,            /* list[1] */
	0x03,                                           /* nbytes */
	9, 8, 7,                                        /* blob */
	0x42, 0x42,                                     /* old */
};

static size_t encode(const struct codec_table *t, const struct demo *d, uint8_t *buf, size_t size)
{
	struct snap_enc e;

	snap_enc_init(&e, buf, size);
	assert_int_equal(codec_encode(t, d, &e), 0);
	return e.len;
}

static void test_exact_bytes(void **state)
{
	struct demo d = sample();
	uint8_t buf[256];
	size_t n = encode(&demo_v1, &d, buf, sizeof(buf));

	assert_int_equal(n, sizeof(sample_v1));
	assert_memory_equal(buf, sample_v1, sizeof(sample_v1));
}

static void test_round_trip(void **state)
{
	struct demo d = sample(), out;
	uint8_t buf[256];
	char err[256] = "";
	size_t n = encode(&demo_v2, &d, buf, sizeof(buf));

	assert_int_equal(codec_decode(&demo_v2, &out, buf, n, 2, err, sizeof(err)), 0);
	d.old = 0; /* version 2 no longer carries it */
	assert_memory_equal(&out, &d, sizeof(d));
	/* The version 2 bytes: version 1's without `old`, with `added`. */
	assert_int_equal(n, sizeof(sample_v1) - 2 + 4);
	assert_memory_equal(buf, sample_v1, sizeof(sample_v1) - 2);
	assert_int_equal(buf[n - 4], 5);
}

static void test_older_version_defaulted(void **state)
{
	struct demo out;
	char err[256] = "";

	assert_int_equal(codec_decode(&demo_v2, &out, sample_v1, sizeof(sample_v1), 1, err, sizeof(err)), 0);
	assert_int_equal(out.added, 77);
	assert_int_equal(out.old, 0x4242);
	assert_int_equal(out.b, 999);
	assert_int_equal(out.list[1].value, 20);
	assert_true(out.f2 && !out.f1);
}

static void test_unknown_versions_refused(void **state)
{
	struct demo out;
	char err[256] = "";

	assert_int_equal(codec_decode(&demo_v2, &out, sample_v1, sizeof(sample_v1), 3, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "demo state version 3 is not known to this kiln (it reads versions 1 to 2)");
	assert_int_equal(codec_decode(&demo_v2, &out, sample_v1, sizeof(sample_v1), 0, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(codec_decode(&demo_v1, &out, sample_v1, sizeof(sample_v1), 2, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "demo state version 2 is not known to this kiln (it reads version 1)");
}

static void test_every_truncation_and_extension_refused(void **state)
{
	uint8_t buf[sizeof(sample_v1) + 1];
	struct demo out;
	char err[256];

	for (size_t n = 0; n < sizeof(sample_v1); n++) {
		err[0] = 0;
		assert_int_equal(codec_decode(&demo_v1, &out, sample_v1, n, 1, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "not what version 1 holds"));
	}
	memcpy(buf, sample_v1, sizeof(sample_v1));
	buf[sizeof(sample_v1)] = 0;
	assert_int_equal(codec_decode(&demo_v1, &out, buf, sizeof(buf), 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo state: 64 bytes, not what version 1 holds");
}

/* sample_v1 with byte `off` set to `v`, decoded: the error and its message. */
static int decode_patched(size_t off, uint8_t v, char *err, size_t err_size)
{
	uint8_t buf[sizeof(sample_v1)];
	struct demo out;

	memcpy(buf, sample_v1, sizeof(buf));
	buf[off] = v;
	err[0] = 0;
	return codec_decode(&demo_v1, &out, buf, sizeof(buf), 1, err, err_size);
}

static void test_values_checked(void **state)
{
	char err[256];

	assert_int_equal(decode_patched(2, 0x04, err, sizeof(err)), -EINVAL); /* b = 1255 */
	assert_string_equal(err, "demo state: b is 1255, allowed 0 to 1000");
	assert_int_equal(decode_patched(3, 2, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo state: on is 2, not a boolean");
	assert_int_equal(decode_patched(7, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo state: reserved bytes are not zero");
	assert_int_equal(decode_patched(8, 0x0d, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo state: flags has unknown bits 0x8");
	assert_int_equal(decode_patched(0, 0xee, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo: a is 0xee");
	/* nr = 5 > 4: the range says so before the array is read. */
	assert_int_equal(decode_patched(29, 5, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "demo state: nr is 5, allowed 0 to 4");
}

static void test_nested_names(void **state)
{
	static const struct codec_field inner_fields[] = { CODEC_RANGE(struct pair, key, 4, 1, 0, 9) };
	static const struct codec_table inner = CODEC_TABLE(struct pair, "pair", 1, 1, inner_fields, NULL);
	struct holder {
		uint8_t n;
		struct pair p[3];
		uint16_t small[2];
	} h = { .n = 2, .p = { { 1, 0 }, { 12, 0 } } }, out;
	static const struct codec_field holder_fields[] = {
		CODEC_UINT(struct holder, n, 1, 1),
		CODEC_VARRAY(struct holder, p, n, &inner, 1),
		CODEC_UINT_ARRAY(struct holder, small, 4, 1),
	};
	static const struct codec_table holder = CODEC_TABLE(struct holder, "holder", 1, 1, holder_fields, NULL);
	uint8_t buf[64];
	struct snap_enc e;
	char err[256] = "";

	snap_enc_init(&e, buf, sizeof(buf));
	assert_int_equal(codec_encode(&holder, &h, &e), 0);
	assert_int_equal(e.len, 1 + 2 * 4 + 2 * 4);
	assert_int_equal(codec_decode(&holder, &out, buf, e.len, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "holder: p[1].key is 12, allowed 0 to 9");
	/* A UINT element wider on the wire than in the struct. */
	h.p[1].key = 3;
	snap_enc_init(&e, buf, sizeof(buf));
	assert_int_equal(codec_encode(&holder, &h, &e), 0);
	buf[e.len - 1] = 1;
	assert_int_equal(codec_decode(&holder, &out, buf, e.len, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "holder: small[1] is 16777216, more than it can hold");
	assert_int_equal(codec_max_size(&holder), 1 + 3 * 4 + 2 * 4);
}

static void test_encode_refuses_impossible_states(void **state)
{
	struct demo d = sample();
	uint8_t buf[256];
	struct snap_enc e;

	d.nr = 5; /* more than list[] holds */
	snap_enc_init(&e, buf, sizeof(buf));
	assert_int_equal(codec_encode(&demo_v1, &d, &e), -EINVAL);
	d = sample();
	snap_enc_init(&e, buf, 10);
	assert_int_equal(codec_encode(&demo_v1, &d, &e), -EOVERFLOW);
	assert_int_equal(codec_max_size(&demo_v1), 1 + 2 + 1 + 3 + 1 + 1 + 12 + 8 + 4 + 4 * 12 + 1 + 16 + 2);
}

/* A bitmap's words counted from its bit count (CODEC_UINT_VARRAY_FN): the count is not on the wire. */
struct bitmap {
	uint16_t nbits;
	uint64_t words[4];
};

static size_t bitmap_words(const void *st)
{
	return (((const struct bitmap *)st)->nbits + 63u) / 64;
}

static void test_computed_count(void **state)
{
	static const struct codec_field fields[] = {
		CODEC_RANGE(struct bitmap, nbits, 2, 1, 0, 320), /* up to 5 words: one more than words[] holds */
		CODEC_UINT_VARRAY_FN(struct bitmap, words, bitmap_words, 8, 1),
	};
	static const struct codec_table t = CODEC_TABLE(struct bitmap, "bitmap", 1, 1, fields, NULL);
	static const uint8_t want[] = { 65, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0, 0, 0, 0, 0, 0 };
	struct bitmap b = { .nbits = 65, .words = { 0x0807060504030201ull, 1 } }, out;
	uint8_t buf[64];
	struct snap_enc e;
	char err[256] = "";

	snap_enc_init(&e, buf, sizeof(buf));
	assert_int_equal(codec_encode(&t, &b, &e), 0);
	assert_int_equal(e.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(codec_decode(&t, &out, want, sizeof(want), 1, err, sizeof(err)), 0);
	assert_int_equal(out.nbits, 65);
	assert_memory_equal(out.words, b.words, sizeof(b.words));
	/* 64 bits: one word, so the second is one word too many. */
	buf[0] = 64;
	assert_int_equal(codec_decode(&t, &out, buf, sizeof(want), 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(codec_decode(&t, &out, buf, sizeof(want) - 8, 1, err, sizeof(err)), 0);
	/* 0 bits: no words at all. */
	buf[0] = 0;
	assert_int_equal(codec_decode(&t, &out, buf, 2, 1, err, sizeof(err)), 0);
	/* A count past the array is refused both ways, naming the array. */
	buf[0] = 0x40;
	buf[1] = 0x01; /* 320 bits, 5 words */
	assert_int_equal(codec_decode(&t, &out, buf, 2 + 5 * 8, 1, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bitmap: words has 5 elements, at most 4");
	b.nbits = 257;
	snap_enc_init(&e, buf, sizeof(buf));
	assert_int_equal(codec_encode(&t, &b, &e), -EINVAL);
	assert_int_equal(codec_max_size(&t), 2 + 4 * 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_bytes),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_older_version_defaulted),
		cmocka_unit_test(test_unknown_versions_refused),
		cmocka_unit_test(test_every_truncation_and_extension_refused),
		cmocka_unit_test(test_values_checked),
		cmocka_unit_test(test_nested_names),
		cmocka_unit_test(test_encode_refuses_impossible_states),
		cmocka_unit_test(test_computed_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
