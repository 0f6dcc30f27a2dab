"""A VM configured over the API before it starts, as Firecracker does: `kiln run --api-sock S` and nothing
else, then curl --unix-socket exactly as Firecracker's getting-started guide sends it (PUT /boot-source,
PUT /machine-config, PUT /actions InstanceStart), then PATCH /vm Paused/Resumed; calls in the wrong state;
the `kiln pause|resume|status` verbs; SendCtrlAltDel typed on the i8042 keyboard (the hello guest's
"keyboard" mode polls for it and resets). Guest: build/guests/hello.elf."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import KILN, text

AFTER_START = "The requested operation is not supported after starting the microVM."
BEFORE_START = "The requested operation is not supported before starting the microVM."


class Kiln:
    """`kiln run --api-sock SOCK [args]`; console to a file, stderr to a file."""

    def __init__(self, *args):
        # sun_path holds 107 bytes: pytest's tmp_path can be longer, so the socket lives in /tmp.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="kiln-cfg-"))
        self.sock = str(self.dir / "firecracker.socket")
        self.console = self.dir / "console"
        self.err = self.dir / "stderr"
        self.proc = subprocess.Popen([str(KILN), "run", "--api-sock", self.sock, *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=open(self.console, "wb"),
                                     stderr=open(self.err, "wb"))
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, f"kiln exited with {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, "kiln did not create its API socket in 10 s"
            time.sleep(0.02)

    def stderr(self):
        return self.err.read_text(errors="replace")

    def output(self):
        return self.console.read_text(errors="replace")

    def curl(self, method, path, body=None):
        """One request as Firecracker's guide writes it: (status, body text)."""
        args = ["curl", "--unix-socket", self.sock, "-s", "-S", "--max-time", "20", "-w", "\n%{http_code}",
                "-X", method, f"http://localhost{path}",
                "-H", "Accept: application/json", "-H", "Content-Type: application/json"]
        if body is not None:
            args += ["-d", body if isinstance(body, str) else json.dumps(body)]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, f"curl failed: {text(r.stderr)}\n{self.stderr()}"
        out, _, code = text(r.stdout).rpartition("\n")
        return int(code), out

    def ok(self, method, path, body=None):
        status, out = self.curl(method, path, body)
        assert status == 204 and out == "", f"{method} {path}: {status} {out}\n{self.stderr()}"

    def fault(self, method, path, body=None):
        status, out = self.curl(method, path, body)
        return status, json.loads(out)["fault_message"]

    def info(self):
        status, out = self.curl("GET", "/")
        assert status == 200, out
        return json.loads(out)

    def counts(self):
        return [int(n) for n in re.findall(r"count (\d+)", self.output())]

    def wait_output(self, pattern, seconds=30):
        deadline = time.monotonic() + seconds
        while not re.search(pattern, self.output()):
            assert self.proc.poll() is None, f"kiln exited with {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, f"no {pattern!r} on the console in {seconds} s: {self.output()}"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


@pytest.fixture
def start_kiln(kiln, kvm, hello_elf):
    if not shutil.which("curl"):
        pytest.fail("curl is missing: run scripts/setup")
    started = []

    def start(*args):
        k = Kiln(*args)
        started.append(k)
        return k

    yield start
    for k in started:
        k.stop()
        print(k.stderr())
        shutil.rmtree(k.dir, ignore_errors=True)


def boot_source(kernel, boot_args):
    # The guide's body, whitespace included (its heredoc-style -d "{ ... }").
    return ('{\n        "kernel_image_path": "%s",\n        "boot_args": "%s"\n    }' % (kernel, boot_args))


