// SPDX-License-Identifier: MIT
/*
 * virtio-hostile: a test guest that attacks kiln's virtio devices (virtio 1.2, PCI transport s4.1).
 *
 * It finds virtio-rng (and virtio-blk, when present) on PCI bus 0 through ECAM, drives virtio-rng correctly
 * once, then runs a list of attacks against it. Each attack prints
 *     ATTACK <name>: status=0x.. needs_reset=<0|1> [<what>=0x.. ...]
 * with the device status the guest read afterwards; the guest then resets the device (status 0), sets it up
 * again and reads random bytes through it, and prints "RECOVER <name>: ok" (or "FAILED ..."). Between
 * attacks, while virtio-rng may still be broken, it reads sector 0 of virtio-blk and compares it with the
 * first read: the second device must keep working. Which attacks must set DEVICE_NEEDS_RESET is the test's
 * knowledge (tests/integration/test_virtio_hostile.py), not the guest's.
 *
 * Split between privilege levels (PVM hosts emulate guest kernel mode at about a million instructions per
 * second, and user mode can do neither port I/O nor system calls): kernel mode (CPL0) does PCI discovery,
 * the ordinary device initialisation (s3.1.1) and the UART; everything that touches the rings or the
 * notify registers, and every hostile register access, runs in user mode (CPL3), so MMIO exits come from
 * user mode. kiln's identity map of the first 4 GiB is user-accessible, so BARs and rings need no mapping.
 *
 * Command line: "ecam=0x..." overrides the ECAM base (kiln: 0xe0000000; QEMU q35: 0xb0000000).
 */
#include "driver.h"

/* ---- kernel traps ---- */

struct trap_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

void kernel_trap(struct trap_frame *f)
{
	printf_uart("virtio-hostile: exception %lu in kernel mode at rip %lx, error %lx\n", f->vector, f->rip,
		    f->error_code);
	guest_exit();
}

static struct vring_mem rng_mem, blk_mem;

/* ---- user mode calls ---- */

static uint8_t user_stack[16384] __attribute__((aligned(16)));

static struct {
	long (*fn)(void *);
	void *arg;
} user_call;

static void __attribute__((used)) user_trampoline(void)
{
	long r = user_call.fn(user_call.arg);

	__asm__ volatile("int3" : : "a"(r));
	for (;;)
		;
}

/* Run fn(arg) at CPL3 and return its result. A fault in user mode ends the VM: a bug in this guest. */
static long at_user(long (*fn)(void *), void *arg)
{
	struct user_result res;

	user_call.fn = fn;
	user_call.arg = arg;
	run_user(user_trampoline, user_stack + sizeof(user_stack), &res);
	if (res.vector != USER_EXIT_TRAP || res.cs != 0x33) {
		printf_uart("virtio-hostile: user mode fault: vector %u at rip %lx, error %lx\n", res.vector, res.rip,
			    res.error_code);
		guest_exit();
	}
	return (long)res.rax;
}

/* ---- the devices' own requests (user mode) ---- */

static bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	while (n--)
		if (*a++ != *b++)
			return false;
	return true;
}

struct rng_read {
	struct vdev *d;
	uint32_t len;       /* bytes asked */
	uint8_t *out;       /* copied here */
};

/* One virtio-rng request (s5.4.6): a single device-writable buffer. 0, or a negative reason. */
static long user_rng_read(void *arg)
{
	struct rng_read *r = arg;
	struct vdev *d = r->d;
	struct vring_mem *m = d->mem;
	uint16_t want = (uint16_t)(m->used.idx + 1);
	uint16_t slot = m->used.idx % d->qsize;
	bool timed_out;
	uint8_t status;
	unsigned int nonzero = 0;

	memset(m->buf, 0, r->len);
	m->desc[0] = (struct vdesc){ (uint64_t)m->buf, r->len, DESC_F_WRITE, 0 };
	vdev_kick(d, 0);
	status = vdev_settle(d, want, &timed_out);
	if (timed_out)
		return -1;
	if (status & S_NEEDS_RESET)
		return -2;
	if (m->used.ring[slot].id != 0 || m->used.ring[slot].len != r->len)
		return -3;
	for (uint32_t i = 0; i < r->len; i++) {
		nonzero |= m->buf[i];
		r->out[i] = m->buf[i];
	}
	return nonzero ? 0 : -4; /* all zero: nothing was written */
}

