// SPDX-License-Identifier: MIT
/*
 * Per-clone disks: the "%d" templating of kiln clone's override values, where --disk-copy puts a copy,
 * the image copy itself (src/backends/block/image_copy.c: data ranges copied, holes kept, an image in
 * use never replaced, no temp file left behind) and vm_clone_copy_disk against a snapshot's DISK
 * record (a base changed since the snapshot is refused). Files live in a temp directory under /tmp;
 * the reflink path needs a btrfs or XFS mount and is covered by tests/integration/test_clone_disks.py.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/block/image_copy.h"
#include "vmm/clone.h"
#include "vmm/config.h"
#include "vmm/snapshot.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)

static void test_expand_index(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "tap%d", 3), 0);
	assert_string_equal(out, "tap3");
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "/d/%d/x%d.img", 12), 0);
	assert_string_equal(out, "/d/12/x12.img");
	/* Only "%d" is special: a lone '%' and other conversions stay as they are. */
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "a%b%%d%", 7), 0);
	assert_string_equal(out, "a%b%7%");
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "", 1), 0);
	assert_string_equal(out, "");
	/* Exactly full (15 bytes and the NUL), then one byte more, by a literal or by the index. */
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "0123456789abc%d", 99), 0);
	assert_string_equal(out, "0123456789abc99");
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "0123456789abc%d", 100), -ENAMETOOLONG);
	assert_int_equal(vm_clone_expand_index(out, sizeof(out), "0123456789abcdef", 0), -ENAMETOOLONG);
	assert_int_equal(vm_clone_expand_index(out, 4, "%d", 1000), -ENAMETOOLONG);
}

static void test_disk_path(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(vm_clone_disk_path(out, sizeof(out), NULL, "/a/b/vm.snap", "rootfs", 2), 0);
	assert_string_equal(out, "/a/b/rootfs.clone2.img");
	assert_int_equal(vm_clone_disk_path(out, sizeof(out), NULL, "vm.snap", "rootfs", 0), 0);
	assert_string_equal(out, "./rootfs.clone0.img");
	assert_int_equal(vm_clone_disk_path(out, sizeof(out), NULL, "/vm.snap", "d", 1), 0);
	assert_string_equal(out, "/d.clone1.img");
	assert_int_equal(vm_clone_disk_path(out, sizeof(out), "/disks", "/a/vm.snap", "d", 10), 0);
	assert_string_equal(out, "/disks/d.clone10.img");
	assert_int_equal(vm_clone_disk_path(out, 16, "/disks", "/a/vm.snap", "d", 10), -ENAMETOOLONG);
}

struct dir {
	char path[64];
};

static int dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	snprintf(d->path, sizeof(d->path), "/tmp/kiln-clone-disk-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dir *d = *state;
	DIR *dir = opendir(d->path);
	struct dirent *e;
	char path[384];

	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", d->path, e->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(d->path);
	free(d);
	return 0;
}

/* How many entries the directory holds (temp files left behind show up here). */
static int count_entries(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *e;
	int n = 0;

	while (dir && (e = readdir(dir)))
		n += e->d_name[0] != '.';
	if (dir)
		closedir(dir);
	return n;
}

static void write_at(const char *path, uint64_t off, uint8_t byte, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	uint8_t *buf = malloc(len);

	assert_true(fd >= 0);
	memset(buf, byte, len);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	free(buf);
	close(fd);
}

static void assert_same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb;

	assert_non_null(fa);
	assert_non_null(fb);
	do {
		ca = fgetc(fa);
		cb = fgetc(fb);
		assert_int_equal(ca, cb);
	} while (ca != EOF);
	fclose(fa);
	fclose(fb);
}

/* A 16 MiB image with 4 KiB of data at 0, 8 KiB at 5 MiB, and a hole to its end. */
static void make_thin_image(const char *path)
{
	write_at(path, 0, 0xa5, 4 * KIB);
	write_at(path, 5 * MIB, 0x5a, 8 * KIB);
	assert_int_equal(truncate(path, 16 * MIB), 0);
}

