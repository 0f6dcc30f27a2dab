// SPDX-License-Identifier: MIT
/*
 * exitloop: the guest of kiln's exit-cost and start-latency benchmarks (bench/), one image for kiln and
 * QEMU (it carries the PVH entry QEMU's -kernel uses). It times loops of accesses that each exit to the
 * VMM's user space and complete there:
 *   pio=N   N reads of the UART scratch register (COM1 + 7, port 0x3ff): an 8250 register both kiln and
 *           QEMU emulate in their user-space serial device;
 *   mmio=N  N 32-bit reads of guest-physical 0xd0000000, in the MMIO hole of both machines with nothing
 *           behind it: KVM exits with KVM_EXIT_MMIO, the VMM looks the address up in its MMIO dispatch,
 *           finds nothing and completes the read (kiln: all-ones; QEMU: its unassigned-memory handler);
 *   ram=N   the same loop reading guest RAM, which never exits: the guest's own share of each iteration
 *           (large on PVM hosts, where guest kernel code is emulated instruction by instruction);
 *   idle    when done, wait with interrupts off (for memory measurements) instead of ending the VM.
 * The loops run in kernel mode: on PVM hosts `in` from user mode faults even with IOPL 3, and a user-mode
 * MMIO access costs several times a kernel-mode one (it goes through the host's page-fault path).
 * Lines the harness parses (bench/exit_cost.py); cycles are rdtsc deltas around the N accesses only:
 *   exitloop: start pvh=<0|1>
 *   exitloop: <pio|mmio|ram> go n=<N>
 *   exitloop: <pio|mmio|ram> end n=<N> cycles=<TSC cycles>
 *   exitloop: idle | exitloop: done
 */
#include "guest.h"

#define UART_SCR_PORT (0x3f8 + 7)
#define MMIO_PROBE_GPA 0xd0000000ull

enum loop_kind { LOOP_PIO, LOOP_MMIO, LOOP_RAM };

struct trap_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

void kernel_trap(struct trap_frame *f)
{
	printf_uart("exitloop: exception %lu in kernel mode at rip %lx, error %lx\n", f->vector, f->rip, f->error_code);
	guest_exit();
}

static inline uint64_t rdtsc_ordered(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* "key=N" from the command line (key includes the '='); 0 when absent. */
static uint64_t cmdline_number(const char *cmdline, const char *key)
{
	const char *p = strstr_simple(cmdline, key);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (p += strlen(key); *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v;
}

static volatile uint32_t ram_word;

static void measure(const char *name, enum loop_kind kind, uint64_t n)
{
	volatile uint32_t *mmio = (volatile uint32_t *)(uintptr_t)MMIO_PROBE_GPA;
	uint64_t t0, t1, i;

	printf_uart("exitloop: %s go n=%lu\n", name, n);
	t0 = rdtsc_ordered();
	switch (kind) {
	case LOOP_PIO:
		for (i = 0; i < n; i++)
			(void)inb(UART_SCR_PORT);
		break;
	case LOOP_MMIO:
		for (i = 0; i < n; i++)
			(void)*mmio;
		break;
	case LOOP_RAM:
		for (i = 0; i < n; i++)
			(void)ram_word;
		break;
	}
	t1 = rdtsc_ordered();
	printf_uart("exitloop: %s end n=%lu cycles=%lu\n", name, n, t1 - t0);
}

void guest_main(const uint8_t *boot_params);

void guest_main(const uint8_t *boot_params)
{
	const char *cmdline = guest_cmdline(boot_params);
	uint64_t pio = cmdline_number(cmdline, "pio="), mmio = cmdline_number(cmdline, "mmio=");
	uint64_t ram = cmdline_number(cmdline, "ram=");

	uart_init();
	printf_uart("exitloop: start pvh=%d\n", guest_entered_pvh());
	if (pio || mmio || ram)
		cpu_init(); /* an IDT, so that a fault is reported instead of ending in a triple fault */
	if (ram)
		measure("ram", LOOP_RAM, ram);
	if (pio)
		measure("pio", LOOP_PIO, pio);
	if (mmio)
		measure("mmio", LOOP_MMIO, mmio);
	if (strstr_simple(cmdline, "idle")) {
		puts_uart("exitloop: idle\n");
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	puts_uart("exitloop: done\n");
	guest_exit();
}
