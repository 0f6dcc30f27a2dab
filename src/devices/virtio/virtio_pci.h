/* SPDX-License-Identifier: MIT */
/*
 * The virtio 1.2 modern PCI transport (s4.1 "Virtio Over PCI Bus"): a non-transitional virtio device
 * as a PCI function on kiln's bus 0, driving one device type through struct virtio_device_ops.
 *
 * PCI identity (s4.1.2): vendor 0x1af4, device 0x1040 + virtio device ID, revision 1, subsystem
 * 0x1af4:0x0040, class from the device type, header type 0, interrupt pin INTA#.
 *
 * Everything lives in BAR 0, one 32-bit non-prefetchable memory BAR of 32 KiB, each structure on a
 * page of its own (so the guest maps them separately and a later kiln may back one with a memslot):
 *
 *   0x0000  common configuration  (VIRTIO_PCI_CAP_COMMON_CFG, 0x3c bytes: the 1.2 layout)
 *   0x1000  ISR status            (VIRTIO_PCI_CAP_ISR_CFG, 1 byte)
 *   0x2000  device configuration  (VIRTIO_PCI_CAP_DEVICE_CFG, config_size bytes; absent when 0)
 *   0x3000  notifications         (VIRTIO_PCI_CAP_NOTIFY_CFG, notify_off_multiplier 4: queue q at
 *                                   0x3000 + 4 * q, queue_notify_off = q)
 *   0x4000  MSI-X table           (nr_queues + 1 vectors)
 *   0x6000  MSI-X PBA
 *
 * plus a VIRTIO_PCI_CAP_PCI_CFG capability whose pci_cfg_data window reaches the same BAR through
 * configuration space (s4.1.4.9).
 *
 * Register accesses (s4.1.3.1): common configuration fields are reached only with their own width at
 * their own offset (64-bit fields as two 32-bit halves); the ISR with a 1-byte read; device
 * configuration with 1, 2 or 4 bytes inside config_size; a queue's notify address with a write of 1
 * to 4 bytes. Anything else (8-byte accesses, a 3-byte access, an offset between fields or past a
 * structure) is dropped: a read returns 0, a write changes nothing, and a debug message is logged,
 * rate-limited.
 *
 * Notifications: at DRIVER_OK every set-up queue's eventfd is registered with KVM as an ioeventfd on
 * its notify address (2-byte writes, what Linux issues) and subscribed on the device event loop; the
 * loop thread calls the device's queue_notify. A notify write that reaches kiln anyway (another
 * width, before DRIVER_OK, or when KVM refused the ioeventfd) writes the same eventfd. When the BAR
 * moves, the ioeventfds move with it. Interrupts: MSI-X through msix.h (irqfds), or INTx + ISR
 * while MSI-X is disabled (s4.1.5.3, s4.1.5.4).
 *
 * Decisions where the specification leaves room:
 * - Status bits only accumulate until reset: a write that would clear one keeps it (s2.1.1 forbids the
 *   driver to clear bits). DEVICE_NEEDS_RESET is the device's; the driver cannot set or clear it.
 * - FEATURES_OK is kept only if the driver's features are a subset of the device's (feature words
 *   above 1 included) and include VERSION_1 (s2.2, s3.1.1); driver_feature writes after FEATURES_OK
 *   are ignored.
 * - DRIVER_OK without FEATURES_OK, rings that vq_init refuses (not in RAM, misaligned) or a failed
 *   activation set DEVICE_NEEDS_RESET and activate nothing: all queues or none.
 * - queue_size writes that are not a power of 2 in 1..queue_max_size are ignored (the register keeps
 *   a valid size, which the driver can read back). A queue's size, vector-independent fields and
 *   enable are frozen once queue_enable is 1; writing 0 to queue_enable is ignored (s4.1.4.3.2).
 * - queue_select beyond num_queues: queue fields read 0 (so queue_size 0: "unavailable"), writes are
 *   ignored. A queue_msix_vector/config_msix_vector beyond the MSI-X table reads back NO_VECTOR
 *   (a failed mapping, s4.1.5.1.2.1).
 * - queue_notify_data reads the queue index; queue_reset reads 0 and ignores writes (RING_RESET is not
 *   offered).
 * - Once DEVICE_NEEDS_RESET is set no queue is processed until the driver resets the device.
 *
 * Locking: one mutex per device (the "device lock" of pci.h's order cfg_lock -> device -> msix ->
 * irq_routing), held for every register access and every device callback, on vCPU threads and on the
 * loop thread alike.
 */
