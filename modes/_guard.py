"""The guard protocol shared by every mode: a context manager that saves the
thread-local state it edits on entry and restores exactly that on exit
(exceptions included), usable again after exit, and — for the lowercase torch
names — a decorator with or without parentheses, generator functions included.

Mirrors the RAII guards of c10 (``c10::AutoGradMode``, ``c10::InferenceMode``,
``c10::impl::ExcludeDispatchKeyGuard``) and torch/utils/_contextlib.py.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from dispatch.tls import state as _tls

F = TypeVar("F", bound=Callable[..., Any])

Snapshot = tuple[int, int, bool, bool, bool]


def snapshot() -> Snapshot:
    s = _tls
    return (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode)


def restore(snap: Snapshot) -> None:
    s = _tls
    s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode = snap


class Guard:
    """Base class: subclasses implement :meth:`_apply` (edit the TLS)."""

    __slots__ = ("_saved",)

    def __init__(self) -> None:
        self._saved: list[Snapshot] = []

    def _apply(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> Guard:
        self._saved.append(snapshot())
        try:
            self._apply()
        except BaseException:
            restore(self._saved.pop())
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        restore(self._saved.pop())

    def clone(self) -> Guard:
        """A fresh guard with the same settings (used when decorating)."""
        new = object.__new__(type(self))
        for cls in type(self).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if slot in ("_saved", "__weakref__", "__dict__"):
                    continue
                if hasattr(self, slot):
                    object.__setattr__(new, slot, getattr(self, slot))
        new._saved = []
        return new

    def __call__(self, func: F) -> F:
        """Use the guard as a decorator: each call of ``func`` runs inside a fresh copy."""
        if inspect.isclass(func):
            raise TypeError(f"{type(self).__name__} cannot decorate a class")
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.clone():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _wrap_generator(self, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        """torch's ``_wrap_generator``: the guard is active while the generator body runs,
        and not between yields."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            gen = func(*args, **kwargs)
            try:
                with self.clone():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException as e:
                        with self.clone():
                            response = gen.throw(e)
                    else:
                        with self.clone():
                            response = gen.send(request)
            except StopIteration as e:
                return e.value

        return wrapper
