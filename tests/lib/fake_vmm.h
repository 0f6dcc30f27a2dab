/* SPDX-License-Identifier: MIT */
/*
 * The VM half of kiln's device tests and fuzz targets, shared so that each test holds only what it
 * tests: a fake KVM (GSI routing, irqfds, KVM_SIGNAL_MSI, KVM_IOEVENTFD, INTx) that records what the
 * devices ask of it, and a small VM around it (memfd guest memory, PIO/MMIO buses, a PCI host bridge
 * reached through ECAM, IRQ routing, a device event loop), with the accessors a test driver uses to
 * reach PCI config space and virtio PCI registers (virtio 1.2 s4.1.4) through the MMIO bus.
 *
 * A failed bus access is a test failure: built into the unit tests (FAKE_VMM_CMOCKA defined) it is a
 * cmocka assertion, built into a fuzz target it prints the place and aborts (so the fuzzer keeps the input).
 * The driver that uses these accessors to bring a virtio device up and run requests is fake_driver.h.
 */
#ifndef KILN_TESTS_LIB_FAKE_VMM_H
#define KILN_TESTS_LIB_FAKE_VMM_H

#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/bus.h"
#include "vmm/irq_routing.h"
#include "vmm/loop.h"
#include "vmm/memory.h"

#define FAKE_VMM_ECAM 0xe0000000ull        /* ECAM window, 32 KiB per slot on bus 0 */
#define FAKE_VMM_MMIO32 0xc0000000ull      /* 32-bit BAR window */
#define FAKE_VMM_MMIO32_SIZE 0x10000000ull /* bytes */
#define FAKE_KVM_MAX_FDS 64                /* irqfds and ioeventfds the fake records, each */
#define FAKE_KVM_NR_INTX 24                /* INTx GSIs (IOAPIC pins) */

struct fake_ioeventfd {
	uint64_t addr;
	uint32_t len;
	int fd;
	bool assigned;
};

/*
 * What a fake KVM was asked. Every field is the test's to read; the refuse_* fields are the test's to set.
 * Slots of irqfds[] and ioeventfds[] are not reused: a deassigned one stays, with assigned false.
 */
struct fake_kvm {
	bool accept_all;      /* accept every call and record nothing (fuzz targets: runs never end) */
	/* KVM_SET_GSI_ROUTING */
	int set_calls;
	unsigned int nr;      /* entries in the last table sent */
	struct kvm_irq_routing_entry table[IRQ_ROUTING_NR_DEFAULT + IRQ_ROUTING_MAX_MSI_GSIS];
	bool refuse_msi_data; /* refuse (-EINVAL) a table with an MSI route whose data is bad_msi_data */
	uint32_t bad_msi_data;
	/* KVM_IRQFD */
	struct {
		int fd;
		uint32_t gsi;
		bool assigned;
	} irqfds[FAKE_KVM_MAX_FDS];
	int nr_irqfds;
	int irqfd_deassigns;
	/* KVM_SIGNAL_MSI */
	atomic_int msi_calls;
	struct kvm_msi last_msi;
	/* KVM_IOEVENTFD */
	struct fake_ioeventfd ioeventfds[FAKE_KVM_MAX_FDS];
	int nr_ioeventfds;
	int ioeventfd_deassigns;
	bool refuse_ioeventfd; /* refuse assignments with -ENOSYS, as a KVM without ioeventfd */
	/* INTx, as the PCI bus raises and lowers it */
	atomic_int intx[FAKE_KVM_NR_INTX]; /* level per GSI */
	atomic_int intx_raises;
};

/* The assigned ioeventfd at guest address `addr`, or NULL. */
const struct fake_ioeventfd *fake_kvm_ioeventfd_at(const struct fake_kvm *k, uint64_t addr);

/*
 * Interrupts KVM would have delivered through the irqfd whose MSI route carries data `data`, since the
 * last call (reads the eventfd, so it consumes them); 0 when there are none or no such route/irqfd.
 */
uint64_t fake_kvm_msi_count(const struct fake_kvm *k, uint32_t data);

/* The fake's ops; the opaque pointer is the struct fake_kvm. */
extern const struct irq_routing_ops fake_kvm_routing_ops;
extern const struct virtio_ioeventfd_ops fake_kvm_ioeventfd_ops;
void fake_kvm_intx(void *opaque, uint32_t gsi, int level);

