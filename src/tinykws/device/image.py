"""Build the bare-metal Cortex-M4 image: start-up, mailbox harness and the compiled files,
linked with the toolchain (`tinykws.toolchain`).

The parts shared with the host are generated into the build folder from
`tinykws.device.layout` first: `<name>.ld` (the memory map in front of
`runtime/cortex_m4.ld`) and `tkws_mailbox.h` (the mailbox struct `runtime/harness.c`
includes).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional, Sequence

from tinykws.device import layout
from tinykws.device.errors import DeviceError
from tinykws.device.layout import linker_memory, mailbox_header_c
from tinykws.toolchain import GCC, Toolchain, ToolchainError, check_float_abi, find_toolchain

WARNINGS = ("-Wall", "-Wextra", "-Werror")  # the harness and its generated header are clean


def runtime_dir() -> Path:
    """Folder of the bare-metal start-up, harness and linker script shipped with tinykws."""
    return Path(str(resources.files("tinykws.device") / "runtime"))


def image_inputs() -> list[Path]:
    """What every image is built from besides the compiled files: the runtime sources and
    layout.py (an image older than any of them has a stale harness or memory map)."""
    return [*sorted(runtime_dir().iterdir()), Path(layout.__file__)]


def write_linker_script(out_dir: Path, name: str = "image") -> Path:
    """`out_dir/<name>.ld`: the memory map from layout.py, then runtime/cortex_m4.ld."""
    path = Path(out_dir) / f"{name}.ld"
    path.write_text(linker_memory() + (runtime_dir() / "cortex_m4.ld").read_text())
    return path


def write_mailbox_header(out_dir: Path) -> Path:
    """`out_dir/tkws_mailbox.h`: the mailbox struct from layout.py, for harness.c."""
    path = Path(out_dir) / "tkws_mailbox.h"
    path.write_text(mailbox_header_c())
    return path


def build_image(
    sources: Sequence[Path | str],
    out_dir: Path | str,
    float_abi: str,
    toolchain: Optional[Toolchain] = None,
    harness: bool = True,
    include_dirs: Iterable[Path | str] = (),
    name: str = "image",
    keep: Sequence[str] = (),
    autorun: bool = False,
) -> Path:
    """Link `sources` (.S/.s assembled, .c compiled, .o as is) with the start-up code.

    Writes `out_dir/<name>.elf`, the objects, the generated `<name>.ld` and
    `tkws_mailbox.h`, and with gcc also `<name>.map`.

    With `harness=True` the mailbox harness is linked too; the sources must then define the
    ELL entry points (`mfcc_Filter`, `mfcc_Reset`, `completemodel_Predict`,
    `completemodel_Reset`). `keep`: functions to keep although nothing calls them (tests).
    `autorun` (QEMU): the reset handler runs the harness once, then exits by semihosting.

    softfp: the harness, which plays the firmware, is compiled `-mfloat-abi=soft` (what
    softfp objects are for: a soft-float firmware calling them), the start-up softfp (it
    enables the FPU, as the firmware's SystemInit must).
    """
    check_float_abi(float_abi)
    tc = toolchain or find_toolchain()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = runtime_dir()
    # -fno-builtin keeps memcpy/memset's own loops from compiling into calls to themselves.
    no_builtin = ["-ffreestanding", "-fno-builtin"]
    if tc.name == GCC:
        no_builtin.append("-fno-tree-loop-distribute-patterns")
    if autorun:
        no_builtin.append("-DTKWS_AUTORUN")
    objs = [tc.compile_object(rt / "startup.c", out_dir / "startup.o", float_abi,
                              extra_flags=no_builtin)]  # fmt: skip
    if harness:
        firmware_abi = "soft" if float_abi == "softfp" else float_abi
        write_mailbox_header(out_dir)
        objs.append(tc.compile_object(rt / "harness.c", out_dir / "harness.o", firmware_abi,
                                      include_dirs=[out_dir], extra_flags=WARNINGS))  # fmt: skip
        keep = [*keep, "tkws_harness_run", "tkws_harness_run_q"]  # only the host calls them
    for src in map(Path, sources):
        obj = out_dir / f"{src.stem}.o"
        if src.suffix == ".o":
            objs.append(src)
        elif src.suffix in (".S", ".s"):
            objs.append(tc.assemble(src, obj, float_abi))
        else:
            objs.append(tc.compile_object(src, obj, float_abi, include_dirs=include_dirs))
    try:
        return tc.link(
            objs,
            write_linker_script(out_dir, name),
            out_dir / f"{name}.elf",
            float_abi,
            map_file=out_dir / f"{name}.map",
            keep=keep,
        )
    except ToolchainError as e:
        libm = r"undefined (symbol: |reference to `)(expf|logf|tanhf|sqrtf)"
        if re.search(libm, str(e)):
            raise DeviceError(
                "the compiled files call a libm function (compiled with --libm) that "
                f"{tc.name} does not provide for the emulated image (zig's compiler_rt has expf "
                "and logf, not tanhf): install gcc-arm-none-eabi and libnewlib-arm-none-eabi "
                "(newlib's libm), or compile without --libm"
            ) from None
        raise

