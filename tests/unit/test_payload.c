// SPDX-License-Identifier: MIT
/*
 * payload.c: every format round-trips through the library's own compressor (run here, so no binary
 * test data), with and without the kernel's 4-byte size trailer; truncation, corruption and the
 * output limit are reported as errors, never a crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4.h>
#include <zstd.h>

#include "arch/x86/payload.h"

#include "payload_fixture.h"

#define LZ4_MAGIC 0x184c2102u
#define BIG (1u << 20)

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Kernel-like data: runs of repeated words (compressible) mixed with random bytes. */
static struct buf make_data(size_t len, uint64_t seed)
{
	static const char *const words[] = { "mov ", "push %rbp ", "call ", "ret\n", "\0\0\0\0", "kiln " };
	struct buf b = { malloc(len), len };
	size_t pos = 0;

	assert_non_null(b.p);
	while (pos < len) {
		uint64_t r = rng_next(&seed);
		size_t n;

		if (r & 1) {
			const char *w = words[(r >> 8) % 6];

			n = (r >> 8) % 6 == 4 ? 4 : strlen(w);
			n = n < len - pos ? n : len - pos;
			memcpy(b.p + pos, w, n);
		} else {
			n = 1;
			b.p[pos] = (uint8_t)(r >> 16);
		}
		pos += n;
	}
	return b;
}

static struct buf compress_zstd(const struct buf *in, bool content_size)
{
	size_t cap = ZSTD_compressBound(in->len);
	struct buf c = { malloc(cap), 0 };

	assert_non_null(c.p);
	if (content_size) {
		c.len = ZSTD_compress(c.p, cap, in->p, in->len, 3);
	} else {
		/* Streaming without a pledged size: the frame header carries no content size. */
		ZSTD_CCtx *cctx = ZSTD_createCCtx();
		ZSTD_inBuffer zin = { in->p, in->len, 0 };
		ZSTD_outBuffer zout = { c.p, cap, 0 };

		assert_non_null(cctx);
		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
		assert_int_equal(ZSTD_compressStream2(cctx, &zout, &zin, ZSTD_e_end), 0);
		c.len = zout.pos;
		ZSTD_freeCCtx(cctx);
		assert_int_equal(ZSTD_getFrameContentSize(c.p, c.len), ZSTD_CONTENTSIZE_UNKNOWN);
	}
	assert_false(ZSTD_isError(c.len));
	return c;
}

/*
 * lz4 legacy (lz4 -l): magic, then (LE32 size, block) per `block` input bytes; `restart` inserts a
 * second magic mid-stream, as concatenated frames do. Block boundaries are recorded for the tests.
 */
static struct buf compress_lz4(const struct buf *in, size_t block, bool restart, size_t *bounds, size_t *nbounds)
{
	size_t cap = 8 + in->len / block * 8 + (size_t)LZ4_compressBound((int)in->len) + 64, pos = 0;
	struct buf c = { malloc(cap), 4 };

	assert_non_null(c.p);
	put_le32(c.p, LZ4_MAGIC);
	*nbounds = 0;
	while (pos < in->len) {
		size_t n = in->len - pos < block ? in->len - pos : block;
		int clen;

		if (restart && pos) {
			put_le32(c.p + c.len, LZ4_MAGIC);
			c.len += 4;
		}
		clen = LZ4_compress_default((const char *)in->p + pos, (char *)c.p + c.len + 4, (int)n,
					    (int)(cap - c.len - 4));
		assert_true(clen > 0);
		put_le32(c.p + c.len, (uint32_t)clen);
		c.len += 4 + (size_t)clen;
		bounds[(*nbounds)++] = c.len;
		pos += n;
	}
	return c;
}

static struct buf compress_lzma_alone(const struct buf *in)
{
	lzma_stream ls = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	size_t cap = in->len + in->len / 2 + 4096;
	struct buf c = { malloc(cap), 0 };

	assert_non_null(c.p);
	assert_false(lzma_lzma_preset(&opt, 1));
	assert_int_equal(lzma_alone_encoder(&ls, &opt), LZMA_OK);
	ls.next_in = in->p;
	ls.avail_in = in->len;
	ls.next_out = c.p;
	ls.avail_out = cap;
	assert_int_equal(lzma_code(&ls, LZMA_FINISH), LZMA_STREAM_END);
	c.len = ls.total_out;
	lzma_end(&ls);
	return c;
}

enum variant { V_GZIP, V_XZ, V_XZ_BCJ, V_ZSTD, V_ZSTD_NOSIZE, V_LZ4, V_LZ4_RESTART, V_LZMA, V_COUNT };

