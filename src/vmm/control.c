// SPDX-License-Identifier: MIT
/* The parts of the control interface (vmm/control.h) every handler shares. */
#include "vmm/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

void ctl_reply_free(struct ctl_reply *reply)
{
	free(reply->config_json);
	memset(reply, 0, sizeof(*reply));
}

const char *ctl_op_name(enum ctl_op op)
{
	/* In the request's words, for "... not supported yet". */
	static const char *const names[] = {
		[CTL_OP_GET_INFO] = "GET /",
		[CTL_OP_GET_VERSION] = "GET /version",
		[CTL_OP_GET_VM_CONFIG] = "GET /vm/config",
		[CTL_OP_GET_MACHINE_CONFIG] = "GET /machine-config",
		[CTL_OP_GET_VCPUS] = "GET /vcpus",
		[CTL_OP_PUT_BOOT_SOURCE] = "boot-source",
		[CTL_OP_PUT_MACHINE_CONFIG] = "machine-config",
		[CTL_OP_PUT_DRIVE] = "drives",
		[CTL_OP_PUT_NET] = "network-interfaces",
		[CTL_OP_PUT_ENTROPY] = "entropy",
		[CTL_OP_INSTANCE_START] = "InstanceStart",
		[CTL_OP_SEND_CTRL_ALT_DEL] = "SendCtrlAltDel",
		[CTL_OP_FLUSH_METRICS] = "FlushMetrics",
		[CTL_OP_PAUSE] = "vm state \"Paused\"",
		[CTL_OP_RESUME] = "vm state \"Resumed\"",
		[CTL_OP_SNAPSHOT_CREATE] = "snapshot/create",
		[CTL_OP_SNAPSHOT_LOAD] = "snapshot/load",
		[CTL_OP_VM_CLONE] = "vm/clone",
	};

	return (unsigned int)op < sizeof(names) / sizeof(names[0]) && names[op] ? names[op] : "this request";
}

int ctl_not_supported(enum ctl_op op, char *err, size_t err_size)
{
	errmsg_set(err, err_size, "%s: not supported yet", ctl_op_name(op));
	return -EOPNOTSUPP;
}
