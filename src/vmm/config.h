/* SPDX-License-Identifier: MIT */
/*
 * A VM's definition: from a JSON file in Firecracker's --config-file schema (so a Firecracker config
 * runs unchanged), from `kiln run` flags, or both (flags override the file). docs/config.md documents
 * every field, including kiln's own additions.
 */
#ifndef KILN_VMM_CONFIG_H
#define KILN_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/json_fields.h"

#define CONFIG_MAX_VCPUS 32
#define CONFIG_MAX_CMDLINE 4096              /* bytes, with the terminating NUL */
#define CONFIG_MIN_MEM_MIB 16
#define CONFIG_MAX_MEM_MIB (1024 * 1024)      /* 1 TiB; the host's MemTotal is checked by vm_config_validate */
#define CONFIG_DEFAULT_MEM_MIB 128
#define CONFIG_MAX_DRIVES 16                 /* virtio-blk devices: each takes a PCI slot of 31 */
#define CONFIG_MAX_NETS 8                    /* virtio-net devices */

struct vm_drive_config;
struct vm_net_config;

#define CONFIG_DEFAULT_CONSOLE_MAX (64ull << 20)

struct vm_config {
	/* boot-source */
	char *kernel_path;    /* kernel_image_path: ELF vmlinux or bzImage (required) */
	char *initrd_path;    /* initrd_path: optional */
	char *cmdline;        /* boot_args: optional; kiln's default when NULL */
	/* machine-config */
	unsigned int vcpus;   /* vcpu_count: 1..CONFIG_MAX_VCPUS, default 1 */
	uint64_t mem_mib;     /* mem_size_mib: CONFIG_MIN_MEM_MIB..CONFIG_MAX_MEM_MIB, default 128 */
	bool smt;             /* smt: accepted as Firecracker does; kiln reports one thread per core */
	bool track_dirty_pages; /* track_dirty_pages: accepted and kept (GET /vm/config), no effect yet */
	/* drives, network-interfaces: in the order given; each entry owns its strings */
	struct vm_drive_config *drives;
	unsigned int nr_drives;
	struct vm_net_config *nets;
	unsigned int nr_nets;
	/* entropy */
	bool entropy;         /* the "entropy" object is present: a virtio-rng device (Firecracker's entropy
	                         device); its rate_limiter is not implemented (only null or {}) */
	/* kiln's own: "kiln" object */
	char *console_path;   /* kiln.console: a file path for guest output; NULL (or "stdio") = the terminal,
	                         the default. Test with vm_config_console_is_stdio(). */
	uint64_t console_max_bytes; /* kiln.console_max_bytes: guest output a console file or FIFO takes; past
	                         it output is dropped and counted (default CONFIG_DEFAULT_CONSOLE_MAX, 64 MiB) */
	bool pvm_tuning;      /* kiln.pvm_tuning: add PVM command-line workarounds on PVM hosts (default true) */
	unsigned int boot;    /* kiln.boot: enum vm_boot_protocol, "linux64" (default) or "pvh" */
};

/* How kiln enters the kernel: Linux's 64-bit boot protocol, or PVH (the XEN_ELFNOTE_PHYS32_ENTRY note). */
enum vm_boot_protocol { VM_BOOT_LINUX64, VM_BOOT_PVH };

/* Initialise with the defaults above. */
void vm_config_init(struct vm_config *cfg);
/* Free the strings; the struct itself belongs to the caller. Safe to call twice. */
void vm_config_free(struct vm_config *cfg);

/* True when the guest's serial output goes to kiln's own stdout (console_path NULL or "stdio"). */
bool vm_config_console_is_stdio(const struct vm_config *cfg);

/*
 * Parse a Firecracker-style JSON config from `text` (`len` bytes) into `cfg` (which holds defaults or
 * earlier values). Unknown fields, wrong types and out-of-range values are errors; on error returns
 * -EINVAL and writes a message naming the field ("machine-config.vcpu_count: expected an integer 1..32, got 0") into
 * `err` (`err_size` bytes). Fields Firecracker has that kiln does not implement yet are rejected by name
 * too ("drives: not supported yet"), never silently ignored. Fields absent from the JSON keep their value
 * in `cfg`; a string field that appears replaces (and frees) the old one. All or nothing: on error `cfg`
 * is unchanged. -ENOMEM when out of memory. JSON syntax errors give jansson's line and column.
 */
