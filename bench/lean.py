#!/usr/bin/python3
"""The lean-VMM figures (issue 11): how close kiln's start is to the floor this host allows, and what the
VMM process carries.

    bench/lean.py [--kiln build/kiln] [--floor build/bench/floor] [--runs 15] [--json PATH]

Figures (medians of --runs, each run a fresh process):
  first_byte_ms   exec to the hello guest's first serial byte: time.monotonic() just before the exec, then
                  the arrival of the first byte on the VMM's stdout pipe (the serial console), as
                  bench/start_latency.py measures it; `kiln run --kernel build/guests/hello.elf --memory 64`.
  floor_ms        the same for bench/floor.c: open /dev/kvm, one VM, one memslot, one vCPU, KVM_RUN until
                  the guest's `out` to 0x3f8, the byte written to stdout. What no VMM can beat here.
  over_floor_ms   kiln's first byte minus the floor's, run pair by pair (kiln and the floor alternate).
  own_rss_kib     kiln's RSS (/proc/PID/smaps, all mappings) minus the guest-RAM mapping (those at least as
                  large as guest RAM: kiln's memfd) while the exitloop guest idles (`idle`, cli; hlt), read
                  SETTLE_S after it says so. Also split into file-backed (binary, libraries) and the rest.
  libraries       `ldd KILN | wc -l`, and the shared objects a running VMM maps (/proc/PID/maps).
Prints a table and writes the JSON (default bench/results/lean.json). It reports; it never judges.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, BenchError, host_info, kiln_commit, loadavg, read_smaps, run_vm  # noqa: E402

SETTLE_S = 0.3
HELLO_FIRST = b"hello from a kiln guest"


def first_byte_ms(cmd, marker, timeout):
    """Exec to the first byte on stdout, in ms; BenchError unless the output carries `marker`."""
    o = run_vm(cmd, timeout)
    if marker not in o.stdout.data:
        raise BenchError(f"{cmd[0]} exited with {o.returncode} without printing {marker!r}: "
                         f"{o.stderr.decode(errors='replace')[-300:]!r}")
    t = o.stdout.time_at(0)
    return (t - o.t_start) * 1e3


def own_memory(pid, guest_mib):
    """kiln's own resident memory in KiB: everything but the mappings at least as large as guest RAM."""
    maps = read_smaps(pid)
    own = [(h, f) for h, f in maps if f.get("Size", 0) < guest_mib * 1024]
    rss = sum(f.get("Rss", 0) for _, f in own)
    file_rss = sum(f.get("Rss", 0) for h, f in own if len(h.split()) > 5 and h.split()[5].startswith("/"))
    return {"own_rss_kib": rss, "own_file_rss_kib": file_rss, "own_anon_rss_kib": rss - file_rss}


def mapped_libraries(pid):
    libs = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and ".so" in os.path.basename(parts[5].strip()):
                libs.add(parts[5].strip())
    return sorted(libs)


def idle_figures(kiln, guest, mem, timeout):
    seen = {}

    def on_output(proc, capture):
        if b"exitloop: idle" not in capture.data:
            return False
        time.sleep(SETTLE_S)
        seen.update(own_memory(proc.pid, mem))
        seen["mapped"] = mapped_libraries(proc.pid)
        return True

    run_vm([kiln, "run", "--kernel", guest, "--memory", str(mem), "--cmdline", "idle", "--boot", "pvh"], timeout,
           on_output)
    if "own_rss_kib" not in seen:
        raise BenchError("kiln ended before the guest idled")
    return seen


def summary(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals), "values": vals}


def main(argv):
    p = argparse.ArgumentParser(prog="bench/lean.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--kiln", default=os.path.join(ROOT, "build/kiln"))
    p.add_argument("--floor", default=os.path.join(ROOT, "build/bench/floor"))
    p.add_argument("--hello", default=os.path.join(ROOT, "build/guests/hello.elf"))
    p.add_argument("--exitloop", default=os.path.join(ROOT, "build/guests/exitloop.elf"))
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--json", default=os.path.join(ROOT, "bench/results/lean.json"))
    args = p.parse_args(argv)

    res = {"host": host_info(), "kiln_commit": kiln_commit(), "kiln": args.kiln, "runs": args.runs}
    hello = [args.kiln, "run", "--kernel", args.hello, "--memory", "64", "--cmdline", ""]
    # kiln and the floor alternate run by run, so load that comes and goes on the host falls on both.
    firsts, floors = [], []
    for _ in range(args.runs):
        firsts.append(first_byte_ms(hello, HELLO_FIRST, args.timeout))
        if os.path.exists(args.floor):
            floors.append(first_byte_ms([args.floor], b"!", args.timeout))
    res["first_byte_ms"] = summary(firsts)
    if floors:
        res["floor_ms"] = summary(floors)
        # Pair by pair: the two runs of a pair saw about the same host, so the difference is steadier.
        res["over_floor_ms"] = summary([k - f for k, f in zip(firsts, floors)])
    idle = [idle_figures(args.kiln, args.exitloop, 64, args.timeout) for _ in range(args.runs)]
    for k in ("own_rss_kib", "own_file_rss_kib", "own_anon_rss_kib"):
        res[k] = summary([i[k] for i in idle])
    res["mapped_libraries"] = idle[-1]["mapped"]
    ldd = subprocess.run(["ldd", args.kiln], capture_output=True, text=True)
    res["ldd"] = [ln.strip() for ln in ldd.stdout.splitlines() if ln.strip()]

    res["loadavg_end"] = loadavg()
    print(f"kiln {args.kiln} at {res['kiln_commit']}, {args.runs} runs each; load average "
          f"{res['host']['loadavg']} at start, {res['loadavg_end']} at end")
    for k, unit in (("first_byte_ms", "ms"), ("floor_ms", "ms"), ("over_floor_ms", "ms"), ("own_rss_kib", "KiB"),
                    ("own_file_rss_kib", "KiB"), ("own_anon_rss_kib", "KiB")):
        if k in res:
            r = res[k]
            print(f"  {k:18} median {r['median']:9.2f} {unit}  (min {r['min']:.2f}, max {r['max']:.2f})")
    print(f"  ldd lines          {len(res['ldd'])}")
    print(f"  mapped .so         {len(res['mapped_libraries'])}: " +
          " ".join(os.path.basename(x) for x in res["mapped_libraries"]))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
