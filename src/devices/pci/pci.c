// SPDX-License-Identifier: MIT
/*
 * PCI bus 0: configuration space (PCI Local Bus 3.0 ch. 6) through mechanism #1 (s3.2.2.3.2) and ECAM
 * (PCI Express Base 4.0 s7.2.2), BAR assignment and decoding, INTx. The model is in pci.h.
 *
 * Config space is a byte array with per-byte masks: a guest write keeps the read-only bits, takes the
 * writable ones and clears the write-1-to-clear ones. BAR registers need nothing more: their writable
 * bits are the address bits above the size, so the sizing probe (write all-ones, read back) returns
 * the size mask with the type bits, as the spec requires, and restoring the old value restores the BAR.
 *
 * BAR decoding: a small table of (address, size, device, BAR) for every BAR that decodes now, rebuilt
 * under a writer lock whenever a config write changes a BAR or the Command register; the window
 * handlers look up under the reader lock and call the device with no lock held.
 */
#include "devices/pci/pci.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/log.h"

#define CONF1_ENABLE 0x80000000u
/* Bits kept in CONFIG_ADDRESS: enable, bus, device, function, dword register; 30:24 and 1:0 read 0. */
#define CONF1_ADDRESS_MASK 0x80fffffcu

#define BAR_IO_TYPE 0x1u
#define BAR_MEM64_TYPE 0x4u
#define BAR_PREFETCH 0x8u

#define MEM_BAR_ALIGN 4096u /* one BAR per page at least, so a BAR can later become a KVM memslot */

struct pci_window {
	struct pci_bus *pci;
	uint64_t base, size;
	uint64_t next; /* allocation cursor */
	bool io;
	const char *name;
};

struct pci_decode {
	uint64_t base, size;
	struct pci_device *dev;
	unsigned int bar;
	bool io;
};

struct pci_bus {
	pthread_mutex_t cfg_lock; /* config space, CONFIG_ADDRESS, devices[], BAR cursors */
	uint32_t conf1_address;
	struct pci_device *devices[PCI_MAX_DEVICES];
	uint64_t ecam_base, ecam_size;
	struct pci_window mmio32, mmio64, io;
	irq_set_fn intx_set;
	void *intx_opaque;

	pthread_rwlock_t map_lock; /* the decode table */
	struct pci_decode map[PCI_MAX_DEVICES * PCI_NR_BARS];
	unsigned int nr_map;

	pthread_mutex_t intx_lock; /* the INTx wired-OR */
	unsigned int intx_count[PCI_INTX_NR_GSIS];

	pthread_mutex_t log_lock;
	struct ratelimit rl;

	struct pci_device host_bridge;
};

#define pci_ratelimited(pci, ...)                              \
	do {                                                   \
		pthread_mutex_lock(&(pci)->log_lock);          \
		if (ratelimit_ok(&(pci)->rl))                  \
			log_msg(LOG_DEBUG, __VA_ARGS__);       \
		pthread_mutex_unlock(&(pci)->log_lock);        \
	} while (0)

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- INTx ---- */

/* Bring the GSI's wired-OR in line with the device's request and Interrupt Disable. intx_lock held. */
static void intx_update(struct pci_bus *pci, struct pci_device *dev)
{
	bool want = atomic_load(&dev->intx_level) && !dev->intx_disabled;
	unsigned int idx = dev->intx_gsi - PCI_INTX_GSI_BASE;

	if (want == dev->intx_driven || idx >= PCI_INTX_NR_GSIS)
		return;
	dev->intx_driven = want;
	if (want) {
		if (pci->intx_count[idx]++ == 0 && pci->intx_set)
			pci->intx_set(pci->intx_opaque, dev->intx_gsi, 1);
	} else {
		if (--pci->intx_count[idx] == 0 && pci->intx_set)
			pci->intx_set(pci->intx_opaque, dev->intx_gsi, 0);
	}
}

void pci_intx_set(struct pci_device *dev, int level)
{
	struct pci_bus *pci = dev->bus;

	if (!pci) {
		atomic_store(&dev->intx_level, level != 0);
		return;
	}
	pthread_mutex_lock(&pci->intx_lock);
	atomic_store(&dev->intx_level, level != 0);
	if (dev->intx_gsi)
		intx_update(pci, dev);
	pthread_mutex_unlock(&pci->intx_lock);
}

/* ---- BAR decoding ---- */

