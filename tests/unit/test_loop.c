// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/loop.h"

struct counter {
	atomic_int calls;
	pthread_t thread;
};

static void on_event(void *opaque, int fd, uint32_t events)
{
	struct counter *c = opaque;
	uint64_t v;

	assert_true(events & EPOLLIN);
	if (read(fd, &v, sizeof(v)) == sizeof(v))
		atomic_fetch_add(&c->calls, (int)v);
	c->thread = pthread_self();
}

static void wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 2000 && atomic_load(v) != want; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
}

static void test_events_reach_the_loop_thread(void **state)
{
	struct loop loop;
	struct counter c = { 0 };
	int fd = eventfd(0, EFD_NONBLOCK);
	uint64_t three = 3;

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	assert_int_equal(loop_add(&loop, fd, EPOLLIN, on_event, &c), 0);
	assert_int_equal(loop_add(&loop, fd, EPOLLIN, on_event, &c), -EEXIST);
	assert_int_equal(loop_start(&loop), 0);
	assert_int_equal(write(fd, &three, sizeof(three)), sizeof(three));
	wait_for(&c.calls, 3);
	assert_int_equal(atomic_load(&c.calls), 3);
	assert_false(pthread_equal(c.thread, pthread_self()));
	/* After loop_del, nothing more is delivered. */
	assert_int_equal(loop_del(&loop, fd), 0);
	assert_int_equal(loop_del(&loop, fd), -ENOENT);
	assert_int_equal(write(fd, &three, sizeof(three)), sizeof(three));
	nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	assert_int_equal(atomic_load(&c.calls), 3);
	loop_destroy(&loop);
	close(fd);
}

static void test_destroy_without_start(void **state)
{
	struct loop loop;
	struct counter c = { 0 };
	int fd = eventfd(0, EFD_NONBLOCK);

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	assert_int_equal(loop_add(&loop, fd, EPOLLIN, on_event, &c), 0);
	loop_destroy(&loop);
	close(fd);
}

/* Without the thread: loop_run_once runs the callbacks on the caller's thread, and only when asked. */
static void test_run_once(void **state)
{
	struct loop loop;
	struct counter c = { 0 };
	int fd = eventfd(0, EFD_NONBLOCK), fd2 = eventfd(0, EFD_NONBLOCK);
	uint64_t two = 2;

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	assert_int_equal(loop_add(&loop, fd, EPOLLIN, on_event, &c), 0);
	assert_int_equal(loop_add(&loop, fd2, EPOLLIN, on_event, &c), 0);
	assert_int_equal(loop_run_once(&loop, 0), 0); /* nothing pending: returns at once */
	assert_int_equal(write(fd, &two, sizeof(two)), sizeof(two));
	assert_int_equal(write(fd2, &two, sizeof(two)), sizeof(two));
	assert_int_equal(atomic_load(&c.calls), 0);
	assert_int_equal(loop_run_once(&loop, -1), 2);
	assert_int_equal(atomic_load(&c.calls), 4);
	assert_true(pthread_equal(c.thread, pthread_self()));
	assert_int_equal(loop_run_once(&loop, 10), 0); /* the callbacks drained both */
	/* A removed source is not called. */
	assert_int_equal(loop_del(&loop, fd), 0);
	assert_int_equal(write(fd, &two, sizeof(two)), sizeof(two));
	assert_int_equal(loop_run_once(&loop, 0), 0);
	assert_int_equal(atomic_load(&c.calls), 4);
	/* Once the thread runs, it alone waits on the loop. */
	assert_int_equal(loop_start(&loop), 0);
	assert_int_equal(loop_run_once(&loop, 0), -EBUSY);
	loop_destroy(&loop);
	close(fd);
	close(fd2);
}

struct failure {
	int calls;
	int err;
	char msg[LOOP_MSG_SIZE + 64];
	pthread_t thread;
};

static void on_failure(void *opaque, int err, const char *msg)
{
	struct failure *f = opaque;

	f->calls++;
	f->err = err;
	snprintf(f->msg, sizeof(f->msg), "%s", msg);
	f->thread = pthread_self();
}

static void quit_on_event(void *opaque, int fd, uint32_t events)
{
	uint64_t v;

	(void)events;
	assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
	loop_quit(opaque);
}

