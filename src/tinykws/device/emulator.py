"""The emulated Cortex-M4: ELF reading, unicorn (QEMU's CPU core) with the image loaded,
and the instruction counter.

Instructions are counted with a basic-block hook that adds the number of Thumb
instructions in each executed block (decoded once from the code bytes). A block's count
includes instructions in an IT block whose condition failed: the core still spends a cycle
on them (unicorn's per-instruction code hook skips them: a lower bound). Calls into shared
helpers (soft-float `__aeabi_*`, `memcpy`) are charged to the caller.

Peak stack: the stack is filled with a pattern before the first run; after the runs the
lowest overwritten word is the high-water mark.
"""

from __future__ import annotations

import re
import signal
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from tinykws.device.errors import DeviceError
from tinykws.device.layout import FLASH, MEMORY, RAM, SYSTEM_CONTROL_SPACE

STACK_PATTERN = 0xC5ACCE55  # written over the whole stack before the first run
MAX_INSTRUCTIONS_PER_CALL = 2_000_000_000  # runaway guard for one emulator call
_REG_SP = 12  # unicorn.arm_const.UC_ARM_REG_SP (checked in Emulator.__init__)



@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int  # Thumb bit cleared for functions
    size: int
    kind: str  # 'func' | 'object' | 'other'


def read_symbols(elf: Path | str) -> dict[str, Symbol]:
    """Named symbols of an ELF: functions (Thumb bit cleared), objects and linker symbols;
    not the undefined ones (a weak reference nothing defines)."""
    from elftools.elf.elffile import ELFFile

    out: dict[str, Symbol] = {}
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise DeviceError(f"{elf} has no symbol table")
        for s in symtab.iter_symbols():
            if not s.name or s["st_info"]["type"] in ("STT_FILE", "STT_SECTION"):
                continue
            if s["st_shndx"] == "SHN_UNDEF":  # an unresolved weak reference (value 0)
                continue
            t = s["st_info"]["type"]
            kind = {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(t, "other")
            addr = s["st_value"] & ~1 if kind == "func" else s["st_value"]
            # keep the global definition when a name is also a local (e.g. compiler-rt aliases)
            if s.name in out and s["st_info"]["bind"] == "STB_LOCAL":
                continue
            out[s.name] = Symbol(s.name, addr, s["st_size"], kind)
    return out


# The soft-float library's entry points (EABI names; every helper has one): a call to one of
# them is floating-point work. Integer helpers (`__aeabi_idiv`, `__aeabi_lmul`, ...) do not match.
SOFT_FLOAT_HELPER = re.compile(r"^__aeabi_(f|d|u?[il]2[fd])")


def soft_float_calls(names: Iterable[str]) -> list[str]:
    """The soft-float helpers (`__aeabi_fadd`, `__aeabi_i2f`, ...) among function `names`."""
    return sorted(n for n in names if SOFT_FLOAT_HELPER.match(n))


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
    # phase -> names (aliases included) of every function whose first instruction ran in it
    entered: dict[str, set[str]] = field(default_factory=dict)


class InstructionCounter:
    """Block-hook state: which phase we are in, and instruction totals."""

    __slots__ = (
        "phase", "entries", "home_lo", "home_hi", "cache", "code", "total", "calls", "cur", "sp",
        "functions", "entered",
    )

    def __init__(self, entries: dict[int, str], home: tuple[int, int], code: bytes,
                 functions: Optional[dict[int, tuple[str, ...]]] = None) -> None:
        self.entries = entries  # block address of a tracked entry point -> phase name
        self.home_lo, self.home_hi = home  # the caller's code range: phase 'harness'
        self.code = code
        self.cache: dict[tuple[int, int], int] = {}
        self.phase = "harness"
        self.total: dict[str, int] = {"harness": 0}
        self.calls: dict[str, list[int]] = {}
        self.cur: Optional[list[int]] = None  # per-call counts of the current phase
        self.sp: dict[str, int] = {}  # lowest stack pointer seen at each tracked entry
        self.functions = functions or {}  # function start address -> its names
        self.entered: dict[str, set[str]] = {}  # phase -> names of the functions entered

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
        names = self.functions.get(address)
        if names is not None:  # a block at a function's start: a call (or a fall-through)
            self.entered.setdefault(self.phase, set()).update(names)
        if self.cur is not None:
            self.cur[-1] += n


@contextmanager
def _ctrl_c_stops(uc) -> Iterator[None]:  # noqa: ANN001
    """Inside the block, Ctrl-C stops the emulator; KeyboardInterrupt is raised after it.

    Python handles a signal at the first bytecode it runs, which during emulation is the
    entry of unicorn's hook wrapper, outside the wrapper's own try: ctypes printed the
    KeyboardInterrupt as 'Exception ignored' and dropped it, and the run went on. Only the
    main thread with Python's default handler is changed (signal.signal's rules)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    hit = []

    def stop(signum: int, frame) -> None:  # noqa: ANN001
        hit.append(signum)
        uc.emu_stop()

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hit:
        raise KeyboardInterrupt


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
        self.flash = (FLASH.origin, FLASH.length)  # (base, bytes): the map of layout.py
        self.ram = (RAM.origin, RAM.length)
        for region in (*MEMORY, SYSTEM_CONTROL_SPACE):
            self.uc.mem_map(region.origin, region.length)
        code = bytearray(FLASH.end)  # indexed by address: flash starts at 0
        for addr, data in _load_segments(self.elf):
            if not any(r.origin <= addr and addr + len(data) <= r.end for r in MEMORY):
                raise DeviceError(
                    f"{self.elf} loads {len(data)} B at {addr:#x}, outside the memory map of "
                    "tinykws.device.layout: not linked by build_image?"
                )
            self.uc.mem_write(addr, data)
            if addr + len(data) <= FLASH.end:
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

    def write(self, addr: int, data: bytes) -> None:
        self.uc.mem_write(addr, data)

    def read_u32(self, addr: int, n: int = 1) -> list[int]:
        return list(struct.unpack(f"<{n}I", bytes(self.uc.mem_read(addr, 4 * n))))

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
            counter = InstructionCounter(entries, home, self.code, self.function_starts())
            hook = uc.hook_add(UC_HOOK_BLOCK, counter.hook)
            uc.ctl_flush_tb()  # code translated before the hook existed would not call it
        try:
            with _ctrl_c_stops(uc):
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
        entered = {k: set(v) for k, v in counter.entered.items()}
        return r0, CallCounts(dict(counter.total), calls, dict(counter.sp), entered)

    def function_starts(self) -> dict[int, tuple[str, ...]]:
        """Start address -> names of the functions there (aliases such as `__aeabi_fadd` /
        `__addsf3` share one)."""
        out: dict[int, list[str]] = {}
        for s in self.symbols.values():
            if s.kind == "func":
                out.setdefault(s.addr, []).append(s.name)
        return {a: tuple(sorted(n)) for a, n in out.items()}

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

