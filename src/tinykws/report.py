"""`RUN_DIR/report.md`: one page a person can read about a run, with its pictures.

Sections: data summary, training curves, clip accuracy + confusion matrix, streaming DET
curve, device table (flash, RAM, instructions per frame for the hard-float, soft-float and
integer builds). Every section reads the files its stage wrote (docs/architecture.md "Run
folder"), the stage results as their typed records (`tinykws.records`: `EvalResult`,
`StreamResult`, `VerifyReport`), and says "not run" when they are missing, so a partial
run still gets a report; a damaged one is named at the top and skipped. The checkpoint and
feature files are read through the run contract (`tinykws.run`): a damaged one is a
one-line error (exit 2), not a report that hides it.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from tinykws.data.layout import SPLITS, synth_manifest
from tinykws.detector_config import load_detector
from tinykws.errors import TinyKWSError
from tinykws.evaluate import evaluation_files
from tinykws.plots import pyplot, save_png
from tinykws.checkpoint import load_model
from tinykws.records import EvalResult, JSONRecord, StreamResult, VerifyReport
from tinykws.run import REPORT_BUILDS, Build, RunDir, atomic_write_text, read_features

R = TypeVar("R", bound=JSONRecord)


def _read_json(path: Path) -> Any | None:
    """A plain JSON file's data (lists.json, train/config.json, pipeline.json); None when it
    is missing or damaged (`damaged_files` names the damaged ones at the top of the report)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _record(cls: type[R], path: Path) -> Optional[R]:
    """A stage's record; None when it is missing or damaged (named by `damaged_files`)."""
    try:
        return cls.load_if_present(path)
    except TinyKWSError:
        return None


def report_json(run: RunDir) -> tuple[tuple[Path, Optional[type[JSONRecord]]], ...]:
    """Every JSON file a section reads, with its record type (None: plain JSON)."""
    return ((run.lists_json, None), (run.train_config, None), (run.evaluation(), EvalResult),
            (run.evaluation("_partial"), EvalResult), (run.evaluation("_int8"), EvalResult),
            (run.stream_result, StreamResult), (run.pipeline_json, None),
            *((run.verify_report(b), VerifyReport) for b in REPORT_BUILDS))


def damaged_files(run_dir: Path) -> list[tuple[str, str]]:
    """(file, reason) for each JSON file the report reads that exists but cannot be read
    (torn, edited, not UTF-8, not the record its stage writes): the report skips them and
    says so, instead of showing "not run" as if the stage had never run."""
    bad = []
    for path, cls in report_json(RunDir(run_dir)):
        rel = path.relative_to(run_dir).as_posix()
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            bad.append((rel, (str(e).splitlines() or [type(e).__name__])[0]))
            continue
        try:
            if cls is not None:
                cls.from_dict(data)
        except (ValueError, TypeError) as e:
            bad.append((rel, f"not its record, {cls.__name__}: {e}"))
    return bad


def _evaluation(run_dir: Path) -> tuple[Optional[EvalResult], str, str]:
    """(evaluation, its confusion PNG, a note): `eval/evaluation.json`, else a partial one
    (`evaluate --max-clips`, `evaluation_partial.json`), which the note says is partial."""
    for partial in (False, True):
        path, png = evaluation_files(run_dir, "torch", partial=partial)
        ev = _record(EvalResult, path)
        if ev is not None:
            break
    else:
        return None, "", ""
    note = (f" A partial evaluation: {ev.n} of {ev.partial_of} clips "
            "(`evaluate --max-clips`); run `tinykws evaluate` without it for the full result."
            if partial else "")
    return ev, png.relative_to(run_dir).as_posix(), note


def _rel(run_dir: Path, path: Path) -> str:
    """How the report names a file of the run (`eval/stream.json`)."""
    return path.relative_to(run_dir).as_posix()


def _not_run(run_dir: Path, path: Path, how: str, also: str = "") -> str:
    """The line of a section whose file (`path`, `also`: what else would do) is missing, or
    damaged when it exists (`damaged_files` named it at the top)."""
    what = _rel(run_dir, path) + also
    if path.exists():
        return f"_Skipped: {what} is damaged (see the top of the report; run `{how}` again)._\n"
    return f"_Not run: {what} is missing (run `{how}`)._\n"


