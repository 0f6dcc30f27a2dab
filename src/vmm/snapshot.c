// SPDX-License-Identifier: MIT
/*
 * Whole-VM snapshots: which piece of state goes into which section, in which order it is written and
 * loaded. The container is snapshot_file.c; each state is a plain struct described by a codec table
 * (lib/codec.h); the devices come from the registry (vmm/device.h), each with its own sections.
 *
 * Restore order, and why:
 *   1. RAM (the VM is created over the memory file), then every vCPU: CPUID, SREGS, REGS, XSAVE,
 *      MSRs, LAPIC, events, MP state (kvm_state.c).
 *   2. The irqchip after the LAPICs: loading the IOAPIC re-delivers its pending requests to them.
 *   3. The PIT, the devices without a transport (vm_devices_restore), the PCI bus: each function's
 *      config space (BARs decode again), then per virtio device its MSI-X table (routes and irqfds for
 *      the vectors that can fire), its transport (queues set up over the same rings, notifications
 *      subscribed), then its own state.
 *   4. kvmclock last (KVM_SET_CLOCK), or kept for vm_resume when the VM stays paused.
 */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/kvm_state.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvm.h"
#include "devices/pci/pci.h"
#include "lib/log.h"
#include "vmm/snapshot_codec.h"
#include "vmm/snapshot_mem.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MIB (1ull << 20)

/* Section ids beyond those snapshot_file.h names (docs/snapshot-format.md "Sections"). */
#define SNAP_ID_PVM SNAP_FOURCC('P', 'V', 'M', ' ')   /* PVM SYSCALL trap, instance = vCPU index */
#define SNAP_ID_PCI SNAP_FOURCC('P', 'C', 'I', ' ')   /* PCI bus 0 */
#define SNAP_ID_PCIF SNAP_FOURCC('P', 'C', 'I', 'F')  /* a PCI function's config space, instance = slot */
/* Each device's own sections are its type's (vmm/device.h: vm_devices_save). */

#define CONF_VERSION 1

/* ---- writing ---- */

/* States described by codec tables (vmm/snapshot_codec.h). */
#define PUT_CODEC(w, id, instance, codec, st) snap_put_state((w), (id), (instance), (codec), (st))
#define GET_CODEC(r, id, instance, codec, st, err, err_size) \
	snap_get_state((r), (id), (instance), (codec), (st), (err), (err_size))

/* One DISK section per configured drive: what its backing file is now. */
static int save_disks(const struct vm_config *cfg, struct snap_writer *w, char *err, size_t err_size)
{
	struct snap_disk *d = malloc(sizeof(*d));
	int ret = d ? 0 : -ENOMEM;

	for (unsigned int i = 0; i < cfg->nr_drives && !ret; i++) {
		const struct vm_drive_config *drive = &cfg->drives[i];

		ret = snap_disk_record(d, drive->path_on_host, drive->is_read_only);
		if (ret) {
			errmsg_set(err, err_size, "drive %s: %s: %s", drive->drive_id, drive->path_on_host, strerror(-ret));
			break;
		}
		ret = PUT_CODEC(w, SNAP_ID_DISK, i, &snap_disk_codec, d);
		if (ret)
			errmsg_set(err, err_size, "state file: %s", strerror(-ret));
	}
	free(d);
	return ret;
}

#define VCPU_WHAT_SIZE 256 /* x86_vcpu_state_get/set's message */

/* What save_vcpu, run on each vCPU's own thread, needs. */
struct vcpu_save {
	struct vm *vm;
	struct snap_writer *w;
	struct x86_msr_list *msrs;
	uint32_t xsave_size;
	struct x86_vcpu_state *st;
	char what[VCPU_WHAT_SIZE];
};