#ifndef KILN_DEVICES_VIRTIO_VIRTIO_PCI_H
#define KILN_DEVICES_VIRTIO_VIRTIO_PCI_H

#include <linux/kvm.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio.h"
#include "lib/codec.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "devices/virtio/virtqueue.h"

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* + virtio device ID (s4.1.2) */
#define VIRTIO_PCI_SUBSYSTEM_ID 0x0040  /* >= 0x40: no legacy driver binds (s4.1.2.1) */
#define VIRTIO_PCI_REVISION 1

/* Capabilities (s4.1.4). */
#define PCI_CAP_ID_VNDR 0x09
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
/* struct virtio_pci_cap field offsets, and its extensions. */
#define VIRTIO_PCI_CAP_LEN 2
#define VIRTIO_PCI_CAP_CFG_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_ID 5
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_CAP_SIZE 16
#define VIRTIO_PCI_NOTIFY_CAP_MULT 16 /* virtio_pci_notify_cap.notify_off_multiplier */
#define VIRTIO_PCI_NOTIFY_CAP_SIZE 20
#define VIRTIO_PCI_CFG_CAP_DATA 16    /* virtio_pci_cfg_cap.pci_cfg_data */
#define VIRTIO_PCI_CFG_CAP_SIZE 20

/* struct virtio_pci_common_cfg (s4.1.4.3), byte offsets. */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28 /* queue_driver */
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30  /* queue_device */
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_Q_NDATA 0x38
#define VIRTIO_PCI_COMMON_Q_RESET 0x3a

/* BAR 0 layout (see above). */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x8000u
#define VIRTIO_PCI_COMMON_OFFSET 0x0000u
#define VIRTIO_PCI_COMMON_SIZE 0x3cu
#define VIRTIO_PCI_ISR_OFFSET 0x1000u
#define VIRTIO_PCI_ISR_SIZE 1u
#define VIRTIO_PCI_DEVICE_OFFSET 0x2000u
#define VIRTIO_PCI_DEVICE_MAX_SIZE 0x1000u
#define VIRTIO_PCI_NOTIFY_OFFSET 0x3000u
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4u
#define VIRTIO_PCI_MSIX_TABLE_OFFSET 0x4000u
#define VIRTIO_PCI_MSIX_PBA_OFFSET 0x6000u
/* Queues one device may have: notify region 0x3000-0x3fff, MSI-X table 0x4000-0x5fff (512 vectors). */
#define VIRTIO_PCI_MAX_QUEUES 256u

/* ISR status bits (s4.1.4.5). */
#define VIRTIO_PCI_ISR_QUEUE 0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

/* The one KVM call the transport makes itself (api.rst "KVM_IOEVENTFD"): 0 or -errno. */
struct virtio_ioeventfd_ops {
	int (*ioeventfd)(void *opaque, const struct kvm_ioeventfd *req);
};

struct virtio_pci_params {
	struct pci_bus *pci;
	int slot;                            /* 1-31, or -1: the lowest free one */
	struct irq_routing *rt;              /* GSIs and irqfds for MSI-X */
	struct loop *loop;                   /* the device event loop */
	const struct guest_memory *mem;
	int vm_fd;                           /* KVM VM fd, for KVM_IOEVENTFD */
	const struct virtio_ioeventfd_ops *ioeventfd_ops; /* NULL: ioctl on vm_fd; tests pass a fake */
	void *ioeventfd_opaque;
	const struct virtio_device_ops *ops; /* the device type */
	void *dev;                           /* its state, passed to the callbacks */
	/*
	 * The device-specific feature bits this instance offers (they may depend on its backend: a
	 * read-only image, a TAP's offloads), within ops->features, the bits the type can offer; 0 offers
	 * all of ops->features. The ops table itself stays const and shared by every instance.
	 */
	uint64_t features;
};

