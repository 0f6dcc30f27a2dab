/* SPDX-License-Identifier: MIT */
/*
 * GSI routing for message-signalled interrupts: kiln's copy of KVM's routing table, GSI allocation for
 * MSI routes, and irqfd (eventfd -> GSI) wiring.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table (Documentation/virt/kvm/api.rst, "KVM_SET_GSI_ROUTING"), so
 * kiln keeps the table and resends all of it on every change: the 40 routes KVM installs with
 * KVM_CREATE_IRQCHIP (GSI 0-15 to both the PIC and the IOAPIC, 16-23 to the IOAPIC only), then one
 * KVM_IRQ_ROUTING_MSI entry per routed GSI from IRQ_ROUTING_FIRST_MSI_GSI upward.
 *
 * Every KVM call goes through `struct irq_routing_ops`, so unit tests run against a fake KVM.
 * Thread-safe: one mutex guards the table; it is a leaf lock (no callback runs under it except the
 * ops, which must not call back into irq_routing).
 */
#ifndef KILN_VMM_IRQ_ROUTING_H
#define KILN_VMM_IRQ_ROUTING_H

#include <linux/kvm.h>
#include <stdint.h>

/* GSIs 0-23 are the in-kernel IOAPIC's pins; MSI routes start above them. */
#define IRQ_ROUTING_FIRST_MSI_GSI 24u
/* KVM's default table: 16 GSIs routed to PIC and IOAPIC, 8 to the IOAPIC only. */
#define IRQ_ROUTING_NR_DEFAULT 40u
/*
 * Most MSI GSIs one table may hold. KVM caps a table at KVM_MAX_IRQ_ROUTES (4096 on x86) entries and
 * GSIs below it; 2048 leaves room and is 32 devices x 64 vectors.
 */
#define IRQ_ROUTING_MAX_MSI_GSIS 2048u

/* The KVM calls, each returning 0 (signal_msi: >0 delivered, 0 blocked by the guest) or -errno. */
struct irq_routing_ops {
	int (*set_gsi_routing)(void *opaque, const struct kvm_irq_routing *table);
	int (*irqfd)(void *opaque, const struct kvm_irqfd *req);
	int (*signal_msi)(void *opaque, const struct kvm_msi *msi);
};

/* The real thing: ioctls on the KVM VM fd; `opaque` points at that int fd. */
extern const struct irq_routing_ops irq_routing_kvm_ops;

struct irq_routing;

/*
 * A routing table holding KVM's defaults and room for `nr_msi_gsis` MSI routes (GSIs
 * IRQ_ROUTING_FIRST_MSI_GSI .. + nr_msi_gsis - 1; at most IRQ_ROUTING_MAX_MSI_GSIS). Nothing is sent to
 * KVM until the first MSI route is set: until then KVM's own defaults are in force and identical.
 * Returns NULL with errno (EINVAL, ENOMEM).
 */
struct irq_routing *irq_routing_create(const struct irq_routing_ops *ops, void *opaque, unsigned int nr_msi_gsis);
void irq_routing_destroy(struct irq_routing *rt);

/* Allocate the lowest free MSI GSI. Returns the GSI (>= 24) or -ENOSPC. */
int irq_routing_alloc_gsi(struct irq_routing *rt) __attribute__((warn_unused_result));

/*
 * Release a GSI from irq_routing_alloc_gsi; its route, if any, is removed from KVM's table first.
 * Detach any irqfd from it before. Returns 0 or -errno from KVM (the GSI is freed either way).
 */
int irq_routing_free_gsi(struct irq_routing *rt, uint32_t gsi);

/*
 * Route `gsi` to the MSI message (`addr`, `data`) (PCI 3.0 s6.8.2: Message Address/Upper Address/Data)
 * and send the table to KVM. Nothing is sent when the route already says exactly that. On a KVM error
 * the previous route stays in force (KVM's table was not replaced) and so does kiln's copy.
 * Returns 0, -EINVAL (gsi not allocated) or -errno from KVM_SET_GSI_ROUTING.
 */
int irq_routing_set_msi(struct irq_routing *rt, uint32_t gsi, uint64_t addr, uint32_t data)
	__attribute__((warn_unused_result));

/*
 * Attach / detach eventfd `fd` (created by the caller, e.g. eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) as an
 * irqfd for `gsi` (api.rst "KVM_IRQFD"): a write to it injects the GSI's route inside KVM. 0 or -errno.
 */
int irq_routing_irqfd_assign(struct irq_routing *rt, int fd, uint32_t gsi) __attribute__((warn_unused_result));
int irq_routing_irqfd_deassign(struct irq_routing *rt, int fd, uint32_t gsi);

/*
 * Inject one MSI without a route (api.rst "KVM_SIGNAL_MSI"): the fallback when no GSI is left.
 * Returns >0 delivered, 0 blocked by the guest's LAPIC state, or -errno.
 */
int irq_routing_signal_msi(struct irq_routing *rt, uint64_t addr, uint32_t data);

/* How many MSI routes are in the table now (for tests and --verbose). */
unsigned int irq_routing_nr_msi_routes(struct irq_routing *rt);

#endif
