/* SPDX-License-Identifier: MIT */
/*
 * Test hooks: faults the integration tests inject into a running kiln through environment variables.
 * They exist only in builds configured with -Dtest_hooks (meson_options.txt: on unless the build type
 * is release); elsewhere the variables are not read and these functions do nothing.
 *
 *   KILN_TEST_SLOW_EXIT_MS=N   a vCPU that comes out of KVM_RUN with a request waiting in its slot stays
 *                              N ms (at most 10 s) before it serves it, as a vCPU held in a slow exit
 *                              would (a device that blocks): what a pause waits for.
 *   KILN_TEST_LOOP_FAIL=L[:N]  N ms (default 100) after the VM starts, event loop L ("device" or
 *                              "main") fails as if a source's callback had broken (loop_fail).
 */
#ifndef KILN_VMM_TEST_HOOKS_H
#define KILN_VMM_TEST_HOOKS_H

#include <stdbool.h>

struct loop;

enum test_hook_loop {
	TEST_HOOK_LOOP_NONE,
	TEST_HOOK_LOOP_DEVICE,
	TEST_HOOK_LOOP_MAIN,
};

struct test_hooks {
	unsigned int slow_exit_ms;
	enum test_hook_loop loop_fail;
	unsigned int loop_fail_ms;
};

#ifdef KILN_TEST_HOOKS
/* Read the variables; each one in effect is logged (a warning: this kiln is being tested). */
void test_hooks_read(struct test_hooks *h);

/* When `which` is the loop KILN_TEST_LOOP_FAIL names, arm its failure on `loop`. 0 or -errno. */
int test_hooks_arm_loop(const struct test_hooks *h, enum test_hook_loop which, struct loop *loop)
	__attribute__((warn_unused_result));

/* On a vCPU thread after KVM_RUN returned: hold it for KILN_TEST_SLOW_EXIT_MS when `pending`. */
void test_hooks_slow_exit(const struct test_hooks *h, bool pending);
#else
static inline void test_hooks_read(struct test_hooks *h)
{
	*h = (struct test_hooks){ 0 };
}

static inline int test_hooks_arm_loop(const struct test_hooks *h, enum test_hook_loop which, struct loop *loop)
{
	(void)h;
	(void)which;
	(void)loop;
	return 0;
}

static inline void test_hooks_slow_exit(const struct test_hooks *h, bool pending)
{
	(void)h;
	(void)pending;
}
#endif

#endif