static bool window_contains(const struct pci_window *w, uint64_t addr, uint64_t size)
{
	return w->size && addr >= w->base && size <= w->size && addr - w->base <= w->size - size;
}

/* Where BAR `i` of `dev` decodes now, from its registers and the Command register. cfg_lock held. */
static uint64_t bar_decode(const struct pci_bus *pci, const struct pci_device *dev, unsigned int i)
{
	const struct pci_bar *bar = &dev->bars[i];
	uint16_t cmd = pci_config_read16(dev, PCI_COMMAND);
	uint32_t reg = pci_config_read32(dev, PCI_BASE_ADDRESS_0 + 4 * i);
	uint64_t addr;

	switch (bar->type) {
	case PCI_BAR_IO:
		addr = reg & ~0x3u;
		if ((cmd & PCI_COMMAND_IO) && window_contains(&pci->io, addr, bar->size))
			return addr;
		return PCI_BAR_UNMAPPED;
	case PCI_BAR_MEM32:
	case PCI_BAR_MEM64:
		addr = reg & ~0xfu;
		if (bar->type == PCI_BAR_MEM64)
			addr |= (uint64_t)pci_config_read32(dev, PCI_BASE_ADDRESS_0 + 4 * (i + 1)) << 32;
		if (!(cmd & PCI_COMMAND_MEMORY))
			return PCI_BAR_UNMAPPED;
		if (window_contains(&pci->mmio32, addr, bar->size) || window_contains(&pci->mmio64, addr, bar->size))
			return addr;
		return PCI_BAR_UNMAPPED;
	case PCI_BAR_NONE:
		break;
	}
	return PCI_BAR_UNMAPPED;
}

/* Rebuild the decode table from every BAR's mapped_gpa. cfg_lock held. */
static void map_rebuild(struct pci_bus *pci)
{
	unsigned int n = 0;

	pthread_rwlock_wrlock(&pci->map_lock);
	for (unsigned int d = 0; d < PCI_MAX_DEVICES; d++) {
		struct pci_device *dev = pci->devices[d];

		if (!dev)
			continue;
		for (unsigned int i = 0; i < PCI_NR_BARS; i++) {
			const struct pci_bar *bar = &dev->bars[i];

			if (bar->type == PCI_BAR_NONE || bar->mapped_gpa == PCI_BAR_UNMAPPED)
				continue;
			pci->map[n++] = (struct pci_decode){
				.base = bar->mapped_gpa, .size = bar->size, .dev = dev, .bar = i,
				.io = bar->type == PCI_BAR_IO,
			};
		}
	}
	pci->nr_map = n;
	pthread_rwlock_unlock(&pci->map_lock);
}

/* Re-decode `dev`'s BARs after a change to them or to Command; tell the device what moved. cfg_lock held. */
static void update_decode(struct pci_bus *pci, struct pci_device *dev)
{
	bool changed[PCI_NR_BARS] = { false };
	bool any = false;

	for (unsigned int i = 0; i < PCI_NR_BARS; i++) {
		uint64_t gpa;

		if (dev->bars[i].type == PCI_BAR_NONE)
			continue;
		gpa = bar_decode(pci, dev, i);
		if (gpa != dev->bars[i].mapped_gpa) {
			dev->bars[i].mapped_gpa = gpa;
			changed[i] = any = true;
		}
	}
	if (!any)
		return;
	map_rebuild(pci);
	for (unsigned int i = 0; i < PCI_NR_BARS; i++)
		if (changed[i] && dev->ops && dev->ops->bar_mapped)
			dev->ops->bar_mapped(dev, i, dev->bars[i].mapped_gpa);
}

/* The BAR decoding [addr, addr + len), or false. */
static bool map_lookup(struct pci_bus *pci, bool io, uint64_t addr, uint32_t len, struct pci_device **dev,
		       unsigned int *bar, uint64_t *offset)
{
	bool found = false;

	pthread_rwlock_rdlock(&pci->map_lock);
	for (unsigned int i = 0; i < pci->nr_map; i++) {
		const struct pci_decode *m = &pci->map[i];

		if (m->io != io || addr < m->base || addr - m->base >= m->size || len > m->size - (addr - m->base))
			continue;
		*dev = m->dev;
		*bar = m->bar;
		*offset = addr - m->base;
		found = true;
		break;
	}
	pthread_rwlock_unlock(&pci->map_lock);
	return found;
}

