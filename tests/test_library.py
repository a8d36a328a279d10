"""dispatch.Library: define / impl / fallback / close, torch.library's error texts, kernel
calling conventions, missing-kernel errors, and a user-defined in-place op whose version
bump comes from the schema-derived ADInplaceOrView kernel alone."""

from __future__ import annotations

import itertools
import re
import warnings

import pytest

import dispatch
import modes
from dispatch import Library
from dispatch.dispatcher import dispatcher

K = dispatch.DispatchKey
KS = dispatch.DispatchKeySet

_counter = itertools.count()
HERE = re.escape(__file__)

INFERENCE_INPLACE_ERROR = (
    "Inplace update to inference tensor outside InferenceMode is not allowed."
    "You can make a clone to get a normal tensor before doing inplace update."
    "See https://github.com/pytorch/rfcs/pull/17 for more details."
)
MODELLED_AVAILABLE = (
    "[Meta, BackendSelect, Python, ADInplaceOrView, AutogradOther, AutogradCPU, AutogradMeta]"
)


def fresh_ns(tag: str) -> str:
    return f"t_lib_{tag}_{next(_counter)}"


def ns_ops(ns: str):
    return getattr(dispatch.ops, ns)


def snapshot_all():
    """Every operator's table, kernels and schema; fallbacks; packets; Library bookkeeping."""
    from dispatch import library as library_mod

    return (
        {
            name: (
                e.table,
                e.non_fallthrough_mask,
                e.schema is not None and str(e.schema),
                {k: tuple(v) for k, v in e.kernels.items()},
            )
            for name, e in dispatcher.operators.items()
        },
        {k: tuple(v) for k, v in dispatcher.fallbacks.items()},
        {q: tuple(p._overloads) for q, p in dispatcher.packets.items()},
        frozenset(library_mod._impls),
        dict(library_mod._def_libraries),
    )


# -- define / impl / fallback / close ------------------------------------------------------


def test_define_impl_call_close():
    ns = fresh_ns("basic")
    before = snapshot_all()
    lib = Library(ns, "DEF")
    try:
        assert lib.define("f(Tensor x) -> Tensor") == "f"
        # torch.library returns the operator name without the overload
        assert lib.define("f.twice(Tensor x) -> Tensor") == "f"
        lib.impl("f", lambda x: x + 1, "CPU")
        lib.impl("f.twice", lambda x: x + 2, "CPU")
        x = dispatch.ones(2)
        assert ns_ops(ns).f(x).tolist() == [2.0, 2.0]
        assert ns_ops(ns).f.default(x).tolist() == [2.0, 2.0]
        assert ns_ops(ns).f.twice(x).tolist() == [3.0, 3.0]
        assert sorted(ns_ops(ns).f.overloads()) == ["default", "twice"]
        assert dispatcher.find_schema(f"{ns}::f").schema is not None
        assert dispatcher.find_schema(f"{ns}::f.default") is dispatcher.find_schema(f"{ns}::f")
    finally:
        lib.close()
    assert snapshot_all() == before
    with pytest.raises(RuntimeError):
        dispatcher.find_schema(f"{ns}::f")


def test_impl_with_qualified_name_and_overload_handle():
    ns = fresh_ns("qualified")
    with Library(ns, "DEF") as lib, Library(ns, "IMPL") as impl:
        lib.define("f(Tensor x) -> Tensor")
        impl.impl(f"{ns}::f", lambda x: x * 3, "CPU")
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [3.0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            impl.impl(ns_ops(ns).f.default, lambda x: x * 4, "CPU")
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [4.0]


def test_impl_default_key_is_the_library_key_else_cia():
    ns = fresh_ns("default_key")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x)
        assert dispatcher.find_schema(f"{ns}::f").has_kernel_for(K.CompositeImplicitAutograd)
        with Library(ns, "IMPL", "Meta") as meta_lib:
            meta_lib.impl("f", lambda x: x)
            assert dispatcher.find_schema(f"{ns}::f").has_kernel_for(K.Meta)
        assert not dispatcher.find_schema(f"{ns}::f").has_kernel_for(K.Meta)


def test_context_manager_closes_on_exit_and_on_exception():
    ns = fresh_ns("ctx")
    with Library(ns, "DEF") as lib:
        assert isinstance(lib, Library)
        lib.define("f(Tensor x) -> Tensor")
        assert hasattr(ns_ops(ns), "f")
    assert not hasattr(ns_ops(ns), "f")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), Library(ns, "DEF") as lib2:
        lib2.define("g(Tensor x) -> Tensor")
        raise Boom
    assert not hasattr(ns_ops(ns), "g")
    # the namespace is free again
    with Library(ns, "DEF") as lib3:
        lib3.define("g(Tensor x) -> Tensor")


def test_close_is_idempotent():
    ns = fresh_ns("idem")
    lib = Library(ns, "DEF")
    lib.define("f(Tensor x) -> Tensor")
    lib.close()
    before = snapshot_all()
    lib.close()
    lib.close()
    assert snapshot_all() == before


