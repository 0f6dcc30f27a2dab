// SPDX-License-Identifier: MIT
/*
 * The control API's HTTP side: a UNIX socket kiln creates itself, handed to libmicrohttpd
 * (MHD_OPTION_LISTEN_SOCKET) with a thread per connection. This file only moves bytes: a request's
 * method, path and body go to api_handle() (src/api/routes.c) and its answer comes back as status, JSON
 * and headers.
 *
 * Why a thread per connection rather than one MHD thread: some calls wait for the VM (a pause waits
 * for every vCPU to leave its exit, which a slow device can make long), and GET / and the other calls
 * must still answer meanwhile. The backend serialises what must not run at once (the instance's lock,
 * the VM's vm_control_begin); the threads are bounded by the connection limit (128 by default), so a
 * client cannot make kiln start threads without bound. A client that stalls mid-request holds only its
 * own connection until the idle timeout closes it, and one that trickles bytes until the request time
 * limit does (a watchdog thread: MHD 0.9.75 has only the idle timeout); bodies are bounded by
 * API_MAX_BODY and headers by MHD's per-connection memory limit.
 */
#include "api/server.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define API_DEFAULT_IDLE_TIMEOUT_S 30
#define API_DEFAULT_REQUEST_TIMEOUT_MS 10000
/*
 * Connections served at once, each on a thread of its own. 128: a slowloris of 100 leaves room for real
 * callers, while the cost stays bounded: per connection, MHD's 32 KiB memory pool and the few stack pages
 * a thread touches (its 8 MiB stack is reserved, not resident), about 5 MiB at worst, and 128 threads are
 * far below any RLIMIT_NPROC kiln meets. The request time limit frees a slow client's slot.
 */
#define API_DEFAULT_MAX_CONNECTIONS 128
#define API_LISTEN_BACKLOG 128
/* Beyond this a target and its version cannot be one request line (MHD's connection memory is 32 KiB). */
#define API_MAX_REQUEST_LINE (64 * 1024)

/* A connection MHD accepted, as the watchdog sees it. */
struct api_conn {
	struct api_conn *prev, *next;
	int fd;             /* the client socket, valid while listed (MHD closes it after NOTIFY_CLOSED) */
	uint64_t deadline;  /* CLOCK_MONOTONIC ns by which a complete request must be in; 0: a request runs */
	bool cut;           /* shut down for missing its deadline */
};

struct api_server {
	struct MHD_Daemon *mhd;
	char *socket_path;
	ctl_handler_fn handle;
	void *ctx;
	uint64_t request_timeout_ns;

	/* The watchdog: cuts connections that do not deliver a request in time. */
	pthread_t watchdog;
	bool watchdog_started;
	pthread_mutex_t lock; /* guards conns and stopping */
	pthread_cond_t wake;  /* CLOCK_MONOTONIC: a deadline changed or the server stops */
	struct api_conn *conns;
	bool stopping;
};

