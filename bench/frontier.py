"""The size/accuracy frontier of FastGRNN's LSQ forms (docs/benchmarks.md, "Kilobyte models").

Trains a grid of models on the dev data with the pipeline's clip recipe
(`tinykws.train.pipeline_recipe`; the stream phase is left out: it costs ~15 minutes a
model), then, for each: quantizes it (`tinykws.quant.calibrate.quantize_run`), compiles the
int8 build with arm-none-eabi-gcc and verifies it on the emulated Cortex-M4 (bit for bit
against the Python integer reference, `tinykws.device.verify`), and prints parameters, model
flash (text + rodata + data of model.o), RAM, int8 model instructions per 10-ms frame, and
the dev testing accuracy of the float and the integer model (last frame of every testing
clip's features; the mean and spread over the seeds run).

    python bench/frontier.py --features FEATURES --lists LISTS --work DIR [--points a,b]
    python bench/frontier.py --kernels      # dense vs sparse-rows cost on random weights
    python bench/frontier.py --sizes 2x64u16,2x56u12   # flash/cost of untrained shapes

FEATURES / LISTS: made once with `tinykws data lists` and `tinykws featurize` (see
docs/benchmarks.md for the commands). Each training runs in this process, one at a time
(run the script through /work/cpu-run: one core); a point already trained in --work is
reused. Writes DIR/frontier.json and, with --plot, a PNG of accuracy against flash and
against instructions.

`--kernels` measures the storage choice of sparse matrices: a random 2 x 128 FastGRNN with
W and U hard-thresholded to a density, compiled once with dense storage and once with sparse
rows (`tinykws.codegen.writers.FORCE_STORAGE`), int8 and hard float, verified on 3 dev clips: instructions per frame and flash.
`--sizes` compiles and verifies random-weight models of the shapes given (flash and
instructions hardly depend on the weights' values: 18,501 B and 24,098 for a random
2x64u16 against 18,500 and 24,098 trained), to see which shapes fit a budget before training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data/speech_commands_dev"

# name -> TrainConfig changes from the pipeline recipe (80 dev epochs), on the FastGRNN the
# frontier was measured with (`FASTGRNN`: the full preset's model until the twenty-first round
# of issue 19 made it a 2 x 72 GRU); "preset": NAME starts from `pipeline_recipe(n,
# preset=NAME)` instead (its model and epochs).
FASTGRNN: dict[str, Any] = dict(architecture="fastgrnn", hidden_units=128)
GRID: dict[str, dict[str, Any]] = {
    "full 2x128": {},
    "preset tiny 2x56 u12 160 ep.": dict(preset="tiny"),
    "low rank 2x64 u16 160 ep.": dict(hidden_units=64, urank=16, epochs=160),
    "low rank 2x128 r16": dict(wrank=16, urank=16),
    "sparse 2x128 s0.2": dict(w_sparsity=0.2, u_sparsity=0.2),
    "low rank 1x128 u16": dict(num_layers=1, urank=16),
    "low rank 2x64 u16": dict(hidden_units=64, urank=16),
    "low rank 2x64 r16": dict(hidden_units=64, wrank=16, urank=16),
}
SEEDS = {"full 2x128": (0, 1), "preset tiny 2x56 u12 160 ep.": (0, 1, 2), "low rank 2x64 u16": (0, 1), "low rank 1x128 u16": (0, 1),
         "low rank 2x64 r16": (0, 1)}
# (the rest: seed 0)


def slug(name: str) -> str:
    return "".join(c for c in name.replace(" ", "-") if c.isalnum() or c == "-")


def train_point(work: Path, features: Path, lists: Path, name: str, seed: int) -> Path:
    """Train grid point `name` with `seed` into WORK/<slug>-s<seed> (kept when done)."""
    from tinykws.run import RunDir, read_features
    from tinykws.train import pipeline_recipe, train

    run = work / f"{slug(name)}-s{seed}"
    done = RunDir(run).train / "frontier_done.json"
    if done.is_file():
        return run
    run.mkdir(parents=True, exist_ok=True)
    for link, target in (("features", features), ("lists", lists)):
        if not (run / link).exists():
            (run / link).symlink_to(target.resolve())
    n = len(read_features(RunDir(run).features_file("training"), features=False))
    changes = dict(GRID[name])
    preset = changes.pop("preset", None)
    base = pipeline_recipe(n, preset=preset or "full")
    if preset is None:  # a point of the FastGRNN grid
        changes = {**FASTGRNN, **changes}
    recipe = dataclasses.replace(base, seed=seed, threads=1, **changes)
    t0 = time.perf_counter()
    res = train(RunDir(run).features, run, recipe)
    done.write_text(json.dumps({"seconds": time.perf_counter() - t0,
                                "best_val_acc": res.best_val_acc}))
    return run


def measure_run(run: Path, clips: int) -> dict[str, Any]:
    """Quantize, compile int8 (gcc), verify on the emulated M4; sizes, costs, accuracies."""
    from tinykws.codegen import compile_run
    from tinykws.device import VerifyConfig, verify
    from tinykws.quant.calibrate import quantize_run
    from tinykws.checkpoint import load_model
    from tinykws.run import RunDir
    from tinykws.toolchain import elf_section_sizes, find_toolchain

    q = quantize_run(run)
    model, _ = load_model(RunDir(run).checkpoint())
    os.environ["TINYKWS_TOOLCHAIN"] = "gcc"
    out = run / "device" / "int8-gcc"
    compile_run(run, out, "cortex-m4", "soft", precision="int8")
    rep = verify(out, VerifyConfig(run_dir=run, max_clips=clips, toolchain=find_toolchain("gcc"),
                                   progress=False))
    if not rep.ok:
        sys.exit(f"verify failed for {run}: {rep.first_mismatch}")
    s = rep.sizes["model"]
    nonzero = sum(int((p != 0).sum()) for n, p in model.named_parameters() if p.dim() == 2)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "nonzero_weights": nonzero,
        "model_flash": s["text"] + s["rodata"] + s["data"],
        "model_ram": s["data"] + s["bss"],
        "flash": rep.flash_bytes, "ram": rep.ram_bytes,
        "instructions": {k: v["mean"] for k, v in rep.instructions.items()
                         if isinstance(v, dict) and "mean" in v},
        "bit_exact": rep.ok,
        "float_acc": q.ptq.testing.float_accuracy,
        "int8_acc": q.ptq.testing.int_accuracy,
        "testing_clips": q.ptq.testing.n,
    }


def frontier(args: argparse.Namespace) -> None:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    names = args.points.split(",") if args.points else list(GRID)
    path = work / "frontier.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for name in names:
        for seed in SEEDS.get(name, (0,)):
            key = f"{name} s{seed}"
            if key in results:
                continue
            run = train_point(work, args.features, args.lists, name, seed)
            results[key] = {"name": name, "seed": seed, **measure_run(run, args.clips)}
            path.write_text(json.dumps(results, indent=1))
            print(key, json.dumps(results[key]), flush=True)
    print_table(results)
    if args.plot:
        plot(results, args.plot)


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row a grid point: the seeds' mean accuracies and their spread."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results.values():
        row = rows.setdefault(r["name"], {**r, "float": [], "int8": [], "seeds": []})
        row["float"].append(r["float_acc"])
        row["int8"].append(r["int8_acc"])
        row["seeds"].append(r["seed"])
    return list(rows.values())


def print_table(results: dict[str, Any]) -> None:
    print("| model | params | nonzero weights | int8 model flash B | int8 model RAM B | "
          "int8 model instr./frame | float acc. | int8 acc. | seeds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in summarize(results):
        def acc(v: list[float]) -> str:
            return f"{np.mean(v):.3f}" + (f" ± {np.ptp(v) / 2:.3f}" if len(v) > 1 else "")
        print(f"| {r['name']} | {r['params']:,} | {r['nonzero_weights']:,} | "
              f"{r['model_flash']:,} | {r['model_ram']:,} | {r['instructions']['model']:,.0f} | "
              f"{acc(r['float'])} | {acc(r['int8'])} | {','.join(map(str, r['seeds']))} |")


def plot(results: dict[str, Any], out: Path) -> None:
    from tinykws.plots import pyplot, save_png

    plt = pyplot()
    rows = summarize(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, label in ((axes[0], "model_flash", "int8 model flash (bytes)"),
                           (axes[1], "instructions", "int8 model instructions per 10-ms frame")):
        for r in rows:
            x = r[key] if key == "model_flash" else r[key]["model"]
            y = np.mean(r["int8"])
            ax.errorbar(x, y, yerr=np.ptp(r["int8"]) / 2 if len(r["int8"]) > 1 else None,
                        fmt="o", capsize=3)
            above = r["name"].startswith("preset")  # it sits next to the 2x64 160-ep. point
            ax.annotate(r["name"], (x, y), textcoords="offset points",
                        xytext=(4, 6) if above else (4, -10 if y > 0.79 else 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].axvline(16384, color="grey", ls="--", lw=0.8)  # the 16-KB budget of issue 20
    axes[0].annotate("16 KB", (16384, 0.0), xycoords=("data", "axes fraction"),
                     xytext=(3, 4), textcoords="offset points", fontsize=7, color="grey")
    axes[0].set_ylabel("dev testing accuracy (int8)")
    fig.suptitle("FastGRNN on the dev data: accuracy against size and cost (emulated Cortex-M4, gcc)")
    fig.tight_layout()
    print(save_png(fig, out))


# ---------------------------------------------------------------------- kernels


CATS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
        "stop", "go"]


def _dev_clips(n: int = 20) -> tuple[list[str], np.ndarray]:
    """The dev testing list and the features of its first `n` clips (calibration)."""
    from tinykws.data.audio import load_audio
    from tinykws.features import FeatureParams, logmel

    test = [p for p in (DATA / "testing_list.txt").read_text().split() if p]
    return test, np.stack([logmel(load_audio(DATA / p)[0], FeatureParams()) for p in test[:n]])


def _random_run(run: Path, cfg: Any, test: list[str], clips: np.ndarray,
                density: Optional[float] = None) -> Path:
    """A run folder holding a seeded random FastGRNN of ModelConfig `cfg` (W and U
    hard-thresholded to `density` when given), normalised and quantized on `clips`:
    what `compile` and `verify` need, without training (sizes and costs do not depend
    on the weights' values, beyond a few bytes and instructions)."""
    import torch

    from tinykws.features import FeatureParams
    from tinykws.models import build_model
    from tinykws.models.sparsity import hard_threshold_mask, sparse_groups
    from tinykws.quant.calibrate import layer_ranges
    from tinykws.quant.model import quantize_model
    from tinykws.run import RunDir

    rd = RunDir(run)
    rd.lists.mkdir(parents=True)
    (rd.lists / "categories.txt").write_text("\n".join(CATS) + "\n")
    (rd.lists / "testing_list.txt").write_text("\n".join(test) + "\n")
    rd.lists_json.write_text(json.dumps({"data_dir": str(DATA), "task": "google12"}))
    torch.manual_seed(0)
    model = build_model(cfg)
    flat = clips.reshape(-1, 32)
    model.set_normalization(torch.from_numpy(flat.mean(0)), torch.from_numpy(flat.std(0)))
    if density is not None:
        with torch.no_grad():
            for p, keep in sparse_groups(model):
                p.mul_(hard_threshold_mask(p, keep))
    rd.train.mkdir()
    torch.save({"model_config": cfg.to_dict(), "feature_params": FeatureParams().to_dict(),
                "categories": CATS, "state_dict": model.state_dict()}, rd.best)
    ranges, inner = layer_ranges(model.eval(), clips)
    quantize_model(model, CATS, ranges, rank_max_abs=inner).save(rd.int_model)
    return run


def _build_and_verify(run: Path, out: Path, abi: str, precision: str, clips: int) -> tuple[float, int]:
    """Compile (gcc) and verify on the emulated M4 -> (model instructions a frame, model
    flash bytes = text + rodata + data of model.o)."""
    from tinykws.codegen import compile_run
    from tinykws.device import VerifyConfig, verify
    from tinykws.toolchain import find_toolchain

    os.environ["TINYKWS_TOOLCHAIN"] = "gcc"
    compile_run(run, out, "cortex-m4", abi, precision=precision)
    rep = verify(out, VerifyConfig(run_dir=run, max_clips=clips, toolchain=find_toolchain("gcc"),
                                   progress=False))
    if not rep.ok:
        sys.exit(f"verify failed: {out}")
    s = rep.sizes["model"]
    return rep.instructions["model"]["mean"], s["text"] + s["rodata"] + s["data"]


def kernels(args: argparse.Namespace) -> None:
    """Dense vs sparse-rows storage of the same sparse models, int8 and hard float."""
    import tinykws.codegen.writers as writers
    from tinykws.models import ModelConfig

    test, clips = _dev_clips()
    print("| density | build | storage | model instr./frame | model flash B |")
    print("| ---: | --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="tinykws-frontier-") as tmp:
        for density in (float(d) for d in args.densities.split(",")):
            cfg = ModelConfig("fastgrnn", 32, 128, 2, 12, w_sparsity=density, u_sparsity=density)
            run = _random_run(Path(tmp) / f"d{density}", cfg, test, clips, density)
            for build, abi, prec in (("int8", "soft", "int8"), ("hard", "hard", "float")):
                for storage, force in (("dense", "dense"), ("sparse rows", "sparse")):
                    writers.FORCE_STORAGE = force
                    ins, flash = _build_and_verify(run, run / "device" / f"{build}-{storage[:6]}",
                                                   abi, prec, args.clips)
                    print(f"| {density:.2f} | {build} | {storage} | {ins:,.0f} | {flash:,} |",
                          flush=True)


def sizes(args: argparse.Namespace) -> None:
    """Int8 model flash and instructions of untrained shapes LxH[uR][wR] (random weights):
    which shapes fit a flash budget, before training any of them."""
    from tinykws.models import ModelConfig

    test, clips = _dev_clips()
    print("| shape | params | int8 model flash B | int8 model instr./frame |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="tinykws-sizes-") as tmp:
        for shape in args.sizes.split(","):
            cfg = ModelConfig("fastgrnn", 32, **parse_shape(shape), num_classes=len(CATS))
            run = _random_run(Path(tmp) / shape, cfg, test, clips)
            ins, flash = _build_and_verify(run, run / "device" / "int8", "soft", "int8", args.clips)
            print(f"| {shape} | {_params(cfg):,} | {flash:,} | {ins:,.0f} |", flush=True)


def parse_shape(shape: str) -> dict[str, Any]:
    """"2x56u12" -> num_layers 2, hidden_size 56, urank 12 ("w16": wrank 16)."""
    import re

    m = re.fullmatch(r"(\d+)x(\d+)((?:[uw]\d+)*)", shape.strip())
    if m is None:
        sys.exit(f"shape {shape!r}: write LxH with optional uR / wR, e.g. 2x56u12")
    out: dict[str, Any] = {"num_layers": int(m[1]), "hidden_size": int(m[2])}
    for kind, rank in re.findall(r"([uw])(\d+)", m[3]):
        out[f"{kind}rank"] = int(rank)
    return out


def _params(cfg: Any) -> int:
    from tinykws.models import build_model

    return sum(p.numel() for p in build_model(cfg).parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, help="tinykws featurize output of the dev data")
    ap.add_argument("--lists", type=Path, help="tinykws data lists output of the dev data")
    ap.add_argument("--work", type=Path, help="folder for the grid's runs and frontier.json")
    ap.add_argument("--points", help="comma list of grid points (default: all)")
    ap.add_argument("--clips", type=int, default=3, help="clips verified on the emulated M4")
    ap.add_argument("--plot", type=Path, help="write the frontier plot here (PNG)")
    ap.add_argument("--table-only", action="store_true", help="print WORK/frontier.json's table")
    ap.add_argument("--kernels", action="store_true", help="dense vs sparse rows, random weights")
    ap.add_argument("--densities", default="0.1,0.2,0.3,0.5")
    ap.add_argument("--sizes", help="comma list of untrained shapes, e.g. 2x64u16,2x56u12: "
                    "int8 model flash and instructions from random weights")
    args = ap.parse_args()
    if args.kernels:
        kernels(args)
        return
    if args.sizes:
        sizes(args)
        return
    if args.work is None:
        ap.error("--work is needed")
    if args.table_only:
        results = json.loads((args.work / "frontier.json").read_text())
        print_table(results)
        if args.plot:
            plot(results, args.plot)
        return
    if args.features is None or args.lists is None:
        ap.error("--features and --lists are needed")
    frontier(args)


if __name__ == "__main__":
    main()
