// SPDX-License-Identifier: MIT
/*
 * Every device type kiln puts in a VM, in creation order (vmm/device.h): the legacy devices, then
 * the virtio devices, whose order here gives their PCI slots (virtio-rng, then the drives, then the
 * NICs, as kiln has always numbered them: snapshots record devices by slot).
 */
#include "vmm/device.h"

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/serial.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"

const struct vm_device_type *const vm_device_types[] = {
	&serial_device_type,
	&i8042_device_type,
	&rtc_device_type,
	&acpi_pm_device_type,
	&virtio_rng_device_type,
	&virtio_blk_device_type,
	&virtio_net_device_type,
};

const unsigned int vm_nr_device_types = sizeof(vm_device_types) / sizeof(vm_device_types[0]);
