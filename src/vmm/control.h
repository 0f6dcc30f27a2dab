/* SPDX-License-Identifier: MIT */
/*
 * The control interface of one VM: typed requests in, a reply out. The VMM defines it and implements it
 * (src/vmm/instance.c:instance_handle); the HTTP API (src/api/routes.c) parses Firecracker's requests into
 * it and writes the replies as JSON, and a host daemon can drive a VM through the same function without
 * HTTP. A new endpoint is a route row and a parser in routes.c, an op here, and one case in the handler.
 */
#ifndef KILN_VMM_CONTROL_H
#define KILN_VMM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/config.h"

/* Room for a fault message, in bytes with the NUL. */
#define CTL_ERR_SIZE 512

/* The VM's state as GET / reports it (Firecracker's InstanceInfo.state). */
enum ctl_vm_state {
	CTL_VM_NOT_STARTED, /* "Not started": configurable, not booted (or a snapshot not loaded yet) */
	CTL_VM_RUNNING,     /* "Running" */
	CTL_VM_PAUSED,      /* "Paused" */
};

struct ctl_info {
	char id[CONFIG_MAX_ID + 1]; /* the VM's id (Firecracker's --id); "anonymous-instance" by default */
	enum ctl_vm_state state;
};

/*
 * PUT /machine-config (every field: the body's, Firecracker's defaults for the optional ones absent) or
 * PATCH /machine-config (the fields in the body only). Applied with vm_config_apply_machine().
 */
struct ctl_machine_config {
	bool patch;               /* from PATCH (for logs; `set` says what to change) */
	unsigned int set;         /* VM_MACHINE_* (vmm/config.h) */
	struct vm_config values;  /* the machine-config fields; its strings are NULL */
};

enum ctl_snapshot_type { CTL_SNAPSHOT_FULL, CTL_SNAPSHOT_DIFF };

/* PUT /snapshot/create (Firecracker's SnapshotCreateParams). Strings are non-empty paths. */
struct ctl_snapshot_create {
	unsigned int snapshot_type; /* enum ctl_snapshot_type; Full when absent */
	char *snapshot_path;        /* the VM state file to write */
	char *mem_file_path;        /* the guest memory file to write */
};

/*
 * kiln's "disk_overrides" ([{"drive_id", "path_on_host"}]) and "disk_copies" ([drive_id]) of PUT
 * /snapshot/load and PUT /vm/clone: the CLI's --disk-override DRIVE_ID=PATH and --disk-copy DRIVE_ID
 * (docs/snapshot-format.md "Disks, restores and clones"). Ids are config_id_valid, paths non-empty.
 */
#define CTL_MAX_DISK_OPTIONS 8

struct ctl_disk_options {
	char *overrides[CTL_MAX_DISK_OPTIONS]; /* "DRIVE_ID=PATH" */
	unsigned int nr_overrides;
	char *copies[CTL_MAX_DISK_OPTIONS];    /* DRIVE_ID */
	unsigned int nr_copies;
};

enum ctl_mem_backend { CTL_MEM_BACKEND_FILE /* Uffd: not supported yet */ };

/* PUT /snapshot/load (Firecracker's SnapshotLoadParams). */
struct ctl_snapshot_load {
	char *snapshot_path;        /* the VM state file */
	unsigned int mem_backend_type; /* enum ctl_mem_backend */
	char *mem_backend_path;     /* mem_backend.backend_path, or the deprecated mem_file_path */
	bool track_dirty_pages;     /* track_dirty_pages, or the deprecated enable_diff_snapshots */
	bool resume_vm;             /* resume once loaded */
	bool clock_realtime;        /* advance the guest clock by the wall-clock time since the snapshot */
	struct ctl_disk_options disks; /* kiln: the drives opened elsewhere, or copied (as clone 0) */
};

/* PUT /vm/clone (kiln): a new kiln process, serving `api_socket`, running a copy of this (paused) VM. */
struct ctl_vm_clone {
	char *clone_id;   /* the clone's id (config_instance_id_valid) */
	char *api_socket; /* the clone's API socket path */
	bool resume_vm;   /* start the clone running rather than paused */
	struct ctl_disk_options disks; /* the drives the copy opens elsewhere, or copies of them made after
	                                  the snapshot ("<api_socket>.<drive_id>.img") */
};

