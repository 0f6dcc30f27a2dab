/* SPDX-License-Identifier: MIT */
/*
 * Versioned state codec: a plain C state struct described by a const field table, encoded to and
 * decoded from explicit little-endian bytes. Snapshot sections and (later) the migration stream carry
 * device, vCPU and irqchip state this way, so that one kiln reads the state another kiln wrote.
 *
 * Each field records the state version it first appeared in (`since`) and, once dropped, the last
 * version that had it (`until`). codec_encode always writes the table's current version. codec_decode
 * takes any version from the table's `oldest` to its `version`: fields that version did not have keep
 * their default (`def`, else 0); a version outside that range is refused in one place with one message.
 * Every byte is accounted for: a payload shorter or longer than its version holds is refused, and so
 * is a value outside a field's declared range, a set reserved bit or a non-zero reserved byte. After
 * the fields, the table's `check` (may be NULL) validates what a table cannot say (cross-field rules).
 *
 * The compatibility rule built on it (docs/snapshot-format.md "Compatibility"): a kiln reads every
 * state version since the oldest it lists, 8d1a722's; a change to a state struct adds fields with a new
 * `since` and bumps the table's version, never reinterprets a field in place.
 */
#ifndef KILN_LIB_CODEC_H
#define KILN_LIB_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- Explicit little-endian encoding for section payloads ---- */

/*
 * Writes into a fixed buffer; past its end nothing is written and `overflow` is set, so a caller
 * checks once at the end (snap_enc_ok).
 */
struct snap_enc {
	uint8_t *buf;
	size_t size;
	size_t len;
	bool overflow;
};

static inline void snap_enc_init(struct snap_enc *e, void *buf, size_t size)
{
	e->buf = buf;
	e->size = size;
	e->len = 0;
	e->overflow = false;
}

