// SPDX-License-Identifier: MIT
/* A vCPU's state machine and request slot: the model is in vcpu_control.h. */
#include "vmm/vcpu_control.h"

#include <errno.h>

void vcpu_control_init(struct vcpu_control *c, void (*kick)(void *owner), void *owner)
{
	*c = (struct vcpu_control){ .state = VCPU_RUNNING, .kick = kick, .owner = owner };
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
}

void vcpu_control_destroy(struct vcpu_control *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
}

/* Lock held: whether the thread must stop in vcpu_control_serve rather than run the guest. */
static void update_pending(struct vcpu_control *c)
{
	atomic_store_explicit(&c->pending, c->exit || (c->posted && !c->done) || c->state == VCPU_PAUSED,
			      memory_order_release);
}

/* Lock held: a state change; its answer. */
static int apply(struct vcpu_control *c, enum vcpu_request_type type)
{
	if (type == VCPU_REQ_PAUSE)
		c->state = VCPU_PAUSED;
	else if (type == VCPU_REQ_RESUME)
		c->state = VCPU_RUNNING;
	else
		return -EINVAL;
	return 0;
}

int vcpu_control_start(struct vcpu_control *c, int (*spawn)(void *arg), void *arg)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = c->state == VCPU_EXITED ? -ESHUTDOWN : spawn(arg);
	if (ret == 0)
		c->live = true;
	else
		c->state = VCPU_EXITED;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int vcpu_control_post(struct vcpu_control *c, const struct vcpu_request *req)
{
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	while (c->posted && !c->exit && c->state != VCPU_EXITED)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->exit || c->state == VCPU_EXITED) {
		ret = -ESHUTDOWN;
		goto out;
	}
	c->req = *req;
	c->posted = true;
	c->done = false;
	if (!c->live) {
		/* No thread yet: the poster owns the vCPU and does it now. */
		c->ret = req->type == VCPU_REQ_CALL ? req->fn(c->owner, req->arg) : apply(c, req->type);
		c->done = true;
	}
	update_pending(c);
	if (c->live) {
		c->kick(c->owner);              /* out of KVM_RUN... */
		pthread_cond_broadcast(&c->cond); /* ...or out of its wait, paused */
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int vcpu_control_wait(struct vcpu_control *c)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	while (!c->done && c->state != VCPU_EXITED)
		pthread_cond_wait(&c->cond, &c->lock);
	ret = c->done ? c->ret : -ESHUTDOWN;
	c->posted = false;
	c->done = false;
	update_pending(c);
	pthread_cond_broadcast(&c->cond); /* the slot is free for the next poster */
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int vcpu_control_call(struct vcpu_control *c, vcpu_call_fn fn, void *arg)
{
	int ret = vcpu_control_post(c, &(struct vcpu_request){ .type = VCPU_REQ_CALL, .fn = fn, .arg = arg });

	return ret ?: vcpu_control_wait(c);
}

enum vcpu_state vcpu_control_state(struct vcpu_control *c)
{
	enum vcpu_state s;

	pthread_mutex_lock(&c->lock);
	s = c->state;
	pthread_mutex_unlock(&c->lock);
	return s;
}

void vcpu_control_kick(struct vcpu_control *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->live)
		c->kick(c->owner);
	pthread_mutex_unlock(&c->lock);
}

void vcpu_control_exit(struct vcpu_control *c)
{
	pthread_mutex_lock(&c->lock);
	c->exit = true;
	if (!c->live)
		c->state = VCPU_EXITED; /* never started, or gone already */
	update_pending(c);
	if (c->live)
		c->kick(c->owner);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

bool vcpu_control_serve(struct vcpu_control *c)
{
	bool run = true;

	if (!vcpu_control_pending(c))
		return true;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->exit) {
			run = false;
			break;
		}
		if (c->posted && !c->done) {
			struct vcpu_request req = c->req;
			int ret;

			if (req.type == VCPU_REQ_CALL) {
				/* Unlocked: a kick or an exit posted meanwhile must not wait for the call. */
				pthread_mutex_unlock(&c->lock);
				ret = req.fn(c->owner, req.arg);
				pthread_mutex_lock(&c->lock);
			} else {
				ret = apply(c, req.type);
			}
			c->ret = ret;
			c->done = true;
			update_pending(c);
			pthread_cond_broadcast(&c->cond);
			continue;
		}
		if (c->state == VCPU_RUNNING)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return run;
}

void vcpu_control_leave(struct vcpu_control *c)
{
	pthread_mutex_lock(&c->lock);
	c->state = VCPU_EXITED;
	c->live = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}
