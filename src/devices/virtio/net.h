/* SPDX-License-Identifier: MIT */
/*
 * virtio-net, the network device (virtio 1.2 s5.1): device ID 1, queue 0 receiveq1, queue 1
 * transmitq1, no control queue, one queue pair. Packets go to and come from a Linux TAP
 * (backends/net/tap.h), each preceded by the 12-byte struct virtio_net_hdr_v1 (s5.1.6), which is
 * passed through unchanged in both directions: the TAP speaks the same header.
 *
 * Features offered (s5.1.3): MAC, STATUS (link always up), MRG_RXBUF, CSUM, HOST_TSO4, HOST_TSO6,
 * HOST_ECN (the TAP accepts any GSO packet its header describes); GUEST_CSUM, GUEST_TSO4, GUEST_TSO6,
 * GUEST_ECN only when the TAP accepts the matching TUNSETOFFLOAD flags; GUEST_UFO and HOST_UFO when
 * it accepts TUN_F_UFO; MTU when one is configured. At activation the TAP's offloads are set to the
 * GUEST_* features the driver accepted, so the TAP never hands over a packet the driver cannot take.
 * A driver that accepts none of them gets plain frames with checksums done.
 *
 * MAC: the configured one, else a random locally administered unicast address (bit 1 of the first
 * byte set, bit 0 clear) drawn at creation. Firecracker leaves VIRTIO_NET_F_MAC off when no MAC is
 * configured so the guest driver picks a random one at each boot; QEMU assigns 52:54:00:12:34:56
 * upward. kiln draws one itself, like Linux would, so the address is known to the host (logged at
 * --verbose, readable with virtio_net_mac) and stays the same across guest driver resets.
 *
 * Receive (TAP -> guest): the TAP fd is on the device event loop with EPOLLIN only while the guest
 * has receive buffers; when the ring runs dry kiln stops watching the TAP (the kernel queues, then
 * drops, packets for it) and the driver's next receive-queue notification resumes it. Each frame is
 * read with one readv: the first buffer's writable segments, then a 64 KiB bounce buffer. A frame
 * that fits the first buffer lands in guest memory directly; with MRG_RXBUF the rest is copied from
 * the bounce buffer into further buffers and num_buffers in the first header says how many
 * (s5.1.6.4); without MRG_RXBUF a frame larger than its buffer is dropped, counted, and the buffer
 * reused. A frame that needs more buffers than the ring has now is kept (one frame) until the driver
 * adds some; if even a full ring cannot hold it, it is dropped. num_buffers is 1 without MRG_RXBUF;
 * flags are cleared when GUEST_CSUM was not accepted (s5.1.6.4.1).
 *
 * Transmit (guest -> TAP): each chain's readable part is one frame, header first, written with one
 * writev; the header is copied out of guest memory first, so the guest cannot change it while the
 * kernel reads it. Dropped and counted (rate-limited message): a chain with device-writable
 * segments, shorter than the header, a frame over VIRTIO_NET_MAX_FRAME bytes, a header asking for
 * an offload the driver did not negotiate, a frame the TAP refuses. EAGAIN from the TAP keeps the
 * chain in the ring and waits for EPOLLOUT: nothing is dropped, nothing spins.
 *
 * Hostile drivers: receive buffers shorter than the header with MRG_RXBUF (a MUST in s5.1.6.3.1) set
 * DEVICE_NEEDS_RESET, as do broken rings (virtqueue.h). Each turn of the loop moves at most one
 * queue's worth of frames per direction, so a busy guest cannot starve other devices.
 */
#ifndef KILN_DEVICES_VIRTIO_NET_H
#define KILN_DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_pci.h"

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
/* struct virtio_net_hdr_v1 (s5.1.6): the header is always 12 bytes in virtio 1.x. */
#define VIRTIO_NET_HDR_SIZE 12
/* Largest frame after the header, in bytes: a 64 KiB GSO packet plus Ethernet and VLAN headers. */
#define VIRTIO_NET_MAX_FRAME 65550u
/* PCI class: network controller 0x02, Ethernet 0x00. */
#define VIRTIO_NET_PCI_CLASS 0x020000u

