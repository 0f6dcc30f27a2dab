// SPDX-License-Identifier: MIT
/* Split virtqueue, device side: virtio 1.2 s2.7. Design notes in virtqueue.h. */
#include "devices/virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Guest memory accessors. Ring fields are naturally aligned in guest physical memory (vq_init checks
 * the area alignments; every field offset is a multiple of its size) and guest RAM regions start on
 * page boundaries in both address spaces, so the host addresses are aligned too and the accesses
 * are single loads and stores the guest cannot tear.
 */
static inline uint16_t ld16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED));
}

static inline uint16_t ld16_acquire(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE));
}

static inline void st16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void st16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELEASE);
}

static inline void st32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, htole32(v), __ATOMIC_RELAXED);
}

/* Offsets in the available and used rings (s2.7.6, s2.7.8). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING(i) (4u + 2u * (uint32_t)(i))
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING(i) (4u + 8u * (uint32_t)(i))

/*
 * One descriptor, copied out of guest memory. An indirect table need not be aligned (the spec sets
 * no alignment for it), hence memcpy; the compiler barrier after it keeps the compiler from
 * re-reading guest memory in place of the copy, so the fields checked are the fields used.
 */
static void read_desc(const uint8_t *p, struct virtq_desc *d)
{
	memcpy(d, p, sizeof(*d));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Records the first violation, marks the queue broken, returns -EIO. */
static int __attribute__((format(printf, 2, 3))) vq_fail(struct virtqueue *vq, const char *fmt, ...)
{
	va_list ap;

	if (!vq->broken) {
		vq->broken = true;
		va_start(ap, fmt);
		vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
		va_end(ap);
	}
	return -EIO;
}

int vq_init(struct virtqueue *vq, const struct guest_memory *mem, uint16_t size, uint64_t desc_gpa,
	    uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
{
	memset(vq, 0, sizeof(*vq));
	/* Until it is set up, the queue refuses everything rather than touching NULL rings. */
	vq->broken = true;
	snprintf(vq->broken_reason, sizeof(vq->broken_reason), "virtqueue not initialised");
	if (!mem || size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if ((desc_gpa & 15) || (avail_gpa & 1) || (used_gpa & 3))
		return -EINVAL;
	vq->desc = guest_memory_hva(mem, desc_gpa, (uint64_t)VQ_DESC_SIZE * size);
	vq->avail = guest_memory_hva(mem, avail_gpa, VQ_AVAIL_SIZE(size, event_idx));
	vq->used = guest_memory_hva(mem, used_gpa, VQ_USED_SIZE(size, event_idx));
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = vq->avail = vq->used = NULL;
		return -EINVAL;
	}
	vq->mem = mem;
	vq->size = size;
	vq->mask = (uint16_t)(size - 1);
	vq->desc_gpa = desc_gpa;
	vq->avail_gpa = avail_gpa;
	vq->used_gpa = used_gpa;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->broken = false;
	vq->broken_reason[0] = '\0';
	return 0;
}

static const struct guest_region *find_region(const struct guest_memory *mem, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

/* Append guest buffer [addr, addr+len) to the chain, one segment per RAM region it covers. */
static int add_buffer(struct virtqueue *vq, struct vq_chain *c, uint64_t addr, uint32_t len, bool is_write)
{
	uint64_t gpa = addr;
	uint64_t left = len;

	while (left) {
		const struct guest_region *r = find_region(vq->mem, gpa);
		unsigned int n = c->nr_readable + c->nr_writable;
		uint64_t chunk;
		void *hva;

		if (!r)
			return vq_fail(vq, "buffer 0x%" PRIx64 "+0x%" PRIx32 " is not all guest RAM (0x%" PRIx64 ")",
				       addr, len, gpa);
		if (n >= VQ_MAX_SEGMENTS)
			return vq_fail(vq, "chain at head %u has more than %u segments", c->head, VQ_MAX_SEGMENTS);
		/* r contains gpa, so r->gpa + r->size (the next gpa when chunk < left) cannot overflow. */
		chunk = r->size - (gpa - r->gpa);
		if (chunk > left)
			chunk = left;
		hva = guest_memory_hva(vq->mem, gpa, chunk);
		if (!hva)
			return vq_fail(vq, "buffer 0x%" PRIx64 " did not translate", gpa);
		c->iov[n].iov_base = hva;
		c->iov[n].iov_len = chunk;
		if (is_write)
			c->nr_writable++;
		else
			c->nr_readable++;
		gpa += chunk;
		left -= chunk;
	}
	return 0;
}

/*
 * Walk the chain starting at descriptor `head` (< size), following NEXT and at most one indirect
 * table (s2.7.5, s2.7.5.3). Each descriptor is copied once and only the copy is used.
 */
static int walk_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *c)
{
	const uint8_t *table = vq->desc;
	uint32_t table_len = vq->size;
	uint32_t idx = head;
	uint32_t visited = 0;
	bool in_indirect = false;
	bool seen_write = false;
	struct virtq_desc d;
	int ret;

	c->mem = vq->mem;
	c->head = head;
	c->nr_readable = 0;
	c->nr_writable = 0;
	c->readable_bytes = 0;
	c->writable_bytes = 0;
	for (;;) {
		/* A chain never holds more descriptors than its table: one more is a loop (s2.7.5.2). */
		if (visited >= table_len)
			return vq_fail(vq, "chain at head %u: more than %u descriptors in the %s table (loop)", head,
				       table_len, in_indirect ? "indirect" : "descriptor");
		read_desc(table + (size_t)idx * VQ_DESC_SIZE, &d);
		visited++;

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return vq_fail(vq, "chain at head %u: INDIRECT without VIRTIO_F_INDIRECT_DESC", head);
			if (in_indirect)
				return vq_fail(vq, "chain at head %u: INDIRECT inside an indirect table", head);
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return vq_fail(vq, "chain at head %u: descriptor %u has both INDIRECT and NEXT", head, idx);
			if (d.len == 0 || d.len % VQ_DESC_SIZE || d.len / VQ_DESC_SIZE > vq->size)
				return vq_fail(vq, "chain at head %u: indirect table length %" PRIu32 " (queue size %u)",
					       head, d.len, vq->size);
			table = guest_memory_hva(vq->mem, d.addr, d.len);
			if (!table)
				return vq_fail(vq, "chain at head %u: indirect table 0x%" PRIx64 "+0x%" PRIx32
					       " is not guest RAM", head, d.addr, d.len);
			table_len = d.len / VQ_DESC_SIZE;
			idx = 0;
			visited = 0;
			in_indirect = true;
			continue;
		}

		if (d.flags & VIRTQ_DESC_F_WRITE) {
			seen_write = true;
			c->writable_bytes += d.len;
		} else {
			if (seen_write)
				return vq_fail(vq, "chain at head %u: readable descriptor after a writable one", head);
			c->readable_bytes += d.len;
		}
		if (c->readable_bytes + c->writable_bytes > (1ull << 32))
			return vq_fail(vq, "chain at head %u: longer than 4 GiB", head);
		ret = add_buffer(vq, c, d.addr, d.len, d.flags & VIRTQ_DESC_F_WRITE);
		if (ret)
			return ret;

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_len)
			return vq_fail(vq, "chain at head %u: next %u out of range (%u descriptors)", head, d.next,
				       table_len);
		idx = d.next;
	}
}

