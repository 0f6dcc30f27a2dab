// SPDX-License-Identifier: MIT
#include "vmm/vm_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/clone.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

static void vm_api_get_info(void *ctx, struct api_instance_info *out)
{
	struct vm *vm = ctx;

	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "anonymous-instance");
	pthread_mutex_lock(&vm->lock);
	out->state = vm->paused ? API_VM_PAUSED : API_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
}

static char *vm_api_get_config_json(void *ctx)
{
	struct vm *vm = ctx;

	return vm_config_to_json(vm->cfg);
}

static int vm_api_instance_start(void *ctx, char *err, size_t err_size)
{
	(void)ctx;
	errmsg_set(err, err_size, "The requested operation is not supported after starting the microVM.");
	return -EBUSY;
}

static int vm_api_pause(void *ctx, char *err, size_t err_size)
{
	int ret = vm_pause(ctx);

	if (ret == -EALREADY)
		return 0; /* Firecracker answers 204 to pausing a paused VM */
	if (ret)
		errmsg_set(err, err_size, "cannot pause: %s", ret == -ESHUTDOWN ? "the VM is stopping" : strerror(-ret));
	return ret == -ESHUTDOWN ? -EBUSY : ret;
}

static int vm_api_resume(void *ctx, char *err, size_t err_size)
{
	int ret = vm_resume(ctx);

	if (ret == -EALREADY)
		return 0;
	if (ret)
		errmsg_set(err, err_size, "cannot resume: %s", strerror(-ret));
	return ret;
}

/* -errno of a snapshot operation to what the API answers: the caller's mistakes are 400, the rest 500. */
static int snapshot_status(int ret)
{
	switch (ret) {
	case -EBUSY:
	case -EINVAL:
	case -ENOENT:
	case -EACCES:
	case -EPERM:
	case -EISDIR:
	case -ENOTDIR:
	case -ENAMETOOLONG:
	case -EOPNOTSUPP: /* also -ENOTSUP: a snapshot of an incompatible format */
		return ret;
	case -EBADMSG:
	case -EFBIG:
		return -EINVAL; /* a corrupt or incompatible snapshot: the request cannot be carried out */
	default:
		return ret;
	}
}

static int vm_api_snapshot_create(void *ctx, const struct api_snapshot_create *req, char *err, size_t err_size)
{
	if (req->snapshot_type != API_SNAPSHOT_FULL) {
		errmsg_set(err, err_size, "snapshot_type \"Diff\": not supported yet");
		return -EOPNOTSUPP;
	}
	return snapshot_status(vm_snapshot_save(ctx, req->snapshot_path, req->mem_file_path, err, err_size));
}

/*
 * PUT /vm/clone: a snapshot next to the clone's socket ("<api_socket>.snap", "<api_socket>.mem"), then
 * a kiln process restoring it (its console "<api_socket>.console", its messages "<api_socket>.log"),
 * detached from this one.
 */
static int vm_api_clone(void *ctx, const struct api_vm_clone *req, struct api_clone_info *out, char *err,
			size_t err_size)
{
	char state[4200], mem[4200], console[4200], log[4200];
	struct vm_clone_spec spec;
	pid_t pid;
	int ret;

	if (snprintf(state, sizeof(state), "%s.snap", req->api_socket) >= (int)sizeof(state) ||
	    snprintf(mem, sizeof(mem), "%s.mem", req->api_socket) >= (int)sizeof(mem) ||
	    snprintf(console, sizeof(console), "%s.console", req->api_socket) >= (int)sizeof(console) ||
	    snprintf(log, sizeof(log), "%s.log", req->api_socket) >= (int)sizeof(log)) {
		errmsg_set(err, err_size, "api_socket: path too long");
		return -ENAMETOOLONG;
	}
	ret = vm_snapshot_save(ctx, state, mem, err, err_size);
	if (ret)
		return snapshot_status(ret);
	spec = (struct vm_clone_spec){
		.state_path = state, .mem_path = mem, .api_sock = req->api_socket, .console_path = console,
		.log_path = log, .paused = !req->resume_vm, .detach = true,
	};
	pid = vm_clone_spawn(&spec, 0, err, err_size);
	if (pid < 0)
		return pid == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	out->pid = (int)pid;
	return 0;
}

const struct api_backend_ops vm_api_ops = {
	.get_info = vm_api_get_info,
	.get_config_json = vm_api_get_config_json,
	.instance_start = vm_api_instance_start,
	.pause = vm_api_pause,
	.resume = vm_api_resume,
	.snapshot_create = vm_api_snapshot_create,
	.clone_vm = vm_api_clone,
};

