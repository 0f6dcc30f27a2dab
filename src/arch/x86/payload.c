// SPDX-License-Identifier: MIT
/*
 * Decompression of the compressed vmlinux inside a bzImage (Linux boot protocol 2.08+ payload).
 *
 * The payload is untrusted: every decoder runs against a growing output buffer that never exceeds
 * max_out (plus one probe byte, see outbuf_init), truncated or corrupt input is reported as -EINVAL,
 * and every loop either makes progress or stops. The Linux build appends the uncompressed size as a
 * 4-byte little-endian word after every compressed payload (scripts/Makefile.lib size_append; for gzip
 * it is the gzip trailer's ISIZE); it sizes the first allocation and is otherwise ignored.
 */
#include "arch/x86/payload.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* liblzma memory limit: the kernel's xz uses a 32 MiB dictionary, lzma -9 a 64 MiB one. */
#define PAYLOAD_LZMA_MEMLIMIT (256ull << 20)
/* lz4 legacy format (lz4 -l, as the kernel's Makefile.lib uses): fixed 8 MiB uncompressed blocks. */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)
#define OUTBUF_MIN (64u << 10)

struct outbuf {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t limit; /* max_out + 1: a decoder that fills this has produced more than max_out bytes */
};

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

enum payload_format payload_detect(const uint8_t *data, size_t len)
{
	static const struct {
		enum payload_format fmt;
		uint8_t len;
		uint8_t magic[6];
	} magics[] = {
		{ PAYLOAD_GZIP, 2, { 0x1f, 0x8b } },
		{ PAYLOAD_XZ, 6, { 0xfd, '7', 'z', 'X', 'Z', 0x00 } },
		{ PAYLOAD_ZSTD, 4, { 0x28, 0xb5, 0x2f, 0xfd } },
		{ PAYLOAD_LZ4, 4, { 0x02, 0x21, 0x4c, 0x18 } },
		{ PAYLOAD_LZMA, 3, { 0x5d, 0x00, 0x00 } },
		{ PAYLOAD_BZIP2, 3, { 'B', 'Z', 'h' } },
		{ PAYLOAD_LZO, 4, { 0x89, 'L', 'Z', 'O' } },
		{ PAYLOAD_NONE, 4, { 0x7f, 'E', 'L', 'F' } },
	};

	if (!data)
		return PAYLOAD_UNKNOWN;
	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		if (len >= magics[i].len && memcmp(data, magics[i].magic, magics[i].len) == 0)
			return magics[i].fmt;
	}
	return PAYLOAD_UNKNOWN;
}