static const char *const rng_errors[] = { "ok", "timed out", "device needs reset", "wrong used element",
					  "buffer left zero" };

struct blk_req {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static uint8_t blk_sector0[512];
static unsigned int blk_reads, blk_matches;

/* Read sector 0 of virtio-blk (s5.2.6): header, 512-byte data buffer, status byte. 0 or negative. */
static long user_blk_read(void *arg)
{
	struct vdev *d = arg;
	struct vring_mem *m = d->mem;
	struct blk_req *hdr = (struct blk_req *)(void *)m->buf;
	uint8_t *data = m->buf + 512, *st = m->buf + 1024;
	uint16_t want = (uint16_t)(m->used.idx + 1);
	bool timed_out;
	uint8_t status;

	*hdr = (struct blk_req){ .type = 0 /* VIRTIO_BLK_T_IN */, .sector = 0 };
	memset(data, 0xee, 512);
	*st = 0xff;
	m->desc[0] = (struct vdesc){ (uint64_t)hdr, sizeof(*hdr), DESC_F_NEXT, 1 };
	m->desc[1] = (struct vdesc){ (uint64_t)data, 512, DESC_F_WRITE | DESC_F_NEXT, 2 };
	m->desc[2] = (struct vdesc){ (uint64_t)st, 1, DESC_F_WRITE, 0 };
	vdev_kick(d, 0);
	status = vdev_settle(d, want, &timed_out);
	if (timed_out)
		return -1;
	if (status & S_NEEDS_RESET)
		return -2;
	if (*st != 0)
		return -3;
	if (blk_reads++ == 0)
		memcpy(blk_sector0, data, 512);
	if (same_bytes(data, blk_sector0, 512))
		blk_matches++;
	return 0;
}

/* ---- the attacks (user mode) ---- */

/* End of the RAM region the guest runs in (bytes), from the e820 map or the PVH memory map. */
static uint64_t ram_end;

struct attack_ctx {
	struct vdev *d;
	bool wait;          /* the device works asynchronously on what the attack queued */
	uint16_t wait_used; /* used->idx that means it has returned every buffer the attack queued */
	bool timed_out;
	uint8_t status;
	unsigned int nr_vals;
	struct {
		const char *name;
		uint64_t v;
	} vals[8];
};

static void note(struct attack_ctx *c, const char *name, uint64_t v)
{
	if (c->nr_vals < sizeof(c->vals) / sizeof(c->vals[0]))
		c->vals[c->nr_vals++] = (typeof(c->vals[0])){ name, v };
}

/* Queue chain `head` and wait for the device to either return it or declare itself broken. */
static void post(struct attack_ctx *c, uint16_t head)
{
	c->wait = true;
	c->wait_used = (uint16_t)(c->d->mem->used.idx + 1);
	vdev_kick(c->d, head);
}

/* Is a good request still served, without a reset? For attacks the device should shrug off. */
static void still_works(struct attack_ctx *c)
{
	uint8_t out[16];
	struct rng_read r = { c->d, sizeof(out), out };

	note(c, "still_works", user_rng_read(&r) == 0);
}

static struct vdesc *D(struct attack_ctx *c)
{
	return c->d->mem->desc;
}

static uint64_t BUF(struct attack_ctx *c)
{
	return (uint64_t)c->d->mem->buf;
}

/* s2.7.5.2: a chain that loops; here a descriptor whose next is itself. */
static void a_desc_loop(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE | DESC_F_NEXT, 0 };
	post(c, 0);
}

/* s2.7.5.3.1 "A driver MUST NOT create a descriptor chain longer than the Queue Size": every descriptor
 * chained to the next and the last back to the first, so the walk goes on past Queue Size. */
