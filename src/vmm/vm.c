// SPDX-License-Identifier: MIT
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/kernel_image.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "arch/x86/pvm.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/quiet.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/serial.h"
#include "devices/pci/pci.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "vmm/irq_routing.h"
#include "vmm/vcpu.h"

#define MIB (1ull << 20)

void vm_set_irq_line(void *opaque, uint32_t gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		pr_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

int vm_control_begin(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	while (vm->control_busy && vm->stop_reason == VM_RUNNING)
		pthread_cond_wait(&vm->control_cond, &vm->lock);
	if (vm->stop_reason != VM_RUNNING)
		ret = -ESHUTDOWN;
	else
		vm->control_busy = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vm_control_end(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->control_busy = false;
	pthread_cond_broadcast(&vm->control_cond);
	pthread_mutex_unlock(&vm->lock);
}

bool vm_is_paused(struct vm *vm)
{
	bool paused;

	pthread_mutex_lock(&vm->lock);
	paused = vm->paused;
	pthread_mutex_unlock(&vm->lock);
	return paused;
}

/*
 * Post `type` to every vCPU, then wait for each answer: the vCPUs leave KVM_RUN together, and the
 * slowest one sets the time. 0, or the first error (-ESHUTDOWN: the VM stopped meanwhile).
 */
static int vcpus_request(struct vm *vm, enum vcpu_request_type type)
{
	const struct vcpu_request req = { .type = type };
	unsigned int n = 0;
	int ret;

	while (n < vm->nr_vcpus && !(ret = vcpu_control_post(&vm->vcpus[n]->ctl, &req)))
		n++;
	if (n == vm->nr_vcpus)
		ret = 0;
	for (unsigned int i = 0; i < n; i++) {
		int r = vcpu_control_wait(&vm->vcpus[i]->ctl);

		ret = ret ?: r;
	}
	return ret;
}

int vm_pause(struct vm *vm)
{
	char err[256];
	int ret = vm_control_begin(vm);

	if (ret)
		return ret;
	if (vm_is_paused(vm)) {
		ret = -EALREADY;
		goto out;
	}
	ret = vcpus_request(vm, VCPU_REQ_PAUSE);
	if (ret)
		goto out;
	/* The vCPUs notify no more queues: what the devices have in flight completes, then they stop. */
	ret = vm_devices_pause(&vm->devices, err, sizeof(err));
	if (ret) {
		pr_err("cannot pause: %s", err);
		vm_devices_resume(&vm->devices);
		if (vcpus_request(vm, VCPU_REQ_RESUME))
			pr_warn("cannot resume the vCPUs after a failed pause: the VM is stopping");
		goto out;
	}
	/* With every vCPU and device still, the guest's clock is read once, as QEMU does on "stop". */
	memset(&vm->paused_clock, 0, sizeof(vm->paused_clock));
	if (ioctl(vm->fd, KVM_GET_CLOCK, &vm->paused_clock) < 0)
		pr_warn("KVM_GET_CLOCK: %s: the guest clock will include the pause", strerror(errno));
	pthread_mutex_lock(&vm->lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
out:
	vm_control_end(vm);
	if (ret == -ESHUTDOWN || (ret && atomic_load(&vm->stopping)))
		return -ESHUTDOWN; /* a stop overtook the pause */
	return ret;
}

int vm_resume(struct vm *vm)
{
	int ret = vm_control_begin(vm);

	if (ret)
		return ret;
	if (!vm_is_paused(vm)) {
		ret = -EALREADY;
		goto out;
	}
	if (vm->paused_clock.clock) {
		struct kvm_clock_data clock = { .clock = vm->paused_clock.clock };

		if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
			pr_warn("KVM_SET_CLOCK: %s: the guest clock jumps by the pause", strerror(errno));
	}
	/* Devices first: the guest's first notifications after the pause find them running. */
	vm_devices_resume(&vm->devices);
	ret = vcpus_request(vm, VCPU_REQ_RESUME);
	pthread_mutex_lock(&vm->lock);
	vm->paused = false;
	pthread_mutex_unlock(&vm->lock);
out:
	vm_control_end(vm);
	return ret;
}

/*
 * The guest RAM a SIGBUS may hit. A file-level global on purpose, as the console's terminal: a fault
 * handler has no other way to reach it, and kiln runs one VM per process.
 */
static struct {
	uint8_t *volatile base;
	volatile uint64_t size;
} guest_ram;

/*
 * A SIGBUS inside guest RAM is a host fault, never the guest's: the pages behind it are gone (the memory
 * file of a MAP_PRIVATE restore truncated under the VM). A device thread's or the emulator's memcpy is the
 * one that takes it (KVM itself answers a vCPU's access with -EFAULT or a triple fault: vcpu.c checks
 * vm_guest_memory_lost then). Say so and exit 1 at once: the VM cannot go on, and nothing here may take a
 * lock. Any other SIGBUS dies as uncaught (after the terminal is restored). Async-signal-safe throughout.
 */
static void guest_ram_sigbus(int sig, siginfo_t *si, void *uc)
{
	static const char msg[] = "kiln: error: " VM_GUEST_MEMORY_LOST_MESSAGE " (SIGBUS)\n";
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	uint8_t *addr = si->si_addr, *base = guest_ram.base;

	(void)uc;
	console_restore_terminal();
	if (base && addr >= base && (uint64_t)(addr - base) < guest_ram.size) {
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
			/* nothing else to tell it with */
		}
		_exit(1);
	}
	sigaction(sig, &dfl, NULL);
	raise(sig); /* a fault: returning re-runs the access, which now dies of SIGBUS */
}

/* Route SIGBUS on the VM's RAM to guest_ram_sigbus (before the console, which then leaves SIGBUS alone). */
static void catch_guest_ram_sigbus(const struct guest_memory *mem)
{
	struct sigaction sa = { .sa_sigaction = guest_ram_sigbus, .sa_flags = SA_SIGINFO };

	sigfillset(&sa.sa_mask);
	guest_ram.size = mem->size;
	guest_ram.base = mem->base;
	sigaction(SIGBUS, &sa, NULL);
}

bool vm_guest_memory_lost(struct vm *vm)
{
	/*
	 * Only a file mapping loses pages under kiln. Reading every region in is the test that does not guess
	 * from the file's size; it runs on an exit path only, once, when the VM stops anyway. Where the kernel
	 * lacks MADV_POPULATE_READ the read of a lost page raises the SIGBUS above, with the same message.
	 */
	if (vm->mem.kind != GUEST_MEMORY_FILE_PRIVATE || !vm->mem.base)
		return false;
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++)
		if (guest_memory_populate(&vm->mem, vm->mem.regions[i].gpa, vm->mem.regions[i].size))
			return true;
	return false;
}

void vm_stop(struct vm *vm, enum vm_stop_reason reason, const char *fmt, ...)
{
	uint64_t one = 1;
	unsigned int i;
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->stop_reason != VM_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->stop_reason = reason;
	vm->exit_status = reason == VM_STOP_ERROR ? 1 : 0;
	va_start(ap, fmt);
	vsnprintf(vm->stop_message, sizeof(vm->stop_message), fmt, ap);
	va_end(ap);
	atomic_store(&vm->stopping, true);
	/* Who waits to start a pause or a snapshot must see the stop. */
	pthread_cond_broadcast(&vm->control_cond);
	pthread_mutex_unlock(&vm->lock);

	/* Each vCPU thread leaves (a paused one at once); who waits on one gets -ESHUTDOWN. */
	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus && vm->vcpus[i])
			vcpu_control_exit(&vm->vcpus[i]->ctl);
	if (write(vm->stop_eventfd, &one, sizeof(one)) < 0)
		pr_warn("cannot signal the VM stop: %s", strerror(errno));
}

