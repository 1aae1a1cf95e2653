"""`tinykws verify DIR --stream AUDIO` for an integer (int8) build: the all-integer firmware
loop (int16 samples -> mfcc_FilterInt16 -> completemodel_PredictQ -> detector_ProcessQ) on
the emulated Cortex-M4 over a recording gives exactly the Python integer reference's
features, scores and detections (one never-reset state), calling no soft-float helper; the
float interface agrees on the counted blocks; and the float model's detections are
reported beside them.

The run is test_device_stream's small random FastGRNN (1 x 16), with a frame stride of 2 as
the pipeline's default model (test_device_stream has the stride-1 one), quantized here, with a
threshold its integer scores cross several times on a stream of real dev clips. Device and
reference run the same integer detector (`IntTrigger`, `tkws_qdetect.c`): detections and
confidences must be identical, bit for bit. The threshold also keeps 1e-5 away from every
smoothed score, so that the float rule computed in batch (`pick_detections`) must agree too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval_helpers import run_cli
from test_device_e2e import CATEGORIES, DATA, make_run
from test_device_stream import _stream_audio
from tinykws.detector_config import DetectorConfig, save_detector
from tinykws.triggers import IntTrigger, moving_average, pick_detections

pytest.importorskip("unicorn", reason="the emulated Cortex-M4 needs the device extra (unicorn)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMOOTH_MS, REFRACTORY_MS, FRAME_MS = 100.0, 500.0, 10.0


def _quantize(run: Path, audio: np.ndarray) -> None:
    """RUN/quant/model_int.npz from train/best.pt, its hidden-state ranges calibrated on the
    run's testing clips and the stream itself (what `tinykws quantize` does with features)."""
    from tinykws.data.audio import load_audio
    from tinykws.data.speech_commands import read_list
    from tinykws.features import FeatureParams, frames_from_stream, logmel
    from tinykws.quant.calibrate import layer_ranges
    from tinykws.quant.model import quantize_model
    from tinykws.checkpoint import load_model

    model, ck = load_model(run)
    clips = np.stack([logmel(load_audio(e.path)[0], FeatureParams())
                      for e in read_list(run / "lists", "testing")])
    (h1, in1), (h2, in2) = (layer_ranges(model, clips),
                            layer_ranges(model, frames_from_stream(audio, FeatureParams())[None]))
    im = quantize_model(model, list(ck.categories), np.maximum(h1, h2),
                        rank_max_abs=np.maximum(in1, in2))
    im.info["checkpoint"] = "train/best.pt"
    im.save(run / "quant" / "model_int.npz")


