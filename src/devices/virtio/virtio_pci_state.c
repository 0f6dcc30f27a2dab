// SPDX-License-Identifier: MIT
/*
 * The virtio PCI transport's snapshot half (virtio_pci.h "Snapshot state"): freezing queue
 * notifications while a paused VM is saved, the transport state out of and back into a transport
 * (section VIRT), and its codec table. The register side is virtio_pci.c; both share
 * virtio_pci_internal.h.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_pci_internal.h"
#include "devices/virtio/virtqueue.h"
#include "lib/log.h"

/* ---- snapshot state ---- */

void virtio_pci_freeze(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->lock);
	t->frozen = true;
	pthread_mutex_unlock(&t->lock);
}

void virtio_pci_thaw(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->lock);
	t->frozen = false;
	for (unsigned int i = 0; i < t->nr_queues; i++) {
		if (t->queues[i].kick_deferred) {
			t->queues[i].kick_deferred = false;
			vp_kick(t, i);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void virtio_pci_save(struct virtio_pci *t, struct virtio_pci_state *st)
{
	pthread_mutex_lock(&t->lock);
	memset(st, 0, sizeof(*st));
	st->device_id = t->ops->device_id;
	st->nr_queues = t->nr_queues;
	st->device_features = t->device_features;
	st->driver_features = t->driver_features;
	st->driver_features_invalid = t->driver_features_invalid;
	st->device_feature_select = t->device_feature_select;
	st->driver_feature_select = t->driver_feature_select;
	st->config_msix_vector = t->config_msix_vector;
	st->status = t->status;
	st->config_generation = t->config_generation;
	st->queue_select = t->queue_select;
	st->isr = t->isr;
	st->live = t->live;
	for (unsigned int i = 0; i < t->nr_queues; i++) {
		const struct vp_queue *q = &t->queues[i];
		struct virtio_pci_queue_state *qs = &st->queues[i];

		qs->size = q->size;
		qs->msix_vector = q->msix_vector;
		qs->enabled = q->enabled;
		qs->desc = q->desc;
		qs->driver = q->driver;
		qs->device = q->device;
		qs->ready = q->ready;
		qs->broken_reported = q->broken_reported;
		if (q->ready)
			vq_save_indices(&q->vq, &qs->vq);
	}
	pthread_mutex_unlock(&t->lock);
}

/* Could the transport have reached `st`? Lock held (for the ops' constants only). */
static int state_check(const struct virtio_pci *t, const struct virtio_pci_state *st, char *err, size_t err_size)
{
	const char *name = t->ops->name;

	if (st->device_id != t->ops->device_id || st->nr_queues != t->nr_queues ||
	    st->device_features != t->device_features) {
		errmsg_set(err, err_size,
			   "%s: the snapshot's device (virtio ID %u, %u queues, features 0x%llx) is not this one "
			   "(ID %u, %u queues, features 0x%llx)",
			   name, st->device_id, st->nr_queues, (unsigned long long)st->device_features, t->ops->device_id,
			   t->nr_queues, (unsigned long long)t->device_features);
		return -EINVAL;
	}
	if ((st->config_msix_vector != VIRTIO_MSI_NO_VECTOR && st->config_msix_vector >= t->nr_vectors) ||
	    (st->live && (!(st->status & VIRTIO_STATUS_DRIVER_OK) || !(st->status & VIRTIO_STATUS_FEATURES_OK))) ||
	    ((st->status & VIRTIO_STATUS_FEATURES_OK) &&
	     !vp_features_acceptable(t, st->driver_features, st->driver_features_invalid)) ||
	    (st->isr & ~(VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG))) {
		errmsg_set(err, err_size, "%s: transport state the device cannot reach (status 0x%x, features 0x%llx)", name,
			   st->status, (unsigned long long)st->driver_features);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < t->nr_queues; i++) {
		const struct virtio_pci_queue_state *qs = &st->queues[i];

		if (!is_pow2(qs->size) || qs->size > t->ops->queue_max_size ||
		    (qs->msix_vector != VIRTIO_MSI_NO_VECTOR && qs->msix_vector >= t->nr_vectors) ||
		    (qs->ready && (!st->live || !qs->enabled)) || (st->live && qs->enabled && !qs->ready)) {
			errmsg_set(err, err_size, "%s: queue %u: state the device cannot reach (size %u, vector %u)", name, i,
				   qs->size, qs->msix_vector);
			return -EINVAL;
		}
	}
	return 0;
}

int virtio_pci_restore(struct virtio_pci *t, const struct virtio_pci_state *st, char *err, size_t err_size)
{
	bool event_idx = st->driver_features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	bool indirect = st->driver_features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	unsigned int i;
	int ret;

	pthread_mutex_lock(&t->lock);
	ret = state_check(t, st, err, err_size);
	if (ret)
		goto out;
	t->driver_features = st->driver_features;
	t->driver_features_invalid = st->driver_features_invalid;
	t->device_feature_select = st->device_feature_select;
	t->driver_feature_select = st->driver_feature_select;
	t->config_msix_vector = st->config_msix_vector;
	t->status = st->status;
	t->config_generation = st->config_generation;
	t->queue_select = st->queue_select;
	t->isr = st->isr;
	for (i = 0; i < t->nr_queues; i++) {
		const struct virtio_pci_queue_state *qs = &st->queues[i];
		struct vp_queue *q = &t->queues[i];

		q->size = qs->size;
		q->msix_vector = qs->msix_vector;
		q->enabled = qs->enabled;
		q->desc = qs->desc;
		q->driver = qs->driver;
		q->device = qs->device;
		q->broken_reported = qs->broken_reported;
		if (!qs->ready)
			continue;
		if (vq_init(&q->vq, t->mem, q->size, q->desc, q->driver, q->device, event_idx, indirect) ||
		    vq_restore_indices(&q->vq, &qs->vq)) {
			errmsg_set(err, err_size, "%s: queue %u: rings outside guest RAM or indices out of range", t->ops->name,
				   i);
			ret = -EINVAL;
			goto fail;
		}
		q->ready = true;
	}
	if (!st->live)
		goto out;
	for (i = 0; i < t->nr_queues; i++) {
		if (!t->queues[i].ready)
			continue;
		ret = vp_queue_subscribe(t, &t->queues[i]);
		if (ret) {
			errmsg_set(err, err_size, "%s: queue %u: cannot watch its eventfd: %s", t->ops->name, i,
				   strerror(-ret));
			goto fail;
		}
	}
	t->live = true;
	if (t->ops->activate) {
		ret = t->ops->activate(t->dev, t);
		if (ret) {
			errmsg_set(err, err_size, "%s: cannot activate the device: %s", t->ops->name, strerror(-ret));
			goto fail;
		}
	}
	for (i = 0; i < t->nr_queues; i++)
		if (t->queues[i].ready)
			vp_kick(t, i);
	goto out;
fail:
	t->live = false;
	for (i = 0; i < t->nr_queues; i++) {
		vp_queue_unsubscribe(t, &t->queues[i]);
		t->queues[i].ready = false;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/*
 * A queue: its configuration, the device-side indices, then one byte of flags and 5 reserved bytes
 * (40 bytes, so that a later version may add fields to a queue without moving what follows).
 */
static const struct codec_field virtio_pci_queue_state_fields[] = {
	CODEC_UINT(struct virtio_pci_queue_state, desc, 8, 1),
	CODEC_UINT(struct virtio_pci_queue_state, driver, 8, 1),
	CODEC_UINT(struct virtio_pci_queue_state, device, 8, 1),
	CODEC_UINT(struct virtio_pci_queue_state, size, 2, 1),
	CODEC_UINT(struct virtio_pci_queue_state, msix_vector, 2, 1),
	CODEC_UINT(struct virtio_pci_queue_state, vq.last_avail_idx, 2, 1),
	CODEC_UINT(struct virtio_pci_queue_state, vq.used_idx, 2, 1),
	CODEC_UINT(struct virtio_pci_queue_state, vq.signalled_used, 2, 1),
	CODEC_FLAGS(struct virtio_pci_queue_state, "flags", 1, CODEC_BIT(struct virtio_pci_queue_state, enabled),
		    CODEC_BIT(struct virtio_pci_queue_state, ready),
		    CODEC_BIT(struct virtio_pci_queue_state, broken_reported),
		    CODEC_BIT(struct virtio_pci_queue_state, vq.broken)),
	CODEC_PAD(5, 1),
};

static const struct codec_table virtio_pci_queue_state_codec = CODEC_TABLE(
	struct virtio_pci_queue_state, "virtio queue state", 1, 1, virtio_pci_queue_state_fields, NULL);

static const struct codec_field virtio_pci_state_fields[] = {
	CODEC_UINT(struct virtio_pci_state, device_id, 2, 1),
	CODEC_UINT(struct virtio_pci_state, config_msix_vector, 2, 1),
	CODEC_RANGE(struct virtio_pci_state, nr_queues, 4, 1, 1, VIRTIO_PCI_MAX_QUEUES),
	CODEC_UINT(struct virtio_pci_state, device_features, 8, 1),
	CODEC_UINT(struct virtio_pci_state, driver_features, 8, 1),
	CODEC_UINT(struct virtio_pci_state, device_feature_select, 4, 1),
	CODEC_UINT(struct virtio_pci_state, driver_feature_select, 4, 1),
	CODEC_BOOL(struct virtio_pci_state, driver_features_invalid, 1),
	CODEC_UINT(struct virtio_pci_state, status, 1, 1),
	CODEC_UINT(struct virtio_pci_state, config_generation, 1, 1),
	CODEC_UINT(struct virtio_pci_state, isr, 1, 1),
	CODEC_UINT(struct virtio_pci_state, queue_select, 2, 1),
	CODEC_BOOL(struct virtio_pci_state, live, 1),
	CODEC_PAD(1, 1),
	CODEC_VARRAY(struct virtio_pci_state, queues, nr_queues, &virtio_pci_queue_state_codec, 1),
};

const struct codec_table virtio_pci_state_codec =
	CODEC_TABLE(struct virtio_pci_state, "virtio transport state", 1, 1, virtio_pci_state_fields, NULL);
