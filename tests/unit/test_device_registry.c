// SPDX-License-Identifier: MIT
/*
 * The device registry (vmm/device.h) with a device type it has never seen: tests/lib/counter_device.c,
 * a test-only virtio device that is one file and, here, one table row. Its instances come from the
 * config, sit on PCI bus 0 of the fake VM, serve a driver, go through pause, snapshot save and a
 * restore into a second VM, and go on counting there; a snapshot with a device the new VM lacks is
 * refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci/pci.h"
#include "vmm/device.h"
#include "vmm/snapshot_codec.h"
#include "vmm/snapshot_file.h"

#include "fake_driver.h"
#include "fake_vmm.h"

extern const struct vm_device_type counter_device_type;

/* The row: the registry's table for these tests. */
static const struct vm_device_type *const types[] = { &counter_device_type };

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB)
#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA 0x12000ull
#define IN_GPA 0x20000ull
#define OUT_GPA 0x21000ull
#define QSIZE 16
#define SNAP_ID_PCIF SNAP_FOURCC('P', 'C', 'I', 'F')

struct vm_under_test {
	struct fake_vmm vm;
	struct vm_config cfg;
	struct vm_devices devs;
};

static void vm_up(struct vm_under_test *t, unsigned int nr_counters)
{
	const struct fake_vmm_config fcfg = {
		.ram_size = RAM_SIZE, .hole_start = HOLE_START, .nr_msi_gsis = 64, .loop = true,
	};
	struct vm_device_ctx ctx;

	memset(t, 0, sizeof(*t));
	assert_int_equal(fake_vmm_init(&t->vm, &fcfg), 0);
	t->cfg.vcpus = nr_counters;
	ctx = (struct vm_device_ctx){
		.cfg = &t->cfg, .pio_bus = &t->vm.pio, .mmio_bus = &t->vm.mmio, .mem = &t->vm.mem,
		.set_irq = fake_kvm_intx, .irq_opaque = &t->vm.kvm,
		.virtio = fake_vmm_virtio_params(&t->vm, 0),
	};
	ctx.virtio.slot = -1;
	assert_int_equal(vm_devices_create(&t->devs, types, 1, &ctx, NULL, 0), 0);
}

static void vm_down(struct vm_under_test *t)
{
	fake_vmm_stop(&t->vm);
	vm_devices_destroy(&t->devs);
	fake_vmm_destroy(&t->vm);
}

static struct pci_device *pdev_of(struct vm_under_test *t, unsigned int index)
{
	void *dev = vm_devices_find(&t->devs, &counter_device_type, index);

	assert_non_null(dev);
	return virtio_pci_device(counter_device_type.transport(dev));
}

/* A chain of `n` readable bytes and 8 writable ones; returns the total the counter wrote back. */
static uint64_t count(struct fake_driver *d, struct vm_under_test *t, uint32_t n, uint16_t expect_used)
{
	const struct fake_seg segs[] = { { IN_GPA, n, false }, { OUT_GPA, 8, true } };
	uint8_t *out = fake_vmm_hva(&t->vm, OUT_GPA, 8);
	uint64_t total = 0;

	memset(out, 0xee, 8);
	fake_driver_submit(d, 0, segs, 2);
	assert_int_equal(fake_driver_kick(d, 0), 0);
	assert_int_equal(fake_driver_wait_used(d, 0, expect_used), 0);
	assert_int_equal(fake_driver_used_elem(d, 0, (uint16_t)(expect_used - 1)).len, 8);
	for (unsigned int i = 0; i < 8; i++)
		total |= (uint64_t)out[i] << (8 * i);
	return total;
}

/* Pause and sync (as vm_pause, then vm_snapshot_save), every function's config space and every device's sections
 * into `path`; resume. */
static void snapshot(struct vm_under_test *t, const char *path)
{
	struct snap_writer *w = snap_writer_open(path);
	struct pci_function_state fn;
	char err[256] = "";

	assert_non_null(w);
	assert_int_equal(vm_devices_pause(&t->devs, err, sizeof(err)), 0);
	assert_int_equal(vm_devices_sync(&t->devs, err, sizeof(err)), 0);
	for (unsigned int i = 0; i < t->devs.nr; i++) {
		struct pci_device *p = pdev_of(t, i);

		pci_function_save(p, &fn);
		assert_int_equal(snap_put_state(w, SNAP_ID_PCIF, (uint32_t)p->slot, &pci_function_state_codec, &fn), 0);
	}
	assert_int_equal(vm_devices_save(&t->devs, w), 0);
	assert_int_equal(snap_writer_commit(w), 0);
	vm_devices_resume(&t->devs);
}

