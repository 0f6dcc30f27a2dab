/* SPDX-License-Identifier: MIT */
/*
 * The virtio PCI transport's private half, shared by its two files only: virtio_pci.c (registers,
 * status, notifications, interrupts) and virtio_pci_state.c (freeze/thaw, save/restore, the VIRT
 * section's encoding). Nothing else includes this: devices and the VMM see struct virtio_pci as the
 * opaque handle of virtio_pci.h.
 */
#ifndef KILN_DEVICES_VIRTIO_VIRTIO_PCI_INTERNAL_H
#define KILN_DEVICES_VIRTIO_VIRTIO_PCI_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "lib/log.h"

#define NO_GPA UINT64_MAX

struct vp_queue {
	struct virtio_pci *t;
	unsigned int index;
	/* The driver's view (common configuration, s4.1.4.3), reset to defaults by a device reset. */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	/* The device's side, from DRIVER_OK to reset. */
	struct virtqueue vq;
	bool ready;            /* vq_init accepted the rings */
	bool subscribed;       /* kick_fd is on the event loop */
	bool broken_reported;
	bool kick_deferred;    /* a notification arrived while frozen */
	int kick_fd;           /* eventfd the guest's notifications land on; lives as long as the device */
	uint64_t ioeventfd_gpa; /* where KVM has kick_fd as an ioeventfd, or NO_GPA */
};

struct virtio_pci {
	struct pci_device pdev;
	pthread_mutex_t lock;
	const struct virtio_device_ops *ops;
	void *dev;
	struct loop *loop;
	const struct guest_memory *mem;
	const struct virtio_ioeventfd_ops *ioeventfd_ops;
	void *ioeventfd_opaque;
	int vm_fd;
	struct msix *msix;
	unsigned int nr_vectors;
	unsigned int pci_cfg_cap; /* config offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	uint64_t bar_gpa;         /* where BAR 0 decodes now, or NO_GPA (copied from bar_mapped) */

	/* Common configuration (s4.1.4.3). */
	uint64_t device_features;
	uint64_t driver_features;
	bool driver_features_invalid; /* a non-zero word beyond bit 63 */
	uint32_t device_feature_select, driver_feature_select;
	uint16_t config_msix_vector;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	bool live;                /* activated at DRIVER_OK, until reset */
	bool frozen;              /* virtio_pci_freeze: queue events wait for thaw */

	struct ratelimit rl;       /* register-level guest errors (debug) and host-side warnings */
	struct ratelimit reset_rl; /* DEVICE_NEEDS_RESET warnings: never crowded out by the above */
	unsigned int nr_queues;
	struct vp_queue *queues;
};

static inline bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/* Write queue `q`'s eventfd, as a guest notification does (q < nr_queues). */
void vp_kick(struct virtio_pci *t, unsigned int q);

/* Put queue `q`'s eventfd on the event loop and its ioeventfd on its notify address. 0 or -errno. Lock held. */
int vp_queue_subscribe(struct virtio_pci *t, struct vp_queue *q) __attribute__((warn_unused_result));

/* Undo vp_queue_subscribe (nothing when not subscribed). Lock held. */
void vp_queue_unsubscribe(struct virtio_pci *t, struct vp_queue *q);

/* Driver features FEATURES_OK accepts: offered ones, VERSION_1 among them, nothing beyond bit 63 (s2.2). */
bool vp_features_acceptable(const struct virtio_pci *t, uint64_t driver_features, bool invalid);

#endif
