"""Grad-mode guards: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``NoGradGuard``
and ``AutoGradMode`` — as context managers, as decorators (with and without
parentheses, generator functions included), when ``set_grad_enabled`` is merely
called, nested, on exceptions, re-entered, per thread — and what grad mode decides:
whether a ``grad_fn`` is recorded and whether an output requires grad.

Grad-mode guards change grad mode only (reference (b)): the TLS key sets and the
inference-mode flag are never touched. Where dispatchsim could plausibly differ from
torch, a scenario is run on both: the expected value is written out here, and an
``oracle`` test checks that torch 2.13 produces exactly that value.

Tests named after an upstream test cite ``test/test_autograd.py::TestAutograd::<name>``.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import dispatch
import modes
from kernels import autograd

# ---------------------------------------------------------------------------------------------
# helpers: one namespace per library, so a scenario runs unchanged on dispatchsim and torch
# ---------------------------------------------------------------------------------------------


def _ds_keys() -> Any:
    return tuple(dispatch.tls_local_dispatch_key_set())


DS = SimpleNamespace(
    ones=dispatch.ones,
    zeros=dispatch.zeros,
    randn=dispatch.randn,
    mul=dispatch.mul,
    no_grad=modes.no_grad,
    enable_grad=modes.enable_grad,
    set_grad_enabled=modes.set_grad_enabled,
    inference_mode=modes.inference_mode,
    is_grad_enabled=modes.is_grad_enabled,
    is_inference_mode_enabled=modes.is_inference_mode_enabled,
    keys=_ds_keys,
    grad=autograd.grad,
    float64=dispatch.float64,
)


def _torch_lib() -> Any:
    torch = pytest.importorskip("torch")

    def keys() -> Any:
        return (
            str(torch._C._dispatch_tls_local_include_set()),
            str(torch._C._dispatch_tls_local_exclude_set()),
        )

    return SimpleNamespace(
        ones=torch.ones,
        zeros=torch.zeros,
        randn=torch.randn,
        mul=torch.mul,
        no_grad=torch.no_grad,
        enable_grad=torch.enable_grad,
        set_grad_enabled=torch.set_grad_enabled,
        inference_mode=torch.inference_mode,
        is_grad_enabled=torch.is_grad_enabled,
        is_inference_mode_enabled=torch.is_inference_mode_enabled,
        keys=keys,
        grad=torch.autograd.grad,
        float64=torch.float64,
    )


def state() -> tuple[Any, Any, bool, bool]:
    """(included, excluded, grad mode, inference mode) of this thread."""
    inc, exc = dispatch.tls_local_dispatch_key_set()
    return inc, exc, modes.is_grad_enabled(), modes.is_inference_mode_enabled()


DEFAULT_STATE = (dispatch.default_included_set, dispatch.default_excluded_set, True, False)


def facts(t: Any) -> tuple[bool, bool, str | None]:
    """(requires_grad, is_leaf, grad_fn name) — what grad mode decides about a result."""
    fn = t.grad_fn
    return (t.requires_grad, t.is_leaf, None if fn is None else fn.name())


# The grad-mode guards, as factories (set_grad_enabled acts when constructed, so each
# factory must be called right where the `with` is).
OFF: dict[str, Callable[[], Any]] = {
    "no_grad": modes.no_grad,
    "set_grad_enabled(False)": lambda: modes.set_grad_enabled(False),
    "NoGradGuard": modes.NoGradGuard,
    "AutoGradMode(False)": lambda: modes.AutoGradMode(False),
}
ON: dict[str, Callable[[], Any]] = {
    "enable_grad": modes.enable_grad,
    "set_grad_enabled(True)": lambda: modes.set_grad_enabled(True),
    "AutoGradMode(True)": lambda: modes.AutoGradMode(True),
    "AutoGradMode()": modes.AutoGradMode,
}
ALL = {**{k: (v, False) for k, v in OFF.items()}, **{k: (v, True) for k, v in ON.items()}}


# ---------------------------------------------------------------------------------------------
# context managers
# ---------------------------------------------------------------------------------------------
def test_defaults() -> None:
    assert state() == DEFAULT_STATE
    assert modes.is_grad_enabled() is True


@pytest.mark.parametrize("name", sorted(OFF))
def test_off_guard_as_context_manager(name: str) -> None:
    x = dispatch.ones(2, requires_grad=True)
    with OFF[name]():
        assert modes.is_grad_enabled() is False
        y = x * 2
    assert modes.is_grad_enabled() is True
    assert facts(y) == (False, True, None)
    assert facts(x * 2) == (True, False, "MulBackward0")


@pytest.mark.parametrize("name", sorted(ON))
def test_on_guard_as_context_manager(name: str) -> None:
    x = dispatch.ones(2, requires_grad=True)
    with modes.no_grad():
        with ON[name]():
            assert modes.is_grad_enabled() is True
            y = x * 2
        assert modes.is_grad_enabled() is False
        assert facts(x * 2) == (False, True, None)
    assert facts(y) == (True, False, "MulBackward0")
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("outer", ["normal", "no_grad", "inference_mode"])
def test_guards_change_grad_mode_only(name: str, outer: str) -> None:
    """Inside any grad-mode guard the TLS key sets and the inference flag are the outer
    ones, whatever the outer state (reference (b): no key set change)."""
    factory, enabled = ALL[name]
    ctx = {"normal": modes.AutoGradMode, "no_grad": modes.no_grad}.get(outer, modes.inference_mode)
    with ctx():
        inc, exc, _, inf = state()
        with factory():
            assert state() == (inc, exc, enabled, inf)
        assert state()[:2] == (inc, exc)
        assert state()[3] == inf
    assert state() == DEFAULT_STATE


def test_nesting_restores_each_level() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_enabled (the nesting part) and
    deeper: every exit restores the level's own mode."""
    seen = []
    with modes.no_grad():
        seen.append(modes.is_grad_enabled())
        with modes.enable_grad():
            seen.append(modes.is_grad_enabled())
            with modes.set_grad_enabled(False):
                seen.append(modes.is_grad_enabled())
                with modes.AutoGradMode(True):
                    seen.append(modes.is_grad_enabled())
                    with modes.NoGradGuard():
                        seen.append(modes.is_grad_enabled())
                    seen.append(modes.is_grad_enabled())
                seen.append(modes.is_grad_enabled())
            seen.append(modes.is_grad_enabled())
        seen.append(modes.is_grad_enabled())
    seen.append(modes.is_grad_enabled())
    assert seen == [False, True, False, True, False, True, False, True, False, True]


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("outer_enabled", [True, False])
def test_restore_on_exception(name: str, outer_enabled: bool) -> None:
    factory, enabled = ALL[name]

    class Boom(Exception):
        pass

    with modes.AutoGradMode(outer_enabled):
        before = state()
        with pytest.raises(Boom), factory():
            assert modes.is_grad_enabled() is enabled
            raise Boom
        assert state() == before


