// SPDX-License-Identifier: MIT
/*
 * The JSON field engine (lib/json_fields.h): every key of an object is looked up in its table; anything
 * unknown, of the wrong type or out of range is an error naming its JSON path.
 */
#include "lib/json_fields.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

/* Room for a field's JSON path in messages ("drives[3].rate_limiter"). */
#define PATH_SIZE 160

static char **str_at(const void *base, size_t offset)
{
	return (char **)((char *)base + offset);
}

static bool is_string_kind(enum json_field_kind kind)
{
	switch (kind) {
	case JSON_FIELD_PATH:
	case JSON_FIELD_TEXT:
	case JSON_FIELD_STRING:
	case JSON_FIELD_ID:
	case JSON_FIELD_INSTANCE_ID:
		return true;
	default:
		return false;
	}
}

int json_fields_fail(struct json_fields_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx->err && ctx->err_size) {
		va_start(ap, fmt);
		vsnprintf(ctx->err, ctx->err_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define fail json_fields_fail

void json_describe(const json_t *v, char *buf, size_t size)
{
	char *dump;

	if (json_is_object(v)) {
		snprintf(buf, size, "an object");
		return;
	}
	if (json_is_array(v)) {
		snprintf(buf, size, "an array");
		return;
	}
	dump = json_dumps(v, JSON_ENCODE_ANY);
	if (!dump) {
		snprintf(buf, size, "a %s", json_is_string(v) ? "string" : "value");
		return;
	}
	if (strlen(dump) >= size && size > 4)
		snprintf(buf, size, "%.*s...", (int)(size - 4), dump);
	else
		snprintf(buf, size, "%s", dump);
	free(dump);
}

/* The JSON path of field `name` inside the object at `where`. */
static void field_path(char *buf, size_t size, const char *where, const char *name)
{
	snprintf(buf, size, "%s%s%s", where, where[0] ? "." : "", name);
}

bool json_id_valid(const char *id, char extra)
{
	size_t n = strlen(id);

	if (n == 0 || n > JSON_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isascii((unsigned char)id[i]) || (!isalnum((unsigned char)id[i]) && id[i] != extra))
			return false;
	return true;
}

bool json_text_valid(const char *s)
{
	json_t *v = json_string(s);

	json_decref(v);
	return v != NULL;
}

/*
 * Replace a string field of the struct being built. The previous value is freed only if this parse

 * allocated it; the caller's strings are freed at commit time.
 */
static int set_string(struct json_fields_ctx *ctx, size_t offset, const char *value)
{
	char **dst = str_at(ctx->next, offset);
	char *copy = NULL;

	if (value) {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	if (*dst != *str_at(ctx->orig, offset))
		free(*dst);
	*dst = copy;
	return 0;
}

/* "\"a\", \"b\" or \"c\"" from a NULL-terminated list. */
static void quote_list(const char *const *values, char *buf, size_t size)
{
	size_t len = 0, total = 0;

	while (values && values[total])
		total++;
	buf[0] = '\0';
	for (size_t i = 0; i < total && len < size; i++)
		len += snprintf(buf + len, size - len, "%s\"%s\"", i == 0 ? "" : i + 1 == total ? " or " : ", ",
				values[i]);
}

static bool in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static int parse_none_enum(struct json_fields_ctx *ctx, const char *path, const struct json_field *f, json_t *v)
{
	char got[64];
	const char *s;

	if (json_is_string(v)) {
		s = json_string_value(v);
		if (!strcmp(s, "None"))
			return 0;
		if (in_list(f->later, s))
			return fail(ctx, "%s: \"%s\" is not supported yet (expected %s\"None\")", path, s,
				    f->nullable ? "null or " : "");
	}
	json_describe(v, got, sizeof(got));
	return fail(ctx, "%s: expected %s\"None\", got %s", path, f->nullable ? "null or " : "", got);
}

static int parse_enum(struct json_fields_ctx *ctx, const char *path, const struct json_field *f, json_t *v)
{
	char got[64], list[160];
	const char *s;

	quote_list(f->values, list, sizeof(list));
	if (json_is_string(v)) {
		s = json_string_value(v);
		for (unsigned int i = 0; f->values && f->values[i]; i++) {
			if (!strcmp(s, f->values[i])) {
				*(unsigned int *)((char *)ctx->next + f->offset) = i;
				return 0;
			}
		}
		if (in_list(f->later, s))
			return fail(ctx, "%s: \"%s\" is not supported yet (expected %s%s)", path, s,
				    f->nullable ? "null or " : "", list);
	}
	json_describe(v, got, sizeof(got));
	return fail(ctx, "%s: expected %s%s, got %s", path, f->nullable ? "null or " : "", list, got);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool json_mac_parse(const char *s, size_t len, uint8_t out[6])
{
	if (len != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static int parse_string_field(struct json_fields_ctx *ctx, const char *path, const struct json_field *f, json_t *v,
			      const char *got)
{
	const char *s;
	size_t len;

	if (!json_is_string(v)) {
		switch (f->kind) {
		case JSON_FIELD_PATH:
			if (f->null_word)
				return fail(ctx, "%s: expected \"%s\" or a file path, got %s", path, f->null_word, got);
			return fail(ctx, "%s: expected a non-empty path string%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		case JSON_FIELD_ID:
		case JSON_FIELD_INSTANCE_ID:
			return fail(ctx, "%s: expected an id of 1..%d letters, digits or '%c', got %s", path,
				    JSON_ID_MAX, f->kind == JSON_FIELD_ID ? '_' : '-', got);
		default:
			return fail(ctx, "%s: expected a string%s, got %s", path, f->nullable ? " or null" : "", got);
		}
	}
	s = json_string_value(v);
	len = json_string_length(v);

	switch (f->kind) {
	case JSON_FIELD_PATH:
		if (len == 0) {
			if (f->null_word)
				return fail(ctx, "%s: expected \"%s\" or a file path, got %s", path, f->null_word, got);
			return fail(ctx, "%s: expected a non-empty path string%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		}
		if (strlen(s) != len)
			return fail(ctx, "%s: expected a path without NUL bytes", path);
		if (f->null_word && !strcmp(s, f->null_word))
			s = NULL;
		return set_string(ctx, f->offset, s);

	case JSON_FIELD_TEXT:
		if (strlen(s) != len)
			return fail(ctx, "%s: expected a string without NUL bytes", path);
		if (len > f->max)
			return fail(ctx, "%s: expected at most %" PRIu64 " bytes, got %zu bytes", path, f->max, len);
		return set_string(ctx, f->offset, s);

	case JSON_FIELD_STRING:
		if (strlen(s) != len)
			return fail(ctx, "%s: expected a string without NUL bytes", path);
		if (len < f->min || (f->max && len > f->max)) {
			if (f->max)
				return fail(ctx, "%s: expected a string of %" PRIu64 "..%" PRIu64 " bytes, got %s", path,
					    f->min, f->max, got);
			return fail(ctx, "%s: expected a non-empty string%s, got %s", path, f->nullable ? " or null" : "",
				    got);
		}
		return set_string(ctx, f->offset, s);

	case JSON_FIELD_ID:
	case JSON_FIELD_INSTANCE_ID:
		if (strlen(s) != len || !(f->kind == JSON_FIELD_ID ? json_id_valid(s, '_') : json_id_valid(s, '-')))
			return fail(ctx, "%s: expected an id of 1..%d letters, digits or '%c', got %s", path,
				    JSON_ID_MAX, f->kind == JSON_FIELD_ID ? '_' : '-', got);
		return set_string(ctx, f->offset, s);

	default:
		break;
	}
	return fail(ctx, "%s: internal error: not a string field", path);
}

static int parse_field(struct json_fields_ctx *ctx, const char *where, const struct json_field *f, json_t *v)
{
	void *dst = (char *)ctx->next + f->offset;
	char got[64], path[PATH_SIZE];
	json_int_t n;

	field_path(path, sizeof(path), where, f->name);
	if (f->kind == JSON_FIELD_RENAMED)
		return fail(ctx, "%s: unknown field (%s)", path, f->hint);
	if (json_is_null(v) && f->nullable) {
		if (is_string_kind(f->kind))
			return set_string(ctx, f->offset, NULL);
		if (f->kind == JSON_FIELD_MAC)
			((struct json_mac *)dst)->set = false;
		return 0;
	}
	json_describe(v, got, sizeof(got));

	switch (f->kind) {
	case JSON_FIELD_PATH:
	case JSON_FIELD_TEXT:
	case JSON_FIELD_STRING:
	case JSON_FIELD_ID:
	case JSON_FIELD_INSTANCE_ID:
		return parse_string_field(ctx, path, f, v, got);

	case JSON_FIELD_U32:
	case JSON_FIELD_U64:
		n = json_is_integer(v) ? json_integer_value(v) : -1;
		if (!json_is_integer(v) || n < 0 || (uint64_t)n < f->min || (uint64_t)n > f->max)
			return fail(ctx, "%s: expected an integer %" PRIu64 "..%" PRIu64 ", got %s", path, f->min, f->max,
				    got);
		if (f->kind == JSON_FIELD_U32)
			*(unsigned int *)dst = (unsigned int)n;
		else
			*(uint64_t *)dst = (uint64_t)n;
		return 0;

	case JSON_FIELD_BOOL:
		if (!json_is_boolean(v))
			return fail(ctx, "%s: expected true or false, got %s", path, got);
		*(bool *)dst = json_is_true(v);
		return 0;

	case JSON_FIELD_ENUM:
		return parse_enum(ctx, path, f, v);

	case JSON_FIELD_MAC: {
		struct json_mac *mac = dst;

		if (!json_is_string(v) || !json_mac_parse(json_string_value(v), json_string_length(v), mac->bytes))
			return fail(ctx, "%s: expected a MAC address \"xx:xx:xx:xx:xx:xx\"%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		mac->set = true;
		return 0;
	}

	case JSON_FIELD_OBJECT:
		if (!json_is_object(v))
			return fail(ctx, "%s: expected an object%s, got %s", path, f->nullable ? " or null" : "", got);
		return 0;

	case JSON_FIELD_ARRAY:
		if (!json_is_array(v))
			return fail(ctx, "%s: expected an array%s, got %s", path, f->nullable ? " or null" : "", got);
		return 0;

	case JSON_FIELD_NONE:
		return parse_none_enum(ctx, path, f, v);

	case JSON_FIELD_LATER:
		/* An empty list or object configures nothing (no overrides, a rate limiter without buckets). */
		if ((json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v)))
			return 0;
		return fail(ctx, "%s: not supported yet", path);

	case JSON_FIELD_RENAMED:
		break;
	}
	return fail(ctx, "%s: internal error: unhandled field kind", path);
}

/* "a, b or c" from a field table, for unknown-field messages. */
static void field_list(const struct json_field *fields, size_t n, char *buf, size_t size)
{
	size_t len = 0, shown = 0, total = 0;

	for (size_t i = 0; i < n; i++)
		total += fields[i].kind != JSON_FIELD_RENAMED;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++) {
		if (fields[i].kind == JSON_FIELD_RENAMED)
			continue;
		shown++;
		len += snprintf(buf + len, size - len, "%s%s", shown == 1 ? "" : shown == total ? " or " : ", ",
				fields[i].name);
	}
}

/* Every key of `obj` through `fields`, then the required fields that did not appear. */
int json_fields_parse_into(struct json_fields_ctx *ctx, const char *where, const struct json_field *fields, size_t n,
			   json_t *obj)
{
	char path[PATH_SIZE];
	const char *key;
	json_t *v;
	int ret;

	json_object_foreach(obj, key, v) {
		const struct json_field *f = NULL;

		for (size_t i = 0; i < n; i++)
			if (!strcmp(key, fields[i].name))
				f = &fields[i];
		if (!f) {
			char list[256];

			field_list(fields, n, list, sizeof(list));
			field_path(path, sizeof(path), where, key);
			return fail(ctx, "%s: unknown field (expected %s)", path, list);
		}
		ret = parse_field(ctx, where, f, v);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < n; i++) {
		if (fields[i].required && !json_object_get(obj, fields[i].name)) {
			field_path(path, sizeof(path), where, fields[i].name);
			return fail(ctx, "%s: missing (required)", path);
		}
	}
	return 0;
}

void json_fields_commit(const struct json_field *fields, size_t nr_fields, void *orig, void *next, int ret)
{
	for (size_t i = 0; i < nr_fields; i++) {
		char **old, **new;

		if (!is_string_kind(fields[i].kind))
			continue;
		old = str_at(orig, fields[i].offset);
		new = str_at(next, fields[i].offset);
		if (*old != *new)
			free(ret ? *new : *old);
	}
}

int json_fields_parse(const char *where, const struct json_field *fields, size_t nr_fields, json_t *obj,
			void *dst, size_t dst_size, char *err, size_t err_size)
{
	struct json_fields_ctx ctx = { .orig = dst, .err = err, .err_size = err_size };
	char got[64];
	int ret;

	if (!json_is_object(obj)) {
		json_describe(obj, got, sizeof(got));
		errmsg_set(err, err_size, "%s: expected an object, got %s", where[0] ? where : "top level", got);
		return -EINVAL;
	}
	ctx.next = malloc(dst_size);
	if (!ctx.next) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	memcpy(ctx.next, dst, dst_size);
	ret = json_fields_parse_into(&ctx, where, fields, nr_fields, obj);

	json_fields_commit(fields, nr_fields, dst, ctx.next, ret);
	if (!ret)
		memcpy(dst, ctx.next, dst_size);
	free(ctx.next);
	if (ret == -ENOMEM)
		errmsg_set(err, err_size, "out of memory");
	return ret;
}

void json_fields_free(const struct json_field *fields, size_t nr_fields, void *dst)
{
	for (size_t i = 0; i < nr_fields; i++) {
		if (is_string_kind(fields[i].kind)) {
			char **s = str_at(dst, fields[i].offset);

			free(*s);
			*s = NULL;
		}
	}
}
