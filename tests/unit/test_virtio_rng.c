// SPDX-License-Identifier: MIT
/*
 * virtio-rng (virtio 1.2 s5.4) on the virtio PCI transport, against a fake KVM as test_virtio_pci.c has it
 * (virtio_pci_fixture.h): its PCI identity, requests with MSI-X or INTx, partial fills from a short or failing
 * entropy source, more requests than one turn handles. The test plays the driver (tests/lib/fake_driver.h)
 * and runs the device event loop itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include <cmocka.h>

#include "devices/pci/msix.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"

#include "virtio_pci_fixture.h"

static void test_rng_discovery(void **state)
{
	struct fixture *f = *state;
	unsigned int cap, n = 0;

	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_DEVICE_ID, 2), 0x1044);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_REVISION_ID, 1), 1);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_SUBSYSTEM_ID, 2), 0x40);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_REVISION_ID, 4) >> 8, 0x00ff00);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_INTERRUPT_LINE, 1), intx_gsi());
	assert_true(fake_vmm_cfg_read(&f->vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);

	/* BAR 0: 32-bit memory, 32 KiB (sizing probe), the other BARs unused. */
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_BASE_ADDRESS_0, 4), ~(VIRTIO_PCI_BAR_SIZE - 1));
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_BASE_ADDRESS_0, (uint32_t)f->drv.fv.bar, 4);
	for (unsigned int b = 1; b < PCI_NR_BARS; b++)
		assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, PCI_BASE_ADDRESS_0 + 4 * b, 4), 0);

	check_virtio_cap(f, VIRTIO_PCI_CAP_COMMON_CFG, 16, VIRTIO_PCI_COMMON_OFFSET, 0x3c);
	check_virtio_cap(f, VIRTIO_PCI_CAP_ISR_CFG, 16, VIRTIO_PCI_ISR_OFFSET, 1);
	check_virtio_cap(f, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, VIRTIO_PCI_NOTIFY_OFFSET, 4);
	check_virtio_cap(f, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0);
	cap = find_cap(f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4);
	/* No device-specific configuration for the entropy device. */
	assert_int_equal(find_cap(f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG), 0);

	/* MSI-X: 2 vectors (configuration + one queue), table and PBA in BAR 0. */
	cap = find_cap(f, PCI_CAP_ID_MSIX, 0);
	assert_int_not_equal(cap, 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_CONTROL, 2) & MSIX_CONTROL_TABLE_SIZE, 1);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_OFFSET | 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_PBA, 4), VIRTIO_PCI_MSIX_PBA_OFFSET | 0);

	/* The chain ends, with exactly 4 virtio capabilities and MSI-X. */
	for (cap = fake_vmm_cfg_read(&f->vm, SLOT, PCI_CAPABILITY_LIST, 1); cap;
	     cap = fake_vmm_cfg_read(&f->vm, SLOT, cap + 1, 1))
		n++;
	assert_int_equal(n, 5);

	/* Registers after creation (= after reset). */
	assert_int_equal(fake_virtio_status(&f->drv.fv), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	assert_int_equal(fake_virtio_device_features(&f->drv.fv), ALL_FEATURES);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QUEUE_SIZE);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(fake_virtio_common_read(&f->drv.fv, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	assert_int_equal(nr_ioeventfds(f), 0);
}

static void test_rng_msix_request(void **state)
{
	struct fixture *f = *state;
	const struct fake_ioeventfd *e;

	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	/* Subscribed at DRIVER_OK: one ioeventfd, on queue 0's notify address, 2 bytes. */
	assert_int_equal(nr_ioeventfds(f), 1);
	e = ioeventfd_at(f, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET);
	assert_non_null(e);
	assert_int_equal(e->len, 2);

	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	check_rng_bytes(f, 0, 0);
	WAIT_UNTIL(msi_count(f, MSI_DATA_QUEUE) == 1);
	assert_int_equal(msi_count(f, MSI_DATA_CONFIG), 0);
	assert_int_equal(atomic_load(&f->vm.kvm.intx_raises), 0); /* never INTx while MSI-X is on */
	assert_int_equal(virtio_rng_bytes(f->rng), 164);

	/* A second request through kiln's MMIO path (a 4-byte notify write KVM's 2-byte ioeventfd misses). */
	set_used_event(f, AVAIL_GPA, 1);
	rng_request(f, 3);
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 4);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 2);
	check_rng_bytes(f, 1, 3);
	WAIT_UNTIL(msi_count(f, MSI_DATA_QUEUE) == 1);
}

