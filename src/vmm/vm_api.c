// SPDX-License-Identifier: MIT
#include "vmm/vm_api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/legacy/i8042.h"
#include "lib/log.h"
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

/* Firecracker's SendCtrlAltDel (x86): the keys typed on the i8042's keyboard. */
static int vm_api_send_ctrl_alt_del(void *ctx, char *err, size_t err_size)
{
	struct vm *vm = ctx;
	int ret = i8042_send_ctrl_alt_del(vm->i8042);

	if (ret == -ENOSPC) {
		errmsg_set(err, err_size, "SendCtrlAltDel: the keyboard's buffer is full: the guest is not reading its "
					  "keyboard");
		return -EBUSY;
	}
	return ret;
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

const struct api_backend_ops vm_api_ops = {
	.get_info = vm_api_get_info,
	.get_config_json = vm_api_get_config_json,
	.instance_start = vm_api_instance_start,
	.send_ctrl_alt_del = vm_api_send_ctrl_alt_del,
	.pause = vm_api_pause,
	.resume = vm_api_resume,
};
