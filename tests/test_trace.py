"""dispatch.trace(): the recorded tree of calls and redispatches, the key-set formation of
each, where each kernel came from, what each kernel did (effects), errors, nesting,
threads, JSON, the streaming printer and DISPATCHSIM_SHOW_DISPATCH_TRACE, and the
tracing benchmark's machinery."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch import (
    DispatchEvent,
    DispatchKeySet,
    GradFnRecorded,
    SavedVariableRecorded,
    TensorAllocated,
    Trace,
    VersionBump,
    ViewTracked,
)
from dispatch import dispatcher as _dispatcher_module
from dispatch.keys import DispatchKey
from dispatch.tls import state as tls
from kernels.autograd.variable import LEAF_ERROR
from tests.oracle_programs import (
    ProgramGenerator,
    diff_observations,
    dispatchsim_torch,
    observe,
    run_line,
)
from tests.strategies import registration_plans

ROOT = Path(__file__).resolve().parent.parent
K = DispatchKey
KS = DispatchKeySet
NORMAL_CPU = KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU)
INFERENCE_ERROR = (
    "Inplace update to inference tensor outside InferenceMode is not allowed."
    "You can make a clone to get a normal tensor before doing inplace update."
    "See https://github.com/pytorch/rfcs/pull/17 for more details."
)

_ns_counter = itertools.count()


def fresh_ns(stem: str) -> str:
    return f"trace_{stem}_{next(_ns_counter)}"


def label_of(tr: Trace, t: dispatch.Tensor) -> str:
    return tr._label(t)


def check_arithmetic(tr: Trace) -> None:
    """Every event's key set is what its formation's parts give with DispatchKeySet
    algebra, and its key is that key set's highest-priority key."""
    for e in tr.events:
        f = e.formation
        assert f is not None
        assert f.final == e.keyset
        assert f.compute() == e.keyset, (e, f)
        assert e.key == e.keyset.highest_priority_key().name
        assert f.kind == e.kind
        union = KS()
        for a in f.arguments:
            union = union | a.keyset
        assert union == f.tensors
        if e.redispatch:
            assert f.requested is not None and f.final == f.requested - f.fallthrough
        for c in e.children:
            assert c.depth == e.depth + 1


# -- the golden-ish structure of single calls ---------------------------------------------
def test_add_inplace_on_a_non_leaf_runs_three_kernels_with_their_effects() -> None:
    leaf = dispatch.ones(3, requires_grad=True)
    a = leaf.clone()
    with dispatch.trace() as tr:
        out = a.add_(1)
    assert out is a
    assert tr.keys_run() == [
        ("aten::add_.Tensor", "AutogradCPU"),
        ("aten::add_.Tensor", "ADInplaceOrView"),
        ("aten::add_.Tensor", "CPU"),
    ]
    (root,) = tr.roots
    (adiov,) = root.children
    (cpu,) = adiov.children
    assert [root.redispatch, adiov.redispatch, cpu.redispatch] == [False, True, True]
    assert [root.depth, adiov.depth, cpu.depth] == [0, 1, 2]
    assert root.operator == "aten::add_" and root.overload == "Tensor"
    # where each kernel came from
    assert (root.provenance, root.origin, root.source) == ("autograd kernel", "alias", "Autograd")
    assert (adiov.provenance, adiov.origin, adiov.source) == ("kernel", "direct", "ADInplaceOrView")
    assert (cpu.provenance, cpu.origin, cpu.source) == ("kernel", "direct", "CPU")
    assert root.kernel == "autograd_kernel" and adiov.kernel == "ad_inplace_or_view"
    # key sets: the call's, then each redispatch below the key that ran
    assert root.keyset == NORMAL_CPU
    assert adiov.keyset == KS(K.CPU, K.ADInplaceOrView)
    assert cpu.keyset == KS(K.CPU)
    # what each kernel did
    t0 = label_of(tr, a)
    assert adiov.effects == (VersionBump("self", 0, 1, tensor_id=t0),)
    assert cpu.effects == ()
    (g,) = root.effects
    assert isinstance(g, GradFnRecorded)
    assert g.name == "AddBackward0" and g.tensor == "self" and g.tensor_id == t0
    assert g.next_functions == (("CloneBackward0", 0), (None, 0))
    assert a.grad_fn.name() == "AddBackward0" and a._version == 1
    # the formation of the call: self, and the wrapped number 1 (a normal tensor)
    f = root.formation
    assert f is not None and f.kind == "call"
    assert [(x.name, x.keyset, x.wrapped_number) for x in f.arguments] == [
        ("self", NORMAL_CPU, False),
        ("other", NORMAL_CPU, True),
    ]
    assert f.included == dispatch.default_included_set
    assert f.excluded == KS()
    assert K.BackendSelect in f.fallthrough and K.ADInplaceOrView not in f.fallthrough
    assert f.masked == KS(K.BackendSelect)
    check_arithmetic(tr)


