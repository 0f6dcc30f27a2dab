"""Debian's stock kernel (build/linux/vmlinuz-debian, `make linux-guest`) booted with the test initramfs
to its first user-space line ("KILN-INIT: start", printed by /init), and to the kernel's first line.
Only with --with-debian: on an idle PVM host the boot takes about 21 minutes. The kernel's first serial
line appears when its 8250 console registers (it then replays the log from "Linux version"), not at entry.

kiln boots the bzImage as it always does (64-bit entry, payload decompressed by kiln, PVM command-line
options added). QEMU gets the payload as an ELF vmlinux (entered through its PVH note; QEMU's own path
through the bzImage decompressor takes over ten minutes on PVM) and the same command line kiln used,
PVM options included. On PVM hosts QEMU stops with "KVM internal error" at the first instruction the host
refuses to emulate (kiln emulates those itself): the run records where, and QEMU is not retried."""
import lzma
import os
import re
import struct
import tempfile
import zlib

from common import ROOT, BenchError, Figure, run_vm, tail

NAME = "debian_boot"
TITLE = "Debian kernel boot (stock 6.1, PVM options)"
FIGURES = [
    Figure("first_kernel_line_s", "debian: exec to kernel's first serial line", "s"),
    Figure("first_user_line_s", "debian: exec to first userspace line", "s"),
]
STOP_AFTER_FAILURE = True
USER_MARKER = b"KILN-INIT: start"
KERNEL_MARKER = b"Linux version"
BASE_CMDLINE = "console=ttyS0 panic=-1 kiln.cmd=true"
MEM_MIB = 512


def paths(ctx):
    kernel = ctx.args.debian_kernel or os.path.join(ROOT, "build/linux/vmlinuz-debian")
    initrd = ctx.args.debian_initrd
    if not initrd:
        # The uncompressed initramfs: inflating a gzip one costs minutes where kernel code is emulated.
        initrd = os.path.join(ROOT, "build/linux/initramfs.cpio")
        if not os.path.exists(initrd):
            initrd = initrd + ".gz"
    return kernel, initrd


def skip(ctx):
    if not ctx.args.with_debian:
        return "not run: add --with-debian (about 20 minutes on a PVM host)"
    for p in paths(ctx):
        if not os.path.exists(p):
            return f"not run: {p} is missing (make linux-guest)"
    return None


def skip_note(vmm, ctx):
    """What the table says for a VMM when the benchmark is skipped."""
    if vmm.name == "qemu" and ctx.host.get("pvm"):
        return ("cannot boot Debian's kernel on PVM hosts: KVM internal error at the first instruction the "
                "host refuses to emulate (with kiln's PVM options, the int3 of Linux's alternatives self-test; "
                "without them, lock cmpxchg16b); --with-debian checks it again")
    return skip(ctx)


def runs(ctx):
    return ctx.args.debian_runs


def extract_vmlinux(bzimage, out_path):
    """Write the ELF vmlinux inside a bzImage (boot protocol >= 2.08: payload_offset/payload_length)."""
    with open(bzimage, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        raise BenchError(f"{bzimage}: not a bzImage")
    setup_sects = data[0x1f1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[(setup_sects + 1) * 512 + offset:][:length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    else:
        raise BenchError(f"{bzimage}: payload compression {payload[:4].hex()} not handled (xz and gzip are)")
    if not elf.startswith(b"\x7fELF"):
        raise BenchError(f"{bzimage}: the payload is not an ELF file")
    with open(out_path, "wb") as f:
        f.write(elf)


def kiln_cmdline(ctx, kernel, initrd):
    """The command line kiln gives the kernel on this host (its PVM options appended), from --verbose."""
    kiln = next(v for v in ctx.vmms if v.name == "kiln")
    cmd = kiln.command(kernel, BASE_CMDLINE, MEM_MIB, initrd, boot="linux64") + ["--verbose"]
    o = run_vm(cmd, 120, on_stderr=lambda proc, err: re.search(rb"kernel command line: [^\n]*\n", err))
    m = re.search(r"kernel command line: (.*)", o.stderr.decode(errors="replace"))
    return m.group(1).strip() if m else BASE_CMDLINE


# Instructions PVM hosts refuse to emulate in guest kernel mode (PVM-HOST.md), by their first bytes.
REFUSED = [("f0 48 0f c7", "lock cmpxchg16b"), ("0f 01 ca", "clac"), ("0f 01 cb", "stac"), ("f3 0f b8", "popcnt"),
           ("f3 48 0f b8", "popcnt"), ("cc", "int3"), ("9b", "fwait")]


def internal_error(stderr):
    """A one-line summary of QEMU's "KVM internal error" report, or None."""
    text = stderr.decode(errors="replace")
    if "KVM internal error" not in text:
        return None
    head = re.search(r"KVM internal error\. Suberror: (\d+)", text)
    rip = re.search(r"RIP=([0-9a-f]+)", text)
    code = re.search(r"Code=.*?<([0-9a-f]{2})>((?: [0-9a-f]{2}){0,3})", text)
    parts = [f"KVM internal error, suberror {head.group(1) if head else '?'}"]
    if rip:
        parts.append(f"RIP {rip.group(1)}")
    if code:
        insn = (code.group(1) + code.group(2)).strip()
        name = next((n for prefix, n in REFUSED if insn.startswith(prefix)), None)
        parts.append(f"instruction bytes {insn}" + (f" ({name})" if name else ""))
    return "; ".join(parts)


def run_once(vmm, ctx):
    kernel, initrd = paths(ctx)
    timeout = ctx.args.debian_timeout
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        if vmm.name == "kiln":
            cmd = vmm.command(kernel, BASE_CMDLINE, MEM_MIB, initrd, boot="linux64")
        else:
            vmlinux = os.path.join(tmp, "vmlinux")
            extract_vmlinux(kernel, vmlinux)
            cmd = vmm.command(vmlinux, kiln_cmdline(ctx, kernel, initrd), MEM_MIB, initrd)
        # QEMU does not exit on a KVM internal error: it pauses the VM. Its register dump ends with "Code=".
        o = run_vm(cmd, timeout, lambda proc, cap: USER_MARKER in cap.data,
                   on_stderr=lambda proc, err: b"KVM internal error" in err and re.search(rb"\nCode=[^\n]*\n", err))
    user = o.stdout.find(USER_MARKER)
    if not user:
        why = internal_error(o.stderr)
        if why:
            raise BenchError(f"cannot boot it here: {why}")
        raise BenchError(f"exited with status {o.returncode} before user space; stderr: {tail(o.stderr, 300)!r}; "
                         f"serial: {tail(o.stdout.text(), 300)!r}")
    first = o.stdout.find(KERNEL_MARKER)
    return {
        "first_kernel_line_s": (first[1] - o.t_start) if first else None,
        "first_user_line_s": user[1] - o.t_start,
    }
