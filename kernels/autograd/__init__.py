"""Autograd: the graph, the generic Autograd kernel and its derivative table,
the backward engine — mirrors torch/csrc/autograd and ``torch.autograd``."""

from __future__ import annotations

from kernels.autograd.engine import backward, grad
from kernels.autograd.graph import AccumulateGrad, CopySlices, Node, SavedVariable
from kernels.autograd.variable import set_detect_anomaly

__all__ = [
    "AccumulateGrad",
    "CopySlices",
    "Node",
    "SavedVariable",
    "backward",
    "grad",
    "set_detect_anomaly",
]
