// SPDX-License-Identifier: MIT
/*
 * The virtio 1.2 PCI transport (s4.1) against a fake KVM: a real PCI bus reached through ECAM and the BAR
 * window, the device event loop run by the test's thread, rings in memfd guest memory, and fake
 * KVM_IOEVENTFD / GSI routing / irqfd / INTx that record what the transport asks for (virtio_pci_fixture.h).
 * The test plays the driver (tests/lib/fake_driver.h), well-behaved (Linux's init sequence, s3.1.1) and
 * hostile. The devices: virtio-rng (its own tests are test_virtio_rng.c) and a test device with what the
 * rng lacks.
 */
#include <errno.h>
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
#include "vmm/irq_routing.h"
#include "vmm/loop.h"

#include "virtio_pci_fixture.h"

/* ---- a second device type with everything the rng lacks: device config, two queues, features ---- */

struct testdev {
	uint8_t config[8];
	atomic_int notified[2];
	atomic_int resets;
	int activate_ret;
	struct virtio_pci *t;
};

static void td_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct testdev *td = dev;

	memcpy(data, td->config + off, len);
}

static void td_config_write(void *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct testdev *td = dev;

	memcpy(td->config + off, data, len);
}

static int td_activate(void *dev, struct virtio_pci *t)
{
	struct testdev *td = dev;

	td->t = t;
	return td->activate_ret;
}

static void td_reset(void *dev)
{
	struct testdev *td = dev;

	atomic_fetch_add(&td->resets, 1);
}

static void td_queue_notify(void *dev, unsigned int q)
{
	struct testdev *td = dev;

	atomic_fetch_add(&td->notified[q], 1);
}

static const struct virtio_device_ops td_ops = {
	.name = "virtio-test",
	.device_id = 42,
	.pci_class = 0x078000,
	.features = VIRTIO_BIT(0) | VIRTIO_BIT(5),
	.nr_queues = 2,
	.queue_max_size = 16,
	.config_size = 8,
	.config_read = td_config_read,
	.config_write = td_config_write,
	.activate = td_activate,
	.reset = td_reset,
	.queue_notify = td_queue_notify,
};

static int setup_testdev(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_pci_params p;

	if (!f || setup_common(f))
		return -1;
	f->td = calloc(1, sizeof(*f->td));
	if (!f->td)
		return -1;
	memcpy(f->td->config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	p = fake_vmm_virtio_params(&f->vm, SLOT);
	p.ops = &td_ops;
	p.dev = f->td;
	f->t = virtio_pci_create(&p);
	if (!f->t)
		return -1;
	finish_setup(f);
	*state = f;
	return 0;
}

/* ---- discovery (s4.1.2, s4.1.4) ---- */

static void test_testdev_discovery(void **state)
{
	struct fixture *f = *state;
	unsigned int cap, n = 0;

	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_DEVICE_ID, 2), 0x1040 + 42);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_REVISION_ID, 4) >> 8, 0x078000);
	check_virtio_cap(f, VIRTIO_PCI_CAP_COMMON_CFG, 16, VIRTIO_PCI_COMMON_OFFSET, 0x3c);
	check_virtio_cap(f, VIRTIO_PCI_CAP_ISR_CFG, 16, VIRTIO_PCI_ISR_OFFSET, 1);
	check_virtio_cap(f, VIRTIO_PCI_CAP_DEVICE_CFG, 16, VIRTIO_PCI_DEVICE_OFFSET, 8);
	check_virtio_cap(f, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, VIRTIO_PCI_NOTIFY_OFFSET, 8);
	check_virtio_cap(f, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0);
	for (cap = fake_vmm_cfg_read(&f->vm, SLOT, PCI_CAPABILITY_LIST, 1); cap;
	     cap = fake_vmm_cfg_read(&f->vm, SLOT, cap + 1, 1))
		n++;
	assert_int_equal(n, 6); /* the 5 virtio capabilities and MSI-X */
	cap = find_cap(f, PCI_CAP_ID_MSIX, 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_CONTROL, 2) & MSIX_CONTROL_TABLE_SIZE, 2);
	assert_int_equal(fake_virtio_device_features(&f->drv.fv), ALL_FEATURES | VIRTIO_BIT(0) | VIRTIO_BIT(5));
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_NDATA, 2), 1);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
}