static void test_rng_intx_request(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), false), STATUS_LIVE);
	rng_request(f, 0);
	/* the guest's write, as if KVM had no ioeventfd */
	fake_vmm_mmio_write(&f->vm, f->drv.fv.bar + VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	check_rng_bytes(f, 0, 0);
	WAIT_UNTIL(atomic_load(&f->vm.kvm.intx[intx_gsi()]) == 1);
	assert_true(fake_vmm_cfg_read(&f->vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* s4.1.4.5: reading the ISR returns the queue bit, resets it and de-asserts INTx. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1), VIRTIO_PCI_ISR_QUEUE);
	assert_int_equal(atomic_load(&f->vm.kvm.intx[intx_gsi()]), 0);
	assert_false(fake_vmm_cfg_read(&f->vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1), 0);

	/* Interrupt Disable in Command masks the line but not the ISR. */
	fake_vmm_cfg_write(&f->vm, SLOT, PCI_COMMAND,
			PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, 2);
	rng_request(f, 3);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 2);
	settle(f);
	assert_int_equal(atomic_load(&f->vm.kvm.intx[intx_gsi()]), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->drv.fv.bar + VIRTIO_PCI_ISR_OFFSET, 1), VIRTIO_PCI_ISR_QUEUE);
}

static void test_rng_no_interrupt_when_suppressed(void **state)
{
	struct fixture *f = *state;
	uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;

	assert_int_equal(driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true), STATUS_LIVE);
	assert_int_equal(guest_memory_write(&f->vm.mem, AVAIL_GPA, &flags, 2), 0);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	settle(f);
	assert_int_equal(msi_count(f, MSI_DATA_QUEUE), 0);
}

static void test_rng_vector_none_means_no_interrupt(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(driver_init(f, VIRTIO_BIT(VIRTIO_F_VERSION_1), true), STATUS_LIVE);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	fake_virtio_common_write(&f->drv.fv, VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	settle(f);
	assert_int_equal(msi_count(f, MSI_DATA_QUEUE), 0);
	assert_int_equal(atomic_load(&f->vm.kvm.intx_raises), 0); /* s4.1.5.3.1: MUST NOT deliver */
}

/* ---- partial fills ---- */

/* A source that gives 7 bytes at a time, *budget bytes in all, then EAGAIN. */
static ssize_t short_source(void *opaque, void *buf, size_t len, unsigned int flags)
{
	int *budget = opaque;
	int left = *budget;

	assert_true(flags & GRND_NONBLOCK);
	if (left <= 0) {
		errno = EAGAIN;
		return -1;
	}
	if (len > 7)
		len = 7; /* a short read, as getrandom may return */
	if ((int)len > left)
		len = (size_t)left;
	memset(buf, 0xa5, len);
	*budget -= (int)len;
	return (ssize_t)len;
}

static ssize_t failing_source(void *opaque, void *buf, size_t len, unsigned int flags)
{
	(void)opaque;
	(void)buf;
	(void)len;
	(void)flags;
	errno = EIO;
	return -1;
}

static void test_rng_partial_fills(void **state)
{
	struct fixture *f = *state;
	struct virtq_used_elem u;
	const uint8_t *buf = hva(f, BUF_GPA, 0x1000);
	int budget = 20;

	virtio_rng_set_source(f->rng, short_source, &budget);
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);

	/* 20 bytes available for a 164-byte request: completed with 20, in 7-byte reads. */
	rng_request(f, 0);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 1);
	u = used_elem(f, USED_GPA, 0);
	assert_int_equal(u.len, 20);
	assert_int_equal(buf[19], 0xa5);
	assert_int_equal(buf[20], 0);

	/* Nothing available: completed with 0 bytes rather than waiting. */
	rng_request(f, 3);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 2);
	assert_int_equal(used_elem(f, USED_GPA, 1).len, 0);

	/* A chain with only readable bytes: 0 bytes. */
	virtio_rng_set_source(f->rng, NULL, NULL);
	desc(f, DESC_GPA, 6, BUF_GPA, 16, 0, 0);
	offer(f, 6);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 3);
	assert_int_equal(used_elem(f, USED_GPA, 2).id, 6);
	assert_int_equal(used_elem(f, USED_GPA, 2).len, 0);

	/* A host error: 0 bytes, logged, and the device keeps working. */
	virtio_rng_set_source(f->rng, failing_source, NULL);
	rng_request(f, 7);
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 4);
	assert_int_equal(used_elem(f, USED_GPA, 3).len, 0);
	assert_int_equal(fake_virtio_status(&f->drv.fv), STATUS_LIVE);
	virtio_rng_set_source(f->rng, NULL, NULL);
}

static void test_rng_many_requests(void **state)
{
	struct fixture *f = *state;

	/* More chains than one turn handles (queue size): the device comes back for the rest. */
	assert_int_equal(driver_init(f, ALL_FEATURES, true), STATUS_LIVE);
	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(f, DESC_GPA, i, BUF_GPA + 16u * i, 16, VIRTQ_DESC_F_WRITE, 0);
		offer(f, i);
	}
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == QSIZE);
	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(f, DESC_GPA, i, BUF_GPA + 16u * i, 16, VIRTQ_DESC_F_WRITE, 0);
		offer(f, i);
	}
	kvm_notify(f, 0);
	WAIT_UNTIL(used_idx(f, USED_GPA) == 2 * QSIZE);
	assert_int_equal(virtio_rng_bytes(f->rng), 2 * QSIZE * 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rng_discovery, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_msix_request, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_intx_request, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_no_interrupt_when_suppressed, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_vector_none_means_no_interrupt, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_partial_fills, setup_rng, teardown),
		cmocka_unit_test_setup_teardown(test_rng_many_requests, setup_rng, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
