// SPDX-License-Identifier: MIT
#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr_ranges = bus->capacity = 0;
}

/* Index of the first range whose base is greater than addr. */
static unsigned int bus_upper_bound(const struct bus *bus, uint64_t addr)
{
	unsigned int lo = 0, hi = bus->nr_ranges;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler_fn handler, void *opaque, const char *name)
{
	unsigned int pos;

	if (len == 0 || base + len - 1 < base || !handler)
		return -EINVAL;
	pos = bus_upper_bound(bus, base);
	if (pos > 0) {
		const struct bus_range *prev = &bus->ranges[pos - 1];

		if (prev->base + prev->len > base)
			return -EEXIST;
	}
	if (pos < bus->nr_ranges && bus->ranges[pos].base <= base + len - 1)
		return -EEXIST;
	if (bus->nr_ranges == bus->capacity) {
		unsigned int cap = bus->capacity ? bus->capacity * 2 : 16;
		struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		bus->ranges = r;
		bus->capacity = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){
		.base = base, .len = len, .handler = handler, .opaque = opaque, .name = name,
	};
	bus->nr_ranges++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	unsigned int pos = bus_upper_bound(bus, addr);
	const struct bus_range *r;

	if (pos == 0)
		return NULL;
	r = &bus->ranges[pos - 1];
	return addr - r->base < r->len ? r : NULL;
}

bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr);

	if (!r)
		return false;
	r->handler(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
