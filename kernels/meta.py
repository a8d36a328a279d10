"""Meta kernels: shapes and dtypes only, no data (mirrors the ``Meta`` entries
PyTorch registers from its structured kernels' meta functions).

A meta tensor's array is a zero-stride carrier (:func:`dispatch.tensorimpl.meta_array`):
it has a shape and a dtype and holds one element. View kernels are shared with
CPU (kernels/cpu.py registers them for both keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispatch import dtypes as dt
from dispatch.dtypes import DType
from dispatch.tensorimpl import Tensor, meta_array, new_tensor
from kernels import cpu as C
from kernels._promotion import result_type
from kernels._registry import meta


def new_meta(shape: Sequence[int], dtype: DType) -> Tensor:
    return new_tensor(meta_array(tuple(shape), dtype.numpy), "meta")


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x._data.shape) if isinstance(x, Tensor) else ()


# -- pointwise binary -----------------------------------------------------------------------
def check_same_device(*operands: Any) -> None:
    """``TensorIterator``'s device check: every tensor on the first one's device, except
    0-dim CPU tensors (scalars may come along)."""
    expected = None
    for o in operands:
        if not isinstance(o, Tensor):
            continue
        device = o.device.type
        if device == "cpu" and o._data.ndim == 0:
            continue  # a CPU scalar goes with any device and decides none
        if expected is None:
            expected = device
        elif device != expected:
            raise RuntimeError(
                f"Tensor on device {device} is not on the expected device {expected}!"
            )


def _make_binary(name: str, has_alpha: bool) -> None:
    def functional(self: Tensor, other: Any, *rest: Any) -> Tensor:
        check_same_device(self, other)
        r = C._result_dtype(name, self, other)
        return new_meta(C.broadcast_shape(_shape(self), _shape(other)), r)

    def inplace(self: Tensor, other: Any, *rest: Any) -> Tensor:
        check_same_device(self, other)
        r = C._result_dtype(name, self, other)
        C.check_cast(r, self.dtype)
        C.check_inplace_shape(self, _shape(other))
        return self

    meta(f"{name}.Tensor", f"{name}.Scalar")(functional)
    meta(f"{name}_.Tensor", f"{name}_.Scalar")(inplace)


for _n, _a in (("add", True), ("sub", True), ("mul", False), ("div", False)):
    _make_binary(_n, _a)


@meta("add.out", "mul.out")
def binary_out(self: Tensor, other: Tensor, *rest: Any) -> Tensor:
    out: Tensor = rest[-1]
    check_same_device(out, self, other)
    r = result_type(self, other)
    C.check_cast(r, out.dtype)
    shape = C.broadcast_shape(_shape(self), _shape(other))
    if out._data.shape != shape:
        out._data = meta_array(shape, out._data.dtype)
    return out


@meta("pow.Tensor_Tensor", "pow.Tensor_Scalar", "pow.Scalar")
def pow_(self: Any, exponent: Any) -> Tensor:
    check_same_device(self, exponent)
    r = C.pow_result_dtype(self, exponent)
    return new_meta(C.broadcast_shape(_shape(self), _shape(exponent)), r)


@meta("pow_.Scalar", "pow_.Tensor")
def pow_inplace(self: Tensor, exponent: Any) -> Tensor:
    check_same_device(self, exponent)
    C.check_cast(C.pow_result_dtype(self, exponent), self.dtype)
    C.check_inplace_shape(self, _shape(exponent))
    return self


@meta("eq.Tensor", "ne.Tensor", "lt.Tensor", "le.Tensor", "gt.Tensor", "ge.Tensor")
def compare(self: Tensor, other: Tensor) -> Tensor:
    check_same_device(self, other)
    return new_meta(C.broadcast_shape(_shape(self), _shape(other)), dt.bool_)


# -- unary ----------------------------------------------------------------------------------
@meta("neg", "relu")
def unary_same(self: Tensor) -> Tensor:
    return new_meta(_shape(self), self.dtype)


@meta("exp", "log", "sin", "cos", "sigmoid", "tanh", "reciprocal")
def unary_float(self: Tensor) -> Tensor:
    return new_meta(_shape(self), C._float_dtype(self))


@meta("neg_", "relu_", "exp_")
def unary_inplace(self: Tensor) -> Tensor:
    return self


@meta("threshold_backward")
def threshold_backward(grad_output: Tensor, self: Tensor, threshold: Any) -> Tensor:
    check_same_device(grad_output, self)
    r = result_type(grad_output, self)
    return new_meta(C.broadcast_shape(_shape(grad_output), _shape(self)), r)


# -- reductions -----------------------------------------------------------------------------
def _reduced(shape: tuple[int, ...], dim: list[int] | None, keepdim: bool) -> tuple[int, ...]:
    axes = C._reduce_dims(dim, len(shape)) if shape else C._wrap_dims_0d(dim)
    if axes is None:
        return tuple(1 for _ in shape) if keepdim else ()
    if keepdim:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


@meta("sum")
def sum_(self: Tensor, dtype: DType | None = None) -> Tensor:
    return new_meta((), C._sum_dtype(self, dtype))


@meta("sum.dim_IntList")
def sum_dim(
    self: Tensor, dim: list[int] | None, keepdim: bool = False, dtype: DType | None = None
) -> Tensor:
    return new_meta(_reduced(_shape(self), dim, keepdim), C._sum_dtype(self, dtype))


@meta("any", "all")
def any_all(self: Tensor) -> Tensor:
    return new_meta((), dt.bool_)


@meta("mean")
def mean(self: Tensor, dtype: DType | None = None) -> Tensor:
    return new_meta((), C._mean_dtype(self, dtype))


@meta("mean.dim")
def mean_dim(
    self: Tensor, dim: list[int] | None, keepdim: bool = False, dtype: DType | None = None
) -> Tensor:
    return new_meta(_reduced(_shape(self), dim, keepdim), C._mean_dtype(self, dtype))


# -- linear algebra -------------------------------------------------------------------------
@meta("mm")
def mm(self: Tensor, mat2: Tensor) -> Tensor:
    return new_meta(C.check_mm(self, mat2), self.dtype)


@meta("mv")
def mv(self: Tensor, vec: Tensor) -> Tensor:
    return new_meta(C.check_mv(self, vec), self.dtype)


@meta("dot")
def dot(self: Tensor, other: Tensor) -> Tensor:
    return new_meta(C.check_dot(self, other), self.dtype)


@meta("bmm")
def bmm(self: Tensor, mat2: Tensor) -> Tensor:
    return new_meta(C.check_bmm(self, mat2), self.dtype)


# -- copies and fills -----------------------------------------------------------------------
@meta("clone")
def clone(self: Tensor, memory_format: Any = None) -> Tensor:
    return new_meta(_shape(self), self.dtype)


@meta("copy_")
def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    C.check_inplace_shape(self, _shape(src))
    if not self.is_meta:
        raise NotImplementedError("Cannot copy out of meta tensor; no data!")
    return self


@meta("zero_", "fill_.Scalar")
def fill(self: Tensor, *rest: Any) -> Tensor:
    return self


@meta("fill_.Tensor")
def fill_tensor(self: Tensor, value: Tensor) -> Tensor:
    if value._data.ndim != 0:
        raise RuntimeError(
            "fill_ only supports 0-dimension value tensor but got tensor with "
            f"{value._data.ndim} dimensions."
        )
    return self


# -- factories ------------------------------------------------------------------------------
@meta("empty.memory_format", "zeros", "ones")
def factory(size: list[int], dtype: DType | None = None, *rest: Any) -> Tensor:
    return new_meta(C._size(size), C._float_or(dtype))


@meta("empty_strided")
def empty_strided(
    size: list[int], stride: list[int], dtype: DType | None = None, *rest: Any
) -> Tensor:
    return new_meta(C._size(size), C._float_or(dtype))


@meta("rand")
def rand(size: list[int], dtype: DType | None = None, *rest: Any) -> Tensor:
    return new_meta(C._size(size), C.check_random_dtype(dtype, "check_uniform_bounds"))


@meta("randn")
def randn(size: list[int], dtype: DType | None = None, *rest: Any) -> Tensor:
    return new_meta(C._size(size), C.check_random_dtype(dtype, "normal_kernel_cpu"))


@meta("full")
def full(size: list[int], fill_value: Any, dtype: DType | None = None, *rest: Any) -> Tensor:
    return new_meta(C._size(size), C.full_dtype(fill_value, dtype))


@meta("arange")
def arange(end: Any, dtype: DType | None = None, *rest: Any) -> Tensor:
    n, d = C.arange_values(0, end, 1, dtype)
    return new_meta((n,), d)


@meta("arange.start_step")
def arange_start_step(
    start: Any, end: Any, step: Any = 1, dtype: DType | None = None, *rest: Any
) -> Tensor:
    n, d = C.arange_values(start, end, step, dtype)
    return new_meta((n,), d)
