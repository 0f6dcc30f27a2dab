// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for what a restore reads from disk: the snapshot state file (src/vmm/snapshot_file.c:
 * container, sections, checksums), the VM config in its CONF section (vm_snapshot_open), and every
 * section's decoder: vCPU, irqchip, PIT, kvmclock (src/arch/x86/kvm_state.c), the PVM trap, the legacy
 * devices, the PCI bus and functions, MSI-X, the virtio transport and devices, DISK and MEMO
 * (src/vmm/snapshot.c, snapshot_mem.c). A state file is the user's, but it may be corrupt, truncated,
 * or written by someone else: nothing in it may crash kiln.
 *
 * Input: byte 0 chooses the mode (% 4):
 *   0  the rest is a state file, as it is;
 *   1  the same, with its checksums made right first (header, section header and payload, whole
 *      file, where the layout lets the harness find them), so mutations reach what lies behind them;
 *   2  one section payload for one decoder: byte 1 picks the decoder (% the table below), byte 2 is
 *      the section version, the rest the payload;
 *   3  a memory file (snap_mem_open): byte 1 bit 0 verify the full checksum, bit 1 record one, bit 2
 *      leave the file as an interrupted snapshot leaves it (only "<path>.tmp.<pid>", for the roll
 *      forward); byte 2 the number of damages, each then 5 bytes: a le32 offset into the file (past
 *      its end extends it) and a byte to xor there; the rest is guest RAM (1 to 16 pages), written
 *      with its trailer and checksums by snap_mem_finish, as a snapshot does.
 * For a state file that opens, every section a restore looks up is decoded as restore would, the
 * CONF section parsed (as vm_snapshot_open does, also run on the same bytes as a file), each drive's
 * DISK record fetched (vm_snapshot_disk), and snap_reader_check_all_used called.
 *
 * Invariants (abort on violation): a reader error is one of the documented codes with a message; the
 * file and in-memory readers agree; an undamaged memory file opens, a damaged one opens or is refused
 * with a message, never read past; a decoder error is -EINVAL or -ENOTSUP with a message; a payload
 * that decodes is re-encoded to exactly the same bytes (the encodings are canonical: nothing a
 * decoder accepts is dropped or changed on the next snapshot); section lookups return what the
 * header promised (8-byte aligned, version >= 1).
 *
 * Seeds (KILN_FUZZ_SEEDS): a state file with one section of every kind, written by snap_writer from
 * states kiln's own encoders produce, and one payload per decoder.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include <dirent.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zlib.h>

#include "arch/x86/kvm_state.h"
#include "arch/x86/pvm.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/serial.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "fuzz_common.h"
#include "lib/log.h"
#include "vmm/config.h"
#include "vmm/snapshot.h"
#include "vmm/snapshot_file.h"
#include "vmm/snapshot_mem.h"

/* Section ids snapshot.c keeps to itself (docs/snapshot-format.md "Sections"). */
#define ID_PVM SNAP_FOURCC('P', 'V', 'M', ' ')
#define ID_ACPI SNAP_FOURCC('A', 'C', 'P', 'I')
#define ID_PCI SNAP_FOURCC('P', 'C', 'I', ' ')
#define ID_PCIF SNAP_FOURCC('P', 'C', 'I', 'F')
#define ID_MSIX SNAP_FOURCC('M', 'S', 'I', 'X')
#define ID_VIRT SNAP_FOURCC('V', 'I', 'R', 'T')
#define ID_VRNG SNAP_FOURCC('V', 'R', 'N', 'G')
#define ID_VBLK SNAP_FOURCC('V', 'B', 'L', 'K')
#define ID_VNET SNAP_FOURCC('V', 'N', 'E', 'T')
#define CONF_VERSION 1

#define ENC_MAX (128u << 10) /* bytes: more than any section's payload */
#define MAX_INSTANCE 40      /* instances tried per id: vCPUs up to 32, PCI slots up to 31 */
#define ERR_SIZE 512

/* A section's state: its codec table (lib/codec.h), which decodes, encodes and gives the version. */
struct codec {
	const char *name;
	uint32_t id;
	const struct codec_table *table;
};

