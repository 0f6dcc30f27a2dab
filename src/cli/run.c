// SPDX-License-Identifier: MIT
/* `kiln run`: boot one VM in the foreground, its console on the terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "lib/log.h"
#include "vmm/config.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/clone.h"
#include "vmm/instance.h"
#include "vmm/restore.h"
#include "vmm/snapshot.h"
#include "api/server.h"

enum {
	OPT_KERNEL = 1000, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_CONSOLE, OPT_CONFIG, OPT_VERBOSE,
	OPT_QUIET, OPT_PROFILE, OPT_PROFILE_HZ, OPT_API_SOCK, OPT_BOOT, OPT_DISK, OPT_NET, OPT_RESTORE, OPT_MEM,
	OPT_COPY, OPT_PAUSED, OPT_VERIFY, OPT_READY_FD, OPT_API_TIMEOUT_MS, OPT_CONSOLE_MAX,
};

static const struct option run_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "console-max-bytes", required_argument, NULL, OPT_CONSOLE_MAX },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "profile-hz", required_argument, NULL, OPT_PROFILE_HZ },
	{ "api-sock", required_argument, NULL, OPT_API_SOCK },
	{ "api-timeout-ms", required_argument, NULL, OPT_API_TIMEOUT_MS },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "copy", no_argument, NULL, OPT_COPY },
	{ "paused", no_argument, NULL, OPT_PAUSED },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "ready-fd", required_argument, NULL, OPT_READY_FD },
	CLI_RESTORE_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A path or command line flag into the config: `flag` names it when it is not UTF-8 (config_text_valid). */
static int replace_string(const char *flag, char **field, const char *value)
{
	char *copy;

	if (!config_text_valid(value)) {
		fprintf(stderr, "kiln: --%s: not valid UTF-8 (a JSON config cannot hold it)\n", flag);
		return -EINVAL;
	}
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* Parse a decimal flag value in [min, max]; 0 on success. */
static int parse_number(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	if (config_parse_uint(text, min, max, out)) {
		fprintf(stderr, "kiln: --%s: expected an integer %llu..%llu, got '%s'\n", flag, (unsigned long long)min,
			(unsigned long long)max, text);
		return -EINVAL;
	}
	return 0;
}

static void print_emulation_stats(const struct vm *vm)
{
	uint64_t total = 0;
	unsigned int i, k;

	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct x86_emu_stats *s = &vm->vcpus[i]->emu_stats;

		for (k = 0; k < s->nr_kinds; k++) {
			pr_info("  vCPU %u emulated %-12s %llu times", i, s->kinds[k].mnemonic,
				(unsigned long long)s->kinds[k].count);
			total += s->kinds[k].count;
		}
		total += s->other;
	}
	pr_info("instructions emulated by kiln: %llu", (unsigned long long)total);
	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i]->pvm.syscalls)
			pr_info("  vCPU %u: %llu user-mode SYSCALLs completed by kiln", i,
				(unsigned long long)vm->vcpus[i]->pvm.syscalls);
}

/*
 * kiln's own memory next to the guest's: guest RAM is a memfd (shared memory, RssShmem), so what kiln
 * itself uses is the anonymous and file-backed resident memory.
 */
static void print_memory_split(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	long anon = -1, file = -1, shmem = -1;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "RssFile: %ld", &file);
		sscanf(line, "RssShmem: %ld", &shmem);
	}
	fclose(f);
	pr_info("RSS now: kiln's own %ld KiB (anonymous %ld + file %ld), guest memory touched %ld KiB", anon + file, anon,
		file, shmem);
}

