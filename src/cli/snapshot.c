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
#include <unistd.h>

#include "api/client.h"
#include "cli/cli.h"
#include "lib/log.h"
#include "vmm/clone.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

int cli_restore_status(int ret)
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
		return EXIT_USAGE; /* the snapshot (or its files) cannot be used, as a refused config */
	default:
		return 1;
	}
}

static double ms_since(uint64_t start_ns)
{
	return (double)(time_now_ns() - start_ns) / 1e6;
}

/* "IFACE=TAP" onto the snapshot's config: the interface's host_dev_name. 0 or -EINVAL with a message. */
static int apply_net_override(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	const char *eq = strchr(spec, '=');
	size_t id_len = eq ? (size_t)(eq - spec) : 0;
	char *tap;

	if (!eq || !id_len || !eq[1] || strlen(eq + 1) > 15) {
		errmsg_set(err, err_size, "--net-override %s: expected IFACE=TAP (a TAP name of 1 to 15 bytes)", spec);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < cfg->nr_nets; i++) {
		if (strlen(cfg->nets[i].iface_id) != id_len || strncmp(cfg->nets[i].iface_id, spec, id_len))
			continue;
		tap = strdup(eq + 1);
		if (!tap)
			return -ENOMEM;
		free(cfg->nets[i].host_dev_name);
		cfg->nets[i].host_dev_name = tap;
		return 0;
	}
	errmsg_set(err, err_size, "--net-override %s: the snapshot has no network interface \"%.*s\"", spec, (int)id_len,
		   spec);
	return -EINVAL;
}

int cli_restore_vm(struct vm *vm, struct vm_config *cfg, const char *state_path,
		   const struct vm_restore_options *opts, const struct cli_restore_overrides *ov, uint64_t start_ns,
		   char *err, size_t err_size)
{
	struct snap_reader *reader = NULL;
	struct vm_config next, old;
	int ret;

	vm_config_init(&next);
	ret = vm_snapshot_open(state_path, &reader, &next, err, err_size);
	if (ret) {
		vm_config_free(&next);
		return ret;
	}
	/* This process's console, not the snapshotted VM's (whose file another process may still write). */
	free(next.console_path);
	next.console_path = cfg->console_path ? strdup(cfg->console_path) : NULL;
	if (cfg->console_path && !next.console_path) {
		snap_reader_close(reader);
		vm_config_free(&next);
		return -ENOMEM;
	}
	for (unsigned int i = 0; ov && i < ov->nr_net; i++) {
		ret = apply_net_override(&next, ov->net[i], err, err_size);
		if (ret) {
			snap_reader_close(reader);
			vm_config_free(&next);
			return ret;
		}
	}
	/* The VM keeps a pointer to *cfg: the snapshot's config goes there, the old one back on failure. */
	old = *cfg;
	*cfg = next;
	ret = vm_restore(vm, reader, cfg, opts, start_ns, err, err_size);
	snap_reader_close(reader);
	if (ret) {
		vm_config_free(cfg);
		*cfg = old;
		return ret;
	}
	vm_config_free(&old);
	pr_info("restored %s (%llu MiB of RAM %s %s) in %.1f ms since process start", state_path,
		(unsigned long long)cfg->mem_mib, opts->copy ? "copied from" : "mapped from", opts->mem_path,
		ms_since(start_ns));
	return 0;
}

/* ---- kiln snapshot SOCK STATE MEM ---- */

