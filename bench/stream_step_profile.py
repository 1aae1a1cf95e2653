"""Where a stream-phase step's time goes, on one worker (docs/benchmarks.md, "Issue 19,
fourteenth round").

    python bench/stream_step_profile.py RUN [--steps 60] [--warmup 10]

Builds one worker's share of the pipeline's step (StreamTrainConfig's 32 streams and 64
clips over its 2 workers: 16 and 32) from RUN's training features and negatives, on RUN's
clip model, and times each part of `_train_rank`'s loop on one torch thread: making the
chunk, the streams' forward (with the loss) and backward, the clip batch's augmentation,
forward and backward, and the optimizer step. Prints the mean of each part over the steps
after the warm-up. Time it on an idle machine; the gradients' averaging between workers is
not in it.
"""
import argparse
import dataclasses
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
from tinykws.labels import SILENCE, UNKNOWN  # noqa: E402
from tinykws.run import RunDir, read_features, split_file  # noqa: E402
from tinykws.stream_clips import clip_pool  # noqa: E402
from tinykws.stream_losses import inside_keyword, stream_loss  # noqa: E402
from tinykws.stream_state import bound_state  # noqa: E402
from tinykws.stream_maker import StreamMaker  # noqa: E402
from tinykws.stream_training import StreamTrainConfig, _clip_draw  # noqa: E402
from tinykws.train import class_weights, pipeline_recipe  # noqa: E402
from tinykws.tuning import tune_for_training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    a = ap.parse_args()
    tune_for_training()
    torch.set_num_threads(1)
    run = RunDir(a.run)
    split = read_features(split_file(run.root / "features", "training"))
    extra = read_features(run.negative_features).features if run.negative_features.is_file() else None
    pool, n_real = clip_pool(split, None, extra, math.log(10) / 10)
    full = StreamTrainConfig()
    cfg = dataclasses.replace(full, batch=full.batch // full.workers, clip_batch=full.clip_batch // full.workers)
    maker = StreamMaker(pool, cfg, np.random.default_rng(0), n_real=n_real)
    model, _ = load_model(run.clip if run.clip.is_file() else run.best)
    bound_state(model)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    all_x, all_y = torch.from_numpy(pool.features), torch.from_numpy(pool.labels)
    n_train = len(split.labels)
    recipe = pipeline_recipe(n_train)
    weights = class_weights(recipe, pool.categories)
    noise = all_x[:n_train][all_y[:n_train] == pool.categories.index(SILENCE)]
    kw_mask = torch.tensor([c not in (SILENCE, UNKNOWN) for c in pool.categories])
    gen = torch.Generator().manual_seed(0)
    state = model.init_state(cfg.batch)
    parts = ["chunk", "stream forward", "stream backward", "clip augment", "clip forward", "clip backward", "optimizer"]
    total = dict.fromkeys(parts, 0.0)
    for it in range(a.warmup + a.steps):
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
        if it >= a.warmup:
            for name, t0, t1 in zip(parts, t, t[1:]):
                total[name] += (t1 - t0) / a.steps
    step = sum(total.values())
    print(f"load average at the end {os.getloadavg()[0]:.2f}; {cfg.batch} streams x {cfg.chunk_frames} frames "
          f"and {cfg.clip_batch} clips a step, {a.steps} steps")
    for name in parts:
        print(f"{name:16s} {1000 * total[name]:6.1f} ms  {100 * total[name] / step:5.1f} %")
    print(f"{'step':16s} {1000 * step:6.1f} ms")


if __name__ == "__main__":
    main()
