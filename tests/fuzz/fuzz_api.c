// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the control API's routes (src/api/routes.c): hostile methods, paths and bodies,
 * a sequence of them per input, against kiln's real pre-boot backend (src/vmm/instance.c, the
 * instance behind `kiln run --api-sock`) over a config of its own. What would hand the instance to a
 * main thread that builds a VM (InstanceStart with a startable config, a snapshot load kiln would try)
 * is answered by the harness instead, as a start that failed; and any backend call can be made to fail
 * with an errno and message the input chooses, as a VMM error would.
 *
 * Input: text, requests separated by a line "%%":
 *
 *   METHOD PATH
 *   !ERRNO MESSAGE      (optional: the backend call this request makes fails with -ERRNO, MESSAGE)
 *   BODY...             (the rest, up to the separator; may be empty)
 *
 * Invariants (abort on violation), for every answer: the status is one of 200, 204, 400, 404, 405,
 * 500; 204 has no body; every other status has a JSON object body: for errors exactly
 * {"fault_message": non-empty string}, for 405 an Allow header too; a request refused while parsing
 * (404, 405, and 400 before the backend) never reaches the backend; a backend error maps to 400 or 500
 * as routes.h says. After each input, GET /vm/config answers 200 with a config that
 * vm_config_parse_json accepts (what the API shows is a config file kiln reads), and GET / and
 * GET /machine-config answer 200.
 *
 * Build and run: see tests/fuzz/README.md. Seeds: tests/fuzz/seeds/api/ (text).
 */
#include <jansson.h>
#include <stdbool.h>

#include "api/routes.h"
#include "fuzz_common.h"
#include "lib/log.h"
#include "vmm/config.h"
#include "vmm/instance.h"

#define MAX_REQUESTS 16

/* The backend as the API sees it: the real instance, a failure to inject, and what was called. */
struct fuzz_backend {
	struct instance inst;
	int fail;                      /* -errno for the next backend call, 0: none */
	char fail_msg[API_ERR_SIZE];
	unsigned int calls;
	int last_ret;                  /* what the last backend call returned */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fuzz_seed_dir())
		exit(0); /* the seeds are text in the repository */
	log_set_level(LOG_ERROR);
	return 0;
}

/* Every backend op starts here: count it, and fail it when the request asked for that. */
static int injected(struct fuzz_backend *b, char *err, size_t err_size)
{
	int ret = b->fail;

	b->calls++;
	b->fail = 0;
	if (ret)
		snprintf(err, err_size, "%s", b->fail_msg);
	b->last_ret = ret;
	return ret;
}

static int done(struct fuzz_backend *b, int ret)
{
	b->last_ret = ret;
	return ret;
}

/*
 * InstanceStart: the instance's own refusals (no kernel) are real; a config that would start is what
 * the instance checks (vm_config_validate), and then the start fails as a VM that cannot be built does.
 */
static int fb_instance_start(struct fuzz_backend *b, const struct ctl_request *req, struct ctl_reply *reply, char *err,
			     size_t err_size)
{
	int ret;

	if (!b->inst.cfg->kernel_path)
		return instance_handle(&b->inst, req, reply, err, err_size);
	ret = vm_config_validate(b->inst.cfg, err, err_size);
	if (!ret) {
		snprintf(err, err_size, "Cannot start microvm: no KVM in the fuzzer");
		ret = -EINVAL;
	}
	return ret;
}

/* PUT /snapshot/load: the instance's refusals are real; a load it would try fails as a missing file. */
static int fb_snapshot_load(struct fuzz_backend *b, const struct ctl_request *req, struct ctl_reply *reply, char *err,
			    size_t err_size)
{
	const struct ctl_snapshot_load *load = &req->snapshot_load;

	if (b->inst.configured || load->track_dirty_pages || load->clock_realtime)
		return instance_handle(&b->inst, req, reply, err, err_size);
	CHECK(load->snapshot_path && load->snapshot_path[0] && load->mem_backend_path && load->mem_backend_path[0]);
	snprintf(err, err_size, "%s: no such snapshot in the fuzzer", load->snapshot_path);
	return -ENOENT;
}

/* The real instance's handler, behind the injected failure; GET / is never failed (it cannot fail). */
static int fb_handle(void *ctx, const struct ctl_request *req, struct ctl_reply *reply, char *err, size_t err_size)
{
	struct fuzz_backend *b = ctx;
	int ret;

	if (req->op == CTL_OP_GET_INFO) {
		b->calls++;
		return instance_handle(&b->inst, req, reply, err, err_size);
	}
	ret = injected(b, err, err_size);
	if (ret)
		return ret;
	if (req->op == CTL_OP_INSTANCE_START)
		ret = fb_instance_start(b, req, reply, err, err_size);
	else if (req->op == CTL_OP_SNAPSHOT_LOAD)
		ret = fb_snapshot_load(b, req, reply, err, err_size);
	else
		ret = instance_handle(&b->inst, req, reply, err, err_size);
	return done(b, ret);
}

/* The answer's body as JSON: an object for every status but 204. Caller decrefs (NULL for 204). */
static json_t *check_response(const struct api_response *resp)
{
	json_t *obj;
	const char *msg;

	CHECK_MSG(resp->status == 200 || resp->status == 204 || resp->status == 400 || resp->status == 404 ||
			  resp->status == 405 || resp->status == 500,
		  "status %u", resp->status);
	if (resp->status == 204) {
		CHECK(!resp->body);
		return NULL;
	}
	CHECK_MSG(resp->body, "status %u without a body", resp->status);
	obj = json_loads(resp->body, 0, NULL);
	CHECK_MSG(json_is_object(obj), "status %u: the body is not a JSON object: %s", resp->status, resp->body);
	if (resp->status != 200) {
		msg = json_string_value(json_object_get(obj, "fault_message"));
		CHECK_MSG(msg && msg[0] && json_object_size(obj) == 1, "error body %s", resp->body);
	}
	if (resp->status == 405)
		CHECK(resp->allow[0] && memchr(resp->allow, '\0', sizeof(resp->allow)));
	return obj;
}

