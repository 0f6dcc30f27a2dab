/* SPDX-License-Identifier: MIT */
/*
 * The VMM's device event loop: one thread, one epoll set. Devices subscribe file descriptors
 * (ioeventfds of their queues, TAP fds, timers, I/O completions) with a callback that runs on the loop
 * thread. A device subscribes its queue eventfds only once the guest activates it (as Firecracker does).
 */
#ifndef KILN_VMM_LOOP_H
#define KILN_VMM_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Called on the loop thread with the epoll events (EPOLLIN...) that fired for `fd`. */
typedef void (*loop_fn)(void *opaque, int fd, uint32_t events);

struct loop_source;

struct loop {
	int epfd;
	int wake_fd;              /* eventfd: ends loop_run() */
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping;
	pthread_mutex_t lock;     /* guards the source list */
	struct loop_source *sources;
	struct loop_source *retired; /* removed sources, freed by loop_destroy */
};

/* Returns 0 or -errno. */
int loop_init(struct loop *loop) __attribute__((warn_unused_result));

/*
 * Watch `fd` for `events` (EPOLLIN, EPOLLOUT...; level-triggered) and call fn(opaque, fd, events) on
 * the loop thread. Thread-safe; may be called from a callback. Returns 0, -EEXIST, or -errno.
 */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque) __attribute__((warn_unused_result));

/*
 * Stop watching `fd`. When called from another thread than the loop's, a callback for `fd` may still be
 * running; callers serialise with their own device lock. Returns 0 or -ENOENT.
 */
int loop_del(struct loop *loop, int fd);

/*
 * Change the events watched for `fd` (0: none but EPOLLERR/EPOLLHUP, which epoll always reports),
 * keeping its callback: for a device that toggles EPOLLIN/EPOLLOUT often (a TAP fd), where
 * loop_del + loop_add would keep one retired record per toggle until loop_destroy. Thread-safe; may
 * be called from a callback. Returns 0, -ENOENT, or -errno.
 */
int loop_mod(struct loop *loop, int fd, uint32_t events) __attribute__((warn_unused_result));

/* Start the loop thread. Returns 0 or -errno. */
int loop_start(struct loop *loop) __attribute__((warn_unused_result));

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
