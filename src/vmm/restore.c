// SPDX-License-Identifier: MIT
/* A snapshot file restored into a new VM, with the restore's overrides (vmm/restore.h). */
#include "vmm/restore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "vmm/clone.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

const char *vm_override_flag(enum vm_override_kind kind)
{
	return kind == VM_OVERRIDE_NET ? "--net-override" : kind == VM_OVERRIDE_DISK ? "--disk-override" : "--disk-copy";
}

const char *vm_restore_override_find(const struct vm_restore_overrides *ov, enum vm_override_kind kind,
				     const char *id)
{
	size_t len = strlen(id);

	for (unsigned int k = 0; k < ov->n; k++) {
		const char *arg = ov->list[k].arg;

		if (ov->list[k].kind == kind && !strncmp(arg, id, len) &&
		    arg[len] == (kind == VM_OVERRIDE_DISK_COPY ? '\0' : '='))
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

void vm_resolved_overrides_free(struct vm_resolved_overrides *res)
{
	for (unsigned int k = 0; k < res->nr_net; k++)
		free(res->net[k]);
	for (unsigned int k = 0; k < res->nr_disk; k++)
		free(res->disk[k]);
	memset(res, 0, sizeof(*res));
}

int vm_restore_overrides_resolve(struct snap_reader *r, struct vm_config *cfg, const struct vm_restore_overrides *ov,
				 const char *state_path, unsigned long index, struct vm_resolved_overrides *res,
				 char *err, size_t err_size)
{
	char value[SNAP_DISK_MAX_PATH + CONFIG_MAX_ID + 2], copy[SNAP_DISK_MAX_PATH + 1], msg[640];
	int ret = 0;

	memset(res, 0, sizeof(*res));
	for (unsigned int k = 0; k < ov->n && !ret; k++) {
		const struct vm_restore_override *o = &ov->list[k];
		bool net = o->kind == VM_OVERRIDE_NET;
		char **slot = net ? &res->net[res->nr_net++] : &res->disk[res->nr_disk++];

		ret = vm_clone_expand_index(value, sizeof(value), o->arg, index);
		if (ret)
			snprintf(msg, sizeof(msg), "too long");
		if (!ret && o->kind == VM_OVERRIDE_DISK_COPY) {
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
			errmsg_set(err, err_size, "%s %s: %s", vm_override_flag(o->kind), o->arg,
				   ret == -ENOMEM ? "out of memory" : msg);
	}
	return ret;
}

/* `kiln restore S M --console S` would write guest output over the state file it restores from. */
static int console_not_state(const struct vm_config *cfg, const char *state_path, char *err, size_t err_size)
{
	struct file_set state = { .n = 0 };
	struct stat st;

	if (vm_config_console_is_stdio(cfg) || file_set_add_path(&state, state_path) ||
	    stat(cfg->console_path, &st) < 0 || !file_set_has(&state, &st))
		return 0;
	errmsg_set(err, err_size, "console %s: the state file being restored", cfg->console_path);
	return -EINVAL;
}

int vm_restore_file(struct vm *vm, struct vm_config *cfg, const char *state_path, const struct vm_restore_options *opts,
		    const struct vm_restore_overrides *ov, uint64_t start_ns, char *err, size_t err_size)
{
	struct snap_reader *reader = NULL;
	struct vm_resolved_overrides res;
	struct vm_restore_options o = *opts;
	struct vm_config next, old;
	int ret;

	vm_config_init(&next);
	ret = vm_snapshot_open(state_path, &reader, &next, err, err_size);
	ret = ret ?: console_not_state(cfg, state_path, err, err_size);
	if (ret) {
		snap_reader_close(reader);
		vm_config_free(&next);
		return ret;
	}
	/* This process's console, not the snapshotted VM's (whose file another process may still write). */
	free(next.console_path);
	next.console_path = cfg->console_path ? strdup(cfg->console_path) : NULL;
	next.console_max_bytes = cfg->console_max_bytes;
	if (cfg->console_path && !next.console_path) {
		snap_reader_close(reader);
		vm_config_free(&next);
		return -ENOMEM;
	}
	if (ov) {
		/* A restore is clone 0: its copies are "<drive_id>.clone0.img". */
		ret = vm_restore_overrides_resolve(reader, &next, ov, state_path, 0, &res, err, err_size);
		vm_resolved_overrides_free(&res);
		if (ret) {
			snap_reader_close(reader);
			vm_config_free(&next);
			return ret;
		}
	}
	/* The VM keeps a pointer to *cfg: the snapshot's config goes there, the old one back on failure. */
	old = *cfg;
	*cfg = next;
	o.state_path = state_path;
	ret = vm_restore(vm, reader, cfg, &o, start_ns, err, err_size);
	snap_reader_close(reader);
	if (ret) {
		vm_config_free(cfg);
		*cfg = old;
		return ret;
	}
	vm_config_free(&old);
	pr_info("restored %s (%llu MiB of RAM %s %s) in %.1f ms since process start", state_path,
		(unsigned long long)cfg->mem_mib, opts->copy ? "copied from" : "mapped from", opts->mem_path,
		(double)(time_now_ns() - start_ns) / 1e6);
	return 0;
}

