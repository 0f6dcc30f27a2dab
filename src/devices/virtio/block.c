// SPDX-License-Identifier: MIT
/* virtio-blk (virtio 1.2 s5.2): the model and the decisions are in block.h. */
#include "devices/virtio/block.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "devices/virtio/virtqueue.h"
#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

#define REQUESTQ 0

/* One request handed to the backend; VIRTIO_BLK_QUEUE_SIZE of them, as many as the ring can hold. */
struct blk_req {
	struct raw_request io;
	uint16_t head;
	uint8_t *status;   /* the chain's last writable byte, in guest RAM */
	uint32_t written;  /* used length on success: data bytes read into the guest + the status byte */
	uint32_t type;
	struct blk_req *next_free;
	struct iovec iov[VIRTIO_BLK_MAX_DATA_IOV];
};

struct virtio_blk {
	struct virtio_pci *t;
	const struct guest_memory *mem; /* for write tracking from the backend's thread (blk_io_filled) */
	struct raw_disk *disk;
	char id[VIRTIO_BLK_ID_BYTES];
	bool read_only;
	uint64_t capacity;          /* 512-byte sectors */
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
	/*
	 * The device-specific features this disk offers: they depend on the image (RO) and the cache
	 * type (FLUSH). Set once before the transport exists (virtio_pci_params.features), then only read.
	 */
	uint64_t features;

	/* Device lock. */
	bool dsync_writes;          /* Writeback, but the driver did not accept FLUSH */
	bool pushed;                /* a completion was pushed: notify the driver */
	bool starved;               /* stopped popping for want of a free blk_req */
	struct blk_req *free_list;
	struct blk_req *reqs;
	struct ratelimit rl;
	struct vq_chain chain;      /* large: one popped chain at a time */
};

/* ---- completing requests ---- */

/* Status into the guest's status byte, then the chain back to the driver. Lock held. */
static void complete_chain(struct virtio_blk *blk, struct virtqueue *vq, uint16_t head, uint8_t *status,
			   uint8_t value, uint32_t written)
{
	/* A plain store into guest RAM; vq_push's release ordering publishes it before the used index. */
	*(volatile uint8_t *)status = value;
	guest_memory_mark_written_hva(vq->mem, status, 1);
	if (vq_push(vq, head, written) == 0)
		blk->pushed = true;
}

static const char *op_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	case VIRTIO_BLK_T_DISCARD:
		return "discard";
	default:
		return "write-zeroes";
	}
}

/* The backend finished `io` (raw_reap, device lock held). */
static void blk_io_done(void *opaque, struct raw_request *io)
{
	struct virtio_blk *blk = opaque;
	struct blk_req *req = (struct blk_req *)((char *)io - offsetof(struct blk_req, io));
	/* NULL after a reset: the request is dropped, the reset driver forgot it. */
	struct virtqueue *vq = virtio_pci_queue(blk->t, REQUESTQ);

	if (io->result)
		pr_warn_ratelimited(&blk->rl, "virtio-blk %s: %s of %llu bytes at byte %llu: %s", raw_path(blk->disk),
				    op_name(req->type), (unsigned long long)io->len, (unsigned long long)io->offset,
				    strerror(-io->result));
	if (vq)
		complete_chain(blk, vq, req->head, req->status, io->result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
			       io->result ? 1 : req->written);
	req->next_free = blk->free_list;
	blk->free_list = req;
}

/*
 * The backend read `len` bytes into guest buffers. Marked here, per transfer, rather than at completion
 * from the used length: the iovecs are advanced in place on short reads (raw.h), and a read that fails
 * half-way has written data that the used length (1, the status) does not count. Any thread.
 */
static void blk_io_filled(void *opaque, const struct iovec *iov, unsigned int iovcnt, uint64_t len)
{
	struct virtio_blk *blk = opaque;

	guest_memory_mark_written_iov(blk->mem, iov, iovcnt, len);
}

/* After completions: interrupt the driver, and resume a queue that waited for free requests. Lock held. */
static void after_completions(struct virtio_blk *blk)
{
	if (blk->pushed)
		virtio_pci_notify_queue(blk->t, REQUESTQ);
	blk->pushed = false;
	if (blk->starved && blk->free_list) {
		blk->starved = false;
		/* Through the loop, where the transport checks that the queue may still be processed. */
		virtio_pci_kick_queue(blk->t, REQUESTQ);
	}
}

