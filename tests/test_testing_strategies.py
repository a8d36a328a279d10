"""dispatch.testing's strategies and reference models: what each strategy draws, that the
guard model matches the guards, and that the checks built on them can fail."""

from __future__ import annotations

import ast
import itertools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import dispatch
import modes
from dispatch.dispatcher import dispatcher
from dispatch.keys import ALIAS_KEYS, AUTOGRAD_KEYS, RUNTIME_KEYS, DispatchKey
from dispatch.keyset import DispatchKeySet
from dispatch.schema import FunctionSchema, parse_schema
from dispatch.testing import (
    DispatchInvariantError,
    GuardSpec,
    GuardStack,
    GuardStep,
    OpCall,
    Program,
    Registration,
    StepOutcome,
    TLSState,
    check_dispatch_tables,
    check_operator_table,
    check_tensor,
    default_tls,
    dispatch_keys,
    expected_entry,
    guard_stacks,
    guards,
    keysets,
    op_calls,
    programs,
    run_guard_steps,
    schemas,
    tensors,
    tls_states,
)

K = DispatchKey
AUTOGRAD = DispatchKeySet(*AUTOGRAD_KEYS)
ADIOV = DispatchKeySet(K.ADInplaceOrView)
_ns = itertools.count()


class _Found(Exception):
    pass


