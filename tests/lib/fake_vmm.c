// SPDX-License-Identifier: MIT
/* The shared fake VM of the device tests and fuzz targets: see fake_vmm.h. */
#include "fake_vmm.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "fake_check.h"
#include "lib/log.h"

/* ---- fake KVM ---- */

static int fake_set_gsi_routing(void *opaque, const struct kvm_irq_routing *t)
{
	struct fake_kvm *k = opaque;

	if (k->accept_all)
		return 0;
	if (t->nr > sizeof(k->table) / sizeof(k->table[0]))
		return -E2BIG;
	for (unsigned int i = 0; k->refuse_msi_data && i < t->nr; i++)
		if (t->entries[i].type == KVM_IRQ_ROUTING_MSI && t->entries[i].u.msi.data == k->bad_msi_data)
			return -EINVAL;
	k->set_calls++;
	k->nr = t->nr;
	memcpy(k->table, t->entries, t->nr * sizeof(t->entries[0]));
	return 0;
}

static int fake_irqfd(void *opaque, const struct kvm_irqfd *req)
{
	struct fake_kvm *k = opaque;

	if (k->accept_all)
		return 0;
	if (req->flags & KVM_IRQFD_FLAG_DEASSIGN) {
		for (int i = 0; i < k->nr_irqfds; i++)
			if (k->irqfds[i].assigned && k->irqfds[i].fd == (int)req->fd && k->irqfds[i].gsi == req->gsi) {
				k->irqfds[i].assigned = false;
				k->irqfd_deassigns++;
				return 0;
			}
		return -ENOENT;
	}
	if (k->nr_irqfds == FAKE_KVM_MAX_FDS)
		return -ENOSPC;
	k->irqfds[k->nr_irqfds].fd = (int)req->fd;
	k->irqfds[k->nr_irqfds].gsi = req->gsi;
	k->irqfds[k->nr_irqfds].assigned = true;
	k->nr_irqfds++;
	return 0;
}

/* Returns 1, as KVM does for an MSI the guest got. */
static int fake_signal_msi(void *opaque, const struct kvm_msi *msi)
{
	struct fake_kvm *k = opaque;

	if (k->accept_all)
		return 1;
	atomic_fetch_add(&k->msi_calls, 1);
	k->last_msi = *msi;
	return 1;
}

const struct irq_routing_ops fake_kvm_routing_ops = {
	.set_gsi_routing = fake_set_gsi_routing,
	.irqfd = fake_irqfd,
	.signal_msi = fake_signal_msi,
};

/* Like KVM: a second assignment at an address taken is -EEXIST; a deassignment must match exactly. */
static int fake_ioeventfd(void *opaque, const struct kvm_ioeventfd *req)
{
	struct fake_kvm *k = opaque;

	if (k->accept_all)
		return 0;
	if (req->flags & KVM_IOEVENTFD_FLAG_DEASSIGN) {
		for (int i = 0; i < k->nr_ioeventfds; i++) {
			struct fake_ioeventfd *e = &k->ioeventfds[i];

			if (e->assigned && e->addr == req->addr && e->len == req->len && e->fd == req->fd) {
				e->assigned = false;
				k->ioeventfd_deassigns++;
				return 0;
			}
		}
		return -ENOENT;
	}
	if (k->refuse_ioeventfd)
		return -ENOSYS;
	for (int i = 0; i < k->nr_ioeventfds; i++)
		if (k->ioeventfds[i].assigned && k->ioeventfds[i].addr == req->addr)
			return -EEXIST;
	if (k->nr_ioeventfds == FAKE_KVM_MAX_FDS)
		return -ENOSPC;
	k->ioeventfds[k->nr_ioeventfds++] = (struct fake_ioeventfd){
		.addr = req->addr, .len = req->len, .fd = (int)req->fd, .assigned = true,
	};
	return 0;
}

const struct virtio_ioeventfd_ops fake_kvm_ioeventfd_ops = { .ioeventfd = fake_ioeventfd };

