/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control API server: HTTP/1.1 with JSON bodies on a UNIX socket (Firecracker's --api-sock),
 * served by libmicrohttpd with a thread per connection, where the backend's handler runs (vmm/control.h):
 * the VM's threads never wait for the API, and a slow or stalled client does not stop the others (idle
 * connections are closed, and so are those that take longer than the request time limit).
 */
#ifndef KILN_API_SERVER_H
#define KILN_API_SERVER_H

#include <stddef.h>

#include "api/routes.h"

struct api_server;

struct api_server_options {
	unsigned int idle_timeout_s;  /* close a connection that sends nothing this long; 0: 30 s */
	unsigned int max_connections; /* connections served at once, more wait in the backlog; 0: 128 */
	/*
	 * A connection must deliver a complete request (headers and body) within this many ms of being
	 * accepted or of its previous answer, else it is cut, however steadily it trickles bytes; the
	 * backend's work on a request does not count. 0: 10000 ms.
	 */
	unsigned int request_timeout_ms;
};

/*
 * Serve the API on the UNIX socket `socket_path` (at most 107 bytes), calling `handle` with `ctx` from the
 * server's threads. The socket is created with mode 0600; a stale socket file at the path (one nobody
 * listens on) is replaced, anything else there is an error (-EADDRINUSE when a server answers on it,
 * -EEXIST when it is not a socket). `opts` may be NULL for the defaults. The server's threads block all
 * signals. Returns 0 with `*out` set, or -errno with a message in `err` (`err_size` bytes).
 */
int api_server_start(struct api_server **out, const char *socket_path, const struct api_server_options *opts,
		     ctl_handler_fn handle, void *ctx, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/*
 * Stop serving: waits for a request in progress (and its backend call) to finish, closes the
 * connections, removes the socket file and frees `srv`. NULL is a no-op.
 */
void api_server_stop(struct api_server *srv);

#endif
