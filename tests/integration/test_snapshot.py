"""Snapshot, restore and clone of a running VM (docs/snapshot-format.md, docs/api.yaml).

The hello guest's "count" mode counts in user mode and prints "count N" a few times a second. A
snapshot taken while it is paused after "count N" must continue with "count N+1" in a new process,
whether the memory file is mapped (MAP_PRIVATE, the default) or copied (--copy); clones of it each go
on counting on their own; a damaged state file is refused; and a kill -9 in the middle of a snapshot
leaves the previous snapshot loadable."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import KILN, api, run_kiln, text


def counts(path):
    try:
        with open(path, "rb") as f:
            return [int(n) for n in re.findall(rb"count (\d+)", f.read())]
    except FileNotFoundError:
        return []


def wait_for(predicate, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def wait_counts(path, n=1, after=None, timeout=20.0):
    """Until the console file has at least n counts (beyond the value `after`, if given)."""
    def enough():
        c = counts(path)
        if after is not None:
            c = [x for x in c if x > after]
        return c if len(c) >= n else None
    return wait_for(enough, timeout, f"{n} counts in {path}")


class Procs:
    """kiln processes started by a test, stopped (by pid) at its end."""

    def __init__(self):
        self.procs = []
        self.pids = []

    def start(self, args, **kw):
        p = subprocess.Popen([str(KILN)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
            try:
                _, err = p.communicate(timeout=30)
                print(text(err))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


@pytest.fixture
def env(kiln, kvm, hello_elf):
    if subprocess.run(["which", "curl"], capture_output=True).returncode:
        pytest.fail("curl is missing: run scripts/setup")
    d = tempfile.mkdtemp(prefix="kiln-snap-")
    procs = Procs()
    yield d, procs, hello_elf
    procs.stop()
    subprocess.run(["rm", "-rf", d])


def start_counter(d, procs, hello_elf, name="vm", memory=32, cmdline="count", extra=()):
    sock = os.path.join(d, f"{name}.sock")
    console = os.path.join(d, f"{name}.console")
    p = procs.start(["run", "--kernel", hello_elf, "--memory", memory, "--cmdline", cmdline, "--api-sock", sock,
                     "--console", console] + list(extra))
    wait_for(lambda: os.path.exists(sock), 10, "the API socket")
    return p, sock, console


def start_waiting(d, procs, name):
    """kiln run --api-sock with nothing configured, waiting for a snapshot to load: (process, socket, console)."""
    sock, console = os.path.join(d, f"{name}.sock"), os.path.join(d, f"{name}.console")
    p = procs.start(["run", "--api-sock", sock, "--console", console])
    wait_for(lambda: os.path.exists(sock), 10, "the waiting kiln's socket")
    return p, sock, console


def snapshot_paused(d, sock, console, name="snap"):
    """Snapshot the counting VM and leave it paused: returns (state, mem, last count before the snapshot)."""
    state, mem = os.path.join(d, f"{name}.state"), os.path.join(d, f"{name}.mem")
    r = subprocess.run([str(KILN), "snapshot", sock, state, mem, "--leave-paused"], capture_output=True, timeout=120)
    assert r.returncode == 0, text(r.stderr)
    assert "written in" in text(r.stdout)
    last = max(counts(console))
    # Paused: nothing more appears.
    time.sleep(0.5)
    assert max(counts(console)) == last, "the VM ran on after the snapshot"
    return state, mem, last


def snapshot_counter(d, procs, hello_elf, counts_first=1, name="vm", extra=()):
    """A counting VM snapshotted (paused) after `counts_first` counts, then stopped: (state, mem, last count)."""
    orig, sock, console = start_counter(d, procs, hello_elf, name, extra=extra)
    wait_counts(console, counts_first)
    state, mem, last = snapshot_paused(d, sock, console)
    orig.terminate()
    orig.wait(timeout=20)
    return state, mem, last


def restore(procs, d, state, mem, name, *extra):
    console = os.path.join(d, f"{name}.console")
    p = procs.start(["run", "--restore", state, "--mem", mem, "--console", console] + list(extra))
    return p, console


@pytest.mark.parametrize("copy", [False, True], ids=["mapped", "copied"])
def test_restore_continues_the_count(env, copy):
    d, procs, hello = env
    state, mem, last = snapshot_counter(d, procs, hello, 3)

    p, console2 = restore(procs, d, state, mem, "restored", *(["--copy"] if copy else []))
    got = wait_counts(console2, 3)
    # The guest goes on from its own memory: the next value, not 1.
    assert got[0] == last + 1, f"restored count starts at {got[0]}, the snapshot was taken after {last}"
    assert got == list(range(last + 1, last + 1 + len(got))), got
    assert p.poll() is None


def test_snapshot_of_a_restored_vm(env):
    """A VM restored MAP_PRIVATE is snapshotted again (its RAM is a private file mapping, not a memfd)."""
    d, procs, hello = env
    state, mem, _ = snapshot_counter(d, procs, hello, 2)
    sock2 = os.path.join(d, "second.sock")
    p, console2 = restore(procs, d, state, mem, "second", "--api-sock", sock2)
    wait_for(lambda: os.path.exists(sock2), 10, "the restored VM's API socket")
    got = wait_counts(console2, 2)
    state2, mem2, last2 = snapshot_paused(d, sock2, console2, "snap2")
    assert last2 >= got[-1]
    p.terminate()
    p3, console3 = restore(procs, d, state2, mem2, "third")
    assert wait_counts(console3, 2)[0] == last2 + 1
    # The first snapshot's memory file was not touched by the VM that ran on it.
    p4, console4 = restore(procs, d, state, mem, "again")
    assert wait_counts(console4, 1)[0] == got[0]


def test_two_clones_count_independently(env):
    d, procs, hello = env
    state, mem, last = snapshot_counter(d, procs, hello, 2)

    prefix = os.path.join(d, "clone")
    r = subprocess.run([str(KILN), "clone", state, mem, "-n", "2", "--api-sock-prefix", prefix, "--console-prefix",
                        prefix], capture_output=True, timeout=120)
    out = text(r.stdout)
    assert r.returncode == 0, out + text(r.stderr)
    pids = [int(x) for x in re.findall(r"clone \d+: pid (\d+)", out)]
    procs.pids += pids
    assert len(pids) == 2 and pids[0] != pids[1]
    assert re.search(r"2 clones running after [\d.]+ ms", out)
    c0, c1 = f"{prefix}0.console", f"{prefix}1.console"
    assert wait_counts(c0, 2)[0] == last + 1
    assert wait_counts(c1, 2)[0] == last + 1

    # Each is its own VM: pausing one does not stop the other.
    assert api(f"{prefix}0.sock", "PATCH", "/vm", {"state": "Paused"})[0] == 204
    time.sleep(0.3)
    frozen = max(counts(c0))
    before = max(counts(c1))
    wait_counts(c1, 2, after=before)
    assert max(counts(c0)) == frozen, "pausing clone 0 did not stop it"
    assert api(f"{prefix}0.sock", "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    wait_counts(c0, 1, after=frozen)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    procs.pids = []


def test_corrupt_or_mismatched_snapshots_are_refused(env):
    d, procs, hello = env
    orig, sock, console = start_counter(d, procs, hello)
    wait_counts(console, 1)
    state, mem, _ = snapshot_paused(d, sock, console)
    api(sock, "PATCH", "/vm", {"state": "Resumed"})
    wait_counts(console, 1, after=max(counts(console)))
    state2, mem2, _ = snapshot_paused(d, sock, console, "other")
    orig.terminate()
    data = open(state, "rb").read()

    def refused(args, message):
        r = subprocess.run([str(KILN), "run"] + [str(a) for a in args] + ["--console", "/dev/null"],
                           capture_output=True, timeout=60)
        assert r.returncode == 2, text(r.stderr)
        assert message in text(r.stderr), text(r.stderr)
        assert "Segmentation" not in text(r.stderr)

    flipped = os.path.join(d, "flipped.state")
    for offset in (10, 200, len(data) // 2, len(data) - 30, len(data) - 5):
        b = bytearray(data)
        b[offset] ^= 0x40
        open(flipped, "wb").write(bytes(b))
        refused(["--restore", flipped, "--mem", mem], "flipped.state")
    truncated = os.path.join(d, "truncated.state")
    for size in (0, 40, 100, len(data) // 2, len(data) - 1):
        open(truncated, "wb").write(data[:size])
        refused(["--restore", truncated, "--mem", mem], "truncated.state")
    refused(["--restore", state, "--mem", mem2], "belongs to snapshot")
    refused(["--restore", state, "--mem", os.path.join(d, "missing.mem")], "cannot open")
    short_mem = os.path.join(d, "short.mem")
    open(short_mem, "wb").write(open(mem, "rb").read()[:4096 * 16])
    refused(["--restore", state, "--mem", short_mem], "the snapshot expects")
    refused(["--restore", mem, "--mem", mem], "not a kiln snapshot state file")
    r = subprocess.run([str(KILN), "run", "--restore", state], capture_output=True, timeout=30)
    assert r.returncode == 2 and "--mem" in text(r.stderr)
    r = subprocess.run([str(KILN), "run", "--restore", state, "--mem", mem, "--memory", "64"], capture_output=True,
                       timeout=30)
    assert r.returncode == 2


def kill_mid_snapshot(d, procs, hello):
    """A counting VM killed (-9) while writing its second snapshot to the paths of its first: (state, mem,
    last count of the first snapshot, name of the memory temp file left behind)."""
    orig, sock, console = start_counter(d, procs, hello, memory=512, cmdline="fill count")
    wait_counts(console, 2, timeout=60)
    state, mem, first = snapshot_paused(d, sock, console)
    assert api(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    wait_counts(console, 2, after=first)
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    snap = subprocess.Popen(["curl", "-s", "--unix-socket", sock, "-X", "PUT", "http://localhost/snapshot/create",
                             "-d", json.dumps({"snapshot_path": state, "mem_file_path": mem})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def writing():
        for name in os.listdir(d):
            if not name.startswith(os.path.basename(mem) + ".tmp."):
                continue
            if os.path.getsize(os.path.join(d, name)) > 0:
                return name
        return None
    tmp = wait_for(writing, 30, "the memory temp file")
    os.kill(orig.pid, signal.SIGKILL)
    orig.wait(timeout=20)
    snap.communicate(timeout=30)
    assert os.path.exists(os.path.join(d, tmp)), "the snapshot finished before the kill: make the guest larger"
    return state, mem, first, tmp


def test_kill_during_snapshot_keeps_the_previous_one(env):
    """kill -9 while the memory file is being written: the previous snapshot at the same paths still loads."""
    d, procs, hello = env
    state, mem, first, _ = kill_mid_snapshot(d, procs, hello)

    # The paths still hold the first snapshot, whole.
    p, console2 = restore(procs, d, state, mem, "after-kill")
    got = wait_counts(console2, 1, timeout=60)
    assert got[0] == first + 1, f"restored {got[0]}, the first snapshot was taken after {first}"


def test_load_over_the_api_as_firecracker_does(env):
    """kiln run --api-sock alone waits for PUT /snapshot/load (Firecracker's body), then runs the VM."""
    d, procs, hello = env
    state, mem, last = snapshot_counter(d, procs, hello)

    _, sock2, console2 = start_waiting(d, procs, "fresh")
    code, body = api(sock2, "GET", "/")
    assert code == 200 and json.loads(body)["state"] == "Not started"
    code, body = api(sock2, "PATCH", "/vm", {"state": "Paused"})
    assert code == 400 and "before starting the microVM" in json.loads(body)["fault_message"]
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": state, "mem_backend": {
        "backend_type": "File", "backend_path": os.path.join(d, "nope.mem")}})
    assert code == 400 and "nope.mem" in json.loads(body)["fault_message"]
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": state, "mem_backend": {
        "backend_type": "File", "backend_path": mem}, "resume_vm": False})
    assert code == 204, body
    code, body = api(sock2, "GET", "/")
    assert json.loads(body)["state"] == "Paused"
    time.sleep(0.5)
    assert counts(console2) == []
    assert api(sock2, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    assert wait_counts(console2, 2)[0] == last + 1
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": state, "mem_file_path": mem})
    assert code == 400 and "after starting the microVM" in json.loads(body)["fault_message"]
    code, body = api(sock2, "PUT", "/snapshot/create", {"snapshot_path": state, "mem_file_path": mem})
    assert code == 400 and "paused" in json.loads(body)["fault_message"]


def test_no_load_into_a_configured_instance(env):
    """Firecracker's rule: a snapshot loads only into a kiln nothing was configured in."""
    d, procs, hello = env
    state, mem, last = snapshot_counter(d, procs, hello)
    _, sock2, _ = start_waiting(d, procs, "configured")
    assert api(sock2, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})[0] == 204
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": state, "mem_backend": {
        "backend_type": "File", "backend_path": mem}})
    assert code == 400 and "after configuring" in json.loads(body)["fault_message"]


