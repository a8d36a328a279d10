"""Reliability under bad input (issue #6, point 5c).

Each kind of bad input gets its clear error and leaves the registry (every operator's
table, kernels and schema; the fallbacks; the packets; the Library bookkeeping) exactly as
it was:

* the schema parser, fuzzed through ``Library.define`` with token soups and mutated
  schemas: a definition or a ``SchemaParseError`` with its position, never anything else;
* wrong argument counts and types for drawn schemas: a ``TypeError`` quoting the schema,
  and the kernel never runs;
* unknown dispatch keys and namespaces, duplicate definitions, calls on closed libraries.

``COUNTS`` records how many examples each part ran; printed at the end of the module.
"""

from __future__ import annotations

import itertools
import string
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dispatch
from dispatch import Library, SchemaParseError
from dispatch.dispatcher import dispatcher
from dispatch.schema import NO_DEFAULT
from dispatch.testing import op_calls, schemas
from dispatch.tls import state as _tls

COUNTS: dict[str, int] = {
    "define_fuzz": 0,
    "define_fuzz_parsed": 0,
    "bad_calls": 0,
    "bad_keys": 0,
    "bad_namespaces": 0,
    "duplicates": 0,
    "closed_library_calls": 0,
}
_counter = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Any:
    yield
    line = "reliability[bad_input]: " + ", ".join(f"{k}={v}" for k, v in COUNTS.items())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


def fresh_ns(tag: str) -> str:
    return f"rel_bad_{tag}_{next(_counter)}"


def registry() -> tuple[Any, ...]:
    """Every operator's table, kernels and schema; fallbacks; packets; Library bookkeeping."""
    from dispatch import library as library_mod

    return (
        {
            name: (
                e.table,
                e.dispatch_state,
                e.schema is not None and str(e.schema),
                e.binder,
                {k: tuple(v) for k, v in e.kernels.items()},
                dict(e.derived),
            )
            for name, e in dispatcher.operators.items()
        },
        {k: tuple(v) for k, v in dispatcher.fallbacks.items()},
        {q: tuple(p._overloads.items()) for q, p in dispatcher.packets.items()},
        frozenset(library_mod._impls),
        dict(library_mod._def_libraries),
    )


def tls() -> tuple[Any, ...]:
    return (_tls.included, _tls.excluded, _tls.grad_mode, _tls.inference_mode)


# ---------------------------------------------------------------------------------------
# the schema parser, through Library.define
# ---------------------------------------------------------------------------------------
TOKENS = (
    "f", "g.out", "x", "y", "self", "Tensor", "Tensor(a)", "Tensor(a!)", "Tensor(a -> *)",
    "Tensor?", "Tensor[]", "int", "int[2]", "int?", "SymInt", "SymInt[]", "float", "bool",
    "str", "Scalar", "Scalar?", "ScalarType?", "Device", "Layout?", "*", "...", "(", ")",
    "[", "]", ",", " ", "->", "=", "?", "!", "|", ":", "::", "1", "-1", "0.5", "True", "None",
    "'s'", '"', "[]", "[0, 1]", "a", "b", "1e999", "9999999999999999999999", "\\", "\n",
    "(a!)", "(b)", "Tensor(a!)[]", "()", "out", "Dimname", "__torch__.torch.classes.ns.C",
)  # fmt: skip


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    """Schema-shaped text: a name, '(', tokens, ')', '->', tokens (often nearly valid)."""
    args = draw(st.lists(st.sampled_from(TOKENS), max_size=12))
    rets = draw(st.lists(st.sampled_from(TOKENS), max_size=4))
    head = draw(st.sampled_from(["f(", "h.o(", "(", "", "ns::f("]))
    close = draw(st.sampled_from([") -> ", ")->", ") ", " -> "]))
    return head + " ".join(args) + close + " ".join(rets)