/* A VCPU_REQ_CALL: the paused vCPU's registers into its sections, on its own thread (vcpu_control.h). */
static int save_vcpu(void *owner, void *arg)
{
	struct vcpu *vcpu = owner;
	struct vcpu_save *s = arg;
	int ret = x86_vcpu_state_get(vcpu->fd, s->msrs, s->xsave_size, s->st, s->what, sizeof(s->what));

	if (ret)
		return ret;
	snprintf(s->what, sizeof(s->what), "state file: cannot write its section");
	ret = PUT_CODEC(s->w, SNAP_ID_VCPU, vcpu->id, &x86_vcpu_state_codec, s->st);
	if (!ret && s->vm->pvm_syscall_trap)
		ret = PUT_CODEC(s->w, SNAP_ID_PVM, vcpu->id, &pvm_vcpu_state_codec, &vcpu->pvm);
	return ret;
}

static int save_vcpus(struct vm *vm, struct snap_writer *w, char *err, size_t err_size)
{
	struct vcpu_save s = { .vm = vm, .w = w, .st = malloc(sizeof(*s.st)), .msrs = malloc(sizeof(*s.msrs)) };
	int xsave_size, ret = 0;

	if (!s.st || !s.msrs) {
		ret = -ENOMEM;
		goto out;
	}
	ret = x86_msr_list_get(vm->kvm.fd, s.msrs);
	if (ret) {
		errmsg_set(err, err_size, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
		goto out;
	}
	xsave_size = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	s.xsave_size = xsave_size > 0 ? (uint32_t)xsave_size : 0;
	for (unsigned int i = 0; i < vm->nr_vcpus && !ret; i++) {
		ret = vcpu_control_call(&vm->vcpus[i]->ctl, save_vcpu, &s);
		if (ret)
			errmsg_set(err, err_size, "vCPU %u: %s", i, ret == -ESHUTDOWN ? "the VM is stopping" : s.what);
	}
out:
	free(s.st);
	free(s.msrs);
	return ret;
}

static int save_vm_chips(struct vm *vm, struct snap_writer *w, char *err, size_t err_size)
{
	struct x86_irqchip_state chip;
	struct kvm_pit_state2 pit;
	int ret;

	ret = x86_irqchip_state_get(vm->fd, &chip);
	if (ret) {
		errmsg_set(err, err_size, "KVM_GET_IRQCHIP: %s", strerror(-ret));
		return ret;
	}
	ret = x86_pit_state_get(vm->fd, &pit);
	if (ret) {
		errmsg_set(err, err_size, "KVM_GET_PIT2: %s", strerror(-ret));
		return ret;
	}
	ret = PUT_CODEC(w, SNAP_ID_IRQC, 0, &x86_irqchip_state_codec, &chip);
	ret = ret ?: PUT_CODEC(w, SNAP_ID_PIT, 0, &x86_pit_state_codec, &pit);
	/* The clock as vm_pause froze it: what the guest saw last. */
	ret = ret ?: PUT_CODEC(w, SNAP_ID_CLCK, 0, &x86_clock_state_codec, &vm->paused_clock.clock);
	return ret;
}

/* PCI bus 0 and each function's config space; then every device (vmm/device.h) with its sections. */
static int save_devices(struct vm *vm, struct snap_writer *w)
{
	struct pci_function_state *fn = malloc(sizeof(*fn));
	struct pci_bus_state bus;
	int ret = -ENOMEM;

	if (!fn)
		return ret;
	pci_bus_save(vm->pci, &bus);
	ret = PUT_CODEC(w, SNAP_ID_PCI, 0, &pci_bus_state_codec, &bus);
	for (unsigned int slot = 0; slot < PCI_MAX_DEVICES && !ret; slot++) {
		struct pci_device *dev = pci_bus_device(vm->pci, slot);

		if (!dev)
			continue;
		pci_function_save(dev, fn);
		ret = PUT_CODEC(w, SNAP_ID_PCIF, slot, &pci_function_state_codec, fn);
	}
	free(fn);
	return ret ?: vm_devices_save(&vm->devices, w);
}

static int save_memory(struct vm *vm, const char *mem_path, const uint8_t id[SNAP_ID_SIZE], struct snap_memo *memo,
		       struct snap_mem_chunks *chunks, char *tmp, size_t tmp_size, char *err, size_t err_size)
{
	int fd, ret;

	memset(memo, 0, sizeof(*memo));
	memo->mem_size = vm->mem.size;
	memo->data_size = vm->mem.size;
	memo->nr_regions = vm->mem.nr_regions;
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++)
		memo->regions[i] = (struct snap_memo_region){
			.gpa = vm->mem.regions[i].gpa, .size = vm->mem.regions[i].size,
			.file_offset = vm->mem.regions[i].fd_offset,
		};
	fd = snap_mem_create(mem_path, tmp, tmp_size);
	if (fd < 0) {
		errmsg_set(err, err_size, "memory file %s: cannot create a temp file next to it: %s", mem_path,
			   strerror(-fd));
		return fd;
	}
	ret = guest_memory_save(&vm->mem, fd);
	if (ret)
		errmsg_set(err, err_size, "memory file %s: cannot write guest RAM: %s", tmp, strerror(-ret));
	if (!ret) {
		ret = snap_mem_finish(fd, memo, id, false, chunks);
		if (ret)
			errmsg_set(err, err_size, "memory file %s: %s", tmp, strerror(-ret));
	}
	close(fd);
	if (ret)
		unlink(tmp);
	return ret;
}

