"""Keyword-spotting models: FastGRNN / FastRNN (EdgeML formulation), GRU / LSTM baselines."""

from tinykws.models.classifier import (
    ARCHITECTURES,
    KWSModel,
    ModelConfig,
    State,
    build_model,
)
from tinykws.models.fastgrnn import FastGRNNCell, FastRNNCell
from tinykws.models.rnn import GRULayer, LSTMLayer

__all__ = [
    "ARCHITECTURES",
    "FastGRNNCell",
    "FastRNNCell",
    "GRULayer",
    "KWSModel",
    "LSTMLayer",
    "ModelConfig",
    "State",
    "build_model",
]
