"""Key sets: mirrors ``c10::DispatchKeySet`` (c10/core/DispatchKeySet.h).

A :class:`DispatchKeySet` is an immutable wrapper over a plain ``int`` whose bit
``k - 1`` stands for runtime key ``k``. The dispatcher's hot path works on the
raw ints (``RAW_*`` constants below); the class is the public face for users,
reprs and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from dispatch.keys import (
    AUTOGRAD_KEY_FOR_BACKEND,
    AUTOGRAD_KEYS,
    BACKEND_KEYS,
    KEY_BY_INDEX,
    RUNTIME_KEYS,
    DispatchKey,
)

__all__ = [
    "DispatchKeySet",
    "after_ADInplaceOrView_keyset",
    "after_autograd_keyset",
    "autograd_dispatch_keyset",
    "autograd_dispatch_keyset_with_ADInplaceOrView",
    "backend_dispatch_keyset",
    "default_excluded_set",
    "default_included_set",
    "get_autograd_related_keyset_from_backend",
    "get_runtime_dispatch_keyset",
    "inplace_or_view_ks",
    "math_dispatch_keyset",
]


def _raw(*keys: DispatchKey) -> int:
    r = 0
    for k in keys:
        r |= k.bit
    return r


# Raw ints for the hot path (kernels and the dispatcher use these directly).
RAW_FULL: Final = (1 << len(RUNTIME_KEYS)) - 1
RAW_AUTOGRAD: Final = _raw(*AUTOGRAD_KEYS)
RAW_ADINPLACEORVIEW: Final = DispatchKey.ADInplaceOrView.bit
RAW_AUTOGRAD_WITH_ADINPLACEORVIEW: Final = RAW_AUTOGRAD | RAW_ADINPLACEORVIEW
RAW_BACKENDS: Final = _raw(*BACKEND_KEYS)
# FULL_AFTER(k): every key of lower priority than k.
RAW_AFTER_AUTOGRAD: Final = DispatchKey.AutogradOther.bit - 1
RAW_AFTER_ADINPLACEORVIEW: Final = DispatchKey.ADInplaceOrView.bit - 1
RAW_DEFAULT_INCLUDED: Final = _raw(DispatchKey.BackendSelect, DispatchKey.ADInplaceOrView)
RAW_DEFAULT_EXCLUDED: Final = 0
RAW_MATH: Final = RAW_BACKENDS | RAW_AUTOGRAD


class DispatchKeySet:
    """An immutable set of runtime dispatch keys, backed by one ``int``.

    ``DispatchKeySet(DispatchKey.CPU, DispatchKey.AutogradCPU)``,
    ``DispatchKeySet([k1, k2])`` and ``DispatchKeySet.from_raw(bits)`` build one.
    Iteration and ``repr`` go from the lowest to the highest priority, as
    PyTorch prints them; :meth:`highest_priority_key` is O(1).
    """

    __slots__ = ("_repr",)
    _repr: int

    def __init__(self, *keys: DispatchKey | Iterable[DispatchKey]) -> None:
        raw = 0
        for item in keys:
            if isinstance(item, DispatchKey):
                raw |= _key_bit(item)
            elif isinstance(item, DispatchKeySet):
                raw |= item._repr
            else:
                for k in item:
                    raw |= _key_bit(DispatchKey.parse(k))
        object.__setattr__(self, "_repr", raw)

    @classmethod
    def from_raw(cls, raw: int) -> DispatchKeySet:
        if raw < 0 or raw > RAW_FULL:
            raise ValueError(
                f"raw key set {raw:#x} has bits outside the {len(RUNTIME_KEYS)} runtime keys"
            )
        ks = cls.__new__(cls)
        object.__setattr__(ks, "_repr", raw)
        return ks

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DispatchKeySet is immutable")

    @property
    def raw(self) -> int:
        return self._repr

    # -- queries ------------------------------------------------------------
    def has(self, key: DispatchKey) -> bool:
        return bool(self._repr & _key_bit(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, DispatchKey) and key.is_runtime and bool(self._repr & key.bit)

    def has_any(self, other: DispatchKeySet) -> bool:
        return bool(self._repr & other._repr)

    def has_all(self, other: DispatchKeySet) -> bool:
        return self._repr & other._repr == other._repr

    def empty(self) -> bool:
        return self._repr == 0

    def highest_priority_key(self) -> DispatchKey:
        """``highestPriorityTypeId``: Undefined for the empty set."""
        return KEY_BY_INDEX[self._repr.bit_length()]

    highestPriorityTypeId = highest_priority_key

    def __iter__(self) -> Iterator[DispatchKey]:
        raw = self._repr
        for k in RUNTIME_KEYS:
            if raw & k.bit:
                yield k

    def __len__(self) -> int:
        return self._repr.bit_count()

    def __bool__(self) -> bool:
        return self._repr != 0

    # -- algebra -------------------------------------------------------------
    def __or__(self, other: DispatchKeySet) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr | _as_raw(other))

    def __and__(self, other: DispatchKeySet) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr & _as_raw(other))

    def __sub__(self, other: DispatchKeySet) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr & ~_as_raw(other))

    def __xor__(self, other: DispatchKeySet) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr ^ _as_raw(other))

    def add(self, key: DispatchKey) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr | _key_bit(key))

    def remove(self, key: DispatchKey) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._repr & ~_key_bit(key))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DispatchKeySet) and self._repr == other._repr

    def __hash__(self) -> int:
        return hash(("DispatchKeySet", self._repr))

    def __repr__(self) -> str:
        return f"DispatchKeySet({', '.join(k.name for k in self)})"

    __str__ = __repr__


def _key_bit(key: DispatchKey) -> int:
    if key.is_alias:
        raise ValueError(
            f"{key.name} is an alias key: it stands for several runtime keys and is never in a "
            f"DispatchKeySet; use get_runtime_dispatch_keyset(DispatchKey.{key.name})"
        )
    return key.bit


def _as_raw(other: object) -> int:
    if isinstance(other, DispatchKeySet):
        return other._repr
    if isinstance(other, DispatchKey):
        return _key_bit(other)
    raise TypeError(f"expected a DispatchKeySet or DispatchKey, got {type(other).__name__}")


autograd_dispatch_keyset: Final = DispatchKeySet.from_raw(RAW_AUTOGRAD)
inplace_or_view_ks: Final = DispatchKeySet.from_raw(RAW_ADINPLACEORVIEW)
autograd_dispatch_keyset_with_ADInplaceOrView: Final = DispatchKeySet.from_raw(
    RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
)
backend_dispatch_keyset: Final = DispatchKeySet.from_raw(RAW_BACKENDS)
math_dispatch_keyset: Final = DispatchKeySet.from_raw(RAW_MATH)
after_autograd_keyset: Final = DispatchKeySet.from_raw(RAW_AFTER_AUTOGRAD)
after_ADInplaceOrView_keyset: Final = DispatchKeySet.from_raw(RAW_AFTER_ADINPLACEORVIEW)
default_included_set: Final = DispatchKeySet.from_raw(RAW_DEFAULT_INCLUDED)
default_excluded_set: Final = DispatchKeySet.from_raw(RAW_DEFAULT_EXCLUDED)

_ALIAS_EXPANSION: Final[dict[DispatchKey, int]] = {
    DispatchKey.Autograd: RAW_AUTOGRAD,
    DispatchKey.CompositeImplicitAutograd: RAW_MATH,
    DispatchKey.CompositeExplicitAutograd: RAW_BACKENDS,
}


def get_runtime_dispatch_keyset(key: DispatchKey) -> DispatchKeySet:
    """``getRuntimeDispatchKeySet``: the runtime keys an alias key stands for
    (a runtime key stands for itself)."""
    if key.is_alias:
        return DispatchKeySet.from_raw(_ALIAS_EXPANSION[key])
    return DispatchKeySet(key)


def get_autograd_related_keyset_from_backend(backend: DispatchKey) -> DispatchKeySet:
    """``getAutogradRelatedKeySetFromBackend``: {ADInplaceOrView, Autograd<backend>}."""
    autograd = AUTOGRAD_KEY_FOR_BACKEND.get(backend, DispatchKey.AutogradOther)
    return DispatchKeySet(DispatchKey.ADInplaceOrView, autograd)
