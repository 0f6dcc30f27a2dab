// SPDX-License-Identifier: MIT
/* kiln: a virtual machine monitor on KVM. Dispatches to one subcommand from a table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

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

int main(int argc, char **argv)
{
	uint64_t start_ns = time_now_ns();
	size_t i;

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
