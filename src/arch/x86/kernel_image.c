// SPDX-License-Identifier: MIT
/*
 * Kernel image parsing: ELF64 x86-64 executables (vmlinux, test guests) and bzImages (Linux boot
 * protocol >= 2.08, whose payload_offset/payload_length locate the compressed vmlinux).
 *
 * The file is untrusted. Every offset and size is checked against the file before use, with
 * overflow-safe arithmetic, and every header is copied out with memcpy (the file may put them at
 * unaligned offsets).
 *
 * is_linux rule: a bzImage, or an ELF with a note named "Linux" (init/version.c and
 * include/linux/elfnote.h put build-salt/version notes in every vmlinux), or a Xen
 * XEN_ELFNOTE_GUEST_OS note whose text is "linux" (arch/x86/xen/xen-head.S). A real Debian 6.1
 * vmlinux carries both; a test guest carries neither.
 */
#include "arch/x86/kernel_image.h"
#include "lib/log.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/payload.h"
#include "lib/safe_path.h"

/* Linux's vmlinux has 5 program headers; anything near this bound is not a kernel. */
#define KERNEL_IMAGE_MAX_PHDRS 64
/* Highest guest physical address a segment may reach (exclusive). */
#define KERNEL_IMAGE_MAX_PADDR (64ull << 30)
/* Boot protocol 2.08 added payload_offset/payload_length. */
#define BZIMAGE_MIN_VERSION 0x0208
/* Xen public/elfnote.h */
#define XEN_ELFNOTE_GUEST_OS 6
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* True when [off, off + size) lies inside a buffer of `len` bytes. */
static bool range_ok(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static bool name_is(const uint8_t *name, uint32_t namesz, const char *want)
{
	size_t n = strlen(want);

	/* The name's size includes its NUL; tolerate a missing one. */
	return (namesz == n + 1 && name[n] == '\0' && memcmp(name, want, n) == 0) ||
	       (namesz == n && memcmp(name, want, n) == 0);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * Walk one PT_NOTE segment's notes (ELF gABI "Note Section"): name and descriptor are padded to the
 * segment's alignment (4, or 8 as readelf allows). A note that does not fit ends the walk: notes are
 * advisory, so a malformed one is ignored rather than failing the whole image.
 */
static void scan_notes(const uint8_t *p, uint64_t size, uint64_t p_align, struct kernel_image *img)
{
	uint64_t align = p_align == 8 ? 8 : 4;
	uint64_t pos = 0;

	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name_off, desc_off, next;
		const uint8_t *name, *desc;

		memcpy(&nh, p + pos, sizeof(nh));
		name_off = pos + sizeof(nh);
		/* pos <= size (a buffer length) and padded 32-bit sizes: no 64-bit overflow. */
		desc_off = name_off + align_up(nh.n_namesz, align);
		next = desc_off + align_up(nh.n_descsz, align);
		if (desc_off > size || nh.n_descsz > size - desc_off)
			return;
		name = p + name_off;
		desc = p + desc_off;
		if (name_is(name, nh.n_namesz, "Xen")) {
			if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && (nh.n_descsz == 4 || nh.n_descsz == 8)) {
				uint64_t entry = 0;

				memcpy(&entry, desc, nh.n_descsz);
				/* The PVH entry is a 32-bit physical address; a wider value is bogus. */
				if (entry <= UINT32_MAX) {
					img->has_pvh_entry = true;
					img->pvh_entry = (uint32_t)entry;
				}
			} else if (nh.n_type == XEN_ELFNOTE_GUEST_OS && nh.n_descsz >= 5 &&
				   memcmp(desc, "linux", 5) == 0) {
				img->is_linux = true;
			}
		} else if (name_is(name, nh.n_namesz, "Linux")) {
			img->is_linux = true;
		}
		if (next <= pos || next > size)
			return;
		pos = next;
	}
}

