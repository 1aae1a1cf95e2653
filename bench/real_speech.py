"""How well a model generalises to real speech: Google-12 test layouts built from the
shared dev set, then `tinykws.evaluate` on them.

For a model trained on the synthesized (espeak-ng) data, every dev clip is unseen real
speech, so `full` holds all of them: the 10 keywords in their folders, the 25 other words
in `_unknown_` (word-prefixed names, as in the v0.02 test archive) and 240 silence crops of
the dev background noise (scaled to RMS 0.001-0.3 by `make_lists`). `test` keeps only the
dev `testing_list.txt` clips (and the testing silence crops): the only part that is unseen
for a model trained on the dev data.

    python bench/real_speech.py layouts --out /tmp/g12             # writes /tmp/g12/{full,test}
    python bench/real_speech.py run --data SYNTH_OR_DEV --run RUN --g12 /tmp/g12 [--set k=v ...]

`run` = data lists -> featurize -> train with `pipeline_recipe` (fields overridable with
`--set field=json`) -> evaluate on both layouts; prints one JSON line (accuracy, per-class
recall). `tinykws evaluate RUN --data /tmp/g12/full --json` gives the same accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared/data/speech_commands_dev"


def make_layouts(dev: Path, out: Path, silence: int = 240, seed: int = 123) -> dict[str, dict[str, int]]:
    """Write `out/full` and `out/test` (symlinks to the dev clips, copied silence crops)."""
    from tinykws.data.speech_commands import GOOGLE12_WORDS, make_lists

    lists = out / "lists"
    shutil.rmtree(out, ignore_errors=True)
    make_lists(dev, "google12", lists, silence_count=silence, seed=seed)
    testing = set((dev / "testing_list.txt").read_text().split())
    counts = {}
    for name in ("full", "test"):
        for c in (*GOOGLE12_WORDS, "_unknown_", "_silence_"):
            (out / name / c).mkdir(parents=True)
    for d in sorted(p for p in dev.iterdir() if p.is_dir() and not p.name.startswith("_")):
        unknown = d.name not in GOOGLE12_WORDS
        for f in sorted(d.glob("*.wav")):
            cls, fname = ("_unknown_", f"{d.name}_{f.name}") if unknown else (d.name, f.name)
            os.symlink(f.resolve(), out / "full" / cls / fname)
            if f"{d.name}/{f.name}" in testing:
                os.symlink(f.resolve(), out / "test" / cls / fname)
    for f in sorted((lists / "_silence_").glob("*.wav")):
        shutil.copy(f, out / "full" / "_silence_" / f.name)
        if "testing" in f.name:
            shutil.copy(f, out / "test" / "_silence_" / f.name)
    for name in ("full", "test"):
        counts[name] = {c.name: len(list(c.iterdir())) for c in sorted((out / name).iterdir())}
    return counts


def run(data: Path, run_dir: Path, g12: Path, overrides: list[str], seed: int = 0) -> dict:
    """Train on `data` the way `tinykws pipeline` does, then evaluate on the layouts."""
    from tinykws.data.speech_commands import make_lists
    from tinykws.dataset import FeaturizeConfig, featurize_lists
    from tinykws.evaluate import evaluate
    from tinykws.run import RunDir, read_features
    from tinykws.train import pipeline_recipe, train

    rd = RunDir(run_dir)
    make_lists(data, "google12", rd.lists, seed=seed)
    noise = data / "_background_noise_"
    featurize_lists(data, rd.lists, rd.features,
                    FeaturizeConfig(noise_dir=noise if noise.is_dir() else None, seed=seed))
    n = len(read_features(rd.features_file("training"), features=False))
    cfg = dataclasses.replace(pipeline_recipe(n), seed=seed)
    for kv in overrides:
        k, v = kv.split("=", 1)
        cfg = dataclasses.replace(cfg, **{k: json.loads(v)})
    t0 = time.perf_counter()
    result = train(run_dir / "features", run_dir, cfg)
    out = {"run": str(run_dir), "data": str(data), "n_train": n, "set": overrides, "seed": seed,
           "epochs": cfg.epochs, "best_val": round(result.best_val_acc, 4),
           "train_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    for name in ("full", "test"):
        e = evaluate(run_dir, g12 / name, write=name == "full")
        out[name] = round(e.accuracy, 4)
        if name == "full":
            out["recall"] = {c: round(v["recall"], 2) for c, v in e.per_class.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lay = sub.add_parser("layouts")
    lay.add_argument("--dev", type=Path, default=DEV)
    lay.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--run", type=Path, required=True)
    r.add_argument("--g12", type=Path, required=True)
    r.add_argument("--set", action="append", default=[], help="TrainConfig field=json value")
    r.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.cmd == "layouts":
        print(json.dumps(make_layouts(a.dev, a.out)))
    else:
        print(json.dumps(run(a.data, a.run, a.g12, a.set, a.seed)))


if __name__ == "__main__":
    main()
