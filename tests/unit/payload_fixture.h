/* SPDX-License-Identifier: MIT */
/*
 * What test_payload.c (the decompressors) and test_kernel_image.c (bzImages around them) share: a byte
 * buffer, and the compressed payloads the kernel build makes (gzip; xz with or without the x86 BCJ
 * filter; the 4-byte size trailer of size_append). Header-only, as virtio_pci_fixture.h.
 */
#ifndef KILN_TESTS_UNIT_PAYLOAD_FIXTURE_H
#define KILN_TESTS_UNIT_PAYLOAD_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <lzma.h>
#include <zlib.h>

struct buf {
	uint8_t *p;
	size_t len;
};

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The kernel build's size_append: the uncompressed size, 4 bytes little-endian. */
static inline void append_size(struct buf *c, size_t size)
{
	c->p = realloc(c->p, c->len + 4);
	assert_non_null(c->p);
	put_le32(c->p + c->len, (uint32_t)size);
	c->len += 4;
}

static inline struct buf compress_gzip(const struct buf *in)
{
	struct buf c = { malloc(compressBound(in->len) + 64), 0 };
	z_stream zs = { 0 };

	assert_non_null(c.p);
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = in->p;
	zs.avail_in = (uInt)in->len;
	zs.next_out = c.p;
	zs.avail_out = (uInt)(compressBound(in->len) + 64);
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	c.len = zs.total_out;
	deflateEnd(&zs);
	return c;
}

static inline struct buf compress_xz(const struct buf *in, bool bcj)
{
	size_t cap = lzma_stream_buffer_bound(in->len);
	struct buf c = { malloc(cap), 0 };

	assert_non_null(c.p);
	if (bcj) {
		/* The kernel's scripts/xz_wrap.sh: --x86 --lzma2, CRC32 check. */
		lzma_options_lzma opt;
		lzma_filter filters[3];

		assert_false(lzma_lzma_preset(&opt, 6));
		opt.dict_size = 1u << 20;
		filters[0] = (lzma_filter){ LZMA_FILTER_X86, NULL };
		filters[1] = (lzma_filter){ LZMA_FILTER_LZMA2, &opt };
		filters[2] = (lzma_filter){ LZMA_VLI_UNKNOWN, NULL };
		assert_int_equal(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, in->p, in->len, c.p,
							   &c.len, cap), LZMA_OK);
	} else {
		assert_int_equal(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, in->p, in->len, c.p, &c.len, cap),
				 LZMA_OK);
	}
	return c;
}

#endif
