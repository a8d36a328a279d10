"""The computed dispatch table: alias-key precedence (OperatorEntry::computeDispatchTableEntry),
which kernel runs, the fallthrough mask, PyTorch's `commute` property, exact restore on
Library.close(), and a differential check against torch's `_dispatch_dump_table`."""

from __future__ import annotations

import itertools
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch import Library, fallthrough_kernel
from dispatch.dispatcher import dispatcher
from dispatch.keys import RUNTIME_KEYS
from tests.strategies import FALLTHROUGH_KEYS, KERNEL_REGISTRATION_KEYS, registration_plans

K = dispatch.DispatchKey
KS = dispatch.DispatchKeySet

# Keys the reference (a) p06 table reports; the others (BackendSelect, Python) are checked too.
P06_KEYS = (
    "Undefined",
    "CPU",
    "AutogradCPU",
    "ADInplaceOrView",
    "AutogradOther",
    "Meta",
    "AutogradMeta",
)
ALL_KEYS = ("Undefined", *(k.name for k in RUNTIME_KEYS))

CIA = "CompositeImplicitAutograd"
CEA = "CompositeExplicitAutograd"
FB = "backend fallback"
FTFB = "FT:backend fallback"

# name -> (registrations in order, expected provenance per key) — reference (a) p06,
# confirmed against torch 2.13's _dispatch_dump_table (the oracle test below re-checks).
P06_CASES: dict[str, tuple[list[tuple[str, bool]], dict[str, str]]] = {
    "only_cpu": (
        [("CPU", False)],
        {
            "Undefined": "missing",
            "CPU": "kernel",
            "AutogradCPU": FB,
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": FB,
            "AutogradMeta": FB,
        },
    ),
    "cia": (
        [(CIA, False)],
        {
            "Undefined": "math kernel",
            "CPU": "math kernel",
            "AutogradCPU": "math kernel",
            "ADInplaceOrView": FTFB,
            "AutogradOther": "math kernel",
            "Meta": "math kernel",
            "AutogradMeta": "math kernel",
        },
    ),
    "cea": (
        [(CEA, False)],
        {
            "Undefined": "default backend kernel",
            "CPU": "default backend kernel",
            "AutogradCPU": FB,
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": "default backend kernel",
            "AutogradMeta": FB,
        },
    ),
    # CIA registered first, then CEA: the order that leaves torch's *live* table stale
    # (reference (f).10); the canonical (recomputed) entry is what must come out.
    "cia_then_cea": (
        [(CIA, False), (CEA, False)],
        {
            "Undefined": "default backend kernel",
            "CPU": "default backend kernel",
            "AutogradCPU": FB,
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": "default backend kernel",
            "AutogradMeta": FB,
        },
    ),
    "cea_then_cia": (
        [(CEA, False), (CIA, False)],
        {
            "Undefined": "default backend kernel",
            "CPU": "default backend kernel",
            "AutogradCPU": FB,
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": "default backend kernel",
            "AutogradMeta": FB,
        },
    ),
    "cpu_and_autograd": (
        [("CPU", False), ("Autograd", False)],
        {
            "Undefined": "missing",
            "CPU": "kernel",
            "AutogradCPU": "autograd kernel",
            "ADInplaceOrView": FTFB,
            "AutogradOther": "autograd kernel",
            "Meta": FB,
            "AutogradMeta": "autograd kernel",
        },
    ),
    "cpu_and_cia": (
        [("CPU", False), (CIA, False)],
        {
            "Undefined": "math kernel",
            "CPU": "kernel",
            "AutogradCPU": FB,  # CIA not used: CPU has a kernel
            "ADInplaceOrView": FTFB,
            "AutogradOther": "math kernel",
            "Meta": "math kernel",
            "AutogradMeta": "math kernel",
        },
    ),
    "autograd_and_cia": (
        [("Autograd", False), (CIA, False)],
        {
            "Undefined": "math kernel",
            "CPU": "math kernel",
            "AutogradCPU": "math kernel",  # CIA beats the Autograd alias
            "ADInplaceOrView": FTFB,
            "AutogradOther": "math kernel",
            "Meta": "math kernel",
            "AutogradMeta": "math kernel",
        },
    ),
    "cpu_and_fallthrough_at_autogradcpu": (
        [("CPU", False), ("AutogradCPU", True)],
        {
            "Undefined": "missing",
            "CPU": "kernel",
            "AutogradCPU": "FT:kernel",
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": FB,
            "AutogradMeta": FB,
        },
    ),
    "no_kernel": (
        [],
        {
            "Undefined": "missing",
            "CPU": "missing",
            "AutogradCPU": FB,
            "ADInplaceOrView": FTFB,
            "AutogradOther": FB,
            "Meta": FB,
            "AutogradMeta": FB,
        },
    ),
}

