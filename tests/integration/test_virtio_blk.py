"""virtio-blk end to end: ONE boot of the test kernel (4 vCPUs, which it must see) with two drives, as Firecracker's "drives":

- vda: a writable ext4 image the test makes on the host (mkfs.ext4 -d, with the guest's check script in it),
  cache_type Writeback, io_engine Async (io_uring);
- vdb: a read-only raw image of random bytes, io_engine Sync (the I/O thread).

The guest mounts vda, reads a file the host put there, writes one, reads vdb whole (checksum), fails to
write vdb, trims vda after deleting a big file, times sequential direct I/O with busybox dd, unmounts and
powers off. The host then finds the guest's file with debugfs, checks the filesystem with e2fsck, and sees
the trimmed space deallocated in the image. One boot: on PVM hosts each costs minutes."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import LINUX, ROOT, run_kiln, text

RANDIO = ROOT / "build" / "guests" / "randio"  # guests/tools/randio.c, static: copied onto vda

RW_SIZE = 96 << 20
RO_SIZE = 16 << 20
PERF_BYTES = 32 << 20
GUEST_TEXT = "written by the guest through virtio-blk"
HOST_TEXT = "put there by the host with mkfs.ext4 -d"

# Runs in the guest from a copy in /tmp (vda must be unmountable at the end). Every result is a tagged
# line. Times come from /proc/uptime (10 ms) read by the shell's own `read`, so no process is started
# around the measured dd but dd itself; "dd-start" measures that start alone.
CHECK_SH = r"""
echo "cpus: $(nproc)"
echo "serial-a: $(cat /sys/block/vda/serial)"
echo "serial-b: $(cat /sys/block/vdb/serial)"
echo "ro-a: $(cat /sys/block/vda/ro)"
echo "ro-b: $(cat /sys/block/vdb/ro)"
echo "size-b: $(cat /sys/block/vdb/size)"
echo "discard-a: $(cat /sys/block/vda/queue/discard_max_bytes)"
echo "host-file: $(cat /mnt/from-host.txt)"
echo "md5-b: $(md5sum /dev/vdb)"
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>/dev/null; then echo "vdb-write: accepted"; else echo "vdb-write: refused"; fi
echo "GUEST_TEXT" > /mnt/from-guest.txt
read t0 x < /proc/uptime; dd if=/dev/zero of=/dev/null bs=1M count=0 2>/dev/null; read t1 x < /proc/uptime
echo "perf-dd-start: 0 $t0 $t1"
read t0 x < /proc/uptime; dd if=/dev/zero of=/mnt/big bs=1M count=PERF_MIB oflag=direct 2>/dev/null; read t1 x < /proc/uptime
echo "perf-write-async: $(stat -c %s /mnt/big) $t0 $t1"
read t0 x < /proc/uptime; dd if=/mnt/big of=/dev/null bs=1M iflag=direct 2>/dev/null; read t1 x < /proc/uptime
echo "perf-read-async: $(stat -c %s /mnt/big) $t0 $t1"
read t0 x < /proc/uptime; dd if=/dev/vdb of=/dev/null bs=1M iflag=direct 2>/dev/null; read t1 x < /proc/uptime
echo "perf-read-sync: $(cat /sys/block/vdb/size)s $t0 $t1"
echo "perf-randread: $(/mnt/randio /dev/vdb read RAND_OPS)"
echo "perf-randwrite: $(/mnt/randio /mnt/big write RAND_OPS)"
rm /mnt/big
sync
echo "trim: $(fstrim -v /mnt)"
umount /mnt && echo "umount: ok"
""".replace("GUEST_TEXT", GUEST_TEXT).replace("PERF_MIB", str(PERF_BYTES >> 20)).replace(
    "RAND_OPS", "200")

CMD = "mount -t ext4 /dev/vda /mnt && cp /mnt/check.sh /tmp/check.sh && sh /tmp/check.sh"


def tagged(out, tag):
    """The value of the guest's line "TAG: value" (whole lines only: the kernel echoes its command line)."""
    for line in out.splitlines():
        if line.startswith(tag + ": "):
            return line[len(tag) + 2:].strip()
    return None


def allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.fixture(scope="module")
def blk_boot(kiln, kvm, tmp_path_factory):
    for tool in ("mkfs.ext4", "debugfs", "e2fsck"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}") and not os.path.exists(f"/sbin/{tool}"):
            pytest.fail(f"{tool} missing: install e2fsprogs (scripts/setup)")
    kernel, initrd = LINUX / "vmlinux-test", LINUX / "initramfs.cpio"
    if not kernel.exists() or not initrd.exists():
        pytest.fail(f"{kernel} or {initrd} missing: run `make linux-guest`")
    d = tmp_path_factory.mktemp("blk")
    content = d / "content"
    content.mkdir()
    (content / "check.sh").write_text(CHECK_SH)
    (content / "from-host.txt").write_text(HOST_TEXT + "\n")
    if not RANDIO.exists():
        pytest.fail(f"{RANDIO} missing: run `make`")
    shutil.copy(RANDIO, content / "randio")
    rw, ro = d / "rw.img", d / "ro.img"
    with open(rw, "wb") as f:
        f.truncate(RW_SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "kilntest", "-d", str(content), str(rw)], check=True,
                   env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    rw_allocated = allocated(rw)
    ro_bytes = os.urandom(RO_SIZE)
    ro.write_bytes(ro_bytes)
    os.chmod(ro, 0o444)  # kiln opens it O_RDONLY: a read-only file must do
    config = d / "vm.json"
    config.write_text(json.dumps({
        "drives": [
            {"drive_id": "kiln_data_disk", "path_on_host": str(rw), "is_root_device": False,
             "is_read_only": False, "cache_type": "Writeback", "io_engine": "Async"},
            {"drive_id": "kiln_ro", "path_on_host": str(ro), "is_root_device": False,
             "is_read_only": True, "io_engine": "Sync"},
        ],
    }))
    r = run_kiln(
        ["run", "--config", config, "--kernel", kernel, "--initrd", initrd, "--cpus", 4, "--memory", 256,
         "--cmdline", f'console=ttyS0 panic=-1 kiln.cmd="{CMD}"'],
        timeout=2400,
    )
    out = text(r.stdout).replace("\r\n", "\n")
    return {"r": r, "out": out, "err": text(r.stderr), "rw": rw, "ro": ro, "dir": d, "rw_allocated": rw_allocated,
            "ro_md5": hashlib.md5(ro_bytes).hexdigest()}


def test_guest_ran_the_checks(blk_boot):
    r, out, err = blk_boot["r"], blk_boot["out"], blk_boot["err"]
    assert r.returncode == 0, err[-3000:]
    assert "KILN-INIT: exit 0" in out, out[-3000:] + err[-3000:]
    assert tagged(out, "umount") == "ok", out[-3000:]
    # Nothing the guest did made kiln complain (NEEDS_RESET, I/O errors...).
    assert "virtio" not in err, err[-3000:]


def test_guest_sees_four_cpus(blk_boot):
    assert tagged(blk_boot["out"], "cpus") == "4", blk_boot["out"][-3000:]