def _pretty(name: str) -> str:
    return name.strip("_") or name


# --------------------------------------------------------------------------- data


def data_counts(run_dir: Path) -> tuple[dict[str, dict[str, int]], str] | None:
    """split -> class -> clips, from `lists/lists.json`, else from the feature files."""
    rd = RunDir(run_dir)
    meta = _read_json(rd.lists_json)
    if isinstance(meta, dict) and isinstance(meta.get("counts"), dict):
        counts = {s: dict(meta["counts"][s]) for s in SPLITS if s in meta["counts"]}
        return counts, _rel(run_dir, rd.lists_json)
    counts = {}
    for s in SPLITS:
        f = RunDir(run_dir).features_file(s)
        if f.is_file():
            split = read_features(f, features=False)
            n = np.bincount(split.labels, minlength=len(split.categories))
            counts[s] = {c: int(n[i]) for i, c in enumerate(split.categories)}
    return (counts, _rel(run_dir, rd.features_file("*"))) if counts else None


def plot_data(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """Grouped bars: clips per class, one colour per split."""
    plt = pyplot()

    classes = list(next(iter(counts.values())).keys())
    splits = [s for s in SPLITS if s in counts]
    x = np.arange(len(classes))
    w = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(classes) + 2), 3.8))
    for i, s in enumerate(splits):
        ax.bar(x + (i - (len(splits) - 1) / 2) * w, [counts[s].get(c, 0) for c in classes], w, label=s)
    ax.set_xticks(x, [_pretty(c) for c in classes], rotation=45, ha="right")
    ax.set_ylabel("clips")
    ax.set_title("Clips per class and split")
    top = max(max(v.values(), default=0) for v in counts.values())
    ax.set_ylim(0, 1.2 * max(top, 1))  # room for the legend above the bars
    ax.legend(ncols=len(splits), loc="upper center")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def section_data(run_dir: Path) -> str:
    found = data_counts(run_dir)
    out = "## Data\n\n"
    if not found:
        rd = RunDir(run_dir)
        also = f" (or {_rel(run_dir, rd.features_file('*'))})"
        return out + _not_run(run_dir, rd.lists_json, "tinykws data lists", also)
    counts, source = found
    meta = _read_json(RunDir(run_dir).lists_json) or {}
    if meta.get("data_dir"):
        out += f"Data: `{meta['data_dir']}`"
        if meta.get("task"):
            out += f", task `{meta['task']}`"
        if meta.get("split_source"):
            out += f", splits from the {meta['split_source']}"
        if "speaker_overlap" in meta:
            out += f", {meta['speaker_overlap']} speakers in more than one split"
        out += ".\n\n"
    splits = [s for s in SPLITS if s in counts]
    classes = list(counts[splits[0]].keys())
    out += "| class | " + " | ".join(splits) + " |\n|---|" + "---:|" * len(splits) + "\n"
    for c in classes:
        out += f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in splits) + " |\n"
    out += "| **total** | " + " | ".join(f"**{sum(counts[s].values())}**" for s in splits) + " |\n\n"
    out += f"_Source: `{source}`._\n\n"
    plot_data(counts, RunDir(run_dir).data_plot)
    return out + "![clips per class and split](eval/data.png)\n"


# --------------------------------------------------------------------------- training


def model_line(run_dir: Path) -> str:
    """What the run's checkpoint holds, read through the run contract (`tinykws.run.
    load_model`): a damaged or inconsistent checkpoint raises its one-line error, so
    `tinykws report` fails (exit 2) like every other stage instead of hiding it."""
    run = RunDir(run_dir)
    if not run.has_checkpoint():
        return ""
    model, ck = load_model(run.checkpoint())
    mc = ck.model_config
    params = sum(p.numel() for p in model.parameters())
    lsq = [f"{n} rank {r}" for n, r in (("W", mc.wrank), ("U", mc.urank)) if r is not None]
    lsq += [f"{n} {s:.0%} nonzero" for n, s in (("W", mc.w_sparsity), ("U", mc.u_sparsity)) if s < 1]
    return (f"Model (`{run.checkpoint().relative_to(run.root)}`): {mc.architecture}, "
            f"{mc.num_layers} x {mc.hidden_size} units, {mc.input_size} inputs, "
            + (f"a step every {mc.frame_stride} frames on them stacked, " if mc.frame_stride > 1 else "")
            + f"{len(ck.categories)} classes, {params:,} parameters"
            + (f" ({', '.join(lsq)})" if lsq else "") + ".\n\n")