# Which registration's kernel runs: (normal CPU tensor, requires_grad CPU tensor,
# normal tensor inside inference_mode, inference tensor inside inference_mode, meta tensor).
# "ERR" = NotImplementedError. For cia_then_cea torch's stale live table runs CIA for the
# normal tensor; the canonical table (what dispatchsim computes) runs CEA.
WHICH_RUNS: dict[str, tuple[str, str, str, str, str]] = {
    "only_cpu": ("CPU", "CPU", "CPU", "CPU", "ERR"),
    "cia": (CIA, CIA, CIA, CIA, CIA),
    "cea": (CEA, CEA, CEA, CEA, CEA),
    "cia_then_cea": (CEA, CEA, CEA, CEA, CEA),
    "cea_then_cia": (CEA, CEA, CEA, CEA, CEA),
    "cpu_and_autograd": ("Autograd", "Autograd", "CPU", "CPU", "Autograd"),
    "cpu_and_cia": ("CPU", "CPU", "CPU", "CPU", CIA),
    "autograd_and_cia": (CIA, CIA, CIA, CIA, CIA),
    "cpu_and_fallthrough_at_autogradcpu": ("CPU", "CPU", "CPU", "CPU", "ERR"),
    "no_kernel": ("ERR", "ERR", "ERR", "ERR", "ERR"),
}

_counter = itertools.count()


def fresh_ns(tag: str) -> str:
    return f"t_dtable_{tag}_{next(_counter)}"


def make_kernel(tag: str, ran: list[str]):
    def kernel(x):
        ran.append(tag)
        return x.clone()

    kernel.__name__ = f"kernel_{tag}"
    return kernel


def register(lib: Library, op: str, plan, fns) -> None:
    for key, ft in plan:
        lib.impl(op, fallthrough_kernel if ft else fns[key], key)


def prov(te) -> str:
    return ("FT:" if te.is_fallthrough else "") + te.provenance


def table_by_key(name: str) -> dict[str, object]:
    return {te.key.name: te for te in dispatcher.find_schema(name).table}


