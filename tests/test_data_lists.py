"""The Speech Commands layout reader, the split rule and `make_lists` / `read_list`."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval_helpers import tinykws_command
from tinykws.data import layout, speech_commands
from tinykws.data.audio import load_audio, save_wav
from tinykws.data.speech_commands import (
    GOOGLE12_WORDS,
    SILENCE,
    UNKNOWN,
    make_lists,
    read_categories,
    read_list,
    scan_dataset,
    speaker_of,
    which_set,
)
from tinykws.errors import TinyKWSError

# resolved: ../shared may be a symlink, and make_lists stores resolved paths
from realdata import DEV_SET, REAL, needs_dev_set

DEV = DEV_SET.resolve()  # the whole dev set (tests marked needs_dev_set)
SOME = REAL.resolve()  # the dev set or the committed mini set: any real dataset will do


@pytest.fixture(scope="module")
def dev_lists(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lists")
    make_lists(DEV, "google12", out)
    return out


def speakers(examples) -> set[str]:
    return {e.speaker for e in examples if e.label != SILENCE}


def test_speaker_id_is_the_name_before_nohash():
    assert speaker_of("yes/0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speaker_of("x/ab_cd_nohash_12.wav") == "ab_cd"
    assert speaker_of("noise.wav") == "noise"


@needs_dev_set
def test_hash_rule_matches_the_official_split_of_the_dev_subset():
    # The dev subset was drawn from the official v0.02 testing split (made by TensorFlow's
    # which_set): all 141 speakers must hash to "testing". A wrong hash, modulus or scale
    # would put ~90 % of them elsewhere.
    clips = [p for p in DEV.glob("*/*_nohash_*.wav") if not p.parent.name.startswith("_")]
    assert len(clips) > 2000
    assert {which_set(p) for p in clips} == {"testing"}
    # ... and the rule is not constant: over many ids it gives ~10 / 10 / 80 %.
    counts = Counter(which_set(f"{i:08x}_nohash_0.wav") for i in range(20000))
    assert counts["validation"] / 20000 == pytest.approx(0.10, abs=0.01)
    assert counts["testing"] / 20000 == pytest.approx(0.10, abs=0.01)
    # all clips of a speaker share a split
    assert which_set("a/abc_nohash_0.wav") == which_set("b/abc_nohash_7.wav")


def _tensorflow_which_set(filename: str, validation_percentage=10, testing_percentage=10) -> str:
    """TensorFlow's speech_commands input_data.which_set, transcribed literally."""
    import hashlib
    import os
    import re

    max_num_wavs_per_class = 2**27 - 1
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode()).hexdigest()
    percentage_hash = (int(hash_name_hashed, 16) % (max_num_wavs_per_class + 1)) * (
        100.0 / max_num_wavs_per_class)
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def test_hash_rule_equals_tensorflows_which_set():
    rng = np.random.default_rng(0)
    names = [f"w/{int(v):08x}_nohash_{i % 5}.wav" for i, v in enumerate(rng.integers(0, 2**32, 20000))]
    names += ["yes/ab_cd_nohash_1.wav", "noise.wav", "a_nohash_b_nohash_1.wav"]
    assert [which_set(n) for n in names] == [_tensorflow_which_set(n) for n in names]


@needs_dev_set
def test_google12_on_dev_data_has_12_categories_and_speaker_disjoint_splits(dev_lists):
    cats = read_categories(dev_lists)
    assert cats == list(GOOGLE12_WORDS) + [UNKNOWN, SILENCE]
    splits = {s: read_list(dev_lists, s) for s in ("training", "validation", "testing")}
    for s, ex in splits.items():
        labels = Counter(e.label for e in ex)
        assert set(labels) == set(cats), s  # every class present in every split
        assert all(e.path.is_file() for e in ex)
        assert all(cats[e.label_index] == e.label for e in ex)
    tr, va, te = (speakers(splits[s]) for s in ("training", "validation", "testing"))
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    meta = json.loads((dev_lists / "lists.json").read_text())
    assert meta["speaker_overlap"] == 0 and meta["split_source"] == "dataset lists"


