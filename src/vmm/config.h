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

#define CONFIG_MAX_VCPUS 32
#define CONFIG_MAX_CMDLINE 4096              /* bytes, with the terminating NUL */
#define CONFIG_MIN_MEM_MIB 16
#define CONFIG_MAX_MEM_MIB (1024 * 1024)      /* 1 TiB; the host's MemTotal is checked by vm_config_validate */
#define CONFIG_DEFAULT_MEM_MIB 128

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
	/* kiln's own: "kiln" object */
	char *console_path;   /* kiln.console: a file path for guest output; NULL (or "stdio") = the terminal,
	                         the default. Test with vm_config_console_is_stdio(). */
	bool pvm_tuning;      /* kiln.pvm_tuning: add PVM command-line workarounds on PVM hosts (default true) */
};

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
 * Serialise to Firecracker-style JSON (for GET /vm/config and logging), with "drives": [],
 * "network-interfaces": [] and the "kiln" object; vm_config_parse_json of the result over a fresh config
 * gives back the same config. Caller frees. NULL with errno ENOMEM.
 */
char *vm_config_to_json(const struct vm_config *cfg);

#endif
