"""Derivative formulas, one table: this project's ``derivatives.yaml``
(tools/autograd/derivatives.yaml in PyTorch).

Each entry names the operator overload, the node PyTorch creates for it
(``MulBackward0``...), its differentiable inputs (the node's edges, in order),
what to save — with the inputs whose formulas use each saved argument: as in
PyTorch's generated code, an argument used by one input's formula only is saved
when that input needs a gradient, one used by several always — and a formula
written with dispatchsim's own operators, so that a backward pass run with
``create_graph=True`` is itself recorded and can be differentiated again.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from dispatch.dtypes import DType
from dispatch.tensorimpl import Tensor, _call

__all__ = ["DERIVATIVES", "Ctx", "Derivative", "sum_to"]

Grads = Sequence[Tensor | None]
Formula = Callable[["Ctx", list[Tensor]], Grads]


@attrs.frozen
class Derivative:
    op: str  # "mul.Tensor"
    node: str  # "MulBackward0"
    inputs: tuple[str, ...]  # differentiable inputs (edges), in order
    formula: Formula
    # argument -> indices into `inputs` whose formulas use it (one: saved if that one is
    # needed; none or several: always saved)
    save: tuple[tuple[str, tuple[int, ...]], ...] = ()
    save_result: bool = False
    save_self_clone: tuple[int, ...] | None = None  # in-place ops: save self before mutation
    geometry: tuple[str, ...] = ()  # inputs whose strides and storage offset the formula needs


class Ctx:
    """What a formula sees: saved tensors (unpacked, so version-checked, before it runs), the call's
    non-tensor arguments, the input shapes and dtypes, and which inputs need a gradient."""

    __slots__ = ("_node", "_saved")

    def __init__(self, node: Any, saved: dict[str, Tensor | None]) -> None:
        self._node = node
        self._saved = saved  # the node's saved variables, unpacked before the formula runs

    def saved(self, name: str) -> Tensor:
        t = self._saved[name]
        assert t is not None, name
        return t

    @property
    def result(self) -> Tensor:
        return self.saved("result")

    def arg(self, name: str) -> Any:
        return self._node.arg(name)

    def shape(self, name: str) -> list[int]:
        return list(self._node.shape_of(name))

    def geometry(self, name: str) -> tuple[list[int], list[int], int]:
        """(size, stride, storage_offset) of an input, recorded when the op ran."""
        size, stride, offset = self._node.geometries[name]
        return list(size), list(stride), offset

    def dtype(self, name: str) -> DType:
        d: DType = self._node.dtype_of(name)
        return d

    def needs(self, i: int) -> bool:
        return bool(self._node.should_compute_output(i))


DERIVATIVES: Final[dict[str, Derivative]] = {}


def derivative(
    ops: str | tuple[str, ...],
    node: str,
    inputs: tuple[str, ...],
    save: dict[str, tuple[int, ...]] | None = None,
    save_result: bool = False,
    save_self_clone: tuple[int, ...] | None = None,
    geometry: tuple[str, ...] = (),
) -> Callable[[Formula], Formula]:
    def deco(fn: Formula) -> Formula:
        for op in (ops,) if isinstance(ops, str) else ops:
            if op in DERIVATIVES:
                raise RuntimeError(f"two derivatives for {op}")
            DERIVATIVES[op] = Derivative(
                op,
                node,
                inputs,
                fn,
                tuple((save or {}).items()),
                save_result,
                save_self_clone,
                geometry,
            )
        return fn

    return deco


# -- helpers (all in operators, so they are differentiable themselves) ------------------------
def sum_to(g: Tensor, shape: Sequence[int]) -> Tensor:
    """``at::sum_to``: reduce a broadcast gradient back to ``shape``."""
    shape = list(shape)
    if list(g.shape) == shape:
        return g
    if not shape:
        return _call("sum", (g, None))  # torch: `tensor.sum()`, a new tensor, not a view
    lead = g.dim() - len(shape)
    dims = list(range(lead))
    dims += [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    r = _call("sum.dim_IntList", (g, dims, True, None)) if dims else g
    if lead:
        r = _call("view", (r, shape))
    return r


def _below_ad_inplace_or_view() -> Any:
    """For formulas that build a gradient by writing into fresh zeros: torch uses ops like
    ``select_backward`` whose writes happen below ADInplaceOrView, so the gradient comes
    out at version 0. With create_graph (grad mode on) the writes must be recorded."""
    from dispatch.tls import state
    from modes import AutoDispatchBelowADInplaceOrView

    return contextlib.nullcontext() if state.grad_mode else AutoDispatchBelowADInplaceOrView()


def zeros(shape: Sequence[int], like: Tensor) -> Tensor:
    return _call("zeros", (list(shape), like.dtype, None, like.device.type, None))


def _scalar_mul(g: Tensor, c: Any) -> Tensor:
    return g if c == 1 else _call("mul.Scalar", (g, c))


def _to(g: Tensor, dtype: DType) -> Tensor:
    return g if g.dtype is dtype else g.to(dtype)


# -- pointwise binary ---------------------------------------------------------------------------
@derivative("add.Tensor", "AddBackward0", ("self", "other"))
def _add(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        _to(sum_to(go, c.shape("self")), c.dtype("self")) if c.needs(0) else None,
        _to(sum_to(_scalar_mul(go, c.arg("alpha")), c.shape("other")), c.dtype("other"))
        if c.needs(1)
        else None,
    )


@derivative(("add.Scalar",), "AddBackward1", ("self",))
def _add_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(g[0], c.dtype("self")),)


@derivative("add_.Tensor", "AddBackward0", ("self", "other"))
def _add_(c: Ctx, g: list[Tensor]) -> Grads:
    return _add(c, g)


@derivative("add_.Scalar", "AddBackward1", ("self",))
def _add_scalar_(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0],)


@derivative(("sub.Tensor", "sub_.Tensor"), "SubBackward0", ("self", "other"))
def _sub(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        _to(sum_to(go, c.shape("self")), c.dtype("self")) if c.needs(0) else None,
        _to(sum_to(_scalar_mul(go.neg(), c.arg("alpha")), c.shape("other")), c.dtype("other"))
        if c.needs(1)
        else None,
    )


@derivative(("sub.Scalar", "sub_.Scalar"), "SubBackward1", ("self",))
def _sub_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(g[0], c.dtype("self")),)


@derivative("rsub.Scalar", "RsubBackward1", ("self",))
def _rsub_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(_scalar_mul(g[0].neg(), c.arg("alpha")), c.dtype("self")),)


@derivative("mul.Tensor", "MulBackward0", ("self", "other"), save={"other": (0,), "self": (1,)})
def _mul(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        _to(sum_to(go * c.saved("other"), c.shape("self")), c.dtype("self"))
        if c.needs(0)
        else None,
        _to(sum_to(go * c.saved("self"), c.shape("other")), c.dtype("other"))
        if c.needs(1)
        else None,
    )


@derivative(
    "mul_.Tensor", "MulBackward0", ("self", "other"), save={"other": (0,)}, save_self_clone=(1,)
)
def _mul_(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        _to(sum_to(go * c.saved("other"), c.shape("self")), c.dtype("self"))
        if c.needs(0)
        else None,
        _to(sum_to(go * c.saved("self"), c.shape("other")), c.dtype("other"))
        if c.needs(1)
        else None,
    )


@derivative(("mul.Scalar", "mul_.Scalar"), "MulBackward1", ("self",))
def _mul_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(_call("mul.Scalar", (g[0], c.arg("other"))), c.dtype("self")),)


@derivative("div.Tensor", "DivBackward0", ("self", "other"), save={"other": (0, 1), "self": (1,)})
def _div(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    other = c.saved("other")
    gs = _to(sum_to(go / other, c.shape("self")), c.dtype("self")) if c.needs(0) else None
    go2 = None
    if c.needs(1):
        # div_tensor_other_backward: -grad * ((self / other) / other)
        self_ = c.saved("self")
        go2 = _to(sum_to(go.neg() * (self_ / other / other), c.shape("other")), c.dtype("other"))
    return (gs, go2)


@derivative(
    "div_.Tensor", "DivBackward0", ("self", "other"), save={"other": (0, 1)}, save_self_clone=(1,)
)
def _div_(c: Ctx, g: list[Tensor]) -> Grads:
    return _div(c, g)


@derivative(("div.Scalar", "div_.Scalar"), "DivBackward1", ("self",))
def _div_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(_call("div.Scalar", (g[0], c.arg("other"))), c.dtype("self")),)


@derivative(("pow.Tensor_Scalar",), "PowBackward0", ("self",), save={"self": ()})
def _pow_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    e = c.arg("exponent")
    if e == 0:
        return (zeros(c.shape("self"), g[0]),)
    s = c.saved("self")
    return (g[0] * _call("mul.Scalar", (_call("pow.Tensor_Scalar", (s, e - 1)), e)),)


@derivative("pow_.Scalar", "PowBackward0", ("self",), save_self_clone=(0,))
def _pow_scalar_(c: Ctx, g: list[Tensor]) -> Grads:
    return _pow_scalar(c, g)


def _pow_grads(c: Ctx, go: Tensor, s: Tensor, e: Tensor, result: Callable[[], Tensor]) -> Grads:
    """``pow_backward_self`` / ``pow_backward_exponent``. PyTorch masks with ``where``:
    ``where(exponent == 0, 0, grad * (exponent * self ** (exponent - 1)))`` and
    ``grad * where(self == 0 & exponent >= 0, 0, result * log(self))``. Written here so
    that the values are torch's for every input, inf and nan included, while the
    derivative of these gradients stays right at ``exponent == 0`` (torch's ``where``
    makes it 0 there, which gradgradcheck refuses):

    * self: ``self ** -1`` becomes ``self ** 0 = 1`` where ``self == exponent == 0`` (so
      ``0 * 1``, not ``0 * inf``); at ``exponent == 0`` the product is then already 0
      unless ``grad`` or ``self ** -1`` is inf or nan — only those elements are zeroed,
      with ``threshold_backward`` as the ``where``;
    * exponent: ``log(self)`` becomes ``log(1) = 0`` where ``self == 0 and exponent >= 0``
      (``result`` is 0 or 1 there)."""
    gs = None
    if c.needs(0):
        zero_zero = e.eq(0).to(e.dtype) * s.eq(0).to(e.dtype)
        raw = go * (e * s.pow(e - 1 + zero_zero))
        # keep = 0 where exponent == 0 and the product is not finite (x - x is nan there)
        keep = 1 - e.eq(0).to(raw.dtype) * (raw - raw).ne(0).to(raw.dtype)
        gs = _to(
            sum_to(_call("threshold_backward", (raw, keep, 0.5)), c.shape("self")), c.dtype("self")
        )
    ge = None
    if c.needs(1):
        masked = s.eq(0).to(s.dtype) * e.ge(0).to(s.dtype)
        ge = _to(
            sum_to(go * (result() * (s + masked).log()), c.shape("exponent")), c.dtype("exponent")
        )
    return (gs, ge)


@derivative(
    "pow.Tensor_Tensor",
    "PowBackward1",
    ("self", "exponent"),
    save={"self": (0, 1), "exponent": (0, 1)},
    save_result=True,
)
def _pow_tensor(c: Ctx, g: list[Tensor]) -> Grads:
    return _pow_grads(c, g[0], c.saved("self"), c.saved("exponent"), lambda: c.result)


@derivative(
    "pow_.Tensor",
    "PowBackward1",
    ("self", "exponent"),
    save={"exponent": (0, 1)},
    save_result=True,
    save_self_clone=(0, 1),
)
def _pow_tensor_(c: Ctx, g: list[Tensor]) -> Grads:
    # self as it was before the op (a clone), result = self after it
    return _pow_grads(c, g[0], c.saved("self"), c.saved("exponent"), lambda: c.result)


@derivative("pow.Scalar", "PowBackward2", ("exponent",), save={"exponent": ()}, save_result=True)
def _pow_scalar_base(c: Ctx, g: list[Tensor]) -> Grads:
    # pow_backward_exponent(grad, Scalar self, exponent, result): grad * (result * log(self))
    base, r = c.arg("self"), c.result
    if base == 0:
        # torch: 0 where exponent >= 0, else result * log(0) = -inf (result is inf there)
        return (g[0] * (0 - r * r.gt(1).to(r.dtype)),)
    return (g[0] * _call("mul.Scalar", (r, math.log(base) if base > 0 else math.nan)),)


# -- pointwise unary ------------------------------------------------------------------------------
@derivative(("neg", "neg_"), "NegBackward0", ("self",))
def _neg(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].neg(),)


@derivative("reciprocal", "ReciprocalBackward0", ("self",), save_result=True)
def _reciprocal(c: Ctx, g: list[Tensor]) -> Grads:
    r = c.result
    return (g[0].neg() * (r * r),)


@derivative(("exp", "exp_"), "ExpBackward0", ("self",), save_result=True)
def _exp(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0] * c.result,)


@derivative("log", "LogBackward0", ("self",), save={"self": ()})
def _log(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0] / c.saved("self"),)


@derivative("sin", "SinBackward0", ("self",), save={"self": ()})
def _sin(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0] * c.saved("self").cos(),)


@derivative("cos", "CosBackward0", ("self",), save={"self": ()})
def _cos(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0] * c.saved("self").sin().neg(),)


@derivative(("relu", "relu_"), "ReluBackward0", ("self",), save_result=True)
def _relu(c: Ctx, g: list[Tensor]) -> Grads:
    # a mask, not a product: an inf or nan gradient becomes 0 where the result is 0
    return (_call("threshold_backward", (g[0], c.result, 0)),)


@derivative(
    "threshold_backward", "ThresholdBackwardBackward0", ("grad_output", "self"), save={"self": ()}
)
def _threshold_backward(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        _to(
            sum_to(
                _call("threshold_backward", (go, c.saved("self"), c.arg("threshold"))),
                c.shape("grad_output"),
            ),
            c.dtype("grad_output"),
        )
        if c.needs(0)
        else None,
        _to(sum_to(zeros(go.shape, go), c.shape("self")), c.dtype("self")) if c.needs(1) else None,
    )


@derivative("sigmoid", "SigmoidBackward0", ("self",), save_result=True)
def _sigmoid(c: Ctx, g: list[Tensor]) -> Grads:
    # sigmoid_backward(grad, result): grad * (1 - result) * result
    r = c.result
    return (g[0] * (1 - r) * r,)


@derivative("tanh", "TanhBackward0", ("self",), save_result=True)
def _tanh(c: Ctx, g: list[Tensor]) -> Grads:
    r = c.result
    return (g[0] * (1 - r * r),)


# -- reductions ----------------------------------------------------------------------------------
def _unsqueeze_dims(g: Tensor, dims: Sequence[int] | None, ndim: int) -> Tensor:
    if not dims:
        dims = list(range(ndim))
    for d in sorted(d % ndim for d in dims):
        g = g.unsqueeze(d)
    return g


@derivative("sum", "SumBackward0", ("self",))
def _sum(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(g[0].expand(c.shape("self")), c.dtype("self")),)


@derivative("sum.dim_IntList", "SumBackward1", ("self",))
def _sum_dim(c: Ctx, g: list[Tensor]) -> Grads:
    shape = c.shape("self")
    go = g[0]
    if not c.arg("keepdim") and shape:
        go = _unsqueeze_dims(go, c.arg("dim"), len(shape))
    return (_to(go.expand(shape), c.dtype("self")),)


@derivative("mean", "MeanBackward0", ("self",))
def _mean(c: Ctx, g: list[Tensor]) -> Grads:
    shape = c.shape("self")
    return (_to(g[0].expand(shape) / max(math.prod(shape), 1), c.dtype("self")),)


@derivative("mean.dim", "MeanBackward1", ("self",))
def _mean_dim(c: Ctx, g: list[Tensor]) -> Grads:
    shape = c.shape("self")
    dims = c.arg("dim")
    n = math.prod(shape[d % len(shape)] for d in dims) if dims and shape else math.prod(shape)
    go = g[0]
    if not c.arg("keepdim") and shape:
        go = _unsqueeze_dims(go, dims, len(shape))
    return (_to(go.expand(shape) / max(n, 1), c.dtype("self")),)


# -- linear algebra -------------------------------------------------------------------------------
@derivative("mm", "MmBackward0", ("self", "mat2"), save={"mat2": (0,), "self": (1,)})
def _mm(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        go.mm(c.saved("mat2").t()) if c.needs(0) else None,
        c.saved("self").t().mm(go) if c.needs(1) else None,
    )


@derivative("mv", "MvBackward0", ("self", "vec"), save={"vec": (0,), "self": (1,)})
def _mv(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        go.unsqueeze(1).mm(c.saved("vec").unsqueeze(0)) if c.needs(0) else None,
        c.saved("self").t().mv(go) if c.needs(1) else None,
    )


@derivative("dot", "DotBackward0", ("self", "tensor"), save={"tensor": (0,), "self": (1,)})
def _dot(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        go * c.saved("tensor") if c.needs(0) else None,
        go * c.saved("self") if c.needs(1) else None,
    )


@derivative("bmm", "BmmBackward0", ("self", "mat2"), save={"mat2": (0,), "self": (1,)})
def _bmm(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        go.bmm(c.saved("mat2").transpose(1, 2)) if c.needs(0) else None,
        c.saved("self").transpose(1, 2).bmm(go) if c.needs(1) else None,
    )


# -- copies and fills -----------------------------------------------------------------------------
@derivative("clone", "CloneBackward0", ("self",))
def _clone(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0],)


@derivative("_to_copy", "ToCopyBackward0", ("self",))
def _to_copy(c: Ctx, g: list[Tensor]) -> Grads:
    return (_to(g[0], c.dtype("self")),)


@derivative("copy_", "torch::autograd::CopyBackwards", ("self", "src"))
def _copy_(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        zeros(go.shape, go) if c.needs(0) else None,
        _to(sum_to(go, c.shape("src")), c.dtype("src")) if c.needs(1) else None,
    )


@derivative("zero_", "ZeroBackward0", ("self",))
def _zero_(c: Ctx, g: list[Tensor]) -> Grads:
    return (zeros(g[0].shape, g[0]),)


@derivative("fill_.Scalar", "FillBackward2", ("self",))
def _fill_scalar(c: Ctx, g: list[Tensor]) -> Grads:
    return (zeros(g[0].shape, g[0]),)


@derivative("fill_.Tensor", "FillBackward3", ("self", "value"))
def _fill_tensor(c: Ctx, g: list[Tensor]) -> Grads:
    (go,) = g
    return (
        zeros(go.shape, go) if c.needs(0) else None,
        _to(go.sum(), c.dtype("value")) if c.needs(1) else None,
    )


# -- views ----------------------------------------------------------------------------------------
@derivative("view", "ViewBackward0", ("self",))
def _view(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].reshape(c.shape("self")),)


@derivative("_unsafe_view", "UnsafeViewBackward0", ("self",))
def _unsafe_view(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].reshape(c.shape("self")),)


@derivative("_reshape_alias", "ReshapeAliasBackward0", ("self",))
def _reshape_alias(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].reshape(c.shape("self")),)


@derivative("alias", "AliasBackward0", ("self",))
def _alias(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0],)


@derivative("t", "TBackward0", ("self",))
def _t(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].t(),)


@derivative("t_", "TBackward1", ("self",))
def _t_(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].t(),)


@derivative("transpose.int", "TransposeBackward0", ("self",))
def _transpose(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].transpose(c.arg("dim0"), c.arg("dim1")),)


@derivative("transpose_", "TransposeBackward1", ("self",))
def _transpose_(c: Ctx, g: list[Tensor]) -> Grads:
    return _transpose(c, g)


@derivative("permute", "PermuteBackward0", ("self",))
def _permute(c: Ctx, g: list[Tensor]) -> Grads:
    dims = c.arg("dims")
    n = len(dims)
    inverse = [0] * n
    for i, d in enumerate(dims):
        inverse[d % n] = i
    return (g[0].permute(*inverse),)


@derivative("unsqueeze", "UnsqueezeBackward0", ("self",))
def _unsqueeze(c: Ctx, g: list[Tensor]) -> Grads:
    return (g[0].squeeze(c.arg("dim")),)


@derivative("unsqueeze_", "UnsqueezeBackward1", ("self",))
def _unsqueeze_(c: Ctx, g: list[Tensor]) -> Grads:
    return _unsqueeze(c, g)


def _unsqueeze_to(g: Tensor, sizes: Sequence[int]) -> Tensor:
    """``unsqueeze_to(grad, sizes)``: put back every size-1 dimension; with none, the
    gradient itself passes through (not a view)."""
    for d, n in enumerate(sizes):
        if n == 1:
            g = _call("unsqueeze", (g, d))
    return g


def _unsqueeze_dim_to(g: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """``unsqueeze_to(grad, dim, sizes)``: only if that dimension had size 1."""
    if sizes and sizes[dim % len(sizes)] == 1:
        return _call("unsqueeze", (g, dim % len(sizes)))
    return g


@derivative("squeeze", "SqueezeBackward0", ("self",))
def _squeeze(c: Ctx, g: list[Tensor]) -> Grads:
    return (_unsqueeze_to(g[0], c.shape("self")),)


@derivative("squeeze_", "SqueezeBackward3", ("self",))
def _squeeze_(c: Ctx, g: list[Tensor]) -> Grads:
    return _squeeze(c, g)


@derivative("squeeze_.dim", "SqueezeBackward4", ("self",))
def _squeeze_dim_(c: Ctx, g: list[Tensor]) -> Grads:
    return (_unsqueeze_dim_to(g[0], c.arg("dim"), c.shape("self")),)


@derivative("squeeze.dim", "SqueezeBackward1", ("self",))
def _squeeze_dim(c: Ctx, g: list[Tensor]) -> Grads:
    return (_unsqueeze_dim_to(g[0], c.arg("dim"), c.shape("self")),)


@derivative("expand", "ExpandBackward0", ("self",))
def _expand(c: Ctx, g: list[Tensor]) -> Grads:
    return (sum_to(g[0], c.shape("self")),)


@derivative("select.int", "SelectBackward0", ("self",))
def _select(c: Ctx, g: list[Tensor]) -> Grads:
    z = zeros(c.shape("self"), g[0])
    with _below_ad_inplace_or_view():
        z.select(c.arg("dim"), c.arg("index")).copy_(g[0])
    return (z,)


@derivative("slice.Tensor", "SliceBackward0", ("self",))
def _slice(c: Ctx, g: list[Tensor]) -> Grads:
    z = zeros(c.shape("self"), g[0])
    with _below_ad_inplace_or_view():
        view = _call("slice.Tensor", (z, c.arg("dim"), c.arg("start"), c.arg("end"), c.arg("step")))
        view.copy_(g[0])
    return (z,)


def _split_grads(c: Ctx, g: list[Tensor | None], sizes: Sequence[int], dim: int) -> Grads:
    shape = c.shape("self")
    d = dim % len(shape)
    like = next(x for x in g if x is not None)
    z = zeros(shape, like)
    start = 0
    with _below_ad_inplace_or_view():
        for gi, n in zip(g, sizes):
            if gi is not None:
                _call("slice.Tensor", (z, d, start, start + n, 1)).copy_(gi)
            start += n
    return (z,)


@derivative("split.Tensor", "SplitBackward0", ("self",))
def _split(c: Ctx, g: list[Tensor]) -> Grads:
    shape = c.shape("self")
    dim = c.arg("dim") % len(shape)
    n, size = shape[dim], c.arg("split_size")
    sizes = [min(size, n - i) for i in range(0, n, size)] if size else [0]
    return _split_grads(c, list(g), sizes, dim)


@derivative("split_with_sizes", "SplitWithSizesBackward0", ("self",))
def _split_with_sizes(c: Ctx, g: list[Tensor]) -> Grads:
    return _split_grads(c, list(g), c.arg("split_sizes"), c.arg("dim"))


@derivative("unbind.int", "UnbindBackward0", ("self",))
def _unbind(c: Ctx, g: list[Tensor]) -> Grads:
    shape = c.shape("self")
    dim = c.arg("dim") % len(shape)
    like = next(x for x in g if x is not None)
    z = zeros(shape, like)
    with _below_ad_inplace_or_view():
        for i, gi in enumerate(g):
            if gi is not None:
                z.select(dim, i).copy_(gi)
    return (z,)


@derivative("as_strided", "AsStridedBackward0", ("self",), geometry=("self",))
def _as_strided(c: Ctx, g: list[Tensor]) -> Grads:
    from kernels.autograd.variable import as_strided_backward

    in_size, in_stride, in_offset = c.geometry("self")
    offset = c.arg("storage_offset")
    return (
        as_strided_backward(
            g[0],
            (in_size, in_stride, in_offset),
            list(c.arg("size")),
            list(c.arg("stride")),
            in_offset if offset is None else offset,
        ),
    )


@derivative("_as_strided_backward", "AsStridedBackwardBackward0", ("grad",))
def _as_strided_backward(c: Ctx, g: list[Tensor]) -> Grads:
    # linear in grad; its adjoint lays the base's gradient out in a storage and reads the
    # view back: scatter at the base's positions, gather at the view's
    base_size, base_stride = c.arg("base_size"), c.arg("base_stride")
    base_offset = c.arg("base_storage_offset")
    size, stride, offset = c.arg("size"), c.arg("stride"), c.arg("storage_offset")

    def extent(sz: list[int], st: list[int], off: int) -> int:
        return off + sum((n - 1) * s for n, s in zip(sz, st)) + 1 if all(sz) else 0

    n = max(extent(base_size, base_stride, base_offset), extent(size, stride, offset), 1)
    storage = zeros([n], g[0])
    _call("as_strided", (storage, list(base_size), list(base_stride), base_offset)).copy_(g[0])
    return (_call("as_strided", (storage, list(size), list(stride), offset)),)
