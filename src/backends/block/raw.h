/* SPDX-License-Identifier: MIT */
/*
 * A raw disk image as a block backend: the bytes of a regular file (or a host block device) are the
 * disk's bytes, offset for offset. Requests are asynchronous: raw_submit queues one, the kernel or the
 * disk's I/O thread performs it, and its completion is announced on an eventfd that the caller watches
 * on its event loop, then delivered by raw_reap through a callback. Nothing here blocks the caller
 * except raw_reap(wait), raw_drain and raw_close, which wait on purpose.
 *
 * Engines (enum raw_engine):
 * - RAW_ENGINE_IO_URING: an io_uring (liburing) of queue_depth entries with its completions signalled
 *   on the eventfd (io_uring_register_eventfd). Many requests in flight at once.
 * - RAW_ENGINE_SYNC: the disk's own I/O thread runs one request at a time, in submission order, with
 *   the blocking system calls (preadv, pwritev2, fdatasync, fallocate), then writes the eventfd.
 * When an io_uring cannot be set up (ENOSYS: an old kernel, EPERM: kernel.io_uring_disabled or a
 * seccomp filter, ENOMEM: RLIMIT_MEMLOCK on kernels before 5.12, or an opcode kiln needs missing),
 * raw_open falls back to RAW_ENGINE_SYNC and says so in one warning naming the image and the reason.
 *
 * What each operation does to the file:
 * - READ/WRITE: preadv/pwritev at the offset; a short transfer continues where it stopped; end of file
 *   before the last byte is -EIO. `dsync` writes are stable when they complete (RWF_DSYNC).
 * - FLUSH: fdatasync: what was written before it is on stable storage when it completes.
 * - DISCARD: fallocate(PUNCH_HOLE | KEEP_SIZE). A filesystem that cannot punch holes makes it a
 *   successful no-op: a discard is a hint (virtio 1.2 s5.2.6.2 "MAY deallocate").
 * - WRITE_ZEROES: fallocate(PUNCH_HOLE | KEEP_SIZE) when `unmap` allows deallocation, else
 *   fallocate(ZERO_RANGE | KEEP_SIZE); where the filesystem lacks the mode (tmpfs has no ZERO_RANGE,
 *   some have neither) the next one is tried, and last, plain writes of zeroes. Reads of the range
 *   return zeroes afterwards whichever way it went. A mode found missing is not tried again.
 * `dsync` on DISCARD and WRITE_ZEROES adds an fdatasync after them.
 *
 * Locking: the image is flock()ed, LOCK_EX for read-write and LOCK_SH for read-only, without waiting,
 * so that two VMs (or two disks of one VM) cannot open an image read-write at the same time, nor one
 * read-write while another reads it. flock locks belong to the open file description: they go with
 * raw_close, or with the process.
 *
 * Threads: calls on one raw_disk must not run concurrently (the virtio-blk device serialises them with
 * its device lock); raw_event_fd may be read from anywhere. The completion callback runs inside
 * raw_reap, raw_drain or raw_close, on the caller's thread.
 */
#ifndef KILN_BACKENDS_BLOCK_RAW_H
#define KILN_BACKENDS_BLOCK_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum raw_engine {
	RAW_ENGINE_SYNC,     /* blocking system calls on the disk's I/O thread, one request at a time */
	RAW_ENGINE_IO_URING, /* io_uring: up to queue_depth requests in flight */
};

enum raw_op {
	RAW_OP_READ,
	RAW_OP_WRITE,
	RAW_OP_FLUSH,
	RAW_OP_DISCARD,
	RAW_OP_WRITE_ZEROES,
};

/* Most iovecs in one READ or WRITE request (IOV_MAX, what preadv/pwritev and io_uring accept). */
#define RAW_MAX_IOV 1024

