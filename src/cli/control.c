// SPDX-License-Identifier: MIT
/*
 * `kiln pause|resume|status SOCK`: verbs that drive a VM through its API socket (kiln run --api-sock, or a
 * Firecracker process), with src/api/client.c. An error answer's fault_message is printed and the exit
 * status is 1; a usage error is 2.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/client.h"
#include "cli/cli.h"

int cli_api_call(const char *verb, const char *sock, const char *method, const char *path, const char *json_body,
		 struct api_client_response *out)
{
	struct api_client_response resp;
	char err[512], fault[512];
	int ret;

	if (out)
		memset(out, 0, sizeof(*out));
	ret = api_client_request(sock, method, path, json_body, &resp, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "kiln %s: %s\n", verb, err);
		return 1;
	}
	if (resp.status < 200 || resp.status > 299) {
		fprintf(stderr, "kiln %s: %s %s: %ld: %s\n", verb, method, path, resp.status,
			api_client_fault(&resp, fault, sizeof(fault)));
		api_client_response_free(&resp);
		return 1;
	}
	if (out)
		*out = resp;
	else
		api_client_response_free(&resp);
	return 0;
}

/* The one argument of a `VERB SOCK` command, or NULL after printing the usage. */
static const char *sock_arg(int argc, char **argv, const char *usage, int *status)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: kiln %s\n", usage);
		*status = 0;
		return NULL;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: kiln %s\n", usage);
		*status = EXIT_USAGE;
		return NULL;
	}
	return argv[1];
}

/* PATCH /vm {"state": ...}: Firecracker answers 204, and 204 again when the VM already is in that state. */
static int set_vm_state(int argc, char **argv, const char *state)
{
	char body[64];
	const char *sock;
	int status;

	sock = sock_arg(argc, argv, !strcmp(state, "Paused") ? "pause SOCK" : "resume SOCK", &status);
	if (!sock)
		return status;
	snprintf(body, sizeof(body), "{\"state\": \"%s\"}", state);
	return cli_api_call(argv[0], sock, "PATCH", "/vm", body, NULL);
}

int cli_pause(int argc, char **argv, uint64_t start_ns)
{
	(void)start_ns;
	return set_vm_state(argc, argv, "Paused");
}

int cli_resume(int argc, char **argv, uint64_t start_ns)
{
	(void)start_ns;
	return set_vm_state(argc, argv, "Resumed");
}

/* A GET whose answer is a JSON object, or NULL after printing why not. */
static json_t *get_object(const char *sock, const char *path)
{
	struct api_client_response resp;
	json_error_t jerr;
	json_t *obj;

	if (cli_api_call("status", sock, "GET", path, NULL, &resp))
		return NULL;
	obj = json_loadb(resp.body, resp.len, 0, &jerr);
	api_client_response_free(&resp);
	if (!json_is_object(obj)) {
		fprintf(stderr, "kiln status: GET %s: the answer is not a JSON object\n", path);
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

static void print_summary(json_t *info, json_t *cfg)
{
	json_t *boot = json_object_get(cfg, "boot-source");
	json_t *machine = json_object_get(cfg, "machine-config");
	json_t *entropy = json_object_get(cfg, "entropy");

	printf("id:       %s\n", str_or(info, "id", "?"));
	printf("state:    %s\n", str_or(info, "state", "?"));
	printf("vmm:      %s %s\n", str_or(info, "app_name", "?"), str_or(info, "vmm_version", "?"));
	printf("vcpus:    %lld\n", (long long)json_integer_value(json_object_get(machine, "vcpu_count")));
	printf("memory:   %lld MiB\n", (long long)json_integer_value(json_object_get(machine, "mem_size_mib")));
	printf("kernel:   %s\n", str_or(boot, "kernel_image_path", "(none)"));
	if (json_string_value(json_object_get(boot, "initrd_path")))
		printf("initrd:   %s\n", str_or(boot, "initrd_path", ""));
	if (json_string_value(json_object_get(boot, "boot_args")))
		printf("cmdline:  %s\n", str_or(boot, "boot_args", ""));
	printf("drives:   %zu\n", json_array_size(json_object_get(cfg, "drives")));
	printf("nics:     %zu\n", json_array_size(json_object_get(cfg, "network-interfaces")));
	printf("entropy:  %s\n", json_is_object(entropy) ? "yes" : "no");
}

int cli_status(int argc, char **argv, uint64_t start_ns)
{
	static const char usage[] = "status SOCK [--json]";
	json_t *info = NULL, *cfg = NULL, *both;
	bool as_json = false;
	const char *sock;
	int status = 1;
	char *text;

	(void)start_ns;
	if (argc == 3 && !strcmp(argv[2], "--json")) {
		as_json = true;
		argc--;
	}
	sock = sock_arg(argc, argv, usage, &status);
	if (!sock)
		return status;
	status = 1;
	info = get_object(sock, "/");
	cfg = info ? get_object(sock, "/vm/config") : NULL;
	if (!cfg)
		goto out;
	if (as_json) {
		both = json_pack("{s:O, s:O}", "info", info, "config", cfg);
		text = both ? json_dumps(both, JSON_INDENT(2)) : NULL;
		json_decref(both);
		if (!text) {
			fprintf(stderr, "kiln status: out of memory\n");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		print_summary(info, cfg);
	}
	status = 0;
out:
	json_decref(info);
	json_decref(cfg);
	return status;
}
