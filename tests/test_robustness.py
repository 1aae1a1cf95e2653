"""Issue 22, "Robustness, second round": the cases that are not about downloads
(tests/test_data_download.py) or checkpoints and the run lock (tests/test_run.py).

Each case drives the CLI in-process as a user would and checks for one `error:` line and
exit 2, or for the correct result.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval_helpers import (
    CATEGORIES, DEV, FEATURE_CATS, make_features, make_run, random_model, run_cli, save_checkpoint,
)
from tinykws.errors import TinyKWSError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_error_line(argv: list, capsys, monkeypatch, match: str) -> str:
    """Run argv; it must exit 2 with one `error:` line (the last line: `pipeline` prints
    its banner first), which contains `match`."""
    code, out, err = run_cli([str(a) for a in argv], capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], (argv, code, err)
    assert argv[0] == "pipeline" or len(lines) == 1, err
    assert match in errors[0], (match, errors[0])
    return errors[0]


def _wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 16000, subtype="PCM_16")
    return path


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    """A run folder with a random 1 x 16 model, random features and a 2-s WAV beside it."""
    run = tmp_path / "run"
    save_checkpoint(run, random_model(), CATEGORIES)
    _wav(tmp_path / "a.wav", 2.0)
    return run


# ---------------------------------------------------------------- case 6: symlinks


def test_links_leading_outside_the_dataset_are_skipped_and_counted(tmp_path, capsys, monkeypatch):
    """A word folder linked elsewhere, a clip linked to /etc/passwd or to a clip of another
    dataset, a noise file linked out: listed as clips before (featurize then opened
    /etc/passwd). Skipped, with a warning that counts them; links inside are followed."""
    from tinykws.data.speech_commands import read_list, scan_dataset

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for word in ("yes", "no"):
        for i in range(4):
            _wav(data / word / f"s{i}_nohash_0.wav")
    _wav(data / "_background_noise_" / "noise.wav", 3.0)
    _wav(elsewhere / "up" / "odd name 16001.wav")
    _wav(elsewhere / "clip.wav")
    (data / "up").symlink_to(elsewhere / "up")  # a linked word folder
    (data / "yes" / "zz_nohash_0.wav").symlink_to("/etc/passwd")
    (data / "no" / "zy_nohash_0.wav").symlink_to(elsewhere / "clip.wav")
    (data / "_background_noise_" / "out.wav").symlink_to(elsewhere / "clip.wav")
    (data / "yes" / "in_nohash_0.wav").symlink_to(data / "no" / "s0_nohash_0.wav")  # inside: kept

    scan = scan_dataset(data)
    assert sorted(scan.outside_links) == ["_background_noise_/out.wav", "no/zy_nohash_0.wav", "up/",
                                          "yes/zz_nohash_0.wav"]
    assert "up" not in scan.words and "yes/in_nohash_0.wav" in scan.words["yes"]
    code, out, err = run_cli(["data", "lists", str(data), "--out", str(tmp_path / "lists"),
                              "--task", "yes,no"], capsys, monkeypatch)
    assert code == 0, err
    assert "skipped 4 link(s) that lead outside" in " ".join(err.split())
    listed = [str(e.path) for split in ("training", "validation", "testing")
              for e in read_list(tmp_path / "lists", split)]
    assert listed and not [p for p in listed if "zz_" in p or "zy_" in p or "odd name" in p]
    assert sorted(json.loads((tmp_path / "lists" / "lists.json").read_text())["outside_links"]) == sorted(scan.outside_links)


def test_list_lines_leading_outside_are_refused(tmp_path):
    """A hand-edited list line `../../etc/passwd` was opened by featurize."""
    from tinykws.data.speech_commands import read_list

    (tmp_path / "categories.txt").write_text("yes\n_unknown_\n")
    for line in ("../../etc/passwd", "/etc/passwd", "yes/../../x.wav"):
        (tmp_path / "training_list.txt").write_text(line + "\n")
        with pytest.raises(TinyKWSError, match="leads outside the data folder"):
            read_list(tmp_path, "training", tmp_path)


# ---------------------------------------------------------------- case 7: partial evaluation


def test_partial_evaluation_does_not_replace_the_full_one(tmp_path, capsys, monkeypatch):
    """`evaluate --max-clips 2` overwrote the pipeline's eval/evaluation.json, and the
    report showed a 2-clip result. It now writes evaluation_partial.json; the report shows
    the full result, or the partial one labelled as such when there is no full one."""
    run = make_run(tmp_path, model=random_model(hidden=8))
    full = {"accuracy": 0.8125, "per_class": {}, "confusion": [], "categories": [], "n": 400,
            "backend": "torch", "layout": "speech_commands", "data_dir": str(DEV), "macro_f1": 0.5}
    (run / "eval").mkdir()
    (run / "eval" / "evaluation.json").write_text(json.dumps(full))
    code, out, err = run_cli(["evaluate", str(run), "--data", str(DEV), "--max-clips", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((run / "eval" / "evaluation.json").read_text()) == full
    part = json.loads((run / "eval" / "evaluation_partial.json").read_text())
    assert part["n"] == 2 and part["partial_of"] > 2
    assert "of %d (a partial evaluation)" % part["partial_of"] in out
    assert "evaluation_partial.json" in err and (run / "eval" / "confusion_partial.png").is_file()

    from tinykws.report import write_report

    text = write_report(run).read_text()
    assert "**Accuracy 81.25%** on 400 clips" in text and "partial" not in text
    (run / "eval" / "evaluation.json").unlink()
    text = write_report(run).read_text()
    assert f"A partial evaluation: 2 of {part['partial_of']} clips" in text
    assert "eval/confusion_partial.png" in text


# ---------------------------------------------------------------- cases 8, 9, 16: numbers


@pytest.mark.parametrize("argv", [
    ["data", "lists", DEV, "--out", "OUT", "--seed", "-5"],
    ["featurize", "TMP", "--lists", "TMP", "--out", "OUT", "--seed", "-5"],
    ["train-stream", "TMP", "--seed", "-5"],
    ["data", "synth", "--out", "OUT", "--seed", "-5"],
    ["data", "negatives", "--out", "OUT", "--seed", "-5"],
    ["pipeline", "--out", "OUT", "--seed", "-5"],
    ["train", "--out", "OUT", "--features", "TMP", "--seed", "-5"],
    ["data", "lists", DEV, "--out", "OUT", "--seed", str(2**32)],
])  # fmt: skip
def test_negative_seeds_are_one_line(argv, tmp_path, capsys, monkeypatch):
    """Case 8: `--seed -5` raised numpy's `expected non-negative integer` as a traceback."""
    argv = [str(a).replace("OUT", str(tmp_path / "out")).replace("TMP", str(tmp_path)) for a in argv]
    _one_error_line(argv, capsys, monkeypatch, "seed must be a whole number in 0..4294967295")
    assert not (tmp_path / "out" / "lists.json").exists()