def test_inference_tensor_in_inference_mode_runs_cpu_alone_and_does_nothing_else() -> None:
    with modes.inference_mode():
        i = dispatch.ones(3)
        with dispatch.trace() as tr:
            i.add_(1)
    assert tr.keys_run() == [("aten::add_.Tensor", "CPU")]
    (root,) = tr.roots
    assert root.effects == () and root.error is None
    f = root.formation
    assert f is not None
    assert f.arguments[0].keyset == KS(K.CPU)
    assert f.included == KS(K.BackendSelect)
    assert f.excluded == dispatch.autograd_dispatch_keyset
    # the wrapped number was allocated inside inference mode too: an inference tensor
    assert f.arguments[1].keyset == KS(K.CPU) and f.arguments[1].wrapped_number
    check_arithmetic(tr)


def test_functional_op_allocates_at_cpu_and_records_its_node_and_saved_variables() -> None:
    x = dispatch.ones(3, requires_grad=True)
    y = dispatch.full((3,), 2.0)
    with dispatch.trace() as tr:
        z = x * y
    (root,) = tr.roots
    assert [e.key for e in tr.events] == ["AutogradCPU", "CPU"]  # ADInplaceOrView falls through
    assert K.ADInplaceOrView in root.formation.fallthrough  # type: ignore[union-attr]
    (cpu,) = root.children
    tz = label_of(tr, z)
    assert cpu.effects == (
        TensorAllocated(
            is_inference=False,
            shape=(3,),
            dtype="float32",
            tensor="result",
            tensor_id=tz,
            device="cpu",
            keyset=NORMAL_CPU,
        ),
    )
    grad_fns = [e for e in root.effects if isinstance(e, GradFnRecorded)]
    saved = {e.name: e for e in root.effects if isinstance(e, SavedVariableRecorded)}
    assert [(g.name, g.tensor, g.tensor_id) for g in grad_fns] == [("MulBackward0", "result", tz)]
    assert grad_fns[0].next_functions == (("torch::autograd::AccumulateGrad", 0), (None, 0))
    # MulBackward0 needs other to compute self's gradient; self's is not needed (y has none)
    assert set(saved) == {"other"}
    assert saved["other"].version == 0 and saved["other"].tensor_id == label_of(tr, y)
    assert saved["other"].node == "MulBackward0" and not saved["other"].is_output


def test_saved_variable_records_the_version_at_save_time() -> None:
    x = dispatch.ones(3, requires_grad=True)
    a = x.clone()
    a.add_(1)
    a.add_(1)
    with dispatch.trace() as tr:
        a.exp()
    saved = [e for _, e in tr.effects() if isinstance(e, SavedVariableRecorded)]
    assert [(s.node, s.name, s.version, s.is_output) for s in saved] == [
        ("ExpBackward0", "result", 0, True)
    ]
    with dispatch.trace() as tr:
        a.mul(a)
    saved = [e for _, e in tr.effects() if isinstance(e, SavedVariableRecorded)]
    assert sorted((s.name, s.version) for s in saved) == [("other", 2), ("self", 2)]


