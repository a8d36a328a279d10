"""Per-thread dispatch state: mirrors ``c10::impl::LocalDispatchKeySet``
(c10/core/impl/LocalDispatchKeySet.h) together with ``c10::AutogradState``
(grad mode, inference mode) — in one ``threading.local`` object.

The dispatcher reads :data:`state` once per call. Guards (``modes``) are the
only code that writes it, and each restores the exact value it saved.
PyTorch stores the TLS sets XOR-ed with the defaults so that zero-initialised
TLS means "defaults"; a Python ``threading.local`` subclass gets the same
effect from ``__init__`` running once per thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from dispatch.keys import DispatchKey
from dispatch.keyset import RAW_DEFAULT_EXCLUDED, RAW_DEFAULT_INCLUDED, DispatchKeySet

__all__ = [
    "LocalDispatchKeySet",
    "set_default_tracer_factory",
    "state",
    "tls_is_dispatch_key_excluded",
    "tls_is_dispatch_key_included",
    "tls_local_dispatch_key_set",
]


# Makes each thread's initial recorder (DISPATCHSIM_SHOW_DISPATCH_TRACE); None: no recorder.
_default_tracer_factory: Callable[[], Any] | None = None


def set_default_tracer_factory(factory: Callable[[], Any] | None) -> None:
    """Threads that first touch the dispatch state after this start with ``factory()``
    as their recorder (``dispatch.trace`` installs its stderr printer this way)."""
    global _default_tracer_factory
    _default_tracer_factory = factory


class _LocalState(threading.local):
    """All thread-local dispatch state. Raw ints, read on the hot path."""

    included: int
    excluded: int
    grad_mode: bool
    inference_mode: bool
    fw_grad_mode: bool
    tracer: Any  # the active dispatch.trace recorder, or None

    def __init__(self) -> None:
        self.included = RAW_DEFAULT_INCLUDED
        self.excluded = RAW_DEFAULT_EXCLUDED
        self.grad_mode = True
        self.inference_mode = False
        self.fw_grad_mode = True
        factory = _default_tracer_factory
        self.tracer = factory() if factory is not None else None


state = _LocalState()
"""The one thread-local state object; each thread sees its own defaults."""


class LocalDispatchKeySet(NamedTuple):
    """``c10::impl::LocalDispatchKeySet``: the thread's included and excluded keys."""

    included: DispatchKeySet
    excluded: DispatchKeySet


def tls_local_dispatch_key_set() -> LocalDispatchKeySet:
    """``c10::impl::tls_local_dispatch_key_set()``."""
    s = state
    return LocalDispatchKeySet(
        DispatchKeySet.from_raw(s.included), DispatchKeySet.from_raw(s.excluded)
    )


def tls_is_dispatch_key_excluded(key: DispatchKey) -> bool:
    return bool(state.excluded & DispatchKeySet(key).raw)


def tls_is_dispatch_key_included(key: DispatchKey) -> bool:
    return bool(state.included & DispatchKeySet(key).raw)
