// SPDX-License-Identifier: MIT
/*
 * hello: kiln's smallest test guest. Prints over the UART, reads the CMOS clock, reports the boot
 * protocol's view (command line, e820 RAM), computes in user mode (CPL3), and resets through the i8042.
 * Words on its command line add work: "emulate" executes, in kernel mode, instructions that PVM hosts
 * refuse to emulate (so kiln must) and checks their results; "echo" echoes UART input upper-cased until
 * it reads 'q'; "spin" never ends (for tests that stop the VM from outside); "count" counts in user mode
 * forever, printing "count N" every 2^26 increments (for pause/resume and snapshot tests); "keyboard"
 * polls the i8042 keyboard until Ctrl+Alt+Del is typed on it (the API's SendCtrlAltDel), then resets;
 * "fill" first writes a pattern over all RAM from 16 MiB up, in user mode (for snapshots with a lot of
 * memory).
 */
#include "guest.h"

struct trap_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

static unsigned int breakpoints;

void kernel_trap(struct trap_frame *f)
{
	if (f->vector == 3) {
		breakpoints++;
		return;
	}
	printf_uart("hello: unexpected exception %lu in kernel mode at rip %lx, error %lx\n", f->vector, f->rip,
		    f->error_code);
	i8042_reset();
}

/* ---- user mode ---- */

static uint8_t user_stack[16384] __attribute__((aligned(16)));

/* Count primes below 20000 with trial division: enough work to be visible, all in CPL3. */
static void __attribute__((used)) user_primes(void)
{
	uint64_t count = 0;

	for (uint64_t n = 2; n < 20000; n++) {
		int prime = 1;

		for (uint64_t d = 2; d * d <= n; d++) {
			if (n % d == 0) {
				prime = 0;
				break;
			}
		}
		count += (uint64_t)prime;
	}
	__asm__ volatile("int3" : : "a"(count));
	for (;;)
		;
}

/* Survives run_user() calls: the count goes on where it stopped. */
static volatile uint64_t user_count;

static void __attribute__((used)) user_counter(void)
{
	for (;;) {
		user_count++;
		if ((user_count & ((1u << 26) - 1)) == 0)
			__asm__ volatile("int3" : : "a"(user_count));
	}
}

/* RAM [FILL_START, fill_end) gets one non-zero qword per 64 bytes: every page is data, none a hole. */
#define FILL_START (16ull << 20)
static volatile uint64_t fill_end;

static void __attribute__((used)) user_fill(void)
{
	for (uint64_t a = FILL_START; a < fill_end; a += 64)
		*(volatile uint64_t *)a = a ^ 0x6b696c6eull;
	__asm__ volatile("int3" : : "a"((fill_end - FILL_START) >> 20));
	for (;;)
		;
}

static void user_fault(void)
{
	__asm__ volatile("ud2");
}

/* ---- boot protocol ---- */

static const char *boot_cmdline(const uint8_t *bp)
{
	uint32_t ptr = *(const uint32_t *)(bp + 0x228);

	return ptr ? (const char *)(uintptr_t)ptr : "";
}

static uint64_t e820_ram_kib(const uint8_t *bp, unsigned int *entries)
{
	const uint8_t *table = bp + 0x2d0;
	uint64_t total = 0;
	unsigned int i;

	*entries = bp[0x1e8];
	for (i = 0; i < *entries && i < 128; i++) {
		const uint8_t *e = table + i * 20;

		if (*(const uint32_t *)(e + 16) == 1)
			total += *(const uint64_t *)(e + 8);
	}
	return total / 1024;
}

/* ---- instructions PVM hosts refuse in kernel mode ---- */

/*
 * Processors the firmware tables announce (ACPI 6.4 s5.2.5 RSDP, s5.2.8 XSDT, s5.2.12 MADT: type 0
 * Processor Local APIC entries with the Enabled flag). kiln puts the RSDP at 0xf0000; guest RAM below
 * 4 GiB is identity-mapped. Returns 0 when no MADT is found.
 */
static unsigned int madt_processors(void)
{
	const uint8_t *rsdp = (const uint8_t *)0xf0000, *xsdt;
	unsigned int n = 0;
	uint32_t xlen;

	if (rsdp[0] != 'R' || rsdp[1] != 'S' || rsdp[2] != 'D' || rsdp[3] != ' ')
		return 0;
	xsdt = (const uint8_t *)(uintptr_t)*(const uint64_t *)(rsdp + 24);
	xlen = *(const uint32_t *)(xsdt + 4);
	for (uint32_t off = 36; off + 8 <= xlen; off += 8) {
		const uint8_t *t = (const uint8_t *)(uintptr_t)*(const uint64_t *)(xsdt + off);
		uint32_t len = *(const uint32_t *)(t + 4);

		if (t[0] != 'A' || t[1] != 'P' || t[2] != 'I' || t[3] != 'C')
			continue;
		for (uint32_t e = 44; e + 2 <= len && t[e + 1] >= 2; e += t[e + 1])
			if (t[e] == 0 && (*(const uint32_t *)(t + e + 4) & 1))
				n++;
	}
	return n;
}

static int check(const char *what, uint64_t got, uint64_t want)
{
	printf_uart("emulate: %s = %lx (%s)\n", what, got, got == want ? "ok" : "WRONG");
	return got == want;
}