struct raw_request {
	/* Set by the caller before raw_submit. The backend owns the request and its iovecs until completion. */
	enum raw_op op;
	uint64_t offset;     /* bytes from the start of the image */
	uint64_t len;        /* DISCARD, WRITE_ZEROES: bytes (> 0); READ, WRITE: set by raw_submit to the iovecs' total */
	struct iovec *iov;   /* READ, WRITE: the buffers, 1..RAW_MAX_IOV; advanced in place on short transfers */
	unsigned int iovcnt;
	bool unmap;          /* WRITE_ZEROES: the range may be deallocated */
	bool dsync;          /* stable on completion (see above) */
	void *opaque;        /* the caller's */
	/* Set before the completion callback: 0 (everything done) or -errno. */
	int result;
	/* Backend-private. */
	int stage;
	uint64_t done;
	struct iovec zero_iov;
	struct raw_request *next;
};

/* A request completed: req->result says how. Runs inside raw_reap/raw_drain/raw_close. */
typedef void (*raw_complete_fn)(void *opaque, struct raw_request *req);

/*
 * A READ step just put `len` bytes into the start of iov[0..iovcnt) (the request's buffers as they stand,
 * before they advance past those bytes): for a caller whose buffers are guest memory, to mark them written.
 * Runs on whichever thread saw the transfer (the I/O thread for RAW_ENGINE_SYNC), so it must be
 * thread-safe; it sees every byte a READ wrote, failed requests included.
 */
typedef void (*raw_filled_fn)(void *opaque, const struct iovec *iov, unsigned int iovcnt, uint64_t len);

struct raw_params {
	const char *path;
	bool read_only;
	enum raw_engine engine;   /* wanted; raw_engine() says what it got */
	unsigned int queue_depth; /* most requests in flight at once, 1..4096 */
	raw_complete_fn complete;
	raw_filled_fn filled;     /* optional */
	void *opaque;             /* passed to complete and filled */
};

struct raw_disk;

/*
 * Open and lock the image at p->path (O_RDWR or O_RDONLY, O_CLOEXEC) and start the engine. Returns NULL
 * with errno and a message naming the path in `err` (`err_size` bytes): EAGAIN "PATH is locked by
 * another process", ENOENT/EACCES/EROFS... from open, EINVAL (neither a regular file nor a block device;
 * bad params), or what thread/eventfd creation returns.
 */
struct raw_disk *raw_open(const struct raw_params *p, char *err, size_t err_size);

/* Wait for the requests in flight (completing them through the callback), stop the engine, close. */
void raw_close(struct raw_disk *d);

/* Size of the image in bytes, read once at open. */
uint64_t raw_size(const struct raw_disk *d);
const char *raw_path(const struct raw_disk *d);
bool raw_read_only(const struct raw_disk *d);
enum raw_engine raw_engine(const struct raw_disk *d);

/* Readable (EPOLLIN) when completions may be waiting: call raw_reap. Level-triggered; raw_reap clears it. */
int raw_event_fd(const struct raw_disk *d);

/*
 * Queue `req`. It may start at once or only at raw_commit, which should follow a batch of submissions.
 * Returns 0 (the callback will run, from raw_reap) or, without calling it, -EBUSY (queue_depth requests
 * in flight), -EROFS (a change to a read-only image), -EINVAL (iovcnt 0 or above RAW_MAX_IOV, 0 bytes,
 * or a range past the end of the image).
 */
int raw_submit(struct raw_disk *d, struct raw_request *req) __attribute__((warn_unused_result));

/* Start what raw_submit queued (one io_submit for the whole batch). */
void raw_commit(struct raw_disk *d);

/*
 * Run the callback for every request that completed; with `wait`, first block until at least one
 * completes if any is in flight. Returns the number completed, or -errno when waiting failed.
 */
int raw_reap(struct raw_disk *d, bool wait);

/* raw_reap(wait) until nothing is in flight. 0 or -errno. */
int raw_drain(struct raw_disk *d);

/*
 * fdatasync the image outside any request (a no-op for a read-only one): what completed writes put in
 * the host's page cache is on stable storage when it returns. For snapshots. 0 or -errno.
 */
int raw_sync(struct raw_disk *d) __attribute__((warn_unused_result));

/* Requests submitted and not yet completed. */
unsigned int raw_in_flight(const struct raw_disk *d);

#endif
