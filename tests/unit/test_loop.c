// SPDX-License-Identifier: MIT
#include <errno.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_reach_the_loop_thread),
		cmocka_unit_test(test_destroy_without_start),
		cmocka_unit_test(test_run_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