def parse_dump(text: str) -> dict[str, str]:
    """`Key: [fallthrough ]registered at ... [provenance]` lines -> {key: "[FT:]provenance"}."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, rest = line.split(":", 1)
        rest = rest.strip()
        p = rest.rsplit("[", 1)[-1].rstrip("]")
        out[key.strip()] = ("FT:" if rest.startswith("fallthrough ") else "") + p
    return out


def table_signature(name: str):
    """Everything that defines a computed table, by identity of the registered functions."""
    e = dispatcher.find_op(name)
    assert e is not None
    return (
        tuple(
            (
                te.key,
                te.provenance,
                te.source,
                te.kernel.func if te.kernel is not None else None,
                te.is_fallthrough,
            )
            for te in e.table
        ),
        e.non_fallthrough_mask,
    )


# -- the p06 cases ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(P06_CASES))
def test_p06_table(case):
    plan, expected = P06_CASES[case]
    ran: list[str] = []
    fns = {key: make_kernel(key, ran) for key, _ in plan}
    ns = fresh_ns(case)
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        register(lib, "op", plan, fns)
        table = table_by_key(f"{ns}::op")
        got = {k: prov(table[k]) for k in P06_KEYS}
        assert got == expected
        # BackendSelect and Python: fallthrough backend fallbacks for a custom op
        assert prov(table["BackendSelect"]) == FTFB
        assert table["Python"].provenance == FB
        # the dump shows exactly the non-missing entries, with the same provenance
        dumped = parse_dump(dispatch.dump_table(f"{ns}::op"))
        assert dumped == {k: prov(te) for k, te in table.items() if not te.is_missing}
        # an entry derived from a user registration points at that registration's kernel
        for key_name, te in table.items():
            if te.provenance == "math kernel":
                assert te.kernel.func is fns[CIA] and te.source is K.CompositeImplicitAutograd
            elif te.provenance == "default backend kernel":
                assert te.kernel.func is fns[CEA] and te.source is K.CompositeExplicitAutograd
            elif te.provenance == "autograd kernel":
                assert te.kernel.func is fns["Autograd"] and te.source is K.Autograd
            elif te.provenance == "kernel":
                assert te.source is K[key_name]
                if not te.is_fallthrough:
                    assert te.kernel.func is fns[key_name]
            elif te.provenance == FB:
                assert te.source is K[key_name]
            else:
                assert te.provenance == "missing"
                assert te.kernel is None and te.source is None
    assert ran == []  # computing tables runs nothing


def _run(op, x, ran):
    ran.clear()
    try:
        op(x)
    except NotImplementedError:
        return "ERR", list(ran)
    assert len(ran) == 1, ran
    return ran[0], list(ran)


@pytest.mark.parametrize("case", list(P06_CASES))
def test_p06_which_kernel_runs(case):
    plan, _ = P06_CASES[case]
    ran: list[str] = []
    fns = {key: make_kernel(key, ran) for key, _ in plan}
    ns = fresh_ns(case)
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        register(lib, "op", plan, fns)
        op = getattr(dispatch.ops, ns).op
        normal = dispatch.ones(2)
        rg = dispatch.ones(2, requires_grad=True)
        got = [_run(op, normal, ran)[0], _run(op, rg, ran)[0]]
        with modes.inference_mode():
            got.append(_run(op, normal, ran)[0])
            inf = dispatch.ones(2)
            assert inf.is_inference()
            got.append(_run(op, inf, ran)[0])
        got.append(_run(op, dispatch.ones(2, device="meta"), ran)[0])
        assert tuple(got) == WHICH_RUNS[case]


def test_missing_kernel_errors_name_the_backend_reached():
    ns = fresh_ns("missing")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        op = getattr(dispatch.ops, ns).op
        with pytest.raises(
            NotImplementedError,
            match=rf"^Could not run '{ns}::op' with arguments from the 'CPU' backend\.",
        ):
            op(dispatch.ones(1))
        with pytest.raises(
            NotImplementedError,
            match=rf"^{ns}::op: attempted to run this operator with Meta tensors",
        ):
            op(dispatch.ones(1, device="meta"))


def test_autograd_runtime_kernel_beats_cia():
    # op_registration_test.cpp: AutogradBackendOverridesCompositeImplicitAutogradKernel
    ran: list[str] = []
    ns = fresh_ns("ag_over_cia")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", make_kernel("CIA", ran), CIA)
        lib.impl("op", make_kernel("AutogradCPU", ran), "AutogradCPU")
        t = table_by_key(f"{ns}::op")
        assert prov(t["AutogradCPU"]) == "kernel"
        assert prov(t["AutogradMeta"]) == "math kernel"
        assert prov(t["CPU"]) == "math kernel"
        getattr(dispatch.ops, ns).op(dispatch.ones(1))
        assert ran == ["AutogradCPU"]


def test_backend_kernel_beats_cea_and_cea_beats_cia():
    ran: list[str] = []
    ns = fresh_ns("cpu_cea_cia")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", make_kernel("CIA", ran), CIA)
        lib.impl("op", make_kernel("CEA", ran), CEA)
        lib.impl("op", make_kernel("CPU", ran), "CPU")
        t = table_by_key(f"{ns}::op")
        assert prov(t["CPU"]) == "kernel"
        assert prov(t["Meta"]) == "default backend kernel"
        assert prov(t["Undefined"]) == "default backend kernel"
        assert prov(t["AutogradCPU"]) == FB
        assert prov(t["AutogradOther"]) == FB
        op = getattr(dispatch.ops, ns).op
        op(dispatch.ones(1))
        op(dispatch.ones(1, device="meta"))
        assert ran == ["CPU", "CEA"]


def test_no_tensor_args_run_the_undefined_entry():
    ran: list[str] = []
    ns = fresh_ns("undefined")
    with Library(ns, "DEF") as lib:
        lib.define("op(int n) -> Tensor")

        def cea(n):
            ran.append("CEA")
            return dispatch.ones(n)

        lib.impl("op", cea, CEA)
        assert prov(table_by_key(f"{ns}::op")["Undefined"]) == "default backend kernel"
        with dispatch.trace() as tr:
            out = getattr(dispatch.ops, ns).op(3)
        assert out.shape == (3,)
        assert ran == ["CEA"]
        # BackendSelect comes from the TLS include set but is a fallthrough: masked out
        assert tr.events[0].key == "Undefined"
        assert tr.events[0].keyset == KS()


def test_derived_adinplaceorview_kernel_and_cia():
    ns = fresh_ns("derived")
    with Library(ns, "DEF") as lib:
        lib.define("mut_(Tensor(a!) x) -> Tensor(a!)")
        lib.define("mut2_(Tensor(a!) x) -> Tensor(a!)")
        lib.impl("mut_", lambda x: x, "CPU")
        lib.impl("mut2_", lambda x: x, CIA)
        assert prov(table_by_key(f"{ns}::mut_")["ADInplaceOrView"]) == "kernel"
        # a CompositeImplicitAutograd op gets no generated ADInplaceOrView kernel
        assert prov(table_by_key(f"{ns}::mut2_")["ADInplaceOrView"]) == FTFB


# -- the fallthrough mask ---------------------------------------------------------------------


def test_fallthrough_key_is_masked_out_of_the_call_keyset():
    ran: list[str] = []
    ns = fresh_ns("ftmask")
    with Library(ns, "DEF") as lib:
        lib.define("ft(Tensor x) -> Tensor")
        lib.define("plain(Tensor x) -> Tensor")
        lib.impl("ft", make_kernel("CPU", ran), "CPU")
        lib.impl("ft", fallthrough_kernel, "AutogradCPU")
        lib.impl("plain", make_kernel("CPU", ran), "CPU")
        entry = dispatcher.find_schema(f"{ns}::ft")
        masked = KS.from_raw(~entry.non_fallthrough_mask & KS(RUNTIME_KEYS).raw)
        assert masked == KS(K.AutogradCPU, K.ADInplaceOrView, K.BackendSelect, K.Python)
        x = dispatch.ones(1, requires_grad=True)
        with dispatch.trace() as tr:
            getattr(dispatch.ops, ns).ft(x)
        # one event: straight to CPU; the key set never held the fallthrough keys
        assert [(e.op, e.key) for e in tr.events if e.op == f"{ns}::ft"] == [(f"{ns}::ft", "CPU")]
        assert tr.events[0].keyset == KS(K.CPU)
        assert not tr.events[0].redispatch
        with dispatch.trace() as tr:
            getattr(dispatch.ops, ns).plain(x)
        ours = [e for e in tr.events if e.op == f"{ns}::plain"]
        assert [e.key for e in ours] == ["AutogradCPU", "CPU"]
        # ADInplaceOrView (fallthrough fallback) and BackendSelect are masked, AutogradCPU is not
        assert ours[0].keyset == KS(K.CPU, K.AutogradCPU)
        assert ran == ["CPU", "CPU"]


def test_fallthrough_skipped_on_redispatch_with_a_handmade_keyset():
    ran: list[str] = []
    ns = fresh_ns("ftredispatch")
    with Library(ns, "DEF") as lib:
        lib.define("ft(Tensor x) -> Tensor")
        lib.impl("ft", make_kernel("CPU", ran), "CPU")
        lib.impl("ft", fallthrough_kernel, "AutogradCPU")
        op = getattr(dispatch.ops, ns).ft.default
        with dispatch.trace() as tr:
            dispatch.redispatch(op, KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU), dispatch.ones(1))
        assert [(e.key, e.redispatch) for e in tr.events if e.op == f"{ns}::ft"] == [("CPU", True)]
        assert ran == ["CPU"]


def test_direct_fallthrough_beats_the_autograd_alias_per_key():
    ran: list[str] = []
    ns = fresh_ns("ft_vs_alias")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", make_kernel("CPU", ran), "CPU")
        lib.impl("op", make_kernel("Meta", ran), "Meta")
        lib.impl("op", make_kernel("Autograd", ran), "Autograd")
        lib.impl("op", fallthrough_kernel, "AutogradCPU")
        t = table_by_key(f"{ns}::op")
        assert prov(t["AutogradCPU"]) == "FT:kernel"
        assert prov(t["AutogradMeta"]) == "autograd kernel"
        op = getattr(dispatch.ops, ns).op
        op(dispatch.ones(1))
        op(dispatch.ones(1, device="meta"))
        assert ran == ["CPU", "Autograd"]


def test_global_fallthrough_fallback_masks_every_operator_until_closed():
    ran: list[str] = []
    ns = fresh_ns("ftfallback")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.define("with_ag(Tensor x) -> Tensor")
        lib.impl("op", make_kernel("CPU", ran), "CPU")
        lib.impl("with_ag", make_kernel("CPU", []), "CPU")
        lib.impl("with_ag", make_kernel("Autograd", []), "Autograd")
        op = getattr(dispatch.ops, ns).op
        x = dispatch.ones(1)
        with Library("_", "FRAGMENT") as glob:
            glob.fallback(fallthrough_kernel, "AutogradCPU")
            assert prov(table_by_key(f"{ns}::op")["AutogradCPU"]) == FTFB
            # a fallback never beats a kernel the operator has (here via the Autograd alias)
            assert prov(table_by_key(f"{ns}::with_ag")["AutogradCPU"]) == "autograd kernel"
            # standard ops all have an Autograd kernel, which a fallback does not displace
            assert prov(table_by_key("aten::ones_like")["AutogradCPU"]) == "autograd kernel"
            assert prov(table_by_key("aten::clone")["CPU"]) == "kernel"
            with dispatch.trace() as tr:
                op(x)
            assert [e.key for e in tr.events if e.op == f"{ns}::op"] == ["CPU"]
        assert prov(table_by_key(f"{ns}::op")["AutogradCPU"]) == FB
        with dispatch.trace() as tr:
            op(x)
        assert [e.key for e in tr.events if e.op == f"{ns}::op"] == ["AutogradCPU", "CPU"]
        assert ran == ["CPU", "CPU"]


def test_with_keyset_kernel_receives_the_masked_keyset():
    seen: list = []
    ns = fresh_ns("masked_ks")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")

        def ag(ks, x):
            seen.append(ks)
            return dispatch.redispatch(
                getattr(dispatch.ops, ns).op.default, ks & dispatch.after_autograd_keyset, x
            )

        lib.impl("op", ag, "AutogradCPU", with_keyset=True)
        lib.impl("op", lambda x: x.clone(), "CPU")
        getattr(dispatch.ops, ns).op(dispatch.ones(1))
        # ADInplaceOrView / BackendSelect are fallthroughs for this op: not in the key set
        assert seen == [KS(K.CPU, K.AutogradCPU)]


# -- an independent model of the precedence rules (reference (a)) ---------------------------

_FALLBACK_MODEL = {
    "Undefined": None,
    "CPU": None,
    "Meta": (False,),
    "BackendSelect": (True,),
    "Python": (True,),
    "ADInplaceOrView": (True,),
    "AutogradOther": (False,),
    "AutogradCPU": (False,),
    "AutogradMeta": (False,),
}
_BACKENDS = {"CPU", "Meta"}
_AUTOGRAD = {"AutogradOther": None, "AutogradCPU": "CPU", "AutogradMeta": "Meta"}


def model_entry(key: str, regs: dict[str, bool]) -> tuple[str, str | None]:
    """(provenance with FT: prefix, source key name) per reference (a)'s rules 1-4."""

    def ft(src: str) -> str:
        return "FT:" if regs[src] else ""

    if key in regs:  # 1. (Undefined is never a registration key)
        return ft(key) + "kernel", key
    is_backend = key in _BACKENDS or key == "Undefined"
    if CEA in regs and is_backend:  # 2.2
        return ft(CEA) + "default backend kernel", CEA
    if CIA in regs and (is_backend or key in _AUTOGRAD):  # 2.3
        backend = _AUTOGRAD.get(key)
        if key not in _AUTOGRAD or (CEA not in regs and (backend is None or backend not in regs)):
            return ft(CIA) + "math kernel", CIA
    if key in _AUTOGRAD and "Autograd" in regs:  # 2.4
        return ft("Autograd") + "autograd kernel", "Autograd"
    fb = _FALLBACK_MODEL[key]
    if fb is not None:  # 3.
        return ("FT:" if fb[0] else "") + "backend fallback", key
    return "missing", None  # 4.


