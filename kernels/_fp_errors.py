"""Silencing numpy's floating-point warnings while a kernel computes: torch computes
inf and nan silently, numpy warns.

``np.errstate(all="ignore")`` builds numpy's error-state object on every entry, which
costs about a tenth of a small pointwise op. NumPy 2 keeps that state in a context
variable, so the kernels set one prebuilt "ignore everything" state and reset the token
afterwards — what ``np.errstate.__enter__`` / ``__exit__`` do, minus the rebuilding.
Where numpy keeps it elsewhere (NumPy 1.x), these fall back to ``np.errstate``::

    token = ignore_fp_errors()
    try:
        ...
    finally:
        restore_fp_errors(token)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ignore_fp_errors", "restore_fp_errors"]


def _errstate_enter() -> Any:
    state = np.errstate(all="ignore")
    state.__enter__()
    return state


def _errstate_exit(state: Any) -> None:
    state.__exit__(None, None, None)


ignore_fp_errors: Callable[[], Any] = _errstate_enter
restore_fp_errors: Callable[[Any], None] = _errstate_exit


def _silences(ignore: Callable[[], Any], restore: Callable[[Any], None]) -> bool:
    """Do ``ignore`` / ``restore`` silence numpy and then give the caller's state back?"""
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = ignore()
        try:
            np.divide(np.ones(1), 0.0)
            np.multiply(np.full(1, 1e308), 10.0)
        except (RuntimeWarning, FloatingPointError):
            return False
        finally:
            restore(token)
    return np.geterr() == before


try:
    from numpy._core._ufunc_config import (  # type: ignore[attr-defined]
        _extobj_contextvar,
        _make_extobj,
    )
except ImportError:  # NumPy 1.x: np.errstate it is
    pass
else:
    # a partial of the C method: no Python frame between a kernel and the context variable
    _fast_ignore = functools.partial(_extobj_contextvar.set, _make_extobj(all="ignore"))
    if _silences(_fast_ignore, _extobj_contextvar.reset):  # (private names: checked once)
        ignore_fp_errors = _fast_ignore
        restore_fp_errors = _extobj_contextvar.reset
