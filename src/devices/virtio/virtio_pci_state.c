// SPDX-License-Identifier: MIT
/*
 * The virtio PCI transport's snapshot half (virtio_pci.h "Snapshot state"): freezing queue
 * notifications while a paused VM is saved, the transport state out of and back into a transport
 * (section VIRT), and its encoding. The register side is virtio_pci.c; both share
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

void virtio_pci_state_encode(const struct virtio_pci_state *st, struct snap_enc *e)
{
	unsigned int n = st->nr_queues <= VIRTIO_PCI_MAX_QUEUES ? st->nr_queues : 0;

	snap_put_u16(e, st->device_id);
	snap_put_u16(e, st->config_msix_vector);
	snap_put_u32(e, n);
	snap_put_u64(e, st->device_features);
	snap_put_u64(e, st->driver_features);
	snap_put_u32(e, st->device_feature_select);
	snap_put_u32(e, st->driver_feature_select);
	snap_put_u8(e, st->driver_features_invalid);
	snap_put_u8(e, st->status);
	snap_put_u8(e, st->config_generation);
	snap_put_u8(e, st->isr);
	snap_put_u16(e, st->queue_select);
	snap_put_u8(e, st->live);
	snap_put_u8(e, 0);
	for (unsigned int i = 0; i < n; i++) {
		const struct virtio_pci_queue_state *qs = &st->queues[i];

		snap_put_u64(e, qs->desc);
		snap_put_u64(e, qs->driver);
		snap_put_u64(e, qs->device);
		snap_put_u16(e, qs->size);
		snap_put_u16(e, qs->msix_vector);
		snap_put_u16(e, qs->vq.last_avail_idx);
		snap_put_u16(e, qs->vq.used_idx);
		snap_put_u16(e, qs->vq.signalled_used);
		snap_put_u8(e, (uint8_t)(qs->enabled | qs->ready << 1 | qs->broken_reported << 2 | qs->vq.broken << 3));
		snap_put_u8(e, 0);
		snap_put_u32(e, 0);
	}
}

int virtio_pci_state_decode(struct virtio_pci_state *st, const void *data, size_t len, uint32_t version,
			    char *err, size_t err_size)
{
	struct snap_dec d;
	uint8_t invalid, live, pad;

	memset(st, 0, sizeof(*st));
	if (version != VIRTIO_PCI_STATE_VERSION) {
		errmsg_set(err, err_size, "virtio transport state version %u is not known to this kiln (%u)", version,
			   VIRTIO_PCI_STATE_VERSION);
		return -ENOTSUP;
	}
	snap_dec_init(&d, data, len);
	st->device_id = snap_get_u16(&d);
	st->config_msix_vector = snap_get_u16(&d);
	st->nr_queues = snap_get_u32(&d);
	st->device_features = snap_get_u64(&d);
	st->driver_features = snap_get_u64(&d);
	st->device_feature_select = snap_get_u32(&d);
	st->driver_feature_select = snap_get_u32(&d);
	invalid = snap_get_u8(&d);
	st->status = snap_get_u8(&d);
	st->config_generation = snap_get_u8(&d);
	st->isr = snap_get_u8(&d);
	st->queue_select = snap_get_u16(&d);
	live = snap_get_u8(&d);
	pad = snap_get_u8(&d);
	if (d.short_read || st->nr_queues == 0 || st->nr_queues > VIRTIO_PCI_MAX_QUEUES ||
	    len != virtio_pci_state_size(st->nr_queues) || invalid > 1 || live > 1 || pad) {
		errmsg_set(err, err_size, "virtio transport state: %zu bytes, malformed", len);
		return -EINVAL;
	}
	st->driver_features_invalid = invalid;
	st->live = live;
	for (unsigned int i = 0; i < st->nr_queues; i++) {
		struct virtio_pci_queue_state *qs = &st->queues[i];
		uint8_t flags;

		qs->desc = snap_get_u64(&d);
		qs->driver = snap_get_u64(&d);
		qs->device = snap_get_u64(&d);
		qs->size = snap_get_u16(&d);
		qs->msix_vector = snap_get_u16(&d);
		qs->vq.last_avail_idx = snap_get_u16(&d);
		qs->vq.used_idx = snap_get_u16(&d);
		qs->vq.signalled_used = snap_get_u16(&d);
		flags = snap_get_u8(&d);
		pad = snap_get_u8(&d);
		if ((flags & ~0xfu) || pad || snap_get_u32(&d)) {
			errmsg_set(err, err_size, "virtio transport state: queue %u: unknown flags", i);
			return -EINVAL;
		}
		qs->enabled = flags & 1;
		qs->ready = flags & 2;
		qs->broken_reported = flags & 4;
		qs->vq.broken = flags & 8;
	}
	if (!snap_dec_done(&d)) {
		errmsg_set(err, err_size, "virtio transport state: %zu bytes, malformed", len);
		return -EINVAL;
	}
	return 0;
}
