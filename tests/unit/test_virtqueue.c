// SPDX-License-Identifier: MIT
/*
 * Split virtqueue (virtio 1.2 s2.7): rings built by hand in a memfd guest memory, playing a driver
 * that is sometimes well-behaved and sometimes hostile.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtio/virtqueue.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
/* 64 MiB with the hole at 32 MiB: RAM is [0, 32 MiB) and [4 GiB, 4 GiB + 32 MiB). */
#define RAM_SIZE (64 * MIB)
#define HOLE_START (32 * MIB)
#define HIGH_BASE (4 * GIB)

#define DESC_GPA 0x10000ull
#define AVAIL_GPA 0x90000ull
#define USED_GPA 0xb0000ull
#define TABLE_GPA 0x200000ull
#define BUF_GPA 0x400000ull

struct env {
	struct guest_memory mem;
	struct virtqueue vq;
	struct vq_chain chain;
	uint16_t size;
	uint16_t avail_idx; /* the driver's next avail->idx */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e || guest_memory_init(&e->mem, RAM_SIZE, HOLE_START) != 0)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	guest_memory_destroy(&e->mem);
	free(e);
	return 0;
}

static void *hva(struct env *e, uint64_t gpa, uint64_t len)
{
	void *p = guest_memory_hva(&e->mem, gpa, len);

	assert_non_null(p);
	return p;
}

/* Fresh zeroed rings and a queue over them, as after a device reset. */
static void queue(struct env *e, uint16_t size, bool event_idx, bool indirect)
{
	memset(hva(e, DESC_GPA, 0x80000), 0, 0x80000);
	memset(hva(e, AVAIL_GPA, 0x10000), 0, 0x10000);
	memset(hva(e, USED_GPA, 0x40000), 0, 0x40000);
	e->size = size;
	e->avail_idx = 0;
	assert_int_equal(vq_init(&e->vq, &e->mem, size, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, indirect), 0);
}

static void put_desc(struct env *e, uint64_t table_gpa, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	assert_int_equal(guest_memory_write(&e->mem, table_gpa + 16ull * i, &d, sizeof(d)), 0);
}

static void desc(struct env *e, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	put_desc(e, DESC_GPA, i, addr, len, flags, next);
}

static void set_avail_idx(struct env *e, uint16_t idx)
{
	assert_int_equal(guest_memory_write(&e->mem, AVAIL_GPA + 2, &idx, 2), 0);
}

/* Make chain `head` available. */
static void offer(struct env *e, uint16_t head)
{
	assert_int_equal(guest_memory_write(&e->mem, AVAIL_GPA + 4 + 2u * (e->avail_idx % e->size), &head, 2), 0);
	e->avail_idx++;
	set_avail_idx(e, e->avail_idx);
}

static uint16_t used_idx(struct env *e)
{
	uint16_t v;

	assert_int_equal(guest_memory_read(&e->mem, USED_GPA + 2, &v, 2), 0);
	return v;
}

static struct virtq_used_elem used_elem(struct env *e, uint16_t i)
{
	struct virtq_used_elem u;

	assert_int_equal(guest_memory_read(&e->mem, USED_GPA + 4 + 8u * (i % e->size), &u, sizeof(u)), 0);
	return u;
}

static void put16(struct env *e, uint64_t gpa, uint16_t v)
{
	assert_int_equal(guest_memory_write(&e->mem, gpa, &v, 2), 0);
}

static uint16_t get16(struct env *e, uint64_t gpa)
{
	uint16_t v;

	assert_int_equal(guest_memory_read(&e->mem, gpa, &v, 2), 0);
	return v;
}

/* The offered chain is a violation: vq_pop says -EIO and the queue stays broken. */
static void expect_violation(struct env *e, const char *reason_part)
{
	assert_int_equal(vq_pop(&e->vq, &e->chain), -EIO);
	assert_true(e->vq.broken);
	assert_non_null(strstr(e->vq.broken_reason, reason_part));
	assert_int_equal(vq_pop(&e->vq, &e->chain), -EIO);
}

