/* SPDX-License-Identifier: MIT */
/* The control API's view of a running VM: the backend operations src/api/ calls (src/api/routes.h). */
#ifndef KILN_VMM_VM_API_H
#define KILN_VMM_VM_API_H

#include <stdatomic.h>
#include <stdint.h>

#include "api/routes.h"
#include "vmm/config.h"

struct vm;

/*
 * Operations for a VM that `kiln run` has booted: GET /, GET /vm/config, GET /machine-config,
 * PATCH /vm (Paused/Resumed), PUT /actions InstanceStart (refused: already started), PUT /snapshot/create
 * (the VM Paused) and PUT /vm/clone (a snapshot next to the clone's socket, then a detached kiln process
 * restoring it). The other endpoints answer 400 "not supported yet" until kiln implements them. ctx is
 * the struct vm.
 */
extern const struct api_backend_ops vm_api_ops;

/*
 * A kiln started with only --api-sock, waiting for PUT /snapshot/load (Firecracker's way to restore):
 * until then GET / says "Not started" and the VM operations answer 400; the load restores the snapshot
 * into `vm` on the API thread (Paused, or Running with resume_vm), sets `loaded` and writes
 * `loaded_fd` (an eventfd) so the main thread runs the VM; afterwards every op goes to vm_api_ops.
 * ctx is the struct vm_api_loader.
 */
struct vm_api_loader {
	struct vm *vm;                  /* storage for the VM; created by the load */
	struct vm_config cfg;           /* its config (from the snapshot); vm_config_init before use */
	const char *console_path;       /* the restored VM's console; NULL: stdio */
	uint64_t start_ns;
	int loaded_fd;
	atomic_bool loaded;
};

extern const struct api_backend_ops vm_api_loader_ops;

#endif
