/* SPDX-License-Identifier: MIT */
/*
 * A small client for a kiln (or Firecracker) API socket: one HTTP/1.1 request over a UNIX socket with
 * libcurl (CURLOPT_UNIX_SOCKET_PATH), for the `kiln` verbs that drive a running VM (pause, resume,
 * snapshot, status...). Synchronous; one connection per request.
 */
#ifndef KILN_API_CLIENT_H
#define KILN_API_CLIENT_H

#include <stddef.h>

/* Longest answer body kept, in bytes (the API's answers are small JSON). */
#define API_CLIENT_MAX_BODY (1u << 20)

/*
 * Send `method` ("GET", "PUT", "PATCH") to `path` ("/vm") on the API socket `socket_path`, with the
 * JSON `json` as body (NULL: none). On success returns 0 with the HTTP status in *status and the
 * answer body in *body (malloc'd, NUL-terminated, "" when empty; the caller frees; `body` may be NULL
 * to drop it). `timeout_ms` bounds the whole request (0: 60 s). Returns -errno with a message in `err`
 * when no answer came: -ENOENT / -ECONNREFUSED (no server), -ETIMEDOUT, -EPROTO, -ENOMEM.
 */
int api_client_request(const char *socket_path, const char *method, const char *path, const char *json,
		       long timeout_ms, long *status, char **body, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* The fault_message of an error answer's JSON body, or the body itself; into `out` (`size` bytes). */
const char *api_client_fault(const char *body, char *out, size_t size);

#endif
