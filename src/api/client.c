// SPDX-License-Identifier: MIT
/*
 * The control API's client side: HTTP/1.1 (RFC 9112) over a UNIX socket, by hand. kiln's verbs need one
 * request and one answer per connection, so this is the whole protocol they use: no keep-alive, no
 * redirects, no proxies, no TLS. Written here rather than linked (libcurl) because the process that runs a
 * guest is the same binary: libcurl brought 30 shared libraries (OpenSSL, Kerberos, LDAP, libssh2...) into
 * it, and milliseconds of relocation to every start. The answer is untrusted input: every line, header
 * block, chunk size and body is bounded, every wait has a timeout, and anything malformed is an error.
 */
#include "api/client.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

static const struct api_client_timeouts default_timeouts = {
	.send_ms = 5000,
	.answer_ms = 10 * 60 * 1000,
	.idle_ms = 30 * 1000,
};

/* The answer as it is read: a buffer over the socket, and what has been used of the header budget. */
struct reader {
	int fd;
	const char *peer;
	const struct api_client_timeouts *t;
	char *err;
	size_t err_size;
	bool started; /* a byte of the answer arrived: later waits use idle_ms */
	size_t head_used;
	size_t pos, len;
	char buf[4096];
	char line[API_CLIENT_MAX_HEAD + 1];
};

/* The body as it arrives. */
struct body_buf {
	char *data;
	size_t len, cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait up to `ms` (-1: for ever) for `events` on `fd`: 0, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int ms)
{
	int64_t deadline = ms < 0 ? 0 : now_ms() + ms;
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - now_ms();
		int n = poll(&p, 1, ms < 0 ? -1 : left > 0 ? (int)left : 0);

		if (n > 0)
			return 0; /* readable, writable, or an error/hang-up the next call reports */
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *data, size_t len, int ms)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int ret;

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = wait_fd(fd, POLLOUT, ms);
		if (ret)
			return ret;
	}
	return 0;
}

/* More bytes into r->buf when it is empty: >0 bytes available, 0 at the end of the stream, or -errno. */
static int reader_fill(struct reader *r)
{
	if (r->pos < r->len)
		return (int)(r->len - r->pos);
	for (;;) {
		ssize_t n = recv(r->fd, r->buf, sizeof(r->buf), MSG_DONTWAIT);
		int ret;

		if (n >= 0) {
			r->pos = 0;
			r->len = (size_t)n;
			r->started |= n > 0;
			return (int)n;
		}
		if (errno != EAGAIN && errno != EINTR) {
			ret = -errno;
			errmsg_set(r->err, r->err_size, "%s: reading the answer: %s", r->peer, strerror(-ret));
			return ret == -ECONNRESET ? -EIO : ret;
		}
		ret = wait_fd(r->fd, POLLIN, r->started ? r->t->idle_ms : r->t->answer_ms);
		if (ret) {
			errmsg_set(r->err, r->err_size, "%s: %s the answer: %s", r->peer,
				   r->started ? "waiting for the rest of" : "waiting for", strerror(-ret));
			return ret;
		}
	}
}

static int protocol_error(struct reader *r, const char *what)
{
	errmsg_set(r->err, r->err_size, "%s: malformed answer: %s", r->peer, what);
	return -EPROTO;
}

static int early_end(struct reader *r)
{
	errmsg_set(r->err, r->err_size, "%s: the connection closed before the answer ended", r->peer);
	return -EIO;
}

/*
 * One line of the head (status line, header, chunk size, trailer) into r->line without its CRLF (a bare
 * LF is accepted, RFC 9112 s2.2). Every such line counts against API_CLIENT_MAX_HEAD.
 */
static int reader_line(struct reader *r)
{
	size_t n = 0;

	for (;;) {
		int avail = reader_fill(r);
		char *nl;
		size_t take;

		if (avail < 0)
			return avail;
		if (avail == 0)
			return early_end(r);
		nl = memchr(r->buf + r->pos, '\n', (size_t)avail);
		take = nl ? (size_t)(nl - (r->buf + r->pos)) + 1 : (size_t)avail;
		if (take > API_CLIENT_MAX_HEAD - r->head_used) {
			errmsg_set(r->err, r->err_size, "%s: the answer's head is larger than %u bytes", r->peer,
				   API_CLIENT_MAX_HEAD);
			return -EMSGSIZE;
		}
		memcpy(r->line + n, r->buf + r->pos, take);
		n += take;
		r->pos += take;
		r->head_used += take;
		if (nl)
			break;
	}
	n--; /* the LF */
	if (n && r->line[n - 1] == '\r')
		n--;
	r->line[n] = '\0';
	if (memchr(r->line, '\0', n) || memchr(r->line, '\r', n))
		return protocol_error(r, "a NUL or a bare CR in the head");
	return 0;
}

static int too_large(struct reader *r)
{
	errmsg_set(r->err, r->err_size, "%s: the answer is larger than %u bytes", r->peer, API_CLIENT_MAX_BODY);
	return -EMSGSIZE;
}