static void test_init_rejects(void **state)
{
	struct env *e = *state;
	struct virtqueue *vq = &e->vq;
	const struct guest_memory *m = &e->mem;
	static const uint16_t bad_sizes[] = { 0, 3, 6, 100, 32767, 32769, 49152, 65535 };
	unsigned int i;

	for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		assert_int_equal(vq_init(vq, m, bad_sizes[i], DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	/* Every power of two up to 32768 (the rings live in the high region for the big ones). */
	for (i = 0; i <= 15; i++)
		assert_int_equal(vq_init(vq, m, (uint16_t)(1u << i), HIGH_BASE, HIGH_BASE + 0x80000,
					 HIGH_BASE + 0xa0000, true, true), 0);
	assert_int_equal(vq_init(vq, NULL, 16, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);

	/* Alignment (s2.7.1): descriptor table 16, available ring 2, used ring 4. */
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA + 1, USED_GPA, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA + 2, USED_GPA + 4, false, false), 0);

	/* Outside RAM: in the hole, past the end, straddling the end of the low region. */
	assert_int_equal(vq_init(vq, m, 16, HOLE_START, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, HIGH_BASE + 32 * MIB, USED_GPA, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, HOLE_START - 16 * 15, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, HOLE_START - 16 * 16, AVAIL_GPA, USED_GPA, false, false), 0);

	/* The event fields count only with EVENT_IDX: an available ring of exactly 4 + 2*16 bytes. */
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, HOLE_START - 36, USED_GPA, false, false), 0);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, HOLE_START - 36, USED_GPA, true, false), -EINVAL);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA, HOLE_START - 132, false, false), 0);
	assert_int_equal(vq_init(vq, m, 16, DESC_GPA, AVAIL_GPA, HOLE_START - 132, true, false), -EINVAL);

	/* A queue whose init failed refuses everything instead of touching NULL rings. */
	assert_int_equal(vq_pop(vq, &e->chain), -EIO);
	assert_int_equal(vq_push(vq, 0, 0), -EIO);
	assert_int_equal(vq_rewind(vq, 0), -EIO);
	assert_false(vq_should_notify(vq));
	assert_false(vq_enable_notify(vq));
	assert_false(vq_has_available(vq));
	vq_disable_notify(vq);
}

static void test_simple_chain(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 16, false, false);
	assert_int_equal(vq_pop(&e->vq, c), 0);
	assert_false(vq_has_available(&e->vq));
	desc(e, 3, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 7);
	desc(e, 7, BUF_GPA + 0x1000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(e, 1, HIGH_BASE + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0xffff /* ignored without NEXT */);
	offer(e, 3);
	assert_true(vq_has_available(&e->vq));

	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 3);
	assert_int_equal(c->nr_readable, 1);
	assert_int_equal(c->nr_writable, 2);
	assert_int_equal(c->readable_bytes, 16);
	assert_int_equal(c->writable_bytes, 513);
	assert_ptr_equal(c->iov[0].iov_base, hva(e, BUF_GPA, 16));
	assert_int_equal(c->iov[0].iov_len, 16);
	assert_ptr_equal(c->iov[1].iov_base, hva(e, BUF_GPA + 0x1000, 512));
	assert_int_equal(c->iov[1].iov_len, 512);
	assert_ptr_equal(c->iov[2].iov_base, hva(e, HIGH_BASE + 0x2000, 1));
	assert_int_equal(c->iov[2].iov_len, 1);
	assert_int_equal(vq_pop(&e->vq, c), 0);

	assert_int_equal(used_idx(e), 0);
	assert_int_equal(vq_push(&e->vq, 3, 100), 0);
	assert_int_equal(used_idx(e), 1);
	assert_int_equal(used_elem(e, 0).id, 3);
	assert_int_equal(used_elem(e, 0).len, 100);
	assert_false(e->vq.broken);
}

