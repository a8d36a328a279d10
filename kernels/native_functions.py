"""The standard operator set, declared once: this project's ``native_functions.yaml``.

Each entry is a schema in PyTorch's own spelling (the schemas torch 2.13 prints
for these overloads), plus what kind of kernel serves it:

* ``cpu``  — a numpy kernel at CPU and a shape-only kernel at Meta;
* ``cea``  — one CompositeExplicitAutograd kernel serving every backend
  (factory-like ops whose kernel is device-generic);
* ``cia``  — a CompositeImplicitAutograd kernel that decomposes into other
  operators (so autograd comes from the operators it calls);
* ``factory`` — a factory function: a BackendSelect kernel picks the backend
  from ``device=``, then CPU and Meta kernels allocate.

``view`` names the kind of alias a ``Tensor(a)`` return is: ``"view"`` (a
differentiable view, tracked with ``_base``), ``"multi"`` (several views of one
base: unbind/split/chunk) or ``"non_differentiable"`` (``detach``: shares the
version counter, is not a view). ``bump_version=False`` marks the one mutable
schema whose ADInplaceOrView kernel PyTorch writes by hand without a bump
(``detach_`` only changes autograd metadata). ``inplace_view=True`` is torch's
``inplace_view`` tag: an in-place op that only changes the tensor's view metadata
(``t_``, ``transpose_``...); its Autograd kernel sets the tensor's history as a view
op does (``set_history``) instead of rebasing it (no CopySlices on a view's base).
"""

from __future__ import annotations

from typing import Final

import attrs


@attrs.frozen
class NativeFunction:
    schema: str
    kind: str  # "cpu" | "cea" | "cia" | "factory"
    view: str | None = None
    bump_version: bool = True  # False: a Tensor(a!) that PyTorch's kernel does not bump (detach_)
    inplace_view: bool = False  # torch's `inplace_view` tag: t_, transpose_, unsqueeze_, squeeze_


_F = NativeFunction

