"""Evaluate a trained run on labelled 1-s clips: accuracy, per-class P/R/F1, confusion matrix.

Four backends score the same log-mel features (or, for int8 and the device, the same audio):
`torch` (the checkpoint), `onnx` (`export/model.onnx`), `int8` (the integer featurizer and
model in Python, `tinykws.quant`, what the int8 build computes) and `device` (the emulated
Cortex-M4, any build). Float backends agree with each other to float precision; the int8
build equals its Python reference bit for bit (`tinykws verify`); tests check both.

Two input layouts are detected automatically:
- Speech Commands: word folders (+ `_background_noise_`, `testing_list.txt`); the split
  comes from the lists or from the hash rule, words outside the run's categories become
  `_unknown_` and `_silence_` clips are cropped from the background noise.
- Google-12 test layout (`speech_commands_test_set_v0.02`): one folder per class, including
  `_unknown_` and `_silence_`; file names may carry a word prefix and `.wav.wav`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Sequence

import numpy as np

from tinykws.data import speech_commands
from tinykws.data.audio import CLIP_SAMPLES, load_audio
from tinykws.data.speech_commands import BACKGROUND, GOOGLE12_WORDS, make_lists, read_list
from tinykws.errors import TinyKWSError
from tinykws.features import logmel_batch
from tinykws.labels import SILENCE, UNKNOWN
from tinykws.plots import pyplot, save_png
from tinykws.quant.calibrate import int_model_checkpoint, load_int_model
from tinykws.quant.features import logmel_q_batch
from tinykws.quant.model import scores_float
from tinykws.checkpoint import Checkpoint, load_model
from tinykws.records import EvalResult
from tinykws.run import RunDir, lists_json

if TYPE_CHECKING:
    from tinykws.features import FeatureParams

Backend = Literal["torch", "onnx", "int8", "device"]
BACKENDS = ("torch", "onnx", "int8", "device")


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class Clip:
    """One labelled 1-s example: a file, or in-memory audio (silence crops)."""

    name: str  # shown in reports, relative to the data folder
    label: str  # a category of the run
    path: Path | None = None
    audio: np.ndarray | None = field(default=None, compare=False, repr=False)  # [16000] int16


def detect_layout(data_dir: Path) -> Literal["google12", "speech_commands"]:
    """`google12` when the folder has `_unknown_`/`_silence_` class folders, else
    `speech_commands` when it has word folders with WAV files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TinyKWSError(f"{data_dir}: no such data folder")
    if (data_dir / UNKNOWN).is_dir() or (data_dir / SILENCE).is_dir():
        return "google12"
    if any(d.is_dir() and not d.name.startswith(".") and next(d.glob("*.wav"), None)
           for d in data_dir.iterdir()):
        return "speech_commands"
    raise TinyKWSError(
        f"{data_dir}: neither a Speech Commands layout (word folders of .wav files) nor a "
        "Google-12 test layout (yes/ no/ ... _unknown_/ _silence_/)"
    )


def map_label(word: str, categories: Sequence[str]) -> str | None:
    """A folder name -> a run category: itself, else `_unknown_` (None if the run has none)."""
    if word in categories:
        return word
    return UNKNOWN if UNKNOWN in categories else None


def google12_clips(data_dir: Path, categories: Sequence[str]) -> list[Clip]:
    """Every `*.wav` (also `*.wav.wav`, word-prefixed names) under each class folder."""
    data_dir = Path(data_dir)
    clips = []
    for d in sorted(p for p in data_dir.iterdir() if p.is_dir() and p.name != BACKGROUND):
        label = map_label(d.name, categories)
        if label is None:
            continue
        for f in sorted(d.rglob("*.wav")):  # `x.wav.wav` also ends in .wav
            clips.append(Clip(f"{d.name}/{f.relative_to(d)}", label, path=f))
    return clips


def task_of(categories: Sequence[str]) -> str:
    """The `make_lists` task string that gives these categories."""
    keywords = [c for c in categories if c not in (UNKNOWN, SILENCE)]
    if UNKNOWN not in categories:
        return "all"
    return "google12" if tuple(keywords) == GOOGLE12_WORDS else ",".join(keywords)


