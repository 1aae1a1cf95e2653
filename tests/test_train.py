"""Training: checkpoints, exact resume, best-model selection, the seed's schedule and
rolling plan (against literal re-implementations of the ELL formulas), augmentation,
normalisation, CLI, and DDP with two CPU processes."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eval_helpers import DEV, tinykws_command
from realdata import require_dev_set
from eval_helpers import FEATURE_CATS as CATS
from eval_helpers import make_features
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams
from tinykws.checkpoint import load_model
from tinykws.augment import augment_batch, warp_axis
from tinykws.schedule import RollingPlan, learning_rate_at
from tinykws.train import TrainConfig, normalization_stats, pipeline_recipe, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models (conftest.py)

TINY = TrainConfig(epochs=4, hidden_units=8, batch_size=16, optimizer="adam",
                   learning_rate=0.02, lr_min=0.001, seed=3)


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> Path:
    return make_features(tmp_path_factory.mktemp("feats"))


def _log(run: Path) -> list[dict]:
    with open(run / "train" / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_run_folder_and_learns(feats, tmp_path):
    res = train(feats, tmp_path, replace(TINY, epochs=6))
    t = tmp_path / "train"
    for name in ("config.json", "log.csv", "curves.png", "last.pt", "best.pt"):
        assert (t / name).is_file(), name
    rows = _log(tmp_path)
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    accs = [float(r["val_acc"]) for r in rows]
    assert res.best_val_acc == max(accs) and res.best_epoch == int(np.argmax(accs))
    assert res.best_val_acc > 0.8  # separable data: chance is 0.25
    model, ck = load_model(res.best_path)
    assert list(ck.categories) == CATS and ck.training.epoch == res.best_epoch
    assert ck.feature_params == FeatureParams(power_spec=True)
    assert ck.train_config.hidden_units == 8
    # normalisation is the training set's, stored in the model
    tr = np.load(feats / "training.npz")["features"]
    np.testing.assert_allclose(model.mean.numpy(), tr.mean(axis=(0, 1)), rtol=1e-4, atol=1e-4)
    assert res.test_acc is not None and res.test_acc > 0.8
    cfg = json.loads((t / "config.json").read_text())
    assert cfg["model_config"]["hidden_size"] == 8 and cfg["categories"] == CATS


def test_best_checkpoint_is_the_best_epoch_not_the_last(feats, tmp_path):
    # a constant, large SGD step: 100% validation accuracy after epoch 1, then the weights
    # keep moving (measured val_acc 0.675, 1, 1, 1, 1): best.pt must stay at the first epoch
    # that reached the best accuracy, while last.pt moves on.
    cfg = replace(TINY, epochs=5, optimizer="sgd", learning_rate=3.0, lr_min=3.0,
                  lr_scheduler="constant", momentum=0.0)
    res = train(feats, tmp_path, cfg)
    accs = [float(r["val_acc"]) for r in _log(tmp_path)]
    best, best_ck = load_model(res.best_path)
    last, last_ck = load_model(res.last_path)
    assert last_ck.training.epoch == 4
    assert res.best_epoch == int(np.argmax(accs)) == best_ck.training.epoch < 4, accs
    assert accs[res.best_epoch] > accs[0]  # it learned before the best epoch
    assert not torch.equal(best.fc.weight, last.fc.weight)
    # best.pt holds the weights that scored best_val_acc (re-scored here, independently)
    val = np.load(feats / "validation.npz")
    with torch.no_grad():
        pred = best(torch.from_numpy(val["features"])).argmax(1).numpy()
    assert float(np.mean(pred == val["labels"])) == pytest.approx(res.best_val_acc, abs=1e-6)


@pytest.mark.parametrize("extra", [
    dict(),
    dict(rolling=True, time_shift=3, gain_db=6.0, noise_prob=0.5, time_masks=1, freq_masks=1),
    dict(optimizer="sgd", learning_rate=0.05, w_sparsity=0.5, u_sparsity=0.5, epochs=6),
], ids=["plain", "rolling+augment", "sgd+sparse"])
def test_resume_after_kill_equals_uninterrupted_run(feats, tmp_path, extra):
    cfg = replace(TINY, **extra)
    full = train(feats, tmp_path / "a", cfg)
    train(feats, tmp_path / "b", cfg, max_epochs_this_run=2)  # "killed" after 2 epochs
    resumed = train(feats, tmp_path / "b", TrainConfig(epochs=1), resume=True)  # config from last.pt
    a, _ = load_model(full.last_path)
    b, ck = load_model(resumed.last_path)
    assert ck.training.epoch == cfg.epochs - 1
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    assert _log(tmp_path / "a") == [
        {**r, "seconds": x["seconds"]} for r, x in zip(_log(tmp_path / "b"), _log(tmp_path / "a"))
    ]
    assert resumed.best_val_acc == full.best_val_acc and resumed.best_epoch == full.best_epoch


def test_sparse_training_reaches_target_sparsity(feats, tmp_path):
    res = train(feats, tmp_path, replace(TINY, epochs=6, w_sparsity=0.25, u_sparsity=0.5))
    model, _ = load_model(res.last_path)
    for cell in model.cells:
        assert int((cell.W != 0).sum()) == math.ceil(0.25 * cell.W.numel())
        assert int((cell.U != 0).sum()) == math.ceil(0.5 * cell.U.numel())
    phases = [r["phase"] for r in _log(tmp_path)]
    assert phases[0] == "dense" and phases[-1] == "sparse"
    assert load_model(res.best_path)[1].training.epoch >= 4  # chosen only from sparse epochs


def test_resume_without_checkpoint_is_a_user_error(feats, tmp_path):
    with pytest.raises(TinyKWSError, match="nothing to resume"):
        train(feats, tmp_path, TINY, resume=True)
    with pytest.raises(TinyKWSError, match="feature file missing"):
        train(tmp_path / "nope", tmp_path, TINY)


def test_cosine_schedule_matches_torch_cosine_annealing_per_iteration():
    """The seed steps torch's CosineAnnealingLR every iteration with T_max = total/cycles."""
    for peaks in (0, 2):
        cfg = TrainConfig(learning_rate=0.005, lr_min=0.0005, lr_peaks=peaks)
        total = 300
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=cfg.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=total / (2 * peaks + 1), eta_min=cfg.lr_min)
        for it in range(total):
            assert learning_rate_at(it, total, cfg) == pytest.approx(opt.param_groups[0]["lr"],
                                                                     rel=1e-6), (peaks, it)
            opt.step()
            sched.step()
    cfg = TrainConfig()
    assert learning_rate_at(0, 100, cfg) == pytest.approx(0.005)
    assert learning_rate_at(100, 100, cfg) == pytest.approx(0.0005)


