"""Linux guests under kiln: the small test kernel (guests/linux/build-kernel) for most checks, and exactly
one boot of Debian's stock kernel (the README's main job). Each boot runs several checks at once: on PVM
hosts every boot costs minutes of emulated kernel code."""
import json
import re

import pytest

from conftest import LINUX, ROOT, is_pvm_host, run_kiln, text

# One command line, many checks: each prints a tagged line the test parses.
CHECKS = (
    "echo uname: $(uname -r); "
    "echo mem: $(grep MemTotal /proc/meminfo); "
    "echo cpus: $(nproc); "
    "echo date: $(date -u +%Y); "
    "echo files: $(ls /proc | wc -l)"
)


def boot(kernel, initrd, cpus, mem, timeout, extra=""):
    if not kernel.exists() or not initrd.exists():
        pytest.fail(f"{kernel} or {initrd} missing: run `make linux-guest`")
    cmdline = f'console=ttyS0 panic=-1 {extra} kiln.cmd="{CHECKS}"'
    r = run_kiln(
        ["run", "--kernel", kernel, "--initrd", initrd, "--cpus", cpus, "--memory", mem, "--cmdline", cmdline,
         "--verbose"],
        timeout=timeout,
    )
    return r, text(r.stdout), text(r.stderr)


def tagged(out, tag):
    """The value of the guest's output line "TAG: value" (the kernel also echoes the command line, so
    only whole lines that start with the tag count)."""
    for line in out.replace("\r", "").splitlines():
        if line.startswith(tag + ": "):
            return line[len(tag) + 2:].strip()
    return None


def check_guest(out, err, cpus, mem_mib, release_prefix):
    assert "KILN-INIT: start" in out, out[-3000:] + err[-3000:]
    assert "KILN-INIT: exit 0" in out, out[-3000:] + err[-3000:]
    release = tagged(out, "uname")
    assert release and release.startswith(release_prefix), out[-2000:]
    m = re.match(r"MemTotal:\s+(\d+) kB", tagged(out, "mem") or "")
    assert m, out[-2000:]
    # The kernel reserves some of it; what it reports must be close to, and never above, the config.
    total_kib = int(m.group(1))
    assert mem_mib * 1024 * 0.80 < total_kib <= mem_mib * 1024
    assert tagged(out, "cpus") == str(cpus)


@pytest.fixture(scope="module")
def test_kernel_boot(kiln, kvm):
    return boot(LINUX / "vmlinux-test", LINUX / "initramfs.cpio", 2, 256, timeout=1200)


def test_test_kernel_runs_userspace_and_powers_off(test_kernel_boot):
    r, out, err = test_kernel_boot
    assert r.returncode == 0, err[-3000:]
    check_guest(out, err, 2, 256, "6.1")


def test_test_kernel_syscalls_completed_on_pvm(test_kernel_boot):
    r, out, err = test_kernel_boot
    if not is_pvm_host():
        pytest.skip("only PVM hosts need kiln to complete SYSCALLs")
    m = re.search(r"vCPU \d+: (\d+) user-mode SYSCALLs completed by kiln", err)
    assert m and int(m.group(1)) > 100, err[-2000:]


@pytest.mark.debian_kernel
def test_debian_kernel_main_job(kiln, kvm):
    """The README's `make run`: Debian's stock kernel (bzImage, decompressed by kiln) + busybox."""
    cfg = json.loads((ROOT / "vm.json").read_text())
    mem = cfg["machine-config"]["mem_size_mib"]
    cpus = cfg["machine-config"]["vcpu_count"]
    for key in ("kernel_image_path", "initrd_path"):
        if not (ROOT / cfg["boot-source"][key]).exists():
            pytest.fail(f"{cfg['boot-source'][key]} missing: run `make linux-guest`")
    version = (LINUX / "vmlinuz-debian.version").read_text().split()[0].replace("linux-image-", "")
    r = run_kiln(["run", "vm.json", "--verbose"], timeout=3600, cwd=ROOT)
    out, err = text(r.stdout), text(r.stderr)
    print(err[-4000:])
    assert r.returncode == 0, err[-3000:]
    check_guest(out, err, cpus, mem, version)
    # Debian builds virtio as modules: /init loaded them from the initramfs, and they bound kiln's devices.
    assert "loading the virtio modules failed" not in out, out[-3000:]
    assert tagged(out, "disk") == "hello_disk kiln-disk", out[-3000:]
    assert (tagged(out, "hwrng") or "").startswith("virtio_rng"), out[-3000:]


def test_sigterm_during_linux_boot(kiln, kvm):
    """SIGTERM while Linux is booting ends kiln cleanly (status 0, one line saying why) within seconds."""
    import signal
    import subprocess
    import time

    kernel, initrd = LINUX / "vmlinux-test", LINUX / "initramfs.cpio"
    if not kernel.exists():
        pytest.fail(f"{kernel} missing: run `make linux-guest`")
    p = subprocess.Popen(
        [str(kiln), "run", "--kernel", str(kernel), "--initrd", str(initrd), "--memory", "128",
         "--cmdline", "console=ttyS0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    buf = b""
    deadline = time.monotonic() + 300
    while b"Linux version" not in buf and time.monotonic() < deadline:
        chunk = p.stdout.read1(4096)
        if not chunk:
            break
        buf += chunk
    assert b"Linux version" in buf
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, text(err)
    assert "stopped by Terminated" in text(err)
    assert time.monotonic() - start < 10