int vq_pop(struct virtqueue *vq, struct vq_chain *chain)
{
	uint16_t head;
	int ret;

	if (vq->broken)
		return -EIO;
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		/* Acquire: the ring entries and descriptors are read after the index that exposed them. */
		uint16_t idx = ld16_acquire(vq->avail + AVAIL_IDX);
		uint16_t outstanding = (uint16_t)(idx - vq->used_idx);

		if (outstanding > vq->size)
			return vq_fail(vq, "avail idx %u: %u buffers outstanding, queue size %u", idx, outstanding,
				       vq->size);
		if ((uint16_t)(idx - vq->last_avail_idx) > outstanding)
			return vq_fail(vq, "avail idx went back from %u to %u", vq->shadow_avail_idx, idx);
		vq->shadow_avail_idx = idx;
		if (idx == vq->last_avail_idx)
			return 0;
	}
	head = ld16(vq->avail + AVAIL_RING(vq->last_avail_idx & vq->mask));
	if (head >= vq->size)
		return vq_fail(vq, "avail ring entry %u: head %u >= queue size %u", vq->last_avail_idx, head, vq->size);
	ret = walk_chain(vq, head, chain);
	if (ret)
		return ret;
	vq->last_avail_idx++;
	return 1;
}

int vq_rewind(struct virtqueue *vq, uint16_t n)
{
	if (vq->broken)
		return -EIO;
	if (n > (uint16_t)(vq->last_avail_idx - vq->used_idx))
		return -EINVAL;
	vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
	return 0;
}

int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written_len)
{
	uint8_t *elem;

	if (vq->broken)
		return -EIO;
	if (head >= vq->size || vq->last_avail_idx == vq->used_idx)
		return -EINVAL;
	elem = vq->used + USED_RING(vq->used_idx & vq->mask);
	st32(elem, head);
	st32(elem + 4, written_len);
	guest_memory_mark_written_hva(vq->mem, elem, sizeof(struct virtq_used_elem));
	vq->used_idx++;
	/* Release: the element (and the buffer contents) are visible before the index (s2.7.8.2). */
	st16_release(vq->used + USED_IDX, vq->used_idx);
	guest_memory_mark_written_hva(vq->mem, vq->used + USED_IDX, 2);
	return 0;
}

