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
