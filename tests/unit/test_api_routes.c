// SPDX-License-Identifier: MIT
/*
 * Unit tests for src/api/routes.c: every endpoint's typed request, every rejection with its exact status
 * and fault message, and the mapping of backend results to statuses. No sockets: the HTTP server only
 * moves bytes into api_handle().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/routes.h"
#include "vmm/config.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

/* A backend that records the calls it gets and answers what the test sets. */
struct rec {
	int calls;
	const char *last;          /* the op last called */
	int ret;                   /* what every op returns */
	const char *msg;           /* and the message it writes (NULL: none) */
	struct ctl_info info;
	struct vm_config cfg;      /* for get_config_json */
};

static int record(void *ctx, const char *op, char *err, size_t err_size)
{
	struct rec *r = ctx;

	r->calls++;
	r->last = op;
	if (r->msg)
		snprintf(err, err_size, "%s", r->msg);
	return r->ret;
}

static void rec_get_info(void *ctx, struct ctl_info *out)
{
	struct rec *r = ctx;

	r->calls++;
	r->last = "get_info";
	*out = r->info;
}

static char *rec_get_config_json(void *ctx)
{
	struct rec *r = ctx;

	r->calls++;
	r->last = "get_config_json";
	if (r->ret) {
		errno = -r->ret;
		return NULL;
	}
	return vm_config_to_json(&r->cfg);
}

static int rec_put_boot_source(void *ctx, const struct vm_config *boot, char *err, size_t err_size)
{
	assert_non_null(boot->kernel_path);
	return record(ctx, "put_boot_source", err, err_size);
}

static int rec_put_machine_config(void *ctx, const struct ctl_machine_config *mc, char *err, size_t err_size)
{
	return record(ctx, mc->patch ? "patch_machine_config" : "put_machine_config", err, err_size);
}

static int rec_put_drive(void *ctx, const struct vm_drive_config *drive, char *err, size_t err_size)
{
	assert_non_null(drive->drive_id);
	return record(ctx, "put_drive", err, err_size);
}

static int rec_put_net(void *ctx, const struct vm_net_config *net, char *err, size_t err_size)
{
	assert_non_null(net->iface_id);
	return record(ctx, "put_net", err, err_size);
}

static int rec_put_entropy(void *ctx, char *err, size_t err_size)
{
	return record(ctx, "put_entropy", err, err_size);
}

static int rec_instance_start(void *ctx, char *err, size_t err_size)
{
	return record(ctx, "instance_start", err, err_size);
}

static int rec_send_ctrl_alt_del(void *ctx, char *err, size_t err_size)
{
	return record(ctx, "send_ctrl_alt_del", err, err_size);
}

static int rec_pause(void *ctx, char *err, size_t err_size)
{
	return record(ctx, "pause", err, err_size);
}

static int rec_resume(void *ctx, char *err, size_t err_size)
{
	return record(ctx, "resume", err, err_size);
}

static int rec_snapshot_create(void *ctx, const struct ctl_snapshot_create *req, char *err, size_t err_size)
{
	assert_non_null(req->snapshot_path);
	return record(ctx, "snapshot_create", err, err_size);
}

static int rec_snapshot_load(void *ctx, const struct ctl_snapshot_load *req, char *err, size_t err_size)
{
	assert_non_null(req->mem_backend_path);
	return record(ctx, "snapshot_load", err, err_size);
}

static int rec_clone_vm(void *ctx, const struct ctl_vm_clone *req, int *pid, char *err, size_t err_size)
{
	assert_non_null(req->api_socket);
	*pid = 4242;
	return record(ctx, "clone_vm", err, err_size);
}

/* The recorder as a control handler: every op but flush_metrics, which kiln does not have yet. */
static int rec_handle(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err, size_t err_size)
{
	switch (req->op) {
	case CTL_OP_GET_INFO:
		rec_get_info(ctx, &reply->info);
		return 0;
	case CTL_OP_GET_VM_CONFIG:
	case CTL_OP_GET_MACHINE_CONFIG:
		reply->config_json = rec_get_config_json(ctx);
		return reply->config_json ? 0 : -errno;
	case CTL_OP_GET_VCPUS:
		reply->nr_vcpus = 2;
		reply->vcpus[0] = (struct ctl_vcpu){ .index = 0, .tid = 101 };
		reply->vcpus[1] = (struct ctl_vcpu){ .index = 1, .tid = 0 };
		return record(ctx, "get_vcpus", err, err_size);
	case CTL_OP_PUT_BOOT_SOURCE:
		return rec_put_boot_source(ctx, &req->boot_source, err, err_size);
	case CTL_OP_PUT_MACHINE_CONFIG:
		return rec_put_machine_config(ctx, &req->machine, err, err_size);
	case CTL_OP_PUT_DRIVE:
		return rec_put_drive(ctx, &req->drive, err, err_size);
	case CTL_OP_PUT_NET:
		return rec_put_net(ctx, &req->net, err, err_size);
	case CTL_OP_PUT_ENTROPY:
		return rec_put_entropy(ctx, err, err_size);
	case CTL_OP_INSTANCE_START:
		return rec_instance_start(ctx, err, err_size);
	case CTL_OP_SEND_CTRL_ALT_DEL:
		return rec_send_ctrl_alt_del(ctx, err, err_size);
	case CTL_OP_PAUSE:
		return rec_pause(ctx, err, err_size);
	case CTL_OP_RESUME:
		return rec_resume(ctx, err, err_size);
	case CTL_OP_SNAPSHOT_CREATE:
		return rec_snapshot_create(ctx, &req->snapshot_create, err, err_size);
	case CTL_OP_SNAPSHOT_LOAD:
		return rec_snapshot_load(ctx, &req->snapshot_load, err, err_size);
	case CTL_OP_VM_CLONE:
		return rec_clone_vm(ctx, &req->clone, &reply->clone_pid, err, err_size);
	default:
		return ctl_not_supported(req->op, err, err_size);
	}
}

static int rec_setup(void **state)
{
	struct rec *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	vm_config_init(&r->cfg);
	snprintf(r->info.id, sizeof(r->info.id), "vm-1");
	r->info.state = CTL_VM_RUNNING;
	*state = r;
	return 0;
}

static int rec_teardown(void **state)
{
	struct rec *r = *state;

	vm_config_free(&r->cfg);
	free(r);
	return 0;
}

/* {"fault_message": msg} as the API writes it. */
static char *fault_json(const char *msg)
{
	json_t *obj = json_pack("{s:s}", "fault_message", msg);
	char *text = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	assert_non_null(text);
	return text;
}