/* One request being received: its body so far. */
struct api_upload {
	char *body;
	size_t len;     /* bytes kept in `body` */
	size_t cap;
	size_t total;   /* bytes announced or received, kept or not */
	bool too_large; /* more than API_MAX_BODY: the rest is read and dropped */
	bool answered;  /* refused early (400, body too large) from the headers alone */
	bool started;   /* on_request has seen the headers */
	const char *raw_uri; /* the request line's target as MHD split it, before unescaping (NUL check) */
	size_t raw_uri_len;  /* strlen(raw_uri): shorter than the target when the target holds a NUL */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The watchdog's loop: sleep until the earliest deadline, then shut down (not close: MHD owns the fd)
 * every connection past its own. The connection's thread then sees end-of-file and MHD closes it, so a
 * client that trickles bytes, each within the idle timeout, still loses its connection at the limit.
 */
static void *watchdog_main(void *arg)
{
	struct api_server *srv = arg;

	pthread_mutex_lock(&srv->lock);
	while (!srv->stopping) {
		uint64_t now = now_ns(), next = UINT64_MAX;
		struct api_conn *c;

		for (c = srv->conns; c; c = c->next) {
			if (!c->deadline || c->cut)
				continue;
			if (c->deadline <= now) {
				shutdown(c->fd, SHUT_RDWR);
				c->cut = true;
				pr_debug("api: closing a connection that sent no complete request in %llu ms",
					 (unsigned long long)(srv->request_timeout_ns / 1000000));
			} else if (c->deadline < next) {
				next = c->deadline;
			}
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&srv->wake, &srv->lock);
		} else {
			struct timespec ts = { .tv_sec = (time_t)(next / 1000000000u),
					       .tv_nsec = (long)(next % 1000000000u) };

			pthread_cond_timedwait(&srv->wake, &srv->lock, &ts);
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Arm (`armed`: a request must be complete within the limit from now) or disarm the connection's deadline. */
static void conn_set_deadline(struct api_server *srv, struct MHD_Connection *conn, bool armed)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct api_conn *c = info ? info->socket_context : NULL;

	if (!c)
		return;
	pthread_mutex_lock(&srv->lock);
	c->deadline = armed ? now_ns() + srv->request_timeout_ns : 0;
	pthread_cond_signal(&srv->wake);
	pthread_mutex_unlock(&srv->lock);
}

/*
 * MHD's connection notifications: list a connection when it is accepted (its first request's deadline
 * starts then), unlist it when it closes. In thread-per-connection mode MHD notifies CLOSED before it
 * closes the socket, so a listed fd is always this connection's.
 */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct api_server *srv = cls;
	struct api_conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (!info || !(c = calloc(1, sizeof(*c))))
			return; /* unwatched: MHD's idle timeout still applies */
		c->fd = info->connect_fd;
		pthread_mutex_lock(&srv->lock);
		c->deadline = now_ns() + srv->request_timeout_ns;
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		pthread_cond_signal(&srv->wake);
		pthread_mutex_unlock(&srv->lock);
		*socket_context = c;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c) {
		pthread_mutex_lock(&srv->lock);
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		pthread_mutex_unlock(&srv->lock);
		free(c);
		*socket_context = NULL;
	}
}

static void mhd_log(void *cls __attribute__((unused)), const char *fmt, va_list ap)
{
	char buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	pr_debug("api: libmicrohttpd: %s", buf);
}