/*
 * The targets a snapshot renames its temp files over: each a new name or a kiln snapshot file of its
 * kind, never a file the VM uses, a device node, socket, FIFO or directory; and two files, not two names
 * of one (`dir/./d.snap` and `dir/d.snap` before either exists: the same directory and last component).
 */
static int check_targets(const struct vm *vm, const char *state_path, const char *mem_path, char *err,
			 size_t err_size)
{
	struct safe_target ts, tm;
	int ret;

	ret = safe_target_check("state file", state_path, &vm->files, snap_state_fd_is_kiln, &ts, err, err_size);
	ret = ret ?: safe_target_check("memory file", mem_path, &vm->files, snap_mem_fd_is_kiln, &tm, err, err_size);
	if (!ret && safe_target_same(&ts, &tm)) {
		errmsg_set(err, err_size, "the state file and the memory file must be two files (%s, %s)", state_path,
			   mem_path);
		ret = -EINVAL;
	}
	return ret;
}

/*
 * Lock both targets for a save (snap_lock), then finish what a killed save left: roll its memory file
 * forward if the state file is already the new snapshot's (snap_mem_open), and remove the temp files of
 * kiln processes that are gone. Returns 0 with locks[] held, or -errno (-EBUSY: another save) + message.
 */
static int save_lock(const char *state_path, const char *mem_path, int locks[2], char *err, size_t err_size)
{
	struct snap_reader *r = NULL;
	struct snap_header_info hdr;
	struct snap_memo memo;
	char ignored[256];
	int fd;

	locks[0] = snap_lock(state_path, false, err, err_size);
	locks[1] = locks[0] < 0 ? -1 : snap_lock(mem_path, false, err, err_size);
	if (locks[1] < 0) {
		fd = locks[0] < 0 ? locks[0] : locks[1];
		if (locks[0] >= 0)
			close(locks[0]);
		locks[0] = locks[1] = -1;
		return fd;
	}
	if (snap_reader_open(state_path, &r, ignored, sizeof(ignored)) == 0) {
		snap_reader_header(r, &hdr);
		if (GET_CODEC(r, SNAP_ID_MEMO, 0, &snap_memo_codec, &memo, ignored, sizeof(ignored)) == 0) {
			fd = snap_mem_open(mem_path, &memo, hdr.id, false, ignored, sizeof(ignored));
			if (fd >= 0)
				close(fd);
		}
		snap_reader_close(r);
	}
	snap_remove_stale_tmp(state_path);
	snap_remove_stale_tmp(mem_path);
	return 0;
}

