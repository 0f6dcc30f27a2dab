// SPDX-License-Identifier: MIT
/*
 * A test-only virtio device, the proof that a device type costs one file and one table row
 * (vmm/device.h): "virtio-counter" has one queue; for each chain it adds the chain's readable bytes to
 * a running total and writes that total (8 bytes, little-endian) into the chain's writable bytes. Its
 * snapshot state is the total and the number of chains, described by a codec table, so a restored
 * counter goes on counting where the old one stopped.
 *
 * Its config field: one counter per `vcpus` (vm_config.vcpus), a number the tests choose freely.
 */
#include <errno.h>
#include <stdlib.h>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "lib/codec.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

#define COUNTER_DEVICE_ID 0x3f /* a virtio device ID no specification assigns */
#define COUNTER_QUEUE_SIZE 64

struct counter_state {
	uint64_t total;                 /* readable bytes seen */
	uint32_t chains;                /* chains completed */
};

struct counter {
	struct virtio_pci *t;
	struct vq_chain chain;
	struct counter_state st;        /* device lock */
};

static void counter_notify(void *dev, unsigned int q)
{
	struct counter *c = dev;
	struct virtqueue *vq = virtio_pci_queue(c->t, q);
	bool pushed = false;

	while (vq && vq_pop(vq, &c->chain) > 0) {
		uint8_t out[8];

		c->st.total += c->chain.readable_bytes;
		c->st.chains++;
		for (unsigned int i = 0; i < 8; i++)
			out[i] = (uint8_t)(c->st.total >> (8 * i));
		if (vq_push(vq, c->chain.head, (uint32_t)vq_chain_write(&c->chain, 0, out, sizeof(out))))
			break;
		pushed = true;
	}
	if (pushed)
		virtio_pci_notify_queue(c->t, q);
}

static const struct virtio_device_ops counter_ops = {
	.name = "virtio-counter",
	.device_id = COUNTER_DEVICE_ID,
	.pci_class = 0x00ff00,
	.nr_queues = 1,
	.queue_max_size = COUNTER_QUEUE_SIZE,
	.queue_notify = counter_notify,
};

static unsigned int counter_count(const struct vm_config *cfg)
{
	return cfg->vcpus;
}

static void *counter_create(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	struct virtio_pci_params p = ctx->virtio;
	struct counter *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	p.ops = &counter_ops;
	p.dev = c;
	c->t = virtio_pci_create(&p);
	if (!c->t) {
		free(c);
		return NULL;
	}
	return c;
}

static void counter_destroy(void *dev)
{
	struct counter *c = dev;

	virtio_pci_destroy(c->t);
	free(c);
}

static struct virtio_pci *counter_transport(void *dev)
{
	return ((struct counter *)dev)->t;
}

static void counter_save(void *dev, void *st)
{
	struct counter *c = dev;

	virtio_pci_lock(c->t);
	*(struct counter_state *)st = c->st;
	virtio_pci_unlock(c->t);
}

static int counter_restore(void *dev, const void *st, char *err, size_t err_size)
{
	struct counter *c = dev;

	virtio_pci_lock(c->t);
	c->st = *(const struct counter_state *)st;
	virtio_pci_unlock(c->t);
	return 0;
}

static const struct codec_field counter_state_fields[] = {
	CODEC_UINT(struct counter_state, total, 8, 1),
	CODEC_UINT(struct counter_state, chains, 4, 1),
};

static const struct codec_table counter_state_codec =
	CODEC_TABLE(struct counter_state, "virtio-counter state", 1, 1, counter_state_fields, NULL);

const struct vm_device_type counter_device_type = {
	.name = "virtio-counter",
	.count = counter_count,
	.create = counter_create,
	.destroy = counter_destroy,
	.transport = counter_transport,
	.section = SNAP_FOURCC('T', 'C', 'N', 'T'),
	.codec = &counter_state_codec,
	.save = counter_save,
	.restore = counter_restore,
};
