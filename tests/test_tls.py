"""Thread-local dispatch state: defaults, per-thread isolation, and each guard's TLS edit
(design.md's table; reference (b)) with exact restore on exit, exceptions included."""

from __future__ import annotations

import contextlib
import threading
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dispatch
import modes
from dispatch.keys import AUTOGRAD_KEYS

K = dispatch.DispatchKey
KS = dispatch.DispatchKeySet
AG = frozenset(AUTOGRAD_KEYS)
ADIOV = K.ADInplaceOrView
DEFAULT_INCLUDED = frozenset({K.BackendSelect, ADIOV})


def state() -> tuple[frozenset, frozenset, bool, bool]:
    """(included, excluded, grad mode, inference mode) as plain values."""
    inc, exc = dispatch.tls_local_dispatch_key_set()
    return (
        frozenset(inc),
        frozenset(exc),
        modes.is_grad_enabled(),
        modes.is_inference_mode_enabled(),
    )


DEFAULT_STATE = (DEFAULT_INCLUDED, frozenset(), True, False)


# -- defaults -------------------------------------------------------------------------------


def test_defaults():
    assert state() == DEFAULT_STATE
    inc, exc = dispatch.tls_local_dispatch_key_set()
    assert inc == KS(K.BackendSelect, K.ADInplaceOrView)
    assert exc == KS()
    assert inc == dispatch.default_included_set
    assert exc == dispatch.default_excluded_set


def test_tls_local_dispatch_key_set_is_a_named_pair():
    pair = dispatch.tls_local_dispatch_key_set()
    assert isinstance(pair, dispatch.LocalDispatchKeySet)
    assert isinstance(pair, tuple)
    assert len(pair) == 2
    assert pair.included is pair[0]
    assert pair.excluded is pair[1]
    assert isinstance(pair.included, KS)
    assert isinstance(pair.excluded, KS)
    assert pair._fields == ("included", "excluded")


def test_tls_local_dispatch_key_set_is_a_snapshot():
    before = dispatch.tls_local_dispatch_key_set()
    with modes.inference_mode():
        inside = dispatch.tls_local_dispatch_key_set()
    assert before.included == KS(K.BackendSelect, K.ADInplaceOrView)
    assert inside.included == KS(K.BackendSelect)
    assert inside.excluded == dispatch.autograd_dispatch_keyset


def _state_in_new_thread() -> tuple:
    out: list = []
    errors: list = []

    def run() -> None:
        try:
            out.append(state())
            # and the child's guards do not leak into the parent
            g = modes.InferenceMode()
            g.__enter__()  # left entered on purpose: the thread dies with it
            out.append(state())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not errors, errors
    return tuple(out)


@pytest.mark.parametrize(
    "make_guard",
    [
        lambda: modes.inference_mode(),
        lambda: modes.no_grad(),
        lambda: modes.AutoDispatchBelowADInplaceOrView(),
        lambda: modes.IncludeDispatchKeyGuard(KS(K.Python)),
        lambda: modes.ExcludeDispatchKeyGuard(KS(K.CPU)),
    ],
    ids=["inference_mode", "no_grad", "below_adiov", "include_python", "exclude_cpu"],
)
def test_new_thread_starts_at_defaults(make_guard):
    with make_guard():
        parent_inside = state()
        assert parent_inside != DEFAULT_STATE
        child_start, child_after = _state_in_new_thread()
        # the parent's state is untouched by the child
        assert state() == parent_inside
    assert child_start == DEFAULT_STATE
    assert child_after[3] is True  # the child's InferenceMode took effect in the child only
    assert state() == DEFAULT_STATE


def test_thread_inside_nested_inference_mode():
    with modes.no_grad(), modes.inference_mode(), modes.ExcludeDispatchKeyGuard(KS(K.Python)):
        child_start, _ = _state_in_new_thread()
    assert child_start == DEFAULT_STATE


# -- each guard's edit ----------------------------------------------------------------------


