/* SPDX-License-Identifier: MIT */
/*
 * The microVM behind `kiln run --api-sock`, with Firecracker's lifecycle (firecracker.yaml, "InstanceInfo";
 * docs/api.yaml): before InstanceStart the API configures it (boot source, machine config, drives,
 * network interfaces, entropy); PUT /actions InstanceStart checks the configuration as
 * vm_config_validate() does and hands it to the main thread, which creates and boots the VM; from then
 * on the API's calls go to the running VM (vm_api_ops), and the pre-boot-only ones are refused with
 * Firecracker's 400 "The requested operation is not supported after starting the microVM.".
 *
 * A VM booted at once (a config file or --kernel) is an instance that is running from the start.
 */
#ifndef KILN_VMM_INSTANCE_H
#define KILN_VMM_INSTANCE_H

#include <pthread.h>
#include <stdbool.h>

#include "api/routes.h"
#include "vmm/config.h"

struct vm;

enum instance_state {
	INSTANCE_CONFIGURING, /* "Not started": taking configuration, waiting for InstanceStart */
	INSTANCE_STARTING,    /* InstanceStart accepted: the main thread is creating the VM */
	INSTANCE_RUNNING,     /* the VM exists: calls go to it */
	INSTANCE_STOPPED,     /* kiln is stopping: everything is refused */
};

/* Firecracker's messages for calls in the wrong state (vmm/src/rpc_interface.rs, VmmActionError). */
#define INSTANCE_ERR_AFTER_START "The requested operation is not supported after starting the microVM."
#define INSTANCE_ERR_BEFORE_START "The requested operation is not supported before starting the microVM."

/* PUT /snapshot/load being handed to the main thread (instead of a boot). */
struct instance_load {
	char *snapshot_path;
	char *mem_path;
	bool resume;             /* resume_vm: running after the load, else paused */
	const struct api_disk_options *disks; /* the request's, valid while the load is handed over */
};

/* Firecracker's message for a load into an instance that was configured (rpc_interface.rs). */
#define INSTANCE_ERR_LOAD_CONFIGURED \
	"Loading a microVM snapshot not allowed after configuring boot-specific resources."

struct instance {
	pthread_mutex_t lock;    /* guards everything below */
	pthread_cond_t cond;     /* the end of INSTANCE_STARTING */
	enum instance_state state;
	struct vm_config *cfg;   /* the caller's; changed by the API only while INSTANCE_CONFIGURING */
	struct vm *vm;           /* INSTANCE_RUNNING */
	int start_fd;            /* eventfd, readable once InstanceStart has been accepted */
	int start_ret;           /* the main thread's answer to InstanceStart */
	char start_err[API_ERR_SIZE];
	bool configured;         /* a resource was PUT: no snapshot load from now on */
	struct instance_load *load; /* set while a PUT /snapshot/load is INSTANCE_STARTING */
};

/*
 * Initialise `inst` over `cfg` (which outlives it), not started. Returns 0 or -errno (the eventfd).
 * Free with instance_destroy().
 */
int instance_init(struct instance *inst, struct vm_config *cfg) __attribute__((warn_unused_result));
void instance_destroy(struct instance *inst);

/* The VM was booted without waiting for the API (a config file or --kernel): `inst` is running `vm`. */
void instance_set_running(struct instance *inst, struct vm *vm);

/*
 * On the main thread, after the API server started: wait until InstanceStart or PUT /snapshot/load is
 * accepted (returns 0: when inst->load is set, restore that snapshot, which replaces inst->cfg; else
 * create the VM from inst->cfg; then call instance_start_done) or SIGINT/SIGTERM/SIGHUP arrives
 * (returns -EINTR with the signal in `*signo`; the instance is then stopped). Leaves those signals
 * blocked in the calling thread, as vm_run() wants them. Other -errno: the wait itself failed.
 */
int instance_wait_start(struct instance *inst, int *signo) __attribute__((warn_unused_result));

/*
 * On the main thread: how the start went. `ret` 0: `vm` runs (vm_run next) and InstanceStart (or the
 * load) answers 204. Otherwise -errno and a message (may be NULL) for InstanceStart's 400 (a load's
 * answer follows the errno: 400 for a snapshot that cannot be used, 500 for a failure of kiln); the
 * instance takes configuration again.
 */
void instance_start_done(struct instance *inst, struct vm *vm, int ret, const char *msg);

/* The control API over an instance (ctx: struct instance). */
extern const struct api_backend_ops instance_api_ops;

#endif
