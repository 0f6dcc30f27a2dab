// SPDX-License-Identifier: MIT
/*
 * `kiln snapshot SOCK STATE MEM`, `kiln restore STATE MEM`, `kiln clone STATE MEM -n N`, and the
 * restore side of `kiln run` (--restore, or waiting for PUT /snapshot/load).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api/client.h"
#include "cli/cli.h"
#include "devices/console.h"
#include "lib/log.h"
#include "vmm/clone.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"
#include "vmm/vm_api.h"

/* Exit status for a refused snapshot: the same as a refused config. */
static int restore_status(int ret)
{
	switch (ret) {
	case -EINVAL:
	case -EBADMSG:
	case -ENOTSUP:
	case -EFBIG:
	case -ENOENT:
	case -EACCES:
	case -EISDIR:
	case -ENOTDIR:
		return EXIT_USAGE;
	default:
		return 1;
	}
}

static double ms_since(uint64_t start_ns)
{
	return (double)(time_now_ns() - start_ns) / 1e6;
}

int cli_restore_vm(struct vm *vm, struct cli_restore *r, uint64_t start_ns)
{
	struct snap_reader *reader = NULL;
	char err[768];
	int ret;

	vm_config_init(&r->cfg);
	ret = vm_snapshot_open(r->state_path, &reader, &r->cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "kiln: cannot restore: %s\n", err);
		return restore_status(ret);
	}
	/* This process's console, not the snapshotted VM's (whose file another process may still write). */
	free(r->cfg.console_path);
	r->cfg.console_path = r->console_path ? strdup(r->console_path) : NULL;
	ret = vm_restore(vm, reader, &r->cfg, &r->opts, start_ns, err, sizeof(err));
	snap_reader_close(reader);
	if (ret) {
		fprintf(stderr, "kiln: cannot restore %s: %s\n", r->state_path, err);
		return restore_status(ret);
	}
	pr_info("restored %s (%llu MiB of RAM %s %s) in %.1f ms since process start", r->state_path,
		(unsigned long long)r->cfg.mem_mib, r->opts.copy ? "copied from" : "mapped from", r->opts.mem_path,
		ms_since(start_ns));
	return 0;
}

