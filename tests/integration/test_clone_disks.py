"""Per-clone disks: kiln clone and kiln restore with --disk-copy (kiln copies a writable drive's image
per clone: a reflink where the filesystem can, else a sparse copy) and --disk-override (the caller's
image, checked against the snapshot's DISK record). docs/snapshot-format.md "Disks".

The hello guest does not drive its virtio-blk disks, so what is checked is on the host: the copies
exist with the base's bytes, the base is untouched, each clone process holds its own copy open
(/proc/PID/fd) and counts on from the snapshot, and kiln's log says how each copy was made."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import KILN, text
from test_snapshot import api, env, snapshot_paused, wait_counts, wait_for  # noqa: F401 (env: fixture)

MIB = 1 << 20


def make_image(path, marker):
    """A thin 1 MiB image with `marker` at 0 and at 512 KiB."""
    with open(path, "wb") as f:
        f.write(marker)
        f.seek(512 << 10)
        f.write(marker)
        f.truncate(MIB)


def snapshot_vm_with_disks(d, procs, hello, root=None):
    """A counting hello VM with a writable drive disk0 (rw.img) and a read-only disk1 (ro.img) in `root`
    (default d), snapshotted paused and stopped: (state, mem, last count, rw path, ro path)."""
    root = root or d
    rw, ro = os.path.join(root, "rw.img"), os.path.join(root, "ro.img")
    make_image(rw, b"base image")
    make_image(ro, b"read-only image")
    sock, console = os.path.join(d, "vm.sock"), os.path.join(d, "vm.console")
    orig = procs.start(["run", "--kernel", hello, "--memory", "32", "--cmdline", "count", "--api-sock", sock,
                        "--console", console, "--disk", rw, "--disk", f"{ro},ro"])
    wait_for(lambda: os.path.exists(sock), 10, "the API socket")
    wait_counts(console, 1)
    state, mem, last = snapshot_paused(root, sock, console)
    orig.terminate()
    orig.wait(timeout=30)
    return state, mem, last, rw, ro


def open_images(pid):
    """The image files process `pid` holds open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".img"):
            out.add(target)
    return out


def open_fds(pid):
    """The file descriptors process `pid` holds: none once it has exited."""
    try:
        return os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []


def clone(state, mem, *args, timeout=120):
    return subprocess.run([str(KILN), "clone", state, mem] + [str(a) for a in args], capture_output=True,
                          timeout=timeout)


def started_pids(r, procs):
    pids = [int(x) for x in re.findall(r"clone \d+: pid (\d+)", text(r.stdout))]
    procs.pids += pids
    return pids


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_clones_get_their_own_copies(env):
    d, procs, hello = env
    state, mem, last, rw, ro = snapshot_vm_with_disks(d, procs, hello)
    base_bytes, base_mtime = read(rw), os.stat(rw).st_mtime_ns

    # The writable drive would be shared: refused, naming the new flags.
    r = clone(state, mem, "-n", "2")
    assert r.returncode == 2 and "--disk-copy disk0" in text(r.stderr), text(r.stderr)

    prefix = os.path.join(d, "c")
    r = clone(state, mem, "-n", "2", "--console-prefix", prefix, "--disk-copy", "disk0")
    pids = started_pids(r, procs)
    assert r.returncode == 0, text(r.stdout) + text(r.stderr)
    copies = [os.path.join(d, f"disk0.clone{i}.img") for i in range(2)]
    for i, copy in enumerate(copies):
        # kiln says how it copied (ext4 cannot reflink: a sparse copy; btrfs/XFS: a reflink).
        assert re.search(rf"drive disk0: {re.escape(copy)} is a (reflink|sparse copy) of {re.escape(rw)}",
                         text(r.stderr)), text(r.stderr)
        assert read(copy) == base_bytes
        assert os.stat(copy).st_blocks * 512 < MIB, "the copy lost the image's holes"
        # Each clone opened its own copy and the shared read-only image, never the base.
        assert open_images(pids[i]) == {copy, ro}
        assert wait_counts(f"{prefix}{i}.console", 1)[0] == last + 1
    assert read(rw) == base_bytes and os.stat(rw).st_mtime_ns == base_mtime

    # A running clone's copy is locked: not replaced by another clone run.
    r = clone(state, mem, "-n", "1", "--console-prefix", os.path.join(d, "again"), "--disk-copy", "disk0")
    assert r.returncode == 1 and "disk0.clone0.img is in use" in text(r.stderr), text(r.stderr)
    # --disk-dir puts the copies elsewhere.
    other = os.path.join(d, "disks")
    os.mkdir(other)
    r = clone(state, mem, "-n", "1", "--console-prefix", os.path.join(d, "dir"), "--disk-copy", "disk0",
              "--disk-dir", other)
    pids = started_pids(r, procs)
    assert r.returncode == 0, text(r.stderr)
    assert open_images(pids[0]) == {os.path.join(other, "disk0.clone0.img"), ro}


