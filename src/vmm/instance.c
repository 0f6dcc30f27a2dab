// SPDX-License-Identifier: MIT
/*
 * One microVM's lifecycle behind the control API: configuration before InstanceStart, the hand-over
 * to the main thread that boots it, then every call forwarded to the running VM's ops (vm_api.c).
 *
 * Threads: the API server calls the ops below from a thread per connection (api/server.c); the lock
 * serialises them on the instance. The main thread waits in instance_wait_start() and answers through
 * instance_start_done(). InstanceStart waits for that answer (as Firecracker's API answers once the
 * vCPUs are started) in INSTANCE_STARTING, where every other call is refused, so nothing changes
 * inst->cfg while the main thread builds the VM from it. The runtime ops run without the lock (FORWARD).
 *
 * Rules and messages follow Firecracker (vmm/src/rpc_interface.rs, vmm_config/drive.rs, net.rs) where
 * it has them.
 */
#include "vmm/instance.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/loop.h"
#include "vmm/vm.h"
#include "vmm/vm_api.h"

int instance_init(struct instance *inst, struct vm_config *cfg)
{
	memset(inst, 0, sizeof(*inst));
	inst->cfg = cfg;
	inst->state = INSTANCE_CONFIGURING;
	inst->start_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (inst->start_fd < 0)
		return -errno;
	pthread_mutex_init(&inst->lock, NULL);
	pthread_cond_init(&inst->cond, NULL);
	return 0;
}

void instance_destroy(struct instance *inst)
{
	if (inst->start_fd >= 0)
		close(inst->start_fd);
	inst->start_fd = -1;
	pthread_cond_destroy(&inst->cond);
	pthread_mutex_destroy(&inst->lock);
}

void instance_set_running(struct instance *inst, struct vm *vm)
{
	pthread_mutex_lock(&inst->lock);
	inst->vm = vm;
	inst->state = INSTANCE_RUNNING;
	pthread_mutex_unlock(&inst->lock);
}

/* Stop the instance: a pending InstanceStart is answered, every later call refused. Lock held. */
static void stop_locked(struct instance *inst)
{
	if (inst->state == INSTANCE_STARTING) {
		inst->start_ret = -ECANCELED;
		snprintf(inst->start_err, sizeof(inst->start_err), "kiln is stopping");
	}
	inst->state = INSTANCE_STOPPED;
	pthread_cond_broadcast(&inst->cond);
}

/* instance_wait_start's loop: what ended it. */
struct start_wait {
	struct loop loop;
	struct instance *inst;
	int signo;
	bool started;
};

static void on_start(void *opaque, int fd, uint32_t events)
{
	struct start_wait *w = opaque;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) == sizeof(n)) {
		w->started = true;
		loop_quit(&w->loop);
	}
}

static void on_start_signal(void *opaque, int signo)
{
	struct start_wait *w = opaque;

	w->signo = signo;
	loop_quit(&w->loop);
}

int instance_wait_start(struct instance *inst, int *signo)
{
	struct start_wait w = { .inst = inst };
	int ret;

	*signo = 0;
	ret = loop_init(&w.loop);
	if (ret)
		return ret;
	loop_on_error(&w.loop, "the wait for InstanceStart", NULL, NULL);
	ret = loop_add_stop_signals(&w.loop, on_start_signal, &w);
	ret = ret ?: loop_add(&w.loop, inst->start_fd, EPOLLIN, on_start, &w);
	ret = ret ?: loop_run(&w.loop);
	/* A signal wins over a start that arrived at the same time: the user asked kiln to stop. */
	if (!ret && !w.signo && loop_run_once(&w.loop, 0) < 0)
		ret = -EIO;
	if (!ret && w.signo) {
		*signo = w.signo;
		ret = -EINTR;
	}
	if (ret) {
		pthread_mutex_lock(&inst->lock);
		stop_locked(inst);
		pthread_mutex_unlock(&inst->lock);
	}
	loop_destroy(&w.loop);
	return ret;
}

