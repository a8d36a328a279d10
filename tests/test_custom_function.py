"""``autograd.Function``: ctx features, PyTorch's view / in-place rules for custom Functions,
backward validation, and ports of PyTorch's own tests.

Most behaviours are written once as *scenarios* against a tiny adapter (``L``) so the very
same code runs on dispatchsim and, in the ``oracle`` tests, on a real ``torch==2.13.0``:
each scenario returns plain data (flags, numbers, error texts) that must match a recorded
expectation on dispatchsim and match torch's result when torch is installed.

Ports cite test/test_autograd.py (TestAutograd) and test/cpp/api/inference_mode.cpp
(InferenceModeTest) of pytorch/pytorch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import dispatch
import modes
from dispatch import CreationMeta
from kernels import autograd
from kernels.autograd import Function, FunctionCtx, once_differentiable

# ---------------------------------------------------------------------------------------------
# The adapter: the few names a scenario uses, for dispatchsim or torch
# ---------------------------------------------------------------------------------------------
DS = SimpleNamespace(
    name="dispatchsim",
    Function=Function,
    once_differentiable=once_differentiable,
    tensor=dispatch.tensor,
    ones=dispatch.ones,
    zeros=dispatch.zeros,
    float64=dispatch.float64,
    no_grad=modes.no_grad,
    enable_grad=modes.enable_grad,
    inference_mode=modes.inference_mode,
    is_grad_enabled=modes.is_grad_enabled,
    grad=autograd.grad,
    backward=autograd.backward,
)


def torch_adapter() -> SimpleNamespace:
    torch = pytest.importorskip("torch")
    from torch.autograd.function import once_differentiable as torch_once

    return SimpleNamespace(
        name="torch",
        Function=torch.autograd.Function,
        once_differentiable=torch_once,
        tensor=torch.tensor,
        ones=torch.ones,
        zeros=torch.zeros,
        float64=torch.float64,
        no_grad=torch.no_grad,
        enable_grad=torch.enable_grad,
        inference_mode=torch.inference_mode,
        is_grad_enabled=torch.is_grad_enabled,
        grad=torch.autograd.grad,
        backward=torch.autograd.backward,
    )


def err(fn: Callable[[], Any]) -> str | None:
    """``"<ExceptionType>: <text>"`` of what ``fn`` raises, or None if it returns."""
    try:
        fn()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def values(t: Any) -> list[Any]:
    return t.detach().tolist()


def node_name(t: Any) -> str | None:
    fn = t.grad_fn
    return None if fn is None else fn.name()


SCENARIOS: dict[str, Callable[[Any], Any]] = {}
EXPECTED: dict[str, Any] = {}


def scenario(expected: Any) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        name = fn.__name__.lstrip("_")  # ports keep PyTorch's test name, minus the leading "_"
        SCENARIOS[name] = fn
        EXPECTED[name] = expected
        return fn

    return register


# Error texts (PyTorch 2.13's, byte for byte)
CUSTOM_VIEW_SUFFIX = (
    " This view was created inside a custom Function (or because an input was returned as-is) "
    "and the autograd logic to handle view+inplace would override the custom backward "
    "associated with the custom Function, leading to incorrect gradients. This behavior is "
    "forbidden. You can fix this by cloning the output of the custom Function."
)
MULTI_VIEW_SUFFIX = (
    " This view is the output of a function that returns multiple views. Such functions do not "
    "allow the output views to be modified inplace. You should replace the inplace operation by "
    "an out-of-place one."
)
NO_GRAD_VIEW = (
    "A view was created in no_grad mode and is being modified inplace with grad mode enabled."
)
FREED = (
    "RuntimeError: Trying to backward through the graph a second time (or directly access saved "
    "tensors after they have already been freed). Saved intermediate values of the graph are "
    "freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need "
    "to backward through the graph a second time or if you need to access saved tensors after "
    "calling backward."
)
INFERENCE_SAVE = (
    "RuntimeError: Inference tensors cannot be saved for backward. Please do not use Tensors "
    "created in inference mode in computation tracked by autograd. To work around this, you can "
    "make a clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` instead "
    "of `torch.inference_mode()`."
)
HINT = (
    "Hint: enable anomaly detection to find the operation that failed to compute its gradient, "
    "with torch.autograd.set_detect_anomaly(True, check_nan=False)."
)
MARK_DIRTY_NOT_INPUT = (
    "ctx.mark_dirty() received a tensor that was not an input. Only input Tensors that have "
    "been mutated should be passed to ctx.mark_dirty()."
)
DIRTY_VIEW_MULTI = (
    "RuntimeError: If your Function modifies inplace an input that is a view of another Tensor, "
    "your Function cannot return more than one Tensor. This is not supported by the current "
    "autograd engine. You should either make sure the input is not a view (using .clone() for "
    "example) or make your Function only return one Tensor (potentially splitting it into two "
    "Functions: one doing the inplace that returns a single Tensor and a second one that does "
    "the other operations). You can ask on the forum https://discuss.pytorch.org/ if you need "
    "help to do this change."
)


# ---------------------------------------------------------------------------------------------
# The node: name, edges, the ctx is the grad_fn
# ---------------------------------------------------------------------------------------------
@scenario(["FBackward", "FBackward", 1, "torch::autograd::AccumulateGrad", 0, [2, 2]])
def node_name_and_edges_skip_non_tensors(L: Any) -> Any:
    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, s: float) -> Any:
            return x * s

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g * 2, None

    x = L.ones(2, requires_grad=True)
    y = F.apply(x, 2.0)
    (edge,) = y.grad_fn.next_functions
    return [
        y.grad_fn.name(),
        type(y.grad_fn).__name__,
        len(y.grad_fn.next_functions),
        edge[0].name(),
        edge[1],
        values(y),
    ]


@scenario([["MulBackward0", None, "torch::autograd::AccumulateGrad"], [0, 0, 0]])
def edges_follow_tensor_inputs_in_order(L: Any) -> Any:
    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any, k: int, c: Any) -> Any:
            return a + b + c

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, g, None, g

    a = L.ones(2, requires_grad=True) * 2
    b = L.ones(2)
    c = L.ones(2, requires_grad=True)
    fns = F.apply(a, b, 3, c).grad_fn.next_functions
    return [[None if n is None else n.name() for n, _ in fns], [i for _, i in fns]]


# ---------------------------------------------------------------------------------------------
# Grad mode and recording
# ---------------------------------------------------------------------------------------------
@scenario([[False, True], True, True, None, False, False, None, False])
def forward_runs_without_grad_and_records_only_when_needed(L: Any) -> Any:
    seen = []

    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            seen.append(L.is_grad_enabled())
            return x * 2

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g * 2

    x = L.ones(2, requires_grad=True)
    y = F.apply(x)
    with L.enable_grad():
        seen.append(L.is_grad_enabled())
    plain = F.apply(L.ones(2))
    with L.no_grad():
        ng = F.apply(x)
    return [
        seen[:2],
        y.requires_grad,
        L.is_grad_enabled(),
        node_name(plain),
        plain.requires_grad,
        ng.requires_grad,
        node_name(ng),
        seen[2],
    ]


@scenario([[True, False, False, False], [True, False, False, False], [True, False, False, False]])
def needs_input_grad_is_requires_grad_per_argument(L: Any) -> Any:
    seen = []

    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any, k: int, c: Any) -> Any:
            seen.append(list(ctx.needs_input_grad))
            return a * 2

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, None, None, None

    a = L.ones(2, requires_grad=True)
    F.apply(a, L.ones(2), 3, None)
    with L.no_grad():
        F.apply(a, L.ones(2), 3, None)
    with L.inference_mode():
        F.apply(a, L.ones(2), 3, None)
    return seen


# ---------------------------------------------------------------------------------------------
# Outputs: tuples, non-tensors, integer outputs, mark_non_differentiable, materialized grads
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        [[True, True], 3, [False, False], [False, False], [True, True]],
        [0, 4],
        [[1.0, 1.0], None, [0, 0], [0.0, 0.0], [0.0, 0.0]],
        [[1.0, 1.0], None, None, None, None],
        [[0.0, 0.0], None, [0, 0], [0.0, 0.0], [1.0, 1.0]],
        [4.0, 4.0],
        "TypeError: set_materialize_grads received an invalid combination of arguments - got (), "
        "but expected (bool)",
    ]
)
def outputs_and_materialized_grads(L: Any) -> Any:
    seen = []

    class M(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, mat: Any) -> Any:
            ctx.set_materialize_grads(mat)
            n = x.clone()
            ctx.mark_non_differentiable(n)
            return x * 2, 3, (x > 0).long(), n, x.clone()

        @staticmethod
        def backward(ctx: Any, *grads: Any) -> Any:
            seen.append([None if g is None else g.tolist() for g in grads])
            return grads[0] * 2, None

    x = L.ones(2, requires_grad=True)
    r = M.apply(x, True)
    flags = [t if isinstance(t, int) else [t.requires_grad, t.grad_fn is not None] for t in r]
    nrs = [r[0].output_nr, r[4].output_nr]
    r[0].sum().backward()
    M.apply(x, False)[0].sum().backward()
    M.apply(x, True)[4].sum().backward()
    return [flags, nrs, *seen, values(x.grad), err(lambda: M.apply(x, 1))]


@scenario([None, None, None, None])
def backward_returning_none_leaves_no_grad(L: Any) -> Any:
    """test_function_returns_undefined_tensor (test/test_autograd.py)."""

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x * 2

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return None

    x = L.ones(1, requires_grad=True)
    MyFunction.apply(x).backward()
    a = x.grad
    MyFunction.apply(x**2).backward()
    b = x.grad
    MyFunction.apply(x).sum().backward()
    return [a, b, x.grad, L.grad(MyFunction.apply(x), x, allow_unused=True)[0]]


# ---------------------------------------------------------------------------------------------
# save_for_backward / saved_tensors / saved_data
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        [[1.0, 1.0], None],
        True,
        FREED,
        [3.0, 3.0],
        [],
        "TypeError: save_for_backward can only save variables, but argument 1 is of type int",
        None,
    ]
)
def save_for_backward_and_freeing(L: Any) -> Any:
    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, extra: Any = None) -> Any:
            ctx.save_for_backward(x, extra)
            ctx.k = 3.0
            return x * 2

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            _x, _ = ctx.saved_tensors
            return g * ctx.k, None

    x = L.ones(2, requires_grad=True)
    y = F.apply(x)
    saved = y.grad_fn.saved_tensors
    y.sum().backward(retain_graph=True)
    same = y.grad_fn.saved_tensors[0] is x
    x.grad = None
    y.sum().backward()
    freed = err(lambda: y.grad_fn.saved_tensors)

    class G(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, k: Any) -> Any:
            ctx.save_for_backward(x, k)
            return x.clone()

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, None

    with L.no_grad():
        not_recorded = G.apply(x, 3)  # nothing is saved: no check
    return [
        [values(saved[0]), saved[1]],
        same,
        freed,
        values(x.grad),
        list(not_recorded.grad_fn.saved_tensors) if not_recorded.grad_fn else [],
        err(lambda: G.apply(x, 3)),
        err(lambda: G.apply(L.ones(2), 3)),
    ]


@scenario([INFERENCE_SAVE, None, None, [2.0, 2.0]])
def inference_tensors_refused_when_recording(L: Any) -> Any:
    with L.inference_mode():
        inf = L.ones(2)

    class F(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, t: Any) -> Any:
            ctx.save_for_backward(t)
            return x * 2

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, None

    a = L.ones(2, requires_grad=True)
    recording = err(lambda: F.apply(a, inf))
    with L.no_grad():
        ng = err(lambda: F.apply(a, inf))
    with L.inference_mode():
        im = err(lambda: F.apply(a, inf))
        out = F.apply(a, inf)
    return [recording, ng, im, values(out)]


@scenario(
    [
        "RuntimeError: one of the variables needed for gradient computation has been modified by "
        "an inplace operation: [torch.FloatTensor [2]], which is output 0 of Mul, is at version 1; "
        f"expected version 0 instead. {HINT}",
        "RuntimeError: one of the variables needed for gradient computation has been modified by "
        "an inplace operation: [torch.FloatTensor [2]], which is output 0 of SvO, is at version 1; "
        f"expected version 0 instead. {HINT}",
        "RuntimeError: one of the variables needed for gradient computation has been modified by "
        "an inplace operation: [torch.FloatTensor [2]], which is output 1 of SvO, is at version 1; "
        f"expected version 0 instead. {HINT}",
        "RuntimeError: one of the variables needed for gradient computation has been modified by "
        "an inplace operation: [torch.FloatTensor [2]] is at version 1; expected version 0 "
        f"instead. {HINT}",
    ]
)
def saved_tensor_version_checks(L: Any) -> Any:
    class SvO(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            a, b = x * 2, x * 3
            ctx.save_for_backward(x, a, b)
            return a, b

        @staticmethod
        def backward(ctx: Any, ga: Any, gb: Any) -> Any:
            _ = ctx.saved_tensors  # version-checked on access
            return ga * 2 + gb * 3

    leaf = L.ones(2, requires_grad=True)
    out = []
    x = leaf * 1
    a, _ = SvO.apply(x)
    x.mul_(2)  # a saved input (output 0 of MulBackward0)
    out.append(err(lambda: a.sum().backward()))
    for which in (0, 1):  # a saved output, named after the node that saved it
        r = SvO.apply(leaf * 1)
        r[which].add_(1)
        out.append(err(lambda r=r: (r[0] + r[1]).sum().backward()))
    inp = L.ones(2, requires_grad=True)
    a, _ = SvO.apply(inp)
    with L.no_grad():
        inp.add_(1)  # a saved leaf: no "which is output" part
    out.append(err(lambda: a.sum().backward()))
    return out


def test_saved_data_is_a_dict_and_attributes_work() -> None:
    class F(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor, k: int) -> dispatch.Tensor:
            assert ctx.saved_data == {}
            ctx.saved_data["k"] = k
            ctx.other = "attr"
            return x * k

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> Any:
            return g * ctx.saved_data["k"], None

    x = dispatch.ones(2, requires_grad=True)
    y = F.apply(x, 5)
    assert y.grad_fn.saved_data == {"k": 5} and y.grad_fn.other == "attr"
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [5.0, 5.0]
    assert isinstance(FunctionCtx().saved_data, dict)


def test_the_ctx_is_the_node() -> None:
    ctxs = []

    class F(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            ctxs.append(ctx)
            return x * 2

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> dispatch.Tensor:
            ctxs.append(ctx)
            return g * 2

    class G(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            return x * 3

    x = dispatch.ones(2, requires_grad=True)
    y = F.apply(x)
    y.sum().backward()
    assert ctxs[0] is ctxs[1] is y.grad_fn
    assert isinstance(y.grad_fn, autograd.Node) and isinstance(y.grad_fn, FunctionCtx)
    assert F._backward_cls is type(y.grad_fn) and F._backward_cls is not G._backward_cls
    assert G.apply(x).grad_fn.name() == "GBackward"
    assert repr(y).endswith("grad_fn=<FBackward>)")


# ---------------------------------------------------------------------------------------------
# Views and inputs returned as-is (CreationMeta.IN_CUSTOM_FUNCTION)
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        [False, True, True, "IdBackward", 0],
        f"RuntimeError: Output 0 of Id is a view and is being modified inplace.{CUSTOM_VIEW_SUFFIX}",
        [False, False, False, None, False],
        [False, True, False, True],
        None,
        f"RuntimeError: {NO_GRAD_VIEW}{CUSTOM_VIEW_SUFFIX}",
        [True, True, "VBackward"],
        f"RuntimeError: Output 0 of V is a view and is being modified inplace.{CUSTOM_VIEW_SUFFIX}",
        [1.0, 0.0],
    ]
)
def views_and_inputs_returned_as_is(L: Any) -> Any:
    class Id(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g

    class V(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x[:1]

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return L.tensor([1.0, 0.0]) * g.sum()

    x = L.ones(2, requires_grad=True)
    o = Id.apply(x)
    r = [[o is x, o._is_view(), o._base is x, node_name(o), o._version - x._version]]
    r.append(err(lambda: o.add_(1)))
    with L.no_grad():
        o2 = Id.apply(x)  # a detached alias
    r.append([o2 is x, o2._is_view(), o2.requires_grad, o2.grad_fn, o2._base is x])
    xn = L.ones(2)
    o3 = Id.apply(xn)  # not recorded: still a view (made in no_grad) of the input
    r.append([o3 is xn, o3._is_view(), o3.requires_grad, o3._base is xn])
    r.append(err(lambda: o3.add_(1)))
    r.append(err(lambda: o3.add_(L.ones(2, requires_grad=True))))
    xc = x.clone()
    v = V.apply(xc)
    r.append([v._is_view(), v._base is xc, node_name(v)])
    r.append(err(lambda: v.mul_(2)))
    x.grad = None
    v.sum().backward()
    r.append(values(x.grad))
    return r


@scenario(
    [
        [False, True, True, True],
        f"RuntimeError: Output 0 of Two is a view and is being modified inplace.{MULTI_VIEW_SUFFIX}",
        f"RuntimeError: Output 1 of VV is a view and is being modified inplace.{MULTI_VIEW_SUFFIX}",
        [2.0, 2.0],
    ]
)
def several_differentiable_outputs_make_multi_output_views(L: Any) -> Any:
    class Two(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x, x

        @staticmethod
        def backward(ctx: Any, a: Any, b: Any) -> Any:
            return a + b

    class VV(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x[:1], x[1:]

        @staticmethod
        def backward(ctx: Any, a: Any, b: Any) -> Any:
            return L.tensor([1.0, 0.0]) * a.sum() + L.tensor([0.0, 1.0]) * b.sum()

    x = L.ones(2, requires_grad=True)
    p, q = Two.apply(x)
    r = [[p is q, p._is_view(), q._is_view(), p._base is x]]
    r.append(err(lambda: p.add_(1)))
    _, second = VV.apply(x.clone())
    r.append(err(lambda: second.add_(1)))
    p, q = Two.apply(x)
    (p + q).sum().backward()
    r.append(values(x.grad))
    return r


# ---------------------------------------------------------------------------------------------
# mark_dirty
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        "RuntimeError: a leaf Variable that requires grad has been used in an in-place operation.",
        [[2.0, 2.0], 2],
        [True, 2, "DirtyBackward", False],
        [True, None, 2],
        [False, None, 4, False],
        "RuntimeError: a view of a leaf Variable that requires grad is being used in an in-place "
        "operation.",
        "RuntimeError: Output 0 of SplitWithSizes is a view and is being modified inplace."
        + MULTI_VIEW_SUFFIX,
        "RuntimeError: a leaf Variable that requires grad has been used in an in-place operation.",
        f"RuntimeError: Output 0 of VV is a view and is being modified inplace.{CUSTOM_VIEW_SUFFIX}",
        "RuntimeError: mark_dirty can only accept variables, but argument ",
    ]
)
def mark_dirty_rules(L: Any) -> Any:
    class Dirty(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g

    class VV(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x.view_as(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g

    class NotTensor(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.mark_dirty(3)
            return x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g

    leaf = L.ones(2, requires_grad=True)
    r: list[Any] = [err(lambda: Dirty.apply(leaf))]
    r.append([values(leaf), leaf._version])  # raised after forward: the data did change
    xc = leaf.clone()
    v0 = xc._version
    o = Dirty.apply(xc)
    r.append([o is xc, xc._version - v0, node_name(o), o._is_view()])  # add_ + mark_dirty bump
    with L.no_grad():
        xc2 = leaf.clone()
        o = Dirty.apply(xc2)
    r.append([o is xc2, o.grad_fn, o._version])
    with L.no_grad():
        o = Dirty.apply(leaf)  # a leaf that requires grad, in no_grad: a detached alias
    r.append([o is leaf, o.grad_fn, o._version, o.requires_grad])
    a = L.tensor([1.0, 2.0], requires_grad=True)
    r.append(err(lambda: Dirty.apply(a.view_as(a))))
    b, _ = L.tensor([1.0, 2.0], requires_grad=True).split([1, 1], 0)
    r.append(err(lambda: Dirty.apply(b)))
    base = a.clone()
    with L.no_grad():
        v = base[:1]  # made in no_grad: no grad_fn, so a leaf that requires grad
    r.append(err(lambda: Dirty.apply(v)))
    r.append(err(lambda: Dirty.apply(VV.apply(a.clone()))))
    r.append(err(lambda: NotTensor.apply(a)))
    return r


@scenario(
    [
        [True, 1, 0, True],
        ["AsStridedBackward0", True, "torch::autograd::CopySlices", True],
        [1.0, 1.0],
        [0.0, 1.0, 1.0],
    ]
)
def mark_dirty_output_index_and_views(L: Any) -> Any:
    class DirtySecond(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any) -> Any:
            x.add_(y)
            ctx.mark_dirty(x)
            return x * 2, x

        @staticmethod
        def backward(ctx: Any, g: Any, h: Any) -> Any:
            return g * 2 + h, g * 2 + h

    class DirtyAdd(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any) -> Any:
            x.add_(y)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, g

    xx = L.ones(2, requires_grad=True).clone()
    p, q = DirtySecond.apply(xx, L.ones(2, requires_grad=True))
    r: list[Any] = [[q is xx, q.output_nr, p.output_nr, q.grad_fn is p.grad_fn]]
    base = L.zeros(3)
    view = base[1:]  # the base does not require grad; the other input does
    y = L.ones(2, requires_grad=True)
    out = DirtyAdd.apply(view, y)
    r.append([node_name(out), out._base is base, node_name(base), base.requires_grad])
    (base * L.tensor([5.0, 1.0, 1.0])).sum().backward()
    r.append(values(y.grad))
    r.append(values(base))
    return r


def test_mark_dirty_non_input_warns_or_raises() -> None:
    class NonInputView(Function):
        @staticmethod
        def forward(ctx: Any, inp: dispatch.Tensor) -> dispatch.Tensor:
            out = inp.clone().view_as(inp)
            ctx.mark_dirty(out)
            return out

    class NonInput(Function):
        @staticmethod
        def forward(ctx: Any, a: dispatch.Tensor) -> dispatch.Tensor:
            c = 3 * a
            c.add_(1)
            ctx.mark_dirty(c)
            return c

    a = dispatch.ones(2, requires_grad=True).clone()
    with pytest.raises(RuntimeError) as e:
        NonInputView.apply(a)
    assert str(e.value) == MARK_DIRTY_NOT_INPUT
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = NonInput.apply(a)
    assert [(x.category, str(x.message)) for x in w] == [(UserWarning, MARK_DIRTY_NOT_INPUT)]
    assert out.grad_fn.name() == "NonInputBackward"


# ---------------------------------------------------------------------------------------------
# backward's results: count, non-tensor inputs, types, shapes, dtypes
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        "RuntimeError: function WBackward returned an incorrect number of gradients (expected 2, "
        "got 1)",
        None,
        "RuntimeError: function W3Backward returned an incorrect number of gradients (expected 2, "
        "got 3)",
        "RuntimeError: function NTBackward returned a gradient different than None at position 2, "
        "but the corresponding forward input was not a Variable",
        "RuntimeError: expected Variable or None (got int)",
        "RuntimeError: Function SBackward returned an invalid gradient at index 0 - got [3] but "
        "expected shape compatible with [2]",
        "RuntimeError: Function S3Backward returned an invalid gradient at index 0 - got [4, 2, 1] "
        "but expected shape compatible with [2, 3]",
        [[[12.0], [12.0]], True],
        None,
    ]
)
def backward_results_are_validated(L: Any) -> Any:
    def fn(name: str, n_inputs: int, back: Callable[[Any], Any]) -> Any:
        def forward(ctx: Any, x: Any, *rest: Any) -> Any:
            return x * 2

        return type(
            name,
            (L.Function,),
            {"forward": staticmethod(forward), "backward": staticmethod(lambda ctx, g: back(g))},
        )

    x = L.ones(2, requires_grad=True)
    b = L.ones(2, requires_grad=True)
    x2 = L.ones(2, 3, requires_grad=True)
    x21 = L.ones(2, 1, requires_grad=True)
    r = [
        err(lambda: fn("W", 2, lambda g: (g,)).apply(x, b).sum().backward()),
        err(lambda: fn("W2", 2, lambda g: (g, g, None, None)).apply(x, b).sum().backward()),
        err(lambda: fn("W3", 2, lambda g: (g, g, g)).apply(x, b).sum().backward()),
        err(lambda: fn("NT", 2, lambda g: (g, g)).apply(x, 2.0).sum().backward()),
        err(lambda: fn("NotT", 1, lambda g: 3).apply(x).sum().backward()),
        err(lambda: fn("S", 1, lambda g: L.ones(3)).apply(x).sum().backward()),
        err(lambda: fn("S3", 1, lambda g: L.ones(4, 2, 1)).apply(x2).sum().backward()),
    ]
    # a gradient that broadcasts to the input is summed back; its dtype is cast to the input's
    fn("S2", 1, lambda g: L.ones(4, 2, 3, dtype=L.float64)).apply(x21).sum().backward()
    r.append([values(x21.grad), x21.grad.dtype == x21.dtype])
    # an input that does not require grad: its gradient is not validated
    r.append(
        err(lambda: fn("Free", 2, lambda g: (g, L.ones(7))).apply(x, L.ones(2)).sum().backward())
    )
    return r


@scenario(
    [
        "NotImplementedError: You must implement the forward function for custom autograd.Function.",
        "NotImplementedError: You must implement either the backward or vjp method for your custom "
        "autograd.Function to use it with backward mode AD.",
        "RuntimeError: Implementing both 'backward' and 'vjp' for a custom Function is not allowed. "
        "You should only implement one of them.",
        [4.0, 4.0],
        [3.0, 3.0],
        "RuntimeError: Legacy autograd function with non-static forward method is deprecated. "
        "Please use new-style autograd function with static forward method. (Example: "
        "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)",
    ]
)
def function_definition_errors_vjp_and_setup_context(L: Any) -> Any:
    """test_custom_function_error and test_setup_context_when_forward_has_default_args
    (test/test_autograd.py), in part."""

    class BadFw(L.Function):
        @staticmethod
        def backward(ctx: Any, foo: Any) -> Any:
            return foo

    class BadBw(L.Function):
        @staticmethod
        def forward(ctx: Any, foo: Any) -> Any:
            return foo.clone()

    class BadBw2(L.Function):
        @staticmethod
        def forward(ctx: Any, foo: Any) -> Any:
            return foo.clone()

        @staticmethod
        def backward(ctx: Any, foo: Any) -> Any:
            return foo

        @staticmethod
        def vjp(ctx: Any, foo: Any) -> Any:
            return foo

    class WithVjp(L.Function):
        @staticmethod
        def forward(ctx: Any, foo: Any) -> Any:
            return foo * 4

        @staticmethod
        def vjp(ctx: Any, g: Any) -> Any:
            return g * 4

    class SetupContext(L.Function):
        @staticmethod
        def forward(x: Any, y: Any) -> Any:
            return x * y

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> Any:
            ctx.y = inputs[1]

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g * ctx.y, None

    inp = L.ones(2, requires_grad=True)
    r = [
        err(lambda: BadFw.apply(inp)),
        err(lambda: BadBw.apply(inp).sum().backward()),
        err(lambda: BadBw2.apply(inp).sum().backward()),
    ]
    WithVjp.apply(inp).sum().backward()
    r.append(values(inp.grad))
    inp.grad = None
    SetupContext.apply(inp, 3.0).sum().backward()
    r.append(values(inp.grad))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        instance = WithVjp()
    r.append(err(lambda: instance(inp)))
    return r


@scenario(
    [
        [3.0, 3.0],
        "TypeError: forward() missing required argument: 'y' (position 1)",
        "TypeError: forward() got an unexpected keyword argument 'q'",
        "TypeError: forward() got multiple values for argument 'x'",
        "TypeError: apply_with_keyword_arguments.<locals>.K.forward() takes 4 positional "
        "arguments but 5 were given",
    ]
)
def apply_with_keyword_arguments(L: Any) -> Any:
    class K(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any, z: Any) -> Any:
            return x * y + z

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, None, None

    a = L.ones(2, requires_grad=True)
    return [
        values(K.apply(a, z=1.0, y=2.0)),
        err(lambda: K.apply(a, z=1.0)),
        err(lambda: K.apply(a, q=1)),
        err(lambda: K.apply(a, 2.0, x=1)),
        err(lambda: K.apply(a, 2.0, 3.0, 4.0)),
    ]


# ---------------------------------------------------------------------------------------------
# once_differentiable, double backward
# ---------------------------------------------------------------------------------------------
@scenario(
    [
        [False, False],
        [2.0, 2.0],
        True,
        "RuntimeError: trying to differentiate twice a function that was marked with "
        "@once_differentiable",
    ]
)
def once_differentiable_blocks_double_backward(L: Any) -> Any:
    seen = []

    class Once(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @L.once_differentiable
        def backward(ctx: Any, g: Any) -> Any:
            seen.append(L.is_grad_enabled())
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = L.ones(2, requires_grad=True)
    Once.apply(x).sum().backward()
    y = Once.apply(x)
    (g,) = L.grad((y * y).sum(), x, create_graph=True)
    return [seen, values(x.grad), g.requires_grad, err(lambda: g.sum().backward())]


@scenario([[[4.0, 4.0], [4.0, 4.0]], [[4.0, 4.0], [4.0, 4.0]], True, [[1.0, 1.0], [1.0, 1.0]]])
def double_backward_through_a_differentiable_backward(L: Any) -> Any:
    """test_function / _function_test (test/test_autograd.py): with create_graph the custom
    backward's own operations are recorded, so its results can be differentiated again."""

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, tensor1: Any, pyscalar: Any, tensor2: Any) -> Any:
            ctx.pyscalar = pyscalar
            ctx.save_for_backward(tensor1, tensor2)
            return tensor1 + pyscalar * tensor2 + tensor1 * tensor2

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            var1, var2 = ctx.saved_tensors
            return (
                grad_output + grad_output * var2,
                None,
                grad_output * ctx.pyscalar + grad_output * var1,
            )

    x = L.tensor([[2.0, 2.0], [2.0, 2.0]], requires_grad=True)
    y = L.tensor([[3.0, 3.0], [3.0, 3.0]], requires_grad=True)
    result = MyFunction.apply(x, 2, y)
    go = L.ones((), requires_grad=True)
    gx, gy = L.grad(result.sum(), (x, y), go, create_graph=True)
    # gx = go * (1 + y), gy = go * (2 + x); d(sum gx)/dy = go
    (ggy,) = L.grad(gx.sum(), y)
    return [values(gx), values(gy), gx.grad_fn is not None, values(ggy)]


