/* SPDX-License-Identifier: MIT */
/*
 * Intel MultiProcessor Specification 1.4 tables (floating pointer + configuration table): how a
 * guest without ACPI finds its CPUs (local APIC IDs 0..n-1), the IOAPIC and the ISA interrupt wiring.
 */
#ifndef KILN_ARCH_X86_MPTABLE_H
#define KILN_ARCH_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the tables take for `nr_cpus` CPUs (floating pointer included). */
size_t mptable_size(unsigned int nr_cpus);

/*
 * Write the floating pointer at `buf` (guest physical `gpa`) followed by the configuration table.
 * `buf` holds at least mptable_size(nr_cpus) bytes; the IOAPIC gets ID nr_cpus. ISA IRQs 0-15 are
 * wired to IOAPIC pins 0-15 as KVM's default GSI routing does. Returns bytes written, or 0 when
 * nr_cpus is 0 or above 254.
 */
size_t mptable_write(uint8_t *buf, uint64_t gpa, unsigned int nr_cpus);

#endif
