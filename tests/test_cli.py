"""The command line's contract: usage errors are one line `error: ...` with exit 2, a failed
check exits 1, and nothing needs a package the project does not declare (click)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from tinykws import cli

USAGE_ERRORS = [
    ["bogus"],
    ["detect"],
    ["train", "--epochs", "abc", "--out", "x"],
    ["data", "lists"],
    ["data", "bogus"],
    ["detect", "run", "--threshold"],
    ["compile", "run", "--no-such-flag"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=" ".join)
def test_usage_error_is_one_line_exit_2(argv, capsys):
    code = cli.run(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err


@pytest.mark.parametrize("argv", [[], ["data"], ["--help"], ["train", "--help"]], ids=repr)
def test_help_exits_0(argv, capsys):
    assert cli.run(argv) == 0
    assert "Usage" in capsys.readouterr().out


def test_console_script_without_click():
    """typer vendors click and no longer installs it: the CLI must not import it. `click`
    is blocked here so the test holds whether or not something else installed it."""
    code = (
        "import sys; sys.modules['click'] = None\n"
        "from tinykws.cli import main\n"
        "sys.argv = ['tinykws', 'bogus']\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: No such command 'bogus'"), r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_verify_mismatch_exits_1(monkeypatch, capsys, tmp_path, as_json):
    """`verify` printing FAIL must exit 1 through the console script's main(), which used to
    drop the code that app(standalone_mode=False) returns."""
    import tinykws.device as device

    report = SimpleNamespace(ok=False, to_dict=lambda: {"ok": False})
    monkeypatch.setattr(device, "verify", lambda *a, **k: report)
    monkeypatch.setattr(device, "format_report", lambda r: "FAIL: scores differ")
    argv = ["verify", str(tmp_path), *(["--json"] if as_json else [])]
    assert cli.run(argv) == 1
    assert ("FAIL" in capsys.readouterr().out) != as_json
    monkeypatch.setattr(sys, "argv", ["tinykws", *argv])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    report.ok = True
    assert cli.run(argv) == 0


# ------------------------------------------------------- issue 13's reproductions, one line each


def _one_line_error(argv, capsys, match: str, code: int = 2) -> None:
    assert cli.run([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert match in err, err


@pytest.fixture
def tiny_run(tmp_path):
    """A run folder with a random 1 x 16 model (no data needed) and a 2-s WAV."""
    import numpy as np
    import soundfile as sf

    from eval_helpers import CATEGORIES, random_model, save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run, random_model(), CATEGORIES)
    sf.write(tmp_path / "a.wav", np.zeros(32000, np.int16), 16000, subtype="PCM_16")
    return run


@pytest.mark.parametrize("flags,match", [
    (["--smoothing-ms", "nan"], "smoothing_ms"), (["--smoothing-ms", "-5"], "smoothing_ms"),
    (["--threshold", "nan"], "threshold"), (["--threshold", "-1"], "threshold"),
    (["--threshold", "2"], "threshold"), (["--refractory-ms", "inf"], "refractory_ms"),
    (["--smoothing-ms", "1e20"], "smoothing_ms"),  # was an OverflowError traceback
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_detect_bad_numbers(tiny_run, capsys, flags, match):
    _one_line_error(["detect", tiny_run, tiny_run.parent / "a.wav", *flags], capsys, match)


def test_detect_edge_numbers_accepted(tiny_run, capsys):
    for flags in (["--threshold", "0"], ["--threshold", "1", "--smoothing-ms", "0"]):
        assert cli.run(["detect", str(tiny_run), str(tiny_run.parent / "a.wav"), *flags]) == 0


@pytest.mark.parametrize("n", ["0", "-1"])
def test_evaluate_max_clips_below_1(tiny_run, tmp_path, capsys, n):
    _one_line_error(["evaluate", tiny_run, "--data", tmp_path, "--max-clips", n], capsys, "--max-clips")


def test_compile_out_is_a_file(tiny_run, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(["compile", tiny_run, "--out", f], capsys, "is a file")
    assert f.read_text() == "x"


def test_resume_truncated_checkpoint(tmp_path, capsys):
    from eval_helpers import make_features

    feats = make_features(tmp_path / "f", n_train=16, n_val=8, T=10)
    args = ["train", "--features", feats, "--out", tmp_path / "r", "--epochs", "1", "-hu", "4",
            "-bs", "8"]
    assert cli.run([str(a) for a in args]) == 0
    last = tmp_path / "r" / "train" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    capsys.readouterr()
    _one_line_error([*args, "--resume"], capsys, "last.pt")


def test_missing_optional_dependency_is_one_line():
    """A base install (no extras) running `train`: one line naming the extra to install."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from tinykws.cli import main\n"
        "sys.argv = ['tinykws', 'train', '--features', 'f', '--out', 'o']\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: this command needs torch") and "tinykws[train]" in r.stderr
    assert len(r.stderr.splitlines()) == 1


# ------------------------------------------------------- Ctrl-C while worker processes run


@pytest.mark.parametrize("argv", [
    ["data", "synth", "--per-word", "16", "--workers", "2", "--noise-seconds", "2"],
    ["data", "negatives", "--utterances", "400", "--words", "40", "--phrases", "5",
     "--near-misses", "2", "--voices", "12", "--background", "10", "--workers", "2",
     "--noise-seconds", "2"],
], ids=["synth", "negatives"])
def test_ctrl_c_in_worker_pools_is_one_line(tmp_path, argv):
    """Ctrl-C reaches the whole foreground process group: the synthesis workers used to
    print a KeyboardInterrupt traceback each. Now: `interrupted`, exit 130, no traceback."""
    import os
    import signal
    import time

    pytest.importorskip("espeakng_loader", reason="the synth extra is not installed")
    out = tmp_path / "out"
    # a terminal's foreground job has SIGINT at its default, whatever started this test (a
    # shell's `cmd &` starts it ignored, and the child would inherit that)
    p = subprocess.Popen([sys.executable, "-m", "tinykws", *argv, "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env={**os.environ, "TINYKWS_NO_PROGRESS": "1"},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("**/*.wav")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the workers write clips
    assert p.poll() is None, p.communicate()
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted", err
