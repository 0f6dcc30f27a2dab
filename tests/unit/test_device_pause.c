// SPDX-License-Identifier: MIT
/*
 * A pause quiesces the devices (vm_devices_pause, vmm/device.h): a virtio-net on a fake TAP (one end of a
 * SOCK_SEQPACKET socketpair, as test_virtio_net.c) and a virtio-blk on an image with io_uring, both in one
 * registry list on the fake VM. Requests in flight complete before the pause returns; then frames the host
 * sends into the TAP and a request the guest notified meanwhile change nothing in guest memory (the
 * memfd's contents, compared byte for byte) however long the device loop runs, until vm_devices_resume
 * delivers the frame and serves the request.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/device.h"

#include "fake_driver.h"
#include "fake_vmm.h"

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB) /* everything below lives in region 0 */
#define NET_SLOT 3
#define BLK_SLOT 4
#define QSIZE 64 /* room for every chain in flight: 3 descriptors per disk request */
#define HDR VIRTIO_NET_HDR_SIZE

/* net: rx queue, tx queue; blk: its request queue. */
#define NET_RING(q) (0x10000ull + 0x4000ull * (q))
#define BLK_RING 0x20000ull
#define RXBUF_GPA 0x100000ull
#define BLK_HDR_GPA 0x200000ull /* request i: header at + 64 i, status byte at + 32 */
#define BLK_DATA_GPA 0x400000ull /* 128 KiB per request */
#define BLK_REQ_SIZE (128 * 1024)
#define NR_WRITES 8
#define IMAGE_SIZE (4 * MIB)

struct fixture {
	struct fake_vmm vm;
	struct fake_driver net_drv, blk_drv;
	struct vm_device list[2];
	struct vm_devices devs;
	int peer;            /* the host network's end of the TAP */
	char path[64];       /* the disk image */
	uint8_t *ram_before; /* region 0 of the memfd, as the pause left it */
};

static void queue(struct fake_driver *d, unsigned int q, uint64_t ring)
{
	assert_int_equal(fake_driver_queue(d, q, QSIZE, ring, ring + 0x1000, ring + 0x2000, VIRTIO_MSI_NO_VECTOR),
			 VIRTIO_MSI_NO_VECTOR);
}

