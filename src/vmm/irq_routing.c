// SPDX-License-Identifier: MIT
/*
 * KVM GSI routing table and irqfds (Documentation/virt/kvm/api.rst: KVM_SET_GSI_ROUTING, KVM_IRQFD,
 * KVM_SIGNAL_MSI). See irq_routing.h for the model.
 */
#include "vmm/irq_routing.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/log.h"

#define NR_IOAPIC_PINS 24u
#define NR_PIC_PINS 16u

struct msi_route {
	bool allocated;
	bool routed;
	uint64_t addr;
	uint32_t data;
};

struct irq_routing {
	pthread_mutex_t lock;
	const struct irq_routing_ops *ops;
	void *opaque;
	unsigned int nr_msi_gsis;
	unsigned int nr_routed;
	struct msi_route *routes;      /* indexed by gsi - IRQ_ROUTING_FIRST_MSI_GSI */
	struct kvm_irq_routing *table; /* scratch buffer for the ioctl, sized for every route */
};

static int kvm_set_gsi_routing(void *opaque, const struct kvm_irq_routing *table)
{
	int fd = *(const int *)opaque;

	return ioctl(fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
}

static int kvm_irqfd(void *opaque, const struct kvm_irqfd *req)
{
	int fd = *(const int *)opaque;

	return ioctl(fd, KVM_IRQFD, req) < 0 ? -errno : 0;
}

static int kvm_signal_msi(void *opaque, const struct kvm_msi *msi)
{
	int fd = *(const int *)opaque;
	int ret = ioctl(fd, KVM_SIGNAL_MSI, msi);

	return ret < 0 ? -errno : ret;
}

const struct irq_routing_ops irq_routing_kvm_ops = {
	.set_gsi_routing = kvm_set_gsi_routing,
	.irqfd = kvm_irqfd,
	.signal_msi = kvm_signal_msi,
};

struct irq_routing *irq_routing_create(const struct irq_routing_ops *ops, void *opaque, unsigned int nr_msi_gsis)
{
	struct irq_routing *rt;
	size_t table_size;
	int err;

	if (!ops || !ops->set_gsi_routing || !ops->irqfd || !ops->signal_msi || nr_msi_gsis == 0 ||
	    nr_msi_gsis > IRQ_ROUTING_MAX_MSI_GSIS) {
		errno = EINVAL;
		return NULL;
	}
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	table_size = sizeof(*rt->table) + (IRQ_ROUTING_NR_DEFAULT + nr_msi_gsis) * sizeof(rt->table->entries[0]);
	rt->routes = calloc(nr_msi_gsis, sizeof(*rt->routes));
	rt->table = calloc(1, table_size);
	if (!rt->routes || !rt->table) {
		err = ENOMEM;
		goto fail;
	}
	err = pthread_mutex_init(&rt->lock, NULL);
	if (err)
		goto fail;
	rt->ops = ops;
	rt->opaque = opaque;
	rt->nr_msi_gsis = nr_msi_gsis;
	return rt;
fail:
	free(rt->routes);
	free(rt->table);
	free(rt);
	errno = err;
	return NULL;
}

void irq_routing_destroy(struct irq_routing *rt)
{
	if (!rt)
		return;
	pthread_mutex_destroy(&rt->lock);
	free(rt->routes);
	free(rt->table);
	free(rt);
}

static struct kvm_irq_routing_entry irqchip_entry(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	return (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP, .u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

/*
 * Build the whole table and hand it to KVM. The defaults are the ones KVM_CREATE_IRQCHIP installs
 * (virt/kvm/irqchip: IOAPIC pin = GSI for 0-23; PIC master 0-7 / slave 8-15, pin = GSI % 8), in the
 * same order, so replacing the table keeps the legacy devices' and the PIT's interrupts where they were.
 */
static int routing_commit(struct irq_routing *rt)
{
	struct kvm_irq_routing *t = rt->table;
	unsigned int n = 0, i;

	for (i = 0; i < NR_IOAPIC_PINS; i++) {
		t->entries[n++] = irqchip_entry(i, KVM_IRQCHIP_IOAPIC, i);
		if (i < NR_PIC_PINS)
			t->entries[n++] = irqchip_entry(i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
	}
	for (i = 0; i < rt->nr_msi_gsis; i++) {
		const struct msi_route *r = &rt->routes[i];

		if (!r->routed)
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = IRQ_ROUTING_FIRST_MSI_GSI + i,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)r->addr, .address_hi = (uint32_t)(r->addr >> 32), .data = r->data },
		};
	}
	t->nr = n;
	t->flags = 0;
	return rt->ops->set_gsi_routing(rt->opaque, t);
}

static struct msi_route *route_of(struct irq_routing *rt, uint32_t gsi)
{
	if (gsi < IRQ_ROUTING_FIRST_MSI_GSI || gsi - IRQ_ROUTING_FIRST_MSI_GSI >= rt->nr_msi_gsis)
		return NULL;
	return &rt->routes[gsi - IRQ_ROUTING_FIRST_MSI_GSI];
}

int irq_routing_alloc_gsi(struct irq_routing *rt)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&rt->lock);
	for (unsigned int i = 0; i < rt->nr_msi_gsis; i++) {
		if (!rt->routes[i].allocated) {
			rt->routes[i] = (struct msi_route){ .allocated = true };
			ret = (int)(IRQ_ROUTING_FIRST_MSI_GSI + i);
			break;
		}
	}
	pthread_mutex_unlock(&rt->lock);
	return ret;
}

