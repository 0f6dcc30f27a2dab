/* SPDX-License-Identifier: MIT */
/*
 * Runtime for kiln's freestanding test guests: port I/O, the UART, the CMOS clock, the i8042 reset,
 * and a minimal "kernel" (GDT, TSS, IDT) that can drop to user mode (CPL3) and take it back through
 * int3 or any exception (PVM hosts raise #UD for `int $0x80` from CPL3; int3 and faults work everywhere). Entered by kiln in 64-bit mode with the boot protocol's state,
 * or through the PVH entry (pvh.S) by kiln or QEMU.
 */
#ifndef KILN_GUEST_H
#define KILN_GUEST_H

#include <stdint.h>
#include <stddef.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

void uart_init(void);
void putc_uart(char c);
void puts_uart(const char *s);
/* printf subset: %s %c %d %u %x %lx %lu %ld %llx %llu %%, with width and '0' padding for numbers. */
void printf_uart(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct rtc_time {
	unsigned int year, month, day, hour, minute, second;
};
void rtc_read(struct rtc_time *t);

/* Pulse the CPU reset line through the i8042: kiln ends the VM (status 0). */
void __attribute__((noreturn)) i8042_reset(void);

/*
 * The kernel command line, whichever way the guest was entered: the 64-bit entry's boot_params (RSI,
 * passed on by _start), or the PVH entry's hvm_start_info (EBX, kept by pvh.S). Never NULL.
 */
const char *guest_cmdline(const uint8_t *boot_params);
/* True when the guest came in through the PVH entry (pvh.S). */
int guest_entered_pvh(void);
/*
 * End the VM on either VMM: QEMU's isa-debug-exit (port 0xf4, QEMU exits with status 1 for value 0),
 * then the i8042 reset that ends kiln (and QEMU's q35 with -no-reboot).
 */
void __attribute__((noreturn)) guest_exit(void);

/* GDT with Linux's selectors, a TSS whose RSP0 is a kernel stack, an IDT for vectors 0-31. */
void cpu_init(void);

#define USER_EXIT_TRAP 3 /* user mode returns with int3: the one software interrupt PVM hosts deliver from CPL3 */
struct user_result {
	unsigned int vector; /* how user mode came back: the vector (3 for int3, the exit call) */
	uint64_t rax;        /* user RAX at that moment (the result, for int3) */
	uint64_t rip;
	uint64_t error_code;
	uint64_t cs;
};
/* Run `fn` at CPL3 on `stack_top` until it executes int3 or faults. */
void run_user(void (*fn)(void), void *stack_top, struct user_result *res);

/* Called by the trap stubs for exceptions taken in kernel mode (CPL0). */
struct trap_frame;
void kernel_trap(struct trap_frame *f);

size_t strlen(const char *s);
void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int strncmp(const char *a, const char *b, size_t n);
const char *strstr_simple(const char *hay, const char *needle);

#endif