/* Feature bits (s5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

/* struct virtio_net_config (s5.1.4), byte offsets; kiln exposes the first 12 bytes. */
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS 8
#define VIRTIO_NET_CFG_MTU 10
#define VIRTIO_NET_CFG_SIZE 12
#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr_v1 (s5.1.6). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

struct virtio_net_params {
	const char *tap_name;   /* host TAP interface; the name in messages when tap_fd >= 0 */
	int tap_fd;             /* -1: open tap_name; else an fd that behaves as a TAP with a 12-byte
	                           header (tests), owned by the device from the call on, even on failure */
	unsigned int tap_offloads; /* with tap_fd: the TUN_F_* flags to treat as supported */
	bool mac_set;
	uint8_t mac[6];         /* when mac_set */
	unsigned int mtu;       /* 68..65535; 0: VIRTIO_NET_F_MTU not offered */
	char *err;              /* where a failure's reason is written too (it is logged), or NULL */
	size_t err_size;
};

struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes, rx_drops; /* TAP -> guest; bytes are frame bytes, headers excluded */
	uint64_t tx_packets, tx_bytes, tx_drops; /* guest -> TAP */
};

struct virtio_net;

/*
 * Create a virtio-net on the PCI bus described by `p` (everything but `ops` and `dev`) backed by
 * the TAP of `np`, and put the TAP fd on p->loop (watched only once the driver is running).
 * Returns NULL with errno: what tap_open refuses (the message, naming the interface, is logged),
 * EINVAL (mtu out of range), or what virtio_pci_create refuses.
 */
struct virtio_net *virtio_net_create(const struct virtio_pci_params *p, const struct virtio_net_params *np);

/*
 * Free it with its transport and close the TAP: same conditions as virtio_pci_destroy (after
 * loop_destroy). Logs the counters and what the driver negotiated at debug level (--verbose).
 */
void virtio_net_destroy(struct virtio_net *net);

/*
 * Stop moving packets: when it returns no frame is being read into or written from guest memory
 * and none will be until virtio_net_resume; the TAP is not watched and queue notifications are
 * ignored (they stay in the rings). For a pause or snapshot. A frame held for lack of receive
 * buffers stays in the device (a snapshot would lose it: one dropped packet). Any thread.
 */
void virtio_net_quiesce(struct virtio_net *net);
void virtio_net_resume(struct virtio_net *net);

/* Counters since creation (not reset by a driver reset). Any thread. */
void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *stats);

/* The MAC address the device reports. */
void virtio_net_mac(struct virtio_net *net, uint8_t mac[6]);

/* The feature bits offered, and the TAP offloads (TUN_F_*) set now: for tests and --verbose. */
uint64_t virtio_net_features(struct virtio_net *net);
unsigned int virtio_net_tap_offloads(struct virtio_net *net);

/* The transport, for tests. */
struct virtio_pci *virtio_net_transport(struct virtio_net *net);

/*
 * Snapshot state (section VNET, instance = PCI slot): the MAC address the guest was given (drawn at
 * random when none was configured: restore must give back the same one) and the counters. A snapshot
 * quiesces the device first (virtio_net_quiesce): no frame is half-delivered; a frame the TAP had
 * queued for the guest stays in the host's TAP and is read by whichever process opens it next.
 */
struct virtio_net_state {
	uint8_t mac[6];
	struct virtio_net_stats stats;
};

/*
 * Section VNET's payload, version 1 (8d1a722's; the oldest read): the 6 bytes of mac as they are,
 * then stats' rx_packets, rx_bytes, rx_drops, tx_packets, tx_bytes, tx_drops (le64 each). The MAC
 * must be a unicast address.
 */
extern const struct codec_table virtio_net_state_codec;

void virtio_net_save(struct virtio_net *net, struct virtio_net_state *st);
/* Give the device the snapshot's MAC and counters (before the guest runs). Any thread. */
void virtio_net_restore(struct virtio_net *net, const struct virtio_net_state *st);

/* The device type (vmm/device.h): a virtio-net per network interface. */
struct vm_device_type;
extern const struct vm_device_type virtio_net_device_type;

#endif