static void a_chain_over_queue_size(struct attack_ctx *c)
{
	for (uint16_t i = 0; i < c->d->qsize; i++)
		D(c)[i] = (struct vdesc){ BUF(c) + i, 1, DESC_F_WRITE | DESC_F_NEXT, (uint16_t)((i + 1) % c->d->qsize) };
	post(c, 0);
}

/* Control: a chain of exactly Queue Size descriptors is allowed. */
static void a_chain_queue_size(struct attack_ctx *c)
{
	for (uint16_t i = 0; i < c->d->qsize; i++)
		D(c)[i] = (struct vdesc){ BUF(c) + i, 1, DESC_F_WRITE | DESC_F_NEXT, (uint16_t)(i + 1) };
	D(c)[c->d->qsize - 1].flags = DESC_F_WRITE;
	post(c, 0);
}

static void a_addr_outside_ram(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ ram_end + (16u << 20), 16, DESC_F_WRITE, 0 };
	post(c, 0);
}

/* A buffer on the device's own registers: the device must not DMA into MMIO. */
static void a_addr_in_mmio_hole(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ c->d->bar0, 64, DESC_F_WRITE, 0 };
	post(c, 0);
}

static void a_addr_wraps(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ 0xfffffffffffff800ull, 0x1000, DESC_F_WRITE, 0 };
	post(c, 0);
}

static void a_len_past_ram_end(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ ram_end - 0x800, 0x1000, DESC_F_WRITE, 0 };
	post(c, 0);
}

/* Control: a buffer that ends exactly at the end of RAM. */
static void a_buffer_at_ram_end(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ ram_end - 16, 16, DESC_F_WRITE, 0 };
	post(c, 0);
}

/* A valid chain of `n` one-byte writable descriptors in the indirect table. */
static void fill_itable(struct attack_ctx *c, unsigned int n)
{
	struct vdesc *t = c->d->mem->itable;

	for (unsigned int i = 0; i < n; i++)
		t[i] = (struct vdesc){ BUF(c) + i, 1, DESC_F_WRITE | (i + 1 < n ? DESC_F_NEXT : 0), (uint16_t)(i + 1) };
}

static void post_indirect(struct attack_ctx *c, uint32_t len, uint16_t extra_flags)
{
	D(c)[0] = (struct vdesc){ (uint64_t)c->d->mem->itable, len, DESC_F_INDIRECT | extra_flags, 1 };
	D(c)[1] = (struct vdesc){ BUF(c) + 512, 16, DESC_F_WRITE, 0 };
	post(c, 0);
}

/* Control: an indirect table of exactly Queue Size descriptors (s2.7.5.3.1). */
static void a_indirect_queue_size(struct attack_ctx *c)
{
	fill_itable(c, c->d->qsize);
	post_indirect(c, c->d->qsize * 16u, 0);
}

/* s2.7.5.3: the table length must be a multiple of 16. */
static void a_indirect_bad_len(struct attack_ctx *c)
{
	fill_itable(c, 2);
	post_indirect(c, 24, 0);
}

static void a_indirect_too_long(struct attack_ctx *c)
{
	fill_itable(c, c->d->qsize + 1u);
	post_indirect(c, (c->d->qsize + 1u) * 16u, 0);
}

/* s2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor". */
static void a_indirect_nested(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	m->itable[0] = (struct vdesc){ (uint64_t)m->itable2, 16, DESC_F_INDIRECT, 0 };
	m->itable2[0] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE, 0 };
	post_indirect(c, 16, 0);
}

/* s2.7.5.3.1: INDIRECT and NEXT together. */
static void a_indirect_with_next(struct attack_ctx *c)
{
	fill_itable(c, 1);
	post_indirect(c, 16, DESC_F_NEXT);
}

static void a_indirect_loop(struct attack_ctx *c)
{
	struct vdesc *t = c->d->mem->itable;

	t[0] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE | DESC_F_NEXT, 1 };
	t[1] = (struct vdesc){ BUF(c) + 16, 16, DESC_F_WRITE | DESC_F_NEXT, 0 };
	post_indirect(c, 32, 0);
}