@given(registration_plans())
def test_table_matches_reference_model(plan):
    regs = dict(plan)
    ns = fresh_ns("model")
    with Library(ns, "DEF") as lib, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib.define("op(Tensor x) -> Tensor")
        fns = {key: make_kernel(key, []) for key, _ in plan}
        register(lib, "op", plan, fns)
        table = table_by_key(f"{ns}::op")
        for key in ALL_KEYS:
            te = table[key]
            p, src = model_entry(key, regs)
            assert (prov(te), te.source.name if te.source else None) == (p, src), (key, plan)
            if src in fns and not regs[src]:
                assert te.kernel.func is fns[src]


# -- PyTorch's `commute` test ----------------------------------------------------------------


@given(registration_plans(), st.data())
def test_commute(plan, data):
    """Every order of the same registrations computes the same table."""
    fns = {key: make_kernel(key, []) for key, _ in plan}
    orders = [plan, list(reversed(plan))]
    orders += [data.draw(st.permutations(plan)) for _ in range(3)]
    signatures = []
    for order in orders:
        ns = fresh_ns("commute")
        with Library(ns, "DEF") as lib:
            lib.define("op(Tensor x) -> Tensor")
            register(lib, "op", order, fns)
            signatures.append(table_signature(f"{ns}::op"))
        assert dispatcher.find_op(f"{ns}::op") is None
    assert all(s == signatures[0] for s in signatures), plan