def _reference(run: Path, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times [T] and integer-model scores [T, C] (float32 probabilities) over the stream,
    the batch way: the whole recording's Q7.8 frames, then `IntModel.run` on one clip."""
    from tinykws.features import FeatureParams
    from tinykws.quant.calibrate import load_int_model
    from tinykws.quant.features import frames_from_stream_q
    from tinykws.quant.model import scores_float

    fp = FeatureParams()
    q = frames_from_stream_q(audio, fp)
    _, sc = load_int_model(run).run(q[None])
    times = (np.arange(len(q)) + fp.first_block) * fp.hop / fp.sample_rate
    return times, scores_float(sc[0])


def _threshold_away_from_ties(cats, scores: np.ndarray, cfg: DetectorConfig) -> float:
    """A threshold the best smoothed keyword score crosses a few times and never comes
    within 1e-5 of."""
    kw = cfg.keyword_mask(cats)
    best = moving_average(scores, cfg.smooth_steps(FRAME_MS))[:, kw].max(axis=1)
    for q in (0.9, 0.85, 0.8, 0.95, 0.75, 0.7):
        thr = float(np.quantile(best, q)) + 3e-5
        if np.abs(best - thr).min() > 1e-5:
            return thr
    pytest.fail("no threshold clear of near-ties")


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    from tinykws.codegen import compile_run

    if not DATA.is_dir():
        pytest.fail(f"shared dev data missing at {DATA}")
    root = tmp_path_factory.mktemp("stream_int8")
    run = make_run(root / "run", hidden=16, layers=1, stride=2)
    audio = _stream_audio()
    wav = root / "stream.wav"
    sf.write(wav, audio, 16000)
    _quantize(run, audio)
    cfg = DetectorConfig(smoothing_ms=SMOOTH_MS, refractory_ms=REFRACTORY_MS, mode="rolling")
    _, scores = _reference(run, audio)
    save_detector(run, cfg.replace(threshold=_threshold_away_from_ties(CATEGORIES, scores, cfg)))
    compile_run(run, float_abi="soft", precision="int8")
    return run, wav, audio


def test_int8_device_equals_the_integer_reference(int8_run):
    """Detections (Q15 confidences too), every score and every feature of the integer loop
    equal the integer reference; the detections also equal an independent batch computation
    (`IntModel.run` over the whole recording, then `moving_average` + `pick_detections`).
    The counted loop is the integer one: its entry points, no soft-float helper."""
    from tinykws.detector_config import load_detector_config
    from tinykws.detect import detect_file
    from tinykws.device.verify_stream import verify_stream

    run, wav, audio = int8_run
    r = verify_stream(run / "device" / "int8", wav, count_blocks=40, progress=False)
    assert r.ok, (r.first_difference, r.first_mismatch)
    assert r.precision == "int8" and r.float_abi == "soft"
    assert r.max_score_diff == 0.0 and r.max_feature_diff == 0.0
    assert r.atol == 0.0 and r.max_confidence_diff == 0.0  # the same integer mean
    assert len(r.device_detections) >= 3

    cfg = load_detector_config(run)
    times, scores = _reference(run, audio)
    batch = pick_detections(times, moving_average(scores, cfg.smooth_steps(FRAME_MS)), CATEGORIES,
                            cfg.threshold, cfg.refractory_ms / 1000.0)
    assert r.frames == len(times)
    assert [(d["time_s"], d["label"]) for d in r.device_detections] == \
        [(d.time_s, d.label) for d in batch]
    # detector_ProcessQ's confidence: the Q15 mean rounded down (at most 1/32768 below)
    conf = np.array([d["confidence"] for d in r.device_detections])
    batch_conf = np.array([d.confidence for d in batch])
    assert np.all(conf <= batch_conf + 1e-7) and np.all(batch_conf - conf < 2.0**-15 + 1e-7)
    assert np.array_equal(conf * 32768, np.floor(conf * 32768))  # whole Q15 steps
    trig = IntTrigger.from_config(cfg, CATEGORIES, FRAME_MS)  # on the Q15 scores: exactly
    q15 = np.rint(scores.astype(np.float64) * 32768).astype(np.int64)
    exact = [{**d.to_dict(), "confidence": trig.confidence_q15 / 32768}
             for t, s in zip(times, q15) if (d := trig(t, s))]
    assert r.device_detections == exact

    ins = r.instructions
    assert ins["entry_points"] == {"featurizer": "mfcc_FilterInt16",
                                   "model": "completemodel_PredictQ",
                                   "detector": "detector_ProcessQ"}
    assert ins["soft_float_calls"] == []  # the integer loop: no __aeabi_f* helper ran
    assert ins["model"]["calls"] == 40 - 2 and ins["detector"]["calls"] == 38
    assert ins["total"] == pytest.approx(
        ins["featurizer"]["mean"] + ins["model"]["mean"] + ins["detector"]["mean"])
    assert ins["featurizer"]["mean"] > 5000 and ins["detector"]["mean"] > 0
    # stride 2: a group's first call makes U h, its second W x and the updates; the classifier runs on each
    assert ins["model"]["max"] > ins["model"]["mean"] and ins["max_total"] > ins["total"]  # (stride 1: equal)
    fi = r.float_interface  # the float interface on the counted blocks, checked too
    assert fi["ok"] and fi["frames"] == 38, fi
    fins = fi["instructions"]
    assert fins["entry_points"]["model"] == "completemodel_Predict"
    assert fins["model"]["calls"] == 38 and fins["soft_float_calls"]  # it converts
    assert fins["total"] > ins["total"]  # the conversions the integer loop skips

    fm = r.float_model  # the float model it was quantized from, as `tinykws detect` runs it
    assert fm["checkpoint"] == str(run / "train" / "best.pt")
    python = [d.to_dict() for d in detect_file(run, wav, mode="rolling")]
    assert fm["detections"] == python
    assert 0 <= fm["same_frame"] <= fm["matched"] <= min(len(python), len(r.device_detections))
    assert 0 < fm["max_score_diff"] < 0.5  # quantized, yet the same model
    saved = json.loads((run / "device" / "int8" / "verify_stream.json").read_text())
    assert saved["ok"] and saved["precision"] == "int8"
    assert saved["device_detections"] == r.device_detections


def test_cli_fails_when_the_reference_diverges(int8_run, capsys, monkeypatch):
    """Exit 0 and IDENTICAL as built; exit 1 when the Python reference loses a detection,
    and exit 1 when one score of one frame is one Q15 step off (detections unchanged)."""
    import tinykws.device.verify_stream as ds

    run, wav, _ = int8_run
    args = ["verify", str(run / "device" / "int8"), "--stream", str(wav)]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "IDENTICAL" in out and "bit for bit equal" in out, (out, err)
    assert "integer (int8) build" in out and "vs the float model" in out
    assert "integer loop (mfcc_FilterInt16 -> completemodel_PredictQ -> detector_ProcessQ)" in out
    assert "soft-float helpers called: none" in out and "float interface (mfcc_Filter" in out

    from tinykws.device.reference import IntStreamReference

    real = IntStreamReference.feed

    def patched(change):
        def feed(self, pcm):
            return change(real(self, pcm))
        monkeypatch.setattr(IntStreamReference, "feed", feed)

    def one_missing(c):  # the first detection of the stream is lost
        if c.detections and not getattr(one_missing, "done", False):
            one_missing.done = True
            c.detections = c.detections[1:]
        return c

    patched(one_missing)
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 1 and "DIFFERENT" in out and "first difference (detection 0)" in out

    def score_off_at(frame):
        def change(c):  # one score of one frame one Q15 step off (detections unchanged)
            if c.first_frame <= frame < c.first_frame + len(c.scores):
                c.scores = c.scores.copy()
                c.scores[frame - c.first_frame, 0] += np.float32(2.0**-15)
            return c
        return change

    patched(score_off_at(1000))  # in the second piece, past the 100 counted blocks
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 1 and "IDENTICAL" in out and "DIFFER: first at frame 1000" in out
    assert "FAIL" in out and "float interface (" in out and "detections (" in out

    patched(score_off_at(5))  # within the counted blocks: the float interface differs too
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 1 and "float interface: first difference" in out and "FAIL" in out


def test_the_reference_is_the_same_in_pieces_as_whole(int8_run):
    """`IntStreamReference` fed the recording in pieces (odd sizes, a piece shorter than
    the warm-up first, one block at a time) gives the features, scores and detections of
    one call on the whole recording, and those equal the batch reference
    (`int_reference`: `frames_from_stream_q` + `IntModel.run` on the whole recording)."""
    from tinykws.detector_config import load_detector_config
    from tinykws.device.reference import IntStreamReference, int_reference
    from tinykws.features import FeatureParams
    from tinykws.quant.calibrate import load_int_model

    run, _, audio = int8_run
    fp = FeatureParams()
    pcm = audio[: len(audio) - len(audio) % fp.hop]
    im, cfg = load_int_model(run), load_detector_config(run).replace(mode="rolling")

    def time_of(f):
        return (f + fp.first_block) * fp.hop / fp.sample_rate

    def in_pieces(sizes):
        ref = IntStreamReference(im, fp, cfg, CATEGORIES, time_of)
        out, at = [], 0
        for n in sizes:
            if at < len(pcm):
                out.append(ref.feed(pcm[at: at + n * fp.hop]))
                at += n * fp.hop
        assert at >= len(pcm)
        return (np.concatenate([c.features for c in out]), np.concatenate([c.scores for c in out]),
                [d for c in out for d in c.detections], [d for c in out for d in c.detections_float],
                [c.first_frame for c in out])

    n = len(pcm) // fp.hop
    whole = in_pieces([n])
    feats, scores = int_reference(run)[0](pcm[None].astype(np.float32))
    np.testing.assert_array_equal(whole[0], feats[0])
    np.testing.assert_array_equal(whole[1], scores[0])
    assert len(whole[2]) >= 3  # the detections are compared too
    for sizes in ([1, 2, 1] + [37] * n, [101, 3] * n, [1] * n, [n - 5, 5]):
        parts = in_pieces(sizes)
        np.testing.assert_array_equal(parts[0], whole[0])
        np.testing.assert_array_equal(parts[1], whole[1])
        assert parts[2] == whole[2] and parts[3] == whole[3]
        assert parts[4][-1] + 0 <= len(whole[1])  # first_frame counts frames made before


def test_verify_stream_in_small_pieces_reports_the_same(int8_run):
    """verify_stream with 37-block pieces (the device and the reference cut alike, states
    carried) reports what it reports with the default 2,000-block pieces."""
    from tinykws.device.verify_stream import verify_stream

    run, wav, _ = int8_run
    a = verify_stream(run / "device" / "int8", wav, count_blocks=40, progress=False)
    b = verify_stream(run / "device" / "int8", wav, count_blocks=40, progress=False,
                      chunk_blocks=37)
    assert a.ok and b.ok
    keep = ("frames", "device_detections", "python_detections", "max_score_diff",
            "max_feature_diff", "audio_seconds", "instructions", "float_interface")
    assert {k: getattr(a, k) for k in keep} == {k: getattr(b, k) for k in keep}
    assert a.float_model["detections"] == b.float_model["detections"]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_damaged_integer_model_is_a_one_line_error(int8_run, tmp_path, damage,
                                                                capsys, monkeypatch):
    run, wav, _ = int8_run
    other = tmp_path / "run"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("build"))
    qpath = other / "quant" / "model_int.npz"
    if damage == "missing":
        qpath.unlink()
    else:
        qpath.write_bytes(qpath.read_bytes()[:100])
    code, out, err = run_cli(["verify", str(other / "device" / "int8"), "--stream", str(wav)],
                             capsys, monkeypatch)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "tinykws quantize" in err


def test_match_detections_pairs_each_detection_once():
    """Same label within the window, each float detection used once, the earliest first."""
    from tinykws.device.verify_stream import match_detections

    def d(t, label):
        return {"time_s": t, "label": label, "confidence": 0.9}

    int8 = [d(1.0, "yes"), d(1.2, "yes"), d(3.0, "no"), d(5.0, "up"), d(7.0, "go")]
    flt = [d(1.1, "yes"), d(3.0, "no"), d(5.0, "down"), d(7.6, "go")]
    assert match_detections(int8, flt, 0.5) == (2, 1)  # 1.2 "yes" finds 1.1 taken
    assert match_detections(int8, flt, 0.6) == (3, 1)
    assert match_detections([], flt) == (0, 0)