const char *payload_format_name(enum payload_format fmt)
{
	static const char *const names[] = {
		[PAYLOAD_UNKNOWN] = "unknown",
		[PAYLOAD_GZIP] = "gzip",
		[PAYLOAD_XZ] = "xz",
		[PAYLOAD_ZSTD] = "zstd",
		[PAYLOAD_LZ4] = "lz4",
		[PAYLOAD_LZMA] = "lzma",
		[PAYLOAD_BZIP2] = "bzip2",
		[PAYLOAD_LZO] = "lzo",
		[PAYLOAD_NONE] = "uncompressed",
	};

	if ((unsigned int)fmt >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[fmt];
}

/*
 * The first allocation: the trailing size hint when it is plausible (it is attacker-controlled, so
 * only ever bounded by max_out), else a few times the input.
 */
static int outbuf_init(struct outbuf *ob, const uint8_t *data, size_t len, size_t max_out)
{
	size_t want = 0;

	ob->len = 0;
	ob->limit = max_out < SIZE_MAX ? max_out + 1 : SIZE_MAX;
	if (len >= 4) {
		uint32_t hint = get_le32(data + len - 4);

		/* +1 lets a decoder with an exact-sized buffer see its end marker without a regrow. */
		if (hint > 0 && hint <= max_out)
			want = (size_t)hint + 1;
	}
	if (!want)
		want = len <= SIZE_MAX / 4 ? len * 4 : SIZE_MAX;
	if (want < OUTBUF_MIN)
		want = OUTBUF_MIN;
	if (want > ob->limit)
		want = ob->limit;
	ob->cap = want;
	ob->buf = malloc(ob->cap);
	return ob->buf ? 0 : -ENOMEM;
}

/* Make room for at least `need` more bytes, doubling; -E2BIG once max_out is exceeded. */
static int outbuf_reserve(struct outbuf *ob, size_t need)
{
	size_t cap = ob->cap;
	uint8_t *p;

	if (ob->cap - ob->len >= need)
		return 0;
	if (need > ob->limit - ob->len)
		return -E2BIG;
	while (cap - ob->len < need)
		cap = cap <= ob->limit / 2 ? cap * 2 : ob->limit;
	p = realloc(ob->buf, cap);
	if (!p)
		return -ENOMEM;
	ob->buf = p;
	ob->cap = cap;
	return 0;
}

/* Room for the next streaming call: whatever is left, or a doubling when the buffer is full. */
static int outbuf_room(struct outbuf *ob)
{
	return outbuf_reserve(ob, 1);
}

static int outbuf_append(struct outbuf *ob, const uint8_t *src, size_t n)
{
	int ret = outbuf_reserve(ob, n);

	if (ret)
		return ret;
	memcpy(ob->buf + ob->len, src, n);
	ob->len += n;
	return 0;
}

static int inflate_gzip(const uint8_t *data, size_t len, struct outbuf *ob)
{
	z_stream zs;
	size_t in_pos = 0;
	int zret, ret = 0;

	memset(&zs, 0, sizeof(zs));
	zret = inflateInit2(&zs, 16 + MAX_WBITS);
	if (zret != Z_OK)
		return zret == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
	for (;;) {
		size_t in_avail = len - in_pos, out_avail;

		ret = outbuf_room(ob);
		if (ret)
			break;
		out_avail = ob->cap - ob->len;
		/* zlib counts in uInt: feed at most UINT_MAX per call. */
		zs.next_in = (Bytef *)(uintptr_t)(data + in_pos);
		zs.avail_in = (uInt)(in_avail < UINT_MAX ? in_avail : UINT_MAX);
		zs.next_out = ob->buf + ob->len;
		zs.avail_out = (uInt)(out_avail < UINT_MAX ? out_avail : UINT_MAX);
		zret = inflate(&zs, Z_NO_FLUSH);
		in_pos = (size_t)(zs.next_in - data);
		ob->len = (size_t)(zs.next_out - ob->buf);
		if (zret == Z_STREAM_END)
			break;
		if (zret == Z_OK)
			continue;
		if (zret == Z_BUF_ERROR && zs.avail_out == 0)
			continue; /* full output buffer: grow and retry */
		/* Z_BUF_ERROR with output room means the input ran out: truncated. */
		ret = zret == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
		break;
	}
	inflateEnd(&zs);
	return ret;
}

/* xz (lzma_stream_decoder) or lzma-alone (lzma_alone_decoder): the same streaming loop. */
static int decode_lzma(const uint8_t *data, size_t len, struct outbuf *ob, bool alone)
{
	lzma_stream ls = LZMA_STREAM_INIT;
	lzma_ret lret;
	int ret = 0;

	/* No LZMA_CONCATENATED: decoding stops at the end of the first stream, so the kernel's size trailer is ignored. */
	if (alone)
		lret = lzma_alone_decoder(&ls, PAYLOAD_LZMA_MEMLIMIT);
	else
		lret = lzma_stream_decoder(&ls, PAYLOAD_LZMA_MEMLIMIT, 0);
	if (lret != LZMA_OK)
		return lret == LZMA_MEM_ERROR ? -ENOMEM : -EINVAL;
	ls.next_in = data;
	ls.avail_in = len;
	for (;;) {
		ret = outbuf_room(ob);
		if (ret)
			break;
		ls.next_out = ob->buf + ob->len;
		ls.avail_out = ob->cap - ob->len;
		lret = lzma_code(&ls, LZMA_FINISH);
		ob->len = (size_t)(ls.next_out - ob->buf);
		if (lret == LZMA_STREAM_END)
			break;
		if (lret == LZMA_OK)
			continue;
		/* LZMA_BUF_ERROR: no progress possible with output room left, i.e. truncated input. */
		ret = lret == LZMA_MEM_ERROR ? -ENOMEM : -EINVAL;
		break;
	}
	lzma_end(&ls);
	return ret;
}

static int decode_zstd(const uint8_t *data, size_t len, struct outbuf *ob)
{
	ZSTD_DStream *zds = ZSTD_createDStream();
	ZSTD_inBuffer in = { data, len, 0 };
	int ret = 0;

	if (!zds)
		return -ENOMEM;
	if (ZSTD_isError(ZSTD_initDStream(zds))) {
		ZSTD_freeDStream(zds);
		return -ENOMEM;
	}
	for (;;) {
		ZSTD_outBuffer out;
		size_t zret;

		ret = outbuf_room(ob);
		if (ret)
			break;
		out.dst = ob->buf + ob->len;
		out.size = ob->cap - ob->len;
		out.pos = 0;
		zret = ZSTD_decompressStream(zds, &out, &in);
		ob->len += out.pos;
		if (ZSTD_isError(zret)) {
			ret = ZSTD_getErrorCode(zret) == ZSTD_error_memory_allocation ? -ENOMEM : -EINVAL;
			break;
		}
		if (zret == 0)
			break; /* frame complete; anything after it (the size trailer) is ignored */
		/* All input used and output room left over: the decoder has flushed all it can. Truncated. */
		if (in.pos == in.size && out.pos < out.size) {
			ret = -EINVAL;
			break;
		}
	}
	ZSTD_freeDStream(zds);
	return ret;
}

/*
 * lz4 legacy frames: magic, then blocks of (LE32 compressed size, data), each at most 8 MiB
 * uncompressed, until the end of input. A size word equal to the magic starts another frame. Exactly
 * four bytes left at a block boundary cannot be a block (a block has at least one data byte): they are
 * the kernel's size trailer, accepted only if they match the output, since a legacy frame has no end
 * marker and four stray bytes are otherwise the only sign of truncation.
 */
static int decode_lz4(const uint8_t *data, size_t len, struct outbuf *ob)
{
	const size_t max_chunk = (size_t)LZ4_compressBound(LZ4_LEGACY_BLOCK);
	size_t pos = 4, block_cap;
	uint8_t *block;
	int ret = 0;

	if (len < 4 || get_le32(data) != LZ4_LEGACY_MAGIC)
		return -EINVAL;
	/* No block may produce more than max_out, so a small limit needs no full 8 MiB block buffer. */
	block_cap = ob->limit < LZ4_LEGACY_BLOCK ? ob->limit : LZ4_LEGACY_BLOCK;
	block = malloc(block_cap);
	if (!block)
		return -ENOMEM;
	while (pos < len) {
		size_t left = len - pos;
		uint32_t chunk;
		int n;

		if (left == 4) {
			if (get_le32(data + pos) != (uint32_t)ob->len)
				ret = -EINVAL;
			break;
		}
		if (left < 4) {
			ret = -EINVAL;
			break;
		}
		chunk = get_le32(data + pos);
		pos += 4;
		if (chunk == LZ4_LEGACY_MAGIC)
			continue;
		if (chunk == 0 || chunk > max_chunk || chunk > len - pos) {
			ret = -EINVAL;
			break;
		}
		n = LZ4_decompress_safe((const char *)data + pos, (char *)block, (int)chunk, (int)block_cap);
		if (n < 0) {
			/* A block too big for a buffer cut short by max_out fails too: tell the two apart. */
			if (block_cap < LZ4_LEGACY_BLOCK &&
			    LZ4_decompress_safe_partial((const char *)data + pos, (char *)block, (int)chunk,
							(int)block_cap, (int)block_cap) == (int)block_cap)
				ret = -E2BIG;
			else
				ret = -EINVAL;
			break;
		}
		pos += chunk;
		ret = outbuf_append(ob, block, (size_t)n);
		if (ret)
			break;
	}
	free(block);
	return ret;
}

int payload_decompress(const uint8_t *data, size_t len, size_t max_out, uint8_t **out, size_t *out_len)
{
	enum payload_format fmt = payload_detect(data, len);
	struct outbuf ob;
	uint8_t *shrunk;
	int ret;

	*out = NULL;
	*out_len = 0;
	switch (fmt) {
	case PAYLOAD_GZIP:
	case PAYLOAD_XZ:
	case PAYLOAD_ZSTD:
	case PAYLOAD_LZ4:
	case PAYLOAD_LZMA:
	case PAYLOAD_NONE:
		break;
	default:
		return -ENOTSUP;
	}
	ret = outbuf_init(&ob, data, len, max_out);
	if (ret)
		return ret;
	switch (fmt) {
	case PAYLOAD_GZIP:
		ret = inflate_gzip(data, len, &ob);
		break;
	case PAYLOAD_XZ:
		ret = decode_lzma(data, len, &ob, false);
		break;
	case PAYLOAD_LZMA:
		ret = decode_lzma(data, len, &ob, true);
		break;
	case PAYLOAD_ZSTD:
		ret = decode_zstd(data, len, &ob);
		break;
	case PAYLOAD_LZ4:
		ret = decode_lz4(data, len, &ob);
		break;
	default: /* PAYLOAD_NONE: an uncompressed ELF payload is used as is */
		ret = outbuf_append(&ob, data, len);
		break;
	}
	if (!ret && ob.len > max_out)
		ret = -E2BIG;
	if (ret) {
		free(ob.buf);
		return ret;
	}
	/* Give back the slack of a generous first allocation. */
	shrunk = realloc(ob.buf, ob.len ? ob.len : 1);
	*out = shrunk ? shrunk : ob.buf;
	*out_len = ob.len;
	return 0;
}
