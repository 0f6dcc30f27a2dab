// SPDX-License-Identifier: MIT
/* Faults injected by the integration tests: see test_hooks.h. Compiled empty without KILN_TEST_HOOKS. */
#include "vmm/test_hooks.h"

#ifdef KILN_TEST_HOOKS
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "vmm/loop.h"

#define SLOW_EXIT_MAX_MS 10000
#define LOOP_FAIL_DEFAULT_MS 100

void test_hooks_read(struct test_hooks *h)
{
	const char *slow = getenv("KILN_TEST_SLOW_EXIT_MS"), *fail = getenv("KILN_TEST_LOOP_FAIL");

	*h = (struct test_hooks){ 0 };
	if (slow && *slow) {
		unsigned long ms = strtoul(slow, NULL, 10);

		h->slow_exit_ms = (unsigned int)(ms > SLOW_EXIT_MAX_MS ? SLOW_EXIT_MAX_MS : ms);
		pr_warn("test hook: KILN_TEST_SLOW_EXIT_MS=%u: vCPUs serve requests %u ms late", h->slow_exit_ms,
			h->slow_exit_ms);
	}
	if (fail && *fail) {
		const char *colon = strchr(fail, ':');
		size_t len = colon ? (size_t)(colon - fail) : strlen(fail);

		if (len == 6 && !strncmp(fail, "device", len))
			h->loop_fail = TEST_HOOK_LOOP_DEVICE;
		else if (len == 4 && !strncmp(fail, "main", len))
			h->loop_fail = TEST_HOOK_LOOP_MAIN;
		h->loop_fail_ms = colon ? (unsigned int)strtoul(colon + 1, NULL, 10) : LOOP_FAIL_DEFAULT_MS;
		if (h->loop_fail != TEST_HOOK_LOOP_NONE)
			pr_warn("test hook: KILN_TEST_LOOP_FAIL=%s: the %s event loop fails after %u ms", fail,
				h->loop_fail == TEST_HOOK_LOOP_DEVICE ? "device" : "main", h->loop_fail_ms);
		else
			pr_warn("test hook: KILN_TEST_LOOP_FAIL=%s: not \"device\" or \"main\": ignored", fail);
	}
}

static void loop_fail_fire(void *opaque, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	loop_fail(opaque, -EIO, "failure injected by KILN_TEST_LOOP_FAIL");
}

int test_hooks_arm_loop(const struct test_hooks *h, enum test_hook_loop which, struct loop *loop)
{
	int fd;

	if (h->loop_fail != which || which == TEST_HOOK_LOOP_NONE)
		return 0;
	fd = loop_add_timer(loop, loop_fail_fire, loop);
	if (fd < 0)
		return fd;
	/* 0 would disarm the timer: fail 1 ns after arming instead. */
	return loop_timer_set(fd, h->loop_fail_ms ? h->loop_fail_ms * 1000000ull : 1, 0);
}

void test_hooks_slow_exit(const struct test_hooks *h, bool pending)
{
	struct timespec ts;

	if (!h->slow_exit_ms || !pending)
		return;
	/* The tests wait for this line: from here on, whoever posted the request is waiting. */
	pr_warn("test hook: a vCPU holds a request for %u ms", h->slow_exit_ms);
	ts = (struct timespec){ .tv_sec = h->slow_exit_ms / 1000, .tv_nsec = (long)(h->slow_exit_ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		continue; /* a kick: this vCPU is busy, it takes the request afterwards */
}
#endif