@pytest.mark.parametrize("command", ["synth", "negatives"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e12", "1e122", "0"])
def test_noise_seconds_out_of_range(command, value, tmp_path, capsys, monkeypatch):
    """Case 9: `negative dimensions`, `cannot convert float NaN`, or a 114 PiB allocation."""
    _one_error_line(["data", command, "--out", tmp_path / "out", "--noise-seconds", value],
                    capsys, monkeypatch, "--noise-seconds must be in [")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, match", [
    (["--lr-min", "1"], "lr_min 1.0 is above the learning rate"),
    (["--noise-db", "0", "-20"], "noise_db is a range LO HI with LO <= HI"),
    (["--label-smoothing", "1"], "label smoothing must be in [0, 1)"),
    (["--time-shift", "1000"], "time_shift 1000 must be less than the clips' 20 frames"),
    (["--time-masks", "1", "--time-mask-width", "20"], "time_mask_width 20 must be less"),
    (["--freq-masks", "1", "--freq-mask-width", "40"], "freq_mask_width 40 must be less than the clips' 32 mel bands"),
])  # fmt: skip
def test_nonsense_training_values(flags, match, tmp_path, capsys, monkeypatch):
    """Case 16: accepted before (an lr_min above the rate, a noise range upside down, label
    smoothing 1 (uniform targets), a shift of 1000 frames on 98-frame clips)."""
    feats = make_features(tmp_path / "features", n_train=8, n_val=4)
    _one_error_line(["train", "--features", feats, "--out", tmp_path / "run", "--epochs", "1",
                     "-hu", "4", *flags], capsys, monkeypatch, match)
    assert not (tmp_path / "run" / "train" / "best.pt").exists()


@pytest.mark.parametrize("argv, match", [
    (["data", "lists", DEV, "--out", "OUT", "--task", "yes,,no"], "has an empty item"),
    (["data", "lists", DEV, "--out", "OUT", "--task", "yes,no,"], "has an empty item"),
    (["data", "synth", "--out", "OUT", "--words", "yes,,no"], "--words 'yes,,no' has an empty item"),
    (["data", "negatives", "--out", "OUT", "--keywords", "yes,,no"], "--keywords 'yes,,no' has an empty item"),
])  # fmt: skip
def test_empty_list_items_are_refused(argv, match, tmp_path, capsys, monkeypatch):
    """Case 16: `--task yes,,no` silently dropped the empty item."""
    argv = [str(a).replace("OUT", str(tmp_path / "out")) for a in argv]
    _one_error_line(argv, capsys, monkeypatch, match)