/* bus_handler_fn for a window: find the BAR, call its device. Unclaimed: master abort. */
static void window_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_window *w = opaque;
	struct pci_device *dev;
	unsigned int bar;
	uint64_t bar_offset;

	if (len >= 1 && len <= 8 &&
	    map_lookup(w->pci, w->io, w->base + offset, len, &dev, &bar, &bar_offset) && dev->ops &&
	    dev->ops->bar_access) {
		dev->ops->bar_access(dev, bar, bar_offset, data, len, is_write);
		return;
	}
	if (!is_write)
		memset(data, 0xff, len);
	pci_ratelimited(w->pci, "pci: %u-byte %s at %s 0x%llx decodes to no BAR", len, is_write ? "write" : "read",
			w->name, (unsigned long long)(w->base + offset));
}

/* ---- config space ---- */

static struct pci_device *config_target(struct pci_bus *pci, unsigned int busno, unsigned int devno, unsigned int fn)
{
	if (busno != 0 || fn != 0 || devno >= PCI_MAX_DEVICES)
		return NULL;
	return pci->devices[devno];
}

/* Read `len` bytes at `reg` (reg + len <= 4096 checked by the callers). cfg_lock held. */
static void config_read(struct pci_device *dev, uint32_t reg, uint8_t *data, uint32_t len)
{
	if (!dev) {
		memset(data, 0xff, len); /* no device: the master abort reads all-ones */
		return;
	}
	if (dev->ops && dev->ops->config_read)
		dev->ops->config_read(dev, reg, len);
	memcpy(data, &dev->config[reg], len);
	/* Status.Interrupt Status is the device's live INTx request. */
	if (reg <= PCI_STATUS && reg + len > PCI_STATUS) {
		uint8_t *st = &data[PCI_STATUS - reg];

		*st = (uint8_t)((*st & ~PCI_STATUS_INTERRUPT) | (atomic_load(&dev->intx_level) ? PCI_STATUS_INTERRUPT : 0));
	}
}

static void config_write(struct pci_bus *pci, struct pci_device *dev, uint32_t reg, const uint8_t *data, uint32_t len)
{
	if (!dev)
		return;
	for (uint32_t i = 0; i < len; i++) {
		uint32_t off = reg + i;
		uint8_t v = data[i], c = dev->config[off];

		c = (uint8_t)((c & ~dev->wmask[off]) | (v & dev->wmask[off]));
		c = (uint8_t)(c & ~(v & dev->w1cmask[off]));
		dev->config[off] = c;
	}
	if (ranges_overlap(reg, len, PCI_COMMAND, 2)) {
		pthread_mutex_lock(&pci->intx_lock);
		dev->intx_disabled = pci_config_read16(dev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
		if (dev->intx_gsi)
			intx_update(pci, dev);
		pthread_mutex_unlock(&pci->intx_lock);
	}
	if (ranges_overlap(reg, len, PCI_COMMAND, 2) || ranges_overlap(reg, len, PCI_BASE_ADDRESS_0, 4 * PCI_NR_BARS))
		update_decode(pci, dev);
	if (dev->ops && dev->ops->config_write)
		dev->ops->config_write(dev, reg, len);
}

/*
 * Mechanism #1 (PCI 3.0 s3.2.2.3.2). Only a dword access to 0xcf8 is CONFIG_ADDRESS; other accesses to
 * 0xcf8-0xcfb are ordinary I/O that nothing claims (Linux's type 2 probe relies on that). Data at
 * 0xcfc + k reaches register (CONFIG_ADDRESS & 0xfc) + k; an access running past 0xcff is refused.
 */
static void conf1_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;

	pthread_mutex_lock(&pci->cfg_lock);
	if (offset == 0 && len == 4) {
		if (is_write)
			pci->conf1_address = le_get(data, 4) & CONF1_ADDRESS_MASK;
		else
			le_put(data, pci->conf1_address, 4);
	} else if (offset >= 4 && offset < PCI_CONF1_NR_PORTS && len >= 1 && len <= 4 && offset - 4 + len <= 4) {
		uint32_t addr = pci->conf1_address;
		struct pci_device *dev = NULL;
		uint32_t reg = (addr & 0xfc) + (uint32_t)(offset - 4);

		if (addr & CONF1_ENABLE)
			dev = config_target(pci, (addr >> 16) & 0xff, (addr >> 11) & 0x1f, (addr >> 8) & 0x7);
		if (is_write)
			config_write(pci, dev, reg, data, len);
		else
			config_read(dev, reg, data, len);
	} else if (!is_write) {
		memset(data, 0xff, len);
	}
	pthread_mutex_unlock(&pci->cfg_lock);
}

