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
from kernels.cpu import view_array, wrap_dim


@composite_implicit("matmul")
def matmul(self: Tensor, other: Tensor) -> Tensor:
    """``at::native::matmul``: dot / mv / mm / folded mm / broadcast bmm by rank."""
    d1, d2 = self.dim(), other.dim()
    if d1 == 0 or d2 == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {d1}D and {d2}D"
        )
    if d1 == 1 and d2 == 1:
        return self.dot(other)
    if d1 == 2 and d2 == 1:
        return self.mv(other)
    if d1 == 1 and d2 == 2:
        return self.unsqueeze(0).mm(other).squeeze(0)
    if d1 == 2 and d2 == 2:
        return self.mm(other)
    if d1 >= 3 and d2 in (1, 2):
        # fold the batch into the rows of one mm
        shape = self.shape
        t2 = other.unsqueeze(-1) if d2 == 1 else other
        out = self.reshape(-1, shape[-1]).mm(t2)
        out_shape = list(shape[:-1]) + ([] if d2 == 1 else [other.shape[-1]])
        return out.view(out_shape)
    # broadcast batched matmul through bmm
    a = self.unsqueeze(0) if d1 == 1 else self
    b = other.unsqueeze(-1) if d2 == 1 else other
    n, m = a.shape[-2], a.shape[-1]
    m2, p = b.shape[-2], b.shape[-1]
    batch_a, batch_b = list(a.shape[:-2]), list(b.shape[:-2])
    from kernels.cpu import broadcast_shape

    batch = list(broadcast_shape(batch_a, batch_b))
    nb = math.prod(batch)
    a3 = a.expand(*batch, n, m).reshape(nb, n, m)
    b3 = b.expand(*batch, m2, p).reshape(nb, m2, p)
    out = a3.bmm(b3)
    out_shape = batch + ([n] if d1 != 1 else []) + ([p] if d2 != 1 else [])
    return out.view(out_shape)


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
    viewed = view_array(self._data, shape)
    if viewed is not None:
        if self.is_contiguous():
            return self.view(shape)
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
    d = wrap_dim(dim, self.dim())
    size = self.shape[d]
    if not -size <= start <= size:
        raise IndexError(
            f"start out of range (expected to be in range of [{-size}, {size}], but got {start})"
        )
    if start < 0:
        start += size
    if length < 0 or start + length > size:
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
