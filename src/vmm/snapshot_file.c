// SPDX-License-Identifier: MIT
/*
 * Snapshot state file: layout and the reasons behind it in docs/snapshot-format.md. Everything on disk
 * is little-endian and encoded byte by byte; nothing is written as a raw struct. The memory file is
 * snapshot_mem.c's.
 */
#include "vmm/snapshot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/fsync.h"
#include "lib/log.h"
#include "lib/safe_path.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

static const uint8_t header_magic[8] = { 'K', 'I', 'L', 'N', 'S', 'N', 'A', 'P' };
static const uint8_t trailer_magic[8] = { 'K', 'I', 'L', 'N', 'E', 'N', 'D', 0 };

#define TMP_NAME_TRIES 100

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

uint32_t snap_crc32(uint32_t c, const void *p, size_t len)
{
	/* zlib returns the initial value for a NULL buffer, whatever `c` was. */
	if (p && !len)
		return c;
	return (uint32_t)crc32_z(c, p, len);
}

bool snap_state_fd_is_kiln(int fd)
{
	uint8_t magic[sizeof(header_magic)];

	return pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) && !memcmp(magic, header_magic, sizeof(magic));
}

static size_t pad8(uint64_t len)
{
	return (size_t)((8 - (len & 7)) & 7);
}

const char *snap_section_name(uint32_t id, uint32_t instance, char *buf, size_t size)
{
	char c[5];
	int i, n = 4;

	for (i = 0; i < 4; i++) {
		c[i] = (char)(id >> (8 * i));
		if (c[i] < 0x20 || c[i] > 0x7e)
			break;
	}
	if (i < 4) {
		snprintf(buf, size, "0x%08" PRIx32 "/%" PRIu32, id, instance);
		return buf;
	}
	while (n > 1 && c[n - 1] == ' ')
		n--;
	c[n] = 0;
	snprintf(buf, size, "%s/%" PRIu32, c, instance);
	return buf;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int snap_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int snap_create_tmp(const char *path, char *tmp, size_t tmp_size)
{
	int i, fd;

	for (i = 0; i < TMP_NAME_TRIES; i++) {
		int n = i ? snprintf(tmp, tmp_size, "%s.tmp.%d.%d", path, (int)getpid(), i)
			  : snprintf(tmp, tmp_size, "%s.tmp.%d", path, (int)getpid());

		if (n < 0 || (size_t)n >= tmp_size)
			return -ENAMETOOLONG;
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int snap_lock(const char *path, bool shared, char *err, size_t err_size)
{
	char *lock;
	struct stat st;
	int fd, ret;

	if (asprintf(&lock, "%s.lock", path) < 0)
		return -ENOMEM;
	/* O_NONBLOCK: a FIFO planted at the lock's name must not hang the open; fstat then refuses it. */
	fd = open(lock, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (shared ? 0 : O_CREAT), 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT || !shared)
			errmsg_set(err, err_size, "%s: cannot open its lock file %s: %s", path, lock, strerror(errno));
		free(lock);
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		errmsg_set(err, err_size, "%s: its lock file %s is not a regular file", path, lock);
		ret = -EINVAL;
	} else if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (ret == -EBUSY)
			errmsg_set(err, err_size, "%s: another snapshot to it is being written or restored (%s is locked): "
				   "try again when it is done", path, lock);
		else
			errmsg_set(err, err_size, "%s: cannot lock %s: %s", path, lock, strerror(-ret));
	} else {
		ret = fd;
	}
	if (ret < 0)
		close(fd);
	free(lock);
	return ret;
}

/* Is `name` "<base>.tmp.<pid>" or "<base>.tmp.<pid>.<n>" (snap_create_tmp's names)? Its pid, or 0. */
static pid_t tmp_name_pid(const char *name, const char *base, size_t base_len)
{
	unsigned long pid, n;
	char *end;

	if (strncmp(name, base, base_len) || strncmp(name + base_len, ".tmp.", 5))
		return 0;
	name += base_len + 5;
	if (*name < '1' || *name > '9')
		return 0;
	pid = strtoul(name, &end, 10);
	if (*end == '.') {
		if (end[1] < '1' || end[1] > '9')
			return 0;
		n = strtoul(end + 1, &end, 10);
		if (n >= TMP_NAME_TRIES)
			return 0;
	}
	return *end || pid > INT32_MAX ? 0 : (pid_t)pid;
}

unsigned snap_remove_stale_tmp(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t base_len = strlen(base);
	unsigned removed = 0;
	struct dirent *de;
	char *dir;
	DIR *dp;

	dir = slash ? (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path))) : strdup(".");
	dp = dir ? opendir(dir) : NULL;
	while (dp && (de = readdir(dp))) {
		pid_t pid = tmp_name_pid(de->d_name, base, base_len);
		struct stat st;

		/* A live process's (kill succeeds or is refused with EPERM) may be a snapshot being written. */
		if (!pid || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid())
			continue;
		if (unlinkat(dirfd(dp), de->d_name, 0) == 0) {
			pr_info("%s: removed %s/%s, left by kiln process %d that is gone", path, dir, de->d_name, (int)pid);
			removed++;
		}
	}
	if (dp)
		closedir(dp);
	free(dir);
	return removed;
}

