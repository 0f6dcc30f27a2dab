// SPDX-License-Identifier: MIT
/* virtio-net (virtio 1.2 s5.1) on a TAP: the model is in net.h. */
#include "devices/virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backends/net/tap.h"
#include "devices/virtio/virtqueue.h"
#include "lib/log.h"
#include "vmm/device.h"
#include "vmm/snapshot_file.h"

#define ETH_HEADER_LEN 14
#define HDR_NUM_BUFFERS 10 /* offset of num_buffers in struct virtio_net_hdr_v1 */
/* A frame read from the TAP: the part past the first receive buffer lands here. One byte more
 * than the largest frame, so an oversized one shows as such instead of being cut silently. */
#define RX_BOUNCE_SIZE (VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME + 1)
#define TX_BOUNCE_SIZE (VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME)

#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)

enum rx_result {
	RX_NEXT,       /* a frame was delivered or dropped: go on */
	RX_TAP_EMPTY,  /* nothing to read: wait for EPOLLIN */
	RX_NO_BUFFERS, /* the receive ring is dry: wait for the driver */
	RX_STOP,       /* the queue or the TAP broke */
};

struct virtio_net {
	struct virtio_pci *t;
	uint64_t offered;               /* device-specific features offered: they depend on its TAP and MTU */
	struct loop *loop;
	struct tap tap;
	uint8_t mac[6];
	uint16_t mtu;

	/* Everything below: device lock. */
	uint64_t features;     /* accepted by the driver, from activation */
	uint64_t last_features; /* at the last activation, kept across resets (for the exit summary) */
	bool on_loop;          /* the TAP fd is on the loop (added at the first activation) */
	bool active;           /* between activate and reset */
	bool quiesced;
	bool tap_failed;       /* read/write error or EPOLLERR/EPOLLHUP: the TAP is off the loop */
	bool link_up;
	bool rx_wait_bufs;     /* the receive ring ran dry: TAP not watched until the driver notifies */
	bool tx_blocked;       /* the TAP said EAGAIN: transmit waits for EPOLLOUT */
	uint32_t events;       /* what the loop watches on the TAP fd now */
	struct ratelimit rl;
	/* A frame spread over several receive buffers (MRG_RXBUF): the chains popped for it, not yet
	 * pushed, and where its remaining bytes are in rx_bounce. rx_held == 0: none. */
	unsigned int rx_held;
	uint32_t rx_frame_len;
	uint32_t rx_left_off, rx_left;
	uint16_t heads[VIRTIO_NET_QUEUE_SIZE];
	uint32_t lens[VIRTIO_NET_QUEUE_SIZE];
	struct vq_chain first; /* the first receive buffer of the frame (holds its header) */
	struct vq_chain cur;   /* further receive buffers */
	struct vq_chain txc;
	struct iovec iov[IOV_MAX];
	uint8_t rx_bounce[RX_BOUNCE_SIZE];
	uint8_t tx_bounce[TX_BOUNCE_SIZE];

	_Atomic uint64_t rx_packets, rx_bytes, rx_drops;
	_Atomic uint64_t tx_packets, tx_bytes, tx_drops;
};

#define net_warn(net, fmt, ...) pr_warn_ratelimited(&(net)->rl, "virtio-net (%s): " fmt, (net)->tap.name, ##__VA_ARGS__)

/* ---- config space (s5.1.4) ---- */

static void net_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *net = dev;
	uint8_t cfg[VIRTIO_NET_CFG_SIZE];
	uint16_t v;

	memcpy(cfg + VIRTIO_NET_CFG_MAC, net->mac, 6);
	v = htole16(net->link_up ? VIRTIO_NET_S_LINK_UP : 0);
	memcpy(cfg + VIRTIO_NET_CFG_STATUS, &v, 2);
	v = htole16(1);
	memcpy(cfg + VIRTIO_NET_CFG_MAX_VQ_PAIRS, &v, 2);
	v = htole16(net->mtu);
	memcpy(cfg + VIRTIO_NET_CFG_MTU, &v, 2);
	memcpy(data, cfg + off, len);
}

/* ---- the TAP on the event loop ---- */

