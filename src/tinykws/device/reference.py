"""What the device is checked against: the Python features and the model's scores after
every frame, from the run's PyTorch checkpoint, its exported ONNX step model, or (int8
builds) the integer featurizer and model of `tinykws.quant` (`IntStreamReference`: the
same over a long recording, a piece at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinykws.triggers import IntTrigger, Q15_ONE
from tinykws.device.errors import DeviceError
from tinykws.device.harness import HarnessShape
from tinykws.features import frames_from_stream
from tinykws.quant.calibrate import int_model_checkpoint, load_int_model
from tinykws.quant.features import frames_from_stream_q, int_tables
from tinykws.quant.model import scores_float
from tinykws.checkpoint import load_model
from tinykws.run import RunDir

def torch_reference(run_dir: Path | str):
    """(reference, HarnessShape, FeatureParams, Checkpoint) from the run's checkpoint.

    reference(audio [N, S]) -> (features [N, T, F], scores [N, T, C]): the Python features
    (identical to StreamingFeaturizer fed block by block) and the softmax of the model's
    logits after every frame (KWSModel.forward_sequence = KWSModel.step frame by frame).
    """
    import torch

    model, ck = load_model(run_dir)
    fp = ck.feature_params
    n_classes = len(ck.categories)

    def reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.stack([frames_from_stream(a, fp) for a in audio])  # [N, T, F]
        with torch.no_grad():
            logits, _ = model.forward_sequence(torch.from_numpy(feats))  # [N, T, C]
            scores = torch.softmax(logits.double(), dim=-1).float().numpy()
        return feats, scores

    shape = HarnessShape(fp.hop, fp.n_mels, n_classes, fp.first_block - 1)
    return reference, shape, fp, ck


def onnx_reference(run_dir: Path | str):
    """Like `torch_reference`, but the scores come from RUN_DIR/export/model_step.onnx run
    frame by frame in onnxruntime (the exported artifact, states carried between steps)."""
    from tinykws.export import onnx_session  # optional: tinykws.export needs torch

    _, shape, fp, ck = torch_reference(run_dir)
    path = RunDir(run_dir).model_step_onnx
    if not path.is_file():
        raise DeviceError(f"{path} not found: run `tinykws export RUN_DIR` first")
    sess = onnx_session(path)
    state_names = [i.name for i in sess.get_inputs() if i.name != "frame"]

    def reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.stack([frames_from_stream(a, fp) for a in audio])  # [N, T, F]
        n = len(feats)
        states = {i.name: np.zeros([n if d == "batch" else d for d in i.shape], np.float32)
                  for i in sess.get_inputs() if i.name != "frame"}  # [L, n, H], [s-1, n, F], ...
        scores = []
        for t in range(feats.shape[1]):
            out = sess.run(None, {"frame": feats[:, t], **states})
            scores.append(out[0])  # [N, C]
            states = dict(zip(state_names, out[1:]))
        return feats, np.stack(scores, axis=1).astype(np.float32)  # [N, T, C]

    return reference, shape, fp, ck



def int_reference(run_dir: Path | str):
    """Like `torch_reference`, for the integer build: the integer featurizer's Python
    reference (`tinykws.quant.features`) and the integer model's
    (RUN_DIR/quant/model_int.npz). Features are Q7.8 / 256 and scores Q15 / 32768, as the
    float entry points `mfcc_Filter` and `completemodel_Predict` return them: the device
    must match them exactly. The returned `Checkpoint` is the one the integer model was
    quantized from (`tinykws.quant.calibrate.int_model_checkpoint`)."""
    im = load_int_model(run_dir)
    _, shape, fp, ck = torch_reference(int_model_checkpoint(run_dir, im))

    def reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pcm = np.asarray(audio).astype(np.int16)  # the harness feeds int16-valued floats
        q = np.stack([frames_from_stream_q(a, fp) for a in pcm])  # [N, T, F] int16
        _, sc = im.run(q)
        return q.astype(np.float32) / np.float32(256), scores_float(sc)

    return reference, shape, fp, ck


@dataclass
class IntStreamChunk:
    """`IntStreamReference.feed`'s output for one piece of a recording."""

    first_frame: int  # stream frame index of row 0
    features: np.ndarray  # [n, F] float32: Q7.8 / 256, as `int_reference`
    scores: np.ndarray  # [n, C] float32: Q15 / 32768
    detections: list[dict]  # IntTrigger's, confidence = detector_StepQ's Q15 mean / 32768
    detections_float: list[dict]  # the same, confidence as detector_Step divides (float32)


class IntStreamReference:
    """`int_reference` over one long recording fed a piece at a time (whole blocks), with
    the integer detector (`IntTrigger`) after it, states carried from piece to piece: the
    integer featurizer's last samples, the integer model's hidden state, the trigger. The
    result does not depend on how the recording is cut (bit for bit, tests/
    test_device_stream_int8.py), and memory is bounded by the piece, not the recording.

    Each piece goes through `frames_from_stream_q` behind the last `context` samples of
    the one before: a frame depends only on its ring (`int_tables(params).ring_size`
    samples) and the sample before it (pre-emphasis), so the frames of the new blocks come
    out as from one call on the whole recording; the frames of the context are dropped.
    `time_of(frame)` gives a frame's time in s (as `Detector` counts it).
    """

    def __init__(self, model, params, config, categories, time_of) -> None:
        self.model, self.params, self.time_of = model, params, time_of
        self.categories = list(categories)
        self.trigger = IntTrigger.from_config(config, self.categories,
                                              params.frame_ms)
        self.state = model.init_state(1)
        ring_blocks = -(-int_tables(params).ring_size // params.hop)
        self.context = max(params.first_block, ring_blocks + 1) * params.hop  # samples
        self.tail = np.zeros(0, np.int16)  # the last `context` samples fed
        self.frames = 0  # frames made so far

    def feed(self, pcm: np.ndarray) -> IntStreamChunk:
        """The next whole blocks of int16 samples -> their frames (none for the warm-up)."""
        hop, warm = self.params.hop, self.params.first_block - 1
        x = np.asarray(pcm).astype(np.int16)
        if x.ndim != 1 or x.size % hop:
            raise DeviceError(f"IntStreamReference.feed: need whole {hop}-sample blocks, got {x.shape}")
        seg = np.concatenate([self.tail, x])
        q = frames_from_stream_q(seg, self.params)  # frames of seg's blocks warm, warm + 1, ...
        q = q[max(0, len(self.tail) // hop - warm):]  # those of the new blocks: [n, F]
        self.tail = seg[-self.context:]
        _, sc, self.state = self.model.run_from(q[None], self.state)
        first, found, found_float = self.frames, [], []
        for i, s in enumerate(sc[0]):
            d = self.trigger(self.time_of(first + i), s)
            if d:
                found_float.append(d.to_dict())
                found.append({**d.to_dict(), "confidence": self.trigger.confidence_q15 / Q15_ONE})
        self.frames += len(q)
        return IntStreamChunk(first, q.astype(np.float32) / np.float32(256), scores_float(sc[0]),
                              found, found_float)
