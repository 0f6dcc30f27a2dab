/* SPDX-License-Identifier: MIT */
/*
 * PCI bus 0: a host bridge at 00.0 and up to 31 devices (function 0 only), their configuration space
 * (PCI Local Bus 3.0 ch. 6), reached through configuration mechanism #1 (ports 0xcf8/0xcfc, PCI 3.0
 * s3.2.2.3.2) and ECAM (PCI Express Base 4.0 s7.2.2), and the dispatch of BAR accesses.
 *
 * BARs: kiln assigns every BAR an address when the device is registered (there is no firmware), inside
 * the bus's windows: 32-bit MMIO, optional 64-bit MMIO, I/O. Linux keeps assignments it finds inside the
 * host bridge windows (ACPI _CRS) that do not collide, so the _CRS must describe exactly these windows.
 * Each window is ONE range on kiln's struct bus, registered once before the vCPUs start; pci.c decodes
 * BARs inside it from what the guest last programmed, so the guest may size and move BARs at will
 * without the bus (whose ranges never change while vCPUs run) knowing. A BAR decodes when the Command
 * register enables its space and it lies wholly inside a window of its kind; otherwise (sizing probe,
 * moved outside the windows, decoding off) accesses to it master-abort: reads all-ones, writes dropped.
 *
 * Interrupts: INTx pin A of the device in slot d is GSI pci_intx_gsi(d, 1) = 16 + d % 8 on the IOAPIC,
 * level-triggered; GSIs are shared (wired-OR counted here, since KVM_IRQ_LINE has one level per GSI for
 * all of user space). The ACPI _PRT / MP table must say the same. MSI-X: msix.h.
 *
 * Locks, in the order they may be taken:
 *   cfg_lock (the bus's, config accesses) -> device's own lock -> msix lock -> irq_routing lock;
 *   map_lock (BAR decode map, held only for the lookup) and intx_lock are leaves.
 * Device callbacks config_read/config_write/bar_mapped run with cfg_lock held and must not call back
 * into pci config functions; bar_access runs with no PCI lock held. A device must not hold its own lock
 * while calling anything that takes cfg_lock (nothing public does after registration, except
 * pci_bus_destroy).
 */
#ifndef KILN_DEVICES_PCI_PCI_H
#define KILN_DEVICES_PCI_PCI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/codec.h"
#include "vmm/bus.h"
#include "vmm/irq.h"

#define PCI_MAX_DEVICES 32
#define PCI_NR_BARS 6
#define PCI_CONFIG_SPACE_SIZE 256    /* conventional, reachable through mechanism #1 */
#define PCIE_CONFIG_SPACE_SIZE 4096  /* extended, reachable through ECAM only */
#define PCI_ECAM_BUS_SIZE (1ull << 20) /* 32 devices x 8 functions x 4 KiB */
#define PCI_CONF1_ADDRESS_PORT 0xcf8
#define PCI_CONF1_NR_PORTS 8         /* 0xcf8-0xcfb address, 0xcfc-0xcff data */

/* The host bridge at 00.0: QEMU's generic PCIe host bridge ID (Red Hat, QEMU docs/specs/pci-ids). */
#define PCI_HOST_BRIDGE_VENDOR 0x1b36
#define PCI_HOST_BRIDGE_DEVICE 0x0008
#define PCI_CLASS_HOST_BRIDGE 0x060000

/* Type 0 header offsets (PCI 3.0 s6.1). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_HEADER_TYPE 0x0e
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010

/* First byte capabilities may use (after the type 0 header). */
#define PCI_CAP_START 0x40

/* The INTx GSIs: IOAPIC pins 16-23. */
#define PCI_INTX_GSI_BASE 16u
#define PCI_INTX_NR_GSIS 8u

#define PCI_BAR_UNMAPPED UINT64_MAX

enum pci_bar_type {
	PCI_BAR_NONE = 0,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* takes two BAR registers: bar and bar + 1 */
	PCI_BAR_IO,
};

struct pci_bar {
	enum pci_bar_type type;
	bool prefetchable;
	uint64_t size;       /* bytes, a power of two */
	uint64_t mapped_gpa; /* where it decodes now, or PCI_BAR_UNMAPPED; guarded by cfg_lock */
};

struct pci_device;

struct pci_device_ops {
	/*
	 * A guest access to BAR `bar` at `offset` bytes into it; offset + len <= the BAR's size. `data` as
	 * for bus_handler_fn. Runs on a vCPU thread with no PCI lock held. NULL: reads all-ones.
	 */
	void (*bar_access)(struct pci_device *dev, unsigned int bar, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write);
	/* Before the guest reads config bytes [offset, offset + len): refresh dev->config if needed. May be NULL. */
	void (*config_read)(struct pci_device *dev, uint32_t offset, uint32_t len);
	/* After a guest write to config bytes [offset, offset + len) was applied to dev->config. May be NULL. */
	void (*config_write)(struct pci_device *dev, uint32_t offset, uint32_t len);
	/* BAR `bar` now decodes at `gpa` (PCI_BAR_UNMAPPED: no longer decodes). May be NULL. */
	void (*bar_mapped)(struct pci_device *dev, unsigned int bar, uint64_t gpa);
};