def test_unsupported_kind():
    with pytest.raises(ValueError, match=r"^Unsupported kind: BOGUS$"):
        Library(fresh_ns("kind"), "BOGUS")


def test_fallback_registration_and_removal():
    ns = fresh_ns("fallback")
    seen: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x, *, float alpha=2.0) -> Tensor")
        lib.impl("f", lambda x, *, alpha: x * alpha, "CPU")
        x = dispatch.ones(1)
        with Library("_", "FRAGMENT") as glob:

            def fb(op, *args, **kwargs):
                seen.append((op, args, kwargs))
                return args[0]

            glob.fallback(fb, "AutogradCPU")
            out = ns_ops(ns).f(x, alpha=5.0)
            assert out is x
            assert len(seen) == 1
            op, args, kwargs = seen[0]
            assert op is ns_ops(ns).f.default
            assert args == (x,)
            assert kwargs == {"alpha": 5.0}
        # removed on close: the CPU kernel runs again
        assert ns_ops(ns).f(x, alpha=5.0).tolist() == [5.0]
        assert len(seen) == 1


def test_fallback_with_keyset():
    ns = fresh_ns("fallback_ks")
    seen: list = []
    with Library(ns, "DEF") as lib, Library("_", "FRAGMENT") as glob:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x.clone(), "CPU")

        def fb(ks, op, *args, **kwargs):
            if op is ns_ops(ns).f.default:  # the fallback serves every operator (aten::clone too)
                seen.append(ks)
            return op.redispatch(ks & dispatch.after_autograd_keyset, *args, **kwargs)

        glob.fallback(fb, "AutogradCPU", with_keyset=True)
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [1.0]
        assert seen == [KS(K.CPU, K.AutogradCPU)]
        assert isinstance(seen[0], KS)


def test_python_key_fallback_as_a_user_mode():
    """A "_" fallback at the Python key plus IncludeDispatchKeyGuard(Python) sees every call."""
    ns = fresh_ns("python_mode")
    below_python = KS.from_raw(K.Python.bit - 1)
    seen: list[str] = []
    with Library(ns, "DEF") as lib, Library("_", "FRAGMENT") as glob:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x * 2, "CPU")

        def mode(ks, op, *args, **kwargs):
            seen.append(op.name())
            assert K.Python in ks
            return op.redispatch(ks & below_python, *args, **kwargs)

        glob.fallback(mode, "Python", with_keyset=True)
        x = dispatch.ones(1)
        assert ns_ops(ns).f(x).tolist() == [2.0]
        assert seen == []  # no Python key anywhere: the fallback never runs
        with modes.IncludeDispatchKeyGuard(KS(K.Python)):
            assert ns_ops(ns).f(x).tolist() == [2.0]
        assert seen[0] == f"{ns}::f.default"
        n = len(seen)
    # closed: the Python key is a fallthrough again
    with modes.IncludeDispatchKeyGuard(KS(K.Python)):
        dispatch.ones(1) * 2
    assert len(seen) == n


# -- error texts ---------------------------------------------------------------------------


def test_def_library_is_unique_per_namespace():
    ns = fresh_ns("unique")
    with Library(ns, "DEF"):
        with pytest.raises(RuntimeError) as info:
            Library(ns, "DEF")
        expected = (
            f"Only a single TORCH_LIBRARY can be used to register the namespace {ns}; please put "
            "all of your definitions in a single TORCH_LIBRARY block.  If you were trying to "
            "specify implementations, consider using TORCH_LIBRARY_IMPL (which can be "
            "duplicated).  If you really intended to define operators for a single namespace in "
            "a distributed way, you can use TORCH_LIBRARY_FRAGMENT to explicitly indicate this.  "
            "Previous registration of TORCH_LIBRARY was registered at "
        )
        msg = str(info.value)
        assert msg.startswith(expected)
        assert re.fullmatch(
            rf"{re.escape(expected)}{HERE}:\d+; latest registration was registered at {HERE}:\d+",
            msg,
        ), msg
        # FRAGMENT and IMPL libraries may coexist with the DEF one
        with Library(ns, "FRAGMENT") as frag, Library(ns, "IMPL"):
            frag.define("from_fragment(Tensor x) -> Tensor")
            assert hasattr(ns_ops(ns), "from_fragment")
    # closing releases the namespace
    with Library(ns, "DEF"):
        pass


def test_define_in_impl_library_error():
    ns = fresh_ns("def_in_impl")
    with Library(ns, "IMPL") as lib, pytest.raises(RuntimeError) as info:
        lib.define("g(Tensor x) -> Tensor")
    expected = (
        'def("g"): Cannot define an operator inside of a TORCH_LIBRARY_IMPL block.  All def()s '
        "should be placed in the (unique) TORCH_LIBRARY block for their namespace.  (Error "
        "occurred while processing TORCH_LIBRARY_IMPL block at "
    )
    assert re.fullmatch(rf"{re.escape(expected)}{HERE}:\d+\)", str(info.value)), str(info.value)
    assert not hasattr(ns_ops(ns), "g")