static int body_append(struct reader *r, struct body_buf *b, const char *data, size_t n)
{
	if (n > API_CLIENT_MAX_BODY - b->len)
		return too_large(r);
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p) {
			errmsg_set(r->err, r->err_size, "out of memory");
			return -ENOMEM;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* `n` bytes of body (SIZE_MAX: up to the end of the stream) into `b`. */
static int read_body(struct reader *r, struct body_buf *b, size_t n)
{
	while (n) {
		int avail = reader_fill(r);
		size_t take;
		int ret;

		if (avail < 0)
			return avail;
		if (avail == 0)
			return n == SIZE_MAX ? 0 : early_end(r);
		take = (size_t)avail < n ? (size_t)avail : n;
		ret = body_append(r, b, r->buf + r->pos, take);
		if (ret)
			return ret;
		r->pos += take;
		if (n != SIZE_MAX)
			n -= take;
	}
	return 0;
}

/* Decimal digits only, at most `max`: the value, or -1. */
static long long parse_decimal(const char *s, size_t len, long long max)
{
	long long v = 0;
	size_t i;

	if (!len)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (max - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* RFC 9112 s7.1: chunk-size [chunk-ext] CRLF, the data, CRLF; a zero size, then trailers to an empty line. */
static int read_chunked(struct reader *r, struct body_buf *b)
{
	for (;;) {
		unsigned long long size = 0;
		const char *p;
		int ret = reader_line(r);

		if (ret)
			return ret;
		for (p = r->line; *p; p++) {
			int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
				: *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;

			if (d < 0)
				break;
			if (size > API_CLIENT_MAX_BODY)
				return too_large(r);
			size = size * 16 + (unsigned)d;
		}
		if (p == r->line || (*p && *p != ';' && *p != ' ' && *p != '\t'))
			return protocol_error(r, "a chunk size is not hexadecimal");
		if (size == 0)
			break;
		if (size > API_CLIENT_MAX_BODY - b->len)
			return too_large(r);
		ret = read_body(r, b, (size_t)size);
		ret = ret ?: reader_line(r);
		if (ret)
			return ret;
		if (r->line[0])
			return protocol_error(r, "a chunk's data is longer than its size");
	}
	for (;;) { /* trailer fields, ignored */
		int ret = reader_line(r);

		if (ret)
			return ret;
		if (!r->line[0])
			return 0;
	}
}

/* The framing the head announced (RFC 9112 s6.3). */
struct answer_head {
	long status;
	bool chunked;
	long long content_length; /* -1: none given */
};

/* A status line, "HTTP/1.x NNN reason" (RFC 9112 s4). */
static int parse_status_line(struct reader *r, struct answer_head *h)
{
	const char *l = r->line;

	if (strncmp(l, "HTTP/1.", 7) || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    parse_decimal(l + 9, 3, 999) < 100 || (l[12] != ' ' && l[12] != '\0'))
		return protocol_error(r, "the status line is not \"HTTP/1.x NNN ...\"");
	h->status = (long)parse_decimal(l + 9, 3, 999);
	return 0;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One "name: value" header line (RFC 9112 s5); the framing ones are kept, the rest ignored. */
static int parse_header(struct reader *r, struct answer_head *h)
{
	char *colon = strchr(r->line, ':'), *v, *end;
	size_t name_len;
	long long n;

	if (r->line[0] == ' ' || r->line[0] == '\t')
		return protocol_error(r, "a folded header line");
	if (!colon || colon == r->line)
		return protocol_error(r, "a header line without a name");
	name_len = (size_t)(colon - r->line);
	for (size_t i = 0; i < name_len; i++)
		if (!is_tchar(r->line[i]))
			return protocol_error(r, "a header name with a character outside a token");
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (name_len == 14 && !strncasecmp(r->line, "Content-Length", 14)) {
		n = parse_decimal(v, (size_t)(end - v), LLONG_MAX);
		if (n < 0)
			return protocol_error(r, "Content-Length is not a decimal number");
		if (h->content_length >= 0 && h->content_length != n)
			return protocol_error(r, "two different Content-Length headers");
		h->content_length = n;
	} else if (name_len == 17 && !strncasecmp(r->line, "Transfer-Encoding", 17)) {
		if (strcasecmp(v, "chunked") || h->chunked)
			return protocol_error(r, "a transfer coding other than a single \"chunked\"");
		h->chunked = true;
	}
	return 0;
}

/* The answer's head, after any 1xx interim answers (RFC 9110 s15.2), into `h`. */
static int read_head(struct reader *r, struct answer_head *h)
{
	for (;;) {
		int ret;

		*h = (struct answer_head){ .content_length = -1 };
		ret = reader_line(r);
		ret = ret ?: parse_status_line(r, h);
		while (!ret) {
			ret = reader_line(r);
			if (ret || !r->line[0])
				break;
			ret = parse_header(r, h);
		}
		if (ret)
			return ret;
		if (h->status == 101)
			return protocol_error(r, "101 Switching Protocols to a request that asked for none");
		if (h->status >= 200)
			return 0;
	}
}

/* The request line and headers; NULL with -errno in *ret when the method or path cannot be sent. */
static char *request_head(const char *method, const char *path, const char *json_body, char *err, size_t err_size,
			  int *ret)
{
	char *head;
	int n;

	*ret = -EINVAL;
	if (!method[0] || strlen(method) > 16 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method)) {
		errmsg_set(err, err_size, "%s: a method is 1..16 capital letters", method);
		return NULL;
	}
	if (path[0] != '/') {
		errmsg_set(err, err_size, "%s: an API path starts with '/'", path);
		return NULL;
	}
	for (const char *p = path; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			errmsg_set(err, err_size, "an API path holds no spaces or control characters");
			return NULL;
		}
	}
	if (json_body)
		n = asprintf(&head,
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     method, path, strlen(json_body));
	else
		n = asprintf(&head, "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
				    "Connection: close\r\n\r\n", method, path);
	if (n < 0) {
		errmsg_set(err, err_size, "out of memory");
		*ret = -ENOMEM;
		return NULL;
	}
	*ret = 0;
	return head;
}

int api_client_exchange(int fd, const char *peer, const struct api_client_timeouts *t, const char *method,
			const char *path, const char *json_body, struct api_client_response *resp, char *err,
			size_t err_size)
{
	struct answer_head h;
	struct body_buf b = { 0 };
	struct reader *r = NULL;
	int ret, send_ret;
	char *head;

	memset(resp, 0, sizeof(*resp));
	head = request_head(method, path, json_body, err, err_size, &ret);
	if (!head)
		return ret;
	send_ret = send_all(fd, head, strlen(head), t->send_ms);
	if (!send_ret && json_body)
		send_ret = send_all(fd, json_body, strlen(json_body), t->send_ms);
	free(head);
	/* A server may answer (413...) and close before it read the whole request: its answer still counts. */
	if (send_ret && send_ret != -EPIPE && send_ret != -ECONNRESET)
		goto send_failed;
	r = malloc(sizeof(*r));
	if (!r) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	*r = (struct reader){ .fd = fd, .peer = peer, .t = t, .err = err, .err_size = err_size };
	ret = read_head(r, &h);
	if (ret)
		goto out;
	if (!strcmp(method, "HEAD") || h.status == 204 || h.status == 304)
		ret = 0;
	else if (h.chunked)
		ret = read_chunked(r, &b);
	else if (h.content_length > (long long)API_CLIENT_MAX_BODY)
		ret = too_large(r);
	else
		ret = read_body(r, &b, h.content_length >= 0 ? (size_t)h.content_length : SIZE_MAX);
	if (ret)
		goto out;
	if (!b.data && !(b.data = strdup(""))) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	resp->status = h.status;
	resp->body = b.data;
	resp->len = b.len;
	b.data = NULL;
out:
	if (ret && send_ret)
		goto send_failed;
	free(r);
	free(b.data);
	return ret;
send_failed:
	free(r);
	free(b.data);
	errmsg_set(err, err_size, "%s: sending the request: %s", peer, strerror(-send_ret));
	return send_ret == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
}

int api_client_request(const char *sock_path, const char *method, const char *path, const char *json_body,
		       struct api_client_response *resp, char *err, size_t err_size)
{
	const struct timeval tv = { .tv_sec = default_timeouts.send_ms / 1000 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	memset(resp, 0, sizeof(*resp));
	if (!sock_path[0] || strlen(sock_path) >= sizeof(sa.sun_path)) {
		errmsg_set(err, err_size, "%s: a socket path is 1..%zu bytes", sock_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, sock_path, strlen(sock_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "socket: %s", strerror(errno));
		return ret;
	}
	/* A UNIX connect blocks only on a full backlog, and then for SO_SNDTIMEO at most (EAGAIN). */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		errmsg_set(err, err_size, "cannot connect to %s: %s", sock_path, strerror(-ret));
		close(fd);
		return ret;
	}
	ret = api_client_exchange(fd, sock_path, &default_timeouts, method, path, json_body, resp, err, err_size);
	close(fd);
	return ret;
}

void api_client_response_free(struct api_client_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

const char *api_client_fault(const struct api_client_response *resp, char *buf, size_t size)
{
	json_t *root = resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(root, "fault_message"));
	size_t i;

	if (msg) {
		snprintf(buf, size, "%s", msg);
	} else if (resp->body && resp->len) {
		for (i = 0; i < resp->len && i + 1 < size; i++)
			buf[i] = ((unsigned char)resp->body[i] < 0x20 || (unsigned char)resp->body[i] >= 0x7f) ? ' '
												       : resp->body[i];
		buf[i] = '\0';
	} else {
		snprintf(buf, size, "HTTP %ld", resp->status);
	}
	json_decref(root);
	return buf;
}