def test_disk_override(env):
    d, procs, hello = env
    state, mem, last, rw, ro = snapshot_vm_with_disks(d, procs, hello)

    small = os.path.join(d, "small.img")
    with open(small, "wb") as f:
        f.truncate(4096)
    r = subprocess.run([str(KILN), "restore", state, mem, "--console", "/dev/null", "--disk-override",
                        f"disk0={small}"], capture_output=True, timeout=60)
    assert r.returncode == 2, text(r.stderr)
    assert f"disk override {small} is 4096 bytes, the snapshot's disk {rw} was 1048576 bytes" in text(r.stderr)
    r = subprocess.run([str(KILN), "restore", state, mem, "--disk-override", f"disk7={small}"],
                       capture_output=True, timeout=60)
    assert r.returncode == 2 and 'no drive "disk7"' in text(r.stderr)

    # Images the caller made (a copy of the base at the snapshot: consistent), one per clone with %d.
    for i in range(2):
        shutil.copy(rw, os.path.join(d, f"mine{i}.img"))
    r = clone(state, mem, "-n", "2", "--disk-override", f"disk0={d}/mine.img")
    assert r.returncode == 2 and "--disk-override disk0=<path>%d" in text(r.stderr), text(r.stderr)
    prefix = os.path.join(d, "o")
    r = clone(state, mem, "-n", "2", "--console-prefix", prefix, "--disk-override", f"disk0={d}/mine%d.img")
    pids = started_pids(r, procs)
    assert r.returncode == 0, text(r.stderr)
    for i in range(2):
        assert open_images(pids[i]) == {os.path.join(d, f"mine{i}.img"), ro}
        assert wait_counts(f"{prefix}{i}.console", 1)[0] == last + 1

    # kiln restore --disk-copy: a restore is clone 0 ("disk0.clone0.img" by the state file).
    console = os.path.join(d, "restored.console")
    p = procs.start(["restore", state, mem, "--console", console, "--disk-copy", "disk0"])
    assert wait_counts(console, 1)[0] == last + 1
    assert open_images(p.pid) == {os.path.join(d, "disk0.clone0.img"), ro}


def test_changed_base_refused(env):
    d, procs, hello = env
    state, mem, last, rw, ro = snapshot_vm_with_disks(d, procs, hello)
    # Written after the snapshot (same size, new modification time): a copy would not be the disk
    # the snapshot's guest saw.
    with open(rw, "r+b") as f:
        f.write(b"changed")
    os.utime(rw, ns=(os.stat(rw).st_atime_ns, os.stat(rw).st_mtime_ns + 10**9))
    r = clone(state, mem, "-n", "2", "--console-prefix", os.path.join(d, "c"), "--disk-copy", "disk0")
    assert r.returncode == 2, text(r.stderr)
    assert f"--disk-copy disk0: disk {rw} changed since the snapshot" in text(r.stderr)
    assert not os.path.exists(os.path.join(d, "disk0.clone0.img"))
    assert not re.findall(r"clone \d+: pid", text(r.stdout))