@needs_dev_set
def test_dataset_lists_are_respected(dev_lists):
    official_test = set((DEV / "testing_list.txt").read_text().split())
    ours = [e for e in read_list(dev_lists, "testing") if e.label != SILENCE]
    assert all(str(e.path.relative_to(DEV)) in official_test for e in ours)
    # every official testing keyword clip is used
    kw_official = {p for p in official_test if p.split("/")[0] in GOOGLE12_WORDS}
    assert kw_official <= {str(e.path.relative_to(DEV)) for e in ours}


@needs_dev_set
def test_unknown_clips_come_from_other_words_and_follow_the_share(tmp_path):
    s = make_lists(DEV, "google12", tmp_path / "a", unknown_share=0.5, silence_count=0)
    tr = read_list(tmp_path / "a", "training")
    unk = [e for e in tr if e.label == UNKNOWN]
    assert unk and all(e.path.parent.name not in GOOGLE12_WORDS for e in unk)
    mean_kw = np.mean([s.counts["training"][w] for w in GOOGLE12_WORDS])
    assert len(unk) == round(0.5 * mean_kw)
    assert s.counts["training"][SILENCE] == 0 and not list((tmp_path / "a" / SILENCE).glob("*.wav"))


@needs_dev_set
def test_silence_crops_are_1s_span_a_wide_loudness_range_and_are_deterministic(tmp_path):
    make_lists(DEV, "google12", tmp_path / "a", silence_count=300, seed=3)
    make_lists(DEV, "google12", tmp_path / "b", silence_count=300, seed=3)
    sil = [e for s in ("training", "validation", "testing") for e in read_list(tmp_path / "a", s) if e.label == SILENCE]
    assert len(sil) == 300
    rms = []
    for e in sil:
        x, info = load_audio(e.path, length=None)
        assert len(x) == 16000 and not info.changed
        rms.append(np.sqrt(np.mean((x / 32768.0) ** 2)))
        other = e.path.parents[1].parent / "b" / SILENCE / e.path.name
        np.testing.assert_array_equal(x, sf.read(other, dtype="int16")[0])
    rms = np.array(rms)
    assert rms.min() < 0.003 and rms.max() > 0.1  # far beyond the noise files' own ~0.003
    assert np.all((rms > 0.0008) & (rms < 0.31))
    # log-uniform: about half the crops are below the geometric middle (~0.017)
    assert 0.3 < np.mean(rms < np.sqrt(0.001 * 0.3)) < 0.7


def test_silence_crops_of_held_out_splits_come_from_other_noise_regions(tmp_path, monkeypatch):
    # A 10-s "noise" that is a linear ramp v(t) = v0 + d*t: after any gain, a crop's
    # last/first sample ratio still tells where it started. Training crops must come from the
    # first 8 s, validation from 8-9 s, testing from 9-10 s.
    monkeypatch.setattr(layout, "SILENCE_RMS_RANGE", (0.3, 0.3))  # read by layout.silence_crop
    ramp = np.linspace(1000, 32000, 160000)  # [samples], int16 units
    d = ramp[1] - ramp[0]
    counts = {"training": 20, "validation": 20, "testing": 20}
    lines = layout.write_silence([("ramp", ramp.astype(np.int16))], counts, tmp_path / SILENCE)
    regions = {"training": (0, 8), "validation": (8, 9), "testing": (9, 10)}
    for split, names in lines.items():
        assert len(names) == 20
        for name in names:
            x = sf.read(tmp_path / name)[0]
            first = 15999 * d / (x[-1] / x[0] - 1)  # ramp value at the crop start
            t0 = (first - 1000) / d / 16000  # seconds
            a, b = regions[split]
            assert a - 0.01 <= t0 <= b - 1 + 0.01, (split, t0)


def test_hash_rule_split_is_speaker_disjoint_without_dataset_lists(tmp_path):
    data = tmp_path / "data"
    for w in ("yes", "no", "cat"):
        (data / w).mkdir(parents=True)
        for spk in range(60):
            for n in range(2):
                (data / w / f"{spk:08x}_nohash_{n}.wav").write_bytes(b"")  # lists never read clips
    s = make_lists(data, "yes,no", tmp_path / "lists", silence_count=0)
    assert s.split_source == "hash rule" and s.speaker_overlap == 0
    for split in ("training", "validation", "testing"):
        for e in read_list(tmp_path / "lists", split):
            assert which_set(e.path.name) == split


