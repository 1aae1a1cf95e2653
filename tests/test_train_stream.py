"""Stream training (tinykws.stream_training): stream making, targets, bounded state, no lock-in."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams
from tinykws.models import ModelConfig, build_model
from tinykws.stream_clips import ClipPool, word_bounds
from tinykws.stream_state import bound_state, longest_keyword_run, stream_through
from tinykws.stream_losses import IGNORE, causal_mean, inside_keyword, peak_loss
from tinykws.stream_maker import StreamMaker
from tinykws.stream_training import Miner, StreamTrainConfig, quick_stream_config, train_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATS = ["yes", "no", "_unknown_", "_silence_"]
LOG_PER_DB = math.log(10) / 10
WORD = slice(30, 60)  # frames of the word in every toy clip


def toy_clips(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like clips [N, 98, 32]: a noise floor, and for words a 30-frame loud block in
    the class's own 8 bands (yes 0-7, no 8-15, other words 16-23); silence is floor only."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(len(CATS)):
        for _ in range(n_per_class):
            x = rng.normal(-12.0, 1.0, (98, 32)) + rng.uniform(-2, 2)
            if CATS[label] != "_silence_":
                x[WORD, 8 * label:8 * label + 8] += 10.0
            xs.append(x)
            ys.append(label)
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64)


def test_word_bounds_finds_the_loud_block():
    x, _ = toy_clips(3)
    first, end = word_bounds(x[:9], log_per_db=LOG_PER_DB)
    assert np.all(np.abs(first - WORD.start) <= 1) and np.all(np.abs(end - WORD.stop) <= 1)


def test_stream_targets_follow_word_ends():
    x, y = toy_clips(20)
    pool = ClipPool.from_arrays(x, y, CATS, LOG_PER_DB)
    cfg = StreamTrainConfig(batch=3, chunk_frames=500, target_frames=40, target_lead=3)
    maker = StreamMaker(pool, cfg, np.random.default_rng(0))
    xs, target, weight, region, rclass = maker.next_chunk()
    inside = inside_keyword(target, rclass, torch.tensor([c not in ('_unknown_', '_silence_') for c in CATS]))
    assert xs.shape == (3, 500, 32) and target.shape == weight.shape == (3, 500)
    t = target.numpy()
    sil = CATS.index("_silence_")
    # every keyword stretch is scored as that keyword for at most lead + 40 frames, comes
    # right after unscored frames (the word itself) and is followed by background
    for row in t:
        for k in (0, 1):
            idx = np.flatnonzero(row == k)
            if len(idx) == 0:
                continue
            runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
            for r in runs:
                assert len(r) <= 43
                if r[0] > 0:
                    assert row[r[0] - 1] == IGNORE
    assert (t == sil).mean() > 0.3  # background dominates
    assert set(np.unique(t)) <= {IGNORE, 0, 1, 2, 3}
    assert np.all(weight.numpy()[t == IGNORE] == 0)
    # `inside` marks the keyword's own speech (unscored frames), with the class scored after it
    ins = inside.numpy()
    assert (ins >= 0).any() and np.all(t[ins >= 0] == IGNORE)
    for row_t, row_i in zip(t, ins):
        for r in np.split(np.flatnonzero(row_i >= 0), np.flatnonzero(np.diff(np.flatnonzero(row_i >= 0)) > 1) + 1):
            after = row_t[r[-1] + 1:][row_t[r[-1] + 1:] != IGNORE]
            if len(r) and len(after):
                assert after[0] == row_i[r[0]]
    # a chunk continues the same stream: the next one is not the start of a new one
    x2, *_ = maker.next_chunk()
    assert x2.shape == (3, 500, 32)


def _keyword_runs(t: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, first frame, class) of every stretch of keyword targets (classes 0 and 1)."""
    out = []
    for r, row in enumerate(t):
        for k in (0, 1):
            idx = np.flatnonzero(row == k)
            out += [(r, int(run[0]), k) for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if len(run)]
    return sorted(out)