def test_drives_are_recorded_and_checked(env):
    """DISK sections: a drive's backing file must still be there and of the same size; clones refuse a
    writable drive they would share."""
    d, procs, hello = env
    ro, rw = os.path.join(d, "ro.img"), os.path.join(d, "rw.img")
    for path in (ro, rw):
        with open(path, "wb") as f:
            f.truncate(1 << 20)
    state, mem, last = snapshot_counter(d, procs, hello, name="disk", extra=["--disk", f"{ro},ro", "--disk", rw])
    assert open(state, "rb").read().count(b"DISK") == 2

    p, console2 = restore(procs, d, state, mem, "disks")
    assert wait_counts(console2, 1)[0] == last + 1
    p.terminate()

    r = subprocess.run([str(KILN), "clone", state, mem, "-n", "2"], capture_output=True, timeout=60)
    assert r.returncode == 2 and "rw.img" in text(r.stderr) and "writable" in text(r.stderr)

    with open(rw, "ab") as f:
        f.truncate(2 << 20)
    r = run_kiln(["run", "--restore", state, "--mem", mem, "--console", "/dev/null"], timeout=60)
    assert r.returncode == 2 and "rw.img is 2097152 bytes, the snapshot's was 1048576" in text(r.stderr)
    os.unlink(ro)
    r = run_kiln(["run", "--restore", state, "--mem", mem, "--console", "/dev/null"], timeout=60)
    assert r.returncode == 2 and "ro.img" in text(r.stderr)


