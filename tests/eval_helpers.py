"""Shared test helpers: tiny run folders and test layouts (test_evaluate / test_detect /
test_report), separable feature files (test_train / test_export), and the `tinykws` command
in this process or as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tinykws.data.speech_commands import GOOGLE12_WORDS, make_lists, read_list
from tinykws.features import FeatureParams
from tinykws.models import ModelConfig, build_model

from realdata import REAL as DEV  # the dev set, or the committed mini set
CATEGORIES = [*GOOGLE12_WORDS, "_unknown_", "_silence_"]
FEATURE_CATS = ["_silence_", "_unknown_", "yes", "no"]  # the classes of make_features


def make_features(d: Path, n_train=96, n_val=40, T=20, seed=0) -> Path:
    """Separable random 'log-mel' clips: each class has its own spectral tilt."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    tilt = rng.normal(size=(len(FEATURE_CATS), 32))
    for split, n in (("training", n_train), ("validation", n_val), ("testing", n_val)):
        y = np.arange(n) % len(FEATURE_CATS)
        x = rng.normal(size=(n, T, 32)) + 1.5 * tilt[y][:, None, :] - 5.0
        np.savez(d / f"{split}.npz", features=x.astype(np.float32), labels=y.astype(np.int64),
                 categories=np.array(FEATURE_CATS),
                 paths=np.array([f"{split}{i}.wav" for i in range(n)]),
                 feature_params=json.dumps({"power_spec": True}))
    return d


def save_checkpoint(run_dir: Path, model, categories, rolling: bool = False) -> Path:
    """A checkpoint dict as train writes it (docs/architecture.md "Checkpoints")."""
    path = run_dir / "train" / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "model_config": model.config.to_dict(),
        "feature_params": FeatureParams().to_dict(),
        "categories": list(categories),
        "state_dict": model.state_dict(),
        "train_config": {"rolling": rolling},
        "epoch": 0,
        "best_val_acc": 0.0,
    }, path)
    return path


def corrupt_checkpoint(d: dict, how: str) -> dict:
    """A checkpoint dict (`Checkpoint.to_dict()`) damaged one way (issue 13 items 3, 4)."""
    if how == "n_mels":  # item 3: params for 40 bands, a model with 32 inputs
        d["feature_params"] = {**d["feature_params"], "n_mels": 40}
    elif how == "hidden":  # item 4: the config says half the units the weights have
        d["model_config"] = {**d["model_config"], "hidden_size": d["model_config"]["hidden_size"] // 2}
    elif how == "nan":
        d["state_dict"] = {**d["state_dict"]}
        d["state_dict"]["fc.bias"] = d["state_dict"]["fc.bias"].clone()
        d["state_dict"]["fc.bias"][0] = float("nan")
    elif how == "classes":
        d["categories"] = d["categories"][:-1]
    elif how == "other":
        d = {"x": 1}
    elif how == "params":
        d["feature_params"] = {**d["feature_params"], "window": "kaiser"}
    elif how == "std_zero":  # issue 22 case 5: right shapes, nonsense values
        d["state_dict"] = {**d["state_dict"], "std": torch.zeros_like(d["state_dict"]["std"])}
    elif how == "preemphasis_nan":
        d["feature_params"] = {**d["feature_params"], "preemphasis": float("nan")}
    elif how == "same_categories":  # issue 22 case 16
        d["categories"] = ["yes"] * len(d["categories"])
    elif how == "missing_weight":
        d["state_dict"] = {k: v for k, v in d["state_dict"].items() if k != "fc.bias"}
    return d


DAMAGED_CHECKPOINTS = ("n_mels", "hidden", "nan", "truncated", "std_zero", "preemphasis_nan",
                       "same_categories")


def damaged_runs(root: Path) -> dict[str, Path]:
    """Run folders whose train/best.pt is damaged one way each (a tiny model, cheap): feature
    params for 40 bands beside a 32-input model, a model_config that disagrees with the
    weights, a NaN weight, a truncated file, a zero normalisation std, a NaN pre-emphasis,
    twelve identical class names."""
    runs = {}
    for how in DAMAGED_CHECKPOINTS:
        run = root / f"damaged_{how}"
        best = save_checkpoint(run, random_model(hidden=4), CATEGORIES)
        if how == "truncated":
            best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
        else:
            torch.save(corrupt_checkpoint(torch.load(best, weights_only=True), how), best)
        runs[how] = run
    return runs


def random_model(seed: int = 0, hidden: int = 16, classes: int = 12, stride: int = 1):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(hidden_size=hidden, num_layers=1, num_classes=classes,
                                    frame_stride=stride))
    # spread the scores: normalise inputs roughly like real log-mel features
    model.set_normalization(torch.full((32,), 10.0), torch.full((32,), 4.0))
    return model.eval()


def make_run(root: Path, model=None, rolling: bool = False, lists_from: Path | None = None) -> Path:
    """A run folder: lists on the dev data (or a copy of prepared lists) + train/best.pt."""
    run = root / "run"
    if lists_from is not None:
        shutil.copytree(lists_from, run / "lists")
    else:
        make_lists(DEV, "google12", run / "lists")
    save_checkpoint(run, model if model is not None else random_model(), CATEGORIES, rolling)
    return run


def google12_layout(root: Path, lists_dir: Path, per_class: int = 3) -> Path:
    """A `speech_commands_test_set_v0.02`-like folder from held-out (testing) clips:
    class folders, `.wav.wav` names, word prefixes in `_unknown_`."""
    out = root / "g12"
    seen: dict[str, int] = {}
    for ex in read_list(lists_dir, "testing"):
        if seen.get(ex.label, 0) >= per_class:
            continue
        seen[ex.label] = seen.get(ex.label, 0) + 1
        d = out / ex.label
        d.mkdir(parents=True, exist_ok=True)
        word = Path(ex.path).parent.name
        name = f"{word}_{Path(ex.path).name}" if ex.label == "_unknown_" else Path(ex.path).name
        shutil.copy(ex.path, d / (name + ".wav"))  # x.wav -> x.wav.wav
    return out


def tone_stream(seconds: float, bursts: list[float], freq: float = 1000.0, sr: int = 16000,
                amp: float = 8000.0, burst_s: float = 0.5, seed: int = 0) -> np.ndarray:
    """Quiet noise with loud tone bursts starting at `bursts` (seconds): int16."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 30, int(seconds * sr))
    t = np.arange(int(burst_s * sr)) / sr
    for b in bursts:
        s = int(b * sr)
        x[s : s + len(t)] += amp * np.sin(2 * np.pi * freq * t)
    return np.clip(x, -32768, 32767).astype(np.int16)


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """`tinykws ARGS` in this process (main(): clean user errors): (exit code, out, err)."""
    from tinykws.cli import main

    monkeypatch.setattr(sys, "argv", ["tinykws", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def tinykws_command(*args: str, cwd: Path | None = None, env: dict | None = None,
                    **kw) -> subprocess.CompletedProcess:
    """`tinykws ARGS` through the installed console script beside this interpreter (the real
    entry point; works whether or not the venv is activated): progress bars off, wide lines."""
    exe = Path(sys.executable).with_name("tinykws")
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, **kw)
