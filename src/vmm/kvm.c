// SPDX-License-Identifier: MIT
#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	{ KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
};

bool kvm_host_is_pvm(void)
{
	struct stat st;

	return stat("/sys/module/kvm_pvm", &st) == 0;
}

int kvm_host_open(struct kvm_host *kvm, char *err, size_t err_size)
{
	int version, size, ret;
	size_t i;

	memset(kvm, 0, sizeof(*kvm));
	kvm->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "cannot open /dev/kvm: %s%s", strerror(errno),
		       errno == ENOENT ? " (KVM is not available on this host: load kvm_intel/kvm_amd, or run on a host with virtualization)"
		       : errno == EACCES ? " (add yourself to the kvm group, or run as root)" : "");
		return ret;
	}
	version = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		errmsg_set(err, err_size, "/dev/kvm has API version %d, kiln needs %d", version, KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err;
	}
	for (i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(kvm->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			errmsg_set(err, err_size, "/dev/kvm lacks %s, which kiln needs", required_caps[i].name);
			ret = -ENOTSUP;
			goto err;
		}
	}
	size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		errmsg_set(err, err_size, "KVM_GET_VCPU_MMAP_SIZE returned %d", size);
		ret = -ENOTSUP;
		goto err;
	}
	kvm->run_size = (size_t)size;
	kvm->max_vcpus = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = 4; /* KVM's documented minimum when the capability is absent */
	kvm->pvm = kvm_host_is_pvm();
	return 0;
err:
	close(kvm->fd);
	kvm->fd = -1;
	return ret;
}

void kvm_host_close(struct kvm_host *kvm)
{
	if (kvm->fd >= 0)
		close(kvm->fd);
	kvm->fd = -1;
}