@pytest.mark.parametrize("name", ["no_grad", "enable_grad", "NoGradGuard", "AutoGradMode(False)"])
def test_reenter_same_guard_object(name: str) -> None:
    """A guard object can be entered again after exit; each entry saves the mode it finds."""
    factory, enabled = ALL[name]
    g = factory()
    for outer in (True, False, True, False):
        with modes.AutoGradMode(outer):
            with g:
                assert modes.is_grad_enabled() is enabled
            assert modes.is_grad_enabled() is outer
    assert state() == DEFAULT_STATE


def test_reenter_set_grad_enabled_object() -> None:
    """torch's set_grad_enabled acts on construction; entering sets the mode again, and
    every exit restores the mode from *before the construction* (torch's ``self.prev``)."""
    g = modes.set_grad_enabled(False)
    try:
        assert modes.is_grad_enabled() is False
        with g:
            assert modes.is_grad_enabled() is False
        assert modes.is_grad_enabled() is True
        with g:
            assert modes.is_grad_enabled() is False
        assert modes.is_grad_enabled() is True
    finally:
        modes.set_grad_enabled(True)


def _reentered_set_grad_enabled_in_inference_mode(L: Any) -> tuple[bool, bool, bool]:
    """A set_grad_enabled(True) object built outside inference mode, entered and exited
    inside it: the exit restores grad mode (to the construction-time value) and nothing
    else, so inference mode and its key sets stay."""
    g = L.set_grad_enabled(True)
    with L.inference_mode():
        keys = L.keys()
        with g:
            pass
        return (L.is_grad_enabled(), L.is_inference_mode_enabled(), L.keys() == keys)


def _non_lifo_exit(L: Any) -> tuple[tuple[bool, bool], tuple[bool, bool]]:
    """no_grad entered, then inference_mode entered, then no_grad exited first: the
    no_grad exit restores grad mode only; inference mode is still on."""
    ng = L.no_grad()
    ng.__enter__()
    im = L.inference_mode()
    im.__enter__()
    try:
        ng.__exit__(None, None, None)
        after_ng = (L.is_grad_enabled(), L.is_inference_mode_enabled())
    finally:
        im.__exit__(None, None, None)
    after_im = (L.is_grad_enabled(), L.is_inference_mode_enabled())
    L.set_grad_enabled(True)
    return after_ng, after_im


GRAD_ONLY_SCENARIOS = {
    "reentered_set_grad_enabled_in_inference_mode": (
        _reentered_set_grad_enabled_in_inference_mode,
        (True, True, True),
    ),
    "non_lifo_exit": (_non_lifo_exit, ((True, True), (False, False))),
}


@pytest.mark.parametrize("case", sorted(GRAD_ONLY_SCENARIOS))
def test_grad_guard_exit_restores_grad_mode_only(case: str) -> None:
    fn, expected = GRAD_ONLY_SCENARIOS[case]
    try:
        assert fn(DS) == expected
    finally:
        # leave the thread as found even when the library under test does not
        from dispatch.tls import state as tls

        tls.included = dispatch.default_included_set.raw
        tls.excluded = dispatch.default_excluded_set.raw
        tls.grad_mode, tls.inference_mode = True, False


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(GRAD_ONLY_SCENARIOS))
def test_grad_guard_exit_restores_grad_mode_only_matches_torch(case: str) -> None:
    fn, expected = GRAD_ONLY_SCENARIOS[case]
    assert fn(_torch_lib()) == expected