@st.composite
def mutated_schema(draw: st.DrawFn) -> str:
    text = str(draw(schemas(namespace=None)))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        ch = draw(st.one_of(st.sampled_from(TOKENS), st.characters()))
        cut = draw(st.integers(0, 2))
        text = text[:pos] + ch + text[pos + cut :]
    return text


@settings(
    max_examples=settings().max_examples * 4,  # ci: 240, thorough: 4000
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.one_of(token_soup(), mutated_schema(), st.text(max_size=40)))
def test_define_fuzz_gives_a_schema_or_a_positioned_schema_error(text: str):
    ns = fresh_ns("def")
    COUNTS["define_fuzz"] += 1
    with Library(ns, "DEF") as lib:
        before = registry()
        try:
            name = lib.define(text)
        except SchemaParseError as e:
            assert 0 <= e.position <= len(text)
            assert e.expected and f"(position {e.position})" in str(e)
            assert registry() == before, "a schema error changed the registry"
            return
        except RuntimeError as e:  # a namespace written into the schema: torch's text
            assert "Explicitly provided namespace" in str(e) and ns in str(e), repr(e)
            assert registry() == before
            return
        COUNTS["define_fuzz_parsed"] += 1
        packet = getattr(getattr(dispatch.ops, ns), name)
        assert len(packet.overloads()) == 1
        op = getattr(packet, packet.overloads()[0])
        assert str(op._schema) == str(dispatch.parse_schema(str(op._schema)))
    assert not hasattr(getattr(dispatch.ops, ns), name)


# ---------------------------------------------------------------------------------------
# wrong argument counts and types
# ---------------------------------------------------------------------------------------
class WrongType:
    def __repr__(self) -> str:
        return "WrongType()"


WRONG_FOR = {  # base type -> a value its argument must refuse
    "Tensor": "a string",
    "int": "a string",
    "SymInt": 1.5,
    "float": "a string",
    "Scalar": "a string",
    "bool": WrongType(),
    "str": 3,
}


@pytest.mark.parametrize("how", ["too_many", "unknown_kwarg", "missing", "twice", "wrong_type"])
@settings(
    max_examples=max(1, settings().max_examples // 2),  # ci: 30 per mistake, thorough: 500
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(schemas(namespace=None), st.data())
def test_wrong_argument_counts_and_types_raise_a_type_error_quoting_the_schema(
    how: str, schema: Any, data: st.DataObject
):
    ns = fresh_ns("args")
    ran: list[int] = []

    def kernel(*a: Any, **k: Any) -> Any:
        ran.append(1)
        raise AssertionError("the kernel must not run for a call that does not bind")

    with Library(ns, "DEF") as lib, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = lib.define(str(schema))
        lib.impl(name, kernel, "CompositeExplicitAutograd")
        lib.impl(name, kernel, "CompositeImplicitAutograd")
        op = getattr(getattr(getattr(dispatch.ops, ns), name), schema.overload_name or "default")
        call = data.draw(op_calls(op, use_defaults=False))
        real = op._schema
        positional = [a for a in real.arguments if not a.kwarg_only]
        args, kwargs = list(call.args), dict(call.kwargs)
        choices = ["too_many", "unknown_kwarg"]
        if positional:
            choices.append("twice")
        if real.arguments:
            choices.append("missing")
        typed = [
            (i, a)
            for i, a in enumerate(real.arguments)
            if a.base_type in WRONG_FOR and not a.is_list and i < len(args)
        ]
        typed += [
            (i, a)
            for i, a in enumerate(real.arguments)
            if a.base_type in WRONG_FOR and not a.is_list and a.name in kwargs
        ]
        if typed:
            choices.append("wrong_type")
        assume(how in choices)
        if how == "too_many":
            args += [None] * (len(positional) - len(args) + 1)
            kwargs = {k: v for k, v in kwargs.items() if k not in {a.name for a in positional}}
        elif how == "unknown_kwarg":
            kwargs["no_such_argument"] = 1
        elif how == "missing":
            args, kwargs = [], {}  # nothing at all: the first argument without default
            assume(any(a.default is NO_DEFAULT for a in real.arguments))
        elif how == "twice":
            assume(args)
            kwargs[positional[0].name] = args[0]
        else:
            i, a = data.draw(st.sampled_from(typed), label="argument")
            bad = WRONG_FOR[a.base_type]
            if i < len(args):
                args[i] = bad
            else:
                kwargs[a.name] = bad
        tensors = [v for v in [*args, *kwargs.values()] if isinstance(v, dispatch.Tensor)]
        versions = [t._version_counter.version if t._version_counter else None for t in tensors]
        before, tls_before = registry(), tls()
        COUNTS["bad_calls"] += 1
        COUNTS[f"bad_calls_{how}"] = COUNTS.get(f"bad_calls_{how}", 0) + 1
        with pytest.raises(TypeError) as info:
            op(*args, **kwargs)
        assert str(real) in str(info.value), f"{how}: {info.value}"
        assert ran == []
        assert registry() == before and tls() == tls_before
        after = [t._version_counter.version if t._version_counter else None for t in tensors]
        assert after == versions


# ---------------------------------------------------------------------------------------
# unknown keys and namespaces
# ---------------------------------------------------------------------------------------
KEY_NAMES = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["cpu", "CUDA", "PrivateUse1", "Autograd ", "XLA", "autograd", "Lazy"]),
)


