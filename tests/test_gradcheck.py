"""autograd.gradcheck / gradgradcheck, and every derivative formula checked with them.

* unit tests of the checker itself: it passes correct functions, fails a wrong
  backward (a custom operator whose Autograd kernel is wrong, a formula of the
  derivative table replaced by a wrong one), returns False with
  ``raise_exception=False``, treats float32 inputs as PyTorch does;
* ``CASES``: one hypothesis case per entry of ``kernels.autograd.derivatives.DERIVATIVES``
  (a new formula without a case fails ``test_every_derivative_has_a_case``); each case
  checks that its operator's node is really in the graph, then runs gradcheck and
  gradgradcheck;
* an oracle test: each operator's ``grad_fn`` name against torch 2.13's.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dispatch
from dispatch import Library
from kernels import autograd
from kernels.autograd import CopySlices, GradcheckError, Node, gradcheck, gradgradcheck
from kernels.autograd.derivatives import DERIVATIVES
from kernels.autograd.graph import collect_next_edges
from kernels.autograd.kernel import node_class
from tests.strategies import matmul_shapes, reduction_dims

D = dispatch.float64
A = dispatch.ops.aten
T = dispatch.Tensor

_ns_counter = iter(range(10**9))


def fresh_ns(tag: str) -> str:
    return f"t_gradcheck_{tag}_{next(_ns_counter)}"


def leaf(a: Any, requires_grad: bool = True) -> T:
    return dispatch.tensor(np.asarray(a, dtype=np.float64), dtype=D, requires_grad=requires_grad)


# -- the checker itself ---------------------------------------------------------------------------


def test_gradcheck_passes_correct_functions():
    x = leaf([[0.3, -1.2, 2.0], [0.5, 0.7, -0.1]])
    y = leaf([1.5, -0.5, 0.25])
    assert gradcheck(lambda a, b: (a * b).sin().sum(dim=1), (x, y)) is True
    assert gradcheck(lambda a: a.exp(), x) is True  # a bare tensor input
    assert gradcheck(lambda a, b: (a @ b, a.tanh()), (x, y)) is True  # several outputs
    assert gradgradcheck(lambda a, b: (a * b).sin().sum(dim=1), (x, y)) is True
    assert gradcheck(lambda a, b: (a * b).sin(), (x, y), fast_mode=True) is True
    assert gradgradcheck(lambda a, b: (a * b).sin(), (x, y), fast_mode=True) is True
    assert gradgradcheck(lambda a: a.exp() * a, x, gen_non_contig_grad_outputs=True) is True


def test_gradcheck_leaves_inputs_untouched():
    x = leaf([[0.3, -1.2], [0.5, 0.7]])
    before = x.detach().numpy().copy()
    v = x._version
    assert gradcheck(lambda a: a.t() * a, x)
    assert gradgradcheck(lambda a: a.t() * a, x)
    assert np.array_equal(x.detach().numpy(), before)
    assert x._version == v
    assert x.grad is None


def test_gradcheck_input_that_does_not_require_grad_is_not_perturbed():
    x = leaf([0.3, -1.2])
    w = leaf([2.0, 3.0], requires_grad=False)
    calls = []

    def fn(a, b):
        calls.append(1)
        return a * b

    assert gradcheck(fn, (x, w), check_undefined_grad=False)
    # one call for the outputs, then two per element of x and none for w
    assert len(calls) == 1 + 2 * 2


def test_gradcheck_output_that_is_a_view_of_the_input():
    x = leaf([[0.3, -1.2, 2.0], [0.5, 0.7, -0.1]])
    assert gradcheck(lambda a: a.t(), x)
    assert gradcheck(lambda a: a.unbind(1), x)
    assert gradgradcheck(lambda a: a[1], x)


def test_gradcheck_rejects_inputs_without_grad_and_overlapping_inputs():
    with pytest.raises(ValueError, match=r"^gradcheck expects at least one input tensor"):
        gradcheck(lambda a: a * 2, leaf([1.0], requires_grad=False))
    expanded = leaf([1.0], requires_grad=False).expand(3).requires_grad_()
    with pytest.raises(
        RuntimeError, match=r"^The 0th input has a dimension with stride 0\. gradcheck only"
    ):
        gradcheck(lambda a: a * 2, expanded)


def test_float32_input_warns_and_fails_like_torch():
    x = dispatch.tensor([1.0, 2.0], requires_grad=True)  # float32
    msg = (
        "Input #0 requires gradient and is not a double precision floating point or complex. "
        "This check will likely fail if all the inputs are not of double precision floating "
        "point or complex. "
    )
    with (
        pytest.warns(UserWarning, match=re.escape(msg)) as rec,
        pytest.raises(GradcheckError) as info,
    ):
        gradcheck(lambda a: a * a, x)
    assert rec[0].filename == __file__  # the warning points at the caller
    # torch 2.13 gives exactly this text for the same float32 computation
    assert str(info.value) == (
        "Jacobian mismatch for output 0 with respect to input 0,\n"
        "numerical:tensor([[1.9670, 0.0000],\n        [0.0000, 3.8147]])\n"
        "analytical:tensor([[2., 0.],\n        [0., 4.]])\n"
    )
    with pytest.warns(UserWarning, match="Input #0 requires gradient"):
        assert gradcheck(lambda a: a * a, x, raise_exception=False) is False
    # with tolerances that fit float32 it passes, still warning
    with pytest.warns(UserWarning, match="Input #0 requires gradient"):
        assert gradcheck(lambda a: a * a, x, eps=1e-2, atol=1e-2, rtol=1e-2)
    # a float64 input does not warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(lambda a: a * a, leaf([1.0, 2.0]))


def _straight_through(value: T, x: T, slope: float) -> T:
    """``value`` forward, ``slope`` * grad backward (a deliberately chosen backward)."""
    return value.detach() + (x - x.detach()) * slope


def test_custom_op_with_a_wrong_backward_fails():
    ns = fresh_ns("wrong")
    with Library(ns, "DEF") as lib:
        lib.define("mysin(Tensor x) -> Tensor")
        op = getattr(dispatch.ops, ns).mysin.default
        lib.impl(
            "mysin", lambda x: dispatch.tensor(np.sin(x.detach().numpy()), dtype=x.dtype), "CPU"
        )

        def wrong_autograd(ks, x):
            out = op.redispatch(ks & dispatch.after_autograd_keyset, x)
            return _straight_through(out, x, 2.0)  # d sin(x)/dx is cos(x), not 2

        lib.impl("mysin", wrong_autograd, "Autograd", with_keyset=True)
        x = leaf([0.5, -1.0, 2.0])
        with pytest.raises(GradcheckError) as info:
            gradcheck(op, x)
        text = str(info.value)
        assert text.startswith(
            "Jacobian mismatch for output 0 with respect to input 0,\nnumerical:"
        )
        assert "\nanalytical:tensor([[2., 0., 0.],\n" in text
        assert text.endswith("dtype=dispatch.float64)\n")
        assert gradcheck(op, x, raise_exception=False) is False
        # gradgradcheck differentiates the (wrong) backward consistently: it checks second
        # derivatives only, as torch's does
        assert gradgradcheck(op, x) is True

        # the right backward passes
        def right_autograd(ks, x):
            out = op.redispatch(ks & dispatch.after_autograd_keyset, x)
            return out.detach() + (x - x.detach()) * x.detach().cos()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # re-registering a kernel warns
            lib.impl("mysin", right_autograd, "Autograd", with_keyset=True)
        assert gradcheck(op, x) is True
        # ... to first order only: its backward does not depend on x differentiably
        with pytest.raises(
            GradcheckError, match=r"^Jacobian mismatch for output 0 with respect to input 0,"
        ):
            gradgradcheck(op, x)


def test_custom_op_whose_autograd_kernel_attaches_nothing_fails():
    ns = fresh_ns("nograd")
    with Library(ns, "DEF") as lib:
        lib.define("mysin(Tensor x) -> Tensor")
        op = getattr(dispatch.ops, ns).mysin.default
        lib.impl(
            "mysin", lambda x: dispatch.tensor(np.sin(x.detach().numpy()), dtype=x.dtype), "CPU"
        )
        lib.impl(
            "mysin",
            lambda ks, x: op.redispatch(ks & dispatch.after_autograd_keyset, x),
            "Autograd",
            with_keyset=True,
        )
        x = leaf([0.5, -1.0])
        assert not op(x).requires_grad
        with pytest.raises(
            GradcheckError, match=r"^Numerical gradient for function expected to be zero$"
        ):
            gradcheck(op, x)
        assert gradcheck(op, x, raise_exception=False) is False
        assert gradcheck(op, x, fast_mode=True, raise_exception=False) is False
        # a function that really is constant passes the same check
        assert gradcheck(lambda a: (a * 0).detach() + 1, x) is True


def _replace_formula(monkeypatch: pytest.MonkeyPatch, op: str, formula: Callable[..., Any]) -> None:
    """Swap the formula a node class of the derivative table runs (undone by monkeypatch)."""
    cls = node_class(DERIVATIVES[op])
    monkeypatch.setattr(cls, "derivative", attrs.evolve(DERIVATIVES[op], formula=formula))


def test_a_wrong_formula_in_the_derivative_table_fails(monkeypatch):
    x = leaf([0.5, -1.0, 2.0])
    assert gradcheck(lambda a: a.sin(), x) and gradgradcheck(lambda a: a.sin(), x)
    _replace_formula(monkeypatch, "sin", lambda c, g: (g[0] * c.saved("self").sin(),))
    with pytest.raises(
        GradcheckError, match=r"^Jacobian mismatch for output 0 with respect to input 0,\n"
    ):
        gradcheck(lambda a: a.sin(), x)
    assert gradcheck(lambda a: a.sin(), x, fast_mode=True, raise_exception=False) is False


def test_a_formula_right_only_to_first_order_fails_gradgradcheck(monkeypatch):
    x = leaf([0.5, -1.0, 2.0])
    # right values, but computed from a detached input: its own derivative is lost
    _replace_formula(monkeypatch, "sin", lambda c, g: (g[0] * c.saved("self").detach().cos(),))
    assert gradcheck(lambda a: a.sin(), x)
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda a: a.sin(), x)
    # input 0 is x (the first derivative's dependence on it is missing)
    assert str(info.value).startswith(
        "Jacobian mismatch for output 0 with respect to input 0,\nnumerical:"
    )


def test_a_formula_that_ignores_grad_output_fails(monkeypatch):
    x = leaf([0.5, -1.0])
    _replace_formula(monkeypatch, "exp", lambda c, g: (c.result + g[0] * 0,))
    with pytest.raises(GradcheckError):
        gradcheck(lambda a: a.exp(), x)


def test_a_formula_with_the_wrong_shape_fails(monkeypatch):
    x = leaf([[0.5, -1.0]])
    _replace_formula(monkeypatch, "neg", lambda c, g: (g[0].neg().view(-1),))
    # gradcheck's own size check, or the engine's (validate_outputs) if it checks first
    with pytest.raises(
        RuntimeError,
        match=r"^(Analytical gradient has incorrect size$|Function NegBackward0 returned an "
        r"invalid gradient at index 0 - got \[2\] but expected shape compatible with \[1, 2\])",
    ):
        gradcheck(lambda a: a.neg(), x)


class _FragileBackward(Node):
    """A hand-written node (right derivative of ``2 * x``) that cannot take a missing
    gradient: ``None * 2`` raises TypeError."""

    _name = "FragileBackward"

    def apply(self, grads):
        return [grads[0] * 2.0]


class _RobustBackward(_FragileBackward):
    _name = "RobustBackward"

    def apply(self, grads):
        return [None if grads[0] is None else grads[0] * 2.0]


def _twice_with(node_cls: type[Node]) -> Callable[[T], T]:
    def fn(x: T) -> T:
        out = x.detach() * 2.0
        out._grad_fn = node_cls(collect_next_edges([x]))
        out._output_nr = 0
        return out

    return fn


def test_undefined_output_gradient_must_be_handled():
    x = leaf([0.5, -1.0, 2.0])
    assert gradcheck(_twice_with(_RobustBackward), x)
    fragile = _twice_with(_FragileBackward)
    with (
        pytest.warns(UserWarning, match=r"^Backwards compatibility: New undefined gradient"),
        pytest.raises(GradcheckError, match=r"^Expected backward function to handle undefined"),
    ):
        gradcheck(fragile, x)
    assert gradcheck(fragile, x, check_undefined_grad=False)


def test_multi_output_formula_must_take_missing_gradients(monkeypatch):
    """The gradient of one output of unbind leaves the others' undefined (None): a formula
    that assumes them all fails gradcheck."""
    x = leaf([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]])
    assert gradcheck(lambda a: a.unbind(0), x)

    def fragile_unbind(c, g):
        z = dispatch.zeros(2, 3, dtype=D)
        z.select(0, 0).copy_(g[0])
        z.select(0, 1).copy_(g[1])
        return (z,)

    _replace_formula(monkeypatch, "unbind.int", fragile_unbind)
    with pytest.raises(TypeError, match="got NoneType"):
        gradcheck(lambda a: a.unbind(0), x)

    def both(a: T) -> T:  # every output used: no gradient is missing
        first, second = a.unbind(0)
        return first * second

    assert gradcheck(both, x, check_undefined_grad=False)


def test_nondeterministic_backward_is_reported(monkeypatch):
    x = leaf([0.5, -1.0])
    state = {"n": 0}

    def flaky(c, g):
        state["n"] += 1
        return (g[0] * c.saved("self").cos() * (1 + 1e-9 * state["n"]),)

    _replace_formula(monkeypatch, "sin", flaky)
    with pytest.raises(GradcheckError, match=r"^Backward is not reentrant"):
        gradcheck(lambda a: a.sin(), x)
    assert gradcheck(lambda a: a.sin(), x, nondet_tol=1e-6)


def test_unsupported_modes_are_refused():
    x = leaf([1.0])
    with pytest.raises(NotImplementedError):
        gradcheck(lambda a: a * 2, x, check_forward_ad=True)
    with pytest.raises(NotImplementedError):
        gradcheck(lambda a: a * 2, x, check_batched_grad=True)
    with pytest.raises(AssertionError):
        gradcheck(lambda a: a * 2, x, check_backward_ad=False)


def test_fast_mode_failure_message_recomputes_slow_mode():
    ns = fresh_ns("fast")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        op = getattr(dispatch.ops, ns).f.default
        lib.impl("f", lambda x: dispatch.tensor(x.detach().numpy() * 3, dtype=x.dtype), "CPU")
        lib.impl(
            "f",
            lambda ks, x: _straight_through(
                op.redispatch(ks & dispatch.after_autograd_keyset, x), x, 2.0
            ),
            "Autograd",
            with_keyset=True,
        )
        with pytest.raises(GradcheckError) as info:
            gradcheck(op, leaf([0.5, -1.0]), fast_mode=True)
    text = str(info.value)
    assert text.startswith("Jacobian mismatch for output 0 with respect to input 0,\nnumerical:")
    assert "Below, we recompute numerical and analytical jacobians in slow mode:" in text
    assert re.search(r"The max per-element difference \(slow mode\) is: (1\.0|0\.99999)", text)


# -- every derivative formula -----------------------------------------------------------------------

SMALL = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
NONSCALAR = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)

ELEMENTS = {
    "any": st.floats(-2, 2, allow_nan=False, allow_subnormal=False),
    "pos": st.floats(0.5, 2, allow_nan=False),
    "nonzero": st.floats(0.5, 2, allow_nan=False) | st.floats(-2, -0.5, allow_nan=False),
    "away0": st.floats(0.1, 2, allow_nan=False) | st.floats(-2, -0.1, allow_nan=False),
}


def array(draw: st.DrawFn, shape: tuple[int, ...], kind: str = "any") -> np.ndarray:
    return draw(hnp.arrays(np.float64, shape, elements=ELEMENTS[kind]))


def requires(draw: st.DrawFn, n: int) -> list[bool]:
    """Which of ``n`` inputs require grad: at least one (so ``needs(i)`` is exercised)."""
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if not any(mask):
        mask[draw(st.integers(0, n - 1))] = True
    return mask


def leaves(arrays: list[np.ndarray], mask: list[bool]) -> tuple[T, ...]:
    return tuple(leaf(a, rg) for a, rg in zip(arrays, mask))


@st.composite
def broadcast_to(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape`` (fewer leading dims, some sides 1)."""
    n = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else s for s in shape[len(shape) - n :])


