/* SPDX-License-Identifier: MIT */
/*
 * Opening what a user or an API client names, so that no name can hang kiln or make it overwrite a host
 * file: the type is checked on the open fd before anything blocks (O_NONBLOCK, a FIFO without a writer
 * cannot hold the open), symlinks in the last component are refused (O_NOFOLLOW), and an output file is
 * created 0600 and truncated only once it is known to be a regular file that kiln may write. A file set
 * holds the (st_dev, st_ino) of every file a VM uses, for targets to be checked against.
 */
#ifndef KILN_LIB_SAFE_PATH_H
#define KILN_LIB_SAFE_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The file types a caller accepts (safe_open's `allow`). */
#define SAFE_REG  0x1u /* a regular file */
#define SAFE_FIFO 0x2u /* a FIFO: only where Firecracker takes one (logger, metrics, serial output) */
#define SAFE_BLK  0x4u /* a block device (a disk) */
#define SAFE_CHR  0x20u /* a character device (a console on /dev/null or a terminal) */
#define SAFE_DIR  0x10u /* a directory, for a caller that refuses it in its own words */
#define SAFE_FOLLOW 0x8u /* follow a symlink: for a file kiln only reads, whose type is checked on the fd */

#define FILE_SET_MAX 64

struct file_id {
	dev_t dev;
	ino_t ino;
};

/* The host files a VM uses: kernel, initrd, disks, console, API socket, the memory file it runs from. */
struct file_set {
	unsigned int n;
	struct file_id ids[FILE_SET_MAX];
};

/*
 * Open `path` with `flags` (O_RDONLY, O_WRONLY or O_RDWR, optionally O_CREAT: mode 0600, and O_TRUNC,
 * applied after the checks) plus O_NOFOLLOW (unless SAFE_FOLLOW)|O_NOCTTY|O_CLOEXEC, non-blocking until fstat showed a type
 * in `allow` (a FIFO opened for writing stays non-blocking: a slow reader drops output, never blocks a
 * thread). A file in `busy` (may be NULL) is refused. `what` names the file in messages ("kernel"; NULL:
 * "PATH: strerror" alone). Returns the fd, or -errno with "WHAT PATH: why" in `err` (ELOOP: a symlink;
 * ENXIO: a FIFO with no reader; EINVAL: the wrong type; EBUSY: a file the VM uses).
 */
int safe_open(const char *what, const char *path, int flags, unsigned int allow, const struct file_set *busy,
	      char *err, size_t err_size) __attribute__((warn_unused_result));

/* A file type in words for messages: "a directory", "a FIFO", "a character device"... */
const char *safe_type_name(mode_t mode);

/* Add the file at `path` (followed), or the open `fd`'s, to `set`. Missing files are skipped. 0 or -errno. */
int file_set_add_path(struct file_set *set, const char *path);
int file_set_add_fd(struct file_set *set, int fd);
bool file_set_has(const struct file_set *set, const struct stat *st);

/* Where a rename to `path` lands: its directory's (dev, ino) and its last component. */
struct safe_target {
	struct file_id dir;
	const char *name; /* points into the path */
	bool exists;
	struct stat st;   /* lstat of the target when it exists */
};

/*
 * Check `path` as a target that kiln will rename a temp file over: refused when it is not a regular
 * file (device node, socket, FIFO, directory, symlink), when it is in `busy`, or when it exists and
 * `is_ours` (may be NULL: any regular file) says it is not a file kiln wrote (`is_ours` reads the open
 * fd). Fills `t`. Returns 0 or -errno with "WHAT PATH: why" in `err`.
 */
int safe_target_check(const char *what, const char *path, const struct file_set *busy, bool (*is_ours)(int fd),
		      struct safe_target *t, char *err, size_t err_size) __attribute__((warn_unused_result));

/* Two names of one file: the same directory and last component, or one existing inode. */
bool safe_target_same(const struct safe_target *a, const struct safe_target *b);

#endif
