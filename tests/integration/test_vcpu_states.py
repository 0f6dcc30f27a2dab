"""The vCPU state machine and the one event loop, seen from outside (docs/design.md "Threads, locks and the
vCPU state machine"), through kiln's test hooks (src/vmm/test_hooks.h; built in unless buildtype=release):

- KILN_TEST_SLOW_EXIT_MS holds each vCPU in its exit before it serves a request: a pause then waits for it,
  and GET / must still answer within 1 s meanwhile (the API thread holds no lock across that wait);
- KILN_TEST_LOOP_FAIL makes the device or the main event loop fail: the VM stops with a message and exit
  status 1 instead of running on without its devices.

Guest: build/guests/hello.elf in "count" mode (counts forever)."""
import json
import os
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import KILN, text

SLOW_MS = 3000


def api(sock, method, path, body=None, timeout=30):
    cmd = ["curl", "-s", "--max-time", str(timeout), "--unix-socket", sock, "-X", method,
           f"http://localhost{path}", "-w", "\n%{http_code}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout + 10, check=True).stdout.decode()
    payload, _, code = out.rpartition("\n")
    return int(code), payload


def start(env_extra, *args):
    tmp = tempfile.mkdtemp(prefix="kiln-vcpu-")
    sock = os.path.join(tmp, "api.sock")
    err = open(os.path.join(tmp, "stderr"), "w+b")
    env = dict(os.environ, **env_extra)
    p = subprocess.Popen([str(KILN), "run", "--memory", "32", "--api-sock", sock, *map(str, args)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert p.poll() is None, f"kiln exited early with {p.returncode}"
        assert time.monotonic() < deadline, "kiln did not create its API socket in 10 s"
        time.sleep(0.02)
    return p, sock, err


def stderr_of(err):
    err.seek(0)
    return text(err.read())


@pytest.fixture
def curl():
    if subprocess.run(["which", "curl"], capture_output=True).returncode:
        pytest.fail("curl is missing: run scripts/setup")


def wait_count(p, lines=1, seconds=20):
    """Read the console until the guest printed `lines` "count N" lines."""
    got = b""
    deadline = time.monotonic() + seconds
    while got.count(b"count ") < lines:
        assert time.monotonic() < deadline, f"the guest did not count: {got!r}"
        chunk = os.read(p.stdout.fileno(), 4096)
        assert chunk, "the console closed"
        got += chunk


def test_get_answers_while_a_pause_waits_for_a_slow_vcpu(kiln, kvm, hello_elf, curl):
    p, sock, err = start({"KILN_TEST_SLOW_EXIT_MS": str(SLOW_MS)}, "--kernel", hello_elf, "--cmdline", "count")
    try:
        wait_count(p)
        pause = {}

        def do_pause():
            t0 = time.monotonic()
            pause["answer"] = api(sock, "PATCH", "/vm", {"state": "Paused"})
            pause["seconds"] = time.monotonic() - t0

        t = threading.Thread(target=do_pause)
        t.start()
        # The request is in the vCPU's slot and the hook holds the vCPU SLOW_MS before it serves it.
        deadline = time.monotonic() + 5
        while "a vCPU holds a request" not in stderr_of(err):
            assert time.monotonic() < deadline, "the vCPU never held the pause: is the test hook built in?"
            time.sleep(0.01)
        t0 = time.monotonic()
        code, body = api(sock, "GET", "/", timeout=5)
        get_seconds = time.monotonic() - t0
        waiting = t.is_alive()
        assert code == 200, body
        assert get_seconds < 1.0, f"GET / took {get_seconds:.2f} s while a pause waited"
        assert waiting, "the pause did not wait for the slow vCPU: is the test hook built in?"
        # Not paused yet: the vCPU has not served the request.
        assert json.loads(body)["state"] == "Running"
        t.join(timeout=SLOW_MS / 1000 + 20)
        assert pause["answer"][0] == 204, pause["answer"]
        assert pause["seconds"] >= SLOW_MS / 1000 - 0.5, f"paused in {pause['seconds']:.2f} s"
        code, body = api(sock, "GET", "/")
        assert code == 200 and json.loads(body)["state"] == "Paused"
        # A paused vCPU waits in its slot, not in an exit: the resume is served at once.
        t0 = time.monotonic()
        assert api(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
        assert time.monotonic() - t0 < SLOW_MS / 1000
        wait_count(p)
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert "test hook: KILN_TEST_SLOW_EXIT_MS=3000" in stderr_of(err)
    assert p.returncode == 0, stderr_of(err)


@pytest.mark.parametrize("which", ["device", "main"])
def test_a_loop_failure_stops_the_vm(kiln, kvm, hello_elf, curl, which):
    p, sock, err = start({"KILN_TEST_LOOP_FAIL": f"{which}:300"}, "--kernel", hello_elf, "--cmdline", "count")
    try:
        wait_count(p)
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    log = stderr_of(err)
    assert p.returncode == 1, log
    assert f"{which} event loop: failure injected by KILN_TEST_LOOP_FAIL" in log, log
