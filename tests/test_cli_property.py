"""Property: every subcommand, driven with random and hostile arguments and files, either
does its job (exit 0), reports a failed check (exit 1, `verify` only) or prints
`error: ...` as its last stderr line and exits 2. Never a traceback, never another code.

The subcommands and their options are read from the CLI itself (typer's click command),
so a new option is covered without editing this file. Runs in-process (`cli.run`). Every
example is kept cheap: path arguments come from a pool of hostile files and folders, and
the commands that would start long work on good input (`pipeline`, `data synth`,
`data negatives`, `data download`) always get one hostile argument that stops them early.

The pool holds damaged runs too (a garbage, a truncated checkpoint; feature params for 40
bands beside a 32-input model; a model_config that disagrees with the weights; a NaN
weight); `test_every_run_loading_stage_refuses_damaged_checkpoints` makes sure each
stage that loads a run meets each of them, which random draws alone would not.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval_helpers import (
    CATEGORIES, DAMAGED_CHECKPOINTS, DEV, damaged_runs, random_model, save_checkpoint,
)
from tinykws import cli
from tinykws.run import record_compiled_run

VALUES = ["nan", "inf", "-inf", "-1", "0", "1", "2", "1e309", "abc", "", "99999999999999999999",
          "ü", "-", "0x10", "0.5", "--", "google12", "hard", "soft", "skip", "raise", "a,b"]
# what a numeric option gets (issue 22): negative, zero, NaN, inf and huge, beside sane values
NUMBERS = ["-5", "-1", "0", "nan", "-nan", "inf", "-inf", "1e12", "1e122", "1e309", "-1e309",
           "100000000000", "99999999999999999999", "4294967296", "0.5", "1", "2", "abc", ""]
NASTY_NUMBERS = ["-5", "0", "nan", "inf", "-inf", "1e122", "100000000000", "99999999999999999999"]
URLS = ["http://127.0.0.1:9/x.tar.gz", "file:///nonexistent/x.tar.gz", "not a url", "",
        "ftp://127.0.0.1:9/x"]
PATH_OPTIONS = {"--out", "--features", "--data", "--lists", "--dest", "--run", "--noise-dir"}
EXIT_ONE = {("verify",)}  # commands whose checks may fail with 1


def _commands():
    """(path, click command) for every leaf subcommand, e.g. (("data", "lists"), cmd)."""
    def walk(c, path=()):
        if hasattr(c, "commands"):
            for name, sub in sorted(c.commands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, c

    return list(walk(typer.main.get_command(cli.app)))


COMMANDS = _commands()


def _is_numeric(p) -> bool:
    """An int or float option (typer's annotation; click's type name in older typer)."""
    td = getattr(p, "type_descriptor", None)
    name = str(td.annotation) if td is not None else getattr(getattr(p, "type", None), "name", "")
    return p.param_type_name == "option" and any(k in name for k in ("int", "float"))


NUMERIC_OPTIONS = [(path, p.opts[0], p.nargs) for path, cmd in COMMANDS for p in cmd.params if _is_numeric(p)]


def _hostile_files(root: Path) -> list[str]:
    """Bad inputs of every kind a careless or hostile user might pass."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty_dir").mkdir()
    (root / "junk.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    (root / "empty.wav").write_bytes(b"")
    (root / "x.wav").mkdir()  # a folder named like a clip
    sf.write(root / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(root / "short.wav", np.zeros(100, np.int16), 16000, subtype="PCM_16")
    garbage = root / "garbage_run"
    (garbage / "train").mkdir(parents=True)
    (garbage / "train" / "best.pt").write_bytes(os.urandom(256))
    save_checkpoint(root / "good_run", random_model(hidden=4), CATEGORIES)  # a real, tiny run
    damaged = damaged_runs(root)  # damaged_n_mels, damaged_hidden, damaged_nan, damaged_truncated
    for run in (garbage, *damaged.values()):  # a compiled folder for `verify` to start on
        (run / "device" / "hard").mkdir(parents=True)
        for name in ("featurizer.S", "model.S"):
            (run / "device" / "hard" / name).write_text("")
        record_compiled_run(run / "device" / "hard", run)
    feats = root / "bad_features"
    feats.mkdir()
    (feats / "training.npz").write_bytes(b"PK\x03\x04 not a zip")
    np.savez(feats / "validation.npz", nothing=np.zeros(3))
    lists = root / "bad_lists"
    lists.mkdir()
    (lists / "categories.txt").write_text("yes\n\x00\n")
    (lists / "training_list.txt").write_text("../../etc/passwd\n")
    (root / "a_file").write_text("just text")
    return [str(root / n) for n in ("missing", "empty_dir", "junk.wav", "empty.wav", "x.wav",
                                    "nan.wav", "short.wav", "garbage_run", "bad_features",
                                    "bad_lists", "a_file", "good_run")] + [str(r) for r in damaged.values()]


@st.composite
def invocations(draw, paths: list[str]):
    """argv for one random subcommand with random options, arguments and values."""
    path, cmd = draw(st.sampled_from(COMMANDS))
    argv = list(path)
    bad_count = ["0", "-1", "abc", "nan", ""]
    forced = {  # one argument that stops commands which would start long work on good input
        ("pipeline",): {"--data": paths},
        ("data", "synth"): {"--per-word": bad_count},
        ("data", "negatives"): {"--utterances": bad_count},
        ("data", "download"): {"--url": URLS},
    }.get(path, {})
    forced = {name: draw(st.sampled_from(pool)) for name, pool in forced.items()}
    for p in cmd.params:
        name = p.opts[0]
        if name in ("--live", "--help"):
            continue  # --live would listen to a microphone for ever
        if p.param_type_name == "argument":
            if draw(st.integers(0, 9)) > 0:  # sometimes missing
                argv.append(draw(st.sampled_from(paths + VALUES)))
            continue
        if name in forced:
            argv += [name, forced[name]]
            continue
        numeric = _is_numeric(p)
        if draw(st.integers(0, 2 if numeric else 4)) > 0:  # few options an example: most reach the real checks
            continue
        if getattr(p, "is_flag", False):
            argv.append(name)
            continue
        pool = (NUMBERS if numeric else paths if name in PATH_OPTIONS else URLS if name == "--url"
                else VALUES + paths[:3])
        argv += [name, *(draw(st.sampled_from(pool)) for _ in range(max(1, p.nargs)))]
    if draw(st.integers(0, 19)) == 19:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--bogus", "extra"])))
    return argv


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> list[str]:
    return _hostile_files(tmp_path_factory.mktemp("hostile"))


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(argv)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_command_exits_cleanly_on_hostile_input(hostile, tmp_path_factory, monkeypatch_module, data):
    argv = data.draw(invocations(hostile), label="argv")
    code, out, err = _run(argv)
    assert "Traceback" not in out + err, argv
    allowed = {0, 2} | ({1} if tuple(argv[:2]) in EXIT_ONE or tuple(argv[:1]) in EXIT_ONE else set())
    assert code in allowed, (argv, code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), (argv, err)


# issue 22: every numeric option of every subcommand, with every nasty value, once. BASE is
# an invocation that reaches the option checks and then stops on a hostile argument (no
# real work); ROOT is the hostile pool's folder, TMP a fresh folder for the example.
SWEEP_BASE = {
    ("data", "download"): ["--dest", "TMP/dl", "--url", "notaurl"],
    ("data", "lists"): [str(DEV), "--out", "TMP/lists", "--task", "yes,nothere"],
    ("data", "negatives"): ["--out", "TMP/neg", "--keywords", "a1"],
    ("data", "synth"): ["--out", "TMP/synth", "--words", "a1"],
    ("detect",): ["ROOT/good_run", "ROOT/short.wav"],
    ("evaluate",): ["ROOT/good_run", "--data", "ROOT/empty_dir"],
    ("featurize",): [str(DEV), "--lists", "ROOT/bad_lists", "--out", "TMP/feats"],
    ("pipeline",): ["--data", "ROOT/empty_dir", "--out", "TMP/run"],
    ("quantize",): ["ROOT/empty_dir"],
    ("train",): ["--features", "ROOT/bad_features", "--out", "TMP/run"],
    ("train-stream",): ["TMP/missing_run"],
    ("train-verifier",): ["ROOT/good_run"],  # stops there: a run without negatives
    ("verify",): ["ROOT/garbage_run/device/hard"],
}


def test_every_numeric_option_is_swept():
    """A new subcommand with numbers gets a SWEEP_BASE entry (else the sweep skips it)."""
    assert {path for path, _, _ in NUMERIC_OPTIONS} <= set(SWEEP_BASE)
    assert len(NUMERIC_OPTIONS) >= 60  # the sweep really sees the options (typer's API moved once)


@pytest.mark.parametrize("path", sorted(SWEEP_BASE), ids=" ".join)
def test_nasty_numbers_for_every_numeric_option(path, hostile, monkeypatch_module, tmp_path):
    """Issue 22: negative, zero, NaN, inf and huge values for each numeric option of the
    command: clean exit (0, 2, or 1 for verify) with one `error:` line, never a traceback,
    an allocation of petabytes or a loop for ever (each invocation stops early by design)."""
    root = str(Path(hostile[0]).parent)
    options = [(name, nargs) for p_, name, nargs in NUMERIC_OPTIONS if p_ == path]
    for i, (name, nargs) in enumerate(options):
        for value in NASTY_NUMBERS:
            tmp = tmp_path / f"{i}_{NASTY_NUMBERS.index(value)}"
            base = [a.replace("ROOT", root).replace("TMP", str(tmp)) for a in SWEEP_BASE[path]]
            argv = [*path, *base, name, *([value] * max(1, nargs))]
            code, out, err = _run(argv)
            assert "Traceback" not in out + err, argv
            assert code in ({0, 1, 2} if path == ("verify",) else {0, 2}), (argv, code, err)
            if code == 2:
                lines = err.strip().splitlines()
                assert lines and lines[-1].startswith("error: "), (argv, err)


# every subcommand that loads a run's checkpoint; RUN is the damaged run, WAV a good clip
RUN_LOADERS = {
    "export": ["export", "RUN"],
    "compile": ["compile", "RUN", "--out", "OUT"],
    "verify": ["verify", "RUN/device/hard", "--run", "RUN"],
    "evaluate": ["evaluate", "RUN", "--data", str(DEV), "--max-clips", "2"],
    "detect": ["detect", "RUN", "WAV"],
    "report": ["report", "RUN"],
    "quantize": ["quantize", "RUN"],
}


@pytest.mark.parametrize("how", ["garbage", *DAMAGED_CHECKPOINTS])
@pytest.mark.parametrize("command", sorted(RUN_LOADERS))
def test_every_run_loading_stage_refuses_damaged_checkpoints(hostile, monkeypatch_module, command, how):
    """Issue 13: each stage that loads a run prints one `error:` line naming the checkpoint
    and exits 2 on every damaged checkpoint of the pool (before: `report` exited 0)."""
    root = Path(hostile[0]).parent
    run = root / ("garbage_run" if how == "garbage" else f"damaged_{how}")
    argv = [a.replace("RUN", str(run)).replace("OUT", str(root / f"out_{how}"))
             .replace("WAV", str(root / "short.wav")) for a in RUN_LOADERS[command]]
    code, out, err = _run(argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, code, err)
    assert str(run / "train" / "best.pt") in lines[0]
    assert not (run / "report.md").exists() and not (root / f"out_{how}").exists()


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    """Module-wide: a scratch working folder, no retry back-off in downloads, one torch
    thread (tiny models), progress bars off."""
    mp = pytest.MonkeyPatch()
    mp.chdir(tmp_path_factory.mktemp("cwd"))
    mp.setattr("tinykws.data.download.time.sleep", lambda s: None)
    mp.setenv("TINYKWS_NO_PROGRESS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield mp
    torch.set_num_threads(threads)
    mp.undo()