static bool status_400(int ret)
{
	switch (-ret) {
	case EINVAL: case EBUSY: case EOPNOTSUPP: case ENOENT: case EEXIST: case EACCES: case EPERM: case EISDIR:
	case ENOTDIR: case ENAMETOOLONG:
		return true;
	default:
		return false;
	}
}

/* One request, parsed then carried out, as api_handle does, checking each step. */
static void one_request(struct fuzz_backend *b, const char *method, const char *path, const char *body, size_t len)
{
	struct ctl_request req;
	struct api_response resp;
	unsigned int calls = b->calls;
	json_t *obj;

	if (api_parse_request(method, path, body, len, &req, &resp)) {
		CHECK(resp.status == 400 || resp.status == 404 || resp.status == 405);
		json_decref(check_response(&resp));
		CHECK(b->calls == calls);
		api_response_free(&resp);
		return;
	}
	CHECK(!resp.body);
	b->last_ret = 0;
	api_dispatch(fb_handle, b, &req, &resp);
	obj = check_response(&resp);
	if (b->calls > calls && b->last_ret && req.op != CTL_OP_GET_VM_CONFIG && req.op != CTL_OP_GET_MACHINE_CONFIG) {
		/* A backend error: 400 for what the request asked wrongly, 500 for the VMM's failure. */
		CHECK_MSG(resp.status == (status_400(b->last_ret) ? 400u : 500u), "errno %d answered %u", -b->last_ret,
			  resp.status);
	}
	if (resp.status == 200 && req.op == CTL_OP_VM_CLONE)
		CHECK(json_is_string(json_object_get(obj, "id")) && json_is_integer(json_object_get(obj, "pid")));
	json_decref(obj);
	api_response_free(&resp);
	api_request_free(&req);
	api_request_free(&req); /* documented as safe on a freed (zeroed) request */
}

/* What GET shows must be there and be a config kiln reads. */
static void check_gets(struct fuzz_backend *b)
{
	struct api_response resp;
	struct vm_config cfg;
	char err[512];
	int ret;

	api_handle(fb_handle, b, "GET", "/vm/config", NULL, 0, &resp);
	CHECK_MSG(resp.status == 200, "GET /vm/config: %u %s", resp.status, resp.body ? resp.body : "");
	json_decref(check_response(&resp));
	vm_config_init(&cfg);
	ret = vm_config_parse_json(&cfg, resp.body, strlen(resp.body), err, sizeof(err));
	CHECK_MSG(ret == 0, "GET /vm/config is not a config kiln reads (%s): %s", err, resp.body);
	vm_config_free(&cfg);
	api_response_free(&resp);

	api_handle(fb_handle, b, "GET", "/machine-config", NULL, 0, &resp);
	CHECK(resp.status == 200);
	json_decref(check_response(&resp));
	api_response_free(&resp);
	api_handle(fb_handle, b, "GET", "/", NULL, 0, &resp);
	CHECK(resp.status == 200);
	json_decref(check_response(&resp));
	api_response_free(&resp);
}

/* The end of the block starting at `p` (the separator line "%%" or the end), and where the next starts. */
static const char *block_end(const char *p, const char *end, const char **next)
{
	for (const char *q = p; q < end; q++) {
		if (*q == '\n' && end - q >= 4 && !memcmp(q, "\n%%\n", 4)) {
			*next = q + 4;
			return q;
		}
	}
	*next = end;
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_backend *b = calloc(1, sizeof(*b));
	struct vm_config cfg;
	const char *p = (const char *)data, *end = p + size, *next;
	unsigned int n = 0;

	CHECK(b);
	vm_config_init(&cfg);
	CHECK(instance_init(&b->inst, &cfg) == 0);
	while (p < end && n++ < MAX_REQUESTS) {
		const char *bend = block_end(p, end, &next), *nl = memchr(p, '\n', (size_t)(bend - p));
		const char *line_end = nl ? nl : bend, *body = nl ? nl + 1 : bend, *sp;
		char *method, *path;

		sp = memchr(p, ' ', (size_t)(line_end - p));
		method = strndup(p, (size_t)((sp ? sp : line_end) - p));
		path = sp ? strndup(sp + 1, (size_t)(line_end - sp - 1)) : strdup("");
		CHECK(method && path);
		b->fail = 0;
		if (body < bend && *body == '!') {
			const char *fl = memchr(body, '\n', (size_t)(bend - body)), *fend = fl ? fl : bend;
			char num[16] = "";
			const char *msp = memchr(body, ' ', (size_t)(fend - body));
			size_t nlen = (size_t)((msp ? msp : fend) - body - 1);

			memcpy(num, body + 1, nlen < sizeof(num) - 1 ? nlen : sizeof(num) - 1);
			b->fail = -(int)(strtoul(num, NULL, 10) % 200);
			snprintf(b->fail_msg, sizeof(b->fail_msg), "%.*s", msp ? (int)(fend - msp - 1) : 0,
				 msp ? msp + 1 : "");
			body = fl ? fl + 1 : bend;
		}
		one_request(b, method, path, body, (size_t)(bend - body));
		free(method);
		free(path);
		p = next;
	}
	b->fail = 0;
	check_gets(b);
	instance_destroy(&b->inst);
	vm_config_free(&cfg);
	free(b);
	return 0;
}
