"""The run contract (`tinykws.run`): one checkpoint loader, one feature-file reader, and
what they refuse. Every stage that loads a run gets a one-line `error:` (exit 2) for a
damaged or inconsistent checkpoint instead of a traceback or wrong C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from eval_helpers import (
    DEV, FEATURE_CATS, corrupt_checkpoint, make_features, make_run, random_model, run_cli,
)
from tinykws.errors import CheckpointError, FeatureFileError
from tinykws.features import FeatureParams
from tinykws.models import ModelConfig, build_model
from tinykws.checkpoint import Checkpoint, load_checkpoint, load_model
from tinykws.run import (
    Build, RunDir, check_splits_agree, compiled_run, read_features, record_compiled_run,
)
from tinykws.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATS = ["a", "b", "c", "d", "e"]


def _checkpoint(hidden: int = 16, **kw) -> Checkpoint:
    torch.manual_seed(0)
    m = build_model(ModelConfig(hidden_size=hidden, num_layers=1, num_classes=len(CATS)))
    m.set_normalization(torch.randn(32), torch.rand(32) + 0.5)
    return Checkpoint(m.config, FeatureParams(), tuple(CATS), m.state_dict(), **kw)


# ---------------------------------------------------------------- checkpoint


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    ck = _checkpoint(train_config=TrainConfig(hidden_units=16, num_layers=1, rolling=True))
    torch.save(ck.to_dict(), tmp_path / "m.pt")
    back = load_checkpoint(tmp_path / "m.pt")
    assert (back.model_config, back.feature_params, back.categories, back.train_config) == \
        (ck.model_config, ck.feature_params, ck.categories, ck.train_config)
    assert back.rolling and back.training is None
    assert isinstance(back.feature_params, FeatureParams)
    model, _ = load_model(tmp_path / "m.pt")
    ref = build_model(ck.model_config)
    ref.load_state_dict(ck.state_dict)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    mean, std = back.normalization
    torch.testing.assert_close(mean, ck.state_dict["mean"])


def test_run_dir_resolves_the_checkpoint_in_one_place(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(CheckpointError, match="no train/best.pt or train/last.pt"):
        run.checkpoint()
    run.train.mkdir()
    torch.save(_checkpoint().to_dict(), run.last)
    assert run.checkpoint() == run.last  # a run killed before its first best epoch
    torch.save(_checkpoint().to_dict(), run.best)
    assert run.checkpoint() == run.best
    assert load_model(tmp_path)[1].categories == tuple(CATS)


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint", "not a weights-only PyTorch checkpoint"),
    (None, "damaged or not a checkpoint"),  # a truncated real checkpoint
    (b"", "damaged or not a checkpoint"),
])
def test_damaged_checkpoint_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "m.pt"
    if content is None:
        torch.save(_checkpoint().to_dict(), path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("how, match", [
    ("n_mels", "n_mels.*but the model takes 32"),
    ("hidden", r"do not match model_config: .* is \[16, 32\] in the weights but \[8, 32\]"),
    ("nan", "fc.bias is not finite"),
    ("classes", "4 categories but model_config has 5 classes"),
    ("other", "not a tinykws checkpoint"),
    ("params", "bad feature_params: .*window must be one of"),
    ("missing_weight", "do not match model_config .*missing fc.bias"),
    ("std_zero", "normalisation std has values <= 0"),
    ("preemphasis_nan", "preemphasis must be a finite number, not nan"),
    ("same_categories", "categories must be distinct"),
])
def test_inconsistent_checkpoints_are_refused(tmp_path, how, match):
    path = tmp_path / "m.pt"
    torch.save(corrupt_checkpoint(_checkpoint().to_dict(), how), path)
    with pytest.raises(CheckpointError, match=match) as e:
        load_model(path)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    if not DEV.is_dir():
        pytest.fail(f"shared dev data missing at {DEV}")
    return make_run(tmp_path_factory.mktemp("runs"), model=random_model(hidden=8))


@pytest.mark.parametrize("how", ["n_mels", "hidden", "nan"])
@pytest.mark.parametrize("command", ["compile", "export", "evaluate", "detect", "verify"])
def test_every_stage_refuses_an_inconsistent_checkpoint(good_run, tmp_path, capsys, monkeypatch,
                                                        command, how):
    """Issue 13 items 3 and 4: compile/export/evaluate/detect/verify print one line, exit 2
    (before: wrong C from compile and export, tracebacks from the rest)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    best = RunDir(run).best
    torch.save(corrupt_checkpoint(torch.load(best, weights_only=True), how), best)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.int16), 16000)
    compiled = RunDir(run).device("hard")
    compiled.mkdir(parents=True)
    for f in ("featurizer.S", "model.S"):
        (compiled / f).write_text("")
    record_compiled_run(compiled, run)
    args = {
        "compile": ["compile", str(run), "--out", str(tmp_path / "c")],
        "export": ["export", str(run)],
        "evaluate": ["evaluate", str(run), "--data", str(DEV), "--max-clips", "2"],
        "detect": ["detect", str(run), str(wav)],
        "verify": ["verify", str(compiled)],
    }[command]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert str(best) in lines[0]
    assert not (tmp_path / "c" / "model.c").exists()  # compile wrote nothing


