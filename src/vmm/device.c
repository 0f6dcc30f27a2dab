// SPDX-License-Identifier: MIT
/*
 * The device registry's list of instances (vmm/device.h): creation from the type table, teardown,
 * and the snapshot passes every device goes through alike.
 */
#include "vmm/device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "lib/log.h"
#include "vmm/snapshot_codec.h"
#include "vmm/snapshot_file.h"

/* A virtio transport's sections (docs/snapshot-format.md "Sections"), instance = PCI slot. */
#define SNAP_ID_MSIX SNAP_FOURCC('M', 'S', 'I', 'X') /* MSI-X table and PBA */
#define SNAP_ID_VIRT SNAP_FOURCC('V', 'I', 'R', 'T') /* virtio PCI transport */

unsigned int vm_device_count_one(const struct vm_config *cfg)
{
	return 1;
}

static int register_ports(const struct vm_device_type *type, void *dev, struct bus *pio)
{
	for (const struct vm_device_ports *p = type->ports; p && p->len; p++) {
		int ret = bus_register(pio, p->base, p->len, p->handler, dev, type->name);

		if (ret)
			return ret;
	}
	return 0;
}

int vm_devices_create(struct vm_devices *d, const struct vm_device_type *const *types, unsigned int nr,
		      const struct vm_device_ctx *ctx, char *err, size_t err_size)
{
	unsigned int total = 0;

	for (unsigned int t = 0; t < nr; t++)
		total += types[t]->count(ctx->cfg);
	d->list = calloc(total ? total : 1, sizeof(*d->list));
	if (!d->list)
		return -ENOMEM;
	d->nr = 0;
	for (unsigned int t = 0; t < nr; t++) {
		unsigned int n = types[t]->count(ctx->cfg);

		for (unsigned int i = 0; i < n; i++) {
			char why[400] = "";
			void *dev = types[t]->create(ctx, i, why, sizeof(why));
			int ret = dev ? register_ports(types[t], dev, ctx->pio_bus) : (errno ? -errno : -ENOMEM);

			if (ret) {
				if (!why[0])
					snprintf(why, sizeof(why), "%s device %u: %s", types[t]->name, i, strerror(-ret));
				pr_err("cannot create %s", why);
				errmsg_set(err, err_size, "%s", why);
				if (dev)
					types[t]->destroy(dev);
				return ret;
			}
			d->list[d->nr++] = (struct vm_device){ .type = types[t], .dev = dev, .index = i };
		}
	}
	return 0;
}

void vm_devices_destroy(struct vm_devices *d)
{
	while (d->nr > 0) {
		struct vm_device *v = &d->list[--d->nr];

		v->type->destroy(v->dev);
	}
	free(d->list);
	d->list = NULL;
}

void *vm_devices_find(const struct vm_devices *d, const struct vm_device_type *type, unsigned int index)
{
	for (unsigned int i = 0; i < d->nr; i++)
		if (d->list[i].type == type && d->list[i].index == index)
			return d->list[i].dev;
	return NULL;
}

static struct virtio_pci *transport_of(const struct vm_device *v)
{
	return v->type->transport ? v->type->transport(v->dev) : NULL;
}

/* The instance number of a device's sections: its PCI slot, or its index. */
static uint32_t section_instance(const struct vm_device *v)
{
	struct virtio_pci *t = transport_of(v);

	return t ? (uint32_t)virtio_pci_device(t)->slot : v->index;
}

