/* SPDX-License-Identifier: MIT */
/*
 * Ports a PC guest probes at boot that kiln has no device for: answered quietly (reads all-ones or
 * the value firmware leaves, writes ignored) so Linux's probes find nothing and nothing is logged.
 */
#ifndef KILN_DEVICES_LEGACY_QUIET_H
#define KILN_DEVICES_LEGACY_QUIET_H

#include "vmm/bus.h"

/*
 * Register the quiet ranges on the port I/O bus. Returns 0 or -errno from bus_register() (-EEXIST if a
 * device already holds one of the ports); on failure the ranges before it stay registered.
 */
int quiet_ports_register(struct bus *pio) __attribute__((warn_unused_result));

#endif