static void update_events(struct virtio_net *net)
{
	uint32_t want = 0;
	int ret;

	if (!net->on_loop || net->tap_failed)
		return;
	if (net->active && !net->quiesced) {
		if (!net->rx_wait_bufs)
			want |= EPOLLIN;
		if (net->tx_blocked)
			want |= EPOLLOUT;
	}
	if (want == net->events)
		return;
	ret = loop_mod(net->loop, net->tap.fd, want);
	if (ret)
		pr_warn("virtio-net (%s): cannot change the TAP's events: %s", net->tap.name, strerror(-ret));
	else
		net->events = want;
}

/* The TAP cannot be used any more: off the loop (EPOLLERR/EPOLLHUP would fire forever), link down. */
static void tap_fail(struct virtio_net *net, const char *what, int err)
{
	if (net->tap_failed)
		return;
	pr_err("virtio-net (%s): %s%s%s: the interface carries no more traffic", net->tap.name, what,
	       err ? ": " : "", err ? strerror(err) : "");
	net->tap_failed = true;
	if (net->on_loop)
		loop_del(net->loop, net->tap.fd);
	net->events = 0;
	net->link_up = false;
	virtio_pci_config_changed(net->t);
}

/* ---- receive: TAP -> guest (s5.1.6.4) ---- */

static void rx_drop(struct virtio_net *net)
{
	atomic_fetch_add(&net->rx_drops, 1);
}

/* MRG_RXBUF: every buffer MUST hold at least the header (s5.1.6.3.1). */
static bool rx_buffer_ok(struct virtio_net *net, const struct vq_chain *c)
{
	if (!(net->features & F(MRG_RXBUF)) || c->writable_bytes >= VIRTIO_NET_HDR_SIZE)
		return true;
	virtio_pci_set_needs_reset(net->t, "receive buffer of %llu bytes, smaller than the %d-byte header",
				   (unsigned long long)c->writable_bytes, VIRTIO_NET_HDR_SIZE);
	return false;
}

/* The frame is in the `nr` chains of heads/lens: fix up its header and hand them to the driver. */
static enum rx_result rx_finish(struct virtio_net *net, struct virtqueue *vq, unsigned int nr, uint32_t frame_len)
{
	uint16_t num_buffers = htole16((uint16_t)nr);

	/* The TAP leaves num_buffers alone: it holds whatever the guest's buffer held. */
	vq_chain_write(&net->first, HDR_NUM_BUFFERS, &num_buffers, 2);
	if (!(net->features & F(GUEST_CSUM))) {
		uint8_t flags = 0; /* s5.1.6.4.1: no DATA_VALID/NEEDS_CSUM without GUEST_CSUM */

		vq_chain_write(&net->first, 0, &flags, 1);
	}
	for (unsigned int i = 0; i < nr; i++)
		if (vq_push(vq, net->heads[i], net->lens[i]))
			return RX_STOP;
	atomic_fetch_add(&net->rx_packets, 1);
	atomic_fetch_add(&net->rx_bytes, frame_len - VIRTIO_NET_HDR_SIZE);
	return RX_NEXT;
}

/*
 * Spread the held frame's remaining bytes over further buffers. RX_NO_BUFFERS keeps the frame held
 * (its chains stay popped) until the driver adds buffers.
 */
static enum rx_result rx_continue(struct virtio_net *net, struct virtqueue *vq)
{
	while (net->rx_left) {
		size_t n;
		int ret;

		if (net->rx_held >= vq->size || net->rx_held >= VIRTIO_NET_QUEUE_SIZE) {
			/* Every buffer the ring can hold is not enough: give them back unused. */
			net_warn(net, "a %u-byte frame does not fit the whole receive ring: dropped", net->rx_frame_len);
			if (vq_rewind(vq, (uint16_t)net->rx_held))
				return RX_STOP;
			net->rx_held = 0;
			rx_drop(net);
			return RX_NEXT;
		}
		ret = vq_pop(vq, &net->cur);
		if (ret < 0)
			return RX_STOP;
		if (ret == 0)
			return RX_NO_BUFFERS;
		if (!rx_buffer_ok(net, &net->cur))
			return RX_STOP;
		n = vq_chain_write(&net->cur, 0, net->rx_bounce + net->rx_left_off, net->rx_left);
		net->heads[net->rx_held] = net->cur.head;
		net->lens[net->rx_held] = (uint32_t)n;
		net->rx_held++;
		net->rx_left_off += (uint32_t)n;
		net->rx_left -= (uint32_t)n;
	}
	{
		unsigned int nr = net->rx_held;

		net->rx_held = 0;
		return rx_finish(net, vq, nr, net->rx_frame_len);
	}
}

