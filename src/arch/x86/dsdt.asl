/* SPDX-License-Identifier: MIT */
/*
 * kiln's DSDT for x86 guests (ACPI 6.4 s5.2.11.1), compiled by iasl at build time into a byte array
 * that src/arch/x86/acpi.c copies into guest memory. The other tables (RSDP, XSDT, FADT, FACS, MADT,
 * MCFG) are built in C because they depend on the VM (vCPU count) - this one does not.
 *
 * What it describes:
 *  - \_S0 and \_S5: the SLP_TYP values for PM1_CNT (devices/legacy/acpi_pm.h); writing SLP_EN with
 *    \_S5's ends the VM. No S1-S4: kiln cannot suspend or hibernate a guest.
 *  - \_PIC: remembers the interrupt model; the _PRT below only describes IOAPIC mode.
 *  - \_SB.PCI0: the PCI Express host bridge (PCI Firmware spec 3.3 s4.5) of devices/pci/pci.h, its
 *    buses, I/O and 32-bit memory windows (arch/x86/layout.h), _OSC, and the INTx routing of every slot.
 *  - \_SB.MRES: motherboard resources (PNP0C02) reserving the ECAM window, which Linux requires before
 *    it uses MCFG (otherwise: "MMCONFIG ... not reserved in ACPI motherboard resources").
 *  - \_SB.COM1, \_SB.RTC, \_SB.KBD: the ISA devices kiln emulates, so Linux's PNP layer binds its
 *    drivers to them with the right ports and IRQs. No PS/2 mouse: kiln's i8042 has no AUX device.
 *
 * No power button device (PNP0C0C): kiln's power button is the ACPI fixed-feature one (PWRBTN_STS in
 * PM1_STS; the FADT's PWR_BUTTON flag is clear), for which Linux creates its own LNXPWRBN device. A
 * PNP0C0C here would be a second, control-method button that needs a GPE block to ever fire.
 *
 * iasl's preprocessor includes layout.h for the PCI windows: the constants used here must be plain
 * integers (no C suffixes). The SLP_TYP values are literals: they must equal ACPI_SLP_TYP_S0/_S5 of
 * devices/legacy/acpi_pm.h, which tests/unit/test_acpi.c checks in the compiled table.
 */
#include "arch/x86/layout.h"