def _best_validation(log: Path) -> Optional[tuple[float, str, int]]:
    """(best validation accuracy, its epoch, epochs logged) from a training `log.csv`;
    None when the file is missing or has no readable accuracy."""
    if not log.is_file():
        return None
    with log.open() as f:
        rows = list(csv.DictReader(f))
    acc_key = next((k for k in (rows[0] if rows else {}) if "val" in k and "acc" in k), None)
    vals = [(float(r[acc_key]), r) for r in rows if acc_key and r.get(acc_key) not in (None, "")]
    if not vals:
        return None
    best, row = max(vals, key=lambda v: v[0])
    return best, row.get("epoch", "?"), len(rows)


def _init_line(run_dir: Path, init: Any) -> str:
    """Where the clip phase started: a pretrained checkpoint (`train --init`) or nothing."""
    if not isinstance(init, dict) or not isinstance(init.get("path"), str):
        return ""
    path = Path(init["path"])
    shown = path.relative_to(run_dir) if path.is_relative_to(run_dir) else path
    line = f"Started from the weights of `{shown}`"
    pre = _best_validation(path.parent / "log.csv") if path.parent.parent.name == "pretrain" else None
    if pre is not None:
        line += f" (trained on synthesized voices: best validation accuracy {pre[0]:.2%} there)"
    return line + ", not from random weights.\n\n"


def section_training(run_dir: Path) -> str:
    out = "## Training\n\n"
    rd = RunDir(run_dir)
    log = rd.train_log
    cfg = _read_json(rd.train_config)
    model = model_line(run_dir)
    if not log.is_file() and not rd.curves.is_file():
        return out + model + _not_run(run_dir, log, "tinykws train")
    out += model
    if isinstance(cfg, dict):
        keys = ("epochs", "batch_size", "lr", "rolling", "augment", "architecture", "hidden_size")
        flat = {**cfg, **(cfg.get("model") or {})} if isinstance(cfg.get("model"), dict) else cfg
        shown = {k: flat[k] for k in keys if k in flat}
        if shown:
            out += "Config: " + ", ".join(f"`{k}={v}`" for k, v in shown.items()) + " (see `train/config.json`).\n\n"
        out += _init_line(run_dir, cfg.get("init"))
    best = _best_validation(log)
    if best is not None:
        out += f"{best[2]} epochs logged; best validation accuracy {best[0]:.2%} (epoch {best[1]}).\n\n"
    if rd.curves.is_file():
        out += "![training curves](train/curves.png)\n"
    return out


# --------------------------------------------------------------------------- evaluation


def section_evaluation(run_dir: Path) -> str:
    out = "## Clip accuracy\n\n"
    ev, png, note = _evaluation(run_dir)
    if ev is None:
        return out + _not_run(run_dir, RunDir(run_dir).evaluation(), "tinykws evaluate RUN_DIR --data DIR")
    out += (f"**Accuracy {ev.accuracy:.2%}** on {ev.n} clips "
            f"({ev.layout} layout, `{ev.data_dir}`, backend {ev.backend}); "
            f"macro F1 {ev.macro_f1:.3f}.{note}\n\n")
    out += "| class | precision | recall | F1 | clips |\n|---|---:|---:|---:|---:|\n"
    for c, m in ev.per_class.items():
        out += f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |\n"
    if (run_dir / png).is_file():
        out += f"\n![confusion matrix]({png})\n"
    return out


