"""Where a stream-phase step's time goes, on one worker (docs/benchmarks.md, "Issue 19,
fourteenth round").

    python bench/stream_step_profile.py RUN [--steps 60] [--warmup 10] [--cfg JSON ...]

Builds one worker's share of the pipeline's step (StreamTrainConfig's 32 streams and 64
clips over its 2 workers: 16 and 32) from RUN's training features and negatives, on RUN's
clip model, and times each part of `_train_rank`'s loop on one torch thread: making the
chunk, the streams' forward (with the loss) and backward, the clip batch's augmentation,
forward and backward, and the optimizer step. Prints the mean of each part over the steps
after the warm-up. Time it on an idle machine; the gradients' averaging between workers is
not in it. Each `--cfg` (StreamTrainConfig fields, e.g. '{"wave_share": 1.0}') is timed after
the defaults, in the same run, and printed beside them with its ratio to them.
"""
import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tinykws.augment import augment_batch  # noqa: E402
from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.labels import SILENCE, keyword_mask  # noqa: E402
from tinykws.run import RunDir, read_features, split_file  # noqa: E402
from tinykws.stream_clips import clip_pool  # noqa: E402
from tinykws.stream_losses import inside_keyword, stream_loss  # noqa: E402
from tinykws.stream_state import bound_state  # noqa: E402
from tinykws.stream_maker import StreamMaker  # noqa: E402
from tinykws.stream_training import StreamTrainConfig, _clip_draw, wave_source  # noqa: E402
from tinykws.train import class_weights, pipeline_recipe  # noqa: E402
from tinykws.tuning import tune_for_training  # noqa: E402


PARTS = ["chunk", "stream forward", "stream backward", "clip augment", "clip forward", "clip backward", "optimizer"]


def profile(run: RunDir, overrides: dict, steps: int, warmup: int) -> dict[str, float]:
    """Mean seconds of each of PARTS over `steps` steps after `warmup`, with `overrides`."""
    split = read_features(split_file(run.root / "features", "training"))
    neg = read_features(run.negative_features) if run.negative_features.is_file() else None
    extra = None if neg is None else neg.features
    pool, n_real = clip_pool(split, None, extra, math.log(10) / 10)
    full = StreamTrainConfig.from_dict({**StreamTrainConfig().to_dict(), **overrides})
    cfg = dataclasses.replace(full, batch=full.batch // full.workers, clip_batch=full.clip_batch // full.workers)
    waves = (wave_source(run, split, (extra, None if neg is None else list(neg.paths)))
             if cfg.wave_share > 0 else None)
    maker = StreamMaker(pool, cfg, np.random.default_rng(0), n_real=n_real, waves=waves)
    model, _ = load_model(run.clip if run.clip.is_file() else run.best)
    bound_state(model)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    all_x, all_y = torch.from_numpy(pool.features), torch.from_numpy(pool.labels)
    n_train = len(split.labels)
    recipe = pipeline_recipe(n_train)
    weights = class_weights(recipe, pool.categories)
    noise = all_x[:n_train][all_y[:n_train] == pool.categories.index(SILENCE)]
    kw_mask = torch.from_numpy(keyword_mask(pool.categories))
    gen = torch.Generator().manual_seed(0)
    state = model.init_state(cfg.batch)
    total = dict.fromkeys(PARTS, 0.0)
    for it in range(warmup + steps):
        t = [time.perf_counter()]
        x, target, weight, region, rclass = maker.next_chunk()
        t.append(time.perf_counter())
        state = state.detach() if isinstance(state, torch.Tensor) else tuple(s.detach() for s in state)
        logits, state = model.forward_sequence(x, state)
        loss_s = stream_loss(logits, target, weight, inside_keyword(target, rclass, kw_mask), kw_mask, 0.0)
        t.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss_s.backward()
        t.append(time.perf_counter())
        idx = _clip_draw(gen, n_train, len(all_y), cfg.clip_batch, 0)
        xb = augment_batch(all_x[idx], recipe, gen, noise, pool.log_per_db)
        t.append(time.perf_counter())
        loss_c = F.cross_entropy(model(xb), all_y[idx], weight=weights, label_smoothing=recipe.label_smoothing)
        t.append(time.perf_counter())
        loss_c.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        t.append(time.perf_counter())
        if it >= warmup:
            for name, t0, t1 in zip(PARTS, t, t[1:]):
                total[name] += (t1 - t0) / steps
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cfg", type=json.loads, nargs="*", default=[],
                    help="stream config fields to time beside the defaults")
    a = ap.parse_args()
    tune_for_training()
    torch.set_num_threads(1)
    run = RunDir(a.run)
    names = ["defaults"] + [json.dumps(c) for c in a.cfg]
    totals = [profile(run, c, a.steps, a.warmup) for c in [{}] + a.cfg]
    full = StreamTrainConfig()
    print(f"load average at the end {os.getloadavg()[0]:.2f}; {full.batch // full.workers} streams x "
          f"{full.chunk_frames} frames and {full.clip_batch // full.workers} clips a step, {a.steps} steps")
    print(f"{'':16s} " + " ".join(f"{n:>24s}" for n in names))
    for name in PARTS + ["step"]:
        ms = [1000 * (sum(t.values()) if name == "step" else t[name]) for t in totals]
        print(f"{name:16s} " + " ".join(f"{m:15.1f} ms {m / max(ms[0], 1e-9):5.2f}x" for m in ms))


if __name__ == "__main__":
    main()