def test_api(env):
    """PUT /vm/clone with disk_copies (kiln copies the drive after its snapshot) and PUT /snapshot/load
    with disk_overrides: the CLI's --disk-copy and --disk-override."""
    d, procs, hello = env
    rw, ro = os.path.join(d, "rw.img"), os.path.join(d, "ro.img")
    make_image(rw, b"base image")
    make_image(ro, b"read-only image")
    sock, console = os.path.join(d, "vm.sock"), os.path.join(d, "vm.console")
    procs.start(["run", "--kernel", hello, "--memory", "32", "--cmdline", "count", "--api-sock", sock,
                 "--console", console, "--disk", rw, "--disk", f"{ro},ro"])
    wait_for(lambda: os.path.exists(sock), 10, "the API socket")
    wait_counts(console, 1)
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    copy_sock = os.path.join(d, "copy.sock")
    code, body = api(sock, "PUT", "/vm/clone", {"clone_id": "copy", "api_socket": copy_sock})
    assert code == 400 and "drive disk0 is writable" in json.loads(body)["fault_message"], body
    code, body = api(sock, "PUT", "/vm/clone", {"clone_id": "copy", "api_socket": copy_sock, "resume_vm": True,
                                                "disk_copies": ["disk0"]})
    assert code == 200, body
    pid = json.loads(body)["pid"]
    procs.pids.append(pid)
    assert open_images(pid) == {f"{copy_sock}.disk0.img", ro}
    assert read(f"{copy_sock}.disk0.img") == read(rw)
    last = max(wait_counts(console, 1))
    assert wait_counts(f"{copy_sock}.console", 1)[0] == last + 1

    # The snapshot the clone was made from, loaded into a waiting kiln with the drive elsewhere.
    mine = os.path.join(d, "mine.img")
    shutil.copy(rw, mine)
    sock2 = os.path.join(d, "load.sock")
    procs.start(["run", "--api-sock", sock2, "--console", os.path.join(d, "load.console")])
    wait_for(lambda: os.path.exists(sock2), 10, "the waiting kiln's socket")
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": f"{copy_sock}.snap", "mem_backend": {
        "backend_type": "File", "backend_path": f"{copy_sock}.mem"}, "resume_vm": True,
        "disk_overrides": [{"drive_id": "disk0", "path_on_host": os.path.join(d, "ro.img")}]})
    assert code == 400 and "is drive disk1's image already" in json.loads(body)["fault_message"], body
    code, body = api(sock2, "PUT", "/snapshot/load", {"snapshot_path": f"{copy_sock}.snap", "mem_backend": {
        "backend_type": "File", "backend_path": f"{copy_sock}.mem"}, "resume_vm": True,
        "disk_overrides": [{"drive_id": "disk0", "path_on_host": mine}]})
    assert code == 204, body
    assert wait_counts(os.path.join(d, "load.console"), 1)[0] == last + 1
    assert open_images(procs.procs[-1].pid) == {mine, ro}


@pytest.fixture
def btrfs_dir(env):
    """A btrfs filesystem on a loop device inside the test's directory (reflinks), unmounted at the end."""
    d, procs, hello = env
    if os.geteuid() != 0 or not shutil.which("mkfs.btrfs") or "btrfs" not in read("/proc/filesystems").decode():
        pytest.skip("needs root, mkfs.btrfs (btrfs-progs) and btrfs in the kernel for a reflink")
    image, mnt = os.path.join(d, "btrfs.img"), os.path.join(d, "btrfs")
    with open(image, "wb") as f:
        f.truncate(160 * MIB)
    os.mkdir(mnt)
    subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
    if subprocess.run(["mount", "-o", "loop", image, mnt], capture_output=True).returncode:
        pytest.skip("cannot mount a loop device here")
    yield mnt
    # The clones hold files there: stopped, and gone, before the unmount.
    pids = list(procs.pids)
    procs.stop()
    procs.pids.clear()
    procs.procs.clear()
    wait_for(lambda: not any(open_fds(pid) for pid in pids), 20, "the clones to exit")
    if subprocess.run(["umount", mnt], capture_output=True).returncode:
        subprocess.run(["umount", "-l", mnt], check=True)


def test_reflink_on_btrfs(env, btrfs_dir):
    d, procs, hello = env
    state, mem, last, rw, ro = snapshot_vm_with_disks(d, procs, hello, root=btrfs_dir)
    prefix = os.path.join(d, "r")
    r = clone(state, mem, "-n", "2", "--console-prefix", prefix, "--disk-copy", "disk0")
    pids = started_pids(r, procs)
    assert r.returncode == 0, text(r.stderr)
    for i in range(2):
        copy = os.path.join(btrfs_dir, f"disk0.clone{i}.img")
        assert f"drive disk0: {copy} is a reflink of {rw}" in text(r.stderr), text(r.stderr)
        assert read(copy) == read(rw)
        assert open_images(pids[i]) == {copy, ro}
        assert wait_counts(f"{prefix}{i}.console", 1)[0] == last + 1
