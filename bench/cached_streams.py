"""The benchmarks' cached streams, built one way in one place (imported by `bench/stream_select.py`,
`bench/second_look.py` and `bench/operating_point.py`, which run from any folder: `python bench/X.py`
puts bench/ first on the path).

- testing: the 30-minute keyword stream of the run's testing split (seed 0) and the negatives'
  held-apart hour (seed 2), cached as `kw_NAME.wav` / `neg_NAME.wav`, as `bench/stream_diagnose.py`
  caches them;
- validation: what `stream_eval.choose_threshold` scores (a 10-minute stream of the validation
  split, seed 17, and an hour of the negatives' validation speech, seed 19), as
  `sel_val_kw_NAME.wav` / `sel_val_neg_NAME.wav`.
"""
from pathlib import Path

from tinykws.keyword_streams import (
    Stream, StreamSpec, build_negative_stream, build_stream, load_stream, run_stream_clips, save_stream,
)

SNRS = (40.0, 30.0, 20.0, 10.0)


def cached(path: Path, make) -> Stream:
    """A stream from the cache, built and saved on the first call."""
    if not path.is_file():
        save_stream(make(), path)
    return load_stream(path)


def keyword_stream(run: Path, split: str, minutes: float, seed: int) -> Stream:
    """A keyword stream of RUN's `split` at 10-40 dB."""
    kws, others, noise, root = run_stream_clips(run, split)
    return build_stream(kws, others, noise, StreamSpec(minutes=minutes, snrs_db=SNRS, seed=seed), root=root)


def testing_streams(run: Path, negatives: Path, cache: Path, tag: str) -> tuple[Stream, Stream]:
    """(keyword stream, negative hour) on the testing side."""
    return (cached(cache / f"kw_{tag}.wav", lambda: keyword_stream(run, "testing", 30, 0)),
            cached(cache / f"neg_{tag}.wav", lambda: build_negative_stream(
                negatives, minutes=60, snrs_db=SNRS, seed=2)))


def validation_streams(run: Path, negatives: Path, cache: Path, tag: str) -> tuple[Stream, Stream]:
    """(keyword stream, negative hour) on the validation side."""
    return (cached(cache / f"sel_val_kw_{tag}.wav", lambda: keyword_stream(run, "validation", 10, 17)),
            cached(cache / f"sel_val_neg_{tag}.wav", lambda: build_negative_stream(
                negatives, minutes=60, split="validation", snrs_db=SNRS, seed=19)))
