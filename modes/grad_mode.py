"""Grad-mode guards: mirrors ``c10::AutoGradMode`` / ``torch::NoGradGuard`` and
torch/autograd/grad_mode.py (``no_grad``, ``enable_grad``, ``set_grad_enabled``).

They change grad mode only, never a key set: whether the Autograd kernel
records a graph is its own decision, read from grad mode.
"""

from __future__ import annotations

from typing import Any

from dispatch.tls import state as _tls
from modes._guard import Guard, snapshot

__all__ = [
    "AutoGradMode",
    "NoGradGuard",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]


def is_grad_enabled() -> bool:
    return _tls.grad_mode


class AutoGradMode(Guard):
    """``c10::AutoGradMode(enabled)``: set grad mode for the scope."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def _apply(self) -> None:
        _tls.grad_mode = self.enabled


class NoGradGuard(AutoGradMode):
    """``torch::NoGradGuard``: grad mode off for the scope."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(False)


class _DecoratorGuard(Guard):
    """torch's ``_NoParamDecoratorContextManager``: ``@no_grad`` works bare too."""

    __slots__ = ()

    def __new__(cls, orig_func: Any = None, *args: Any, **kwargs: Any) -> Any:
        if orig_func is not None and callable(orig_func) and not args and not kwargs:
            return cls()(orig_func)
        return super().__new__(cls)


class no_grad(_DecoratorGuard):
    """``torch.no_grad``: context manager and decorator (``@no_grad`` or ``@no_grad()``)."""

    __slots__ = ()

    def __init__(self, orig_func: Any = None) -> None:
        super().__init__()

    def _apply(self) -> None:
        _tls.grad_mode = False


class enable_grad(_DecoratorGuard):
    """``torch.enable_grad``."""

    __slots__ = ()

    def __init__(self, orig_func: Any = None) -> None:
        super().__init__()

    def _apply(self) -> None:
        _tls.grad_mode = True


class set_grad_enabled(Guard):
    """``torch.set_grad_enabled(mode)``: takes effect when called, as torch's does;
    as a context manager it restores the mode from before the call."""

    __slots__ = ("_prev", "mode")

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self.mode = bool(mode)
        self._prev = snapshot()
        _tls.grad_mode = self.mode

    def __enter__(self) -> set_grad_enabled:
        self._saved.append(self._prev)
        _tls.grad_mode = self.mode
        return self

    def _apply(self) -> None:
        _tls.grad_mode = self.mode

    def __call__(self, func: Any) -> Any:
        # Decorating: undo the mode change the constructor made, as torch does.
        from modes._guard import restore

        restore(self._prev)
        return super().__call__(func)

    def clone(self) -> Guard:
        new = object.__new__(type(self))
        Guard.__init__(new)
        new.mode = self.mode
        new._prev = snapshot()
        return new