def _seed_total_iterations(num_rows, batch_size, num_epochs, max_rolling_length_opt):
    """ELL train_classifier.py's rolling iteration count, transcribed literally."""
    ticks = num_rows / batch_size
    rolling_length = 2
    max_rolling_length = int(ticks)
    if max_rolling_length > max_rolling_length_opt + rolling_length:
        max_rolling_length = max_rolling_length_opt + rolling_length
    if num_epochs + rolling_length < max_rolling_length:
        max_rolling_length = num_epochs + rolling_length
    total = sum(range(rolling_length, max_rolling_length))
    if num_epochs + rolling_length > max_rolling_length:
        total += (num_epochs + rolling_length - max_rolling_length) * num_rows / batch_size
    return total


def _seed_batches_per_epoch(num_rows, batch_size, num_epochs, max_opt):
    """Batches ELL's loop trains in each epoch (the `break` at (i+1) % rolling_length == 0)."""
    n_batches = num_rows // batch_size  # drop_last
    rl = 2
    mrl = min(int(num_rows / batch_size), max_opt + 2)
    mrl = min(mrl, num_epochs + 2)
    out = []
    for _ in range(num_epochs):
        rl += 1
        trained = 0
        for i in range(n_batches):
            if rl <= mrl and (i + 1) % rl == 0:
                break
            trained += 1
        out.append(trained)
    return out


