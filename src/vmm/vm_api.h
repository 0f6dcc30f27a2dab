/* SPDX-License-Identifier: MIT */
/*
 * The control requests (vmm/control.h) a VM that runs carries out: src/vmm/instance.c:instance_handle calls
 * these once the instance is running, with its lock held so that the VM cannot go away under the call.
 * Each returns 0 or -errno with a fault message in `err` (`err_size` bytes), as ctl_handler_fn.
 */
#ifndef KILN_VMM_VM_API_H
#define KILN_VMM_VM_API_H

#include <stddef.h>

#include "vmm/control.h"

struct vm;

/* GET /: Running or Paused. */
enum ctl_vm_state vm_api_state(struct vm *vm);

/* GET /vcpus: each vCPU's index and thread id. */
void vm_api_vcpus(const struct vm *vm, struct ctl_reply *reply);

/* SendCtrlAltDel (Firecracker's, x86): the keys typed on the i8042's keyboard; -EBUSY when its buffer is full. */
int vm_api_send_ctrl_alt_del(struct vm *vm, char *err, size_t err_size) __attribute__((warn_unused_result));

/* PATCH /vm Paused / Resumed; 0 when the VM already is in that state, as Firecracker answers. */
int vm_api_pause(struct vm *vm, char *err, size_t err_size) __attribute__((warn_unused_result));
int vm_api_resume(struct vm *vm, char *err, size_t err_size) __attribute__((warn_unused_result));

/* PUT /snapshot/create: a Full snapshot of the paused VM (vm_snapshot_save). */
int vm_api_snapshot_create(struct vm *vm, const struct ctl_snapshot_create *req, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * PUT /vm/clone: a snapshot next to the clone's socket ("<api_socket>.snap", "<api_socket>.mem"), copies
 * of the drives in disk_copies, then a kiln process restoring it (its console "<api_socket>.console", its
 * messages "<api_socket>.log"), detached from this one; its pid in `*pid`. A VM with a TAP, or with a
 * writable drive the request gives the copy no image of its own for, is refused (-EOPNOTSUPP).
 */
int vm_api_clone(struct vm *vm, const struct ctl_vm_clone *req, int *pid, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * What an error of a snapshot operation answers: the caller's mistakes and snapshots that cannot be
 * used (corrupt, another format or version, another host) stay 400 errnos; the rest answer 500.
 */
int vm_api_snapshot_errno(int ret);

#endif
