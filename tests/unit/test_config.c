// SPDX-License-Identifier: MIT
/* Unit tests for src/vmm/config.c: Firecracker --config-file schema, kiln's additions, errors by path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/config.h"

#define ERR_SIZE 512

/* Parse `json` over `cfg`; must succeed. */
static void parse_ok(struct vm_config *cfg, const char *json)
{
	char err[ERR_SIZE] = "";
	int ret = vm_config_parse_json(cfg, json, strlen(json), err, sizeof(err));

	if (ret)
		fail_msg("unexpected error %d for %s: %s", ret, json, err);
}

/* Parse `json` over a fresh config; must fail with exactly `want`, leaving the defaults untouched. */
static void parse_fails(const char *json, const char *want)
{
	struct vm_config cfg;
	char err[ERR_SIZE] = "";
	int ret;

	vm_config_init(&cfg);
	ret = vm_config_parse_json(&cfg, json, strlen(json), err, sizeof(err));
	if (ret != -EINVAL)
		fail_msg("expected -EINVAL for %s, got %d", json, ret);
	if (strcmp(err, want))
		fail_msg("for %s\n  got  \"%s\"\n  want \"%s\"", json, err, want);
	assert_null(cfg.kernel_path);
	assert_null(cfg.initrd_path);
	assert_null(cfg.cmdline);
	assert_null(cfg.console_path);
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(cfg.mem_mib, 128);
	vm_config_free(&cfg);
}

/* Like parse_fails, but `want` need only be a prefix (jansson's own wording follows it). */
static void parse_fails_prefix(const char *json, const char *want)
{
	struct vm_config cfg;
	char err[ERR_SIZE] = "";

	vm_config_init(&cfg);
	assert_int_equal(vm_config_parse_json(&cfg, json, strlen(json), err, sizeof(err)), -EINVAL);
	if (strncmp(err, want, strlen(want)))
		fail_msg("for %s\n  got  \"%s\"\n  want prefix \"%s\"", json, err, want);
	vm_config_free(&cfg);
}

static void test_defaults(void **state __attribute__((unused)))
{
	struct vm_config cfg;

	vm_config_init(&cfg);
	assert_null(cfg.kernel_path);
	assert_null(cfg.initrd_path);
	assert_null(cfg.cmdline);
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(cfg.mem_mib, 128);
	assert_false(cfg.smt);
	assert_false(cfg.track_dirty_pages);
	assert_null(cfg.console_path);
	assert_true(vm_config_console_is_stdio(&cfg));
	assert_true(cfg.pvm_tuning);

	/* An empty object changes nothing. */
	parse_ok(&cfg, "{}");
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(cfg.mem_mib, 128);
	assert_true(cfg.pvm_tuning);

	/* Absent machine-config fields keep their defaults (Firecracker requires both; kiln does not). */
	parse_ok(&cfg, "{\"machine-config\": {\"mem_size_mib\": 512}}");
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(cfg.mem_mib, 512);
	vm_config_free(&cfg);
	vm_config_free(&cfg); /* twice is harmless */
}

static void test_every_field(void **state __attribute__((unused)))
{
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\n"
		       "  \"boot-source\": {\n"
		       "    \"kernel_image_path\": \"/boot/vmlinux\",\n"
		       "    \"initrd_path\": \"/boot/initrd.cpio\",\n"
		       "    \"boot_args\": \"console=ttyS0 reboot=k panic=1\"\n"
		       "  },\n"
		       "  \"machine-config\": {\n"
		       "    \"vcpu_count\": 4,\n"
		       "    \"mem_size_mib\": 2048,\n"
		       "    \"smt\": true,\n"
		       "    \"track_dirty_pages\": true,\n"
		       "    \"cpu_template\": \"None\",\n"
		       "    \"huge_pages\": \"None\"\n"
		       "  },\n"
		       "  \"kiln\": {\n"
		       "    \"console\": \"/tmp/guest.log\",\n"
		       "    \"pvm_tuning\": false\n"
		       "  }\n"
		       "}\n");
	assert_string_equal(cfg.kernel_path, "/boot/vmlinux");
	assert_string_equal(cfg.initrd_path, "/boot/initrd.cpio");
	assert_string_equal(cfg.cmdline, "console=ttyS0 reboot=k panic=1");
	assert_int_equal(cfg.vcpus, 4);
	assert_int_equal(cfg.mem_mib, 2048);
	assert_true(cfg.smt);
	assert_true(cfg.track_dirty_pages);
	assert_string_equal(cfg.console_path, "/tmp/guest.log");
	assert_false(vm_config_console_is_stdio(&cfg));
	assert_false(cfg.pvm_tuning);
	vm_config_free(&cfg);
}

static void test_limits_accepted(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char *json, *args;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 16}}");
	assert_int_equal(cfg.vcpus, 1);
	assert_int_equal(cfg.mem_mib, 16);
	parse_ok(&cfg, "{\"machine-config\": {\"vcpu_count\": 32, \"mem_size_mib\": 1048576}}");
	assert_int_equal(cfg.vcpus, 32);
	assert_int_equal(cfg.mem_mib, 1048576);
	/* smt: Firecracker allows 1 or an even count. */
	parse_ok(&cfg, "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": true}}");
	parse_ok(&cfg, "{\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": true}}");

	/* boot_args of exactly CONFIG_MAX_CMDLINE - 1 bytes. */
	args = malloc(CONFIG_MAX_CMDLINE);
	json = malloc(CONFIG_MAX_CMDLINE + 64);
	assert_non_null(args);
	assert_non_null(json);
	memset(args, 'a', CONFIG_MAX_CMDLINE - 1);
	args[CONFIG_MAX_CMDLINE - 1] = '\0';
	snprintf(json, CONFIG_MAX_CMDLINE + 64, "{\"boot-source\": {\"kernel_image_path\": \"k\", \"boot_args\": \"%s\"}}",
		 args);
	parse_ok(&cfg, json);
	assert_int_equal(strlen(cfg.cmdline), CONFIG_MAX_CMDLINE - 1);
	free(args);
	free(json);
	vm_config_free(&cfg);
}

