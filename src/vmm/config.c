// SPDX-License-Identifier: MIT
/*
 * VM configuration: Firecracker's --config-file JSON schema (firecracker.yaml, FullVmConfiguration;
 * src/vmm/src/resources.rs, VmmConfig) plus kiln's own "kiln" object. docs/config.md is the user's view.
 *
 * Parsing is table-driven: one table of top-level sections, one table of fields per section. Every key
 * is looked up; anything unknown or not implemented yet is an error naming its JSON path, so a config
 * never means more than kiln does. The same field engine (lib/json_fields.c) parses the control API's
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

#include "lib/json_fields.h"
#include "lib/log.h"
#include "lib/safe_path.h"

/* A config file is a few hundred bytes; the cap keeps `--config /dev/zero` from eating memory. */
#define CONFIG_MAX_FILE_SIZE (1u << 20)

/* Room for a field's JSON path in messages ("drives[3].rate_limiter"). */
#define PATH_SIZE 160


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
	const struct json_field *fields;
	size_t nr_fields;
	const char *issue;                              /* SECTION_EMPTY_ARRAY */
	int (*parse_list)(struct json_fields_ctx *ctx, json_t *array); /* SECTION_DEVICE_LIST */
	int (*check)(struct json_fields_ctx *ctx);            /* after all fields of the section */
};

static const char *const cpu_templates_later[] = { "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", NULL };
static const char *const huge_pages_later[] = { "2M", "Transparent", NULL };

static const struct json_field boot_source_fields[] = {
	{ .name = "kernel_image_path", .kind = JSON_FIELD_PATH, .offset = offsetof(struct vm_config, kernel_path) },
	{ .name = "initrd_path", .kind = JSON_FIELD_PATH, .nullable = true,
	  .offset = offsetof(struct vm_config, initrd_path) },
	{ .name = "boot_args", .kind = JSON_FIELD_TEXT, .nullable = true, .max = CONFIG_MAX_CMDLINE - 1,
	  .offset = offsetof(struct vm_config, cmdline) },
};

static const struct json_field machine_config_fields[] = {
	{ .name = "vcpu_count", .kind = JSON_FIELD_U32, .offset = offsetof(struct vm_config, vcpus),
	  .min = 1, .max = CONFIG_MAX_VCPUS },
	{ .name = "mem_size_mib", .kind = JSON_FIELD_U64, .offset = offsetof(struct vm_config, mem_mib),
	  .min = CONFIG_MIN_MEM_MIB, .max = CONFIG_MAX_MEM_MIB },
	{ .name = "smt", .kind = JSON_FIELD_BOOL, .offset = offsetof(struct vm_config, smt) },
	{ .name = "track_dirty_pages", .kind = JSON_FIELD_BOOL,
	  .offset = offsetof(struct vm_config, track_dirty_pages) },
	{ .name = "cpu_template", .kind = JSON_FIELD_NONE, .nullable = true, .later = cpu_templates_later },
	{ .name = "huge_pages", .kind = JSON_FIELD_NONE, .later = huge_pages_later },
	{ .name = "ht_enabled", .kind = JSON_FIELD_RENAMED, .hint = "Firecracker renamed it \"smt\"" },
};

const char *const vm_boot_protocol_names[] = { "linux64", "pvh", NULL };

static const struct json_field kiln_fields[] = {
	{ .name = "console", .kind = JSON_FIELD_PATH, .null_word = "stdio",
	  .offset = offsetof(struct vm_config, console_path) },
	{ .name = "console_max_bytes", .kind = JSON_FIELD_U64, .min = 1, .max = UINT64_MAX,
	  .offset = offsetof(struct vm_config, console_max_bytes) },
	{ .name = "pvm_tuning", .kind = JSON_FIELD_BOOL, .offset = offsetof(struct vm_config, pvm_tuning) },
	{ .name = "boot", .kind = JSON_FIELD_ENUM, .values = vm_boot_protocol_names,
	  .offset = offsetof(struct vm_config, boot) },
};

/* Firecracker's EntropyDeviceConfig (vmm_config/entropy.rs): its only field is the rate limiter. */
static const struct json_field entropy_fields[] = {
	{ .name = "rate_limiter", .kind = JSON_FIELD_LATER, .nullable = true },
};