void instance_start_done(struct instance *inst, struct vm *vm, int ret, const char *msg)
{
	pthread_mutex_lock(&inst->lock);
	if (inst->state == INSTANCE_STARTING) {
		inst->start_ret = ret;
		inst->start_err[0] = '\0';
		if (ret)
			snprintf(inst->start_err, sizeof(inst->start_err), "%s", msg ? msg : "");
		inst->state = ret ? INSTANCE_CONFIGURING : INSTANCE_RUNNING;
		inst->vm = ret ? NULL : vm;
		pthread_cond_broadcast(&inst->cond);
	}
	pthread_mutex_unlock(&inst->lock);
}

/*
 * The gate of every op, lock held: 0 when the instance is in the state the op needs (pre-boot ops:
 * configuring; runtime ops: running), else -EBUSY with Firecracker's message.
 */
static int need_state(struct instance *inst, bool pre_boot, char *err, size_t err_size)
{
	switch (inst->state) {
	case INSTANCE_CONFIGURING:
		if (pre_boot)
			return 0;
		errmsg_set(err, err_size, INSTANCE_ERR_BEFORE_START);
		return -EBUSY;
	case INSTANCE_RUNNING:
		if (!pre_boot)
			return 0;
		errmsg_set(err, err_size, INSTANCE_ERR_AFTER_START);
		return -EBUSY;
	case INSTANCE_STARTING: /* another connection's InstanceStart or load is under way */
		errmsg_set(err, err_size, "the microVM is being started");
		return -EBUSY;
	case INSTANCE_STOPPED:
		break;
	}
	errmsg_set(err, err_size, "kiln is stopping");
	return -EBUSY;
}

/* An op kiln's running VM does not have (yet): the API's usual answer. */
static int not_supported(const char *what, char *err, size_t err_size)
{
	errmsg_set(err, err_size, "%s: not supported yet", what);
	return -EOPNOTSUPP;
}

static void inst_get_info(void *ctx, struct api_instance_info *out)
{
	struct instance *inst = ctx;

	pthread_mutex_lock(&inst->lock);
	if (inst->state == INSTANCE_RUNNING && vm_api_ops.get_info) {
		vm_api_ops.get_info(inst->vm, out);
	} else {
		snprintf(out->id, sizeof(out->id), "anonymous-instance");
		out->state = API_VM_NOT_STARTED;
	}
	pthread_mutex_unlock(&inst->lock);
}

static char *inst_get_config_json(void *ctx)
{
	struct instance *inst = ctx;
	char *json;

	pthread_mutex_lock(&inst->lock);
	if (inst->state == INSTANCE_RUNNING && vm_api_ops.get_config_json)
		json = vm_api_ops.get_config_json(inst->vm);
	else
		json = vm_config_to_json(inst->cfg);
	pthread_mutex_unlock(&inst->lock);
	return json;
}

