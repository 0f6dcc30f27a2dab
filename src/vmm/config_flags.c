// SPDX-License-Identifier: MIT
/*
 * `kiln run --disk` and `--net`: the flag syntax for one drive or network interface, stored through the same
 * vm_config_put_drive / vm_config_put_net as the config file's lists and the API's PUTs, so the rules on
 * the whole list (one root device, no shared TAP...) are the same everywhere. tests/fuzz/fuzz_config.c
 * fuzzes these parsers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json_fields.h"
#include "lib/log.h"
#include "vmm/config.h"

int config_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Split "PATH,opt,opt=value" in place: returns the next option (NULL at the end), `*rest` advances. */
static char *next_option(char **rest)
{
	char *opt = *rest, *comma;

	if (!opt)
		return NULL;
	comma = strchr(opt, ',');
	if (comma) {
		*comma = '\0';
		*rest = comma + 1;
	} else {
		*rest = NULL;
	}
	return opt;
}

/* A `--disk`/`--net` option's value given as "name=value", or NULL. */
static const char *option_value(const char *opt, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(opt, name, n) && opt[n] == '=' ? opt + n + 1 : NULL;
}

/* An "id=NAME" option into `*id`: 0, -EINVAL with a message naming the flag, or -ENOMEM. */
static int take_id(const char *flag, const char *spec, const char *v, char **id, char *err, size_t err_size)
{
	if (!config_id_valid(v)) {
		errmsg_set(err, err_size, "%s %s: id: expected 1..%d letters, digits or '_', got '%s'", flag, spec,
			   CONFIG_MAX_ID, v);
		return -EINVAL;
	}
	free(*id);
	*id = strdup(v);
	return *id ? 0 : -ENOMEM;
}

/* The device's main string (the path, the TAP) and its id, "<prefix><n>" unless one was given. 0 or -ENOMEM. */
static int take_name(char **field, const char *value, char **id, const char *prefix, unsigned int n)
{
	*field = strdup(value);
	if (!*field)
		return -ENOMEM;
	if (!*id && asprintf(id, "%s%u", prefix, n) < 0) {
		*id = NULL; /* asprintf leaves it undefined */
		return -ENOMEM;
	}
	return 0;
}

int vm_config_add_disk_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	struct vm_drive_config d = { 0 };
	char *copy = strdup(spec), *rest = copy, *path, *opt;
	const char *v;
	int ret = -EINVAL;

	if (!copy) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	path = next_option(&rest);
	if (!path[0]) {
		errmsg_set(err, err_size, "--disk: expected PATH[,ro][,root][,id=NAME][,cache=unsafe|writeback][,io=sync|async], got '%s'",
			spec);
		goto out;
	}
	if (!config_text_valid(path)) {
		errmsg_set(err, err_size, "--disk: the path is not valid UTF-8 (a JSON config cannot hold it)");
		goto out;
	}
	ret = 0;
	while (!ret && (opt = next_option(&rest))) {
		if (!strcmp(opt, "ro")) {
			d.is_read_only = true;
		} else if (!strcmp(opt, "root")) {
			d.is_root_device = true;
		} else if ((v = option_value(opt, "id"))) {
			ret = take_id("--disk", spec, v, &d.drive_id, err, err_size);
		} else if ((v = option_value(opt, "cache")) && (!strcmp(v, "unsafe") || !strcmp(v, "writeback"))) {
			d.cache_type = strcmp(v, "unsafe") ? VM_DRIVE_CACHE_WRITEBACK : VM_DRIVE_CACHE_UNSAFE;
		} else if ((v = option_value(opt, "io")) && (!strcmp(v, "sync") || !strcmp(v, "async"))) {
			d.io_engine = strcmp(v, "sync") ? VM_DRIVE_IO_ASYNC : VM_DRIVE_IO_SYNC;
		} else {
			errmsg_set(err, err_size, "--disk %s: unknown option '%s' (ro, root, id=, cache=unsafe|writeback, "
				"io=sync|async)", spec, opt);
			ret = -EINVAL;
		}
	}
	ret = ret ?: take_name(&d.path_on_host, path, &d.drive_id, "disk", cfg->nr_drives);
	ret = ret ?: vm_config_put_drive(cfg, "--disk", &d, err, err_size);
out:
	if (ret == -ENOMEM)
		errmsg_set(err, err_size, "out of memory");
	if (ret)
		vm_drive_config_free(&d); /* on success the config owns the strings */
	free(copy);
	return ret;
}

int vm_config_add_net_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	struct vm_net_config n = { 0 };
	char *copy = strdup(spec), *rest = copy, *tap, *opt;
	const char *v;
	int ret = -EINVAL;

	if (!copy) {
		errmsg_set(err, err_size, "out of memory");
		return -ENOMEM;
	}
	tap = next_option(&rest);
	if (!tap[0] || strlen(tap) > 15) {
		errmsg_set(err, err_size, "--net: expected TAP[,mac=xx:xx:xx:xx:xx:xx][,id=NAME][,mtu=N] with a TAP name of "
			"1..15 bytes, got '%s'", spec);
		goto out;
	}
	if (!config_text_valid(tap)) {
		errmsg_set(err, err_size, "--net: the TAP name is not valid UTF-8 (a JSON config cannot hold it)");
		goto out;
	}
	ret = 0;
	while (!ret && (opt = next_option(&rest))) {
		if ((v = option_value(opt, "mac"))) {
			n.guest_mac.set = json_mac_parse(v, strlen(v), n.guest_mac.bytes);
			if (!n.guest_mac.set) {
				errmsg_set(err, err_size, "--net %s: mac: expected xx:xx:xx:xx:xx:xx, got '%s'", spec, v);
				ret = -EINVAL;
			}
		} else if ((v = option_value(opt, "id"))) {
			ret = take_id("--net", spec, v, &n.iface_id, err, err_size);
		} else if ((v = option_value(opt, "mtu"))) {
			uint64_t mtu = 0;

			if (config_parse_uint(v, 68, 65535, &mtu)) {
				errmsg_set(err, err_size, "--net %s: mtu: expected an integer 68..65535, got '%s'", spec, v);
				ret = -EINVAL;
			}
			n.mtu = (unsigned int)mtu;
		} else {
			errmsg_set(err, err_size, "--net %s: unknown option '%s' (mac=, id=, mtu=)", spec, opt);
			ret = -EINVAL;
		}
	}
	ret = ret ?: take_name(&n.host_dev_name, tap, &n.iface_id, "net", cfg->nr_nets);
	ret = ret ?: vm_config_put_net(cfg, "--net", &n, err, err_size);
out:
	if (ret == -ENOMEM)
		errmsg_set(err, err_size, "out of memory");
	if (ret)
		vm_net_config_free(&n);
	free(copy);
	return ret;
}