/* Either event loop failed (loop_on_error): the VM cannot go on without it. */
static void loop_failed(void *opaque, int err, const char *msg)
{
	(void)err;
	vm_stop(opaque, VM_STOP_ERROR, "%s", msg);
}

static void i8042_reset(void *opaque)
{
	vm_stop(opaque, VM_STOP_REBOOT, "guest reset the machine through the i8042 controller");
}

static void acpi_poweroff(void *opaque)
{
	vm_stop(opaque, VM_STOP_POWEROFF, "guest powered off through ACPI (S5)");
}

static void serial_to_console(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;

	console_write(&vm->console, buf, len);
}

void *vm_device(const struct vm *vm, const struct vm_device_type *type, unsigned int index)
{
	return vm_devices_find(&vm->devices, type, index);
}

struct serial *vm_serial(const struct vm *vm)
{
	return vm_device(vm, &serial_device_type, 0);
}

/*
 * GSI routing and PCI bus 0 (mechanism #1, ECAM and the windows of arch/x86/layout.h), for the virtio
 * devices. After the irqchip exists (routing starts from KVM's defaults) and before the devices.
 */
static int create_pci(struct vm *vm)
{
	struct pci_bus_config pcfg = {
		.ecam_base = X86_PCIE_ECAM_GPA,
		.ecam_nr_buses = (unsigned int)(X86_PCIE_ECAM_SIZE / PCI_ECAM_BUS_SIZE),
		.mmio32_base = X86_PCI_MMIO32_GPA,
		.mmio32_size = X86_PCI_MMIO32_SIZE,
		.io_base = X86_PCI_IO_BASE,
		.io_size = X86_PCI_IO_SIZE,
		.intx_set = vm_set_irq_line,
		.intx_opaque = vm,
	};

	vm->irq_routing = irq_routing_create(&irq_routing_kvm_ops, &vm->fd, IRQ_ROUTING_MAX_MSI_GSIS);
	if (!vm->irq_routing)
		return -errno;
	vm->pci = pci_bus_create(&pcfg);
	if (!vm->pci)
		return -errno;
	return pci_bus_attach(vm->pci, &vm->pio_bus, &vm->mmio_bus);
}