void fake_kvm_intx(void *opaque, uint32_t gsi, int level)
{
	struct fake_kvm *k = opaque;

	if (k->accept_all || gsi >= FAKE_KVM_NR_INTX)
		return;
	atomic_store(&k->intx[gsi], level);
	if (level)
		atomic_fetch_add(&k->intx_raises, 1);
}

const struct fake_ioeventfd *fake_kvm_ioeventfd_at(const struct fake_kvm *k, uint64_t addr)
{
	for (int i = 0; i < k->nr_ioeventfds; i++)
		if (k->ioeventfds[i].assigned && k->ioeventfds[i].addr == addr)
			return &k->ioeventfds[i];
	return NULL;
}

uint64_t fake_kvm_msi_count(const struct fake_kvm *k, uint32_t data)
{
	for (unsigned int i = 0; i < k->nr; i++) {
		const struct kvm_irq_routing_entry *e = &k->table[i];

		if (e->type != KVM_IRQ_ROUTING_MSI || e->u.msi.data != data)
			continue;
		for (int j = 0; j < k->nr_irqfds; j++) {
			uint64_t n = 0;

			if (!k->irqfds[j].assigned || k->irqfds[j].gsi != e->gsi)
				continue;
			if (read(k->irqfds[j].fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
				return 0; /* EAGAIN: nothing */
			return n;
		}
	}
	return 0;
}

/* ---- the VM ---- */

int fake_vmm_init(struct fake_vmm *vm, const struct fake_vmm_config *cfg)
{
	struct pci_bus_config pci_cfg = {
		.ecam_base = FAKE_VMM_ECAM, .mmio32_base = FAKE_VMM_MMIO32, .mmio32_size = FAKE_VMM_MMIO32_SIZE,
		.intx_set = fake_kvm_intx, .intx_opaque = &vm->kvm,
	};

	vm->kvm.accept_all = cfg->accept_all;
	if (cfg->ram_size) {
		if (guest_memory_init(&vm->mem, cfg->ram_size, cfg->hole_start))
			return -1;
		vm->has_mem = true;
	}
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	vm->pci = pci_bus_create(&pci_cfg);
	if (!vm->pci || pci_bus_attach(vm->pci, &vm->pio, &vm->mmio))
		return -1;
	vm->rt = irq_routing_create(&fake_kvm_routing_ops, &vm->kvm, cfg->nr_msi_gsis);
	if (!vm->rt)
		return -1;
	if (cfg->loop) {
		if (loop_init(&vm->loop))
			return -1;
		vm->has_loop = true;
		if (cfg->loop_thread && loop_start(&vm->loop))
			return -1;
	}
	return 0;
}

void fake_vmm_stop(struct fake_vmm *vm)
{
	if (vm->has_loop)
		loop_destroy(&vm->loop);
	vm->has_loop = false;
	if (vm->pci)
		pci_bus_destroy(vm->pci);
	vm->pci = NULL;
}

void fake_vmm_destroy(struct fake_vmm *vm)
{
	if (vm->rt)
		irq_routing_destroy(vm->rt);
	vm->rt = NULL;
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	if (vm->has_mem)
		guest_memory_destroy(&vm->mem);
	vm->has_mem = false;
}

/* ---- driving the loop on the test's thread ---- */

struct fake_wait fake_vmm_wait_start(struct fake_vmm *vm, unsigned int timeout_ms)
{
	return (struct fake_wait){ .vm = vm, .deadline_ns = time_now_ns() + timeout_ms * 1000000ull };
}

bool fake_vmm_wait_step(struct fake_wait *w)
{
	if (time_now_ns() >= w->deadline_ns)
		return false;
	/* -EBUSY here: the fixture started a loop thread, and this thread cannot drive the loop. */
	FAKE_VMM_CHECK(loop_run_once(&w->vm->loop, FAKE_VMM_STEP_MS) >= 0);
	return true;
}

unsigned int fake_vmm_run_idle(struct fake_vmm *vm)
{
	unsigned int rounds = 0;
	int n;

	while ((n = loop_run_once(&vm->loop, 0)) > 0)
		FAKE_VMM_CHECK(++rounds < FAKE_VMM_MAX_ROUNDS); /* a source that never stops firing: a spin */
	FAKE_VMM_CHECK(n == 0);
	return rounds;
}

unsigned int fake_vmm_run_for(struct fake_vmm *vm, unsigned int ms)
{
	struct fake_wait w = fake_vmm_wait_start(vm, ms);
	unsigned int fired = 0;

	while (time_now_ns() < w.deadline_ns) {
		int n = loop_run_once(&vm->loop, FAKE_VMM_STEP_MS);

		FAKE_VMM_CHECK(n >= 0);
		fired += (unsigned int)n;
	}
	return fired;
}

struct virtio_pci_params fake_vmm_virtio_params(struct fake_vmm *vm, unsigned int slot)
{
	return (struct virtio_pci_params){
		.pci = vm->pci, .slot = slot, .rt = vm->rt, .loop = &vm->loop, .mem = &vm->mem, .vm_fd = -1,
		.ioeventfd_ops = &fake_kvm_ioeventfd_ops, .ioeventfd_opaque = &vm->kvm,
	};
}

/* ---- the driver's accessors ---- */

void fake_le_put(uint8_t *d, uint64_t v, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

uint64_t fake_le_get(const uint8_t *d, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

uint64_t fake_vmm_mmio_read(struct fake_vmm *vm, uint64_t gpa, uint32_t len)
{
	uint8_t d[8];

	memset(d, 0x5a, sizeof(d)); /* what a device leaves unwritten shows */
	FAKE_VMM_CHECK(len <= sizeof(d) && bus_access(&vm->mmio, gpa, d, len, false));
	return fake_le_get(d, len);
}

void fake_vmm_mmio_write(struct fake_vmm *vm, uint64_t gpa, uint64_t val, uint32_t len)
{
	uint8_t d[8];

	FAKE_VMM_CHECK(len <= sizeof(d));
	fake_le_put(d, val, len);
	FAKE_VMM_CHECK(bus_access(&vm->mmio, gpa, d, len, true));
}

static uint64_t ecam_addr(unsigned int slot, unsigned int reg)
{
	return FAKE_VMM_ECAM + ((uint64_t)slot << 15) + reg;
}

uint32_t fake_vmm_cfg_read(struct fake_vmm *vm, unsigned int slot, unsigned int reg, uint32_t len)
{
	return (uint32_t)fake_vmm_mmio_read(vm, ecam_addr(slot, reg), len);
}

void fake_vmm_cfg_write(struct fake_vmm *vm, unsigned int slot, unsigned int reg, uint32_t val, uint32_t len)
{
	fake_vmm_mmio_write(vm, ecam_addr(slot, reg), val, len);
}

unsigned int fake_vmm_find_cap(struct fake_vmm *vm, unsigned int slot, uint8_t id, uint8_t cfg_type)
{
	unsigned int off = fake_vmm_cfg_read(vm, slot, PCI_CAPABILITY_LIST, 1), guard = 0;

	while (off && guard++ < 48) {
		if (fake_vmm_cfg_read(vm, slot, off, 1) == id &&
		    (id != PCI_CAP_ID_VNDR || fake_vmm_cfg_read(vm, slot, off + 3, 1) == cfg_type))
			return off;
		off = fake_vmm_cfg_read(vm, slot, off + 1, 1);
	}
	return 0;
}

void fake_vmm_msix_program(struct fake_vmm *vm, uint64_t table, unsigned int vec, uint64_t addr, uint32_t data)
{
	uint64_t entry = table + (uint64_t)vec * MSIX_ENTRY_SIZE;

	fake_vmm_mmio_write(vm, entry + MSIX_ENTRY_ADDR_LO, (uint32_t)addr, 4);
	fake_vmm_mmio_write(vm, entry + MSIX_ENTRY_ADDR_HI, addr >> 32, 4);
	fake_vmm_mmio_write(vm, entry + MSIX_ENTRY_DATA, data, 4);
}

void *fake_vmm_hva(struct fake_vmm *vm, uint64_t gpa, uint64_t len)
{
	void *p = guest_memory_hva(&vm->mem, gpa, len);

	FAKE_VMM_CHECK(p != NULL);
	return p;
}

uint64_t fake_vmm_pci_enable(struct fake_vmm *vm, struct pci_device *pdev, unsigned int slot)
{
	uint64_t bar = pci_config_read32(pdev, PCI_BASE_ADDRESS_0) & ~0xfu;

	fake_vmm_cfg_write(vm, slot, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	return bar;
}

/* ---- virtio PCI, the driver's side ---- */

uint64_t fake_virtio_common_read(const struct fake_virtio *fv, uint32_t off, uint32_t len)
{
	return fake_vmm_mmio_read(fv->vm, fv->bar + VIRTIO_PCI_COMMON_OFFSET + off, len);
}

void fake_virtio_common_write(const struct fake_virtio *fv, uint32_t off, uint64_t val, uint32_t len)
{
	fake_vmm_mmio_write(fv->vm, fv->bar + VIRTIO_PCI_COMMON_OFFSET + off, val, len);
}

uint64_t fake_virtio_devcfg_read(const struct fake_virtio *fv, uint32_t off, uint32_t len)
{
	return fake_vmm_mmio_read(fv->vm, fv->bar + VIRTIO_PCI_DEVICE_OFFSET + off, len);
}

uint8_t fake_virtio_status(const struct fake_virtio *fv)
{
	return (uint8_t)fake_virtio_common_read(fv, VIRTIO_PCI_COMMON_STATUS, 1);
}

void fake_virtio_set_status(const struct fake_virtio *fv, uint8_t s)
{
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_STATUS, s, 1);
}

uint64_t fake_virtio_device_features(const struct fake_virtio *fv)
{
	uint64_t lo;

	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	lo = fake_virtio_common_read(fv, VIRTIO_PCI_COMMON_DF, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	return lo | fake_virtio_common_read(fv, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

void fake_virtio_write_driver_features(const struct fake_virtio *fv, uint64_t features)
{
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_GF, (uint32_t)features, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_GF, features >> 32, 4);
}

void fake_virtio_queue_setup(const struct fake_virtio *fv, unsigned int q, uint16_t size, uint64_t desc,
			     uint64_t avail, uint64_t used)
{
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)desc, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_DESCHI, desc >> 32, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)avail, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_AVAILHI, avail >> 32, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)used, 4);
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_USEDHI, used >> 32, 4);
}

void fake_virtio_queue_enable(const struct fake_virtio *fv)
{
	fake_virtio_common_write(fv, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

void fake_virtio_notify(const struct fake_virtio *fv, unsigned int q)
{
	fake_vmm_mmio_write(fv->vm, fv->bar + VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * q, q, 2);
}

/* ---- split virtqueue rings, the driver's side ---- */

void fake_vq_write_desc(struct guest_memory *mem, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	FAKE_VMM_CHECK(guest_memory_write(mem, table + 16ull * i, &d, sizeof(d)) == 0);
}

void fake_vq_offer(struct guest_memory *mem, uint64_t avail, uint16_t qsize, uint16_t *avail_idx, uint16_t head)
{
	uint16_t idx;

	FAKE_VMM_CHECK(guest_memory_write(mem, avail + 4 + 2u * (*avail_idx % qsize), &head, 2) == 0);
	(*avail_idx)++;
	idx = *avail_idx;
	FAKE_VMM_CHECK(guest_memory_write(mem, avail + 2, &idx, 2) == 0);
}

uint16_t fake_vq_used_idx(struct guest_memory *mem, uint64_t used)
{
	uint16_t v = 0;

	FAKE_VMM_CHECK(guest_memory_read(mem, used + 2, &v, 2) == 0);
	return v;
}

struct virtq_used_elem fake_vq_used_elem(struct guest_memory *mem, uint64_t used, uint16_t qsize, uint16_t i)
{
	struct virtq_used_elem u = { 0 };

	FAKE_VMM_CHECK(guest_memory_read(mem, used + 4 + 8u * (i % qsize), &u, sizeof(u)) == 0);
	return u;
}
