// SPDX-License-Identifier: MIT
/*
 * The control API's client side: libcurl's easy interface over a UNIX socket. HTTP itself (framing,
 * chunked answers, keep-alive and its absence) is libcurl's; this file sets the request up, bounds the
 * answer, and turns transport failures into -errno with a message.
 */
#include "api/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/log.h"

#define API_CLIENT_CONNECT_TIMEOUT_MS 5000L

/* The answer's body as it arrives. */
struct body_buf {
	char *data;
	size_t len, cap;
	bool too_large;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body_buf *b = userdata;
	size_t n = size * nmemb; /* size is 1 (libcurl's documented contract) */

	if (n > API_CLIENT_MAX_BODY - b->len) {
		b->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static bool header_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);

	if (!n)
		return false; /* *list is still valid and still owned by the caller */
	*list = n;
	return true;
}

/* -errno for a failed transfer, with a message. */
static int transfer_error(CURL *curl, CURLcode rc, const struct body_buf *b, const char *sock_path,
			  const char *curl_err, char *err, size_t err_size)
{
	long os_errno = 0;

	if (b->too_large) {
		errmsg_set(err, err_size, "%s: the answer is larger than %u bytes", sock_path, API_CLIENT_MAX_BODY);
		return -EMSGSIZE;
	}
	curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT) {
		int e = os_errno ? (int)os_errno : rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED;

		errmsg_set(err, err_size, "cannot connect to %s: %s", sock_path, strerror(e));
		return -e;
	}
	if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	errmsg_set(err, err_size, "%s: %s", sock_path, curl_err[0] ? curl_err : curl_easy_strerror(rc));
	return -EIO;
}

int api_client_request(const char *sock_path, const char *method, const char *path, const char *json_body,
		       struct api_client_response *resp, char *err, size_t err_size)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	struct sockaddr_un sa;
	struct body_buf b = { 0 };
	struct curl_slist *headers = NULL;
	char *url = NULL;
	CURLcode rc;
	CURL *curl;
	int ret = 0;

	memset(resp, 0, sizeof(*resp));
	if (!sock_path[0] || strlen(sock_path) >= sizeof(sa.sun_path)) {
		errmsg_set(err, err_size, "%s: a socket path is 1..%zu bytes", sock_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (path[0] != '/') {
		errmsg_set(err, err_size, "%s: an API path starts with '/'", path);
		return -EINVAL;
	}
	curl = curl_easy_init();
	if (!curl || asprintf(&url, "http://localhost%s", path) < 0) {
		url = NULL;
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	/* Expect: (empty) stops libcurl from waiting for "100 Continue" before a large body. */
	if (!header_add(&headers, "Accept: application/json") || !header_add(&headers, "Expect:") ||
	    (json_body && !header_add(&headers, "Content-Type: application/json"))) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}

	rc = curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_URL, url);
	/* The socket is the destination: no proxy from the environment may reroute the request. */
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_PROXY, "");
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, API_CLIENT_CONNECT_TIMEOUT_MS);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	rc = rc ?: curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	if (!rc && json_body) {
		rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
		rc = rc ?: curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body);
	}
	if (rc) {
		errmsg_set(err, err_size, "libcurl: %s", curl_easy_strerror(rc));
		ret = -EIO;
		goto out;
	}
	rc = curl_easy_perform(curl);
	if (rc) {
		ret = transfer_error(curl, rc, &b, sock_path, curl_err, err, err_size);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!b.data && !(b.data = strdup(""))) {
		errmsg_set(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	resp->body = b.data;
	resp->len = b.len;
	b.data = NULL;
out:
	free(b.data);
	free(url);
	curl_slist_free_all(headers);
	if (curl)
		curl_easy_cleanup(curl);
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