/* The backend's eventfd: completions are waiting. Loop thread. */
static void blk_io_event(void *opaque, int fd, uint32_t events)
{
	struct virtio_blk *blk = opaque;

	(void)fd;
	(void)events;
	virtio_pci_lock(blk->t);
	raw_reap(blk->disk, false);
	after_completions(blk);
	virtio_pci_unlock(blk->t);
}

/* ---- parsing requests ---- */

/* The last device-writable byte of the chain: where the status goes (s5.2.6). NULL when there is none. */
static uint8_t *status_byte(const struct vq_chain *c)
{
	for (unsigned int i = c->nr_readable + c->nr_writable; i > c->nr_readable; i--) {
		const struct iovec *iov = &c->iov[i - 1];

		if (iov->iov_len)
			return (uint8_t *)iov->iov_base + iov->iov_len - 1;
	}
	return NULL;
}

/*
 * Bytes [off, off + len) of the segments iov[0..n) as iovecs into `out` (at most `max`). Returns how
 * many, or -1 when more would be needed or the segments are shorter.
 */
static int iov_slice(const struct iovec *iov, unsigned int n, uint64_t off, uint64_t len, struct iovec *out,
		     unsigned int max)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n && len; i++) {
		uint64_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		if (k == max)
			return -1;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return len ? -1 : (int)k;
}

/* Sectors [sector, sector + count) lie inside the disk. */
static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t count)
{
	return sector <= blk->capacity && count <= blk->capacity - sector;
}

/* A request the guest got wrong: IOERR, and a debug line (rate-limited). Returns the status. */
static uint8_t bad_request(struct virtio_blk *blk, uint16_t head, const char *why)
{
	if (ratelimit_ok(&blk->rl))
		pr_debug("virtio-blk %s: request %u refused (IOERR): %s", raw_path(blk->disk), head, why);
	return VIRTIO_BLK_S_IOERR;
}

struct parsed {
	uint32_t type;
	uint64_t sector;
	uint64_t data_len;  /* bytes between the header and the status */
};

/*
 * Check an IN or OUT request and describe its data to the backend in req->io. Returns
 * VIRTIO_BLK_S_OK when it is to be submitted, else the status to complete it with.
 */
static uint8_t prepare_rw(struct virtio_blk *blk, const struct vq_chain *c, const struct parsed *p,
			  struct blk_req *req)
{
	bool in = p->type == VIRTIO_BLK_T_IN;
	int n;

	if (!in && blk->read_only)
		return VIRTIO_BLK_S_IOERR; /* s5.2.6.2: IOERR, and nothing written */
	if (in ? c->readable_bytes != VIRTIO_BLK_HEADER_SIZE : c->writable_bytes != 1)
		return bad_request(blk, c->head, in ? "readable bytes after the header of a read"
						    : "writable bytes before the status of a write");
	if (p->data_len % VIRTIO_BLK_SECTOR_SIZE)
		return bad_request(blk, c->head, "data not a multiple of 512 bytes");
	if (!in_range(blk, p->sector, p->data_len / VIRTIO_BLK_SECTOR_SIZE))
		return bad_request(blk, c->head, "sectors beyond the end of the disk");
	if (p->data_len >= UINT32_MAX)
		return bad_request(blk, c->head, "data of 4 GiB or more");
	if (in)
		n = iov_slice(&c->iov[c->nr_readable], c->nr_writable, 0, p->data_len, req->iov,
			      VIRTIO_BLK_MAX_DATA_IOV);
	else
		n = iov_slice(c->iov, c->nr_readable, VIRTIO_BLK_HEADER_SIZE, p->data_len, req->iov,
			      VIRTIO_BLK_MAX_DATA_IOV);
	if (n < 0)
		return bad_request(blk, c->head, "more data segments than seg_max");
	req->io.op = in ? RAW_OP_READ : RAW_OP_WRITE;
	req->io.offset = p->sector * VIRTIO_BLK_SECTOR_SIZE;
	req->io.iov = req->iov;
	req->io.iovcnt = (unsigned int)n;
	req->io.dsync = !in && blk->dsync_writes;
	req->written = in ? (uint32_t)p->data_len + 1 : 1;
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: one struct virtio_blk_discard_write_zeroes (s5.2.6). */
static uint8_t prepare_discard(struct virtio_blk *blk, const struct vq_chain *c, const struct parsed *p,
			       struct blk_req *req)
{
	bool zeroes = p->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint8_t seg[VIRTIO_BLK_SEGMENT_SIZE];
	uint64_t sector;
	uint32_t count, flags;