static inline void snap_put_bytes(struct snap_enc *e, const void *p, size_t n)
{
	if (e->overflow || n > e->size - e->len) {
		e->overflow = true;
		return;
	}
	if (n)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static inline void snap_put_le(struct snap_enc *e, uint64_t v, unsigned int bytes)
{
	uint8_t b[8];
	unsigned int i;

	for (i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	snap_put_bytes(e, b, bytes);
}

static inline void snap_put_u8(struct snap_enc *e, uint8_t v) { snap_put_le(e, v, 1); }
static inline void snap_put_u16(struct snap_enc *e, uint16_t v) { snap_put_le(e, v, 2); }
static inline void snap_put_u32(struct snap_enc *e, uint32_t v) { snap_put_le(e, v, 4); }
static inline void snap_put_u64(struct snap_enc *e, uint64_t v) { snap_put_le(e, v, 8); }
static inline bool snap_enc_ok(const struct snap_enc *e) { return !e->overflow; }

/*
 * Reads from a section payload; past its end reads return 0 and set `short_read`. snap_dec_done() is
 * true only when everything was read exactly, no more and no less.
 */
struct snap_dec {
	const uint8_t *buf;
	size_t len;
	size_t off;
	bool short_read;
};

static inline void snap_dec_init(struct snap_dec *d, const void *buf, size_t len)
{
	d->buf = buf;
	d->len = len;
	d->off = 0;
	d->short_read = false;
}

static inline bool snap_get_bytes(struct snap_dec *d, void *p, size_t n)
{
	if (d->short_read || n > d->len - d->off) {
		d->short_read = true;
		if (n)
			memset(p, 0, n);
		return false;
	}
	if (n)
		memcpy(p, d->buf + d->off, n);
	d->off += n;
	return true;
}

static inline uint64_t snap_get_le(struct snap_dec *d, unsigned int bytes)
{
	uint8_t b[8];
	uint64_t v = 0;
	unsigned int i;

	if (!snap_get_bytes(d, b, bytes))
		return 0;
	for (i = 0; i < bytes; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline uint8_t snap_get_u8(struct snap_dec *d) { return (uint8_t)snap_get_le(d, 1); }
static inline uint16_t snap_get_u16(struct snap_dec *d) { return (uint16_t)snap_get_le(d, 2); }
static inline uint32_t snap_get_u32(struct snap_dec *d) { return (uint32_t)snap_get_le(d, 4); }
static inline uint64_t snap_get_u64(struct snap_dec *d) { return snap_get_le(d, 8); }
static inline bool snap_dec_done(const struct snap_dec *d) { return !d->short_read && d->off == d->len; }

/* ---- Field tables ---- */

enum codec_kind {
	CODEC_UINT,     /* an unsigned integer of `size` bytes in the struct, `wire` bytes encoded */
	CODEC_BOOL,     /* a bool, one byte encoded: 0 or 1 */
	CODEC_BYTES,    /* `len` bytes copied as they are */
	CODEC_PAD,      /* `len` reserved bytes on the wire only: written 0, must read 0 */
	CODEC_FLAGS,    /* up to 8 bools packed into one byte, bit i = bits[i]; other bits must be 0 */
	CODEC_STRUCT,   /* a nested struct described by `sub` */
	CODEC_ARRAY,    /* `len` elements of `stride` bytes: structs (`sub`) or UINTs (`size`, `wire`) */
	CODEC_VARRAY,   /* as ARRAY, but the element count is a UINT read earlier (or `count`'s), at most `len` */
};

struct codec_table;

struct codec_field {
	const char *name;
	enum codec_kind kind;
	uint16_t since;                 /* first state version with this field (>= 1) */
	uint16_t until;                 /* last version with it; 0 while current */
	size_t offset;                  /* in the C struct, bytes */
	uint8_t size;                   /* UINT (and UINT elements): C size, 1, 2, 4 or 8 bytes */
	uint8_t wire;                   /* UINT (and UINT elements): encoded size, 1, 2, 4 or 8 bytes */
	bool ranged;                    /* UINT: refuse values outside [min, max] */
	uint64_t min, max;
	uint64_t def;                   /* UINT: value when the decoded version predates the field */
	size_t len;                     /* BYTES/PAD: bytes; ARRAY: elements; VARRAY: most elements */
	size_t stride;                  /* ARRAY/VARRAY: element size in the struct, bytes */
	const struct codec_table *sub;  /* STRUCT, or ARRAY/VARRAY of structs; NULL: UINT elements */
	size_t count_offset;            /* VARRAY: where its element count is in the struct ... */
	uint8_t count_size;             /* ... and its C size */
	/* VARRAY, instead of count_offset: the count computed from the struct's fields read so far. */
	size_t (*count)(const void *st);
	uint8_t nr_bits;                /* FLAGS */
	const size_t *bits;             /* FLAGS: offsets of the bools, bit 0 first */
};

struct codec_table {
	const char *name;               /* "UART state": the start of every message */
	uint32_t version;               /* what codec_encode writes */
	uint32_t oldest;                /* the oldest version codec_decode takes */
	size_t size;                    /* sizeof the struct */
	const struct codec_field *fields;
	unsigned int nr_fields;
	/* After decoding (may be NULL): 0, or -EINVAL with a message for a state the device cannot hold. */
	int (*check)(const void *st, uint32_t version, char *err, size_t err_size);
};

#define CODEC_MEMBER_SIZE(T, f) sizeof(((T *)0)->f)
#define CODEC_NR(a) (sizeof(a) / sizeof((a)[0]))

#define CODEC_UINT(T, f, wire_, since_)                                                                    \
	{ .name = #f, .kind = CODEC_UINT, .since = (since_), .offset = offsetof(T, f),                        \
	  .size = CODEC_MEMBER_SIZE(T, f), .wire = (wire_) }
/* A UINT that must lie in [min_, max_]. */
#define CODEC_RANGE(T, f, wire_, since_, min_, max_)                                                       \
	{ .name = #f, .kind = CODEC_UINT, .since = (since_), .offset = offsetof(T, f),                        \
	  .size = CODEC_MEMBER_SIZE(T, f), .wire = (wire_), .ranged = true, .min = (min_), .max = (max_) }
#define CODEC_BOOL(T, f, since_)                                                                           \
	{ .name = #f, .kind = CODEC_BOOL, .since = (since_), .offset = offsetof(T, f), .size = CODEC_MEMBER_SIZE(T, f) }
#define CODEC_BYTES(T, f, since_)                                                                          \
	{ .name = #f, .kind = CODEC_BYTES, .since = (since_), .offset = offsetof(T, f), .len = CODEC_MEMBER_SIZE(T, f) }
#define CODEC_PAD(n, since_) { .name = "reserved", .kind = CODEC_PAD, .since = (since_), .len = (n) }
/* Bools of T packed into one byte, the first named is bit 0. */
#define CODEC_FLAGS(T, name_, since_, ...)                                                                 \
	{ .name = name_, .kind = CODEC_FLAGS, .since = (since_),                                              \
	  .nr_bits = CODEC_NR(((const size_t[]){ __VA_ARGS__ })), .bits = (const size_t[]){ __VA_ARGS__ } }
#define CODEC_BIT(T, f) offsetof(T, f)
#define CODEC_STRUCT(T, f, sub_, since_)                                                                   \
	{ .name = #f, .kind = CODEC_STRUCT, .since = (since_), .offset = offsetof(T, f), .sub = (sub_) }
/* A fixed array of structs / of UINTs. */
#define CODEC_ARRAY(T, f, sub_, since_)                                                                    \
	{ .name = #f, .kind = CODEC_ARRAY, .since = (since_), .offset = offsetof(T, f),                       \
	  .len = CODEC_NR(((T *)0)->f), .stride = sizeof(((T *)0)->f[0]), .sub = (sub_) }
#define CODEC_UINT_ARRAY(T, f, wire_, since_)                                                              \
	{ .name = #f, .kind = CODEC_ARRAY, .since = (since_), .offset = offsetof(T, f),                       \
	  .len = CODEC_NR(((T *)0)->f), .stride = sizeof(((T *)0)->f[0]), .size = sizeof(((T *)0)->f[0]),     \
	  .wire = (wire_) }
/* The first T.count_ elements of array T.f (structs / UINTs); the count field comes earlier in the table. */
#define CODEC_VARRAY(T, f, count_, sub_, since_)                                                           \
	{ .name = #f, .kind = CODEC_VARRAY, .since = (since_), .offset = offsetof(T, f),                      \
	  .len = CODEC_NR(((T *)0)->f), .stride = sizeof(((T *)0)->f[0]), .sub = (sub_),                     \
	  .count_offset = offsetof(T, count_), .count_size = CODEC_MEMBER_SIZE(T, count_) }
#define CODEC_UINT_VARRAY(T, f, count_, wire_, since_)                                                     \
	{ .name = #f, .kind = CODEC_VARRAY, .since = (since_), .offset = offsetof(T, f),                      \
	  .len = CODEC_NR(((T *)0)->f), .stride = sizeof(((T *)0)->f[0]), .size = sizeof(((T *)0)->f[0]),     \
	  .wire = (wire_), .count_offset = offsetof(T, count_), .count_size = CODEC_MEMBER_SIZE(T, count_) }
/*
 * As CODEC_UINT_VARRAY, the count computed by count_(const void *st) from fields earlier in the table
 * (e.g. PBA words from a vector count): a count the wire does not carry.
 */
#define CODEC_UINT_VARRAY_FN(T, f, count_, wire_, since_)                                                  \
	{ .name = #f, .kind = CODEC_VARRAY, .since = (since_), .offset = offsetof(T, f),                      \
	  .len = CODEC_NR(((T *)0)->f), .stride = sizeof(((T *)0)->f[0]), .size = sizeof(((T *)0)->f[0]),     \
	  .wire = (wire_), .count = (count_) }

/* A table for struct T named name_, written at version_, read back to oldest_, fields in array fields_. */
#define CODEC_TABLE(T, name_, version_, oldest_, fields_, check_)                                          \
	{ .name = (name_), .version = (version_), .oldest = (oldest_), .size = sizeof(T), .fields = (fields_),     \
	  .nr_fields = CODEC_NR(fields_), .check = (check_) }

/*
 * Append `st` (a struct described by `t`) to `e` at version t->version. Returns 0, -EOVERFLOW when `e`
 * has no room (nothing is written past its end), or -EINVAL when a VARRAY count exceeds its array (a
 * state no kiln could have made).
 */
int codec_encode(const struct codec_table *t, const void *st, struct snap_enc *e) __attribute__((warn_unused_result));

/*
 * Decode `len` bytes of state version `version` into `st` (t->size bytes, zeroed first, then defaults
 * for fields `version` predates). Returns 0; -ENOTSUP when `version` is outside [t->oldest, t->version]
 * ("UART state version 3 is not known to this kiln (it reads versions 1 to 2)"); -EINVAL when the bytes
 * are not what that version holds or a value is out of range, with a message naming the field
 * ("virtio transport state: queues[3].size is 3, allowed 1 to 32768").
 */
int codec_decode(const struct codec_table *t, void *st, const void *data, size_t len, uint32_t version, char *err,
		 size_t err_size) __attribute__((warn_unused_result));

/* The most bytes codec_encode can write for `t` (every VARRAY full), for sizing buffers. */
size_t codec_max_size(const struct codec_table *t);

#endif
