// SPDX-License-Identifier: MIT
#include "arch/x86/pvm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "lib/log.h"

/*
 * clearcpuid: Linux 6.1 reads it into a 128-byte buffer and drops the rest, so the list is ordered by
 * need. popcnt (__bitmap_weight), xsave (FPU init's xrstor), cx16 (SLUB's cmpxchg16b), smap
 * (clac/stac in every entry), ssse3 (the RNG's blake2s SSE path). noxsave makes sure the FPU code takes
 * the fxsave path. The ftrace initcall scans every symbol and trips the soft-lockup watchdog here.
 * nowatchdog: with kernel code emulated, long stretches look like lockups, and each report prints a
 * stack trace over the (emulated) UART. cryptomgr.notests: the crypto self-tests run every registered
 * algorithm over its test vectors at boot, minutes of emulated arithmetic; the algorithms stay.
 */
static const char pvm_options[] =
	"clearcpuid=popcnt,xsave,cx16,smap,ssse3,sse4_1,sse4_2,avx,avx2,pcid,invpcid "
	"noxsave nopti nowatchdog cryptomgr.notests "
	"initcall_blacklist=ftrace_check_for_weak_functions";

const char *pvm_linux_cmdline(void)
{
	return pvm_options;
}

/* Length of an option's key: up to '=' or the end of the word. */
static size_t key_len(const char *opt, size_t len)
{
	const char *eq = memchr(opt, '=', len);

	return eq ? (size_t)(eq - opt) : len;
}

static bool has_key(const char *cmdline, const char *key, size_t klen)
{
	const char *p = cmdline;

	while (p && *p) {
		size_t wlen;

		while (*p == ' ')
			p++;
		wlen = strcspn(p, " ");
		if (wlen && key_len(p, wlen) == klen && strncmp(p, key, klen) == 0)
			return true;
		p += wlen;
	}
	return false;
}

/*
 * Options Linux accumulates over several occurrences (each initcall_blacklist= adds to the list), so
 * kiln's is added even when the user gave their own; for every other option the user's wins.
 */
static bool is_cumulative(const char *opt, size_t klen)
{
	static const char key[] = "initcall_blacklist";

	return klen == sizeof(key) - 1 && strncmp(opt, key, klen) == 0;
}

char *pvm_cmdline_append(const char *cmdline, const char *extra)
{
	size_t base = cmdline ? strlen(cmdline) : 0;
	char *out = malloc(base + strlen(extra) + 2);
	const char *p = extra;
	size_t n = base;

	if (!out)
		return NULL;
	memcpy(out, cmdline ? cmdline : "", base);
	while (*p) {
		size_t wlen;

		while (*p == ' ')
			p++;
		wlen = strcspn(p, " ");
		if (wlen && (is_cumulative(p, key_len(p, wlen)) || !has_key(cmdline, p, key_len(p, wlen)))) {
			if (n)
				out[n++] = ' ';
			memcpy(out + n, p, wlen);
			n += wlen;
		}
		p += wlen;
	}
	out[n] = '\0';
	return out;
}

#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_SYSCALL_MASK 0xc0000084u
#define PTE_PRESENT (1ull << 0)
#define PTE_WRITE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_PS (1ull << 7)
#define PTE_ADDR_MASK 0x000ffffffffff000ull
#define X86_CR4_LA57 (1ull << 12)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_RF (1ull << 16)
#define PF_PRESENT 1u
#define PF_USER 4u
#define PF_FETCH 16u

static unsigned int pt_index(uint64_t va, unsigned int level)
{
	return (unsigned int)(va >> (12 + 9 * (level - 1))) & 511;
}