def test_no_grad_guard():
    with modes.NoGradGuard():
        assert state() == (DEFAULT_INCLUDED, frozenset(), False, False)
    assert state() == DEFAULT_STATE


def test_no_grad():
    with modes.no_grad():
        assert state() == (DEFAULT_INCLUDED, frozenset(), False, False)
        with modes.enable_grad():
            assert state() == DEFAULT_STATE
        assert state() == (DEFAULT_INCLUDED, frozenset(), False, False)
    assert state() == DEFAULT_STATE


def test_enable_grad_changes_only_grad_mode():
    with modes.inference_mode():
        with modes.enable_grad():
            # reference (b): IM > enable_grad -> grad on, inference on, keys unchanged
            assert state() == (frozenset({K.BackendSelect}), AG, True, True)
        assert state() == (frozenset({K.BackendSelect}), AG, False, True)


@pytest.mark.parametrize("mode", [True, False])
def test_set_grad_enabled_as_context_manager(mode):
    with modes.no_grad() if mode else contextlib.nullcontext():
        outer = state()
        with modes.set_grad_enabled(mode):
            assert state() == (outer[0], outer[1], mode, outer[3])
        assert state() == outer


def test_set_grad_enabled_takes_effect_when_called():
    prev = modes.is_grad_enabled()
    try:
        modes.set_grad_enabled(False)
        assert state() == (DEFAULT_INCLUDED, frozenset(), False, False)
        modes.set_grad_enabled(True)
        assert state() == DEFAULT_STATE
    finally:
        modes.set_grad_enabled(prev)


def test_inference_mode_true():
    for guard in (modes.InferenceMode(), modes.InferenceMode(True), modes.inference_mode()):
        with guard:
            assert state() == (frozenset({K.BackendSelect}), AG, False, True)
        assert state() == DEFAULT_STATE


def test_inference_mode_false_at_top_level_is_normal():
    for guard in (modes.InferenceMode(False), modes.inference_mode(False)):
        with guard:
            assert state() == DEFAULT_STATE
        assert state() == DEFAULT_STATE


def test_inference_mode_nested():
    im = (frozenset({K.BackendSelect}), AG, False, True)
    with modes.InferenceMode():
        assert state() == im
        with modes.InferenceMode(False):
            assert state() == DEFAULT_STATE
            with modes.InferenceMode(True):
                assert state() == im
            assert state() == DEFAULT_STATE
        assert state() == im
        with modes.no_grad():
            assert state() == im
        assert state() == im
    assert state() == DEFAULT_STATE


def test_inference_mode_false_reenables_grad_inside_no_grad():
    with modes.no_grad():
        with modes.inference_mode(False):
            assert state() == DEFAULT_STATE
        with modes.inference_mode():
            assert state() == (frozenset({K.BackendSelect}), AG, False, True)
        assert state() == (DEFAULT_INCLUDED, frozenset(), False, False)


def test_auto_dispatch_below_autograd():
    with modes.AutoDispatchBelowAutograd():
        assert state() == (DEFAULT_INCLUDED, AG, True, False)
    assert state() == DEFAULT_STATE


def test_auto_dispatch_below_adinplaceorview():
    with modes.AutoDispatchBelowADInplaceOrView():
        assert state() == (DEFAULT_INCLUDED, AG | {ADIOV}, True, False)
    assert state() == DEFAULT_STATE


def test_inference_mode_inside_below_adinplaceorview():
    with modes.AutoDispatchBelowADInplaceOrView():
        with modes.inference_mode():
            assert state() == (frozenset({K.BackendSelect}), AG | {ADIOV}, False, True)
        with modes.inference_mode(False):
            # IM(False) removes the autograd exclusion but not ADInplaceOrView's
            assert state() == (DEFAULT_INCLUDED, frozenset({ADIOV}), True, False)
        assert state() == (DEFAULT_INCLUDED, AG | {ADIOV}, True, False)


def test_below_adinplaceorview_inside_inference_mode():
    with modes.inference_mode(), modes.AutoDispatchBelowADInplaceOrView():
        assert state() == (frozenset({K.BackendSelect}), AG | {ADIOV}, False, True)


