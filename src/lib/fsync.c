// SPDX-License-Identifier: MIT
#include "lib/fsync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fsync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret = 0;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
	} else {
		/* Some filesystems cannot fsync a directory; the rename is then as durable as they make it. */
		if (fsync(fd) < 0 && errno != EINVAL)
			ret = -errno;
		close(fd);
	}
	free(dir);
	return ret;
}
