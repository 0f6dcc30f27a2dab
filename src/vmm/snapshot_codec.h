/* SPDX-License-Identifier: MIT */
/*
 * Snapshot sections that hold a plain state struct described by a codec table (lib/codec.h): the
 * glue between the state file's container (snapshot_file.h) and the codec.
 */
#ifndef KILN_VMM_SNAPSHOT_CODEC_H
#define KILN_VMM_SNAPSHOT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/codec.h"

struct snap_writer;
struct snap_reader;

/*
 * Encode `st` with `codec` and append it as section (id, instance) at codec->version. Returns 0 or
 * -errno (codec_encode's, snap_write_section's, -ENOMEM).
 */
int snap_put_state(struct snap_writer *w, uint32_t id, uint32_t instance, const struct codec_table *codec,
		   const void *st) __attribute__((warn_unused_result));

/*
 * Decode section (id, instance) into `st` (codec->size bytes) at whatever version it was written, if
 * `codec` reads it. Returns 0 or -EINVAL/-ENOTSUP with a message naming the section ("vm.snap: no
 * section UART/0"; "section VIRT/2: virtio transport state: queues[0].size is 3, ...").
 */
int snap_get_state(struct snap_reader *r, uint32_t id, uint32_t instance, const struct codec_table *codec, void *st,
		   char *err, size_t err_size) __attribute__((warn_unused_result));

#endif
