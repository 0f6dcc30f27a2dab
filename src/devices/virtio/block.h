/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk, the block device (virtio 1.2 s5.2): device ID 2, one virtqueue ("requestq"), a raw image
 * (backends/block/raw.h) behind it. Firecracker's "drives" entries create one each.
 *
 * Requests (s5.2.6): a 16-byte header (type, reserved, sector) in the chain's device-readable bytes,
 * data, and the status byte, which is the chain's last device-writable byte. The framing is free
 * (s2.6.4): header, data and status may share or split descriptors. Guest buffers are handed to the
 * backend in place (iovecs into guest RAM, no bounce buffer), and a request completes when the
 * backend does, possibly out of order (s5.2.6: "not necessarily in order"):
 * - IN/OUT: data in whole 512-byte sectors inside the capacity; OUT on a read-only disk -> IOERR
 *   without writing anything (s5.2.6.2).
 * - FLUSH: fdatasync; offered only with cache Writeback (below).
 * - GET_ID: the drive_id, NUL-padded to 20 bytes (truncated past 20), as Linux's /sys/block/vdX/serial.
 * - DISCARD, WRITE_ZEROES (writable disks only): one segment per request (max_*_seg 1), at most
 *   VIRTIO_BLK_MAX_DISCARD_SECTORS; discard with `unmap` or any unknown flag -> UNSUPP (s5.2.6.2).
 * - Any other type (SCSI, GET_LIFETIME, SECURE_ERASE, zoned...), or FLUSH/DISCARD/WRITE_ZEROES when
 *   not offered -> UNSUPP.
 * A malformed request gets IOERR and the device carries on: header shorter than 16 bytes, readable
 * bytes after the header of an IN/GET_ID/FLUSH, writable bytes before the status of an OUT/FLUSH/
 * DISCARD/WRITE_ZEROES, data not a multiple of 512 bytes, sectors beyond the capacity, more than
 * VIRTIO_BLK_MAX_DATA_IOV data segments, a segment list that is not one 16-byte segment. A chain with
 * no device-writable byte has nowhere to put a status: the device sets DEVICE_NEEDS_RESET (s2.1.2)
 * and returns nothing. Host I/O errors (EIO, ENOSPC...) are IOERR, logged rate-limited.
 *
 * Features (s5.2.3): SEG_MAX (seg_max = queue size - 2, the header and status taking two
 * descriptors), BLK_SIZE (512), FLUSH with cache_type Writeback, RO on read-only disks,
 * DISCARD and WRITE_ZEROES on writable ones. Not offered: SIZE_MAX (any segment size is fine with
 * iovecs), GEOMETRY, TOPOLOGY, CONFIG_WCE (the cache mode is the host's choice), MQ, SECURE_ERASE,
 * LIFETIME, ZONED. Configuration space (s5.2.4) is read-only: capacity in 512-byte sectors (the
 * image size rounded down), seg_max, blk_size, num_queues = 1, the discard and write-zeroes limits
 * (alignment 8 sectors: a 4 KiB host filesystem block), write_zeroes_may_unmap = 1.
 *
 * Cache types, as Firecracker's: Unsafe does not offer FLUSH and never syncs (fast, and a host crash
 * loses what the page cache held). Writeback offers FLUSH and makes it fdatasync, so what the guest
 * flushed survives a host crash; if the driver does not accept FLUSH, every write is made stable
 * before it completes (RWF_DSYNC; s5.2.6.2 case 1).
 *
 * Threads: queue_notify and the backend's completions run on the device event loop thread under the
 * device lock (virtio.h), so the loop never waits for the disk. Reset (a vCPU thread) waits for the
 * requests in flight and drops them without touching the ring: none is pushed to a queue the driver
 * reset, and no guest memory is written after reset returns.
 */
#ifndef KILN_DEVICES_VIRTIO_BLOCK_H
#define KILN_DEVICES_VIRTIO_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/block/raw.h"
#include "devices/virtio/virtio_pci.h"

/* Feature bits (s5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* struct virtio_blk_config (s5.2.4), byte offsets. */
#define VIRTIO_BLK_CFG_CAPACITY 0                 /* le64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8                 /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX 12                 /* le32 */
#define VIRTIO_BLK_CFG_GEOMETRY 16                /* le16 cylinders, u8 heads, u8 sectors */
#define VIRTIO_BLK_CFG_BLK_SIZE 20                /* le32 */
#define VIRTIO_BLK_CFG_TOPOLOGY 24                /* 8 bytes */
#define VIRTIO_BLK_CFG_WRITEBACK 32               /* u8 */
#define VIRTIO_BLK_CFG_NUM_QUEUES 34              /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36     /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40         /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT 44 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG 52    /* le32 */
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP 56  /* u8, then 3 bytes unused1 */
#define VIRTIO_BLK_CONFIG_SIZE 60                 /* up to unused1: no secure erase, no zoned fields */

/* Request types (s5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

/* Request status (s5.2.6). */
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* struct virtio_blk_discard_write_zeroes flags (s5.2.6). */
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

