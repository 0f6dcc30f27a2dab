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

MIB = 1 << 20


def wait_for(predicate, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


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
