// SPDX-License-Identifier: MIT
/*
 * The control API's routes: request parsing into typed requests and their dispatch to the VM backend,
 * independent of HTTP so that every case is unit-tested (tests/unit/test_api_routes.c).
 *
 * Firecracker's API server (src/firecracker/src/api_server/parsed_request.rs and the files in request/) is the
 * model for paths, bodies and fault messages; bodies are parsed by the config file's field engine
 * (json_fields_parse, vm_config_parse_section), so the API and the file accept the same values with
 * the same messages. Where kiln differs from Firecracker, docs/api.yaml says so.
 */
#include "api/routes.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

/*
 * The Firecracker API whose schema kiln follows (firecracker.yaml info.version), reported as
 * "firecracker_version" by GET /version so that clients gating features on it see the API they get.
 */
#define API_FIRECRACKER_VERSION "1.17.0"
#define API_APP_NAME "kiln"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct route;

/* One request on its way through a route's parser. */
struct route_call {
	const struct route *r;
	const char *id;             /* the id in the path (validated), or NULL */
	json_t *body;               /* the body, a JSON object; NULL for GET */
	struct ctl_request *req;    /* to fill */
	struct api_response *resp;  /* the error answer */
};

typedef int (*route_parse_fn)(struct route_call *c);

struct route {
	const char *method;
	const char *pattern;  /* segments; "*" matches one segment: the resource id */
	route_parse_fn parse; /* NULL: a Firecracker endpoint kiln does not implement yet */
	enum ctl_op op;       /* when `parse` is route_no_body */
	const char *id_field; /* the body field that must equal the id in the path */
};

static int route_no_body(struct route_call *c);
static int route_boot_source(struct route_call *c);
static int route_machine_config(struct route_call *c);
static int route_drive(struct route_call *c);
static int route_net(struct route_call *c);
static int route_entropy(struct route_call *c);
static int route_actions(struct route_call *c);
static int route_vm_state(struct route_call *c);
static int route_snapshot_create(struct route_call *c);
static int route_snapshot_load(struct route_call *c);
static int route_vm_clone(struct route_call *c);

/* Every path and method the API knows, Firecracker's order (firecracker.yaml paths). */
static const struct route routes[] = {
	{ "GET", "/", route_no_body, CTL_OP_GET_INFO, NULL },
	{ "PUT", "/actions", route_actions, 0, NULL },
	{ "GET", "/balloon", NULL, 0, NULL },
	{ "PUT", "/balloon", NULL, 0, NULL },
	{ "PATCH", "/balloon", NULL, 0, NULL },
	{ "GET", "/balloon/statistics", NULL, 0, NULL },
	{ "PATCH", "/balloon/statistics", NULL, 0, NULL },
	{ "PATCH", "/balloon/hinting/start", NULL, 0, NULL },
	{ "GET", "/balloon/hinting/status", NULL, 0, NULL },
	{ "PATCH", "/balloon/hinting/stop", NULL, 0, NULL },
	{ "PUT", "/boot-source", route_boot_source, 0, NULL },
	{ "PUT", "/cpu-config", NULL, 0, NULL },
	{ "PUT", "/drives/*", route_drive, 0, "drive_id" },
	{ "PATCH", "/drives/*", NULL, 0, NULL },
	{ "PUT", "/pmem/*", NULL, 0, NULL },
	{ "PATCH", "/pmem/*", NULL, 0, NULL },
	{ "PUT", "/logger", NULL, 0, NULL },
	{ "GET", "/machine-config", route_no_body, CTL_OP_GET_MACHINE_CONFIG, NULL },
	{ "PUT", "/machine-config", route_machine_config, 0, NULL },
	{ "PATCH", "/machine-config", route_machine_config, 0, NULL },
	{ "PUT", "/metrics", NULL, 0, NULL },
	{ "GET", "/mmds", NULL, 0, NULL },
	{ "PUT", "/mmds", NULL, 0, NULL },
	{ "PATCH", "/mmds", NULL, 0, NULL },
	{ "PUT", "/mmds/config", NULL, 0, NULL },
	{ "PUT", "/entropy", route_entropy, 0, NULL },
	{ "PUT", "/serial", NULL, 0, NULL },
	{ "GET", "/hotplug/memory", NULL, 0, NULL },
	{ "PUT", "/hotplug/memory", NULL, 0, NULL },
	{ "PATCH", "/hotplug/memory", NULL, 0, NULL },
	{ "PUT", "/network-interfaces/*", route_net, 0, "iface_id" },
	{ "PATCH", "/network-interfaces/*", NULL, 0, NULL },
	{ "PUT", "/snapshot/create", route_snapshot_create, 0, NULL },
	{ "PUT", "/snapshot/load", route_snapshot_load, 0, NULL },
	{ "GET", "/vcpus", route_no_body, CTL_OP_GET_VCPUS, NULL }, /* kiln */
	{ "GET", "/version", route_no_body, CTL_OP_GET_VERSION, NULL },
	{ "PATCH", "/vm", route_vm_state, 0, NULL },
	{ "GET", "/vm/config", route_no_body, CTL_OP_GET_VM_CONFIG, NULL },
	{ "PUT", "/vm/clone", route_vm_clone, 0, NULL }, /* kiln */
	{ "PUT", "/vsock", NULL, 0, NULL },
};

