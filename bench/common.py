"""The benchmark runner shared by every benchmark module: how each VMM is started, how a run is watched
(serial output timestamped as it arrives, the process's memory read while the guest idles), how runs
alternate between the VMMs, and the two outputs: a plain table on stdout and a JSON file.

A benchmark is one module (bench/<name>.py) with:
    NAME, TITLE     identifiers for the JSON and the table
    FIGURES         [Figure(id, label, unit)]: what one run measures
    skip(ctx)       -> None, or why the whole benchmark is not run (e.g. needs --with-debian)
    unsupported(vmm, ctx) -> None, or why this VMM cannot run it (reported in the table, not left out)
    runs(ctx)       -> how many runs per VMM
    run_once(vmm, ctx) -> {figure id: value}; raises BenchError when the run fails
The harness reports; it never judges a figure good or bad.
"""
import bisect
import dataclasses
import datetime
import json
import os
import platform
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_VERSION = 1


class BenchError(Exception):
    """A run that produced no figures: the VMM did not start, failed, or timed out."""


@dataclasses.dataclass
class Figure:
    id: str
    label: str
    unit: str


# ---- one VMM process, watched ----

class Capture:
    """A stream of output with the monotonic time each chunk arrived."""

    def __init__(self):
        self.data = bytearray()
        self.chunks = []  # (offset of the chunk's first byte, time)

    def add(self, buf, t):
        self.chunks.append((len(self.data), t))
        self.data += buf

    def time_at(self, offset):
        """When the byte at `offset` arrived (None if it has not)."""
        if offset < 0 or offset >= len(self.data):
            return None
        i = bisect.bisect_right(self.chunks, (offset, float("inf"))) - 1
        return self.chunks[i][1]

    def find(self, marker, start=0):
        """(offset, time) of the first occurrence of `marker` (bytes) at or after `start`, or None."""
        off = self.data.find(marker, start)
        if off < 0:
            return None
        return off, self.time_at(off)

    def line_after(self, marker):
        """The text of the line that starts with `marker` (up to its newline), with the times its first
        byte and its newline arrived: (text, t_first, t_newline), or None while incomplete."""
        found = self.find(marker)
        if not found:
            return None
        nl = self.data.find(b"\n", found[0])
        if nl < 0:
            return None
        text = self.data[found[0]:nl].decode("utf-8", errors="replace").rstrip("\r")
        return text, found[1], self.time_at(nl)

    def text(self):
        return self.data.decode("utf-8", errors="replace").replace("\r", "")


@dataclasses.dataclass
class Outcome:
    t_start: float           # time.monotonic() just before the exec
    t_exit: float            # when the process was reaped
    returncode: int
    stdout: Capture
    stderr: bytes
    stopped: bool            # the harness ended it (after on_output asked to)
    pid: int


def tail(b, n=400):
    s = b.decode("utf-8", errors="replace") if isinstance(b, (bytes, bytearray)) else str(b)
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