@pytest.mark.parametrize(
    ("guard", "meta", "grad_fn"),
    [
        (None, "DEFAULT", "ViewBackward0"),
        ("no_grad", "NO_GRAD_MODE", None),
        ("inference_mode", "INFERENCE_MODE", None),
    ],
)
def test_view_op_allocates_an_alias_then_tracks_the_view(
    guard: str | None, meta: str, grad_fn: str | None
) -> None:
    x = dispatch.ones(2, 3, requires_grad=True)
    base = x * 1
    ctx = {
        None: modes.enable_grad,
        "no_grad": modes.no_grad,
        "inference_mode": modes.inference_mode,
    }
    with ctx[guard](), dispatch.trace() as tr:
        v = base.view(-1)
    # inside inference mode the autograd keys are excluded; ADInplaceOrView still runs
    # for a normal tensor (its own key set carries the key)
    expected = ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert [e.key for e in tr.events] == (expected[1:] if guard == "inference_mode" else expected)
    by_key = {e.key: e for e in tr.events}
    tv, tb = label_of(tr, v), label_of(tr, base)
    (alloc,) = by_key["CPU"].effects
    assert isinstance(alloc, TensorAllocated)
    assert alloc.alias_of == "self" and alloc.tensor_id == tv and not alloc.is_inference
    assert by_key["ADInplaceOrView"].effects == (
        ViewTracked("self", meta, tensor="result", tensor_id=tv, base_id=tb),
    )
    assert v._base is base and v._creation_meta.name == meta
    recorded = [e.name for _, e in tr.effects() if isinstance(e, GradFnRecorded)]
    assert recorded == ([grad_fn] if grad_fn else [])
    check_arithmetic(tr)


def test_view_of_a_view_names_the_root_base() -> None:
    base = dispatch.ones(2, 3)
    v = base.view(-1)
    with dispatch.trace() as tr:
        w = v[1:]
    (vt,) = [e for _, e in tr.effects() if isinstance(e, ViewTracked)]
    assert vt.base == "self._base" and vt.base_id == label_of(tr, base)
    assert w._base is base


def test_view_of_an_inference_tensor_is_not_tracked() -> None:
    with modes.inference_mode():
        i = dispatch.ones(4)
    with dispatch.trace() as tr:
        v = i.view(2, 2)
    # ADInplaceOrView runs (TLS includes it outside inference mode) but tracks nothing
    assert [e.key for e in tr.events] == ["ADInplaceOrView", "CPU"]
    assert tr.roots[0].effects == ()
    (alloc,) = tr.roots[0].children[0].effects
    assert isinstance(alloc, TensorAllocated) and alloc.is_inference and alloc.alias_of == "self"
    assert alloc.keyset == KS(K.CPU)
    assert not any(isinstance(e, ViewTracked) for _, e in tr.effects())
    assert v.is_inference() and not v._is_view()


def test_allocation_reports_inference_or_normal_by_mode() -> None:
    with dispatch.trace() as tr:
        dispatch.ones(2)
        with modes.inference_mode():
            dispatch.zeros(2, dtype=dispatch.float64)
    allocs = [e for _, e in tr.effects() if isinstance(e, TensorAllocated)]
    assert [(a.is_inference, a.dtype, a.shape, a.keyset) for a in allocs] == [
        (False, "float32", (2,), NORMAL_CPU),
        (True, "float64", (2,), KS(K.CPU)),
    ]
    # factories: BackendSelect picks the backend, then CPU allocates
    assert [e.key for e in tr.events] == ["BackendSelect", "CPU", "BackendSelect", "CPU"]
    assert [e.effects != () for e in tr.events] == [False, True, False, True]


def test_inplace_on_a_view_records_copyslices_on_the_base_and_one_bump() -> None:
    x = dispatch.ones(2, 3, requires_grad=True)
    base = x * 1
    v = base[0]
    with dispatch.trace() as tr:
        v.mul_(2)
    bumps = [(ev.key, e) for ev, e in tr.effects() if isinstance(e, VersionBump)]
    assert bumps == [("ADInplaceOrView", VersionBump("self", 0, 1, tensor_id=label_of(tr, v)))]
    assert base._version == 1  # shared counter: bumped once, reported once
    grads = [e for _, e in tr.effects() if isinstance(e, GradFnRecorded)]
    assert {(g.name, g.tensor, g.wraps) for g in grads} == {
        ("AsStridedBackward0", "self", None),
        ("torch::autograd::CopySlices", "self._base", "MulBackward0"),
    }
    assert base._grad_fn.name() == "torch::autograd::CopySlices"


