"""``DispatchStateMachine``: a hypothesis ``RuleBasedStateMachine`` that drives the
dispatcher with random registrations, guards, tensors, operator calls and backward
passes, and checks dispatchsim's invariants after every step."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import dispatch
from dispatch.dispatcher import OpOverload, OpOverloadPacket
from dispatch.keys import DispatchKey
from dispatch.keyset import DispatchKeySet
from dispatch.library import Library
from dispatch.operator import fallthrough_kernel
from dispatch.schema import Argument
from dispatch.tensorimpl import Tensor, VersionCounter
from dispatch.testing._model import (
    DispatchInvariantError,
    GuardSpec,
    GuardStack,
    Registration,
    TLSState,
    check_operator_table,
    check_tensor,
)
from dispatch.testing._strategies import (
    OpCall,
    _array,
    guards,
    op_calls,
    resolve_op,
)
from dispatch.tls import per_thread as _per_thread

__all__ = ["DispatchStateMachine"]

K = DispatchKey
_ADIOV = K.ADInplaceOrView
_ns_counter = itertools.count()

_SHAPES: tuple[tuple[int, ...], ...] = ((), (3,), (2, 3))
_CREATE_DTYPES = ("float32", "float64", "float32", "float64", "int64", "bool_")
_BUILTIN_OPS = (
    "aten::add.Tensor",
    "aten::mul.Tensor",
    "aten::sin",
    "aten::clone",
    "aten::add_.Tensor",
    "aten::mul_.Tensor",
    "aten::zero_",
    "aten::copy_",
    "aten::view",
    "aten::t",
    "aten::select.int",
    "aten::transpose_",
    "aten::detach",
)
# The scratch operators the machine registers kernels for; key -> kernel maker.
_SCRATCH_SCHEMAS = {
    "fn": "fn(Tensor x) -> Tensor",
    "inplace_": "inplace_(Tensor(a!) x) -> Tensor(a!)",
    "alias": "alias(Tensor(a) x) -> Tensor(a)",
}
_KERNEL_KEYS = ("CPU", "Meta", "CompositeExplicitAutograd", "Autograd", "AutogradCPU")
_CIA = "CompositeImplicitAutograd"
_FALLTHROUGH_ONLY_KEYS = ("AutogradOther", "AutogradMeta")


def _snapshot(t: Tensor) -> tuple[Any, ...]:
    """What a failed call must leave unchanged, and what a mutation changes."""
    try:
        version: int | None = t._version
    except RuntimeError:
        version = None
    return (
        np.array(t._data, copy=True),
        t._data.shape,
        t._data.strides,
        version,
        _grad_fn_or_error(t),
        t._requires_grad,
    )


def _grad_fn_or_error(t: Tensor) -> Any:
    """``t.grad_fn`` (which regenerates a view's grad_fn after an in-place change of its
    base, as torch's does), or the text of the error reading it raises."""
    try:
        return t.grad_fn
    except RuntimeError as e:
        return f"raises: {e}"


def _same_data(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


@attrs.define
class _Journal:
    """Facts about the last step, for the invariants that need them."""

    kind: str
    description: str
    grad_mode: bool = True
    inputs: list[Tensor] = attrs.field(factory=list)
    outputs: list[Tensor] = attrs.field(factory=list)
    grad_fns_before: dict[int, Any] = attrs.field(factory=dict)
    arg_names: dict[int, str] = attrs.field(factory=dict)  # id(version counter) -> argument
    problems: list[DispatchInvariantError] = attrs.field(factory=list)


class _TestCaseProperty:
    """``Machine.TestCase``: hypothesis's test case for the machine, whose settings (taken
    from the profile loaded when it is first made) skip the explain phase — on Python
    3.11 it traces every line of every re-run and makes a failing machine take minutes
    to report. Assign ``Machine.TestCase.settings`` to change them."""

    def __get__(self, obj: Any, typ: type[RuleBasedStateMachine] | None = None) -> Any:
        cls = type(obj) if obj is not None else typ
        assert cls is not None
        tc = RuleBasedStateMachine.__dict__["TestCase"].__get__(None, cls)
        if not tc.__dict__.get("_dispatchsim_tuned", False):
            current: settings = tc.settings
            tc.settings = settings(
                current, phases=[p for p in current.phases if p is not Phase.explain]
            )
            tc._dispatchsim_tuned = True
        return tc


class DispatchStateMachine(RuleBasedStateMachine):
    """Random registrations, guards, tensors, operator calls and backward passes, with
    dispatchsim's invariants checked after every step.

    Add your operators with one call — ``TestMyOps = DispatchStateMachine.for_ops(op).TestCase``
    — or subclass and set :attr:`ops` (``OpOverload`` objects or ``"ns::op.overload"``
    names). Rules:

    * ``register_kernel`` / ``deregister_kernel``: one ``Library`` per registration, to
      a scratch operator (functional, in-place ``Tensor(a!)``, view ``Tensor(a)``) at a
      drawn key, a real kernel or ``fallthrough_kernel``; any open library may be closed;
    * ``enter_guard`` / ``exit_guard``: every guard of :mod:`modes`, properly nested;
    * ``create_tensor``: a tensor made under the guards open now;
    * ``call_op``: one of :attr:`ops`, a scratch operator or a standard one, with
      arguments from the tensor pool (:meth:`call_strategy`);
    * ``backward``, ``set_requires_grad``.

    Invariants, after every step:

    * ``dispatch-table``: every touched operator's live table equals one recomputed from
      scratch; for the scratch operators also the precedence model of the registrations;
    * ``tls-model``: the thread-local state equals the guard model of the open guards;
    * ``version-count``: every tensor's ``_version`` is its counter's value when the
      machine first saw it plus one per call that reached ADInplaceOrView with the tensor
      (or a tensor sharing its counter) as a ``Tensor(a!)`` argument;
    * ``schema-mutation``: a successful call changed no tensor's data, shape or strides
      except through memory shared with a ``Tensor(a!)`` argument;
    * ``failed-call``: a call that raised left every tensor's data, version, grad_fn and
      requires_grad as they were;
    * ``inference-keys``: :func:`check_tensor` for every tensor (inference tensors carry
      no autograd keys; ``_version`` raises iff inference);
    * ``no-grad-fn-without-grad-mode``: while grad mode is off no call records a grad_fn
      (outputs have none; no non-view tensor's grad_fn changes).
    """

    TestCase = _TestCaseProperty()

    ops: ClassVar[Sequence[OpOverload | OpOverloadPacket | str]] = ()
    """Your operators: called by ``call_op`` next to the scratch and standard ones."""

    builtin_ops: ClassVar[Sequence[str]] = _BUILTIN_OPS
    """Standard operators mixed into ``call_op``."""

    max_tensors: ClassVar[int] = 10
    max_guard_depth: ClassVar[int] = 4
    shapes: ClassVar[Sequence[tuple[int, ...]]] = _SHAPES
    """Shapes of the tensors ``create_tensor`` makes."""

    @classmethod
    def for_ops(
        cls, *ops: OpOverload | OpOverloadPacket | str, name: str | None = None
    ) -> type[DispatchStateMachine]:
        """A subclass whose :attr:`ops` are ``ops``; its ``.TestCase`` is a test."""
        for op in ops:
            resolve_op(op)  # fail now on a name that does not exist
        label = name or "DispatchStateMachine_" + "_".join(
            str(resolve_op(o)).replace(".", "_") for o in ops
        )
        return type(label, (cls,), {"ops": tuple(ops), "__module__": cls.__module__})

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"dsm{next(_ns_counter)}"
        self.guard_stack = GuardStack(start=TLSState.current())
        self._start_tls = TLSState.current()
        s = _per_thread.state
        self._start_raw = (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode)
        self.pool: list[tuple[str, Tensor]] = []
        self._names = itertools.count()
        # id(counter) -> (counter, expected version); the counter is kept so ids stay unique
        self.counters: dict[int, tuple[VersionCounter, int]] = {}
        self.libraries: list[tuple[Library, str, Registration]] = []
        self.registrations: dict[str, list[Registration]] = {n: [] for n in _SCRATCH_SCHEMAS}
        self.journal: _Journal | None = None
        # id(entry) -> the inputs of its last passing table check (entries live as long)
        self._table_memo: dict[int, tuple[Any, ...]] = {}
        self._def = Library(self.ns, "DEF")
        for schema in _SCRATCH_SCHEMAS.values():
            self._def.define(schema)
        self.scratch_ops = {n: resolve_op(f"{self.ns}::{n}") for n in _SCRATCH_SCHEMAS}
        self.user_ops = [resolve_op(o) for o in type(self).ops]
        self.std_ops = [resolve_op(n) for n in type(self).builtin_ops]
        # the machine registers nothing for these: their tables are checked at both ends
        for op in self.std_ops:
            check_operator_table(op.entry)

    # -- helpers --------------------------------------------------------------------------
    def _add(self, t: Tensor) -> str:
        """Add ``t`` to the pool (dropping the oldest when full); baseline its counter."""
        for name, u in self.pool:
            if u is t:
                return name
        vc = t._version_counter
        if vc is not None and id(vc) not in self.counters:
            self.counters[id(vc)] = (vc, vc.version)
        name = f"t{next(self._names)}"
        if len(self.pool) >= self.max_tensors:
            self.pool.pop(0)
        self.pool.append((name, t))
        return name

    def _name_of(self, t: Tensor) -> str:
        for name, u in self.pool:
            if u is t:
                return name
        return "a tensor"

    def call_strategy(self, op: OpOverload) -> st.SearchStrategy[OpCall]:
        """The calls ``call_op`` makes of ``op``: by default :func:`op_calls` with every
        tensor argument drawn from the pool. Override to give an operator other arguments."""
        tensors = [t for _, t in self.pool]

        def pick(arg: Argument) -> st.SearchStrategy[Tensor]:
            return st.sampled_from(tensors)

        return op_calls(op, tensors=pick)

    def _all_ops(self) -> list[OpOverload]:
        return [*self.user_ops, *self.scratch_ops.values(), *self.std_ops]

    # -- rules: registrations -------------------------------------------------------------
    def _kernel(self, op_name: str, key: str) -> Callable[..., Any]:
        op = self.scratch_ops[op_name]
        if key in ("Autograd", "AutogradCPU"):

            def autograd_kernel(ks: DispatchKeySet, x: Tensor) -> Any:
                return op.redispatch(ks & dispatch.after_autograd_keyset, x)

            return autograd_kernel
        if key == _CIA:
            if op_name == "fn":
                return lambda x: x + 1
            return lambda x: dispatch.ops.aten.alias(x)
        if op_name == "fn":
            return lambda x: dispatch.tensor(np.asarray(x._data) + 1)
        if op_name == "alias":
            return lambda x: dispatch.ops.aten.alias(x)

        def write(x: Tensor) -> Tensor:
            x._data[...] = x._data == 0
            return x

        return write

    @precondition(lambda self: len(self.libraries) < 12)
    @rule(data=st.data())
    def register_kernel(self, data: st.DataObject) -> None:
        op_name = data.draw(st.sampled_from(sorted(_SCRATCH_SCHEMAS)), label="operator")
        keys = list(_KERNEL_KEYS)
        if op_name != "inplace_":
            keys.append(_CIA)  # a composite in-place kernel would bypass the version bump
        fallthrough = data.draw(st.booleans(), label="fallthrough")
        if fallthrough:
            keys += _FALLTHROUGH_ONLY_KEYS
        key = data.draw(st.sampled_from(keys), label="key")
        func = fallthrough_kernel if fallthrough else self._kernel(op_name, key)
        lib = Library(self.ns, "FRAGMENT")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lib.impl(op_name, func, key, with_keyset=key in ("Autograd", "AutogradCPU"))
        reg = Registration(DispatchKey.parse(key), func, fallthrough)
        self.libraries.append((lib, op_name, reg))
        self.registrations[op_name].append(reg)
        self.journal = _Journal("register", f"{op_name} at {key}")

    @precondition(lambda self: bool(self.libraries))
    @rule(data=st.data())
    def deregister_kernel(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.libraries) - 1), label="library")
        lib, op_name, reg = self.libraries.pop(i)
        lib.close()
        self.registrations[op_name].remove(reg)
        self.journal = _Journal("deregister", f"{op_name} at {reg.key.name}")

    # -- rules: guards --------------------------------------------------------------------
    @precondition(lambda self: self.guard_stack.depth < self.max_guard_depth)
    @rule(guard=guards())
    def enter_guard(self, guard: GuardSpec) -> None:
        self.guard_stack.enter(guard)
        self.journal = _Journal("enter", repr(guard))

    @precondition(lambda self: self.guard_stack.depth > 0)
    @rule()
    def exit_guard(self) -> None:
        self.guard_stack.exit()
        self.journal = _Journal("exit", "")

    # -- rules: tensors -------------------------------------------------------------------
    @rule(data=st.data())
    def create_tensor(self, data: st.DataObject) -> None:
        shape = data.draw(st.sampled_from(list(self.shapes)), label="shape")
        d = getattr(dispatch, data.draw(st.sampled_from(_CREATE_DTYPES), label="dtype"))
        arr = _array(data.draw, d, shape)
        rg = d.is_floating_point and data.draw(st.booleans(), label="requires_grad")
        t = dispatch.tensor(arr, dtype=d, requires_grad=rg)
        self._add(t)
        self.journal = _Journal("create", repr(t))

    @precondition(lambda self: bool(self.pool))
    @rule(data=st.data())
    def set_requires_grad(self, data: st.DataObject) -> None:
        name, t = data.draw(st.sampled_from(self.pool), label="tensor")
        flag = data.draw(st.booleans(), label="requires_grad")
        self.journal = self._guarded_step("requires_grad_", f"{name}.requires_grad_({flag})", [t])
        try:
            t.requires_grad_(flag)
        except RuntimeError:
            pass

    @precondition(lambda self: any(t.requires_grad for _, t in self.pool))
    @rule(data=st.data())
    def backward(self, data: st.DataObject) -> None:
        cands = [(n, t) for n, t in self.pool if t.requires_grad]
        name, t = data.draw(st.sampled_from(cands), label="tensor")
        retain = data.draw(st.booleans(), label="retain_graph")
        self.journal = self._guarded_step(
            "backward", f"{name}.sum().backward(retain_graph={retain})", [t]
        )
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                t.sum().backward(retain_graph=retain)
            except RuntimeError:
                pass

    def _guarded_step(self, kind: str, description: str, inputs: list[Tensor]) -> _Journal:
        return _Journal(
            kind,
            description,
            grad_mode=self.guard_stack.model.grad_mode,
            inputs=inputs,
            grad_fns_before={id(t): t._grad_fn for _, t in self.pool},
        )

    # -- rules: operator calls ------------------------------------------------------------
    @precondition(lambda self: bool(self.pool))
    @rule(data=st.data())
    def call_op(self, data: st.DataObject) -> None:
        ops = [*self.scratch_ops.values(), *self.std_ops]
        use_yours: bool = bool(self.user_ops) and data.draw(st.booleans(), label="one of ops")
        if use_yours:
            ops = self.user_ops
        op = data.draw(st.sampled_from(ops), label="operator")
        self._run_call(data.draw(self.call_strategy(op), label="call"))

    @precondition(lambda self: bool(self.pool) and bool(self.user_ops))
    @rule(data=st.data())
    def call_user_op(self, data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(self.user_ops), label="operator")
        self._run_call(data.draw(self.call_strategy(op), label="call"))

    def _run_call(self, call: OpCall) -> None:
        op = call.op
        entry = op.entry
        schema = op._schema
        binder = entry.binder
        assert binder is not None
        try:
            bound = binder.bind(call.args, dict(call.kwargs))
        except TypeError:
            self.journal = _Journal("call", f"{call!r} (arguments do not bind)")
            return
        # which pool tensors each schema argument holds
        arg_tensors: list[tuple[Argument, Tensor]] = []
        for a, v in zip(schema.arguments, bound):
            for t in v if isinstance(v, list | tuple) else [v]:
                if isinstance(t, Tensor):
                    arg_tensors.append((a, t))
        mutable = [t for a, t in arg_tensors if a.is_mutable]
        description = repr(call)  # reads grad_fn: before the snapshot
        before = {id(t): _snapshot(t) for _, t in self.pool}
        model = self.guard_stack.model
        journal = self._guarded_step("call", description, [t for _, t in arg_tensors])
        for a, t in arg_tensors:
            if t._version_counter is not None:
                journal.arg_names.setdefault(id(t._version_counter), a.name)
        self.journal = journal
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                out = call()
            except AssertionError:
                raise
            except Exception as e:
                self._after_failure(call, e, before, journal)
                return
        outputs = [
            o for o in (out if isinstance(out, list | tuple) else [out]) if isinstance(o, Tensor)
        ]
        journal.outputs = outputs
        # the version model: a call that reaches the derived ADInplaceOrView kernel bumps
        # each Tensor(a!) argument's counter once
        adiov = entry.table[_ADIOV.value]
        derived = entry.derived.get(_ADIOV)
        modelled = derived is not None and adiov.kernel is derived
        ks = DispatchKeySet.from_raw(
            (binder.tensor_keys(bound) | model.included.raw) & ~model.excluded.raw
        )
        for t in mutable:
            vc = t._version_counter
            if vc is None or id(vc) not in self.counters:
                continue
            counter, expected = self.counters[id(vc)]
            if not modelled:
                self.counters[id(vc)] = (counter, vc.version)  # unpredictable: re-baseline
            elif _ADIOV in ks:
                self.counters[id(vc)] = (counter, expected + 1)
        # undeclared mutations: data / geometry changed without shared memory with (a!)
        for name, t in self.pool:
            snap = before.get(id(t))
            if snap is None:
                continue
            changed = (
                snap[1] != t._data.shape
                or snap[2] != t._data.strides
                or not _same_data(snap[0], np.asarray(t._data))
            )
            if not changed or any(m is t or np.shares_memory(m._data, t._data) for m in mutable):
                continue
            args = [a.name for a, u in arg_tensors if u is t or np.shares_memory(u._data, t._data)]
            what = (
                f"Argument {args[0]} is not defined as mutable but was mutated"
                if args
                else f"{name}, not an argument, was mutated"
            )
            journal.problems.append(
                DispatchInvariantError(
                    "schema-mutation",
                    f"{op!r}: {what} (its data, shape or strides changed and it shares no "
                    f"memory with a Tensor(a!) argument); {name} before: "
                    f"{snap[0].tolist()!r}, after: {np.asarray(t._data).tolist()!r}; "
                    f"call: {description}",
                )
            )
        for o in outputs:
            self._add(o)

    def _after_failure(
        self, call: OpCall, error: Exception, before: dict[int, tuple[Any, ...]], journal: _Journal
    ) -> None:
        journal.description += f" -> raised {type(error).__name__}"
        fields = ("data", "shape", "strides", "_version", "grad_fn", "requires_grad")
        for name, t in self.pool:
            snap = before.get(id(t))
            if snap is None:
                continue
            now = _snapshot(t)
            for field, a, b in zip(fields, snap, now):
                if field == "data":
                    same = _same_data(a, b)
                elif field == "grad_fn" and not isinstance(a, str):
                    same = a is b
                else:
                    same = a == b
                if not same:
                    journal.problems.append(
                        DispatchInvariantError(
                            "failed-call",
                            f"{call!r} raised {type(error).__name__}: {error} — but changed "
                            f"the {field} of {name}: {a!r} -> {b!r}",
                        )
                    )

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def dispatch_tables_are_canonical(self) -> None:
        memo = self._table_memo
        for op_name, op in self.scratch_ops.items():
            check_operator_table(op.entry, self.registrations[op_name], memo=memo)
        for op in self.user_ops:
            check_operator_table(op.entry, memo=memo)

    @invariant()
    def tls_matches_guard_model(self) -> None:
        self.guard_stack.check()

    @invariant()
    def versions_count_inplace_calls(self) -> None:
        for name, t in self.pool:
            vc = t._version_counter
            if vc is None:
                continue
            _, expected = self.counters[id(vc)]
            if vc.version != expected:
                j = self.journal
                arg = j.arg_names.get(id(vc)) if j is not None else None
                which = f" (argument {arg} of the last call)" if arg else ""
                raise DispatchInvariantError(
                    "version-count",
                    f"{name}._version is {vc.version}{which}, but the model counts {expected} "
                    f"(its value when first seen plus one per call that reached "
                    f"ADInplaceOrView with it as a Tensor(a!) argument); last step: "
                    f"{j.description if j is not None else ''}",
                )

    @invariant()
    def last_step_kept_its_contract(self) -> None:
        if self.journal is not None and self.journal.problems:
            raise self.journal.problems[0]

    @invariant()
    def inference_tensors_have_no_autograd_keys(self) -> None:
        for name, t in self.pool:
            try:
                check_tensor(t)
            except DispatchInvariantError as e:
                raise DispatchInvariantError(e.rule, f"{name}: {e.args[0]}") from None

    @invariant()
    def no_grad_fn_recorded_without_grad_mode(self) -> None:
        j = self.journal
        if j is None or j.grad_mode or j.kind not in ("call", "backward", "requires_grad_"):
            return
        for o in j.outputs:
            if any(o is t for t in j.inputs):
                continue
            if o.grad_fn is not None:
                raise DispatchInvariantError(
                    "no-grad-fn-without-grad-mode",
                    f"{j.description} ran with grad mode off but its output "
                    f"{self._name_of(o)} has grad_fn {o.grad_fn.name()}",
                )
        for name, t in self.pool:
            if t._base is not None or id(t) not in j.grad_fns_before:
                continue
            if t._grad_fn is not j.grad_fns_before[id(t)]:
                raise DispatchInvariantError(
                    "no-grad-fn-without-grad-mode",
                    f"{j.description} ran with grad mode off but changed {name}'s grad_fn "
                    f"to {t._grad_fn!r}",
                )

    # -- teardown -------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            self.guard_stack.close()
        finally:
            while self.libraries:
                self.libraries.pop()[0].close()
            self._def.close()
        for op in self.std_ops:
            check_operator_table(op.entry)
        left = TLSState.current()
        if left != self._start_tls:
            s = _per_thread.state  # restore it, so that the next example starts where this one did
            s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode = self._start_raw
            raise DispatchInvariantError(
                "tls-model",
                f"closing every guard left the thread-local state at {left}, not {self._start_tls}",
            )
