"""Export: both ONNX graphs pass the checker, use only standard operators, and match
PyTorch in onnxruntime (clip graph and a 98-step streaming loop) to 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from tinykws.errors import TinyKWSError
from tinykws.export import OPSET, export_model, export_run
from tinykws.models import ModelConfig, build_model



pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models (conftest.py)


def _trained_like(cfg: ModelConfig) -> torch.nn.Module:
    """A model with non-default weights and normalisation (as after training)."""
    torch.manual_seed(1)
    m = build_model(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    m.set_normalization(torch.randn(cfg.input_size) - 5, torch.rand(cfg.input_size) + 0.5)
    return m.eval()


def _check_graph(path: Path) -> onnx.ModelProto:
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert {n.domain for n in m.graph.node} <= {"", "ai.onnx"}
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    return m


@pytest.mark.parametrize("cfg", [
    ModelConfig("fastgrnn", hidden_size=16, num_layers=2, num_classes=6),
    ModelConfig("fastgrnn", hidden_size=16, num_layers=3, num_classes=6, wrank=5, urank=4),
    ModelConfig("fastrnn", hidden_size=16, num_layers=1, num_classes=6, wrank=5),
    ModelConfig("fastrnn", hidden_size=16, num_layers=1, num_classes=6),
    ModelConfig("gru", hidden_size=16, num_layers=2, num_classes=6),
    ModelConfig("lstm", hidden_size=16, num_layers=2, num_classes=6),
    ModelConfig("fastgrnn", hidden_size=16, num_layers=2, num_classes=6, frame_stride=2),
    ModelConfig("lstm", hidden_size=16, num_layers=1, num_classes=6, frame_stride=3),
], ids=["fastgrnn", "fastgrnn-lowrank-3layers", "fastrnn-lowrank", "fastrnn", "gru", "lstm",
        "fastgrnn-stride2", "lstm-stride3"])
def test_onnx_matches_pytorch(cfg, tmp_path):
    model = _trained_like(cfg)
    paths = export_model(model, tmp_path)
    clip, step = _check_graph(paths["model"]), _check_graph(paths["model_step"])
    assert [i.name for i in clip.graph.input] == ["features"]
    assert [o.name for o in clip.graph.output] == ["scores"]
    states = ["state", "cell_state"] if cfg.architecture == "lstm" else ["state"]
    states += ["pending", "phase"] if cfg.frame_stride > 1 else []
    assert [i.name for i in step.graph.input] == ["frame"] + states
    assert [o.name for o in step.graph.output] == ["scores"] + [s + "_out" for s in states]
    shapes = {"pending": (cfg.frame_stride - 1, 3, 32), "phase": (1, 3, 1)}

    x = torch.randn(3, 98, 32) * 2 - 5  # batch 3, exported with batch 1
    with torch.no_grad():
        want = torch.softmax(model(x), -1).numpy()
    got = ort.InferenceSession(str(paths["model"])).run(None, {"features": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)

    sess = ort.InferenceSession(str(paths["model_step"]))
    state = [np.zeros(shapes.get(s, (cfg.num_layers, 3, cfg.hidden_size)), np.float32) for s in states]
    with torch.no_grad():
        per_step = torch.softmax(model.forward_sequence(x)[0], -1).numpy()
    for t in range(98):
        out = sess.run(None, dict(zip(["frame"] + states, [x[:, t].numpy()] + state)))
        state = out[1:]
        np.testing.assert_allclose(out[0], per_step[:, t], atol=1e-4, rtol=0)
    np.testing.assert_allclose(out[0], want, atol=1e-4, rtol=0)  # the clip: where the stream is


def test_export_run_and_cli(tmp_path):
    from tinykws.cli import app
    from tinykws.train import TrainConfig, train
    from eval_helpers import make_features

    feats = make_features(tmp_path / "f", T=98)
    train(feats, tmp_path / "run", TrainConfig(epochs=1, hidden_units=8, batch_size=32))
    r = CliRunner().invoke(app, ["export", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "export" / "model.onnx").is_file()
    assert (tmp_path / "run" / "export" / "model_step.onnx").is_file()
    with pytest.raises(TinyKWSError, match="run `tinykws train` first"):
        export_run(tmp_path / "empty")
