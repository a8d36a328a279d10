"""The one shared module of hypothesis strategies for dispatchsim's tests.

Sections are owned by topic; add to the matching section.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dispatch
from dispatch.keys import RUNTIME_KEYS, DispatchKey

# -- keys and key sets ----------------------------------------------------------------------

runtime_keys = st.sampled_from(RUNTIME_KEYS)
alias_keys = st.sampled_from(
    [
        DispatchKey.Autograd,
        DispatchKey.CompositeImplicitAutograd,
        DispatchKey.CompositeExplicitAutograd,
    ]
)
keysets = st.lists(runtime_keys, unique=True).map(lambda ks: dispatch.DispatchKeySet(ks))

# -- dispatcher -----------------------------------------------------------------------------

# Keys a user kernel may be registered to in the table-precedence tests (PyTorch's `commute`).
KERNEL_REGISTRATION_KEYS = (
    "CPU",
    "Meta",
    "Autograd",
    "AutogradCPU",
    "CompositeImplicitAutograd",
    "CompositeExplicitAutograd",
)
# Keys a `fallthrough_kernel` may be registered to (runtime and alias keys; torch allows both).
FALLTHROUGH_KEYS = (*KERNEL_REGISTRATION_KEYS, "AutogradMeta", "AutogradOther", "ADInplaceOrView")


@st.composite
def registration_plans(draw: st.DrawFn, min_size: int = 0) -> list[tuple[str, bool]]:
    """A set of registrations for one operator, in a drawn order: ``(key name, is_fallthrough)``.

    Each key gets at most one registration (so the order cannot matter for PyTorch's
    precedence); at most one of them is a ``fallthrough_kernel``.
    """
    keys = draw(st.lists(st.sampled_from(KERNEL_REGISTRATION_KEYS), unique=True, min_size=min_size))
    plan = [(k, False) for k in keys]
    free = [k for k in FALLTHROUGH_KEYS if k not in keys]
    ft = draw(st.none() | st.sampled_from(free))
    if ft is not None:
        plan.append((ft, True))
    return list(draw(st.permutations(plan)))


# -- tensors --------------------------------------------------------------------------------

# The dtypes a tensor test draws from (torch names: bool, long, float, double).
all_dtypes = st.sampled_from([dispatch.bool_, dispatch.int64, dispatch.float32, dispatch.float64])
real_dtypes = st.sampled_from([dispatch.int64, dispatch.float32, dispatch.float64])


def elements_for(dtype: dispatch.DType, min_value: float = -10, max_value: float = 10):
    """Array elements of ``dtype`` in ``[min_value, max_value]`` (no nan/inf)."""
    if dtype is dispatch.bool_:
        return st.booleans()
    if not dtype.is_floating_point:
        return st.integers(int(np.ceil(min_value)), int(np.floor(max_value)))
    return st.floats(
        min_value, max_value, allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize
    )


@st.composite
def typed_arrays(
    draw: st.DrawFn, shape=None, dtype=None, min_value=-10, max_value=10
) -> np.ndarray:
    """An array of a drawn (or given) dtype and shape; ``shape`` may be a tuple or a strategy."""
    d = dtype if isinstance(dtype, dispatch.DType) else draw(all_dtypes if dtype is None else dtype)
    if shape is None:
        shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
    shp = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    return draw(hnp.arrays(d.numpy, shp, elements=elements_for(d, min_value, max_value)))


@st.composite
def inplace_pair(draw: st.DrawFn, dtypes=None) -> tuple[np.ndarray, np.ndarray]:
    """``(self, other)`` arrays where ``other`` broadcasts *to* ``self``'s shape (an in-place
    binary op is legal shape-wise). Dtypes are drawn independently from ``dtypes``."""
    dts = real_dtypes if dtypes is None else dtypes
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    n_other = draw(st.integers(0, len(shape)))
    other = tuple(
        1 if draw(st.booleans()) else s for s in (shape[len(shape) - n_other :] if n_other else ())
    )
    da, db = draw(dts), draw(dts)
    a = draw(hnp.arrays(da.numpy, shape, elements=elements_for(da)))
    b = draw(hnp.arrays(db.numpy, other, elements=elements_for(db)))
    return a, b


@st.composite
def matmul_shapes(
    draw: st.DrawFn, max_rank: int = 4, max_side: int = 4
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes (ranks 1..max_rank each) that ``np.matmul`` accepts, batch dims broadcasting."""
    r1, r2 = draw(st.integers(1, max_rank)), draw(st.integers(1, max_rank))
    side = st.integers(1, max_side)
    k = draw(side)
    nb = max(r1 - 2, r2 - 2, 0)
    batch = [draw(st.integers(1, 3)) for _ in range(nb)]

    def batch_of(rank: int) -> tuple[int, ...]:
        own = batch[nb - max(rank - 2, 0) :] if rank > 2 else []
        return tuple(1 if draw(st.booleans()) else b for b in own)

    a = (*batch_of(r1), draw(side), k) if r1 >= 2 else (k,)
    b = (*batch_of(r2), k, draw(side)) if r2 >= 2 else (k,)
    return a, b


@st.composite
def reduction_dims(draw: st.DrawFn, ndim: int) -> list[int]:
    """A list of distinct dims of an ``ndim``-d tensor, each possibly negative; may be empty."""
    n = max(ndim, 1)
    dims = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    return [d - n if draw(st.booleans()) else d for d in dims]


def _index_for(draw: st.DrawFn, size: int):
    """One int (possibly negative) or positive-step slice valid for a dimension of ``size``."""
    if draw(st.booleans()):
        return draw(st.integers(-size, size - 1))
    bound = st.none() | st.integers(-size - 2, size + 2)
    return slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3)))


@st.composite
def basic_indices(draw: st.DrawFn, shape: tuple[int, ...]):
    """A torch-legal basic index for ``shape``: ints (negative too), positive-step slices,
    ``None`` and at most one ``Ellipsis``; a bare item or a tuple."""
    ndim = len(shape)
    k = draw(st.integers(0, ndim))
    use_ellipsis = draw(st.booleans())
    head = draw(st.integers(0, k)) if use_ellipsis else k
    parts: list[object] = [_index_for(draw, shape[i]) for i in range(head)]
    if use_ellipsis:
        parts.append(Ellipsis)
        parts += [_index_for(draw, shape[ndim - (k - head) + j]) for j in range(k - head)]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]
    return tuple(parts)


float_dtypes = st.sampled_from([dispatch.float32, dispatch.float64])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@st.composite
def float_arrays(draw: st.DrawFn, shape=shapes, dtype=float_dtypes) -> np.ndarray:
    dt = draw(dtype)
    shp = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    return draw(
        hnp.arrays(
            dt.numpy,
            shp,
            elements=st.floats(-10, 10, allow_nan=False, width=8 * dt.itemsize),
        )
    )


@st.composite
def broadcastable_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two float arrays whose shapes broadcast together."""
    shps = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    dt = draw(float_dtypes)
    elems = st.floats(-10, 10, allow_nan=False, width=8 * dt.itemsize)
    a = draw(hnp.arrays(dt.numpy, shps.input_shapes[0], elements=elems))
    b = draw(hnp.arrays(dt.numpy, shps.input_shapes[1], elements=elems))
    return a, b
