"""Configs kiln must refuse before any VM exists: exit status 2 and the field named. No KVM needed."""
import json

import pytest

from conftest import run_kiln, text


def write(tmp_path, obj):
    p = tmp_path / "vm.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"boot-source": {"kernel_image_path": "K"}, "machine-config": {"vcpus": 1}}, "machine-config.vcpus"),
        ({"boot-source": {"kernel_image_path": "K"}, "machine-config": {"vcpu_count": "two"}},
         "machine-config.vcpu_count"),
        ({"boot-source": {"kernel_image_path": "K"}, "machine-config": {"vcpu_count": 33}},
         "machine-config.vcpu_count"),
        ({"boot-source": {"kernel_image_path": "K", "bootargs": "x"}}, "boot-source.bootargs"),
        ({"boot-source": {"kernel_image_path": "K"}, "surprise": 1}, "surprise"),
        ({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}}, "boot-source.kernel_image_path"),
        ({"boot-source": {"kernel_image_path": "K", "initrd_path": "/nonexistent/initrd"}},
         "boot-source.initrd_path"),
        ({"boot-source": {"kernel_image_path": "K"}, "machine-config": {"mem_size_mib": 1048576}},
         "machine-config.mem_size_mib"),
    ],
)
def test_rejected_config_names_field(kiln, hello_elf, tmp_path, cfg, field):
    cfg = json.loads(json.dumps(cfg).replace('"K"', json.dumps(str(hello_elf))))
    r = run_kiln(["run", write(tmp_path, cfg)])
    assert r.returncode == 2, text(r.stderr)
    assert field in text(r.stderr)


def test_malformed_json(kiln, tmp_path):
    r = run_kiln(["run", write(tmp_path, '{"boot-source": {\n "kernel_image_path": }')])
    assert r.returncode == 2
    assert "line 2" in text(r.stderr)


def test_missing_config_file(kiln, tmp_path):
    r = run_kiln(["run", tmp_path / "absent.json"])
    assert r.returncode == 2
    assert "absent.json" in text(r.stderr)


def test_bad_flags(kiln, hello_elf):
    r = run_kiln(["run", "--kernel", hello_elf, "--cpus", "0"])
    assert r.returncode == 2
    assert "--cpus" in text(r.stderr)
    r = run_kiln(["run", "--kernel", hello_elf, "--memory", "lots"])
    assert r.returncode == 2
    assert "--memory" in text(r.stderr)
    r = run_kiln(["run"])
    assert r.returncode == 2
    assert "kernel_image_path" in text(r.stderr)
    r = run_kiln(["frobnicate"])
    assert r.returncode == 2


def test_two_names_of_one_drive(kiln, hello_elf, tmp_path):
    (tmp_path / "d1.img").write_bytes(b"\0" * 4096)
    r = run_kiln(["run", "--kernel", hello_elf, "--disk", "d1.img", "--disk", "./d1.img"], cwd=tmp_path)
    assert r.returncode == 2, text(r.stderr)
    assert 'the same file as drive "disk0"' in text(r.stderr)
    assert "locked" not in text(r.stderr)


@pytest.mark.parametrize("value", [" 2", "+2", "\t2", "\n2"])
def test_number_flags_refuse_what_strtoul_skips(kiln, hello_elf, tmp_path, value):
    r = run_kiln(["run", "--kernel", hello_elf, "--cpus", value])
    assert r.returncode == 2, text(r.stderr)
    assert "--cpus" in text(r.stderr)
    r = run_kiln(["run", "--kernel", hello_elf, "--memory", value.replace("2", "64")])
    assert r.returncode == 2, text(r.stderr)
    assert "--memory" in text(r.stderr)
    r = run_kiln(["run", "--kernel", hello_elf, "--net", "tap0,mtu=" + value.replace("2", "1500")])
    assert r.returncode == 2, text(r.stderr)
    assert "mtu" in text(r.stderr)
    r = run_kiln(["clone", "-n", value, tmp_path / "absent.snap", tmp_path / "absent.mem"])
    assert r.returncode == 2, text(r.stderr)
    assert "-n" in text(r.stderr)


def pvh_elf(path, entry, seg=0x100000):
    """A minimal x86-64 ELF: one PT_LOAD at `seg` (hlt; jmp back) and a PT_NOTE with Xen's PVH entry `entry`."""
    import struct
    code = b"\xf4\xeb\xfd".ljust(8, b"\0")
    name = b"Xen\0"
    note = struct.pack("<III", len(name), 4, 18) + name + struct.pack("<I", entry)  # XEN_ELFNOTE_PHYS32_ENTRY
    phoff, ehsize, phsize = 64, 64, 56
    code_off = ehsize + 2 * phsize
    note_off = code_off + len(code)
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, seg, phoff, 0, 0, ehsize, phsize, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, code_off, seg, seg, 3, 3, 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    path.write_bytes(ehdr + load + pnote + code + note)
    return path


@pytest.mark.parametrize("entry", [0x200000, 0x100003, 0xfffff])
def test_pvh_entry_outside_the_segments(kiln, kvm, tmp_path, entry):
    kernel = pvh_elf(tmp_path / "vmlinux", entry)
    r = run_kiln(["run", "--kernel", kernel, "--boot", "pvh", "--memory", "32"], timeout=60)
    assert r.returncode == 1, text(r.stderr)
    assert "PVH entry 0x%x is outside every loaded segment" % entry in text(r.stderr), text(r.stderr)
    assert "unemulated" not in text(r.stderr) and "triple fault" not in text(r.stderr)
