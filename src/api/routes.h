/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control API without HTTP: (method, path, body bytes) -> a typed request or an error, then a
 * typed request -> a call into the VM through struct api_backend_ops -> a status and a JSON body.
 * Firecracker's API (src/firecracker/swagger/firecracker.yaml, v1.17) for what kiln does, plus kiln's
 * additions; docs/api.yaml describes every endpoint. src/api/server.c only moves bytes.
 */
#ifndef KILN_API_ROUTES_H
#define KILN_API_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/config.h"

/* Largest request body, in bytes: Firecracker's default (--http-api-max-payload-size, 51200). */
#define API_MAX_BODY 51200
/* Room for a fault message from the backend, in bytes with the NUL. */
#define API_ERR_SIZE 512

/* The VM's state as GET / reports it (Firecracker's InstanceInfo.state). */
enum api_vm_state {
	API_VM_NOT_STARTED, /* "Not started": configurable, not booted (or a snapshot not loaded yet) */
	API_VM_RUNNING,     /* "Running" */
	API_VM_PAUSED,      /* "Paused" */
};

struct api_instance_info {
	char id[CONFIG_MAX_ID + 1]; /* the VM's id (Firecracker's --id); "anonymous-instance" by default */
	enum api_vm_state state;
};

/* Bits of struct api_machine_config.set: the machine-config fields a request gives. */
enum {
	API_MC_VCPU_COUNT = 1u << 0,
	API_MC_MEM_SIZE_MIB = 1u << 1,
	API_MC_SMT = 1u << 2,
	API_MC_TRACK_DIRTY_PAGES = 1u << 3,
	API_MC_ALL = (1u << 4) - 1,
};

/*
 * PUT /machine-config (every field: the body's, Firecracker's defaults for the optional ones absent) or
 * PATCH /machine-config (the fields in the body only). Apply with api_machine_config_apply().
 */
struct api_machine_config {
	bool patch;               /* from PATCH (for logs; `set` says what to change) */
	unsigned int set;         /* API_MC_* */
	struct vm_config values;  /* the machine-config fields; its strings are NULL */
};

enum api_snapshot_type { API_SNAPSHOT_FULL, API_SNAPSHOT_DIFF };

/* PUT /snapshot/create (Firecracker's SnapshotCreateParams). Strings are non-empty paths. */
struct api_snapshot_create {
	unsigned int snapshot_type; /* enum api_snapshot_type; Full when absent */
	char *snapshot_path;        /* the VM state file to write */
	char *mem_file_path;        /* the guest memory file to write */
};

/*
 * kiln's "disk_overrides" ([{"drive_id", "path_on_host"}]) and "disk_copies" ([drive_id]) of PUT
 * /snapshot/load and PUT /vm/clone: the CLI's --disk-override DRIVE_ID=PATH and --disk-copy DRIVE_ID
 * (docs/snapshot-format.md "Disks, restores and clones"). Ids are config_id_valid, paths non-empty.
 */
#define API_MAX_DISK_OPTIONS 8

struct api_disk_options {
	char *overrides[API_MAX_DISK_OPTIONS]; /* "DRIVE_ID=PATH" */
	unsigned int nr_overrides;
	char *copies[API_MAX_DISK_OPTIONS];    /* DRIVE_ID */
	unsigned int nr_copies;
};

enum api_mem_backend { API_MEM_BACKEND_FILE /* Uffd: not supported yet */ };

/* PUT /snapshot/load (Firecracker's SnapshotLoadParams). */
struct api_snapshot_load {
	char *snapshot_path;        /* the VM state file */
	unsigned int mem_backend_type; /* enum api_mem_backend */
	char *mem_backend_path;     /* mem_backend.backend_path, or the deprecated mem_file_path */
	bool track_dirty_pages;     /* track_dirty_pages, or the deprecated enable_diff_snapshots */
	bool resume_vm;             /* resume once loaded */
	bool clock_realtime;        /* advance the guest clock by the wall-clock time since the snapshot */
	struct api_disk_options disks; /* kiln: the drives opened elsewhere, or copied (as clone 0) */
};