const char *api_vm_state_name(enum ctl_vm_state state)
{
	switch (state) {
	case CTL_VM_NOT_STARTED:
		return "Not started";
	case CTL_VM_RUNNING:
		return "Running";
	case CTL_VM_PAUSED:
		return "Paused";
	}
	return "Not started";
}

void api_response_free(struct api_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* A message fit for JSON: bytes that are not printable ASCII become '?' (jansson wants UTF-8). */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static void set_fault(struct api_response *resp, unsigned int status, char *msg)
{
	json_t *obj, *str;

	free(resp->body);
	resp->body = NULL;
	resp->status = status;
	/* Keep UTF-8 (a path in a backend's message) when it is valid; else make it ASCII. */
	str = json_string(msg);
	if (!str) {
		sanitize(msg);
		str = json_string(msg);
	}
	obj = json_object();
	if (obj && str && !json_object_set_new(obj, "fault_message", str)) {
		str = NULL;
		resp->body = json_dumps(obj, JSON_COMPACT);
	}
	json_decref(str);
	json_decref(obj);
}

void api_response_error(struct api_response *resp, unsigned int status, const char *fmt, ...)
{
	char msg[API_ERR_SIZE + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_fault(resp, status, msg);
}

/* `s` (`n` bytes) for a message: printable ASCII, at most 64 bytes shown. */
static void shown(const char *s, size_t n, char *buf, size_t size)
{
	size_t len = 0;

	for (size_t i = 0; i < n && len + 4 < size; i++) {
		if (i == 64) {
			memcpy(buf + len, "...", 3);
			len += 3;
			break;
		}
		buf[len++] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ? '?' : s[i];
	}
	buf[len] = '\0';
}

/*
 * Does `path` match `pattern` segment by segment? A "*" segment matches any one segment, even empty
 * ("/drives/" has an empty id, an error of its own), and is returned through id/id_len.
 */
static bool path_matches(const char *pattern, const char *path, const char **id, size_t *id_len)
{
	const char *p = pattern, *q = path;

	if (*p != '/' || *q != '/')
		return false;
	if (!strcmp(pattern, "/"))
		return !strcmp(path, "/");
	while (*p == '/' && *q == '/') {
		size_t pn, qn;

		p++;
		q++;
		pn = strcspn(p, "/");
		qn = strcspn(q, "/");
		if (pn == 1 && *p == '*') {
			*id = q;
			*id_len = qn;
		} else if (pn != qn || memcmp(p, q, pn)) {
			return false;
		}
		p += pn;
		q += qn;
	}
	return !*p && !*q;
}

/* The methods of the routes with `pattern`, "GET, PUT, PATCH", for 405's Allow header. */
static void allow_for(const char *pattern, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(routes) && len < size; i++)
		if (!strcmp(routes[i].pattern, pattern))
			len += snprintf(buf + len, size - len, "%s%s", len ? ", " : "", routes[i].method);
}

/* The body as a JSON object, or an error answer. */
static json_t *parse_body(const char *body, size_t len, struct api_response *resp)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		char text[JSON_ERROR_TEXT_LENGTH];

		shown(jerr.text, strlen(jerr.text), text, sizeof(text));
		api_response_error(resp, 400, "malformed JSON body: line %d, column %d: %s", jerr.line, jerr.column, text);
		return NULL;
	}
	if (!json_is_object(root)) {
		api_response_error(resp, 400, "body: expected a JSON object, got %s",
				   json_is_array(root) ? "an array" : json_is_string(root) ? "a string" :
				   json_is_null(root) ? "null" : json_is_boolean(root) ? "a boolean" : "a number");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* A field parse failed: -ENOMEM is the VMM's trouble, anything else the request's. */
static int parse_failed(struct api_response *resp, int ret, const char *err)
{
	api_response_error(resp, ret == -ENOMEM ? 500 : 400, "%s", err);
	return -EINVAL;
}

static int route_no_body(struct route_call *c)
{
	c->req->op = c->r->op;
	return 0;
}

static int route_boot_source(struct route_call *c)
{
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_PUT_BOOT_SOURCE;
	vm_config_init(&c->req->boot_source);
	ret = vm_config_parse_section(&c->req->boot_source, "boot-source", c->body, err, sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	/* The file may leave the kernel to --kernel; a PUT replaces the whole boot source (BootSourceConfig). */
	if (!c->req->boot_source.kernel_path) {
		api_response_error(c->resp, 400, "boot-source.kernel_image_path: missing (required)");
		return -EINVAL;
	}
	return 0;
}

static int route_machine_config(struct route_call *c)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} bits[] = {
		{ "vcpu_count", VM_MACHINE_VCPU_COUNT },
		{ "mem_size_mib", VM_MACHINE_MEM_SIZE_MIB },
		{ "smt", VM_MACHINE_SMT },
		{ "track_dirty_pages", VM_MACHINE_TRACK_DIRTY_PAGES },
	};
	struct ctl_machine_config *mc = &c->req->machine;
	bool patch = !strcmp(c->r->method, "PATCH");
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_PUT_MACHINE_CONFIG;
	mc->patch = patch;
	vm_config_init(&mc->values);
	if (patch && !json_object_size(c->body)) {
		api_response_error(c->resp, 400, "Empty PATCH request.");
		return -EINVAL;
	}
	ret = vm_config_parse_section(&mc->values, "machine-config", c->body, err, sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	if (!patch) {
		/* Firecracker's MachineConfig: both sizes required, the rest back to their defaults. */
		for (size_t i = 0; i < 2; i++) {
			if (!json_object_get(c->body, bits[i].name)) {
				api_response_error(c->resp, 400, "machine-config.%s: missing (required)", bits[i].name);
				return -EINVAL;
			}
		}
		mc->set = VM_MACHINE_ALL;
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(bits); i++)
			if (json_object_get(c->body, bits[i].name))
				mc->set |= bits[i].bit;
	}
	if (json_object_get(c->body, "cpu_template"))
		c->req->deprecation = patch ? "PATCH /machine-config: cpu_template field is deprecated."
					 : "PUT /machine-config: cpu_template field is deprecated.";
	return 0;
}

