// SPDX-License-Identifier: MIT
#include "vmm/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"

#define LOOP_MAX_EVENTS 32

struct loop_source {
	int fd;
	loop_fn fn;
	void *opaque;
	struct loop_source *next;
};

int loop_init(struct loop *loop)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	memset(loop, 0, sizeof(*loop));
	pthread_mutex_init(&loop->lock, NULL);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->wake_fd < 0)
		goto fail;
	/* data.ptr NULL marks the wake fd. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0)
		goto fail;
	return 0;
fail:
	{
		int err = -errno;

		if (loop->epfd >= 0)
			close(loop->epfd);
		if (loop->wake_fd >= 0)
			close(loop->wake_fd);
		loop->epfd = loop->wake_fd = -1;
		return err;
	}
}

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	struct loop_source *src;
	struct epoll_event ev;

	src = calloc(1, sizeof(*src));
	if (!src)
		return -ENOMEM;
	*src = (struct loop_source){ .fd = fd, .fn = fn, .opaque = opaque };
	ev = (struct epoll_event){ .events = events, .data.ptr = src };
	pthread_mutex_lock(&loop->lock);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		pthread_mutex_unlock(&loop->lock);
		free(src);
		return err;
	}
	src->next = loop->sources;
	loop->sources = src;
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

int loop_del(struct loop *loop, int fd)
{
	struct loop_source **p, *src = NULL;

	pthread_mutex_lock(&loop->lock);
	for (p = &loop->sources; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			src = *p;
			*p = src->next;
			break;
		}
	}
	if (src) {
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		/*
		 * The loop thread may hold a pointer to src from an epoll_wait that returned before the
		 * EPOLL_CTL_DEL: keep it, disarmed, until loop_destroy rather than count references.
		 */
		src->fn = NULL;
		src->next = loop->retired;
		loop->retired = src;
	}
	pthread_mutex_unlock(&loop->lock);
	return src ? 0 : -ENOENT;
}

int loop_mod(struct loop *loop, int fd, uint32_t events)
{
	struct loop_source *src;
	int ret = -ENOENT;

	pthread_mutex_lock(&loop->lock);
	for (src = loop->sources; src; src = src->next) {
		if (src->fd == fd) {
			struct epoll_event ev = { .events = events, .data.ptr = src };

			ret = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
			break;
		}
	}
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

/* Run the callbacks for `n` events from epoll_wait. */
static void dispatch(struct loop *loop, const struct epoll_event *events, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_source *src = events[i].data.ptr;
		loop_fn fn;
		void *opaque;
		int fd;

		if (!src)
			continue; /* wake fd: the loop is stopping */
		pthread_mutex_lock(&loop->lock);
		fn = src->fn;
		opaque = src->opaque;
		fd = src->fd;
		pthread_mutex_unlock(&loop->lock);
		if (fn)
			fn(opaque, fd, events[i].events);
	}
}

static void *loop_thread(void *arg)
{
	struct loop *loop = arg;
	struct epoll_event events[LOOP_MAX_EVENTS];

	pthread_setname_np(pthread_self(), "kiln-loop");
	while (!atomic_load(&loop->stopping)) {
		int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_err("device event loop: epoll_wait: %s", strerror(errno));
			break;
		}
		dispatch(loop, events, n);
	}
	return NULL;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event events[LOOP_MAX_EVENTS];
	int n, handled = 0;

	if (loop->thread_started)
		return -EBUSY;
	n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++)
		handled += events[i].data.ptr != NULL;
	dispatch(loop, events, n);
	return handled;
}

int loop_start(struct loop *loop)
{
	int ret = pthread_create(&loop->thread, NULL, loop_thread, loop);

	if (ret)
		return -ret;
	loop->thread_started = true;
	return 0;
}

void loop_destroy(struct loop *loop)
{
	uint64_t one = 1;
	struct loop_source *src, *next;

	if (loop->thread_started) {
		atomic_store(&loop->stopping, true);
		if (write(loop->wake_fd, &one, sizeof(one)) < 0)
			pr_warn("cannot wake the device event loop: %s", strerror(errno));
		pthread_join(loop->thread, NULL);
		loop->thread_started = false;
	}
	for (src = loop->sources; src; src = next) {
		next = src->next;
		free(src);
	}
	for (src = loop->retired; src; src = next) {
		next = src->next;
		free(src);
	}
	loop->sources = loop->retired = NULL;
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	loop->epfd = loop->wake_fd = -1;
	pthread_mutex_destroy(&loop->lock);
}