int vm_devices_pause(struct vm_devices *d, char *err, size_t err_size)
{
	for (unsigned int i = 0; i < d->nr; i++) {
		struct virtio_pci *t = transport_of(&d->list[i]);

		if (t)
			virtio_pci_freeze(t);
	}
	for (unsigned int i = 0; i < d->nr; i++) {
		const struct vm_device *v = &d->list[i];
		int ret = v->type->quiesce ? v->type->quiesce(v->dev) : 0;

		if (ret) {
			errmsg_set(err, err_size, "%s: cannot complete its requests in flight: %s", v->type->name,
				   strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void vm_devices_resume(struct vm_devices *d)
{
	for (unsigned int i = 0; i < d->nr; i++) {
		const struct vm_device *v = &d->list[i];
		struct virtio_pci *t = transport_of(v);

		if (t)
			virtio_pci_thaw(t);
		if (v->type->thaw)
			v->type->thaw(v->dev);
	}
}

int vm_devices_sync(struct vm_devices *d, char *err, size_t err_size)
{
	for (unsigned int i = 0; i < d->nr; i++) {
		const struct vm_device *v = &d->list[i];
		int ret = v->type->sync ? v->type->sync(v->dev) : 0;

		if (ret) {
			errmsg_set(err, err_size, "%s: cannot sync its backend: %s", v->type->name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* A state struct of `codec`'s size, filled by `save`, written as section (id, instance). */
static int save_state(struct snap_writer *w, uint32_t id, uint32_t instance, const struct codec_table *codec,
		      void (*save)(void *obj, void *st), void *obj)
{
	void *st = calloc(1, codec->size);
	int ret;

	if (!st)
		return -ENOMEM;
	save(obj, st);
	ret = snap_put_state(w, id, instance, codec, st);
	free(st);
	return ret;
}

static void msix_save_fn(void *t, void *st)
{
	msix_save(virtio_pci_msix(t), st);
}

static void transport_save_fn(void *t, void *st)
{
	virtio_pci_save(t, st);
}

int vm_devices_save(struct vm_devices *d, struct snap_writer *w)
{
	int ret = 0;

	for (unsigned int i = 0; i < d->nr && !ret; i++) {
		const struct vm_device *v = &d->list[i];
		struct virtio_pci *t = transport_of(v);
		uint32_t instance = section_instance(v);

		if (t) {
			ret = save_state(w, SNAP_ID_MSIX, instance, &msix_state_codec, msix_save_fn, t);
			ret = ret ?: save_state(w, SNAP_ID_VIRT, instance, &virtio_pci_state_codec, transport_save_fn, t);
		}
		if (!ret && v->type->codec)
			ret = save_state(w, v->type->section, instance, v->type->codec, v->type->save, v->dev);
	}
	return ret;
}

/* Section (id, instance) decoded with `codec` into a new struct: *out (free it), or -errno with a message. */
static int load_state(struct snap_reader *r, uint32_t id, uint32_t instance, const struct codec_table *codec,
		      void **out, char *err, size_t err_size)
{
	void *st = malloc(codec->size);
	int ret;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	ret = snap_get_state(r, id, instance, codec, st, err, err_size);
	if (ret) {
		free(st);
		return ret;
	}
	*out = st;
	return 0;
}

/* A virtio device's MSI-X and transport state, in that order (virtio_pci_restore needs the vectors). */
static int restore_transport(struct virtio_pci *t, struct snap_reader *r, uint32_t instance, char *err,
			     size_t err_size)
{
	void *msix = NULL, *vp = NULL;
	char msg[256];
	int ret;

	ret = load_state(r, SNAP_ID_MSIX, instance, &msix_state_codec, &msix, err, err_size);
	ret = ret ?: load_state(r, SNAP_ID_VIRT, instance, &virtio_pci_state_codec, &vp, err, err_size);
	if (!ret) {
		ret = msix_restore(virtio_pci_msix(t), msix, msg, sizeof(msg));
		ret = ret ?: virtio_pci_restore(t, vp, msg, sizeof(msg));
		if (ret)
			errmsg_set(err, err_size, "%s", msg);
	}
	free(msix);
	free(vp);
	return ret;
}

int vm_devices_restore(struct vm_devices *d, struct snap_reader *r, bool virtio, char *err, size_t err_size)
{
	int ret = 0;

	for (unsigned int i = 0; i < d->nr && !ret; i++) {
		const struct vm_device *v = &d->list[i];
		struct virtio_pci *t = transport_of(v);
		uint32_t instance = section_instance(v);
		void *st = NULL;

		if ((t != NULL) != virtio)
			continue;
		if (t)
			ret = restore_transport(t, r, instance, err, err_size);
		if (ret || !v->type->codec)
			continue;
		ret = load_state(r, v->type->section, instance, v->type->codec, &st, err, err_size);
		if (!ret && v->type->restore)
			ret = v->type->restore(v->dev, st, err, err_size);
		free(st);
	}
	return ret;
}
