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

static const char *override_flag(int opt)
{
	return opt == CLI_OPT_NET_OVERRIDE ? "--net-override" : opt == CLI_OPT_DISK_OVERRIDE ? "--disk-override"
											       : "--disk-copy";
}

int cli_restore_option(struct cli_restore_overrides *ov, int opt, const char *arg, const char *verb)
{
	/* Each ends up in the VM's config, which GET /vm/config and snapshots write as JSON. */
	if (!config_text_valid(arg)) {
		fprintf(stderr, "%s: %s: the argument is not valid UTF-8 (a JSON config cannot hold it)\n", verb,
			opt == CLI_OPT_DISK_DIR ? "--disk-dir" : override_flag(opt));
		return -EINVAL;
	}
	if (opt == CLI_OPT_DISK_DIR) {
		ov->disk_dir = arg;
		return 0;
	}
	if (ov->n == CLI_MAX_OVERRIDES) {
		fprintf(stderr, "%s: at most %d --net-override, --disk-override and --disk-copy in all\n", verb,
			CLI_MAX_OVERRIDES);
		return -EINVAL;
	}
	ov->list[ov->n++] = (struct cli_restore_override){ .opt = opt, .arg = arg };
	return 0;
}

/* The argument of the first `opt` in `ov` about `id` ("ID=..." for overrides, "ID" for copies), or NULL. */
static const char *find_override(const struct cli_restore_overrides *ov, int opt, const char *id)
{
	size_t len = strlen(id);

	for (unsigned int k = 0; k < ov->n; k++) {
		const char *arg = ov->list[k].arg;

		if (ov->list[k].opt == opt && !strncmp(arg, id, len) &&
		    arg[len] == (opt == CLI_OPT_DISK_COPY ? '\0' : '='))
			return arg;
	}
	return NULL;
}