def test_auto_non_variable_type_mode_warns_and_excludes_below_adinplaceorview():
    with pytest.warns(DeprecationWarning, match="AutoNonVariableTypeMode is deprecated"):
        g = modes.AutoNonVariableTypeMode()
    assert state() == DEFAULT_STATE  # constructing it changes nothing
    with g:
        # design.md: a deprecated alias of AutoDispatchBelowADInplaceOrView (PyTorch 2.13's
        # C++ class excludes only the autograd keys; docs/divergences.md)
        assert state() == (DEFAULT_INCLUDED, AG | {ADIOV}, True, False)
    assert state() == DEFAULT_STATE


@pytest.mark.parametrize(
    "keys",
    [
        [K.CPU],
        [K.Python, K.BackendSelect],
        [K.ADInplaceOrView, K.AutogradCPU],
        list(AUTOGRAD_KEYS),
    ],
)
def test_exclude_dispatch_key_guard(keys):
    with modes.ExcludeDispatchKeyGuard(KS(keys)):
        assert state() == (DEFAULT_INCLUDED, frozenset(keys), True, False)
        with modes.ExcludeDispatchKeyGuard(KS(K.Meta)):
            assert state() == (DEFAULT_INCLUDED, frozenset(keys) | {K.Meta}, True, False)
        assert state() == (DEFAULT_INCLUDED, frozenset(keys), True, False)
    assert state() == DEFAULT_STATE


@pytest.mark.parametrize("keys", [[K.Python], [K.Meta, K.CPU], [K.BackendSelect]])
def test_include_dispatch_key_guard(keys):
    with modes.IncludeDispatchKeyGuard(KS(keys)):
        assert state() == (DEFAULT_INCLUDED | frozenset(keys), frozenset(), True, False)
    assert state() == DEFAULT_STATE


def test_guard_accepts_a_single_key():
    with modes.ExcludeDispatchKeyGuard(K.Python):
        assert state()[1] == frozenset({K.Python})
    with modes.IncludeDispatchKeyGuard(K.Python):
        assert K.Python in state()[0]
    assert state() == DEFAULT_STATE


def test_exclusion_wins_over_inclusion_in_dispatch():
    x = dispatch.ones(1)
    with (
        modes.IncludeDispatchKeyGuard(KS(K.Python)),
        modes.ExcludeDispatchKeyGuard(KS(K.Python, K.ADInplaceOrView, *AUTOGRAD_KEYS)),
        dispatch.trace() as tr,
    ):
        x.add_(1)
    # only the backend ran: Python and ADInplaceOrView were excluded despite being included
    assert tr.keys_run() == [("aten::add_.Tensor", "CPU")]
    assert x._version == 0


def test_guard_object_reusable_after_exit():
    g = modes.no_grad()
    im = modes.InferenceMode()
    for _ in range(3):
        with g:
            assert not modes.is_grad_enabled()
        assert state() == DEFAULT_STATE
        with im:
            assert modes.is_inference_mode_enabled()
        assert state() == DEFAULT_STATE


# -- restore on exit, exceptions included ---------------------------------------------------

GUARD_FACTORIES = {
    "NoGradGuard": lambda: modes.NoGradGuard(),
    "no_grad": lambda: modes.no_grad(),
    "enable_grad": lambda: modes.enable_grad(),
    "set_grad_enabled(False)": lambda: modes.set_grad_enabled(False),
    "set_grad_enabled(True)": lambda: modes.set_grad_enabled(True),
    "InferenceMode(True)": lambda: modes.InferenceMode(True),
    "InferenceMode(False)": lambda: modes.InferenceMode(False),
    "inference_mode()": lambda: modes.inference_mode(),
    "inference_mode(False)": lambda: modes.inference_mode(False),
    "AutoDispatchBelowAutograd": lambda: modes.AutoDispatchBelowAutograd(),
    "AutoDispatchBelowADInplaceOrView": lambda: modes.AutoDispatchBelowADInplaceOrView(),
    "Exclude(Python, CPU)": lambda: modes.ExcludeDispatchKeyGuard(KS(K.Python, K.CPU)),
    "Include(Python)": lambda: modes.IncludeDispatchKeyGuard(KS(K.Python)),
}