# ---------------------------------------------------------------------------------------------
# Ports of PyTorch's tests (test/test_autograd.py unless noted)
# ---------------------------------------------------------------------------------------------
@scenario([False, None])
def _test_no_grad_python_function(L: Any) -> Any:
    """TestAutograd.test_no_grad_python_function: Python Functions respect grad mode."""
    x = L.ones(5, 5, requires_grad=True)

    class MyOp(L.Function):
        @staticmethod
        def forward(self: Any, x: Any) -> Any:
            return x + 1

        @staticmethod
        def backward(self: Any, dy: Any) -> Any:
            return dy

    with L.no_grad():
        y = MyOp.apply(x)
    return [y.requires_grad, y.grad_fn]


@scenario(
    [
        f"RuntimeError: {NO_GRAD_VIEW}{CUSTOM_VIEW_SUFFIX}",
        f"RuntimeError: {NO_GRAD_VIEW}{CUSTOM_VIEW_SUFFIX}",
        # `a` does not require grad: the unbind view has no grad_fn, hence the no_grad prefix
        f"RuntimeError: {NO_GRAD_VIEW}{MULTI_VIEW_SUFFIX}",
        None,
    ]
)
def _test_inplace_not_requires_grad(L: Any) -> Any:
    """TestAutograd.test_inplace_not_requires_grad."""

    class MyFn(L.Function):
        @staticmethod
        def forward(ctx: Any, inp: Any) -> Any:
            return inp.view_as(inp)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad

    r = []
    # Original Tensor does not require grad; the tensor being written does
    a = L.ones(1, 2)
    b = L.ones(1, requires_grad=True)
    view_a = MyFn.apply(a)

    def iadd() -> None:
        nonlocal view_a
        view_a += b

    r.append(err(iadd))
    # copy_ as well
    a = L.ones(1, 2)
    b = L.ones(1, requires_grad=True)
    view_a = MyFn.apply(a)
    r.append(err(lambda: view_a.copy_(b)))
    # Functions that should throw must properly throw
    a = L.ones(1, 2)
    b = L.ones(1, requires_grad=True)
    view_u = a.unbind()[0]
    r.append(err(lambda: view_u.copy_(b)))
    # Sanity check that views that should work still work
    a = L.ones(1, 2)
    b = L.ones(1, requires_grad=True)
    r.append(err(lambda: a.select(1, 0).copy_(b)))
    return r