@given(KEY_NAMES)
def test_unknown_dispatch_keys_are_refused_and_change_nothing(key: str):
    assume(key not in dispatch.DispatchKey.__members__)
    COUNTS["bad_keys"] += 1
    ns = fresh_ns("keys")
    with Library(ns, "DEF") as lib, Library("_", "FRAGMENT") as glob:
        lib.define("f(Tensor x) -> Tensor")
        before = registry()
        message = f"could not parse dispatch key: {key}"
        with pytest.raises(RuntimeError, match="could not parse dispatch key") as e1:
            lib.impl("f", lambda x: x, key)
        with pytest.raises(RuntimeError, match="could not parse dispatch key") as e2:
            glob.fallback(lambda *a, **k: None, key)
        with pytest.raises(RuntimeError, match="could not parse dispatch key") as e3:
            Library(ns, "IMPL", key)
        assert str(e1.value) == str(e2.value) == str(e3.value) == message
        assert registry() == before


@given(st.text(alphabet=string.ascii_letters + string.digits + "_-. :", max_size=12))
def test_bad_and_unknown_namespaces(ns: str):
    COUNTS["bad_namespaces"] += 1
    before = registry()
    if not ns or not ns.replace("_", "a").isidentifier():
        with pytest.raises(ValueError, match="invalid namespace"):
            Library(ns, "FRAGMENT")
    else:
        name = f"rel_bad_unknown_{ns}"
        with pytest.raises(AttributeError, match=f"'{name}' object has no attribute 'f'"):
            getattr(dispatch.ops, name).f  # noqa: B018
        other = fresh_ns("other")
        with Library(other, "FRAGMENT") as lib:
            with pytest.raises(RuntimeError, match="Explicitly provided namespace"):
                lib.impl(f"{name}::f", lambda x: x, "CPU")
            with pytest.raises(RuntimeError, match="Explicitly provided namespace"):
                lib.define(f"{name}::f(Tensor x) -> Tensor")
    assert registry() == before


# ---------------------------------------------------------------------------------------
# duplicate definitions, closed libraries
# ---------------------------------------------------------------------------------------
@given(schemas(namespace=None))
def test_duplicate_definitions_are_refused_and_change_nothing(schema):
    COUNTS["duplicates"] += 1
    ns = fresh_ns("dup")
    with Library(ns, "DEF") as lib, Library(ns, "FRAGMENT") as frag:
        lib.define(str(schema))
        before = registry()
        for target in (lib, frag):
            with pytest.raises(RuntimeError, match="Tried to register an operator") as e:
                target.define(str(schema))
            assert "with the same name and overload name multiple times" in str(e.value)
        with pytest.raises(RuntimeError, match="Only a single TORCH_LIBRARY"):
            Library(ns, "DEF")
        assert registry() == before
    assert ns not in dispatch.library._def_libraries


