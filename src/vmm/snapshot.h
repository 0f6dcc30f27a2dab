/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of a whole VM: writing every piece of its state into a state file and guest RAM into a
 * memory file (the container: snapshot_file.h), and creating a VM in a new process that continues
 * exactly where the snapshot was taken. Which section holds what: docs/snapshot-format.md "Sections".
 */
#ifndef KILN_VMM_SNAPSHOT_H
#define KILN_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"
#include "vmm/snapshot_file.h"

struct vm;

/*
 * Write a snapshot of the paused VM `vm`: the state file at `state_path`, guest RAM at `mem_path`
 * (docs/snapshot-format.md "Atomicity": temp files, fsync, rename; the state file first; a crash at
 * any point leaves the previous snapshot at those paths loadable). Device queue processing is frozen
 * for the duration so RAM and device state agree. Returns 0, -EBUSY when the VM is not paused, or
 * -errno with a message in `err`.
 */
int vm_snapshot_save(struct vm *vm, const char *state_path, const char *mem_path, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Open and validate the state file at `path` (snap_reader_open: sizes, magic, versions, checksums) and
 * decode the VM config from its CONF section into `cfg` (initialised by the caller with
 * vm_config_init). The caller may then change what belongs to the new process (the console) before
 * vm_restore. Returns 0 or -errno with a message: -EINVAL / -EBADMSG / -ENOTSUP / -EFBIG for a file
 * that is not a usable snapshot, other -errno for I/O.
 */
int vm_snapshot_open(const char *path, struct snap_reader **out, struct vm_config *cfg, char *err, size_t err_size)
	__attribute__((warn_unused_result));

struct vm_restore_options {
	const char *mem_path;   /* the memory file */
	const char *state_path; /* the state file, for its lock and temp files (vm_restore_file sets it) */
	bool copy;              /* read RAM into a memfd now, instead of mapping the file MAP_PRIVATE */
	bool paused;            /* leave the VM paused (vm_resume starts it) */
	bool verify_full;       /* check the memory file's full checksum, when the snapshot has one */
	bool verify;            /* check every chunk of the memory file (MCRC) before running (--verify) */
};

/*
 * Create in `vm` the machine the snapshot `r` describes (config `cfg`, from vm_snapshot_open) and load
 * its state: guest RAM from opts->mem_path (which must carry the snapshot's id), every vCPU (CPUID,
 * registers, FPU/XSAVE, MSRs, LAPIC, events, MP state), the irqchip, PIT and kvmclock, and every
 * device. Every section is checked (version, length, values) and every section must be consumed;
 * the vCPU count and RAM size must match the config. Then vm_run continues the guest. Returns 0, or
 * -errno with a message (nothing is left to destroy): -EINVAL / -EBADMSG / -ENOTSUP for a snapshot
 * that is corrupt or does not fit this kiln or host, other -errno when creating the VM failed.
 */
int vm_restore(struct vm *vm, struct snap_reader *r, const struct vm_config *cfg,
	       const struct vm_restore_options *opts, uint64_t start_ns, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * DISK section (one per drive, instance = drive index): the backing file's path, size and mtime and
 * whether the drive is read-only, so that restore refuses a disk that changed size, and a copy of the
 * disk (kiln clone --disk-copy) one that changed at all.
 */
#define SNAP_DISK_MAX_PATH 4096

struct snap_disk {
	uint32_t path_len;      /* bytes of path before its NUL, 1 to SNAP_DISK_MAX_PATH */
	char path[SNAP_DISK_MAX_PATH + 1];
	uint64_t size;          /* bytes */
	uint64_t mtime_ns;
	bool read_only;
};

/* Fill `d` from the file at `path` (stat). Returns 0 or -errno. */
int snap_disk_record(struct snap_disk *d, const char *path, bool read_only) __attribute__((warn_unused_result));
/*
 * The DISK section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): path_len
 * (le32), that many bytes of path (no NUL among them), size and mtime_ns (le64), read-only (a byte).
 */
extern const struct codec_table snap_disk_codec;
/*
 * May the file at `path` stand for the snapshot's disk `d`? `path` NULL or d->path: the recorded disk,
 * which must still be d->size bytes; a changed modification time is warned about (the guest's page
 * cache may no longer match), or with `unchanged` refused (a copy takes what the file holds now).
 * Another `path` is an override (--disk-override), which must be d->size bytes; what it holds is the
 * caller's promise (docs/snapshot-format.md "Disks"). 0, or -EINVAL / -ENOENT... with a message
 * naming the files.
 */
int snap_disk_check(const struct snap_disk *d, const char *path, bool unchanged, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * The DISK record of the drive `drive_id` of the snapshot `r` (its config `cfg`, from
 * vm_snapshot_open) into `d`. 0, -ENOENT with a message when the snapshot has no such drive, or
 * -EINVAL for a bad section.
 */
int vm_snapshot_disk(struct snap_reader *r, const struct vm_config *cfg, const char *drive_id, struct snap_disk *d,
		     char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
