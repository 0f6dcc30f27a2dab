// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "vmm/snapshot_file.h"
#include "vmm/snapshot_mem.h"

#define ERR_SIZE 256

/* One temp directory per test; `state` points to its path. */
struct fixture {
	char dir[64];
	char path[128];         /* <dir>/vm.snap */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kiln-snap-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vm.snap", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	char p[512];
	DIR *d;

	chmod(f->dir, 0700);
	d = opendir(f->dir);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Names in the directory other than . and .., written into `names` (newline-separated). */
static int dir_entries(const char *dir, char *names, size_t size)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	names[0] = 0;
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		strncat(names, de->d_name, size - strlen(names) - 2);
		strcat(names, "\n");
	}
	if (d)
		closedir(d);
	return n;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A snapshot with one CONF section whose text is `conf`, committed at `path`. */
static void write_conf_snapshot(const char *path, const char *conf)
{
	struct snap_writer *w = snap_writer_open(path);

	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_CONF, 0, 1, conf, strlen(conf)), 0);
	assert_int_equal(snap_writer_commit(w), 0);
}

/* 0 if `path` is a valid snapshot whose CONF is `conf`. */
static int check_conf_snapshot(const char *path, const char *conf)
{
	struct snap_reader *r;
	char err[ERR_SIZE];
	const void *p;
	size_t len;
	int ret = snap_reader_open(path, &r, err, sizeof(err));

	if (ret)
		return ret;
	p = snap_find_section(r, SNAP_ID_CONF, 0, NULL, &len);
	ret = p && len == strlen(conf) && !memcmp(p, conf, len) ? 0 : -1;
	snap_reader_close(r);
	return ret;
}

/*
 * The small file the corruption tests work on: header, VCPU/0 (5 bytes: padded), VCPU/1 (8 bytes),
 * UART/0 (empty), trailer.
 */
static uint8_t *small_file(const char *path, size_t *len)
{
	struct snap_writer *w = snap_writer_open(path);

	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 0, 1, "abcde", 5), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 1, 2, "01234567", 8), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_UART, 0, 1, NULL, 0), 0);
	assert_int_equal(snap_writer_commit(w), 0);
	return read_file(path, len);
}

/* Offsets in small_file(). */
#define S0 SNAP_HEADER_SIZE                  /* VCPU/0 header */
#define S1 (S0 + SNAP_SECTION_HEADER_SIZE + 8) /* VCPU/1 header */
#define S2 (S1 + SNAP_SECTION_HEADER_SIZE + 8) /* UART/0 header */
#define TR (S2 + SNAP_SECTION_HEADER_SIZE)     /* trailer */
#define SMALL_SIZE (TR + SNAP_TRAILER_SIZE)

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t crc_of(const void *p, size_t len)
{
	return (uint32_t)crc32(0, p, (uInt)len);
}

/* Make a hand-edited file consistent again, so only the edit under test is wrong. */
static void fix_header_crc(uint8_t *b)
{
	put32(b + 76, crc_of(b, 76));
}

static void fix_section_header_crc(uint8_t *b, size_t off)
{
	put32(b + off + 28, crc_of(b + off, 28));
}

static void fix_file_crc(uint8_t *b, size_t size)
{
	put32(b + size - SNAP_TRAILER_SIZE + 16, crc_of(b, size - SNAP_TRAILER_SIZE));
}

/* Parse `len` bytes of `b`; the error code, with the message in `err`. */
static int parse(const uint8_t *b, size_t len, char *err)
{
	struct snap_reader *r;
	int ret;

	err[0] = 0;
	ret = snap_reader_open_mem(b, len, "t", &r, err, ERR_SIZE);
	if (!ret)
		snap_reader_close(r);
	return ret;
}

