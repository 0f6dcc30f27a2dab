// SPDX-License-Identifier: MIT
/*
 * The vCPU state machine (vmm/vcpu_control.h) around a fake vCPU: a thread whose "KVM_RUN" waits on an
 * eventfd (the kick) for at most a millisecond and counts its runs, as vcpu.c's thread runs KVM_RUN.
 * A fake vCPU can be made slow to leave its "exit" (a mutex the test holds), to show that a poster
 * waiting for it holds no lock anyone else needs.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vcpu_control.h"

struct fake_vcpu {
	struct vcpu_control ctl;
	pthread_t thread;
	int kick_fd;
	atomic_uint runs;
	atomic_uint kicks;
	pthread_mutex_t slow_exit; /* held by the test: the vCPU is stuck in its exit */
	atomic_bool in_exit;
};

static void fake_kick(void *owner)
{
	struct fake_vcpu *v = owner;
	uint64_t one = 1;

	atomic_fetch_add(&v->kicks, 1);
	assert_int_equal(write(v->kick_fd, &one, sizeof(one)), sizeof(one));
}

static void *fake_thread(void *arg)
{
	struct fake_vcpu *v = arg;

	while (vcpu_control_serve(&v->ctl)) {
		struct pollfd p = { .fd = v->kick_fd, .events = POLLIN };
		uint64_t n;

		/* "KVM_RUN": until kicked, at most 1 ms (an exit), then the exit's handling. */
		if (poll(&p, 1, 1) > 0)
			assert_int_equal(read(v->kick_fd, &n, sizeof(n)), sizeof(n));
		atomic_fetch_add(&v->runs, 1);
		atomic_store(&v->in_exit, true);
		pthread_mutex_lock(&v->slow_exit);
		pthread_mutex_unlock(&v->slow_exit);
		atomic_store(&v->in_exit, false);
	}
	vcpu_control_leave(&v->ctl);
	return NULL;
}

static int fake_spawn(void *arg)
{
	struct fake_vcpu *v = arg;

	return -pthread_create(&v->thread, NULL, fake_thread, v);
}

static void fake_init(struct fake_vcpu *v)
{
	*v = (struct fake_vcpu){ .kick_fd = eventfd(0, EFD_NONBLOCK) };
	assert_true(v->kick_fd >= 0);
	pthread_mutex_init(&v->slow_exit, NULL);
	vcpu_control_init(&v->ctl, fake_kick, v);
}

static void fake_start(struct fake_vcpu *v)
{
	assert_int_equal(vcpu_control_start(&v->ctl, fake_spawn, v), 0);
}

static void fake_fini(struct fake_vcpu *v, bool started)
{
	vcpu_control_exit(&v->ctl);
	if (started)
		pthread_join(v->thread, NULL);
	assert_int_equal(vcpu_control_state(&v->ctl), VCPU_EXITED);
	vcpu_control_destroy(&v->ctl);
	pthread_mutex_destroy(&v->slow_exit);
	close(v->kick_fd);
}

static int request(struct fake_vcpu *v, enum vcpu_request_type type)
{
	int ret = vcpu_control_post(&v->ctl, &(struct vcpu_request){ .type = type });

	return ret ?: vcpu_control_wait(&v->ctl);
}

static void wait_runs(struct fake_vcpu *v, unsigned int n)
{
	for (int i = 0; i < 5000 && atomic_load(&v->runs) < n; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_true(atomic_load(&v->runs) >= n);
}

struct on_thread {
	pthread_t seen;
	int calls;
};

static int record_thread(void *owner, void *arg)
{
	struct on_thread *t = arg;

	(void)owner;
	t->seen = pthread_self();
	t->calls++;
	return 42;
}

static void test_pause_resume_and_call_on_the_vcpu_thread(void **state)
{
	struct fake_vcpu v;
	struct on_thread t = { 0 };
	unsigned int runs;

	(void)state;
	fake_init(&v);
	fake_start(&v);
	wait_runs(&v, 3);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_RUNNING);

	/* A pause is answered once the thread is out of its run and waiting in its slot. */
	assert_int_equal(request(&v, VCPU_REQ_PAUSE), 0);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_PAUSED);
	assert_true(atomic_load(&v.kicks) >= 1);
	runs = atomic_load(&v.runs);
	/* A call runs on the vCPU's own thread, and the vCPU stays paused around it: no run in between. */
	assert_int_equal(vcpu_control_call(&v.ctl, record_thread, &t), 42);
	assert_int_equal(t.calls, 1);
	assert_true(pthread_equal(t.seen, v.thread));
	assert_int_equal(vcpu_control_call(&v.ctl, record_thread, &t), 42);
	assert_int_equal(atomic_load(&v.runs), runs);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_PAUSED);

	/* Resumed, it runs again. */
	assert_int_equal(request(&v, VCPU_REQ_RESUME), 0);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_RUNNING);
	wait_runs(&v, runs + 3);
	fake_fini(&v, true);
}

