"""Snapshot integrity and atomicity (issue 12, defect 8): per-chunk checksums of the memory file checked by
--verify, one save at a time to the same paths, and temp files of a killed save removed at the next one."""
import json
import os
import subprocess

from conftest import KILN, api, text
from test_snapshot import (env, counts, kill_mid_snapshot, restore, snapshot_paused, start_counter,  # noqa: F401
                           wait_counts, wait_for)

PAGE = 4096
CHUNK = 2 << 20


def test_verify_refuses_a_flipped_byte_outside_the_sampled_pages(env):
    d, procs, hello = env
    orig, sock, console = start_counter(d, procs, hello)
    wait_counts(console, 1)
    state, mem, last = snapshot_paused(d, sock, console)
    orig.terminate()
    orig.wait(timeout=20)

    # Intact: --verify restores it (both spellings).
    p, console2 = restore(procs, d, state, mem, "verified", "--verify")
    assert wait_counts(console2, 1, timeout=60)[0] == last + 1
    p.terminate()
    p.wait(timeout=20)

    # 32 MiB: 8192 pages, of which 64 are sampled (page j * 8191 / 63): page 600 (in chunk 1) is not one.
    pages = (os.path.getsize(mem) - PAGE) // PAGE
    assert 600 not in {j * (pages - 1) // 63 for j in range(64)}
    with open(mem, "r+b") as f:
        f.seek(600 * PAGE + 100)
        b = f.read(1)
        f.seek(600 * PAGE + 100)
        f.write(bytes([b[0] ^ 0x20]))
    for args in (["run", "--restore", state, "--mem", mem, "--verify"], ["restore", state, mem, "--verify"]):
        r = subprocess.run([str(KILN)] + args + ["--console", os.path.join(d, "refused.console")],
                           capture_output=True, timeout=60)
        assert r.returncode == 2, text(r.stderr)
        assert "checksum mismatch" in text(r.stderr) and f"offset {CHUNK}" in text(r.stderr), text(r.stderr)


def test_a_second_concurrent_save_to_the_same_paths_is_refused(env):
    d, procs, hello = env
    a, sock_a, console_a = start_counter(d, procs, hello, "a", memory=512, cmdline="fill count")
    b, sock_b, console_b = start_counter(d, procs, hello, "b")
    wait_counts(console_a, 2, timeout=60)
    wait_counts(console_b, 1)
    for sock in (sock_a, sock_b):
        assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    first = max(counts(console_a))
    state, mem = os.path.join(d, "s.state"), os.path.join(d, "s.mem")
    body = {"snapshot_path": state, "mem_file_path": mem}

    save_a = subprocess.Popen(["curl", "-s", "--unix-socket", sock_a, "-X", "PUT", "http://localhost/snapshot/create",
                               "-d", json.dumps(body), "-w", "\n%{http_code}"], stdout=subprocess.PIPE)
    wait_for(lambda: f"s.mem.tmp.{a.pid}" in os.listdir(d), 30, "a's memory temp file")
    code, msg = api(sock_b, "PUT", "/snapshot/create", body)
    out = save_a.communicate(timeout=120)[0].decode()
    assert out.rpartition("\n")[2] == "204", out
    assert code == 400 and "another snapshot" in msg, (code, msg)

    # Both files are a's snapshot: it loads and goes on counting from where a was paused.
    for p in (a, b):
        p.terminate()
        p.wait(timeout=20)
    p, console2 = restore(procs, d, state, mem, "after")
    assert wait_counts(console2, 1, timeout=60)[0] == first + 1


def test_temp_files_of_a_killed_snapshot_are_removed_by_the_next_save(env):
    d, procs, hello = env
    state, mem, first, tmp = kill_mid_snapshot(d, procs, hello)
    # Someone else's file with a kiln-like name, and a live process's: neither is kiln's to remove.
    foreign = [os.path.join(d, os.path.basename(mem) + ".tmp.notapid"),
               os.path.join(d, os.path.basename(mem) + f".tmp.{os.getpid()}")]
    for f in foreign:
        open(f, "wb").write(b"x")

    sock = os.path.join(d, "again.sock")
    # --copy: a VM mapping the memory file may not snapshot over it (the file it runs from); a copy may.
    p, console = restore(procs, d, state, mem, "again", "--copy", "--api-sock", sock)
    assert wait_counts(console, 1, timeout=60)[0] == first + 1
    r = subprocess.run([str(KILN), "snapshot", sock, state, mem], capture_output=True, timeout=120)
    assert r.returncode == 0, text(r.stderr)
    assert tmp not in os.listdir(d)
    assert sorted([n for n in os.listdir(d) if n.startswith(os.path.basename(mem) + ".tmp.")]) == sorted(os.path.basename(f) for f in foreign)
    assert [n for n in os.listdir(d) if n.startswith(os.path.basename(state) + ".tmp.")] == []
