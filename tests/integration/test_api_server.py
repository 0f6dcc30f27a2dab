"""The control API server over HTTP on a UNIX socket, with a fake VM behind it (tests/api/api_fake_vm.c).

Driven with curl exactly as Firecracker's getting-started guide does; the fake VM prints every typed
request it receives as a JSON line, so the tests check both what the client saw and what the VM got.
Also: a stalled (slowloris) client, garbage bytes and a connection flood must not stop or crash the
server, within bounded time. No KVM needed.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, text

FAKE_VM = BUILD / "tests" / "api" / "api_fake_vm"
IDLE_TIMEOUT_S = 2  # the fake's --idle-timeout: how long a silent connection is kept


class FakeVm:
    """One api_fake_vm process serving a socket in a short temporary directory."""

    def __init__(self, tmp_path, args=()):
        # sun_path holds 107 bytes: pytest's tmp_path can be longer, so the socket lives in /tmp.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="kiln-api-"))
        self.sock = self.dir / "firecracker.socket"
        self.out_path = tmp_path / "fake_vm.out"
        self.err_path = tmp_path / "fake_vm.err"
        self.proc = subprocess.Popen(
            [str(FAKE_VM), "--api-sock", str(self.sock), "--idle-timeout", str(IDLE_TIMEOUT_S), *args],
            stdout=open(self.out_path, "wb"),
            stderr=open(self.err_path, "wb"),
        )
        deadline = time.monotonic() + 10
        while not any(e.get("event") == "ready" for e in self.lines()):
            if self.proc.poll() is not None:
                raise AssertionError(f"api_fake_vm exited with {self.proc.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError("api_fake_vm did not become ready in 10 s")
            time.sleep(0.02)

    def lines(self):
        try:
            raw = self.out_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def ops(self):
        """The backend calls so far, as the fake logged them."""
        return [e for e in self.lines() if "op" in e]

    def stderr(self):
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def curl(self, method, path, body=None, data_file=None, extra=()):
        """One request the way Firecracker's guide sends it: (status, headers dict, body text)."""
        hdr = self.dir / "headers"
        args = ["curl", "--unix-socket", str(self.sock), "-s", "-S", "--max-time", "10",
                "-D", str(hdr), "-o", "-", "-w", "\n%{http_code}",
                "-X", method, f"http://localhost{path}",
                "-H", "Accept: application/json", "-H", "Content-Type: application/json", *extra]
        if body is not None:
            args += ["-d", body if isinstance(body, str) else json.dumps(body)]
        if data_file is not None:
            args += ["--data-binary", f"@{data_file}"]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 0, f"curl failed: {text(r.stderr)}"
        out, _, code = text(r.stdout).rpartition("\n")
        headers = {}
        for line in hdr.read_text().splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return int(code), headers, out

    def fault(self, method, path, body=None, **kw):
        """(status, fault_message) of a request that must fail."""
        status, headers, out = self.curl(method, path, body, **kw)
        assert headers.get("content-type") == "application/json", headers
        return status, json.loads(out)["fault_message"]

    def alive(self):
        status, _, out = self.curl("GET", "/")
        assert status == 200, out
        return json.loads(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("api_fake_vm did not stop within 10 s of SIGTERM")
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


@pytest.fixture
def start_fake(tmp_path):
    if not FAKE_VM.exists():
        pytest.skip(f"SKIPPING: {FAKE_VM} is not built (Meson target api_fake_vm in tests/api/; run make)")
    if not shutil.which("curl"):
        pytest.skip("SKIPPING: curl is not installed")
    started = []

    def start(*args, subdir="a"):
        d = tmp_path / subdir
        d.mkdir(exist_ok=True)
        vm = FakeVm(d, args)
        started.append(vm)
        return vm

    yield start
    for vm in started:
        sock = vm.sock
        rc = vm.stop()
        assert rc == 0, f"api_fake_vm exited with {rc}: {vm.stderr()}"
        assert not sock.exists(), "the socket file outlived the server"
        assert vm.lines()[-1].get("event") == "stopped"


@pytest.fixture
def fake(start_fake):
    return start_fake()


def raw(vm, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(vm.sock))
    return s


def read_until_closed(s, limit_s):
    """Everything the server sends until it closes the connection; fails after `limit_s` seconds."""
    data = b""
    deadline = time.monotonic() + limit_s
    while True:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError(f"the server kept the connection open more than {limit_s} s: {data[:200]!r}")
        if not chunk:
            return data
        data += chunk


def test_getting_started_sequence(fake):
    """Firecracker's getting-started guide, then pause, snapshot and resume (snapshot-support.md)."""
    assert fake.alive() == {"id": "anonymous-instance", "state": "Not started",
                            "vmm_version": fake.alive()["vmm_version"], "app_name": "kiln"}
    steps = [
        ("PUT", "/boot-source", '{\n        "kernel_image_path": "./hello-vmlinux.bin",\n'
                                '        "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"\n    }'),
        ("PUT", "/drives/rootfs", '{\n        "drive_id": "rootfs",\n        "path_on_host": "./hello-rootfs.ext4",\n'
                                  '        "is_root_device": true,\n        "is_read_only": false\n    }'),
        ("PUT", "/machine-config", '{\n        "vcpu_count": 2,\n        "mem_size_mib": 1024\n    }'),
        ("PUT", "/actions", '{\n        "action_type": "InstanceStart"\n     }'),
    ]
    for method, path, body in steps:
        status, _, out = fake.curl(method, path, body)
        assert status == 204, f"{method} {path}: {status} {out}"
        assert out == ""
    assert fake.alive()["state"] == "Running"

    assert fake.curl("PATCH", "/vm", {"state": "Paused"})[0] == 204
    assert fake.alive()["state"] == "Paused"
    assert fake.curl("PUT", "/snapshot/create", {"snapshot_type": "Full", "snapshot_path": "./snapshot_file",
                                                 "mem_file_path": "./mem_file"})[0] == 204
    assert fake.curl("PATCH", "/vm", {"state": "Resumed"})[0] == 204
    assert fake.alive()["state"] == "Running"

    assert fake.ops() == [
        {"op": "put_boot_source", "kernel_image_path": "./hello-vmlinux.bin", "initrd_path": None,
         "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"},
        {"op": "put_drive", "drive_id": "rootfs", "path_on_host": "./hello-rootfs.ext4", "is_root_device": True,
         "is_read_only": False, "partuuid": None, "cache_type": "Unsafe"},
        {"op": "put_machine_config", "patch": False,
         "set": ["vcpu_count", "mem_size_mib", "smt", "track_dirty_pages"],
         "vcpu_count": 2, "mem_size_mib": 1024, "smt": False, "track_dirty_pages": False},
        {"op": "instance_start"},
        {"op": "pause"},
        {"op": "snapshot_create", "snapshot_type": "Full", "snapshot_path": "./snapshot_file",
         "mem_file_path": "./mem_file"},
        {"op": "resume"},
    ]

    # What the VM reports back.
    status, _, out = fake.curl("GET", "/machine-config")
    assert status == 200
    assert json.loads(out) == {"vcpu_count": 2, "mem_size_mib": 1024, "smt": False, "track_dirty_pages": False,
                               "huge_pages": "None"}
    status, _, out = fake.curl("GET", "/vm/config")
    assert status == 200
    cfg = json.loads(out)
    assert cfg["boot-source"] == {"kernel_image_path": "./hello-vmlinux.bin", "initrd_path": None,
                                  "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"}
    assert cfg["machine-config"]["vcpu_count"] == 2
    status, _, out = fake.curl("GET", "/version")
    assert status == 200 and "firecracker_version" in json.loads(out)


def test_snapshot_load(start_fake):
    """Load into a fresh VM, with mem_backend and with the older mem_file_path (deprecated)."""
    vm = start_fake(subdir="new")
    status, headers, _ = vm.curl("PUT", "/snapshot/load", {
        "snapshot_path": "./snapshot_file",
        "mem_backend": {"backend_type": "File", "backend_path": "./mem_file"},
        "track_dirty_pages": False, "resume_vm": True})
    assert status == 204
    assert "deprecation" not in headers
    assert vm.alive()["state"] == "Running"
    assert vm.ops() == [{"op": "snapshot_load", "snapshot_path": "./snapshot_file", "mem_backend_type": "File",
                         "mem_backend_path": "./mem_file", "track_dirty_pages": False, "resume_vm": True,
                         "clock_realtime": False}]
    # A VM that runs cannot load another snapshot: the backend's answer, 400.
    status, msg = vm.fault("PUT", "/snapshot/load", {"snapshot_path": "s", "mem_file_path": "m"})
    assert (status, msg) == (400, "snapshot/load: only into a fresh VM, before any configuration")

    old = start_fake(subdir="old")
    status, headers, _ = old.curl("PUT", "/snapshot/load", {"snapshot_path": "./snapshot_file",
                                                            "mem_file_path": "./mem_file",
                                                            "enable_diff_snapshots": False})
    assert status == 204
    assert headers.get("deprecation") == "true"
    assert old.alive()["state"] == "Paused"
    assert old.ops()[0]["mem_backend_path"] == "./mem_file"


def test_errors(fake):
    """Refusals reach the client with Firecracker's error body and never reach the VM."""
    assert fake.fault("PUT", "/boot-source", {"kernel_image_path": "k", "kernel": "x"}) == (
        400, "boot-source.kernel: unknown field (expected kernel_image_path, initrd_path or boot_args)")
    assert fake.fault("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 128}) == (
        400, 'machine-config.vcpu_count: expected an integer 1..32, got "2"')
    assert fake.fault("PUT", "/machine-config", {"vcpu_count": 2}) == (
        400, "machine-config.mem_size_mib: missing (required)")
    assert fake.fault("PUT", "/drives/rootfs", {"drive_id": "other", "path_on_host": "r", "is_root_device": True,
                                               "is_read_only": False}) == (
        400, 'drive_id: "other" does not match the id in the path, "rootfs"')
    status, msg = fake.fault("PUT", "/actions", '{"action_type": "InstanceStart"')
    assert status == 400 and msg.startswith("malformed JSON body: line 1, column ")
    assert fake.fault("PUT", "/actions", '{"action_type": "InstanceStart"} trailing')[0] == 400
    assert fake.fault("GET", "/nowhere") == (404, "GET /nowhere: no such resource")
    status, headers, out = fake.curl("DELETE", "/machine-config")
    assert status == 405 and headers.get("allow") == "GET, PUT, PATCH"
    assert json.loads(out) == {"fault_message": "DELETE /machine-config: method not allowed (allowed: GET, PUT, PATCH)"}
    assert fake.fault("PUT", "/vsock", {"guest_cid": 3, "uds_path": "v.sock"}) == (400, "PUT /vsock: not supported yet")
    assert fake.fault("PUT", "/actions", {"action_type": "FlushMetrics"}) == (400, "FlushMetrics: not supported yet")
    assert fake.ops() == []

    # The VM's own refusals: the wrong state is 400.
    assert fake.fault("PATCH", "/vm", {"state": "Paused"}) == (400, "vm: cannot pause a VM that has not started")
    assert fake.fault("PUT", "/actions", {"action_type": "InstanceStart"}) == (
        400, "boot-source.kernel_image_path: missing (PUT /boot-source first)")
    assert [e["op"] for e in fake.ops()] == ["pause", "instance_start"]
    assert fake.alive()["state"] == "Not started"


def test_oversized_body(fake, tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"kernel_image_path": "' + "k" * 60000 + '"}')
    want = (400, "PUT /boot-source: a body of 60025 bytes is larger than the limit of 51200 bytes")
    assert fake.fault("PUT", "/boot-source", data_file=big) == want
    # Without Content-Length (chunked): read, counted, dropped.
    assert fake.fault("PUT", "/boot-source", data_file=big, extra=("-H", "Transfer-Encoding: chunked")) == want
    # Just under the limit is fine as far as size goes.
    ok = tmp_path / "ok.json"
    ok.write_text('{"kernel_image_path": "' + "k" * 51000 + '"}')
    assert fake.curl("PUT", "/boot-source", data_file=ok)[0] == 204
    assert len(fake.ops()) == 1


def test_backend_failure_is_500(start_fake):
    vm = start_fake("--fail", "snapshot_create")
    vm.curl("PUT", "/boot-source", {"kernel_image_path": "k"})
    vm.curl("PUT", "/actions", {"action_type": "InstanceStart"})
    vm.curl("PATCH", "/vm", {"state": "Paused"})
    assert vm.fault("PUT", "/snapshot/create", {"snapshot_path": "s", "mem_file_path": "m"}) == (
        500, "snapshot_create: injected failure")
    assert vm.alive()["state"] == "Paused"


def test_socket_file(start_fake, tmp_path):
    vm = start_fake()
    assert (os.stat(vm.sock).st_mode & 0o777) == 0o600
    # A second server on a live socket is refused; the first keeps serving.
    r = subprocess.run([str(FAKE_VM), "--api-sock", str(vm.sock)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 1
    assert "another process serves this socket" in text(r.stderr)
    vm.alive()

    # A stale socket (its server died without removing it) is replaced.
    d = pathlib.Path(tempfile.mkdtemp(prefix="kiln-api-"))
    try:
        stale = d / "stale.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(stale))
        s.close()
        assert stale.exists()
        p = subprocess.Popen([str(FAKE_VM), "--api-sock", str(stale)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert b'"ready"' in p.stdout.readline()
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            c.connect(str(stale))
            c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert read_until_closed(c, 5).startswith(b"HTTP/1.1 200")
            c.close()
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
        assert not stale.exists()

        # Something that is not a socket is left alone.
        regular = d / "file"
        regular.write_text("keep me")
        r = subprocess.run([str(FAKE_VM), "--api-sock", str(regular)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        assert r.returncode == 1 and "exists and is not a socket" in text(r.stderr)
        assert regular.read_text() == "keep me"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_keep_alive_and_pipelining(fake):
    s = raw(fake)
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
              b"PUT /machine-config HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 37\r\n\r\n{\"vcpu_count\": 2, \"mem_size_mib\": 64}"
              b"GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = read_until_closed(s, 5)
    s.close()
    # Bodies are not followed by CRLF: the next status line starts right after one.
    assert re.findall(rb"HTTP/1\.1 \d{3}", data) == [b"HTTP/1.1 200", b"HTTP/1.1 204", b"HTTP/1.1 200"]
    assert fake.ops()[0]["mem_size_mib"] == 64


def test_slowloris(fake):
    """Stalled clients hold only their own connection, which is closed after the idle timeout."""
    stalled = []
    # Headers that never end.
    s = raw(fake)
    s.sendall(b"PUT /actions HTTP/1.1\r\nHost: localhost\r\nContent-Type: app")
    stalled.append(s)
    # A body that never comes.
    s = raw(fake)
    s.sendall(b"PUT /actions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"action_")
    stalled.append(s)
    # One byte at a time, slower than nothing at all.
    s = raw(fake)
    s.sendall(b"G")
    stalled.append(s)

    # Meanwhile the API answers others at once.
    t0 = time.monotonic()
    for _ in range(3):
        fake.alive()
    assert time.monotonic() - t0 < IDLE_TIMEOUT_S, "requests waited for the stalled clients"

    for s in stalled:
        read_until_closed(s, IDLE_TIMEOUT_S + 5)
        s.close()
    fake.alive()
    assert fake.ops() == []


def test_garbage(fake):
    """Bytes that are not HTTP get an error or a closed connection, never a crash or a hang."""
    rng = bytes((i * 7919 + 13) % 256 for i in range(70000))  # deterministic junk, NULs and all
    inputs = [
        rng,
        b"\x00" * 1000,
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nHost: l\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: l\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
        b"GET /" + b"%" * 5000 + b" HTTP/1.1\r\nHost: l\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n",
        b"PUT /actions HTTP/1.1\r\nHost: l\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\xff\xfe\x00{",
    ]
    for data in inputs:
        s = raw(fake)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server gave up on it early: fine
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reply = read_until_closed(s, IDLE_TIMEOUT_S + 5)
        s.close()
        assert reply == b"" or reply.startswith(b"HTTP/1."), reply[:100]
        fake.alive()
    assert fake.ops() == []


def test_connection_flood(start_fake):
    """More connections than the server takes at once: the rest wait or are refused; it recovers."""
    vm = start_fake("--max-connections", "4")
    conns = []
    for _ in range(40):
        try:
            conns.append(raw(vm, timeout=2))
        except OSError:
            break  # the backlog is full: also fine
    for s in conns:
        s.close()
    deadline = time.monotonic() + IDLE_TIMEOUT_S + 5
    while True:
        try:
            vm.alive()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
