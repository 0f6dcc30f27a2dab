// SPDX-License-Identifier: MIT
/*
 * The virtio 1.2 modern PCI transport (s4.1): configuration space and capabilities, the BAR 0
 * registers, the device status state machine (s2.1, s3.1), notifications and interrupts, reset
 * (s2.4). The model and the decisions are in virtio_pci.h.
 */
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_pci_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/virtio/virtqueue.h"
#include "lib/bytes.h"
#include "lib/log.h"

/* Status bits the driver may set (s2.1): everything but DEVICE_NEEDS_RESET, which is the device's. */
#define DRIVER_STATUS_BITS                                                                                     \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK | \
	 VIRTIO_STATUS_FAILED)

/* What the transport itself offers on top of the device's bits (virtio.h). */
#define TRANSPORT_FEATURES \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX))

/*
 * What a broken or hostile driver causes at register level: debug, rate-limited. Lock held. Messages
 * nobody sees do not count against the budget (nor show up in "N messages suppressed").
 */
#define vp_guest_error(t, ...)                                                \
	do {                                                                  \
		if (log_get_level() >= LOG_DEBUG && ratelimit_ok(&(t)->rl))   \
			pr_debug(__VA_ARGS__);                                \
	} while (0)

/* ---- KVM ioeventfds ---- */

static int kvm_ioeventfd(void *opaque, const struct kvm_ioeventfd *req)
{
	int vm_fd = *(const int *)opaque;

	return ioctl(vm_fd, KVM_IOEVENTFD, req) < 0 ? -errno : 0;
}

static const struct virtio_ioeventfd_ops kvm_ioeventfd_ops = { .ioeventfd = kvm_ioeventfd };

static uint64_t notify_offset(unsigned int q)
{
	return VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)VIRTIO_PCI_NOTIFY_MULTIPLIER * q;
}

/*
 * Bring KVM's ioeventfd for queue `q` in line with where it should be: on the queue's notify address
 * while the queue is subscribed and the BAR decodes, nowhere otherwise. 2-byte writes (Linux's
 * iowrite16; s4.1.5.2 "the 16-bit virtqueue index"); any other write reaches bar_access. Lock held.
 */
static void ioeventfd_sync(struct virtio_pci *t, struct vp_queue *q)
{
	uint64_t want = q->subscribed && t->bar_gpa != NO_GPA ? t->bar_gpa + notify_offset(q->index) : NO_GPA;
	struct kvm_ioeventfd req = { .len = 2, .fd = q->kick_fd };
	int ret;

	if (want == q->ioeventfd_gpa)
		return;
	if (q->ioeventfd_gpa != NO_GPA) {
		req.addr = q->ioeventfd_gpa;
		req.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
		ret = t->ioeventfd_ops->ioeventfd(t->ioeventfd_opaque, &req);
		if (ret)
			pr_warn("%s: queue %u: cannot remove the ioeventfd at 0x%llx: %s", t->ops->name, q->index,
				(unsigned long long)req.addr, strerror(-ret));
		q->ioeventfd_gpa = NO_GPA;
	}
	if (want == NO_GPA)
		return;
	req.addr = want;
	req.flags = 0;
	ret = t->ioeventfd_ops->ioeventfd(t->ioeventfd_opaque, &req);
	if (ret) {
		/* Still correct, only slower: the write exits to kiln and bar_access kicks the same eventfd. */
		pr_warn_ratelimited(&t->rl, "%s: queue %u: KVM_IOEVENTFD at 0x%llx: %s; notifications go through kiln",
				    t->ops->name, q->index, (unsigned long long)want, strerror(-ret));
		return;
	}
	q->ioeventfd_gpa = want;
}

/* ---- interrupts ---- */

