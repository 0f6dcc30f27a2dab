/* SPDX-License-Identifier: MIT */
/* `kiln` subcommands. Each returns the process exit status: 0 ok, 1 failure, 2 bad usage or config. */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


#define EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*handler)(int argc, char **argv, uint64_t start_ns);
	const char *usage;
	const char *help;
};

int cli_run(int argc, char **argv, uint64_t start_ns);

/* Verbs that talk to a VM's API socket (src/cli/control.c): `kiln pause|resume|status SOCK`. */
int cli_pause(int argc, char **argv, uint64_t start_ns);
int cli_resume(int argc, char **argv, uint64_t start_ns);
int cli_status(int argc, char **argv, uint64_t start_ns);

/* Snapshot verbs (src/cli/snapshot.c): `kiln snapshot SOCK STATE MEM`, `kiln restore`, `kiln clone`. */
int cli_snapshot(int argc, char **argv, uint64_t start_ns);
int cli_restore(int argc, char **argv, uint64_t start_ns);
int cli_clone(int argc, char **argv, uint64_t start_ns);

/*
 * What a restore changes in the snapshot's config (kiln run --restore, kiln restore, kiln clone), in the
 * order given: CLI_RESTORE_OPTIONS parsed by cli_restore_option into a struct vm_restore_overrides.
 */
enum {
	CLI_OPT_NET_OVERRIDE = 0x1000, /* --net-override IFACE=TAP: the interface on another TAP (Firecracker's
	                                  network_overrides); the guest keeps its MAC */
	CLI_OPT_DISK_OVERRIDE,         /* --disk-override DRIVE_ID=PATH: the drive opened at PATH, an image of
	                                  the same size holding what the recorded disk held at the snapshot */
	CLI_OPT_DISK_COPY,             /* --disk-copy DRIVE_ID: kiln copies the disk (reflink or sparse copy) to
	                                  "<drive_id>.clone<N>.img" and opens the copy */
	CLI_OPT_DISK_DIR,              /* --disk-dir DIR: where those copies go (default: by the state file) */
};

#define CLI_RESTORE_OPTIONS                                                      \
	{ "net-override", required_argument, NULL, CLI_OPT_NET_OVERRIDE },       \
	{ "disk-override", required_argument, NULL, CLI_OPT_DISK_OVERRIDE },     \
	{ "disk-copy", required_argument, NULL, CLI_OPT_DISK_COPY },             \
	{ "disk-dir", required_argument, NULL, CLI_OPT_DISK_DIR }

#define CLI_RESTORE_USAGE \
	"[--net-override IFACE=TAP]... [--disk-override DRIVE_ID=PATH]... [--disk-copy DRIVE_ID]... [--disk-dir DIR]"

struct vm_restore_overrides;

/*
 * Take option `opt` (a CLI_OPT_*) with its `arg` into `ov` (vmm/restore.h). 0, or -EINVAL after printing why
 * to stderr, prefixed with `verb` ("kiln clone").
 */
int cli_restore_option(struct vm_restore_overrides *ov, int opt, const char *arg, const char *verb)
	__attribute__((warn_unused_result));

/* The exit status for a restore that failed with `ret`: 2 when the snapshot was refused, else 1. */
int cli_restore_status(int ret);

struct api_client_response;

/*
 * One API request for verb `verb` (for messages): `method` `path` with `json_body` (NULL: none) to the
 * socket `sock`. On a 2xx answer returns 0 with the answer in `out` (the caller frees it with
 * api_client_response_free; `out` may be NULL). Otherwise prints "kiln VERB: <reason>" (the server's
 * fault_message, or why no answer came) to stderr and returns the exit status, 1.
 */
int cli_api_call(const char *verb, const char *sock, const char *method, const char *path, const char *json_body,
		 struct api_client_response *out) __attribute__((warn_unused_result));

#endif