def section_stream(run_dir: Path) -> str:
    out = "## Streaming detection\n\n"
    st = _record(StreamResult, RunDir(run_dir).stream_result)
    if st is None:
        return out + _not_run(run_dir, RunDir(run_dir).stream_result, "the pipeline's streaming "
                              "check (tinykws.stream_eval.stream_metrics)")
    at = st.at_threshold
    out += (f"{st.minutes:.1f} minutes of held-out clips over background noise "
            f"(SNR {', '.join(f'{s:g}' for s in st.snrs_db)} dB), "
            f"{st.n_keywords} keywords among {st.n_events} words; "
            f"detector mode `{st.mode}`.\n\n")
    out += (f"At threshold {at.threshold:.2f}: recall **{at.recall:.1%}**, "
            f"**{at.fa_per_hour:.1f} false alarms per hour** ({at.false_alarms} in the stream).\n")
    best = st.best_at_1_fa_per_hour
    if best and best.recall > 0:
        out += (f"Best recall at ≤ 1 false alarm per hour: {best.recall:.1%} "
                f"(threshold {best.threshold:.4f}).\n")
    else:
        out += "No threshold catches any keyword at ≤ 1 false alarm per hour.\n"
    out += _efficiency(st)
    if st.clip_model is not None:
        cb = st.clip_model.best_at_1_fa_per_hour
        out += ("Before stream training, the clip model (`window` mode, 10 staggered states) "
                + (f"caught {cb.recall:.1%} at ≤ 1 false alarm per hour (threshold "
                   f"{cb.threshold:.4f})" if cb else "never stayed at ≤ 1 false alarm per hour")
                + "; both curves are in the DET plot.\n")
    out += _negative_stream(st)
    out += _false_alarm_table(st)
    if st.minutes < 60:
        out += ("_A short stream: one false alarm already counts "
                f"{60 / max(st.minutes, 1e-9):.0f} per hour._\n")
    out += _operating_point(run_dir)
    if RunDir(run_dir).det_plot.is_file():
        out += "\n![DET curve](eval/det.png)\n"
    return out


def _efficiency(st: StreamResult) -> str:
    """The stream efficiency line and where the keywords went at the threshold."""
    clip, eff = st.clip_recall, st.efficiency
    if clip is None or eff is None or not clip.n:
        return ""  # none recorded, or a stream without keywords: no efficiency to state
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    out = (f"**Stream efficiency**: cut out alone, the model names {clip.recall:.1%} of these "
           f"keyword clips ({clip.correct} of {clip.n}); the stream keeps {fmt(eff.get('1'))} "
           f"of that at ≤ 1 false alarm per hour, {fmt(eff.get('6'))} at ≤ 6, and "
           f"{fmt(eff.get('ceiling'))} at its best threshold (the ceiling).\n")
    miss = st.miss_reasons_at_threshold
    if miss:
        gone = ", ".join(f"{n} {k}" for k, n in miss.items() if k != "hit" and n)
        out += f"At the threshold, of {sum(miss.values())} keywords {miss.get('hit', 0)} were hit" + (
            f"; the others: {gone}.\n" if gone else ".\n")
    return out


def _false_alarm_table(st: StreamResult, top: int = 8) -> str:
    """What the false alarms at the detector's threshold fired on, most frequent first: a
    clip that fires once fires every time it is replayed, so a few confusions can make
    most of the count (and tell what to add to the training data)."""
    rows: dict[tuple[str, str, str, str], int] = {}
    negatives = st.negatives.false_alarms_at_threshold if st.negatives else []
    for name, fas in (("test stream", st.false_alarms_at_threshold), ("negatives", negatives)):
        for fa in fas:
            key = (name, fa.kind, fa.word or "–", fa.fired)
            rows[key] = rows.get(key, 0) + 1
    if not rows:
        return ""
    out = ("\nWhat the false alarms at the threshold fired on (`kind`: a non-keyword, another "
           "keyword, the same keyword again after the refractory time, or noise alone):\n\n"
           "| stream | kind | word heard | fired as | times |\n| --- | --- | --- | --- | ---: |\n")
    ranked = sorted(rows.items(), key=lambda kv: (-kv[1], kv[0]))
    out += "".join(f"| {s} | {k} | {w} | {f} | {n} |\n" for (s, k, w, f), n in ranked[:top])
    if len(ranked) > top:
        out += f"| … {len(ranked) - top} more in eval/stream.json | | | | |\n"
    return out + "\n"  # a blank line ends the table (GFM would read the next line as a row)


