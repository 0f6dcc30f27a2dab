"""Pause and resume through the Firecracker-style API on a running VM (kiln run --api-sock).

The hello guest's "count" mode counts in user mode and prints "count N" a few times a second: while
the VM is paused no line may appear, and after resume the count goes on from where it stopped."""
import json
import os
import re
import selectors
import subprocess
import tempfile
import time

import pytest

from conftest import KILN, api, text


class Reader:
    """Non-blocking line reader over the VM's console (stdout)."""

    def __init__(self, stream):
        self.stream = stream
        self.sel = selectors.DefaultSelector()
        self.sel.register(stream, selectors.EVENT_READ)
        self.buf = b""

    def read_for(self, seconds):
        end = time.monotonic() + seconds
        got = b""
        while time.monotonic() < end:
            if self.sel.select(timeout=max(0.0, end - time.monotonic())):
                chunk = os.read(self.stream.fileno(), 65536)
                if not chunk:
                    break
                got += chunk
        self.buf += got
        return [int(n) for n in re.findall(rb"count (\d+)", got)]


@pytest.fixture
def counting_vm(kiln, kvm, hello_elf):
    if subprocess.run(["which", "curl"], capture_output=True).returncode:
        pytest.fail("curl is missing: run scripts/setup")
    tmp = tempfile.mkdtemp(prefix="kiln-api-")
    sock = os.path.join(tmp, "api.sock")
    p = subprocess.Popen(
        [str(KILN), "run", "--kernel", str(hello_elf), "--memory", "32", "--cmdline", "count", "--api-sock", sock],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    yield p, sock
    if p.poll() is None:
        p.terminate()
    _, err = p.communicate(timeout=30)
    print(text(err))


def test_pause_stops_the_guest_and_resume_continues(counting_vm):
    p, sock = counting_vm
    reader = Reader(p.stdout)
    before = reader.read_for(2.0)
    assert before, "the guest did not count"

    code, body = api(sock, "GET", "/")
    assert code == 200 and json.loads(body)["state"] == "Running"

    code, body = api(sock, "PATCH", "/vm", {"state": "Paused"})
    assert code == 204, body
    code, body = api(sock, "GET", "/")
    assert json.loads(body)["state"] == "Paused"
    # A line already in flight may still arrive; after that, silence.
    reader.read_for(0.5)
    assert reader.read_for(2.0) == [], "the guest ran while paused"

    code, body = api(sock, "PATCH", "/vm", {"state": "Resumed"})
    assert code == 204, body
    after = reader.read_for(2.0)
    assert after, "the guest did not continue after resume"
    counts = [int(n) for n in re.findall(rb"count (\d+)", reader.buf)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), "the count went back or repeated"
    assert after[0] == max(before) + 1 or after[0] > max(before)

    # Pausing twice, resuming twice: idempotent, as in Firecracker.
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    assert api(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    assert api(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204


def test_api_on_a_running_vm(counting_vm):
    _, sock = counting_vm
    code, body = api(sock, "GET", "/vm/config")
    assert code == 200
    assert json.loads(body)["machine-config"]["mem_size_mib"] == 32
    code, body = api(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    assert code == 400 and "after starting" in json.loads(body)["fault_message"]
    code, body = api(sock, "PATCH", "/vm", {"state": "Sleeping"})
    assert code == 400 and "state" in json.loads(body)["fault_message"]


def test_sigterm_while_paused(counting_vm):
    p, sock = counting_vm
    assert api(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    p.terminate()
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0, text(err)
    assert "stopped by Terminated" in text(err)