/* kiln's own chain below the top level: PDPT -> PD -> PT -> the unbacked trap page. */
static int write_trap_tables(const struct guest_memory *mem)
{
	uint64_t *pdpt = guest_memory_hva(mem, X86_PVM_TRAP_PT_GPA, 4096);
	uint64_t *pd = guest_memory_hva(mem, X86_PVM_TRAP_PT_GPA + 4096, 4096);
	uint64_t *pt = guest_memory_hva(mem, X86_PVM_TRAP_PT_GPA + 8192, 4096);
	const uint64_t table = PTE_PRESENT | PTE_WRITE | PTE_USER;

	if (!pdpt || !pd || !pt)
		return -ENOSPC;
	memset(pdpt, 0, 3 * 4096);
	pdpt[pt_index(PVM_SYSCALL_TRAP_GVA, 3)] = (X86_PVM_TRAP_PT_GPA + 4096) | table;
	pd[pt_index(PVM_SYSCALL_TRAP_GVA, 2)] = (X86_PVM_TRAP_PT_GPA + 8192) | table;
	/* Read-only, executable, user: only an instruction fetch ever touches it. */
	pt[pt_index(PVM_SYSCALL_TRAP_GVA, 1)] = X86_PVM_TRAP_GPA | PTE_PRESENT | PTE_USER;
	return 0;
}

int pvm_syscall_trap_filter(int vm_fd)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR, .args = { KVM_MSR_EXIT_REASON_FILTER } };
	/* A clear bit denies the access, which the filter turns into an exit to kiln. */
	static const uint8_t deny = 0;
	struct kvm_msr_filter filter = {
		.flags = KVM_MSR_FILTER_DEFAULT_ALLOW,
		.ranges = {
			{ .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, .base = MSR_LSTAR, .nmsrs = 1,
			  .bitmap = (uint8_t *)&deny },
		},
	};

	if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0 || ioctl(vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0)
		return -errno;
	return 0;
}

int pvm_syscall_trap_init(int vm_fd, const struct guest_memory *mem)
{
	int ret = write_trap_tables(mem);

	return ret ? ret : pvm_syscall_trap_filter(vm_fd);
}

/*
 * Make the trap address reachable from user mode in the page tables rooted at `cr3`: walk down from the
 * top level and, at the first level without an entry, link kiln's chain. Entries the guest already has
 * on the way are left alone but for the user bit (a kernel-only upper entry would hide the trap).
 */
static int install_trap_mapping(const struct guest_memory *mem, uint64_t cr3, bool la57)
{
	uint64_t table_gpa = cr3 & PTE_ADDR_MASK;
	unsigned int level = la57 ? 5 : 4;

	for (; level >= 2; level--) {
		uint64_t *table = guest_memory_hva(mem, table_gpa, 4096);
		uint64_t *entry;

		if (!table)
			return -EFAULT;
		entry = &table[pt_index(PVM_SYSCALL_TRAP_GVA, level)];
		if (!(*entry & PTE_PRESENT)) {
			/* kiln's PDPT is the level-3 table; deeper levels come from the chain. */
			uint64_t own = X86_PVM_TRAP_PT_GPA + (uint64_t)(3 - (level - 1)) * 4096;

			if (level - 1 > 3)
				return -ENOTSUP; /* a missing PML5 entry: Linux always has the top one */
			__atomic_store_n(entry, own | PTE_PRESENT | PTE_WRITE | PTE_USER, __ATOMIC_SEQ_CST);
			return 0;
		}
		if (*entry & PTE_PS)
			return -EEXIST; /* a huge page over the hole: not Linux's layout */
		if ((*entry & PTE_ADDR_MASK) >= X86_PVM_TRAP_PT_GPA && (*entry & PTE_ADDR_MASK) < X86_PVM_TRAP_PT_GPA + 3 * 4096)
			return 0; /* already ours */
		if (!(*entry & PTE_USER))
			__atomic_or_fetch(entry, PTE_USER, __ATOMIC_SEQ_CST);
		table_gpa = *entry & PTE_ADDR_MASK;
	}
	return -EEXIST;
}

static int set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} m = { .hdr = { .nmsrs = 1 }, .entry = { .index = index, .data = value } };

	return ioctl(vcpu_fd, KVM_SET_MSRS, &m) == 1 ? 0 : -EIO;
}

static int get_msrs(int vcpu_fd, uint64_t *star, uint64_t *sfmask)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[2];
	} m = { .hdr = { .nmsrs = 2 }, .entries = { { .index = MSR_STAR }, { .index = MSR_SYSCALL_MASK } } };

	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 2)
		return -EIO;
	*star = m.entries[0].data;
	*sfmask = m.entries[1].data;
	return 0;
}