/* Read one frame from the TAP into the next receive buffer(s). */
static enum rx_result rx_read(struct virtio_net *net, struct virtqueue *vq)
{
	struct vq_chain *c = &net->first;
	unsigned int k = 0;
	uint64_t direct = 0; /* frame bytes readv puts straight into the first buffer */
	size_t in_first;
	ssize_t n;
	int ret;

	ret = vq_pop(vq, c);
	if (ret < 0)
		return RX_STOP;
	if (ret == 0)
		return RX_NO_BUFFERS;
	if (!rx_buffer_ok(net, c))
		return RX_STOP;
	if (c->nr_writable < IOV_MAX) {
		k = c->nr_writable;
		memcpy(net->iov, &c->iov[c->nr_readable], k * sizeof(struct iovec));
		direct = c->writable_bytes;
	}
	net->iov[k] = (struct iovec){ .iov_base = net->rx_bounce, .iov_len = sizeof(net->rx_bounce) };
	do
		n = readv(net->tap.fd, net->iov, (int)k + 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		int err = n < 0 ? errno : 0;

		if (vq_rewind(vq, 1))
			return RX_STOP;
		if (err == EAGAIN || err == EWOULDBLOCK)
			return RX_TAP_EMPTY;
		tap_fail(net, n < 0 ? "read" : "read: end of file", err);
		return RX_STOP;
	}
	/*
	 * Marked now, before any check: readv changed the buffer's bytes even when the frame is then dropped
	 * and the buffer given back (vq_rewind). The bounce copies below mark themselves (vq_chain_write).
	 */
	vq_chain_mark_written(c, 0, (uint64_t)n < direct ? (uint64_t)n : direct);
	if ((size_t)n < VIRTIO_NET_HDR_SIZE + ETH_HEADER_LEN || (size_t)n > VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME) {
		net_warn(net, "the TAP gave a %zd-byte frame: dropped", n);
		rx_drop(net);
		return vq_rewind(vq, 1) ? RX_STOP : RX_NEXT;
	}
	net->heads[0] = c->head;
	if ((uint64_t)n <= direct) {
		net->lens[0] = (uint32_t)n;
		return rx_finish(net, vq, 1, (uint32_t)n);
	}
	/* Past the first buffer's direct part: bytes [direct, n) are at the start of rx_bounce. */
	in_first = (size_t)direct;
	if (!direct) /* too many segments to readv into: the whole frame went to rx_bounce */
		in_first = vq_chain_write(c, 0, net->rx_bounce, (size_t)n);
	if (in_first == (size_t)n) {
		net->lens[0] = (uint32_t)n;
		return rx_finish(net, vq, 1, (uint32_t)n);
	}
	if (!(net->features & F(MRG_RXBUF))) {
		net_warn(net, "a %zd-byte frame does not fit a %llu-byte receive buffer (no MRG_RXBUF): dropped", n,
			 (unsigned long long)c->writable_bytes);
		rx_drop(net);
		return vq_rewind(vq, 1) ? RX_STOP : RX_NEXT;
	}
	net->lens[0] = (uint32_t)in_first;
	net->rx_held = 1;
	net->rx_frame_len = (uint32_t)n;
	net->rx_left_off = direct ? 0 : (uint32_t)in_first;
	net->rx_left = (uint32_t)((size_t)n - in_first);
	return rx_continue(net, vq);
}

static bool can_run(struct virtio_net *net)
{
	return net->active && !net->quiesced && !net->tap_failed;
}

