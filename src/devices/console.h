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
	_Atomic uint64_t dropped; /* bytes of guest output not written (a FIFO's reader behind) */
};

/*
 * Open the console: NULL or "stdio" means standard input/output (the terminal is put in raw mode when
 * it is one); anything else is a file (created/truncated) that receives the guest's output, with no
 * guest input. Returns 0 or -errno.
 */
int console_open(struct console *con, const char *path) __attribute__((warn_unused_result));
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
