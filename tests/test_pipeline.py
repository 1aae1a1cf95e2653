"""End to end: `tinykws pipeline` from synthesized audio to a verified Cortex-M4 build and a report.

The quick configuration runs in CI on every commit (the one real end-to-end path); the full
default job is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realdata import DEV_SET as DEV, needs_dev_set


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tinykws", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def check_run(run: Path) -> None:
    """Every stage left its output, both device builds match Python, the report links its pictures."""
    for rel in (
        "lists/categories.txt", "features/training.npz", "train/best.pt", "train/curves.png",
        "export/model.onnx", "export/model_step.onnx", "eval/evaluation.json",
        "eval/confusion.png", "report.md", "pipeline.json",
    ):  # fmt: skip
        assert (run / rel).is_file(), rel
    for build in ("hard", "int8"):  # hard float, and the integer build for FPU-less cores
        d = run / "device" / build
        for name in ("featurizer.h", "featurizer.S", "model.h", "model.S"):
            assert (d / name).is_file(), d / name
        v = json.loads((d / "verify.json").read_text())
        assert v["ok"] and v["argmax_agreement"] == 1.0 and v["max_abs_diff"] <= 1e-3, v
        assert v["instructions"], "verify must count instructions"
    v = json.loads((run / "device" / "int8" / "verify.json").read_text())
    assert v["reference"] == "int" and v["max_abs_diff"] == 0.0 and v["max_feature_diff"] == 0.0
    assert 0.0 <= v["float_model"]["argmax_agreement"] <= 1.0
    # counted: the all-integer loop (no soft-float helper); the float interface checked too
    assert v["instructions"]["entry_points"]["model"] == "completemodel_PredictQ"
    assert v["instructions"]["soft_float_calls"] == [] and v["float_interface"]["ok"]
    assert (run / "quant" / "model_int.npz").is_file() and (run / "eval" / "evaluation_int8.json").is_file()
    assert "integer (int8)" in (run / "report.md").read_text()
    report = (run / "report.md").read_text()
    for png in ("curves.png", "confusion.png"):
        assert png in report
    for link in [l for l in report.split("(") if ".png)" in l]:
        assert (run / link.split(")")[0]).is_file(), link
    stages = [s["stage"] for s in json.loads((run / "pipeline.json").read_text())]
    assert stages[0] == "data synth" or stages[0] == "data lists"
    assert stages[-1] == "report"


def test_pipeline_quick_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = run_cli("pipeline", "--quick", "--out", str(run), cwd=tmp_path)  # streaming by default
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert r.stdout.strip().endswith("report.md")
    check_run(run)
    acc = json.loads((run / "eval" / "evaluation.json").read_text())["accuracy"]
    assert 0.0 <= acc <= 1.0

    # the stream phase ran: one-state model, its clip model kept and scored as "before"
    assert (run / "train" / "clip.pt").is_file() and (run / "train" / "stream_log.csv").is_file()
    stream = json.loads((run / "eval" / "stream.json").read_text())
    assert stream["mode"] == "rolling" and stream["clip_model"]["mode"] == "window"
    detector = json.loads((run / "detector.json").read_text())
    assert "validation" in detector["operating_point"]["source"]
    assert "validation negatives" in detector["operating_point"]["source"]
    # the negatives have a limit of their own (<= 2 an hour), recorded with their rate there
    op = detector["operating_point"]
    assert op["negative_target_fa_per_hour"] == 2.0 and op["negative_fa_per_hour"] >= 0.0
    assert "on the negatives" in (run / "report.md").read_text()
    # the stream phase heard synthesized non-keyword speech; the report counts false alarms
    # on its held-apart part, for this model and the clip model before it
    # (made once into the user cache, this test process's own TINYKWS_CACHE, not the run folder)
    made = list(Path(os.environ["TINYKWS_CACHE"]).glob("negatives/*/negatives.json"))
    assert made and not (run / "negatives").exists() and (run / "features" / "negatives.npz").is_file()
    # ... in a child process while the clip phase trained (unless this test process's cache
    # already held the set)
    if "in the background" in r.stderr:
        assert (run / "negatives_background.log").is_file()
        assert r.stderr.index("in the background") < r.stderr.index("─ train ─")
    assert "stream efficiency" in (run / "report.md").read_text().lower()
    assert set(stream["efficiency"]) == {"1", "6", "ceiling"} and stream["clip_recall"]["n"] > 0
    assert stream["negatives"]["n_words"] > 0 and "fa_per_hour" in stream["negatives"]["at_threshold"]
    assert "negatives" in stream["clip_model"]
    assert "held-apart non-keyword speech" in (run / "report.md").read_text()
    assert "| train streaming |" in (run / "report.md").read_text().split("## Pipeline stages")[1]

    assert not (run / "train" / "verifier.pt").exists() and detector["detector"]["second_look"] is None

    # A second run finds every stage done: nothing is recomputed, the report is rewritten;
    # --second-look adds the verifier, and the threshold is chosen again with it
    r2 = run_cli("pipeline", "--quick", "--out", str(run), "--second-look", "0.5", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "training already finished" in r2.stderr
    assert "stream training already finished" in r2.stderr
    assert "(cached)" in r2.stderr.split("data negatives")[1].split("train streaming")[0]
    assert (run / "train" / "verifier.pt").is_file()
    assert json.loads((run / "detector.json").read_text())["detector"]["second_look"] == 0.5
    assert "the C runs the first stage only" in r2.stderr  # compile says what the device runs
    assert json.loads((run / "device" / "hard" / "detector.json").read_text())["detector"]["second_look"] is None
    assert "With a second look" in (run / "report.md").read_text()
    # the report's stage table is this run's (it showed the previous run's, or none at all)
    stages_in_report = (run / "report.md").read_text().split("## Pipeline stages")[1]
    assert "| train verifier |" in stages_in_report


def test_pipeline_bad_data_is_a_clean_error(tmp_path: Path) -> None:
    r = run_cli("pipeline", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "nope" in r.stderr


@pytest.mark.parametrize("args,words", [
    (["--negative-utterances", "0"], "--negative-utterances"),
    (["--negatives", "afile.txt"], "is a file"),
    # --epochs 0 was refused only after synthesis, lists and features; --per-word 0 and
    # --verify-clips 0 silently meant the defaults
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--per-word", "0"], "--per-word must be >= 1"),
    (["--verify-clips", "0"], "--verify-clips must be >= 1"),
    (["--verify-clips", "-2"], "--verify-clips must be >= 1"),
    (["--preset", "huge"], "unknown --preset 'huge'"),
    (["--stream-steps", "0"], "--stream-steps must be >= 1"),
    (["--stream-steps", "100", "--no-streaming"], "drop --no-streaming"),
    (["--stream-workers", "0"], "--stream-workers must be >= 1"),
    (["--stream-workers", "3"], "3 stream workers cannot share a step's streams (8)"),
    (["--stream-workers", "2", "--no-streaming"], "drop --no-streaming"),
    (["--second-look", "1.5"], "--second-look is a probability"),
    (["--second-look", "0.9", "--no-streaming"], "drop --no-streaming"),
    # ran every stage up to the stream phase, then said the task had no negatives
    (["--second-look", "0.9", "--task", "all"], "--task all has no `_unknown_` class"),
])
def test_pipeline_bad_options_fail_before_any_work(tmp_path: Path, args, words) -> None:
    (tmp_path / "afile.txt").write_text("x")
    r = run_cli("pipeline", "--quick", "--out", str(tmp_path / "r"), *args, cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r" / "data").exists()  # refused before synthesizing anything


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the budget: 30 minutes on 2 cores (the suite's 900 s is too short)
@needs_dev_set
def test_pipeline_default_on_dev_data(tmp_path: Path) -> None:
    run = tmp_path / "dev"
    r = run_cli("pipeline", "--data", str(DEV), "--out", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-5000:]
    check_run(run)
    acc = json.loads((run / "eval" / "evaluation.json").read_text())["accuracy"]
    assert acc > 1 / 12 * 3, f"testing accuracy {acc} barely above chance"


def _trained_run_with_fake_training(tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    """A run folder with features and a best.pt, and train / train_stream replaced by
    fakes that record their calls (in the returned list) and return "trained" / "streamed"."""
    import tinykws.train
    import tinykws.stream_training
    from eval_helpers import make_features

    run = tmp_path / "run"
    make_features(run / "features", n_train=16, n_val=8, T=10)
    (run / "train").mkdir()
    (run / "train" / "best.pt").write_bytes(b"a model")
    calls: list = []
    monkeypatch.setattr(tinykws.train, "train", lambda *a, **k: calls.append(a) or "trained")
    monkeypatch.setattr(tinykws.stream_training, "train_stream", lambda *a, **k: calls.append(a) or "streamed")
    return run, calls


@pytest.mark.parametrize("stage", ["train", "train streaming"])
def test_a_torn_done_marker_means_run_the_stage_again(tmp_path: Path, monkeypatch, stage) -> None:
    """train/done.json and stream_done.json say a stage finished. A run killed while one was
    written left it torn, and the next `pipeline` died on a JSONDecodeError traceback. Now
    the markers are written atomically, and an unreadable one means: not done."""
    from tinykws import pipeline

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    if stage == "train":
        marker, again = run / "train" / "done.json", lambda: pipeline._train(cfg, run)
    else:
        marker, again = run / "train" / "stream_done.json", lambda: pipeline._train_stream(cfg, run, False)
    marker.write_text('{"conf')  # torn
    assert again() in ("trained", "streamed") and len(calls) == 1
    assert json.loads(marker.read_text())  # whole again
    assert again() is None and len(calls) == 1  # now it is done
    assert [p.name for p in marker.parent.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_a_done_marker_from_before_a_new_training_field_still_counts(tmp_path: Path, monkeypatch) -> None:
    """A finished run's train/done.json written before TrainConfig gained a field (here
    the distillation ones, at their defaults) is still done: the configs are compared as
    TrainConfigs, not as dicts. Another value of a field trains again."""
    import tinykws.train
    from tinykws import pipeline

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    old = tinykws.train.pipeline_recipe(16, quick=True).to_dict()
    for k in ("distill_weight", "distill_temperature"):
        del old[k]
    marker = run / "train" / "done.json"
    marker.write_text(json.dumps({"config": old, "init": None, "features": [None, None]}))
    assert pipeline._train(cfg, run) is None and calls == []  # kept
    marker.write_text(json.dumps({"config": {**old, "epochs": 99}, "init": None, "features": [None, None]}))
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 1


def test_a_finished_stage_that_runs_again_says_what_changed(tmp_path: Path, monkeypatch, capsys) -> None:
    """A run folder trained before the default changed (the frame stride, last round) was
    trained again with no word of why. Now the message names the fields that differ."""
    import tinykws.train
    from tinykws import pipeline

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True, frame_stride=2)
    old = tinykws.train.pipeline_recipe(16, quick=True).to_dict()
    marker = {"config": {**old, "frame_stride": 1}, "init": None, "features": [None, None]}
    (run / "train" / "done.json").write_text(json.dumps(marker))
    assert pipeline._train(cfg, run) == "trained"
    assert "training again: frame_stride 1 -> 2" in " ".join(capsys.readouterr().err.split())

    key = {"config": {**pipeline._stream_config(cfg).to_dict(), "iterations": 5}, "negatives": None, "spare": None}
    (run / "train" / "stream_done.json").write_text(json.dumps(key))
    assert pipeline._train_stream(cfg, run, False) == "streamed"
    said = " ".join(capsys.readouterr().err.split())
    assert f"stream training again: iterations 5 -> {pipeline._stream_config(cfg).iterations}" in said


def test_a_finished_clip_phase_trains_again_on_other_features(tmp_path: Path, monkeypatch, capsys) -> None:
    """train/done.json recorded the recipe and the start, not the data: a run folder made
    again with other lists (another --data, another seed's lists) kept the model trained on
    the old ones whenever the recipe came out the same. Now the features' cache keys are
    part of the marker; a marker from before them trains again, and says so."""
    from tinykws import pipeline
    from tinykws.run import cache_json

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    for split, key in (("training", "a"), ("validation", "b")):
        cache_json(run / "features" / f"{split}.npz").write_text(json.dumps({"key": key}))
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 1
    assert json.loads((run / "train" / "done.json").read_text())["features"] == ["a", "b"]
    assert pipeline._train(cfg, run) is None and len(calls) == 1  # the same data: kept
    cache_json(run / "features" / "training.npz").write_text(json.dumps({"key": "c"}))
    capsys.readouterr()
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 2
    assert "training again: features changed" in " ".join(capsys.readouterr().err.split())
    marker = json.loads((run / "train" / "done.json").read_text())
    del marker["features"]  # written before this change
    (run / "train" / "done.json").write_text(json.dumps(marker))
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 3
    assert "features not recorded" in " ".join(capsys.readouterr().err.split())


def test_a_copied_run_featurized_again_keeps_its_clip_phase(tmp_path: Path, monkeypatch, capsys) -> None:
    """`cp -r` of a run gives its clips new paths and mtimes, so featurize makes the files
    again under a new cache key; the same arrays (the same digest, `content`) keep the trained
    stage. Other arrays train again."""
    from tinykws import pipeline
    from tinykws.run import cache_json

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    for split, key in (("training", "a"), ("validation", "b")):
        cache_json(run / "features" / f"{split}.npz").write_text(json.dumps({"key": key, "content": key * 2}))
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 1
    assert json.loads((run / "train" / "done.json").read_text())["features"] == ["aa", "bb"]
    cache_json(run / "features" / "training.npz").write_text(json.dumps({"key": "c", "content": "aa"}))
    assert pipeline._train(cfg, run) is None and len(calls) == 1  # made again, the same arrays
    cache_json(run / "features" / "training.npz").write_text(json.dumps({"key": "c", "content": "cc"}))
    capsys.readouterr()
    assert pipeline._train(cfg, run) == "trained" and len(calls) == 2
    assert "training again: features changed" in " ".join(capsys.readouterr().err.split())


def test_a_killed_clip_phase_resumes_only_what_it_was_training(tmp_path: Path, monkeypatch) -> None:
    """last.pt is resumed only for the training `train/started.json` says was under way. A
    finished run's last.pt, once the data changed, was "resumed" at its last epoch: the
    new lists kept the old model."""
    import tinykws.checkpoint
    import tinykws.train
    from tinykws import pipeline
    from tinykws.run import cache_json

    run, _ = _trained_run_with_fake_training(tmp_path, monkeypatch)
    resumed: list[bool] = []
    monkeypatch.setattr(tinykws.train, "train", lambda *a, resume=False, **k: resumed.append(resume) or "trained")

    class AnyConfig:  # the checkpoint's recipe: equal to the one asked for
        train_config = property(lambda self: self)

        def __eq__(self, other) -> bool:
            return True

    monkeypatch.setattr(tinykws.checkpoint, "load_checkpoint", lambda path: AnyConfig())
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    key = cache_json(run / "features" / "training.npz")
    key.write_text(json.dumps({"key": "a"}))
    assert pipeline._train(cfg, run) == "trained" and resumed == [False]
    (run / "train" / "last.pt").write_bytes(b"the finished run's last epoch")
    key.write_text(json.dumps({"key": "b"}))  # other lists
    assert pipeline._train(cfg, run) == "trained" and resumed == [False, False]  # not the old run
    (run / "train" / "done.json").unlink()  # ... and that run was killed: resume it
    assert pipeline._train(cfg, run) == "trained" and resumed == [False, False, True]


def test_run_changes_names_markers_and_unreadable_configs() -> None:
    from tinykws.config import TrainConfig
    from tinykws.run import run_changes

    cfg = TrainConfig().to_dict()
    assert run_changes({"config": cfg, "init": "a"}, {"config": cfg, "init": "b"}, TrainConfig) == "init changed"
    assert "threads" not in run_changes({"config": {**cfg, "threads": 3}}, {"config": cfg}, TrainConfig)
    assert run_changes({"config": {"epochs": "x"}}, {"config": cfg}, TrainConfig) == "its recorded config is unreadable"


def test_a_stream_marker_from_before_a_new_stream_field_still_counts(tmp_path: Path, monkeypatch) -> None:
    """The same for stream_done.json: a finished stream phase from before StreamTrainConfig
    gained a field (here `ema_decay`, at its default) is kept, not trained again for
    minutes; another value of a field trains again."""
    from tinykws import pipeline

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    old = pipeline._stream_config(cfg).to_dict()
    del old["ema_decay"]
    marker = run / "train" / "stream_done.json"
    marker.write_text(json.dumps({"config": old, "negatives": None, "spare": None}))
    assert pipeline._train_stream(cfg, run, False) is None and calls == []  # kept
    marker.write_text(json.dumps({"config": {**old, "iterations": 99}, "negatives": None, "spare": None}))
    assert pipeline._train_stream(cfg, run, False) == "streamed" and len(calls) == 1


def test_pretrain_then_train_from_it_on_real_clips(tmp_path: Path, monkeypatch) -> None:
    """`--data`: the synthesized set is made with the run's own classes, a model is
    trained on it in RUN/pretrain, and the real training starts from that model (its
    SHA-256 in the done marker: another pretrained model means train again)."""
    from realdata import MINI
    from tinykws import pipeline
    from tinykws.data.speech_commands import make_lists, read_categories
    from tinykws.dataset import featurize_lists
    from tinykws.run import file_sha256

    monkeypatch.setenv("TINYKWS_NO_PROGRESS", "1")
    run = tmp_path / "run"
    cfg = pipeline.PipelineConfig(data=MINI, out=run, quick=True)
    make_lists(MINI, cfg.task, run / "lists")
    featurize_lists(MINI, run / "lists", run / "features")

    pre = pipeline._pretrain_data(cfg, run)
    assert pre == run / "pretrain"
    assert read_categories(pre / "lists") == read_categories(run / "lists")
    assert (pre / "features" / "training.npz").is_file() and (pre / "data" / "synth.json").is_file()
    assert pipeline._train(cfg, pre) is not None
    init = pre / "train" / "best.pt"

    res = pipeline._train(cfg, run, init=init)
    assert res is not None
    sha = file_sha256(init)
    assert json.loads((run / "train" / "done.json").read_text())["init"] == sha
    assert json.loads((run / "train" / "config.json").read_text())["init"]["sha256"] == sha
    assert pipeline._train(cfg, run, init=init) is None  # done: kept
    assert pipeline._train(cfg, run) is not None  # no pretrained start: another model
    assert json.loads((run / "train" / "done.json").read_text())["init"] is None


def test_pretrain_is_skipped_when_the_synthesized_set_cannot_have_the_run_classes(tmp_path: Path) -> None:
    from tinykws import pipeline

    run = tmp_path / "run"
    (run / "lists").mkdir(parents=True)
    # a class espeak-ng's set cannot list under task google12
    (run / "lists" / "categories.txt").write_text("yes\nno\nzebra\n_unknown_\n_silence_\n")
    cfg = pipeline.PipelineConfig(data=tmp_path, out=run, quick=True)
    assert pipeline._pretrain_data(cfg, run) is None


def test_pipeline_pretrain_option_end_to_end(tmp_path: Path) -> None:
    """`--data DIR --pretrain`: the two pretraining stages run before the clip phase, the
    clip phase starts from their model, and the report says so; without the flag neither
    runs (off by default, docs/benchmarks.md "Issue 10, fifth round"). Its stream phase
    runs on two worker processes, spawned from the `tinykws` command as a user's are."""
    from realdata import MINI

    run = tmp_path / "run"
    r = run_cli("pipeline", "--quick", "--data", str(MINI), "--out", str(run), "--pretrain",
                "--stream-workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    import torch

    assert torch.load(run / "train" / "best.pt", weights_only=True)["stream_config"]["workers"] == 2
    stages = [s["stage"] for s in json.loads((run / "pipeline.json").read_text())]
    assert stages[stages.index("pretrain data"):stages.index("train") + 1] == ["pretrain data", "pretrain", "train"]
    assert json.loads((run / "train" / "config.json").read_text())["init"]["path"].endswith("pretrain/train/best.pt")
    assert "Started from the weights of `pretrain/train/best.pt`" in (run / "report.md").read_text()
    check_run(run)
    from tinykws.pipeline import PipelineConfig
    assert PipelineConfig().pretrain is False


def test_pipeline_tiny_preset_end_to_end(tmp_path: Path) -> None:
    """`--preset tiny`: the low-rank model is trained, quantized with its factors kept,
    compiled, verified (the int8 build bit-exact) and the report sets its int8 model's
    flash and instructions beside the full preset's."""
    from realdata import MINI

    run = tmp_path / "run"
    r = run_cli("pipeline", "--quick", "--data", str(MINI), "--out", str(run), "--preset", "tiny",
                "--no-streaming", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    check_run(run)
    from tinykws.quant.model import IntModel

    assert all(layer.u1 is not None for layer in IntModel.load(run / "quant" / "model_int.npz").layers)
    report = (run / "report.md").read_text()
    assert "(U rank 4)" in report and "the full preset's (2 x 72 GRU" in report
    v = json.loads((run / "device" / "int8" / "verify.json").read_text())
    assert v["ok"] and v["max_abs_diff"] == 0


def test_background_negatives_stop_cleanly_and_the_stage_finishes_them(tmp_path: Path) -> None:
    """The pipeline's background negatives maker, interrupted mid-set (the pipeline failed
    or was killed), leaves its finished jobs logged; the "data negatives" stage then makes
    only the rest, and a finished set is not started again. The pipeline here has SIGINT
    ignored, as one started by a script in the background (`cmd &`, nohup) has: the maker
    inherited that and ran on until it was killed, when it was stopped with SIGINT."""
    import signal
    import time

    from tinykws.data.negatives import NegativesConfig, _read_log, is_complete, make_negatives
    from tinykws.pipeline_negatives import STOP_SECONDS, NegativesPlan, start_negatives, stop_negatives

    sizes = dict(utterances=800, words=60, phrases=10, near_miss_count=2, voices=24,
                 background=10, noise_seconds=5.0)
    plan = NegativesPlan(tmp_path / "cache" / "negs", NegativesConfig(keywords=("yes", "no"), seed=0, **sizes))
    (tmp_path / "run").mkdir()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = start_negatives(plan, tmp_path / "run")
    finally:
        signal.signal(signal.SIGINT, before)
    assert proc is not None and proc.is_alive()
    assert proc.log == tmp_path / "run" / "negatives_background.log"  # what a kill line would name
    log = plan.folder / ".jobs.log"
    deadline = time.time() + 300
    while not (log.is_file() and _read_log(log)) and proc.is_alive() and time.time() < deadline:
        time.sleep(0.2)
    t0 = time.monotonic()
    stop_negatives(proc)
    took = time.monotonic() - t0
    bg_log = tmp_path / "run" / "negatives_background.log"
    why = f"took {took:.1f} s, exit code {proc.exitcode}; its log (stacks if it was killed):\n" + (
        bg_log.read_text() if bg_log.is_file() else "(none)")  # it failed once under load 5
    assert not proc.is_alive() and took < STOP_SECONDS, why
    # through its own handler (exit 1, its log says so), not killed after the wait
    assert proc.exitcode == 1, why
    assert "background negatives: stopped" in bg_log.read_text(), why
    done_before = len(_read_log(log))
    assert done_before >= 1
    assert not is_complete(plan.folder)  # stopped after its first of 5 jobs
    plan.make()  # the stage: finishes the set from where the child stopped
    assert is_complete(plan.folder)
    again = make_negatives(plan.folder, plan.config)
    assert again.reused and again.utterances == 800
    assert start_negatives(plan, tmp_path / "run") is None  # finished: no child


def test_the_negatives_stage_takes_over_from_the_background_maker(tmp_path: Path) -> None:
    """When the clip phase ends, the stage does not wait for the one-worker background
    maker: it stops it and finishes the set on every core (the child's log says so), and
    the set is the one a maker alone makes, clip for clip."""
    import time

    from tinykws.data.negatives import NegativesConfig, _read_log, is_complete, make_negatives
    from tinykws.pipeline import NegativesPlan, finish_negatives, start_negatives

    sizes = dict(utterances=800, words=60, phrases=10, near_miss_count=2, voices=24,
                 background=10, noise_seconds=5.0)
    config = NegativesConfig(keywords=("yes", "no"), seed=0, **sizes)
    plan = NegativesPlan(tmp_path / "cache" / "negs", config)
    (tmp_path / "run").mkdir()
    proc = start_negatives(plan, tmp_path / "run")
    assert proc is not None
    jobs = plan.folder / ".jobs.log"
    deadline = time.time() + 300
    while not (jobs.is_file() and _read_log(jobs)) and proc.is_alive() and time.time() < deadline:
        time.sleep(0.2)
    finish_negatives(plan, proc)
    assert not proc.is_alive() and is_complete(plan.folder)
    assert "the foreground finishes the set" in (tmp_path / "run" / "negatives_background.log").read_text()
    alone = tmp_path / "alone"
    make_negatives(alone, config)
    made = sorted(p.relative_to(plan.folder) for p in plan.folder.rglob("*.wav"))
    assert made == sorted(p.relative_to(alone) for p in alone.rglob("*.wav")) and len(made) > 800
    for rel in made[::97]:
        assert (plan.folder / rel).read_bytes() == (alone / rel).read_bytes(), rel
    assert len(_read_log(plan.folder / ".jobs.log")) == len(_read_log(alone / ".jobs.log"))


def _deaf_maker(stacks: str) -> None:
    """A background maker that ignores its stop (SIGTERM), as a hung one would: the stop's
    fallback must dump its stacks and kill it."""
    import faulthandler
    import signal
    import time

    f = open(stacks, "w")
    faulthandler.register(signal.SIGUSR1, file=f, all_threads=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(0.1)


def test_a_background_maker_that_does_not_stop_is_killed_with_its_stacks_logged(tmp_path, monkeypatch, capsys) -> None:
    import multiprocessing as mp
    import time

    from tinykws import pipeline_negatives as pipeline

    stacks = tmp_path / "stacks.txt"
    proc = mp.get_context("spawn").Process(target=_deaf_maker, args=(str(stacks),))
    proc.start()
    proc.log = stacks  # as start_negatives sets it
    deadline = time.time() + 60
    while not stacks.exists() and time.time() < deadline:  # its handlers are in place
        time.sleep(0.05)
    time.sleep(0.2)
    monkeypatch.setattr(pipeline, "STOP_SECONDS", 1)
    try:
        pipeline.stop_negatives(proc)
        assert not proc.is_alive() and proc.exitcode == -9  # SIGKILL: SIGTERM was ignored
    finally:
        proc.kill()  # a failed stop must not leave it behind
        proc.join()
    assert "_deaf_maker" in stacks.read_text()  # where it was when it would not stop
    err = capsys.readouterr().err  # the console's stderr, wrapped at its width
    assert "did not stop within 1 s and was killed" in " ".join(err.split())
    assert f"itsstacksarein{stacks}" in "".join(err.split())  # the log named with its folder


def test_a_background_maker_stopped_while_it_starts_ends_quietly(tmp_path: Path, capfd) -> None:
    """Stopped at once (a resumed pipeline whose clip phase was already done), the child is
    still importing: it ends without a KeyboardInterrupt traceback on the terminal."""
    import time

    from tinykws.data.negatives import NegativesConfig
    from tinykws.pipeline import NegativesPlan, start_negatives, stop_negatives

    config = NegativesConfig(keywords=("yes", "no"), seed=0, utterances=800, words=60, phrases=10,
                             near_miss_count=2, voices=24, background=10, noise_seconds=5.0)
    (tmp_path / "run").mkdir()
    for delay in (0.0, 0.3, 1.0):  # at different points of the child's start
        proc = start_negatives(NegativesPlan(tmp_path / f"negs{delay}", config), tmp_path / "run")
        time.sleep(delay)
        stop_negatives(proc)
        assert not proc.is_alive() and proc.exitcode != 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_stream_steps_reach_the_stream_phase_and_a_change_trains_again(tmp_path: Path, monkeypatch) -> None:
    """--stream-steps sets the stream phase's iterations (else the default's); a finished
    stream phase with other steps is not taken as done."""
    from tinykws import pipeline
    from tinykws.detector_config import DetectorConfig
    from tinykws.features import FeatureParams
    from tinykws.stream_training import StreamTrainConfig, quick_stream_config

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, quick=True, stream_steps=7), run, False) == "streamed"
    assert calls[-1][2].iterations == 7
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, quick=True, stream_steps=7), run, False) is None
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, quick=True), run, False) == "streamed"
    assert calls[-1][2].iterations == 2 * quick_stream_config().iterations  # frame stride 2
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run), run, False) == "streamed"
    assert calls[-1][2].iterations == 3 * StreamTrainConfig().iterations == 4500  # stride 2 x 1.5
    assert calls[-1][2].workers == 2
    assert (calls[-1][2].target_delay, calls[-1][2].target_frames) == (35, 30)  # it decides later
    # and asks for a keyword at least as long as the detector averages its scores over
    assert calls[-1][2].target_lead + calls[-1][2].target_frames >= DetectorConfig().smoothing_ms / FeatureParams().frame_ms
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, preset="tiny"), run, False) == "streamed"
    assert calls[-1][2].iterations == 1500  # the tiny preset steps every frame
    # recorded speech, the tiny preset and --quick do not decide later (the embedded default does)
    for other in (pipeline.PipelineConfig(out=run, data=tmp_path), pipeline.PipelineConfig(out=run, quick=True),
                  pipeline.PipelineConfig(out=run, preset="tiny")):
        assert pipeline._stream_config(other).target_delay == StreamTrainConfig().target_delay == 0
    # every pipeline lays its stream rows in waveform (the Python API's default stays log-mel)
    for other in (pipeline.PipelineConfig(out=run), pipeline.PipelineConfig(out=run, data=tmp_path),
                  pipeline.PipelineConfig(out=run, quick=True), pipeline.PipelineConfig(out=run, preset="tiny")):
        assert pipeline._stream_config(other).wave_share == 1.0
    assert StreamTrainConfig().wave_share == 0.0
    # recorded speech (--data) gets twice the steps (its time budget is 15 minutes, not 10)
    assert pipeline._stream_config(pipeline.PipelineConfig(out=run, data=tmp_path)).iterations == 6000
    assert pipeline._stream_config(pipeline.PipelineConfig(out=run, data=tmp_path, quick=True)).iterations == \
        2 * quick_stream_config().iterations
    assert pipeline._stream_config(pipeline.PipelineConfig(out=run, data=tmp_path, stream_steps=9)).iterations == 9
    one = pipeline.PipelineConfig(out=run, frame_stride=1)  # the seed's model: a step a frame
    assert pipeline._recipe(one, 2000).frame_stride == 1 and pipeline._recipe(one, 2000).epochs == 80
    assert pipeline._stream_config(one).iterations == 2250
    with pytest.raises(pipeline.TinyKWSError, match="frame_stride"):
        pipeline._check_options(pipeline.PipelineConfig(out=run, frame_stride=9))
    with pytest.raises(pipeline.TinyKWSError, match="stream chunks of 200 frames"):  # before any data
        pipeline._check_options(pipeline.PipelineConfig(out=run, frame_stride=3))
    pipeline._check_options(pipeline.PipelineConfig(out=run, frame_stride=3, streaming=False))  # no chunks
    # --stream-workers reaches the config, and a finished phase with another count trains again
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, stream_workers=4), run, False) == "streamed"
    assert calls[-1][2].workers == 4 and calls[-1][2].iterations == 4500
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, stream_workers=4), run, False) is None
    assert pipeline._train_stream(pipeline.PipelineConfig(out=run, quick=True), run, False) == "streamed"
    assert calls[-1][2].workers == 1  # --quick: one process (CI smoke runs, tests beside each other)


