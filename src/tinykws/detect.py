"""Streaming keyword detection: 160-sample blocks -> features -> model steps -> detections.

Audio arrives in 10-ms blocks (160 samples at 16 kHz); `StreamingFeaturizer` turns each into
at most one log-mel frame and `KWSModel.step` advances the recurrent state by one frame.
How the state is managed depends on how the model was trained (`mode`):

- `rolling`: models trained with `--rolling` saw long streams, so one state runs forever
  and scores are read every frame.
- `window` (default for the other models): a sliding 1-s window, re-classified every
  `hop_ms`. It is computed incrementally with K = window / hop staggered states fed the
  same frames, each reset after a full window: exactly `forward()` on the last 98 frames,
  at K model steps per frame and K hidden states of memory (no frame buffer).
- `reset`: one state, reset every `reset_ms`; scores read every frame once half a window
  has been seen. One model step per frame, but the model sees contexts it never trained on.

docs/architecture.md ("Evaluation and detection") gives the measurements behind the
default. Scores (softmax) are then smoothed by a moving average over `smoothing_ms`; a
keyword (never `_unknown_`/`_silence_`) fires when its smoothed score reaches `threshold`
and no detection happened in the last `refractory_ms` (`Trigger`). `IntTrigger` is the
same rule in exact integer arithmetic on Q15 scores, for integer (int8) builds. A detector
with a second look (`DetectorConfig.second_look`) then has a verifier confirm each
detection (`tinykws.second_look`; Python only so far: `compile` builds the first stage).

This module is the runtime (`FrameScorer`, `Detector`, `detect_file`, `detect_live`); the
configuration and `detector.json` are `tinykws.detector_config`, the triggers
`tinykws.triggers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import numpy as np

from tinykws.checkpoint import load_model
from tinykws.data.audio import stream_audio
from tinykws.detector_config import Detection, DetectorConfig, load_detector_config
from tinykws.errors import TinyKWSError
from tinykws.features import StreamingFeaturizer, frames_from_stream
from tinykws.run import RunDir
from tinykws.second_look import SecondLook, check_verifier, delay_frames, second_look_filter
from tinykws.triggers import Trigger, best_keyword, moving_average, pick_detections, pick_from_best
from tinykws.tuning import torch_threads

if TYPE_CHECKING:
    from tinykws.checkpoint import Checkpoint


# --------------------------------------------------------------------------- state helpers


def _where_rows(mask, fresh, state):
    """`state` with the batch rows of `mask` [B] replaced by `fresh`.

    Model state is `[layers, B, H]`, a tuple of those (LSTM), or a `StrideState` of
    tensors with the batch on dim 1."""
    import torch

    if isinstance(state, torch.Tensor):
        return torch.where(mask.view(1, -1, 1), fresh, state)
    if isinstance(state, (tuple, list)):
        rows = [_where_rows(mask, f, s) for f, s in zip(fresh, state)]
        return type(state)(*rows) if hasattr(state, "_fields") else type(state)(rows)
    raise TypeError(f"unsupported model state type {type(state).__name__}")


# --------------------------------------------------------------------------- scorers


class FrameScorer:
    """Frames `[32]` in -> softmax score vectors `[C]` out (0 or 1 per frame), per mode."""

    def __init__(self, model, mode: str, win: int, hop_frames: int = 10, reset_frames: int = 98):
        import torch

        if mode not in ("rolling", "window", "reset"):
            raise TinyKWSError(f"unknown detector mode {mode!r}; choose rolling, window or reset")
        self.torch = torch
        self.model, self.mode, self.win = model, mode, win
        self.hop = max(1, hop_frames)
        self.reset_frames = max(1, reset_frames)
        self.k = -(-win // self.hop) if mode == "window" else 1  # staggered states
        self.period_frames = self.hop if mode == "window" else 1  # frames between scores
        self.reset()

    def reset(self) -> None:
        self.fresh = self.model.init_stream_state(self.k)
        self.state = self.model.init_stream_state(self.k)
        # window mode: state i starts i*hop frames late (negative age = not started yet)
        self.age = -self.hop * np.arange(self.k) if self.mode == "window" else np.zeros(1, int)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        torch = self.torch
        x = torch.as_tensor(np.asarray(frame, np.float32)).view(1, -1).expand(self.k, -1)
        with torch.no_grad(), torch_threads(1):
            logits, self.state = self.model.step(x, self.state)
        self.age += 1
        if self.mode == "rolling":
            return torch.softmax(logits[0], -1).numpy()
        if self.mode == "reset":
            out = None
            if self.age[0] >= self.win // 2:
                out = torch.softmax(logits[0], -1).numpy()
            if self.age[0] >= self.reset_frames:
                self.state, self.age[:] = self.model.init_stream_state(1), 0
            return out
        # window: the state that has seen exactly `win` frames scores, then restarts
        done = self.age >= self.win
        out = torch.softmax(logits[int(np.argmax(done))], -1).numpy() if done.any() else None
        restart = done | (self.age <= 0)
        if restart.any():
            with torch.no_grad():
                self.state = _where_rows(torch.as_tensor(restart), self.fresh, self.state)
            # wait K*hop - win frames so that the K states score exactly every hop
            self.age[done] = self.win - self.k * self.hop
        return out


# --------------------------------------------------------------------------- detector


class Detector:
    """Feed 160-sample int16 blocks (`process`), get `Detection`s back.

    `Detector(run_dir)` loads the run's checkpoint (`tinykws.checkpoint.load_model`) and its detector
    (RUN_DIR/detector.json, else the `DetectorConfig` defaults); `config` replaces the
    latter, and any of threshold ... reset_ms given (not None) override single settings.
    `model` and its `checkpoint` may be passed instead of a run (tests, benchmarks). Mode
    `auto` picks `rolling` for rolling-trained models, else `window`.
    """

    def __init__(
        self,
        run_dir: Path | str | None = None,
        threshold: Optional[float] = None,
        smoothing_ms: Optional[float] = None,
        refractory_ms: Optional[float] = None,
        mode: Optional[str] = None,
        hop_ms: Optional[float] = None,
        reset_ms: Optional[float] = None,
        model=None,
        checkpoint: "Checkpoint | None" = None,
        config: Optional[DetectorConfig] = None,
        verifier=None,
    ):
        base = config if config is not None else load_detector_config(run_dir)
        cfg = base.replace(threshold=threshold, smoothing_ms=smoothing_ms,
                           refractory_ms=refractory_ms, mode=mode, hop_ms=hop_ms,
                           reset_ms=reset_ms)
        if model is None or checkpoint is None:
            if run_dir is None:
                raise TinyKWSError("Detector needs a run folder (or a model and its checkpoint)")

            model, checkpoint = load_model(Path(run_dir))
        self.mode = cfg.resolve_mode(checkpoint)
        self.config = cfg.replace(mode=self.mode)
        self.params = checkpoint.feature_params
        self.model = model
        self.categories = list(checkpoint.categories)
        frame_ms = self.params.frame_ms  # one block = one frame
        self.win = self.params.n_frames  # frames in one 1-s training clip (98)
        self.scorer = FrameScorer(model, self.mode, self.win,
                                  hop_frames=round(cfg.hop_ms / frame_ms),
                                  reset_frames=round(cfg.reset_ms / frame_ms))
        self.score_period_s = self.scorer.period_frames * frame_ms / 1000.0
        self.keywords = cfg.keyword_mask(self.categories)
        self.trigger = Trigger.from_config(cfg, self.categories, 1000.0 * self.score_period_s)
        self.featurizer = StreamingFeaturizer(self.params)
        self.samples = 0
        self.verifier, self.second = None, None  # the second look, when the config has one
        if cfg.second_look is not None:
            self.verifier = (verifier if verifier is not None
                             else _load_verifier(run_dir, self.categories, self.params))
            self.second = SecondLook(self.verifier, self.categories, cfg.second_look,
                                     delay_frames(cfg.second_look_delay_ms, self.params), self.win)

    def reset(self) -> None:
        self.featurizer.reset()
        self.scorer.reset()
        self.trigger.reset()
        if self.second is not None:
            self.second.reset()
        self.samples = 0

    def scores(self, block: np.ndarray) -> tuple[float, np.ndarray] | None:
        """One block -> (time in s, raw softmax scores `[C]`) when the model scored."""
        return self._step(block)[1]

    def _step(self, block: np.ndarray) -> tuple[np.ndarray | None, tuple[float, np.ndarray] | None]:
        """One block -> (its feature frame or None, (time in s, raw scores `[C]`) or None)."""
        block = np.asarray(block)
        hop = self.params.hop
        if block.shape != (hop,):
            raise TinyKWSError(f"blocks must hold {hop} samples, got shape {block.shape}")
        self.samples += hop
        frame = self.featurizer.step(block)
        if frame is None:
            return None, None
        s = self.scorer(frame)
        return frame, None if s is None else (self.samples / self.params.sample_rate, s)

    def process(self, block: np.ndarray) -> list[Detection]:
        """One 160-sample int16 block -> the detections it completed (0 or 1). With a
        second look, a detection comes `second_look_delay_ms` after the frame it was made
        on (its `time_s` is that frame's), once the verifier has confirmed it."""
        frame, r = self._step(block)
        first = self.trigger(*r) if r is not None else None
        if self.second is None:
            return [first] if first else []
        return [] if frame is None else self.second.push(frame, first)

    def run(self, audio: np.ndarray) -> list[Detection]:
        """All detections in an int16 signal (the tail shorter than a block is dropped)."""
        out: list[Detection] = []
        for block in blocks(audio, self.params.hop):
            out += self.process(block)
        return out

    def score_trace(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(times `[S]` s, raw scores `[S, C]`) over a whole signal from a fresh state.

        The same numbers as feeding `scores()` block by block (a test checks it), computed
        in batches: all frames at once, then one batched forward per mode. Used by the
        benchmarks, where 10 minutes of audio would take minutes frame by frame.
        """
        return self.score_frames(frames_from_stream(audio, self.params))

    def score_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`score_trace` of a signal's features (`frames_from_stream`, `[T, F]`), for callers
        that need the features too."""
        import torch

        p, sc = self.params, self.scorer
        frames = torch.from_numpy(np.asarray(frames, np.float32))  # [T, F]
        t_all = (np.arange(len(frames)) + p.first_block) * p.hop / p.sample_rate  # [T] s
        c = len(self.categories)
        if len(frames) == 0:
            return np.zeros(0), np.zeros((0, c))
        with torch.no_grad(), torch_threads(1):
            if self.mode == "rolling":
                logits, _ = self.model.forward_sequence(frames[None])  # [1, T, C]
                return t_all, torch.softmax(logits[0], -1).double().numpy()
            if self.mode == "window":
                ends = np.arange(self.win - 1, len(frames), sc.hop)  # last frame of each window
                if len(ends) == 0:  # shorter than one window: nothing scored yet
                    return np.zeros(0), np.zeros((0, c))
                out = []
                for i in range(0, len(ends), 512):
                    idx = torch.from_numpy(ends[i : i + 512, None] - np.arange(self.win - 1, -1, -1))
                    out.append(torch.softmax(self.model(frames[idx]), -1))  # [b, 98, F] -> [b, C]
                return t_all[ends], torch.cat(out).double().numpy().reshape(-1, c)
            # reset: segments of reset_frames from a zero state, scored from age win // 2
            r = sc.reset_frames
            n_seg = -(-len(frames) // r)
            segs = torch.zeros(n_seg * r, frames.shape[1])
            segs[: len(frames)] = frames
            logits, _ = self.model.forward_sequence(segs.view(n_seg, r, -1))  # [n_seg, r, C]
            age = np.tile(np.arange(1, r + 1), n_seg)[: len(frames)]
            keep = age >= self.win // 2
            scores = torch.softmax(logits.reshape(n_seg * r, c)[: len(frames)], -1)
            return t_all[keep], scores.double().numpy()[keep]

    def score_traces(self, audios: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`score_trace` of each signal, each from a fresh state. In `rolling` mode the
        signals go through the model side by side, zero-padded to the longest (the model is
        causal: padding after a signal cannot change its scores): a 10-minute stream beside
        an hour-long one costs almost nothing, because the recurrence's per-frame steps, not
        their width, set the time (docs/benchmarks.md, "Issue 19, eighth round"). Other
        modes: one at a time."""
        import torch

        if self.mode != "rolling" or len(audios) < 2:
            return [self.score_trace(a) for a in audios]
        p = self.params
        frames = [np.asarray(frames_from_stream(a, p), np.float32) for a in audios]  # [T_i, F]
        longest = max(len(f) for f in frames)
        if longest == 0:
            return [self.score_frames(f) for f in frames]
        batch = np.zeros((len(frames), longest, frames[0].shape[1]), np.float32)  # [B, T, F]
        for i, f in enumerate(frames):
            batch[i, : len(f)] = f
        with torch.no_grad(), torch_threads(1):
            logits, _ = self.model.forward_sequence(torch.from_numpy(batch))  # [B, T, C]
            probs = torch.softmax(logits, -1).double().numpy()
        return [((np.arange(len(f)) + p.first_block) * p.hop / p.sample_rate, probs[i, : len(f)])
                for i, f in enumerate(frames)]

    def detections_from_trace(self, times: np.ndarray, scores: np.ndarray,
                              threshold: float | None = None,
                              frames: np.ndarray | None = None) -> list[Detection]:
        """Smoothing + threshold + refractory over a whole trace; with a second look, the
        verifier's check too, on the trace's features `frames` `[T, F]`."""
        cfg = self.config
        smoothed = moving_average(scores, self.trigger.buf.maxlen or 1)
        thr = cfg.threshold if threshold is None else threshold
        found = pick_detections(times, smoothed, self.categories, thr, cfg.refractory_ms / 1000.0,
                                self.keywords)
        return found if cfg.second_look is None else self._second_look(found, frames, {})

    def detection_sweep(self, times: np.ndarray, scores: np.ndarray,
                        thresholds: Sequence[float],
                        frames: np.ndarray | None = None) -> list[list[Detection]]:
        """`detections_from_trace` at each threshold, smoothing and ranking the trace once
        (a DET curve over an hour of audio: 29x faster than one call a threshold, with
        `pick_from_best`'s jump; `bench/operating_point.py --time`); the verifier scores
        each detection once."""
        smoothed = moving_average(scores, self.trigger.buf.maxlen or 1)
        best, best_score = best_keyword(smoothed, self.categories, self.keywords)
        refractory_s = self.config.refractory_ms / 1000.0
        found = [pick_from_best(times, best, best_score, self.categories, float(t), refractory_s)
                 for t in thresholds]
        if self.config.second_look is None:
            return found
        memo: dict = {}  # (frame, label) -> the verifier's score, shared by the thresholds
        return [self._second_look(f, frames, memo) for f in found]

    def _second_look(self, found: list[Detection], frames: np.ndarray | None,
                     memo: dict) -> list[Detection]:
        """`found` as the second look leaves it."""
        cfg = self.config
        if frames is None:
            raise TinyKWSError("this detector has a second look: pass the trace's features (frames)")
        return second_look_filter(self.verifier, frames, found, self.categories, self.params,
                                  cfg.second_look, self.second.delay, self.win, memo)


def _load_verifier(run_dir: Path | str | None, categories: Sequence[str], params):
    """The run's verifier (RUN_DIR/train/verifier.pt), checked against the model's classes
    and features."""
    path = None if run_dir is None else RunDir(run_dir).verifier
    if path is None or not path.is_file():
        raise TinyKWSError(f"the detector has a second look but {path or 'the run'} has no verifier: "
                           "train one with `tinykws train-verifier RUN`, or turn the second look off")
    model, ck = load_model(path)
    check_verifier(ck, categories, params, path)
    return model


def blocks(audio: np.ndarray, hop: int) -> Iterator[np.ndarray]:
    """Consecutive `hop`-sample blocks of a 1-D signal (`FeatureParams.hop`, 160 = 10 ms)."""
    audio = np.asarray(audio)
    for i in range(0, len(audio) - hop + 1, hop):
        yield audio[i : i + hop]


def detect_file(
    run_dir: Path | str,
    wav: Path | str,
    threshold: Optional[float] = None,
    smoothing_ms: Optional[float] = None,
    refractory_ms: Optional[float] = None,
    mode: Optional[str] = None,
    config: Optional[DetectorConfig] = None,
) -> list[Detection]:
    """Detections in a WAV file of any length (resampled to 16 kHz mono), with the run's
    detector (RUN_DIR/detector.json) unless `config` or single settings are given.

    The file is read in chunks (`stream_audio`), never whole: a day-long recording needs
    no more memory than a minute."""
    det = Detector(run_dir, threshold, smoothing_ms, refractory_ms, mode, config=config)
    found: list[Detection] = []
    carry = np.zeros(0, np.int16)  # samples short of a whole block, for the next chunk
    for chunk in stream_audio(wav):
        x = np.concatenate([carry, chunk])
        n = len(x) - len(x) % det.params.hop
        found += det.run(x[:n])
        carry = x[n:]
    return found


def detect_live(
    run_dir: Path | str,
    threshold: Optional[float] = None,
    smoothing_ms: Optional[float] = None,
    refractory_ms: Optional[float] = None,
    mode: Optional[str] = None,
    on_detection: Callable[[Detection], None] = print,
    seconds: float | None = None,
    on_start: Callable[[], None] | None = None,
    config: Optional[DetectorConfig] = None,
) -> None:
    """Listen to the default microphone and call `on_detection` for each keyword heard,
    with the run's detector unless `config` or single settings are given.

    Runs until Ctrl-C (or `seconds`). Raises TinyKWSError when `sounddevice` (extra `live`)
    or an input device is missing.
    """
    import queue

    try:
        import sounddevice as sd
    except ImportError:
        raise TinyKWSError("--live needs the sounddevice package (extra `live`): "
                           "pip install sounddevice") from None
    except OSError as e:  # the PortAudio library itself is missing
        raise TinyKWSError(f"--live needs the PortAudio library ({e}); "
                           "install it (Debian: apt-get install libportaudio2)") from None
    try:
        sd.query_devices(kind="input")
    except Exception as e:  # sounddevice raises PortAudioError / ValueError without a mic
        raise TinyKWSError(f"no audio input device available ({e})") from None

    det = Detector(run_dir, threshold, smoothing_ms, refractory_ms, mode, config=config)
    q: queue.Queue[np.ndarray] = queue.Queue()

    def callback(indata, frames, time, status):  # noqa: ARG001 - sounddevice's signature
        q.put(indata[:, 0].copy())

    rate, hop = det.params.sample_rate, det.params.hop
    n_blocks = None if seconds is None else int(seconds * rate / hop)
    try:
        with sd.InputStream(samplerate=rate, blocksize=hop, channels=1,
                            dtype="int16", callback=callback):
            if on_start:
                on_start()
            i = 0
            while n_blocks is None or i < n_blocks:
                for d in det.process(q.get()):
                    on_detection(d)
                i += 1
    except sd.PortAudioError as e:
        raise TinyKWSError(f"cannot open the microphone: {e}") from None
