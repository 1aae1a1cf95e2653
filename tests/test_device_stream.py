"""`tinykws verify DIR --stream AUDIO`: featurizer + model + detector on the emulated
Cortex-M4 over a recording give exactly `tinykws detect`'s detections (mode rolling).

The model is a small FastGRNN with random weights and a sharpened classifier: its scores
move with the audio, and the run's threshold is set so that it fires several times on a
stream of real dev clips, away from near-ties (where the single-precision device and the
double-precision Python smoothing may legitimately differ in the last bits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval_helpers import run_cli
from test_device_e2e import DATA, make_run
from tinykws.detector_config import DetectorConfig, save_detector
from tinykws.triggers import moving_average
from tinykws.detect import Detector


def _stream_audio(seconds_of_clips: int = 12) -> np.ndarray:
    """Dev clips one after another with short quiet gaps: int16."""
    rng = np.random.default_rng(1)
    files = sorted(p for p in DATA.glob("*/*.wav") if not p.parent.name.startswith("_"))
    parts = []
    for i in rng.choice(len(files), seconds_of_clips, replace=False):
        x, _ = sf.read(files[i], dtype="int16")
        parts += [x, rng.normal(0, 30, 4000).astype(np.int16)]
    return np.concatenate(parts)


def _threshold_away_from_ties(run: Path, audio: np.ndarray, cfg: DetectorConfig) -> float:
    """A threshold the best smoothed keyword score crosses a few times and never comes
    within 1e-5 of, on a trace where the best two keywords are never that close either
    (device and Python smoothed scores differ by ~1e-7)."""
    det = Detector(run, config=cfg.replace(mode="rolling"))
    times, scores = det.score_trace(audio)
    sm = np.sort(moving_average(scores, cfg.smooth_steps(10.0))[:, det.keywords], axis=1)
    best, gap = sm[:, -1], sm[:, -1] - sm[:, -2]
    assert gap.min() > 1e-5, "two keywords tie"
    for q in (0.9, 0.85, 0.8, 0.95, 0.75, 0.7):
        thr = float(np.quantile(best, q)) + 3e-5
        if np.abs(best - thr).min() > 1e-5:
            return thr
    pytest.fail("no threshold clear of near-ties")


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    from tinykws.codegen import compile_run

    if not DATA.is_dir():
        pytest.fail(f"shared dev data missing at {DATA}")
    root = tmp_path_factory.mktemp("stream")
    run = make_run(root / "run", hidden=16, layers=1)
    audio = _stream_audio()
    wav = root / "stream.wav"
    sf.write(wav, audio, 16000)
    cfg = DetectorConfig(smoothing_ms=100, refractory_ms=500, mode="rolling")
    save_detector(run, cfg.replace(threshold=_threshold_away_from_ties(run, audio, cfg)))
    compile_run(run, float_abi="hard")
    return run, wav


def test_device_detections_equal_tinykws_detect(stream_run):
    from tinykws.detect import detect_file
    from tinykws.device.verify_stream import verify_stream

    run, wav = stream_run
    r = verify_stream(run / "device" / "hard", wav, count_blocks=40, progress=False)
    assert r.ok, r.first_difference
    assert len(r.device_detections) >= 3
    python = [d.to_dict() for d in detect_file(run, wav, mode="rolling")]  # `tinykws detect`
    assert [(d["time_s"], d["label"]) for d in r.device_detections] == \
        [(d["time_s"], d["label"]) for d in python]
    np.testing.assert_allclose([d["confidence"] for d in r.device_detections],
                               [d["confidence"] for d in python], atol=1e-5)
    assert r.max_score_diff < 1e-5
    ins = r.instructions
    assert ins["model"]["calls"] == 40 - 2 and ins["detector"]["calls"] == 38
    assert ins["total"] == pytest.approx(
        ins["featurizer"]["mean"] + ins["model"]["mean"] + ins["detector"]["mean"])
    assert 0 < ins["detector"]["mean"] < ins["model"]["mean"]
    saved = json.loads((run / "device" / "hard" / "verify_stream.json").read_text())
    assert saved["ok"] and saved["device_detections"] == r.device_detections
    # read, run and compared 37 blocks at a time (states carried): the same
    small = verify_stream(run / "device" / "hard", wav, count_blocks=40, progress=False,
                          chunk_blocks=37)
    assert small.ok and small.frames == r.frames
    assert small.device_detections == r.device_detections
    assert small.python_detections == r.python_detections
    assert small.max_score_diff == r.max_score_diff


def test_cli_exit_codes(stream_run, tmp_path, capsys, monkeypatch):
    """0 and IDENTICAL when they agree; 1 and DIFFERENT when they do not; 2 when the
    compiled detector is not the run's."""
    import tinykws.device.verify_stream as ds

    run, wav = stream_run
    compiled = run / "device" / "hard"
    code, out, err = run_cli(["verify", str(compiled), "--stream", str(wav)], capsys, monkeypatch)
    assert code == 0 and "IDENTICAL" in out and "instructions per 10-ms frame" in out, err

    real = ds._FloatReference.feed
    lost = []

    def one_missing(self, pcm):  # the Python side loses the stream's first detection
        scores, found = real(self, pcm)
        if found and not lost:
            lost.append(found[0])
            found = found[1:]
        return scores, found

    monkeypatch.setattr(ds._FloatReference, "feed", one_missing)
    code, out, err = run_cli(["verify", str(compiled), "--stream", str(wav)], capsys, monkeypatch)
    assert code == 1 and "DIFFERENT" in out and "first difference (detection 0)" in out

    monkeypatch.undo()
    other = tmp_path / "other"
    import shutil

    shutil.copytree(run, other)
    save_detector(other, DetectorConfig(threshold=0.99))
    code, out, err = run_cli(["verify", str(other / "device" / "hard"), "--stream", str(wav)],
                             capsys, monkeypatch)
    assert code == 2 and "tinykws compile" in err and "Traceback" not in err



def test_a_recording_shorter_than_the_warm_up_is_refused(stream_run, tmp_path):
    """Two blocks make no frame: a DeviceError says so (the recording is read in pieces,
    so this is found while running, not from its length up front)."""
    from tinykws.device import DeviceError
    from tinykws.device.verify_stream import verify_stream

    run, _ = stream_run
    wav = tmp_path / "short.wav"
    sf.write(wav, np.zeros(2 * 160 + 50, np.int16), 16000)
    with pytest.raises(DeviceError, match="shorter than 3 blocks"):
        verify_stream(run / "device" / "hard", wav, progress=False)


def test_a_second_look_compiles_as_its_first_stage(stream_run, tmp_path, capsys, monkeypatch):
    """The C has no second look yet: `compile` says so and builds the first stage, whose
    detections `verify --stream` checks against Python's first stage."""
    import shutil

    from tinykws.detector_config import load_detector

    run, wav = stream_run
    other = tmp_path / "second"
    shutil.copytree(run, other)
    cfg = load_detector(run)[0]
    save_detector(other, cfg.replace(second_look=0.9))
    code, out, err = run_cli(["compile", str(other)], capsys, monkeypatch)
    assert code == 0 and "second look" in err and "first stage only" in err, err
    assert load_detector(other / "device" / "hard")[0] == cfg
    code, out, err = run_cli(["verify", str(other / "device" / "hard"), "--stream", str(wav)],
                             capsys, monkeypatch)
    assert code == 0 and "IDENTICAL" in out, err
