// SPDX-License-Identifier: MIT
/*
 * A struct vm_config as Firecracker-style JSON (GET /vm/config, a snapshot's CONF section, logs): the
 * inverse of vm_config_parse_json (src/vmm/config.c), which reads back what this writes.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>

#include "vmm/config.h"

static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
	if (!obj) {
		json_decref(value);
		*ok = false;
	} else if (!value || json_object_set_new(obj, key, value)) {
		*ok = false; /* json_object_set_new drops the reference on failure too */
	}
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static void drive_to_json(json_t *o, const void *elem, bool *ok)
{
	const struct vm_drive_config *d = elem;

	put(o, "drive_id", json_string(d->drive_id), ok);
	put(o, "path_on_host", json_string(d->path_on_host), ok);
	put(o, "is_root_device", json_boolean(d->is_root_device), ok);
	put(o, "is_read_only", json_boolean(d->is_read_only), ok);
	if (d->partuuid)
		put(o, "partuuid", json_string(d->partuuid), ok);
	put(o, "cache_type", json_string(vm_drive_cache_names[d->cache_type]), ok);
	put(o, "io_engine", json_string(vm_drive_io_engine_names[d->io_engine]), ok);
}

static void net_to_json(json_t *o, const void *elem, bool *ok)
{
	const struct vm_net_config *n = elem;

	put(o, "iface_id", json_string(n->iface_id), ok);
	put(o, "host_dev_name", json_string(n->host_dev_name), ok);
	if (n->guest_mac.set) {
		const uint8_t *m = n->guest_mac.bytes;

		put(o, "guest_mac", json_sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]),
		    ok);
	}
	if (n->mtu)
		put(o, "mtu", json_integer(n->mtu), ok);
}

/* A device list as a JSON array of objects, each filled by `fill`; NULL when out of memory. */
static json_t *list_to_json(const void *array, unsigned int n, size_t elem_size,
			    void (*fill)(json_t *o, const void *elem, bool *ok))
{
	json_t *a = json_array();
	bool ok = a != NULL;

	for (unsigned int i = 0; ok && i < n; i++) {
		json_t *o = json_object();

		if (o)
			fill(o, (const char *)array + i * elem_size, &ok);
		if (!o || json_array_append_new(a, o))
			ok = false;
	}
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

char *vm_config_to_json(const struct vm_config *cfg)
{
	json_t *root = json_object(), *boot = json_object(), *machine = json_object(), *kiln = json_object();
	bool ok = root && boot && machine && kiln;
	char *out = NULL;

	/* Firecracker omits boot_args when unset (boot_source.rs: skip_serializing_if) and writes initrd_path null. */
	if (cfg->kernel_path)
		put(boot, "kernel_image_path", json_string(cfg->kernel_path), &ok);
	put(boot, "initrd_path", string_or_null(cfg->initrd_path), &ok);
	if (cfg->cmdline)
		put(boot, "boot_args", json_string(cfg->cmdline), &ok);

	put(machine, "vcpu_count", json_integer(cfg->vcpus), &ok);
	put(machine, "mem_size_mib", json_integer((json_int_t)cfg->mem_mib), &ok);
	put(machine, "smt", json_boolean(cfg->smt), &ok);
	put(machine, "track_dirty_pages", json_boolean(cfg->track_dirty_pages), &ok);
	put(machine, "huge_pages", json_string("None"), &ok);

	put(kiln, "console", json_string(vm_config_console_is_stdio(cfg) ? "stdio" : cfg->console_path), &ok);
	put(kiln, "console_max_bytes", json_integer((json_int_t)cfg->console_max_bytes), &ok);
	put(kiln, "pvm_tuning", json_boolean(cfg->pvm_tuning), &ok);
	put(kiln, "boot", json_string(vm_boot_protocol_names[cfg->boot]), &ok);

	/* put() takes the reference even when it fails, so each object is handed over exactly once. */
	put(root, "boot-source", boot, &ok);
	put(root, "drives", list_to_json(cfg->drives, cfg->nr_drives, sizeof(*cfg->drives), drive_to_json), &ok);
	put(root, "machine-config", machine, &ok);
	put(root, "network-interfaces", list_to_json(cfg->nets, cfg->nr_nets, sizeof(*cfg->nets), net_to_json),
	    &ok);
	if (cfg->entropy)
		put(root, "entropy", json_object(), &ok);
	put(root, "kiln", kiln, &ok);

	if (ok)
		out = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!out)
		errno = ENOMEM;
	return out;
}