static void print_run_stats(const struct vm *vm)
{
	struct rusage ru;
	uint64_t first = atomic_load(&vm->first_run_ns);
	uint64_t exits = 0;
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++)
		exits += vm->vcpus[i]->nr_exits;
	if (first)
		pr_info("process start to first KVM_RUN: %.3f ms", (double)(first - vm->start_ns) / 1e6);
	pr_info("run time: %.3f s, %llu exits to kiln", (double)(time_now_ns() - vm->start_ns) / 1e9,
		(unsigned long long)exits);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		pr_info("peak RSS of kiln, guest memory included: %ld KiB", ru.ru_maxrss);
	print_memory_split();
	print_emulation_stats(vm);
}

int cli_run(int argc, char **argv, uint64_t start_ns)
{
	struct vm_config cfg;
	struct vm vm;
	const char *config_path = NULL;
	bool verbose = false, quiet = false;
	const char *profile_path = NULL;
	const char *api_sock = NULL;
	struct api_server *api = NULL;
	struct api_server_options api_opts = { 0 };
	struct instance inst;
	bool wait_for_api, machine_flags = false;
	const char *restore_path = NULL;
	struct vm_restore_options restore = { 0 };
	struct vm_restore_overrides overrides = { .n = 0 };
	int ready_fd = -1;
	uint64_t profile_hz = 100;
	char err[512];
	uint64_t n;
	int opt, ret, status, signo;

	vm_config_init(&cfg);
	optind = 1;
	/* First pass: only --config, --help and syntax errors; the file is read before the flags apply. */
	while ((opt = getopt_long(argc, argv, "hv", run_options, NULL)) != -1) {
		if (opt == OPT_CONFIG)
			config_path = optarg;
		if (opt == 'h') {
			printf("usage: kiln run [VM.json] [--kernel PATH] [--initrd PATH] [--cmdline STR] [--cpus N]\n"
			       "                [--memory MIB] [--console stdio|PATH] [--console-max-bytes N] [--verbose] [--quiet]\n"
			       "                [--profile FILE [--profile-hz N]] [--api-sock PATH] [--api-timeout-ms MS]\n"
			       "                [--boot linux64|pvh]\n"
			       "                [--disk PATH[,ro][,root][,id=NAME][,cache=unsafe|writeback][,io=sync|async]]...\n"
			       "                [--net TAP[,mac=xx:xx:xx:xx:xx:xx][,id=NAME][,mtu=N]]...\n"
			       "       kiln run --restore STATE --mem MEM [--copy] [--paused] [--verify] [--console stdio|PATH]\n"
			       "                [--console-max-bytes N]\n"
			       "                [--api-sock PATH] [--verbose] [--quiet]\n"
			       "                " CLI_RESTORE_USAGE "\n"
			       "With --api-sock and no kernel (no config file, no --kernel), kiln waits for its\n"
			       "configuration over the API and boots on PUT /actions InstanceStart, or loads a\n"
			       "snapshot on PUT /snapshot/load (docs/api.yaml).\n");
			vm_config_free(&cfg);
			return 0;
		}
		if (opt == '?') {
			vm_config_free(&cfg);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (config_path || optind + 1 < argc) {
			fprintf(stderr, "kiln run: one config file at most\n");
			vm_config_free(&cfg);
			return EXIT_USAGE;
		}
		config_path = argv[optind];
	}
	/* The file first, then the flags over it. */
	if (config_path && vm_config_load_file(&cfg, config_path, err, sizeof(err))) {
		fprintf(stderr, "kiln: %s\n", err);
		vm_config_free(&cfg);
		return EXIT_USAGE;
	}
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", run_options, NULL)) != -1) {
		ret = 0;
		switch (opt) {
		case OPT_KERNEL:
			machine_flags = true;
			ret = replace_string("kernel", &cfg.kernel_path, optarg);
			break;
		case OPT_INITRD:
			machine_flags = true;
			ret = replace_string("initrd", &cfg.initrd_path, optarg);
			break;
		case OPT_CMDLINE:
			machine_flags = true;
			if (strlen(optarg) >= CONFIG_MAX_CMDLINE) {
				fprintf(stderr, "kiln: --cmdline: longer than %d bytes\n", CONFIG_MAX_CMDLINE - 1);
				ret = -EINVAL;
				break;
			}
			ret = replace_string("cmdline", &cfg.cmdline, optarg);
			break;
		case OPT_CPUS:
			machine_flags = true;
			ret = parse_number("cpus", optarg, 1, CONFIG_MAX_VCPUS, &n);
			cfg.vcpus = (unsigned int)n;
			break;
		case OPT_MEMORY:
			machine_flags = true;
			ret = parse_number("memory", optarg, CONFIG_MIN_MEM_MIB, CONFIG_MAX_MEM_MIB, &n);
			cfg.mem_mib = n;
			break;
		case OPT_CONSOLE:
			ret = replace_string("console", &cfg.console_path, optarg);
			break;
		case OPT_CONSOLE_MAX:
			ret = parse_number("console-max-bytes", optarg, 1, UINT64_MAX, &n);
			cfg.console_max_bytes = n;
			break;
		case OPT_DISK:
			machine_flags = true;
			ret = vm_config_add_disk_flag(&cfg, optarg, err, sizeof(err));
			if (ret)
				fprintf(stderr, "kiln: %s\n", err);
			break;
		case OPT_NET:
			machine_flags = true;
			ret = vm_config_add_net_flag(&cfg, optarg, err, sizeof(err));
			if (ret)
				fprintf(stderr, "kiln: %s\n", err);
			break;
		case 'v':
		case OPT_VERBOSE:
			verbose = true;
			break;
		case OPT_QUIET:
			quiet = true;
			break;
		case OPT_PROFILE:
			profile_path = optarg;
			break;
		case OPT_API_SOCK:
			api_sock = optarg;
			break;
		case OPT_PROFILE_HZ:
			ret = parse_number("profile-hz", optarg, 1, 10000, &profile_hz);
			break;
		case OPT_RESTORE:
			restore_path = optarg;
			break;
		case OPT_MEM:
			restore.mem_path = optarg;
			break;
		case OPT_COPY:
			restore.copy = true;
			break;
		case OPT_PAUSED:
			restore.paused = true;
			break;
		case OPT_VERIFY:
			restore.verify = true;
			break;
		case OPT_API_TIMEOUT_MS:
			ret = parse_number("api-timeout-ms", optarg, 100, 3600 * 1000, &n);
			api_opts.request_timeout_ms = (unsigned int)n;
			break;
		case OPT_READY_FD:
			ret = parse_number("ready-fd", optarg, 3, 65535, &n);
			ready_fd = (int)n;
			break;
		case CLI_OPT_NET_OVERRIDE:
		case CLI_OPT_DISK_OVERRIDE:
		case CLI_OPT_DISK_COPY:
		case CLI_OPT_DISK_DIR:
			ret = cli_restore_option(&overrides, opt, optarg, "kiln");
			break;
		case OPT_BOOT:
			machine_flags = true;
			if (!strcmp(optarg, "linux64")) {
				cfg.boot = VM_BOOT_LINUX64;
			} else if (!strcmp(optarg, "pvh")) {
				cfg.boot = VM_BOOT_PVH;
			} else {
				fprintf(stderr, "kiln: --boot: expected \"linux64\" or \"pvh\", got '%s'\n", optarg);
				ret = -EINVAL;
			}
			break;
		default:
			break;
		}
		if (ret) {
			vm_config_free(&cfg);
			return EXIT_USAGE;
		}
	}
	log_set_level(verbose ? LOG_DEBUG : quiet ? LOG_WARN : LOG_INFO);
	if (restore_path ? (config_path || machine_flags || !restore.mem_path)
			 : (restore.mem_path || restore.copy || restore.paused || restore.verify || overrides.n || overrides.disk_dir)) {
		fprintf(stderr, "kiln: --restore STATE needs --mem MEM and takes no config file or machine flags; "
				"--mem, --copy, --paused, --verify, --net-override, --disk-override, --disk-copy and --disk-dir go "
				"with --restore\n");
		vm_config_free(&cfg);
		return EXIT_USAGE;
	}
	/* As Firecracker: a VM with a kernel (file or flags) boots at once; with only the socket, it waits. */
	wait_for_api = api_sock && !cfg.kernel_path && !restore_path;
	if (!cfg.kernel_path && !api_sock && !restore_path) {
		fprintf(stderr, "kiln: boot-source.kernel_image_path: required (a config file or --kernel; or --api-sock "
				"to configure the VM over the API)\n");
		vm_config_free(&cfg);
		return EXIT_USAGE;
	}
	if (!wait_for_api && !restore_path && vm_config_validate(&cfg, err, sizeof(err))) {
		fprintf(stderr, "kiln: %s\n", err);
		vm_config_free(&cfg);
		return EXIT_USAGE;
	}
	ret = instance_init(&inst, &cfg);
	if (ret) {
		pr_err("cannot set up the VM: %s", strerror(-ret));
		vm_config_free(&cfg);
		return 1;
	}

	inst.profile_hz = profile_path ? (unsigned int)profile_hz : 0;
	if (restore_path) {
		/* The machine and its state come from the snapshot; the console and the API are this process's. */
		ret = instance_restore(&inst, &vm, restore_path, &restore, &overrides, start_ns, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "kiln: cannot restore %s: %s\n", restore_path, err);
			instance_destroy(&inst);
			vm_config_free(&cfg);
			return cli_restore_status(ret);
		}
	} else if (!wait_for_api) {
		ret = instance_start(&inst, &vm, start_ns, err, sizeof(err));
		if (ret) {
			pr_err("%s", err);
			goto fail;
		}
	}
	if (api_sock && api_server_start(&api, api_sock, &api_opts, instance_handle, &inst, err, sizeof(err))) {
		pr_err("cannot serve the API on %s: %s", api_sock, err);
		if (wait_for_api)
			goto fail;
		goto fail_vm;
	}
	/* A snapshot written over the socket would leave the VM unreachable (the type check refuses it too). */
	if (api_sock && !wait_for_api && file_set_add_path(&vm.files, api_sock))
		pr_warn("API socket %s: not in the VM's file set", api_sock);
	if (wait_for_api) {
		pr_info("waiting for the VM's configuration on %s (PUT /boot-source, /machine-config, ..., then PUT "
			"/actions InstanceStart)", api_sock);
		ret = instance_boot_from_api(&inst, &vm, start_ns, &signo);
		if (ret) {
			api_server_stop(api);
			instance_destroy(&inst);
			vm_config_free(&cfg);
			return ret == -EINTR ? 0 : 1;
		}
		if (file_set_add_path(&vm.files, api_sock))
			pr_warn("API socket %s: not in the VM's file set", api_sock);
	}
	if (ready_fd >= 0)
		vm_clone_report_ready(ready_fd); /* kiln clone waits for this: the VM is about to run */
	status = vm_run(&vm);
	/* Before the VM goes away: a request in progress finishes first. */
	api_server_stop(api);
	instance_destroy(&inst);
	console_restore_terminal();
	pr_info("%s", vm.stop_message[0] ? vm.stop_message : "VM stopped");
	if (verbose)
		print_run_stats(&vm);
	if (profile_path) {
		ret = vm_write_profile(&vm, profile_path);
		if (ret)
			pr_err("cannot write profile %s: %s", profile_path, strerror(-ret));
		else
			pr_info("profile written to %s (scripts/profile-report %s System.map)", profile_path, profile_path);
	}
	vm_destroy(&vm);
	vm_config_free(&cfg);
	return status;

fail_vm:
	vm_destroy(&vm);
fail:
	instance_destroy(&inst);
	vm_config_free(&cfg);
	return 1;
}
