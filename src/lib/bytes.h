/* SPDX-License-Identifier: MIT */
/* Little-endian access to the byte buffers of port I/O, MMIO and config-space accesses. */
#ifndef KILN_LIB_BYTES_H
#define KILN_LIB_BYTES_H

#include <stdint.h>

/* The first `len` bytes (at most 4) of `data` as a little-endian value. */
static inline uint32_t le_get(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

/* Store the low `len` bytes (at most 4) of `val` little-endian. */
static inline void le_put(uint8_t *data, uint32_t val, uint32_t len)
{
	for (uint32_t i = 0; i < len && i < 4; i++)
		data[i] = (uint8_t)(val >> (8 * i));
}

#endif