def test_network_interface_on_another_tap(env):
    """A VM with a virtio-net on a TAP: the restore needs a TAP of its own while the original holds its
    one (--net-override, Firecracker's network_overrides), and clones one each (%d)."""
    d, procs, hello = env
    if not os.path.exists("/dev/net/tun") or os.geteuid() != 0:
        pytest.skip("needs /dev/net/tun and root to create TAP devices")
    tag = f"ks{os.getpid() % 10000}"
    orig, sock, console = start_counter(d, procs, hello, "net", extra=["--net", f"{tag}a"])
    wait_counts(console, 1)
    state, mem, last = snapshot_paused(d, sock, console)
    assert b"VNET" in open(state, "rb").read()

    # The original still holds its TAP: the same one cannot be opened again.
    r = run_kiln(["run", "--restore", state, "--mem", mem, "--console", "/dev/null"], timeout=60)
    assert r.returncode != 0 and f"{tag}a" in text(r.stderr)
    r = run_kiln(["run", "--restore", state, "--mem", mem, "--net-override", "eth9=x"], timeout=60)
    assert r.returncode == 2 and 'no network interface "eth9"' in text(r.stderr)
    p, console2 = restore(procs, d, state, mem, "other-tap", "--net-override", f"net0={tag}b")
    assert wait_counts(console2, 1)[0] == last + 1
    p.terminate()
    p.wait(timeout=30)

    r = subprocess.run([str(KILN), "clone", state, mem, "-n", "2"], capture_output=True, timeout=60)
    assert r.returncode == 2 and "--net-override net0=" in text(r.stderr)
    prefix = os.path.join(d, "netclone")
    r = subprocess.run([str(KILN), "clone", state, mem, "-n", "2", "--console-prefix", prefix, "--net-override",
                        f"net0={tag}c%d"], capture_output=True, timeout=120)
    pids = [int(x) for x in re.findall(r"clone \d+: pid (\d+)", text(r.stdout))]
    procs.pids += pids
    assert r.returncode == 0, text(r.stdout) + text(r.stderr)
    assert wait_counts(f"{prefix}0.console", 1)[0] == last + 1
    assert wait_counts(f"{prefix}1.console", 1)[0] == last + 1