@given(registration_plans(min_size=1), st.data())
def test_commute_with_def_after_impl(plan, data):
    """impl() before def() (allowed, as in torch) gives the same table as def() first."""
    fns = {key: make_kernel(key, []) for key, _ in plan}
    ns1, ns2 = fresh_ns("def_first"), fresh_ns("impl_first")
    with Library(ns1, "DEF") as lib1:
        lib1.define("op(Tensor x) -> Tensor")
        register(lib1, "op", plan, fns)
        sig1 = table_signature(f"{ns1}::op")
    with Library(ns2, "DEF") as lib2, Library(ns2, "IMPL") as impl:
        register(impl, f"{ns2}::op", data.draw(st.permutations(plan)), fns)
        lib2.define("op(Tensor x) -> Tensor")
        sig2 = table_signature(f"{ns2}::op")
    assert sig1 == sig2


# -- Library.close() restores the previous tables exactly -----------------------------------


def snapshot_all():
    from dispatch import library as library_mod

    ops = {}
    for name, e in dispatcher.operators.items():
        ops[name] = (
            e.table,  # TableEntry equality compares kernels by identity
            e.non_fallthrough_mask,
            e.dispatch_state[2],
            e.schema is not None and str(e.schema),
            {k: tuple(v) for k, v in e.kernels.items()},
        )
    return (
        ops,
        {k: tuple(v) for k, v in dispatcher.fallbacks.items()},
        {q: tuple(p._overloads) for q, p in dispatcher.packets.items()},
        frozenset(library_mod._impls),
        dict(library_mod._def_libraries),
    )


