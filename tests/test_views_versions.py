"""View semantics and version counters (reference/pytorch-semantics.md, (c) "Version
counter facts" and "More rules").

Every view op of the operator table returns a tensor over its base's memory that
shares the base's version counter; ``_base`` is the root base; each in-place call
bumps the base and all its views by exactly one; nothing else bumps. Guards change
this only through the keys they exclude.
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
from kernels.ad_inplace_or_view import INFERENCE_INPLACE_ERROR
from tests.strategies import float_arrays

INFERENCE_INPLACE_TEXT = (
    "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a clone "
    "to get a normal tensor before doing inplace update.See "
    "https://github.com/pytorch/rfcs/pull/17 for more details."
)
INFERENCE_VERSION_TEXT = "Inference tensors do not track version counter."


def _base() -> dispatch.Tensor:
    return dispatch.arange(24).view(2, 3, 4).float().contiguous()


# name -> op taking a (2, 3, 4) float tensor and returning one view (or a tuple of views)
VIEW_OPS: dict[str, Callable[[dispatch.Tensor], Any]] = {
    "view": lambda x: x.view(6, 4),
    "view_-1": lambda x: x.view(-1, 4),
    "reshape_viewable": lambda x: x.reshape(4, 6),
    "view_as": lambda x: x.view_as(dispatch.zeros(4, 6)),
    "t": lambda x: x[0].t(),
    "transpose": lambda x: x.transpose(0, 2),
    "permute": lambda x: x.permute(2, 0, 1),
    "unsqueeze": lambda x: x.unsqueeze(1),
    "squeeze": lambda x: x.unsqueeze(0).squeeze(),
    "squeeze_dim": lambda x: x.unsqueeze(-1).squeeze(-1),
    "expand": lambda x: x.unsqueeze(0).expand(3, 2, 3, 4),
    "expand_same": lambda x: x.expand(2, 3, 4),
    "narrow": lambda x: x.narrow(2, 1, 2),
    "select": lambda x: x.select(1, -1),
    "slice": lambda x: dispatch.ops.aten.slice.Tensor(x, 2, 1, 4, 2),
    "getitem": lambda x: x[1, :, 1:3],
    "split": lambda x: x.split(2, dim=2),
    "split_with_sizes": lambda x: x.split([1, 2], dim=1),
    "chunk": lambda x: x.chunk(2, dim=2),
    "unbind": lambda x: x.unbind(1),
    "detach": lambda x: x.detach(),
}
NOT_A_VIEW = {"detach"}  # shares memory and the counter, but `_is_view()` is False


def _outputs(name: str, x: dispatch.Tensor) -> list[dispatch.Tensor]:
    out = VIEW_OPS[name](x)
    return list(out) if isinstance(out, tuple | list) else [out]


@pytest.mark.parametrize("name", list(VIEW_OPS))
def test_view_shares_memory_with_base(name: str) -> None:
    x = _base()
    for v in _outputs(name, x):
        assert v is not x
        assert np.shares_memory(v._data, x._data)
        before = v.numpy().copy()
        x.add_(1)  # writing through the base shows in every view
        np.testing.assert_array_equal(v.numpy(), before + 1)


@pytest.mark.parametrize("name", sorted(set(VIEW_OPS) - {"expand"}))
def test_writing_through_a_view_shows_in_the_base(name: str) -> None:
    x = _base()
    v = _outputs(name, x)[-1]
    v.fill_(-1.0)
    assert int((x == -1.0).sum().item()) == v.numel()
    np.testing.assert_array_equal(v.numpy(), -np.ones(v.shape, dtype=np.float32))


@pytest.mark.parametrize("name", list(VIEW_OPS))
def test_view_shares_the_version_counter(name: str) -> None:
    x = _base()
    x.add_(1)
    x.mul_(2)
    outs = _outputs(name, x)
    for v in outs:
        assert v._version == 2  # a fresh view starts at the base's current version
    x.sub_(1)
    assert [v._version for v in outs] == [3] * len(outs)
    if name == "expand":  # its elements repeat in memory: write through the base instead
        x.zero_()
    else:
        outs[0].zero_()
    assert x._version == 4
    assert [v._version for v in outs] == [4] * len(outs)


@pytest.mark.parametrize("name", sorted(set(VIEW_OPS) - {"expand"}))
def test_in_place_on_a_view_bumps_the_base_and_sibling_views(name: str) -> None:
    x = _base()
    outs = _outputs(name, x)
    other = x.view(-1)
    outs[0].mul_(3)
    assert x._version == 1
    assert other._version == 1
    assert [v._version for v in outs] == [1] * len(outs)


@pytest.mark.parametrize("name", list(VIEW_OPS))
def test_view_base_and_is_view(name: str) -> None:
    x = _base()
    for v in _outputs(name, x):
        if name in NOT_A_VIEW:
            assert not v._is_view()
            assert v._base is None
        else:
            assert v._is_view()
            assert v._base is x
        assert v.key_set == x.key_set
        assert not v.is_inference()


# view ops that apply to any tensor with at least 2 dims (for views of views)
SECOND_VIEW: dict[str, Callable[[dispatch.Tensor], dispatch.Tensor]] = {
    "view": lambda t: t.view(-1) if t.is_contiguous() else t.view(t.shape),
    "reshape": lambda t: t.reshape(t.shape),
    "transpose": lambda t: t.transpose(0, -1),
    "permute": lambda t: t.permute(*reversed(range(t.dim()))),
    "unsqueeze": lambda t: t.unsqueeze(0),
    "squeeze": lambda t: t.unsqueeze(0).squeeze(0),
    "select": lambda t: t.select(0, 0),
    "narrow": lambda t: t.narrow(-1, 0, 1),
    "getitem": lambda t: t[:, :1],
    "split": lambda t: t.split(1)[0],
    "chunk": lambda t: t.chunk(2, -1)[-1],
    "unbind": lambda t: t.unbind(0)[0],
    "expand_same": lambda t: t.expand(*t.shape),
}


@pytest.mark.parametrize("outer", sorted(SECOND_VIEW))
@pytest.mark.parametrize("inner", sorted(set(VIEW_OPS) - NOT_A_VIEW - {"expand"}))
def test_view_of_view_has_the_root_base(outer: str, inner: str) -> None:
    x = _base()
    first = _outputs(inner, x)[0]
    assert first._base is x
    second = SECOND_VIEW[outer](first)
    assert second._base is x  # the root, not the intermediate view
    assert second._is_view()
    assert np.shares_memory(second._data, x._data)
    second.add_(1)
    assert x._version == first._version == second._version == 1
    third = second.view(second.shape)
    assert third._base is x and third._version == 1


ZERO_DIM_VIEWS: dict[str, Callable[[dispatch.Tensor], dispatch.Tensor]] = {
    "select": lambda t: t.select(0, 1),
    "unbind": lambda t: t.unbind(0)[1],
    "getitem": lambda t: t[1],
    "getitem_2d": lambda t: t.view(1, 3)[0, 1],
    "squeeze": lambda t: t[1:2].squeeze(),
}


@pytest.mark.parametrize("name", sorted(ZERO_DIM_VIEWS))
def test_zero_dim_views_share_memory_and_counter(name: str) -> None:
    x = dispatch.tensor([1.0, 2.0, 3.0])
    e = ZERO_DIM_VIEWS[name](x)
    assert e.shape == ()
    assert e._is_view() and e._base is x
    assert np.shares_memory(e._data, x._data)
    x.add_(1)
    assert e.item() == 3.0 and e._version == 1
    e.mul_(10)  # writing through the 0-dim view changes the base
    assert x.tolist() == [2.0, 30.0, 4.0]
    assert x._version == 2 and e._version == 2


def test_reshape_that_cannot_view_copies() -> None:
    x = dispatch.arange(6).view(2, 3).float()
    x.add_(1)
    y = x.t().reshape(6)  # not viewable: a copy with its own counter
    assert not np.shares_memory(y._data, x._data)
    assert not y._is_view() and y._base is None
    assert y._version == 0
    x.add_(1)
    assert y._version == 0
    np.testing.assert_array_equal(y.numpy(), np.array([1, 4, 2, 5, 3, 6], dtype=np.float32))


def test_contiguous_of_contiguous_is_self_and_of_noncontiguous_is_a_copy() -> None:
    x = dispatch.ones(2, 3)
    assert x.contiguous() is x
    c = x.t().contiguous()
    assert not np.shares_memory(c._data, x._data)
    assert c._version == 0 and not c._is_view()


def test_detach_shares_counter_and_memory_but_is_not_a_view() -> None:
    x = dispatch.ones(3)
    d = x.detach()
    assert not d._is_view() and d._base is None
    d.add_(1)
    assert x._version == 1 and d._version == 1
    assert x.tolist() == [2.0, 2.0, 2.0]
    dv = x.view(3).detach()  # detach of a view: shares the root's counter, still not a view
    x.add_(1)
    assert dv._version == 2 and not dv._is_view()


def test_clone_gets_a_new_counter_starting_at_zero() -> None:
    x = dispatch.ones(3)
    x.add_(1)
    x.add_(1)
    c = x.clone()
    assert c._version == 0
    assert not np.shares_memory(c._data, x._data)
    c.add_(1)
    assert c._version == 1 and x._version == 2
    x.add_(1)
    assert c._version == 1
    v = x.view(3).clone()  # clone of a view: also a fresh counter
    assert v._version == 0 and not v._is_view()


def test_chained_in_place_bumps_twice() -> None:
    x = dispatch.ones(3)
    v = x[1:]
    r = x.add_(1).mul_(2)
    assert r is x
    assert x._version == 2 and v._version == 2
    assert x.tolist() == [4.0, 4.0, 4.0]


# ---------------------------------------------------------------------------------------------
# hypothesis: random chains of views and in-place ops
# ---------------------------------------------------------------------------------------------
def _view_step(t: dispatch.Tensor, data: st.DataObject) -> dispatch.Tensor:
    """One random view op applicable to ``t`` (any rank)."""
    n = t.dim()
    choices = ["view", "reshape", "unsqueeze", "detach", "squeeze", "expand_same", "getitem"]
    if n >= 1:
        choices += ["transpose", "narrow", "slice", "split", "chunk", "permute"]
    if n >= 2:  # 0-dim views (select/unbind of a 1-d tensor) have their own tests below
        choices += ["select", "unbind"]
    if n <= 2:
        choices.append("t")
    name = data.draw(st.sampled_from(choices), label="view op")
    dim = data.draw(st.integers(-max(n, 1), max(n, 1) - 1)) if n else 0
    size = t.shape[dim] if n else 1
    if name == "view":
        return t.view(-1) if t.is_contiguous() else t.view(t.shape)
    if name == "reshape":
        return t.reshape(t.shape)
    if name == "unsqueeze":
        return t.unsqueeze(data.draw(st.integers(-n - 1, n)))
    if name == "detach":
        return t.detach()
    if name == "squeeze":
        return t.squeeze()
    if name == "expand_same":
        return t.expand(*t.shape)
    if name == "getitem":
        return t[None] if n == 0 else t[:, None]
    if name == "transpose":
        return t.transpose(dim, data.draw(st.integers(-n, n - 1)))
    if name == "select":
        return t.select(dim, data.draw(st.integers(-size, size - 1)))
    if name == "narrow":
        start = data.draw(st.integers(0, size - 1))
        return t.narrow(dim, start, data.draw(st.integers(1, size - start)))
    if name == "slice":
        return dispatch.ops.aten.slice.Tensor(t, dim, data.draw(st.integers(0, size - 1)), None, 2)
    if name in ("split", "chunk", "unbind"):
        parts = {"split": lambda: t.split(1, dim), "chunk": lambda: t.chunk(2, dim)}.get(
            name, lambda: t.unbind(dim)
        )()
        return data.draw(st.sampled_from(list(parts)))
    if name == "permute":
        return t.permute(*data.draw(st.permutations(range(n))))
    return t.t()


def _inplace_step(t: dispatch.Tensor, data: st.DataObject) -> str:
    """Apply one random in-place op to ``t`` (each is exactly one in-place call)."""
    n = t.dim()
    choices = ["add_", "sub_", "mul_", "div_", "zero_", "fill_", "copy_", "neg_", "relu_"]
    choices += ["exp_", "setitem", "iadd", "unsqueeze_", "squeeze_", "isub", "imul", "itruediv"]
    if n <= 2:
        choices.append("t_")
    if n >= 1:
        choices.append("transpose_")
    name = data.draw(st.sampled_from(choices), label="in-place op")
    if name == "add_":
        t.add_(dispatch.ones(t.shape[-1:] if n else ()), alpha=2)
    elif name == "sub_":
        t.sub_(1)
    elif name == "mul_":
        t.mul_(0.5)
    elif name == "div_":
        t.div_(2)
    elif name == "zero_":
        t.zero_()
    elif name == "fill_":
        t.fill_(data.draw(st.sampled_from([1.5, dispatch.tensor(2.0)])))
    elif name == "copy_":
        t.copy_(dispatch.full(t.shape[1:], 3.0) if n else dispatch.tensor(3.0))
    elif name == "neg_":
        t.neg_()
    elif name == "relu_":
        t.relu_()
    elif name == "exp_":
        t.exp_()
    elif name == "setitem":
        if n:
            t[:1] = 4.0
        else:
            t[...] = 4.0
    elif name == "iadd":
        t += 1
    elif name == "isub":
        t -= dispatch.tensor(1.0)
    elif name == "imul":
        t *= 2
    elif name == "itruediv":
        t /= 4
    elif name == "unsqueeze_":
        t.unsqueeze_(0)
    elif name == "squeeze_":
        t.squeeze_()
    elif name == "t_":
        t.t_()
    elif name == "transpose_":
        t.transpose_(0, -1)
    return name


@given(st.data())
def test_each_in_place_call_bumps_base_and_all_views_by_one(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
    base = dispatch.tensor(a)
    family = [base]  # base, views (of views), detach()es: all share one counter
    for _ in range(data.draw(st.integers(1, 5), label="n views")):
        parent = data.draw(st.sampled_from(family))
        family.append(_view_step(parent, data))
    outsider = base.clone()
    for v in family:
        assert v._version == 0
    for step in range(1, data.draw(st.integers(1, 6), label="n in-place ops") + 1):
        target = data.draw(st.sampled_from(family))
        _inplace_step(target, data)
        assert [v._version for v in family] == [step] * len(family)
        assert outsider._version == 0
        # a fresh view starts at the current version
        assert base.view(base.shape)._version == step


@given(st.data())
def test_non_mutating_ops_bump_nothing(data: st.DataObject) -> None:
    a = data.draw(float_arrays(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3)))
    base = dispatch.tensor(a)
    base.add_(1)
    family = [base, base.view(base.shape)]
    ops: list[Callable[[dispatch.Tensor], Any]] = [
        lambda t: t + 1,
        lambda t: t * t,
        lambda t: t.exp(),
        lambda t: t.sum(),
        lambda t: t.mean(0),
        lambda t: -t,
        lambda t: t == 1,
        lambda t: t.clone(),
        lambda t: t.contiguous(),
        lambda t: t.to(dispatch.float64),
        lambda t: t.relu(),
        lambda t: t[0],
        lambda t: t.unsqueeze(0),
        lambda t: t.detach(),
        lambda t: t.t() if t.dim() <= 2 else t.transpose(0, 1),
        lambda t: t.unbind(0),
        lambda t: t.reshape(-1),
        lambda t: t.numpy() if not t.requires_grad else None,
        lambda t: t.tolist(),
        lambda t: repr(t),
    ]
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(ops) - 1), label="op index")
        out = ops[i](data.draw(st.sampled_from(family)))
        if isinstance(out, dispatch.Tensor) and out._version_counter is not base._version_counter:
            assert out._version == 0
        assert [t._version for t in family] == [1, 1]


def test_detach_inplace_and_requires_grad_inplace_bump_nothing() -> None:
    x = dispatch.ones(3)
    v = x.view(3)
    r = x.detach_()
    assert r is x
    assert x._version == 0 and v._version == 0
    y = dispatch.ones(3)
    assert y.requires_grad_() is y
    y.requires_grad_(False)
    y.requires_grad = True
    assert y._version == 0


def test_detach_inplace_on_a_view_raises_torch_error() -> None:
    x = dispatch.ones(2, 3)
    v = x[0]
    with pytest.raises(
        RuntimeError, match=r"^Can't detach views in-place\. Use detach\(\) instead\."
    ):
        v.detach_()


# name -> one in-place call on a (2, 3) float tensor `x`; `m` is dispatch or torch
IN_PLACE_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "add_": lambda m, x: x.add_(x),
    "sub_": lambda m, x: x.sub_(1, alpha=2),
    "mul_": lambda m, x: x.mul_(m.tensor([1.0, 2.0, 3.0])),
    "div_": lambda m, x: x.div_(2),
    "zero_": lambda m, x: x.zero_(),
    "fill_": lambda m, x: x.fill_(3),
    "fill_tensor": lambda m, x: x.fill_(m.tensor(3.0)),
    "copy_": lambda m, x: x.copy_(m.zeros(3)),
    "neg_": lambda m, x: x.neg_(),
    "relu_": lambda m, x: x.relu_(),
    "exp_": lambda m, x: x.exp_(),
    "pow_": lambda m, x: x.pow_(2),
    "t_": lambda m, x: x.t_(),
    "transpose_": lambda m, x: x.transpose_(0, 1),
    "unsqueeze_": lambda m, x: x.unsqueeze_(0),
    "squeeze_": lambda m, x: x.squeeze_(),
    "setitem": lambda m, x: x.__setitem__((slice(None), 0), 5.0),
    "setitem_tensor": lambda m, x: x.__setitem__(slice(0, 1), m.ones(3)),
    "iadd": lambda m, x: x.__iadd__(1),
    "isub": lambda m, x: x.__isub__(x),
    "imul": lambda m, x: x.__imul__(2),
    "itruediv": lambda m, x: x.__itruediv__(2),
}


@pytest.mark.parametrize("op", sorted(IN_PLACE_CALLS))
def test_every_in_place_op_bumps_exactly_once(op: str) -> None:
    x = dispatch.ones(2, 3)
    v = x.view(-1)
    IN_PLACE_CALLS[op](dispatch, x)
    assert x._version == 1
    assert v._version == 1


@pytest.mark.oracle
def test_in_place_bump_counts_match_torch() -> None:
    torch = pytest.importorskip("torch")
    counts = {}
    for op, call in IN_PLACE_CALLS.items():
        x = torch.ones(2, 3)
        v = x.view(-1)
        call(torch, x)
        counts[op] = (x._version, v._version)
    assert counts == {op: (1, 1) for op in IN_PLACE_CALLS}


@pytest.mark.parametrize("op", ["add", "mul"])
def test_out_variants_bump_the_out_tensor_once(op: str) -> None:
    a = dispatch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = dispatch.tensor([10.0, 20.0, 30.0])
    out = dispatch.zeros(2, 3)
    out_view = out.view(6)
    overload = getattr(dispatch.ops.aten, op).out
    r = overload(a, b, out=out)
    assert r is out
    assert out._version == 1 and out_view._version == 1
    assert a._version == 0 and b._version == 0
    expected = a.numpy() + b.numpy() if op == "add" else a.numpy() * b.numpy()
    np.testing.assert_array_equal(out.numpy(), expected)
    r = overload(a, b, out=out)
    assert out._version == 2


def test_add_out_with_alpha_and_resize_bumps_once() -> None:
    a = dispatch.ones(2, 3)
    out = dispatch.zeros(0)
    dispatch.ops.aten.add.out(a, a, alpha=2, out=out)
    assert out.shape == (2, 3)
    assert out.tolist() == [[3.0] * 3] * 2
    assert out._version == 1


# ---------------------------------------------------------------------------------------------
# guards (reference (c) "More rules")
# ---------------------------------------------------------------------------------------------
def test_no_grad_still_bumps() -> None:
    x = dispatch.ones(3)
    with modes.no_grad():
        v = x.view(3)
        x.add_(1)
        v.mul_(2)
    assert x._version == 2 and v._version == 2
    assert v._is_view() and v._base is x


def test_inference_mode_bumps_normal_tensors_and_tracks_their_views() -> None:
    x = dispatch.ones(3)
    outer_view = x[1:]
    with modes.inference_mode():
        x.add_(1)
        v = x.view(3)  # a view of a normal tensor made in inference mode is a normal view
        v.mul_(2)
        assert v._version == 2
    assert x._version == 2 and outer_view._version == 2
    assert v._is_view() and v._base is x and not v.is_inference()
    assert x.tolist() == [4.0, 4.0, 4.0]


def test_auto_dispatch_below_autograd_bumps_and_tracks_views() -> None:
    x = dispatch.ones(3)
    with modes.AutoDispatchBelowAutograd():
        v = x.view(3)
        x.add_(1)
    assert x._version == 1 and v._version == 1
    assert v._is_view() and v._base is x


def test_auto_dispatch_below_adinplaceorview_does_not_bump_and_views_are_untracked() -> None:
    x = dispatch.ones(3)
    x.add_(1)
    with modes.AutoDispatchBelowADInplaceOrView():
        x.add_(1)
        x.mul_(2)
        x[0:1] = 7.0
        v = x.view(3)
        v.add_(1)
    assert x._version == 1  # none of the in-place calls under the guard bumped
    assert x.tolist() == [8.0, 7.0, 7.0]  # but the data did change
    assert not v._is_view() and v._base is None
    assert np.shares_memory(v._data, x._data)
    assert v._version == 0  # its own counter
    x.add_(1)
    assert x._version == 2 and v._version == 0  # no shared counter


# ---------------------------------------------------------------------------------------------
# inference tensors
# ---------------------------------------------------------------------------------------------
def test_inference_error_constant_is_the_reference_text() -> None:
    assert INFERENCE_INPLACE_ERROR == INFERENCE_INPLACE_TEXT


def _inference(shape: tuple[int, ...] = (2, 3)) -> dispatch.Tensor:
    with modes.inference_mode():
        return dispatch.ones(*shape)


def test_inference_tensor_has_no_version_counter() -> None:
    i = _inference()
    assert i.is_inference()
    with pytest.raises(RuntimeError) as e:
        _ = i._version
    assert str(e.value) == INFERENCE_VERSION_TEXT
    with modes.inference_mode(), pytest.raises(RuntimeError, match=INFERENCE_VERSION_TEXT):
        _ = i._version
    # clone outside inference mode: a normal tensor with a counter — at 1, as in torch 2.13:
    # no Autograd kernel ran, so clone's internal copy_ went through ADInplaceOrView
    c = i.clone()
    assert not c.is_inference() and c._version == 1
    assert dispatch.ones(2).clone()._version == 0


def test_views_of_inference_tensors_are_not_tracked() -> None:
    i = _inference()
    for v in (i.view(6), i[0], i.t(), i.unbind(0)[1], i.detach()):
        assert v.is_inference()
        assert not v._is_view() and v._base is None
        assert np.shares_memory(v._data, i._data)
        with pytest.raises(RuntimeError, match=INFERENCE_VERSION_TEXT):
            _ = v._version
    with modes.inference_mode():
        w = i.view(6)
    assert not w._is_view() and w.is_inference()


IN_PLACE_ON_INFERENCE: dict[str, Callable[[dispatch.Tensor], Any]] = {
    "add_": lambda i: i.add_(1),
    "add_tensor": lambda i: i.add_(dispatch.ones(3)),
    "sub_": lambda i: i.sub_(1),
    "mul_": lambda i: i.mul_(2),
    "div_": lambda i: i.div_(2),
    "zero_": lambda i: i.zero_(),
    "fill_": lambda i: i.fill_(3),
    "copy_": lambda i: i.copy_(dispatch.zeros(2, 3)),
    "neg_": lambda i: i.neg_(),
    "exp_": lambda i: i.exp_(),
    "relu_": lambda i: i.relu_(),
    "iadd": lambda i: i.__iadd__(1),
    "setitem": lambda i: i.__setitem__(0, 5.0),
    "setitem_slice": lambda i: i.__setitem__(slice(0, 1), 5.0),
    "view_then_inplace": lambda i: i.view(6).add_(1),
    "t_": lambda i: i.t_(),
    "unsqueeze_": lambda i: i.unsqueeze_(0),
    "transpose_": lambda i: i.transpose_(0, 1),
    "mul_out": lambda i: dispatch.ops.aten.mul.out(dispatch.ones(2, 3), dispatch.ones(3), out=i),
}


@pytest.mark.parametrize("op", sorted(IN_PLACE_ON_INFERENCE))
@pytest.mark.parametrize("mode", ["normal", "no_grad"])
def test_in_place_on_inference_tensor_outside_inference_mode_raises_before_mutating(
    op: str, mode: str
) -> None:
    i = _inference()
    before = i.numpy().copy()
    guard = modes.no_grad() if mode == "no_grad" else modes.enable_grad()
    with guard, pytest.raises(RuntimeError) as e:
        IN_PLACE_ON_INFERENCE[op](i)
    assert str(e.value) == INFERENCE_INPLACE_TEXT
    # dispatchsim's documented divergence: it raises *before* touching data or metadata
    assert i.shape == (2, 3)
    assert i.stride() == (3, 1)
    np.testing.assert_array_equal(i.numpy(), before)


@pytest.mark.parametrize("op", sorted(IN_PLACE_ON_INFERENCE))
def test_in_place_on_inference_tensor_inside_inference_mode_is_fine(op: str) -> None:
    i = _inference()
    with modes.inference_mode():
        IN_PLACE_ON_INFERENCE[op](i)
    assert i.is_inference()
    with pytest.raises(RuntimeError, match=INFERENCE_VERSION_TEXT):
        _ = i._version


def test_in_place_on_inference_tensor_inside_inference_mode_changes_data() -> None:
    i = _inference((3,))
    with modes.inference_mode():
        i.add_(1)
        i[:1] = 7.0
        i.view(3).mul_(2)
    assert i.tolist() == [14.0, 4.0, 4.0]


def test_normal_tensor_updated_from_inference_tensor_bumps() -> None:
    x = dispatch.zeros(3)
    i = _inference((3,))
    x.add_(i)
    x.copy_(i)
    assert x._version == 2
    assert x.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("shape", [(3,), (2, 2)])
def test_version_counts_random_sequence_against_a_model(shape: tuple[int, ...]) -> None:
    """A deterministic cross-check of the counting model with mixed modes."""
    x = dispatch.zeros(*shape)
    views = [x.view(-1), x[:1], x.unsqueeze(0)]
    expected = 0
    for mode in ("normal", "no_grad", "inference", "below_adiov", "normal"):
        guard = {
            "normal": modes.enable_grad(),
            "no_grad": modes.no_grad(),
            "inference": modes.inference_mode(),
            "below_adiov": modes.AutoDispatchBelowADInplaceOrView(),
        }[mode]
        with guard:
            for v in views:
                v.add_(1)
        if mode != "below_adiov":
            expected += len(views)
        assert x._version == expected
        assert [v._version for v in views] == [expected] * len(views)
