"""The slow test `test_real_tiny_model_finds_held_out_keywords_in_a_stream`, with its
threshold swept: recall and false alarms of its `yes` spotter on its 2-minute stream.

    python bench/tiny_stream_test.py SEED [--small] [--data ../shared/data/speech_commands_dev]

`--small` trains the test's model before issue 19's tenth round (1 x 32 units, 12 epochs);
the default is the test's model now (2 x 64, 30 epochs, the pipeline's `_unknown_` weight
and masking). Prints one line a threshold (docs/benchmarks.md, "Issue 19, tenth round").
"""
import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from tinykws.data.speech_commands import make_lists  # noqa: E402
from tinykws.dataset import FeaturizeConfig, featurize_lists  # noqa: E402
from tinykws.detect import Detector  # noqa: E402
from tinykws.keyword_streams import StreamSpec, build_stream, run_stream_clips  # noqa: E402
from tinykws.stream_eval import evaluate_stream  # noqa: E402
from tinykws.train import TrainConfig, train  # noqa: E402

SMALL = dict(epochs=12, hidden_units=32, num_layers=1)
NOW = dict(epochs=30, hidden_units=64, num_layers=2, unknown_weight=2.5, time_masks=2,
           time_mask_width=8, freq_masks=2, freq_mask_width=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/speech_commands_dev"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        make_lists(a.data, "yes", run / "lists")
        featurize_lists(a.data, run / "lists", run / "features",
                        FeaturizeConfig(noise_dir=a.data / "_background_noise_"))
        cfg = TrainConfig(batch_size=32, optimizer="adam", learning_rate=0.01, lr_min=0.001,
                          time_shift=10, gain_db=6.0, noise_prob=0.5, seed=a.seed,
                          **(SMALL if a.small else NOW))
        train(run / "features", run, cfg)
        kws, others, noise, _ = run_stream_clips(run)
        stream = build_stream(kws, others, noise, StreamSpec(minutes=2.0, snrs_db=(30.0,), seed=1))
        for thr in (0.5, 0.7, 0.8, 0.9):
            at = evaluate_stream(Detector(run, threshold=thr), stream)["at_threshold"]
            print(f"seed {a.seed} {'small' if a.small else 'now'} threshold {thr}: recall "
                  f"{at['recall']:.3f}, {at['false_alarms']} false alarms, {stream.n_keywords} keywords")


if __name__ == "__main__":
    main()
