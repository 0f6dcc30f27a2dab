// SPDX-License-Identifier: MIT
/*
 * The wire format of the PCI and virtio snapshot states (sections PCI, PCIF, MSIX, VIRT, VRNG, VBLK,
 * VNET): each state struct filled with distinctive values in every field encodes to exactly the bytes
 * kiln 8d1a722 wrote for it (the golden payloads below, captured from its hand-written encoders before
 * the codec tables replaced them), and those bytes decode back to the struct. Small states are spelled
 * out byte by byte; states with full arrays (2048 MSI-X vectors, 256 queues, a 4 KiB config space) are
 * pinned by length and CRC-32. Every golden payload is also canonical: any one byte changed either is
 * refused or encodes back to itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "lib/codec.h"

#define BUF_SIZE (64u << 10)

/* `st` encoded into a fresh buffer (BUF_SIZE), its length in *len. */
static uint8_t *encode(const struct codec_table *t, const void *st, size_t *len)
{
	uint8_t *buf = malloc(BUF_SIZE);
	struct snap_enc e;

	assert_non_null(buf);
	snap_enc_init(&e, buf, BUF_SIZE);
	assert_int_equal(codec_encode(t, st, &e), 0);
	*len = e.len;
	return buf;
}

/* Hex digits (spaces ignored) to bytes; the count in *len. */
static uint8_t *unhex(const char *hex, size_t *len)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t *buf = malloc(strlen(hex) / 2 + 1);
	size_t n = 0, nibbles = 0;

	assert_non_null(buf);
	for (const char *p = hex; *p; p++) {
		const char *d = strchr(digits, *p);

		if (*p == ' ')
			continue;
		assert_true(*p && d);
		buf[n] = (uint8_t)(nibbles++ % 2 ? buf[n] << 4 | (d - digits) : (d - digits));
		n += nibbles % 2 == 0;
	}
	assert_int_equal(nibbles % 2, 0);
	*len = n;
	return buf;
}

/*
 * Decoding `bytes` gives `st` back and encoding it gives `bytes` back; every single byte changed
 * (xor 0x5a) is either refused or is its own encoding: nothing the decoder accepts is dropped.
 */
static void check_canonical(const struct codec_table *t, const void *st, const uint8_t *bytes, size_t len)
{
	void *got = calloc(1, t->size);
	uint8_t *copy = malloc(len), *again;
	size_t again_len;
	char err[256];

	assert_non_null(got);
	assert_non_null(copy);
	assert_int_equal(codec_decode(t, got, bytes, len, t->version, err, sizeof(err)), 0);
	assert_memory_equal(got, st, t->size);
	/* Every byte of a spelled-out payload; a sample of a long one (61: every field offset, in time). */
	for (size_t i = 0; i < len; i += len > 4096 ? 61 : 1) {
		memcpy(copy, bytes, len);
		copy[i] ^= 0x5a;
		if (codec_decode(t, got, copy, len, t->version, err, sizeof(err)))
			continue;
		again = encode(t, got, &again_len);
		assert_int_equal(again_len, len);
		assert_memory_equal(again, copy, len);
		free(again);
	}
	free(copy);
	free(got);
}

/* `st` encodes to the spelled-out golden payload `hex`, which decodes back to `st`. */
static void check_golden_hex(const struct codec_table *t, const void *st, const char *hex)
{
	size_t want_len, len;
	uint8_t *want = unhex(hex, &want_len), *got = encode(t, st, &len);

	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, len);
	check_canonical(t, st, want, want_len);
	free(want);
	free(got);
}

/* `st` encodes to `want_len` bytes with CRC-32 `want_crc` (a golden payload too long to spell out). */
static void check_golden_crc(const struct codec_table *t, const void *st, size_t want_len, uint32_t want_crc)
{
	size_t len;
	uint8_t *got = encode(t, st, &len);

	assert_int_equal(len, want_len);
	assert_int_equal(crc32(0, got, (uInt)len), want_crc);
	check_canonical(t, st, got, len);
	free(got);
}

/* ---- PCI ---- */

static void test_pci_bus_golden(void **state)
{
	struct pci_bus_state *st = calloc(1, sizeof(*st));

	(void)state;
	st->conf1_address = 0x80abcdfc; /* enable, bus 0xab, device 0x19, function 5, register 0xfc */
	st->slots = 0xa5a5a5a5;         /* bit 0, the host bridge, set */
	check_golden_hex(&pci_bus_state_codec, st,
			 "fccdab80" /* conf1_address */
			 "a5a5a5a5" /* slots */);
	free(st);
}

static void fill_config(struct pci_function_state *st)
{
	for (unsigned int i = 0; i < PCIE_CONFIG_SPACE_SIZE; i++)
		st->config[i] = (uint8_t)(i * 31 + 7 + (i >> 8));
	st->intx_level = true;
}

