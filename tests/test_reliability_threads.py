"""Reliability under threads (issue #6, point 5a).

* 8 threads, each running a different random program (``dispatch.testing.programs()``)
  under a different outer guard, many times over, all at once: every step's thread-local
  state equals the guard model of *that* thread's open guards (no TLS leaks across
  threads), and every run's outcome (errors, values, versions, grad_fns, grads) equals a
  single-threaded replay of the same program under the same guard.
* Registration racing calls: one thread defines, implements, registers fallbacks and
  closes libraries over and over while 7 threads call the operators involved (and aten
  operators): every call sees a complete table — one published state — or gets the clear
  error of an operator that is not (or no longer) there; never a half-built table.

Counts (steps run, calls made, registrations made) are kept in ``COUNTS``, asserted, and
printed at the end of the module. ``DISPATCHSIM_RELIABILITY_STEPS`` scales the work
(default 1: ~10k program steps and ~4k racing calls per default run); with
``HYPOTHESIS_PROFILE=thorough`` hypothesis draws more program sets.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch import DispatchKey, Library
from dispatch.dispatcher import dispatcher
from dispatch.testing import GuardSpec, Program, ProgramRun, StepOutcome, TLSState, programs

SCALE = max(1, int(os.environ.get("DISPATCHSIM_RELIABILITY_STEPS", "1")))
N_THREADS = 8
REPEATS = 3 * SCALE  # each thread runs its program this many times, concurrently
EXAMPLES = 8 * SCALE  # program sets per run (the "thorough" profile draws more)
RACE_ROUNDS = 150 * SCALE  # registration rounds while the callers call

COUNTS: dict[str, int] = {
    "program_sets": 0,
    "thread_steps": 0,
    "tls_checks": 0,
    "race_calls": 0,
    "race_registrations": 0,
    "race_snapshots": 0,
}

# A different outer guard for each of the 8 threads (the programs nest their own inside).
OUTER_GUARDS = (
    GuardSpec("no_grad"),
    GuardSpec("enable_grad"),
    GuardSpec("inference_mode", True),
    GuardSpec("set_grad_enabled", False),
    GuardSpec("AutoDispatchBelowAutograd"),
    GuardSpec("AutoDispatchBelowADInplaceOrView"),
    GuardSpec("InferenceMode", False),
    GuardSpec("ExcludeDispatchKeyGuard", ("AutogradCPU",)),
)


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Any:
    yield
    line = "reliability[threads]: " + ", ".join(f"{k}={v}" for k, v in COUNTS.items())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


@pytest.fixture
def fast_switching() -> Any:
    """Switch threads every 10 µs (not 5 ms), so that they interleave inside ops."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    # Program.run uses warnings.catch_warnings, which edits the process-wide filters;
    # concurrent uses may leave them changed: restore them here.
    with warnings.catch_warnings():
        yield
    sys.setswitchinterval(old)


# ---------------------------------------------------------------------------------------
# (a) random programs in 8 threads vs single-threaded replays
# ---------------------------------------------------------------------------------------
def deterministic(program: Program) -> Program:
    """The program with ``rand`` / ``randn`` made ``ones`` / ``zeros``: the generator is
    shared by all threads, so random draws would differ between runs."""
    swap = {"rand": "ones", "randn": "zeros"}
    steps = tuple(
        attrs.evolve(s, op=swap[s.op]) if s.kind == "create" and s.op in swap else s
        for s in program.steps
    )
    return Program(steps)


def _tensor_summary(t: dispatch.Tensor | None) -> Any:
    if t is None:
        return None
    version: Any
    try:
        version = t._version
    except RuntimeError as e:
        version = str(e)
    grad = t.grad
    grad_fn: Any
    try:  # a no-grad view whose base changed in place: reading grad_fn raises, as torch's
        grad_fn = type(t.grad_fn).__name__
    except RuntimeError as e:
        grad_fn = str(e)
    return (
        tuple(t.shape),
        str(t.dtype),
        np.array(t._data).tobytes(),
        t.requires_grad,
        t.is_inference(),
        version,
        grad_fn,
        None if grad is None else np.array(grad._data).tobytes(),
        t._is_view(),
    )


