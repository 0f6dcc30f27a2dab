// SPDX-License-Identifier: MIT
/*
 * kernel_image.c: ELF64 images and bzImages built in memory (no binary test data), every malformation
 * rejected with a reason, truncation/bit-flip fuzzing, and the host's own /boot/vmlinuz when readable.
 */
#include <elf.h>
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/kernel_image.h"
#include "arch/x86/payload.h"

#include "payload_fixture.h"

#define ELF_LEN 0x1400
#define NOTE_OFF 0x1300
#define ENTRY 0x100020

static Elf64_Ehdr *ehdr(struct buf *b)
{
	return (Elf64_Ehdr *)b->p;
}

static Elf64_Phdr *phdr(struct buf *b, unsigned int i)
{
	return (Elf64_Phdr *)(b->p + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

/* Append a note at *off (4-byte aligned name and descriptor); returns the bytes used. */
static size_t put_note(uint8_t *p, const char *name, uint32_t type, const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = { (uint32_t)strlen(name) + 1, descsz, type };
	size_t name_pad = (nh.n_namesz + 3) & ~3u;

	memcpy(p, &nh, sizeof(nh));
	memcpy(p + sizeof(nh), name, nh.n_namesz);
	memcpy(p + sizeof(nh) + name_pad, desc, descsz);
	return sizeof(nh) + name_pad + ((descsz + 3) & ~3u);
}

/*
 * The reference image: PT_LOAD 0x100000 (0x200 bytes of file, 0x1000 in memory), PT_LOAD 0x200000
 * (0x100 bytes), PT_NOTE with a Xen PVH entry note of 4 bytes at 0x100010.
 */
static struct buf make_elf(void)
{
	struct buf b = { calloc(1, ELF_LEN), ELF_LEN };
	uint32_t pvh = 0x100010;
	Elf64_Ehdr *eh;

	assert_non_null(b.p);
	eh = ehdr(&b);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = ENTRY;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 3;
	*phdr(&b, 0) = (Elf64_Phdr){ PT_LOAD, PF_R | PF_X, 0x1000, 0x100000, 0x100000, 0x200, 0x1000, 0x1000 };
	*phdr(&b, 1) = (Elf64_Phdr){ PT_LOAD, PF_R | PF_W, 0x1200, 0x200000, 0x200000, 0x100, 0x100, 0x1000 };
	*phdr(&b, 2) = (Elf64_Phdr){ PT_NOTE, PF_R, NOTE_OFF, 0, 0, 0, 0, 4 };
	phdr(&b, 2)->p_filesz = put_note(b.p + NOTE_OFF, "Xen", 18, &pvh, sizeof(pvh));
	for (int i = 0; i < 0x300; i++)
		b.p[0x1000 + i] = (uint8_t)(i * 7);
	return b;
}

static int parse(struct buf *b, struct kernel_image *img, char *err)
{
	return kernel_image_parse(b->p, b->len, img, err, 160);
}

/* Parse must fail with `ret` and an error containing `msg`; the image is left zeroed. */
static void expect_fail(struct buf *b, int ret, const char *msg)
{
	struct kernel_image img;
	char err[160];

	assert_int_equal(parse(b, &img, err), ret);
	if (!strstr(err, msg))
		fail_msg("error \"%s\" lacks \"%s\"", err, msg);
	assert_null(img.elf);
	free(b->p);
}

static void test_elf_valid(void **state)
{
	struct buf b = make_elf();
	struct kernel_image img;
	char err[160];

	assert_int_equal(parse(&b, &img, err), 0);
	assert_int_equal(img.entry, ENTRY);
	assert_int_equal(img.nr_segments, 2);
	assert_int_equal(img.segments[0].paddr, 0x100000);
	assert_int_equal(img.segments[0].filesz, 0x200);
	assert_int_equal(img.segments[0].memsz, 0x1000);
	assert_int_equal(img.segments[0].offset, 0x1000);
	assert_int_equal(img.segments[1].paddr, 0x200000);
	assert_int_equal(img.load_start, 0x100000);
	assert_int_equal(img.load_end, 0x200100);
	assert_true(img.has_pvh_entry);
	assert_int_equal(img.pvh_entry, 0x100010);
	assert_false(img.is_linux);
	assert_false(img.from_bzimage);
	/* img owns a copy */
	assert_true(img.elf != b.p);
	assert_int_equal(img.elf_size, b.len);
	assert_memory_equal(img.elf, b.p, b.len);
	kernel_image_free(&img);
	assert_null(img.elf);
	assert_int_equal(img.nr_segments, 0);
	kernel_image_free(&img); /* twice is harmless */
	free(b.p);
}

/* vmlinux layout: linked at 0xffffffff81000000, loaded at 16 MiB, e_entry physical; or e_entry virtual. */
static void test_elf_entry_translation(void **state)
{
	static const uint64_t entries[][2] = {
		{ 0x1000000, 0x1000000 }, { 0xffffffff81000040, 0x1000040 }, { 0xffffffff81200000, 0x1200000 } };
	struct kernel_image img;
	char err[160];

	for (int i = 0; i < 3; i++) {
		struct buf b = make_elf();

		phdr(&b, 0)->p_vaddr = 0xffffffff81000000;
		phdr(&b, 0)->p_paddr = 0x1000000;
		phdr(&b, 0)->p_memsz = 0x400000;
		ehdr(&b)->e_entry = entries[i][0];
		assert_int_equal(parse(&b, &img, err), 0);
		assert_int_equal(img.entry, entries[i][1]);
		assert_int_equal(img.load_start, 0x200000);
		assert_int_equal(img.load_end, 0x1400000);
		kernel_image_free(&img);
		free(b.p);
	}
}

static void test_elf_notes(void **state)
{
	uint64_t pvh64 = 0x1000850, bogus = 0x100000000ull;
	struct kernel_image img;
	char err[160];
	struct buf b = make_elf();
	size_t n;

	/* 8-byte PVH descriptor (Linux's _ASM_PTR) and a "Linux" note. */
	n = put_note(b.p + NOTE_OFF, "Linux", 6, "6.1.0\0\0", 8);
	n += put_note(b.p + NOTE_OFF + n, "Xen", 18, &pvh64, 8);
	phdr(&b, 2)->p_filesz = n;
	assert_int_equal(parse(&b, &img, err), 0);
	assert_true(img.is_linux);
	assert_true(img.has_pvh_entry);
	assert_int_equal(img.pvh_entry, 0x1000850);
	kernel_image_free(&img);

	/* Xen guest OS "linux" also marks Linux; a PVH entry above 4 GiB is ignored. */
	n = put_note(b.p + NOTE_OFF, "Xen", 6, "linux", 6);
	n += put_note(b.p + NOTE_OFF + n, "Xen", 18, &bogus, 8);
	phdr(&b, 2)->p_filesz = n;
	assert_int_equal(parse(&b, &img, err), 0);
	assert_true(img.is_linux);
	assert_false(img.has_pvh_entry);
	kernel_image_free(&img);

	/* p_align 8 (as readelf reads GNU property notes): the descriptor starts 8-aligned after "Xen\0". */
	memset(b.p + NOTE_OFF, 0, 64);
	memcpy(b.p + NOTE_OFF, &(Elf64_Nhdr){ 4, 8, 18 }, sizeof(Elf64_Nhdr));
	memcpy(b.p + NOTE_OFF + 12, "Xen", 4);
	memcpy(b.p + NOTE_OFF + 12 + 8, &pvh64, 8);
	phdr(&b, 2)->p_filesz = 28, phdr(&b, 2)->p_align = 8;
	assert_int_equal(parse(&b, &img, err), 0);
	assert_int_equal(img.pvh_entry, 0x1000850);
	kernel_image_free(&img);
	phdr(&b, 2)->p_align = 4;

	/* Truncated notes are ignored: descriptor cut by the segment end, absurd sizes. */
	n = put_note(b.p + NOTE_OFF, "Xen", 18, &pvh64, 8);
	for (size_t cut = 0; cut < n; cut++) {
		phdr(&b, 2)->p_filesz = cut;
		assert_int_equal(parse(&b, &img, err), 0);
		assert_false(img.has_pvh_entry);
		kernel_image_free(&img);
	}
	phdr(&b, 2)->p_filesz = n;
	memset(b.p + NOTE_OFF, 0xff, 8); /* namesz = descsz = 0xffffffff */
	assert_int_equal(parse(&b, &img, err), 0);
	assert_false(img.has_pvh_entry);
	kernel_image_free(&img);

	/* A note segment outside the file is a malformed ELF. */
	phdr(&b, 2)->p_offset = ELF_LEN - 4;
	expect_fail(&b, -EINVAL, "program header 2: note range past end of file");
}

static void test_elf_header_errors(void **state)
{
	struct buf b;

	for (size_t len = 0; len < sizeof(Elf64_Ehdr); len++) {
		b = make_elf();
		b.len = len;
		expect_fail(&b, -EINVAL, len >= SELFMAG ? "too short" : "not an ELF");
	}
	b = make_elf(), b.p[0] = 'X';
	expect_fail(&b, -EINVAL, "not an ELF file or bzImage");
	b = make_elf(), ehdr(&b)->e_ident[EI_CLASS] = ELFCLASS32;
	expect_fail(&b, -ENOTSUP, "64-bit");
	b = make_elf(), ehdr(&b)->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_fail(&b, -ENOTSUP, "little-endian");
	b = make_elf(), ehdr(&b)->e_machine = EM_386;
	expect_fail(&b, -ENOTSUP, "not x86-64");
	b = make_elf(), ehdr(&b)->e_type = ET_DYN;
	expect_fail(&b, -ENOTSUP, "ET_EXEC");
	b = make_elf(), ehdr(&b)->e_phentsize = 32;
	expect_fail(&b, -EINVAL, "program header size");
	b = make_elf(), ehdr(&b)->e_phnum = 0;
	expect_fail(&b, -EINVAL, "0 program headers");
	b = make_elf(), ehdr(&b)->e_phnum = 0xffff;
	expect_fail(&b, -EINVAL, "65535 program headers");
	b = make_elf(), ehdr(&b)->e_phoff = ELF_LEN - 100;
	expect_fail(&b, -EINVAL, "program header table past end of file");
	b = make_elf(), ehdr(&b)->e_phoff = UINT64_MAX - 8;
	expect_fail(&b, -EINVAL, "program header table past end of file");
}

static void test_elf_segment_errors(void **state)
{
	struct buf b;

	b = make_elf(), phdr(&b, 1)->p_offset = ELF_LEN - 0x80;
	expect_fail(&b, -EINVAL, "ELF program header 1: file range past end of file");
	b = make_elf(), phdr(&b, 1)->p_offset = UINT64_MAX - 0x10; /* offset + filesz overflows */
	expect_fail(&b, -EINVAL, "ELF program header 1: file range past end of file");
	b = make_elf(), phdr(&b, 1)->p_filesz = 0x200;
	expect_fail(&b, -EINVAL, "program header 1: file size larger than memory size");
	b = make_elf(), phdr(&b, 1)->p_paddr = 0x100800; /* inside segment 0's bss */
	expect_fail(&b, -EINVAL, "program header 1: physical range overlaps segment 0");
	b = make_elf(), phdr(&b, 1)->p_paddr = 0xff000, phdr(&b, 1)->p_memsz = 0x2000; /* straddles its start */
	expect_fail(&b, -EINVAL, "overlaps");
	b = make_elf(), phdr(&b, 1)->p_paddr = UINT64_MAX - 0x10;
	expect_fail(&b, -EINVAL, "program header 1: address range wraps around");
	b = make_elf(), phdr(&b, 1)->p_vaddr = UINT64_MAX - 0x10;
	expect_fail(&b, -EINVAL, "wraps around");
	b = make_elf(), phdr(&b, 1)->p_paddr = (64ull << 30) - 0x80;
	expect_fail(&b, -EINVAL, "above 64 GiB");
	b = make_elf(), ehdr(&b)->e_entry = 0x300000;
	expect_fail(&b, -EINVAL, "entry point 0x300000 is outside every loadable segment");
	b = make_elf(), ehdr(&b)->e_entry = 0x200100; /* one past the end */
	expect_fail(&b, -EINVAL, "outside every loadable segment");
	b = make_elf(), phdr(&b, 0)->p_type = PT_NULL, phdr(&b, 1)->p_type = PT_NULL;
	expect_fail(&b, -EINVAL, "no loadable segment");
}

/* Zero-size PT_LOADs are skipped; 16 real ones fit; a 17th is rejected. */
static void test_elf_segment_count(void **state)
{
	struct kernel_image img;
	char err[160];

	for (unsigned int n = 16; n <= 17; n++) {
		struct buf b = make_elf();

		ehdr(&b)->e_phnum = (uint16_t)(n + 3);
		for (unsigned int i = 0; i < n + 3; i++) {
			*phdr(&b, i) = (Elf64_Phdr){ PT_LOAD, PF_R, 0x1000, 0x100000 + i * 0x1000ull,
						     0x100000 + i * 0x1000ull, 0x10, 0x1000, 0x1000 };
		}
		phdr(&b, 2)->p_memsz = 0; /* ignored */
		phdr(&b, 5)->p_memsz = 0;
		phdr(&b, 9)->p_memsz = 0;
		if (n == 17) {
			expect_fail(&b, -EINVAL, "more than 16 loadable segments");
			continue;
		}
		assert_int_equal(parse(&b, &img, err), 0);
		assert_int_equal(img.nr_segments, 16);
		assert_int_equal(img.load_end, 0x100000 + (n + 3) * 0x1000ull);
		kernel_image_free(&img);
		free(b.p);
	}
}

/* xz as the kernel builds it (BCJ x86 + LZMA2, CRC32), followed by the 4-byte size trailer. */
static struct buf xz_buf(const struct buf *in)
{
	struct buf c = compress_xz(in, true);

	append_size(&c, in->len);
	return c;
}

#define BZ_SETUP_SECTS 4
#define BZ_PAYLOAD_OFFSET 0x100

/* A bzImage: boot sector + 4 setup sectors, then the protected-mode part with the payload at 0x100. */
static struct buf make_bzimage(const struct buf *payload, uint8_t setup_sects)
{
	size_t pm = (BZ_SETUP_SECTS + 1) * 512;
	struct buf b = { calloc(1, pm + BZ_PAYLOAD_OFFSET + payload->len), pm + BZ_PAYLOAD_OFFSET + payload->len };
	struct setup_header hdr = { 0 };

	hdr.setup_sects = setup_sects;
	hdr.boot_flag = SETUP_BOOT_FLAG;
	hdr.header = SETUP_HDRS_MAGIC;
	hdr.version = 0x020f;
	hdr.loadflags = LOADED_HIGH;
	hdr.xloadflags = XLF_KERNEL_64;
	hdr.payload_offset = BZ_PAYLOAD_OFFSET;
	hdr.payload_length = (uint32_t)payload->len;
	memcpy(b.p + SETUP_HEADER_OFFSET, &hdr, sizeof(hdr));
	memcpy(b.p + pm + BZ_PAYLOAD_OFFSET, payload->p, payload->len);
	return b;
}

static struct setup_header *bz_hdr(struct buf *b)
{
	return (struct setup_header *)(b->p + SETUP_HEADER_OFFSET);
}

static void test_bzimage(void **state)
{
	struct buf elf = make_elf();
	struct buf payloads[2] = { compress_gzip(&elf), xz_buf(&elf) };
	struct kernel_image img;
	char err[160];

	for (int i = 0; i < 2; i++) {
		for (int sects = 0; sects <= BZ_SETUP_SECTS; sects += BZ_SETUP_SECTS) {
			struct buf b = make_bzimage(&payloads[i], (uint8_t)sects); /* 0 means 4 */

			assert_int_equal(parse(&b, &img, err), 0);
			assert_true(img.from_bzimage);
			assert_true(img.is_linux);
			assert_int_equal(img.hdr.version, 0x020f);
			assert_int_equal(img.hdr.payload_length, payloads[i].len);
			assert_int_equal(img.elf_size, elf.len);
			assert_memory_equal(img.elf, elf.p, elf.len);
			assert_int_equal(img.entry, ENTRY);
			assert_int_equal(img.nr_segments, 2);
			assert_true(img.has_pvh_entry);
			kernel_image_free(&img);
			free(b.p);
		}
	}
	free(payloads[0].p);
	free(payloads[1].p);
	free(elf.p);
}

static void test_bzimage_errors(void **state)
{
	struct buf elf = make_elf(), gz = compress_gzip(&elf), b;
	struct buf bz2 = { (uint8_t *)"BZh91AY&SY\x01\x02\x03\x04", 15 };
	struct buf not_elf = { (uint8_t *)"\x1f\x8b\x08\0\0\0\0\0\0\x03\x03\0\0\0\0\0\0\0\0\0", 20 }; /* gzip of "" */

	b = make_bzimage(&gz, 4), bz_hdr(&b)->payload_offset = 0x100000;
	expect_fail(&b, -EINVAL, "bzImage: payload_offset past end of file");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->payload_length += 1;
	expect_fail(&b, -EINVAL, "payload_length");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->payload_length = 0xffffffff;
	expect_fail(&b, -EINVAL, "payload_length");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->payload_length = 0;
	expect_fail(&b, -EINVAL, "payload_length");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->payload_offset = 0xffffffff;
	expect_fail(&b, -EINVAL, "payload_offset past end of file");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->version = 0x0207;
	expect_fail(&b, -ENOTSUP, "boot protocol 2.07 is too old");
	b = make_bzimage(&gz, 4), bz_hdr(&b)->setup_sects = 255;
	expect_fail(&b, -EINVAL, "setup_sects 255");
	b = make_bzimage(&gz, 4), b.p[(BZ_SETUP_SECTS + 1) * 512 + BZ_PAYLOAD_OFFSET + 20] ^= 0x55;
	expect_fail(&b, -EINVAL, "bzImage: gzip payload is corrupt or truncated");
	b = make_bzimage(&bz2, 4);
	expect_fail(&b, -ENOTSUP, "unsupported compression: bzip2");
	b = make_bzimage(&not_elf, 4);
	expect_fail(&b, -EINVAL, "not an ELF");
	b = make_bzimage(&gz, 4), b.len = 0x210;
	expect_fail(&b, -EINVAL, "too short for the setup header");
	free(gz.p);
	free(elf.p);
}

/* Every truncation and many random byte flips: success or an error, never a crash (run under ASan too). */
static void fuzz_one(const struct buf *orig, uint64_t seed, int iters)
{
	struct buf b = { malloc(orig->len), 0 };
	struct kernel_image img;
	char err[160];

	for (size_t len = 0; len < orig->len; len++) {
		memcpy(b.p, orig->p, len);
		b.len = len;
		if (parse(&b, &img, err) == 0)
			kernel_image_free(&img);
	}
	b.len = orig->len;
	for (int i = 0; i < iters; i++) {
		int flips = 1 + (int)(seed % 3);

		memcpy(b.p, orig->p, b.len);
		for (int f = 0; f < flips; f++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			/* Aim most flips at the headers, where the parser's decisions are. */
			b.p[(seed >> 8) % (seed & 1 ? 0x300 : b.len)] ^= (uint8_t)(1u << (seed >> 4) % 8);
		}
		if (parse(&b, &img, err) == 0) {
			assert_true(img.nr_segments >= 1 && img.nr_segments <= KERNEL_IMAGE_MAX_SEGMENTS);
			assert_true(img.load_start < img.load_end);
			kernel_image_free(&img);
		} else {
			assert_true(err[0] != '\0');
		}
	}
	free(b.p);
}

static void test_fuzz(void **state)
{
	struct buf elf = make_elf(), gz = compress_gzip(&elf), xz = xz_buf(&elf);
	struct buf bz_gz = make_bzimage(&gz, 4), bz_xz = make_bzimage(&xz, 4);

	fuzz_one(&elf, 0x1234567, 20000);
	fuzz_one(&bz_gz, 0x7654321, 3000);
	fuzz_one(&bz_xz, 0xabcdef1, 3000);
	free(bz_gz.p), free(bz_xz.p), free(gz.p), free(xz.p), free(elf.p);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/kiln-test-kimg-XXXXXX";
	struct buf elf = make_elf();
	uint8_t *data;
	size_t len;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, elf.p, elf.len), (ssize_t)elf.len);
	close(fd);
	assert_int_equal(kernel_image_read_file(path, 1 << 20, &data, &len), 0);
	assert_int_equal(len, elf.len);
	assert_memory_equal(data, elf.p, len);
	free(data);
	assert_int_equal(kernel_image_read_file(path, elf.len, &data, &len), 0);
	free(data);
	assert_int_equal(kernel_image_read_file(path, elf.len - 1, &data, &len), -EFBIG);
	assert_null(data);
	unlink(path);
	assert_int_equal(kernel_image_read_file(path, 1 << 20, &data, &len), -ENOENT);
	assert_int_equal(kernel_image_read_file("/tmp", 1 << 20, &data, &len), -EISDIR);
	assert_int_equal(kernel_image_read_file("/dev/null", 1 << 20, &data, &len), -EINVAL);
	free(elf.p);
}

