// SPDX-License-Identifier: MIT
/*
 * libmicrohttpd, loaded when the API server first starts instead of at exec. Debian's libmicrohttpd links
 * GnuTLS for HTTPS, and GnuTLS brings eight more libraries (p11-kit, nettle, hogweed, gmp, tasn1, idn2,
 * unistring, ffi): linked, they cost every `kiln run` about 2 ms of start-up and 2.3 MiB of RSS, though
 * kiln serves plain HTTP on a UNIX socket and only with --api-sock (docs/design.md, "The VMM process:
 * libraries and start-up"). So the few MHD_ functions server.c calls are defined here, each resolving the
 * real one with dlopen/dlsym: the library is mapped by the first MHD_start_daemon (before the guest runs,
 * hence before any sandbox) and never unloaded (RTLD_NODELETE). dlopen of a loaded library only looks it
 * up, so no handle is kept in a global: the dynamic linker holds the state.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "lib/log.h"

/* Debian 12's libmicrohttpd12; the ABI server.c is compiled against (microhttpd.h). */
#define MHD_SONAME "libmicrohttpd.so.12"

/* `name` in libmicrohttpd into `*slot` (a function pointer), loading the library on first use: 0, or -1 logged. */
static int mhd_sym(const char *name, void *slot)
{
	void *h = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	void *f;

	if (!h) {
		pr_err("cannot load %s (Debian package libmicrohttpd12): %s", MHD_SONAME, dlerror());
		return -1;
	}
	f = dlsym(h, name);
	dlclose(h); /* only drops the reference this call took: RTLD_NODELETE keeps the library mapped */
	if (!f) {
		pr_err("%s lacks %s", MHD_SONAME, name);
		return -1;
	}
	memcpy(slot, &f, sizeof(f)); /* object to function pointer: POSIX dlsym's documented use */
	return 0;
}

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,
				    MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	struct MHD_Daemon *(*fn)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *, MHD_AccessHandlerCallback,
				 void *, va_list);
	struct MHD_Daemon *d;
	va_list ap;

	if (mhd_sym("MHD_start_daemon_va", &fn))
		return NULL;
	va_start(ap, dh_cls);
	d = fn(flags, port, apc, apc_cls, dh, dh_cls, ap);
	va_end(ap);
	return d;
}

void MHD_stop_daemon(struct MHD_Daemon *daemon)
{
	void (*fn)(struct MHD_Daemon *);

	if (!mhd_sym("MHD_stop_daemon", &fn))
		fn(daemon);
}

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind, const char *key)
{
	const char *(*fn)(struct MHD_Connection *, enum MHD_ValueKind, const char *);

	return mhd_sym("MHD_lookup_connection_value", &fn) ? NULL : fn(connection, kind, key);
}

int MHD_get_connection_values(struct MHD_Connection *connection, enum MHD_ValueKind kind,
			      MHD_KeyValueIterator iterator, void *iterator_cls)
{
	int (*fn)(struct MHD_Connection *, enum MHD_ValueKind, MHD_KeyValueIterator, void *);

	return mhd_sym("MHD_get_connection_values", &fn) ? -1 : fn(connection, kind, iterator, iterator_cls);
}

/* Only the info types that take no further argument are forwarded (server.c asks for the fd and the socket context). */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *connection,
							enum MHD_ConnectionInfoType info_type, ...)
{
	const union MHD_ConnectionInfo *(*fn)(struct MHD_Connection *, enum MHD_ConnectionInfoType, ...);

	return mhd_sym("MHD_get_connection_info", &fn) ? NULL : fn(connection, info_type);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
				   struct MHD_Response *response)
{
	enum MHD_Result (*fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);

	return mhd_sym("MHD_queue_response", &fn) ? MHD_NO : fn(connection, status_code, response);
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *(*fn)(size_t, void *, enum MHD_ResponseMemoryMode);

	return mhd_sym("MHD_create_response_from_buffer", &fn) ? NULL : fn(size, buffer, mode);
}

void MHD_destroy_response(struct MHD_Response *response)
{
	void (*fn)(struct MHD_Response *);

	if (!mhd_sym("MHD_destroy_response", &fn))
		fn(response);
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header, const char *content)
{
	enum MHD_Result (*fn)(struct MHD_Response *, const char *, const char *);

	return mhd_sym("MHD_add_response_header", &fn) ? MHD_NO : fn(response, header, content);
}
