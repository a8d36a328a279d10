"""Introspection without running: dispatch.dump (torch._C._dispatch_dump),
dispatch.dump_table (torch._C._dispatch_dump_table, missing keys on request),
dispatch.registered_keys and dispatch.explain (a call's key-set arithmetic and the kernel
each key would run) — checked against the dispatcher itself (a traced call) and, for
dump and registered_keys, against torch."""

from __future__ import annotations

import itertools
import json
import re
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch import Explanation, Library
from dispatch.introspect import DUMP_ORDER, resolve_entry
from dispatch.keys import RUNTIME_KEYS, DispatchKey
from tests.strategies import registration_plans

K = DispatchKey
KS = dispatch.DispatchKeySet
NORMAL_CPU = KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU)
_ns_counter = itertools.count()


def fresh_ns(stem: str) -> str:
    return f"introspect_{stem}_{next(_ns_counter)}"


def _kernel(x: Any) -> Any:
    return x.clone()


def register(lib: Library, plan: list[tuple[str, bool]], name: str = "op") -> None:
    # torch.library refuses Meta after CompositeImplicitAutograd; the order does not matter
    for key, ft in sorted(plan, key=lambda r: r[0] != "Meta"):
        lib.impl(name, dispatch.fallthrough_kernel if ft else _kernel, key)


# -- dump_table --------------------------------------------------------------------------
def test_dump_table_is_torchs_format_and_can_list_missing_keys() -> None:
    ns = fresh_ns("table")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", _kernel, "CPU")
        lib.impl("op", dispatch.fallthrough_kernel, "AutogradCPU")
        name = f"{ns}::op"
        default = dispatch.dump_table(name)
        full = dispatch.dump_table(name, missing=True)
        assert default == dispatch.dump_table(getattr(dispatch.ops, ns).op.default)
    rows = dict(line.split(": ", 1) for line in full.splitlines())
    assert list(rows) == ["Undefined", *(k.name for k in RUNTIME_KEYS)]
    assert rows["Undefined"] == "(no kernel) [missing]"
    assert rows["CPU"].endswith("[kernel]") and "registered at" in rows["CPU"]
    assert rows["AutogradCPU"].startswith("fallthrough registered at")
    # without missing=: exactly the rows that have a kernel, as torch prints them
    assert default.splitlines() == [ln for ln in full.splitlines() if not ln.endswith("[missing]")]
    assert default.endswith("\n")


def test_unknown_operator() -> None:
    for fn in (dispatch.dump, dispatch.dump_table, dispatch.registered_keys):
        with pytest.raises(RuntimeError, match=r"^operator aten::no_such_op does not exist$"):
            fn("aten::no_such_op")
    with pytest.raises(RuntimeError, match="does not exist"):
        dispatch.explain("aten::no_such_op", dispatch.ones(1))


# -- dump and registered_keys ----------------------------------------------------------------
def test_dump_lists_registrations_as_made() -> None:
    ns = fresh_ns("dump")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", _kernel, "Autograd")
        lib.impl("op", _kernel, "CPU")
        lib.impl("op", dispatch.fallthrough_kernel, "AutogradCPU")
        with Library(ns, "FRAGMENT") as frag, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frag.impl("op", _kernel, "CPU")  # overrides the first CPU kernel
            text = dispatch.dump(f"{ns}::op")
            keys = dispatch.registered_keys(f"{ns}::op")
        after = dispatch.dump(f"{ns}::op")
    lines = text.splitlines()
    assert lines[:4] == [
        f"name: {ns}::op",
        f"schema: {ns}::op(Tensor x) -> Tensor",
        lines[2],
        "alias analysis kind: FROM_SCHEMA",
    ]
    assert lines[2].startswith("debug: registered at ") and __file__ in lines[2]
    heads = [ln.split(": ", 1)[0] for ln in lines[4:]]
    assert heads == ["CPU", "CPU (inactive)", "AutogradCPU", "Autograd[alias]"]
    assert lines[4].endswith(":: _kernel [ python ]")
    assert lines[6].endswith("[ fallthrough full ]")
    assert keys == [K.CPU, K.AutogradCPU, K.Autograd]
    # the FRAGMENT's kernel is gone once it is closed
    assert [ln.split(": ", 1)[0] for ln in after.splitlines()[4:]] == [
        "CPU",
        "AutogradCPU",
        "Autograd[alias]",
    ]


def test_derived_adinplaceorview_kernel_is_a_registration_unless_composite() -> None:
    assert dispatch.registered_keys("aten::add_.Tensor") == [
        K.ADInplaceOrView,
        K.CPU,
        K.Meta,
        K.Autograd,
    ]
    assert "ADInplaceOrView: registered at kernels/ad_inplace_or_view.py" in dispatch.dump(
        "aten::add_.Tensor"
    )
    assert "[ full with_keyset derived ]" in dispatch.dump("aten::add_.Tensor")
    # reshape is CompositeImplicitAutograd: no ADInplaceOrView kernel (as torch generates none)
    assert dispatch.registered_keys("aten::reshape") == [K.CompositeImplicitAutograd]
    assert "ADInplaceOrView" not in dispatch.dump("aten::reshape")
    # a functional op has no alias annotation: nothing derived
    assert K.ADInplaceOrView not in dispatch.registered_keys("aten::mul.Tensor")