@needs_dev_set
def test_lists_still_find_the_data_when_the_run_folder_moves(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DEV / "yes", run / "data" / "yes")
    shutil.copytree(DEV / "bed", run / "data" / "bed")
    make_lists(run / "data", "yes", run / "lists", silence_count=0)
    moved = shutil.move(run, tmp_path / "moved")
    ex = read_list(Path(moved) / "lists", "testing")  # dev speakers all hash to testing
    assert ex and all(e.path.is_file() and "moved" in str(e.path) for e in ex)


@needs_dev_set
def test_all_task_uses_every_word_folder(tmp_path):
    s = make_lists(DEV, "all", tmp_path)
    assert len(s.categories) == 35 and UNKNOWN not in s.categories
    assert s.categories == sorted(s.categories)


@needs_dev_set
def test_custom_task_and_max(tmp_path):
    s = make_lists(DEV, "marvin,sheila", tmp_path, max_per_class=5, silence_count=10)
    assert s.categories == ["marvin", "sheila", UNKNOWN, SILENCE]
    assert all(s.counts["training"][w] <= 5 for w in ("marvin", "sheila"))
    assert sum(s.counts[sp][SILENCE] for sp in s.counts) == 10
    again = make_lists(DEV, "marvin,sheila", tmp_path / "again", max_per_class=5, silence_count=10)
    assert (tmp_path / "training_list.txt").read_text() == (tmp_path / "again" / "training_list.txt").read_text()
    assert again.counts == s.counts


@pytest.mark.parametrize("task, msg", [("yes,nope", "nope"), ("yes,yes", "twice"), (",", "empty")])
def test_bad_tasks_are_user_errors(tmp_path, task, msg):
    with pytest.raises(TinyKWSError, match=msg):
        make_lists(SOME, task, tmp_path)


def test_missing_noise_is_a_clear_error_unless_silence_is_off(tmp_path):
    data = tmp_path / "data"
    (data / "yes").mkdir(parents=True)
    (data / "bed").mkdir()
    save_wav(data / "yes" / "a_nohash_0.wav", np.zeros(16000, np.int16))
    save_wav(data / "bed" / "b_nohash_0.wav", np.zeros(16000, np.int16))
    with pytest.raises(TinyKWSError, match="--silence 0"):
        make_lists(data, "yes", tmp_path / "l")
    s = make_lists(data, "yes", tmp_path / "l", silence_count=0)
    assert read_categories(tmp_path / "l") == s.categories == ["yes", UNKNOWN, SILENCE]
    assert sum(s.counts[sp][SILENCE] for sp in s.counts) == 0
    assert sum(s.counts[sp]["yes"] for sp in s.counts) == 1  # the keyword clip is listed


@needs_dev_set
def test_lists_are_never_written_into_the_dataset(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DEV / "yes", data / "yes")
    with pytest.raises(TinyKWSError, match="own folder"):
        make_lists(data, "all", data)


def test_read_list_errors_are_user_errors(tmp_path):
    with pytest.raises(TinyKWSError, match="categories.txt"):
        read_list(tmp_path, "training", data_dir=SOME)
    (tmp_path / "categories.txt").write_text("yes\n")
    with pytest.raises(TinyKWSError, match="split"):
        read_list(tmp_path, "train", data_dir=SOME)
    (tmp_path / "training_list.txt").write_text("bed/x_nohash_0.wav\n")
    with pytest.raises(TinyKWSError, match="_unknown_"):
        read_list(tmp_path, "training", data_dir=SOME)


@needs_dev_set
def test_scan_finds_words_and_noise():
    scan = scan_dataset(DEV)
    assert len(scan.words) == 35 and len(scan.noise_files) == 6
    assert scan.split_lists is not None


# ------------------------------------------------------------------ CLI


@needs_dev_set
def test_cli_lists_prints_counts_and_writes_the_lists(tmp_path):
    p = tinykws_command("data", "lists", str(DEV), "--task", "google12", "--out", str(tmp_path), "--silence", "30", "--seed", "1")
    assert p.returncode == 0, p.stderr
    assert "12 categories" in p.stdout and "_silence_" in p.stdout and "speakers" in p.stdout
    assert len(read_categories(tmp_path)) == 12
    assert sum(e.label == SILENCE for s in ("training", "validation", "testing") for e in read_list(tmp_path, s)) == 30