def _negative_stream(st: StreamResult) -> str:
    """False alarms on the held-apart non-keyword speech, this model and the clip model."""
    neg = st.negatives
    if neg is None:
        return ""
    at = neg.at_threshold
    out = (f"\nOn {neg.minutes:.1f} minutes of held-apart non-keyword speech ({neg.n_words} "
           "synthesized words and phrases, voices and words never trained on): "
           f"**{at.fa_per_hour:.1f} false alarms per hour** at threshold {at.threshold:.4f}")
    before = st.clip_model.negatives if st.clip_model else None
    if before is not None:
        # the clip model at the threshold this model uses: the same operating point
        pts = [p for p in before.curve if p.threshold >= at.threshold - 1e-9]
        if pts:
            p = min(pts, key=lambda p: p.threshold)
            out += (f"; the clip model in `window` mode fires {p.fa_per_hour:.1f} per hour "
                    f"at threshold {p.threshold:.4f}")
    return out + ".\n"


def _operating_point(run_dir: Path) -> str:
    """Where the run's detector threshold comes from (RUN_DIR/detector.json)."""
    try:
        cfg, op = load_detector(run_dir)
    except TinyKWSError as e:
        return f"\nThe run's detector could not be read: {e}\n"
    if op is None:
        return (f"\nDetector: the defaults (threshold {cfg.threshold:g}, smoothing "
                f"{cfg.smoothing_ms:g} ms, refractory {cfg.refractory_ms:g} ms); no operating "
                "point chosen yet (`tinykws.detector_config.set_operating_point`).\n")
    where = f" on {op.source}" if op.source else ""
    hours = f" ({op.hours:.1f} h)" if op.hours else ""
    verdict = "" if op.met else " — no threshold met the target; the fewest false alarms was taken"
    neg = ("" if op.negative_fa_per_hour is None else
           f" on the keyword stream (≤ {op.negative_target_fa_per_hour:g} on the negatives: "
           f"{op.negative_fa_per_hour:.2f} per hour there)")
    second = ("" if cfg.second_look is None else
              f" With a second look: the verifier (`train/verifier.pt`) must give a detection's keyword "
              f"≥ {cfg.second_look:g} on the second ending {cfg.second_look_delay_ms:g} ms after it (in "
              "Python; the generated C runs the first stage only).")
    return (f"\nOperating point (`detector.json`, used by `tinykws detect` and the generated C "
            f"detector): threshold **{op.threshold:.4g}**, chosen{where}{hours} for ≤ "
            f"{op.target_fa_per_hour:g} false alarms per hour: recall {op.recall:.1%} at "
            f"{op.fa_per_hour:.2f} per hour{neg}{verdict}.{second}\n")


# --------------------------------------------------------------------------- device


def device_row(verify: VerifyReport) -> dict[str, Any]:
    """flash / RAM bytes, instructions per 10-ms frame (featurizer, model, both), whether
    it passed and its largest score difference, from one `verify.json`."""
    return {
        "flash": verify.flash_bytes,
        "ram": verify.ram_bytes,
        "featurizer": verify.instructions_of("featurizer"),
        "model": verify.instructions_of("model"),
        "instructions": verify.instructions_per_frame,
        "max_instructions": verify.max_instructions_per_frame,
        "passed": verify.ok,
        "max_err": verify.max_abs_diff,
    }


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, (int, float)) and unit == "B":
        return f"{v / 1024:.1f} KiB" if v >= 1024 else f"{int(v)} B"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _round(v: Any) -> Any:
    return int(round(v)) if isinstance(v, float) else v


def _build_cmd(b: Build) -> str:
    """The command that compiles build `b`."""
    if b.name == "hard":
        return "tinykws compile RUN --float-abi hard"
    return f"tinykws compile RUN --float-abi {b.float_abi} --precision {b.precision}"


