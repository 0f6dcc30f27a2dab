/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng, the entropy device (virtio 1.2 s5.4): device ID 4, one virtqueue ("requestq"), no
 * feature bits, no device-specific configuration. The driver offers device-writable buffers; the
 * device fills them with random bytes from the host's getrandom(2) and returns them.
 *
 * getrandom runs with GRND_NONBLOCK on the device event loop thread, which never blocks: when the
 * host's pool cannot give more right now (EAGAIN, only before the host's own RNG is seeded) a
 * buffer is returned with the bytes obtained so far, possibly none. A buffer without writable bytes
 * is returned with length 0; readable segments are ignored. At most VIRTIO_RNG_MAX_REQUEST bytes are
 * filled per buffer (s5.4.6.1 lets the device use less than the whole buffer), and at most one
 * queue's worth of buffers is handled per turn of the loop, so one guest cannot monopolise it.
 * No rate limit (Firecracker's entropy rate_limiter is not implemented).
 *
 * Firecracker's "entropy" config section creates it.
 */
#ifndef KILN_DEVICES_VIRTIO_RNG_H
#define KILN_DEVICES_VIRTIO_RNG_H

#include <stdint.h>
#include <sys/types.h>

#include "devices/virtio/virtio_pci.h"

#define VIRTIO_RNG_QUEUE_SIZE 256
#define VIRTIO_RNG_MAX_REQUEST (64u * 1024) /* bytes per buffer */
/* PCI class: "unclassified device" 0x00, subclass 0xff, as QEMU's virtio-rng-pci. */
#define VIRTIO_RNG_PCI_CLASS 0x00ff00u

/* Where the bytes come from: getrandom(2) plus an opaque pointer, so tests can make it short or fail. */
typedef ssize_t (*virtio_rng_source_fn)(void *opaque, void *buf, size_t len, unsigned int flags);

struct virtio_rng;

/*
 * Create a virtio-rng on the PCI bus described by `p` (everything but `ops` and `dev`, which are the
 * rng's own). Returns NULL with errno (see virtio_pci_create).
 */
struct virtio_rng *virtio_rng_create(const struct virtio_pci_params *p);

/* Free it, with its transport: same conditions as virtio_pci_destroy. */
void virtio_rng_destroy(struct virtio_rng *rng);

/* Replace getrandom(2) (tests; NULL: back to getrandom). Not while the queue is being processed. */
void virtio_rng_set_source(struct virtio_rng *rng, virtio_rng_source_fn fn, void *opaque);

/* The transport, for tests. */
struct virtio_pci *virtio_rng_transport(struct virtio_rng *rng);

/* Random bytes handed to the guest so far. */
uint64_t virtio_rng_bytes(struct virtio_rng *rng);

/*
 * Snapshot state (section VRNG, instance = PCI slot): virtio-rng has no device state beyond its
 * transport's; the section carries the byte count so that it, too, continues.
 */
struct virtio_rng_state {
	uint64_t bytes;
};

/* Section VRNG's payload, version 1 (8d1a722's; the oldest read): bytes, le64. */
extern const struct codec_table virtio_rng_state_codec;

void virtio_rng_save(struct virtio_rng *rng, struct virtio_rng_state *st);
void virtio_rng_restore(struct virtio_rng *rng, const struct virtio_rng_state *st);

/* The device type (vmm/device.h): virtio-rng, for "entropy". */
struct vm_device_type;
extern const struct vm_device_type virtio_rng_device_type;

#endif
