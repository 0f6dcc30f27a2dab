/* SPDX-License-Identifier: MIT */
/*
 * The snapshot state file: a versioned container of sections, each with its own id, instance, version
 * and checksum, written atomically (temp file, fsync, rename, fsync of the directory) and validated
 * completely before anything in it is used. Guest RAM goes to a separate memory file (snapshot_mem.h),
 * described by the state file's MEMO section and paired with it by the snapshot id. The byte layout,
 * the section ids, versioning rules and crash guarantees: docs/snapshot-format.md.
 *
 * This file knows nothing about vCPUs or devices: their code describes its own plain state struct
 * with a field table (lib/codec.h), which encodes it into a section and decodes it on restore.
 */
#ifndef KILN_VMM_SNAPSHOT_FILE_H
#define KILN_VMM_SNAPSHOT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "lib/codec.h"

/* Format of the container (not of any section): see docs/snapshot-format.md "Versioning". */
#define SNAP_FORMAT_MAJOR 1
#define SNAP_FORMAT_MINOR 0

#define SNAP_STATE_MAX_SIZE (64u << 20) /* a state file larger than this is refused, bytes */
#define SNAP_HEADER_SIZE 80
#define SNAP_SECTION_HEADER_SIZE 32
#define SNAP_TRAILER_SIZE 24
#define SNAP_ID_SIZE 16                 /* random snapshot id, shared with the memory file */

/*
 * Section ids: four ASCII characters, stored so that the file shows them in order ("VCPU" in a hex
 * dump). Who writes each one: docs/snapshot-format.md "Sections".
 */
#define SNAP_FOURCC(a, b, c, d) \
	((uint32_t)(uint8_t)(a) | (uint32_t)(uint8_t)(b) << 8 | (uint32_t)(uint8_t)(c) << 16 | (uint32_t)(uint8_t)(d) << 24)

#define SNAP_ID_CONF SNAP_FOURCC('C', 'O', 'N', 'F') /* the VM config, JSON */
#define SNAP_ID_MEMO SNAP_FOURCC('M', 'E', 'M', 'O') /* guest RAM layout and the memory file (struct snap_memo) */
#define SNAP_ID_DISK SNAP_FOURCC('D', 'I', 'S', 'K') /* one per drive: path, size, mtime */
#define SNAP_ID_VCPU SNAP_FOURCC('V', 'C', 'P', 'U') /* one per vCPU, instance = vCPU index */
#define SNAP_ID_IRQC SNAP_FOURCC('I', 'R', 'Q', 'C') /* in-kernel PIC, IOAPIC */
#define SNAP_ID_PIT SNAP_FOURCC('P', 'I', 'T', ' ')  /* in-kernel PIT */
#define SNAP_ID_CLCK SNAP_FOURCC('C', 'L', 'C', 'K') /* kvmclock */
#define SNAP_ID_UART SNAP_FOURCC('U', 'A', 'R', 'T') /* 16550A, instance = port index */
#define SNAP_ID_RTC SNAP_FOURCC('R', 'T', 'C', ' ')  /* CMOS RTC */
#define SNAP_ID_I8042 SNAP_FOURCC('I', '8', '4', '2') /* i8042 controller */

/*
 * Header and section flags: bits 0-15 change the meaning of the data, so a reader refuses any it does
 * not know; bits 16-31 may be ignored by a reader that does not know them. None of the low bits is
 * defined in format 1.0.
 */
#define SNAP_FLAGS_REQUIRED_MASK 0x0000ffffu
#define SNAP_SECTION_OPTIONAL (1u << 16) /* a reader that does not know this section id may skip it */

struct snap_writer;
struct snap_reader;

/* ---- Writing ---- */

/*
 * Start a snapshot that will replace `path` on commit. Creates "<path>.tmp.<pid>" (or, if that name
 * is taken, "<path>.tmp.<pid>.<n>") in the same directory with O_EXCL and mode 0600; nothing at `path`
 * changes until snap_writer_commit(). Returns NULL with errno (the reason is also logged with the path),
 * e.g. EACCES when the directory is not writable.
 */
struct snap_writer *snap_writer_open(const char *path);

/* The temp file being written (valid until commit or abort). */
const char *snap_writer_tmp_path(const struct snap_writer *w);

/* The random id of this snapshot, to be written into its memory file (snap_mem_finish). */
void snap_writer_id(const struct snap_writer *w, uint8_t id[SNAP_ID_SIZE]);

/*
 * Append section (id, instance) with payload version `version` (>= 1) and `len` bytes of `data`
 * (NULL when len is 0). Written straight to the temp file; nothing is buffered. Returns 0, -EEXIST for
 * a second section with the same (id, instance), -EINVAL for version 0, -EFBIG when the state file
 * would exceed SNAP_STATE_MAX_SIZE, or -errno of a write (after which every later call and commit fail).
 */
int snap_write_section(struct snap_writer *w, uint32_t id, uint32_t instance, uint32_t version, const void *data,
		       size_t len) __attribute__((warn_unused_result));

/* snap_write_section() with section flags (SNAP_SECTION_OPTIONAL). */
int snap_write_section_flags(struct snap_writer *w, uint32_t id, uint32_t instance, uint32_t version, uint32_t flags,
			     const void *data, size_t len) __attribute__((warn_unused_result));

