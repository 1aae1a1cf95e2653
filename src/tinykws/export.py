"""`tinykws export RUN_DIR`: the trained model as standard ONNX (no custom operators).

Two graphs, both with the normalisation inside and softmax class scores out:

- `model.onnx`: input `features` [B, T, F] (a whole clip, T = 98) -> `scores` [B, C];
  the recurrence is unrolled over the T steps;
- `model_step.onnx`: inputs `frame` [B, F] and `state` [L, B, H] (LSTM also
  `cell_state` [L, B, H]) -> `scores` [B, C], `state_out` (and `cell_state_out`): one
  streaming frame, the state fed back by the caller (zeros to start). A model with frame
  stride s > 1 also takes and returns `pending` [s - 1, B, F] (the last frames) and
  `phase` [1, B, 1] (frames since its last step): `KWSModel.step`.

FastGRNN/FastRNN become MatMul/Add/Sigmoid/Tanh/Mul nodes; GRU/LSTM the standard ONNX
GRU/LSTM operators.  The seed exported a custom `FastGRNN` op only ELL could read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from tinykws.errors import TinyKWSError
from tinykws.models import KWSModel
from tinykws.models.classifier import StrideState
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
    """frame [B, F], state [L, B, H] (+ cell_state for LSTM; + pending, phase for a frame
    stride s > 1) -> scores, the new state tensors in the same order."""

    def __init__(self, model: KWSModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: Tensor, *state: Tensor):
        lstm = self.model.is_lstm
        rnn = (state[0], state[1]) if lstm else state[0]
        rest = state[2 if lstm else 1:]
        st = StrideState(rnn, *rest) if rest else rnn
        logits, new = self.model.step(frame, st)
        if rest:
            rnn, rest = new.rnn, (new.pending, new.phase)
        else:
            rnn = new
        return (torch.softmax(logits, dim=-1), *(rnn if lstm else (rnn,)), *rest)


def step_state_names(model: KWSModel) -> list[str]:
    """The state inputs of model_step.onnx, in order (each has an output named +"_out")."""
    names = ["state", "cell_state"] if model.is_lstm else ["state"]
    return names + (["pending", "phase"] if model.config.frame_stride > 1 else [])


def export_model(model: KWSModel, out_dir: Path | str, frames: int = 98) -> dict[str, Path]:
    """Write model.onnx and model_step.onnx for `model` into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    cfg = model.config
    L, H, F, S = cfg.num_layers, cfg.hidden_size, cfg.input_size, cfg.frame_stride
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
        state_names = step_state_names(model)
        shapes = {"state": (L, 1, H), "cell_state": (L, 1, H), "pending": (S - 1, 1, F), "phase": (1, 1, 1)}
        args = (torch.zeros(1, F),) + tuple(torch.zeros(shapes[n]) for n in state_names)
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
