"""The API server against hostile HTTP: ambiguous requests and slow clients (issue 12, defects 9 and 4).

Raw bytes over the UNIX socket (Python's socket module), the fake VM of test_api_server.py behind it:
no KVM needed.
"""
import pathlib
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from test_api_server import IDLE_TIMEOUT_S, fake, raw, read_until_closed, start_fake  # noqa: F401 (fixtures)


def connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def exchange(path, data):
    """Send `data` on a fresh connection to the socket at `path`, half-close, return all the server answers."""
    s = connect(path)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = read_until_closed(s, IDLE_TIMEOUT_S + 5)
    s.close()
    return reply


def status_of(reply):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert m, reply[:200]
    return int(m.group(1))


def test_ambiguous_requests_are_400(fake):
    """A request two parsers could read two ways is refused, and never reaches the VM."""
    # A NUL in the path: today "/vm\0/config" is routed as "/vm", "/\0x" as "/".
    for path in (b"/vm\x00/config", b"/\x00x", b"/machine-config\x00"):
        reply = exchange(fake.sock, b"GET " + path + b" HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        assert status_of(reply) == 400, (path, reply[:300])
        assert b"NUL" in reply, reply[:300]
    # Two Content-Lengths that disagree: which body is it? (RFC 9112 s6.3: 400, then close.)
    body = b'{"vcpu_count": 2, "mem_size_mib": 64}'
    for first, second in ((len(body), 5), (5, len(body)), (len(body), len(body) + 10)):
        reply = exchange(fake.sock, b"PUT /machine-config HTTP/1.1\r\nHost: l\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (first, second) + body +
                         b"GET / HTTP/1.1\r\nHost: l\r\n\r\n")
        assert status_of(reply) == 400, (first, second, reply[:300])
        assert b"Content-Length" in reply, reply[:300]
        # The connection closes after the 400: nothing after the ambiguous body is read as a request.
        assert len(re.findall(rb"HTTP/1\.1 \d{3}", reply)) == 1, reply
    assert fake.ops() == []
    # The same length twice is one length (RFC 9110 s8.6 allows either); a normal request still works.
    reply = exchange(fake.sock, b"PUT /machine-config HTTP/1.1\r\nHost: l\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                           % (len(body), len(body)) + body)
    assert status_of(reply) == 204, reply[:300]
    assert exchange(fake.sock, b"GET /vm/config HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200")
    fake.alive()


REQUEST_TIMEOUT_MS = 1500  # the fake's --request-timeout-ms: a whole request must arrive within this
SLOW_CLIENTS = 100


def test_slowloris_100(start_fake):
    """100 clients trickling header lines, each well inside the idle timeout: others are answered at once,
    and each slow one is cut off at the request time limit."""
    vm = start_fake("--request-timeout-ms", str(REQUEST_TIMEOUT_MS))
    slow = []
    try:
        t0 = time.monotonic()
        for i in range(SLOW_CLIENTS):
            s = raw(vm, timeout=2)
            s.sendall(b"PUT /actions HTTP/1.1\r\nHost: l\r\n")
            slow.append(s)
        # A client that is slow but finishes in time is answered.
        patient = raw(vm)
        patient.sendall(b"GET / HTTP/1.1\r\nHost: l\r\n")
        # Meanwhile the API answers a normal caller at once.
        t = time.monotonic()
        vm.alive()
        assert time.monotonic() - t < 2, "GET / waited for the slow clients"

        # Trickle a header line every 0.3 s (the idle timeout is 2 s): the time limit must cut them.
        open_ = {s: True for s in slow}
        closed_at = {}
        next_line = time.monotonic()
        patient_done = False
        deadline = t0 + REQUEST_TIMEOUT_MS / 1000 + 6
        while open_ and time.monotonic() < deadline:
            if time.monotonic() >= next_line:
                for s in list(open_):
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        closed_at[s] = time.monotonic()
                        del open_[s]
                if not patient_done and time.monotonic() - t0 > 0.6:
                    patient.sendall(b"Connection: close\r\n\r\n")
                    assert read_until_closed(patient, 5).startswith(b"HTTP/1.1 200")
                    patient_done = True
                next_line = time.monotonic() + 0.3
            r, _, _ = select.select(list(open_), [], [], 0.05)
            for s in r:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed_at[s] = time.monotonic()
                    del open_[s]
        assert not open_, f"{len(open_)} slow connections outlived the {REQUEST_TIMEOUT_MS} ms request limit"
        assert patient_done
        assert max(closed_at.values()) - t0 < REQUEST_TIMEOUT_MS / 1000 + 4
        vm.alive()
        assert vm.ops() == []
    finally:
        for s in slow:
            s.close()


def test_kiln_api_timeout_flag(kiln, kvm, tmp_path):
    """`kiln run --api-sock S --api-timeout-ms MS`: a trickling client of kiln itself is cut at MS."""
    r = subprocess.run([str(kiln), "run", "--api-sock", str(tmp_path / "x.sock"), "--api-timeout-ms", "5"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert r.returncode == 2 and b"api-timeout-ms" in r.stderr, r.stderr
    d = pathlib.Path(tempfile.mkdtemp(prefix="kiln-to-"))  # sun_path holds 107 bytes
    sock = d / "api.sock"
    proc = subprocess.Popen([str(kiln), "run", "--api-sock", str(sock), "--api-timeout-ms", "700"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:  # the socket file exists a moment before kiln listens on it
            try:
                s = connect(sock)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert proc.poll() is None and time.monotonic() < deadline, "kiln did not serve its socket"
                time.sleep(0.02)
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        cut = None
        while time.monotonic() - t0 < 5:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
                break
            r, _, _ = select.select([s], [], [], 0.2)
            if r and not s.recv(4096):
                cut = time.monotonic() - t0
                break
        s.close()
        assert cut is not None and 0.5 < cut < 2.5, cut
        # Others are served as before.
        assert exchange(sock, b"GET / HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        shutil.rmtree(d, ignore_errors=True)