static void check_copy(const char *src, const char *dst, const struct image_copy_result *res)
{
	struct stat ss, ds;

	assert_int_equal(stat(src, &ss), 0);
	assert_int_equal(stat(dst, &ds), 0);
	assert_int_equal(res->size, 16 * MIB);
	assert_int_equal(ds.st_size, 16 * MIB);
	assert_same_bytes(src, dst);
	/* The owner may write the copy: it is a clone's disk. */
	assert_true(ds.st_mode & 0600);
	if (res->how == IMAGE_COPY_SPARSE && (uint64_t)ss.st_blocks * 512 < 1 * MIB) {
		/* A filesystem with holes: only the data ranges were copied, and the copy is as thin. */
		assert_true(res->data_bytes >= 12 * KIB && res->data_bytes < 1 * MIB);
		assert_true((uint64_t)ds.st_blocks * 512 < 1 * MIB);
	}
}

static void test_copy_sparse(void **state)
{
	struct dir *d = *state;
	struct image_copy_result res;
	char src[128], dst[128], err[512];

	snprintf(src, sizeof(src), "%s/base.img", d->path);
	snprintf(dst, sizeof(dst), "%s/copy.img", d->path);
	make_thin_image(src);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), 0);
	check_copy(src, dst, &res);
	assert_string_equal(image_copy_how_name(IMAGE_COPY_SPARSE), "sparse copy");
	/* A copy is the clone's own: writing it leaves the base alone. */
	write_at(dst, 0, 0x11, 4 * KIB);
	write_at(src, 8 * MIB, 0x22, 1);
	assert_int_equal(count_entries(d->path), 2);
}

/*
 * Across two filesystems (this directory and /dev/shm, a tmpfs): no reflink (EXDEV), and
 * copy_file_range refuses too on current kernels, so the read/write fallback does the copy.
 */
static void test_copy_across_filesystems(void **state)
{
	struct dir *d = *state;
	struct image_copy_result res;
	char src[128], dst[128], err[512];
	struct stat st;

	if (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode)) {
		skip();
		return;
	}
	snprintf(src, sizeof(src), "%s/base.img", d->path);
	snprintf(dst, sizeof(dst), "/dev/shm/kiln-clone-disk-%d.img", (int)getpid());
	make_thin_image(src);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), 0);
	assert_int_equal(res.how, IMAGE_COPY_SPARSE);
	check_copy(src, dst, &res);
	unlink(dst);
}

static void test_copy_replaces_but_not_in_use(void **state)
{
	struct dir *d = *state;
	struct image_copy_result res;
	char src[128], dst[128], err[512];
	int fd;

	snprintf(src, sizeof(src), "%s/base.img", d->path);
	snprintf(dst, sizeof(dst), "%s/copy.img", d->path);
	make_thin_image(src);
	/* An earlier copy, larger and different: replaced whole. */
	write_at(dst, 20 * MIB, 0x77, 4 * KIB);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), 0);
	check_copy(src, dst, &res);

	/* A running VM holds its image locked (raw_open's flock): it is never replaced. */
	write_at(dst, 0, 0x33, 1);
	fd = open(dst, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "in use"));
	close(fd);
	{
		FILE *f = fopen(dst, "rb");

		assert_int_equal(fgetc(f), 0x33);
		fclose(f);
	}
	assert_int_equal(count_entries(d->path), 2);
}

