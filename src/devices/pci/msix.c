// SPDX-License-Identifier: MIT
/* MSI-X capability, table, PBA and delivery (PCI Local Bus 3.0 s6.8.2). The model is in msix.h. */
#include "devices/pci/msix.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"

/* What a broken or hostile guest causes: debug level, rate-limited (lock held). */
#define msix_guest_error(m, ...)                      \
	do {                                          \
		if (ratelimit_ok(&(m)->rl))           \
			pr_debug(__VA_ARGS__);        \
	} while (0)

struct msix_vector {
	/* The table entry as the guest sees it (s6.8.2.6-9). */
	uint32_t addr_lo, addr_hi, data, ctrl;
	/* Delivery: gsi and eventfd are set up together the first time the vector can fire. */
	int gsi;          /* -1: none yet */
	int eventfd;      /* -1: none */
	bool routed;      /* KVM's route for gsi carries this entry's message */
	bool no_gsi;      /* setting up failed: deliver with KVM_SIGNAL_MSI */
};

struct msix {
	pthread_mutex_t lock;
	struct pci_device *dev;
	struct irq_routing *rt;
	unsigned int nr;
	unsigned int bar;
	unsigned int cap;
	uint32_t table_offset, pba_offset;
	bool enabled, function_masked;
	struct msix_vector *vec;
	uint64_t *pba;
	struct ratelimit rl;
};

static bool contained(uint64_t off, uint32_t len, uint64_t base, uint64_t size)
{
	return off >= base && off - base < size && len <= size - (off - base);
}

static bool overlaps(uint64_t off, uint32_t len, uint64_t base, uint64_t size)
{
	return off < base + size && base < off + len;
}

struct msix *msix_create(struct pci_device *dev, struct irq_routing *rt, unsigned int nr_vectors, unsigned int bar,
			 uint32_t table_offset, uint32_t pba_offset)
{
	uint64_t table_size = (uint64_t)nr_vectors * MSIX_ENTRY_SIZE, pba_size = msix_pba_size(nr_vectors);
	struct msix *m;
	int cap, err;

	if (!dev || !rt || nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS || bar >= PCI_NR_BARS ||
	    (dev->bars[bar].type != PCI_BAR_MEM32 && dev->bars[bar].type != PCI_BAR_MEM64) || (table_offset & 7) ||
	    (pba_offset & 7) || !contained(table_offset, 1, 0, dev->bars[bar].size) ||
	    table_size > dev->bars[bar].size - table_offset || !contained(pba_offset, 1, 0, dev->bars[bar].size) ||
	    pba_size > dev->bars[bar].size - pba_offset || overlaps(table_offset, (uint32_t)table_size, pba_offset, pba_size)) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->vec = calloc(nr_vectors, sizeof(*m->vec));
	m->pba = calloc(pba_size / 8, sizeof(*m->pba));
	if (!m->vec || !m->pba) {
		err = ENOMEM;
		goto fail;
	}
	err = pthread_mutex_init(&m->lock, NULL);
	if (err)
		goto fail;
	cap = pci_add_capability(dev, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (cap < 0) {
		pthread_mutex_destroy(&m->lock);
		err = -cap;
		goto fail;
	}
	m->dev = dev;
	m->rt = rt;
	m->nr = nr_vectors;
	m->bar = bar;
	m->cap = (unsigned int)cap;
	m->table_offset = table_offset;
	m->pba_offset = pba_offset;
	m->rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	for (unsigned int i = 0; i < nr_vectors; i++)
		m->vec[i] = (struct msix_vector){ .ctrl = MSIX_ENTRY_CTRL_MASKED, .gsi = -1, .eventfd = -1 };

	pci_config_put(dev->config, m->cap + MSIX_CAP_CONTROL, nr_vectors - 1, 2);
	pci_config_put(dev->wmask, m->cap + MSIX_CAP_CONTROL, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK, 2);
	pci_config_put(dev->config, m->cap + MSIX_CAP_TABLE, table_offset | bar, 4);
	pci_config_put(dev->config, m->cap + MSIX_CAP_PBA, pba_offset | bar, 4);
	return m;
fail:
	free(m->vec);
	free(m->pba);
	free(m);
	errno = err;
	return NULL;
}

void msix_destroy(struct msix *m)
{
	if (!m)
		return;
	for (unsigned int i = 0; i < m->nr; i++) {
		struct msix_vector *v = &m->vec[i];

		if (v->gsi < 0)
			continue;
		irq_routing_irqfd_deassign(m->rt, v->eventfd, (uint32_t)v->gsi);
		close(v->eventfd);
		irq_routing_free_gsi(m->rt, (uint32_t)v->gsi);
	}
	pthread_mutex_destroy(&m->lock);
	free(m->vec);
	free(m->pba);
	free(m);
}

static uint64_t vector_addr(const struct msix_vector *v)
{
	return (uint64_t)v->addr_hi << 32 | v->addr_lo;
}

static bool vector_can_fire(const struct msix *m, const struct msix_vector *v)
{
	return m->enabled && !m->function_masked && !(v->ctrl & MSIX_ENTRY_CTRL_MASKED);
}

/* First use of a vector: a GSI, an eventfd and the irqfd between them. Lock held. */
static void vector_setup(struct msix *m, struct msix_vector *v)
{
	int gsi, fd, ret;

	gsi = irq_routing_alloc_gsi(m->rt);
	if (gsi < 0) {
		pr_warn_ratelimited(&m->rl, "pci %s: no GSI left for an MSI-X vector; using KVM_SIGNAL_MSI", m->dev->name);
		v->no_gsi = true;
		return;
	}
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0) {
		pr_warn_ratelimited(&m->rl, "pci %s: eventfd: %s", m->dev->name, strerror(errno));
		goto fail_gsi;
	}
	ret = irq_routing_irqfd_assign(m->rt, fd, (uint32_t)gsi);
	if (ret) {
		pr_warn_ratelimited(&m->rl, "pci %s: KVM_IRQFD: %s", m->dev->name, strerror(-ret));
		close(fd);
		goto fail_gsi;
	}
	v->gsi = gsi;
	v->eventfd = fd;
	return;
fail_gsi:
	irq_routing_free_gsi(m->rt, (uint32_t)gsi);
	v->no_gsi = true;
}