def test_cli_user_errors_are_one_line_without_traceback(tmp_path):
    p = tinykws_command("data", "lists", str(SOME), "--task", "yes,nope", "--out", str(tmp_path))
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr
    p = tinykws_command("data", "lists", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_cli_on_error_skip_lists_bad_noise_files(tmp_path):
    data = tmp_path / "data"
    for w in ("yes", "bed"):
        (data / w).mkdir(parents=True)
        save_wav(data / w / "a1b2c3d4_nohash_0.wav", np.zeros(16000, np.int16))
    (data / "_background_noise_").mkdir()
    save_wav(data / "_background_noise_" / "ok.wav", np.ones(32000, np.int16))
    (data / "_background_noise_" / "broken.wav").write_bytes(b"RIFF garbage")
    save_wav(data / "_background_noise_" / "short.wav", np.ones(8000, np.int16))
    p = tinykws_command("data", "lists", str(data), "--task", "yes", "--out", str(tmp_path / "l"))
    assert p.returncode == 2 and "broken.wav" in p.stderr and "Traceback" not in p.stderr
    p = tinykws_command("data", "lists", str(data), "--task", "yes", "--out", str(tmp_path / "l"), "--on-error", "skip")
    assert p.returncode == 0, p.stderr
    assert "skipped 2" in p.stderr and "broken.wav" in p.stderr
    assert "short.wav: shorter than 1 s" in p.stderr  # each skipped file is named (was: reason only)


def test_a_folder_named_like_a_clip_is_not_a_clip(tmp_path):
    data = tmp_path / "data"
    for w in ("yes", "no"):
        for spk in range(40):
            (data / w).mkdir(parents=True, exist_ok=True)
            (data / w / f"{spk:08x}_nohash_0.wav").write_bytes(b"")  # lists never read clips
    (data / "yes" / "x.wav").mkdir()
    (data / "_background_noise_" / "n.wav").mkdir(parents=True)
    s = scan_dataset(data)
    assert "yes/x.wav" not in s.words["yes"] and len(s.words["yes"]) == 40
    assert s.noise_files == []
    make_lists(data, "yes,no", tmp_path / "lists", silence_count=0)
    for split in ("training", "validation", "testing"):
        assert all(e.path.name != "x.wav" for e in read_list(tmp_path / "lists", split))


def _tiny_dataset(root: Path, words: dict[str, int], suffix: str = ".wav", lists: bool = False,
                  noise: bool = True) -> Path:
    """A Speech Commands-layout folder of 1-s tones: `words` word -> speakers (1 clip each)."""
    rng = np.random.default_rng(len(str(root)))
    for w, n in words.items():
        (root / w).mkdir(parents=True)
        for spk in range(n):
            x = (rng.normal(0, 1000, 16000)).astype(np.int16)
            sf.write(root / w / f"{w[:2]}{spk:06x}_nohash_0{suffix}", x, 16000, subtype="PCM_16")
    if noise:
        (root / "_background_noise_").mkdir()
        sf.write(root / "_background_noise_" / "white.wav",
                 rng.normal(0, 300, 16000 * 5).astype(np.int16), 16000)
    if lists:  # speaker 0 of each word is validation, speaker 1 testing
        for split, spk in (("validation", 0), ("testing", 1)):
            (root / f"{split}_list.txt").write_text(
                "".join(f"{w}/{w[:2]}{spk:06x}_nohash_0{suffix}\n" for w in words))
    return root


def test_several_folders_flac_extra_is_training_only_and_spare_unknown_is_listed(tmp_path):
    main = _tiny_dataset(tmp_path / "main", {"yes": 6, "no": 6, "cat": 6}, lists=True)
    extra = _tiny_dataset(tmp_path / "extra", {"yes": 2, "bed": 20, "cat": 5}, suffix=".flac",
                          noise=False)
    s = make_lists([main, extra], "yes,no", tmp_path / "lists", silence_count=0)
    assert s.extra_data_dirs == [str(extra.resolve())]
    by_split = {sp: read_list(tmp_path / "lists", sp) for sp in ("training", "validation", "testing")}
    # the extra folder has no lists: every one of its clips is training, none held out
    for sp in ("validation", "testing"):
        assert all(e.path.is_relative_to(main.resolve()) for e in by_split[sp])
        assert {e.label for e in by_split[sp]} == {"yes", "no", UNKNOWN}
    train = by_split["training"]
    extra_yes = [e for e in train if e.path.suffix == ".flac" and e.label == "yes"]
    assert len(extra_yes) == 2 and all(e.path.is_file() for e in extra_yes)
    # _unknown_ keeps its share of the clip phase; the other other-word clips are spare
    # (training keywords: yes 4 + 2 extra, no 4 -> mean 5 -> 5 unknown clips of the 29)
    n_unk = sum(e.label == UNKNOWN for e in train)
    assert n_unk == s.counts["training"][UNKNOWN] == 5
    spare = speech_commands.read_spare(tmp_path / "lists")
    assert len(spare) == s.spare_unknown == 4 + 20 + 5 - 5
    assert {e.label for e in spare} == {UNKNOWN}
    assert not ({e.path for e in spare} & {e.path for e in train})
    # featurize reads the FLAC clips like WAV ones
    assert load_audio(extra_yes[0].path)[0].shape == (16000,)


def test_several_folders_keep_the_hash_rule_when_none_has_lists(tmp_path):
    a = _tiny_dataset(tmp_path / "a", {"yes": 30, "cat": 5})
    b = _tiny_dataset(tmp_path / "b", {"yes": 30}, noise=False)
    make_lists([a, b], "yes", tmp_path / "lists", silence_count=0)
    held = read_list(tmp_path / "lists", "validation") + read_list(tmp_path / "lists", "testing")
    assert any(e.path.is_relative_to(b.resolve()) for e in held)  # b is split too


def test_the_same_folder_twice_is_refused(tmp_path):
    a = _tiny_dataset(tmp_path / "a", {"yes": 3})
    with pytest.raises(TinyKWSError, match="twice"):
        make_lists([a, a], "yes", tmp_path / "lists", silence_count=0)


def test_cli_lists_take_several_folders(tmp_path):
    main = _tiny_dataset(tmp_path / "main", {"yes": 6, "no": 6, "cat": 6}, lists=True)
    extra = _tiny_dataset(tmp_path / "extra", {"bed": 8}, suffix=".flac", noise=False)
    r = tinykws_command("data", "lists", str(main), str(extra), "--out", str(tmp_path / "l"),
                        "--task", "yes,no")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "l" / "lists.json").read_text())
    assert info["extra_data_dirs"] == [str(extra.resolve())] and info["spare_unknown"] > 0