static void rx_process(struct virtio_net *net)
{
	struct virtqueue *vq = virtio_pci_queue(net->t, VIRTIO_NET_RXQ);
	unsigned int budget;
	uint16_t used_before;
	enum rx_result r = RX_NEXT;

	if (!vq || !can_run(net))
		return;
	used_before = vq->used_idx;
	budget = vq->size;
	vq_disable_notify(vq);
	while (budget) {
		r = net->rx_held ? rx_continue(net, vq) : rx_read(net, vq);
		if (r == RX_NEXT) {
			budget--;
			continue;
		}
		if (r == RX_NO_BUFFERS) {
			/* Buffers may have arrived since the ring looked dry (s2.7.10): look again. */
			if (vq_enable_notify(vq)) {
				vq_disable_notify(vq);
				budget--;
				continue;
			}
			net->rx_wait_bufs = true;
		}
		break;
	}
	if (r == RX_STOP) {
		/* Broken ring or a driver that needs a reset: leave the TAP alone until the reset. */
		net->rx_wait_bufs = true;
		if (vq->broken)
			virtio_pci_set_needs_reset(net->t, "queue %u: %s", VIRTIO_NET_RXQ, vq->broken_reason);
	}
	if (vq->used_idx != used_before)
		virtio_pci_notify_queue(net->t, VIRTIO_NET_RXQ);
	/* With the budget spent, the TAP stays readable and level-triggered epoll calls again. */
}

/* ---- transmit: guest -> TAP (s5.1.6.2) ---- */

static int tx_drop(struct virtio_net *net)
{
	atomic_fetch_add(&net->tx_drops, 1);
	return 0;
}

/* Offloads a transmit header may ask for, given the features the driver accepted (s5.1.6.2.1). */
static bool tx_header_ok(struct virtio_net *net, const uint8_t *hdr)
{
	uint8_t gso = hdr[1] & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if ((hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(net->features & F(CSUM)))
		return false;
	if ((hdr[1] & VIRTIO_NET_HDR_GSO_ECN) && !(net->features & F(HOST_ECN)))
		return false;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return net->features & F(HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return net->features & F(HOST_TSO6);
	case VIRTIO_NET_HDR_GSO_UDP:
		return net->features & F(HOST_UFO);
	default:
		return false;
	}
}

/* Send the popped chain's frame. 0: sent or dropped (counted); -EAGAIN: the TAP is full, try later. */
static int tx_one(struct virtio_net *net)
{
	const struct vq_chain *c = &net->txc;
	uint8_t hdr[VIRTIO_NET_HDR_SIZE];
	uint64_t len = c->readable_bytes, skip = VIRTIO_NET_HDR_SIZE;
	unsigned int k = 1;
	ssize_t n;

	if (net->tap_failed)
		return tx_drop(net);
	if (c->nr_writable) {
		net_warn(net, "transmit buffer with device-writable descriptors: dropped");
		return tx_drop(net);
	}
	if (len < VIRTIO_NET_HDR_SIZE + ETH_HEADER_LEN || len > VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME) {
		net_warn(net, "transmit buffer of %llu bytes (header %d, frame %d..%u): dropped", (unsigned long long)len,
			 VIRTIO_NET_HDR_SIZE, ETH_HEADER_LEN, VIRTIO_NET_MAX_FRAME);
		return tx_drop(net);
	}
	/* A private copy of the header: the guest may rewrite its buffer while the kernel parses it. */
	vq_chain_read(c, 0, hdr, sizeof(hdr));
	if (!tx_header_ok(net, hdr)) {
		net_warn(net, "transmit header asks for offloads not negotiated (flags 0x%x, gso_type 0x%x): dropped", hdr[0],
			 hdr[1]);
		return tx_drop(net);
	}
	hdr[HDR_NUM_BUFFERS] = hdr[HDR_NUM_BUFFERS + 1] = 0; /* unused on transmit */
	net->iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	for (unsigned int i = 0; i < c->nr_readable && k < IOV_MAX; i++) {
		const struct iovec *seg = &c->iov[i];

		if (skip >= seg->iov_len) {
			skip -= seg->iov_len;
			continue;
		}
		net->iov[k++] = (struct iovec){ .iov_base = (uint8_t *)seg->iov_base + skip, .iov_len = seg->iov_len - skip };
		skip = 0;
	}
	if (k == IOV_MAX) {
		/* More segments than writev takes: one copy. */
		memcpy(net->tx_bounce, hdr, sizeof(hdr));
		vq_chain_read(c, VIRTIO_NET_HDR_SIZE, net->tx_bounce + VIRTIO_NET_HDR_SIZE, len - VIRTIO_NET_HDR_SIZE);
		net->iov[0] = (struct iovec){ .iov_base = net->tx_bounce, .iov_len = len };
		k = 1;
	}
	do
		n = writev(net->tap.fd, net->iov, (int)k);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		net_warn(net, "the TAP refused a %llu-byte frame: %s: dropped", (unsigned long long)len - VIRTIO_NET_HDR_SIZE,
			 strerror(errno));
		return tx_drop(net);
	}
	atomic_fetch_add(&net->tx_packets, 1);
	atomic_fetch_add(&net->tx_bytes, len - VIRTIO_NET_HDR_SIZE);
	return 0;
}

