/* SPDX-License-Identifier: MIT */
/* `kiln` subcommands. Each returns the process exit status: 0 ok, 1 failure, 2 bad usage or config. */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#include <stdint.h>

#define EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*handler)(int argc, char **argv, uint64_t start_ns);
	const char *usage;
	const char *help;
};

int cli_run(int argc, char **argv, uint64_t start_ns);

#endif
