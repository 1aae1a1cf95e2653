"""`tinykws export RUN_DIR`: the trained model as standard ONNX (no custom operators).

Two graphs, both with the normalisation inside and softmax class scores out:

- `model.onnx`: input `features` [B, T, F] (a whole clip, T = 98) -> `scores` [B, C];
  the recurrence is unrolled over the T steps;
- `model_step.onnx`: inputs `frame` [B, F] and `state` [L, B, H] (LSTM also
  `cell_state` [L, B, H]) -> `scores` [B, C], `state_out` (and `cell_state_out`): one
  streaming step, the state fed back by the caller (zeros to start).

FastGRNN/FastRNN become MatMul/Add/Sigmoid/Tanh/Mul nodes; GRU/LSTM the standard ONNX
GRU/LSTM operators.  The seed exported a custom `FastGRNN` op only ELL could read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from tinykws.config import require_frame_stride_one
from tinykws.errors import TinyKWSError
from tinykws.models import KWSModel
from tinykws.checkpoint import load_model
from tinykws.run import RunDir

OPSET = 17
STANDARD_DOMAINS = ("", "ai.onnx")


class ClipScores(nn.Module):
    """features [B, T, F] -> softmax scores [B, C]."""

    def __init__(self, model: KWSModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor) -> Tensor:
        return torch.softmax(self.model(features), dim=-1)


class StepScores(nn.Module):
    """frame [B, F], state [L, B, H] (+ cell_state for LSTM) -> scores, new state(s)."""

    def __init__(self, model: KWSModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: Tensor, state: Tensor, cell_state: Tensor | None = None):
        st = (state, cell_state) if self.model.is_lstm else state
        logits, new = self.model.step(frame, st)
        scores = torch.softmax(logits, dim=-1)
        if self.model.is_lstm:
            return scores, new[0], new[1]
        return scores, new


def export_model(model: KWSModel, out_dir: Path | str, frames: int = 98) -> dict[str, Path]:
    """Write model.onnx and model_step.onnx for `model` into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    cfg = model.config
    require_frame_stride_one(model.config, "ONNX export")
    L, H, F = cfg.num_layers, cfg.hidden_size, cfg.input_size
    clip_path, step_path = out_dir / "model.onnx", out_dir / "model_step.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        # GRU/LSTM: torch warns about batch sizes unless h0 is an input; ours is (zeros
        # shaped from the input's batch), and the tests run other batch sizes.
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # the TorchScript exporter is chosen on purpose: the dynamo one needs onnxscript
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            ClipScores(model), (torch.zeros(1, frames, F),), str(clip_path),
            input_names=["features"], output_names=["scores"],
            dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
        state_names = ["state", "cell_state"] if model.is_lstm else ["state"]
        args = (torch.zeros(1, F),) + tuple(torch.zeros(L, 1, H) for _ in state_names)
        outs = ["scores"] + [n + "_out" for n in state_names]
        dyn = {"frame": {0: "batch"}, "scores": {0: "batch"}}
        dyn.update({n: {1: "batch"} for n in state_names + [n + "_out" for n in state_names]})
        torch.onnx.export(
            StepScores(model), args, str(step_path),
            input_names=["frame"] + state_names, output_names=outs, dynamic_axes=dyn,
            opset_version=OPSET, dynamo=False,
        )
    for p in (clip_path, step_path):
        check_standard_onnx(p)
    return {"model": clip_path, "model_step": step_path}


def onnx_session(path: Path | str, threads: int | None = None):
    """An onnxruntime session on an exported graph (CPU): a damaged file is a one-line
    error naming it, not onnxruntime's traceback."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise TinyKWSError("running ONNX needs onnxruntime: pip install 'tinykws[export]'") from None
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, NoSuchFile, ...
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise TinyKWSError(f"{path} is damaged or not an ONNX model ({first}); "
                           "rerun `tinykws export RUN_DIR`") from None


def check_standard_onnx(path: Path) -> None:
    """onnx.checker passes and every node is in the default ONNX domain."""
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    bad = sorted({n.domain + "::" + n.op_type for n in m.graph.node
                  if n.domain not in STANDARD_DOMAINS})
    if bad:
        raise TinyKWSError(f"{path} uses non-standard operators: {', '.join(bad)}")


def export_run(run_dir: Path | str) -> dict[str, Path]:
    """Export the run's checkpoint (`RunDir.checkpoint()`) to RUN_DIR/export/."""
    run = RunDir(run_dir)
    model, ck = load_model(run.checkpoint())
    return export_model(model, run.export, frames=ck.feature_params.n_frames)
