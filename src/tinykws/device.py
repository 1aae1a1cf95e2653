"""Run the compiled featurizer and model on an emulated Cortex-M4, count their cost, check them.

`tinykws verify DIR` links `featurizer.S` and `model.S` into a bare-metal image (vector
table, start-up and a mailbox harness from `device_runtime/`), runs it in unicorn (QEMU's
CPU core, pip-installable) as a Cortex-M4 with its FPU, feeds real clips block by block and
compares every class score with the PyTorch model.

Costs and sizes:
- instructions per call of `mfcc_Filter` / `completemodel_Predict`, counted with a basic-block
  hook that adds the number of Thumb instructions in each executed block (decoded once from
  the code bytes). A block's count includes instructions in an IT block whose condition
  failed: the core still spends a cycle on them (unicorn's per-instruction code hook skips
  them: a lower bound). The counts equal QEMU's per-instruction exec trace call by call
  (`qemu_cross_check`). Calls into shared helpers (soft-float `__aeabi_*`, `memcpy`) are
  charged to the caller.
- peak stack: the stack is filled with a pattern before the first run; after the runs the
  lowest overwritten word, relative to the stack pointer at the call, is the high-water mark.
- flash = text + rodata + data (its initial values), RAM = data + bss + peak stack, for the
  featurizer and model objects only (the harness is not part of a firmware; with --libm,
  newlib's expf/logf are not counted either).
"""

from __future__ import annotations

import json
import math
import re
import struct
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.toolchain import (
    GCC,
    Toolchain,
    ToolchainError,
    check_float_abi,
    elf_section_sizes,
    find_toolchain,
    fpu_instructions,
)

STACK_PATTERN = 0xC5ACCE55  # written over the whole stack before the first run
MAILBOX_MAGIC = 0x534B4B54
MAILBOX_FIELDS = (
    "magic",
    "n_blocks",
    "block_len",
    "n_features",
    "n_scores",
    "warmup_blocks",
    "reset",
    "frames_done",
)
MAX_INSTRUCTIONS_PER_CALL = 2_000_000_000  # runaway guard for one emulator call
_REG_SP = 12  # unicorn.arm_const.UC_ARM_REG_SP (checked in Emulator.__init__)


class DeviceError(TinyKWSError):
    """The image could not be built or the emulated device did not finish correctly."""


def runtime_dir() -> Path:
    """Folder of the bare-metal start-up, harness and linker script shipped with tinykws."""
    return Path(str(resources.files("tinykws") / "device_runtime"))


# ---------------------------------------------------------------------- building


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

    Writes `out_dir/<name>.elf` (and the objects; with gcc also `<name>.map`).

    With `harness=True` the mailbox harness is linked too; the sources must then define the
    ELL entry points (`mfcc_Filter`, `mfcc_Reset`, `completemodel_Predict`,
    `completemodel_Reset`). `keep`: functions to keep although nothing calls them (tests).
    `autorun` (QEMU): the reset handler runs the harness once, then exits by semihosting.
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
        objs.append(tc.compile_object(rt / "harness.c", out_dir / "harness.o", float_abi))
        keep = [*keep, "tkws_harness_run"]  # only the host calls it
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
            rt / "cortex_m4.ld",
            out_dir / f"{name}.elf",
            float_abi,
            map_file=out_dir / f"{name}.map",
            keep=keep,
        )
    except ToolchainError as e:
        libm = r"undefined (symbol: |reference to `)(expf|logf|tanhf|sqrtf)"
        if re.search(libm, str(e)):
            raise DeviceError(
                "the compiled files call libm (compiled with --libm), which only "
                "arm-none-eabi-gcc with newlib provides for the emulated image: install "
                "gcc-arm-none-eabi and libnewlib-arm-none-eabi, or compile without --libm"
            ) from None
        raise


# ---------------------------------------------------------------------- ELF reading


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int  # Thumb bit cleared for functions
    size: int
    kind: str  # 'func' | 'object' | 'other'


