"""virtio-rng over the virtio 1.2 PCI transport, end to end: one boot of the test kernel with Firecracker's
`"entropy": {}`, checking that Linux's virtio-pci binds the device, that /dev/hwrng gives random bytes with
MSI-X interrupts arriving, and that the device survives a driver unbind/bind (a virtio reset and a second
initialisation). One boot: on PVM hosts each costs minutes."""
import json
import re

import pytest

from conftest import LINUX, run_kiln, text

# One command line, many checks, each a tagged line. kiln.cmd cannot hold double quotes.
CHECKS = (
    "d=$(ls /sys/bus/pci/drivers/virtio-pci | grep 0000); "
    "echo dev: $d; "
    "echo ids: $(cat /sys/bus/pci/devices/$d/vendor /sys/bus/pci/devices/$d/device); "
    "echo rng: $(cat /sys/class/misc/hw_random/rng_available); "
    "echo bytes: $(head -c 64 /dev/hwrng | od -An -v -tx1); "
    "echo irq: $(grep virtio /proc/interrupts); "
    "echo $d > /sys/bus/pci/drivers/virtio-pci/unbind; "
    "echo $d > /sys/bus/pci/drivers/virtio-pci/bind; "
    "echo again: $(head -c 32 /dev/hwrng | od -An -v -tx1)"
)


def hex_bytes(out, tag):
    m = re.search(rf"^{tag}: ((?:[0-9a-f]{{2}}\s*)+)$", out, re.M)
    assert m, out[-3000:]
    return bytes.fromhex("".join(m.group(1).split()))


@pytest.fixture(scope="module")
def rng_boot(kiln, kvm, tmp_path_factory):
    kernel, initrd = LINUX / "vmlinux-test", LINUX / "initramfs.cpio"
    if not kernel.exists() or not initrd.exists():
        pytest.fail(f"{kernel} or {initrd} missing: run `make linux-guest`")
    config = tmp_path_factory.mktemp("rng") / "vm.json"
    config.write_text(json.dumps({"entropy": {}}))
    cmdline = f'console=ttyS0 panic=-1 kiln.cmd="{CHECKS}"'
    r = run_kiln(
        ["run", "--config", config, "--kernel", kernel, "--initrd", initrd, "--memory", 128,
         "--cmdline", cmdline],
        timeout=1200,
    )
    # The serial console ends lines with \r\n.
    return r, text(r.stdout).replace("\r\n", "\n"), text(r.stderr)


def test_guest_ran_the_checks(rng_boot):
    r, out, err = rng_boot
    assert r.returncode == 0, err[-3000:]
    assert "KILN-INIT: exit 0" in out, out[-3000:] + err[-3000:]
    # Nothing the guest did made kiln complain (NEEDS_RESET, refused ioeventfds...).
    assert "virtio" not in err, err[-3000:]


def test_linux_binds_virtio_pci(rng_boot):
    _, out, _ = rng_boot
    assert re.search(r"^ids: 0x1af4 0x1044$", out, re.M), out[-3000:]
    assert re.search(r"^rng: virtio_rng\.\d+", out, re.M), out[-3000:]


def test_hwrng_gives_random_bytes(rng_boot):
    _, out, _ = rng_boot
    first = hex_bytes(out, "bytes")
    assert len(first) == 64
    assert len(set(first)) > 16, first.hex()  # 64 random bytes have many distinct values


def test_msix_interrupts_arrive(rng_boot):
    _, out, _ = rng_boot
    m = re.search(r"^irq: (.*)$", out, re.M)
    assert m, out[-3000:]
    # " 25: 69 PCI-MSI 16385-edge virtio0-input": the queue's own vector fired.
    counts = re.findall(r"\d+: (\d+) PCI-MSI \S+ virtio\d+-(\w+)", m.group(1))
    assert any(name != "config" and int(n) > 0 for n, name in counts), m.group(1)


def test_works_after_reset_and_reinit(rng_boot):
    _, out, _ = rng_boot
    again = hex_bytes(out, "again")
    assert len(again) == 32
    assert again != hex_bytes(out, "bytes")[:32]