def summarize(run: ProgramRun) -> tuple[Any, ...]:
    steps = tuple(
        (
            o.step.kind,
            o.step.op,
            o.skipped,
            None if o.error is None else (type(o.error).__name__, str(o.error)),
        )
        for o in run.outcomes
    )
    return steps, tuple(_tensor_summary(t) for t in run.tensors)


class _Checker:
    """``on_step`` for Program.run: after each step the thread's TLS equals the model of
    the guards this thread has open (its outer guard and the program's)."""

    def __init__(self, outer: GuardSpec) -> None:
        self.models = [outer.apply(TLSState.default())]
        self.steps = 0

    def __call__(self, outcome: StepOutcome, pool: list[Any]) -> None:
        step = outcome.step
        if step.kind == "enter":
            assert step.guard is not None
            self.models.append(step.guard.apply(self.models[-1]))
        elif step.kind == "exit":
            self.models.pop()
        got = TLSState.current()
        assert got == self.models[-1], f"step {step.code()}: TLS {got}, model {self.models[-1]}"
        self.steps += 1


def run_program(program: Program, outer: GuardSpec) -> tuple[tuple[Any, ...], int]:
    """Run ``program`` inside ``outer`` in this thread; its summary and step count."""
    checker = _Checker(outer)
    with outer.build():
        assert TLSState.current() == checker.models[0]
        run = program.run(checker)
    assert TLSState.current() == TLSState.default(), "guards did not restore the TLS"
    # summarised outside the guards: reading values and versions needs no dispatch state
    return summarize(run), checker.steps


def run_in_threads(targets: list[Callable[[], Any]]) -> list[Any]:
    """Start all targets together (a barrier) and return their results; re-raise the first
    exception a thread raised."""
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = targets[i]()
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]
    return results


@settings(
    max_examples=EXAMPLES if settings().max_examples < 1000 else settings().max_examples // 50,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # it sets process-wide state: same for all
    ],
    deadline=None,
    # no shrinking: each example runs 8 threads; the failure message shows the program
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(st.lists(programs(min_steps=40, max_steps=120), min_size=N_THREADS, max_size=N_THREADS))
def test_eight_threads_match_single_threaded_replays(fast_switching: None, progs: list[Program]):
    progs = [deterministic(p) for p in progs]
    main_before = TLSState.current()
    # the single-threaded replays, one program at a time
    expected = [run_program(p, g)[0] for p, g in zip(progs, OUTER_GUARDS, strict=True)]

    def worker(i: int) -> Callable[[], list[tuple[Any, int]]]:
        def go() -> list[tuple[Any, int]]:
            assert TLSState.current() == TLSState.default(), "a new thread must start at defaults"
            return [run_program(progs[i], OUTER_GUARDS[i]) for _ in range(REPEATS)]

        return go

    results = run_in_threads([worker(i) for i in range(N_THREADS)])
    assert TLSState.current() == main_before, "the threads changed the main thread's TLS"
    for i, runs in enumerate(results):
        for summary, steps in runs:
            assert summary == expected[i], (
                f"thread {i} (under {OUTER_GUARDS[i]!r}) differs from its single-threaded "
                f"replay of\n{progs[i]!r}"
            )
            COUNTS["thread_steps"] += steps
            COUNTS["tls_checks"] += steps
    COUNTS["program_sets"] += 1


def test_thread_step_count_is_thousands():
    """The program suite above really ran thousands of concurrent steps."""
    if COUNTS["program_sets"] == 0:
        pytest.skip("run together with test_eight_threads_match_single_threaded_replays")
    assert COUNTS["thread_steps"] >= 1000 * COUNTS["program_sets"]


