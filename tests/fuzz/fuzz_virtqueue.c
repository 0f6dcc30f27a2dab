// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the split virtqueue (src/devices/virtio/virtqueue.c): the input becomes a
 * hostile driver's descriptor table, available ring and indirect tables, and the device side pops,
 * pushes and rewinds until the queue is empty or broken, checking what it is handed.
 *
 * Input: byte 0 = log2(queue size) % 9 (sizes 1..256); byte 1 = feature bits (bit 0 EVENT_IDX,
 * bit 1 INDIRECT_DESC) and a seed for the device's choices; the rest is copied into guest RAM at
 * GPA 0 and again at 4 GiB (the high region), so descriptors can point at fuzzer-written tables in
 * either region. Guest RAM is 2 MiB split by a hole: [0, 1 MiB) and [4 GiB, 4 GiB + 1 MiB).
 *
 * Guest layout: descriptor table at 0x0, available ring at 0x1000, used ring at 0x2000: fixed and
 * disjoint, so the only guest memory the device writes (used ring, and writable buffers outside the
 * ring pages) never changes the rings, and the number of pops is bounded by the queue size.
 *
 * Invariants (abort on violation): every segment lies inside one RAM region and is non-empty;
 * readable and writable totals equal their segments' sums and stay <= 2^32; at most
 * VQ_MAX_SEGMENTS segments; head < size; pops (net of rewinds) <= queue size; once broken, the
 * queue stays broken with a reason.
 *
 * Build and run: see tests/fuzz/README.md. Seeds (KILN_FUZZ_SEEDS): a chain of a readable and a
 * writable descriptor, direct and through an indirect table.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "fuzz_common.h"

#define RAM_SIZE (2u << 20)
#define HOLE_START (1u << 20)
#define HIGH_BASE (1ull << 32)
#define DATA_MAX (64u << 10)
#define DESC_GPA 0x0ull
#define AVAIL_GPA 0x1000ull
#define USED_GPA 0x2000ull
#define RING_END 0x3000ull
#define MAX_HELD 64
#define MAX_REWINDS 8

/*
 * libFuzzer gives the target no context argument, so the harness keeps its state in one static,
 * set up once (a memfd per input would dominate the run time). kiln code proper has no globals.
 */
struct fuzz_state {
	struct guest_memory mem;
	struct virtqueue vq;
	struct vq_chain chain;
	uint8_t scratch[4096];
};

static struct fuzz_state *fuzz;

static void put_desc(uint8_t *p, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* A queue of 8 holding one chain: a readable then a writable descriptor, direct or through an indirect table. */
static void write_seeds(const char *dir)
{
	static uint8_t in[2 + 0x1120];
	uint8_t *m = in + 2;
	uint16_t avail[3] = { 0, 1, 0 }; /* flags, idx 1, ring[0] = head 0 */

	in[0] = 3;
	put_desc(m, 0x4000, 16, 1, 1);
	put_desc(m + 16, 0x5000, 64, 2, 0);
	memcpy(m + 0x1000, avail, sizeof(avail));
	fuzz_write_seed(dir, "simple", in, 2 + 0x1006);

	memset(in, 0, sizeof(in));
	in[0] = 3;
	in[1] = 2; /* INDIRECT_DESC */
	put_desc(m, 0x1100, 32, 4, 0); /* VIRTQ_DESC_F_INDIRECT: a table of two at 0x1100 */
	memcpy(m + 0x1000, avail, sizeof(avail));
	put_desc(m + 0x1100, 0x4000, 16, 1, 1);
	put_desc(m + 0x1110, 0x5000, 64, 2, 0);
	fuzz_write_seed(dir, "indirect", in, sizeof(in));
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fuzz_seed_dir())
		write_seeds(fuzz_seed_dir());
	fuzz = calloc(1, sizeof(*fuzz));
	if (!fuzz || guest_memory_init(&fuzz->mem, RAM_SIZE, HOLE_START) != 0) {
		fprintf(stderr, "fuzz_virtqueue: cannot create guest memory\n");
		abort();
	}
	return 0;
}

static bool in_ram(const struct guest_memory *mem, const void *p, size_t len)
{
	const uint8_t *b = p;
	unsigned int i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (b >= r->hva && len <= r->size && (uint64_t)(b - r->hva) <= r->size - len)
			return true;
	}
	return false;
}

static bool overlaps_rings(const struct guest_memory *mem, const struct iovec *iov)
{
	const uint8_t *b = iov->iov_base;
	const uint8_t *rings = mem->regions[0].hva;

	return b < rings + RING_END && b + iov->iov_len > rings;
}