# ---------------------------------------------------------------- case 12: torn JSON files


def test_torn_synth_json_is_one_line(tmp_path, capsys, monkeypatch):
    """`pipeline --quick --out RUN` on a torn RUN/data/synth.json: JSONDecodeError."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "synth.json").write_text('{"params": {"words": ["ye')
    line = _one_error_line(["pipeline", "--quick", "--out", run], capsys, monkeypatch, "synth.json is damaged")
    assert "delete" in line


def test_torn_lists_json_is_one_line(tmp_path):
    """The lists' record (read when no data folder is given): JSONDecodeError before."""
    from tinykws.data.speech_commands import read_list

    (tmp_path / "categories.txt").write_text("yes\n")
    (tmp_path / "training_list.txt").write_text("yes/a.wav\n")
    for torn in ('{"data_dir": "/x', "\xff\xfe", "[1, 2]", '{"data_dir": 3}'):
        (tmp_path / "lists.json").write_text(torn, errors="surrogateescape")
        with pytest.raises(TinyKWSError, match="lists.json"):
            read_list(tmp_path, "training")


# ---------------------------------------------------------------- case 17: usage


def test_detect_audio_and_live_together(tiny_run, capsys, monkeypatch):
    """`detect AUDIO --live` said PortAudio was missing."""
    _one_error_line(["detect", tiny_run, tiny_run.parent / "a.wav", "--live"], capsys, monkeypatch,
                    "give AUDIO or --live, not both")


def test_verify_on_a_read_only_folder(tmp_path, capsys, monkeypatch):
    """A read-only compiled folder printed an 800-character compiler command line."""
    import errno
    import tempfile

    run = tmp_path / "run"
    save_checkpoint(run, random_model(hidden=4), CATEGORIES)
    compiled = run / "device" / "hard"
    compiled.mkdir(parents=True)
    for f in ("featurizer.S", "model.S"):
        (compiled / f).write_text("")
    if os.geteuid() == 0:  # root writes into a 0555 folder: make the folder say EROFS instead
        real = tempfile.TemporaryFile

        def read_only(*a, dir=None, **kw):
            if Path(dir) == compiled:
                raise OSError(errno.EROFS, "Read-only file system")
            return real(*a, dir=dir, **kw)

        monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    compiled.chmod(0o555)
    try:
        line = _one_error_line(["verify", compiled], capsys, monkeypatch, f"read-only: {compiled}")
        assert len(line) < 300
    finally:
        compiled.chmod(0o755)


# ---------------------------------------------------------------- case 18: compile and report


def test_compile_writes_every_file_atomically(tmp_path, capsys, monkeypatch):
    """`compile` wrote its files in place: a kill mid-write left a torn model.c or .S
    beside the others. Each is now written to a temporary file and renamed: a write that
    dies halfway leaves the previous complete file."""
    import pathlib

    run = tmp_path / "run"
    save_checkpoint(run, random_model(hidden=4), CATEGORIES)
    out = tmp_path / "c"
    code, _, err = run_cli(["compile", str(run), "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    save_checkpoint(run, random_model(seed=1, hidden=4), CATEGORIES)  # other weights: other files
    real_write = pathlib.Path.write_text
    died = []

    def dies_halfway(self, text, *a, **kw):
        if self.parent == out and not died and "model.c" in self.name:
            died.append(self.name)
            real_write(self, text[: len(text) // 2], *a, **kw)
            raise KeyboardInterrupt  # the kill
        return real_write(self, text, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "write_text", dies_halfway)
    code, _, err = run_cli(["compile", str(run), "--out", str(out)], capsys, monkeypatch)
    assert code == 130 and died
    assert (out / "model.c").read_bytes() == before["model.c"]  # the old file, whole
    after = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == set(before)


def test_report_names_the_damaged_json_it_skipped(tiny_run, capsys, monkeypatch):
    """The report silently ignored a damaged JSON file (and called the stage "not run")."""
    (tiny_run / "eval").mkdir()
    (tiny_run / "eval" / "stream.json").write_text('{"at_threshold": {"rec')
    (tiny_run / "pipeline.json").write_bytes(b"\xff\xfe\x00")
    code, out, err = run_cli(["report", str(tiny_run)], capsys, monkeypatch)
    assert code == 0, err
    text = (tiny_run / "report.md").read_text()
    assert "**Skipped damaged files**" in text and "`eval/stream.json`" in text and "`pipeline.json`" in text
    assert "skipped damaged eval/stream.json" in err and "skipped damaged pipeline.json" in err