/* One request through api_handle; the answer must be `status` with exactly `want_body` (NULL: none). */
static void expect(struct rec *r, const char *method, const char *path, const char *body, unsigned int status,
		   const char *want_body)
{
	struct api_response resp;

	api_handle(rec_handle, r, method, path, body, body ? strlen(body) : 0, &resp);
	if (resp.status != status || (want_body ? !resp.body || strcmp(resp.body, want_body) : resp.body != NULL))
		fail_msg("%s %s %s\n  got  %u %s\n  want %u %s", method, path, body ? body : "", resp.status,
			 resp.body ? resp.body : "(no body)", status, want_body ? want_body : "(no body)");
	api_response_free(&resp);
}

/* A request the backend must carry out: 204, and `op` called once. */
static void accepted(struct rec *r, const char *method, const char *path, const char *body, const char *op)
{
	int calls = r->calls;

	expect(r, method, path, body, 204, NULL);
	assert_int_equal(r->calls, calls + 1);
	assert_string_equal(r->last, op);
}

/* A request refused before the backend: `status` and exactly {"fault_message": want}. */
static void rejects(struct rec *r, const char *method, const char *path, const char *body, unsigned int status,
		    const char *want)
{
	char *json = fault_json(want);
	int calls = r->calls;

	expect(r, method, path, body, status, json);
	free(json);
	if (r->calls != calls)
		fail_msg("%s %s %s: the backend was called (%s)", method, path, body ? body : "", r->last);
}

/* Like rejects, but `want` need only start the message (jansson's own wording follows). */
static void rejects_prefix(struct rec *r, const char *method, const char *path, const char *body, unsigned int status,
			   const char *want)
{
	struct api_response resp;
	json_t *obj;
	const char *msg;
	int calls = r->calls;

	api_handle(rec_handle, r, method, path, body, strlen(body), &resp);
	assert_int_equal(resp.status, status);
	assert_non_null(resp.body);
	obj = json_loads(resp.body, 0, NULL);
	assert_non_null(obj);
	msg = json_string_value(json_object_get(obj, "fault_message"));
	assert_non_null(msg);
	if (strncmp(msg, want, strlen(want)))
		fail_msg("%s %s %s\n  got  \"%s\"\n  want prefix \"%s\"", method, path, body, msg, want);
	json_decref(obj);
	api_response_free(&resp);
	assert_int_equal(r->calls, calls);
}

/* Parse only; the request must be accepted. */
static void parse_ok(const char *method, const char *path, const char *body, struct ctl_request *req)
{
	struct api_response resp;

	if (api_parse_request(method, path, body, body ? strlen(body) : 0, req, &resp))
		fail_msg("%s %s %s: %u %s", method, path, body ? body : "", resp.status, resp.body);
	api_response_free(&resp);
}