int vm_config_apply_machine(struct vm_config *cfg, const struct vm_config *values, unsigned int set, char *err,
			    size_t err_size)
{
	struct vm_config next = *cfg;
	int ret;

	if (set & VM_MACHINE_VCPU_COUNT)
		next.vcpus = values->vcpus;
	if (set & VM_MACHINE_MEM_SIZE_MIB)
		next.mem_mib = values->mem_mib;
	if (set & VM_MACHINE_SMT)
		next.smt = values->smt;
	if (set & VM_MACHINE_TRACK_DIRTY_PAGES)
		next.track_dirty_pages = values->track_dirty_pages;
	ret = vm_config_check_machine(&next, err, err_size);
	if (!ret)
		*cfg = next; /* only scalars changed: the strings are the same pointers */
	return ret;
}

int vm_config_apply_boot_source(struct vm_config *cfg, const struct vm_config *boot)
{
	char *kernel = NULL, *initrd = NULL, *cmdline = NULL;

	if ((boot->kernel_path && !(kernel = strdup(boot->kernel_path))) ||
	    (boot->initrd_path && !(initrd = strdup(boot->initrd_path))) ||
	    (boot->cmdline && !(cmdline = strdup(boot->cmdline)))) {
		free(kernel);
		free(initrd);
		free(cmdline);
		return -ENOMEM;
	}
	free(cfg->kernel_path);
	free(cfg->initrd_path);
	free(cfg->cmdline);
	cfg->kernel_path = kernel;
	cfg->initrd_path = initrd;
	cfg->cmdline = cmdline;
	return 0;
}

static int check_machine_config(struct json_fields_ctx *ctx);
static int check_entropy(struct json_fields_ctx *ctx);
static int parse_drive_list(struct json_fields_ctx *ctx, json_t *array);
static int parse_net_list(struct json_fields_ctx *ctx, json_t *array);

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



void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->mem_mib = CONFIG_DEFAULT_MEM_MIB;
	cfg->pvm_tuning = true;
	cfg->console_max_bytes = CONFIG_DEFAULT_CONSOLE_MAX;
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


bool config_id_valid(const char *id)
{
	return json_id_valid(id, '_');
}

bool config_instance_id_valid(const char *id)
{
	return json_id_valid(id, '-');
}

bool config_text_valid(const char *s)
{
	/* What passes here is what vm_config_to_json can write. */
	return json_text_valid(s);
}




static int parse_object_section(struct json_fields_ctx *ctx, const struct section *sec, json_t *obj)
{
	int ret = json_fields_parse_into(ctx, sec->name, sec->fields, sec->nr_fields, obj);

	if (ret)
		return ret;
	return sec->check ? sec->check(ctx) : 0;
}

/* Firecracker's rule (machine_config.rs, VmConfig::update): with SMT the vCPU count is 1 or even. */
static int check_smt(char *err, size_t err_size, const struct vm_config *cfg)
{
	if (cfg->smt && cfg->vcpus > 1 && cfg->vcpus % 2) {
		errmsg_set(err, err_size,
			   "machine-config.vcpu_count: expected 1 or an even number when smt is true, got %u", cfg->vcpus);
		return -EINVAL;
	}
	return 0;
}

int vm_config_check_machine(const struct vm_config *cfg, char *err, size_t err_size)
{
	return check_smt(err, err_size, cfg);
}

static int check_machine_config(struct json_fields_ctx *ctx)
{
	return check_smt(ctx->err, ctx->err_size, ctx->next);
}

/* The section's presence is the setting: "entropy": {} adds the device, null (not configured) does not. */
static int check_entropy(struct json_fields_ctx *ctx)
{
	((struct vm_config *)ctx->next)->entropy = true;
	return 0;
}

static int parse_section(struct json_fields_ctx *ctx, const struct section *sec, json_t *v)
{
	char got[64];

	if (json_is_null(v) && sec->nullable)
		return 0;
	json_describe(v, got, sizeof(got));

	switch (sec->kind) {
	case SECTION_OBJECT:
		if (!json_is_object(v))
			return json_fields_fail(ctx, "%s: expected an object%s, got %s", sec->name,
						sec->nullable ? " or null" : "", got);
		return parse_object_section(ctx, sec, v);
	case SECTION_EMPTY_ARRAY:
		if (!json_is_array(v))
			return json_fields_fail(ctx, "%s: expected an array, got %s", sec->name, got);
		if (json_array_size(v))
			return json_fields_fail(ctx, "%s: not supported yet (issue: %s)", sec->name, sec->issue);
		return 0;
	case SECTION_DEVICE_LIST:
		if (!json_is_array(v))
			return json_fields_fail(ctx, "%s: expected an array, got %s", sec->name, got);
		return sec->parse_list(ctx, v);
	case SECTION_LATER:
		return json_fields_fail(ctx, "%s: not supported yet", sec->name);
	}
	return json_fields_fail(ctx, "%s: internal error: unhandled section kind", sec->name);
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
		errmsg_set(err, err_size, "out of memory");
	return ret;
}