/* The host's distribution kernel, when there is one we can read: a real bzImage end to end. */
static void test_host_vmlinuz(void **state)
{
	struct kernel_image img;
	struct timespec t0, t1;
	glob_t g;
	uint8_t *data;
	size_t len, off;
	char err[160];

	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0) {
		print_message("no /boot/vmlinuz-*: skipped\n");
		skip();
	}
	if (kernel_image_read_file(g.gl_pathv[0], 256u << 20, &data, &len) != 0) {
		print_message("%s unreadable: skipped\n", g.gl_pathv[0]);
		globfree(&g);
		skip();
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kernel_image_parse(data, len, &img, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	off = (img.hdr.setup_sects + 1u) * 512 + img.hdr.payload_offset;
	print_message("%s: protocol %x, %s payload %u bytes -> %zu bytes in %.0f ms, entry 0x%llx, pvh 0x%x\n",
		      g.gl_pathv[0], img.hdr.version, payload_format_name(payload_detect(data + off, 16)),
		      img.hdr.payload_length, img.elf_size,
		      (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		      (unsigned long long)img.entry, img.pvh_entry);
	assert_true(img.from_bzimage);
	assert_true(img.is_linux);
	assert_int_equal(img.entry, 0x1000000);
	assert_true(img.load_start >= 0x1000000);
	kernel_image_free(&img);
	free(data);
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elf_valid),
		cmocka_unit_test(test_elf_entry_translation),
		cmocka_unit_test(test_elf_notes),
		cmocka_unit_test(test_elf_header_errors),
		cmocka_unit_test(test_elf_segment_errors),
		cmocka_unit_test(test_elf_segment_count),
		cmocka_unit_test(test_bzimage),
		cmocka_unit_test(test_bzimage_errors),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_host_vmlinuz),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