/* s2.7.5.3.1: INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated (this attack's device lacks it). */
static void a_indirect_without_feature(struct attack_ctx *c)
{
	fill_itable(c, 1);
	post_indirect(c, 16, 0);
}

/* s2.7.4.2: device-writable descriptors must come after the device-readable ones. */
static void a_write_then_read(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE | DESC_F_NEXT, 1 };
	D(c)[1] = (struct vdesc){ BUF(c) + 16, 16, 0, 0 };
	post(c, 0);
}

/* Make `n` one-descriptor buffers available at once, avail->idx = n. */
static void post_many(struct attack_ctx *c, uint16_t n)
{
	struct vring_mem *m = c->d->mem;

	for (uint16_t i = 0; i < c->d->qsize; i++) {
		D(c)[i] = (struct vdesc){ BUF(c) + 16u * i, 16, DESC_F_WRITE, 0 };
		m->avail.ring[i] = i;
	}
	barrier();
	m->avail.idx = n;
	mb();
	c->wait = true;
	c->wait_used = n;
	wr16(c->d->notify_addr, 0);
}

/* s2.7: at most Queue Size buffers outstanding; avail->idx runs Queue Size + 1 ahead. */
static void a_avail_idx_ahead(struct attack_ctx *c)
{
	post_many(c, (uint16_t)(c->d->qsize + 1));
}

/* Control: exactly Queue Size buffers outstanding. */
static void a_avail_idx_full(struct attack_ctx *c)
{
	post_many(c, c->d->qsize);
}

/* s2.7.6: a ring entry naming descriptor Queue Size (one past the table). */
static void a_head_out_of_range(struct attack_ctx *c)
{
	D(c)[0] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE, 0 };
	post(c, c->d->qsize);
}

/* s2.7.5: zero-length descriptors are not forbidden. One at an address that is not RAM (nothing is
 * accessed) leading a 16-byte buffer, then one alone. */
static void a_zero_len_desc(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;
	uint16_t first = m->used.idx;

	D(c)[0] = (struct vdesc){ ram_end + (16u << 20), 0, DESC_F_WRITE | DESC_F_NEXT, 1 };
	D(c)[1] = (struct vdesc){ BUF(c), 16, DESC_F_WRITE, 0 };
	D(c)[2] = (struct vdesc){ BUF(c) + 64, 0, DESC_F_WRITE, 0 };
	vdev_make_available(c->d, 0);
	vdev_make_available(c->d, 2);
	vdev_notify(c->d);
	c->wait = true;
	c->wait_used = (uint16_t)(first + 2);
	vdev_settle(c->d, c->wait_used, &c->timed_out);
	note(c, "used_len_1", m->used.ring[first % c->d->qsize].len);
	note(c, "used_len_2", m->used.ring[(first + 1) % c->d->qsize].len);
}

/* s4.1.5.2: notifications for queues that do not exist (rng has one), with several widths. */
static void a_notify_bad_queue(struct attack_ctx *c)
{
	struct vdev *d = c->d;

	wr16(d->notify + d->notify_mult * 1u, 1);
	wr16(d->notify + d->notify_mult * 255u, 255);
	wr32(d->notify + d->notify_mult * 1000u, 1000); /* past the notify structure, still in the BAR */
	wr8(d->notify + d->notify_mult * 1u, 1);
	note(c, "status_after", vdev_status(d));
	still_works(c);
}