/*
 * ECAM (PCIe 4.0 s7.2.2): offset = bus << 20 | device << 15 | function << 12 | register. Accesses must be
 * 1, 2 or 4 bytes, naturally aligned (s7.2.2.1 leaves others undefined): others master-abort.
 */
static void ecam_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *pci = opaque;
	struct pci_device *dev;
	uint32_t reg;

	if ((len != 1 && len != 2 && len != 4) || (offset & (len - 1)) || offset >= pci->ecam_size) {
		if (!is_write)
			memset(data, 0xff, len);
		pci_ratelimited(pci, "pci: refused %u-byte ECAM %s at offset 0x%llx", len, is_write ? "write" : "read",
				(unsigned long long)offset);
		return;
	}
	reg = (uint32_t)(offset & 0xfff);
	pthread_mutex_lock(&pci->cfg_lock);
	dev = config_target(pci, (unsigned int)(offset >> 20), (offset >> 15) & 0x1f, (offset >> 12) & 0x7);
	if (is_write)
		config_write(pci, dev, reg, data, len);
	else
		config_read(dev, reg, data, len);
	pthread_mutex_unlock(&pci->cfg_lock);
}

/* ---- devices ---- */

void pci_device_init(struct pci_device *dev, const struct pci_device_info *info, const struct pci_device_ops *ops,
		     void *opaque)
{
	memset(dev, 0, sizeof(*dev));
	atomic_init(&dev->intx_level, false);
	dev->ops = ops;
	dev->opaque = opaque;
	dev->name = info->name ? info->name : "pci";
	dev->slot = -1;
	dev->next_cap = PCI_CAP_START;
	for (unsigned int i = 0; i < PCI_NR_BARS; i++)
		dev->bars[i].mapped_gpa = PCI_BAR_UNMAPPED;

	pci_config_put(dev->config, PCI_VENDOR_ID, info->vendor, 2);
	pci_config_put(dev->config, PCI_DEVICE_ID, info->device, 2);
	pci_config_put(dev->config, PCI_REVISION_ID, info->revision, 1);
	pci_config_put(dev->config, PCI_CLASS_PROG, info->class_code, 3);
	pci_config_put(dev->config, PCI_HEADER_TYPE, 0, 1); /* type 0, single function */
	pci_config_put(dev->config, PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor, 2);
	pci_config_put(dev->config, PCI_SUBSYSTEM_ID, info->subsystem, 2);
	pci_config_put(dev->config, PCI_INTERRUPT_PIN, info->intx ? 1 : 0, 1);

	pci_config_put(dev->wmask, PCI_COMMAND,
		       PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, 2);
	/* Status bits 15:11 and 8 (error reports) are RW1C; kiln's devices never set them. */
	pci_config_put(dev->w1cmask, PCI_STATUS, 0xf900, 2);
	pci_config_put(dev->wmask, PCI_CACHE_LINE_SIZE, 0xff, 1);
	pci_config_put(dev->wmask, PCI_INTERRUPT_LINE, 0xff, 1);
}

