"""VMM memory overhead: the VMM process's resident memory (RSS, and PSS, which shares out pages mapped by
several processes such as libraries) minus the guest RAM it has touched, read from /proc/PID/smaps while a
guest of --mem MiB (256 by default) idles right after boot. Guest RAM is told apart by mapping: the
mappings at least as large as the guest (kiln: its memfd; QEMU: anonymous memory)."""
import time

from common import BenchError, Figure, expect_guest, memory_split, run_vm

NAME = "memory_overhead"
TITLE = "VMM memory overhead (idle guest)"
FIGURES = [
    Figure("overhead_pss_mib", "memory: VMM PSS minus guest RAM", "MiB"),
    Figure("overhead_rss_mib", "memory: VMM RSS minus guest RAM", "MiB"),
    Figure("guest_touched_mib", "memory: guest RAM touched", "MiB"),
]
SETTLE_S = 0.3  # after the guest says it idles, before reading smaps


def run_once(vmm, ctx):
    seen = {}

    def on_output(proc, capture):
        if b"exitloop: idle" not in capture.data:
            return False
        time.sleep(SETTLE_S)
        try:
            seen["mem"] = memory_split(proc.pid, ctx.args.mem)
        except OSError as e:
            seen["error"] = f"cannot read /proc/{proc.pid}/smaps: {e}"
        return True

    o = run_vm(vmm.command(ctx.guest, "idle", ctx.args.mem), ctx.args.timeout, on_output)
    expect_guest(vmm, o, b"exitloop: idle")
    if "error" in seen:
        raise BenchError(seen["error"])
    m = seen.get("mem")
    if not m:
        raise BenchError("the VMM ended before the guest idled")
    if not m["guest_mappings"]:
        raise BenchError(f"no mapping of {ctx.args.mem} MiB or more: cannot tell guest RAM apart")
    return {
        "overhead_pss_mib": m["overhead_pss_kb"] / 1024,
        "overhead_rss_mib": m["overhead_rss_kb"] / 1024,
        "guest_touched_mib": m["guest_rss_kb"] / 1024,
    }
