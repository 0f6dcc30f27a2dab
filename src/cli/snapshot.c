// SPDX-License-Identifier: MIT
/*
 * `kiln snapshot SOCK STATE MEM`, `kiln restore STATE MEM`, `kiln clone STATE MEM -n N`: argument parsing
 * and printing; the restore itself is src/vmm/restore.c's.
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
#include "vmm/restore.h"
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

/* The override a getopt value of CLI_RESTORE_OPTIONS gives. */
static enum vm_override_kind override_kind(int opt)
{
	return opt == CLI_OPT_NET_OVERRIDE ? VM_OVERRIDE_NET : opt == CLI_OPT_DISK_OVERRIDE ? VM_OVERRIDE_DISK
											       : VM_OVERRIDE_DISK_COPY;
}

int cli_restore_option(struct vm_restore_overrides *ov, int opt, const char *arg, const char *verb)
{
	/* Each ends up in the VM's config, which GET /vm/config and snapshots write as JSON. */
	if (!config_text_valid(arg)) {
		fprintf(stderr, "%s: %s: the argument is not valid UTF-8 (a JSON config cannot hold it)\n", verb,
			opt == CLI_OPT_DISK_DIR ? "--disk-dir" : vm_override_flag(override_kind(opt)));
		return -EINVAL;
	}
	if (opt == CLI_OPT_DISK_DIR) {
		ov->disk_dir = arg;
		return 0;
	}
	if (ov->n == VM_RESTORE_MAX_OVERRIDES) {
		fprintf(stderr, "%s: at most %d --net-override, --disk-override and --disk-copy in all\n", verb,
			VM_RESTORE_MAX_OVERRIDES);
		return -EINVAL;
	}
	ov->list[ov->n++] = (struct vm_restore_override){ .kind = override_kind(opt), .arg = arg };
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
		fprintf(stderr, "usage: kiln restore STATE MEM [--copy] [--paused] [--verify] [--console stdio|PATH] [--api-sock PATH] "
				"[--verbose]\n                    " CLI_RESTORE_USAGE "\n"
				"       kiln restore --into SOCK STATE MEM [--resume]\n");
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

/*
 * Before starting N processes on the snapshot (config `cfg`): with several clones every network
 * interface gets a TAP per clone, and no writable drive may be shared by the clones (with each other,
 * or with the snapshotted VM): each is copied or overridden, with an image per clone when N > 1.
 */
static int check_clonable(const struct vm_config *cfg, unsigned long count, const struct vm_restore_overrides *ov)
{
	int ret = 0;

	/* Two processes cannot have one TAP: with several clones every interface needs a TAP per clone. */
	for (unsigned int i = 0; i < cfg->nr_nets && count > 1; i++) {
		const char *o = vm_restore_override_find(ov, VM_OVERRIDE_NET, cfg->nets[i].iface_id);

		if (!o || !strstr(o, "%d")) {
			fprintf(stderr, "kiln clone: interface %s is on TAP %s, which only one clone can open: give each its "
					"own with --net-override %s=<name>%%d\n", cfg->nets[i].iface_id,
				cfg->nets[i].host_dev_name, cfg->nets[i].iface_id);
			ret = -EINVAL;
		}
	}
	for (unsigned int i = 0; i < cfg->nr_drives; i++) {
		const struct vm_drive_config *drive = &cfg->drives[i];
		const char *o = vm_restore_override_find(ov, VM_OVERRIDE_DISK, drive->drive_id);

		if (drive->is_read_only || vm_restore_override_find(ov, VM_OVERRIDE_DISK_COPY, drive->drive_id) ||
		    (o && (count == 1 || strstr(o, "%d"))))
			continue;
		fprintf(stderr, "kiln clone: drive %s (%s) is writable: the clones would share it; give each an image "
				"of its own with --disk-copy %s, or --disk-override %s=<path>%s\n", drive->drive_id,
			drive->path_on_host, drive->drive_id, drive->drive_id, count > 1 ? "%d" : "");
		ret = -EINVAL;
	}
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
		CLI_RESTORE_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] =
		"usage: kiln clone STATE MEM [-n N] [--api-sock-prefix P] [--console-prefix P] [--copy] [--paused]\n"
		"                  " CLI_RESTORE_USAGE "\n"
		"  clone i serves P<i>.sock, writes its console to P<i>.console and its messages to P<i>.log;\n"
		"  %d in TAP and PATH becomes i (each clone needs a TAP and writable images of its own);\n"
		"  --disk-copy copies the drive's image to DIR/<drive_id>.clone<i>.img (a reflink where the\n"
		"  filesystem can, else a sparse copy; DIR: --disk-dir, or the state file's directory)\n";
	const char *api_prefix = NULL, *console_prefix = NULL;
	struct vm_restore_overrides ov = { .n = 0 };
	struct vm_resolved_overrides res;
	struct vm_clone_spec spec = { 0 };
	struct snap_reader *reader = NULL;
	struct vm_clone *clones = NULL;
	uint64_t count = 1;
	unsigned long wanted, i;
	char sock[4200], console[4200], log[4200], err[768];
	int opt, ret, started = 0, status = 1;
	struct vm_config cfg;
	bool failed = false;
	uint64_t t0;

	(void)start_ns;
	log_set_level(LOG_INFO); /* the disk copies' log lines */
	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (config_parse_uint(optarg, 1, 1024, &count)) {
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
		case CLI_OPT_NET_OVERRIDE:
		case CLI_OPT_DISK_OVERRIDE:
		case CLI_OPT_DISK_COPY:
		case CLI_OPT_DISK_DIR:
			if (cli_restore_option(&ov, opt, optarg, "kiln clone"))
				return EXIT_USAGE;
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
	vm_config_init(&cfg);
	ret = vm_snapshot_open(spec.state_path, &reader, &cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "kiln clone: %s\n", err);
		vm_config_free(&cfg);
		return EXIT_USAGE;
	}
	if (check_clonable(&cfg, count, &ov)) {
		status = EXIT_USAGE;
		goto out;
	}
	clones = calloc(count, sizeof(*clones));
	if (!clones)
		goto out;
	t0 = time_now_ns();
	/* All of them at once, then wait for each: they restore in parallel. */
	for (i = 0; i < count; i++) {
		/* The strings are copied into the child by fork: one buffer serves every clone. */
		snprintf(sock, sizeof(sock), "%s%lu.sock", api_prefix ? api_prefix : "", i);
		snprintf(console, sizeof(console), "%s%lu.console", console_prefix ? console_prefix : "", i);
		snprintf(log, sizeof(log), "%s%lu.log", console_prefix ? console_prefix : "", i);
		spec.api_sock = api_prefix ? sock : NULL;
		spec.console_path = console_prefix ? console : NULL;
		spec.log_path = console_prefix ? log : NULL;
		/* Its TAPs and images, checked here (the clone checks them again): its copies made now. */
		ret = vm_restore_overrides_resolve(reader, &cfg, &ov, spec.state_path, i, &res, err, sizeof(err));
		spec.net_overrides = (const char *const *)res.net;
		spec.nr_net_overrides = res.nr_net;
		spec.disk_overrides = (const char *const *)res.disk;
		spec.nr_disk_overrides = res.nr_disk;
		ret = ret ?: vm_clone_start(&spec, &clones[i], err, sizeof(err));
		vm_resolved_overrides_free(&res);
		if (ret) {
			fprintf(stderr, "kiln clone: clone %lu: %s\n", i, err);
			status = i == 0 ? cli_restore_status(ret) : 1; /* nothing started: maybe a refused option */
			break;
		}
	}
	count = i;
	for (i = 0; i < count; i++) {
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
	if (started) {
		double ms = ms_since(t0);

		printf("%d clone%s running after %.1f ms (%.1f per second)\n", started, started == 1 ? "" : "s", ms,
		       (double)started * 1000.0 / ms);
	}
	if (!failed && started > 0 && (unsigned long)started == wanted)
		status = 0;
	else if (started)
		status = 1;
out:
	free(clones);
	snap_reader_close(reader);
	vm_config_free(&cfg);
	return status;
}
