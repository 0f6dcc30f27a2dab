// SPDX-License-Identifier: MIT
/*
 * virtio-net (virtio 1.2 s5.1) against a fake KVM, as test_virtio_pci.c does it: a real PCI bus reached
 * through ECAM and BAR 0, the device event loop run by the test's thread, rings in memfd guest memory,
 * fake KVM_IOEVENTFD / GSI routing / irqfds. The TAP is one end of a SOCK_SEQPACKET socketpair (one
 * message per frame, like a TAP fd); the test holds the other end and plays the host network. The test
 * also plays the driver (tests/lib/fake_driver.h), well-behaved and hostile. No root needed.
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/net/tap.h"
#include "devices/pci/msix.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"

#include "fake_driver.h"
#include "fake_vmm.h"

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB)
#define SLOT 3
#define QSIZE 16

/* Rings: queue 0 (receiveq1) and queue 1 (transmitq1). */
static const uint64_t desc_gpa[2] = { 0x10000, 0x14000 };
static const uint64_t avail_gpa[2] = { 0x11000, 0x15000 };
static const uint64_t used_gpa[2] = { 0x12000, 0x16000 };
#define RXBUF_GPA 0x100000ull /* receive buffers, 64 KiB apart */
#define TXBUF_GPA 0x800000ull /* transmit buffers, 128 KiB apart */

#define RXQ VIRTIO_NET_RXQ
#define TXQ VIRTIO_NET_TXQ
#define HDR VIRTIO_NET_HDR_SIZE
#define MSI_ADDR 0xfee00000ull
#define MSI_DATA 0x40u /* + vector: 0 config, 1 rx, 2 tx */
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)
#define BASE_FEATURES VIRTIO_BIT(VIRTIO_F_VERSION_1)

/* ---- fixture ---- */

struct fixture {
	struct fake_vmm vm;
	struct fake_driver drv;
	struct virtio_net *net;
	struct virtio_pci *t;
	int peer;             /* the host network's end of the fake TAP */
	int dev_fd;           /* the device's end (owned by the device) */
};

static int setup_with(void **state, unsigned int offloads, unsigned int mtu, bool mac_set)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true, /* run by the test */
	};
	struct virtio_pci_params p;
	struct virtio_net_params np = {
		.tap_name = "faketap", .tap_offloads = offloads, .mtu = mtu, .mac_set = mac_set,
		.mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 },
	};
	int sv[2];

	if (!f || fake_vmm_init(&f->vm, &cfg))
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	f->dev_fd = sv[0];
	f->peer = sv[1];
	np.tap_fd = sv[0];
	p = fake_vmm_virtio_params(&f->vm, SLOT);
	f->net = virtio_net_create(&p, &np);
	if (!f->net)
		return -1;
	f->t = virtio_net_transport(f->net);
	fake_driver_attach(&f->drv, &f->vm, virtio_pci_device(f->t), SLOT);
	*state = f;
	return 0;
}

#define ALL_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO)

static int setup(void **state)
{
	return setup_with(state, ALL_OFFLOADS, 0, true);
}