static void fail_on_event(void *opaque, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	loop_fail(opaque, -EPIPE, "the source broke");
	loop_fail(opaque, -EIO, "a second failure"); /* the first one is kept */
}

/* loop_run on the caller's thread ends with loop_quit (0) or with a failure (the handler, then -errno). */
static void test_run_quit_and_fail(void **state)
{
	struct loop loop;
	struct failure f = { 0 };
	int quit_fd = eventfd(0, EFD_NONBLOCK), fail_fd = eventfd(0, EFD_NONBLOCK);
	uint64_t one = 1;

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	loop_on_error(&loop, "test loop", on_failure, &f);
	assert_int_equal(loop_add(&loop, quit_fd, EPOLLIN, quit_on_event, &loop), 0);
	assert_int_equal(loop_add(&loop, fail_fd, EPOLLIN, fail_on_event, &loop), 0);
	assert_int_equal(write(quit_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(loop_run(&loop), 0);
	assert_int_equal(f.calls, 0);
	assert_string_equal(loop_error(&loop), "");
	atomic_store(&loop.stopping, false); /* run it again */
	assert_int_equal(write(fail_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(loop_run(&loop), -EPIPE);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.err, -EPIPE);
	assert_string_equal(f.msg, "test loop: the source broke");
	loop_destroy(&loop);
	close(quit_fd);
	close(fail_fd);
}

/* The loop thread stops on an epoll_wait failure and says so through the handler, on its own thread. */
static void test_thread_stops_on_epoll_failure(void **state)
{
	struct loop loop;
	struct failure f = { 0 };
	int epfd;

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	loop_on_error(&loop, "device event loop", on_failure, &f);
	/* An epoll fd that is not one: epoll_wait fails with EINVAL at once. */
	epfd = loop.epfd;
	loop.epfd = eventfd(0, 0);
	assert_int_equal(loop_start(&loop), 0);
	pthread_join(loop.thread, NULL);
	loop.thread_started = false;
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.err, -EINVAL);
	assert_string_equal(f.msg, "device event loop: epoll_wait: Invalid argument");
	assert_false(pthread_equal(f.thread, pthread_self()));
	close(loop.epfd);
	loop.epfd = epfd;
	loop_destroy(&loop);
}

static void count_tick(void *opaque, int fd, uint32_t events)
{
	struct counter *c = opaque;

	(void)fd;
	assert_true(events & EPOLLIN);
	atomic_fetch_add(&c->calls, 1);
}

static void on_signal(void *opaque, int signo)
{
	*(int *)opaque = signo;
}

/* Timers and the stop signals are sources the loop reads itself; loop_del closes what the loop owns. */
static void test_timer_and_signals(void **state)
{
	struct loop loop;
	struct counter c = { 0 };
	int signo = 0, tfd;

	(void)state;
	assert_int_equal(loop_init(&loop), 0);
	tfd = loop_add_timer(&loop, count_tick, &c);
	assert_true(tfd >= 0);
	assert_int_equal(loop_run_once(&loop, 20), 0); /* disarmed */
	assert_int_equal(loop_timer_set(tfd, 1000000, 0), 0);
	assert_int_equal(loop_run_once(&loop, 2000), 1);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(loop_run_once(&loop, 20), 0); /* once: its expiration was read */

	assert_int_equal(loop_add_stop_signals(&loop, on_signal, &signo), 0);
	pthread_kill(pthread_self(), SIGHUP); /* blocked now: pending for the signalfd */
	assert_int_equal(loop_run_once(&loop, 2000), 1);
	assert_int_equal(signo, SIGHUP);
	loop_unblock_stop_signals();

	assert_int_equal(loop_del(&loop, tfd), 0);
	assert_int_equal(fcntl(tfd, F_GETFD), -1);
	loop_destroy(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_reach_the_loop_thread),
		cmocka_unit_test(test_destroy_without_start),
		cmocka_unit_test(test_run_once),
		cmocka_unit_test(test_run_quit_and_fail),
		cmocka_unit_test(test_thread_stops_on_epoll_failure),
		cmocka_unit_test(test_timer_and_signals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