OUTER_CONTEXTS = {
    "top": contextlib.nullcontext,
    "no_grad": lambda: modes.no_grad(),
    "inference_mode": lambda: modes.inference_mode(),
    "below_adiov": lambda: modes.AutoDispatchBelowADInplaceOrView(),
    "exclude_adiov_include_meta": lambda: _both(
        modes.ExcludeDispatchKeyGuard(KS(K.ADInplaceOrView)),
        modes.IncludeDispatchKeyGuard(KS(K.Meta)),
    ),
}


@contextlib.contextmanager
def _both(a, b):
    with a, b:
        yield


class Boom(Exception):
    pass


@pytest.mark.parametrize("outer", list(OUTER_CONTEXTS))
@pytest.mark.parametrize("name", list(GUARD_FACTORIES))
def test_exact_restore_on_exception(name, outer):
    with OUTER_CONTEXTS[outer]():
        before = state()
        with pytest.raises(Boom), GUARD_FACTORIES[name]():
            inner = state()
            raise Boom
        assert state() == before
        # and on a normal exit
        with GUARD_FACTORIES[name]():
            assert state() == inner
        assert state() == before


@pytest.mark.parametrize("name", list(GUARD_FACTORIES))
def test_restore_when_a_dispatched_call_raises_inside(name):
    before = state()
    with pytest.raises(RuntimeError), GUARD_FACTORIES[name]():
        dispatch.ones(2).view(5)  # shape error raised from inside the kernels
    assert state() == before


def test_decorated_function_restores_on_exception():
    @modes.no_grad
    def f():
        assert not modes.is_grad_enabled()
        raise Boom

    @modes.inference_mode()
    def g():
        assert modes.is_inference_mode_enabled()
        raise Boom

    for fn in (f, g):
        with pytest.raises(Boom):
            fn()
        assert state() == DEFAULT_STATE


# -- model-based: random nests of guards ----------------------------------------------------


def _model_apply(m, guard):
    inc, exc, grad, inf = m
    kind, arg = guard
    if kind in ("no_grad", "NoGradGuard"):
        return inc, exc, False, inf
    if kind == "enable_grad":
        return inc, exc, True, inf
    if kind == "set_grad_enabled":
        return inc, exc, arg, inf
    if kind == "InferenceMode":
        if arg:
            return inc - {ADIOV}, exc | AG, False, True
        return inc | {ADIOV}, exc - AG, True, False
    if kind == "BelowAutograd":
        return inc, exc | AG, grad, inf
    if kind == "BelowADInplaceOrView":
        return inc, exc | AG | {ADIOV}, grad, inf
    if kind == "Exclude":
        return inc, exc | arg, grad, inf
    if kind == "Include":
        return inc | arg, exc, grad, inf
    raise AssertionError(kind)


def _make(guard):
    kind, arg = guard
    return {
        "no_grad": lambda: modes.no_grad(),
        "NoGradGuard": lambda: modes.NoGradGuard(),
        "enable_grad": lambda: modes.enable_grad(),
        "set_grad_enabled": lambda: modes.set_grad_enabled(arg),
        "InferenceMode": lambda: modes.InferenceMode(arg),
        "BelowAutograd": lambda: modes.AutoDispatchBelowAutograd(),
        "BelowADInplaceOrView": lambda: modes.AutoDispatchBelowADInplaceOrView(),
        "Exclude": lambda: modes.ExcludeDispatchKeyGuard(KS(list(arg))),
        "Include": lambda: modes.IncludeDispatchKeyGuard(KS(list(arg))),
    }[kind]()


