/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control API without HTTP: (method, path, body bytes) -> a typed request (vmm/control.h) or an
 * error, then the request -> the VM's handler (ctl_handler_fn) -> a status and a JSON body.
 * Firecracker's API (src/firecracker/swagger/firecracker.yaml, v1.17) for what kiln does, plus kiln's
 * additions; docs/api.yaml describes every endpoint. src/api/server.c only moves bytes.
 */
#ifndef KILN_API_ROUTES_H
#define KILN_API_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/control.h"

/* Largest request body, in bytes: Firecracker's default (--http-api-max-payload-size, 51200). */
#define API_MAX_BODY 51200
/* Room for a fault message from the backend, in bytes with the NUL. */
#define API_ERR_SIZE CTL_ERR_SIZE

/* An answer: status, optional JSON body and headers. Free with api_response_free(). */
struct api_response {
	unsigned int status;     /* HTTP status code */
	char *body;              /* JSON text (malloc'd), or NULL for none (204) */
	char allow[32];          /* 405: the Allow header's value ("GET, PUT, PATCH"); else empty */
	const char *deprecation; /* non-NULL: send "Deprecation: true" (Firecracker does) */
};

/*
 * Parse a request. `method` is the HTTP method ("GET", "PUT", "PATCH"; others answer 405), `path` the
 * URL path without query, `body` the `len` bytes of the body (need not be NUL-terminated; may be NULL
 * when `len` is 0 or when `len` > API_MAX_BODY, which answers 413 without reading it). Returns 0 with
 * `req` filled, or -EINVAL with the error answer in `resp` (400, 404, 405 or 413, with a fault_message
 * naming the field).
 */
int api_parse_request(const char *method, const char *path, const char *body, size_t len, struct ctl_request *req,
		      struct api_response *resp) __attribute__((warn_unused_result));

/* Free the strings a parsed request owns. Safe on a zeroed request. */
void api_request_free(struct ctl_request *req);

/*
 * Carry out a parsed request through `handle` (with `ctx`; NULL: a backend that implements nothing) and
 * write the answer: 204 for actions and configuration, 200 with JSON for GETs and PUT /vm/clone, 400/500
 * with {"fault_message": ...} for errors (vmm/control.h says which errno is whose fault).
 */
void api_dispatch(ctl_handler_fn handle, void *ctx, const struct ctl_request *req, struct api_response *resp);

/* api_parse_request then api_dispatch: what the HTTP server calls for every request. */
void api_handle(ctl_handler_fn handle, void *ctx, const char *method, const char *path, const char *body, size_t len,
		struct api_response *resp);

/* An error answer: `status` with {"fault_message": <message>}. Replaces what `resp` held. */
void api_response_error(struct api_response *resp, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Free the body; `resp` is zeroed and can be reused. */
void api_response_free(struct api_response *resp);

/* "Not started", "Running" or "Paused". */
const char *api_vm_state_name(enum ctl_vm_state state);

#endif
