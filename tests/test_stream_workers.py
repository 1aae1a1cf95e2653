"""The stream phase on several processes (tinykws.stream_workers): gradients averaged,
scores gathered, copies checked equal; a 2-worker stream phase runs, repeats itself and
keeps its workers' models identical."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from tinykws.errors import TinyKWSError
from tinykws.stream_training import StreamTrainConfig, train_stream
from tinykws.stream_workers import check_workers, rank_seeds, share, split_count, workers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _exchange(rank: int, world: int, store: str, out: torch.Tensor, perturb: bool) -> None:
    """A child's side of `test_group_*`: the same calls as worker 0, its own numbers."""
    from tinykws.stream_workers import join

    _calls(join(rank, world, store), out, perturb)


def _calls(group, out: torch.Tensor, perturb: bool) -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0]) * (group.rank + 1)
    losses = group.average_grads([p], [float(group.rank), 10.0])
    scores = group.gather(5, np.arange(5, dtype=float)[group.rank::group.world] * 10)
    out[group.rank, :3] = p.grad
    out[group.rank, 3:5] = torch.tensor(losses)
    out[group.rank, 5:10] = torch.from_numpy(scores)
    q = torch.nn.Parameter(torch.full((4,), 0.1))
    if perturb and group.rank == 1:
        with torch.no_grad():
            q[2] += 1e-7  # one copy one ulp or so away
    try:
        group.check_same([q])
        out[group.rank, 10] = 1.0
    except TinyKWSError:
        out[group.rank, 10] = -1.0


@pytest.mark.parametrize("perturb", [False, True])
def test_group_averages_gradients_gathers_scores_and_catches_copies_that_differ(perturb):
    out = share(np.zeros((2, 11), np.float32))
    with workers(2, _exchange, (out, perturb)) as group:
        _calls(group, out, perturb)
    got = out.numpy()
    for r in range(2):
        np.testing.assert_allclose(got[r, :3], [1.5, 3.0, 4.5])  # the mean of x1 and x2
        np.testing.assert_allclose(got[r, 3:5], [0.5, 10.0])
        np.testing.assert_allclose(got[r, 5:10], [0, 10, 20, 30, 40])  # each computed half
    assert list(got[:, 10]) == ([-1.0, -1.0] if perturb else [1.0, 1.0])


def test_one_worker_is_the_single_process_run():
    rng, gen = rank_seeds(7, 0)
    assert rng.random() == np.random.default_rng(7).random()
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(7)))
    r1, _ = rank_seeds(7, 1)
    assert r1.random() != np.random.default_rng(7).random()  # worker 1 draws other streams


@pytest.mark.parametrize("bad", [0, -1, 65, 2.0, True, "2"])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(TinyKWSError, match="stream workers"):
        check_workers(bad)
    with pytest.raises(TinyKWSError, match="stream workers"):
        StreamTrainConfig(workers=bad)


def test_work_that_does_not_divide_is_refused():
    assert split_count(16, 4, "x") == 4
    with pytest.raises(TinyKWSError, match="3 stream workers cannot share a step's streams"):
        split_count(16, 3, "a step's streams")


def _toy_features(tmp_path):
    from test_train_stream import CATS, toy_clips

    from tinykws.features import FeatureParams
    from tinykws.train import TrainConfig, train

    fdir = tmp_path / "features"
    fdir.mkdir()
    for split, n, seed in (("training", 30, 0), ("validation", 8, 1)):
        x, y = toy_clips(n, seed)
        np.savez(fdir / f"{split}.npz", features=x, labels=y, categories=np.array(CATS),
                 feature_params=FeatureParams().to_json(), paths=np.array([f"{split}/{i}" for i in range(len(y))]))
    train(fdir, tmp_path, TrainConfig(epochs=2, hidden_units=16, batch_size=32, optimizer="adam",
                                      learning_rate=0.01, threads=1))
    return fdir


def _stream_hash(fdir, run, cfg) -> str:
    import shutil

    run.mkdir(parents=True, exist_ok=True)
    (run / "train").mkdir(exist_ok=True)
    shutil.copyfile(fdir.parent / "train" / "best.pt", run / "train" / "best.pt")
    path = train_stream(fdir, run, cfg)
    sd = torch.load(path, weights_only=True)["state_dict"]
    return hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(sd.items()))).hexdigest()


def test_two_workers_train_repeat_themselves_and_differ_from_one(tmp_path):
    """Two workers: the run finishes (its copies checked equal at every mining round and at
    the end), logs every step, records its worker count, and gives the same model twice."""
    import json

    fdir = _toy_features(tmp_path)
    cfg = StreamTrainConfig(iterations=12, batch=4, chunk_frames=60, clip_batch=8, mine_every=6,
                            mine_clips=20, workers=2)
    a = _stream_hash(fdir, tmp_path / "a", cfg)
    assert a == _stream_hash(fdir, tmp_path / "b", cfg)
    one = _stream_hash(fdir, tmp_path / "c", StreamTrainConfig(**{**cfg.to_dict(), "workers": 1}))
    assert one != a
    log = (tmp_path / "a" / "train" / "stream_log.csv").read_text().splitlines()
    assert len(log) == 13 and all(math.isfinite(float(r.split(",")[1])) for r in log[1:])
    ck = torch.load(tmp_path / "a" / "train" / "best.pt", weights_only=True)
    assert json.loads(json.dumps(ck["stream_config"]))["workers"] == 2
    with pytest.raises(TinyKWSError, match="cannot share a step's clips"):
        _stream_hash(fdir, tmp_path / "d", StreamTrainConfig(**{**cfg.to_dict(), "clip_batch": 6, "workers": 4}))


def _dies(rank: int, world: int, store: str) -> None:
    from tinykws.stream_workers import join

    join(rank, world, store)
    raise SystemExit(3)  # a worker that stops (killed, out of memory, a bug) without a word


def test_a_worker_that_dies_is_a_clear_error_not_a_hang():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    with pytest.raises(TinyKWSError, match="another worker stopped|stream workers failed"):
        with workers(2, _dies, ()) as group:
            for _ in range(3):
                group.average_grads([p], [0.0])


def test_a_torch_without_gloo_builds_configs_and_refuses_workers_only_when_they_start(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_gloo_available", lambda: False)
    assert StreamTrainConfig().workers == 2  # importing and configuring still work
    with pytest.raises(TinyKWSError, match="no gloo backend: use one stream worker"):
        with workers(2, _dies, ()):
            pass
    with workers(1, _dies, ()) as group:  # one worker needs no backend
        assert group.world == 1


def test_a_worker_that_dies_while_the_group_forms_is_a_clear_error(tmp_path, monkeypatch):
    """A peer that exits while gloo connects its mesh (CI saw it once: the dying worker of
    the test above left before worker 0 had connected) is the same one-line error."""
    import torch.distributed as dist

    from tinykws.stream_workers import join

    def refused(*args):
        raise RuntimeError("Gloo connectFullMesh failed with [...] Connection closed by peer")

    monkeypatch.setattr(dist, "ProcessGroupGloo", refused)
    with pytest.raises(TinyKWSError, match="another worker stopped"):
        join(0, 2, str(tmp_path / "store"))