def test_serials_and_read_only_flag(blk_boot):
    out = blk_boot["out"]
    # GET_ID: the drive_id, at most 20 bytes.
    assert tagged(out, "serial-a") == "kiln_data_disk", out[-3000:]
    assert tagged(out, "serial-b") == "kiln_ro", out[-3000:]
    assert tagged(out, "ro-a") == "0"
    assert tagged(out, "ro-b") == "1"
    assert tagged(out, "size-b") == str(RO_SIZE // 512)
    assert int(tagged(out, "discard-a")) > 0  # VIRTIO_BLK_F_DISCARD reached the guest's queue limits


def test_read_only_disk_reads_right_and_refuses_writes(blk_boot):
    out = blk_boot["out"]
    md5 = (tagged(out, "md5-b") or "").split()
    assert md5 and md5[0] == blk_boot["ro_md5"], out[-3000:]
    assert tagged(out, "vdb-write") == "refused", out[-3000:]
    assert hashlib.md5(blk_boot["ro"].read_bytes()).hexdigest() == blk_boot["ro_md5"]


def test_host_and_guest_see_each_others_files(blk_boot):
    out, rw = blk_boot["out"], blk_boot["rw"]
    assert tagged(out, "host-file") == HOST_TEXT, out[-3000:]
    # After the VM: the guest's file is in the image (no mount needed), and the filesystem is clean.
    cat = subprocess.run(["debugfs", "-R", "cat /from-guest.txt", str(rw)], capture_output=True, text=True,
                         env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    assert cat.stdout.strip() == GUEST_TEXT, cat.stdout + cat.stderr
    fsck = subprocess.run(["e2fsck", "-f", "-n", str(rw)], capture_output=True, text=True,
                          env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"})
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_trim_deallocates_in_the_image(blk_boot):
    out, rw = blk_boot["out"], blk_boot["rw"]
    m = re.match(r"/mnt: (\d+) bytes trimmed", tagged(out, "trim") or "")
    assert m and int(m.group(1)) >= PERF_BYTES, out[-3000:]
    # The guest wrote PERF_BYTES, deleted them and trimmed: the image does not hold them any more.
    assert allocated(rw) < blk_boot["rw_allocated"] + PERF_BYTES // 2, (allocated(rw), blk_boot["rw_allocated"])


def guest_rate(out, tag):
    """MB/s from a "perf-...: BYTES T0 T1" line (BYTES may be "<sectors>s"), minus dd's own start."""
    value = tagged(out, tag)
    assert value, out[-3000:]
    size, t0, t1 = value.split()
    nbytes = int(size[:-1]) * 512 if size.endswith("s") else int(size)
    s0, s1 = tagged(out, "perf-dd-start").split()[1:]
    start = float(s1) - float(s0)
    seconds = max(float(t1) - float(t0) - start, 0.01)
    return nbytes / seconds / 1e6, seconds, nbytes


def host_dd(args):
    t0 = time.monotonic()
    subprocess.run(["busybox", "dd"] + args, check=True, capture_output=True)
    return time.monotonic() - t0


def test_sequential_throughput(blk_boot):
    """Figures, not limits: the guest's direct I/O through each engine, and the same dd on the host."""
    out, d = blk_boot["out"], blk_boot["dir"]
    rates = {tag: guest_rate(out, tag) for tag in ("perf-write-async", "perf-read-async", "perf-read-sync")}
    for tag, (mbs, seconds, nbytes) in rates.items():
        assert nbytes > 0 and mbs > 0
    scratch = d / "host-scratch.img"
    w = host_dd(["if=/dev/zero", f"of={scratch}", "bs=1M", f"count={PERF_BYTES >> 20}", "oflag=direct"])
    rd = host_dd([f"if={scratch}", "of=/dev/null", "bs=1M", "iflag=direct"])
    ro = host_dd([f"if={blk_boot['ro']}", "of=/dev/null", "bs=1M", "iflag=direct"])
    scratch.unlink()
    lines = [f"guest {tag[5:]}: {mbs:.1f} MB/s ({nbytes >> 20} MiB in {s:.2f} s)"
             for tag, (mbs, s, nbytes) in rates.items()]
    lines += [f"host write: {PERF_BYTES / w / 1e6:.1f} MB/s", f"host read: {PERF_BYTES / rd / 1e6:.1f} MB/s",
              f"host read ro image: {RO_SIZE / ro / 1e6:.1f} MB/s"]
    print("\nvirtio-blk sequential direct I/O (busybox dd bs=1M):\n  " + "\n  ".join(lines))


def iops(line):
    m = re.search(r"randio: \w+ (\d+) ops in ([\d.]+) s: (\d+) IOPS", line or "")
    assert m, line
    return int(m.group(3))


def test_random_4k_iops(blk_boot):
    """Figures, not limits: 4 KiB random direct I/O at queue depth 1 (guests/tools/randio.c), guest and host."""
    out, d = blk_boot["out"], blk_boot["dir"]
    guest_read, guest_write = iops(tagged(out, "perf-randread")), iops(tagged(out, "perf-randwrite"))
    scratch = d / "host-rand.img"
    subprocess.run(["busybox", "dd", "if=/dev/zero", f"of={scratch}", "bs=1M", f"count={PERF_BYTES >> 20}"],
                   check=True, capture_output=True)
    host_read = iops(subprocess.run([RANDIO, blk_boot["ro"], "read", "2000"], check=True, capture_output=True,
                                    text=True).stdout)
    host_write = iops(subprocess.run([RANDIO, scratch, "write", "2000"], check=True, capture_output=True,
                                     text=True).stdout)
    scratch.unlink()
    print(f"\nvirtio-blk 4k random IOPS, queue depth 1: guest read {guest_read} (host {host_read}, "
          f"ratio {guest_read / host_read:.4f}), guest write {guest_write} (host {host_write}, "
          f"ratio {guest_write / host_write:.4f})")
