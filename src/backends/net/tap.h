/* SPDX-License-Identifier: MIT */
/*
 * A Linux TAP device as a packet backend for virtio-net (Linux Documentation/networking/tuntap.rst).
 *
 * kiln opens /dev/net/tun and attaches to the named interface with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR: every packet read or written is a complete Ethernet frame preceded by a virtio-net
 * header of TAP_VNET_HDR_SIZE bytes (TUNSETVNETHDRSZ), the virtio 1.x struct virtio_net_hdr_v1
 * (virtio 1.2 s5.1.6). The kernel fills the first 10 bytes on read and leaves num_buffers alone; on
 * write it reads the first 10 bytes and skips num_buffers.
 *
 * The normal case is an existing TAP that the host's administrator created and configured
 * (`ip tuntap add dev tap0 mode tap user kiln`, address, up, bridge or routes). When the interface
 * does not exist and kiln has CAP_NET_ADMIN, TUNSETIFF creates it, non-persistent, down and
 * without an address: it disappears when kiln exits and carries nothing until someone configures it.
 *
 * Offloads: TUNSETOFFLOAD tells the TAP which offloads the reader (the guest) accepts on packets the
 * TAP hands over (checksum left partial, TSO, UFO). tap_open probes which flags this kernel's TAP
 * accepts, leaves none set, and records them in `supported`; virtio-net offers the guest only those.
 * In the other direction the TAP accepts whatever GSO and partial-checksum packets the header
 * describes (the kernel validates them): nothing to set.
 *
 * The fd is non-blocking and close-on-exec. TUNSETOFFLOAD applies to the interface, not to the fd:
 * a persistent TAP keeps the last setting after kiln exits (harmless: the next reader sets its own).
 */
#ifndef KILN_BACKENDS_NET_TAP_H
#define KILN_BACKENDS_NET_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>

/* struct virtio_net_hdr_v1 (virtio 1.2 s5.1.6): what precedes each frame on the TAP fd. */
#define TAP_VNET_HDR_SIZE 12

struct tap {
	int fd;                  /* -1 when closed */
	char name[IFNAMSIZ];     /* interface name, for messages */
	bool is_tap;             /* a real TAP: ioctls apply (false for an fd handed in by tests) */
	unsigned int supported;  /* TUN_F_* flags TUNSETOFFLOAD accepts on this TAP */
	unsigned int offloads;   /* TUN_F_* flags set now */
};

/*
 * Attach to (or create, see above) TAP interface `name` (1..IFNAMSIZ-1 bytes). Returns 0, or -errno
 * with a message naming the interface in `err` (e.g. "tap0: no such device and cannot create it:
 * Operation not permitted", "tap0: is a TUN device, not a TAP"). The TAP's offloads are all off.
 */
int tap_open(struct tap *tap, const char *name, char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Use `fd` as if it were a TAP with a TAP_VNET_HDR_SIZE header whose offloads `supported` are
 * accepted (tests: one end of a SOCK_SEQPACKET socketpair). No ioctl is ever made on it;
 * tap_set_offload only records the flags. `tap` takes ownership of `fd`.
 */
void tap_attach_fd(struct tap *tap, int fd, const char *name, unsigned int supported);

/*
 * Set the TAP's offloads (TUN_F_* flags, a subset of `supported`: other bits are an error). TSO and
 * UFO flags need TUN_F_CSUM (the kernel refuses them alone). Returns 0, -EINVAL, or -errno of
 * TUNSETOFFLOAD.
 */
int tap_set_offload(struct tap *tap, unsigned int flags) __attribute__((warn_unused_result));

/* Close the fd (idempotent). */
void tap_close(struct tap *tap);

#endif