def reachable(strategy: st.SearchStrategy[Any], pred: Any, n: int = 2000) -> bool:
    """Whether some draw of ``strategy`` among ``n`` satisfies ``pred`` (no shrinking)."""

    @settings(
        max_examples=n,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def search(x: Any) -> None:
        if pred(x):
            raise _Found

    try:
        search()
    except _Found:
        return True
    return False


# -- keys, key sets ----------------------------------------------------------------------------
@given(dispatch_keys(), dispatch_keys(runtime=False, alias=True), keysets(min_size=1))
def test_keys_and_keysets(runtime: DispatchKey, alias: DispatchKey, ks: DispatchKeySet) -> None:
    assert runtime in RUNTIME_KEYS and alias in ALIAS_KEYS
    assert len(list(ks)) >= 1 and all(k.is_runtime for k in ks)


def test_key_strategies_refuse_nonsense() -> None:
    with pytest.raises(InvalidArgument):
        dispatch_keys(runtime=False).example()
    with pytest.raises(InvalidArgument):
        keysets([K.Autograd]).example()


# -- guards and the TLS model -------------------------------------------------------------------
@given(guard_stacks(max_size=8))
def test_guard_sequences_are_properly_nested_and_follow_the_model(steps: list[GuardStep]) -> None:
    depth = 0
    for s in steps:
        depth += 1 if s.action == "enter" else -1
        assert depth >= 0
    assert depth == 0
    start = TLSState.current()
    assert start == TLSState.default()
    stack = run_guard_steps(steps)  # checks the TLS against the model after every step
    assert stack.depth == 0 and TLSState.current() == start


@given(guard_stacks(min_size=1, close=False))
def test_open_guard_sequences_leave_the_modelled_state(steps: list[GuardStep]) -> None:
    stack = run_guard_steps(steps)
    try:
        assert stack.depth >= 1
        assert TLSState.current() == stack.model
    finally:
        stack.close()
    assert TLSState.current() == TLSState.default()


@given(tls_states())
def test_reachable_states_keep_the_key_invariants(s: TLSState) -> None:
    assert not s.included.has_any(AUTOGRAD)  # autograd keys are never included
    if s.inference_mode:
        assert AUTOGRAD.raw & ~s.excluded.raw == 0  # inference mode excludes autograd keys


@given(guards())
def test_each_guard_does_what_the_model_says(g: GuardSpec) -> None:
    with g.build():
        assert TLSState.current() == g.apply(TLSState.default())
    assert TLSState.current() == TLSState.default()
    assert g.excludes_adinplaceorview == (K.ADInplaceOrView in g.apply(TLSState.default()).excluded)


def test_guards_without_adinplaceorview_exclusion() -> None:
    assert reachable(guards(), lambda g: g.excludes_adinplaceorview)
    assert not reachable(
        guards(exclude_adinplaceorview=False), lambda g: g.excludes_adinplaceorview, 300
    )


def test_the_tls_check_can_fail() -> None:
    with GuardStack() as stack:
        stack.enter(GuardSpec("no_grad"))
        stack.models[-1] = stack.model._replace(grad_mode=True)  # a wrong model
        with pytest.raises(DispatchInvariantError, match=r"^\[tls-model\] inside \[no_grad\]"):
            stack.check()
    assert TLSState.current() == TLSState.default()


def test_guard_spec_validates_and_prints() -> None:
    with pytest.raises(ValueError, match="unknown guard"):
        GuardSpec("no_such_guard")
    g = GuardSpec("ExcludeDispatchKeyGuard", ("AutogradCPU", "Python"))
    assert repr(g) == "ExcludeDispatchKeyGuard(['AutogradCPU', 'Python'])"
    assert g.code() == (
        "modes.ExcludeDispatchKeyGuard(DispatchKeySet([DispatchKey.AutogradCPU, "
        "DispatchKey.Python]))"
    )
    assert GuardSpec("inference_mode", False).code() == "modes.inference_mode(False)"


def test_default_tls_runs_its_body_at_the_defaults() -> None:
    with modes.inference_mode(), modes.AutoDispatchBelowADInplaceOrView():
        inside = TLSState.current()
        with default_tls():
            assert TLSState.current() == TLSState.default()
            assert not dispatch.ones(1).is_inference()
        assert TLSState.current() == inside


# -- tensors -------------------------------------------------------------------------------------
@given(
    st.data(),
    st.sampled_from([None, "leaf", "non_leaf", "view"]),
    st.sampled_from([None, True, False]),
    st.sampled_from([None, True, False]),
)
def test_tensors_have_the_requested_properties(
    data: st.DataObject, kind: str | None, rg: bool | None, inference: bool | None
) -> None:
    if kind == "non_leaf" and (inference or rg is False):
        with pytest.raises(InvalidArgument):
            data.draw(tensors(kind=kind, requires_grad=rg, inference=inference))
        return
    shape = data.draw(st.sampled_from([None, (), (2, 3), (1, 4, 2)]))
    t = data.draw(tensors(kind=kind, shape=shape, requires_grad=rg, inference=inference))
    check_tensor(t)
    if shape is not None:
        assert tuple(t.shape) == shape
    if inference is not None:
        assert t.is_inference() == inference
    if rg is not None and kind != "non_leaf":
        assert t.requires_grad == rg
    if kind == "leaf":
        assert t.grad_fn is None and not t._is_view()
    elif kind == "non_leaf":
        assert t.grad_fn is not None and t.requires_grad
    elif kind == "view":
        # a view of an inference tensor shares memory but is not tracked as a view
        assert t._is_view() == (not t.is_inference())
        if t._is_view():
            assert np.shares_memory(t._data, t._base._data)
    if t.requires_grad:
        assert t.dtype.is_floating_point


def test_tensors_are_made_at_the_default_state_whatever_is_open() -> None:
    @settings(max_examples=10)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with modes.inference_mode():
            t = data.draw(tensors(inference=False, requires_grad=True))
            assert not t.is_inference() and t.requires_grad

    check()


def test_tensors_refuses_impossible_requests() -> None:
    with pytest.raises(InvalidArgument, match="cannot require grad"):
        tensors(dtype=dispatch.int64, requires_grad=True)
    with pytest.raises(InvalidArgument, match="never a non-leaf"):
        tensors(kind="non_leaf", inference=True)
    with pytest.raises(InvalidArgument, match="expected one of"):
        tensors(kind="leafy")


def test_every_tensor_kind_is_drawn() -> None:
    for pred in (
        lambda t: t._is_view() and t.requires_grad,
        lambda t: t.is_inference() and t.requires_grad,
        lambda t: t.grad_fn is not None,
        lambda t: t.dtype is dispatch.bool_ and t.dim() == 3,
    ):
        assert reachable(tensors(), pred)


# -- schemas ------------------------------------------------------------------------------------
@settings(max_examples=200)
@given(schemas())
def test_schemas_round_trip_and_their_aliases_refer_to_arguments(s: FunctionSchema) -> None:
    assert parse_schema(str(s)) == s
    arg_sets = [a.alias_info.before_set for a in s.arguments if a.alias_info is not None]
    assert len(arg_sets) == len(set(arg_sets))  # one argument per alias set
    for r in s.returns:
        if r.alias_info is not None:
            (arg,) = [a for a in s.arguments if a.alias_info == r.alias_info]
            assert arg.base_type == "Tensor" and not arg.is_list


@pytest.mark.parametrize(
    "pred",
    [
        lambda s: any(r.alias_info and r.alias_info.is_write for r in s.returns),
        lambda s: any(r.alias_info and not r.alias_info.is_write for r in s.returns),
        lambda s: any(a.is_list and a.is_mutable for a in s.arguments),
        lambda s: any(a.kwarg_only and a.has_default for a in s.arguments),
        lambda s: any(not a.kwarg_only and a.has_default for a in s.arguments),
        lambda s: s.overload_name != "" and len(s.returns) > 1,
    ],
    ids=["returns-mutable", "returns-view", "mutable-list", "kw-default", "pos-default", "tuple"],
)
def test_schemas_draw_every_feature(pred: Any) -> None:
    assert reachable(schemas(), pred)


# -- operator calls -----------------------------------------------------------------------------
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(schemas(namespace=None), st.data())
def test_op_calls_bind_to_any_schema(schema: FunctionSchema, data: st.DataObject) -> None:
    ns = f"opcalls{next(_ns)}"
    with dispatch.Library(ns, "DEF") as lib:
        name = lib.define(str(schema))
        overload = schema.overload_name or "default"
        op = getattr(getattr(getattr(dispatch.ops, ns), name), overload)
        call = data.draw(op_calls(op))
        assert isinstance(call, OpCall) and call.op is op
        bound = op.entry.binder.bind(call.args, dict(call.kwargs))  # raises if ill-typed
        tensors_ = [v for v in bound if isinstance(v, dispatch.Tensor)]
        assert len({tuple(t.shape) for t in tensors_}) <= 1  # one shape per call
        for a, v in zip(schema.arguments, bound):
            if a.is_mutable and isinstance(v, dispatch.Tensor):
                assert not v.requires_grad
        assert repr(call).startswith(f"{ns}.{name}.{overload}(")


@settings(max_examples=30)
@given(op_calls(dispatch.ops.aten.add.Tensor))
def test_op_calls_of_an_elementwise_op_run(call: OpCall) -> None:
    out = call()
    assert tuple(out.shape) == tuple(call.args[0].shape)


def test_op_calls_take_a_tensor_strategy() -> None:
    x = dispatch.ones(2, requires_grad=True)
    call = find(
        op_calls("aten::mul.Tensor", tensors=st.just(x)),
        lambda c: True,
        settings=settings(database=None),
    )
    assert call.args[0] is x and call.args[1] is x


# -- programs -----------------------------------------------------------------------------------
@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_programs_run_and_every_tensor_keeps_the_invariants(program: Program) -> None:
    ast.parse(program.code())  # the program prints as Python
    model: list[TLSState] = [TLSState.default()]

    def on_step(outcome: StepOutcome, pool: list[dispatch.Tensor | None]) -> None:
        if outcome.step.kind == "enter":
            assert outcome.step.guard is not None
            model.append(outcome.step.guard.apply(model[-1]))
        elif outcome.step.kind == "exit":
            model.pop()
        assert TLSState.current() == model[-1]
        for t in pool:
            if t is not None:
                check_tensor(t)

    result = program.run(on_step)
    assert TLSState.current() == TLSState.default()
    assert len(result.outcomes) == len(program.steps)
    made = [s for s in program.steps if s.output is not None]
    assert len(result.tensors) == len(made)
    for outcome in result.outcomes:
        assert not isinstance(outcome.error, AssertionError)


def test_programs_draw_failures_guards_and_backward() -> None:
    def runs(p: Program) -> list[StepOutcome]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return p.run().outcomes

    assert reachable(programs(), lambda p: any(o.error for o in runs(p)), 200)
    assert reachable(
        programs(), lambda p: any(o.step.kind == "backward" and o.ok for o in runs(p)), 200
    )
    assert reachable(programs(), lambda p: sum(s.kind == "enter" for s in p.steps) >= 3, 200)


def test_a_program_prints_as_nested_code() -> None:
    from dispatch.testing import Step

    p = Program(
        (
            Step("create", "ones", args=((2,), "float32", True), output=0),
            Step("enter", guard=GuardSpec("no_grad")),
            Step("functional", "mul", (0,), (2.0,), output=1),
            Step("exit"),
            Step("inplace", "add_", (1, 0)),
        )
    )
    assert p.code() == (
        "t0 = dispatch.ones(2, dtype=dispatch.float32, requires_grad=True)\n"
        "with modes.no_grad():\n"
        "    t1 = t0.mul(2.0)\n"
        "t1.add_(t0)"
    )
    run = p.run()
    assert [o.ok for o in run.outcomes] == [True] * 5
    t1 = run.tensors[1]
    assert t1 is not None and t1.tolist() == [3.0, 3.0]
    assert t1.grad_fn.name() == "AddBackward0"  # made under no_grad, then added to t0


# -- dispatch tables ----------------------------------------------------------------------------
def test_every_live_table_is_canonical() -> None:
    check_dispatch_tables()


def test_the_table_check_can_fail() -> None:
    ns = f"tables{next(_ns)}"
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        fn = lambda x: x  # noqa: E731
        lib.impl("f", fn, "CPU")
        entry = dispatcher.find_schema(f"{ns}::f")
        regs = [Registration(K.CPU, fn)]
        check_operator_table(entry, regs)
        prov, src, winner = expected_entry(K.CPU, regs)
        assert (prov, src, winner) == ("kernel", K.CPU, regs[0])
        # a model that says the kernel went to Meta disagrees with the live table
        with pytest.raises(DispatchInvariantError, match=r"entry CPU is kernel from CPU"):
            check_operator_table(entry, [Registration(K.Meta, fn)])
        # a stale table (changed behind the dispatcher's back)
        entry.kernels.pop(K.CPU)
        with pytest.raises(DispatchInvariantError, match="differs from one recomputed"):
            check_operator_table(entry)
        entry.kernels[K.CPU] = [entry.table[K.CPU.value].kernel]  # put it back for close()


def test_check_tensor_can_fail() -> None:
    t = dispatch.ones(2)
    check_tensor(t)
    t._keys &= ~K.AutogradCPU.bit
    with pytest.raises(DispatchInvariantError, match="half of the autograd-related keys"):
        check_tensor(t)
    u = dispatch.ones(2)
    u._version_counter = None
    with pytest.raises(DispatchInvariantError, match="a normal tensor lacks a version counter"):
        check_tensor(u)