int cli_snapshot(int argc, char **argv, uint64_t start_ns)
{
	static const struct option opts[] = {
		{ "leave-paused", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct api_client_response resp;
	const char *sock, *state, *mem;
	bool leave_paused = false, was_running;
	char *body;
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
	if (cli_api_call("snapshot", sock, "GET", "/", NULL, &resp))
		return 1;
	info = json_loads(resp.body, 0, NULL);
	was_running = !strcmp(json_string_value(json_object_get(info, "state")) ?: "", "Running");
	json_decref(info);
	api_client_response_free(&resp);
	body = json_dumps(json_pack("{s:s, s:s, s:s}", "snapshot_type", "Full", "snapshot_path", state, "mem_file_path",
				    mem), JSON_COMPACT);
	if (!body)
		return 1;
	t0 = time_now_ns();
	/* Firecracker's order: pause, snapshot, resume (a VM that was paused stays paused). */
	ret = was_running ? cli_api_call("snapshot", sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", NULL) : 0;
	ret = ret ?: cli_api_call("snapshot", sock, "PUT", "/snapshot/create", body, NULL);
	if (was_running && !leave_paused && cli_api_call("snapshot", sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", NULL))
		ret = 1;
	free(body);
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
	char **run_argv, *body;
	int i, n = 0, status;

	/* kiln restore --into SOCK STATE MEM [--resume]: PUT /snapshot/load into a waiting kiln. */
	if (argc >= 2 && !strcmp(argv[1], "--into")) {
		if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "--resume"))) {
			fprintf(stderr, "usage: kiln restore --into SOCK STATE MEM [--resume]\n");
			return EXIT_USAGE;
		}
		into = argv[2];
		resume = argc == 6;
		body = json_dumps(json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", argv[3], "mem_backend",
					    "backend_type", "File", "backend_path", argv[4], "resume_vm", resume),
				  JSON_COMPACT);
		if (!body)
			return 1;
		status = cli_api_call("restore", into, "PUT", "/snapshot/load", body, NULL);
		free(body);
		return status;
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

/* `pattern` with each "%d" replaced by `index`, into `out`. */
static void expand_index(char *out, size_t size, const char *pattern, unsigned long index)
{
	size_t n = 0;

	for (const char *p = pattern; *p && n + 1 < size; p++) {
		if (p[0] == '%' && p[1] == 'd') {
			int w = snprintf(out + n, size - n, "%lu", index);

			n += w > 0 ? (size_t)w : 0;
			if (n >= size)
				n = size - 1;
			p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

/*
 * Before starting N processes on it: the state file is a usable snapshot, no writable drive would be
 * shared by the clones (each would need an overlay of its own, which kiln does not make yet), and with
 * several clones every network interface gets a TAP per clone.
 */
static int check_clonable(const char *state_path, unsigned long count, const char *const *net_patterns,
			  unsigned int nr_net)
{
	struct snap_reader *r = NULL;
	struct vm_config cfg;
	char err[768];
	int ret;

	vm_config_init(&cfg);
	ret = vm_snapshot_open(state_path, &r, &cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "kiln clone: %s\n", err);
		vm_config_free(&cfg);
		return ret;
	}
	/* Two processes cannot have one TAP: with several clones every interface needs a TAP per clone. */
	for (unsigned int i = 0; i < cfg.nr_nets && count > 1 && !ret; i++) {
		bool per_clone = false;

		for (unsigned int k = 0; k < nr_net; k++)
			if (!strncmp(net_patterns[k], cfg.nets[i].iface_id, strlen(cfg.nets[i].iface_id)) &&
			    net_patterns[k][strlen(cfg.nets[i].iface_id)] == '=' && strstr(net_patterns[k], "%d"))
				per_clone = true;
		if (!per_clone) {
			fprintf(stderr, "kiln clone: interface %s is on TAP %s, which only one clone can open: give each its "
					"own with --net-override %s=<name>%%d\n", cfg.nets[i].iface_id,
				cfg.nets[i].host_dev_name, cfg.nets[i].iface_id);
			ret = -EINVAL;
		}
	}
	for (unsigned int i = 0; i < cfg.nr_drives && !ret; i++) {
		if (!cfg.drives[i].is_read_only) {
			fprintf(stderr, "kiln clone: drive %s (%s) is writable: the clones would share it; each needs a disk "
					"overlay of its own (not supported yet)\n", cfg.drives[i].drive_id,
				cfg.drives[i].path_on_host);
			ret = -EOPNOTSUPP;
		}
	}
	snap_reader_close(r);
	vm_config_free(&cfg);
	return ret;
}

int cli_clone(int argc, char **argv, uint64_t start_ns)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "api-sock-prefix", required_argument, NULL, 'a' },
		{ "console-prefix", required_argument, NULL, 'c' },
		{ "copy", no_argument, NULL, 'C' },
		{ "paused", no_argument, NULL, 'p' },
		{ "net-override", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] =
		"usage: kiln clone STATE MEM [-n N] [--api-sock-prefix P] [--console-prefix P] [--copy] [--paused]\n"
		"                  [--net-override IFACE=TAP]...\n"
		"  clone i serves P<i>.sock, writes its console to P<i>.console and its messages to P<i>.log;\n"
		"  %d in TAP becomes i (each clone needs a TAP of its own)\n";
	const char *api_prefix = NULL, *console_prefix = NULL;
	struct vm_clone_spec spec = { 0 };
	struct vm_clone *clones;
	unsigned long count = 1, wanted, i;
	char sock[4200], console[4200], log[4200], nets[CLI_MAX_NET_OVERRIDES][64];
	const char *net_patterns[CLI_MAX_NET_OVERRIDES], *net_args[CLI_MAX_NET_OVERRIDES];
	unsigned int nr_net = 0;
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
		case 'N':
			if (nr_net == CLI_MAX_NET_OVERRIDES) {
				fprintf(stderr, "kiln clone: at most %d --net-override\n", CLI_MAX_NET_OVERRIDES);
				return EXIT_USAGE;
			}
			net_patterns[nr_net++] = optarg;
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
	if (check_clonable(spec.state_path, count, net_patterns, nr_net))
		return EXIT_USAGE;
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
		for (unsigned int k = 0; k < nr_net; k++) {
			expand_index(nets[k], sizeof(nets[k]), net_patterns[k], i);
			net_args[k] = nets[k];
		}
		spec.net_overrides = net_args;
		spec.nr_net_overrides = nr_net;
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
