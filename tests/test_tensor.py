"""The user-facing Tensor: factories and their dtype rules, shape queries, conversions,
repr, key sets, basic indexing, ``__setitem__`` and the Python operators.

Expected values are PyTorch 2.13's; where the expectation is a text (repr, error
message), an ``oracle`` test checks the same table against a real torch install so
the table cannot drift from PyTorch.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dispatch
import modes
from dispatch import DispatchKey, DispatchKeySet
from tests.strategies import basic_indices, float_arrays, typed_arrays

NORMAL_CPU = DispatchKeySet([DispatchKey.CPU, DispatchKey.ADInplaceOrView, DispatchKey.AutogradCPU])
INFERENCE_CPU = DispatchKeySet([DispatchKey.CPU])
NORMAL_META = DispatchKeySet(
    [DispatchKey.Meta, DispatchKey.ADInplaceOrView, DispatchKey.AutogradMeta]
)

small_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


def _torch() -> Any:
    return pytest.importorskip("torch")


def _raises(fn: Any) -> tuple[str, str] | None:
    """``(exception type name, message)`` of what ``fn()`` raises, or None."""
    try:
        fn()
    except Exception as e:
        return type(e).__name__, str(e)
    return None


# ---------------------------------------------------------------------------------------------
# factories: dtype rules
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        ([1, 2], dispatch.int64),
        (3, dispatch.int64),
        ([[1, 2], [3, 4]], dispatch.int64),
        ([1.0, 2.0], dispatch.float32),
        (2.5, dispatch.float32),
        ([1, 2.0], dispatch.float32),  # any float makes it float32
        ([True, False], dispatch.bool_),
        (True, dispatch.bool_),
        ([True, 2], dispatch.int64),  # bool + int -> int64
        ([], dispatch.float32),
    ],
)
def test_tensor_infers_dtype_like_torch(data: Any, dtype: dispatch.DType) -> None:
    t = dispatch.tensor(data)
    assert t.dtype is dtype
    assert t.tolist() == np.asarray(data).tolist()


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (np.float64(1.5), dispatch.float64),
        (np.float32(1.5), dispatch.float32),
        (np.int64(3), dispatch.int64),
        (np.int32(3), dispatch.int32),
        (np.bool_(True), dispatch.bool_),
        ([np.float64(1.5), np.float64(2.5)], dispatch.float64),
        (np.array(2.5), dispatch.float64),
    ],
)
def test_tensor_from_numpy_scalars_keeps_their_dtype(value: Any, dtype: dispatch.DType) -> None:
    t = dispatch.tensor(value)
    assert t.dtype is dtype  # torch.tensor(np.float64(1.5)).dtype == torch.float64
    assert t.tolist() == np.asarray(value).tolist()


def test_tensor_from_numpy_keeps_dtype_and_copies() -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = dispatch.tensor(a)
    assert t.dtype is dispatch.float64
    assert t.shape == (2, 3)
    a[0, 0] = 100.0
    assert t.tolist()[0][0] == 0.0  # torch.tensor copies its data
    assert not np.shares_memory(t._data, a)


def test_tensor_dtype_argument_overrides_inference() -> None:
    t = dispatch.tensor([1, 2], dtype=dispatch.float64)
    assert t.dtype is dispatch.float64
    assert t.tolist() == [1.0, 2.0]
    assert dispatch.tensor([1.7, -1.7], dtype=dispatch.int64).tolist() == [1, -1]


@pytest.mark.parametrize(
    ("args", "dtype", "values"),
    [
        ((5,), dispatch.int64, [0, 1, 2, 3, 4]),
        ((2, 5), dispatch.int64, [2, 3, 4]),
        ((5, 0, -2), dispatch.int64, [5, 3, 1]),
        ((3.0,), dispatch.float32, [0.0, 1.0, 2.0]),
        ((0, 1, 0.25), dispatch.float32, [0.0, 0.25, 0.5, 0.75]),
        ((0, 0), dispatch.int64, []),
    ],
)
def test_arange_dtype_and_values(args: tuple[Any, ...], dtype: Any, values: list[Any]) -> None:
    t = dispatch.arange(*args)
    assert t.dtype is dtype
    assert t.tolist() == values
    assert t.shape == (len(values),)


@given(st.integers(0, 50))
def test_arange_n_is_int64_like_numpy(n: int) -> None:
    t = dispatch.arange(n)
    assert t.dtype is dispatch.int64
    np.testing.assert_array_equal(t.numpy(), np.arange(n))


def test_arange_dtype_argument() -> None:
    t = dispatch.arange(3, dtype=dispatch.float64)
    assert t.dtype is dispatch.float64
    assert t.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("fill", "dtype"),
    [(3, dispatch.int64), (1.5, dispatch.float32), (True, dispatch.bool_), (-2, dispatch.int64)],
)
def test_full_dtype_from_fill_value(fill: Any, dtype: dispatch.DType) -> None:
    t = dispatch.full((2, 3), fill)
    assert t.dtype is dtype
    assert t.shape == (2, 3)
    assert t.tolist() == [[fill] * 3] * 2


def test_full_dtype_argument_wins() -> None:
    t = dispatch.full((2,), 3, dtype=dispatch.float64)
    assert t.dtype is dispatch.float64
    assert t.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("factory", [dispatch.ones, dispatch.zeros, dispatch.empty])
@pytest.mark.parametrize("dtype", [None, dispatch.float64, dispatch.int64, dispatch.bool_])
def test_size_factories_shape_and_dtype(factory: Any, dtype: Any) -> None:
    for t in (
        factory(2, 3, dtype=dtype),
        factory((2, 3), dtype=dtype),
        factory([2, 3], dtype=dtype),
    ):
        assert t.shape == (2, 3)
        assert t.dtype is (dtype or dispatch.float32)  # default dtype is float32
        assert t.device == "cpu"
        assert t.key_set == NORMAL_CPU
    if factory is not dispatch.empty:
        assert factory(2, dtype=dtype).tolist() == [factory is dispatch.ones] * 2


def test_zero_dim_factories() -> None:
    for t in (dispatch.ones(()), dispatch.zeros([]), dispatch.full((), 2.0)):
        assert t.shape == ()
        assert t.dim() == 0
        assert t.numel() == 1


def test_rand_randn_shapes_dtypes_and_seed() -> None:
    r = dispatch.rand(3, 4)
    assert r.shape == (3, 4)
    assert r.dtype is dispatch.float32
    assert np.all((r.numpy() >= 0) & (r.numpy() < 1))
    assert dispatch.randn(2, dtype=dispatch.float64).dtype is dispatch.float64
    dispatch.manual_seed(1234)
    a = dispatch.randn(5).tolist()
    dispatch.manual_seed(1234)
    b = dispatch.randn(5).tolist()
    assert a == b
    assert len(set(a)) == 5


def test_factories_requires_grad_argument() -> None:
    for t in (
        dispatch.tensor([1.0, 2.0], requires_grad=True),
        dispatch.ones(2, requires_grad=True),
        dispatch.zeros(2, requires_grad=True),
        dispatch.full((2,), 1.0, requires_grad=True),
        dispatch.arange(2.0, requires_grad=True),
        dispatch.rand(2, requires_grad=True),
    ):
        assert t.requires_grad
        assert t.is_leaf
        assert t.grad_fn is None
    assert not dispatch.ones(2).requires_grad


# torch's own texts; test_error_texts_match_torch checks this table against torch
FACTORY_ERRORS: dict[str, tuple[Any, str, str]] = {
    "int_tensor_requires_grad": (
        lambda m: m.tensor([1, 2], requires_grad=True),
        "RuntimeError",
        "Only Tensors of floating point and complex dtype can require gradients",
    ),
    "int_ones_requires_grad": (
        lambda m: m.ones(2, dtype=m.int64, requires_grad=True),
        "RuntimeError",
        "Only Tensors of floating point and complex dtype can require gradients",
    ),
    "requires_grad_on_int": (
        lambda m: m.ones(2, dtype=m.int64).requires_grad_(),
        "RuntimeError",
        "only Tensors of floating point dtype can require gradients",
    ),
    "arange_wrong_sign": (
        lambda m: m.arange(5, 0),
        "RuntimeError",
        "upper bound and lower bound inconsistent with step sign",
    ),
    "arange_zero_step": (lambda m: m.arange(0, 5, 0), "RuntimeError", "step must be nonzero"),
    "rand_int64": (
        lambda m: m.rand(2, dtype=m.int64),
        "NotImplementedError",
        "\"check_uniform_bounds\" not implemented for 'Long'",
    ),
    "randn_int64": (
        lambda m: m.randn(2, dtype=m.int64),
        "NotImplementedError",
        "\"normal_kernel_cpu\" not implemented for 'Long'",
    ),
    "negative_size": (
        lambda m: m.ones(2, -1),
        "RuntimeError",
        "Trying to create tensor with negative dimension -1: [2, -1]",
    ),
}


@pytest.mark.parametrize("case", sorted(FACTORY_ERRORS))
def test_factory_errors(case: str) -> None:
    fn, kind, text = FACTORY_ERRORS[case]
    assert _raises(lambda: fn(dispatch)) == (kind, text)


def test_factories_accept_device() -> None:
    for dev in ("cpu", dispatch.Device("cpu"), None):
        t = dispatch.ones(2, device=dev)
        assert t.device == "cpu"
        assert t.is_cpu and not t.is_meta
    m = dispatch.tensor([1, 2], device="meta")
    assert m.device == "meta" and m.is_meta
    assert m.dtype is dispatch.int64
    assert m.shape == (2,)
    assert str(dispatch.zeros(1, device="meta").device) == "meta"
    with pytest.raises(RuntimeError):
        dispatch.ones(2, device="cuda")


def test_like_factories() -> None:
    base = dispatch.ones(2, 3, dtype=dispatch.float64)
    o = dispatch.ones_like(base)
    z = dispatch.zeros_like(base, dtype=dispatch.int64)
    assert (o.shape, o.dtype, o.tolist()) == ((2, 3), dispatch.float64, [[1.0] * 3] * 2)
    assert (z.shape, z.dtype, z.tolist()) == ((2, 3), dispatch.int64, [[0] * 3] * 2)
    assert not np.shares_memory(o._data, base._data)


# ---------------------------------------------------------------------------------------------
# shape, size, stride, dim, numel, item, tolist, numpy
# ---------------------------------------------------------------------------------------------
@given(small_shapes)
def test_shape_queries_match_numpy(shape: tuple[int, ...]) -> None:
    a = np.zeros(shape, dtype=np.float32)
    t = dispatch.zeros(*shape) if shape else dispatch.zeros(())
    assert t.shape == shape
    assert isinstance(t.shape, tuple)
    assert t.size() == shape
    assert t.dim() == t.ndim == a.ndim
    assert t.numel() == a.size
    # torch keeps contiguous strides for empty tensors, where numpy 2 reports zeros
    expected = (
        tuple(s // a.itemsize for s in a.strides)
        if a.size
        else tuple(int(np.prod([max(d, 1) for d in shape[i + 1 :]])) for i in range(len(shape)))
    )
    assert t.stride() == expected
    for d in range(-len(shape), len(shape)):
        assert t.size(d) == shape[d]
        assert t.stride(d) == expected[d]


def test_stride_of_views() -> None:
    t = dispatch.zeros(2, 3, 4)
    assert t.stride() == (12, 4, 1)
    assert t.transpose(0, 2).stride() == (1, 4, 12)
    m = dispatch.zeros(2, 3)
    assert m.t().stride() == (1, 3)
    assert m.unsqueeze(1).expand(2, 5, 3).stride() == (3, 0, 1)
    assert m[:, ::2].stride() == (3, 2)
    assert m[1].stride() == (1,)


def test_size_dim_out_of_range() -> None:
    t = dispatch.zeros(2, 3)
    assert _raises(lambda: t.size(2)) == (
        "IndexError",
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)",
    )
    assert _raises(lambda: t.stride(-3)) == (
        "IndexError",
        "Dimension out of range (expected to be in range of [-2, 1], but got -3)",
    )


def test_item_types() -> None:
    f = dispatch.tensor(2.5).item()
    i = dispatch.tensor(7).item()
    b = dispatch.tensor(True).item()
    assert (f, type(f)) == (2.5, float)
    assert (i, type(i)) == (7, int)
    assert (b, type(b)) == (True, bool)
    assert dispatch.tensor([[4.0]]).item() == 4.0  # any one-element tensor
    assert float(dispatch.tensor([2.5])) == 2.5
    assert int(dispatch.tensor(3.9)) == 3
    assert _raises(lambda: dispatch.ones(2).item()) == (
        "RuntimeError",
        "a Tensor with 2 elements cannot be converted to Scalar",
    )


@given(typed_arrays(shape=small_shapes))
def test_tolist_matches_numpy(a: np.ndarray) -> None:
    t = dispatch.tensor(a)
    assert t.dtype.numpy == a.dtype
    assert t.tolist() == a.tolist()


def test_numpy_shares_memory_with_tensor() -> None:
    t = dispatch.zeros(2, 3)
    a = t.numpy()
    assert isinstance(a, np.ndarray)
    assert a.dtype == np.float32 and a.shape == (2, 3)
    a[1, 2] = 5.0  # torch: numpy() aliases the tensor's storage
    assert t.tolist()[1][2] == 5.0
    t.add_(1)
    assert a[0, 0] == 1.0


NUMPY_RG_ERROR = (
    "RuntimeError",
    "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.",
)


def test_numpy_on_requires_grad_raises_torch_error() -> None:
    t = dispatch.ones(2, requires_grad=True)
    assert _raises(t.numpy) == NUMPY_RG_ERROR
    np.testing.assert_array_equal(t.detach().numpy(), np.ones(2, dtype=np.float32))
    # a view of a requires-grad base requires grad too
    assert _raises(lambda: t[0:1].numpy()) == NUMPY_RG_ERROR


# ---------------------------------------------------------------------------------------------
# repr
# ---------------------------------------------------------------------------------------------
# expression (spelled with `dispatch.`) -> torch's repr with `torch.` replaced by `dispatch.`
REPRS: dict[str, str] = {
    "dispatch.tensor([[1., 2.]], requires_grad=True)": "tensor([[1., 2.]], requires_grad=True)",
    "dispatch.tensor([[1, 2], [3, 4]])": "tensor([[1, 2],\n        [3, 4]])",
    "dispatch.tensor([1.5, 2.], dtype=dispatch.float64)": (
        "tensor([1.5000, 2.0000], dtype=dispatch.float64)"
    ),
    "dispatch.tensor([1., 2.], dtype=dispatch.float64, requires_grad=True)": (
        "tensor([1., 2.], dtype=dispatch.float64, requires_grad=True)"
    ),
    "dispatch.tensor(2.5, dtype=dispatch.float64)": "tensor(2.5000, dtype=dispatch.float64)",
    "dispatch.tensor([1, 2], dtype=dispatch.int32)": "tensor([1, 2], dtype=dispatch.int32)",
    "dispatch.tensor([True, False])": "tensor([ True, False])",
    "dispatch.tensor([[True], [False]])": "tensor([[ True],\n        [False]])",
    "dispatch.tensor(3.5)": "tensor(3.5000)",
    "dispatch.tensor(-7)": "tensor(-7)",
    "dispatch.tensor([])": "tensor([])",
    "dispatch.zeros(0, 3)": "tensor([], size=(0, 3))",
    "dispatch.zeros(0, dtype=dispatch.int64)": "tensor([], dtype=dispatch.int64)",
    "dispatch.zeros(2, 0, dtype=dispatch.float64)": (
        "tensor([], size=(2, 0), dtype=dispatch.float64)"
    ),
    "dispatch.tensor([1.25, 2.5, -3.125])": "tensor([ 1.2500,  2.5000, -3.1250])",
    "dispatch.tensor([1.5, 100.25, 3.])": "tensor([  1.5000, 100.2500,   3.0000])",
    "dispatch.tensor([1e10, 1.])": "tensor([1.0000e+10, 1.0000e+00])",
    "dispatch.tensor([1e-5, 1.])": "tensor([1.0000e-05, 1.0000e+00])",
    'dispatch.tensor([float("nan"), 1.])': "tensor([nan, 1.])",
    "dispatch.arange(6).view(2, 3).float()": "tensor([[0., 1., 2.],\n        [3., 4., 5.]])",
    "dispatch.arange(12).view(2, 3, 2)": (
        "tensor([[[ 0,  1],\n         [ 2,  3],\n         [ 4,  5]],\n\n"
        "        [[ 6,  7],\n         [ 8,  9],\n         [10, 11]]])"
    ),
    'dispatch.ones(2, 3, device="meta")': "tensor(..., device='meta', size=(2, 3))",
    'dispatch.ones(2, 3, device="meta", dtype=dispatch.int64)': (
        "tensor(..., device='meta', size=(2, 3), dtype=dispatch.int64)"
    ),
}


@pytest.mark.parametrize("expr", list(REPRS))
def test_repr_like_torch(expr: str) -> None:
    t = eval(expr, {"dispatch": dispatch})
    assert repr(t) == REPRS[expr]
    assert str(t) == REPRS[expr]


@pytest.mark.oracle
def test_repr_table_matches_torch() -> None:
    torch = _torch()
    wrong = {}
    for expr, expected in REPRS.items():
        got = repr(eval(expr.replace("dispatch.", "torch."), {"torch": torch}))
        got = got.replace("torch.", "dispatch.")
        if got != expected:
            wrong[expr] = got
    assert wrong == {}


# ---------------------------------------------------------------------------------------------
# key sets (reference (a) "Tensor keysets", modelled keys only)
# ---------------------------------------------------------------------------------------------
def test_key_set_of_normal_tensors() -> None:
    for t in (
        dispatch.ones(2),
        dispatch.tensor([1, 2]),
        dispatch.ones(2, requires_grad=True),
        dispatch.ones(2) + 1,
        dispatch.ones(2).view(2),
        dispatch.arange(3),
    ):
        assert isinstance(t.key_set, DispatchKeySet)
        assert t.key_set == NORMAL_CPU
        assert not t.is_inference()
    with modes.no_grad():
        assert dispatch.ones(2).key_set == NORMAL_CPU


def test_key_set_of_inference_tensors() -> None:
    normal = dispatch.ones(2)
    with modes.inference_mode():
        made = [dispatch.ones(2), dispatch.tensor([1.0]), normal * 2, dispatch.arange(3)]
        view_of_normal = normal.view(2)
    for t in made:
        assert t.key_set == INFERENCE_CPU
        assert t.is_inference()
    # a view copies its base's key set, whatever the mode
    assert view_of_normal.key_set == NORMAL_CPU
    assert made[0].view(2).key_set == INFERENCE_CPU
    # a functional op on an inference tensor outside inference mode gives a normal tensor
    assert (made[0] + 1).key_set == NORMAL_CPU


def test_key_set_of_meta_tensors() -> None:
    assert dispatch.ones(2, device="meta").key_set == NORMAL_META
    assert dispatch.tensor([1.0], device="meta").key_set == NORMAL_META
    with modes.inference_mode():
        assert dispatch.ones(2, device="meta").key_set == DispatchKeySet([DispatchKey.Meta])


# ---------------------------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------------------------
@given(st.data())
def test_getitem_matches_numpy(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=nonempty_shapes))
    idx = data.draw(basic_indices(a.shape))
    t = dispatch.tensor(a)
    r = t[idx]
    expected = a[idx]
    assert r.shape == expected.shape
    assert r.dtype is t.dtype
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.data())
def test_getitem_is_a_view_of_the_indexed_tensor(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=nonempty_shapes))
    idx = data.draw(basic_indices(a.shape))
    t = dispatch.tensor(a)
    r = t[idx]
    assert r is not t  # torch: basic indexing always returns a new (view) tensor
    assert r._is_view() and r._base is t
    if r.numel():
        assert np.shares_memory(r._data, t._data)
        t.add_(1)  # writing through the base shows in the view
        np.testing.assert_array_equal(r.numpy(), (a + a.dtype.type(1))[idx])


def test_getitem_examples() -> None:
    t = dispatch.arange(24).view(2, 3, 4)
    a = np.arange(24).reshape(2, 3, 4)
    for idx in [
        0,
        -1,
        (1, 2),
        (-1, -1, -1),
        slice(None),
        (slice(None), 1),
        (Ellipsis, 0),
        (0, Ellipsis, 1),
        (None, 0),
        (0, None, slice(1, 3)),
        (Ellipsis, None),
        (slice(None, None, 2), slice(1, None), slice(None, -1, 3)),
        (slice(-100, 100),),
        (slice(5, 1),),  # empty
    ]:
        r = t[idx]
        assert r.shape == a[idx].shape, idx
        assert r.tolist() == a[idx].tolist(), idx
    assert t[1, 2, 3].item() == 23
    assert t[dispatch.tensor(1)].tolist() == a[1].tolist()  # a 0-dim integer tensor index


def test_getitem_int_on_1d_gives_a_0d_view() -> None:
    t = dispatch.tensor([1.0, 2.0, 3.0])
    e = t[1]
    assert e.shape == () and e.item() == 2.0
    assert e._is_view() and e._base is t
    assert np.shares_memory(e._data, t._data)
    t.add_(10)
    assert e.item() == 12.0


@pytest.mark.parametrize("idx", [Ellipsis, ()])
def test_getitem_ellipsis_and_empty_tuple_return_a_new_view(idx: Any) -> None:
    t = dispatch.ones(2, 3)
    r = t[idx]
    assert r is not t  # torch returns an alias: `t[...] is t` is False
    assert r._is_view() and r._base is t
    assert r.shape == (2, 3)


# torch's own texts; test_error_texts_match_torch checks this table against torch
INDEX_ERRORS: dict[str, tuple[Any, str, str]] = {
    "int_out_of_range": (
        lambda m: m.ones(2, 3)[5],
        "IndexError",
        "index 5 is out of bounds for dimension 0 with size 2",
    ),
    "negative_out_of_range": (
        lambda m: m.ones(2, 3)[-3],
        "IndexError",
        "index -3 is out of bounds for dimension 0 with size 2",
    ),
    "second_dim_out_of_range": (
        lambda m: m.ones(2, 3)[0, 5],
        "IndexError",
        "index 5 is out of bounds for dimension 1 with size 3",
    ),
    "second_dim_after_slice": (
        lambda m: m.ones(2, 3)[:, 5],
        "IndexError",
        "index 5 is out of bounds for dimension 1 with size 3",
    ),
    "too_many_indices": (
        lambda m: m.ones(2, 3)[0, 0, 0],
        "IndexError",
        "too many indices for tensor of dimension 2",
    ),
    "index_0d": (
        lambda m: m.tensor(1.0)[0],
        "IndexError",
        "invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in "
        "C++ to convert a 0-dim tensor to a number",
    ),
    "float_index": (
        lambda m: m.ones(2)[1.0],
        "IndexError",
        "only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid "
        "indices (got float)",
    ),
    "zero_step": (lambda m: m.ones(4)[::0], "ValueError", "slice step cannot be zero"),
    "negative_step": (lambda m: m.ones(4)[::-1], "ValueError", "step must be greater than zero"),
}


@pytest.mark.parametrize("case", sorted(INDEX_ERRORS))
def test_indexing_errors(case: str) -> None:
    fn, kind, text = INDEX_ERRORS[case]
    assert _raises(lambda: fn(dispatch)) == (kind, text)


@pytest.mark.oracle
@pytest.mark.parametrize("table", ["factory", "index"])
def test_error_texts_match_torch(table: str) -> None:
    torch = _torch()
    cases = {"factory": FACTORY_ERRORS, "index": INDEX_ERRORS}[table]
    wrong = {}
    for name, (fn, kind, text) in cases.items():
        got = _raises(lambda fn=fn: fn(torch))
        if got != (kind, text):
            wrong[name] = got
    assert wrong == {}


# ---------------------------------------------------------------------------------------------
# __setitem__: an in-place copy_ into the indexed view (one version bump)
# ---------------------------------------------------------------------------------------------
@given(st.data())
def test_setitem_matches_numpy_and_bumps_once(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=nonempty_shapes))
    idx = data.draw(basic_indices(a.shape))
    value = data.draw(st.floats(-5, 5, width=32) | st.integers(-5, 5))
    t = dispatch.tensor(a)
    v0 = t._version
    t[idx] = value
    expected = a.copy()
    expected[idx] = value
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t._version == v0 + 1


@given(st.data())
def test_setitem_with_tensor_value_broadcasts(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=nonempty_shapes))
    idx = data.draw(basic_indices(a.shape))
    target_shape = a[idx].shape
    n = data.draw(st.integers(0, len(target_shape)))
    vshape = tuple(
        1 if data.draw(st.booleans()) else s for s in target_shape[len(target_shape) - n :]
    )
    val = data.draw(float_arrays(shape=vshape))
    t = dispatch.tensor(a)
    view = t.view(t.shape)
    t[idx] = dispatch.tensor(val)
    expected = a.copy()
    expected[idx] = val
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t._version == view._version == 1


def test_setitem_examples() -> None:
    t = dispatch.zeros(2, 3)
    t[0] = 1.0
    t[1, 1:] = dispatch.tensor([2.0, 3.0])
    t[:, 0] = dispatch.tensor(7.0)
    assert t.tolist() == [[7.0, 1.0, 1.0], [7.0, 2.0, 3.0]]
    assert t._version == 3
    t[1, 2] = 9  # single element of a 2-D tensor
    assert t.tolist()[1][2] == 9.0
    assert t._version == 4


def test_setitem_int_index_on_1d() -> None:
    t = dispatch.tensor([1.0, 2.0, 3.0])
    t[1] = 7.0
    t[-1] = dispatch.tensor(8.0)
    assert t.tolist() == [1.0, 7.0, 8.0]
    assert t._version == 2


def test_setitem_casts_to_self_dtype() -> None:
    t = dispatch.zeros(3, dtype=dispatch.int64)
    t[0:2] = 2.7  # copy_ truncates, as torch does
    assert t.dtype is dispatch.int64
    assert t.tolist() == [2, 2, 0]


def test_setitem_shape_mismatch_raises_and_does_not_bump() -> None:
    t = dispatch.zeros(2, 3)
    # torch expands the value to the slice first (copy_to): the expand error
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(3\) must match"):
        t[0] = dispatch.ones(2)
    assert t._version == 0
    assert t.tolist() == [[0.0] * 3] * 2


# ---------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------
BINARY = {
    "+": (operator.add, np.add),
    "-": (operator.sub, np.subtract),
    "*": (operator.mul, np.multiply),
    "/": (operator.truediv, np.true_divide),
    "**": (operator.pow, np.power),
}


@given(st.sampled_from(sorted(BINARY)), st.data())
def test_binary_operators_match_numpy(op: str, data: st.DataObject) -> None:
    pyop, npop = BINARY[op]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    lo = 0.5 if op == "**" else -10
    a = data.draw(typed_arrays(shape=shapes.input_shapes[0], dtype=dispatch.float32, min_value=lo))
    b = data.draw(typed_arrays(shape=shapes.input_shapes[1], dtype=dispatch.float32))
    if op == "/":
        b = np.where(b == 0, np.float32(1), b)
    r = pyop(dispatch.tensor(a), dispatch.tensor(b))
    with np.errstate(all="ignore"):
        expected = npop(a, b)
    assert r.dtype is dispatch.float32
    assert r.shape == expected.shape
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.sampled_from(sorted(BINARY)), float_arrays(dtype=st.just(dispatch.float32)), st.data())
def test_operators_with_python_scalars_and_reflected(
    op: str, a: np.ndarray, data: st.DataObject
) -> None:
    pyop, npop = BINARY[op]
    s = data.draw(st.sampled_from([2, 3, 0.5, 1.5, -2.0]))
    base = np.asarray(np.abs(a) + np.float32(0.5)) if op == "**" else a
    t = dispatch.tensor(base)
    with np.errstate(all="ignore"):
        left = npop(base, np.float32(s))
        nonzero = np.where(base == 0, np.float32(1), base)
        # torch computes `number / tensor` as reciprocal(tensor) * number
        right = (
            np.reciprocal(nonzero) * np.float32(s) if op == "/" else npop(np.float32(s), nonzero)
        )
    r = pyop(t, s)
    assert r.dtype is dispatch.float32  # a Python number does not promote a float32 tensor
    np.testing.assert_array_equal(r.numpy(), left)
    tr = dispatch.tensor(np.where(base == 0, np.float32(1), base))
    rr = pyop(s, tr)  # reflected: __radd__, __rsub__, __rmul__, __rtruediv__, __rpow__
    assert rr.dtype is dispatch.float32
    np.testing.assert_array_equal(rr.numpy(), right)


def test_reflected_operators_examples() -> None:
    t = dispatch.tensor([1.0, 2.0, 4.0])
    assert (1 - t).tolist() == [0.0, -1.0, -3.0]
    assert (2 / t).tolist() == [2.0, 1.0, 0.5]
    assert (2**t).tolist() == [2.0, 4.0, 16.0]
    assert (3 * t).tolist() == [3.0, 6.0, 12.0]
    assert (1.5 + t).tolist() == [2.5, 3.5, 5.5]
    i = dispatch.tensor([1, 2])
    assert (2**i).dtype is dispatch.int64 and (2**i).tolist() == [2, 4]
    assert (1 / i).dtype is dispatch.float32 and (1 / i).tolist() == [1.0, 0.5]
    assert (1.5 + i).dtype is dispatch.float32


def test_unary_minus_and_plus() -> None:
    t = dispatch.tensor([1.0, -2.0])
    assert (-t).tolist() == [-1.0, 2.0]
    assert (-dispatch.tensor([1, 2])).tolist() == [-1, -2]
    assert (+t).tolist() == [1.0, -2.0]
    assert t._version == 0


@given(st.data())
def test_matmul_operator_matches_numpy(data: st.DataObject) -> None:
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    a = data.draw(float_arrays(shape=(n, k), dtype=st.just(dispatch.float64)))
    b = data.draw(float_arrays(shape=(k, m), dtype=st.just(dispatch.float64)))
    v = data.draw(float_arrays(shape=(k,), dtype=st.just(dispatch.float64)))
    np.testing.assert_allclose((dispatch.tensor(a) @ dispatch.tensor(b)).numpy(), a @ b)
    np.testing.assert_allclose((dispatch.tensor(a) @ dispatch.tensor(v)).numpy(), a @ v)
    np.testing.assert_allclose((dispatch.tensor(v) @ dispatch.tensor(v)).numpy(), v @ v)


COMPARISONS = {
    "==": (operator.eq, np.equal),
    "!=": (operator.ne, np.not_equal),
    "<": (operator.lt, np.less),
    "<=": (operator.le, np.less_equal),
    ">": (operator.gt, np.greater),
    ">=": (operator.ge, np.greater_equal),
}


@given(st.sampled_from(sorted(COMPARISONS)), st.data())
def test_comparison_operators(op: str, data: st.DataObject) -> None:
    pyop, npop = COMPARISONS[op]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    a = data.draw(typed_arrays(shape=shapes.input_shapes[0], dtype=dispatch.int64, max_value=3))
    b = data.draw(typed_arrays(shape=shapes.input_shapes[1], dtype=dispatch.float32, max_value=3))
    r = pyop(dispatch.tensor(a), dispatch.tensor(b))
    assert isinstance(r, dispatch.Tensor)
    assert r.dtype is dispatch.bool_
    np.testing.assert_array_equal(r.numpy(), npop(a, b))
    s = pyop(dispatch.tensor(a), 1)
    assert s.dtype is dispatch.bool_
    np.testing.assert_array_equal(s.numpy(), npop(a, 1))


INPLACE = {
    "+=": (operator.iadd, np.add),
    "-=": (operator.isub, np.subtract),
    "*=": (operator.imul, np.multiply),
    "/=": (operator.itruediv, np.true_divide),
}


@given(st.sampled_from(sorted(INPLACE)), st.data())
def test_augmented_assignment_is_in_place(op: str, data: st.DataObject) -> None:
    pyop, npop = INPLACE[op]
    a = data.draw(float_arrays(shape=nonempty_shapes, dtype=st.just(dispatch.float32)))
    other_is_tensor = data.draw(st.booleans())
    if other_is_tensor:
        b = data.draw(float_arrays(shape=st.just(a.shape[1:]), dtype=st.just(dispatch.float32)))
        b = np.where(b == 0, np.float32(1), b)
        other: Any = dispatch.tensor(b)
    else:
        b = np.float32(data.draw(st.sampled_from([2.0, -0.5, 3])))
        other = float(b)
    t = dispatch.tensor(a)
    alias = t
    view = t.view(t.shape)
    t = pyop(t, other)
    assert t is alias  # the same object: __iadd__ & co. return self
    np.testing.assert_array_equal(t.numpy(), npop(a, b))
    assert t._version == 1 and view._version == 1
    np.testing.assert_array_equal(view.numpy(), t.numpy())


def test_augmented_assignment_dtype_rules() -> None:
    i = dispatch.tensor([1, 2])
    i += 1
    i *= 2
    assert i.tolist() == [4, 6] and i.dtype is dispatch.int64
    with pytest.raises(RuntimeError, match="result type Float can't be cast"):
        i += 1.5
    with pytest.raises(RuntimeError, match="result type Float can't be cast"):
        i /= 2
    assert i.tolist() == [4, 6] and i._version == 2
    f = dispatch.tensor([1.0, 2.0])
    f += dispatch.tensor([1, 1])  # int into float: fine
    assert f.tolist() == [2.0, 3.0] and f.dtype is dispatch.float32
