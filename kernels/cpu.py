"""CPU kernels: numpy does the arithmetic (mirrors the ``CPU`` entries of
aten/src/ATen/native, as RegisterCPU.cpp registers them).

Each kernel takes the full argument tuple in schema order. Results are
allocated with :func:`dispatch.tensorimpl.new_cpu_tensor` (which reads the
inference-mode flag, as TensorImpl's constructor does); views wrap a real
numpy view of the input's memory with :func:`dispatch.tensorimpl.new_view_tensor`.
The same view kernels serve Meta tensors, whose arrays are zero-stride shape
carriers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dispatch import dtypes as dt
from dispatch.dtypes import DType
from dispatch.tensorimpl import (
    Tensor,
    meta_array,
    new_cpu_tensor,
    new_tensor,
    new_view_tensor,
)
from kernels._fp_errors import ignore_fp_errors, restore_fp_errors
from kernels._promotion import can_cast, result_type, scalar_dtype
from kernels._registry import cpu, meta

Array = np.ndarray[Any, Any]


# ------------------------------------------------------------------------------------------
# shared checks, with PyTorch's error texts
# ------------------------------------------------------------------------------------------
def wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim + n if dim < 0 else dim


def _shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """``infer_size``: the broadcast of two shapes; torch names the first mismatching
    dimension from the right. (Plain Python: ``np.broadcast_shapes`` costs ~1.5 us, a
    fifth of a small pointwise op.)"""
    a = tuple(a)
    b = tuple(b)
    if a == b or not b:
        return a
    if not a:
        return b
    la, lb = len(a), len(b)
    # the other common case: one shape is the other's tail (a bias, a row of weights)
    if lb < la and a[la - lb :] == b:
        return a
    if la < lb and b[lb - la :] == a:
        return b
    n = max(la, lb)
    out = [0] * n
    for i in range(1, n + 1):
        da = a[la - i] if i <= la else 1
        db = b[lb - i] if i <= lb else 1
        if da == db or db == 1:
            out[n - i] = da
        elif da == 1:
            out[n - i] = db
        else:
            raise RuntimeError(
                f"The size of tensor a ({da}) must match the size of tensor b ({db}) at "
                f"non-singleton dimension {n - i}"
            )
    return tuple(out)


def check_inplace_shape(self: Tensor, other_shape: Sequence[int]) -> None:
    out = broadcast_shape(self._data.shape, other_shape)
    if out != self._data.shape:
        raise RuntimeError(
            f"output with shape {_shape_str(self._data.shape)} doesn't match the broadcast shape "
            f"{_shape_str(out)}"
        )


def check_cast(result: DType, out: DType) -> None:
    if not can_cast(result, out):
        raise RuntimeError(
            f"result type {_type_name(result)} can't be cast to the desired output type "
            f"{_type_name(out)}"
        )


def _type_name(d: DType) -> str:
    return {
        "float32": "Float",
        "float64": "Double",
        "float16": "Half",
        "int64": "Long",
        "int32": "Int",
        "bool": "Bool",
    }[d.name]


def _arr(x: Any, dtype: DType) -> Any:
    """A numpy operand of ``dtype``: a tensor's array or a Python scalar."""
    if isinstance(x, Tensor):
        a = x._data
        return a if a.dtype == dtype.numpy else a.astype(dtype.numpy)
    return dtype.numpy.type(x)


def _writable(t: Tensor, allow_overlap: bool = False) -> Array:
    """The array to write into, refusing one whose elements share memory
    (``assert_no_internal_overlap``: a dimension of size > 1 with stride 0) — except for
    fill_/zero_, which write one value everywhere and so are allowed, as in torch."""
    a = t._data
    if (
        not allow_overlap
        and not a.flags.c_contiguous  # (a stride-0 dimension of size > 1 is not contiguous)
        and a.size
        and any(n > 1 and st == 0 for n, st in zip(a.shape, a.strides))
    ):
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers to a "
            "single memory location. Please clone() the tensor before performing the operation."
        )
    if not a.flags.writeable:
        raise RuntimeError("cannot write to a tensor without storage")
    return a