/* PUT /vm/clone (kiln): a new kiln process, serving `api_socket`, running a copy of this (paused) VM. */
struct api_vm_clone {
	char *clone_id;   /* the clone's id (config_instance_id_valid) */
	char *api_socket; /* the clone's API socket path */
	bool resume_vm;   /* start the clone running rather than paused */
	struct api_disk_options disks; /* the drives the copy opens elsewhere, or copies of them made after
	                                  the snapshot ("<api_socket>.<drive_id>.img") */
};

/* What PUT /vm/clone answers (200). */
struct api_clone_info {
	int pid; /* the clone's process */
};

/*
 * The VM behind the API. Every call comes from the API server's one thread, one at a time, while the
 * VM's own threads run: an implementation takes its own lock. Each returns 0, or -errno with a fault
 * message in `err` (`err_size` bytes, API_ERR_SIZE): -EINVAL (bad value), -EBUSY (not allowed in the
 * current state, e.g. "boot-source: only before InstanceStart"), -EOPNOTSUPP, -ENOENT, -EEXIST, -EACCES,
 * -EPERM, -EISDIR, -ENOTDIR and -ENAMETOOLONG answer 400 (the request cannot be carried out as given);
 * any other error answers 500 (the VMM failed). Requests are borrowed for the call: copy what you keep.
 * A NULL op answers 400 "... not supported yet".
 */
struct api_backend_ops {
	/* GET /: the VM's id and state. Cannot fail. */
	void (*get_info)(void *ctx, struct api_instance_info *out);
	/* GET /vm/config and GET /machine-config: vm_config_to_json() of the VM's current configuration
	 * (malloc'd; the caller frees), or NULL with errno (500). */
	char *(*get_config_json)(void *ctx);
	/* PUT /boot-source: kernel_path (set), initrd_path and cmdline (NULL when absent) replace the VM's;
	 * api_boot_source_apply() does it. Pre-boot only. */
	int (*put_boot_source)(void *ctx, const struct vm_config *boot, char *err, size_t err_size);
	/* PUT and PATCH /machine-config: api_machine_config_apply() over the VM's config. Pre-boot only. */
	int (*put_machine_config)(void *ctx, const struct api_machine_config *mc, char *err, size_t err_size);
	/* PUT /drives/{drive_id}: create or replace the drive with that id. Pre-boot only. */
	int (*put_drive)(void *ctx, const struct vm_drive_config *drive, char *err, size_t err_size);
	/* PUT /network-interfaces/{iface_id}: create or replace the interface. Pre-boot only. */
	int (*put_net)(void *ctx, const struct vm_net_config *net, char *err, size_t err_size);
	/* PUT /entropy: a virtio-rng device (Firecracker's entropy device; its rate_limiter is not
	 * implemented, so the request carries nothing else). Pre-boot only. */
	int (*put_entropy)(void *ctx, char *err, size_t err_size);
	/* PUT /actions {"action_type": "InstanceStart"}: boot; returns once the vCPUs run. */
	int (*instance_start)(void *ctx, char *err, size_t err_size);
	/* PUT /actions {"action_type": "SendCtrlAltDel"}: the i8042 reset key sequence. */
	int (*send_ctrl_alt_del)(void *ctx, char *err, size_t err_size);
	/* PUT /actions {"action_type": "FlushMetrics"}. */
	int (*flush_metrics)(void *ctx, char *err, size_t err_size);
	/* PATCH /vm {"state": "Paused"}: returns once every vCPU is out of KVM_RUN. */
	int (*pause)(void *ctx, char *err, size_t err_size);
	/* PATCH /vm {"state": "Resumed"}. */
	int (*resume)(void *ctx, char *err, size_t err_size);
	/* PUT /snapshot/create: the VM is Paused (else -EBUSY). */
	int (*snapshot_create)(void *ctx, const struct api_snapshot_create *req, char *err, size_t err_size);
	/* PUT /snapshot/load: only in a fresh VM, before any configuration (else -EBUSY). */
	int (*snapshot_load)(void *ctx, const struct api_snapshot_load *req, char *err, size_t err_size);
	/* PUT /vm/clone (kiln): the VM is Paused (else -EBUSY); fills `out`. */
	int (*clone_vm)(void *ctx, const struct api_vm_clone *req, struct api_clone_info *out, char *err,
			size_t err_size);
};