def read_symbols(elf: Path | str) -> dict[str, Symbol]:
    """Named symbols of an ELF: functions (Thumb bit cleared), objects and linker symbols."""
    from elftools.elf.elffile import ELFFile

    out: dict[str, Symbol] = {}
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise DeviceError(f"{elf} has no symbol table")
        for s in symtab.iter_symbols():
            if not s.name or s["st_info"]["type"] in ("STT_FILE", "STT_SECTION"):
                continue
            t = s["st_info"]["type"]
            kind = {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(t, "other")
            addr = s["st_value"] & ~1 if kind == "func" else s["st_value"]
            # keep the global definition when a name is also a local (e.g. compiler-rt aliases)
            if s.name in out and s["st_info"]["bind"] == "STB_LOCAL":
                continue
            out[s.name] = Symbol(s.name, addr, s["st_size"], kind)
    return out


def _load_segments(elf: Path | str) -> list[tuple[int, bytes]]:
    """(load address, bytes) of every PT_LOAD segment: what a flash programmer writes."""
    from elftools.elf.elffile import ELFFile

    segs = []
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0:
                segs.append((seg["p_paddr"], seg.data()))
    return segs


def count_thumb_instructions(code: bytes, start: int, size: int) -> int:
    """Number of Thumb-2 instructions in code[start:start+size].

    A halfword whose top five bits are 0b11101, 0b11110 or 0b11111 starts a 32-bit
    instruction; every other halfword is a 16-bit instruction.
    """
    n, i, end = 0, start, start + size
    while i < end:
        hw = code[i] | (code[i + 1] << 8)
        i += 4 if (hw >> 11) >= 0x1D else 2
        n += 1
    return n


# ---------------------------------------------------------------------- emulator


@dataclass
class CallCounts:
    """Instructions executed, per phase, and per call of each tracked entry point."""

    total: dict[str, int] = field(default_factory=dict)
    per_call: dict[str, list[int]] = field(default_factory=dict)
    sp_at_entry: dict[str, int] = field(default_factory=dict)  # lowest SP on entering each


class _Counter:
    """Block-hook state: which phase we are in, and instruction totals."""

    __slots__ = (
        "phase", "entries", "home_lo", "home_hi", "cache", "code", "total", "calls", "cur", "sp"
    )

    def __init__(self, entries: dict[int, str], home: tuple[int, int], code: bytes) -> None:
        self.entries = entries  # block address of a tracked entry point -> phase name
        self.home_lo, self.home_hi = home  # the caller's code range: phase 'harness'
        self.code = code
        self.cache: dict[tuple[int, int], int] = {}
        self.phase = "harness"
        self.total: dict[str, int] = {"harness": 0}
        self.calls: dict[str, list[int]] = {}
        self.cur: Optional[list[int]] = None  # per-call counts of the current phase
        self.sp: dict[str, int] = {}  # lowest stack pointer seen at each tracked entry

    def hook(self, uc, address: int, size: int, _user) -> None:  # noqa: ANN001
        """unicorn block hook: charge the block's instructions to the current phase."""
        key = (address, size)
        n = self.cache.get(key)
        if n is None:
            n = self.cache[key] = count_thumb_instructions(self.code, address, size)
        self.add(address, n, uc)

    def add(self, address: int, n: int, uc=None) -> None:  # noqa: ANN001
        """`n` instructions executed from `address` (a block, or one instruction)."""
        phase = self.entries.get(address)
        if phase is not None:
            self.phase = phase
            lst = self.calls.setdefault(phase, [])
            lst.append(0)
            self.cur = lst
            if uc is not None:
                sp = uc.reg_read(_REG_SP)
                if sp < self.sp.get(phase, 1 << 32):
                    self.sp[phase] = sp
        elif self.home_lo <= address < self.home_hi:
            self.phase = "harness"
            self.cur = None
        self.total[self.phase] = self.total.get(self.phase, 0) + n
        if self.cur is not None:
            self.cur[-1] += n


class Emulator:
    """A Cortex-M4 (unicorn, FPU on) with one linked image loaded and reset.

    `call(name, *args)` runs one function to completion (integer/pointer arguments in r0-r3,
    returns r0) on a fresh stack; memory persists between calls, as on the device.
    """

    def __init__(self, elf: Path | str) -> None:
        try:
            from unicorn import UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
            from unicorn.arm_const import UC_CPU_ARM_CORTEX_M4
        except ImportError as e:  # pragma: no cover - part of the device extra
            raise DeviceError("unicorn is not installed: pip install 'tinykws[device]'") from e
        self.elf = Path(elf)
        self.symbols = read_symbols(self.elf)
        for need in ("Reset_Handler", "tkws_done", "tkws_fault", "_sstack", "_estack"):
            if need not in self.symbols:
                raise DeviceError(f"{self.elf} lacks {need}: not linked with the tinykws start-up")
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M4)
        from unicorn.arm_const import UC_ARM_REG_SP

        assert UC_ARM_REG_SP == _REG_SP
        self.flash = (0x00000000, 4 << 20)
        self.ram = (0x20000000, 4 << 20)
        for base, size in (self.flash, self.ram):
            self.uc.mem_map(base, size)
        # System control space, so the start-up code's FPU enable (CPACR) is a plain store.
        self.uc.mem_map(0xE000E000, 0x1000)
        code = bytearray(self.flash[1])
        for addr, data in _load_segments(self.elf):
            self.uc.mem_write(addr, data)
            if addr + len(data) <= self.flash[1]:
                code[addr : addr + len(data)] = data
        self.code = bytes(code)
        self.stack_lo = self.symbols["_sstack"].addr
        self.stack_top = self.symbols["_estack"].addr
        self.uc.mem_write(
            self.stack_lo,
            struct.pack("<I", STACK_PATTERN) * ((self.stack_top - self.stack_lo) // 4),
        )
        self.call("Reset_Handler")  # copies .data, zeroes .bss, enables the FPU

    # -------------------------------------------------------------- memory
    def addr(self, name: str) -> int:
        if name not in self.symbols:
            raise DeviceError(f"symbol {name!r} not found in {self.elf.name}")
        return self.symbols[name].addr

    def read_f32(self, addr: int, n: int) -> np.ndarray:
        return np.frombuffer(bytes(self.uc.mem_read(addr, 4 * n)), dtype="<f4").copy()

    def write_f32(self, addr: int, values: np.ndarray) -> None:
        self.uc.mem_write(addr, np.ascontiguousarray(values, dtype="<f4").tobytes())

    def read_u32(self, addr: int, n: int = 1) -> list[int]:
        return list(struct.unpack(f"<{n}I", bytes(self.uc.mem_read(addr, 4 * n))))

    def write_u32(self, addr: int, values: Sequence[int]) -> None:
        self.uc.mem_write(addr, struct.pack(f"<{len(values)}I", *values))

    # -------------------------------------------------------------- running
    def call(
        self,
        name: str,
        *args: int,
        count: Optional[Iterable[str]] = None,
    ) -> int | tuple[int, CallCounts]:
        """Run function `name` until it returns; r0 is the result.

        `count`: entry points to track (e.g. ("mfcc_Filter", "completemodel_Predict")); then
        returns (r0, CallCounts) with instructions per phase, each tracked function's cost
        (callees included) charged to it and the rest to phase 'harness'.
        """
        from unicorn import UC_HOOK_BLOCK, UcError
        from unicorn.arm_const import (
            UC_ARM_REG_LR,
            UC_ARM_REG_PC,
            UC_ARM_REG_R0,
            UC_ARM_REG_R1,
            UC_ARM_REG_R2,
            UC_ARM_REG_R3,
            UC_ARM_REG_SP,
        )

        if len(args) > 4:
            raise DeviceError("Emulator.call: at most 4 integer arguments")
        uc = self.uc
        for reg, val in zip((UC_ARM_REG_R0, UC_ARM_REG_R1, UC_ARM_REG_R2, UC_ARM_REG_R3), args):
            uc.reg_write(reg, int(val) & 0xFFFFFFFF)
        done = self.addr("tkws_done")
        uc.reg_write(UC_ARM_REG_SP, self.stack_top)
        uc.reg_write(UC_ARM_REG_LR, done | 1)
        counter = hook = None
        if count is not None:
            count = list(count)
            fn = self.symbols[name]
            home = (0, 0) if name in count else (fn.addr, fn.addr + max(fn.size, 2))
            entries = {self.addr(n): n for n in count}
            counter = _Counter(entries, home, self.code)
            hook = uc.hook_add(UC_HOOK_BLOCK, counter.hook)
            uc.ctl_flush_tb()  # code translated before the hook existed would not call it
        try:
            uc.emu_start(self.addr(name) | 1, done, count=MAX_INSTRUCTIONS_PER_CALL)
        except UcError as e:
            pc = uc.reg_read(UC_ARM_REG_PC)
            raise DeviceError(
                f"emulated Cortex-M4 stopped in {self.where(pc)} (pc={pc:#x}) while running "
                f"{name}: {e}"
            ) from None
        finally:
            if hook is not None:
                uc.hook_del(hook)
                uc.ctl_flush_tb()  # drop the hook calls compiled into the translated code
        pc = uc.reg_read(UC_ARM_REG_PC) & ~1
        if pc != done:
            raise DeviceError(
                f"{name} did not return: stopped in {self.where(pc)} (pc={pc:#x}); "
                "an endless loop or a fault"
            )
        r0 = uc.reg_read(UC_ARM_REG_R0)
        if counter is None:
            return r0
        calls = {k: list(v) for k, v in counter.calls.items()}
        return r0, CallCounts(dict(counter.total), calls, dict(counter.sp))

    def where(self, pc: int) -> str:
        """Name of the function containing address `pc` (for error messages)."""
        for s in self.symbols.values():
            if s.kind == "func" and s.addr <= pc < s.addr + max(s.size, 1):
                return s.name
        return "unknown code"

    def stack_used(self) -> int:
        """Bytes of stack ever touched since the image was loaded (pattern high-water mark)."""
        n_words = (self.stack_top - self.stack_lo) // 4
        words = np.frombuffer(bytes(self.uc.mem_read(self.stack_lo, 4 * n_words)), dtype="<u4")
        touched = np.flatnonzero(words != STACK_PATTERN)
        if len(touched) == 0:
            return 0
        lowest = self.stack_lo + 4 * int(touched[0])
        if touched[0] == 0:
            raise DeviceError(
                f"stack overflow: the {self.stack_top - self.stack_lo} B stack region was used up"
            )
        return self.stack_top - lowest


# ---------------------------------------------------------------------- the KWS harness


@dataclass(frozen=True)
class HarnessShape:
    """Sizes the mailbox harness needs: block length, features and scores per call, and the
    number of blocks after a reset before the featurizer's window is full."""

    block_len: int = 160
    n_features: int = 32
    n_scores: int = 12
    warmup_blocks: int = 2


@dataclass
class ClipRun:
    features: np.ndarray  # [n_blocks, n_features] float32: mfcc_Filter output of every block
    scores: np.ndarray  # [n_frames, n_scores] float32: completemodel_Predict output per frame
    counts: Optional[CallCounts] = None


class KWSDevice:
    """The emulated board running the generated featurizer + model through the harness."""

    TRACKED = ("mfcc_Filter", "completemodel_Predict", "mfcc_Reset", "completemodel_Reset")

    def __init__(self, elf: Path | str, shape: HarnessShape) -> None:
        self.em = Emulator(elf)
        self.shape = shape
        for name in (*self.TRACKED, "tkws_harness_run", "tkws_mailbox", "tkws_mailbox_data"):
            self.em.addr(name)  # a clear error when the image lacks the harness or the API
        self.data_addr = self.em.addr("tkws_mailbox_data")
        self.capacity = (self.em.addr("_mailbox_end") - self.data_addr) // 4  # floats

    def run_clip(
        self,
        audio: np.ndarray,
        count: bool = False,
        reset: bool = True,
        count_blocks: Optional[int] = None,
    ) -> ClipRun:
        """Feed `audio` (int16-scale samples, a whole number of blocks) block by block.

        With `reset`, the states are reset first and the first `warmup_blocks` blocks feed
        the featurizer only, as a firmware loop does after start-up. With `count`, the
        instructions of the first `count_blocks` blocks (default: all) are counted; the rest
        of the clip runs hook-free, continuing the same states.
        """
        s = self.shape
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1 or x.size % s.block_len:
            raise DeviceError(
                f"run_clip: need a 1-D clip of whole {s.block_len}-sample blocks, got {x.shape}"
            )
        n_blocks = x.size // s.block_len
        per_block = s.block_len + s.n_features + s.n_scores
        if n_blocks * per_block > self.capacity:
            raise DeviceError(
                f"clip too long for the device mailbox ({n_blocks} blocks; at most "
                f"{self.capacity // per_block})"
            )
        if not count or count_blocks is None or count_blocks >= n_blocks:
            return self._run_part(x, count, reset)
        if count_blocks <= s.warmup_blocks:
            raise DeviceError(f"count_blocks must exceed the {s.warmup_blocks} warm-up blocks")
        cut = count_blocks * s.block_len
        head = self._run_part(x[:cut], True, reset)
        tail = self._run_part(x[cut:], False, False)
        return ClipRun(
            np.concatenate([head.features, tail.features]),
            np.concatenate([head.scores, tail.scores]),
            head.counts,
        )

    def _run_part(self, x: np.ndarray, count: bool, reset: bool) -> ClipRun:
        """One harness call over the blocks of `x`."""
        s = self.shape
        n_blocks = x.size // s.block_len
        header = (MAILBOX_MAGIC, n_blocks, s.block_len, s.n_features, s.n_scores,
                  s.warmup_blocks, int(reset), 0)  # fmt: skip
        self.em.write_u32(self.em.addr("tkws_mailbox"), header)
        self.em.write_f32(self.data_addr, x)
        counts = None
        if count:
            _, counts = self.em.call("tkws_harness_run", count=self.TRACKED)
        else:
            self.em.call("tkws_harness_run")
        done_field = self.em.addr("tkws_mailbox") + 4 * MAILBOX_FIELDS.index("frames_done")
        frames = self.em.read_u32(done_field)[0]
        feat_addr = self.data_addr + 4 * n_blocks * s.block_len
        features = self.em.read_f32(feat_addr, n_blocks * s.n_features)
        features = features.reshape(n_blocks, s.n_features)
        score_addr = feat_addr + 4 * n_blocks * s.n_features
        scores = self.em.read_f32(score_addr, frames * s.n_scores).reshape(frames, s.n_scores)
        return ClipRun(features, scores, counts)

    def peak_stack(self, counts: Optional[CallCounts] = None) -> int:
        """Deepest stack use of the featurizer and model calls (bytes below the SP at the call)."""
        used = self.em.stack_used()
        if counts is None or not counts.sp_at_entry:
            return used
        caller_frame = self.em.stack_top - min(counts.sp_at_entry.values())
        return used - caller_frame


# ---------------------------------------------------------------------- verification

COUNT_CLIPS = 3  # clips run with the instruction-counting hook (costs barely depend on data)
# (clips, blocks per clip) counted by `verify`: the Python hook runs once per basic block,
# ~1 s per 5-10 M instructions, so soft float (70-600 M instructions per clip) counts a
# sample: 6 featurizer calls (3 while the window fills) and 4 model calls.
COUNTING = {"hard": (COUNT_CLIPS, None), "soft": (1, 6)}


@dataclass
class VerifyReport:
    """What `tinykws verify` found: parity with the reference, costs and sizes."""

    ok: bool
    float_abi: str
    toolchain: str
    n_clips: int
    n_frames: int
    atol: float
    max_abs_diff: float  # over every class score of every frame of every clip
    max_feature_diff: float  # featurizer output vs the Python features (log domain)
    argmax_agreement: float  # fraction of clips whose final decision matches
    first_mismatch: Optional[dict[str, Any]]
    instructions: dict[str, Any]  # per 10-ms frame: featurizer / model mean, max; how counted
    sizes: dict[str, dict[str, int]]  # featurizer / model: text, rodata, data, bss (bytes)
    flash_bytes: int
    ram_bytes: int
    peak_stack_bytes: int
    seconds: float
    clips: list[str] = field(default_factory=list)
    reference: str = "torch"  # what the scores were compared with: torch | onnx
    qemu_check: Optional[dict[str, Any]] = None  # per-call counts from QEMU vs unicorn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


Reference = Any  # callable: audio [N, S] float32 -> (features [N, T, F], scores [N, T, C])


def verify_device(
    device: KWSDevice,
    clips: Sequence[tuple[str, np.ndarray]],
    reference: Reference,
    atol: float = 1e-3,
    count_clips: int = COUNT_CLIPS,
    progress: bool = True,
    count_blocks: Optional[int] = None,
) -> tuple[dict[str, Any], CallCounts | None]:
    """Run every clip on the device and compare with `reference`; the parity part of a report.

    Checks every class score of every frame to `atol`, and the final decision (argmax of
    the last frame) of every clip. Instructions are counted on the first `count_clips`
    clips (their first `count_blocks` blocks; default all). Records the first mismatch
    (clip, frame, class, values, and the featurizer's difference at that frame, to tell
    featurizer from model faults).
    """
    from tinykws.progress import progress_bar

    if not clips:
        raise DeviceError("no clips to verify")
    audio = np.stack([a.astype(np.float32) for _, a in clips])  # [N, S]
    ref_feat, ref_scores = reference(audio)  # [N, T, F], [N, T, C]
    warm = device.shape.warmup_blocks
    max_diff = max_fdiff = 0.0
    agree, n_frames, first, counted = 0, 0, None, 0
    calls: dict[str, list[int]] = {}
    totals: dict[str, int] = {}
    sp: dict[str, int] = {}
    bar = progress_bar(transient=True)
    if not progress:
        bar.disable = True
    with bar:
        task = bar.add_task("emulated Cortex-M4", total=len(clips))
        for i, (name, x) in enumerate(clips):
            run = device.run_clip(x, count=i < count_clips, count_blocks=count_blocks)
            if run.counts is not None:
                counted += 1
                for k, v in run.counts.per_call.items():
                    calls.setdefault(k, []).extend(v)
                for k, v in run.counts.total.items():
                    totals[k] = totals.get(k, 0) + v
                for k, v in run.counts.sp_at_entry.items():
                    sp[k] = min(sp.get(k, v), v)
            dev_feat = run.features[warm:]  # [T, F]: frames once the window is full
            if run.scores.shape != ref_scores[i].shape or dev_feat.shape != ref_feat[i].shape:
                raise DeviceError(
                    f"{name}: device gave {run.scores.shape} scores / {dev_feat.shape} features, "
                    f"the reference {ref_scores[i].shape} / {ref_feat[i].shape}: wrong sizes "
                    "in the compiled files?"
                )
            fdiff = np.abs(dev_feat - ref_feat[i]).max(axis=1)  # [T]
            diff = np.abs(run.scores - ref_scores[i])  # [T, C]
            bad = ~(diff <= atol)  # NaN counts as bad
            worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else math.inf
            max_diff = max(max_diff, worst)
            max_fdiff = max(max_fdiff, float(np.nanmax(fdiff)) if fdiff.size else 0.0)
            same = int(np.argmax(run.scores[-1])) == int(np.argmax(ref_scores[i][-1]))
            agree += same
            n_frames += len(diff)
            if first is None and (bad.any() or not same):
                if bad.any():
                    t, c = np.argwhere(bad)[0]
                else:  # scores within tolerance but the final decision differs (a tie)
                    t, c = len(diff) - 1, int(np.argmax(diff[-1]))
                first = {
                    "clip": name,
                    "clip_index": i,
                    "frame": int(t),
                    "class_index": int(c),
                    "device": float(run.scores[t, c]),
                    "reference": float(ref_scores[i][t, c]),
                    "abs_diff": float(diff[t, c]),
                    "feature_max_diff_at_frame": float(fdiff[t]),
                    "argmax_device": int(np.argmax(run.scores[-1])),
                    "argmax_reference": int(np.argmax(ref_scores[i][-1])),
                }
            bar.advance(task)
    parity = {
        "ok": first is None,
        "n_clips": len(clips),
        "n_frames": n_frames,
        "atol": atol,
        "max_abs_diff": max_diff,
        "max_feature_diff": max_fdiff,
        "argmax_agreement": agree / len(clips),
        "first_mismatch": first,
        "clips": [n for n, _ in clips],
        "counted_clips": counted,
    }
    counts = CallCounts(totals, calls, sp) if calls else None
    return parity, counts


def instruction_summary(counts: Optional[CallCounts], counted_clips: int) -> dict[str, Any]:
    """Instructions per call of mfcc_Filter (= per 10-ms frame) and completemodel_Predict."""
    out: dict[str, Any] = {
        "method": "unicorn basic-block hook; Thumb instructions per executed block, "
        "including condition-failed ones inside IT blocks; callees charged to the caller",
        "counted_clips": counted_clips,
    }
    if counts is None:
        return out
    for key, fn in (("featurizer", "mfcc_Filter"), ("model", "completemodel_Predict")):
        v = counts.per_call.get(fn, [])
        if v:
            out[key] = {
                "mean": float(np.mean(v)),
                "min": int(min(v)),
                "max": int(max(v)),
                "calls": len(v),
            }
    return out


def torch_reference(run_dir: Path | str):
    """(reference, HarnessShape, FeatureParams) from RUN_DIR/train/best.pt.

    reference(audio [N, S]) -> (features [N, T, F], scores [N, T, C]): the Python features
    (identical to StreamingFeaturizer fed block by block) and the softmax of the model's
    logits after every frame (KWSModel.forward_sequence = KWSModel.step frame by frame).
    """
    import torch

    from tinykws.features import FeatureParams, frames_from_stream
    from tinykws.models import load_checkpoint

    ckpt = Path(run_dir) / "train" / "best.pt"
    model, meta = load_checkpoint(ckpt)
    fp = FeatureParams.from_dict(meta["feature_params"])
    n_classes = len(meta["categories"])

    def reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.stack([frames_from_stream(a, fp) for a in audio])  # [N, T, F]
        with torch.no_grad():
            logits, _ = model.forward_sequence(torch.from_numpy(feats))  # [N, T, C]
            scores = torch.softmax(logits.double(), dim=-1).float().numpy()
        return feats, scores

    shape = HarnessShape(fp.hop, fp.n_mels, n_classes, fp.first_block - 1)
    return reference, shape, fp, meta


def onnx_reference(run_dir: Path | str):
    """Like `torch_reference`, but the scores come from RUN_DIR/export/model_step.onnx run
    frame by frame in onnxruntime (the exported artifact, states carried between steps)."""
    import onnxruntime as ort

    from tinykws.features import frames_from_stream

    _, shape, fp, meta = torch_reference(run_dir)
    path = Path(run_dir) / "export" / "model_step.onnx"
    if not path.is_file():
        raise DeviceError(f"{path} not found: run `tinykws export RUN_DIR` first")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cfg = meta["model_config"]
    state_names = [i.name for i in sess.get_inputs() if i.name != "frame"]

    def reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.stack([frames_from_stream(a, fp) for a in audio])  # [N, T, F]
        n = len(feats)
        states = {k: np.zeros((cfg["num_layers"], n, cfg["hidden_size"]), np.float32)
                  for k in state_names}  # fmt: skip
        scores = []
        for t in range(feats.shape[1]):
            out = sess.run(None, {"frame": feats[:, t], **states})
            scores.append(out[0])  # [N, C]
            states = dict(zip(state_names, out[1:]))
        return feats, np.stack(scores, axis=1).astype(np.float32)  # [N, T, C]

    return reference, shape, fp, meta


def select_clips(
    run_dir: Path | str, data_dir: Path | str | None, max_clips: int
) -> list[Path]:
    """The clips to verify: every WAV under `data_dir`, else the run's testing list; an evenly
    spaced subset of at most `max_clips` (lists are sorted by class, so classes vary)."""
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DeviceError(f"--data {data_dir} is not a folder")
        paths = sorted(
            p for p in data_dir.rglob("*.wav") if not p.parent.name.startswith("_background")
        )
        if not paths:
            raise DeviceError(f"no .wav files under {data_dir}")
    else:
        from tinykws.data.speech_commands import read_list

        lists = Path(run_dir) / "lists"
        paths = [e.path for e in read_list(lists, "testing")]
        if not paths:
            raise DeviceError(f"{lists}/testing_list.txt is empty: pass --data")
    if max_clips <= 0:
        raise DeviceError(f"--max-clips must be positive, got {max_clips}")
    if len(paths) > max_clips:
        idx = np.linspace(0, len(paths) - 1, max_clips).round().astype(int)
        paths = [paths[i] for i in sorted(set(idx))]
    return paths


def detect_float_abi(compiled_dir: Path | str) -> str:
    """'hard' when the compiled model.S uses the FPU, else 'soft'."""
    asm = (Path(compiled_dir) / "model.S").read_text(errors="replace")
    return "hard" if fpu_instructions(asm) else "soft"


def object_sizes(build_dir: Path, names: Sequence[str] = ("featurizer", "model")) -> dict:
    """Section sizes of the assembled featurizer.o and model.o (what a firmware links)."""
    return {n: elf_section_sizes(build_dir / f"{n}.o") for n in names}


def verify(
    compiled_dir: Path | str,
    run_dir: Path | str | None = None,
    data_dir: Path | str | None = None,
    max_clips: int = 50,
    float_abi: Optional[str] = None,
    toolchain: Optional[Toolchain] = None,
    atol: float = 1e-3,
    count_clips: Optional[int] = None,
    count_blocks: Optional[int] = None,
    progress: bool = True,
    qemu: bool = False,
    reference: str = "torch",
) -> VerifyReport:
    """Link `compiled_dir/{featurizer,model}.S` into an emulated Cortex-M4 image, run real
    clips through it and compare every class score with the PyTorch model.

    `run_dir` defaults to compiled_dir/../.. (RUN_DIR/device/<abi>). Writes
    `compiled_dir/verify.json`; the build lands in `compiled_dir/build/`. Instructions are
    counted on `count_clips` clips x `count_blocks` blocks (default per ABI: COUNTING).
    `qemu`: also count the first clip's first blocks on QEMU's mps2-an386 (exact
    per-instruction trace) and report whether the counts agree. `reference`: 'torch'
    (RUN_DIR/train/best.pt) or 'onnx' (RUN_DIR/export/model_step.onnx).
    """
    t0 = time.perf_counter()
    compiled_dir = Path(compiled_dir)
    for f in ("featurizer.S", "model.S"):
        if not (compiled_dir / f).is_file():
            raise DeviceError(
                f"{compiled_dir / f} not found: run `tinykws compile RUN_DIR` first"
            )
    run_dir = Path(run_dir) if run_dir is not None else compiled_dir.resolve().parent.parent
    if not (run_dir / "train" / "best.pt").is_file():
        raise DeviceError(f"{run_dir}/train/best.pt not found: pass the run folder with --run")
    float_abi = check_float_abi(float_abi or detect_float_abi(compiled_dir))
    tc = toolchain or find_toolchain()
    build = compiled_dir / "build"
    elf = build_image(
        [compiled_dir / "featurizer.S", compiled_dir / "model.S"], build, float_abi, tc
    )
    if reference not in ("torch", "onnx"):
        raise DeviceError(f"reference must be 'torch' or 'onnx', not {reference!r}")
    ref_fn, shape, fp, _ = (onnx_reference if reference == "onnx" else torch_reference)(run_dir)
    clips = []
    from tinykws.data.audio import load_audio

    for p in select_clips(run_dir, data_dir, max_clips):
        x, _ = load_audio(p, fp.sample_rate, fp.clip_samples)
        clips.append((str(p), x))
    device = KWSDevice(elf, shape)
    default_clips, default_blocks = COUNTING[float_abi]
    parity, counts = verify_device(
        device,
        clips,
        ref_fn,
        atol,
        default_clips if count_clips is None else count_clips,
        progress,
        count_blocks or default_blocks,
    )
    stack = device.peak_stack(counts)
    qemu_check = None
    if qemu:
        if qemu_binary() is None:
            raise DeviceError(
                "--qemu needs qemu-system-arm (Debian: apt-get install qemu-system-arm)"
            )
        qemu_check = qemu_cross_check(compiled_dir, device, clips[0][1], float_abi, tc)
    sizes = object_sizes(build)
    flash = sum(s["text"] + s["rodata"] + s["data"] for s in sizes.values())
    ram = sum(s["data"] + s["bss"] for s in sizes.values()) + stack
    counted = parity.pop("counted_clips")
    report = VerifyReport(
        float_abi=float_abi,
        toolchain=tc.version,
        instructions=instruction_summary(counts, counted),
        sizes=sizes,
        flash_bytes=flash,
        ram_bytes=ram,
        peak_stack_bytes=stack,
        seconds=time.perf_counter() - t0,
        qemu_check=qemu_check,
        reference=reference,
        **parity,
    )
    report.save(compiled_dir / "verify.json")
    return report


def format_report(r: VerifyReport) -> str:
    """Human-readable summary of a VerifyReport (what `tinykws verify` prints)."""
    lines = [
        f"emulated Cortex-M4, float ABI {r.float_abi}, {r.toolchain}",
        f"parity vs {r.reference}: {r.n_clips} clips, {r.n_frames} frames; "
        f"max |score diff| {r.max_abs_diff:.2e} "
        f"(limit {r.atol:g}); max |feature diff| {r.max_feature_diff:.2e}; "
        f"argmax agreement {r.argmax_agreement:.1%}",
    ]
    ins = r.instructions
    for key in ("featurizer", "model"):
        if key in ins:
            v = ins[key]
            lines.append(
                f"{key:10s} {v['mean']:10,.0f} instructions per 10-ms frame (max {v['max']:,}; "
                f"{v['calls']} calls over {ins['counted_clips']} clips)"
            )
    for key, s in r.sizes.items():
        lines.append(
            f"{key:10s} text {s['text']:,} B, rodata {s['rodata']:,} B, data {s['data']:,} B, "
            f"bss {s['bss']:,} B"
        )
    lines.append(
        f"flash {r.flash_bytes:,} B (text + rodata + data); RAM {r.ram_bytes:,} B "
        f"(data + bss + peak stack {r.peak_stack_bytes:,} B)"
    )
    if r.float_abi == "soft":
        lines.append("soft float: the counts include the __aeabi_* helpers they call")
    if r.qemu_check is not None:
        q = r.qemu_check
        verdict = "identical" if q["agree"] else "DIFFERENT"
        lines.append(
            f"QEMU mps2-an386 cross-check over {q['blocks']} blocks: per-call counts "
            f"{verdict} (featurizer {q['qemu']['featurizer']}, model {q['qemu']['model']})"
        )
    if r.ok:
        lines.append(f"PASS in {r.seconds:.1f} s")
    else:
        m = r.first_mismatch or {}
        lines.append(
            f"FAIL: first mismatch in {m.get('clip')} (clip {m.get('clip_index')}), frame "
            f"{m.get('frame')}, class {m.get('class_index')}: device {m.get('device'):.6g} vs "
            f"reference {m.get('reference'):.6g} (|diff| {m.get('abs_diff'):.3g}); featurizer "
            f"|diff| at that frame {m.get('feature_max_diff_at_frame'):.3g}; final argmax "
            f"device {m.get('argmax_device')} vs reference {m.get('argmax_reference')}"
        )
    return "\n".join(lines)


def device_for_run(
    run_dir: Path | str, float_abi: str = "hard", toolchain: Optional[Toolchain] = None
) -> KWSDevice:
    """The emulated board for RUN_DIR/device/<abi>: compiles the run first when the `.S`
    files are missing, and relinks the image when they are newer than it."""
    check_float_abi(float_abi)
    run_dir = Path(run_dir)
    compiled = run_dir / "device" / float_abi
    sources = [compiled / "featurizer.S", compiled / "model.S"]
    if not all(p.is_file() for p in sources):
        from tinykws.codegen import compile_run

        compile_run(run_dir, compiled, "cortex-m4", float_abi)
    elf = compiled / "build" / "image.elf"
    if not elf.is_file() or elf.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        elf = build_image(sources, compiled / "build", float_abi, toolchain)
    _, shape, _, _ = torch_reference(run_dir)
    return KWSDevice(elf, shape)


def classify_clips(run_dir: Path | str, audio: np.ndarray, abi: str = "hard") -> np.ndarray:
    """Class scores [N, C] of 1-s clips `audio` [N, S] (int16 samples) on the emulated
    Cortex-M4: each clip from reset, the scores after its last frame (evaluate's backend)."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise DeviceError(f"classify_clips: expected clips [N, samples], got shape {audio.shape}")
    device = device_for_run(run_dir, abi)
    return np.stack([device.run_clip(x).scores[-1] for x in audio]).astype(np.float32)


# ---------------------------------------------------------------------- cost model

def featurizer_macs(params: Any) -> dict[str, int]:
    """Multiply-accumulates of one log-mel frame (FeatureParams), by step.

    The FFT is counted as a radix-2 real FFT of N points done as an N/2-point complex FFT:
    (N/4) log2(N/2) butterflies x 4 real multiplies, plus N/4 complex multiplies (4 each)
    for the split into the real spectrum. log() counts 1 per band; it costs more.
    """
    from tinykws.features import mel_filterbank

    n, m = params.fft_size, params.fft_size // 2
    macs = {
        "preemphasis": params.hop,
        "window": 0 if params.window == "rectangular" else params.window_size,
        "fft": 4 * (m // 2) * int(math.log2(m)) + 4 * (m // 2),
        "power": 2 * (n // 2 + 1),
        "mel": int(np.count_nonzero(mel_filterbank(params))),
        "log": params.n_mels,
    }
    macs["total"] = sum(macs.values())
    return macs


def model_macs(config: Any) -> dict[str, int]:
    """Multiply-accumulates of one model step (ModelConfig), by layer.

    Matrix-vector products count rows x columns (low rank: both factors), gate arithmetic
    counts the element-wise products (3H for FastGRNN/GRU/LSTM, 2H for FastRNN), plus the
    input normalisation (F), the classifier (H x C) and the softmax (C). Nonlinearities
    (sigmoid, tanh, exp) are not MACs and are left out.
    """
    F, H, C = config.input_size, config.hidden_size, config.num_classes
    macs = {"normalize": F}
    for i in range(config.num_layers):
        n_in = F if i == 0 else H
        arch = config.architecture
        if arch in ("fastgrnn", "fastrnn"):
            w = n_in * H if config.wrank is None else config.wrank * (n_in + H)
            u = H * H if config.urank is None else config.urank * 2 * H
            elementwise = 3 * H if arch == "fastgrnn" else 2 * H
        else:
            gates = 3 if arch == "gru" else 4
            w, u, elementwise = gates * H * n_in, gates * H * H, 3 * H
        macs[f"layer{i}"] = w + u + elementwise
    macs["fc"] = H * C
    macs["softmax"] = C
    macs["total"] = sum(macs.values())
    return macs


# ---------------------------------------------------------------------- QEMU cross-check

QEMU_BLOCKS = {"hard": 6, "soft": 3}  # blocks run under QEMU's per-instruction trace


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
    header = struct.pack(
        "<8I", MAILBOX_MAGIC, n_blocks, shape.block_len, shape.n_features, shape.n_scores,
        shape.warmup_blocks, 1, 0,
    )  # fmt: skip
    mb, data = syms["tkws_mailbox"].addr, syms["tkws_mailbox_data"].addr
    fn = syms["tkws_harness_run"]
    counter = _Counter(
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
