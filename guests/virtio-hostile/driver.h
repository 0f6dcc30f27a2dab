/* SPDX-License-Identifier: MIT */
/*
 * The virtio-hostile guest's virtio 1.2 PCI driver (s4.1): exact-width MMIO, device discovery through
 * ECAM, initialisation, queue 0 of a split virtqueue (s2.7). Every function works at either privilege
 * level: it only touches memory and MMIO, which kiln's identity map makes user-accessible.
 */
#ifndef VIRTIO_HOSTILE_DRIVER_H
#define VIRTIO_HOSTILE_DRIVER_H

#include <stdbool.h>

#include "guest.h"

/* ---- MMIO with exact widths (inline asm: the compiler may neither merge, split nor reorder them) ---- */

static inline uint8_t rd8(uint64_t a)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
	return v;
}

static inline uint16_t rd16(uint64_t a)
{
	uint16_t v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline uint32_t rd32(uint64_t a)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline uint64_t rd64(uint64_t a)
{
	uint64_t v;

	__asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline void wr8(uint64_t a, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(a) : "memory");
}

static inline void wr16(uint64_t a, uint16_t v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static inline void wr32(uint64_t a, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static inline void wr64(uint64_t a, uint64_t v)
{
	__asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

/* x86 keeps stores in order and loads in order; the device is another thread: compiler barriers suffice
 * between plain memory accesses, a full fence between the avail index store and the notify (s2.7.13). */
#define barrier() __asm__ volatile("" : : : "memory")
#define mb() __asm__ volatile("mfence" : : : "memory")

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* ---- virtio 1.2 definitions the guest needs ---- */

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_DEV_BLK 0x1042 /* 0x1040 + device ID 2 (s4.1.2) */
#define VIRTIO_DEV_RNG 0x1044 /* 0x1040 + device ID 4 */

#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64
#define S_FAILED 128

#define F_INDIRECT_DESC (1ull << 28)
#define F_VERSION_1 (1ull << 32)
#define F_ACCESS_PLATFORM (1ull << 33) /* never offered by kiln (no IOMMU) */

/* struct virtio_pci_common_cfg (s4.1.4.3) */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_CFGGEN 0x15
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_MSIX 0x1a
#define C_Q_ENABLE 0x1c
#define C_Q_NOFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_DRIVER 0x28
#define C_Q_DEVICE 0x30

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* The queue size this driver asks for: small, so that walks over the whole table stay short. */
#define QSIZE 16

struct vring_mem {
	struct vdesc desc[QSIZE] __attribute__((aligned(4096)));
	struct {
		uint16_t flags, idx, ring[QSIZE], used_event;
	} avail __attribute__((aligned(4096)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4096)));
	/* Indirect tables and data buffers, each on a page of its own. */
	struct vdesc itable[QSIZE + 2] __attribute__((aligned(4096)));
	struct vdesc itable2[4] __attribute__((aligned(4096)));
	uint8_t buf[4096] __attribute__((aligned(4096)));
};

/* One virtio-pci function, as the driver sees it: where its structures are, and queue 0. */
struct vdev {
	uint16_t pci_device;               /* PCI device ID to look for */
	unsigned int slot;
	uint64_t cfg;                      /* its ECAM configuration space */
	uint64_t bar0;                     /* BAR the common configuration lives in */
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint16_t qmax;                     /* queue 0's maximum size, read at reset */
	uint16_t qsize;                    /* the size in use */
	uint64_t notify_addr;              /* queue 0's notify address */
	uint8_t status;                    /* what the driver has written */
	uint16_t avail_idx;                /* next avail->idx the driver publishes */
	struct vring_mem *mem;
};

/* Find d->pci_device on bus 0 (ECAM at `ecam`), enable memory decoding and bus mastering, locate the
 * virtio structures from its capabilities (s4.1.4). 0, or -1 when absent or incomplete. */
int vdev_probe(struct vdev *d, uint64_t ecam);
uint8_t vdev_status(const struct vdev *d);
/* Add `bit` to the status the driver has written (s2.1) and write it. */
void vdev_set_status(struct vdev *d, uint8_t bit);
/* Reset (s2.4, s4.1.4.3.2: done when status reads back 0). 0 or -1. */
int vdev_reset(struct vdev *d);
/* ACKNOWLEDGE, DRIVER, features (s2.2), FEATURES_OK unless `skip_features_ok`. Returns the status read back. */
uint8_t vdev_negotiate(struct vdev *d, uint64_t features, bool skip_features_ok);
/* The device's feature bits 0-63. */
uint64_t vdev_offered(const struct vdev *d);
/*
 * Queue 0 at the given areas (s4.1.5.1.3), not enabled yet: QSIZE entries, or fewer when the device offers
 * fewer (the sizes are powers of 2). Clears the driver's ring indices.
 */
void vdev_setup_queue(struct vdev *d, uint64_t desc, uint64_t driver, uint64_t device);
/* Queue 0 on the device's own rings in d->mem, enabled. */
void vdev_setup_own_queue(struct vdev *d);
/* The whole initialisation (s3.1.1). Returns the final status: 0x0f (DRIVER_OK, no NEEDS_RESET) when it worked. */
uint8_t vdev_init(struct vdev *d, uint64_t features);
/* Make chain `head` available (s2.7.13): ring entry, then the index. */
void vdev_make_available(struct vdev *d, uint16_t head);
/* Notify queue 0 (s4.1.5.2) with a 16-bit write, after the index is visible (s2.7.13.4). */
void vdev_notify(struct vdev *d);
void vdev_kick(struct vdev *d, uint16_t head);
/*
 * Wait until the device has returned `used_idx` buffers in all or says it needs a reset, whichever comes
 * first (about a second at most). Returns the status read last; *timed_out when neither happened.
 */
uint8_t vdev_settle(struct vdev *d, uint16_t used_idx, bool *timed_out);

#endif
