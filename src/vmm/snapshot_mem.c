// SPDX-License-Identifier: MIT
/*
 * Snapshot memory file and MEMO section (snapshot_mem.h): layout and the reasons behind it in
 * docs/snapshot-format.md "The memory file". Split from snapshot_file.c, whose state-file container
 * it shares the temp-file, write and crc32 helpers with.
 */
#include "vmm/snapshot_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/fsync.h"
#include "lib/log.h"
#include "lib/safe_path.h"

static const uint8_t mem_magic[8] = { 'K', 'I', 'L', 'N', 'M', 'E', 'M', 0 };

#define MEM_TRAILER_VERSION 1
#define MEM_TRAILER_USED 44     /* bytes of the memory trailer that carry data; the rest is zero */

/* Reads exactly `len` bytes at `off`; -EIO if the file ends first. */
static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ---- MEMO section ---- */

static bool page_aligned(uint64_t v)
{
	return (v & (SNAP_MEM_PAGE_SIZE - 1)) == 0;
}

/*
 * What a table cannot say: no full_crc without its flag, a page-multiple memory file, and regions that
 * are page-aligned, sorted by gpa, overlap neither in guest physical space nor in the file, lie within
 * data_size and add up to mem_size.
 */
static int snap_memo_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct snap_memo *m = p;
	uint64_t total = 0;
	uint32_t i, j;

	/* Zero as written (docs/snapshot-format.md "MEMO"): anything else is another writer's meaning. */
	if (!m->has_full_crc && m->full_crc) {
		errmsg_set(err, err_size, "memory layout: full_crc without its flag is not zero");
		return -EINVAL;
	}
	if (m->data_size == 0 || !page_aligned(m->data_size) || m->data_size > UINT64_MAX / 2) {
		errmsg_set(err, err_size, "memory layout: memory file data size %" PRIu64 " is not a page multiple",
			   m->data_size);
		return -EINVAL;
	}
	for (i = 0; i < m->nr_regions; i++) {
		const struct snap_memo_region *g = &m->regions[i];

		if (!g->size || !page_aligned(g->gpa | g->size | g->file_offset) || g->gpa + g->size < g->gpa ||
		    g->file_offset > m->data_size || g->size > m->data_size - g->file_offset) {
			errmsg_set(err, err_size,
				   "memory layout: region %" PRIu32 " (gpa 0x%" PRIx64 ", %" PRIu64
				   " bytes at file offset %" PRIu64 ") is unaligned or outside the %" PRIu64
				   "-byte memory file",
				   i, g->gpa, g->size, g->file_offset, m->data_size);
			return -EINVAL;
		}
		if (i && g->gpa < m->regions[i - 1].gpa + m->regions[i - 1].size) {
			errmsg_set(err, err_size,
				   "memory layout: region %" PRIu32 " overlaps or precedes region %" PRIu32
				   " in guest physical space", i, i - 1);
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			const struct snap_memo_region *h = &m->regions[j];

			if (g->file_offset < h->file_offset + h->size && h->file_offset < g->file_offset + g->size) {
				errmsg_set(err, err_size, "memory layout: regions %" PRIu32 " and %" PRIu32
					   " overlap in the memory file", j, i);
				return -EINVAL;
			}
		}
		total += g->size;
	}
	if (total != m->mem_size) {
		errmsg_set(err, err_size, "memory layout: regions add up to %" PRIu64 " bytes, not the %" PRIu64
			   " bytes of guest RAM", total, m->mem_size);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field snap_memo_region_fields[] = {
	CODEC_UINT(struct snap_memo_region, gpa, 8, 1),
	CODEC_UINT(struct snap_memo_region, size, 8, 1),
	CODEC_UINT(struct snap_memo_region, file_offset, 8, 1),
};

static const struct codec_table snap_memo_region_codec =
	CODEC_TABLE(struct snap_memo_region, "memory region", 1, 1, snap_memo_region_fields, NULL);

/* flags is a le32 whose bit 0 says full_crc is recorded: the FLAGS byte, then three reserved bytes. */
static const struct codec_field snap_memo_fields[] = {
	CODEC_UINT(struct snap_memo, mem_size, 8, 1),
	CODEC_UINT(struct snap_memo, data_size, 8, 1),
	CODEC_RANGE(struct snap_memo, nr_regions, 4, 1, 1, SNAP_MEMO_MAX_REGIONS),
	CODEC_RANGE(struct snap_memo, sample_pages, 4, 1, 1, SNAP_MEM_MAX_SAMPLE_PAGES),
	CODEC_UINT(struct snap_memo, sample_crc, 4, 1),
	CODEC_FLAGS(struct snap_memo, "flags", 1, CODEC_BIT(struct snap_memo, has_full_crc)),
	CODEC_PAD(3, 1),
	CODEC_UINT(struct snap_memo, full_crc, 4, 1),
	CODEC_PAD(4, 1),
	CODEC_VARRAY(struct snap_memo, regions, nr_regions, &snap_memo_region_codec, 1),
};

const struct codec_table snap_memo_codec =
	CODEC_TABLE(struct snap_memo, "memory layout", 1, 1, snap_memo_fields, snap_memo_check);

/* ---- Memory file ---- */

/*
 * crc32 of the memory file's data: of every byte when `pages` is 0, else of `pages` pages spread evenly
 * from the first to the last, each preceded by its page index (le64) so moved pages do not match.
 */
static int mem_checksum(int fd, uint64_t data_size, uint32_t pages, uint32_t *out)
{
	uint64_t n = data_size / SNAP_MEM_PAGE_SIZE, off, j, k;
	size_t chunk = pages ? SNAP_MEM_PAGE_SIZE : 1u << 20;
	uint32_t c = snap_crc32(0, NULL, 0);
	uint8_t *buf;
	int ret = 0;

	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	if (!pages) {
		for (off = 0; off < data_size && !ret; off += chunk) {
			size_t len = data_size - off < chunk ? (size_t)(data_size - off) : chunk;

			ret = pread_all(fd, buf, len, (off_t)off);
			c = snap_crc32(c, buf, len);
		}
	} else {
		k = pages < n ? pages : n;
		for (j = 0; j < k && !ret; j++) {
			uint64_t idx = k == 1 ? 0 : j * (n - 1) / (k - 1);
			uint8_t le[8];
			struct snap_enc e;

			snap_enc_init(&e, le, sizeof(le));
			snap_put_u64(&e, idx);
			ret = pread_all(fd, buf, SNAP_MEM_PAGE_SIZE, (off_t)(idx * SNAP_MEM_PAGE_SIZE));
			c = snap_crc32(snap_crc32(c, le, sizeof(le)), buf, SNAP_MEM_PAGE_SIZE);
		}
	}
	free(buf);
	*out = c;
	return ret;
}

int snap_mem_create(const char *path, char *tmp_path, size_t tmp_size)
{
	int fd = snap_create_tmp(path, tmp_path, tmp_size);

	if (fd < 0)
		pr_err("memory file %s: cannot create a temp file next to it: %s", path, strerror(-fd));
	return fd;
}

/*
 * One pass over the data: the crc32 of each chunk into c->crc (c->chunk_size, c->nr set) and, if
 * `full`, their combination, the crc32 of every byte.
 */
static int mem_chunk_sums(int fd, uint64_t data_size, struct snap_mem_chunks *c, uint32_t *full)
{
	uint8_t *buf = malloc(SNAP_MEM_CHUNK_SIZE);
	uint32_t i, all = snap_crc32(0, NULL, 0);
	int ret = 0;

	c->chunk_size = SNAP_MEM_CHUNK_SIZE;
	c->nr = (uint32_t)((data_size + SNAP_MEM_CHUNK_SIZE - 1) / SNAP_MEM_CHUNK_SIZE);
	c->crc = calloc(c->nr, sizeof(*c->crc));
	if (!buf || !c->crc) {
		free(buf);
		return -ENOMEM;
	}
	for (i = 0; i < c->nr && !ret; i++) {
		uint64_t off = (uint64_t)i * SNAP_MEM_CHUNK_SIZE;
		size_t len = data_size - off < SNAP_MEM_CHUNK_SIZE ? (size_t)(data_size - off) : SNAP_MEM_CHUNK_SIZE;

		ret = pread_all(fd, buf, len, (off_t)off);
		c->crc[i] = snap_crc32(snap_crc32(0, NULL, 0), buf, len);
		all = (uint32_t)crc32_combine(all, c->crc[i], (z_off_t)len);
	}
	free(buf);
	if (full)
		*full = all;
	return ret;
}

void snap_mem_chunks_free(struct snap_mem_chunks *c)
{
	free(c->crc);
	memset(c, 0, sizeof(*c));
}

int snap_mem_finish(int fd, struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE], bool full,
		    struct snap_mem_chunks *chunks)
{
	struct snap_mem_chunks local = { 0 };
	uint8_t *tr = calloc(1, SNAP_MEM_TRAILER_SIZE);
	struct snap_enc e;
	int ret;