def _clips_from_lists(lists_dir: Path, split: str, data_dir: Path, categories: Sequence[str],
                      load_silence: bool) -> list[Clip]:
    out = []
    for ex in read_list(lists_dir, split, data_dir=data_dir):
        label = map_label(ex.label, categories)
        if label is None:
            continue
        p = Path(ex.path)
        base = lists_dir if ex.label == SILENCE else data_dir
        name = str(p.relative_to(base)) if p.is_relative_to(base) else p.name
        audio = load_audio(p, length=CLIP_SAMPLES)[0] if load_silence and ex.label == SILENCE else None
        out.append(Clip(name, label, path=None if audio is not None else p, audio=audio))
    return out


def run_data_dir(lists_dir: Path) -> Path:
    """The data folder a run's lists were made from (also after the run folder moved)."""
    return Path(speech_commands._recorded_data_dir(Path(lists_dir)))


def speech_commands_clips(
    data_dir: Path, categories: Sequence[str], split: str = "testing", run_dir: Path | None = None
) -> list[Clip]:
    """Clips of `split` from a Speech Commands folder, labelled with the run's categories.

    When `data_dir` is the folder the run's lists were made from, the run's own list is used.
    Otherwise lists are made exactly as `tinykws data lists` makes them (the folder's
    `testing_list.txt` or the hash rule; `_unknown_` sampled from the other words; silence
    crops from the held-out part of `_background_noise_`), in a temporary folder.
    """
    import tempfile

    data_dir = Path(data_dir).resolve()
    lists_dir = Path(run_dir) / "lists" if run_dir else None
    if lists_dir and lists_json(lists_dir).is_file():
        if run_data_dir(lists_dir).resolve() == data_dir:
            return _clips_from_lists(lists_dir, split, data_dir, categories, load_silence=False)
    with tempfile.TemporaryDirectory(prefix="tinykws-eval-") as tmp:
        make_lists(data_dir, task_of(categories), tmp)
        return _clips_from_lists(Path(tmp), split, data_dir, categories, load_silence=True)


def collect_clips(
    data_dir: Path, categories: Sequence[str], split: str = "testing", run_dir: Path | None = None
) -> tuple[str, list[Clip]]:
    """(layout, clips) for any supported data folder."""
    layout = detect_layout(data_dir)
    if layout == "google12":
        clips = google12_clips(data_dir, categories)
    else:
        clips = speech_commands_clips(data_dir, categories, split, run_dir)
    if not clips:
        raise TinyKWSError(f"{data_dir}: no clips for the run's categories {list(categories)}")
    return layout, clips


def clip_audio(clips: Sequence[Clip]) -> np.ndarray:
    """Load the clips as `[N, 16000]` int16 (padded/cropped to 1 s)."""
    out = np.zeros((len(clips), CLIP_SAMPLES), np.int16)
    for i, c in enumerate(clips):
        out[i] = c.audio if c.audio is not None else load_audio(c.path, length=CLIP_SAMPLES)[0]
    return out


# --------------------------------------------------------------------------- backends


def features_for(audio: np.ndarray, params: "FeatureParams") -> np.ndarray:
    """`[N, 16000]` int16 -> `[N, 98, 32]` float32 log-mel with the run's parameters."""
    return np.asarray(logmel_batch(audio, params), dtype=np.float32)


