"""A training step of the stream phase's model, timed per cell: the 2 x 72 GRU through
nn.GRU and through tinykws' hand-written recurrence (`models.rnn._GRURecurrence`), beside
the 2 x 128 FastGRNN's fused path (docs/benchmarks.md, "Issue 19, twenty-first round").

    python bench/rnn_step_speed.py [--repeats 20] [--threads 1]

One step as one stream-phase worker runs it (`StreamTrainConfig`: 32 streams and 64 clips a
step over 2 workers): forward and backward of 16 streams x 200 frames, then of 32 clips x
98 frames, at frame stride 2. Times are medians over --repeats; the last column is each
row's time over the FastGRNN's, measured in the same run.
"""
import argparse
import statistics
import time

import torch

from tinykws.models import ModelConfig, build_model

ROWS = (("fastgrnn 2x128 (fused path)", "fastgrnn", 128, True),
        ("gru 2x72 (nn.GRU)", "gru", 72, False),
        ("gru 2x72 (tinykws recurrence)", "gru", 72, True))


def step_ms(model: torch.nn.Module, repeats: int) -> float:
    """Median milliseconds of one worker's forward + backward (streams, then clips)."""
    streams, clips = torch.randn(16, 200, 32), torch.randn(32, 98, 32)

    def once() -> None:
        for x in (streams, clips):
            logits, _ = model.forward_sequence(x)
            logits.square().mean().backward()

    for _ in range(3):  # warm-up (TorchScript compiles on first use)
        once()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a stream worker: 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    results = []
    for name, arch, hidden, fast in ROWS:
        m = build_model(ModelConfig(arch, input_size=32, hidden_size=hidden, num_layers=2,
                                    num_classes=12, frame_stride=2))
        m.set_fast(fast)
        m.train()
        results.append((name, step_ms(m, a.repeats)))
    base = results[0][1]
    print(f"{'model':32s} {'ms a step':>10s} {'x fastgrnn':>11s}")
    for name, ms in results:
        print(f"{name:32s} {ms:10.1f} {ms / base:11.2f}")


if __name__ == "__main__":
    main()