static void test_pci_function_golden(void **state)
{
	struct pci_function_state *st = calloc(1, sizeof(*st));
	size_t len;
	uint8_t *got;

	(void)state;
	fill_config(st);
	/* The layout: the 4 KiB config space as it is, then the INTx request as one byte. */
	got = encode(&pci_function_state_codec, st, &len);
	assert_int_equal(len, PCIE_CONFIG_SPACE_SIZE + 1);
	assert_memory_equal(got, st->config, PCIE_CONFIG_SPACE_SIZE);
	assert_int_equal(got[PCIE_CONFIG_SPACE_SIZE], 1);
	free(got);
	check_golden_crc(&pci_function_state_codec, st, 4097, 0xa105f98f);
	free(st);
}

/* ---- MSI-X ---- */

static void fill_msix(struct msix_state *st, unsigned int nr)
{
	st->nr = nr;
	for (unsigned int i = 0; i < nr; i++) {
		st->table[i].addr_lo = 0xfee00000u | (i << 4);
		st->table[i].addr_hi = 0x01020304u * (i + 1);
		st->table[i].data = 0x4000u + i * 0x111;
		st->table[i].ctrl = i & 1;
	}
	for (unsigned int w = 0; w < msix_pba_size(nr) / 8; w++)
		st->pba[w] = 0x8040201008040201ull * (w + 1);
	if (nr % 64)
		st->pba[nr / 64] &= (1ull << (nr % 64)) - 1; /* bits past the last vector are reserved */
}

static void test_msix_golden(void **state)
{
	struct msix_state *st = calloc(1, sizeof(*st));

	(void)state;
	fill_msix(st, 3);
	check_golden_hex(&msix_state_codec, st,
			 "03000000"                            /* nr */
			 "0000e0fe 04030201 00400000 00000000" /* table[0]: addr_lo, addr_hi, data, ctrl */
			 "1000e0fe 08060402 11410000 01000000" /* table[1] */
			 "2000e0fe 0c090603 22420000 00000000" /* table[2] */
			 "0100000000000000"                    /* pba[0]: vectors 0-2 */);
	/* 65 vectors: two PBA words, the second holding one bit; then every vector there can be. */
	memset(st, 0, sizeof(*st));
	fill_msix(st, 65);
	check_golden_crc(&msix_state_codec, st, 4 + 65 * 16 + 16, 0xb326935d);
	memset(st, 0, sizeof(*st));
	fill_msix(st, MSIX_MAX_VECTORS);
	check_golden_crc(&msix_state_codec, st, 4 + MSIX_MAX_VECTORS * 16 + MSIX_MAX_VECTORS / 8, 0xb921c064);
	free(st);
}

/* ---- virtio transport ---- */

static void fill_queue(struct virtio_pci_queue_state *qs, unsigned int i)
{
	qs->size = (uint16_t)(0x100 + i);
	qs->msix_vector = (uint16_t)(0x8000 + i);
	qs->enabled = i % 2 == 0;
	qs->desc = 0x1111111100000000ull + i * 0x1000;
	qs->driver = 0x2222222200000000ull + i * 0x1000;
	qs->device = 0x3333333300000000ull + i * 0x1000;
	qs->ready = i % 3 == 0;
	qs->broken_reported = i % 5 == 1;
	qs->vq.last_avail_idx = (uint16_t)(0xa000 + i);
	qs->vq.used_idx = (uint16_t)(0xb000 + i);
	qs->vq.signalled_used = (uint16_t)(0xc000 + i);
	qs->vq.broken = i % 7 == 0;
}

static void fill_transport(struct virtio_pci_state *st, unsigned int nr_queues)
{
	st->device_id = 0x1234;
	st->nr_queues = nr_queues;
	st->device_features = 0x0123456789abcdefull;
	st->driver_features = 0xfedcba9876543210ull;
	st->driver_features_invalid = true;
	st->device_feature_select = 0x11223344;
	st->driver_feature_select = 0x55667788;
	st->config_msix_vector = 0x9abc;
	st->status = 0x8f;
	st->config_generation = 0xde;
	st->queue_select = 0xf00d;
	st->isr = 0x03;
	st->live = true;
	for (unsigned int i = 0; i < nr_queues; i++)
		fill_queue(&st->queues[i], i);
}