static void tx_process(struct virtio_net *net)
{
	struct virtqueue *vq = virtio_pci_queue(net->t, VIRTIO_NET_TXQ);
	unsigned int budget, pushed = 0;
	int ret = 0;

	if (!vq || !net->active || net->quiesced || net->tx_blocked)
		return;
	budget = vq->size;
	do {
		vq_disable_notify(vq);
		while (budget && (ret = vq_pop(vq, &net->txc)) > 0) {
			budget--;
			if (tx_one(net) == -EAGAIN) {
				/* Keep the chain for later: EPOLLOUT says when the TAP takes frames again. */
				ret = vq_rewind(vq, 1);
				net->tx_blocked = true;
				goto out;
			}
			ret = vq_push(vq, net->txc.head, 0);
			if (ret)
				goto out;
			pushed++;
		}
		if (ret < 0)
			break;
	} while (budget && vq_enable_notify(vq));
out:
	if (vq->broken)
		virtio_pci_set_needs_reset(net->t, "queue %u: %s", VIRTIO_NET_TXQ, vq->broken_reason);
	if (pushed)
		virtio_pci_notify_queue(net->t, VIRTIO_NET_TXQ);
	if (!budget && !net->tx_blocked && ret >= 0) {
		/* More may be waiting: come back after the loop's other sources had their turn. */
		vq_enable_notify(vq);
		virtio_pci_kick_queue(net->t, VIRTIO_NET_TXQ);
	}
}

/* ---- callbacks ---- */

/* The TAP fd is readable or writable (or broke). Loop thread. */
static void tap_event(void *opaque, int fd, uint32_t events)
{
	struct virtio_net *net = opaque;

	(void)fd;
	virtio_pci_lock(net->t);
	if (events & (EPOLLERR | EPOLLHUP)) {
		tap_fail(net, events & EPOLLERR ? "EPOLLERR (interface deleted?)" : "hung up", 0);
	} else if (can_run(net)) {
		if ((events & EPOLLOUT) && net->tx_blocked) {
			net->tx_blocked = false;
			tx_process(net);
		}
		if (events & EPOLLIN)
			rx_process(net);
	}
	update_events(net);
	virtio_pci_unlock(net->t);
}

static void net_queue_notify(void *dev, unsigned int q)
{
	struct virtio_net *net = dev;

	if (q == VIRTIO_NET_RXQ) {
		/* New receive buffers: watch the TAP again. */
		net->rx_wait_bufs = false;
		rx_process(net);
	} else if (q == VIRTIO_NET_TXQ) {
		tx_process(net);
	}
	update_events(net);
}