static int check_ehdr(const Elf64_Ehdr *eh, size_t len, char *err, size_t err_size)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
		errmsg_set(err, err_size, "not an ELF file or bzImage");
		return -EINVAL;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64) {
		errmsg_set(err, err_size, "ELF: only 64-bit ELF is supported (class %u)", eh->e_ident[EI_CLASS]);
		return -ENOTSUP;
	}
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB) {
		errmsg_set(err, err_size, "ELF: only little-endian ELF is supported");
		return -ENOTSUP;
	}
	if (eh->e_ident[EI_VERSION] != EV_CURRENT) {
		errmsg_set(err, err_size, "ELF: bad ELF version %u", eh->e_ident[EI_VERSION]);
		return -EINVAL;
	}
	if (eh->e_machine != EM_X86_64) {
		errmsg_set(err, err_size, "ELF: machine %u is not x86-64", eh->e_machine);
		return -ENOTSUP;
	}
	if (eh->e_type != ET_EXEC) {
		errmsg_set(err, err_size, "ELF: type %u is not an executable (ET_EXEC)", eh->e_type);
		return -ENOTSUP;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr)) {
		errmsg_set(err, err_size, "ELF: program header size %u, expected %zu", eh->e_phentsize,
			sizeof(Elf64_Phdr));
		return -EINVAL;
	}
	if (eh->e_phnum == 0 || eh->e_phnum > KERNEL_IMAGE_MAX_PHDRS) {
		errmsg_set(err, err_size, "ELF: %u program headers (1 to %d allowed)", eh->e_phnum,
			KERNEL_IMAGE_MAX_PHDRS);
		return -EINVAL;
	}
	if (!range_ok(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), len)) {
		errmsg_set(err, err_size, "ELF: program header table past end of file (truncated)");
		return -EINVAL;
	}
	return 0;
}

/* Validate one PT_LOAD and add it to img->segments (vaddr kept aside for the entry translation). */
static int add_load(const Elf64_Phdr *ph, unsigned int idx, size_t len, struct kernel_image *img,
		    uint64_t *vaddrs, char *err, size_t err_size)
{
	if (ph->p_filesz > ph->p_memsz) {
		errmsg_set(err, err_size, "ELF program header %u: file size larger than memory size", idx);
		return -EINVAL;
	}
	if (!range_ok(ph->p_offset, ph->p_filesz, len)) {
		errmsg_set(err, err_size,
			   "ELF program header %u: file range past end of file (bytes 0x%llx-0x%llx of %zu: truncated)", idx, (unsigned long long)ph->p_offset,
			   (unsigned long long)(ph->p_offset + ph->p_filesz), len);
		return -EINVAL;
	}
	if (ph->p_paddr + ph->p_memsz < ph->p_paddr || ph->p_vaddr + ph->p_memsz < ph->p_vaddr) {
		errmsg_set(err, err_size, "ELF program header %u: address range wraps around", idx);
		return -EINVAL;
	}
	if (ph->p_paddr + ph->p_memsz > KERNEL_IMAGE_MAX_PADDR) {
		errmsg_set(err, err_size, "ELF program header %u: physical range ends above %llu GiB", idx,
			KERNEL_IMAGE_MAX_PADDR >> 30);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < img->nr_segments; i++) {
		const struct kernel_segment *s = &img->segments[i];

		if (ph->p_paddr < s->paddr + s->memsz && s->paddr < ph->p_paddr + ph->p_memsz) {
			errmsg_set(err, err_size, "ELF program header %u: physical range overlaps segment %u", idx, i);
			return -EINVAL;
		}
	}
	if (img->nr_segments == KERNEL_IMAGE_MAX_SEGMENTS) {
		errmsg_set(err, err_size, "ELF: more than %d loadable segments", KERNEL_IMAGE_MAX_SEGMENTS);
		return -EINVAL;
	}
	vaddrs[img->nr_segments] = ph->p_vaddr;
	img->segments[img->nr_segments++] = (struct kernel_segment){
		.paddr = ph->p_paddr,
		.filesz = ph->p_filesz,
		.memsz = ph->p_memsz,
		.offset = ph->p_offset,
	};
	return 0;
}