enum api_op {
	API_OP_GET_INFO,
	API_OP_GET_VERSION,
	API_OP_GET_VM_CONFIG,
	API_OP_GET_MACHINE_CONFIG,
	API_OP_PUT_BOOT_SOURCE,
	API_OP_PUT_MACHINE_CONFIG, /* PUT and PATCH: see api_machine_config.patch */
	API_OP_PUT_DRIVE,
	API_OP_PUT_NET,
	API_OP_PUT_ENTROPY,
	API_OP_INSTANCE_START,
	API_OP_SEND_CTRL_ALT_DEL,
	API_OP_FLUSH_METRICS,
	API_OP_PAUSE,
	API_OP_RESUME,
	API_OP_SNAPSHOT_CREATE,
	API_OP_SNAPSHOT_LOAD,
	API_OP_VM_CLONE,
};

/* A parsed request. Free with api_request_free(). */
struct api_request {
	enum api_op op;
	const char *deprecation; /* a deprecated field was used: this message, and a "Deprecation" header */
	union {
		struct vm_config boot_source;      /* API_OP_PUT_BOOT_SOURCE */
		struct api_machine_config machine; /* API_OP_PUT_MACHINE_CONFIG */
		struct vm_drive_config drive;      /* API_OP_PUT_DRIVE */
		struct vm_net_config net;          /* API_OP_PUT_NET */
		struct api_snapshot_create snapshot_create;
		struct api_snapshot_load snapshot_load;
		struct api_vm_clone clone;
	};
};

/* An answer: status, optional JSON body and headers. Free with api_response_free(). */
struct api_response {
	unsigned int status;     /* HTTP status code */
	char *body;              /* JSON text (malloc'd), or NULL for none (204) */
	char allow[32];          /* 405: the Allow header's value ("GET, PUT, PATCH"); else empty */
	const char *deprecation; /* non-NULL: send "Deprecation: true" (Firecracker does) */
};

/*
 * Parse a request. `method` is the HTTP method ("GET", "PUT", "PATCH"; others answer 405), `path` the
 * URL path without query, `body` the `len` bytes of the body (need not be NUL-terminated; may be NULL
 * when `len` is 0 or when `len` > API_MAX_BODY, which answers 413 without reading it). Returns 0 with
 * `req` filled, or -EINVAL with the error answer in `resp` (400, 404, 405 or 413, with a fault_message
 * naming the field).
 */
int api_parse_request(const char *method, const char *path, const char *body, size_t len, struct api_request *req,
		      struct api_response *resp) __attribute__((warn_unused_result));

/* Free the strings a parsed request owns. Safe on a zeroed request. */
void api_request_free(struct api_request *req);

/*
 * Carry out a parsed request through `ops` (with `ctx`) and write the answer: 204 for actions and
 * configuration, 200 with JSON for GETs and PUT /vm/clone, 400/500 with {"fault_message": ...} for errors.
 */
void api_dispatch(const struct api_backend_ops *ops, void *ctx, const struct api_request *req,
		  struct api_response *resp);

/* api_parse_request then api_dispatch: what the HTTP server calls for every request. */
void api_handle(const struct api_backend_ops *ops, void *ctx, const char *method, const char *path, const char *body,
		size_t len, struct api_response *resp);

/* An error answer: `status` with {"fault_message": <message>}. Replaces what `resp` held. */
void api_response_error(struct api_response *resp, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Free the body; `resp` is zeroed and can be reused. */
void api_response_free(struct api_response *resp);

/*
 * Helpers for backends. api_boot_source_apply: replace the boot-source fields of `cfg` by those of
 * `boot` (copies; all or nothing; -ENOMEM). api_machine_config_apply: set the fields of `mc` in `cfg`
 * and check Firecracker's rules on the result (-EINVAL with a message, `cfg` unchanged).
 */
int api_boot_source_apply(struct vm_config *cfg, const struct vm_config *boot) __attribute__((warn_unused_result));
int api_machine_config_apply(struct vm_config *cfg, const struct api_machine_config *mc, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* "Not started", "Running" or "Paused". */
const char *api_vm_state_name(enum api_vm_state state);

#endif