/* Every device the config asks for, from the type table (vmm/device.h), after bus 0 exists. */
static int create_devices(struct vm *vm, char *err, size_t err_size)
{
	struct vm_device_ctx ctx = {
		.cfg = vm->cfg,
		.pio_bus = &vm->pio_bus,
		.mmio_bus = &vm->mmio_bus,
		.mem = &vm->mem,
		.set_irq = vm_set_irq_line,
		.irq_opaque = vm,
		.virtio = {
			.pci = vm->pci, .slot = -1, .rt = vm->irq_routing, .loop = &vm->loop, .mem = &vm->mem,
			.vm_fd = vm->fd,
		},
		.events = { .console_out = serial_to_console, .reset = i8042_reset, .poweroff = acpi_poweroff, .opaque = vm },
	};
	int ret = vm_devices_create(&vm->devices, vm_device_types, vm_nr_device_types, &ctx, err, err_size);

	if (!ret && (ret = quiet_ports_register(&vm->pio_bus)))
		errmsg_set(err, err_size, "cannot register the quiet ports: %s", strerror(-ret));
	return ret;
}

/* The device event loop thread (loop_start blocks every signal in it: they are the main thread's). */
static int start_loop(struct vm *vm)
{
	int ret;

	ret = loop_init(&vm->loop);
	if (ret)
		return ret;
	vm->loop_ready = true;
	loop_on_error(&vm->loop, "device event loop", loop_failed, vm);
	ret = test_hooks_arm_loop(&vm->hooks, TEST_HOOK_LOOP_DEVICE, &vm->loop);
	return ret ?: loop_start(&vm->loop);
}

