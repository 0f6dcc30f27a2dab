// SPDX-License-Identifier: MIT
/*
 * The field-table codec of lib/codec.h. Encoding walks the table writing each field present in the
 * current version; decoding walks it for the version it is given, checking every value as it lands
 * and stopping at the first problem, whose message names the field by its path ("queues[3].size").
 */
#include "lib/codec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "lib/log.h"

#define CODEC_MAX_DEPTH 8

/* Where decoding is, for messages: the fields and indices above the one being read. */
struct codec_ctx {
	const struct codec_table *top;
	uint32_t version;
	size_t len;
	char *err;
	size_t err_size;
	unsigned int depth;
	struct {
		const char *name;
		long index;             /* -1: not an array element */
	} path[CODEC_MAX_DEPTH];
};

static bool present(const struct codec_field *f, uint32_t version)
{
	return f->since <= version && (!f->until || version <= f->until);
}

static uint64_t load_uint(const uint8_t *p, unsigned int size)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (size) {
	case 1:
		memcpy(&u8, p, 1);
		return u8;
	case 2:
		memcpy(&u16, p, 2);
		return u16;
	case 4:
		memcpy(&u32, p, 4);
		return u32;
	default:
		memcpy(&u64, p, 8);
		return u64;
	}
}

static void store_uint(uint8_t *p, unsigned int size, uint64_t v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (size) {
	case 1:
		memcpy(p, &u8, 1);
		break;
	case 2:
		memcpy(p, &u16, 2);
		break;
	case 4:
		memcpy(p, &u32, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

static bool fits(uint64_t v, unsigned int bytes)
{
	return bytes >= 8 || v >> (8 * bytes) == 0;
}

/* A VARRAY's element count in `st`, the struct holding it. */
static uint64_t varray_count(const struct codec_field *f, const uint8_t *st)
{
	return f->count ? f->count(st) : load_uint(st + f->count_offset, f->count_size);
}

/* ---- encoding ---- */

static int encode_fields(const struct codec_table *t, const uint8_t *st, struct snap_enc *e);

static int encode_elements(const struct codec_field *f, const uint8_t *base, size_t n, struct snap_enc *e)
{
	if (!f->sub && f->size == 1 && f->wire == 1) {
		snap_put_bytes(e, base, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = base + i * f->stride;
		int ret = 0;

		if (f->sub) {
			ret = encode_fields(f->sub, p, e);
		} else {
			uint64_t v = load_uint(p, f->size);

			if (!fits(v, f->wire))
				return -EINVAL;
			snap_put_le(e, v, f->wire);
		}
		if (ret)
			return ret;
	}
	return 0;
}

static int encode_field(const struct codec_field *f, const uint8_t *st, struct snap_enc *e)
{
	const uint8_t *p = st + f->offset;
	uint64_t v;
	uint8_t byte = 0;

	switch (f->kind) {
	case CODEC_UINT:
		v = load_uint(p, f->size);
		if (!fits(v, f->wire))
			return -EINVAL;
		snap_put_le(e, v, f->wire);
		return 0;
	case CODEC_BOOL:
		snap_put_u8(e, *p ? 1 : 0);
		return 0;
	case CODEC_BYTES:
		snap_put_bytes(e, p, f->len);
		return 0;
	case CODEC_PAD:
		for (size_t i = 0; i < f->len; i++)
			snap_put_u8(e, 0);
		return 0;
	case CODEC_FLAGS:
		for (unsigned int i = 0; i < f->nr_bits; i++)
			if (st[f->bits[i]])
				byte |= (uint8_t)(1u << i);
		snap_put_u8(e, byte);
		return 0;
	case CODEC_STRUCT:
		return encode_fields(f->sub, p, e);
	case CODEC_ARRAY:
		return encode_elements(f, p, f->len, e);
	case CODEC_VARRAY:
		v = varray_count(f, st);
		if (v > f->len)
			return -EINVAL;
		return encode_elements(f, p, (size_t)v, e);
	}
	return -EINVAL;
}

static int encode_fields(const struct codec_table *t, const uint8_t *st, struct snap_enc *e)
{
	for (unsigned int i = 0; i < t->nr_fields; i++) {
		const struct codec_field *f = &t->fields[i];
		int ret;

		if (f->until)
			continue; /* dropped: no longer written */
		ret = encode_field(f, st, e);
		if (ret)
			return ret;
	}
	return 0;
}

int codec_encode(const struct codec_table *t, const void *st, struct snap_enc *e)
{
	int ret = encode_fields(t, st, e);

	if (ret)
		return ret;
	return snap_enc_ok(e) ? 0 : -EOVERFLOW;
}

static size_t field_max_size(const struct codec_field *f)
{
	size_t elem;

	switch (f->kind) {
	case CODEC_UINT:
		return f->wire;
	case CODEC_BOOL:
	case CODEC_FLAGS:
		return 1;
	case CODEC_BYTES:
	case CODEC_PAD:
		return f->len;
	case CODEC_STRUCT:
		return codec_max_size(f->sub);
	case CODEC_ARRAY:
	case CODEC_VARRAY:
		elem = f->sub ? codec_max_size(f->sub) : f->wire;
		return f->len * elem;
	}
	return 0;
}

size_t codec_max_size(const struct codec_table *t)
{
	size_t n = 0;

	for (unsigned int i = 0; i < t->nr_fields; i++)
		if (!t->fields[i].until)
			n += field_max_size(&t->fields[i]);
	return n;
}

/* ---- decoding ---- */

/* "queues[3].size" for field `f` at the current depth. */
static const char *field_path(const struct codec_ctx *c, const struct codec_field *f, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = 0;
	for (unsigned int i = 0; i < c->depth && n < size; i++) {
		if (c->path[i].index >= 0)
			n += (size_t)snprintf(buf + n, size - n, "%s[%ld].", c->path[i].name, c->path[i].index);
		else
			n += (size_t)snprintf(buf + n, size - n, "%s.", c->path[i].name);
	}
	if (n < size)
		snprintf(buf + n, size - n, "%s", f->name);
	return buf;
}

static int short_payload(struct codec_ctx *c)
{
	errmsg_set(c->err, c->err_size, "%s: %zu bytes, not what version %u holds", c->top->name, c->len, c->version);
	return -EINVAL;
}

#define BAD_FIELD(c, f, ...)                                                                                  \
	({                                                                                                    \
		char path_[160], msg_[160];                                                                   \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                                    \
		errmsg_set((c)->err, (c)->err_size, "%s: %s %s", (c)->top->name,                              \
			   field_path((c), (f), path_, sizeof(path_)), msg_);                                 \
		-EINVAL;                                                                                      \
	})

static int decode_fields(struct codec_ctx *c, const struct codec_table *t, uint8_t *st, struct snap_dec *d);
static void apply_defaults(const struct codec_table *t, uint8_t *st, uint32_t version, bool all);

static int decode_uint(struct codec_ctx *c, const struct codec_field *f, uint8_t *p, struct snap_dec *d)
{
	uint64_t v = snap_get_le(d, f->wire);

	if (d->short_read)
		return short_payload(c);
	if (!fits(v, f->size))
		return BAD_FIELD(c, f, "is %" PRIu64 ", more than it can hold", v);
	if (f->ranged && (v < f->min || v > f->max))
		return BAD_FIELD(c, f, "is %" PRIu64 ", allowed %" PRIu64 " to %" PRIu64, v, f->min, f->max);
	store_uint(p, f->size, v);
	return 0;
}

static int decode_elements(struct codec_ctx *c, const struct codec_field *f, uint8_t *base, size_t n,
			   struct snap_dec *d)
{
	int ret = 0;

	if (!f->sub && f->size == 1 && f->wire == 1) {
		snap_get_bytes(d, base, n);
		return d->short_read ? short_payload(c) : 0;
	}
	if (!f->sub) {
		for (size_t i = 0; i < n && !ret; i++) {
			struct codec_field elem = *f;
			char name[80];

			snprintf(name, sizeof(name), "%s[%zu]", f->name, i);
			elem.name = name;
			ret = decode_uint(c, &elem, base + i * f->stride, d);
		}
		return ret;
	}
	if (c->depth >= CODEC_MAX_DEPTH)
		return -EINVAL;
	c->path[c->depth].name = f->name;
	c->depth++;
	for (size_t i = 0; i < n && !ret; i++) {
		c->path[c->depth - 1].index = (long)i;
		ret = decode_fields(c, f->sub, base + i * f->stride, d);
	}
	c->depth--;
	return ret;
}

static int decode_field(struct codec_ctx *c, const struct codec_field *f, uint8_t *st, struct snap_dec *d)
{
	uint8_t *p = st + f->offset;
	uint64_t v;
	uint8_t byte;
	int ret;

	switch (f->kind) {
	case CODEC_UINT:
		return decode_uint(c, f, p, d);
	case CODEC_BOOL:
		byte = snap_get_u8(d);
		if (d->short_read)
			return short_payload(c);
		if (byte > 1)
			return BAD_FIELD(c, f, "is %u, not a boolean", byte);
		*(bool *)p = byte;
		return 0;
	case CODEC_BYTES:
		snap_get_bytes(d, p, f->len);
		return d->short_read ? short_payload(c) : 0;
	case CODEC_PAD:
		for (size_t i = 0; i < f->len; i++) {
			byte = snap_get_u8(d);
			if (d->short_read)
				return short_payload(c);
			if (byte)
				return BAD_FIELD(c, f, "bytes are not zero");
		}
		return 0;
	case CODEC_FLAGS:
		byte = snap_get_u8(d);
		if (d->short_read)
			return short_payload(c);
		if (f->nr_bits < 8 && byte >> f->nr_bits)
			return BAD_FIELD(c, f, "has unknown bits 0x%x", byte & (uint8_t)(0xffu << f->nr_bits));
		for (unsigned int i = 0; i < f->nr_bits; i++)
			*(bool *)(st + f->bits[i]) = byte >> i & 1;
		return 0;
	case CODEC_STRUCT:
		if (c->depth >= CODEC_MAX_DEPTH)
			return -EINVAL;
		c->path[c->depth].name = f->name;
		c->path[c->depth].index = -1;
		c->depth++;
		ret = decode_fields(c, f->sub, p, d);
		c->depth--;
		return ret;
	case CODEC_ARRAY:
		return decode_elements(c, f, p, f->len, d);
	case CODEC_VARRAY:
		v = varray_count(f, st);
		if (v > f->len)
			return BAD_FIELD(c, f, "has %" PRIu64 " elements, at most %zu", v, f->len);
		return decode_elements(c, f, p, (size_t)v, d);
	}
	return -EINVAL;
}

static int decode_fields(struct codec_ctx *c, const struct codec_table *t, uint8_t *st, struct snap_dec *d)
{
	for (unsigned int i = 0; i < t->nr_fields; i++) {
		const struct codec_field *f = &t->fields[i];
		int ret;

		if (!present(f, c->version))
			continue;
		ret = decode_field(c, f, st, d);
		if (ret)
			return ret;
	}
	return 0;
}

/* Defaults of the fields `version` lacks (every field, with `all`: a whole struct the version lacks). */
static void apply_defaults(const struct codec_table *t, uint8_t *st, uint32_t version, bool all)
{
	for (unsigned int i = 0; i < t->nr_fields; i++) {
		const struct codec_field *f = &t->fields[i];
		bool absent = all || !present(f, version);

		if (f->kind == CODEC_UINT && absent && f->def)
			store_uint(st + f->offset, f->size, f->def);
		else if (f->kind == CODEC_STRUCT)
			apply_defaults(f->sub, st + f->offset, version, absent);
		else if ((f->kind == CODEC_ARRAY || f->kind == CODEC_VARRAY) && f->sub)
			for (size_t k = 0; k < f->len; k++)
				apply_defaults(f->sub, st + f->offset + k * f->stride, version, absent);
	}
}

int codec_decode(const struct codec_table *t, void *st, const void *data, size_t len, uint32_t version, char *err,
		 size_t err_size)
{
	struct codec_ctx c = { .top = t, .version = version, .len = len, .err = err, .err_size = err_size };
	struct snap_dec d;
	int ret;

	memset(st, 0, t->size);
	if (version < t->oldest || version > t->version) {
		if (t->oldest == t->version)
			errmsg_set(err, err_size, "%s version %u is not known to this kiln (it reads version %u)", t->name,
				   version, t->version);
		else
			errmsg_set(err, err_size, "%s version %u is not known to this kiln (it reads versions %u to %u)",
				   t->name, version, t->oldest, t->version);
		return -ENOTSUP;
	}
	apply_defaults(t, st, version, false);
	snap_dec_init(&d, data, len);
	ret = decode_fields(&c, t, st, &d);
	if (ret)
		return ret;
	if (!snap_dec_done(&d))
		return short_payload(&c);
	return t->check ? t->check(st, version, err, err_size) : 0;
}
