"""Path safety and hang-proofing (issue 12): nothing an API client or a user names can make kiln replace a
host file it should not, or hang it.

Every file, FIFO, socket and device node here is made in the test's own temporary directory (a device
node with mknod there), never the host's. The kernel is a copy of hello.elf, so a kiln that writes over
"the kernel" writes over the copy."""
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import KILN, api, text
from test_snapshot import wait_for

MIB = 1 << 20


def identity(path):
    """What a test checks is untouched: the type, inode and (for a regular file) the content."""
    st = os.lstat(path)
    content = None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            content = f.read()
    return stat.S_IFMT(st.st_mode), st.st_ino, content


@pytest.fixture
def tmp(kiln, kvm):
    if subprocess.run(["which", "curl"], capture_output=True).returncode:
        pytest.fail("curl is missing: run scripts/setup")
    d = tempfile.mkdtemp(prefix="kiln-paths-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class VM:
    """A paused hello VM with a writable disk, its kernel a copy in `d`, serving `sock`."""

    def __init__(self, d, hello_elf):
        self.d = d
        self.kernel = os.path.join(d, "kernel.elf")
        shutil.copyfile(hello_elf, self.kernel)
        self.disk = os.path.join(d, "disk.img")
        with open(self.disk, "wb") as f:
            f.write(b"disk marker")
            f.truncate(MIB)
        self.sock = os.path.join(d, "vm.sock")
        self.console = os.path.join(d, "vm.console")
        self.proc = subprocess.Popen([str(KILN), "run", "--kernel", self.kernel, "--memory", "32", "--cmdline",
                                      "count", "--api-sock", self.sock, "--console", self.console, "--disk",
                                      self.disk], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(self.sock), 10, "the API socket")
        assert api(self.sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204

    def snapshot(self, state, mem):
        return api(self.sock, "PUT", "/snapshot/create", {"snapshot_path": state, "mem_file_path": mem})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
            print(text(err))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def vm(tmp, hello_elf):
    v = VM(tmp, hello_elf)
    yield v
    v.stop()


def make_target(vm, kind):
    """A path of `kind` in the VM's directory (or one of the VM's own files)."""
    d = vm.d
    if kind == "disk":
        return vm.disk
    if kind == "kernel":
        return vm.kernel
    if kind == "console":
        return vm.console
    if kind == "api socket":
        return vm.sock
    path = os.path.join(d, kind.replace(" ", "_"))
    if kind == "char device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    elif kind == "other file":
        with open(path, "wb") as f:
            f.write(b"precious data, not a snapshot")
    elif kind == "symlink":
        with open(path + ".target", "wb") as f:
            f.write(b"precious data, not a snapshot")
        os.symlink(path + ".target", path)
    return path


TARGETS = ["directory", "disk", "kernel", "console", "api socket", "char device", "fifo", "socket", "other file",
           "symlink"]


@pytest.mark.parametrize("which", ["snapshot_path", "mem_file_path"])
@pytest.mark.parametrize("kind", TARGETS)
def test_snapshot_refuses_a_target_it_may_not_replace(vm, kind, which):
    target = make_target(vm, kind)
    before = identity(target)
    other = os.path.join(vm.d, "other.snap" if which == "mem_file_path" else "other.mem")
    state, mem = (target, other) if which == "snapshot_path" else (other, target)
    code, body = vm.snapshot(state, mem)
    assert code == 400, f"{kind} as {which}: {code} {body}"
    assert target in body, body
    assert identity(target) == before, f"{kind} as {which} was changed"
    # The VM is still there and still paused.
    code, body = api(vm.sock, "GET", "/vm/config")
    assert code == 200, body


def test_snapshot_refuses_two_names_of_one_new_file(vm):
    sub = os.path.join(vm.d, "dir")
    os.mkdir(sub)
    code, body = vm.snapshot(os.path.join(sub, ".", "d.snap"), os.path.join(sub, "d.snap"))
    assert code == 400, body
    assert "two files" in body, body
    assert os.listdir(sub) == []


def test_snapshot_replaces_a_snapshot_kiln_wrote(vm):
    state, mem = os.path.join(vm.d, "s.snap"), os.path.join(vm.d, "s.mem")
    assert vm.snapshot(state, mem)[0] == 204
    first = os.stat(state).st_ino, os.stat(mem).st_ino
    code, body = vm.snapshot(state, mem)
    assert code == 204, body
    assert (os.stat(state).st_ino, os.stat(mem).st_ino) != first


def test_snapshot_does_not_swap_state_and_memory_files(vm):
    state, mem = os.path.join(vm.d, "s.snap"), os.path.join(vm.d, "s.mem")
    assert vm.snapshot(state, mem)[0] == 204
    before = identity(state), identity(mem)
    code, body = vm.snapshot(mem, state)
    assert code == 400, body
    assert (identity(state), identity(mem)) == before


def test_clone_refuses_to_write_over_the_kernel(vm):
    """PUT /vm/clone writes <api_socket>.snap and <api_socket>.mem: here .mem is the VM's kernel."""
    prefix = os.path.join(vm.d, "victim")
    os.rename(vm.kernel, prefix + ".mem")  # the kernel this VM booted, under the name the clone would use
    before = identity(prefix + ".mem")
    code, body = api(vm.sock, "PUT", "/vm/clone", {"clone_id": "c1", "api_socket": prefix,
                                                 "disk_copies": ["disk0"]})
    assert code == 400, body
    assert prefix + ".mem" in body, body
    assert identity(prefix + ".mem") == before


# ---- defect 3: a FIFO named where kiln reads a file must be refused at once, never block kiln ----

def run_quick(args, timeout=10):
    """kiln ARGS, which must end by itself within `timeout` s: (exit status, stderr). A hang fails the test."""
    p = subprocess.Popen([str(KILN)] + [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=5)
            why = "hung (ended on SIGTERM)"
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            why = "hung, and SIGTERM did not stop it"
        pytest.fail(f"kiln {' '.join(map(str, args))}: {why}")
    return p.returncode, text(err)


def fifo(d, name):
    path = os.path.join(d, name)
    os.mkfifo(path, 0o600)
    return path


def snapshot_files(d, hello_elf):
    """A real snapshot of a paused hello VM: (state, mem)."""
    v = VM(d, hello_elf)
    state, mem = os.path.join(d, "s.snap"), os.path.join(d, "s.mem")
    try:
        code, body = v.snapshot(state, mem)
        assert code == 204, body
    finally:
        v.stop()
    return state, mem


@pytest.mark.parametrize("kind", ["config file", "kernel", "console", "disk", "state file", "memory file"])
def test_a_fifo_is_refused_at_once(tmp, hello_elf, kind):
    f = fifo(tmp, "f")
    if kind in ("state file", "memory file"):
        state, mem = snapshot_files(tmp, hello_elf)
        args = ["run", "--restore", f if kind == "state file" else state, "--mem", f if kind == "memory file" else mem,
                "--console", os.path.join(tmp, "restored.console")]
    else:
        kernel = os.path.join(tmp, "kernel.elf")
        shutil.copyfile(hello_elf, kernel)
        args = {"config file": ["run", "--config", f],
                "kernel": ["run", "--kernel", f],
                "console": ["run", "--kernel", kernel, "--console", f],
                "disk": ["run", "--kernel", kernel, "--console", os.path.join(tmp, "c"), "--disk", f]}[kind]
    status, err = run_quick(args)
    assert status != 0, err
    assert f in err, err


@pytest.mark.parametrize("which", ["snapshot_path", "backend_path"])
def test_snapshot_load_of_a_fifo_answers_and_sigterm_stops_kiln(tmp, hello_elf, which):
    state, mem = snapshot_files(tmp, hello_elf)
    f = fifo(tmp, "f")
    sock = os.path.join(tmp, "waiting.sock")
    p = subprocess.Popen([str(KILN), "run", "--api-sock", sock, "--console", os.path.join(tmp, "w.console")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(sock), 10, "the API socket")
        body = {"snapshot_path": f if which == "snapshot_path" else state,
                "mem_backend": {"backend_type": "File", "backend_path": f if which == "backend_path" else mem}}
        try:
            code, answer = api(sock, "PUT", "/snapshot/load", body, timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("PUT /snapshot/load of a FIFO did not answer")
        assert code == 400, answer
        assert f in answer, answer
        assert api(sock, "GET", "/", timeout=10)[0] == 200
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail("kiln ignored SIGTERM")


# ---- defect 2: the console file ----

def kernel_copy(d, hello_elf):
    kernel = os.path.join(d, "kernel.elf")
    shutil.copyfile(hello_elf, kernel)
    return kernel


@pytest.mark.parametrize("kind", ["kernel", "disk"])
def test_console_may_not_be_a_file_the_vm_uses(tmp, hello_elf, kind):
    kernel = kernel_copy(tmp, hello_elf)
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.write(b"disk marker")
        f.truncate(MIB)
    victim = kernel if kind == "kernel" else disk
    before = identity(victim)
    status, err = run_quick(["run", "--kernel", kernel, "--cmdline", "count", "--disk", disk, "--console", victim])
    assert status != 0, err
    assert victim in err, err
    assert identity(victim) == before


def test_restore_with_the_state_file_as_console_keeps_it(tmp, hello_elf):
    state, mem = snapshot_files(tmp, hello_elf)
    before = identity(state)
    status, err = run_quick(["run", "--restore", state, "--mem", mem, "--console", state])
    assert status != 0, err
    assert state in err, err
    assert identity(state) == before


def test_console_symlink_is_refused(tmp, hello_elf):
    kernel = kernel_copy(tmp, hello_elf)
    precious = os.path.join(tmp, "precious")
    with open(precious, "wb") as f:
        f.write(b"root-only data")
    link = os.path.join(tmp, "console.link")
    os.symlink(precious, link)
    status, err = run_quick(["run", "--kernel", kernel, "--cmdline", "count", "--console", link])
    assert status != 0, err
    assert link in err and "symlink" in err, err
    assert identity(precious)[2] == b"root-only data"


def test_console_file_is_created_0600(tmp, hello_elf):
    kernel = kernel_copy(tmp, hello_elf)
    console = os.path.join(tmp, "c")
    run_quick(["run", "--kernel", kernel, "--console", console])
    assert stat.S_IMODE(os.stat(console).st_mode) == 0o600


def console_flood(tmp, hello_elf, args):
    """A counting VM with its console capped: stopped after its output passed the cap; (console, stderr)."""
    kernel = kernel_copy(tmp, hello_elf)
    console = os.path.join(tmp, "capped.console")
    p = subprocess.Popen([str(KILN), "run", "--kernel", kernel, "--cmdline", "count", "--console", console] + args,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("kiln ignored SIGTERM")
    return console, text(err)


def test_console_size_cap_flag(tmp, hello_elf):
    console, err = console_flood(tmp, hello_elf, ["--console-max-bytes", "64"])
    assert os.path.getsize(console) <= 64, err
    assert "console" in err and "dropped" in err, err


def test_console_size_cap_config_field(tmp, hello_elf):
    cfg = os.path.join(tmp, "vm.json")
    with open(cfg, "w") as f:
        f.write('{"kiln": {"console_max_bytes": 64}}')
    console, err = console_flood(tmp, hello_elf, ["--config", cfg])
    assert os.path.getsize(console) <= 64, err
    assert "dropped" in err, err


def test_console_fifo_with_a_reader_gets_the_output(tmp, hello_elf):
    """A FIFO stays allowed as the console (Firecracker's serial output): non-blocking, read as it comes."""
    kernel = kernel_copy(tmp, hello_elf)
    f = fifo(tmp, "console.fifo")
    r = os.open(f, os.O_RDONLY | os.O_NONBLOCK)
    p = subprocess.Popen([str(KILN), "run", "--kernel", kernel, "--cmdline", "count", "--console", f],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    try:
        end = time.monotonic() + 10
        while b"count" not in got and time.monotonic() < end:
            try:
                got += os.read(r, 4096)
            except BlockingIOError:
                time.sleep(0.05)
    finally:
        p.terminate()
        p.communicate(timeout=10)
        os.close(r)
    assert b"count" in got
