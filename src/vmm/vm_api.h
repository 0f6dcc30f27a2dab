/* SPDX-License-Identifier: MIT */
/* The control API's view of a running VM: the backend operations src/api/ calls (src/api/routes.h). */
#ifndef KILN_VMM_VM_API_H
#define KILN_VMM_VM_API_H

#include "api/routes.h"

/*
 * Operations for a VM that `kiln run` has booted: GET /, GET /vm/config, GET /machine-config,
 * PATCH /vm (Paused/Resumed), PUT /actions SendCtrlAltDel, InstanceStart (refused: already started),
 * PUT /snapshot/create (the VM Paused) and PUT /vm/clone (a snapshot next to the clone's socket, copies
 * of the drives in disk_copies, then a detached kiln process restoring it). The other endpoints answer 400 "not supported yet" until kiln
 * implements them. ctx is the struct vm. The API server does not call these directly:
 * src/vmm/instance.c forwards to them once the VM runs.
 */
extern const struct api_backend_ops vm_api_ops;

/*
 * What an error of a snapshot operation answers: the caller's mistakes and snapshots that cannot be
 * used (corrupt, another format or version, another host) stay 400 errnos; the rest answer 500.
 */
int vm_api_snapshot_errno(int ret);

#endif