def non_overlapping_and_dense(a: Array) -> bool:
    """``compute_non_overlapping_and_dense``: some permutation of the dimensions makes the
    array contiguous (dimensions of size < 2 ignored)."""
    if a.ndim == 0:
        return True
    item = a.itemsize
    sizes, strides = a.shape, [st // item for st in a.strides]
    if a.ndim == 1:
        return sizes[0] < 2 or strides[0] == 1
    perm = sorted(range(a.ndim), key=lambda d: (sizes[d] < 2, strides[d] if sizes[d] >= 2 else 0))
    require = 1
    for d in perm:
        if sizes[d] < 2:
            return True
        if strides[d] != require:
            return False
        require *= sizes[d]
    return True


def _data_ptr(a: Array) -> int:
    return int(a.__array_interface__["data"][0])


def overlap_status(out: Tensor, other: Tensor) -> str:
    """``get_overlap_status``: "full" (the same tensor, or the same memory with the same
    strides), "partial", "no", or "too_hard" when either is not non-overlapping-and-dense."""
    a, b = out._data, other._data
    if other is out:
        return "full"
    if a.size == 0 or b.size == 0:
        return "no"
    if not (non_overlapping_and_dense(a) and non_overlapping_and_dense(b)):
        return "too_hard"
    a_begin, b_begin = _data_ptr(a), _data_ptr(b)
    a_end, b_end = a_begin + a.size * a.itemsize, b_begin + b.size * b.itemsize
    if not np.may_share_memory(a, b):  # different storages
        return "no"
    if a_begin == b_begin and a_end == b_end:
        return "full" if a.strides == b.strides else "partial"
    if a_begin < b_end and b_begin < a_end:
        return "partial"
    return "no"


def check_input_overlap(out: Tensor, inputs: Sequence[Any]) -> bool:
    """TensorIterator's ``compute_mem_overlaps`` for the inputs: ``assert_no_partial_overlap``
    for each, in order — an input may be the written-to tensor itself (or the same memory
    laid out alike) or share no memory with it, not part of it; decided only when both are
    non-overlapping and dense, otherwise it is "too hard" and the op goes ahead. True when an input the check let through ("too hard") shares memory
    with the output: the result then depends on the order in which the elements are visited,
    and :func:`elementwise_in_order` computes it that way (numpy would buffer the inputs)."""
    in_order = False
    for x in inputs:
        if not isinstance(x, Tensor) or x is out or x._is_wrapped_number:
            continue  # (a wrapped number's memory is its own)
        if not np.may_share_memory(out._data, x._data):
            continue  # "no" (or "too hard" with nothing shared)
        status = overlap_status(out, x)
        if status == "partial":
            raise RuntimeError(
                "unsupported operation: some elements of the input tensor and the written-to "
                "tensor refer to a single memory location. Please clone() the tensor before "
                "performing the operation."
            )
        if status == "too_hard" and np.shares_memory(out._data, x._data):
            in_order = True
    return in_order


def _iteration_order(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> list[int]:
    """``TensorIteratorBase::reorder_dimensions``: the dimensions fastest-moving first, sorted
    by the operands' strides (the output's first; a broadcast stride decides nothing)."""
    ndim = len(shape)
    perm = list(range(ndim - 1, -1, -1))
    if ndim <= 1:
        return perm

    def should_swap(dim0: int, dim1: int) -> int:
        for st in strides:
            s0, s1 = st[dim0], st[dim1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 < s1:
                return -1
            if s0 > s1:
                return 1
            if shape[dim0] > shape[dim1]:
                return 1
        return 0

    for i in range(1, ndim):  # insertion sort with ambiguous comparisons, as torch's
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    return perm


def elementwise_in_order(out: Array, inputs: Sequence[Any], compute: Callable[..., Any]) -> None:
    """Write ``compute(*elements)`` into ``out`` one element at a time, reading each input
    element just before its output element is written, in TensorIterator's order — what
    torch's (scalar) CPU loops do when an input aliases the output in a way the overlap check
    could not decide. Inputs are arrays broadcast to ``out``'s shape, or Python scalars."""
    shape = out.shape
    arrays = [np.broadcast_to(x, shape) if isinstance(x, np.ndarray) else None for x in inputs]

    def op_strides(a: Array) -> list[int]:
        # TensorIterator's compute_strides: a broadcast dimension has stride 0
        return [0 if (n != 1 and st == 0) else st for n, st in zip(shape, a.strides)]

    strides = [op_strides(out)] + [op_strides(a) for a in arrays if a is not None]
    perm = _iteration_order(shape, strides)
    for rev in np.ndindex(*(shape[d] for d in reversed(perm))):
        idx = [0] * len(shape)
        for pos, d in enumerate(reversed(perm)):
            idx[d] = rev[pos]
        key = tuple(idx)
        values = [a[key] if a is not None else x for a, x in zip(arrays, inputs)]
        out[key] = compute(*values)


# ------------------------------------------------------------------------------------------
# pointwise binary: add sub mul div pow
# ------------------------------------------------------------------------------------------
def _operand(x: Any) -> Any:
    """A tensor's array, or the Python scalar itself."""
    return x._data if isinstance(x, Tensor) else x


def _binary_compute(
    fn: Callable[..., Any], a: Any, b: Any, alpha: Any, r: DType, out: Array | None = None
) -> Any:
    x = _arr(a, r)
    y = _arr(b, r)
    if alpha is not None and alpha != 1:
        if not r.is_floating_point and isinstance(alpha, float):
            raise RuntimeError(
                "For integral input tensors, argument alpha must not be a floating point number."
            )
        y = np.multiply(y, r.numpy.type(alpha), dtype=r.numpy)
    token = ignore_fp_errors()  # torch computes inf/nan silently
    try:
        if out is None:
            return fn(x, y, dtype=r.numpy)
        return fn(x, y, out=out, casting="unsafe")
    finally:
        restore_fp_errors(token)


def _operand_dtype(x: Any) -> DType:
    return x.dtype if isinstance(x, Tensor) else scalar_dtype(x)


def _result_dtype(name: str, a: Any, b: Any) -> DType:
    r = result_type(a, b)
    if name == "div" and not r.is_floating_point:
        return dt.float32
    if name == "sub":
        da, db = _operand_dtype(a), _operand_dtype(b)
        if da is dt.bool_ and db is dt.bool_:
            raise RuntimeError(
                "Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                "`^` or `logical_xor()` operator instead."
            )
        if da is dt.bool_ or db is dt.bool_:
            raise RuntimeError(
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
    return r


def functional_shape(*operands: Any) -> tuple[int, ...]:
    """The broadcast shape of a pointwise op's operands (torch's errors on mismatch)."""
    shape: tuple[int, ...] | None = None
    for o in operands:
        if isinstance(o, Tensor):
            s = o._data.shape
            shape = s if shape is None else broadcast_shape(shape, s)
    return () if shape is None else shape


def iterator_output(shape: tuple[int, ...], operands: Sequence[Any], dtype: DType) -> Array:
    """A fresh output array laid out as TensorIterator allocates one: operands of one shape
    that are all contiguous, or all dense with the same strides, give that layout
    (``fast_set_up``); otherwise the dimensions are ordered by the operands' strides
    (``reorder_dimensions``, broadcast dimensions deciding nothing) and the output is dense
    in that order."""
    if len(shape) <= 1:  # one order only
        return np.empty(shape, dtype=dtype.numpy)
    # 0-dim operands (wrapped numbers among them) are all-broadcast: they decide nothing
    arrays = [o._data for o in operands if isinstance(o, Tensor) and o._data.ndim]
    if all(a.flags.c_contiguous for a in arrays) and (
        all(a.shape == shape for a in arrays) or (0 not in shape and 1 not in shape)
    ):
        # contiguous operands: the fast set-up, or (no size-0/1 output dimension, so no
        # stride ties) strides strictly decreasing wherever not broadcast — C order again
        return np.empty(shape, dtype=dtype.numpy)
    if all(a.shape == shape for a in arrays) and len({a.strides for a in arrays}) == 1:
        a = arrays[0]
        if non_overlapping_and_dense(a):
            item = a.itemsize
            strides = [st // item * dtype.numpy.itemsize for st in a.strides]
            buf = np.empty(max(a.size, 1), dtype=dtype.numpy)
            return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=strides)
    ndim = len(shape)
    op_strides = []
    for a in arrays:
        b = np.broadcast_to(a, shape) if a.shape != shape else a
        op_strides.append([st // a.itemsize for st in b.strides])
    perm = _iteration_order(shape, op_strides)
    if perm == list(range(ndim - 1, -1, -1)):
        return np.empty(shape, dtype=dtype.numpy)
    strides = [0] * ndim
    step = dtype.numpy.itemsize
    for d in perm:
        strides[d] = step
        step *= shape[d]
    buf = np.empty(max(math.prod(shape), 1), dtype=dtype.numpy)
    return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=strides)


def _make_binary(name: str, fn: Callable[..., Any], has_alpha: bool) -> None:
    def functional(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
        # Fast path: two floating tensors of one dtype, alpha 1. The result dtype is
        # theirs (for all four ops: no promotion to work out, no error possible), and
        # same-shape contiguous operands give a C-order output without the layout search.
        if type(other) is Tensor and type(alpha) is int and alpha == 1:
            x = self._data
            y = other._data
            dtype = x.dtype
            if dtype.kind == "f" and dtype == y.dtype:
                shape = x.shape
                if shape == y.shape and (
                    x.ndim <= 1 or (x.flags.c_contiguous and y.flags.c_contiguous)
                ):
                    res = np.empty(shape, dtype)
                else:  # broadcasting (a bias add) or strided operands
                    shape = broadcast_shape(shape, y.shape)
                    if (
                        0 not in shape
                        and 1 not in shape
                        and x.flags.c_contiguous
                        and y.flags.c_contiguous
                    ):  # iterator_output's contiguous case, inlined
                        res = np.empty(shape, dtype)
                    else:
                        res = iterator_output(shape, (self, other), dt.from_numpy(dtype))
                token = ignore_fp_errors()
                try:
                    fn(x, y, out=res)
                finally:
                    restore_fp_errors(token)
                return new_cpu_tensor(res)
        r = _result_dtype(name, self, other)
        shape = functional_shape(self, other)
        out = iterator_output(shape, (self, other), r)
        return new_cpu_tensor(_binary_compute(fn, self, other, alpha, r, out=out))

    def inplace(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
        # TensorIterator's build order: memory overlaps, then shapes, then dtypes
        out = _writable(self)
        in_order = check_input_overlap(self, (other,))
        r = _result_dtype(name, self, other)
        check_inplace_shape(self, other._data.shape if isinstance(other, Tensor) else ())
        check_cast(r, self.dtype)
        if in_order:
            elementwise_in_order(
                out,
                (self._data, _operand(other)),
                lambda x, y: _binary_compute(fn, x, y, alpha, r),
            )
        else:
            _binary_compute(fn, self, other, alpha, r, out=out)
        return self

    def out_variant(self: Tensor, other: Tensor, alpha: Any, out: Tensor) -> Tensor:
        r = _result_dtype(name, self, other)
        check_cast(r, out.dtype)
        shape = broadcast_shape(self._data.shape, other._data.shape)
        if out._data.shape != shape:
            # torch resizes the out tensor (and warns when it was not empty)
            out._data = np.empty(shape, dtype=out._data.dtype)
        dst = _writable(out)
        if check_input_overlap(out, (self, other)):
            elementwise_in_order(
                dst,
                (self._data, other._data),
                lambda x, y: _binary_compute(fn, x, y, alpha, r),
            )
        else:
            _binary_compute(fn, self, other, alpha, r, out=dst)
        return out

    def out_variant_no_alpha(self: Tensor, other: Tensor, out: Tensor) -> Tensor:
        return out_variant(self, other, 1, out)

    if has_alpha:
        cpu(f"{name}.Tensor", f"{name}.Scalar")(functional)
        cpu(f"{name}_.Tensor", f"{name}_.Scalar")(inplace)
    else:
        cpu(f"{name}.Tensor", f"{name}.Scalar")(lambda self, other: functional(self, other))
        cpu(f"{name}_.Tensor", f"{name}_.Scalar")(lambda self, other: inplace(self, other))
    if name == "add":
        cpu("add.out")(out_variant)
    if name == "mul":
        cpu("mul.out")(out_variant_no_alpha)


_make_binary("add", np.add, True)
_make_binary("sub", np.subtract, True)
_make_binary("mul", np.multiply, False)
_make_binary("div", np.true_divide, False)


def pow_result_dtype(base: Any, exponent: Any) -> DType:
    """The result dtype of ``pow``, with torch's errors for what it does not compute."""
    r = result_type(base, exponent)
    if r is dt.bool_ and isinstance(exponent, Tensor) and not exponent._is_wrapped_number:
        raise NotImplementedError("\"pow\" not implemented for 'Bool'")
    if (
        not r.is_floating_point
        and not isinstance(exponent, Tensor)
        and not isinstance(exponent, bool)
        and exponent < 0
    ):
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return r


def _power(base: Any, exponent: Any, r: DType, out: Array | None = None) -> Any:
    x, y = _arr(base, r), _arr(exponent, r)
    if r is dt.bool_:  # x ** y on {0, 1}: 1 unless x is 0 and y is 1
        res = np.logical_or(x, np.logical_not(y))
        if out is None:
            return res
        out[...] = res
        return out
    if not r.is_floating_point:
        # torch's integer pow: a negative exponent tensor gives 0 (1 for base 1, +-1 for -1)
        y_safe = np.where(np.asarray(y) < 0, 0, y)
        res = np.where(
            np.asarray(y) < 0,
            np.where(x == 1, 1, np.where(x == -1, np.where(np.asarray(y) % 2 == 0, 1, -1), 0)),
            np.power(x, y_safe),
        ).astype(r.numpy)
        if out is None:
            return res
        np.copyto(out, res, casting="unsafe")
        return out
    with np.errstate(all="ignore"):
        special = None if isinstance(exponent, Tensor) else _POW_SPECIAL.get(float(exponent))
        if special is not None:
            # pow_tensor_scalar_kernel sends these exponents to sqrt, rsqrt (1 / sqrt: -inf
            # at -0.0, where pow gives inf) and reciprocal. (torch also computes x * x,
            # x * x * x and 1 / (x * x) for 2, 3 and -2, which numpy's pow can round an
            # ulp differently; those stay with np.power.)
            res = np.asarray(special(x)).astype(r.numpy, copy=False)
            if out is None:
                return res
            np.copyto(out, res, casting="unsafe")
            return out
        if out is None:
            return np.power(x, y, dtype=r.numpy)
        return np.power(x, y, out=out, casting="unsafe")


_POW_SPECIAL: dict[float, Callable[[Any], Any]] = {
    0.5: np.sqrt,
    -0.5: lambda x: 1 / np.sqrt(x),
    -1.0: np.reciprocal,
}


@cpu("pow.Tensor_Tensor", "pow.Tensor_Scalar")
def pow_(self: Tensor, exponent: Any) -> Tensor:
    r = pow_result_dtype(self, exponent)
    out = iterator_output(functional_shape(self, exponent), (self, exponent), r)
    return new_cpu_tensor(_power(self, exponent, r, out=out))


@cpu("pow.Scalar")
def pow_scalar(self: Any, exponent: Tensor) -> Tensor:
    r = pow_result_dtype(self, exponent)
    return new_cpu_tensor(np.asarray(_power(self, exponent, r)))


@cpu("pow_.Scalar", "pow_.Tensor")
def pow_inplace(self: Tensor, exponent: Any) -> Tensor:
    out = _writable(self)  # TensorIterator's order: memory overlaps, shapes, dtypes
    in_order = check_input_overlap(self, (exponent,))
    r = pow_result_dtype(self, exponent)
    if isinstance(exponent, Tensor):
        check_inplace_shape(self, exponent._data.shape)
    check_cast(r, self.dtype)
    if in_order:
        elementwise_in_order(out, (self._data, exponent._data), lambda x, y: _power(x, y, r))
    else:
        _power(self, exponent, r, out=out)
    return self


# ------------------------------------------------------------------------------------------
# comparisons
# ------------------------------------------------------------------------------------------
def _make_compare(name: str, fn: Callable[..., Any]) -> None:
    def compare(self: Tensor, other: Tensor) -> Tensor:
        r = result_type(self, other)
        out = iterator_output(functional_shape(self, other), (self, other), dt.bool_)
        fn(_arr(self, r), _arr(other, r), out=out)
        return new_cpu_tensor(out)

    cpu(f"{name}.Tensor")(compare)


for _name, _fn in (
    ("eq", np.equal),
    ("ne", np.not_equal),
    ("lt", np.less),
    ("le", np.less_equal),
    ("gt", np.greater),
    ("ge", np.greater_equal),
):
    _make_compare(_name, _fn)


# ------------------------------------------------------------------------------------------
# pointwise unary
# ------------------------------------------------------------------------------------------
def _float_dtype(t: Tensor) -> DType:
    d = t.dtype
    return d if d.is_floating_point else dt.float32


def _sigmoid(x: Array, dtype: Any = None, out: Array | None = None) -> Array:
    with np.errstate(over="ignore"):
        r = 1.0 / (1.0 + np.exp(-x))
    r = r.astype(dtype if dtype is not None else x.dtype, copy=False)
    if out is not None:
        out[...] = r
        return out
    return r


def _dtypes_where_maximum_is_relu() -> frozenset[np.dtype[Any]]:
    """The dtypes for which ``np.maximum(0, x)`` is ``x < 0 ? 0 : x`` in every loop numpy
    may pick (scalar and vector lengths, strided): exact for integers and bool; for a float
    dtype only if numpy returns its second operand on a tie (-0.0 against 0.0), which this
    numpy is asked for each float dtype at import (float16's loops differ from the rest).
    Read once, into ``_RELU_ZERO``."""
    ok: set[np.dtype[Any]] = {np.dtype(d) for d in (np.bool_, np.int32, np.int64)}
    for dtype in (np.float16, np.float32, np.float64):
        x = np.full(2000, -0.0, dtype=dtype)
        if all(
            np.signbit(np.maximum(dtype(0), operand)).all()
            for n in (1, 3, 8, 17, 64, 1000)
            for operand in (x[:n], x[: 2 * n : 2])
        ):
            ok.add(np.dtype(dtype))
    return frozenset(ok)


# the zero np.maximum compares with, per dtype where that is relu (a numpy scalar made per
# call cost a third of the op)
_RELU_ZERO: dict[np.dtype[Any], Any] = {d: d.type(0) for d in _dtypes_where_maximum_is_relu()}


def _relu(x: Array, dtype: Any = None, out: Array | None = None) -> Array:
    # clamp_min(0) as torch computes it: x < 0 ? 0 : x — keeps -0.0 and nan. np.maximum
    # propagates nan and, where checked at import, returns its second operand on a tie,
    # so np.maximum(0, x) is that in one pass; np.where is the portable fallback
    zero = _RELU_ZERO.get(x.dtype)
    if zero is not None:
        r: Array = np.maximum(zero, x) if out is None else np.maximum(zero, x, out=out)
        return r
    r = np.where(x < 0, x.dtype.type(0), x)
    if out is not None:
        np.copyto(out, r, casting="unsafe")
        return out
    return r.astype(x.dtype, copy=False)


# name -> (numpy function, promotes integers to float)
_UNARY: dict[str, tuple[Callable[..., Any], bool]] = {
    "neg": (np.negative, False),
    "reciprocal": (np.reciprocal, True),
    "exp": (np.exp, True),
    "log": (np.log, True),
    "sin": (np.sin, True),
    "cos": (np.cos, True),
    "relu": (_relu, False),
    "sigmoid": (_sigmoid, True),
    "tanh": (np.tanh, True),
}


def _make_unary(name: str, fn: Callable[..., Any], to_float: bool) -> None:
    def functional(self: Tensor) -> Tensor:
        if name == "neg" and self.dtype is dt.bool_:
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                "to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        x = self._data
        if x.dtype.kind == "f":  # no promotion: the result has x's dtype
            token = ignore_fp_errors()
            try:
                res = fn(x)
            finally:
                restore_fp_errors(token)
            if type(res) is not np.ndarray or res.dtype != x.dtype:  # (0-dim: a scalar)
                res = np.asarray(res).astype(x.dtype, copy=False)
            return new_cpu_tensor(res)
        r = _float_dtype(self) if to_float else self.dtype
        x = _arr(self, r)
        token = ignore_fp_errors()
        try:
            res = fn(x)
        finally:
            restore_fp_errors(token)
        return new_cpu_tensor(np.asarray(res).astype(r.numpy, copy=False))

    def inplace(self: Tensor) -> Tensor:
        r = _float_dtype(self) if to_float else self.dtype
        check_cast(r, self.dtype)
        out = _writable(self)
        token = ignore_fp_errors()
        try:
            fn(self._data, out=out)
        finally:
            restore_fp_errors(token)
        return self

    cpu(name)(functional)
    if f"{name}_" in ("neg_", "exp_", "relu_"):
        cpu(f"{name}_")(inplace)


for _uname, (_ufn, _to_float) in _UNARY.items():
    _make_unary(_uname, _ufn, _to_float)


@cpu("threshold_backward")
def threshold_backward(grad_output: Tensor, self: Tensor, threshold: Any) -> Tensor:
    """``grad_output`` where ``self > threshold``, else 0 — a mask, not a product, so an
    inf or nan gradient is dropped where ``self <= threshold`` (and kept where ``self`` is
    nan). Operands promote to their common dtype and broadcast, as a binary op's."""
    r = result_type(grad_output, self)
    functional_shape(grad_output, self)
    g, x = _arr(grad_output, r), _arr(self, r)
    with np.errstate(invalid="ignore"):
        res = np.where(x <= threshold, r.numpy.type(0), g)
    return new_cpu_tensor(np.asarray(res, dtype=r.numpy))


# ------------------------------------------------------------------------------------------
# reductions
# ------------------------------------------------------------------------------------------
def _reduce_dims(dim: list[int] | None, ndim: int) -> tuple[int, ...] | None:
    if dim is None or len(dim) == 0:
        return None
    # every dim wrapped first, then the first repeated one reported
    dims = tuple(wrap_dim(d, ndim) for d in dim)
    for i, d in enumerate(dims):
        if d in dims[:i]:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return dims


def _wrap_dims_0d(dim: list[int] | None) -> tuple[int, ...] | None:
    """The dims of a reduction over a 0-dim tensor: wrapped and checked (0 and -1 are the
    same dim), then reduced over nothing (no numpy axes)."""
    _reduce_dims(dim, 0)
    return None


def _sum_dtype(self: Tensor, dtype: DType | None) -> DType:
    if dtype is not None:
        return dtype
    d = self.dtype
    return d if d.is_floating_point else dt.int64


@cpu("sum")
def sum_(self: Tensor, dtype: DType | None = None) -> Tensor:
    r = _sum_dtype(self, dtype)
    return new_cpu_tensor(np.asarray(np.sum(self._data, dtype=r.numpy)))


@cpu("sum.dim_IntList")
def sum_dim(
    self: Tensor, dim: list[int] | None, keepdim: bool = False, dtype: DType | None = None
) -> Tensor:
    r = _sum_dtype(self, dtype)
    axes = _reduce_dims(dim, self._data.ndim) if self._data.ndim else _wrap_dims_0d(dim)
    return new_cpu_tensor(
        np.asarray(np.sum(self._data, axis=axes, dtype=r.numpy, keepdims=keepdim))
    )


@cpu("any")
def any_(self: Tensor) -> Tensor:
    return new_cpu_tensor(np.asarray(np.any(self._data)))


@cpu("all")
def all_(self: Tensor) -> Tensor:
    return new_cpu_tensor(np.asarray(np.all(self._data)))


def _mean_dtype(self: Tensor, dtype: DType | None) -> DType:
    r = dtype if dtype is not None else self.dtype
    if not r.is_floating_point:
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or "
            f"complex dtype. Got: {_type_name(r)}"
        )
    return r


@cpu("mean")
def mean(self: Tensor, dtype: DType | None = None) -> Tensor:
    r = _mean_dtype(self, dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return new_cpu_tensor(np.asarray(np.mean(self._data, dtype=r.numpy)).astype(r.numpy))


@cpu("mean.dim")
def mean_dim(
    self: Tensor, dim: list[int] | None, keepdim: bool = False, dtype: DType | None = None
) -> Tensor:
    r = _mean_dtype(self, dtype)
    axes = _reduce_dims(dim, self._data.ndim) if self._data.ndim else _wrap_dims_0d(dim)
    with np.errstate(invalid="ignore", divide="ignore"):
        res = np.mean(self._data, axis=axes, dtype=r.numpy, keepdims=keepdim)
    return new_cpu_tensor(np.asarray(res).astype(r.numpy, copy=False))


# ------------------------------------------------------------------------------------------
# linear algebra
# ------------------------------------------------------------------------------------------
def _same_dtype(a: Tensor, b: Tensor, what: str = "m1 and m2") -> None:
    if a._data.dtype != b._data.dtype:
        x, y = what.split(" and ")
        raise RuntimeError(
            f"expected {x} and {y} to have the same dtype, but got: {_cname(a.dtype)} != "
            f"{_cname(b.dtype)}"
        )


def _cname(d: DType) -> str:
    return {
        "float32": "float",
        "float64": "double",
        "int64": "long int",
        "int32": "int",
        "bool": "bool",
        "float16": "c10::Half",
    }[d.name]


def check_mm(self: Tensor, mat2: Tensor) -> tuple[int, ...]:
    a, b = self._data, mat2._data
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
            f"{b.shape[0]}x{b.shape[1]})"
        )
    if a.dtype != b.dtype:  # (_same_dtype's test first: it is on every mm)
        _same_dtype(self, mat2, "m1 and m2")
    return (a.shape[0], b.shape[1])


@cpu("mm")
def mm(self: Tensor, mat2: Tensor) -> Tensor:
    check_mm(self, mat2)
    # (not np.dot: faster for small matrices, but not always bitwise equal to np.matmul,
    # which the differential tests have matched against torch)
    return new_cpu_tensor(np.matmul(self._data, mat2._data))


def check_mv(self: Tensor, vec: Tensor) -> tuple[int, ...]:
    a, v = self._data, vec._data
    if a.ndim == 0:  # at::native::mv allocates its result with self.size(0) first
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    if a.ndim != 2 or v.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {a.ndim}, {v.ndim}")
    if a.shape[1] != v.shape[0]:
        raise RuntimeError(
            f"size mismatch, got input ({a.shape[0]}), mat ({a.shape[0]}x{a.shape[1]}), vec ({v.shape[0]})"
        )
    _same_dtype(self, vec, "mat and vec")
    return (a.shape[0],)


@cpu("mv")
def mv(self: Tensor, vec: Tensor) -> Tensor:
    check_mv(self, vec)
    return new_cpu_tensor(np.matmul(self._data, vec._data))


def check_dot(self: Tensor, other: Tensor) -> tuple[int, ...]:
    a, b = self._data, other._data
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have the same number "
            f"of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively"
        )
    if self.dtype != other.dtype:
        raise RuntimeError(
            "dot : expected both vectors to have same dtype, but found "
            f"{_type_name(self.dtype)} and {_type_name(other.dtype)}"
        )
    return ()


@cpu("dot")
def dot(self: Tensor, other: Tensor) -> Tensor:
    check_dot(self, other)
    return new_cpu_tensor(np.asarray(np.dot(self._data, other._data)))


def check_bmm(self: Tensor, mat2: Tensor) -> tuple[int, ...]:
    a, b = self._data, mat2._data
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{a.shape[0]}, "
            f"{a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}]."
        )
    _same_dtype(self, mat2, "batch1 and batch2")
    return (a.shape[0], a.shape[1], b.shape[2])


@cpu("bmm")
def bmm(self: Tensor, mat2: Tensor) -> Tensor:
    check_bmm(self, mat2)
    return new_cpu_tensor(np.matmul(self._data, mat2._data))


# ------------------------------------------------------------------------------------------
# copies and fills
# ------------------------------------------------------------------------------------------
def infer_dense_strides(sizes: Sequence[int], strides: Sequence[int]) -> list[int]:
    """``infer_dense_strides``: contiguous strides in the order of the input's strides
    (TensorIterator's sort; a 0 stride compares as ambiguous, so it keeps its place)."""
    ndim = len(sizes)
    perm = _iteration_order(sizes, [strides])
    out = [0] * ndim
    stride = 1
    for idx in perm:
        out[idx] = stride
        if sizes[idx] > 1:
            stride *= sizes[idx]
    return out


def _empty_preserving_layout(a: Array, dtype: Any) -> Array:
    """``empty_like(memory_format=Preserve)``: a non-overlapping dense input's strides are
    kept as they are; any other input gets dense strides in its strides' order."""
    item = np.dtype(dtype).itemsize
    if non_overlapping_and_dense(a):
        strides = [st // a.itemsize for st in a.strides]
    else:
        strides = infer_dense_strides(a.shape, [st // a.itemsize for st in a.strides])
    buffer = np.empty(max(a.size, 1), dtype=dtype)
    return np.lib.stride_tricks.as_strided(
        buffer, shape=a.shape, strides=tuple(st * item for st in strides)
    )


def _copy_into_new(self: Tensor, dtype: Any, device: str, memory_format: Any = None) -> Tensor:
    """``at::clone`` / ``_to_copy``: allocate, then a dispatched ``copy_``. Reached through
    the Autograd kernel, that copy_ runs below ADInplaceOrView; reached without it (an
    inference tensor outside inference mode) the new tensor's ADInplaceOrView kernel runs
    and bumps it to version 1 — as in PyTorch, where this falls out of the same keys."""
    from dispatch.tensorimpl import _call

    # MemoryFormat::Preserve (the default) keeps the input's layout; contiguous_format doesn't
    if memory_format == "contiguous_format":
        data = np.empty_like(self._data, dtype=dtype, order="C")
    else:
        data = _empty_preserving_layout(self._data, dtype)
    out = new_tensor(data, device)
    return _call("copy_", (out, self, False))


@cpu("clone")
def clone(self: Tensor, memory_format: Any = None) -> Tensor:
    return _copy_into_new(self, self._data.dtype, "cpu", memory_format)


@cpu("copy_")
def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    a, b = self._data, src._data
    if src is self or (  # copy_impl exits early when self and src view the same data
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    ):
        return self
    if src.is_meta:
        raise NotImplementedError("Cannot copy out of meta tensor; no data!")
    out = _writable(self)  # TensorIterator's order: memory overlaps, then shapes
    in_order = check_input_overlap(self, (src,))
    check_inplace_shape(self, src._data.shape)
    if in_order:
        elementwise_in_order(out, (src._data,), lambda v: v)
    else:
        np.copyto(out, src._data, casting="unsafe")
    return self


@cpu("zero_")
def zero_(self: Tensor) -> Tensor:
    _writable(self, allow_overlap=True)[...] = 0
    return self


@cpu("fill_.Scalar")
def fill_scalar(self: Tensor, value: Any) -> Tensor:
    _writable(self, allow_overlap=True)[...] = value
    return self


@cpu("fill_.Tensor")
def fill_tensor(self: Tensor, value: Tensor) -> Tensor:
    if value._data.ndim != 0:
        raise RuntimeError(
            "fill_ only supports 0-dimension value tensor but got tensor with "
            f"{value._data.ndim} dimensions."
        )
    # at::fill_(Tensor) copies (a clone of) the value: copy_'s internal-overlap check applies
    _writable(self)[...] = value._data
    return self


@cpu("detach")
@meta("detach")
def detach(self: Tensor) -> Tensor:
    return new_view_tensor(self._data.view(), self)


@cpu("detach_")
@meta("detach_")
def detach_(self: Tensor) -> Tensor:
    # the autograd metadata is the Autograd kernel's business (VariableTypeManual.cpp)
    return self


@cpu("_to_copy")
@meta("_to_copy")
def to_copy(
    self: Tensor,
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
    non_blocking: bool = False,
    memory_format: Any = None,
) -> Tensor:
    d = (dtype or self.dtype).numpy
    target = str(device) if device is not None else str(self.device)
    if target == "meta":
        return new_tensor(meta_array(self._data.shape, d), "meta")
    if self.is_meta:
        raise NotImplementedError("Cannot copy out of meta tensor; no data!")
    return _copy_into_new(self, d, target)


# ------------------------------------------------------------------------------------------
# views (serve CPU and Meta: numpy views of zero-stride arrays are shape-only)
# ------------------------------------------------------------------------------------------
def infer_size(shape: Sequence[int], numel: int) -> tuple[int, ...]:
    """``infer_size``: resolve one -1 and check the element count."""
    shape = list(shape)
    newsize = 1
    infer_dim: int | None = None
    for i, s in enumerate(shape):
        if s == -1:
            if infer_dim is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer_dim = i
        elif s >= 0:
            newsize *= s
        else:
            raise RuntimeError(
                f"invalid shape dimension {s} at index {i} of shape {_shape_str(shape)}"
            )
    if infer_dim is not None and newsize > 0 and numel % newsize == 0:
        shape[infer_dim] = numel // newsize
        return tuple(shape)
    if numel != newsize:
        raise RuntimeError(f"shape '{_shape_str(shape)}' is invalid for input of size {numel}")
    if infer_dim is not None:  # 0 elements: the -1 could be anything
        raise RuntimeError(
            f"cannot reshape tensor of 0 elements into shape {_shape_str(shape)} because the "
            "unspecified dimension size -1 can be any value and is ambiguous"
        )
    return tuple(shape)


def view_array(a: Array, shape: Sequence[int]) -> Array | None:
    """A no-copy reshape of ``a``, or None when the strides do not allow one."""
    if len(shape) == 1 and a.flags.c_contiguous:
        # flattening a contiguous array (view(-1), view(n)): always a view, and the
        # general path (infer_size, np.reshape(copy=False)) costs a third of the op
        n = shape[0]
        if n == -1 or n == a.size:
            return a.reshape(a.size)
    size = infer_size(shape, a.size)
    if a.flags.c_contiguous:  # a C-order reshape of C-contiguous memory never copies
        return a.reshape(size)
    try:
        return np.reshape(a, size, copy=False)
    except ValueError:
        return None


@cpu("view")
@meta("view")
def view(self: Tensor, size: list[int]) -> Tensor:
    a = self._data
    if len(size) == 1 and (size[0] == -1 or size[0] == a.size) and a.flags.c_contiguous:
        # view_array's first case, inlined: flattening is the commonest view
        return new_view_tensor(a.reshape(a.size), self)
    out = view_array(a, size)
    if out is None:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        )
    return new_view_tensor(out, self)


@cpu("alias")
@meta("alias")
def alias(self: Tensor) -> Tensor:
    return new_view_tensor(self._data.view(), self)


@cpu("_reshape_alias")
@meta("_reshape_alias")
def reshape_alias(self: Tensor, size: list[int], stride: list[int]) -> Tensor:
    """A view with the given geometry over ``self``'s memory (what reshape uses for a
    non-contiguous input that can be viewed)."""
    a = self._data
    out = np.lib.stride_tricks.as_strided(
        a,
        shape=tuple(size),
        strides=tuple(st * a.itemsize for st in stride),
        writeable=a.flags.writeable,
    )
    return new_view_tensor(out, self)


@cpu("_unsafe_view")
@meta("_unsafe_view")
def unsafe_view(self: Tensor, size: list[int]) -> Tensor:
    """A view that autograd does not track as one (reshape's copy path uses it on a fresh
    clone, so nothing else can observe the aliasing)."""
    out = view_array(self._data, size)
    if out is None:
        out = np.reshape(self._data, infer_size(size, self._data.size))
    return new_view_tensor(out, self)


def storage_root(t: Tensor) -> Tensor:
    """The tensor whose first element is offset 0 of ``t``'s storage (its view family's base)."""
    return t._base if t._base is not None else t


def _owner(a: Array) -> Array:
    """The ndarray that owns ``a``'s memory."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


@cpu("as_strided")
@meta("as_strided")
def as_strided(
    self: Tensor, size: list[int], stride: list[int], storage_offset_: int | None = None
) -> Tensor:
    root = storage_root(self)._data
    offset = self.storage_offset() if storage_offset_ is None else storage_offset_
    item = root.itemsize
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    if self.is_meta:
        out = np.lib.stride_tricks.as_strided(
            root, shape=tuple(size), strides=tuple(s * item for s in stride), writeable=False
        )
        return new_view_tensor(out, self)
    owner = _owner(root)
    start = root.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    try:
        out = np.ndarray(
            tuple(size),
            dtype=root.dtype,
            buffer=owner,
            offset=start + offset * item,
            strides=tuple(s * item for s in stride),
        )
    except (TypeError, ValueError):
        need = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1 if all(size) else 0
        raise RuntimeError(
            f"setStorage: sizes {_shape_str(size)}, strides {_shape_str(stride)}, storage offset "
            f"{offset}, and itemsize {item} requiring a storage size of {need * item} are out of "
            f"bounds for storage of size {owner.nbytes - start}"
        ) from None
    return new_view_tensor(out, self)


def _strided_indices(size: Sequence[int], stride: Sequence[int], offset: int) -> Array:
    idx = np.full(tuple(size), offset, dtype=np.int64)
    for d, (n, st) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[d] = n
        idx = idx + (np.arange(n, dtype=np.int64) * st).reshape(shape)
    return idx


@cpu("_as_strided_backward")
def as_strided_backward(
    grad: Tensor,
    base_size: list[int],
    base_stride: list[int],
    base_storage_offset: int,
    size: list[int],
    stride: list[int],
    storage_offset_: int,
) -> Tensor:
    """The gradient of a base from the gradient of one strided view of it: scatter-add into
    the shared storage (views that repeat elements accumulate), then read the base back."""
    view_idx = _strided_indices(size, stride, storage_offset_)
    base_idx = _strided_indices(base_size, base_stride, base_storage_offset)
    n = int(max(view_idx.max(initial=-1), base_idx.max(initial=-1))) + 1
    flat = np.zeros(n, dtype=grad._data.dtype)
    np.add.at(flat, view_idx.reshape(-1), np.broadcast_to(grad._data, tuple(size)).reshape(-1))
    # np.asarray: indexing with a 0-dim index gives a numpy scalar, not a (writable) array
    return new_cpu_tensor(np.asarray(flat[base_idx]))


@meta("_as_strided_backward")
def as_strided_backward_meta(grad: Tensor, base_size: list[int], *rest: Any) -> Tensor:
    return new_tensor(meta_array(base_size, grad._data.dtype), "meta")


@cpu("t")
@meta("t")
def t(self: Tensor) -> Tensor:
    a = self._data
    if a.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {a.ndim}D")
    return new_view_tensor(a.T, self)


@cpu("transpose.int")
@meta("transpose.int")
def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor:
    a = self._data
    if a.ndim == 0:
        wrap_dim(dim0, 0)
        wrap_dim(dim1, 0)
        return new_view_tensor(a.view(), self)
    return new_view_tensor(np.swapaxes(a, wrap_dim(dim0, a.ndim), wrap_dim(dim1, a.ndim)), self)


@cpu("permute")
@meta("permute")
def permute(self: Tensor, dims: list[int]) -> Tensor:
    a = self._data
    if len(dims) != a.ndim:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {a.ndim} is not "
            f"equal to len(dims) = {len(dims)}"
        )
    wrapped = [wrap_dim(d, a.ndim) for d in dims]
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return new_view_tensor(np.transpose(a, wrapped) if a.ndim else a.view(), self)


@cpu("unsqueeze")
@meta("unsqueeze")
def unsqueeze(self: Tensor, dim: int) -> Tensor:
    return new_view_tensor(_unsqueezed(self._data, wrap_dim(dim, self._data.ndim + 1)), self)


def _unsqueezed(a: Array, dim: int) -> Array:
    """``inferUnsqueezeGeometry``: the other strides as they are (numpy's expand_dims may
    rewrite a size-1 dimension's stride), the new one ``size * stride`` of the next dim."""
    shape, strides = list(a.shape), list(a.strides)
    new_stride = a.itemsize if dim >= a.ndim else shape[dim] * strides[dim]
    shape.insert(dim, 1)
    strides.insert(dim, new_stride)
    return np.lib.stride_tricks.as_strided(
        a, shape=tuple(shape), strides=tuple(strides), writeable=a.flags.writeable
    )


@cpu("squeeze")
@meta("squeeze")
def squeeze(self: Tensor) -> Tensor:
    return new_view_tensor(np.squeeze(self._data), self)


@cpu("squeeze.dim")
@meta("squeeze.dim")
def squeeze_dim(self: Tensor, dim: int) -> Tensor:
    a = self._data
    if a.ndim == 0:
        wrap_dim(dim, 0)
        return new_view_tensor(a.view(), self)
    d = wrap_dim(dim, a.ndim)
    return new_view_tensor(np.squeeze(a, d) if a.shape[d] == 1 else a.view(), self)


@cpu("expand")
@meta("expand")
def expand(self: Tensor, size: list[int], implicit: bool = False) -> Tensor:
    a = self._data
    if len(size) < a.ndim:
        raise RuntimeError(
            f"expand(torch.{_type_name(self.dtype)}Tensor{{{_shape_str(a.shape)}}}, "
            f"size={_shape_str(size)}): "
            "the number of sizes provided "
            f"({len(size)}) must be greater or equal to the number of dimensions in the tensor "
            f"({a.ndim})"
        )
    target, strides = _infer_expand_geometry(a.shape, a.strides, size)
    if any(s < 0 for s in target):
        # torch's as_strided computes the element count of the negative sizes
        raise RuntimeError("numel: integer multiplication overflow")
    # writable like torch's expanded tensors; writes through overlapping elements are refused
    # by _writable, as torch refuses them
    out = np.lib.stride_tricks.as_strided(
        a, shape=tuple(target), strides=tuple(strides), writeable=a.flags.writeable
    )
    return new_view_tensor(out, self)


def _infer_expand_geometry(
    tensor_sizes: Sequence[int], tensor_strides: Sequence[int], sizes: Sequence[int]
) -> tuple[list[int], list[int]]:
    """``inferExpandGeometry``: scanned from the last dimension (which decides the error
    reported); a 0-dim tensor takes the sizes as they are, all strides 0."""
    ndim, tensor_dim = len(sizes), len(tensor_sizes)
    if tensor_dim == 0:
        return list(sizes), [0] * ndim
    expanded_sizes = [0] * ndim
    expanded_strides = [0] * ndim
    for i in range(ndim - 1, -1, -1):
        dim = tensor_dim - 1 - (ndim - 1 - i)
        size = tensor_sizes[dim] if dim >= 0 else 1
        stride = (
            tensor_strides[dim] if dim >= 0 else expanded_sizes[i + 1] * expanded_strides[i + 1]
        )
        target_size = sizes[i]
        if target_size == -1:
            if dim < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({target_size}) isn't allowed in a "
                    f"leading, non-existing dimension {i}"
                )
            target_size = size
        if size != target_size:
            if size != 1:
                raise RuntimeError(
                    f"The expanded size of the tensor ({target_size}) must match the existing "
                    f"size ({size}) at non-singleton dimension {i}.  Target sizes: "
                    f"{_shape_str(sizes)}.  Tensor sizes: {_shape_str(tensor_sizes)}"
                )
            size = target_size
            stride = 0
        expanded_sizes[i] = size
        expanded_strides[i] = stride
    return expanded_sizes, expanded_strides


@cpu("select.int")
@meta("select.int")
def select(self: Tensor, dim: int, index: int) -> Tensor:
    a = self._data
    if a.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, a.ndim)
    n = a.shape[d]
    if not -n <= index < n:
        raise IndexError(
            f"select(): index {index} out of range for tensor of size {_shape_str(a.shape)} at "
            f"dimension {d}"
        )
    # the trailing Ellipsis keeps a 0-dim result a numpy view (a bare int gives a scalar copy)
    idx: tuple[Any, ...] = (slice(None),) * d + (index, Ellipsis)
    return new_view_tensor(a[idx], self)


@cpu("slice.Tensor")
@meta("slice.Tensor")
def slice_(
    self: Tensor, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1
) -> Tensor:
    a = self._data
    if a.ndim == 0:
        raise IndexError("slice() cannot be applied to a 0-dim tensor.")
    if step <= 0:
        raise RuntimeError("slice step must be positive")
    d = wrap_dim(dim, a.ndim)
    idx = (slice(None),) * d + (slice(start, end, step),)
    return new_view_tensor(a[idx], self)


def _split_sizes(n: int, split_size: int) -> list[int]:
    if split_size == 0:
        if n != 0:
            raise RuntimeError(
                f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
            )
        return [0]
    k = max(1, -(-n // split_size))
    return [min(split_size, n - i * split_size) for i in range(k)]


def _split_with_sizes(self: Tensor, sizes: Sequence[int], dim: int) -> list[Tensor]:
    a = self._data
    if a.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, a.ndim)
    if any(s < 0 for s in sizes):
        raise RuntimeError(
            "split_with_sizes expects split_sizes have only non-negative entries, but got "
            f"split_sizes={_shape_str(sizes)}"
        )
    if sum(sizes) != a.shape[d]:
        # the dim as given, not wrapped
        raise RuntimeError(
            f"split_with_sizes expects split_sizes to sum exactly to {a.shape[d]} (input tensor's "
            f"size at dimension {dim}), but got split_sizes={_shape_str(sizes)}"
        )
    out = []
    start = 0
    for s in sizes:
        idx = (slice(None),) * d + (slice(start, start + s),)
        out.append(new_view_tensor(a[idx], self))
        start += s
    return out


@cpu("split.Tensor")
@meta("split.Tensor")
def split(self: Tensor, split_size: int, dim: int = 0) -> list[Tensor]:
    a = self._data
    if a.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    if split_size < 0:  # get_num_splits: before the dim is looked at
        raise RuntimeError(
            f"split expects split_size be non-negative, but got split_size={split_size}"
        )
    return _split_with_sizes(self, _split_sizes(a.shape[wrap_dim(dim, a.ndim)], split_size), dim)


@cpu("split_with_sizes")
@meta("split_with_sizes")
def split_with_sizes(self: Tensor, split_sizes: list[int], dim: int = 0) -> list[Tensor]:
    return _split_with_sizes(self, split_sizes, dim)


@cpu("unbind.int")
@meta("unbind.int")
def unbind(self: Tensor, dim: int = 0) -> list[Tensor]:
    a = self._data
    d = wrap_dim(dim, a.ndim)
    if a.ndim == 0:  # self.size(dim) after the dim was wrapped
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    return [new_view_tensor(a[(slice(None),) * d + (i, Ellipsis)], self) for i in range(a.shape[d])]


# in-place view-metadata ops: the tensor itself is re-strided
@cpu("t_")
@meta("t_")
def t_inplace(self: Tensor) -> Tensor:
    if self._data.ndim > 2:
        raise RuntimeError(
            f"t_() expects a tensor with <= 2 dimensions, but self is {self._data.ndim}D"
        )
    self._data = t(self)._data
    return self


@cpu("transpose_")
@meta("transpose_")
def transpose_inplace(self: Tensor, dim0: int, dim1: int) -> Tensor:
    self._data = transpose(self, dim0, dim1)._data
    return self


@cpu("unsqueeze_")
@meta("unsqueeze_")
def unsqueeze_inplace(self: Tensor, dim: int) -> Tensor:
    self._data = unsqueeze(self, dim)._data
    return self


@cpu("squeeze_")
@meta("squeeze_")
def squeeze_inplace(self: Tensor) -> Tensor:
    self._data = squeeze(self)._data
    return self


@cpu("squeeze_.dim")
@meta("squeeze_.dim")
def squeeze_dim_inplace(self: Tensor, dim: int) -> Tensor:
    self._data = squeeze_dim(self, dim)._data
    return self


# ------------------------------------------------------------------------------------------
# factories (after BackendSelect picked the backend)
# ------------------------------------------------------------------------------------------
_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def _size(size: Sequence[int]) -> tuple[int, ...]:
    for s in size:
        if s < 0:
            raise RuntimeError(
                f"Trying to create tensor with negative dimension {s}: {_shape_str(size)}"
            )
    return tuple(size)


def _float_or(dtype: DType | None) -> DType:
    return dtype if dtype is not None else dt.float32


def _make_filled_factory(name: str, fill: Callable[..., Array]) -> None:
    # (size, dtype, layout, device, pin_memory[, memory_format]): only size and dtype matter
    # once BackendSelect has picked CPU.
    def factory(size: list[int], dtype: DType | None = None, *rest: Any) -> Tensor:
        return new_cpu_tensor(fill(_size(size), dtype=_float_or(dtype).numpy))

    factory.__name__ = factory.__qualname__ = name.split(".")[0]
    cpu(name)(factory)


@cpu("empty_strided")
def empty_strided(
    size: list[int], stride: list[int], dtype: DType | None = None, *rest: Any
) -> Tensor:
    d = _float_or(dtype).numpy
    shape = _size(size)
    n = sum((s - 1) * st for s, st in zip(shape, stride)) + 1 if all(shape) else 0
    buffer = np.zeros(max(n, 1), dtype=d)
    item = buffer.itemsize
    return new_cpu_tensor(
        np.ndarray(shape, dtype=d, buffer=buffer, strides=tuple(st * item for st in stride))
    )


_make_filled_factory("empty.memory_format", np.zeros)
_make_filled_factory("zeros", np.zeros)
_make_filled_factory("ones", np.ones)


def full_dtype(fill_value: Any, dtype: DType | None) -> DType:
    if dtype is not None:
        return dtype
    if isinstance(fill_value, bool):
        return dt.bool_
    if isinstance(fill_value, int):
        return dt.int64
    return dt.float32


@cpu("full")
def full(
    size: list[int],
    fill_value: Any,
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
) -> Tensor:
    d = full_dtype(fill_value, dtype)
    return new_cpu_tensor(np.full(_size(size), fill_value, dtype=d.numpy))


def arange_values(start: Any, end: Any, step: Any, dtype: DType | None) -> tuple[int, DType]:
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (step > 0 and start > end) or (step < 0 and start < end):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is None:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, step))
        dtype = dt.int64 if ints else dt.float32
    n = max(0, math.ceil((end - start) / step))
    return n, dtype


@cpu("arange")
def arange(
    end: Any,
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
) -> Tensor:
    return arange_start_step(0, end, 1, dtype)


@cpu("arange.start_step")
def arange_start_step(
    start: Any,
    end: Any,
    step: Any = 1,
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
) -> Tensor:
    n, d = arange_values(start, end, step, dtype)
    return new_cpu_tensor((start + np.arange(n, dtype=np.float64) * step).astype(d.numpy))


def check_random_dtype(dtype: DType | None, kernel: str) -> DType:
    d = _float_or(dtype)
    if not d.is_floating_point:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_type_name(d)}'")
    return d


@cpu("rand")
def rand(
    size: list[int],
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
) -> Tensor:
    d = check_random_dtype(dtype, "check_uniform_bounds")
    return new_cpu_tensor(_rng.random(_size(size)).astype(d.numpy))


@cpu("randn")
def randn(
    size: list[int],
    dtype: DType | None = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
) -> Tensor:
    d = check_random_dtype(dtype, "normal_kernel_cpu")
    return new_cpu_tensor(_rng.standard_normal(_size(size)).astype(d.numpy))