def test_dump_order_is_torchs_enum_order() -> None:
    ns = fresh_ns("order")
    keys = [k.name for k in DUMP_ORDER]
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        for k in reversed(keys):
            if k != "Meta":
                lib.impl("op", _kernel, k)
        lib.impl("op", _kernel, "Meta")
        lines = dispatch.dump(f"{ns}::op").splitlines()[4:]
        assert dispatch.registered_keys(f"{ns}::op") == list(DUMP_ORDER)
    assert [ln.split(": ", 1)[0].removesuffix("[alias]") for ln in lines] == keys


def _torch_dump(torch: Any, plan: list[tuple[str, bool]], ns: str) -> tuple[list[str], list[str]]:
    from torch.library import Library as TLibrary
    from torch.library import fallthrough_kernel as tft

    lib = TLibrary(ns, "DEF")
    try:
        lib.define("op(Tensor x) -> Tensor")
        for key, ft in sorted(plan, key=lambda r: r[0] != "Meta"):
            lib.impl("op", tft if ft else (lambda x: x.clone()), key)
        text = torch._C._dispatch_dump(f"{ns}::op")
        has = [
            k.name
            for k in DUMP_ORDER
            if torch._C._dispatch_has_kernel_for_dispatch_key(f"{ns}::op", k.name)
        ]
        return _dump_shape(text), has
    finally:
        lib._destroy()


def _dump_shape(text: str) -> list[str]:
    """Each registration line as ``KEY[alias] (inactive)? fallthrough?``."""
    out = []
    for line in text.splitlines()[4:]:
        head, rest = line.split(": ", 1)
        state = re.search(r"\[ ([^\]]*)\]$", rest)
        assert state is not None, line
        out.append(head + (" fallthrough" if "fallthrough" in state.group(1) else ""))
    return out


@pytest.mark.oracle
@settings(deadline=None)
@given(registration_plans())
def test_dump_and_registered_keys_match_torch(plan: list[tuple[str, bool]]) -> None:
    torch = pytest.importorskip("torch")
    ns = fresh_ns("oracle_dump")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_keys = _torch_dump(torch, plan, ns)
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        register(lib, plan)
        ours = _dump_shape(dispatch.dump(f"{ns}::op"))
        our_keys = [k.name for k in dispatch.registered_keys(f"{ns}::op")]
    assert ours == theirs
    assert our_keys == their_keys


# -- explain --------------------------------------------------------------------------------
def test_explain_add_inplace() -> None:
    leaf = dispatch.ones(3, requires_grad=True)
    a = leaf.clone()
    ex = dispatch.explain("aten::add_.Tensor", a, 1)
    assert isinstance(ex, Explanation)
    assert ex.op == "aten::add_.Tensor" and ex.key == "AutogradCPU"
    assert ex.keyset == NORMAL_CPU
    assert [c.key for c in ex.kernels] == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert (ex.first.kernel, ex.first.provenance, ex.first.source) == (
        "autograd_kernel",
        "autograd kernel",
        "Autograd",
    )
    assert [c.key for c in ex.masked] == ["BackendSelect"]
    f = ex.formation
    assert [(x.name, x.wrapped_number) for x in f.arguments] == [("self", False), ("other", True)]
    assert f.compute() == ex.keyset
    assert ex.grad_mode and not ex.inference_mode
    text = str(ex)
    assert "runs first: AutogradCPU: autograd_kernel [autograd kernel, from Autograd]" in text
    assert "other (wrapped number) {CPU, ADInplaceOrView, AutogradCPU}" in text
    assert "= dispatch key set    {CPU, ADInplaceOrView, AutogradCPU}" in text
    # nothing ran
    assert a._version == 0 and a.grad_fn.name() == "CloneBackward0"


def test_explain_runs_nothing() -> None:
    a = dispatch.ones(2)
    with dispatch.trace() as tr:
        dispatch.explain("aten::add_.Tensor", a, 1)
        dispatch.explain("aten::view", a, [-1])
    assert tr.events == [] and a._version == 0


