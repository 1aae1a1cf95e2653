"""`tinykws verify DIR --stream AUDIO`: the whole keyword spotter on the emulated Cortex-M4.

A recording goes block by block through the generated featurizer, model and detector
(`mfcc_Filter` -> `completemodel_Predict` -> `detector_Process`, one never-reset state:
mode `rolling`, what firmware runs) and, on the host, through the Python reference of
the same spotter with the same detector settings (the run's `detector.json`):

- a float build: `tinykws detect`'s Python detector (`Detector`, mode rolling); the
  detection lists must be identical (same frames, hence times, and labels; confidences
  equal to float precision);
- an integer (int8) build runs the all-integer firmware loop over the whole recording:
  int16 samples -> `mfcc_FilterInt16` -> `completemodel_PredictQ` (Q7.8 in, Q15 out) ->
  `detector_ProcessQ` (Q15 confidence), what FPU-less firmware runs. Its reference is the
  bit-exact integer reference of `tinykws.quant` (integer featurizer, then the integer
  model one step per frame on one state) and `IntTrigger` (the integer detector's Python
  definition, exact integer arithmetic like its C) on its Q15 scores. Every feature and
  score must be equal, and the detections identical, Q15 confidences too. The float
  interface (`mfcc_Filter` -> `completemodel_Predict` -> `detector_Process`, what
  docs/examples/kws_loop.c calls) runs on the counted blocks only, checked against the
  same reference there (`float_interface`). Beside it, measured only: the float model the
  integer one was quantized from, run as `tinykws detect --mode rolling`, and how many of
  its detections the int8 spotter also makes.

The recording is read, run and compared in pieces of `CHUNK_BLOCKS` blocks, with the
states of both sides carried from piece to piece, so memory stays bounded however long
it is (`_Pieces`, `_Tally`, `reference.IntStreamReference`).

Instructions per 10-ms frame are counted on the first blocks, split into featurizer,
model and detector (int8: the integer loop's, the headline figure, and the float
interface's), with the soft-float helpers (`__aeabi_f*`, ...) each part called.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Optional

import numpy as np

from tinykws.data.audio import stream_audio
from tinykws.detector_config import DetectorConfig, load_detector, load_detector_config
from tinykws.detect import Detector, blocks
from tinykws.device.emulator import soft_float_calls
from tinykws.device.errors import DeviceError
from tinykws.device.harness import KWSDevice
from tinykws.device.image import build_image
from tinykws.device.reference import IntStreamReference, int_reference, torch_reference
from tinykws.device.verify import (
    check_build, check_int_build_current, detect_float_abi, detect_precision,
)
from tinykws.progress import progress_bar
from tinykws.quant.calibrate import int_model_checkpoint, load_int_model
from tinykws.records import JSONRecord
from tinykws.run import DETECTOR_FILE, VERIFY_STREAM_REPORT
from tinykws.toolchain import Toolchain, check_float_abi, find_toolchain

# Blocks counted with the instruction hook (~1 s per 5-10 M instructions): 3 s of audio in
# hard float; soft float (~6 M instructions a frame) a handful, as plain `verify` does.
# int8 (integer featurizer and model, any ABI): INT8_COUNT_BLOCKS.
STREAM_COUNT_BLOCKS = {"hard": 300, "softfp": 300, "soft": 6}
INT8_COUNT_BLOCKS = 100  # 1 s of audio: ~0.115 M instructions a frame, ~2 s with the hook
CHUNK_BLOCKS = 2000  # blocks per harness call (20 s of audio; the mailbox holds ~5000)
CONFIDENCE_ATOL = 1e-4  # device vs Python smoothed score at a detection (float32 vs torch)
# int8: both sides sum the same Q15 scores in integers and divide once in float32 (IntTrigger,
# tkws_qdetect): the confidences are equal bit for bit.
INT8_CONFIDENCE_ATOL = 0.0
MATCH_WINDOW_S = 0.5  # int8 vs float detections: same label at most this far apart
INT8_COMPARE = "integer reference (tinykws.quant featurizer + model, IntTrigger)"
ENTRY_POINTS = {"featurizer": "mfcc_Filter", "model": "completemodel_Predict",
                "detector": "detector_Process"}
# the all-integer loop of an int8 build (KWSDevice.run_clip(integer=True))
INT_ENTRY_POINTS = {"featurizer": "mfcc_FilterInt16", "model": "completemodel_PredictQ",
                    "detector": "detector_ProcessQ"}


@dataclass
class StreamVerifyReport(JSONRecord):
    """What `tinykws verify --stream` found (`device/<build>/verify_stream.json`)."""

    REMEDY: ClassVar[str] = "run `tinykws verify --stream` on the build again"

    ok: bool  # detection lists identical (frame, label; confidence within `atol`); int8:
    # and every feature and score equal
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
    # (int8: the integer loop's); `entry_points` names them, `soft_float_calls` the
    # `__aeabi_f*`-style helpers they called
    atol: float = CONFIDENCE_ATOL
    note: str = ""
    seconds: float = 0.0
    compare: str = "tinykws detect --mode rolling"
    precision: str = "float"  # float | int8 (integer featurizer and model)
    # int8: every feature and score must equal the integer reference's (ok includes it)
    max_feature_diff: Optional[float] = None
    first_mismatch: Optional[dict[str, Any]] = None  # first frame whose scores/features differ
    # int8: the float model it was quantized from, as `tinykws detect --mode rolling` (measured)
    float_model: Optional[dict[str, Any]] = None
    # int8: the float interface (mfcc_Filter -> completemodel_Predict -> detector_Process)
    # over the counted blocks: frames, ok (features, scores, detections equal the integer
    # reference's there), first_mismatch / first_difference, instructions
    float_interface: Optional[dict[str, Any]] = None


class _Pieces:
    """A recording read in pieces of whole blocks (`stream_audio`: never whole, so memory
    does not grow with its length): first `first` blocks (when > 0), then `size` blocks
    each; the last partial block is dropped, as `tinykws detect` drops it. `samples`: how
    many were read (the partial block included)."""

    def __init__(self, path: Path, hop: int, first: int, size: int) -> None:
        self.path, self.hop, self.first, self.size = path, hop, first, size
        self.samples = 0

    def __iter__(self):
        want = (self.first if self.first > 0 else self.size) * self.hop
        buf, n = [], 0
        for chunk in stream_audio(self.path):
            self.samples += len(chunk)
            buf.append(chunk)
            n += len(chunk)
            while n >= want:
                x = np.concatenate(buf)
                yield x[:want]
                buf, n = [x[want:]], n - want
                want = self.size * self.hop
        x = np.concatenate(buf) if buf else np.zeros(0, np.int16)
        if len(x) >= self.hop:
            yield x[: len(x) - len(x) % self.hop]

    def seconds(self, sample_rate: int) -> float:
        return self.samples / sample_rate


def _blocks_in(path: Path, fp) -> Optional[int]:
    """About how many blocks the recording at `path` holds (for the progress bar)."""
    import soundfile as sf

    try:
        return int(sf.info(str(path)).duration * fp.sample_rate) // fp.hop
    except (RuntimeError, OSError, ValueError, TypeError):
        return None


class _FloatReference:
    """`tinykws detect`'s Python detector (`Detector`, mode rolling) fed block by block, as
    `detect_file` runs it, a piece at a time: `feed(pcm) -> (scores [n, C], detections)`.
    `run_dir`: a run folder or a checkpoint file."""

    def __init__(self, run_dir: Path, config) -> None:
        self.det = Detector(run_dir, config=config.replace(mode="rolling"))

    def feed(self, pcm: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        scores, found = [], []
        for block in blocks(pcm, self.det.params.hop):
            r = self.det.scores(block)
            if r is None:
                continue
            scores.append(r[1])
            d = self.det.trigger(*r)
            if d:
                found.append(d.to_dict())
        if not scores:  # warm-up blocks only
            return np.zeros((0, len(self.det.categories)), np.float64), found
        return np.array(scores, np.float64), found


@dataclass
class _Tally:
    """Device vs reference, piece by piece: running maxima, the first mismatch and the
    detection lists (the only things kept from a whole recording)."""

    frames: int = 0
    max_score_diff: float = 0.0
    max_feature_diff: float = 0.0
    first_mismatch: Optional[dict[str, Any]] = None  # int8: first frame whose scores/features differ
    device: list[dict] = field(default_factory=list)
    python: list[dict] = field(default_factory=list)
    float_model: list[dict] = field(default_factory=list)  # int8: the float model's detections
    float_model_score_diff: float = 0.0

    def add(self, run, first_frame: int, scores: np.ndarray, found: list[dict],
            feats: Optional[np.ndarray], fp, categories: list[str], warm: int) -> None:
        """One piece: the device's `run` (features with the warm-up when `warm`) against the
        reference's `scores`, detections `found` and (int8) `feats`."""
        if len(scores) != len(run.scores):
            raise DeviceError(f"device ran {len(run.scores)} frames, Python {len(scores)}")
        if len(scores):
            self.max_score_diff = max(self.max_score_diff,
                                      float(np.abs(run.scores - scores).max()))
        self.device += _device_detections(run, first_frame, fp, categories)
        self.python += found
        if feats is not None:
            mismatch, worst = _first_mismatch(run.features[warm:], run.scores, feats, scores,
                                              first_frame)
            self.max_feature_diff = max(self.max_feature_diff, worst)
            self.first_mismatch = self.first_mismatch or mismatch
        self.frames += len(scores)