_non_autograd_keys = st.sampled_from([K.CPU, K.Meta, K.BackendSelect, K.Python, K.ADInplaceOrView])
guards = st.one_of(
    st.tuples(st.sampled_from(["no_grad", "NoGradGuard", "enable_grad"]), st.none()),
    st.tuples(st.just("set_grad_enabled"), st.booleans()),
    st.tuples(st.just("InferenceMode"), st.booleans()),
    st.tuples(st.sampled_from(["BelowAutograd", "BelowADInplaceOrView"]), st.none()),
    st.tuples(st.just("Exclude"), st.frozensets(st.sampled_from(list(K)[1:9]), min_size=1)),
    st.tuples(st.just("Include"), st.frozensets(_non_autograd_keys, min_size=1)),
)


@given(st.lists(guards, max_size=7), st.integers(0, 7))
def test_random_guard_nests_follow_the_model(seq, raise_at):
    history = [state()]
    assert history[0] == DEFAULT_STATE
    m = history[0]
    try:
        with contextlib.ExitStack() as stack:
            for i, g in enumerate(seq):
                if i == raise_at:
                    raise Boom
                stack.enter_context(_make(g))
                m = _model_apply(m, g)
                got = state()
                assert got == m, (seq[: i + 1], got, m)
                history.append(got)
                # invariants: autograd keys never included; ADInplaceOrView only excluded by
                # a guard that says so explicitly (never by InferenceMode)
                assert not (got[0] & AG)
                if ADIOV in got[1]:
                    assert any(
                        k == "BelowADInplaceOrView" or (k == "Exclude" and ADIOV in a)
                        for k, a in seq[: i + 1]
                    )
    except Boom:
        pass
    assert state() == DEFAULT_STATE


@given(st.lists(guards, min_size=1, max_size=6))
def test_random_guard_nests_unwind_step_by_step(seq):
    stack = []
    seen = [state()]
    try:
        for g in seq:
            cm = _make(g)
            cm.__enter__()
            stack.append(cm)
            seen.append(state())
    finally:
        # unwinding visits every intermediate state in reverse
        while stack:
            stack.pop().__exit__(None, None, None)
            seen.pop()
            assert state() == seen[-1]
    assert state() == DEFAULT_STATE


# -- differential: the reference (b) states against torch -----------------------------------

# Each state is a nest of guards, outermost first; names map to (dispatchsim, torch) guards.
TLS_STATES = {
    "normal": [],
    "no_grad": ["no_grad"],
    "set_grad_enabled(False)": ["set_grad_enabled(False)"],
    "no_grad > enable_grad": ["no_grad", "enable_grad"],
    "inference_mode": ["inference_mode"],
    "IM > inference_mode(False)": ["inference_mode", "inference_mode(False)"],
    "IM > IM(False) > IM": ["inference_mode", "inference_mode(False)", "inference_mode"],
    "IM > enable_grad": ["inference_mode", "enable_grad"],
    "IM > no_grad": ["inference_mode", "no_grad"],
    "inference_mode(False) at top level": ["inference_mode(False)"],
    "no_grad > inference_mode": ["no_grad", "inference_mode"],
    "no_grad > inference_mode(False)": ["no_grad", "inference_mode(False)"],
    "_AutoDispatchBelowADInplaceOrView": ["below_adiov"],
    "_AutoDispatchBelowAutograd": ["below_autograd"],
    "IM > BelowADInplaceOrView": ["inference_mode", "below_adiov"],
    "BelowADInplaceOrView > IM": ["below_adiov", "inference_mode"],
    "BelowADInplaceOrView > IM(False)": ["below_adiov", "inference_mode(False)"],
    "BelowAutograd > IM(False)": ["below_autograd", "inference_mode(False)"],
    "no_grad > BelowAutograd > IM > enable_grad": [
        "no_grad",
        "below_autograd",
        "inference_mode",
        "enable_grad",
    ],
}