/* ---- the full sequence and a request ---- */

/* ---- reset (s2.4) ---- */

static void test_reset_clears_everything(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(driver_init(f, ALL_FEATURES, false), STATUS_LIVE);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	WAIT_UNTIL(atomic_load(&f->vm.kvm.intx[intx_gsi()]) == 1);

	fake_virtio_set_status(&f->drv.fv, 0);
	assert_int_equal(fake_virtio_status(&f->drv.fv), 0);
	assert_int_equal(atomic_load(&f->vm.kvm.intx[intx_gsi()]), 0); /* INTx dropped with the ISR */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1), 0);
	assert_int_equal(nr_ioeventfds(f), 0);
	assert_int_equal(f->vm.kvm.ioeventfd_deassigns, 1);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_GF, 4), 0);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_GF, 4), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QUEUE_SIZE);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_AVAILLO, 4), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_USEDLO, 4), 0);

	/* The device no longer looks at the old rings. */
	rng_request(f, 3);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	settle(f);
	assert_int_equal(used_idx(f, USED_GPA), 1);

	/* And comes back to life with a new initialisation, rings zeroed by the driver. */
	f->qsize = 8;
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	check_rng_bytes(f, 0, 0);
	WAIT_UNTIL(msi_count(f, MSI_DATA_QUEUE) == 1);
}

static void test_testdev_reset_and_notify(void **state)
{
	struct fixture *f = *state;
	int resets;

	assert_int_equal(driver_init(f, ALL_FEATURES | VIRTIO_BIT(5), true), STATUS_LIVE);
	/* Queue 1 was not enabled: only queue 0 has an ioeventfd, and queue 1's notify reaches nothing. */
	assert_int_equal(nr_ioeventfds(f), 1);
	kvm_notify(f, 0);
	WAIT_UNTIL(atomic_load(&f->td->notified[0]) == 1);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET + 4, 1, 2);
	settle(f);
	assert_int_equal(atomic_load(&f->td->notified[1]), 0);
	assert_non_null(f->td->t);

	resets = atomic_load(&f->td->resets);
	fake_virtio_set_status(&f->drv.fv, 0);
	assert_int_equal(atomic_load(&f->td->resets), resets + 1);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	settle(f);
	assert_int_equal(atomic_load(&f->td->notified[0]), 1);

	/* Both queues this time: two ioeventfds, each queue's notify reaches its queue. */
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fake_virtio_write_driver_features(&f->drv.fv, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	fake_virtio_set_status(&f->drv.fv, FAKE_DRIVER_STATUS_FEATURES);
	queue_setup(f, 0, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR);
	queue_setup(f, 1, DESC1_GPA, AVAIL1_GPA, USED1_GPA, VIRTIO_MSI_NO_VECTOR);
	fake_virtio_set_status(&f->drv.fv, STATUS_LIVE);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
	assert_int_equal(nr_ioeventfds(f), 2);
	kvm_notify(f, 1);
	WAIT_UNTIL(atomic_load(&f->td->notified[1]) >= 1);
	/* The pending count from the notify before activation was drained, not replayed twice. */
	settle(f);
	assert_true(atomic_load(&f->td->notified[0]) <= 2);
}

/* ---- feature negotiation (s2.2, s3.1.1) ---- */

static void negotiate(struct fixture *f, uint64_t features, bool expect_ok)
{
	uint8_t base = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	fake_virtio_set_status(&f->drv.fv, 0);
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE);
	fake_virtio_set_status(&f->drv.fv, base);
	fake_virtio_write_driver_features(&f->drv.fv, features);
	fake_virtio_set_status(&f->drv.fv, base | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(fake_virtio_status(&f->drv.fv), expect_ok ? base | VIRTIO_STATUS_FEATURES_OK : base);
}

