"""Exit cost: the round trip of one guest access that exits to the VMM's user space and completes there.
The exitloop guest runs, in kernel mode, N reads of the UART scratch register (port 0x3ff: both VMMs'
user-space 8250), N reads of an MMIO address with nothing behind it (0xd0000000: KVM_EXIT_MMIO, the VMM's
MMIO dispatch misses, the read completes with a fixed value), and N reads of guest RAM (no exit: the
loop's own cost, which on PVM hosts, where guest kernel code is emulated, is far from zero). Per access:
wall time, between the guest's "go" and "end" lines as the harness receives them, and the guest's rdtsc
cycles around the loop."""
import re

from common import BenchError, Figure, expect_guest, run_vm

NAME = "exit_cost"
TITLE = "exit round trip (exitloop guest, kernel mode)"
LOOPS = ("pio", "mmio", "ram")
FIGURES = [
    Figure("pio_us", "exit: port I/O read (UART scratch)", "us"),
    Figure("mmio_us", "exit: MMIO read (unclaimed address)", "us"),
    Figure("ram_us", "exit: same loop on RAM, no exit", "us"),
    Figure("pio_net_us", "exit: port I/O read minus RAM loop", "us"),
    Figure("mmio_net_us", "exit: MMIO read minus RAM loop", "us"),
    Figure("pio_cycles", "exit: port I/O read, guest TSC", "cycles"),
    Figure("mmio_cycles", "exit: MMIO read, guest TSC", "cycles"),
    Figure("ram_cycles", "exit: same loop on RAM, guest TSC", "cycles"),
]


def parse_loops(capture, n):
    """{loop: (wall seconds, cycles)} from the guest's go/end lines."""
    out = {}
    for loop in LOOPS:
        go = capture.line_after(f"exitloop: {loop} go".encode())
        end = capture.line_after(f"exitloop: {loop} end".encode())
        if not go or not end:
            raise BenchError(f"the guest did not report the {loop} loop")
        m = re.search(r"n=(\d+) cycles=(\d+)", end[0])
        if not m or int(m.group(1)) != n:
            raise BenchError(f"unexpected line from the guest: {end[0]!r}")
        # From the go line's newline to the end line's first byte: the loop, and one UART poll.
        out[loop] = (end[1] - go[2], int(m.group(2)))
    return out


def run_once(vmm, ctx):
    n = ctx.args.exits
    cmdline = " ".join(f"{loop}={n}" for loop in LOOPS)
    o = run_vm(vmm.command(ctx.guest, cmdline, ctx.args.mem), ctx.args.timeout)
    expect_guest(vmm, o)
    figures = {}
    for loop, (wall, cycles) in parse_loops(o.stdout, n).items():
        figures[f"{loop}_us"] = wall / n * 1e6
        figures[f"{loop}_cycles"] = cycles / n
    # The exit's own share: what an access costs beyond the same loop reading RAM.
    for loop in ("pio", "mmio"):
        figures[f"{loop}_net_us"] = figures[f"{loop}_us"] - figures["ram_us"]
    return figures
