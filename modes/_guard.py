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
import warnings
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from dispatch.tls import per_thread as _per_thread

F = TypeVar("F", bound=Callable[..., Any])

Snapshot = tuple[int, int, bool, bool, bool]


def snapshot() -> Snapshot:
    s = _per_thread.state
    return (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode)


def restore(snap: Snapshot) -> None:
    s = _per_thread.state
    s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode = snap


class Guard:
    """Base class: subclasses implement :meth:`_apply` (edit the TLS) and, when they
    edit less than everything, :meth:`_save` / :meth:`_restore` for just what they edit
    — as each c10 guard saves only its own field, so guards exited out of order still
    leave every other setting alone."""

    __slots__ = ("_saved",)
    # torch's lowercase context managers give `None` to `with ... as x`
    _enter_result_is_self = True

    def __init__(self) -> None:
        self._saved: list[Any] = []

    def _apply(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _save(self) -> Any:
        return snapshot()

    def _restore(self, saved: Any) -> None:
        restore(saved)

    def __enter__(self) -> Any:
        saved = self._save()
        self._saved.append(saved)
        try:
            self._apply()
        except BaseException:
            self._saved.pop()
            self._restore(saved)
            raise
        return self if self._enter_result_is_self else None

    def __exit__(self, *exc: object) -> None:
        self._restore(self._saved.pop())

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
            warnings.warn(
                "Decorating classes is deprecated and will be disabled in future versions. You "
                "should only decorate functions or methods. To preserve the current behavior of "
                "class decoration, you can directly decorate the `__init__` method and nothing "
                "else.",
                FutureWarning,
                stacklevel=2,
            )
            func.__init__ = self(func.__init__)  # type: ignore[method-assign]
            return func
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
