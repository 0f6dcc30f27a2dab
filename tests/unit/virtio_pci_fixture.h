/* SPDX-License-Identifier: MIT */
/*
 * What test_virtio_pci.c (the virtio 1.2 PCI transport, s4.1) and test_virtio_rng.c (virtio-rng, s5.4)
 * share: a virtio function on the fake VM of tests/lib/fake_vmm.h (a real PCI bus reached through ECAM and
 * BAR 0, the device event loop run by the test's own thread, rings in memfd guest memory, a fake KVM that
 * records ioeventfds, GSI routes, irqfds and INTx), the shared driver of tests/lib/fake_driver.h bringing it
 * up as Linux does (s3.1.1), and the virtio-rng requests both files use, the rng being the transport tests'
 * device too. Header-only, as tests/fuzz/fuzz_common.h: each test is one executable.
 */
#ifndef KILN_TESTS_UNIT_VIRTIO_PCI_FIXTURE_H
#define KILN_TESTS_UNIT_VIRTIO_PCI_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci/msix.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"

#include "fake_driver.h"
#include "fake_vmm.h"

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB)
#define SLOT 3

#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA 0x12000ull
#define DESC1_GPA 0x14000ull /* the test device's queue 1 */
#define AVAIL1_GPA 0x15000ull
#define USED1_GPA 0x16000ull
#define BUF_GPA 0x20000ull
#define QSIZE 16

#define MSI_ADDR 0xfee00000ull
#define MSI_DATA_CONFIG 0x40u
#define MSI_DATA_QUEUE 0x41u

#define ALL_FEATURES (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) | \
		      VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC))

#define STATUS_LIVE FAKE_DRIVER_STATUS_LIVE

/* ---- fixture ---- */

struct testdev; /* test_virtio_pci.c's second device type */

struct fixture {
	struct fake_vmm vm;
	struct fake_driver drv;
	struct virtio_rng *rng;
	struct testdev *td;
	struct virtio_pci *t;
	uint16_t qsize;
};

static inline int setup_common(struct fixture *f)
{
	/* No loop thread: the test runs the device event loop itself (WAIT_UNTIL, settle). */
	const struct fake_vmm_config cfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true,
	};

	return fake_vmm_init(&f->vm, &cfg);
}

static inline void finish_setup(struct fixture *f)
{
	fake_driver_attach(&f->drv, &f->vm, virtio_pci_device(f->t), SLOT);
	assert_int_equal(f->drv.fv.bar & (VIRTIO_PCI_BAR_SIZE - 1), 0);
	f->qsize = QSIZE;
}

static inline int setup_rng(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_pci_params p;

	if (!f || setup_common(f))
		return -1;
	p = fake_vmm_virtio_params(&f->vm, SLOT);
	f->rng = virtio_rng_create(&p);
	if (!f->rng)
		return -1;
	f->t = virtio_rng_transport(f->rng);
	finish_setup(f);
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;

	/* vm_destroy's order: loop gone, then the bus, then the devices, then routing. */
	fake_vmm_stop(&f->vm);
	if (f->rng)
		virtio_rng_destroy(f->rng);
	else
		virtio_pci_destroy(f->t);
	fake_vmm_destroy(&f->vm);
	free(f->td);
	free(f);
	return 0;
}

static inline unsigned int find_cap(struct fixture *f, uint8_t id, uint8_t cfg_type)
{
	return fake_vmm_find_cap(&f->vm, SLOT, id, cfg_type);
}

static inline void *hva(struct fixture *f, uint64_t gpa, uint64_t len)
{
	return fake_vmm_hva(&f->vm, gpa, len);
}

static inline void queue_setup(struct fixture *f, unsigned int q, uint64_t desc, uint64_t avail, uint64_t used,
			       uint16_t vector)
{
	assert_int_equal(fake_driver_queue(&f->drv, q, f->qsize, desc, avail, used, vector), vector);
}

/* MSI-X on with vector 0 for configuration changes and 1 for queue 0 (Linux's per-vq vectors). */
static inline void msix_on(struct fixture *f)
{
	assert_int_equal(fake_driver_msix_on(&f->drv, 2, MSI_ADDR, MSI_DATA_CONFIG), 0);
}

/* s3.1.1, as Linux's virtio_pci_modern does it, for queue 0. Returns the status read at the end. */
static inline uint8_t driver_init(struct fixture *f, uint64_t features, bool msix)
{
	assert_int_equal(fake_driver_reset(&f->drv), 0);
	assert_int_equal(fake_driver_begin(&f->drv) & features, features);
	assert_int_equal(fake_driver_accept(&f->drv, features), FAKE_DRIVER_STATUS_FEATURES);
	if (msix) {
		msix_on(f);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 0, 2);
		assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 2), 0);
	}
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2) >= 1, true);
	queue_setup(f, 0, DESC_GPA, AVAIL_GPA, USED_GPA, msix ? 1 : VIRTIO_MSI_NO_VECTOR);
	return fake_driver_live(&f->drv);
}