# ---------------------------------------------------------------- feature files


def test_read_features_returns_the_arrays_and_real_params(tmp_path):
    d = make_features(tmp_path)
    split = read_features(d / "training.npz")
    with np.load(d / "training.npz") as z:
        np.testing.assert_array_equal(split.features, z["features"])
        np.testing.assert_array_equal(split.labels, z["labels"])
    assert split.features.dtype == np.float32 and split.labels.dtype == np.int64
    assert split.categories == FEATURE_CATS and split.params == FeatureParams()
    light = read_features(d / "training.npz", features=False)
    assert light.features is None and len(light) == len(split)


def _rewrite(path: Path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, match", [
    (dict(feature_params=None), "lacks key 'feature_params'"),
    (dict(feature_params=json.dumps({"n_mels": 40})), "32 features a frame, but its feature_params say n_mels=40"),
    (dict(feature_params="{not json"), "feature_params is not a JSON object"),
    (dict(labels=np.full(96, 9, np.int64)), "labels outside the 4 categories"),
    (dict(features=np.zeros((96, 32), np.float32)), r"must be \[N, T, F\]"),
])
def test_bad_feature_files_are_one_line_errors(tmp_path, change, match):
    d = make_features(tmp_path)
    _rewrite(d / "training.npz", **change)
    with pytest.raises(FeatureFileError, match=match) as e:
        read_features(d / "training.npz")
    assert "\n" not in str(e.value)