def test_with_target_is_none() -> None:
    """torch's grad-mode context managers return None from __enter__ (`with ... as g`).
    (Only torch's Python names; NoGradGuard/AutoGradMode are C++ RAII guards there.)"""
    for factory in (
        modes.no_grad,
        modes.enable_grad,
        lambda: modes.set_grad_enabled(False),
        lambda: modes.set_grad_enabled(True),
    ):
        with factory() as g:
            assert g is None, factory


@pytest.mark.oracle
def test_with_target_is_none_in_torch() -> None:
    torch = pytest.importorskip("torch")
    for factory in (
        torch.no_grad,
        torch.enable_grad,
        lambda: torch.set_grad_enabled(False),
        lambda: torch.set_grad_enabled(True),
    ):
        with factory() as g:
            assert g is None


# ---------------------------------------------------------------------------------------------
# set_grad_enabled as a plain call
# ---------------------------------------------------------------------------------------------
def test_set_grad_enabled_takes_effect_when_called() -> None:
    x = dispatch.ones(2, requires_grad=True)
    try:
        modes.set_grad_enabled(False)
        assert modes.is_grad_enabled() is False
        assert facts(x * 2) == (False, True, None)
        assert state()[:2] == DEFAULT_STATE[:2]
        modes.set_grad_enabled(True)
        assert modes.is_grad_enabled() is True
        assert facts(x * 2) == (True, False, "MulBackward0")
    finally:
        modes.set_grad_enabled(True)
    assert state() == DEFAULT_STATE


def test_set_grad_enabled_call_inside_block_lasts_until_block_exit() -> None:
    with modes.no_grad():
        modes.set_grad_enabled(True)
        assert modes.is_grad_enabled() is True
    assert modes.is_grad_enabled() is True
    with modes.enable_grad():
        modes.set_grad_enabled(False)
        assert modes.is_grad_enabled() is False
    assert modes.is_grad_enabled() is True


@pytest.mark.parametrize("value", ["yes", 1, 0, None])
def test_set_grad_enabled_requires_a_bool(value: Any) -> None:
    """torch: ``set_grad_enabled(): argument 'enabled' (position 1) must be bool, not int``."""
    try:
        with pytest.raises(TypeError, match="must be bool"):
            modes.set_grad_enabled(value)
    finally:
        modes.set_grad_enabled(True)


@pytest.mark.oracle
@pytest.mark.parametrize("value", ["yes", 1, 0, None])
def test_set_grad_enabled_requires_a_bool_in_torch(value: Any) -> None:
    torch = pytest.importorskip("torch")
    try:
        with pytest.raises(TypeError, match="must be bool"):
            torch.set_grad_enabled(value)
    finally:
        torch.set_grad_enabled(True)


# ---------------------------------------------------------------------------------------------
# decorators
# ---------------------------------------------------------------------------------------------
def _decorated(kind: str) -> Callable[..., Any]:
    def probe(x: Any) -> tuple[bool, Any]:
        """doc of probe"""
        return modes.is_grad_enabled(), x * 2

    return DECORATORS[kind]()(probe)


# decorator factories: set_grad_enabled acts when constructed, so build only the one used
DECORATORS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "@no_grad": lambda: modes.no_grad,
    "@no_grad()": lambda: modes.no_grad(),
    "@enable_grad": lambda: modes.enable_grad,
    "@enable_grad()": lambda: modes.enable_grad(),
    "@set_grad_enabled(False)": lambda: modes.set_grad_enabled(False),
    "@set_grad_enabled(True)": lambda: modes.set_grad_enabled(True),
}
DECORATED = {
    "@no_grad": False,
    "@no_grad()": False,
    "@enable_grad": True,
    "@enable_grad()": True,
    "@set_grad_enabled(False)": False,
    "@set_grad_enabled(True)": True,
}


@pytest.mark.parametrize("kind", sorted(DECORATED))
@pytest.mark.parametrize("outer", [True, False])
def test_decorator(kind: str, outer: bool) -> None:
    enabled = DECORATED[kind]
    with modes.AutoGradMode(outer):
        f = _decorated(kind)
        # decorating changes nothing (set_grad_enabled's constructor effect is undone)
        assert modes.is_grad_enabled() is outer
        for _ in range(2):  # every call runs in a fresh guard
            inside, y = f(dispatch.ones(2, requires_grad=True))
            assert inside is enabled
            assert y.requires_grad is enabled
            assert (y.grad_fn is not None) is enabled
            assert modes.is_grad_enabled() is outer
    assert f.__name__ == "probe"
    assert f.__doc__ == "doc of probe"
    assert state() == DEFAULT_STATE


@pytest.mark.parametrize("kind", sorted(DECORATED))
def test_decorator_restores_on_exception(kind: str) -> None:
    def boom() -> None:
        raise KeyError("boom")

    f = DECORATORS[kind]()(boom)
    assert modes.is_grad_enabled() is True
    for outer in (True, False):
        with modes.AutoGradMode(outer):
            with pytest.raises(KeyError, match="boom"):
                f()
            assert modes.is_grad_enabled() is outer