static const struct codec codecs[] = {
	{ "VCPU", SNAP_ID_VCPU, &x86_vcpu_state_codec },
	{ "IRQC", SNAP_ID_IRQC, &x86_irqchip_state_codec },
	{ "PIT", SNAP_ID_PIT, &x86_pit_state_codec },
	{ "CLCK", SNAP_ID_CLCK, &x86_clock_state_codec },
	{ "PVM", ID_PVM, &pvm_vcpu_state_codec },
	{ "UART", SNAP_ID_UART, &serial_state_codec },
	{ "RTC", SNAP_ID_RTC, &rtc_state_codec },
	{ "I8042", SNAP_ID_I8042, &i8042_state_codec },
	{ "ACPI", ID_ACPI, &acpi_pm_state_codec },
	{ "PCI", ID_PCI, &pci_bus_state_codec },
	{ "PCIF", ID_PCIF, &pci_function_state_codec },
	{ "MSIX", ID_MSIX, &msix_state_codec },
	{ "VIRT", ID_VIRT, &virtio_pci_state_codec },
	{ "VRNG", ID_VRNG, &virtio_rng_state_codec },
	{ "VBLK", ID_VBLK, &virtio_blk_state_codec },
	{ "VNET", ID_VNET, &virtio_net_state_codec },
	{ "DISK", SNAP_ID_DISK, &snap_disk_codec },
	{ "MEMO", SNAP_ID_MEMO, &snap_memo_codec },
};

#define NR_CODECS (sizeof(codecs) / sizeof(codecs[0]))

/* Scratch space, allocated once: the states are large (a vCPU's is ~60 KiB). */
struct fuzz_state {
	void *st;
	void *st2;
	uint8_t *enc;
	uint8_t *enc2;
	uint8_t *file; /* mode 1: the input with its checksums fixed */
	int memfd;     /* the same bytes as a file, for snap_reader_open and vm_snapshot_open */
	char path[64];
	char dir[64];  /* a private directory for memory files (mode 3) */
	char mem_path[128];
};

static struct fuzz_state *fuzz;

static void write_seeds(const char *dir);

/* Empty the memory file directory (mode 3); with `rmdir_too`, remove it. */
static void clean_dir(bool rmdir_too)
{
	DIR *d = opendir(fuzz->dir);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	if (rmdir_too)
		rmdir(fuzz->dir);
}

