/* SPDX-License-Identifier: MIT */
/*
 * What a virtio device implements and what it may ask of its transport (virtio 1.2 s2, s3).
 *
 * A device (virtio-rng, later blk, net...) is a `struct virtio_device_ops` table plus its own state; the
 * transport (virtio_pci.h) owns everything the specification puts in "Basic Facilities of a Virtio
 * Device": the device status field, feature negotiation, the virtqueues' configuration and rings,
 * notifications in both directions, and reset. The device sees only its device-specific
 * configuration space and the buffers on its virtqueues.
 *
 * Every callback runs with the transport's device lock held, on a vCPU thread (config_read,
 * config_write, activate, reset: the guest touched the transport) or on the device event loop thread
 * (queue_notify: the guest notified a queue). The helpers below must be called with that lock held:
 * from inside a callback, or between virtio_pci_lock() and virtio_pci_unlock() from any other thread.
 */
#ifndef KILN_DEVICES_VIRTIO_VIRTIO_H
#define KILN_DEVICES_VIRTIO_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

/* Device status bits (s2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/*
 * Reserved feature bits (s6), as bit numbers. The transport offers VERSION_1, RING_INDIRECT_DESC and
 * RING_EVENT_IDX on top of the device's own bits; it never offers the others: ACCESS_PLATFORM (kiln
 * has no IOMMU: the device reads guest physical addresses), RING_PACKED, IN_ORDER, ORDER_PLATFORM,
 * SR_IOV, NOTIFICATION_DATA, NOTIF_CONFIG_DATA, RING_RESET (queue_reset is not implemented).
 */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_ORDER_PLATFORM 36
#define VIRTIO_F_SR_IOV 37
#define VIRTIO_F_NOTIFICATION_DATA 38
#define VIRTIO_F_NOTIF_CONFIG_DATA 39
#define VIRTIO_F_RING_RESET 40

#define VIRTIO_BIT(f) (1ull << (f))

/* Device IDs (s5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK 19

/* MSI-X vector value meaning "no interrupt" (s4.1.5.1.2). */
#define VIRTIO_MSI_NO_VECTOR 0xffff

struct virtio_pci;
struct virtqueue;

/*
 * A device type. `dev` in the callbacks is the opaque pointer given at creation. Constant fields
 * describe the device to the transport: `features` are the device-specific feature bits it offers
 * (the transport adds its own, see above); `nr_queues` virtqueues, each offering at most
 * `queue_max_size` entries (a power of 2, 1..32768); `config_size` bytes of device-specific
 * configuration (0: none, no VIRTIO_PCI_CAP_DEVICE_CFG); `pci_class` is the PCI class code
 * (base << 16 | sub << 8 | interface).
 */
struct virtio_device_ops {
	const char *name;
	uint16_t device_id;
	uint32_t pci_class;
	uint64_t features;
	unsigned int nr_queues;
	uint16_t queue_max_size;
	size_t config_size;
	/*
	 * A driver access to device-specific configuration bytes [off, off + len), len 1, 2 or 4 and
	 * off + len <= config_size (the transport checks). NULL: reads 0, writes ignored.
	 */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data, uint32_t len);
	/*
	 * The driver set DRIVER_OK (s3.1.1 step 8) and every enabled virtqueue is set up: the device may
	 * start using them (virtio_pci_queue). Returns 0 or -errno: the transport then sets
	 * DEVICE_NEEDS_RESET. May be NULL.
	 */
	int (*activate)(void *dev, struct virtio_pci *t);
	/* The driver reset the device (s2.4): forget everything since activation. May be NULL. */
	void (*reset)(void *dev);
	/*
	 * Queue `q` has new available buffers (or may have: a notification can be spurious). Runs on the
	 * device event loop thread, only between activation and reset and while the device does not need
	 * a reset. A queue the guest broke (vq_pop -EIO) is reported by the transport after return.
	 */
	void (*queue_notify)(void *dev, unsigned int q);
};

/*
 * The set-up virtqueue `q` of an active device, or NULL (q out of range, the driver did not enable
 * it, or the device is not active).
 */
struct virtqueue *virtio_pci_queue(struct virtio_pci *t, unsigned int q);

/*
 * The feature bits the driver accepted (s2.2), valid from FEATURES_OK until reset: a device reads
 * them in activate to decide how to use its queues.
 */
uint64_t virtio_pci_driver_features(struct virtio_pci *t);

/*
 * After vq_push on queue `q`: send a used buffer notification if the driver wants one
 * (vq_should_notify, s2.7.7.2), by MSI-X (the queue's vector; none with VIRTIO_MSI_NO_VECTOR) or,
 * with MSI-X disabled, INTx with ISR bit 0 (s4.1.5.3).
 */
void virtio_pci_notify_queue(struct virtio_pci *t, unsigned int q);

/*
 * Call queue_notify(q) again later from the event loop: for a device that stops draining a queue
 * early so that other devices get their turn.
 */
void virtio_pci_kick_queue(struct virtio_pci *t, unsigned int q);

/*
 * The driver broke the protocol (s2.1.2): set DEVICE_NEEDS_RESET, log the reason (rate-limited, with
 * the device's name), send a configuration change notification when DRIVER_OK is set, and stop
 * calling queue_notify until the driver resets the device. Only the first reason is logged.
 */
void virtio_pci_set_needs_reset(struct virtio_pci *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The device-specific configuration changed: bump config_generation (s2.5.1) and send a
 * configuration change notification (MSI-X config vector, or INTx with ISR bit 1: s4.1.5.4).
 */
void virtio_pci_config_changed(struct virtio_pci *t);

/* The device lock, for a device acting from a thread of its own (not needed inside callbacks). */
void virtio_pci_lock(struct virtio_pci *t);
void virtio_pci_unlock(struct virtio_pci *t);

#endif
