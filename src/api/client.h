/* SPDX-License-Identifier: MIT */
/*
 * A client for a kiln (or Firecracker) control API socket: one HTTP/1.1 request over a UNIX socket, with
 * libcurl (CURLOPT_UNIX_SOCKET_PATH). What the `kiln pause|resume|status|snapshot|...` verbs are made
 * of; the server side is src/api/server.c. One connection per request, nothing kept between calls.
 */
#ifndef KILN_API_CLIENT_H
#define KILN_API_CLIENT_H

#include <stddef.h>

/* Largest answer body kept, in bytes: a longer one is an error (-EMSGSIZE). */
#define API_CLIENT_MAX_BODY (1u << 20)

/* An answer. Free with api_client_response_free(). */
struct api_client_response {
	long status; /* HTTP status code (204, 400...) */
	char *body;  /* the body, NUL-terminated (malloc'd; "" when there was none) */
	size_t len;  /* bytes in `body` without the NUL */
};

/*
 * Send `method` ("GET", "PUT", "PATCH") for `path` ("/vm", "/actions"...) to the API served on the
 * UNIX socket `sock_path`, with `json_body` (NULL: none) as an application/json body, and wait for the
 * answer (no overall timeout: a snapshot may take long; connecting gives up after 5 s). Returns 0 when
 * an answer came, whatever its status (check resp->status), or -errno when none did, with a message in
 * `err` (`err_size` bytes): -ENOENT / -ECONNREFUSED when nothing serves the socket, -ENAMETOOLONG,
 * -EMSGSIZE (answer over API_CLIENT_MAX_BODY), -ENOMEM, -EIO (any other transfer error).
 * Thread-safe with libcurl >= 7.84 (curl_global_init is then thread-safe); called from one thread in kiln.
 */
int api_client_request(const char *sock_path, const char *method, const char *path, const char *json_body,
		       struct api_client_response *resp, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Free the body; `resp` is zeroed. */
void api_client_response_free(struct api_client_response *resp);

/*
 * The reason of an error answer for a message: the body's "fault_message" when it is a JSON object
 * with one (Firecracker's and kiln's error bodies), else the body itself (printable ASCII, at most
 * `size` - 1 bytes), else "HTTP <status>". Writes into `buf` and returns it.
 */
const char *api_client_fault(const struct api_client_response *resp, char *buf, size_t size);

#endif
