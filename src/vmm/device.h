/* SPDX-License-Identifier: MIT */
/*
 * The device registry: every kind of device a VM can have is one const `struct vm_device_type` row
 * (in the device's own file), listed once in vm_device_types[] (vmm/device_table.c). A VM holds its
 * devices as a list of instances (`struct vm_devices`), created from its config by walking that
 * table, and everything that treats devices alike goes through the list: creation and teardown,
 * snapshot save and restore of each device's state section (and, for virtio devices, of their
 * transport's sections), pausing and resuming with the VM, syncing before a snapshot.
 *
 * Adding a device type costs its file (the device, its state struct with a codec table, its row),
 * one line in vm_device_types[], its config fields, and a test.
 *
 * Order: instances are created in table order and, within a type, in config order; they are
 * destroyed in reverse. A virtio device takes the lowest free PCI slot when created, so the table's
 * order fixes the slots (the snapshot format records devices by slot: docs/snapshot-format.md).
 */
#ifndef KILN_VMM_DEVICE_H
#define KILN_VMM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_pci.h"
#include "lib/codec.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/memory.h"

struct snap_writer;
struct snap_reader;

/* What the VM does for its devices: the console, a machine reset, a power-off. Any thread. */
struct vm_device_events {
	void (*console_out)(void *opaque, const uint8_t *buf, size_t len); /* the UART's output */
	void (*reset)(void *opaque);    /* the guest reset the machine (i8042) */
	void (*poweroff)(void *opaque); /* the guest powered off (ACPI S5) */
	void *opaque;
};

/* Everything a device type's create() may use: the VM's config, buses, memory, interrupts. */
struct vm_device_ctx {
	const struct vm_config *cfg;
	struct bus *pio_bus;
	struct bus *mmio_bus;
	const struct guest_memory *mem;
	void (*set_irq)(void *opaque, uint32_t gsi, int level); /* an ISA interrupt line (KVM_IRQ_LINE) */
	void *irq_opaque;
	struct virtio_pci_params virtio;  /* bus 0 (any free slot), routing, loop, memory, VM fd; ops/dev unset */
	struct vm_device_events events;
};

/* I/O ports a device answers: registered on the PIO bus for each instance, `dev` as the handler's opaque. */
struct vm_device_ports {
	uint16_t base;
	uint16_t len;                   /* 0 ends a list */
	bus_handler_fn handler;
};

/*
 * A device type. `dev` is what create() returned. Every callback but count, create and destroy may
 * be NULL.
 */
struct vm_device_type {
	const char *name;                   /* "virtio-blk": messages */
	const char *config_section;         /* its section of the config file ("drives"), or NULL: always there */
	/* Instances `cfg` asks for. */
	unsigned int (*count)(const struct vm_config *cfg);
	/*
	 * Instance `index` of `ctx->cfg` (a virtio device on PCI bus 0), or NULL with errno; then `err`
	 * may say why, naming the config entry ("drive rootfs: rootfs.img is locked by another process").
	 */
	void *(*create)(const struct vm_device_ctx *ctx, unsigned int index, char *err, size_t err_size);
	const struct vm_device_ports *ports; /* its I/O ports, or NULL */
	/* After the vCPUs have stopped, the loop is destroyed and the PCI bus is gone (virtio_pci.h). */
	void (*destroy)(void *dev);
	/* A virtio device's transport: its MSIX and VIRT sections come with it, it is frozen for a snapshot. */
	struct virtio_pci *(*transport)(void *dev);

	/*
	 * Snapshot state: section `section`, instance = the PCI slot for a virtio device, else the index;
	 * `codec` describes the plain state struct that save() fills and restore() loads (after the
	 * transport's own state, for virtio). restore returns 0 or -EINVAL with a message.
	 */
	uint32_t section;
	const struct codec_table *codec;
	void (*save)(void *dev, void *st);
	int (*restore)(void *dev, const void *st, char *err, size_t err_size);
	/*
	 * A pause (vm_devices_pause), with the transport frozen (no queue processing): finish what is in
	 * flight and stop, so that guest RAM and the device state stay still until thaw() (a disk's
	 * requests complete, a NIC reads no frame from its TAP); 0 or -errno.
	 */
	int (*quiesce)(void *dev);
	void (*thaw)(void *dev);
	/* Before a snapshot of the paused VM: its backend on stable storage (a disk's image synced). */
	int (*sync)(void *dev);
};

