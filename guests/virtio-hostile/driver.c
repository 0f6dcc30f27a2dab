// SPDX-License-Identifier: MIT
/* The virtio-hostile guest's virtio-pci driver: driver.h. */
#include "driver.h"

/* ---- PCI (ECAM, PCIe 4.0 s7.2.2; capabilities: virtio 1.2 s4.1.4) ---- */

static uint64_t bar_address(uint64_t cfg, unsigned int bar)
{
	uint32_t lo = rd32(cfg + 0x10 + 4 * bar);
	uint64_t addr = lo & ~0xfull;

	if (lo & 1)
		return 0; /* I/O BAR: virtio structures are in memory BARs here */
	if (((lo >> 1) & 3) == 2 && bar < 5)
		addr |= (uint64_t)rd32(cfg + 0x10 + 4 * (bar + 1)) << 32;
	return addr;
}

int vdev_probe(struct vdev *d, uint64_t ecam)
{
	for (unsigned int slot = 0; slot < 32; slot++) {
		uint64_t cfg = ecam + ((uint64_t)slot << 15);
		unsigned int caps = 0, found = 0;
		uint8_t p;

		if (rd32(cfg) != ((uint32_t)d->pci_device << 16 | VIRTIO_VENDOR))
			continue;
		d->slot = slot;
		d->cfg = cfg;
		wr16(cfg + 0x04, rd16(cfg + 0x04) | 0x6); /* Memory Space, Bus Master */
		if (!(rd16(cfg + 0x06) & 0x10))
			return -1;
		for (p = rd8(cfg + 0x34) & 0xfc; p && caps < 48; p = rd8(cfg + p + 1) & 0xfc, caps++) {
			uint8_t type = rd8(cfg + p + 3);
			uint64_t base, off = rd32(cfg + p + 8);

			if (rd8(cfg + p) != 0x09 || rd8(cfg + p + 4) > 5)
				continue;
			base = bar_address(cfg, rd8(cfg + p + 4));
			if (!base || base + off >= (1ull << 32))
				continue; /* unassigned, or above the 4 GiB the guest maps */
			switch (type) {
			case 1:
				d->common = base + off;
				d->bar0 = base;
				found |= 1;
				break;
			case 2:
				d->notify = base + off;
				d->notify_mult = rd32(cfg + p + 16);
				found |= 2;
				break;
			case 3:
				d->isr = base + off;
				found |= 4;
				break;
			case 4:
				d->devcfg = base + off;
				break;
			default:
				break;
			}
		}
		return (found & 7) == 7 ? 0 : -1;
	}
	return -1;
}

/* ---- the driver side of the transport (s3.1.1), usable from either privilege level ---- */

uint8_t vdev_status(const struct vdev *d)
{
	return rd8(d->common + C_STATUS);
}

void vdev_set_status(struct vdev *d, uint8_t bit)
{
	d->status |= bit;
	wr8(d->common + C_STATUS, d->status);
}

int vdev_reset(struct vdev *d)
{
	wr8(d->common + C_STATUS, 0);
	for (unsigned int i = 0; i < 100000; i++) {
		if (vdev_status(d) == 0) {
			d->status = 0;
			return 0;
		}
	}
	return -1;
}

static void write64(uint64_t reg, uint64_t v)
{
	wr32(reg, (uint32_t)v);
	wr32(reg + 4, (uint32_t)(v >> 32));
}

uint8_t vdev_negotiate(struct vdev *d, uint64_t features, bool skip_features_ok)
{
	vdev_set_status(d, S_ACKNOWLEDGE);
	vdev_set_status(d, S_DRIVER);
	wr32(d->common + C_GFSELECT, 0);
	wr32(d->common + C_GF, (uint32_t)features);
	wr32(d->common + C_GFSELECT, 1);
	wr32(d->common + C_GF, (uint32_t)(features >> 32));
	if (!skip_features_ok)
		vdev_set_status(d, S_FEATURES_OK);
	return vdev_status(d);
}

uint64_t vdev_offered(const struct vdev *d)
{
	uint64_t f;

	wr32(d->common + C_DFSELECT, 0);
	f = rd32(d->common + C_DF);
	wr32(d->common + C_DFSELECT, 1);
	return f | (uint64_t)rd32(d->common + C_DF) << 32;
}

void vdev_setup_queue(struct vdev *d, uint64_t desc, uint64_t driver, uint64_t device)
{
	wr16(d->common + C_Q_SELECT, 0);
	d->qmax = rd16(d->common + C_Q_SIZE);
	d->qsize = d->qmax && d->qmax < QSIZE ? d->qmax : QSIZE;
	wr16(d->common + C_Q_SIZE, d->qsize);
	write64(d->common + C_Q_DESC, desc);
	write64(d->common + C_Q_DRIVER, driver);
	write64(d->common + C_Q_DEVICE, device);
	d->notify_addr = d->notify + (uint64_t)rd16(d->common + C_Q_NOFF) * d->notify_mult;
	/* The indices start at 0 after a reset (s2.7.6, s2.7.8). Only what the driver reads is cleared: kernel
	 * mode is emulated, a memset of the rings would cost more than everything else. */
	d->mem->avail.flags = d->mem->avail.idx = 0;
	d->mem->used.flags = d->mem->used.idx = 0;
	d->avail_idx = 0;
}

void vdev_setup_own_queue(struct vdev *d)
{
	struct vring_mem *m = d->mem;

	vdev_setup_queue(d, (uint64_t)m->desc, (uint64_t)&m->avail, (uint64_t)&m->used);
	wr16(d->common + C_Q_ENABLE, 1);
}

uint8_t vdev_init(struct vdev *d, uint64_t features)
{
	if (vdev_reset(d))
		return 0xff;
	if (!(vdev_negotiate(d, features, false) & S_FEATURES_OK))
		return vdev_status(d);
	vdev_setup_own_queue(d);
	vdev_set_status(d, S_DRIVER_OK);
	return vdev_status(d);
}

void vdev_make_available(struct vdev *d, uint16_t head)
{
	struct vring_mem *m = d->mem;

	m->avail.ring[d->avail_idx % d->qsize] = head;
	barrier();
	m->avail.idx = ++d->avail_idx;
}

void vdev_notify(struct vdev *d)
{
	mb();
	wr16(d->notify_addr, 0);
}

void vdev_kick(struct vdev *d, uint16_t head)
{
	vdev_make_available(d, head);
	vdev_notify(d);
}

/* About a second on any TSC from 1 to 3 GHz; only reached when kiln misbehaves. */
#define SETTLE_CYCLES (2ull << 30)

uint8_t vdev_settle(struct vdev *d, uint16_t used_idx, bool *timed_out)
{
	volatile uint16_t *idx = &d->mem->used.idx;
	uint64_t start = rdtsc();
	uint8_t status;

	*timed_out = false;
	for (;;) {
		status = vdev_status(d);
		if ((status & S_NEEDS_RESET) || *idx == used_idx) {
			barrier(); /* the used elements and buffers are read after the index */
			return status;
		}
		if (rdtsc() - start > SETTLE_CYCLES) {
			*timed_out = true;
			return status;
		}
		__asm__ volatile("pause");
	}
}