	if (!tr)
		return -ENOMEM;
	if (!m->data_size || !page_aligned(m->data_size)) {
		free(tr);
		return -EINVAL;
	}
	snap_enc_init(&e, tr, SNAP_MEM_TRAILER_SIZE);
	snap_put_bytes(&e, mem_magic, sizeof(mem_magic));
	snap_put_u32(&e, MEM_TRAILER_VERSION);
	snap_put_u32(&e, 0);
	snap_put_bytes(&e, id, SNAP_ID_SIZE);
	snap_put_u64(&e, m->data_size);
	snap_put_u32(&e, snap_crc32(0, tr, MEM_TRAILER_USED - 4));
	ret = snap_pwrite_all(fd, tr, SNAP_MEM_TRAILER_SIZE, (off_t)m->data_size);
	free(tr);
	/* Anything past the trailer (a reused, longer file) would fail the size check on restore. */
	if (!ret && ftruncate(fd, (off_t)(m->data_size + SNAP_MEM_TRAILER_SIZE)) < 0)
		ret = -errno;
	m->sample_pages = SNAP_MEM_SAMPLE_PAGES;
	if (!ret)
		ret = mem_checksum(fd, m->data_size, m->sample_pages, &m->sample_crc);
	m->has_full_crc = full;
	m->full_crc = 0; /* the MEMO codec writes it as it is: zero without its flag */
	if (!ret && (full || chunks))
		ret = mem_chunk_sums(fd, m->data_size, chunks ? chunks : &local, full ? &m->full_crc : NULL);
	snap_mem_chunks_free(&local);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (ret)
		pr_err("memory file: cannot finish: %s", strerror(-ret));
	return ret;
}

