/* SPDX-License-Identifier: MIT */
/*
 * One virtual machine: its KVM VM fd, guest RAM, buses, in-kernel irqchip and PIT, GSI routing, PCI bus
 * 0, the device event loop, legacy and virtio devices, vCPU threads, and why it stopped.
 */
#ifndef KILN_VMM_VM_H
#define KILN_VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/emulate.h"
#include "devices/console.h"
#include "lib/log.h"
#include "lib/safe_path.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/device.h"
#include "vmm/kvm.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/test_hooks.h"

struct vcpu;
struct irq_routing;
struct pci_bus;
struct serial;

/* Why a VM stopped; decides kiln's exit status (docs/config.md "Exit status"). */
enum vm_stop_reason {
	VM_RUNNING = 0,
	VM_STOP_POWEROFF,     /* guest powered off (ACPI or KVM system event): status 0 */
	VM_STOP_REBOOT,       /* guest reset the machine (i8042, triple fault, panic with panic=-1): status 0 */
	VM_STOP_SIGNAL,       /* SIGINT/SIGTERM/SIGHUP or the console escape: status 0 */
	VM_STOP_ERROR,        /* kiln could not continue (emulation failure, KVM error): status 1 */
};

struct vm {
	struct kvm_host kvm;
	int fd;                         /* KVM VM fd */
	const struct vm_config *cfg;
	struct guest_memory mem;
	struct bus pio_bus;
	struct bus mmio_bus;
	unsigned int nr_vcpus;
	struct vcpu **vcpus;
	struct irq_routing *irq_routing; /* MSI routes and irqfds (MSI-X) */
	struct pci_bus *pci;            /* bus 0: host bridge, virtio devices */
	struct loop loop;               /* the device event loop thread (virtio queues, TAPs, completions) */
	bool loop_ready;                /* loop_init succeeded: loop_destroy owed */
	struct vm_devices devices;      /* every device, legacy and virtio (vmm/device.h) */
	struct console console;
	struct file_set files;          /* what the VM uses (kernel, initrd, disks, console, API socket, memory
	                                   file): no snapshot or console may be written over one of them */
	bool pvm_syscall_trap;          /* user-mode SYSCALLs completed by kiln (PVM hosts) */

	int stop_eventfd;               /* becomes readable when the VM stops */
	atomic_bool stopping;
	pthread_mutex_t lock;           /* guards the fields below; never held across a wait for vCPUs */
	enum vm_stop_reason stop_reason;
	bool paused;                    /* every vCPU paused, the devices quiesced, the clock saved */
	bool control_busy;              /* a pause, resume or snapshot is under way (vm_control_begin) */
	pthread_cond_t control_cond;    /* control_busy cleared, or the VM stopping */
	struct kvm_clock_data paused_clock; /* kvmclock at the pause, restored on resume */
	int exit_status;
	char stop_message[256];
	struct x86_emu_stats emu_stats; /* summed over vCPUs when they exit */
	struct ratelimit mmio_ratelimit; /* unemulated MMIO messages */

	struct test_hooks hooks;        /* faults the tests inject (vmm/test_hooks.h); zero otherwise */
	unsigned int profile_hz;        /* RIP samples per second per vCPU; 0 = not profiling */
	uint64_t start_ns;              /* process start as kiln measured it */
	_Atomic uint64_t first_run_ns;  /* first KVM_RUN on any vCPU */
	_Atomic uint8_t unknown_port_logged[65536 / 8];
};

/*
 * Create the VM described by `cfg`: KVM VM, guest RAM, irqchip, PIT, legacy devices, vCPUs, and the
 * kernel/initrd/command line loaded per the Linux boot protocol. Returns 0, or -errno with the reason in
 * `err` (`err_size` bytes: the loader's own words, e.g. "cannot boot K: kernel occupies 0x1000-0x2000:
 * outside guest RAM below 4 GiB (1 MiB-0x4000000)"); on failure everything created is released.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Run until the VM stops: start the vCPU threads, run the main thread's event loop (vmm/loop.h: the
 * console's input, SIGINT/SIGTERM/SIGHUP, the VM's stop eventfd, the profile timer) on this thread,
 * join the vCPUs. A failure of the loop stops the VM (VM_STOP_ERROR). Returns kiln's exit status for
 * the stop reason.
 */
