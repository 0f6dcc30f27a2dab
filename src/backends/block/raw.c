// SPDX-License-Identifier: MIT
/*
 * Raw images: open, lock, and the two engines (io_uring, and a thread doing blocking system calls).
 * The model is in raw.h.
 *
 * A request runs as a sequence of steps (one system call or one io_uring operation each): a read or
 * write continues after a short transfer, write-zeroes falls back from one fallocate mode to the next,
 * and a `dsync` request ends with an fdatasync. step_prepare says what the next step is, step_after
 * digests its result; both engines share them, so the semantics cannot drift apart.
 */
#include "backends/block/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/safe_path.h"

/* Zeroes written per step when the filesystem cannot allocate zeroed ranges itself. */
#define ZERO_CHUNK (1u << 20)
#define MAX_QUEUE_DEPTH 4096u

/* Where a request is (raw_request.stage). */
enum stage {
	ST_RW,         /* READ/WRITE: the transfer */
	ST_FLUSH,      /* FLUSH: fdatasync */
	ST_PUNCH,      /* DISCARD, WRITE_ZEROES with unmap: PUNCH_HOLE */
	ST_ZERO_RANGE, /* WRITE_ZEROES: ZERO_RANGE */
	ST_ZERO_WRITE, /* WRITE_ZEROES: writing zeroes, `done` bytes so far */
	ST_SYNC,       /* the fdatasync after a dsync DISCARD/WRITE_ZEROES */
};

enum step_kind { STEP_READV, STEP_WRITEV, STEP_FDATASYNC, STEP_FALLOCATE };

/* One system call to make. */
struct step {
	enum step_kind kind;
	const struct iovec *iov;
	unsigned int iovcnt;
	uint64_t off;
	uint64_t len;  /* FALLOCATE */
	int mode;      /* FALLOCATE */
	int rw_flags;  /* WRITEV: RWF_DSYNC or 0 */
};

struct raw_disk {
	char *path;
	int fd;
	int event_fd;
	bool read_only;
	uint64_t size;
	enum raw_engine engine;
	unsigned int queue_depth;
	raw_complete_fn complete;
	raw_filled_fn filled;
	void *opaque;
	unsigned int in_flight;   /* the caller's thread only */
	uint8_t *zeroes;          /* ZERO_CHUNK zero bytes, for ST_ZERO_WRITE; read-only */
	/* Modes this filesystem lacks, learnt from EOPNOTSUPP (the I/O thread writes them). */
	atomic_bool no_punch;
	atomic_bool no_zero_range;
	struct ratelimit rl;      /* the caller's thread only */

	/* RAW_ENGINE_IO_URING */
	struct io_uring ring;
	unsigned int unsubmitted; /* SQEs prepared since the last io_uring_submit */

	/* RAW_ENGINE_SYNC */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;     /* guards the lists and `stopping` */
	pthread_cond_t work;      /* the I/O thread waits for requests */
	pthread_cond_t done_cond; /* raw_reap(wait) waits for completions */
	struct raw_request *queue, *queue_tail; /* submitted, not started */
	struct raw_request *done, *done_tail;   /* completed, not reaped */
	bool stopping;
};

/* ---- steps, shared by the engines ---- */

static int first_stage(struct raw_disk *d, const struct raw_request *req)
{
	switch (req->op) {
	case RAW_OP_READ:
	case RAW_OP_WRITE:
		return ST_RW;
	case RAW_OP_FLUSH:
		return ST_FLUSH;
	case RAW_OP_DISCARD:
		return ST_PUNCH;
	case RAW_OP_WRITE_ZEROES:
		if (req->unmap && !atomic_load(&d->no_punch))
			return ST_PUNCH;
		return atomic_load(&d->no_zero_range) ? ST_ZERO_WRITE : ST_ZERO_RANGE;
	}
	return ST_FLUSH;
}

