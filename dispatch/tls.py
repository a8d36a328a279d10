"""Per-thread dispatch state: mirrors ``c10::impl::LocalDispatchKeySet``
(c10/core/impl/LocalDispatchKeySet.h) together with ``c10::AutogradState``
(grad mode, inference mode) — in one ``threading.local`` object.

The dispatcher and each kernel read :data:`per_thread` once per call. Guards (``modes``)
are the only code that writes it, and each restores the exact value it saved.
PyTorch stores the TLS sets XOR-ed with the defaults so that zero-initialised
TLS means "defaults"; a Python ``threading.local`` subclass gets the same
effect from ``__init__`` running once per thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from dispatch.keys import DispatchKey
from dispatch.keyset import RAW_DEFAULT_EXCLUDED, RAW_DEFAULT_INCLUDED, DispatchKeySet

__all__ = [
    "LocalDispatchKeySet",
    "ThreadState",
    "per_thread",
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


class ThreadState:
    """One thread's dispatch state, in plain slots.

    Reading a ``threading.local`` attribute costs about five times a slot's, and one
    dispatched op reads or writes this state a dozen times across its kernels (the
    excluded set alone is saved, set and restored by each autograd-related layer). So
    the thread-local object holds one reference, to this; each kernel reads that
    reference once (``s = per_thread.state``) and then works on plain slots."""

    __slots__ = ("excluded", "fw_grad_mode", "grad_mode", "included", "inference_mode", "tracer")

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


class _PerThread(threading.local):
    """The one thread-local object: ``__init__`` runs once in each thread that touches
    it, so every thread starts from the defaults."""

    state: ThreadState

    def __init__(self) -> None:
        self.state = ThreadState()


per_thread: Final = _PerThread()
"""``per_thread.state`` is the calling thread's :class:`ThreadState` (the hot path's
way in: one thread-local read per kernel)."""


def _field(name: str) -> Any:
    def get(self: _StateView) -> Any:
        return getattr(per_thread.state, name)

    def put(self: _StateView, value: Any) -> None:
        setattr(per_thread.state, name, value)

    return property(get, put, doc=f"The calling thread's ``{name}``.")


class _StateView:
    """``state``: the calling thread's state field by field, for code off the hot path
    (guards' helpers, the engine, the CLI, tests): ``state.grad_mode = False``."""

    __slots__ = ()

    included: int = _field("included")
    excluded: int = _field("excluded")
    grad_mode: bool = _field("grad_mode")
    inference_mode: bool = _field("inference_mode")
    fw_grad_mode: bool = _field("fw_grad_mode")
    tracer: Any = _field("tracer")


state: Final = _StateView()
"""The calling thread's dispatch state; each thread sees its own defaults."""


class LocalDispatchKeySet(NamedTuple):
    """``c10::impl::LocalDispatchKeySet``: the thread's included and excluded keys."""

    included: DispatchKeySet
    excluded: DispatchKeySet


def tls_local_dispatch_key_set() -> LocalDispatchKeySet:
    """``c10::impl::tls_local_dispatch_key_set()``."""
    s = per_thread.state
    return LocalDispatchKeySet(
        DispatchKeySet.from_raw(s.included), DispatchKeySet.from_raw(s.excluded)
    )


def tls_is_dispatch_key_excluded(key: DispatchKey) -> bool:
    return bool(per_thread.state.excluded & DispatchKeySet(key).raw)


def tls_is_dispatch_key_included(key: DispatchKey) -> bool:
    return bool(per_thread.state.included & DispatchKeySet(key).raw)