/* The TAP's receive offloads for what the driver accepted: never a packet it cannot take. */
static unsigned int offloads_for(uint64_t features)
{
	unsigned int f = 0;

	if (!(features & F(GUEST_CSUM)))
		return 0; /* TSO and UFO need partial checksums (s5.1.3.1), and TUNSETOFFLOAD agrees */
	f |= TUN_F_CSUM;
	if (features & F(GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (features & F(GUEST_TSO6))
		f |= TUN_F_TSO6;
	if ((features & F(GUEST_ECN)) && (f & (TUN_F_TSO4 | TUN_F_TSO6)))
		f |= TUN_F_TSO_ECN;
	if (features & F(GUEST_UFO))
		f |= TUN_F_UFO;
	return f;
}

static int net_activate(void *dev, struct virtio_pci *t)
{
	struct virtio_net *net = dev;
	unsigned int off;
	int ret;

	(void)t;
	net->features = virtio_pci_driver_features(net->t);
	off = offloads_for(net->features) & net->tap.supported;
	ret = tap_set_offload(&net->tap, off);
	if (ret) {
		pr_err("virtio-net (%s): cannot set the TAP's offloads to 0x%x: %s", net->tap.name, off, strerror(-ret));
		return ret;
	}
	if (!net->on_loop && !net->tap_failed) {
		/* Once, at the first activation: later ones only change the events (update_events). */
		ret = loop_add(net->loop, net->tap.fd, 0, tap_event, net);
		if (ret) {
			pr_err("virtio-net (%s): cannot watch the TAP: %s", net->tap.name, strerror(-ret));
			return ret;
		}
		net->on_loop = true;
		net->events = 0;
	}
	net->last_features = net->features;
	net->active = true;
	net->rx_wait_bufs = false;
	net->tx_blocked = false;
	net->rx_held = 0;
	update_events(net);
	return 0;
}

static void net_reset(void *dev)
{
	struct virtio_net *net = dev;

	net->active = false;
	net->rx_held = 0; /* the rings are forgotten with the frame */
	net->rx_wait_bufs = false;
	net->tx_blocked = false;
	net->features = 0;
	update_events(net);
	if (net->tap.offloads && tap_set_offload(&net->tap, 0))
		pr_warn("virtio-net (%s): cannot clear the TAP's offloads", net->tap.name);
}

/* Every feature a virtio-net may offer; each offers what its TAP and MTU allow (features_for). */
static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = VIRTIO_NET_PCI_CLASS,
	.features = F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) |
		    F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(GUEST_UFO) | F(HOST_UFO) | F(MTU),
	.nr_queues = 2,
	.queue_max_size = VIRTIO_NET_QUEUE_SIZE,
	.config_size = VIRTIO_NET_CFG_SIZE,
	.config_read = net_config_read,
	.activate = net_activate,
	.reset = net_reset,
	.queue_notify = net_queue_notify,
};

/* What to offer (net.h): the host side always, the guest side as far as the TAP goes. */
static uint64_t features_for(const struct tap *tap, unsigned int mtu)
{
	uint64_t f = F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN);

	if (tap->supported & TUN_F_CSUM) {
		f |= F(GUEST_CSUM);
		if (tap->supported & TUN_F_TSO4)
			f |= F(GUEST_TSO4);
		if (tap->supported & TUN_F_TSO6)
			f |= F(GUEST_TSO6);
		if ((tap->supported & TUN_F_TSO_ECN) && (f & (F(GUEST_TSO4) | F(GUEST_TSO6))))
			f |= F(GUEST_ECN);
		if (tap->supported & TUN_F_UFO)
			f |= F(GUEST_UFO) | F(HOST_UFO);
	}
	if (mtu)
		f |= F(MTU);
	return f;
}

struct virtio_net *virtio_net_create(const struct virtio_pci_params *p, const struct virtio_net_params *np)
{
	struct virtio_pci_params params = *p;
	struct virtio_net *net;
	char err[256];
	int ret;

