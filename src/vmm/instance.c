// SPDX-License-Identifier: MIT
/*
 * One microVM's lifecycle, for the CLI and a host daemon alike: configuration before InstanceStart, the
 * start (from a config, or from a snapshot file), the hand-over of InstanceStart and PUT /snapshot/load to
 * the main thread that builds the VM, the runtime requests (vm_api.c), and the stop. instance_handle is
 * the control interface (vmm/control.h) the API server calls.
 *
 * Threads: the API server calls the ops below from a thread per connection (api/server.c); the lock
 * serialises them on the instance. The main thread waits in instance_wait_start() and answers through
 * instance_start_done(). InstanceStart waits for that answer (as Firecracker's API answers once the
 * vCPUs are started) in INSTANCE_STARTING, where every other call is refused, so nothing changes
 * inst->cfg while the main thread builds the VM from it. The runtime requests run without the lock (run_op).
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
#include "vmm/restore.h"
#include "vmm/snapshot.h"
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
 * The gate of every request, lock held: 0 when the instance is in the state the request needs (pre-boot:
 * configuring; runtime: running), else -EBUSY with Firecracker's message.
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

static int put_boot_source(struct instance *inst, const struct vm_config *boot, char *err, size_t err_size)
{
	struct vm_config check;
	int ret;

	/* Firecracker opens the kernel at PUT time: a wrong path is this request's error, not InstanceStart's. */
	vm_config_init(&check);
	check.kernel_path = boot->kernel_path;
	check.initrd_path = boot->initrd_path;
	check.cmdline = boot->cmdline;
	ret = vm_config_validate(&check, err, err_size);
	if (!ret) {
		ret = vm_config_apply_boot_source(inst->cfg, boot);
		if (ret)
			errmsg_set(err, err_size, "boot-source: out of memory");
	}
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
static int put_drive(struct instance *inst, const struct vm_drive_config *d, char *err, size_t err_size)
{
	struct vm_drive_config copy;
	int ret;

	if (access(d->path_on_host, d->is_read_only ? R_OK : R_OK | W_OK) < 0) {
		errmsg_set(err, err_size, "drives.path_on_host: %s: %s", d->path_on_host, strerror(errno));
		return -EINVAL;
	}
	if (drive_copy(&copy, d)) {
		errmsg_set(err, err_size, "drives: out of memory");
		return -ENOMEM;
	}
	ret = vm_config_put_drive(inst->cfg, "drives", &copy, err, err_size);
	if (ret)
		vm_drive_config_free(&copy); /* the config took nothing */
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
static int put_net(struct instance *inst, const struct vm_net_config *n, char *err, size_t err_size)
{
	struct vm_net_config copy;
	int ret;

	if (net_copy(&copy, n)) {
		errmsg_set(err, err_size, "network-interfaces: out of memory");
		return -ENOMEM;
	}
	ret = vm_config_put_net(inst->cfg, "network-interfaces", &copy, err, err_size);
	if (ret)
		vm_net_config_free(&copy);
	return ret;
}

/* The configuration requests, before InstanceStart; lock held. */
static int configure(struct instance *inst, const struct ctl_request *req, char *err, size_t err_size)
{
	int ret = need_state(inst, true, err, err_size);

	if (ret)
		return ret;
	switch (req->op) {
	case CTL_OP_PUT_BOOT_SOURCE:
		ret = put_boot_source(inst, &req->boot_source, err, err_size);
		break;
	case CTL_OP_PUT_MACHINE_CONFIG:
		ret = vm_config_apply_machine(inst->cfg, &req->machine.values, req->machine.set, err, err_size);
		break;
	case CTL_OP_PUT_DRIVE:
		ret = put_drive(inst, &req->drive, err, err_size);
		break;
	case CTL_OP_PUT_NET:
		ret = put_net(inst, &req->net, err, err_size);
		break;
	case CTL_OP_PUT_ENTROPY:
		/* Firecracker's entropy device; its rate_limiter is not implemented, so the request carries nothing. */
		inst->cfg->entropy = true;
		break;
	default:
		return ctl_not_supported(req->op, err, err_size);
	}
	inst->configured |= ret == 0;
	return ret;
}

/* The requests a running VM carries out (vm_api.c); lock held, so the VM cannot go away under the call
 * (the main thread destroys it only after the API server has stopped). */
/*
 * A runtime request, on the running VM, without the instance lock: it may wait for vCPUs (a pause waits
 * for each to leave its exit) and GET / must still answer meanwhile. The VM cannot go away under the
 * call: the main thread destroys it only after the API server, and every call in it, has stopped; the
 * VM serialises its own pause, resume and snapshot (vm_control_begin).
 */
static int run_op(struct vm *vm, const struct ctl_request *req, struct ctl_reply *reply, char *err,
		  size_t err_size)
{
	switch (req->op) {
	case CTL_OP_GET_VCPUS:
		vm_api_vcpus(vm, reply);
		return 0;
	case CTL_OP_SEND_CTRL_ALT_DEL:
		return vm_api_send_ctrl_alt_del(vm, err, err_size);
	case CTL_OP_PAUSE:
		return vm_api_pause(vm, err, err_size);
	case CTL_OP_RESUME:
		return vm_api_resume(vm, err, err_size);
	case CTL_OP_SNAPSHOT_CREATE:
		return vm_api_snapshot_create(vm, &req->snapshot_create, err, err_size);
	case CTL_OP_VM_CLONE:
		return vm_api_clone(vm, &req->clone, &reply->clone_pid, err, err_size);
	default:
		return ctl_not_supported(req->op, err, err_size);
	}
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

/* InstanceStart; lock held. */
static int instance_start_request(struct instance *inst, char *err, size_t err_size)
{
	int ret = need_state(inst, true, err, err_size);

	ret = ret ?: check_startable(inst, err, err_size);
	if (ret)
		return ret;
	ret = hand_over(inst, err, err_size);
	if (ret) {
		/* The main thread's reason: the loader's, KVM's, the device's (instance_boot_from_api). */
		errmsg_set(err, err_size, "Cannot start microvm: %s", inst->start_err[0] ? inst->start_err : strerror(-ret));
		/* The VM could not be built from a valid configuration (KVM, memory, a kernel it cannot load):
		 * Firecracker answers 400 for every StartMicrovm error. */
		ret = -EINVAL;
	}
	return ret;
}

/*
 * PUT /snapshot/load: Firecracker's rule, only into an instance nothing was configured in; then, as
 * InstanceStart, the main thread builds the VM (by restoring the snapshot) while this thread waits.
 * Lock held.
 */
static int snapshot_load_request(struct instance *inst, const struct ctl_snapshot_load *req, char *err,
				 size_t err_size)
{
	struct instance_load load = {
		.snapshot_path = req->snapshot_path, .mem_path = req->mem_backend_path, .resume = req->resume_vm,
		.disks = &req->disks,
	};
	int ret;

	if (req->track_dirty_pages || req->clock_realtime) {
		errmsg_set(err, err_size, "%s: not supported yet",
			   req->track_dirty_pages ? "track_dirty_pages" : "clock_realtime");
		return -EOPNOTSUPP;
	}
	ret = need_state(inst, true, err, err_size);
	if (ret)
		return ret;
	if (inst->configured) {
		errmsg_set(err, err_size, INSTANCE_ERR_LOAD_CONFIGURED);
		return -EBUSY;
	}
	/* The request outlives the hand-over: this thread waits in it. */
	inst->load = &load;
	ret = hand_over(inst, err, err_size);
	inst->load = NULL;
	if (ret)
		errmsg_set(err, err_size, "%s", inst->start_err[0] ? inst->start_err : strerror(-ret));
	return ret;
}

int instance_handle(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err, size_t err_size)
{
	struct instance *inst = ctx;
	int ret = 0;

	pthread_mutex_lock(&inst->lock);
	switch (req->op) {
	case CTL_OP_GET_INFO:
		snprintf(reply->info.id, sizeof(reply->info.id), "anonymous-instance");
		reply->info.state = inst->state == INSTANCE_RUNNING ? vm_api_state(inst->vm) : CTL_VM_NOT_STARTED;
		break;
	case CTL_OP_GET_VM_CONFIG:
	case CTL_OP_GET_MACHINE_CONFIG:
		reply->config_json = vm_config_to_json(inst->state == INSTANCE_RUNNING ? inst->vm->cfg : inst->cfg);
		if (!reply->config_json)
			ret = -errno;
		break;
	case CTL_OP_PUT_BOOT_SOURCE:
	case CTL_OP_PUT_MACHINE_CONFIG:
	case CTL_OP_PUT_DRIVE:
	case CTL_OP_PUT_NET:
	case CTL_OP_PUT_ENTROPY:
		ret = configure(inst, req, err, err_size);
		break;
	case CTL_OP_INSTANCE_START:
		ret = instance_start_request(inst, err, err_size);
		break;
	case CTL_OP_SNAPSHOT_LOAD:
		ret = snapshot_load_request(inst, &req->snapshot_load, err, err_size);
		break;
	case CTL_OP_FLUSH_METRICS: /* kiln has no metrics, in any state */
	case CTL_OP_GET_VERSION:   /* the API layer's own */
		ret = ctl_not_supported(req->op, err, err_size);
		break;
	default: {
		struct vm *vm = inst->vm;

		ret = need_state(inst, false, err, err_size);
		pthread_mutex_unlock(&inst->lock);
		return ret ?: run_op(vm, req, reply, err, err_size);
	}
	}
	pthread_mutex_unlock(&inst->lock);
	return ret;
}

/* Profiling, when asked for, once the VM exists: 0, or -ENOMEM with a message and the VM destroyed. */
static int enable_profiling(struct instance *inst, struct vm *vm, char *err, size_t err_size)
{
	if (!inst->profile_hz || !vm_enable_profiling(vm, inst->profile_hz))
		return 0;
	vm_destroy(vm);
	errmsg_set(err, err_size, "cannot enable profiling");
	return -ENOMEM;
}

int instance_start(struct instance *inst, struct vm *vm, uint64_t start_ns, char *err, size_t err_size)
{
	int ret = vm_create(vm, inst->cfg, start_ns, err, err_size);

	ret = ret ?: enable_profiling(inst, vm, err, err_size);
	if (!ret)
		instance_set_running(inst, vm);
	return ret;
}

int instance_restore(struct instance *inst, struct vm *vm, const char *state_path,
		     const struct vm_restore_options *opts, const struct vm_restore_overrides *ov, uint64_t start_ns,
		     char *err, size_t err_size)
{
	int ret = vm_restore_file(vm, inst->cfg, state_path, opts, ov, start_ns, err, err_size);

	ret = ret ?: enable_profiling(inst, vm, err, err_size);
	if (!ret)
		instance_set_running(inst, vm);
	return ret;
}

/* PUT /snapshot/load's request as a restore: kiln's disk_overrides and disk_copies are --disk-override and
 * --disk-copy. inst->cfg is the main thread's to change: the API thread waits in the load. */
static int load_from_api(struct instance *inst, struct vm *vm, uint64_t start_ns, char *err, size_t err_size)
{
	const struct instance_load *load = inst->load;
	struct vm_restore_options opts = { .mem_path = load->mem_path, .paused = !load->resume };
	struct vm_restore_overrides ov = { .n = 0 };

	_Static_assert(2 * CTL_MAX_DISK_OPTIONS <= VM_RESTORE_MAX_OVERRIDES, "API disk options exceed the overrides");
	for (unsigned int i = 0; i < load->disks->nr_overrides; i++)
		ov.list[ov.n++] = (struct vm_restore_override){ VM_OVERRIDE_DISK, load->disks->overrides[i] };
	for (unsigned int i = 0; i < load->disks->nr_copies; i++)
		ov.list[ov.n++] = (struct vm_restore_override){ VM_OVERRIDE_DISK_COPY, load->disks->copies[i] };
	return vm_restore_file(vm, inst->cfg, load->snapshot_path, &opts, &ov, start_ns, err, err_size);
}

int instance_boot_from_api(struct instance *inst, struct vm *vm, uint64_t start_ns, int *signo)
{
	char msg[CTL_ERR_SIZE], why[CTL_ERR_SIZE - 32];
	bool load;
	int ret;

	for (;;) {
		ret = instance_wait_start(inst, signo);
		if (ret == -EINTR) {
			pr_info("stopped by %s before InstanceStart", strsignal(*signo));
			return ret;
		}
		if (ret) {
			pr_err("cannot wait for InstanceStart: %s", strerror(-ret));
			return ret;
		}
		/* inst->cfg is ours to read: the API thread waits in InstanceStart until instance_start_done. */
		load = inst->load != NULL;
		why[0] = '\0';
		ret = load ? load_from_api(inst, vm, start_ns, why, sizeof(why))
			   : vm_create(vm, inst->cfg, start_ns, why, sizeof(why));
		ret = ret ?: enable_profiling(inst, vm, why, sizeof(why));
		if (!ret) {
			instance_start_done(inst, vm, 0, NULL);
			return 0;
		}
		snprintf(msg, sizeof(msg), "%s%s", load ? "" : "cannot create the VM: ", why);
		pr_err("%s: %s", load ? "snapshot/load" : "InstanceStart", msg);
		/* A load refused for its snapshot answers 400, a kiln failure 500 (vm_api_snapshot_errno). */
		instance_start_done(inst, NULL, load ? vm_api_snapshot_errno(ret) : ret, msg);
	}
}

void instance_stop(struct instance *inst, const char *why)
{
	pthread_mutex_lock(&inst->lock);
	if (inst->state == INSTANCE_RUNNING)
		vm_stop(inst->vm, VM_STOP_SIGNAL, "%s", why);
	stop_locked(inst);
	pthread_mutex_unlock(&inst->lock);
}
