"""Type promotion for operator inputs: mirrors ``at::native::result_type``
(aten/src/ATen/native/TypeProperties.cpp).

Dimensioned tensors outrank zero-dim tensors, which outrank wrapped numbers
(Python scalars); a lower tier only matters when it is of a higher category
(bool < integral < floating). A wrapped or Python float counts as the default
dtype (float32).
"""

from __future__ import annotations

from typing import Any

from dispatch import dtypes as dt
from dispatch.dtypes import DType
from dispatch.tensorimpl import Tensor

__all__ = ["can_cast", "result_type", "scalar_dtype"]


def scalar_dtype(value: Any) -> DType:
    """The dtype a Python number takes as a wrapped number."""
    if isinstance(value, bool):
        return dt.bool_
    if isinstance(value, int):
        return dt.int64
    return dt.float32


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    """``combine_categories``."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_floating_point:
        return higher
    if higher is dt.bool_ or lower.is_floating_point:
        return dt.promote_types(higher, lower)
    return higher


def result_type(*operands: Any) -> DType:
    dim_result: DType | None = None
    zero_result: DType | None = None
    wrapped_result: DType | None = None
    for o in operands:
        if isinstance(o, Tensor):
            d = o.dtype
            if o._is_wrapped_number:
                if d.is_floating_point:
                    d = dt.float32
                wrapped_result = (
                    d if wrapped_result is None else dt.promote_types(wrapped_result, d)
                )
            elif o._data.ndim == 0:
                zero_result = d if zero_result is None else dt.promote_types(zero_result, d)
            else:
                dim_result = d if dim_result is None else dt.promote_types(dim_result, d)
        elif o is not None:
            d = scalar_dtype(o)
            wrapped_result = d if wrapped_result is None else dt.promote_types(wrapped_result, d)
    out = _combine(dim_result, _combine(zero_result, wrapped_result))
    assert out is not None
    return out


def can_cast(src: DType, dst: DType) -> bool:
    """``c10::canCast``: no floating -> integral, no non-bool -> bool."""
    if src.is_floating_point and not dst.is_floating_point:
        return False
    return not (src is not dt.bool_ and dst is dt.bool_)