static void expect_error(const uint8_t *b, size_t len, int code, const char *msg)
{
	char err[ERR_SIZE];
	int ret = parse(b, len, err);

	if (ret != code || !strstr(err, msg))
		print_error("got %d \"%s\", expected %d \"%s\"\n", ret, err, code, msg);
	assert_int_equal(ret, code);
	assert_non_null(strstr(err, msg));
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[3 << 20];
	const char *conf = "{\"machine-config\": {\"vcpu_count\": 2}}";
	uint8_t vcpu0[100], vcpu1[7], id[SNAP_ID_SIZE];
	struct snap_header_info info;
	struct snap_writer *w;
	struct snap_reader *r;
	char err[ERR_SIZE], names[256];
	uint32_t version;
	const uint8_t *p;
	size_t i, len;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + (i >> 12));
	memset(vcpu0, 0x11, sizeof(vcpu0));
	memset(vcpu1, 0x22, sizeof(vcpu1));

	w = snap_writer_open(f->path);
	assert_non_null(w);
	snap_writer_id(w, id);
	assert_int_equal(snap_write_section(w, SNAP_ID_CONF, 0, 1, conf, strlen(conf)), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 1, 3, vcpu1, sizeof(vcpu1)), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 0, 3, vcpu0, sizeof(vcpu0)), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_MEMO, 0, 1, big, sizeof(big)), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_PIT, 0, 1, NULL, 0), 0);
	assert_int_equal(snap_write_section_flags(w, SNAP_FOURCC('X', 'T', 'R', 'A'), 0, 1, SNAP_SECTION_OPTIONAL, "x",
						  1), 0);
	/* Not visible before commit. */
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(access(snap_writer_tmp_path(w), F_OK), 0);
	assert_int_equal(snap_writer_commit(w), 0);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);

	assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), 0);
	snap_reader_header(r, &info);
	assert_int_equal(info.format_major, SNAP_FORMAT_MAJOR);
	assert_int_equal(info.format_minor, SNAP_FORMAT_MINOR);
	assert_int_equal(info.nr_sections, 6);
	assert_memory_equal(info.id, id, SNAP_ID_SIZE);
	assert_true(info.created_ns > 1600000000ull * 1000000000ull);
	assert_true(strlen(info.kiln_version) > 0);

	p = snap_find_section(r, SNAP_ID_CONF, 0, &version, &len);
	assert_non_null(p);
	assert_int_equal(version, 1);
	assert_int_equal(len, strlen(conf));
	assert_memory_equal(p, conf, len);
	p = snap_find_section(r, SNAP_ID_VCPU, 0, &version, &len);
	assert_non_null(p);
	assert_int_equal(version, 3);
	assert_int_equal(len, sizeof(vcpu0));
	assert_memory_equal(p, vcpu0, len);
	assert_int_equal((uintptr_t)p % 8, 0);
	p = snap_find_section(r, SNAP_ID_VCPU, 1, NULL, &len);
	assert_int_equal(len, sizeof(vcpu1));
	assert_memory_equal(p, vcpu1, len);
	assert_null(snap_find_section(r, SNAP_ID_VCPU, 2, NULL, NULL));
	assert_null(snap_find_section(r, SNAP_ID_UART, 0, NULL, NULL));
	assert_int_equal(snap_count_sections(r, SNAP_ID_VCPU), 2);
	assert_int_equal(snap_count_sections(r, SNAP_ID_UART), 0);

	/* The big and the empty section not looked up yet: restore would drop them. */
	assert_int_equal(snap_reader_check_all_used(r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "section MEMO/0 (version 1) is not known"));
	p = snap_find_section(r, SNAP_ID_MEMO, 0, NULL, &len);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(p, big, len);
	assert_int_equal((uintptr_t)p % 8, 0);
	assert_int_equal(snap_reader_check_all_used(r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "section PIT/0"));
	p = snap_find_section(r, SNAP_ID_PIT, 0, &version, &len);
	assert_non_null(p);
	assert_int_equal(len, 0);
	/* XTRA is optional: nobody needs to know it. */
	assert_int_equal(snap_reader_check_all_used(r, err, sizeof(err)), 0);
	snap_reader_close(r);
}

static void test_get_section_messages(void **state)
{
	struct fixture *f = *state;
	struct snap_reader *r;
	char err[ERR_SIZE];
	uint32_t version = 0;
	size_t len;
	uint8_t *b;

	b = small_file(f->path, &len);
	free(b);
	assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), 0);
	assert_null(snap_get_section(r, SNAP_ID_RTC, 0, 1, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "vm.snap: no section RTC/0"));
	assert_null(snap_get_section(r, SNAP_ID_VCPU, 1, 1, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "section VCPU/1: version 2 is newer than this kiln (1)"));
	assert_non_null(snap_get_section(r, SNAP_ID_VCPU, 1, 2, &version, &len, err, sizeof(err)));
	assert_int_equal(version, 2);
	assert_int_equal(len, 8);
	snap_reader_close(r);
}

static void test_section_names(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(snap_section_name(SNAP_ID_VCPU, 1, buf, sizeof(buf)), "VCPU/1");
	assert_string_equal(snap_section_name(SNAP_ID_PIT, 0, buf, sizeof(buf)), "PIT/0");
	assert_string_equal(snap_section_name(SNAP_ID_I8042, 0, buf, sizeof(buf)), "I842/0");
	assert_string_equal(snap_section_name(7, 3, buf, sizeof(buf)), "0x00000007/3");
	/* The id reads in order in a hex dump. */
	assert_int_equal(SNAP_ID_CONF & 0xff, 'C');
}

static void test_writer_rejects(void **state)
{
	struct fixture *f = *state;
	static uint8_t huge[SNAP_STATE_MAX_SIZE];
	struct snap_writer *w = snap_writer_open(f->path);

	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 0, 1, "a", 1), 0);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 0, 1, "b", 1), -EEXIST);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 1, 0, "b", 1), -EINVAL);
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 1, 1, NULL, 1), -EINVAL);
	assert_int_equal(snap_write_section(w, SNAP_ID_MEMO, 0, 1, huge, sizeof(huge)), -EFBIG);
	/* None of these broke the writer. */
	assert_int_equal(snap_write_section(w, SNAP_ID_VCPU, 1, 1, "b", 1), 0);
	assert_int_equal(snap_writer_commit(w), 0);
}

static void test_truncated_at_every_length(void **state)
{
	struct fixture *f = *state;
	char err[ERR_SIZE], want[64];
	size_t len, i;
	uint8_t *b = small_file(f->path, &len);

	assert_int_equal(len, SMALL_SIZE);
	assert_int_equal(parse(b, len, err), 0);
	for (i = 0; i < len; i++) {
		snprintf(want, sizeof(want), "file truncated at byte %zu of ", i);
		expect_error(b, i, -EINVAL, want);
	}
	expect_error(b, S1 + 35, -EINVAL, "file truncated at byte 155 of 160 (section VCPU/1 payload)");
	expect_error(b, S2 + 9, -EINVAL, "file truncated at byte 169 of 192 (section UART/0 header)");
	expect_error(b, TR + 3, -EINVAL, "(trailer)");
	expect_error(b, 40, -EINVAL, "file truncated at byte 40 of 80 (header)");

	/* The same through a real file. */
	assert_int_equal(truncate(f->path, S1 + 35), 0);
	{
		struct snap_reader *r;

		assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "vm.snap: file truncated at byte 155 of 160 (section VCPU/1 payload)"));
	}
	free(b);
}