def run_vm(cmd, timeout, on_output=None, on_stderr=None, stop_signal=signal.SIGTERM):
    """Start `cmd` with stdin from /dev/null and its stdout (the guest's serial console) and stderr on
    pipes, timestamping stdout as it arrives. `on_output(proc, capture)` runs after every stdout chunk,
    `on_stderr(proc, data)` after every stderr chunk; a true return from either asks the harness to end
    the VMM (`stop_signal`, then SIGKILL after 10 s). Raises BenchError when the binary cannot be started
    or the run exceeds `timeout` seconds."""
    t_start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise BenchError(f"cannot start {cmd[0]}: {e.strerror or e}") from None
    out, err = Capture(), bytearray()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    open_fds = 2
    stopped = False
    kill_at = None
    deadline = t_start + timeout
    try:
        while open_fds:
            now = time.monotonic()
            if now > deadline:
                proc.kill()
                proc.wait()
                raise BenchError(f"timed out after {timeout:.0f} s; serial output ends: {tail(out.text(), 200)!r}")
            if kill_at and now > kill_at:
                proc.kill()
            for key, _ in sel.select(timeout=0.2):
                buf = os.read(key.fileobj.fileno(), 65536)
                t = time.monotonic()
                if not buf:
                    sel.unregister(key.fileobj)
                    open_fds -= 1
                    continue
                if key.data == "err":
                    err += buf
                    stop = on_stderr and not stopped and on_stderr(proc, bytes(err))
                else:
                    out.add(buf, t)
                    stop = on_output and not stopped and on_output(proc, out)
                if stop:
                    stopped = True
                    proc.send_signal(stop_signal)
                    kill_at = time.monotonic() + 10
        remaining = max(0.1, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError(f"timed out after {timeout:.0f} s waiting for the process to exit") from None
        t_exit = time.monotonic()
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Outcome(t_start, t_exit, proc.returncode, out, bytes(err), stopped, proc.pid)


def expect_guest(vmm, outcome, marker=b"exitloop: done"):
    """Raise BenchError unless the guest printed `marker` and ended the VM itself."""
    if marker in outcome.stdout.data and (outcome.stopped or vmm.guest_ended(outcome)):
        return
    raise BenchError(f"{vmm.name} exited with status {outcome.returncode} before the guest printed "
                     f"{marker.decode()!r}; stderr: {tail(outcome.stderr, 300)!r}; "
                     f"serial: {tail(outcome.stdout.text(), 200)!r}")


# ---- the two VMMs ----

class VMM:
    name = ""

    def __init__(self, binary):
        self.binary = binary
        self.version = None
        self.notes = []

    def command(self, kernel, cmdline, mem_mib, initrd=None, boot="pvh"):
        raise NotImplementedError

    def guest_ended(self, outcome):
        """True when the process status says the guest ended the VM itself."""
        raise NotImplementedError

    def describe(self):
        return {"binary": self.binary, "version": self.version, "notes": self.notes,
                "command": self.command("GUEST", "CMDLINE", "MEM")}


class Kiln(VMM):
    name = "kiln"

    def command(self, kernel, cmdline, mem_mib, initrd=None, boot="pvh"):
        cmd = [self.binary, "run", "--kernel", kernel, "--memory", str(mem_mib), "--cmdline", cmdline, "--boot", boot]
        if initrd:
            cmd += ["--initrd", initrd]
        return cmd

    def guest_ended(self, outcome):
        return outcome.returncode == 0


# QEMU models tried in order when --qemu-cpu is "auto": the host's own first, then the closest named ones.
QEMU_CPU_CANDIDATES = ["host", "max", "Icelake-Server", "Cascadelake-Server", "Skylake-Server", "qemu64"]
QEMU_DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=4"


class Qemu(VMM):
    name = "qemu"

    def __init__(self, binary, machine="microvm", cpu="auto"):
        super().__init__(binary)
        self.machine = machine
        self.cpu = cpu
        self.cpu_probe = []

    def command(self, kernel, cmdline, mem_mib, initrd=None, boot="pvh"):
        # -kernel with an ELF image boots it through its PVH note; a bzImage through the Linux protocol.
        cmd = [self.binary, "-enable-kvm", "-M", self.machine, "-cpu", self.cpu, "-smp", "1", "-m", str(mem_mib),
               "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
               "-device", QEMU_DEBUG_EXIT, "-kernel", kernel, "-append", cmdline]
        if initrd:
            cmd += ["-initrd", initrd]
        return cmd

    def guest_ended(self, outcome):
        # isa-debug-exit: status (value << 1) | 1, the guests write 0; a reset with -no-reboot exits 0.
        return outcome.returncode in (0, 1)

    def describe(self):
        d = super().describe()
        d.update({"machine": self.machine, "cpu": self.cpu, "cpu_probe": self.cpu_probe})
        return d


def binary_version(binary):
    try:
        r = subprocess.run([binary, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    first = r.stdout.decode(errors="replace").strip().splitlines()
    return first[0] if first else f"unknown (--version exited {r.returncode})"


def probe_qemu_cpu(qemu, guest, timeout=60):
    """Pick the first CPU model with which QEMU boots `guest` to its end; records every attempt."""
    for cpu in QEMU_CPU_CANDIDATES:
        qemu.cpu = cpu
        try:
            o = run_vm(qemu.command(guest, "", 64), timeout)
        except BenchError as e:
            qemu.cpu_probe.append({"cpu": cpu, "ok": False, "error": str(e)})
            if "cannot start" in str(e):
                break
            continue
        ok = qemu.guest_ended(o) and b"exitloop: done" in o.stdout.data
        entry = {"cpu": cpu, "ok": ok}
        warnings = sorted({ln for ln in o.stderr.decode(errors="replace").splitlines() if "warning" in ln})
        if warnings:
            entry["warnings"] = len(warnings)
        if not ok:
            entry["error"] = f"status {o.returncode}: {tail(o.stderr, 300)}"
        qemu.cpu_probe.append(entry)
        if ok:
            return cpu
    qemu.cpu = QEMU_CPU_CANDIDATES[0]
    return None


# ---- memory ----

def read_smaps(pid):
    """[(header line, {field: kB})] for every mapping of `pid`, from /proc/PID/smaps."""
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^(\w[\w-]*):\s+(\d+) kB", line)
            if m and maps:
                maps[-1][1][m.group(1)] = int(m.group(2))
            elif not m and re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                maps.append((line.strip(), {}))
    return maps


def memory_split(pid, guest_mib):
    """The VMM's resident memory apart from guest RAM. Guest RAM is found as the mappings at least as
    large as the guest (kiln: its memfd, shared memory; QEMU: anonymous memory): what they have resident
    is the guest memory touched. Everything else (heap, stacks, binaries and libraries, ROM copies,
    device state) is the VMM's. Returns kB figures."""
    maps = read_smaps(pid)
    guest = [(h, f) for h, f in maps if f.get("Size", 0) >= guest_mib * 1024]
    total = {k: sum(f.get(k, 0) for _, f in maps) for k in ("Rss", "Pss")}
    in_guest = {k: sum(f.get(k, 0) for _, f in guest) for k in ("Rss", "Pss")}
    return {
        "rss_kb": total["Rss"], "pss_kb": total["Pss"],
        "guest_rss_kb": in_guest["Rss"], "guest_pss_kb": in_guest["Pss"],
        "overhead_rss_kb": total["Rss"] - in_guest["Rss"], "overhead_pss_kb": total["Pss"] - in_guest["Pss"],
        "guest_mappings": [h.split(None, 5)[-1] if len(h.split()) > 5 else "[anonymous]" for h, _ in guest],
    }


# ---- the host ----

def host_info():
    info = {"kernel": platform.release(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if not os.path.exists("/dev/kvm"):
        info["kvm"] = "none (/dev/kvm is missing)"
    elif os.path.exists("/sys/module/kvm_pvm"):
        info["kvm"] = "PVM (kvm_pvm: no VT-x/AMD-V; guest kernel code is emulated by the host)"
    elif os.path.exists("/sys/module/kvm_intel"):
        info["kvm"] = "hardware (kvm_intel, VT-x)"
    elif os.path.exists("/sys/module/kvm_amd"):
        info["kvm"] = "hardware (kvm_amd, AMD-V)"
    else:
        info["kvm"] = "unknown provider"
    info["pvm"] = os.path.exists("/sys/module/kvm_pvm")
    info["loadavg"] = loadavg()
    return info


def loadavg():
    """The 1/5/15-minute load averages: other work on the host is noise in every figure."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def kiln_commit():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, timeout=10)
        return r.stdout.decode().strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


# ---- running the benchmarks ----

@dataclasses.dataclass
class Context:
    args: object
    host: dict
    vmms: list
    guest: str          # the exitloop guest image


def summarize(values):
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def run_benchmark(mod, ctx, log):
    """Run one benchmark module: VMMs alternate run by run (kiln, qemu, kiln, qemu, ...).

    A module defines NAME, TITLE, FIGURES and run_once(vmm, ctx); skip(ctx) (a reason not to run),
    unsupported(vmm, ctx) (a reason one VMM cannot) and runs(ctx) are optional: by default it runs,
    on every VMM, --runs times."""
    skip = getattr(mod, "skip", lambda c: None)
    unsupported = getattr(mod, "unsupported", lambda v, c: None)
    runs = getattr(mod, "runs", lambda c: c.args.runs)
    result = {"name": mod.NAME, "title": mod.TITLE, "runs": [], "figures": [], "skipped": None, "unsupported": {}}
    reason = skip(ctx)
    if reason:
        result["skipped"] = reason
    active = []
    for vmm in ctx.vmms:
        why = unsupported(vmm, ctx)
        if why:
            result["unsupported"][vmm.name] = why
        elif not reason:
            active.append(vmm)
    n = runs(ctx) if not reason else 0
    failed_for = set()
    for i in range(n):
        for vmm in active:
            if vmm.name in failed_for and getattr(mod, "STOP_AFTER_FAILURE", False):
                continue
            t0 = time.monotonic()
            entry = {"vmm": vmm.name, "run": i + 1}
            try:
                entry["figures"] = mod.run_once(vmm, ctx)
                entry["ok"] = True
            except BenchError as e:
                entry["ok"] = False
                entry["error"] = str(e)
                failed_for.add(vmm.name)
            entry["seconds"] = round(time.monotonic() - t0, 3)
            result["runs"].append(entry)
            log(f"  {mod.NAME} {vmm.name} run {i + 1}/{n}: " +
                ("ok" if entry["ok"] else f"FAILED: {entry['error']}"))
    for fig in mod.FIGURES:
        row = {"id": fig.id, "label": fig.label, "unit": fig.unit}
        for vmm in ctx.vmms:
            vals = [r["figures"][fig.id] for r in result["runs"]
                    if r["vmm"] == vmm.name and r["ok"] and r["figures"].get(fig.id) is not None]
            cell = summarize(vals)
            if cell is None:
                errors = [r["error"] for r in result["runs"] if r["vmm"] == vmm.name and not r["ok"]]
                skipped = result["skipped"]
                if skipped and hasattr(mod, "skip_note"):
                    skipped = mod.skip_note(vmm, ctx)
                why = (result["unsupported"].get(vmm.name) or skipped or
                       (f"failed: {errors[-1]}" if errors else "no data"))
                cell = {"note": why}
            row[vmm.name] = cell
        k, q = row.get("kiln", {}), row.get("qemu", {})
        row["ratio"] = (k["median"] / q["median"]) if "median" in k and "median" in q and q["median"] else None
        result["figures"].append(row)
    return result


# ---- output ----

def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(r):
    if r is None:
        return "-"
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


TABLE_HEADER = ["figure", "unit", "kiln min", "kiln median", "kiln max", "qemu min", "qemu median", "qemu max",
                "kiln/qemu"]


def format_table(results):
    """The plain table: one row per figure, columns separated by at least two spaces; cells without data
    show '-' and a note number [n] explained under the table."""
    rows, notes = [TABLE_HEADER], []

    def note(text):
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    for bench in results["benchmarks"]:
        for fig in bench["figures"]:
            row = [fig["label"], fig["unit"]]
            for vmm in ("kiln", "qemu"):
                cell = fig.get(vmm, {"note": f"{vmm} not run"})
                if "median" in cell:
                    row += [fmt(cell["min"]), fmt(cell["median"]), fmt(cell["max"])]
                else:
                    row += ["-", "-", f"- {note(vmm + ': ' + cell['note'])}"]
            row.append(fmt_ratio(fig["ratio"]))
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    for i, text in enumerate(notes):
        lines.append(f"[{i + 1}] {text}")
    return "\n".join(lines).rstrip() + "\n"


def parse_table(text):
    """Read back a table printed by format_table: [{label, unit, kiln: (min, median, max) or None,
    qemu: ..., ratio, notes: {vmm: text}}]. The notes under the table are resolved."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("figure") and "kiln/qemu" in ln)
    footnotes = {}
    for ln in lines:
        m = re.match(r"^\[(\d+)\] (.*)$", ln)
        if m:
            footnotes[m.group(1)] = m.group(2)
    rows = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        cells = re.split(r"\s{2,}", ln.strip())
        if len(cells) != len(TABLE_HEADER):
            raise ValueError(f"table row with {len(cells)} cells: {ln!r}")
        row = {"label": cells[0], "unit": cells[1], "notes": {}}
        for vmm, base in (("kiln", 2), ("qemu", 5)):
            trio = cells[base:base + 3]
            if trio[0] == "-":
                row[vmm] = None
                m = re.search(r"\[(\d+)\]", trio[2])
                if m:
                    row["notes"][vmm] = footnotes.get(m.group(1))
            else:
                row[vmm] = tuple(float(c) for c in trio)
        row["ratio"] = None if cells[8] == "-" else float(cells[8])
        rows.append(row)
    return rows


def write_json(results, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def find_qemu(name="qemu-system-x86_64"):
    return shutil.which(name) or name
