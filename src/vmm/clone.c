// SPDX-License-Identifier: MIT
/* Clones as processes: the model is in clone.h. */
#include "vmm/clone.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/block/image_copy.h"
#include "lib/log.h"
#include "vmm/config.h"
#include "vmm/snapshot.h"

#define MAX_ARGS (16 + 4 * VM_CLONE_MAX_OVERRIDES)

/* argv for `kiln run --restore ...`; `fd_text` holds the ready fd's number. */
static void build_argv(const struct vm_clone_spec *spec, const char *fd_text, const char **argv)
{
	int n = 0;

	argv[n++] = "kiln";
	argv[n++] = "run";
	argv[n++] = "--restore";
	argv[n++] = spec->state_path;
	argv[n++] = "--mem";
	argv[n++] = spec->mem_path;
	argv[n++] = "--console";
	argv[n++] = spec->console_path ? spec->console_path : "/dev/null";
	argv[n++] = "--ready-fd";
	argv[n++] = fd_text;
	argv[n++] = "--quiet";
	if (spec->api_sock) {
		argv[n++] = "--api-sock";
		argv[n++] = spec->api_sock;
	}
	if (spec->copy)
		argv[n++] = "--copy";
	if (spec->paused)
		argv[n++] = "--paused";
	for (unsigned int i = 0; i < spec->nr_net_overrides && i < VM_CLONE_MAX_OVERRIDES; i++) {
		argv[n++] = "--net-override";
		argv[n++] = spec->net_overrides[i];
	}
	for (unsigned int i = 0; i < spec->nr_disk_overrides && i < VM_CLONE_MAX_OVERRIDES; i++) {
		argv[n++] = "--disk-override";
		argv[n++] = spec->disk_overrides[i];
	}
	argv[n] = NULL;
}

/*
 * In the child of a fork in a process that may have other threads: only async-signal-safe calls until
 * exec. stdin from /dev/null, stdout (and stderr) to the log, the ready pipe's write end kept across
 * exec, a session of its own (a terminal's Ctrl-C aimed at the caller does not stop the clone). Never
 * returns.
 */
static void exec_clone(const char *const *argv, int ready_fd, const char *log_path)
{
	static const char msg[] = "kiln: cannot start a clone: exec /proc/self/exe failed\n";
	int null = open("/dev/null", O_RDWR), log = -1;

	if (log_path)
		log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(log >= 0 ? log : null, STDOUT_FILENO);
		close(null);
	}
	if (log >= 0) {
		dup2(log, STDERR_FILENO);
		close(log);
	}
	fcntl(ready_fd, F_SETFD, 0);
	setsid();
	execv("/proc/self/exe", (char *const *)argv);
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}

int vm_clone_start(const struct vm_clone_spec *spec, struct vm_clone *c, char *err, size_t err_size)
{
	const char *argv[MAX_ARGS];
	char fd_text[16];
	int fds[2], status, ret;
	pid_t child;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "pipe: %s", strerror(errno));
		return ret;
	}
	snprintf(fd_text, sizeof(fd_text), "%d", fds[1]);
	build_argv(spec, fd_text, argv);
	child = fork();
	if (child < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	if (child == 0) {
		if (spec->detach) {
			pid_t grandchild = fork();

			if (grandchild != 0)
				_exit(grandchild < 0 ? 127 : 0); /* the grandchild is adopted by init */
		}
		exec_clone(argv, fds[1], spec->log_path);
	}
	close(fds[1]);
	if (spec->detach)
		waitpid(child, &status, 0);
	*c = (struct vm_clone){ .child = child, .ready_fd = fds[0], .detach = spec->detach };
	return 0;
}

pid_t vm_clone_wait(struct vm_clone *c, int timeout_ms, char *err, size_t err_size)
{
	struct pollfd pfd = { .fd = c->ready_fd, .events = POLLIN };
	char buf[64];
	size_t got = 0;
	long pid = -1;
	int status, ret = -EIO;

	if (timeout_ms <= 0)
		timeout_ms = 60000;
	/* "ready <pid>\n" from the clone, or EOF when it dies first. */
	while (got < sizeof(buf) - 1) {
		int n = poll(&pfd, 1, timeout_ms);
		ssize_t r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			ret = -ETIMEDOUT;
			break;
		}
		r = read(c->ready_fd, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		if (strchr(buf, '\n')) {
			if (sscanf(buf, "ready %ld", &pid) == 1 && pid > 0)
				ret = 0;
			break;
		}
	}
	close(c->ready_fd);
	c->ready_fd = -1;
	if (ret == 0)
		return (pid_t)pid;
	if (ret == -ETIMEDOUT)
		errmsg_set(err, err_size, "the clone did not start within %d ms", timeout_ms);
	else
		errmsg_set(err, err_size, "the clone exited before its VM ran (its messages: its log or stderr)");
	if (!c->detach) {
		if (ret == -ETIMEDOUT)
			kill(c->child, SIGKILL);
		waitpid(c->child, &status, 0);
	}
	return ret;
}