static void test_bad_magic(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *b = small_file(f->path, &len);

	b[3] = 'X';
	expect_error(b, len, -EINVAL, "not a kiln snapshot state file (bad magic)");
	expect_error((const uint8_t *)"KILX", 4, -EINVAL, "bad magic");
	expect_error((const uint8_t *)"{\"json\": 1}", 11, -EINVAL, "bad magic");
	free(b);
}

static void test_versions(void **state)
{
	struct fixture *f = *state;
	struct snap_header_info info;
	struct snap_reader *r;
	char err[ERR_SIZE];
	size_t len;
	uint8_t *b = small_file(f->path, &len);

	/* A newer major is refused even though the rest would parse. */
	b[8] = 2;
	fix_header_crc(b);
	fix_file_crc(b, len);
	expect_error(b, len, -ENOTSUP, "snapshot format 2 is newer than this kiln (1)");
	b[8] = 3;
	expect_error(b, len, -ENOTSUP, "snapshot format 3 is newer than this kiln (1)");
	b[8] = 0;
	fix_header_crc(b);
	fix_file_crc(b, len);
	expect_error(b, len, -ENOTSUP, "snapshot format 0 is older than this kiln can read (1)");

	/* Any minor of our major is accepted: minors only add what older readers may ignore. */
	b[8] = SNAP_FORMAT_MAJOR;
	for (unsigned int minor = 0; minor <= SNAP_FORMAT_MINOR + 5; minor++) {
		b[10] = (uint8_t)minor;
		fix_header_crc(b);
		fix_file_crc(b, len);
		assert_int_equal(snap_reader_open_mem(b, len, "t", &r, err, sizeof(err)), 0);
		snap_reader_header(r, &info);
		assert_int_equal(info.format_minor, minor);
		snap_reader_close(r);
	}

	/* Optional header flags are ignored, required ones refused. */
	put32(b + 12, 1u << 20);
	fix_header_crc(b);
	fix_file_crc(b, len);
	assert_int_equal(parse(b, len, err), 0);
	put32(b + 12, 1u << 3);
	fix_header_crc(b);
	fix_file_crc(b, len);
	expect_error(b, len, -ENOTSUP, "header: unknown required flags 0x8");
	put32(b + 12, 0);
	fix_header_crc(b);

	/* The same for section flags, and a section version 0. */
	put32(b + S1 + 12, 1u << 17);
	fix_section_header_crc(b, S1);
	fix_file_crc(b, len);
	assert_int_equal(parse(b, len, err), 0);
	put32(b + S1 + 12, 1);
	fix_section_header_crc(b, S1);
	fix_file_crc(b, len);
	expect_error(b, len, -ENOTSUP, "section VCPU/1: unknown required flags 0x1");
	put32(b + S1 + 12, 0);
	put32(b + S1 + 8, 0);
	fix_section_header_crc(b, S1);
	fix_file_crc(b, len);
	expect_error(b, len, -EINVAL, "section VCPU/1: version 0");
	free(b);
}

static void test_flipped_byte_everywhere(void **state)
{
	struct fixture *f = *state;
	char err[ERR_SIZE];
	size_t len, i;
	uint8_t *b = small_file(f->path, &len);
	int bit;

	for (i = 0; i < len; i++) {
		for (bit = -1; bit < 8; bit++) {
			uint8_t mask = bit < 0 ? 0xff : (uint8_t)(1u << bit);
			int ret;

			b[i] ^= mask;
			ret = parse(b, len, err);
			if (ret == 0)
				print_error("flipping 0x%02x at byte %zu went unnoticed\n", mask, i);
			assert_true(ret < 0);
			assert_true(strlen(err) > 3);
			b[i] ^= mask;
		}
	}
	assert_int_equal(parse(b, len, err), 0);

	/* Where the damage is decides the message. */
	b[S1 + SNAP_SECTION_HEADER_SIZE + 2] ^= 1;
	expect_error(b, len, -EBADMSG, "t: section VCPU/1: checksum mismatch");
	b[S1 + SNAP_SECTION_HEADER_SIZE + 2] ^= 1;
	b[S0 + SNAP_SECTION_HEADER_SIZE + 6] ^= 1; /* padding after VCPU/0's 5 bytes */
	expect_error(b, len, -EINVAL, "section VCPU/0: padding is not zero");
	b[S0 + SNAP_SECTION_HEADER_SIZE + 6] ^= 1;
	b[S2 + 17] ^= 1; /* UART/0 length */
	expect_error(b, len, -EBADMSG, "section UART/0 (#2 at byte 160): header checksum mismatch");
	b[S2 + 17] ^= 1;
	b[20] ^= 1; /* kiln version */
	expect_error(b, len, -EBADMSG, "header: checksum mismatch");
	b[20] ^= 1;
	b[TR + 17] ^= 1;
	expect_error(b, len, -EBADMSG, "file checksum mismatch");
	b[TR + 17] ^= 1;
	free(b);
}

