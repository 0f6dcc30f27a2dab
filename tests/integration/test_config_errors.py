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