/* s4.1.3.1: 8-byte accesses to the common configuration (64-bit fields are two 32-bit halves). */
static void a_wide_access(struct attack_ctx *c)
{
	struct vdev *d = c->d;
	struct vring_mem *m = d->mem;
	uint64_t desc;

	vdev_reset(d);
	vdev_negotiate(d, F_VERSION_1, false);
	note(c, "read64_features", rd64(d->common + C_DF));
	vdev_setup_queue(d, (uint64_t)m->desc, (uint64_t)&m->avail, (uint64_t)&m->used);
	/* Not enabled yet: a 64-bit write would move the descriptor table if it were honoured. */
	wr64(d->common + C_Q_DESC, 0x00000000dead0000ull);
	desc = rd32(d->common + C_Q_DESC) | (uint64_t)rd32(d->common + C_Q_DESC + 4) << 32;
	note(c, "desc_kept", desc == (uint64_t)m->desc);
	note(c, "read64_desc", rd64(d->common + C_Q_DESC));
	wr64(d->common + C_STATUS - 4, 0); /* would clear the status (a reset) if split into bytes */
	note(c, "status_after", vdev_status(d));
	wr16(d->common + C_Q_ENABLE, 1);
	vdev_set_status(d, S_DRIVER_OK);
	wr64(d->notify_addr, 0); /* a notify is 1 to 4 bytes (s4.1.5.2) */
	still_works(c);
}

/* s4.1.3.1: accesses that straddle registers, at offsets between fields, of the wrong width, on a live device. */
static void a_misaligned_access(struct attack_ctx *c)
{
	struct vdev *d = c->d;

	wr16(d->common + C_STATUS - 1, 0); /* num_queues' high byte and device_status: would reset */
	wr32(d->common + C_CFGGEN, 0);     /* config_generation, queue_select, half of queue_size */
	wr32(d->common + C_STATUS - 1, 0);
	note(c, "read32_at_0x13", rd32(d->common + C_STATUS - 1));
	note(c, "read16_isr", rd16(d->isr)); /* the ISR is one byte, read-to-clear */
	wr16(d->notify_addr + 1, 0);         /* a notify at an odd address */
	note(c, "status_after", vdev_status(d));
	still_works(c);
}

/* s2.7 "Queue Size value is always a power of 2" (split queues): writes the device cannot honour. */
static void a_queue_size_not_pow2(struct attack_ctx *c)
{
	static const struct {
		const char *name;
		uint16_t v;
	} bad[] = { { "after_3", 3 }, { "after_0", 0 }, { "after_ffff", 0xffff }, { "after_24", 24 } };
	struct vdev *d = c->d;
	uint16_t max;

	vdev_reset(d);
	vdev_negotiate(d, F_VERSION_1, false);
	wr16(d->common + C_Q_SELECT, 0);
	max = rd16(d->common + C_Q_SIZE);
	note(c, "max", max);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr16(d->common + C_Q_SIZE, bad[i].v);
		note(c, bad[i].name, rd16(d->common + C_Q_SIZE));
	}
	if (max <= 0x4000) {
		wr16(d->common + C_Q_SIZE, (uint16_t)(max * 2));
		note(c, "after_2max", rd16(d->common + C_Q_SIZE));
	}
	vdev_setup_own_queue(d);
	vdev_set_status(d, S_DRIVER_OK);
	still_works(c);
}

/* s2.2, s3.1.1: features the device did not offer; the device refuses FEATURES_OK rather than breaking. */
static void a_features_not_offered(struct attack_ctx *c)
{
	struct vdev *d = c->d;

	vdev_reset(d);
	note(c, "features_ok_access_platform",
	     !!(vdev_negotiate(d, F_VERSION_1 | F_ACCESS_PLATFORM, false) & S_FEATURES_OK));
	vdev_reset(d);
	vdev_set_status(d, S_ACKNOWLEDGE | S_DRIVER);
	wr32(d->common + C_GFSELECT, 2); /* feature bits 64-95: none exist */
	wr32(d->common + C_GF, 1);
	note(c, "features_ok_word2", !!(vdev_negotiate(d, F_VERSION_1, false) & S_FEATURES_OK));
}

/* s3.1.1: DRIVER_OK before (without) FEATURES_OK. */
static void a_driver_ok_without_features_ok(struct attack_ctx *c)
{
	struct vdev *d = c->d;

	vdev_reset(d);
	vdev_negotiate(d, F_VERSION_1, true);
	vdev_setup_own_queue(d);
	vdev_set_status(d, S_DRIVER_OK);
}