static void step_prepare(struct raw_disk *d, struct raw_request *req, struct step *s)
{
	uint64_t left = req->len - req->done;

	memset(s, 0, sizeof(*s));
	s->off = req->offset + req->done;
	switch (req->stage) {
	case ST_RW:
		s->kind = req->op == RAW_OP_READ ? STEP_READV : STEP_WRITEV;
		s->iov = req->iov;
		s->iovcnt = req->iovcnt;
		s->rw_flags = req->op == RAW_OP_WRITE && req->dsync ? RWF_DSYNC : 0;
		return;
	case ST_PUNCH:
		s->kind = STEP_FALLOCATE;
		s->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		s->off = req->offset;
		s->len = req->len;
		return;
	case ST_ZERO_RANGE:
		s->kind = STEP_FALLOCATE;
		s->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		s->off = req->offset;
		s->len = req->len;
		return;
	case ST_ZERO_WRITE:
		req->zero_iov.iov_base = d->zeroes;
		req->zero_iov.iov_len = left < ZERO_CHUNK ? left : ZERO_CHUNK;
		s->kind = STEP_WRITEV;
		s->iov = &req->zero_iov;
		s->iovcnt = 1;
		return;
	default: /* ST_FLUSH, ST_SYNC */
		s->kind = STEP_FDATASYNC;
		return;
	}
}

static bool finish(struct raw_request *req, int result)
{
	req->result = result;
	return true;
}

/* The main operation of a request succeeded: done, or its closing fdatasync. */
static bool main_done(struct raw_request *req)
{
	if (req->dsync && req->op != RAW_OP_WRITE) {
		req->stage = ST_SYNC;
		return false;
	}
	return finish(req, 0);
}

/* Skip `n` transferred bytes of req->iov. */
static void iov_advance(struct raw_request *req, uint64_t n)
{
	while (n && req->iovcnt) {
		if (n < req->iov->iov_len) {
			req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
			req->iov->iov_len -= n;
			return;
		}
		n -= req->iov->iov_len;
		req->iov++;
		req->iovcnt--;
	}
}

static bool unsupported(int64_t res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS;
}

/*
 * The step just made returned `res` (bytes or 0, or -errno). Returns true when the request is finished
 * (req->result set), false when step_prepare has another step to make.
 */
static bool step_after(struct raw_disk *d, struct raw_request *req, int64_t res)
{
	if (res == -EINTR || res == -EAGAIN)
		return false; /* the same step again */
	switch (req->stage) {
	case ST_RW:
		if (res < 0)
			return finish(req, (int)res);
		if (res == 0)
			return finish(req, -EIO); /* end of file: the image shrank under us */
		if (req->op == RAW_OP_READ && d->filled)
			d->filled(d->opaque, req->iov, req->iovcnt, (uint64_t)res);
		req->done += (uint64_t)res;
		if (req->done >= req->len)
			return finish(req, 0);
		iov_advance(req, (uint64_t)res);
		return false;
	case ST_PUNCH:
		if (unsupported(res)) {
			atomic_store(&d->no_punch, true);
			if (req->op == RAW_OP_DISCARD)
				return main_done(req); /* a hint that this filesystem cannot take */
			req->stage = atomic_load(&d->no_zero_range) ? ST_ZERO_WRITE : ST_ZERO_RANGE;
			return false;
		}
		return res < 0 ? finish(req, (int)res) : main_done(req);
	case ST_ZERO_RANGE:
		if (unsupported(res)) {
			atomic_store(&d->no_zero_range, true);
			req->stage = ST_ZERO_WRITE;
			req->done = 0;
			return false;
		}
		return res < 0 ? finish(req, (int)res) : main_done(req);
	case ST_ZERO_WRITE:
		if (res <= 0)
			return finish(req, res < 0 ? (int)res : -EIO);
		req->done += (uint64_t)res;
		return req->done < req->len ? false : main_done(req);
	default: /* ST_FLUSH, ST_SYNC */
		return finish(req, res < 0 ? (int)res : 0);
	}
}

/* ---- the synchronous engine: the disk's I/O thread ---- */

static int64_t step_run_sync(struct raw_disk *d, const struct step *s)
{
	ssize_t r;

	switch (s->kind) {
	case STEP_READV:
		r = preadv(d->fd, s->iov, (int)s->iovcnt, (off_t)s->off);
		break;
	case STEP_WRITEV:
		r = pwritev2(d->fd, s->iov, (int)s->iovcnt, (off_t)s->off, s->rw_flags);
		break;
	case STEP_FALLOCATE:
		r = fallocate(d->fd, s->mode, (off_t)s->off, (off_t)s->len);
		break;
	default:
		r = fdatasync(d->fd);
		break;
	}
	return r < 0 ? -errno : r;
}