static int create_kvm_vm(struct vm *vm, char *err, size_t err_size)
{
	uint64_t identity = X86_KVM_IDENTITY_MAP_GPA;
	unsigned int i;

	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		errmsg_set(err, err_size, "KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 ||
	    ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)X86_KVM_TSS_GPA) < 0) {
		errmsg_set(err, err_size, "cannot place KVM's TSS/identity map: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i, .guest_phys_addr = r->gpa, .memory_size = r->size, .userspace_addr = (uintptr_t)r->hva,
		};

		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
			errmsg_set(err, err_size, "KVM_SET_USER_MEMORY_REGION slot %u: %s", i, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/*
 * The in-kernel irqchip and PIT, after the memory slots and the MSR filter: once they exist, each of those
 * ioctls waits for an SRCU grace period (synchronize_srcu on kvm->srcu). Measured on a PVM host: a 64 MiB
 * slot 0.1 ms before, 6-8 ms after; the MSR filter 0.05 ms before, 14 ms after (docs/design.md, "The VMM
 * process: libraries and start-up"). 0 or -errno with a message.
 */
static int create_irqchip(struct vm *vm, char *err, size_t err_size)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		errmsg_set(err, err_size, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		errmsg_set(err, err_size, "KVM_CREATE_PIT2: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* Kernel, initrd and command line into guest RAM; the boot vCPU's registers. 0 or -errno with a message. */
static int load_guest(struct vm *vm, char *err, size_t err_size)
{
	const struct vm_config *cfg = vm->cfg;
	struct kernel_image img;
	struct x86_boot_info info;
	struct pvh_boot_info pvh;
	uint8_t *file = NULL, *initrd = NULL;
	size_t file_len = 0, initrd_len = 0;
	char *cmdline = NULL, *user_cmdline = NULL;
	char why[256];
	int ret;

	ret = kernel_image_read_file(cfg->kernel_path, KERNEL_IMAGE_MAX_SIZE, &file, &file_len);
	if (ret) {
		errmsg_set(err, err_size, "cannot read kernel %s: %s", cfg->kernel_path,
			   ret == -EFBIG ? "larger than a kernel kiln loads" : strerror(-ret));
		return ret;
	}
	ret = kernel_image_parse(file, file_len, &img, why, sizeof(why));
	free(file);
	if (ret) {
		errmsg_set(err, err_size, "kernel %s: %s", cfg->kernel_path, why);
		return ret;
	}
	if (cfg->initrd_path) {
		ret = kernel_image_read_file(cfg->initrd_path, guest_memory_low_size(&vm->mem), &initrd, &initrd_len);
		if (ret) {
			errmsg_set(err, err_size, "cannot read initrd %s: %s", cfg->initrd_path,
				   ret == -EFBIG ? "larger than guest RAM below 4 GiB" : strerror(-ret));
			goto out;
		}
	}
	user_cmdline = vm_config_root_cmdline(cfg, cfg->cmdline);
	if (!user_cmdline) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	if (vm->kvm.pvm && cfg->pvm_tuning && img.is_linux)
		cmdline = pvm_cmdline_append(user_cmdline, pvm_linux_cmdline());
	else
		cmdline = strdup(user_cmdline);
	if (!cmdline) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	pr_debug("kernel command line: %s", cmdline);
	if (cfg->boot == VM_BOOT_PVH)
		ret = pvh_boot_load(&vm->mem, &img, initrd, initrd_len, cmdline, vm->nr_vcpus, &pvh, why, sizeof(why));
	else
		ret = x86_boot_load(&vm->mem, &img, initrd, initrd_len, cmdline, vm->nr_vcpus, &info, why, sizeof(why));
	if (ret) {
		errmsg_set(err, err_size, "cannot boot %s: %s", cfg->kernel_path, why);
		goto out;
	}
	if (cfg->boot == VM_BOOT_PVH)
		ret = pvh_setup_vcpu(vm->vcpus[0]->fd, &pvh);
	else
		ret = x86_boot_setup_vcpu(vm->vcpus[0]->fd, &info);
	if (ret)
		errmsg_set(err, err_size, "cannot set the boot vCPU's registers: %s", strerror(-ret));
out:
	free(cmdline);
	free(user_cmdline);
	free(initrd);
	kernel_image_free(&img);
	return ret;
}

/*
 * vm->files before the console opens: the files named in `cfg` and the memory file the VM runs from (mapped;
 * a --copy restore read it into its own memfd and no longer uses it).
 */
static int collect_files(struct vm *vm, const struct vm_config *cfg, int mem_fd)
{
	int ret = file_set_add_path(&vm->files, cfg->kernel_path);

	ret = ret ?: file_set_add_path(&vm->files, cfg->initrd_path);
	ret = ret ?: file_set_add_fd(&vm->files, mem_fd);
	for (unsigned int i = 0; i < cfg->nr_drives && !ret; i++)
		ret = file_set_add_path(&vm->files, cfg->drives[i].path_on_host);
	return ret;
}

/*
 * Everything vm_create and vm_create_restored share. `mem_fd` >= 0: guest RAM comes from that memory
 * file (a snapshot's; mapped privately, or copied with `copy`), kiln writes nothing into it, and no
 * kernel is loaded: the caller loads the snapshot's state.
 */
static int create(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, int mem_fd, bool copy, char *err,
		  size_t err_size)
{
	unsigned int i;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	vm->kvm.fd = -1;
	vm->stop_eventfd = -1;
	vm->cfg = cfg;
	vm->start_ns = start_ns;
	vm->nr_vcpus = cfg->vcpus;
	vm->mmio_ratelimit = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->control_cond, NULL);
	test_hooks_read(&vm->hooks);
	bus_init(&vm->pio_bus, "pio");
	bus_init(&vm->mmio_bus, "mmio");
	vm->mem.memfd = -1;

	ret = kvm_host_open(&vm->kvm, err, err_size);
	if (ret)
		goto fail;
	if (vm->kvm.pvm)
		pr_info("note: this host's KVM is PVM (no VT-x/AMD-V): guest kernel code runs emulated at about 1 M "
			"instructions/s, so a Linux boot takes minutes here");
	if ((int)vm->nr_vcpus > vm->kvm.max_vcpus) {
		errmsg_set(err, err_size, "%u vCPUs requested; this host's KVM allows %d", vm->nr_vcpus,
			   vm->kvm.max_vcpus);
		ret = -EINVAL;
		goto fail;
	}
	vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_eventfd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "eventfd: %s", strerror(-ret));
		goto fail;
	}
	if (mem_fd >= 0)
		ret = guest_memory_init_from_file(&vm->mem, cfg->mem_mib * MIB, X86_MMIO_HOLE_START, mem_fd, copy);
	else
		ret = guest_memory_init(&vm->mem, cfg->mem_mib * MIB, X86_MMIO_HOLE_START);
	if (ret) {
		errmsg_set(err, err_size, "cannot allocate %llu MiB of guest memory: %s",
			   (unsigned long long)cfg->mem_mib, strerror(-ret));
		goto fail;
	}
	catch_guest_ram_sigbus(&vm->mem);
	ret = create_kvm_vm(vm, err, err_size);
	if (ret)
		goto fail;
	if (vm->kvm.pvm) {
		/* A snapshot's RAM holds the trap's page tables already: only the MSR filter is per VM. */
		ret = mem_fd >= 0 ? pvm_syscall_trap_filter(vm->fd) : pvm_syscall_trap_init(vm->fd, &vm->mem);
		if (ret)
			pr_warn("cannot intercept SYSCALL on this PVM host (%s): guest user space will not run",
				strerror(-ret));
		vm->pvm_syscall_trap = ret == 0;
	}
	ret = create_irqchip(vm, err, err_size);
	if (ret)
		goto fail;
	ret = start_loop(vm);
	if (ret) {
		errmsg_set(err, err_size, "cannot start the device event loop: %s", strerror(-ret));
		goto fail;
	}
	ret = collect_files(vm, cfg, copy ? -1 : mem_fd);
	if (ret)
		goto too_many_files;
	ret = console_open(&vm->console, cfg->console_path, cfg->console_max_bytes, &vm->files, err, err_size);
	if (ret)
		goto fail;
	ret = file_set_add_fd(&vm->files, vm->console.out_fd);
	if (ret)
		goto too_many_files;
	ret = create_pci(vm);
	if (ret) {
		errmsg_set(err, err_size, "cannot create PCI bus 0: %s", strerror(-ret));
		goto fail;
	}
	ret = create_devices(vm, err, err_size);
	if (ret)
		goto fail;
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i] = vcpu_create(vm, i);
		if (!vm->vcpus[i]) {
			ret = -errno;
			errmsg_set(err, err_size, "cannot create vCPU %u: %s", i, strerror(errno));
			goto fail;
		}
	}
	if (mem_fd < 0) {
		ret = load_guest(vm, err, err_size);
		if (ret)
			goto fail;
	}
	return 0;
