// SPDX-License-Identifier: MIT
#include "vmm/profile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

struct profile *profile_create(void)
{
	return calloc(1, sizeof(struct profile));
}

void profile_destroy(struct profile *p)
{
	free(p);
}

void profile_record(struct profile *p, uint64_t rip, bool user)
{
	/* Open addressing on a multiplicative hash; RIPs cluster, so spread the low bits. */
	uint32_t h = (uint32_t)((rip * 0x9e3779b97f4a7c15ull) >> 48) & (PROFILE_SLOTS - 1);
	unsigned int probes;

	p->samples++;
	if (user)
		p->user_samples++;
	if (rip == 0)
		rip = 1; /* 0 marks an empty slot */
	for (probes = 0; probes < 64; probes++, h = (h + 1) & (PROFILE_SLOTS - 1)) {
		if (p->rip[h] == rip) {
			p->count[h]++;
			return;
		}
		if (p->rip[h] == 0) {
			p->rip[h] = rip;
			p->count[h] = 1;
			return;
		}
	}
	p->dropped++;
}

int profile_write(const struct profile *p, unsigned int vcpu_id, FILE *out)
{
	unsigned int i;

	fprintf(out, "# vcpu %u: %" PRIu64 " samples, %" PRIu64 " in user mode, %" PRIu64 " not recorded\n", vcpu_id,
		p->samples, p->user_samples, p->dropped);
	for (i = 0; i < PROFILE_SLOTS; i++)
		if (p->rip[i])
			fprintf(out, "%u %" PRIx64 " %u\n", p->count[i], p->rip[i], vcpu_id);
	return ferror(out) ? -EIO : 0;
}