	if (c->writable_bytes != 1)
		return bad_request(blk, c->head, "writable bytes before the status of a discard/write-zeroes");
	if (p->data_len != VIRTIO_BLK_SEGMENT_SIZE)
		return bad_request(blk, c->head, "not exactly one discard/write-zeroes segment (max_*_seg is 1)");
	/* A copy: the guest may rewrite the segment while we look at it. */
	vq_chain_read(c, VIRTIO_BLK_HEADER_SIZE, seg, sizeof(seg));
	memcpy(&sector, seg, 8);
	memcpy(&count, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	sector = le64toh(sector);
	count = le32toh(count);
	flags = le32toh(flags);
	/* s5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP. */
	if (flags & ~(zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0u))
		return VIRTIO_BLK_S_UNSUPP;
	if (count > VIRTIO_BLK_MAX_DISCARD_SECTORS)
		return bad_request(blk, c->head, "segment larger than max_discard_sectors/max_write_zeroes_sectors");
	if (!in_range(blk, sector, count))
		return bad_request(blk, c->head, "sectors beyond the end of the disk");
	req->io.op = zeroes ? RAW_OP_WRITE_ZEROES : RAW_OP_DISCARD;
	req->io.offset = sector * VIRTIO_BLK_SECTOR_SIZE;
	req->io.len = (uint64_t)count * VIRTIO_BLK_SECTOR_SIZE;
	req->io.unmap = zeroes && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	req->io.dsync = blk->dsync_writes;
	req->written = 1;
	return VIRTIO_BLK_S_OK;
}

/*
 * Handle one popped chain: complete it at once (errors, GET_ID, empty transfers) or hand it to the
 * backend. Returns false when the device cannot go on (DEVICE_NEEDS_RESET set). Lock held.
 */
static bool handle_chain(struct virtio_blk *blk, struct virtqueue *vq, const struct vq_chain *c)
{
	uint8_t *status = status_byte(c);
	uint8_t hdr[VIRTIO_BLK_HEADER_SIZE], result;
	uint32_t type32;
	uint64_t sector;
	struct parsed p;
	struct blk_req *req;
	int ret;

	if (!status) {
		/* Nowhere to say anything: the driver broke the protocol (s2.1.2). */
		virtio_pci_set_needs_reset(blk->t, "request %u has no device-writable status byte", c->head);
		return false;
	}
	if (vq_chain_read(c, 0, hdr, sizeof(hdr)) < sizeof(hdr)) {
		complete_chain(blk, vq, c->head, status, bad_request(blk, c->head, "header shorter than 16 bytes"), 1);
		return true;
	}
	memcpy(&type32, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	p.type = le32toh(type32);
	p.sector = le64toh(sector);
	p.data_len = c->readable_bytes + c->writable_bytes - VIRTIO_BLK_HEADER_SIZE - 1;

	req = blk->free_list;
	memset(&req->io, 0, sizeof(req->io));
	req->head = c->head;
	req->status = status;
	req->type = p.type;
	switch (p.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		result = prepare_rw(blk, c, &p, req);
		if (result == VIRTIO_BLK_S_OK && p.data_len == 0) {
			complete_chain(blk, vq, c->head, status, VIRTIO_BLK_S_OK, 1);
			return true;
		}
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!(blk->features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))) {
			result = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		if (c->readable_bytes != VIRTIO_BLK_HEADER_SIZE || c->writable_bytes != 1) {
			result = bad_request(blk, c->head, "a flush with data");
			break;
		}
		req->io.op = RAW_OP_FLUSH;
		req->written = 1;
		result = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t len = c->writable_bytes - 1;

		if (c->readable_bytes != VIRTIO_BLK_HEADER_SIZE || !len) {
			result = bad_request(blk, c->head, "a get-id without exactly a header and a buffer");
			complete_chain(blk, vq, c->head, status, result, 1);
			return true;
		}
		if (len > VIRTIO_BLK_ID_BYTES)
			len = VIRTIO_BLK_ID_BYTES;
		vq_chain_write(c, 0, blk->id, (size_t)len);
		complete_chain(blk, vq, c->head, status, VIRTIO_BLK_S_OK, (uint32_t)len + 1);
		return true;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!(blk->features & VIRTIO_BIT(p.type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD
										     : VIRTIO_BLK_F_WRITE_ZEROES))) {
			result = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		result = prepare_discard(blk, c, &p, req);
		if (result == VIRTIO_BLK_S_OK && req->io.len == 0) {
			complete_chain(blk, vq, c->head, status, VIRTIO_BLK_S_OK, 1);
			return true;
		}
		break;
	default:
		result = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (result != VIRTIO_BLK_S_OK) {
		complete_chain(blk, vq, c->head, status, result, 1);
		return true;
	}
	req->io.opaque = req;
	ret = raw_submit(blk->disk, &req->io);
	if (ret) {
		pr_warn_ratelimited(&blk->rl, "virtio-blk %s: cannot start a %s: %s", raw_path(blk->disk),
				    op_name(p.type), strerror(-ret));
		complete_chain(blk, vq, c->head, status, VIRTIO_BLK_S_IOERR, 1);
		return true;
	}
	blk->free_list = req->next_free;
	return true;
}

/* ---- the device type ---- */

static void blk_queue_notify(void *opaque, unsigned int q)
{
	struct virtio_blk *blk = opaque;
	struct virtqueue *vq = virtio_pci_queue(blk->t, q);
	unsigned int budget;
	bool ok = true;
	int ret = 0;

	if (q != REQUESTQ || !vq)
		return;
	budget = vq->size;
	do {
		vq_disable_notify(vq);
		while (ok && budget) {
			if (!blk->free_list) {
				/* Cannot happen with a driver that respects the ring size; the next completion resumes. */
				blk->starved = true;
				break;
			}
			ret = vq_pop(vq, &blk->chain);
			if (ret <= 0)
				break;
			budget--;
			ok = handle_chain(blk, vq, &blk->chain);
		}
		if (ret < 0 || !ok || blk->starved)
			break; /* a broken queue: the transport sets DEVICE_NEEDS_RESET on return */
	} while (budget && vq_enable_notify(vq));
	raw_commit(blk->disk);
	after_completions(blk);
	if (!budget && ok && ret >= 0) {
		/* More may be waiting: come back after the loop's other sources had their turn. */
		vq_enable_notify(vq);
		virtio_pci_kick_queue(blk->t, q);
	}
}

static void blk_config_read(void *opaque, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = opaque;

	memcpy(data, blk->config + off, len);
}

static int blk_activate(void *opaque, struct virtio_pci *t)
{
	struct virtio_blk *blk = opaque;

	/* s5.2.6.2 case 1: FLUSH offered but not negotiated means every write must be stable. */
	blk->dsync_writes = (blk->features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)) &&
			    !(virtio_pci_driver_features(t) & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	return 0;
}

/* Reset (s2.4), vCPU thread: the queue is already forgotten, so draining drops every completion. */
static void blk_reset(void *opaque)
{
	struct virtio_blk *blk = opaque;
	int ret = raw_drain(blk->disk);

	if (ret)
		pr_warn("virtio-blk %s: waiting for requests at reset: %s", raw_path(blk->disk), strerror(-ret));
	blk->pushed = false;
	blk->starved = false;
	blk->dsync_writes = false;
}

/* Every feature a virtio-blk may offer; each disk offers its own subset (build_config). */
static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = VIRTIO_BLK_PCI_CLASS,
	.features = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_RO) |
		    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH),
	.nr_queues = 1,
	.queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
	.config_size = VIRTIO_BLK_CONFIG_SIZE,
	.config_read = blk_config_read,
	.config_write = NULL, /* every field is read-only without CONFIG_WCE */
	.activate = blk_activate,
	.reset = blk_reset,
	.queue_notify = blk_queue_notify,
};