too_many_files:
	errmsg_set(err, err_size, "more than %u host files: %s", FILE_SET_MAX, strerror(-ret));
fail:
	vm_destroy(vm);
	return ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, char *err, size_t err_size)
{
	return create(vm, cfg, start_ns, -1, false, err, err_size);
}

int vm_create_restored(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, int mem_fd, bool copy,
		       char *err, size_t err_size)
{
	if (mem_fd < 0) {
		errmsg_set(err, err_size, "no memory file");
		return -EBADF;
	}
	return create(vm, cfg, start_ns, mem_fd, copy, err, err_size);
}

int vm_enable_profiling(struct vm *vm, unsigned int hz)
{
	unsigned int i;

	if (hz == 0 || hz > 10000)
		return -EINVAL;
	for (i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i]->profile = profile_create();
		if (!vm->vcpus[i]->profile)
			return -ENOMEM;
	}
	vm->profile_hz = hz;
	return 0;
}

int vm_write_profile(const struct vm *vm, const char *path)
{
	FILE *out = fopen(path, "w");
	unsigned int i;
	int ret = 0;

	if (!out)
		return -errno;
	fprintf(out, "# kiln profile: %u Hz; lines: samples rip(hex) vcpu\n", vm->profile_hz);
	for (i = 0; i < vm->nr_vcpus && ret == 0; i++)
		if (vm->vcpus[i]->profile)
			ret = profile_write(vm->vcpus[i]->profile, i, out);
	if (fclose(out) && ret == 0)
		ret = -errno;
	return ret;
}