/* vm_restore's order for these devices: config space, then the registry's two passes. */
static int restore(struct vm_under_test *t, const char *path, char *err, size_t err_size)
{
	struct snap_reader *r = NULL;
	struct pci_function_state fn;
	int ret;

	assert_int_equal(snap_reader_open(path, &r, err, err_size), 0);
	for (unsigned int i = 0; i < t->devs.nr; i++) {
		struct pci_device *p = pdev_of(t, i);

		assert_int_equal(snap_get_state(r, SNAP_ID_PCIF, (uint32_t)p->slot, &pci_function_state_codec, &fn, err,
						err_size), 0);
		assert_int_equal(pci_function_restore(p, &fn, err, err_size), 0);
	}
	ret = vm_devices_restore(&t->devs, r, false, err, err_size);
	ret = ret ?: vm_devices_restore(&t->devs, r, true, err, err_size);
	ret = ret ?: snap_reader_check_all_used(r, err, err_size);
	snap_reader_close(r);
	return ret;
}

static void drive(struct fake_driver *d, struct vm_under_test *t, unsigned int index)
{
	struct pci_device *p = pdev_of(t, index);

	fake_driver_attach(d, &t->vm, p, (unsigned int)p->slot);
	assert_int_equal(fake_driver_reset(d), 0);
	fake_driver_begin(d);
	assert_int_equal(fake_driver_accept(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)), FAKE_DRIVER_STATUS_FEATURES);
	assert_int_equal(fake_driver_queue(d, 0, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_MSI_NO_VECTOR),
			 VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(fake_driver_live(d), FAKE_DRIVER_STATUS_LIVE);
}

static void test_instances_from_the_config(void **state)
{
	struct vm_under_test *t = calloc(1, sizeof(*t));

	vm_up(t, 3);
	assert_int_equal(t->devs.nr, 3);
	assert_null(vm_devices_find(&t->devs, &counter_device_type, 3));
	/* Created in order, each on the lowest free slot (slot 0 is the host bridge). */
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(pdev_of(t, i)->slot, 1 + (int)i);
	vm_down(t);
	free(t);
}

static void test_snapshot_and_restore_go_on_counting(void **state)
{
	struct vm_under_test *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char path[] = "/tmp/kiln-registry-XXXXXX", err[256] = "";
	struct fake_driver d;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	vm_up(a, 2);
	drive(&d, a, 1);
	assert_int_equal(count(&d, a, 5, 1), 5);
	assert_int_equal(count(&d, a, 7, 2), 12);
	snapshot(a, path);

	/* A second VM with the same devices, and the first one's RAM (a restore maps the memory file). */
	vm_up(b, 2);
	memcpy(fake_vmm_hva(&b->vm, 0, HOLE_START), fake_vmm_hva(&a->vm, 0, HOLE_START), HOLE_START);
	vm_down(a);
	assert_int_equal(restore(b, path, err, sizeof(err)), 0);
	/* The driver carries on where it was: queue live, indices kept, the total counted on. */
	d.fv.vm = &b->vm;
	assert_int_equal(fake_virtio_status(&d.fv), FAKE_DRIVER_STATUS_LIVE);
	assert_int_equal(count(&d, b, 30, 3), 42);
	vm_down(b);
	unlink(path);
	free(a);
	free(b);
}

static void test_a_device_the_new_vm_lacks_is_refused(void **state)
{
	struct vm_under_test *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char path[] = "/tmp/kiln-registry-XXXXXX", err[256] = "";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	vm_up(a, 2);
	snapshot(a, path);
	vm_down(a);
	vm_up(b, 1);
	assert_int_equal(restore(b, path, err, sizeof(err)), -EINVAL);
	/* The second counter's sections (slot 2) would be dropped silently: named instead. */
	assert_non_null(strstr(err, "/2"));
	vm_down(b);
	unlink(path);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_instances_from_the_config),
		cmocka_unit_test(test_snapshot_and_restore_go_on_counting),
		cmocka_unit_test(test_a_device_the_new_vm_lacks_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
