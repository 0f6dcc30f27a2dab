// SPDX-License-Identifier: MIT
#include "lib/safe_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

const char *safe_type_name(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISLNK(mode))
		return "a symlink";
	return "not a regular file";
}

static bool type_allowed(mode_t mode, unsigned int allow)
{
	return (S_ISDIR(mode) && (allow & SAFE_DIR)) || (S_ISREG(mode) && (allow & SAFE_REG)) || (S_ISFIFO(mode) && (allow & SAFE_FIFO)) ||
	       (S_ISBLK(mode) && (allow & SAFE_BLK)) || (S_ISCHR(mode) && (allow & SAFE_CHR));
}

bool file_set_has(const struct file_set *set, const struct stat *st)
{
	for (unsigned int i = 0; set && i < set->n; i++)
		if (set->ids[i].dev == st->st_dev && set->ids[i].ino == st->st_ino)
			return true;
	return false;
}

static int set_add(struct file_set *set, const struct stat *st)
{
	if (file_set_has(set, st))
		return 0;
	if (set->n == FILE_SET_MAX)
		return -ENOSPC;
	set->ids[set->n++] = (struct file_id){ st->st_dev, st->st_ino };
	return 0;
}

int file_set_add_path(struct file_set *set, const char *path)
{
	struct stat st;

	if (!path || stat(path, &st) < 0)
		return 0;
	return set_add(set, &st);
}

int file_set_add_fd(struct file_set *set, int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	return set_add(set, &st);
}

int safe_open(const char *what, const char *path, int flags, unsigned int allow, const struct file_set *busy,
	      char *err, size_t err_size)
{
	int acc = flags & O_ACCMODE, fd, ret;
	bool trunc = flags & O_TRUNC;
	struct stat st;
	char name[64];

	/* "kernel /k: ..." or, without `what`, the plain "/k: ..." of the callers that had their own words. */
	snprintf(name, sizeof(name), "%s%s", what ? what : "", what ? " " : "");

	fd = open(path, acc | (flags & O_CREAT) | (allow & SAFE_FOLLOW ? 0 : O_NOFOLLOW) | O_NONBLOCK | O_NOCTTY |
		  O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		if (errno == ELOOP)
			errmsg_set(err, err_size, "%s%s: a symlink (refused: kiln does not follow a symlink here)", name,
				   path);
		else if (errno == ENXIO)
			errmsg_set(err, err_size, "%s%s: a FIFO with no reader", name, path);
		else
			errmsg_set(err, err_size, "%s%s: %s%s", name, path, what ? "cannot open: " : "", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s%s: %s", name, path, strerror(errno));
		goto fail;
	}
	if (!type_allowed(st.st_mode, allow)) {
		ret = -EINVAL;
		errmsg_set(err, err_size, "%s%s: %s, not %s", name, path, safe_type_name(st.st_mode),
			   allow & SAFE_FIFO ? "a regular file or a FIFO" : allow & SAFE_BLK ? "a regular file or a block device"
									      : "a regular file");
		goto fail;
	}
	if (file_set_has(busy, &st)) {
		ret = -EBUSY;
		errmsg_set(err, err_size, "%s%s: a file this VM uses (its kernel, initrd, a disk, its console, "
			   "its API socket or its memory file)", name, path);
		goto fail;
	}
	if (trunc && S_ISREG(st.st_mode) && ftruncate(fd, 0) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s%s: cannot truncate: %s", name, path, strerror(errno));
		goto fail;
	}
	/* Reads and writes of a regular file block as usual; a FIFO or device written stays non-blocking. */
	if (!((S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) && acc != O_RDONLY) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s%s: %s", name, path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

int safe_target_check(const char *what, const char *path, const struct file_set *busy, bool (*is_ours)(int fd),
		      struct safe_target *t, char *err, size_t err_size)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	struct stat dst;
	int fd, ret;

	memset(t, 0, sizeof(*t));
	t->name = slash ? slash + 1 : path;
	if (!*t->name || !strcmp(t->name, ".") || !strcmp(t->name, "..")) {
		errmsg_set(err, err_size, "%s %s: names a directory, not a file", what, path);
		return -EISDIR;
	}
	dir = slash ? strndup(path, (size_t)(slash - path) ?: 1) : strdup(".");
	if (!dir)
		return -ENOMEM;
	ret = stat(dir, &dst) < 0 ? -errno : 0;
	if (ret)
		errmsg_set(err, err_size, "%s %s: directory %s: %s", what, path, dir, strerror(-ret));
	free(dir);
	if (ret)
		return ret;
	t->dir = (struct file_id){ dst.st_dev, dst.st_ino };
	if (lstat(path, &t->st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		errmsg_set(err, err_size, "%s %s: %s", what, path, strerror(errno));
		return ret;
	}
	t->exists = true;
	if (!S_ISREG(t->st.st_mode)) {
		errmsg_set(err, err_size, "%s %s: %s (kiln replaces only a snapshot file it wrote)", what, path,
			   safe_type_name(t->st.st_mode));
		return S_ISDIR(t->st.st_mode) ? -EISDIR : -EINVAL;
	}
	if (file_set_has(busy, &t->st)) {
		errmsg_set(err, err_size, "%s %s: a file this VM uses (its kernel, initrd, a disk, its console, its API "
			   "socket or its memory file)", what, path);
		return -EBUSY;
	}
	if (!is_ours)
		return 0;
	fd = safe_open(what, path, O_RDONLY, SAFE_REG, NULL, err, err_size);
	if (fd < 0)
		return fd;
	ret = is_ours(fd) ? 0 : -EEXIST;
	close(fd);
	if (ret)
		errmsg_set(err, err_size, "%s %s: exists and is not a kiln snapshot file (kiln replaces only what it "
			   "wrote; remove it first)", what, path);
	return ret;
}

bool safe_target_same(const struct safe_target *a, const struct safe_target *b)
{
	if (a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino)
		return true;
	return a->dir.dev == b->dir.dev && a->dir.ino == b->dir.ino && !strcmp(a->name, b->name);
}