static void test_features(void **state)
{
	struct fixture *f = *state;

	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true);
	negotiate(f, ALL_FEATURES, true);
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(5), true);
	/* Without VERSION_1: a legacy driver, which this device does not support. */
	negotiate(f, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX), false);
	negotiate(f, 0, false);
	/* Bits the device does not offer. */
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM), false);
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_RESET), false);
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(1), false);

	/* A bit in feature word 2 (bits 64-95): nothing is offered there. */
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true);
	fake_virtio_set_status(&f->drv.fv, 0);
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fake_virtio_write_driver_features(&f->drv.fv, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GFSELECT, 2, 4);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GF, 1, 4);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_DFSELECT, 2, 4);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_DF, 4), 0);
	fake_virtio_set_status(&f->drv.fv, FAKE_DRIVER_STATUS_FEATURES);
	assert_false(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_FEATURES_OK);

	/* After FEATURES_OK, driver_feature writes are ignored. */
	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_GF, 0xffffffff, 4);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_GF, 4), 0);

	/* Status bits do not go away without a reset, and NEEDS_RESET is not the driver's to set. */
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(fake_virtio_status(&f->drv.fv),
			VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_false(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_FAILED);
	assert_true(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_FAILED);
}

/* ---- hostile values ---- */

/* Write the selected queue's size, descriptor address (low half) and enable, as a driver sets a queue up. */
static void queue_fields_write(struct fixture *f, uint16_t size, uint32_t desc_lo, uint16_t enable)
{
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, desc_lo, 4);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, enable, 2);
}

/* The same three fields as the driver reads them back. */
static void queue_fields_check(struct fixture *f, uint16_t size, uint32_t desc_lo, uint16_t enable)
{
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), size);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, 4), desc_lo);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), enable);
}

static void test_hostile_queue_select_and_size(void **state)
{
	/* Written in turn: an ignored write leaves queue_size at the maximum it starts from. */
	static const struct {
		uint16_t write, reads;
	} sizes[] = {
		{ 3, VIRTIO_RNG_QUEUE_SIZE }, { 512, VIRTIO_RNG_QUEUE_SIZE }, { 0, VIRTIO_RNG_QUEUE_SIZE },
		{ 0x8000, VIRTIO_RNG_QUEUE_SIZE }, { 32, 32 }, { 1, 1 },
	};
	struct fixture *f = *state;

	/* queue_select out of range: queue fields read 0 (queue_size 0: unavailable), writes go nowhere. */
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0);
	queue_fields_write(f, 4, 0x1234000, 1);
	queue_fields_check(f, 0, 0, 0);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 0xffff, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	queue_fields_check(f, VIRTIO_RNG_QUEUE_SIZE, 0, 0);

	/* queue_size: a power of 2 up to the maximum, or the write is ignored. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, sizes[i].write, 2);
		assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), sizes[i].reads);
	}

	/* Vectors beyond the MSI-X table read back NO_VECTOR: a failed mapping. */
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 0x7ff, 2);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);

	/* Once enabled, the queue's setup is frozen; queue_enable 0 is ignored. */
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	queue_fields_write(f, 8, 0x5000, 0);
	queue_fields_check(f, 16, 0, 1);
	/* Read-only fields stay so. */
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 9, 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_NOFF, 9, 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_DF, 0, 4);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	assert_int_equal(fake_virtio_device_features(&f->drv.fv), ALL_FEATURES);
}

static void test_hostile_rings_outside_ram(void **state)
{
	struct fixture *f = *state;
	static const uint64_t bad_desc[] = {
		HOLE_START + 0x1000, /* the MMIO hole */
		0x100000000ull + RAM_SIZE - HOLE_START, /* past the end of RAM above 4 GiB */
		DESC_GPA + 8,        /* misaligned descriptor table */
		UINT64_MAX - 0xff,   /* wraps */
	};

	for (size_t i = 0; i < sizeof(bad_desc) / sizeof(bad_desc[0]); i++) {
		fake_virtio_set_status(&f->drv.fv, 0);
		fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
		fake_virtio_write_driver_features(&f->drv.fv, VIRTIO_BIT(VIRTIO_F_VERSION_1));
		fake_virtio_set_status(&f->drv.fv,
				VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)bad_desc[i], 4);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCHI, bad_desc[i] >> 32, 4);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_AVAILLO, AVAIL_GPA, 4);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_USEDLO, USED_GPA, 4);
		fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
		atomic_store(&f->vm.kvm.intx_raises, 0);
		fake_virtio_set_status(&f->drv.fv, STATUS_LIVE);
		assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		assert_int_equal(nr_ioeventfds(f), 0);
		/* s2.1.2: a configuration change notification (INTx here, ISR bit 1). */
		assert_int_equal(atomic_load(&f->vm.kvm.intx_raises), 1);
		assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1),
				VIRTIO_PCI_ISR_CONFIG);
		/* Notifies go nowhere. */
		fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	}
	/* A reset brings it back. */
	assert_int_equal(driver_init(f, ALL_FEATURES, false), STATUS_LIVE);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
}