/* DRIVER_OK with queue 0's areas where the driver says (s2.7.2 alignment, and they must be memory). */
static void rings_at(struct attack_ctx *c, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vdev *d = c->d;

	vdev_reset(d);
	vdev_negotiate(d, F_VERSION_1, false);
	vdev_setup_queue(d, desc, avail, used);
	wr16(d->common + C_Q_ENABLE, 1);
	vdev_set_status(d, S_DRIVER_OK);
}

static void a_rings_outside_ram(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	rings_at(c, ram_end + (16u << 20), (uint64_t)&m->avail, (uint64_t)&m->used);
}

/* The used ring on the device's own registers. */
static void a_ring_in_mmio_hole(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	rings_at(c, (uint64_t)m->desc, (uint64_t)&m->avail, c->d->bar0);
}

static void a_ring_past_ram_end(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	rings_at(c, (uint64_t)m->desc, (uint64_t)&m->avail, ram_end - 64); /* the used ring needs 4 + 8 * 16 */
}

static void a_ring_wraps(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	rings_at(c, (uint64_t)m->desc, 0xfffffffffffffffeull, (uint64_t)&m->used);
}

static void a_ring_misaligned(struct attack_ctx *c)
{
	struct vring_mem *m = c->d->mem;

	rings_at(c, (uint64_t)m->desc + 8, (uint64_t)&m->avail, (uint64_t)&m->used);
}

/* ---- the attack table ---- */

#define A_INDIRECT 1u /* the device is set up with VIRTIO_F_RING_INDIRECT_DESC first */
#define A_RAW 2u      /* the attack sets the device up itself, from reset */

struct attack {
	const char *name;
	unsigned int flags;
	void (*run)(struct attack_ctx *c);
};

/* Controls (which must not break the device) sit next to the attacks they bound. */
static const struct attack attacks[] = {
	/* Registers (s4.1.3, s4.1.4.3): the device drops or refuses what it cannot honour, and keeps working. */
	{ "features_not_offered", A_RAW, a_features_not_offered },
	{ "queue_size_not_pow2", A_RAW, a_queue_size_not_pow2 },
	{ "wide_access", A_RAW, a_wide_access },
	{ "misaligned_access", 0, a_misaligned_access },
	{ "notify_bad_queue", 0, a_notify_bad_queue },
	/* DRIVER_OK that the device cannot accept (s3.1.1, s2.7.2). */
	{ "driver_ok_without_features_ok", A_RAW, a_driver_ok_without_features_ok },
	{ "rings_outside_ram", A_RAW, a_rings_outside_ram },
	{ "ring_in_mmio_hole", A_RAW, a_ring_in_mmio_hole },
	{ "ring_past_ram_end", A_RAW, a_ring_past_ram_end },
	{ "ring_wraps", A_RAW, a_ring_wraps },
	{ "ring_misaligned", A_RAW, a_ring_misaligned },
	/* Descriptors and rings (s2.7). */
	{ "desc_loop", 0, a_desc_loop },
	{ "chain_queue_size", 0, a_chain_queue_size },
	{ "chain_over_queue_size", 0, a_chain_over_queue_size },
	{ "addr_outside_ram", 0, a_addr_outside_ram },
	{ "addr_in_mmio_hole", 0, a_addr_in_mmio_hole },
	{ "addr_wraps", 0, a_addr_wraps },
	{ "buffer_at_ram_end", 0, a_buffer_at_ram_end },
	{ "len_past_ram_end", 0, a_len_past_ram_end },
	{ "zero_len_desc", 0, a_zero_len_desc },
	{ "write_then_read", 0, a_write_then_read },
	{ "avail_idx_full", 0, a_avail_idx_full },
	{ "avail_idx_ahead", 0, a_avail_idx_ahead },
	{ "head_out_of_range", 0, a_head_out_of_range },
	{ "indirect_queue_size", A_INDIRECT, a_indirect_queue_size },
	{ "indirect_bad_len", A_INDIRECT, a_indirect_bad_len },
	{ "indirect_too_long", A_INDIRECT, a_indirect_too_long },
	{ "indirect_nested", A_INDIRECT, a_indirect_nested },
	{ "indirect_with_next", A_INDIRECT, a_indirect_with_next },
	{ "indirect_loop", A_INDIRECT, a_indirect_loop },
	{ "indirect_without_feature", 0, a_indirect_without_feature },
};