static int emulate_selftest(void)
{
	uint64_t cr4, x = 0xf0f0f0f0f00fULL, pop, out;
	uint32_t mxcsr_in = 0x1fa0, mxcsr_out = 0;
	uint64_t rflags;
	int ok = 1;

	/* SSE needs CR4.OSFXSR and OSXMMEXCPT, as an OS would set. */
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= (1u << 9) | (1u << 10);
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4));

	__asm__ volatile("popcnt %1, %0" : "=r"(pop) : "r"(x) : "cc");
	ok &= check("popcnt", pop, 24);

	__asm__ volatile("ldmxcsr %1\n\tstmxcsr %0" : "=m"(mxcsr_out) : "m"(mxcsr_in));
	ok &= check("ldmxcsr/stmxcsr", mxcsr_out, 0x1fa0);

	/* No xmm clobber: guests build with -mgeneral-regs-only, so the compiler never holds values there. */
	__asm__ volatile("movd %k1, %%xmm15\n\tmovq %%xmm15, %0" : "=r"(out) : "r"(0x12345678u));
	ok &= check("movd/movq xmm15", out, 0x12345678);

	__asm__ volatile("stac\n\tpushfq\n\tpopq %0\n\tclac" : "=r"(rflags) : : "cc");
	ok &= check("stac sets AC", (rflags >> 18) & 1, 1);
	__asm__ volatile("pushfq\n\tpopq %0" : "=r"(rflags));
	ok &= check("clac clears AC", (rflags >> 18) & 1, 0);

	__asm__ volatile("int3");
	ok &= check("int3 reached the #BP handler", breakpoints, 1);

	__asm__ volatile("fwait");
	ok &= check("fwait", 1, 1);
	return ok;
}

void guest_main(const uint8_t *boot_params);

void guest_main(const uint8_t *boot_params)
{
	const char *cmdline = boot_cmdline(boot_params);
	struct user_result res;
	struct rtc_time t;
	unsigned int entries;
	uint64_t ram;

	uart_init();
	puts_uart("hello from a kiln guest\n");
	printf_uart("cmdline: %s\n", cmdline);
	ram = e820_ram_kib(boot_params, &entries);
	printf_uart("e820: %u entries, %lu KiB RAM\n", entries, ram);
	printf_uart("madt: %u processors\n", madt_processors());
	rtc_read(&t);
	printf_uart("rtc: %04u-%02u-%02u %02u:%02u:%02u UTC\n", t.year, t.month, t.day, t.hour, t.minute, t.second);

	cpu_init();
	run_user(user_primes, user_stack + sizeof(user_stack), &res);
	if (res.vector == USER_EXIT_TRAP)
		printf_uart("user mode (cs %lx): %lu primes below 20000\n", res.cs, res.rax);
	else
		printf_uart("user mode failed: vector %u at rip %lx, error %lx\n", res.vector, res.rip, res.error_code);

	run_user(user_fault, user_stack + sizeof(user_stack), &res);
	printf_uart("user mode fault: vector %u (%s)\n", res.vector, res.vector == 6 ? "#UD, ok" : "unexpected");

	if (strstr_simple(cmdline, "emulate"))
		printf_uart("emulate: %s\n", emulate_selftest() ? "all ok" : "FAILED");

	if (strstr_simple(cmdline, "echo")) {
		puts_uart("echo: ready\n");
		for (;;) {
			char c;

			while (!(inb(0x3f8 + 5) & 0x01))
				;
			c = (char)inb(0x3f8);
			if (c == 'q')
				break;
			putc_uart(c >= 'a' && c <= 'z' ? (char)(c - 32) : c);
		}
		puts_uart("\necho: done\n");
	}

	if (strstr_simple(cmdline, "fill")) {
		/* RAM below the 3 GiB hole, as the e820 map gave it (the total includes the first MiB). */
		fill_end = ram * 1024 < (3ull << 30) ? ram * 1024 : (3ull << 30);
		if (fill_end > FILL_START) {
			run_user(user_fill, user_stack + sizeof(user_stack), &res);
			printf_uart("fill: %lu MiB written\n", res.vector == USER_EXIT_TRAP ? res.rax : 0);
		}
	}

	if (strstr_simple(cmdline, "keyboard")) {
		/* Scan code set 1, as the controller translates by default: Ctrl 1D, Alt 38, Delete E0 53. */
		int ctrl = 0, alt = 0, e0 = 0;

		puts_uart("keyboard: ready\n");
		for (;;) {
			uint8_t code;

			while (!(inb(0x64) & 0x01))
				__asm__ volatile("pause");
			code = inb(0x60);
			if (code == 0xe0) {
				e0 = 1;
				continue;
			}
			if (!e0 && (code & 0x7f) == 0x1d)
				ctrl = !(code & 0x80);
			else if (!e0 && (code & 0x7f) == 0x38)
				alt = !(code & 0x80);
			else if (e0 && code == 0x53 && ctrl && alt)
				break;
			e0 = 0;
		}
		puts_uart("keyboard: ctrl-alt-del\n");
	}

	if (strstr_simple(cmdline, "count")) {
		for (;;) {
			run_user(user_counter, user_stack + sizeof(user_stack), &res);
			if (res.vector != USER_EXIT_TRAP) {
				printf_uart("count: user mode failed, vector %u\n", res.vector);
				break;
			}
			printf_uart("count %lu\n", res.rax >> 26);
		}
	}

	if (strstr_simple(cmdline, "spin")) {
		puts_uart("spinning\n");
		for (;;)
			__asm__ volatile("pause");
	}

	puts_uart("hello: done, resetting\n");
	i8042_reset();
}