struct fake_vmm_config {
	uint64_t ram_size;        /* bytes of guest RAM; 0 for none */
	uint64_t hole_start;      /* where RAM above it moves to 4 GiB (guest_memory_init) */
	unsigned int nr_msi_gsis; /* GSIs irq_routing_create may hand out for MSI */
	bool loop;                /* set up the device event loop */
	bool loop_thread;         /* and run it on its own thread (else the test calls loop_run_once) */
	bool accept_all;          /* fake_kvm.accept_all */
};

/* A VM for devices to plug into. The test owns the struct (usually inside its fixture). */
struct fake_vmm {
	struct fake_kvm kvm;
	struct guest_memory mem;
	struct bus pio, mmio;
	struct pci_bus *pci;
	struct irq_routing *rt;
	struct loop loop;
	bool has_mem, has_loop;
};

/*
 * Set `vm` (zeroed by the caller) up as `cfg` says: guest memory, buses, the PCI bus on them (INTx to the
 * fake KVM), IRQ routing over the fake KVM, the loop. Returns 0 or -1 (what is set up stays for
 * fake_vmm_stop/fake_vmm_destroy to undo).
 */
int fake_vmm_init(struct fake_vmm *vm, const struct fake_vmm_config *cfg) __attribute__((warn_unused_result));

/* The first half of vm_destroy's order: the loop thread gone, then the PCI bus. Devices go after it. */
void fake_vmm_stop(struct fake_vmm *vm);

/* The second half, once the devices are gone: routing, buses, guest memory. */
void fake_vmm_destroy(struct fake_vmm *vm);

/*
 * Driving the device event loop on the test's own thread (a fake_vmm with `loop` and without `loop_thread`),
 * instead of sleeping while a loop thread works: what a device does happens inside these calls, so a test
 * waits exactly as long as the device needs, and sees that something does NOT happen without guessing how
 * long to look. A failed check (a loop thread running, a loop that never goes idle) is a test failure.
 */
#define FAKE_VMM_WAIT_MS 10000     /* a wait's bound (ms): past it, what was awaited did not happen */
#define FAKE_VMM_STEP_MS 10        /* how long one step waits for an event (ms) */
#define FAKE_VMM_MAX_ROUNDS 100000 /* loop turns fake_vmm_run_idle allows before it calls it a spin */

/* A bounded wait: see FAKE_VMM_WAIT. */
struct fake_wait {
	struct fake_vmm *vm;
	uint64_t deadline_ns;
};

/* A wait that ends `timeout_ms` from now. */
struct fake_wait fake_vmm_wait_start(struct fake_vmm *vm, unsigned int timeout_ms);

/* Before the deadline: run the loop once (waiting up to FAKE_VMM_STEP_MS for an event) and return true. */
bool fake_vmm_wait_step(struct fake_wait *w);

/*
 * Run `vm`'s loop until `cond` holds, at most FAKE_VMM_WAIT_MS; `ok` (a bool lvalue) says whether it did.
 * `cond` is evaluated once per step (it may consume, as fake_kvm_msi_count does).
 */
#define FAKE_VMM_WAIT(vm, ok, cond)                                                      \
	do {                                                                             \
		struct fake_wait w_ = fake_vmm_wait_start((vm), FAKE_VMM_WAIT_MS);       \
		while (!((ok) = (cond)) && fake_vmm_wait_step(&w_))                      \
			continue;                                                        \
	} while (0)

/*
 * Run the loop until no source fires (nothing left to do); returns the turns that did something. A loop
 * still busy after FAKE_VMM_MAX_ROUNDS turns fails the check: some fd is always ready (a device spinning).
 */
unsigned int fake_vmm_run_idle(struct fake_vmm *vm);

/* Keep running the loop for `ms` milliseconds; returns how many sources fired in that time. */
unsigned int fake_vmm_run_for(struct fake_vmm *vm, unsigned int ms);

/* virtio_pci_params for a device in `slot` of `vm`, ioeventfds to the fake KVM; the caller adds ops/dev. */
struct virtio_pci_params fake_vmm_virtio_params(struct fake_vmm *vm, unsigned int slot);

/* `len` (<= 8) bytes of `v`, little-endian, into `d`; and back. */
void fake_le_put(uint8_t *d, uint64_t v, uint32_t len);
uint64_t fake_le_get(const uint8_t *d, uint32_t len);

/* A guest MMIO access of `len` bytes (1, 2, 4, 8; little-endian) at `gpa`; must hit a device. */
uint64_t fake_vmm_mmio_read(struct fake_vmm *vm, uint64_t gpa, uint32_t len);
void fake_vmm_mmio_write(struct fake_vmm *vm, uint64_t gpa, uint64_t val, uint32_t len);

