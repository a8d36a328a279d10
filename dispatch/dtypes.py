"""Tensor element types: mirrors ``c10::ScalarType`` and torch's type promotion
(``c10::promoteTypes`` / ``at::native::result_type``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
import numpy as np

__all__ = [
    "DType",
    "bool_",
    "float16",
    "float32",
    "float64",
    "get_default_dtype",
    "int32",
    "int64",
    "promote_types",
]


@attrs.frozen(repr=False)
class DType:
    """An element type; ``repr`` reads like torch's (``dispatch.float32``)."""

    name: str
    numpy: np.dtype[np.generic] = attrs.field(eq=False)
    is_floating_point: bool
    category: int  # 0 bool, 1 integral, 2 floating: torch's promotion categories
    rank: int  # order within promote_types' lattice
    itemsize: int

    def __repr__(self) -> str:
        return f"dispatch.{self.name}"

    __str__ = __repr__

    @property
    def is_signed(self) -> bool:
        return self.category != 0


bool_: Final = DType("bool", np.dtype(np.bool_), False, 0, 0, 1)
int32: Final = DType("int32", np.dtype(np.int32), False, 1, 3, 4)
int64: Final = DType("int64", np.dtype(np.int64), False, 1, 4, 8)
float16: Final = DType("float16", np.dtype(np.float16), True, 2, 5, 2)
float32: Final = DType("float32", np.dtype(np.float32), True, 2, 6, 4)
float64: Final = DType("float64", np.dtype(np.float64), True, 2, 7, 8)

ALL_DTYPES: Final = (bool_, int32, int64, float16, float32, float64)
_BY_NUMPY: Final = {d.numpy: d for d in ALL_DTYPES}
DTYPE_OF_NUMPY: Final[Mapping[np.dtype[Any], DType]] = _BY_NUMPY
"""numpy dtype -> DType, for hot paths whose arrays are known to hold a modelled dtype
(:func:`from_numpy` is the checked way, with a TypeError)."""
_BY_NAME: Final = {d.name: d for d in ALL_DTYPES} | {
    "float": float32,
    "double": float64,
    "long": int64,
    "int": int32,
    "half": float16,
}


def from_numpy(dt: np.dtype[np.generic]) -> DType:
    try:
        return _BY_NUMPY[dt]
    except KeyError:
        raise TypeError(f"dispatchsim has no dtype for numpy {dt}") from None


def from_name(name: str) -> DType:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise TypeError(f"unknown dtype {name!r}") from None


def get_default_dtype() -> DType:
    return float32


def promote_types(a: DType, b: DType) -> DType:
    """``torch.promote_types`` for the dtypes modelled here."""
    return a if a.rank >= b.rank else b