static void test_bad_lengths(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *b = small_file(f->path, &len), *c = malloc(len);

	assert_non_null(c);
	/* Length past the end of a complete file (valid header checksum: a bug, not bit rot). */
	memcpy(c, b, len);
	put64(c + S1 + 16, 1000);
	fix_section_header_crc(c, S1);
	expect_error(c, len, -EINVAL, "section VCPU/1: length 1000 runs past the end of the file (40 bytes left)");

	/* Lengths that would wrap an offset. */
	put64(c + S1 + 16, UINT64_MAX - 7);
	fix_section_header_crc(c, S1);
	expect_error(c, len, -EINVAL, "section VCPU/1: length 18446744073709551608 is beyond the 64 MiB limit");
	put64(c + S1 + 16, UINT64_MAX);
	fix_section_header_crc(c, S1);
	expect_error(c, len, -EINVAL, "is beyond the 64 MiB limit");

	/* A length that overlaps the next section: its checksum is made right, the next header is then garbage. */
	memcpy(c, b, len);
	put64(c + S0 + 16, 8 + 16);
	put32(c + S0 + 24, crc_of(c + S0 + SNAP_SECTION_HEADER_SIZE, 24));
	fix_section_header_crc(c, S0);
	fix_file_crc(c, len);
	expect_error(c, len, -EBADMSG, "header checksum mismatch");

	/* A length shorter than the data: the rest is read as a section header. */
	memcpy(c, b, len);
	put64(c + S1 + 16, 0);
	put32(c + S1 + 24, 0);
	fix_section_header_crc(c, S1);
	fix_file_crc(c, len);
	expect_error(c, len, -EBADMSG, "header checksum mismatch");

	/* The section count disagreeing with the sections. */
	memcpy(c, b, len);
	put32(c + 72, 4);
	fix_header_crc(c);
	fix_file_crc(c, len);
	expect_error(c, len, -EINVAL, "header says 4 sections but section");
	put32(c + 72, 2);
	fix_header_crc(c);
	fix_file_crc(c, len);
	expect_error(c, len, -EINVAL, "bad trailer: expected at byte 160 after 2 sections, found at byte 192");
	put32(c + 72, UINT32_MAX);
	fix_header_crc(c);
	fix_file_crc(c, len);
	expect_error(c, len, -EINVAL, "header says 4294967295 sections");
	free(c);
	free(b);
}

static void test_duplicate_in_file(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *b = small_file(f->path, &len);

	/* VCPU/1 renamed VCPU/0: each part valid, the pair not. */
	put32(b + S1 + 4, 0);
	fix_section_header_crc(b, S1);
	fix_file_crc(b, len);
	expect_error(b, len, -EINVAL, "section VCPU/0 appears twice");
	free(b);
}

static void test_bad_trailer(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *b = small_file(f->path, &len), *c = calloc(1, len + 100);

	assert_non_null(c);
	memcpy(c, b, len);
	c[TR] = 'X';
	expect_error(c, len, -EINVAL, "bad trailer at byte 192 (no end magic)");
	memcpy(c, b, len);
	put64(c + TR + 8, len + 1);
	expect_error(c, len, -EINVAL, "bad trailer: total length 217 but the file is 216 bytes");
	memcpy(c, b, len);
	c[TR + 20] = 1;
	expect_error(c, len, -EINVAL, "bad trailer: reserved field is not zero");
	memcpy(c, b, len);
	put32(c + TR + 16, 0);
	expect_error(c, len, -EBADMSG, "file checksum mismatch");
	/* Anything appended after the trailer. */
	memcpy(c, b, len);
	expect_error(c, len + 100, -EINVAL, "bad trailer at byte 192 (no end magic)");
	expect_error(c, len + 1, -EINVAL, "bad trailer at byte 192");
	free(c);
	free(b);
}

static void test_swapped_sections(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *b = small_file(f->path, &len), tmp[40];

	/* VCPU/0 and VCPU/1 take 40 bytes each: swapped, every section is still valid. */
	memcpy(tmp, b + S0, 40);
	memmove(b + S0, b + S1, 40);
	memcpy(b + S1, tmp, 40);
	expect_error(b, len, -EBADMSG, "file checksum mismatch");
	free(b);
}

static void test_file_errors(void **state)
{
	struct fixture *f = *state;
	struct snap_reader *r;
	char err[ERR_SIZE];
	int fd;

	assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "vm.snap: cannot open: No such file or directory"));
	assert_null(r);
	assert_int_equal(snap_reader_open(f->dir, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	fd = open(f->path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SNAP_STATE_MAX_SIZE + 1), 0);
	close(fd);
	assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "67108865 bytes, more than the 64 MiB a state file may have"));
	assert_int_equal(truncate(f->path, 0), 0);
	assert_int_equal(snap_reader_open(f->path, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "file truncated at byte 0 of 80 (header)"));
}

static void test_commit_replaces(void **state)
{
	struct fixture *f = *state;
	char names[256];
	struct stat st1, st2;

	write_conf_snapshot(f->path, "first");
	assert_int_equal(stat(f->path, &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0600);
	write_conf_snapshot(f->path, "second");
	assert_int_equal(stat(f->path, &st2), 0);
	/* A new file renamed over the old one, not the old one rewritten in place. */
	assert_true(st1.st_ino != st2.st_ino);
	assert_int_equal(check_conf_snapshot(f->path, "second"), 0);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);
}

static void test_abort_leaves_old(void **state)
{
	struct fixture *f = *state;
	struct snap_writer *w;
	char names[256];

	write_conf_snapshot(f->path, "old");
	w = snap_writer_open(f->path);
	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_CONF, 0, 1, "new", 3), 0);
	snap_writer_abort(w);
	snap_writer_abort(NULL);
	assert_int_equal(check_conf_snapshot(f->path, "old"), 0);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);
	assert_string_equal(names, "vm.snap\n");
}