static void test_nulls(void **state __attribute__((unused)))
{
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"k\", \"initrd_path\": \"i\", \"boot_args\": \"a\"}}");
	assert_non_null(cfg.initrd_path);
	assert_non_null(cfg.cmdline);
	/* null clears initrd_path and boot_args (kiln's default command line). */
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"k\", \"initrd_path\": null, \"boot_args\": null}}");
	assert_string_equal(cfg.kernel_path, "k");
	assert_null(cfg.initrd_path);
	assert_null(cfg.cmdline);
	/* cpu_template null; Option<> sections null mean "not configured", as in Firecracker. */
	parse_ok(&cfg, "{\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": null},"
		       " \"balloon\": null, \"cpu-config\": null, \"entropy\": null, \"logger\": null,"
		       " \"memory-hotplug\": null, \"metrics\": null, \"mmds-config\": null, \"vsock\": null}");
	assert_int_equal(cfg.vcpus, 2);
	assert_false(cfg.entropy);
	parse_ok(&cfg, "{\"machine-config\": null}");
	assert_int_equal(cfg.vcpus, 2);
	vm_config_free(&cfg);
}

static void round_trip(const struct vm_config *cfg);

/* Firecracker's entropy device: its presence adds a virtio-rng. */
static void test_entropy(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char *json;

	vm_config_init(&cfg);
	assert_false(cfg.entropy);
	parse_ok(&cfg, "{\"entropy\": null}");
	assert_false(cfg.entropy);
	parse_ok(&cfg, "{\"entropy\": {}}");
	assert_true(cfg.entropy);
	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"entropy\": {\"rate_limiter\": null}}");
	assert_true(cfg.entropy);
	json = vm_config_to_json(&cfg);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"entropy\": {}"));
	free(json);
	round_trip(&cfg);
	vm_config_free(&cfg);
}

static void test_kiln_object(void **state __attribute__((unused)))
{
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"kiln\": {\"console\": \"out.log\"}}");
	assert_string_equal(cfg.console_path, "out.log");
	assert_true(cfg.pvm_tuning);
	/* "stdio" puts the console back on the terminal. */
	parse_ok(&cfg, "{\"kiln\": {\"console\": \"stdio\", \"pvm_tuning\": false}}");
	assert_null(cfg.console_path);
	assert_true(vm_config_console_is_stdio(&cfg));
	assert_false(cfg.pvm_tuning);
	parse_ok(&cfg, "{\"kiln\": {}}");
	assert_false(cfg.pvm_tuning);
	/* `--console stdio` stores the string itself; it still means the terminal. */
	cfg.console_path = strdup("stdio");
	assert_true(vm_config_console_is_stdio(&cfg));
	vm_config_free(&cfg);
}

static void test_unknown_fields(void **state __attribute__((unused)))
{
	parse_fails("{\"foo\": 1}",
		    "foo: unknown field (not in Firecracker's config-file schema; kiln's own settings go in the "
		    "\"kiln\" object)");
	parse_fails("{\"mmds-version\": \"V1\"}",
		    "mmds-version: unknown field (not in Firecracker's config-file schema; kiln's own settings go in "
		    "the \"kiln\" object)");
	parse_fails("{\"boot-source\": {\"kernel_image_path\": \"k\", \"kernel\": \"k\"}}",
		    "boot-source.kernel: unknown field (expected kernel_image_path, initrd_path or boot_args)");
	parse_fails("{\"machine-config\": {\"vcpus\": 2}}",
		    "machine-config.vcpus: unknown field (expected vcpu_count, mem_size_mib, smt, track_dirty_pages, "
		    "cpu_template or huge_pages)");
	parse_fails("{\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256, \"ht_enabled\": false}}",
		    "machine-config.ht_enabled: unknown field (Firecracker renamed it \"smt\")");
	parse_fails("{\"kiln\": {\"serial\": \"stdio\"}}",
		    "kiln.serial: unknown field (expected console, console_max_bytes, pvm_tuning or boot)");
	/* Case matters, as in Firecracker. */
	parse_fails_prefix("{\"Boot-Source\": {}}", "Boot-Source: unknown field");
}