/* Firecracker's rule: the id in the body is the id in the path. */
static int id_mismatch(struct route_call *c, const char *body_id)
{
	char a[80], b[80];

	if (!strcmp(c->id, body_id))
		return 0;
	shown(body_id, strlen(body_id), b, sizeof(b));
	shown(c->id, strlen(c->id), a, sizeof(a));
	api_response_error(c->resp, 400, "%s: \"%s\" does not match the id in the path, \"%s\"", c->r->id_field, b, a);
	return -EINVAL;
}

static int route_drive(struct route_call *c)
{
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_PUT_DRIVE;
	ret = vm_drive_config_parse(&c->req->drive, "", c->body, err, sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	return id_mismatch(c, c->req->drive.drive_id);
}

static int route_net(struct route_call *c)
{
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_PUT_NET;
	ret = vm_net_config_parse(&c->req->net, "", c->body, err, sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	return id_mismatch(c, c->req->net.iface_id);
}

/* EntropyDeviceConfig: checked by the config file's "entropy" section, the request itself carries nothing. */
static int route_entropy(struct route_call *c)
{
	struct vm_config cfg;
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_PUT_ENTROPY;
	vm_config_init(&cfg);
	ret = vm_config_parse_section(&cfg, "entropy", c->body, err, sizeof(err));
	vm_config_free(&cfg);
	return ret ? parse_failed(c->resp, ret, err) : 0;
}

/* InstanceActionInfo. */
struct action_body {
	unsigned int action_type;
};

static const char *const action_types[] = { "FlushMetrics", "InstanceStart", "SendCtrlAltDel", NULL };

static const struct json_field action_fields[] = {
	{ .name = "action_type", .kind = JSON_FIELD_ENUM, .required = true, .values = action_types,
	  .offset = offsetof(struct action_body, action_type) },
};

static int route_actions(struct route_call *c)
{
	static const enum ctl_op ops[] = { CTL_OP_FLUSH_METRICS, CTL_OP_INSTANCE_START, CTL_OP_SEND_CTRL_ALT_DEL };
	struct action_body a = { 0 };
	char err[API_ERR_SIZE];
	int ret;

	ret = json_fields_parse("", action_fields, ARRAY_SIZE(action_fields), c->body, &a, sizeof(a), err, sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	c->req->op = ops[a.action_type];
	return 0;
}

/* Vm. */
struct vm_state_body {
	unsigned int state;
};

static const char *const vm_states[] = { "Paused", "Resumed", NULL };

static const struct json_field vm_state_fields[] = {
	{ .name = "state", .kind = JSON_FIELD_ENUM, .required = true, .values = vm_states,
	  .offset = offsetof(struct vm_state_body, state) },
};

static int route_vm_state(struct route_call *c)
{
	struct vm_state_body s = { 0 };
	char err[API_ERR_SIZE];
	int ret;

	ret = json_fields_parse("", vm_state_fields, ARRAY_SIZE(vm_state_fields), c->body, &s, sizeof(s), err,
				  sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);
	c->req->op = s.state == 0 ? CTL_OP_PAUSE : CTL_OP_RESUME;
	return 0;
}

/* SnapshotCreateParams. */
static const char *const snapshot_types[] = { "Full", "Diff", NULL };

static const struct json_field snapshot_create_fields[] = {
	{ .name = "snapshot_type", .kind = JSON_FIELD_ENUM, .values = snapshot_types,
	  .offset = offsetof(struct ctl_snapshot_create, snapshot_type) },
	{ .name = "snapshot_path", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct ctl_snapshot_create, snapshot_path) },
	{ .name = "mem_file_path", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct ctl_snapshot_create, mem_file_path) },
};

static int route_snapshot_create(struct route_call *c)
{
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_SNAPSHOT_CREATE;
	ret = json_fields_parse("", snapshot_create_fields, ARRAY_SIZE(snapshot_create_fields), c->body,
				  &c->req->snapshot_create, sizeof(c->req->snapshot_create), err, sizeof(err));
	return ret ? parse_failed(c->resp, ret, err) : 0;
}

/* SnapshotLoadParams, before mem_backend and mem_file_path become one. */
struct snapshot_load_body {
	char *snapshot_path;
	char *mem_file_path;
	bool enable_diff_snapshots;
	bool track_dirty_pages;
	bool resume_vm;
	bool clock_realtime;
};

static const struct json_field snapshot_load_fields[] = {
	{ .name = "snapshot_path", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct snapshot_load_body, snapshot_path) },
	{ .name = "mem_backend", .kind = JSON_FIELD_OBJECT, .nullable = true },
	{ .name = "mem_file_path", .kind = JSON_FIELD_PATH, .nullable = true,
	  .offset = offsetof(struct snapshot_load_body, mem_file_path) },
	{ .name = "enable_diff_snapshots", .kind = JSON_FIELD_BOOL,
	  .offset = offsetof(struct snapshot_load_body, enable_diff_snapshots) },
	{ .name = "track_dirty_pages", .kind = JSON_FIELD_BOOL,
	  .offset = offsetof(struct snapshot_load_body, track_dirty_pages) },
	{ .name = "resume_vm", .kind = JSON_FIELD_BOOL, .offset = offsetof(struct snapshot_load_body, resume_vm) },
	{ .name = "network_overrides", .kind = JSON_FIELD_LATER },
	{ .name = "vsock_override", .kind = JSON_FIELD_LATER, .nullable = true },
	{ .name = "clock_realtime", .kind = JSON_FIELD_BOOL,
	  .offset = offsetof(struct snapshot_load_body, clock_realtime) },
	{ .name = "disk_overrides", .kind = JSON_FIELD_ARRAY, .nullable = true }, /* kiln */
	{ .name = "disk_copies", .kind = JSON_FIELD_ARRAY, .nullable = true },    /* kiln */
};