/* A BAR register already declared: type bits or writable address bits (the upper half of a 64-bit BAR). */
static bool bar_register_used(const struct pci_device *dev, uint32_t reg)
{
	for (uint32_t i = 0; i < 4; i++)
		if (dev->config[reg + i] || dev->wmask[reg + i])
			return true;
	return false;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

int pci_device_add_bar(struct pci_device *dev, unsigned int bar, uint64_t size, enum pci_bar_type type,
		       bool prefetchable)
{
	uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint64_t mask = ~(size - 1);

	if (bar >= PCI_NR_BARS || !is_pow2(size))
		return -EINVAL;
	if (dev->slot >= 0)
		return -EBUSY;
	if (bar_register_used(dev, reg))
		return -EBUSY;
	switch (type) {
	case PCI_BAR_MEM32:
		if (size < 16 || size > (1ull << 31))
			return -EINVAL;
		pci_config_put(dev->config, reg, prefetchable ? BAR_PREFETCH : 0, 4);
		pci_config_put(dev->wmask, reg, (uint32_t)mask & ~0xfu, 4);
		break;
	case PCI_BAR_MEM64:
		if (bar + 1 >= PCI_NR_BARS || size < 16 || size > (1ull << 62))
			return -EINVAL;
		if (bar_register_used(dev, reg + 4))
			return -EBUSY;
		pci_config_put(dev->config, reg, BAR_MEM64_TYPE | (prefetchable ? BAR_PREFETCH : 0), 4);
		pci_config_put(dev->wmask, reg, (uint32_t)mask & ~0xfu, 4);
		pci_config_put(dev->wmask, reg + 4, (uint32_t)(mask >> 32), 4);
		break;
	case PCI_BAR_IO:
		if (size < 4 || size > 256 || prefetchable)
			return -EINVAL;
		pci_config_put(dev->config, reg, BAR_IO_TYPE, 4);
		/* Bits 31:16 hardwired to 0: x86 port space is 64 KiB (PCI 3.0 s6.2.5.1). */
		pci_config_put(dev->wmask, reg, (uint32_t)mask & 0xfffcu, 4);
		break;
	default:
		return -EINVAL;
	}
	dev->bars[bar] = (struct pci_bar){
		.type = type, .prefetchable = prefetchable, .size = size, .mapped_gpa = PCI_BAR_UNMAPPED,
	};
	return 0;
}

int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len)
{
	unsigned int off = (dev->next_cap + 3u) & ~3u;

	if (len < 2)
		return -EINVAL;
	if (dev->slot >= 0)
		return -EBUSY;
	if (off < PCI_CAP_START || off + len > PCI_CONFIG_SPACE_SIZE)
		return -ENOSPC;
	memset(&dev->config[off], 0, len);
	memset(&dev->wmask[off], 0, len);
	memset(&dev->w1cmask[off], 0, len);
	dev->config[off] = id;
	dev->config[off + 1] = 0; /* end of list */
	if (dev->last_cap)
		dev->config[dev->last_cap + 1] = (uint8_t)off;
	else
		dev->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
	dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	dev->last_cap = (uint8_t)off;
	dev->next_cap = (uint16_t)(off + len);
	return (int)off;
}

static int window_alloc(struct pci_window *w, uint64_t size, uint64_t align, uint64_t *addr)
{
	uint64_t a;

	if (!w->size)
		return -ENOSPC;
	a = (w->next + align - 1) & ~(align - 1);
	if (a < w->next || !window_contains(w, a, size))
		return -ENOSPC;
	*addr = a;
	w->next = a + size;
	return 0;
}

/* Give every BAR of `dev` an address (PCI 3.0 s6.2.5.1: naturally aligned). cfg_lock held. */
static int assign_bars(struct pci_bus *pci, struct pci_device *dev)
{
	for (unsigned int i = 0; i < PCI_NR_BARS; i++) {
		const struct pci_bar *bar = &dev->bars[i];
		uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * i;
		uint64_t addr = 0;
		int ret = -ENOSPC;

		switch (bar->type) {
		case PCI_BAR_NONE:
			continue;
		case PCI_BAR_IO:
			ret = window_alloc(&pci->io, bar->size, bar->size, &addr);
			if (!ret)
				pci_config_put(dev->config, reg, (uint32_t)addr | BAR_IO_TYPE, 4);
			break;
		case PCI_BAR_MEM64:
			ret = window_alloc(&pci->mmio64, bar->size, bar->size < MEM_BAR_ALIGN ? MEM_BAR_ALIGN : bar->size,
					   &addr);
			/* fall through to the 32-bit window when there is no (room in the) 64-bit one */
			if (ret)
				ret = window_alloc(&pci->mmio32, bar->size,
						   bar->size < MEM_BAR_ALIGN ? MEM_BAR_ALIGN : bar->size, &addr);
			if (!ret) {
				pci_config_put(dev->config, reg, ((uint32_t)addr & ~0xfu) | (dev->config[reg] & 0xfu), 4);
				pci_config_put(dev->config, reg + 4, (uint32_t)(addr >> 32), 4);
			}
			break;
		case PCI_BAR_MEM32:
			ret = window_alloc(&pci->mmio32, bar->size, bar->size < MEM_BAR_ALIGN ? MEM_BAR_ALIGN : bar->size,
					   &addr);
			if (!ret)
				pci_config_put(dev->config, reg, ((uint32_t)addr & ~0xfu) | (dev->config[reg] & 0xfu), 4);
			break;
		}
		if (ret) {
			pr_err("pci: no room for %s BAR %u (%llu bytes) in the PCI window", dev->name, i,
			       (unsigned long long)bar->size);
			return ret;
		}
	}
	return 0;
}

