"""Meta tensors: every operator gives the shape and dtype it gives on CPU, without
allocating data; meta tensors carry (Meta, ADInplaceOrView, AutogradMeta), bump
versions like CPU tensors, and a custom op without a Meta kernel hits the Meta
backend fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dispatch
import modes
from dispatch import DispatchKey, DispatchKeySet
from tests.strategies import (
    all_dtypes,
    basic_indices,
    inplace_pair,
    matmul_shapes,
    real_dtypes,
    reduction_dims,
)

F32, F64, I64, BOOL = dispatch.float32, dispatch.float64, dispatch.int64, dispatch.bool_
NORMAL_META = DispatchKeySet(
    [DispatchKey.Meta, DispatchKey.ADInplaceOrView, DispatchKey.AutogradMeta]
)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def make(shape: tuple[int, ...], dtype: dispatch.DType, device: str) -> dispatch.Tensor:
    """A tensor of ``shape``/``dtype`` on ``device`` (values are irrelevant on meta)."""
    return dispatch.full(shape, 2, dtype=dtype, device=device)


def _flat(out: Any) -> list[dispatch.Tensor]:
    return list(out) if isinstance(out, tuple | list) else [out]


def storage_nbytes(arr: Any) -> int:
    """Bytes of the buffer that finally owns ``arr``'s memory (through views and
    as_strided wrappers)."""
    root = arr
    while getattr(root, "base", None) is not None:
        root = root.base
    return int(root.nbytes)


def assert_meta_like_cpu(meta_out: Any, cpu_out: Any) -> None:
    metas, cpus = _flat(meta_out), _flat(cpu_out)
    assert len(metas) == len(cpus)
    for m, c in zip(metas, cpus):
        assert m.is_meta and m.device == "meta"
        assert m.shape == c.shape
        assert m.dtype is c.dtype
        assert m.key_set == NORMAL_META
        # no data: whatever the shape, the buffer behind it holds at most one element
        assert storage_nbytes(m._data) <= m._data.itemsize, storage_nbytes(m._data)
        assert not m._data.flags.writeable


def run_both(build: Callable[[str], tuple[Any, ...]], op: Callable[..., Any]) -> tuple[Any, Any]:
    """Run ``op`` on inputs built for CPU and for meta; the results."""
    return op(*build("meta")), op(*build("cpu"))


# ---------------------------------------------------------------------------------------------
# every operator: same shape and dtype as on CPU, no data
# ---------------------------------------------------------------------------------------------
UNARY: dict[str, Callable[[dispatch.Tensor], Any]] = {
    "neg": lambda t: t.neg() if t.dtype is not BOOL else t.relu(),
    "exp": lambda t: t.exp(),
    "log": lambda t: t.log(),
    "sin": lambda t: t.sin(),
    "cos": lambda t: t.cos(),
    "relu": lambda t: t.relu(),
    "sigmoid": lambda t: t.sigmoid(),
    "tanh": lambda t: t.tanh(),
    "clone": lambda t: t.clone(),
    "contiguous_t": lambda t: (t.t() if t.dim() <= 2 else t.transpose(0, 1)).contiguous(),
    "detach": lambda t: t.detach(),
    "to_float64": lambda t: t.to(F64),
    "to_int64": lambda t: t.to(dispatch.int64),
    "sum": lambda t: t.sum(),
    "sum_dtype": lambda t: t.sum(dtype=F64),
    "ones_like": lambda t: dispatch.ones_like(t),
    "zeros_like": lambda t: dispatch.zeros_like(t, dtype=I64),
    "eq_scalar": lambda t: t == 1,
    "mul_scalar": lambda t: t * 2.5,
    "add_scalar": lambda t: t + 1,
    "div_scalar": lambda t: t / 2,
    "rpow": lambda t: 2**t if t.dtype is not BOOL else t + 1,
    "pow_scalar": lambda t: t**2 if t.dtype is not BOOL else t * 2,
}


@given(st.sampled_from(sorted(UNARY)), shapes, all_dtypes)
def test_unary_and_scalar_ops_on_meta(name: str, shape: tuple[int, ...], dtype: Any) -> None:
    m, c = run_both(lambda dev: (make(shape, dtype, dev),), UNARY[name])
    assert_meta_like_cpu(m, c)


BINARY: dict[str, Callable[[dispatch.Tensor, dispatch.Tensor], Any]] = {
    "add": lambda a, b: a + b,
    "add_alpha": lambda a, b: a.add(b, alpha=2),
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "ge": lambda a, b: a >= b,
}


@given(st.sampled_from(sorted(BINARY)), st.data())
def test_broadcasting_binary_ops_on_meta(name: str, data: st.DataObject) -> None:
    s = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    da, db = data.draw(real_dtypes), data.draw(real_dtypes)
    if name == "pow":  # integer pow on CPU refuses negative exponents; keep the base float
        da = F32

    def build(dev: str) -> tuple[dispatch.Tensor, dispatch.Tensor]:
        return make(s.input_shapes[0], da, dev), make(s.input_shapes[1], db, dev)

    m, c = run_both(build, BINARY[name])
    assert_meta_like_cpu(m, c)


INPLACE: dict[str, Callable[[dispatch.Tensor, dispatch.Tensor], Any]] = {
    "add_": lambda a, b: a.add_(b),
    "sub_": lambda a, b: a.sub_(b, alpha=2),
    "mul_": lambda a, b: a.mul_(b),
    "div_": lambda a, b: a.div_(b),
    "copy_": lambda a, b: a.copy_(b),
    "iadd": lambda a, b: a.__iadd__(b),
}


@given(st.sampled_from(sorted(INPLACE)), inplace_pair(dtypes=st.sampled_from([F32, F64])))
def test_in_place_binary_ops_on_meta_bump_and_keep_shape(
    name: str, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    a, b = pair
    da, db = (dispatch.dtypes.from_numpy(x.dtype) for x in (a, b))

    def build(dev: str) -> tuple[dispatch.Tensor, dispatch.Tensor]:
        return make(a.shape, da, dev), make(b.shape, db, dev)

    ma, mb = build("meta")
    view = ma.view(ma.shape)
    m = INPLACE[name](ma, mb)
    c = INPLACE[name](*build("cpu"))
    assert m is ma
    assert_meta_like_cpu(m, c)
    assert ma._version == 1 and view._version == 1 and mb._version == 0


SELF_INPLACE: dict[str, Callable[[dispatch.Tensor], Any]] = {
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(3),
    "fill_tensor": lambda t: t.fill_(dispatch.tensor(3.0, device="meta") if t.is_meta else 3.0),
    "neg_": lambda t: t.neg_(),
    "exp_": lambda t: t.exp_(),
    "relu_": lambda t: t.relu_(),
    "pow_": lambda t: t.pow_(2),
    "mul_scalar_": lambda t: t.mul_(2),
    "setitem": lambda t: t.__setitem__(..., 1.0),
    "unsqueeze_": lambda t: t.unsqueeze_(0),
    "squeeze_": lambda t: t.squeeze_(),
    "t_": lambda t: t.t_() if t.dim() <= 2 else t.transpose_(0, 1),
    "transpose_": lambda t: t.transpose_(0, -1) if t.dim() else t.unsqueeze_(0),
}


@given(st.sampled_from(sorted(SELF_INPLACE)), shapes, st.sampled_from([F32, F64]))
def test_self_in_place_ops_on_meta_bump_and_keep_metadata_like_cpu(
    name: str, shape: tuple[int, ...], dtype: Any
) -> None:
    mt, ct = make(shape, dtype, "meta"), make(shape, dtype, "cpu")
    view = mt.view(mt.shape)
    SELF_INPLACE[name](mt)
    SELF_INPLACE[name](ct)
    assert_meta_like_cpu(mt, ct)
    assert mt._version == 1 and view._version == 1


@given(shapes, all_dtypes, st.data())
def test_reductions_on_meta(shape: tuple[int, ...], dtype: Any, data: st.DataObject) -> None:
    dims = data.draw(reduction_dims(len(shape)) | st.none())
    keepdim = data.draw(st.booleans())
    m, c = run_both(lambda dev: (make(shape, dtype, dev),), lambda t: t.sum(dims, keepdim))
    assert_meta_like_cpu(m, c)
    if dtype.is_floating_point:
        m, c = run_both(lambda dev: (make(shape, dtype, dev),), lambda t: t.mean(dims, keepdim))
        assert_meta_like_cpu(m, c)


@given(matmul_shapes(), st.sampled_from([F32, F64]))
def test_matmul_on_meta(shapes_ab: tuple[tuple[int, ...], tuple[int, ...]], dtype: Any) -> None:
    sa, sb = shapes_ab
    m, c = run_both(lambda dev: (make(sa, dtype, dev), make(sb, dtype, dev)), lambda a, b: a @ b)
    assert_meta_like_cpu(m, c)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_mm_mv_dot_bmm_on_meta(n: int, k: int, p: int, b: int) -> None:
    for sa, sb, op in (
        ((n, k), (k, p), lambda x, y: x.mm(y)),
        ((n, k), (k,), lambda x, y: x.mv(y)),
        ((k,), (k,), lambda x, y: x.dot(y)),
        ((b, n, k), (b, k, p), lambda x, y: x.bmm(y)),
    ):
        m, c = run_both(lambda dev, sa=sa, sb=sb: (make(sa, F32, dev), make(sb, F32, dev)), op)
        assert_meta_like_cpu(m, c)


def _view_ops(t: dispatch.Tensor, data: st.DataObject) -> dict[str, Callable[[Any], Any]]:
    n = t.dim()
    ops: dict[str, Callable[[Any], Any]] = {
        "view": lambda x: x.view(-1),
        "reshape": lambda x: x.reshape(-1, 1),
        "view_as": lambda x: x.view_as(dispatch.zeros(x.numel())),
        "unsqueeze": lambda x: x.unsqueeze(-1),
        "squeeze": lambda x: x.squeeze(),
        "expand": lambda x: x.expand(2, *x.shape),
        "detach": lambda x: x.detach(),
    }
    if n <= 2:
        ops["t"] = lambda x: x.t()
    if n >= 1:
        d = data.draw(st.integers(-n, n - 1))
        size = t.shape[d]
        ops |= {
            "transpose": lambda x: x.transpose(0, d),
            "permute": lambda x: x.permute(*reversed(range(n))),
            "squeeze_dim": lambda x: x.squeeze(d),
            "narrow": lambda x: x.narrow(d, size // 2, size - size // 2),
            "select": lambda x: x.select(d, -1),
            "slice": lambda x: dispatch.ops.aten.slice.Tensor(x, d, 0, None, 2),
            "split": lambda x: x.split(1, d),
            "split_with_sizes": lambda x: x.split([size - 1, 1], d),
            "chunk": lambda x: x.chunk(2, d),
            "unbind": lambda x: x.unbind(d),
        }
    idx = data.draw(basic_indices(tuple(t.shape)))
    ops["getitem"] = lambda x: x[idx]
    return ops


@given(shapes, all_dtypes, st.data())
def test_view_ops_on_meta(shape: tuple[int, ...], dtype: Any, data: st.DataObject) -> None:
    mt, ct = make(shape, dtype, "meta"), make(shape, dtype, "cpu")
    ops = _view_ops(ct, data)
    name = data.draw(st.sampled_from(sorted(ops)))
    m, c = ops[name](mt), ops[name](ct)
    assert_meta_like_cpu(m, c)
    for v in _flat(m):
        if name not in ("detach", "getitem"):  # getitem's view-ness: tests/test_tensor.py
            assert v._is_view() and v._base is mt
        mt.zero_()
        assert v._version == mt._version  # shares the base's counter


ANY_DTYPE = (None, F64, I64)
FLOAT_DTYPES = (None, F64)  # torch's rand/randn refuse integer dtypes
META_FACTORIES: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
    (lambda **k: dispatch.ones(2, 3, **k), ANY_DTYPE),
    (lambda **k: dispatch.zeros((2, 3), **k), ANY_DTYPE),
    (lambda **k: dispatch.empty(2, 3, **k), ANY_DTYPE),
    (lambda **k: dispatch.rand(2, 3, **k), FLOAT_DTYPES),
    (lambda **k: dispatch.randn(2, 3, **k), FLOAT_DTYPES),
    (lambda **k: dispatch.full((2, 3), 7, **k), ANY_DTYPE),
    (lambda **k: dispatch.full((2, 3), 0.5, **k), FLOAT_DTYPES),
    (lambda **k: dispatch.full((2, 3), True, **k), ANY_DTYPE),
    (lambda **k: dispatch.arange(6, **k), ANY_DTYPE),
    (lambda **k: dispatch.arange(0, 3, 0.5, **k), FLOAT_DTYPES),
    (lambda **k: dispatch.tensor([[1, 2, 3], [4, 5, 6]], **k), ANY_DTYPE),
    (lambda **k: dispatch.tensor([1.5, 2.5], **k), ANY_DTYPE),
]


@pytest.mark.parametrize(
    ("factory", "dtype"),
    [(f, d) for f, dtypes in META_FACTORIES for d in dtypes],
)
def test_factories_on_meta(factory: Any, dtype: Any) -> None:
    kw = {} if dtype is None else {"dtype": dtype}
    c = factory(**kw)
    m = factory(device="meta", **kw)
    assert_meta_like_cpu(m, c)


def test_out_variant_on_meta_resizes_and_bumps() -> None:
    a = dispatch.ones(2, 3, device="meta")
    out = dispatch.empty(0, device="meta")
    r = dispatch.ops.aten.add.out(a, a, out=out)
    assert r is out and out.shape == (2, 3) and out.is_meta
    assert out._version == 1
    dispatch.ops.aten.mul.out(a, dispatch.ones(3, device="meta"), out=out)
    assert out._version == 2
    assert storage_nbytes(out._data) <= out._data.itemsize


def test_to_meta_and_back() -> None:
    c = dispatch.ones(2, 3)
    m = c.to("meta")
    assert m.is_meta and m.shape == (2, 3) and m.key_set == NORMAL_META
    assert c.to(device="meta", dtype=F64).dtype is F64
    with pytest.raises(NotImplementedError) as e:
        m.to("cpu")
    assert str(e.value) == "Cannot copy out of meta tensor; no data!"


# ---------------------------------------------------------------------------------------------
# strides and invalid views: a meta tensor has a real layout, just no storage
# ---------------------------------------------------------------------------------------------
STRIDE_CASES: dict[str, Callable[[Any], Any]] = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.t(),
    "expanded": lambda t: t[:1].expand(4, 3),
    "sliced": lambda t: t[:, ::2],
    "unsqueezed": lambda t: t.unsqueeze(1),
}


@pytest.mark.parametrize("case", sorted(STRIDE_CASES))
def test_meta_strides_match_cpu(case: str) -> None:
    c = STRIDE_CASES[case](dispatch.ones(2, 3))
    m = STRIDE_CASES[case](dispatch.ones(2, 3, device="meta"))
    assert m.stride() == c.stride()
    assert m.is_contiguous() == c.is_contiguous()


def test_meta_view_of_incompatible_strides_raises_like_cpu() -> None:
    text = (
        "view size is not compatible with input tensor's size and stride (at least one "
        "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
    )
    with pytest.raises(RuntimeError) as cpu_err:
        dispatch.ones(2, 3).t().view(6)
    assert str(cpu_err.value) == text
    with pytest.raises(RuntimeError) as meta_err:
        dispatch.ones(2, 3, device="meta").t().view(6)
    assert str(meta_err.value) == text
    # reshape copies instead
    assert dispatch.ones(2, 3, device="meta").t().reshape(6).shape == (6,)


# invalid calls: meta must refuse them too (exception type as torch's meta tensors give)
META_INVALID: dict[str, tuple[Callable[[Any], Any], str]] = {
    "broadcast": (lambda m: m.ones(2, device="meta") + m.ones(3, device="meta"), "RuntimeError"),
    "inplace_shape": (
        lambda m: m.ones(3, device="meta").add_(m.ones(2, 3, device="meta")),
        "RuntimeError",
    ),
    "inplace_cast": (
        lambda m: m.ones(3, dtype=m.int64, device="meta").add_(m.ones(3, device="meta")),
        "RuntimeError",
    ),
    "invalid_shape": (lambda m: m.ones(2, 3, device="meta").view(4), "RuntimeError"),
    "mm_shapes": (
        lambda m: m.ones(2, 3, device="meta").mm(m.ones(2, 3, device="meta")),
        "RuntimeError",
    ),
    "bmm_shapes": (
        lambda m: m.ones(2, 2, 3, device="meta").bmm(m.ones(2, 2, 3, device="meta")),
        "RuntimeError",
    ),
    "dim_range": (lambda m: m.ones(2, 3, device="meta").sum(2), "IndexError"),
    "mean_int": (lambda m: m.ones(2, dtype=m.int64, device="meta").mean(), "RuntimeError"),
    "expand": (lambda m: m.ones(2, 3, device="meta").expand(4, 3), "RuntimeError"),
    "fill_1d": (
        lambda m: m.ones(3, device="meta").fill_(m.ones(2, device="meta")),
        "RuntimeError",
    ),
}


def _kind(fn: Callable[[], Any]) -> str | None:
    try:
        fn()
    except Exception as e:
        return type(e).__name__
    return None


@pytest.mark.parametrize("case", sorted(META_INVALID))
def test_invalid_calls_on_meta_raise(case: str) -> None:
    fn, kind = META_INVALID[case]
    assert _kind(lambda: fn(dispatch)) == kind


@pytest.mark.oracle
def test_invalid_meta_table_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    got = {case: _kind(lambda fn=fn: fn(torch)) for case, (fn, _) in META_INVALID.items()}
    assert got == {case: kind for case, (_, kind) in META_INVALID.items()}


MIXED_DEVICE = {
    "cpu_plus_meta": (
        lambda m: m.ones(2) + m.ones(2, device="meta"),
        "Tensor on device meta is not on the expected device cpu!",
    ),
    "meta_plus_cpu": (
        lambda m: m.ones(2, device="meta") + m.ones(2),
        "Tensor on device cpu is not on the expected device meta!",
    ),
}


@pytest.mark.parametrize("case", sorted(MIXED_DEVICE))
def test_functional_op_mixing_meta_and_cpu_tensors_raises(case: str) -> None:
    fn, text = MIXED_DEVICE[case]
    with pytest.raises(RuntimeError) as e:
        fn(dispatch)
    assert str(e.value) == text


def test_meta_with_cpu_scalars_is_fine() -> None:
    m = dispatch.ones(2, device="meta")
    for r in (m + 1, m * dispatch.tensor(2.0), m + dispatch.tensor(1.0)):
        assert r.is_meta and r.shape == (2,)


@pytest.mark.oracle
def test_mixed_device_texts_match_torch() -> None:
    torch = pytest.importorskip("torch")
    for fn, text in MIXED_DEVICE.values():
        with pytest.raises(RuntimeError) as e:
            fn(torch)
        assert str(e.value) == text
    m = torch.ones(2, device="meta")
    assert (m + torch.tensor(1.0)).is_meta


def test_meta_tensors_have_no_data_to_read() -> None:
    m = dispatch.ones(2, device="meta")
    with pytest.raises(RuntimeError, match=r"^Tensor\.item\(\) cannot be called on meta tensors"):
        m.sum().item()
    with pytest.raises(TypeError) as e:
        m.numpy()
    assert str(e.value) == (
        "can't convert meta device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
        "host memory first."
    )


# ---------------------------------------------------------------------------------------------
# key sets and versions
# ---------------------------------------------------------------------------------------------
def test_meta_key_sets() -> None:
    m = dispatch.ones(2, 3, device="meta")
    assert m.key_set == NORMAL_META
    assert DispatchKey.Meta in m.key_set and DispatchKey.CPU not in m.key_set
    assert m.view(6).key_set == NORMAL_META
    assert (m * 2).key_set == NORMAL_META
    assert not m.is_inference()
    with modes.inference_mode():
        i = dispatch.ones(2, device="meta")
        j = m * 2
    assert i.key_set == DispatchKeySet([DispatchKey.Meta]) and i.is_inference()
    assert j.key_set == DispatchKeySet([DispatchKey.Meta])


def test_meta_versions_and_views() -> None:
    m = dispatch.ones(2, 3, device="meta")
    v = m[0]
    d = m.detach()
    m.add_(1)
    v.mul_(2)
    d.zero_()
    assert m._version == v._version == d._version == 3
    assert v._is_view() and v._base is m
    c = m.clone()
    assert c._version == 0 and c.is_meta
    with modes.no_grad():
        m.add_(1)
    with modes.AutoDispatchBelowADInplaceOrView():
        m.add_(1)
    assert m._version == 4


def test_meta_inference_tensor_in_place_outside_inference_mode_raises() -> None:
    with modes.inference_mode():
        i = dispatch.ones(2, 3, device="meta")
    with pytest.raises(RuntimeError, match=r"^Inplace update to inference tensor outside"):
        i.add_(1)
    with pytest.raises(RuntimeError, match=r"^Inplace update to inference tensor outside"):
        i.unsqueeze_(0)
    assert i.shape == (2, 3)
    with modes.inference_mode():
        i.add_(1)
    with pytest.raises(RuntimeError, match=r"^Inference tensors do not track version counter\."):
        _ = i._version


# ---------------------------------------------------------------------------------------------
# a custom op with only a CPU kernel: the Meta backend fallback raises
# ---------------------------------------------------------------------------------------------
NS = "dispatchsim_test_meta"


def _meta_fallback_text(ns: str) -> str:
    return (
        f"{ns}::only_cpu: attempted to run this operator with Meta tensors, but there was no fake "
        "impl or Meta kernel registered. You may have run into this message while using an "
        "operator with PT2 compilation APIs (torch.compile/torch.export); in order to use this "
        "operator with those APIs you'll need to add a fake impl. Please see the following for "
        "next steps:  https://pytorch.org/tutorials/advanced/custom_ops_landing_page.html"
    )


def test_custom_op_with_only_a_cpu_kernel_on_meta_raises_meta_fallback_error() -> None:
    with dispatch.Library(NS, "DEF") as lib:
        lib.define("only_cpu(Tensor x) -> Tensor")
        lib.impl("only_cpu", lambda x: x.clone(), "CPU")
        op = getattr(dispatch.ops, NS).only_cpu
        assert op(dispatch.ones(2)).tolist() == [1.0, 1.0]
        m = dispatch.ones(2, device="meta")
        with pytest.raises(NotImplementedError) as e:
            op(m)
        assert str(e.value) == _meta_fallback_text(NS)
        assert m._version == 0
        # adding a Meta kernel makes it work
        lib.impl("only_cpu", lambda x: dispatch.empty(*x.shape, device="meta"), "Meta")
        r = op(m)
        assert r.is_meta and r.shape == (2,)


@pytest.mark.oracle
def test_meta_fallback_text_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    ns = NS + "_oracle"
    lib = torch.library.Library(ns, "DEF")
    try:
        lib.define("only_cpu(Tensor x) -> Tensor")
        lib.impl("only_cpu", lambda x: x.clone(), "CPU")
        with pytest.raises(NotImplementedError) as e:
            getattr(torch.ops, ns).only_cpu(torch.ones(2, device="meta"))
        assert str(e.value) == _meta_fallback_text(ns)
    finally:
        lib._destroy()
