// SPDX-License-Identifier: MIT
/*
 * The control API server over a fake VM, for tests/integration/test_api_server.py: no KVM, no guest.
 * The fake keeps a configuration and a state machine with Firecracker's rules (configure before
 * InstanceStart, snapshot only when Paused, load only into a fresh VM) and prints every typed request it
 * receives as one JSON line on stdout, so a test can check what the routes layer made of its HTTP.
 *
 *   api_fake_vm --api-sock PATH [--id ID] [--idle-timeout S] [--max-connections N] [--request-timeout-ms MS]
 *               [--fail OP]...
 *
 * --fail OP makes that backend op (e.g. snapshot_create) fail with EIO, which the API answers with 500.
 * Lines: {"event": "ready", ...} once serving, one {"op": ...} per backend call, {"event": "stopped"} after
 * SIGTERM or SIGINT, then exit status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/routes.h"
#include "api/server.h"
#include "lib/log.h"
#include "vmm/config.h"

struct fake_vm {
	pthread_mutex_t lock; /* the backend contract: ops may come from another thread than main's */
	struct vm_config cfg;
	enum ctl_vm_state state;
	bool configured;      /* something was PUT: a snapshot can no longer be loaded */
	char id[CONFIG_MAX_ID + 1];
	char fail[16][32];    /* ops that fail with EIO */
	size_t nr_fail;
};

