// SPDX-License-Identifier: MIT
/* kiln: a virtual machine monitor on KVM. Dispatches to one subcommand from a table. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/log.h"

static const struct cli_command commands[] = {
	{ "run", cli_run, "run [VM.json] [--kernel PATH] [--initrd PATH] [--cmdline STR] [--cpus N] [--memory MIB] "
			  "[--console stdio|PATH] [--verbose] [--profile FILE]",
	  "boot a VM defined by a Firecracker-style config file and/or flags" },
	{ "pause", cli_pause, "pause SOCK", "pause the VM served on API socket SOCK (PATCH /vm Paused)" },
	{ "resume", cli_resume, "resume SOCK", "resume a paused VM (PATCH /vm Resumed)" },
	{ "status", cli_status, "status SOCK [--json]", "the VM's id, state and configuration (GET /, GET /vm/config)" },
	{ "snapshot", cli_snapshot, "snapshot SOCK STATE MEM [--leave-paused]",
	  "write a snapshot of the VM serving API socket SOCK (paused meanwhile)" },
	{ "restore", cli_restore, "restore STATE MEM [--copy] [--paused] [--verify] [--console stdio|PATH] [--api-sock PATH] "
				  "[--disk-override ID=PATH]... [--disk-copy ID]...",
	  "continue a snapshot in this process (kiln run --restore); --into SOCK: load it into a waiting kiln" },
	{ "clone", cli_clone, "clone STATE MEM [-n N] [--api-sock-prefix P] [--console-prefix P] [--copy] [--paused] "
			      "[--disk-copy ID]...",
	  "start N VMs from one snapshot, each its own process, sharing the memory file copy-on-write (and disk "
	  "images copied per clone: --disk-copy)" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: kiln COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  kiln %s\n      %s\n", commands[i].usage, commands[i].help);
	fprintf(out, "\nkiln --version prints the version. docs/config.md describes the config file.\n");
}

/*
 * Mark every fd above stderr close-on-exec: kiln opened none of them yet, so they are its caller's (a pipe,
 * a socket, a lock), and a clone exec'ed from /proc/self/exe must not hold them (a caller waiting for EOF on
 * a pipe would wait for the clone too). Marked, not closed: a tool kiln runs under (a sanitizer, valgrind)
 * may own one, and `kiln run --ready-fd N` still writes to its fd (only an exec drops it; exec_clone clears
 * the flag on the ready pipe it passes). No other fd is passed on purpose today: one that should reach the
 * clones would need a --keep-fd that leaves it out here. close_range's CLOEXEC flag (Linux 5.11), else a
 * walk of /proc/self/fd.
 */
static void cloexec_inherited_fds(void)
{
	struct dirent *e;
	DIR *dir;

	if (!close_range(3, ~0U, CLOSE_RANGE_CLOEXEC))
		return;
	dir = opendir("/proc/self/fd");
	if (!dir)
		return; /* no /proc: nothing else can list them */
	while ((e = readdir(dir))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		int flags;

		if (*end || end == e->d_name || fd <= STDERR_FILENO || fd == dirfd(dir))
			continue;
		flags = fcntl((int)fd, F_GETFD);
		if (flags >= 0)
			fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
	}
	closedir(dir);
}

int main(int argc, char **argv)
{
	uint64_t start_ns = time_now_ns();
	size_t i;

	cloexec_inherited_fds();
	/* A console reader that goes away must not kill the VM: writes then fail with EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("kiln %s\n", KILN_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].handler(argc - 1, argv + 1, start_ns);
	fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
