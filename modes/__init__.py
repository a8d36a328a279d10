"""Mode guards: context managers (and, for torch's lowercase names, decorators)
that only edit the thread-local dispatch state of :mod:`dispatch.tls`."""

from __future__ import annotations

from modes.dispatch_guards import (
    AutoDispatchBelowADInplaceOrView,
    AutoDispatchBelowAutograd,
    AutoNonVariableTypeMode,
    ExcludeDispatchKeyGuard,
    IncludeDispatchKeyGuard,
)
from modes.grad_mode import (
    AutoGradMode,
    NoGradGuard,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from modes.inference_mode import InferenceMode, inference_mode, is_inference_mode_enabled

__all__ = [
    "AutoDispatchBelowADInplaceOrView",
    "AutoDispatchBelowAutograd",
    "AutoGradMode",
    "AutoNonVariableTypeMode",
    "ExcludeDispatchKeyGuard",
    "IncludeDispatchKeyGuard",
    "InferenceMode",
    "NoGradGuard",
    "enable_grad",
    "inference_mode",
    "is_grad_enabled",
    "is_inference_mode_enabled",
    "no_grad",
    "set_grad_enabled",
]