/* "IFACE=TAP" onto the snapshot's config: the interface's host_dev_name. 0 or -EINVAL with a message. */
static int apply_net_override(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	const char *eq = strchr(spec, '=');
	size_t id_len = eq ? (size_t)(eq - spec) : 0;
	char *tap;

	if (!eq || !id_len || !eq[1] || strlen(eq + 1) > 15) {
		errmsg_set(err, err_size, "expected IFACE=TAP (a TAP name of 1 to 15 bytes)");
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
	errmsg_set(err, err_size, "the snapshot has no network interface \"%.*s\"", (int)id_len, spec);
	return -EINVAL;
}

/* The overrides of one clone, as its `kiln run --restore` takes them: "ID=VALUE" strings. */
struct resolved_overrides {
	char *net[CLI_MAX_OVERRIDES];
	char *disk[CLI_MAX_OVERRIDES];
	unsigned int nr_net, nr_disk;
};

static void resolved_overrides_free(struct resolved_overrides *res)
{
	for (unsigned int k = 0; k < res->nr_net; k++)
		free(res->net[k]);
	for (unsigned int k = 0; k < res->nr_disk; k++)
		free(res->disk[k]);
	memset(res, 0, sizeof(*res));
}

/*
 * `ov` for clone `index` onto the snapshot's config `cfg` (reader `r`, state file `state_path`): "%d"
 * in each value becomes the index, each --disk-copy makes its copy (vm_clone_copy_disk) and becomes
 * a --disk-override of it, and each override is applied to `cfg` (and so checked). The resolved
 * values go to `res` (the caller frees them with resolved_overrides_free, also after a failure).
 * 0, or -errno with a message naming the option.
 */
static int resolve_overrides(struct snap_reader *r, struct vm_config *cfg, const struct cli_restore_overrides *ov,
			     const char *state_path, unsigned long index, struct resolved_overrides *res, char *err,
			     size_t err_size)
{
	char value[SNAP_DISK_MAX_PATH + CONFIG_MAX_ID + 2], copy[SNAP_DISK_MAX_PATH + 1], msg[640];
	int ret = 0;

	memset(res, 0, sizeof(*res));
	for (unsigned int k = 0; k < ov->n && !ret; k++) {
		const struct cli_restore_override *o = &ov->list[k];
		bool net = o->opt == CLI_OPT_NET_OVERRIDE;
		char **slot = net ? &res->net[res->nr_net++] : &res->disk[res->nr_disk++];

		ret = vm_clone_expand_index(value, sizeof(value), o->arg, index);
		if (ret)
			snprintf(msg, sizeof(msg), "too long");
		if (!ret && o->opt == CLI_OPT_DISK_COPY) {
			size_t used = strlen(value);

			ret = vm_clone_disk_path(copy, sizeof(copy), ov->disk_dir, state_path, value, index);
			if (ret)
				snprintf(msg, sizeof(msg), "the copy's path is too long");
			ret = ret ?: vm_clone_copy_disk(r, cfg, value, copy, msg, sizeof(msg));
			if (!ret && (size_t)snprintf(value + used, sizeof(value) - used, "=%s", copy) >= sizeof(value) - used) {
				snprintf(msg, sizeof(msg), "the copy's path is too long");
				ret = -ENAMETOOLONG;
			}
		}
		if (!ret)
			ret = net ? apply_net_override(cfg, value, msg, sizeof(msg))
				  : vm_clone_apply_disk_override(r, cfg, value, msg, sizeof(msg));
		if (!ret && !(*slot = strdup(value)))
			ret = -ENOMEM;
		if (ret)
			errmsg_set(err, err_size, "%s %s: %s", override_flag(o->opt), o->arg,
				   ret == -ENOMEM ? "out of memory" : msg);
	}
	return ret;
}

int cli_restore_vm(struct vm *vm, struct vm_config *cfg, const char *state_path,
		   const struct vm_restore_options *opts, const struct cli_restore_overrides *ov, uint64_t start_ns,
		   char *err, size_t err_size)
{
	struct snap_reader *reader = NULL;
	struct resolved_overrides res;
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
	if (ov) {
		/* A restore is clone 0: its copies are "<drive_id>.clone0.img". */
		ret = resolve_overrides(reader, &next, ov, state_path, 0, &res, err, err_size);
		resolved_overrides_free(&res);
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
static int check_clonable(const struct vm_config *cfg, unsigned long count, const struct cli_restore_overrides *ov)
{
	int ret = 0;

	/* Two processes cannot have one TAP: with several clones every interface needs a TAP per clone. */
	for (unsigned int i = 0; i < cfg->nr_nets && count > 1; i++) {
		const char *o = find_override(ov, CLI_OPT_NET_OVERRIDE, cfg->nets[i].iface_id);

		if (!o || !strstr(o, "%d")) {
			fprintf(stderr, "kiln clone: interface %s is on TAP %s, which only one clone can open: give each its "
					"own with --net-override %s=<name>%%d\n", cfg->nets[i].iface_id,
				cfg->nets[i].host_dev_name, cfg->nets[i].iface_id);
			ret = -EINVAL;
		}
	}
	for (unsigned int i = 0; i < cfg->nr_drives; i++) {
		const struct vm_drive_config *drive = &cfg->drives[i];
		const char *o = find_override(ov, CLI_OPT_DISK_OVERRIDE, drive->drive_id);

		if (drive->is_read_only || find_override(ov, CLI_OPT_DISK_COPY, drive->drive_id) ||
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
	struct cli_restore_overrides ov = { .n = 0 };
	struct resolved_overrides res;
	struct vm_clone_spec spec = { 0 };
	struct snap_reader *reader = NULL;
	struct vm_clone *clones = NULL;
	unsigned long count = 1, wanted, i;
	char sock[4200], console[4200], log[4200], err[768];
	int opt, ret, started = 0, status = 1;
	struct vm_config cfg;
	bool failed = false;
	uint64_t t0;
	char *end;

	(void)start_ns;
	log_set_level(LOG_INFO); /* the disk copies' log lines */
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
		ret = resolve_overrides(reader, &cfg, &ov, spec.state_path, i, &res, err, sizeof(err));
		spec.net_overrides = (const char *const *)res.net;
		spec.nr_net_overrides = res.nr_net;
		spec.disk_overrides = (const char *const *)res.disk;
		spec.nr_disk_overrides = res.nr_disk;
		ret = ret ?: vm_clone_start(&spec, &clones[i], err, sizeof(err));
		resolved_overrides_free(&res);
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
