// SPDX-License-Identifier: MIT
/*
 * randio: 4 KiB random direct I/O on a file or block device, for the disk figures kiln's tests print
 * inside a Linux guest and on the host (busybox has no fio). Built static, so the test can put it on a
 * guest disk image.
 *
 *   randio PATH read|write OPS [SEED]
 *
 * Issues OPS requests of 4096 bytes at 4096-aligned offsets drawn uniformly from the file (or device),
 * one at a time with O_DIRECT (queue depth 1: each request is a round trip through the whole stack), and
 * prints "randio: <read|write> <ops> ops in <seconds> s: <iops> IOPS". Writes write a fixed pattern and
 * end with fdatasync, counted in the time. Exit status 0, or 1 with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: reproducible offsets without libc's rand state. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

int main(int argc, char **argv)
{
	uint64_t size = 0, blocks, seed = 0x6b696c6e;
	struct stat st;
	void *buf;
	bool write_mode;
	long ops;
	double t0, t1;
	int fd;

	if (argc < 4 || (strcmp(argv[2], "read") && strcmp(argv[2], "write")) || (ops = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: randio PATH read|write OPS [SEED]\n");
		return 1;
	}
	if (argc > 4)
		seed = strtoull(argv[4], NULL, 0) | 1;
	write_mode = !strcmp(argv[2], "write");
	fd = open(argv[1], (write_mode ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "randio: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			fprintf(stderr, "randio: %s: BLKGETSIZE64: %s\n", argv[1], strerror(errno));
			return 1;
		}
	} else {
		size = (uint64_t)st.st_size;
	}
	blocks = size / BLOCK;
	if (!blocks) {
		fprintf(stderr, "randio: %s: smaller than %u bytes\n", argv[1], BLOCK);
		return 1;
	}
	if (posix_memalign(&buf, BLOCK, BLOCK)) {
		fprintf(stderr, "randio: out of memory\n");
		return 1;
	}
	memset(buf, 0x5a, BLOCK);
	t0 = now();
	for (long i = 0; i < ops; i++) {
		off_t off = (off_t)(next_random(&seed) % blocks) * BLOCK;
		ssize_t n = write_mode ? pwrite(fd, buf, BLOCK, off) : pread(fd, buf, BLOCK, off);

		if (n != (ssize_t)BLOCK) {
			fprintf(stderr, "randio: %s at %lld: %s\n", argv[2], (long long)off, n < 0 ? strerror(errno) : "short");
			return 1;
		}
	}
	if (write_mode && fdatasync(fd) < 0) {
		fprintf(stderr, "randio: fdatasync: %s\n", strerror(errno));
		return 1;
	}
	t1 = now();
	printf("randio: %s %ld ops in %.3f s: %.0f IOPS\n", argv[2], ops, t1 - t0, (double)ops / (t1 - t0));
	return 0;
}