/* kiln's DiskOverride. */
struct disk_override_body {
	char *drive_id;
	char *path_on_host;
};

static const struct json_field disk_override_fields[] = {
	{ .name = "drive_id", .kind = JSON_FIELD_ID, .required = true,
	  .offset = offsetof(struct disk_override_body, drive_id) },
	{ .name = "path_on_host", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct disk_override_body, path_on_host) },
};

static void ctl_disk_options_free(struct ctl_disk_options *d)
{
	for (unsigned int i = 0; i < d->nr_overrides; i++)
		free(d->overrides[i]);
	for (unsigned int i = 0; i < d->nr_copies; i++)
		free(d->copies[i]);
	memset(d, 0, sizeof(*d));
}

/* The body's "disk_overrides" and "disk_copies" (their types already checked: arrays or null). */
static int parse_disk_options(struct route_call *c, struct ctl_disk_options *out)
{
	json_t *overrides = json_object_get(c->body, "disk_overrides");
	json_t *copies = json_object_get(c->body, "disk_copies");
	char err[API_ERR_SIZE], where[48];
	json_t *v;
	size_t i;
	int ret = 0;

	if (json_array_size(overrides) > CTL_MAX_DISK_OPTIONS || json_array_size(copies) > CTL_MAX_DISK_OPTIONS) {
		api_response_error(c->resp, 400, "%s: at most %d entries",
				   json_array_size(copies) > CTL_MAX_DISK_OPTIONS ? "disk_copies" : "disk_overrides",
				   CTL_MAX_DISK_OPTIONS);
		return -EINVAL;
	}
	json_array_foreach(overrides, i, v) {
		struct disk_override_body b = { 0 };

		snprintf(where, sizeof(where), "disk_overrides[%zu]", i);
		ret = json_fields_parse(where, disk_override_fields, ARRAY_SIZE(disk_override_fields), v, &b, sizeof(b),
					  err, sizeof(err));
		if (!ret && asprintf(&out->overrides[out->nr_overrides], "%s=%s", b.drive_id, b.path_on_host) < 0)
			ret = -ENOMEM;
		out->nr_overrides += !ret;
		json_fields_free(disk_override_fields, ARRAY_SIZE(disk_override_fields), &b);
		if (ret)
			break;
	}
	json_array_foreach(copies, i, v) {
		if (ret)
			break;
		if (!json_is_string(v) || !config_id_valid(json_string_value(v))) {
			snprintf(err, sizeof(err), "disk_copies[%zu]: expected a drive id (1 to %d letters, digits or '_')",
				 i, CONFIG_MAX_ID);
			ret = -EINVAL;
		} else if (!(out->copies[out->nr_copies++] = strdup(json_string_value(v)))) {
			ret = -ENOMEM;
		}
	}
	if (ret) {
		ctl_disk_options_free(out);
		return parse_failed(c->resp, ret, ret == -ENOMEM ? "out of memory" : err);
	}
	return 0;
}