static void test_crash_before_commit(void **state)
{
	struct fixture *f = *state;
	char names[256], tmp[256], err[ERR_SIZE];
	struct snap_reader *r;
	int status;
	pid_t pid;

	write_conf_snapshot(f->path, "old");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The writer dies with everything written but the commit: kill -9 mid-snapshot. */
		struct snap_writer *w = snap_writer_open(f->path);

		if (!w || snap_write_section(w, SNAP_ID_CONF, 0, 1, "new", 3))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(check_conf_snapshot(f->path, "old"), 0);
	/* The dead writer's temp file stays behind, and is refused if anyone tries to load it. */
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 2);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", f->path, (int)pid);
	assert_int_equal(snap_reader_open(tmp, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad magic"));

	/* A later snapshot is not disturbed by it. */
	write_conf_snapshot(f->path, "newer");
	assert_int_equal(check_conf_snapshot(f->path, "newer"), 0);
}

static void test_two_writers(void **state)
{
	struct fixture *f = *state;
	struct snap_writer *a, *b;
	char names[256], stale[256];
	size_t len;
	uint8_t *p;

	/* A stale temp file with our pid (a dead process had it) must be neither reused nor clobbered. */
	snprintf(stale, sizeof(stale), "%s.tmp.%d", f->path, (int)getpid());
	write_file(stale, "stale", 5);
	a = snap_writer_open(f->path);
	b = snap_writer_open(f->path);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(snap_writer_tmp_path(a), snap_writer_tmp_path(b));
	assert_string_not_equal(snap_writer_tmp_path(a), stale);
	assert_string_not_equal(snap_writer_tmp_path(b), stale);
	assert_int_equal(snap_write_section(a, SNAP_ID_CONF, 0, 1, "a", 1), 0);
	assert_int_equal(snap_write_section(b, SNAP_ID_CONF, 0, 1, "b", 1), 0);
	assert_int_equal(snap_writer_commit(a), 0);
	assert_int_equal(check_conf_snapshot(f->path, "a"), 0);
	assert_int_equal(snap_writer_commit(b), 0);
	assert_int_equal(check_conf_snapshot(f->path, "b"), 0);
	p = read_file(stale, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "stale", 5);
	free(p);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 2);
}

