"""The CPU kernels against plain numpy, property by property, plus dtype promotion and
PyTorch's error texts.

dispatchsim's CPU kernels *are* numpy, so results are compared exactly wherever both
sides run the same numpy loop in the same dtype. The one place they legitimately
differ is ``matmul`` on rank >= 3 operands: dispatchsim folds the batch into one
``mm`` (as ``at::native::matmul`` does) or goes through ``bmm``, which sums the
products in a different order than ``np.matmul``'s stacked loop, so those are
compared with a float32-sized tolerance relative to ``|a| @ |b|``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dispatch
from dispatch.dtypes import DType
from tests.strategies import (
    all_dtypes,
    broadcastable_pair,
    float_arrays,
    inplace_pair,
    matmul_shapes,
    real_dtypes,
    reduction_dims,
    typed_arrays,
)

F32, F64, I64, BOOL = dispatch.float32, dispatch.float64, dispatch.int64, dispatch.bool_
TYPE_NAME = {F32: "Float", F64: "Double", I64: "Long", BOOL: "Bool"}


def T(a: Any, dtype: DType | None = None) -> dispatch.Tensor:
    return dispatch.tensor(a, dtype=dtype)


def _raises(fn: Callable[[], Any]) -> tuple[str, str] | None:
    try:
        fn()
    except Exception as e:
        return type(e).__name__, str(e)
    return None


# ---------------------------------------------------------------------------------------------
# a reference model of torch's promotion (at::native::result_type), for the numpy references
# ---------------------------------------------------------------------------------------------
_RANK = {BOOL: 0, I64: 1, F32: 2, F64: 3}


def _category(d: DType) -> int:
    return 0 if d is BOOL else 2 if d.is_floating_point else 1


def _promote(a: DType, b: DType) -> DType:
    return a if _RANK[a] >= _RANK[b] else b


def ref_result_type(*operands: Any) -> DType:
    """Dimensioned tensors > zero-dim tensors > Python numbers; a lower tier counts only
    when its category (bool < integral < floating) is higher. A Python float is float32."""
    tiers: list[DType | None] = [None, None, None]
    for o in operands:
        if isinstance(o, np.ndarray):
            tier, d = (0 if o.ndim else 1), dispatch.dtypes.from_numpy(o.dtype)
        elif isinstance(o, bool):
            tier, d = 2, BOOL
        elif isinstance(o, int):
            tier, d = 2, I64
        else:
            tier, d = 2, F32
        tiers[tier] = d if tiers[tier] is None else _promote(tiers[tier], d)  # type: ignore[arg-type]
    out: DType | None = None
    for d in tiers:
        if d is None:
            continue
        if out is None or _category(d) > _category(out):
            out = d if out is None else _promote(out, d)
    assert out is not None
    return out


def _np(x: Any, dtype: DType) -> Any:
    return x.astype(dtype.numpy) if isinstance(x, np.ndarray) else dtype.numpy.type(x)


# ---------------------------------------------------------------------------------------------
# pointwise binary ops with broadcasting
# ---------------------------------------------------------------------------------------------
NP_BINARY: dict[str, Callable[..., Any]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.true_divide,
    "pow": np.power,
}


@given(st.sampled_from(sorted(NP_BINARY)), broadcastable_pair())
def test_binary_ops_broadcast_like_numpy(name: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    if name == "pow":
        a = np.asarray(np.abs(a) + a.dtype.type(0.5))
    r = getattr(T(a), name)(T(b))
    with np.errstate(all="ignore"):
        expected = NP_BINARY[name](a, b)
    assert r.dtype.numpy == expected.dtype
    assert r.shape == expected.shape
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.sampled_from(["add", "sub"]), broadcastable_pair(), st.sampled_from([2, -1, 0.5, 3.25]))
def test_add_sub_alpha(name: str, pair: tuple[np.ndarray, np.ndarray], alpha: Any) -> None:
    a, b = pair
    r = getattr(T(a), name)(T(b), alpha=alpha)
    scaled = b * a.dtype.type(alpha)
    expected = a + scaled if name == "add" else a - scaled
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.sampled_from(["add", "sub", "mul", "div"]), st.data())
def test_binary_ops_with_mixed_dtypes(name: str, data: st.DataObject) -> None:
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    a = data.draw(typed_arrays(shape=shapes.input_shapes[0]))
    b = data.draw(typed_arrays(shape=shapes.input_shapes[1]))
    if name == "sub" and BOOL.numpy in (a.dtype, b.dtype):
        return  # an error; see the promotion tests
    r_dtype = ref_result_type(a, b)
    compute = F32 if name == "div" and not r_dtype.is_floating_point else r_dtype
    with np.errstate(all="ignore"):
        expected = NP_BINARY[name](_np(a, compute), _np(b, compute))
    r = getattr(T(a), name)(T(b))
    assert r.dtype is compute
    np.testing.assert_array_equal(r.numpy(), expected)


@given(
    st.sampled_from(["add_", "sub_", "mul_", "div_"]),
    inplace_pair(),
    st.sampled_from([1, 2, 0.5]),
)
def test_in_place_binary_ops(name: str, pair: tuple[np.ndarray, np.ndarray], alpha: Any) -> None:
    a, b = pair
    t = T(a)
    view = t.view(t.shape)
    kwargs = {"alpha": alpha} if name in ("add_", "sub_") else {}
    result = ref_result_type(a, b)
    if name == "div_" and not result.is_floating_point:
        result = F32
    self_dtype = dispatch.dtypes.from_numpy(a.dtype)
    castable = not (result.is_floating_point and not self_dtype.is_floating_point)
    if name in ("add_", "sub_") and isinstance(alpha, float) and not result.is_floating_point:
        castable = False  # integral alpha rule, below
    if not castable:
        with pytest.raises(RuntimeError):
            getattr(t, name)(T(b), **kwargs)
        np.testing.assert_array_equal(t.numpy(), a)
        assert t._version == 0
        return
    out = getattr(t, name)(T(b), **kwargs)
    assert out is t
    x, y = _np(a, result), _np(b, result)
    if kwargs:
        y = y * result.numpy.type(alpha)
    with np.errstate(all="ignore"):
        expected = NP_BINARY[name[:-1]](x, y).astype(a.dtype)
    assert t.dtype.numpy == a.dtype
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t._version == view._version == 1


@given(inplace_pair(dtypes=st.just(F32)))
def test_in_place_pow(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    a = np.asarray(np.abs(a) + np.float32(0.5))
    t = T(a)
    t.pow_(T(b))
    # numpy's SIMD power loops may round the last bit differently for in-place and
    # out-of-place calls (memory alignment), so allow one ulp
    np.testing.assert_array_max_ulp(t.numpy(), np.power(a, b), maxulp=1)
    mid = t.numpy().copy()
    t.pow_(2)
    np.testing.assert_array_max_ulp(t.numpy(), np.power(mid, np.float32(2)), maxulp=1)
    assert t._version == 2


SCALARS = st.sampled_from([2, -3, 0, 1.5, -0.25, True, False])


@given(st.sampled_from(["add", "sub", "mul", "div"]), typed_arrays(), SCALARS)
def test_scalar_overloads(name: str, a: np.ndarray, s: Any) -> None:
    if name == "sub" and (a.dtype == np.bool_ or isinstance(s, bool)):
        return  # an error; see the promotion tests
    r_dtype = ref_result_type(a, s)
    compute = F32 if name == "div" and not r_dtype.is_floating_point else r_dtype
    with np.errstate(all="ignore"):
        expected = NP_BINARY[name](_np(a, compute), _np(s, compute))
    overload = getattr(dispatch.ops.aten, name).Scalar
    for r in (overload(T(a), s), getattr(T(a), name)(s)):  # Scalar overload; wrapped number
        assert r.dtype is compute
        assert r.shape == a.shape
        np.testing.assert_array_equal(r.numpy(), expected)


@given(st.sampled_from(["add_", "sub_", "mul_", "div_"]), float_arrays(), SCALARS)
def test_in_place_scalar_overloads(name: str, a: np.ndarray, s: Any) -> None:
    if name == "sub_" and isinstance(s, bool):
        return
    t = T(a)
    getattr(dispatch.ops.aten, name).Scalar(t, s)
    with np.errstate(all="ignore"):
        expected = NP_BINARY[name[:-1]](a, a.dtype.type(s))
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t._version == 1


COMPARE: dict[str, Callable[..., Any]] = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}


@given(st.sampled_from(sorted(COMPARE)), st.data())
def test_comparisons(name: str, data: st.DataObject) -> None:
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    a = data.draw(typed_arrays(shape=shapes.input_shapes[0], min_value=-3, max_value=3))
    b = data.draw(typed_arrays(shape=shapes.input_shapes[1], min_value=-3, max_value=3))
    r_dtype = ref_result_type(a, b)
    r = getattr(T(a), name)(T(b))
    assert r.dtype is BOOL
    np.testing.assert_array_equal(r.numpy(), COMPARE[name](_np(a, r_dtype), _np(b, r_dtype)))
    s = data.draw(SCALARS)
    rs = getattr(T(a), name)(s)
    s_dtype = ref_result_type(a, s)
    assert rs.dtype is BOOL
    np.testing.assert_array_equal(rs.numpy(), COMPARE[name](_np(a, s_dtype), _np(s, s_dtype)))


# ---------------------------------------------------------------------------------------------
# unary ops
# ---------------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


NP_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "relu": lambda x: np.maximum(x, x.dtype.type(0)),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
}
TO_FLOAT = {"exp", "log", "sin", "cos", "sigmoid", "tanh"}


@given(st.sampled_from(sorted(NP_UNARY)), st.data())
def test_unary_ops(name: str, data: st.DataObject) -> None:
    a = data.draw(typed_arrays(dtype=real_dtypes))
    if name == "log":  # positive inputs only
        a = np.asarray(np.abs(a) + (a.dtype.type(0.01) if a.dtype.kind == "f" else 1))
    r = getattr(T(a), name)()
    x = a.astype(np.float32) if (name in TO_FLOAT and a.dtype.kind != "f") else a
    expected = NP_UNARY[name](x)
    assert r.dtype.numpy == expected.dtype
    assert r.shape == a.shape
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.sampled_from(["neg_", "exp_", "relu_"]), float_arrays())
def test_unary_in_place_ops(name: str, a: np.ndarray) -> None:
    t = T(a)
    out = getattr(t, name)()
    assert out is t
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(t.numpy(), NP_UNARY[name[:-1]](a))
    assert t._version == 1


def test_unary_on_integers_and_bools() -> None:
    i = T([-2, 0, 3])
    assert i.neg().dtype is I64 and i.neg().tolist() == [2, 0, -3]
    assert i.relu().dtype is I64 and i.relu().tolist() == [0, 0, 3]
    assert i.exp().dtype is F32
    assert i.neg_().tolist() == [2, 0, -3]
    assert _raises(lambda: T([1, 2]).exp_()) == (
        "RuntimeError",
        "result type Float can't be cast to the desired output type Long",
    )
    assert T([True, False]).sin().dtype is F32


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------
@given(st.data())
def test_sum_with_dims_and_keepdim(data: st.DataObject) -> None:
    a = data.draw(typed_arrays())
    dims = data.draw(reduction_dims(a.ndim) | st.none())
    keepdim = data.draw(st.booleans())
    out_dtype = np.int64 if a.dtype.kind in "bi" else a.dtype
    axis = tuple(dims) if dims and a.ndim else None
    expected = np.sum(a, axis=axis, keepdims=keepdim, dtype=out_dtype)
    r = T(a).sum(dims, keepdim=keepdim)
    assert r.dtype.numpy == np.dtype(out_dtype)
    assert r.shape == np.shape(expected)
    np.testing.assert_array_equal(r.numpy(), expected)


@given(st.data())
def test_mean_with_dims_and_keepdim(data: st.DataObject) -> None:
    a = data.draw(float_arrays())
    dims = data.draw(reduction_dims(a.ndim) | st.none())
    keepdim = data.draw(st.booleans())
    axis = tuple(dims) if dims and a.ndim else None
    expected = np.mean(a, axis=axis, keepdims=keepdim)
    r = T(a).mean(dims, keepdim=keepdim)
    assert r.dtype.numpy == a.dtype
    assert r.shape == np.shape(expected)
    np.testing.assert_array_equal(r.numpy(), expected)


def test_reduction_details() -> None:
    t = T([[1.0, 2.0], [3.0, 4.0]])
    assert t.sum().shape == () and t.sum().item() == 10.0
    assert t.sum(dtype=F64).dtype is F64
    assert t.sum(1).tolist() == [3.0, 7.0]
    assert t.sum(-1, keepdim=True).tolist() == [[3.0], [7.0]]
    assert t.sum([]).item() == 10.0  # an empty dim list reduces everything
    assert t.mean(0).tolist() == [2.0, 3.0]
    assert T([True, True, False]).sum().dtype is I64
    assert T([True, True, False]).sum().item() == 2
    assert T(5.0).sum(0).item() == 5.0  # dim 0 of a 0-dim tensor is allowed
    assert T([1.0, 2.0]).mean(dtype=F64).dtype is F64


# ---------------------------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------------------------
@given(st.data())
def test_mm_mv_dot_bmm(data: st.DataObject) -> None:
    d = data.draw(st.sampled_from([F32, F64]))
    b_, n, k, m = (data.draw(st.integers(1, 4)) for _ in range(4))

    def arr(*shape: int) -> np.ndarray:
        return data.draw(float_arrays(shape=shape, dtype=st.just(d)))

    a2, b2, v, a3, b3 = arr(n, k), arr(k, m), arr(k), arr(b_, n, k), arr(b_, k, m)
    for r, expected in (
        (T(a2).mm(T(b2)), np.matmul(a2, b2)),
        (T(a2).mv(T(v)), np.matmul(a2, v)),
        (T(v).dot(T(v)), np.dot(v, v)),
        (T(a3).bmm(T(b3)), np.matmul(a3, b3)),
    ):
        assert r.dtype is d
        assert r.shape == np.shape(expected)
        np.testing.assert_array_equal(r.numpy(), expected)


@given(matmul_shapes(), st.sampled_from([F32, F64]), st.data())
def test_matmul_all_ranks_like_numpy(
    shapes: tuple[tuple[int, ...], tuple[int, ...]], d: DType, data: st.DataObject
) -> None:
    sa, sb = shapes
    a = data.draw(float_arrays(shape=sa, dtype=st.just(d)))
    b = data.draw(float_arrays(shape=sb, dtype=st.just(d)))
    expected = np.matmul(a, b)
    r = T(a).matmul(T(b))
    assert (T(a) @ T(b)).shape == expected.shape
    assert r.dtype is d
    assert r.shape == expected.shape
    scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    eps = np.finfo(d.numpy).eps
    assert np.all(np.abs(r.numpy().astype(np.float64) - expected) <= 8 * eps * scale + 1e-30)


def test_matmul_integer() -> None:
    a = np.arange(6).reshape(2, 3)
    r = T(a) @ T(a.T.copy())
    assert r.dtype is I64
    np.testing.assert_array_equal(r.numpy(), a @ a.T)


# ---------------------------------------------------------------------------------------------
# copies and fills
# ---------------------------------------------------------------------------------------------
@given(typed_arrays())
def test_clone(a: np.ndarray) -> None:
    t = T(a)
    for src in (t, t.t() if t.dim() <= 2 else t.transpose(0, -1)):
        c = src.clone()
        np.testing.assert_array_equal(c.numpy(), src.numpy())
        assert c.dtype is src.dtype
        assert not np.shares_memory(c._data, t._data)
        # torch's clone preserves a dense input's strides (MemoryFormat::Preserve); the
        # stride of a size-1 dimension is immaterial
        assert [st for st, n in zip(c.stride(), c.shape) if n > 1] == [
            st for st, n in zip(src.stride(), src.shape) if n > 1
        ]
        assert src.clone(memory_format="contiguous_format").is_contiguous()
        assert c._version == 0


@given(st.data())
def test_copy_broadcasts_and_casts(data: st.DataObject) -> None:
    a, b = data.draw(inplace_pair(dtypes=all_dtypes))
    t = T(a)
    r = t.copy_(T(b))
    assert r is t and t.dtype.numpy == a.dtype
    expected = a.copy()
    np.copyto(expected, b, casting="unsafe")
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t._version == 1


@given(typed_arrays(), st.sampled_from([0, 1, -2, 2.5, -0.75, True]))
def test_fill_and_zero(a: np.ndarray, value: Any) -> None:
    t = T(a)
    t.fill_(value)
    expected = np.empty_like(a)
    expected[...] = value
    np.testing.assert_array_equal(t.numpy(), expected)
    t.fill_(T(value))  # fill_.Tensor with a 0-dim tensor
    np.testing.assert_array_equal(t.numpy(), expected)
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), np.zeros_like(a))
    assert t._version == 3


# ---------------------------------------------------------------------------------------------
# factories
# ---------------------------------------------------------------------------------------------
@given(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    st.sampled_from([None, F32, F64, I64, BOOL]),
)
def test_size_factories(shape: tuple[int, ...], dtype: DType | None) -> None:
    npd = (dtype or F32).numpy
    for factory, expected in (
        (dispatch.zeros, np.zeros(shape, npd)),
        (dispatch.ones, np.ones(shape, npd)),
        (lambda *s, dtype: dispatch.full(s, 3, dtype=dtype or F32), np.full(shape, 3, npd)),
    ):
        r = factory(*shape, dtype=dtype)
        assert r.shape == shape and r._data.dtype == npd
        np.testing.assert_array_equal(r.numpy(), expected)
    assert dispatch.empty(*shape, dtype=dtype).shape == shape


@given(
    st.integers(-5, 5),
    st.integers(-5, 5),
    st.sampled_from([1, 2, 3, -1, -2, 0.5, 0.75, -0.5]),
)
def test_arange_like_numpy(start: int, end: int, step: Any) -> None:
    if (step > 0 and start > end) or (step < 0 and start < end):
        with pytest.raises(RuntimeError, match="inconsistent with step sign"):
            dispatch.arange(start, end, step)
        return
    r = dispatch.arange(start, end, step)
    expected = np.arange(start, end, step)
    assert r.dtype is (I64 if isinstance(step, int) else F32)
    assert r.shape == expected.shape
    np.testing.assert_allclose(r.numpy(), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# dtype promotion
# ---------------------------------------------------------------------------------------------
PROMOTION_EXAMPLES = [
    # (lhs, rhs, expected dtype of lhs + rhs)
    (T([1, 2]), 2.5, F32),
    (T([1, 2]), True, I64),
    (T([True]), 2, I64),
    (T([True]), 2.5, F32),
    (T([1.0], F64), 2.5, F64),
    (T([1.0]), T(1.0, F64), F32),  # a 0-dim tensor of the same category does not promote
    (T([1, 2]), T(1.0, F64), F64),  # ...but a higher category does, with its own dtype
    (T([1.0]), T([1.0], F64), F64),
    (T(1, I64), 2.5, F32),
    (T(1.0), T(1.0, F64), F64),
    (T([True]), T(1, I64), I64),
    (T([1], I64), T([True]), I64),
]


@pytest.mark.parametrize(("lhs", "rhs", "expected"), PROMOTION_EXAMPLES)
def test_promotion_examples(lhs: Any, rhs: Any, expected: DType) -> None:
    assert (lhs + rhs).dtype is expected
    assert (lhs * rhs).dtype is expected


def test_division_of_integers_is_float32() -> None:
    r = T([1, 2]) / T([2, 4])
    assert r.dtype is F32
    assert r.tolist() == [0.5, 0.5]
    assert (T([True]) / 2).dtype is F32


def _promotion_operands(lib: Any) -> list[tuple[str, Any]]:
    """Every {bool,int64,float32,float64} x {0-dim,1-dim} tensor and Python int/float/bool."""
    out: list[tuple[str, Any]] = []
    dts = {"bool": lib.bool, "int64": lib.int64, "float32": lib.float32, "float64": lib.float64}
    for name, d in dts.items():
        vals = [True, False, True] if name == "bool" else [3, 2, 5]
        out.append((f"{name}[0d]", lib.tensor(vals[0], dtype=d)))
        out.append((f"{name}[1d]", lib.tensor(vals, dtype=d)))
    out += [("int", 2), ("float", 2.5), ("bool", True)]
    return out


PROMOTION_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
    "eq": operator.eq,
    "lt": operator.lt,
}


def _outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        r = fn()
    except Exception as e:
        return ("raises", type(e).__name__, str(e))
    return ("ok", str(r.dtype).split(".")[-1], r.tolist())


@pytest.mark.oracle
@pytest.mark.parametrize("op", sorted(PROMOTION_OPS))
def test_binary_promotion_matches_torch(op: str) -> None:
    torch = pytest.importorskip("torch")
    fn = PROMOTION_OPS[op]
    # (name, dispatchsim operand, torch operand)
    operands = [
        (name, ours, theirs)
        for (name, ours), (_, theirs) in zip(
            _promotion_operands(dispatch), _promotion_operands(torch)
        )
    ]
    mismatches = []
    for (name_a, da, ta), (name_b, db, tb) in itertools.product(operands, repeat=2):
        if not isinstance(da, dispatch.Tensor) and not isinstance(db, dispatch.Tensor):
            continue  # two Python numbers: not a tensor op
        got = _outcome(lambda da=da, db=db: fn(da, db))
        want = _outcome(lambda ta=ta, tb=tb: fn(ta, tb))
        same = got[:2] == want[:2] and (
            got[2] == want[2]
            if got[0] == "raises"
            else np.allclose(np.asarray(got[2], float), np.asarray(want[2], float), equal_nan=True)
        )
        if not same:
            mismatches.append(f"{name_a} {op} {name_b}: dispatchsim {got} != torch {want}")
    assert mismatches == [], "\n".join(mismatches)


def test_sub_with_a_bool_operand_raises_torch_error() -> None:
    one_bool = (
        "RuntimeError",
        "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying "
        "to invert a mask, use the `~` or `logical_not()` operator instead.",
    )
    assert _raises(lambda: T([True, False]) - T([1, 2])) == one_bool
    assert _raises(lambda: T([1.0, 2.0]) - True) == one_bool
    assert _raises(lambda: T([1, 2]) - T([True, False])) == one_bool
    assert _raises(lambda: T([True, False]) - T([True, True])) == (
        "RuntimeError",
        "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
        "`logical_xor()` operator instead.",
    )


# ---------------------------------------------------------------------------------------------
# PyTorch's error texts
# ---------------------------------------------------------------------------------------------
# name -> (call with `m` = dispatch or torch, exception type, torch 2.13's text)
ERRORS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "broadcast_add": (
        lambda m: m.ones(2) + m.ones(3),
        "RuntimeError",
        "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0",
    ),
    "broadcast_mul_3d": (
        lambda m: m.ones(5, 2, 3) * m.ones(4, 1, 3),
        "RuntimeError",
        "The size of tensor a (5) must match the size of tensor b (4) at non-singleton dimension 0",
    ),
    "broadcast_compare": (
        lambda m: m.ones(2, 3) < m.ones(4),
        "RuntimeError",
        "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1",
    ),
    "broadcast_pow": (
        lambda m: m.ones(2) ** m.ones(3),
        "RuntimeError",
        "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0",
    ),
    "broadcast_copy": (
        lambda m: m.ones(3).copy_(m.ones(2)),
        "RuntimeError",
        "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 0",
    ),
    "inplace_shape": (
        lambda m: m.ones(3).add_(m.ones(2, 3)),
        "RuntimeError",
        "output with shape [3] doesn't match the broadcast shape [2, 3]",
    ),
    "inplace_cast": (
        lambda m: m.ones(3, dtype=m.int64).add_(m.ones(3)),
        "RuntimeError",
        "result type Float can't be cast to the desired output type Long",
    ),
    "inplace_cast_scalar": (
        lambda m: m.ones(3, dtype=m.int64).mul_(1.5),
        "RuntimeError",
        "result type Float can't be cast to the desired output type Long",
    ),
    "inplace_cast_div": (
        lambda m: m.ones(3, dtype=m.int64).div_(2),
        "RuntimeError",
        "result type Float can't be cast to the desired output type Long",
    ),
    "inplace_cast_bool": (
        lambda m: m.ones(3, dtype=m.bool).add_(m.ones(3, dtype=m.int64)),
        "RuntimeError",
        "result type Long can't be cast to the desired output type Bool",
    ),
    "view_strides": (
        lambda m: m.ones(2, 3).t().view(6),
        "RuntimeError",
        "view size is not compatible with input tensor's size and stride (at least one dimension "
        "spans across two contiguous subspaces). Use .reshape(...) instead.",
    ),
    "invalid_shape": (
        lambda m: m.ones(2, 3).view(4),
        "RuntimeError",
        "shape '[4]' is invalid for input of size 6",
    ),
    "invalid_shape_inferred": (
        lambda m: m.ones(2, 3).reshape(4, -1),
        "RuntimeError",
        "shape '[4, -1]' is invalid for input of size 6",
    ),
    "two_inferred_dims": (
        lambda m: m.ones(2, 3).view(-1, -1),
        "RuntimeError",
        "only one dimension can be inferred",
    ),
    "mm_shapes": (
        lambda m: m.ones(2, 3).mm(m.ones(2, 3)),
        "RuntimeError",
        "mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)",
    ),
    "mm_not_matrix": (
        lambda m: m.ones(3).mm(m.ones(3, 2)),
        "RuntimeError",
        "self must be a matrix",
    ),
    "mm_dtypes": (
        lambda m: m.ones(2, 3).mm(m.ones(3, 2, dtype=m.float64)),
        "RuntimeError",
        "expected m1 and m2 to have the same dtype, but got: float != double",
    ),
    "matmul_folded_shapes": (
        lambda m: m.ones(5, 2, 3) @ m.ones(4, 2),
        "RuntimeError",
        "mat1 and mat2 shapes cannot be multiplied (10x3 and 4x2)",
    ),
    "matmul_0d": (
        lambda m: m.ones(()) @ m.ones(3),
        "RuntimeError",
        "both arguments to matmul need to be at least 1D, but they are 0D and 1D",
    ),
    "mv_shapes": (
        lambda m: m.ones(2, 3).mv(m.ones(2)),
        "RuntimeError",
        "size mismatch, got input (2), mat (2x3), vec (2)",
    ),
    "dot_sizes": (
        lambda m: m.ones(3).dot(m.ones(2)),
        "RuntimeError",
        "inconsistent tensor size, expected tensor [3] and src [2] to have the same number of "
        "elements, but got 3 and 2 elements respectively",
    ),
    "bmm_shapes": (
        lambda m: m.ones(2, 2, 3).bmm(m.ones(2, 2, 3)),
        "RuntimeError",
        "Expected size for first two dimensions of batch2 tensor to be: [2, 3] but got: [2, 2].",
    ),
    "int_negative_power": (
        lambda m: m.tensor([1, 2]) ** -1,
        "RuntimeError",
        "Integers to negative integer powers are not allowed.",
    ),
    "pow_bool": (
        lambda m: m.tensor([True]) ** m.tensor([True]),
        "NotImplementedError",
        "\"pow\" not implemented for 'Bool'",
    ),
    "float_alpha_int": (
        lambda m: m.ones(2, dtype=m.int64).add(m.ones(2, dtype=m.int64), alpha=1.5),
        "RuntimeError",
        "For integral input tensors, argument alpha must not be a floating point number.",
    ),
    "neg_bool": (
        lambda m: -m.tensor([True]),
        "RuntimeError",
        "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
        "invert a mask, use the `~` or `logical_not()` operator instead.",
    ),
    "mean_int": (
        lambda m: m.ones(2, dtype=m.int64).mean(),
        "RuntimeError",
        "mean(): could not infer output dtype. Input dtype must be either a floating point or "
        "complex dtype. Got: Long",
    ),
    "sum_repeated_dim": (
        lambda m: m.ones(2, 3).sum([1, -1]),
        "RuntimeError",
        "dim 1 appears multiple times in the list of dims",
    ),
    "dim_out_of_range": (
        lambda m: m.ones(2, 3).sum(2),
        "IndexError",
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)",
    ),
    "expand_mismatch": (
        lambda m: m.ones(2, 3).expand(4, 3),
        "RuntimeError",
        "The expanded size of the tensor (4) must match the existing size (2) at non-singleton "
        "dimension 0.  Target sizes: [4, 3].  Tensor sizes: [2, 3]",
    ),
    "write_to_expanded": (
        lambda m: m.ones(1, 3).expand(2, 3).add_(1),
        "RuntimeError",
        "unsupported operation: more than one element of the written-to tensor refers to a single "
        "memory location. Please clone() the tensor before performing the operation.",
    ),
    "fill_with_1d": (
        lambda m: m.ones(3).fill_(m.ones(2)),
        "RuntimeError",
        "fill_ only supports 0-dimension value tensor but got tensor with 1 dimensions.",
    ),
    # fill_(Tensor) is a copy_: unlike fill_(Scalar) it refuses an internally overlapping target
    "fill_tensor_expanded": (
        lambda m: m.ones(1, 3).expand(2, 3).fill_(m.ones(())),
        "RuntimeError",
        "unsupported operation: more than one element of the written-to tensor refers to a single "
        "memory location. Please clone() the tensor before performing the operation.",
    ),
    # inferExpandGeometry scans from the last dimension
    "expand_mismatch_last_dim_first": (
        lambda m: m.ones(2, 3).expand(3, 4),
        "RuntimeError",
        "The expanded size of the tensor (4) must match the existing size (3) at non-singleton "
        "dimension 1.  Target sizes: [3, 4].  Tensor sizes: [2, 3]",
    ),
    "expand_leading_minus_one_after_mismatch": (
        lambda m: m.ones(3).expand(-1, 4),
        "RuntimeError",
        "The expanded size of the tensor (4) must match the existing size (3) at non-singleton "
        "dimension 1.  Target sizes: [-1, 4].  Tensor sizes: [3]",
    ),
    "expand_leading_minus_one": (
        lambda m: m.ones(3).expand(2, -1, 3),
        "RuntimeError",
        "The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension 1",
    ),
    "expand_0d_minus_one": (
        lambda m: m.ones(()).expand(-1, 3),
        "RuntimeError",
        "numel: integer multiplication overflow",
    ),
    "split_sizes_text_keeps_dim": (
        lambda m: m.ones(2, 3).split([1, 1], -1),
        "RuntimeError",
        "split_with_sizes expects split_sizes to sum exactly to 3 (input tensor's size at "
        "dimension -1), but got split_sizes=[1, 1]",
    ),
    "split_sizes_negative_first": (
        lambda m: m.ones(2, 3).split([4, -1], 1),
        "RuntimeError",
        "split_with_sizes expects split_sizes have only non-negative entries, but got "
        "split_sizes=[4, -1]",
    ),
    "split_negative_before_dim": (
        lambda m: m.ones(2, 3).split(-1, 5),
        "RuntimeError",
        "split expects split_size be non-negative, but got split_size=-1",
    ),
    "narrow_negative_length_first": (
        lambda m: m.ones(2, 3).narrow(5, 9, -1),
        "RuntimeError",
        "narrow(): length must be non-negative.",
    ),
    "unbind_0d_wraps_dim_first": (
        lambda m: m.ones(()).unbind(1),
        "IndexError",
        "Dimension out of range (expected to be in range of [-1, 0], but got 1)",
    ),
    "unbind_0d": (
        lambda m: m.ones(()).unbind(-1),
        "IndexError",
        "Dimension specified as 0 but tensor has no dimensions",
    ),
    "sum_0d_repeated_dim": (
        lambda m: m.ones(()).sum((0, -1)),
        "RuntimeError",
        "dim 0 appears multiple times in the list of dims",
    ),
    "sum_dims_wrapped_before_repeats": (
        lambda m: m.ones(2, 3).mean((0, 0, 5)),
        "IndexError",
        "Dimension out of range (expected to be in range of [-2, 1], but got 5)",
    ),
    "view_invalid_dim_index": (
        lambda m: m.ones(6).view(-1, -2, -1),
        "RuntimeError",
        "invalid shape dimension -2 at index 1 of shape [-1, -2, -1]",
    ),
    "view_empty_inferred_ambiguous": (
        lambda m: m.ones(2, 0).view(0, -1),
        "RuntimeError",
        "cannot reshape tensor of 0 elements into shape [0, -1] because the unspecified "
        "dimension size -1 can be any value and is ambiguous",
    ),
    "mv_0d": (
        lambda m: m.ones(()).mv(m.ones(3)),
        "IndexError",
        "Dimension specified as 0 but tensor has no dimensions",
    ),
    "matmul_3d_1d_folds_to_mv": (
        lambda m: m.ones(2, 3, 2) @ m.ones(3),
        "RuntimeError",
        "size mismatch, got input (6), mat (6x2), vec (3)",
    ),
    # a dense permutation of the written-to tensor: a partial overlap
    "partial_overlap_permuted": (
        lambda m: (lambda t: t.sub_(t.permute(1, 0, 2)))(m.ones(2, 2, 3)),
        "RuntimeError",
        "unsupported operation: some elements of the input tensor and the written-to tensor "
        "refer to a single memory location. Please clone() the tensor before performing the "
        "operation.",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_texts(case: str) -> None:
    fn, kind, text = ERRORS[case]
    assert _raises(lambda: fn(dispatch)) == (kind, text)


@pytest.mark.oracle
def test_error_table_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    wrong = {}
    for case, (fn, kind, text) in ERRORS.items():
        got = _raises(lambda fn=fn: fn(torch))
        if got != (kind, text):
            wrong[case] = got
    assert wrong == {}


def test_failed_in_place_ops_leave_self_untouched() -> None:
    for call in (
        lambda t: t.add_(T([[1.0, 2.0, 3.0]] * 2)),  # shape
        lambda t: t.mul_(T([1.0, 2.0])),  # broadcast
    ):
        t = T([1.0, 2.0, 3.0])
        with pytest.raises(RuntimeError):
            call(t)
        assert t.tolist() == [1.0, 2.0, 3.0] and t._version == 0
    i = T([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.add_(T([0.5, 0.5, 0.5]))
    assert i.tolist() == [1, 2, 3] and i._version == 0


# ---------------------------------------------------------------------------------------------
# an input that aliases the written-to tensor where the overlap check cannot decide ("too
# hard": one of them is not non-overlapping and dense): torch goes ahead and its loops read
# each input element just before writing the output element, in TensorIterator's order
# ---------------------------------------------------------------------------------------------
def test_inplace_from_a_strided_view_of_itself_reads_as_it_writes() -> None:
    u = dispatch.tensor(np.arange(12.0).reshape(2, 2, 3))
    u.add_(u.select(1, 0))  # (2, 3) broadcast to (2, 2, 3): other[i, j, k] is u[j, 0, k]
    ref = np.arange(12.0).reshape(2, 2, 3)
    for i, j, k in itertools.product(range(2), range(2), range(3)):  # C order
        ref[i, j, k] += ref[j, 0, k]
    buffered = np.arange(12.0).reshape(2, 2, 3) + np.arange(12.0).reshape(2, 2, 3)[:, 0]
    assert not np.array_equal(ref, buffered)  # the order is observable here
    assert u.tolist() == ref.tolist()


def test_inplace_from_an_alias_iterates_the_fastest_moving_dimension_first() -> None:
    n = dispatch.tensor(np.arange(9.0).reshape(3, 3))
    n.t()[:2].add_(n[2])  # out[r, c] is n[c, r], other[r, c] is n[2, c]
    ref = np.arange(9.0).reshape(3, 3)
    for c in range(3):  # the written-to view's stride-1 dimension (r) is the inner loop
        for r in range(2):
            ref[c, r] += ref[2, c]
    c_order = np.arange(9.0).reshape(3, 3)
    for r, c in itertools.product(range(2), range(3)):
        c_order[c, r] += c_order[2, c]
    assert not np.array_equal(ref, c_order)
    assert n.tolist() == ref.tolist()


ALIASING_INPLACE: dict[str, Callable[[Any], Any]] = {
    "add_select_of_itself": lambda m: (lambda u: (u.add_(u.select(1, 0)), u)[1])(
        m.tensor(np.arange(12.0).reshape(2, 2, 3))
    ),
    "add_select_of_itself_1": lambda m: (lambda u: (u.add_(u.select(1, 1)), u)[1])(
        m.tensor(np.arange(12.0).reshape(2, 2, 3))
    ),
    "transposed_shifted_add": lambda m: (lambda n: (n.t()[1:].add_(n.t()[:2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "transposed_add_of_own_row": lambda m: (lambda n: (n.t()[:2].add_(n[2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "strided_rows_transposed": lambda m: (lambda n: (n.t()[::2].add_(n[2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "shifted_columns_add": lambda m: (lambda n: (n[:, 1:].add_(n[:, :2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "shifted_block_copy": lambda m: (lambda n: (n[1:, 1:].copy_(n[:2, :2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "strided_copy": lambda m: (lambda n: (n[:, ::2].copy_(n[:, 0:2]), n)[1])(
        m.tensor(np.arange(9.0).reshape(3, 3))
    ),
    "permuted_out_broadcast_in": lambda m: (lambda u: (u.permute(1, 2, 0).add_(u[:, 0, 0]), u)[1])(
        m.tensor(np.arange(12.0).reshape(2, 2, 3))
    ),
    "pow_by_own_column": lambda m: (lambda t: (t.pow_(t[:, 0:1]), t)[1])(
        m.tensor(np.arange(6.0).reshape(2, 3) / 4)
    ),
    "dense_slice_is_partial": lambda m: (lambda t: (t.add_(t[1, 2]), t)[1])(
        m.tensor(np.arange(6.0).reshape(2, 3))
    ),
}


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(ALIASING_INPLACE))
def test_inplace_aliasing_matches_torch(case: str) -> None:
    torch = pytest.importorskip("torch")
    fn = ALIASING_INPLACE[case]

    def outcome(m: Any) -> Any:
        try:
            return ("ok", fn(m).tolist())
        except Exception as e:
            return ("raises", type(e).__name__, str(e))

    assert outcome(dispatch) == outcome(torch)


@pytest.mark.parametrize("one_pass", [True, False], ids=["np.maximum", "np.where"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_relu_keeps_negative_zero_and_nan_on_either_path(
    monkeypatch: pytest.MonkeyPatch, one_pass: bool, dtype: str
) -> None:
    """relu is ``x < 0 ? 0 : x`` (torch's clamp_min): -0.0 stays -0.0, nan stays nan —
    whether the kernel takes np.maximum (where numpy was found at import to keep the
    second operand on a tie) or the np.where fallback."""
    from kernels import cpu

    if not one_pass:
        monkeypatch.setattr(cpu, "_RELU_ZERO", {})
    t = dispatch.tensor([-0.0, float("nan"), -1.0, 3.0, 0.0], dtype=getattr(dispatch, dtype))
    for r in (t.relu(), t.clone().relu_()):
        v = r.numpy()
        assert np.signbit(v).tolist() == [True, False, False, False, False]
        assert np.isnan(v[1]) and v[2] == 0 and v[3] == 3


def test_kernels_compute_inf_and_nan_silently_and_leave_numpy_state_alone() -> None:
    """torch computes inf/nan without a word: the kernels silence numpy around their own
    computation only (kernels/_fp_errors.py: numpy's context variable, or np.errstate)."""
    import warnings

    from kernels import _fp_errors as f

    assert f._silences(f.ignore_fp_errors, f.restore_fp_errors)
    assert f._silences(f._errstate_enter, f._errstate_exit)  # the fallback works too
    assert not f._silences(lambda: None, lambda token: None)  # the check can fail
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = dispatch.tensor([1.0, 0.0, -1.0])
        assert (x / 0).tolist()[0] == float("inf") and np.isnan((x / 0).tolist()[1])
        assert x.log().tolist()[1] == float("-inf")
    assert np.geterr() == before
    with pytest.warns(RuntimeWarning):  # numpy itself still warns outside the kernels
        np.divide(np.ones(1), 0.0)