/*
 * Create the transport for `p->ops` and put it on the PCI bus (slot p->slot): config space, BAR 0,
 * capabilities, MSI-X, one eventfd per queue. Before the vCPUs start. Returns NULL with errno:
 * EINVAL (ops out of range: nr_queues 1..VIRTIO_PCI_MAX_QUEUES, queue_max_size a power of 2 up to
 * 32768, config_size up to 4 KiB; features outside ops->features), ENOMEM, or what pci_register_device / msix_create refuse
 * (EBUSY, ENOSPC).
 */
struct virtio_pci *virtio_pci_create(const struct virtio_pci_params *p);

/*
 * Release the transport: KVM ioeventfds, MSI-X irqfds and GSIs, eventfds. Call after the vCPUs have
 * stopped and after loop_destroy (a queue callback could otherwise still run): it does not touch the
 * loop. The PCI bus should be destroyed first (pci.h: devices outlive it); irq_routing after.
 */
void virtio_pci_destroy(struct virtio_pci *t);

/* The PCI function, for tests and messages. */
struct pci_device *virtio_pci_device(struct virtio_pci *t);

/* The device status field as the driver would read it (s2.1), for tests and --verbose. */
uint8_t virtio_pci_status(struct virtio_pci *t);

/* The transport's MSI-X, for snapshots (msix_save/msix_restore). */
struct msix *virtio_pci_msix(struct virtio_pci *t);

/*
 * Stop / restart processing queue notifications, for a snapshot of a paused VM: once freeze returns,
 * no queue_notify callback runs (one in progress has finished) and the device's state and the rings
 * in guest memory stay as they are; notifications that arrive meanwhile are handled after thaw.
 */
void virtio_pci_freeze(struct virtio_pci *t);
void virtio_pci_thaw(struct virtio_pci *t);

/*
 * Snapshot state (section VIRT, instance = PCI slot): the common configuration (s4.1.4.3), device
 * status, ISR, and per queue its configuration and the device-side indices (virtqueue.h). The
 * device type's own state is its section (e.g. VRNG); the config space and MSI-X are PCIF and MSIX.
 */
struct virtio_pci_queue_state {
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	bool ready;                     /* set up at DRIVER_OK */
	bool broken_reported;
	struct vq_indices vq;           /* when ready */
};

struct virtio_pci_state {
	uint16_t device_id;             /* identity, checked on restore */
	uint32_t nr_queues;
	uint64_t device_features;
	uint64_t driver_features;
	bool driver_features_invalid;
	uint32_t device_feature_select, driver_feature_select;
	uint16_t config_msix_vector;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	bool live;                      /* activated (DRIVER_OK accepted) */
	struct virtio_pci_queue_state queues[VIRTIO_PCI_MAX_QUEUES];
};

/*
 * Section VIRT's payload, version 1 (8d1a722's; the oldest read), little-endian: device_id,
 * config_msix_vector (2 bytes each), nr_queues (4, 1..VIRTIO_PCI_MAX_QUEUES), device_features,
 * driver_features (8 each), device_feature_select, driver_feature_select (4 each),
 * driver_features_invalid (0/1), status, config_generation, isr (1 byte each), queue_select (2), live
 * (0/1), a reserved zero byte: 40 bytes; then per queue 40 bytes: desc, driver, device (8 each),
 * size, msix_vector, vq.last_avail_idx, vq.used_idx, vq.signalled_used (2 each), a flags byte
 * (enabled | ready << 1 | broken_reported << 2 | vq.broken << 3, other bits 0) and 5 zero bytes.
 * Whether the transport could have reached the values is virtio_pci_restore's to judge.
 */
extern const struct codec_table virtio_pci_state_codec;

void virtio_pci_save(struct virtio_pci *t, struct virtio_pci_state *st);

/*
 * Load a decoded state into a transport that has not been used (after pci_function_restore and
 * msix_restore of its function): identity (device ID, queue count, offered features) must match,
 * values must be ones the transport could have reached. A live device gets its queues set up over
 * the same rings (which must lie in guest RAM), their indices restored, their notifications
 * subscribed, and the device type's activate callback; then every ready queue is kicked once, since a
 * notification still pending in the old process is lost. Returns 0 or -EINVAL with a message.
 */
int virtio_pci_restore(struct virtio_pci *t, const struct virtio_pci_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
