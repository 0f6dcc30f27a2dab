/* SPDX-License-Identifier: MIT */
/*
 * A vCPU's state machine, after Firecracker's vstate/vcpu: the vCPU is running, paused or exited, and
 * has one request slot that other threads post to and that the vCPU's own thread executes between two
 * KVM_RUNs: pause, resume, or a call (save or restore its registers) run on that thread. A poster
 * kicks the thread out of KVM_RUN (the kick callback: a signal plus kvm_run.immediate_exit) and may
 * wait for the answer; it holds no lock while it waits, so a vCPU slow to leave an exit holds up only
 * who waits for it (docs/design.md "Threads, locks and the vCPU state machine").
 *
 * Before the thread starts (vcpu_control_start), requests are carried out at once on the poster's
 * thread, which then owns the vCPU: a restore loads registers, a VM restored paused starts paused.
 *
 * This file knows nothing of KVM: vcpu.c runs it around KVM_RUN; tests run it around a fake.
 */
#ifndef KILN_VMM_VCPU_CONTROL_H
#define KILN_VMM_VCPU_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

enum vcpu_state {
	VCPU_RUNNING, /* in or between KVM_RUNs */
	VCPU_PAUSED,  /* waiting for a request, the guest stopped between two instructions */
	VCPU_EXITED,  /* the thread has left (or was never started and the VM stopped) */
};

enum vcpu_request_type {
	VCPU_REQ_NONE,
	VCPU_REQ_PAUSE,  /* -> VCPU_PAUSED */
	VCPU_REQ_RESUME, /* -> VCPU_RUNNING */
	VCPU_REQ_CALL,   /* run fn(owner, arg) on the vCPU thread; its result is the answer */
};

typedef int (*vcpu_call_fn)(void *owner, void *arg);

struct vcpu_request {
	enum vcpu_request_type type;
	vcpu_call_fn fn; /* VCPU_REQ_CALL */
	void *arg;
};

struct vcpu_control {
	pthread_mutex_t lock;   /* guards everything below but `pending`; a leaf lock */
	pthread_cond_t cond;    /* slot posted/answered/freed, state changed */
	enum vcpu_state state;
	bool live;              /* the thread runs and serves the slot (vcpu_control_start..leave) */
	bool exit;              /* vcpu_control_exit: the thread leaves, nothing more is served */
	atomic_bool pending;    /* posted or exit: read by the vCPU thread after every KVM_RUN */
	struct vcpu_request req;
	bool posted;            /* the slot holds a request... */
	bool done;              /* ...answered with `ret`, until the poster's vcpu_control_wait */
	int ret;
	/* Make the thread leave KVM_RUN soon; called with `lock` held, only while `live`. */
	void (*kick)(void *owner);
	void *owner;            /* the struct vcpu: kick's and call functions' argument */
};

/* A vCPU that is running (not started), with `kick` for its thread and `owner` for callbacks. */
void vcpu_control_init(struct vcpu_control *c, void (*kick)(void *owner), void *owner);
void vcpu_control_destroy(struct vcpu_control *c);

/*
 * Start the thread with spawn(arg) (0 or -errno), the lock held: the thread's first
 * vcpu_control_serve waits until spawn returned. Returns spawn's result; on failure the vCPU is
 * exited.
 */
int vcpu_control_start(struct vcpu_control *c, int (*spawn)(void *arg), void *arg)
	__attribute__((warn_unused_result));

/*
 * Post `req` into the slot (waiting while another poster's request is in it) and kick the thread.
 * Not started: carried out at once on this thread. Returns 0 (vcpu_control_wait for the answer is
 * then owed), or -ESHUTDOWN when the vCPU exited or is exiting.
 */
int vcpu_control_post(struct vcpu_control *c, const struct vcpu_request *req) __attribute__((warn_unused_result));

/* The answer to the caller's posted request (the slot is free again), or -ESHUTDOWN if it exited first. */
int vcpu_control_wait(struct vcpu_control *c) __attribute__((warn_unused_result));

/* post then wait: run fn(owner, arg) on the vCPU thread. Returns fn's result or -ESHUTDOWN. */
int vcpu_control_call(struct vcpu_control *c, vcpu_call_fn fn, void *arg) __attribute__((warn_unused_result));

/* The state now (it may change as soon as this returns, but never back from VCPU_EXITED). */
enum vcpu_state vcpu_control_state(struct vcpu_control *c);

/* Kick the thread out of KVM_RUN (profile samples). Any thread. */
void vcpu_control_kick(struct vcpu_control *c);

/* The VM stops: the thread leaves at its next serve (a paused one at once); posters get -ESHUTDOWN. */
void vcpu_control_exit(struct vcpu_control *c);

/*
 * On the vCPU thread, before every KVM_RUN: execute what was posted, wait while paused. Returns true
 * to run the guest, false to leave (vcpu_control_exit).
 */
bool vcpu_control_serve(struct vcpu_control *c);

/* On the vCPU thread, as it leaves: exited, posters answered -ESHUTDOWN, no kick any more. */
void vcpu_control_leave(struct vcpu_control *c);

/* Anything posted or an exit (cheap: for the vCPU thread's hot path and the test hook). */
static inline bool vcpu_control_pending(struct vcpu_control *c)
{
	return atomic_load_explicit(&c->pending, memory_order_acquire);
}

#endif
