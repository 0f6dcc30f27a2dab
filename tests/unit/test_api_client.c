// SPDX-License-Identifier: MIT
/*
 * src/api/client.c against canned answers over a socketpair: the request it writes, each way an answer's
 * body is framed (Content-Length, chunked, read to close, none), interim 1xx answers, and every bound and
 * malformation it must refuse with an error instead of a crash, a hang or a truncated body.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/client.h"

static const struct api_client_timeouts quick = { .send_ms = 1000, .answer_ms = 2000, .idle_ms = 2000 };

struct peer {
	int fd[2]; /* [0] the client's end, [1] the canned server's */
	struct api_client_response resp;
	char err[256];
	char request[4096];
};

static void peer_open(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd), 0);
}

static void peer_close(struct peer *p)
{
	api_client_response_free(&p->resp);
	close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
}

/* The canned answer is written before the request is sent: a socket buffer holds both. */
static void answer(struct peer *p, const char *text, size_t len)
{
	assert_int_equal(write(p->fd[1], text, len), (ssize_t)len);
}

static int exchange(struct peer *p, const char *method, const char *path, const char *body)
{
	ssize_t n;
	int ret = api_client_exchange(p->fd[0], "test.sock", &quick, method, path, body, &p->resp, p->err,
				      sizeof(p->err));

	n = recv(p->fd[1], p->request, sizeof(p->request) - 1, MSG_DONTWAIT);
	p->request[n > 0 ? n : 0] = '\0';
	return ret;
}

/* The canned answer `text`, then the server's end closed: the exchange's result. */
static int answer_and_close(struct peer *p, const char *text)
{
	answer(p, text, strlen(text));
	shutdown(p->fd[1], SHUT_WR);
	return exchange(p, "GET", "/", NULL);
}

static void test_request_and_content_length_answer(void **state)
{
	static const char ans[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
				  "content-length:   27  \r\n\r\n{\"fault_message\": \"no way\"}";
	struct peer p;
	char fault[64];

	peer_open(&p);
	answer(&p, ans, sizeof(ans) - 1);
	assert_int_equal(exchange(&p, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 0);
	assert_string_equal(p.request, "PATCH /vm HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
				       "Connection: close\r\nContent-Type: application/json\r\nContent-Length: 19\r\n"
				       "\r\n{\"state\": \"Paused\"}");
	assert_int_equal(p.resp.status, 400);
	assert_int_equal(p.resp.len, 27);
	assert_string_equal(p.resp.body, "{\"fault_message\": \"no way\"}");
	assert_string_equal(api_client_fault(&p.resp, fault, sizeof(fault)), "no way");
	peer_close(&p);
}

static void test_request_without_body(void **state)
{
	struct peer p;

	peer_open(&p);
	answer(&p, "HTTP/1.1 204 No Content\r\n\r\n", 27);
	assert_int_equal(exchange(&p, "GET", "/machine-config", NULL), 0);
	assert_string_equal(p.request, "GET /machine-config HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
				       "Connection: close\r\n\r\n");
	assert_int_equal(p.resp.status, 204);
	assert_non_null(p.resp.body);
	assert_string_equal(p.resp.body, "");
	peer_close(&p);
}

/* Each way an answer's body is framed, and an interim answer before the final one. */
static void test_answers_framed(void **state)
{
	static const struct {
		const char *answer, *body;
		long status;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
		  "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n",
		  "hello 0123456789", 200 },
		{ "HTTP/1.0 201 Created\nServer: x\n\n{\"state\": \"Running\"}", "{\"state\": \"Running\"}", 201 },
		{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 200 },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "", 304 },
	};
	struct peer p;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		peer_open(&p);
		assert_int_equal(answer_and_close(&p, cases[i].answer), 0);
		assert_int_equal(p.resp.status, cases[i].status);
		assert_string_equal(p.resp.body, cases[i].body);
		assert_int_equal(p.resp.len, strlen(cases[i].body));
		peer_close(&p);
	}
}

/* Answers cut short (-EIO) or malformed (-EPROTO): an error with its reason, never a partial body. */
static void test_malformed_answers_refused(void **state)
{
	static const struct {
		const char *answer;
		int err;
		const char *msg;
	} cases[] = {
		{ "", -EIO, "closed before" }, /* closed before answering */
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", -EIO, "closed before" }, /* body cut short */
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", -EIO, "closed before" }, /* chunk cut short */
		{ "HTTP/2 200 OK\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 20 OK\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200OK\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "ICY 200 OK\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\n: a\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
		{ "HTTP/1.1 101 Switching Protocols\r\n\r\n", -EPROTO, "test.sock: malformed answer" },
	};
	struct peer p;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		peer_open(&p);
		assert_int_equal(answer_and_close(&p, cases[i].answer), cases[i].err);
		assert_non_null(strstr(p.err, cases[i].msg));
		assert_null(p.resp.body);
		peer_close(&p);
	}
}