static void test_chain_copy_helpers(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;
	uint8_t hdr[10], out[6] = { 1, 2, 3, 4, 5, 6 };

	queue(e, 8, false, false);
	memcpy(hva(e, BUF_GPA, 4), "abcd", 4);
	memcpy(hva(e, BUF_GPA + 0x100, 6), "efghij", 6);
	desc(e, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, BUF_GPA + 0x100, 6, VIRTQ_DESC_F_NEXT, 2);
	desc(e, 2, BUF_GPA + 0x200, 2, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	desc(e, 3, BUF_GPA + 0x300, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_chain_read(c, 0, hdr, 10), 10);
	assert_memory_equal(hdr, "abcdefghij", 10);
	assert_int_equal(vq_chain_read(c, 3, hdr, 10), 7);
	assert_memory_equal(hdr, "defghij", 7);
	assert_int_equal(vq_chain_read(c, 10, hdr, 1), 0);
	assert_int_equal(vq_chain_write(c, 1, out, 6), 6);
	assert_memory_equal(hva(e, BUF_GPA + 0x201, 1), out, 1);
	assert_memory_equal(hva(e, BUF_GPA + 0x300, 5), out + 1, 5);
	assert_int_equal(vq_chain_write(c, 9, out, 6), 1);
}

static void test_multiple_chains_in_order(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 8, false, false);
	desc(e, 2, BUF_GPA, 100, 0, 0);
	desc(e, 0, BUF_GPA + 0x1000, 200, VIRTQ_DESC_F_WRITE, 0);
	desc(e, 5, BUF_GPA + 0x2000, 300, VIRTQ_DESC_F_NEXT, 6);
	desc(e, 6, BUF_GPA + 0x3000, 400, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 2);
	offer(e, 0);
	offer(e, 5);

	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 2);
	assert_int_equal(c->readable_bytes, 100);
	assert_int_equal(c->writable_bytes, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 0);
	assert_int_equal(c->nr_readable, 0);
	assert_int_equal(c->writable_bytes, 200);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 5);
	assert_int_equal(c->readable_bytes, 300);
	assert_int_equal(c->writable_bytes, 400);
	assert_int_equal(vq_pop(&e->vq, c), 0);

	/* Completion order is the device's: out of order is fine. */
	assert_int_equal(vq_push(&e->vq, 5, 400), 0);
	assert_int_equal(vq_push(&e->vq, 2, 0), 0);
	assert_int_equal(vq_push(&e->vq, 0, 200), 0);
	assert_int_equal(used_idx(e), 3);
	assert_int_equal(used_elem(e, 0).id, 5);
	assert_int_equal(used_elem(e, 1).id, 2);
	assert_int_equal(used_elem(e, 2).id, 0);
	assert_int_equal(used_elem(e, 2).len, 200);
	/* Nothing outstanding any more: a further push is a device bug. */
	assert_int_equal(vq_push(&e->vq, 0, 0), -EINVAL);
	assert_int_equal(vq_push(&e->vq, 8, 0), -EINVAL);
}

/* Indices are free-running 16-bit counters: run them through 65535 -> 0 (s2.7.13.3). */
static void wrap_run(struct env *e, uint16_t size)
{
	struct vq_chain *c = &e->chain;
	const uint32_t total = 65536u + 3u * size;
	uint32_t n;

	queue(e, size, false, false);
	for (n = 0; n < size; n++)
		desc(e, n, BUF_GPA + 0x100 * n, 0x10 + n, VIRTQ_DESC_F_WRITE, 0);
	for (n = 0; n < total; n++) {
		uint16_t head = (uint16_t)((n * 3) % size);

		offer(e, head);
		/* Every other step a batch of two, so some batches straddle 65535 -> 0. */
		if (size > 1 && n % 2 == 0 && n + 1 < total) {
			offer(e, (uint16_t)(((n + 1) * 3) % size));
			assert_int_equal(vq_pop(&e->vq, c), 1);
			assert_int_equal(c->head, head);
			assert_int_equal(vq_pop(&e->vq, c), 1);
			assert_int_equal(c->head, ((n + 1) * 3) % size);
			assert_int_equal(vq_pop(&e->vq, c), 0);
			assert_int_equal(vq_push(&e->vq, head, n), 0);
			assert_int_equal(vq_push(&e->vq, c->head, n + 1), 0);
			n++;
		} else {
			assert_int_equal(vq_pop(&e->vq, c), 1);
			assert_int_equal(c->head, head);
			assert_int_equal(c->writable_bytes, 0x10 + head);
			assert_int_equal(vq_push(&e->vq, head, n), 0);
		}
		assert_int_equal(used_idx(e), (uint16_t)(n + 1));
		assert_int_equal(used_elem(e, (uint16_t)n).len, n);
	}
	assert_int_equal(e->vq.last_avail_idx, (uint16_t)(65536 + 3 * size));
	assert_int_equal(used_idx(e), (uint16_t)(3 * size));
	assert_false(e->vq.broken);
}