def torch_scores(model, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Softmax scores `[N, C]` of the PyTorch model on features `[N, T, F]`."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(features), batch):
            x = torch.from_numpy(np.ascontiguousarray(features[i : i + batch]))
            out.append(torch.softmax(model(x), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def onnx_scores(onnx_path: Path, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Scores `[N, C]` of `export/model.onnx` (input `features`, output `scores`)."""
    from tinykws.export import onnx_session  # optional: tinykws.export needs torch

    sess = onnx_session(onnx_path, threads=1)
    out = []
    for i in range(0, len(features), batch):
        (s,) = sess.run(["scores"], {"features": np.ascontiguousarray(features[i : i + batch])})
        out.append(s)
    return np.concatenate(out).astype(np.float32)


def onnx_model_path(run_dir: Path) -> Path:
    """`export/model.onnx`, exporting the run first when it is missing."""
    path = RunDir(run_dir).model_onnx
    if not path.is_file():
        from tinykws.export import export_run  # optional: needs torch and onnx

        export_run(run_dir)
    return path


def int8_scores(run_dir: Path, audio: np.ndarray, params: "FeatureParams") -> np.ndarray:
    """Scores `[N, C]` of the integer path in Python (what the int8 build computes, bit for
    bit): the integer featurizer's reference and RUN_DIR/quant/model_int.npz."""
    im = load_int_model(run_dir)
    q = logmel_q_batch(np.asarray(audio, dtype=np.int16), params)
    out = []
    for s in range(0, len(q), 256):
        out.append(scores_float(im.run(q[s : s + 256])[1][:, -1]))
    return np.concatenate(out) if out else np.zeros((0, im.num_classes), np.float32)


def device_scores(run_dir: Path, audio: np.ndarray, build: str = "hard") -> np.ndarray:
    """Scores `[N, C]` from the emulated Cortex-M4 running the generated featurizer + model
    on the raw int16 audio `[N, 16000]`; `build`: the `Build`'s name (hard, soft, int8, ...)."""
    try:
        from tinykws import device
    except ImportError:
        raise TinyKWSError(
            "the device backend needs tinykws.device (emulated Cortex-M4), which is not available"
        ) from None
    runner = getattr(device, "classify_clips", None)
    if runner is None:
        raise TinyKWSError("tinykws.device has no `classify_clips`; the device backend cannot run")
    return np.asarray(runner(run_dir, audio, build=build), dtype=np.float32)


# --------------------------------------------------------------------------- metrics
# (`EvalResult`, the record of `eval/evaluation*.json`, lives in tinykws.records)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """`[true, predicted]` counts."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def metrics_from_confusion(cm: np.ndarray, categories: Sequence[str]) -> tuple[float, dict, float]:
    """(accuracy, per_class, macro F1); precision/recall are 0 when undefined."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    pred, true = cm.sum(0), cm.sum(1)
    prec = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    rec = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    per_class = {
        c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
            "support": int(true[i])}
        for i, c in enumerate(categories)
    }
    present = true > 0
    macro = float(f1[present].mean()) if present.any() else 0.0
    acc = float(tp.sum() / cm.sum()) if cm.sum() else 0.0
    return acc, per_class, macro


def result_from_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, categories: Sequence[str], **extra
) -> EvalResult:
    cm = confusion_matrix(y_true, y_pred, len(categories))
    acc, per_class, macro = metrics_from_confusion(cm, categories)
    return EvalResult(accuracy=acc, per_class=per_class, confusion=cm.tolist(),
                      categories=list(categories), n=int(len(y_true)), macro_f1=macro, **extra)


def pretty_class(name: str) -> str:
    """`_unknown_` -> `unknown`, for plots."""
    return name.strip("_") or name


def plot_confusion(result: EvalResult, path: Path, title: str | None = None) -> Path:
    """Confusion matrix PNG: rows normalised to recall (colour), counts written in cells."""
    plt = pyplot()

    cm = np.asarray(result.confusion, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    names = [pretty_class(c) for c in result.categories]
    k = len(names)
    size = max(5.0, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title or f"{result.backend}: accuracy {result.accuracy:.1%} on {result.n} clips")
    fig.tight_layout()
    return save_png(fig, path)


# --------------------------------------------------------------------------- evaluate


def check_backend(backend: str, run_dir: Path) -> None:
    """Refuse a missing or damaged file of the backend (the integer model, the ONNX graph)
    before any clip is read: one error line, not one after a log of the work."""
    if backend == "int8":
        load_int_model(run_dir)
    elif backend == "onnx":
        from tinykws.export import onnx_session  # optional: tinykws.export needs torch

        onnx_session(onnx_model_path(run_dir), threads=1)


def reference_checkpoint(backend: str, run_dir: Path) -> Path:
    """The checkpoint whose categories and feature parameters `backend` is scored with,
    after `check_backend`: for int8 the one the integer model was quantized from
    (`quant/qat.pt` when quantize kept fine-tuning), else the run's."""
    ckpt = RunDir(run_dir).checkpoint()  # a run without one: that is the error to report
    check_backend(backend, run_dir)
    if backend == "int8":
        return int_model_checkpoint(run_dir)
    return ckpt


def backend_scores(
    backend: str, run_dir: Path, audio: np.ndarray, model=None,
    checkpoint: "Checkpoint | None" = None, build: str = "hard",
) -> np.ndarray:
    """Scores `[N, C]` of one backend on 1-s int16 clips `[N, 16000]` (`build`: which
    compiled build the device backend runs)."""
    if backend not in BACKENDS:
        raise TinyKWSError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "device":
        return device_scores(run_dir, audio, build=build)
    if model is None or checkpoint is None:
        model, checkpoint = load_model(reference_checkpoint(backend, run_dir))
    if backend == "int8":
        return int8_scores(run_dir, audio, checkpoint.feature_params)
    feats = features_for(audio, checkpoint.feature_params)
    if backend == "torch":
        return torch_scores(model, feats)
    return onnx_scores(onnx_model_path(run_dir), feats)


def evaluate(
    run_dir: Path | str,
    data_dir: Path | str,
    backend: str = "torch",
    split: str = "testing",
    max_clips: int | None = None,
    write: bool = True,
    log: Callable[[str], None] | None = None,
    build: str = "hard",
) -> EvalResult:
    """Classify every clip of `data_dir` (see the module docstring for layouts) with the
    run's model on `backend`; writes `eval/evaluation.json` (+ `eval/confusion.png`); the
    integer path (backend int8, or device with an int8 build) writes
    `eval/evaluation_int8.json` (+ `confusion_int8.png`), so both can be reported; a
    partial one (`max_clips` below the clips there are) `..._partial.json` (+ .png).

    `max_clips` takes an evenly spaced subset (for the slow device backend). `build`: the
    compiled build the device backend runs (hard, soft, int8, ...: RUN_DIR/device/<build>).
    """
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    if max_clips is not None and max_clips < 1:
        raise TinyKWSError(f"--max-clips must be >= 1, not {max_clips}")
    model, ck = load_model(reference_checkpoint(backend, run_dir))
    categories = list(ck.categories)
    layout, clips = collect_clips(data_dir, categories, split, run_dir)
    partial_of = None
    if max_clips is not None and len(clips) > max_clips:
        keep = np.linspace(0, len(clips) - 1, max_clips).round().astype(int)
        partial_of, clips = len(clips), [clips[i] for i in np.unique(keep)]
    if log:
        log(f"{len(clips)} clips ({layout} layout) from {data_dir}, backend {backend}")
    audio = clip_audio(clips)
    scores = backend_scores(backend, run_dir, audio, model, ck, build=build)
    y_true = np.array([categories.index(c.label) for c in clips])
    result = result_from_predictions(y_true, scores.argmax(1), categories, backend=backend,
                                     layout=layout, data_dir=str(data_dir))
    result.partial_of = partial_of
    if write:
        json_path, png_path = evaluation_files(run_dir, backend, build, partial=partial_of is not None)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        result.save(json_path)
        plot_confusion(result, png_path)
    return result


def evaluation_files(run_dir: Path | str, backend: str, build: str = "hard",
                     partial: bool = False) -> tuple[Path, Path]:
    """(evaluation JSON, confusion PNG) that `evaluate` writes for `backend` / `build`: the
    integer path (backend int8, or device with an int8 build) has its own pair, `_int8`.
    A partial evaluation (`--max-clips` below the clips there are) has its own, `_partial`:
    a 2-clip check must not replace the full result the report shows."""
    integer = backend == "int8" or (backend == "device" and build.startswith("int8"))
    suffix = ("_int8" if integer else "") + ("_partial" if partial else "")
    rd = RunDir(run_dir)
    return rd.evaluation(suffix), rd.confusion_plot(suffix)
