"""Cross-check of the instruction counts on QEMU's mps2-an386 board (a Cortex-M4): QEMU's
per-instruction exec trace counts every issued instruction, so its per-call counts must
equal the unicorn block counter's (`tinykws verify --qemu`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tinykws.device.emulator import CallCounts, InstructionCounter, read_symbols
from tinykws.device.errors import DeviceError
from tinykws.device.harness import HarnessShape, KWSDevice, mailbox_fields
from tinykws.device.image import build_image
from tinykws.device.layout import pack_mailbox
from tinykws.toolchain import Toolchain

QEMU_BLOCKS = {"hard": 6, "softfp": 6, "soft": 3}  # blocks run under QEMU's per-instruction trace


def qemu_binary() -> Optional[str]:
    """Path of qemu-system-arm, or None when it is not installed (the check is optional)."""
    import shutil

    return shutil.which("qemu-system-arm")


def qemu_count(
    elf: Path | str, shape: HarnessShape, audio: np.ndarray, timeout: float = 900
) -> CallCounts:
    """Exact instruction counts per call from QEMU's mps2-an386 (a Cortex-M4 board).

    `elf` must be built with `autorun=True`. QEMU runs one instruction per translation block
    (-singlestep) and logs every block it executes (-d exec,nochain), so each log line is one
    issued instruction, condition-failed IT-block instructions included. The audio and
    mailbox header are put into RAM by QEMU's generic loader before reset.
    """
    import subprocess
    import tempfile

    qemu = qemu_binary()
    if qemu is None:
        raise DeviceError(
            "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)"
        )
    syms = read_symbols(elf)
    x = np.asarray(audio, dtype="<f4")
    n_blocks = x.size // shape.block_len
    header = pack_mailbox(**mailbox_fields(shape, n_blocks, reset=True))
    mb, data = syms["tkws_mailbox"].addr, syms["tkws_mailbox_data"].addr
    fn = syms["tkws_harness_run"]
    counter = InstructionCounter(
        {syms[n].addr: n for n in KWSDevice.TRACKED}, (fn.addr, fn.addr + fn.size), b""
    )
    with tempfile.TemporaryDirectory(prefix="tinykws-qemu-") as tmp:
        blob = Path(tmp) / "mailbox.bin"
        samples = x[: n_blocks * shape.block_len].tobytes()
        blob.write_bytes(header + bytes(data - mb - len(header)) + samples)
        cmd = [
            qemu, "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
            "-serial", "none", "-semihosting-config", "enable=on,target=native",
            "-kernel", str(Path(elf).resolve()),
            "-device", f"loader,file={blob},addr={mb:#x},force-raw=on",
            "-singlestep", "-d", "exec,nochain",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        add = counter.add
        t0 = time.monotonic()
        for line in proc.stderr:  # "Trace 0: 0x... [cs_base/pc/flags/cflags] symbol"
            if line.startswith("Trace"):
                add(int(line.split("[", 1)[1].split("/", 2)[1], 16), 1)
            if time.monotonic() - t0 > timeout:
                proc.kill()
                raise DeviceError(f"QEMU did not finish within {timeout:.0f} s")
        if proc.wait() != 0:
            raise DeviceError(f"QEMU exited with status {proc.returncode}: {' '.join(cmd)}")
    return CallCounts(dict(counter.total), {k: list(v) for k, v in counter.calls.items()})


def qemu_cross_check(
    compiled_dir: Path | str,
    device: KWSDevice,
    audio: np.ndarray,
    float_abi: str,
    toolchain: Optional[Toolchain] = None,
) -> dict[str, Any]:
    """Count the first QEMU_BLOCKS blocks of `audio` with QEMU and with unicorn's block
    counter; both count every issued instruction, so the per-call counts must agree."""
    compiled_dir = Path(compiled_dir)
    n = QEMU_BLOCKS[float_abi] * device.shape.block_len
    elf = build_image(
        [compiled_dir / "featurizer.S", compiled_dir / "model.S"],
        compiled_dir / "build" / "qemu",
        float_abi,
        toolchain,
        autorun=True,
    )
    q = qemu_count(elf, device.shape, audio[:n])
    u = device.run_clip(np.asarray(audio[:n], dtype=np.float32), count=True).counts
    out: dict[str, Any] = {"blocks": QEMU_BLOCKS[float_abi], "qemu": {}, "unicorn": {}}
    for key, fn in (("featurizer", "mfcc_Filter"), ("model", "completemodel_Predict")):
        out["qemu"][key] = q.per_call.get(fn, [])
        out["unicorn"][key] = u.per_call.get(fn, []) if u else []
    out["agree"] = out["qemu"] == out["unicorn"]
    return out