static void test_wrong_types(void **state __attribute__((unused)))
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		/* sections */
		{ "{\"boot-source\": \"vmlinux\"}", "boot-source: expected an object, got \"vmlinux\"" },
		{ "{\"boot-source\": null}", "boot-source: expected an object, got null" },
		{ "{\"machine-config\": [1]}", "machine-config: expected an object or null, got an array" },
		{ "{\"kiln\": true}", "kiln: expected an object, got true" },
		{ "{\"drives\": {}}", "drives: expected an array, got an object" },
		{ "{\"drives\": null}", "drives: expected an array, got null" },
		{ "{\"network-interfaces\": \"eth0\"}", "network-interfaces: expected an array, got \"eth0\"" },
		/* boot-source */
		{ "{\"boot-source\": {\"kernel_image_path\": 7}}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got 7" },
		{ "{\"boot-source\": {\"kernel_image_path\": null}}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got null" },
		{ "{\"boot-source\": {\"kernel_image_path\": \"\"}}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got \"\"" },
		{ "{\"boot-source\": {\"kernel_image_path\": [\"a\"]}}",
		  "boot-source.kernel_image_path: expected a non-empty path string, got an array" },
		{ "{\"boot-source\": {\"initrd_path\": false}}",
		  "boot-source.initrd_path: expected a non-empty path string or null, got false" },
		{ "{\"boot-source\": {\"initrd_path\": \"\"}}",
		  "boot-source.initrd_path: expected a non-empty path string or null, got \"\"" },
		{ "{\"boot-source\": {\"boot_args\": {}}}", "boot-source.boot_args: expected a string or null, got an object" },
		{ "{\"boot-source\": {\"boot_args\": 3}}", "boot-source.boot_args: expected a string or null, got 3" },
		/* machine-config */
		{ "{\"machine-config\": {\"vcpu_count\": \"two\"}}",
		  "machine-config.vcpu_count: expected an integer 1..32, got \"two\"" },
		{ "{\"machine-config\": {\"vcpu_count\": 2.0}}", "machine-config.vcpu_count: expected an integer 1..32, got 2.0" },
		{ "{\"machine-config\": {\"vcpu_count\": null}}", "machine-config.vcpu_count: expected an integer 1..32, got null" },
		{ "{\"machine-config\": {\"vcpu_count\": true}}", "machine-config.vcpu_count: expected an integer 1..32, got true" },
		{ "{\"machine-config\": {\"mem_size_mib\": \"1G\"}}",
		  "machine-config.mem_size_mib: expected an integer 16..1048576, got \"1G\"" },
		{ "{\"machine-config\": {\"mem_size_mib\": 512.5}}",
		  "machine-config.mem_size_mib: expected an integer 16..1048576, got 512.5" },
		{ "{\"machine-config\": {\"smt\": 1}}", "machine-config.smt: expected true or false, got 1" },
		{ "{\"machine-config\": {\"smt\": \"false\"}}", "machine-config.smt: expected true or false, got \"false\"" },
		{ "{\"machine-config\": {\"track_dirty_pages\": null}}",
		  "machine-config.track_dirty_pages: expected true or false, got null" },
		{ "{\"machine-config\": {\"cpu_template\": 0}}", "machine-config.cpu_template: expected null or \"None\", got 0" },
		{ "{\"machine-config\": {\"cpu_template\": \"none\"}}",
		  "machine-config.cpu_template: expected null or \"None\", got \"none\"" },
		{ "{\"machine-config\": {\"huge_pages\": null}}", "machine-config.huge_pages: expected \"None\", got null" },
		{ "{\"machine-config\": {\"huge_pages\": \"1G\"}}", "machine-config.huge_pages: expected \"None\", got \"1G\"" },
		/* kiln */
		{ "{\"kiln\": {\"console\": 1}}", "kiln.console: expected \"stdio\" or a file path, got 1" },
		{ "{\"kiln\": {\"console\": \"\"}}", "kiln.console: expected \"stdio\" or a file path, got \"\"" },
		{ "{\"kiln\": {\"console\": null}}", "kiln.console: expected \"stdio\" or a file path, got null" },
		{ "{\"kiln\": {\"pvm_tuning\": \"yes\"}}", "kiln.pvm_tuning: expected true or false, got \"yes\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].json, cases[i].want);
}

static void test_out_of_range(void **state __attribute__((unused)))
{
	parse_fails("{\"machine-config\": {\"vcpu_count\": 0}}", "machine-config.vcpu_count: expected an integer 1..32, got 0");
	parse_fails("{\"machine-config\": {\"vcpu_count\": 33}}", "machine-config.vcpu_count: expected an integer 1..32, got 33");
	parse_fails("{\"machine-config\": {\"vcpu_count\": -1}}", "machine-config.vcpu_count: expected an integer 1..32, got -1");
	parse_fails("{\"machine-config\": {\"vcpu_count\": 4294967297}}",
		    "machine-config.vcpu_count: expected an integer 1..32, got 4294967297");
	parse_fails("{\"machine-config\": {\"mem_size_mib\": 0}}",
		    "machine-config.mem_size_mib: expected an integer 16..1048576, got 0");
	parse_fails("{\"machine-config\": {\"mem_size_mib\": 15}}",
		    "machine-config.mem_size_mib: expected an integer 16..1048576, got 15");
	parse_fails("{\"machine-config\": {\"mem_size_mib\": 1048577}}",
		    "machine-config.mem_size_mib: expected an integer 16..1048576, got 1048577");
	parse_fails("{\"machine-config\": {\"mem_size_mib\": -128}}",
		    "machine-config.mem_size_mib: expected an integer 16..1048576, got -128");
	/* Firecracker's SMT rule: 1 or an even number of vCPUs. */
	parse_fails("{\"machine-config\": {\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}}",
		    "machine-config.vcpu_count: expected 1 or an even number when smt is true, got 3");
}

static void test_boot_args_too_long(void **state __attribute__((unused)))
{
	size_t n = CONFIG_MAX_CMDLINE; /* one byte too many */
	char *json = malloc(n + 64);
	char want[128];
	int len;

	assert_non_null(json);
	len = snprintf(json, n + 64, "{\"boot-source\": {\"kernel_image_path\": \"k\", \"boot_args\": \"");
	memset(json + len, 'x', n);
	strcpy(json + len + n, "\"}}");
	snprintf(want, sizeof(want), "boot-source.boot_args: expected at most %d bytes, got %zu bytes",
		 CONFIG_MAX_CMDLINE - 1, n);
	parse_fails(json, want);
	free(json);
}

