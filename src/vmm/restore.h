/* SPDX-License-Identifier: MIT */
/*
 * Restoring a snapshot file into a new VM, with what the restore changes in the snapshot's config: another
 * TAP for an interface, another image for a drive, or a copy kiln makes of a drive (docs/snapshot-format.md
 * "Disks, restores and clones"). `kiln run --restore`, PUT /snapshot/load (src/vmm/instance.c) and `kiln
 * clone` (which resolves the overrides of each clone before starting it) share this.
 */
#ifndef KILN_VMM_RESTORE_H
#define KILN_VMM_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

struct snap_reader;
struct vm;
struct vm_restore_options;

enum vm_override_kind {
	VM_OVERRIDE_NET,       /* "IFACE=TAP": the interface on another TAP (Firecracker's network_overrides); the
	                          guest keeps its MAC */
	VM_OVERRIDE_DISK,      /* "DRIVE_ID=PATH": the drive opened at PATH, an image of the same size holding what
	                          the recorded disk held at the snapshot */
	VM_OVERRIDE_DISK_COPY, /* "DRIVE_ID": kiln copies the disk (reflink or sparse copy) to
	                          "<drive_id>.clone<N>.img" and opens the copy */
};

/* In each value, "%d" becomes the clone index (a restore: 0): one TAP, one image per clone. */
#define VM_RESTORE_MAX_OVERRIDES 16

struct vm_restore_override {
	enum vm_override_kind kind;
	const char *arg; /* borrowed */
};

/* The overrides in the order given, and where disk copies go. */
struct vm_restore_overrides {
	struct vm_restore_override list[VM_RESTORE_MAX_OVERRIDES];
	unsigned int n;
	const char *disk_dir; /* NULL: the state file's directory */
};

/* The overrides of one clone, as its `kiln run --restore` takes them: "ID=VALUE" strings (malloc'd). */
struct vm_resolved_overrides {
	char *net[VM_RESTORE_MAX_OVERRIDES];
	char *disk[VM_RESTORE_MAX_OVERRIDES];
	unsigned int nr_net, nr_disk;
};

/* The flag that gives `kind` ("--net-override"), for messages. */
const char *vm_override_flag(enum vm_override_kind kind);

/* The argument of the first override of `kind` about `id` ("ID=..." for overrides, "ID" for copies), or NULL. */
const char *vm_restore_override_find(const struct vm_restore_overrides *ov, enum vm_override_kind kind,
				     const char *id);

/*
 * `ov` for clone `index` onto the snapshot's config `cfg` (reader `r`, state file `state_path`): "%d" in each
 * value becomes the index, each disk copy is made (vm_clone_copy_disk) and becomes a disk override of it,
 * and each override is applied to `cfg` (and so checked). The resolved values go to `res` (free them with
 * vm_resolved_overrides_free, also after a failure). 0, or -errno with a message naming the option.
 */
int vm_restore_overrides_resolve(struct snap_reader *r, struct vm_config *cfg, const struct vm_restore_overrides *ov,
				 const char *state_path, unsigned long index, struct vm_resolved_overrides *res,
				 char *err, size_t err_size) __attribute__((warn_unused_result));
void vm_resolved_overrides_free(struct vm_resolved_overrides *res);

/*
 * Replace `cfg` by the config of the snapshot at `state_path` (keeping cfg's console: the new process's, not
 * the snapshotted VM's), apply `ov` (may be NULL; as clone 0: disk copies are "<drive_id>.clone0.img"), and
 * restore the snapshot into `vm` (vm_restore), which keeps a pointer to `cfg`. Returns 0, or -errno with a
 * message in `err`; `cfg` is then as it was.
 */
int vm_restore_file(struct vm *vm, struct vm_config *cfg, const char *state_path, const struct vm_restore_options *opts,
		    const struct vm_restore_overrides *ov, uint64_t start_ns, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