static struct buf compress_variant(enum variant v, const struct buf *in, size_t *bounds, size_t *nbounds)
{
	*nbounds = 0;
	switch (v) {
	case V_GZIP: return compress_gzip(in);
	case V_XZ: return compress_xz(in, false);
	case V_XZ_BCJ: return compress_xz(in, true);
	case V_ZSTD: return compress_zstd(in, true);
	case V_ZSTD_NOSIZE: return compress_zstd(in, false);
	case V_LZ4: return compress_lz4(in, 4096, false, bounds, nbounds);
	case V_LZ4_RESTART: return compress_lz4(in, 4096, true, bounds, nbounds);
	default: return compress_lzma_alone(in);
	}
}

static void expect_roundtrip(const struct buf *c, const struct buf *orig, size_t max_out)
{
	uint8_t *out = NULL;
	size_t out_len = 0;

	assert_int_equal(payload_decompress(c->p, c->len, max_out, &out, &out_len), 0);
	assert_int_equal(out_len, orig->len);
	assert_memory_equal(out, orig->p, orig->len);
	free(out);
}

static void test_roundtrip(void **state)
{
	static const enum payload_format fmt[V_COUNT] = {
		PAYLOAD_GZIP, PAYLOAD_XZ, PAYLOAD_XZ, PAYLOAD_ZSTD, PAYLOAD_ZSTD, PAYLOAD_LZ4, PAYLOAD_LZ4, PAYLOAD_LZMA,
	};
	struct buf in = make_data(300000, 1);
	size_t bounds[128], nb;

	for (int v = 0; v < V_COUNT; v++) {
		struct buf c = compress_variant(v, &in, bounds, &nb);

		assert_int_equal(payload_detect(c.p, c.len), fmt[v]);
		expect_roundtrip(&c, &in, BIG);
		append_size(&c, in.len);
		expect_roundtrip(&c, &in, BIG);
		/* A lying size hint only sizes the first allocation. */
		put_le32(c.p + c.len - 4, 7);
		if (fmt[v] != PAYLOAD_LZ4) /* lz4 checks its trailer, see decode_lz4 */
			expect_roundtrip(&c, &in, BIG);
		put_le32(c.p + c.len - 4, 0xffffffffu);
		if (fmt[v] != PAYLOAD_LZ4)
			expect_roundtrip(&c, &in, BIG);
		free(c.p);
	}
	free(in.p);
}

/* lz4 with real 8 MiB legacy blocks: two blocks, the second partial. */
static void test_lz4_big_blocks(void **state)
{
	struct buf in = make_data((8u << 20) + 12345, 2);
	size_t bounds[4], nb;
	struct buf c = compress_lz4(&in, 8u << 20, false, bounds, &nb);

	assert_int_equal(nb, 2);
	append_size(&c, in.len);
	expect_roundtrip(&c, &in, 16u << 20);
	free(c.p);
	free(in.p);
}

static bool is_bound(size_t len, const size_t *bounds, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		if (bounds[i] == len)
			return true;
	}
	return false;
}

/* Every truncation of every format is -EINVAL; lz4 legacy cut at a block boundary is a valid shorter stream. */
static void test_truncated(void **state)
{
	struct buf in = make_data(6000, 3);
	size_t bounds[128], nb;

	for (int v = 0; v < V_COUNT; v++) {
		struct buf c = compress_variant(v, &in, bounds, &nb);

		for (size_t len = 0; len < c.len; len++) {
			uint8_t *cut = malloc(len ? len : 1), *out = NULL;
			size_t out_len = 0;
			int ret;

			memcpy(cut, c.p, len);
			ret = payload_decompress(cut, len, BIG, &out, &out_len);
			if ((v == V_LZ4 || v == V_LZ4_RESTART) && (len == 4 || is_bound(len, bounds, nb))) {
				assert_int_equal(ret, 0); /* no end marker in the legacy format */
			} else if (payload_detect(cut, len) == PAYLOAD_UNKNOWN) {
				assert_int_equal(ret, -ENOTSUP); /* cut inside the magic */
			} else if (ret != -EINVAL) {
				fail_msg("variant %d truncated to %zu of %zu: ret %d", v, len, c.len, ret);
			}
			assert_true(ret == 0 || out == NULL);
			free(out);
			free(cut);
		}
		free(c.p);
	}
	free(in.p);
}

