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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_reach_the_loop_thread),
		cmocka_unit_test(test_destroy_without_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