static void test_avail_wrap(void **state)
{
	wrap_run(*state, 4);
	wrap_run(*state, 8);
	wrap_run(*state, 1);
}

static void test_indirect_good(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(e, TABLE_GPA, 2, BUF_GPA + 0x100, 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(e, TABLE_GPA, 1, BUF_GPA + 0x200, 64, VIRTQ_DESC_F_WRITE, 0);
	/* WRITE on the descriptor naming the table is ignored (s2.7.5.3.2). */
	desc(e, 4, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	offer(e, 4);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 4);
	assert_int_equal(c->nr_readable, 1);
	assert_int_equal(c->nr_writable, 2);
	assert_int_equal(c->readable_bytes, 16);
	assert_int_equal(c->writable_bytes, 96);
	assert_ptr_equal(c->iov[2].iov_base, hva(e, BUF_GPA + 0x200, 64));

	/* Direct descriptors followed by one indirect one (s2.7.5.3.2 "MUST handle"). */
	desc(e, 0, BUF_GPA + 0x300, 8, VIRTQ_DESC_F_NEXT, 6);
	desc(e, 6, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 0);
	assert_int_equal(c->nr_readable, 2);
	assert_int_equal(c->readable_bytes, 24);
	assert_int_equal(c->writable_bytes, 96);

	/* A table of exactly Queue Size descriptors, in the high region, not 16-byte aligned. */
	for (uint32_t i = 0; i < 8; i++)
		put_desc(e, HIGH_BASE + 0x1008, i, BUF_GPA, 1, i < 7 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(e, 1, HIGH_BASE + 0x1008, 8 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->nr_readable, 8);
	assert_int_equal(c->readable_bytes, 8);
	assert_false(e->vq.broken);
}

static void test_indirect_not_negotiated(void **state)
{
	struct env *e = *state;

	queue(e, 8, false, false);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	desc(e, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "VIRTIO_F_INDIRECT_DESC");
}

static void test_indirect_with_next(void **state)
{
	struct env *e = *state;

	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	desc(e, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, BUF_GPA, 16, 0, 0);
	offer(e, 0);
	expect_violation(e, "INDIRECT and NEXT");
}

static void test_indirect_nested(void **state)
{
	struct env *e = *state;

	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(e, TABLE_GPA, 1, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	desc(e, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "inside an indirect table");

	/* INDIRECT with NEXT inside a table is nested too. */
	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 1, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0);
	desc(e, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "inside an indirect table");
}

static void test_indirect_bad_tables(void **state)
{
	struct env *e = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
		const char *reason;
	} cases[] = {
		{ TABLE_GPA, 0, "indirect table length" },
		{ TABLE_GPA, 24, "indirect table length" },
		{ TABLE_GPA, 15, "indirect table length" },
		{ TABLE_GPA, 9 * 16, "indirect table length" }, /* more than Queue Size entries */
		{ TABLE_GPA, 0xfffffff0, "indirect table length" },
		{ HOLE_START, 16, "is not guest RAM" },
		{ HOLE_START - 16, 32, "is not guest RAM" },
		{ HIGH_BASE + 32 * MIB - 16, 32, "is not guest RAM" },
		{ UINT64_MAX - 15, 32, "is not guest RAM" },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue(e, 8, false, true);
		desc(e, 2, cases[i].addr, cases[i].len, VIRTQ_DESC_F_INDIRECT, 0);
		offer(e, 2);
		expect_violation(e, cases[i].reason);
	}
}

static void test_loops(void **state)
{
	struct env *e = *state;
	uint32_t i;

	/* Self-loop. */
	queue(e, 16, false, false);
	desc(e, 5, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 5);
	offer(e, 5);
	expect_violation(e, "loop");

	/* Two-cycle. */
	queue(e, 16, false, false);
	desc(e, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(e, 0);
	expect_violation(e, "loop");

	/* The longest cycle: through all 32768 descriptors, back to the head. */
	queue(e, 32768, false, false);
	for (i = 0; i < 32768; i++)
		desc(e, i, BUF_GPA, 0, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % 32768));
	offer(e, 0);
	expect_violation(e, "loop");

	/* A chain of exactly Queue Size descriptors is not a loop. */
	queue(e, 16, false, false);
	for (i = 0; i < 16; i++)
		desc(e, i, BUF_GPA, 1, i < 15 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, &e->chain), 1);
	assert_int_equal(e->chain.nr_readable, 16);

	/* A loop inside an indirect table. */
	queue(e, 16, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
	put_desc(e, TABLE_GPA, 1, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 2);
	put_desc(e, TABLE_GPA, 2, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 0, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "loop");
}

static void test_next_out_of_range(void **state)
{
	struct env *e = *state;

	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 8);
	offer(e, 0);
	expect_violation(e, "out of range");

	/* In an indirect table the bound is the table's length, not the queue size. */
	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(e, TABLE_GPA, 2, BUF_GPA, 16, 0, 0); /* present in memory, outside the table */
	desc(e, 0, TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "out of range");

	/* Head out of range in the available ring. */
	queue(e, 8, false, false);
	offer(e, 8);
	expect_violation(e, "head 8");
}

