/* SPDX-License-Identifier: MIT */
/*
 * A test-side virtio driver over fake_vmm.h, shared by the device tests and fuzz targets so that each
 * holds only what it tests: it brings a virtio PCI device up as Linux's virtio_pci_modern does (virtio
 * 1.2 s3.1.1: reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK, queues through the common
 * configuration, DRIVER_OK), lays chains of readable and writable buffers in the split rings in guest
 * RAM (s2.7.5, directly or through an indirect table, s2.7.5.3), offers them (s2.7.13), kicks (KVM's
 * ioeventfd, s4.1.4.4) and waits for the used ring (s2.7.8) by running the device event loop itself
 * (fake_vmm_wait_step): its fake_vmm has a loop and no loop thread.
 *
 * The steps are separate so that a test can stop or misbehave between any two of them (a hostile driver);
 * fake_vmm.h's register accessors stay at hand for that, on the driver's `fv`.
 *
 * Failed register accesses are test failures, as in fake_vmm.h; what a test asserts on is returned.
 */
#ifndef KILN_TESTS_LIB_FAKE_DRIVER_H
#define KILN_TESTS_LIB_FAKE_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "fake_vmm.h"

#define FAKE_DRIVER_MAX_QUEUES 4

#define FAKE_DRIVER_STATUS_FEATURES (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK)
#define FAKE_DRIVER_STATUS_LIVE (FAKE_DRIVER_STATUS_FEATURES | VIRTIO_STATUS_DRIVER_OK)

/* One split virtqueue as the driver set it up. */
struct fake_queue {
	uint64_t desc, avail, used; /* GPAs of the descriptor table, available ring, used ring */
	uint16_t size;
	uint16_t avail_idx;         /* the available ring's idx as the driver last published it */
	uint16_t next_desc;         /* where fake_driver_submit lays its next chain */
};

/* The driver of one virtio PCI function. The test owns it (usually inside its fixture). */
struct fake_driver {
	struct fake_virtio fv;      /* its registers */
	unsigned int slot;          /* its PCI slot on bus 0 */
	uint64_t offered;           /* device features, as fake_driver_begin read them */
	uint64_t features;          /* what the driver last wrote (fake_driver_accept) */
	struct fake_queue q[FAKE_DRIVER_MAX_QUEUES];
};

/* One buffer of a chain: `len` bytes at `gpa`, device-writable when `write` (s2.7.5). */
struct fake_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/*
 * Take `pdev` in `slot` of `vm`: enable memory decoding and bus mastering (fake_vmm_pci_enable) and find
 * its BAR 0. `d` is reset to nothing negotiated and no queue set up.
 */
void fake_driver_attach(struct fake_driver *d, struct fake_vmm *vm, struct pci_device *pdev, unsigned int slot);

/* s3.1.1 step 1: reset the device (s2.4, device_status 0). Returns device_status read back: 0 once it is done. */
uint8_t fake_driver_reset(struct fake_driver *d);

/* s3.1.1 steps 2-4, after a reset: ACKNOWLEDGE, DRIVER, the 64 feature bits offered read. Returns them
 * (also in d->offered). */
uint64_t fake_driver_begin(struct fake_driver *d);

/* s3.1.1 steps 4-6: write `features` (not masked: a test may offer what the device lacks), set FEATURES_OK;
 * returns device_status read back (FEATURES_OK stays clear when the device refused them). */
uint8_t fake_driver_accept(struct fake_driver *d, uint64_t features);

/*
 * MSI-X on (PCI 3.0 s6.8.2): enable it in the capability and program and unmask vectors 0..nr-1, vector v
 * with message address `addr`, data `data + v`. Returns 0, or -ENODEV when the function has no MSI-X
 * capability (nothing written).
 */
int fake_driver_msix_on(struct fake_driver *d, unsigned int nr, uint64_t addr, uint32_t data)
	__attribute__((warn_unused_result));

/*
 * Set queue `q` up (s4.1.5.1.3): zero its rings in guest RAM (sized for `size`, s2.7), give the device
 * size and ring addresses, queue_msix_vector `vector` (VIRTIO_MSI_NO_VECTOR for none), then enable it.
 * The driver's indexes start at 0. Returns the vector the device reports back (NO_VECTOR: refused).
 */
uint16_t fake_driver_queue(struct fake_driver *d, unsigned int q, uint16_t size, uint64_t desc, uint64_t avail,
			   uint64_t used, uint16_t vector);

/* s3.1.1 step 8: DRIVER_OK, the device is live. Returns device_status read back. */
uint8_t fake_driver_live(struct fake_driver *d);

/*
 * Write `n` (>= 1) segments as one chain into queue `q`'s descriptor table, from entry `head` on (wrapping at
 * the queue size), each linked to the next with NEXT; nothing offered yet. Returns `head`.
 */
uint16_t fake_driver_chain(struct fake_driver *d, unsigned int q, uint16_t head, const struct fake_seg *segs,
			   unsigned int n);

/* Offer the chain at `head` (s2.7.13): the next available ring slot, then idx published. */
void fake_driver_offer(struct fake_driver *d, unsigned int q, uint16_t head);

/* fake_driver_chain at the queue's next free entries, then offer it. Returns the head. */
uint16_t fake_driver_submit(struct fake_driver *d, unsigned int q, const struct fake_seg *segs, unsigned int n);

/*
 * The same through an indirect table (s2.7.5.3; the driver must have negotiated VIRTIO_F_INDIRECT_DESC): the
 * `n` segments as a table at `table` in guest RAM, one descriptor naming it in the ring. Returns the head.
 */
uint16_t fake_driver_submit_indirect(struct fake_driver *d, unsigned int q, uint64_t table,
				     const struct fake_seg *segs, unsigned int n);

/*
 * The guest's notify of queue `q` as KVM delivers it: a write to the ioeventfd assigned at the queue's notify
 * address (s4.1.4.4). Returns 0, -ENOENT when no ioeventfd is assigned there, or -errno of the write.
 */
int fake_driver_kick(struct fake_driver *d, unsigned int q) __attribute__((warn_unused_result));

/* Queue `q`'s used ring idx (s2.7.8), and its entry `i` (taken modulo the queue size). */
uint16_t fake_driver_used_idx(struct fake_driver *d, unsigned int q);
struct virtq_used_elem fake_driver_used_elem(struct fake_driver *d, unsigned int q, uint16_t i);

/*
 * Run the device event loop until queue `q`'s used idx is `idx` (at most FAKE_VMM_WAIT_MS). Returns 0, or
 * -ETIMEDOUT with the index elsewhere.
 */
int fake_driver_wait_used(struct fake_driver *d, unsigned int q, uint16_t idx) __attribute__((warn_unused_result));

#endif