/*
 * e_entry is a virtual address (ELF gABI): translate it through the PT_LOAD whose virtual range holds
 * it. Linux's vmlinux is the exception: its linker script sets ENTRY(phys_startup_64), a physical
 * address, while its segments are linked at 0xffffffff81000000; so failing a virtual match, an entry
 * inside a segment's physical range is taken as already physical.
 */
static int translate_entry(uint64_t e_entry, struct kernel_image *img, const uint64_t *vaddrs, char *err,
			   size_t err_size)
{
	for (unsigned int i = 0; i < img->nr_segments; i++) {
		if (e_entry >= vaddrs[i] && e_entry - vaddrs[i] < img->segments[i].memsz) {
			img->entry = e_entry - vaddrs[i] + img->segments[i].paddr;
			return 0;
		}
	}
	for (unsigned int i = 0; i < img->nr_segments; i++) {
		if (e_entry >= img->segments[i].paddr && e_entry - img->segments[i].paddr < img->segments[i].memsz) {
			img->entry = e_entry;
			return 0;
		}
	}
	errmsg_set(err, err_size, "ELF: entry point 0x%llx is outside every loadable segment",
		(unsigned long long)e_entry);
	return -EINVAL;
}

/* Parse img->elf (already owned by img). */
static int parse_elf(struct kernel_image *img, char *err, size_t err_size)
{
	const uint8_t *data = img->elf;
	size_t len = img->elf_size;
	uint64_t vaddrs[KERNEL_IMAGE_MAX_SEGMENTS];
	Elf64_Ehdr eh;
	int ret;

	if (len < sizeof(eh)) {
		errmsg_set(err, err_size, "%s", len >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0 ?
			"ELF: file too short for the ELF header (truncated)" : "not an ELF file or bzImage");
		return -EINVAL;
	}
	memcpy(&eh, data, sizeof(eh));
	ret = check_ehdr(&eh, len, err, err_size);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, data + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && ph.p_memsz > 0) {
			ret = add_load(&ph, i, len, img, vaddrs, err, err_size);
			if (ret)
				return ret;
		} else if (ph.p_type == PT_NOTE) {
			if (!range_ok(ph.p_offset, ph.p_filesz, len)) {
				errmsg_set(err, err_size, "ELF program header %u: note range past end of file", i);
				return -EINVAL;
			}
			scan_notes(data + ph.p_offset, ph.p_filesz, ph.p_align, img);
		}
	}
	if (img->nr_segments == 0) {
		errmsg_set(err, err_size, "ELF: no loadable segment");
		return -EINVAL;
	}
	img->load_start = UINT64_MAX;
	img->load_end = 0;
	for (unsigned int i = 0; i < img->nr_segments; i++) {
		const struct kernel_segment *s = &img->segments[i];

		if (s->paddr < img->load_start)
			img->load_start = s->paddr;
		if (s->paddr + s->memsz > img->load_end)
			img->load_end = s->paddr + s->memsz;
	}
	return translate_entry(eh.e_entry, img, vaddrs, err, err_size);
}

static bool is_bzimage(const uint8_t *data, size_t len)
{
	uint32_t magic;
	uint16_t flag;

	if (len < 0x206 || memcmp(data, ELFMAG, SELFMAG) == 0)
		return false;
	memcpy(&flag, data + 0x1fe, sizeof(flag));
	memcpy(&magic, data + 0x202, sizeof(magic));
	return flag == SETUP_BOOT_FLAG && magic == SETUP_HDRS_MAGIC;
}

