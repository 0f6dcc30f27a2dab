/* SPDX-License-Identifier: MIT */
/*
 * Intel MultiProcessor Specification 1.4 tables (floating pointer + configuration table): how a
 * guest without ACPI finds its CPUs (local APIC IDs 0..n-1), the IOAPIC and the interrupt wiring:
 * bus 0 is PCI bus 0 (Linux matches the MP bus ID against the PCI bus number), bus 1 is ISA.
 */
#ifndef KILN_ARCH_X86_MPTABLE_H
#define KILN_ARCH_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * PCI slots whose INTA# the table routes (slots 1..MPTABLE_PCI_SLOTS, to pci_intx_gsi(slot, 1),
 * level-triggered): 16, so that 32 CPUs still fit the 1 KiB EBDA. Guests with ACPI use the _PRT.
 */
#define MPTABLE_PCI_SLOTS 16

/* Bytes the tables take for `nr_cpus` CPUs (floating pointer included). */
size_t mptable_size(unsigned int nr_cpus);

/*
 * Write the floating pointer at `buf` (guest physical `gpa`) followed by the configuration table.
 * `buf` holds at least mptable_size(nr_cpus) bytes; the IOAPIC gets ID nr_cpus. ISA IRQs 0-15 are
 * wired to IOAPIC pins 0-15 as KVM's default GSI routing does, PCI INTA# as above. Returns bytes
 * written, or 0 when nr_cpus is 0 or above 254.
 */
size_t mptable_write(uint8_t *buf, uint64_t gpa, unsigned int nr_cpus);

#endif