/* ---- Writer ---- */

struct snap_writer {
	int fd;
	char *path;
	char *tmp_path;
	uint8_t id[SNAP_ID_SIZE];
	uint64_t created_ns;
	uint64_t off;           /* bytes written, header placeholder included */
	uint32_t body_crc;      /* crc32 of bytes [SNAP_HEADER_SIZE, off) */
	uint32_t nr_sections;
	uint64_t *keys;         /* id << 32 | instance of each section written, to refuse duplicates */
	size_t keys_cap;
	int error;              /* first failed write: the file is unusable */
};

static void writer_free(struct snap_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->keys);
	free(w->tmp_path);
	free(w->path);
	free(w);
}

struct snap_writer *snap_writer_open(const char *path)
{
	uint8_t zero[SNAP_HEADER_SIZE] = { 0 };
	struct snap_writer *w;
	struct timespec ts;
	size_t tmp_size = strlen(path) + 32;
	int ret;

	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fd = -1;
	w->path = strdup(path);
	w->tmp_path = malloc(tmp_size);
	if (!w->path || !w->tmp_path) {
		ret = -ENOMEM;
		goto fail;
	}
	if (getrandom(w->id, sizeof(w->id), 0) != (ssize_t)sizeof(w->id)) {
		ret = -errno;
		pr_err("snapshot %s: no random snapshot id: %s", path, strerror(errno));
		goto fail;
	}
	ret = snap_create_tmp(path, w->tmp_path, tmp_size);
	if (ret < 0) {
		pr_err("snapshot %s: cannot create a temp file next to it (%s.tmp.%d): %s", path, path, (int)getpid(),
		       strerror(-ret));
		goto fail;
	}
	w->fd = ret;
	clock_gettime(CLOCK_REALTIME, &ts);
	w->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	/* Zeros until commit: a temp file cut short by a crash is refused for its magic alone. */
	ret = write_all(w->fd, zero, sizeof(zero));
	if (ret < 0) {
		pr_err("snapshot %s: cannot write %s: %s", path, w->tmp_path, strerror(-ret));
		unlink(w->tmp_path);
		goto fail;
	}
	w->off = SNAP_HEADER_SIZE;
	w->body_crc = snap_crc32(0, NULL, 0);
	return w;
fail:
	writer_free(w);
	errno = -ret;
	return NULL;
}

const char *snap_writer_tmp_path(const struct snap_writer *w)
{
	return w->tmp_path;
}

void snap_writer_id(const struct snap_writer *w, uint8_t id[SNAP_ID_SIZE])
{
	memcpy(id, w->id, SNAP_ID_SIZE);
}