int irq_routing_free_gsi(struct irq_routing *rt, uint32_t gsi)
{
	struct msi_route *r;
	int ret = 0;

	pthread_mutex_lock(&rt->lock);
	r = route_of(rt, gsi);
	if (r && r->allocated) {
		if (r->routed) {
			r->routed = false;
			rt->nr_routed--;
			ret = routing_commit(rt);
			if (ret)
				pr_warn("KVM_SET_GSI_ROUTING (removing GSI %u): %s", gsi, strerror(-ret));
		}
		*r = (struct msi_route){ 0 };
	}
	pthread_mutex_unlock(&rt->lock);
	return ret;
}

int irq_routing_set_msi(struct irq_routing *rt, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct msi_route *r, old;
	int ret = 0;

	pthread_mutex_lock(&rt->lock);
	r = route_of(rt, gsi);
	if (!r || !r->allocated) {
		ret = -EINVAL;
		goto out;
	}
	if (r->routed && r->addr == addr && r->data == data)
		goto out;
	old = *r;
	r->addr = addr;
	r->data = data;
	if (!r->routed) {
		r->routed = true;
		rt->nr_routed++;
	}
	ret = routing_commit(rt);
	if (ret) {
		/* KVM rejected the table as a whole and kept the old one: so does kiln. */
		if (!old.routed)
			rt->nr_routed--;
		*r = old;
	}
out:
	pthread_mutex_unlock(&rt->lock);
	return ret;
}

int irq_routing_irqfd_assign(struct irq_routing *rt, int fd, uint32_t gsi)
{
	struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = gsi };

	if (fd < 0)
		return -EBADF;
	return rt->ops->irqfd(rt->opaque, &req);
}

int irq_routing_irqfd_deassign(struct irq_routing *rt, int fd, uint32_t gsi)
{
	struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };

	if (fd < 0)
		return -EBADF;
	return rt->ops->irqfd(rt->opaque, &req);
}

int irq_routing_signal_msi(struct irq_routing *rt, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data };

	return rt->ops->signal_msi(rt->opaque, &msi);
}

unsigned int irq_routing_nr_msi_routes(struct irq_routing *rt)
{
	unsigned int n;

	pthread_mutex_lock(&rt->lock);
	n = rt->nr_routed;
	pthread_mutex_unlock(&rt->lock);
	return n;
}