# The full preset's int8 model on the embedded data (2 x 72 GRU, a step every 2 frames, gcc,
# emulated Cortex-M4): model flash (text + rodata + data of model.o) and the mean instructions
# a frame through completemodel_PredictQ, from the main job's run at c8c9ba6 compiled and
# verified again since its step is spread over two frames (`tinykws compile RUN --precision
# int8`, `tinykws verify`: docs/benchmarks.md, "Issue 19, twenty-second round"); they vary
# with the weights by a few bytes and tens of instructions. The report sets a run's own int8
# model beside them.
FULL_PRESET_INT8 = {"model_flash": 73_346, "model_instructions": 48_335}  # seed 0


def int8_model_cost(verify: VerifyReport) -> Optional[tuple[int, float]]:
    """(model flash bytes, model instructions a frame) of an int8 `verify.json`, or None."""
    flash, ins = verify.model_flash, verify.instructions.get("model")
    if flash is None or not isinstance(ins, dict):
        return None
    return flash, ins.get("mean", 0.0)


def _preset_line(run_dir: Path) -> str:
    """This run's int8 model beside the full preset's: what --preset tiny saves."""
    v = _record(VerifyReport, RunDir(run_dir).verify_report("int8"))
    cost = int8_model_cost(v) if v is not None else None
    if cost is None:
        return ""
    flash, ins = cost
    full = FULL_PRESET_INT8
    return (f"\nInt8 model alone: **{_fmt(flash, 'B')} flash, {_fmt(_round(ins))} instructions "
            f"a frame**; the full preset's (2 x 72 GRU, a step every 2 frames: `--preset full` on the embedded data) is "
            f"{_fmt(full['model_flash'], 'B')} and {full['model_instructions']:,} "
            f"({flash / full['model_flash']:.0%} and {ins / full['model_instructions']:.0%} of "
            f"them).\n")


def section_device(run_dir: Path) -> str:
    out = "## Device (emulated Cortex-M4)\n\n"
    rows = {b: _record(VerifyReport, RunDir(run_dir).verify_report(b)) for b in REPORT_BUILDS}
    if not any(r is not None for r in rows.values()):
        builds = "{" + ",".join(b.name for b in REPORT_BUILDS) + "}"  # device/{hard,...}/verify.json
        return out + _not_run(run_dir, RunDir(run_dir).verify_report(builds), "tinykws verify")
    out += ("| build | flash | RAM | instructions / frame | costliest frame | featurizer | model | "
            "matches its reference | max score diff | vs float model |\n"
            "|---|---:|---:|---:|---:|---:|---:|:---:|---:|---|\n")
    for b, r in rows.items():
        if r is None:
            out += (f"| {b.label} | not run (`{_build_cmd(b)}`, then "
                    f"`tinykws verify RUN/device/{b.name}`) | | | | | | | | |\n")
            continue
        d = device_row(r)
        ref = {"int": "integer reference", "onnx": "ONNX"}.get(r.reference, "PyTorch")
        fm = r.float_model
        vs = (f"argmax {fm['argmax_agreement']:.1%}, max diff {fm['max_abs_diff']:.3g}"
              if isinstance(fm, dict) else "–")
        out += (f"| {b.label} | {_fmt(d['flash'], 'B')} | {_fmt(d['ram'], 'B')} | "
                f"{_fmt(_round(d['instructions']))} | {_fmt(d['max_instructions'])} | "
                f"{_fmt(_round(d['featurizer']))} | "
                f"{_fmt(_round(d['model']))} | {_fmt(d['passed'])} ({ref}) | "
                f"{_fmt(d['max_err'])} | {vs} |\n")
    out += _preset_line(run_dir)
    return out + ("\n_From `device/<build>/verify.json`; one frame = 10 ms of audio (featurizer "
                  "+ model call, the mean; the integer build through its integer calls, mfcc_FilterInt16 + "
                  "completemodel_PredictQ). The costliest frame (each part's costliest call) is what "
                  "must fit in 10 ms: a model with a frame stride S steps on every S-th call. The integer build must equal its Python reference bit "
                  "for bit (max score diff 0); its agreement with the float model is measured on "
                  "the same clips._\n")


