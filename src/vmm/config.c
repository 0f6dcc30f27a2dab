// SPDX-License-Identifier: MIT
/*
 * VM configuration: Firecracker's --config-file JSON schema (firecracker.yaml, FullVmConfiguration;
 * src/vmm/src/resources.rs, VmmConfig) plus kiln's own "kiln" object. docs/config.md is the user's view.
 *
 * Parsing is table-driven: one table of top-level sections, one table of fields per section. Every key
 * is looked up; anything unknown or not implemented yet is an error naming its JSON path, so a config
 * never means more than kiln does.
 */
#include "vmm/config.h"

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

enum field_kind {
	FIELD_PATH,    /* char *: non-empty string */
	FIELD_CMDLINE, /* char *: string, at most CONFIG_MAX_CMDLINE - 1 bytes */
	FIELD_U32,     /* unsigned int in [min, max] */
	FIELD_U64,     /* uint64_t in [min, max] */
	FIELD_BOOL,    /* bool */
	FIELD_NONE,    /* Firecracker enum of which kiln implements only "None"; nothing stored */
	FIELD_CONSOLE, /* char *: "stdio" (stored as NULL) or a path */
	FIELD_RENAMED, /* an old Firecracker name: rejected with a hint */
};

struct field {
	const char *name;
	enum field_kind kind;
	bool nullable;             /* JSON null accepted: clears a string, no-op otherwise */
	size_t offset;             /* into struct vm_config */
	uint64_t min, max;         /* FIELD_U32, FIELD_U64 */
	const char *const *later;  /* FIELD_NONE: values Firecracker accepts that kiln does not yet */
	const char *hint;          /* FIELD_RENAMED */
};

struct parse_ctx {
	struct vm_config *next; /* the config being built; committed only on success */
	char *err;
	size_t err_size;
};

enum section_kind {
	SECTION_OBJECT,      /* parsed through `fields` */
	SECTION_EMPTY_ARRAY, /* a device list: accepted only when empty */
	SECTION_LATER,       /* a Firecracker section kiln does not implement yet */
};

struct section {
	const char *name;
	enum section_kind kind;
	bool nullable; /* serde Option<T>: null means "not configured" */
	const struct field *fields;
	size_t nr_fields;
	const char *issue;                              /* SECTION_EMPTY_ARRAY */
	int (*check)(struct parse_ctx *ctx);            /* after all fields of the section */
};

static const char *const cpu_templates_later[] = { "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", NULL };
static const char *const huge_pages_later[] = { "2M", "Transparent", NULL };

static const struct field boot_source_fields[] = {
	{ .name = "kernel_image_path", .kind = FIELD_PATH, .offset = offsetof(struct vm_config, kernel_path) },
	{ .name = "initrd_path", .kind = FIELD_PATH, .nullable = true,
	  .offset = offsetof(struct vm_config, initrd_path) },
	{ .name = "boot_args", .kind = FIELD_CMDLINE, .nullable = true, .offset = offsetof(struct vm_config, cmdline) },
};

static const struct field machine_config_fields[] = {
	{ .name = "vcpu_count", .kind = FIELD_U32, .offset = offsetof(struct vm_config, vcpus),
	  .min = 1, .max = CONFIG_MAX_VCPUS },
	{ .name = "mem_size_mib", .kind = FIELD_U64, .offset = offsetof(struct vm_config, mem_mib),
	  .min = CONFIG_MIN_MEM_MIB, .max = CONFIG_MAX_MEM_MIB },
	{ .name = "smt", .kind = FIELD_BOOL, .offset = offsetof(struct vm_config, smt) },
	{ .name = "track_dirty_pages", .kind = FIELD_BOOL, .offset = offsetof(struct vm_config, track_dirty_pages) },
	{ .name = "cpu_template", .kind = FIELD_NONE, .nullable = true, .later = cpu_templates_later },
	{ .name = "huge_pages", .kind = FIELD_NONE, .later = huge_pages_later },
	{ .name = "ht_enabled", .kind = FIELD_RENAMED, .hint = "Firecracker renamed it \"smt\"" },
};