struct pci_device_info {
	const char *name;
	uint16_t vendor, device;
	uint16_t subsystem_vendor, subsystem;
	uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
	uint8_t revision;
	bool intx;           /* uses interrupt pin INTA# */
};

/*
 * One function-0 device. Devices embed it (or allocate it) and keep it alive until pci_bus_destroy.
 * Until pci_register_device the device may write config/wmask freely (the helpers below); after, the
 * PCI layer owns them and the device touches them only inside its config_* callbacks.
 */
struct pci_device {
	uint8_t config[PCIE_CONFIG_SPACE_SIZE];
	uint8_t wmask[PCIE_CONFIG_SPACE_SIZE];   /* 1 = guest-writable bit */
	uint8_t w1cmask[PCIE_CONFIG_SPACE_SIZE]; /* 1 = write-1-to-clear bit */
	struct pci_bar bars[PCI_NR_BARS];
	const struct pci_device_ops *ops;
	void *opaque;
	const char *name;

	/* Set by the PCI layer. */
	struct pci_bus *bus;
	int slot;                 /* -1 until registered */
	uint16_t next_cap;        /* where the next capability goes */
	uint8_t last_cap;         /* 0: none yet */
	uint32_t intx_gsi;
	atomic_bool intx_level;   /* the device's INTx request (Status.Interrupt Status) */
	bool intx_driven;         /* counted in the GSI's wired-OR; guarded by the bus's intx_lock */
	bool intx_disabled;       /* Command.Interrupt Disable mirror; guarded by intx_lock */
};

struct pci_bus_config {
	uint64_t ecam_base;                 /* 0: no ECAM */
	unsigned int ecam_nr_buses;         /* 1 MiB each, 1-256 (0 = 1): what the MCFG's bus range covers */
	uint64_t mmio32_base, mmio32_size;  /* must be below 4 GiB */
	uint64_t mmio64_base, mmio64_size;  /* size 0: none; 64-bit BARs then go in the 32-bit window */
	uint32_t io_base, io_size;          /* size 0: none; within 0-0xffff */
	irq_set_fn intx_set;                /* drives INTx GSIs (vm_set_irq_line) */
	void *intx_opaque;
};

struct pci_bus;

/*
 * Create bus 0 with the host bridge at 00.0. Windows (size 0 = absent) must not wrap or leave their
 * address space (32-bit window below 4 GiB, I/O below 64 Ki); the ECAM base is aligned to its size
 * (PCIe 4.0 s7.2.2: 2^n MiB for up to 2^n buses); the
 * MMIO windows and the ECAM must not overlap each other (overlaps with other devices' ranges show up
 * as -EEXIST from pci_bus_attach). Returns NULL with errno (EINVAL, ENOMEM).
 */
struct pci_bus *pci_bus_create(const struct pci_bus_config *cfg);

/* Free the bus. The devices registered on it are the caller's to free afterwards. */
void pci_bus_destroy(struct pci_bus *pci);

/*
 * Register the bus's ranges: mechanism #1 ports 0xcf8-0xcff on `pio`, the ECAM (ecam_nr_buses MiB; only
 * bus 0 has devices, the other buses read all-ones) and the MMIO windows on `mmio`, the I/O window on
 * `pio`. Once, before the vCPUs start. 0 or -errno from bus_register.
 */
int pci_bus_attach(struct pci_bus *pci, struct bus *pio, struct bus *mmio) __attribute__((warn_unused_result));

/*
 * Fill a type 0 header from `info` (PCI 3.0 s6.2) and the default write masks: Command bits IO, Memory,
 * Bus Master and Interrupt Disable; Status error bits RW1C; Cache Line Size and Interrupt Line
 * writable; everything else read-only.
 */
void pci_device_init(struct pci_device *dev, const struct pci_device_info *info, const struct pci_device_ops *ops,
		     void *opaque);

/*
 * Declare BAR `bar` (PCI 3.0 s6.2.5.1): `size` bytes, a power of two, at least 16 for memory, 4 to 256
 * for I/O; PCI_BAR_MEM64 uses bar and bar + 1 (bar <= 4). Before pci_register_device.
 * Returns 0, -EINVAL (bad size/index/type) or -EBUSY (register already used).
 */
int pci_device_add_bar(struct pci_device *dev, unsigned int bar, uint64_t size, enum pci_bar_type type,
		       bool prefetchable) __attribute__((warn_unused_result));

/*
 * Append a capability of `len` bytes (>= 2) with ID `id` to the capability list (PCI 3.0 s6.7): sets
 * Status.Capabilities List, links it from the Capabilities Pointer or the previous capability. The
 * body is zero and read-only until the caller sets wmask. Returns its config offset (dword-aligned,
 * >= 0x40) or -EINVAL / -ENOSPC (does not fit below 0x100).
 */