static void test_buffers_outside_ram(void **state)
{
	struct env *e = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
	} cases[] = {
		{ HOLE_START, 1 },                        /* first byte of the hole */
		{ HOLE_START - 8, 16 },                   /* across the MMIO hole */
		{ HIGH_BASE - 1, 2 },                     /* last byte of the hole into high RAM */
		{ HIGH_BASE + 32 * MIB - 8, 16 },         /* past the end of RAM */
		{ HIGH_BASE + 32 * MIB, 1 },
		{ 0xfffffffffffff000ull, 0x2000 },        /* addr + len wraps past 2^64 */
		{ UINT64_MAX, 1 },
		{ RAM_SIZE, 0x1000 },
		{ 0, 0x40000000 },                        /* longer than all of the low RAM */
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue(e, 4, false, false);
		desc(e, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
		desc(e, 1, cases[i].addr, cases[i].len, VIRTQ_DESC_F_WRITE, 0);
		offer(e, 0);
		expect_violation(e, "not all guest RAM");
	}
	/* The last byte of each region is fine. */
	queue(e, 4, false, false);
	desc(e, 0, HOLE_START - 1, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(e, 1, HIGH_BASE + 32 * MIB - 1, 1, 0, 0);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, &e->chain), 1);
	assert_int_equal(e->chain.nr_readable, 2);
}