/* Before its thread starts, the poster owns the vCPU: requests are carried out at once, on its thread. */
static void test_requests_before_the_thread_starts(void **state)
{
	struct fake_vcpu v;
	struct on_thread t = { 0 };

	(void)state;
	fake_init(&v);
	assert_int_equal(vcpu_control_call(&v.ctl, record_thread, &t), 42);
	assert_true(pthread_equal(t.seen, pthread_self()));
	assert_int_equal(atomic_load(&v.kicks), 0);
	/* Paused before the start (a VM restored paused): the thread waits before its first run. */
	assert_int_equal(request(&v, VCPU_REQ_PAUSE), 0);
	fake_start(&v);
	assert_int_equal(vcpu_control_call(&v.ctl, record_thread, &t), 42);
	assert_true(pthread_equal(t.seen, v.thread));
	assert_int_equal(atomic_load(&v.runs), 0);
	assert_int_equal(request(&v, VCPU_REQ_RESUME), 0);
	wait_runs(&v, 1);
	fake_fini(&v, true);
}

/* A paused vCPU leaves at once when the VM stops; afterwards every request is refused. */
static void test_exit(void **state)
{
	struct fake_vcpu v, never;

	(void)state;
	fake_init(&v);
	fake_start(&v);
	assert_int_equal(request(&v, VCPU_REQ_PAUSE), 0);
	vcpu_control_exit(&v.ctl);
	pthread_join(v.thread, NULL);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_EXITED);
	assert_int_equal(vcpu_control_post(&v.ctl, &(struct vcpu_request){ .type = VCPU_REQ_RESUME }), -ESHUTDOWN);
	/* No kick reaches a thread that has left (it would be a signal to a joined thread). */
	{
		unsigned int kicks = atomic_load(&v.kicks);

		vcpu_control_kick(&v.ctl);
		assert_int_equal(atomic_load(&v.kicks), kicks);
	}
	fake_fini(&v, false);

	/* A vCPU whose thread never started is exited by the stop too. */
	fake_init(&never);
	vcpu_control_exit(&never.ctl);
	assert_int_equal(vcpu_control_post(&never.ctl, &(struct vcpu_request){ .type = VCPU_REQ_PAUSE }), -ESHUTDOWN);
	assert_int_equal(vcpu_control_start(&never.ctl, fake_spawn, &never), -ESHUTDOWN);
	fake_fini(&never, false);
}

struct poster {
	struct fake_vcpu *v;
	pthread_t thread;
	atomic_bool done;
	int ret;
};

static void *post_pause(void *arg)
{
	struct poster *p = arg;

	p->ret = request(p->v, VCPU_REQ_PAUSE);
	atomic_store(&p->done, true);
	return NULL;
}

/*
 * A vCPU stuck in a slow exit: the pause waits for it, and meanwhile another thread still reads the
 * vCPU's state (the poster holds no lock across its wait). The stop then answers the waiting pause.
 */
static void test_a_slow_vcpu_blocks_only_its_poster(void **state)
{
	struct fake_vcpu v;
	struct poster p = { .v = &v };

	(void)state;
	fake_init(&v);
	pthread_mutex_lock(&v.slow_exit);
	fake_start(&v);
	while (!atomic_load(&v.in_exit))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_int_equal(pthread_create(&p.thread, NULL, post_pause, &p), 0);
	/* Posted (the kick went out), not answered: the vCPU is still in its exit. */
	while (!atomic_load(&v.kicks))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_RUNNING);
	assert_true(vcpu_control_pending(&v.ctl));
	assert_false(atomic_load(&p.done));
	/* Out of the exit, the thread serves the slot and the pause is answered. */
	pthread_mutex_unlock(&v.slow_exit);
	pthread_join(p.thread, NULL);
	assert_int_equal(p.ret, 0);
	assert_int_equal(vcpu_control_state(&v.ctl), VCPU_PAUSED);
	assert_int_equal(request(&v, VCPU_REQ_RESUME), 0);

	/* Stuck again, and the VM stops while a pause waits: the pause gets -ESHUTDOWN once the thread leaves. */
	pthread_mutex_lock(&v.slow_exit);
	while (!atomic_load(&v.in_exit))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	atomic_store(&p.done, false);
	assert_int_equal(pthread_create(&p.thread, NULL, post_pause, &p), 0);
	while (!vcpu_control_pending(&v.ctl))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	vcpu_control_exit(&v.ctl);
	pthread_mutex_unlock(&v.slow_exit);
	pthread_join(p.thread, NULL);
	pthread_join(v.thread, NULL);
	/* The pause was either refused at once (the stop came first) or answered by the leaving thread. */
	assert_int_equal(p.ret, -ESHUTDOWN);
	fake_fini(&v, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume_and_call_on_the_vcpu_thread),
		cmocka_unit_test(test_requests_before_the_thread_starts),
		cmocka_unit_test(test_exit),
		cmocka_unit_test(test_a_slow_vcpu_blocks_only_its_poster),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