int pvm_msr_exit(int vcpu_fd, const struct guest_memory *mem, struct pvm_vcpu_state *st, struct kvm_run *run)
{
	struct kvm_sregs sregs;
	int ret;

	if (run->msr.index != MSR_LSTAR) {
		run->msr.error = 1; /* not filtered by kiln: the guest gets #GP as without the filter */
		return 0;
	}
	if (run->exit_reason == KVM_EXIT_X86_RDMSR) {
		run->msr.data = st->guest_lstar;
		run->msr.error = 0;
		return 0;
	}
	/* WRMSR: LSTAR must be canonical, or the guest gets the #GP the CPU would raise. */
	if ((uint64_t)((int64_t)(run->msr.data << 16) >> 16) != run->msr.data) {
		run->msr.error = 1;
		return 0;
	}
	st->guest_lstar = run->msr.data;
	st->lstar_written = true;
	run->msr.error = 0;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	ret = install_trap_mapping(mem, sregs.cr3, sregs.cr4 & X86_CR4_LA57);
	if (ret)
		return ret;
	return set_msr(vcpu_fd, MSR_LSTAR, PVM_SYSCALL_TRAP_GVA);
}

static void kernel_segment(struct kvm_segment *seg, uint16_t selector, bool code)
{
	*seg = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = code ? 0xb : 0x3, .present = 1,
		.dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1,
	};
}

int pvm_syscall_landing(int vcpu_fd, struct pvm_vcpu_state *st, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	uint64_t star, sfmask;
	uint16_t kernel_cs;
	int ret;

	if (!st->lstar_written || regs->rip != PVM_SYSCALL_TRAP_GVA || sregs->cs.dpl != 3)
		return 0;
	if (regs->rflags & RFLAGS_IF) {
		/* Not a SYSCALL (it would have cleared IF): a user jump to an address it may not fetch. */
		struct kvm_vcpu_events ev;

		if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return -errno;
		sregs->cr2 = PVM_SYSCALL_TRAP_GVA;
		if (ioctl(vcpu_fd, KVM_SET_SREGS, sregs) < 0)
			return -errno;
		ev.exception.injected = 1;
		ev.exception.nr = 14;
		ev.exception.has_error_code = 1;
		ev.exception.error_code = PF_PRESENT | PF_USER | PF_FETCH;
		ev.flags = 0;
		return ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 1;
	}
	ret = get_msrs(vcpu_fd, &star, &sfmask);
	if (ret)
		return ret;
	/* Intel SDM vol 2B "SYSCALL": CS = STAR[47:32] & ~3, SS = that + 8, RIP = LSTAR. */
	kernel_cs = (uint16_t)((star >> 32) & 0xfffc);
	kernel_segment(&sregs->cs, kernel_cs, true);
	kernel_segment(&sregs->ss, (uint16_t)(kernel_cs + 8), false);
	regs->rflags = (regs->r11 & ~sfmask & ~RFLAGS_RF) | 2;
	regs->rip = st->guest_lstar;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, sregs) < 0 || ioctl(vcpu_fd, KVM_SET_REGS, regs) < 0)
		return -errno;
	st->syscalls++;
	return 1;
}

/* A WRMSR of a non-canonical LSTAR raises #GP (pvm_msr_exit), so no guest can have one. */
static int pvm_check(const void *p, uint32_t version, char *err, size_t err_size)
{
	const struct pvm_vcpu_state *st = p;

	(void)version;
	if ((uint64_t)((int64_t)(st->guest_lstar << 16) >> 16) != st->guest_lstar) {
		errmsg_set(err, err_size, "PVM SYSCALL trap state: guest_lstar 0x%llx is not canonical",
			   (unsigned long long)st->guest_lstar);
		return -EINVAL;
	}
	return 0;
}

static const struct codec_field pvm_fields[] = {
	CODEC_UINT(struct pvm_vcpu_state, guest_lstar, 8, 1),
	CODEC_BOOL(struct pvm_vcpu_state, lstar_written, 1),
	CODEC_UINT(struct pvm_vcpu_state, syscalls, 8, 1),
};
const struct codec_table pvm_vcpu_state_codec = CODEC_TABLE(struct pvm_vcpu_state, "PVM SYSCALL trap state", 1, 1,
							    pvm_fields, pvm_check);
