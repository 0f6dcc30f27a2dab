// SPDX-License-Identifier: MIT
/* virtio-rng (virtio 1.2 s5.4): the model is in rng.h. */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "devices/virtio/virtqueue.h"
#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

#define REQUESTQ 0

struct virtio_rng {
	struct virtio_pci *t;
	virtio_rng_source_fn source;
	void *source_opaque;
	_Atomic uint64_t bytes;
	struct ratelimit rl;   /* host-side getrandom failures; device lock */
	struct vq_chain chain; /* large: one popped buffer at a time */
};

static ssize_t host_getrandom(void *opaque, void *buf, size_t len, unsigned int flags)
{
	(void)opaque;
	return getrandom(buf, len, flags);
}

/*
 * Fill the chain's writable segments, up to VIRTIO_RNG_MAX_REQUEST bytes, straight into guest
 * memory. Returns the bytes written: fewer when the host pool has nothing more right now.
 */
static uint32_t fill(struct virtio_rng *rng, const struct vq_chain *chain)
{
	uint32_t done = 0;

	for (unsigned int i = 0; i < chain->nr_writable && done < VIRTIO_RNG_MAX_REQUEST; i++) {
		const struct iovec *iov = &chain->iov[chain->nr_readable + i];
		size_t want = iov->iov_len, got = 0;

		if (want > VIRTIO_RNG_MAX_REQUEST - done)
			want = VIRTIO_RNG_MAX_REQUEST - done;
		while (got < want) {
			ssize_t n = rng->source(rng->source_opaque, (uint8_t *)iov->iov_base + got, want - got, GRND_NONBLOCK);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n < 0 && errno != EAGAIN)
					pr_warn_ratelimited(&rng->rl, "virtio-rng: getrandom: %s", strerror(errno));
				return done + (uint32_t)got;
			}
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_queue_notify(void *opaque, unsigned int q)
{
	struct virtio_rng *rng = opaque;
	struct virtqueue *vq = virtio_pci_queue(rng->t, q);
	unsigned int budget, pushed = 0;
	int ret = 0;

	if (q != REQUESTQ || !vq)
		return;
	budget = vq->size;
	do {
		vq_disable_notify(vq);
		while (budget && (ret = vq_pop(vq, &rng->chain)) > 0) {
			uint32_t len = fill(rng, &rng->chain);

			/* fill writes a prefix of the writable part, `len` bytes: exactly what changed. */
			vq_chain_mark_written(&rng->chain, 0, len);
			ret = vq_push(vq, rng->chain.head, len);
			if (ret)
				break;
			atomic_fetch_add(&rng->bytes, len);
			pushed++;
			budget--;
		}
		if (ret < 0)
			break; /* the guest broke the queue: the transport sets DEVICE_NEEDS_RESET */
	} while (budget && vq_enable_notify(vq));
	if (pushed)
		virtio_pci_notify_queue(rng->t, q);
	if (!budget) {
		/* More may be waiting: come back after the loop's other sources had their turn. */
		vq_enable_notify(vq);
		virtio_pci_kick_queue(rng->t, q);
	}
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_ENTROPY,
	.pci_class = VIRTIO_RNG_PCI_CLASS,
	.features = 0,
	.nr_queues = 1,
	.queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
	.config_size = 0,
	.queue_notify = rng_queue_notify,
};

struct virtio_rng *virtio_rng_create(const struct virtio_pci_params *p)
{
	struct virtio_pci_params params = *p;
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	int err;

	if (!rng)
		return NULL;
	rng->source = host_getrandom;
	rng->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	atomic_init(&rng->bytes, 0);
	params.ops = &rng_ops;
	params.dev = rng;
	rng->t = virtio_pci_create(&params);
	if (!rng->t) {
		err = errno;
		free(rng);
		errno = err;
		return NULL;
	}
	return rng;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	if (!rng)
		return;
	virtio_pci_destroy(rng->t);
	free(rng);
}

/* ---- the device type (vmm/device.h): Firecracker's "entropy" ---- */

#define SNAP_ID_VRNG SNAP_FOURCC('V', 'R', 'N', 'G') /* its snapshot section, instance = PCI slot */

static unsigned int rng_count(const struct vm_config *cfg)
{
	return cfg->entropy ? 1 : 0;
}

static void *rng_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	return virtio_rng_create(&ctx->virtio);
}

static struct virtio_pci *rng_transport(void *dev)
{
	return virtio_rng_transport(dev);
}

VM_DEVICE_ADAPTERS(rng, virtio_rng_destroy, virtio_rng_save, virtio_rng_restore)

const struct vm_device_type virtio_rng_device_type = {
	.name = "virtio-rng",
	.config_section = "entropy",
	.count = rng_count,
	.create = rng_new,
	.destroy = rng_destroy_dev,
	.transport = rng_transport,
	.section = SNAP_ID_VRNG,
	.codec = &virtio_rng_state_codec,
	.save = rng_save_dev,
	.restore = rng_restore_dev,
};

void virtio_rng_set_source(struct virtio_rng *rng, virtio_rng_source_fn fn, void *opaque)
{
	virtio_pci_lock(rng->t);
	rng->source = fn ? fn : host_getrandom;
	rng->source_opaque = fn ? opaque : NULL;
	virtio_pci_unlock(rng->t);
}

struct virtio_pci *virtio_rng_transport(struct virtio_rng *rng)
{
	return rng->t;
}

uint64_t virtio_rng_bytes(struct virtio_rng *rng)
{
	return atomic_load(&rng->bytes);
}

/* ---- snapshot state ---- */

void virtio_rng_save(struct virtio_rng *rng, struct virtio_rng_state *st)
{
	st->bytes = atomic_load(&rng->bytes);
}

void virtio_rng_restore(struct virtio_rng *rng, const struct virtio_rng_state *st)
{
	atomic_store(&rng->bytes, st->bytes);
}

static const struct codec_field virtio_rng_state_fields[] = {
	CODEC_UINT(struct virtio_rng_state, bytes, 8, 1),
};

const struct codec_table virtio_rng_state_codec =
	CODEC_TABLE(struct virtio_rng_state, "virtio-rng state", 1, 1, virtio_rng_state_fields, NULL);
