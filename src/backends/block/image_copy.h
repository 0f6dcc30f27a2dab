/* SPDX-License-Identifier: MIT */
/*
 * A private copy of a disk image, for a clone or a restored VM that must not write the snapshot's
 * disk: a reflink where the filesystem shares blocks (ioctl FICLONE: btrfs, XFS, bcachefs; instant,
 * and the two files share their blocks until one writes), otherwise a sparse copy: only the ranges
 * SEEK_DATA finds are copied (copy_file_range, or read/write where that cannot cross filesystems),
 * so the holes of a thin image stay holes.
 */
#ifndef KILN_BACKENDS_BLOCK_IMAGE_COPY_H
#define KILN_BACKENDS_BLOCK_IMAGE_COPY_H

#include <stddef.h>
#include <stdint.h>

enum image_copy_how {
	IMAGE_COPY_REFLINK, /* FICLONE: blocks shared copy-on-write */
	IMAGE_COPY_SPARSE,  /* the data ranges copied, the holes kept */
};

struct image_copy_result {
	enum image_copy_how how;
	uint64_t size;        /* the image's size, bytes */
	uint64_t data_bytes;  /* IMAGE_COPY_SPARSE: bytes copied (the data ranges); 0 for a reflink */
};

/*
 * Copy the regular file open at `src_fd` into the empty regular file open for writing at `dst_fd`:
 * reflink first, then the sparse copy when the filesystems cannot share blocks (EOPNOTSUPP, EXDEV,
 * EINVAL, ENOTTY). `dst_fd` ends with `src_fd`'s size. Returns 0 with `out` filled, or -errno.
 */
int image_copy_fd(int src_fd, int dst_fd, struct image_copy_result *out) __attribute__((warn_unused_result));

/*
 * Copy the image at `src` to `dst`: into a temp file next to `dst`, renamed over it when complete, so
 * a failed copy leaves no partial image under `dst`'s name. An existing `dst` is replaced unless a
 * process holds a lock on it (raw_open's flock: a running VM's disk): -EBUSY. The copy gets `src`'s
 * permission bits plus owner read-write. Returns 0 with `out` filled, or -errno with a message naming
 * the file in `err`.
 */
int image_copy(const char *src, const char *dst, struct image_copy_result *out, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* "reflink (copy-on-write)" or "sparse copy": for log lines. */
const char *image_copy_how_name(enum image_copy_how how);

#endif