struct vm_device {
	const struct vm_device_type *type;
	void *dev;
	unsigned int index;                 /* among the instances of its type */
};

struct vm_devices {
	struct vm_device *list;
	unsigned int nr;
};

/* count() of a device every VM has exactly one of. */
unsigned int vm_device_count_one(const struct vm_config *cfg);

/* Adapters from a device's typed destroy/save/restore to a vm_device_type's (void *) slots. */
#define VM_DEVICE_SAVE_FN(name, fn) \
	static void name(void *dev, void *st) { fn(dev, st); }
#define VM_DEVICE_RESTORE_FN(name, fn) /* fn returns nothing: it takes any state its codec decoded */ \
	static int name(void *dev, const void *st, char *err, size_t err_size) \
	{ \
		(void)err; \
		(void)err_size; \
		fn(dev, st); \
		return 0; \
	}

/* prefix##_destroy_dev, prefix##_save_dev and prefix##_restore_dev over a device's own three. */
#define VM_DEVICE_ADAPTERS(prefix, destroy_fn, save_fn, restore_fn) \
	static void prefix##_destroy_dev(void *dev) { destroy_fn(dev); } \
	VM_DEVICE_SAVE_FN(prefix##_save_dev, save_fn) \
	VM_DEVICE_RESTORE_FN(prefix##_restore_dev, restore_fn)

/* The types kiln builds VMs from, in creation order (vmm/device_table.c). */
extern const struct vm_device_type *const vm_device_types[];
extern const unsigned int vm_nr_device_types;

/*
 * Create every instance `ctx->cfg` asks for of each of the `nr` types, in order, into `d` (zeroed by
 * the caller). Returns 0 or -errno with the reason in `err` (naming the device and its config entry);
 * on failure what was created stays in `d` for vm_devices_destroy.
 */
int vm_devices_create(struct vm_devices *d, const struct vm_device_type *const *types, unsigned int nr,
		      const struct vm_device_ctx *ctx, char *err, size_t err_size) __attribute__((warn_unused_result));

/* Destroy every instance, last created first, and empty `d`. */
void vm_devices_destroy(struct vm_devices *d);

/* Instance `index` of `type`, or NULL. */
void *vm_devices_find(const struct vm_devices *d, const struct vm_device_type *type, unsigned int index);

/*
 * The VM pauses (vm_pause, once its vCPUs are paused): every virtio transport frozen (queue
 * notifications wait), then each device quiesced (what is in flight completes; nothing more is
 * written into guest RAM). Returns 0 or -errno with a message; vm_devices_resume is owed either way.
 */
int vm_devices_pause(struct vm_devices *d, char *err, size_t err_size) __attribute__((warn_unused_result));

/* Undo vm_devices_pause: devices thawed, notifications that waited handled. */
void vm_devices_resume(struct vm_devices *d);

/* Before a snapshot of the paused VM: each device's backend synced. 0 or -errno with a message. */
int vm_devices_sync(struct vm_devices *d, char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Write every device's sections: for a virtio device MSIX and VIRT (instance = slot), then its own;
 * for the others their own (instance = index). 0 or -errno.
 */
int vm_devices_save(struct vm_devices *d, struct snap_writer *w) __attribute__((warn_unused_result));

/*
 * Load the devices' sections, in two passes around the PCI bus's own state: with `virtio` false the
 * devices without a transport, with `virtio` true (after pci_function_restore of every slot) each
 * virtio device's MSI-X, transport and own state. 0 or -errno with a message naming the section.
 */
int vm_devices_restore(struct vm_devices *d, struct snap_reader *r, bool virtio, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
