/* SPDX-License-Identifier: MIT */
#ifndef KILN_LIB_FSYNC_H
#define KILN_LIB_FSYNC_H

/*
 * fsync the directory holding `path` (".", "/" or the part before the last '/'), so that a rename into it
 * survives a crash (rename(2) is atomic but not durable until its directory is synced). A filesystem that
 * cannot fsync a directory (EINVAL) counts as success. Returns 0 or -errno.
 */
int fsync_parent_dir(const char *path) __attribute__((warn_unused_result));

#endif
