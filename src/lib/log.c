// SPDX-License-Identifier: MIT
/* Logging to stderr. The console may be the same terminal in raw mode, so every line ends in \r\n there. */
#include "lib/log.h"

#include <stdio.h>
#include <unistd.h>

static enum log_level current_level = LOG_WARN;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

uint64_t time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[LOG_ERROR] = "error: ",
		[LOG_WARN] = "warning: ",
		[LOG_INFO] = "",
		[LOG_DEBUG] = "debug: ",
	};
	char buf[1024];
	va_list ap;
	int n, m;

	if (level > current_level)
		return;
	n = snprintf(buf, sizeof(buf), "kiln: %s", prefix[level]);
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 3, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	/* A terminal in raw mode does not turn \n into \r\n. */
	if (isatty(STDERR_FILENO))
		buf[n++] = '\r';
	buf[n++] = '\n';
	/* One write() per line keeps lines from different threads whole. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

bool ratelimit_ok(struct ratelimit *rl)
{
	uint64_t now = time_now_ns();

	if (now - rl->window_start_ns > rl->interval_ns) {
		if (rl->missed)
			log_msg(LOG_WARN, "%u messages suppressed", rl->missed);
		rl->window_start_ns = now;
		rl->printed = 0;
		rl->missed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->missed++;
	return false;
}

void errmsg_set(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}