@scenario([1, 1, 1, 1, 1, 1, DIRTY_VIEW_MULTI, "RuntimeError: Some elements marked as dirty "
    "during the forward method were not returned as output. The inputs that are modified inplace "
    "must all be outputs of the Function."])  # fmt: skip
def _test_autograd_python_custom_function_inplace(L: Any) -> Any:
    """TestAutograd.test_autograd_python_custom_function_inplace."""
    bw_called = [0]
    r: list[Any] = []

    # I) Single output
    class MyAdder(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any) -> Any:
            a.add_(b)
            ctx.mark_dirty(a)
            return a

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            bw_called[0] += 1
            return grad, grad

    a = L.ones(2, requires_grad=True)
    b = L.ones(2, requires_grad=True)
    # No extra inplace
    c = MyAdder.apply(a.clone(), b)
    c.sum().backward()
    r.append(bw_called[0])
    # With extra inplace on the output
    bw_called[0] = 0
    c = MyAdder.apply(a.clone(), b)
    c += 2
    c.sum().backward()
    r.append(bw_called[0])
    # The input is a view
    bw_called[0] = 0
    c = MyAdder.apply(a.clone().view_as(a), b)
    c.sum().backward()
    r.append(bw_called[0])

    # Should not give non-inputs to mark_dirty
    class MyAdderBad(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any) -> Any:
            c = 3 * a
            c.add_(b)
            ctx.mark_dirty(c)
            return c

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            bw_called[0] += 1
            grad = 3 * grad
            return grad, grad

    a = L.ones(2, requires_grad=True)
    b = L.ones(2, requires_grad=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        MyAdderBad.apply(a.clone(), b)
    r.append(len(w))

    # II) Multiple outputs
    class MyBadAdder(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any) -> Any:
            a.add_(b)
            ctx.mark_dirty(a)
            return a, a + b

        @staticmethod
        def backward(ctx: Any, ga: Any, gab: Any) -> Any:
            bw_called[0] += 1
            return ga + gab, ga + gab

    # No extra inplace
    bw_called[0] = 0
    c, d = MyBadAdder.apply(a.clone(), b)
    (c * d).sum().backward()
    r.append(bw_called[0])
    # With extra inplace on the output
    bw_called[0] = 0
    c, d = MyBadAdder.apply(a.clone(), b)
    c += 2
    (c * d).sum().backward()
    r.append(bw_called[0])
    # The input is a view
    r.append(err(lambda: MyBadAdder.apply(a.clone().view_as(a), b)))

    # III) Inplace + other op
    class MyOutPlaceAdder(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any) -> Any:
            a.add_(b)
            ctx.mark_dirty(a)
            return a.clone(), a + b

        @staticmethod
        def backward(ctx: Any, ga: Any, gab: Any) -> Any:
            bw_called[0] += 1
            return ga + gab, ga + 2 * gab

    # We don't reuse the input
    def fn(a: Any, b: Any) -> Any:
        orig_a = a.clone().view_as(a)
        c, d = MyOutPlaceAdder.apply(orig_a, b)
        return (c * d).sum()

    r.append(err(lambda: fn(a, b)))
    return r


@scenario(
    "RuntimeError: Output 0 of SplitWithSizes is a view and is being modified inplace."
    + MULTI_VIEW_SUFFIX
)
def _test_custom_function_inplace_on_non_default_view(L: Any) -> Any:
    """TestAutograd.test_custom_function_inplace_on_non_default_view."""

    class Func(L.Function):
        @staticmethod
        def forward(ctx: Any, inp: Any) -> Any:
            inp.add_(1)
            ctx.mark_dirty(inp)
            return inp

        @staticmethod
        def backward(ctx: Any, gO: Any) -> Any:
            pass

    a = L.tensor([1.0, 2.0], requires_grad=True)
    a.clone()
    b, _c = a.split([1, 1], 0)  # split_with_sizes
    return err(lambda: Func.apply(b))


@scenario(
    "RuntimeError: a view of a leaf Variable that requires grad is being used in an in-place "
    "operation."
)
def _test_custom_function_inplace_on_view_of_leaf(L: Any) -> Any:
    """TestAutograd.test_custom_function_inplace_on_view_of_leaf."""

    class Func(L.Function):
        @staticmethod
        def forward(ctx: Any, inp: Any) -> Any:
            inp.add_(1)
            ctx.mark_dirty(inp)
            return inp

        @staticmethod
        def backward(ctx: Any, gO: Any) -> Any:
            pass

    a = L.tensor([1.0, 2.0], requires_grad=True)
    b = a.view_as(a)
    return err(lambda: Func.apply(b))


@scenario(f"RuntimeError: {MARK_DIRTY_NOT_INPUT}")
def _test_custom_function_mark_output_view_of_intermediate(L: Any) -> Any:
    """TestAutograd.test_custom_function_mark_output_view_of_intermediate."""

    class Func(L.Function):
        @staticmethod
        def forward(ctx: Any, inp: Any) -> Any:
            out = inp.clone().view_as(inp)
            ctx.mark_dirty(out)
            return out

        @staticmethod
        def backward(ctx: Any, gO: Any) -> Any:
            pass

    a = L.tensor([1.0], requires_grad=True)
    a_clone = a.clone()
    return err(lambda: Func.apply(a_clone))


@scenario([True, True, True, None, f"RuntimeError: {NO_GRAD_VIEW}{CUSTOM_VIEW_SUFFIX}"])
def _test_custom_function_return_view_in_nograd(L: Any) -> Any:
    """TestAutograd.test_custom_function_return_view_in_nograd."""

    class Alias(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x[:]

        @staticmethod
        def backward(ctx: Any, gx: Any) -> Any:
            return gx

    inp = L.ones(2, requires_grad=True)
    with L.no_grad():
        output = Alias.apply(inp)
    with L.no_grad():
        expected_output = inp[:]
    # Calling the custom function should operate as if we called an equivalent op
    return [
        output.requires_grad == expected_output.requires_grad,
        output.requires_grad,
        output._is_view(),
        output.grad_fn,
        err(lambda: output.zero_()),  # in-place modification on the view throws
    ]


@scenario([[True, True], [[27.0, 27.0, 27.0], [54.0, 54.0, 54.0]]])
def _test_grad_mode_restored_reentrant(L: Any) -> Any:
    """TestAutograd.test_grad_mode_restored_reentrant (a backward that calls autograd.grad)."""
    checks = []

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, inp: Any) -> Any:
            return inp.clone()

        @staticmethod
        def backward(ctx: Any, go: Any) -> Any:
            original = L.is_grad_enabled()
            with L.enable_grad():
                foo = L.ones(*go.shape, requires_grad=True) * 3
                (grad,) = L.grad(foo**3, foo, grad_outputs=go)
                inner = L.is_grad_enabled()
            checks.append(inner and L.is_grad_enabled() == original)
            return grad

    inp = L.ones(3, requires_grad=True)
    # Case where original==False
    MyFunction.apply(inp).sum().backward()
    first = values(inp.grad)
    # Case where original==True
    MyFunction.apply(inp).sum().backward(create_graph=True)
    return [checks, [first, values(inp.grad)]]


@scenario(
    [
        1,
        "RuntimeError: Output 0 of ComplexView is a view and is being modified inplace."
        + CUSTOM_VIEW_SUFFIX,
    ]
)
def _test_autograd_multiple_views_python(L: Any) -> Any:
    """TestAutograd.test_autograd_multiple_views_python."""
    bw_called = [0]

    class ComplexView(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, idx: int) -> Any:
            res = a.narrow(0, idx, 1)
            res = a.select(0, idx)
            ctx.save_for_backward(a)
            ctx.idx = idx
            return res

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            bw_called[0] += 1
            (a,) = ctx.saved_tensors
            res = L.zeros(*a.shape)
            res.select(0, ctx.idx).copy_(grad)
            return res, None

    a = L.ones(2, requires_grad=True)
    out = ComplexView.apply(a.clone(), 1)
    out.sum().backward()
    out = ComplexView.apply(a.clone(), 1)

    def iadd() -> None:
        nonlocal out
        out += 1

    return [bw_called[0], err(iadd)]


@scenario([[[2.0], [2.0]], [2.0, 2.0]])
def _test_function_returns_input(L: Any) -> Any:
    """TestAutograd.test_function_returns_input."""

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad * 2

    grads = []
    for shape in [(1,), ()]:
        v = L.ones(shape, requires_grad=True)
        MyFunction.apply(v).backward()
        first = values(v.grad)
        with L.no_grad():
            v.grad.zero_()
        MyFunction.apply(v.clone()).backward()
        grads.append([first, values(v.grad)])
    return grads


@scenario([[7, False, True], [[3.0, 3.0], [2.0, 2.0], None]])
def _test_custom_function_non_tensor_inputs_outputs(L: Any) -> Any:
    """TestAutograd.test_custom_function_non_tensor_inputs_outputs (without gradcheck)."""
    checks = []

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, t1: Any, t2: Any, scale: Any, t3: Any) -> Any:
            t4 = t1 + t2 * t3
            t5 = t1 * t2 + t3
            t4 *= scale
            t5 *= scale
            ctx.scale = scale
            ctx.save_for_backward(t1, t2, t3)
            return scale, t4, None, True, t5, "bar", t1

        @staticmethod
        @L.once_differentiable
        def backward(ctx: Any, *grads: Any) -> Any:
            # one grad per output: None for each non-tensor output
            checks.append(
                [len(grads), grads[1] is None, all(grads[i] is None for i in (0, 2, 3, 5))]
            )
            scale = ctx.scale
            var1, var2, var3 = ctx.saved_tensors
            return (
                grads[1] * scale + grads[4] * var2 * scale + grads[6],
                grads[1] * var3 * scale + grads[4] * var1 * scale,
                None,
                grads[1] * var2 * scale + grads[4] * scale,
            )

    t1 = L.ones(2, dtype=L.float64, requires_grad=True)
    t2 = L.ones(2, dtype=L.float64, requires_grad=True)
    t3 = L.ones(2, dtype=L.float64)
    res = MyFunction.apply(t1, t2, 1, t3)
    assert (res[0], res[2], res[3], res[5]) == (1, None, True, "bar")
    assert values(res[6]) == values(t1)
    L.backward([res[1].sum(), res[4].sum(), res[6].sum()])
    return [checks[0], [values(t1.grad), values(t2.grad), t3.grad]]