static void put_le(uint8_t *p, uint64_t v, unsigned int len)
{
	for (unsigned int i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void build_config(struct virtio_blk *blk)
{
	uint8_t *c = blk->config;
	uint64_t f = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE);

	memset(c, 0, sizeof(blk->config));
	put_le(c + VIRTIO_BLK_CFG_CAPACITY, blk->capacity, 8);
	put_le(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX, 4);
	put_le(c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE, 4);
	put_le(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1, 2);
	if (blk->read_only) {
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	} else {
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
		put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, 4);
		put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1, 4);
		put_le(c + VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, VIRTIO_BLK_DISCARD_ALIGNMENT, 4);
		put_le(c + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, 4);
		put_le(c + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 1, 4);
		c[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
	}
	blk->features = f;
}

/* Why virtio_blk_create failed: logged, and in bp->err when the caller gave one. */
static void __attribute__((format(printf, 2, 3))) blk_create_failed(const struct virtio_blk_params *bp,
								     const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("virtio-blk: %s", msg);
	errmsg_set(bp->err, bp->err_size, "%s", msg);
}

struct virtio_blk *virtio_blk_create(const struct virtio_pci_params *p, const struct virtio_blk_params *bp)
{
	struct virtio_pci_params params = *p;
	struct raw_params rp = {
		.path = bp->path,
		.read_only = bp->read_only,
		.engine = bp->engine,
		.queue_depth = VIRTIO_BLK_QUEUE_SIZE,
		.complete = blk_io_done,
		.filled = blk_io_filled,
	};
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	char err[512];
	uint64_t size;
	int ret;