int snap_mem_chunks_encode(const struct snap_mem_chunks *c, uint8_t **out, size_t *len)
{
	struct snap_enc e;

	*len = 8 + 4 * (size_t)c->nr;
	*out = malloc(*len);
	if (!*out)
		return -ENOMEM;
	snap_enc_init(&e, *out, *len);
	snap_put_u32(&e, c->chunk_size);
	snap_put_u32(&e, c->nr);
	for (uint32_t i = 0; i < c->nr; i++)
		snap_put_u32(&e, c->crc[i]);
	return 0;
}

int snap_mem_chunks_decode(const void *p, size_t len, const struct snap_memo *m, struct snap_mem_chunks *c,
			   char *err, size_t err_size)
{
	struct snap_dec d;

	memset(c, 0, sizeof(*c));
	snap_dec_init(&d, p, len);
	if (len >= 8) {
		c->chunk_size = snap_get_u32(&d);
		c->nr = snap_get_u32(&d);
	}
	if (len < 8 || c->chunk_size < SNAP_MEM_PAGE_SIZE || (c->chunk_size & (c->chunk_size - 1)) ||
	    c->nr != (m->data_size + c->chunk_size - 1) / c->chunk_size || len != 8 + 4 * (size_t)c->nr) {
		errmsg_set(err, err_size, "memory checksums: %zu bytes for chunks of %" PRIu32 " bytes do not describe a "
			   "%" PRIu64 "-byte memory file", len, c->chunk_size, m->data_size);
		return -EINVAL;
	}
	c->crc = malloc(4 * (size_t)c->nr + 1);
	if (!c->crc)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->nr; i++)
		c->crc[i] = snap_get_u32(&d);
	return 0;
}

