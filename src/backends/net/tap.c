// SPDX-License-Identifier: MIT
/* TAP backend: the model is in tap.h. */
#include "backends/net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/log.h"

#define TUN_PATH "/dev/net/tun"

/* Every offload flag kiln knows how to map to virtio-net features (virtio 1.2 s5.1.3). */
#define TAP_ALL_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO)

/*
 * Which TUN_F_* flags this TAP accepts, by trial: TUN_F_CSUM alone, then each other flag beside it
 * (the kernel rejects the set when it does not know a bit, and rejects TSO/UFO without CSUM).
 * TUNGETFEATURES reports IFF_* flags only, not offloads, so trying is the only way. Ends with none set.
 */
static unsigned int probe_offloads(int fd)
{
	static const unsigned int extra[] = { TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO };
	unsigned int ok = 0;

	if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) == 0) {
		ok = TUN_F_CSUM;
		for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
			unsigned int want = TUN_F_CSUM | extra[i];

			/* TSO_ECN is a modifier of TSO: try it with TSO4 when that works. */
			if (extra[i] == TUN_F_TSO_ECN)
				want |= ok & (TUN_F_TSO4 | TUN_F_TSO6);
			if (ioctl(fd, TUNSETOFFLOAD, want) == 0)
				ok |= extra[i];
		}
	}
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		pr_warn("TAP: cannot clear offloads: %s", strerror(errno));
	return ok;
}

static int setiff_error(const char *name, int err, char *msg, size_t msg_size)
{
	bool exists = if_nametoindex(name) != 0;

	switch (err) {
	case EPERM:
		if (!exists)
			errmsg_set(msg, msg_size, "%s: no such device and cannot create it: %s", name, strerror(err));
		else
			errmsg_set(msg, msg_size,
				   "%s: cannot attach: %s (the TAP belongs to another user or group: "
				   "`ip tuntap add dev %s mode tap user USER` gives it to kiln's user)",
				   name, strerror(err), name);
		break;
	case EBUSY:
		errmsg_set(msg, msg_size, "%s: busy: another process has this single-queue TAP open", name);
		break;
	case EINVAL:
		if (exists) {
			errmsg_set(msg, msg_size,
				   "%s: cannot attach: %s (not a TAP: a TUN device, a multi-queue TAP, or another kind "
				   "of interface)",
				   name, strerror(err));
			break;
		}
		/* fall through */
	default:
		errmsg_set(msg, msg_size, "%s: %s: %s", name, exists ? "cannot attach" : "cannot create it", strerror(err));
		break;
	}
	return -err;
}

int tap_open(struct tap *tap, const char *name, char *err, size_t err_size)
{
	struct ifreq ifr;
	unsigned int features = 0;
	int hdr_size = TAP_VNET_HDR_SIZE;
	int fd, ret;
	size_t len = name ? strlen(name) : 0;

	memset(tap, 0, sizeof(*tap));
	tap->fd = -1;
	if (len == 0 || len >= IFNAMSIZ || strchr(name, '/') || strchr(name, ' ')) {
		errmsg_set(err, err_size, "\"%s\": not a valid interface name (1 to %d bytes, no '/' or space)",
			   name ? name : "", IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: cannot open %s: %s%s", name, TUN_PATH, strerror(-ret),
			   ret == -ENOENT ? " (no TUN/TAP driver: modprobe tun)" : "");
		return ret;
	}
	if (ioctl(fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		errmsg_set(err, err_size, "%s: the kernel's TUN/TAP driver lacks IFF_VNET_HDR", name);
		ret = -EOPNOTSUPP;
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, len);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = setiff_error(name, errno, err, err_size);
		goto fail;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_size) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: cannot set the %d-byte virtio-net header: %s", name, hdr_size,
			   strerror(-ret));
		goto fail;
	}
	tap->fd = fd;
	memcpy(tap->name, ifr.ifr_name, IFNAMSIZ);
	tap->name[IFNAMSIZ - 1] = '\0';
	tap->is_tap = true;
	tap->supported = probe_offloads(fd);
	tap->offloads = 0;
	return 0;
fail:
	close(fd);
	return ret;
}

void tap_attach_fd(struct tap *tap, int fd, const char *name, unsigned int supported)
{
	memset(tap, 0, sizeof(*tap));
	tap->fd = fd;
	snprintf(tap->name, sizeof(tap->name), "%s", name ? name : "fd");
	tap->is_tap = false;
	tap->supported = supported & TAP_ALL_OFFLOADS;
}

int tap_set_offload(struct tap *tap, unsigned int flags)
{
	if (flags & ~tap->supported)
		return -EINVAL;
	if ((flags & ~TUN_F_CSUM) && !(flags & TUN_F_CSUM))
		return -EINVAL;
	if (tap->is_tap && ioctl(tap->fd, TUNSETOFFLOAD, flags) < 0)
		return -errno;
	tap->offloads = flags;
	return 0;
}

void tap_close(struct tap *tap)
{
	if (tap->fd >= 0)
		close(tap->fd);
	tap->fd = -1;
}
