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
#include <sys/signalfd.h>
#include <sys/timerfd.h>
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

int vm_pause(struct vm *vm)
{
	unsigned int i;

	pthread_mutex_lock(&vm->lock);
	if (vm->stop_reason != VM_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return -ESHUTDOWN;
	}
	if (atomic_load(&vm->pause_requested)) {
		pthread_mutex_unlock(&vm->lock);
		return -EALREADY;
	}
	atomic_store(&vm->pause_requested, true);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_parked < vm->nr_vcpus && vm->stop_reason == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->lock);
	if (vm->stop_reason != VM_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return -ESHUTDOWN;
	}
	/* With every vCPU parked, the guest's clock is read once, as QEMU does on "stop". */
	memset(&vm->paused_clock, 0, sizeof(vm->paused_clock));
	if (ioctl(vm->fd, KVM_GET_CLOCK, &vm->paused_clock) < 0)
		pr_warn("KVM_GET_CLOCK: %s: the guest clock will include the pause", strerror(errno));
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->paused) {
		pthread_mutex_unlock(&vm->lock);
		return -EALREADY;
	}
	if (vm->paused_clock.clock) {
		struct kvm_clock_data clock = { .clock = vm->paused_clock.clock };

		if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
			pr_warn("KVM_SET_CLOCK: %s: the guest clock jumps by the pause", strerror(errno));
	}
	vm->paused = false;
	atomic_store(&vm->pause_requested, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void vm_vcpu_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_requested) && vm->stop_reason == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->lock);
	vm->nr_parked--;
	pthread_mutex_unlock(&vm->lock);
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
	/* Parked vCPUs and a waiting vm_pause() must see the stop. */
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);

	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus && vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
	if (write(vm->stop_eventfd, &one, sizeof(one)) < 0)
		pr_warn("cannot signal the VM stop: %s", strerror(errno));
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
static int create_devices(struct vm *vm)
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
	int ret = vm_devices_create(&vm->devices, vm_device_types, vm_nr_device_types, &ctx);

	return ret ?: quiet_ports_register(&vm->pio_bus);
}

/*
 * The device event loop thread, with every signal blocked: SIGINT/SIGTERM/SIGHUP are read from a
 * signalfd by vm_run's thread, which only works while no other thread can take them.
 */
