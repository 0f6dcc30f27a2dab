/* SPDX-License-Identifier: MIT */
/* How a device raises an interrupt: a level on a GSI of the in-kernel PIC/IOAPIC (KVM_IRQ_LINE). */
#ifndef KILN_VMM_IRQ_H
#define KILN_VMM_IRQ_H

#include <stdint.h>

/* Set interrupt line `gsi` to `level` (0 or 1). Edge-triggered ISA lines pulse 1 then 0. */
typedef void (*irq_set_fn)(void *opaque, uint32_t gsi, int level);

struct irq_line {
	irq_set_fn set;
	void *opaque;
	uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
	if (line->set)
		line->set(line->opaque, line->gsi, level);
}

#endif