def test_namespace_mismatch_error():
    ns = fresh_ns("mismatch")
    with Library(ns, "DEF") as lib:
        with pytest.raises(RuntimeError) as info:
            lib.define("other_ns::g(Tensor x) -> Tensor")
        # an explicit namespace equal to the library's is fine
        lib.define(f"{ns}::h(Tensor x) -> Tensor")
        assert hasattr(ns_ops(ns), "h")
    expected = (
        f"Explicitly provided namespace (other_ns) in schema string does not match namespace of "
        f"enclosing TORCH_LIBRARY block ({ns}).  Move this definition to the (unique) "
        "TORCH_LIBRARY block corresponding to this namespace (and consider deleting the "
        "namespace from your schema string.)  (Error occurred while processing TORCH_LIBRARY "
        "block at "
    )
    assert re.fullmatch(rf"{re.escape(expected)}{HERE}:\d+\)", str(info.value)), str(info.value)
    assert not hasattr(dispatch.ops.other_ns, "g")


@pytest.mark.parametrize(
    ("kind", "block"),
    [
        ("IMPL", "TORCH_LIBRARY_IMPL"),
        ("DEF", "TORCH_LIBRARY"),
        ("FRAGMENT", "TORCH_LIBRARY_FRAGMENT"),
    ],
)
def test_impl_namespace_mismatch_error(kind, block):
    ns, other = fresh_ns("impl_mismatch"), fresh_ns("impl_other")
    with Library(other, "DEF") as other_lib, Library(ns, kind) as lib:
        other_lib.define("g(Tensor x) -> Tensor")
        before = snapshot_all()
        with pytest.raises(RuntimeError) as info:
            lib.impl(f"{other}::g", lambda x: x, "CPU")
        assert snapshot_all() == before
    expected = (
        f'impl("{other}::g", ...): Explicitly provided namespace ({other}) in operator name does '
        f"not match namespace of enclosing {block} block ({ns}).  Move this definition to the "
        f"{block} block corresponding to this namespace (and consider deleting the namespace "
        f"from your schema string.)  (Error occurred while processing {block} block at "
    )
    assert re.fullmatch(rf"{re.escape(expected)}{HERE}:\d+\)", str(info.value)), str(info.value)


def test_impl_before_define_and_after_the_define_is_closed():
    ns = fresh_ns("impl_first")
    with Library(ns, "IMPL") as impl:
        impl.impl(f"{ns}::h", lambda x: x * 7, "CPU")
        assert not hasattr(ns_ops(ns), "h")
        with Library(ns, "DEF") as lib:
            lib.define("h(Tensor x) -> Tensor")
            assert ns_ops(ns).h(dispatch.ones(1)).tolist() == [7.0]
        assert not hasattr(ns_ops(ns), "h")
        # the kernel outlives the definition, as in torch
        assert dispatcher.find_op(f"{ns}::h").has_kernel_for(K.CPU)
        with Library(ns, "DEF") as lib:
            lib.define("h(Tensor x) -> Tensor")
            assert ns_ops(ns).h(dispatch.ones(1)).tolist() == [7.0]
    assert dispatcher.find_op(f"{ns}::h") is None


def test_duplicate_define_error():
    ns = fresh_ns("dup")
    with Library(ns, "DEF") as lib, Library(ns, "FRAGMENT") as frag:
        lib.define("f(Tensor x) -> Tensor")
        for target in (lib, frag):
            before = snapshot_all()
            with pytest.raises(RuntimeError) as info:
                target.define("f(Tensor x) -> Tensor")
            assert snapshot_all() == before
            expected = (
                f"Tried to register an operator ({ns}::f(Tensor x) -> Tensor) with the same name "
                "and overload name multiple times. Each overload's schema should only be "
                "registered with a single call to def(). Duplicate registration: registered at "
            )
            assert re.fullmatch(
                rf"{re.escape(expected)}{HERE}:\d+\. Original registration: registered at {HERE}:\d+",
                str(info.value),
            ), str(info.value)
        # a different overload name is a different operator
        lib.define("f.other(Tensor x) -> Tensor")


def test_impl_override_warns_and_replaces():
    ns = fresh_ns("override")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x * 2, "CPU")
        with pytest.warns(
            UserWarning,
            match="Overriding a previously registered kernel for the same operator and the same "
            "dispatch key",
        ) as rec:
            lib.impl("f", lambda x: x * 3, "CPU")
        msg = str(rec[0].message)
        assert f"operator: {ns}::f(Tensor x) -> Tensor" in msg
        assert "dispatch key: CPU" in msg
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [3.0]
        # no warning for a first registration at another key
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lib.impl("f", lambda x: x, "Meta")