def test_non_differentiable_view_shares_the_counter_without_a_base() -> None:
    ns = fresh_ns("ndview")
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("alias_me(Tensor(a) x) -> Tensor(a)")
        entry = _dispatcher_module.dispatcher.find_schema(f"{ns}::alias_me")
        entry.extra["view"] = "non_differentiable"
        # the derived kernel reads `extra` when built: rebuild it by redefining the table
        from kernels.ad_inplace_or_view import make_ad_inplace_or_view_kernel

        kf = make_ad_inplace_or_view_kernel(entry)
        assert kf is not None
        entry.derived[K.ADInplaceOrView] = kf
        _dispatcher_module.dispatcher._refresh(entry)
        lib.impl("alias_me", lambda x: x.detach(), "CompositeExplicitAutograd")
        t = dispatch.ones(2)
        with dispatch.trace() as tr:
            out = getattr(dispatch.ops, ns).alias_me(t)
    views = [(ev.key, e) for ev, e in tr.effects() if isinstance(e, ViewTracked)]
    assert [(k, e.differentiable, e.creation_meta, e.base) for k, e in views] == [
        ("ADInplaceOrView", False, None, "x")
    ]
    assert out._version_counter is t._version_counter and out._base is None


# -- errors ---------------------------------------------------------------------------------
def test_error_in_the_autograd_kernel_is_recorded_where_raised() -> None:
    leaf = dispatch.ones(3, requires_grad=True)
    with dispatch.trace() as tr:
        with pytest.raises(RuntimeError, match=re.escape(LEAF_ERROR)):
            leaf.add_(1)
        after = leaf * 2
    first, second = tr.roots
    assert first.key == "AutogradCPU" and first.children == ()
    assert first.error == "RuntimeError" and first.error_message == LEAF_ERROR
    assert not first.error_propagated and first.effects == ()
    assert leaf._version == 0 and leaf.grad_fn is None
    # the tree stays balanced: the next call is a new root at depth 0
    assert second.op == "aten::mul.Tensor" and second.depth == 0 and second.error is None
    assert after.grad_fn is not None
    assert "!! RuntimeError: a leaf Variable" in str(tr)
    assert str(first).endswith("  !! RuntimeError")  # the one-line form the CLI prints


def test_error_below_propagates_through_the_callers() -> None:
    with modes.inference_mode():
        i = dispatch.ones(3)
    with dispatch.trace() as tr, pytest.raises(RuntimeError) as info:
        i.add_(1)
    assert str(info.value) == INFERENCE_ERROR
    (root,) = tr.roots
    (adiov,) = root.children
    assert adiov.key == "ADInplaceOrView" and adiov.children == ()  # raised before CPU ran
    assert (adiov.error, adiov.error_message, adiov.error_propagated) == (
        "RuntimeError",
        INFERENCE_ERROR,
        False,
    )
    assert (root.error, root.error_propagated) == ("RuntimeError", True)
    assert [e for _, e in tr.effects()] == []
    assert i.tolist() == [1.0, 1.0, 1.0]


def test_missing_kernel_event() -> None:
    ns = fresh_ns("missing")
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x.clone(), "Meta")
        with dispatch.trace() as tr, pytest.raises(NotImplementedError):
            getattr(dispatch.ops, ns).f(dispatch.ones(1))
    ours = [e for e in tr.events if e.op == f"{ns}::f"]
    assert [(e.key, e.provenance, e.origin, e.error) for e in ours] == [
        ("AutogradCPU", "backend fallback", "fallback", "NotImplementedError"),
        ("CPU", "missing", "missing", "NotImplementedError"),
    ]
    assert ours[1].kernel == "" and not ours[1].error_propagated and ours[0].error_propagated