def _pool(counts: dict[str, tuple[int, int]]) -> list[str]:
    """List lines for words -> (speakers, clips per speaker), some behind a `_data1_/` prefix."""
    return [f"{'_data1_/' if i % 2 else ''}{w}/{w}{s:04x}_nohash_{k}.wav"
            for i, (w, (n_spk, per)) in enumerate(counts.items())
            for s in range(n_spk) for k in range(per)]


def test_balanced_pick_spreads_over_words_then_speakers():
    # one dominant word (as bed/cat/happy in the v0.01 extra set) and a few rare ones
    pool = _pool({"bed": (400, 4), "cat": (300, 2), "wow": (3, 1), "dog": (10, 2), "tree": (6, 1)})
    got = speech_commands.balanced_pick(pool, 40, np.random.default_rng(0))
    assert len(got) == len(set(got)) == 40 and set(got) <= set(pool)
    words = Counter(Path(p).parent.name for p in got)
    # the rare words give all they have (3 and 6), the others share the rest evenly
    assert words["wow"] == 3 and words["tree"] == 6
    assert max(words.values()) - min(words[w] for w in ("bed", "cat", "dog")) <= 1
    # no speaker repeats within a word before every speaker of it has spoken
    for w in ("bed", "cat"):
        spk = Counter(speaker_of(p) for p in got if Path(p).parent.name == w)
        assert max(spk.values()) == 1
    dog = Counter(speaker_of(p) for p in got if Path(p).parent.name == "dog")
    assert len(dog) == 10 and max(dog.values()) - min(dog.values()) <= 1  # 10 speakers, 2 clips
    # deterministic for a seed, different for another; all of a small pool
    assert got == speech_commands.balanced_pick(pool, 40, np.random.default_rng(0))
    assert got != speech_commands.balanced_pick(pool, 40, np.random.default_rng(1))
    assert sorted(speech_commands.balanced_pick(pool[:5], 9, np.random.default_rng(0))) == sorted(pool[:5])
    assert speech_commands.balanced_pick(pool, 0, np.random.default_rng(0)) == []


