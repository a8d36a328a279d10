"""Tensor factories: the ``torch.tensor`` / ``torch.ones`` / ... front ends.

Factories that are operators (``ones``, ``zeros``, ``full``, ``arange``,
``rand``, ``randn``, ``empty``) dispatch through BackendSelect, which picks the
backend from ``device=``. ``tensor(data)`` copies Python or numpy data into a
new allocation directly, as torch's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dispatch import dtypes as _dt
from dispatch.dtypes import DType
from dispatch.tensorimpl import Device, Size, Tensor, _call, meta_array, new_tensor

__all__ = [
    "arange",
    "empty",
    "full",
    "manual_seed",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
]


def _infer_dtype(data: Any) -> DType:
    """torch.tensor's inference: numpy arrays and scalars keep their dtype, Python
    floats take the default dtype (float32), ints int64, bools bool; a nested list
    promotes its elements' dtypes."""
    if isinstance(data, np.ndarray | np.generic):
        return _dt.from_numpy(data.dtype)
    if isinstance(data, Tensor):
        return data.dtype
    found: list[DType] = []

    def walk(x: Any) -> None:
        if isinstance(x, list | tuple):
            for y in x:
                walk(y)
        elif isinstance(x, np.generic | np.ndarray):
            found.append(_dt.from_numpy(x.dtype))
        elif isinstance(x, bool):
            found.append(_dt.bool_)
        elif isinstance(x, int):
            found.append(_dt.int64)
        elif isinstance(x, float):
            found.append(_dt.float32)
        elif isinstance(x, Tensor):
            raise TypeError("dispatch.tensor(): a list of tensors is not supported")
        else:
            raise TypeError(f"new(): invalid data type '{type(x).__name__}'")

    walk(data)
    if not found:
        return _dt.float32
    out = found[0]
    for d in found[1:]:
        out = _dt.promote_types(out, d)
    return out


def _device_str(device: Any) -> str:
    return "cpu" if device is None else Device(device).type


def tensor(
    data: Any, *, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """``torch.tensor``: copy ``data`` into a new tensor (an inference tensor inside
    inference mode)."""
    d = dtype or _infer_dtype(data)
    src = data.detach()._data if isinstance(data, Tensor) else data
    try:
        arr = np.array(src, dtype=d.numpy, copy=True)
    except (ValueError, TypeError) as e:
        raise TypeError(f"dispatch.tensor(): could not convert data: {e}") from None
    dev = _device_str(device)
    if dev == "meta":
        arr = meta_array(arr.shape, arr.dtype)
    return _finish(new_tensor(arr, dev), requires_grad)


def _size(size: Sequence[Any]) -> list[int]:
    if len(size) == 1 and isinstance(size[0], list | tuple | Size):
        size = size[0]
    out = []
    for s in size:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"size must be a sequence of ints, got {s!r}")
        out.append(int(s))
    return out


def _finish(t: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        if not t.dtype.is_floating_point:
            raise RuntimeError(
                "Only Tensors of floating point and complex dtype can require gradients"
            )
        t.requires_grad_(True)
    return t


def empty(
    *size: Any, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(
        _call("empty.memory_format", (_size(size), dtype, None, _device_str(device), None, None)),
        requires_grad,
    )


def zeros(
    *size: Any, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(
        _call("zeros", (_size(size), dtype, None, _device_str(device), None)), requires_grad
    )


def ones(
    *size: Any, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(
        _call("ones", (_size(size), dtype, None, _device_str(device), None)), requires_grad
    )


def full(
    size: Sequence[int],
    fill_value: Any,
    *,
    dtype: DType | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    return _finish(
        _call("full", (_size([size]), fill_value, dtype, None, _device_str(device), None)),
        requires_grad,
    )


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: DType | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    if end is None:
        start, end = 0, start
    return _finish(
        _call("arange.start_step", (start, end, step, dtype, None, _device_str(device), None)),
        requires_grad,
    )


def rand(
    *size: Any, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(
        _call("rand", (_size(size), dtype, None, _device_str(device), None)), requires_grad
    )


def randn(
    *size: Any, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(
        _call("randn", (_size(size), dtype, None, _device_str(device), None)), requires_grad
    )


def ones_like(
    t: Tensor, *, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(_call("ones_like", (t, dtype, None, device, None, None)), requires_grad)


def zeros_like(
    t: Tensor, *, dtype: DType | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _finish(_call("zeros_like", (t, dtype, None, device, None, None)), requires_grad)


def manual_seed(seed: int) -> None:
    """Seed the generator behind ``rand`` and ``randn``."""
    from kernels import cpu

    cpu.manual_seed(seed)