enum ctl_op {
	CTL_OP_GET_INFO,
	CTL_OP_GET_VERSION,        /* answered by the API layer itself */
	CTL_OP_GET_VM_CONFIG,
	CTL_OP_GET_MACHINE_CONFIG, /* the backend answers as for CTL_OP_GET_VM_CONFIG */
	CTL_OP_GET_VCPUS,          /* kiln: the vCPU threads, for pinning */
	CTL_OP_PUT_BOOT_SOURCE,
	CTL_OP_PUT_MACHINE_CONFIG, /* PUT and PATCH: see ctl_machine_config.patch */
	CTL_OP_PUT_DRIVE,
	CTL_OP_PUT_NET,
	CTL_OP_PUT_ENTROPY,
	CTL_OP_INSTANCE_START,
	CTL_OP_SEND_CTRL_ALT_DEL,
	CTL_OP_FLUSH_METRICS,
	CTL_OP_PAUSE,
	CTL_OP_RESUME,
	CTL_OP_SNAPSHOT_CREATE,
	CTL_OP_SNAPSHOT_LOAD,
	CTL_OP_VM_CLONE,
};

/* A request. Its strings belong to whoever built it (src/api/routes.c: api_request_free). */
struct ctl_request {
	enum ctl_op op;
	const char *deprecation; /* set by the HTTP parser when a deprecated field was used; handlers ignore it */
	union {
		struct vm_config boot_source;      /* CTL_OP_PUT_BOOT_SOURCE: kernel_path set, the rest NULL or set */
		struct ctl_machine_config machine; /* CTL_OP_PUT_MACHINE_CONFIG */
		struct vm_drive_config drive;      /* CTL_OP_PUT_DRIVE */
		struct vm_net_config net;          /* CTL_OP_PUT_NET */
		struct ctl_snapshot_create snapshot_create;
		struct ctl_snapshot_load snapshot_load;
		struct ctl_vm_clone clone;
	};
};

/* One vCPU thread (CTL_OP_GET_VCPUS). */
struct ctl_vcpu {
	unsigned int index; /* the vCPU's number, 0 = the boot vCPU */
	int tid;            /* its host thread id (gettid), 0 while the thread has not started */
};

/* What a request answers besides its status. The caller zeroes it and frees it with ctl_reply_free(). */
struct ctl_reply {
	struct ctl_info info;     /* CTL_OP_GET_INFO (the caller fills the defaults first) */
	char *config_json;        /* CTL_OP_GET_*_CONFIG: vm_config_to_json() of the VM's config (malloc'd) */
	int clone_pid;            /* CTL_OP_VM_CLONE: the clone's process */
	unsigned int nr_vcpus;    /* CTL_OP_GET_VCPUS */
	struct ctl_vcpu vcpus[CONFIG_MAX_VCPUS];
};

void ctl_reply_free(struct ctl_reply *reply);

/*
 * The VM behind the API: carry out `req` and fill `reply`. Calls come from the API server's one thread,
 * one at a time, while the VM's own threads run: an implementation takes its own lock. Returns 0, or
 * -errno with a fault message in `err` (`err_size` bytes, CTL_ERR_SIZE): -EINVAL (bad value), -EBUSY
 * (not allowed in the current state, e.g. "boot-source: only before InstanceStart"), -EOPNOTSUPP, -ENOENT,
 * -EEXIST, -EACCES, -EPERM, -EISDIR, -ENOTDIR and -ENAMETOOLONG are the request's fault (the API answers
 * 400); any other error is the VMM's (500). The request is borrowed for the call: copy what you keep.
 */
typedef int (*ctl_handler_fn)(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err,
			      size_t err_size);

/* What `op` is called in messages ("boot-source", "vm state \"Paused\"", "GET /vm/config"). */
const char *ctl_op_name(enum ctl_op op);

/* A handler's answer to an op it does not implement: "<name>: not supported yet", -EOPNOTSUPP. */
int ctl_not_supported(enum ctl_op op, char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
