"""Inference mode: mirrors ``c10::InferenceMode`` (c10/core/InferenceMode.h) and
``torch.inference_mode`` (torch/autograd/grad_mode.py).

Entering sets the AutogradState (grad mode ``not enabled``, inference mode
``enabled``) and edits the key sets — and nothing else. With ``enabled=True``:
ADInplaceOrView leaves the included set and the autograd keys join the
excluded set; with ``enabled=False`` the reverse. Every behaviour of inference
mode follows from which keys then run, and from allocation reading the flag.
"""

from __future__ import annotations

from typing import Any

from dispatch.keyset import RAW_ADINPLACEORVIEW, RAW_AUTOGRAD
from dispatch.tls import per_thread as _per_thread
from modes._guard import Guard

__all__ = ["InferenceMode", "inference_mode", "is_inference_mode_enabled"]


def is_inference_mode_enabled() -> bool:
    """``InferenceMode::is_enabled()``."""
    return _per_thread.state.inference_mode


class InferenceMode(Guard):
    """``c10::InferenceMode(enabled=True)``."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def _apply(self) -> None:
        s = _per_thread.state
        e = self.enabled
        s.grad_mode = not e
        s.inference_mode = e
        s.fw_grad_mode = not e
        if e:
            s.included = s.included & ~RAW_ADINPLACEORVIEW
            s.excluded = s.excluded | RAW_AUTOGRAD
        else:
            s.included = s.included | RAW_ADINPLACEORVIEW
            s.excluded = s.excluded & ~RAW_AUTOGRAD


class inference_mode(InferenceMode):
    """``torch.inference_mode(mode=True)``: context manager and decorator
    (``@inference_mode``, ``@inference_mode()``, ``@inference_mode(False)``)."""

    __slots__ = ()

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode) and not isinstance(mode, bool):
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: Any = True) -> None:
        super().__init__(bool(mode))