/* MemoryBackend. */
static const char *const mem_backend_types[] = { "File", NULL };
static const char *const mem_backend_types_later[] = { "Uffd", NULL };

static const struct json_field mem_backend_fields[] = {
	{ .name = "backend_type", .kind = JSON_FIELD_ENUM, .required = true, .values = mem_backend_types,
	  .later = mem_backend_types_later, .offset = offsetof(struct ctl_snapshot_load, mem_backend_type) },
	{ .name = "backend_path", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct ctl_snapshot_load, mem_backend_path) },
};

static int route_snapshot_load(struct route_call *c)
{
	struct ctl_snapshot_load *load = &c->req->snapshot_load;
	struct snapshot_load_body b = { 0 };
	char err[API_ERR_SIZE];
	json_t *backend;
	int ret;

	c->req->op = CTL_OP_SNAPSHOT_LOAD;
	ret = json_fields_parse("", snapshot_load_fields, ARRAY_SIZE(snapshot_load_fields), c->body, &b, sizeof(b), err,
				  sizeof(err));
	if (ret)
		return parse_failed(c->resp, ret, err);

	backend = json_object_get(c->body, "mem_backend");
	if (json_is_null(backend))
		backend = NULL;
	if (backend && b.mem_file_path) {
		api_response_error(c->resp, 400, "mem_backend, mem_file_path: give one of them, not both");
		ret = -EINVAL;
		goto out;
	}
	if (!backend && !b.mem_file_path) {
		api_response_error(c->resp, 400, "mem_backend: missing (required, or the deprecated mem_file_path)");
		ret = -EINVAL;
		goto out;
	}
	if (backend) {
		ret = json_fields_parse("mem_backend", mem_backend_fields, ARRAY_SIZE(mem_backend_fields), backend,
					  load, sizeof(*load), err, sizeof(err));
		if (ret) {
			ret = parse_failed(c->resp, ret, err);
			goto out;
		}
	} else {
		load->mem_backend_type = CTL_MEM_BACKEND_FILE;
		load->mem_backend_path = b.mem_file_path;
		b.mem_file_path = NULL;
		c->req->deprecation = "PUT /snapshot/load: mem_file_path field is deprecated.";
	}
	if (json_object_get(c->body, "enable_diff_snapshots") && !c->req->deprecation)
		c->req->deprecation = "PUT /snapshot/load: enable_diff_snapshots field is deprecated.";
	load->snapshot_path = b.snapshot_path;
	b.snapshot_path = NULL;
	load->track_dirty_pages = b.track_dirty_pages || b.enable_diff_snapshots;
	load->resume_vm = b.resume_vm;
	load->clock_realtime = b.clock_realtime;
	ret = parse_disk_options(c, &load->disks);
out:
	json_fields_free(snapshot_load_fields, ARRAY_SIZE(snapshot_load_fields), &b);
	return ret;
}