int vm_config_parse_json(struct vm_config *cfg, const char *text, size_t len, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Read and parse the file at `path` (at most 1 MiB); a file that cannot be read is an error naming the
 * path (-errno), and parse errors are prefixed with the path ("vm.json: machine-config.smt: ...").
 */
int vm_config_load_file(struct vm_config *cfg, const char *path, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Checks that need the host: kernel and initrd exist and are readable regular files, memory fits the host
 * (MemTotal from /proc/meminfo), and again the ranges of vcpus, mem_mib and cmdline (flags may have set
 * them after parsing), and Firecracker's smt rule (vcpus 1 or even). Same error convention.
 */
int vm_config_validate(const struct vm_config *cfg, char *err, size_t err_size) __attribute__((warn_unused_result));

/*
 * Firecracker's machine-config rules that involve more than one field (machine_config.rs, VmConfig::update:
 * with smt, the vCPU count is 1 or even). For a config assembled field by field (a PATCH of machine-config
 * over the current one); the same error convention as vm_config_parse_json.
 */
int vm_config_check_machine(const struct vm_config *cfg, char *err, size_t err_size) __attribute__((warn_unused_result));

/* Bits of a machine-config update (PUT or PATCH /machine-config): the fields it gives. */
enum {
	VM_MACHINE_VCPU_COUNT = 1u << 0,
	VM_MACHINE_MEM_SIZE_MIB = 1u << 1,
	VM_MACHINE_SMT = 1u << 2,
	VM_MACHINE_TRACK_DIRTY_PAGES = 1u << 3,
	VM_MACHINE_ALL = (1u << 4) - 1,
};

/*
 * Set the machine-config fields of `values` named in `set` (VM_MACHINE_*) in `cfg` and check Firecracker's
 * rules on the result (vm_config_check_machine): -EINVAL with a message, `cfg` unchanged.
 */
int vm_config_apply_machine(struct vm_config *cfg, const struct vm_config *values, unsigned int set, char *err,
			    size_t err_size) __attribute__((warn_unused_result));

/*
 * Replace the boot-source fields of `cfg` (kernel_path, initrd_path, cmdline) by copies of those of `boot`
 * (NULL ones clear), as PUT /boot-source does. All or nothing; -ENOMEM.
 */
int vm_config_apply_boot_source(struct vm_config *cfg, const struct vm_config *boot)
	__attribute__((warn_unused_result));

/*
 * src/vmm/config_json.c. Serialise to Firecracker-style JSON (for GET /vm/config and logging), with "drives",
 * "network-interfaces" and the "kiln" object; vm_config_parse_json of the result over a fresh config
 * gives back the same config. Caller frees. NULL with errno ENOMEM.
 */
char *vm_config_to_json(const struct vm_config *cfg);

/* Longest resource id (drive_id, iface_id) and VM id, in bytes without the NUL. */
#define CONFIG_MAX_ID JSON_ID_MAX

/* Firecracker's resource id rule (parsed_request.rs, checked_id), ASCII only: 1..CONFIG_MAX_ID bytes of
 * letters, digits and '_'. */
bool config_id_valid(const char *id);
/* Firecracker's --id rule (validate_instance_id): 1..CONFIG_MAX_ID bytes of letters, digits and '-'. */
bool config_instance_id_valid(const char *id);
/*
 * True when `s` is valid UTF-8 (RFC 3629), the only text a JSON string holds: a path or a command line
 * that comes from argv rather than from JSON must pass before it goes into a struct vm_config, or
 * vm_config_to_json (GET /vm/config, a snapshot's CONF section) could not write the config.
 */
bool config_text_valid(const char *s);

/*
 * Parse one section of the config file from a jansson value over `cfg`: "boot-source", "machine-config"
 * or "kiln", with the same rules, messages and all-or-nothing behaviour as vm_config_parse_json (fields
 * absent keep their value in `cfg`). `value` must be an object (the file's `"machine-config": null` is not
 * accepted here). -EINVAL for an error or a section name that is not one of those; -ENOMEM.
 */
int vm_config_parse_section(struct vm_config *cfg, const char *section, struct json_t *value, char *err,
			    size_t err_size) __attribute__((warn_unused_result));

/*
 * A block device: one entry of Firecracker's "drives" (firecracker.yaml, Drive), a virtio-blk device.
 */
enum vm_drive_cache { VM_DRIVE_CACHE_UNSAFE, VM_DRIVE_CACHE_WRITEBACK };
enum vm_drive_io_engine { VM_DRIVE_IO_SYNC, VM_DRIVE_IO_ASYNC };

/* Firecracker's names of the enums above and of enum vm_boot_protocol, indexed by them, NULL-terminated. */
extern const char *const vm_drive_cache_names[];
extern const char *const vm_drive_io_engine_names[];
extern const char *const vm_boot_protocol_names[];

struct vm_drive_config {
	char *drive_id;       /* drive_id: required, config_id_valid() */
	char *path_on_host;   /* path_on_host: required (kiln has no vhost-user-block, whose "socket" replaces it) */
	bool is_root_device;  /* is_root_device: required */
	bool is_read_only;    /* is_read_only: required */
	char *partuuid;       /* partuuid: optional, for root=PARTUUID= when is_root_device */
	unsigned int cache_type; /* cache_type: enum vm_drive_cache, "Unsafe" (default) or "Writeback" */
	unsigned int io_engine;  /* io_engine: enum vm_drive_io_engine, "Sync" (default) or "Async" (io_uring) */
};

/* Parse a Drive object over a zeroed or earlier `drive` (same conventions as json_fields_parse). */
int vm_drive_config_parse(struct vm_drive_config *drive, const char *where, struct json_t *obj, char *err,
			  size_t err_size) __attribute__((warn_unused_result));
/* Free the strings of `drive` and set them to NULL; the struct belongs to the caller. */
void vm_drive_config_free(struct vm_drive_config *drive);

/* A network interface: one entry of Firecracker's "network-interfaces" (NetworkInterface). */
struct vm_net_config {
	char *iface_id;          /* iface_id: required, config_id_valid() */
	char *host_dev_name;     /* host_dev_name: required, the TAP device (at most 15 bytes: IFNAMSIZ - 1) */
	struct json_mac guest_mac;   /* guest_mac: optional */
	unsigned int mtu;        /* mtu: 68..65535, 0 when absent (VIRTIO_NET_F_MTU not offered) */
};

/* Parse a NetworkInterface object over a zeroed or earlier `net` (same conventions as json_fields_parse). */
int vm_net_config_parse(struct vm_net_config *net, const char *where, struct json_t *obj, char *err,
			size_t err_size) __attribute__((warn_unused_result));
/* Free the strings of `net` and set them to NULL. */
void vm_net_config_free(struct vm_net_config *net);

/*
 * Add `drive` to cfg->drives, or replace the entry with the same drive_id (Firecracker's PUT /drives/{id}
 * and its config file's list), taking ownership of its strings (on success only). Checks what involves the
 * whole list: at most one root device, at most CONFIG_MAX_DRIVES drives, and no two drives with the same
 * path_on_host. -EINVAL with a message naming `where` ("drives[1]"), or -ENOMEM.
 */
int vm_config_put_drive(struct vm_config *cfg, const char *where, struct vm_drive_config *drive, char *err,
			size_t err_size) __attribute__((warn_unused_result));

/*
 * Add `net` to cfg->nets or replace the entry with the same iface_id, taking ownership of its strings (on
 * success only). Checks: at most CONFIG_MAX_NETS, and (as Firecracker) no two interfaces on the same
 * host_dev_name or with the same guest_mac. -EINVAL with a message, or -ENOMEM.
 */
int vm_config_put_net(struct vm_config *cfg, const char *where, struct vm_net_config *net, char *err,
		      size_t err_size) __attribute__((warn_unused_result));

/* src/vmm/config_flags.c: the CLI's flag syntax for one device. */

/*
 * A flag's decimal number in [min, max] into `*out`: digits only, so nothing strtoull would skip or take
 * (leading white space, a '+' or '-' sign) passes. 0, or -EINVAL (the caller names the flag).
 */
int config_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) __attribute__((warn_unused_result));

/*
 * `kiln run --disk PATH[,ro][,root][,id=NAME][,cache=unsafe|writeback][,io=sync|async]`: one drive, as
 * vm_config_put_drive; the id defaults to "disk<N>" (N = the number of drives so far). Options may come in
 * any order. -EINVAL with a message naming the flag, -ENOMEM.
 */
int vm_config_add_disk_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * `kiln run --net TAP[,mac=xx:xx:xx:xx:xx:xx][,id=NAME][,mtu=N]`: one network interface, as vm_config_put_net;
 * the id defaults to "net<N>". -EINVAL with a message naming the flag, -ENOMEM.
 */
int vm_config_add_net_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * The kernel command line Firecracker builds for a root drive (builder.rs): `cmdline` followed by
 * "root=/dev/vda" (or "root=PARTUUID=<partuuid>") and "ro" or "rw" (appended, so they win over a root= the
 * user wrote, as in Firecracker); a copy of `cmdline` (NULL: "") when no
 * drive is the root device. The root drive becomes /dev/vda because kiln puts it first on the PCI bus
 * (vm_config_drive_order). Caller frees; NULL with errno ENOMEM.
 */
char *vm_config_root_cmdline(const struct vm_config *cfg, const char *cmdline);

/*
 * The order in which the drives become devices: the root drive first (so it is /dev/vda, as in Firecracker),
 * then the others in configuration order. Returns the index into cfg->drives of the `n`th device.
 */
unsigned int vm_config_drive_order(const struct vm_config *cfg, unsigned int n);

#endif