static void emit(json_t *line)
{
	char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;

	if (text) {
		printf("%s\n", text);
		fflush(stdout);
	}
	free(text);
	json_decref(line);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Log the call; returns -EIO when the test asked this op to fail. */
static int begin(struct fake_vm *vm, const char *op, json_t *fields, char *err, size_t err_size)
{
	json_t *line = json_pack("{s:s}", "op", op);

	json_object_update(line, fields);
	json_decref(fields);
	emit(line);
	for (size_t i = 0; i < vm->nr_fail; i++) {
		if (!strcmp(vm->fail[i], op)) {
			snprintf(err, err_size, "%s: injected failure", op);
			return -EIO;
		}
	}
	return 0;
}

static int pre_boot_only(struct fake_vm *vm, const char *what, char *err, size_t err_size)
{
	if (vm->state != CTL_VM_NOT_STARTED) {
		snprintf(err, err_size, "%s: only before InstanceStart", what);
		return -EBUSY;
	}
	return 0;
}

static void fake_get_info(void *ctx, struct ctl_info *out)
{
	struct fake_vm *vm = ctx;

	pthread_mutex_lock(&vm->lock);
	snprintf(out->id, sizeof(out->id), "%s", vm->id);
	out->state = vm->state;
	pthread_mutex_unlock(&vm->lock);
}

static char *fake_get_config_json(void *ctx)
{
	struct fake_vm *vm = ctx;
	char *json;

	pthread_mutex_lock(&vm->lock);
	json = vm_config_to_json(&vm->cfg);
	pthread_mutex_unlock(&vm->lock);
	return json;
}

static int fake_put_boot_source(void *ctx, const struct vm_config *boot, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "put_boot_source",
		    json_pack("{s:o, s:o, s:o}", "kernel_image_path", str_or_null(boot->kernel_path), "initrd_path",
			      str_or_null(boot->initrd_path), "boot_args", str_or_null(boot->cmdline)),
		    err, err_size);
	if (!ret)
		ret = pre_boot_only(vm, "boot-source", err, err_size);
	if (!ret)
		ret = vm_config_apply_boot_source(&vm->cfg, boot);
	if (!ret)
		vm->configured = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_put_machine_config(void *ctx, const struct ctl_machine_config *mc, char *err, size_t err_size)
{
	static const char *const names[] = { "vcpu_count", "mem_size_mib", "smt", "track_dirty_pages" };
	struct fake_vm *vm = ctx;
	json_t *line, *set = json_array();
	int ret;

	for (size_t i = 0; i < 4; i++)
		if (mc->set & (1u << i))
			json_array_append_new(set, json_string(names[i]));
	line = json_pack("{s:b, s:o, s:i, s:I, s:b, s:b}", "patch", mc->patch, "set", set, "vcpu_count",
			 (int)mc->values.vcpus, "mem_size_mib", (json_int_t)mc->values.mem_mib, "smt", mc->values.smt,
			 "track_dirty_pages", mc->values.track_dirty_pages);
	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "put_machine_config", line, err, err_size);
	if (!ret)
		ret = pre_boot_only(vm, "machine-config", err, err_size);
	if (!ret)
		ret = vm_config_apply_machine(&vm->cfg, &mc->values, mc->set, err, err_size);
	if (!ret)
		vm->configured = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_put_drive(void *ctx, const struct vm_drive_config *d, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "put_drive",
		    json_pack("{s:s, s:s, s:b, s:b, s:o, s:s}", "drive_id", d->drive_id, "path_on_host", d->path_on_host,
			      "is_root_device", d->is_root_device, "is_read_only", d->is_read_only, "partuuid",
			      str_or_null(d->partuuid), "cache_type",
			      d->cache_type == VM_DRIVE_CACHE_WRITEBACK ? "Writeback" : "Unsafe"),
		    err, err_size);
	if (!ret)
		ret = pre_boot_only(vm, "drives", err, err_size);
	if (!ret)
		vm->configured = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_put_net(void *ctx, const struct vm_net_config *n, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	char mac[18] = "";
	int ret;

	if (n->guest_mac.set)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->guest_mac.bytes[0], n->guest_mac.bytes[1],
			 n->guest_mac.bytes[2], n->guest_mac.bytes[3], n->guest_mac.bytes[4], n->guest_mac.bytes[5]);
	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "put_net",
		    json_pack("{s:s, s:s, s:o, s:i}", "iface_id", n->iface_id, "host_dev_name", n->host_dev_name,
			      "guest_mac", n->guest_mac.set ? json_string(mac) : json_null(), "mtu", (int)n->mtu),
		    err, err_size);
	if (!ret)
		ret = pre_boot_only(vm, "network-interfaces", err, err_size);
	if (!ret)
		vm->configured = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_instance_start(void *ctx, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "instance_start", json_object(), err, err_size);
	if (!ret && vm->state != CTL_VM_NOT_STARTED) {
		snprintf(err, err_size, "InstanceStart: the VM has already started");
		ret = -EBUSY;
	}
	if (!ret && !vm->cfg.kernel_path) {
		snprintf(err, err_size, "boot-source.kernel_image_path: missing (PUT /boot-source first)");
		ret = -EINVAL;
	}
	if (!ret)
		vm->state = CTL_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_send_ctrl_alt_del(void *ctx, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "send_ctrl_alt_del", json_object(), err, err_size);
	if (!ret && vm->state != CTL_VM_RUNNING) {
		snprintf(err, err_size, "SendCtrlAltDel: the VM is not running");
		ret = -EBUSY;
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_pause(void *ctx, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "pause", json_object(), err, err_size);
	if (!ret && vm->state == CTL_VM_NOT_STARTED) {
		snprintf(err, err_size, "vm: cannot pause a VM that has not started");
		ret = -EBUSY;
	}
	if (!ret)
		vm->state = CTL_VM_PAUSED;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_resume(void *ctx, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "resume", json_object(), err, err_size);
	if (!ret && vm->state == CTL_VM_NOT_STARTED) {
		snprintf(err, err_size, "vm: cannot resume a VM that has not started");
		ret = -EBUSY;
	}
	if (!ret)
		vm->state = CTL_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_snapshot_create(void *ctx, const struct ctl_snapshot_create *req, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "snapshot_create",
		    json_pack("{s:s, s:s, s:s}", "snapshot_type", req->snapshot_type == CTL_SNAPSHOT_DIFF ? "Diff" : "Full",
			      "snapshot_path", req->snapshot_path, "mem_file_path", req->mem_file_path),
		    err, err_size);
	if (!ret && vm->state != CTL_VM_PAUSED) {
		snprintf(err, err_size, "snapshot/create: the VM must be Paused");
		ret = -EBUSY;
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_snapshot_load(void *ctx, const struct ctl_snapshot_load *req, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "snapshot_load",
		    json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "snapshot_path", req->snapshot_path, "mem_backend_type",
			      "File", "mem_backend_path", req->mem_backend_path, "track_dirty_pages",
			      req->track_dirty_pages, "resume_vm", req->resume_vm, "clock_realtime", req->clock_realtime),
		    err, err_size);
	if (!ret && (vm->state != CTL_VM_NOT_STARTED || vm->configured)) {
		snprintf(err, err_size, "snapshot/load: only into a fresh VM, before any configuration");
		ret = -EBUSY;
	}
	if (!ret)
		vm->state = req->resume_vm ? CTL_VM_RUNNING : CTL_VM_PAUSED;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int fake_clone_vm(void *ctx, const struct ctl_vm_clone *req, int *pid, char *err, size_t err_size)
{
	struct fake_vm *vm = ctx;
	int ret;

	pthread_mutex_lock(&vm->lock);
	ret = begin(vm, "clone_vm",
		    json_pack("{s:s, s:s, s:b}", "clone_id", req->clone_id, "api_socket", req->api_socket, "resume_vm",
			      req->resume_vm),
		    err, err_size);
	if (!ret && vm->state != CTL_VM_PAUSED) {
		snprintf(err, err_size, "vm/clone: the VM must be Paused");
		ret = -EBUSY;
	}
	if (!ret)
		*pid = (int)getpid(); /* a real clone is a new process */
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Entropy, GET /vcpus and FlushMetrics: "not supported yet", as kiln answers FlushMetrics until it has metrics. */
static int fake_handle(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err, size_t err_size)
{
	switch (req->op) {
	case CTL_OP_GET_INFO:
		fake_get_info(ctx, &reply->info);
		return 0;
	case CTL_OP_GET_VM_CONFIG:
	case CTL_OP_GET_MACHINE_CONFIG:
		reply->config_json = fake_get_config_json(ctx);
		return reply->config_json ? 0 : -errno;
	case CTL_OP_PUT_BOOT_SOURCE:
		return fake_put_boot_source(ctx, &req->boot_source, err, err_size);
	case CTL_OP_PUT_MACHINE_CONFIG:
		return fake_put_machine_config(ctx, &req->machine, err, err_size);
	case CTL_OP_PUT_DRIVE:
		return fake_put_drive(ctx, &req->drive, err, err_size);
	case CTL_OP_PUT_NET:
		return fake_put_net(ctx, &req->net, err, err_size);
	case CTL_OP_INSTANCE_START:
		return fake_instance_start(ctx, err, err_size);
	case CTL_OP_SEND_CTRL_ALT_DEL:
		return fake_send_ctrl_alt_del(ctx, err, err_size);
	case CTL_OP_PAUSE:
		return fake_pause(ctx, err, err_size);
	case CTL_OP_RESUME:
		return fake_resume(ctx, err, err_size);
	case CTL_OP_SNAPSHOT_CREATE:
		return fake_snapshot_create(ctx, &req->snapshot_create, err, err_size);
	case CTL_OP_SNAPSHOT_LOAD:
		return fake_snapshot_load(ctx, &req->snapshot_load, err, err_size);
	case CTL_OP_VM_CLONE:
		return fake_clone_vm(ctx, &req->clone, &reply->clone_pid, err, err_size);
	default:
		return ctl_not_supported(req->op, err, err_size);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: api_fake_vm --api-sock PATH [--id ID] [--idle-timeout S] [--max-connections N] "
		   "[--request-timeout-ms MS] [--fail OP]... [--verbose]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-sock", required_argument, NULL, 's' },
		{ "id", required_argument, NULL, 'i' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "request-timeout-ms", required_argument, NULL, 'r' },
		{ "fail", required_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct api_server_options opts = { 0 };
	struct fake_vm vm = { .lock = PTHREAD_MUTEX_INITIALIZER, .state = CTL_VM_NOT_STARTED };
	const char *sock = NULL;
	struct api_server *srv;
	char err[API_ERR_SIZE];
	sigset_t stop;
	int opt, sig;

	snprintf(vm.id, sizeof(vm.id), "anonymous-instance");
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'i':
			if (!config_instance_id_valid(optarg)) {
				fprintf(stderr, "api_fake_vm: --id: expected 1..%d letters, digits or '-'\n", CONFIG_MAX_ID);
				return 2;
			}
			snprintf(vm.id, sizeof(vm.id), "%s", optarg);
			break;
		case 't':
			opts.idle_timeout_s = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			opts.max_connections = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			opts.request_timeout_ms = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			if (vm.nr_fail < sizeof(vm.fail) / sizeof(vm.fail[0]))
				snprintf(vm.fail[vm.nr_fail++], sizeof(vm.fail[0]), "%s", optarg);
			break;
		case 'v':
			log_set_level(LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!sock || optind != argc) {
		usage(stderr);
		return 2;
	}
	vm_config_init(&vm.cfg);

	/* Blocked before any thread starts, so that sigwait below is the only taker. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	if (api_server_start(&srv, sock, &opts, fake_handle, &vm, err, sizeof(err))) {
		fprintf(stderr, "api_fake_vm: %s\n", err);
		return 1;
	}
	emit(json_pack("{s:s, s:s}", "event", "ready", "socket", sock));
	sigwait(&stop, &sig);
	api_server_stop(srv);
	emit(json_pack("{s:s, s:i}", "event", "stopped", "signal", sig));
	vm_config_free(&vm.cfg);
	return 0;
}