static void test_hostile_driver_ok_without_features_ok(void **state)
{
	struct fixture *f = *state;

	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	queue_setup(f, 0, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR);
	fake_virtio_set_status(&f->drv.fv, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_true(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(nr_ioeventfds(f), 0);
	rng_request(f, 0);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	settle(f);
	assert_int_equal(used_idx(f, USED_GPA), 0);
	/* FEATURES_OK now is too late: still needs a reset. */
	fake_virtio_write_driver_features(&f->drv.fv, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	fake_virtio_set_status(&f->drv.fv, STATUS_LIVE);
	assert_true(fake_virtio_status(&f->drv.fv) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	settle(f);
	assert_int_equal(used_idx(f, USED_GPA), 0);
}

static void test_hostile_broken_ring_needs_reset(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	/* A descriptor loop: 0 -> 1 -> 0. */
	desc(f, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(f, DESC_GPA, 1, BUF_GPA + 16, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	offer(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(virtio_pci_status(f->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	WAIT_UNTIL(msi_count(f, MSI_DATA_CONFIG) == 1);
	assert_int_equal(used_idx(f, USED_GPA), 0);

	/* Good requests wait for the reset. */
	rng_request(f, 4);
	kvm_notify(f, 0);
	settle(f);
	assert_int_equal(used_idx(f, USED_GPA), 0);
	assert_int_equal(msi_count(f, MSI_DATA_CONFIG), 0); /* reported once */

	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	check_rng_bytes(f, 0, 0);
}

static void test_hostile_buffer_outside_ram(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(driver_init(f, ALL_FEATURES, false), STATUS_LIVE);
	desc(f, DESC_GPA, 0, HOLE_START - 8, 64, VIRTQ_DESC_F_WRITE, 0); /* runs into the hole */
	offer(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(virtio_pci_status(f->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	WAIT_UNTIL(atomic_load(&f->vm.kvm.intx[intx_gsi()]) == 1);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(used_idx(f, USED_GPA), 0);
}

/* Wrong widths and offsets: never a crash, reads 0, writes change nothing. */
static void test_hostile_accesses(void **state)
{
	struct fixture *f = *state;
	uint64_t bar = f->drv.fv.bar;

	negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, 0x10000, 4);

	/* 8-byte accesses to a 64-bit field (the spec wants two 32-bit halves). */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_COMMON_Q_DESCLO, 0x123456789000ull, 8);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x10000);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 0);
	/* 3-byte accesses, wrong widths, offsets inside a field. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_COMMON_DF, 3), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_COMMON_STATUS, 0, 3); /* would be a reset */
	assert_int_equal(fake_virtio_status(&f->drv.fv),
			VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_COMMON_STATUS, 0, 2);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_COMMON_STATUS, 0, 4);
	assert_int_equal(fake_virtio_status(&f->drv.fv),
			VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_COMMON_NUMQ, 4), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_COMMON_NUMQ + 1, 1), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_COMMON_DF + 2, 2), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_COMMON_Q_SIZE + 1, 0, 1);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QUEUE_SIZE);
	/* Past the common structure, in each region, past the last register. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + 0x3c, 4), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + 0x3a, 4), 0); /* straddles the end */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + 0x800, 8), 0);
	fake_vmm_mmio_write(&f->vm, bar + 0x800, ~0ull, 8);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_ISR_OFFSET, 2), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_ISR_OFFSET + 1, 1), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_ISR_OFFSET, 0xff, 1);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_ISR_OFFSET, 1), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_DEVICE_OFFSET, 4), 0); /* the rng has no config */
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_DEVICE_OFFSET, 0xffffffff, 4);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_NOTIFY_OFFSET, 2), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_NOTIFY_OFFSET + 2, 0, 2); /* not a notify address */
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_NOTIFY_OFFSET + 4, 1, 2); /* queue 1 does not exist */
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 8);     /* too wide */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_MSIX_PBA_OFFSET + 0x100, 4), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_BAR_SIZE - 8, 8), 0);
	fake_vmm_mmio_write(&f->vm, bar + VIRTIO_PCI_BAR_SIZE - 4, 0xffffffff, 4);
	/* The MSI-X table answers for itself (msix.h). */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, bar + VIRTIO_PCI_MSIX_TABLE_OFFSET + MSIX_ENTRY_CTRL, 4), 1);
	assert_int_equal(fake_virtio_status(&f->drv.fv),
			VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x10000);
}