static void test_commit_error(void **state)
{
	struct fixture *f = *state;
	struct snap_writer *w;
	char names[256];

	/* rename() over a directory fails: the error comes back and no temp file is left. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	w = snap_writer_open(f->path);
	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_CONF, 0, 1, "x", 1), 0);
	assert_int_equal(snap_writer_commit(w), -EISDIR);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);
	assert_int_equal(rmdir(f->path), 0);
}

/* snap_writer_open in a read-only directory, as an unprivileged user; exit status 0 if all is as expected. */
static int unwritable_dir_child(const char *path, const char *log)
{
	char msg[512] = { 0 };
	struct snap_writer *w;
	int fd, logfd;

	if (geteuid() == 0 && (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
		return 10;
	logfd = open(log, O_WRONLY | O_TRUNC);
	if (logfd < 0 || dup2(logfd, STDERR_FILENO) < 0)
		return 11;
	w = snap_writer_open(path);
	if (w || errno != EACCES)
		return 12;
	fd = open(log, O_RDONLY);
	if (fd < 0 || read(fd, msg, sizeof(msg) - 1) < 0)
		return 13;
	if (!strstr(msg, path) || !strstr(msg, "Permission denied"))
		return 14;
	return 0;
}

static void test_unwritable_dir(void **state)
{
	struct fixture *f = *state;
	char log[] = "/tmp/kiln-snap-log-XXXXXX";
	int status, logfd;
	pid_t pid;

	logfd = mkstemp(log);
	assert_true(logfd >= 0);
	assert_int_equal(fchmod(logfd, 0666), 0);
	close(logfd);
	assert_int_equal(chmod(f->dir, 0555), 0);
	/* In a child: it may have to drop root, which bypasses the permission bits. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unwritable_dir_child(f->path, log));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(log);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(f->dir, 0700), 0);
}

/* ---- MEMO and the memory file ---- */

#define MEMO_BUF_SIZE 1024 /* bytes, more than snap_memo_codec's most (40 + 16 * 24) */

static size_t memo_encode(const struct snap_memo *m, uint8_t *buf)
{
	struct snap_enc e;

	assert_true(codec_max_size(&snap_memo_codec) <= MEMO_BUF_SIZE);
	snap_enc_init(&e, buf, MEMO_BUF_SIZE);
	assert_int_equal(codec_encode(&snap_memo_codec, m, &e), 0);
	return e.len;
}

static int memo_decode(const void *data, size_t len, uint32_t version, struct snap_memo *m, char *err,
			    size_t err_size)
{
	return codec_decode(&snap_memo_codec, m, data, len, version, err, err_size);
}

static struct snap_memo two_region_memo(void)
{
	struct snap_memo m = {
		.mem_size = 64 * 4096,
		.data_size = 64 * 4096,
		.nr_regions = 2,
		.sample_pages = SNAP_MEM_SAMPLE_PAGES,
		.sample_crc = 0x12345678,
		.has_full_crc = true,
		.full_crc = 0x9abcdef0,
		.regions = { { 0, 48 * 4096, 0 }, { 1ull << 32, 16 * 4096, 48 * 4096 } },
	};

	return m;
}

static void expect_memo_error(const struct snap_memo *m, const char *msg)
{
	uint8_t buf[MEMO_BUF_SIZE];
	struct snap_memo out;
	char err[ERR_SIZE] = "";
	size_t len = memo_encode(m, buf);

	assert_int_equal(memo_decode(buf, len, snap_memo_codec.version, &out, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg))
		print_error("got \"%s\", expected \"%s\"\n", err, msg);
	assert_non_null(strstr(err, msg));
}

static void test_memo(void **state)
{
	uint8_t buf[MEMO_BUF_SIZE];
	struct snap_memo m = two_region_memo(), out, bad;
	char err[ERR_SIZE];
	size_t len;

	(void)state;
	len = memo_encode(&m, buf);
	assert_int_equal(len, 40 + 2 * 24); /* the header, two regions */
	assert_int_equal(memo_decode(buf, len, snap_memo_codec.version, &out, err, sizeof(err)), 0);
	assert_memory_equal(&out, &m, sizeof(m));

	assert_int_equal(memo_decode(buf, len, 2, &out, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "memory layout version 2 is not known to this kiln (it reads version 1)"));
	assert_int_equal(memo_decode(buf, len - 1, snap_memo_codec.version, &out, err, sizeof(err)), -EINVAL);
	assert_int_equal(memo_decode(buf, 10, snap_memo_codec.version, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory layout: 10 bytes, not what version 1 holds"));

	bad = m;
	bad.regions[1].gpa = 40 * 4096;
	expect_memo_error(&bad, "region 1 overlaps or precedes region 0");
	bad = m;
	bad.regions[1].file_offset = 40 * 4096;
	expect_memo_error(&bad, "regions 0 and 1 overlap in the memory file");
	bad = m;
	bad.regions[1].file_offset = 49 * 4096;
	expect_memo_error(&bad, "outside the 262144-byte memory file");
	bad = m;
	bad.regions[0].size = 100;
	expect_memo_error(&bad, "region 0 (gpa 0x0, 100 bytes at file offset 0) is unaligned");
	bad = m;
	bad.regions[1].gpa = UINT64_MAX - 4095;
	expect_memo_error(&bad, "region 1");
	bad = m;
	bad.mem_size += 4096;
	expect_memo_error(&bad, "regions add up to 262144 bytes, not the 266240 bytes of guest RAM");
	bad = m;
	bad.data_size = 100;
	expect_memo_error(&bad, "data size 100 is not a page multiple");
	bad = m;
	bad.sample_pages = 0;
	expect_memo_error(&bad, "sample_pages is 0, allowed 1 to 4096");
	bad = m;
	bad.nr_regions = 0;
	expect_memo_error(&bad, "nr_regions is 0, allowed 1 to 16");

	/*
	 * Found by tests/fuzz/fuzz_snapshot.c: the reserved field and a full_crc without its flag were
	 * ignored, so a MEMO that another writer gave a meaning there decoded as if it were ours.
	 */
	len = memo_encode(&m, buf);
	buf[36] = 1;
	assert_int_equal(memo_decode(buf, len, snap_memo_codec.version, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory layout: reserved bytes are not zero"));
	bad = m;
	bad.has_full_crc = false;
	bad.full_crc = 0; /* the codec writes the struct as it is (snap_mem_finish zeroes it without the flag) */
	len = memo_encode(&bad, buf);
	assert_int_equal(memo_decode(buf, len, snap_memo_codec.version, &out, err, sizeof(err)), 0);
	buf[34] = 1;
	assert_int_equal(memo_decode(buf, len, snap_memo_codec.version, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory layout: full_crc without its flag is not zero"));
}

/* A finished, committed memory file of `pages` pages with a hole in it; returns its MEMO. */
static struct snap_memo make_mem_file(const char *path, const uint8_t id[SNAP_ID_SIZE], uint64_t pages, bool commit,
				      char *tmp, size_t tmp_size)
{
	struct snap_memo m = { .mem_size = pages * 4096, .data_size = pages * 4096, .nr_regions = 1,
			       .regions = { { 0, pages * 4096, 0 } } };
	uint8_t page[4096];
	uint64_t i;
	int fd = snap_mem_create(path, tmp, tmp_size);

	assert_true(fd >= 0);
	for (i = 0; i < pages; i++) {
		if (i == 3)
			continue; /* a hole, as a zero page would be */
		memset(page, (int)(i + 1), sizeof(page));
		assert_int_equal(pwrite(fd, page, sizeof(page), (off_t)(i * 4096)), (ssize_t)sizeof(page));
	}
	assert_int_equal(snap_mem_finish(fd, &m, id, true, NULL), 0);
	close(fd);
	if (commit)
		assert_int_equal(snap_mem_commit(tmp, path), 0);
	return m;
}

/* MCRC: a checksum per 2 MiB chunk (the last one short), through its encoding, checked one or all. */
static void test_mem_chunks(void **state)
{
	struct fixture *f = *state;
	struct snap_memo m = { .mem_size = 1200 * 4096, .data_size = 1200 * 4096, .nr_regions = 1,
			       .regions = { { 0, 1200 * 4096, 0 } } };
	struct snap_mem_chunks c = { 0 }, d = { 0 };
	uint8_t id[SNAP_ID_SIZE], byte = 0x55, *enc;
	char mem[160], tmp[256], err[ERR_SIZE];
	size_t len;
	int fd;

	snprintf(mem, sizeof(mem), "%s/vm.mem", f->dir);
	memset(id, 0xa1, sizeof(id));
	fd = snap_mem_create(mem, tmp, sizeof(tmp));
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &byte, 1, 5 * 4096), 1);
	assert_int_equal(snap_mem_finish(fd, &m, id, false, &c), 0);
	assert_int_equal(c.chunk_size, SNAP_MEM_CHUNK_SIZE);
	assert_int_equal(c.nr, 3);
	assert_int_equal(snap_mem_chunks_encode(&c, &enc, &len), 0);
	assert_int_equal(len, 8 + 3 * 4);
	assert_int_equal(snap_mem_chunks_decode(enc, len, &m, &d, err, sizeof(err)), 0);
	assert_memory_equal(c.crc, d.crc, 3 * sizeof(*c.crc));
	assert_int_equal(snap_mem_chunks_decode(enc, len - 4, &m, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "do not describe a 4915200-byte memory file"));
	snap_mem_chunks_free(&d);
	enc[0] = 1; /* a chunk size that is no power of two */
	assert_int_equal(snap_mem_chunks_decode(enc, len, &m, &d, err, sizeof(err)), -EINVAL);
	free(enc);

	assert_int_equal(snap_mem_verify(fd, mem, &m, &c, UINT32_MAX, err, sizeof(err)), 0);
	assert_int_equal(pwrite(fd, &byte, 1, 4 * 1048576 + 7), 1);
	assert_int_equal(snap_mem_verify(fd, mem, &m, &c, 0, err, sizeof(err)), 0);
	assert_int_equal(snap_mem_verify(fd, mem, &m, &c, UINT32_MAX, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum mismatch in the 720896-byte chunk at offset 4194304"));
	assert_int_equal(snap_mem_verify(fd, mem, &m, &c, 3, err, sizeof(err)), -EINVAL);
	snap_mem_chunks_free(&c);
	close(fd);
	unlink(tmp);
}

/* The target's lock, and which temp files are stale: only a dead pid's, in kiln's own name pattern. */
static void test_lock_and_stale_tmp(void **state)
{
	struct fixture *f = *state;
	char path[160], name[256], err[ERR_SIZE];
	int a, b, i;
	/* Not kiln's names, with the pid of a process that is gone. */
	const char *keep[] = { "x.tmp.0", "x.tmp.0%d", "x.tmp.%d.0", "x.tmp.%d.100", "x.tmp.%dx", "y.tmp.%d",
			       "x.tmp.%d.d" };
	pid_t dead = fork();

	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	snprintf(path, sizeof(path), "%s/x", f->dir);

	/* No lock file: a shared lock creates none. */
	assert_int_equal(snap_lock(path, true, err, sizeof(err)), -ENOENT);
	a = snap_lock(path, false, err, sizeof(err));
	assert_true(a >= 0);
	/* flock belongs to the open file: a second open in this process conflicts as another process would. */
	assert_int_equal(snap_lock(path, false, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "another snapshot to it is being written or restored"));
	assert_int_equal(snap_lock(path, true, err, sizeof(err)), -EBUSY);
	close(a);
	a = snap_lock(path, true, err, sizeof(err));
	b = snap_lock(path, true, err, sizeof(err));
	assert_true(a >= 0 && b >= 0);
	close(a);
	close(b);

	for (i = 0; i < (int)(sizeof(keep) / sizeof(keep[0])); i++) {
		char base[64];

		snprintf(base, sizeof(base), keep[i], (int)dead);
		snprintf(name, sizeof(name), "%s/%s", f->dir, base);
		close(open(name, O_CREAT | O_WRONLY, 0600));
	}
	snprintf(name, sizeof(name), "%s/x.tmp.%d.4", f->dir, (int)dead);
	assert_int_equal(mkfifo(name, 0600), 0); /* not a regular file */
	snprintf(name, sizeof(name), "%s/x.tmp.%d", f->dir, (int)getpid()); /* alive */
	close(open(name, O_CREAT | O_WRONLY, 0600));
	snprintf(name, sizeof(name), "%s/x.tmp.%d.2", f->dir, (int)dead);
	assert_int_equal(symlink("/nonexistent", name), 0); /* not a regular file */
	snprintf(name, sizeof(name), "%s/x.tmp.%d", f->dir, (int)dead);
	close(open(name, O_CREAT | O_WRONLY, 0600));
	snprintf(name, sizeof(name), "%s/x.tmp.%d.3", f->dir, (int)dead);
	close(open(name, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(snap_remove_stale_tmp(path), 2);
	snprintf(name, sizeof(name), "%s/x.tmp.%d", f->dir, (int)dead);
	assert_int_equal(access(name, F_OK), -1);
	snprintf(name, sizeof(name), "%s/x.tmp.%d", f->dir, (int)getpid());
	assert_int_equal(access(name, F_OK), 0);
	assert_int_equal(snap_remove_stale_tmp(path), 0);
}

static void test_mem_file(void **state)
{
	struct fixture *f = *state;
	uint8_t id[SNAP_ID_SIZE], other[SNAP_ID_SIZE], byte = 0x55, buf[MEMO_BUF_SIZE];
	char mem[160], tmp[256], err[ERR_SIZE], names[256];
	struct snap_memo m, m2;
	struct stat st;
	int fd;

	snprintf(mem, sizeof(mem), "%s/vm.mem", f->dir);
	memset(id, 0xa1, sizeof(id));
	memset(other, 0xb2, sizeof(other));
	m = make_mem_file(mem, id, 200, true, tmp, sizeof(tmp));
	assert_int_equal(stat(mem, &st), 0);
	assert_int_equal(st.st_size, 200 * 4096 + SNAP_MEM_TRAILER_SIZE);
	assert_int_equal(m.sample_pages, SNAP_MEM_SAMPLE_PAGES);
	assert_true(m.has_full_crc);
	/* The MEMO it goes with survives its own encoding. */
	assert_int_equal(memo_decode(buf, memo_encode(&m, buf), 1, &m2, err, sizeof(err)), 0);

	fd = snap_mem_open(mem, &m, id, true, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);

	/* Another snapshot's memory file. */
	assert_int_equal(snap_mem_open(mem, &m, other, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "belongs to snapshot a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1, not to this state file's "
				    "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"));
	/* The wrong size, either way. */
	m2 = m;
	m2.data_size += 4096;
	assert_int_equal(snap_mem_open(mem, &m2, id, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is 823296 bytes, the snapshot expects 827392 (823296 bytes of RAM + 4096-byte"));
	assert_int_equal(truncate(mem, 100 * 4096), 0);
	assert_int_equal(snap_mem_open(mem, &m, id, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is 409600 bytes, the snapshot expects 823296"));
	unlink(mem);
	assert_int_equal(snap_mem_open(mem, &m, id, false, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot open: No such file"));

	/* A changed sampled page (the first is always sampled), then one the sample misses. */
	m = make_mem_file(mem, id, 200, true, tmp, sizeof(tmp));
	fd = open(mem, O_WRONLY);
	assert_int_equal(pwrite(fd, &byte, 1, 10), 1);
	close(fd);
	assert_int_equal(snap_mem_open(mem, &m, id, false, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum mismatch in the sampled pages"));
	m = make_mem_file(mem, id, 200, true, tmp, sizeof(tmp));
	fd = open(mem, O_WRONLY);
	assert_int_equal(pwrite(fd, &byte, 1, 2 * 4096 + 10), 1); /* page 2 of 200: between samples 0 and 3 */
	close(fd);
	fd = snap_mem_open(mem, &m, id, false, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(snap_mem_open(mem, &m, id, true, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "memory file"));
	assert_non_null(strstr(err, "checksum mismatch"));

	/* The trailer damaged. */
	m = make_mem_file(mem, id, 200, true, tmp, sizeof(tmp));
	fd = open(mem, O_WRONLY);
	assert_int_equal(pwrite(fd, &byte, 1, 200 * 4096 + 33), 1);
	close(fd);
	assert_int_equal(snap_mem_open(mem, &m, id, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no valid kiln memory trailer at byte 819200"));
	/* Its reserved field set, the trailer's checksum right: refused all the same. */
	m = make_mem_file(mem, id, 200, true, tmp, sizeof(tmp));
	fd = open(mem, O_RDWR);
	{
		uint8_t tr[44];
		uint32_t c;

		assert_int_equal(pread(fd, tr, sizeof(tr), 200 * 4096), (ssize_t)sizeof(tr));
		tr[12] = 1;
		c = (uint32_t)crc32(0, tr, 40);
		for (int i = 0; i < 4; i++)
			tr[40 + i] = (uint8_t)(c >> (8 * i));
		assert_int_equal(pwrite(fd, tr, sizeof(tr), 200 * 4096), (ssize_t)sizeof(tr));
	}
	close(fd);
	assert_int_equal(snap_mem_open(mem, &m, id, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no valid kiln memory trailer at byte 819200"));
	unlink(mem);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 0);
}

static void test_mem_roll_forward(void **state)
{
	struct fixture *f = *state;
	uint8_t old_id[SNAP_ID_SIZE], new_id[SNAP_ID_SIZE];
	char mem[160], tmp[256], tmp2[256], err[ERR_SIZE], names[256];
	struct snap_memo m_old, m_new;
	int fd;

	snprintf(mem, sizeof(mem), "%s/vm.mem", f->dir);
	memset(old_id, 1, sizeof(old_id));
	memset(new_id, 2, sizeof(new_id));
	m_old = make_mem_file(mem, old_id, 16, true, tmp, sizeof(tmp));
	/* New memory finished, state committed, crash before snap_mem_commit. */
	m_new = make_mem_file(mem, new_id, 32, false, tmp, sizeof(tmp));
	/* A stale temp file of an older attempt does not match and is left alone. */
	make_mem_file(mem, old_id, 8, false, tmp2, sizeof(tmp2));
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 3);

	fd = snap_mem_open(mem, &m_new, new_id, true, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	/* Moved into place: the old file is gone and the next open needs no recovery. */
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(tmp2, F_OK), 0);
	fd = snap_mem_open(mem, &m_new, new_id, true, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(snap_mem_open(mem, &m_old, old_id, false, err, sizeof(err)), -EINVAL);

	/* The same when the memory file was never there. */
	unlink(mem);
	make_mem_file(mem, new_id, 32, false, tmp, sizeof(tmp));
	fd = snap_mem_open(mem, &m_new, new_id, false, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(access(mem, F_OK), 0);
	unlink(tmp2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_section_messages, setup, teardown),
		cmocka_unit_test(test_section_names),
		cmocka_unit_test_setup_teardown(test_writer_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_at_every_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_in_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_trailer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_leaves_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
		cmocka_unit_test(test_memo),
		cmocka_unit_test_setup_teardown(test_mem_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mem_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_stale_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mem_roll_forward, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
