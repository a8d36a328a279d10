"""Property tests of the dispatch invariants that grad modes and inference mode rest on
(no torch needed).

* Guards: any nesting of guards — trees of ``with`` blocks and decorated functions,
  bodies that raise at any depth and are caught at any depth — keeps the thread-local
  state equal to a reference model at every point and restores it exactly on every
  exit (included set, excluded set, grad mode, inference mode). The same holds in
  several threads running random guard trees concurrently: each thread's TLS follows
  its own stack only, and a new thread starts at the defaults whatever the spawning
  thread has entered.
* InferenceMode never puts ADInplaceOrView into the excluded set, and nothing puts
  autograd keys into the included set. The only guards that may exclude
  ADInplaceOrView are ``AutoDispatchBelowADInplaceOrView``, its deprecated alias
  ``AutoNonVariableTypeMode`` and an explicit ``ExcludeDispatchKeyGuard`` whose set
  holds ADInplaceOrView: at every point of a random guard tree, ADInplaceOrView is
  excluded iff one of those is open (``InferenceMode(False)`` does not lift it).
* Tensors made by random programs (random guards, factories, functional / view /
  in-place ops, requires_grad_, backward, errors included): ``is_inference()`` iff the
  key set has neither ADInplaceOrView nor an autograd key; a CPU tensor has both or
  neither; reading ``_version`` raises iff the tensor is an inference tensor; a new
  non-view tensor is an inference tensor iff inference mode was on when it was
  allocated, a view iff its input is one.
* No grad_fn is ever recorded inside InferenceMode (also under ``enable_grad`` or
  ``inference_mode(False)``-free nests inside it): every op output made inside has no
  grad_fn and, if it is not a view or an in-place result, requires_grad=False; an
  in-place op leaves its target's grad_fn as it was.
* The same program computes the same values in normal mode, under no_grad, in
  inference mode and under AutoDispatchBelowADInplaceOrView.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch.keys import AUTOGRAD_KEYS, DispatchKey
from dispatch.keyset import DispatchKeySet

ADIOV = DispatchKey.ADInplaceOrView
ADIOV_SET = DispatchKeySet(ADIOV)
AUTOGRAD_SET = DispatchKeySet(*AUTOGRAD_KEYS)
assert dispatch.autograd_dispatch_keyset == AUTOGRAD_SET


# ---------------------------------------------------------------------------------------------
# the reference model of the thread-local state
# ---------------------------------------------------------------------------------------------
class TLS(NamedTuple):
    included: DispatchKeySet
    excluded: DispatchKeySet
    grad_mode: bool
    inference_mode: bool


DEFAULT = TLS(DispatchKeySet(DispatchKey.BackendSelect, ADIOV), DispatchKeySet(), True, False)


def actual_tls() -> TLS:
    inc, exc = dispatch.tls_local_dispatch_key_set()
    return TLS(inc, exc, modes.is_grad_enabled(), modes.is_inference_mode_enabled())


@dataclass(frozen=True)
class GuardSpec:
    """One guard: how to build it, and what it does to the model state (design.md's table)."""

    name: str
    arg: Any = None

    def build(self) -> Any:
        n, a = self.name, self.arg
        if n == "no_grad":
            return modes.no_grad()
        if n == "enable_grad":
            return modes.enable_grad()
        if n == "set_grad_enabled":
            return modes.set_grad_enabled(a)
        if n == "NoGradGuard":
            return modes.NoGradGuard()
        if n == "AutoGradMode":
            return modes.AutoGradMode(a)
        if n == "inference_mode":
            return modes.inference_mode(a)
        if n == "InferenceMode":
            return modes.InferenceMode(a)
        if n == "AutoDispatchBelowAutograd":
            return modes.AutoDispatchBelowAutograd()
        if n == "AutoDispatchBelowADInplaceOrView":
            return modes.AutoDispatchBelowADInplaceOrView()
        if n == "AutoNonVariableTypeMode":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return modes.AutoNonVariableTypeMode()
        if n == "ExcludeDispatchKeyGuard":
            return modes.ExcludeDispatchKeyGuard(DispatchKeySet(a))
        if n == "IncludeDispatchKeyGuard":
            return modes.IncludeDispatchKeyGuard(DispatchKeySet(a))
        raise AssertionError(n)

    def apply(self, s: TLS) -> TLS:
        n, a = self.name, self.arg
        if n in ("no_grad", "NoGradGuard"):
            return s._replace(grad_mode=False)
        if n == "enable_grad":
            return s._replace(grad_mode=True)
        if n in ("set_grad_enabled", "AutoGradMode"):
            return s._replace(grad_mode=bool(a))
        if n in ("inference_mode", "InferenceMode"):
            if a:
                return TLS(s.included - ADIOV_SET, s.excluded | AUTOGRAD_SET, False, True)
            return TLS(s.included | ADIOV_SET, s.excluded - AUTOGRAD_SET, True, False)
        if n == "AutoDispatchBelowAutograd":
            return s._replace(excluded=s.excluded | AUTOGRAD_SET)
        if n in ("AutoDispatchBelowADInplaceOrView", "AutoNonVariableTypeMode"):
            return s._replace(excluded=s.excluded | AUTOGRAD_SET | ADIOV_SET)
        if n == "ExcludeDispatchKeyGuard":
            return s._replace(excluded=s.excluded | DispatchKeySet(a))
        if n == "IncludeDispatchKeyGuard":
            return s._replace(included=s.included | DispatchKeySet(a))
        raise AssertionError(n)

    @property
    def excludes_adiov(self) -> bool:
        """The guards that may put ADInplaceOrView into the excluded set — these and no others."""
        return self.name in ("AutoDispatchBelowADInplaceOrView", "AutoNonVariableTypeMode") or (
            self.name == "ExcludeDispatchKeyGuard" and ADIOV in self.arg
        )

    @property
    def decoratable(self) -> bool:
        return self.name in ("no_grad", "enable_grad", "inference_mode")

    def __repr__(self) -> str:
        if self.name in ("ExcludeDispatchKeyGuard", "IncludeDispatchKeyGuard"):
            return f"{self.name}({[k.name for k in self.arg]})"
        return self.name if self.arg is None else f"{self.name}({self.arg})"


_EXCLUDABLE = (
    DispatchKey.ADInplaceOrView,
    DispatchKey.AutogradCPU,
    DispatchKey.AutogradOther,
    DispatchKey.BackendSelect,
    DispatchKey.Python,
)
_INCLUDABLE = (DispatchKey.ADInplaceOrView, DispatchKey.BackendSelect, DispatchKey.Python)


def guard_specs(allow_adiov_exclusion: bool = True) -> st.SearchStrategy[GuardSpec]:
    plain = st.sampled_from(
        [
            GuardSpec("no_grad"),
            GuardSpec("enable_grad"),
            GuardSpec("NoGradGuard"),
            GuardSpec("inference_mode", True),
            GuardSpec("inference_mode", False),
            GuardSpec("InferenceMode", True),
            GuardSpec("InferenceMode", False),
            GuardSpec("AutoDispatchBelowAutograd"),
        ]
        + (
            [GuardSpec("AutoDispatchBelowADInplaceOrView"), GuardSpec("AutoNonVariableTypeMode")]
            if allow_adiov_exclusion
            else []
        )
    )
    with_bool = st.builds(
        GuardSpec, st.sampled_from(["set_grad_enabled", "AutoGradMode"]), st.booleans()
    )
    excludable = _EXCLUDABLE if allow_adiov_exclusion else _EXCLUDABLE[1:]
    keysets = st.builds(
        GuardSpec,
        st.just("ExcludeDispatchKeyGuard"),
        st.lists(st.sampled_from(excludable), min_size=1, unique=True).map(tuple),
    ) | st.builds(
        GuardSpec,
        st.just("IncludeDispatchKeyGuard"),
        st.lists(st.sampled_from(_INCLUDABLE), min_size=1, unique=True).map(tuple),
    )
    return st.one_of(plain, with_bool, keysets)


# ---------------------------------------------------------------------------------------------
# random guard trees, run with a check at every point
# ---------------------------------------------------------------------------------------------
@dataclass
class Node:
    guard: GuardSpec
    decorator: bool = False  # use the guard as a decorator of the body instead of `with`
    children: list[Node] = field(default_factory=list)
    raises: bool = False  # the body raises Boom after its children ran
    catches: bool = False  # a Boom escaping this block is caught right outside it


class Boom(Exception):
    pass


@st.composite
def nodes(draw: st.DrawFn, children: st.SearchStrategy[list[Node]], adiov: bool) -> Node:
    g = draw(guard_specs(adiov))
    return Node(
        g,
        decorator=g.decoratable and draw(st.booleans()),
        children=draw(children),
        raises=draw(st.integers(0, 3)) == 0,
        catches=draw(st.booleans()),
    )


def trees(adiov: bool = True, max_leaves: int = 12) -> st.SearchStrategy[list[Node]]:
    leaf: st.SearchStrategy[list[Node]] = st.just([])
    return st.recursive(
        leaf,
        lambda children: st.lists(nodes(children, adiov), min_size=1, max_size=3),
        max_leaves=max_leaves,
    ).filter(bool)


Check = Callable[[TLS, tuple[GuardSpec, ...]], None]


def run_forest(forest: list[Node], outer: TLS, check: Check, stack: tuple[GuardSpec, ...]) -> None:
    """Run ``forest`` where the model state is ``outer``; every Boom is caught at the latest
    at this level (so sibling trees still run)."""
    for node in forest:
        try:
            run_node(node, outer, check, stack)
        except Boom:
            pass
        check(outer, stack)


def run_node(node: Node, outer: TLS, check: Check, stack: tuple[GuardSpec, ...]) -> None:
    before = actual_tls()
    assert before == outer, f"{before} != model {outer} before entering {node.guard!r}"
    inside = node.guard.apply(outer)
    inner_stack = (*stack, node.guard)

    def body() -> None:
        check(inside, inner_stack)
        for child in node.children:
            run_node(child, inside, check, inner_stack)  # a Boom from a child propagates
            check(inside, inner_stack)
        if node.raises:
            raise Boom(repr(node.guard))

    try:
        if node.decorator:
            node.guard.build()(body)()
        else:
            with node.guard.build():
                body()
    except Boom:
        after = actual_tls()
        assert after == before, f"{node.guard!r} did not restore on an exception: {after}"
        if not node.catches:
            raise
    else:
        after = actual_tls()
        assert after == before, f"{node.guard!r} did not restore: {before} -> {after}"


def check_model(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
    got = actual_tls()
    assert got == expected, f"inside {list(stack)}: TLS {got}, model {expected}"


# ---------------------------------------------------------------------------------------------
# 1. guards restore the TLS exactly
# ---------------------------------------------------------------------------------------------
@given(forest=trees())
def test_any_nesting_of_guards_follows_the_model_and_restores_exactly(forest: list[Node]) -> None:
    start = actual_tls()
    assert start == DEFAULT
    run_forest(forest, start, check_model, ())
    assert actual_tls() == start


@given(outer=st.lists(guard_specs(), max_size=4), forest=trees())
def test_nesting_restores_exactly_from_any_starting_state(
    outer: list[GuardSpec], forest: list[Node]
) -> None:
    with contextlib.ExitStack() as es:
        state = DEFAULT
        for g in outer:
            es.enter_context(g.build())
            state = g.apply(state)
        assert actual_tls() == state
        run_forest(forest, state, check_model, tuple(outer))
        assert actual_tls() == state
    assert actual_tls() == DEFAULT


@given(forest=trees(), at=st.integers(0, 40))
def test_restores_when_a_dispatched_op_raises_inside(forest: list[Node], at: int) -> None:
    """A body whose *operator call* raises (a real dispatcher error, not a Python raise)."""
    counter = [0]
    x = dispatch.ones(2, 3, requires_grad=True)

    def check(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
        check_model(expected, stack)
        counter[0] += 1
        if counter[0] == at:
            try:
                x.view(4)  # shape error from the backend, under whatever keys run
            except RuntimeError:
                pass
            check_model(expected, stack)

    run_forest(forest, DEFAULT, check, ())
    assert actual_tls() == DEFAULT


def test_the_tree_runner_can_fail() -> None:
    """A wrong model is detected (the checks are not vacuous)."""
    forest = [Node(GuardSpec("inference_mode", True), children=[Node(GuardSpec("enable_grad"))])]

    def wrong(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
        check_model(expected._replace(inference_mode=False), stack)

    with pytest.raises(AssertionError, match="model"):
        run_forest(forest, DEFAULT, wrong, ())
    assert actual_tls() == DEFAULT


# ---------------------------------------------------------------------------------------------
# 1b. threads: each thread follows its own stack; a new thread starts at the defaults
# ---------------------------------------------------------------------------------------------
def _run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=10)
                fn()
            except BaseException as e:
                errors.append(e)

        return run

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads finely
    try:
        threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a worker thread hung"
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forests=st.lists(trees(max_leaves=8), min_size=2, max_size=4), outer=trees(max_leaves=3))
def test_threads_follow_their_own_guard_stacks(
    forests: list[list[Node]], outer: list[Node]
) -> None:
    observed_points = []

    def worker(forest: list[Node]) -> Callable[[], None]:
        def run() -> None:
            assert actual_tls() == DEFAULT, "a new thread must start at the defaults"
            points = [0]

            def check(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
                time.sleep(0)  # let the other threads move their TLS in between
                check_model(expected, stack)
                points[0] += 1

            for _ in range(3):
                run_forest(forest, DEFAULT, check, ())
                assert actual_tls() == DEFAULT
            observed_points.append(points[0])

        return run

    # the main thread sits inside its own guards meanwhile: no effect on the workers
    def main_side(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
        check_model(expected, stack)
        if len(stack) and not observed_points:
            _run_threads([worker(f) for f in forests])
            check_model(expected, stack)  # the workers did not touch this thread's TLS

    run_forest(outer, DEFAULT, main_side, ())
    if not observed_points:  # the outer tree had no open guard at a check point
        _run_threads([worker(f) for f in forests])
    assert len(observed_points) == len(forests)
    assert actual_tls() == DEFAULT


@given(
    outer=st.lists(guard_specs(), min_size=1, max_size=4), inner=st.lists(guard_specs(), max_size=3)
)
def test_new_thread_starts_at_defaults(outer: list[GuardSpec], inner: list[GuardSpec]) -> None:
    """Spawned from inside any guard stack — in the main thread or in a worker that has
    entered guards of its own — a thread sees the default TLS."""
    seen: list[TLS] = []

    def grandchild() -> None:
        seen.append(actual_tls())

    def child() -> None:
        seen.append(actual_tls())
        with contextlib.ExitStack() as es:
            for g in inner:
                es.enter_context(g.build())
            t = threading.Thread(target=grandchild)
            t.start()
            t.join()
        seen.append(actual_tls())

    with contextlib.ExitStack() as es:
        for g in outer:
            es.enter_context(g.build())
        inside = actual_tls()
        t = threading.Thread(target=child)
        t.start()
        t.join()
        assert actual_tls() == inside
    assert seen == [DEFAULT, DEFAULT, DEFAULT]


# ---------------------------------------------------------------------------------------------
# 2. where ADInplaceOrView and the autograd keys may be
# ---------------------------------------------------------------------------------------------
@given(
    stack=st.lists(guard_specs(allow_adiov_exclusion=False), max_size=6),
    im_at=st.integers(0, 6),
    im_cls=st.sampled_from(["inference_mode", "InferenceMode"]),
)
def test_inference_mode_never_excludes_adinplaceorview_nor_includes_autograd(
    stack: list[GuardSpec], im_at: int, im_cls: str
) -> None:
    """Stacks that contain InferenceMode but no ADInplaceOrView-excluding guard
    (AutoDispatchBelowADInplaceOrView / AutoNonVariableTypeMode / an exclude guard
    naming it): at every point ADInplaceOrView is not excluded and no autograd key is
    included; while InferenceMode is the innermost mode guard, it excluded every
    autograd key and removed ADInplaceOrView from the included set."""
    stack = list(stack)
    stack.insert(min(im_at, len(stack)), GuardSpec(im_cls, True))

    def check() -> None:
        inc, exc = dispatch.tls_local_dispatch_key_set()
        assert ADIOV not in exc, f"ADInplaceOrView excluded inside {stack}"
        assert not inc.has_any(AUTOGRAD_SET), f"autograd keys included inside {stack}"

    entered = []
    try:
        for g in stack:
            guard = g.build()
            guard.__enter__()
            entered.append(guard)
            check()
            if g.name in ("inference_mode", "InferenceMode") and g.arg:
                inc, exc = dispatch.tls_local_dispatch_key_set()
                assert exc.has_all(AUTOGRAD_SET) and ADIOV not in inc
                assert modes.is_inference_mode_enabled() and not modes.is_grad_enabled()
        while entered:
            entered.pop().__exit__(None, None, None)
            check()
    finally:
        while entered:
            entered.pop().__exit__(None, None, None)
    assert actual_tls() == DEFAULT


@given(forest=trees())
def test_only_below_adinplaceorview_guards_exclude_adinplaceorview(forest: list[Node]) -> None:
    """At every point of any guard tree: ADInplaceOrView is excluded iff an
    AutoDispatchBelowADInplaceOrView, an AutoNonVariableTypeMode or an
    ExcludeDispatchKeyGuard naming ADInplaceOrView is open — InferenceMode(True/False),
    the grad-mode guards and AutoDispatchBelowAutograd never add or remove it. And no
    autograd key is ever in the included set."""

    def check(expected: TLS, stack: tuple[GuardSpec, ...]) -> None:
        check_model(expected, stack)
        inc, exc = dispatch.tls_local_dispatch_key_set()
        assert (ADIOV in exc) == any(g.excludes_adiov for g in stack), list(stack)
        assert not inc.has_any(AUTOGRAD_SET), list(stack)

    run_forest(forest, DEFAULT, check, ())


# ---------------------------------------------------------------------------------------------
# 3 & 4. tensors made by random programs
# ---------------------------------------------------------------------------------------------
PROGRAM_GUARDS = {
    "no_grad": modes.no_grad,
    "enable_grad": modes.enable_grad,
    "inference_mode": lambda: modes.inference_mode(True),
    "inference_mode_off": lambda: modes.inference_mode(False),
    "below_adiov": modes.AutoDispatchBelowADInplaceOrView,
    "below_autograd": modes.AutoDispatchBelowAutograd,
}
SHAPES = ((2, 3), (3,), (), (1, 3))
UNARY = ("neg", "exp", "sin", "tanh", "sigmoid", "relu", "cos")
AUTOGRAD_RELATED = AUTOGRAD_SET | ADIOV_SET


@dataclass
class OpResult:
    kind: str  # "create" | "functional" | "view" | "inplace" | "other"
    outputs: list[Any]
    inputs: list[Any]
    grad_fn_before: Any = None  # in-place: the target's grad_fn before (or the error text)


class TensorProgram:
    """Draws and runs a random dispatchsim program, step by step."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.pool: list[Any] = []
        self.stacks: list[contextlib.ExitStack] = []  # one per open guard

    @property
    def depth(self) -> int:
        return len(self.stacks)

    def close(self) -> None:
        while self.stacks:
            self.stacks.pop().close()

    def draw(self, s: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(s)

    def pick(self, pred: Callable[[Any], bool] = lambda t: True) -> Any:
        cands = [t for t in self.pool if pred(t)] or self.pool
        return self.draw(st.sampled_from(cands))

    def operand(self, shape: tuple[int, ...]) -> Any:
        same = [t for t in self.pool if tuple(t.shape) == shape]
        if not same or self.draw(st.booleans()):
            return self.draw(st.sampled_from([2.0, -1.0, 0.5]))
        return self.draw(st.sampled_from(same))

    def step(self) -> OpResult | None:
        kind = self.draw(
            st.sampled_from(["create", "functional", "view", "inplace", "enter", "exit", "other"])
        )
        if kind == "enter" and self.depth < 4:
            name = self.draw(st.sampled_from(sorted(PROGRAM_GUARDS)))
            es = contextlib.ExitStack()
            es.enter_context(PROGRAM_GUARDS[name]())
            self.stacks.append(es)
            return None
        if kind == "exit" and self.depth:
            self.stacks.pop().close()
            return None
        if not self.pool or kind in ("create", "enter", "exit"):
            shape = self.draw(st.sampled_from(SHAPES))
            rg = self.draw(st.booleans())
            t = (dispatch.ones if self.draw(st.booleans()) else dispatch.zeros)(
                *shape, requires_grad=rg
            )
            self.pool.append(t)
            return OpResult("create", [t], [])
        a = self.pick()
        shape = tuple(a.shape)
        if kind == "functional":
            form = self.draw(st.sampled_from(["unary", "binary", "sum", "clone"]))
            if form == "unary":
                return self._fn(getattr(a, self.draw(st.sampled_from(UNARY))), [a])
            if form == "binary":
                b = self.operand(shape)
                op = self.draw(st.sampled_from(["add", "mul", "sub"]))
                return self._fn(lambda: getattr(a, op)(b), [a, b])
            if form == "sum":
                return self._fn(a.sum, [a])
            return self._fn(a.clone, [a])
        if kind == "view":
            forms = ["view", "unsqueeze", "expand", "detach"]
            if len(shape) <= 2:
                forms.append("t")
            if shape:
                forms += ["select", "transpose"]
            form = self.draw(st.sampled_from(forms))
            fn = {
                "view": lambda: a.view(-1),
                "unsqueeze": lambda: a.unsqueeze(0),
                "expand": lambda: a.expand(2, *shape),
                "detach": a.detach,
                "t": a.t,
                "select": lambda: a[0],
                "transpose": lambda: a.transpose(0, -1),
            }[form]
            return self._fn(fn, [a], kind="view")
        if kind == "inplace":
            form = self.draw(
                st.sampled_from(["add_", "mul_", "zero_", "fill_", "copy_", "t_", "unsqueeze_"])
            )
            if form == "t_" and len(shape) > 2:
                form = "zero_"
            before = _grad_fn_or_error(a)
            try:
                if form in ("add_", "mul_"):
                    b = self.operand(shape)
                    getattr(a, form)(b)
                    inputs = [a, b]
                elif form == "fill_":
                    a.fill_(1.5)
                    inputs = [a]
                elif form == "copy_":
                    b = self.operand(shape)
                    a.copy_(b if isinstance(b, dispatch.Tensor) else dispatch.full(shape, b))
                    inputs = [a, b]
                elif form == "unsqueeze_":
                    a.unsqueeze_(0)
                    inputs = [a]
                else:
                    getattr(a, form)()
                    inputs = [a]
            except RuntimeError:
                return None
            return OpResult("inplace", [a], inputs, before)
        # other: requires_grad_ / backward
        try:
            if self.draw(st.booleans()):
                a.requires_grad_(self.draw(st.booleans()))
            else:
                a.sum().backward()
        except RuntimeError:
            pass
        return None

    def _fn(self, fn: Callable[[], Any], inputs: list[Any], kind: str = "functional") -> Any:
        try:
            out = fn()
        except RuntimeError:
            return None
        self.pool.append(out)
        return OpResult(kind, [out], inputs)


def _grad_fn_or_error(t: Any) -> Any:
    try:
        return t.grad_fn
    except RuntimeError as e:
        return f"raises: {e}"


def check_tensor_invariants(t: Any) -> None:
    ks = t.key_set
    inference = t.is_inference()
    assert inference == (not ks.has_any(AUTOGRAD_RELATED)), (ks, inference)
    if DispatchKey.CPU in ks:
        # a CPU tensor has both ADInplaceOrView and AutogradCPU, or neither
        assert (ADIOV in ks) == (DispatchKey.AutogradCPU in ks), ks
    try:
        has_counter = t._version >= 0
    except RuntimeError as e:
        assert str(e) == "Inference tensors do not track version counter."
        has_counter = False
    assert has_counter == (not inference), (ks, has_counter)
    if t._is_view():
        assert not t._base.is_inference(), "views of inference tensors are not tracked"
        assert not inference


def run_tensor_program(data: st.DataObject, on_step: Callable[[OpResult, bool], None]) -> None:
    prog = TensorProgram(data)
    # two normal tensors that require grad, made before any guard: the interesting inputs
    # for ops inside inference mode (with enable_grad inside it, say)
    prog.pool += [dispatch.ones(2, 3, requires_grad=True), dispatch.ones(2, 3).mul(2.0)]
    prog.pool[1].requires_grad_()
    prog.pool.append(prog.pool[1].clone())
    try:
        for _ in range(data.draw(st.integers(1, 30))):
            in_im = modes.is_inference_mode_enabled()
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = prog.step()
            if res is not None:
                on_step(res, in_im)
            for t in prog.pool:
                check_tensor_invariants(t)
    finally:
        prog.close()
    assert actual_tls() == DEFAULT


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_inference_tensor_iff_no_adinplaceorview_and_no_autograd_keys(data: st.DataObject) -> None:
    counts = {"inference": 0, "normal": 0}

    def on_step(res: OpResult, in_im: bool) -> None:
        for out in res.outputs:
            counts["inference" if out.is_inference() else "normal"] += 1
            if res.kind in ("create", "functional"):
                # allocation reads the inference-mode flag
                assert out.is_inference() == in_im, (res.kind, in_im)
            elif res.kind == "view":
                base = res.inputs[0]
                assert out.is_inference() == base.is_inference(), "a view follows its input"
            else:  # in-place: the target keeps its kind
                assert out.key_set.has_any(AUTOGRAD_RELATED) != out.is_inference()

    run_tensor_program(data, on_step)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_grad_fn_is_recorded_inside_inference_mode(data: st.DataObject) -> None:
    def on_step(res: OpResult, in_im: bool) -> None:
        if not in_im:
            return
        for out in res.outputs:
            if res.kind == "inplace":
                after = _grad_fn_or_error(out)
                if out._is_view():
                    # a view's grad_fn may be regenerated (or its access refused) after an
                    # in-place op; it may never appear on a view that had none
                    assert (
                        res.grad_fn_before is not None or after is None or (isinstance(after, str))
                    ), after
                else:
                    assert after is res.grad_fn_before, (res.grad_fn_before, after)
            else:
                assert out.grad_fn is None, out.grad_fn
                if res.kind == "functional":
                    assert not out.requires_grad

    run_tensor_program(data, on_step)


def test_no_grad_fn_inside_inference_mode_even_with_enable_grad() -> None:
    """The deterministic core of the property (enable_grad cannot bring Autograd back)."""
    x = dispatch.ones(2, 3, requires_grad=True)
    with modes.inference_mode(), modes.enable_grad():
        assert modes.is_grad_enabled()
        for y in (x * 2, x.exp(), x.view(-1), x[0], x.clone(), x + x):
            assert y.grad_fn is None
    with modes.enable_grad():
        assert (x * 2).grad_fn is not None  # the check can fail


# ---------------------------------------------------------------------------------------------
# 5. the same program computes the same values in every mode
# ---------------------------------------------------------------------------------------------
VALUE_MODES: dict[str, Callable[[], Any]] = {
    "normal": contextlib.nullcontext,
    "no_grad": modes.no_grad,
    "inference_mode": modes.inference_mode,
    "below_adiov": modes.AutoDispatchBelowADInplaceOrView,
}


@st.composite
def value_programs(draw: st.DrawFn) -> tuple[list[np.ndarray[Any, Any]], list[tuple[Any, ...]]]:
    n_inputs = draw(st.integers(1, 3))
    inputs = [
        np.array(
            draw(
                st.lists(st.sampled_from([1.0, -2.0, 0.5, 1.5, -0.25, 3.0]), min_size=6, max_size=6)
            ),
            dtype=np.float32,
        ).reshape(2, 3)
        for _ in range(n_inputs)
    ]
    ops = []
    size = n_inputs
    for _ in range(draw(st.integers(1, 15))):
        op = draw(
            st.sampled_from(
                [
                    "unary",
                    "binary",
                    "scalar",
                    "sum",
                    "view",
                    "t",
                    "select",
                    "clone_inplace",
                    "clone_view_inplace",
                ]
            )
        )
        ops.append(
            (
                op,
                draw(st.integers(0, size - 1)),
                draw(st.integers(0, size - 1)),
                draw(st.sampled_from(UNARY)),
                draw(st.sampled_from(["add", "mul", "sub"])),
                draw(st.sampled_from([2.0, -0.5, 1.5])),
            )
        )
        size += 1
    return inputs, ops


def _compute(inputs: list[np.ndarray[Any, Any]], ops: list[tuple[Any, ...]]) -> list[np.ndarray]:
    pool = [dispatch.tensor(x.tolist(), requires_grad=True) for x in inputs]
    for op, i, j, unary, binary, s in ops:
        a, b = pool[i], pool[j]
        if op == "unary":
            out = getattr(a, unary)()
        elif op == "binary":
            b2 = b if tuple(b.shape) == tuple(a.shape) else s
            out = getattr(a, binary)(b2)
        elif op == "scalar":
            out = getattr(a, binary)(s)
        elif op == "sum":
            out = a.sum(0) if a.dim() else a.sum()
        elif op == "view":
            out = a.reshape(-1)
        elif op == "t":
            out = a.t() if a.dim() <= 2 else a.reshape(-1)
        elif op == "select":
            out = a[0] if a.dim() else a.reshape(1)
        elif op == "clone_inplace":
            out = a.clone()
            getattr(out, binary + "_")(b if tuple(b.shape) == tuple(a.shape) else s)
        else:  # in-place through a view of a fresh clone
            out = a.clone()
            (out[0] if out.dim() else out.view(1)).mul_(s)  # a fresh clone is contiguous
        pool.append(out)
    return [np.array(t._data, copy=True) for t in pool]


@given(program=value_programs())
def test_same_program_same_values_in_every_mode(
    program: tuple[list[np.ndarray[Any, Any]], list[tuple[Any, ...]]],
) -> None:
    inputs, ops = program
    results = {}
    with np.errstate(all="ignore"):
        for name, guard in VALUE_MODES.items():
            with guard():
                results[name] = _compute(inputs, ops)
    ref = results["normal"]
    for name, got in results.items():
        assert len(got) == len(ref)
        for k, (x, y) in enumerate(zip(ref, got)):
            assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), (
                f"tensor {k} differs between normal mode and {name}:\n{x}\n{y}"
            )