pid_t vm_clone_spawn(const struct vm_clone_spec *spec, int timeout_ms, char *err, size_t err_size)
{
	struct vm_clone c;
	int ret = vm_clone_start(spec, &c, err, err_size);

	return ret ? ret : vm_clone_wait(&c, timeout_ms, err, err_size);
}

void vm_clone_report_ready(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "ready %ld\n", (long)getpid());

	if (write(fd, buf, (size_t)n) != n)
		pr_warn("cannot report readiness on fd %d: %s", fd, strerror(errno));
	close(fd);
}

int vm_clone_expand_index(char *out, size_t size, const char *pattern, unsigned long index)
{
	size_t n = 0;

	for (const char *p = pattern; *p; p++) {
		int w = 1;

		if (p[0] == '%' && p[1] == 'd') {
			w = snprintf(out + n, size - n, "%lu", index);
			p++;
		} else if (n + 1 < size) {
			out[n] = *p;
		}
		if (w < 0 || (size_t)w >= size - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	out[n] = '\0';
	return 0;
}

int vm_clone_disk_path(char *out, size_t size, const char *dir, const char *state_path, const char *drive_id,
		       unsigned long index)
{
	const char *slash = strrchr(state_path, '/');
	int n;

	if (dir)
		n = snprintf(out, size, "%s/%s.clone%lu.img", dir, drive_id, index);
	else if (slash) /* "/state" gives "", then "/<drive_id>...": the root */
		n = snprintf(out, size, "%.*s/%s.clone%lu.img", (int)(slash - state_path), state_path, drive_id, index);
	else
		n = snprintf(out, size, "./%s.clone%lu.img", drive_id, index);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int vm_clone_copy_disk(struct snap_reader *r, const struct vm_config *cfg, const char *drive_id, const char *dst,
		       char *err, size_t err_size)
{
	struct snap_disk *d = malloc(sizeof(*d));
	struct image_copy_result res;
	uint64_t t0 = time_now_ns();
	int ret;

	if (!d)
		return -ENOMEM;
	ret = vm_snapshot_disk(r, cfg, drive_id, d, err, err_size);
	ret = ret ?: snap_disk_check(d, NULL, true, err, err_size);
	ret = ret ?: image_copy(d->path, dst, &res, err, err_size);
	if (!ret && res.how == IMAGE_COPY_REFLINK)
		pr_info("drive %s: %s is a reflink of %s (copy-on-write, %.1f ms)", drive_id, dst, d->path,
			(double)(time_now_ns() - t0) / 1e6);
	else if (!ret)
		pr_info("drive %s: %s is a sparse copy of %s (%" PRIu64 " of %" PRIu64 " KiB copied, holes kept; %.1f ms): "
			"the filesystem cannot reflink", drive_id, dst, d->path, res.data_bytes >> 10, res.size >> 10,
			(double)(time_now_ns() - t0) / 1e6);
	free(d);
	return ret;
}

int vm_clone_apply_disk_override(struct snap_reader *r, struct vm_config *cfg, const char *spec, char *err,
				 size_t err_size)
{
	const char *eq = strchr(spec, '=');
	size_t id_len = eq ? (size_t)(eq - spec) : 0;
	char id[CONFIG_MAX_ID + 1];
	struct snap_disk *d;
	int ret;

	if (!eq || !id_len || id_len > CONFIG_MAX_ID || !eq[1]) {
		errmsg_set(err, err_size, "expected DRIVE_ID=PATH");
		return -EINVAL;
	}
	memcpy(id, spec, id_len);
	id[id_len] = '\0';
	for (unsigned int i = 0; i < cfg->nr_drives; i++) {
		if (strcmp(cfg->drives[i].drive_id, id) && !strcmp(cfg->drives[i].path_on_host, eq + 1)) {
			errmsg_set(err, err_size, "%s is drive %s's image already", eq + 1, cfg->drives[i].drive_id);
			return -EINVAL;
		}
	}
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	ret = vm_snapshot_disk(r, cfg, id, d, err, err_size);
	ret = ret ?: snap_disk_check(d, eq + 1, false, err, err_size);
	free(d);
	for (unsigned int i = 0; i < cfg->nr_drives && !ret; i++) {
		if (!strcmp(cfg->drives[i].drive_id, id)) {
			char *path = strdup(eq + 1);

			if (!path)
				return -ENOMEM;
			free(cfg->drives[i].path_on_host);
			cfg->drives[i].path_on_host = path;
			break;
		}
	}
	return ret;
}
