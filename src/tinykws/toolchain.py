"""Find and drive a Cortex-M4 cross-compiler: `arm-none-eabi-gcc` or the `ziglang` wheel's clang.

Firmware engineers use arm-none-eabi-gcc, so it wins when it is on PATH. Without it (a fresh
machine, no root) tinykws uses the clang inside the `ziglang` pip wheel, which cross-compiles,
assembles and links freestanding Thumb-2 code on its own.

Three float ABIs of the Cortex-M4 are supported:
- ``hard``: FPv4-SP single-precision FPU, floats passed in s-registers (STM BlueCoin);
- ``softfp``: the same FPU instructions inside functions, but the soft-float calling
  convention (floats passed in core registers), so the objects link with firmware built
  ``-mfloat-abi=soft`` while running at hard-float speed (MXChip AZ3166: its STM32F412 is a
  Cortex-M4F, its SDK builds soft-float). The firmware must enable the FPU (CPACR);
- ``soft``: no FPU, float maths via the EABI helpers ``__aeabi_fadd`` etc. (cores without
  an FPU), which the link step takes from libgcc (gcc) or compiler-rt (zig).

Only single precision is in hardware; a stray double costs a software call on both ABIs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tinykws.errors import TinyKWSError
from tinykws.run import atomic_write_text

FLOAT_ABIS = ("hard", "soft", "softfp")
GCC = "arm-none-eabi-gcc"
ZIG = "zig"

# Flags for every compile: code and data in their own sections (so links can drop what is
# unused), no unwind tables (bare metal), sqrtf may become one `vsqrt.f32`.
COMMON_CFLAGS = (
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-common",
    "-fno-math-errno",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
)

TARGET_FLAGS = {
    (GCC, "hard"): ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    (GCC, "soft"): ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"),
    (GCC, "softfp"): ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=softfp"),
    (ZIG, "hard"): ("-target", "thumb-freestanding-eabihf", "-mcpu=cortex_m4+vfp4d16sp"),
    (ZIG, "soft"): ("-target", "thumb-freestanding-eabi", "-mcpu=cortex_m4", "-mfloat-abi=soft"),
    (ZIG, "softfp"): ("-target", "thumb-freestanding-eabi", "-mcpu=cortex_m4+vfp4d16sp",
                      "-mfloat-abi=softfp"),
}

# zig's clang: no debug info in the .S (zig cc adds -g by default), no UBSan traps, no
# `.addrsig` directives (a linker hint that GNU as rejects: the .S must assemble with
# arm-none-eabi-gcc too).
ZIG_EXTRA = ("-g0", "-fno-sanitize=all", "-fno-addrsig")


class ToolchainError(TinyKWSError):
    """No cross-compiler, or a compile/assemble/link step failed."""


def check_float_abi(float_abi: str) -> str:
    """Return `float_abi` if it is 'hard', 'soft' or 'softfp', else raise a clear error."""
    if float_abi not in FLOAT_ABIS:
        raise ToolchainError(f"float ABI must be one of {FLOAT_ABIS}, got {float_abi!r}")
    return float_abi


@dataclass(frozen=True)
class Toolchain:
    """One cross-compiler driver; every method runs it as a subprocess.

    `driver` is the command prefix: ("arm-none-eabi-gcc",) or (python, "-m", "ziglang", "cc").
    """

    name: str  # GCC or ZIG
    driver: tuple[str, ...]

    # ------------------------------------------------------------------ description
    @property
    def version(self) -> str:
        """Compiler and version, e.g. 'arm-none-eabi-gcc 12.2.1', 'zig 0.17.1 (clang 22.1.8)'."""
        return _version(self.name, self.driver)

    def target_flags(self, float_abi: str) -> list[str]:
        """Flags that select the Cortex-M4 and the float ABI."""
        flags = list(TARGET_FLAGS[(self.name, check_float_abi(float_abi))])
        if self.name == ZIG:
            flags += ZIG_EXTRA
        return flags

    def cflags(
        self,
        float_abi: str,
        include_dirs: Iterable[Path | str] = (),
        defines: Iterable[str] = (),
        opt: str = "-O2",
    ) -> list[str]:
        """All flags of a C compile (target, optimisation, common flags, -I, -D)."""
        flags = self.target_flags(float_abi) + [opt, *COMMON_CFLAGS]
        flags += [f"-I{Path(d).resolve()}" for d in include_dirs]
        flags += [d if d.startswith("-D") else f"-D{d}" for d in defines]
        return flags

    # ------------------------------------------------------------------ steps
    def compile_to_asm(
        self,
        c_files: Sequence[Path | str] | Path | str,
        out_S: Path | str,
        float_abi: str,
        include_dirs: Iterable[Path | str] = (),
        defines: Iterable[str] = (),
        opt: str = "-O2",
    ) -> Path:
        """Compile C sources into ONE assembly file `out_S` for the Cortex-M4.

        Several files are compiled as one translation unit (a generated file that #includes
        each of them), so their static names must not collide; the compiler can then inline
        the runtime's helpers into the generated glue. A comment header records the compiler
        and flags.
        """
        if isinstance(c_files, (str, Path)):
            c_files = [c_files]
        c_files = [Path(c) for c in c_files]
        if not c_files:
            raise ToolchainError("compile_to_asm: no C files given")
        for c in c_files:
            if not c.is_file():
                raise ToolchainError(f"C source not found: {c}")
        out_S = Path(out_S)
        out_S.parent.mkdir(parents=True, exist_ok=True)
        flags = self.cflags(float_abi, include_dirs, defines, opt)
        with tempfile.TemporaryDirectory(prefix="tinykws-cc-") as tmp:
            # A relative source name keeps temporary paths out of the .S (`.file` directive).
            unity = Path(tmp) / f"{out_S.stem}.c"
            unity.write_text("".join(f'#include "{c.resolve()}"\n' for c in c_files))
            tmp_S = Path(tmp) / f"{out_S.stem}.S"
            self._run([*flags, "-S", unity.name, "-o", tmp_S.name], cwd=tmp)
            asm = tmp_S.read_text()
        names = ", ".join(c.name for c in c_files)
        header = (
            f"@ Generated by tinykws from {names} for Cortex-M4, float ABI {float_abi}.\n"
            f"@ Compiler: {self.version}\n"
            f"@ Flags: {' '.join(f for f in flags if not f.startswith('-I'))}\n"
        )

        atomic_write_text(out_S, header + asm)  # a kill mid-write never leaves a torn .S
        return out_S

    def compile_object(
        self,
        source: Path | str,
        out_o: Path | str,
        float_abi: str,
        include_dirs: Iterable[Path | str] = (),
        defines: Iterable[str] = (),
        opt: str = "-O2",
        extra_flags: Sequence[str] = (),
    ) -> Path:
        """Compile one C (or assembly) file into an object file for the Cortex-M4.

        `extra_flags` go after the standard ones (e.g. warnings: -Wall -Wextra -Werror).
        """
        source, out_o = Path(source), Path(out_o)
        if not source.is_file():
            raise ToolchainError(f"source not found: {source}")
        out_o.parent.mkdir(parents=True, exist_ok=True)
        flags = self.cflags(float_abi, include_dirs, defines, opt) + list(extra_flags)
        self._run([*flags, "-c", str(source.resolve()), "-o", str(out_o.resolve())])
        return out_o

    def assemble(self, S: Path | str, obj: Path | str, float_abi: str) -> Path:
        """Assemble a `.S` file (ours or a firmware project's) into an object file."""
        S, obj = Path(S), Path(obj)
        if not S.is_file():
            raise ToolchainError(f"assembly file not found: {S}")
        obj.parent.mkdir(parents=True, exist_ok=True)
        self._run([*self.target_flags(float_abi), "-c", str(S.resolve()), "-o", str(obj.resolve())])
        return obj

    def link(
        self,
        objs: Sequence[Path | str],
        linker_script: Path | str,
        out_elf: Path | str,
        float_abi: str,
        entry: str = "Reset_Handler",
        map_file: Path | str | None = None,
        keep: Sequence[str] = (),
    ) -> Path:
        """Link a bare-metal ELF: no C library, no start files, unused sections dropped.

        The soft-float helpers (`__aeabi_f*`) come from libgcc (gcc picks the thumb/v7e-m
        multilib from the target flags) or from zig's compiler-rt, which zig builds for the
        target on first use (a few seconds, then cached). `keep` names symbols to keep even
        when nothing references them (they would be dropped by --gc-sections). `map_file` is
        written by gcc only.
        """
        out_elf = Path(out_elf)
        out_elf.parent.mkdir(parents=True, exist_ok=True)
        args = [*self.target_flags(float_abi), "-O2", "-nostartfiles", "-Wl,--gc-sections"]
        args += [f"-Wl,-e,{entry}", "-T", str(Path(linker_script).resolve())]
        args += [f"-Wl,-u,{name}" for name in keep]
        if map_file is not None and self.name == GCC:  # zig's linker driver has no -Map
            args.append(f"-Wl,-Map={Path(map_file).resolve()}")
        if self.name == GCC:  # newlib's libm/libc (if installed) only for what objects use
            libs = ["-lm", "-lc"] if self._has_newlib(float_abi) else []
            args += ["-nostdlib", *[str(Path(o).resolve()) for o in objs], *libs, "-lgcc"]
        else:  # zig links compiler-rt unless -nostdlib is given
            args += [str(Path(o).resolve()) for o in objs]
        self._run([*args, "-o", str(out_elf.resolve())])
        return out_elf

    def size(self, elf: Path | str) -> dict[str, int]:
        """Bytes per kind of section of an ELF (object or image): text, rodata, data, bss."""
        return elf_section_sizes(elf)

    # ------------------------------------------------------------------ plumbing
    def _has_newlib(self, float_abi: str) -> bool:
        """Whether newlib (libnewlib-arm-none-eabi) is installed for this multilib."""
        return _gcc_finds(self.driver, tuple(self.target_flags(float_abi)), "libm.a")

    def _run(self, args: list[str], cwd: str | Path | None = None) -> None:
        cmd = [*self.driver, *args]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        stderr = _clean_stderr(proc.stderr)
        if proc.returncode != 0:
            shown = " ".join(cmd)
            raise ToolchainError(
                f"{self.name} failed (exit {proc.returncode}): {shown}\n{stderr.strip()[-4000:]}"
            )


def _clean_stderr(stderr: str) -> str:
    """Drop zig's harmless note that it passes `-c` to clang itself."""
    return "\n".join(
        line
        for line in stderr.splitlines()
        if "argument unused during compilation: '-c'" not in line
    )


@functools.lru_cache(maxsize=None)
def _gcc_finds(driver: tuple[str, ...], flags: tuple[str, ...], name: str) -> bool:
    """gcc's -print-file-name answers the bare name when it cannot find the file."""
    cmd = [*driver, *flags, f"-print-file-name={name}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() not in ("", name)


@functools.lru_cache(maxsize=None)
def _version(name: str, driver: tuple[str, ...]) -> str:
    if name == GCC:
        out = subprocess.run([*driver, "-dumpfullversion"], capture_output=True, text=True)
        return f"{GCC} {out.stdout.strip()}"
    zig = subprocess.run(
        [sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True
    )
    clang = subprocess.run([*driver, "--version"], capture_output=True, text=True)
    clang_line = clang.stdout.splitlines()[0].replace(" version", "") if clang.stdout else "clang"
    return f"zig {zig.stdout.strip()} ({clang_line})"


def _gcc() -> Toolchain | None:
    path = shutil.which(GCC)
    return Toolchain(GCC, (path,)) if path else None


def _zig() -> Toolchain | None:
    if importlib.util.find_spec("ziglang") is None:
        return None
    return Toolchain(ZIG, (sys.executable, "-m", "ziglang", "cc"))


def available_toolchains() -> list[Toolchain]:
    """Every toolchain usable on this machine, preferred first."""
    return [t for t in (_gcc(), _zig()) if t is not None]


def find_toolchain(prefer: str | None = None) -> Toolchain:
    """The cross-compiler to use: `prefer` ('gcc' or 'zig'; default $TINYKWS_TOOLCHAIN), else
    arm-none-eabi-gcc when on PATH, else the ziglang wheel's clang.
    """
    prefer = prefer or os.environ.get("TINYKWS_TOOLCHAIN") or None
    if prefer is not None:
        key = prefer.lower()
        if key in ("gcc", GCC):
            found = _gcc()
            hint = "install it (Debian: apt-get install gcc-arm-none-eabi)"
        elif key in ("zig", "ziglang", "clang"):
            found = _zig()
            hint = "pip install 'tinykws[device]' (the ziglang wheel)"
        else:
            raise ToolchainError(f"unknown toolchain {prefer!r}: use 'gcc' or 'zig'")
        if found is None:
            raise ToolchainError(f"toolchain {prefer!r} was requested but is not available: {hint}")
        return found
    for t in available_toolchains():
        return t
    raise ToolchainError(
        "no Cortex-M4 cross-compiler found: pip install 'tinykws[device]' (ziglang wheel, no "
        "root needed) or install arm-none-eabi-gcc (Debian: apt-get install gcc-arm-none-eabi)"
    )


# ---------------------------------------------------------------------- ELF sizes

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4


def elf_section_sizes(elf: Path | str) -> dict[str, int]:
    """Sum the allocated sections of an ELF by kind (bytes).

    text = executable; rodata = read-only data; data = initialised writable; bss = zeroed
    writable (NOBITS). Unlike binutils `size`, rodata is kept apart from text. Flash holds
    text + rodata + the initial values of data; RAM holds data + bss (+ stack).
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    try:
        with open(elf, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                flags = sec["sh_flags"]
                if not flags & SHF_ALLOC or sec["sh_size"] == 0:
                    continue
                if sec["sh_type"] == "SHT_NOBITS":
                    kind = "bss"
                elif flags & SHF_EXECINSTR:
                    kind = "text"
                elif flags & SHF_WRITE:
                    kind = "data"
                else:
                    kind = "rodata"
                sizes[kind] += sec["sh_size"]
    except (OSError, ELFError) as e:
        raise ToolchainError(f"cannot read ELF {elf}: {e}") from e
    return sizes


# ---------------------------------------------------------------------- assembly checks

_FPU_MNEMONIC = re.compile(r"^\s+(v[a-z0-9]+)(\.[a-z0-9.]+)?\s", re.MULTILINE)


def fpu_instructions(asm: str) -> list[str]:
    """The FPU (VFP) mnemonics used in an assembly text, e.g. ['vldr', 'vfma', ...].

    Every VFP instruction's mnemonic starts with 'v' in unified syntax; no integer Thumb-2
    instruction does. A hard-float `.S` has many, a soft-float one must have none.
    """
    return [m.group(1) for m in _FPU_MNEMONIC.finditer(asm)]


_ABI_HEADER = re.compile(r"^@ Generated by tinykws .* float ABI (\w+)\.$", re.MULTILINE)
_VFP_ARGS = re.compile(r"^\s*\.eabi_attribute\s+(?:28|Tag_ABI_VFP_args)\s*,\s*1\b", re.MULTILINE)


def asm_float_abi(asm: str) -> str:
    """The float ABI an assembly text was compiled for: 'hard', 'softfp' or 'soft'.

    Our `.S` files say it in their header (`compile_to_asm`); for others: FPU instructions
    with the VFP-argument attribute (Tag_ABI_VFP_args = 1) are hard float, without it
    softfp; no FPU instruction at all is soft float.
    """
    m = _ABI_HEADER.search(asm[:4000])
    if m and m.group(1) in FLOAT_ABIS:
        return m.group(1)
    if not fpu_instructions(asm):
        return "soft"
    return "hard" if _VFP_ARGS.search(asm) else "softfp"
