"""`tinykws verify`: run real clips on the emulated Cortex-M4, compare every class score
with the reference, and report costs (instructions per frame, flash, RAM, peak stack).

An int8 build runs every clip twice, both checked bit for bit against the integer
reference: through the all-integer loop (int16 samples -> `mfcc_FilterInt16` ->
`completemodel_PredictQ`, what FPU-less firmware runs; its instruction counts are the
report's `instructions`) and through the float interface (`mfcc_Filter` ->
`completemodel_Predict`, `float_interface`).

flash = text + rodata + data (its initial values), RAM = data + bss + peak stack, for the
featurizer and model objects only (the harness is not part of a firmware; with --libm,
newlib's expf/logf are not counted either).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tinykws.data.audio import load_audio
from tinykws.data.speech_commands import read_list
from tinykws.device.emulator import CallCounts, soft_float_calls
from tinykws.device.errors import DeviceError
from tinykws.device.harness import KWSDevice
from tinykws.device.image import build_image
from tinykws.device.qemu import qemu_binary, qemu_cross_check
from tinykws.device.reference import int_reference, onnx_reference, torch_reference
from tinykws.progress import progress_bar
from tinykws.quant.calibrate import int_model_checkpoint
from tinykws.records import VerifyReport
from tinykws.run import INT_MODEL_STAMP, VERIFY_REPORT, RunDir, compiled_run, file_sha256
from tinykws.toolchain import (
    Toolchain,
    asm_float_abi,
    check_float_abi,
    elf_section_sizes,
    find_toolchain,
)

COUNT_CLIPS = 3  # clips run with the instruction-counting hook (costs barely depend on data)
# (clips, blocks per clip) counted by `verify`: the Python hook runs once per basic block,
# ~1 s per 5-10 M instructions, so soft float (70-600 M instructions per clip) counts a
# sample: 6 featurizer calls (3 while the window fills) and 4 model calls.
COUNTING = {"hard": (COUNT_CLIPS, None), "softfp": (COUNT_CLIPS, None), "soft": (1, 6),
            "int8": (COUNT_CLIPS, None)}  # int8: the integer build, any ABI


# `VerifyReport` (verify.json) is a record of the run folder: it lives in tinykws.records


@dataclass(frozen=True)
class VerifyConfig:
    """How `verify` checks a build (what `tinykws verify` sets from its options).

    `run_dir`: the run to compare with (default: the one the folder was compiled from,
    `compiled_dir/run.json`); `data_dir`: verify on every WAV under it instead of the run's
    test list; `max_clips`: clips run (evenly spaced); `float_abi`: default read from the
    build; `toolchain`: default `find_toolchain()`; `atol`: score tolerance of a float
    build (int8 builds are held bit-exact); `count_clips` x `count_blocks`: the clips and
    blocks a clip whose instructions are counted (default per ABI: COUNTING); `progress`:
    a progress bar; `qemu`: also count the first clip's first blocks on QEMU's mps2-an386
    and report whether the counts agree; `reference`: 'torch' (the run's checkpoint) or
    'onnx' (RUN_DIR/export/model_step.onnx)."""

    run_dir: Path | str | None = None
    data_dir: Path | str | None = None
    max_clips: int = 50
    float_abi: Optional[str] = None
    toolchain: Optional[Toolchain] = None
    atol: float = 1e-3
    count_clips: Optional[int] = None
    count_blocks: Optional[int] = None
    progress: bool = True
    qemu: bool = False
    reference: str = "torch"


Reference = Any  # callable: audio [N, S] float32 -> (features [N, T, F], scores [N, T, C])


def verify_device(
    device: KWSDevice,
    clips: Sequence[tuple[str, np.ndarray]],
    reference: Reference,
    atol: float = 1e-3,
    count_clips: int = COUNT_CLIPS,
    progress: bool = True,
    count_blocks: Optional[int] = None,
    secondary: Optional[Reference] = None,
    feature_atol: Optional[float] = None,
    integer: bool = False,
) -> tuple[dict[str, Any], CallCounts | None]:
    """Run every clip on the device and compare with `reference`; the parity part of a report.

    `secondary` (integer builds: the float model): also measured, not checked; its
    max score difference and final-decision agreement go into parity["float_model"].
    `feature_atol`: also check every feature to this (integer builds: 0, exact).
    `integer`: run the all-integer loop of an int8 build (`KWSDevice.run_clip`).

    Checks every class score of every frame to `atol`, and the final decision (argmax of
    the last frame) of every clip. Instructions are counted on the first `count_clips`
    clips (their first `count_blocks` blocks; default all). Records the first mismatch
    (clip, frame, class, values, and the featurizer's difference at that frame, to tell
    featurizer from model faults).
    """
    if not clips:
        raise DeviceError("no clips to verify")
    audio = np.stack([a.astype(np.float32) for _, a in clips])  # [N, S]
    ref_feat, ref_scores = reference(audio)  # [N, T, F], [N, T, C]
    sec_scores = secondary(audio)[1] if secondary is not None else None
    sec_diff, sec_agree, sec_last = 0.0, 0, []
    warm = device.shape.warmup_blocks
    max_diff = max_fdiff = 0.0
    agree, n_frames, first = 0, 0, None
    counted = _CountSum()
    bar = progress_bar(transient=True)
    if not progress:
        bar.disable = True
    with bar:
        task = bar.add_task("emulated Cortex-M4", total=len(clips))
        for i, (name, x) in enumerate(clips):
            run = device.run_clip(x, count=i < count_clips, count_blocks=count_blocks,
                                  integer=integer)
            if run.counts is not None:
                counted.add(run.counts)
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
            if feature_atol is not None:  # a featurizer mismatch marks its frame bad
                bad |= ~(fdiff <= feature_atol)[:, None]
            worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else math.inf
            max_diff = max(max_diff, worst)
            max_fdiff = max(max_fdiff, float(np.nanmax(fdiff)) if fdiff.size else 0.0)
            same = int(np.argmax(run.scores[-1])) == int(np.argmax(ref_scores[i][-1]))
            agree += same
            n_frames += len(diff)
            if sec_scores is not None:
                sec_diff = max(sec_diff, float(np.abs(run.scores - sec_scores[i]).max()))
                sec_last.append(float(np.abs(run.scores[-1] - sec_scores[i][-1]).max()))
                sec_agree += int(np.argmax(run.scores[-1])) == int(np.argmax(sec_scores[i][-1]))
            if first is None and (bad.any() or not same):
                first = _first_mismatch(name, i, run.scores, ref_scores[i], diff, fdiff, bad)
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
        "counted_clips": counted.clips,
    }
    if sec_scores is not None:
        parity["float_model"] = {
            "max_abs_diff": sec_diff,
            "mean_last_frame_max_diff": float(np.mean(sec_last)),
            "argmax_agreement": sec_agree / len(clips),
        }
    return parity, counted.result()


class _CountSum:
    """The instruction counts of several clips, summed (per call lists joined, the lowest
    stack pointer at each entry, the functions each entry point reached)."""

    def __init__(self) -> None:
        self.clips = 0
        self.calls: dict[str, list[int]] = {}
        self.totals: dict[str, int] = {}
        self.sp: dict[str, int] = {}
        self.entered: dict[str, set[str]] = {}

    def add(self, counts: CallCounts) -> None:
        """One more counted clip."""
        self.clips += 1
        for k, v in counts.per_call.items():
            self.calls.setdefault(k, []).extend(v)
        for k, v in counts.total.items():
            self.totals[k] = self.totals.get(k, 0) + v
        for k, v in counts.sp_at_entry.items():
            self.sp[k] = min(self.sp.get(k, v), v)
        for k, v in counts.entered.items():
            self.entered.setdefault(k, set()).update(v)

    def result(self) -> Optional[CallCounts]:
        return CallCounts(self.totals, self.calls, self.sp, self.entered) if self.calls else None


def _first_mismatch(name: str, i: int, scores: np.ndarray, ref: np.ndarray, diff: np.ndarray,
                    fdiff: np.ndarray, bad: np.ndarray) -> dict[str, Any]:
    """Where clip `i` first differs: the first bad score, or (scores within tolerance but the
    final decision differs, a tie) the last frame's largest difference."""
    if bad.any():
        t, c = np.argwhere(bad)[0]
    else:
        t, c = len(diff) - 1, int(np.argmax(diff[-1]))
    return {
        "clip": name,
        "clip_index": i,
        "frame": int(t),
        "class_index": int(c),
        "device": float(scores[t, c]),
        "reference": float(ref[t, c]),
        "abs_diff": float(diff[t, c]),
        "feature_max_diff_at_frame": float(fdiff[t]),
        "argmax_device": int(np.argmax(scores[-1])),
        "argmax_reference": int(np.argmax(ref[-1])),
    }


FLOAT_ENTRY_POINTS = {"featurizer": "mfcc_Filter", "model": "completemodel_Predict"}
INT_ENTRY_POINTS = {"featurizer": "mfcc_FilterInt16", "model": "completemodel_PredictQ"}


def instruction_summary(counts: Optional[CallCounts], counted_clips: int,
                        entry_points: dict[str, str] = FLOAT_ENTRY_POINTS) -> dict[str, Any]:
    """Instructions per call of the featurizer (= per 10-ms frame) and the model entry
    points (default mfcc_Filter, completemodel_Predict), and the soft-float helpers
    (`__aeabi_f*`, ...) they called."""
    out: dict[str, Any] = {
        "method": "unicorn basic-block hook; Thumb instructions per executed block, "
        "including condition-failed ones inside IT blocks; callees charged to the caller",
        "counted_clips": counted_clips,
        "entry_points": dict(entry_points),
    }
    if counts is None:
        return out
    out["soft_float_calls"] = soft_float_calls(
        set().union(*(counts.entered.get(fn, set()) for fn in entry_points.values())))
    for key, fn in entry_points.items():
        v = counts.per_call.get(fn, [])
        if v:
            out[key] = {
                "mean": float(np.mean(v)),
                "min": int(min(v)),
                "max": int(max(v)),
                "calls": len(v),
            }
    return out


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


def float_reference(run_dir: Path | str, reference: str, checkpoint: Optional[Path] = None):
    """`torch_reference` of `checkpoint` (default: the run's), or `onnx_reference` of the run
    (RUN_DIR/export holds the run's checkpoint only, so another checkpoint is refused)."""
    if reference == "torch":
        return torch_reference(checkpoint or run_dir)
    if checkpoint is not None and Path(checkpoint).resolve() != RunDir(run_dir).checkpoint().resolve():
        raise DeviceError(f"this build was quantized from {checkpoint}, which has no ONNX export "
                          "(export/ holds the run's checkpoint): use --reference torch")
    return onnx_reference(run_dir)


def detect_float_abi(compiled_dir: Path | str) -> str:
    """The float ABI the compiled model.S was made for: 'hard', 'softfp' or 'soft'
    (`tinykws.toolchain.asm_float_abi`: our header, else its FPU use and ABI attributes)."""
    return asm_float_abi((Path(compiled_dir) / "model.S").read_text(errors="replace"))


def check_int_build_current(compiled_dir: Path | str, run_dir: Path | str) -> None:
    """Refuse an int8 build made from another integer model than the run's
    quant/model_int.npz (the run was re-quantized since): every frame would differ, and
    the cause is a stale build, not the device. Builds from before the stamp pass."""
    stamp = Path(compiled_dir) / INT_MODEL_STAMP
    qpath = RunDir(run_dir).int_model
    if not stamp.is_file() or not qpath.is_file():
        return
    try:
        made_from = json.loads(stamp.read_text()).get("model_int_sha256")
    except (ValueError, AttributeError):
        raise DeviceError(f"{stamp} is damaged: run `tinykws compile RUN_DIR --float-abi soft "
                          "--precision int8` again") from None
    if made_from != file_sha256(qpath):
        raise DeviceError(f"{compiled_dir} was compiled from another integer model than {qpath} "
                          "(the run was quantized again since): run `tinykws compile RUN_DIR "
                          "--float-abi soft --precision int8` again")


def detect_precision(compiled_dir: Path | str) -> str:
    """'int8' for an integer build (its model.h declares completemodel_PredictQ), else 'float'."""
    h = Path(compiled_dir) / "model.h"
    return "int8" if h.is_file() and "_PredictQ(" in h.read_text(errors="replace") else "float"


def object_sizes(build_dir: Path, names: Sequence[str] = ("featurizer", "model")) -> dict:
    """Section sizes of the assembled featurizer.o and model.o (what a firmware links)."""
    return {n: elf_section_sizes(build_dir / f"{n}.o") for n in names}


def check_writable(compiled_dir: Path) -> None:
    """Refuse a compiled folder `verify` cannot write its build/ and reports into, before
    any work (a read-only one failed inside the linker with its whole command line)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=compiled_dir):
            pass
    except OSError as e:
        raise DeviceError(f"read-only: {compiled_dir} ({e.strerror}); verify writes build/ and "
                          "its report there: copy the folder somewhere writable") from None


def verify(compiled_dir: Path | str, config: VerifyConfig = VerifyConfig()) -> VerifyReport:
    """Link `compiled_dir/{featurizer,model}.S` into an emulated Cortex-M4 image, run real
    clips through it and compare every class score with the reference (`config`: which
    run, clips, tolerance, counting; `VerifyConfig`).

    Writes `compiled_dir/verify.json`; the build lands in `compiled_dir/build/`.
    """
    t0 = time.perf_counter()
    compiled_dir = Path(compiled_dir)
    cfg = config
    run_dir = check_build(compiled_dir, cfg.run_dir)
    float_abi = check_float_abi(cfg.float_abi or detect_float_abi(compiled_dir))
    precision = detect_precision(compiled_dir)
    if cfg.reference not in ("torch", "onnx"):
        raise DeviceError(f"reference must be 'torch' or 'onnx', not {cfg.reference!r}")
    # the checkpoints first: a damaged or inconsistent one fails before any build
    refs = _references(compiled_dir, run_dir, precision, cfg.reference, cfg.atol)
    ref_fn, shape, fp, secondary, float_source, reference, atol = refs
    tc = cfg.toolchain or find_toolchain()
    build = compiled_dir / "build"
    elf = build_image(
        [compiled_dir / "featurizer.S", compiled_dir / "model.S"], build, float_abi, tc
    )
    clips = []
    for p in select_clips(run_dir, cfg.data_dir, cfg.max_clips):
        x, _ = load_audio(p, fp.sample_rate, fp.clip_samples)
        clips.append((str(p), x))
    device = KWSDevice(elf, shape)
    int8 = precision == "int8"
    default_clips, default_blocks = COUNTING["int8" if int8 else float_abi]
    n_count = default_clips if cfg.count_clips is None else cfg.count_clips
    blocks = cfg.count_blocks or default_blocks
    parity, counts = verify_device(
        device,
        clips,
        ref_fn,
        atol,
        n_count,
        cfg.progress,
        blocks,
        secondary,
        0.0 if int8 else None,
        integer=int8,
    )
    entry_points = INT_ENTRY_POINTS if int8 else FLOAT_ENTRY_POINTS
    float_interface = None
    if int8:  # the same clips through the float interface, checked alike
        float_interface = _float_interface(device, clips, ref_fn, atol, n_count, cfg.progress,
                                           blocks)
    stack = device.peak_stack(counts)
    qemu_check = None
    if cfg.qemu:
        if qemu_binary() is None:
            raise DeviceError(
                "--qemu needs qemu-system-arm (Debian: apt-get install qemu-system-arm)"
            )
        qemu_check = qemu_cross_check(compiled_dir, device, clips[0][1], float_abi, tc)
    sizes = object_sizes(build)
    flash = sum(s["text"] + s["rodata"] + s["data"] for s in sizes.values())
    ram = sum(s["data"] + s["bss"] for s in sizes.values()) + stack
    counted = parity.pop("counted_clips")
    if float_source is not None:
        parity["float_model"]["checkpoint"] = str(float_source)
    report = VerifyReport(
        float_abi=float_abi,
        toolchain=tc.version,
        instructions=instruction_summary(counts, counted, entry_points),
        sizes=sizes,
        flash_bytes=flash,
        ram_bytes=ram,
        peak_stack_bytes=stack,
        seconds=time.perf_counter() - t0,
        qemu_check=qemu_check,
        reference=reference,
        precision=precision,
        float_interface=float_interface,
        **{**parity, "ok": parity["ok"] and (float_interface or {"ok": True})["ok"]},
    )
    report.save(compiled_dir / VERIFY_REPORT)
    return report


def check_build(compiled_dir: Path, run_dir: Path | str | None) -> Path:
    """The run folder of a build about to be verified (`run_dir`, else the one it was
    compiled from), refused with one line when the build's `.S` files are missing, its
    folder is not writable or the run has no checkpoint."""
    for f in ("featurizer.S", "model.S"):
        if not (compiled_dir / f).is_file():
            raise DeviceError(f"{compiled_dir / f} not found: run `tinykws compile RUN_DIR` first")
    check_writable(compiled_dir)
    run_dir = Path(run_dir) if run_dir is not None else compiled_run(compiled_dir)
    if not RunDir(run_dir).has_checkpoint():
        raise DeviceError(f"{run_dir}: no train/best.pt or train/last.pt: pass the run folder with --run")
    return run_dir


def _references(compiled_dir: Path, run_dir: Path, precision: str, reference: str, atol: float
                ) -> tuple[Any, Any, Any, Any, Optional[Path], str, float]:
    """What a build is compared with: (reference function, harness shape, FeatureParams,
    the float model measured beside an int8 build or None, its checkpoint or None, the
    reference's name, the tolerance). An int8 build is held exactly to the integer
    reference; beside it, the float model it was quantized from (quant/qat.pt when
    quantize kept fine-tuning) is measured."""
    if precision != "int8":
        ref_fn, shape, fp, _ = float_reference(run_dir, reference)
        return ref_fn, shape, fp, None, None, reference, atol
    float_source = int_model_checkpoint(run_dir)
    secondary = float_reference(run_dir, reference, float_source)[0]
    ref_fn, shape, fp, _ = int_reference(run_dir)  # a damaged model fails here first
    check_int_build_current(compiled_dir, run_dir)
    return ref_fn, shape, fp, secondary, float_source, "int", 0.0


def _float_interface(device: KWSDevice, clips: list, ref_fn: Any, atol: float, n_count: int,
                     progress: bool, blocks: int) -> dict[str, Any]:
    """An int8 build's float entry points on the same clips, checked like its integer ones."""
    fparity, fcounts = verify_device(device, clips, ref_fn, atol, n_count, progress, blocks,
                                     None, 0.0)
    out = {k: fparity[k] for k in ("ok", "max_abs_diff", "max_feature_diff", "first_mismatch")}
    out["instructions"] = instruction_summary(fcounts, fparity["counted_clips"])
    return out


def _chain(ins: dict[str, Any]) -> str:
    return " -> ".join(ins.get("entry_points", FLOAT_ENTRY_POINTS).values())


def _soft_calls(ins: dict[str, Any]) -> str:
    calls = ins.get("soft_float_calls")
    return "" if calls is None else "; soft-float helpers called: " + (", ".join(calls) or "none")


def _instruction_lines(ins: dict[str, Any]) -> list[str]:
    """One line per counted entry point (featurizer, model)."""
    lines = []
    for key in FLOAT_ENTRY_POINTS:
        if key in ins:
            v = ins[key]
            lines.append(
                f"{key:10s} {v['mean']:10,.0f} instructions per 10-ms frame (max {v['max']:,}; "
                f"{v['calls']} calls over {ins['counted_clips']} clips)"
            )
    if "soft_float_calls" in ins and lines:
        lines[-1] += _soft_calls(ins)
    return lines


def format_report(r: VerifyReport) -> str:
    """Human-readable summary of a VerifyReport (what `tinykws verify` prints)."""
    lines = [
        f"emulated Cortex-M4, {'integer (int8) build, ' if r.precision == 'int8' else ''}"
        f"float ABI {r.float_abi}, {r.toolchain}",
        f"parity vs {r.reference}: {r.n_clips} clips, {r.n_frames} frames; "
        f"max |score diff| {r.max_abs_diff:.2e} "
        f"(limit {r.atol:g}); max |feature diff| {r.max_feature_diff:.2e}; "
        f"argmax agreement {r.argmax_agreement:.1%}",
    ]
    if r.float_model is not None:
        f = r.float_model
        lines.append(
            f"vs the float model ({f.get('checkpoint', 'the run checkpoint')}): argmax agreement "
            f"{f['argmax_agreement']:.1%}, max |score diff| "
            f"{f['max_abs_diff']:.3g} (last frame, mean over clips {f['mean_last_frame_max_diff']:.3g})"
        )
    ins = r.instructions
    if r.precision == "int8":
        lines.append(f"integer loop ({_chain(ins)}), what FPU-less firmware runs:")
    lines += _instruction_lines(ins)
    if r.float_interface is not None:
        fi = r.float_interface
        fins = fi["instructions"]
        parts = " + ".join(f"{k} {fins[k]['mean']:,.0f}" for k in FLOAT_ENTRY_POINTS if k in fins)
        lines.append(
            f"float interface ({_chain(fins)}): {parts} instructions per 10-ms frame"
            f"{_soft_calls(fins)}; features and scores "
            f"{'bit for bit equal' if fi['ok'] else 'DIFFERENT'} (max |score diff| "
            f"{fi['max_abs_diff']:.2e})")
    for key, s in r.sizes.items():
        lines.append(
            f"{key:10s} text {s['text']:,} B, rodata {s['rodata']:,} B, data {s['data']:,} B, "
            f"bss {s['bss']:,} B"
        )
    lines.append(
        f"flash {r.flash_bytes:,} B (text + rodata + data); RAM {r.ram_bytes:,} B "
        f"(data + bss + peak stack {r.peak_stack_bytes:,} B)"
    )
    if r.float_abi == "soft" and r.precision == "float":
        lines.append("soft float: the counts include the __aeabi_* helpers they call")
    if r.float_abi == "softfp":
        lines.append("softfp: FPU instructions inside, soft-float calling convention; the "
                     "harness (the firmware) was built -mfloat-abi=soft and linked with them")
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
        m, where = r.first_mismatch, ""
        if m is None and r.float_interface is not None:
            m, where = r.float_interface["first_mismatch"], " of the float interface"
        m = m or {}
        lines.append(
            f"FAIL: first mismatch{where} in {m.get('clip')} (clip {m.get('clip_index')}), frame "
            f"{m.get('frame')}, class {m.get('class_index')}: device {m.get('device'):.6g} vs "
            f"reference {m.get('reference'):.6g} (|diff| {m.get('abs_diff'):.3g}); featurizer "
            f"|diff| at that frame {m.get('feature_max_diff_at_frame'):.3g}; final argmax "
            f"device {m.get('argmax_device')} vs reference {m.get('argmax_reference')}"
        )
    return "\n".join(lines)