/* Send the vector's message now. Lock held. */
static void vector_deliver(struct msix *m, struct msix_vector *v)
{
	uint64_t one = 1;
	int ret;

	if (v->routed && v->eventfd >= 0) {
		/* EAGAIN only when the counter would overflow: interrupts are already pending then. */
		if (write(v->eventfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			pr_warn_ratelimited(&m->rl, "pci %s: irqfd write: %s", m->dev->name, strerror(errno));
		return;
	}
	ret = irq_routing_signal_msi(m->rt, vector_addr(v), v->data);
	if (ret < 0)
		pr_warn_ratelimited(&m->rl, "pci %s: KVM_SIGNAL_MSI: %s", m->dev->name, strerror(-ret));
}

static bool pba_test(const struct msix *m, unsigned int i)
{
	return m->pba[i / 64] >> (i % 64) & 1;
}

static void pba_set(struct msix *m, unsigned int i, bool on)
{
	if (on)
		m->pba[i / 64] |= 1ull << (i % 64);
	else
		m->pba[i / 64] &= ~(1ull << (i % 64));
}

/*
 * A vector that can fire: make KVM's route carry its entry's message, then send what was pending
 * while it was masked (s6.8.2.9). Does nothing for a masked vector: routes are brought up to date
 * lazily, when the vector next becomes able to fire. Lock held.
 */
static void vector_sync(struct msix *m, unsigned int i)
{
	struct msix_vector *v = &m->vec[i];
	int ret;

	if (!vector_can_fire(m, v))
		return;
	if (v->gsi < 0 && !v->no_gsi)
		vector_setup(m, v);
	if (v->gsi >= 0) {
		ret = irq_routing_set_msi(m->rt, (uint32_t)v->gsi, vector_addr(v), v->data);
		v->routed = ret == 0;
		if (ret)
			pr_warn_ratelimited(&m->rl, "pci %s: MSI-X vector %u: route 0x%llx/0x%x refused: %s", m->dev->name, i,
					    (unsigned long long)vector_addr(v), v->data, strerror(-ret));
	}
	if (pba_test(m, i)) {
		pba_set(m, i, false);
		vector_deliver(m, v);
	}
}

static uint32_t entry_read(const struct msix_vector *v, unsigned int field)
{
	switch (field) {
	case MSIX_ENTRY_ADDR_LO:
		return v->addr_lo;
	case MSIX_ENTRY_ADDR_HI:
		return v->addr_hi;
	case MSIX_ENTRY_DATA:
		return v->data;
	default:
		return v->ctrl;
	}
}

static void entry_write(struct msix_vector *v, unsigned int field, uint32_t val)
{
	switch (field) {
	case MSIX_ENTRY_ADDR_LO:
		v->addr_lo = val & ~0x3u; /* bits 1:0 read-only 0 (s6.8.2.6) */
		break;
	case MSIX_ENTRY_ADDR_HI:
		v->addr_hi = val;
		break;
	case MSIX_ENTRY_DATA:
		v->data = val;
		break;
	default:
		v->ctrl = val & MSIX_ENTRY_CTRL_MASKED; /* bits 31:1 reserved, read 0 (s6.8.2.9) */
		break;
	}
}

static bool naturally_aligned(uint64_t off, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4 || len == 8) && !(off & (len - 1));
}

/* Table access at `off` bytes into the table, wholly inside it. Lock held. */
static void table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	unsigned int idx = (unsigned int)(off / MSIX_ENTRY_SIZE);
	struct msix_vector *v = &m->vec[idx];

	if (!is_write) {
		if (!naturally_aligned(off, len)) {
			memset(data, 0xff, len);
			msix_guest_error(m, "pci %s: unaligned %u-byte MSI-X table read", m->dev->name, len);
			return;
		}
		for (uint32_t i = 0; i < len; i++) {
			uint64_t b = off + i;

			data[i] = (uint8_t)(entry_read(&m->vec[b / MSIX_ENTRY_SIZE], (unsigned int)(b % MSIX_ENTRY_SIZE) & ~3u) >>
					    (8 * (b & 3)));
		}
		return;
	}
	/* s6.8.2: software writes entries with aligned dword or qword accesses only. */
	if ((len != 4 && len != 8) || (off & (len - 1))) {
		msix_guest_error(m, "pci %s: dropped %u-byte MSI-X table write at 0x%llx", m->dev->name, len,
				 (unsigned long long)off);
		return;
	}
	for (uint32_t d = 0; d < len; d += 4) {
		unsigned int field = (unsigned int)((off + d) % MSIX_ENTRY_SIZE);
		uint32_t val = (uint32_t)data[d] | (uint32_t)data[d + 1] << 8 | (uint32_t)data[d + 2] << 16 |
			       (uint32_t)data[d + 3] << 24;

		entry_write(v, field, val);
	}
	/*
	 * A message changed while the vector can fire (undefined per s6.8.2.7, but older Linux does it when
	 * it moves an IRQ), or a vector was unmasked: bring the route up to date, send what was pending.
	 */
	vector_sync(m, idx);
}