static void test_not_supported_yet(void **state __attribute__((unused)))
{
	static const char *const later[] = { "balloon", "cpu-config", "logger",
					     "memory-hotplug", "metrics", "mmds-config", "vsock" };
	char json[128], want[128];

	parse_fails("{\"pmem\": [{\"id\": \"p0\", \"path_on_host\": \"x\"}]}", "pmem: not supported yet (issue: virtio-pmem)");
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		snprintf(json, sizeof(json), "{\"%s\": {}}", later[i]);
		snprintf(want, sizeof(want), "%s: not supported yet", later[i]);
		parse_fails(json, want);
	}
	parse_fails("{\"cpu-config\": \"/etc/fc/cpu.json\"}", "cpu-config: not supported yet");
	parse_fails("{\"entropy\": {\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}}",
		    "entropy.rate_limiter: not supported yet");
	parse_fails("{\"entropy\": {\"foo\": 1}}", "entropy.foo: unknown field (expected rate_limiter)");
	parse_fails("{\"entropy\": []}", "entropy: expected an object or null, got an array");
	/* Known Firecracker values that kiln does not implement yet. */
	parse_fails("{\"machine-config\": {\"cpu_template\": \"T2\"}}",
		    "machine-config.cpu_template: \"T2\" is not supported yet (expected null or \"None\")");
	parse_fails("{\"machine-config\": {\"huge_pages\": \"2M\"}}",
		    "machine-config.huge_pages: \"2M\" is not supported yet (expected \"None\")");

	/* Empty device lists are fine. */
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"drives\": [], \"network-interfaces\": [], \"pmem\": []}");
	vm_config_free(&cfg);
}

/* Firecracker's "drives" and "network-interfaces": parsed into arrays, list-wide rules checked. */
static void test_device_lists(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char *json;

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"drives\": [{\"drive_id\": \"data\", \"path_on_host\": \"data.img\", \"is_root_device\": false,"
		       " \"is_read_only\": true},"
		       " {\"drive_id\": \"rootfs\", \"path_on_host\": \"rootfs.ext4\", \"is_root_device\": true,"
		       " \"is_read_only\": false, \"cache_type\": \"Writeback\", \"io_engine\": \"Async\"}],"
		       " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
		       " \"guest_mac\": \"06:00:ac:10:00:02\", \"mtu\": 9000}]}");
	assert_int_equal(cfg.nr_drives, 2);
	assert_string_equal(cfg.drives[0].drive_id, "data");
	assert_true(cfg.drives[0].is_read_only);
	assert_true(cfg.drives[1].is_root_device);
	assert_int_equal(cfg.drives[1].cache_type, VM_DRIVE_CACHE_WRITEBACK);
	assert_int_equal(cfg.drives[1].io_engine, VM_DRIVE_IO_ASYNC);
	/* The root drive becomes the first device (/dev/vda), the others keep their order. */
	assert_int_equal(vm_config_drive_order(&cfg, 0), 1);
	assert_int_equal(vm_config_drive_order(&cfg, 1), 0);
	assert_int_equal(cfg.nr_nets, 1);
	assert_string_equal(cfg.nets[0].host_dev_name, "tap0");
	assert_true(cfg.nets[0].guest_mac.set);
	assert_int_equal(cfg.nets[0].guest_mac.bytes[5], 2);
	assert_int_equal(cfg.nets[0].mtu, 9000);

	/* Round trip through GET /vm/config's JSON. */
	json = vm_config_to_json(&cfg);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"guest_mac\": \"06:00:ac:10:00:02\""));
	assert_non_null(strstr(json, "\"io_engine\": \"Async\""));
	{
		struct vm_config again;

		vm_config_init(&again);
		parse_ok(&again, json);
		assert_int_equal(again.nr_drives, 2);
		assert_string_equal(again.drives[1].path_on_host, "rootfs.ext4");
		assert_int_equal(again.nr_nets, 1);
		assert_memory_equal(again.nets[0].guest_mac.bytes, cfg.nets[0].guest_mac.bytes, 6);
		vm_config_free(&again);
	}
	free(json);

	/* A later list replaces the earlier one; a failed parse keeps what was there. */
	parse_ok(&cfg, "{\"drives\": [{\"drive_id\": \"d\", \"path_on_host\": \"d.img\", \"is_root_device\": false,"
		       " \"is_read_only\": false}]}");
	assert_int_equal(cfg.nr_drives, 1);
	assert_int_equal(vm_config_drive_order(&cfg, 0), 0);
	assert_int_equal(vm_config_parse_json(&cfg, "{\"drives\": [], \"machine-config\": {\"vcpu_count\": 0}}", 60, NULL, 0),
			 -EINVAL);
	assert_int_equal(cfg.nr_drives, 1);
	assert_int_equal(cfg.nr_nets, 1);
	vm_config_free(&cfg);
	assert_null(cfg.drives);

	/* List-wide rules, each error naming the entry. */
	parse_fails("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"a\", \"is_root_device\": true, \"is_read_only\": false},"
		    " {\"drive_id\": \"b\", \"path_on_host\": \"b\", \"is_root_device\": true, \"is_read_only\": false}]}",
		    "drives[1]: a root block device already exists (drive \"a\"): only one is allowed");
	parse_fails("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"a\", \"is_root_device\": false, \"is_read_only\": false},"
		    " {\"drive_id\": \"a\", \"path_on_host\": \"b\", \"is_root_device\": false, \"is_read_only\": false}]}",
		    "drives[1].drive_id: \"a\" appears twice");
	parse_fails("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"x\", \"is_root_device\": false, \"is_read_only\": false},"
		    " {\"drive_id\": \"b\", \"path_on_host\": \"x\", \"is_root_device\": false, \"is_read_only\": false}]}",
		    "drives[1].path_on_host: x is already drive \"a\"");
	parse_fails("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"x\"}]}", "drives[0].is_root_device: missing (required)");
	parse_fails("{\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\"},"
		    " {\"iface_id\": \"b\", \"host_dev_name\": \"tap0\"}]}",
		    "network-interfaces[1].host_dev_name: tap0 is already used by interface \"a\"");
	parse_fails("{\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"02:00:00:00:00:01\"},"
		    " {\"iface_id\": \"b\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"02:00:00:00:00:01\"}]}",
		    "network-interfaces[1].guest_mac: already used by interface \"a\"");
	parse_fails("{\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"a-name-too-long-for-ifnamsiz\"}]}",
		    "network-interfaces[0].host_dev_name: expected a string of 1..15 bytes, got \"a-name-too-long-for-ifnamsiz\"");
}