int cli_wait_for_load(struct vm *vm, struct cli_restore *r, struct api_server **api, uint64_t start_ns)
{
	struct pollfd fds[2];
	sigset_t sigs;
	char err[512];
	int sfd, status = 0;

	r->waited = true;
	vm_config_init(&r->loader.cfg);
	r->loader.vm = vm;
	r->loader.console_path = r->console_path;
	r->loader.start_ns = start_ns;
	r->loader.loaded_fd = eventfd(0, EFD_CLOEXEC);
	if (r->loader.loaded_fd < 0) {
		pr_err("eventfd: %s", strerror(errno));
		return 1;
	}
	if (api_server_start(api, r->api_sock, NULL, &vm_api_loader_ops, &r->loader, err, sizeof(err))) {
		pr_err("cannot serve the API on %s: %s", r->api_sock, err);
		return 1;
	}
	pr_info("waiting for PUT /snapshot/load on %s", r->api_sock);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	fds[0] = (struct pollfd){ .fd = r->loader.loaded_fd, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	while (!atomic_load(&r->loader.loaded)) {
		if (poll(fds, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
			status = 1;
			break;
		}
		if (sfd >= 0 && (fds[1].revents & POLLIN)) {
			pr_info("stopped before a snapshot was loaded");
			status = 0;
			break;
		}
	}
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	if (atomic_load(&r->loader.loaded))
		return 0;
	api_server_stop(*api);
	*api = NULL;
	/* Exit status 0 is "stopped by a signal": return it as a non-zero "no VM" marker for the caller. */
	return status ? status : -1;
}

int cli_run_restored(struct vm *vm, struct cli_restore *r, struct api_server **api, bool verbose)
{
	char err[512];
	int status;

	(void)verbose;
	if (r->api_sock && !*api &&
	    api_server_start(api, r->api_sock, NULL, &vm_api_ops, vm, err, sizeof(err))) {
		pr_err("cannot serve the API on %s: %s", r->api_sock, err);
		return 1;
	}
	if (r->ready_fd >= 0)
		vm_clone_report_ready(r->ready_fd);
	status = vm_run(vm);
	api_server_stop(*api);
	*api = NULL;
	console_restore_terminal();
	pr_info("%s", vm->stop_message[0] ? vm->stop_message : "VM stopped");
	return status;
}

void cli_restore_free(struct cli_restore *r)
{
	if (r->waited) {
		vm_config_free(&r->loader.cfg);
		if (r->loader.loaded_fd >= 0)
			close(r->loader.loaded_fd);
	} else {
		vm_config_free(&r->cfg);
	}
}

/* ---- kiln snapshot SOCK STATE MEM ---- */

static int api_call(const char *sock, const char *method, const char *path, json_t *body, long *status, char **answer)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char err[512];
	int ret;

	json_decref(body);
	ret = api_client_request(sock, method, path, text, 0, status, answer, err, sizeof(err));
	free(text);
	if (ret)
		fprintf(stderr, "kiln: %s %s: %s\n", method, path, err);
	return ret;
}

/* A request that must answer 2xx; prints the fault message otherwise. 0 or -1. */
static int api_expect(const char *sock, const char *method, const char *path, json_t *body)
{
	char *answer = NULL, fault[512];
	long status = 0;

	if (api_call(sock, method, path, body, &status, &answer))
		return -1;
	if (status < 200 || status > 299) {
		fprintf(stderr, "kiln: %s %s: %ld %s\n", method, path, status, api_client_fault(answer, fault, sizeof(fault)));
		free(answer);
		return -1;
	}
	free(answer);
	return 0;
}

int cli_snapshot(int argc, char **argv, uint64_t start_ns)
{
	static const struct option opts[] = {
		{ "leave-paused", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock, *state, *mem;
	char *answer = NULL;
	bool leave_paused = false, was_running;
	long status = 0;
	uint64_t t0;
	json_t *info;
	int opt, ret;

	(void)start_ns;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'p')
			leave_paused = true;
		else {
			fprintf(opt == 'h' ? stdout : stderr, "usage: kiln snapshot SOCK STATE MEM [--leave-paused]\n");
			return opt == 'h' ? 0 : EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		fprintf(stderr, "usage: kiln snapshot SOCK STATE MEM [--leave-paused]\n");
		return EXIT_USAGE;
	}
	sock = argv[optind];
	state = argv[optind + 1];
	mem = argv[optind + 2];
	if (api_call(sock, "GET", "/", NULL, &status, &answer))
		return 1;
	info = json_loads(answer ? answer : "", 0, NULL);
	was_running = !strcmp(json_string_value(json_object_get(info, "state")) ?: "", "Running");
	json_decref(info);
	free(answer);
	t0 = time_now_ns();
	/* Firecracker's order: pause, snapshot, resume (a VM that was paused stays paused). */
	if (was_running && api_expect(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Paused")))
		return 1;
	ret = api_expect(sock, "PUT", "/snapshot/create",
			 json_pack("{s:s, s:s, s:s}", "snapshot_type", "Full", "snapshot_path", state, "mem_file_path", mem));
	if (was_running && !leave_paused && api_expect(sock, "PATCH", "/vm", json_pack("{s:s}", "state", "Resumed")))
		ret = -1;
	if (ret)
		return 1;
	printf("snapshot %s + %s written in %.1f ms%s\n", state, mem, ms_since(t0),
	       was_running ? (leave_paused ? " (VM left paused)" : " (VM paused meanwhile)") : "");
	return 0;
}

/* ---- kiln restore ---- */

int cli_restore(int argc, char **argv, uint64_t start_ns)
{
	const char *into = NULL;
	bool resume = false;
	char **run_argv;
	int i, n = 0, status;

	/* kiln restore --into SOCK STATE MEM [--resume]: PUT /snapshot/load into a waiting kiln. */
	if (argc >= 2 && !strcmp(argv[1], "--into")) {
		if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "--resume"))) {
			fprintf(stderr, "usage: kiln restore --into SOCK STATE MEM [--resume]\n");
			return EXIT_USAGE;
		}
		into = argv[2];
		resume = argc == 6;
		return api_expect(into, "PUT", "/snapshot/load",
				  json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", argv[3], "mem_backend", "backend_type",
					    "File", "backend_path", argv[4], "resume_vm", resume))
			       ? 1
			       : 0;
	}
	if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		fprintf(stderr, "usage: kiln restore STATE MEM [--copy] [--paused] [--console stdio|PATH] [--api-sock PATH] "
				"[--verbose]\n       kiln restore --into SOCK STATE MEM [--resume]\n");
		return !strcmp(argc > 1 ? argv[1] : "", "--help") ? 0 : EXIT_USAGE;
	}
	/* The same as kiln run --restore STATE --mem MEM ... */
	run_argv = calloc((size_t)argc + 4, sizeof(*run_argv));
	if (!run_argv)
		return 1;
	run_argv[n++] = "run";
	run_argv[n++] = "--restore";
	run_argv[n++] = argv[1];
	run_argv[n++] = "--mem";
	run_argv[n++] = argv[2];
	for (i = 3; i < argc; i++)
		run_argv[n++] = argv[i];
	status = cli_run(n, run_argv, start_ns);
	free(run_argv);
	return status;
}