/* kiln's VmClone. */
static const struct json_field vm_clone_fields[] = {
	{ .name = "clone_id", .kind = JSON_FIELD_INSTANCE_ID, .required = true,
	  .offset = offsetof(struct ctl_vm_clone, clone_id) },
	{ .name = "api_socket", .kind = JSON_FIELD_PATH, .required = true,
	  .offset = offsetof(struct ctl_vm_clone, api_socket) },
	{ .name = "resume_vm", .kind = JSON_FIELD_BOOL, .offset = offsetof(struct ctl_vm_clone, resume_vm) },
	{ .name = "disk_overrides", .kind = JSON_FIELD_ARRAY, .nullable = true },
	{ .name = "disk_copies", .kind = JSON_FIELD_ARRAY, .nullable = true },
};

static int route_vm_clone(struct route_call *c)
{
	char err[API_ERR_SIZE];
	int ret;

	c->req->op = CTL_OP_VM_CLONE;
	ret = json_fields_parse("", vm_clone_fields, ARRAY_SIZE(vm_clone_fields), c->body, &c->req->clone,
				  sizeof(c->req->clone), err, sizeof(err));
	return ret ? parse_failed(c->resp, ret, err) : parse_disk_options(c, &c->req->clone.disks);
}

void api_request_free(struct ctl_request *req)
{
	switch (req->op) {
	case CTL_OP_PUT_BOOT_SOURCE:
		vm_config_free(&req->boot_source);
		break;
	case CTL_OP_PUT_MACHINE_CONFIG:
		vm_config_free(&req->machine.values);
		break;
	case CTL_OP_PUT_DRIVE:
		vm_drive_config_free(&req->drive);
		break;
	case CTL_OP_PUT_NET:
		vm_net_config_free(&req->net);
		break;
	case CTL_OP_SNAPSHOT_CREATE:
		json_fields_free(snapshot_create_fields, ARRAY_SIZE(snapshot_create_fields), &req->snapshot_create);
		break;
	case CTL_OP_SNAPSHOT_LOAD:
		free(req->snapshot_load.snapshot_path);
		free(req->snapshot_load.mem_backend_path);
		ctl_disk_options_free(&req->snapshot_load.disks);
		break;
	case CTL_OP_VM_CLONE:
		json_fields_free(vm_clone_fields, ARRAY_SIZE(vm_clone_fields), &req->clone);
		ctl_disk_options_free(&req->clone.disks);
		break;
	default:
		break;
	}
	memset(req, 0, sizeof(*req));
}