/* RAM regions adjacent in guest physical space (no hole): one buffer across both becomes two segments. */
static void test_adjacent_regions_split(void **state)
{
	struct env *e = *state;
	struct guest_memory big;
	struct virtqueue vq;
	struct vq_chain *c = &e->chain;
	struct virtq_desc d[3] = {
		{ .addr = HIGH_BASE - 8, .len = 24, .flags = VIRTQ_DESC_F_NEXT, .next = 1 },
		{ .addr = 0, .len = 0x80000000u, .flags = VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, .next = 2 },
		{ .addr = 0x80000000u, .len = 0x7fffffe8u, .flags = VIRTQ_DESC_F_WRITE, .next = 0 },
	};
	uint16_t avail[3] = { 0, 1, 0 };
	uint16_t one = 1;

	/* Sparse: 4 GiB + 1 MiB of memfd, only the ring pages are touched. */
	assert_int_equal(guest_memory_init(&big, HIGH_BASE + MIB, HIGH_BASE), 0);
	assert_int_equal(big.nr_regions, 2);
	assert_int_equal(guest_memory_write(&big, 0x1000, d, sizeof(d)), 0);
	assert_int_equal(guest_memory_write(&big, 0x2000, avail, sizeof(avail)), 0);
	assert_int_equal(vq_init(&vq, &big, 4, 0x1000, 0x2000, 0x3000, false, false), 0);
	assert_int_equal(guest_memory_write(&big, 0x2002, &one, 2), 0);
	assert_int_equal(vq_pop(&vq, c), 1);
	assert_int_equal(c->nr_readable, 2);
	assert_ptr_equal(c->iov[0].iov_base, guest_memory_hva(&big, HIGH_BASE - 8, 8));
	assert_int_equal(c->iov[0].iov_len, 8);
	assert_ptr_equal(c->iov[1].iov_base, guest_memory_hva(&big, HIGH_BASE, 16));
	assert_int_equal(c->iov[1].iov_len, 16);
	/* 24 + 2 GiB + (2 GiB - 24): exactly 2^32 bytes is allowed (s2.7.5.2). */
	assert_int_equal(c->nr_writable, 2);
	assert_int_equal(c->readable_bytes + c->writable_bytes, 1ull << 32);
	assert_int_equal(vq_push(&vq, 0, 0), 0);

	/* One byte more is not. */
	d[2].len++;
	assert_int_equal(guest_memory_write(&big, 0x1000, d, sizeof(d)), 0);
	one = 2;
	assert_int_equal(guest_memory_write(&big, 0x2002, &one, 2), 0);
	assert_int_equal(vq_pop(&vq, c), -EIO);
	assert_non_null(strstr(vq.broken_reason, "longer than 4 GiB"));
	guest_memory_destroy(&big);
}

static void test_readable_after_writable(void **state)
{
	struct env *e = *state;

	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(e, 1, BUF_GPA, 16, 0, 0);
	offer(e, 0);
	expect_violation(e, "readable descriptor after a writable");

	/* Also when the writable one is empty, and inside an indirect table. */
	queue(e, 8, false, true);
	put_desc(e, TABLE_GPA, 0, BUF_GPA, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(e, TABLE_GPA, 1, BUF_GPA, 4, 0, 0);
	desc(e, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "readable descriptor after a writable");
}

static void test_avail_idx_too_far(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 16, 0, 0);
	set_avail_idx(e, 9);
	expect_violation(e, "outstanding");

	/* Exactly Queue Size new entries are fine. */
	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 16, 0, 0);
	set_avail_idx(e, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_pop(&e->vq, c), 0);
	/* Eight popped, none used: the driver cannot have a ninth buffer to offer. */
	set_avail_idx(e, 9);
	expect_violation(e, "outstanding");

	/* Going backwards (s2.7.6.1: the driver MUST NOT decrement idx). */
	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 16, 0, 0);
	set_avail_idx(e, 3);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	set_avail_idx(e, 2);
	expect_violation(e, "went back");

	queue(e, 8, false, false);
	set_avail_idx(e, 0xffff);
	expect_violation(e, "outstanding");
}

static void test_zero_length(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 8, false, false);
	/* A single empty descriptor, at an address that is not RAM: nothing is accessed. */
	desc(e, 0, HOLE_START + 0x1000, 0, 0, 0);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 0);
	assert_int_equal(c->nr_readable + c->nr_writable, 0);
	assert_int_equal(c->readable_bytes + c->writable_bytes, 0);

	/* Empty descriptors inside a chain are skipped. */
	desc(e, 1, BUF_GPA, 0, VIRTQ_DESC_F_NEXT, 2);
	desc(e, 2, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 3);
	desc(e, 3, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
	desc(e, 4, BUF_GPA + 0x10, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->nr_readable, 1);
	assert_int_equal(c->nr_writable, 1);
	assert_int_equal(c->readable_bytes, 4);
	assert_int_equal(c->writable_bytes, 8);
	assert_ptr_equal(c->iov[1].iov_base, hva(e, BUF_GPA + 0x10, 8));
	assert_false(e->vq.broken);
}