static void bring_up(struct fake_driver *d, struct fake_vmm *vm, struct virtio_pci *t, unsigned int slot,
		     unsigned int nr_queues)
{
	fake_driver_attach(d, vm, virtio_pci_device(t), slot);
	assert_int_equal(fake_driver_reset(d), 0);
	fake_driver_begin(d);
	assert_int_equal(fake_driver_accept(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)), FAKE_DRIVER_STATUS_FEATURES);
	for (unsigned int q = 0; q < nr_queues; q++)
		queue(d, q, slot == NET_SLOT ? NET_RING(q) : BLK_RING);
	assert_int_equal(fake_driver_live(d), FAKE_DRIVER_STATUS_LIVE);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true, /* run by the test */
	};
	struct virtio_net_params np = { .tap_name = "faketap" };
	struct virtio_blk_params bp = { .id = "disk", .engine = RAW_ENGINE_IO_URING };
	struct virtio_pci_params p;
	struct virtio_net *net;
	struct virtio_blk *blk;
	int sv[2], fd;

	if (!f || fake_vmm_init(&f->vm, &cfg))
		return -1;
	snprintf(f->path, sizeof(f->path), "/tmp/kiln-pause-test-XXXXXX");
	fd = mkstemp(f->path);
	if (fd < 0 || ftruncate(fd, IMAGE_SIZE) < 0)
		return -1;
	close(fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	f->peer = sv[1];
	np.tap_fd = sv[0];
	p = fake_vmm_virtio_params(&f->vm, NET_SLOT);
	net = virtio_net_create(&p, &np);
	bp.path = f->path;
	p = fake_vmm_virtio_params(&f->vm, BLK_SLOT);
	blk = virtio_blk_create(&p, &bp);
	f->ram_before = malloc(HOLE_START);
	if (!net || !blk || !f->ram_before)
		return -1;
	/* The registry's list, as vm_devices_create would have made it. */
	f->list[0] = (struct vm_device){ .type = &virtio_net_device_type, .dev = net };
	f->list[1] = (struct vm_device){ .type = &virtio_blk_device_type, .dev = blk };
	f->devs = (struct vm_devices){ .list = f->list, .nr = 2 };
	bring_up(&f->net_drv, &f->vm, virtio_net_transport(net), NET_SLOT, 2);
	bring_up(&f->blk_drv, &f->vm, virtio_blk_transport(blk), BLK_SLOT, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_vmm_stop(&f->vm);
	virtio_blk_destroy(f->list[1].dev);
	virtio_net_destroy(f->list[0].dev);
	fake_vmm_destroy(&f->vm);
	close(f->peer);
	unlink(f->path);
	free(f->ram_before);
	free(f);
	return 0;
}

/* Region 0 of guest RAM read from the memfd itself, not through kiln's mapping. */
static void read_ram(struct fixture *f, uint8_t *buf)
{
	const struct guest_region *r = &f->vm.mem.regions[0];

	assert_true(r->size >= HOLE_START);
	assert_int_equal(pread(f->vm.mem.memfd, buf, HOLE_START, (off_t)r->fd_offset), HOLE_START);
}

static void ram_unchanged(struct fixture *f)
{
	uint8_t *now = malloc(HOLE_START);

	assert_non_null(now);
	read_ram(f, now);
	for (size_t i = 0; i < HOLE_START; i++)
		if (now[i] != f->ram_before[i])
			fail_msg("guest RAM changed at 0x%zx while paused: %02x -> %02x", i, f->ram_before[i], now[i]);
	free(now);
}

/* Request `i` on the blk queue: header, one data buffer, the status byte (virtio 1.2 s5.2.6). */
static void blk_submit(struct fixture *f, unsigned int i, uint32_t type, uint64_t sector)
{
	uint64_t hdr = BLK_HDR_GPA + 64ull * i;
	uint8_t h[16] = { 0 };
	const struct fake_seg segs[] = {
		{ hdr, 16, false },
		{ BLK_DATA_GPA + (uint64_t)i * BLK_REQ_SIZE, BLK_REQ_SIZE, type == VIRTIO_BLK_T_IN },
		{ hdr + 32, 1, true },
	};

	fake_le_put(h, type, 4);
	fake_le_put(h + 8, sector, 8);
	assert_int_equal(guest_memory_write(&f->vm.mem, hdr, h, sizeof(h)), 0);
	*(uint8_t *)fake_vmm_hva(&f->vm, hdr + 32, 1) = 0xff;
	fake_driver_submit(&f->blk_drv, 0, segs, 3);
}

static uint8_t blk_status(struct fixture *f, unsigned int i)
{
	return *(uint8_t *)fake_vmm_hva(&f->vm, BLK_HDR_GPA + 64ull * i + 32, 1);
}

static void test_pause_quiesces_devices(void **state)
{
	struct fixture *f = *state;
	const struct fake_seg rxbuf = { RXBUF_GPA, 1526, true };
	uint8_t frame[HDR + 60] = { 0 };
	char err[256] = "";
	bool ok;

	/* Running: a receive buffer posted, eight writes in flight on the disk. */
	fake_driver_submit(&f->net_drv, VIRTIO_NET_RXQ, &rxbuf, 1);
	assert_int_equal(fake_driver_kick(&f->net_drv, VIRTIO_NET_RXQ), 0);
	memset(fake_vmm_hva(&f->vm, BLK_DATA_GPA, NR_WRITES * BLK_REQ_SIZE), 0x5a, NR_WRITES * BLK_REQ_SIZE);
	for (unsigned int i = 0; i < NR_WRITES; i++)
		blk_submit(f, i, VIRTIO_BLK_T_OUT, (uint64_t)i * (BLK_REQ_SIZE / 512));
	assert_int_equal(fake_driver_kick(&f->blk_drv, 0), 0);
	FAKE_VMM_WAIT(&f->vm, ok, virtio_blk_in_flight(f->list[1].dev) > 0 || fake_driver_used_idx(&f->blk_drv, 0));
	assert_true(ok);

	/* The pause returns with what was in flight completed and used. */
	assert_int_equal(vm_devices_pause(&f->devs, err, sizeof(err)), 0);
	assert_int_equal(virtio_blk_in_flight(f->list[1].dev), 0);
	assert_int_equal(fake_driver_used_idx(&f->blk_drv, 0), NR_WRITES);
	for (unsigned int i = 0; i < NR_WRITES; i++)
		assert_int_equal(blk_status(f, i), VIRTIO_BLK_S_OK);

	/* Paused: the host sends a frame, the guest (its last act) notified a read. */
	for (size_t i = 0; i < 60; i++)
		frame[HDR + i] = (uint8_t)(i * 3 + 1);
	assert_int_equal(send(f->peer, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
	blk_submit(f, NR_WRITES, VIRTIO_BLK_T_IN, 0);
	assert_int_equal(fake_driver_kick(&f->blk_drv, 0), 0);
	read_ram(f, f->ram_before);
	/* However long the device loop runs, nothing lands in guest RAM. */
	fake_vmm_run_idle(&f->vm);
	fake_vmm_run_for(&f->vm, 50);
	ram_unchanged(f);
	assert_int_equal(fake_driver_used_idx(&f->net_drv, VIRTIO_NET_RXQ), 0);

	/* Resumed: the frame is delivered, the read served. */
	vm_devices_resume(&f->devs);
	FAKE_VMM_WAIT(&f->vm, ok, fake_driver_used_idx(&f->net_drv, VIRTIO_NET_RXQ) == 1 &&
				  fake_driver_used_idx(&f->blk_drv, 0) == NR_WRITES + 1);
	assert_true(ok);
	assert_int_equal(fake_driver_used_elem(&f->net_drv, VIRTIO_NET_RXQ, 0).len, sizeof(frame));
	assert_memory_equal(fake_vmm_hva(&f->vm, RXBUF_GPA + HDR, 60), frame + HDR, 60);
	assert_int_equal(blk_status(f, NR_WRITES), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)fake_vmm_hva(&f->vm, BLK_DATA_GPA + NR_WRITES * BLK_REQ_SIZE, 1), 0x5a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pause_quiesces_devices, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
