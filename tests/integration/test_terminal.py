"""kiln on a terminal: the console tty it puts in raw mode is restored however kiln ends (issue 12, defect 6)."""
import os
import pty
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import KILN


def read_until(fd, marker, timeout=60):
    """Read the pty's master side until `marker` appears; returns everything read."""
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every slave side closed
                break
            if not chunk:
                break
            buf += chunk
    return buf


@pytest.mark.parametrize(
    "sig",
    [
        # SIGSEGV, SIGABRT and SIGTERM restored it before defect 6 was fixed.
        signal.SIGSEGV,
        signal.SIGABRT,
        signal.SIGTERM,
        signal.SIGQUIT,
        signal.SIGUSR2,
        signal.SIGALRM,
        signal.SIGXCPU,
        signal.SIGTRAP,
        signal.SIGVTALRM,
        signal.SIGPROF,
        signal.SIGSYS,
    ],
    ids=lambda s: s.name,
)
def test_terminal_restored_after_signal(kiln, kvm, hello_elf, sig):
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        p = subprocess.Popen(
            [str(KILN), "run", "--kernel", str(hello_elf), "--memory", "32", "--cmdline", "echo"],
            stdin=slave, stdout=slave, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            out = read_until(master, b"echo: ready")
            assert b"echo: ready" in out, out
            assert termios.tcgetattr(slave) != before, "kiln did not make the terminal raw"
            p.send_signal(sig)
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        after = termios.tcgetattr(slave)
        assert after == before, f"kiln ended with {p.returncode} and left the terminal as {after}"
        if sig != signal.SIGTERM:  # SIGTERM stops the VM and exits; the others kill kiln, as uncaught
            assert p.returncode == -sig, p.returncode
    finally:
        os.close(master)
        os.close(slave)