int api_parse_request(const char *method, const char *path, const char *body, size_t len, struct ctl_request *req,
		      struct api_response *resp)
{
	struct route_call c = { .req = req, .resp = resp };
	const struct route *r = NULL, *any = NULL;
	char m[80], p[80], idbuf[CONFIG_MAX_ID + 1];
	const char *id = NULL;
	size_t id_len = 0;
	json_t *root;
	int ret;

	memset(req, 0, sizeof(*req));
	memset(resp, 0, sizeof(*resp));
	shown(method, strlen(method), m, sizeof(m));
	shown(path, strlen(path), p, sizeof(p));

	/* Before anything else: the server stops reading at the limit and `body` holds nothing useful. */
	if (len > API_MAX_BODY) {
		api_response_error(resp, 400, "%s %s: a body of %zu bytes is larger than the limit of %d bytes", m, p,
				   len, API_MAX_BODY);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const char *rid = NULL;
		size_t rid_len = 0;

		if (!path_matches(routes[i].pattern, path, &rid, &rid_len))
			continue;
		any = &routes[i];
		if (!strcmp(routes[i].method, method)) {
			r = &routes[i];
			id = rid;
			id_len = rid_len;
			break;
		}
	}
	if (!any) {
		api_response_error(resp, 404, "%s %s: no such resource", m, p);
		return -EINVAL;
	}
	if (!r) {
		allow_for(any->pattern, resp->allow, sizeof(resp->allow));
		api_response_error(resp, 405, "%s %s: method not allowed (allowed: %s)", m, p, resp->allow);
		return -EINVAL;
	}
	if (!r->parse) {
		api_response_error(resp, 400, "%s %s: not supported yet", m, p);
		return -EINVAL;
	}
	c.r = r;
	if (id) {
		if (id_len == 0) {
			api_response_error(resp, 400, "%s %s: the id in the path is empty", m, p);
			return -EINVAL;
		}
		if (id_len <= CONFIG_MAX_ID) {
			memcpy(idbuf, id, id_len);
			idbuf[id_len] = '\0';
		}
		if (id_len > CONFIG_MAX_ID || !config_id_valid(idbuf)) {
			api_response_error(resp, 400, "%s %s: the id in the path must be 1..%d letters, digits or '_'", m,
					   p, CONFIG_MAX_ID);
			return -EINVAL;
		}
		c.id = idbuf;
	}

	/* Firecracker's rules (parsed_request.rs, method_to_error): GETs have no body, PUT and PATCH one. */
	if (!strcmp(method, "GET")) {
		if (len) {
			api_response_error(resp, 400, "GET request cannot have a body.");
			return -EINVAL;
		}
		return r->parse(&c);
	}
	if (!len) {
		api_response_error(resp, 400, "Empty %s request.", method);
		return -EINVAL;
	}
	root = parse_body(body, len, resp);
	if (!root)
		return -EINVAL;
	c.body = root;
	ret = r->parse(&c);
	json_decref(root);
	if (ret) {
		api_request_free(req);
		return -EINVAL;
	}
	return 0;
}

static unsigned int status_for_errno(int ret)
{
	switch (-ret) {
	case EINVAL:
	case EBUSY:
	case EOPNOTSUPP:
	case ENOENT:
	case EEXIST:
	case EACCES:
	case EPERM:
	case EISDIR:
	case ENOTDIR:
	case ENAMETOOLONG:
		return 400;
	default:
		return 500;
	}
}

/* The answer to a backend call: 204, or its error with its message (strerror when it gave none). */
static void backend_result(struct api_response *resp, int ret, char *err)
{
	if (!ret) {
		resp->status = 204;
		return;
	}
	if (ret > 0)
		ret = -EIO; /* not the convention: the VMM's fault */
	if (!err[0])
		snprintf(err, API_ERR_SIZE, "%s", strerror(-ret));
	set_fault(resp, status_for_errno(ret), err);
}

/* 200 with `obj` (consumed) as the body. */
static void json_answer(struct api_response *resp, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (!text) {
		api_response_error(resp, 500, "out of memory");
		return;
	}
	free(resp->body);
	resp->body = text;
	resp->status = 200;
}