def test_target_delay_moves_the_keyword_window_later_and_leaves_the_stream_alone():
    x, y = toy_clips(20)
    pool = ClipPool.from_arrays(x, y, CATS, LOG_PER_DB)

    def chunk(delay: int):
        cfg = StreamTrainConfig(batch=3, chunk_frames=1200, gap_frames=(60, 200), target_delay=delay)
        return StreamMaker(pool, cfg, np.random.default_rng(5)).next_chunk()

    x0, t0, w0, *_ = chunk(0)
    x1, t1, w1, *_ = chunk(20)
    assert torch.equal(x0, x1)  # the same words and noise: only the targets move
    before, after = _keyword_runs(t0.numpy()), _keyword_runs(t1.numpy())
    assert len(before) >= 6
    # with gaps of at least 60 frames every window fits: each starts exactly 20 frames later
    assert [(r, s + 20, k) for r, s, k in before if s + 20 < 1200] == [a for a in after if a[1] < 1200]
    # the 20 frames between are unscored; the other words keep their targets, 20 frames longer
    for r, s, _ in before:
        assert np.all(t1.numpy()[r, s:s + 20] == IGNORE) and np.all(w1.numpy()[r, s:s + 20] == 0)
    unk = CATS.index("_unknown_")
    assert torch.all((t1 == unk) >= (t0 == unk)) and int((t1 == unk).sum()) > int((t0 == unk).sum())
    for bad in (-1, 2.5, True):
        with pytest.raises(TinyKWSError, match="target_delay"):
            StreamTrainConfig(target_delay=bad)


def test_real_negative_share_sets_how_many_negatives_are_real_recordings():
    """The first n_real pool clips are real; with synthesized negatives 10x as many, share
    0 draws real ones in proportion (~1/11), share 0.5 about half, share 1 only real ones."""
    x, y = toy_clips(20)
    unk = CATS.index("_unknown_")
    extra = np.repeat(x[y == unk], 10, axis=0)  # 200 "synthesized" negatives after 20 real
    feats = np.concatenate([x, extra])
    labels = np.concatenate([y, np.full(len(extra), unk)])
    pool = ClipPool.from_arrays(feats, labels, CATS, LOG_PER_DB)
    for share, lo, hi in ((0.0, 0.04, 0.15), (0.5, 0.4, 0.6), (1.0, 1.0, 1.0)):
        maker = StreamMaker(pool, StreamTrainConfig(batch=1, real_negative_share=share),
                            np.random.default_rng(0), n_real=len(y))
        real = np.mean([maker._draw_negative() < len(y) for _ in range(2000)])
        assert lo <= real <= hi, (share, real)
    with pytest.raises(TinyKWSError, match="real_negative_share"):
        StreamTrainConfig(real_negative_share=1.5)


def test_real_negative_balance_draws_each_word_as_often_and_keeps_the_real_share():
    """Real negatives of three words, 150 / 45 / 5 clips, beside 200 synthesized ones:
    drawn clip by clip the rare word is ~2.5 % of the real draws; balanced each word is a
    third, and the real share (half) stays where it was. Synthesized clips have no word."""
    from tinykws.stream_clips import word_balance

    x, y = toy_clips(20)
    unk = CATS.index("_unknown_")
    neg = np.repeat(x[y == unk][:1], 400, axis=0)
    words = np.array(["bed"] * 150 + ["zero"] * 45 + ["wow"] * 5 + [""] * 200)
    assert np.allclose(word_balance(words[:200])[[0, 150, 199]], [200 / 3 / 150, 200 / 3 / 45, 200 / 3 / 5])
    feats, labels = np.concatenate([x, neg]), np.concatenate([y, np.full(400, unk)])
    pool = ClipPool.from_arrays(feats, labels, CATS, LOG_PER_DB,
                                np.concatenate([np.array(["x"] * len(y)), words]))
    # the toy split's own 20 _unknown_ clips are real too, as the word "x"
    n_real = len(y) + 200
    for balance, rare in ((False, (0.0, 0.06)), (True, (0.2, 0.3))):
        maker = StreamMaker(pool, StreamTrainConfig(batch=1, real_negative_balance=balance),
                            np.random.default_rng(0), n_real=n_real)
        said = pool.words[[maker._draw_negative() for _ in range(4000)]]
        real = said[said != ""]
        assert 0.45 <= len(real) / len(said) <= 0.57, balance
        assert rare[0] <= np.mean(real == "wow") <= rare[1], (balance, np.mean(real == "wow"))
    # train_stream's pool: the training split's words from its paths, then the real ones
    from tinykws.run import FeatureSplit
    from tinykws.stream_clips import clip_pool

    paths = np.array([f"d/{c}/a.wav" for c in np.array(CATS)[y]])
    split = FeatureSplit(Path("training.npz"), y, CATS, FeatureParams(), paths, x)
    assert FeatureSplit(Path("old.npz"), y, CATS, FeatureParams(), np.array([]), x).words == [""] * len(y)
    pool, n_real = clip_pool(split, neg[:3], neg[:2], LOG_PER_DB, ["zero", "wow", "bed"])
    assert n_real == len(y) + 3 and list(pool.words[len(y) - 1:]) == ["_silence_", "zero", "wow", "bed", "", ""]
    with pytest.raises(TinyKWSError, match="real_negative_words"):
        clip_pool(split, neg[:3], None, LOG_PER_DB, ["zero"])

