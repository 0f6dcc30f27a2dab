// SPDX-License-Identifier: MIT
/*
 * lib/safe_path.h on files made in a temp directory: a FIFO opens at once and is refused where it is
 * not allowed, a symlink is refused unless followed, O_TRUNC waits for the checks, a busy file is
 * refused, snapshot targets refuse what kiln may not replace, and two names of one new file are one.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/safe_path.h"

#define ERR_SIZE 512

struct fixture {
	char dir[64];
	char file[128], fifo[128], link[128], sub[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	strcpy(f->dir, "/tmp/kiln-safe-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/file", f->dir);
	snprintf(f->fifo, sizeof(f->fifo), "%s/fifo", f->dir);
	snprintf(f->link, sizeof(f->link), "%s/link", f->dir);
	snprintf(f->sub, sizeof(f->sub), "%s/sub", f->dir);
	fd = open(f->file, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || write(fd, "data", 4) != 4 || mkfifo(f->fifo, 0600) || symlink(f->file, f->link) ||
	    mkdir(f->sub, 0700))
		return -1;
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static void test_open_types(void **state)
{
	struct fixture *f = *state;
	char err[ERR_SIZE];
	struct stat st;
	int fd;

	/* A FIFO without a writer: refused at once, not a blocked open. */
	assert_int_equal(safe_open("kernel", f->fifo, O_RDONLY, SAFE_REG, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a FIFO, not a regular file"));
	assert_non_null(strstr(err, f->fifo));
	/* A FIFO for output without a reader: ENXIO at once. */
	assert_int_equal(safe_open("console", f->fifo, O_WRONLY, SAFE_FIFO, NULL, err, sizeof(err)), -ENXIO);
	assert_int_equal(safe_open("kernel", f->sub, O_RDONLY, SAFE_REG, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a directory"));
	/* A symlink: refused, unless the caller follows it. */
	assert_int_equal(safe_open("console", f->link, O_WRONLY | O_TRUNC, SAFE_REG, NULL, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "symlink"));
	assert_int_equal(stat(f->file, &st), 0);
	assert_int_equal(st.st_size, 4);
	fd = safe_open("kernel", f->link, O_RDONLY, SAFE_REG | SAFE_FOLLOW, NULL, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
}

static void test_busy_and_truncate(void **state)
{
	struct fixture *f = *state;
	struct file_set busy = { .n = 0 };
	char err[ERR_SIZE], path[160];
	struct stat st;
	int fd;

	assert_int_equal(file_set_add_path(&busy, f->file), 0);
	assert_int_equal(safe_open("console", f->file, O_WRONLY | O_TRUNC, SAFE_REG, &busy, err, sizeof(err)), -EBUSY);
	assert_int_equal(stat(f->file, &st), 0);
	assert_int_equal(st.st_size, 4); /* not truncated: the check came first */
	snprintf(path, sizeof(path), "%s/new", f->dir);
	fd = safe_open("console", path, O_WRONLY | O_CREAT | O_TRUNC, SAFE_REG, &busy, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	close(fd);
}

static bool starts_with_d(int fd)
{
	char c;

	return pread(fd, &c, 1, 0) == 1 && c == 'd';
}

static void test_targets(void **state)
{
	struct fixture *f = *state;
	struct safe_target a, b;
	char err[ERR_SIZE], p1[160], p2[160];

	assert_int_equal(safe_target_check("state file", f->fifo, NULL, NULL, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(safe_target_check("state file", f->sub, NULL, NULL, &a, err, sizeof(err)), -EISDIR);
	assert_int_equal(safe_target_check("state file", f->link, NULL, NULL, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(safe_target_check("state file", f->file, NULL, starts_with_d, &a, err, sizeof(err)), 0);
	assert_true(a.exists);
	snprintf(p1, sizeof(p1), "%s/./d.snap", f->sub);
	snprintf(p2, sizeof(p2), "%s/d.snap", f->sub);
	assert_int_equal(safe_target_check("state file", p1, NULL, NULL, &a, err, sizeof(err)), 0);
	assert_int_equal(safe_target_check("memory file", p2, NULL, NULL, &b, err, sizeof(err)), 0);
	assert_false(a.exists);
	assert_true(safe_target_same(&a, &b));
	snprintf(p2, sizeof(p2), "%s/d.mem", f->sub);
	assert_int_equal(safe_target_check("memory file", p2, NULL, NULL, &b, err, sizeof(err)), 0);
	assert_false(safe_target_same(&a, &b));
	snprintf(p1, sizeof(p1), "%s/.", f->sub);
	assert_int_equal(safe_target_check("state file", p1, NULL, NULL, &a, err, sizeof(err)), -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_types),
		cmocka_unit_test(test_busy_and_truncate),
		cmocka_unit_test(test_targets),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