int vm_run(struct vm *vm);

/*
 * Stop the VM for `reason` with a one-line message; the first caller wins, later calls are ignored.
 * Safe from any thread (vCPU threads, devices).
 */
void vm_stop(struct vm *vm, enum vm_stop_reason reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Has guest RAM lost pages under the VM (the memory file of a MAP_PRIVATE restore truncated)? For a vCPU
 * whose KVM_RUN failed with EFAULT or whose guest "triple faulted": KVM turns a host fault on guest memory
 * into those. Reads all RAM in (slow for a large lazily restored VM: call it only on the way out).
 */
bool vm_guest_memory_lost(struct vm *vm);

/* What vm_stop's message says when vm_guest_memory_lost. */
#define VM_GUEST_MEMORY_LOST_MESSAGE "guest memory is gone (the host cannot read its pages): the memory file was truncated?"

/*
 * vm_create for a snapshot restore (src/vmm/snapshot.h): the same machine for `cfg`, its guest RAM
 * from the memory file `mem_fd` (guest_memory_init_from_file: mapped MAP_PRIVATE, or copied with
 * `copy`; the fd may be closed afterwards), devices and vCPUs in their reset state, no kernel loaded.
 * Returns 0 or -errno with a message, as vm_create.
 */
int vm_create_restored(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, int mem_fd, bool copy,
		       char *err, size_t err_size) __attribute__((warn_unused_result));

void vm_destroy(struct vm *vm);

/* Sample every vCPU's guest RIP `hz` times a second while the VM runs (call before vm_run). 0 or -errno. */
int vm_enable_profiling(struct vm *vm, unsigned int hz) __attribute__((warn_unused_result));

/* Write the samples to `path` (format: vmm/profile.h). 0 or -errno. */
int vm_write_profile(const struct vm *vm, const char *path) __attribute__((warn_unused_result));

/*
 * Stop every vCPU between two instructions (a VCPU_REQ_PAUSE to each, vmm/vcpu_control.h), then the
 * devices (vm_devices_pause: requests in flight complete, no queue is processed and nothing is
 * written into guest RAM until vm_resume), and freeze the guest's clock (KVM_GET_CLOCK), so that on
 * vm_resume() (KVM_SET_CLOCK) the guest does not see the paused time as a jump. Waits for the vCPUs
 * without holding a lock (other threads read the VM meanwhile); one pause, resume or snapshot at a
 * time (vm_control_begin). Returns 0, -EALREADY when paused already, -ESHUTDOWN when the VM is
 * stopping, or -errno from a device that could not finish its requests (the VM then runs on).
 * Any thread but a vCPU's.
 */
int vm_pause(struct vm *vm) __attribute__((warn_unused_result));

/* Undo vm_pause(): devices first, then the vCPUs. Returns 0, -EALREADY when not paused, -ESHUTDOWN. */
int vm_resume(struct vm *vm) __attribute__((warn_unused_result));

/*
 * Start a pause, resume or snapshot: wait (no lock held) until the one under way is done. Returns 0
 * (vm_control_end owed) or -ESHUTDOWN when the VM is stopping.
 */
int vm_control_begin(struct vm *vm) __attribute__((warn_unused_result));
void vm_control_end(struct vm *vm);

/* Whether vm_pause completed (and no vm_resume since). */
bool vm_is_paused(struct vm *vm);

/* The VM's instance `index` of device type `type` (vmm/device.h), or NULL. */
void *vm_device(const struct vm *vm, const struct vm_device_type *type, unsigned int index);

/* COM1, where the console's input goes. */
struct serial *vm_serial(const struct vm *vm);

/* Raise/lower an ISA interrupt line through KVM_IRQ_LINE (irq_set_fn for devices). */
void vm_set_irq_line(void *vm, uint32_t gsi, int level);

#endif
