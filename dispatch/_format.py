"""``repr`` of a tensor, in the style of torch/_tensor_str.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dispatch.tensorimpl import Tensor


def _float_formatter(a: np.ndarray[Any, Any]) -> Any:
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return lambda x: _special(x) or f"{x:.4f}"
    absf = np.abs(finite)
    ints = bool(np.all(finite == np.round(finite)))
    mx = float(absf.max())
    nonzero = absf[absf > 0]
    mn_nz = float(nonzero.min()) if nonzero.size else 0.0
    sci = mx >= 1e8 or (mn_nz and mn_nz < 1e-4) or (mn_nz and mx / mn_nz > 1000 and not ints)
    if ints and not sci:
        return lambda x: _special(x) or f"{x:.0f}."
    if sci:
        return lambda x: _special(x) or f"{x:.4e}"
    return lambda x: _special(x) or f"{x:.4f}"


def _special(x: float) -> str:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return ""


def _data_str(a: np.ndarray[Any, Any]) -> str:
    if a.dtype.kind == "f":
        fmt = _float_formatter(a)
        items: Any = {"float_kind": fmt}
    elif a.dtype.kind == "b":
        items = {"bool": lambda x: "True" if x else "False"}
    else:
        items = {"int": lambda x: str(int(x))}
    base = next(iter(items.values()))
    flat = a.reshape(-1)
    if flat.size > 2000:  # printed summarised: the edges decide the width
        flat = np.concatenate([flat[:1000], flat[-1000:]])
    if a.dtype.kind == "f":  # torch sizes columns from the finite values only
        flat = flat[np.isfinite(flat)]
    width = max((len(base(x)) for x in flat), default=0)
    items = {k: (lambda x, f=f: f(x).rjust(width)) for k, f in items.items()}
    return np.array2string(
        a,
        separator=", ",
        formatter=items,
        prefix="tensor(",
        threshold=1000,
        edgeitems=3,
        max_line_width=80,
    )


def tensor_repr(t: Tensor) -> str:
    from dispatch import dtypes as dt

    suffixes = []
    a = t._data
    default_dtype = {"f": dt.float32, "i": dt.int64, "b": dt.bool_}.get(a.dtype.kind)
    if t.is_meta:
        body = "..."
        suffixes.append("device='meta'")
        suffixes.append(f"size={tuple(a.shape)}")
        if t.dtype is not dt.float32:
            suffixes.append(f"dtype={t.dtype}")
    else:
        body = _data_str(a) if a.size else "[]"
        if a.size == 0 and a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if default_dtype is not t.dtype or (a.size == 0 and t.dtype is not dt.float32):
            suffixes.append(f"dtype={t.dtype}")
    try:
        fn = t.grad_fn
    except RuntimeError:  # a view whose base changed in place where that is forbidden
        suffixes.append("grad_fn=<Invalid>")
    else:
        if fn is not None:
            suffixes.append(f"grad_fn=<{fn.name().rsplit('::', 1)[-1]}>")
        elif t.requires_grad:
            suffixes.append("requires_grad=True")
    inner = ", ".join([body, *suffixes])
    return f"tensor({inner})"
