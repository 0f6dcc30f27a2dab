// SPDX-License-Identifier: MIT
#include "vmm/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FOUR_GIB (1ull << 32)

int guest_memory_init(struct guest_memory *mem, uint64_t size, uint64_t hole_start)
{
	uint64_t low;
	int ret;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size == 0 || (size & 0xfff) || hole_start > FOUR_GIB || (hole_start & 0xfff))
		return -EINVAL;
	mem->memfd = memfd_create("kiln-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto err;
	}
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem->memfd, 0);
	if (mem->base == MAP_FAILED) {
		ret = -errno;
		mem->base = NULL;
		goto err;
	}
	/* Guest RAM is never part of a host core dump. */
	madvise(mem->base, size, MADV_DONTDUMP);
	mem->size = size;
	low = size < hole_start ? size : hole_start;
	mem->regions[0] = (struct guest_region){ .gpa = 0, .size = low, .hva = mem->base, .fd_offset = 0 };
	mem->nr_regions = 1;
	if (size > low) {
		mem->regions[1] = (struct guest_region){
			.gpa = FOUR_GIB, .size = size - low, .hva = mem->base + low, .fd_offset = low,
		};
		mem->nr_regions = 2;
	}
	return 0;
err:
	close(mem->memfd);
	mem->memfd = -1;
	return ret;
}

void guest_memory_destroy(struct guest_memory *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
}

void *guest_memory_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		/* Written so that no sum can overflow: gpa and len come from the guest. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t guest_memory_low_size(const struct guest_memory *mem)
{
	return mem->nr_regions ? mem->regions[0].size : 0;
}

uint64_t guest_memory_high_size(const struct guest_memory *mem)
{
	return mem->nr_regions > 1 ? mem->regions[1].size : 0;
}

int guest_memory_write(const struct guest_memory *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_memory_hva(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

int guest_memory_read(const struct guest_memory *mem, uint64_t gpa, void *dst, uint64_t len)
{
	const void *src = guest_memory_hva(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}
