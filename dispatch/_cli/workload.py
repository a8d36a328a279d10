"""The Gradient Modes document's "Inference Workload Example", made concrete for the tour::

    c10::InferenceMode guard;
    model.load_jit(saved_model);
    auto inputs = preprocess_tensors(data);
    auto out = model.forward(inputs);
    auto outputs = postprocess_tensors(out);

``saved_model`` is a dict of numpy weights of a 4 -> 8 -> 3 MLP (what a checkpoint file
holds), ``data`` a batch of 5 raw feature rows, :class:`Model` loads and runs the MLP with
dispatchsim operators, :func:`preprocess_tensors` standardises each row and
:func:`postprocess_tensors` returns the softmax probabilities and a one-hot mask of the
most likely class. :func:`reference` computes the probabilities with numpy alone.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

import dispatch
from dispatch.tensorimpl import Tensor

_rng = np.random.default_rng(0)
saved_model: Final[dict[str, np.ndarray[Any, Any]]] = {
    "w1": _rng.standard_normal((8, 4)).astype(np.float32),
    "b1": _rng.standard_normal(8).astype(np.float32),
    "w2": _rng.standard_normal((3, 8)).astype(np.float32),
    "b2": _rng.standard_normal(3).astype(np.float32),
}
data: Final[np.ndarray[Any, Any]] = (
    np.random.default_rng(1).uniform(0.0, 10.0, size=(5, 4)).astype(np.float32)
)


class Model:
    """``model.load_jit(saved_model)`` / ``model.forward(inputs)``."""

    def __init__(self) -> None:
        self.params: dict[str, Tensor] = {}

    def load_jit(self, saved: dict[str, np.ndarray[Any, Any]]) -> None:
        self.params = {name: dispatch.tensor(w) for name, w in saved.items()}

    def forward(self, x: Tensor) -> Tensor:
        p = self.params
        h = (x @ p["w1"].t() + p["b1"]).relu()
        out: Tensor = h @ p["w2"].t() + p["b2"]
        return out


def preprocess_tensors(raw: np.ndarray[Any, Any]) -> Tensor:
    """Per-row standardisation."""
    x = dispatch.tensor(raw)
    centered = x - x.mean(dim=1, keepdim=True)
    std = (centered * centered).mean(dim=1, keepdim=True) ** 0.5
    out: Tensor = centered / (std + 1e-5)
    return out


def postprocess_tensors(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax probabilities and a one-hot mask of the most likely class."""
    e = logits.exp()
    probs: Tensor = e / e.sum(dim=1, keepdim=True)
    wins = probs.unsqueeze(2).ge(probs.unsqueeze(1)).sum(dim=2)
    top: Tensor = wins.eq(probs.shape[1])
    return probs, top


def reference(saved: dict[str, np.ndarray[Any, Any]], raw: np.ndarray[Any, Any]) -> Any:
    """The workload's probabilities, in float64 numpy."""
    w1, b1, w2, b2 = (saved[k].astype(np.float64) for k in ("w1", "b1", "w2", "b2"))
    x = raw.astype(np.float64)
    c = x - x.mean(axis=1, keepdims=True)
    x = c / (np.sqrt((c * c).mean(axis=1, keepdims=True)) + 1e-5)
    logits = np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