int vm_snapshot_save(struct vm *vm, const char *state_path, const char *mem_path, char *err, size_t err_size)
{
	struct snap_mem_chunks chunks = { 0 };
	uint8_t *mcrc = NULL;
	size_t mcrc_len = 0;
	int locks[2] = { -1, -1 };
	size_t tmp_size = strlen(mem_path) + 32;
	char *tmp = malloc(tmp_size), *conf = NULL;
	uint8_t id[SNAP_ID_SIZE];
	struct snap_writer *w = NULL;
	struct snap_memo memo;
	bool mem_written = false;
	int ret;

	if (!tmp)
		return -ENOMEM;
	/* One pause, resume or snapshot at a time: the VM stays paused until this one is written. */
	ret = vm_control_begin(vm);
	if (ret) {
		free(tmp);
		errmsg_set(err, err_size, "the VM is stopping");
		return -EBUSY;
	}
	if (!vm_is_paused(vm)) {
		vm_control_end(vm);
		free(tmp);
		errmsg_set(err, err_size, "the VM must be paused for a snapshot (PATCH /vm {\"state\": \"Paused\"})");
		return -EBUSY;
	}
	ret = check_targets(vm, state_path, mem_path, err, err_size);
	/* Until both files are renamed into place: another process's save would pair the wrong files. */
	ret = ret ?: save_lock(state_path, mem_path, locks, err, err_size);
	if (ret)
		goto out;
	/* vm_pause quiesced the devices already: their backends only need to be on disk. */
	ret = ret ?: vm_devices_sync(&vm->devices, err, err_size);
	if (ret)
		goto out;
	w = snap_writer_open(state_path);
	if (!w) {
		ret = -errno;
		errmsg_set(err, err_size, "state file %s: cannot create a temp file next to it: %s", state_path,
			   strerror(errno));
		goto out;
	}
	snap_writer_id(w, id);
	ret = save_memory(vm, mem_path, id, &memo, &chunks, tmp, tmp_size, err, err_size);
	if (ret)
		goto out;
	mem_written = true;
	conf = vm_config_to_json(vm->cfg);
	if (!conf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = snap_write_section(w, SNAP_ID_CONF, 0, CONF_VERSION, conf, strlen(conf));
	ret = ret ?: PUT_CODEC(w, SNAP_ID_MEMO, 0, &snap_memo_codec, &memo);
	ret = ret ?: snap_mem_chunks_encode(&chunks, &mcrc, &mcrc_len);
	ret = ret ?: snap_write_section_flags(w, SNAP_ID_MCRC, 0, SNAP_MCRC_VERSION, SNAP_SECTION_OPTIONAL, mcrc,
					      mcrc_len);
	if (ret) {
		errmsg_set(err, err_size, "state file %s: %s", state_path, strerror(-ret));
		goto out;
	}
	ret = save_disks(vm->cfg, w, err, err_size);
	ret = ret ?: save_vcpus(vm, w, err, err_size);
	ret = ret ?: save_vm_chips(vm, w, err, err_size);
	if (ret)
		goto out;
	ret = save_devices(vm, w);
	if (ret) {
		errmsg_set(err, err_size, "state file %s: %s", state_path, strerror(-ret));
		goto out;
	}
	/* The state file first, then the RAM: docs/snapshot-format.md "Atomicity". */
	ret = snap_writer_commit(w);
	w = NULL;
	if (ret) {
		errmsg_set(err, err_size, "state file %s: cannot commit: %s", state_path, strerror(-ret));
		goto out;
	}
	ret = snap_mem_commit(tmp, mem_path);
	if (ret)
		errmsg_set(err, err_size, "memory file %s: cannot commit: %s (restore completes it from %s)", mem_path,
			   strerror(-ret), tmp);
	mem_written = false; /* committed, or left for restore to roll forward */
out:
	vm_control_end(vm);
	snap_writer_abort(w);
	if (mem_written)
		unlink(tmp);
	for (int i = 0; i < 2; i++)
		if (locks[i] >= 0)
			close(locks[i]);
	snap_mem_chunks_free(&chunks);
	free(mcrc);
	free(conf);
	free(tmp);
	return ret;
}

/* ---- reading ---- */

int vm_snapshot_open(const char *path, struct snap_reader **out, struct vm_config *cfg, char *err, size_t err_size)
{
	struct snap_reader *r = NULL;
	const char *conf;
	char msg[512];
	size_t len;
	int ret;

	*out = NULL;
	ret = snap_reader_open(path, &r, err, err_size);
	if (ret)
		return ret;
	conf = snap_get_section(r, SNAP_ID_CONF, 0, CONF_VERSION, NULL, &len, err, err_size);
	if (!conf) {
		snap_reader_close(r);
		return -EINVAL;
	}
	ret = vm_config_parse_json(cfg, conf, len, msg, sizeof(msg));
	if (!ret)
		ret = vm_config_check_machine(cfg, msg, sizeof(msg));
	if (ret) {
		errmsg_set(err, err_size, "%s: section CONF/0: %s", path, msg);
		snap_reader_close(r);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	/* The machine comes from the snapshot, not from a kernel: no kernel file is needed or read. */
	*out = r;
	return 0;
}

/*
 * Every drive of the config has its DISK section, and its backing file is the one the snapshot saw
 * (same path, same size) or an override of it (--disk-override: same size): the guest's view of the
 * disk is in the restored RAM.
 */
static int check_disks(const struct vm_config *cfg, struct snap_reader *r, char *err, size_t err_size)
{
	struct snap_disk *d = malloc(sizeof(*d));
	unsigned int n = snap_count_sections(r, SNAP_ID_DISK);
	int ret = 0;

	if (!d)
		return -ENOMEM;
	if (n != cfg->nr_drives) {
		errmsg_set(err, err_size, "the snapshot records %u drives, its config has %u", n, cfg->nr_drives);
		ret = -EINVAL;
	}
	for (unsigned int i = 0; i < cfg->nr_drives && !ret; i++) {
		ret = GET_CODEC(r, SNAP_ID_DISK, i, &snap_disk_codec, d, err, err_size);
		if (ret)
			break;
		if (d->read_only != cfg->drives[i].is_read_only) {
			errmsg_set(err, err_size, "section DISK/%u: drive %s is %s, the config says otherwise", i, d->path,
				   d->read_only ? "read-only" : "writable");
			ret = -EINVAL;
			break;
		}
		ret = snap_disk_check(d, cfg->drives[i].path_on_host, false, err, err_size);
	}
	free(d);
	return ret;
}

int vm_snapshot_disk(struct snap_reader *r, const struct vm_config *cfg, const char *drive_id, struct snap_disk *d,
		     char *err, size_t err_size)
{
	for (unsigned int i = 0; i < cfg->nr_drives; i++)
		if (!strcmp(cfg->drives[i].drive_id, drive_id))
			return GET_CODEC(r, SNAP_ID_DISK, i, &snap_disk_codec, d, err, err_size);
	errmsg_set(err, err_size, "the snapshot has no drive \"%s\"", drive_id);
	return -ENOENT;
}

struct vcpu_restore {
	const struct x86_vcpu_state *st;
	char *what; /* VCPU_WHAT_SIZE bytes */
};

/*
 * A VCPU_REQ_CALL loading the vCPU's registers: before vm_run starts the vCPU threads, so it runs on
 * the restoring thread, which owns the vCPUs then (vcpu_control.h).
 */
static int restore_vcpu(void *owner, void *arg)
{
	struct vcpu *vcpu = owner;
	const struct vcpu_restore *r = arg;

	return x86_vcpu_state_set(vcpu->fd, r->st, r->what, VCPU_WHAT_SIZE);
}

static int restore_vcpus(struct vm *vm, struct snap_reader *r, char *err, size_t err_size)
{
	struct x86_vcpu_state *st = malloc(sizeof(*st));
	unsigned int n = snap_count_sections(r, SNAP_ID_VCPU), pvm = snap_count_sections(r, SNAP_ID_PVM);
	char what[VCPU_WHAT_SIZE];
	int ret = 0;

	if (!st)
		return -ENOMEM;
	if (n != vm->nr_vcpus) {
		errmsg_set(err, err_size, "the snapshot has %u vCPU sections, its config %u vCPUs", n, vm->nr_vcpus);
		ret = -EINVAL;
		goto out;
	}
	if (pvm && !vm->pvm_syscall_trap) {
		errmsg_set(err, err_size, "the snapshot was taken on a PVM host with kiln's SYSCALL trap; this host %s",
			   vm->kvm.pvm ? "cannot set the trap up" : "is not PVM");
		ret = -ENOTSUP;
		goto out;
	}
	if (!pvm && vm->pvm_syscall_trap) {
		errmsg_set(err, err_size, "the snapshot was taken without kiln's PVM SYSCALL trap, which this host needs");
		ret = -ENOTSUP;
		goto out;
	}
	for (unsigned int i = 0; i < vm->nr_vcpus && !ret; i++) {
		struct vcpu *vcpu = vm->vcpus[i];

		ret = GET_CODEC(r, SNAP_ID_VCPU, i, &x86_vcpu_state_codec, st, err, err_size);
		if (!ret && vm->pvm_syscall_trap)
			ret = GET_CODEC(r, SNAP_ID_PVM, i, &pvm_vcpu_state_codec, &vcpu->pvm, err, err_size);
		if (ret)
			break;
		ret = vcpu_control_call(&vcpu->ctl, restore_vcpu, &(struct vcpu_restore){ st, what });
		if (ret)
			errmsg_set(err, err_size, "vCPU %u: %s", i, what);
	}
out:
	free(st);
	return ret;
}

static int restore_chips(struct vm *vm, struct snap_reader *r, uint64_t *clock, char *err, size_t err_size)
{
	struct x86_irqchip_state chip;
	struct kvm_pit_state2 pit;
	int ret;

	ret = GET_CODEC(r, SNAP_ID_IRQC, 0, &x86_irqchip_state_codec, &chip, err, err_size);
	ret = ret ?: GET_CODEC(r, SNAP_ID_PIT, 0, &x86_pit_state_codec, &pit, err, err_size);
	ret = ret ?: GET_CODEC(r, SNAP_ID_CLCK, 0, &x86_clock_state_codec, clock, err, err_size);
	if (ret)
		return ret;
	ret = x86_irqchip_state_set(vm->fd, &chip);
	if (ret) {
		errmsg_set(err, err_size, "KVM_SET_IRQCHIP refused the snapshot's irqchip: %s", strerror(-ret));
		return ret;
	}
	ret = x86_pit_state_set(vm->fd, &pit);
	if (ret)
		errmsg_set(err, err_size, "KVM_SET_PIT2 refused the snapshot's PIT: %s", strerror(-ret));
	return ret;
}

/*
 * The devices without a transport; PCI bus 0 and each function's config space (its BARs decode
 * again); then every virtio device: MSI-X, transport, its own state (vmm/device.h).
 */
static int restore_devices(struct vm *vm, struct snap_reader *r, char *err, size_t err_size)
{
	struct pci_function_state *fn = malloc(sizeof(*fn));
	struct pci_bus_state bus;
	char msg[256];
	int ret;

	if (!fn)
		return -ENOMEM;
	ret = vm_devices_restore(&vm->devices, r, false, err, err_size);
	ret = ret ?: GET_CODEC(r, SNAP_ID_PCI, 0, &pci_bus_state_codec, &bus, err, err_size);
	if (ret)
		goto out;
	ret = pci_bus_restore(vm->pci, &bus, msg, sizeof(msg));
	if (ret) {
		errmsg_set(err, err_size, "%s", msg);
		goto out;
	}
	for (unsigned int slot = 0; slot < PCI_MAX_DEVICES && !ret; slot++) {
		struct pci_device *dev = pci_bus_device(vm->pci, slot);

		if (!dev)
			continue;
		ret = GET_CODEC(r, SNAP_ID_PCIF, slot, &pci_function_state_codec, fn, err, err_size);
		if (!ret) {
			ret = pci_function_restore(dev, fn, msg, sizeof(msg));
			if (ret)
				errmsg_set(err, err_size, "%s", msg);
		}
	}
	ret = ret ?: vm_devices_restore(&vm->devices, r, true, err, err_size);
out:
	free(fn);
	return ret;
}

/* The MEMO section against the RAM `cfg` asks for and the layout this kiln gives it. */
static int check_memo(struct snap_reader *r, const struct vm_config *cfg, struct snap_memo *memo, char *err,
		      size_t err_size)
{
	struct guest_memory layout = { 0 };
	uint64_t size = cfg->mem_mib * MIB;
	int ret = GET_CODEC(r, SNAP_ID_MEMO, 0, &snap_memo_codec, memo, err, err_size);

	if (ret)
		return ret;
	if (memo->mem_size != size || memo->data_size != size) {
		errmsg_set(err, err_size, "the snapshot holds %" PRIu64 " bytes of RAM, its config says %" PRIu64, memo->mem_size,
			   size);
		return -EINVAL;
	}
	guest_memory_layout(&layout, size, X86_MMIO_HOLE_START);
	for (unsigned int i = 0; i < memo->nr_regions; i++) {
		if (memo->nr_regions != layout.nr_regions || memo->regions[i].gpa != layout.regions[i].gpa ||
		    memo->regions[i].size != layout.regions[i].size ||
		    memo->regions[i].file_offset != layout.regions[i].fd_offset) {
			errmsg_set(err, err_size, "the snapshot's RAM layout (region %u at 0x%" PRIx64 ") is not this kiln's", i,
				   memo->regions[i].gpa);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * The memory file checked against MEMO (snap_mem_open, which rolls an interrupted save forward) and,
 * with opts->verify, every chunk against MCRC. Under the state file's lock, shared with other restores
 * and only when a save made the lock file: the stale temp files of dead kiln processes go too.
 */
static int restore_open_memory(struct snap_reader *r, const struct vm_restore_options *opts,
			       const struct snap_memo *memo, const uint8_t id[SNAP_ID_SIZE], char *err, size_t err_size)
{
	struct snap_mem_chunks chunks = { 0 };
	uint32_t version;
	const void *p;
	size_t len;
	char why[512];
	int fd, lock, ret = 0;

	lock = opts->state_path ? snap_lock(opts->state_path, true, why, sizeof(why)) : -ENOENT;
	if (lock == -EBUSY) {
		errmsg_set(err, err_size, "%s", why);
		return lock;
	}
	p = snap_find_section(r, SNAP_ID_MCRC, 0, &version, &len);
	if (p && version <= SNAP_MCRC_VERSION)
		ret = snap_mem_chunks_decode(p, len, memo, &chunks, err, err_size);
	fd = ret ?: snap_mem_open(opts->mem_path, memo, id, opts->verify_full, err, err_size);
	if (fd >= 0 && opts->verify && chunks.crc) {
		ret = snap_mem_verify(fd, opts->mem_path, memo, &chunks, UINT32_MAX, err, err_size);
		if (ret) {
			close(fd);
			fd = ret;
		}
	} else if (fd >= 0 && opts->verify) {
		pr_warn("memory file %s: the snapshot has no chunk checksums (written before kiln had them): --verify "
			"checked only the sampled pages", opts->mem_path);
	}
	if (lock >= 0) {
		snap_remove_stale_tmp(opts->state_path);
		snap_remove_stale_tmp(opts->mem_path);
		close(lock);
	}
	snap_mem_chunks_free(&chunks);
	return fd;
}

int vm_restore(struct vm *vm, struct snap_reader *r, const struct vm_config *cfg, const struct vm_restore_options *opts,
	       uint64_t start_ns, char *err, size_t err_size)
{
	struct snap_header_info hdr;
	struct snap_memo memo;
	uint64_t clock = 0, t_open, t_created;
	char why[256];
	int fd, ret;

	snap_reader_header(r, &hdr);
	ret = check_memo(r, cfg, &memo, err, err_size);
	ret = ret ?: check_disks(cfg, r, err, err_size);
	if (ret)
		return ret;
	fd = restore_open_memory(r, opts, &memo, hdr.id, err, err_size);
	if (fd < 0)
		return fd;
	t_open = time_now_ns();
	ret = vm_create_restored(vm, cfg, start_ns, fd, opts->copy, why, sizeof(why));
	close(fd);
	t_created = time_now_ns();
	if (ret) {
		errmsg_set(err, err_size, "cannot create the VM: %s", why);
		return ret == -EINVAL ? -EIO : ret;
	}
	ret = restore_vcpus(vm, r, err, err_size);
	ret = ret ?: restore_chips(vm, r, &clock, err, err_size);
	ret = ret ?: restore_devices(vm, r, err, err_size);
	ret = ret ?: snap_reader_check_all_used(r, err, err_size);
	if (ret)
		goto fail;
	pr_debug("restore: state file and memory file checked by %.1f ms, VM created in %.1f ms, state loaded in %.1f ms",
		 (double)(t_open - start_ns) / 1e6, (double)(t_created - t_open) / 1e6,
		 (double)(time_now_ns() - t_created) / 1e6);
	if (opts->paused) {
		/*
		 * Paused as vm_pause leaves a VM: the vCPUs (not started yet) wait in their slot before their
		 * first KVM_RUN, the devices are quiesced; vm_resume sets the snapshot's clock.
		 */
		ret = vm_pause(vm);
		if (ret) {
			errmsg_set(err, err_size, "cannot leave the restored VM paused: %s", strerror(-ret));
			goto fail;
		}
		vm->paused_clock.clock = clock;
	} else {
		struct kvm_clock_data data = { .clock = clock };

		if (clock && ioctl(vm->fd, KVM_SET_CLOCK, &data) < 0)
			pr_warn("KVM_SET_CLOCK: %s: the guest clock jumps", strerror(errno));
	}
	return 0;
fail:
	vm_destroy(vm);
	return ret;
}

/* ---- DISK ---- */

int snap_disk_record(struct snap_disk *d, const char *path, bool read_only)
{
	struct stat st;

	memset(d, 0, sizeof(*d));
	if (strlen(path) > SNAP_DISK_MAX_PATH)
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0)
		return -errno;
	d->path_len = (uint32_t)snprintf(d->path, sizeof(d->path), "%s", path);
	d->size = (uint64_t)st.st_size;
	d->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
	d->read_only = read_only;
	return 0;
}

/* What a table cannot say: the path is a C string, path_len bytes before its NUL. */
static int snap_disk_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct snap_disk *d = p;

	if (memchr(d->path, 0, d->path_len)) {
		errmsg_set(err, err_size, "disk record: a NUL byte in the path");
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field snap_disk_fields[] = {
	CODEC_RANGE(struct snap_disk, path_len, 4, 1, 1, SNAP_DISK_MAX_PATH),
	CODEC_UINT_VARRAY(struct snap_disk, path, path_len, 1, 1),
	CODEC_UINT(struct snap_disk, size, 8, 1),
	CODEC_UINT(struct snap_disk, mtime_ns, 8, 1),
	CODEC_BOOL(struct snap_disk, read_only, 1),
};

const struct codec_table snap_disk_codec =
	CODEC_TABLE(struct snap_disk, "disk record", 1, 1, snap_disk_fields, snap_disk_state_check);

int snap_disk_check(const struct snap_disk *d, const char *path, bool unchanged, char *err, size_t err_size)
{
	bool other = path && strcmp(path, d->path);
	struct snap_disk now;
	int ret = snap_disk_record(&now, other ? path : d->path, d->read_only);

	if (ret) {
		errmsg_set(err, err_size, "disk %s: %s", other ? path : d->path, strerror(-ret));
		return ret;
	}
	if (other && now.size != d->size) {
		errmsg_set(err, err_size, "disk override %s is %" PRIu64 " bytes, the snapshot's disk %s was %" PRIu64
			   " bytes (an override must be the same size)", path, now.size, d->path, d->size);
		return -EINVAL;
	}
	if (now.size != d->size) {
		errmsg_set(err, err_size, "disk %s is %" PRIu64 " bytes, the snapshot's was %" PRIu64, d->path, now.size,
			   d->size);
		return -EINVAL;
	}
	if (other || now.mtime_ns == d->mtime_ns)
		return 0;
	if (unchanged) {
		errmsg_set(err, err_size, "disk %s changed since the snapshot (modified at %" PRIu64 ".%09" PRIu64
			   " s, the snapshot saw %" PRIu64 ".%09" PRIu64 " s): a copy would not hold what the snapshot's guest "
			   "saw", d->path, now.mtime_ns / 1000000000u, now.mtime_ns % 1000000000u,
			   d->mtime_ns / 1000000000u, d->mtime_ns % 1000000000u);
		return -EINVAL;
	}
	pr_warn("disk %s changed since the snapshot (modification time): the guest's cached view of it may be "
		"stale", d->path);
	return 0;
}
