"""`tinykws verify DIR --stream AUDIO`: the whole keyword spotter on the emulated Cortex-M4.

A recording goes block by block through the generated featurizer, model and detector
(`mfcc_Filter` -> `completemodel_Predict` -> `detector_Process`, one never-reset state:
mode `rolling`, what firmware runs) and, on the host, through `tinykws detect`'s Python
detector with the same settings (the run's `detector.json`). The two detection lists must
be identical: same frames (hence times) and labels, confidences equal to float precision.
Instructions per 10-ms frame are counted on the first blocks, split into featurizer, model
and detector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tinykws.device.errors import DeviceError
from tinykws.device.harness import KWSDevice
from tinykws.device.image import build_image
from tinykws.device.reference import torch_reference
from tinykws.device.verify import JSONReport
from tinykws.toolchain import Toolchain, check_float_abi, find_toolchain

# Blocks counted with the instruction hook (~1 s per 5-10 M instructions): 3 s of audio in
# hard float; soft float (~6 M instructions a frame) a handful, as plain `verify` does.
STREAM_COUNT_BLOCKS = {"hard": 300, "softfp": 300, "soft": 6}
CHUNK_BLOCKS = 2000  # blocks per harness call (20 s of audio; the mailbox holds ~5000)
CONFIDENCE_ATOL = 1e-4  # device vs Python smoothed score at a detection (float32 vs torch)
ENTRY_POINTS = {"featurizer": "mfcc_Filter", "model": "completemodel_Predict",
                "detector": "detector_Process"}


@dataclass
class StreamVerifyReport(JSONReport):
    """What `tinykws verify --stream` found."""

    ok: bool  # detection lists identical (frame, label; confidence within `atol`)
    audio: str
    audio_seconds: float
    frames: int  # model steps (= 10-ms frames once the featurizer's window is full)
    float_abi: str
    toolchain: str
    detector: dict[str, Any]  # the DetectorConfig both sides ran (mode: rolling)
    smooth_steps: int
    refractory_steps: int
    device_detections: list[dict[str, Any]]
    python_detections: list[dict[str, Any]]
    first_difference: Optional[dict[str, Any]]
    max_confidence_diff: float  # over matched detections
    max_score_diff: float  # raw class scores, device vs Python, over every frame
    instructions: dict[str, Any]  # per 10-ms frame: featurizer / model / detector / total
    atol: float = CONFIDENCE_ATOL
    note: str = ""
    seconds: float = 0.0
    compare: str = "tinykws detect --mode rolling"


@dataclass
class _DeviceStream:
    scores: np.ndarray  # [frames, C]
    fired: np.ndarray  # int32 [frames]: class index, or -1
    confidence: np.ndarray  # float32 [frames]
    per_call: dict[str, list[int]] = field(default_factory=dict)  # counted blocks only


def run_stream_on_device(device: KWSDevice, audio: np.ndarray, count_blocks: int,
                         chunk_blocks: int = CHUNK_BLOCKS, progress: bool = True) -> _DeviceStream:
    """`audio` (int16-scale, a whole number of blocks) through featurizer + model + detector
    on the device, one stream from one reset, in harness calls of `chunk_blocks` blocks.
    The first `count_blocks` blocks are run with the instruction counter."""
    from tinykws.progress import progress_bar

    s = device.shape
    x = np.asarray(audio, np.float32)
    n_blocks = x.size // s.block_len
    if n_blocks <= s.warmup_blocks:
        raise DeviceError(f"the recording is shorter than {s.warmup_blocks + 1} blocks of "
                          f"{s.block_len} samples")
    x = x[: n_blocks * s.block_len]
    cuts = [0, min(max(count_blocks, 0), n_blocks)]
    while cuts[-1] < n_blocks:
        cuts.append(min(cuts[-1] + chunk_blocks, n_blocks))
    cuts = sorted(set(cuts))
    scores, fired, conf, per_call = [], [], [], {}
    bar = progress_bar(transient=True)
    bar.disable = not progress
    with bar:
        task = bar.add_task("emulated Cortex-M4 (stream)", total=n_blocks)
        for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            counted = i == 0 and a == 0 and b == cuts[1] and count_blocks > 0
            run = device.run_clip(x[a * s.block_len : b * s.block_len], count=counted,
                                  reset=a == 0, detect=True)
            scores.append(run.scores)
            fired.append(run.fired)
            conf.append(run.confidence)
            if counted and run.counts is not None:
                per_call = {k: list(v) for k, v in run.counts.per_call.items()}
            bar.advance(task, b - a)
    return _DeviceStream(np.concatenate(scores), np.concatenate(fired).astype(np.int32),
                         np.concatenate(conf), per_call)


def _python_stream(run_dir: Path, audio: np.ndarray, config) -> tuple[np.ndarray, list]:
    """Raw scores [frames, C] and detections of `tinykws detect`'s Python detector (block
    by block, as `detect_file` runs it) with `config` in mode rolling."""
    from tinykws.detect import Detector, blocks

    det = Detector(run_dir, config=config.replace(mode="rolling"))
    scores, found = [], []
    for block in blocks(audio, det.params.hop):
        r = det.scores(block)
        if r is None:
            continue
        scores.append(r[1])
        d = det.trigger(*r)
        if d:
            found.append(d)
    return np.array(scores, np.float64).reshape(len(scores), -1), found


def compare_detections(device: list[dict], python: list[dict], atol: float
                       ) -> tuple[Optional[dict], float]:
    """(first difference or None, max |confidence diff| over the matched pairs)."""
    worst = 0.0
    for i in range(max(len(device), len(python))):
        d = device[i] if i < len(device) else None
        p = python[i] if i < len(python) else None
        if d is None or p is None or d["time_s"] != p["time_s"] or d["label"] != p["label"]:
            return {"index": i, "device": d, "python": p}, worst
        diff = abs(d["confidence"] - p["confidence"])
        worst = max(worst, diff)
        if not diff <= atol:
            return {"index": i, "device": d, "python": p, "confidence_diff": diff}, worst
    return None, worst


def _instructions(per_call: dict[str, list[int]]) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "unicorn basic-block hook (as `tinykws verify`); per "
                                     "call, callees included"}
    total = 0.0
    for key, fn in ENTRY_POINTS.items():
        v = per_call.get(fn, [])
        if v:
            out[key] = {"mean": float(np.mean(v)), "max": int(max(v)), "calls": len(v)}
            total += float(np.mean(v))
    out["total"] = total
    return out


def _compiled_detector(compiled_dir: Path):
    """The DetectorConfig the compiled detector was generated from (DIR/detector.json)."""
    from tinykws.detect import load_detector

    if not (compiled_dir / "detector.S").is_file() or not (compiled_dir / "detector.json").is_file():
        raise DeviceError(f"{compiled_dir} has no compiled detector (detector.S, detector.json): "
                          "run `tinykws compile RUN_DIR` again")
    return load_detector(compiled_dir)[0]


def verify_stream(
    compiled_dir: Path | str,
    audio_path: Path | str,
    run_dir: Path | str | None = None,
    float_abi: Optional[str] = None,
    toolchain: Optional[Toolchain] = None,
    count_blocks: Optional[int] = None,
    progress: bool = True,
    atol: float = CONFIDENCE_ATOL,
) -> StreamVerifyReport:
    """Run a recording through featurizer + model + detector on the emulated Cortex-M4 and
    through `tinykws detect` (mode rolling), compare the detections, count instructions.

    Writes `compiled_dir/verify_stream.json`. The compiled detector must have been made
    from the run's current detector (`detector.json`): else a DeviceError says to recompile.
    """
    from tinykws.data.audio import load_audio
    from tinykws.detect import load_detector_config
    from tinykws.device.verify import detect_float_abi, detect_precision
    from tinykws.run import RunDir

    t0 = time.perf_counter()
    compiled_dir = Path(compiled_dir)
    for f in ("featurizer.S", "model.S"):
        if not (compiled_dir / f).is_file():
            raise DeviceError(f"{compiled_dir / f} not found: run `tinykws compile RUN_DIR` first")
    if detect_precision(compiled_dir) == "int8":  # quantized scores: no float stream to equal
        raise DeviceError(f"{compiled_dir} is an integer (int8) build: --stream compares with the "
                          "float `tinykws detect`; check int8 builds with `tinykws verify DIR`")
    run_dir = Path(run_dir) if run_dir is not None else compiled_dir.resolve().parent.parent
    if not RunDir(run_dir).has_checkpoint():
        raise DeviceError(f"{run_dir}: no train/best.pt or train/last.pt: pass the run folder with --run")
    compiled_cfg = _compiled_detector(compiled_dir)
    run_cfg = load_detector_config(run_dir)
    if compiled_cfg.replace(mode="auto") != run_cfg.replace(mode="auto"):
        raise DeviceError(f"{compiled_dir} was compiled with another detector than "
                          f"{run_dir}/detector.json: run `tinykws compile RUN_DIR` again")
    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise DeviceError(f"--stream {audio_path}: no such file")
    audio, _ = load_audio(audio_path, length=None)

    float_abi = check_float_abi(float_abi or detect_float_abi(compiled_dir))
    tc = toolchain or find_toolchain()
    sources = [compiled_dir / f"{m}.S" for m in ("featurizer", "model", "detector")]
    elf = build_image(sources, compiled_dir / "build" / "stream", float_abi, tc)
    _, shape, fp, ck = torch_reference(run_dir)
    device = KWSDevice(elf, shape)
    n = STREAM_COUNT_BLOCKS[float_abi] if count_blocks is None else count_blocks
    dev = run_stream_on_device(device, audio, n, progress=progress)

    py_scores, py_found = _python_stream(run_dir, np.asarray(audio), run_cfg)
    cats = list(ck.categories)
    frame_s = fp.hop / fp.sample_rate
    dev_found = [{"time_s": (int(f) + fp.first_block) * fp.hop / fp.sample_rate,
                  "label": cats[int(dev.fired[f])], "confidence": float(dev.confidence[f])}
                 for f in np.flatnonzero(dev.fired >= 0)]
    py_list = [d.to_dict() for d in py_found]
    first, worst = compare_detections(dev_found, py_list, atol)
    if len(py_scores) != len(dev.scores):
        raise DeviceError(f"device ran {len(dev.scores)} frames, Python {len(py_scores)}")
    score_diff = float(np.abs(dev.scores - py_scores).max()) if len(py_scores) else 0.0
    mode = run_cfg.resolve_mode(ck)
    note = ("" if mode == "rolling" else
            f"the run's Python detector runs mode `{mode}`; the device runs one model step "
            "per frame on one never-reset state, so it is compared with "
            "`tinykws detect --mode rolling`")
    frame_ms = 1000.0 * frame_s
    report = StreamVerifyReport(
        ok=first is None, audio=str(audio_path), audio_seconds=len(audio) / fp.sample_rate,
        frames=len(dev.scores), float_abi=float_abi, toolchain=tc.version,
        detector=run_cfg.replace(mode="rolling").to_dict(),
        smooth_steps=run_cfg.smooth_steps(frame_ms),
        refractory_steps=run_cfg.refractory_steps(frame_ms),
        device_detections=dev_found, python_detections=py_list, first_difference=first,
        max_confidence_diff=worst, max_score_diff=score_diff,
        instructions=_instructions(dev.per_call), atol=atol, note=note,
        seconds=time.perf_counter() - t0)
    report.save(compiled_dir / "verify_stream.json")
    return report


def format_stream_report(r: StreamVerifyReport) -> str:
    """What `tinykws verify DIR --stream AUDIO` prints."""
    d = r.detector
    kw = "all but _unknown_/_silence_" if d.get("keywords") is None else ", ".join(d["keywords"])
    lines = [
        f"emulated Cortex-M4, float ABI {r.float_abi}, {r.toolchain}",
        f"stream {r.audio}: {r.audio_seconds:.1f} s, {r.frames} frames; detector: threshold "
        f"{d['threshold']:g}, smoothing {d['smoothing_ms']:g} ms ({r.smooth_steps} frames), "
        f"refractory {d['refractory_ms']:g} ms ({r.refractory_steps} frames), keywords: {kw}",
    ]
    if r.note:
        lines.append(f"note: {r.note}")
    lines.append(f"device detections ({len(r.device_detections)}):")
    lines += [f"  {x['time_s']:9.2f} s  {x['label']:<10} {x['confidence']:.3f}"
              for x in r.device_detections]
    verdict = "IDENTICAL" if r.ok else "DIFFERENT"
    lines.append(f"{r.compare}: {len(r.python_detections)} detections: {verdict} "
                 f"(time and label; max |confidence diff| {r.max_confidence_diff:.1e}, "
                 f"limit {r.atol:g}); max |score diff| over all frames {r.max_score_diff:.1e}")
    if r.first_difference is not None:
        f = r.first_difference

        def show(x: Optional[dict]) -> str:
            return "none" if x is None else f"{x['time_s']:.2f} s {x['label']} {x['confidence']:.4f}"

        lines.append(f"first difference (detection {f['index']}): device {show(f['device'])}, "
                     f"python {show(f['python'])}")
    ins = r.instructions
    parts = [f"{k} {ins[k]['mean']:,.0f}" for k in ENTRY_POINTS if k in ins]
    if parts:
        calls = ins.get("model", {}).get("calls", 0)
        lines.append(f"instructions per 10-ms frame: {' + '.join(parts)} = {ins['total']:,.0f} "
                     f"(mean over the first {calls} frames)")
    lines.append(("PASS" if r.ok else "FAIL") + f" in {r.seconds:.1f} s")
    return "\n".join(lines)
