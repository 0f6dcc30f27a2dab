// SPDX-License-Identifier: MIT
#include "vmm/loop.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lib/log.h"

#define LOOP_MAX_EVENTS 32
#define NSEC_PER_SEC 1000000000ull

/* What the loop reads from a source before its callback: nothing (a device's fd), or what it owns. */
enum source_kind {
	SOURCE_FD,
	SOURCE_TIMER,  /* timerfd: the expiration count */
	SOURCE_SIGNAL, /* signalfd: one signalfd_siginfo per call */
};

struct loop_source {
	int fd;
	enum source_kind kind;
	loop_fn fn;
	loop_signal_fn sig_fn;
	void *opaque;
	struct loop_source *next;
};

int loop_init(struct loop *loop)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	memset(loop, 0, sizeof(*loop));
	loop->name = "event loop";
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

void loop_on_error(struct loop *loop, const char *name, loop_error_fn fn, void *opaque)
{
	loop->name = name;
	loop->on_error = fn;
	loop->error_opaque = opaque;
}

static int add_source(struct loop *loop, const struct loop_source *tmpl, uint32_t events)
{
	struct loop_source *src = malloc(sizeof(*src));
	struct epoll_event ev;

	if (!src)
		return -ENOMEM;
	*src = *tmpl;
	ev = (struct epoll_event){ .events = events, .data.ptr = src };
	pthread_mutex_lock(&loop->lock);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0) {
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

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	return add_source(loop, &(struct loop_source){ .fd = fd, .kind = SOURCE_FD, .fn = fn, .opaque = opaque }, events);
}

int loop_add_timer(struct loop *loop, loop_fn fn, void *opaque)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), ret;

	if (fd < 0)
		return -errno;
	ret = add_source(loop, &(struct loop_source){ .fd = fd, .kind = SOURCE_TIMER, .fn = fn, .opaque = opaque },
			 EPOLLIN);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static struct timespec ns_to_timespec(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / NSEC_PER_SEC), .tv_nsec = (long)(ns % NSEC_PER_SEC) };
}

int loop_timer_set(int fd, uint64_t first_ns, uint64_t interval_ns)
{
	struct itimerspec its = { .it_value = ns_to_timespec(first_ns), .it_interval = ns_to_timespec(interval_ns) };

	return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

int loop_add_stop_signals(struct loop *loop, loop_signal_fn fn, void *opaque)
{
	sigset_t set;
	int fd, ret;

	stop_signals(&set);
	/* Blocked first: a signal that comes meanwhile stays pending for the signalfd. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	ret = add_source(loop, &(struct loop_source){ .fd = fd, .kind = SOURCE_SIGNAL, .sig_fn = fn, .opaque = opaque },
			 EPOLLIN);
	if (ret)
		close(fd);
	return ret;
}

void loop_unblock_stop_signals(void)
{
	sigset_t set;

	stop_signals(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
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
		if (src->kind != SOURCE_FD)
			close(fd);
		/*
		 * The loop thread may hold a pointer to src from an epoll_wait that returned before the
		 * EPOLL_CTL_DEL: keep it, disarmed, until loop_destroy rather than count references.
		 */
		src->fn = NULL;
		src->sig_fn = NULL;
		src->fd = -1;
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

void loop_fail(struct loop *loop, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&loop->lock);
	if (!atomic_load(&loop->failed)) {
		va_start(ap, fmt);
		vsnprintf(loop->fail_msg, sizeof(loop->fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&loop->failed, err < 0 ? err : -EIO);
	}
	pthread_mutex_unlock(&loop->lock);
}

const char *loop_error(struct loop *loop)
{
	return loop->fail_msg;
}

/* Call one source's callback, after reading what the loop reads for it. */
static void dispatch_one(struct loop *loop, struct loop_source *src, uint32_t events)
{
	struct loop_source s;

	pthread_mutex_lock(&loop->lock);
	s = *src;
	pthread_mutex_unlock(&loop->lock);
	if (s.fd < 0)
		return; /* removed after epoll_wait returned it */
	if (s.kind == SOURCE_TIMER) {
		uint64_t ticks;

		if (read(s.fd, &ticks, sizeof(ticks)) != sizeof(ticks))
			return; /* re-armed meanwhile: nothing expired */
	} else if (s.kind == SOURCE_SIGNAL) {
		struct signalfd_siginfo si;

		if (read(s.fd, &si, sizeof(si)) == sizeof(si) && s.sig_fn)
			s.sig_fn(s.opaque, (int)si.ssi_signo);
		return;
	}
	if (s.fn)
		s.fn(s.opaque, s.fd, events);
}

/* Run the callbacks for `n` events from epoll_wait; stops early once a callback failed the loop. */
static void dispatch(struct loop *loop, const struct epoll_event *events, int n)
{
	for (int i = 0; i < n && !atomic_load(&loop->failed); i++)
		if (events[i].data.ptr)
			dispatch_one(loop, events[i].data.ptr, events[i].events);
}

int loop_run(struct loop *loop)
{
	struct epoll_event events[LOOP_MAX_EVENTS];
	int ret = 0;

	while (!atomic_load(&loop->stopping)) {
		int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			loop_fail(loop, -errno, "epoll_wait: %s", strerror(errno));
		} else {
			dispatch(loop, events, n);
		}
		ret = atomic_load(&loop->failed);
		if (ret)
			break;
	}
	if (ret) {
		char msg[LOOP_MSG_SIZE + 64];

		snprintf(msg, sizeof(msg), "%s: %s", loop->name, loop->fail_msg);
		if (loop->on_error)
			loop->on_error(loop->error_opaque, ret, msg);
		else
			pr_err("%s", msg);
	}
	return ret;
}

static void *loop_thread(void *arg)
{
	struct loop *loop = arg;

	pthread_setname_np(pthread_self(), "kiln-loop");
	/* A failure went to the error handler; the result is there for a debugger. */
	return (void *)(intptr_t)loop_run(loop);
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
	sigset_t all, old;
	int ret;

	/* Signals are for the threads that wait for them (loop_add_stop_signals, the vCPUs' kick). */
	sigfillset(&all);
	sigdelset(&all, SIGBUS); /* a blocked fault would kill kiln unexplained: vm.c's handler reports it */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&loop->thread, NULL, loop_thread, loop);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	loop->thread_started = true;
	return 0;
}

void loop_quit(struct loop *loop)
{
	uint64_t one = 1;

	atomic_store(&loop->stopping, true);
	if (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_warn("cannot wake the %s: %s", loop->name, strerror(errno));
}

static void free_sources(struct loop_source *src, bool close_owned)
{
	struct loop_source *next;

	for (; src; src = next) {
		next = src->next;
		if (close_owned && src->kind != SOURCE_FD && src->fd >= 0)
			close(src->fd);
		free(src);
	}
}

void loop_destroy(struct loop *loop)
{
	if (loop->thread_started) {
		loop_quit(loop);
		pthread_join(loop->thread, NULL);
		loop->thread_started = false;
	}
	free_sources(loop->sources, true);
	free_sources(loop->retired, false);
	loop->sources = loop->retired = NULL;
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	loop->epfd = loop->wake_fd = -1;
	pthread_mutex_destroy(&loop->lock);
}
