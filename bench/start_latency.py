"""Start latency: from just before the VMM is exec'd to the guest's first byte on the serial port, and to
the VMM process's end after the guest ends the VM. The guest (exitloop, no work) prints one line at once
and ends the VM: kiln through the i8042 reset, QEMU through isa-debug-exit."""
from common import BenchError, Figure, expect_guest, run_vm

NAME = "start_latency"
TITLE = "start latency (exitloop guest, PVH entry on both)"
FIGURES = [
    Figure("first_byte_ms", "start: exec to guest's first serial byte", "ms"),
    Figure("exit_ms", "start: exec to VMM exit (guest ends VM)", "ms"),
]


def run_once(vmm, ctx):
    o = run_vm(vmm.command(ctx.guest, "", ctx.args.mem), ctx.args.timeout)
    expect_guest(vmm, o)
    first = o.stdout.find(b"exitloop: start")
    if not first:
        raise BenchError("the guest's first line is missing")
    return {"first_byte_ms": (first[1] - o.t_start) * 1e3, "exit_ms": (o.t_exit - o.t_start) * 1e3}