def test_clip_negative_share_draws_that_share_of_the_clip_batch_from_the_negatives():
    """Share 0 repeats the earlier versions' draw exactly (their runs repeat); a share takes
    that many clips of each batch from the pool after the training split, the rest from it;
    a share of 1 (no training clip left) or a negative one is refused."""
    from tinykws.stream_training import _clip_draw

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(_clip_draw(g1, 100, 500, 64, 0), torch.randint(0, 100, (64,), generator=g2))
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([_clip_draw(gen, 100, 500, 64, 16) for _ in range(200)])
    assert (draws[:, :48] < 100).all() and (draws[:, 48:] >= 100).all() and (draws < 500).all()
    assert len(torch.unique(draws[:, 48:])) > 300  # spread over the 400 negatives
    for bad in (1.0, -0.1):
        with pytest.raises(TinyKWSError, match="clip_negative_share"):
            StreamTrainConfig(clip_negative_share=bad)


def test_miner_scores_in_turn_and_boosts_only_the_top_share():
    """Rounds of `mine_clips` cover every negative in turn (wrapping); a negative is boosted
    while its latest score passes the threshold and, with `mine_top`, is in the top share;
    never-scored negatives (NaN) are not boosted."""
    miner = Miner(np.full(10, np.nan))
    cfg = StreamTrainConfig(mine_clips=4, mine_top=0.4, mine_threshold=0.3, mine_boost=8.0)
    rounds = [miner.next_round(cfg) for _ in range(3)]
    assert [r.tolist() for r in rounds] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    miner.scores[:5] = [0.9, 0.5, 0.4, 0.1, 0.95]  # 5..9 not scored yet
    w = miner.weights(cfg)
    assert w.tolist() == [8, 1, 1, 1, 8] + [1] * 5  # the top 40 % of the 5 scored: 0.9, 0.95
    # without mine_top, the threshold alone (the old rule): every score >= 0.3
    w = miner.weights(StreamTrainConfig(mine_threshold=0.3, mine_boost=4.0))
    assert w.tolist() == [4, 4, 4, 1, 4] + [1] * 5
    # the threshold still applies under mine_top: nothing is hard when every score is low
    miner.scores[:5] = 0.01
    assert (miner.weights(cfg) == 1).all()
    assert Miner(np.zeros(3)).next_round(StreamTrainConfig()).tolist() == [0, 1, 2]  # 0: all
    with pytest.raises(TinyKWSError, match="mine_top"):
        StreamTrainConfig(mine_top=1.5)