static void check_chain(struct fuzz_state *f, uint16_t qsize)
{
	const struct vq_chain *c = &f->chain;
	uint64_t rd = 0, wr = 0;
	unsigned int i, n = c->nr_readable + c->nr_writable;

	CHECK(c->head < qsize);
	CHECK(n <= VQ_MAX_SEGMENTS);
	for (i = 0; i < n; i++) {
		CHECK(c->iov[i].iov_len > 0);
		CHECK(in_ram(&f->mem, c->iov[i].iov_base, c->iov[i].iov_len));
		if (i < c->nr_readable)
			rd += c->iov[i].iov_len;
		else
			wr += c->iov[i].iov_len;
	}
	CHECK(rd == c->readable_bytes);
	CHECK(wr == c->writable_bytes);
	CHECK(rd + wr <= (1ull << 32));
}

/* What a device does with a chain: read the request, write a reply where that is harmless. */
static uint32_t use_chain(struct fuzz_state *f)
{
	const struct vq_chain *c = &f->chain;
	size_t want = sizeof(f->scratch), got;
	unsigned int i;
	bool safe = true;

	got = vq_chain_read(c, 0, f->scratch, want);
	CHECK(got == (c->readable_bytes < want ? c->readable_bytes : want));
	if (c->readable_bytes > 3)
		CHECK(vq_chain_read(c, c->readable_bytes - 3, f->scratch, want) == 3);
	for (i = c->nr_readable; i < c->nr_readable + c->nr_writable; i++)
		safe &= !overlaps_rings(&f->mem, &c->iov[i]);
	if (!safe)
		return 0;
	got = vq_chain_write(c, 0, f->scratch, want);
	CHECK(got == (c->writable_bytes < want ? c->writable_bytes : want));
	return (uint32_t)got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state *f = fuzz;
	struct virtqueue *vq = &f->vq;
	uint16_t held[MAX_HELD];
	unsigned int nheld = 0, rewinds = 0, pops = 0, i;
	uint16_t qsize;
	uint32_t rng;
	size_t n;
	int ret;

	if (size < 2)
		return 0;
	qsize = (uint16_t)(1u << (data[0] % 9));
	rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 8) ^ (uint32_t)size;
	n = size - 2 < DATA_MAX ? size - 2 : DATA_MAX;

	memset(f->mem.regions[0].hva, 0, DATA_MAX);
	memset(f->mem.regions[1].hva, 0, DATA_MAX);
	memcpy(f->mem.regions[0].hva, data + 2, n);
	memcpy(f->mem.regions[1].hva, data + 2, n);
	/* The used ring belongs to the device. */
	memset(f->mem.regions[0].hva + USED_GPA, 0, RING_END - USED_GPA);

	CHECK(vq_init(vq, &f->mem, qsize, DESC_GPA, AVAIL_GPA, USED_GPA, data[1] & 1, data[1] & 2) == 0);
	if (data[1] & 4)
		vq_disable_notify(vq);

	for (;;) {
		ret = vq_pop(vq, &f->chain);
		if (ret <= 0)
			break;
		pops++;
		/* The rings never change here: at most Queue Size chains, plus the rewound ones again. */
		CHECK(pops <= (unsigned int)qsize + rewinds);
		check_chain(f, qsize);
		rng = rng * 1103515245u + 12345u;
		switch ((rng >> 16) % 4) {
		case 0: /* cannot take it now */
			if (rewinds < MAX_REWINDS) {
				CHECK(vq_rewind(vq, 1) == 0);
				rewinds++;
				continue;
			}
			__attribute__((fallthrough));
		case 1: /* complete it now */
			CHECK(vq_push(vq, f->chain.head, use_chain(f)) == 0);
			(void)vq_should_notify(vq);
			break;
		default: /* keep it in flight, complete later out of order */
			(void)use_chain(f);
			held[nheld++] = f->chain.head;
			if (nheld == MAX_HELD) {
				while (nheld)
					CHECK(vq_push(vq, held[--nheld], 0) == 0);
				(void)vq_should_notify(vq);
			}
			break;
		}
		if (!(data[1] & 4) && vq_enable_notify(vq))
			vq_disable_notify(vq);
	}
	if (ret < 0) {
		CHECK(ret == -EIO);
		CHECK(vq->broken && vq->broken_reason[0]);
		CHECK(vq_pop(vq, &f->chain) == -EIO);
		for (i = 0; i < nheld; i++)
			CHECK(vq_push(vq, held[i], 0) == -EIO);
		CHECK(!vq_should_notify(vq));
		return 0;
	}
	CHECK(!vq->broken);
	CHECK(!vq_has_available(vq));
	/* Drained: everything popped is still outstanding or was used, nothing more to push. */
	for (i = 0; i < nheld; i++)
		CHECK(vq_push(vq, held[i], 0) == 0);
	CHECK(vq_push(vq, 0, 0) == -EINVAL);
	(void)vq_should_notify(vq);
	CHECK(!vq_enable_notify(vq));
	return 0;
}
