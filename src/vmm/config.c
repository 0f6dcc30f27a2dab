// SPDX-License-Identifier: MIT
/*
 * VM configuration: Firecracker's --config-file JSON schema (firecracker.yaml, FullVmConfiguration;
 * src/vmm/src/resources.rs, VmmConfig) plus kiln's own "kiln" object. docs/config.md is the user's view.
 *
 * Parsing is table-driven: one table of top-level sections, one table of fields per section. Every key
 * is looked up; anything unknown or not implemented yet is an error naming its JSON path, so a config
 * never means more than kiln does. The same field engine (config_parse_object) parses the control API's
 * request bodies, so a value is accepted or refused, and worded, the same way in a file and in a request.
 */
#include "vmm/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

/* A config file is a few hundred bytes; the cap keeps `--config /dev/zero` from eating memory. */
#define CONFIG_MAX_FILE_SIZE (1u << 20)

/* Room for a field's JSON path in messages ("drives[3].rate_limiter"). */
#define PATH_SIZE 160

struct parse_ctx {
	void *next;       /* the struct being built; committed only on success */
	const void *orig; /* the caller's struct: its strings are freed only at commit */
	char *err;
	size_t err_size;
};

enum section_kind {
	SECTION_OBJECT,      /* parsed through `fields` */
	SECTION_EMPTY_ARRAY, /* a device list: accepted only when empty */
	SECTION_DEVICE_LIST, /* an array of device objects, through `parse_list` */
	SECTION_LATER,       /* a Firecracker section kiln does not implement yet */
};

struct section {
	const char *name;
	enum section_kind kind;
	bool nullable; /* serde Option<T>: null means "not configured" */
	const struct config_field *fields;
	size_t nr_fields;
	const char *issue;                              /* SECTION_EMPTY_ARRAY */
	int (*parse_list)(struct parse_ctx *ctx, json_t *array); /* SECTION_DEVICE_LIST */
	int (*check)(struct parse_ctx *ctx);            /* after all fields of the section */
};

static const char *const cpu_templates_later[] = { "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", NULL };
static const char *const huge_pages_later[] = { "2M", "Transparent", NULL };

static const struct config_field boot_source_fields[] = {
	{ .name = "kernel_image_path", .kind = CONFIG_FIELD_PATH, .offset = offsetof(struct vm_config, kernel_path) },
	{ .name = "initrd_path", .kind = CONFIG_FIELD_PATH, .nullable = true,
	  .offset = offsetof(struct vm_config, initrd_path) },
	{ .name = "boot_args", .kind = CONFIG_FIELD_CMDLINE, .nullable = true,
	  .offset = offsetof(struct vm_config, cmdline) },
};

static const struct config_field machine_config_fields[] = {
	{ .name = "vcpu_count", .kind = CONFIG_FIELD_U32, .offset = offsetof(struct vm_config, vcpus),
	  .min = 1, .max = CONFIG_MAX_VCPUS },
	{ .name = "mem_size_mib", .kind = CONFIG_FIELD_U64, .offset = offsetof(struct vm_config, mem_mib),
	  .min = CONFIG_MIN_MEM_MIB, .max = CONFIG_MAX_MEM_MIB },
	{ .name = "smt", .kind = CONFIG_FIELD_BOOL, .offset = offsetof(struct vm_config, smt) },
	{ .name = "track_dirty_pages", .kind = CONFIG_FIELD_BOOL,
	  .offset = offsetof(struct vm_config, track_dirty_pages) },
	{ .name = "cpu_template", .kind = CONFIG_FIELD_NONE, .nullable = true, .later = cpu_templates_later },
	{ .name = "huge_pages", .kind = CONFIG_FIELD_NONE, .later = huge_pages_later },
	{ .name = "ht_enabled", .kind = CONFIG_FIELD_RENAMED, .hint = "Firecracker renamed it \"smt\"" },
};

/* Indexed by enum vm_boot_protocol. */
static const char *const boot_protocols[] = { "linux64", "pvh", NULL };

static const struct config_field kiln_fields[] = {
	{ .name = "console", .kind = CONFIG_FIELD_CONSOLE, .offset = offsetof(struct vm_config, console_path) },
	{ .name = "pvm_tuning", .kind = CONFIG_FIELD_BOOL, .offset = offsetof(struct vm_config, pvm_tuning) },
	{ .name = "boot", .kind = CONFIG_FIELD_ENUM, .values = boot_protocols, .offset = offsetof(struct vm_config, boot) },
};

/* Firecracker's EntropyDeviceConfig (vmm_config/entropy.rs): its only field is the rate limiter. */
static const struct config_field entropy_fields[] = {
	{ .name = "rate_limiter", .kind = CONFIG_FIELD_LATER, .nullable = true },
};

static int check_machine_config(struct parse_ctx *ctx);
static int check_entropy(struct parse_ctx *ctx);
static int parse_drive_list(struct parse_ctx *ctx, json_t *array);
static int parse_net_list(struct parse_ctx *ctx, json_t *array);

#define FIELDS(a) .fields = (a), .nr_fields = sizeof(a) / sizeof((a)[0])
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Firecracker's top-level keys (firecracker.yaml FullVmConfiguration, v1.17) and kiln's object. */
static const struct section sections[] = {
	{ .name = "boot-source", .kind = SECTION_OBJECT, FIELDS(boot_source_fields) },
	{ .name = "machine-config", .kind = SECTION_OBJECT, .nullable = true, FIELDS(machine_config_fields),
	  .check = check_machine_config },
	{ .name = "kiln", .kind = SECTION_OBJECT, FIELDS(kiln_fields) },
	{ .name = "drives", .kind = SECTION_DEVICE_LIST, .parse_list = parse_drive_list },
	{ .name = "network-interfaces", .kind = SECTION_DEVICE_LIST, .parse_list = parse_net_list },
	{ .name = "pmem", .kind = SECTION_EMPTY_ARRAY, .issue = "virtio-pmem" },
	{ .name = "balloon", .kind = SECTION_LATER, .nullable = true },
	{ .name = "cpu-config", .kind = SECTION_LATER, .nullable = true },
	{ .name = "entropy", .kind = SECTION_OBJECT, .nullable = true, FIELDS(entropy_fields), .check = check_entropy },
	{ .name = "logger", .kind = SECTION_LATER, .nullable = true },
	{ .name = "memory-hotplug", .kind = SECTION_LATER, .nullable = true },
	{ .name = "metrics", .kind = SECTION_LATER, .nullable = true },
	{ .name = "mmds-config", .kind = SECTION_LATER, .nullable = true },
	{ .name = "vsock", .kind = SECTION_LATER, .nullable = true },
};