static int start_loop(struct vm *vm)
{
	sigset_t all, old;
	int ret;

	ret = loop_init(&vm->loop);
	if (ret)
		return ret;
	vm->loop_ready = true;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = loop_start(&vm->loop);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int create_kvm_vm(struct vm *vm)
{
	uint64_t identity = X86_KVM_IDENTITY_MAP_GPA;
	unsigned int i;

	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		pr_err("KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 ||
	    ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)X86_KVM_TSS_GPA) < 0) {
		pr_err("cannot place KVM's TSS/identity map: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i, .guest_phys_addr = r->gpa, .memory_size = r->size, .userspace_addr = (uintptr_t)r->hva,
		};

		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
			pr_err("KVM_SET_USER_MEMORY_REGION slot %u: %s", i, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/*
 * The in-kernel irqchip and PIT, after the memory slots and the MSR filter: once they exist, each of those
 * ioctls waits for an SRCU grace period (synchronize_srcu on kvm->srcu). Measured on a PVM host: a 64 MiB
 * slot 0.1 ms before, 6-8 ms after; the MSR filter 0.05 ms before, 14 ms after (docs/design.md, "The VMM
 * process: libraries and start-up").
 */
static int create_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		pr_err("KVM_CREATE_PIT2: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* Kernel, initrd and command line into guest RAM; the boot vCPU's registers. */
static int load_guest(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	struct kernel_image img;
	struct x86_boot_info info;
	struct pvh_boot_info pvh;
	uint8_t *file = NULL, *initrd = NULL;
	size_t file_len = 0, initrd_len = 0;
	char *cmdline = NULL, *user_cmdline = NULL;
	char err[256];
	int ret;

	ret = kernel_image_read_file(cfg->kernel_path, KERNEL_IMAGE_MAX_SIZE, &file, &file_len);
	if (ret) {
		pr_err("cannot read kernel %s: %s", cfg->kernel_path, strerror(-ret));
		return ret;
	}
	ret = kernel_image_parse(file, file_len, &img, err, sizeof(err));
	free(file);
	if (ret) {
		pr_err("kernel %s: %s", cfg->kernel_path, err);
		return ret;
	}
	if (cfg->initrd_path) {
		ret = kernel_image_read_file(cfg->initrd_path, guest_memory_low_size(&vm->mem), &initrd, &initrd_len);
		if (ret) {
			pr_err("cannot read initrd %s: %s", cfg->initrd_path, strerror(-ret));
			goto out;
		}
	}
	user_cmdline = vm_config_root_cmdline(cfg, cfg->cmdline);
	if (!user_cmdline) {
		ret = -ENOMEM;
		goto out;
	}
	if (vm->kvm.pvm && cfg->pvm_tuning && img.is_linux)
		cmdline = pvm_cmdline_append(user_cmdline, pvm_linux_cmdline());
	else
		cmdline = strdup(user_cmdline);
	if (!cmdline) {
		ret = -ENOMEM;
		goto out;
	}
	pr_debug("kernel command line: %s", cmdline);
	if (cfg->boot == VM_BOOT_PVH)
		ret = pvh_boot_load(&vm->mem, &img, initrd, initrd_len, cmdline, vm->nr_vcpus, &pvh, err, sizeof(err));
	else
		ret = x86_boot_load(&vm->mem, &img, initrd, initrd_len, cmdline, vm->nr_vcpus, &info, err, sizeof(err));
	if (ret) {
		pr_err("cannot boot %s: %s", cfg->kernel_path, err);
		goto out;
	}
	if (cfg->boot == VM_BOOT_PVH)
		ret = pvh_setup_vcpu(vm->vcpus[0]->fd, &pvh);
	else
		ret = x86_boot_setup_vcpu(vm->vcpus[0]->fd, &info);
	if (ret)
		pr_err("cannot set the boot vCPU's registers: %s", strerror(-ret));
out:
	free(cmdline);
	free(user_cmdline);
	free(initrd);
	kernel_image_free(&img);
	return ret;
}

/*
 * Everything vm_create and vm_create_restored share. `mem_fd` >= 0: guest RAM comes from that memory
 * file (a snapshot's; mapped privately, or copied with `copy`), kiln writes nothing into it, and no
 * kernel is loaded: the caller loads the snapshot's state.
 */
static int create(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, int mem_fd, bool copy)
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
	pthread_cond_init(&vm->pause_cond, NULL);
	bus_init(&vm->pio_bus, "pio");
	bus_init(&vm->mmio_bus, "mmio");
	vm->mem.memfd = -1;

	ret = kvm_host_open(&vm->kvm);
	if (ret)
		goto fail;
	if (vm->kvm.pvm)
		pr_info("note: this host's KVM is PVM (no VT-x/AMD-V): guest kernel code runs emulated at about 1 M "
			"instructions/s, so a Linux boot takes minutes here");
	if ((int)vm->nr_vcpus > vm->kvm.max_vcpus) {
		pr_err("%u vCPUs requested; this host's KVM allows %d", vm->nr_vcpus, vm->kvm.max_vcpus);
		ret = -EINVAL;
		goto fail;
	}
	vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_eventfd < 0) {
		ret = -errno;
		goto fail;
	}
	if (mem_fd >= 0)
		ret = guest_memory_init_from_file(&vm->mem, cfg->mem_mib * MIB, X86_MMIO_HOLE_START, mem_fd, copy);
	else
		ret = guest_memory_init(&vm->mem, cfg->mem_mib * MIB, X86_MMIO_HOLE_START);
	if (ret) {
		pr_err("cannot allocate %llu MiB of guest memory: %s", (unsigned long long)cfg->mem_mib, strerror(-ret));
		goto fail;
	}
	ret = create_kvm_vm(vm);
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
	ret = create_irqchip(vm);
	if (ret)
		goto fail;
	ret = start_loop(vm);
	if (ret) {
		pr_err("cannot start the device event loop: %s", strerror(-ret));
		goto fail;
	}
	ret = console_open(&vm->console, cfg->console_path);
	if (ret) {
		pr_err("cannot open console %s: %s", cfg->console_path ? cfg->console_path : "stdio", strerror(-ret));
		goto fail;
	}
	ret = create_pci(vm);
	ret = ret ?: create_devices(vm);
	if (ret) {
		pr_err("cannot create devices: %s", strerror(-ret));
		goto fail;
	}
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i] = vcpu_create(vm, i);
		if (!vm->vcpus[i]) {
			ret = -errno;
			pr_err("cannot create vCPU %u: %s", i, strerror(errno));
			goto fail;
		}
	}
	if (mem_fd < 0) {
		ret = load_guest(vm);
		if (ret)
			goto fail;
	}
	return 0;
fail:
	vm_destroy(vm);
	return ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns)
{
	return create(vm, cfg, start_ns, -1, false);
}