def test_user_kernel_error_keeps_the_recorder_consistent() -> None:
    ns = fresh_ns("raises")
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")

        def boom(x: Any) -> Any:
            x.clone()  # a nested call that completes
            raise ValueError("boom")

        lib.impl("f", boom, "CPU")
        with dispatch.trace() as tr:
            for _ in range(2):
                with pytest.raises(ValueError, match="boom"):
                    getattr(dispatch.ops, ns).f(dispatch.ones(1))
    assert tr._stack == []
    roots = [r for r in tr.roots if r.op == f"{ns}::f"]
    assert len(roots) == 2
    for r in roots:
        cpu = next(e for e in r.walk() if e.key == "CPU" and e.op == f"{ns}::f")
        assert cpu.error == "ValueError" and cpu.error_message == "boom"
        assert [c.op for c in cpu.children] == ["aten::clone"]
        assert cpu.children[0].error is None and cpu.children[0].depth == cpu.depth + 1


def test_fallthrough_reached_with_an_empty_key_set_raises_torchs_assert() -> None:
    """Found by the property below: a fallthrough registered to CompositeImplicitAutograd
    is also the Undefined entry; an empty key set reaches it and there is nothing below
    (dispatchsim recursed forever; torch raises its internal assert)."""
    from dispatch.dispatcher import FALLTHROUGH_EXECUTED

    ns = fresh_ns("ft_undefined")
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", dispatch.fallthrough_kernel, "CompositeImplicitAutograd")
        x = dispatch.ones(2)
        with (
            modes.AutoDispatchBelowADInplaceOrView(),
            dispatch.trace() as tr,
            pytest.raises(RuntimeError) as info,
        ):
            getattr(dispatch.ops, ns).f(x)
    assert str(info.value) == FALLTHROUGH_EXECUTED
    (root,) = tr.roots
    assert (root.key, root.provenance, root.error) == ("Undefined", "math kernel", "RuntimeError")
    assert root.keyset == KS()


# -- activation: nesting, threads, the recorder count ----------------------------------------
def test_nested_traces_both_record_with_their_own_trees() -> None:
    a = dispatch.ones(2)
    with dispatch.trace() as outer:
        a + a
        with dispatch.trace() as inner:
            a.add_(1)
        a * a
    assert [e.op for e in outer.roots] == [
        "aten::add.Tensor",
        "aten::add_.Tensor",
        "aten::mul.Tensor",
    ]
    assert [e.op for e in inner.roots] == ["aten::add_.Tensor"]
    assert inner.keys_run() == [k for k in outer.keys_run() if k[0] == "aten::add_.Tensor"]
    assert [len(e.effects) for e in inner.events] == [len(e.effects) for e in outer.roots[1].walk()]
    assert tls.tracer is None


def test_a_trace_records_its_own_thread_only() -> None:
    start = threading.Barrier(2)
    seen: dict[str, list[tuple[str, str]]] = {}

    def worker() -> None:
        start.wait()
        with dispatch.trace() as tr:
            for _ in range(20):
                dispatch.ones(2).mul(3)
        seen["worker"] = tr.keys_run()

    th = threading.Thread(target=worker)
    th.start()
    a = dispatch.ones(2)
    with dispatch.trace() as tr:
        start.wait()
        for _ in range(20):
            a.add_(1)
    th.join()
    assert {op for op, _ in tr.keys_run()} == {"aten::add_.Tensor"}
    assert len(tr.roots) == 20
    assert {op for op, _ in seen["worker"]} == {"aten::ones", "aten::mul.Tensor"}


def test_a_new_thread_starts_without_the_spawning_threads_trace() -> None:
    out: list[Any] = []
    with dispatch.trace() as tr:
        th = threading.Thread(target=lambda: out.append((tls.tracer, dispatch.ones(1))))
        th.start()
        th.join()
    assert out[0][0] is None
    assert tr.events == []