def test_impl_allow_override_false():
    ns = fresh_ns("no_override")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x * 2, "CPU", allow_override=False)  # first one is fine
        for target in (lib, Library(ns, "IMPL")):
            try:
                before = snapshot_all()
                with pytest.raises(RuntimeError) as info:
                    target.impl("f", lambda x: x * 3, "CPU", allow_override=False)
                assert str(info.value) == (
                    "This is not allowed since there's already a kernel registered from python "
                    f"overriding f's behavior for CPU dispatch key and {ns} namespace."
                )
                assert snapshot_all() == before
            finally:
                if target is not lib:
                    target.close()
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [2.0]
        # another key is fine
        lib.impl("f", lambda x: x, "Meta", allow_override=False)


def test_allow_override_false_after_the_first_kernel_is_closed():
    ns = fresh_ns("override_closed")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        with Library(ns, "IMPL") as first:
            first.impl("f", lambda x: x * 2, "CPU")
        lib.impl("f", lambda x: x * 3, "CPU", allow_override=False)
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [3.0]


def test_fallback_only_in_the_global_namespace():
    ns = fresh_ns("fb_ns")
    for kind in ("DEF", "FRAGMENT", "IMPL"):
        with Library(ns, kind) as lib:
            before = snapshot_all()
            with pytest.raises(RuntimeError) as info:
                lib.fallback(lambda *a, **k: None, "CPU")
            assert str(info.value) == (
                'Fallback can only be registered using library fragment on the global namespace "_" '
                f"but it is {ns}"
            )
            assert snapshot_all() == before


def test_fallback_needs_a_runtime_key():
    with Library("_", "FRAGMENT") as glob:
        before = snapshot_all()
        for key in ("Autograd", "CompositeImplicitAutograd", "CompositeExplicitAutograd"):
            with pytest.raises(RuntimeError):
                glob.fallback(lambda *a, **k: None, key)
        with pytest.raises(RuntimeError, match=r"^could not parse dispatch key: Bogus$"):
            glob.fallback(lambda *a, **k: None, "Bogus")
        assert snapshot_all() == before


def test_calls_on_a_closed_library_raise():
    ns = fresh_ns("closed")
    lib = Library(ns, "DEF")
    lib.define("f(Tensor x) -> Tensor")
    lib.close()
    glob = Library("_", "FRAGMENT")
    glob.close()
    before = snapshot_all()
    # torch: `Library object has been destroyed` (an AssertionError there)
    err = (RuntimeError, AssertionError)
    with pytest.raises(err, match=r"^Library object has been destroyed$"):
        lib.define("g(Tensor x) -> Tensor")
    with pytest.raises(err, match=r"^Library object has been destroyed$"):
        lib.impl("f", lambda x: x, "CPU")
    with pytest.raises(err, match=r"^Library object has been destroyed$"):
        glob.fallback(lambda *a, **k: None, "CPU")
    assert snapshot_all() == before


def test_ops_attribute_error_after_close():
    ns = fresh_ns("gone")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x, "CPU")
        handle = ns_ops(ns).f.default
        packet = ns_ops(ns).f
        assert handle(dispatch.ones(1)).tolist() == [1.0]
    with pytest.raises(AttributeError) as info:
        _ = ns_ops(ns).f
    assert str(info.value) == f"'_OpNamespace' '{ns}' object has no attribute 'f'"
    assert not hasattr(ns_ops(ns), "f")
    assert "f" not in dir(ns_ops(ns))
    # handles taken before close no longer run anything
    with pytest.raises(RuntimeError):
        handle(dispatch.ones(1))
    with pytest.raises((RuntimeError, TypeError, AttributeError)):
        packet(dispatch.ones(1))


def test_ops_attribute_error_for_unknown_op():
    with pytest.raises(
        AttributeError, match=r"^'_OpNamespace' 't_lib_nowhere' object has no attribute 'nope'$"
    ):
        _ = dispatch.ops.t_lib_nowhere.nope
    with pytest.raises(AttributeError):
        _ = dispatch.ops.aten.add.no_such_overload


# -- failed registrations change nothing ------------------------------------------------------


def test_failed_registrations_leave_every_table_unchanged():
    ns = fresh_ns("failed")
    with (
        Library(ns, "DEF") as lib,
        Library("_", "FRAGMENT") as glob,
        Library("aten", "IMPL") as aten,
    ):
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda x: x, "CPU")
        before = snapshot_all()
        attempts = [
            (RuntimeError, lambda: lib.impl("f", lambda x: x, "NotAKey")),
            (RuntimeError, lambda: lib.impl("f", lambda x: x, "cpu")),
            (RuntimeError, lambda: aten.impl("add.Tensor", lambda *a: None, "Bogus")),
            (RuntimeError, lambda: lib.define("g(Tensor x -> Tensor")),
            (RuntimeError, lambda: lib.define("h(Tensor(a! x) -> Tensor")),
            (RuntimeError, lambda: lib.define("(Tensor x) -> Tensor")),
            (TypeError, lambda: lib.impl("f", 3, "CPU")),
            (TypeError, lambda: lib.impl("f", None, "Meta")),
            (TypeError, lambda: aten.impl("mul.Tensor", "not a function", "CPU")),
            (RuntimeError, lambda: glob.fallback(lambda *a: None, "NotAKey")),
            (RuntimeError, lambda: glob.fallback(lambda *a: None, "Autograd")),
            (RuntimeError, lambda: lib.fallback(lambda *a: None, "CPU")),
            (RuntimeError, lambda: lib.define("f(Tensor x) -> Tensor")),
            (RuntimeError, lambda: lib.impl("f", lambda x: x, "CPU", allow_override=False)),
        ]
        for exc, attempt in attempts:
            with pytest.raises(exc):
                attempt()
            assert snapshot_all() == before
        assert not hasattr(ns_ops(ns), "g")
        assert ns_ops(ns).f(dispatch.ones(1)).tolist() == [1.0]
    # and closing after the failures restores the state from before the libraries
    assert f"{ns}::f" not in dispatcher.operators