int snap_mem_verify(int fd, const char *path, const struct snap_memo *m, const struct snap_mem_chunks *c, uint32_t i,
		    char *err, size_t err_size)
{
	uint32_t first = i == UINT32_MAX ? 0 : i, end = i == UINT32_MAX ? c->nr : i + 1;
	uint8_t *buf;
	int ret = 0;

	if (first >= c->nr)
		return -EINVAL;
	buf = malloc(c->chunk_size);
	if (!buf)
		return -ENOMEM;
	for (i = first; i < end && !ret; i++) {
		uint64_t off = (uint64_t)i * c->chunk_size;
		size_t len = m->data_size - off < c->chunk_size ? (size_t)(m->data_size - off) : c->chunk_size;

		ret = pread_all(fd, buf, len, (off_t)off);
		if (ret)
			errmsg_set(err, err_size, "memory file %s: read at offset %" PRIu64 ": %s", path, off, strerror(-ret));
		else if (snap_crc32(snap_crc32(0, NULL, 0), buf, len) != c->crc[i]) {
			errmsg_set(err, err_size, "memory file %s: checksum mismatch in the %zu-byte chunk at offset %" PRIu64
				   " (changed since the snapshot)", path, len, off);
			ret = -EBADMSG;
		}
	}
	free(buf);
	return ret;
}

int snap_mem_commit(const char *tmp_path, const char *path)
{
	int ret;

	if (rename(tmp_path, path) < 0) {
		ret = -errno;
		pr_err("memory file %s: cannot rename %s over it: %s", path, tmp_path, strerror(errno));
		return ret;
	}
	ret = fsync_parent_dir(path);
	if (ret)
		pr_err("memory file %s: written, but fsync of its directory failed: %s", path, strerror(-ret));
	return ret;
}

