// SPDX-License-Identifier: MIT
/* Private copies of disk images: the model is in image_copy.h. */
#include "backends/block/image_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsync.h"
#include "lib/log.h"

/* Bytes per copy_file_range call, and the buffer of the read/write fallback. */
#define COPY_CHUNK (1ull << 30)
#define BOUNCE_SIZE (1u << 20)

/* Errors that say "not this way on these files" rather than "the copy failed". */
static bool cannot_share(int err)
{
	return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY || err == ENOSYS;
}

/* [off, off + len) of src to the same offsets of dst. `*kernel_copy`: copy_file_range still usable. */
static int copy_range(int src, int dst, uint64_t off, uint64_t len, bool *kernel_copy, uint8_t **bounce)
{
	while (len) {
		ssize_t n;

		if (*kernel_copy) {
			loff_t in = (loff_t)off, out = (loff_t)off;

			n = copy_file_range(src, &in, dst, &out, len < COPY_CHUNK ? len : COPY_CHUNK, 0);
			if (n < 0 && cannot_share(errno)) {
				*kernel_copy = false; /* e.g. EXDEV: two filesystems the kernel will not copy between */
				continue;
			}
		} else {
			if (!*bounce && !(*bounce = malloc(BOUNCE_SIZE)))
				return -ENOMEM;
			n = pread(src, *bounce, len < BOUNCE_SIZE ? len : BOUNCE_SIZE, (off_t)off);
			if (n > 0) {
				ssize_t w = pwrite(dst, *bounce, (size_t)n, (off_t)off);

				if (w != n) {
					if (w >= 0)
						errno = ENOSPC; /* a short write to a regular file: the disk is full */
					n = -1;
				}
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the image shrank while being copied */
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int image_copy_fd(int src_fd, int dst_fd, struct image_copy_result *out)
{
	bool kernel_copy = true;
	uint8_t *bounce = NULL;
	struct stat st;
	uint64_t off = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (fstat(src_fd, &st) < 0)
		return -errno;
	out->size = (uint64_t)st.st_size;
	if (ioctl(dst_fd, FICLONE, src_fd) == 0) {
		out->how = IMAGE_COPY_REFLINK;
		return 0;
	}
	if (!cannot_share(errno))
		return -errno;
	out->how = IMAGE_COPY_SPARSE;
	if (ftruncate(dst_fd, st.st_size) < 0)
		return -errno;
	/* Data ranges only: what lies between them (and after the last) stays a hole of dst. */
	while (off < out->size && !ret) {
		off_t data = lseek(src_fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0)
			return -errno;
		hole = lseek(src_fd, data, SEEK_HOLE); /* end of file at the latest */
		if (hole < 0) {
			ret = -errno;
			break;
		}
		ret = copy_range(src_fd, dst_fd, (uint64_t)data, (uint64_t)(hole - data), &kernel_copy, &bounce);
		out->data_bytes += (uint64_t)(hole - data);
		off = (uint64_t)hole;
	}
	free(bounce);
	return ret;
}

/* -EBUSY when a process holds a lock on the file at `path` (a running VM's disk); 0 when it holds none. */
static int check_unlocked(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return 0; /* nothing there (or nothing we could lock) */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		ret = errno == EWOULDBLOCK ? -EBUSY : 0;
	close(fd);
	return ret;
}

int image_copy(const char *src, const char *dst, struct image_copy_result *out, char *err, size_t err_size)
{
	size_t tmp_size = strlen(dst) + 8;
	char *tmp = malloc(tmp_size);
	int src_fd = -1, dst_fd = -1, ret;
	struct stat st, dst_st;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, tmp_size, "%s.XXXXXX", dst);
	src_fd = open(src, O_RDONLY | O_CLOEXEC);
	if (src_fd < 0 || fstat(src_fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", src, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		errmsg_set(err, err_size, "%s: not a regular file (kiln copies image files only)", src);
		goto out;
	}
	if (stat(dst, &dst_st) == 0 && dst_st.st_dev == st.st_dev && dst_st.st_ino == st.st_ino) {
		ret = -EINVAL;
		errmsg_set(err, err_size, "%s is the image %s itself", dst, src);
		goto out;
	}
	ret = check_unlocked(dst);
	if (ret) {
		errmsg_set(err, err_size, "%s is in use (locked by a running VM): it is not replaced", dst);
		goto out;
	}
	dst_fd = mkostemp(tmp, O_CLOEXEC);
	if (dst_fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	ret = fchmod(dst_fd, (st.st_mode & 0777) | 0600) < 0 ? -errno : 0;
	ret = ret ?: image_copy_fd(src_fd, dst_fd, out);
	/* Durable before it takes the final name: a crash leaves the old copy or a complete new one. */
	if (!ret && fdatasync(dst_fd) < 0)
		ret = -errno;
	if (!ret && rename(tmp, dst) < 0)
		ret = -errno;
	if (!ret)
		ret = fsync_parent_dir(dst);
	if (ret) {
		errmsg_set(err, err_size, "cannot copy %s to %s: %s", src, dst, strerror(-ret));
		unlink(tmp);
	}
out:
	if (src_fd >= 0)
		close(src_fd);
	if (dst_fd >= 0)
		close(dst_fd);
	free(tmp);
	return ret;
}

const char *image_copy_how_name(enum image_copy_how how)
{
	return how == IMAGE_COPY_REFLINK ? "reflink (copy-on-write)" : "sparse copy";
}
