"""The backend fallbacks dispatchsim installs at start-up, after those PyTorch
2.13 registers (``_dispatch_dump_table`` shows them): mirrors
VariableFallbackKernel.cpp, BackendSelectFallbackKernel.cpp and
MetaFallbackKernel.cpp.

* ADInplaceOrView, BackendSelect: fallthrough, as in PyTorch (an op with no
  kernel there costs nothing at that key);
* Python: fallthrough. PyTorch registers a real fallback here
  (PythonFallbackKernel.cpp) that hands the call to Python modes and tensor
  subclasses; dispatchsim has neither, so the key does nothing until a user
  registers a fallback of their own (``Library("_", "IMPL").fallback(fn, "Python")``);
* Autograd keys: the autograd fallback — redispatch below Autograd, leaving
  the thread-local state alone (reference (f).9: kernels reached this way see
  nothing excluded, so the operators they call record autograd themselves);
* Meta: raise PyTorch's "no fake impl or Meta kernel" error.
"""

from __future__ import annotations

from typing import Any, Final

from dispatch.dispatcher import make_fallthrough, redispatch_raw
from dispatch.keys import AUTOGRAD_KEYS, DispatchKey
from dispatch.keyset import RAW_AFTER_AUTOGRAD
from dispatch.operator import KernelFunction

_HERE: Final = "registered at kernels/fallbacks.py"


def autograd_fallback(ks: int, op: Any, *args: Any) -> Any:
    """Redispatch below Autograd (``autogradNotImplementedFallback`` minus the warning node)."""
    return redispatch_raw(op.entry, ks & RAW_AFTER_AUTOGRAD, args)


def meta_fallback(op: Any, *args: Any, **kwargs: Any) -> Any:
    name = op.entry.name
    raise NotImplementedError(
        f"{name}: attempted to run this operator with Meta tensors, but there was no fake impl "
        "or Meta kernel registered. You may have run into this message while using an operator "
        "with PT2 compilation APIs (torch.compile/torch.export); in order to use this operator "
        "with those APIs you'll need to add a fake impl. Please see the following for next "
        "steps:  https://pytorch.org/tutorials/advanced/custom_ops_landing_page.html"
    )


def standard_fallbacks() -> list[tuple[DispatchKey, KernelFunction]]:
    out: list[tuple[DispatchKey, KernelFunction]] = [
        (DispatchKey.ADInplaceOrView, make_fallthrough(_HERE)),
        (DispatchKey.BackendSelect, make_fallthrough(_HERE)),
        (DispatchKey.Python, make_fallthrough(_HERE)),
        (
            DispatchKey.Meta,
            KernelFunction(
                meta_fallback, False, _HERE, convention="fallback", name="meta_fallback"
            ),
        ),
    ]
    for k in AUTOGRAD_KEYS:
        out.append(
            (
                k,
                KernelFunction(
                    autograd_fallback,
                    True,
                    _HERE,
                    convention="fallback_full",
                    name="autograd_fallback",
                ),
            )
        )
    return out


__all__ = ["autograd_fallback", "meta_fallback", "standard_fallbacks"]