def test_cli_verbs(env):
    """kiln restore --into (PUT /snapshot/load through the API client), kiln restore STATE MEM, and the
    client's errors: no server, a refused request."""
    d, procs, hello = env
    orig, sock, console = start_counter(d, procs, hello)
    wait_counts(console, 1)
    state, mem, last = snapshot_paused(d, sock, console)
    # A paused VM stays paused through kiln snapshot.
    r = subprocess.run([str(KILN), "snapshot", sock, state + "2", mem + "2"], capture_output=True, timeout=60)
    assert r.returncode == 0 and "VM paused meanwhile" not in text(r.stdout)
    assert max(counts(console)) == last
    orig.terminate()

    _, sock2, console2 = start_waiting(d, procs, "into")
    r = subprocess.run([str(KILN), "restore", "--into", sock2, state, mem, "--resume"], capture_output=True,
                       timeout=60)
    assert r.returncode == 0, text(r.stderr)
    assert wait_counts(console2, 1)[0] == last + 1
    r = subprocess.run([str(KILN), "restore", "--into", sock2, state, mem], capture_output=True, timeout=60)
    assert r.returncode == 1 and "after starting the microVM" in text(r.stderr)

    p, console3 = procs.start(["restore", state, mem, "--console", os.path.join(d, "verb.console")]), \
        os.path.join(d, "verb.console")
    assert wait_counts(console3, 1)[0] == last + 1

    r = subprocess.run([str(KILN), "snapshot", os.path.join(d, "nobody.sock"), state, mem], capture_output=True,
                       timeout=60)
    assert r.returncode == 1 and "nobody.sock" in text(r.stderr)
    r = subprocess.run([str(KILN), "snapshot", sock2], capture_output=True, timeout=60)
    assert r.returncode == 2


