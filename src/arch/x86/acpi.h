/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for x86 guests (ACPI 6.4 s5.2): RSDP, XSDT, FADT, FACS, MADT, MCFG and the DSDT (compiled
 * from dsdt.asl by iasl at build time). They describe the vCPUs and IOAPIC (replacing the MP table for
 * an ACPI OS), the PCI Express host bridge and its ECAM window, the ISA devices, the fixed-hardware PM
 * registers (devices/legacy/acpi_pm.h) and the S5 sleep state through which the guest powers off.
 *
 * Interrupt wiring the tables describe (the same as mptable.c): ISA IRQ n is IOAPIC pin n, as KVM's
 * default GSI routing (and its in-kernel PIT, on GSI 0) has it - so no override for IRQ 0 - except that
 * the SCI (IRQ 9) is declared level-triggered, active high. PCI INTx: the DSDT's _PRT encodes
 * pci_intx_gsi() of devices/pci/pci.h (IOAPIC pins 16-23, level-triggered).
 */
#ifndef KILN_ARCH_X86_ACPI_H
#define KILN_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* Most vCPUs the tables describe: xAPIC IDs 0..n-1 plus the IOAPIC's ID n must fit below 255. */
#define ACPI_MAX_CPUS 254

/* Bytes acpi_build() writes for `nr_cpus` vCPUs (0 when nr_cpus is 0 or above ACPI_MAX_CPUS). */
size_t acpi_tables_size(unsigned int nr_cpus);

/*
 * Write every table into `buf` (`size` bytes), which the guest sees at guest physical `gpa`: the RSDP
 * (revision 2, both checksums) at `gpa` itself, then FACS, DSDT, FADT, MADT, MCFG, XSDT. All pointers
 * between tables are guest physical addresses. The RSDP is where a legacy scan looks when `gpa` is in
 * 0xe0000-0xfffff; the boot loader should also pass it in boot_params.acpi_rsdp_addr. Sets *rsdp_gpa.
 *
 * Returns 0; -EINVAL when nr_cpus is 0 or above ACPI_MAX_CPUS, `gpa` is not 64-byte aligned (FACS
 * alignment, ACPI 6.4 s5.2.10) or the tables would not lie below 4 GiB (the FADT's 32-bit fields);
 * -ENOSPC when `size` is below acpi_tables_size(nr_cpus).
 */
int acpi_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned int nr_cpus, uint64_t *rsdp_gpa)
	__attribute__((warn_unused_result));

#endif