class _Pattern(torch.nn.Module):
    """A stand-in model whose logits `[T, C]` are fixed frame by frame, whatever it hears."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits.astype(np.float32))

    def forward_sequence(self, x: torch.Tensor):
        return self.logits[None, : x.shape[1]].expand(x.shape[0], -1, -1), None


def test_mining_can_score_the_detectors_mean():
    """`mine_smooth_frames`: a negative scores the N-frame trailing mean of each keyword's
    probability (over the context too, as the detector's runs), then the best keyword, as
    the detector fires; 0 keeps the raw frame. The logits are laid out so that each
    shortcut gives another number: a one-frame "yes" spike (raw, not mean), "yes" and "no"
    taking turns (the best class averaged is not the best average), "no" across the end
    of the context (a mean started after it), and `_unknown_` loudest of all (not a keyword)."""
    from tinykws.stream_mining import negative_keyword_scores

    x, y = toy_clips(3)
    pool = ClipPool.from_arrays(x, y, CATS, LOG_PER_DB)
    cfg = StreamTrainConfig(target_delay=5, target_frames=10)
    context, n = 100, 100 + x.shape[1] + 15
    yes, no, unk, sil = (CATS.index(c) for c in ("yes", "no", "_unknown_", "_silence_"))
    logits = np.zeros((n, len(CATS)))
    logits[:, sil] = 5.0
    logits[80:105, no] = 7.0  # across the context's end (frame 100)
    logits[120:200, unk] = 9.0
    logits[150, yes] = 14.0  # one frame
    logits[160:190:2, yes] = logits[161:190:2, no] = 11.0  # taking turns
    model = _Pattern(logits)

    def scores(smooth: int) -> np.ndarray:
        return negative_keyword_scores(model, StreamMaker(pool, cfg, np.random.default_rng(3)), smooth=smooth)

    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)

    def trailing(q: np.ndarray) -> np.ndarray:  # the last 30 rows' mean (fewer at the start)
        c = np.cumsum(q, axis=0)
        lagged = np.concatenate([np.zeros_like(c[:30]), c[:-30]])
        return (c - lagged) / np.minimum(np.arange(1, len(q) + 1), 30).reshape(-1, *[1] * (q.ndim - 1))

    kw = [yes, no]
    expected = trailing(p)[context:, kw].max()
    shortcuts = {"best class first": trailing(p[:, kw].max(1))[context:].max(),
                 "mean after the context": trailing(p[context:])[:, kw].max(),
                 "every class": trailing(p)[context:].max(),
                 "raw": p[context:, kw].max()}
    assert all(abs(v - expected) > 0.05 for v in shortcuts.values()), shortcuts
    raw, one, mean = scores(0), scores(1), scores(30)
    assert raw.shape == mean.shape == (len(pool.indices("_unknown_")),)
    assert np.allclose(raw, p[context:, kw].max(), atol=1e-5) and np.allclose(one, raw, atol=1e-6)
    assert np.allclose(mean, expected, atol=1e-5)
    for bad in (-1, 1.5, True):
        with pytest.raises(TinyKWSError, match="mine_smooth_frames"):
            StreamTrainConfig(mine_smooth_frames=bad)


def _saturating_fastgrnn(hidden: int = 8) -> torch.nn.Module:
    """A FastGRNN whose gate sits at 1 and whose update is +1: the state can only grow."""
    m = build_model(ModelConfig(architecture="fastgrnn", input_size=32, hidden_size=hidden,
                                num_layers=1, num_classes=4))
    with torch.no_grad():
        for c in m.cells:
            c.bias_gate.fill_(30.0)
            c.bias_update.fill_(5.0)
    return m.eval()


def test_bound_state_stops_the_drift_that_locks_clip_models_in():
    frames = torch.zeros(20_000, 32)  # 200 s of frames
    m = _saturating_fastgrnn()
    _, grow = stream_through(m, frames, chunk=5000)
    assert grow[-1] > 300 and grow[-1] > 3.5 * grow[0]  # σ(-4) ≈ 0.018 more every frame
    assert bound_state(m) == 1
    _, bounded = stream_through(m, frames, chunk=5000)
    assert bounded.max() <= 1.0


def test_bounded_fastgrnn_state_stays_within_sigma_zeta_on_loud_random_input():
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture="fastgrnn", input_size=32, hidden_size=16,
                                num_layers=2, num_classes=4))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(5.0)  # large weights: gates saturate often
    bound_state(m)
    frames = torch.randn(30_000, 32) * 20
    _, peaks = stream_through(m.eval(), frames, chunk=3000)
    k1 = max(float(torch.sigmoid(c.zeta.detach())) for c in m.cells)
    assert peaks.max() <= k1 + 1e-6


def test_longest_keyword_run_ignores_background():
    s = np.zeros((10, 4))
    s[:, 3] = 1  # silence everywhere ...
    s[2:5, 3], s[2:5, 0] = 0, 1  # ... but 3 frames of yes
    s[6:8, 3], s[6:8, 1] = 0, 1
    assert longest_keyword_run(s, CATS) == (3, "yes")
    assert longest_keyword_run(np.tile([0, 0, 0, 1.0], (5, 1)), CATS) == (0, "")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """Clip phase (tinykws.train) then stream phase on toy features: (model, run folder)."""
    from tinykws.checkpoint import load_model
    from tinykws.train import TrainConfig, train

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tmp_path = tmp_path_factory.mktemp("toy_run")
        return _toy_run(tmp_path, TrainConfig, train, load_model)
    finally:
        torch.set_num_threads(n)


def _toy_run(tmp_path, TrainConfig, train, load_model):
    fdir = tmp_path / "features"
    fdir.mkdir()
    fp = FeatureParams().to_json()
    for split, n, seed in (("training", 60, 0), ("validation", 8, 1)):
        x, y = toy_clips(n, seed)
        np.savez(fdir / f"{split}.npz", features=x, labels=y, categories=np.array(CATS),
                 feature_params=fp, paths=np.array([f"{split}/{i}" for i in range(len(y))]))
    train(fdir, tmp_path, TrainConfig(epochs=40, hidden_units=16, batch_size=32, optimizer="adam",
                                      learning_rate=0.01, lr_min=0.001, threads=1))
    cfg = StreamTrainConfig(iterations=250, batch=8, chunk_frames=150, clip_batch=16,
                            mine_every=125, mine_clips=30, mine_top=0.2,
                            learning_rate=0.005, lr_min=0.001, workers=1)
    import tinykws.stream_training as st

    rounds, mine = [], st.Miner.mine
    st.Miner.mine = lambda self, *a: rounds.append(len(rounds)) or mine(self, *a)
    try:
        train_stream(fdir, tmp_path, cfg)
    finally:
        st.Miner.mine = mine
    # a round at step 125; none after the last step (250), where no draw would use it
    assert rounds == [0]
    model, ck = load_model(tmp_path / "train" / "best.pt")
    assert ck.stream_config == cfg.to_dict()
    assert (tmp_path / "train" / "clip.pt").is_file()
    return model, tmp_path


def _never_locks_in(model, minutes: float) -> None:
    x, y = toy_clips(20, seed=7)  # clips the model never saw
    pool = ClipPool.from_arrays(x, y, CATS, LOG_PER_DB)
    cfg = StreamTrainConfig(batch=1, chunk_frames=6000, snr_db=(10.0, 40.0))
    maker = StreamMaker(pool, cfg, np.random.default_rng(3))
    chunks = [maker.next_chunk() for _ in range(int(minutes * 60 * 100) // 6000)]
    frames = torch.cat([c[0][0] for c in chunks])  # [T, 32], one continuous stream
    target = torch.cat([c[1][0] for c in chunks]).numpy()
    scores, peaks = stream_through(model, frames)
    assert peaks.max() <= 1.0  # bounded state, at every minute
    run, label = longest_keyword_run(scores, CATS)
    assert run <= 300, f"{label} was the top class for {run / 100:.1f} s on end"
    # and the model still hears the words: most keyword target frames are recognised
    kw = (target == 0) | (target == 1)
    assert (scores.argmax(1)[kw] == target[kw]).mean() > 0.5
    # the last ten minutes are as good as the first: nothing drifts
    half = len(frames) // 2
    acc = [(scores.argmax(1)[s][kw[s]] == target[s][kw[s]]).mean()
           for s in (slice(0, half), slice(half, None))]
    assert acc[1] > acc[0] - 0.15


def test_stream_model_never_locks_in_ten_minutes(toy_run):
    _never_locks_in(toy_run[0], minutes=10)


@pytest.mark.slow
def test_stream_model_never_locks_in_one_hour(toy_run):
    _never_locks_in(toy_run[0], minutes=60)


def test_stream_checkpoint_runs_on_one_state_and_keeps_its_log(toy_run):
    from tinykws.detect import Detector
    from tinykws.checkpoint import load_model

    model, run = toy_run
    _, ck = load_model(run / "train" / "best.pt")
    assert Detector(model=model, checkpoint=ck).mode == "rolling"  # one state, one step a frame
    _, clip_ck = load_model(run / "train" / "clip.pt")
    assert clip_ck.stream_config is None  # the clip model is kept as it was
    last = torch.load(run / "train" / "stream_last.pt", weights_only=True)
    assert last["iteration"] == 250
    log = (run / "train" / "stream_log.csv").read_text().splitlines()
    assert len(log) == 251  # header + one row an iteration
    cfg = StreamTrainConfig.from_dict(json.loads(json.dumps(quick_stream_config().to_dict())))
    assert cfg == quick_stream_config()


def test_cli_train_stream_writes_a_one_state_model_and_refuses_bad_negatives(toy_run, tmp_path, capsys):
    import shutil

    from tinykws.cli import run as cli
    from tinykws.checkpoint import load_model

    src = toy_run[1]
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    shutil.copyfile(src / "train" / "clip.pt", run / "train" / "best.pt")
    feats = str(src / "features")
    # toy features, no audio behind them: the waveform rows the pipeline uses are refused, saying why
    assert cli(["train-stream", str(run), "--features", feats, "--iterations", "3"]) == 2
    err = capsys.readouterr().err
    assert "waveform stream rows" in err and "wave_share 0" in err and "Traceback" not in err
    assert cli(["train-stream", str(run), "--features", feats, "--iterations", "3", "--wave-share", "0"]) == 0
    _, ck = load_model(run / "train" / "best.pt")
    assert ck.rolling and ck.stream_config["iterations"] == 3
    assert (run / "train" / "clip.pt").is_file()
    capsys.readouterr()
    assert cli(["train-stream", str(run), "--features", feats, "--negatives", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "negatives" in err and "Traceback" not in err
    assert cli(["train-stream", str(run), "--iterations", "0"]) == 2
    capsys.readouterr()
    assert cli(["train-stream", str(run), "--features", feats, "--iterations", "2", "--workers", "3"]) == 2
    err = capsys.readouterr().err
    assert "3 stream workers cannot share a step's streams (batch) (32)" in err and "Traceback" not in err


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_phase_with_waveform_rows_lays_the_clips_audio(toy_run, tmp_path, monkeypatch, workers):
    import shutil

    from test_stream_waves import _wave_run
    from tinykws.checkpoint import load_model
    from tinykws.stream_waves import WaveSource

    run, pool, paths = _wave_run(tmp_path)
    shutil.copyfile(toy_run[1] / "train" / "clip.pt", run / "train" / "clip.pt")
    fdir = run / "features"
    unk = pool.indices("_unknown_")
    read, audio = [], WaveSource.audio  # (in this process: rank 0's reads)
    monkeypatch.setattr(WaveSource, "audio", lambda self, i: read.append(self.paths[i]) or audio(self, i))
    cfg = StreamTrainConfig(iterations=4, batch=4, chunk_frames=100, clip_batch=8, mine_every=2,
                            learning_rate=0.005, lr_min=0.001, workers=workers, wave_share=0.5)
    with pytest.raises(TinyKWSError, match="audio file of every negative clip"):
        train_stream(fdir, run, cfg, extra_negatives=pool.features[unk])  # negatives without their files
    (tmp_path / "data" / "no" / "2.wav").rename(tmp_path / "gone.wav")
    with pytest.raises(TinyKWSError, match=r"no/2\.wav not found"):  # named before any training
        train_stream(fdir, run, cfg, extra_negatives=pool.features[unk], extra_negative_paths=[paths[i] for i in unk])
    (tmp_path / "gone.wav").rename(tmp_path / "data" / "no" / "2.wav")
    assert not read and not (run / "train" / "best.pt").exists()
    train_stream(fdir, run, cfg, extra_negatives=pool.features[unk], extra_negative_paths=[paths[i] for i in unk])
    _, ck = load_model(run / "train" / "best.pt")
    assert ck.stream_config["wave_share"] == 0.5 and ck.stream_config["workers"] == workers
    # the waveform rows (half of this process's) read clips of the training split and of the extra negatives
    assert len(read) >= 2 and {p.split("/")[-2] for p in read} <= {"yes", "no", "_unknown_"}


def test_inside_penalty_punishes_other_keywords_only():
    """Frames inside keyword 0: mass on keyword 1 costs, mass on keyword 0 or non-keywords
    does not; weight 0 is the plain weighted cross-entropy."""
    from tinykws.stream_losses import stream_loss

    C = len(CATS)
    kw = torch.tensor([c not in ("_unknown_", "_silence_") for c in CATS])
    target = torch.tensor([[IGNORE, 2]])
    weight = torch.tensor([[0.0, 1.0]])
    inside = torch.tensor([[0, -1]])

    def loss(first_logits, w):
        logits = torch.zeros(1, 2, C)
        logits[0, 0] = torch.tensor(first_logits)
        return float(stream_loss(logits, target, weight, inside, kw, w))

    plain = float(torch.nn.functional.cross_entropy(torch.zeros(1, C), torch.tensor([2])))
    assert loss([0.0] * C, 0.0) == pytest.approx(plain)
    own = [5.0 if i == 0 else 0.0 for i in range(C)]
    other = [5.0 if i == 1 else 0.0 for i in range(C)]
    unk = [5.0 if CATS[i] == "_unknown_" else 0.0 for i in range(C)]
    assert loss(other, 1.0) > loss(own, 1.0) + 1.0
    assert loss(unk, 1.0) < loss([0.0] * C, 1.0)


def test_focal_gamma_scales_each_frame_by_its_error():
    """focal_gamma: each scored frame's cross-entropy times (1 - p_target)^gamma, computed
    here from the softmax directly; ignored frames stay out, and gamma 0 is the plain loss."""
    from tinykws.stream_losses import stream_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, len(CATS), generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, len(CATS), (2, 6), generator=gen)
    target[0, :2] = IGNORE
    weight = torch.rand(2, 6, generator=gen, dtype=torch.float64) + 0.1
    weight[target == IGNORE] = 0.0
    p = torch.softmax(logits, -1)
    rows = target != IGNORE
    pt = p[rows].gather(1, target[rows][:, None])[:, 0]
    for gamma in (0.0, 1.0, 2.0):
        want = ((1 - pt) ** gamma * -torch.log(pt) * weight[rows]).sum() / weight.sum()
        got = stream_loss(logits, target, weight, focal_gamma=gamma)
        assert float(got) == pytest.approx(float(want), rel=1e-9)
    # a confident right frame counts for almost nothing, a confident wrong one almost fully
    sure = torch.full((1, 1, len(CATS)), -10.0, dtype=torch.float64)
    sure[0, 0, 0] = 10.0
    one = torch.ones(1, 1, dtype=torch.float64)
    right, wrong = torch.tensor([[0]]), torch.tensor([[1]])
    assert float(stream_loss(sure, right, one, focal_gamma=2.0)) < 1e-12
    assert float(stream_loss(sure, wrong, one, focal_gamma=2.0)) == pytest.approx(
        float(stream_loss(sure, wrong, one)), rel=1e-6)


def test_focal_gamma_must_not_be_negative():
    with pytest.raises(TinyKWSError, match="focal_gamma"):
        StreamTrainConfig(focal_gamma=-1.0)


def test_causal_mean_is_the_detectors_moving_average():
    from tinykws.triggers import moving_average

    p = torch.rand(2, 50, 4, dtype=torch.float64)
    for n in (1, 7, 30, 80):
        got = causal_mean(p, n).numpy()
        for b in range(2):
            np.testing.assert_allclose(got[b], moving_average(p[b].numpy(), n), atol=1e-12)


def test_peak_loss_rewards_own_peaks_and_punishes_other_peaks():
    """One row: gap (region 0), keyword 0's word (region 1: 3 unscored + 4 scored frames),
    gap (region 2). Raising keyword 0's score on one scored frame lowers the loss; the same
    rise on an unscored frame does not help it; keyword 1 rising anywhere costs."""
    C = len(CATS)
    kw = torch.tensor([c not in ("_unknown_", "_silence_") for c in CATS])
    sil = CATS.index("_silence_")
    region = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2]])
    rclass = torch.tensor([[sil, sil, 0, 0, 0, 0, 0, 0, 0, sil, sil]])
    target = torch.tensor([[sil, sil, IGNORE, IGNORE, IGNORE, 0, 0, 0, 0, sil, sil]])

    def loss(frame, cls, value=6.0):
        logits = torch.zeros(1, 11, C)
        logits[0, :, sil] = 3.0
        if frame is not None:
            logits[0, frame, cls] = value
        return float(peak_loss(logits, target, region, rclass, kw, smooth=1))

    base = loss(None, 0)
    assert loss(6, 0) < base - 1.0  # own peak in the target window
    assert loss(3, 0) == pytest.approx(base)  # own peak while still speaking: no credit
    assert loss(6, 1) > base + 0.5  # another keyword inside the word
    assert loss(0, 1) > base + 0.5  # a keyword in a gap
    assert loss(0, CATS.index("_unknown_")) == pytest.approx(base, abs=0.2)  # not a keyword


def test_ema_decay_is_checked():
    with pytest.raises(TinyKWSError, match="ema_decay"):
        StreamTrainConfig(ema_decay=1.0)
    with pytest.raises(TinyKWSError, match="ema_decay"):
        StreamTrainConfig(ema_decay=-0.5)


def test_ema_stream_phase_saves_the_average_and_resumes_it_after_a_kill(toy_run, tmp_path, monkeypatch):
    """The saved model is the weight average, not the last step; a phase killed midway goes
    on with the average it had (its update count would restart from 0 otherwise)."""
    import shutil

    import tinykws.stream_training as st
    from tinykws.checkpoint import load_model

    src = toy_run[1]
    (tmp_path / "train").mkdir()
    shutil.copyfile(src / "train" / "clip.pt", tmp_path / "train" / "clip.pt")
    cfg = StreamTrainConfig(iterations=20, batch=4, chunk_frames=100, clip_batch=8, mine_every=10,
                            learning_rate=0.005, lr_min=0.001, workers=1, ema_decay=0.9)
    save = st._save_last

    def killed_after_first_save(run, model, opt, iteration, *a):
        save(run, model, opt, iteration, *a)
        raise KeyboardInterrupt

    monkeypatch.setattr(st, "_save_last", killed_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        train_stream(src / "features", tmp_path, cfg)
    monkeypatch.setattr(st, "_save_last", save)
    first = torch.load(tmp_path / "train" / "stream_last.pt", weights_only=True)
    assert first["iteration"] == 10 and int(first["ema"]["n_averaged"]) == 10
    train_stream(src / "features", tmp_path, cfg)
    last = torch.load(tmp_path / "train" / "stream_last.pt", weights_only=True)
    assert last["iteration"] == 20 and int(last["ema"]["n_averaged"]) == 20  # resumed, not restarted
    model, _ = load_model(tmp_path / "train" / "best.pt")
    saved = dict(model.named_parameters())
    average = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    assert saved.keys() <= average.keys()
    for k, p in saved.items():
        assert torch.equal(p.detach(), average[k]), k
    assert any(not torch.equal(saved[k].detach(), v) for k, v in last["state_dict"].items() if k in saved)


def test_weight_decay_is_checked():
    with pytest.raises(TinyKWSError, match="weight_decay"):
        StreamTrainConfig(weight_decay=-0.1)


def test_weight_decay_shrinks_the_stream_models_weights(toy_run, tmp_path):
    """`weight_decay` > 0 trains with AdamW at that decay; the same steps without it (Adam)
    leave the weights larger. Every other draw is the same in both runs."""
    import shutil

    from tinykws.checkpoint import load_model

    src = toy_run[1]
    norms = {}
    for wd in (0.0, 5.0):
        out = tmp_path / f"wd{wd}"
        (out / "train").mkdir(parents=True)
        shutil.copyfile(src / "train" / "clip.pt", out / "train" / "clip.pt")
        cfg = StreamTrainConfig(iterations=10, batch=4, chunk_frames=100, clip_batch=8, mine_every=10,
                                learning_rate=0.005, lr_min=0.001, workers=1, weight_decay=wd)
        train_stream(src / "features", out, cfg)
        last = torch.load(out / "train" / "stream_last.pt", weights_only=True)
        assert [g["weight_decay"] for g in last["optimizer"]["param_groups"]] == [wd]
        model, ck = load_model(out / "train" / "best.pt")
        assert ck.stream_config["weight_decay"] == wd
        norms[wd] = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
    # 10 steps at lr 0.001-0.005 and decay 5: each trained weight times about (1 - 0.02)^10
    # (the FastGRNN's nu is pinned by `bound_state`, not trained)
    trained = [n for n in norms[0.0] if not n.endswith(".nu")]
    assert trained and all(norms[5.0][n] < 0.9 * norms[0.0][n] for n in trained), norms