/* The main thread's event loop while the VM runs (vm_run). */
struct main_loop {
	struct vm *vm;
	struct loop loop;
	int console_retry_fd;  /* one-shot timer: look again at a console whose input waits */
};

#define CONSOLE_RETRY_NS 10000000ull /* 10 ms: how soon held console input is looked at again */

/* Console input waits in its pipe (not polled) until the retry timer finds room for it. */
static void console_hold(struct main_loop *m)
{
	if (loop_mod(&m->loop, m->vm->console.in_fd, 0) ||
	    loop_timer_set(m->console_retry_fd, CONSOLE_RETRY_NS, 0))
		loop_fail(&m->loop, -EIO, "cannot hold the console's input");
}

/*
 * Bytes typed on the host go to the UART while it has room and the VM is not paused; the rest waits
 * in the pipe.
 */
static void console_input(void *opaque, int fd, uint32_t events)
{
	struct main_loop *m = opaque;
	struct vm *vm = m->vm;
	uint8_t in[256], out[256];
	size_t space = serial_rx_space(vm_serial(vm));
	ssize_t n;
	bool quit;

	(void)events;
	if (space == 0 || vm_is_paused(vm)) {
		console_hold(m);
		return;
	}
	n = read(fd, in, space < sizeof(in) ? space : sizeof(in));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			/* End of input: the guest keeps running without a keyboard. */
			loop_del(&m->loop, fd);
			vm->console.in_fd = -1;
		}
		return;
	}
	n = (ssize_t)console_filter_input(&vm->console, in, (size_t)n, out, &quit);
	if (n > 0)
		serial_receive(vm_serial(vm), out, (size_t)n);
	if (quit)
		vm_stop(vm, VM_STOP_SIGNAL, "stopped from the console (Ctrl-A x)");
}

static void console_retry(void *opaque, int fd, uint32_t events)
{
	struct main_loop *m = opaque;

	(void)fd;
	(void)events;
	if (m->vm->console.in_fd < 0)
		return;
	if (!serial_rx_space(vm_serial(m->vm)) || vm_is_paused(m->vm))
		console_hold(m);
	else if (loop_mod(&m->loop, m->vm->console.in_fd, EPOLLIN))
		loop_fail(&m->loop, -EIO, "cannot poll the console's input again");
}

static void on_stop_signal(void *opaque, int signo)
{
	vm_stop(opaque, VM_STOP_SIGNAL, "stopped by %s", strsignal(signo));
}

/* The VM stopped (vm_stop wrote its eventfd): the main loop is done. */
static void on_vm_stopped(void *opaque, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	loop_quit(opaque);
}