def test_calls_on_closed_libraries():
    ns = fresh_ns("closed")
    start = registry()
    lib = Library(ns, "DEF")
    lib.define("f(Tensor x) -> Tensor")
    lib.impl("f", lambda x: x * 2, "CPU")
    op = getattr(dispatch.ops, ns).f.default
    assert op(dispatch.ones(1)).tolist() == [2.0]
    lib.close()
    assert registry() == start
    for attempt in (
        lambda: lib.define("g(Tensor x) -> Tensor"),
        lambda: lib.impl("f", lambda x: x, "CPU"),
        lambda: lib.fallback(lambda *a, **k: None, "CPU"),
    ):
        COUNTS["closed_library_calls"] += 1
        with pytest.raises(RuntimeError, match=r"^Library object has been destroyed$"):
            attempt()
        assert registry() == start
    with pytest.raises(RuntimeError, match=f"operator {ns}::f has been deregistered"):
        op(dispatch.ones(1))
    with pytest.raises(AttributeError, match="object has no attribute 'f'"):
        getattr(dispatch.ops, ns).f  # noqa: B018
    lib.close()  # idempotent
    assert registry() == start
    COUNTS["closed_library_calls"] += 2


# torch 2.13's texts (its last line, "Cast error details: ...", is left out by dispatchsim)
TORCH_TYPE_ERRORS = [
    (
        lambda x: dispatch.ops.aten.add.Tensor(x, x, alpha="s"),
        "aten::add() Expected a value of type 'number' for argument 'alpha' but instead found "
        "type 'str'.\nPosition: 2\nValue: 's'\nDeclaration: aten::add.Tensor(Tensor self, "
        "Tensor other, *, Scalar alpha=1) -> Tensor",
    ),
    (
        lambda x: dispatch.ops.aten.sum.dim_IntList(x, "a"),
        "aten::sum() Expected a value of type 'Optional[List[int]]' for argument 'dim' but "
        "instead found type 'str'.\nPosition: 1\nValue: 'a'\nDeclaration: "
        "aten::sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *, "
        "ScalarType? dtype=None) -> Tensor",
    ),
    (
        lambda x: dispatch.ops.aten.select.int(x, 0.5, 0),
        "aten::select() Expected a value of type 'int' for argument 'dim' but instead found "
        "type 'float'.\nPosition: 1\nValue: 0.5\nDeclaration: aten::select.int(Tensor(a) self, "
        "int dim, SymInt index) -> Tensor(a)",
    ),
    (
        lambda x: dispatch.ops.aten.mul.Scalar(x, "a"),
        "aten::mul() Expected a value of type 'number' for argument 'other' but instead found "
        "type 'str'.\nPosition: 1\nValue: 'a'\nDeclaration: aten::mul.Scalar(Tensor self, "
        "Scalar other) -> Tensor",
    ),
]


@pytest.mark.parametrize("i", range(len(TORCH_TYPE_ERRORS)))
def test_non_tensor_argument_type_errors_are_torchs(i: int):
    f, message = TORCH_TYPE_ERRORS[i]
    x = dispatch.ones(2)
    with pytest.raises(TypeError) as e:
        f(x)
    assert str(e.value) == message


def test_keyword_arguments_named_self_bind():
    """torch's OpOverload takes ``self`` (and ``ks``) as keywords: its own parameter is
    positional-only."""
    x = dispatch.ones(2)
    assert dispatch.ops.aten.add.Tensor(self=x, other=x).tolist() == [2.0, 2.0]
    assert dispatch.ops.aten.add(self=x, other=x).tolist() == [2.0, 2.0]
    assert dispatch.ops.aten.sum.dim_IntList(x, 0).tolist() == 2.0  # int[1] takes one int
