/* SPDX-License-Identifier: MIT */
/*
 * Where kiln puts things in guest physical memory on x86 (below 1 MiB: what firmware would leave).
 *
 *   0x0000_1000  boot GDT                     0x0000_9000  PML4
 *   0x0000_7000  boot_params (zero page)      0x0000_a000  PDPT
 *   0x0000_8ff0  boot stack top               0x0000_b000  4 page directories (0-4 GiB, 2 MiB pages)
 *   0x0002_0000  kernel command line          0x0009_fc00  EBDA: MP floating pointer + table
 *   0x000a_0000 - 0x0010_0000  legacy video/BIOS hole (reserved in e820); kiln's PVM syscall trap page
 *                              tables at 0x000e_0000 (3 pages)
 *   0x0100_0000  Linux vmlinux's load address (from its ELF headers)
 *   0xc000_0000 - 0x1_0000_0000  MMIO hole; RAM continues at 4 GiB:
 *       0xc000_0000 - 0xe000_0000  PCI 32-bit memory window (BARs, assigned by kiln)
 *       0xe000_0000 - 0xf000_0000  PCIe ECAM, buses 0-255 (only bus 0 has devices)
 *       0xfec0_0000 IOAPIC, 0xfee0_0000 LAPIC (in KVM)
 *   Ports 0xc000 - 0xffff: PCI I/O window (I/O BARs); 0xcf8-0xcff configuration mechanism #1.
 */
#ifndef KILN_ARCH_X86_LAYOUT_H
#define KILN_ARCH_X86_LAYOUT_H

#define X86_BOOT_GDT_GPA 0x1000ull
#define X86_ZERO_PAGE_GPA 0x7000ull
#define X86_BOOT_STACK_GPA 0x8ff0ull
#define X86_PML4_GPA 0x9000ull
#define X86_PDPT_GPA 0xa000ull
#define X86_PD_GPA 0xb000ull /* 4 pages */
#define X86_CMDLINE_GPA 0x20000ull
#define X86_CMDLINE_MAX 0x10000ull
#define X86_EBDA_GPA 0x9fc00ull
#define X86_LEGACY_HOLE_START 0xa0000ull
#define X86_HIGH_MEMORY_START 0x100000ull
#define X86_MMIO_HOLE_START 0xc0000000ull
/*
 * PCI host bridge windows: the ACPI _CRS and MCFG describe exactly these (devices/pci/pci.h). Plain
 * integers without C suffixes: iasl's preprocessor includes this file for the DSDT.
 */
#define X86_PCI_MMIO32_GPA 0xc0000000
#define X86_PCI_MMIO32_SIZE 0x20000000
#define X86_PCI_MMIO32_LAST 0xdfffffff
#define X86_PCIE_ECAM_GPA 0xe0000000
#define X86_PCIE_ECAM_SIZE 0x10000000 /* 256 buses x 1 MiB */
#define X86_PCI_IO_BASE 0xc000
#define X86_PCI_IO_SIZE 0x4000
#define X86_PCI_IO_LAST 0xffff
/* ACPI tables (RSDP first, 16-byte aligned) in the BIOS area, reserved by the e820 map. Not 0xe0000: the
 * PVM SYSCALL trap's page tables live there. */
#define X86_ACPI_TABLES_GPA 0xf0000
#define X86_ACPI_TABLES_SIZE 0x10000
#define X86_IOAPIC_GPA 0xfec00000ull
#define X86_LAPIC_GPA 0xfee00000ull
/* KVM_SET_TSS_ADDR needs three pages and KVM_SET_IDENTITY_MAP_ADDR one, inside the MMIO hole. */
#define X86_KVM_IDENTITY_MAP_GPA 0xfeffc000ull
#define X86_KVM_TSS_GPA 0xfeffd000ull
/* PVM hosts: page tables kiln owns for the SYSCALL trap (reserved RAM), and the unbacked page it maps. */
#define X86_PVM_TRAP_PT_GPA 0xe0000ull
#define X86_PVM_TRAP_GPA 0xfeff0000ull

#endif
