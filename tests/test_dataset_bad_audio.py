"""featurize on imperfect audio: counted conversions, a clean error naming a bad file, or
--on-error skip leaving it out and listing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from tinykws.dataset import FeaturizeConfig, featurize_lists
from tinykws.run import read_features
from tinykws.features import logmel


def _dataset(root: Path) -> tuple[Path, Path]:
    """A tiny dataset: canonical, short, long, stereo 44.1 kHz clips, plus a corrupt file."""
    rng = np.random.default_rng(0)
    data, lists = root / "data", root / "lists"
    for w in ("yes", "no"):
        (data / w).mkdir(parents=True)
    tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    sf.write(data / "yes/a_nohash_0.wav", tone, 16000, subtype="PCM_16")
    sf.write(data / "yes/b_nohash_0.wav", tone[:8000], 16000, subtype="PCM_16")  # short: padded
    sf.write(data / "no/c_nohash_0.wav", np.tile(tone, 2), 16000, subtype="PCM_16")  # long: cropped
    stereo = rng.normal(0, 0.1, size=(44100, 2)).astype(np.float32)
    sf.write(data / "no/d_nohash_0.wav", stereo, 44100, subtype="PCM_16")  # resampled + mixed
    (data / "no/bad_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage, not audio")
    lists.mkdir()
    (lists / "categories.txt").write_text("yes\nno\n")
    train = ["yes/a_nohash_0.wav", "yes/b_nohash_0.wav", "no/c_nohash_0.wav",
             "no/d_nohash_0.wav", "no/bad_nohash_0.wav"]  # fmt: skip
    (lists / "training_list.txt").write_text("\n".join(train) + "\n")
    (lists / "validation_list.txt").write_text("yes/a_nohash_0.wav\n")
    (lists / "testing_list.txt").write_text("no/c_nohash_0.wav\n")
    return data, lists


def test_bad_clip_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    data, lists = _dataset(tmp_path)
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "tinykws", "featurize", str(data), "--lists", str(lists),
         "--out", str(tmp_path / "f")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "bad_nohash_0.wav" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "f" / "training.npz").exists()


def test_skip_leaves_bad_clip_out_and_counts_conversions(tmp_path: Path, capsys) -> None:
    data, lists = _dataset(tmp_path)
    out = featurize_lists(data, lists, tmp_path / "f", FeaturizeConfig(on_error="skip", workers=2))
    tr = read_features(out["training"])
    assert [Path(p).name for p in tr.paths] == [
        "a_nohash_0.wav", "b_nohash_0.wav", "c_nohash_0.wav", "d_nohash_0.wav"
    ]
    # The short clip is the first half of the tone, zero padded: same features as logmel of that.
    padded = np.zeros(16000, np.int16)
    padded[:8000] = (3000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.int16)
    np.testing.assert_allclose(tr.features[1], logmel(padded), atol=1e-4)
    audio = json.loads((tmp_path / "f" / "training.cache.json").read_text())["audio"]
    assert (audio["loaded"], audio["padded"], audio["cropped"]) == (4, 1, 1)
    assert (audio["resampled"], audio["mixed"]) == (1, 1)
    assert [Path(s["path"]).name for s in audio["skipped"]] == ["bad_nohash_0.wav"]
    err = capsys.readouterr()
    assert "bad_nohash_0.wav" in err.out + err.err and "skipped 1" in err.out + err.err
    line = next(ln for ln in err.err.splitlines() if "bad_nohash_0.wav" in ln and "training" in ln)
    assert line.count("bad_nohash_0.wav") == 1, line  # the path once, not path: path: reason


def test_cache_of_a_skip_run_does_not_satisfy_a_raise_run(tmp_path: Path) -> None:
    """After `--on-error skip`, a default (raise) run reported "unchanged (cached)" with the
    bad clip silently missing; it must redo the split and report the bad clip."""
    import pytest

    from tinykws.errors import AudioError

    data, lists = _dataset(tmp_path)
    out = tmp_path / "f"
    featurize_lists(data, lists, out, FeaturizeConfig(on_error="skip", workers=1))
    with pytest.raises(AudioError, match="bad_nohash_0.wav"):
        featurize_lists(data, lists, out, FeaturizeConfig(workers=1))
    # a skip run reuses its own cache, and a raise run's cache (nothing skipped) serves both
    (lists / "training_list.txt").write_text("yes/a_nohash_0.wav\nno/c_nohash_0.wav\n")
    featurize_lists(data, lists, tmp_path / "g", FeaturizeConfig(workers=1))
    stamp = (tmp_path / "g" / "training.npz").stat().st_mtime_ns
    featurize_lists(data, lists, tmp_path / "g", FeaturizeConfig(on_error="skip", workers=1))
    featurize_lists(data, lists, tmp_path / "g", FeaturizeConfig(workers=1))
    assert (tmp_path / "g" / "training.npz").stat().st_mtime_ns == stamp