static int setup_plain(void **state)
{
	return setup_with(state, 0, 1400, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_vmm_stop(&f->vm);
	virtio_net_destroy(f->net);
	fake_vmm_destroy(&f->vm);
	close(f->peer);
	free(f);
	return 0;
}

static void *hva(struct fixture *f, uint64_t gpa, uint64_t len)
{
	return fake_vmm_hva(&f->vm, gpa, len);
}

static void queue_setup(struct fixture *f, unsigned int q)
{
	/* MSI-X vector q + 1: 0 is the configuration's. */
	fake_driver_queue(&f->drv, q, QSIZE, desc_gpa[q], avail_gpa[q], used_gpa[q], (uint16_t)(q + 1));
}

static void msix_on(struct fixture *f)
{
	assert_int_equal(fake_driver_msix_on(&f->drv, 3, MSI_ADDR, MSI_DATA), 0);
}

#define STATUS_LIVE FAKE_DRIVER_STATUS_LIVE

/* s3.1.1 and s5.1.5 (both queues), as Linux's virtio_pci_modern + virtio_net. */
static void driver_init(struct fixture *f, uint64_t features)
{
	features |= BASE_FEATURES;
	assert_int_equal(fake_driver_reset(&f->drv), 0);
	assert_int_equal(fake_driver_begin(&f->drv) & features, features);
	assert_true(fake_driver_accept(&f->drv, features) & VIRTIO_STATUS_FEATURES_OK);
	msix_on(f);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	queue_setup(f, RXQ);
	queue_setup(f, TXQ);
	assert_int_equal(fake_driver_live(&f->drv), STATUS_LIVE);
}

/* A raw descriptor, as a hostile driver may write it. */
static void desc(struct fixture *f, unsigned int q, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	fake_vq_write_desc(&f->vm.mem, desc_gpa[q], i, addr, len, flags, next);
}

static void offer(struct fixture *f, unsigned int q, uint16_t head)
{
	fake_driver_offer(&f->drv, q, head);
}

/* The guest's notify write, as KVM's ioeventfd would deliver it. */
static void kick(struct fixture *f, unsigned int q)
{
	assert_int_equal(fake_driver_kick(&f->drv, q), 0);
}

static uint16_t used_idx(struct fixture *f, unsigned int q)
{
	return fake_driver_used_idx(&f->drv, q);
}

static struct virtq_used_elem used_elem(struct fixture *f, unsigned int q, uint16_t i)
{
	return fake_driver_used_elem(&f->drv, q, i);
}

/* Interrupts delivered through the irqfd of MSI-X vector `v` (reads the eventfd). */
static uint64_t msi_count(struct fixture *f, unsigned int v)
{
	return fake_kvm_msi_count(&f->vm.kvm, MSI_DATA + v);
}

/* Run the device event loop until `cond` (evaluated once per turn: it may consume, as msi_count does). */
#define WAIT_UNTIL(cond) do { bool ok_; FAKE_VMM_WAIT(&f->vm, ok_, (cond)); assert_true(ok_); } while (0)

/* Run the loop until it has nothing left to do (to show that something does NOT happen). */
static void settle(struct fixture *f)
{
	fake_vmm_run_idle(&f->vm);
}

static struct virtio_net_stats stats(struct fixture *f)
{
	struct virtio_net_stats s;

	virtio_net_get_stats(f->net, &s);
	return s;
}

/* A frame of `len` bytes after the header: a recognisable pattern per `seed`. */
static void make_frame(uint8_t *buf, size_t len, unsigned int seed)
{
	memset(buf, 0, HDR);
	for (size_t i = 0; i < len; i++)
		buf[HDR + i] = (uint8_t)(i * 7 + seed);
}

/* The host sends a header + frame into the TAP. */
static void host_send(struct fixture *f, const uint8_t *buf, size_t len)
{
	assert_int_equal(send(f->peer, buf, len, 0), (ssize_t)len);
}

/* Used ring entry `i` of the receive queue: receive buffer i (descriptor i), `len` bytes written into it. */
static void check_rx_used(struct fixture *f, uint16_t i, uint32_t len)
{
	struct virtq_used_elem u = used_elem(f, RXQ, i);

	assert_int_equal(u.id, i);
	assert_int_equal(u.len, len);
}

/* Post receive buffer `i` (one descriptor of `len` bytes at RXBUF_GPA + i * 64 KiB) as descriptor i. */
static void post_rx(struct fixture *f, unsigned int i, uint32_t len)
{
	uint64_t gpa = RXBUF_GPA + (uint64_t)i * 0x10000;

	const struct fake_seg seg = { gpa, len, true };

	memset(hva(f, gpa, len + 64), 0xee, len + 64); /* 64 guard bytes past the buffer */
	offer(f, RXQ, fake_driver_chain(&f->drv, RXQ, (uint16_t)i, &seg, 1));
}

static const uint8_t *rxbuf(struct fixture *f, unsigned int i, uint32_t len)
{
	return hva(f, RXBUF_GPA + (uint64_t)i * 0x10000, len);
}

/* Post a transmit chain: header and frame in two descriptors (Linux puts them in one or two). */
static void post_tx(struct fixture *f, unsigned int i, const uint8_t *buf, size_t len)
{
	uint64_t gpa = TXBUF_GPA + (uint64_t)i * 0x20000;
	const struct fake_seg segs[] = { { gpa, HDR, false }, { gpa + HDR, (uint32_t)(len - HDR), false } };

	assert_int_equal(guest_memory_write(&f->vm.mem, gpa, buf, len), 0);
	offer(f, TXQ, fake_driver_chain(&f->drv, TXQ, (uint16_t)(2 * i), segs, 2));
}

/* ---- config space and features (s5.1.3, s5.1.4) ---- */

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	uint8_t mac[6];

	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_REVISION_ID, 4) >> 8, VIRTIO_NET_PCI_CLASS);
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_MAC + i, 1), i ? 0x11 * i : 0x02);
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP);
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_MAX_VQ_PAIRS, 2), 1);
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_MTU, 2), 0);
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, 0, 4), 0x33221102);
	virtio_net_mac(f->net, mac);
	assert_memory_equal(mac, "\x02\x11\x22\x33\x44\x55", 6);
	/* Writes are ignored: the MAC is the device's (no CTRL_MAC_ADDR). */
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_DEVICE_OFFSET, 0xffffffff, 4);
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, 0, 4), 0x33221102);
	assert_int_equal(fake_virtio_device_features(&f->drv.fv),
			 BASE_FEATURES | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) |
				 F(MAC) | F(STATUS) | F(MRG_RXBUF) | F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) |
				 F(HOST_UFO) | F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(GUEST_UFO));
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_NET_QUEUE_SIZE);
}

