// SPDX-License-Identifier: MIT
/*
 * The floor for "exec to the guest's first serial byte" on this host (issue 11): the least a VMM can do
 * before a guest writes to its UART. Opens /dev/kvm, creates a VM with one 64 KiB memslot and one vCPU in
 * real mode at 0x1000, whose code is `mov $'!', %al; mov $0x3f8, %dx; out %al, (%dx); hlt`, and runs it
 * until that `out`, writing the byte to stdout. bench/lean.py times it as it times kiln. Not installed.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM (64u << 10)
#define CODE_GPA 0x1000u

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(void)
{
	static const unsigned char code[] = { 0xb0, '!', 0xba, 0xf8, 0x03, 0xee, 0xf4 };
	struct kvm_userspace_memory_region slot = { .memory_size = GUEST_MEM };
	struct kvm_regs regs = { .rip = CODE_GPA, .rflags = 2 };
	struct kvm_sregs sregs;
	struct kvm_run *run;
	int kvm, vm, vcpu, run_size;
	unsigned char *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	memcpy(mem + CODE_GPA, code, sizeof(code));
	slot.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || run_size <= 0)
		return fail("KVM_CREATE_VCPU");
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_SREGS/REGS");
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN");
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x3f8 && run->io.direction == KVM_EXIT_IO_OUT) {
			if (write(STDOUT_FILENO, (char *)run + run->io.data_offset, 1) != 1)
				return fail("write");
			return 0;
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "floor: unexpected exit %u\n", run->exit_reason);
			return 1;
		}
	}
}