static void test_virtio_pci_golden(void **state)
{
	struct virtio_pci_state *st = calloc(1, sizeof(*st));

	(void)state;
	fill_transport(st, 2);
	check_golden_hex(&virtio_pci_state_codec, st,
			 "3412"             /* device_id */
			 "bc9a"             /* config_msix_vector */
			 "02000000"         /* nr_queues */
			 "efcdab8967452301" /* device_features */
			 "1032547698badcfe" /* driver_features */
			 "44332211"         /* device_feature_select */
			 "88776655"         /* driver_feature_select */
			 "01"               /* driver_features_invalid */
			 "8f"               /* status */
			 "de"               /* config_generation */
			 "03"               /* isr */
			 "0df0"             /* queue_select */
			 "01"               /* live */
			 "00"               /* reserved */
			 /* queues[0]: desc, driver, device, size, msix_vector, last_avail_idx, used_idx,
			  * signalled_used, flags (enabled | ready << 1 | broken_reported << 2 | broken << 3),
			  * 5 reserved bytes */
			 "0000000011111111 0000000022222222 0000000033333333 0001 0080 00a0 00b0 00c0 0b 0000000000"
			 /* queues[1] */
			 "0010000011111111 0010000022222222 0010000033333333 0101 0180 01a0 01b0 01c0 04 0000000000");
	memset(st, 0, sizeof(*st));
	fill_transport(st, VIRTIO_PCI_MAX_QUEUES);
	check_golden_crc(&virtio_pci_state_codec, st, 40 + VIRTIO_PCI_MAX_QUEUES * 40, 0x79cbeb4c);
	free(st);
}

/* ---- virtio devices ---- */

static void test_virtio_rng_golden(void **state)
{
	struct virtio_rng_state st = { .bytes = 0x0123456789abcdefull };

	(void)state;
	check_golden_hex(&virtio_rng_state_codec, &st, "efcdab8967452301" /* bytes */);
}

static void test_virtio_blk_golden(void **state)
{
	struct virtio_blk_state *st = calloc(1, sizeof(*st));

	(void)state;
	st->capacity = 0x1122334455667788ull;
	st->read_only = true;
	memcpy(st->id, "KILN-SERIAL-ABCDEFGH", VIRTIO_BLK_ID_BYTES); /* all 20 bytes, no NUL */
	check_golden_hex(&virtio_blk_state_codec, st,
			 "8877665544332211"                         /* capacity */
			 "01"                                       /* read_only */
			 "4b494c4e2d53455249414c2d4142434445464748" /* id */);
	/* A short serial: NUL-padded, the padding is on the wire too. */
	memset(st->id, 0, sizeof(st->id));
	memcpy(st->id, "disk0", 5);
	st->read_only = false;
	check_golden_hex(&virtio_blk_state_codec, st,
			 "8877665544332211 00 6469736b30 000000000000000000000000000000");
	free(st);
}

/*
 * virtio-net: the fixture has no virtio-net, so this test alone pins its format: every field with a
 * value of its own in every byte, the layout spelled out, the multicast bit refused wherever the rest
 * of the payload is fine.
 */
static void test_virtio_net_golden(void **state)
{
	struct virtio_net_state *st = calloc(1, sizeof(*st)), *got = calloc(1, sizeof(*got));
	size_t len;
	uint8_t *bytes;
	char err[256];

	(void)state;
	memcpy(st->mac, (uint8_t[]){ 0x02, 0x4b, 0x49, 0x4c, 0x4e, 0x07 }, 6);
	st->stats.rx_packets = 0x0102030405060708ull;
	st->stats.rx_bytes = 0x1112131415161718ull;
	st->stats.rx_drops = 0x2122232425262728ull;
	st->stats.tx_packets = 0x3132333435363738ull;
	st->stats.tx_bytes = 0x4142434445464748ull;
	st->stats.tx_drops = 0x5152535455565758ull;
	check_golden_hex(&virtio_net_state_codec, st,
			 "024b494c4e07"     /* mac */
			 "0807060504030201" /* stats.rx_packets */
			 "1817161514131211" /* stats.rx_bytes */
			 "2827262524232221" /* stats.rx_drops */
			 "3837363534333231" /* stats.tx_packets */
			 "4847464544434241" /* stats.tx_bytes */
			 "5857565554535251" /* stats.tx_drops */);
	bytes = encode(&virtio_net_state_codec, st, &len);
	assert_int_equal(len, 54);
	/* Counters at their limits round-trip; a multicast MAC (bit 0 of byte 0) is no station's. */
	memset(bytes + 6, 0xff, 48);
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len, 1, err, sizeof(err)), 0);
	assert_int_equal(got->stats.tx_drops, UINT64_MAX);
	bytes[0] |= 1;
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "multicast"));
	/* Every other bit of the MAC is the guest's to have. */
	bytes[0] = 0xfe;
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len, 1, err, sizeof(err)), 0);
	assert_int_equal(got->mac[0], 0xfe);
	/* Short, long, other versions. */
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len - 1, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len + 1, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len, 2, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(codec_decode(&virtio_net_state_codec, got, bytes, len, 0, err, sizeof(err)), -ENOTSUP);
	free(bytes);
	free(got);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pci_bus_golden),
		cmocka_unit_test(test_pci_function_golden),
		cmocka_unit_test(test_msix_golden),
		cmocka_unit_test(test_virtio_pci_golden),
		cmocka_unit_test(test_virtio_rng_golden),
		cmocka_unit_test(test_virtio_blk_golden),
		cmocka_unit_test(test_virtio_net_golden),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