def test_no_grad() -> None:
    """test/test_autograd.py::TestAutograd::test_no_grad"""
    x = dispatch.ones(5, 5, requires_grad=True)
    y = dispatch.ones(5, 5) * 4
    with modes.no_grad():
        w = x + y

    def adder(x: Any, y: Any) -> Any:
        return x + y

    adders = [modes.no_grad()(adder), modes.no_grad(adder)]

    for adder in adders:
        z = adder(x, y)

        assert not w.requires_grad
        with pytest.raises(RuntimeError):
            w.backward(dispatch.ones(5, 5))
        assert w.grad_fn is None
        assert not z.requires_grad
        with pytest.raises(RuntimeError):
            z.backward(dispatch.ones(5, 5))
        assert z.grad_fn is None

    # test nested decorator and with-statement on no_grad
    with modes.no_grad():
        assert not modes.is_grad_enabled()
        w = adder(x, y)
        assert not modes.is_grad_enabled()


def test_enable_grad_decorator_no_paren() -> None:
    """test/test_autograd.py::TestAutograd::test_enable_grad_decorator_no_paren"""
    x = dispatch.ones(1, requires_grad=True)

    @modes.enable_grad
    def doubler(x: Any) -> Any:
        return x * 2

    with modes.no_grad():
        z = doubler(x)
    assert z.requires_grad


def test_set_grad_enabled_wraps() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_enabled_wraps"""
    for decorator in [True, False]:
        with modes.enable_grad():
            assert modes.is_grad_enabled()

            if decorator:
                # This should not mutate the global grad mode!
                @modes.set_grad_enabled(False)
                def inner_func(x: Any) -> Any:
                    return x.sin()

            else:

                def inner_func(x: Any) -> Any:
                    return x.sin()

                # This is non-idiomatic usage!
                # More idiomatic usage: torch.set_grad_enabled(False)(inner_func)
                obj = modes.set_grad_enabled(False)
                assert not modes.is_grad_enabled()

                # this will consume the set_grad_enabled global mutation!
                inner_func = obj(inner_func)
                assert modes.is_grad_enabled()

            assert modes.is_grad_enabled()

            x = dispatch.zeros(1, requires_grad=True)
            assert not inner_func(x).requires_grad


def test_set_grad_generator_functions_recursive() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_generator_functions_recursive"""

    # enable_grad_decorator_recursive and no_grad_decorator_recursive call each other
    # recursively, to ensure that the decorators preserve the caller's setting
    @modes.enable_grad()
    def enable_grad_decorator_recursive(depth: int) -> None:
        assert modes.is_grad_enabled()
        if depth > 0:
            no_grad_decorator_recursive(depth - 1)
            assert modes.is_grad_enabled()

    @modes.no_grad()
    def no_grad_decorator_recursive(depth: int) -> None:
        assert not modes.is_grad_enabled()
        if depth > 0:
            enable_grad_decorator_recursive(depth - 1)
            assert not modes.is_grad_enabled()

    # enable_grad_context_manager_recursive and no_grad_context_manager_recursive call
    # each other recursively, to ensure that the decorators preserve the caller's setting
    def enable_grad_context_manager_recursive(depth: int) -> None:
        with modes.enable_grad():
            assert modes.is_grad_enabled()
            if depth > 0:
                no_grad_context_manager_recursive(depth - 1)
                assert modes.is_grad_enabled()

    def no_grad_context_manager_recursive(depth: int) -> None:
        with modes.no_grad():
            assert not modes.is_grad_enabled()
            if depth > 0:
                enable_grad_context_manager_recursive(depth - 1)
                assert not modes.is_grad_enabled()

    with modes.enable_grad():
        assert modes.is_grad_enabled()
        enable_grad_decorator_recursive(10)
        assert modes.is_grad_enabled()
        enable_grad_context_manager_recursive(10)
        assert modes.is_grad_enabled()

    with modes.no_grad():
        assert not modes.is_grad_enabled()
        enable_grad_decorator_recursive(10)
        assert not modes.is_grad_enabled()
        enable_grad_context_manager_recursive(10)
        assert not modes.is_grad_enabled()


def _decorate_class(L: Any) -> tuple[list[type], bool, bool]:
    """Decorating a class: torch warns (FutureWarning) and wraps the constructor."""

    class C:
        def __init__(self) -> None:
            self.grad = L.is_grad_enabled()

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        D = L.no_grad()(C)
    obj = D()
    return [x.category for x in w], obj.grad, L.is_grad_enabled()


def test_decorating_a_class_warns_and_wraps_the_constructor() -> None:
    assert _decorate_class(DS) == ([FutureWarning], False, True)


@pytest.mark.oracle
def test_decorating_a_class_warns_and_wraps_the_constructor_in_torch() -> None:
    assert _decorate_class(_torch_lib()) == ([FutureWarning], False, True)


# ---------------------------------------------------------------------------------------------
# generator functions: the mode applies inside the body, not between yields
# ---------------------------------------------------------------------------------------------
def _generator_trace(L: Any) -> list[tuple[Any, ...]]:
    trace: list[tuple[Any, ...]] = []

    @L.no_grad()
    def gen() -> Iterator[int]:
        trace.append(("body-start", L.is_grad_enabled()))
        for i in range(2):
            r = yield i
            trace.append(("after-yield", r, L.is_grad_enabled()))
        return "done"  # type: ignore[return-value]

    with L.enable_grad():
        g = gen()
        trace.append(("created", L.is_grad_enabled()))
        trace.append(("first", next(g), L.is_grad_enabled()))
        trace.append(("send", g.send("a"), L.is_grad_enabled()))
        try:
            g.send("b")
        except StopIteration as e:
            trace.append(("stop", e.value, L.is_grad_enabled()))
    return trace


