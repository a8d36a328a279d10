"""Composite kernels: mirrors the ``CompositeImplicitAutograd`` and
``CompositeExplicitAutograd`` entries of native_functions.yaml.

A CompositeImplicitAutograd kernel is written in terms of other operators, so
it needs no autograd formula of its own: it is registered to the alias key and
fills the backend *and* autograd slots, and autograd comes from the operators it
calls. A CompositeExplicitAutograd kernel serves every backend key only.
"""

from __future__ import annotations

import math
from typing import Any

from dispatch.dtypes import DType
from dispatch.tensorimpl import Tensor, _call, _call_list, wrap_number
from kernels._registry import composite_explicit, composite_implicit
from kernels.cpu import broadcast_shape, view_array, wrap_dim


def _mT(t: Tensor) -> Tensor:
    """``Tensor.mT``: the last two dimensions swapped (a transpose view)."""
    return t.transpose(-2, -1)


def _should_fold(tensor1: Tensor, tensor2: Tensor) -> bool:
    """``should_fold``: fold the larger (>= 3-D) tensor into a matrix and use mm/mv instead
    of bmm when the smaller one requires grad, or when the fold needs no copy."""
    tensor1_larger = tensor1.dim() >= tensor2.dim()
    t1 = tensor1 if tensor1_larger else _mT(tensor2)
    dim_t1 = t1.dim()
    dim_t2 = tensor2.dim() if tensor1_larger else tensor1.dim()
    if not (dim_t1 >= 3 and dim_t2 <= 2):
        return False
    t2_requires_grad = tensor2.requires_grad if tensor1_larger else tensor1.requires_grad
    if t2_requires_grad:
        return True
    if tensor1.dim() == 2:
        return False
    if t1.numel() == 0:
        return True
    shape, strides = t1.shape, t1.stride()
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(dim_t1 - 2))


def _matmul_impl(tensor1: Tensor, tensor2: Tensor) -> Tensor:
    """``at::native::_matmul_impl`` (without ``out=``)."""
    dim_tensor1, dim_tensor2 = tensor1._data.ndim, tensor2._data.ndim
    if dim_tensor1 == 0 or dim_tensor2 == 0:
        raise RuntimeError(
            "both arguments to matmul need to be at least 1D, but they are "
            f"{dim_tensor1}D and {dim_tensor2}D"
        )
    if dim_tensor1 == 1 and dim_tensor2 == 1:
        return tensor1.dot(tensor2)
    if dim_tensor1 == 2 and dim_tensor2 == 1:
        return tensor1.mv(tensor2)
    if dim_tensor1 == 1 and dim_tensor2 == 2:
        return tensor1.unsqueeze(0).mm(tensor2).squeeze_(0)
    if dim_tensor1 == 2 and dim_tensor2 == 2:
        return tensor1.mm(tensor2)
    if _should_fold(tensor1, tensor2):
        # fold the batch of the larger tensor into its leading matrix dimension
        transpose = dim_tensor2 > dim_tensor1
        t1 = _mT(tensor2) if transpose else tensor1
        t2 = tensor2 if not transpose else (tensor1.t() if dim_tensor1 == 2 else tensor1)
        sizes_1 = t1.shape
        output_shape = list(sizes_1[:-1])
        folded_dim1 = math.prod(output_shape)
        t2_is_matrix = t2.dim() == 2
        if t2_is_matrix:
            output_shape.append(t2.shape[1])
        t1_folded = t1.reshape(folded_dim1, sizes_1[-1])
        if t2_is_matrix:
            output = _call("_unsafe_view", (t1_folded.mm(t2), output_shape))
            return _mT(output).contiguous() if transpose else output
        return _call("_unsafe_view", (t1_folded.mv(t2), output_shape))
    # dim_tensor1 >= 3 or dim_tensor2 >= 3: broadcast the batches, fold them, bmm
    n = tensor1.shape[-2] if dim_tensor1 > 1 else 1
    m1 = tensor1.shape[-1]
    batch_tensor1 = list(tensor1.shape[: max(dim_tensor1 - 2, 0)])
    m2 = tensor2.shape[-2] if dim_tensor2 > 1 else tensor2.shape[0]
    p = tensor2.shape[-1] if dim_tensor2 > 1 else 1
    batch_tensor2 = list(tensor2.shape[: max(dim_tensor2 - 2, 0)])
    if dim_tensor1 == 3 and dim_tensor2 == 3 and batch_tensor1[0] != batch_tensor2[0]:
        # the same gradient optimisation as should_fold: go through the folding branch
        if batch_tensor1[0] == 1 and tensor1.requires_grad:
            return _matmul_impl(tensor1.squeeze(0), tensor2)
        if batch_tensor2[0] == 1 and tensor2.requires_grad:
            return _matmul_impl(tensor1, tensor2.squeeze(0))
    output_shape = list(broadcast_shape(batch_tensor1, batch_tensor2))
    expand_batch_product = math.prod(output_shape)
    tensor1_expanded = tensor1.expand(*output_shape, n, m1).reshape(expand_batch_product, n, m1)
    vector_rhs = dim_tensor2 == 1
    if vector_rhs:
        tensor2_expanded = (
            tensor2.expand(*output_shape, m2).reshape(expand_batch_product, m2).unsqueeze(2)
        )
    else:
        tensor2_expanded = tensor2.expand(*output_shape, m2, p).reshape(expand_batch_product, m2, p)
    if dim_tensor1 > 1:
        output_shape.append(n)
    if dim_tensor2 > 1:
        output_shape.append(p)
    if vector_rhs:
        return _call(
            "_unsafe_view", (tensor1_expanded.bmm(tensor2_expanded).squeeze(-1), output_shape)
        )
    return _call("_unsafe_view", (tensor1_expanded.bmm(tensor2_expanded), output_shape))