static const struct field kiln_fields[] = {
	{ .name = "console", .kind = FIELD_CONSOLE, .offset = offsetof(struct vm_config, console_path) },
	{ .name = "pvm_tuning", .kind = FIELD_BOOL, .offset = offsetof(struct vm_config, pvm_tuning) },
};

static int check_machine_config(struct parse_ctx *ctx);

#define FIELDS(a) .fields = (a), .nr_fields = sizeof(a) / sizeof((a)[0])

/* Firecracker's top-level keys (firecracker.yaml FullVmConfiguration, v1.17) and kiln's object. */
static const struct section sections[] = {
	{ .name = "boot-source", .kind = SECTION_OBJECT, FIELDS(boot_source_fields) },
	{ .name = "machine-config", .kind = SECTION_OBJECT, .nullable = true, FIELDS(machine_config_fields),
	  .check = check_machine_config },
	{ .name = "kiln", .kind = SECTION_OBJECT, FIELDS(kiln_fields) },
	{ .name = "drives", .kind = SECTION_EMPTY_ARRAY, .issue = "virtio-blk" },
	{ .name = "network-interfaces", .kind = SECTION_EMPTY_ARRAY, .issue = "virtio-net" },
	{ .name = "pmem", .kind = SECTION_EMPTY_ARRAY, .issue = "virtio-pmem" },
	{ .name = "balloon", .kind = SECTION_LATER, .nullable = true },
	{ .name = "cpu-config", .kind = SECTION_LATER, .nullable = true },
	{ .name = "entropy", .kind = SECTION_LATER, .nullable = true },
	{ .name = "logger", .kind = SECTION_LATER, .nullable = true },
	{ .name = "memory-hotplug", .kind = SECTION_LATER, .nullable = true },
	{ .name = "metrics", .kind = SECTION_LATER, .nullable = true },
	{ .name = "mmds-config", .kind = SECTION_LATER, .nullable = true },
	{ .name = "vsock", .kind = SECTION_LATER, .nullable = true },
};

#define NR_SECTIONS (sizeof(sections) / sizeof(sections[0]))

/* The string fields of struct vm_config, for the commit/rollback of a parse and for vm_config_free. */
static const size_t string_fields[] = {
	offsetof(struct vm_config, kernel_path),
	offsetof(struct vm_config, initrd_path),
	offsetof(struct vm_config, cmdline),
	offsetof(struct vm_config, console_path),
};

#define NR_STRING_FIELDS (sizeof(string_fields) / sizeof(string_fields[0]))

static char **str_at(struct vm_config *cfg, size_t offset)
{
	return (char **)((char *)cfg + offset);
}

#define fail(ctx, ...) (errmsg_set((ctx)->err, (ctx)->err_size, __VA_ARGS__), -EINVAL)

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

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->mem_mib = CONFIG_DEFAULT_MEM_MIB;
	cfg->pvm_tuning = true;
}

void vm_config_free(struct vm_config *cfg)
{
	for (size_t i = 0; i < NR_STRING_FIELDS; i++) {
		char **s = str_at(cfg, string_fields[i]);

		free(*s);
		*s = NULL;
	}
}

bool vm_config_console_is_stdio(const struct vm_config *cfg)
{
	return !cfg->console_path || !strcmp(cfg->console_path, "stdio");
}

/*
 * Replace a string field of the config being built. The previous value is freed only if this parse
 * allocated it; the caller's strings are freed at commit time.
 */
