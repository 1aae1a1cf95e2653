"""Garbage outputs of the stream phase (tinykws.stream_garbage, `KWSModel.head`)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from test_train_stream import CATS, LOG_PER_DB, toy_clips, toy_run  # noqa: F401 (a fixture)
from tinykws.errors import TinyKWSError
from tinykws.models import ModelConfig, build_model
from tinykws.stream_clips import ClipPool
from tinykws.stream_garbage import garbage_targets, keyword_scores, raw_masks, with_garbage
from tinykws.stream_training import StreamTrainConfig, train_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(garbage: int = 0, stride: int = 1):
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="gru", hidden_size=8, num_classes=4, frame_stride=stride,
                      garbage_classes=garbage, garbage_into=2 if garbage else -1)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.fc.bias.copy_(torch.randn(model.fc.bias.shape) * 2)  # outputs of their own
    return model


@pytest.mark.parametrize("stride", [1, 2])
def test_the_head_adds_the_garbage_probabilities_to_unknown(stride):
    model = _model(garbage=2, stride=stride)
    x = torch.randn(3, 10, 32)
    with torch.no_grad():
        p_raw = torch.softmax(model(x, raw=True), -1)  # [3, 6]
        p = torch.softmax(model(x), -1)  # [3, 4]
        seq, _ = model.forward_sequence(x)
        seq_raw, _ = model.forward_sequence(x, raw=True)
        state = model.init_stream_state(3)
        for t in range(10):
            step, state = model.step(x[:, t], state)
    assert p_raw.shape == (3, 6) and p.shape == (3, 4)
    want = torch.stack([p_raw[:, 0], p_raw[:, 1], p_raw[:, 2] + p_raw[:, 4] + p_raw[:, 5], p_raw[:, 3]], -1)
    torch.testing.assert_close(p, want)
    assert seq.shape == (3, 10, 4) and seq_raw.shape == (3, 10, 6)
    torch.testing.assert_close(torch.softmax(seq[:, -1], -1), p)
    torch.testing.assert_close(step, seq[:, -1])  # one frame at a time: the same outputs
    assert (p_raw[:, 4] > 0.01).all()  # the garbage outputs hold mass of their own here


def test_a_model_without_garbage_outputs_is_unchanged():
    model = _model()
    assert model.fc.out_features == 4
    x = torch.randn(2, 7, 32)
    with torch.no_grad():  # the plain linear layer: logits, not log-probabilities
        torch.testing.assert_close(model(x), model.fc(model._run(x, None)[2]))
        assert not torch.allclose(torch.logsumexp(model(x), -1), torch.zeros(2), atol=1e-3)


def test_pseudo_words_stay_unknown_when_negatives_take_garbage_outputs():
    """A pseudo-word is cut from a keyword clip; with garbage targets it must still be
    `_unknown_`, not the keyword it starts as."""
    from tinykws.stream_maker import StreamMaker

    x, y = toy_clips(10)
    pool = ClipPool.from_arrays(x, y, CATS, LOG_PER_DB)
    pool.targets = np.where(y == 2, 4, y)  # every other word "like yes"
    classes = {}
    for share in (0.0, 1.0):
        maker = StreamMaker(pool, StreamTrainConfig(batch=4, chunk_frames=1500, pseudo_share=share), np.random.default_rng(0))
        _, target, _, _, rclass = maker.next_chunk()
        classes[share] = set(rclass.unique().tolist()) | set(target.unique().tolist())
    assert 4 in classes[0.0] and 2 not in classes[0.0]  # negatives: their garbage output
    assert 2 in classes[1.0] and 4 not in classes[1.0]  # pseudo-words: `_unknown_`


def test_with_garbage_starts_as_the_model_it_extends():
    model = _model()
    g = with_garbage(model, CATS)  # keywords yes and no: two garbage outputs into _unknown_
    assert (g.config.garbage_classes, g.config.garbage_into) == (2, 2)
    assert g.fc.weight.shape == (6, 8)
    x = torch.randn(4, 12, 32)
    with torch.no_grad():
        torch.testing.assert_close(g(x), torch.log_softmax(model(x), -1))
        torch.testing.assert_close(g.fc.weight[4], model.fc.weight[2])


class _BandModel(torch.nn.Module):
    """A stand-in clip model: on the last frame, yes's logit is band 0, no's band 8, the
    others 0."""

    def forward(self, x):
        last = x[:, -1]
        z = torch.zeros_like(last[:, 0])
        return torch.stack([last[:, 0], last[:, 8], z, z], -1)


def test_garbage_targets_take_the_keyword_the_clip_model_hears():
    x, y = toy_clips(1)  # yes, no, _unknown_, _silence_
    x = np.concatenate([x, x[2:3], x[2:3], x[2:3]])  # three more other words
    y = np.concatenate([y, [2, 2, 2]])
    x[:, :, [0, 8]] = -10.0  # no keyword heard ...
    x[4, -1, 0] = 10.0  # ... but at the end of clip 4 yes, of clip 5 no
    x[5, -1, 8] = 10.0
    x[6, 50, 0] = 10.0  # (before the end: not the clip model's answer)
    x[0, -1, 0] = x[1, -1, 8] = 10.0
    pool = ClipPool.from_arrays(x, y.astype(np.int64), CATS, LOG_PER_DB)
    targets = garbage_targets(_BandModel(), pool, threshold=0.5)
    # keywords and silence keep their labels; other words: like yes (4), like no (5), or plain
    assert targets.tolist() == [0, 1, 2, 3, 4, 5, 2]
    assert garbage_targets(_BandModel(), pool, threshold=1.01).tolist() == y.tolist()
    scores = keyword_scores(_BandModel(), pool)  # scored once, thresholded again: the same
    assert garbage_targets(None, pool, 0.5, scores).tolist() == targets.tolist()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_garbage_threshold_is_checked(bad):
    with pytest.raises(TinyKWSError, match="garbage_threshold"):
        StreamTrainConfig(garbage_threshold=bad)


def test_a_task_without_unknown_has_no_garbage_outputs():
    model = _model()
    with pytest.raises(TinyKWSError, match="no _unknown_ class"):
        with_garbage(model, ["yes", "no", "up", "_silence_"])


def test_raw_masks_treat_garbage_outputs_as_unknown():
    kw, w = raw_masks(CATS, 2, torch.tensor([1.0, 1.0, 0.5, 1.0]))
    assert kw.tolist() == [True, True, False, False, False, False]
    assert w.tolist() == [1.0, 1.0, 0.5, 1.0, 0.5, 0.5]
    assert raw_masks(CATS, 0, None)[1] is None


def test_a_stream_phase_with_garbage_outputs_saves_a_model_of_the_usual_classes(toy_run, tmp_path):
    from tinykws.checkpoint import load_model
    from tinykws.codegen.model import emit_model
    from tinykws.quant.model import quantize_model

    src = toy_run[1]
    (tmp_path / "train").mkdir()
    shutil.copyfile(src / "train" / "clip.pt", tmp_path / "train" / "clip.pt")
    cfg = StreamTrainConfig(iterations=6, batch=4, chunk_frames=100, clip_batch=8, mine_every=3,
                            learning_rate=0.005, lr_min=0.001, workers=1, garbage_threshold=0.001)
    train_stream(src / "features", tmp_path, cfg)
    model, ck = load_model(tmp_path / "train" / "best.pt")
    assert (model.config.garbage_classes, model.config.garbage_into) == (2, CATS.index("_unknown_"))
    assert list(ck.categories) == CATS and ck.stream_config["garbage_threshold"] == 0.001
    x = torch.from_numpy(toy_clips(2, seed=5)[0])
    with torch.no_grad():
        assert model(x).shape == (8, 4) and model(x, raw=True).shape == (8, 6)
    # the garbage rows started as `_unknown_`'s and were trained apart from it
    assert model.fc.weight.shape == (6, 16)
    # (a garbage output no clip was trained towards stays `_unknown_`'s twin: same start, same
    # gradients)
    w = model.fc.weight
    assert not all(torch.allclose(w[k], w[2]) for k in (4, 5))
    # a checkpoint whose garbage outputs would fold into a keyword is refused
    from tinykws.checkpoint import load_checkpoint
    from tinykws.errors import CheckpointError

    d = torch.load(tmp_path / "train" / "best.pt", weights_only=False)
    d["model_config"] = {**d["model_config"], "garbage_into": 0}
    torch.save(d, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="fold into 'yes'"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(TinyKWSError, match="garbage outputs"):
        emit_model(model, CATS)
    with pytest.raises(TinyKWSError, match="garbage outputs"):
        quantize_model(model, CATS, [1.0, 1.0])


def test_onnx_export_of_a_garbage_model_gives_the_folded_scores(tmp_path):
    from tinykws.export import export_model, onnx_session

    model = _model(garbage=2, stride=2)
    paths = export_model(model, tmp_path, frames=20)
    x = np.random.default_rng(0).normal(size=(2, 20, 32)).astype(np.float32)
    sess = onnx_session(paths["model"])
    scores = sess.run(None, {"features": x})[0]
    with torch.no_grad():
        want = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    assert scores.shape == (2, 4)
    np.testing.assert_allclose(scores, want, atol=1e-5)
