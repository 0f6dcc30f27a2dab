/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side (virtio 1.2 s2.7): descriptor table, available ring and used ring in
 * guest memory, written by a driver that kiln does not trust.
 *
 * Every index, descriptor and ring entry is read from guest memory afresh and copied before it is
 * checked, so the guest changing a ring while the device walks it can at worst produce a chain the
 * guest could also have written on purpose. A guest protocol violation marks the queue broken: from
 * then on every call refuses with -EIO, `broken_reason` says why (the first violation only), and
 * the transport sets DEVICE_NEEDS_RESET (s2.1.2). The caller logs the reason, rate-limited.
 *
 * Concurrency: one thread at a time per virtqueue (the device's queue thread, or callers holding the
 * device lock). The guest's vCPUs run concurrently with it: ring indices are read with acquire and
 * published with release semantics, and notification decisions sit behind full fences (s2.7.13).
 *
 * Decisions where the spec leaves room:
 * - A zero-length descriptor is accepted (nothing forbids it, s2.7.5) and contributes no segment;
 *   its address is not checked (nothing is accessed). It still counts for the length limits and for
 *   the readable-before-writable order (s2.7.4.2).
 * - A buffer that spans two RAM regions is split into one segment per region when the regions are
 *   adjacent in guest physical address space; a buffer touching any address that is not RAM (the
 *   MMIO hole, past the end of RAM, or wrapping past 2^64) is a violation.
 * - An indirect table (s2.7.5.3) must be non-empty, a multiple of 16 bytes, hold at most Queue Size
 *   descriptors (s2.7.5.3.1: "A driver MUST NOT create a descriptor chain longer than the Queue
 *   Size"), and lie inside a single RAM region. INDIRECT with NEXT, INDIRECT inside a table, and
 *   INDIRECT without VIRTIO_F_INDIRECT_DESC are violations; WRITE on the INDIRECT descriptor itself
 *   is ignored (s2.7.5.3.2).
 * - A walk visits at most Queue Size descriptors in the descriptor table and at most the table's
 *   length in an indirect table: more means a loop (s2.7.5.2). A chain of more than VQ_MAX_SEGMENTS
 *   segments (s2.7.4.1 "a reasonable limit") or more than 2^32 bytes (s2.7.5.2) is a violation.
 * - The driver may have at most Queue Size buffers outstanding: avail->idx running more than Queue
 *   Size ahead of the used index the device has published is a violation (s2.7: "if Queue Size
 *   is 4 then at most 4 buffers can be queued at any given time").
 */
#ifndef KILN_DEVICES_VIRTIO_VIRTQUEUE_H
#define KILN_DEVICES_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"

/* virtio 1.2 s2.7 */
#define VQ_MAX_SIZE 32768u

/* Descriptor flags, s2.7.5 */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

/* s2.7.6 / s2.7.7 */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
/* s2.7.8 / s2.7.10 */
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Segments in one chain, after splitting at RAM region boundaries: IOV_MAX, so a chain's halves can
 * go straight to preadv/pwritev. */
#define VQ_MAX_SEGMENTS 1024

/* Guest layout, little-endian (s2.7.5, s2.7.6, s2.7.8). */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

#define VQ_DESC_SIZE 16u
#define VQ_AVAIL_SIZE(size, event_idx) (4u + 2u * (uint64_t)(size) + ((event_idx) ? 2u : 0u))
#define VQ_USED_SIZE(size, event_idx) (4u + 8u * (uint64_t)(size) + ((event_idx) ? 2u : 0u))

struct virtqueue {
	const struct guest_memory *mem;
	uint16_t size;           /* power of 2, 1..32768 */
	uint16_t mask;           /* size - 1 */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	/* Host addresses of the three areas, translated once by vq_init (guest RAM does not move). */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	bool event_idx;          /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;           /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t last_avail_idx; /* next available ring entry the device will take */
	uint16_t shadow_avail_idx; /* avail->idx as last read */
	uint16_t used_idx;       /* next used ring entry; equal to the published used->idx */
	uint16_t signalled_used; /* used_idx when vq_should_notify last ran (EVENT_IDX, s2.7.7) */
	bool broken;
	char broken_reason[128];
};

/*
 * One available buffer, as popped. iov[0 .. nr_readable) are device-readable, then
 * iov[nr_readable .. nr_readable + nr_writable) device-writable (s2.7.4). The host addresses point
 * into guest RAM, which the guest can change at any time: copy what must be checked before using it.
 * Large (16 KiB): embed it in the device or allocate it, not on a small stack.
 */
struct vq_chain {
	const struct guest_memory *mem; /* the queue's guest memory, set by vq_pop (for write tracking) */
	uint16_t head;            /* descriptor index to hand back to vq_push */
	unsigned int nr_readable;
	unsigned int nr_writable;
	uint64_t readable_bytes;
	uint64_t writable_bytes;
	struct iovec iov[VQ_MAX_SEGMENTS];
};

/*
 * Set up `vq` over the rings the driver configured. `size` must be a power of 2 in 1..32768; the
 * areas must be aligned (descriptor table 16, available ring 2, used ring 4 bytes: s2.7.1) and lie
 * entirely in guest RAM, sizes per the s2.7 table (the event fields counted only with `event_idx`).
 * Indices start at 0 (the state after a reset, s2.7.6, s2.7.8). Returns 0 or -EINVAL.
 */
int vq_init(struct virtqueue *vq, const struct guest_memory *mem, uint16_t size, uint64_t desc_gpa,
	    uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
	__attribute__((warn_unused_result));

/*
 * Take the next available descriptor chain (s2.7.13 device side, s2.7.5, s2.7.5.3). Returns 1 with
 * `chain` filled, 0 when the driver has made nothing new available, -EIO when the queue is broken
 * (now or earlier; `broken_reason` says why). On 0 and -EIO `chain` is unspecified.
 */
int vq_pop(struct virtqueue *vq, struct vq_chain *chain) __attribute__((warn_unused_result));

/*
 * Undo the last `n` pops that were not pushed yet, for a device that cannot handle them now (e.g. a
 * net rx buffer too small): they are popped again, re-read from guest memory. Returns 0, -EINVAL
 * if fewer than `n` chains are outstanding, -EIO when broken.
 */
int vq_rewind(struct virtqueue *vq, uint16_t n) __attribute__((warn_unused_result));

/*
 * Return chain `head` to the driver with `written_len` bytes written to its writable part, and
 * publish the new used->idx (s2.7.8, s2.7.8.2: the element is written before the index). The used
 * ring's element and index are marked written in guest memory; the buffer's bytes are the device's to
 * mark (vq_chain_mark_written). Returns 0,
 * -EINVAL for a head >= size or when no popped chain is outstanding (a device bug), -EIO when broken.
 */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written_len) __attribute__((warn_unused_result));

/*
 * After one or more vq_push: true when the driver wants a used buffer notification (interrupt)
 * now (s2.7.7.2): with EVENT_IDX when used_event was crossed since the last call, else when
 * avail->flags lacks VIRTQ_AVAIL_F_NO_INTERRUPT. False when broken.
 */
bool vq_should_notify(struct virtqueue *vq);

/*
 * Available buffer notification suppression (s2.7.10). A queue thread disables notifications while
 * it drains the ring, then re-enables them; vq_enable_notify returns true when buffers arrived in
 * between (the thread must drain again, or a notification is lost). With EVENT_IDX, enabling
 * writes avail_event = the next entry wanted and disabling does nothing (the driver then notifies
 * at most once more); without, they clear and set VIRTQ_USED_F_NO_NOTIFY.
 */
void vq_disable_notify(struct virtqueue *vq);
bool vq_enable_notify(struct virtqueue *vq);

/* True when the driver has buffers the device has not popped yet (reads avail->idx). */
bool vq_has_available(struct virtqueue *vq);

/*
 * The device-side indices, which guest memory does not hold (the rest of a split virtqueue's state
 * is the rings themselves, in guest RAM): for snapshots.
 */
struct vq_indices {
	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t signalled_used;
	bool broken;
};

void vq_save_indices(const struct virtqueue *vq, struct vq_indices *out);

/*
 * After vq_init over the same rings: continue from saved indices. Chains popped but not pushed when
 * the indices were saved (last_avail_idx ahead of used_idx) are made available again, to be popped
 * afresh: their requests had not completed. A broken queue stays broken. Returns 0, or -EINVAL when
 * the indices are impossible for the queue (more than Queue Size chains outstanding).
 */
int vq_restore_indices(struct virtqueue *vq, const struct vq_indices *in) __attribute__((warn_unused_result));

/*
 * vring_need_event (s2.7.7, s2.7.10): true when the ring entry numbered `event_idx` is among those
 * written while the index moved from `old_idx` to `new_idx`, i.e. event_idx in [old_idx, new_idx)
 * modulo 2^16 (the index reached event_idx + 1).
 */
static inline bool vq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/*
 * Copy between a buffer and the chain's readable (resp. writable) bytes, starting `offset` bytes
 * into that part. Returns the number of bytes copied: less than `len` when the part is shorter.
 */
size_t vq_chain_read(const struct vq_chain *chain, uint64_t offset, void *dst, size_t len);
size_t vq_chain_write(const struct vq_chain *chain, uint64_t offset, const void *src, size_t len);

/*
 * Bytes [offset, offset + len) of the chain's writable part were just written in place through its iovecs
 * (readv, getrandom, a backend's read): mark them written in guest memory (guest_memory_mark_written).
 * vq_chain_write does this itself. The part past the chain's end is ignored.
 *
 * Devices mark where they write, not at vq_push from its used length: the used length is only a lower
 * bound of what was written (s2.7.8.1 "MAY write more"), and kiln's devices do write bytes it does not
 * count: virtio-blk's status byte sits at the chain's end while an error completion reports 1 byte, and
 * virtio-net reads a frame into a buffer it may then give back unused (vq_rewind).
 */
void vq_chain_mark_written(const struct vq_chain *chain, uint64_t offset, uint64_t len);

#endif