def _device_detections(run, first_frame: int, fp, categories: list[str]) -> list[dict]:
    """The frames where the device's detector fired (`run.fired`, frame `first_frame` +
    i), as detection dicts."""
    return [{"time_s": _frame_time(first_frame + f, fp), "label": categories[int(run.fired[f])],
             "confidence": float(run.confidence[f])} for f in np.flatnonzero(run.fired >= 0)]


def _float_interface_check(device: KWSDevice, pcm: np.ndarray, fp, categories: list[str],
                           reference) -> dict[str, Any]:
    """An int8 build's float interface (`mfcc_Filter` -> `completemodel_Predict` ->
    `detector_Process`, what kws_loop.c calls) over the recording's first blocks `pcm`
    from a reset, counted: its features, scores and detections must equal those of
    `reference` (a fresh `IntStreamReference`) there."""
    run = device.run_clip(pcm, count=True, reset=True, detect=True)
    ref = reference.feed(pcm)
    frames = len(run.scores)
    if frames != len(ref.scores):
        raise DeviceError(f"device ran {frames} frames, Python {len(ref.scores)}")
    mismatch, _ = _first_mismatch(run.features[device.shape.warmup_blocks:], run.scores,
                                  ref.features, ref.scores, 0)
    first, _ = compare_detections(_device_detections(run, 0, fp, categories),
                                  ref.detections_float, 0.0)
    return {"entry_points": dict(ENTRY_POINTS), "frames": frames,
            "ok": mismatch is None and first is None, "first_mismatch": mismatch,
            "first_difference": first, "detections": int((run.fired >= 0).sum()),
            "instructions": _instructions(run.counts.per_call, ENTRY_POINTS,
                                          run.counts.entered)}