def test_recorder_count_and_tls_are_restored_even_on_error() -> None:
    before = (_dispatcher_module._tracers, tls.tracer)
    tr = dispatch.trace()
    with pytest.raises(KeyError), tr:
        assert _dispatcher_module._tracers == before[0] + 1 and tls.tracer is tr
        raise KeyError("x")
    assert (_dispatcher_module._tracers, tls.tracer) == before
    with pytest.raises(RuntimeError, match="already recording"), tr, tr:
        pass
    assert (_dispatcher_module._tracers, tls.tracer) == before


def test_find_selects_events_by_operator_and_key() -> None:
    a = dispatch.ones(2, requires_grad=True).clone()
    with dispatch.trace() as tr:
        a.add_(1)
        a.add(1)
    assert [e.key for e in tr.find("aten::add_")] == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert [e.op for e in tr.find(key="CPU")] == ["aten::add_.Tensor", "aten::add.Tensor"]
    assert [e.redispatch for e in tr.find("aten::add.Tensor", "CPU")] == [True]


def test_a_trace_can_record_several_blocks() -> None:
    tr = dispatch.trace()
    a = dispatch.ones(1)
    with tr:
        a + a
    a * a  # not recorded
    with tr:
        a - a
    assert [e.op for e in tr.roots] == ["aten::add.Tensor", "aten::sub.Tensor"]


# -- text, JSON, streaming ----------------------------------------------------------------
def _sample_trace() -> Trace:
    leaf = dispatch.ones(2, 2, requires_grad=True)
    with dispatch.trace() as tr:
        a = leaf * 2
        v = a[0]
        v.add_(1)
        with modes.inference_mode():
            dispatch.ones(1)
        try:
            leaf.add_(1)
        except RuntimeError:
            pass
        a.sum().backward()
    return tr


def test_str_is_an_indented_tree_of_headers_formations_effects_and_errors() -> None:
    tr = _sample_trace()
    text = str(tr)
    lines = text.splitlines()
    headers = [ln for ln in lines if re.match(r"^\s*\[(call|redispatch)\] ", ln)]
    assert len(headers) == len(tr.events)
    for ln, e in zip(headers, tr.events):
        assert ln == e.header()
        assert ln.startswith("  " * e.depth + f"[{e.kind}] {e.op} -> {e.key} [{e.provenance}]")
    assert "+ version bump self" in text
    assert "+ grad_fn torch::autograd::CopySlices wrapping AddBackward0 on self._base" in text
    assert "+ allocated result" in text and "inference float32[1] {CPU}" in text
    assert ": ks = (self=t0 {CPU, ADInplaceOrView, AutogradCPU} | other=t1 (wrapped number)" in text


def test_json_round_trips() -> None:
    tr = _sample_trace()
    text = tr.to_json()
    data = json.loads(text)
    assert data == tr.as_dict()
    back = Trace.from_json(text)
    assert back.roots == tr.roots
    assert str(back) == str(tr)
    assert back.keys_run() == tr.keys_run()
    first = data["calls"][0]
    assert first["op"] == "aten::mul.Tensor" and first["kind"] == "call"
    assert first["formation"]["final"] == ["CPU", "AutogradCPU"]
    types = {e["type"] for ev in tr.events for e in ev.to_dict()["effects"]}
    assert types == {
        "GradFnRecorded",
        "SavedVariableRecorded",
        "VersionBump",
        "ViewTracked",
        "TensorAllocated",
    }
    assert DispatchEvent.from_dict(json.loads(json.dumps(tr.roots[0].to_dict()))) == tr.roots[0]


def test_stream_writes_the_same_tree_as_calls_happen() -> None:
    buf = io.StringIO()
    leaf = dispatch.ones(3, requires_grad=True)
    positions: list[int] = []
    ns = fresh_ns("stream")
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")

        def kernel(x: Any) -> Any:
            positions.append(len(buf.getvalue()))  # the call's header is already out
            return x.clone()

        lib.impl("f", kernel, "CPU")
        with dispatch.trace(stream=buf) as tr:
            getattr(dispatch.ops, ns).f(leaf.detach())
            b = leaf * 2
            b.add_(1)
            try:
                leaf.add_(1)
            except RuntimeError:
                pass
    assert buf.getvalue() == str(tr) + "\n"
    assert positions[0] > 0 and "-> CPU [kernel]" in buf.getvalue()[: positions[0]]