static int set_string(struct parse_ctx *ctx, const struct vm_config *orig, size_t offset, const char *value)
{
	char **dst = str_at(ctx->next, offset);
	char *copy = NULL;

	if (value) {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	if (*dst != *str_at((struct vm_config *)orig, offset))
		free(*dst);
	*dst = copy;
	return 0;
}

static int parse_none_enum(struct parse_ctx *ctx, const char *sec, const struct field *f, json_t *v)
{
	char got[64];
	const char *s;

	if (json_is_string(v)) {
		s = json_string_value(v);
		if (!strcmp(s, "None"))
			return 0;
		for (const char *const *l = f->later; l && *l; l++)
			if (!strcmp(s, *l))
				return fail(ctx, "%s.%s: \"%s\" is not supported yet (expected %s\"None\")", sec, f->name,
					    s, f->nullable ? "null or " : "");
	}
	describe(v, got, sizeof(got));
	return fail(ctx, "%s.%s: expected %s\"None\", got %s", sec, f->name, f->nullable ? "null or " : "", got);
}

static int parse_field(struct parse_ctx *ctx, const struct vm_config *orig, const char *sec, const struct field *f,
		       json_t *v)
{
	void *dst = (char *)ctx->next + f->offset;
	char got[64];
	const char *s;
	json_int_t n;

	if (f->kind == FIELD_RENAMED)
		return fail(ctx, "%s.%s: unknown field (%s)", sec, f->name, f->hint);
	if (json_is_null(v) && f->nullable) {
		if (f->kind == FIELD_PATH || f->kind == FIELD_CMDLINE)
			return set_string(ctx, orig, f->offset, NULL);
		return 0;
	}
	describe(v, got, sizeof(got));

	switch (f->kind) {
	case FIELD_PATH:
	case FIELD_CONSOLE:
		if (!json_is_string(v) || json_string_length(v) == 0) {
			if (f->kind == FIELD_CONSOLE)
				return fail(ctx, "%s.%s: expected \"stdio\" or a file path, got %s", sec, f->name, got);
			return fail(ctx, "%s.%s: expected a non-empty path string%s, got %s", sec, f->name,
				    f->nullable ? " or null" : "", got);
		}
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v))
			return fail(ctx, "%s.%s: expected a path without NUL bytes", sec, f->name);
		if (f->kind == FIELD_CONSOLE && !strcmp(s, "stdio"))
			s = NULL;
		return set_string(ctx, orig, f->offset, s);

	case FIELD_CMDLINE:
		if (!json_is_string(v))
			return fail(ctx, "%s.%s: expected a string%s, got %s", sec, f->name, f->nullable ? " or null" : "",
				    got);
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v))
			return fail(ctx, "%s.%s: expected a string without NUL bytes", sec, f->name);
		if (json_string_length(v) > CONFIG_MAX_CMDLINE - 1)
			return fail(ctx, "%s.%s: expected at most %d bytes, got %zu bytes", sec, f->name,
				    CONFIG_MAX_CMDLINE - 1, json_string_length(v));
		return set_string(ctx, orig, f->offset, s);

	case FIELD_U32:
	case FIELD_U64:
		n = json_is_integer(v) ? json_integer_value(v) : -1;
		if (!json_is_integer(v) || n < 0 || (uint64_t)n < f->min || (uint64_t)n > f->max)
			return fail(ctx, "%s.%s: expected an integer %" PRIu64 "..%" PRIu64 ", got %s", sec, f->name,
				    f->min, f->max, got);
		if (f->kind == FIELD_U32)
			*(unsigned int *)dst = (unsigned int)n;
		else
			*(uint64_t *)dst = (uint64_t)n;
		return 0;

	case FIELD_BOOL:
		if (!json_is_boolean(v))
			return fail(ctx, "%s.%s: expected true or false, got %s", sec, f->name, got);
		*(bool *)dst = json_is_true(v);
		return 0;

	case FIELD_NONE:
		return parse_none_enum(ctx, sec, f, v);

	case FIELD_RENAMED:
		break;
	}
	return fail(ctx, "%s.%s: internal error: unhandled field kind", sec, f->name);
}