	if (np->mtu && (np->mtu < 68 || np->mtu > 65535)) {
		if (np->tap_fd >= 0)
			close(np->tap_fd);
		errno = EINVAL;
		return NULL;
	}
	net = calloc(1, sizeof(*net));
	if (!net) {
		if (np->tap_fd >= 0)
			close(np->tap_fd);
		return NULL;
	}
	if (np->tap_fd >= 0) {
		tap_attach_fd(&net->tap, np->tap_fd, np->tap_name, np->tap_offloads);
	} else {
		ret = tap_open(&net->tap, np->tap_name, err, sizeof(err));
		if (ret) {
			pr_err("virtio-net: %s", err);
			errmsg_set(np->err, np->err_size, "%s", err);
			goto fail;
		}
	}
	if (np->mac_set) {
		memcpy(net->mac, np->mac, 6);
	} else {
		if (getrandom(net->mac, sizeof(net->mac), 0) != (ssize_t)sizeof(net->mac)) {
			ret = -errno;
			goto fail;
		}
		net->mac[0] = (uint8_t)((net->mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
	}
	net->mtu = (uint16_t)np->mtu;
	net->loop = p->loop;
	net->link_up = true;
	net->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	net->offered = features_for(&net->tap, np->mtu);
	atomic_init(&net->rx_packets, 0);
	atomic_init(&net->rx_bytes, 0);
	atomic_init(&net->rx_drops, 0);
	atomic_init(&net->tx_packets, 0);
	atomic_init(&net->tx_bytes, 0);
	atomic_init(&net->tx_drops, 0);
	params.ops = &net_ops;
	params.dev = net;
	params.features = net->offered;
	net->t = virtio_pci_create(&params);
	if (!net->t) {
		ret = -errno;
		goto fail;
	}
	pr_debug("virtio-net (%s): MAC %02x:%02x:%02x:%02x:%02x:%02x, features 0x%llx, TAP offloads 0x%x", net->tap.name,
		 net->mac[0], net->mac[1], net->mac[2], net->mac[3], net->mac[4], net->mac[5],
		 (unsigned long long)net->offered, net->tap.supported);
	return net;
fail:
	tap_close(&net->tap);
	free(net);
	errno = -ret;
	return NULL;
}

void virtio_net_destroy(struct virtio_net *net)
{
	if (!net)
		return;
	pr_debug("virtio-net (%s): rx %llu packets %llu bytes %llu drops, tx %llu packets %llu bytes %llu drops, "
		 "last driver features 0x%llx, TAP offloads 0x%x",
		 net->tap.name, (unsigned long long)atomic_load(&net->rx_packets),
		 (unsigned long long)atomic_load(&net->rx_bytes), (unsigned long long)atomic_load(&net->rx_drops),
		 (unsigned long long)atomic_load(&net->tx_packets), (unsigned long long)atomic_load(&net->tx_bytes),
		 (unsigned long long)atomic_load(&net->tx_drops), (unsigned long long)net->last_features,
		 offloads_for(net->last_features) & net->tap.supported);
	virtio_pci_destroy(net->t);
	tap_close(&net->tap);
	free(net);
}

/* ---- the device type (vmm/device.h): Firecracker's "network-interfaces" ---- */

#define SNAP_ID_VNET SNAP_FOURCC('V', 'N', 'E', 'T') /* its snapshot section, instance = PCI slot */

static unsigned int net_count(const struct vm_config *cfg)
{
	return cfg->nr_nets;
}

/* One per "network-interfaces" entry, in order, each on its TAP. */
static void *net_new(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size)
{
	const struct vm_net_config *nc = &ctx->cfg->nets[index];
	char why[300] = "";
	struct virtio_net_params np = {
		.tap_name = nc->host_dev_name, .tap_fd = -1, .mac_set = nc->guest_mac.set, .mtu = nc->mtu,
		.err = why, .err_size = sizeof(why),
	};
	struct virtio_net *net;

	memcpy(np.mac, nc->guest_mac.bytes, sizeof(np.mac));
	net = virtio_net_create(&ctx->virtio, &np);
	if (!net)
		errmsg_set(err, err_size, "network interface \"%s\": %s", nc->iface_id, why[0] ? why : strerror(errno));
	return net;
}

static struct virtio_pci *net_transport(void *dev)
{
	return virtio_net_transport(dev);
}

/* rx stops (a half-delivered frame is given back): nothing lands in guest RAM until thaw. */
static int net_quiesce(void *dev)
{
	virtio_net_quiesce(dev);
	return 0;
}

static void net_thaw(void *dev)
{
	virtio_net_resume(dev);
}

VM_DEVICE_ADAPTERS(net, virtio_net_destroy, virtio_net_save, virtio_net_restore)

const struct vm_device_type virtio_net_device_type = {
	.name = "virtio-net",
	.config_section = "network-interfaces",
	.count = net_count,
	.create = net_new,
	.destroy = net_destroy_dev,
	.transport = net_transport,
	.section = SNAP_ID_VNET,
	.codec = &virtio_net_state_codec,
	.save = net_save_dev,
	.restore = net_restore_dev,
	.quiesce = net_quiesce,
	.thaw = net_thaw,
};

void virtio_net_quiesce(struct virtio_net *net)
{
	virtio_pci_lock(net->t);
	net->quiesced = true;
	if (net->rx_held) {
		/* Give the buffers of a half-delivered frame back unused: the frame is lost. */
		struct virtqueue *vq = virtio_pci_queue(net->t, VIRTIO_NET_RXQ);

		if (vq && vq_rewind(vq, (uint16_t)net->rx_held) == 0)
			rx_drop(net);
		net->rx_held = 0;
	}
	update_events(net);
	virtio_pci_unlock(net->t);
}

void virtio_net_resume(struct virtio_net *net)
{
	virtio_pci_lock(net->t);
	net->quiesced = false;
	net->rx_wait_bufs = false;
	update_events(net);
	if (net->active) {
		virtio_pci_kick_queue(net->t, VIRTIO_NET_RXQ);
		virtio_pci_kick_queue(net->t, VIRTIO_NET_TXQ);
	}
	virtio_pci_unlock(net->t);
}

void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *s)
{
	s->rx_packets = atomic_load(&net->rx_packets);
	s->rx_bytes = atomic_load(&net->rx_bytes);
	s->rx_drops = atomic_load(&net->rx_drops);
	s->tx_packets = atomic_load(&net->tx_packets);
	s->tx_bytes = atomic_load(&net->tx_bytes);
	s->tx_drops = atomic_load(&net->tx_drops);
}

void virtio_net_mac(struct virtio_net *net, uint8_t mac[6])
{
	memcpy(mac, net->mac, 6);
}

uint64_t virtio_net_features(struct virtio_net *net)
{
	return net->offered;
}

unsigned int virtio_net_tap_offloads(struct virtio_net *net)
{
	unsigned int f;

	virtio_pci_lock(net->t);
	f = net->tap.offloads;
	virtio_pci_unlock(net->t);
	return f;
}

struct virtio_pci *virtio_net_transport(struct virtio_net *net)
{
	return net->t;
}

/* ---- snapshot state ---- */

void virtio_net_save(struct virtio_net *net, struct virtio_net_state *st)
{
	memset(st, 0, sizeof(*st));
	virtio_pci_lock(net->t);
	memcpy(st->mac, net->mac, sizeof(st->mac));
	virtio_pci_unlock(net->t);
	virtio_net_get_stats(net, &st->stats);
}

void virtio_net_restore(struct virtio_net *net, const struct virtio_net_state *st)
{
	virtio_pci_lock(net->t);
	memcpy(net->mac, st->mac, sizeof(net->mac));
	atomic_store(&net->rx_packets, st->stats.rx_packets);
	atomic_store(&net->rx_bytes, st->stats.rx_bytes);
	atomic_store(&net->rx_drops, st->stats.rx_drops);
	atomic_store(&net->tx_packets, st->stats.tx_packets);
	atomic_store(&net->tx_bytes, st->stats.tx_bytes);
	atomic_store(&net->tx_drops, st->stats.tx_drops);
	virtio_pci_unlock(net->t);
}

/* A multicast address (bit 0 of the first byte) is no station's address (IEEE 802). */
static int virtio_net_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct virtio_net_state *st = p;

	(void)version;
	if (st->mac[0] & 1) {
		errmsg_set(err, err_size, "virtio-net state: MAC address with the multicast bit set");
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field virtio_net_state_fields[] = {
	CODEC_BYTES(struct virtio_net_state, mac, 1),
	CODEC_UINT(struct virtio_net_state, stats.rx_packets, 8, 1),
	CODEC_UINT(struct virtio_net_state, stats.rx_bytes, 8, 1),
	CODEC_UINT(struct virtio_net_state, stats.rx_drops, 8, 1),
	CODEC_UINT(struct virtio_net_state, stats.tx_packets, 8, 1),
	CODEC_UINT(struct virtio_net_state, stats.tx_bytes, 8, 1),
	CODEC_UINT(struct virtio_net_state, stats.tx_drops, 8, 1),
};

const struct codec_table virtio_net_state_codec =
	CODEC_TABLE(struct virtio_net_state, "virtio-net state", 1, 1, virtio_net_state_fields, virtio_net_state_check);