@composite_implicit("matmul")
def matmul(self: Tensor, other: Tensor) -> Tensor:
    """``at::native::matmul``: dot / mv / mm / folded mm or mv / broadcast bmm by rank."""
    return _matmul_impl(self, other)


@composite_explicit("rsub.Scalar")
def rsub_scalar(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """``other - alpha * self`` as ``sub(wrapped other, self)``: reached through the
    Autograd kernel (RsubBackward1) the inner sub runs below Autograd; reached directly (an
    inference tensor outside inference mode) the wrapped number brings the Autograd key
    back and the inner sub records SubBackward0 — as in torch."""
    return _call("sub.Tensor", (wrap_number(other), self, alpha))


@composite_implicit("reshape")
def reshape(self: Tensor, shape: list[int]) -> Tensor:
    """A view when the strides allow one, else a copy (``at::native::reshape``)."""
    if self.is_contiguous():
        # torch's fast path: straight to view, before the sizes are even checked (so
        # view's Autograd kernel, and its grad_fn check, run first)
        return self.view(shape)
    viewed = view_array(self._data, shape)
    if viewed is not None:
        # at::native::reshape: a viewable non-contiguous input gets _reshape_alias
        item = viewed.itemsize
        return _call(
            "_reshape_alias", (self, list(viewed.shape), [st // item for st in viewed.strides])
        )
    return _call("_unsafe_view", (self.clone(memory_format="contiguous_format"), shape))


@composite_implicit("view_as")
def view_as(self: Tensor, other: Tensor) -> Tensor:
    return self.view(list(other.shape))


@composite_implicit("narrow")
def narrow(self: Tensor, dim: int, start: int, length: int) -> Tensor:
    if self.dim() == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    d = wrap_dim(dim, self.dim())
    size = self.shape[d]
    if not -size <= start <= size:
        raise IndexError(
            f"start out of range (expected to be in range of [{-size}, {size}], but got {start})"
        )
    if start < 0:
        start += size
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return _call("slice.Tensor", (self, d, start, start + length, 1))


@composite_implicit("chunk")
def chunk(self: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
    if self.dim() == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    size = self.shape[wrap_dim(dim, self.dim())]
    split_size = -(-size // chunks)
    if split_size == 0 and size == 0:
        return list(_call_list("split_with_sizes", (self, [0] * chunks, dim)))
    return list(_call_list("split.Tensor", (self, split_size, dim)))


@composite_implicit("contiguous")
def contiguous(self: Tensor, memory_format: Any = "contiguous_format") -> Tensor:
    return self if self.is_contiguous() else self.clone(memory_format="contiguous_format")


def _like(name: str, self: Tensor, dtype: DType | None, device: Any) -> Tensor:
    dev = str(device) if device is not None else str(self.device)
    return _call(name, (list(self.shape), dtype or self.dtype, None, dev, None))


@composite_explicit("ones_like")
def ones_like(
    self: Tensor, dtype: DType | None = None, layout: Any = None, device: Any = None, *rest: Any
) -> Tensor:
    return _like("ones", self, dtype, device)


@composite_explicit("zeros_like")
def zeros_like(
    self: Tensor, dtype: DType | None = None, layout: Any = None, device: Any = None, *rest: Any
) -> Tensor:
    return _like("zeros", self, dtype, device)