def test_guards_in_one_thread_are_invisible_in_the_others(fast_switching: None):
    """Each thread holds a different guard open while the others check their own state,
    thousands of times; each sees only its own guard."""
    n = 400 * SCALE

    def worker(i: int) -> Callable[[], int]:
        g = OUTER_GUARDS[i]
        model = g.apply(TLSState.default())

        def go() -> int:
            checks = 0
            for _ in range(n):
                assert TLSState.current() == TLSState.default()
                with g.build():
                    assert TLSState.current() == model
                    x = dispatch.ones(2, requires_grad=True)
                    y = x * 2  # the grad mode of this thread only decides this grad_fn
                    assert (y.grad_fn is not None) == (
                        model.grad_mode
                        and DispatchKey.AutogradCPU not in model.excluded
                        and not model.inference_mode
                    )
                    assert TLSState.current() == model
                    checks += 3
            return checks

        return go

    counts = run_in_threads([worker(i) for i in range(N_THREADS)])
    COUNTS["tls_checks"] += sum(counts)
    assert sum(counts) == N_THREADS * n * 3


# ---------------------------------------------------------------------------------------
# (b) registration racing calls
# ---------------------------------------------------------------------------------------
def _tag(value: float) -> Callable[..., dispatch.Tensor]:
    def kernel(x: dispatch.Tensor) -> dispatch.Tensor:
        return dispatch.full(tuple(x.shape), value)

    return kernel


def _ag_tag(op_getter: Callable[[], Any], value: float) -> Callable[..., dispatch.Tensor]:
    def kernel(ks: dispatch.DispatchKeySet, x: dispatch.Tensor) -> dispatch.Tensor:
        below = op_getter().redispatch(ks & dispatch.after_autograd_keyset, x)
        return below + value * 1000  # one tag for the autograd kernel, one for the backend

    return kernel


CLEAR_ERRORS = (
    # the operator is not defined right now
    (AttributeError, "object has no attribute 'dyn'"),
    # a packet looked up a moment before its last overload went away
    (AttributeError, "The underlying op of 'rel_race_dyn.dyn' has no overload name 'default'"),
    # a handle kept from before its library was closed
    (RuntimeError, "has been deregistered"),
    # an autograd kernel redispatching through a handle whose definition just went away
    (RuntimeError, "operator rel_race_dyn::dyn has no schema"),
    # defined, but its kernel is not registered (yet / any more)
    (NotImplementedError, "Could not run 'rel_race_dyn::dyn' with arguments from the"),
    (NotImplementedError, "Could not run 'rel_race::tag' with arguments from the"),
)


def _is_clear(e: BaseException) -> bool:
    return any(isinstance(e, cls) and text in str(e) for cls, text in CLEAR_ERRORS)