#define NR_SECTIONS ARRAY_SIZE(sections)

/* The string fields of struct vm_config, for the commit/rollback of a parse and for vm_config_free. */
static const size_t string_fields[] = {
	offsetof(struct vm_config, kernel_path),
	offsetof(struct vm_config, initrd_path),
	offsetof(struct vm_config, cmdline),
	offsetof(struct vm_config, console_path),
};

#define NR_STRING_FIELDS ARRAY_SIZE(string_fields)

static char **str_at(const void *base, size_t offset)
{
	return (char **)((char *)base + offset);
}

static bool is_string_kind(enum config_field_kind kind)
{
	switch (kind) {
	case CONFIG_FIELD_PATH:
	case CONFIG_FIELD_CMDLINE:
	case CONFIG_FIELD_STRING:
	case CONFIG_FIELD_ID:
	case CONFIG_FIELD_INSTANCE_ID:
	case CONFIG_FIELD_CONSOLE:
		return true;
	default:
		return false;
	}
}

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

#define fail(ctx, ...) (set_err((ctx)->err, (ctx)->err_size, __VA_ARGS__), -EINVAL)

/* A short rendering of a JSON value for "got ..." in messages. */
static void describe(const json_t *v, char *buf, size_t size)
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

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->mem_mib = CONFIG_DEFAULT_MEM_MIB;
	cfg->pvm_tuning = true;
}

static void free_drives(struct vm_drive_config *drives, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		vm_drive_config_free(&drives[i]);
	free(drives);
}

static void free_nets(struct vm_net_config *nets, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		vm_net_config_free(&nets[i]);
	free(nets);
}

void vm_config_free(struct vm_config *cfg)
{
	for (size_t i = 0; i < NR_STRING_FIELDS; i++) {
		char **s = str_at(cfg, string_fields[i]);

		free(*s);
		*s = NULL;
	}
	free_drives(cfg->drives, cfg->nr_drives);
	cfg->drives = NULL;
	cfg->nr_drives = 0;
	free_nets(cfg->nets, cfg->nr_nets);
	cfg->nets = NULL;
	cfg->nr_nets = 0;
}

bool vm_config_console_is_stdio(const struct vm_config *cfg)
{
	return !cfg->console_path || !strcmp(cfg->console_path, "stdio");
}

static bool id_valid(const char *id, char extra)
{
	size_t n = strlen(id);

	if (n == 0 || n > CONFIG_MAX_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isascii((unsigned char)id[i]) || (!isalnum((unsigned char)id[i]) && id[i] != extra))
			return false;
	return true;
}

bool config_id_valid(const char *id)
{
	return id_valid(id, '_');
}

bool config_instance_id_valid(const char *id)
{
	return id_valid(id, '-');
}

bool config_text_valid(const char *s)
{
	/* jansson's own check, so that what passes here is what vm_config_to_json can write. */
	json_t *v = json_string(s);

	json_decref(v);
	return v != NULL;
}

/*
 * Replace a string field of the struct being built. The previous value is freed only if this parse
 * allocated it; the caller's strings are freed at commit time.
 */
static int set_string(struct parse_ctx *ctx, size_t offset, const char *value)
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

static int parse_none_enum(struct parse_ctx *ctx, const char *path, const struct config_field *f, json_t *v)
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
	describe(v, got, sizeof(got));
	return fail(ctx, "%s: expected %s\"None\", got %s", path, f->nullable ? "null or " : "", got);
}