def test_garbage_and_truncated_feature_files(tmp_path):
    d = make_features(tmp_path)
    (d / "g.npz").write_bytes(b"garbage")
    raw = (d / "training.npz").read_bytes()
    (d / "t.npz").write_bytes(raw[: len(raw) // 2])
    for name in ("g.npz", "t.npz"):
        with pytest.raises(FeatureFileError, match="cannot read feature file"):
            read_features(d / name)
    with pytest.raises(FeatureFileError, match="feature file missing"):
        read_features(d / "none.npz")


def test_train_refuses_splits_made_differently(tmp_path):
    """Issue 13 item 10: a Hamming-window validation set beside a rectangular training set
    (or other categories) is refused before training, naming the difference."""
    d = make_features(tmp_path / "f")
    _rewrite(d / "validation.npz", feature_params=FeatureParams(window="hamming").to_json())
    with pytest.raises(FeatureFileError, match="window 'hamming' vs 'rectangular'"):
        train(d, tmp_path / "r", TrainConfig(epochs=1, hidden_units=4))
    assert not RunDir(tmp_path / "r").last.exists()
    d2 = make_features(tmp_path / "f2")
    with np.load(d2 / "testing.npz") as z:
        cats = list(z["categories"])
    _rewrite(d2 / "validation.npz", categories=np.array(cats[::-1]))
    with pytest.raises(FeatureFileError, match="different categories"):
        train(d2, tmp_path / "r2", TrainConfig(epochs=1, hidden_units=4))
    a, b = read_features(d2 / "training.npz"), read_features(d2 / "testing.npz")
    check_splits_agree(a, b)  # the untouched splits agree


def test_resume_from_a_truncated_last_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    d = make_features(tmp_path / "f")
    run = RunDir(tmp_path / "r")
    train(d, run.root, TrainConfig(epochs=2, hidden_units=4, batch_size=32), max_epochs_this_run=1)
    raw = run.last.read_bytes()
    run.last.write_bytes(raw[: len(raw) // 3])
    code, _, err = run_cli(["train", "--features", str(d), "--out", str(run.root), "--resume"],
                           capsys, monkeypatch)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "damaged or not a checkpoint" in err


# ---------------------------------------------------------------- damaged run folders


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """features/ (random, 4 classes) + train/best.pt (4 hidden units) + a stub compiled
    folder: every run-loading stage starts on it in well under a second."""
    from eval_helpers import save_checkpoint

    run = tmp_path_factory.mktemp("tiny") / "run"
    make_features(run / "features", n_train=16, n_val=8, T=10)
    save_checkpoint(run, random_model(hidden=4, classes=len(FEATURE_CATS)), FEATURE_CATS)
    stub = RunDir(run).device("hard")
    stub.mkdir(parents=True)
    for f in ("featurizer.S", "model.S"):
        (stub / f).write_text("")
    record_compiled_run(stub, run)
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "no checkpoint": lambda r: r.best.unlink(),
    "no features": lambda r: __import__("shutil").rmtree(r.features),
    "training.npz truncated": lambda r: _truncate(r.features_file("training")),
    "validation.npz truncated": lambda r: _truncate(r.features_file("validation")),
    "integer model truncated": lambda r: (r.root / "quant").mkdir() or
    (r.root / "quant" / "model_int.npz").write_bytes(b"PK\x03\x04" + bytes(100)),
    "onnx damaged": lambda r: r.export.mkdir() or r.model_onnx.write_bytes(b"\x08\x07garbage"),
}
ARGS = {
    "export": ["export", "RUN"], "compile": ["compile", "RUN", "--out", "RUN/c"],
    "verify": ["verify", "RUN/device/hard"], "detect": ["detect", "RUN", "RUN/../a.wav"],
    "evaluate": ["evaluate", "RUN", "--data", str(DEV), "--max-clips", "2"],
    "evaluate-int8": ["evaluate", "RUN", "--data", str(DEV), "--max-clips", "2", "--backend", "int8"],
    "evaluate-onnx": ["evaluate", "RUN", "--data", str(DEV), "--max-clips", "2", "--backend", "onnx"],
    "report": ["report", "RUN"], "quantize": ["quantize", "RUN"],
}
CASES = [  # (damage, command, what the one error line says)
    *[("no checkpoint", c, "no train/best.pt or train/last.pt") for c in ARGS if c != "report"],
    ("no features", "quantize", "feature file missing"),
    *[(f"{s}.npz truncated", c, f"cannot read feature file .*{s}.npz")
      for s in ("training", "validation") for c in ("quantize", "report")],
    ("integer model truncated", "evaluate-int8", "model_int.npz is damaged"),
    ("onnx damaged", "evaluate-onnx", "model.onnx is damaged or not an ONNX model"),
]


@pytest.mark.parametrize("damage, command, match", CASES)
def test_run_loading_stages_on_damaged_run_folders(tiny_run, tmp_path, capsys, monkeypatch,
                                                   damage, command, match):
    """Issue 13: a run folder without its checkpoint, without or with truncated feature files,
    or with a damaged integer model or ONNX graph: one `error:` line, exit 2, from each stage
    that reads the file (before: tracebacks for the last two, exit 0 from report)."""
    import re
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.int16), 16000)
    DAMAGE[damage](RunDir(run))
    args = [a.replace("RUN", str(run)) for a in ARGS[command]]
    code, out, err = run_cli(args, capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert re.search(match, lines[0]), lines[0]
    assert not (run / "report.md").exists() and not (run / "c").exists()


def test_report_on_a_run_without_checkpoint_says_not_run(tiny_run, tmp_path, capsys, monkeypatch):
    """`report` is for partial runs too: a missing checkpoint is "not run", not an error;
    a present one is read through the run contract and described."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    code, _, err = run_cli(["report", str(run)], capsys, monkeypatch)
    assert code == 0, err
    text = (run / "report.md").read_text()
    assert "Model (`train/best.pt`): fastgrnn, 1 x 4 units, 32 inputs, 4 classes" in text
    RunDir(run).best.unlink()
    code, _, err = run_cli(["report", str(run)], capsys, monkeypatch)
    text = (run / "report.md").read_text()
    assert code == 0 and "Not run: train/log.csv" in text and "Model (" not in text, err


def test_a_missing_run_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such run folder or checkpoint"):
        load_model(tmp_path / "nowhere")


# ---------------------------------------------------------------- issue 22: values, not only shapes


@pytest.mark.parametrize("change, match", [
    ({"preemphasis": float("nan")}, "preemphasis must be a finite number"),
    ({"preemphasis": 1.5}, r"preemphasis must be in \[0, 1\]"),
    ({"preemphasis": -0.1}, r"preemphasis must be in \[0, 1\]"),
    ({"fmax": float("inf")}, "fmax must be a finite number"),
    ({"log_delta": float("inf")}, "log_delta must be a finite number"),
    ({"log_delta": 0.0}, "log_delta must be > 0"),
    ({"n_mels": 10**9}, "n_mels must be positive, a whole number up to 1024"),
    ({"n_mels": 300}, "n_mels 300 exceeds the 257 spectrum bins"),
    ({"clip_samples": 16000.5}, "clip_samples must be positive, a whole number"),
    ({"hop": True}, "hop must be positive, a whole number"),
    ({"power_spec": "yes"}, "power_spec must be true or false"),
])  # fmt: skip
def test_feature_params_ranges(change, match):
    """Issue 22 case 5: FeatureParams refuse values outside their documented ranges
    (a NaN pre-emphasis made every score NaN, and every stage but compile went on)."""
    from tinykws.errors import TinyKWSError

    with pytest.raises(TinyKWSError, match=match):
        FeatureParams(**change)
    with pytest.raises(TinyKWSError, match=match):  # and through a feature file or checkpoint
        FeatureParams.from_json(json.dumps({**FeatureParams().to_dict(), **change}))


# ---------------------------------------------------------------- issue 22 case 4: the run lock

_HOLDER = """
import sys
from tinykws.run import RunDir
with RunDir(sys.argv[1]).lock():
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@pytest.fixture
def held_run(tmp_path):
    """A run folder whose lock another process holds; yields (run, that process' pid)."""
    import subprocess
    import sys

    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield run, p.pid
    finally:
        p.stdin.close()
        p.wait(timeout=30)


@pytest.mark.parametrize("argv", [
    ["train", "--out", "RUN", "--features", "RUN/features"],
    ["pipeline", "--quick", "--out", "RUN"],
    ["train-stream", "RUN"],
    ["quantize", "RUN"],
    ["compile", "RUN"],
])  # fmt: skip
def test_a_second_writer_is_refused_naming_the_holder(held_run, argv, capsys, monkeypatch):
    """Two `train --out X` at once both exited 0 and X/train/best.pt held the second one's
    model under the first one's report. Each writing command is refused, one line, exit 2."""
    run, pid = held_run
    code, out, err = run_cli([a.replace("RUN", str(run)) for a in argv], capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and f"in use by another tinykws process (pid {pid})" in lines[0]
    assert sorted(p.name for p in run.iterdir()) == [".tinykws.lock"]  # nothing written


def test_a_stale_lock_is_taken_over_and_the_lock_is_reentrant(tmp_path):
    """A lock file left by a dead process (its pid inside, no flock) does not block; the
    lock is re-entrant in one process (pipeline calls the stages in-process) and free for
    another process after the outermost release."""
    import subprocess
    import sys

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.lock_file.write_text("999999999\n")
    with run.lock():
        assert run.lock_file.read_text().strip() == str(__import__("os").getpid())
        with run.lock(), RunDir(run.root / ".." / run.root.name).lock():  # same folder, another spelling
            pass
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom tinykws.run import RunDir\n"
                                "with RunDir(sys.argv[1]).lock(): pass", str(run.root)],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "in use by another tinykws process" in probe.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys\nfrom tinykws.run import RunDir\n"
                            "with RunDir(sys.argv[1]).lock(): pass", str(run.root)],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


# ---------------------------------------------------------------- builds and compiled folders


@pytest.mark.parametrize("name, abi, precision", [
    ("hard", "hard", "float"), ("soft", "soft", "float"), ("softfp", "softfp", "float"),
    ("int8", "soft", "int8"), ("int8-hard", "hard", "int8"), ("int8-softfp", "softfp", "int8"),
])
def test_build_names_one_axis(tmp_path, name, abi, precision):
    """One `Build` for the build / float ABI / precision axis: its folder name and its
    (ABI, precision) pair say the same thing both ways."""
    b = Build.named(name)
    assert (b.float_abi, b.precision) == (abi, precision)
    assert Build.of(abi, precision) == b
    assert RunDir(tmp_path).device(b) == RunDir(tmp_path).device(name) == tmp_path / "device" / name


def test_compiled_folder_records_its_run(tmp_path):
    """A compiled folder says which run it came from: relative inside the run (so a moved
    or copied run folder still finds itself), absolute for `compile --out` elsewhere."""
    import shutil

    run = tmp_path / "run"
    inside = RunDir(run).device("hard")
    inside.mkdir(parents=True)
    record_compiled_run(inside, run)
    assert json.loads((inside / "run.json").read_text()) == {"run_dir": "../.."}
    assert compiled_run(inside) == run
    shutil.copytree(run, tmp_path / "copy")
    assert compiled_run(tmp_path / "copy" / "device" / "hard") == tmp_path / "copy"
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    record_compiled_run(elsewhere, run)
    assert compiled_run(elsewhere) == run.resolve()


@pytest.mark.parametrize("content", [None, "{torn", '{"other": 1}', '{"run_dir": 3}'])
def test_compiled_folder_without_a_good_record_is_one_error(tmp_path, content):
    from tinykws.errors import TinyKWSError

    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(TinyKWSError, match="pass the run folder with --run, or compile again"):
        compiled_run(tmp_path)


def test_frame_ms_is_the_hop_in_milliseconds():
    assert FeatureParams().frame_ms == 10.0
    assert FeatureParams(hop=320, window_size=640, fft_size=1024).frame_ms == 20.0