def test_registration_racing_calls_sees_only_complete_tables(fast_switching: None):
    """dispatcher.py promises: registration is serialised by one lock, each change
    recomputes the operator's table and publishes it with one assignment, so a call reads
    one complete table. One thread registers (a CompositeImplicitAutograd kernel, which
    changes many table entries at once; CPU + Autograd kernels; a whole operator's
    definition; a backend fallback for every operator) and closes, round after round;
    7 threads call. Every call sees a published state, or gets a clear error."""
    with Library("rel_race", "DEF") as base:
        base.define("tag(Tensor x) -> Tensor")
        tag_op = dispatch.ops.rel_race.tag.default
        entry = tag_op.entry
        rounds = RACE_ROUNDS
        done = threading.Event()
        keys_of_interest = (DispatchKey.CPU, DispatchKey.AutogradCPU, DispatchKey.Undefined)
        # no CIA kernel: CPU and Undefined missing, AutogradCPU the autograd fallback
        base_kernels = tuple(entry.table[k.value].kernel for k in keys_of_interest)
        assert base_kernels[0] is None and base_kernels[1] is not None
        before_ops = set(dispatcher.operators)
        before_fallbacks = {k: tuple(v) for k, v in dispatcher.fallbacks.items()}

        def registrar() -> int:
            n = 0
            try:
                for g in range(1, rounds + 1):
                    # 1. one impl that fills CPU, AutogradCPU and Undefined at once
                    with Library("rel_race", "IMPL") as lib:
                        lib.impl("tag", _tag(float(g)), "CompositeImplicitAutograd")
                        n += 1
                    # 2. a whole operator: define, CPU, Autograd; closed newest first
                    with Library("rel_race_dyn", "DEF") as dyn:
                        dyn.define("dyn(Tensor x) -> Tensor")
                        dyn.impl("dyn", _tag(float(g)), "CPU")
                        dyn.impl(
                            "dyn",
                            _ag_tag(lambda: dispatch.ops.rel_race_dyn.dyn.default, float(g)),
                            "Autograd",
                            with_keyset=True,
                        )
                        n += 3
                    # 3. a backend fallback, which refreshes every operator's table
                    with Library("_", "FRAGMENT") as glob:
                        glob.fallback(dispatch.fallthrough_kernel, "Python")
                        n += 1
            finally:
                done.set()
            return n

        def caller(i: int) -> Callable[[], int]:
            def go() -> int:
                calls = 0
                x = dispatch.ones(2)
                w = dispatch.ones(2, requires_grad=True)
                while not done.is_set() or calls < 50:
                    # the tag operator: the CIA kernel of one round, or none at all
                    for guard in (modes.enable_grad(), modes.AutoDispatchBelowAutograd()):
                        with guard:
                            try:
                                out = tag_op(x)
                            except NotImplementedError as e:
                                assert _is_clear(e), repr(e)
                            else:
                                v = out.tolist()
                                assert v[0] == v[1] and 1 <= v[0] <= rounds, v
                        calls += 1
                    # one read of the published table: all its entries from one state
                    table = entry.table
                    kernels = tuple(table[k.value].kernel for k in keys_of_interest)
                    assert kernels == base_kernels or (
                        kernels[0] is not None and len(set(kernels)) == 1
                    ), f"half-built table: {kernels}"
                    COUNTS["race_snapshots"] += 1
                    # the operator that comes and goes
                    try:
                        out = dispatch.ops.rel_race_dyn.dyn(w)
                    except (AttributeError, RuntimeError, NotImplementedError) as e:
                        assert _is_clear(e), repr(e)
                    else:
                        ag, backend = divmod(out.tolist()[0], 1000)
                        # no autograd kernel (yet / any more: the autograd fallback ran), or
                        # the autograd kernel of round a, then (a moment later) the CPU
                        # kernel of round a or of a later round: never an older one
                        assert 0 <= ag <= rounds and 1 <= backend <= rounds, (ag, backend)
                        assert backend >= ag, (ag, backend)
                    calls += 1
                    # aten operators are unaffected by all of it
                    y = w * 2 + x
                    assert y.tolist() == [3.0, 3.0] and y.grad_fn is not None
                    z = x.clone()
                    z.add_(1)
                    assert z._version == 1 and z.tolist() == [2.0, 2.0]
                    calls += 3
                return calls

            return go

        results = run_in_threads([registrar] + [caller(i) for i in range(N_THREADS - 1)])
        COUNTS["race_registrations"] += results[0]
        COUNTS["race_calls"] += sum(results[1:])
        assert results[0] == 5 * rounds
        # afterwards: the registry is as it was
        assert set(dispatcher.operators) == before_ops
        assert {k: tuple(v) for k, v in dispatcher.fallbacks.items()} == before_fallbacks
        assert not hasattr(dispatch.ops.rel_race_dyn, "dyn")
        with pytest.raises(NotImplementedError, match="Could not run 'rel_race::tag'"):
            tag_op(dispatch.ones(1))