	if (!p->loop || !bp->path) {
		free(blk);
		errno = EINVAL;
		return NULL;
	}
	if (!blk)
		return NULL;
	blk->reqs = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*blk->reqs));
	if (!blk->reqs) {
		free(blk);
		errno = ENOMEM;
		return NULL;
	}
	for (unsigned int i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++) {
		blk->reqs[i].next_free = blk->free_list;
		blk->free_list = &blk->reqs[i];
	}
	blk->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	blk->mem = p->mem;
	blk->read_only = bp->read_only;
	/* NUL-padded, without a terminator when 20 bytes long (s5.2.6). */
	if (bp->id)
		memcpy(blk->id, bp->id, strnlen(bp->id, sizeof(blk->id)));
	rp.opaque = blk;
	blk->disk = raw_open(&rp, err, sizeof(err));
	if (!blk->disk) {
		ret = -errno;
		blk_create_failed(bp, "%s", err);
		goto fail;
	}
	size = raw_size(blk->disk);
	blk->capacity = size / VIRTIO_BLK_SECTOR_SIZE;
	if (!blk->capacity) {
		blk_create_failed(bp, "%s: %llu bytes, less than one 512-byte sector", bp->path, (unsigned long long)size);
		ret = -EINVAL;
		goto fail;
	}
	if (size % VIRTIO_BLK_SECTOR_SIZE)
		pr_warn("virtio-blk: %s: %llu bytes is not a multiple of 512: the guest sees %llu bytes", bp->path,
			(unsigned long long)size, (unsigned long long)(blk->capacity * VIRTIO_BLK_SECTOR_SIZE));
	build_config(blk);
	if (bp->cache == VIRTIO_BLK_CACHE_WRITEBACK)
		blk->features |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

	/* Before the transport exists, so that a failure leaves nothing on the PCI bus; no request can
	 * complete (and call blk_io_event) before the transport does. */
	ret = loop_add(p->loop, raw_event_fd(blk->disk), EPOLLIN, blk_io_event, blk);
	if (ret) {
		blk_create_failed(bp, "%s: cannot watch its completions: %s", bp->path, strerror(-ret));
		goto fail;
	}
	params.ops = &blk_ops;
	params.dev = blk;
	params.features = blk->features;
	blk->t = virtio_pci_create(&params);
	if (!blk->t) {
		ret = -errno;
		blk_create_failed(bp, "%s: cannot create its PCI function: %s", bp->path, strerror(-ret));
		loop_del(p->loop, raw_event_fd(blk->disk));
		goto fail;
	}
	return blk;
fail:
	raw_close(blk->disk);
	free(blk->reqs);
	free(blk);
	errno = -ret;
	return NULL;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	virtio_pci_lock(blk->t);
	raw_drain(blk->disk);
	virtio_pci_unlock(blk->t);
	raw_close(blk->disk);
	virtio_pci_destroy(blk->t);
	free(blk->reqs);
	free(blk);
}

/* ---- the device type (vmm/device.h): Firecracker's "drives" ---- */

#define SNAP_ID_VBLK SNAP_FOURCC('V', 'B', 'L', 'K') /* its snapshot section, instance = PCI slot */

static unsigned int blk_count(const struct vm_config *cfg)
{
	return cfg->nr_drives;
}

/* Drive `index` in vm_config_drive_order: the root drive first, so that it is /dev/vda. */
static void *blk_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	const struct vm_drive_config *d = &ctx->cfg->drives[vm_config_drive_order(ctx->cfg, index)];
	char why[400];
	struct virtio_blk_params bp = {
		.path = d->path_on_host,
		.read_only = d->is_read_only,
		.id = d->drive_id,
		.cache = d->cache_type == VM_DRIVE_CACHE_WRITEBACK ? VIRTIO_BLK_CACHE_WRITEBACK : VIRTIO_BLK_CACHE_UNSAFE,
		.engine = d->io_engine == VM_DRIVE_IO_ASYNC ? RAW_ENGINE_IO_URING : RAW_ENGINE_SYNC,
		.err = why,
		.err_size = sizeof(why),
	};
	struct virtio_blk *blk;

	why[0] = '\0';
	blk = virtio_blk_create(&ctx->virtio, &bp);
	if (!blk)
		errmsg_set(err, err_size, "drive %s: %s", d->drive_id, why[0] ? why : strerror(errno));
	return blk;
}