def _frame_time(frame: int, fp) -> float:
    """Seconds from the stream start when model step `frame` completed: samples fed / rate,
    as `Detector` counts them (warm-up blocks included)."""
    return (int(frame) + fp.first_block) * fp.hop / fp.sample_rate


def _first_mismatch(dev_feats: np.ndarray, dev_scores: np.ndarray, feats: np.ndarray,
                    scores: np.ndarray, first_frame: int = 0
                    ) -> tuple[Optional[dict[str, Any]], float]:
    """(the first frame whose scores or features differ at all, or None; max |feature diff|).
    Frames are numbered from `first_frame`."""
    if dev_feats.shape != feats.shape:
        raise DeviceError(f"device gave features {dev_feats.shape}, the integer reference {feats.shape}")
    fdiff = np.abs(dev_feats - feats).max(axis=1) if len(feats) else np.zeros(0)  # [T]
    bad = ~(np.abs(dev_scores - scores) == 0) | ~(fdiff == 0)[:, None]  # NaN counts as bad
    worst = float(fdiff.max()) if fdiff.size else 0.0
    if not bad.any():
        return None, worst
    t, c = np.argwhere(bad)[0]
    return {"frame": first_frame + int(t), "class_index": int(c),
            "device": float(dev_scores[t, c]), "reference": float(scores[t, c]),
            "feature_max_diff_at_frame": float(fdiff[t])}, worst


