/* SPDX-License-Identifier: MIT */
/*
 * Guest profiling by sampling: the main loop kicks every vCPU out of KVM_RUN at a fixed rate and each
 * vCPU records where its guest was (RIP and privilege level). On PVM hosts, where guest kernel code is
 * emulated, this shows which kernel functions a boot spends its minutes in (scripts/profile-report
 * resolves the addresses with a System.map).
 */
#ifndef KILN_VMM_PROFILE_H
#define KILN_VMM_PROFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PROFILE_SLOTS 65536 /* distinct RIPs per vCPU; later ones count as "other" */

struct profile {
	uint64_t rip[PROFILE_SLOTS];  /* 0 = empty slot */
	uint32_t count[PROFILE_SLOTS];
	uint64_t samples;
	uint64_t user_samples;        /* samples taken in guest user mode (CPL3) */
	uint64_t dropped;             /* table full */
};

/* Allocate an empty profile. NULL with errno. */
struct profile *profile_create(void);
void profile_destroy(struct profile *p);

/* Record one sample. `user` when the guest was at CPL3. */
void profile_record(struct profile *p, uint64_t rip, bool user);

/*
 * Append "count rip vcpu" lines (hex RIP) for every sampled RIP of `p` to `out`, after a header comment
 * with the totals. Returns 0 or -errno.
 */
int profile_write(const struct profile *p, unsigned int vcpu_id, FILE *out) __attribute__((warn_unused_result));

#endif