static void blk_free(void *dev)
{
	virtio_blk_destroy(dev);
}

static struct virtio_pci *blk_transport(void *dev)
{
	return virtio_blk_transport(dev);
}

/* A pause: the requests in flight complete into guest RAM before it; none starts until thaw. */
static int blk_quiesce(void *dev)
{
	return virtio_blk_quiesce(dev);
}

/* A snapshot is durable once committed, and the disk it describes must be too (docs/snapshot-format.md "Disks"). */
static int blk_sync(void *dev)
{
	return virtio_blk_sync(dev);
}

VM_DEVICE_SAVE_FN(blk_save_fn, virtio_blk_save)

static int blk_restore_fn(void *dev, const void *st, char *err, size_t err_size)
{
	return virtio_blk_restore(dev, st, err, err_size);
}

const struct vm_device_type virtio_blk_device_type = {
	.name = "virtio-blk",
	.config_section = "drives",
	.count = blk_count,
	.create = blk_new,
	.destroy = blk_free,
	.transport = blk_transport,
	.section = SNAP_ID_VBLK,
	.codec = &virtio_blk_state_codec,
	.save = blk_save_fn,
	.restore = blk_restore_fn,
	.quiesce = blk_quiesce,
	.sync = blk_sync,
};

int virtio_blk_quiesce(struct virtio_blk *blk)
{
	int ret;

	virtio_pci_lock(blk->t);
	ret = raw_drain(blk->disk);
	after_completions(blk);
	virtio_pci_unlock(blk->t);
	return ret;
}

int virtio_blk_sync(struct virtio_blk *blk)
{
	int ret;

	virtio_pci_lock(blk->t);
	ret = raw_sync(blk->disk);
	virtio_pci_unlock(blk->t);
	return ret;
}

uint64_t virtio_blk_capacity_bytes(const struct virtio_blk *blk)
{
	return blk->capacity * VIRTIO_BLK_SECTOR_SIZE;
}

const char *virtio_blk_path(const struct virtio_blk *blk)
{
	return raw_path(blk->disk);
}

enum raw_engine virtio_blk_engine(const struct virtio_blk *blk)
{
	return raw_engine(blk->disk);
}

unsigned int virtio_blk_in_flight(struct virtio_blk *blk)
{
	unsigned int n;

	virtio_pci_lock(blk->t);
	n = raw_in_flight(blk->disk);
	virtio_pci_unlock(blk->t);
	return n;
}

struct virtio_pci *virtio_blk_transport(struct virtio_blk *blk)
{
	return blk->t;
}

/* ---- snapshot state ---- */

void virtio_blk_save(struct virtio_blk *blk, struct virtio_blk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->capacity = blk->capacity;
	st->read_only = blk->read_only;
	memcpy(st->id, blk->id, sizeof(st->id));
}

int virtio_blk_restore(struct virtio_blk *blk, const struct virtio_blk_state *st, char *err, size_t err_size)
{
	if (st->capacity != blk->capacity || st->read_only != blk->read_only || memcmp(st->id, blk->id, sizeof(st->id))) {
		errmsg_set(err, err_size,
			   "virtio-blk %s: the snapshot's disk had %llu sectors%s, serial '%.20s'; this one has %llu%s, "
			   "serial '%.20s'",
			   raw_path(blk->disk), (unsigned long long)st->capacity, st->read_only ? " (read-only)" : "", st->id,
			   (unsigned long long)blk->capacity, blk->read_only ? " (read-only)" : "", blk->id);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field virtio_blk_state_fields[] = {
	CODEC_UINT(struct virtio_blk_state, capacity, 8, 1),
	CODEC_BOOL(struct virtio_blk_state, read_only, 1),
	CODEC_BYTES(struct virtio_blk_state, id, 1),
};

const struct codec_table virtio_blk_state_codec =
	CODEC_TABLE(struct virtio_blk_state, "virtio-blk state", 1, 1, virtio_blk_state_fields, NULL);