def test_the_clip_phase_takes_one_thread_beside_the_negatives_maker_and_keeps_its_run(
        tmp_path: Path, monkeypatch) -> None:
    """Beside a working background maker the clip phase trains on one torch thread (two
    wait on each other at every GEMM); the thread count is not part of what was trained,
    so a run finished on one thread is kept by a later pipeline that would use two."""
    from dataclasses import replace

    from tinykws import pipeline
    from tinykws.config import TrainConfig, pipeline_recipe
    from tinykws.pipeline import _threads_beside
    from tinykws.run import same_run as _same_run

    run, calls = _trained_run_with_fake_training(tmp_path, monkeypatch)
    cfg = pipeline.PipelineConfig(out=run, quick=True)
    assert pipeline._train(cfg, run, threads=1) == "trained" and calls[-1][2].threads == 1
    assert pipeline._train(cfg, run) is None and len(calls) == 1  # kept: threads 0 is the same training

    class Maker:
        def __init__(self, alive: bool) -> None:
            self.alive = alive

        def is_alive(self) -> bool:
            return self.alive

    assert _threads_beside(Maker(True)) == 1
    assert _threads_beside(Maker(False)) == 0 and _threads_beside(None) == 0
    two = pipeline_recipe(1920)
    one = replace(two, threads=1)
    assert _same_run({"init": None, "config": one.to_dict()}, {"init": None, "config": two.to_dict()}, TrainConfig)
    assert not _same_run({"init": None, "config": replace(one, epochs=3).to_dict()},
                         {"init": None, "config": two.to_dict()}, TrainConfig)