def test_explain_inference_mode_and_names() -> None:
    with modes.inference_mode():
        i = dispatch.ones(2)
        ex = dispatch.explain("add_.Tensor", i, 1)  # "aten::" may be left out
        assert ex.key == "CPU" and [c.key for c in ex.kernels] == ["CPU"]
        assert ex.inference_mode and not ex.grad_mode
        assert ex.formation.excluded == dispatch.autograd_dispatch_keyset
    # a packet picks the overload the call would bind, as calling it does
    a = dispatch.ones(2)
    assert dispatch.explain("aten::add", a, a).op == "aten::add.Tensor"
    assert dispatch.explain(dispatch.ops.aten.add, a, a).op == "aten::add.Tensor"
    assert dispatch.explain(dispatch.ops.aten.add.Tensor, a, a).op == "aten::add.Tensor"
    assert dispatch.explain("aten::view", a, [-1]).op == "aten::view"
    with pytest.raises(TypeError):
        dispatch.explain("aten::view", a, [-1], 3)  # binds like a call


def test_explain_factory_and_missing_kernel() -> None:
    ex = dispatch.explain("aten::ones", [2])
    assert ex.key == "BackendSelect" and ex.formation.arguments == ()
    assert "tensor arguments    (none)" in str(ex)
    ns = fresh_ns("missing")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", _kernel, "Meta")
        ex = dispatch.explain(f"{ns}::op", dispatch.ones(1))
    assert [(c.key, c.kernel, c.provenance) for c in ex.kernels] == [
        ("AutogradCPU", "autograd_fallback", "backend fallback"),
        ("CPU", None, "missing"),
    ]
    assert "CPU: no kernel [missing] -> NotImplementedError" in str(ex)


def test_explain_json_round_trips() -> None:
    a = dispatch.ones(2, requires_grad=True)
    ex = dispatch.explain("aten::mul.Tensor", a, 2)
    data = json.loads(ex.to_json())
    assert data == ex.as_dict()
    assert data["key"] == "AutogradCPU" and data["keyset"] == ["CPU", "AutogradCPU"]
    assert Explanation.from_json(ex.to_json()) == ex


GUARDS = {
    "none": None,
    "no_grad": modes.no_grad,
    "inference_mode": modes.inference_mode,
    "below_autograd": modes.AutoDispatchBelowAutograd,
    "below_adinplaceorview": modes.AutoDispatchBelowADInplaceOrView,
}
CALLS = {
    "aten::add.Tensor": lambda a, b: (a, b),
    "aten::add_.Tensor": lambda a, b: (a, b),
    "aten::mul.Tensor": lambda a, b: (a, 2.0),
    "aten::view": lambda a, b: (a, [-1]),
    "aten::clone": lambda a, b: (a,),
    "aten::sum": lambda a, b: (a,),
    "aten::reshape": lambda a, b: (a, [-1]),
    "aten::copy_": lambda a, b: (a, b),
}


def _tensor(kind: str) -> dispatch.Tensor:
    if kind == "inference":
        with modes.inference_mode():
            return dispatch.ones(2)
    if kind == "meta":
        return dispatch.ones(2, device="meta")
    if kind == "leaf":
        return dispatch.ones(2, requires_grad=True)
    if kind == "nonleaf":
        return dispatch.ones(2, requires_grad=True).mul(1)
    return dispatch.ones(2)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@settings(deadline=None)
@given(
    op=st.sampled_from(sorted(CALLS)),
    guard=st.sampled_from(sorted(GUARDS)),
    kinds=st.tuples(*[st.sampled_from(["normal", "leaf", "nonleaf", "inference", "meta"])] * 2),
)
def test_explain_predicts_what_the_dispatcher_does(
    op: str, guard: str, kinds: tuple[str, str]
) -> None:
    """For standard operators, random tensor kinds and guards: explain()'s key set,
    formation and first kernel are those of the traced call, made right after."""
    a, b = (_tensor(k) for k in kinds)
    args = CALLS[op](a, b)
    ctx = GUARDS[guard]
    with ctx() if ctx is not None else _null():
        ex = dispatch.explain(op, *args)
        handle = resolve_entry(ex.op).handle
        with dispatch.trace() as tr:
            try:
                handle(*args)
            except (RuntimeError, NotImplementedError):
                pass
    root = tr.roots[0]
    assert root.op == ex.op and root.kind == "call"
    assert root.key == ex.key and root.keyset == ex.keyset
    assert root.provenance == ex.first.provenance and root.kernel == (ex.first.kernel or "")
    f = root.formation
    assert f is not None
    assert [(x.name, x.keyset, x.wrapped_number) for x in f.arguments] == [
        (x.name, x.keyset, x.wrapped_number) for x in ex.formation.arguments
    ]
    assert (f.included, f.excluded, f.fallthrough, f.final) == (
        ex.formation.included,
        ex.formation.excluded,
        ex.formation.fallthrough,
        ex.formation.final,
    )
    # every key the trace saw for this operator is a key explain() listed, with its kernel
    listed = {c.key: c for c in ex.kernels}
    for e in root.walk():
        if e.op == ex.op and e.key != "Undefined":
            assert e.key in listed, (e.key, list(listed))
            assert e.provenance == listed[e.key].provenance