/* A raw descriptor, as a hostile driver may write it. */
static inline void desc(struct fixture *f, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	fake_vq_write_desc(&f->vm.mem, table, i, addr, len, flags, next);
}

/* Offer the chain at `head` on queue 0. */
static inline void offer(struct fixture *f, uint16_t head)
{
	fake_driver_offer(&f->drv, 0, head);
}

/* used_event (s2.7.10): the driver wants an interrupt once the used index passes `v`. */
static inline void set_used_event(struct fixture *f, uint64_t avail, uint16_t v)
{
	assert_int_equal(guest_memory_write(&f->vm.mem, avail + 4 + 2u * f->qsize, &v, 2), 0);
}

static inline uint16_t used_idx(struct fixture *f, uint64_t used)
{
	return fake_vq_used_idx(&f->vm.mem, used);
}

static inline struct virtq_used_elem used_elem(struct fixture *f, uint64_t used, uint16_t i)
{
	return fake_vq_used_elem(&f->vm.mem, used, f->qsize, i);
}

/* Run the device event loop until `cond` (evaluated once per turn: it may consume, as msi_count does). */
#define WAIT_UNTIL(cond) do { bool ok_; FAKE_VMM_WAIT(&f->vm, ok_, (cond)); assert_true(ok_); } while (0)

/* Run the loop until it has nothing left to do (to show that something does NOT happen). */
static inline void settle(struct fixture *f)
{
	fake_vmm_run_idle(&f->vm);
}

static inline const struct fake_ioeventfd *ioeventfd_at(struct fixture *f, uint64_t addr)
{
	return fake_kvm_ioeventfd_at(&f->vm.kvm, addr);
}

static inline int nr_ioeventfds(struct fixture *f)
{
	int n = 0;

	for (int i = 0; i < f->vm.kvm.nr_ioeventfds; i++)
		n += f->vm.kvm.ioeventfds[i].assigned;
	return n;
}

/* KVM signalling the ioeventfd after the guest's 2-byte notify write. */
static inline void kvm_notify(struct fixture *f, unsigned int q)
{
	const struct fake_ioeventfd *e = ioeventfd_at(f, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET + 4 * q);

	assert_non_null(e);
	assert_int_equal(e->len, 2);
	assert_int_equal(fake_driver_kick(&f->drv, q), 0);
}

/* Interrupts delivered through the irqfd whose route carries MSI data `data` (reads the eventfd). */
static inline uint64_t msi_count(struct fixture *f, uint32_t data)
{
	return fake_kvm_msi_count(&f->vm.kvm, data);
}

static inline uint32_t intx_gsi(void)
{
	return pci_intx_gsi(SLOT, 1);
}

static inline bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* A virtio capability (s4.1.4): where it points, and that the driver cannot move it. */
static inline void check_virtio_cap(struct fixture *f, uint8_t cfg_type, uint8_t cap_len, uint32_t offset,
				    uint32_t length)
{
	unsigned int cap = find_cap(f, PCI_CAP_ID_VNDR, cfg_type);

	assert_int_not_equal(cap, 0);
	assert_int_equal(cap % 4, 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_LEN, 1), cap_len);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_BAR, 1), 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_OFFSET, 4), offset);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_LENGTH, 4), length);
	/* The driver MUST NOT write these (s4.1.4.1), and they must survive it. */
	if (cfg_type != VIRTIO_PCI_CAP_PCI_CFG) {
		fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_OFFSET, 0xdead, 4);
		assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_OFFSET, 4), offset);
	}
}

/* ---- a virtio-rng request ---- */

/* A three-descriptor chain from `head` on: readable (ignored), writable 64 bytes, writable 100 bytes. */
static inline void rng_request(struct fixture *f, uint16_t head)
{
	static const struct fake_seg segs[] = {
		{ BUF_GPA + 0x800, 32, false }, { BUF_GPA, 64, true }, { BUF_GPA + 0x100, 100, true },
	};

	memset(hva(f, BUF_GPA, 0x1000), 0, 0x1000);
	fake_driver_chain(&f->drv, 0, head, segs, 3);
	offer(f, head);
}

static inline void check_rng_bytes(struct fixture *f, uint16_t used, uint16_t head)
{
	struct virtq_used_elem u = used_elem(f, USED_GPA, used);
	const uint8_t *buf = hva(f, BUF_GPA, 0x1000);

	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 164);
	assert_false(all_zero(buf, 64));
	assert_false(all_zero(buf + 0x100, 100));
	assert_true(all_zero(buf + 64, 0x100 - 64)); /* nothing past the buffers */
	assert_true(all_zero(buf + 0x100 + 100, 0x800 - 0x100 - 100));
}

#endif
