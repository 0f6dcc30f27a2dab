/* SPDX-License-Identifier: MIT */
/*
 * Decompression of a Linux kernel payload (the compressed vmlinux inside a bzImage, Linux x86 boot
 * protocol 2.08+ payload_offset/payload_length) in user space, so the guest skips its own decompressor:
 * gzip (zlib), xz (liblzma), zstd (libzstd), lz4 legacy frames (liblz4), lzma-alone (liblzma).
 */
#ifndef KILN_ARCH_X86_PAYLOAD_H
#define KILN_ARCH_X86_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

enum payload_format {
	PAYLOAD_UNKNOWN = 0,
	PAYLOAD_GZIP,
	PAYLOAD_XZ,
	PAYLOAD_ZSTD,
	PAYLOAD_LZ4,
	PAYLOAD_LZMA,
	PAYLOAD_BZIP2, /* detected, not supported */
	PAYLOAD_LZO,   /* detected, not supported */
	PAYLOAD_NONE,  /* already an ELF */
};

/* Detect the format from the leading magic bytes. */
enum payload_format payload_detect(const uint8_t *data, size_t len);
const char *payload_format_name(enum payload_format fmt);

/*
 * Decompress `len` bytes at `data` into a new malloc'd buffer (*out, *out_len). The output may not
 * exceed `max_out` bytes (a hostile or corrupt file must not exhaust memory). Returns 0, -EINVAL for
 * corrupt/truncated input, -E2BIG when the output would exceed max_out, -ENOTSUP for a format kiln
 * cannot decompress, -ENOMEM.
 */
int payload_decompress(const uint8_t *data, size_t len, size_t max_out, uint8_t **out, size_t *out_len)
	__attribute__((warn_unused_result));

#endif
