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