GENERATOR_TRACE = [
    ("created", True),
    ("body-start", False),
    ("first", 0, True),
    ("after-yield", "a", False),
    ("send", 1, True),
    ("after-yield", "b", False),
    ("stop", "done", True),
]


def test_generator_mode_inside_body_not_between_yields() -> None:
    assert _generator_trace(DS) == GENERATOR_TRACE


@pytest.mark.oracle
def test_generator_mode_inside_body_not_between_yields_matches_torch() -> None:
    assert _generator_trace(_torch_lib()) == GENERATOR_TRACE


@pytest.mark.parametrize("kind", ["@no_grad", "@set_grad_enabled(False)", "@enable_grad"])
def test_generator_return_value_and_yield_from(kind: str) -> None:
    deco = DECORATORS[kind]()
    enabled = kind == "@enable_grad"

    @deco
    def inner() -> Iterator[bool]:
        yield modes.is_grad_enabled()
        return "result"  # type: ignore[return-value]

    def outer() -> Iterator[Any]:
        r = yield from inner()
        yield r

    with modes.AutoGradMode(not enabled):
        assert list(outer()) == [enabled, "result"]
        assert modes.is_grad_enabled() is (not enabled)


def test_set_grad_generator_functions() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_generator_functions"""

    @modes.no_grad()
    def gen_no_grad() -> Iterator[int]:
        for i in range(10):
            assert modes.is_grad_enabled() is False
            yield i

    with modes.enable_grad():
        for _ in gen_no_grad():
            assert modes.is_grad_enabled() is True

    @modes.enable_grad()
    def gen_enable_grad() -> Iterator[int]:
        for i in range(10):
            assert modes.is_grad_enabled() is True
            yield i

    with modes.no_grad():
        for _ in gen_enable_grad():
            assert modes.is_grad_enabled() is False


def test_set_grad_coroutines() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_coroutines"""

    @modes.no_grad()
    def coro_no_grad(n: int = 10) -> Iterator[int]:
        assert not modes.is_grad_enabled()
        for i in range(n):
            assert not modes.is_grad_enabled()
            r = yield i
            assert not modes.is_grad_enabled()
            assert i == r
        assert not modes.is_grad_enabled()

    @modes.enable_grad()
    def coro_enable_grad(n: int = 10) -> Iterator[int]:
        assert modes.is_grad_enabled()
        for i in range(n):
            assert modes.is_grad_enabled()
            r = yield i
            assert modes.is_grad_enabled()
            assert i == r
        assert modes.is_grad_enabled()

    sent = 0
    with modes.enable_grad():
        assert modes.is_grad_enabled()
        coro, r = coro_no_grad(), None
        try:
            while True:
                assert modes.is_grad_enabled()
                r = coro.send(r)  # type: ignore[arg-type]
                sent += 1
                assert modes.is_grad_enabled()
        except StopIteration:
            pass

    with modes.no_grad():
        assert not modes.is_grad_enabled()
        coro, r = coro_enable_grad(), None
        try:
            while True:
                assert not modes.is_grad_enabled()
                r = coro.send(r)  # type: ignore[arg-type]
                sent += 1
                assert not modes.is_grad_enabled()
        except StopIteration:
            pass
    assert sent == 20


def test_set_grad_coroutines_benign_exceptions() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_coroutines_benign_exceptions"""

    class RecoverableException(Exception):
        pass

    @modes.no_grad()
    def coro_no_grad(n: int = 10) -> Iterator[int]:
        has_raised = False
        for i in range(n):
            try:
                assert not modes.is_grad_enabled()
                yield (-i if has_raised else i)

            except RecoverableException:
                assert not modes.is_grad_enabled()
                has_raised = True

    @modes.enable_grad()
    def coro_enable_grad(n: int = 10) -> Iterator[int]:
        has_raised = False
        for i in range(n):
            try:
                assert modes.is_grad_enabled()
                yield (-i if has_raised else i)

            except RecoverableException:
                assert modes.is_grad_enabled()
                has_raised = True

    thrown = 0
    with modes.enable_grad():
        coro = coro_no_grad()
        assert next(coro) == 0
        try:
            while True:
                r = coro.throw(RecoverableException)
                thrown += 1
                assert r < 0
                assert modes.is_grad_enabled()
        except StopIteration:
            pass

    with modes.no_grad():
        coro = coro_enable_grad()
        assert next(coro) == 0
        try:
            while True:
                r = coro.throw(RecoverableException)
                thrown += 1
                assert r < 0
                assert not modes.is_grad_enabled()
        except StopIteration:
            pass
    assert thrown == 18


def test_set_grad_coroutines_critical_exceptions() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_coroutines_critical_exceptions"""

    class UnrecoverableException(Exception):
        pass

    class SecondaryException(Exception):
        pass

    @modes.no_grad()
    def coro_no_grad(n: int = 10) -> Iterator[int]:
        for i in range(n):
            try:
                assert not modes.is_grad_enabled()
                yield i

            except UnrecoverableException:
                assert not modes.is_grad_enabled()
                raise SecondaryException from None

    @modes.enable_grad()
    def coro_enable_grad(n: int = 10) -> Iterator[int]:
        for i in range(n):
            try:
                assert modes.is_grad_enabled()
                yield i

            except UnrecoverableException:
                assert modes.is_grad_enabled()
                raise SecondaryException from None

    with modes.enable_grad():
        coro = coro_no_grad()
        assert next(coro) == 0
        with pytest.raises(SecondaryException):
            coro.throw(UnrecoverableException)
        assert modes.is_grad_enabled()

    with modes.no_grad():
        coro = coro_enable_grad()
        assert next(coro) == 0
        with pytest.raises(SecondaryException):
            coro.throw(UnrecoverableException)
        assert not modes.is_grad_enabled()


