"""`KWSModel`: normalisation, 1-3 recurrent layers and a linear classifier on the last step.

The model config is a frozen dataclass saved in every checkpoint, so export, codegen and
resume rebuild the model without guessing (`tinykws.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

from tinykws.config import ARCHITECTURES, ModelConfig
from tinykws.errors import TinyKWSError
from tinykws.models.fastgrnn import FastGRNNCell, FastRNNCell
from tinykws.models.rnn import GRULayer, LSTMLayer

# A model's recurrent state: [L, B, H] (fastgrnn, fastrnn, gru) or (h, c) each [L, B, H] (lstm).
State = Union[Tensor, tuple[Tensor, Tensor]]


class StrideState(NamedTuple):
    """The per-frame streaming state of a model with frame stride s > 1 (`KWSModel.step`).

    Every tensor has the batch on dim 1, as the recurrent state does, so a batch row is
    replaced the same way (`tinykws.detect._where_rows`).
    """

    rnn: State  # the recurrent state, [L, B, H] (LSTM: h, c)
    pending: Tensor  # the last s - 1 normalised frames, oldest first [s - 1, B, F]
    phase: Tensor  # frames since the last step, 0 .. s - 1, as float [1, B, 1]


StreamState = Union[State, StrideState]


def make_cell(config: ModelConfig, input_size: int) -> nn.Module:
    """One recurrent layer of the configured architecture."""
    H = config.hidden_size
    if config.architecture == "fastgrnn":
        return FastGRNNCell(input_size, H, config.wrank, config.urank)
    if config.architecture == "fastrnn":
        return FastRNNCell(input_size, H, config.wrank, config.urank)
    if config.architecture == "gru":
        return GRULayer(input_size, H)
    return LSTMLayer(input_size, H)


class KWSModel(nn.Module):
    """(x - mean) / std -> recurrent layers -> Linear on the last step's hidden state."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        F, H = config.input_size, config.hidden_size
        self.register_buffer("mean", torch.zeros(F))  # [F]
        self.register_buffer("std", torch.ones(F))  # [F]
        self.cells = nn.ModuleList(
            make_cell(config, F * config.frame_stride if i == 0 else H) for i in range(config.num_layers)
        )
        self.fc = nn.Linear(H, config.num_classes + config.garbage_classes)

    def head(self, h: Tensor, raw: bool = False) -> Tensor:
        """The classifier on hidden states [..., H] -> logits [..., C].

        With garbage outputs (`ModelConfig.garbage_classes`) the logits are log-probabilities
        with the garbage outputs' probability added to class `garbage_into`, so a softmax
        of them is the model's class distribution over the C categories; `raw` gives the
        C + K outputs themselves (what the stream phase trains)."""
        out = self.fc(h)
        K = self.config.garbage_classes
        if raw or not K:
            return out
        C, u = self.config.num_classes, self.config.garbage_into
        logp = torch.log_softmax(out, -1)
        folded = torch.logsumexp(torch.cat([logp[..., u:u + 1], logp[..., C:]], -1), -1)
        return torch.cat([logp[..., :u], folded[..., None], logp[..., u + 1:C]], -1)

    @property
    def is_lstm(self) -> bool:
        return self.config.architecture == "lstm"

    def set_normalization(self, mean: Tensor, std: Tensor) -> None:
        """Store the training set's per-feature mean and std [F] (std zeros become 1)."""
        std = torch.as_tensor(std, dtype=torch.float32)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.where(std == 0, torch.ones_like(std), std))

    def set_fast(self, fast: bool) -> None:
        """Switch the FastGRNN/FastRNN fused training path on or off (reference loop)."""
        for cell in self.cells:
            if hasattr(cell, "fast"):
                cell.fast = fast

    def init_state(self, batch: int, device=None) -> State:
        """Zero state: [L, B, H], or (h, c) each [L, B, H] for LSTM."""
        if device is None:
            device = self.fc.weight.device
        z = torch.zeros(self.config.num_layers, batch, self.config.hidden_size, device=device)
        return (z, z.clone()) if self.is_lstm else z

    # -- state helpers: model-level [L, B, H] <-> per-layer -----------------------------
    def _layer_state(self, state: State, i: int):
        return (state[0][i], state[1][i]) if self.is_lstm else state[i]

    def _stack_states(self, states: list) -> State:
        if self.is_lstm:
            return torch.stack([s[0] for s in states]), torch.stack([s[1] for s in states])
        return torch.stack(states)

    def _run(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State, Tensor]:
        """x [B, T, F] -> (last layer's outputs [T, B, H], final state, last layer's
        final hidden state [B, H])."""
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        seq = self.stack_frames((x - self.mean) / self.std).transpose(0, 1)  # [T/s, B, sF]
        finals = []
        for i, cell in enumerate(self.cells):
            seq, last = cell(seq, self._layer_state(state, i))
            finals.append(last)
        h_last = finals[-1][0] if self.is_lstm else finals[-1]
        return seq, self._stack_states(finals), h_last

    def stack_frames(self, x: Tensor) -> Tensor:
        """[B, T, F] -> [B, T // s, s * F]: s consecutive frames a step. An incomplete last
        group is left out, as a stream has not stepped on it yet (`step`), except in a
        sequence shorter than s: zero-padded to one step (zero = the training mean)."""
        s = self.config.frame_stride
        if s == 1:
            return x
        B, T, F = x.shape
        if T < s:
            x = torch.cat([x, x.new_zeros(B, s - T, F)], 1)
        return x[:, : max(T // s, 1) * s].reshape(B, max(T // s, 1), s * F)

    def forward(
        self, x: Tensor, state: Optional[State] = None, return_state: bool = False, raw: bool = False
    ):
        """x [B, T, F] -> logits [B, C] from the last step (and the final state if asked):
        with a frame stride, what `step` gives after the T-th frame (frames after the last
        complete group are not stepped on). `raw`: see `head`."""
        _, new_state, h_last = self._run(x, state)
        logits = self.head(h_last, raw)  # (not seq[-1]: the fast cells then skip a zero gradient)
        return (logits, new_state) if return_state else logits

    def forward_sequence(self, x: Tensor, state: Optional[State] = None,
                         raw: bool = False) -> tuple[Tensor, State]:
        """x [B, T, F] -> (logits after every frame [B, T, C], final state; `raw`: see `head`).

        With a frame stride s a step's logits hold from its last frame until the next
        step's; the first s - 1 frames show the incoming state's (as a device would before
        its first step). The state returned is the last complete group's: call it with
        T a multiple of s to carry it on exactly (`stream_training` checks its chunks)."""
        s, T = self.config.frame_stride, x.shape[1]
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        seq, new_state, _ = self._run(x, state)
        logits = self.head(seq, raw).transpose(0, 1)  # [B, T/s, C]
        if s > 1:
            top = self._layer_state(state, self.config.num_layers - 1)
            before = self.head(top[0] if self.is_lstm else top, raw)  # [B, C]
            held = logits.repeat_interleave(s, 1)  # frame t -> step t // s
            logits = torch.cat([before[:, None].expand(-1, s - 1, -1), held], 1)[:, :T]
        return logits, new_state

    def init_stream_state(self, batch: int, device=None) -> StreamState:
        """The zero state of `step`: `init_state`'s, plus (frame stride s > 1) no pending
        frames and phase 0."""
        rnn = self.init_state(batch, device)
        s = self.config.frame_stride
        if s == 1:
            return rnn
        z = (rnn[0] if self.is_lstm else rnn).new_zeros
        return StrideState(rnn, z(s - 1, batch, self.config.input_size), z(1, batch, 1))

    def step(self, frame: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """One frame [B, F] and state (`init_stream_state`) -> (logits [B, C], new state).

        Frame stride s > 1: the recurrent layers step on the frame that completes a group of
        s (phase s - 1), as `forward_sequence` does from phase 0; every frame's logits are
        the classifier on the last layer's current state. Every row computes the step and
        keeps it only where due: one graph for any mix of phases (ONNX, staggered windows)."""
        x = (frame - self.mean) / self.std
        s = self.config.frame_stride
        if s == 1:
            top, new = self._layers_step(x, state)
            return self.head(top), new
        if not isinstance(state, StrideState):
            raise TinyKWSError(f"a model with frame stride {s} steps from init_stream_state(), "
                               f"not {type(state).__name__}")
        rnn, pending, phase = state
        stacked = torch.cat([*pending.unbind(0), x], -1)  # [B, s * F], oldest frame first
        _, stepped = self._layers_step(stacked, rnn)  # kept below only where due
        due = phase >= s - 1  # [1, B, 1]
        rnn = (tuple(torch.where(due, n, o) for n, o in zip(stepped, rnn)) if self.is_lstm
               else torch.where(due, stepped, rnn))
        new = StrideState(rnn, torch.cat([pending[1:], x[None]], 0), torch.where(due, 0.0, phase + 1.0))
        top = rnn[0][-1] if self.is_lstm else rnn[-1]
        return self.head(top), new

    def _layers_step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One recurrent step on a normalised input [B, in] -> (the last layer's h [B, H],
        new state)."""
        news = []
        for i, cell in enumerate(self.cells):
            st = cell.step(x, self._layer_state(state, i))
            news.append(st)
            x = st[0] if self.is_lstm else st
        return x, self._stack_states(news)


def build_model(config: ModelConfig) -> KWSModel:
    """A freshly initialised model (EdgeML initialisation for the Fast cells)."""
    return KWSModel(config)
