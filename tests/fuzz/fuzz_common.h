/* SPDX-License-Identifier: MIT */
/*
 * What kiln's libFuzzer targets share: the entry points libFuzzer calls, an invariant check that
 * aborts (so the fuzzer keeps the input), and seed writing. Header-only: each target is one .c file.
 *
 * Seeds: a target that can build good starting inputs from kiln's own encoders (a valid snapshot
 * file, a well-formed request ring) writes them into the directory named by KILN_FUZZ_SEEDS and
 * exits, instead of fuzzing; tests/fuzz/run does that before every run.
 */
#ifndef KILN_TESTS_FUZZ_COMMON_H
#define KILN_TESTS_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

/* Like CHECK, with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                                                         \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                                \
			fputc('\n', stderr);                                                         \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

/* The directory to write seeds into, or NULL for a normal run. */
static inline const char *fuzz_seed_dir(void)
{
	const char *dir = getenv("KILN_FUZZ_SEEDS");

	return dir && dir[0] ? dir : NULL;
}

/* Write one seed file `name` (`len` bytes) into `dir`; exits on failure (seed writing is a setup step). */
static inline void fuzz_write_seed(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
		fprintf(stderr, "cannot write seed %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

#endif