@scenario(["IdOneOutput", "IdTwoOutput", "ViewOfTemp"])
def _test_autograd_simple_views_python(L: Any) -> Any:
    """TestAutograd._do_test_autograd_simple_views_python (double; without gradcheck and
    without ``ctx._is_pure_view``, which dispatchsim does not model): which combinations
    raise, with which text, and how often the custom backward runs."""
    bw_called = [0]

    class IdOneOutput(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, make_view: bool) -> Any:
            return a.narrow(0, 0, 2) if make_view else a.clone()

        @staticmethod
        def backward(ctx: Any, ga: Any) -> Any:
            bw_called[0] += 1
            return ga, None

    class IdTwoOutput(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any, make_view: bool) -> Any:
            a = a.narrow(0, 0, 2) if make_view else a.clone()
            return a, a + b

        @staticmethod
        def backward(ctx: Any, ga: Any, gab: Any) -> Any:
            bw_called[0] += 1
            return ga + gab, gab, None

    class ViewOfTemp(L.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, make_view: bool) -> Any:
            ctx.save_for_backward(a)
            a = a.narrow(0, 0, 2) if make_view else a.clone()
            b = a.clone()
            return b.select(0, 0)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            bw_called[0] += 1
            (a,) = ctx.saved_tensors
            res = L.zeros(*a.shape, dtype=a.dtype)
            res.select(0, 0).copy_(grad)
            return res, None

    expected = {
        "one_output": f"Output 0 of IdOneOutput is a view and is being modified inplace.{CUSTOM_VIEW_SUFFIX}",
        "two_output": f"Output 0 of IdTwoOutput is a view and is being modified inplace.{MULTI_VIEW_SUFFIX}",
        "view_of_temp": f"Output 0 of ViewOfTemp is a view and is being modified inplace.{CUSTOM_VIEW_SUFFIX}",
    }
    seen = []
    for fn_id in ["one_output", "two_output", "view_of_temp"]:
        for inplace in [True, False]:
            for make_view in [True, False]:
                output_is_a_view = make_view or fn_id == "view_of_temp"

                def fn(
                    a: Any,
                    b: Any,
                    fn_id: str = fn_id,
                    inplace: bool = inplace,
                    make_view: bool = make_view,
                ) -> Any:
                    a, b = a.clone(), b.clone()
                    if fn_id == "two_output":
                        tmp1, tmp2 = IdTwoOutput.apply(a, b, make_view)
                        if inplace:
                            tmp1 += 3
                            tmp2 += 3
                        else:
                            tmp1 = tmp1 + 3
                            tmp2 = tmp2 + 3
                        tmp = tmp1 * tmp2
                    else:
                        if fn_id == "one_output":
                            tmp = IdOneOutput.apply(a, make_view)
                        else:
                            tmp = ViewOfTemp.apply(a + b, make_view)
                        if inplace:
                            tmp += 3
                        else:
                            tmp = tmp + 3
                    return tmp.sum()

                a = L.ones(2, dtype=L.float64, requires_grad=True)
                b = L.ones(2, dtype=L.float64, requires_grad=True)
                bw_called[0] = 0
                will_raise = inplace and output_is_a_view
                e = err(lambda fn=fn, a=a, b=b: fn(a, b).backward())
                if will_raise:
                    assert e == f"RuntimeError: {expected[fn_id]}", (fn_id, e)
                    assert bw_called[0] == 0
                    seen.append(e.split(" ")[4])
                else:
                    assert e is None, (fn_id, inplace, make_view, e)
                    assert bw_called[0] == 1
    return sorted(set(seen))


