// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for virtio-net (src/devices/virtio/net.c, virtio 1.2 s5.1) over the real virtio
 * PCI transport, PCI bus and virtqueues, with a fake KVM and, as tests/unit/test_virtio_net.c does, one
 * end of a SOCK_SEQPACKET socketpair for the TAP (one message per frame): the input is a hostile
 * driver's guest RAM (both queues' rings, receive buffers, transmit chains with their headers) and
 * the frames the host network sends; the harness plays the rest of the driver through the registers
 * and runs the device event loop itself (loop_run_once), draining what the device transmits.
 *
 * Input: byte 0: log2 of the receive queue's size (low nibble) and of the transmit queue's (high
 * nibble), each % 9. Bytes 1-2 (le16): which of the offered features the driver accepts, bit i for
 * accept_bits[i] below. Byte 3: bits 0-2 the number of host frames; bit 3 reset the device after the
 * first loop turn; bit 4 notify both queues a second time. Then each host frame: a le16 length and
 * that many bytes (header and frame, as the TAP hands them over). The rest (up to 64 KiB): guest RAM
 * from GPA 0, copied again at 4 GiB. Guest RAM is 2 MiB around a hole: [0, 1 MiB) and
 * [4 GiB, 4 GiB + 1 MiB). Receive queue: descriptors 0x0, available ring 0x1000, used ring 0x2000;
 * transmit queue: 0x3000, 0x4000, 0x5000 (the used rings are the device's: zeroed before each run).
 *
 * Invariants (abort on violation): the device goes live and never hangs; what reaches the TAP is a
 * header and a 14..VIRTIO_NET_MAX_FRAME-byte frame whose header asks only for negotiated offloads,
 * with num_buffers zero; the transmit counter matches the frames the TAP got; no more frames are
 * delivered or dropped than the host sent; used entries name heads below their queue's size, a
 * receive entry holding at most a whole frame and its header; after a reset, guest RAM is left alone.
 *
 * Seeds (KILN_FUZZ_SEEDS): a frame each way, a frame merged over small receive buffers, checksum/TSO
 * headers with and without the features, a reset.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "devices/pci/pci.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "fake_driver.h"
#include "fake_vmm.h"
#include "fuzz_common.h"
#include "lib/log.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/memory.h"

#define RAM_SIZE (2u << 20)
#define HOLE_START (1u << 20)
#define DATA_MAX (64u << 10)
#define RING_END 0x6000ull
#define SLOT 3
#define MAX_ROUNDS 100000
#define HDR VIRTIO_NET_HDR_SIZE
#define MAX_HOST_FRAME (HDR + VIRTIO_NET_MAX_FRAME + 16) /* a little over, to be dropped */

static const uint64_t desc_gpa[2] = { 0x0, 0x3000 };
static const uint64_t avail_gpa[2] = { 0x1000, 0x4000 };
static const uint64_t used_gpa[2] = { 0x2000, 0x5000 };

/* The features a driver may accept, indexed by the input's bits. */
static const unsigned int accept_bits[16] = {
	VIRTIO_NET_F_CSUM,      VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
	VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_UFO,  VIRTIO_NET_F_HOST_TSO4,  VIRTIO_NET_F_HOST_TSO6,
	VIRTIO_NET_F_HOST_ECN,  VIRTIO_NET_F_HOST_UFO,   VIRTIO_NET_F_MRG_RXBUF,  VIRTIO_F_RING_EVENT_IDX,
	VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_NET_F_MAC,   VIRTIO_NET_F_STATUS,     VIRTIO_NET_F_MTU,
};

struct fuzz_state {
	struct fake_vmm vm;    /* its fake KVM accepts everything */
	struct virtio_net *net;
	struct virtio_pci *t;
	struct fake_driver drv; /* the driver's side of the device's registers and queues */
	int dev_fd;            /* the device's end of the socketpair (the device owns it) */
	int peer;              /* the host network's end */
	unsigned int tx_seen;  /* frames the TAP got this run */
	uint8_t frame[MAX_HOST_FRAME];
	uint8_t *ram_copy;
};

static struct fuzz_state *fuzz;

/* ---- the driver's side ---- */

/* Reset, then s3.1.1 up to FEATURES_OK and both queues set up; DRIVER_OK comes after guest RAM. */
static void driver_init(const uint16_t qsize[2], uint64_t want)
{
	struct fake_driver *d = &fuzz->drv;

	CHECK(fake_driver_reset(d) == 0);
	CHECK(fake_driver_accept(d, fake_driver_begin(d) & want) == FAKE_DRIVER_STATUS_FEATURES);
	for (unsigned int q = 0; q < 2; q++)
		fake_driver_queue(d, q, qsize[q], desc_gpa[q], avail_gpa[q], used_gpa[q], VIRTIO_MSI_NO_VECTOR);
}

static void notify(unsigned int q)
{
	fake_virtio_notify(&fuzz->drv.fv, q);
}

/* What the device wrote to the TAP: a header kiln may send, then a frame of a possible size. */
static void drain_tap(void)
{
	struct fuzz_state *f = fuzz;
	uint8_t *p = f->frame;
	ssize_t n;

	while ((n = recv(f->peer, p, sizeof(f->frame), MSG_DONTWAIT)) >= 0) {
		uint8_t gso = p[1] & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

		CHECK_MSG(n >= HDR + 14 && n <= HDR + VIRTIO_NET_MAX_FRAME, "a %zd-byte frame reached the TAP", n);
		CHECK(p[10] == 0 && p[11] == 0); /* num_buffers: unused on transmit */
		if (p[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			CHECK(f->drv.features & VIRTIO_BIT(VIRTIO_NET_F_CSUM));
		if (p[1] & VIRTIO_NET_HDR_GSO_ECN)
			CHECK(f->drv.features & VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN));
		CHECK(gso == VIRTIO_NET_HDR_GSO_NONE ||
		      (gso == VIRTIO_NET_HDR_GSO_TCPV4 && (f->drv.features & VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4))) ||
		      (gso == VIRTIO_NET_HDR_GSO_TCPV6 && (f->drv.features & VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6))) ||
		      (gso == VIRTIO_NET_HDR_GSO_UDP && (f->drv.features & VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO))));
		f->tx_seen++;
	}
	CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Run the device event loop until it is idle, taking what it transmits. */