def assert_tables_are_canonical() -> None:
    """`_dispatch_check_invariants`: every live table equals a from-scratch recomputation,
    and the fallthrough mask is exactly the set of fallthrough entries."""
    fallbacks = dispatcher.current_fallbacks()
    for name, e in dispatcher.operators.items():
        assert e.table == e.compute_table(fallbacks), name
        ft_bits = sum(te.key.bit for te in e.table if te.is_fallthrough)
        assert e.non_fallthrough_mask == KS(RUNTIME_KEYS).raw & ~ft_bits, name


_user_keys = st.sampled_from([*(k.name for k in RUNTIME_KEYS), "Autograd", CIA, CEA])
_aten_ops = st.sampled_from(
    ["aten::add.Tensor", "aten::mul.Tensor", "aten::clone", "aten::add_.Tensor", "aten::view"]
)
_actions = st.one_of(
    st.tuples(st.just("define"), st.sampled_from(["def", "frag"]), st.integers(0, 3)),
    st.tuples(
        st.just("impl"),
        st.sampled_from(["def", "impl", "frag"]),
        st.integers(0, 4),
        _user_keys,
        st.booleans(),
    ),
    st.tuples(st.just("aten"), _aten_ops, _user_keys, st.booleans()),
    st.tuples(st.just("fallback"), st.sampled_from([k.name for k in RUNTIME_KEYS]), st.booleans()),
)