static void test_copy_refusals(void **state)
{
	struct dir *d = *state;
	struct image_copy_result res;
	char src[128], dst[128], alias[128], err[512];

	snprintf(src, sizeof(src), "%s/base.img", d->path);
	snprintf(dst, sizeof(dst), "%s/copy.img", d->path);
	snprintf(alias, sizeof(alias), "%s/same.img", d->path);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "base.img"));
	assert_int_equal(image_copy(d->path, dst, &res, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	make_thin_image(src);
	/* The image itself, by its name or another: never copied over itself. */
	assert_int_equal(image_copy(src, src, &res, err, sizeof(err)), -EINVAL);
	assert_int_equal(link(src, alias), 0);
	assert_int_equal(image_copy(src, alias, &res, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "itself"));
	/* A directory that does not exist: the temp file cannot be made, nothing is left. */
	snprintf(dst, sizeof(dst), "%s/no/copy.img", d->path);
	assert_int_equal(image_copy(src, dst, &res, err, sizeof(err)), -ENOENT);
	assert_int_equal(count_entries(d->path), 2);
}

/* A state file with the DISK section of one drive "rw" at `image`, and the config naming it. */
static struct snap_reader *disk_snapshot(const char *dir, const char *image, struct vm_config *cfg)
{
	char state[128], spec[256], err[512];
	uint8_t *buf = malloc(codec_max_size(&snap_disk_codec));
	struct snap_reader *r = NULL;
	struct snap_writer *w;
	struct snap_disk disk;
	struct snap_enc e;

	snprintf(state, sizeof(state), "%s/vm.snap", dir);
	snprintf(spec, sizeof(spec), "%s,id=rw", image);
	vm_config_init(cfg);
	assert_int_equal(vm_config_add_disk_flag(cfg, spec, err, sizeof(err)), 0);
	assert_int_equal(snap_disk_record(&disk, image, false), 0);
	assert_non_null(buf);
	snap_enc_init(&e, buf, codec_max_size(&snap_disk_codec));
	assert_int_equal(codec_encode(&snap_disk_codec, &disk, &e), 0);
	w = snap_writer_open(state);
	assert_non_null(w);
	assert_int_equal(snap_write_section(w, SNAP_ID_DISK, 0, snap_disk_codec.version, buf, e.len), 0);
	free(buf);
	assert_int_equal(snap_writer_commit(w), 0);
	assert_int_equal(snap_reader_open(state, &r, err, sizeof(err)), 0);
	unlink(state);
	return r;
}

static void test_copy_for_a_clone(void **state)
{
	struct dir *d = *state;
	char src[128], dst[128], err[512];
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 1000000000, .tv_nsec = 5 } };
	struct vm_config cfg;
	struct snap_reader *r;

	snprintf(src, sizeof(src), "%s/base.img", d->path);
	snprintf(dst, sizeof(dst), "%s/rw.clone0.img", d->path);
	make_thin_image(src);
	r = disk_snapshot(d->path, src, &cfg);
	assert_int_equal(vm_clone_copy_disk(r, &cfg, "rw", dst, err, sizeof(err)), 0);
	assert_same_bytes(src, dst);
	assert_int_equal(vm_clone_copy_disk(r, &cfg, "nope", dst, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no drive \"nope\""));
	/* The base changed after the snapshot (its mtime): a copy would not be the snapshot's disk. */
	assert_int_equal(utimensat(AT_FDCWD, src, times, 0), 0);
	assert_int_equal(vm_clone_copy_disk(r, &cfg, "rw", dst, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "changed since the snapshot"));
	/* Restoring it in place is only warned about, as before. */
	{
		struct snap_disk disk;

		assert_int_equal(vm_snapshot_disk(r, &cfg, "rw", &disk, err, sizeof(err)), 0);
		assert_int_equal(snap_disk_check(&disk, NULL, false, err, sizeof(err)), 0);
		assert_int_equal(snap_disk_check(&disk, src, true, err, sizeof(err)), -EINVAL);
		/* An override: only its size counts; a wrong one names both files. */
		assert_int_equal(snap_disk_check(&disk, dst, true, err, sizeof(err)), 0);
		assert_int_equal(truncate(dst, 1 * MIB), 0);
		assert_int_equal(snap_disk_check(&disk, dst, false, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "rw.clone0.img is 1048576 bytes"));
		assert_non_null(strstr(err, "base.img was 16777216 bytes"));
	}
	snap_reader_close(r);
	vm_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand_index),
		cmocka_unit_test(test_disk_path),
		cmocka_unit_test_setup_teardown(test_copy_sparse, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_copy_across_filesystems, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_copy_replaces_but_not_in_use, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_copy_refusals, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_copy_for_a_clone, dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