int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len) __attribute__((warn_unused_result));

/*
 * Put `dev` in `slot` (1-31; -1 = the lowest free one): assign its BARs addresses in the windows
 * (naturally aligned; memory BARs at least 4 KiB apart), route INTA# (Interrupt Line = its GSI).
 * Decoding stays off until the guest sets the Command register. Returns the slot, -EINVAL, -EBUSY
 * (slot taken), -ENOSPC (no slot, or a window is full: nothing is left allocated then).
 */
int pci_register_device(struct pci_bus *pci, struct pci_device *dev, int slot) __attribute__((warn_unused_result));

/*
 * Set the device's INTA# request (level: 0 or 1). Drives its GSI unless Command.Interrupt Disable is
 * set (PCI 3.0 s6.2.2); Status.Interrupt Status follows the request either way. Any thread.
 */
void pci_intx_set(struct pci_device *dev, int level);

/*
 * The GSI the interrupt pin `pin` (1 = INTA# ... 4 = INTD#) of the device in `slot` is wired to: the
 * conventional swizzle onto IOAPIC pins 16-23, 16 + (slot + pin - 1) % 8. The ACPI _PRT entry for
 * (slot << 16 | 0xffff, pin - 1) must name the same GSI.
 */
static inline uint32_t pci_intx_gsi(unsigned int slot, unsigned int pin)
{
	return PCI_INTX_GSI_BASE + (slot + pin - 1) % PCI_INTX_NR_GSIS;
}

/* ---- Snapshot state (sections PCI and PCIF, docs/snapshot-format.md) ---- */

/* The bus: CONFIG_ADDRESS and which slots hold a device (restore refuses a different set). */
struct pci_bus_state {
	uint32_t conf1_address;
	uint32_t slots;                 /* bit n: a device in slot n (bit 0, the host bridge, always) */
};

/*
 * Section PCI's payload, version 1 (8d1a722's; the oldest read): conf1_address, slots, le32 each.
 * CONFIG_ADDRESS's reserved bits must be clear and slot 0 present.
 */
extern const struct codec_table pci_bus_state_codec;

void pci_bus_save(struct pci_bus *pci, struct pci_bus_state *st);
/* Check the slots against this bus's devices and load CONFIG_ADDRESS. 0 or -EINVAL with a message. */
int pci_bus_restore(struct pci_bus *pci, const struct pci_bus_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* The device in `slot` (0: the host bridge), or NULL. */
struct pci_device *pci_bus_device(struct pci_bus *pci, unsigned int slot);

/* One function: its whole configuration space as the guest programmed it, and its INTx request. */
struct pci_function_state {
	uint8_t config[PCIE_CONFIG_SPACE_SIZE];
	bool intx_level;
};

/*
 * Section PCIF's payload (instance = slot), version 1 (8d1a722's; the oldest read): the 4 KiB config
 * space as it is, then intx_level as one byte (0 or 1).
 */
extern const struct codec_table pci_function_state_codec;

/* Copy out the registered device's config space and INTx request (takes cfg_lock). */
void pci_function_save(struct pci_device *dev, struct pci_function_state *st);

/*
 * Load a saved config space into the registered device `dev`: every read-only byte must equal the
 * device's own (same device, same capabilities: else -EINVAL naming the offset), the guest-writable
 * bits are taken from `st`. Then BARs are decoded again (the device's bar_mapped callback runs, as
 * for a guest write), Interrupt Disable is applied and the INTx request is set (driving its GSI).
 * The device's config_write callback is not called: devices restore their own state (MSI-X,
 * virtio) after this. Takes cfg_lock.
 */
int pci_function_restore(struct pci_device *dev, const struct pci_function_state *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Raw little-endian config helpers for the device's own use (no masks, no locks; see struct pci_device). */
static inline uint8_t pci_config_read8(const struct pci_device *dev, uint32_t off)
{
	return off < PCIE_CONFIG_SPACE_SIZE ? dev->config[off] : 0xff;
}

static inline uint16_t pci_config_read16(const struct pci_device *dev, uint32_t off)
{
	return (uint16_t)(pci_config_read8(dev, off) | pci_config_read8(dev, off + 1) << 8);
}

static inline uint32_t pci_config_read32(const struct pci_device *dev, uint32_t off)
{
	return (uint32_t)pci_config_read16(dev, off) | (uint32_t)pci_config_read16(dev, off + 2) << 16;
}

/* Store `len` (1-4) bytes of `val` at `off` into `arr` (config, wmask or w1cmask), little-endian. */
static inline void pci_config_put(uint8_t *arr, uint32_t off, uint32_t val, unsigned int len)
{
	for (unsigned int i = 0; i < len && off + i < PCIE_CONFIG_SPACE_SIZE; i++)
		arr[off + i] = (uint8_t)(val >> (8 * i));
}

#endif
