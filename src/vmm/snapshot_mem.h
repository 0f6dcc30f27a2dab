/* SPDX-License-Identifier: MIT */
/*
 * The snapshot memory file and the MEMO section that describes it: guest RAM as the memfd holds it,
 * written next to the state file (snapshot_file.h) and paired with it by the snapshot id, with sampled
 * and full checksums, an atomic commit after the state file's, and a roll forward of an interrupted
 * one on restore. Layout and crash guarantees: docs/snapshot-format.md "The memory file", "Atomicity".
 */
#ifndef KILN_VMM_SNAPSHOT_MEM_H
#define KILN_VMM_SNAPSHOT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot_file.h"

/*
 * The memory file is guest RAM as the memfd holds it (data_size bytes, holes for zero pages allowed),
 * followed by a SNAP_MEM_TRAILER_SIZE-byte trailer carrying the snapshot id, so a state file is never
 * restored with another snapshot's RAM. See docs/snapshot-format.md "The memory file".
 */
#define SNAP_MEM_PAGE_SIZE 4096u
#define SNAP_MEM_TRAILER_SIZE 4096u
#define SNAP_MEMO_MAX_REGIONS 16
#define SNAP_MEM_SAMPLE_PAGES 64u       /* pages in the sampled checksum checked on every restore */
#define SNAP_MEM_MAX_SAMPLE_PAGES 4096u
#define SNAP_MEM_CHUNK_SIZE (2u << 20)  /* bytes of the memory file per chunk checksum */

/*
 * MCRC section (instance 0, version 1, SNAP_SECTION_OPTIONAL so an older kiln ignores it): chunk_size
 * (le32, a power of two, at least a page), nr_chunks (le32, data_size / chunk_size rounded up), then
 * per chunk the crc32 of its bytes (le32; the last chunk ends at data_size). Snapshots before it
 * (8d1a722) have none. docs/snapshot-format.md "MCRC".
 */
#define SNAP_ID_MCRC SNAP_FOURCC('M', 'C', 'R', 'C')
#define SNAP_MCRC_VERSION 1

struct snap_mem_chunks {
	uint32_t chunk_size;            /* bytes */
	uint32_t nr;
	uint32_t *crc;                  /* nr checksums, malloc'd (snap_mem_chunks_free) */
};

struct snap_memo_region {
	uint64_t gpa;                   /* guest physical start */
	uint64_t size;                  /* bytes, multiple of SNAP_MEM_PAGE_SIZE */
	uint64_t file_offset;           /* where its bytes start in the memory file */
};

/* Payload of the MEMO section (snap_memo_codec), decoded. */
struct snap_memo {
	uint64_t mem_size;              /* guest RAM, bytes: the sum of the region sizes */
	uint64_t data_size;             /* memory file bytes before its trailer */
	uint32_t nr_regions;
	uint32_t sample_pages;          /* pages hashed into sample_crc */
	uint32_t sample_crc;            /* crc32 of the sampled pages (docs: "Checksums") */
	bool has_full_crc;
	uint32_t full_crc;              /* crc32 of bytes [0, data_size), when has_full_crc */
	struct snap_memo_region regions[SNAP_MEMO_MAX_REGIONS];
};

/*
 * The MEMO section's payload (lib/codec.h), version 1 (kiln 8d1a722's, the oldest read): mem_size,
 * data_size (le64), nr_regions, sample_pages, sample_crc, flags (bit 0: has_full_crc), full_crc and a
 * reserved zero (le32 each), then nr_regions regions of gpa, size, file_offset (le64 each): 40 + 24 *
 * nr_regions bytes. Decoding checks 1 to SNAP_MEMO_MAX_REGIONS page-aligned regions sorted by gpa that
 * overlap neither in guest physical space nor in the file, lie within data_size and add up to
 * mem_size; 1 to SNAP_MEM_MAX_SAMPLE_PAGES sampled pages; no full_crc without its flag.
 */
extern const struct codec_table snap_memo_codec;

/*
 * Create the memory file's temp file "<path>.tmp.<pid>[.<n>]" (O_EXCL, 0600) for the caller to fill
 * with m->data_size bytes of RAM (write, copy_file_range, holes). Its name goes to `tmp_path`
 * (`tmp_size` bytes). Returns a read-write fd or -errno (logged).
 */
int snap_mem_create(const char *path, char *tmp_path, size_t tmp_size) __attribute__((warn_unused_result));

/*
 * After the RAM is written to `fd`: append the trailer with the snapshot `id` at offset m->data_size,
 * compute m->sample_crc (SNAP_MEM_SAMPLE_PAGES pages), if `chunks` the crc32 of every
 * SNAP_MEM_CHUNK_SIZE chunk and, if `full`, m->full_crc over all the data (one pass for both), then
 * fsync. Returns 0 or -errno (logged).
 */
int snap_mem_finish(int fd, struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE], bool full,
		    struct snap_mem_chunks *chunks) __attribute__((warn_unused_result));

void snap_mem_chunks_free(struct snap_mem_chunks *c);

/* The MCRC payload of `c` into a malloc'd buffer (*out, *len bytes). Returns 0 or -ENOMEM. */
int snap_mem_chunks_encode(const struct snap_mem_chunks *c, uint8_t **out, size_t *len)
	__attribute__((warn_unused_result));

/*
 * Decode an MCRC payload (`len` bytes) for the memory file that `m` describes into `c` (freed by the
 * caller). Returns 0 or -EINVAL with a message.
 */
int snap_mem_chunks_decode(const void *p, size_t len, const struct snap_memo *m, struct snap_mem_chunks *c,
			   char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Check chunk `i` of the memory file `fd` (as a lazy restore would before it uses it), or every chunk
 * when `i` is UINT32_MAX. Returns 0, -EBADMSG with the first bad chunk's offset in the message, or
 * -errno for I/O.
 */
int snap_mem_verify(int fd, const char *path, const struct snap_memo *m, const struct snap_mem_chunks *c, uint32_t i,
		    char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Rename the finished memory temp file over `path` and fsync the directory. Call only after the state
 * file is committed (docs: "Atomicity"). Returns 0 or -errno (logged).
 */
int snap_mem_commit(const char *tmp_path, const char *path) __attribute__((warn_unused_result));

/* Whether `fd` ends in a kiln memory file trailer (its magic): a file kiln may replace. */
bool snap_mem_fd_is_kiln(int fd);

/*
 * Open the memory file at `path` for restore (read-only) and check that it belongs to the snapshot
 * `id`: size = data_size + trailer, trailer intact, same id, sampled checksum and, if `verify_full` and
 * recorded, the full checksum. If `path` is missing or belongs to another snapshot but a completed
 * "<path>.tmp.*" of this snapshot exists (a crash between the state commit and snap_mem_commit), that
 * one is renamed into place first. Returns the fd or -errno with a message.
 */
int snap_mem_open(const char *path, const struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE], bool verify_full,
		  char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
