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
  nothing excluded, so the operators they call record autograd themselves),
  then mark untracked outputs with a ``WarnNotImplemented`` node;
* Meta: raise PyTorch's "no fake impl or Meta kernel" error.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

from dispatch.dispatcher import make_fallthrough, redispatch_raw, tensor_args
from dispatch.keys import AUTOGRAD_KEYS, DispatchKey
from dispatch.keyset import RAW_AFTER_AUTOGRAD
from dispatch.operator import KernelFunction
from dispatch.tensorimpl import Tensor
from dispatch.tls import per_thread as _per_thread
from kernels.autograd.graph import Node, collect_next_edges

_HERE: Final = "registered at kernels/fallbacks.py"


class WarnNotImplemented(Node):
    """``torch::autograd::WarnNotImplemented``: the grad_fn the autograd fallback gives the
    outputs of an operator with no autograd kernel; backward through it warns and
    produces no gradient (PyTorch 2.13's "warn" fallback mode)."""

    _name = "torch::autograd::WarnNotImplemented"

    def __init__(self, op_name: str, edges: list[Any], num_outputs: int) -> None:
        super().__init__(edges)
        self.op_name = op_name
        self.num_outputs = num_outputs

    def apply(self, grads: list[Any]) -> list[Any]:
        warnings.warn(
            f"{self.op_name}: an autograd kernel was not registered to the Autograd key(s) but we "
            "are trying to backprop through it. This may lead to silently incorrect behavior. "
            "This behavior is deprecated and will be removed in a future version of PyTorch. If "
            "your operator is differentiable, please ensure you have registered an autograd "
            "kernel to the correct Autograd key (e.g. DispatchKey::Autograd, "
            "DispatchKey::CompositeImplicitAutograd). If your operator is not differentiable, or "
            "to squash this warning and use the previous behavior, please register "
            "torch::CppFunction::makeFallthrough() to DispatchKey::Autograd.",
            UserWarning,
            stacklevel=2,
        )
        return [None] * len(self._next_edges)


def autograd_fallback(ks: int, op: Any, *args: Any) -> Any:
    """``basicAutogradNotImplementedFallback`` in "warn" mode: redispatch below Autograd,
    leaving the thread-local state alone, then give new floating-point outputs a
    WarnNotImplemented grad_fn when grad mode is on and an input requires grad."""
    entry = op.entry
    out = redispatch_raw(entry, ks & RAW_AFTER_AUTOGRAD, args)
    if not _per_thread.state.grad_mode:
        return out
    inputs = tensor_args(entry, args)
    if not any(t.requires_grad for t in inputs):
        return out
    outputs = list(out) if isinstance(out, list | tuple) else [out]
    node = WarnNotImplemented(entry.name, collect_next_edges(inputs), len(outputs))
    for i, o in enumerate(outputs):
        if (
            isinstance(o, Tensor)
            and not any(o is t for t in inputs)
            and o.dtype.is_floating_point
            and o._grad_fn is None
        ):
            o._grad_fn = node
            o._output_nr = i
    return out


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