static void test_need_event_math(void **state)
{
	(void)state;
	/* used_event 0: notify after the first buffer (s2.7.7.2 note). */
	assert_true(vq_need_event(0, 1, 0));
	assert_false(vq_need_event(0, 2, 1));
	assert_true(vq_need_event(5, 6, 5));
	assert_true(vq_need_event(5, 10, 0));
	assert_true(vq_need_event(9, 10, 0));
	assert_false(vq_need_event(10, 10, 0));
	assert_false(vq_need_event(10, 5, 0));
	assert_false(vq_need_event(4, 10, 5));
	/* Nothing moved: never. */
	assert_false(vq_need_event(7, 7, 7));
	/* Across the 16-bit wrap. */
	assert_true(vq_need_event(65535, 0, 65535));
	assert_true(vq_need_event(65535, 1, 65534));
	assert_true(vq_need_event(0, 1, 65535));
	assert_true(vq_need_event(2, 3, 65530));
	assert_false(vq_need_event(3, 3, 65530));
	assert_false(vq_need_event(65529, 3, 65530));
	assert_false(vq_need_event(65534, 0, 65535));
}

static void test_should_notify(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;
	const uint64_t used_event = AVAIL_GPA + 4 + 2 * 8;
	int i;

	/* Without EVENT_IDX: avail->flags (s2.7.7.2). */
	queue(e, 8, false, false);
	for (i = 0; i < 8; i++)
		desc(e, (uint32_t)i, BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, 0, 1), 0);
	assert_true(vq_should_notify(&e->vq));
	put16(e, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	offer(e, 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, 1, 1), 0);
	assert_false(vq_should_notify(&e->vq));

	/* With EVENT_IDX: used_event, and the flags are ignored. */
	queue(e, 8, true, false);
	for (i = 0; i < 8; i++)
		desc(e, (uint32_t)i, BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	put16(e, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	put16(e, used_event, 0);
	for (i = 0; i < 4; i++)
		offer(e, (uint16_t)i);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, c->head, 1), 0); /* used idx 0 -> 1: entry 0 written */
	assert_true(vq_should_notify(&e->vq));
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, c->head, 1), 0); /* 1 -> 2 */
	assert_false(vq_should_notify(&e->vq));
	put16(e, used_event, 3);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, c->head, 1), 0); /* 2 -> 3 */
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, c->head, 1), 0); /* 3 -> 4: entry 3 written in this batch */
	assert_true(vq_should_notify(&e->vq));
	/* Nothing new since: no second notification. */
	assert_false(vq_should_notify(&e->vq));
}

static void test_enable_disable_notify(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;
	const uint64_t avail_event = USED_GPA + 4 + 8 * 8;

	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 1, 0, 0);
	vq_disable_notify(&e->vq);
	assert_int_equal(get16(e, USED_GPA), VIRTQ_USED_F_NO_NOTIFY);
	assert_false(vq_enable_notify(&e->vq));
	assert_int_equal(get16(e, USED_GPA), 0);
	vq_disable_notify(&e->vq);
	offer(e, 0);
	/* A buffer arrived while disabled: enabling says so, the device must drain again. */
	assert_true(vq_enable_notify(&e->vq));
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_false(vq_enable_notify(&e->vq));

	queue(e, 8, true, false);
	desc(e, 0, BUF_GPA, 1, 0, 0);
	vq_disable_notify(&e->vq);
	assert_int_equal(get16(e, USED_GPA), 0); /* flags stay 0 with EVENT_IDX (s2.7.10.2) */
	offer(e, 0);
	offer(e, 0);
	assert_true(vq_enable_notify(&e->vq));
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, 0, 0), 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_push(&e->vq, 0, 0), 0);
	assert_false(vq_enable_notify(&e->vq));
	/* The next entry wanted is 2: the driver notifies when it makes entry 2 available. */
	assert_int_equal(get16(e, avail_event), 2);
}