def test_bad_schema_error_is_torch_style():
    ns = fresh_ns("bad_schema")
    with Library(ns, "DEF") as lib, pytest.raises(RuntimeError) as info:
        lib.define("h(Tensor x -> Tensor")
    assert str(info.value).startswith(
        "expected ) but found 'arrow' here:\nh(Tensor x -> Tensor\n           ~~ <--- HERE\n"
    )


# -- kernel calling conventions ---------------------------------------------------------------


def test_with_keyset_kernel_receives_a_keyset_and_redispatches():
    ns = fresh_ns("with_keyset")
    seen: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")

        def autograd_kernel(ks, x):
            seen.append(ks)
            below = ks & dispatch.after_autograd_keyset
            return dispatch.redispatch(ns_ops(ns).f.default, below, x)

        def cpu_kernel(x):
            seen.append("cpu")
            return x * 10

        lib.impl("f", autograd_kernel, "Autograd", with_keyset=True)
        lib.impl("f", cpu_kernel, "CPU")
        lib.impl("f", lambda x: x.clone(), "Meta")
        x = dispatch.ones(2)
        with dispatch.trace() as tr:
            out = ns_ops(ns).f(x)
        assert out.tolist() == [10.0, 10.0]
        assert isinstance(seen[0], KS)
        assert seen == [KS(K.CPU, K.AutogradCPU), "cpu"]
        ours = [(e.key, e.redispatch) for e in tr.events if e.op == f"{ns}::f"]
        assert ours == [("AutogradCPU", False), ("CPU", True)]
        # the OpOverload method form
        seen.clear()

        def autograd_kernel2(ks, x):
            seen.append(ks)
            return ns_ops(ns).f.default.redispatch(ks & dispatch.after_autograd_keyset, x)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lib.impl("f", autograd_kernel2, "Autograd", with_keyset=True)
        assert ns_ops(ns).f(dispatch.ones(1, device="meta")).shape == (1,)
        assert seen == [KS(K.Meta, K.AutogradMeta)]


def test_with_keyset_cpu_kernel_sees_what_is_left():
    ns = fresh_ns("ks_cpu")
    seen: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl("f", lambda ks, x: seen.append(ks) or x, "CPU", with_keyset=True)
        ns_ops(ns).f(dispatch.ones(1))
        with modes.inference_mode():
            ns_ops(ns).f(dispatch.ones(1))
        assert seen == [KS(K.CPU), KS(K.CPU)]
        assert all(isinstance(s, KS) for s in seen)


def test_kwarg_only_arguments_are_passed_by_keyword():
    ns = fresh_ns("kwonly")
    calls: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x, float a, *, float alpha=1.0, int beta) -> Tensor")

        # kw-only parameters: positional passing would fail. (torch omits arguments equal to
        # their schema default when it calls a Python kernel, so alpha keeps its default here.)
        def kernel(x, a, *, alpha=1.0, beta):
            calls.append((a, alpha, beta))
            return x * (a + alpha + beta)

        def ag_kernel(ks, x, a, *, alpha=1.0, beta):
            calls.append(("ag", alpha, beta))
            return dispatch.redispatch(
                ns_ops(ns).f.default,
                ks & dispatch.after_autograd_keyset,
                x,
                a,
                alpha=alpha,
                beta=beta,
            )

        lib.impl("f", kernel, "CPU")
        lib.impl("f", ag_kernel, "AutogradCPU", with_keyset=True)
        x = dispatch.ones(1)
        assert ns_ops(ns).f(x, 1.0, beta=3).tolist() == [5.0]
        assert ns_ops(ns).f(x, 1.0, alpha=2.0, beta=3).tolist() == [6.0]
        assert ns_ops(ns).f(x, a=1.0, beta=4).tolist() == [6.0]
        assert calls == [
            ("ag", 1.0, 3),
            (1.0, 1.0, 3),
            ("ag", 2.0, 3),
            (1.0, 2.0, 3),
            ("ag", 1.0, 4),
            (1.0, 1.0, 4),
        ]
        n = len(calls)
        # torch: RuntimeError "f() is missing value for argument 'beta'" / "takes 2 positional
        # argument(s) but 4 was/were given"
        with pytest.raises((TypeError, RuntimeError)):
            ns_ops(ns).f(x, 1.0)  # beta is required
        assert len(calls) == n


