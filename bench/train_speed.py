"""Training speed: tinykws vs EdgeML's own FastGRNN (edgeml-pytorch 0.3.0), one run, one machine.

Configuration (the seed's): 2 FastGRNN layers x 128 hidden, 32 inputs, 98 steps, batch 128,
linear classifier on the last step, cross-entropy, SGD (Nesterov, momentum 0.9, wd 1e-5);
one iteration = forward + backward + optimiser step.  The two sides alternate in rounds so
that load from other processes on a shared machine hits both alike.

    pip install edgeml-pytorch==0.3.0 --no-deps    # once; its CUDA extension is not needed
    python bench/train_speed.py [--rounds 5] [--iters 5]

Last line: `train_speed ours=N edgeml=N ratio=R` (sequences per second; each side at the
faster of its two thread settings, torch's default and one thread).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import torch
from torch import nn
from torch.nn import functional as F

from tinykws.tuning import torch_threads, tune_for_training

T, B, IN, H, L, C = 98, 128, 32, 128, 2, 12


def import_edgeml_rnn():
    """edgeml_pytorch.graph.rnn, with a stub for its CUDA extension (not built on CPU)."""
    sys.modules.setdefault("fastgrnn_cuda", types.ModuleType("fastgrnn_cuda"))
    try:
        from edgeml_pytorch.graph import rnn
    except ImportError:
        sys.exit("edgeml-pytorch missing: pip install edgeml-pytorch==0.3.0 --no-deps")
    return rnn


class EdgeMLClassifier(nn.Module):
    """The seed's FastGRNN keyword spotter built from EdgeML's FastGRNN (time-major)."""

    def __init__(self, rnn) -> None:
        super().__init__()
        self.l1 = rnn.FastGRNN(IN, H, batch_first=False)
        self.l2 = rnn.FastGRNN(H, H, batch_first=False)
        self.fc = nn.Linear(H, C)

    def forward(self, x):  # x [B, T, F]
        seq = x.transpose(0, 1)
        return self.fc(self.l2(self.l1(seq))[-1])


def make_step(model: nn.Module, threads: int | None = None):
    """One training iteration; `threads` pins torch's intra-op threads while it runs."""
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, nesterov=True,
                          weight_decay=1e-5)

    def step(x, y):
        with torch_threads(threads):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return step


def time_iters(step, x, y, iters: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `iters` iterations."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step(x, y)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5, help="iterations per side per round")
    args = ap.parse_args()

    from tinykws.models import ModelConfig, build_model

    tune_for_training()  # as tinykws.train.train() does first (process-wide: both sides)

    load0 = os.getloadavg()[0]  # other processes on a shared machine move the figures

    torch.manual_seed(0)
    x = torch.randn(B, T, IN)
    y = torch.randint(0, C, (B,))
    ours = build_model(ModelConfig("fastgrnn", IN, H, L, C)).train()
    edge = EdgeMLClassifier(import_edgeml_rnn()).train()
    # Each side runs twice: with torch's default threads and pinned to one thread (faster
    # on a busy machine); the ratio compares each side's faster setting.
    sides = {"ours": make_step(ours), "ours_1thread": make_step(ours, threads=1),
             "edgeml": make_step(edge), "edgeml_1thread": make_step(edge, threads=1)}
    for step in sides.values():  # warm-up (allocator, thread pool)
        time_iters(step, x, y, 2)
    spent = {k: 0.0 for k in sides}
    cpu = {k: 0.0 for k in sides}
    for r in range(args.rounds):
        for name, step in sides.items():
            wall, cpu_s = time_iters(step, x, y, args.iters)
            spent[name] += wall
            cpu[name] += cpu_s
        print(f"round {r + 1}: " + "  ".join(
            f"{k}={B * args.iters * (r + 1) / v:.0f} seq/s" for k, v in spent.items()))
    rate = {k: B * args.iters * args.rounds / v for k, v in spent.items()}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"T={T} B={B} in={IN} H={H} layers={L}, load average at start {load0:.1f}, "
          f"at end {os.getloadavg()[0]:.1f}")
    # CPU time of the one-thread runs: the work each side does, insensitive to how much of a
    # busy machine it got (threads spinning at barriers would inflate it, hence 1 thread).
    n_iter = args.iters * args.rounds
    co, ce = (1000 * cpu[k] / n_iter for k in ("ours_1thread", "edgeml_1thread"))
    print(f"cpu time, 1 thread: ours {co:.1f} ms/iteration, edgeml {ce:.1f} ms/iteration, "
          f"ratio {ce / co:.2f}")
    best_ours = max(rate["ours"], rate["ours_1thread"])
    best_edgeml = max(rate["edgeml"], rate["edgeml_1thread"])
    print(f"train_speed ours={best_ours:.0f} edgeml={best_edgeml:.0f} "
          f"ratio={best_ours / best_edgeml:.2f}")


if __name__ == "__main__":
    main()