@pytest.mark.parametrize("rows,bs,epochs,mrl", [
    (2176, 128, 250, 235), (84843, 128, 250, 235), (1000, 100, 5, 235), (6400, 128, 30, 10),
])
def test_rolling_plan_matches_the_seed(rows, bs, epochs, mrl):
    plan = RollingPlan(rows // bs, epochs, mrl)
    assert [plan.batches(e) for e in range(epochs)] == _seed_batches_per_epoch(rows, bs, epochs, mrl)
    if rows % bs == 0:  # the seed counts fractional batches in its schedule otherwise
        assert plan.total_iterations() == _seed_total_iterations(rows, bs, epochs, mrl)


def test_normalization_stats_are_the_seeds():
    x = np.random.default_rng(1).normal(size=(50, 10, 32)).astype(np.float32) * 3 + 1
    x[:, :, 5] = 2.0  # a constant band: std 0 -> 1
    mean, std = normalization_stats(torch.from_numpy(x))
    want_mean = x.mean(axis=0).mean(axis=0)
    want_std = x.std(axis=0).mean(axis=0)
    want_std[want_std == 0] = 1
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.numpy(), want_std, rtol=1e-5, atol=1e-5)


def test_augmentation_is_what_it_says():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = torch.randn(8, 20, 32)
    lpd = math.log(10) / 10
    gained = augment_batch(x, TrainConfig(gain_db=6.0), g(), None, lpd)
    shift = (gained - x).mean(dim=(1, 2))
    assert torch.allclose(gained - x, shift[:, None, None].expand_as(x), atol=1e-5)
    assert float(shift.abs().max()) <= 6.0 * lpd + 1e-6 and float(shift.std()) > 0
    noise = torch.randn(3, 20, 32)
    mixed = augment_batch(x, TrainConfig(noise_prob=1.0), g(), noise, lpd)
    assert torch.all(mixed >= x - 1e-6) and not torch.equal(mixed, x)
    shifted = augment_batch(x, TrainConfig(time_shift=4), g(), None, lpd)
    for b in range(8):  # every clip is a shifted copy of itself (up to the filled edge)
        ok = [torch.equal(shifted[b, max(0, s):20 + min(0, s)], x[b, max(0, -s):20 - max(0, s)])
              for s in range(-4, 5)]
        assert any(ok)
    assert any(not torch.equal(shifted[b], x[b]) for b in range(8))  # not a no-op
    masked = augment_batch(x, TrainConfig(time_masks=2, time_mask_width=5), g(), None, lpd)
    changed = (masked != x).any(dim=2)  # [B, T]
    assert 0 < int(changed.sum(dim=1).max()) <= 10
    mean = x.mean(dim=(1, 2))  # masked frames hold the clip's mean, all 32 bands
    for b, t in changed.nonzero().tolist():
        assert torch.allclose(masked[b, t], mean[b].expand(32))
    fmasked = augment_batch(x, TrainConfig(freq_masks=2, freq_mask_width=4), g(), None, lpd)
    changed = (fmasked != x).any(dim=1)  # [B, F]
    assert 0 < int(changed.sum(dim=1).max()) <= 8
    for b, f in changed.nonzero().tolist():
        assert torch.allclose(fmasked[b, :, f], mean[b].expand(20))
    same = augment_batch(x, TrainConfig(), g(), None, lpd)
    assert torch.equal(same, x)