/* PCI config space of bus 0 `slot` function 0, register `reg`, through ECAM (PCIe 4.0 s7.2.2). */
uint32_t fake_vmm_cfg_read(struct fake_vmm *vm, unsigned int slot, unsigned int reg, uint32_t len);
void fake_vmm_cfg_write(struct fake_vmm *vm, unsigned int slot, unsigned int reg, uint32_t val, uint32_t len);

/*
 * Config offset of the first capability with `id` in `slot` (for vendor-specific ones, PCI_CAP_ID_VNDR, the
 * first whose cfg_type byte, virtio 1.2 s4.1.4, is `cfg_type`), or 0. Gives up after 48 hops (a loop).
 */
unsigned int fake_vmm_find_cap(struct fake_vmm *vm, unsigned int slot, uint8_t id, uint8_t cfg_type);

/* Program MSI-X table entry `vec` (PCI 3.0 s6.8.2.6) at guest address `table`: message address and data. */
void fake_vmm_msix_program(struct fake_vmm *vm, uint64_t table, unsigned int vec, uint64_t addr, uint32_t data);

/* The host address of guest range [gpa, gpa + len); it must be RAM. */
void *fake_vmm_hva(struct fake_vmm *vm, uint64_t gpa, uint64_t len);

/*
 * Enable memory decoding and bus mastering on `slot` (as Linux's pci_enable_device + pci_set_master)
 * and return the address of its 32-bit memory BAR 0.
 */
uint64_t fake_vmm_pci_enable(struct fake_vmm *vm, struct pci_device *pdev, unsigned int slot);

/*
 * The driver's side of one virtio PCI function (virtio 1.2 s4.1.4): its VM and the address of BAR 0,
 * where kiln puts the common, notify, ISR and device config structures.
 */
struct fake_virtio {
	struct fake_vmm *vm;
	uint64_t bar;
};

/* Common configuration (s4.1.4.3) register `off`, `len` bytes. */
uint64_t fake_virtio_common_read(const struct fake_virtio *fv, uint32_t off, uint32_t len);
void fake_virtio_common_write(const struct fake_virtio *fv, uint32_t off, uint64_t val, uint32_t len);

/* Device-specific configuration (s4.1.4.6), `len` bytes at `off`. */
uint64_t fake_virtio_devcfg_read(const struct fake_virtio *fv, uint32_t off, uint32_t len);

/* device_status (s2.1). */
uint8_t fake_virtio_status(const struct fake_virtio *fv);
void fake_virtio_set_status(const struct fake_virtio *fv, uint8_t s);

/* The 64 feature bits the device offers (s2.2), read through both device_feature_select windows. */
uint64_t fake_virtio_device_features(const struct fake_virtio *fv);

/* Write the 64 feature bits the driver accepts (s2.2) through both driver_feature_select windows. */
void fake_virtio_write_driver_features(const struct fake_virtio *fv, uint64_t features);

/*
 * Select queue `q` and give it size `size` and rings at the given GPAs (s4.1.5.1.3). It stays selected, not
 * yet enabled: the caller may set its MSI-X vector first, then fake_virtio_queue_enable.
 */
void fake_virtio_queue_setup(const struct fake_virtio *fv, unsigned int q, uint16_t size, uint64_t desc,
			     uint64_t avail, uint64_t used);

/* queue_enable = 1 for the selected queue. */
void fake_virtio_queue_enable(const struct fake_virtio *fv);

/* Notify queue `q` (s4.1.4.4): write its index at its notify address. */
void fake_virtio_notify(const struct fake_virtio *fv, unsigned int q);

/*
 * Split virtqueue rings in guest memory, as the driver writes and reads them (virtio 1.2 s2.7). `qsize` is
 * the queue size the driver set; GPAs name the descriptor table, available ring and used ring.
 */

/* Descriptor `i` of the table at `table` (s2.7.5). */
void fake_vq_write_desc(struct guest_memory *mem, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next);

/* Offer chain `head` (s2.7.13): into ring slot *avail_idx % qsize, then publish idx = ++*avail_idx. */
void fake_vq_offer(struct guest_memory *mem, uint64_t avail, uint16_t qsize, uint16_t *avail_idx, uint16_t head);

/* The used ring's idx (s2.7.8). */
uint16_t fake_vq_used_idx(struct guest_memory *mem, uint64_t used);

/* Used ring entry `i` (taken % qsize). */
struct virtq_used_elem fake_vq_used_elem(struct guest_memory *mem, uint64_t used, uint16_t qsize, uint16_t i);

#endif