# --------------------------------------------------------------------------- summary


def section_summary(run_dir: Path) -> str:
    """The headline numbers, one line each, from whatever stages ran."""
    lines = []
    rd = RunDir(run_dir)
    ev, _, note = _evaluation(run_dir)
    if ev is not None:
        lines.append(f"- Clip accuracy **{ev.accuracy:.1%}** on {ev.n} held-out clips "
                     f"({ev.backend}).{note}")
        if ev.data_dir and synth_manifest(ev.data_dir).is_file():
            lines.append("  These are synthesized (espeak-ng) voices: expect much less on real "
                         "speakers; measure it with `tinykws evaluate RUN --data REAL_DATA`.")
    st = _record(StreamResult, rd.stream_result)
    if st is not None:
        at = st.at_threshold
        lines.append(f"- Streaming: **{at.recall:.0%} of keywords caught, "
                     f"{at.fa_per_hour:.0f} false alarms per hour** at threshold "
                     f"{at.threshold:.2f} ({st.minutes:.1f}-min test stream).")
    ev8 = _record(EvalResult, rd.evaluation("_int8"))
    if ev8 is not None:
        lines.append(f"- Integer build (int8): clip accuracy **{ev8.accuracy:.1%}** on "
                     f"{ev8.n} clips ({ev8.backend}).")
    for b in REPORT_BUILDS:
        name = b.label
        v = _record(VerifyReport, rd.verify_report(b))
        if v is not None:
            d = device_row(v)
            ref = "its integer reference" if v.reference == "int" else "PyTorch"
            lines.append(f"- Cortex-M4 {name}: {_fmt(d['flash'], 'B')} flash, "
                         f"{_fmt(d['ram'], 'B')} RAM, {_fmt(_round(d['instructions']))} "
                         f"instructions per 10-ms frame ({_fmt(d['max_instructions'])} in the "
                         f"costliest); matches {ref}: {_fmt(d['passed'])}.")
    return "## Summary\n\n" + ("\n".join(lines) + "\n" if lines else "_No stage results yet._\n")


def section_pipeline(run_dir: Path) -> str:
    """Stage timings from `pipeline.json` (only when the pipeline made this run)."""
    rows = _read_json(RunDir(run_dir).pipeline_json)
    if not isinstance(rows, list) or not rows:
        return ""
    out = "## Pipeline stages\n\n| stage | seconds | result |\n|---|---:|---|\n"
    for r in rows:
        out += f"| {r.get('stage', '')} | {r.get('seconds', '')} | {r.get('result', '')} |\n"
    return out


# --------------------------------------------------------------------------- report

SECTIONS: tuple[Callable[[Path], str], ...] = (
    section_summary, section_data, section_training, section_evaluation, section_stream,
    section_device, section_pipeline,
)


def write_report(run_dir: Path | str) -> Path:
    """Write `RUN_DIR/report.md` (and `eval/data.png`); returns its path.

    A missing stage is "not run"; a damaged checkpoint or feature file (what
    `tinykws.run` refuses) is an error and no report is written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyKWSError(f"{run_dir}: no such run folder")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"# tinykws run `{run_dir.name}`\n\n_Written {when} by `tinykws report`._\n"]
    damaged = damaged_files(run_dir)
    if damaged:
        parts.append("**Skipped damaged files** (rerun the stage that writes each): " + "; ".join(
            f"`{rel}` ({reason})" for rel, reason in damaged) + ".\n")
    for section in SECTIONS:
        try:
            text = section(run_dir)
            if text:
                parts.append(text)
        except TinyKWSError:  # the run contract refused a file: the run is damaged
            raise
        except Exception as e:  # a malformed file must not cost the whole report
            title = section.__name__.removeprefix("section_")
            parts.append(f"## {title.capitalize()}\n\n_Could not read this section's files: {e}_\n")
    path = RunDir(run_dir).report
    atomic_write_text(path, "\n".join(parts))
    return path