def test_clone_over_the_api(env):
    d, procs, hello = env
    orig, sock, console = start_counter(d, procs, hello)
    wait_counts(console, 1)
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    last = max(counts(console))
    code, body = api(sock, "PUT", "/vm/clone", {"clone_id": "copy-1", "api_socket": os.path.join(d, "copy.sock"),
                                                "resume_vm": True})
    assert code == 200, body
    info = json.loads(body)
    procs.pids.append(info["pid"])
    assert info["id"] == "copy-1" and info["api_socket"].endswith("copy.sock")
    assert wait_counts(os.path.join(d, "copy.sock.console"), 2)[0] == last + 1
    code, body = api(os.path.join(d, "copy.sock"), "GET", "/")
    assert json.loads(body)["state"] == "Running"
    # The original stays paused until resumed, then goes on by itself.
    assert max(counts(console)) == last
    assert api(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    assert wait_counts(console, 1, after=last)[0] == last + 1


class Console:
    """The guest's serial console on a kiln process's stdin/stdout."""

    def __init__(self, p):
        self.p = p
        self.out = b""
        os.set_blocking(p.stdout.fileno(), False)

    def wait(self, needle, timeout):
        end = time.monotonic() + timeout
        while needle.encode() not in self.out:
            if time.monotonic() > end or self.p.poll() is not None:
                pytest.fail(f"no {needle!r} on the console; last output:\n{text(self.out[-3000:])}")
            try:
                chunk = os.read(self.p.stdout.fileno(), 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                self.out += chunk
            else:
                time.sleep(0.05)

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()


def test_linux_continues_after_restore(kiln, kvm, tmp_path):
    """One Linux boot (virtio-rng, a virtio-blk ext4 disk, 2 vCPUs): files written to tmpfs and to the disk
    and the shell left waiting before the snapshot; the restored VM, in a new process, runs a command
    typed on its console, reads both files (the disk's again after dropping the page cache, through
    virtio-blk), writes to the disk, and its virtio-rng still answers; then it powers off cleanly."""
    from conftest import LINUX

    kernel, initrd = LINUX / "vmlinux-test", LINUX / "initramfs.cpio"
    if not kernel.exists() or not initrd.exists():
        pytest.fail(f"{kernel} or {initrd} missing: run `make linux-guest`")
    disk = tmp_path / "data.ext4"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True,
                   env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"entropy": {}, "drives": [
        {"drive_id": "data", "path_on_host": str(disk), "is_root_device": False, "is_read_only": False}]}))
    sock, state, mem = tmp_path / "api.sock", tmp_path / "linux.state", tmp_path / "linux.mem"
    procs = Procs()
    try:
        p = subprocess.Popen([str(KILN), "run", "--config", config, "--kernel", kernel, "--initrd", initrd, "--cpus", "2",
                              "--memory", "256", "--cmdline", "console=ttyS0 panic=-1", "--api-sock", sock],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.procs.append(p)
        con = Console(p)
        con.wait("exit this shell to power off", 1200)
        con.send("echo made-before-the-snapshot > /tmp/f; mount -t ext4 /dev/vda /mnt && "
                 "echo on-disk-before-the-snapshot > /mnt/d && sync; head -c 8 /dev/hwrng > /dev/null; "
                 "echo ready-$((40+2))")
        con.wait("ready-42", 300)
        r = subprocess.run([str(KILN), "snapshot", sock, state, mem, "--leave-paused"], capture_output=True,
                           timeout=300)
        assert r.returncode == 0, text(r.stderr)
        print(text(r.stdout))
        p.kill()
        p.wait(timeout=30)

        q = subprocess.Popen([str(KILN), "run", "--restore", state, "--mem", mem], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.procs.append(q)
        con2 = Console(q)
        con2.send("cat /tmp/f; echo 3 > /proc/sys/vm/drop_caches; echo disk: $(cat /mnt/d); "
                  "echo written-after-the-restore > /mnt/e; sync; umount /mnt; "
                  "echo rng: $(head -c 16 /dev/hwrng | od -An -v -tx1); echo after-$((6*7))")
        con2.wait("after-42", 300)
        out = text(con2.out).replace("\r\n", "\n")
        assert "made-before-the-snapshot\n" in out, out[-2000:]
        assert "disk: on-disk-before-the-snapshot\n" in out, out[-2000:]
        m = re.search(r"^rng: ((?:[0-9a-f]{2}\s*){16})$", out, re.M)
        assert m, out[-2000:]
        con2.send("exit")
        _, err = q.communicate(timeout=300)
        assert q.returncode == 0, text(err)[-2000:]
        assert "virtio" not in text(err), text(err)[-2000:]
        # What the restored guest wrote reached the image on the host.
        got = subprocess.run(["debugfs", "-R", "cat /e", str(disk)], capture_output=True,
                             env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
        assert got.stdout == b"written-after-the-restore\n", got.stderr
    finally:
        procs.stop()


def test_clone_holds_no_inherited_fd(env):
    """An fd kiln inherited and did not open (a caller's pipe) is not passed on to the clones it execs."""
    d, procs, hello = env
    r, w = os.pipe()
    try:
        pipe = f"pipe:[{os.fstat(w).st_ino}]"
        sock, console = os.path.join(d, "vm.sock"), os.path.join(d, "vm.console")
        procs.start(["run", "--kernel", hello, "--memory", 32, "--cmdline", "count", "--api-sock", sock,
                     "--console", console], pass_fds=(w,))
        wait_for(lambda: os.path.exists(sock), 10, "the API socket")
        wait_counts(console, 1)
        assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
        code, body = api(sock, "PUT", "/vm/clone", {"clone_id": "fdless", "api_socket": os.path.join(d, "c.sock"),
                                                    "resume_vm": True})
        assert code == 200, body
        pid = json.loads(body)["pid"]
        procs.pids.append(pid)
        fd_dir = f"/proc/{pid}/fd"
        links = {fd: os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
        assert pipe not in links.values(), links
    finally:
        os.close(r)
        os.close(w)


def test_truncated_memory_file_is_a_host_fault(env):
    """The memory file of a VM restored MAP_PRIVATE truncated under it: a host fault, said so, status 1.
    Truncated to nothing: the count guest's pages all lie in its first MiBs, so half would not reach them."""
    d, procs, hello = env
    state, mem, _ = snapshot_counter(d, procs, hello, 1)
    p, console = restore(procs, d, state, mem, "victim")
    wait_counts(console, 2)
    os.truncate(mem, 0)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, text(err)
    assert "guest memory is gone" in text(err) and "memory file was truncated?" in text(err), text(err)
    assert "triple fault" not in text(err), text(err)
