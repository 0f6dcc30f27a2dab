/* SPDX-License-Identifier: MIT */
/*
 * Starting VMs from a snapshot in new kiln processes: clones. Each is `kiln run --restore STATE --mem
 * MEM ...` of this same kiln binary; the memory file is mapped MAP_PRIVATE by each, so all clones share
 * its page cache and copy only the pages they write.
 */
#ifndef KILN_VMM_CLONE_H
#define KILN_VMM_CLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define VM_CLONE_MAX_OVERRIDES 16

struct vm_clone_spec {
	const char *state_path;
	const char *mem_path;
	const char *api_sock;     /* NULL: no API */
	const char *console_path; /* guest serial output; NULL: /dev/null */
	const char *log_path;     /* the clone's stdout and stderr (appended); NULL: stdout to /dev/null,
	                             stderr shared with this process */
	const char *const *net_overrides; /* "IFACE=TAP" each (kiln run --net-override) */
	unsigned int nr_net_overrides;    /* at most VM_CLONE_MAX_OVERRIDES */
	const char *const *disk_overrides; /* "DRIVE_ID=PATH" each (kiln run --disk-override) */
	unsigned int nr_disk_overrides;    /* at most VM_CLONE_MAX_OVERRIDES */
	bool copy;                /* --copy: the clone reads RAM into its own memfd */
	bool paused;              /* start paused (resume over the API) */
	bool detach;              /* not a child of this process (double fork): for a long-lived caller */
};

/* A clone being started: vm_clone_start, then vm_clone_wait. */
struct vm_clone {
	pid_t child;              /* the forked process (the intermediate one when detached) */
	int ready_fd;             /* read end of the ready pipe */
	bool detach;
};

/* Fork and exec the clone without waiting for it: several can start at once. 0 or -errno with a message. */
int vm_clone_start(const struct vm_clone_spec *spec, struct vm_clone *c, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Wait until the clone of vm_clone_start runs (as vm_clone_spawn). Returns its pid or -errno with a message. */
pid_t vm_clone_wait(struct vm_clone *c, int timeout_ms, char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Start one clone and wait until it runs: the new process has loaded the whole snapshot and is about
 * to enter KVM_RUN (it reports so through a pipe; --ready-fd). `timeout_ms` bounds the wait (0: 60 s).
 * Returns the clone's pid, or -errno with a message (the clone's own message went to stderr): -EIO
 * when it exited without running, -ETIMEDOUT.
 */
pid_t vm_clone_spawn(const struct vm_clone_spec *spec, int timeout_ms, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* For `kiln run --ready-fd FD`: report on FD that this process runs its VM, then close it. */
void vm_clone_report_ready(int fd);

/*
 * `pattern` with each "%d" replaced by the clone index `index` (kiln clone's --net-override and
 * --disk-override values: one TAP, one image per clone), into `out` (`size` bytes). 0, or
 * -ENAMETOOLONG when the result does not fit.
 */
int vm_clone_expand_index(char *out, size_t size, const char *pattern, unsigned long index)
	__attribute__((warn_unused_result));

/*
 * Where clone `index`'s copy of drive `drive_id` goes (--disk-copy): "<dir>/<drive_id>.clone<index>.img",
 * `dir` being the directory of `state_path` when NULL. 0, or -ENAMETOOLONG.
 */
int vm_clone_disk_path(char *out, size_t size, const char *dir, const char *state_path, const char *drive_id,
		       unsigned long index) __attribute__((warn_unused_result));

struct snap_reader;
struct vm_config;

/*
 * Copy the disk of drive `drive_id` of the snapshot `r` (its config `cfg`) to `dst` for a clone
 * (image_copy: a reflink, or a sparse copy), and say which in a log line. The disk must be unchanged
 * since the snapshot (size and modification time of its DISK record: snap_disk_check). 0, or -errno
 * with a message: -ENOENT (no such drive), -EINVAL (changed), -EBUSY (`dst` in use by a running VM).
 */
int vm_clone_copy_disk(struct snap_reader *r, const struct vm_config *cfg, const char *drive_id, const char *dst,
		       char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Apply "DRIVE_ID=PATH" (--disk-override) to the snapshot's config `cfg` (reader `r`): the drive's
 * path_on_host becomes PATH, once PATH passed snap_disk_check against the drive's DISK record (the
 * same size) and is not another drive's image. 0, or -errno with a message: -EINVAL (syntax, size,
 * another drive's image), -ENOENT (no such drive, or no file at PATH).
 */
int vm_clone_apply_disk_override(struct snap_reader *r, struct vm_config *cfg, const char *spec, char *err,
				 size_t err_size) __attribute__((warn_unused_result));

#endif