int vm_config_parse_json(struct vm_config *cfg, const char *text, size_t len, char *err, size_t err_size)
{
	struct vm_config next = *cfg;
	struct json_fields_ctx ctx = { .next = &next, .orig = cfg, .err = err, .err_size = err_size };
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
		json_describe(root, got, sizeof(got));
		ret = json_fields_fail(&ctx, "top level: expected an object, got %s", got);
		goto out;
	}

	json_object_foreach(root, key, v) {
		const struct section *sec = NULL;

		for (size_t i = 0; i < NR_SECTIONS; i++)
			if (!strcmp(key, sections[i].name))
				sec = &sections[i];
		if (!sec) {
			ret = json_fields_fail(&ctx, "%s: unknown field (not in Firecracker's config-file schema; "
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
	struct json_fields_ctx ctx = { .next = &next, .orig = cfg, .err = err, .err_size = err_size };
	const struct section *sec = NULL;
	char got[64];
	int ret;

	for (size_t i = 0; i < NR_SECTIONS; i++)
		if (!strcmp(section, sections[i].name) && sections[i].kind == SECTION_OBJECT)
			sec = &sections[i];
	if (!sec) {
		errmsg_set(err, err_size, "%s: not a section that can be parsed alone", section);
		return -EINVAL;
	}
	if (!json_is_object(value)) {
		json_describe(value, got, sizeof(got));
		errmsg_set(err, err_size, "%s: expected an object, got %s", sec->name, got);
		return -EINVAL;
	}
	ret = parse_object_section(&ctx, sec, value);
	return vm_config_commit(cfg, &next, ret, err, err_size);
}

/* Firecracker's Drive (firecracker.yaml; vmm_config/drive.rs, BlockDeviceConfig). */
const char *const vm_drive_cache_names[] = { "Unsafe", "Writeback", NULL };
const char *const vm_drive_io_engine_names[] = { "Sync", "Async", NULL };

static const struct json_field drive_fields[] = {
	{ .name = "drive_id", .kind = JSON_FIELD_ID, .required = true,
	  .offset = offsetof(struct vm_drive_config, drive_id) },
	{ .name = "path_on_host", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct vm_drive_config, path_on_host) },
	{ .name = "is_root_device", .kind = JSON_FIELD_BOOL, .required = true,
	  .offset = offsetof(struct vm_drive_config, is_root_device) },
	{ .name = "is_read_only", .kind = JSON_FIELD_BOOL, .required = true,
	  .offset = offsetof(struct vm_drive_config, is_read_only) },
	{ .name = "partuuid", .kind = JSON_FIELD_STRING, .nullable = true, .min = 1,
	  .offset = offsetof(struct vm_drive_config, partuuid) },
	{ .name = "cache_type", .kind = JSON_FIELD_ENUM, .values = vm_drive_cache_names,
	  .offset = offsetof(struct vm_drive_config, cache_type) },
	{ .name = "io_engine", .kind = JSON_FIELD_ENUM, .values = vm_drive_io_engine_names,
	  .offset = offsetof(struct vm_drive_config, io_engine) },
	{ .name = "rate_limiter", .kind = JSON_FIELD_LATER, .nullable = true },
	{ .name = "socket", .kind = JSON_FIELD_LATER, .nullable = true },
};

int vm_drive_config_parse(struct vm_drive_config *drive, const char *where, json_t *obj, char *err, size_t err_size)
{
	return json_fields_parse(where, drive_fields, ARRAY_SIZE(drive_fields), obj, drive, sizeof(*drive), err,
				   err_size);
}

void vm_drive_config_free(struct vm_drive_config *drive)
{
	json_fields_free(drive_fields, ARRAY_SIZE(drive_fields), drive);
}

/* Firecracker's NetworkInterface (firecracker.yaml; vmm_config/net.rs, NetworkInterfaceConfig). */
static const struct json_field net_fields[] = {
	{ .name = "iface_id", .kind = JSON_FIELD_ID, .required = true,
	  .offset = offsetof(struct vm_net_config, iface_id) },
	{ .name = "host_dev_name", .kind = JSON_FIELD_STRING, .required = true, .min = 1, .max = 15,
	  .offset = offsetof(struct vm_net_config, host_dev_name) },
	{ .name = "guest_mac", .kind = JSON_FIELD_MAC, .nullable = true,
	  .offset = offsetof(struct vm_net_config, guest_mac) },
	{ .name = "mtu", .kind = JSON_FIELD_U32, .nullable = true, .min = 68, .max = 65535,
	  .offset = offsetof(struct vm_net_config, mtu) },
	{ .name = "rx_rate_limiter", .kind = JSON_FIELD_LATER, .nullable = true },
	{ .name = "tx_rate_limiter", .kind = JSON_FIELD_LATER, .nullable = true },
};

int vm_net_config_parse(struct vm_net_config *net, const char *where, json_t *obj, char *err, size_t err_size)
{
	return json_fields_parse(where, net_fields, ARRAY_SIZE(net_fields), obj, net, sizeof(*net), err, err_size);
}

void vm_net_config_free(struct vm_net_config *net)
{
	json_fields_free(net_fields, ARRAY_SIZE(net_fields), net);
}

/*
 * A device list of struct vm_config ("drives", "network-interfaces"): its entries' fields (parsed and freed
 * through them; the first is the id), where the array lives, and the rule between two entries.
 */
struct device_list_kind {
	const char *section; /* "drives" */
	const char *noun;    /* "drives", for "at most 16 drives" */
	const struct json_field *fields;
	size_t nr_fields;
	size_t elem_size;
	size_t array_offset; /* of the array pointer in struct vm_config */
	size_t count_offset; /* of its unsigned int length */
	unsigned int max;
	/* May `elem` (at `where`) sit in one list with `other`, an entry with another id? 0, or -EINVAL with a
	 * message. */
	int (*conflict)(const void *other, const void *elem, const char *where, char *err, size_t err_size);
};

/*
 * Do two paths name one file (d1.img and ./d1.img, a hard link, a symlink)? Compared by (st_dev, st_ino);
 * a path that does not exist yet names no file (the drive's own open reports it).
 */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Firecracker's rules (vmm_config/drive.rs): one root device, and one drive per backing file. */
static int drive_conflict(const void *other, const void *elem, const char *where, char *err, size_t err_size)
{
	const struct vm_drive_config *o = other, *d = elem;

	if (d->is_root_device && o->is_root_device) {
		errmsg_set(err, err_size, "%s: a root block device already exists (drive \"%s\"): only one is allowed",
			   where, o->drive_id);
		return -EINVAL;
	}
	if (!strcmp(o->path_on_host, d->path_on_host)) {
		errmsg_set(err, err_size, "%s.path_on_host: %s is already drive \"%s\"", where, d->path_on_host,
			   o->drive_id);
		return -EINVAL;
	}
	if (same_file(o->path_on_host, d->path_on_host)) {
		errmsg_set(err, err_size, "%s.path_on_host: %s is the same file as drive \"%s\" (%s)", where,
			   d->path_on_host, o->drive_id, o->path_on_host);
		return -EINVAL;
	}
	return 0;
}

/* Firecracker's rules (vmm_config/net.rs): no shared TAP, no shared MAC (unset ones never collide: kiln
 * picks distinct addresses for them). */
static int net_conflict(const void *other, const void *elem, const char *where, char *err, size_t err_size)
{
	const struct vm_net_config *o = other, *n = elem;

	if (!strcmp(o->host_dev_name, n->host_dev_name)) {
		errmsg_set(err, err_size, "%s.host_dev_name: %s is already used by interface \"%s\"", where,
			   n->host_dev_name, o->iface_id);
		return -EINVAL;
	}
	if (o->guest_mac.set && n->guest_mac.set && !memcmp(o->guest_mac.bytes, n->guest_mac.bytes, 6)) {
		errmsg_set(err, err_size, "%s.guest_mac: already used by interface \"%s\"", where, o->iface_id);
		return -EINVAL;
	}
	return 0;
}

static const struct device_list_kind drive_list = {
	.section = "drives", .noun = "drives", .fields = drive_fields, .nr_fields = ARRAY_SIZE(drive_fields),
	.elem_size = sizeof(struct vm_drive_config), .array_offset = offsetof(struct vm_config, drives),
	.count_offset = offsetof(struct vm_config, nr_drives), .max = CONFIG_MAX_DRIVES, .conflict = drive_conflict,
};

static const struct device_list_kind net_list = {
	.section = "network-interfaces", .noun = "network interfaces", .fields = net_fields,
	.nr_fields = ARRAY_SIZE(net_fields), .elem_size = sizeof(struct vm_net_config),
	.array_offset = offsetof(struct vm_config, nets), .count_offset = offsetof(struct vm_config, nr_nets),
	.max = CONFIG_MAX_NETS, .conflict = net_conflict,
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

/*
 * Add `elem` to list `k` of `cfg`, or replace the entry with the same id, taking ownership of its strings
 * (on success only), after checking it against every other entry and the list's length.
 */
static int put_by_id(struct vm_config *cfg, const struct device_list_kind *k, const char *where, const void *elem,
		     char *err, size_t err_size)
{
	char *array = *list_array(k, cfg);
	unsigned int n = *list_count(k, cfg), replace = n;
	int ret;

	for (unsigned int i = 0; i < n; i++)
		if (!strcmp(elem_id(k, array + i * k->elem_size), elem_id(k, elem)))
			replace = i;
	for (unsigned int i = 0; i < n; i++) {
		if (i == replace)
			continue;
		ret = k->conflict(array + i * k->elem_size, elem, where, err, err_size);
		if (ret)
			return ret;
	}
	if (replace == n) {
		if (n >= k->max) {
			errmsg_set(err, err_size, "%s: at most %u %s", where, k->max, k->noun);
			return -EINVAL;
		}
		array = realloc(array, (n + 1) * k->elem_size);
		if (!array) {
			errmsg_set(err, err_size, "out of memory");
			return -ENOMEM;
		}
		*list_array(k, cfg) = array;
		(*list_count(k, cfg))++;
	} else {
		json_fields_free(k->fields, k->nr_fields, array + replace * k->elem_size);
	}
	memcpy(array + replace * k->elem_size, elem, k->elem_size);
	return 0;
}

int vm_config_put_drive(struct vm_config *cfg, const char *where, struct vm_drive_config *drive, char *err,
			size_t err_size)
{
	return put_by_id(cfg, &drive_list, where, drive, err, err_size);
}

int vm_config_put_net(struct vm_config *cfg, const char *where, struct vm_net_config *net, char *err,
		      size_t err_size)
{
	return put_by_id(cfg, &net_list, where, net, err, err_size);
}

/* Free the list `k` of `cfg` (entries and array). */
static void free_list(const struct device_list_kind *k, struct vm_config *cfg)
{
	char *array = *list_array(k, cfg);

	for (unsigned int i = 0; i < *list_count(k, cfg); i++)
		json_fields_free(k->fields, k->nr_fields, array + i * k->elem_size);
	free(array);
}

/*
 * A device list of the config file ("drives", "network-interfaces"): the list replaces any earlier one. Built
 * in a scratch config so that an error leaves `ctx->next` as it was; two entries with the same id are an error
 * here (the API's PUT /drives/{id} replaces instead).
 */
static int parse_device_list(struct json_fields_ctx *ctx, const struct device_list_kind *k, json_t *array)
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
		ret = json_fields_parse(where, k->fields, k->nr_fields, v, &e, k->elem_size, ctx->err, ctx->err_size);
		if (ret)
			break;
		for (unsigned int j = 0; j < *list_count(k, &list); j++)
			if (!strcmp(elem_id(k, (char *)*list_array(k, &list) + j * k->elem_size), elem_id(k, &e))) {
				errmsg_set(ctx->err, ctx->err_size, "%s.%s: \"%s\" appears twice", where, k->fields[0].name,
					   elem_id(k, &e));
				ret = -EINVAL;
			}
		if (!ret)
			ret = put_by_id(&list, k, where, &e, ctx->err, ctx->err_size);
		if (ret) {
			json_fields_free(k->fields, k->nr_fields, &e);
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

static int parse_drive_list(struct json_fields_ctx *ctx, json_t *array)
{
	return parse_device_list(ctx, &drive_list, array);
}

static int parse_net_list(struct json_fields_ctx *ctx, json_t *array)
{
	return parse_device_list(ctx, &net_list, array);
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

	fd = safe_open(NULL, path, O_RDONLY, SAFE_REG | SAFE_DIR | SAFE_FOLLOW, NULL, err, err_size);
	if (fd < 0)
		return fd;
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
