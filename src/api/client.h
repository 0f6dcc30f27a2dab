/* SPDX-License-Identifier: MIT */
/*
 * A client for a kiln (or Firecracker) control API socket: one HTTP/1.1 request over a UNIX socket, written
 * by hand (RFC 9112) so that the VMM process links no HTTP library: the request line, a few headers and a
 * Content-Length body out; the status line, headers and a Content-Length, chunked or read-to-close body
 * back, every size bounded. What the `kiln pause|resume|status|snapshot|...` verbs are made of; the server
 * side is src/api/server.c. One connection per request ("Connection: close"), nothing kept between calls.
 */
#ifndef KILN_API_CLIENT_H
#define KILN_API_CLIENT_H

#include <stddef.h>

/* Largest answer body kept, in bytes: a longer one is an error (-EMSGSIZE). */
#define API_CLIENT_MAX_BODY (1u << 20)
/* Largest status line plus headers (and chunked trailers) of an answer, in bytes (-EMSGSIZE beyond). */
#define API_CLIENT_MAX_HEAD (16u << 10)

/* An answer. Free with api_client_response_free(). */
struct api_client_response {
	long status; /* HTTP status code (204, 400...) */
	char *body;  /* the body, NUL-terminated (malloc'd; "" when there was none) */
	size_t len;  /* bytes in `body` without the NUL */
};

/* How long one exchange may wait, in milliseconds; -1 waits for ever. */
struct api_client_timeouts {
	int send_ms;   /* connecting, and each wait to write more of the request */
	int answer_ms; /* from the request sent to the answer's first byte (the server's work: a snapshot...) */
	int idle_ms;   /* each later wait for more of the answer */
};

/*
 * Send `method` ("GET", "PUT", "PATCH") for `path` ("/vm", "/actions"...) to the API served on the
 * UNIX socket `sock_path`, with `json_body` (NULL: none) as an application/json body, and wait for the
 * answer. Timeouts: connecting and sending 5 s each; the answer's first byte 10 minutes (a snapshot of a
 * large guest may take long); 30 s between later bytes. Returns 0 when an answer came, whatever its status
 * (check resp->status), or -errno when none did, with a message in `err` (`err_size` bytes): -ENOENT /
 * -ECONNREFUSED when nothing serves the socket, -ENAMETOOLONG, -EINVAL (a method or path that cannot go
 * on a request line), -ETIMEDOUT, -EMSGSIZE (answer over API_CLIENT_MAX_BODY or API_CLIENT_MAX_HEAD),
 * -ENOMEM, -EPROTO (a malformed answer), -EIO (the connection failed or closed early). Thread-safe.
 */
int api_client_request(const char *sock_path, const char *method, const char *path, const char *json_body,
		       struct api_client_response *resp, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * The exchange itself over `fd`, a connected stream socket (left open; the caller closes it): writes the
 * request, then reads the answer until its body ends (or the peer closes, for a body without a length).
 * `peer` names the other end in messages; `t` bounds the waits. Returns and errors as api_client_request.
 * Separate for tests (a socketpair) and for callers that connected the socket themselves.
 */
int api_client_exchange(int fd, const char *peer, const struct api_client_timeouts *t, const char *method,
			const char *path, const char *json_body, struct api_client_response *resp, char *err,
			size_t err_size) __attribute__((warn_unused_result));

/* Free the body; `resp` is zeroed. */
void api_client_response_free(struct api_client_response *resp);

/*
 * The reason of an error answer for a message: the body's "fault_message" when it is a JSON object
 * with one (Firecracker's and kiln's error bodies), else the body itself (printable ASCII, at most
 * `size` - 1 bytes), else "HTTP <status>". Writes into `buf` and returns it.
 */
const char *api_client_fault(const struct api_client_response *resp, char *buf, size_t size);

#endif