@st.composite
def broadcast_pair(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = draw(SMALL)
    other = draw(broadcast_to(shape))
    return (shape, other) if draw(st.booleans()) else (other, shape)


Built = tuple[Callable[..., Any], tuple[T, ...]]


@attrs.frozen
class Case:
    """How to gradcheck one entry of DERIVATIVES: ``build`` draws ``(fn, inputs)``."""

    build: st.SearchStrategy[Built]
    kind: str = "function"  # how the op is reached, for the coverage table


CASES: dict[str, Case] = {}


def case(*ops: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for op in ops:
            assert op not in CASES, op
            CASES[op] = Case(st.composite(fn)(op), **kw)
        return fn

    return deco


# pointwise binary: broadcasting both ways, alpha, which inputs require grad
BINARY: dict[str, Callable[[T, T, Any], T]] = {
    "add.Tensor": lambda a, b, alpha: a.add(b, alpha=alpha),
    "sub.Tensor": lambda a, b, alpha: a.sub(b, alpha=alpha),
    "mul.Tensor": lambda a, b, alpha: a * b,
    "div.Tensor": lambda a, b, alpha: a / b,
    "pow.Tensor_Tensor": lambda a, b, alpha: a.pow(b),
    "add_.Tensor": lambda a, b, alpha: a.clone().add_(b, alpha=alpha),
    "sub_.Tensor": lambda a, b, alpha: a.clone().sub_(b, alpha=alpha),
    "mul_.Tensor": lambda a, b, alpha: a.clone().mul_(b),
    "div_.Tensor": lambda a, b, alpha: a.clone().div_(b),
    "pow_.Tensor": lambda a, b, alpha: a.clone().pow_(b),
}
ALPHAS = st.sampled_from([1, 2, -0.5, 1.5])


@case(*BINARY)
def _binary(draw: st.DrawFn, op: str) -> Built:
    if "_." in op:  # in place: other broadcasts *to* self
        sa = draw(SMALL)
        sb = draw(broadcast_to(sa))
    else:
        sa, sb = draw(broadcast_pair())
    kind_a = "pos" if op.startswith("pow") else "any"
    kind_b = "nonzero" if op.startswith("div") else "any"
    arrays = [array(draw, sa, kind_a), array(draw, sb, kind_b)]
    alpha = draw(ALPHAS)
    f = BINARY[op]
    return (lambda a, b: f(a, b, alpha)), leaves(arrays, requires(draw, 2))


SCALAR: dict[str, Callable[[T, Any, Any], T]] = {
    "add.Scalar": lambda a, s, alpha: A.add.Scalar(a, s, alpha),
    "sub.Scalar": lambda a, s, alpha: A.sub.Scalar(a, s, alpha),
    "mul.Scalar": lambda a, s, alpha: A.mul.Scalar(a, s),
    "div.Scalar": lambda a, s, alpha: A.div.Scalar(a, s),
    "add_.Scalar": lambda a, s, alpha: A.add_.Scalar(a.clone(), s, alpha),
    "sub_.Scalar": lambda a, s, alpha: A.sub_.Scalar(a.clone(), s, alpha),
    "mul_.Scalar": lambda a, s, alpha: A.mul_.Scalar(a.clone(), s),
    "div_.Scalar": lambda a, s, alpha: A.div_.Scalar(a.clone(), s),
    "rsub.Scalar": lambda a, s, alpha: A.rsub.Scalar(a, s, alpha),
}


@case(*SCALAR, kind="dispatch.ops.aten.<op>.Scalar")
def _scalar(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    s = draw(st.sampled_from([2, -3, 0.5, 1.25]))
    alpha = draw(ALPHAS)
    f = SCALAR[op]
    return (lambda a: f(a, s, alpha)), (x,)


@case("pow.Tensor_Scalar", "pow_.Scalar")
def _pow_scalar(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL), "pos"))
    e = draw(st.sampled_from([0, 1, 2, 3, 0.5, -1, 2.5, -0.5]))
    if op == "pow_.Scalar":
        return (lambda a: a.clone().pow_(e)), (x,)
    return (lambda a: a.pow(e)), (x,)


@case("pow.Scalar")
def _pow_scalar_base(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    base = draw(st.sampled_from([0.5, 2, 3.0, math.e]))
    return (lambda a: base**a), (x,)


UNARY: dict[str, tuple[Callable[[T], T], str]] = {
    "neg": (lambda a: a.neg(), "any"),
    "neg_": (lambda a: a.clone().neg_(), "any"),
    "exp": (lambda a: a.exp(), "any"),
    "exp_": (lambda a: a.clone().exp_(), "any"),
    "log": (lambda a: a.log(), "pos"),
    "reciprocal": (lambda a: a.reciprocal(), "pos"),
    "sin": (lambda a: a.sin(), "any"),
    "cos": (lambda a: a.cos(), "any"),
    "relu": (lambda a: a.relu(), "away0"),
    "relu_": (lambda a: a.clone().relu_(), "away0"),
    "sigmoid": (lambda a: a.sigmoid(), "any"),
    "tanh": (lambda a: a.tanh(), "any"),
}


@case(*UNARY)
def _unary(draw: st.DrawFn, op: str) -> Built:
    f, kind = UNARY[op]
    return f, (leaf(array(draw, draw(SMALL), kind)),)


@case("threshold_backward", kind="relu's backward (create_graph)")
def _threshold_backward(draw: st.DrawFn, op: str) -> Built:
    shape, other = draw(broadcast_pair())
    # self away from the threshold (the mask is piecewise constant in self)
    arrays = [array(draw, shape), array(draw, other, "away0")]
    threshold = draw(st.sampled_from([0, 0.05, -0.05]))
    return (lambda g, s: A.threshold_backward(g, s, threshold)), leaves(arrays, requires(draw, 2))


@case("sum", "mean")
def _full_reduction(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    return (lambda a: getattr(a, op)()), (x,)


@case("sum.dim_IntList", "mean.dim")
def _dim_reduction(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    x = leaf(array(draw, shape))
    dims = draw(reduction_dims(len(shape)))
    keepdim = draw(st.booleans())
    name = op.split(".")[0]
    if not dims and not keepdim:  # else the method would call sum / mean
        dims = [draw(st.sampled_from([0, -1]))]
    if draw(st.booleans()) and dims is not None:
        # the overload itself (dim=None with keepdim=True reduces everything)
        overload = getattr(A, name).dim_IntList if name == "sum" else A.mean.dim
        return (lambda a: overload(a, dims, keepdim)), (x,)
    return (lambda a: getattr(a, name)(dims, keepdim)), (x,)


@case("mm", "mv", "dot", "bmm")
def _linalg(draw: st.DrawFn, op: str) -> Built:
    side = st.integers(1, 3)
    n, m, p, b = draw(side), draw(side), draw(side), draw(side)
    shapes = {
        "mm": [(n, m), (m, p)],
        "mv": [(n, m), (m,)],
        "dot": [(m,), (m,)],
        "bmm": [(b, n, m), (b, m, p)],
    }[op]
    arrays = [array(draw, s) for s in shapes]
    f = getattr(T, op)
    return (lambda a, c: f(a, c)), leaves(arrays, requires(draw, 2))


@case("clone", "_to_copy")
def _copies(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    if op == "clone":
        return (lambda a: a.clone()), (x,)
    return (lambda a: A._to_copy(a)), (x,)


@case("copy_")
def _copy(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    src_shape = draw(broadcast_to(shape))
    arrays = [array(draw, shape), array(draw, src_shape)]
    return (lambda a, s: a.clone().copy_(s)), leaves(arrays, requires(draw, 2))


@case("zero_", "fill_.Scalar")
def _fills(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    if op == "zero_":
        return (lambda a: a.clone().zero_()), (x,)
    v = draw(st.sampled_from([0, 1, -2.5]))
    return (lambda a: a.clone().fill_(v)), (x,)


@case("fill_.Tensor")
def _fill_tensor(draw: st.DrawFn, op: str) -> Built:
    arrays = [array(draw, draw(SMALL)), array(draw, ())]
    return (lambda a, v: a.clone().fill_(v)), leaves(arrays, requires(draw, 2))


@st.composite
def _view_shape(draw: st.DrawFn, shape: tuple[int, ...]) -> list[int]:
    n = math.prod(shape)
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    first = draw(st.sampled_from(divisors))
    options = [[n], [first, n // first], [-1], [first, -1], [1, n, 1]]
    if n == 1:
        options.append([])
    return draw(st.sampled_from(options))


@case("view", "_unsafe_view")
def _views(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    x = leaf(array(draw, shape))
    new = draw(_view_shape(shape))
    if op == "view":
        return (lambda a: a.view(new).clone()), (x,)
    concrete = [math.prod(shape) // max(1, -math.prod(new)) if s == -1 else s for s in new]
    return (lambda a: A._unsafe_view(a, concrete) * 1), (x,)


@case("_reshape_alias", kind="reshape of a strided row (viewable, non-contiguous)")
def _reshape_alias(draw: st.DrawFn, op: str) -> Built:
    n = draw(st.integers(2, 3))
    x = leaf(array(draw, (2, n)))
    # (2, n).t()[0:1] is (1, 2) with strides (1, n): not contiguous, but reshape can view it
    return (lambda a: a.t()[0:1].reshape(-1) * 1), (x,)


@case("alias", kind="indexing x[...]")
def _alias(draw: st.DrawFn, op: str) -> Built:
    x = leaf(array(draw, draw(SMALL)))
    return (lambda a: a[...].clone()), (x,)


@case("t", "t_")
def _t(draw: st.DrawFn, op: str) -> Built:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    x = leaf(array(draw, shape))
    if op == "t_":
        return (lambda a: a.clone().t_()), (x,)
    return (lambda a: a.t().clone()), (x,)


@case("transpose.int", "transpose_")
def _transpose(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    n = max(len(shape), 1)
    d0, d1 = draw(st.integers(-n, n - 1)), draw(st.integers(-n, n - 1))
    x = leaf(array(draw, shape))
    if op == "transpose_":
        return (lambda a: a.clone().transpose_(d0, d1)), (x,)
    return (lambda a: a.transpose(d0, d1) * 1), (x,)


@case("permute")
def _permute(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    perm = draw(st.permutations(range(len(shape))))
    perm = [p - len(shape) if draw(st.booleans()) else p for p in perm]
    x = leaf(array(draw, shape))
    return (lambda a: a.permute(*perm).clone()), (x,)


@case("unsqueeze", "unsqueeze_")
def _unsqueeze(draw: st.DrawFn, op: str) -> Built:
    shape = draw(SMALL)
    d = draw(st.integers(-len(shape) - 1, len(shape)))
    x = leaf(array(draw, shape))
    if op == "unsqueeze_":
        return (lambda a: a.clone().unsqueeze_(d)), (x,)
    return (lambda a: a.unsqueeze(d).clone()), (x,)


@st.composite
def _with_ones(draw: st.DrawFn) -> tuple[int, ...]:
    """A small shape with some sides 1 (something for squeeze to remove)."""
    shape = list(draw(SMALL))
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    return tuple(shape)


@case("squeeze", "squeeze_", "squeeze.dim", "squeeze_.dim")
def _squeeze(draw: st.DrawFn, op: str) -> Built:
    shape = draw(_with_ones())
    x = leaf(array(draw, shape))
    if op == "squeeze_":
        return (lambda a: a.clone().squeeze_()), (x,)
    if op == "squeeze":
        return (lambda a: a.squeeze().clone()), (x,)
    n = max(len(shape), 1)
    d = draw(st.integers(-n, n - 1))
    if op == "squeeze_.dim":
        return (lambda a: a.clone().squeeze_(d)), (x,)
    return (lambda a: a.squeeze(d).clone()), (x,)


@case("expand")
def _expand(draw: st.DrawFn, op: str) -> Built:
    target = draw(SMALL)
    shape = draw(broadcast_to(target))
    lead = draw(st.integers(0, 1))
    sizes = [draw(st.integers(1, 2)) for _ in range(lead)] + list(target)
    # -1 keeps a side (only where the input has that dim)
    off = len(sizes) - len(shape)
    sizes = [
        -1 if i >= off and shape[i - off] == sizes[i] and draw(st.booleans()) else s
        for i, s in enumerate(sizes)
    ]
    x = leaf(array(draw, shape))
    return (lambda a: a.expand(*sizes).clone()), (x,)


@st.composite
def _select_index(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A basic index over the leading dims with at least one int (slices elsewhere)."""
    k = draw(st.integers(1, len(shape)))
    must = draw(st.integers(0, k - 1))
    parts: list[Any] = []
    for j, s in enumerate(shape[:k]):
        if j == must or draw(st.booleans()):
            parts.append(draw(st.integers(-s, s - 1)))
        else:
            parts.append(_slice(draw, s))
    return tuple(parts)


def _slice(draw: st.DrawFn, s: int) -> slice:
    return slice(
        draw(st.none() | st.integers(-s, s)),
        draw(st.none() | st.integers(-s - 1, s + 1)),
        draw(st.integers(1, 3)),
    )


@case("select.int", "slice.Tensor", kind="indexing / select / narrow")
def _select_slice(draw: st.DrawFn, op: str) -> Built:
    shape = draw(NONSCALAR)
    x = leaf(array(draw, shape))
    how = draw(st.sampled_from(["index", "method"]))
    if op == "select.int":
        if how == "index":
            idx = draw(_select_index(shape))
            return (lambda a: a[idx].clone()), (x,)
        d = draw(st.integers(-len(shape), len(shape) - 1))
        i = draw(st.integers(-shape[d], shape[d] - 1))
        return (lambda a: a.select(d, i).clone()), (x,)
    if how == "index":
        d = draw(st.integers(0, len(shape) - 1))
        sl = _slice(draw, shape[d])
        if (
            sl.start in (None, 0)
            and (sl.stop is None or sl.stop >= shape[d])
            and sl.step in (None, 1)
        ):
            # indexing skips a whole-dimension slice (torch returns an alias): call the op
            return (lambda a: A.slice.Tensor(a, d, sl.start, sl.stop, 1) * 1), (x,)
        idx = (slice(None),) * d + (sl,)
        return (lambda a: a[idx] * 1), (x,)
    d = draw(st.integers(-len(shape), len(shape) - 1))
    start = draw(st.integers(0, shape[d]))
    length = draw(st.integers(0, shape[d] - start))
    return (lambda a: a.narrow(d, start, length).clone()), (x,)


@case("split.Tensor", "split_with_sizes", "unbind.int", kind="multi-output views")
def _multi(draw: st.DrawFn, op: str) -> Built:
    shape = draw(NONSCALAR)
    x = leaf(array(draw, shape))
    d = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[d]
    if op == "split.Tensor":
        if draw(st.booleans()):
            k = draw(st.integers(1, n + 1))
            parts: Callable[[T], tuple[T, ...]] = lambda a: a.split(k, d)  # noqa: E731
        else:
            chunks = draw(st.integers(1, n + 1))
            parts = lambda a: a.chunk(chunks, d)  # noqa: E731
    elif op == "split_with_sizes":
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
        sizes = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, n])]
        parts = lambda a: a.split(sizes, d)  # noqa: E731
    else:
        parts = lambda a: a.unbind(d)  # noqa: E731
    # keep all outputs, or only some (the others get no gradient at all)
    keep = draw(st.sampled_from(["all", "even", "first"]))

    def fn(a: T) -> tuple[T, ...]:
        outs = parts(a)
        chosen = outs if keep == "all" else outs[::2] if keep == "even" else outs[:1]
        return tuple(o * 1 for o in chosen)

    return fn, (x,)


@case("as_strided")
def _as_strided(draw: st.DrawFn, op: str) -> Built:
    n = draw(st.integers(2, 6))
    x = leaf(array(draw, (n,)))
    k = draw(st.integers(1, (n + 1) // 2))
    offset = draw(st.integers(0, n - 1 - 2 * (k - 1)))
    return (lambda a: A.as_strided(a, [k], [2], offset) * 1), (x,)


@case("_as_strided_backward", kind="views whose base changed in place")
def _regenerated_view(draw: st.DrawFn, op: str) -> Built:
    shape = draw(NONSCALAR.filter(lambda s: math.prod(s) >= 3))
    x = leaf(array(draw, shape))
    i = draw(st.integers(-shape[0], shape[0] - 1))
    offset = draw(st.integers(0, math.prod(shape) - 3))
    factor = draw(st.sampled_from([2.0, -0.5]))

    def fn(a: T) -> T:
        b = a.clone()
        v = b[i]  # views of b ...
        w = A.as_strided(b, [2, 2], [1, 1], offset)  # (one that overlaps itself)
        b.mul_(factor)  # ... whose base changes in place: their grad_fn becomes
        # AsStridedBackward0, which scatters w's gradient with _as_strided_backward
        return (v * v).sum() + (w * w).sum()

    return fn, (x,)


def test_every_derivative_has_a_case():
    """A formula added to DERIVATIVES without a gradcheck case fails here."""
    assert sorted(set(DERIVATIVES) - set(CASES)) == []
    assert sorted(set(CASES) - set(DERIVATIVES)) == []


def _nodes(roots: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out: list[Any] = []
    stack = [r for r in roots if r is not None]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(nxt for nxt, _ in n.next_functions if nxt is not None)
        if isinstance(n, CopySlices):
            stack.append(n.fn)
    return out


def _ops_in(nodes: list[Any]) -> set[str]:
    return {type(n).derivative.op for n in nodes if hasattr(type(n), "derivative")}


def assert_case_reaches(op: str, fn: Callable[..., Any], inputs: tuple[T, ...]) -> None:
    """The case really runs ``op``'s formula: its node is in the graph of the outputs or
    (for a formula only backward passes call) in the graph of their gradients."""
    res = fn(*inputs)
    outs = [o for o in (res if isinstance(res, tuple) else (res,)) if o.requires_grad]
    found = _ops_in(_nodes([o.grad_fn for o in outs]))
    if op in found:
        return
    diff = [t for t in inputs if t.requires_grad]
    gos = [dispatch.ones(*o.shape, dtype=D) for o in outs]
    grads = autograd.grad(outs, diff, gos, create_graph=True, allow_unused=True)
    found |= _ops_in(_nodes([g.grad_fn for g in grads if g is not None]))
    assert op in found, f"the case for {op} never runs its formula (saw {sorted(found)})"


# examples per operator: ~70 operators x (gradcheck + gradgradcheck) fit the profile's time
# budget with half of its examples each (ci: 60 -> 30, thorough: 1000 -> 500)
PER_OP_EXAMPLES = max(3, settings.default.max_examples // 2)


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=PER_OP_EXAMPLES, deadline=None)
@given(data=st.data())
def test_gradcheck_and_gradgradcheck_every_derivative(op, data):
    c = CASES[op]
    fn, inputs = data.draw(c.build)
    assert_case_reaches(op, fn, inputs)
    assert gradcheck(fn, inputs) is True
    assert gradcheck(fn, inputs, fast_mode=True) is True
    assert gradgradcheck(fn, inputs) is True


# -- gradient dtypes and singular points --------------------------------------------------------

F32 = dispatch.float32
REDUCE_TO_F32: dict[str, Callable[[T], T]] = {
    "sum": lambda a: a.sum(dtype=F32),
    "sum.dim_IntList": lambda a: a.sum(-1, keepdim=True, dtype=F32),
    "mean": lambda a: a.mean(dtype=F32),
    "mean.dim": lambda a: a.mean([0], dtype=F32),
}


def _loose_check(fn: Callable[..., Any], inputs: tuple[T, ...]) -> None:
    """gradcheck + gradgradcheck with float32 in play: tolerances for float32, and the
    gradient of every input must have that input's dtype."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input #")
        kw: dict[str, Any] = {"eps": 1e-3, "atol": 2e-2, "rtol": 2e-2, "check_grad_dtypes": True}
        assert gradcheck(fn, inputs, **kw) is True
        assert gradgradcheck(fn, inputs, **kw) is True


@pytest.mark.parametrize("op", [*sorted(BINARY), "copy_", "fill_.Tensor"])
@settings(max_examples=PER_OP_EXAMPLES, deadline=None)
@given(data=st.data())
def test_gradient_dtypes_follow_the_inputs_binary(op, data):
    """Mixed float32/float64 operands: each input's gradient has its own dtype (the
    formulas cast back, see ``_to`` in derivatives.py)."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2))
    other = data.draw(broadcast_to(shape)) if op != "fill_.Tensor" else ()
    kind_a = "pos" if op.startswith("pow") else "any"
    kind_b = "nonzero" if op.startswith("div") else "any"
    arrays = [array(data.draw, shape, kind_a), array(data.draw, other, kind_b)]
    dtypes = data.draw(st.sampled_from([(F32, D), (D, F32), (F32, F32)]))
    mask = requires(data.draw, 2)
    inputs = tuple(
        dispatch.tensor(a, dtype=dt, requires_grad=rg) for a, dt, rg in zip(arrays, dtypes, mask)
    )
    if op == "copy_":
        fn: Callable[..., Any] = lambda a, b: a.clone().copy_(b)  # noqa: E731
    elif op == "fill_.Tensor":
        fn = lambda a, b: a.clone().fill_(b)  # noqa: E731
    else:
        f = BINARY[op]
        fn = lambda a, b: f(a, b, 2)  # noqa: E731
    _loose_check(fn, inputs)


@pytest.mark.parametrize("op", sorted(REDUCE_TO_F32))
def test_gradient_dtype_of_a_reduction_with_dtype(op):
    x = leaf([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]])
    assert REDUCE_TO_F32[op](x).dtype is F32
    (g,) = autograd.grad(REDUCE_TO_F32[op](x).sum(), x)
    assert g.dtype is D
    _loose_check(REDUCE_TO_F32[op], (x,))


def test_pow_at_zero_base_has_torchs_gradients():
    """torch masks 0 ** e (e >= 0) and x ** 0 so their gradients are 0, not nan."""
    base = leaf([0.0, 1.5, 0.0, 2.0])
    exponent = leaf([2.0, 0.0, 3.0, 1.0])
    gb, ge = autograd.grad(base.pow(exponent).sum(), (base, exponent))
    assert gb.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert ge.tolist() == [0.0, math.log(1.5), 0.0, 2.0 * math.log(2.0)]
    gb, ge = autograd.grad(base.clone().pow_(exponent).sum(), (base, exponent))
    assert gb.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert ge.tolist() == [0.0, math.log(1.5), 0.0, 2.0 * math.log(2.0)]
    e = leaf([1.0, 0.0, 2.5, -1.0])
    (g,) = autograd.grad((0.0**e).sum(), e)
    assert g.tolist() == [0.0, 0.0, 0.0, -math.inf]
    (g,) = autograd.grad(((-2.0) ** e).sum(), e)
    assert all(math.isnan(v) for v in g.tolist())
    # first order checks pass at a zero base (gradgradcheck cannot: the gradient for the
    # exponent, result * log(base), is nan for base -eps)
    b, ex = leaf([0.0, 1.5, 0.0]), leaf([2.0, 0.5, 3.0])
    assert gradcheck(lambda a, c: a.pow(c), (b, ex))
    assert gradcheck(lambda a, c: a.clone().pow_(c), (b, ex))
    assert gradcheck(lambda c: 0.0**c, leaf([1.0, 2.5]))
    assert gradgradcheck(lambda c: 0.0**c, leaf([1.0, 2.5]))


@pytest.mark.oracle
def test_pow_at_zero_base_matches_torch():
    torch = pytest.importorskip("torch")
    vals = ([0.0, 1.5, 0.0, 2.0, 0.0], [2.0, 0.0, 3.0, 1.0, 0.0])
    tb, te = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in vals)
    db, de = (leaf(v) for v in vals)
    expected = torch.autograd.grad(tb.pow(te).sum(), (tb, te))
    got = autograd.grad(db.pow(de).sum(), (db, de))
    for e, g in zip(expected, got):
        assert g.tolist() == e.tolist()
    te = torch.tensor([1.0, 0.0, 2.5, -1.0], dtype=torch.float64, requires_grad=True)
    de = leaf([1.0, 0.0, 2.5, -1.0])
    for base in (0.0, 2.0, 0.5):
        (e,) = torch.autograd.grad((base**te).sum(), te)
        (g,) = autograd.grad((base**de).sum(), de)
        assert g.tolist() == pytest.approx(e.tolist(), nan_ok=True)


# -- composites and in-place-on-view: more paths into the same formulas ---------------------------

EXTRA: dict[str, st.SearchStrategy[Built]] = {}


def extra(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        EXTRA[name] = st.composite(fn)()
        return fn

    return deco


@extra("matmul")
def _matmul(draw: st.DrawFn) -> Built:
    sa, sb = draw(matmul_shapes(max_rank=3, max_side=3))
    arrays = [array(draw, sa), array(draw, sb)]
    return (lambda a, b: a @ b), leaves(arrays, requires(draw, 2))


@extra("reshape (copying)")
def _reshape(draw: st.DrawFn) -> Built:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=3))
    x = leaf(array(draw, shape))
    return (lambda a: a.transpose(0, 1).reshape(-1)), (x,)  # not viewable: clone + _unsafe_view


@extra("contiguous / view_as")
def _contiguous(draw: st.DrawFn) -> Built:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=3))
    x = leaf(array(draw, shape))
    other = dispatch.zeros(math.prod(shape), dtype=D)
    return (lambda a: a.transpose(0, -1).contiguous().view_as(other)), (x,)


@extra("chain of views and in-place ops")
def _chain(draw: st.DrawFn) -> Built:
    shape = draw(NONSCALAR)
    arrays = [array(draw, shape), array(draw, shape, "nonzero")]

    def fn(a: T, b: T) -> T:
        c = a * b
        c.div_(b).add_(a.sin(), alpha=0.5)
        return c.unsqueeze(0).expand(2, *shape).sum(0).mul_(c.exp())

    return fn, leaves(arrays, requires(draw, 2))


def test_extra_cases_cover_matmul_shapes():
    assert set(EXTRA) == {
        "matmul",
        "reshape (copying)",
        "contiguous / view_as",
        "chain of views and in-place ops",
    }


@pytest.mark.parametrize("name", sorted(EXTRA))
@settings(max_examples=PER_OP_EXAMPLES, deadline=None)
@given(data=st.data())
def test_gradcheck_and_gradgradcheck_composites(name, data):
    fn, inputs = data.draw(EXTRA[name])
    assert gradcheck(fn, inputs) is True
    assert gradgradcheck(fn, inputs) is True


@settings(max_examples=PER_OP_EXAMPLES, deadline=None)
@given(data=st.data())
def test_inplace_on_a_view_first_and_second_order(data):
    """In-place ops on views (CopySlices) gradcheck, and so does their double backward,
    which goes through as_strided and its adjoint."""
    shape = data.draw(NONSCALAR)
    x = leaf(array(data.draw, shape))
    y = leaf(array(data.draw, shape[1:]))
    i = data.draw(st.integers(-shape[0], shape[0] - 1))

    def fn(a: T, b: T) -> T:
        c = a.clone()
        c[i] = b  # copy_ into a select view
        c[i].mul_(b)
        return c

    assert gradcheck(fn, (x, y)) is True
    assert gradgradcheck(fn, (x, y)) is True


# -- grad_fn names against torch 2.13 ---------------------------------------------------------------

# op -> an expression, written once for both libraries (``m`` is torch or dispatch), whose
# result's grad_fn is that op's node. x, y: (2, 3) float64 leaves; v: a 0-dim one.
NAME_EXPRS: dict[str, Callable[[Any, Any, Any, Any], Any]] = {
    "add.Tensor": lambda m, x, y, v: x + y,
    "add.Scalar": lambda m, x, y, v: m.ops.aten.add.Scalar(x, 2),
    "add_.Tensor": lambda m, x, y, v: x.clone().add_(y),
    "add_.Scalar": lambda m, x, y, v: m.ops.aten.add_.Scalar(x.clone(), 2),
    "sub.Tensor": lambda m, x, y, v: x - y,
    "sub.Scalar": lambda m, x, y, v: m.ops.aten.sub.Scalar(x, 2),
    "sub_.Tensor": lambda m, x, y, v: x.clone().sub_(y),
    "sub_.Scalar": lambda m, x, y, v: m.ops.aten.sub_.Scalar(x.clone(), 2),
    "mul.Tensor": lambda m, x, y, v: x * y,
    "mul.Scalar": lambda m, x, y, v: m.ops.aten.mul.Scalar(x, 2),
    "mul_.Tensor": lambda m, x, y, v: x.clone().mul_(y),
    "mul_.Scalar": lambda m, x, y, v: m.ops.aten.mul_.Scalar(x.clone(), 2),
    "div.Tensor": lambda m, x, y, v: x / y,
    "div.Scalar": lambda m, x, y, v: m.ops.aten.div.Scalar(x, 2),
    "div_.Tensor": lambda m, x, y, v: x.clone().div_(y),
    "div_.Scalar": lambda m, x, y, v: m.ops.aten.div_.Scalar(x.clone(), 2),
    "pow.Tensor_Tensor": lambda m, x, y, v: x.pow(y),
    "pow.Tensor_Scalar": lambda m, x, y, v: x.pow(2),
    "pow.Scalar": lambda m, x, y, v: 2.0**x,
    "pow_.Tensor": lambda m, x, y, v: x.clone().pow_(y),
    "pow_.Scalar": lambda m, x, y, v: x.clone().pow_(2),
    "neg": lambda m, x, y, v: x.neg(),
    "neg_": lambda m, x, y, v: x.clone().neg_(),
    "exp": lambda m, x, y, v: x.exp(),
    "exp_": lambda m, x, y, v: x.clone().exp_(),
    "log": lambda m, x, y, v: x.log(),
    "reciprocal": lambda m, x, y, v: x.reciprocal(),
    "rsub.Scalar": lambda m, x, y, v: 2.0 - x,
    "sin": lambda m, x, y, v: x.sin(),
    "cos": lambda m, x, y, v: x.cos(),
    "relu": lambda m, x, y, v: x.relu(),
    "relu_": lambda m, x, y, v: x.clone().relu_(),
    "sigmoid": lambda m, x, y, v: x.sigmoid(),
    "tanh": lambda m, x, y, v: x.tanh(),
    "threshold_backward": lambda m, x, y, v: m.ops.aten.threshold_backward(x, y, 1.0),
    "sum": lambda m, x, y, v: x.sum(),
    "sum.dim_IntList": lambda m, x, y, v: x.sum(1, keepdim=True),
    "mean": lambda m, x, y, v: x.mean(),
    "mean.dim": lambda m, x, y, v: x.mean(0),
    "mm": lambda m, x, y, v: x.mm(y.t()),
    "mv": lambda m, x, y, v: x.mv(y[0]),
    "dot": lambda m, x, y, v: x[0].dot(y[0]),
    "bmm": lambda m, x, y, v: x.unsqueeze(0).bmm(y.t().unsqueeze(0)),
    "clone": lambda m, x, y, v: x.clone(),
    "_to_copy": lambda m, x, y, v: m.ops.aten._to_copy(x),
    "copy_": lambda m, x, y, v: x.clone().copy_(y),
    "zero_": lambda m, x, y, v: x.clone().zero_(),
    "fill_.Scalar": lambda m, x, y, v: x.clone().fill_(1),
    "fill_.Tensor": lambda m, x, y, v: x.clone().fill_(v),
    "view": lambda m, x, y, v: x.view(3, 2),
    "_unsafe_view": lambda m, x, y, v: m.ops.aten._unsafe_view(x, [6]),
    "_reshape_alias": lambda m, x, y, v: x.t()[0:1].reshape(-1),
    "alias": lambda m, x, y, v: x[...],
    "t": lambda m, x, y, v: x.t(),
    "t_": lambda m, x, y, v: x.clone().t_(),
    "transpose.int": lambda m, x, y, v: x.transpose(0, 1),
    "transpose_": lambda m, x, y, v: x.clone().transpose_(0, 1),
    "permute": lambda m, x, y, v: x.permute(1, 0),
    "unsqueeze": lambda m, x, y, v: x.unsqueeze(1),
    "unsqueeze_": lambda m, x, y, v: x.clone().unsqueeze_(1),
    "squeeze": lambda m, x, y, v: x.unsqueeze(0).squeeze(),
    "squeeze_": lambda m, x, y, v: x.clone().squeeze_(),
    "squeeze.dim": lambda m, x, y, v: x.squeeze(0),
    "squeeze_.dim": lambda m, x, y, v: x.unsqueeze(0).clone().squeeze_(0),
    "expand": lambda m, x, y, v: x.expand(4, 2, 3),
    "select.int": lambda m, x, y, v: x[1],
    "slice.Tensor": lambda m, x, y, v: x[:, 1:],
    "split.Tensor": lambda m, x, y, v: x.split(1)[1],
    "split_with_sizes": lambda m, x, y, v: x.split([1, 2], 1)[0],
    "unbind.int": lambda m, x, y, v: x.unbind(1)[2],
    "as_strided": lambda m, x, y, v: m.ops.aten.as_strided(x, [2], [2]),
}
# dispatchsim's own operator (the backward of a regenerated view); torch writes that
# backward as a composite of other operators, so there is no node to compare with
NO_TORCH_NODE = {"_as_strided_backward"}


def test_every_derivative_has_a_name_expression():
    assert sorted(set(DERIVATIVES) - set(NAME_EXPRS) - NO_TORCH_NODE) == []
    assert sorted(set(NAME_EXPRS) - set(DERIVATIVES)) == []


def _name_inputs(m: Any) -> tuple[Any, Any, Any]:
    x = m.tensor([[0.5, 1.5, 2.0], [1.25, 0.75, 1.0]], dtype=m.float64, requires_grad=True)
    y = m.tensor([[2.0, 0.5, 1.5], [1.0, 3.0, 0.25]], dtype=m.float64, requires_grad=True)
    v = m.tensor(2.0, dtype=m.float64, requires_grad=True)
    return x, y, v


@pytest.mark.oracle
@pytest.mark.parametrize("op", sorted(NAME_EXPRS))
def test_grad_fn_names_match_torch(op):
    torch = pytest.importorskip("torch")
    expr = NAME_EXPRS[op]
    ours = expr(dispatch, *_name_inputs(dispatch)).grad_fn
    theirs = expr(torch, *_name_inputs(torch)).grad_fn
    assert ours.name() == theirs.name()
    assert ours.name() == DERIVATIVES[op].node
    assert type(ours).derivative.op == op  # the expression reaches this very overload


@pytest.mark.oracle
def test_regenerated_view_names_match_torch():
    torch = pytest.importorskip("torch")

    def names(m: Any) -> tuple[str, str]:
        x, _, _ = _name_inputs(m)
        b = x.clone()
        v = b[0]
        b.mul_(2)
        c = x.clone()
        c[1].mul_(2)
        return v.grad_fn.name(), c.grad_fn.name()

    assert names(dispatch) == names(torch) == ("AsStridedBackward0", "torch::autograd::CopySlices")
