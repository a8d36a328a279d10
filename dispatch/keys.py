"""Dispatch keys: mirrors ``c10::DispatchKey`` (c10/core/DispatchKey.h).

dispatchsim models the subset of PyTorch's keys that grad modes and inference
mode are made of, in PyTorch's relative priority. Every *runtime* key owns one
bit of a :class:`~dispatch.keyset.DispatchKeySet`; the bit position is the
priority, so the highest-priority key of a set is its highest set bit.

PyTorch splits a runtime key into a "functionality" bit and a "backend" bit
(``AutogradCPU`` = AutogradFunctionality | CPUBit). With only two backends that
split buys nothing here, so each runtime key gets a bit of its own; the
dispatch results are the same (see docs/divergences.md).

*Alias* keys (``Autograd``, ``CompositeImplicitAutograd``,
``CompositeExplicitAutograd``) are registration-only: they expand to a set of
runtime keys (``getRuntimeDispatchKeySet``) and are never dispatched to.
"""

from __future__ import annotations

import enum
from typing import Final


class DispatchKey(enum.IntEnum):
    """A dispatch key. Runtime keys are ordered low -> high priority.

    The value of a runtime key ``k`` is its bit index plus one, so
    ``1 << (k - 1)`` is its bit and ``Undefined`` (0) has none.
    """

    Undefined = 0
    # Backends (PyTorch: Dense functionality + a backend bit; MetaBit > CPUBit).
    CPU = 1
    Meta = 2
    # Functionality keys, in PyTorch's relative order.
    BackendSelect = 3
    Python = 4
    ADInplaceOrView = 5
    AutogradOther = 6
    AutogradCPU = 7
    AutogradMeta = 8
    # Alias keys: registration only, never in a key set.
    Autograd = 100
    CompositeImplicitAutograd = 101
    CompositeExplicitAutograd = 102

    def __repr__(self) -> str:
        return f"DispatchKey.{self.name}"

    def __str__(self) -> str:
        return self.name

    @property
    def is_alias(self) -> bool:
        return self.value >= _FIRST_ALIAS

    @property
    def is_runtime(self) -> bool:
        return 0 < self.value < _FIRST_ALIAS

    @property
    def bit(self) -> int:
        """The key's bit in a raw key set (0 for Undefined and alias keys)."""
        return _BITS[self]

    @classmethod
    def parse(cls, name: str | DispatchKey) -> DispatchKey:
        """``"CPU"`` -> ``DispatchKey.CPU``; raises PyTorch's error for an unknown name."""
        if isinstance(name, DispatchKey):
            return name
        try:
            return cls[name]
        except KeyError:
            raise RuntimeError(f"could not parse dispatch key: {name}") from None


_FIRST_ALIAS: Final = 100

NUM_RUNTIME_KEYS: Final = 8
"""Runtime keys are 1..NUM_RUNTIME_KEYS; index 0 is Undefined."""

RUNTIME_KEYS: Final[tuple[DispatchKey, ...]] = tuple(
    k for k in DispatchKey if 0 < k.value < _FIRST_ALIAS
)
"""Runtime keys, lowest priority first (the order PyTorch prints them in)."""

ALIAS_KEYS: Final[tuple[DispatchKey, ...]] = tuple(
    k for k in DispatchKey if k.value >= _FIRST_ALIAS
)

BACKEND_KEYS: Final[tuple[DispatchKey, ...]] = (DispatchKey.CPU, DispatchKey.Meta)
AUTOGRAD_KEYS: Final[tuple[DispatchKey, ...]] = (
    DispatchKey.AutogradOther,
    DispatchKey.AutogradCPU,
    DispatchKey.AutogradMeta,
)

_BITS: Final[dict[DispatchKey, int]] = {
    k: (1 << (k.value - 1)) if 0 < k.value < _FIRST_ALIAS else 0 for k in DispatchKey
}

KEY_BY_INDEX: Final[tuple[DispatchKey, ...]] = (DispatchKey.Undefined, *RUNTIME_KEYS)
"""``KEY_BY_INDEX[int.bit_length(raw)]`` is the highest-priority key of ``raw``."""

AUTOGRAD_KEY_FOR_BACKEND: Final[dict[DispatchKey, DispatchKey]] = {
    DispatchKey.CPU: DispatchKey.AutogradCPU,
    DispatchKey.Meta: DispatchKey.AutogradMeta,
}
"""``getAutogradKeyFromBackend``: the autograd key a backend's tensors carry."""

BACKEND_FOR_AUTOGRAD_KEY: Final[dict[DispatchKey, DispatchKey]] = {
    v: k for k, v in AUTOGRAD_KEY_FOR_BACKEND.items()
}

DEVICE_BACKEND: Final[dict[str, DispatchKey]] = {"cpu": DispatchKey.CPU, "meta": DispatchKey.Meta}
