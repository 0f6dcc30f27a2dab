"""Tests of the benchmark harness (bench/), not of any VMM's speed: a fake VMM stands in for both kiln
and QEMU, printing what the exitloop guest prints. No KVM needed; the real benchmarks run only with
`make bench`."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402

# Acts as kiln ("run ... --cmdline C --memory M") or QEMU ("... -append C -m M"), as the exitloop guest
# would through either: the same lines, QEMU's loops reporting twice kiln's cycles.
FAKE_VMM = r'''#!/usr/bin/python3
import mmap, re, signal, sys, time
argv = sys.argv[1:]
if argv == ["--version"]:
    print("fakevmm 1.0")
    sys.exit(0)
kiln = argv[:1] == ["run"]
def opt(name):
    return argv[argv.index(name) + 1] if name in argv else ""
cmdline = opt("--cmdline") if kiln else opt("-append")
mem = int(opt("--memory") if kiln else opt("-m"))
factor = 1 if kiln else 2
out = sys.stdout
out.write("exitloop: start pvh=1\r\n"); out.flush()
for loop, per in (("ram", 100), ("pio", 1000), ("mmio", 2000)):
    m = re.search(loop + r"=(\d+)", cmdline)
    if m:
        n = int(m.group(1))
        out.write(f"exitloop: {loop} go n={n}\r\n"); out.flush()
        time.sleep(0.01 * factor)
        out.write(f"exitloop: {loop} end n={n} cycles={n * per * factor}\r\n"); out.flush()
if "idle" in cmdline:
    ram = mmap.mmap(-1, mem << 20)
    for off in range(0, 1 << 20, 4096):
        ram[off] = 1
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    out.write("exitloop: idle\r\n"); out.flush()
    while True:
        time.sleep(1)
out.write("exitloop: done\r\n"); out.flush()
sys.exit(0 if kiln else 1)
'''

BROKEN_VMM = r'''#!/bin/sh
[ "$1" = "--version" ] && { echo "broken 0.0"; exit 0; }
echo "broken: cannot open /dev/kvm: Permission denied" >&2
exit 1
'''


def write_script(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fake(tmp_path):
    return write_script(tmp_path / "fakevmm", FAKE_VMM)


def run_bench(tmp_path, kiln, qemu, *extra):
    out = tmp_path / "latest.json"
    guest = tmp_path / "exitloop.elf"
    guest.write_bytes(b"\x7fELF")
    r = subprocess.run(
        [sys.executable, str(BENCH / "run"), "--kiln", kiln, "--qemu", qemu, "--guest", str(guest),
         "--runs", "2", "--exits", "1000", "--mem", "64", "--timeout", "30", "--json", str(out), *extra],
        capture_output=True, timeout=300)
    stdout = r.stdout.decode()
    data = json.loads(out.read_text()) if out.exists() else None
    return r, stdout, data


def figure_rows(data):
    return [f for b in data["benchmarks"] for f in b["figures"]]


def test_table_and_json_agree(tmp_path, fake):
    r, stdout, data = run_bench(tmp_path, fake, fake)
    assert r.returncode == 0, r.stderr.decode()
    rows = common.parse_table(stdout)
    figs = figure_rows(data)
    assert [row["label"] for row in rows] == [f["label"] for f in figs]
    for row, fig in zip(rows, figs):
        assert row["unit"] == fig["unit"]
        for vmm in ("kiln", "qemu"):
            cell = fig[vmm]
            if "median" in cell:
                assert row[vmm] == tuple(float(common.fmt(cell[k])) for k in ("min", "median", "max"))
            else:
                assert row[vmm] is None and row["notes"][vmm] == f"{vmm}: {cell['note']}"
    by_id = {f["id"]: f for f in figs}
    # The fake's QEMU reports twice kiln's cycles: the ratio is kiln's median over QEMU's.
    for fid, per in (("pio_cycles", 1000), ("mmio_cycles", 2000), ("ram_cycles", 100)):
        assert by_id[fid]["kiln"]["median"] == per
        assert by_id[fid]["qemu"]["median"] == 2 * per
        assert by_id[fid]["ratio"] == pytest.approx(0.5)
    # Wall time per access comes from the harness's own timestamps: positive, and QEMU's fake sleeps longer.
    assert 0 < by_id["pio_us"]["kiln"]["median"] < by_id["pio_us"]["qemu"]["median"]
    assert by_id["first_byte_ms"]["kiln"]["median"] <= by_id["exit_ms"]["kiln"]["median"]
    # Memory: the fake's guest RAM is the mapping of --mem MiB, of which it touched 1 MiB.
    assert by_id["guest_touched_mib"]["kiln"]["median"] == pytest.approx(1.0, abs=0.1)
    assert by_id["overhead_rss_mib"]["kiln"]["median"] > 0
    # Debian's boot is not run by default, and the table says so rather than dropping the row.
    debian = next(row for row in rows if row["label"].startswith("debian: exec to first userspace"))
    assert debian["kiln"] is None and "--with-debian" in debian["notes"]["kiln"]


def test_json_describes_the_run(tmp_path, fake):
    r, _, data = run_bench(tmp_path, fake, fake)
    assert r.returncode == 0
    host = data["host"]
    for key in ("kernel", "cpus", "kvm"):
        assert key in host
    assert data["vmms"]["kiln"]["version"] == "fakevmm 1.0"
    assert data["vmms"]["qemu"]["version"] == "fakevmm 1.0"
    assert data["vmms"]["qemu"]["cpu"] == common.QEMU_CPU_CANDIDATES[0]
    bench = {b["name"]: b for b in data["benchmarks"]}
    assert set(bench) == {"start_latency", "memory_overhead", "exit_cost", "debian_boot"}
    # Every run recorded, alternating kiln and QEMU.
    runs = bench["exit_cost"]["runs"]
    assert [(x["vmm"], x["run"]) for x in runs] == [("kiln", 1), ("qemu", 1), ("kiln", 2), ("qemu", 2)]
    assert all(x["ok"] and "pio_us" in x["figures"] for x in runs)
    assert bench["debian_boot"]["skipped"] and bench["debian_boot"]["runs"] == []


@pytest.mark.parametrize("kind", ["missing", "fails"])
def test_vmm_that_does_not_start(tmp_path, fake, kind):
    if kind == "missing":
        kiln = str(tmp_path / "no-such-kiln")
        expect = "cannot start"
    else:
        kiln = write_script(tmp_path / "broken", BROKEN_VMM)
        expect = "Permission denied"
    r, stdout, data = run_bench(tmp_path, kiln, fake, "--only", "start_latency,exit_cost")
    # The harness reports the failure and carries on with QEMU: status 1, a table and the JSON.
    assert r.returncode == 1
    rows = common.parse_table(stdout)
    assert len(rows) == len(figure_rows(data))
    for row in rows:
        assert row["kiln"] is None and expect in row["notes"]["kiln"]
        assert row["qemu"] is not None and row["ratio"] is None
    failed = [x for b in data["benchmarks"] for x in b["runs"] if x["vmm"] == "kiln"]
    assert failed and all(not x["ok"] and expect in x["error"] for x in failed)


def test_bad_arguments(tmp_path, fake):
    r = subprocess.run([sys.executable, str(BENCH / "run"), "--only", "nonsense"], capture_output=True, timeout=60)
    assert r.returncode == 2
    assert b"unknown benchmark nonsense" in r.stderr


def test_capture_times_and_lines():
    cap = common.Capture()
    cap.add(b"exitloop: pio go n=5\r", 1.0)
    cap.add(b"\nexitloop: pio en", 2.0)
    assert cap.line_after(b"exitloop: pio end") is None  # no newline yet
    cap.add(b"d n=5 cycles=50\r\n", 3.0)
    assert cap.line_after(b"exitloop: pio go") == ("exitloop: pio go n=5", 1.0, 2.0)
    assert cap.line_after(b"exitloop: pio end") == ("exitloop: pio end n=5 cycles=50", 2.0, 3.0)
    assert cap.time_at(len(cap.data)) is None


def test_memory_split_of_this_process():
    import mmap

    ram = mmap.mmap(-1, 32 << 20)
    for off in range(0, 2 << 20, 4096):
        ram[off] = 1
    m = common.memory_split(os.getpid(), 32)
    assert m["guest_rss_kb"] >= 2048
    assert m["overhead_rss_kb"] == m["rss_kb"] - m["guest_rss_kb"]
    ram.close()


# ---- the benchmark guest itself, on kiln, through both entries (needs KVM; no timing asserted) ----

@pytest.mark.parametrize("boot", ["pvh", "linux64"])
def test_exitloop_guest_on_kiln(kiln, kvm, boot):
    from conftest import GUESTS, run_kiln, text

    guest = GUESTS / "exitloop.elf"
    if not guest.exists():
        pytest.fail(f"{guest} is missing: build first (make)")
    r = run_kiln(["run", "--kernel", guest, "--memory", "64", "--boot", boot, "--cmdline", "ram=10 pio=10 mmio=10"],
                 timeout=120)
    out = text(r.stdout).replace("\r", "")
    assert r.returncode == 0, text(r.stderr)
    # The command line reached the guest through boot_params or hvm_start_info.
    assert f"exitloop: start pvh={1 if boot == 'pvh' else 0}" in out
    for loop in ("ram", "pio", "mmio"):
        assert f"exitloop: {loop} end n=10 cycles=" in out
    assert "exitloop: done" in out