static void signal_event(struct raw_disk *d)
{
	uint64_t one = 1;

	/* EAGAIN only when the counter is about to overflow: it is readable anyway. */
	if (write(d->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_warn("%s: completion eventfd: %s", d->path, strerror(errno));
}

static void clear_event(struct raw_disk *d)
{
	uint64_t count;

	if (read(d->event_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		pr_warn("%s: completion eventfd: %s", d->path, strerror(errno));
}

static void *sync_thread(void *arg)
{
	struct raw_disk *d = arg;

	pthread_setname_np(pthread_self(), "kiln-disk");
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct raw_request *req;
		struct step s;

		while (!d->queue && !d->stopping)
			pthread_cond_wait(&d->work, &d->lock);
		if (!d->queue)
			break;
		req = d->queue;
		d->queue = req->next;
		if (!d->queue)
			d->queue_tail = NULL;
		pthread_mutex_unlock(&d->lock);

		do
			step_prepare(d, req, &s);
		while (!step_after(d, req, step_run_sync(d, &s)));

		pthread_mutex_lock(&d->lock);
		req->next = NULL;
		if (d->done_tail)
			d->done_tail->next = req;
		else
			d->done = req;
		d->done_tail = req;
		pthread_cond_broadcast(&d->done_cond);
		signal_event(d);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static int sync_start(struct raw_disk *d)
{
	sigset_t all, old;
	int ret;

	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->work, NULL);
	pthread_cond_init(&d->done_cond, NULL);
	/* Every signal blocked: kiln's main thread reads SIGINT/SIGTERM from a signalfd (vm.c). */
	sigfillset(&all);
	sigdelset(&all, SIGBUS); /* a blocked fault would kill kiln unexplained: vm.c's handler reports it */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&d->thread, NULL, sync_thread, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	d->thread_started = true;
	return 0;
}

static void sync_submit(struct raw_disk *d, struct raw_request *req)
{
	pthread_mutex_lock(&d->lock);
	req->next = NULL;
	if (d->queue_tail)
		d->queue_tail->next = req;
	else
		d->queue = req;
	d->queue_tail = req;
	pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->lock);
}

static int sync_reap(struct raw_disk *d, bool wait)
{
	struct raw_request *list, *req;
	int n = 0;

	clear_event(d);
	pthread_mutex_lock(&d->lock);
	while (wait && !d->done && d->in_flight)
		pthread_cond_wait(&d->done_cond, &d->lock);
	list = d->done;
	d->done = d->done_tail = NULL;
	pthread_mutex_unlock(&d->lock);
	while ((req = list)) {
		list = req->next;
		d->in_flight--;
		n++;
		d->complete(d->opaque, req);
	}
	return n;
}

static void sync_stop(struct raw_disk *d)
{
	if (!d->thread_started)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	d->thread_started = false;
	pthread_cond_destroy(&d->done_cond);
	pthread_cond_destroy(&d->work);
	pthread_mutex_destroy(&d->lock);
}

/* ---- the io_uring engine ---- */

static const struct {
	int op;
	const char *name;
} uring_ops_needed[] = {
	{ IORING_OP_READV, "READV" },
	{ IORING_OP_WRITEV, "WRITEV" },
	{ IORING_OP_FSYNC, "FSYNC" },
	{ IORING_OP_FALLOCATE, "FALLOCATE" }, /* Linux 5.6 */
};

/* Set up the ring with its completions on event_fd. 0, or -errno with `why` filled. */
static int uring_start(struct raw_disk *d, char *why, size_t why_size)
{
	struct io_uring_probe *probe;
	int ret = io_uring_queue_init(d->queue_depth, &d->ring, 0);

	if (ret) {
		errmsg_set(why, why_size, "io_uring_setup: %s", strerror(-ret));
		return ret;
	}
	probe = io_uring_get_probe_ring(&d->ring);
	if (!probe) {
		errmsg_set(why, why_size, "cannot probe the kernel's io_uring operations");
		ret = -EOPNOTSUPP;
		goto fail;
	}
	for (size_t i = 0; i < sizeof(uring_ops_needed) / sizeof(uring_ops_needed[0]); i++) {
		if (!io_uring_opcode_supported(probe, uring_ops_needed[i].op)) {
			errmsg_set(why, why_size, "the kernel's io_uring lacks IORING_OP_%s", uring_ops_needed[i].name);
			ret = -EOPNOTSUPP;
			break;
		}
	}
	io_uring_free_probe(probe);
	if (ret)
		goto fail;
	ret = io_uring_register_eventfd(&d->ring, d->event_fd);
	if (ret) {
		errmsg_set(why, why_size, "io_uring_register_eventfd: %s", strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	io_uring_queue_exit(&d->ring);
	return ret;
}

/* Hand the prepared SQEs to the kernel. */
static void uring_flush(struct raw_disk *d)
{
	int ret;

	if (!d->unsubmitted)
		return;
	do
		ret = io_uring_submit(&d->ring);
	while (ret == -EINTR);
	if (ret >= 0) {
		d->unsubmitted = (unsigned int)ret >= d->unsubmitted ? 0 : d->unsubmitted - (unsigned int)ret;
		return;
	}
	/*
	 * EAGAIN/EBUSY (kernel memory, or completions to reap first): the SQEs stay in the ring. Come
	 * back through the event loop and try again, rather than leave requests that nothing will finish.
	 */
	pr_warn_ratelimited(&d->rl, "%s: io_uring_submit: %s (retrying)", d->path, strerror(-ret));
	signal_event(d);
}

/* Put the request's next step on the ring. In flight requests never exceed the ring, so there is room. */
static int uring_queue(struct raw_disk *d, struct raw_request *req)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
	struct step s;

	if (!sqe) {
		uring_flush(d);
		sqe = io_uring_get_sqe(&d->ring);
		if (!sqe)
			return -EBUSY;
	}
	step_prepare(d, req, &s);
	switch (s.kind) {
	case STEP_READV:
		io_uring_prep_readv(sqe, d->fd, s.iov, s.iovcnt, s.off);
		break;
	case STEP_WRITEV:
		io_uring_prep_writev2(sqe, d->fd, s.iov, s.iovcnt, s.off, s.rw_flags);
		break;
	case STEP_FALLOCATE:
		io_uring_prep_fallocate(sqe, d->fd, s.mode, (off_t)s.off, (off_t)s.len);
		break;
	default:
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, req);
	d->unsubmitted++;
	return 0;
}

static int uring_reap(struct raw_disk *d, bool wait)
{
	int n = 0;

	clear_event(d);
	for (;;) {
		struct io_uring_cqe *cqe;
		struct raw_request *req;
		int ret, res;

		uring_flush(d);
		ret = io_uring_peek_cqe(&d->ring, &cqe);
		if (ret == -EAGAIN) {
			if (!wait || n || !d->in_flight)
				break;
			ret = io_uring_wait_cqe(&d->ring, &cqe);
		}
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return n ? n : ret;
		req = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&d->ring, cqe);
		if (!step_after(d, req, res)) {
			ret = uring_queue(d, req);
			if (!ret)
				continue;
			req->result = ret;
		}
		d->in_flight--;
		n++;
		d->complete(d->opaque, req);
	}
	uring_flush(d);
	return n;
}

/* ---- the interface ---- */

static int image_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

struct raw_disk *raw_open(const struct raw_params *p, char *err, size_t err_size)
{
	struct raw_disk *d;
	struct stat st;
	char why[160];
	int ret;

	if (!p->path || !p->complete || !p->queue_depth || p->queue_depth > MAX_QUEUE_DEPTH) {
		errmsg_set(err, err_size, "raw_open: invalid parameters");
		errno = EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(p->path))) {
		free(d);
		errmsg_set(err, err_size, "%s: out of memory", p->path);
		errno = ENOMEM;
		return NULL;
	}
	d->fd = d->event_fd = -1;
	d->read_only = p->read_only;
	d->queue_depth = p->queue_depth;
	d->complete = p->complete;
	d->filled = p->filled;
	d->opaque = p->opaque;
	d->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	atomic_init(&d->no_punch, false);
	atomic_init(&d->no_zero_range, false);

	d->fd = safe_open(p->read_only ? "disk" : "disk (read-write)", p->path, p->read_only ? O_RDONLY : O_RDWR,
			  SAFE_REG | SAFE_BLK | SAFE_FOLLOW, NULL, err, err_size);
	if (d->fd < 0) {
		ret = d->fd;
		goto fail;
	}
	if (fstat(d->fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", p->path, strerror(-ret));
		goto fail;
	}
	ret = image_size(d->fd, &st, &d->size);
	if (ret) {
		errmsg_set(err, err_size, "%s: %s", p->path,
			   ret == -EINVAL ? "not a regular file or a block device" : strerror(-ret));
		goto fail;
	}
	if (flock(d->fd, (p->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		ret = -errno;
		if (ret == -EWOULDBLOCK) {
			errmsg_set(err, err_size, "%s is locked by another process (an image open read-write is never shared)",
				   p->path);
			ret = -EAGAIN;
			goto fail;
		}
		/* Some filesystems have no flock: carry on, unprotected, but say so. */
		pr_warn("%s: cannot lock the image (%s): nothing stops another VM from opening it too", p->path,
			strerror(-ret));
	}
	d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->event_fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: eventfd: %s", p->path, strerror(-ret));
		goto fail;
	}
	if (!p->read_only) {
		/* Untouched zero pages until write-zeroes needs them (and only where fallocate cannot). */
		d->zeroes = calloc(1, ZERO_CHUNK);
		if (!d->zeroes) {
			ret = -ENOMEM;
			errmsg_set(err, err_size, "%s: out of memory", p->path);
			goto fail;
		}
	}
	d->engine = p->engine;
	if (d->engine == RAW_ENGINE_IO_URING && uring_start(d, why, sizeof(why))) {
		pr_warn("%s: io_uring unavailable (%s): using the synchronous engine", p->path, why);
		d->engine = RAW_ENGINE_SYNC;
	}
	if (d->engine == RAW_ENGINE_SYNC) {
		ret = sync_start(d);
		if (ret) {
			errmsg_set(err, err_size, "%s: cannot start its I/O thread: %s", p->path, strerror(-ret));
			goto fail;
		}
	}
	return d;
fail:
	if (d->event_fd >= 0)
		close(d->event_fd);
	if (d->fd >= 0)
		close(d->fd);
	free(d->zeroes);
	free(d->path);
	free(d);
	errno = -ret;
	return NULL;
}

void raw_close(struct raw_disk *d)
{
	if (!d)
		return;
	raw_drain(d);
	if (d->engine == RAW_ENGINE_IO_URING) {
		io_uring_unregister_eventfd(&d->ring);
		io_uring_queue_exit(&d->ring);
	} else {
		sync_stop(d);
	}
	close(d->event_fd);
	close(d->fd); /* drops the flock */
	free(d->zeroes);
	free(d->path);
	free(d);
}

uint64_t raw_size(const struct raw_disk *d)
{
	return d->size;
}

const char *raw_path(const struct raw_disk *d)
{
	return d->path;
}

bool raw_read_only(const struct raw_disk *d)
{
	return d->read_only;
}

enum raw_engine raw_engine(const struct raw_disk *d)
{
	return d->engine;
}

int raw_event_fd(const struct raw_disk *d)
{
	return d->event_fd;
}

unsigned int raw_in_flight(const struct raw_disk *d)
{
	return d->in_flight;
}

int raw_submit(struct raw_disk *d, struct raw_request *req)
{
	int ret;

	if (req->op != RAW_OP_READ && req->op != RAW_OP_FLUSH && d->read_only)
		return -EROFS;
	if (d->in_flight >= d->queue_depth)
		return -EBUSY;
	if (req->op == RAW_OP_READ || req->op == RAW_OP_WRITE) {
		if (!req->iovcnt || req->iovcnt > RAW_MAX_IOV || !req->iov)
			return -EINVAL;
		req->len = 0;
		for (unsigned int i = 0; i < req->iovcnt; i++)
			if (__builtin_add_overflow(req->len, req->iov[i].iov_len, &req->len))
				return -EINVAL;
	}
	if (req->op != RAW_OP_FLUSH &&
	    (!req->len || req->offset > d->size || req->len > d->size - req->offset))
		return -EINVAL;
	req->result = 0;
	req->done = 0;
	req->next = NULL;
	req->stage = first_stage(d, req);
	if (d->engine == RAW_ENGINE_IO_URING) {
		ret = uring_queue(d, req);
		if (ret)
			return ret;
	} else {
		sync_submit(d, req);
	}
	d->in_flight++;
	return 0;
}

void raw_commit(struct raw_disk *d)
{
	if (d->engine == RAW_ENGINE_IO_URING)
		uring_flush(d);
}

int raw_reap(struct raw_disk *d, bool wait)
{
	return d->engine == RAW_ENGINE_IO_URING ? uring_reap(d, wait) : sync_reap(d, wait);
}

int raw_drain(struct raw_disk *d)
{
	while (d->in_flight) {
		int ret = raw_reap(d, true);

		if (ret < 0)
			return ret;
	}
	return 0;
}

int raw_sync(struct raw_disk *d)
{
	if (d->read_only)
		return 0;
	return fdatasync(d->fd) < 0 ? -errno : 0;
}