static int writer_put(struct snap_writer *w, const void *p, size_t len)
{
	int ret = write_all(w->fd, p, len);

	if (ret < 0) {
		w->error = ret;
		pr_err("snapshot %s: cannot write %s: %s", w->path, w->tmp_path, strerror(-ret));
		return ret;
	}
	w->body_crc = snap_crc32(w->body_crc, p, len);
	w->off += len;
	return 0;
}

int snap_write_section_flags(struct snap_writer *w, uint32_t id, uint32_t instance, uint32_t version, uint32_t flags,
			     const void *data, size_t len)
{
	static const uint8_t zero[8];
	uint64_t key = (uint64_t)id << 32 | instance;
	uint8_t sh[SNAP_SECTION_HEADER_SIZE];
	struct snap_enc e;
	char name[32];
	size_t i;
	int ret;

	if (w->error)
		return w->error;
	snap_section_name(id, instance, name, sizeof(name));
	if (version == 0 || (len && !data)) {
		pr_err("snapshot %s: section %s: version 0 or no data", w->path, name);
		return -EINVAL;
	}
	for (i = 0; i < w->nr_sections; i++) {
		if (w->keys[i] == key) {
			pr_err("snapshot %s: section %s written twice", w->path, name);
			return -EEXIST;
		}
	}
	if (len > SNAP_STATE_MAX_SIZE ||
	    w->off + SNAP_SECTION_HEADER_SIZE + len + pad8(len) + SNAP_TRAILER_SIZE > SNAP_STATE_MAX_SIZE) {
		pr_err("snapshot %s: section %s (%zu bytes) would make the state file larger than %u MiB", w->path, name,
		       len, SNAP_STATE_MAX_SIZE >> 20);
		return -EFBIG;
	}
	if (w->nr_sections == w->keys_cap) {
		size_t cap = w->keys_cap ? 2 * w->keys_cap : 16;
		uint64_t *keys = realloc(w->keys, cap * sizeof(*keys));

		if (!keys)
			return -ENOMEM;
		w->keys = keys;
		w->keys_cap = cap;
	}

	snap_enc_init(&e, sh, sizeof(sh));
	snap_put_u32(&e, id);
	snap_put_u32(&e, instance);
	snap_put_u32(&e, version);
	snap_put_u32(&e, flags);
	snap_put_u64(&e, len);
	snap_put_u32(&e, snap_crc32(0, data, len));
	snap_put_u32(&e, snap_crc32(0, sh, SNAP_SECTION_HEADER_SIZE - 4));

	ret = writer_put(w, sh, sizeof(sh));
	if (!ret && len)
		ret = writer_put(w, data, len);
	if (!ret)
		ret = writer_put(w, zero, pad8(len));
	if (ret)
		return ret;
	w->keys[w->nr_sections++] = key;
	return 0;
}

int snap_write_section(struct snap_writer *w, uint32_t id, uint32_t instance, uint32_t version, const void *data,
		       size_t len)
{
	return snap_write_section_flags(w, id, instance, version, 0, data, len);
}

static void encode_header(const struct snap_writer *w, uint8_t *hdr)
{
	char version[32] = { 0 };
	struct snap_enc e;

	snprintf(version, sizeof(version), "%s", KILN_VERSION); /* NUL-padded, cut at 31 bytes */
	snap_enc_init(&e, hdr, SNAP_HEADER_SIZE);
	snap_put_bytes(&e, header_magic, sizeof(header_magic));
	snap_put_u16(&e, SNAP_FORMAT_MAJOR);
	snap_put_u16(&e, SNAP_FORMAT_MINOR);
	snap_put_u32(&e, 0); /* flags */
	snap_put_bytes(&e, version, sizeof(version));
	snap_put_u64(&e, w->created_ns);
	snap_put_bytes(&e, w->id, sizeof(w->id));
	snap_put_u32(&e, w->nr_sections);
	snap_put_u32(&e, snap_crc32(0, hdr, SNAP_HEADER_SIZE - 4));
}