def _noop_kernel(*args, **kwargs):  # pragma: no cover - never called
    raise AssertionError("registered only to be removed again")


def _noop_fallback(*args, **kwargs):  # pragma: no cover - never called
    raise AssertionError("registered only to be removed again")


@settings(max_examples=40)
@given(st.lists(_actions, max_size=14), st.data())
def test_close_restores_every_table(actions, data):
    before = snapshot_all()
    ns = fresh_ns("close")
    libs: dict[str, Library] = {}
    try:
        libs["def"] = Library(ns, "DEF")
        libs["frag"] = Library(ns, "FRAGMENT")
        libs["impl"] = Library(ns, "IMPL")
        libs["aten"] = Library("aten", "IMPL")
        libs["glob"] = Library("_", "FRAGMENT")
        defined: set[int] = set()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for act in actions:
                kind = act[0]
                if kind == "define":
                    _, lib, i = act
                    schema = f"op{i}(Tensor x) -> Tensor"
                    if i in defined:
                        mid = snapshot_all()
                        with pytest.raises(RuntimeError, match="Tried to register an operator"):
                            libs[lib].define(schema)
                        assert snapshot_all() == mid
                    else:
                        libs[lib].define(schema)
                        defined.add(i)
                elif kind == "impl":
                    _, lib, i, key, ft = act
                    libs[lib].impl(f"op{i}", fallthrough_kernel if ft else _noop_kernel, key)
                elif kind == "aten":
                    _, op, key, ft = act
                    libs["aten"].impl(op, fallthrough_kernel if ft else _noop_kernel, key)
                else:
                    _, key, ft = act
                    libs["glob"].fallback(fallthrough_kernel if ft else _noop_fallback, key)
        if actions:
            assert snapshot_all() != before
        assert_tables_are_canonical()
        order = data.draw(st.permutations(list(libs)))
        for name in order:
            libs[name].close()
            assert_tables_are_canonical()
        after = snapshot_all()
        assert after[1] == before[1]  # fallbacks
        assert after[2] == before[2]  # packets / overloads
        assert after[3] == before[3]  # torch.library._impls equivalent
        assert after[4] == before[4]  # DEF namespaces
        assert after[0].keys() == before[0].keys()
        for name in before[0]:
            assert after[0][name] == before[0][name], name
        assert not hasattr(getattr(dispatch.ops, ns), "op0")
    finally:
        for lib in libs.values():
            lib.close()


@pytest.mark.filterwarnings("ignore:Overriding a previously registered kernel")
def test_concurrent_registration_and_calls():
    """Calls on another thread always see a whole table: one of the registered kernels runs."""
    ns = fresh_ns("threads")
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", lambda x: x * 1, "CPU")
        op = getattr(dispatch.ops, ns).op
        stop = threading.Event()
        errors: list[BaseException] = []
        results: set[float] = set()

        def caller() -> None:
            x = dispatch.ones(1)
            try:
                while not stop.is_set():
                    results.add(op(x).item())
            except BaseException as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=caller)
        t.start()
        try:
            for _ in range(150):
                with Library(ns, "IMPL") as l2:
                    l2.impl("op", lambda x: x * 2, "CPU")
                    l2.impl("op", lambda x: x * 3, "AutogradCPU")
                with Library("_", "FRAGMENT") as glob:
                    glob.fallback(fallthrough_kernel, "AutogradCPU")
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        assert 1.0 in results
        assert results <= {1.0, 2.0, 3.0}
        assert op(dispatch.ones(1)).item() == 1.0


def test_close_restores_an_overridden_aten_kernel_and_calls_work_again():
    x = dispatch.ones(2)
    before = table_signature("aten::mul.Tensor")
    with Library("aten", "IMPL") as lib, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib.impl("mul.Tensor", lambda a, b: dispatch.zeros(2), "CPU")
        assert table_signature("aten::mul.Tensor") != before
        assert (x * 3).tolist() == [0.0, 0.0]
    assert table_signature("aten::mul.Tensor") == before
    assert (x * 3).tolist() == [3.0, 3.0]