static void remove_dir(void)
{
	clean_dir(true);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t max = 0;

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	for (size_t i = 0; i < NR_CODECS; i++)
		max = codecs[i].table->size > max ? codecs[i].table->size : max;
	fuzz = calloc(1, sizeof(*fuzz));
	CHECK(fuzz);
	fuzz->st = malloc(max);
	fuzz->st2 = malloc(max);
	fuzz->enc = malloc(ENC_MAX);
	fuzz->enc2 = malloc(ENC_MAX);
	fuzz->file = malloc(SNAP_STATE_MAX_SIZE);
	fuzz->memfd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
	CHECK(fuzz->st && fuzz->st2 && fuzz->enc && fuzz->enc2 && fuzz->file && fuzz->memfd >= 0);
	snprintf(fuzz->path, sizeof(fuzz->path), "/proc/self/fd/%d", fuzz->memfd);
	snprintf(fuzz->dir, sizeof(fuzz->dir), "%s/kiln-fuzz-snap-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	CHECK(mkdtemp(fuzz->dir));
	snprintf(fuzz->mem_path, sizeof(fuzz->mem_path), "%s/vm.mem", fuzz->dir);
	atexit(remove_dir);
	if (fuzz_seed_dir())
		write_seeds(fuzz_seed_dir());
	return 0;
}

/* A message was written: non-empty and terminated. */
static void check_msg(const char *err)
{
	CHECK(memchr(err, '\0', ERR_SIZE) && err[0]);
}

/* Decode one payload with `c`; when it decodes, its encoding must be the payload itself. */
static void decode_one(const struct codec *c, const void *data, size_t len, uint32_t version)
{
	struct fuzz_state *f = fuzz;
	char err[ERR_SIZE] = "";
	struct snap_enc e;
	int ret;

	ret = codec_decode(c->table, f->st, data, len, version, err, sizeof(err));
	if (ret) {
		CHECK_MSG(ret == -EINVAL || ret == -ENOTSUP, "%s: %d", c->name, ret);
		check_msg(err);
		return;
	}
	snap_enc_init(&e, f->enc, ENC_MAX);
	if (codec_encode(c->table, f->st, &e))
		e.overflow = true;
	CHECK(snap_enc_ok(&e));
	if (e.len != len || (len && memcmp(f->enc, data, len))) {
		size_t i = 0;

		while (i < len && i < e.len && f->enc[i] == ((const uint8_t *)data)[i])
			i++;
		CHECK_MSG(false, "%s version %u: %zu bytes decode, but encode back to %zu bytes (first difference at "
			  "byte %zu)", c->name, version, len, e.len, i);
	}
}

/* Mode 1: make the checksums right, following the layout as the reader will (docs/snapshot-format.md). */
static void fix_checksums(uint8_t *b, size_t size)
{
	static const uint8_t trailer_magic[8] = { 'K', 'I', 'L', 'N', 'E', 'N', 'D', 0 };
	size_t body_end = size, off = SNAP_HEADER_SIZE;
	uint32_t count, v;
	uint64_t len;

	if (size < SNAP_HEADER_SIZE)
		return;
	if (size >= SNAP_HEADER_SIZE + SNAP_TRAILER_SIZE && !memcmp(b + size - SNAP_TRAILER_SIZE, trailer_magic, 8))
		body_end = size - SNAP_TRAILER_SIZE;
	memcpy(&count, b + 72, 4);
	count = le32toh(count);
	for (uint32_t i = 0; i < count && body_end - off >= SNAP_SECTION_HEADER_SIZE; i++) {
		uint8_t *sh = b + off;
		size_t pad;

		memcpy(&len, sh + 16, 8);
		len = le64toh(len);
		pad = (size_t)((8 - (len & 7)) & 7);
		if (len > body_end - off - SNAP_SECTION_HEADER_SIZE ||
		    len + pad > body_end - off - SNAP_SECTION_HEADER_SIZE)
			break;
		memset(sh + SNAP_SECTION_HEADER_SIZE + len, 0, pad);
		v = htole32((uint32_t)crc32(0, sh + SNAP_SECTION_HEADER_SIZE, (uInt)len));
		memcpy(sh + 24, &v, 4);
		v = htole32((uint32_t)crc32(0, sh, SNAP_SECTION_HEADER_SIZE - 4));
		memcpy(sh + 28, &v, 4);
		off += SNAP_SECTION_HEADER_SIZE + (size_t)len + pad;
	}
	v = htole32((uint32_t)crc32(0, b, SNAP_HEADER_SIZE - 4));
	memcpy(b + 76, &v, 4);
	if (body_end != size) {
		uint64_t total = htole64(size);

		memcpy(b + body_end + 8, &total, 8);
		v = htole32((uint32_t)crc32(0, b, (uInt)body_end));
		memcpy(b + body_end + 16, &v, 4);
	}
}

/* Everything a restore looks up in an open state file. */
static void walk_sections(struct snap_reader *r)
{
	struct snap_header_info hdr;
	struct vm_config cfg;
	char err[ERR_SIZE] = "";
	const void *p;
	uint32_t version;
	size_t len;
	int ret;

	snap_reader_header(r, &hdr);
	CHECK(hdr.format_major == SNAP_FORMAT_MAJOR && !(hdr.flags & SNAP_FLAGS_REQUIRED_MASK));
	CHECK(hdr.kiln_version[32] == '\0');
	for (size_t i = 0; i < NR_CODECS; i++) {
		const struct codec *c = &codecs[i];
		unsigned int n = snap_count_sections(r, c->id), found = 0;

		for (uint32_t inst = 0; inst < MAX_INSTANCE; inst++) {
			p = snap_find_section(r, c->id, inst, &version, &len);
			if (!p)
				continue;
			found++;
			CHECK(version >= 1 && ((uintptr_t)p & 7) == 0);
			decode_one(c, p, len, version);
			/* What restore calls: a version above this kiln's is refused by name. */
			p = snap_get_section(r, c->id, inst, c->table->version, &version, &len, err, sizeof(err));
			if (!p)
				check_msg(err);
		}
		CHECK(found <= n);
	}
	p = snap_find_section(r, SNAP_ID_CONF, 0, &version, &len);
	vm_config_init(&cfg);
	if (p && version == CONF_VERSION && vm_config_parse_json(&cfg, p, len, err, sizeof(err)) == 0 &&
	    vm_config_check_machine(&cfg, err, sizeof(err)) == 0) {
		for (unsigned int i = 0; i < cfg.nr_drives; i++) {
			struct snap_disk *d = fuzz->st2;

			ret = vm_snapshot_disk(r, &cfg, cfg.drives[i].drive_id, d, err, sizeof(err));
			if (ret)
				check_msg(err);
			else
				CHECK(memchr(d->path, '\0', sizeof(d->path)));
		}
	}
	vm_config_free(&cfg);
	ret = snap_reader_check_all_used(r, err, sizeof(err));
	CHECK(ret == 0 || ret == -EINVAL);
	if (ret)
		check_msg(err);
}

/* The same bytes through the file reader and vm_snapshot_open: the same verdict as from memory. */
static void open_as_file(const uint8_t *b, size_t size, int mem_ret)
{
	struct fuzz_state *f = fuzz;
	struct snap_reader *r = NULL;
	struct vm_config cfg;
	char err[ERR_SIZE] = "";
	int ret;

	CHECK(ftruncate(f->memfd, 0) == 0);
	CHECK(pwrite(f->memfd, b, size, 0) == (ssize_t)size);
	ret = snap_reader_open(f->path, &r, err, sizeof(err));
	CHECK_MSG(ret == mem_ret, "the file reader says %d, the memory reader %d", ret, mem_ret);
	snap_reader_close(r);

	vm_config_init(&cfg);
	ret = vm_snapshot_open(f->path, &r, &cfg, err, sizeof(err));
	if (ret) {
		CHECK(!r);
		CHECK(ret == -EINVAL || ret == -EBADMSG || ret == -ENOTSUP || ret == -EFBIG || ret == -ENOMEM);
		check_msg(err);
	} else {
		CHECK(r && !mem_ret);
		CHECK(vm_config_check_machine(&cfg, err, sizeof(err)) == 0);
		snap_reader_close(r);
	}
	vm_config_free(&cfg);
}

static void fuzz_file(const uint8_t *b, size_t size)
{
	struct snap_reader *r = NULL;
	char err[ERR_SIZE] = "";
	int ret = snap_reader_open_mem(b, size, "fuzz.snap", &r, err, sizeof(err));

	if (ret) {
		CHECK_MSG(ret == -EINVAL || ret == -EBADMSG || ret == -ENOTSUP || ret == -EFBIG, "reader: %d", ret);
		CHECK(!r);
		check_msg(err);
	} else {
		CHECK(r);
		walk_sections(r);
		snap_reader_close(r);
	}
	open_as_file(b, size, ret);
}

/* Mode 3: a memory file as a snapshot writes it, then damaged as the input says, then opened. */
static void fuzz_mem_file(const uint8_t *data, size_t size)
{
	static const uint8_t id[SNAP_ID_SIZE] = { 0x6b, 0x69, 0x6c, 0x6e };
	struct fuzz_state *f = fuzz;
	struct snap_memo m = { .nr_regions = 1 };
	char tmp[256], err[ERR_SIZE] = "";
	size_t off = 3, pages, damages;
	const char *target;
	int fd, ret;

	if (size < 3)
		return;
	damages = data[2];
	if (size - off < damages * 5)
		damages = (size - off) / 5;
	off += damages * 5;
	pages = (size - off) / SNAP_MEM_PAGE_SIZE;
	pages = pages < 1 ? 1 : pages > 16 ? 16 : pages;
	m.mem_size = m.data_size = pages * SNAP_MEM_PAGE_SIZE;
	m.regions[0].size = m.data_size;

	clean_dir(false);
	fd = snap_mem_create(f->mem_path, tmp, sizeof(tmp));
	CHECK(fd >= 0);
	memset(f->enc, 0, m.data_size);
	memcpy(f->enc, data + off, size - off < m.data_size ? size - off : m.data_size);
	CHECK(pwrite(fd, f->enc, m.data_size, 0) == (ssize_t)m.data_size);
	CHECK(snap_mem_finish(fd, &m, id, data[1] & 2, NULL) == 0);
	if (!(data[1] & 4))
		CHECK(snap_mem_commit(tmp, f->mem_path) == 0);
	target = data[1] & 4 ? tmp : f->mem_path;
	for (size_t i = 0; i < damages; i++) {
		const uint8_t *dmg = data + 3 + 5 * i;
		uint32_t at = (uint32_t)(dmg[0] | dmg[1] << 8 | dmg[2] << 16 | (uint32_t)dmg[3] << 24);
		uint8_t b = 0;

		at %= (uint32_t)(m.data_size + SNAP_MEM_TRAILER_SIZE + 64);
		if (pread(fd, &b, 1, at) < 0)
			b = 0;
		b ^= dmg[4];
		CHECK(pwrite(fd, &b, 1, at) == 1);
	}
	close(fd);

	ret = snap_mem_open(f->mem_path, &m, id, data[1] & 1, err, sizeof(err));
	if (ret >= 0) {
		struct stat st;

		CHECK(fstat(ret, &st) == 0 && (uint64_t)st.st_size == m.data_size + SNAP_MEM_TRAILER_SIZE);
		close(ret);
	} else {
		CHECK_MSG(damages, "an undamaged memory file (%s) was refused: %s", target, err);
		CHECK(ret == -EINVAL || ret == -EBADMSG || ret == -ENOENT);
		check_msg(err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_file(data + 1, size - 1);
		break;
	case 1:
		if (size - 1 > SNAP_STATE_MAX_SIZE)
			return 0;
		memcpy(fuzz->file, data + 1, size - 1);
		fix_checksums(fuzz->file, size - 1);
		fuzz_file(fuzz->file, size - 1);
		break;
	case 2:
		if (size < 3)
			return 0;
		decode_one(&codecs[data[1] % NR_CODECS], data + 3, size - 3, data[2]);
		break;
	default:
		fuzz_mem_file(data, size);
		break;
	}
	return 0;
}

/* ---- seeds ---- */

/* A plausible state for codec `i` in `st` (zeroed): what kiln writes for a small VM. */
static void seed_state(size_t i, void *st)
{
	const struct codec *c = &codecs[i];

	switch (c->id) {
	case SNAP_ID_VCPU: {
		struct x86_vcpu_state *v = st;

		v->xsave_size = 4096;
		v->regs.rip = 0x100000;
		v->regs.rflags = 2;
		v->sregs.cr0 = 0x80050033;
		v->sregs.efer = 0xd01;
		v->sregs.cs = (struct kvm_segment){ .limit = 0xffffffff, .selector = 0x10, .type = 11, .present = 1,
						    .s = 1, .l = 1, .g = 1 };
		v->nr_msrs = 2;
		v->msrs[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 12345 };
		v->msrs[1] = (struct kvm_msr_entry){ .index = 0xc0000082, .data = 0xffffffff81000000ull };
		v->nr_cpuid = 1;
		v->cpuid[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd, .ebx = 0x756e6547 };
		v->tsc_khz = 2000000;
		break;
	}
	case ID_PCI:
		((struct pci_bus_state *)st)->slots = 1u | 1u << 3; /* the host bridge, one device */
		break;
	case ID_MSIX: {
		struct msix_state *m = st;

		m->nr = 2;
		m->table[0] = (struct msix_state_entry){ .addr_lo = 0xfee00000, .data = 0x4021 };
		m->table[1].ctrl = MSIX_ENTRY_CTRL_MASKED;
		break;
	}
	case ID_VIRT: {
		struct virtio_pci_state *v = st;

		v->device_id = 2;
		v->nr_queues = 1;
		v->device_features = v->driver_features = 1ull << 32 | 1ull << 29 | 1ull << 28;
		v->status = 15;
		v->config_msix_vector = 0;
		v->live = true;
		v->queues[0] = (struct virtio_pci_queue_state){
			.size = 256, .msix_vector = 1, .enabled = true, .desc = 0x10000, .driver = 0x11000,
			.device = 0x12000, .ready = true, .vq = { .last_avail_idx = 7, .used_idx = 7 },
		};
		break;
	}
	case SNAP_ID_CLCK:
		*(uint64_t *)st = 123456789;
		break;
	case SNAP_ID_DISK: {
		struct snap_disk *d = st;

		d->path_len = (uint32_t)snprintf(d->path, sizeof(d->path), "/var/lib/kiln/rootfs.img");
		d->size = 1 << 20;
		d->read_only = true;
		break;
	}
	case SNAP_ID_MEMO: {
		struct snap_memo *m = st;

		m->mem_size = m->data_size = 128u << 20;
		m->nr_regions = 1;
		m->sample_pages = SNAP_MEM_SAMPLE_PAGES;
		m->regions[0] = (struct snap_memo_region){ .gpa = 0, .size = 128u << 20, .file_offset = 0 };
		break;
	}
	default:
		break;
	}
}

static void write_seeds(const char *dir)
{
	struct fuzz_state *f = fuzz;
	char tmp[4096], name[64], err[ERR_SIZE];
	struct vm_config cfg;
	struct snap_writer *w;
	struct snap_enc e;
	char *conf;
	FILE *in;
	size_t n;

	/* One payload per decoder (mode 2), checked to decode. */
	for (size_t i = 0; i < NR_CODECS; i++) {
		memset(f->st, 0, codecs[i].table->size);
		seed_state(i, f->st);
		f->enc[0] = 2;
		f->enc[1] = (uint8_t)i;
		f->enc[2] = (uint8_t)codecs[i].table->version;
		snap_enc_init(&e, f->enc + 3, ENC_MAX - 3);
		if (codec_encode(codecs[i].table, f->st, &e))
			e.overflow = true;
		if (codec_decode(codecs[i].table, f->st2, f->enc + 3, e.len, codecs[i].table->version, err, sizeof(err)))
			fprintf(stderr, "seed %s does not decode: %s\n", codecs[i].name, err);
		snprintf(name, sizeof(name), "payload-%s", codecs[i].name);
		fuzz_write_seed(dir, name, f->enc, e.len + 3);
	}

	/* A whole state file (mode 1): CONF, then every section once, as snap_writer writes them. */
	snprintf(tmp, sizeof(tmp), "%s/.state-file", dir);
	w = snap_writer_open(tmp);
	CHECK(w);
	vm_config_init(&cfg);
	CHECK(vm_config_add_disk_flag(&cfg, "/var/lib/kiln/rootfs.img,ro,root", err, sizeof(err)) == 0);
	conf = vm_config_to_json(&cfg);
	CHECK(conf);
	CHECK(snap_write_section(w, SNAP_ID_CONF, 0, CONF_VERSION, conf, strlen(conf)) == 0);
	free(conf);
	vm_config_free(&cfg);
	for (size_t i = 0; i < NR_CODECS; i++) {
		memset(f->st, 0, codecs[i].table->size);
		seed_state(i, f->st);
		snap_enc_init(&e, f->enc, ENC_MAX);
		if (codec_encode(codecs[i].table, f->st, &e))
			e.overflow = true;
		CHECK(snap_write_section(w, codecs[i].id, 0, codecs[i].table->version, f->enc, e.len) == 0);
	}
	/* A section a later kiln might add, marked optional. */
	CHECK(snap_write_section_flags(w, SNAP_FOURCC('N', 'E', 'X', 'T'), 7, 3, SNAP_SECTION_OPTIONAL, "later",
				       5) == 0);
	CHECK(snap_writer_commit(w) == 0);
	in = fopen(tmp, "rb");
	CHECK(in);
	f->file[0] = 1;
	n = fread(f->file + 1, 1, SNAP_STATE_MAX_SIZE - 1, in);
	fclose(in);
	unlink(tmp);
	fuzz_write_seed(dir, "state-file", f->file, n + 1);
	f->file[0] = 0; /* the same file, checksums as they are */
	fuzz_write_seed(dir, "state-file-raw", f->file, n + 1);

	/* Memory files of 2 pages: intact, interrupted before its rename, one byte of the trailer damaged. */
	memset(f->file, 0x5a, 3 + 5 + 2 * SNAP_MEM_PAGE_SIZE);
	f->file[0] = 3;
	f->file[1] = 3;
	f->file[2] = 0;
	fuzz_write_seed(dir, "mem-file", f->file, 3 + 2 * SNAP_MEM_PAGE_SIZE);
	f->file[1] = 4;
	fuzz_write_seed(dir, "mem-file-interrupted", f->file, 3 + 2 * SNAP_MEM_PAGE_SIZE);
	f->file[1] = 0;
	f->file[2] = 1;
	f->file[3] = 0x10; /* offset 0x2010: in the trailer (RAM is 0x2000 bytes) */
	f->file[4] = 0x20;
	f->file[5] = f->file[6] = 0;
	f->file[7] = 0xff;
	fuzz_write_seed(dir, "mem-file-damaged", f->file, 3 + 5 + 2 * SNAP_MEM_PAGE_SIZE);
	exit(0);
}
