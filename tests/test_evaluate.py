"""`tinykws evaluate`: both input layouts, the metrics, the backends' agreement, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval_helpers import CATEGORIES, DEV, google12_layout, make_run, run_cli, tinykws_command
from tinykws.data.speech_commands import read_list
from tinykws.errors import TinyKWSError
from tinykws.evaluate import (
    clip_audio,
    collect_clips,
    confusion_matrix,
    detect_layout,
    evaluate,
    metrics_from_confusion,
)

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def g12(run, tmp_path_factory) -> Path:
    return google12_layout(tmp_path_factory.mktemp("layout"), run / "lists", per_class=3)


def _n_clips(g12: Path) -> int:
    return len(list(g12.rglob("*.wav")))


# ---------------------------------------------------------------- layouts


def test_detects_both_layouts(g12, tmp_path):
    assert detect_layout(g12) == "google12"
    assert detect_layout(DEV) == "speech_commands"
    with pytest.raises(TinyKWSError, match="neither"):
        detect_layout(tmp_path)
    with pytest.raises(TinyKWSError, match="no such"):
        detect_layout(tmp_path / "missing")


def test_google12_layout_reads_doubled_extensions_and_prefixes(g12):
    layout, clips = collect_clips(g12, CATEGORIES)
    assert layout == "google12"
    assert len(clips) == _n_clips(g12)  # 3 a class (fewer in the committed mini set)
    assert {c.label for c in clips} == set(CATEGORIES)
    assert all(c.path.name.endswith(".wav.wav") for c in clips)
    unknown = [c for c in clips if c.label == "_unknown_"]
    assert all(c.path.name.split("_")[0] not in CATEGORIES for c in unknown)  # word prefix kept
    # folders that are not categories of the run map to _unknown_, when the run has one
    _, mapped = collect_clips(g12, ["yes", "no", "_unknown_"])
    assert {c.label for c in mapped} == {"yes", "no", "_unknown_"}
    assert sum(c.label == "_unknown_" for c in mapped) == _n_clips(g12) - sum(
        len(list((g12 / w).glob("*.wav"))) for w in ("yes", "no"))


def test_speech_commands_layout_uses_the_runs_own_testing_list(run):
    _, clips = collect_clips(DEV, CATEGORIES, "testing", run_dir=run)
    expected = read_list(run / "lists", "testing")
    assert [(str(c.path), c.label) for c in clips] == [(str(e.path), e.label) for e in expected]


def test_speech_commands_layout_of_foreign_data_makes_held_out_lists(run):
    # without the run, the folder is split by its testing_list.txt, and silence is cropped
    _, clips = collect_clips(DEV, CATEGORIES, "testing", run_dir=None)
    testing = set((DEV / "testing_list.txt").read_text().split())
    words = [c for c in clips if c.label != "_silence_"]
    assert words and all(c.name in testing for c in words)
    silence = [c for c in clips if c.label == "_silence_"]
    assert silence and all(c.audio is not None and c.audio.shape == (16000,) for c in silence)
    assert clip_audio(clips[:3]).shape == (3, 16000)


# ---------------------------------------------------------------- metrics


def _reference_metrics(y_true, y_pred, k):
    """Plain-loop precision/recall/F1: an independent implementation."""
    out = {}
    for c in range(k):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[c] = (prec, rec, f1, tp + fn)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_metrics_match_a_plain_reference(pairs):
    y_true, y_pred = zip(*pairs)
    names = ["a", "b", "c", "d"]
    cm = confusion_matrix(np.array(y_true), np.array(y_pred), 4)
    acc, per_class, _ = metrics_from_confusion(cm, names)
    assert cm.sum() == len(pairs)
    assert acc == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))
    ref = _reference_metrics(y_true, y_pred, 4)
    for i, n in enumerate(names):
        m = per_class[n]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx(ref[i])


def test_metrics_golden():
    # true: a a a b b c ; pred: a a b b c c
    cm = confusion_matrix(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]), 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    acc, pc, macro = metrics_from_confusion(cm, ["a", "b", "c"])
    assert acc == pytest.approx(4 / 6)
    assert pc["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert pc["b"]["precision"] == pytest.approx(0.5) and pc["b"]["recall"] == pytest.approx(0.5)
    assert pc["c"]["f1"] == pytest.approx(2 / 3)
    assert macro == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


# ---------------------------------------------------------------- evaluate + backends


def test_evaluate_writes_json_and_confusion_png(run, g12):
    res = evaluate(run, g12)
    assert res.n == _n_clips(g12) and res.layout == "google12"
    cm = np.array(res.confusion)
    assert cm.sum() == res.n and np.trace(cm) / res.n == pytest.approx(res.accuracy)
    saved = json.loads((run / "eval" / "evaluation.json").read_text())
    assert saved["accuracy"] == res.accuracy and set(saved["per_class"]) == set(CATEGORIES)
    png = (run / "eval" / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_max_clips_takes_a_spread_subset(run, g12):
    res = evaluate(run, g12, max_clips=10, write=False)
    assert res.n == 10
    assert sum(1 for c in res.per_class.values() if c["support"]) >= 5


def test_torch_and_onnx_backends_agree(run, g12):
    from tinykws.evaluate import backend_scores
    from tinykws.checkpoint import load_model

    pytest.importorskip("onnxruntime", reason="onnx backend needs the export extra")
    model, ck = load_model(run)
    _, clips = collect_clips(g12, CATEGORIES)
    audio = clip_audio(clips)
    s_torch = backend_scores("torch", run, audio, model, ck)
    s_onnx = backend_scores("onnx", run, audio, model, ck)  # exports the run first
    assert (run / "export" / "model.onnx").is_file()
    assert s_torch.shape == s_onnx.shape == (len(clips), len(CATEGORIES))
    np.testing.assert_allclose(s_onnx.sum(1), 1.0, atol=1e-5)  # scores are softmax
    np.testing.assert_array_equal(s_torch.argmax(1), s_onnx.argmax(1))
    assert np.abs(s_torch - s_onnx).max() <= 1e-4


def test_unknown_backend_is_a_user_error(run, g12):
    with pytest.raises(TinyKWSError, match="unknown backend"):
        evaluate(run, g12, backend="tpu", write=False)


def test_cli_json_prints_one_object(run, g12, capsys, monkeypatch):
    code, out, err = run_cli(["evaluate", str(run), "--data", str(g12), "--json"], capsys, monkeypatch)
    assert code == 0, err
    obj = json.loads(out)  # the whole of stdout is one JSON object
    assert {"accuracy", "per_class", "n"} <= set(obj) and obj["n"] == _n_clips(g12)
    code, out, err = run_cli(["evaluate", str(run), "--data", str(g12)], capsys, monkeypatch)
    assert code == 0 and "accuracy" in out and "precision" in out
    assert f"wrote {run / 'eval' / 'evaluation.json'} and confusion.png" in err
    code, out, err = run_cli(["evaluate", str(run), "--data", str(run / "nope")], capsys, monkeypatch)
    assert code == 2 and "no such data folder" in err and "Traceback" not in err
    import tinykws.evaluate

    monkeypatch.setattr(tinykws.evaluate, "evaluate", lambda *a, **k: SimpleNamespace(table=str, partial_of=None))
    for flags in (["--backend", "int8"], ["--backend", "device", "--build", "int8-softfp"]):
        code, out, err = run_cli(["evaluate", str(run), "--data", str(g12), *flags], capsys, monkeypatch)
        assert code == 0, err  # the integer path writes its own files: say so (was: evaluation.json)
        assert f"wrote {run / 'eval' / 'evaluation_int8.json'} and confusion_int8.png" in err


def test_cli_entry_point_runs(run, g12):
    """The installed console script (one subprocess: the real entry point)."""
    p = tinykws_command("evaluate", str(run), "--data", str(g12), "--json", "--max-clips", "5")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n"] == 5


def test_device_backend_agrees_with_torch(run, g12):
    """The emulated Cortex-M4 (generated featurizer + model, hard float) on the same clips."""
    pytest.importorskip("unicorn", reason="the device backend needs the device extra")
    from tinykws.evaluate import backend_scores
    from tinykws.checkpoint import load_model

    model, ck = load_model(run)
    _, clips = collect_clips(g12, CATEGORIES)
    audio = clip_audio(clips[::9])  # 4 clips: the emulator runs ~1 s per clip
    s_torch = backend_scores("torch", run, audio, model, ck)
    s_dev = backend_scores("device", run, audio, model, ck)
    assert s_dev.shape == s_torch.shape
    np.testing.assert_array_equal(s_torch.argmax(1), s_dev.argmax(1))
    assert np.abs(s_torch - s_dev).max() <= 1e-3  # tinykws verify's tolerance
    res = evaluate(run, g12, backend="device", max_clips=4, write=False)
    assert res.n == 4 and res.backend == "device"
