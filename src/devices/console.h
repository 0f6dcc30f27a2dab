/* SPDX-License-Identifier: MIT */
/*
 * The host side of the guest console: the terminal (raw mode, restored on every exit path) or a file
 * for output. With a terminal, Ctrl-A x ends the VM and Ctrl-A Ctrl-A sends a Ctrl-A (as QEMU's -nographic).
 */
#ifndef KILN_DEVICES_CONSOLE_H
#define KILN_DEVICES_CONSOLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

struct console {
	int in_fd;     /* -1 when the guest gets no input */
	int out_fd;
	bool owns_out; /* out_fd was opened by kiln */
	bool escape;   /* Ctrl-A seen, waiting for the command key */
	uint64_t max_bytes;       /* a file's or FIFO's cap on guest output; 0: none */
	_Atomic uint64_t written; /* bytes of guest output taken (counted against max_bytes) */
	_Atomic uint64_t dropped; /* bytes of guest output not written (past max_bytes, a FIFO's reader behind) */
};

/*
 * Open the console: NULL or "stdio" means standard input/output (the terminal is put in raw mode when
 * it is one); anything else receives the guest's output, with no guest input: a regular file (created
 * 0600, truncated once checked), a FIFO (non-blocking: output dropped while the reader is behind) or a
 * character device, never a symlink or a file in `busy` (lib/safe_path.h). At most `max_bytes` bytes
 * of output go to a file or FIFO (0: no cap); the rest is dropped and counted, and console_close logs
 * the count. Returns 0 or -errno with "console PATH: why" in `err`.
 */
struct file_set;
int console_open(struct console *con, const char *path, uint64_t max_bytes, const struct file_set *busy, char *err,
		 size_t err_size) __attribute__((warn_unused_result));
void console_close(struct console *con);

/* Write guest output; retries short writes; drops output if the console is gone. Thread-safe. */
void console_write(struct console *con, const uint8_t *buf, size_t len);

/*
 * Filter bytes typed on the terminal through the Ctrl-A escape. Copies guest-bound bytes to `out`
 * (at most `len`), returns how many; sets *quit when the user typed Ctrl-A x.
 */
size_t console_filter_input(struct console *con, const uint8_t *in, size_t len, uint8_t *out, bool *quit);

/* Put the terminal back the way kiln found it. Async-signal-safe; idempotent. */
void console_restore_terminal(void);

#endif
