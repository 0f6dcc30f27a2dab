/* SPDX-License-Identifier: MIT */
/* `kiln` subcommands. Each returns the process exit status: 0 ok, 1 failure, 2 bad usage or config. */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "api/server.h"
#include "vmm/config.h"
#include "vmm/snapshot.h"
#include "vmm/vm_api.h"

struct vm;

#define EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*handler)(int argc, char **argv, uint64_t start_ns);
	const char *usage;
	const char *help;
};

int cli_run(int argc, char **argv, uint64_t start_ns);
int cli_snapshot(int argc, char **argv, uint64_t start_ns);
int cli_restore(int argc, char **argv, uint64_t start_ns);
int cli_clone(int argc, char **argv, uint64_t start_ns);

/* `kiln run --restore` and `kiln run --api-sock` without a kernel (src/cli/snapshot.c). */
struct cli_restore {
	const char *state_path;         /* --restore; NULL: wait for PUT /snapshot/load */
	struct vm_restore_options opts; /* --mem, --copy, --paused */
	const char *console_path;       /* --console (NULL: stdio) */
	const char *api_sock;
	int ready_fd;                   /* --ready-fd, or -1 */
	struct vm_config cfg;           /* the restored VM's config */
	struct vm_api_loader loader;    /* waiting for a load over the API */
	bool waited;                    /* the VM came through the loader */
};

/* Restore r->state_path into `vm`. Returns 0, or the exit status (2: the snapshot is refused, 1). */
int cli_restore_vm(struct vm *vm, struct cli_restore *r, uint64_t start_ns);
/* Serve the API on r->api_sock until a snapshot is loaded into `vm` (0) or a signal ends the wait (exit status). */
int cli_wait_for_load(struct vm *vm, struct cli_restore *r, struct api_server **api, uint64_t start_ns);
/* Serve the API (if not yet), report readiness, run the restored VM to its end. Returns the exit status. */
int cli_run_restored(struct vm *vm, struct cli_restore *r, struct api_server **api, bool verbose);
void cli_restore_free(struct cli_restore *r);

#endif