static uint16_t vector_check(const struct virtio_pci *t, uint32_t v)
{
	return v < t->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* MSI-X `vector` when MSI-X is enabled (nothing for NO_VECTOR), else INTx with ISR bit `isr_bit`. Lock held. */
static void raise_irq(struct virtio_pci *t, uint16_t vector, uint8_t isr_bit)
{
	if (msix_enabled(t->msix)) {
		if (vector == VIRTIO_MSI_NO_VECTOR || msix_notify(t->msix, vector))
			return;
		/* MSI-X was disabled in between: INTx it is. */
	}
	t->isr |= isr_bit;
	pci_intx_set(&t->pdev, 1);
}

/* A configuration change notification (s4.1.5.4): ISR bit 1 first, whichever way it goes. Lock held. */
static void raise_config_irq(struct virtio_pci *t)
{
	t->isr |= VIRTIO_PCI_ISR_CONFIG;
	raise_irq(t, t->config_msix_vector, VIRTIO_PCI_ISR_CONFIG);
}

/* ---- helpers for devices (virtio.h) ---- */

void virtio_pci_lock(struct virtio_pci *t)
{
	pthread_mutex_lock(&t->lock);
}

void virtio_pci_unlock(struct virtio_pci *t)
{
	pthread_mutex_unlock(&t->lock);
}

struct virtqueue *virtio_pci_queue(struct virtio_pci *t, unsigned int q)
{
	if (q >= t->nr_queues || !t->live || !t->queues[q].ready)
		return NULL;
	return &t->queues[q].vq;
}

uint64_t virtio_pci_driver_features(struct virtio_pci *t)
{
	return t->driver_features;
}

void virtio_pci_notify_queue(struct virtio_pci *t, unsigned int q)
{
	struct vp_queue *vq;

	if (q >= t->nr_queues || !t->live || !t->queues[q].ready)
		return;
	vq = &t->queues[q];
	if (vq_should_notify(&vq->vq))
		raise_irq(t, vq->msix_vector, VIRTIO_PCI_ISR_QUEUE);
}

void vp_kick(struct virtio_pci *t, unsigned int q)
{
	uint64_t one = 1;

	/* EAGAIN only when the counter is about to overflow: a notification is pending anyway. */
	if (write(t->queues[q].kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_warn("%s: queue %u: eventfd write: %s", t->ops->name, q, strerror(errno));
}

void virtio_pci_kick_queue(struct virtio_pci *t, unsigned int q)
{
	if (q < t->nr_queues)
		vp_kick(t, q);
}

void virtio_pci_set_needs_reset(struct virtio_pci *t, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	if (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	t->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pr_warn_ratelimited(&t->reset_rl, "%s (PCI slot %d): device needs reset: %s", t->ops->name, t->pdev.slot,
			    reason);
	/* s2.1.2: with DRIVER_OK set, the device MUST send a configuration change notification. */
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		raise_config_irq(t);
}

void virtio_pci_config_changed(struct virtio_pci *t)
{
	t->config_generation++;
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		raise_config_irq(t);
}

/* ---- the event loop side ---- */

/* The guest notified queue `q` (through KVM's ioeventfd or bar_access). Loop thread. */
static void queue_event(void *opaque, int fd, uint32_t events)
{
	struct vp_queue *q = opaque;
	struct virtio_pci *t = q->t;
	uint64_t count;

	(void)events;
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		pr_warn("%s: queue %u: eventfd read: %s", t->ops->name, q->index, strerror(errno));
	pthread_mutex_lock(&t->lock);
	if (t->frozen) {
		q->kick_deferred = true;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	/* A stale event after a reset finds the queue unsubscribed: nothing to do. */
	if (q->subscribed && q->ready && t->live && !(t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
		t->ops->queue_notify(t->dev, q->index);
		if (q->vq.broken && !q->broken_reported) {
			q->broken_reported = true;
			virtio_pci_set_needs_reset(t, "queue %u: %s", q->index, q->vq.broken_reason);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

int vp_queue_subscribe(struct virtio_pci *t, struct vp_queue *q)
{
	int ret = loop_add(t->loop, q->kick_fd, EPOLLIN, queue_event, q);

	if (ret)
		return ret;
	q->subscribed = true;
	ioeventfd_sync(t, q);
	return 0;
}

void vp_queue_unsubscribe(struct virtio_pci *t, struct vp_queue *q)
{
	if (!q->subscribed)
		return;
	loop_del(t->loop, q->kick_fd);
	q->subscribed = false;
	ioeventfd_sync(t, q);
}

/* ---- status, reset, activation (s2.1, s2.4, s3.1) ---- */

static void queue_defaults(struct virtio_pci *t, struct vp_queue *q)
{
	q->size = t->ops->queue_max_size;
	q->msix_vector = VIRTIO_MSI_NO_VECTOR;
	q->enabled = false;
	q->desc = q->driver = q->device = 0;
	memset(&q->vq, 0, sizeof(q->vq));
	q->ready = false;
	q->broken_reported = false;
}

/* Device reset (s2.4, s4.1.4.3.1): back to the state after creation. Lock held. */
static void device_reset(struct virtio_pci *t)
{
	for (unsigned int i = 0; i < t->nr_queues; i++) {
		vp_queue_unsubscribe(t, &t->queues[i]);
		queue_defaults(t, &t->queues[i]);
	}
	if (t->ops->reset)
		t->ops->reset(t->dev);
	t->live = false;
	t->status = 0;
	t->driver_features = 0;
	t->driver_features_invalid = false;
	t->device_feature_select = t->driver_feature_select = 0;
	t->config_msix_vector = VIRTIO_MSI_NO_VECTOR;
	t->queue_select = 0;
	t->isr = 0;
	pci_intx_set(&t->pdev, 0);
}

/* Driver features FEATURES_OK accepts: offered ones, VERSION_1 among them, nothing beyond bit 63. */
bool vp_features_acceptable(const struct virtio_pci *t, uint64_t driver_features, bool invalid)
{
	return !invalid && !(driver_features & ~t->device_features) && (driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

/* DRIVER_OK (s3.1.1 step 8): set up every enabled queue, subscribe them, start the device. Lock held. */
static void activate(struct virtio_pci *t)
{
	bool event_idx = t->driver_features & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	bool indirect = t->driver_features & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	unsigned int i;
	int ret;

	if (!(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_pci_set_needs_reset(t, "DRIVER_OK without FEATURES_OK");
		return;
	}
	if (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	for (i = 0; i < t->nr_queues; i++) {
		struct vp_queue *q = &t->queues[i];

		if (!q->enabled)
			continue;
		ret = vq_init(&q->vq, t->mem, q->size, q->desc, q->driver, q->device, event_idx, indirect);
		if (ret) {
			virtio_pci_set_needs_reset(t,
						   "queue %u: rings not in guest RAM or misaligned (size %u, descriptors 0x%llx, "
						   "driver area 0x%llx, device area 0x%llx)",
						   i, q->size, (unsigned long long)q->desc, (unsigned long long)q->driver,
						   (unsigned long long)q->device);
			goto fail;
		}
		q->ready = true;
	}
	for (i = 0; i < t->nr_queues; i++) {
		struct vp_queue *q = &t->queues[i];

		if (!q->ready)
			continue;
		ret = vp_queue_subscribe(t, q);
		if (ret) {
			pr_err("%s: queue %u: cannot watch its eventfd: %s", t->ops->name, i, strerror(-ret));
			virtio_pci_set_needs_reset(t, "queue %u: kiln could not start it", i);
			goto fail;
		}
	}
	t->live = true;
	if (t->ops->activate) {
		ret = t->ops->activate(t->dev, t);
		if (ret) {
			virtio_pci_set_needs_reset(t, "device activation failed: %s", strerror(-ret));
			goto fail;
		}
	}
	return;
fail:
	t->live = false;
	for (i = 0; i < t->nr_queues; i++) {
		vp_queue_unsubscribe(t, &t->queues[i]);
		t->queues[i].ready = false;
	}
}

static void status_write(struct virtio_pci *t, uint8_t val)
{
	uint8_t old = t->status, want = val & DRIVER_STATUS_BITS, next;

	if (val == 0) {
		device_reset(t);
		return;
	}
	if (old & DRIVER_STATUS_BITS & ~want)
		vp_guest_error(t, "%s: driver tried to clear device status bits 0x%x (ignored)", t->ops->name,
			       old & DRIVER_STATUS_BITS & ~want);
	next = old | want;
	if ((next & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !vp_features_acceptable(t, t->driver_features, t->driver_features_invalid)) {
		/* s2.2.2: refuse by not setting FEATURES_OK; the driver reads it back and gives up. */
		vp_guest_error(t, "%s: refused driver features 0x%llx%s (device offers 0x%llx)", t->ops->name,
			       (unsigned long long)t->driver_features,
			       t->driver_features_invalid ? " and bits above 63" : "",
			       (unsigned long long)t->device_features);
		next &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	t->status = next;
	if ((next & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
		activate(t);
}

/* ---- common configuration (s4.1.4.3) ---- */

/* Fields and their widths; 64-bit fields as their two 32-bit halves (s4.1.3). */
static const struct {
	uint8_t off, width;
} common_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },        { VIRTIO_PCI_COMMON_GFSELECT, 4 },
	{ VIRTIO_PCI_COMMON_GF, 4 },       { VIRTIO_PCI_COMMON_MSIX, 2 },      { VIRTIO_PCI_COMMON_NUMQ, 2 },
	{ VIRTIO_PCI_COMMON_STATUS, 1 },   { VIRTIO_PCI_COMMON_CFGGENERATION, 1 }, { VIRTIO_PCI_COMMON_Q_SELECT, 2 },
	{ VIRTIO_PCI_COMMON_Q_SIZE, 2 },   { VIRTIO_PCI_COMMON_Q_MSIX, 2 },    { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2 },   { VIRTIO_PCI_COMMON_Q_DESCLO, 4 },  { VIRTIO_PCI_COMMON_Q_DESCHI, 4 },
	{ VIRTIO_PCI_COMMON_Q_AVAILLO, 4 }, { VIRTIO_PCI_COMMON_Q_AVAILHI, 4 }, { VIRTIO_PCI_COMMON_Q_USEDLO, 4 },
	{ VIRTIO_PCI_COMMON_Q_USEDHI, 4 }, { VIRTIO_PCI_COMMON_Q_NDATA, 2 },   { VIRTIO_PCI_COMMON_Q_RESET, 2 },
};

static bool common_field(uint64_t off, uint32_t len)
{
	for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++)
		if (common_fields[i].off == off && common_fields[i].width == len)
			return true;
	return false;
}

static struct vp_queue *selected_queue(struct virtio_pci *t)
{
	return t->queue_select < t->nr_queues ? &t->queues[t->queue_select] : NULL;
}

static uint32_t feature_word(uint64_t features, uint32_t select)
{
	return select < 2 ? (uint32_t)(features >> (32 * select)) : 0;
}

static uint32_t common_read(struct virtio_pci *t, uint32_t off)
{
	struct vp_queue *q = selected_queue(t);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return t->device_feature_select;
	case VIRTIO_PCI_COMMON_DF:
		return feature_word(t->device_features, t->device_feature_select);
	case VIRTIO_PCI_COMMON_GFSELECT:
		return t->driver_feature_select;
	case VIRTIO_PCI_COMMON_GF:
		return feature_word(t->driver_features, t->driver_feature_select);
	case VIRTIO_PCI_COMMON_MSIX:
		return t->config_msix_vector;
	case VIRTIO_PCI_COMMON_NUMQ:
		return t->nr_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return t->status;
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return t->config_generation;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return t->queue_select;
	default:
		break;
	}
	if (!q)
		return 0; /* queue_size 0: "unavailable" (s4.1.4.3.1) */
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		return q->size;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return q->msix_vector;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return q->enabled;
	case VIRTIO_PCI_COMMON_Q_NOFF:
	case VIRTIO_PCI_COMMON_Q_NDATA:
		return q->index;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		return (uint32_t)q->desc;
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		return (uint32_t)(q->desc >> 32);
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		return (uint32_t)q->driver;
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		return (uint32_t)(q->driver >> 32);
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return (uint32_t)q->device;
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return (uint32_t)(q->device >> 32);
	default:
		return 0; /* queue_reset: RING_RESET not offered */
	}
}

static void set_half(uint64_t *field, bool high, uint32_t val)
{
	if (high)
		*field = (*field & 0xffffffffull) | (uint64_t)val << 32;
	else
		*field = (*field & ~0xffffffffull) | val;
}

static void queue_write(struct virtio_pci *t, struct vp_queue *q, uint32_t off, uint32_t val)
{
	if (off == VIRTIO_PCI_COMMON_Q_MSIX) {
		q->msix_vector = vector_check(t, val);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_NOFF || off == VIRTIO_PCI_COMMON_Q_NDATA || off == VIRTIO_PCI_COMMON_Q_RESET)
		return; /* read-only for the driver, or not offered */
	if (q->enabled) {
		vp_guest_error(t, "%s: queue %u: write to 0x%x after queue_enable (ignored)", t->ops->name, q->index, off);
		return;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (!is_pow2(val) || val > t->ops->queue_max_size) {
			vp_guest_error(t, "%s: queue %u: queue_size %u refused (power of 2 up to %u)", t->ops->name,
				       q->index, val, t->ops->queue_max_size);
			return;
		}
		q->size = (uint16_t)val;
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (val != 1)
			return; /* s4.1.4.3.2: the driver MUST NOT write 0 */
		if (t->status & VIRTIO_STATUS_DRIVER_OK) {
			vp_guest_error(t, "%s: queue %u: enabled after DRIVER_OK (ignored)", t->ops->name, q->index);
			return;
		}
		q->enabled = true;
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		set_half(&q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI, val);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		set_half(&q->driver, off == VIRTIO_PCI_COMMON_Q_AVAILHI, val);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		set_half(&q->device, off == VIRTIO_PCI_COMMON_Q_USEDHI, val);
		return;
	default:
		return;
	}
}

static void common_write(struct virtio_pci *t, uint32_t off, uint32_t val)
{
	struct vp_queue *q;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		t->device_feature_select = val;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		t->driver_feature_select = val;
		return;
	case VIRTIO_PCI_COMMON_GF:
		if (t->status & VIRTIO_STATUS_FEATURES_OK) {
			vp_guest_error(t, "%s: driver_feature written after FEATURES_OK (ignored)", t->ops->name);
			return;
		}
		if (t->driver_feature_select < 2) {
			unsigned int shift = 32 * t->driver_feature_select;

			t->driver_features = (t->driver_features & ~(0xffffffffull << shift)) | (uint64_t)val << shift;
		} else if (val) {
			t->driver_features_invalid = true;
		}
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		t->config_msix_vector = vector_check(t, val);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		status_write(t, (uint8_t)val);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		t->queue_select = (uint16_t)val;
		return;
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return; /* read-only for the driver */
	default:
		break;
	}
	q = selected_queue(t);
	if (!q) {
		vp_guest_error(t, "%s: write to queue field 0x%x with queue_select %u out of range (ignored)", t->ops->name,
			       off, t->queue_select);
		return;
	}
	queue_write(t, q, off, val);
}

/* ---- BAR 0 ---- */

static bool inside(uint64_t off, uint32_t len, uint64_t base, uint64_t size)
{
	return off >= base && off - base < size && len <= size - (off - base);
}

/* A BAR access outside MSI-X and the notify region. Reads arrive zeroed. Lock held. */
static void bar_access_locked(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	const char *what = "no register";

	if (inside(off, len, VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_COMMON_SIZE)) {
		uint32_t reg = (uint32_t)(off - VIRTIO_PCI_COMMON_OFFSET);

		if (common_field(reg, len)) {
			if (is_write)
				common_write(t, reg, le_get(data, len));
			else
				le_put(data, common_read(t, reg), len);
			return;
		}
		what = "common configuration";
	} else if (inside(off, len, VIRTIO_PCI_ISR_OFFSET, VIRTIO_PCI_ISR_SIZE)) {
		if (!is_write) {
			/* s4.1.4.5: reading resets it and de-asserts INTx. */
			data[0] = t->isr;
			t->isr = 0;
			pci_intx_set(&t->pdev, 0);
			return;
		}
		what = "ISR status (read-only)";
	} else if (t->ops->config_size && inside(off, len, VIRTIO_PCI_DEVICE_OFFSET, t->ops->config_size)) {
		uint32_t reg = (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET);

		if (len == 1 || len == 2 || len == 4) {
			if (is_write && t->ops->config_write)
				t->ops->config_write(t->dev, reg, data, len);
			else if (!is_write && t->ops->config_read)
				t->ops->config_read(t->dev, reg, data, len);
			return;
		}
		what = "device configuration";
	} else if (!is_write && inside(off, len, VIRTIO_PCI_NOTIFY_OFFSET, notify_offset(t->nr_queues) -
									      VIRTIO_PCI_NOTIFY_OFFSET)) {
		return; /* notify addresses read 0 */
	}
	vp_guest_error(t, "%s: dropped %u-byte %s at BAR offset 0x%llx (%s)", t->ops->name, len,
		       is_write ? "write" : "read", (unsigned long long)off, what);
}

/* A write to queue q's notify address (s4.1.5.2): 1-4 bytes at notify_offset(q). */
static bool notify_target(const struct virtio_pci *t, uint64_t off, uint32_t len, unsigned int *q)
{
	uint64_t rel;

	if (off < VIRTIO_PCI_NOTIFY_OFFSET || len > VIRTIO_PCI_NOTIFY_MULTIPLIER)
		return false;
	rel = off - VIRTIO_PCI_NOTIFY_OFFSET;
	if (rel % VIRTIO_PCI_NOTIFY_MULTIPLIER || rel / VIRTIO_PCI_NOTIFY_MULTIPLIER >= t->nr_queues)
		return false;
	*q = (unsigned int)(rel / VIRTIO_PCI_NOTIFY_MULTIPLIER);
	return true;
}

static void vp_bar_access(struct pci_device *pdev, unsigned int bar, uint64_t off, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct virtio_pci *t = pdev->opaque;
	unsigned int q;

	if (!is_write)
		memset(data, 0, len);
	if (bar != VIRTIO_PCI_BAR || msix_bar_access(t->msix, bar, off, data, len, is_write))
		return;
	if (is_write && notify_target(t, off, len, &q)) {
		/* No ioeventfd caught it: same eventfd, same path on the loop thread. */
		vp_kick(t, q);
		return;
	}
	pthread_mutex_lock(&t->lock);
	bar_access_locked(t, off, data, len, is_write);
	pthread_mutex_unlock(&t->lock);
}

/* ---- configuration space ---- */

/*
 * The VIRTIO_PCI_CAP_PCI_CFG window (s4.1.4.9): an access to pci_cfg_data becomes a cap.length-byte
 * access at cap.offset of BAR cap.bar. Outside BAR 0, a length other than 1/2/4 or an unaligned
 * offset: nothing happens (reads leave pci_cfg_data as it was). cfg_lock held.
 */
static void pci_cfg_window(struct virtio_pci *t, bool is_write)
{
	struct pci_device *d = &t->pdev;
	unsigned int cap = t->pci_cfg_cap;
	uint8_t bar = pci_config_read8(d, cap + VIRTIO_PCI_CAP_BAR);
	uint32_t off = pci_config_read32(d, cap + VIRTIO_PCI_CAP_OFFSET);
	uint32_t len = pci_config_read32(d, cap + VIRTIO_PCI_CAP_LENGTH);
	uint8_t buf[4];

	if (bar != VIRTIO_PCI_BAR || (len != 1 && len != 2 && len != 4) || off % len ||
	    off > VIRTIO_PCI_BAR_SIZE - len) {
		pthread_mutex_lock(&t->lock);
		vp_guest_error(t, "%s: pci_cfg_data access with bar %u, offset 0x%x, length %u (dropped)", t->ops->name,
			       bar, off, len);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (is_write) {
		memcpy(buf, &d->config[cap + VIRTIO_PCI_CFG_CAP_DATA], len);
		vp_bar_access(d, bar, off, buf, len, true);
	} else {
		vp_bar_access(d, bar, off, buf, len, false);
		memcpy(&d->config[cap + VIRTIO_PCI_CFG_CAP_DATA], buf, len);
	}
}

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return a < b + blen && b < a + alen;
}

static void vp_config_read(struct pci_device *pdev, uint32_t off, uint32_t len)
{
	struct virtio_pci *t = pdev->opaque;

	if (overlaps(off, len, t->pci_cfg_cap + VIRTIO_PCI_CFG_CAP_DATA, 4))
		pci_cfg_window(t, false);
}

static void vp_config_write(struct pci_device *pdev, uint32_t off, uint32_t len)
{
	struct virtio_pci *t = pdev->opaque;

	msix_config_write(t->msix, off, len);
	if (overlaps(off, len, t->pci_cfg_cap + VIRTIO_PCI_CFG_CAP_DATA, 4))
		pci_cfg_window(t, true);
}

/* BAR 0 moved or stopped decoding: the ioeventfds follow (cfg_lock held). */
static void vp_bar_mapped(struct pci_device *pdev, unsigned int bar, uint64_t gpa)
{
	struct virtio_pci *t = pdev->opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&t->lock);
	t->bar_gpa = gpa == PCI_BAR_UNMAPPED ? NO_GPA : gpa;
	for (unsigned int i = 0; i < t->nr_queues; i++)
		ioeventfd_sync(t, &t->queues[i]);
	pthread_mutex_unlock(&t->lock);
}

static const struct pci_device_ops vp_pci_ops = {
	.bar_access = vp_bar_access,
	.config_read = vp_config_read,
	.config_write = vp_config_write,
	.bar_mapped = vp_bar_mapped,
};

/* One struct virtio_pci_cap (s4.1.4) of `cap_len` bytes describing [offset, offset + length) of BAR 0. */
static int add_virtio_cap(struct pci_device *d, uint8_t cfg_type, uint8_t cap_len, uint32_t offset, uint32_t length)
{
	int cap = pci_add_capability(d, PCI_CAP_ID_VNDR, cap_len);

	if (cap < 0)
		return cap;
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_CAP_LEN, cap_len, 1);
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_CAP_CFG_TYPE, cfg_type, 1);
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_BAR, 1);
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_CAP_OFFSET, offset, 4);
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_CAP_LENGTH, length, 4);
	return cap;
}

static int add_capabilities(struct virtio_pci *t)
{
	struct pci_device *d = &t->pdev;
	int cap;

	cap = add_virtio_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_COMMON_OFFSET,
			     VIRTIO_PCI_COMMON_SIZE);
	if (cap < 0)
		return cap;
	cap = add_virtio_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_ISR_OFFSET, VIRTIO_PCI_ISR_SIZE);
	if (cap < 0)
		return cap;
	if (t->ops->config_size) {
		cap = add_virtio_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_DEVICE_OFFSET,
				     (uint32_t)t->ops->config_size);
		if (cap < 0)
			return cap;
	}
	cap = add_virtio_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_SIZE, VIRTIO_PCI_NOTIFY_OFFSET,
			     (uint32_t)(notify_offset(t->nr_queues) - VIRTIO_PCI_NOTIFY_OFFSET));
	if (cap < 0)
		return cap;
	pci_config_put(d->config, (uint32_t)cap + VIRTIO_PCI_NOTIFY_CAP_MULT, VIRTIO_PCI_NOTIFY_MULTIPLIER, 4);
	/* The configuration access window: bar, offset, length and data are the driver's to write. */
	cap = add_virtio_cap(d, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_SIZE, 0, 0);
	if (cap < 0)
		return cap;
	t->pci_cfg_cap = (unsigned int)cap;
	pci_config_put(d->wmask, (uint32_t)cap + VIRTIO_PCI_CAP_BAR, 0xff, 1);
	pci_config_put(d->wmask, (uint32_t)cap + VIRTIO_PCI_CAP_OFFSET, 0xffffffff, 4);
	pci_config_put(d->wmask, (uint32_t)cap + VIRTIO_PCI_CAP_LENGTH, 0xffffffff, 4);
	pci_config_put(d->wmask, (uint32_t)cap + VIRTIO_PCI_CFG_CAP_DATA, 0xffffffff, 4);
	return 0;
}

/* ---- lifetime ---- */

static bool ops_valid(const struct virtio_device_ops *ops)
{
	return ops && ops->name && ops->queue_notify && ops->nr_queues >= 1 && ops->nr_queues <= VIRTIO_PCI_MAX_QUEUES &&
	       is_pow2(ops->queue_max_size) && ops->queue_max_size <= VQ_MAX_SIZE &&
	       ops->config_size <= VIRTIO_PCI_DEVICE_MAX_SIZE && ops->device_id < 0x40;
}

struct virtio_pci *virtio_pci_create(const struct virtio_pci_params *p)
{
	const struct virtio_device_ops *ops = p->ops;
	struct pci_device_info info;
	struct virtio_pci *t;
	unsigned int i;
	int err, ret;

	if (!p->pci || !p->rt || !p->loop || !p->mem || !ops_valid(ops) || (!p->ioeventfd_ops && p->vm_fd < 0) ||
	    (p->features & ~ops->features)) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->queues = calloc(ops->nr_queues, sizeof(*t->queues));
	if (!t->queues) {
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < ops->nr_queues; i++)
		t->queues[i].kick_fd = -1;
	err = pthread_mutex_init(&t->lock, NULL);
	if (err) {
		free(t->queues);
		free(t);
		errno = err;
		return NULL;
	}
	t->ops = ops;
	t->dev = p->dev;
	t->loop = p->loop;
	t->mem = p->mem;
	t->vm_fd = p->vm_fd;
	t->ioeventfd_ops = p->ioeventfd_ops ? p->ioeventfd_ops : &kvm_ioeventfd_ops;
	t->ioeventfd_opaque = p->ioeventfd_ops ? p->ioeventfd_opaque : &t->vm_fd;
	t->nr_queues = ops->nr_queues;
	t->nr_vectors = ops->nr_queues + 1; /* one per queue and one for configuration changes */
	t->device_features = (p->features ? p->features : ops->features) | TRANSPORT_FEATURES;
	t->bar_gpa = NO_GPA;
	t->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	t->reset_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	for (i = 0; i < t->nr_queues; i++) {
		struct vp_queue *q = &t->queues[i];

		q->t = t;
		q->index = i;
		q->ioeventfd_gpa = NO_GPA;
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0) {
			err = errno;
			goto fail;
		}
		queue_defaults(t, q);
	}
	t->config_msix_vector = VIRTIO_MSI_NO_VECTOR;

	info = (struct pci_device_info){
		.name = ops->name,
		.vendor = VIRTIO_PCI_VENDOR_ID,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + ops->device_id),
		.subsystem_vendor = VIRTIO_PCI_VENDOR_ID,
		.subsystem = VIRTIO_PCI_SUBSYSTEM_ID,
		.class_code = ops->pci_class,
		.revision = VIRTIO_PCI_REVISION,
		.intx = true,
	};
	pci_device_init(&t->pdev, &info, &vp_pci_ops, t);
	ret = pci_device_add_bar(&t->pdev, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, PCI_BAR_MEM32, false);
	if (ret) {
		err = -ret;
		goto fail;
	}
	ret = add_capabilities(t);
	if (ret) {
		err = -ret;
		goto fail;
	}
	t->msix = msix_create(&t->pdev, p->rt, t->nr_vectors, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFFSET,
			      VIRTIO_PCI_MSIX_PBA_OFFSET);
	if (!t->msix) {
		err = errno;
		goto fail;
	}
	ret = pci_register_device(p->pci, &t->pdev, p->slot);
	if (ret < 0) {
		err = -ret;
		goto fail;
	}
	return t;