int snap_writer_commit(struct snap_writer *w)
{
	uint8_t hdr[SNAP_HEADER_SIZE], tr[SNAP_TRAILER_SIZE];
	struct snap_enc e;
	uint32_t file_crc;
	const char *step;
	int ret;

	if (w->error) {
		ret = w->error;
		step = "an earlier write failed";
		goto fail;
	}
	encode_header(w, hdr);
	step = "write the header";
	ret = snap_pwrite_all(w->fd, hdr, sizeof(hdr), 0);
	if (ret)
		goto fail;
	/* The header was written last, so combine its crc with the body's instead of reading the file back. */
	file_crc = (uint32_t)crc32_combine(snap_crc32(0, hdr, sizeof(hdr)), w->body_crc,
					   (z_off_t)(w->off - SNAP_HEADER_SIZE));
	snap_enc_init(&e, tr, sizeof(tr));
	snap_put_bytes(&e, trailer_magic, sizeof(trailer_magic));
	snap_put_u64(&e, w->off + SNAP_TRAILER_SIZE);
	snap_put_u32(&e, file_crc);
	snap_put_u32(&e, 0);
	step = "write the trailer";
	ret = write_all(w->fd, tr, sizeof(tr));
	if (ret)
		goto fail;
	step = "fsync";
	if (fsync(w->fd) < 0) {
		ret = -errno;
		goto fail;
	}
	step = "close";
	ret = close(w->fd);
	w->fd = -1;
	if (ret < 0) {
		ret = -errno;
		goto fail;
	}
	step = "rename";
	if (rename(w->tmp_path, w->path) < 0) {
		ret = -errno;
		goto fail;
	}
	/* Visible now; the directory fsync makes the rename survive a power loss. */
	ret = fsync_parent_dir(w->path);
	if (ret)
		pr_err("snapshot %s: written, but fsync of its directory failed: %s", w->path, strerror(-ret));
	writer_free(w);
	return ret;
fail:
	pr_err("snapshot %s: cannot commit (%s): %s; the previous snapshot, if any, is unchanged", w->path, step,
	       strerror(-ret));
	unlink(w->tmp_path);
	writer_free(w);
	return ret;
}

void snap_writer_abort(struct snap_writer *w)
{
	if (!w)
		return;
	unlink(w->tmp_path);
	writer_free(w);
}

/* ---- Reader ---- */

struct snap_entry {
	uint32_t id;
	uint32_t instance;
	uint32_t version;
	uint32_t flags;
	uint64_t len;
	uint64_t offset;        /* of the section header in the file */
	const uint8_t *data;
	bool used;
};

struct snap_reader {
	char *name;
	uint8_t *buf;
	size_t size;
	struct snap_header_info info;
	uint32_t nr;
	struct snap_entry *entries;     /* sorted by (id, instance) */
};

void snap_reader_close(struct snap_reader *r)
{
	if (!r)
		return;
	free(r->entries);
	free(r->buf);
	free(r->name);
	free(r);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct snap_entry *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (x->instance != y->instance)
		return x->instance < y->instance ? -1 : 1;
	return 0;
}

/* Section `i` of the file for messages: "UART/0" when at least its id and instance can be read. */
static const char *name_at(const uint8_t *b, size_t size, size_t off, uint32_t i, char *buf, size_t buf_size)
{
	if (size - off >= 8)
		return snap_section_name(get32(b + off), get32(b + off + 4), buf, buf_size);
	snprintf(buf, buf_size, "#%" PRIu32, i);
	return buf;
}

#define FAIL(code, ...)                                         \
	do {                                                    \
		char msg_[200];                                 \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__);      \
		errmsg_set(err, err_size, "%s: %s", r->name, msg_); \
		return (code);                                  \
	} while (0)