def kiln_cli(*args):
    return subprocess.run([str(KILN), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def test_getting_started_then_pause_resume(start_kiln, hello_elf, tmp_path):
    rootfs = tmp_path / "hello-rootfs.ext4"
    rootfs.write_bytes(b"\0" * 65536)
    k = start_kiln()
    assert k.info()["state"] == "Not started"
    assert "waiting for the VM's configuration" in k.stderr()

    k.ok("PUT", "/boot-source", boot_source(hello_elf, "console=ttyS0 reboot=k panic=1 pci=off count"))
    k.ok("PUT", "/drives/rootfs", '{\n        "drive_id": "rootfs",\n        "path_on_host": "%s",\n'
                                  '        "is_root_device": true,\n        "is_read_only": false\n    }' % rootfs)
    k.ok("PUT", "/machine-config", '{\n        "vcpu_count": 2,\n        "mem_size_mib": 1024\n    }')
    status, out = k.curl("GET", "/machine-config")
    assert status == 200
    assert json.loads(out) == {"vcpu_count": 2, "mem_size_mib": 1024, "smt": False, "track_dirty_pages": False,
                               "huge_pages": "None"}
    assert k.output() == "", "the guest ran before InstanceStart"
    k.ok("PUT", "/actions", '{\n        "action_type": "InstanceStart"\n     }')

    k.wait_output(r"count 2")
    out = k.output()
    assert "hello from a kiln guest" in out
    # The root drive reached the VM's configuration: Firecracker's root= is added to the command line.
    assert "cmdline: console=ttyS0 reboot=k panic=1 pci=off count root=/dev/vda rw" in out, out
    assert "e820: 3 entries, 1048191 KiB RAM" in out  # 1024 MiB less the EBDA..1 MiB hole
    assert k.info()["state"] == "Running"
    status, out = k.curl("GET", "/vm/config")
    cfg = json.loads(out)
    assert cfg["machine-config"]["vcpu_count"] == 2
    assert [d["drive_id"] for d in cfg["drives"]] == ["rootfs"]

    k.ok("PATCH", "/vm", {"state": "Paused"})
    assert k.info()["state"] == "Paused"
    time.sleep(0.5)  # a line already in flight may still land
    before = k.counts()
    time.sleep(2)
    assert k.counts() == before, "the guest counted while paused"
    k.ok("PATCH", "/vm", {"state": "Resumed"})
    assert k.info()["state"] == "Running"
    k.wait_output(rf"count {max(before) + 1}\b")
    counts = k.counts()
    assert counts == list(range(1, len(counts) + 1)), "the count went back, repeated or skipped"

    assert k.stop() == 0


def test_wrong_state_and_bad_requests(start_kiln, hello_elf, tmp_path):
    k = start_kiln()
    # Runtime calls before the start, and a start with nothing to boot.
    assert k.fault("PATCH", "/vm", {"state": "Paused"}) == (400, BEFORE_START)
    assert k.fault("PATCH", "/vm", {"state": "Resumed"}) == (400, BEFORE_START)
    assert k.fault("PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == (400, BEFORE_START)
    status, msg = k.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert status == 400 and msg.startswith("Cannot start microvm without kernel configuration.")
    # Bad requests: a reason each, and kiln carries on.
    assert k.fault("PUT", "/boot-source", '{"kernel_image_path": ')[0] == 400
    assert k.fault("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32, "vcpus": 2}) == \
        (400, "machine-config.vcpus: unknown field (expected vcpu_count, mem_size_mib, smt, track_dirty_pages, "
              "cpu_template or huge_pages)")
    status, msg = k.fault("PUT", "/machine-config", {"vcpu_count": "two", "mem_size_mib": 32})
    assert status == 400 and msg.startswith("machine-config.vcpu_count:")
    assert k.fault("PUT", "/boot-source", {"kernel_image_path": "/nonexistent/vmlinux"}) == \
        (400, "boot-source.kernel_image_path: /nonexistent/vmlinux: No such file or directory")
    big = tmp_path / "big.json"
    big.write_text('{"kernel_image_path": "' + "k" * 60000 + '"}')
    status, out = k.curl("PUT", "/boot-source", f"@{big}")
    assert status == 400 and "larger than the limit" in out
    assert k.info()["state"] == "Not started"

    # Start, then every pre-boot-only call gets Firecracker's answer.
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "spin"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    k.wait_output("spinning")
    assert k.fault("PUT", "/actions", {"action_type": "InstanceStart"}) == (400, AFTER_START)
    assert k.fault("PUT", "/boot-source", {"kernel_image_path": str(hello_elf)}) == (400, AFTER_START)
    assert k.fault("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}) == (400, AFTER_START)
    assert k.fault("PATCH", "/machine-config", {"mem_size_mib": 64}) == (400, AFTER_START)
    assert k.fault("PUT", "/entropy", {}) == (400, AFTER_START)
    assert k.fault("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(hello_elf),
                                             "is_root_device": True, "is_read_only": True}) == (400, AFTER_START)
    assert k.fault("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0"}) == \
        (400, AFTER_START)
    status, out = k.curl("GET", "/machine-config")
    assert status == 200 and json.loads(out)["mem_size_mib"] == 32
    assert k.info()["state"] == "Running"
    assert k.stop() == 0


def fix_and_start(k, hello_elf):
    """After a failed InstanceStart: still "Not started", and a good kernel then boots."""
    assert k.info()["state"] == "Not started"
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "count"))
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    k.wait_output(r"count 1\b")
    assert k.stop() == 0


def test_failed_start_keeps_configuring(start_kiln, hello_elf, tmp_path):
    """A start the VMM cannot carry out (not a kernel) answers 400 and the instance can be fixed and started."""
    not_a_kernel = tmp_path / "vmlinux"
    not_a_kernel.write_text("this is not a kernel\n")
    k = start_kiln()
    k.ok("PUT", "/boot-source", {"kernel_image_path": str(not_a_kernel)})
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    status, msg = k.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert status == 400 and msg.startswith("Cannot start microvm: cannot create the VM"), msg
    fix_and_start(k, hello_elf)


def test_cli_verbs(start_kiln, hello_elf):
    k = start_kiln()
    r = kiln_cli("status", k.sock)
    assert r.returncode == 0, text(r.stderr)
    assert re.search(r"^state: +Not started$", text(r.stdout), re.M)
    assert re.search(r"^kernel: +\(none\)$", text(r.stdout), re.M)
    # An error answer: the server's fault message, exit status 1.
    r = kiln_cli("pause", k.sock)
    assert r.returncode == 1
    assert BEFORE_START in text(r.stderr)

    k.ok("PUT", "/boot-source", boot_source(hello_elf, "count"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 48})
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    k.wait_output(r"count 1\b")
    r = kiln_cli("pause", k.sock)
    assert r.returncode == 0 and r.stdout == b"", text(r.stderr)
    r = kiln_cli("status", k.sock)
    out = text(r.stdout)
    assert r.returncode == 0
    assert re.search(r"^state: +Paused$", out, re.M)
    assert re.search(r"^vcpus: +1$", out, re.M)
    assert re.search(r"^memory: +48 MiB$", out, re.M)
    assert re.search(rf"^kernel: +{re.escape(str(hello_elf))}$", out, re.M)
    assert re.search(r"^cmdline: +count$", out, re.M)
    before = k.counts()
    time.sleep(1)
    assert k.counts() == before
    assert kiln_cli("pause", k.sock).returncode == 0  # idempotent, as Firecracker
    assert kiln_cli("resume", k.sock).returncode == 0
    k.wait_output(rf"count {max(before) + 1}\b")
    r = kiln_cli("status", k.sock, "--json")
    both = json.loads(text(r.stdout))
    assert both["info"]["state"] == "Running"
    assert both["config"]["machine-config"]["mem_size_mib"] == 48

    # Usage errors (2) and a socket nobody serves (1).
    assert kiln_cli("pause").returncode == 2
    assert kiln_cli("resume", k.sock, "extra").returncode == 2
    r = kiln_cli("status", str(k.dir / "nobody.sock"))
    assert r.returncode == 1 and "cannot connect" in text(r.stderr)
    assert k.stop() == 0


def test_send_ctrl_alt_del_resets_the_guest(start_kiln, hello_elf):
    """SendCtrlAltDel types the keys on the i8042 keyboard; the guest resets on them and kiln exits as for a reboot."""
    k = start_kiln()
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "keyboard"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    k.wait_output("keyboard: ready")
    k.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    assert k.proc.wait(timeout=30) == 0, k.stderr()
    assert "keyboard: ctrl-alt-del" in k.output()
    assert "guest reset the machine through the i8042" in k.stderr()
    assert not os.path.exists(k.sock), "the socket outlived kiln"


def test_send_ctrl_alt_del_to_a_guest_not_reading(start_kiln, hello_elf):
    """A guest that never reads its keyboard: the keys queue up, then SendCtrlAltDel is refused, not lost silently."""
    k = start_kiln()
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "spin"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    k.wait_output("spinning")
    k.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    status, msg = k.fault("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    assert status == 400 and "the guest is not reading its keyboard" in msg
    assert k.info()["state"] == "Running"
    assert k.stop() == 0


def test_config_file_starts_at_once(start_kiln, hello_elf, tmp_path):
    """--config-file with --api-sock boots without InstanceStart (as Firecracker); the API then serves the VM."""
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"boot-source": {"kernel_image_path": str(hello_elf), "boot_args": "count"},
                               "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}))
    k = start_kiln("--config", cfg)
    assert k.info()["state"] == "Running"
    k.wait_output(r"count 1\b")
    assert k.fault("PUT", "/actions", {"action_type": "InstanceStart"}) == (400, AFTER_START)
    assert k.fault("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}) == (400, AFTER_START)
    k.ok("PATCH", "/vm", {"state": "Paused"})
    assert k.info()["state"] == "Paused"
    assert k.stop() == 0


def test_sigterm_before_start(start_kiln):
    k = start_kiln()
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    k.proc.send_signal(signal.SIGTERM)
    assert k.proc.wait(timeout=20) == 0
    assert "stopped by Terminated before InstanceStart" in k.stderr()
    assert not os.path.exists(k.sock), "the socket outlived kiln"
    assert k.output() == ""


def low_elf(path):
    """A minimal x86-64 ELF executable whose one PT_LOAD sits at 0x1000, below the 1 MiB kiln loads at."""
    import struct
    code = b"\xf4"  # hlt
    phoff, ehsize, phsize = 64, 64, 56
    offset = ehsize + phsize
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, 0x1000, phoff, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, offset, 0x1000, 0x1000, len(code), 0x1000, 0x1000)
    path.write_bytes(ehdr + phdr + code)
    return path


@pytest.mark.parametrize("case", ["low_segment", "truncated", "missing"])
def test_start_fault_names_the_cause(start_kiln, hello_elf, tmp_path, case):
    """InstanceStart with a kernel kiln refuses: the fault_message carries the loader's reason, not an errno,
    and the instance takes configuration again."""
    kernel = tmp_path / "vmlinux"
    if case == "low_segment":
        low_elf(kernel)
    else:
        # The ELF and program headers survive, the segments do not: every PT_LOAD ends past the file.
        kernel.write_bytes(hello_elf.read_bytes()[:256])
    k = start_kiln()
    k.ok("PUT", "/boot-source", {"kernel_image_path": str(kernel)})
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    if case == "missing":
        kernel.unlink()  # after PUT /boot-source checked it
    status, msg = k.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert status == 400, msg
    if case == "low_segment":
        # The kernel's range and the RAM range it must fit (32 MiB: up to 0x2000000).
        assert "kernel occupies 0x1000-0x2000" in msg and "1 MiB-0x2000000" in msg, msg
        assert msg.startswith("Cannot start microvm: cannot create the VM: cannot boot %s: " % kernel), msg
    elif case == "truncated":
        assert msg.startswith("Cannot start microvm: cannot create the VM: kernel %s: " % kernel), msg
        assert "truncated" in msg and "past end of file" in msg, msg
    else:
        # InstanceStart checks the config as a config file is checked, before building anything.
        assert msg == "boot-source.kernel_image_path: %s: No such file or directory" % kernel, msg
    for errno_text in ("No space left on device", "Invalid argument", "kiln's log says more"):
        assert errno_text not in msg, msg
    fix_and_start(k, hello_elf)


def test_start_fault_names_the_device(start_kiln, hello_elf, tmp_path):
    """A device that cannot be made at InstanceStart (its image locked by another process) is named in the
    fault_message with the backend's reason; once the lock is gone the same configuration starts."""
    import fcntl
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 65536)
    k = start_kiln()
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "count"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    k.ok("PUT", "/drives/scratch", {"drive_id": "scratch", "path_on_host": str(disk), "is_root_device": False,
                                    "is_read_only": False})
    with open(disk, "r+b") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status, msg = k.fault("PUT", "/actions", {"action_type": "InstanceStart"})
    assert status == 400, msg
    assert msg.startswith("Cannot start microvm: cannot create the VM: drive scratch: %s is locked" % disk), msg
    assert "kiln's log" not in msg, msg
    fix_and_start(k, hello_elf)


def test_get_vcpus(start_kiln, hello_elf):
    """GET /vcpus (kiln's): 400 before InstanceStart, as Firecracker's runtime endpoints; then every vCPU with
    the id of its thread, a thread of this kiln process named kiln-vcpu<index>."""
    k = start_kiln()
    assert k.fault("GET", "/vcpus") == (400, BEFORE_START)
    k.ok("PUT", "/boot-source", boot_source(hello_elf, "count"))
    k.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 32})
    k.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    # The vCPU threads start right after InstanceStart's answer: each tid appears once its thread runs.
    deadline = time.monotonic() + 10
    while True:
        status, out = k.curl("GET", "/vcpus")
        assert status == 200, out
        vcpus = json.loads(out)
        if all(v["tid"] is not None for v in vcpus):
            break
        assert time.monotonic() < deadline, f"vCPU threads without a tid after 10 s: {out}"
        time.sleep(0.02)
    assert [v["index"] for v in vcpus] == [0, 1]
    tids = [v["tid"] for v in vcpus]
    assert len(set(tids)) == 2 and k.proc.pid not in tids
    for v in vcpus:
        task = pathlib.Path(f"/proc/{k.proc.pid}/task/{v['tid']}")
        assert task.exists(), f"{task}: not a thread of kiln"
        assert (task / "comm").read_text().strip() == f"kiln-vcpu{v['index']}"
    assert k.stop() == 0
