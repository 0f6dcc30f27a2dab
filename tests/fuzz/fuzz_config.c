// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the VM configuration (src/vmm/config.c): the --config-file JSON parser and the
 * `kiln run --disk` / `--net` flag parsers, on hostile text.
 *
 * Input: text that starts with '-' is a list of flags, one per line, "--disk SPEC" or "--net SPEC"
 * (anything else on a line is skipped), applied in order to one config; any other input is a JSON
 * config file, parsed over a fresh config and then again over the config that first parse produced.
 *
 * Invariants (abort on violation):
 * - an error is -EINVAL or -ENOMEM with a message, and leaves the config exactly as it was (all or
 *   nothing: vm_config_to_json before and after agree);
 * - after a success the config is one kiln can describe and read back: vm_config_to_json succeeds,
 *   parsing its output over a fresh config succeeds and gives the same JSON again; the machine rules
 *   hold (vm_config_check_machine); drive ids are valid and distinct, at most one root drive,
 *   vm_config_drive_order is a permutation with the root first; the root command line can be built.
 *
 * Build and run: see tests/fuzz/README.md. Seeds: tests/fuzz/seeds/config/ (text).
 */
#include <stdbool.h>

#include "fuzz_common.h"
#include "lib/log.h"
#include "vmm/config.h"

#define ERR_SIZE 512
#define MAX_FLAGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fuzz_seed_dir())
		exit(0); /* the seeds are text in the repository */
	log_set_level(LOG_ERROR);
	return 0;
}

/* vm_config_to_json, which must succeed for any config kiln accepted. Caller frees. */
static char *to_json(const struct vm_config *cfg)
{
	char *text = vm_config_to_json(cfg);

	CHECK_MSG(text, "vm_config_to_json failed (errno %d) on an accepted config", errno);
	return text;
}

/* A failed call: a real error code, a message, and `cfg` unchanged (its JSON was `before`). */
static void check_failure(int ret, const char *err, const struct vm_config *cfg, const char *before)
{
	char *after;

	CHECK(ret == -EINVAL || ret == -ENOMEM);
	CHECK(memchr(err, '\0', ERR_SIZE) && err[0]);
	after = to_json(cfg);
	CHECK_MSG(!strcmp(before, after), "a failed parse changed the config:\n%s\n---\n%s", before, after);
	free(after);
}

/* What holds for every config a parse or a flag produced. */
static void check_config(const struct vm_config *cfg)
{
	struct vm_config again;
	bool seen[CONFIG_MAX_DRIVES] = { false };
	unsigned int roots = 0, i, j;
	char err[ERR_SIZE] = "", *text, *text2, *cmdline;
	int ret;

	CHECK(vm_config_check_machine(cfg, err, sizeof(err)) == 0);
	CHECK(cfg->nr_drives <= CONFIG_MAX_DRIVES && cfg->nr_nets <= CONFIG_MAX_NETS);
	for (i = 0; i < cfg->nr_drives; i++) {
		CHECK(config_id_valid(cfg->drives[i].drive_id));
		CHECK(cfg->drives[i].path_on_host && cfg->drives[i].path_on_host[0]);
		roots += cfg->drives[i].is_root_device;
		for (j = 0; j < i; j++)
			CHECK(strcmp(cfg->drives[i].drive_id, cfg->drives[j].drive_id));
	}
	CHECK(roots <= 1);
	for (i = 0; i < cfg->nr_drives; i++) {
		unsigned int k = vm_config_drive_order(cfg, i);

		CHECK(k < cfg->nr_drives && !seen[k]);
		seen[k] = true;
		if (i == 0 && roots)
			CHECK(cfg->drives[k].is_root_device);
	}
	for (i = 0; i < cfg->nr_nets; i++) {
		CHECK(config_id_valid(cfg->nets[i].iface_id));
		CHECK(cfg->nets[i].host_dev_name && cfg->nets[i].host_dev_name[0]);
		for (j = 0; j < i; j++)
			CHECK(strcmp(cfg->nets[i].iface_id, cfg->nets[j].iface_id));
	}
	cmdline = vm_config_root_cmdline(cfg, cfg->cmdline);
	CHECK(cmdline);
	free(cmdline);

	/* What GET /vm/config and a snapshot's CONF section hold must read back as the same config. */
	text = to_json(cfg);
	vm_config_init(&again);
	ret = vm_config_parse_json(&again, text, strlen(text), err, sizeof(err));
	CHECK_MSG(ret == 0, "kiln's own JSON does not parse back (%s):\n%s", err, text);
	text2 = to_json(&again);
	CHECK_MSG(!strcmp(text, text2), "round trip changed the config:\n%s\n---\n%s", text, text2);
	free(text2);
	free(text);
	vm_config_free(&again);
}

/* One JSON parse over `cfg`. */
static void parse_once(struct vm_config *cfg, const char *text, size_t len)
{
	char err[ERR_SIZE] = "", *before = to_json(cfg);
	int ret = vm_config_parse_json(cfg, text, len, err, sizeof(err));

	if (ret)
		check_failure(ret, err, cfg, before);
	else
		check_config(cfg);
	free(before);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	struct vm_config cfg;

	vm_config_init(&cfg);
	parse_once(&cfg, (const char *)data, size);
	/* Over a config that already holds values: replaced strings and lists, all or nothing again. */
	parse_once(&cfg, (const char *)data, size);
	vm_config_free(&cfg);
	vm_config_free(&cfg); /* documented as safe */
}

static void fuzz_flags(const uint8_t *data, size_t size)
{
	struct vm_config cfg;
	size_t off = 0;
	unsigned int n = 0;

	vm_config_init(&cfg);
	while (off < size && n++ < MAX_FLAGS) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		char *line = strndup((const char *)data + off, len), err[ERR_SIZE] = "", *before;
		int ret;

		CHECK(line);
		off += len + 1;
		before = to_json(&cfg);
		if (!strncmp(line, "--disk ", 7))
			ret = vm_config_add_disk_flag(&cfg, line + 7, err, sizeof(err));
		else if (!strncmp(line, "--net ", 6))
			ret = vm_config_add_net_flag(&cfg, line + 6, err, sizeof(err));
		else
			ret = 1;
		if (ret < 0)
			check_failure(ret, err, &cfg, before);
		else if (ret == 0)
			check_config(&cfg);
		free(before);
		free(line);
	}
	vm_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size && data[0] == '-')
		fuzz_flags(data, size);
	else
		fuzz_json(data, size);
	return 0;
}