/* Validate r->buf and index its sections. The order of the checks decides which message a file gets. */
static int parse(struct snap_reader *r, char *err, size_t err_size)
{
	const uint8_t *b = r->buf;
	size_t size = r->size, body_end, off, cap;
	bool has_trailer;
	uint32_t i, count, flags;
	uint16_t major;
	char name[32];

	if (memcmp(b, header_magic, size < sizeof(header_magic) ? size : sizeof(header_magic)))
		FAIL(-EINVAL, "not a kiln snapshot state file (bad magic)");
	if (size < 12)
		FAIL(-EINVAL, "file truncated at byte %zu of %u (header)", size, SNAP_HEADER_SIZE);
	/* Before the header checksum: a future major may lay the rest of the header out differently. */
	major = get16(b + 8);
	if (major > SNAP_FORMAT_MAJOR)
		FAIL(-ENOTSUP, "snapshot format %u is newer than this kiln (%u)", major, SNAP_FORMAT_MAJOR);
	if (major < SNAP_FORMAT_MAJOR)
		FAIL(-ENOTSUP, "snapshot format %u is older than this kiln can read (%u)", major, SNAP_FORMAT_MAJOR);
	if (size < SNAP_HEADER_SIZE)
		FAIL(-EINVAL, "file truncated at byte %zu of %u (header)", size, SNAP_HEADER_SIZE);
	if (get32(b + 76) != snap_crc32(0, b, SNAP_HEADER_SIZE - 4))
		FAIL(-EBADMSG, "header: checksum mismatch");
	flags = get32(b + 12);
	if (flags & SNAP_FLAGS_REQUIRED_MASK)
		FAIL(-ENOTSUP, "header: unknown required flags 0x%" PRIx32 " (written by a newer kiln?)",
		     flags & SNAP_FLAGS_REQUIRED_MASK);
	count = get32(b + 72);

	r->info.format_major = major;
	r->info.format_minor = get16(b + 10);
	r->info.flags = flags;
	memcpy(r->info.kiln_version, b + 16, 32);
	r->info.kiln_version[32] = 0;
	r->info.created_ns = get64(b + 48);
	memcpy(r->info.id, b + 56, SNAP_ID_SIZE);
	r->info.nr_sections = count;

	/*
	 * A trailer at the very end tells "the file is complete but a length is wrong" apart from "the file
	 * was cut short"; both look the same from the sections alone.
	 */
	has_trailer = size >= SNAP_HEADER_SIZE + SNAP_TRAILER_SIZE &&
		      !memcmp(b + size - SNAP_TRAILER_SIZE, trailer_magic, sizeof(trailer_magic));
	body_end = has_trailer ? size - SNAP_TRAILER_SIZE : size;
	/* Every section takes at least a header, so this bounds the index by the file, not by `count`. */
	cap = (body_end - SNAP_HEADER_SIZE) / SNAP_SECTION_HEADER_SIZE;
	if (count < cap)
		cap = count;
	r->entries = calloc(cap ? cap : 1, sizeof(*r->entries));
	if (!r->entries)
		FAIL(-ENOMEM, "out of memory");

	off = SNAP_HEADER_SIZE;
	for (i = 0; i < count; i++) {
		const uint8_t *sh = b + off;
		struct snap_entry *ent;
		uint64_t len;
		size_t pad, k;

		name_at(b, size, off, i, name, sizeof(name));
		if (body_end - off < SNAP_SECTION_HEADER_SIZE) {
			if (has_trailer)
				FAIL(-EINVAL, "header says %" PRIu32 " sections but section %s (#%" PRIu32
					      ") would start in the trailer at byte %zu",
				     count, name, i, off);
			FAIL(-EINVAL, "file truncated at byte %zu of %zu (section %s header)", size,
			     off + SNAP_SECTION_HEADER_SIZE, name);
		}
		if (get32(sh + 28) != snap_crc32(0, sh, SNAP_SECTION_HEADER_SIZE - 4))
			FAIL(-EBADMSG, "section %s (#%" PRIu32 " at byte %zu): header checksum mismatch", name, i, off);
		flags = get32(sh + 12);
		if (flags & SNAP_FLAGS_REQUIRED_MASK)
			FAIL(-ENOTSUP, "section %s: unknown required flags 0x%" PRIx32 " (written by a newer kiln?)", name,
			     flags & SNAP_FLAGS_REQUIRED_MASK);
		if (get32(sh + 8) == 0)
			FAIL(-EINVAL, "section %s: version 0", name);
		len = get64(sh + 16);
		/* Lengths are compared with what is left, never added to offsets, so no length can wrap. */
		if (len > SNAP_STATE_MAX_SIZE)
			FAIL(-EINVAL, "section %s: length %" PRIu64 " is beyond the %u MiB limit", name, len,
			     SNAP_STATE_MAX_SIZE >> 20);
		pad = pad8(len);
		if (len + pad > body_end - off - SNAP_SECTION_HEADER_SIZE) {
			if (has_trailer)
				FAIL(-EINVAL, "section %s: length %" PRIu64 " runs past the end of the file (%zu bytes left)",
				     name, len, body_end - off - SNAP_SECTION_HEADER_SIZE);
			FAIL(-EINVAL, "file truncated at byte %zu of %zu (section %s payload)", size,
			     off + SNAP_SECTION_HEADER_SIZE + (size_t)len + pad, name);
		}
		if (get32(sh + 24) != snap_crc32(0, sh + SNAP_SECTION_HEADER_SIZE, (size_t)len))
			FAIL(-EBADMSG, "section %s: checksum mismatch", name);
		for (k = 0; k < pad; k++)
			if (sh[SNAP_SECTION_HEADER_SIZE + len + k])
				FAIL(-EINVAL, "section %s: padding is not zero", name);
		ent = &r->entries[r->nr++];
		ent->id = get32(sh);
		ent->instance = get32(sh + 4);
		ent->version = get32(sh + 8);
		ent->flags = flags;
		ent->len = len;
		ent->offset = off;
		ent->data = sh + SNAP_SECTION_HEADER_SIZE;
		off += SNAP_SECTION_HEADER_SIZE + (size_t)len + pad;
	}

	if (!has_trailer) {
		if (size - off < SNAP_TRAILER_SIZE)
			FAIL(-EINVAL, "file truncated at byte %zu of %zu (trailer)", size, off + SNAP_TRAILER_SIZE);
		FAIL(-EINVAL, "bad trailer at byte %zu (no end magic)", off);
	}
	if (off != body_end)
		FAIL(-EINVAL, "bad trailer: expected at byte %zu after %" PRIu32 " sections, found at byte %zu", off, count,
		     body_end);
	if (get64(b + body_end + 8) != size)
		FAIL(-EINVAL, "bad trailer: total length %" PRIu64 " but the file is %zu bytes", get64(b + body_end + 8),
		     size);
	if (get32(b + body_end + 20) != 0)
		FAIL(-EINVAL, "bad trailer: reserved field is not zero");
	/* Catches what the per-part checks cannot, such as two valid sections swapped. */
	if (get32(b + body_end + 16) != snap_crc32(0, b, body_end))
		FAIL(-EBADMSG, "file checksum mismatch");

	qsort(r->entries, r->nr, sizeof(*r->entries), entry_cmp);
	for (i = 1; i < r->nr; i++)
		if (!entry_cmp(&r->entries[i - 1], &r->entries[i]))
			FAIL(-EINVAL, "section %s appears twice",
			     snap_section_name(r->entries[i].id, r->entries[i].instance, name, sizeof(name)));
	return 0;
}