/* GET /vm/config or, with `machine_only`, its "machine-config" section (GET /machine-config). */
static void get_config(const struct ctl_reply *reply, bool machine_only, struct api_response *resp)
{
	json_t *root, *section;

	root = json_loads(reply->config_json, 0, NULL);
	if (!root) {
		api_response_error(resp, 500, "the VM's configuration is not valid JSON");
		return;
	}
	if (!machine_only) {
		json_answer(resp, root);
		return;
	}
	section = json_object_get(root, "machine-config");
	json_incref(section);
	json_decref(root);
	if (!section) {
		api_response_error(resp, 500, "the VM's configuration has no machine-config");
		return;
	}
	json_answer(resp, section);
}

static void get_info(const struct ctl_info *info, struct api_response *resp)
{
	json_answer(resp, json_pack("{s:s, s:s, s:s, s:s}", "id", info->id, "state", api_vm_state_name(info->state),
				    "vmm_version", KILN_VERSION, "app_name", API_APP_NAME));
}

/* GET /vcpus (kiln): [{"index": 0, "tid": 1234}, ...]; a thread not started yet has "tid": null. */
static void get_vcpus(const struct ctl_reply *reply, struct api_response *resp)
{
	json_t *list = json_array();

	for (unsigned int i = 0; list && i < reply->nr_vcpus && i < CONFIG_MAX_VCPUS; i++) {
		const struct ctl_vcpu *v = &reply->vcpus[i];

		if (json_array_append_new(list, json_pack("{s:i, s:o}", "index", (int)v->index, "tid",
							  v->tid > 0 ? json_integer(v->tid) : json_null()))) {
			json_decref(list);
			list = NULL;
		}
	}
	json_answer(resp, list);
}

void api_dispatch(ctl_handler_fn handle, void *ctx, const struct ctl_request *req, struct api_response *resp)
{
	struct ctl_reply reply = { .clone_pid = -1 };
	char err[API_ERR_SIZE] = "";
	int ret;

	memset(resp, 0, sizeof(*resp));
	resp->deprecation = req->deprecation;
	if (req->op == CTL_OP_GET_VERSION) {
		json_answer(resp, json_pack("{s:s, s:s}", "firecracker_version", API_FIRECRACKER_VERSION, "kiln_version",
					    KILN_VERSION));
		return;
	}
	/* GET /'s defaults: Firecracker's id, not started (a backend that does not say otherwise). */
	snprintf(reply.info.id, sizeof(reply.info.id), "anonymous-instance");
	reply.info.state = CTL_VM_NOT_STARTED;
	ret = handle ? handle(ctx, req, &reply, err, sizeof(err)) : ctl_not_supported(req->op, err, sizeof(err));
	reply.info.id[sizeof(reply.info.id) - 1] = '\0';

	switch (req->op) {
	case CTL_OP_GET_INFO:
		get_info(&reply.info, resp); /* cannot fail: the defaults stand */
		break;
	case CTL_OP_GET_VM_CONFIG:
	case CTL_OP_GET_MACHINE_CONFIG:
		if (!ret && !reply.config_json)
			ret = -EIO;
		if (ret == -EOPNOTSUPP)
			backend_result(resp, ret, err);
		else if (ret)
			api_response_error(resp, 500, "cannot read the VM's configuration: %s",
					   err[0] ? err : strerror(-ret));
		else
			get_config(&reply, req->op == CTL_OP_GET_MACHINE_CONFIG, resp);
		break;
	case CTL_OP_GET_VCPUS:
		if (ret)
			backend_result(resp, ret, err);
		else
			get_vcpus(&reply, resp);
		break;
	case CTL_OP_VM_CLONE:
		if (ret)
			backend_result(resp, ret, err);
		else
			json_answer(resp, json_pack("{s:s, s:i, s:s}", "id", req->clone.clone_id, "pid",
						    reply.clone_pid, "api_socket", req->clone.api_socket));
		break;
	default:
		backend_result(resp, ret, err);
		break;
	}
	ctl_reply_free(&reply);
}

void api_handle(ctl_handler_fn handle, void *ctx, const char *method, const char *path, const char *body, size_t len,
		struct api_response *resp)
{
	struct ctl_request req;

	if (api_parse_request(method, path, body, len, &req, resp))
		return;
	api_dispatch(handle, ctx, &req, resp);
	api_request_free(&req);
}