@scenario([[[18.0, 18.0, 18.0], [18.0, 18.0, 18.0], [18.0, 18.0, 18.0]], False])
def inference_mode_test_custom_function(L: Any) -> Any:
    """InferenceModeTest.TestCustomFunction (test/cpp/api/inference_mode.cpp): a custom
    Function that saves tensors works in inference mode (grad mode is off, so nothing is
    saved and no inference tensor is refused)."""

    class MyFunction(L.Function):
        @staticmethod
        def forward(ctx: Any, var1: Any, mul: int, var2: Any) -> Any:
            ctx.mul = mul
            ctx.save_for_backward(var1, var2)
            return var1 + mul * var2 + var1 * var2

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            var1, var2 = ctx.saved_tensors
            return (
                grad_output + grad_output * var2,
                None,
                grad_output * ctx.mul + grad_output * var1,
            )

    with L.inference_mode():
        var1 = L.ones(3, 3, requires_grad=True) * 3
        var2 = var1.clone()
        y = MyFunction.apply(var1, 2, var2)
        expected = var1 + 2 * var2 + var1 * var2
        assert values(y) == values(expected)
        return [values(y), y.requires_grad]


# ---------------------------------------------------------------------------------------------
# Running the scenarios
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str) -> None:
    assert SCENARIOS[name](DS) == EXPECTED[name]


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_torch(name: str) -> None:
    torch_result = SCENARIOS[name](torch_adapter())
    assert torch_result == EXPECTED[name]
    assert SCENARIOS[name](DS) == torch_result