#undef FAIL

/* Takes ownership of `buf` (malloc'd, `size` bytes). */
static int reader_create(uint8_t *buf, size_t size, const char *name, struct snap_reader **out, char *err,
			 size_t err_size)
{
	struct snap_reader *r = calloc(1, sizeof(*r));
	int ret;

	*out = NULL;
	if (!r || !(r->name = strdup(name))) {
		free(r);
		free(buf);
		errmsg_set(err, err_size, "%s: out of memory", name);
		return -ENOMEM;
	}
	r->buf = buf;
	r->size = size;
	ret = parse(r, err, err_size);
	if (ret) {
		snap_reader_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int snap_reader_open_mem(const void *buf, size_t len, const char *name, struct snap_reader **out, char *err,
			 size_t err_size)
{
	uint8_t *copy;

	*out = NULL;
	if (len > SNAP_STATE_MAX_SIZE) {
		errmsg_set(err, err_size, "%s: %zu bytes, more than the %u MiB a state file may have", name, len,
			   SNAP_STATE_MAX_SIZE >> 20);
		return -EFBIG;
	}
	copy = malloc(len ? len : 1);
	if (!copy) {
		errmsg_set(err, err_size, "%s: out of memory", name);
		return -ENOMEM;
	}
	if (len)
		memcpy(copy, buf, len);
	return reader_create(copy, len, name, out, err, err_size);
}

int snap_reader_open(const char *path, struct snap_reader **out, char *err, size_t err_size)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, ret;

	*out = NULL;
	fd = safe_open("state file", path, O_RDONLY, SAFE_REG | SAFE_FOLLOW, NULL, err, err_size);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	if (!S_ISREG(st.st_mode)) {
		errmsg_set(err, err_size, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size > SNAP_STATE_MAX_SIZE) {
		errmsg_set(err, err_size, "%s: %lld bytes, more than the %u MiB a state file may have", path,
			   (long long)st.st_size, SNAP_STATE_MAX_SIZE >> 20);
		close(fd);
		return -EFBIG;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		errmsg_set(err, err_size, "%s: out of memory", path);
		close(fd);
		return -ENOMEM;
	}
	/* If the file shrinks meanwhile, parse what was there; it will be reported as truncated. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			errmsg_set(err, err_size, "%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return ret;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return reader_create(buf, got, path, out, err, err_size);
}

void snap_reader_header(const struct snap_reader *r, struct snap_header_info *out)
{
	*out = r->info;
}

static struct snap_entry *find_entry(const struct snap_reader *r, uint32_t id, uint32_t instance)
{
	struct snap_entry key = { .id = id, .instance = instance };

	return bsearch(&key, r->entries, r->nr, sizeof(*r->entries), entry_cmp);
}

const void *snap_find_section(struct snap_reader *r, uint32_t id, uint32_t instance, uint32_t *version, size_t *len)
{
	struct snap_entry *e = find_entry(r, id, instance);

	if (!e)
		return NULL;
	e->used = true;
	if (version)
		*version = e->version;
	if (len)
		*len = (size_t)e->len;
	return e->data;
}

const void *snap_get_section(struct snap_reader *r, uint32_t id, uint32_t instance, uint32_t max_version,
			     uint32_t *version, size_t *len, char *err, size_t err_size)
{
	uint32_t v;
	char name[32];
	const void *p = snap_find_section(r, id, instance, &v, len);

	snap_section_name(id, instance, name, sizeof(name));
	if (!p) {
		errmsg_set(err, err_size, "%s: no section %s", r->name, name);
		return NULL;
	}
	if (v > max_version) {
		errmsg_set(err, err_size, "%s: section %s: version %" PRIu32 " is newer than this kiln (%" PRIu32 ")",
			   r->name, name, v, max_version);
		return NULL;
	}
	if (version)
		*version = v;
	return p;
}

unsigned snap_count_sections(const struct snap_reader *r, uint32_t id)
{
	unsigned n = 0;
	uint32_t i;

	for (i = 0; i < r->nr; i++)
		n += r->entries[i].id == id;
	return n;
}

int snap_reader_check_all_used(const struct snap_reader *r, char *err, size_t err_size)
{
	const struct snap_entry *e, *first = NULL;
	char name[32];
	uint32_t i;

	/* The first in file order, which is the order the writer chose. */
	for (i = 0; i < r->nr; i++) {
		e = &r->entries[i];
		if (!e->used && !(e->flags & SNAP_SECTION_OPTIONAL) && (!first || e->offset < first->offset))
			first = e;
	}
	if (!first)
		return 0;
	errmsg_set(err, err_size, "%s: section %s (version %" PRIu32 ") is not known to this kiln", r->name,
		   snap_section_name(first->id, first->instance, name, sizeof(name)), first->version);
	return -EINVAL;
}