def test_kwarg_only_arguments_cannot_be_passed_positionally():
    # torch: RuntimeError "ns::f() takes 2 positional argument(s) but 4 was/were given. ..."
    ns = fresh_ns("kwonly_pos")
    calls: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x, float a, *, float alpha=1.0, int beta) -> Tensor")
        lib.impl("f", lambda x, a, *, alpha=1.0, beta: calls.append(1) or x, "CPU")
        for args in ((1.0, 2.0, 3), (1.0, 2.0)):
            with pytest.raises((TypeError, RuntimeError), match="positional"):
                ns_ops(ns).f(dispatch.ones(1), *args)
        assert calls == []


def test_python_numbers_become_wrapped_number_tensors():
    ns = fresh_ns("wrapped")
    seen: list = []
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x, Tensor y) -> Tensor")

        def kernel(x, y):
            seen.append(y)
            return x.clone()

        lib.impl("f", kernel, "CPU")
        for value, dtype in ((2.5, dispatch.float64), (3, dispatch.int64), (True, dispatch.bool_)):
            seen.clear()
            ns_ops(ns).f(dispatch.ones(1), value)
            (y,) = seen
            assert isinstance(y, dispatch.Tensor)
            assert y.dim() == 0
            assert y.item() == value
            assert y.dtype == dtype
            assert y._is_wrapped_number
            # a normal tensor: carries the autograd keys, never requires grad
            assert y.key_set == KS(K.CPU, K.ADInplaceOrView, K.AutogradCPU)
            assert not y.is_inference()
            assert not y.requires_grad


def test_wrapped_number_brings_the_autograd_key_to_an_inference_tensor():
    # reference (f).2: the wrapped number is normal, so Autograd runs even though the
    # only tensor argument is an inference tensor
    ns = fresh_ns("wrapped_keys")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x, Tensor y) -> Tensor")
        lib.impl("f", lambda x, y: x.clone(), "CPU")
        with modes.inference_mode():
            inf = dispatch.ones(1)
        with dispatch.trace() as tr:
            ns_ops(ns).f(inf, 1.0)
        first = next(e for e in tr.events if e.op == f"{ns}::f")
        assert first.key == "AutogradCPU"
        assert first.keyset == KS(K.CPU, K.AutogradCPU)
        with dispatch.trace() as tr:
            ns_ops(ns).f(inf, inf)
        first = next(e for e in tr.events if e.op == f"{ns}::f")
        assert first.key == "CPU"


# -- missing-kernel errors -----------------------------------------------------------------------


def _could_not_run(name: str, backend: str) -> str:
    return (
        f"Could not run '{name}' with arguments from the '{backend}' backend. This could be "
        "because the operator doesn't exist for this backend, or was omitted during the "
        "selective/custom build process (if using custom build). If you are a Facebook employee "
        "using PyTorch on mobile, please visit https://fburl.com/ptmfixes for possible "
        f"resolutions. '{name}' is only available for these backends: {MODELLED_AVAILABLE}."
    )


def test_missing_kernel_with_tensor_args():
    ns = fresh_ns("missing")
    with Library(ns, "DEF") as lib:
        lib.define("no_kernel(Tensor x) -> Tensor")
        with pytest.raises(NotImplementedError) as info:
            ns_ops(ns).no_kernel(dispatch.ones(1))
        msg = str(info.value)
        head, sep, table = msg.partition("\n\n")
        assert head == _could_not_run(f"{ns}::no_kernel", "CPU")
        assert sep == "\n\n"
        assert table == dispatch.dump_table(f"{ns}::no_kernel")
        # the same through requires_grad (Autograd fallback) and inference mode
        with pytest.raises(NotImplementedError, match=re.escape(head)):
            ns_ops(ns).no_kernel(dispatch.ones(1, requires_grad=True))
        with modes.inference_mode(), pytest.raises(NotImplementedError, match=re.escape(head)):
            ns_ops(ns).no_kernel(dispatch.ones(1))


def test_missing_backend_kernel_below_an_autograd_kernel():
    ns = fresh_ns("missing_below")
    with Library(ns, "DEF") as lib:
        lib.define("f(Tensor x) -> Tensor")
        lib.impl(
            "f",
            lambda ks, x: dispatch.redispatch(
                ns_ops(ns).f.default, ks & dispatch.after_autograd_keyset, x
            ),
            "Autograd",
            with_keyset=True,
        )
        with pytest.raises(NotImplementedError) as info:
            ns_ops(ns).f(dispatch.ones(1))
        head = str(info.value).partition("\n\n")[0]
        assert head == _could_not_run(f"{ns}::f", "CPU")