/* Random byte flips: an error, or an output within max_out; checksummed formats never return wrong data. */
static void test_corrupt(void **state)
{
	struct buf in = make_data(20000, 4);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t bounds[128], nb;

	for (int v = 0; v < V_COUNT; v++) {
		struct buf c = compress_variant(v, &in, bounds, &nb);
		uint8_t *mut = malloc(c.len);

		for (int iter = 0; iter < 400; iter++) {
			uint8_t *out = NULL;
			size_t out_len = 0;
			int flips = 1 + (int)(rng_next(&seed) % 4), ret;

			memcpy(mut, c.p, c.len);
			for (int f = 0; f < flips; f++)
				mut[rng_next(&seed) % c.len] ^= (uint8_t)(1 + rng_next(&seed) % 255);
			ret = payload_decompress(mut, c.len, 100000, &out, &out_len);
			assert_true(ret == 0 || ret == -EINVAL || ret == -E2BIG || ret == -ENOTSUP);
			if (ret == 0) {
				assert_true(out_len <= 100000);
				if (v == V_XZ || v == V_XZ_BCJ || v == V_GZIP) {
					assert_int_equal(out_len, in.len);
					assert_memory_equal(out, in.p, in.len);
				}
			}
			free(out);
		}
		free(mut);
		free(c.p);
	}
	free(in.p);
}

static void test_output_limit(void **state)
{
	struct buf in = make_data(100000, 5);
	size_t bounds[128], nb;

	for (int v = 0; v < V_COUNT; v++) {
		struct buf c = compress_variant(v, &in, bounds, &nb);
		uint8_t *out = (uint8_t *)&out;
		size_t out_len = 1;

		append_size(&c, in.len);
		assert_int_equal(payload_decompress(c.p, c.len, in.len - 1, &out, &out_len), -E2BIG);
		assert_null(out);
		assert_int_equal(out_len, 0);
		assert_int_equal(payload_decompress(c.p, c.len, 1000, &out, &out_len), -E2BIG);
		assert_int_equal(payload_decompress(c.p, c.len, 0, &out, &out_len), -E2BIG);
		expect_roundtrip(&c, &in, in.len); /* exactly max_out is allowed */
		free(c.p);
	}
	free(in.p);
}

static void test_unsupported(void **state)
{
	static const uint8_t bz2[] = "BZh91AY&SY\x01\x02\x03\x04";
	static const uint8_t lzo[] = "\x89LZO\0\r\n\x1a\n";
	static const uint8_t junk[] = "hello, world";
	uint8_t *out = (uint8_t *)&out;
	size_t out_len = 1;

	assert_int_equal(payload_decompress(bz2, sizeof(bz2), BIG, &out, &out_len), -ENOTSUP);
	assert_null(out);
	assert_int_equal(payload_decompress(lzo, sizeof(lzo), BIG, &out, &out_len), -ENOTSUP);
	assert_int_equal(payload_decompress(junk, sizeof(junk), BIG, &out, &out_len), -ENOTSUP);
	assert_int_equal(payload_decompress(junk, 0, BIG, &out, &out_len), -ENOTSUP);
}

/* An uncompressed ELF payload is copied as is, within the limit. */
static void test_uncompressed(void **state)
{
	struct buf in = make_data(5000, 6);
	uint8_t *out;
	size_t out_len;

	memcpy(in.p, "\x7f" "ELF", 4);
	expect_roundtrip(&in, &in, in.len);
	assert_int_equal(payload_decompress(in.p, in.len, in.len - 1, &out, &out_len), -E2BIG);
	free(in.p);
}

static void test_detect(void **state)
{
	static const struct {
		const char *magic;
		size_t len;
		enum payload_format fmt;
	} cases[] = {
		{ "\x1f\x8b\x08", 3, PAYLOAD_GZIP },
		{ "\xfd" "7zXZ\0", 6, PAYLOAD_XZ },
		{ "\x28\xb5\x2f\xfd", 4, PAYLOAD_ZSTD },
		{ "\x02\x21\x4c\x18", 4, PAYLOAD_LZ4 },
		{ "\x5d\0\0", 3, PAYLOAD_LZMA },
		{ "BZh", 3, PAYLOAD_BZIP2 },
		{ "\x89LZO", 4, PAYLOAD_LZO },
		{ "\x7f" "ELF", 4, PAYLOAD_NONE },
		{ "\xfd" "7zXZ", 5, PAYLOAD_UNKNOWN }, /* too short for its magic */
		{ "\x28\xb5\x2f", 3, PAYLOAD_UNKNOWN },
		{ "MZ\x90\0", 4, PAYLOAD_UNKNOWN },
		{ "", 0, PAYLOAD_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(payload_detect((const uint8_t *)cases[i].magic, cases[i].len), cases[i].fmt);
	assert_int_equal(payload_detect(NULL, 10), PAYLOAD_UNKNOWN);
	assert_string_equal(payload_format_name(PAYLOAD_XZ), "xz");
	assert_string_equal(payload_format_name(PAYLOAD_BZIP2), "bzip2");
	assert_string_equal(payload_format_name((enum payload_format)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_lz4_big_blocks),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_output_limit),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_uncompressed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
