"""Key-set guards: mirrors ``c10::impl::ExcludeDispatchKeyGuard`` /
``IncludeDispatchKeyGuard`` (c10/core/impl/LocalDispatchKeySet.h) and the
named ones built on them in ATen/core/LegacyTypeDispatch.h:
``AutoDispatchBelowAutograd``, ``AutoDispatchBelowADInplaceOrView`` and the
deprecated ``AutoNonVariableTypeMode``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from dispatch.keys import DispatchKey
from dispatch.keyset import RAW_AUTOGRAD, RAW_AUTOGRAD_WITH_ADINPLACEORVIEW, DispatchKeySet
from dispatch.tls import per_thread as _per_thread
from modes._guard import Guard

__all__ = [
    "AutoDispatchBelowADInplaceOrView",
    "AutoDispatchBelowAutograd",
    "AutoNonVariableTypeMode",
    "ExcludeDispatchKeyGuard",
    "IncludeDispatchKeyGuard",
]


def _raw(ks: DispatchKeySet | DispatchKey | Iterable[DispatchKey]) -> int:
    if isinstance(ks, DispatchKeySet):
        return ks.raw
    if isinstance(ks, DispatchKey):
        return DispatchKeySet(ks).raw
    return DispatchKeySet(ks).raw


class ExcludeDispatchKeyGuard(Guard):
    """Add ``ks`` to the thread's excluded set for the scope."""

    __slots__ = ("_raw",)

    def __init__(self, ks: DispatchKeySet | DispatchKey | Iterable[DispatchKey]) -> None:
        super().__init__()
        self._raw = _raw(ks)

    @property
    def keyset(self) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._raw)

    def _save(self) -> int:
        return _per_thread.state.excluded

    def _restore(self, saved: Any) -> None:
        _per_thread.state.excluded = saved

    def _apply(self) -> None:
        _per_thread.state.excluded |= self._raw


class IncludeDispatchKeyGuard(Guard):
    """Add ``ks`` to the thread's included set for the scope (exclusion still wins)."""

    __slots__ = ("_raw",)

    def __init__(self, ks: DispatchKeySet | DispatchKey | Iterable[DispatchKey]) -> None:
        super().__init__()
        raw = _raw(ks)
        if raw & RAW_AUTOGRAD:
            # c10 keeps autograd keys out of the included set (InferenceMode's invariant)
            raise ValueError("autograd keys may not be included in the TLS included set")
        self._raw = raw

    @property
    def keyset(self) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._raw)

    def _save(self) -> int:
        return _per_thread.state.included

    def _restore(self, saved: Any) -> None:
        _per_thread.state.included = saved

    def _apply(self) -> None:
        _per_thread.state.included |= self._raw


class AutoDispatchBelowAutograd(ExcludeDispatchKeyGuard):
    """Exclude the autograd keys: calls go straight below Autograd."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(DispatchKeySet.from_raw(RAW_AUTOGRAD))


class AutoDispatchBelowADInplaceOrView(ExcludeDispatchKeyGuard):
    """Exclude the autograd keys and ADInplaceOrView: calls go straight to the backend."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(DispatchKeySet.from_raw(RAW_AUTOGRAD_WITH_ADINPLACEORVIEW))


class AutoNonVariableTypeMode(AutoDispatchBelowADInplaceOrView):
    """Deprecated: the guard that was renamed AutoDispatchBelowADInplaceOrView, and an
    alias of it here (design.md's table; the Gradient Modes document's "now renamed to").
    PyTorch 2.13's C++ class excludes only the autograd keys — see docs/divergences.md."""

    __slots__ = ()

    def __init__(self, enabled: bool = True) -> None:
        if not enabled:
            raise RuntimeError("AutoNonVariableTypeMode(false) is not supported")
        warnings.warn(
            "AutoNonVariableTypeMode is deprecated and will be removed in 1.10 release. For kernel "
            "implementations please use AutoDispatchBelowADInplaceOrView instead, If you are "
            "looking for a user facing API to enable running your inference-only workload, please "
            "use c10::InferenceMode. Using AutoDispatchBelowADInplaceOrView in user code is under "
            "risk of producing silent wrong result in some edge cases. See Note "
            "[AutoDispatchBelowAutograd] for more details.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__()