def test_missing_kernel_with_no_tensor_args():
    ns = fresh_ns("no_tensors")
    with Library(ns, "DEF") as lib:
        lib.define("no_tensor_args(int x) -> Tensor")
        with pytest.raises(NotImplementedError) as info:
            ns_ops(ns).no_tensor_args(3)
        head, _, table = str(info.value).partition("\n\n")
        assert head == (
            "There were no tensor arguments to this function (e.g., you passed an empty list of "
            "Tensors), but no fallback function is registered for schema "
            f"{ns}::no_tensor_args.  This usually means that this function requires a non-empty "
            "list of Tensors, or that you (the operator writer) forgot to register a fallback "
            f"function.  Available functions are {MODELLED_AVAILABLE}."
        )
        assert table == dispatch.dump_table(f"{ns}::no_tensor_args")


def test_missing_meta_kernel():
    ns = fresh_ns("meta")
    with Library(ns, "DEF") as lib:
        lib.define("only_cpu(Tensor x) -> Tensor")
        lib.impl("only_cpu", lambda x: x * 2, "CPU")
        expected = (
            f"{ns}::only_cpu: attempted to run this operator with Meta tensors, but there was no "
            "fake impl or Meta kernel registered. You may have run into this message while using "
            "an operator with PT2 compilation APIs (torch.compile/torch.export); in order to use "
            "this operator with those APIs you'll need to add a fake impl. Please see the "
            "following for next steps:  "
            "https://pytorch.org/tutorials/advanced/custom_ops_landing_page.html"
        )
        for rg in (False, True):
            with pytest.raises(NotImplementedError) as info:
                ns_ops(ns).only_cpu(dispatch.ones(1, device="meta", requires_grad=rg))
            assert str(info.value) == expected
        # a Meta kernel fixes it
        lib.impl("only_cpu", lambda x: x.clone(), "Meta")
        assert ns_ops(ns).only_cpu(dispatch.ones(2, device="meta")).shape == (2,)


@pytest.mark.oracle
def test_missing_kernel_texts_match_torch():
    torch = pytest.importorskip("torch")
    from torch.library import Library as TLibrary

    modelled = {k.name for k in dispatch.keys.RUNTIME_KEYS}

    def filtered(msg: str) -> str:
        head = msg.partition("\n\n")[0]

        def keep(m: re.Match) -> str:
            keys = [k for k in m.group(1).split(", ") if k in modelled]
            return "[" + ", ".join(keys) + "]"

        return re.sub(r"\[([A-Za-z0-9_, ]+)\]\.", lambda m: keep(m) + ".", head)

    ns = fresh_ns("oracle_missing")
    tlib = TLibrary(ns, "DEF")
    try:
        with Library(ns, "DEF") as lib:
            for L in (tlib, lib):
                L.define("no_kernel(Tensor x) -> Tensor")
                L.define("no_tensor_args(int x) -> Tensor")
                L.define("only_cpu(Tensor x) -> Tensor")
            tlib.impl("only_cpu", lambda x: x * 2, "CPU")
            lib.impl("only_cpu", lambda x: x * 2, "CPU")
            cases = [
                (
                    "no_kernel",
                    lambda o: o.no_kernel(torch.ones(1)),
                    lambda o: o.no_kernel(dispatch.ones(1)),
                ),
                ("no_tensor_args", lambda o: o.no_tensor_args(3), lambda o: o.no_tensor_args(3)),
                (
                    "only_cpu meta",
                    lambda o: o.only_cpu(torch.ones(1, device="meta")),
                    lambda o: o.only_cpu(dispatch.ones(1, device="meta")),
                ),
            ]
            for label, theirs_fn, ours_fn in cases:
                with pytest.raises(NotImplementedError) as theirs:
                    theirs_fn(getattr(torch.ops, ns))
                with pytest.raises(NotImplementedError) as ours:
                    ours_fn(ns_ops(ns))
                assert filtered(str(ours.value)) == filtered(str(theirs.value)), label
    finally:
        tlib._destroy()


# -- a user-defined in-place op ----------------------------------------------------------------


class ScaleOp:
    """`scale_(Tensor(a!) self, float s) -> Tensor(a!)` with only a CPU kernel."""

    def __init__(self, lib: Library, ns: str, via_aten: bool = False) -> None:
        self.calls = 0
        lib.define("scale_(Tensor(a!) self, float s) -> Tensor(a!)")

        def scale_numpy(self_, s):
            self.calls += 1
            self_.numpy()[...] *= s
            return self_

        def scale_aten(self_, s):
            self.calls += 1
            return self_.mul_(s)  # an aten in-place call inside the kernel

        lib.impl("scale_", scale_aten if via_aten else scale_numpy, "CPU")
        self.op = ns_ops(ns).scale_

    def __call__(self, t, s):
        return self.op(t, s)


