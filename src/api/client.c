// SPDX-License-Identifier: MIT
/* The API client over libcurl: the contract is in client.h. */
#include "api/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct answer {
	char *buf;
	size_t len;
	bool too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
	struct answer *a = opaque;
	size_t bytes = size * n;
	char *grown;

	if (a->len + bytes > API_CLIENT_MAX_BODY) {
		a->too_large = true;
		return 0; /* aborts the transfer */
	}
	grown = realloc(a->buf, a->len + bytes + 1);
	if (!grown)
		return 0;
	memcpy(grown + a->len, p, bytes);
	a->buf = grown;
	a->len += bytes;
	a->buf[a->len] = '\0';
	return bytes;
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

int api_client_request(const char *socket_path, const char *method, const char *path, const char *json,
		       long timeout_ms, long *status, char **body, char *err, size_t err_size)
{
	struct answer a = { 0 };
	struct curl_slist *headers = NULL;
	char url[512];
	CURL *c;
	CURLcode rc;
	int ret = 0;

	if (snprintf(url, sizeof(url), "http://localhost%s", path) >= (int)sizeof(url)) {
		errmsg_set(err, err_size, "API path too long");
		return -ENAMETOOLONG;
	}
	/* curl_easy_init runs curl_global_init once, thread-safely since libcurl 7.84 (Debian 12: 7.88). */
	c = curl_easy_init();
	if (!c) {
		errmsg_set(err, err_size, "libcurl: cannot create a handle");
		return -ENOMEM;
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	if (json)
		headers = curl_slist_append(headers, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip for a PUT body. */
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 60000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	if (json) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		ret = a.too_large ? -EPROTO : curl_errno(rc);
		errmsg_set(err, err_size, "%s: %s", socket_path,
			   a.too_large ? "answer larger than 1 MiB" : curl_easy_strerror(rc));
		free(a.buf);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (!a.buf)
		a.buf = strdup("");
	if (!a.buf) {
		ret = -ENOMEM;
		goto out;
	}
	if (body)
		*body = a.buf;
	else
		free(a.buf);
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return ret;
}

const char *api_client_fault(const char *body, char *out, size_t size)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "fault_message"));

	snprintf(out, size, "%s", msg ? msg : (body ? body : ""));
	json_decref(j);
	return out;
}
