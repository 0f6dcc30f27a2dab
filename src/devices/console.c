// SPDX-License-Identifier: MIT
#include "devices/console.h"

#include "lib/log.h"
#include "lib/safe_path.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTRL_A 0x01

/*
 * The terminal state to restore. A file-level global on purpose: the terminal belongs to the process,
 * and the fatal-signal handler that restores it has no other way to reach it.
 */
static struct {
	struct termios saved;
	volatile sig_atomic_t raw;
} terminal;

void console_restore_terminal(void)
{
	if (terminal.raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &terminal.saved);
		terminal.raw = 0;
	}
}

/* Async-signal-safe (tcsetattr, sigaction and raise are): restore, then die of `sig` as if uncaught. */
static void fatal_signal(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	console_restore_terminal();
	sigaction(sig, &dfl, NULL);
	raise(sig); /* pending until this handler returns (the signal is blocked in it), then the default action */
}

/*
 * Every signal whose default action ends the process and that kiln does not use itself. SIGINT, SIGTERM
 * and SIGHUP are listed too: kiln reads them from a signalfd while they are blocked (vm.c), but one that
 * comes before or after that must still restore the terminal. Left out: SIGUSR1 (the vCPU kick,
 * VCPU_KICK_SIGNAL), SIGPIPE (ignored), SIGKILL and SIGSTOP (cannot be caught). A signal that is not at its
 * default action when the terminal goes raw (ignored, or a handler of kiln's, e.g. SIGBUS on guest memory)
 * is left as it is.
 */
static const int fatal_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGUSR2, SIGSEGV, SIGALRM, SIGTERM,
	SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSYS,
};

static void catch_fatal_signals(void)
{
	struct sigaction sa = { .sa_handler = fatal_signal }, old;
	size_t i;

	sigfillset(&sa.sa_mask); /* no other signal's handler runs in the middle of this one */
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (!sigaction(fatal_signals[i], NULL, &old) && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(fatal_signals[i], &sa, NULL);
}

static int terminal_make_raw(void)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &terminal.saved) < 0)
		return -errno;
	raw = terminal.saved;
	cfmakeraw(&raw);
	/* Keep output post-processing so the host's own messages (\n) still render as lines. */
	raw.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		return -errno;
	terminal.raw = 1;
	atexit(console_restore_terminal);
	catch_fatal_signals();
	return 0;
}

int console_open(struct console *con, const char *path, uint64_t max_bytes, const struct file_set *busy, char *err,
		 size_t err_size)
{
	memset(con, 0, sizeof(*con));
	con->in_fd = -1;
	con->out_fd = -1;
	if (!path || strcmp(path, "stdio") == 0) {
		con->in_fd = STDIN_FILENO;
		con->out_fd = STDOUT_FILENO;
		if (isatty(STDIN_FILENO)) {
			int ret = terminal_make_raw();

			if (ret) {
				errmsg_set(err, err_size, "stdio: cannot make the terminal raw: %s", strerror(-ret));
				return ret;
			}
		}
		return 0;
	}
	/*
	 * A FIFO (Firecracker's serial output) stays non-blocking: no reader fails here, a slow one drops.
	 * No symlink (one planted in a shared directory would aim root's output anywhere); no file the VM
	 * uses; truncated only once it passed those checks.
	 */
	con->max_bytes = max_bytes;
	con->out_fd = safe_open("console", path, O_WRONLY | O_CREAT | O_TRUNC, SAFE_REG | SAFE_FIFO | SAFE_CHR, busy,
				err, err_size);
	if (con->out_fd < 0)
		return con->out_fd;
	con->owns_out = true;
	return 0;
}

void console_close(struct console *con)
{
	uint64_t dropped = atomic_load(&con->dropped);

	if (dropped)
		pr_warn("console: %llu bytes of guest output dropped (past console_max_bytes %llu, or a FIFO's reader "
			"behind)", (unsigned long long)dropped, (unsigned long long)con->max_bytes);
	if (con->owns_out && con->out_fd >= 0)
		close(con->out_fd);
	con->out_fd = -1;
	con->in_fd = -1;
	console_restore_terminal();
}

void console_write(struct console *con, const uint8_t *buf, size_t len)
{
	if (con->owns_out && con->max_bytes) {
		/* Reserve before writing: vCPU threads share the budget without a lock. */
		uint64_t before = atomic_fetch_add(&con->written, len);
		uint64_t room = before >= con->max_bytes ? 0 : con->max_bytes - before;

		if (room < len) {
			atomic_fetch_add(&con->dropped, len - room);
			len = (size_t)room;
		}
	}
	while (len && con->out_fd >= 0) {
		ssize_t n = write(con->out_fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN: a FIFO whose reader is behind; guest output never blocks a vCPU. */
			atomic_fetch_add(&con->dropped, len);
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

size_t console_filter_input(struct console *con, const uint8_t *in, size_t len, uint8_t *out, bool *quit)
{
	size_t i, n = 0;

	*quit = false;
	if (!terminal.raw) {
		memcpy(out, in, len);
		return len;
	}
	for (i = 0; i < len; i++) {
		uint8_t c = in[i];

		if (con->escape) {
			con->escape = false;
			if (c == 'x' || c == 'X') {
				*quit = true;
				return n;
			}
			if (c == CTRL_A)
				out[n++] = CTRL_A;
			/* Any other key after Ctrl-A is dropped, as in QEMU. */
			continue;
		}
		if (c == CTRL_A) {
			con->escape = true;
			continue;
		}
		out[n++] = c;
	}
	return n;
}