def test_warp_axis_matches_numpy_interpolation():
    """Speaking-rate and vocal-tract warps: output index i reads input position i / factor,
    checked against numpy's np.interp; past the end the fill, factor 1 the identity."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(4, 30, 16)).astype(np.float32))
    factors = torch.tensor([0.85, 1.0, 1.1, 1.3])
    for axis, n in ((1, 30), (2, 16)):
        fill = x.min(dim=1, keepdim=True).values if axis == 1 else x[:, :, -1:]
        got = warp_axis(x, axis, factors, fill).numpy()
        assert np.array_equal(got[1], x[1].numpy())
        for b, f in enumerate(factors.tolist()):
            pos = np.arange(n) / np.float32(f)
            xb = x[b].numpy() if axis == 1 else x[b].numpy().T  # [n, other]
            gb = got[b] if axis == 1 else got[b].T
            fb = np.broadcast_to(fill[b].numpy() if axis == 1 else fill[b].numpy().T, xb.shape)
            for j in range(xb.shape[1]):
                want = np.where(pos <= n - 1, np.interp(pos, np.arange(n), xb[:, j]), fb[:, j])
                np.testing.assert_allclose(gb[:, j], want, rtol=1e-5, atol=1e-5)


def test_stretch_and_warp_in_augment_batch():
    x = torch.randn(64, 20, 32)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, TrainConfig(time_stretch=0.2, freq_warp=0.1), g, None, 0.23)
    assert out.shape == x.shape and torch.isfinite(out).all()
    changed = (out != x).flatten(1).any(dim=1)
    assert int(changed.sum()) == 64  # every clip warped (a factor of exactly 1 is improbable)
    # a warp only interpolates between neighbours: values stay within each clip's range
    assert torch.all(out <= x.amax(dim=(1, 2), keepdim=True) + 1e-5)
    assert torch.all(out >= x.amin(dim=(1, 2), keepdim=True) - 1e-5)
    with pytest.raises(TinyKWSError, match="time_stretch"):
        TrainConfig(time_stretch=0.6)
    with pytest.raises(TinyKWSError, match="freq_warp"):
        TrainConfig(freq_warp=float("nan"))


def test_pipeline_recipe_sizes():
    quick = pipeline_recipe(2000, quick=True)
    assert quick.epochs <= 5 and quick.hidden_units <= 32
    r = pipeline_recipe(2176)
    assert r.augments and r.normalize and 20 <= r.epochs <= 80
    assert pipeline_recipe(80000).epochs < r.epochs


def test_pipeline_presets():
    """--preset full is the recipe unchanged (a GRU; on recorded speech the FastGRNN); tiny
    changes only the model and trains twice the epochs (a small model underfits in the full
    one's); unknown refused."""
    from tinykws.errors import TinyKWSError

    full, tiny = pipeline_recipe(2176, preset="full"), pipeline_recipe(2176, preset="tiny")
    assert full == pipeline_recipe(2176) and full.architecture == "gru" and full.hidden_units == 72
    assert tiny.architecture == "fastgrnn" and tiny.urank and tiny.epochs == 2 * full.epochs
    assert full.frame_stride == 2 and tiny.frame_stride == 1  # stride 2 measured on the full model only
    assert replace(tiny, architecture="gru", hidden_units=72, wrank=None, urank=None, epochs=full.epochs,
                   frame_stride=2) == full
    quick_tiny = pipeline_recipe(2000, quick=True, preset="tiny")
    assert quick_tiny.urank is not None and quick_tiny.architecture == "fastgrnn"
    assert pipeline_recipe(2000, quick=True).architecture == "gru"  # the smoke run trains the default's cell
    # recorded speech (`pipeline --data`): the full preset keeps the 2 x 128 FastGRNN, tiny is unchanged
    rec = pipeline_recipe(2176, recorded=True)
    assert (rec.architecture, rec.hidden_units) == ("fastgrnn", 128)
    assert replace(rec, architecture="gru", hidden_units=72) == full
    assert pipeline_recipe(2176, preset="tiny", recorded=True) == tiny
    assert pipeline_recipe(2000, quick=True, recorded=True).architecture == "fastgrnn"
    with pytest.raises(TinyKWSError, match="unknown preset"):
        pipeline_recipe(2176, preset="huge")


def test_cli_train_and_errors(feats, tmp_path):
    from tinykws.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--features", str(feats), "--out", str(out), "--epochs", "2",
                            "-hu", "8", "-bs", "16", "--optimizer", "adam"])
    assert r.exit_code == 0, r.output
    assert (out / "train" / "best.pt").is_file()
    r = runner.invoke(app, ["train", "--features", str(feats), "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output  # finished run: resume is a no-op
    r = runner.invoke(app, ["train", "--out", str(out)])
    assert r.exit_code != 0 and "exactly one of" in str(r.exception)


def test_cli_error_is_one_line(tmp_path):
    r = tinykws_command("train", "--features", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "feature file missing" in r.stderr
    assert "Traceback" not in r.stderr


def test_ddp_two_cpu_processes(feats, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", "-m", "tinykws", "train", "--features", str(feats),
         "--out", str(out), "--epochs", "3", "-hu", "8", "-bs", "16", "--optimizer", "adam",
         "--learning-rate", "0.02", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _log(out)
    assert [int(x["epoch"]) for x in rows] == [0, 1, 2]  # one log, written by rank 0
    cfg = json.loads((out / "train" / "config.json").read_text())
    assert cfg["world_size"] == 2
    # each process took half of every epoch: 96 clips / 2 ranks / 8 per rank = 6 steps
    assert int(rows[0]["iterations"]) == 6
    _, ck = load_model(out / "train" / "last.pt")
    assert ck.training.epoch == 2 and float(rows[-1]["val_acc"]) > 0.5


def test_cli_train_from_data_makes_lists_and_features(tmp_path):
    """`--data`: lists and features with the default settings, then training."""
    from tinykws.cli import app

    require_dev_set()  # 9 clips a word
    mini = tmp_path / "mini"
    val, test = [], []
    for word in ("yes", "no", "up"):
        (mini / word).mkdir(parents=True)
        for i, wav in enumerate(sorted((DEV / word).glob("*.wav"))[:9]):
            shutil.copy(wav, mini / word / wav.name)  # links leading outside are skipped
            (val if i % 3 == 1 else test if i % 3 == 2 else []).append(f"{word}/{wav.name}")
    (mini / "_background_noise_").mkdir()
    noise = DEV / "_background_noise_" / "white_noise.wav"
    shutil.copy(noise, mini / "_background_noise_" / noise.name)
    (mini / "validation_list.txt").write_text("\n".join(val) + "\n")
    (mini / "testing_list.txt").write_text("\n".join(test) + "\n")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(mini), "--task", "yes,no", "--out",
                                 str(out), "--epochs", "1", "-hu", "8", "-bs", "4"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "running `tinykws data lists" in r.output  # said, not done behind the user's back
    assert (out / "lists" / "categories.txt").is_file()
    assert (out / "features" / "training.npz").is_file()
    _, ck = load_model(out / "train" / "last.pt")
    assert set(ck.categories) >= {"yes", "no"}
    assert ck.feature_params.n_mels == 32


def test_kill_while_saving_loses_no_epoch(feats, tmp_path, monkeypatch):
    """A Ctrl-C that lands between writing the log and last.pt: resume redoes that epoch,
    the log has every epoch once, and the weights equal an uninterrupted run's."""
    import tinykws.train as tr

    cfg = replace(TINY, epochs=5)
    full = train(feats, tmp_path / "a", cfg)
    real_save, calls = tr.atomic_torch_save, []

    def save_then_die(obj, path):
        calls.append(Path(path).name)
        if Path(path).name == "last.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt  # the log already has epoch 2; last.pt still says 1
        real_save(obj, path)

    monkeypatch.setattr(tr, "atomic_torch_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(feats, tmp_path / "b", cfg)
    monkeypatch.setattr(tr, "atomic_torch_save", real_save)
    assert [int(r["epoch"]) for r in _log(tmp_path / "b")] == [0, 1, 2]
    resumed = train(feats, tmp_path / "b", cfg, resume=True)
    assert [int(r["epoch"]) for r in _log(tmp_path / "b")] == list(range(5))
    a, _ = load_model(full.last_path)
    b, _ = load_model(resumed.last_path)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize("field,value", [
    ("learning_rate", float("nan")), ("learning_rate", float("inf")), ("lr_min", float("nan")),
    ("weight_decay", float("nan")), ("weight_decay", -1.0), ("label_smoothing", 2.0),
    ("label_smoothing", float("nan")), ("gain_db", float("inf")), ("momentum", 1.5),
    ("unknown_weight", 0.0), ("unknown_weight", float("nan")),
])
def test_non_finite_or_out_of_range_numbers_refused(field, value):
    with pytest.raises(TinyKWSError, match=field.replace("_", ".")):
        replace(TINY, **{field: value})


@pytest.mark.parametrize("args", [["-lr", "nan"], ["-lr", "inf"], ["--lr-min", "nan"],
                                  ["--weight-decay", "nan"], ["--label-smoothing", "2"]],
                         ids=" ".join)
def test_cli_bad_numbers_one_line(feats, tmp_path, capsys, args):
    from tinykws.cli import run

    assert run(["train", "--features", str(feats), "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "train" / "best.pt").exists()


def test_divergence_stops_and_keeps_last_good_checkpoint(feats, tmp_path, monkeypatch):
    """A rate that blows up in epoch 3 stops training with a clear error; last.pt and
    best.pt keep finite weights from epoch 2."""
    import tinykws.train as tr

    good = tr.learning_rate_at
    per_epoch = 96 // TINY.batch_size
    monkeypatch.setattr(tr, "learning_rate_at", lambda it, total, cfg:
                        good(it, total, cfg) if it < 2 * per_epoch else 1e30)
    cfg = replace(TINY, optimizer="sgd", momentum=0.0)
    with pytest.raises(TinyKWSError, match=r"diverged in epoch 3 .*last.pt keeps epoch 2"):
        train(feats, tmp_path, cfg)
    for name in ("last.pt", "best.pt"):
        model, ck = load_model(tmp_path / "train" / name)
        assert ck.training.epoch <= 1
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [int(r["epoch"]) for r in _log(tmp_path)] == [0, 1]


def test_cli_train_options_are_trainconfig_fields(tmp_path, monkeypatch):
    """`tinykws train`'s options are TrainConfig's fields with TrainConfig's defaults
    (written once): no option gives TrainConfig(), each option lands in its field."""
    from dataclasses import fields

    import tinykws.train as tr
    from tinykws.cli import TRAIN_OPTIONS, app

    assert set(TRAIN_OPTIONS) == {f.name for f in fields(TrainConfig)}
    seen = []

    class Stop(Exception):
        pass

    def fake_train(features, out, config, resume=False, init=None, teacher=None):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(tr, "train", fake_train)
    base = ["train", "--features", str(tmp_path), "--out", str(tmp_path / "o")]
    assert isinstance(CliRunner().invoke(app, base).exception, Stop)
    assert seen[-1] == TrainConfig()
    opts = ["-lr", "0.1", "-hu", "8", "--no-normalize", "--noise-db", "-10", "-5", "--wrank", "4",
            "--momentum", "0.5", "--rolling", "--optimizer", "adam"]
    assert isinstance(CliRunner().invoke(app, base + opts).exception, Stop)
    assert seen[-1] == replace(TrainConfig(), learning_rate=0.1, hidden_units=8, normalize=False,
                               noise_db=(-10.0, -5.0), wrank=4, momentum=0.5, rolling=True,
                               optimizer="adam")


def test_unknown_weight_is_in_the_training_loss(feats, tmp_path):
    from tinykws.train import class_weights

    cats = ["yes", "no", "_unknown_", "_silence_"]
    assert class_weights(replace(TINY, unknown_weight=1.0), cats) is None
    assert class_weights(replace(TINY, unknown_weight=3.0), ["yes", "no"]) is None  # no such class
    assert class_weights(replace(TINY, unknown_weight=2.5), cats).tolist() == [1.0, 1.0, 2.5, 1.0]
    # same seed, same data: only the weight differs, so the trained weights must differ
    a = train(feats, tmp_path / "a", replace(TINY, epochs=1))
    b = train(feats, tmp_path / "b", replace(TINY, epochs=1, unknown_weight=4.0))
    ma, _ = load_model(a.last_path)
    mb, ck = load_model(b.last_path)
    assert ck.train_config.unknown_weight == 4.0
    assert any(not torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


# ------------------------------------------------------------------ starting from a checkpoint


def test_init_starts_from_the_checkpoint_weights_with_its_own_normalization(feats, tmp_path):
    """`init`: every weight comes from the checkpoint, the input normalisation from the
    new training set (a pretrained model's mean/std belong to its own data)."""
    from tinykws.run import RunDir
    from tinykws.train import _set_up

    pre = train(feats, tmp_path / "pre", TINY)
    other = make_features(tmp_path / "other", seed=5)  # same classes, other clips and levels
    s = _set_up(other, RunDir(tmp_path / "ft"), TINY, None, pre.best_path)
    _, ck = load_model(pre.best_path)
    got = s.model.state_dict()
    for k, v in ck.state_dict.items():
        if k in ("mean", "std"):
            x = torch.from_numpy(np.load(other / "training.npz")["features"])
            want = normalization_stats(x)[0 if k == "mean" else 1]
            assert torch.allclose(got[k], want) and not torch.allclose(got[k], v), k
        else:
            assert torch.equal(got[k], v), k
    fresh = _set_up(other, RunDir(tmp_path / "fresh"), TINY, None).model.state_dict()
    assert not torch.equal(fresh["fc.weight"], ck.state_dict["fc.weight"])  # not by chance

    res = train(other, tmp_path / "ft", TINY, init=pre.best_path)
    cfg = json.loads((res.train_dir / "config.json").read_text())
    from tinykws.run import file_sha256
    assert cfg["init"] == {"path": str(pre.best_path), "sha256": file_sha256(pre.best_path)}
    assert json.loads((tmp_path / "pre" / "train" / "config.json").read_text())["init"] is None


def test_init_refuses_a_checkpoint_that_does_not_fit(feats, tmp_path):
    pre = train(feats, tmp_path / "pre", TINY)
    with pytest.raises(TinyKWSError, match="cannot start from .*model"):
        train(feats, tmp_path / "wide", replace(TINY, hidden_units=16), init=pre.best_path)
    d = torch.load(pre.best_path, weights_only=True)
    d["categories"] = list(reversed(d["categories"]))  # same count, another order
    torch.save(d, tmp_path / "reordered.pt")
    with pytest.raises(TinyKWSError, match="cannot start from .*classes"):
        train(feats, tmp_path / "re", TINY, init=tmp_path / "reordered.pt")
    with pytest.raises(TinyKWSError, match="not found"):
        train(feats, tmp_path / "none", TINY, init=tmp_path / "nope.pt")


# ------------------------------------------------------------------ knowledge distillation


def test_distill_loss_is_zero_only_when_the_student_matches_the_teacher():
    from tinykws.train import distill_loss

    t = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    assert float(distill_loss(t.clone(), t, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(t + torch.tensor([0.0, 1.0, 0.0]), t, 2.0)) > 1e-3
    # T^2 scaling: the gradient keeps its size as T grows (Hinton et al.)
    s = (t + torch.tensor([1.0, 0.0, 0.0])).requires_grad_()
    g = [torch.autograd.grad(distill_loss(s, t, T), s)[0].norm().item() for T in (4.0, 8.0)]
    assert g[1] == pytest.approx(g[0], rel=0.1)


def test_distillation_alone_ignores_the_labels(feats, tmp_path):
    """distill_weight 1: the loss is the teacher's only, so shuffled labels train the
    same weights; at 0.5 the labels count again. config.json records the teacher."""
    from tinykws.run import file_sha256

    teacher = train(feats, tmp_path / "t", TINY).best_path
    shuffled = tmp_path / "shuffled"
    shutil.copytree(feats, shuffled)
    d = dict(np.load(feats / "training.npz"))
    d["labels"] = np.roll(d["labels"], 1)
    np.savez(shuffled / "training.npz", **d)
    cfg = replace(TINY, epochs=2, hidden_units=6, distill_weight=1.0)
    weights = []
    for name, f, c in (("a", feats, cfg), ("b", shuffled, cfg), ("c", shuffled, replace(cfg, distill_weight=0.5))):
        r = train(f, tmp_path / name, c, teacher=teacher)
        weights.append(load_model(r.last_path)[0].state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[1][k], weights[2][k]) for k in weights[1])
    cj = json.loads((tmp_path / "a" / "train" / "config.json").read_text())
    assert cj["teacher"] == {"path": str(teacher), "sha256": file_sha256(teacher)}


def test_distillation_needs_a_fitting_teacher(feats, tmp_path):
    teacher = train(feats, tmp_path / "t", replace(TINY, epochs=1)).best_path
    cfg = replace(TINY, epochs=1, distill_weight=0.5)
    with pytest.raises(TinyKWSError, match="needs a teacher"):
        train(feats, tmp_path / "a", cfg)
    with pytest.raises(TinyKWSError, match="needs --distill-weight"):
        train(feats, tmp_path / "b", TINY, teacher=teacher)
    with pytest.raises(TinyKWSError, match="does not exist"):
        train(feats, tmp_path / "c", cfg, teacher=tmp_path / "nope.pt")
    d = torch.load(teacher, weights_only=True)
    d["categories"] = list(reversed(d["categories"]))
    torch.save(d, tmp_path / "reordered.pt")
    with pytest.raises(TinyKWSError, match="other classes"):
        train(feats, tmp_path / "d", cfg, teacher=tmp_path / "reordered.pt")
    with pytest.raises(TinyKWSError, match="distill.weight"):
        replace(TINY, distill_weight=1.5)


def test_cli_train_init(feats, tmp_path):
    pre = train(feats, tmp_path / "pre", TINY)
    r = tinykws_command("train", "--features", str(feats), "--out", str(tmp_path / "ft"),
                        "--epochs", "1", "-hu", "8", "-bs", "16", "--init", str(pre.best_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "ft" / "train" / "config.json").read_text())["init"]["sha256"]
    r = tinykws_command("train", "--features", str(feats), "--out", str(tmp_path / "bad"),
                        "--epochs", "1", "-hu", "8", "--init", str(tmp_path / "nope.pt"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
