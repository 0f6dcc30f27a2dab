/* SPDX-License-Identifier: MIT */
/*
 * kiln's event loop: one epoll set whose sources are file descriptors, each with a callback. Two
 * loops of this one kind run in a VMM process (docs/design.md "Threads, locks and the vCPU state
 * machine"): the device event loop on its own thread (loop_start: ioeventfds of the virtio queues, TAP
 * fds, I/O completions; a device subscribes its queue eventfds only once the guest activates it, as
 * Firecracker does), and the main thread's control loop (loop_run: console input, the signals that
 * stop kiln, the VM's stop eventfd, the profile timer, and before the VM exists the API's start
 * handshake).
 *
 * A loop that fails (epoll_wait fails, or a callback calls loop_fail) stops: loop_run returns the
 * error and the loop's error handler (loop_on_error) is called with a message, so that the VM it
 * serves stops rather than runs on without it.
 */
#ifndef KILN_VMM_LOOP_H
#define KILN_VMM_LOOP_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called on the loop's thread with the epoll events (EPOLLIN...) that fired for `fd`. */
typedef void (*loop_fn)(void *opaque, int fd, uint32_t events);
/* A signal of loop_add_stop_signals arrived (read from the loop's signalfd). */
typedef void (*loop_signal_fn)(void *opaque, int signo);
/* The loop failed with -errno `err` and stopped; `msg` says what failed. On the loop's thread. */
typedef void (*loop_error_fn)(void *opaque, int err, const char *msg);

struct loop_source;

#define LOOP_MSG_SIZE 192

struct loop {
	int epfd;
	int wake_fd;              /* eventfd: ends loop_run() */
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping;
	const char *name;         /* "device event loop": messages */
	loop_error_fn on_error;
	void *error_opaque;
	pthread_mutex_t lock;     /* guards the source list; loop_fail's message */
	struct loop_source *sources;
	struct loop_source *retired; /* removed sources, freed by loop_destroy */
	atomic_int failed;        /* -errno from loop_fail, 0 while the loop is healthy */
	char fail_msg[LOOP_MSG_SIZE]; /* written once, before `failed` is set */
};

/* Returns 0 or -errno. The loop is named "event loop" until loop_on_error names it. */
int loop_init(struct loop *loop) __attribute__((warn_unused_result));

/* Name the loop for messages and set what is called when it fails (before it runs). */
void loop_on_error(struct loop *loop, const char *name, loop_error_fn fn, void *opaque);

/*
 * Watch `fd` for `events` (EPOLLIN, EPOLLOUT...; level-triggered) and call fn(opaque, fd, events) on
 * the loop thread. Thread-safe; may be called from a callback. Returns 0, -EEXIST, or -errno.
 */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque) __attribute__((warn_unused_result));

/*
 * A timer the loop owns (a timerfd, closed by loop_del or loop_destroy): fn(opaque, fd, EPOLLIN) runs
 * each time it expires, its expirations already read. Disarmed until loop_timer_set. Returns the
 * timer's fd (for loop_timer_set, loop_del) or -errno.
 */
int loop_add_timer(struct loop *loop, loop_fn fn, void *opaque) __attribute__((warn_unused_result));

/* Arm timer `fd` to expire in `first_ns` (0: disarm), then every `interval_ns` (0: once). 0 or -errno. */
int loop_timer_set(int fd, uint64_t first_ns, uint64_t interval_ns) __attribute__((warn_unused_result));

/*
 * SIGINT, SIGTERM and SIGHUP, the signals that stop kiln: blocked in the calling thread (threads it
 * creates afterwards inherit that) and read from a signalfd the loop owns; fn(opaque, signo) runs for
 * each. The one place kiln sets them up. Returns 0 or -errno.
 */
int loop_add_stop_signals(struct loop *loop, loop_signal_fn fn, void *opaque) __attribute__((warn_unused_result));

/* Unblock loop_add_stop_signals' signals in the calling thread (once nothing reads them any more). */
void loop_unblock_stop_signals(void);

/*
 * Stop watching `fd` (closing it when the loop owns it: timers, signalfds). When called from another
 * thread than the loop's, a callback for `fd` may still be running; callers serialise with their own
 * device lock. Returns 0 or -ENOENT.
 */
int loop_del(struct loop *loop, int fd);

/*
 * Change the events watched for `fd` (0: none but EPOLLERR/EPOLLHUP, which epoll always reports),
 * keeping its callback: for a device that toggles EPOLLIN/EPOLLOUT often (a TAP fd), where
 * loop_del + loop_add would keep one retired record per toggle until loop_destroy. Thread-safe; may
 * be called from a callback. Returns 0, -ENOENT, or -errno.
 */
int loop_mod(struct loop *loop, int fd, uint32_t events) __attribute__((warn_unused_result));

/*
 * Run the loop on the calling thread until loop_quit() or a failure. Returns 0 after loop_quit, or
 * the failure's -errno once the error handler has run (loop_error() has the message).
 */
int loop_run(struct loop *loop) __attribute__((warn_unused_result));

/* Start a thread that runs loop_run (every signal blocked in it). Returns 0 or -errno. */
int loop_start(struct loop *loop) __attribute__((warn_unused_result));

/* Make loop_run return once the callback in progress (if any) is done. Any thread. */
void loop_quit(struct loop *loop);

/*
 * From a callback: the loop cannot go on (a source it needs broke). The loop stops after this
 * callback, as if epoll_wait had failed with `err` (-errno), and its error handler gets the message.
 * The first failure is kept.
 */
void loop_fail(struct loop *loop, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Why the loop failed ("" while it has not). */
const char *loop_error(struct loop *loop);

/*
 * Without the loop thread: wait up to `timeout_ms` (0: not at all, -1: forever) for events and run their
 * callbacks on the calling thread, as the loop thread would. For a loop that is driven step by step
 * (tests, fuzzing) and never started. Returns how many sources fired (0 after the timeout or a
 * signal), -EBUSY when the loop thread runs, or -errno from epoll_wait.
 */
int loop_run_once(struct loop *loop, int timeout_ms) __attribute__((warn_unused_result));

/* Stop and join the loop thread (idempotent), then release everything. */
void loop_destroy(struct loop *loop);

#endif