static void test_get_info(void **state)
{
	struct rec *r = *state;
	struct api_response resp;

	expect(r, "GET", "/", NULL, 200,
	       "{\"id\":\"vm-1\",\"state\":\"Running\",\"vmm_version\":\"" KILN_VERSION "\",\"app_name\":\"kiln\"}");
	r->info.state = CTL_VM_PAUSED;
	expect(r, "GET", "/", NULL, 200,
	       "{\"id\":\"vm-1\",\"state\":\"Paused\",\"vmm_version\":\"" KILN_VERSION "\",\"app_name\":\"kiln\"}");
	r->info.state = CTL_VM_NOT_STARTED;
	expect(r, "GET", "/", NULL, 200,
	       "{\"id\":\"vm-1\",\"state\":\"Not started\",\"vmm_version\":\"" KILN_VERSION "\",\"app_name\":\"kiln\"}");

	/* Without a handler: Firecracker's default id, not started. */
	api_handle(NULL, NULL, "GET", "/", NULL, 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{\"id\":\"anonymous-instance\",\"state\":\"Not started\",\"vmm_version\":\""
				       KILN_VERSION "\",\"app_name\":\"kiln\"}");
	api_response_free(&resp);
}

/* GET /vcpus (kiln): the backend's list as JSON, a thread not started yet with a null tid. */
static void test_get_vcpus(void **state)
{
	struct rec *r = *state;

	expect(r, "GET", "/vcpus", NULL, 200, "[{\"index\":0,\"tid\":101},{\"index\":1,\"tid\":null}]");
	assert_string_equal(r->last, "get_vcpus");
	r->ret = -EBUSY;
	r->msg = "The requested operation is not supported before starting the microVM.";
	expect(r, "GET", "/vcpus", NULL, 400,
	       "{\"fault_message\":\"The requested operation is not supported before starting the microVM.\"}");
	r->ret = 0;
	r->msg = NULL;
	rejects(r, "GET", "/vcpus", "{}", 400, "GET request cannot have a body.");
	rejects(r, "PUT", "/vcpus", "{}", 405, "PUT /vcpus: method not allowed (allowed: GET)");
}

static void test_get_version(void **state)
{
	expect(*state, "GET", "/version", NULL, 200,
	       "{\"firecracker_version\":\"1.17.0\",\"kiln_version\":\"" KILN_VERSION "\"}");
}

static void test_get_config(void **state)
{
	struct rec *r = *state;
	json_t *want;
	char *text, *want_text;

	r->cfg.kernel_path = strdup("/boot/vmlinux");
	r->cfg.vcpus = 2;
	r->cfg.mem_mib = 512;

	/* GET /vm/config: vm_config_to_json, compact. */
	text = vm_config_to_json(&r->cfg);
	want = json_loads(text, 0, NULL);
	want_text = json_dumps(want, JSON_COMPACT);
	expect(r, "GET", "/vm/config", NULL, 200, want_text);
	free(want_text);
	free(text);

	/* GET /machine-config: its machine-config object (Firecracker's MachineConfiguration). */
	json_decref(want);
	expect(r, "GET", "/machine-config", NULL, 200,
	       "{\"vcpu_count\":2,\"mem_size_mib\":512,\"smt\":false,\"track_dirty_pages\":false,\"huge_pages\":\"None\"}");
	assert_string_equal(r->last, "get_config_json");

	/* The backend cannot produce it: 500. */
	r->ret = -ENOMEM;
	text = fault_json("cannot read the VM's configuration: Cannot allocate memory");
	expect(r, "GET", "/vm/config", NULL, 500, text);
	free(text);
	r->ret = 0;
}

static void test_put_boot_source(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	parse_ok("PUT", "/boot-source",
		 "{\"kernel_image_path\": \"/boot/vmlinux\", \"initrd_path\": \"/boot/initrd\","
		 " \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"}",
		 &req);
	assert_int_equal(req.op, CTL_OP_PUT_BOOT_SOURCE);
	assert_string_equal(req.boot_source.kernel_path, "/boot/vmlinux");
	assert_string_equal(req.boot_source.initrd_path, "/boot/initrd");
	assert_string_equal(req.boot_source.cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
	assert_null(req.deprecation);
	api_request_free(&req);

	/* A PUT replaces the whole boot source: what is absent is unset. */
	parse_ok("PUT", "/boot-source", "{\"kernel_image_path\": \"vmlinux.bin\"}", &req);
	assert_string_equal(req.boot_source.kernel_path, "vmlinux.bin");
	assert_null(req.boot_source.initrd_path);
	assert_null(req.boot_source.cmdline);
	api_request_free(&req);

	accepted(r, "PUT", "/boot-source", "{\"kernel_image_path\": \"k\", \"initrd_path\": null, \"boot_args\": null}",
		 "put_boot_source");
}

static void test_machine_config(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	/* PUT: every field; the optional ones absent go back to Firecracker's defaults. */
	parse_ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 1024}", &req);
	assert_int_equal(req.op, CTL_OP_PUT_MACHINE_CONFIG);
	assert_false(req.machine.patch);
	assert_int_equal(req.machine.set, VM_MACHINE_ALL);
	assert_int_equal(req.machine.values.vcpus, 2);
	assert_int_equal(req.machine.values.mem_mib, 1024);
	assert_false(req.machine.values.smt);
	assert_false(req.machine.values.track_dirty_pages);
	assert_null(req.deprecation);
	api_request_free(&req);

	parse_ok("PUT", "/machine-config",
		 "{\"vcpu_count\": 4, \"mem_size_mib\": 256, \"smt\": true, \"track_dirty_pages\": true,"
		 " \"cpu_template\": \"None\", \"huge_pages\": \"None\"}",
		 &req);
	assert_int_equal(req.machine.values.vcpus, 4);
	assert_true(req.machine.values.smt);
	assert_true(req.machine.values.track_dirty_pages);
	assert_string_equal(req.deprecation, "PUT /machine-config: cpu_template field is deprecated.");
	api_request_free(&req);

	/* PATCH: only the fields given. */
	parse_ok("PATCH", "/machine-config", "{\"mem_size_mib\": 2048}", &req);
	assert_true(req.machine.patch);
	assert_int_equal(req.machine.set, VM_MACHINE_MEM_SIZE_MIB);
	assert_int_equal(req.machine.values.mem_mib, 2048);
	api_request_free(&req);
	parse_ok("PATCH", "/machine-config", "{\"track_dirty_pages\": true, \"smt\": false}", &req);
	assert_int_equal(req.machine.set, VM_MACHINE_TRACK_DIRTY_PAGES | VM_MACHINE_SMT);
	api_request_free(&req);
	/* Only a no-op field: accepted, changes nothing (Firecracker's MachineConfigUpdate is not empty). */
	parse_ok("PATCH", "/machine-config", "{\"huge_pages\": \"None\"}", &req);
	assert_int_equal(req.machine.set, 0);
	api_request_free(&req);

	accepted(r, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", "put_machine_config");
	accepted(r, "PATCH", "/machine-config", "{\"vcpu_count\": 2}", "patch_machine_config");
}

static void test_machine_config_apply(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	struct ctl_request req;
	char err[API_ERR_SIZE];

	vm_config_init(&cfg);
	cfg.kernel_path = strdup("k");
	parse_ok("PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 256, \"track_dirty_pages\": true}", &req);
	assert_int_equal(vm_config_apply_machine(&cfg, &req.machine.values, req.machine.set, err, sizeof(err)),
			 0);
	api_request_free(&req);
	assert_int_equal(cfg.vcpus, 3);
	assert_int_equal(cfg.mem_mib, 256);
	assert_true(cfg.track_dirty_pages);
	assert_string_equal(cfg.kernel_path, "k");

	/* A PATCH that breaks the SMT rule together with the current config fails and changes nothing. */
	parse_ok("PATCH", "/machine-config", "{\"smt\": true}", &req);
	assert_int_equal(vm_config_apply_machine(&cfg, &req.machine.values, req.machine.set, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.vcpu_count: expected 1 or an even number when smt is true, got 3");
	api_request_free(&req);
	assert_false(cfg.smt);
	assert_int_equal(cfg.vcpus, 3);

	/* A PUT resets what it does not give. */
	parse_ok("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": true}", &req);
	assert_int_equal(vm_config_apply_machine(&cfg, &req.machine.values, req.machine.set, err, sizeof(err)),
			 0);
	api_request_free(&req);
	assert_true(cfg.smt);
	assert_false(cfg.track_dirty_pages);

	/* PATCH: the rest stays. */
	parse_ok("PATCH", "/machine-config", "{\"mem_size_mib\": 4096}", &req);
	assert_int_equal(vm_config_apply_machine(&cfg, &req.machine.values, req.machine.set, err, sizeof(err)),
			 0);
	api_request_free(&req);
	assert_int_equal(cfg.vcpus, 2);
	assert_true(cfg.smt);
	assert_int_equal(cfg.mem_mib, 4096);
	vm_config_free(&cfg);
}

static void test_boot_source_apply(void **state __attribute__((unused)))
{
	struct vm_config cfg, boot;

	vm_config_init(&cfg);
	cfg.kernel_path = strdup("old");
	cfg.initrd_path = strdup("old-initrd");
	cfg.console_path = strdup("/tmp/console.log");
	vm_config_init(&boot);
	boot.kernel_path = strdup("new");
	boot.cmdline = strdup("console=ttyS0");
	assert_int_equal(vm_config_apply_boot_source(&cfg, &boot), 0);
	assert_string_equal(cfg.kernel_path, "new");
	assert_null(cfg.initrd_path);
	assert_string_equal(cfg.cmdline, "console=ttyS0");
	assert_string_equal(cfg.console_path, "/tmp/console.log");
	vm_config_free(&boot);
	vm_config_free(&cfg);
}

static void test_put_drive(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	parse_ok("PUT", "/drives/rootfs",
		 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/rootfs.ext4\", \"is_root_device\": true,"
		 " \"is_read_only\": false, \"partuuid\": \"0eaa91a0-01\", \"cache_type\": \"Writeback\","
		 " \"io_engine\": \"Sync\", \"rate_limiter\": null, \"socket\": null}",
		 &req);
	assert_int_equal(req.op, CTL_OP_PUT_DRIVE);
	assert_string_equal(req.drive.drive_id, "rootfs");
	assert_string_equal(req.drive.path_on_host, "/img/rootfs.ext4");
	assert_true(req.drive.is_root_device);
	assert_false(req.drive.is_read_only);
	assert_string_equal(req.drive.partuuid, "0eaa91a0-01");
	assert_int_equal(req.drive.cache_type, VM_DRIVE_CACHE_WRITEBACK);
	api_request_free(&req);

	/* The getting-started guide's drive: defaults for the rest. */
	parse_ok("PUT", "/drives/rootfs",
		 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"rootfs.ext4\", \"is_root_device\": true,"
		 " \"is_read_only\": false}",
		 &req);
	assert_null(req.drive.partuuid);
	assert_int_equal(req.drive.cache_type, VM_DRIVE_CACHE_UNSAFE);
	api_request_free(&req);

	/* An empty rate limiter configures nothing: accepted. */
	accepted(r, "PUT", "/drives/d_2",
		 "{\"drive_id\": \"d_2\", \"path_on_host\": \"x\", \"is_root_device\": false, \"is_read_only\": true,"
		 " \"rate_limiter\": {}}",
		 "put_drive");
}

static void test_put_net(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;
	static const uint8_t mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x02 };

	parse_ok("PUT", "/network-interfaces/net1",
		 "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", \"host_dev_name\": \"tap0\","
		 " \"mtu\": 9000, \"rx_rate_limiter\": null, \"tx_rate_limiter\": {}}",
		 &req);
	assert_int_equal(req.op, CTL_OP_PUT_NET);
	assert_string_equal(req.net.iface_id, "net1");
	assert_string_equal(req.net.host_dev_name, "tap0");
	assert_true(req.net.guest_mac.set);
	assert_memory_equal(req.net.guest_mac.bytes, mac, 6);
	assert_int_equal(req.net.mtu, 9000);
	api_request_free(&req);

	parse_ok("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap-fc0\"}", &req);
	assert_false(req.net.guest_mac.set);
	assert_int_equal(req.net.mtu, 0);
	api_request_free(&req);

	accepted(r, "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}", "put_net");
}

/* PUT /entropy (EntropyDeviceConfig): the same rules as the config file's "entropy" object. */
static void test_put_entropy(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	parse_ok("PUT", "/entropy", "{}", &req);
	assert_int_equal(req.op, CTL_OP_PUT_ENTROPY);
	api_request_free(&req);
	accepted(r, "PUT", "/entropy", "{}", "put_entropy");
	/* A rate limiter that limits nothing configures nothing: accepted, as in the file. */
	accepted(r, "PUT", "/entropy", "{\"rate_limiter\": null}", "put_entropy");
	accepted(r, "PUT", "/entropy", "{\"rate_limiter\": {}}", "put_entropy");

	rejects(r, "PUT", "/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 100}}}", 400,
		"entropy.rate_limiter: not supported yet");
	rejects(r, "PUT", "/entropy", "{\"rate_limiter\": 5}", 400, "entropy.rate_limiter: not supported yet");
	rejects(r, "PUT", "/entropy", "{\"ratelimiter\": {}}", 400, "entropy.ratelimiter: unknown field (expected rate_limiter)");
	rejects(r, "PUT", "/entropy", "[]", 400, "body: expected a JSON object, got an array");
	rejects(r, "PUT", "/entropy", "", 400, "Empty PUT request.");
	rejects_prefix(r, "PUT", "/entropy", "{\"rate_limiter\": ", 400, "malformed JSON body: line 1");
	rejects(r, "GET", "/entropy", NULL, 405, "GET /entropy: method not allowed (allowed: PUT)");
}

static void test_actions(void **state)
{
	struct rec *r = *state;

	accepted(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "instance_start");
	accepted(r, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", "send_ctrl_alt_del");
	/* No flush_metrics op: 400, not supported yet, and no call. */
	rejects(r, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 400, "FlushMetrics: not supported yet");
}

static void test_vm_state(void **state)
{
	struct rec *r = *state;

	accepted(r, "PATCH", "/vm", "{\"state\": \"Paused\"}", "pause");
	accepted(r, "PATCH", "/vm", "{\"state\": \"Resumed\"}", "resume");
}

static void test_snapshot_create(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	parse_ok("PUT", "/snapshot/create", "{\"snapshot_path\": \"./snapshot_file\", \"mem_file_path\": \"./mem_file\"}",
		 &req);
	assert_int_equal(req.op, CTL_OP_SNAPSHOT_CREATE);
	assert_int_equal(req.snapshot_create.snapshot_type, CTL_SNAPSHOT_FULL);
	assert_string_equal(req.snapshot_create.snapshot_path, "./snapshot_file");
	assert_string_equal(req.snapshot_create.mem_file_path, "./mem_file");
	api_request_free(&req);

	parse_ok("PUT", "/snapshot/create",
		 "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", &req);
	assert_int_equal(req.snapshot_create.snapshot_type, CTL_SNAPSHOT_DIFF);
	api_request_free(&req);

	accepted(r, "PUT", "/snapshot/create", "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}",
		 "snapshot_create");
}

static void test_snapshot_load(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;
	struct api_response resp;
	static const char old_style[] = "{\"snapshot_path\": \"./snapshot_file\", \"mem_file_path\": \"./mem_file\","
					" \"enable_diff_snapshots\": true, \"resume_vm\": true}";

	parse_ok("PUT", "/snapshot/load",
		 "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"m\"},"
		 " \"track_dirty_pages\": false, \"resume_vm\": false, \"network_overrides\": [], \"vsock_override\": null,"
		 " \"clock_realtime\": true}",
		 &req);
	assert_int_equal(req.op, CTL_OP_SNAPSHOT_LOAD);
	assert_string_equal(req.snapshot_load.snapshot_path, "s");
	assert_int_equal(req.snapshot_load.mem_backend_type, CTL_MEM_BACKEND_FILE);
	assert_string_equal(req.snapshot_load.mem_backend_path, "m");
	assert_false(req.snapshot_load.track_dirty_pages);
	assert_false(req.snapshot_load.resume_vm);
	assert_true(req.snapshot_load.clock_realtime);
	assert_null(req.deprecation);
	api_request_free(&req);

	/* The older form (Firecracker's getting-started and snapshot-support docs): still accepted, flagged. */
	parse_ok("PUT", "/snapshot/load", old_style, &req);
	assert_string_equal(req.snapshot_load.mem_backend_path, "./mem_file");
	assert_true(req.snapshot_load.track_dirty_pages);
	assert_true(req.snapshot_load.resume_vm);
	assert_string_equal(req.deprecation, "PUT /snapshot/load: mem_file_path field is deprecated.");
	api_request_free(&req);

	parse_ok("PUT", "/snapshot/load",
		 "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"m\"},"
		 " \"enable_diff_snapshots\": true}",
		 &req);
	assert_true(req.snapshot_load.track_dirty_pages);
	assert_string_equal(req.deprecation, "PUT /snapshot/load: enable_diff_snapshots field is deprecated.");
	api_request_free(&req);

	/* The deprecation goes out with the answer (a "Deprecation: true" header). */
	api_handle(rec_handle, r, "PUT", "/snapshot/load", old_style, strlen(old_style), &resp);
	assert_int_equal(resp.status, 204);
	assert_string_equal(resp.deprecation, "PUT /snapshot/load: mem_file_path field is deprecated.");
	assert_string_equal(r->last, "snapshot_load");
	api_response_free(&resp);
}

static void test_vm_clone(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;

	parse_ok("PUT", "/vm/clone", "{\"clone_id\": \"vm-2\", \"api_socket\": \"/run/kiln/vm-2.sock\"}", &req);
	assert_int_equal(req.op, CTL_OP_VM_CLONE);
	assert_string_equal(req.clone.clone_id, "vm-2");
	assert_string_equal(req.clone.api_socket, "/run/kiln/vm-2.sock");
	assert_false(req.clone.resume_vm);
	api_request_free(&req);

	expect(r, "PUT", "/vm/clone", "{\"clone_id\": \"vm-2\", \"api_socket\": \"/tmp/c.sock\", \"resume_vm\": true}",
	       200, "{\"id\":\"vm-2\",\"pid\":4242,\"api_socket\":\"/tmp/c.sock\"}");
	assert_string_equal(r->last, "clone_vm");
	/* kiln's disk options: the CLI's --disk-override DRIVE_ID=PATH and --disk-copy DRIVE_ID. */
	parse_ok("PUT", "/vm/clone",
		 "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"disk_overrides\": [{\"drive_id\": \"rw\","
		 " \"path_on_host\": \"/img/rw.2\"}, {\"drive_id\": \"data\", \"path_on_host\": \"d=x\"}],"
		 " \"disk_copies\": [\"scratch\"]}",
		 &req);
	assert_int_equal(req.clone.disks.nr_overrides, 2);
	assert_string_equal(req.clone.disks.overrides[0], "rw=/img/rw.2");
	assert_string_equal(req.clone.disks.overrides[1], "data=d=x");
	assert_int_equal(req.clone.disks.nr_copies, 1);
	assert_string_equal(req.clone.disks.copies[0], "scratch");
	api_request_free(&req);
}

static void test_disk_options(void **state)
{
	struct rec *r = *state;
	struct ctl_request req;
	static const struct {
		const char *path, *body, *want;
	} cases[] = {
		{ "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"disk_overrides\": {}}",
		  "disk_overrides: expected an array or null, got an object" },
		{ "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"disk_overrides\": [\"rw=x\"]}",
		  "disk_overrides[0]: expected an object, got \"rw=x\"" },
		{ "/snapshot/load",
		  "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"disk_overrides\": [{\"drive_id\": \"rw\"}]}",
		  "disk_overrides[0].path_on_host: missing (required)" },
		{ "/vm/clone",
		  "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"disk_overrides\": [{\"drive_id\": \"r-w\", \"path_on_host\": \"x\"}]}",
		  "disk_overrides[0].drive_id: expected an id of 1..64 letters, digits or '_', got \"r-w\"" },
		{ "/vm/clone",
		  "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"disk_overrides\": [{\"drive_id\": \"rw\", \"path_on_host\": \"x\", "
		  "\"is_read_only\": true}]}",
		  "disk_overrides[0].is_read_only: unknown field (expected drive_id or path_on_host)" },
		{ "/vm/clone", "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"disk_copies\": [\"rw\", 7]}",
		  "disk_copies[1]: expected a drive id (1 to 64 letters, digits or '_')" },
		{ "/vm/clone", "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"disk_copies\": [\"a\", \"b\", \"c\", \"d\", \"e\", "
		  "\"f\", \"g\", \"h\", \"i\"]}",
		  "disk_copies: at most 8 entries" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		rejects(r, "PUT", cases[i].path, cases[i].body, 400, cases[i].want);
	parse_ok("PUT", "/snapshot/load",
		 "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"disk_overrides\": [{\"drive_id\": \"rw\","
		 " \"path_on_host\": \"/i/rw.img\"}], \"disk_copies\": null}",
		 &req);
	assert_int_equal(req.snapshot_load.disks.nr_overrides, 1);
	assert_string_equal(req.snapshot_load.disks.overrides[0], "rw=/i/rw.img");
	assert_int_equal(req.snapshot_load.disks.nr_copies, 0);
	api_request_free(&req);
}

/* The body is not JSON, or not one object. */
static void test_malformed_bodies(void **state)
{
	struct rec *r = *state;

	rejects(r, "PUT", "/boot-source", "{\"kernel_image_path\": }", 400,
		"malformed JSON body: line 1, column 23: unexpected token near '}'");
	rejects_prefix(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"", 400, "malformed JSON body: line 1, column ");
	rejects_prefix(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\",}", 400, "malformed JSON body: line 1");
	/* Trailing garbage after the object. */
	rejects_prefix(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"} x", 400, "malformed JSON body: line 1");
	rejects_prefix(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}{}", 400, "malformed JSON body: line 1");
	rejects_prefix(r, "PATCH", "/vm", "not json", 400, "malformed JSON body: line 1, column ");
	/* Duplicate keys are errors, as in the config file. */
	rejects(r, "PATCH", "/vm", "{\"state\": \"Paused\", \"state\": \"Resumed\"}", 400,
		"malformed JSON body: line 1, column 27: duplicate object key near '\"state\"'");
	rejects(r, "PUT", "/actions", "[\"InstanceStart\"]", 400, "body: expected a JSON object, got an array");
	rejects(r, "PUT", "/actions", "\"InstanceStart\"", 400, "body: expected a JSON object, got a string");
	rejects(r, "PUT", "/actions", "null", 400, "body: expected a JSON object, got null");
	rejects(r, "PUT", "/actions", "7", 400, "body: expected a JSON object, got a number");
	/* A NUL byte inside the body. */
	{
		static const char nul[] = "{\"action_type\": \"Instance\0Start\"}";
		struct api_response resp;

		api_handle(rec_handle, r, "PUT", "/actions", nul, sizeof(nul) - 1, &resp);
		assert_int_equal(resp.status, 400);
		assert_non_null(strstr(resp.body, "malformed JSON body"));
		api_response_free(&resp);
	}
	/* Invalid UTF-8 in a string. */
	rejects_prefix(r, "PUT", "/boot-source", "{\"kernel_image_path\": \"\xff\xfe\"}", 400, "malformed JSON body: ");
}

static void test_unknown_fields(void **state)
{
	struct rec *r = *state;

	rejects(r, "PUT", "/boot-source", "{\"kernel_image_path\": \"k\", \"kernel\": \"k\"}", 400,
		"boot-source.kernel: unknown field (expected kernel_image_path, initrd_path or boot_args)");
	rejects(r, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"vcpus\": 1}", 400,
		"machine-config.vcpus: unknown field (expected vcpu_count, mem_size_mib, smt, track_dirty_pages, "
		"cpu_template or huge_pages)");
	rejects(r, "PATCH", "/machine-config", "{\"ht_enabled\": true}", 400,
		"machine-config.ht_enabled: unknown field (Firecracker renamed it \"smt\")");
	rejects(r, "PUT", "/drives/rootfs",
		"{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false,"
		" \"readonly\": true}",
		400,
		"readonly: unknown field (expected drive_id, path_on_host, is_root_device, is_read_only, partuuid, "
		"cache_type, io_engine, rate_limiter or socket)");
	rejects(r, "PUT", "/network-interfaces/eth0",
		"{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"allow_mmds_requests\": true}", 400,
		"allow_mmds_requests: unknown field (expected iface_id, host_dev_name, guest_mac, mtu, rx_rate_limiter "
		"or tx_rate_limiter)");
	rejects(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\", \"force\": true}", 400,
		"force: unknown field (expected action_type)");
	rejects(r, "PATCH", "/vm", "{\"invalid\": \"Paused\"}", 400, "invalid: unknown field (expected state)");
	rejects(r, "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"version\": \"1.0.0\"}",
		400, "version: unknown field (expected snapshot_type, snapshot_path or mem_file_path)");
	rejects(r, "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"resume\": true}", 400,
		"resume: unknown field (expected snapshot_path, mem_backend, mem_file_path, enable_diff_snapshots, "
		"track_dirty_pages, resume_vm, network_overrides, vsock_override, clock_realtime, disk_overrides or disk_copies)");
	rejects(r, "PUT", "/snapshot/load",
		"{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"m\", \"x\": 1}}",
		400, "mem_backend.x: unknown field (expected backend_type or backend_path)");
	rejects(r, "PUT", "/vm/clone", "{\"clone_id\": \"c\", \"api_socket\": \"s\", \"pid\": 1}", 400,
		"pid: unknown field (expected clone_id, api_socket, resume_vm, disk_overrides or disk_copies)");
}

static void test_wrong_types(void **state)
{
	struct rec *r = *state;
	static const struct {
		const char *method, *path, *body, *want;
	} cases[] = {
		{ "PUT", "/boot-source", "{\"kernel_image_path\": 3}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got 3" },
		{ "PUT", "/boot-source", "{\"kernel_image_path\": \"\"}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got \"\"" },
		{ "PUT", "/boot-source", "{\"kernel_image_path\": \"k\", \"boot_args\": [\"a\"]}",
		  "boot-source.boot_args: expected a string or null, got an array" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 128}",
		  "machine-config.vcpu_count: expected an integer 1..32, got \"2\"" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 33, \"mem_size_mib\": 128}",
		  "machine-config.vcpu_count: expected an integer 1..32, got 33" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 1.5}",
		  "machine-config.mem_size_mib: expected an integer 16..1048576, got 1.5" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}",
		  "machine-config.vcpu_count: expected 1 or an even number when smt is true, got 3" },
		{ "PATCH", "/machine-config", "{\"smt\": \"yes\"}", "machine-config.smt: expected true or false, got \"yes\"" },
		{ "PATCH", "/machine-config", "{\"cpu_template\": \"T2\"}",
		  "machine-config.cpu_template: \"T2\" is not supported yet (expected null or \"None\")" },
		{ "PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": \"true\", \"is_read_only\": false}",
		  "is_root_device: expected true or false, got \"true\"" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": 7, \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false}",
		  "drive_id: expected an id of 1..64 letters, digits or '_', got 7" },
		{ "PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false,"
		  " \"cache_type\": \"None\"}",
		  "cache_type: expected \"Unsafe\" or \"Writeback\", got \"None\"" },
		{ "PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false,"
		  " \"io_engine\": \"Uring\"}",
		  "io_engine: expected \"Sync\" or \"Async\", got \"Uring\"" },
		{ "PUT", "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false,"
		  " \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}",
		  "rate_limiter: not supported yet" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"is_root_device\": true, \"socket\": \"/vhost.sock\"}",
		  "socket: not supported yet" },
		{ "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:ac\"}",
		  "guest_mac: expected a MAC address \"xx:xx:xx:xx:xx:xx\" or null, got \"06:00:ac\"" },
		{ "PUT", "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:ac:10:00:0g\"}",
		  "guest_mac: expected a MAC address \"xx:xx:xx:xx:xx:xx\" or null, got \"06:00:ac:10:00:0g\"" },
		{ "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"a-very-long-tap-name\"}",
		  "host_dev_name: expected a string of 1..15 bytes, got \"a-very-long-tap-name\"" },
		{ "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"mtu\": 67}",
		  "mtu: expected an integer 68..65535, got 67" },
		{ "PUT", "/actions", "{\"action_type\": \"Reboot\"}",
		  "action_type: expected \"FlushMetrics\", \"InstanceStart\" or \"SendCtrlAltDel\", got \"Reboot\"" },
		{ "PUT", "/actions", "{\"action_type\": 1}",
		  "action_type: expected \"FlushMetrics\", \"InstanceStart\" or \"SendCtrlAltDel\", got 1" },
		{ "PATCH", "/vm", "{\"state\": \"paused\"}", "state: expected \"Paused\" or \"Resumed\", got \"paused\"" },
		{ "PUT", "/snapshot/create", "{\"snapshot_type\": \"Incremental\", \"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}",
		  "snapshot_type: expected \"Full\" or \"Diff\", got \"Incremental\"" },
		{ "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": null}",
		  "mem_file_path: expected a non-empty path string, got null" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": \"m\"}",
		  "mem_backend: expected an object or null, got \"m\"" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"u\"}}",
		  "mem_backend.backend_type: \"Uffd\" is not supported yet (expected \"File\")" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"resume_vm\": 1}",
		  "resume_vm: expected true or false, got 1" },
		{ "PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"network_overrides\": [{\"iface_id\": \"e\", \"host_dev_name\": \"t\"}]}",
		  "network_overrides: not supported yet" },
		{ "PUT", "/vm/clone", "{\"clone_id\": \"vm_2\", \"api_socket\": \"s\"}",
		  "clone_id: expected an id of 1..64 letters, digits or '-', got \"vm_2\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		rejects(r, cases[i].method, cases[i].path, cases[i].body, 400, cases[i].want);
}

static void test_missing_fields(void **state)
{
	struct rec *r = *state;
	static const struct {
		const char *method, *path, *body, *want;
	} cases[] = {
		{ "PUT", "/boot-source", "{\"boot_args\": \"console=ttyS0\"}", "boot-source.kernel_image_path: missing (required)" },
		{ "PUT", "/machine-config", "{\"mem_size_mib\": 1024}", "machine-config.vcpu_count: missing (required)" },
		{ "PUT", "/machine-config", "{\"vcpu_count\": 8}", "machine-config.mem_size_mib: missing (required)" },
		{ "PUT", "/drives/rootfs", "{\"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false}",
		  "drive_id: missing (required)" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"is_root_device\": true, \"is_read_only\": false}",
		  "path_on_host: missing (required)" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_read_only\": false}",
		  "is_root_device: missing (required)" },
		{ "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"r\", \"is_root_device\": true}",
		  "is_read_only: missing (required)" },
		{ "PUT", "/network-interfaces/eth0", "{\"host_dev_name\": \"tap0\"}", "iface_id: missing (required)" },
		{ "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\"}", "host_dev_name: missing (required)" },
		{ "PUT", "/actions", "{}", "action_type: missing (required)" },
		{ "PATCH", "/vm", "{}", "state: missing (required)" },
		{ "PUT", "/snapshot/create", "{\"mem_file_path\": \"m\"}", "snapshot_path: missing (required)" },
		{ "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\"}", "mem_file_path: missing (required)" },
		{ "PUT", "/snapshot/load", "{\"mem_file_path\": \"m\"}", "snapshot_path: missing (required)" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\"}",
		  "mem_backend: missing (required, or the deprecated mem_file_path)" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": null}",
		  "mem_backend: missing (required, or the deprecated mem_file_path)" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_path\": \"m\"}}",
		  "mem_backend.backend_type: missing (required)" },
		{ "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\"}}",
		  "mem_backend.backend_path: missing (required)" },
		{ "PUT", "/snapshot/load",
		  "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"m\"}}",
		  "mem_backend, mem_file_path: give one of them, not both" },
		{ "PUT", "/vm/clone", "{\"api_socket\": \"s\"}", "clone_id: missing (required)" },
		{ "PUT", "/vm/clone", "{\"clone_id\": \"c\"}", "api_socket: missing (required)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		rejects(r, cases[i].method, cases[i].path, cases[i].body, 400, cases[i].want);
}

static void test_path_ids(void **state)
{
	struct rec *r = *state;
	char path[128], body[256], id[CONFIG_MAX_ID + 2];

	rejects(r, "PUT", "/drives/rootfs",
		"{\"drive_id\": \"other\", \"path_on_host\": \"r\", \"is_root_device\": true, \"is_read_only\": false}", 400,
		"drive_id: \"other\" does not match the id in the path, \"rootfs\"");
	rejects(r, "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}", 400,
		"iface_id: \"eth1\" does not match the id in the path, \"eth0\"");
	rejects(r, "PUT", "/drives/", "{\"drive_id\": \"x\"}", 400, "PUT /drives/: the id in the path is empty");
	rejects(r, "PUT", "/drives/a-b", "{\"drive_id\": \"a-b\"}", 400,
		"PUT /drives/a-b: the id in the path must be 1..64 letters, digits or '_'");
	rejects(r, "PUT", "/network-interfaces/e.0", "{}", 400,
		"PUT /network-interfaces/e.0: the id in the path must be 1..64 letters, digits or '_'");
	rejects(r, "PUT", "/drives/r\xc3\xa9", "{}", 400, "PUT /drives/r??: the id in the path must be 1..64 letters, digits or '_'");

	/* 64 bytes is the longest id; 65 is refused. */
	memset(id, 'a', CONFIG_MAX_ID);
	id[CONFIG_MAX_ID] = '\0';
	snprintf(path, sizeof(path), "/drives/%s", id);
	snprintf(body, sizeof(body), "{\"drive_id\": \"%s\", \"path_on_host\": \"r\", \"is_root_device\": true,"
				     " \"is_read_only\": false}", id);
	accepted(r, "PUT", path, body, "put_drive");
	strcat(id, "a");
	snprintf(path, sizeof(path), "/drives/%s", id);
	snprintf(body, sizeof(body), "PUT /drives/%.*s...: the id in the path must be 1..64 letters, digits or '_'", 56, id);
	rejects(r, "PUT", path, "{}", 400, body);
}

static void test_unknown_paths_and_methods(void **state)
{
	struct rec *r = *state;
	struct api_response resp;

	rejects(r, "GET", "/foo", NULL, 404, "GET /foo: no such resource");
	rejects(r, "PUT", "/drives", "{}", 404, "PUT /drives: no such resource");
	rejects(r, "PUT", "/drives/a/b", "{}", 404, "PUT /drives/a/b: no such resource");
	rejects(r, "PUT", "/boot-source/extra", "{}", 404, "PUT /boot-source/extra: no such resource");
	rejects(r, "GET", "/machine-config/", NULL, 404, "GET /machine-config/: no such resource");
	rejects(r, "PUT", "/snapshot", "{}", 404, "PUT /snapshot: no such resource");
	rejects(r, "PUT", "/snapshot/delete", "{}", 404, "PUT /snapshot/delete: no such resource");
	rejects(r, "GET", "", NULL, 404, "GET : no such resource");
	rejects(r, "GET", "//", NULL, 404, "GET //: no such resource");
	rejects(r, "GET", "/\x1b[2J", NULL, 404, "GET /?[2J: no such resource");

	rejects(r, "DELETE", "/", NULL, 405, "DELETE /: method not allowed (allowed: GET)");
	rejects(r, "POST", "/actions", "{\"action_type\": \"InstanceStart\"}", 405,
		"POST /actions: method not allowed (allowed: PUT)");
	rejects(r, "GET", "/actions", NULL, 405, "GET /actions: method not allowed (allowed: PUT)");
	rejects(r, "PUT", "/version", "{}", 405, "PUT /version: method not allowed (allowed: GET)");
	rejects(r, "GET", "/boot-source", NULL, 405, "GET /boot-source: method not allowed (allowed: PUT)");
	rejects(r, "PUT", "/vm", "{\"state\": \"Paused\"}", 405, "PUT /vm: method not allowed (allowed: PATCH)");
	rejects(r, "get", "/", NULL, 405, "get /: method not allowed (allowed: GET)");
	api_handle(rec_handle, r, "DELETE", "/machine-config", NULL, 0, &resp);
	assert_int_equal(resp.status, 405);
	assert_string_equal(resp.allow, "GET, PUT, PATCH");
	api_response_free(&resp);

	/* Firecracker endpoints kiln does not implement yet: 400, named. */
	rejects(r, "PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"v.sock\"}", 400, "PUT /vsock: not supported yet");
	rejects(r, "PUT", "/logger", "{\"log_path\": \"l\"}", 400, "PUT /logger: not supported yet");
	rejects(r, "PUT", "/metrics", "{\"metrics_path\": \"m\"}", 400, "PUT /metrics: not supported yet");
	rejects(r, "GET", "/balloon", NULL, 400, "GET /balloon: not supported yet");
	rejects(r, "PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"x\"}", 400,
		"PATCH /drives/rootfs: not supported yet");
	rejects(r, "PUT", "/mmds", "{}", 400, "PUT /mmds: not supported yet");
	rejects(r, "PATCH", "/hotplug/memory", "{}", 400, "PATCH /hotplug/memory: not supported yet");
}

static void test_body_presence(void **state)
{
	struct rec *r = *state;

	/* Firecracker's words (parsed_request.rs, method_to_error). */
	rejects(r, "GET", "/", "{}", 400, "GET request cannot have a body.");
	rejects(r, "GET", "/machine-config", "{}", 400, "GET request cannot have a body.");
	rejects(r, "PUT", "/actions", NULL, 400, "Empty PUT request.");
	rejects(r, "PATCH", "/vm", NULL, 400, "Empty PATCH request.");
	rejects(r, "PATCH", "/machine-config", "{}", 400, "Empty PATCH request.");
	rejects(r, "PUT", "/boot-source", "{}", 400, "boot-source.kernel_image_path: missing (required)");
}

static void test_oversized_body(void **state)
{
	struct rec *r = *state;
	static const char head[] = "{\"action_type\": \"InstanceStart\"}";
	struct api_response resp;
	char *big = malloc(API_MAX_BODY + 2);
	int calls = r->calls;

	assert_non_null(big);
	/* Exactly the limit: a valid body padded with spaces is accepted. */
	memset(big, ' ', API_MAX_BODY + 1);
	memcpy(big, head, strlen(head));
	big[API_MAX_BODY + 1] = '\0';
	api_handle(rec_handle, r, "PUT", "/actions", big, API_MAX_BODY, &resp);
	assert_int_equal(resp.status, 204);
	api_response_free(&resp);
	assert_int_equal(r->calls, calls + 1);

	/* One byte more: 400 before the body is looked at (the server may not even have kept it). */
	api_handle(rec_handle, r, "PUT", "/actions", big, API_MAX_BODY + 1, &resp);
	assert_int_equal(resp.status, 400);
	assert_string_equal(resp.body,
			    "{\"fault_message\":\"PUT /actions: a body of 51201 bytes is larger than the limit of 51200 bytes\"}");
	api_response_free(&resp);
	api_handle(rec_handle, r, "PUT", "/nowhere", NULL, (size_t)1 << 40, &resp);
	assert_int_equal(resp.status, 400);
	api_response_free(&resp);
	assert_int_equal(r->calls, calls + 1);
	free(big);
}

static void test_backend_errors(void **state)
{
	struct rec *r = *state;
	static const struct {
		int ret;
		const char *msg;
		unsigned int status;
		const char *want;
	} cases[] = {
		{ -EBUSY, "boot-source: only before InstanceStart", 400, "boot-source: only before InstanceStart" },
		{ -EINVAL, "boot-source.kernel_image_path: /k: No such file or directory", 400,
		  "boot-source.kernel_image_path: /k: No such file or directory" },
		{ -EOPNOTSUPP, "x: not supported yet", 400, "x: not supported yet" },
		{ -ENOENT, NULL, 400, "No such file or directory" },
		{ -EIO, "snapshot: write failed", 500, "snapshot: write failed" },
		{ -ENOMEM, NULL, 500, "Cannot allocate memory" },
		{ -ENOSPC, "mem file: No space left on device", 500, "mem file: No space left on device" },
		{ 1, NULL, 500, "Input/output error" }, /* not the convention: the VMM's fault */
		/* A message that is not UTF-8 is made ASCII. */
		{ -EINVAL, "path \xff\xfe", 400, "path ??" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = fault_json(cases[i].want);
		int calls = r->calls;

		r->ret = cases[i].ret;
		r->msg = cases[i].msg;
		expect(r, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", cases[i].status, json);
		assert_int_equal(r->calls, calls + 1);
		free(json);
	}
	/* A UTF-8 message stays as it is. */
	r->ret = -ENOENT;
	r->msg = "/srv/k\xc3\xa9rnel: No such file or directory";
	expect(r, "PUT", "/boot-source", "{\"kernel_image_path\": \"/srv/k\xc3\xa9rnel\"}", 400,
	       "{\"fault_message\":\"/srv/k\xc3\xa9rnel: No such file or directory\"}");
	r->ret = 0;
	r->msg = NULL;
}

/* No handler: each request is answered "not supported yet" (400), nothing crashes. */
static void test_null_ops(void **state __attribute__((unused)))
{
	static const struct {
		const char *method, *path, *body, *want;
	} cases[] = {
		{ "PUT", "/boot-source", "{\"kernel_image_path\": \"k\"}", "boot-source: not supported yet" },
		{ "PATCH", "/machine-config", "{\"vcpu_count\": 2}", "machine-config: not supported yet" },
		{ "PUT", "/drives/d", "{\"drive_id\": \"d\", \"path_on_host\": \"p\", \"is_root_device\": true, \"is_read_only\": true}",
		  "drives: not supported yet" },
		{ "PUT", "/network-interfaces/n", "{\"iface_id\": \"n\", \"host_dev_name\": \"tap0\"}",
		  "network-interfaces: not supported yet" },
		{ "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", "SendCtrlAltDel: not supported yet" },
		{ "PATCH", "/vm", "{\"state\": \"Paused\"}", "vm state \"Paused\": not supported yet" },
		{ "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", "snapshot/create: not supported yet" },
		{ "PUT", "/vm/clone", "{\"clone_id\": \"c\", \"api_socket\": \"s\"}", "vm/clone: not supported yet" },
		{ "GET", "/vm/config", NULL, "GET /vm/config: not supported yet" },
		{ "PUT", "/entropy", "{}", "entropy: not supported yet" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_response resp;
		char *json = fault_json(cases[i].want);

		api_handle(NULL, NULL, cases[i].method, cases[i].path, cases[i].body,
			   cases[i].body ? strlen(cases[i].body) : 0, &resp);
		assert_int_equal(resp.status, 400);
		assert_string_equal(resp.body, json);
		api_response_free(&resp);
		free(json);
	}
}

/* Firecracker's getting-started sequence, as curl sends it. */
static void test_getting_started(void **state)
{
	struct rec *r = *state;

	accepted(r, "PUT", "/boot-source",
		 "{\n            \"kernel_image_path\": \"./hello-vmlinux.bin\",\n"
		 "            \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"\n        }",
		 "put_boot_source");
	accepted(r, "PUT", "/drives/rootfs",
		 "{\n            \"drive_id\": \"rootfs\",\n            \"path_on_host\": \"./hello-rootfs.ext4\",\n"
		 "            \"is_root_device\": true,\n            \"is_read_only\": false\n        }",
		 "put_drive");
	accepted(r, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false}",
		 "put_machine_config");
	accepted(r, "PUT", "/actions", "{\n            \"action_type\": \"InstanceStart\"\n         }", "instance_start");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_info, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_get_version, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_get_config, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_get_vcpus, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_put_boot_source, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_machine_config, rec_setup, rec_teardown),
		cmocka_unit_test(test_machine_config_apply),
		cmocka_unit_test(test_boot_source_apply),
		cmocka_unit_test_setup_teardown(test_put_drive, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_put_net, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_put_entropy, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_actions, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_vm_state, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_create, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_disk_options, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_vm_clone, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_bodies, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_fields, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_missing_fields, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_path_ids, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_paths_and_methods, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_body_presence, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_oversized_body, rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(test_backend_errors, rec_setup, rec_teardown),
		cmocka_unit_test(test_null_ops),
		cmocka_unit_test_setup_teardown(test_getting_started, rec_setup, rec_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
