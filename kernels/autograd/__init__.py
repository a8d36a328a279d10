"""Autograd: the graph, the generic Autograd kernel and its derivative table,
the backward engine — mirrors torch/csrc/autograd and ``torch.autograd``."""

from __future__ import annotations

from kernels.autograd.engine import backward, grad
from kernels.autograd.function import Function, FunctionCtx, once_differentiable
from kernels.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from kernels.autograd.graph import AccumulateGrad, CopySlices, Node, SavedVariable
from kernels.autograd.variable import set_detect_anomaly

__all__ = [
    "AccumulateGrad",
    "CopySlices",
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "Node",
    "SavedVariable",
    "backward",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "once_differentiable",
    "set_detect_anomaly",
]
