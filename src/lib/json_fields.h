/* SPDX-License-Identifier: MIT */
/*
 * Table-driven parsing of JSON objects (jansson) into C structs: one row per field, giving its name, kind,
 * limits and offset in the destination struct. The config file's sections (src/vmm/config.c) and the
 * control API's request bodies (src/api/routes.c) are both parsed here, so a value is accepted or refused,
 * and worded, the same way in a file and in a request. A message names the field by its JSON path
 * ("<where>.<field>", or "<field>" when `where` is empty) and says what was expected and what came.
 */
#ifndef KILN_LIB_JSON_FIELDS_H
#define KILN_LIB_JSON_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t; /* jansson's json_t */

enum json_field_kind {
	JSON_FIELD_PATH,     /* char *: non-empty string without NUL bytes; `null_word` (e.g. "stdio") is
	                        stored as NULL */
	JSON_FIELD_TEXT,     /* char *: string without NUL bytes, at most `max` bytes (a command line) */
	JSON_FIELD_STRING,   /* char *: any string without NUL bytes, `min` to `max` bytes (max 0: no limit) */
	JSON_FIELD_ID,       /* char *: a resource id (drive_id, iface_id): json_id_valid(s, '_') */
	JSON_FIELD_INSTANCE_ID, /* char *: a VM id (Firecracker's --id): json_id_valid(s, '-') */
	JSON_FIELD_U32,      /* unsigned int in [min, max] */
	JSON_FIELD_U64,      /* uint64_t in [min, max] */
	JSON_FIELD_BOOL,     /* bool */
	JSON_FIELD_ENUM,     /* unsigned int: index of the string in `values` */
	JSON_FIELD_MAC,      /* struct json_mac: "xx:xx:xx:xx:xx:xx" */
	JSON_FIELD_OBJECT,   /* a nested object the caller parses with its own table: only its type is
	                        checked here; nothing stored */
	JSON_FIELD_ARRAY,    /* an array the caller parses itself: only its type is checked here;
	                        nothing stored */
	JSON_FIELD_NONE,     /* a Firecracker enum of which kiln implements only "None"; nothing stored */
	JSON_FIELD_LATER,    /* a Firecracker field kiln does not implement yet: only null (when nullable)
	                        or an empty array or object, which configure nothing, are accepted */
	JSON_FIELD_RENAMED,  /* an old Firecracker name: rejected with `hint` */
};

struct json_field {
	const char *name;
	enum json_field_kind kind;
	bool nullable;               /* JSON null accepted: clears a string, no-op otherwise */
	bool required;               /* absent is an error ("<path>: missing (required)") */
	size_t offset;               /* into the destination struct */
	uint64_t min, max;           /* JSON_FIELD_U32, JSON_FIELD_U64; bytes for JSON_FIELD_STRING and TEXT */
	const char *const *values;   /* JSON_FIELD_ENUM: accepted strings, NULL-terminated */
	const char *const *later;    /* JSON_FIELD_ENUM, JSON_FIELD_NONE: Firecracker values kiln does not
	                                implement yet, NULL-terminated (rejected with "not supported yet") */
	const char *hint;            /* JSON_FIELD_RENAMED */
	const char *null_word;       /* JSON_FIELD_PATH: the word that means "none" ("stdio"), or NULL */
};

/* A MAC address field; `set` is false when the JSON did not give one. */
struct json_mac {
	bool set;
	uint8_t bytes[6];
};

/* Longest id (JSON_FIELD_ID, JSON_FIELD_INSTANCE_ID), in bytes without the NUL. */
#define JSON_ID_MAX 64

/* 1..JSON_ID_MAX bytes of ASCII letters, digits and `extra` (Firecracker's id rules: '_' or '-'). */
bool json_id_valid(const char *id, char extra);

/* True when `s` is valid UTF-8 (RFC 3629), the only text a JSON string holds (jansson's own check). */
bool json_text_valid(const char *s);

/* "xx:xx:xx:xx:xx:xx" (`len` bytes, hex digits of either case, Firecracker's MacAddr::from_str). */
bool json_mac_parse(const char *s, size_t len, uint8_t out[6]);

/*
 * Parse the JSON object `obj` into the struct at `dst` (`dst_size` bytes, holding defaults or earlier
 * values) through `fields` (`nr_fields` entries). Unknown keys, wrong types, out-of-range values and
 * missing required fields are errors: -EINVAL with a message naming the field. All or nothing: on error
 * `dst` is unchanged. String fields that appear replace (and free) the old string. -ENOMEM when out of
 * memory. `where` is the JSON path of `obj` for messages ("" at the top of a document).
 */
int json_fields_parse(const char *where, const struct json_field *fields, size_t nr_fields, struct json_t *obj,
		      void *dst, size_t dst_size, char *err, size_t err_size) __attribute__((warn_unused_result));

/* Free the string fields of `dst` named in `fields` and set them to NULL. */
void json_fields_free(const struct json_field *fields, size_t nr_fields, void *dst);

/*
 * For a parser that spans several objects and commits once (the config file's sections): the struct being
 * built (`next`, a copy of the caller's `orig`) and where messages go. json_fields_parse_into() parses one
 * object into `next`; a string it replaces is freed only when this parse allocated it, so the caller frees
 * whichever side lost at its commit (json_fields_commit()).
 */
struct json_fields_ctx {
	void *next;
	const void *orig;
	char *err;
	size_t err_size;
};

int json_fields_parse_into(struct json_fields_ctx *ctx, const char *where, const struct json_field *fields,
			   size_t nr_fields, struct json_t *obj) __attribute__((warn_unused_result));

/*
 * End of a parse of `fields` from `orig` into `next`: for every string field that differs, free the loser
 * (`next`'s when `ret` is an error, else `orig`'s). The caller then copies `next` over `orig` on success.
 */
void json_fields_commit(const struct json_field *fields, size_t nr_fields, void *orig, void *next, int ret);

/* A message into ctx->err; returns -EINVAL, for `return json_fields_fail(ctx, ...)`. */
int json_fields_fail(struct json_fields_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short rendering of a JSON value for "got ..." in messages ("an object", "\"abc\"", "42"). */
void json_describe(const struct json_t *v, char *buf, size_t size);

#endif