/* ---- kiln clone STATE MEM -n N ---- */

int cli_clone(int argc, char **argv, uint64_t start_ns)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "api-sock-prefix", required_argument, NULL, 'a' },
		{ "console-prefix", required_argument, NULL, 'c' },
		{ "copy", no_argument, NULL, 'C' },
		{ "paused", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] =
		"usage: kiln clone STATE MEM [-n N] [--api-sock-prefix P] [--console-prefix P] [--copy] [--paused]\n"
		"  clone i serves P<i>.sock, writes its console to P<i>.console and its messages to P<i>.log\n";
	const char *api_prefix = NULL, *console_prefix = NULL;
	struct vm_clone_spec spec = { 0 };
	struct vm_clone *clones;
	unsigned long count = 1, wanted, i;
	char sock[4200], console[4200], log[4200];
	bool failed = false;
	uint64_t t0;
	char *end;
	int opt, started = 0;

	(void)start_ns;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			errno = 0;
			count = strtoul(optarg, &end, 10);
			if (errno || *end || count < 1 || count > 1024) {
				fprintf(stderr, "kiln clone: -n: expected 1..1024, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'a':
			api_prefix = optarg;
			break;
		case 'c':
			console_prefix = optarg;
			break;
		case 'C':
			spec.copy = true;
			break;
		case 'p':
			spec.paused = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	wanted = count;
	spec.state_path = argv[optind];
	spec.mem_path = argv[optind + 1];
	clones = calloc(count, sizeof(*clones));
	if (!clones)
		return 1;
	t0 = time_now_ns();
	/* All of them at once, then wait for each: they restore in parallel. */
	for (i = 0; i < count; i++) {
		char err[512];

		/* The strings are copied into the child by fork: one buffer serves every clone. */
		snprintf(sock, sizeof(sock), "%s%lu.sock", api_prefix ? api_prefix : "", i);
		snprintf(console, sizeof(console), "%s%lu.console", console_prefix ? console_prefix : "", i);
		snprintf(log, sizeof(log), "%s%lu.log", console_prefix ? console_prefix : "", i);
		spec.api_sock = api_prefix ? sock : NULL;
		spec.console_path = console_prefix ? console : NULL;
		spec.log_path = console_prefix ? log : NULL;
		if (vm_clone_start(&spec, &clones[i], err, sizeof(err))) {
			fprintf(stderr, "kiln clone: clone %lu: %s\n", i, err);
			break;
		}
	}
	count = i;
	for (i = 0; i < count; i++) {
		char err[512];
		pid_t pid = vm_clone_wait(&clones[i], 0, err, sizeof(err));

		if (pid < 0) {
			fprintf(stderr, "kiln clone: clone %lu: %s\n", i, err);
			failed = true;
			continue;
		}
		started++;
		printf("clone %lu: pid %d", i, (int)pid);
		if (api_prefix)
			printf(", api %s%lu.sock", api_prefix, i);
		if (console_prefix)
			printf(", console %s%lu.console, log %s%lu.log", console_prefix, i, console_prefix, i);
		printf("\n");
	}
	free(clones);
	if (started) {
		double ms = ms_since(t0);

		printf("%d clone%s running after %.1f ms (%.1f per second)\n", started, started == 1 ? "" : "s", ms,
		       (double)started * 1000.0 / ms);
	}
	return !failed && started > 0 && (unsigned long)started == wanted ? 0 : 1;
}