# ---------------------------------------------------------------------------------------------
# dispatchsim-specific checks (metadata torch does not expose the same way)
# ---------------------------------------------------------------------------------------------
def test_creation_meta_of_outputs() -> None:
    class Id(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            return x

    class Pair(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> tuple[dispatch.Tensor, dispatch.Tensor]:
            return x[:1], x * 2

    x = dispatch.ones(2, requires_grad=True)
    assert Id.apply(x)._creation_meta is CreationMeta.IN_CUSTOM_FUNCTION
    with modes.no_grad():
        assert not Id.apply(x)._is_view()  # a detached alias, not a view
    assert Id.apply(dispatch.ones(2))._creation_meta is CreationMeta.IN_CUSTOM_FUNCTION
    n = dispatch.ones(2)
    with modes.inference_mode():
        # a view made in inference mode, then marked as a custom-Function view all the same
        assert Id.apply(n)._creation_meta is CreationMeta.IN_CUSTOM_FUNCTION
        assert not Id.apply(x)._is_view()  # requires grad, nothing recorded: detached alias
    view, other = Pair.apply(x)
    assert view._creation_meta is CreationMeta.MULTI_OUTPUT_NODE and not other._is_view()
    # the alias shares the input's version counter
    out = Id.apply(x)
    assert out._version_counter is x._version_counter


def test_dirty_inference_tensor() -> None:
    class Dirty(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            x.add_(1)
            ctx.mark_dirty(x)
            return x

    with modes.inference_mode():
        t = dispatch.ones(2)
        assert Dirty.apply(t) is t  # no version counter to bump, no error inside inference mode
    assert t.tolist() == [2.0, 2.0]


def test_backward_graph_of_a_dirty_view_input() -> None:
    """The base of a dirty view input gets CopySlices around the Function's node; the
    gradient reaching the base's history is the Function's on the viewed part, identity
    elsewhere."""

    class Scale(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            x.mul_(3)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> dispatch.Tensor:
            return g * 3

    leaf = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    base = leaf.clone()
    out = Scale.apply(base[1:])
    assert base.grad_fn.name() == "torch::autograd::CopySlices"
    assert out.grad_fn.name() == "AsStridedBackward0"
    assert base.tolist() == [1.0, 6.0, 9.0]
    base.sum().backward()
    assert leaf.grad is not None and leaf.grad.tolist() == [1.0, 3.0, 3.0]


def test_once_differentiable_results_have_an_error_node() -> None:
    class Once(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx: Any, g: dispatch.Tensor) -> dispatch.Tensor:
            return g * 2

    x = dispatch.ones(2, requires_grad=True)
    y = Once.apply(x)
    (g,) = autograd.grad((y * y).sum(), x, create_graph=True)
    err_node = g.grad_fn
    assert err_node.name() == "torch::autograd::Error"
    ((acc, _),) = err_node.next_functions
    assert acc.name() == "torch::autograd::AccumulateGrad"


def test_tls_restored_when_forward_raises() -> None:
    class Boom(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            raise ValueError("boom")

    x = dispatch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="boom"):
        Boom.apply(x)
    assert modes.is_grad_enabled()


def test_function_as_an_autograd_kernel_with_keyword_only_argument() -> None:
    """A Function registered as an operator's Autograd kernel: the dispatcher passes
    keyword-only arguments by keyword, which apply() maps onto forward's parameters."""
    ns = "t_custom_function_kernel"
    calls: list[str] = []

    class Scale(Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor, alpha: float) -> dispatch.Tensor:
            ctx.saved_data["alpha"] = alpha
            with modes.AutoDispatchBelowADInplaceOrView():
                out: dispatch.Tensor = getattr(dispatch.ops, ns).scale(x, alpha=alpha)
            return out

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> Any:
            return g * ctx.saved_data["alpha"], None

    def cpu(x: dispatch.Tensor, *, alpha: float) -> dispatch.Tensor:
        calls.append("cpu")
        return dispatch.tensor(x.detach().numpy() * alpha)

    with dispatch.Library(ns, "DEF") as lib:
        lib.define("scale(Tensor x, *, float alpha) -> Tensor")
        lib.impl("scale", cpu, "CPU")
        lib.impl("scale", Scale.apply, "Autograd")
        x = dispatch.ones(3, requires_grad=True)
        y = getattr(dispatch.ops, ns).scale(x, alpha=4.0)
        assert y.grad_fn.name() == "ScaleBackward" and calls == ["cpu"]
        y.sum().backward()
        assert x.grad is not None
        np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])