/* A client's string for the log: printable ASCII, at most `size` - 1 bytes (no terminal escapes). */
static const char *log_safe(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* Queue `resp` (consumed); `close` ends the connection after it (the rest of the stream is not trusted). */
static enum MHD_Result send_answer(struct MHD_Connection *conn, const char *method, const char *url,
				   struct api_response *resp, bool close)
{
	size_t len = resp->body ? strlen(resp->body) : 0;
	char m[16], u[128];
	struct MHD_Response *r;
	enum MHD_Result ret;

	log_safe(method, m, sizeof(m));
	log_safe(url, u, sizeof(u));
	if (resp->status >= 500)
		pr_warn("api: %s %s: %u %s", m, u, resp->status, resp->body ? resp->body : "");
	else if (resp->status >= 400)
		pr_info("api: %s %s: %u %s", m, u, resp->status, resp->body ? resp->body : "");
	else
		pr_debug("api: %s %s: %u", m, u, resp->status);
	if (resp->deprecation)
		pr_warn("api: %s", resp->deprecation);

	r = MHD_create_response_from_buffer(len, resp->body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		api_response_free(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* MHD frees it with the response */
	if ((len && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) ||
	    (resp->allow[0] && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow) != MHD_YES) ||
	    (resp->deprecation && MHD_add_response_header(r, "Deprecation", "true") != MHD_YES) ||
	    (close && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Keep up to API_MAX_BODY bytes of the body; count, and drop, the rest. */
static int upload_append(struct api_upload *up, const char *data, size_t n)
{
	if (up->too_large || n > API_MAX_BODY - up->len) {
		up->too_large = true;
		up->total = up->total > SIZE_MAX - n ? SIZE_MAX : up->total + n;
		free(up->body);
		up->body = NULL;
		up->len = up->cap = 0;
		return 0;
	}
	if (up->len + n > up->cap) {
		size_t cap = up->cap ? up->cap : 1024;
		char *p;

		while (cap < up->len + n)
			cap *= 2;
		if (cap > API_MAX_BODY)
			cap = API_MAX_BODY;
		p = realloc(up->body, cap);
		if (!p)
			return -ENOMEM;
		up->body = p;
		up->cap = cap;
	}
	memcpy(up->body + up->len, data, n);
	up->len += n;
	up->total = up->len;
	return 0;
}

/*
 * MHD calls this once per request, when the request line is in: the request's state starts here, with the
 * target as sent (still escaped, in MHD's connection buffer, which stays put while the request lives).
 */
static void *on_uri(void *cls __attribute__((unused)), const char *uri,
		    struct MHD_Connection *conn __attribute__((unused)))
{
	struct api_upload *up = calloc(1, sizeof(*up));

	if (up) {
		up->raw_uri = uri;
		up->raw_uri_len = strlen(uri);
	}
	return up;
}

/*
 * Does the request target hold a NUL? MHD cuts the request line in place: the target is followed by the
 * NUL that replaced the space before the version, then the version, so the target's bytes run up to
 * `version` - 1. A NUL inside the target makes the C string shorter than that (MHD then routes what comes
 * before the NUL: "/vm\0/config" would be "/vm"). Only a version within the same line counts: a library
 * that lays the line out otherwise is not second-guessed.
 */
static bool target_has_nul(const struct api_upload *up, const char *version)
{
	uintptr_t end = (uintptr_t)up->raw_uri + up->raw_uri_len + 1, v = (uintptr_t)version;

	return version && up->raw_uri && v > end && v - (uintptr_t)up->raw_uri <= API_MAX_REQUEST_LINE;
}

/* Content-Length headers: their number, and whether they agree and are plain decimal digits. */
struct content_length_scan {
	const char *first;
	unsigned int count;
	bool bad;
};

static enum MHD_Result scan_content_length(void *cls, enum MHD_ValueKind kind __attribute__((unused)),
					   const char *key, const char *value)
{
	struct content_length_scan *cl = cls;

	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		return MHD_YES;
	if (!value || !value[0] || strspn(value, "0123456789") != strlen(value) ||
	    (cl->first && strcmp(cl->first, value)))
		cl->bad = true;
	if (!cl->first)
		cl->first = value;
	cl->count++;
	return MHD_YES;
}

/*
 * Requests that two HTTP parsers could read two ways (a proxy in front of kiln and kiln itself) are
 * refused with 400 and the connection closed, before anything reaches the backend: a NUL in the target,
 * Content-Length headers that disagree or are not a number (RFC 9112 s6.3). The same length given twice
 * is one length (RFC 9110 s8.6). Returns false with `resp` set to refuse.
 */
static bool request_is_unambiguous(struct MHD_Connection *conn, const struct api_upload *up, const char *version,
				   struct api_response *resp)
{
	struct content_length_scan cl = { 0 };

	if (target_has_nul(up, version)) {
		api_response_error(resp, 400, "the request target holds a NUL byte");
		return false;
	}
	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_content_length, &cl);
	if (cl.bad) {
		api_response_error(resp, 400, "%u Content-Length headers that disagree, or one that is not a "
					      "decimal number (RFC 9112 s6.3)", cl.count);
		return false;
	}
	return true;
}

/*
 * MHD calls this once when the headers are in, then once per piece of body, then once more with no
 * data: the request is complete and is answered.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api_server *srv = cls;
	struct api_upload *up = *con_cls;
	struct api_response resp = { 0 };

	if (!up)
		return MHD_NO; /* on_uri found no memory */
	if (!up->started) {
		const char *cl;

		up->started = true;
		if (!request_is_unambiguous(conn, up, version, &resp)) {
			up->answered = true;
			return send_answer(conn, method, url, &resp, true);
		}
		/* A declared body over the limit is refused before it is read. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(cl, &end, 10);
			if (!errno && end != cl && n > API_MAX_BODY) {
				up->too_large = true;
				up->total = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
				up->answered = true;
				api_handle(srv->handle, srv->ctx, method, url, NULL, up->total, &resp);
				return send_answer(conn, method, url, &resp, false);
			}
		}
		return MHD_YES;
	}
	if (up->answered) {
		*upload_data_size = 0; /* MHD may still hand us the body it read */
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (upload_append(up, upload_data, *upload_data_size))
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* The request is in: the backend may take its time (a pause waits for the vCPUs). */
	conn_set_deadline(srv, conn, false);
	api_handle(srv->handle, srv->ctx, method, url, up->body, up->too_large ? up->total : up->len, &resp);
	return send_answer(conn, method, url, &resp, false);
}

/* A request is over (answered or abandoned): the connection's next request has the limit from now. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe __attribute__((unused)))
{
	struct api_upload *up = *con_cls;

	conn_set_deadline(cls, conn, true);

	if (up) {
		free(up->body);
		free(up);
		*con_cls = NULL;
	}
}

/* A socket file at `path` is stale when nothing accepts connections on it. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa, char *err, size_t err_size)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (!S_ISSOCK(st.st_mode)) {
		errmsg_set(err, err_size, "%s: exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "socket: %s", strerror(-ret));
		return ret;
	}
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) ? -errno : 0;
	close(fd);
	if (!ret) {
		errmsg_set(err, err_size, "%s: another process serves this socket", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED && ret != -ENOENT) {
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: cannot remove the stale socket: %s", path, strerror(-ret));
		return ret;
	}
	return 0;
}

/* A listening UNIX socket at `path`, mode 0600. Returns the fd or -errno. */
static int listen_unix(const char *path, char *err, size_t err_size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (!path[0] || strlen(path) >= sizeof(sa.sun_path)) {
		errmsg_set(err, err_size, "%s: a socket path is 1..%zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	ret = remove_stale_socket(path, &sa, err, err_size);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "socket: %s", strerror(-ret));
		return ret;
	}
	/*
	 * On Linux the file bind() creates takes the socket inode's mode (less the umask): set it first,
	 * so that the socket is never reachable by others, without touching the process-wide umask.
	 */
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		goto fail;
	}
	if (chmod(path, 0600) < 0 || listen(fd, API_LISTEN_BACKLOG) < 0) {
		ret = -errno;
		errmsg_set(err, err_size, "%s: %s", path, strerror(-ret));
		unlink(path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

/* Stop and join the watchdog (once MHD has closed every connection), free its lock. */
static void watchdog_stop(struct api_server *srv)
{
	if (srv->watchdog_started) {
		pthread_mutex_lock(&srv->lock);
		srv->stopping = true;
		pthread_cond_signal(&srv->wake);
		pthread_mutex_unlock(&srv->lock);
		pthread_join(srv->watchdog, NULL);
		srv->watchdog_started = false;
	}
	pthread_cond_destroy(&srv->wake);
	pthread_mutex_destroy(&srv->lock);
}

int api_server_start(struct api_server **out, const char *socket_path, const struct api_server_options *opts,
		     ctl_handler_fn handle, void *ctx, char *err, size_t err_size)
{
	unsigned int timeout = opts && opts->idle_timeout_s ? opts->idle_timeout_s : API_DEFAULT_IDLE_TIMEOUT_S;
	unsigned int conns = opts && opts->max_connections ? opts->max_connections : API_DEFAULT_MAX_CONNECTIONS;
	unsigned int request_ms = opts && opts->request_timeout_ms ? opts->request_timeout_ms
								    : API_DEFAULT_REQUEST_TIMEOUT_MS;
	struct api_server *srv;
	pthread_condattr_t ca;
	sigset_t all, old;
	int fd, ret;

	*out = NULL;
	srv = calloc(1, sizeof(*srv));
	if (!srv || !(srv->socket_path = strdup(socket_path))) {
		free(srv);
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	srv->handle = handle;
	srv->ctx = ctx;
	srv->request_timeout_ns = (uint64_t)request_ms * 1000000u;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->wake, &ca);
	pthread_condattr_destroy(&ca);
	fd = listen_unix(socket_path, err, err_size);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}

	/* MHD's threads inherit this mask: signals are for the VMM's own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&srv->watchdog, NULL, watchdog_main, srv);
	if (ret) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		errmsg_set(err, err_size, "%s: cannot start the API watchdog thread: %s", socket_path, strerror(ret));
		ret = -ret;
		close(fd);
		unlink(socket_path);
		goto fail;
	}
	srv->watchdog_started = true;
	srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
					    MHD_USE_ERROR_LOG, 0, NULL, NULL,
				    on_request, srv,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				    MHD_OPTION_LISTEN_SOCKET, fd,
				    MHD_OPTION_CONNECTION_TIMEOUT, timeout,
				    MHD_OPTION_CONNECTION_LIMIT, conns,
				    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
				    MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
				    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				    MHD_OPTION_END);
	ret = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!srv->mhd) {
		ret = ret ? -ret : -EIO;
		errmsg_set(err, err_size, "%s: cannot start the API server (libmicrohttpd)", socket_path);
		close(fd);
		unlink(socket_path);
		goto fail;
	}
	pr_debug("api: serving %s", socket_path);
	*out = srv;
	return 0;
fail:
	watchdog_stop(srv);
	free(srv->socket_path);
	free(srv);
	return ret;
}

void api_server_stop(struct api_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->mhd); /* joins the thread and closes the listening socket */
	watchdog_stop(srv);
	unlink(srv->socket_path);
	free(srv->socket_path);
	free(srv);
}