int pci_register_device(struct pci_bus *pci, struct pci_device *dev, int slot)
{
	uint64_t saved[3];
	uint8_t saved_bars[4 * PCI_NR_BARS];
	int ret;

	if (slot < -1 || slot == 0 || slot >= PCI_MAX_DEVICES || dev->slot >= 0 || dev->bus)
		return -EINVAL;
	pthread_mutex_lock(&pci->cfg_lock);
	if (slot == -1) {
		for (int s = 1; s < PCI_MAX_DEVICES && slot < 0; s++)
			if (!pci->devices[s])
				slot = s;
		if (slot < 0) {
			ret = -ENOSPC;
			goto out;
		}
	} else if (pci->devices[slot]) {
		ret = -EBUSY;
		goto out;
	}
	saved[0] = pci->mmio32.next;
	saved[1] = pci->mmio64.next;
	saved[2] = pci->io.next;
	memcpy(saved_bars, &dev->config[PCI_BASE_ADDRESS_0], sizeof(saved_bars));
	ret = assign_bars(pci, dev);
	if (ret) {
		pci->mmio32.next = saved[0];
		pci->mmio64.next = saved[1];
		pci->io.next = saved[2];
		memcpy(&dev->config[PCI_BASE_ADDRESS_0], saved_bars, sizeof(saved_bars));
		goto out;
	}
	if (dev->config[PCI_INTERRUPT_PIN]) {
		dev->intx_gsi = pci_intx_gsi((unsigned int)slot, dev->config[PCI_INTERRUPT_PIN]);
		dev->config[PCI_INTERRUPT_LINE] = (uint8_t)dev->intx_gsi;
	}
	dev->bus = pci;
	dev->slot = slot;
	dev->intx_disabled = pci_config_read16(dev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
	pci->devices[slot] = dev;
	update_decode(pci, dev);
	pthread_mutex_lock(&pci->intx_lock);
	if (dev->intx_gsi)
		intx_update(pci, dev); /* a request made before registration */
	pthread_mutex_unlock(&pci->intx_lock);
	ret = slot;
out:
	pthread_mutex_unlock(&pci->cfg_lock);
	return ret;
}

/* ---- the bus ---- */

static bool window_valid(uint64_t base, uint64_t size, uint64_t limit)
{
	return size == 0 || (base + size - 1 >= base && base + size - 1 <= limit);
}

struct pci_bus *pci_bus_create(const struct pci_bus_config *cfg)
{
	static const struct pci_device_info host_bridge = {
		.name = "host-bridge",
		.vendor = PCI_HOST_BRIDGE_VENDOR,
		.device = PCI_HOST_BRIDGE_DEVICE,
		.class_code = PCI_CLASS_HOST_BRIDGE,
	};
	unsigned int nr_buses = cfg->ecam_nr_buses ? cfg->ecam_nr_buses : 1;
	uint64_t ecam_size = (uint64_t)nr_buses * PCI_ECAM_BUS_SIZE, ecam_align = PCI_ECAM_BUS_SIZE;
	struct pci_bus *pci;
	pthread_rwlockattr_t attr;
	int err;

	while (ecam_align < ecam_size)
		ecam_align <<= 1;
	if (nr_buses > 256 || (cfg->ecam_base & (ecam_align - 1)) ||
	    (cfg->ecam_base && cfg->ecam_base + ecam_size < cfg->ecam_base) ||
	    (cfg->ecam_base && cfg->mmio32_size &&
	     ranges_overlap(cfg->ecam_base, ecam_size, cfg->mmio32_base, cfg->mmio32_size)) ||
	    (cfg->ecam_base && cfg->mmio64_size &&
	     ranges_overlap(cfg->ecam_base, ecam_size, cfg->mmio64_base, cfg->mmio64_size))) {
		errno = EINVAL;
		return NULL;
	}
	if (!window_valid(cfg->mmio32_base, cfg->mmio32_size, UINT32_MAX) ||
	    !window_valid(cfg->mmio64_base, cfg->mmio64_size, UINT64_MAX) ||
	    !window_valid(cfg->io_base, cfg->io_size, 0xffff) ||
	    (cfg->mmio32_size && cfg->mmio64_size &&
	     ranges_overlap(cfg->mmio32_base, cfg->mmio32_size, cfg->mmio64_base, cfg->mmio64_size))) {
		errno = EINVAL;
		return NULL;
	}
	pci = calloc(1, sizeof(*pci));
	if (!pci)
		return NULL;
	err = pthread_mutex_init(&pci->cfg_lock, NULL);
	if (err)
		goto fail_free;
	err = pthread_mutex_init(&pci->intx_lock, NULL);
	if (err)
		goto fail_cfg;
	err = pthread_mutex_init(&pci->log_lock, NULL);
	if (err)
		goto fail_intx;
	/* Writers (BAR moves) are rare; do not let a stream of BAR accesses starve them. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	err = pthread_rwlock_init(&pci->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (err)
		goto fail_log;

	pci->ecam_base = cfg->ecam_base;
	pci->ecam_size = ecam_size;
	pci->mmio32 = (struct pci_window){ .pci = pci, .base = cfg->mmio32_base, .size = cfg->mmio32_size,
					   .next = cfg->mmio32_base, .name = "pci-mmio32" };
	pci->mmio64 = (struct pci_window){ .pci = pci, .base = cfg->mmio64_base, .size = cfg->mmio64_size,
					   .next = cfg->mmio64_base, .name = "pci-mmio64" };
	pci->io = (struct pci_window){ .pci = pci, .base = cfg->io_base, .size = cfg->io_size, .next = cfg->io_base,
				       .io = true, .name = "pci-io" };
	pci->intx_set = cfg->intx_set;
	pci->intx_opaque = cfg->intx_opaque;
	pci->rl = (struct ratelimit)RATELIMIT_INIT(5000, 10);

	pci_device_init(&pci->host_bridge, &host_bridge, NULL, NULL);
	pci->host_bridge.bus = pci;
	pci->host_bridge.slot = 0;
	pci->devices[0] = &pci->host_bridge;
	return pci;

fail_log:
	pthread_mutex_destroy(&pci->log_lock);
fail_intx:
	pthread_mutex_destroy(&pci->intx_lock);
fail_cfg:
	pthread_mutex_destroy(&pci->cfg_lock);
fail_free:
	free(pci);
	errno = err;
	return NULL;
}

void pci_bus_destroy(struct pci_bus *pci)
{
	if (!pci)
		return;
	for (unsigned int i = 1; i < PCI_MAX_DEVICES; i++)
		if (pci->devices[i])
			pci->devices[i]->bus = NULL;
	pthread_rwlock_destroy(&pci->map_lock);
	pthread_mutex_destroy(&pci->log_lock);
	pthread_mutex_destroy(&pci->intx_lock);
	pthread_mutex_destroy(&pci->cfg_lock);
	free(pci);
}

int pci_bus_attach(struct pci_bus *pci, struct bus *pio, struct bus *mmio)
{
	int ret;

	ret = bus_register(pio, PCI_CONF1_ADDRESS_PORT, PCI_CONF1_NR_PORTS, conf1_io, pci, "pci-conf1");
	if (!ret && pci->ecam_base)
		ret = bus_register(mmio, pci->ecam_base, pci->ecam_size, ecam_mmio, pci, "pci-ecam");
	if (!ret && pci->mmio32.size)
		ret = bus_register(mmio, pci->mmio32.base, pci->mmio32.size, window_access, &pci->mmio32,
				   pci->mmio32.name);
	if (!ret && pci->mmio64.size)
		ret = bus_register(mmio, pci->mmio64.base, pci->mmio64.size, window_access, &pci->mmio64,
				   pci->mmio64.name);
	if (!ret && pci->io.size)
		ret = bus_register(pio, pci->io.base, pci->io.size, window_access, &pci->io, pci->io.name);
	return ret;
}

/* ---- snapshot state ---- */

struct pci_device *pci_bus_device(struct pci_bus *pci, unsigned int slot)
{
	struct pci_device *dev;

	if (slot >= PCI_MAX_DEVICES)
		return NULL;
	pthread_mutex_lock(&pci->cfg_lock);
	dev = pci->devices[slot];
	pthread_mutex_unlock(&pci->cfg_lock);
	return dev;
}

static uint32_t slot_bitmap(const struct pci_bus *pci)
{
	uint32_t slots = 0;

	for (unsigned int i = 0; i < PCI_MAX_DEVICES; i++)
		if (pci->devices[i])
			slots |= 1u << i;
	return slots;
}

void pci_bus_save(struct pci_bus *pci, struct pci_bus_state *st)
{
	pthread_mutex_lock(&pci->cfg_lock);
	st->conf1_address = pci->conf1_address;
	st->slots = slot_bitmap(pci);
	pthread_mutex_unlock(&pci->cfg_lock);
}

int pci_bus_restore(struct pci_bus *pci, const struct pci_bus_state *st, char *err, size_t err_size)
{
	uint32_t have;
	int ret = 0;

	pthread_mutex_lock(&pci->cfg_lock);
	have = slot_bitmap(pci);
	if (have != st->slots) {
		errmsg_set(err, err_size, "PCI: the snapshot has devices in slots 0x%08x, this VM in 0x%08x", st->slots,
			   have);
		ret = -EINVAL;
	} else {
		pci->conf1_address = st->conf1_address & CONF1_ADDRESS_MASK;
	}
	pthread_mutex_unlock(&pci->cfg_lock);
	return ret;
}

/* What the fields cannot say: CONFIG_ADDRESS holds only its defined bits, the host bridge is there. */
static int pci_bus_state_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct pci_bus_state *st = p;

	(void)version;
	if (st->conf1_address & ~CONF1_ADDRESS_MASK) {
		errmsg_set(err, err_size, "PCI bus state: conf1_address 0x%08x has reserved bits set",
			   st->conf1_address);
		return -EINVAL;
	}
	if (!(st->slots & 1)) {
		errmsg_set(err, err_size, "PCI bus state: slots 0x%08x lack the host bridge (slot 0)", st->slots);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field pci_bus_state_fields[] = {
	CODEC_UINT(struct pci_bus_state, conf1_address, 4, 1),
	CODEC_UINT(struct pci_bus_state, slots, 4, 1),
};

const struct codec_table pci_bus_state_codec =
	CODEC_TABLE(struct pci_bus_state, "PCI bus state", 1, 1, pci_bus_state_fields, pci_bus_state_check);

void pci_function_save(struct pci_device *dev, struct pci_function_state *st)
{
	struct pci_bus *pci = dev->bus;

	if (pci)
		pthread_mutex_lock(&pci->cfg_lock);
	memcpy(st->config, dev->config, sizeof(st->config));
	st->intx_level = atomic_load(&dev->intx_level);
	if (pci)
		pthread_mutex_unlock(&pci->cfg_lock);
}

int pci_function_restore(struct pci_device *dev, const struct pci_function_state *st, char *err, size_t err_size)
{
	struct pci_bus *pci = dev->bus;
	uint8_t config[PCIE_CONFIG_SPACE_SIZE];
	uint32_t i;

	if (!pci) {
		errmsg_set(err, err_size, "PCI %s: not on a bus", dev->name);
		return -EINVAL;
	}
	pthread_mutex_lock(&pci->cfg_lock);
	for (i = 0; i < PCIE_CONFIG_SPACE_SIZE; i++) {
		uint8_t ro = (uint8_t)~(dev->wmask[i] | dev->w1cmask[i]);

		/* Status.Interrupt Status is computed on reads, never stored: either value is fine. */
		if (i == PCI_STATUS)
			ro &= (uint8_t)~PCI_STATUS_INTERRUPT;
		if ((st->config[i] & ro) != (dev->config[i] & ro)) {
			pthread_mutex_unlock(&pci->cfg_lock);
			errmsg_set(err, err_size,
				   "PCI %s (slot %d): read-only config byte 0x%03x is 0x%02x in the snapshot, 0x%02x here "
				   "(a different device)",
				   dev->name, dev->slot, i, st->config[i], dev->config[i]);
			return -EINVAL;
		}
		config[i] = (uint8_t)((dev->config[i] & ro) | (st->config[i] & ~ro));
	}
	memcpy(dev->config, config, sizeof(config));
	pthread_mutex_lock(&pci->intx_lock);
	dev->intx_disabled = pci_config_read16(dev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
	atomic_store(&dev->intx_level, st->intx_level);
	if (dev->intx_gsi)
		intx_update(pci, dev);
	pthread_mutex_unlock(&pci->intx_lock);
	update_decode(pci, dev);
	pthread_mutex_unlock(&pci->cfg_lock);
	return 0;
}

static const struct codec_field pci_function_state_fields[] = {
	CODEC_BYTES(struct pci_function_state, config, 1),
	CODEC_BOOL(struct pci_function_state, intx_level, 1),
};

const struct codec_table pci_function_state_codec =
	CODEC_TABLE(struct pci_function_state, "PCI function state", 1, 1, pci_function_state_fields, NULL);