@pytest.mark.parametrize("via_aten", [False, True], ids=["numpy", "aten_mul_"])
def test_user_inplace_op_bumps_version_exactly_once(via_aten):
    ns = fresh_ns("scale")
    with Library(ns, "DEF") as lib:
        scale_ = ScaleOp(lib, ns, via_aten)
        table = {te.key.name: te for te in dispatcher.find_schema(f"{ns}::scale_").table}
        # nobody registered anything at ADInplaceOrView: the kernel comes from the schema
        assert table["ADInplaceOrView"].provenance == "kernel"
        assert not table["ADInplaceOrView"].is_fallthrough
        assert table["AutogradCPU"].provenance == "backend fallback"
        t = dispatch.ones(3)
        assert t._version == 0
        with dispatch.trace() as tr:
            out = scale_(t, 2.0)
        assert out is t
        assert t.tolist() == [2.0, 2.0, 2.0]
        assert t._version == 1
        ours = [e.key for e in tr.events if e.op == f"{ns}::scale_"]
        assert ours == ["AutogradCPU", "ADInplaceOrView", "CPU"]
        scale_(t, 3.0)
        assert t._version == 2
        assert t.tolist() == [6.0, 6.0, 6.0]
        assert scale_.calls == 2
        with modes.no_grad():
            scale_(t, 1.0)
        assert t._version == 3


def test_user_inplace_op_bumps_a_views_shared_counter():
    ns = fresh_ns("scale_view")
    with Library(ns, "DEF") as lib:
        scale_ = ScaleOp(lib, ns)
        base = dispatch.ones(2, 3)
        v = base[0]
        w = base.view(6)
        assert v._is_view()
        assert (base._version, v._version, w._version) == (0, 0, 0)
        scale_(v, 5.0)
        assert (base._version, v._version, w._version) == (1, 1, 1)
        assert base.tolist() == [[5.0, 5.0, 5.0], [1.0, 1.0, 1.0]]
        scale_(base, 2.0)
        assert (base._version, v._version, w._version) == (2, 2, 2)
        assert v.tolist() == [10.0, 10.0, 10.0]


def test_user_inplace_op_on_inference_tensor_outside_inference_mode():
    ns = fresh_ns("scale_inf")
    with Library(ns, "DEF") as lib:
        scale_ = ScaleOp(lib, ns)
        with modes.inference_mode():
            inf = dispatch.ones(3)
        assert inf.is_inference()
        for guard in (modes.no_grad, modes.enable_grad):
            with guard(), pytest.raises(RuntimeError) as info:
                scale_(inf, 7.0)
            assert str(info.value) == INFERENCE_INPLACE_ERROR
        # raised before the data is touched: the CPU kernel never ran
        assert scale_.calls == 0
        assert inf.tolist() == [1.0, 1.0, 1.0]


def test_user_inplace_op_inside_inference_mode():
    ns = fresh_ns("scale_im")
    with Library(ns, "DEF") as lib:
        scale_ = ScaleOp(lib, ns)
        normal = dispatch.ones(3)
        with modes.inference_mode():
            inf = dispatch.ones(3)
            with dispatch.trace() as tr:
                scale_(inf, 2.0)  # no counter, no error, no bump
            # an inference tensor inside inference mode skips ADInplaceOrView entirely
            assert [e.key for e in tr.events if e.op == f"{ns}::scale_"] == ["CPU"]
            scale_(normal, 2.0)  # a normal tensor still bumps in inference mode
        assert inf.tolist() == [2.0, 2.0, 2.0]
        with pytest.raises(
            RuntimeError, match=r"^Inference tensors do not track version counter\.$"
        ):
            _ = inf._version
        assert normal._version == 1
        assert normal.tolist() == [2.0, 2.0, 2.0]
        assert scale_.calls == 2


def test_user_inplace_op_below_adinplaceorview_does_not_bump():
    ns = fresh_ns("scale_below")
    with Library(ns, "DEF") as lib:
        scale_ = ScaleOp(lib, ns)
        t = dispatch.ones(2)
        with modes.AutoDispatchBelowADInplaceOrView():
            scale_(t, 2.0)
        assert t._version == 0
        with modes.AutoDispatchBelowAutograd():
            scale_(t, 2.0)
        assert t._version == 1
        assert t.tolist() == [4.0, 4.0]


def test_user_inplace_op_closed_library_removes_the_derived_kernel():
    ns = fresh_ns("scale_closed")
    with Library(ns, "DEF") as lib:
        ScaleOp(lib, ns)
        assert dispatcher.find_schema(f"{ns}::scale_").derived
    assert dispatcher.find_op(f"{ns}::scale_") is None


@pytest.mark.parametrize("requires_grad", [False, True])
def test_user_view_op_returning_its_input_object_is_not_its_own_view(requires_grad):
    """A kernel of ``(Tensor(a) x) -> Tensor(a)`` that returns ``x`` itself: torch hands the
    same object back, not a view (the derived ADInplaceOrView kernel once made ``x`` its own
    ``_base``, and reading ``requires_grad`` then recursed forever)."""
    ns = fresh_ns("ident")
    with Library(ns, "DEF") as lib:
        lib.define("ident(Tensor(a) x) -> Tensor(a)")
        lib.impl("ident", lambda x: x, "CPU")
        t = dispatch.ones(3, requires_grad=requires_grad)
        r = getattr(dispatch.ops, ns).ident(t)
        assert r is t
        assert not r._is_view() and r._base is None
        assert r.requires_grad is requires_grad