def test_set_grad_coroutines_exit() -> None:
    """test/test_autograd.py::TestAutograd::test_set_grad_coroutines_exit"""

    @modes.no_grad()
    def coro_no_grad(state: set[str]) -> Iterator[int]:
        for i in range(10):
            try:
                assert not modes.is_grad_enabled()
                yield i

            except GeneratorExit:
                assert not modes.is_grad_enabled()
                state.add("GeneratorExit")
                raise

    @modes.enable_grad()
    def coro_enable_grad(state: set[str]) -> Iterator[int]:
        for i in range(10):
            try:
                assert modes.is_grad_enabled()
                yield i

            except GeneratorExit:
                assert modes.is_grad_enabled()
                state.add("GeneratorExit")
                raise

    state: set[str] = set()
    with modes.enable_grad():
        coro = coro_no_grad(state)
        for _ in range(5):
            next(coro)

        coro.close()
        assert modes.is_grad_enabled()
    assert "GeneratorExit" in state

    state = set()
    with modes.no_grad():
        coro = coro_enable_grad(state)
        for _ in range(5):
            next(coro)

        coro.close()
        assert not modes.is_grad_enabled()
    assert "GeneratorExit" in state


# ---------------------------------------------------------------------------------------------
# threads: grad mode is thread-local, and a new thread starts from the defaults
# ---------------------------------------------------------------------------------------------
def _run_in_thread(fn: Callable[[], Any]) -> Any:
    out: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


@pytest.mark.parametrize("name", [*sorted(OFF), "inference_mode"])
def test_new_thread_starts_with_grad_mode_on(name: str) -> None:
    factory = OFF.get(name, modes.inference_mode)
    with factory():
        assert modes.is_grad_enabled() is False
        seen = _run_in_thread(state)
        assert modes.is_grad_enabled() is False
    assert seen == DEFAULT_STATE


def test_grad_mode_in_one_thread_does_not_leak_into_another() -> None:
    entered, checked, done = threading.Event(), threading.Event(), threading.Event()
    worker_seen: list[bool] = []

    def worker() -> None:
        with modes.no_grad():
            worker_seen.append(modes.is_grad_enabled())
            entered.set()
            checked.wait(5)
            worker_seen.append(modes.is_grad_enabled())
        modes.set_grad_enabled(False)  # a bare call in the worker: its own state only
        worker_seen.append(modes.is_grad_enabled())
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(5)
    main_during = modes.is_grad_enabled()
    x = dispatch.ones(2, requires_grad=True)
    y = x * 2
    checked.set()
    assert done.wait(5)
    t.join()
    assert main_during is True
    assert facts(y) == (True, False, "MulBackward0")
    assert worker_seen == [False, False, False]
    assert state() == DEFAULT_STATE


def _thread_start_state(L: Any) -> list[bool]:
    seen = []
    for ctx in (L.no_grad, lambda: L.set_grad_enabled(False), L.inference_mode):
        with ctx():
            seen.extend(
                _run_in_thread(lambda: [L.is_grad_enabled(), L.is_inference_mode_enabled()])
            )
    return seen


def test_thread_start_state() -> None:
    assert _thread_start_state(DS) == [True, False] * 3


@pytest.mark.oracle
def test_thread_start_state_matches_torch() -> None:
    assert _thread_start_state(_torch_lib()) == [True, False] * 3


# ---------------------------------------------------------------------------------------------
# what grad mode decides: grad_fn recording and requires_grad propagation
# ---------------------------------------------------------------------------------------------
FUNCTIONAL = (False, True, None)
VIEW_OF_RG = (True, True, None)  # reference (f).6: rg reported from the base, leaf, no grad_fn