struct attack_run {
	const struct attack *a;
	struct attack_ctx c;
};

static long user_attack(void *arg)
{
	struct attack_run *r = arg;
	struct attack_ctx *c = &r->c;

	r->a->run(c);
	if (c->wait && !c->timed_out)
		c->status = vdev_settle(c->d, c->wait_used, &c->timed_out);
	else
		c->status = vdev_status(c->d);
	return 0;
}

/* ---- kernel side ---- */

static struct vdev rng = { .pci_device = VIRTIO_DEV_RNG, .mem = &rng_mem };
static struct vdev blk = { .pci_device = VIRTIO_DEV_BLK, .mem = &blk_mem };
static bool have_blk;
static unsigned int failures;

static void print_hex(const uint8_t *p, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		printf_uart("%02x", p[i]);
}

/* Read sector 0 through virtio-blk (user mode); `when` names the moment in messages. */
static void blk_check(const char *when)
{
	long r;

	if (!have_blk)
		return;
	r = at_user(user_blk_read, &blk);
	if (r) {
		failures++;
		printf_uart("BLK %s: FAILED (%s)\n", when,
			    r == -1 ? "timed out" : r == -2 ? "device needs reset" : "request status not OK");
	}
}

static void run_attack(const struct attack *a)
{
	struct attack_run run = { .a = a, .c = { .d = &rng } };
	uint8_t bytes[16];
	struct rng_read rr = { &rng, sizeof(bytes), bytes };
	uint8_t st;
	long r;

	if (!(a->flags & A_RAW)) {
		st = vdev_init(&rng, F_VERSION_1 | (a->flags & A_INDIRECT ? F_INDIRECT_DESC : 0));
		if (st != (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
			failures++;
			printf_uart("ATTACK %s: set-up failed, status 0x%02x\n", a->name, st);
			return;
		}
	}
	at_user(user_attack, &run);
	printf_uart("ATTACK %s: status=0x%02x needs_reset=%u", a->name, run.c.status,
		    !!(run.c.status & S_NEEDS_RESET));
	for (unsigned int i = 0; i < run.c.nr_vals; i++)
		printf_uart(" %s=0x%lx", run.c.vals[i].name, run.c.vals[i].v);
	if (run.c.timed_out)
		puts_uart(" timed_out=1");
	puts_uart("\n");

	/* The other device, while this one may still be broken. */
	blk_check(a->name);

	st = vdev_init(&rng, F_VERSION_1);
	if (st != (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
		failures++;
		printf_uart("RECOVER %s: FAILED (status 0x%02x after reset and set-up)\n", a->name, st);
		return;
	}
	r = at_user(user_rng_read, &rr);
	if (r) {
		failures++;
		printf_uart("RECOVER %s: FAILED (%s)\n", a->name, rng_errors[-r]);
		return;
	}
	printf_uart("RECOVER %s: ok\n", a->name);
}

extern uint32_t pvh_start_info; /* lib/pvh.S */

/* End of the RAM region holding the guest image (2 MiB), from the memory map of whichever entry was used. */
static uint64_t find_ram_end(const uint8_t *bp)
{
	const uint64_t here = 0x200000;
	const uint8_t *map;
	unsigned int n, stride, type_off;

	if (guest_entered_pvh()) {
		/* struct hvm_start_info: memmap_paddr at 40, memmap_entries at 48; entries of 24 bytes. */
		const uint8_t *si = (const uint8_t *)(uintptr_t)pvh_start_info;

		map = (const uint8_t *)(uintptr_t)*(const uint64_t *)(si + 40);
		n = *(const uint32_t *)(si + 48);
		stride = 24;
		type_off = 16;
	} else {
		/* boot_params: e820_entries at 0x1e8, e820_table at 0x2d0; entries of 20 bytes. */
		map = bp + 0x2d0;
		n = bp[0x1e8];
		stride = 20;
		type_off = 16;
	}
	for (unsigned int i = 0; i < n && i < 128; i++) {
		const uint8_t *e = map + i * stride;
		uint64_t addr = *(const uint64_t *)e, size = *(const uint64_t *)(e + 8);

		if (*(const uint32_t *)(e + type_off) == 1 && addr <= here && here - addr < size)
			return addr + size;
	}
	return 0;
}

static uint64_t parse_hex(const char *s)
{
	uint64_t v = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (;; s++) {
		char ch = *s;

		if (ch >= '0' && ch <= '9')
			v = v << 4 | (uint64_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v = v << 4 | (uint64_t)(ch - 'a' + 10);
		else
			return v;
	}
}

void guest_main(const uint8_t *boot_params);

void guest_main(const uint8_t *boot_params)
{
	const char *cmdline = guest_cmdline(boot_params);
	const char *ecam_arg = strstr_simple(cmdline, "ecam=");
	uint64_t ecam = ecam_arg ? parse_hex(ecam_arg + 5) : 0xe0000000ull;
	uint8_t bytes[32];
	struct rng_read rr = { &rng, sizeof(bytes), bytes };
	unsigned int i;
	uint8_t st;
	long r;

	uart_init();
	cpu_init();
	ram_end = find_ram_end(boot_params);
	printf_uart("virtio-hostile: ECAM at 0x%lx, RAM ends at 0x%lx\n", ecam, ram_end);
	if (!ram_end || vdev_probe(&rng, ecam)) {
		puts_uart("virtio-hostile: no virtio-rng (or no memory map): nothing to attack\n");
		guest_exit();
	}
	printf_uart("virtio-hostile: virtio-rng in slot %u, registers at 0x%lx\n", rng.slot, rng.common);
	have_blk = vdev_probe(&blk, ecam) == 0 && blk.devcfg;
	if (have_blk) {
		/* struct virtio_blk_config.capacity (s5.2.4), in 512-byte sectors, as two 32-bit reads (s4.1.3.1). */
		uint64_t sectors = rd32(blk.devcfg) | (uint64_t)rd32(blk.devcfg + 4) << 32;

		printf_uart("virtio-hostile: virtio-blk in slot %u, registers at 0x%lx, capacity %lu sectors\n", blk.slot,
			    blk.common, sectors);
	} else
		puts_uart("virtio-hostile: no virtio-blk\n");

	st = vdev_init(&rng, F_VERSION_1);
	printf_uart("virtio-hostile: virtio-rng offers features 0x%lx, status 0x%02x, queue size %u of %u\n",
		    vdev_offered(&rng), st, rng.qsize, rng.qmax);
	r = at_user(user_rng_read, &rr);
	if (r) {
		printf_uart("RNG: FAILED (%s)\n", rng_errors[-r]);
		guest_exit();
	}
	puts_uart("RNG: ");
	print_hex(bytes, sizeof(bytes));
	puts_uart("\n");

	if (have_blk) {
		st = vdev_init(&blk, F_VERSION_1);
		if (st != (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
			printf_uart("BLK: set-up FAILED, status 0x%02x\n", st);
			have_blk = false;
			failures++;
		} else {
			blk_check("first read");
			puts_uart("BLK sector 0: ");
			print_hex(blk_sector0, 32);
			puts_uart("\n");
		}
	}

	for (i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
		run_attack(&attacks[i]);

	if (have_blk) {
		blk_check("last read");
		printf_uart("BLK reads: %u, matching the first: %u\n", blk_reads, blk_matches);
	}
	printf_uart("virtio-hostile: done, %u attacks, %u failures\n", i, failures);
	guest_exit();
}