/* ---- the configuration access window (s4.1.4.9) ---- */

static void window_set(struct fixture *f, unsigned int cap, uint8_t bar, uint32_t off, uint32_t len)
{
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_BAR, bar, 1);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_OFFSET, off, 4);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CAP_LENGTH, len, 4);
}

static void test_pci_cfg_window(void **state)
{
	struct fixture *f = *state;
	unsigned int cap = find_cap(f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);

	assert_int_not_equal(cap, 0);
	/* device_feature word 1 (VERSION_1 is bit 0 of it) through config space. */
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	window_set(f, cap, 0, VIRTIO_PCI_COMMON_DF, 4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 1);
	/* Write device_status through the window. */
	window_set(f, cap, 0, VIRTIO_PCI_COMMON_STATUS, 1);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, VIRTIO_STATUS_ACKNOWLEDGE, 4);
	assert_int_equal(fake_virtio_status(&f->drv.fv), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* 2-byte read of num_queues. */
	window_set(f, cap, 0, VIRTIO_PCI_COMMON_NUMQ, 2);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 2), 1);
	/* Queue notify through the window reaches the queue (after activation). */
	fake_virtio_set_status(&f->drv.fv, 0);
	assert_int_equal(driver_init(f, ALL_FEATURES, false), STATUS_LIVE);
	rng_request(f, 0);
	window_set(f, cap, 0, VIRTIO_PCI_NOTIFY_OFFSET, 2);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 2);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	/* The ISR read through the window clears it too. */
	WAIT_UNTIL(atomic_load(&f->vm.kvm.intx[intx_gsi()]) == 1);
	window_set(f, cap, 0, VIRTIO_PCI_ISR_OFFSET, 1);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 1), VIRTIO_PCI_ISR_QUEUE);
	assert_int_equal(atomic_load(&f->vm.kvm.intx[intx_gsi()]), 0);

	/* Bad windows: length 3, unaligned, other BAR, past the BAR: nothing happens, data kept. */
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0xcafe, 4);
	window_set(f, cap, 0, VIRTIO_PCI_COMMON_STATUS, 3);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0xcafe);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 4);
	window_set(f, cap, 0, VIRTIO_PCI_COMMON_NUMQ + 1, 2);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 2);
	window_set(f, cap, 1, VIRTIO_PCI_COMMON_STATUS, 1);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 1);
	window_set(f, cap, 0, VIRTIO_PCI_BAR_SIZE, 4);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 4);
	window_set(f, cap, 0, 0xfffffffc, 4);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 4);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
}

/* ---- ioeventfds follow the BAR ---- */