NO_GRAD_OPS: dict[str, tuple[Callable[[Any], Any], tuple[bool, bool, str | None]]] = {
    "add": (lambda x: x + x, FUNCTIONAL),
    "sub": (lambda x: x - 1, FUNCTIONAL),
    "mul": (lambda x: x * 3, FUNCTIONAL),
    "div": (lambda x: x / 2, FUNCTIONAL),
    "neg": (lambda x: -x, FUNCTIONAL),
    "pow": (lambda x: x**2, FUNCTIONAL),
    "exp": (lambda x: x.exp(), FUNCTIONAL),
    "log": (lambda x: x.log(), FUNCTIONAL),
    "sin": (lambda x: x.sin(), FUNCTIONAL),
    "tanh": (lambda x: x.tanh(), FUNCTIONAL),
    "sigmoid": (lambda x: x.sigmoid(), FUNCTIONAL),
    "relu": (lambda x: x.relu(), FUNCTIONAL),
    "sum": (lambda x: x.sum(), FUNCTIONAL),
    "sum_dim": (lambda x: x.sum(1, keepdim=True), FUNCTIONAL),
    "mean": (lambda x: x.mean(), FUNCTIONAL),
    "matmul": (lambda x: x @ x.t(), FUNCTIONAL),
    "clone": (lambda x: x.clone(), FUNCTIONAL),
    "to_double": (lambda x: x.double(), FUNCTIONAL),
    "detach": (lambda x: x.detach(), FUNCTIONAL),
    "view": (lambda x: x.view(-1), VIEW_OF_RG),
    "reshape": (lambda x: x.reshape(6), VIEW_OF_RG),
    "view_as": (lambda x: x.view_as(x), VIEW_OF_RG),
    "t": (lambda x: x.t(), VIEW_OF_RG),
    "transpose": (lambda x: x.transpose(0, 1), VIEW_OF_RG),
    "permute": (lambda x: x.permute(1, 0), VIEW_OF_RG),
    "unsqueeze": (lambda x: x.unsqueeze(0), VIEW_OF_RG),
    "expand": (lambda x: x.unsqueeze(0).expand(2, 2, 3), VIEW_OF_RG),
    "narrow": (lambda x: x.narrow(1, 0, 2), VIEW_OF_RG),
    "select": (lambda x: x.select(0, 1), VIEW_OF_RG),
    "getitem_int": (lambda x: x[0], VIEW_OF_RG),
    "getitem_slice": (lambda x: x[:, 1:], VIEW_OF_RG),
    "unbind": (lambda x: x.unbind()[0], VIEW_OF_RG),
    "split": (lambda x: x.split(1)[1], VIEW_OF_RG),
    "chunk": (lambda x: x.chunk(2)[0], VIEW_OF_RG),
}


def _no_grad_op(L: Any, name: str) -> tuple[tuple[bool, bool, str | None], bool]:
    fn, _ = NO_GRAD_OPS[name]
    x = L.ones(2, 3, requires_grad=True)
    with L.no_grad():
        out = fn(x)
    return facts(out), facts(fn(x))[2] is not None


@pytest.mark.parametrize("name", sorted(NO_GRAD_OPS))
def test_no_grad_records_no_grad_fn(name: str) -> None:
    """In no_grad no op records a grad_fn; functional results do not require grad, views
    of a tensor that requires grad report requires_grad=True and is_leaf=True. The same
    op outside no_grad does record one (the test can fail)."""
    got, records_outside = _no_grad_op(DS, name)
    assert got == NO_GRAD_OPS[name][1]
    assert records_outside is (name != "detach")


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(NO_GRAD_OPS))
def test_no_grad_records_no_grad_fn_matches_torch(name: str) -> None:
    got, records_outside = _no_grad_op(_torch_lib(), name)
    assert got == NO_GRAD_OPS[name][1]
    assert records_outside is (name != "detach")


def _p_rg_times_plain(L: Any) -> Any:
    return facts(L.ones(2, requires_grad=True) * L.ones(2))


def _p_plain_times_plain(L: Any) -> Any:
    return facts(L.ones(2) * L.ones(2))