/*
 * Finish the snapshot: write the header (section count) and trailer (whole-file crc32), fsync the file,
 * rename it over `path`, fsync the directory. Only after the rename can the new snapshot be seen; a
 * crash before it leaves the previous file at `path` untouched. Frees `w` in every case (on failure the
 * temp file is removed). Returns 0 or -errno (logged).
 */
int snap_writer_commit(struct snap_writer *w) __attribute__((warn_unused_result));

/* Give up: remove the temp file and free `w`. `path` is untouched. NULL is accepted. */
void snap_writer_abort(struct snap_writer *w);

/* ---- Reading ---- */

struct snap_header_info {
	uint16_t format_major;
	uint16_t format_minor;
	uint32_t flags;
	char kiln_version[33];         /* version of the kiln that wrote it */
	uint64_t created_ns;           /* CLOCK_REALTIME at snap_writer_open, ns */
	uint8_t id[SNAP_ID_SIZE];
	uint32_t nr_sections;
};

/*
 * Read and validate the state file at `path`: size (at most SNAP_STATE_MAX_SIZE), magic, format
 * version, header, every section header (length within the file, no wrap), every section checksum,
 * the trailer and the whole-file checksum; then index the sections. On success *out owns the file's
 * contents. On failure returns -errno and writes a one-line reason naming the file and, where there is
 * one, the section ("vm.snap: section VCPU/1: checksum mismatch"):
 *   -EINVAL  malformed or truncated     -EBADMSG  a checksum does not match
 *   -ENOTSUP incompatible format major or unknown required flags
 *   -EFBIG   larger than SNAP_STATE_MAX_SIZE     other -errno: open/read errors
 */
int snap_reader_open(const char *path, struct snap_reader **out, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* snap_reader_open() on `len` bytes already in memory (copied); `name` is used in messages. */
int snap_reader_open_mem(const void *buf, size_t len, const char *name, struct snap_reader **out, char *err,
			 size_t err_size) __attribute__((warn_unused_result));

void snap_reader_close(struct snap_reader *r);

void snap_reader_header(const struct snap_reader *r, struct snap_header_info *out);

/*
 * The payload of section (id, instance), or NULL if the snapshot has none (a zero-length section
 * returns a non-NULL pointer). *version and *len (either may be NULL) receive its version and length
 * in bytes. The pointer is 8-byte aligned and valid until snap_reader_close(). Marks the section used.
 */
const void *snap_find_section(struct snap_reader *r, uint32_t id, uint32_t instance, uint32_t *version,
			      size_t *len);

/*
 * snap_find_section() for a section restore cannot do without: NULL with a message when it is missing
 * ("vm.snap: no section UART/0") or its version is 0 or above `max_version` ("vm.snap: section UART/0:
 * version 3 is newer than this kiln (2)").
 */
const void *snap_get_section(struct snap_reader *r, uint32_t id, uint32_t instance, uint32_t max_version,
			     uint32_t *version, size_t *len, char *err, size_t err_size);

/* How many sections have this id (e.g. VCPU sections, to compare with the vCPU count). */
unsigned snap_count_sections(const struct snap_reader *r, uint32_t id);

/*
 * After restore: -EINVAL with a message naming the first section nobody looked up that is not
 * SNAP_SECTION_OPTIONAL (state this kiln would silently drop), else 0.
 */
int snap_reader_check_all_used(const struct snap_reader *r, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* "VCPU/1", "PIT/0" (trailing spaces dropped), or "0x00000001/0" for an id that is not printable. */
const char *snap_section_name(uint32_t id, uint32_t instance, char *buf, size_t size);

/* ---- Shared with the memory file (snapshot_mem.c) ---- */

/* Whether `fd` starts with a kiln state file header (its magic): a file kiln may replace. */
bool snap_state_fd_is_kiln(int fd);

/* crc32 (zlib's, the gzip/PNG polynomial), continuing from `c` (0 to start). */
uint32_t snap_crc32(uint32_t c, const void *p, size_t len);

/* pwrite(2) all `len` bytes at `off`, retrying short writes and EINTR. 0 or -errno. */
int snap_pwrite_all(int fd, const void *buf, size_t len, off_t off) __attribute__((warn_unused_result));

/*
 * Create "<path>.tmp.<pid>", or "<path>.tmp.<pid>.<n>" when a name is taken (another writer in this
 * process, or a stale temp file of a dead process that had our pid), O_EXCL and mode 0600: never reuse
 * a file. Its name goes to `tmp` (`tmp_size` bytes). Returns a read-write fd, -ENAMETOOLONG, or -errno.
 */
int snap_create_tmp(const char *path, char *tmp, size_t tmp_size) __attribute__((warn_unused_result));

/*
 * Lock the snapshot target `path` for writing (exclusive; the lock file "<path>.lock", 0600, is created
 * and left in place) or for reading (`shared`; only an existing lock file, so a restore from a
 * read-only directory creates nothing). flock(2), never waiting: returns the lock's fd (close it to
 * unlock), -EBUSY while another process holds it, -ENOENT (no message) for a shared lock without lock
 * file, or -errno with a message. docs/snapshot-format.md "Atomicity".
 */
int snap_lock(const char *path, bool shared, char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Remove the temp files of `path` that a kiln process left when it died: "<path>.tmp.<pid>[.<n>]"
 * (snap_create_tmp's names) of a pid that no longer exists, regular files owned by this uid. Call
 * with the target locked and after the roll forward. Returns how many it removed (each is logged).
 */
unsigned snap_remove_stale_tmp(const char *path);

#endif
