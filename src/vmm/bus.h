/* SPDX-License-Identifier: MIT */
/*
 * Address-range dispatch for port I/O and MMIO exits.
 *
 * Devices register [base, base+len) with a handler; a vCPU exit is routed to the one range containing
 * the access. Ranges are registered before vCPUs start and never change while they run, so lookups take
 * no lock (binary search over a sorted array). Handlers run on vCPU threads concurrently: each device
 * serialises itself with its own lock.
 */
#ifndef KILN_VMM_BUS_H
#define KILN_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One access. `offset` is relative to the registered base; `data` holds `len` bytes (1, 2, 4 or 8;
 * little-endian). On a read the handler fills `data`; on a write it consumes it.
 */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_handler_fn handler;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	unsigned int nr_ranges;
	unsigned int capacity;
	const char *name; /* "pio" or "mmio", for messages */
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Register a range. Returns 0, -EINVAL for len 0 or wrap-around, -EEXIST on overlap, -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler_fn handler, void *opaque, const char *name)
	__attribute__((warn_unused_result));

/* The range containing addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatch one access. Returns true when a device handled it; false when nothing is registered at
 * `addr` (then a read's data is left for the caller to fill, usually all-ones).
 */
bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
