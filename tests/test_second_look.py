"""The detector's second look (`tinykws.second_look`): the verifier's window and score, the
streaming form against the batch form, what it keeps and drops, its settings, its training,
the CLI, and the C builds (first stage only, said so)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from eval_helpers import CATEGORIES, FEATURE_CATS, make_features, make_run, random_model, run_cli, tone_stream
from tinykws.checkpoint import Checkpoint, load_model
from tinykws.detect import Detector
from tinykws.detector_config import DetectorConfig, load_detector, save_detector
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams, frames_from_stream
from tinykws.models import ModelConfig
from tinykws.run import RunDir
from tinykws.second_look import (
    delay_frames, frame_index, train_verifier, verifier_is_current, verifier_scores,
)

META = Checkpoint(ModelConfig(num_classes=len(CATEGORIES)), FeatureParams(), tuple(CATEGORIES), {})
YES = CATEGORIES.index("yes")


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 2000).astype(np.int16)


def test_frame_index_inverts_the_traces_times():
    p = FeatureParams()
    times, _ = Detector(threshold=0.0, mode="rolling", model=random_model(), checkpoint=META).score_trace(_noise(2))
    assert [frame_index(t, p) for t in times] == list(range(len(times)))
    assert delay_frames(200.0, p) == 20 and delay_frames(0.0, p) == 0


def test_verifier_scores_are_the_clip_probability_of_each_window():
    """Each score is softmax(model(the 98 frames ending at `end`))[label]; windows reaching
    before frame 0 or past the last frame score NaN (no threshold keeps them)."""
    model = random_model(seed=4)
    frames = frames_from_stream(_noise(3))
    ends, labels = [97, 150, len(frames) - 1, 96, len(frames)], [0, 3, YES, 1, 2]
    got = verifier_scores(model, frames, ends, labels, 98)
    x = torch.from_numpy(frames)
    for e, c, g in zip(ends[:3], labels[:3], got[:3]):
        with torch.no_grad():
            ref = torch.softmax(model(x[e - 97 : e + 1][None]), -1)[0, c].item()
        assert g == pytest.approx(ref, abs=1e-6)
    assert np.isnan(got[3]) and np.isnan(got[4])


@pytest.mark.parametrize("delay_ms", [0.0, 200.0, 330.0])
@pytest.mark.parametrize("mode", ["rolling", "window"])
def test_streaming_second_look_equals_the_batch_one(mode, delay_ms):
    """Block by block (`Detector.run`) and over a whole trace (`detections_from_trace`,
    `detection_sweep`) the second look keeps the same detections, at every verifier
    threshold; at 0 it keeps every first-stage detection whose window fits in the stream."""
    audio = _noise(8, seed=1)
    stream_model, verifier = random_model(seed=1), random_model(seed=7)
    first = Detector(threshold=0.0, smoothing_ms=100, refractory_ms=500, mode=mode,
                     model=stream_model, checkpoint=META)
    times, scores = first.score_trace(audio)
    frames = frames_from_stream(audio)
    one_stage = first.detections_from_trace(times, scores)
    assert len(one_stage) > 8
    d = delay_frames(delay_ms, FeatureParams())
    fits = [x for x in one_stage if 97 <= frame_index(x.time_s, FeatureParams()) + d < len(frames)]
    p = FeatureParams()
    s = verifier_scores(verifier, frames, [frame_index(x.time_s, p) + d for x in fits],
                        [CATEGORIES.index(x.label) for x in fits], 98)
    s = np.sort(s)
    between = [(s[i] + s[i + 1]) / 2 for i in (len(s) // 4, len(s) // 2, 3 * len(s) // 4)]  # no ties
    kept_counts = []
    for t2 in (0.0, *between, 1.0):
        cfg = replace(first.config, second_look=t2, second_look_delay_ms=delay_ms)
        det = Detector(model=stream_model, checkpoint=META, config=cfg, verifier=verifier)
        streamed = det.run(audio)
        batch = det.detections_from_trace(times, scores, frames=frames)
        assert _key(streamed) == _key(batch)  # confidences: equal up to float rounding
        assert det.detection_sweep(times, scores, [0.0, 0.3], frames=frames)[0] == batch
        if t2 == 0.0:
            assert batch == fits
        kept_counts.append(len(batch))
    assert kept_counts == sorted(kept_counts, reverse=True) and kept_counts[-1] == 0
    assert len(set(kept_counts)) > 2  # the thresholds in between do sort the detections


def _key(dets) -> list[tuple[float, str]]:
    return [(round(d.time_s, 6), d.label) for d in dets]


class _LoudVerifier(torch.nn.Module):
    """Stand-in verifier: 'yes' when the window's loudest frame is above `level` (mean log-mel)."""

    def __init__(self, level: float):
        super().__init__()
        self.level = level

    def forward(self, x):  # [B, T, F] -> logits [B, C]
        logits = torch.zeros(x.shape[0], len(CATEGORIES))
        logits[:, YES] = 20.0 * (x.mean(2).amax(1) - self.level)
        return logits


