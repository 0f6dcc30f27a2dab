/* SPDX-License-Identifier: MIT */
/*
 * MSI-X for a PCI device (PCI Local Bus 3.0 s6.8.2): the capability, the vector table and the Pending
 * Bit Array in one of the device's memory BARs, masking, and delivery through KVM.
 *
 * Each vector that the guest has enabled and unmasked gets, on first use, a GSI from irq_routing with a
 * KVM_IRQ_ROUTING_MSI route holding its table entry's address and data, and an eventfd attached to it
 * as an irqfd. The device raises vector n with msix_notify(n): if the vector can fire (MSI-X enabled,
 * function and vector unmasked) the eventfd is written and KVM injects the message; if it is masked
 * the vector's Pending bit is set instead, and the message goes out when the guest unmasks it
 * (s6.8.2.9). Routes change only when an unmasked entry's message changes or a vector becomes
 * unmasked, so masking and unmasking cost no KVM call. When no GSI is left a vector is delivered with
 * KVM_SIGNAL_MSI instead (same effect, one ioctl per interrupt).
 *
 * The device wires three things: its BAR handler passes accesses to msix_bar_access first, its
 * config_write callback calls msix_config_write, and it calls msix_notify to interrupt. msix_notify
 * returns false while MSI-X is disabled: the device then uses INTx (pci_intx_set), which it must not
 * while MSI-X is enabled (s6.8.2).
 *
 * Locking: one mutex per msix, taken after the PCI cfg_lock and the device's lock, before irq_routing's.
 */
#ifndef KILN_DEVICES_PCI_MSIX_H
#define KILN_DEVICES_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "lib/codec.h"
#include "vmm/irq_routing.h"

#define PCI_CAP_ID_MSIX 0x11
#define MSIX_CAP_LEN 12
#define MSIX_MAX_VECTORS 2048
#define MSIX_ENTRY_SIZE 16

/* Capability fields (offsets from the capability) and Message Control bits. */
#define MSIX_CAP_CONTROL 2
#define MSIX_CAP_TABLE 4
#define MSIX_CAP_PBA 8
#define MSIX_CONTROL_ENABLE 0x8000
#define MSIX_CONTROL_FUNCTION_MASK 0x4000
#define MSIX_CONTROL_TABLE_SIZE 0x07ff

/* Table entry fields (offsets in an entry) and the Vector Control mask bit. */
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CTRL 12
#define MSIX_ENTRY_CTRL_MASKED 0x1

struct msix;

/* Bytes the PBA of `nr_vectors` vectors takes: one bit per vector, whole qwords (s6.8.2.10). */
static inline uint32_t msix_pba_size(unsigned int nr_vectors)
{
	return (nr_vectors + 63) / 64 * 8;
}

/*
 * Add an MSI-X capability with `nr_vectors` (1-2048) vectors to `dev` (before pci_register_device), its
 * table at `table_offset` and PBA at `pba_offset` in memory BAR `bar` (already declared; offsets
 * 8-byte aligned, both inside the BAR, not overlapping). All vectors start masked, MSI-X disabled.
 * `rt` provides GSIs and routes. Returns NULL with errno: EINVAL, ENOSPC (config space), ENOMEM.
 */
struct msix *msix_create(struct pci_device *dev, struct irq_routing *rt, unsigned int nr_vectors, unsigned int bar,
			 uint32_t table_offset, uint32_t pba_offset);

/* Detach the irqfds, free the GSIs and eventfds. After the vCPUs and the device's threads have stopped. */
void msix_destroy(struct msix *m);

/*
 * A guest access to BAR `bar` of the device at `offset`: serves it and returns true if it touches the
 * table or the PBA, else returns false (the device handles it). Table: dword and aligned qword writes,
 * naturally aligned reads of 1-8 bytes; PBA: read-only. Anything else touching them is dropped
 * (reads all-ones), never passed on.
 */
bool msix_bar_access(struct msix *m, unsigned int bar, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* From the device's config_write callback (cfg_lock held): picks up Enable / Function Mask changes. */
void msix_config_write(struct msix *m, uint32_t offset, uint32_t len);

/*
 * Raise vector `vec`: sends it, or sets its Pending bit while it is masked. Returns false when MSI-X is
 * disabled or `vec` is out of range (nothing happened: use INTx). Any thread.
 */
bool msix_notify(struct msix *m, unsigned int vec);

/* MSI-X Enable as the guest last wrote it. */
bool msix_enabled(struct msix *m);

/* Vector `vec`'s Pending bit. */
bool msix_pending(struct msix *m, unsigned int vec);

/* The capability's config offset. */
unsigned int msix_cap_offset(const struct msix *m);

/*
 * Snapshot state (section MSIX, instance = the device's slot): the vector table as the guest wrote it
 * and the Pending Bit Array. Enable and Function Mask live in config space (pci_function_restore).
 */
struct msix_state_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct msix_state {
	uint32_t nr;                    /* vectors, 1..MSIX_MAX_VECTORS */
	struct msix_state_entry table[MSIX_MAX_VECTORS];
	uint64_t pba[MSIX_MAX_VECTORS / 64];
};

/*
 * Section MSIX's payload, version 1 (8d1a722's; the oldest read): nr (le32), then nr entries of
 * addr_lo, addr_hi, data, ctrl (le32 each), then the PBA's (nr + 63) / 64 words (le64). An entry
 * holds only what the table keeps (addr_lo dword aligned, ctrl's Mask bit alone); PBA bits past the
 * last vector are clear.
 */
extern const struct codec_table msix_state_codec;

void msix_save(struct msix *m, struct msix_state *st);

/*
 * Load a decoded state after the device's config space (pci_function_restore): the table and PBA from
 * `st`, Enable and Function Mask from config space; every vector that can fire gets its GSI, route and
 * irqfd as if the guest had just unmasked it. -EINVAL (with a message) when the vector count differs.
 */
int msix_restore(struct msix *m, const struct msix_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