DefinitionBlock ("", "DSDT", 2, "KILN  ", "KILNDSDT", 1)
{
    /* Sleep states: {PM1a SLP_TYP, PM1b SLP_TYP, reserved, reserved} (ACPI 6.4 s7.4.2). */
    Name (\_S0, Package (4) { 0, 0, Zero, Zero })
    Name (\_S5, Package (4) { 5, 5, Zero, Zero })

    /* Interrupt model the OS chose (ACPI 6.4 s5.8.1): 0 = 8259 PIC, 1 = IOAPIC. */
    Name (PICM, Zero)
    Method (\_PIC, 1, NotSerialized)
    {
        PICM = Arg0
    }

    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))     /* PCI Express root bridge */
            Name (_CID, EisaId ("PNP0A03"))     /* ... compatible with a PCI root bridge */
            Name (_UID, Zero)
            Name (_SEG, Zero)
            Name (_BBN, Zero)

            /*
             * Exactly the windows kiln's PCI bus decodes (devices/pci/pci.h, configured from
             * layout.h): Linux keeps the BAR addresses kiln assigned when they lie inside these. The
             * ISA devices below are siblings of PCI0, not behind it, so their ports are not listed.
             */
            Name (_CRS, ResourceTemplate ()
            {
                /* Buses 0-255: what the 256 MiB ECAM window of the MCFG covers. */
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
                /* Configuration mechanism #1, consumed by the bridge itself. */
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
                /* The I/O window for I/O BARs. */
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, X86_PCI_IO_BASE, X86_PCI_IO_LAST, 0x0000, X86_PCI_IO_SIZE)
                /* The 32-bit window for memory BARs, below the ECAM window. */
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
                    0x00000000, X86_PCI_MMIO32_GPA, X86_PCI_MMIO32_LAST, 0x00000000, X86_PCI_MMIO32_SIZE)
            })

            /*
             * Operating system capabilities (PCI Firmware spec 3.3 s4.5.1): kiln has no firmware that
             * wants to keep native hotplug, PME, AER or PCIe capability control, so the OS gets every
             * control it asks for (the Control dword comes back unchanged).
             */
            Method (_OSC, 4, NotSerialized)
            {
                CreateDWordField (Arg3, Zero, CDW1)
                If ((Arg0 != ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766")))
                {
                    CDW1 |= 0x04                /* unrecognized UUID */
                }
                ElseIf ((Arg1 != One))
                {
                    CDW1 |= 0x08                /* unrecognized revision */
                }
                Return (Arg3)
            }

            /*
             * INTx routing in IOAPIC mode (ACPI 6.4 s6.2.13): slot s, pin p (0 = INTA# .. 3 = INTD#)
             * raises GSI 16 + ((s + p) mod 8), level-triggered, on IOAPIC pins 16-23, which no ISA
             * device uses. Static GSIs (no link devices): Linux programs them level, active low; KVM's
             * IOAPIC ignores polarity, so a device asserts its line by setting the GSI to 1.
             * pci_intx_gsi() in devices/pci/pci.h wires the same (its pins count from 1 = INTA#);
             * tests/unit/test_acpi.c checks every entry against it.
             * Entries: {address (slot << 16 | 0xffff = any function), pin, source (none), GSI}.
             */
            Name (_PRT, Package ()
            {
                Package () { 0x0000FFFF, 0, Zero, 16 },
                Package () { 0x0000FFFF, 1, Zero, 17 },
                Package () { 0x0000FFFF, 2, Zero, 18 },
                Package () { 0x0000FFFF, 3, Zero, 19 },
                Package () { 0x0001FFFF, 0, Zero, 17 },
                Package () { 0x0001FFFF, 1, Zero, 18 },
                Package () { 0x0001FFFF, 2, Zero, 19 },
                Package () { 0x0001FFFF, 3, Zero, 20 },
                Package () { 0x0002FFFF, 0, Zero, 18 },
                Package () { 0x0002FFFF, 1, Zero, 19 },
                Package () { 0x0002FFFF, 2, Zero, 20 },
                Package () { 0x0002FFFF, 3, Zero, 21 },
                Package () { 0x0003FFFF, 0, Zero, 19 },
                Package () { 0x0003FFFF, 1, Zero, 20 },
                Package () { 0x0003FFFF, 2, Zero, 21 },
                Package () { 0x0003FFFF, 3, Zero, 22 },
                Package () { 0x0004FFFF, 0, Zero, 20 },
                Package () { 0x0004FFFF, 1, Zero, 21 },
                Package () { 0x0004FFFF, 2, Zero, 22 },
                Package () { 0x0004FFFF, 3, Zero, 23 },
                Package () { 0x0005FFFF, 0, Zero, 21 },
                Package () { 0x0005FFFF, 1, Zero, 22 },
                Package () { 0x0005FFFF, 2, Zero, 23 },
                Package () { 0x0005FFFF, 3, Zero, 16 },
                Package () { 0x0006FFFF, 0, Zero, 22 },
                Package () { 0x0006FFFF, 1, Zero, 23 },
                Package () { 0x0006FFFF, 2, Zero, 16 },
                Package () { 0x0006FFFF, 3, Zero, 17 },
                Package () { 0x0007FFFF, 0, Zero, 23 },
                Package () { 0x0007FFFF, 1, Zero, 16 },
                Package () { 0x0007FFFF, 2, Zero, 17 },
                Package () { 0x0007FFFF, 3, Zero, 18 },
                Package () { 0x0008FFFF, 0, Zero, 16 },
                Package () { 0x0008FFFF, 1, Zero, 17 },
                Package () { 0x0008FFFF, 2, Zero, 18 },
                Package () { 0x0008FFFF, 3, Zero, 19 },
                Package () { 0x0009FFFF, 0, Zero, 17 },
                Package () { 0x0009FFFF, 1, Zero, 18 },
                Package () { 0x0009FFFF, 2, Zero, 19 },
                Package () { 0x0009FFFF, 3, Zero, 20 },
                Package () { 0x000AFFFF, 0, Zero, 18 },
                Package () { 0x000AFFFF, 1, Zero, 19 },
                Package () { 0x000AFFFF, 2, Zero, 20 },
                Package () { 0x000AFFFF, 3, Zero, 21 },
                Package () { 0x000BFFFF, 0, Zero, 19 },
                Package () { 0x000BFFFF, 1, Zero, 20 },
                Package () { 0x000BFFFF, 2, Zero, 21 },
                Package () { 0x000BFFFF, 3, Zero, 22 },
                Package () { 0x000CFFFF, 0, Zero, 20 },
                Package () { 0x000CFFFF, 1, Zero, 21 },
                Package () { 0x000CFFFF, 2, Zero, 22 },
                Package () { 0x000CFFFF, 3, Zero, 23 },
                Package () { 0x000DFFFF, 0, Zero, 21 },
                Package () { 0x000DFFFF, 1, Zero, 22 },
                Package () { 0x000DFFFF, 2, Zero, 23 },
                Package () { 0x000DFFFF, 3, Zero, 16 },
                Package () { 0x000EFFFF, 0, Zero, 22 },
                Package () { 0x000EFFFF, 1, Zero, 23 },
                Package () { 0x000EFFFF, 2, Zero, 16 },
                Package () { 0x000EFFFF, 3, Zero, 17 },
                Package () { 0x000FFFFF, 0, Zero, 23 },
                Package () { 0x000FFFFF, 1, Zero, 16 },
                Package () { 0x000FFFFF, 2, Zero, 17 },
                Package () { 0x000FFFFF, 3, Zero, 18 },
                Package () { 0x0010FFFF, 0, Zero, 16 },
                Package () { 0x0010FFFF, 1, Zero, 17 },
                Package () { 0x0010FFFF, 2, Zero, 18 },
                Package () { 0x0010FFFF, 3, Zero, 19 },
                Package () { 0x0011FFFF, 0, Zero, 17 },
                Package () { 0x0011FFFF, 1, Zero, 18 },
                Package () { 0x0011FFFF, 2, Zero, 19 },
                Package () { 0x0011FFFF, 3, Zero, 20 },
                Package () { 0x0012FFFF, 0, Zero, 18 },
                Package () { 0x0012FFFF, 1, Zero, 19 },
                Package () { 0x0012FFFF, 2, Zero, 20 },
                Package () { 0x0012FFFF, 3, Zero, 21 },
                Package () { 0x0013FFFF, 0, Zero, 19 },
                Package () { 0x0013FFFF, 1, Zero, 20 },
                Package () { 0x0013FFFF, 2, Zero, 21 },
                Package () { 0x0013FFFF, 3, Zero, 22 },
                Package () { 0x0014FFFF, 0, Zero, 20 },
                Package () { 0x0014FFFF, 1, Zero, 21 },
                Package () { 0x0014FFFF, 2, Zero, 22 },
                Package () { 0x0014FFFF, 3, Zero, 23 },
                Package () { 0x0015FFFF, 0, Zero, 21 },
                Package () { 0x0015FFFF, 1, Zero, 22 },
                Package () { 0x0015FFFF, 2, Zero, 23 },
                Package () { 0x0015FFFF, 3, Zero, 16 },
                Package () { 0x0016FFFF, 0, Zero, 22 },
                Package () { 0x0016FFFF, 1, Zero, 23 },
                Package () { 0x0016FFFF, 2, Zero, 16 },
                Package () { 0x0016FFFF, 3, Zero, 17 },
                Package () { 0x0017FFFF, 0, Zero, 23 },
                Package () { 0x0017FFFF, 1, Zero, 16 },
                Package () { 0x0017FFFF, 2, Zero, 17 },
                Package () { 0x0017FFFF, 3, Zero, 18 },
                Package () { 0x0018FFFF, 0, Zero, 16 },
                Package () { 0x0018FFFF, 1, Zero, 17 },
                Package () { 0x0018FFFF, 2, Zero, 18 },
                Package () { 0x0018FFFF, 3, Zero, 19 },
                Package () { 0x0019FFFF, 0, Zero, 17 },
                Package () { 0x0019FFFF, 1, Zero, 18 },
                Package () { 0x0019FFFF, 2, Zero, 19 },
                Package () { 0x0019FFFF, 3, Zero, 20 },
                Package () { 0x001AFFFF, 0, Zero, 18 },
                Package () { 0x001AFFFF, 1, Zero, 19 },
                Package () { 0x001AFFFF, 2, Zero, 20 },
                Package () { 0x001AFFFF, 3, Zero, 21 },
                Package () { 0x001BFFFF, 0, Zero, 19 },
                Package () { 0x001BFFFF, 1, Zero, 20 },
                Package () { 0x001BFFFF, 2, Zero, 21 },
                Package () { 0x001BFFFF, 3, Zero, 22 },
                Package () { 0x001CFFFF, 0, Zero, 20 },
                Package () { 0x001CFFFF, 1, Zero, 21 },
                Package () { 0x001CFFFF, 2, Zero, 22 },
                Package () { 0x001CFFFF, 3, Zero, 23 },
                Package () { 0x001DFFFF, 0, Zero, 21 },
                Package () { 0x001DFFFF, 1, Zero, 22 },
                Package () { 0x001DFFFF, 2, Zero, 23 },
                Package () { 0x001DFFFF, 3, Zero, 16 },
                Package () { 0x001EFFFF, 0, Zero, 22 },
                Package () { 0x001EFFFF, 1, Zero, 23 },
                Package () { 0x001EFFFF, 2, Zero, 16 },
                Package () { 0x001EFFFF, 3, Zero, 17 },
                Package () { 0x001FFFFF, 0, Zero, 23 },
                Package () { 0x001FFFFF, 1, Zero, 16 },
                Package () { 0x001FFFFF, 2, Zero, 17 },
                Package () { 0x001FFFFF, 3, Zero, 18 }
            })
        }

        /* Motherboard resources: the ECAM window (PCI Firmware spec 3.3 s4.1.2). */
        Device (MRES)
        {
            Name (_HID, EisaId ("PNP0C02"))
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadWrite, X86_PCIE_ECAM_GPA, X86_PCIE_ECAM_SIZE)
            })
        }

        /* 16550A UART, COM1 (devices/legacy/serial.h). */
        Device (COM1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
                IRQNoFlags () {4}
            })
        }

        /* MC146818 RTC and CMOS (devices/legacy/rtc.h); the FADT's CENTURY points at CMOS 0x32. */
        Device (RTC)
        {
            Name (_HID, EisaId ("PNP0B00"))
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x0070, 0x0070, 0x01, 0x02)
                IRQNoFlags () {8}
            })
        }

        /* i8042 keyboard controller (devices/legacy/i8042.h). */
        Device (KBD)
        {
            Name (_HID, EisaId ("PNP0303"))
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x0060, 0x0060, 0x01, 0x01)
                IO (Decode16, 0x0064, 0x0064, 0x01, 0x01)
                IRQNoFlags () {1}
            })
        }
    }
}