static void test_nul_in_head_refused(void **state)
{
	static const char ans[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
	struct peer p;

	peer_open(&p);
	answer(&p, ans, sizeof(ans) - 1);
	shutdown(p.fd[1], SHUT_WR);
	assert_int_equal(exchange(&p, "GET", "/", NULL), -EPROTO);
	peer_close(&p);
}

static void test_sizes_bounded(void **state)
{
	char *big_head = malloc(API_CLIENT_MAX_HEAD + 64);
	struct peer p;

	peer_open(&p);
	assert_int_equal(answer_and_close(&p, "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n"), -EMSGSIZE);
	assert_non_null(strstr(p.err, "larger than 1048576 bytes"));
	peer_close(&p);

	peer_open(&p);
	assert_int_equal(answer_and_close(&p, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
			 -EPROTO);
	peer_close(&p);

	peer_open(&p);
	assert_int_equal(answer_and_close(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					      "ffffffffffffffffffffffff\r\n"),
			 -EMSGSIZE);
	peer_close(&p);

	/* A head line that alone is larger than the head's budget. */
	assert_non_null(big_head);
	strcpy(big_head, "HTTP/1.1 200 OK\r\nX: ");
	memset(big_head + strlen(big_head), 'a', API_CLIENT_MAX_HEAD);
	strcpy(big_head + 20 + API_CLIENT_MAX_HEAD, "\r\n\r\n");
	peer_open(&p);
	assert_int_equal(answer_and_close(&p, big_head), -EMSGSIZE);
	assert_non_null(strstr(p.err, "head is larger"));
	peer_close(&p);
	free(big_head);
}

/* A body without a length that goes on past API_CLIENT_MAX_BODY: written by a thread (it fills the socket). */
static void *stream_forever(void *arg)
{
	int fd = *(int *)arg;
	static const char head[] = "HTTP/1.1 200 OK\r\n\r\n";
	char chunk[65536];

	memset(chunk, 'x', sizeof(chunk));
	if (send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL) < 0)
		return NULL;
	while (send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) > 0)
		;
	return NULL;
}

static void test_endless_body_bounded(void **state)
{
	pthread_t t;
	struct peer p;

	peer_open(&p);
	assert_int_equal(pthread_create(&t, NULL, stream_forever, &p.fd[1]), 0);
	assert_int_equal(api_client_exchange(p.fd[0], "test.sock", &quick, "GET", "/", NULL, &p.resp, p.err,
					     sizeof(p.err)),
			 -EMSGSIZE);
	assert_null(p.resp.body);
	close(p.fd[0]); /* the writer's next write fails: it returns */
	p.fd[0] = -1;
	pthread_join(t, NULL);
	close(p.fd[1]);
}

static void test_silent_server_times_out(void **state)
{
	static const struct api_client_timeouts short_wait = { .send_ms = 100, .answer_ms = 100, .idle_ms = 100 };
	struct peer p;

	peer_open(&p);
	assert_int_equal(api_client_exchange(p.fd[0], "test.sock", &short_wait, "GET", "/", NULL, &p.resp, p.err,
					     sizeof(p.err)),
			 -ETIMEDOUT);
	assert_non_null(strstr(p.err, "waiting for the answer"));
	peer_close(&p);

	/* The head came, the body stalls: the idle timeout. */
	peer_open(&p);
	answer(&p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 40);
	assert_int_equal(api_client_exchange(p.fd[0], "test.sock", &short_wait, "GET", "/", NULL, &p.resp, p.err,
					     sizeof(p.err)),
			 -ETIMEDOUT);
	assert_non_null(strstr(p.err, "the rest of the answer"));
	peer_close(&p);
}

static void test_unsendable_requests_refused(void **state)
{
	struct peer p;

	peer_open(&p);
	assert_int_equal(exchange(&p, "GET", "/vm HTTP/1.1\r\nX: y", NULL), -EINVAL);
	assert_int_equal(exchange(&p, "GET", "vm", NULL), -EINVAL);
	assert_int_equal(exchange(&p, "get", "/vm", NULL), -EINVAL);
	assert_int_equal(exchange(&p, "", "/vm", NULL), -EINVAL);
	assert_int_equal(exchange(&p, "GET", "/\x7f", NULL), -EINVAL);
	assert_string_equal(p.request, ""); /* nothing was sent */
	peer_close(&p);
}

static void test_answer_after_the_server_stopped_reading(void **state)
{
	static const char ans[] = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig";
	char *body = malloc(4u << 20);
	struct peer p;

	/* The server answered and closed before reading the request: the answer is what the client reports. */
	assert_non_null(body);
	memset(body, 'a', (4u << 20) - 1);
	body[(4u << 20) - 1] = '\0';
	peer_open(&p);
	answer(&p, ans, sizeof(ans) - 1);
	shutdown(p.fd[1], SHUT_WR);
	close(p.fd[1]);
	p.fd[1] = -1;
	assert_int_equal(api_client_exchange(p.fd[0], "test.sock", &quick, "PUT", "/x", body, &p.resp, p.err,
					     sizeof(p.err)),
			 0);
	assert_int_equal(p.resp.status, 413);
	assert_string_equal(p.resp.body, "big");
	peer_close(&p);
	free(body);
}

static void test_connect_errors(void **state)
{
	struct api_client_response resp;
	char err[256], path[200];

	assert_int_equal(api_client_request("/nonexistent/kiln.sock", "GET", "/", NULL, &resp, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "cannot connect to /nonexistent/kiln.sock: No such file or directory");
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(api_client_request(path, "GET", "/", NULL, &resp, err, sizeof(err)), -ENAMETOOLONG);
	assert_int_equal(api_client_request("", "GET", "/", NULL, &resp, err, sizeof(err)), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_and_content_length_answer),
		cmocka_unit_test(test_request_without_body),
		cmocka_unit_test(test_answers_framed),
		cmocka_unit_test(test_malformed_answers_refused),
		cmocka_unit_test(test_nul_in_head_refused),
		cmocka_unit_test(test_sizes_bounded),
		cmocka_unit_test(test_endless_body_bounded),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_unsendable_requests_refused),
		cmocka_unit_test(test_answer_after_the_server_stopped_reading),
		cmocka_unit_test(test_connect_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