def _ds_guard(name):
    return {
        "no_grad": lambda: modes.no_grad(),
        "enable_grad": lambda: modes.enable_grad(),
        "set_grad_enabled(False)": lambda: modes.set_grad_enabled(False),
        "inference_mode": lambda: modes.inference_mode(),
        "inference_mode(False)": lambda: modes.inference_mode(False),
        "below_adiov": lambda: modes.AutoDispatchBelowADInplaceOrView(),
        "below_autograd": lambda: modes.AutoDispatchBelowAutograd(),
    }[name]()


def _torch_guard(torch, name):
    C = torch._C
    return {
        "no_grad": lambda: torch.no_grad(),
        "enable_grad": lambda: torch.enable_grad(),
        "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False),
        "inference_mode": lambda: torch.inference_mode(),
        "inference_mode(False)": lambda: torch.inference_mode(False),
        "below_adiov": lambda: C._AutoDispatchBelowADInplaceOrView(),
        "below_autograd": lambda: C._AutoDispatchBelowAutograd(),
    }[name]()


def _ds_summary():
    inc, exc = dispatch.tls_local_dispatch_key_set()
    return {
        "grad": modes.is_grad_enabled(),
        "inference": modes.is_inference_mode_enabled(),
        "BackendSelect included": K.BackendSelect in inc,
        "ADInplaceOrView included": K.ADInplaceOrView in inc,
        "ADInplaceOrView excluded": K.ADInplaceOrView in exc,
        # dispatchsim excludes all autograd keys together; never a subset
        "autograd excluded": frozenset(exc) >= AG,
        "some autograd excluded": bool(AG & frozenset(exc)),
        "autograd included": bool(AG & frozenset(inc)),
    }


def _torch_summary(torch):
    C = torch._C
    inc = C._dispatch_tls_local_include_set()
    exc = C._dispatch_tls_local_exclude_set()
    DK = C.DispatchKey
    # The TLS sets carry no backend bits, so autograd exclusion shows up as the
    # backend-less AutogradOther / AutogradFunctionality bits (reference (b), (f).8).
    ag_excluded = exc.has(DK.AutogradOther) and exc.has(DK.AutogradFunctionality)
    return {
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "BackendSelect included": inc.has(DK.BackendSelect),
        "ADInplaceOrView included": inc.has(DK.ADInplaceOrView),
        "ADInplaceOrView excluded": exc.has(DK.ADInplaceOrView),
        "autograd excluded": ag_excluded,
        "some autograd excluded": exc.has(DK.AutogradOther) or exc.has(DK.AutogradFunctionality),
        "autograd included": inc.has(DK.AutogradOther) or inc.has(DK.AutogradFunctionality),
    }


@pytest.fixture
def torch_mod():
    return pytest.importorskip("torch")


@pytest.mark.oracle
@pytest.mark.parametrize("label", list(TLS_STATES))
def test_tls_matches_torch(torch_mod, label):
    torch = torch_mod
    nest = TLS_STATES[label]
    with contextlib.ExitStack() as stack:
        for name in nest:
            stack.enter_context(_ds_guard(name))
        ours = _ds_summary()
    with contextlib.ExitStack() as stack:
        for name in nest:
            stack.enter_context(_torch_guard(torch, name))
        theirs = _torch_summary(torch)
    assert ours == theirs, label
    assert state() == DEFAULT_STATE


@pytest.mark.oracle
@given(
    st.lists(
        st.sampled_from(
            [
                "no_grad",
                "enable_grad",
                "set_grad_enabled(False)",
                "inference_mode",
                "inference_mode(False)",
                "below_adiov",
                "below_autograd",
            ]
        ),
        max_size=6,
    )
)
def test_random_tls_nests_match_torch(nest):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = [], []
        with contextlib.ExitStack() as stack:
            ours.append(_ds_summary())
            for name in nest:
                stack.enter_context(_ds_guard(name))
                ours.append(_ds_summary())
        with contextlib.ExitStack() as stack:
            theirs.append(_torch_summary(torch))
            for name in nest:
                stack.enter_context(_torch_guard(torch, name))
                theirs.append(_torch_summary(torch))
    assert ours == theirs, nest
    assert _ds_summary() == _torch_summary(torch)