def _p_in_no_grad(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.no_grad():
        return facts(x * L.ones(2))


def _p_factory_requires_grad_in_no_grad(L: Any) -> Any:
    with L.no_grad():
        return facts(L.ones(2, requires_grad=True))


def _p_enable_grad_inside_no_grad(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.no_grad(), L.enable_grad():
        return facts(x * 2)


def _p_bare_set_grad_enabled(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    try:
        L.set_grad_enabled(False)
        return facts(x * 2)
    finally:
        L.set_grad_enabled(True)


def _p_detach(L: Any) -> Any:
    return facts((L.ones(2, requires_grad=True) * 2).detach())


def _p_clone_in_no_grad(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.no_grad():
        return facts(x.clone())


def _p_inplace_rg_operand_on_plain_leaf(L: Any) -> Any:
    a = L.ones(2)
    a.add_(L.ones(2, requires_grad=True))
    return facts(a)


def _p_inplace_rg_operand_on_view_of_plain_leaf(L: Any) -> Any:
    a = L.ones(2, 2)
    a[1].mul_(L.ones(2, requires_grad=True))
    return facts(a)


def _p_inplace_rg_operand_in_no_grad(L: Any) -> Any:
    a = L.ones(2)
    with L.no_grad():
        a.add_(L.ones(2, requires_grad=True))
    return facts(a)


def _p_inplace_on_rg_leaf_in_no_grad(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.no_grad():
        x.mul_(2)
    return (*facts(x), x._version)


def _p_inplace_on_nonleaf_in_no_grad(L: Any) -> Any:
    y = L.ones(2, requires_grad=True).clone()
    with L.no_grad():
        y.add_(1)
    return (*facts(y), y._version)


def _p_comparison(L: Any) -> Any:
    return facts(L.ones(2, requires_grad=True) > 0)


def _p_integer_cast(L: Any) -> Any:
    return facts(L.ones(2, requires_grad=True).long())


def _p_requires_grad_then_op(L: Any) -> Any:
    a = L.ones(2)
    a.requires_grad_()
    return facts(a.sum())


def _p_inference_mode(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.inference_mode():
        return facts(x * 2)


def _p_enable_grad_inside_inference_mode(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    with L.inference_mode(), L.enable_grad():
        return (L.is_grad_enabled(), *facts(x * 2))


def _p_out_in_no_grad(L: Any) -> Any:
    """test/test_autograd.py::TestAutograd::test_mul_out: out= refuses inputs that require
    grad, except in no_grad."""
    a = L.ones(2, requires_grad=True)
    out = L.zeros(2)
    with pytest.raises(RuntimeError, match="out=") as info:
        L.mul(a, a, out=out)
    with L.no_grad():
        L.mul(a, a * 3, out=out)
    return (*facts(out), out.tolist(), str(info.value))


def _p_backward_in_no_grad(L: Any) -> Any:
    x = L.ones(2, requires_grad=True)
    s = (x * x).sum()
    with L.no_grad():
        s.backward(retain_graph=True)
        after_backward = L.is_grad_enabled()
        (g,) = L.grad(s, x, create_graph=True)
        after_grad = L.is_grad_enabled()
    return x.grad.tolist(), after_backward, after_grad, g.grad_fn is not None


PROPAGATION: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "rg_times_plain": (_p_rg_times_plain, (True, False, "MulBackward0")),
    "plain_times_plain": (_p_plain_times_plain, (False, True, None)),
    "in_no_grad": (_p_in_no_grad, (False, True, None)),
    "factory_requires_grad_in_no_grad": (_p_factory_requires_grad_in_no_grad, (True, True, None)),
    "enable_grad_inside_no_grad": (_p_enable_grad_inside_no_grad, (True, False, "MulBackward0")),
    "bare_set_grad_enabled": (_p_bare_set_grad_enabled, (False, True, None)),
    "detach": (_p_detach, (False, True, None)),
    "clone_in_no_grad": (_p_clone_in_no_grad, (False, True, None)),
    "inplace_rg_operand_on_plain_leaf": (
        _p_inplace_rg_operand_on_plain_leaf,
        (True, False, "AddBackward0"),
    ),
    "inplace_rg_operand_on_view_of_plain_leaf": (
        _p_inplace_rg_operand_on_view_of_plain_leaf,
        (True, False, "torch::autograd::CopySlices"),
    ),
    "inplace_rg_operand_in_no_grad": (_p_inplace_rg_operand_in_no_grad, (False, True, None)),
    "inplace_on_rg_leaf_in_no_grad": (_p_inplace_on_rg_leaf_in_no_grad, (True, True, None, 1)),
    "inplace_on_nonleaf_in_no_grad": (
        _p_inplace_on_nonleaf_in_no_grad,
        (True, False, "CloneBackward0", 1),
    ),
    "comparison": (_p_comparison, (False, True, None)),
    "integer_cast": (_p_integer_cast, (False, True, None)),
    "requires_grad_then_op": (_p_requires_grad_then_op, (True, False, "SumBackward0")),
    "inference_mode": (_p_inference_mode, (False, True, None)),
    "enable_grad_inside_inference_mode": (
        _p_enable_grad_inside_inference_mode,
        (True, False, True, None),
    ),
    "out_in_no_grad": (
        _p_out_in_no_grad,
        (
            False,
            True,
            None,
            [3.0, 3.0],
            "mul(): functions with out=... arguments don't support automatic differentiation, "
            "but one of the arguments requires grad.",
        ),
    ),
    "backward_in_no_grad": (_p_backward_in_no_grad, ([2.0, 2.0], False, False, True)),
}


@pytest.mark.parametrize("case", sorted(PROPAGATION))
def test_requires_grad_propagation(case: str) -> None:
    fn, expected = PROPAGATION[case]
    assert fn(DS) == expected
    assert state() == DEFAULT_STATE


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(PROPAGATION))
def test_requires_grad_propagation_matches_torch(case: str) -> None:
    fn, expected = PROPAGATION[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's create_graph reference-cycle warning
        assert fn(_torch_lib()) == expected


def test_grad_mode_is_off_while_backward_runs_and_restored_after() -> None:
    """The engine runs nodes with grad mode = create_graph and restores the caller's mode."""
    seen: list[bool] = []
    x = dispatch.ones(2, requires_grad=True)
    y = x * 2
    y.grad_fn.register_hook(lambda gi, go: seen.append(modes.is_grad_enabled()))
    y.sum().backward(retain_graph=True)
    y.sum().backward(create_graph=True)
    assert seen == [False, True]
    assert modes.is_grad_enabled() is True


@functools.cache
def _all_test_names() -> frozenset[str]:
    return frozenset(k for k in globals() if k.startswith("test_"))


def test_cited_upstream_tests_exist_here() -> None:
    """The upstream grad-mode tests this file ports, by name."""
    for name in (
        "test_no_grad",
        "test_enable_grad_decorator_no_paren",
        "test_set_grad_enabled_wraps",
        "test_set_grad_generator_functions",
        "test_set_grad_generator_functions_recursive",
        "test_set_grad_coroutines",
        "test_set_grad_coroutines_benign_exceptions",
        "test_set_grad_coroutines_critical_exceptions",
        "test_set_grad_coroutines_exit",
    ):
        assert name in _all_test_names()
        assert f"TestAutograd::{name}" in globals()[name].__doc__
