/* SPDX-License-Identifier: MIT */
#ifndef KILN_LIB_LOG_H
#define KILN_LIB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* Messages at or below this level reach stderr. Set once by main() before threads start. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* printf-style message to stderr, prefixed "kiln: " (and "warning: "/"error: "). Thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limit for messages caused by the guest: at most `burst` messages per `interval_ns`.
 * One per device or per event class; the guest must not be able to flood the host's log.
 */
struct ratelimit {
	uint64_t interval_ns;
	uint32_t burst;
	uint32_t printed;
	uint32_t missed;
	uint64_t window_start_ns;
};

#define RATELIMIT_INIT(interval_ms, n) { .interval_ns = (uint64_t)(interval_ms) * 1000000ull, .burst = (n) }

/* True when a message may be printed now. Not thread-safe: callers hold their device lock. */
bool ratelimit_ok(struct ratelimit *rl);

#define pr_warn_ratelimited(rl, ...)                \
	do {                                        \
		if (ratelimit_ok(rl))               \
			log_msg(LOG_WARN, __VA_ARGS__); \
	} while (0)

/*
 * Format an error message into a caller's buffer (`err`, `err_size` bytes; either may be 0/NULL).
 * Parsers and loaders report "why" this way and leave printing to their caller.
 */
void errmsg_set(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t time_now_ns(void);

#endif