/* ---- a kiln waiting for PUT /snapshot/load ---- */

static void loader_get_info(void *ctx, struct api_instance_info *out)
{
	struct vm_api_loader *l = ctx;

	if (atomic_load(&l->loaded)) {
		vm_api_get_info(l->vm, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "anonymous-instance");
	out->state = API_VM_NOT_STARTED;
}

static char *loader_get_config_json(void *ctx)
{
	struct vm_api_loader *l = ctx;

	return vm_config_to_json(atomic_load(&l->loaded) ? l->vm->cfg : &l->cfg);
}

static int loader_not_loaded(char *err, size_t err_size)
{
	errmsg_set(err, err_size, "no VM yet: load a snapshot first (PUT /snapshot/load)");
	return -EBUSY;
}

static int loader_pause(void *ctx, char *err, size_t err_size)
{
	struct vm_api_loader *l = ctx;

	return atomic_load(&l->loaded) ? vm_api_pause(l->vm, err, err_size) : loader_not_loaded(err, err_size);
}

static int loader_resume(void *ctx, char *err, size_t err_size)
{
	struct vm_api_loader *l = ctx;

	return atomic_load(&l->loaded) ? vm_api_resume(l->vm, err, err_size) : loader_not_loaded(err, err_size);
}

static int loader_snapshot_create(void *ctx, const struct api_snapshot_create *req, char *err, size_t err_size)
{
	struct vm_api_loader *l = ctx;

	return atomic_load(&l->loaded) ? vm_api_snapshot_create(l->vm, req, err, err_size)
				       : loader_not_loaded(err, err_size);
}

static int loader_clone(void *ctx, const struct api_vm_clone *req, struct api_clone_info *out, char *err,
			size_t err_size)
{
	struct vm_api_loader *l = ctx;

	return atomic_load(&l->loaded) ? vm_api_clone(l->vm, req, out, err, err_size) : loader_not_loaded(err, err_size);
}

static int loader_instance_start(void *ctx, char *err, size_t err_size)
{
	struct vm_api_loader *l = ctx;

	if (atomic_load(&l->loaded))
		return vm_api_instance_start(l->vm, err, err_size);
	errmsg_set(err, err_size, "InstanceStart: this kiln waits for PUT /snapshot/load (started without a kernel)");
	return -EOPNOTSUPP;
}

static int loader_snapshot_load(void *ctx, const struct api_snapshot_load *req, char *err, size_t err_size)
{
	struct vm_api_loader *l = ctx;
	struct vm_restore_options opts = { .mem_path = req->mem_backend_path, .paused = !req->resume_vm };
	struct snap_reader *r = NULL;
	uint64_t one = 1;
	int ret;

	if (atomic_load(&l->loaded)) {
		errmsg_set(err, err_size, "a snapshot is loaded already: load into a fresh kiln");
		return -EBUSY;
	}
	if (req->track_dirty_pages || req->clock_realtime) {
		errmsg_set(err, err_size, "%s: not supported yet",
			   req->track_dirty_pages ? "track_dirty_pages" : "clock_realtime");
		return -EOPNOTSUPP;
	}
	vm_config_free(&l->cfg);
	vm_config_init(&l->cfg);
	ret = vm_snapshot_open(req->snapshot_path, &r, &l->cfg, err, err_size);
	if (ret)
		return snapshot_status(ret);
	/* The console is this process's (kiln run --console), not the one the snapshotted VM had. */
	free(l->cfg.console_path);
	l->cfg.console_path = l->console_path ? strdup(l->console_path) : NULL;
	ret = vm_restore(l->vm, r, &l->cfg, &opts, l->start_ns, err, err_size);
	snap_reader_close(r);
	if (ret)
		return snapshot_status(ret);
	atomic_store(&l->loaded, true);
	if (write(l->loaded_fd, &one, sizeof(one)) < 0)
		pr_warn("cannot wake the main thread: %s", strerror(errno));
	return 0;
}

const struct api_backend_ops vm_api_loader_ops = {
	.get_info = loader_get_info,
	.get_config_json = loader_get_config_json,
	.instance_start = loader_instance_start,
	.pause = loader_pause,
	.resume = loader_resume,
	.snapshot_create = loader_snapshot_create,
	.snapshot_load = loader_snapshot_load,
	.clone_vm = loader_clone,
};