/* PBA access at `off` bytes into the PBA, wholly inside it. Lock held. */
static void pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write)
		return; /* read-only (s6.8.2.10) */
	if (!naturally_aligned(off, len)) {
		memset(data, 0xff, len);
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		uint64_t b = off + i;

		data[i] = (uint8_t)(m->pba[b / 8] >> (8 * (b % 8)));
	}
}

bool msix_bar_access(struct msix *m, unsigned int bar, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	uint64_t table_size = (uint64_t)m->nr * MSIX_ENTRY_SIZE, pba_size = msix_pba_size(m->nr);
	bool in_table, in_pba;

	if (bar != m->bar || len == 0 || len > 8)
		return false;
	in_table = overlaps(offset, len, m->table_offset, table_size);
	in_pba = overlaps(offset, len, m->pba_offset, pba_size);
	if (!in_table && !in_pba)
		return false;
	pthread_mutex_lock(&m->lock);
	if (in_table && contained(offset, len, m->table_offset, table_size)) {
		table_access(m, offset - m->table_offset, data, len, is_write);
	} else if (in_pba && contained(offset, len, m->pba_offset, pba_size)) {
		pba_access(m, offset - m->pba_offset, data, len, is_write);
	} else {
		/* Straddles the table's or the PBA's edge: a hostile or broken guest. */
		if (!is_write)
			memset(data, 0xff, len);
		msix_guest_error(m, "pci %s: dropped %u-byte access straddling the MSI-X table/PBA at 0x%llx", m->dev->name,
				 len, (unsigned long long)offset);
	}
	pthread_mutex_unlock(&m->lock);
	return true;
}

void msix_config_write(struct msix *m, uint32_t offset, uint32_t len)
{
	uint16_t ctrl;
	bool could, can;

	if (!overlaps(offset, len, m->cap + MSIX_CAP_CONTROL, 2))
		return;
	ctrl = pci_config_read16(m->dev, m->cap + MSIX_CAP_CONTROL);
	pthread_mutex_lock(&m->lock);
	could = m->enabled && !m->function_masked;
	m->enabled = ctrl & MSIX_CONTROL_ENABLE;
	m->function_masked = ctrl & MSIX_CONTROL_FUNCTION_MASK;
	can = m->enabled && !m->function_masked;
	if (can && !could)
		for (unsigned int i = 0; i < m->nr; i++)
			vector_sync(m, i);
	pthread_mutex_unlock(&m->lock);
}

