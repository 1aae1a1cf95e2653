"""`tinykws quantize RUN`: calibrate on the training features, quantize, measure.

Writes `RUN_DIR/quant/`:
- `model_int.npz`: the `IntModel` (int8 weights, multipliers, formats) that
  `tinykws compile --precision int8` turns into C; its `info["checkpoint"]` names the float
  checkpoint it was quantized from (`int_model_checkpoint`: what int8 builds are compared
  with);
- `qat.pt`: the fine-tuned float model, when quantization-aware fine-tuning was kept;
- `quant.json`: calibration figures and the accuracy of the float and the integer model on
  the validation and testing features (argmax agreement, clip accuracy, max score error),
  for post-training quantization and, with `qat_epochs > 0`, after quantization-aware
  fine-tuning (`tinykws.quant.qat`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.quant.measure import (  # noqa: F401 (the measures, re-exported)
    CALIB_CLIPS, Agreement, calibration_set, compare, float_scores, hidden_ranges, int_scores,
    layer_ranges,
)
from tinykws.quant.model import IntModel, quantize_model
from tinykws.checkpoint import Checkpoint, load_model, save_checkpoint
from tinykws.records import QuantMeasure, QuantReport
from tinykws.run import (
    RunDir, check_split_made_like, file_sha256, read_features, split_file,
)



def _load(path: Path, meta: Any) -> tuple[np.ndarray, np.ndarray]:
    """features [N, T, F] float32, labels [N] int64 of one split (`tinykws.run.read_features`).

    Refuses a split whose categories or feature parameters are not the checkpoint's
    (`meta`): calibrating on features made another way would pick wrong scales silently."""
    fs = read_features(path)
    check_split_made_like(fs, meta.categories, meta.feature_params, "the checkpoint")
    return fs.features, fs.labels


def quantize_run(run_dir: Path | str, qat_epochs: int = 0, per_row: bool = True,
                 checkpoint: Optional[Path | str] = None, seed: int = 0) -> QuantReport:
    """The run's checkpoint -> RUN_DIR/quant/{model_int.npz, quant.json}; returns the record.

    Post-training quantization always; with `qat_epochs > 0` also quantization-aware
    fine-tuning, and the better of the two on the validation features is kept."""
    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else RunDir(run_dir).checkpoint()
    model, meta = load_model(ckpt)
    categories = list(meta.categories)
    feats = RunDir(run_dir).features
    tr_x, tr_y = _load(split_file(feats, "training"), meta)
    va_x, va_y = _load(split_file(feats, "validation"), meta)
    te = split_file(feats, "testing")
    te_x, te_y = _load(te, meta) if te.is_file() else (None, None)

    def measure(m: Any, epochs: Optional[int] = None) -> tuple[IntModel, QuantMeasure]:
        ranges, inner = layer_ranges(m, calibration_set(tr_x, seed=seed))
        im = quantize_model(m, categories, ranges, per_row=per_row, rank_max_abs=inner)
        res = QuantMeasure(h_max_abs=ranges, h_frac=[layer.h_frac for layer in im.layers],
                           validation=compare(m, im, va_x, va_y), epochs=epochs)
        if te_x is not None:
            res.testing = compare(m, im, te_x, te_y)
        return im, res

    im, ptq = measure(model)
    report = QuantReport(checkpoint=str(ckpt), per_row=per_row, ptq=ptq,
                         calibration_clips=int(min(len(tr_x), CALIB_CLIPS)))
    rd = RunDir(run_dir)
    chosen, source = "ptq", ckpt
    if qat_epochs > 0:
        from tinykws.quant.qat import finetune  # optional: needs torch (the `train` extra)

        tuned = finetune(model, tr_x, tr_y, va_x, va_y, epochs=qat_epochs, per_row=per_row, seed=seed)
        im_qat, report.qat = measure(tuned, epochs=qat_epochs)
        if report.qat.validation.int_accuracy > ptq.validation.int_accuracy:
            im, chosen, source = im_qat, "qat", rd.qat_checkpoint
            _save_checkpoint(tuned, meta, source)
    report.chosen = chosen
    report.source_checkpoint = im.info["checkpoint"] = _run_relative(source, run_dir)
    im.info["chosen"] = chosen
    # what `compile --precision int8` checks to know whether this model is still the run's
    # (file times do not survive every copy; a stale model must not pass for a current one)
    report.base_sha256 = im.info["base_sha256"] = file_sha256(ckpt)
    report.out = str(im.save(rd.int_model))
    if chosen != "qat":  # an earlier quantize's fine-tuned model is not this one's source
        rd.qat_checkpoint.unlink(missing_ok=True)
    report.save(rd.quant_report)
    return report


def _save_checkpoint(model: Any, source: Checkpoint, path: Path) -> None:
    """The fine-tuned float model, as a tinykws checkpoint (the integer model's source)."""
    from dataclasses import replace

    path.parent.mkdir(parents=True, exist_ok=True)
    tuned = replace(source, state_dict=model.state_dict(), train_config=None, training=None)
    save_checkpoint(tuned, path)


def _run_relative(path: Path, run_dir: Path) -> str:
    """`path` relative to the run folder when inside it (the run folder may move), else absolute."""
    try:
        return Path(path).resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def int_model_is_current(run_dir: Path | str, checkpoint: Path | str) -> bool:
    """Whether RUN_DIR/quant/model_int.npz was quantized from `checkpoint` as it is now
    (by its recorded SHA-256; a model from before the hash was recorded: by file times)."""
    qpath = RunDir(run_dir).int_model
    if not qpath.is_file():
        return False
    recorded = load_int_model(run_dir).info.get("base_sha256")
    if recorded is None:
        return qpath.stat().st_mtime >= Path(checkpoint).stat().st_mtime
    return recorded == file_sha256(checkpoint)


def load_int_model(run_dir: Path | str) -> IntModel:
    """RUN_DIR/quant/model_int.npz."""
    return IntModel.load(RunDir(run_dir).int_model)


def int_model_checkpoint(run_dir: Path | str, im: Optional[IntModel] = None) -> Path:
    """The float checkpoint RUN_DIR/quant/model_int.npz was quantized from: `quant/qat.pt`
    when `quantize` kept quantization-aware fine-tuning, else the checkpoint it started from
    (usually `train/best.pt`). Every comparison of an int8 build (or of the integer model in
    Python) with a float model uses this one, never `RunDir.checkpoint()` by itself.

    `quantize` records it in the model's `info["checkpoint"]` (relative to the run folder);
    models written before that are read from `info["chosen"]`."""
    run_dir = Path(run_dir)
    im = im if im is not None else load_int_model(run_dir)
    recorded = im.info.get("checkpoint")
    if recorded is not None:
        path = Path(recorded) if Path(recorded).is_absolute() else run_dir / recorded
    elif im.info.get("chosen") == "qat":
        path = RunDir(run_dir).qat_checkpoint
    else:
        path = RunDir(run_dir).checkpoint()
    if not path.is_file():
        raise TinyKWSError(f"{RunDir(run_dir).int_model} was quantized from {path}, "
                           "which is gone: run `tinykws quantize` again")
    return path


def format_quant_report(rep: QuantReport) -> str:
    """What `tinykws quantize` prints: per method and split, float vs integer accuracy."""
    lines = [f"integer model from {rep.checkpoint} ({'per-row' if rep.per_row else 'per-tensor'} "
             f"int8 weights, calibrated on {rep.calibration_clips} training clips)"]
    for method, r in (("ptq", rep.ptq), ("qat", rep.qat)):
        if r is None:
            continue
        head = "post-training" if method == "ptq" else f"quantization-aware ({r.epochs} epochs)"
        lines.append(f"{head}: hidden state formats Q.{', Q.'.join(map(str, r.h_frac))}")
        for split, a in (("validation", r.validation), ("testing", r.testing)):
            if a is not None:
                lines.append(
                    f"  {split:10s} {a.n:5d} clips: float {a.float_accuracy:.2%}, integer "
                    f"{a.int_accuracy:.2%}; argmax agreement {a.argmax_agreement:.2%}; max "
                    f"|score diff| {a.max_score_diff:.3g}"
                )
    source = f" (quantized from {rep.source_checkpoint})" if rep.source_checkpoint else ""
    lines.append(f"kept: {rep.chosen}{source} -> {rep.out or 'RUN_DIR/quant/model_int.npz'}")
    return "\n".join(lines)