def match_detections(a: list[dict], b: list[dict], window_s: float = MATCH_WINDOW_S
                     ) -> tuple[int, int]:
    """(pairs with the same label at most `window_s` apart, pairs at the same time): each
    detection of `b` pairs with at most one of `a`, the earliest unused one, in time order."""
    used = [False] * len(b)
    near = same = 0
    for d in a:
        for j, e in enumerate(b):
            if not used[j] and e["label"] == d["label"] and abs(e["time_s"] - d["time_s"]) <= window_s:
                used[j] = True
                near += 1
                same += e["time_s"] == d["time_s"]
                break
    return near, same


def _float_model_comparison(checkpoint: Path, tally: _Tally) -> dict[str, Any]:
    """The float model an int8 build was quantized from, run as `tinykws detect --mode
    rolling` on the same audio: its detections and how many the int8 spotter also made."""
    near, same = match_detections(tally.python, tally.float_model)
    return {"checkpoint": str(checkpoint), "compare": "tinykws detect --mode rolling",
            "detections": tally.float_model, "matched": near, "same_frame": same,
            "match_window_s": MATCH_WINDOW_S, "max_score_diff": tally.float_model_score_diff}


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


def _instructions(per_call: dict[str, list[int]], entry_points: dict[str, str] = ENTRY_POINTS,
                  entered: Optional[dict[str, set[str]]] = None) -> dict[str, Any]:
    """Instructions per call of each of `entry_points` (featurizer / model / detector ->
    function), their total (of the means) and `max_total` (of the maxima: a bound on the
    costliest frame, which a frame-stride model's step frames set); `soft_float_calls`: the
    soft-float helpers they called."""
    out: dict[str, Any] = {"method": "unicorn basic-block hook (as `tinykws verify`); per "
                                     "call, callees included",
                           "entry_points": dict(entry_points)}
    total, worst = 0.0, 0
    for key, fn in entry_points.items():
        v = per_call.get(fn, [])
        if v:
            out[key] = {"mean": float(np.mean(v)), "max": int(max(v)), "calls": len(v)}
            total += float(np.mean(v))
            worst += int(max(v))
    out["total"], out["max_total"] = total, worst
    if entered is not None:
        out["soft_float_calls"] = soft_float_calls(
            set().union(*(entered.get(fn, set()) for fn in entry_points.values())))
    return out


def _compiled_detector(compiled_dir: Path):
    """The DetectorConfig the compiled detector was generated from (DIR/detector.json)."""
    if not (compiled_dir / "detector.S").is_file() or not (compiled_dir / DETECTOR_FILE).is_file():
        raise DeviceError(f"{compiled_dir} has no compiled detector (detector.S, detector.json): "
                          "run `tinykws compile RUN_DIR` again")
    return load_detector(compiled_dir)[0]


def _check_inputs(compiled_dir: Path, audio_path: Path, run_dir: Path | str | None
                  ) -> tuple[Path, str, DetectorConfig]:
    """(run folder, precision, the run's detector) of a `verify --stream`, refused with one
    line when the build is missing, unwritable, of another detector, or the run or the
    recording is missing."""
    run_dir = check_build(compiled_dir, run_dir)
    precision = detect_precision(compiled_dir)
    compiled_cfg = _compiled_detector(compiled_dir)
    run_cfg = load_detector_config(run_dir).first_stage()  # the C has no second look (yet)
    if compiled_cfg.replace(mode="auto") != run_cfg.replace(mode="auto"):
        raise DeviceError(f"{compiled_dir} was compiled with another detector than "
                          f"{run_dir}/detector.json: run `tinykws compile RUN_DIR` again")
    if not audio_path.is_file():
        what = "is a folder, not an audio file" if audio_path.is_dir() else "no such file"
        raise DeviceError(f"--stream {audio_path}: {what}")
    return run_dir, precision, run_cfg


