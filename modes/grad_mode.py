"""Grad-mode guards: mirrors ``c10::AutoGradMode`` / ``torch::NoGradGuard`` and
torch/autograd/grad_mode.py (``no_grad``, ``enable_grad``, ``set_grad_enabled``).

They change grad mode only, never a key set: whether the Autograd kernel
records a graph is its own decision, read from grad mode.
"""

from __future__ import annotations

from typing import Any

from dispatch.tls import per_thread as _per_thread
from modes._guard import Guard

__all__ = [
    "AutoGradMode",
    "NoGradGuard",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]


def is_grad_enabled() -> bool:
    return _per_thread.state.grad_mode


class _GradModeGuard(Guard):
    """Saves and restores the grad-mode flag only (``c10::AutoGradMode``)."""

    __slots__ = ()

    def _save(self) -> bool:
        return _per_thread.state.grad_mode

    def _restore(self, saved: Any) -> None:
        _per_thread.state.grad_mode = saved


class AutoGradMode(_GradModeGuard):
    """``c10::AutoGradMode(enabled)``: set grad mode for the scope."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def _apply(self) -> None:
        _per_thread.state.grad_mode = self.enabled


class NoGradGuard(AutoGradMode):
    """``torch::NoGradGuard``: grad mode off for the scope."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(False)


class _DecoratorGuard(_GradModeGuard):
    """torch's ``_NoParamDecoratorContextManager``: ``@no_grad`` works bare too."""

    __slots__ = ()
    _enter_result_is_self = False

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
        _per_thread.state.grad_mode = False


class enable_grad(_DecoratorGuard):
    """``torch.enable_grad``."""

    __slots__ = ()

    def __init__(self, orig_func: Any = None) -> None:
        super().__init__()

    def _apply(self) -> None:
        _per_thread.state.grad_mode = True


class set_grad_enabled(_GradModeGuard):
    """``torch.set_grad_enabled(mode)``: takes effect when called, as torch's does;
    as a context manager it restores the grad mode from before the call."""

    __slots__ = ("_prev", "mode")
    _enter_result_is_self = False

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(
                "set_grad_enabled(): argument 'enabled' (position 1) must be bool, not "
                f"{type(mode).__name__}"
            )
        super().__init__()
        self.mode = mode
        self._prev = _per_thread.state.grad_mode
        _per_thread.state.grad_mode = mode

    def __enter__(self) -> None:
        self._saved.append(self._prev)
        _per_thread.state.grad_mode = self.mode
        return None

    def _apply(self) -> None:
        _per_thread.state.grad_mode = self.mode

    def __call__(self, func: Any) -> Any:
        # Decorating: undo the mode change the constructor made, as torch does.
        _per_thread.state.grad_mode = self._prev
        return super().__call__(func)

    def clone(self) -> Guard:
        new = object.__new__(type(self))
        Guard.__init__(new)
        new.mode = self.mode
        new._prev = _per_thread.state.grad_mode
        return new