static void hex_id(const uint8_t id[SNAP_ID_SIZE], char out[2 * SNAP_ID_SIZE + 1])
{
	int i;

	for (i = 0; i < SNAP_ID_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

bool snap_mem_fd_is_kiln(int fd)
{
	uint8_t magic[sizeof(mem_magic)];
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_size >= (off_t)SNAP_MEM_TRAILER_SIZE &&
	       pread(fd, magic, sizeof(magic), st.st_size - (off_t)SNAP_MEM_TRAILER_SIZE) == (ssize_t)sizeof(magic) &&
	       !memcmp(magic, mem_magic, sizeof(magic));
}

/* Is `fd` a complete memory file of snapshot `id` with m->data_size bytes of RAM? 0 or -errno + message. */
static int mem_check_trailer(int fd, const char *path, const struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE],
			     char *err, size_t err_size)
{
	uint8_t tr[MEM_TRAILER_USED], magic[sizeof(mem_magic)], file_id[SNAP_ID_SIZE];
	char have[2 * SNAP_ID_SIZE + 1], want[2 * SNAP_ID_SIZE + 1];
	uint32_t version, reserved, sum;
	uint64_t size;
	struct snap_dec d;
	struct stat st;
	int ret;

	if (fstat(fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "memory file %s: %s", path, strerror(errno));
		return ret;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->data_size + SNAP_MEM_TRAILER_SIZE) {
		errmsg_set(err, err_size,
			   "memory file %s is %lld bytes, the snapshot expects %" PRIu64 " (%" PRIu64
			   " bytes of RAM + %u-byte trailer)",
			   path, (long long)st.st_size, m->data_size + SNAP_MEM_TRAILER_SIZE, m->data_size,
			   SNAP_MEM_TRAILER_SIZE);
		return -EINVAL;
	}
	ret = pread_all(fd, tr, sizeof(tr), (off_t)m->data_size);
	if (ret) {
		errmsg_set(err, err_size, "memory file %s: read: %s", path, strerror(-ret));
		return ret;
	}
	/* The fields as snap_mem_finish writes them. */
	snap_dec_init(&d, tr, sizeof(tr));
	snap_get_bytes(&d, magic, sizeof(magic));
	version = snap_get_u32(&d);
	reserved = snap_get_u32(&d);
	snap_get_bytes(&d, file_id, sizeof(file_id));
	size = snap_get_u64(&d);
	sum = snap_get_u32(&d);
	if (memcmp(magic, mem_magic, sizeof(mem_magic)) || version != MEM_TRAILER_VERSION || reserved ||
	    sum != snap_crc32(0, tr, MEM_TRAILER_USED - 4) || size != m->data_size) {
		errmsg_set(err, err_size, "memory file %s: no valid kiln memory trailer at byte %" PRIu64, path,
			   m->data_size);
		return -EINVAL;
	}
	if (memcmp(file_id, id, SNAP_ID_SIZE)) {
		hex_id(file_id, have);
		hex_id(id, want);
		errmsg_set(err, err_size, "memory file %s belongs to snapshot %s, not to this state file's %s", path, have,
			   want);
		return -EINVAL;
	}
	return 0;
}

/*
 * A crash after the state file was committed but before snap_mem_commit leaves this snapshot's RAM in
 * "<path>.tmp.*": find it, move it into place, return its fd. -ENOENT if there is none.
 */
static int mem_roll_forward(const char *path, const struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE])
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t base_len = strlen(base);
	char *dir, *tmp = NULL;
	struct dirent *de;
	DIR *dp;
	int fd = -ENOENT;

	dir = slash ? (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path))) : strdup(".");
	if (!dir)
		return -ENOMEM;
	dp = opendir(dir);
	while (dp && (de = readdir(dp))) {
		int cand;

		if (strncmp(de->d_name, base, base_len) || strncmp(de->d_name + base_len, ".tmp.", 5))
			continue;
		cand = openat(dirfd(dp), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (cand < 0)
			continue;
		if (mem_check_trailer(cand, de->d_name, m, id, NULL, 0) == 0 &&
		    asprintf(&tmp, "%s/%s", dir, de->d_name) >= 0) {
			fd = cand;
			break;
		}
		close(cand);
	}
	if (dp)
		closedir(dp);
	free(dir);
	/* The fd is this snapshot's RAM whether or not the rename works; a failed one is retried next time. */
	if (fd >= 0 && snap_mem_commit(tmp, path) == 0)
		pr_warn("memory file %s: completed an interrupted snapshot (moved %s into place)", path, tmp);
	free(tmp);
	return fd;
}

int snap_mem_open(const char *path, const struct snap_memo *m, const uint8_t id[SNAP_ID_SIZE], bool verify_full,
		  char *err, size_t err_size)
{
	uint32_t c;
	int fd, ret;

	fd = safe_open("memory file", path, O_RDONLY, SAFE_REG | SAFE_FOLLOW, NULL, err, err_size);
	if (fd < 0) {
		ret = fd;
	} else {
		ret = mem_check_trailer(fd, path, m, id, err, err_size);
		if (ret) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		int rolled = mem_roll_forward(path, m, id);

		if (rolled < 0)
			return ret; /* the message about `path` says why */
		fd = rolled;
	}
	ret = mem_checksum(fd, m->data_size, m->sample_pages, &c);
	if (!ret && c != m->sample_crc) {
		errmsg_set(err, err_size, "memory file %s: checksum mismatch in the sampled pages (changed since the snapshot?)",
			   path);
		ret = -EBADMSG;
	}
	if (!ret && verify_full && m->has_full_crc) {
		ret = mem_checksum(fd, m->data_size, 0, &c);
		if (!ret && c != m->full_crc) {
			errmsg_set(err, err_size, "memory file %s: checksum mismatch", path);
			ret = -EBADMSG;
		}
	}
	if (ret) {
		if (ret != -EBADMSG)
			errmsg_set(err, err_size, "memory file %s: read: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}
