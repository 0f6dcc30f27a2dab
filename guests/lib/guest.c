// SPDX-License-Identifier: MIT
/* The test guests' runtime: UART, CMOS RTC, i8042 reset, GDT/TSS/IDT and the CPL3 round trip. */
#include <stdarg.h>

#include "guest.h"

#define COM1 0x3f8

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;

	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

const char *strstr_simple(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

void uart_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts: the guest polls */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFO on */
	outb(COM1 + 4, 0x03); /* DTR RTS */
}

void putc_uart(char c)
{
	unsigned int spins = 0;

	if (c == '\n')
		putc_uart('\r');
	while (!(inb(COM1 + 5) & 0x20) && ++spins < 100000)
		;
	outb(COM1, (uint8_t)c);
}

void puts_uart(const char *s)
{
	while (*s)
		putc_uart(*s++);
}

static void put_number(unsigned long long v, unsigned int base, int width, char pad, int negative)
{
	char buf[32];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (negative)
		buf[n++] = '-';
	while (n < width--)
		putc_uart(pad);
	while (n)
		putc_uart(buf[--n]);
}

void printf_uart(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		int width = 0, longs = 0;
		char pad = ' ';

		if (*fmt != '%') {
			putc_uart(*fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 's':
			puts_uart(va_arg(ap, const char *));
			break;
		case 'c':
			putc_uart((char)va_arg(ap, int));
			break;
		case 'd': {
			long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);

			put_number(v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
			put_number(longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int), 10, width, pad, 0);
			break;
		case 'x':
			put_number(longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int), 16, width, pad, 0);
			break;
		case '%':
			putc_uart('%');
			break;
		default:
			putc_uart('?');
			break;
		}
	}
	va_end(ap);
}

static uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static unsigned int bcd(uint8_t v, int binary)
{
	return binary ? v : (v >> 4) * 10u + (v & 0xf);
}

void rtc_read(struct rtc_time *t)
{
	uint8_t b = cmos_read(0x0b);
	int binary = b & 0x04;

	while (cmos_read(0x0a) & 0x80)
		;
	t->second = bcd(cmos_read(0x00), binary);
	t->minute = bcd(cmos_read(0x02), binary);
	t->hour = bcd(cmos_read(0x04), binary);
	t->day = bcd(cmos_read(0x07), binary);
	t->month = bcd(cmos_read(0x08), binary);
	t->year = bcd(cmos_read(0x32), binary) * 100 + bcd(cmos_read(0x09), binary);
}

void i8042_reset(void)
{
	outb(0x64, 0xfe);
	for (;;)
		__asm__ volatile("hlt");
}

/* ---- boot protocols ---- */

extern uint32_t pvh_start_info; /* pvh.S */

#define HVM_START_MAGIC_VALUE 0x336ec578u
#define BP_CMD_LINE_PTR 0x228 /* boot_params.hdr.cmd_line_ptr */

int guest_entered_pvh(void)
{
	return pvh_start_info != 0;
}

const char *guest_cmdline(const uint8_t *boot_params)
{
	if (pvh_start_info) {
		/* struct hvm_start_info: magic at 0, cmdline_paddr at 24 (Xen's arch-x86/hvm/start_info.h). */
		const uint8_t *si = (const uint8_t *)(uintptr_t)pvh_start_info;
		uint64_t paddr = *(const uint64_t *)(si + 24);

		if (*(const uint32_t *)si != HVM_START_MAGIC_VALUE || !paddr)
			return "";
		return (const char *)(uintptr_t)paddr;
	}
	if (boot_params) {
		uint32_t ptr = *(const uint32_t *)(boot_params + BP_CMD_LINE_PTR);

		if (ptr)
			return (const char *)(uintptr_t)ptr;
	}
	return "";
}

void guest_exit(void)
{
	outb(0xf4, 0);
	i8042_reset();
}

/* ---- descriptor tables ---- */

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
} __attribute__((packed));

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

#define KERNEL_CS 0x10
#define KERNEL_DS 0x18
#define USER_DS 0x2b
#define USER_CS 0x33
#define TSS_SEL 0x40

static uint64_t gdt[10] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static uint8_t kernel_trap_stack[16384] __attribute__((aligned(16)));

extern const uint64_t trap_stub_table[32];

static void set_gate(unsigned int vec, uint64_t handler, uint8_t dpl)
{
	idt[vec] = (struct idt_gate){
		.offset_low = (uint16_t)handler, .selector = KERNEL_CS, .ist = 0,
		.type_attr = (uint8_t)(0x80 | (dpl << 5) | 0xe), /* present, 64-bit interrupt gate */
		.offset_mid = (uint16_t)(handler >> 16), .offset_high = (uint32_t)(handler >> 32),
	};
}

void cpu_init(void)
{
	uint64_t tss_base = (uint64_t)&tss;
	struct dtr gdtr = { sizeof(gdt) - 1, (uint64_t)gdt };
	struct dtr idtr = { sizeof(idt) - 1, (uint64_t)idt };
	unsigned int i;

	gdt[2] = 0x00af9b000000ffffull; /* 0x10 kernel code, 64-bit */
	gdt[3] = 0x00cf93000000ffffull; /* 0x18 kernel data */
	gdt[4] = 0x00cffb000000ffffull; /* 0x23 user code, 32-bit */
	gdt[5] = 0x00cff3000000ffffull; /* 0x2b user data */
	gdt[6] = 0x00affb000000ffffull; /* 0x33 user code, 64-bit */
	tss.rsp[0] = (uint64_t)(kernel_trap_stack + sizeof(kernel_trap_stack));
	tss.iomap_base = sizeof(tss);
	gdt[8] = (sizeof(tss) - 1) | ((tss_base & 0xffffff) << 16) | (0x89ull << 40) |
		 ((tss_base >> 24) & 0xff) << 56;
	gdt[9] = tss_base >> 32;

	for (i = 0; i < 32; i++)
		set_gate(i, trap_stub_table[i], 0);
	/* #BP is reachable from user mode: int3 is how user code returns to the kernel. */
	set_gate(3, trap_stub_table[3], 3);

	__asm__ volatile("lgdt %0" : : "m"(gdtr));
	__asm__ volatile("lidt %0" : : "m"(idtr));
	/* Reload CS through a far return, then the data segments and TR. */
	__asm__ volatile("pushq %0\n\tleaq 1f(%%rip), %%rax\n\tpushq %%rax\n\tlretq\n1:\n\t"
			 "movw %1, %%ax\n\tmovw %%ax, %%ds\n\tmovw %%ax, %%es\n\tmovw %%ax, %%ss\n\t"
			 "movw %2, %%ax\n\tltr %%ax"
			 : : "i"(KERNEL_CS), "i"(KERNEL_DS), "i"(TSS_SEL) : "rax", "memory");
}