def _normalise_labels(text: str) -> str:
    return re.sub(r"\bt\d+\b", "tN", text)


def test_env_var_prints_the_tree_to_stderr() -> None:
    code = (
        "import sys, dispatch\n"
        "from dispatch import dispatcher\n"
        "a = dispatch.ones(2, requires_grad=True).clone()\n"
        "sys.stderr.write('@@start\\n')\n"
        "with dispatch.trace() as tr:\n"
        "    a.add_(1)\n"
        "    a.view(-1)\n"
        "sys.stderr.write('@@end\\n')\n"
        "print(str(tr))\n"
        "print('@@tracers', dispatcher._tracers)\n"
    )
    env = {**os.environ, "DISPATCHSIM_SHOW_DISPATCH_TRACE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    stdout, tracers = proc.stdout.rsplit("@@tracers ", 1)
    assert int(tracers) == 1  # the printer, for good
    printed = proc.stderr.split("@@start\n", 1)[1].split("@@end\n", 1)[0]
    assert _normalise_labels(printed) == _normalise_labels(stdout.rstrip("\n") + "\n")
    assert "[call] aten::ones -> BackendSelect" in proc.stderr.split("@@start", 1)[0]
    # without the variable: nothing printed, no recorder counted
    env.pop("DISPATCHSIM_SHOW_DISPATCH_TRACE")
    quiet = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "@@start\n@@end\n"
    assert quiet.stdout.rsplit("@@tracers ", 1)[1].strip() == "0"


# -- properties ---------------------------------------------------------------------------
GUARDS = {
    "none": None,
    "no_grad": modes.no_grad,
    "inference_mode": modes.inference_mode,
    "below_autograd": modes.AutoDispatchBelowAutograd,
    "below_adinplaceorview": modes.AutoDispatchBelowADInplaceOrView,
}
TENSOR_KINDS = ("normal", "requires_grad", "inference", "meta")


def _make(kind: str) -> dispatch.Tensor:
    if kind == "inference":
        with modes.inference_mode():
            return dispatch.ones(2)
    if kind == "meta":
        return dispatch.ones(2, device="meta")
    return dispatch.ones(2, requires_grad=kind == "requires_grad")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=registration_plans(),
    guard=st.sampled_from(sorted(GUARDS)),
    kind=st.sampled_from(TENSOR_KINDS),
    mutable=st.booleans(),
)
def test_trace_records_exactly_the_kernels_that_ran(
    plan: list[tuple[str, bool]], guard: str, kind: str, mutable: bool
) -> None:
    """A user operator with a random set of registrations, each kernel logging the key it
    ran for and redispatching below it (backend keys return): the trace's events for the
    operator are exactly the logged kernels plus the dispatchsim kernels between them
    (fallbacks, derived ADInplaceOrView), and explain() predicts the first key."""
    ns = fresh_ns("prop")
    log: list[tuple[str, DispatchKeySet]] = []

    def traced_kernel(ks: DispatchKeySet, x: Any) -> Any:
        key = ks.highest_priority_key()
        log.append((key.name, ks))
        if key in (K.CPU, K.Meta, K.Undefined):  # nothing below
            return x
        return dispatch.redispatch(op, ks & KS.from_raw(key.bit - 1), x)

    schema = "f(Tensor(a!) x) -> Tensor(a!)" if mutable else "f(Tensor x) -> Tensor"
    with dispatch.Library(ns, "DEF") as lib:
        lib.define(schema)
        for key, is_ft in plan:
            if is_ft:
                lib.impl("f", dispatch.fallthrough_kernel, key)
            else:
                lib.impl("f", traced_kernel, key, with_keyset=True)
        op = getattr(dispatch.ops, ns).f.default
        x = _make(kind)
        ctx = GUARDS[guard]
        with ctx() if ctx is not None else _null():
            predicted = dispatch.explain(op, x)
            err: BaseException | None = None
            with dispatch.trace() as tr:
                try:
                    op(x)
                except (RuntimeError, NotImplementedError) as e:
                    err = e
    check_arithmetic(tr)
    ours = [e for e in tr.events if e.op == f"{ns}::f"]
    assert ours, "the call itself is always recorded"
    assert ours[0].key == predicted.key and ours[0].keyset == predicted.keyset
    assert predicted.formation == unlabelled(ours[0].formation)
    mine = [(e.key, e.keyset) for e in ours if e.kernel.endswith(".traced_kernel")]
    assert mine == log
    for e in ours:  # the other kernels are dispatchsim's own
        if not e.kernel.endswith(".traced_kernel"):
            assert (
                e.provenance in ("backend fallback", "missing")
                or (e.provenance, e.kernel) == ("kernel", "ad_inplace_or_view")
                or (e.key, e.kernel) == ("Undefined", "fallthrough")
            ), e
    if err is not None:
        raised = [e for e in ours if e.error is not None and not e.error_propagated]
        assert raised and raised[-1].error == type(err).__name__


