"""dispatch.testing.DispatchStateMachine: it passes on dispatchsim and on correct user
operators, and each of its invariants catches a bug planted for it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import dispatch
import modes
from dispatch.dispatcher import Dispatcher
from dispatch.keys import AUTOGRAD_KEYS, DispatchKey
from dispatch.operator import OperatorEntry, TableEntry
from dispatch.testing import DispatchInvariantError, DispatchStateMachine
from dispatch.tls import state as tls

K = DispatchKey
_ns = itertools.count()

# Finding a planted bug: generation only (no shrinking), derandomized so a run repeats.
FIND = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    phases=(Phase.generate,),
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)
# A correct program must survive this many examples.
PASS = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@contextlib.contextmanager
def user_op(schema: str, **kernels: Any) -> Iterator[dispatch.OpOverload]:
    """Define ``schema`` in a fresh namespace with ``kernels`` (key -> fn; an ``Autograd``
    kernel is registered with_keyset)."""
    ns = f"dsmtest{next(_ns)}"
    with dispatch.Library(ns, "DEF") as lib:
        name = lib.define(schema)
        op = getattr(getattr(dispatch.ops, ns), name).default
        for key, fn in kernels.items():
            lib.impl(name, fn(op) if key == "Autograd" else fn, key, with_keyset=key == "Autograd")
        yield op


def passthrough(op: dispatch.OpOverload) -> Callable[..., Any]:
    """An Autograd kernel that only redispatches below autograd."""
    return lambda ks, *args: op.redispatch(ks & dispatch.after_autograd_keyset, *args)


def straight_through(op: dispatch.OpOverload) -> Callable[..., Any]:
    """The Autograd kernel of scale: the CPU value forward, s * grad backward."""

    def kernel(ks: Any, x: Any, s: float) -> Any:
        y = op.redispatch(ks & dispatch.after_autograd_keyset, x, s)
        return y.detach() + (x - x.detach()) * s

    return kernel


def run(machine: type[DispatchStateMachine], s: settings) -> None:
    run_state_machine_as_test(machine, settings=s)


def expect(rule: str, machine: type[DispatchStateMachine], match: str = "") -> str:
    with pytest.raises(DispatchInvariantError) as info:
        run(machine, FIND)
    assert info.value.rule == rule, str(info.value)
    text = str(info.value)
    assert text.startswith(f"[{rule}] ")
    if match:
        assert match in text, text
    return text


# -- it passes -------------------------------------------------------------------------------
def test_machine_passes_on_dispatchsim() -> None:
    run(DispatchStateMachine, PASS)


def test_machine_passes_on_correct_user_ops() -> None:
    def inc_(x: Any, s: float) -> Any:
        x._data[...] = x._data + s
        return x

    with (
        user_op(
            "scale(Tensor x, float s) -> Tensor",
            CPU=lambda x, s: x.detach() * s,
            Autograd=straight_through,
        ) as scale,
        user_op("inc_(Tensor(a!) x, float s) -> Tensor(a!)", CPU=inc_, Autograd=passthrough) as inc,
        user_op("myview(Tensor(a) x) -> Tensor(a)", CPU=dispatch.ops.aten.alias) as view,
    ):
        run(DispatchStateMachine.for_ops(scale, inc, view), PASS)


def test_for_ops_takes_overloads_packets_and_names() -> None:
    with user_op("f(Tensor x) -> Tensor", CPU=lambda x: x.detach() + 1) as op:
        ns = op.name().split("::")[0]
        packet = getattr(dispatch.ops, ns).f
        m = DispatchStateMachine.for_ops(op, packet, f"{ns}::f")
        assert issubclass(m, DispatchStateMachine)
        assert m.ops == (op, packet, f"{ns}::f")
        assert m.__name__ == f"DispatchStateMachine_{ns}_f_default" + f"_{ns}_f_default" * 2
        assert DispatchStateMachine.for_ops(op, name="Mine").__name__ == "Mine"
        with pytest.raises(RuntimeError, match="does not exist"):
            DispatchStateMachine.for_ops(f"{ns}::nope")


# -- each invariant catches its planted bug --------------------------------------------------
def test_finds_a_kernel_that_mutates_an_input_its_schema_does_not_mark() -> None:
    def cpu(x: Any, s: float) -> Any:
        a = x.detach().numpy()
        a *= s  # the bug: writes into x
        return dispatch.tensor(a)

    with user_op("scale(Tensor x, float s) -> Tensor", CPU=cpu, Autograd=straight_through) as op:
        text = expect("schema-mutation", DispatchStateMachine.for_ops(op))
        assert "Argument x is not defined as mutable but was mutated" in text


def test_finds_a_version_bumped_twice() -> None:
    def cpu(x: Any) -> Any:
        x._data[...] = x._data == 0
        return x

    def autograd(op: dispatch.OpOverload) -> Callable[..., Any]:
        def kernel(ks: Any, x: Any) -> Any:
            x.add_(0)  # the bug: a second, dispatched in-place call on the argument
            return op.redispatch(ks & dispatch.after_autograd_keyset, x)

        return kernel

    with user_op("flip_(Tensor(a!) x) -> Tensor(a!)", CPU=cpu, Autograd=autograd) as op:
        expect("version-count", DispatchStateMachine.for_ops(op), "(argument x of the last call)")


def test_finds_a_grad_fn_recorded_with_grad_mode_off() -> None:
    def cpu(x: Any) -> Any:
        with modes.enable_grad():  # the bug: the kernel turns grad mode back on
            return x * 2

    with user_op("double(Tensor x) -> Tensor", CPU=cpu) as op:
        expect("no-grad-fn-without-grad-mode", DispatchStateMachine.for_ops(op), "has grad_fn")


def test_finds_a_failed_call_that_changed_its_input() -> None:
    def cpu(x: Any) -> Any:
        x._data[...] = x._data == 0  # the bug: writes, then fails
        raise RuntimeError("boom")

    with user_op("fails_(Tensor(a!) x) -> Tensor(a!)", CPU=cpu) as op:
        expect("failed-call", DispatchStateMachine.for_ops(op), "raised RuntimeError: boom")


def test_finds_a_kernel_that_leaves_a_guard_open() -> None:
    def cpu(x: Any) -> Any:
        modes.no_grad().__enter__()  # the bug: never exited
        return x.detach().clone()

    saved = (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.fw_grad_mode)
    try:
        with user_op("sticky(Tensor x) -> Tensor", CPU=cpu) as op:
            text = expect("tls-model", DispatchStateMachine.for_ops(op))
            assert "grad_mode=False" in text  # the state the leaked guard left
    finally:
        tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.fw_grad_mode = saved


def test_finds_a_tensor_with_half_of_the_autograd_keys() -> None:
    def cpu(x: Any) -> Any:
        out = x.detach().clone()
        out._keys &= ~K.AutogradCPU.bit  # the bug: keeps ADInplaceOrView only
        return out

    with user_op("strip(Tensor x) -> Tensor", CPU=cpu) as op:
        expect("inference-keys", DispatchStateMachine.for_ops(op))


def test_finds_a_table_left_stale_by_a_deregistration(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Dispatcher.register_kernel

    def register_kernel(self: Dispatcher, name: str, key: DispatchKey, kernel: Any) -> Any:
        undo = original(self, name, key, kernel)
        if not name.startswith("dsm"):
            return undo
        entry = self.operators[name]

        def stale_undo() -> None:
            entry.remove_kernel(key, kernel)  # the bug: the table is not recomputed

        return stale_undo

    monkeypatch.setattr(Dispatcher, "register_kernel", register_kernel)
    text = expect("dispatch-table", DispatchStateMachine)
    assert "differs from one recomputed from scratch" in text


def test_finds_a_wrong_precedence_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A table computation that gives CompositeImplicitAutograd to an autograd key even when
    the backend has a kernel: live and recomputed tables agree, the precedence model not."""
    original = OperatorEntry.compute_entry

    def compute_entry(self: OperatorEntry, key: DispatchKey, fallbacks: Any) -> TableEntry:
        cia = self.kernel_for(K.CompositeImplicitAutograd)
        wrong = self.name.startswith("dsm") and key in AUTOGRAD_KEYS and cia is not None
        if wrong and not self.has_kernel_for(key):
            return TableEntry(key, cia, "math kernel", K.CompositeImplicitAutograd)
        return original(self, key, fallbacks)

    monkeypatch.setattr(OperatorEntry, "compute_entry", compute_entry)
    text = expect("dispatch-table", DispatchStateMachine)
    assert "the precedence rules give" in text


def test_machine_leaves_no_registration_behind() -> None:
    from dispatch.dispatcher import dispatcher

    before = set(dispatcher.operators)
    run(DispatchStateMachine, settings(PASS, max_examples=5))
    assert {n for n in dispatcher.operators if n.startswith("dsm")} <= before
    assert np.all([not n.startswith("dsm") for n in set(dispatcher.operators) - before])
