/* SPDX-License-Identifier: MIT */
/* `kiln` subcommands. Each returns the process exit status: 0 ok, 1 failure, 2 bad usage or config. */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#include <stdbool.h>
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