/* A TAP without offloads, an MTU, no MAC configured. */
static void test_config_plain_tap(void **state)
{
	struct fixture *f = *state;
	uint64_t features = fake_virtio_device_features(&f->drv.fv);
	uint8_t mac[6];

	assert_true(features & F(MTU));
	assert_true(features & F(MAC));
	assert_true(features & F(CSUM)); /* the TAP takes partial checksums and GSO whatever it offloads */
	assert_true(features & F(HOST_TSO4));
	assert_false(features & (F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) | F(GUEST_UFO) |
				 F(HOST_UFO)));
	assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_MTU, 2), 1400);
	/* A random unicast, locally administered MAC. */
	virtio_net_mac(f->net, mac);
	assert_int_equal(mac[0] & 3, 2);
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_MAC + i, 1), mac[i]);
}

static void test_feature_negotiation(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtio_net_tap_offloads(f->net), 0);
	driver_init(f, F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_ECN) | F(MRG_RXBUF));
	assert_int_equal(virtio_net_tap_offloads(f->net), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN);
	driver_init(f, F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_UFO));
	assert_int_equal(virtio_net_tap_offloads(f->net), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO);
	/* TSO without GUEST_CSUM (a dependency the driver ignored): nothing the TAP could honour. */
	driver_init(f, F(GUEST_TSO4));
	assert_int_equal(virtio_net_tap_offloads(f->net), 0);
	driver_init(f, 0);
	assert_int_equal(virtio_net_tap_offloads(f->net), 0);
	driver_init(f, F(GUEST_CSUM));
	assert_int_equal(virtio_net_tap_offloads(f->net), TUN_F_CSUM);
	fake_virtio_set_status(&f->drv.fv, 0); /* reset: offloads off again */
	assert_int_equal(virtio_net_tap_offloads(f->net), 0);
	/* Features the device does not offer are refused (the transport's check, s2.2.2). */
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fake_virtio_write_driver_features(&f->drv.fv, BASE_FEATURES | VIRTIO_BIT(17) /* CTRL_VQ */);
	fake_virtio_set_status(&f->drv.fv, FAKE_DRIVER_STATUS_FEATURES);
	assert_false(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_FEATURES_OK);
}

