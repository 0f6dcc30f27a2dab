// SPDX-License-Identifier: MIT
#include "arch/x86/mptable.h"

#include <string.h>

#include "arch/x86/layout.h"
#include "devices/pci/pci.h"

/* Entry layouts: MP spec 1.4 section 4 (tables 4-1 to 4-12). */
struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length;    /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "mpf");
_Static_assert(sizeof(struct mpc_table) == 44, "mpc");
_Static_assert(sizeof(struct mpc_cpu) == 20, "cpu");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "intsrc");

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define CPU_ENABLED 1
#define CPU_BOOTPROCESSOR 2
#define MPC_APIC_USABLE 1
#define ISA_IRQS 16
#define MP_BUS_PCI 0 /* Linux matches an interrupt's source bus ID against the PCI bus number */
#define MP_BUS_ISA 1
/* INTx: level-triggered, active high (kiln raises a PCI line with KVM_IRQ_LINE level 1). */
#define MP_IRQ_LEVEL_HIGH 0x000d
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

size_t mptable_size(unsigned int nr_cpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) + nr_cpus * sizeof(struct mpc_cpu) +
	       2 * sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
	       (ISA_IRQS + MPTABLE_PCI_SLOTS + 2) * sizeof(struct mpc_intsrc);
}

size_t mptable_write(uint8_t *buf, uint64_t gpa, unsigned int nr_cpus)
{
	struct mpf_intel *mpf = (struct mpf_intel *)buf;
	struct mpc_table *mpc = (struct mpc_table *)(buf + sizeof(*mpf));
	uint8_t *p = (uint8_t *)(mpc + 1);
	uint8_t ioapic_id = (uint8_t)nr_cpus;
	uint16_t count = 0;
	unsigned int i;

	if (nr_cpus == 0 || nr_cpus > 254)
		return 0;
	memset(buf, 0, mptable_size(nr_cpus));

	for (i = 0; i < nr_cpus; i++, p += sizeof(struct mpc_cpu), count++) {
		struct mpc_cpu *cpu = (struct mpc_cpu *)p;

		cpu->type = MP_PROCESSOR;
		cpu->apicid = (uint8_t)i;
		cpu->apicver = APIC_VERSION;
		cpu->cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0);
		cpu->cpufeature = 0x600;   /* family 6 signature, as firmware on KVM reports */
		cpu->featureflag = 0x201;  /* FPU | APIC */
	}
	{
		struct mpc_bus *bus = (struct mpc_bus *)p;

		bus[0] = (struct mpc_bus){ .type = MP_BUS, .busid = MP_BUS_PCI };
		memcpy(bus[0].bustype, "PCI   ", 6);
		bus[1] = (struct mpc_bus){ .type = MP_BUS, .busid = MP_BUS_ISA };
		memcpy(bus[1].bustype, "ISA   ", 6);
		p += 2 * sizeof(*bus);
		count += 2;
	}
	{
		struct mpc_ioapic *ioapic = (struct mpc_ioapic *)p;

		ioapic->type = MP_IOAPIC;
		ioapic->apicid = ioapic_id;
		ioapic->apicver = IOAPIC_VERSION;
		ioapic->flags = MPC_APIC_USABLE;
		ioapic->apicaddr = (uint32_t)X86_IOAPIC_GPA;
		p += sizeof(*ioapic);
		count++;
	}
	for (i = 0; i < ISA_IRQS; i++, p += sizeof(struct mpc_intsrc), count++) {
		struct mpc_intsrc *src = (struct mpc_intsrc *)p;

		*src = (struct mpc_intsrc){
			.type = MP_INTSRC, .irqtype = MP_INT, .irqflag = 0, /* conforms to the ISA bus */
			.srcbus = MP_BUS_ISA, .srcbusirq = (uint8_t)i, .dstapic = ioapic_id, .dstirq = (uint8_t)i,
		};
	}
	/* PCI INTA# of slots 1..: source "IRQ" is slot << 2 | pin (MP spec 1.4 s5.3.4, PCI bus). */
	for (i = 1; i <= MPTABLE_PCI_SLOTS; i++, p += sizeof(struct mpc_intsrc), count++) {
		struct mpc_intsrc *src = (struct mpc_intsrc *)p;

		*src = (struct mpc_intsrc){
			.type = MP_INTSRC, .irqtype = MP_INT, .irqflag = MP_IRQ_LEVEL_HIGH,
			.srcbus = MP_BUS_PCI, .srcbusirq = (uint8_t)(i << 2), .dstapic = ioapic_id,
			.dstirq = (uint8_t)pci_intx_gsi(i, 1),
		};
	}
	/* LINT0 is ExtINT (the 8259 through the local APIC), LINT1 NMI, on every CPU (0xff). */
	*(struct mpc_intsrc *)p = (struct mpc_intsrc){ .type = MP_LINTSRC, .irqtype = MP_EXTINT, .dstapic = 0xff, .dstirq = 0 };
	p += sizeof(struct mpc_intsrc);
	*(struct mpc_intsrc *)p = (struct mpc_intsrc){ .type = MP_LINTSRC, .irqtype = MP_NMI, .dstapic = 0xff, .dstirq = 1 };
	p += sizeof(struct mpc_intsrc);
	count += 2;

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "KILN    ", 8);
	memcpy(mpc->productid, "KILN VM     ", 12);
	mpc->oemcount = count;
	mpc->lapic = (uint32_t)X86_LAPIC_GPA;
	mpc->checksum = mp_checksum((const uint8_t *)mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(gpa + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = mp_checksum((const uint8_t *)mpf, sizeof(*mpf));
	return (size_t)(p - buf);
}