bool vq_should_notify(struct virtqueue *vq)
{
	uint16_t old, event;

	if (vq->broken)
		return false;
	/* The used->idx store must be globally visible before flags/used_event are read: the driver
	 * does the mirror image (s2.7.14), and without the full fence both sides can miss each other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(ld16(vq->avail + AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	vq->signalled_used = vq->used_idx;
	event = ld16(vq->avail + AVAIL_RING(vq->size));
	return vq_need_event(event, vq->used_idx, old);
}

void vq_disable_notify(struct virtqueue *vq)
{
	if (vq->broken || vq->event_idx)
		return;
	st16(vq->used + USED_FLAGS, VIRTQ_USED_F_NO_NOTIFY);
	guest_memory_mark_written_hva(vq->mem, vq->used + USED_FLAGS, 2);
}

bool vq_enable_notify(struct virtqueue *vq)
{
	if (vq->broken)
		return false;
	if (vq->event_idx) {
		st16(vq->used + USED_RING(vq->size), vq->shadow_avail_idx);
		guest_memory_mark_written_hva(vq->mem, vq->used + USED_RING(vq->size), 2);
	} else {
		st16(vq->used + USED_FLAGS, 0);
		guest_memory_mark_written_hva(vq->mem, vq->used + USED_FLAGS, 2);
	}
	/* The store above must be visible before avail->idx is read again (s2.7.13.4, mirrored). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ld16_acquire(vq->avail + AVAIL_IDX) != vq->last_avail_idx;
}

bool vq_has_available(struct virtqueue *vq)
{
	if (vq->broken)
		return false;
	return ld16_acquire(vq->avail + AVAIL_IDX) != vq->last_avail_idx;
}

static size_t chain_copy(const struct iovec *iov, unsigned int n, uint64_t offset, uint8_t *buf, size_t len,
			 bool to_chain)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, k;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		k = seg - (size_t)offset;
		if (k > len - done)
			k = len - done;
		if (to_chain)
			memcpy((uint8_t *)iov[i].iov_base + offset, buf + done, k);
		else
			memcpy(buf + done, (const uint8_t *)iov[i].iov_base + offset, k);
		done += k;
		offset = 0;
	}
	return done;
}

size_t vq_chain_read(const struct vq_chain *chain, uint64_t offset, void *dst, size_t len)
{
	return chain_copy(chain->iov, chain->nr_readable, offset, dst, len, false);
}

size_t vq_chain_write(const struct vq_chain *chain, uint64_t offset, const void *src, size_t len)
{
	size_t n = chain_copy(chain->iov + chain->nr_readable, chain->nr_writable, offset, (uint8_t *)(uintptr_t)src,
			      len, true);

	vq_chain_mark_written(chain, offset, n);
	return n;
}

void vq_chain_mark_written(const struct vq_chain *chain, uint64_t offset, uint64_t len)
{
	const struct iovec *iov = chain->iov + chain->nr_readable;

	if (!chain->mem)
		return; /* a chain vq_pop did not fill */
	for (unsigned int i = 0; i < chain->nr_writable && len; i++) {
		uint64_t seg = iov[i].iov_len, k;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		k = seg - offset < len ? seg - offset : len;
		guest_memory_mark_written_hva(chain->mem, (const uint8_t *)iov[i].iov_base + offset, k);
		len -= k;
		offset = 0;
	}
}

void vq_save_indices(const struct virtqueue *vq, struct vq_indices *out)
{
	out->last_avail_idx = vq->last_avail_idx;
	out->used_idx = vq->used_idx;
	out->signalled_used = vq->signalled_used;
	out->broken = vq->broken;
}

int vq_restore_indices(struct virtqueue *vq, const struct vq_indices *in)
{
	if ((uint16_t)(in->last_avail_idx - in->used_idx) > vq->size)
		return -EINVAL;
	/* Unfinished chains are taken again: the device lost them with the old process. */
	vq->last_avail_idx = in->used_idx;
	/* Equal to last_avail_idx: the next vq_pop reads avail->idx afresh. */
	vq->shadow_avail_idx = in->used_idx;
	vq->used_idx = in->used_idx;
	vq->signalled_used = in->signalled_used;
	if (in->broken && !vq->broken) {
		vq->broken = true;
		snprintf(vq->broken_reason, sizeof(vq->broken_reason), "broken before the snapshot");
	}
	return 0;
}
