// SPDX-License-Identifier: MIT
/* The shared test-side virtio driver: see fake_driver.h. */
#include "fake_driver.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "fake_check.h"

void fake_driver_attach(struct fake_driver *d, struct fake_vmm *vm, struct pci_device *pdev, unsigned int slot)
{
	memset(d, 0, sizeof(*d));
	d->fv.vm = vm;
	d->slot = slot;
	d->fv.bar = fake_vmm_pci_enable(vm, pdev, slot);
}

uint8_t fake_driver_reset(struct fake_driver *d)
{
	fake_virtio_set_status(&d->fv, 0);
	return fake_virtio_status(&d->fv);
}

uint64_t fake_driver_begin(struct fake_driver *d)
{
	fake_virtio_set_status(&d->fv, VIRTIO_STATUS_ACKNOWLEDGE);
	fake_virtio_set_status(&d->fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->offered = fake_virtio_device_features(&d->fv);
	return d->offered;
}

uint8_t fake_driver_accept(struct fake_driver *d, uint64_t features)
{
	d->features = features;
	fake_virtio_write_driver_features(&d->fv, features);
	fake_virtio_set_status(&d->fv, FAKE_DRIVER_STATUS_FEATURES);
	return fake_virtio_status(&d->fv);
}

int fake_driver_msix_on(struct fake_driver *d, unsigned int nr, uint64_t addr, uint32_t data)
{
	unsigned int cap = fake_vmm_find_cap(d->fv.vm, d->slot, PCI_CAP_ID_MSIX, 0);
	uint64_t table = d->fv.bar + VIRTIO_PCI_MSIX_TABLE_OFFSET;

	if (!cap)
		return -ENODEV;
	fake_vmm_cfg_write(d->fv.vm, d->slot, cap + MSIX_CAP_CONTROL, MSIX_CONTROL_ENABLE, 2);
	for (unsigned int v = 0; v < nr; v++) {
		fake_vmm_msix_program(d->fv.vm, table, v, addr, data + v);
		fake_vmm_mmio_write(d->fv.vm, table + v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 0, 4);
	}
	return 0;
}

uint16_t fake_driver_queue(struct fake_driver *d, unsigned int q, uint16_t size, uint64_t desc, uint64_t avail,
			   uint64_t used, uint16_t vector)
{
	struct fake_queue *fq;

	FAKE_VMM_CHECK(q < FAKE_DRIVER_MAX_QUEUES);
	fq = &d->q[q];
	/* s2.7: descriptor table 16 bytes an entry; rings flags, idx, entries, then the event index. */
	memset(fake_vmm_hva(d->fv.vm, desc, 16ull * size), 0, 16ull * size);
	memset(fake_vmm_hva(d->fv.vm, avail, 6 + 2ull * size), 0, 6 + 2ull * size);
	memset(fake_vmm_hva(d->fv.vm, used, 6 + 8ull * size), 0, 6 + 8ull * size);
	fake_virtio_queue_setup(&d->fv, q, size, desc, avail, used);
	fake_virtio_common_write(&d->fv, VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
	vector = (uint16_t)fake_virtio_common_read(&d->fv, VIRTIO_PCI_COMMON_Q_MSIX, 2);
	fake_virtio_queue_enable(&d->fv);
	*fq = (struct fake_queue){ .desc = desc, .avail = avail, .used = used, .size = size };
	return vector;
}

uint8_t fake_driver_live(struct fake_driver *d)
{
	fake_virtio_set_status(&d->fv, FAKE_DRIVER_STATUS_LIVE);
	return fake_virtio_status(&d->fv);
}

/* The queue `q` a test set up; a test failure for one it did not. */
static struct fake_queue *queue(struct fake_driver *d, unsigned int q)
{
	FAKE_VMM_CHECK(q < FAKE_DRIVER_MAX_QUEUES && d->q[q].size);
	return &d->q[q];
}

/* `n` segments as linked descriptors of the table at `table` (`size` entries), from entry `first` on. */
static void write_chain(struct fake_driver *d, uint64_t table, uint16_t size, uint16_t first,
			const struct fake_seg *segs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t e = (uint16_t)((first + i) % size), next = (uint16_t)((e + 1) % size);
		uint16_t flags = (uint16_t)((segs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		fake_vq_write_desc(&d->fv.vm->mem, table, e, segs[i].gpa, segs[i].len, flags, i + 1 < n ? next : 0);
	}
}

uint16_t fake_driver_chain(struct fake_driver *d, unsigned int q, uint16_t head, const struct fake_seg *segs,
			   unsigned int n)
{
	struct fake_queue *fq = queue(d, q);

	FAKE_VMM_CHECK(n >= 1 && n <= fq->size);
	write_chain(d, fq->desc, fq->size, head, segs, n);
	return head;
}

void fake_driver_offer(struct fake_driver *d, unsigned int q, uint16_t head)
{
	struct fake_queue *fq = queue(d, q);

	fake_vq_offer(&d->fv.vm->mem, fq->avail, fq->size, &fq->avail_idx, head);
}

uint16_t fake_driver_submit(struct fake_driver *d, unsigned int q, const struct fake_seg *segs, unsigned int n)
{
	struct fake_queue *fq = queue(d, q);
	uint16_t head = fake_driver_chain(d, q, fq->next_desc, segs, n);

	fq->next_desc = (uint16_t)((head + n) % fq->size);
	fake_driver_offer(d, q, head);
	return head;
}

uint16_t fake_driver_submit_indirect(struct fake_driver *d, unsigned int q, uint64_t table,
				     const struct fake_seg *segs, unsigned int n)
{
	struct fake_queue *fq = queue(d, q);
	uint16_t head = fq->next_desc;

	FAKE_VMM_CHECK(n >= 1 && n <= UINT16_MAX);
	write_chain(d, table, UINT16_MAX, 0, segs, n);
	fake_vq_write_desc(&d->fv.vm->mem, fq->desc, head, table, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	fq->next_desc = (uint16_t)((head + 1) % fq->size);
	fake_driver_offer(d, q, head);
	return head;
}

int fake_driver_kick(struct fake_driver *d, unsigned int q)
{
	uint64_t addr = d->fv.bar + VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)VIRTIO_PCI_NOTIFY_MULTIPLIER * q;
	const struct fake_ioeventfd *e = fake_kvm_ioeventfd_at(&d->fv.vm->kvm, addr);
	uint64_t one = 1;

	if (!e)
		return -ENOENT;
	if (write(e->fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return -errno;
	return 0;
}

uint16_t fake_driver_used_idx(struct fake_driver *d, unsigned int q)
{
	return fake_vq_used_idx(&d->fv.vm->mem, queue(d, q)->used);
}

struct virtq_used_elem fake_driver_used_elem(struct fake_driver *d, unsigned int q, uint16_t i)
{
	struct fake_queue *fq = queue(d, q);

	return fake_vq_used_elem(&d->fv.vm->mem, fq->used, fq->size, i);
}

int fake_driver_wait_used(struct fake_driver *d, unsigned int q, uint16_t idx)
{
	bool ok;

	FAKE_VMM_WAIT(d->fv.vm, ok, fake_driver_used_idx(d, q) == idx);
	return ok ? 0 : -ETIMEDOUT;
}
