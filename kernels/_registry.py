"""Where the standard kernels collect before :func:`kernels.load` registers them.

Every kernel here uses the dispatcher's ``"full"`` calling convention: it is
called with the full argument tuple in schema order (keyword-only arguments
included, defaults filled in) and, if registered ``with_keyset``, the raw key
set first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# op name without namespace ("add.Tensor") -> kernel
CPU: Final[dict[str, Callable[..., Any]]] = {}
META: Final[dict[str, Callable[..., Any]]] = {}
COMPOSITE_IMPLICIT: Final[dict[str, Callable[..., Any]]] = {}
COMPOSITE_EXPLICIT: Final[dict[str, Callable[..., Any]]] = {}
BACKEND_SELECT: Final[dict[str, Callable[..., Any]]] = {}


def _register(table: dict[str, Callable[..., Any]], names: tuple[str, ...]) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        for n in names:
            if n in table:
                raise RuntimeError(f"two kernels for {n}")
            table[n] = fn
        return fn

    return deco


def cpu(*names: str) -> Callable[[F], F]:
    return _register(CPU, names)


def meta(*names: str) -> Callable[[F], F]:
    return _register(META, names)


def composite_implicit(*names: str) -> Callable[[F], F]:
    return _register(COMPOSITE_IMPLICIT, names)


def composite_explicit(*names: str) -> Callable[[F], F]:
    return _register(COMPOSITE_EXPLICIT, names)


def backend_select(*names: str) -> Callable[[F], F]:
    return _register(BACKEND_SELECT, names)