static int parse_enum(struct parse_ctx *ctx, const char *path, const struct config_field *f, json_t *v)
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
	describe(v, got, sizeof(got));
	return fail(ctx, "%s: expected %s%s, got %s", path, f->nullable ? "null or " : "", list, got);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "xx:xx:xx:xx:xx:xx", hex digits of either case (Firecracker's MacAddr::from_str). */
static bool parse_mac(const char *s, size_t len, uint8_t out[6])
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

static int parse_string_field(struct parse_ctx *ctx, const char *path, const struct config_field *f, json_t *v,
			      const char *got)
{
	const char *s;
	size_t len;

	if (!json_is_string(v)) {
		switch (f->kind) {
		case CONFIG_FIELD_CONSOLE:
			return fail(ctx, "%s: expected \"stdio\" or a file path, got %s", path, got);
		case CONFIG_FIELD_PATH:
			return fail(ctx, "%s: expected a non-empty path string%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		case CONFIG_FIELD_ID:
		case CONFIG_FIELD_INSTANCE_ID:
			return fail(ctx, "%s: expected an id of 1..%d letters, digits or '%c', got %s", path,
				    CONFIG_MAX_ID, f->kind == CONFIG_FIELD_ID ? '_' : '-', got);
		default:
			return fail(ctx, "%s: expected a string%s, got %s", path, f->nullable ? " or null" : "", got);
		}
	}
	s = json_string_value(v);
	len = json_string_length(v);

	switch (f->kind) {
	case CONFIG_FIELD_PATH:
	case CONFIG_FIELD_CONSOLE:
		if (len == 0) {
			if (f->kind == CONFIG_FIELD_CONSOLE)
				return fail(ctx, "%s: expected \"stdio\" or a file path, got %s", path, got);
			return fail(ctx, "%s: expected a non-empty path string%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		}
		if (strlen(s) != len)
			return fail(ctx, "%s: expected a path without NUL bytes", path);
		if (f->kind == CONFIG_FIELD_CONSOLE && !strcmp(s, "stdio"))
			s = NULL;
		return set_string(ctx, f->offset, s);

	case CONFIG_FIELD_CMDLINE:
		if (strlen(s) != len)
			return fail(ctx, "%s: expected a string without NUL bytes", path);
		if (len > CONFIG_MAX_CMDLINE - 1)
			return fail(ctx, "%s: expected at most %d bytes, got %zu bytes", path, CONFIG_MAX_CMDLINE - 1,
				    len);
		return set_string(ctx, f->offset, s);

	case CONFIG_FIELD_STRING:
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

	case CONFIG_FIELD_ID:
	case CONFIG_FIELD_INSTANCE_ID:
		if (strlen(s) != len || !(f->kind == CONFIG_FIELD_ID ? config_id_valid(s) : config_instance_id_valid(s)))
			return fail(ctx, "%s: expected an id of 1..%d letters, digits or '%c', got %s", path,
				    CONFIG_MAX_ID, f->kind == CONFIG_FIELD_ID ? '_' : '-', got);
		return set_string(ctx, f->offset, s);

	default:
		break;
	}
	return fail(ctx, "%s: internal error: not a string field", path);
}

static int parse_field(struct parse_ctx *ctx, const char *where, const struct config_field *f, json_t *v)
{
	void *dst = (char *)ctx->next + f->offset;
	char got[64], path[PATH_SIZE];
	json_int_t n;

	field_path(path, sizeof(path), where, f->name);
	if (f->kind == CONFIG_FIELD_RENAMED)
		return fail(ctx, "%s: unknown field (%s)", path, f->hint);
	if (json_is_null(v) && f->nullable) {
		if (is_string_kind(f->kind))
			return set_string(ctx, f->offset, NULL);
		if (f->kind == CONFIG_FIELD_MAC)
			((struct config_mac *)dst)->set = false;
		return 0;
	}
	describe(v, got, sizeof(got));

	switch (f->kind) {
	case CONFIG_FIELD_PATH:
	case CONFIG_FIELD_CONSOLE:
	case CONFIG_FIELD_CMDLINE:
	case CONFIG_FIELD_STRING:
	case CONFIG_FIELD_ID:
	case CONFIG_FIELD_INSTANCE_ID:
		return parse_string_field(ctx, path, f, v, got);

	case CONFIG_FIELD_U32:
	case CONFIG_FIELD_U64:
		n = json_is_integer(v) ? json_integer_value(v) : -1;
		if (!json_is_integer(v) || n < 0 || (uint64_t)n < f->min || (uint64_t)n > f->max)
			return fail(ctx, "%s: expected an integer %" PRIu64 "..%" PRIu64 ", got %s", path, f->min, f->max,
				    got);
		if (f->kind == CONFIG_FIELD_U32)
			*(unsigned int *)dst = (unsigned int)n;
		else
			*(uint64_t *)dst = (uint64_t)n;
		return 0;

	case CONFIG_FIELD_BOOL:
		if (!json_is_boolean(v))
			return fail(ctx, "%s: expected true or false, got %s", path, got);
		*(bool *)dst = json_is_true(v);
		return 0;

	case CONFIG_FIELD_ENUM:
		return parse_enum(ctx, path, f, v);

	case CONFIG_FIELD_MAC: {
		struct config_mac *mac = dst;

		if (!json_is_string(v) || !parse_mac(json_string_value(v), json_string_length(v), mac->bytes))
			return fail(ctx, "%s: expected a MAC address \"xx:xx:xx:xx:xx:xx\"%s, got %s", path,
				    f->nullable ? " or null" : "", got);
		mac->set = true;
		return 0;
	}

	case CONFIG_FIELD_OBJECT:
		if (!json_is_object(v))
			return fail(ctx, "%s: expected an object%s, got %s", path, f->nullable ? " or null" : "", got);
		return 0;

	case CONFIG_FIELD_ARRAY:
		if (!json_is_array(v))
			return fail(ctx, "%s: expected an array%s, got %s", path, f->nullable ? " or null" : "", got);
		return 0;

	case CONFIG_FIELD_NONE:
		return parse_none_enum(ctx, path, f, v);

	case CONFIG_FIELD_LATER:
		/* An empty list or object configures nothing (no overrides, a rate limiter without buckets). */
		if ((json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v)))
			return 0;
		return fail(ctx, "%s: not supported yet", path);

	case CONFIG_FIELD_RENAMED:
		break;
	}
	return fail(ctx, "%s: internal error: unhandled field kind", path);
}

/* "a, b or c" from a field table, for unknown-field messages. */
static void field_list(const struct config_field *fields, size_t n, char *buf, size_t size)
{
	size_t len = 0, shown = 0, total = 0;

	for (size_t i = 0; i < n; i++)
		total += fields[i].kind != CONFIG_FIELD_RENAMED;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++) {
		if (fields[i].kind == CONFIG_FIELD_RENAMED)
			continue;
		shown++;
		len += snprintf(buf + len, size - len, "%s%s", shown == 1 ? "" : shown == total ? " or " : ", ",
				fields[i].name);
	}
}

/* Every key of `obj` through `fields`, then the required fields that did not appear. */
static int parse_fields(struct parse_ctx *ctx, const char *where, const struct config_field *fields, size_t n,
			json_t *obj)
{
	char path[PATH_SIZE];
	const char *key;
	json_t *v;
	int ret;

	json_object_foreach(obj, key, v) {
		const struct config_field *f = NULL;

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

int config_parse_object(const char *where, const struct config_field *fields, size_t nr_fields, json_t *obj,
			void *dst, size_t dst_size, char *err, size_t err_size)
{
	struct parse_ctx ctx = { .orig = dst, .err = err, .err_size = err_size };
	char got[64];
	int ret;

	if (!json_is_object(obj)) {
		describe(obj, got, sizeof(got));
		set_err(err, err_size, "%s: expected an object, got %s", where[0] ? where : "top level", got);
		return -EINVAL;
	}
	ctx.next = malloc(dst_size);
	if (!ctx.next) {
		set_err(err, err_size, "out of memory");
		return -ENOMEM;
	}
	memcpy(ctx.next, dst, dst_size);
	ret = parse_fields(&ctx, where, fields, nr_fields, obj);

	/* All or nothing: free whichever side of each string field lost. */
	for (size_t i = 0; i < nr_fields; i++) {
		char **old, **new;

		if (!is_string_kind(fields[i].kind))
			continue;
		old = str_at(dst, fields[i].offset);
		new = str_at(ctx.next, fields[i].offset);
		if (*old != *new)
			free(ret ? *new : *old);
	}
	if (!ret)
		memcpy(dst, ctx.next, dst_size);
	free(ctx.next);
	if (ret == -ENOMEM)
		set_err(err, err_size, "out of memory");
	return ret;
}

void config_free_strings(const struct config_field *fields, size_t nr_fields, void *dst)
{
	for (size_t i = 0; i < nr_fields; i++) {
		if (is_string_kind(fields[i].kind)) {
			char **s = str_at(dst, fields[i].offset);

			free(*s);
			*s = NULL;
		}
	}
}

static int parse_object_section(struct parse_ctx *ctx, const struct section *sec, json_t *obj)
{
	int ret = parse_fields(ctx, sec->name, sec->fields, sec->nr_fields, obj);

	if (ret)
		return ret;
	return sec->check ? sec->check(ctx) : 0;
}

/* Firecracker's rule (machine_config.rs, VmConfig::update): with SMT the vCPU count is 1 or even. */
static int check_smt(char *err, size_t err_size, const struct vm_config *cfg)
{
	if (cfg->smt && cfg->vcpus > 1 && cfg->vcpus % 2) {
		set_err(err, err_size, "machine-config.vcpu_count: expected 1 or an even number when smt is true, got %u",
			cfg->vcpus);
		return -EINVAL;
	}
	return 0;
}

int vm_config_check_machine(const struct vm_config *cfg, char *err, size_t err_size)
{
	return check_smt(err, err_size, cfg);
}

static int check_machine_config(struct parse_ctx *ctx)
{
	return check_smt(ctx->err, ctx->err_size, ctx->next);
}

/* The section's presence is the setting: "entropy": {} adds the device, null (not configured) does not. */
static int check_entropy(struct parse_ctx *ctx)
{
	((struct vm_config *)ctx->next)->entropy = true;
	return 0;
}

static int parse_section(struct parse_ctx *ctx, const struct section *sec, json_t *v)
{
	char got[64];

	if (json_is_null(v) && sec->nullable)
		return 0;
	describe(v, got, sizeof(got));

	switch (sec->kind) {
	case SECTION_OBJECT:
		if (!json_is_object(v))
			return fail(ctx, "%s: expected an object%s, got %s", sec->name, sec->nullable ? " or null" : "",
				    got);
		return parse_object_section(ctx, sec, v);
	case SECTION_EMPTY_ARRAY:
		if (!json_is_array(v))
			return fail(ctx, "%s: expected an array, got %s", sec->name, got);
		if (json_array_size(v))
			return fail(ctx, "%s: not supported yet (issue: %s)", sec->name, sec->issue);
		return 0;
	case SECTION_DEVICE_LIST:
		if (!json_is_array(v))
			return fail(ctx, "%s: expected an array, got %s", sec->name, got);
		return sec->parse_list(ctx, v);
	case SECTION_LATER:
		return fail(ctx, "%s: not supported yet", sec->name);
	}
	return fail(ctx, "%s: internal error: unhandled section kind", sec->name);
}

static bool all_space(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
			return false;
	return true;
}

/* End of a parse into `next` (a copy of `cfg`): all or nothing, freeing whichever side of each string lost. */
static int vm_config_commit(struct vm_config *cfg, struct vm_config *next, int ret, char *err, size_t err_size)
{
	for (size_t i = 0; i < NR_STRING_FIELDS; i++) {
		char **old = str_at(cfg, string_fields[i]), **new = str_at(next, string_fields[i]);

		if (*old != *new)
			free(ret ? *new : *old);
	}
	/* A device list that appeared replaced the whole list: the loser's entries go with it. */
	if (cfg->drives != next->drives) {
		if (ret)
			free_drives(next->drives, next->nr_drives);
		else
			free_drives(cfg->drives, cfg->nr_drives);
	}
	if (cfg->nets != next->nets) {
		if (ret)
			free_nets(next->nets, next->nr_nets);
		else
			free_nets(cfg->nets, cfg->nr_nets);
	}
	if (!ret)
		*cfg = *next;
	if (ret == -ENOMEM)
		set_err(err, err_size, "out of memory");
	return ret;
}

int vm_config_parse_json(struct vm_config *cfg, const char *text, size_t len, char *err, size_t err_size)
{
	struct vm_config next = *cfg;
	struct parse_ctx ctx = { .next = &next, .orig = cfg, .err = err, .err_size = err_size };
	json_error_t jerr;
	const char *key;
	json_t *root, *v;
	char got[64];
	int ret = 0;

	if (all_space(text, len)) {
		set_err(err, err_size, "empty config: expected a JSON object");
		return -EINVAL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		set_err(err, err_size, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		describe(root, got, sizeof(got));
		ret = fail(&ctx, "top level: expected an object, got %s", got);
		goto out;
	}

	json_object_foreach(root, key, v) {
		const struct section *sec = NULL;

		for (size_t i = 0; i < NR_SECTIONS; i++)
			if (!strcmp(key, sections[i].name))
				sec = &sections[i];
		if (!sec) {
			ret = fail(&ctx, "%s: unknown field (not in Firecracker's config-file schema; "
					 "kiln's own settings go in the \"kiln\" object)", key);
			goto out;
		}
		ret = parse_section(&ctx, sec, v);
		if (ret)
			goto out;
	}

out:
	json_decref(root);
	return vm_config_commit(cfg, &next, ret, err, err_size);
}

int vm_config_parse_section(struct vm_config *cfg, const char *section, json_t *value, char *err, size_t err_size)
{
	struct vm_config next = *cfg;
	struct parse_ctx ctx = { .next = &next, .orig = cfg, .err = err, .err_size = err_size };
	const struct section *sec = NULL;
	char got[64];
	int ret;

	for (size_t i = 0; i < NR_SECTIONS; i++)
		if (!strcmp(section, sections[i].name) && sections[i].kind == SECTION_OBJECT)
			sec = &sections[i];
	if (!sec) {
		set_err(err, err_size, "%s: not a section that can be parsed alone", section);
		return -EINVAL;
	}
	if (!json_is_object(value)) {
		describe(value, got, sizeof(got));
		set_err(err, err_size, "%s: expected an object, got %s", sec->name, got);
		return -EINVAL;
	}
	ret = parse_object_section(&ctx, sec, value);
	return vm_config_commit(cfg, &next, ret, err, err_size);
}

/* Firecracker's Drive (firecracker.yaml; vmm_config/drive.rs, BlockDeviceConfig). */
static const char *const drive_cache_types[] = { "Unsafe", "Writeback", NULL };
/* Indexed by enum vm_drive_io_engine. */
static const char *const drive_io_engines[] = { "Sync", "Async", NULL };

static const struct config_field drive_fields[] = {
	{ .name = "drive_id", .kind = CONFIG_FIELD_ID, .required = true,
	  .offset = offsetof(struct vm_drive_config, drive_id) },
	{ .name = "path_on_host", .kind = CONFIG_FIELD_PATH, .required = true,
	  .offset = offsetof(struct vm_drive_config, path_on_host) },
	{ .name = "is_root_device", .kind = CONFIG_FIELD_BOOL, .required = true,
	  .offset = offsetof(struct vm_drive_config, is_root_device) },
	{ .name = "is_read_only", .kind = CONFIG_FIELD_BOOL, .required = true,
	  .offset = offsetof(struct vm_drive_config, is_read_only) },
	{ .name = "partuuid", .kind = CONFIG_FIELD_STRING, .nullable = true, .min = 1,
	  .offset = offsetof(struct vm_drive_config, partuuid) },
	{ .name = "cache_type", .kind = CONFIG_FIELD_ENUM, .values = drive_cache_types,
	  .offset = offsetof(struct vm_drive_config, cache_type) },
	{ .name = "io_engine", .kind = CONFIG_FIELD_ENUM, .values = drive_io_engines,
	  .offset = offsetof(struct vm_drive_config, io_engine) },
	{ .name = "rate_limiter", .kind = CONFIG_FIELD_LATER, .nullable = true },
	{ .name = "socket", .kind = CONFIG_FIELD_LATER, .nullable = true },
};

int vm_drive_config_parse(struct vm_drive_config *drive, const char *where, json_t *obj, char *err, size_t err_size)
{
	return config_parse_object(where, drive_fields, ARRAY_SIZE(drive_fields), obj, drive, sizeof(*drive), err,
				   err_size);
}

void vm_drive_config_free(struct vm_drive_config *drive)
{
	config_free_strings(drive_fields, ARRAY_SIZE(drive_fields), drive);
}

/* Firecracker's NetworkInterface (firecracker.yaml; vmm_config/net.rs, NetworkInterfaceConfig). */
static const struct config_field net_fields[] = {
	{ .name = "iface_id", .kind = CONFIG_FIELD_ID, .required = true,
	  .offset = offsetof(struct vm_net_config, iface_id) },
	{ .name = "host_dev_name", .kind = CONFIG_FIELD_STRING, .required = true, .min = 1, .max = 15,
	  .offset = offsetof(struct vm_net_config, host_dev_name) },
	{ .name = "guest_mac", .kind = CONFIG_FIELD_MAC, .nullable = true,
	  .offset = offsetof(struct vm_net_config, guest_mac) },
	{ .name = "mtu", .kind = CONFIG_FIELD_U32, .nullable = true, .min = 68, .max = 65535,
	  .offset = offsetof(struct vm_net_config, mtu) },
	{ .name = "rx_rate_limiter", .kind = CONFIG_FIELD_LATER, .nullable = true },
	{ .name = "tx_rate_limiter", .kind = CONFIG_FIELD_LATER, .nullable = true },
};

int vm_net_config_parse(struct vm_net_config *net, const char *where, json_t *obj, char *err, size_t err_size)
{
	return config_parse_object(where, net_fields, ARRAY_SIZE(net_fields), obj, net, sizeof(*net), err, err_size);
}

void vm_net_config_free(struct vm_net_config *net)
{
	config_free_strings(net_fields, ARRAY_SIZE(net_fields), net);
}

/* Whether two MACs are equal; unset ones never collide (kiln picks distinct addresses for them). */
static bool same_mac(const struct config_mac *a, const struct config_mac *b)
{
	return a->set && b->set && !memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

int vm_config_put_drive(struct vm_config *cfg, const char *where, struct vm_drive_config *drive, char *err,
			size_t err_size)
{
	unsigned int replace = cfg->nr_drives;

	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (!strcmp(cfg->drives[i].drive_id, drive->drive_id))
			replace = i;
	for (unsigned int i = 0; i < cfg->nr_drives; i++) {
		if (i == replace)
			continue;
		if (drive->is_root_device && cfg->drives[i].is_root_device) {
			errmsg_set(err, err_size, "%s: a root block device already exists (drive \"%s\"): only one is allowed",
				where, cfg->drives[i].drive_id);
			return -EINVAL;
		}
		if (!strcmp(cfg->drives[i].path_on_host, drive->path_on_host)) {
			errmsg_set(err, err_size, "%s.path_on_host: %s is already drive \"%s\"", where, drive->path_on_host,
				cfg->drives[i].drive_id);
			return -EINVAL;
		}
	}
	if (replace == cfg->nr_drives) {
		struct vm_drive_config *d;

		if (cfg->nr_drives >= CONFIG_MAX_DRIVES) {
			errmsg_set(err, err_size, "%s: at most %d drives", where, CONFIG_MAX_DRIVES);
			return -EINVAL;
		}
		d = realloc(cfg->drives, (cfg->nr_drives + 1) * sizeof(*d));
		if (!d) {
			errmsg_set(err, err_size, "out of memory");
			return -ENOMEM;
		}
		cfg->drives = d;
		cfg->nr_drives++;
	} else {
		vm_drive_config_free(&cfg->drives[replace]);
	}
	cfg->drives[replace] = *drive;
	return 0;
}

int vm_config_put_net(struct vm_config *cfg, const char *where, struct vm_net_config *net, char *err,
		      size_t err_size)
{
	unsigned int replace = cfg->nr_nets;

	for (unsigned int i = 0; i < cfg->nr_nets; i++)
		if (!strcmp(cfg->nets[i].iface_id, net->iface_id))
			replace = i;
	for (unsigned int i = 0; i < cfg->nr_nets; i++) {
		if (i == replace)
			continue;
		if (!strcmp(cfg->nets[i].host_dev_name, net->host_dev_name)) {
			errmsg_set(err, err_size, "%s.host_dev_name: %s is already used by interface \"%s\"", where,
				net->host_dev_name, cfg->nets[i].iface_id);
			return -EINVAL;
		}
		if (same_mac(&cfg->nets[i].guest_mac, &net->guest_mac)) {
			errmsg_set(err, err_size, "%s.guest_mac: already used by interface \"%s\"", where,
				cfg->nets[i].iface_id);
			return -EINVAL;
		}
	}
	if (replace == cfg->nr_nets) {
		struct vm_net_config *n;

		if (cfg->nr_nets >= CONFIG_MAX_NETS) {
			errmsg_set(err, err_size, "%s: at most %d network interfaces", where, CONFIG_MAX_NETS);
			return -EINVAL;
		}
		n = realloc(cfg->nets, (cfg->nr_nets + 1) * sizeof(*n));
		if (!n) {
			errmsg_set(err, err_size, "out of memory");
			return -ENOMEM;
		}
		cfg->nets = n;
		cfg->nr_nets++;
	} else {
		vm_net_config_free(&cfg->nets[replace]);
	}
	cfg->nets[replace] = *net;
	return 0;
}

/* Adapters from the typed put functions above to struct device_list_kind. */
static int drive_put(struct vm_config *cfg, const char *where, void *e, char *err, size_t err_size)
{
	return vm_config_put_drive(cfg, where, e, err, err_size);
}

static int net_put(struct vm_config *cfg, const char *where, void *e, char *err, size_t err_size)
{
	return vm_config_put_net(cfg, where, e, err, err_size);
}

/*
 * A device list of the config file: its entries' fields (parsed and freed through them; the first is the
 * id) and how to store one entry.
 */
struct device_list_kind {
	const char *section; /* "drives" */
	const struct config_field *fields;
	size_t nr_fields;
	size_t elem_size;
	size_t array_offset; /* of the array pointer in struct vm_config */
	size_t count_offset; /* of its unsigned int length */
	int (*put)(struct vm_config *cfg, const char *where, void *elem, char *err, size_t err_size);
};

static const struct device_list_kind drive_list = {
	.section = "drives", .fields = drive_fields, .nr_fields = ARRAY_SIZE(drive_fields),
	.elem_size = sizeof(struct vm_drive_config), .array_offset = offsetof(struct vm_config, drives),
	.count_offset = offsetof(struct vm_config, nr_drives), .put = drive_put,
};

static const struct device_list_kind net_list = {
	.section = "network-interfaces", .fields = net_fields, .nr_fields = ARRAY_SIZE(net_fields),
	.elem_size = sizeof(struct vm_net_config), .array_offset = offsetof(struct vm_config, nets),
	.count_offset = offsetof(struct vm_config, nr_nets), .put = net_put,
};

static void **list_array(const struct device_list_kind *k, struct vm_config *cfg)
{
	return (void **)((char *)cfg + k->array_offset);
}

static unsigned int *list_count(const struct device_list_kind *k, struct vm_config *cfg)
{
	return (unsigned int *)((char *)cfg + k->count_offset);
}

static const char *elem_id(const struct device_list_kind *k, const void *elem)
{
	return *str_at(elem, k->fields[0].offset);
}

/* Free the list `k` of `cfg` (entries and array). */
static void free_list(const struct device_list_kind *k, struct vm_config *cfg)
{
	char *array = *list_array(k, cfg);

	for (unsigned int i = 0; i < *list_count(k, cfg); i++)
		config_free_strings(k->fields, k->nr_fields, array + i * k->elem_size);
	free(array);
}

/*
 * A device list of the config file ("drives", "network-interfaces"): the list replaces any earlier one. Built
 * in a scratch config so that an error leaves `ctx->next` as it was; two entries with the same id are an error
 * here (the API's PUT /drives/{id} replaces instead).
 */
static int parse_device_list(struct parse_ctx *ctx, const struct device_list_kind *k, json_t *array)
{
	struct vm_config *next = ctx->next, list = { 0 };
	union {
		struct vm_drive_config drive;
		struct vm_net_config net;
	} e;
	char where[PATH_SIZE];
	size_t i;
	json_t *v;
	int ret = 0;

	json_array_foreach(array, i, v) {
		memset(&e, 0, sizeof(e));
		snprintf(where, sizeof(where), "%s[%zu]", k->section, i);
		ret = config_parse_object(where, k->fields, k->nr_fields, v, &e, k->elem_size, ctx->err, ctx->err_size);
		if (ret)
			break;
		for (unsigned int j = 0; j < *list_count(k, &list); j++)
			if (!strcmp(elem_id(k, (char *)*list_array(k, &list) + j * k->elem_size), elem_id(k, &e))) {
				errmsg_set(ctx->err, ctx->err_size, "%s.%s: \"%s\" appears twice", where, k->fields[0].name,
					   elem_id(k, &e));
				ret = -EINVAL;
			}
		if (!ret)
			ret = k->put(&list, where, &e, ctx->err, ctx->err_size);
		if (ret) {
			config_free_strings(k->fields, k->nr_fields, &e);
			break;
		}
	}
	if (ret) {
		free_list(k, &list);
		return ret;
	}
	/* The previous list in `next` is the caller's (ctx->orig) or one this parse made. */
	if (*list_array(k, next) != *list_array(k, (struct vm_config *)ctx->orig))
		free_list(k, next);
	*list_array(k, next) = *list_array(k, &list);
	*list_count(k, next) = *list_count(k, &list);
	return 0;
}

static int parse_drive_list(struct parse_ctx *ctx, json_t *array)
{
	return parse_device_list(ctx, &drive_list, array);
}

static int parse_net_list(struct parse_ctx *ctx, json_t *array)
{
	return parse_device_list(ctx, &net_list, array);
}

/* Split "PATH,opt,opt=value" in place: returns the next option (NULL at the end), `*rest` advances. */
static char *next_option(char **rest)
{
	char *opt = *rest, *comma;

	if (!opt)
		return NULL;
	comma = strchr(opt, ',');
	if (comma) {
		*comma = '\0';
		*rest = comma + 1;
	} else {
		*rest = NULL;
	}
	return opt;
}

/* A `--disk`/`--net` option's value given as "name=value", or NULL. */
static const char *option_value(const char *opt, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(opt, name, n) && opt[n] == '=' ? opt + n + 1 : NULL;
}

int vm_config_add_disk_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	struct vm_drive_config d = { 0 };
	char *copy = strdup(spec), *rest = copy, *path, *opt;
	const char *v;
	int ret = -EINVAL;

	if (!copy) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	path = next_option(&rest);
	if (!path[0]) {
		errmsg_set(err, err_size, "--disk: expected PATH[,ro][,root][,id=NAME][,cache=unsafe|writeback][,io=sync|async], got '%s'",
			spec);
		goto out;
	}
	if (!config_text_valid(path)) {
		errmsg_set(err, err_size, "--disk: the path is not valid UTF-8 (a JSON config cannot hold it)");
		goto out;
	}
	while ((opt = next_option(&rest))) {
		if (!strcmp(opt, "ro")) {
			d.is_read_only = true;
		} else if (!strcmp(opt, "root")) {
			d.is_root_device = true;
		} else if ((v = option_value(opt, "id"))) {
			if (!config_id_valid(v)) {
				errmsg_set(err, err_size, "--disk %s: id: expected 1..%d letters, digits or '_', got '%s'", spec,
					CONFIG_MAX_ID, v);
				goto out;
			}
			free(d.drive_id);
			d.drive_id = strdup(v);
			if (!d.drive_id)
				goto nomem;
		} else if ((v = option_value(opt, "cache")) && (!strcmp(v, "unsafe") || !strcmp(v, "writeback"))) {
			d.cache_type = strcmp(v, "unsafe") ? VM_DRIVE_CACHE_WRITEBACK : VM_DRIVE_CACHE_UNSAFE;
		} else if ((v = option_value(opt, "io")) && (!strcmp(v, "sync") || !strcmp(v, "async"))) {
			d.io_engine = strcmp(v, "sync") ? VM_DRIVE_IO_ASYNC : VM_DRIVE_IO_SYNC;
		} else {
			errmsg_set(err, err_size, "--disk %s: unknown option '%s' (ro, root, id=, cache=unsafe|writeback, "
				"io=sync|async)", spec, opt);
			goto out;
		}
	}
	d.path_on_host = strdup(path);
	if (!d.path_on_host)
		goto nomem;
	if (!d.drive_id) {
		d.drive_id = malloc(16);
		if (!d.drive_id)
			goto nomem;
		snprintf(d.drive_id, 16, "disk%u", cfg->nr_drives);
	}
	ret = vm_config_put_drive(cfg, "--disk", &d, err, err_size);
	if (!ret)
		goto out_keep;
	goto out;
nomem:
	errmsg_set(err, err_size, "out of memory");
	ret = -ENOMEM;
out:
	vm_drive_config_free(&d);
out_keep:
	free(copy);
	return ret;
}

int vm_config_add_net_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	struct vm_net_config n = { 0 };
	char *copy = strdup(spec), *rest = copy, *tap, *opt, *end;
	const char *v;
	int ret = -EINVAL;

	if (!copy) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	tap = next_option(&rest);
	if (!tap[0] || strlen(tap) > 15) {
		errmsg_set(err, err_size, "--net: expected TAP[,mac=xx:xx:xx:xx:xx:xx][,id=NAME][,mtu=N] with a TAP name of "
			"1..15 bytes, got '%s'", spec);
		goto out;
	}
	if (!config_text_valid(tap)) {
		errmsg_set(err, err_size, "--net: the TAP name is not valid UTF-8 (a JSON config cannot hold it)");
		goto out;
	}
	while ((opt = next_option(&rest))) {
		if ((v = option_value(opt, "mac"))) {
			if (!parse_mac(v, strlen(v), n.guest_mac.bytes)) {
				errmsg_set(err, err_size, "--net %s: mac: expected xx:xx:xx:xx:xx:xx, got '%s'", spec, v);
				goto out;
			}
			n.guest_mac.set = true;
		} else if ((v = option_value(opt, "id"))) {
			if (!config_id_valid(v)) {
				errmsg_set(err, err_size, "--net %s: id: expected 1..%d letters, digits or '_', got '%s'", spec,
					CONFIG_MAX_ID, v);
				goto out;
			}
			free(n.iface_id);
			n.iface_id = strdup(v);
			if (!n.iface_id)
				goto nomem;
		} else if ((v = option_value(opt, "mtu"))) {
			unsigned long mtu;

			errno = 0;
			mtu = strtoul(v, &end, 10);
			if (errno || end == v || *end || v[0] == '-' || mtu < 68 || mtu > 65535) {
				errmsg_set(err, err_size, "--net %s: mtu: expected an integer 68..65535, got '%s'", spec, v);
				goto out;
			}
			n.mtu = (unsigned int)mtu;
		} else {
			errmsg_set(err, err_size, "--net %s: unknown option '%s' (mac=, id=, mtu=)", spec, opt);
			goto out;
		}
	}
	n.host_dev_name = strdup(tap);
	if (!n.host_dev_name)
		goto nomem;
	if (!n.iface_id) {
		n.iface_id = malloc(16);
		if (!n.iface_id)
			goto nomem;
		snprintf(n.iface_id, 16, "net%u", cfg->nr_nets);
	}
	ret = vm_config_put_net(cfg, "--net", &n, err, err_size);
	if (!ret)
		goto out_keep;
	goto out;
nomem:
	errmsg_set(err, err_size, "out of memory");
	ret = -ENOMEM;
out:
	vm_net_config_free(&n);
out_keep:
	free(copy);
	return ret;
}

unsigned int vm_config_drive_order(const struct vm_config *cfg, unsigned int n)
{
	unsigned int root = cfg->nr_drives;

	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (cfg->drives[i].is_root_device)
			root = i;
	if (root == cfg->nr_drives)
		return n;
	if (n == 0)
		return root;
	return n <= root ? n - 1 : n;
}

char *vm_config_root_cmdline(const struct vm_config *cfg, const char *cmdline)
{
	const struct vm_drive_config *root = NULL;
	char *out;

	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (cfg->drives[i].is_root_device)
			root = &cfg->drives[i];
	if (!cmdline)
		cmdline = "";
	if (!root) {
		out = strdup(cmdline);
	} else if (asprintf(&out, "%s%sroot=%s%s %s", cmdline, cmdline[0] ? " " : "",
			    root->partuuid ? "PARTUUID=" : "/dev/vda", root->partuuid ? root->partuuid : "",
			    root->is_read_only ? "ro" : "rw") < 0) {
		out = NULL;
	}
	if (!out)
		errno = ENOMEM;
	return out;
}

int vm_config_load_file(struct vm_config *cfg, const char *path, char *err, size_t err_size)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		errmsg_set(err, err_size, "%s: %s", path, strerror(EISDIR));
		goto out;
	}
	buf = malloc(CONFIG_MAX_FILE_SIZE + 1);
	if (!buf) {
		ret = -ENOMEM;
		errmsg_set(err, err_size, "%s: out of memory", path);
		goto out;
	}
	/* Read to EOF rather than trusting st_size: pipes and /proc files report 0. */
	for (;;) {
		ssize_t n = read(fd, buf + len, CONFIG_MAX_FILE_SIZE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_MAX_FILE_SIZE) {
			ret = -EFBIG;
			errmsg_set(err, err_size, "%s: larger than %u bytes, not a config file", path, CONFIG_MAX_FILE_SIZE);
			goto out;
		}
	}
	ret = vm_config_parse_json(cfg, buf, len, err, err_size);
	if (ret && err && err_size) {
		/* Prefix the file name, as compilers do: "vm.json: machine-config.vcpu_count: ...". */
		char *msg = strdup(err);

		if (msg) {
			snprintf(err, err_size, "%s: %s", path, msg);
			free(msg);
		}
	}
out:
	free(buf);
	close(fd);
	return ret;
}

/* A file the VMM will read: exists, is a regular file, and this process may open it for reading. */
static int check_readable_file(const char *field, const char *path, char *err, size_t err_size)
{
	struct stat st;
	int fd;

	if (!path[0]) {
		errmsg_set(err, err_size, "%s: expected a non-empty path", field);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		errmsg_set(err, err_size, "%s: %s: %s", field, path, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		errmsg_set(err, err_size, "%s: %s: not a regular file (%s)", field, path,
			S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket");
		return -EINVAL;
	}
	/* O_NONBLOCK: harmless for a regular file, and a file swapped for a FIFO since stat cannot hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		errmsg_set(err, err_size, "%s: %s: %s", field, path, strerror(errno));
		return -EINVAL;
	}
	close(fd);
	return 0;
}

/* MemTotal from /proc/meminfo in MiB, or 0 when it cannot be read. */
static uint64_t host_mem_mib(void)
{
	unsigned long long kib = 0;
	char line[256];
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib / 1024;
}

int vm_config_validate(const struct vm_config *cfg, char *err, size_t err_size)
{
	uint64_t host_mib;
	int ret;

	/* Flags may have changed the parsed values: check the ranges again. */
	if (cfg->vcpus < 1 || cfg->vcpus > CONFIG_MAX_VCPUS) {
		errmsg_set(err, err_size, "machine-config.vcpu_count: expected an integer 1..%d, got %u", CONFIG_MAX_VCPUS,
			cfg->vcpus);
		return -EINVAL;
	}
	ret = check_smt(err, err_size, cfg);
	if (ret)
		return ret;
	if (cfg->mem_mib < CONFIG_MIN_MEM_MIB || cfg->mem_mib > CONFIG_MAX_MEM_MIB) {
		errmsg_set(err, err_size, "machine-config.mem_size_mib: expected an integer %d..%d, got %" PRIu64,
			CONFIG_MIN_MEM_MIB, CONFIG_MAX_MEM_MIB, cfg->mem_mib);
		return -EINVAL;
	}
	if (cfg->cmdline && strlen(cfg->cmdline) > CONFIG_MAX_CMDLINE - 1) {
		errmsg_set(err, err_size, "boot-source.boot_args: expected at most %d bytes, got %zu bytes",
			CONFIG_MAX_CMDLINE - 1, strlen(cfg->cmdline));
		return -EINVAL;
	}
	if (cfg->console_path && !cfg->console_path[0]) {
		errmsg_set(err, err_size, "kiln.console: expected \"stdio\" or a file path, got \"\"");
		return -EINVAL;
	}

	if (!cfg->kernel_path) {
		errmsg_set(err, err_size, "boot-source.kernel_image_path: missing (give it in the config file or with --kernel)");
		return -EINVAL;
	}
	ret = check_readable_file("boot-source.kernel_image_path", cfg->kernel_path, err, err_size);
	if (ret)
		return ret;
	if (cfg->initrd_path) {
		ret = check_readable_file("boot-source.initrd_path", cfg->initrd_path, err, err_size);
		if (ret)
			return ret;
	}

	host_mib = host_mem_mib();
	if (!host_mib)
		pr_debug("cannot read MemTotal from /proc/meminfo; not checking guest memory against it\n");
	else if (cfg->mem_mib > host_mib) {
		errmsg_set(err, err_size, "machine-config.mem_size_mib: %" PRIu64 " MiB is more than the host's %" PRIu64 " MiB",
			cfg->mem_mib, host_mib);
		return -EINVAL;
	}
	return 0;
}

/* json_object_set_new that remembers a failure, so the builder below checks once at the end. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
	if (!obj) {
		json_decref(value);
		*ok = false;
	} else if (!value || json_object_set_new(obj, key, value)) {
		*ok = false; /* json_object_set_new drops the reference on failure too */
	}
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *drives_to_json(const struct vm_config *cfg)
{
	json_t *a = json_array();
	bool ok = a != NULL;

	for (unsigned int i = 0; ok && i < cfg->nr_drives; i++) {
		const struct vm_drive_config *d = &cfg->drives[i];
		json_t *o = json_object();

		put(o, "drive_id", json_string(d->drive_id), &ok);
		put(o, "path_on_host", json_string(d->path_on_host), &ok);
		put(o, "is_root_device", json_boolean(d->is_root_device), &ok);
		put(o, "is_read_only", json_boolean(d->is_read_only), &ok);
		if (d->partuuid)
			put(o, "partuuid", json_string(d->partuuid), &ok);
		put(o, "cache_type", json_string(drive_cache_types[d->cache_type]), &ok);
		put(o, "io_engine", json_string(drive_io_engines[d->io_engine]), &ok);
		if (!o || json_array_append_new(a, o))
			ok = false;
	}
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

static json_t *nets_to_json(const struct vm_config *cfg)
{
	json_t *a = json_array();
	bool ok = a != NULL;

	for (unsigned int i = 0; ok && i < cfg->nr_nets; i++) {
		const struct vm_net_config *n = &cfg->nets[i];
		json_t *o = json_object();

		put(o, "iface_id", json_string(n->iface_id), &ok);
		put(o, "host_dev_name", json_string(n->host_dev_name), &ok);
		if (n->guest_mac.set) {
			const uint8_t *b = n->guest_mac.bytes;

			put(o, "guest_mac", json_sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]),
			    &ok);
		}
		if (n->mtu)
			put(o, "mtu", json_integer(n->mtu), &ok);
		if (!o || json_array_append_new(a, o))
			ok = false;
	}
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

char *vm_config_to_json(const struct vm_config *cfg)
{
	json_t *root = json_object(), *boot = json_object(), *machine = json_object(), *kiln = json_object();
	bool ok = root && boot && machine && kiln;
	char *out = NULL;

	/* Firecracker omits boot_args when unset (boot_source.rs: skip_serializing_if) and writes initrd_path null. */
	if (cfg->kernel_path)
		put(boot, "kernel_image_path", json_string(cfg->kernel_path), &ok);
	put(boot, "initrd_path", string_or_null(cfg->initrd_path), &ok);
	if (cfg->cmdline)
		put(boot, "boot_args", json_string(cfg->cmdline), &ok);

	put(machine, "vcpu_count", json_integer(cfg->vcpus), &ok);
	put(machine, "mem_size_mib", json_integer((json_int_t)cfg->mem_mib), &ok);
	put(machine, "smt", json_boolean(cfg->smt), &ok);
	put(machine, "track_dirty_pages", json_boolean(cfg->track_dirty_pages), &ok);
	put(machine, "huge_pages", json_string("None"), &ok);

	put(kiln, "console", json_string(vm_config_console_is_stdio(cfg) ? "stdio" : cfg->console_path), &ok);
	put(kiln, "pvm_tuning", json_boolean(cfg->pvm_tuning), &ok);
	put(kiln, "boot", json_string(boot_protocols[cfg->boot]), &ok);

	/* put() takes the reference even when it fails, so each object is handed over exactly once. */
	put(root, "boot-source", boot, &ok);
	put(root, "drives", drives_to_json(cfg), &ok);
	put(root, "machine-config", machine, &ok);
	put(root, "network-interfaces", nets_to_json(cfg), &ok);
	if (cfg->entropy)
		put(root, "entropy", json_object(), &ok);
	put(root, "kiln", kiln, &ok);

	if (ok)
		out = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!out)
		errno = ENOMEM;
	return out;
}