fail:
	msix_destroy(t->msix);
	for (i = 0; i < ops->nr_queues; i++)
		if (t->queues[i].kick_fd >= 0)
			close(t->queues[i].kick_fd);
	pthread_mutex_destroy(&t->lock);
	free(t->queues);
	free(t);
	errno = err;
	return NULL;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	for (unsigned int i = 0; i < t->nr_queues; i++) {
		/* The loop is gone (see virtio_pci.h): only KVM's side is left to undo. */
		t->queues[i].subscribed = false;
		ioeventfd_sync(t, &t->queues[i]);
	}
	pthread_mutex_unlock(&t->lock);
	msix_destroy(t->msix);
	for (unsigned int i = 0; i < t->nr_queues; i++)
		close(t->queues[i].kick_fd);
	pthread_mutex_destroy(&t->lock);
	free(t->queues);
	free(t);
}

struct pci_device *virtio_pci_device(struct virtio_pci *t)
{
	return &t->pdev;
}

uint8_t virtio_pci_status(struct virtio_pci *t)
{
	uint8_t status;

	pthread_mutex_lock(&t->lock);
	status = t->status;
	pthread_mutex_unlock(&t->lock);
	return status;
}

struct msix *virtio_pci_msix(struct virtio_pci *t)
{
	return t->msix;
}