#define VIRTIO_BLK_SECTOR_SIZE 512u
#define VIRTIO_BLK_HEADER_SIZE 16u
#define VIRTIO_BLK_SEGMENT_SIZE 16u  /* struct virtio_blk_discard_write_zeroes */
#define VIRTIO_BLK_ID_BYTES 20u
#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2)
/* Data segments one request may have after splitting at RAM region boundaries. */
#define VIRTIO_BLK_MAX_DATA_IOV (VIRTIO_BLK_SEG_MAX + 2)
/* Per DISCARD / WRITE_ZEROES segment, in sectors (2 GiB), and their alignment (4 KiB). */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22)
#define VIRTIO_BLK_DISCARD_ALIGNMENT 8u
/* PCI class: mass storage, SCSI controller, as QEMU's virtio-blk-pci. */
#define VIRTIO_BLK_PCI_CLASS 0x010000u

enum virtio_blk_cache {
	VIRTIO_BLK_CACHE_UNSAFE,    /* no FLUSH offered; nothing synced */
	VIRTIO_BLK_CACHE_WRITEBACK, /* FLUSH offered = fdatasync */
};

struct virtio_blk_params {
	const char *path;     /* the raw image */
	bool read_only;
	const char *id;       /* GET_ID's serial (Firecracker's drive_id); NULL or "": empty */
	enum virtio_blk_cache cache;
	enum raw_engine engine; /* RAW_ENGINE_IO_URING falls back to RAW_ENGINE_SYNC where it must (raw.h) */
	char *err;            /* where a failure's reason is written too (it is logged), or NULL */
	size_t err_size;
};

struct virtio_blk;

/*
 * Open and lock the image (raw_open) and create a virtio-blk on the PCI bus described by `p`
 * (everything but `ops` and `dev`, which are the device's own). The completion eventfd joins p->loop
 * at once. Errors are logged, naming the image ("disk.img is locked by another process"); returns
 * NULL with errno: EAGAIN (locked), what open(2) says (ENOENT, EACCES, EROFS...), EINVAL (not a file
 * or block device, or smaller than one sector), or as virtio_pci_create.
 */
struct virtio_blk *virtio_blk_create(const struct virtio_pci_params *p, const struct virtio_blk_params *bp);

/*
 * Wait for the requests in flight, close the image and free the device with its transport: same
 * conditions as virtio_pci_destroy (vCPUs stopped, loop destroyed, PCI bus destroyed first). NULL is
 * a no-op.
 */
void virtio_blk_destroy(struct virtio_blk *blk);

/*
 * Wait until no request is in flight, completing each to the guest as usual. For pause and snapshot:
 * with the vCPUs paused nothing new starts afterwards. Takes the device lock: not from inside a device
 * callback. 0, or -errno when waiting for the backend failed.
 */
int virtio_blk_quiesce(struct virtio_blk *blk) __attribute__((warn_unused_result));

/*
 * fdatasync the image of a writable disk, whatever its cache type (raw_sync), after virtio_blk_quiesce:
 * a snapshot's files are made durable, so the disk they describe must be too. Takes the device lock.
 * 0 or -errno.
 */
int virtio_blk_sync(struct virtio_blk *blk) __attribute__((warn_unused_result));

/* The disk's size as the guest sees it, in bytes (a multiple of 512), and the image's path. */
uint64_t virtio_blk_capacity_bytes(const struct virtio_blk *blk);
const char *virtio_blk_path(const struct virtio_blk *blk);

/* The engine in use (RAW_ENGINE_SYNC after a fallback). */
enum raw_engine virtio_blk_engine(const struct virtio_blk *blk);

/* Requests handed to the backend and not completed yet (takes the device lock). */
unsigned int virtio_blk_in_flight(struct virtio_blk *blk);

/* The transport, for tests. */
struct virtio_pci *virtio_blk_transport(struct virtio_blk *blk);

/*
 * Snapshot state (section VBLK, instance = PCI slot). Requests in flight are not state: a snapshot
 * quiesces the device first (virtio_blk_quiesce), so every request has completed into the guest's
 * used ring. What is left is the disk as the guest saw it: capacity, read-only, serial; restore checks
 * that the device created from the config is that disk. The image's contents are the host's (DISK).
 */
struct virtio_blk_state {
	uint64_t capacity;              /* 512-byte sectors */
	bool read_only;
	char id[VIRTIO_BLK_ID_BYTES];   /* GET_ID's serial, NUL-padded */
};

/*
 * Section VBLK's payload, version 1 (8d1a722's; the oldest read): capacity (le64), read_only (0/1),
 * the 20 bytes of id as they are.
 */
extern const struct codec_table virtio_blk_state_codec;

void virtio_blk_save(struct virtio_blk *blk, struct virtio_blk_state *st);
/* -EINVAL with a message when this device is not the snapshot's disk (capacity, read-only, serial). */
int virtio_blk_restore(struct virtio_blk *blk, const struct virtio_blk_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* The device type (vmm/device.h): a virtio-blk per drive. */
struct vm_device_type;
extern const struct vm_device_type virtio_blk_device_type;

#endif
