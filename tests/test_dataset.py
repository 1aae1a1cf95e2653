"""tinykws.dataset: featurize lists -> npz on the shared dev set (hand-made and make_lists
lists), the npz contract, training-only seeded noise, the cache, rows, and bad inputs."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tinykws.dataset as ds
from eval_helpers import tinykws_command
from tinykws.data.audio import load_audio
from tinykws.data.speech_commands import make_lists
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams, logmel, logmel_batch
from tinykws.run import features_stamp, read_features

from realdata import REAL as DEV  # the dev set, or the committed mini set
from realdata import needs_dev_set, require_dev_set
NOISE = DEV / "_background_noise_"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("TINYKWS_NO_PROGRESS", "1")


@pytest.fixture
def lists(tmp_path) -> Path:
    """A small hand list: yes, no and _unknown_ (up); 12 + 6 + 6 clips, disjoint."""
    require_dev_set()  # 8 clips a word
    d = tmp_path / "lists"
    d.mkdir()
    (d / "categories.txt").write_text("yes\nno\n_unknown_\n")
    rels = {w: sorted(p.relative_to(DEV).as_posix() for p in (DEV / w).glob("*.wav"))[:8]
            for w in ("yes", "no", "up")}
    sizes = {"training": (0, 4), "validation": (4, 6), "testing": (6, 8)}
    for split, (lo, hi) in sizes.items():
        lines = [r for w in ("yes", "no", "up") for r in rels[w][lo:hi]]
        (d / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    return d


def run(lists: Path, out: Path, **kw) -> dict[str, Path]:
    return ds.featurize_lists(DEV, lists, out, ds.FeaturizeConfig(workers=kw.pop("workers", 2), **kw))


def load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_npz_contract_and_clean_features(lists, tmp_path):
    out = run(lists, tmp_path / "f")
    assert set(out) == {"training", "validation", "testing"}
    for split, n in (("training", 12), ("validation", 6), ("testing", 6)):
        z = load(out[split])
        assert set(z) == {"features", "labels", "categories", "paths", "feature_params"}
        assert z["features"].dtype == np.float32 and z["features"].shape == (n, 98, 32)
        assert z["labels"].dtype == np.int64 and z["labels"].shape == (n,)
        assert z["categories"].tolist() == ["yes", "no", "_unknown_"]
        assert FeatureParams.from_json(str(z["feature_params"])) == FeatureParams()
        for path, label, feats in zip(z["paths"], z["labels"], z["features"]):
            word = Path(str(path)).parent.name
            assert label == {"yes": 0, "no": 1}.get(word, 2)
            np.testing.assert_array_equal(feats, logmel(load_audio(str(path))[0]))  # no noise: exact
    loaded = read_features(out["testing"])
    assert loaded.params == FeatureParams() and loaded.categories[2] == "_unknown_"


def test_noise_training_only_seeded(lists, tmp_path):
    clean = load(run(lists, tmp_path / "clean")["training"])["features"]
    a = run(lists, tmp_path / "a", noise_dir=NOISE, seed=1)
    b = run(lists, tmp_path / "b", noise_dir=NOISE, seed=1, workers=1)
    c = run(lists, tmp_path / "c", noise_dir=NOISE, seed=2)
    fa, fb, fc = (load(x["training"])["features"] for x in (a, b, c))
    np.testing.assert_array_equal(fa, fb)  # same seed, any worker count: same data
    assert not np.array_equal(fa, fc)  # another seed: other segments and gains
    assert np.abs(fa - clean).max(axis=(1, 2)).min() > 0  # every clip got noise (selection 1)
    for split in ("validation", "testing"):  # clean splits stay clean
        np.testing.assert_array_equal(load(a[split])["features"], load(run(lists, tmp_path / "clean")[split])["features"])
    none = load(run(lists, tmp_path / "n", noise_dir=NOISE, noise_selection=0.0)["training"])["features"]
    np.testing.assert_array_equal(none, clean)


def test_noise_plan_and_mix():
    opts = ds.NoiseOptions(files=(Path("a"), Path("b")), max_ratio=0.3, selection=0.25)
    plan = ds.noise_plan(4000, 2, opts, seed=5)
    np.testing.assert_array_equal(plan, ds.noise_plan(4000, 2, opts, seed=5))
    chosen = plan[:, 0] >= 0
    assert abs(chosen.mean() - 0.25) < 0.03 and set(plan[chosen, 0]) == {0.0, 1.0}
    assert 0 <= plan[:, 2].min() and plan[:, 2].max() <= 0.3 and plan[:, 2].max() > 0.29
    clips = np.array([[30000, -30000, 5, 7]], np.int16)
    noise = [np.array([0, 0, 10000, -10000, 100, 200], np.int16)]
    # start fraction 0.5 of the 3 possible starts -> start 1; gain 0.5 -> + (0, 5000, -5000, 50)
    mixed = ds.mix_noise(clips, np.array([[0, 0.5, 0.5]]), noise)
    assert mixed.tolist() == [[30000, -25000, -4995, 57]]
    mixed = ds.mix_noise(clips, np.array([[0, 0.9, 1.0]]), noise)  # start 2: saturates
    assert mixed.tolist() == [[32767, -32768, 105, 207]]
    assert ds.mix_noise(clips, np.array([[-1, 0.5, 1.0]]), noise).tolist() == clips.tolist()


def test_cache_rerun_does_no_work(lists, tmp_path, monkeypatch):
    out = run(lists, tmp_path / "f")
    stamps = {s: p.stat().st_mtime_ns for s, p in out.items()}

    def boom(*a, **k):
        raise AssertionError("featurize_clips called on an unchanged rerun")

    monkeypatch.setattr(ds, "featurize_clips", boom)
    assert run(lists, tmp_path / "f") == out
    assert {s: p.stat().st_mtime_ns for s, p in out.items()} == stamps
    # a changed option redoes the work
    with pytest.raises(AssertionError, match="unchanged rerun"):
        run(lists, tmp_path / "f", params=FeatureParams(window="hann"))


def test_cache_key_sees_clip_changes(lists, tmp_path):
    examples = ds.read_list(lists, "testing", DEV)
    # touch a copy, never the shared data (read-only, and read by other xdist workers)
    copy = tmp_path / examples[0].path.name
    shutil.copy2(examples[0].path, copy)
    examples = [replace(examples[0], path=copy), *examples[1:]]
    settings = {"x": 1}
    k = ds.cache_key(examples, ["yes"], settings)
    assert k == ds.cache_key(examples, ["yes"], settings)
    assert k != ds.cache_key(examples, ["yes", "no"], settings)
    assert k != ds.cache_key(examples, ["yes"], {"x": 2})
    assert k != ds.cache_key(examples[:-1], ["yes"], settings)
    st = os.stat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert k != ds.cache_key(examples, ["yes"], settings)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert k == ds.cache_key(examples, ["yes"], settings)


def test_features_made_again_from_moved_clips_keep_their_stamp(tmp_path):
    """A run folder copied with `cp -r` (new paths, new mtimes) featurizes again: the cache
    key sees other files. The stamp the trained stages' markers hold is the arrays' digest,
    so it stays, and retraining is not needed; a changed clip changes it."""
    lists = tmp_path / "lists"  # one clip a word and split (the committed mini set has 3)
    lists.mkdir()
    (lists / "categories.txt").write_text("yes\nno\n_unknown_\n")
    rels = {w: sorted(p.relative_to(DEV).as_posix() for p in (DEV / w).glob("*.wav"))[:3]
            for w in ("yes", "no", "up")}
    for i, split in enumerate(("training", "validation", "testing")):
        (lists / f"{split}_list.txt").write_text("".join(rels[w][i] + "\n" for w in rels))
    data = tmp_path / "data"
    for split in ("training", "validation", "testing"):
        for rel in (lists / f"{split}_list.txt").read_text().split():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DEV / rel, data / rel)  # contents only: new mtimes
    noise = tmp_path / "noise"
    shutil.copytree(NOISE, noise, copy_function=shutil.copyfile)
    cfg = ds.FeaturizeConfig(workers=2, noise_dir=NOISE)
    a = ds.featurize_lists(DEV, lists, tmp_path / "a", cfg)
    b = ds.featurize_lists(data, lists, tmp_path / "b", replace(cfg, noise_dir=noise))
    for split in a:
        ka, kb = (json.loads(ds.cache_json(p[split]).read_text())["key"] for p in (a, b))
        assert ka != kb  # other paths and mtimes
        assert features_stamp(a[split]) == features_stamp(b[split]) != ka
        assert len(features_stamp(a[split])) == 64
    assert load(a["training"])["paths"][0] != load(b["training"])["paths"][0]
    clip = data / (lists / "testing_list.txt").read_text().split()[0]
    x = load_audio(clip)[0]
    sf.write(clip, x[::-1], 16000, subtype="PCM_16")  # same size, other speech
    c = ds.featurize_lists(data, lists, tmp_path / "b", replace(cfg, noise_dir=noise, splits=["testing"]))
    assert features_stamp(c["testing"]) != features_stamp(a["testing"])
    # a feature file written before the digest is stamped by its cache key
    meta = ds.cache_json(a["testing"])
    info = json.loads(meta.read_text())
    del info["content"]
    meta.write_text(json.dumps(info))
    assert features_stamp(a["testing"]) == info["key"]
    assert features_stamp(tmp_path / "none.npz") is None


def test_rows_window_and_shift(lists, tmp_path):
    full = load(run(lists, tmp_path / "full", splits=["testing"])["testing"])
    half = load(run(lists, tmp_path / "half", splits=["testing"], window_size=49, shift=49)["testing"])
    assert half["features"].shape == (12, 49, 32)
    np.testing.assert_array_equal(half["features"][0::2], full["features"][:, :49])
    np.testing.assert_array_equal(half["features"][1::2], full["features"][:, 49:])
    np.testing.assert_array_equal(half["labels"], np.repeat(full["labels"], 2))
    np.testing.assert_array_equal(half["paths"], np.repeat(full["paths"], 2))
    assert ds.row_starts(98, 40, 20) == [0, 20, 40]
    with pytest.raises(TinyKWSError, match="longer than a clip"):
        ds.row_starts(98, 99, 1)


@needs_dev_set
def test_featurize_clips_threads_equal_batch():
    files = sorted(DEV.glob("yes/*.wav"))[:70]  # more than one CHUNK
    want = logmel_batch(np.stack([load_audio(f)[0] for f in files]))
    for workers in (1, 3):
        np.testing.assert_array_equal(ds.featurize_clips(files, workers=workers), want)


@needs_dev_set
def test_dev_subset_from_make_lists(tmp_path):
    make_lists(DEV, "yes,no", tmp_path / "lists", max_per_class=15, unknown_share=0.5, silence_count=6)
    out = ds.featurize_lists(DEV, tmp_path / "lists", tmp_path / "f", ds.FeaturizeConfig(noise_dir=NOISE))
    z = load(out["training"])
    cats = z["categories"].tolist()
    assert cats == ["yes", "no", "_unknown_", "_silence_"]
    assert np.bincount(z["labels"], minlength=4)[:2].tolist() == [15, 15]
    assert np.isfinite(z["features"]).all() and z["features"].shape[1:] == (98, 32)
    assert any("_silence_" in str(p) for p in z["paths"])


def test_bad_inputs(lists, tmp_path):
    (lists / "validation_list.txt").write_text("\n")
    with pytest.raises(TinyKWSError, match="empty"):
        run(lists, tmp_path / "f")
    with pytest.raises(TinyKWSError, match="noise folder"):
        run(lists, tmp_path / "f", noise_dir=tmp_path / "nope")
    with pytest.raises(TinyKWSError, match="noise-selection"):
        run(lists, tmp_path / "f", noise_selection=2)
    (lists / "testing_list.txt").write_text("yes/not_there.wav\n")
    with pytest.raises(TinyKWSError, match="not found"):
        run(lists, tmp_path / "f", splits=["testing"])


def test_cli_featurize_and_clean_error(lists, tmp_path):
    # the console script: cli.main's clean errors
    cmd = ["featurize", str(DEV), "--lists", str(lists), "--out", str(tmp_path / "f"), "--workers", "2"]
    r = tinykws_command(*cmd)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f" / "training.npz").is_file() and "testing: 6 clips" in r.stderr
    (lists / "training_list.txt").write_text("")
    r = tinykws_command(*cmd)
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr


def test_fast_wav_reader_equals_load_audio(tmp_path):
    """The decode fast path gives load_audio's samples, or None (-> load_audio) otherwise."""
    import soundfile as sf

    files = sorted(DEV.glob("*/*.wav"))[::40] + sorted(NOISE.glob("*.wav"))
    for f in files:
        got = ds.read_pcm16_wav(f, 16000, 16000)
        assert got is not None, f
        np.testing.assert_array_equal(got, load_audio(f)[0], err_msg=str(f))
    x = (np.random.default_rng(0).normal(0, 3000, 9001)).astype(np.int16)
    short = tmp_path / "short.wav"
    sf.write(short, x, 16000, subtype="PCM_16")
    np.testing.assert_array_equal(ds.read_pcm16_wav(short, 16000, 16000), load_audio(short)[0])
    # an odd-sized extra chunk before "data" (word-aligned, padded) must be skipped
    raw = short.read_bytes()
    data_at = raw.index(b"data")
    extra = b"LIST" + (3).to_bytes(4, "little") + b"abc\x00"
    odd = tmp_path / "odd.wav"
    odd.write_bytes(raw[:data_at] + extra + raw[data_at:])
    np.testing.assert_array_equal(ds.read_pcm16_wav(odd, 16000, 16000), load_audio(odd)[0])
    for name, data, rate, subtype in (
        ("stereo", np.stack([x, x], 1), 16000, "PCM_16"),
        ("rate", x, 8000, "PCM_16"),
        ("float", x / 32768.0, 16000, "FLOAT"),
        ("pcm24", x, 16000, "PCM_24"),
    ):
        sf.write(tmp_path / f"{name}.wav", data, rate, subtype=subtype)
        assert ds.read_pcm16_wav(tmp_path / f"{name}.wav", 16000, 16000) is None, name
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    assert ds.read_pcm16_wav(tmp_path / "junk.wav", 16000, 16000) is None