bool msix_notify(struct msix *m, unsigned int vec)
{
	bool ret = false;

	pthread_mutex_lock(&m->lock);
	if (vec < m->nr && m->enabled) {
		struct msix_vector *v = &m->vec[vec];

		if (vector_can_fire(m, v))
			vector_deliver(m, v);
		else
			pba_set(m, vec, true);
		ret = true;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

bool msix_enabled(struct msix *m)
{
	bool ret;

	pthread_mutex_lock(&m->lock);
	ret = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return ret;
}

bool msix_pending(struct msix *m, unsigned int vec)
{
	bool ret;

	pthread_mutex_lock(&m->lock);
	ret = vec < m->nr && pba_test(m, vec);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

unsigned int msix_cap_offset(const struct msix *m)
{
	return m->cap;
}

/* ---- snapshot state ---- */

void msix_save(struct msix *m, struct msix_state *st)
{
	pthread_mutex_lock(&m->lock);
	st->nr = m->nr;
	for (unsigned int i = 0; i < m->nr; i++)
		st->table[i] = (struct msix_state_entry){
			.addr_lo = m->vec[i].addr_lo, .addr_hi = m->vec[i].addr_hi, .data = m->vec[i].data,
			.ctrl = m->vec[i].ctrl,
		};
	memcpy(st->pba, m->pba, msix_pba_size(m->nr));
	pthread_mutex_unlock(&m->lock);
}

int msix_restore(struct msix *m, const struct msix_state *st, char *err, size_t err_size)
{
	uint16_t ctrl;

	if (st->nr != m->nr) {
		errmsg_set(err, err_size, "MSI-X of %s: %u vectors in the snapshot, %u here", m->dev->name, st->nr, m->nr);
		return -EINVAL;
	}
	ctrl = pci_config_read16(m->dev, m->cap + MSIX_CAP_CONTROL);
	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < m->nr; i++) {
		struct msix_vector *v = &m->vec[i];

		v->addr_lo = st->table[i].addr_lo & ~0x3u;
		v->addr_hi = st->table[i].addr_hi;
		v->data = st->table[i].data;
		v->ctrl = st->table[i].ctrl & MSIX_ENTRY_CTRL_MASKED;
	}
	memcpy(m->pba, st->pba, msix_pba_size(m->nr));
	m->enabled = ctrl & MSIX_CONTROL_ENABLE;
	m->function_masked = ctrl & MSIX_CONTROL_FUNCTION_MASK;
	/* Routes and irqfds for what can fire; a pending bit of such a vector is sent, as on unmask. */
	for (unsigned int i = 0; i < m->nr; i++)
		vector_sync(m, i);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* The PBA's 64-bit words for the state's vector count (the wire holds the count only). */
static size_t msix_state_pba_words(const void *p)
{
	return msix_pba_size(((const struct msix_state *)p)->nr) / 8;
}

/* What the fields cannot say: address bits the table does not hold (s6.8.2.6), reserved PBA bits. */
static int msix_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct msix_state *st = p;

	(void)version;
	for (unsigned int i = 0; i < st->nr; i++) {
		if (st->table[i].addr_lo & 3) {
			errmsg_set(err, err_size, "MSI-X state: table[%u].addr_lo 0x%08x is not dword aligned", i,
				   st->table[i].addr_lo);
			return -EINVAL;
		}
	}
	/* Bits past the last vector are reserved (s6.8.2.10). */
	if (st->nr % 64 && st->pba[st->nr / 64] >> (st->nr % 64)) {
		errmsg_set(err, err_size, "MSI-X state: pending bits beyond vector %u", st->nr - 1);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field msix_state_entry_fields[] = {
	CODEC_UINT(struct msix_state_entry, addr_lo, 4, 1),
	CODEC_UINT(struct msix_state_entry, addr_hi, 4, 1),
	CODEC_UINT(struct msix_state_entry, data, 4, 1),
	CODEC_RANGE(struct msix_state_entry, ctrl, 4, 1, 0, MSIX_ENTRY_CTRL_MASKED),
};

static const struct codec_table msix_state_entry_codec =
	CODEC_TABLE(struct msix_state_entry, "MSI-X table entry", 1, 1, msix_state_entry_fields, NULL);

static const struct codec_field msix_state_fields[] = {
	CODEC_RANGE(struct msix_state, nr, 4, 1, 1, MSIX_MAX_VECTORS),
	CODEC_VARRAY(struct msix_state, table, nr, &msix_state_entry_codec, 1),
	CODEC_UINT_VARRAY_FN(struct msix_state, pba, msix_state_pba_words, 8, 1),
};

const struct codec_table msix_state_codec =
	CODEC_TABLE(struct msix_state, "MSI-X state", 1, 1, msix_state_fields, msix_state_check);