static int inst_put_boot_source(void *ctx, const struct vm_config *boot, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	struct vm_config check;
	int ret;

	/* Firecracker opens the kernel at PUT time: a wrong path is this request's error, not InstanceStart's. */
	vm_config_init(&check);
	check.kernel_path = boot->kernel_path;
	check.initrd_path = boot->initrd_path;
	check.cmdline = boot->cmdline;
	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (!ret)
		ret = vm_config_validate(&check, err, err_size);
	if (!ret) {
		ret = api_boot_source_apply(inst->cfg, boot);
		if (ret)
			errmsg_set(err, err_size, "boot-source: out of memory");
	}
	inst->configured |= ret == 0;
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

static int inst_put_machine_config(void *ctx, const struct api_machine_config *mc, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	int ret;

	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (!ret)
		ret = api_machine_config_apply(inst->cfg, mc, err, err_size);
	inst->configured |= ret == 0;
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

/* A deep copy of a drive; 0 or -ENOMEM. */
static int drive_copy(struct vm_drive_config *dst, const struct vm_drive_config *src)
{
	*dst = *src;
	dst->drive_id = strdup(src->drive_id);
	dst->path_on_host = strdup(src->path_on_host);
	dst->partuuid = src->partuuid ? strdup(src->partuuid) : NULL;
	if (!dst->drive_id || !dst->path_on_host || (src->partuuid && !dst->partuuid)) {
		vm_drive_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Firecracker's BlockDeviceConfig: a known id replaces that drive, one root device at most (the rules on
 * the whole list are vm_config_put_drive's, shared with the config file), and the backing file opens as
 * the drive will use it (Firecracker opens it when the drive is PUT).
 */
static int inst_put_drive(void *ctx, const struct vm_drive_config *d, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	struct vm_drive_config copy;
	int ret;

	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (ret)
		goto out;
	if (access(d->path_on_host, d->is_read_only ? R_OK : R_OK | W_OK) < 0) {
		errmsg_set(err, err_size, "drives.path_on_host: %s: %s", d->path_on_host, strerror(errno));
		ret = -EINVAL;
		goto out;
	}
	ret = drive_copy(&copy, d);
	if (ret) {
		errmsg_set(err, err_size, "drives: out of memory");
		goto out;
	}
	ret = vm_config_put_drive(inst->cfg, "drives", &copy, err, err_size);
	if (ret)
		vm_drive_config_free(&copy); /* the config took nothing */
	inst->configured |= ret == 0;
out:
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

static int net_copy(struct vm_net_config *dst, const struct vm_net_config *src)
{
	*dst = *src;
	dst->iface_id = strdup(src->iface_id);
	dst->host_dev_name = strdup(src->host_dev_name);
	if (!dst->iface_id || !dst->host_dev_name) {
		vm_net_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* NetworkInterfaceConfig: a known id replaces that interface; no shared TAP or MAC (vm_config_put_net). */
static int inst_put_net(void *ctx, const struct vm_net_config *n, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	struct vm_net_config copy;
	int ret;

	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (ret)
		goto out;
	ret = net_copy(&copy, n);
	if (ret) {
		errmsg_set(err, err_size, "network-interfaces: out of memory");
		goto out;
	}
	ret = vm_config_put_net(inst->cfg, "network-interfaces", &copy, err, err_size);
	if (ret)
		vm_net_config_free(&copy);
	inst->configured |= ret == 0;
out:
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

static int inst_put_entropy(void *ctx, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	int ret;

	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (!ret)
		inst->cfg->entropy = true;
	inst->configured |= ret == 0;
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

/* What InstanceStart checks before the main thread builds anything: what a config file gets. Lock held. */
static int check_startable(const struct instance *inst, char *err, size_t err_size)
{
	if (!inst->cfg->kernel_path) {
		/* Firecracker's StartMicrovmError::MissingKernelConfig. */
		errmsg_set(err, err_size, "Cannot start microvm without kernel configuration. (PUT /boot-source first)");
		return -EINVAL;
	}
	return vm_config_validate(inst->cfg, err, err_size);
}

/* Hand the start (or the load in inst->load) to the main thread and wait for its answer. Lock held. */
static int hand_over(struct instance *inst, char *err, size_t err_size)
{
	uint64_t one = 1;
	int ret;

	inst->state = INSTANCE_STARTING;
	inst->start_ret = 0;
	inst->start_err[0] = '\0';
	if (write(inst->start_fd, &one, sizeof(one)) != sizeof(one)) {
		ret = -errno;
		inst->state = INSTANCE_CONFIGURING;
		errmsg_set(err, err_size, "cannot wake the main thread: %s", strerror(-ret));
		return ret;
	}
	while (inst->state == INSTANCE_STARTING)
		pthread_cond_wait(&inst->cond, &inst->lock);
	return inst->start_ret;
}

static int inst_instance_start(void *ctx, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	int ret;

	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (!ret)
		ret = check_startable(inst, err, err_size);
	if (ret)
		goto out;
	ret = hand_over(inst, err, err_size);
	if (ret) {
		errmsg_set(err, err_size, "Cannot start microvm: %s", inst->start_err[0] ? inst->start_err : strerror(-ret));
		/* The VM could not be built from a valid configuration (KVM, memory, a kernel it cannot load):
		 * Firecracker answers 400 for every StartMicrovm error. */
		ret = -EINVAL;
	}
out:
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

/*
 * PUT /snapshot/load: Firecracker's rule, only into an instance nothing was configured in; then, as
 * InstanceStart, the main thread builds the VM (by restoring the snapshot) while this thread waits.
 */
static int inst_snapshot_load(void *ctx, const struct api_snapshot_load *req, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	struct instance_load load = { .resume = req->resume_vm, .disks = &req->disks };
	int ret;

	if (req->track_dirty_pages || req->clock_realtime)
		return not_supported(req->track_dirty_pages ? "track_dirty_pages" : "clock_realtime", err, err_size);
	load.snapshot_path = strdup(req->snapshot_path);
	load.mem_path = strdup(req->mem_backend_path);
	pthread_mutex_lock(&inst->lock);
	ret = need_state(inst, true, err, err_size);
	if (!ret && inst->configured) {
		errmsg_set(err, err_size, INSTANCE_ERR_LOAD_CONFIGURED);
		ret = -EBUSY;
	}
	if (!ret && (!load.snapshot_path || !load.mem_path)) {
		errmsg_set(err, err_size, "snapshot/load: out of memory");
		ret = -ENOMEM;
	}
	if (ret)
		goto out;
	inst->load = &load;
	ret = hand_over(inst, err, err_size);
	inst->load = NULL;
	if (ret)
		errmsg_set(err, err_size, "%s", inst->start_err[0] ? inst->start_err : strerror(-ret));
out:
	pthread_mutex_unlock(&inst->lock);
	free(load.snapshot_path);
	free(load.mem_path);
	return ret;
}

/*
 * The runtime ops: the state checked under the lock, then forwarded to the running VM's ops without
 * it, because they may wait for vCPUs (a pause waits for each to leave its exit) and GET / must still
 * answer meanwhile. The VM cannot go away under the call: the main thread destroys it only after the
 * API server, and every call in it, has stopped; the VM serialises its own pause, resume and
 * snapshot (vm_control_begin).
 */
#define FORWARD(op, what, ...)                                                                         \
	do {                                                                                           \
		struct instance *inst = ctx;                                                           \
		struct vm *vm;                                                                         \
		int ret;                                                                               \
                                                                                                       \
		pthread_mutex_lock(&inst->lock);                                                       \
		ret = need_state(inst, false, err, err_size);                                          \
		vm = inst->vm;                                                                         \
		pthread_mutex_unlock(&inst->lock);                                                     \
		if (!ret)                                                                              \
			ret = vm_api_ops.op ? vm_api_ops.op(vm, __VA_ARGS__)                           \
					    : not_supported(what, err, err_size);                      \
		return ret;                                                                            \
	} while (0)

static int inst_send_ctrl_alt_del(void *ctx, char *err, size_t err_size)
{
	FORWARD(send_ctrl_alt_del, "SendCtrlAltDel", err, err_size);
}

static int inst_pause(void *ctx, char *err, size_t err_size)
{
	FORWARD(pause, "vm state \"Paused\"", err, err_size);
}

static int inst_resume(void *ctx, char *err, size_t err_size)
{
	FORWARD(resume, "vm state \"Resumed\"", err, err_size);
}

static int inst_snapshot_create(void *ctx, const struct api_snapshot_create *req, char *err, size_t err_size)
{
	FORWARD(snapshot_create, "snapshot/create", req, err, err_size);
}

static int inst_clone_vm(void *ctx, const struct api_vm_clone *req, struct api_clone_info *out, char *err,
			 size_t err_size)
{
	FORWARD(clone_vm, "vm/clone", req, out, err, err_size);
}

/* FlushMetrics (kiln has no metrics) stays NULL: the API answers "not supported yet". */
const struct api_backend_ops instance_api_ops = {
	.get_info = inst_get_info,
	.get_config_json = inst_get_config_json,
	.put_boot_source = inst_put_boot_source,
	.put_machine_config = inst_put_machine_config,
	.put_drive = inst_put_drive,
	.put_net = inst_put_net,
	.put_entropy = inst_put_entropy,
	.instance_start = inst_instance_start,
	.send_ctrl_alt_del = inst_send_ctrl_alt_del,
	.pause = inst_pause,
	.resume = inst_resume,
	.snapshot_create = inst_snapshot_create,
	.snapshot_load = inst_snapshot_load,
	.clone_vm = inst_clone_vm,
};