NATIVE_FUNCTIONS: Final[tuple[NativeFunction, ...]] = (
    # -- pointwise binary ---------------------------------------------------------------
    _F("aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor", "cpu"),
    _F("aten::add.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor", "cpu"),
    _F(
        "aten::add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)",
        "cpu",
    ),
    _F("aten::add_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)", "cpu"),
    _F("aten::add_.Scalar(Tensor(a!) self, Scalar other, Scalar alpha=1) -> Tensor(a!)", "cpu"),
    _F("aten::sub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor", "cpu"),
    _F("aten::sub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor", "cpu"),
    _F("aten::sub_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)", "cpu"),
    _F("aten::sub_.Scalar(Tensor(a!) self, Scalar other, Scalar alpha=1) -> Tensor(a!)", "cpu"),
    _F("aten::rsub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor", "cea"),
    _F("aten::mul.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::mul.Scalar(Tensor self, Scalar other) -> Tensor", "cpu"),
    _F("aten::mul.out(Tensor self, Tensor other, *, Tensor(a!) out) -> Tensor(a!)", "cpu"),
    _F("aten::mul_.Tensor(Tensor(a!) self, Tensor other) -> Tensor(a!)", "cpu"),
    _F("aten::mul_.Scalar(Tensor(a!) self, Scalar other) -> Tensor(a!)", "cpu"),
    _F("aten::div.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::div.Scalar(Tensor self, Scalar other) -> Tensor", "cpu"),
    _F("aten::div_.Tensor(Tensor(a!) self, Tensor other) -> Tensor(a!)", "cpu"),
    _F("aten::div_.Scalar(Tensor(a!) self, Scalar other) -> Tensor(a!)", "cpu"),
    _F("aten::pow.Tensor_Tensor(Tensor self, Tensor exponent) -> Tensor", "cpu"),
    _F("aten::pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor", "cpu"),
    _F("aten::pow.Scalar(Scalar self, Tensor exponent) -> Tensor", "cpu"),
    _F("aten::pow_.Scalar(Tensor(a!) self, Scalar exponent) -> Tensor(a!)", "cpu"),
    _F("aten::pow_.Tensor(Tensor(a!) self, Tensor exponent) -> Tensor(a!)", "cpu"),
    # -- comparisons (bool results, never differentiable) ------------------------------
    _F("aten::eq.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::ne.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::lt.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::le.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::gt.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    _F("aten::ge.Tensor(Tensor self, Tensor other) -> Tensor", "cpu"),
    # -- pointwise unary ----------------------------------------------------------------
    _F("aten::neg(Tensor self) -> Tensor", "cpu"),
    _F("aten::reciprocal(Tensor self) -> Tensor", "cpu"),
    _F("aten::neg_(Tensor(a!) self) -> Tensor(a!)", "cpu"),
    _F("aten::exp(Tensor self) -> Tensor", "cpu"),
    _F("aten::exp_(Tensor(a!) self) -> Tensor(a!)", "cpu"),
    _F("aten::log(Tensor self) -> Tensor", "cpu"),
    _F("aten::sin(Tensor self) -> Tensor", "cpu"),
    _F("aten::cos(Tensor self) -> Tensor", "cpu"),
    _F("aten::relu(Tensor self) -> Tensor", "cpu"),
    _F("aten::relu_(Tensor(a!) self) -> Tensor(a!)", "cpu"),
    _F("aten::sigmoid(Tensor self) -> Tensor", "cpu"),
    _F("aten::tanh(Tensor self) -> Tensor", "cpu"),
    # -- reductions and linear algebra ----------------------------------------------------
    _F("aten::sum(Tensor self, *, ScalarType? dtype=None) -> Tensor", "cpu"),
    _F(
        "aten::sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor",
        "cpu",
    ),
    _F("aten::mean(Tensor self, *, ScalarType? dtype=None) -> Tensor", "cpu"),
    _F("aten::any(Tensor self) -> Tensor", "cpu"),
    _F("aten::all(Tensor self) -> Tensor", "cpu"),
    _F(
        "aten::mean.dim(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor",
        "cpu",
    ),
    _F("aten::mm(Tensor self, Tensor mat2) -> Tensor", "cpu"),
    _F("aten::mv(Tensor self, Tensor vec) -> Tensor", "cpu"),
    _F("aten::dot(Tensor self, Tensor tensor) -> Tensor", "cpu"),
    _F("aten::bmm(Tensor self, Tensor mat2) -> Tensor", "cpu"),
    _F("aten::matmul(Tensor self, Tensor other) -> Tensor", "cia"),
    # -- copies and in-place fills ----------------------------------------------------------
    _F("aten::clone(Tensor self, *, MemoryFormat? memory_format=None) -> Tensor", "cpu"),
    _F(
        "aten::contiguous(Tensor(a) self, *, MemoryFormat memory_format=contiguous_format) -> Tensor(a)",
        "cia",
    ),
    _F("aten::copy_(Tensor(a!) self, Tensor src, bool non_blocking=False) -> Tensor(a!)", "cpu"),
    _F("aten::zero_(Tensor(a!) self) -> Tensor(a!)", "cpu"),
    _F("aten::fill_.Scalar(Tensor(a!) self, Scalar value) -> Tensor(a!)", "cpu"),
    _F("aten::fill_.Tensor(Tensor(a!) self, Tensor value) -> Tensor(a!)", "cpu"),
    _F("aten::detach(Tensor(a) self) -> Tensor(a)", "cpu", view="non_differentiable"),
    _F("aten::detach_(Tensor(a!) self) -> Tensor(a!)", "cpu", bump_version=False),
    _F(
        "aten::_to_copy(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, bool non_blocking=False, MemoryFormat? memory_format=None) -> Tensor",
        "cpu",
    ),
    # -- views ------------------------------------------------------------------------------
    _F("aten::view(Tensor(a) self, SymInt[] size) -> Tensor(a)", "cpu", view="view"),
    _F("aten::alias(Tensor(a) self) -> Tensor(a)", "cpu", view="view"),
    _F(
        "aten::_reshape_alias(Tensor(a) self, SymInt[] size, SymInt[] stride) -> Tensor(a)",
        "cpu",
        view="view",
    ),
    _F(
        "aten::as_strided(Tensor(a) self, SymInt[] size, SymInt[] stride, SymInt? storage_offset=None) -> Tensor(a)",
        "cpu",
        view="view",
    ),
    # dispatchsim's own: the backward of a view regenerated as AsStridedBackward0
    _F(
        "aten::_as_strided_backward(Tensor grad, SymInt[] base_size, SymInt[] base_stride, SymInt base_storage_offset, SymInt[] size, SymInt[] stride, SymInt storage_offset) -> Tensor",
        "cpu",
    ),
    _F("aten::_unsafe_view(Tensor self, SymInt[] size) -> Tensor", "cpu"),
    _F("aten::reshape(Tensor(a) self, SymInt[] shape) -> Tensor(a)", "cia"),
    _F("aten::view_as(Tensor(a) self, Tensor other) -> Tensor(a)", "cia"),
    _F("aten::t(Tensor(a) self) -> Tensor(a)", "cpu", view="view"),
    _F("aten::transpose.int(Tensor(a) self, int dim0, int dim1) -> Tensor(a)", "cpu", view="view"),
    _F("aten::permute(Tensor(a) self, int[] dims) -> Tensor(a)", "cpu", view="view"),
    _F("aten::unsqueeze(Tensor(a) self, int dim) -> Tensor(a)", "cpu", view="view"),
    _F("aten::squeeze(Tensor(a) self) -> Tensor(a)", "cpu", view="view"),
    _F("aten::squeeze.dim(Tensor(a) self, int dim) -> Tensor(a)", "cpu", view="view"),
    _F(
        "aten::expand(Tensor(a) self, SymInt[] size, *, bool implicit=False) -> Tensor(a)",
        "cpu",
        view="view",
    ),
    _F("aten::narrow(Tensor(a) self, int dim, SymInt start, SymInt length) -> Tensor(a)", "cia"),
    _F("aten::select.int(Tensor(a) self, int dim, SymInt index) -> Tensor(a)", "cpu", view="view"),
    _F(
        "aten::slice.Tensor(Tensor(a) self, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1) -> Tensor(a)",
        "cpu",
        view="view",
    ),
    _F(
        "aten::split.Tensor(Tensor(a -> *) self, SymInt split_size, int dim=0) -> Tensor(a)[]",
        "cpu",
        view="multi",
    ),
    _F(
        "aten::split_with_sizes(Tensor(a -> *) self, SymInt[] split_sizes, int dim=0) -> Tensor(a)[]",
        "cpu",
        view="multi",
    ),
    _F("aten::chunk(Tensor(a -> *) self, int chunks, int dim=0) -> Tensor(a)[]", "cia"),
    _F("aten::unbind.int(Tensor(a -> *) self, int dim=0) -> Tensor(a)[]", "cpu", view="multi"),
    # -- in-place view-metadata ops -----------------------------------------------------------
    _F("aten::t_(Tensor(a!) self) -> Tensor(a!)", "cpu", inplace_view=True),
    _F(
        "aten::transpose_(Tensor(a!) self, int dim0, int dim1) -> Tensor(a!)",
        "cpu",
        inplace_view=True,
    ),
    _F("aten::unsqueeze_(Tensor(a!) self, int dim) -> Tensor(a!)", "cpu", inplace_view=True),
    _F("aten::squeeze_(Tensor(a!) self) -> Tensor(a!)", "cpu", inplace_view=True),
    # -- factories -------------------------------------------------------------------------
    _F(
        "aten::empty.memory_format(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::empty_strided(SymInt[] size, SymInt[] stride, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::zeros(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::ones(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::full(SymInt[] size, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::arange(Scalar end, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::arange.start_step(Scalar start, Scalar end, Scalar step=1, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::rand(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::randn(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "factory",
    ),
    _F(
        "aten::ones_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor",
        "cea",
    ),
    _F(
        "aten::zeros_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor",
        "cea",
    ),
)