def test_the_second_look_drops_what_its_verifier_does_not_hear():
    """A stream stage that fires on every tone burst; a verifier that only hears loud ones:
    the quiet bursts' detections are dropped, the loud ones kept at their first-stage time."""
    from test_detect import EnergyModel

    loud, quiet = tone_stream(12.0, [1.5, 7.5], amp=8000), tone_stream(12.0, [4.5, 10.5], amp=1500)
    audio = np.clip(loud.astype(np.int32) + quiet, -32768, 32767).astype(np.int16)
    first = Detector(threshold=0.6, smoothing_ms=100, refractory_ms=1000, mode="rolling",
                     model=EnergyModel(), checkpoint=META)
    fired = first.run(audio)
    assert [round(d.time_s) for d in fired] == [2, 5, 8, 11]
    frames = frames_from_stream(audio)
    level = (frames[frame_index(fired[1].time_s, FeatureParams())].mean() + frames.mean(1).max()) / 2
    det = Detector(model=EnergyModel(), checkpoint=META, verifier=_LoudVerifier(float(level)),
                   config=replace(first.config, second_look=0.9))
    kept = det.run(audio)
    assert kept == [fired[0], fired[2]]


def test_second_look_settings_are_checked_and_saved(tmp_path):
    cfg = DetectorConfig(second_look=0.9, second_look_delay_ms=150)
    assert cfg.first_stage() == DetectorConfig(second_look_delay_ms=150)
    save_detector(tmp_path, cfg)
    assert load_detector(tmp_path)[0] == cfg
    assert load_detector(tmp_path.parent / "missing")[0].second_look is None  # off by default
    for bad in ({"second_look": 1.5}, {"second_look": -0.1}, {"second_look": float("nan")},
                {"second_look_delay_ms": -1.0}, {"second_look_delay_ms": 1e12}):
        with pytest.raises(TinyKWSError, match="second_look"):
            DetectorConfig(**bad)


def test_a_second_look_without_its_features_or_verifier_is_a_clear_error(tmp_path):
    run = make_run(tmp_path)
    with pytest.raises(TinyKWSError, match="train-verifier"):
        Detector(run, config=DetectorConfig(second_look=0.5))
    det = Detector(model=random_model(), checkpoint=META, verifier=random_model(seed=2),
                   config=DetectorConfig(second_look=0.5, mode="rolling", threshold=0.0))
    times, scores = det.score_trace(_noise(3))
    with pytest.raises(TinyKWSError, match="features"):
        det.detections_from_trace(times, scores)
    other = RunDir(run).verifier
    model, ck = load_model(run)
    torch.save({**ck.to_dict(), "categories": list(reversed(CATEGORIES))}, other)
    with pytest.raises(TinyKWSError, match="classes"):
        Detector(run, config=DetectorConfig(second_look=0.5))
    torch.save({**ck.to_dict(), "feature_params": FeatureParams(preemphasis=0.9).to_dict()}, other)
    with pytest.raises(TinyKWSError, match="other features"):
        Detector(run, config=DetectorConfig(second_look=0.5))
    torch.save({**ck.to_dict(), "state_dict": {"nonsense": torch.zeros(1)}}, other)  # damaged
    with pytest.raises(TinyKWSError):
        Detector(run, config=DetectorConfig(second_look=0.5))