def _run_pieces(device: KWSDevice, pieces: Iterable[np.ndarray], reference: Any,
                float_ref: Optional["_FloatReference"], n_count: int, warm: int, fp: Any,
                cats: list[str], advance: Callable[[int], None]) -> tuple["_Tally", Any, Any]:
    """The recording's pieces through the device and its reference (an int8 build: the
    integer reference, with the float model `float_ref` measured beside it); returns the
    tally, the first piece's instruction counts and (int8) the piece the float interface is
    checked on afterwards."""
    int8 = float_ref is not None
    tally, counts, prefix = _Tally(), None, None
    for i, pcm in enumerate(pieces):
        counted = i == 0 and n_count > 0
        run = device.run_clip(pcm, count=counted, reset=i == 0, detect=True, integer=int8)
        counts = run.counts if counted else counts
        w = warm if i == 0 else 0
        if int8:
            ref = reference.feed(pcm)
            tally.add(run, ref.first_frame, ref.scores, ref.detections, ref.features, fp, cats, w)
            f_scores, f_found = float_ref.feed(pcm)
            tally.float_model += f_found
            if len(f_scores):
                tally.float_model_score_diff = max(
                    tally.float_model_score_diff,
                    float(np.abs(f_scores - ref.scores[: len(f_scores)]).max()))
            if counted:  # the float interface on these blocks, after the stream
                prefix = pcm  # (it resets the default states the integer loop runs on)
        else:
            scores, found = reference.feed(pcm)
            tally.add(run, tally.frames, scores, found, None, fp, cats, w)
        advance(len(pcm) // fp.hop)
    return tally, counts, prefix


def verify_stream(
    compiled_dir: Path | str,
    audio_path: Path | str,
    run_dir: Path | str | None = None,
    float_abi: Optional[str] = None,
    toolchain: Optional[Toolchain] = None,
    count_blocks: Optional[int] = None,
    progress: bool = True,
    atol: Optional[float] = None,
    chunk_blocks: int = CHUNK_BLOCKS,
) -> StreamVerifyReport:
    """Run a recording through featurizer + model + detector on the emulated Cortex-M4 and
    through its Python reference, compare the detections, count instructions.

    The reference is `tinykws detect` (mode rolling) for a float build; for an integer
    (int8) build the integer reference of `tinykws.quant` (features and scores must be
    bit-exact too), with the float model it was quantized from measured beside it.
    `atol`: confidence tolerance (default CONFIDENCE_ATOL, int8 INT8_CONFIDENCE_ATOL).
    The recording is read, run and compared `chunk_blocks` blocks at a time (the first
    `count_blocks` counted, on their own), the states carried on both sides: memory does
    not grow with its length, only the detection lists do.

    Writes `compiled_dir/verify_stream.json`. The compiled detector must have been made
    from the run's current detector (`detector.json`): else a DeviceError says to recompile.
    """
    t0 = time.perf_counter()
    compiled_dir, audio_path = Path(compiled_dir), Path(audio_path)
    run_dir, precision, run_cfg = _check_inputs(compiled_dir, audio_path, run_dir)
    # the models first: a missing or damaged one fails before any build
    int8 = precision == "int8"
    float_source, float_ref = None, None
    if int8:  # the integer model and the float checkpoint it was quantized from
        float_source = int_model_checkpoint(run_dir)
        _, shape, fp, ck = int_reference(run_dir)  # a damaged model fails here first
        check_int_build_current(compiled_dir, run_dir)
    else:
        _, shape, fp, ck = torch_reference(run_dir)
    cfg = run_cfg.replace(mode="rolling")
    atol = (INT8_CONFIDENCE_ATOL if int8 else CONFIDENCE_ATOL) if atol is None else atol
    float_abi = check_float_abi(float_abi or detect_float_abi(compiled_dir))
    default_n = INT8_COUNT_BLOCKS if int8 else STREAM_COUNT_BLOCKS[float_abi]
    n_count = default_n if count_blocks is None else count_blocks
    warm, cats = shape.warmup_blocks, list(ck.categories)
    pieces = _Pieces(audio_path, fp.hop, n_count, chunk_blocks)
    it = iter(pieces)
    first_piece = next(it, None)  # an unreadable recording fails before the build

    tc = toolchain or find_toolchain()
    sources = [compiled_dir / f"{m}.S" for m in ("featurizer", "model", "detector")]
    elf = build_image(sources, compiled_dir / "build" / "stream", float_abi, tc)
    device = KWSDevice(elf, shape)

    def time_of(frame: int) -> float:
        return _frame_time(frame, fp)

    if int8:
        im = load_int_model(run_dir)
        reference = IntStreamReference(im, fp, cfg, cats, time_of)
        float_ref = _FloatReference(float_source, run_cfg)  # measured beside it
    else:
        reference = _FloatReference(run_dir, run_cfg)
    float_interface = None
    todo = it if first_piece is None else itertools.chain([first_piece], it)
    bar = progress_bar(transient=True)
    bar.disable = not progress
    with bar:
        task = bar.add_task(f"emulated Cortex-M4 ({'integer ' * int8}stream)",
                            total=_blocks_in(audio_path, fp))
        tally, counts, prefix = _run_pieces(device, todo, reference, float_ref, n_count, warm, fp,
                                            cats, lambda n: bar.advance(task, n))
    if tally.frames == 0:
        raise DeviceError(f"the recording is shorter than {warm + 1} blocks of {fp.hop} samples")
    if int8 and prefix is not None and len(prefix) > warm * fp.hop:
        float_interface = _float_interface_check(device, prefix, fp, cats,
                                                 IntStreamReference(im, fp, cfg, cats, time_of))
    first, worst = compare_detections(tally.device, tally.python, atol)
    mismatch = tally.first_mismatch
    fdiff = tally.max_feature_diff if int8 else None
    float_model = _float_model_comparison(float_source, tally) if int8 else None
    note = _mode_note(run_cfg.resolve_mode(ck))
    frame_ms = fp.frame_ms
    report = StreamVerifyReport(
        ok=first is None and mismatch is None and (float_interface or {"ok": True})["ok"],
        audio=str(audio_path),
        audio_seconds=pieces.seconds(fp.sample_rate),
        frames=tally.frames, float_abi=float_abi, toolchain=tc.version,
        detector=cfg.to_dict(), smooth_steps=run_cfg.smooth_steps(frame_ms),
        refractory_steps=run_cfg.refractory_steps(frame_ms),
        device_detections=tally.device, python_detections=tally.python,
        first_difference=first, max_confidence_diff=worst, max_score_diff=tally.max_score_diff,
        instructions=_instructions(counts.per_call if counts else {},
                                   INT_ENTRY_POINTS if int8 else ENTRY_POINTS,
                                   counts.entered if counts else None),
        atol=atol, note=note,
        seconds=time.perf_counter() - t0,
        compare=INT8_COMPARE if int8 else "tinykws detect --mode rolling",
        precision=precision, max_feature_diff=fdiff, first_mismatch=mismatch,
        float_model=float_model, float_interface=float_interface)
    report.save(compiled_dir / VERIFY_STREAM_REPORT)
    return report


def _mode_note(mode: str) -> str:
    """Why the device is compared with `detect --mode rolling` when the run's Python
    detector runs another mode ("" when it runs rolling)."""
    if mode == "rolling":
        return ""
    return (f"the run's Python detector runs mode `{mode}`; the device runs one model step "
            "per frame on one never-reset state, so it is compared with "
            "`tinykws detect --mode rolling`")


def _instruction_line(ins: dict[str, Any], what: str = "") -> str:
    """'instructions per 10-ms frame[, what (entry points)]: a + b + c = total (...)'."""
    parts = [f"{k} {ins[k]['mean']:,.0f}" for k in ENTRY_POINTS if k in ins]
    if not parts:
        return "instructions: not counted"
    names = " -> ".join(ins.get("entry_points", ENTRY_POINTS).values())
    calls = ins.get("model", {}).get("calls", 0)
    helpers = ins.get("soft_float_calls")
    soft = ("" if helpers is None else "; soft-float helpers called: " +
            (", ".join(helpers) if helpers else "none"))
    head = f", {what} ({names})" if what else ""
    worst = f", at most {ins['max_total']:,.0f}" if "max_total" in ins else ""
    return (f"instructions per 10-ms frame{head}: {' + '.join(parts)} = {ins['total']:,.0f} "
            f"(mean over the first {calls} frames{worst}{soft})")


def format_stream_report(r: StreamVerifyReport) -> str:
    """What `tinykws verify DIR --stream AUDIO` prints."""
    d = r.detector
    kw = "all but _unknown_/_silence_" if d.get("keywords") is None else ", ".join(d["keywords"])
    build = "integer (int8) build, " if r.precision == "int8" else ""
    lines = [
        f"emulated Cortex-M4, {build}float ABI {r.float_abi}, {r.toolchain}",
        f"stream {r.audio}: {r.audio_seconds:.1f} s, {r.frames} frames; detector: threshold "
        f"{d['threshold']:g}, smoothing {d['smoothing_ms']:g} ms ({r.smooth_steps} frames), "
        f"refractory {d['refractory_ms']:g} ms ({r.refractory_steps} frames), keywords: {kw}",
    ]
    if r.note:
        lines.append(f"note: {r.note}")
    lines.append(f"device detections ({len(r.device_detections)}):")
    lines += [f"  {x['time_s']:9.2f} s  {x['label']:<10} {x['confidence']:.3f}"
              for x in r.device_detections]
    same = r.first_difference is None
    lines.append(f"{r.compare}: {len(r.python_detections)} detections: "
                 f"{'IDENTICAL' if same else 'DIFFERENT'} "
                 f"(time and label; max |confidence diff| {r.max_confidence_diff:.1e}, "
                 f"limit {r.atol:g}); max |score diff| over all frames {r.max_score_diff:.1e}")
    if r.first_difference is not None:
        f = r.first_difference

        def show(x: Optional[dict]) -> str:
            return "none" if x is None else f"{x['time_s']:.2f} s {x['label']} {x['confidence']:.4f}"

        lines.append(f"first difference (detection {f['index']}): device {show(f['device'])}, "
                     f"python {show(f['python'])}")
    if r.precision == "int8":
        if r.first_mismatch is None:
            lines.append(f"features and scores: bit for bit equal over all {r.frames} frames")
        else:
            m = r.first_mismatch
            lines.append(
                f"features and scores DIFFER: first at frame {m['frame']}, class "
                f"{m['class_index']}: device {m['device']:.6g} vs reference {m['reference']:.6g}; "
                f"featurizer |diff| at that frame {m['feature_max_diff_at_frame']:.3g} "
                f"(max over all frames {r.max_feature_diff:.3g})")
    if r.float_model is not None:
        fm = r.float_model
        lines.append(
            f"vs the float model ({fm['checkpoint']}, {fm['compare']}; measured, not checked): "
            f"{len(fm['detections'])} detections, {fm['matched']} of them made by the int8 "
            f"spotter too (same label within {fm['match_window_s']:g} s; {fm['same_frame']} at "
            f"the same frame); max |score diff| {fm['max_score_diff']:.3g}")
    if r.precision == "int8":
        lines.append(_instruction_line(r.instructions, "integer loop"))
        fi = r.float_interface
        if fi is not None:
            verdict = "equal" if fi["ok"] else "DIFFERENT"
            lines.append(_instruction_line(fi["instructions"], "float interface") +
                         f"; its features, scores, detections ({fi['detections']}): {verdict}")
            bad = fi["first_mismatch"] or fi["first_difference"]
            if bad:
                lines.append(f"float interface: first difference {bad}")
    else:
        lines.append(_instruction_line(r.instructions))
    lines.append(("PASS" if r.ok else "FAIL") + f" in {r.seconds:.1f} s")
    return "\n".join(lines)