/* `kiln run --disk` / `--net`, and the root= Firecracker adds for a root drive. */
static void test_device_flags(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char err[256];
	char *cmdline;

	vm_config_init(&cfg);
	assert_int_equal(vm_config_add_disk_flag(&cfg, "a.img", err, sizeof(err)), 0);
	assert_int_equal(vm_config_add_disk_flag(&cfg, "b.img,ro,root,id=rootfs,cache=writeback,io=async", err, sizeof(err)), 0);
	assert_int_equal(cfg.nr_drives, 2);
	assert_string_equal(cfg.drives[0].drive_id, "disk0");
	assert_false(cfg.drives[0].is_read_only);
	assert_string_equal(cfg.drives[1].drive_id, "rootfs");
	assert_true(cfg.drives[1].is_read_only && cfg.drives[1].is_root_device);
	assert_int_equal(cfg.drives[1].cache_type, VM_DRIVE_CACHE_WRITEBACK);
	assert_int_equal(cfg.drives[1].io_engine, VM_DRIVE_IO_ASYNC);

	cmdline = vm_config_root_cmdline(&cfg, "console=ttyS0");
	assert_string_equal(cmdline, "console=ttyS0 root=/dev/vda ro");
	free(cmdline);
	cmdline = vm_config_root_cmdline(&cfg, NULL);
	assert_string_equal(cmdline, "root=/dev/vda ro");
	free(cmdline);

	assert_int_equal(vm_config_add_disk_flag(&cfg, "c.img,root", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk: a root block device already exists (drive \"rootfs\"): only one is allowed");
	assert_int_equal(vm_config_add_disk_flag(&cfg, "c.img,rw", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk c.img,rw: unknown option 'rw' (ro, root, id=, cache=unsafe|writeback, io=sync|async)");
	assert_int_equal(vm_config_add_disk_flag(&cfg, ",ro", err, sizeof(err)), -EINVAL);
	assert_int_equal(vm_config_add_disk_flag(&cfg, "c.img,id=a-b", err, sizeof(err)), -EINVAL);
	assert_int_equal(vm_config_add_disk_flag(&cfg, "a.img", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk.path_on_host: a.img is already drive \"disk0\"");
	assert_int_equal(cfg.nr_drives, 2);

	assert_int_equal(vm_config_add_net_flag(&cfg, "tap0,mac=06:00:00:00:00:01,mtu=1400", err, sizeof(err)), 0);
	assert_int_equal(vm_config_add_net_flag(&cfg, "tap1", err, sizeof(err)), 0);
	assert_int_equal(cfg.nr_nets, 2);
	assert_string_equal(cfg.nets[0].iface_id, "net0");
	assert_string_equal(cfg.nets[1].iface_id, "net1");
	assert_int_equal(cfg.nets[0].mtu, 1400);
	assert_false(cfg.nets[1].guest_mac.set);
	assert_int_equal(vm_config_add_net_flag(&cfg, "tap2,mac=06:00:00:00:00", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net tap2,mac=06:00:00:00:00: mac: expected xx:xx:xx:xx:xx:xx, got '06:00:00:00:00'");
	assert_int_equal(vm_config_add_net_flag(&cfg, "tap2,mtu=20", err, sizeof(err)), -EINVAL);
	assert_int_equal(vm_config_add_net_flag(&cfg, "tap0", err, sizeof(err)), -EINVAL);
	assert_int_equal(vm_config_add_net_flag(&cfg, "0123456789abcdef", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg.nr_nets, 2);
	vm_config_free(&cfg);

	/* No root drive: the command line is the user's. */
	vm_config_init(&cfg);
	cmdline = vm_config_root_cmdline(&cfg, "quiet");
	assert_string_equal(cmdline, "quiet");
	free(cmdline);
	vm_config_free(&cfg);
}

/*
 * Found by tests/fuzz/fuzz_config.c: a --disk path or --net TAP name that is not UTF-8 was accepted,
 * and then vm_config_to_json failed (GET /vm/config answered 500, a snapshot could not write its
 * CONF section) because a JSON string cannot hold it.
 */
static void test_flags_not_utf8(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char err[256], *json;

	assert_true(config_text_valid("r\xc3\xa9sum\xc3\xa9.img"));
	assert_true(config_text_valid(""));
	assert_false(config_text_valid("\xff.img"));
	assert_false(config_text_valid("a\xc3"));             /* truncated sequence */
	assert_false(config_text_valid("\xc0\xaf"));          /* overlong '/' */
	assert_false(config_text_valid("\xed\xa0\x80"));      /* a UTF-16 surrogate */

	vm_config_init(&cfg);
	assert_int_equal(vm_config_add_disk_flag(&cfg, "da\x82ta.img,ro", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk: the path is not valid UTF-8 (a JSON config cannot hold it)");
	assert_int_equal(vm_config_add_net_flag(&cfg, "tap\xff", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net: the TAP name is not valid UTF-8 (a JSON config cannot hold it)");
	assert_int_equal(cfg.nr_drives, 0);
	assert_int_equal(cfg.nr_nets, 0);
	/* UTF-8 that is not ASCII is fine, and written back. */
	assert_int_equal(vm_config_add_disk_flag(&cfg, "d\xc3\xa9j\xc3\xa0.img", err, sizeof(err)), 0);
	json = vm_config_to_json(&cfg);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"d\xc3\xa9j\xc3\xa0.img\""));
	free(json);
	vm_config_free(&cfg);
}

static void test_malformed_json(void **state __attribute__((unused)))
{
	/* Trailing comma on line 3. */
	parse_fails_prefix("{\n  \"boot-source\": {\n    \"kernel_image_path\": \"k\",\n  }\n}\n", "line 4, column 3: ");
	/* Missing colon on line 2. */
	parse_fails("{\n \"machine-config\" {}\n}", "line 2, column 19: ':' expected near '{'");
	/* Truncated file. */
	parse_fails_prefix("{\"machine-config\": {\"vcpu_count\": 2", "line 1, column ");
	/* Garbage after the object. */
	parse_fails_prefix("{} {}", "line 1, column ");
	/* NUL inside a string. */
	parse_fails_prefix("{\"boot-source\": {\"kernel_image_path\": \"a\\u0000b\"}}", "line 1, column ");
}

static void test_duplicate_keys(void **state __attribute__((unused)))
{
	parse_fails("{\"machine-config\": {\"vcpu_count\": 1, \"vcpu_count\": 2}}",
		    "line 1, column 49: duplicate object key near '\"vcpu_count\"'");
	parse_fails_prefix("{\"kiln\": {},\n \"kiln\": {}}", "line 2, column ");
}

static void test_top_level_not_object(void **state __attribute__((unused)))
{
	parse_fails("[]", "top level: expected an object, got an array");
	parse_fails("42", "top level: expected an object, got 42");
	parse_fails("\"vm.json\"", "top level: expected an object, got \"vm.json\"");
	parse_fails("null", "top level: expected an object, got null");
}

static void test_empty(void **state __attribute__((unused)))
{
	parse_fails("", "empty config: expected a JSON object");
	parse_fails(" \n\t\n", "empty config: expected a JSON object");
}

/*
 * Firecracker's tests/framework/vm_config.json (the file docs/getting-started.md points to), as Firecracker
 * 1.x writes it, with the rootfs drive removed: kiln has no virtio-blk yet.
 */
static void test_firecracker_config(void **state __attribute__((unused)))
{
	static const char fc[] = "{\n"
				 "  \"boot-source\": {\n"
				 "    \"kernel_image_path\": \"vmlinux.bin\",\n"
				 "    \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\",\n"
				 "    \"initrd_path\": null\n"
				 "  },\n"
				 "  \"drives\": [],\n"
				 "  \"machine-config\": {\n"
				 "    \"vcpu_count\": 2,\n"
				 "    \"mem_size_mib\": 1024,\n"
				 "    \"smt\": false,\n"
				 "    \"track_dirty_pages\": false,\n"
				 "    \"huge_pages\": \"None\"\n"
				 "  },\n"
				 "  \"cpu-config\": null,\n"
				 "  \"balloon\": null,\n"
				 "  \"network-interfaces\": [],\n"
				 "  \"vsock\": null,\n"
				 "  \"logger\": null,\n"
				 "  \"metrics\": null,\n"
				 "  \"mmds-config\": null,\n"
				 "  \"entropy\": null\n"
				 "}\n";
	/* The short form: boot-source, an empty drives list, machine-config. */
	static const char minimal[] = "{\n"
				      "  \"boot-source\": {\n"
				      "    \"kernel_image_path\": \"vmlinux.bin\",\n"
				      "    \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"\n"
				      "  },\n"
				      "  \"drives\": [],\n"
				      "  \"machine-config\": {\n"
				      "    \"vcpu_count\": 2,\n"
				      "    \"mem_size_mib\": 1024\n"
				      "  }\n"
				      "}";
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_ok(&cfg, fc);
	assert_string_equal(cfg.kernel_path, "vmlinux.bin");
	assert_null(cfg.initrd_path);
	assert_string_equal(cfg.cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
	assert_int_equal(cfg.vcpus, 2);
	assert_int_equal(cfg.mem_mib, 1024);
	assert_false(cfg.smt);
	vm_config_free(&cfg);

	vm_config_init(&cfg);
	parse_ok(&cfg, minimal);
	assert_string_equal(cfg.kernel_path, "vmlinux.bin");
	assert_int_equal(cfg.vcpus, 2);
	assert_int_equal(cfg.mem_mib, 1024);
	assert_true(cfg.pvm_tuning);
	assert_null(cfg.console_path);
	vm_config_free(&cfg);
}

static void test_replace_and_atomic(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char err[ERR_SIZE];
	static const char bad[] = "{\"boot-source\": {\"kernel_image_path\": \"/new\", \"initrd_path\": null},"
				  " \"kiln\": {\"console\": \"/new.log\"}, \"machine-config\": {\"vcpu_count\": 99}}";

	vm_config_init(&cfg);
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"/a\", \"initrd_path\": \"/i\"},"
		       " \"kiln\": {\"console\": \"/a.log\"}, \"machine-config\": {\"vcpu_count\": 2}}");
	/* A second parse replaces what it names and keeps the rest. */
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"/b\"}}");
	assert_string_equal(cfg.kernel_path, "/b");
	assert_string_equal(cfg.initrd_path, "/i");
	assert_string_equal(cfg.console_path, "/a.log");
	assert_int_equal(cfg.vcpus, 2);

	/* A failing parse changes nothing, even the fields it reached before the error. */
	assert_int_equal(vm_config_parse_json(&cfg, bad, strlen(bad), err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.vcpu_count: expected an integer 1..32, got 99");
	assert_string_equal(cfg.kernel_path, "/b");
	assert_string_equal(cfg.initrd_path, "/i");
	assert_string_equal(cfg.console_path, "/a.log");
	assert_int_equal(cfg.vcpus, 2);

	/* NULL or zero-sized error buffers are allowed. */
	assert_int_equal(vm_config_parse_json(&cfg, bad, strlen(bad), NULL, 0), -EINVAL);
	assert_int_equal(vm_config_parse_json(&cfg, "x", 1, err, 0), -EINVAL);
	vm_config_free(&cfg);
}

/* A scratch directory with a kernel, an initrd and a config file. */
struct scratch {
	char dir[64];
	char kernel[128];
	char initrd[128];
	char json[128];
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int scratch_setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	strcpy(s->dir, "/tmp/kiln-test-config-XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(s->kernel, sizeof(s->kernel), "%s/vmlinux", s->dir);
	snprintf(s->initrd, sizeof(s->initrd), "%s/initrd", s->dir);
	snprintf(s->json, sizeof(s->json), "%s/vm.json", s->dir);
	write_file(s->kernel, "not really a kernel");
	write_file(s->initrd, "not really an initrd");
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;

	unlink(s->kernel);
	unlink(s->initrd);
	unlink(s->json);
	rmdir(s->dir);
	free(s);
	return 0;
}

static void test_load_file(void **state __attribute__((unused)))
{
	struct scratch *s = *state;
	struct vm_config cfg;
	char err[ERR_SIZE], want[ERR_SIZE], json[512], missing[128];

	vm_config_init(&cfg);
	snprintf(json, sizeof(json), "{\"boot-source\": {\"kernel_image_path\": \"%s\"}, \"drives\": []}", s->kernel);
	write_file(s->json, json);
	assert_int_equal(vm_config_load_file(&cfg, s->json, err, sizeof(err)), 0);
	assert_string_equal(cfg.kernel_path, s->kernel);

	/* Parse errors carry the file name. */
	write_file(s->json, "{\"machine-config\": {\"vcpus\": 2}}");
	assert_int_equal(vm_config_load_file(&cfg, s->json, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: machine-config.vcpus: unknown field", s->json);
	assert_memory_equal(err, want, strlen(want));

	write_file(s->json, "");
	assert_int_equal(vm_config_load_file(&cfg, s->json, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: empty config: expected a JSON object", s->json);
	assert_string_equal(err, want);

	write_file(s->json, "{\n\n  \"kiln\": {,}\n}");
	assert_int_equal(vm_config_load_file(&cfg, s->json, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: line 3, column ", s->json);
	assert_memory_equal(err, want, strlen(want));

	/* Files that cannot be read. */
	snprintf(missing, sizeof(missing), "%s/missing.json", s->dir);
	assert_int_equal(vm_config_load_file(&cfg, missing, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", missing);
	assert_string_equal(err, want);
	assert_int_equal(vm_config_load_file(&cfg, s->dir, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: Is a directory", s->dir);
	assert_string_equal(err, want);

	/* The earlier successful load survives the failures. */
	assert_string_equal(cfg.kernel_path, s->kernel);
	vm_config_free(&cfg);
}

static uint64_t meminfo_mib(void)
{
	unsigned long long kib = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib / 1024;
}

static void test_validate(void **state __attribute__((unused)))
{
	struct scratch *s = *state;
	struct vm_config cfg;
	char err[ERR_SIZE], want[ERR_SIZE];

	vm_config_init(&cfg);
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source.kernel_image_path: missing (give it in the config file or with --kernel)");

	cfg.kernel_path = strdup(s->kernel);
	cfg.mem_mib = 16;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), 0);
	cfg.initrd_path = strdup(s->initrd);
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), 0);

	/* Missing kernel, directory as kernel, missing initrd. */
	free(cfg.kernel_path);
	cfg.kernel_path = strdup("/nonexistent/vmlinux");
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source.kernel_image_path: /nonexistent/vmlinux: No such file or directory");
	free(cfg.kernel_path);
	cfg.kernel_path = strdup(s->dir);
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "boot-source.kernel_image_path: %s: not a regular file (a directory)", s->dir);
	assert_string_equal(err, want);
	free(cfg.kernel_path);
	cfg.kernel_path = strdup("/dev/null");
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source.kernel_image_path: /dev/null: not a regular file (a device, FIFO or socket)");
	free(cfg.kernel_path);
	cfg.kernel_path = strdup(s->kernel);
	free(cfg.initrd_path);
	cfg.initrd_path = strdup("/nonexistent/initrd");
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source.initrd_path: /nonexistent/initrd: No such file or directory");
	free(cfg.initrd_path);
	cfg.initrd_path = NULL;

	/* A file this process cannot read (root reads anything, so only as a normal user). */
	if (geteuid() != 0) {
		assert_int_equal(chmod(s->kernel, 0), 0);
		assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
		snprintf(want, sizeof(want), "boot-source.kernel_image_path: %s: Permission denied", s->kernel);
		assert_string_equal(err, want);
		assert_int_equal(chmod(s->kernel, 0644), 0);
	}

	/* More memory than the host has. */
	cfg.mem_mib = CONFIG_MAX_MEM_MIB;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "machine-config.mem_size_mib: 1048576 MiB is more than the host's %llu MiB",
		 (unsigned long long)meminfo_mib());
	assert_string_equal(err, want);
	cfg.mem_mib = 128;

	/* Values a command-line flag may have set after parsing. */
	cfg.vcpus = 0;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.vcpu_count: expected an integer 1..32, got 0");
	cfg.vcpus = 33;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.vcpu_count: expected an integer 1..32, got 33");
	cfg.vcpus = 3;
	cfg.smt = true;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.vcpu_count: expected 1 or an even number when smt is true, got 3");
	cfg.vcpus = 1;
	cfg.mem_mib = 15;
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "machine-config.mem_size_mib: expected an integer 16..1048576, got 15");
	cfg.mem_mib = 128;
	cfg.cmdline = calloc(1, CONFIG_MAX_CMDLINE + 1);
	assert_non_null(cfg.cmdline);
	memset(cfg.cmdline, 'y', CONFIG_MAX_CMDLINE);
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "boot-source.boot_args: expected at most 4095 bytes, got 4096 bytes");
	cfg.cmdline[CONFIG_MAX_CMDLINE - 1] = '\0';
	assert_int_equal(vm_config_validate(&cfg, err, sizeof(err)), 0);
	vm_config_free(&cfg);
}

static void assert_same_config(const struct vm_config *a, const struct vm_config *b)
{
#define SAME_STR(f)                                   \
	do {                                          \
		if (!a->f || !b->f)                   \
			assert_ptr_equal(a->f, b->f); \
		else                                  \
			assert_string_equal(a->f, b->f); \
	} while (0)
	SAME_STR(kernel_path);
	SAME_STR(initrd_path);
	SAME_STR(cmdline);
	SAME_STR(console_path);
#undef SAME_STR
	assert_int_equal(a->vcpus, b->vcpus);
	assert_int_equal(a->mem_mib, b->mem_mib);
	assert_int_equal(a->smt, b->smt);
	assert_int_equal(a->track_dirty_pages, b->track_dirty_pages);
	assert_int_equal(a->pvm_tuning, b->pvm_tuning);
	assert_int_equal(a->entropy, b->entropy);
}

static void round_trip(const struct vm_config *cfg)
{
	struct vm_config back;
	char *json = vm_config_to_json(cfg);

	assert_non_null(json);
	vm_config_init(&back);
	parse_ok(&back, json);
	assert_same_config(cfg, &back);
	vm_config_free(&back);
	free(json);
}

static void test_json_round_trip(void **state __attribute__((unused)))
{
	struct vm_config cfg;
	char *json;

	/* Defaults (no kernel yet). */
	vm_config_init(&cfg);
	round_trip(&cfg);

	/* Every field away from its default, with characters JSON must escape. */
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"/k \\\"quoted\\\" \\u00e9\","
		       " \"initrd_path\": \"/i\\\\n\", \"boot_args\": \"console=ttyS0 init=/bin/sh\\tx\"},"
		       " \"machine-config\": {\"vcpu_count\": 8, \"mem_size_mib\": 4096, \"smt\": true,"
		       " \"track_dirty_pages\": true},"
		       " \"kiln\": {\"console\": \"/var/log/guest.log\", \"pvm_tuning\": false}}");
	round_trip(&cfg);

	/* The output is Firecracker's schema: check the shape, not just that kiln reads it back. */
	json = vm_config_to_json(&cfg);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"boot-source\": {"));
	assert_non_null(strstr(json, "\"kernel_image_path\": \"/k \\\"quoted\\\""));
	assert_non_null(strstr(json, "\"drives\": []"));
	assert_non_null(strstr(json, "\"machine-config\": {"));
	assert_non_null(strstr(json, "\"mem_size_mib\": 4096"));
	assert_non_null(strstr(json, "\"huge_pages\": \"None\""));
	assert_non_null(strstr(json, "\"network-interfaces\": []"));
	assert_non_null(strstr(json, "\"kiln\": {"));
	free(json);

	/* Unset initrd and boot_args: null and omitted, as Firecracker writes them. */
	parse_ok(&cfg, "{\"boot-source\": {\"kernel_image_path\": \"/k\", \"initrd_path\": null, \"boot_args\": null},"
		       " \"kiln\": {\"console\": \"stdio\"}}");
	json = vm_config_to_json(&cfg);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"initrd_path\": null"));
	assert_null(strstr(json, "boot_args"));
	assert_non_null(strstr(json, "\"console\": \"stdio\""));
	free(json);
	round_trip(&cfg);
	vm_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_field),
		cmocka_unit_test(test_limits_accepted),
		cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_kiln_object),
		cmocka_unit_test(test_entropy),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_boot_args_too_long),
		cmocka_unit_test(test_not_supported_yet),
		cmocka_unit_test(test_device_lists),
		cmocka_unit_test(test_device_flags),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_top_level_not_object),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_firecracker_config),
		cmocka_unit_test(test_replace_and_atomic),
		cmocka_unit_test_setup_teardown(test_load_file, scratch_setup, scratch_teardown),
		cmocka_unit_test_setup_teardown(test_validate, scratch_setup, scratch_teardown),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_flags_not_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