/* ---- transmit ---- */

static void test_tx_frame(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 1000], got[2048];
	struct virtio_net_stats s;

	driver_init(f, F(CSUM) | F(HOST_TSO4));
	make_frame(frame, 1000, 1);
	frame[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	frame[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	fake_le_put(frame + 2, 54, 2);    /* hdr_len */
	fake_le_put(frame + 4, 946, 2);   /* gso_size */
	fake_le_put(frame + 6, 34, 2);    /* csum_start */
	fake_le_put(frame + 8, 16, 2);    /* csum_offset */
	fake_le_put(frame + 10, 0xabcd, 2); /* num_buffers: unused on transmit, zeroed */
	post_tx(f, 0, frame, sizeof(frame));
	kick(f, TXQ);
	WAIT_UNTIL(used_idx(f, TXQ) == 1);
	assert_int_equal(recv(f->peer, got, sizeof(got), 0), (ssize_t)sizeof(frame));
	frame[10] = frame[11] = 0;
	assert_memory_equal(got, frame, sizeof(frame));
	assert_int_equal(used_elem(f, TXQ, 0).id, 0);
	assert_int_equal(used_elem(f, TXQ, 0).len, 0);
	WAIT_UNTIL(msi_count(f, 2) >= 1);
	s = stats(f);
	assert_int_equal(s.tx_packets, 1);
	assert_int_equal(s.tx_bytes, 1000);
	assert_int_equal(s.tx_drops, 0);
}

/* Chains a hostile or broken driver may send: each dropped and counted, the device keeps working. */
static void test_tx_hostile(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = calloc(1, HDR + VIRTIO_NET_MAX_FRAME + 1), got[256];
	uint64_t gpa = TXBUF_GPA;

	assert_non_null(big);
	driver_init(f, F(CSUM)); /* no HOST_TSO4 */
	/* 0: a device-writable descriptor in the chain. */
	desc(f, TXQ, 0, gpa, 100, VIRTQ_DESC_F_NEXT, 1);
	desc(f, TXQ, 1, gpa + 100, 100, VIRTQ_DESC_F_WRITE, 0);
	offer(f, TXQ, 0);
	/* 1: shorter than the header. */
	desc(f, TXQ, 2, gpa, 8, 0, 0);
	offer(f, TXQ, 2);
	/* 2: a frame of VIRTIO_NET_MAX_FRAME + 1 bytes. */
	assert_int_equal(guest_memory_write(&f->vm.mem, TXBUF_GPA + 0x100000, big, HDR + VIRTIO_NET_MAX_FRAME + 1), 0);
	desc(f, TXQ, 3, TXBUF_GPA + 0x100000, HDR + VIRTIO_NET_MAX_FRAME + 1, 0, 0);
	offer(f, TXQ, 3);
	/* 3: GSO TCPv4 without HOST_TSO4. */
	make_frame(big, 100, 0);
	big[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	assert_int_equal(guest_memory_write(&f->vm.mem, gpa + 0x1000, big, HDR + 100), 0);
	desc(f, TXQ, 4, gpa + 0x1000, HDR + 100, 0, 0);
	offer(f, TXQ, 4);
	/* 4: an unknown GSO type. */
	big[1] = 0x42;
	assert_int_equal(guest_memory_write(&f->vm.mem, gpa + 0x2000, big, HDR + 100), 0);
	desc(f, TXQ, 5, gpa + 0x2000, HDR + 100, 0, 0);
	offer(f, TXQ, 5);
	/* 5: a good one. */
	make_frame(big, 100, 5);
	post_tx(f, 3, big, HDR + 100);
	kick(f, TXQ);
	WAIT_UNTIL(used_idx(f, TXQ) == 6);
	assert_int_equal(recv(f->peer, got, sizeof(got), 0), HDR + 100);
	assert_memory_equal(got, big, HDR + 100);
	assert_int_equal(recv(f->peer, got, sizeof(got), 0), -1); /* nothing else reached the TAP */
	assert_int_equal(stats(f).tx_drops, 5);
	assert_int_equal(stats(f).tx_packets, 1);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
	free(big);
}

/* The TAP says EAGAIN: the chains wait in the ring for EPOLLOUT, in order, none dropped. */
static void test_tx_eagain(void **state)
{
	struct fixture *f = *state;
	int sndbuf = 1; /* the kernel's minimum: a few frames fill it */
	uint8_t frame[HDR + 1500], got[2048];
	unsigned int n = 6, received = 0;
	struct fake_wait w;

	assert_int_equal(setsockopt(f->dev_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	driver_init(f, 0);
	for (unsigned int i = 0; i < n; i++) {
		make_frame(frame, 1500, i);
		post_tx(f, i, frame, sizeof(frame));
	}
	kick(f, TXQ);
	settle(f);
	assert_true(used_idx(f, TXQ) < n); /* the socket filled up */
	w = fake_vmm_wait_start(&f->vm, FAKE_VMM_WAIT_MS);
	while (received < n) {
		ssize_t r = recv(f->peer, got, sizeof(got), 0);

		if (r < 0) {
			/* Room in the socket again: the device's EPOLLOUT, on this thread's loop turn. */
			if (!fake_vmm_wait_step(&w))
				break;
			continue;
		}
		assert_int_equal(r, sizeof(frame));
		make_frame(frame, 1500, received);
		assert_memory_equal(got, frame, sizeof(frame));
		received++;
	}
	assert_int_equal(received, n);
	WAIT_UNTIL(used_idx(f, TXQ) == n);
	assert_int_equal(stats(f).tx_drops, 0);
	assert_int_equal(stats(f).tx_packets, n);
}

/* ---- receive ---- */

static void test_rx_one_buffer(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 60];

	driver_init(f, 0);
	post_rx(f, 0, 1526);
	post_rx(f, 1, 1526);
	kick(f, RXQ);
	make_frame(frame, 60, 3);
	frame[0] = VIRTIO_NET_HDR_F_DATA_VALID; /* cleared: no GUEST_CSUM */
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	check_rx_used(f, 0, sizeof(frame));
	frame[0] = 0;
	fake_le_put(frame + 10, 1, 2); /* num_buffers */
	assert_memory_equal(rxbuf(f, 0, sizeof(frame)), frame, sizeof(frame));
	WAIT_UNTIL(msi_count(f, 1) >= 1);
	assert_int_equal(stats(f).rx_packets, 1);
	assert_int_equal(stats(f).rx_bytes, 60);
	/* With GUEST_CSUM, the TAP's flags pass through. */
	driver_init(f, F(GUEST_CSUM));
	post_rx(f, 0, 1526);
	kick(f, RXQ);
	frame[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	assert_memory_equal(rxbuf(f, 0, sizeof(frame)), frame, sizeof(frame));
}

/* MRG_RXBUF: one frame over several buffers, num_buffers in the first header (s5.1.6.4). */
static void test_rx_mergeable(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 200], got[HDR + 200];
	size_t off = 0;

	driver_init(f, F(MRG_RXBUF));
	for (unsigned int i = 0; i < 6; i++)
		post_rx(f, i, 64);
	kick(f, RXQ);
	make_frame(frame, 200, 9);
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(used_idx(f, RXQ) == 4);
	for (unsigned int i = 0; i < 4; i++) {
		struct virtq_used_elem u = used_elem(f, RXQ, (uint16_t)i);

		assert_int_equal(u.id, i);
		assert_int_equal(u.len, i < 3 ? 64 : sizeof(frame) - 192);
		memcpy(got + off, rxbuf(f, i, u.len), u.len);
		off += u.len;
	}
	assert_int_equal(fake_le_get(got + 10, 2), 4);
	fake_le_put(frame + 10, 4, 2);
	assert_memory_equal(got, frame, sizeof(frame));
	/* The next frame starts in the next buffer. */
	make_frame(frame, 40, 1);
	host_send(f, frame, HDR + 40);
	WAIT_UNTIL(used_idx(f, RXQ) == 5);
	check_rx_used(f, 4, HDR + 40);
	assert_int_equal(stats(f).rx_packets, 2);
	assert_int_equal(stats(f).rx_drops, 0);
}

/* Without MRG_RXBUF a frame must fit one buffer: else dropped, counted, and the buffer reused. */
static void test_rx_too_small_without_mrg(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 100];

	driver_init(f, 0);
	post_rx(f, 0, 50);
	kick(f, RXQ);
	make_frame(frame, 100, 2);
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(stats(f).rx_drops == 1);
	assert_int_equal(used_idx(f, RXQ), 0);
	/* Only the bytes of the buffer were touched. */
	assert_int_equal(rxbuf(f, 0, 51)[50], 0xee);
	make_frame(frame, 30, 4);
	host_send(f, frame, HDR + 30);
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	check_rx_used(f, 0, HDR + 30);
	assert_int_equal(stats(f).rx_packets, 1);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

/* No receive buffers: the TAP is not read (frames wait in it); buffers + notification resume. */
static void test_rx_waits_for_buffers(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 300], got[HDR + 300];

	driver_init(f, F(MRG_RXBUF));
	make_frame(frame, 100, 5);
	host_send(f, frame, HDR + 100);
	make_frame(frame, 300, 6);
	host_send(f, frame, sizeof(frame));
	settle(f);
	assert_int_equal(used_idx(f, RXQ), 0);
	assert_int_equal(stats(f).rx_drops, 0);
	/* One buffer: the first frame; the second needs three and gets one so far. */
	post_rx(f, 0, 128);
	post_rx(f, 1, 128);
	kick(f, RXQ);
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	settle(f);
	assert_int_equal(used_idx(f, RXQ), 1);
	post_rx(f, 2, 128);
	post_rx(f, 3, 128);
	kick(f, RXQ);
	WAIT_UNTIL(used_idx(f, RXQ) == 4);
	for (unsigned int i = 1; i < 4; i++) {
		assert_int_equal(used_elem(f, RXQ, (uint16_t)i).id, i);
		memcpy(got + (i - 1) * 128, rxbuf(f, i, 128), used_elem(f, RXQ, (uint16_t)i).len);
	}
	assert_int_equal(used_elem(f, RXQ, 3).len, sizeof(frame) - 256);
	fake_le_put(frame + 10, 3, 2);
	assert_memory_equal(got, frame, sizeof(frame));
	assert_int_equal(stats(f).rx_packets, 2);
	assert_int_equal(stats(f).rx_drops, 0);
}

/* A frame the whole ring cannot hold: dropped, its buffers given back for the next frames. */
static void test_rx_frame_larger_than_ring(void **state)
{
	struct fixture *f = *state;
	uint8_t *frame = calloc(1, HDR + 4000);

	assert_non_null(frame);
	driver_init(f, F(MRG_RXBUF));
	for (unsigned int i = 0; i < QSIZE; i++)
		post_rx(f, i, 100);
	kick(f, RXQ);
	make_frame(frame, 4000, 1);
	host_send(f, frame, HDR + 4000);
	WAIT_UNTIL(stats(f).rx_drops == 1);
	make_frame(frame, 50, 2);
	host_send(f, frame, HDR + 50);
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	assert_int_equal(used_elem(f, RXQ, 0).id, 0);
	assert_memory_equal(rxbuf(f, 0, 20) + 12, frame + 12, 8);
	free(frame);
}

/* MRG_RXBUF buffers smaller than the header break a MUST (s5.1.6.3.1): DEVICE_NEEDS_RESET. */
static void test_rx_mrg_buffer_below_header(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 60];

	driver_init(f, F(MRG_RXBUF));
	post_rx(f, 0, 4);
	kick(f, RXQ);
	make_frame(frame, 60, 0);
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(used_idx(f, RXQ), 0);
	/* A reset and a sane driver: it works again (the frame waited in the TAP). */
	driver_init(f, F(MRG_RXBUF));
	post_rx(f, 0, 2048);
	kick(f, RXQ);
	WAIT_UNTIL(used_idx(f, RXQ) == 1);
	assert_int_equal(used_elem(f, RXQ, 0).len, sizeof(frame));
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* A receive descriptor outside guest RAM: NEEDS_RESET, and the readable TAP does not make the loop spin. */
static void test_rx_broken_ring(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 60];
	double before;
	unsigned int fired;

	driver_init(f, 0);
	desc(f, RXQ, 0, HOLE_START + 0x1000, 1526, VIRTQ_DESC_F_WRITE, 0);
	offer(f, RXQ, 0);
	kick(f, RXQ);
	make_frame(frame, 60, 0);
	host_send(f, frame, sizeof(frame));
	WAIT_UNTIL(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	settle(f);
	/* 200 ms of the loop: asleep in epoll_wait, not called back over and over for the readable TAP. */
	before = cpu_seconds();
	fired = fake_vmm_run_for(&f->vm, 200);
	assert_true(cpu_seconds() - before < 0.1);
	assert_int_equal(fired, 0);
	assert_int_equal(used_idx(f, RXQ), 0);
}

static void test_quiesce(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 60], got[256];

	driver_init(f, 0);
	post_rx(f, 0, 1526);
	kick(f, RXQ);
	virtio_net_quiesce(f->net);
	make_frame(frame, 60, 7);
	host_send(f, frame, sizeof(frame));
	post_tx(f, 0, frame, sizeof(frame));
	kick(f, TXQ);
	settle(f);
	assert_int_equal(used_idx(f, RXQ), 0);
	assert_int_equal(used_idx(f, TXQ), 0);
	assert_int_equal(recv(f->peer, got, sizeof(got), 0), -1);
	virtio_net_resume(f->net);
	WAIT_UNTIL(used_idx(f, RXQ) == 1 && used_idx(f, TXQ) == 1);
	assert_int_equal(recv(f->peer, got, sizeof(got), 0), sizeof(frame));
}

/* The TAP end going away (EPOLLHUP): link down, a configuration interrupt, transmit drops. */
static void test_tap_gone(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[HDR + 60];

	driver_init(f, 0);
	close(f->peer);
	f->peer = -1;
	WAIT_UNTIL(fake_virtio_devcfg_read(&f->drv.fv, VIRTIO_NET_CFG_STATUS, 2) == 0);
	WAIT_UNTIL(msi_count(f, 0) >= 1);
	make_frame(frame, 60, 7);
	post_tx(f, 0, frame, sizeof(frame));
	kick(f, TXQ);
	WAIT_UNTIL(used_idx(f, TXQ) == 1);
	assert_int_equal(stats(f).tx_drops, 1);
}

/* tap_open's messages name the interface. */
static void test_tap_open_errors(void **state)
{
	struct tap tap;
	char err[256];

	(void)state;
	assert_int_equal(tap_open(&tap, "bad/name", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad/name"));
	assert_int_equal(tap_open(&tap, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(tap_open(&tap, "sixteen-bytes-xx", err, sizeof(err)), -EINVAL);
	if (access("/dev/net/tun", R_OK | W_OK) == 0) {
		/* An interface that exists and is not a TAP. */
		assert_int_equal(tap_open(&tap, "lo", err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "lo: cannot attach"));
		assert_non_null(strstr(err, "not a TAP"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_plain_tap, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_eagain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_one_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_too_small_without_mrg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_frame_larger_than_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mrg_buffer_below_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_broken_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tap_gone, setup, teardown),
		cmocka_unit_test(test_tap_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
