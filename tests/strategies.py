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
    [DispatchKey.Autograd, DispatchKey.CompositeImplicitAutograd, DispatchKey.CompositeExplicitAutograd]
)
keysets = st.lists(runtime_keys, unique=True).map(lambda ks: dispatch.DispatchKeySet(ks))

# -- dispatcher -----------------------------------------------------------------------------

# -- tensors --------------------------------------------------------------------------------

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
