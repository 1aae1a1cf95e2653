"""`report.md`: renders with every part, and says "not run" for each missing part."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from eval_helpers import DEV, make_run
from tinykws.errors import TinyKWSError
from tinykws.evaluate import evaluate
from tinykws.records import EvalResult, StreamResult, VerifyReport
from tinykws.report import device_row, write_report
from tinykws.stream_eval import stream_metrics

SECTIONS = ("## Data", "## Training", "## Clip accuracy", "## Streaming detection", "## Device")


def verify_record(abi: str, flash: int, **changes) -> VerifyReport:
    """A `verify.json` record of a passing float build (figures made up for the table)."""
    fields = dict(ok=True, float_abi=abi, toolchain="gcc", n_clips=3, n_frames=294, atol=1e-3,
                  max_abs_diff=2e-6, max_feature_diff=1e-6, argmax_agreement=1.0,
                  first_mismatch=None, sizes={"model": {"text": 100, "rodata": 0, "data": 0, "bss": 10}},
                  instructions={"method": "...", "featurizer": {"mean": 100_000.4, "max": 100_002},
                                "model": {"mean": 23_456.0, "max": 45_678}},
                  flash_bytes=flash, ram_bytes=6_000, peak_stack_bytes=500, seconds=1.0)
    return VerifyReport(**{**fields, **changes})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = make_run(tmp_path_factory.mktemp("report"))
    (run / "train" / "log.csv").write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc\n1,2.0,0.3,1.9,0.35\n2,1.5,0.5,1.6,0.48\n")
    fig, ax = plt.subplots()
    ax.plot([1, 2], [0.35, 0.48])
    fig.savefig(run / "train" / "curves.png")
    plt.close(fig)
    evaluate(run, DEV)  # the run's own data folder: its testing list (a --max-clips
    # evaluation is partial: eval/evaluation_partial.json, test_robustness.py)
    stream_metrics(run, minutes=0.5)
    for abi, flash in (("hard", 41_000), ("soft", 52_000)):
        d = run / "device" / abi
        d.mkdir(parents=True)
        verify_record(abi, flash).save(d / "verify.json")
    return run


def test_full_report_has_every_section_and_picture(full_run):
    path = write_report(full_run)
    text = path.read_text()
    assert path == full_run / "report.md"
    for s in SECTIONS:
        assert s in text
    assert "Not run" not in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert set(images) == {"eval/data.png", "train/curves.png", "eval/confusion.png", "eval/det.png"}
    for rel in images:
        assert (full_run / rel).read_bytes()[:4] == b"\x89PNG"
    assert "40.0 KiB" in text and "50.8 KiB" in text and "123,456" in text  # device table
    assert "| 123,456 | 145,680 |" in text  # the mean frame, then the costliest (a strided model's step)
    assert "best validation accuracy 48.00% (epoch 2)" in text
    assert re.search(r"Accuracy \d+\.\d\d%\*\* on \d+ clips", text)  # 40 (fewer in the mini set)
    summary = text.split("## Data")[0]
    assert "Clip accuracy" in summary and "false alarms per hour" in summary
    assert "Cortex-M4 soft float: 50.8 KiB flash" in summary


def test_report_degrades_section_by_section(full_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = write_report(empty).read_text()
    assert text.count("Not run") == len(SECTIONS) and "No stage results yet" in text
    assert "## Pipeline stages" not in text
    (empty / "pipeline.json").write_text(json.dumps([{"stage": "train", "seconds": 1.5, "result": "ok"}]))
    assert "| train | 1.5 | ok |" in write_report(empty).read_text()
    partial = tmp_path / "partial"
    shutil.copytree(full_run, partial)
    shutil.rmtree(partial / "device")
    (partial / "eval" / "stream.json").unlink()
    text = write_report(partial).read_text()
    assert text.count("Not run") == 2
    assert "tinykws verify" in text and "## Clip accuracy" in text


def test_report_survives_a_malformed_file(full_run, tmp_path):
    """A file that is not its stage's record is named at the top and its section skipped;
    a record whose contents break a section costs that section only."""
    run = tmp_path / "bad"
    shutil.copytree(full_run, run)
    (run / "eval" / "evaluation.json").write_text(json.dumps({"accuracy": 0.5}))
    (run / "eval" / "stream.json").write_text('{"mode": "rolling", "at_thr')  # torn
    text = write_report(run).read_text()
    top = text.split("## Summary")[0]
    assert "`eval/evaluation.json` (not its record, EvalResult: no 'per_class')" in top
    assert "`eval/stream.json` (Unterminated string" in top
    assert "_Skipped: eval/evaluation.json is damaged" in text
    assert "_Skipped: eval/stream.json is damaged" in text and "## Device" in text
    ev = EvalResult.load(full_run / "eval" / "evaluation.json")
    ev.per_class = {"yes": {"recall": 1.0}}  # a record, but not what the section reads
    ev.save(run / "eval" / "evaluation.json")
    text = write_report(run).read_text()
    assert "_Could not read this section's files: 'precision'_" in text and "## Device" in text


def test_device_row_reads_the_verify_record():
    row = device_row(verify_record("hard", 41_000))
    assert (row["flash"], row["ram"], row["passed"], row["max_err"]) == (41_000, 6_000, True, 2e-6)
    assert (row["featurizer"], row["model"]) == (100_000.4, 23_456.0)
    assert row["instructions"] == pytest.approx(123_456.4)
    uncounted = device_row(verify_record("soft", 1, instructions={"method": "not counted"}))
    assert uncounted["instructions"] is None and uncounted["model"] is None


def test_missing_run_folder_is_a_user_error(tmp_path):
    with pytest.raises(TinyKWSError, match="no such run"):
        write_report(tmp_path / "nope")


def test_summary_warns_that_synthetic_accuracy_is_not_real_speech(tmp_path):
    import json

    from tinykws.report import section_summary

    data = tmp_path / "data"
    data.mkdir()
    ev = tmp_path / "run" / "eval"
    ev.mkdir(parents=True)
    EvalResult(accuracy=0.9, per_class={}, confusion=[], categories=["yes"], n=10,
               data_dir=str(data)).save(ev / "evaluation.json")
    assert "synthesized" not in section_summary(tmp_path / "run")
    (data / "synth.json").write_text("{}")
    text = section_summary(tmp_path / "run")
    assert "**90.0%** on 10 held-out clips" in text and "synthesized (espeak-ng) voices" in text


def test_report_and_stream_use_the_runs_operating_point(tmp_path):
    """The threshold chosen by set_operating_point drives stream_metrics' "at threshold"
    point, and the report says where it came from."""
    from tinykws.detector_config import set_operating_point

    run = make_run(tmp_path)
    curve = [{"threshold": 0.42, "recall": 0.9, "fa_per_hour": 0.5},
             {"threshold": 0.2, "recall": 0.95, "fa_per_hour": 8.0}]
    set_operating_point(run, curve, target_fa_per_hour=1.0, hours=1.5, source="held-apart negatives")
    st = stream_metrics(run, minutes=0.2)
    assert st.at_threshold.threshold == 0.42
    assert StreamResult.load(run / "eval" / "stream.json") == st  # what the report reads
    text = write_report(run).read_text()
    assert "threshold **0.42**, chosen on held-apart negatives (1.5 h) for ≤ 1 false alarms" in text


def test_stream_section_tabulates_what_the_false_alarms_fired_on(tmp_path):
    """Most frequent first, over both streams, capped with a pointer to the rest, and the
    table closed by a blank line (GFM would read the next paragraph as one more row)."""
    from tinykws.report import section_stream

    def fa(word, fired, kind="other word"):
        return {"time_s": 1.0, "fired": fired, "kind": kind, "word": word, "source": "x.wav",
                "confidence": 0.97}

    at = {"threshold": 0.9, "hits": 5, "misses": 5, "recall": 0.5, "fa_per_hour": 12.0,
          "false_alarms": 4}
    st = {"minutes": 3.0, "snrs_db": [20.0], "n_keywords": 10, "n_events": 20, "mode": "rolling",
          "at_threshold": at, "best_at_1_fa_per_hour": None, "curve": [],
          "miss_reasons_at_threshold": {}, "recall_by_snr_at_threshold": {},
          "false_alarms_at_threshold": [fa("zero", "no")] * 3 + [fa("up", "on", "wrong keyword")],
          "negatives": {"minutes": 10.0, "n_words": 400, "at_threshold": at, "curve": [],
                        "false_alarms_at_threshold": [fa(f"w{i}", "yes") for i in range(9)]}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "stream.json").write_text(json.dumps(st))
    text = section_stream(tmp_path)
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith(("| stream", "| ---"))]
    assert rows[0] == "| test stream | other word | zero | no | 3 |"
    assert rows[1] == "| negatives | other word | w0 | yes | 1 |"  # ties: by stream, word
    assert len(rows) == 9 and rows[-1].startswith("| … 3 more in eval/stream.json")
    table_end = text.index(rows[-1]) + len(rows[-1])
    assert text[table_end:table_end + 2] == "\n\n"


def test_training_section_names_the_pretrained_start(tmp_path):
    """A clip phase started from a pretrained model says so, with that model's accuracy on
    its own (synthesized) validation set; one from random weights says nothing."""
    from tinykws.report import section_training

    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "pretrain" / "train").mkdir(parents=True)
    (run / "train" / "log.csv").write_text("epoch,val_acc\n0,0.5\n1,0.7\n")
    (run / "pretrain" / "train" / "log.csv").write_text("epoch,val_acc\n0,0.8\n1,0.9375\n2,0.9\n")
    init = {"path": str(run / "pretrain" / "train" / "best.pt"), "sha256": "ab"}
    (run / "train" / "config.json").write_text(json.dumps({"epochs": 2, "init": init}))
    text = section_training(run)
    assert ("Started from the weights of `pretrain/train/best.pt` (trained on synthesized "
            "voices: best validation accuracy 93.75% there)") in text
    (run / "train" / "config.json").write_text(json.dumps({"epochs": 2, "init": None}))
    assert "Started from" not in section_training(run)
