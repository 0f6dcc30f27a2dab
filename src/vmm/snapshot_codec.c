// SPDX-License-Identifier: MIT
#include "vmm/snapshot_codec.h"

#include <errno.h>
#include <stdlib.h>

#include "lib/log.h"
#include "vmm/snapshot_file.h"

int snap_put_state(struct snap_writer *w, uint32_t id, uint32_t instance, const struct codec_table *codec,
		   const void *st)
{
	size_t max = codec_max_size(codec);
	uint8_t *buf = malloc(max ? max : 1);
	struct snap_enc e;
	int ret;

	if (!buf)
		return -ENOMEM;
	snap_enc_init(&e, buf, max);
	ret = codec_encode(codec, st, &e);
	ret = ret ?: snap_write_section(w, id, instance, codec->version, buf, e.len);
	free(buf);
	return ret;
}

int snap_get_state(struct snap_reader *r, uint32_t id, uint32_t instance, const struct codec_table *codec, void *st,
		   char *err, size_t err_size)
{
	char msg[256], name[32];
	uint32_t version;
	size_t len;
	const void *p = snap_get_section(r, id, instance, codec->version, &version, &len, err, err_size);
	int ret;

	if (!p)
		return -EINVAL;
	ret = codec_decode(codec, st, p, len, version, msg, sizeof(msg));
	if (ret)
		errmsg_set(err, err_size, "section %s: %s", snap_section_name(id, instance, name, sizeof(name)), msg);
	return ret;
}