static void test_ioeventfd_follows_bar(void **state)
{
	struct fixture *f = *state;
	uint64_t old = f->drv.fv.bar, moved = f->drv.fv.bar + 0x100000;

	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	assert_non_null(ioeventfd_at(f, old + VIRTIO_PCI_NOTIFY_OFFSET));

	/* The guest moves the BAR: the ioeventfd moves with it. */
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_BASE_ADDRESS_0, (uint32_t)moved, 4);
	f->drv.fv.bar = moved;
	assert_null(ioeventfd_at(f, old + VIRTIO_PCI_NOTIFY_OFFSET));
	assert_non_null(ioeventfd_at(f, moved + VIRTIO_PCI_NOTIFY_OFFSET));
	assert_int_equal(nr_ioeventfds(f), 1);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);

	/* Memory decoding off: no ioeventfd (the address decodes to nothing); on again: back. */
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
	assert_int_equal(nr_ioeventfds(f), 0);
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	assert_non_null(ioeventfd_at(f, moved + VIRTIO_PCI_NOTIFY_OFFSET));

	/* A KVM that refuses ioeventfds: the MMIO path still delivers. */
	fake_virtio_set_status(&f->drv.fv, 0);
	f->vm.kvm.refuse_ioeventfd = true;
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	assert_int_equal(nr_ioeventfds(f), 0);
	rng_request(f, 0);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
}

/* ---- device configuration and its generation (s2.5, s4.1.4.6) ---- */

static void test_testdev_config(void **state)
{
	struct fixture *f = *state;
	uint64_t cfg = f->drv.fv.bar + VIRTIO_PCI_DEVICE_OFFSET;
	uint8_t gen;

	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg, 4), 0x44332211);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg + 4, 2), 0x6655);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg + 7, 1), 0x88);
	fake_vmm_mmio_write(&f->vm, cfg + 4, 0xabcd, 2);
	assert_int_equal(f->td->config[4], 0xcd);
	/* Past config_size, straddling its end, 8 bytes, 3 bytes: dropped. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg + 6, 4), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg + 8, 1), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg, 8), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, cfg, 3), 0);
	fake_vmm_mmio_write(&f->vm, cfg + 6, 0, 4);
	assert_int_equal(f->td->config[7], 0x88);

	/* A change bumps config_generation and, once DRIVER_OK, sends the config vector. */
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	gen = (uint8_t)fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	virtio_pci_lock(f->t);
	virtio_pci_config_changed(f->t);
	virtio_pci_unlock(f->t);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
	assert_int_equal(msi_count(f, MSI_DATA_CONFIG), 1);
	assert_int_equal(msi_count(f, MSI_DATA_QUEUE), 0);
}

static void test_testdev_activate_fails(void **state)
{
	struct fixture *f = *state;

	f->td->activate_ret = -ENOMEM;
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(nr_ioeventfds(f), 0);
	assert_int_equal(msi_count(f, MSI_DATA_CONFIG), 1);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	settle(f);
	assert_int_equal(atomic_load(&f->td->notified[0]), 0);
	f->td->activate_ret = 0;
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
}

static void test_create_rejects_bad_ops(void **state)
{
	struct fixture *f = *state;
	struct virtio_device_ops ops = td_ops;
	struct virtio_pci_params p = fake_vmm_virtio_params(&f->vm, SLOT);

	p.slot = -1;
	p.ops = &ops;
	ops.queue_max_size = 24;
	errno = 0;
	assert_null(virtio_pci_create(&p));
	assert_int_equal(errno, EINVAL);
	ops = td_ops;
	ops.nr_queues = 0;
	assert_null(virtio_pci_create(&p));
	ops = td_ops;
	ops.config_size = 8192;
	assert_null(virtio_pci_create(&p));
	ops = td_ops;
	p.slot = SLOT; /* taken */
	assert_null(virtio_pci_create(&p));
	assert_int_equal(errno, EBUSY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_testdev_discovery, setup_testdev, teardown),
		cmocka_unit_test_setup_teardown(test_reset_clears_everything, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_reset_and_notify, setup_testdev, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup_testdev, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_queue_select_and_size, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_rings_outside_ram, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_driver_ok_without_features_ok, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_broken_ring_needs_reset, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_buffer_outside_ram, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_accesses, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_ioeventfd_follows_bar, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_config, setup_testdev, teardown),
		cmocka_unit_test_setup_teardown(test_testdev_activate_fails, setup_testdev, teardown),
		cmocka_unit_test_setup_teardown(test_create_rejects_bad_ops, setup_testdev, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