static void on_profile_tick(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;

	(void)fd;
	(void)events;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_request_sample(vm->vcpus[i]);
}

/* The main loop's sources. Before the vCPU threads exist: they inherit the stop signals blocked. */
static int main_loop_init(struct main_loop *m, struct vm *vm)
{
	int ret;

	m->vm = vm;
	m->console_retry_fd = -1;
	ret = loop_init(&m->loop);
	if (ret)
		return ret;
	loop_on_error(&m->loop, "main event loop", loop_failed, vm);
	ret = loop_add_stop_signals(&m->loop, on_stop_signal, vm);
	ret = ret ?: loop_add(&m->loop, vm->stop_eventfd, EPOLLIN, on_vm_stopped, &m->loop);
	ret = ret ?: test_hooks_arm_loop(&vm->hooks, TEST_HOOK_LOOP_MAIN, &m->loop);
	if (ret)
		return ret;
	if (vm->console.in_fd >= 0) {
		m->console_retry_fd = loop_add_timer(&m->loop, console_retry, m);
		if (m->console_retry_fd < 0)
			return m->console_retry_fd;
		if (loop_add(&m->loop, vm->console.in_fd, EPOLLIN, console_input, m))
			vm->console.in_fd = -1; /* e.g. /dev/null: not pollable, no input */
	}
	if (vm->profile_hz) {
		uint64_t period = 1000000000ull / vm->profile_hz;
		int fd = loop_add_timer(&m->loop, on_profile_tick, vm);

		if (fd < 0 || loop_timer_set(fd, period, period))
			pr_warn("profiling disabled: cannot create its timer");
	}
	return 0;
}

int vm_run(struct vm *vm)
{
	struct main_loop m;
	unsigned int i;
	int ret;

	ret = main_loop_init(&m, vm);
	if (ret) {
		pr_err("cannot set up the event loop: %s", strerror(-ret));
		loop_destroy(&m.loop);
		loop_unblock_stop_signals();
		return 1;
	}
	vcpu_signals_init();
	for (i = 0; i < vm->nr_vcpus; i++) {
		int r = vcpu_start(vm->vcpus[i]);

		if (r) {
			vm_stop(vm, VM_STOP_ERROR, "cannot start vCPU %u: %s", i, strerror(-r));
			break;
		}
	}
	/* Until the stop eventfd ends it, or it fails (loop_failed has stopped the VM then). */
	ret = loop_run(&m.loop);
	if (ret)
		pr_debug("main event loop: ended by its failure: %s", strerror(-ret));
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = vm->vcpus[i];

		if (vcpu->thread_started) {
			pthread_join(vcpu->thread, NULL);
			vcpu->thread_started = false;
		}
	}
	loop_destroy(&m.loop);
	loop_unblock_stop_signals();
	return vm->exit_status;
}

void vm_destroy(struct vm *vm)
{
	unsigned int i;

	if (vm->vcpus) {
		for (i = 0; i < vm->nr_vcpus; i++)
			vcpu_destroy(vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	/*
	 * The loop thread next (it may be inside a device callback), then the bus (it points at the
	 * devices), the devices (their irqfds and ioeventfds need the VM fd and the routing), the routing.
	 */
	if (vm->loop_ready)
		loop_destroy(&vm->loop);
	vm->loop_ready = false;
	pci_bus_destroy(vm->pci);
	vm->pci = NULL;
	vm_devices_destroy(&vm->devices);
	irq_routing_destroy(vm->irq_routing);
	vm->irq_routing = NULL;
	console_close(&vm->console);
	bus_destroy(&vm->pio_bus);
	bus_destroy(&vm->mmio_bus);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	if (vm->mem.memfd >= 0 || vm->mem.base) {
		if (guest_ram.base == vm->mem.base)
			guest_ram.base = NULL; /* a SIGBUS there is not guest RAM's any more */
		guest_memory_destroy(&vm->mem);
	}
	if (vm->stop_eventfd >= 0)
		close(vm->stop_eventfd);
	vm->stop_eventfd = -1;
	kvm_host_close(&vm->kvm);
}