/* "a, b or c" from a field table, for unknown-field messages. */
static void field_list(const struct field *fields, size_t n, char *buf, size_t size)
{
	size_t len = 0, shown = 0, total = 0;

	for (size_t i = 0; i < n; i++)
		total += fields[i].kind != FIELD_RENAMED;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++) {
		if (fields[i].kind == FIELD_RENAMED)
			continue;
		shown++;
		len += snprintf(buf + len, size - len, "%s%s", shown == 1 ? "" : shown == total ? " or " : ", ",
				fields[i].name);
	}
}

static int parse_object_section(struct parse_ctx *ctx, const struct vm_config *orig, const struct section *sec,
				json_t *obj)
{
	const char *key;
	json_t *v;
	int ret;

	json_object_foreach(obj, key, v) {
		const struct field *f = NULL;

		for (size_t i = 0; i < sec->nr_fields; i++)
			if (!strcmp(key, sec->fields[i].name))
				f = &sec->fields[i];
		if (!f) {
			char list[256];

			field_list(sec->fields, sec->nr_fields, list, sizeof(list));
			return fail(ctx, "%s.%s: unknown field (expected %s)", sec->name, key, list);
		}
		ret = parse_field(ctx, orig, sec->name, f, v);
		if (ret)
			return ret;
	}
	return sec->check ? sec->check(ctx) : 0;
}

/* Firecracker's rule (machine_config.rs, VmConfig::update): with SMT the vCPU count is 1 or even. */
static int check_smt(char *err, size_t err_size, const struct vm_config *cfg)
{
	if (cfg->smt && cfg->vcpus > 1 && cfg->vcpus % 2) {
		errmsg_set(err, err_size, "machine-config.vcpu_count: expected 1 or an even number when smt is true, got %u",
			cfg->vcpus);
		return -EINVAL;
	}
	return 0;
}

static int check_machine_config(struct parse_ctx *ctx)
{
	return check_smt(ctx->err, ctx->err_size, ctx->next);
}

static int parse_section(struct parse_ctx *ctx, const struct vm_config *orig, const struct section *sec, json_t *v)
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
		return parse_object_section(ctx, orig, sec, v);
	case SECTION_EMPTY_ARRAY:
		if (!json_is_array(v))
			return fail(ctx, "%s: expected an array, got %s", sec->name, got);
		if (json_array_size(v))
			return fail(ctx, "%s: not supported yet (issue: %s)", sec->name, sec->issue);
		return 0;
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

int vm_config_parse_json(struct vm_config *cfg, const char *text, size_t len, char *err, size_t err_size)
{
	struct vm_config next = *cfg;
	struct parse_ctx ctx = { .next = &next, .err = err, .err_size = err_size };
	json_error_t jerr;
	const char *key;
	json_t *root, *v;
	char got[64];
	int ret = 0;

	if (all_space(text, len)) {
		errmsg_set(err, err_size, "empty config: expected a JSON object");
		return -EINVAL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		errmsg_set(err, err_size, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
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
		ret = parse_section(&ctx, cfg, sec, v);
		if (ret)
			goto out;
	}

out:
	json_decref(root);
	/* All or nothing: free whichever side of each string field lost. */
	for (size_t i = 0; i < NR_STRING_FIELDS; i++) {
		char **old = str_at(cfg, string_fields[i]), **new = str_at(&next, string_fields[i]);

		if (*old != *new)
			free(ret ? *new : *old);
	}
	if (!ret)
		*cfg = next;
	if (ret == -ENOMEM)
		errmsg_set(err, err_size, "out of memory");
	return ret;
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

	/* put() takes the reference even when it fails, so each object is handed over exactly once. */
	put(root, "boot-source", boot, &ok);
	put(root, "drives", json_array(), &ok);
	put(root, "machine-config", machine, &ok);
	put(root, "network-interfaces", json_array(), &ok);
	put(root, "kiln", kiln, &ok);

	if (ok)
		out = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!out)
		errno = ENOMEM;
	return out;
}
