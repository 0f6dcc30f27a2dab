/* SPDX-License-Identifier: MIT */
/*
 * One microVM's lifecycle, with Firecracker's rules (firecracker.yaml, "InstanceInfo"; docs/api.yaml), as
 * functions the CLI (src/cli/run.c) and a host daemon call: configure (the control requests before
 * InstanceStart: boot source, machine config, drives, network interfaces, entropy), start (instance_start,
 * or InstanceStart handed to the main thread: instance_boot_from_api), restore (instance_restore, or PUT
 * /snapshot/load), snapshot and clone (control requests to the running VM), stop (instance_stop). Once
 * running, the pre-boot-only requests are refused with Firecracker's 400 "The requested operation is not
 * supported after starting the microVM.".
 */
#ifndef KILN_VMM_INSTANCE_H
#define KILN_VMM_INSTANCE_H

#include <pthread.h>
#include <stdbool.h>

#include <stdint.h>

#include "vmm/config.h"
#include "vmm/control.h"

struct vm;
struct vm_restore_options;
struct vm_restore_overrides;

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
	const char *snapshot_path; /* the request's strings, valid while the load is handed over */
	const char *mem_path;
	bool resume;             /* resume_vm: running after the load, else paused */
	const struct ctl_disk_options *disks;
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
	char start_err[CTL_ERR_SIZE];
	bool configured;         /* a resource was PUT: no snapshot load from now on */
	struct instance_load *load; /* set while a PUT /snapshot/load is INSTANCE_STARTING */
	unsigned int profile_hz; /* set before the start: sample guest RIPs this often (kiln run --profile); 0: no */
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

/*
 * The control interface (vmm/control.h, a ctl_handler_fn; ctx: struct instance): GET / and the config at any
 * time; configuration only while INSTANCE_CONFIGURING; InstanceStart and PUT /snapshot/load handed to the
 * main thread (instance_boot_from_api), this thread waiting for its answer, whose fault message is the
 * builder's own ("Cannot start microvm: cannot boot K: kernel occupies ..."); the runtime requests (GET
 * /vcpus, pause, resume, SendCtrlAltDel, snapshot, clone) only once running, carried out by vm_api.c.
 */
int instance_handle(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err, size_t err_size);

/*
 * Boot now from inst->cfg (already checked with vm_config_validate: a config file or flags): vm_create into
 * `vm`, profiling when inst->profile_hz, and the instance running. 0, or -errno with the reason in `err`.
 */
int instance_start(struct instance *inst, struct vm *vm, uint64_t start_ns, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Restore the snapshot at `state_path` (memory file and options `opts`, overrides `ov` or NULL) into `vm`
 * (vm_restore_file: inst->cfg becomes the snapshot's config, with inst->cfg's console), and the instance
 * running. 0, or -errno with a message: see cli_restore_status for which errnos mean a refused snapshot.
 */
int instance_restore(struct instance *inst, struct vm *vm, const char *state_path,
		     const struct vm_restore_options *opts, const struct vm_restore_overrides *ov, uint64_t start_ns,
		     char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * `kiln run --api-sock` with no kernel, Firecracker's way, on the main thread once the API server serves
 * `inst`: wait for InstanceStart (then build `vm` from inst->cfg) or PUT /snapshot/load (then restore it);
 * a VM that cannot be built is that request's error, with the reason, and the wait goes on. Returns 0 with
 * `vm` created and the instance running, -EINTR when SIGINT/SIGTERM/SIGHUP came first (`*signo`), or
 * another -errno when waiting failed.
 */
int instance_boot_from_api(struct instance *inst, struct vm *vm, uint64_t start_ns, int *signo)
	__attribute__((warn_unused_result));

/* Stop: a running VM stops (vm_stop, VM_STOP_SIGNAL, `why`), a pending start is refused, later requests too. */
void instance_stop(struct instance *inst, const char *why);

#endif
