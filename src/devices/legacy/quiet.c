// SPDX-License-Identifier: MIT
/*
 * Port ranges a PC guest touches at boot that kiln emulates nothing behind. Unclaimed ports would
 * reach the vCPU loop's "unhandled I/O" path (and its log); these are known, expected and harmless,
 * so they are answered here without a word: writes are dropped, reads return all-ones, which is what
 * an ISA bus with nothing decoding the address returns and what every probe below takes for "absent".
 *
 * Deliberately absent from the table:
 *  - ports KVM emulates in the kernel, which never exit to user space: PIC 0x20-0x21 and 0xa0-0xa1,
 *    PIT 0x40-0x43, speaker/NMI status 0x61, ELCR 0x4d0-0x4d1;
 *  - port 0x92 (system control port A: fast A20 and reset), which is a real device's job;
 *  - port 0x3f6, between the floppy ranges: it is the primary IDE channel's control register, not
 *    the floppy controller's;
 *  - PCI configuration mechanism #1 (0xcf8-0xcff): the PCI bus (devices/pci/pci.c) owns it.
 */
#include "devices/legacy/quiet.h"

#include <stddef.h>
#include <string.h>

struct quiet_range {
	uint16_t base;
	uint16_t len;
	const char *name;
};

static const struct quiet_range quiet_ranges[] = {
	/* 8237 DMA controller 1: Linux's claim_dma_lock()/reserve_resource only, and the floppy driver. */
	{ 0x0000, 0x20, "dma1" },
	/* POST code port: Linux's outb_p()/io_delay() writes it after every slow port access. */
	{ 0x0080, 0x01, "post" },
	/* DMA page registers (0x87 is channel 0's): written by the DMA API and the floppy driver. */
	{ 0x0081, 0x0f, "dma-page" },
	/* 8237 DMA controller 2, cascaded: same users as controller 1. */
	{ 0x00c0, 0x20, "dma2" },
	/* Alternative delay port: io_delay=0xed, chosen by Linux's DMI quirks on some boards. */
	{ 0x00ed, 0x01, "io-delay" },
	/* Bochs/QEMU VBE dispi index/data: bochs-drm and vesafb probes read the ID (0xffff = none). */
	{ 0x01ce, 0x02, "bochs-vbe" },
	/* LPT2: the parport_pc driver's ECR/SPP probe; all-ones fails its read-back tests. */
	{ 0x0278, 0x03, "lpt2" },
	/* COM4: 8250 autoconfig's IER test reads 0x0f where it wrote 0, so the port is skipped. */
	{ 0x02e8, 0x08, "com4" },
	/* COM2: same IER test as COM4. */
	{ 0x02f8, 0x08, "com2" },
	/* LPT1: parport_pc, as LPT2. */
	{ 0x0378, 0x03, "lpt1" },
	/* MDA/VGA monochrome CRTC and status: vgacon/VGA arbiter probes, when the boot info says VGA. */
	{ 0x03b0, 0x0c, "vga-mono" },
	/* LPT on a monochrome display adapter: parport_pc probes it first. */
	{ 0x03bc, 0x03, "lpt-mda" },
	/* Hercules configuration switch. */
	{ 0x03bf, 0x01, "vga-herc" },
	/* VGA attribute, sequencer, DAC, graphics and colour CRTC registers: vgacon, vga16fb, X. */
	{ 0x03c0, 0x20, "vga" },
	/* COM3: same IER test as COM4. */
	{ 0x03e8, 0x08, "com3" },
	/* Floppy controller SRA/SRB/DOR/TDR/MSR/FIFO: the floppy driver's FDC version probe gives up on 0xff. */
	{ 0x03f0, 0x06, "fdc" },
	/* Floppy digital input / configuration control register. */
	{ 0x03f7, 0x01, "fdc-dir" },
	/* ECP extended control registers of LPT2, LPT1 and the MDA LPT (base + 0x400): parport_pc's ECR probe. */
	{ 0x0678, 0x03, "lpt2-ecr" },
	{ 0x0778, 0x03, "lpt1-ecr" },
	{ 0x07bc, 0x03, "lpt-mda-ecr" },
	/* QEMU fw_cfg selector/data/DMA: Linux's qemu_fw_cfg reads no "QEMU" signature and stops. */
	{ 0x0510, 0x0c, "fw_cfg" },
};

static void quiet_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		memset(data, 0xff, len);
}

int quiet_ports_register(struct bus *pio)
{
	for (size_t i = 0; i < sizeof(quiet_ranges) / sizeof(quiet_ranges[0]); i++) {
		const struct quiet_range *r = &quiet_ranges[i];
		int err = bus_register(pio, r->base, r->len, quiet_io, NULL, r->name);

		if (err)
			return err;
	}
	return 0;
}
