"""Shared fixtures for kiln's integration tests: paths, KVM detection, running kiln, its API."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("KILN_BUILD", ROOT / "build"))
KILN = BUILD / "kiln"
GUESTS = BUILD / "guests"
LINUX = BUILD / "linux"


def kvm_usable():
    """(usable, reason): whether /dev/kvm exists and opens read-write."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return True, ""


def is_pvm_host():
    return os.path.exists("/sys/module/kvm_pvm")


@pytest.fixture(scope="session")
def kiln():
    if not KILN.exists():
        pytest.fail(f"{KILN} is missing: build first (make)")
    return KILN


@pytest.fixture(scope="session")
def kvm():
    ok, reason = kvm_usable()
    if not ok:
        msg = f"SKIPPING: this test needs KVM and {reason}"
        print(f"\n*** {msg} ***", file=sys.stderr)
        pytest.skip(msg)
    return True


@pytest.fixture(scope="session")
def hello_elf():
    path = GUESTS / "hello.elf"
    if not path.exists():
        pytest.fail(f"{path} is missing: build first (make)")
    return path


def run_kiln(args, timeout=120, input_bytes=None, cwd=None):
    """Run kiln to completion; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(
        [str(KILN)] + [str(a) for a in args],
        input=input_bytes if input_bytes is not None else b"",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        cwd=cwd,
    )


def api(sock, method, path, body=None, timeout=60):
    """One request to a kiln API socket (through curl, as an operator would); returns (HTTP status, body)."""
    cmd = ["curl", "-s", "--unix-socket", sock, "-X", method, f"http://localhost{path}", "-w", "\n%{http_code}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout, check=True).stdout.decode()
    payload, _, code = out.rpartition("\n")
    return int(code), payload


def text(b):
    return b.decode("utf-8", errors="replace")
