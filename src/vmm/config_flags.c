// SPDX-License-Identifier: MIT
/*
 * `kiln run --disk` and `--net`: the flag syntax for one drive or network interface, stored through the same
 * vm_config_put_drive / vm_config_put_net as the config file's lists and the API's PUTs, so the rules on
 * the whole list (one root device, no shared TAP...) are the same everywhere. tests/fuzz/fuzz_config.c
 * fuzzes these parsers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json_fields.h"
#include "lib/log.h"
#include "vmm/config.h"

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
	while ((opt = next_option(&rest))) {
		if (!strcmp(opt, "ro")) {
			d.is_read_only = true;
		} else if (!strcmp(opt, "root")) {
			d.is_root_device = true;
		} else if ((v = option_value(opt, "id"))) {
			if (!config_id_valid(v)) {
				errmsg_set(err, err_size, "--disk %s: id: expected 1..%d letters, digits or '_', got '%s'", spec,
					CONFIG_MAX_ID, v);
				goto out;
			}
			free(d.drive_id);
			d.drive_id = strdup(v);
			if (!d.drive_id)
				goto nomem;
		} else if ((v = option_value(opt, "cache")) && (!strcmp(v, "unsafe") || !strcmp(v, "writeback"))) {
			d.cache_type = strcmp(v, "unsafe") ? VM_DRIVE_CACHE_WRITEBACK : VM_DRIVE_CACHE_UNSAFE;
		} else if ((v = option_value(opt, "io")) && (!strcmp(v, "sync") || !strcmp(v, "async"))) {
			d.io_engine = strcmp(v, "sync") ? VM_DRIVE_IO_ASYNC : VM_DRIVE_IO_SYNC;
		} else {
			errmsg_set(err, err_size, "--disk %s: unknown option '%s' (ro, root, id=, cache=unsafe|writeback, "
				"io=sync|async)", spec, opt);
			goto out;
		}
	}
	d.path_on_host = strdup(path);
	if (!d.path_on_host)
		goto nomem;
	if (!d.drive_id) {
		d.drive_id = malloc(16);
		if (!d.drive_id)
			goto nomem;
		snprintf(d.drive_id, 16, "disk%u", cfg->nr_drives);
	}
	ret = vm_config_put_drive(cfg, "--disk", &d, err, err_size);
	if (!ret)
		goto out_keep;
	goto out;
nomem:
	errmsg_set(err, err_size, "out of memory");
	ret = -ENOMEM;
out:
	vm_drive_config_free(&d);
out_keep:
	free(copy);
	return ret;
}

int vm_config_add_net_flag(struct vm_config *cfg, const char *spec, char *err, size_t err_size)
{
	struct vm_net_config n = { 0 };
	char *copy = strdup(spec), *rest = copy, *tap, *opt, *end;
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
	while ((opt = next_option(&rest))) {
		if ((v = option_value(opt, "mac"))) {
			if (!json_mac_parse(v, strlen(v), n.guest_mac.bytes)) {
				errmsg_set(err, err_size, "--net %s: mac: expected xx:xx:xx:xx:xx:xx, got '%s'", spec, v);
				goto out;
			}
			n.guest_mac.set = true;
		} else if ((v = option_value(opt, "id"))) {
			if (!config_id_valid(v)) {
				errmsg_set(err, err_size, "--net %s: id: expected 1..%d letters, digits or '_', got '%s'", spec,
					CONFIG_MAX_ID, v);
				goto out;
			}
			free(n.iface_id);
			n.iface_id = strdup(v);
			if (!n.iface_id)
				goto nomem;
		} else if ((v = option_value(opt, "mtu"))) {
			unsigned long mtu;

			errno = 0;
			mtu = strtoul(v, &end, 10);
			if (errno || end == v || *end || v[0] == '-' || mtu < 68 || mtu > 65535) {
				errmsg_set(err, err_size, "--net %s: mtu: expected an integer 68..65535, got '%s'", spec, v);
				goto out;
			}
			n.mtu = (unsigned int)mtu;
		} else {
			errmsg_set(err, err_size, "--net %s: unknown option '%s' (mac=, id=, mtu=)", spec, opt);
			goto out;
		}
	}
	n.host_dev_name = strdup(tap);
	if (!n.host_dev_name)
		goto nomem;
	if (!n.iface_id) {
		n.iface_id = malloc(16);
		if (!n.iface_id)
			goto nomem;
		snprintf(n.iface_id, 16, "net%u", cfg->nr_nets);
	}
	ret = vm_config_put_net(cfg, "--net", &n, err, err_size);
	if (!ret)
		goto out_keep;
	goto out;
nomem:
	errmsg_set(err, err_size, "out of memory");
	ret = -ENOMEM;
out:
	vm_net_config_free(&n);
out_keep:
	free(copy);
	return ret;
}