def unlabelled(f: dispatch.KeySetFormation | None) -> dispatch.KeySetFormation:
    """A traced formation without the trace's tensor labels (explain() has none)."""
    assert f is not None
    return attrs.evolve(f, arguments=tuple(attrs.evolve(a, tensor=None) for a in f.arguments))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


MAX_STEPS = 8


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_tracing_changes_nothing_a_program_observes(data: st.DataObject) -> None:
    """The same random program (tests/oracle_programs.py's generator) run twice, one copy
    with every line traced: every line raises alike and leaves every tensor alike (values,
    versions, grad_fns and their graphs, views, grads); every traced event's key set is
    its formation's arithmetic; version bumps go up by one per bumping kernel."""
    plain: dict[str, Any] = {"torch": dispatchsim_torch(), "np": __import__("numpy")}
    traced: dict[str, Any] = {"torch": dispatchsim_torch(), "np": __import__("numpy")}
    gen = ProgramGenerator(data, plain)

    def step(line: str) -> None:
        expected = run_line(plain, line)
        with dispatch.trace() as tr:
            actual = run_line(traced, line)
        assert expected == actual, (line, expected, actual)
        diffs = diff_observations(observe(plain), observe(traced))
        assert not diffs, (line, diffs)
        check_arithmetic(tr)
        for _, eff in tr.effects():
            if isinstance(eff, VersionBump):
                assert eff.new > eff.old
        assert tr._stack == []

    for _ in range(data.draw(st.integers(1, 3))):
        step(gen.leaf())
    for _ in range(data.draw(st.integers(0, MAX_STEPS))):
        step(gen.step())
    loss_line, loss = gen.final_loss()
    step(loss_line)
    step(gen.final_backward(loss))


# -- the benchmark's machinery -----------------------------------------------------------
def test_benchmark_hot_path_variant_removes_exactly_the_check() -> None:
    from benchmarks.bench_trace import HotPath, _check_condition

    hot = HotPath()
    a = dispatch.ones(2)
    with hot.without_check(), dispatch.trace() as tr:
        b = a + a
        a.add_(1)
    assert tr.events == []  # no check: an active trace sees nothing
    assert b.tolist() == [2.0, 2.0] and a._version == 1  # the calls themselves still work
    with dispatch.trace() as tr:
        a + a
    assert [e.key for e in tr.events] == ["AutogradCPU", "CPU"]  # restored
    for f in hot.functions:
        assert "tracer is not None" in _check_condition(f)


def test_benchmark_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_trace",
            "--rounds",
            "2",
            "--target-ms",
            "0.2",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [r["op"] for r in data["rows"]] == ["a + b", "a.add_(1)", "a.view(-1)"]
    assert data["trace_events_for_a_plus_b"]["without check"] == 0
    assert data["trace_events_for_a_plus_b"]["with check"] == 2
    assert [r["calls_redispatches"] for r in data["rows"]] == [[1, 1], [1, 2], [1, 2]]
    for r in data["rows"]:
        assert r["ratio_median"] > 0 and r["estimated_ratio"] >= 1
    assert "paired median" in proc.stdout
