// SPDX-License-Identifier: MIT
/* The control requests a running VM carries out (vmm/vm_api.h), called by src/vmm/instance.c. */
#include "vmm/vm_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/legacy/i8042.h"
#include "lib/log.h"
#include "vmm/clone.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

enum ctl_vm_state vm_api_state(struct vm *vm)
{
	enum ctl_vm_state state;

	pthread_mutex_lock(&vm->lock);
	state = vm->paused ? CTL_VM_PAUSED : CTL_VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return state;
}

void vm_api_vcpus(const struct vm *vm, struct ctl_reply *reply)
{
	reply->nr_vcpus = 0;
	for (unsigned int i = 0; i < vm->nr_vcpus && i < CONFIG_MAX_VCPUS; i++)
		reply->vcpus[reply->nr_vcpus++] =
			(struct ctl_vcpu){ .index = i, .tid = atomic_load(&vm->vcpus[i]->tid) };
}

int vm_api_send_ctrl_alt_del(struct vm *vm, char *err, size_t err_size)
{
	int ret = i8042_send_ctrl_alt_del(vm_device(vm, &i8042_device_type, 0));

	if (ret == -ENOSPC) {
		errmsg_set(err, err_size, "SendCtrlAltDel: the keyboard's buffer is full: the guest is not reading its "
					  "keyboard");
		return -EBUSY;
	}
	return ret;
}

int vm_api_pause(struct vm *vm, char *err, size_t err_size)
{
	int ret = vm_pause(vm);

	if (ret == -EALREADY)
		return 0; /* Firecracker answers 204 to pausing a paused VM */
	if (ret)
		errmsg_set(err, err_size, "cannot pause: %s", ret == -ESHUTDOWN ? "the VM is stopping" : strerror(-ret));
	return ret == -ESHUTDOWN ? -EBUSY : ret;
}

int vm_api_resume(struct vm *vm, char *err, size_t err_size)
{
	int ret = vm_resume(vm);

	if (ret == -EALREADY)
		return 0;
	if (ret)
		errmsg_set(err, err_size, "cannot resume: %s", strerror(-ret));
	return ret;
}

int vm_api_snapshot_errno(int ret)
{
	/* -EINVAL, -ENOENT, -EACCES, -ENOTSUP (== -EOPNOTSUPP: another format)... are 400 already. */
	if (ret == -EBADMSG || ret == -EFBIG)
		return -EINVAL; /* a checksum mismatch, a file too large: not a usable snapshot */
	return ret;
}

/* Does the request give drive `id` an image of its own (disk_overrides or disk_copies)? */
static bool clone_has_own_disk(const struct ctl_disk_options *disks, const char *id)
{
	size_t len = strlen(id);

	for (unsigned int i = 0; i < disks->nr_overrides; i++)
		if (!strncmp(disks->overrides[i], id, len) && disks->overrides[i][len] == '=')
			return true;
	for (unsigned int i = 0; i < disks->nr_copies; i++)
		if (!strcmp(disks->copies[i], id))
			return true;
	return false;
}

/*
 * A VM whose copy would share a TAP, or a writable disk the request does not give the copy an image of
 * its own for, cannot be cloned over the API: -EOPNOTSUPP with a message.
 */