static void test_rewind(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;

	queue(e, 8, false, false);
	desc(e, 1, BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	desc(e, 2, BUF_GPA, 2, VIRTQ_DESC_F_WRITE, 0);
	offer(e, 1);
	offer(e, 2);
	assert_int_equal(vq_rewind(&e->vq, 1), -EINVAL);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 2);
	assert_int_equal(vq_rewind(&e->vq, 3), -EINVAL);
	assert_int_equal(vq_rewind(&e->vq, 1), 0);
	/* Re-read from guest memory: the driver's current contents count. */
	desc(e, 2, BUF_GPA, 5, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->head, 2);
	assert_int_equal(c->writable_bytes, 5);
	assert_int_equal(vq_push(&e->vq, 1, 0), 0);
	assert_int_equal(vq_rewind(&e->vq, 2), -EINVAL);
	assert_int_equal(vq_rewind(&e->vq, 1), 0);
	assert_int_equal(vq_rewind(&e->vq, 0), 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(vq_pop(&e->vq, c), 0);
}

static void test_broken_is_sticky(void **state)
{
	struct env *e = *state;
	char first[sizeof(e->vq.broken_reason)];

	queue(e, 8, false, false);
	desc(e, 0, BUF_GPA, 1, 0, 0);
	desc(e, 1, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 9);
	offer(e, 0);
	offer(e, 1);
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, &e->chain), 1);
	assert_int_equal(vq_pop(&e->vq, &e->chain), -EIO);
	strcpy(first, e->vq.broken_reason);
	assert_non_null(strstr(first, "next 9"));
	/* Fixing the ring does not un-break the queue: only a reset (vq_init) does. */
	desc(e, 1, BUF_GPA, 1, 0, 0);
	assert_int_equal(vq_pop(&e->vq, &e->chain), -EIO);
	assert_int_equal(vq_push(&e->vq, 0, 1), -EIO);
	assert_int_equal(vq_rewind(&e->vq, 1), -EIO);
	assert_false(vq_should_notify(&e->vq));
	assert_false(vq_enable_notify(&e->vq));
	assert_false(vq_has_available(&e->vq));
	assert_string_equal(e->vq.broken_reason, first);
	assert_int_equal(used_idx(e), 0);
	queue(e, 8, false, false);
	assert_false(e->vq.broken);
	assert_string_equal(e->vq.broken_reason, "");
}

static void test_max_segments(void **state)
{
	struct env *e = *state;
	struct vq_chain *c = &e->chain;
	uint32_t i;

	/* Exactly VQ_MAX_SEGMENTS descriptors: fine. */
	queue(e, 2048, false, false);
	for (i = 0; i < VQ_MAX_SEGMENTS; i++)
		desc(e, i, BUF_GPA + i, 1, i + 1 < VQ_MAX_SEGMENTS ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(e, 0);
	assert_int_equal(vq_pop(&e->vq, c), 1);
	assert_int_equal(c->nr_readable, VQ_MAX_SEGMENTS);
	assert_int_equal(c->readable_bytes, VQ_MAX_SEGMENTS);

	/* One more: refused (s2.7.4.1, a reasonable limit). */
	queue(e, 2048, false, false);
	for (i = 0; i <= VQ_MAX_SEGMENTS; i++)
		desc(e, i, BUF_GPA + i, 1, i < VQ_MAX_SEGMENTS ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(e, 0);
	expect_violation(e, "segments");

	/* The same through an indirect table of 1025 entries. */
	queue(e, 2048, false, true);
	for (i = 0; i <= VQ_MAX_SEGMENTS; i++)
		put_desc(e, TABLE_GPA, i, BUF_GPA, 1, i < VQ_MAX_SEGMENTS ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(e, 0, TABLE_GPA, (VQ_MAX_SEGMENTS + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(e, 0);
	expect_violation(e, "segments");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simple_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_copy_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiple_chains_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_with_next, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_bad_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adjacent_regions_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_too_far, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length, setup, teardown),
		cmocka_unit_test(test_need_event_math),
		cmocka_unit_test_setup_teardown(test_should_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enable_disable_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_is_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_segments, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