static void run_loop(void)
{
	unsigned int rounds = 0;
	int n;

	do {
		drain_tap();
		n = loop_run_once(&fuzz->vm.loop, 0);
		CHECK(n >= 0);
		CHECK_MSG(++rounds < MAX_ROUNDS, "the device is still busy after %u rounds", rounds);
	} while (n > 0);
	drain_tap();
}

/* Frames the host sent that the device has not read: gone before the next run. */
static void drain_host_frames(void)
{
	while (recv(fuzz->dev_fd, fuzz->frame, sizeof(fuzz->frame), MSG_DONTWAIT) >= 0)
		;
}

/* ---- set-up ---- */

static void write_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true, .accept_all = true,
	};
	struct virtio_net_params np = {
		.tap_name = "fuzztap", .mac_set = true, .mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, .mtu = 1500,
		.tap_offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
	};
	struct virtio_pci_params p;
	struct fuzz_state *f;
	int sv[2], sz = 4 << 20;

	(void)argc;
	(void)argv;
	if (fuzz_seed_dir())
		write_seeds(fuzz_seed_dir());
	log_set_level(LOG_ERROR);
	f = fuzz = calloc(1, sizeof(*fuzz));
	CHECK(f);
	f->ram_copy = malloc(RAM_SIZE);
	CHECK(f->ram_copy);
	CHECK(fake_vmm_init(&f->vm, &cfg) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	/* Room for a run's frames both ways, so that EAGAIN comes from the input, not from the harness. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	f->dev_fd = np.tap_fd = sv[0];
	f->peer = sv[1];
	p = fake_vmm_virtio_params(&f->vm, SLOT);
	f->net = virtio_net_create(&p, &np);
	CHECK(f->net);
	f->t = virtio_net_transport(f->net);
	fake_driver_attach(&f->drv, &f->vm, virtio_pci_device(f->t), SLOT);
	return 0;
}

/* ---- one run ---- */

static void check_used(unsigned int q, uint16_t qsize)
{
	uint16_t idx = fake_vq_used_idx(&fuzz->vm.mem, used_gpa[q]);
	unsigned int n = idx < qsize ? idx : qsize;

	for (unsigned int i = 0; i < n; i++) {
		struct virtq_used_elem u = fake_vq_used_elem(&fuzz->vm.mem, used_gpa[q], qsize, (uint16_t)i);

		CHECK_MSG(u.id < qsize, "queue %u: used ring entry %u: head %u, queue size %u", q, i, u.id, qsize);
		CHECK_MSG(q == VIRTIO_NET_RXQ ? u.len <= HDR + VIRTIO_NET_MAX_FRAME : u.len == 0,
			  "queue %u: used ring entry %u: length %u", q, i, u.len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state *f = fuzz;
	struct virtio_net_stats before, after;
	uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1);
	uint16_t qsize[2], accept;
	unsigned int nr_frames, sent = 0;
	size_t off = 4, n;

	if (size < 4)
		return 0;
	qsize[0] = (uint16_t)(1u << ((data[0] & 15) % 9));
	qsize[1] = (uint16_t)(1u << ((data[0] >> 4) % 9));
	accept = (uint16_t)(data[1] | data[2] << 8);
	for (unsigned int i = 0; i < 16; i++)
		if (accept & (1u << i))
			want |= VIRTIO_BIT(accept_bits[i]);
	nr_frames = data[3] & 7;

	driver_init(qsize, want);
	drain_host_frames();
	drain_tap();
	f->tx_seen = 0;
	/* The host's frames wait in the TAP until the device reads them. */
	for (unsigned int i = 0; i < nr_frames && size - off >= 2; i++) {
		size_t len = data[off] | (size_t)data[off + 1] << 8;

		off += 2;
		len = len < size - off ? len : size - off;
		if (send(f->peer, data + off, len, MSG_DONTWAIT) == (ssize_t)len)
			sent++;
		off += len;
	}
	n = size - off < DATA_MAX ? size - off : DATA_MAX;
	memset(f->vm.mem.regions[0].hva, 0, f->vm.mem.regions[0].size);
	memset(f->vm.mem.regions[1].hva, 0, f->vm.mem.regions[1].size);
	memcpy(f->vm.mem.regions[0].hva, data + off, n);
	memcpy(f->vm.mem.regions[1].hva, data + off, n);
	memset(f->vm.mem.regions[0].hva + used_gpa[0], 0, 0x1000);
	memset(f->vm.mem.regions[0].hva + used_gpa[1], 0, 0x1000);

	virtio_net_get_stats(f->net, &before);
	CHECK(fake_driver_live(&f->drv) == FAKE_DRIVER_STATUS_LIVE);
	notify(VIRTIO_NET_TXQ);
	notify(VIRTIO_NET_RXQ);
	if (data[3] & 8) {
		CHECK(loop_run_once(&f->vm.loop, 0) >= 0);
		fake_virtio_set_status(&f->drv.fv, 0);
		memcpy(f->ram_copy, f->vm.mem.regions[0].hva, RAM_SIZE / 2);
		memcpy(f->ram_copy + RAM_SIZE / 2, f->vm.mem.regions[1].hva, RAM_SIZE / 2);
		run_loop();
		CHECK_MSG(!memcmp(f->ram_copy, f->vm.mem.regions[0].hva, RAM_SIZE / 2) &&
				  !memcmp(f->ram_copy + RAM_SIZE / 2, f->vm.mem.regions[1].hva, RAM_SIZE / 2),
			  "guest RAM written after the device was reset");
	} else {
		run_loop();
		if (data[3] & 16) {
			notify(VIRTIO_NET_TXQ);
			notify(VIRTIO_NET_RXQ);
			run_loop();
		}
		check_used(VIRTIO_NET_RXQ, qsize[0]);
		check_used(VIRTIO_NET_TXQ, qsize[1]);
	}
	virtio_net_get_stats(f->net, &after);
	CHECK_MSG(after.tx_packets - before.tx_packets == f->tx_seen, "%llu frames sent, the TAP got %u",
		  (unsigned long long)(after.tx_packets - before.tx_packets), f->tx_seen);
	CHECK(after.rx_packets - before.rx_packets + after.rx_drops - before.rx_drops <= sent);
	return 0;
}

/* ---- seeds ---- */

struct seed {
	uint8_t buf[4 + 2 * 1400 + 0x20000];
	size_t frames_len; /* bytes of host frames after the 4-byte prefix */
	uint16_t next_desc[2], avail_idx[2];
};

static uint8_t *seed_ram(struct seed *s)
{
	return s->buf + 4 + s->frames_len;
}

static void add_host_frame(struct seed *s, size_t len)
{
	uint8_t *p = s->buf + 4 + s->frames_len;

	p[0] = (uint8_t)len;
	p[1] = (uint8_t)(len >> 8);
	memset(p + 2, 0, HDR);
	for (size_t i = HDR; i < len; i++)
		p[2 + i] = (uint8_t)(i * 3);
	s->frames_len += 2 + len;
	s->buf[3]++;
}

/* One chain of `n` buffers on queue `q` (all writable on receive, all readable on transmit). */
static void add_chain(struct seed *s, unsigned int q, const uint64_t *gpa, const uint32_t *len, unsigned int n)
{
	uint8_t *ram = seed_ram(s);
	uint16_t head = s->next_desc[q];

	for (unsigned int i = 0; i < n; i++) {
		uint8_t *d = ram + desc_gpa[q] + 16u * (uint16_t)(head + i);
		uint16_t flags = (uint16_t)((q == VIRTIO_NET_RXQ ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		uint16_t next = (uint16_t)(head + i + 1);

		memcpy(d, &gpa[i], 8);
		memcpy(d + 8, &len[i], 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	s->next_desc[q] = (uint16_t)(head + n);
	memcpy(ram + avail_gpa[q] + 4 + 2u * s->avail_idx[q], &head, 2);
	s->avail_idx[q]++;
	memcpy(ram + avail_gpa[q] + 2, &s->avail_idx[q], 2);
}

/* A transmit frame at `gpa`: the header (flags, gso_type), then an Ethernet frame of `len` bytes. */
static void tx_frame(struct seed *s, uint64_t gpa, uint8_t flags, uint8_t gso, uint32_t len)
{
	uint8_t *p = seed_ram(s) + gpa;

	p[0] = flags;
	p[1] = gso;
	for (uint32_t i = 0; i < len; i++)
		p[HDR + i] = (uint8_t)(i + 1);
}

static void write_seeds(const char *dir)
{
	static struct seed s;
	static const uint32_t two_k[4] = { 2048, 2048, 2048, 2048 }, small[4] = { 512, 512, 512, 512 };
	const uint64_t rx_bufs[4] = { 0x6000, 0x6800, 0x7000, 0x7800 };
	uint64_t g[2];
	uint32_t l[2];

	/* Queues of 16; CSUM, MRG_RXBUF, MAC, STATUS accepted; one 100-byte frame each way. */
	s.buf[0] = 4 | 4 << 4;
	s.buf[1] = 1 | 2;
	s.buf[2] = (1 << 2) | (1 << 5) | (1 << 6); /* MRG_RXBUF, MAC, STATUS */
	add_host_frame(&s, HDR + 100);
	for (unsigned int i = 0; i < 4; i++)
		add_chain(&s, VIRTIO_NET_RXQ, &rx_bufs[i], &two_k[i], 1);
	tx_frame(&s, 0x8000, 0, 0, 100);
	g[0] = 0x8000;
	l[0] = HDR + 100;
	add_chain(&s, VIRTIO_NET_TXQ, g, l, 1);
	/* A frame split over two descriptors, header alone in the first (as Linux does). */
	tx_frame(&s, 0x8800, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 60);
	g[0] = 0x8800;
	l[0] = HDR;
	g[1] = 0x8800 + HDR;
	l[1] = 60;
	add_chain(&s, VIRTIO_NET_TXQ, g, l, 2);
	fuzz_write_seed(dir, "both-ways", s.buf, 4 + s.frames_len + 0x8900);

	/* A 1400-byte frame over 512-byte buffers (MRG_RXBUF), and a TSO frame with and without HOST_TSO4. */
	memset(&s, 0, sizeof(s));
	s.buf[0] = 3 | 3 << 4;
	s.buf[1] = (1 << 6) | 1;   /* HOST_TSO4, CSUM */
	s.buf[2] = 1 << 2;         /* MRG_RXBUF */
	add_host_frame(&s, HDR + 1400);
	for (unsigned int i = 0; i < 4; i++)
		add_chain(&s, VIRTIO_NET_RXQ, &rx_bufs[i], &small[i], 1);
	tx_frame(&s, 0x8000, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1000);
	g[0] = 0x8000;
	l[0] = HDR + 1000;
	add_chain(&s, VIRTIO_NET_TXQ, g, l, 1);
	fuzz_write_seed(dir, "tso", s.buf, 4 + s.frames_len + 0x8400);
	s.buf[1] = 0; /* nothing accepted: the TSO frame is dropped, the big frame does not fit one buffer */
	s.buf[2] = 0;
	fuzz_write_seed(dir, "tso-refused", s.buf, 4 + s.frames_len + 0x8400);
	s.buf[3] |= 8; /* and a reset after the first turn */
	fuzz_write_seed(dir, "reset", s.buf, 4 + s.frames_len + 0x8400);
	exit(0);
}