static int clone_check_resources(const struct vm_config *cfg, const struct ctl_disk_options *disks, char *err,
				 size_t err_size)
{
	if (cfg->nr_nets) {
		errmsg_set(err, err_size, "network interface %s is on TAP %s, which the copy cannot share: snapshot the VM "
			   "and use kiln clone --net-override", cfg->nets[0].iface_id, cfg->nets[0].host_dev_name);
		return -EOPNOTSUPP;
	}
	for (unsigned int i = 0; i < cfg->nr_drives; i++) {
		if (!cfg->drives[i].is_read_only && !clone_has_own_disk(disks, cfg->drives[i].drive_id)) {
			errmsg_set(err, err_size, "drive %s is writable: the copy would share it; give the copy its own "
				   "with disk_copies or disk_overrides", cfg->drives[i].drive_id);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/*
 * The copy's images, once the snapshot at `state` is written: each of req's disk_overrides checked
 * against the drive's DISK record, and each drive of disk_copies copied to
 * "<api_socket>.<drive_id>.img"; all as "DRIVE_ID=PATH" in `out` (`*nr` of them, the caller frees).
 */
static int clone_disks(const char *state, const struct ctl_vm_clone *req, char **out, unsigned int *nr, char *err,
		       size_t err_size)
{
	const struct ctl_disk_options *disks = &req->disks;
	struct snap_reader *r = NULL;
	struct vm_config cfg;
	char *path = NULL;
	int ret;

	vm_config_init(&cfg);
	ret = vm_snapshot_open(state, &r, &cfg, err, err_size);
	for (unsigned int i = 0; i < disks->nr_overrides && !ret; i++) {
		ret = vm_clone_apply_disk_override(r, &cfg, disks->overrides[i], err, err_size);
		if (!ret && !(out[(*nr)++] = strdup(disks->overrides[i])))
			ret = -ENOMEM;
	}
	for (unsigned int i = 0; i < disks->nr_copies && !ret; i++) {
		if (asprintf(&path, "%s.%s.img", req->api_socket, disks->copies[i]) < 0) {
			ret = -ENOMEM;
			break;
		}
		ret = vm_clone_copy_disk(r, &cfg, disks->copies[i], path, err, err_size);
		/* asprintf leaves its pointer undefined on failure: count only what the caller may free. */
		if (!ret && asprintf(&out[*nr], "%s=%s", disks->copies[i], path) < 0)
			ret = -ENOMEM;
		*nr += !ret;
		free(path);
	}
	snap_reader_close(r);
	vm_config_free(&cfg);
	return ret;
}

int vm_api_snapshot_create(struct vm *vm, const struct ctl_snapshot_create *req, char *err, size_t err_size)
{
	if (req->snapshot_type != CTL_SNAPSHOT_FULL) {
		errmsg_set(err, err_size, "snapshot_type \"Diff\": not supported yet");
		return -EOPNOTSUPP;
	}
	return vm_api_snapshot_errno(vm_snapshot_save(vm, req->snapshot_path, req->mem_file_path, err, err_size));
}

int vm_api_clone(struct vm *vm, const struct ctl_vm_clone *req, int *pid_out, char *err, size_t err_size)
{
	char state[4200], mem[4200], console[4200], log[4200], *disks[2 * CTL_MAX_DISK_OPTIONS] = { NULL };
	struct vm_clone_spec spec;
	unsigned int nr_disks = 0;
	pid_t pid;
	int ret;

	if (snprintf(state, sizeof(state), "%s.snap", req->api_socket) >= (int)sizeof(state) ||
	    snprintf(mem, sizeof(mem), "%s.mem", req->api_socket) >= (int)sizeof(mem) ||
	    snprintf(console, sizeof(console), "%s.console", req->api_socket) >= (int)sizeof(console) ||
	    snprintf(log, sizeof(log), "%s.log", req->api_socket) >= (int)sizeof(log)) {
		errmsg_set(err, err_size, "api_socket: path too long");
		return -ENAMETOOLONG;
	}
	ret = clone_check_resources(vm->cfg, &req->disks, err, err_size);
	ret = ret ?: vm_snapshot_save(vm, state, mem, err, err_size);
	/* The snapshot quiesced and synced the disks, and the VM stays paused: the copies are consistent. */
	ret = ret ?: clone_disks(state, req, disks, &nr_disks, err, err_size);
	if (ret) {
		ret = vm_api_snapshot_errno(ret);
		goto out;
	}
	spec = (struct vm_clone_spec){
		.state_path = state, .mem_path = mem, .api_sock = req->api_socket, .console_path = console,
		.log_path = log, .paused = !req->resume_vm, .detach = true,
		.disk_overrides = (const char *const *)disks, .nr_disk_overrides = nr_disks,
	};
	pid = vm_clone_spawn(&spec, 0, err, err_size);
	if (pid < 0)
		ret = pid == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	else
		*pid_out = (int)pid;
out:
	for (unsigned int i = 0; i < nr_disks; i++)
		free(disks[i]);
	return ret;
}