def test_unknown_share_is_not_drowned_by_one_big_word(tmp_path):
    main = _tiny_dataset(tmp_path / "main", {"yes": 10, "no": 10, "cat": 8, "dog": 8}, lists=True)
    extra = _tiny_dataset(tmp_path / "extra", {"bed": 200}, suffix=".flac", noise=False)
    s = make_lists([main, extra], "yes,no", tmp_path / "lists", silence_count=0)
    train = read_list(tmp_path / "lists", "training")
    words = Counter(e.path.parent.name for e in train if e.label == UNKNOWN)
    # 8 unknown clips (the mean keyword class): cat, dog and bed share them (~3 each),
    # where a uniform draw from the 212 pooled clips would give bed ~7 of 8
    assert sum(words.values()) == s.counts["training"][UNKNOWN] == 8
    assert set(words) == {"cat", "dog", "bed"} and max(words.values()) <= 3


def test_the_training_unknown_share_alone_leaves_validation_and_testing_as_they_were(tmp_path):
    """The pipeline gives training twice a keyword class of other words (a clip model of
    scarce data learns `_unknown_` from them) while validation and testing keep the seed's
    one class' worth, so their figures stay comparable across runs."""
    main = _tiny_dataset(tmp_path / "main", {"yes": 10, "no": 10, "cat": 8, "dog": 8, "wow": 8}, lists=True)
    extra = _tiny_dataset(tmp_path / "extra", {"bed": 200}, suffix=".flac", noise=False)
    one = make_lists([main, extra], "yes,no", tmp_path / "one", silence_count=0)
    two = make_lists([main, extra], "yes,no", tmp_path / "two", silence_count=0, train_unknown_share=2)
    both = make_lists([main, extra], "yes,no", tmp_path / "both", silence_count=0, unknown_share=2)
    assert one.counts["training"][UNKNOWN] == 8 and two.counts["training"][UNKNOWN] == 16
    for split in ("validation", "testing"):
        assert two.counts[split][UNKNOWN] == one.counts[split][UNKNOWN] == 1 < both.counts[split][UNKNOWN]
        assert read_list(tmp_path / "two", split) == read_list(tmp_path / "one", split)
    assert two.spare_unknown == one.spare_unknown - 8 and two.train_unknown_share == 2
    with pytest.raises(TinyKWSError, match="--train-unknown-share"):
        make_lists([main, extra], "yes,no", tmp_path / "bad", train_unknown_share=-1)


def test_lists_made_again_leave_the_silence_crops_and_so_the_feature_cache_alone(tmp_path):
    """make_lists rewrote every silence crop on each call, so the features' cache key (which
    reads mtimes) changed and a pipeline run again re-featurized every split and trained
    again. Identical crops now stay as they are; crops a new call has no use for go."""
    main = _tiny_dataset(tmp_path / "main", {"yes": 10, "no": 10, "cat": 8}, lists=True)
    make_lists(main, "yes,no", tmp_path / "lists", silence_count=6)
    crops = sorted((tmp_path / "lists" / SILENCE).glob("*.wav"))
    before = {p.name: p.stat().st_mtime_ns for p in crops}
    assert len(crops) == 6
    make_lists(main, "yes,no", tmp_path / "lists", silence_count=6)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "lists" / SILENCE).glob("*.wav")} == before
    make_lists(main, "yes,no", tmp_path / "lists", silence_count=3)
    assert len(list((tmp_path / "lists" / SILENCE).glob("*.wav"))) == 3
    lines = [e.path for s in ("training", "validation", "testing")
             for e in read_list(tmp_path / "lists", s) if e.label == SILENCE]
    assert len(lines) == 3 and all(p.is_file() for p in lines)