/* Linux boot protocol 2.08+ (Documentation/arch/x86/boot.rst): locate and decompress the payload. */
static int parse_bzimage(const uint8_t *data, size_t len, struct kernel_image *img, char *err, size_t err_size)
{
	struct setup_header *hdr = &img->hdr;
	enum payload_format fmt;
	uint64_t pm_start, payload;
	int ret;

	if (len < SETUP_HEADER_OFFSET + sizeof(*hdr)) {
		errmsg_set(err, err_size, "bzImage: file too short for the setup header (truncated)");
		return -EINVAL;
	}
	memcpy(hdr, data + SETUP_HEADER_OFFSET, sizeof(*hdr));
	img->from_bzimage = true;
	img->is_linux = true;
	if (hdr->version < BZIMAGE_MIN_VERSION) {
		errmsg_set(err, err_size, "bzImage: boot protocol %u.%02u is too old (2.08 or later needed)",
			hdr->version >> 8, hdr->version & 0xff);
		return -ENOTSUP;
	}
	/* setup_sects == 0 means 4 (boot.rst "setup_sects"); the boot sector itself comes first. */
	pm_start = ((uint64_t)(hdr->setup_sects ? hdr->setup_sects : 4) + 1) * 512;
	if (pm_start >= len) {
		errmsg_set(err, err_size, "bzImage: setup_sects %u: setup code past end of file (truncated)",
			   hdr->setup_sects);
		return -EINVAL;
	}
	payload = pm_start + hdr->payload_offset;
	if (payload >= len) {
		errmsg_set(err, err_size, "bzImage: payload_offset past end of file (truncated)");
		return -EINVAL;
	}
	if (hdr->payload_length == 0 || hdr->payload_length > len - payload) {
		errmsg_set(err, err_size, "bzImage: payload_length %u past end of file (truncated)",
			   hdr->payload_length);
		return -EINVAL;
	}
	fmt = payload_detect(data + payload, hdr->payload_length);
	ret = payload_decompress(data + payload, hdr->payload_length, KERNEL_IMAGE_MAX_SIZE, &img->elf,
				 &img->elf_size);
	switch (ret) {
	case 0:
		return 0;
	case -ENOTSUP:
		errmsg_set(err, err_size, "unsupported compression: %s", payload_format_name(fmt));
		return ret;
	case -E2BIG:
		errmsg_set(err, err_size, "bzImage: %s payload decompresses to more than %llu MiB",
			payload_format_name(fmt), KERNEL_IMAGE_MAX_SIZE >> 20);
		return -EINVAL;
	case -ENOMEM:
		errmsg_set(err, err_size, "bzImage: out of memory decompressing the %s payload", payload_format_name(fmt));
		return ret;
	default:
		errmsg_set(err, err_size, "bzImage: %s payload is corrupt or truncated", payload_format_name(fmt));
		return -EINVAL;
	}
}

int kernel_image_parse(const uint8_t *data, size_t len, struct kernel_image *img, char *err, size_t err_size)
{
	int ret;

	memset(img, 0, sizeof(*img));
	errmsg_set(err, err_size, "%s", "");
	if (!data) {
		errmsg_set(err, err_size, "no kernel image data");
		return -EINVAL;
	}
	if (is_bzimage(data, len)) {
		ret = parse_bzimage(data, len, img, err, err_size);
	} else {
		/* Own a copy, so img->elf outlives the caller's buffer either way. */
		img->elf = malloc(len ? len : 1);
		if (!img->elf) {
			errmsg_set(err, err_size, "out of memory copying the kernel image");
			return -ENOMEM;
		}
		memcpy(img->elf, data, len);
		img->elf_size = len;
		ret = 0;
	}
	if (!ret)
		ret = parse_elf(img, err, err_size);
	if (ret)
		kernel_image_free(img);
	return ret;
}

int kernel_image_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t size, done = 0;
	int fd, ret;

	*data = NULL;
	*len = 0;
	fd = safe_open("image", path, O_RDONLY, SAFE_REG | SAFE_DIR | SAFE_FOLLOW, NULL, NULL, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max_len) {
		ret = -EFBIG;
		goto out;
	}
	size = (size_t)st.st_size;
	buf = malloc(size ? size : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break; /* the file shrank under us: take what is there */
		done += (size_t)n;
	}
	*data = buf;
	*len = done;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

void kernel_image_free(struct kernel_image *img)
{
	if (!img)
		return;
	free(img->elf);
	memset(img, 0, sizeof(*img));
}