def test_cli_detect_with_a_second_look(tmp_path, capsys, monkeypatch):
    """`detect --second-look` runs the run's verifier; without one it is one clear line."""
    run = make_run(tmp_path)
    wav = tmp_path / "noise.wav"
    import soundfile as sf

    sf.write(wav, _noise(4, seed=3), 16000)
    code, out, err = run_cli(["detect", str(run), str(wav), "--threshold", "0", "--second-look", "0.0",
                              "--json"], capsys, monkeypatch)
    assert code == 2 and "train-verifier" in err and "Traceback" not in err
    shutil.copy(RunDir(run).best, RunDir(run).verifier)  # the stream model as its own verifier
    code, out, err = run_cli(["detect", str(run), str(wav), "--threshold", "0", "--json"], capsys, monkeypatch)
    one_stage = json.loads(out)
    code, out, err = run_cli(["detect", str(run), str(wav), "--threshold", "0", "--second-look", "0.0",
                              "--json"], capsys, monkeypatch)
    assert code == 0, err
    kept = json.loads(out)
    assert kept and all(k in one_stage for k in kept)
    code, out, err = run_cli(["detect", str(run), str(wav), "--threshold", "0", "--second-look", "1.0",
                              "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out) == []


def test_train_verifier_learns_from_the_clips_and_the_negatives(tmp_path, capsys, monkeypatch):
    run = RunDir(tmp_path / "run")
    make_features(run.features, n_train=32, n_val=16, T=20)
    with pytest.raises(TinyKWSError, match="negatives"):
        train_verifier(run.root, epochs=1)
    neg = np.load(run.features_file("training"))
    unk = FEATURE_CATS.index("_unknown_")
    np.savez(run.negative_features, features=neg["features"][:12], labels=np.full(12, unk),
             paths=np.array([f"neg{i}.wav" for i in range(12)]), categories=neg["categories"],
             feature_params=neg["feature_params"])
    with pytest.raises(TinyKWSError, match="not training settings"):
        train_verifier(run.root, epochs=1, wings=2)
    path = train_verifier(run.root, epochs=1, hidden_units=8, num_layers=1, batch_size=16)
    assert path == run.verifier and path.is_file()
    model, ck = load_model(path)
    assert list(ck.categories) == FEATURE_CATS and ck.model_config.hidden_size == 8
    assert not (run.train / "verifier" / "features").exists()  # the merged rows are not kept
    # run again: the same recipe on the same rows is kept (other threads too); after a kill
    # (no done marker) it resumes from the last epoch; another recipe starts over
    import tinykws.train

    calls = []
    real = tinykws.train.train
    monkeypatch.setattr(tinykws.train, "train", lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    same = dict(epochs=1, hidden_units=8, num_layers=1, batch_size=16)
    assert verifier_is_current(run.root, **same) and not verifier_is_current(run.root, **{**same, "epochs": 2})
    assert train_verifier(run.root, threads=2, **same) == run.verifier and calls == []
    (run.train / "verifier.json").unlink()  # as if killed before the end
    assert not verifier_is_current(run.root, **same)
    train_verifier(run.root, **same)
    train_verifier(run.root, **{**same, "hidden_units": 6})
    assert calls == [True, False] and load_model(run.verifier)[1].model_config.hidden_size == 6
    assert verifier_is_current(run.root, **{**same, "hidden_units": 6})
    # the CLI: a run folder that is not one is one line
    code, _, err = run_cli(["train-verifier", str(tmp_path / "nowhere")], capsys, monkeypatch)
    assert code == 2 and "no such run folder" in err