int vm_create_restored(struct vm *vm, const struct vm_config *cfg, uint64_t start_ns, int mem_fd, bool copy)
{
	if (mem_fd < 0)
		return -EBADF;
	return create(vm, cfg, start_ns, mem_fd, copy);
}

/* Bytes typed on the host go to the UART while it has room; the rest waits in the pipe. */
static void console_input(struct vm *vm, int epfd, bool *input_paused)
{
	uint8_t in[256], out[256];
	size_t space = serial_rx_space(vm_serial(vm));
	ssize_t n;
	bool quit;

	if (space == 0) {
		/* Stop polling the console until the guest drains the UART; polled again below. */
		epoll_ctl(epfd, EPOLL_CTL_DEL, vm->console.in_fd, NULL);
		*input_paused = true;
		return;
	}
	n = read(vm->console.in_fd, in, space < sizeof(in) ? space : sizeof(in));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			/* End of input: the guest keeps running without a keyboard. */
			epoll_ctl(epfd, EPOLL_CTL_DEL, vm->console.in_fd, NULL);
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

enum { EV_STOP = 1, EV_SIGNAL, EV_CONSOLE, EV_PROFILE };

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

/* A timerfd that fires `hz` times a second, for profiling. */
static int profile_timer(unsigned int hz)
{
	struct itimerspec its = { 0 };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	its.it_interval.tv_nsec = 1000000000L / hz;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

int vm_run(struct vm *vm)
{
	struct epoll_event ev, events[8];
	bool input_paused = false;
	sigset_t sigs;
	int epfd = -1, sfd = -1, tfd = -1, ret = 0;
	unsigned int i;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	/* Blocked before the vCPU threads exist, so they inherit the mask and only this thread takes them. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || epfd < 0) {
		pr_err("cannot set up the event loop: %s", strerror(errno));
		ret = 1;
		goto out;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = EV_STOP };
	epoll_ctl(epfd, EPOLL_CTL_ADD, vm->stop_eventfd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = EV_SIGNAL };
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	if (vm->console.in_fd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = EV_CONSOLE };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, vm->console.in_fd, &ev) < 0)
			vm->console.in_fd = -1; /* e.g. /dev/null: not pollable, no input */
	}

	if (vm->profile_hz) {
		tfd = profile_timer(vm->profile_hz);
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = EV_PROFILE };
		if (tfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev) < 0)
			pr_warn("profiling disabled: cannot create its timer");
	}

	vcpu_signals_init();
	for (i = 0; i < vm->nr_vcpus; i++) {
		int r = vcpu_start(vm->vcpus[i]);

		if (r) {
			vm_stop(vm, VM_STOP_ERROR, "cannot start vCPU %u: %s", i, strerror(-r));
			break;
		}
	}

	while (!atomic_load(&vm->stopping)) {
		int n = epoll_wait(epfd, events, 8, input_paused ? 10 : -1);

		if (n < 0 && errno != EINTR) {
			vm_stop(vm, VM_STOP_ERROR, "epoll_wait: %s", strerror(errno));
			break;
		}
		if (input_paused && vm->console.in_fd >= 0 && serial_rx_space(vm_serial(vm))) {
			ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = EV_CONSOLE };
			epoll_ctl(epfd, EPOLL_CTL_ADD, vm->console.in_fd, &ev);
			input_paused = false;
		}
		for (int k = 0; k < n; k++) {
			switch (events[k].data.u32) {
			case EV_SIGNAL: {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si))
					vm_stop(vm, VM_STOP_SIGNAL, "stopped by %s", strsignal((int)si.ssi_signo));
				break;
			}
			case EV_CONSOLE:
				console_input(vm, epfd, &input_paused);
				break;
			case EV_PROFILE: {
				uint64_t ticks;

				if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
					for (i = 0; i < vm->nr_vcpus; i++)
						vcpu_request_sample(vm->vcpus[i]);
				break;
			}
			default:
				break;
			}
		}
	}

	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = vm->vcpus[i];

		if (vcpu->thread_started) {
			pthread_join(vcpu->thread, NULL);
			vcpu->thread_started = false;
		}
	}
	ret = vm->exit_status;
out:
	if (epfd >= 0)
		close(epfd);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	return ret;
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
	if (vm->mem.memfd >= 0 || vm->mem.base)
		guest_memory_destroy(&vm->mem);
	if (vm->stop_eventfd >= 0)
		close(vm->stop_eventfd);
	vm->stop_eventfd = -1;
	kvm_host_close(&vm->kvm);
}