def test_close_out_of_order_keeps_the_newest_remaining_override():
    ran: list[str] = []
    ns = fresh_ns("override_order")
    with Library(ns, "DEF") as lib, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib.define("op(Tensor x) -> Tensor")
        lib.impl("op", make_kernel("a", ran), "CPU")
        l2 = Library(ns, "IMPL")
        l3 = Library(ns, "IMPL")
        try:
            l2.impl("op", make_kernel("b", ran), "CPU")
            l3.impl("op", make_kernel("c", ran), "CPU")
            op = getattr(dispatch.ops, ns).op
            op(dispatch.ones(1))
            l2.close()  # not the newest: c stays in charge
            op(dispatch.ones(1))
            l3.close()  # back to a
            op(dispatch.ones(1))
        finally:
            l2.close()
            l3.close()
        assert ran == ["c", "c", "a"]


# -- differential: torch's _dispatch_dump_table -----------------------------------------------


def _torch_table(torch, plan, ns):
    from torch.library import Library as TLibrary
    from torch.library import fallthrough_kernel as tft

    lib = TLibrary(ns, "DEF")
    try:
        lib.define("op(Tensor x) -> Tensor")
        # torch.library refuses a Meta kernel once the op has a CompositeImplicitAutograd
        # kernel (a Python-level policy, not a table rule), so Meta goes first; the order
        # does not change the table (test_commute).
        for key, ft in sorted(plan, key=lambda r: r[0] != "Meta"):
            lib.impl("op", tft if ft else (lambda x: x.clone()), key)
        return parse_dump(torch._C._dispatch_dump_table(f"{ns}::op"))
    finally:
        lib._destroy()


def _ours(plan, ns):
    with Library(ns, "DEF") as lib:
        lib.define("op(Tensor x) -> Tensor")
        fns = {key: make_kernel(key, []) for key, _ in plan}
        register(lib, "op", plan, fns)
        return parse_dump(dispatch.dump_table(f"{ns}::op"))


def _compare(theirs: dict[str, str], ours: dict[str, str], label) -> None:
    for key in ALL_KEYS:
        t = theirs.get(key, "missing")
        o = ours.get(key, "missing")
        if key == "Python":
            # torch's Python key has a real backend fallback (PythonFallbackKernel);
            # dispatchsim makes it a fallthrough. Both are backend fallbacks.
            t, o = t.removeprefix("FT:"), o.removeprefix("FT:")
        assert o == t, (label, key, o, t)


@pytest.mark.oracle
@pytest.mark.parametrize("case", list(P06_CASES))
def test_p06_tables_match_torch(case):
    torch = pytest.importorskip("torch")
    plan, expected = P06_CASES[case]
    ns = fresh_ns(f"oracle_{case}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _torch_table(torch, plan, ns)
    ours = _ours(plan, ns)
    _compare(theirs, ours, case)
    assert {k: theirs.get(k, "missing") for k in P06_KEYS} == expected


def _all_plans():
    for r in range(len(KERNEL_REGISTRATION_KEYS) + 1):
        for keys in itertools.combinations(KERNEL_REGISTRATION_KEYS, r):
            plan = [(k, False) for k in keys]
            yield plan
            for ft in FALLTHROUGH_KEYS:
                if ft not in keys:
                    yield [*plan, (ft, True)]


@pytest.mark.oracle
def test_every_registration_set_matches_torch():
    """Exhaustive: every subset of {CPU, Meta, Autograd, AutogradCPU, CIA, CEA} with or
    without one fallthrough registration (448 operators; well under a second)."""
    torch = pytest.importorskip("torch")
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plan in _all_plans():
            ns = fresh_ns("oracle_all")
            _compare(_torch_table(torch, plan, ns), _ours(plan, ns), plan)
            n += 1
    assert n == 448


@pytest.mark.oracle
@given(registration_plans())
def test_random_ordered_tables_match_torch(plan):
    """The same in hypothesis-drawn registration orders (the torch side keeps Meta first)."""
    torch = pytest.importorskip("torch")
    ns = fresh_ns("oracle_random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _torch_table(torch, plan, ns)
    _compare(theirs, _ours(plan, ns), plan)
