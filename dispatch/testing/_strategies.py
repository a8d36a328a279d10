"""Hypothesis strategies for dispatchsim: keys, key sets, guards and guard sequences,
thread-local states, tensors of every kind, operator schemas, well-typed operator
calls and whole random programs."""

from __future__ import annotations

import keyword
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs
import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

import dispatch
import modes
from dispatch.dispatcher import OpOverload, OpOverloadPacket, dispatcher
from dispatch.dtypes import DType
from dispatch.keys import ALIAS_KEYS, RUNTIME_KEYS, DispatchKey
from dispatch.keyset import DispatchKeySet
from dispatch.schema import NO_DEFAULT, Argument, FunctionSchema, parse_schema
from dispatch.tensorimpl import Tensor
from dispatch.testing._model import GuardSpec, GuardStack, GuardStep, TLSState, default_tls

__all__ = [
    "OpCall",
    "Program",
    "ProgramRun",
    "Step",
    "StepOutcome",
    "dispatch_keys",
    "guard_stacks",
    "guards",
    "keysets",
    "op_calls",
    "programs",
    "resolve_op",
    "schemas",
    "tensors",
    "tls_states",
]

K = DispatchKey

# ---------------------------------------------------------------------------------------
# keys, key sets, guards, thread-local states
# ---------------------------------------------------------------------------------------


def dispatch_keys(*, runtime: bool = True, alias: bool = False) -> st.SearchStrategy[DispatchKey]:
    """Dispatch keys: the runtime keys (``runtime=True``) and/or the alias keys
    (``alias=True``; registration only, never dispatched to)."""
    pool = (*(RUNTIME_KEYS if runtime else ()), *(ALIAS_KEYS if alias else ()))
    if not pool:
        raise InvalidArgument("dispatch_keys(): at least one of runtime= and alias= must be True")
    return st.sampled_from(pool)


def keysets(
    keys: Sequence[DispatchKey] | None = None, *, min_size: int = 0, max_size: int | None = None
) -> st.SearchStrategy[DispatchKeySet]:
    """Key sets over ``keys`` (default: every runtime key)."""
    pool = tuple(RUNTIME_KEYS if keys is None else keys)
    for k in pool:
        if not k.is_runtime:
            raise InvalidArgument(f"keysets(): {k!r} is not a runtime key")
    return st.lists(st.sampled_from(pool), unique=True, min_size=min_size, max_size=max_size).map(
        DispatchKeySet
    )


# Keys the key-set guards may name (as tests/test_invariants.py draws them).
_EXCLUDABLE = (K.ADInplaceOrView, K.AutogradCPU, K.AutogradOther, K.BackendSelect, K.Python)
_INCLUDABLE = (K.ADInplaceOrView, K.BackendSelect, K.Python)


def guards(*, exclude_adinplaceorview: bool = True) -> st.SearchStrategy[GuardSpec]:
    """Every guard of :mod:`modes`, as :class:`GuardSpec`. With
    ``exclude_adinplaceorview=False``, none that puts ADInplaceOrView into the excluded set
    (``AutoDispatchBelowADInplaceOrView``, ``AutoNonVariableTypeMode``, an
    ``ExcludeDispatchKeyGuard`` naming it)."""
    plain = [
        GuardSpec("no_grad"),
        GuardSpec("enable_grad"),
        GuardSpec("NoGradGuard"),
        GuardSpec("inference_mode", True),
        GuardSpec("inference_mode", False),
        GuardSpec("InferenceMode", True),
        GuardSpec("InferenceMode", False),
        GuardSpec("AutoDispatchBelowAutograd"),
    ]
    if exclude_adinplaceorview:
        plain += [
            GuardSpec("AutoDispatchBelowADInplaceOrView"),
            GuardSpec("AutoNonVariableTypeMode"),
        ]
    with_bool = st.builds(
        GuardSpec, st.sampled_from(["set_grad_enabled", "AutoGradMode"]), st.booleans()
    )
    excludable = _EXCLUDABLE if exclude_adinplaceorview else _EXCLUDABLE[1:]

    def names(ks: Sequence[DispatchKey]) -> st.SearchStrategy[tuple[str, ...]]:
        return st.lists(st.sampled_from([k.name for k in ks]), min_size=1, unique=True).map(tuple)

    key_guards = st.builds(
        GuardSpec, st.just("ExcludeDispatchKeyGuard"), names(excludable)
    ) | st.builds(GuardSpec, st.just("IncludeDispatchKeyGuard"), names(_INCLUDABLE))
    return st.one_of(st.sampled_from(plain), with_bool, key_guards)


@st.composite
def _guard_stacks(
    draw: st.DrawFn,
    guard: st.SearchStrategy[GuardSpec],
    min_size: int,
    max_size: int,
    close: bool,
) -> list[GuardStep]:
    n = draw(st.integers(min_size, max_size))
    steps: list[GuardStep] = []
    depth = entered = 0
    while entered < n or (close and depth):
        if entered < n and (depth == 0 or draw(st.booleans())):
            steps.append(GuardStep("enter", draw(guard)))
            depth += 1
            entered += 1
        else:
            steps.append(GuardStep("exit"))
            depth -= 1
    return steps


def guard_stacks(
    *,
    min_size: int = 0,
    max_size: int = 6,
    close: bool = True,
    guard: st.SearchStrategy[GuardSpec] | None = None,
) -> st.SearchStrategy[list[GuardStep]]:
    """Properly nested guard sequences: ``enter`` and ``exit`` steps where an exit always
    leaves the innermost open guard; between ``min_size`` and ``max_size`` guards are
    entered, and with ``close=True`` every guard is exited by the end. Run one with
    :func:`run_guard_steps`."""
    if min_size < 0 or max_size < min_size:
        raise InvalidArgument(f"guard_stacks(): bad sizes {min_size}..{max_size}")
    return _guard_stacks(guards() if guard is None else guard, min_size, max_size, close)


def tls_states(*, max_depth: int = 5) -> st.SearchStrategy[TLSState]:
    """Thread-local states reachable from the default by nesting up to ``max_depth``
    guards (computed with the guard model; nothing is entered)."""

    def fold(gs: list[GuardSpec]) -> TLSState:
        s = TLSState.default()
        for g in gs:
            s = g.apply(s)
        return s

    return st.lists(guards(), max_size=max_depth).map(fold)


# ---------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------
ALL_DTYPES: tuple[DType, ...] = (dispatch.bool_, dispatch.int64, dispatch.float32, dispatch.float64)
FLOAT_DTYPES: tuple[DType, ...] = (dispatch.float32, dispatch.float64)
TENSOR_KINDS = ("leaf", "non_leaf", "view")
_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def _elements(d: DType) -> st.SearchStrategy[Any]:
    if d is dispatch.bool_:
        return st.booleans()
    if not d.is_floating_point:
        return st.integers(-10, 10)
    width: Literal[16, 32, 64] = 16 if d.itemsize == 2 else 32 if d.itemsize == 4 else 64
    return st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=width)


def _array(
    draw: Callable[[st.SearchStrategy[Any]], Any], d: DType, shape: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    arr: np.ndarray[Any, Any] = draw(hnp.arrays(d.numpy, shape, elements=_elements(d)))
    return arr


def _view_of(draw: st.DrawFn, d: DType, shape: tuple[int, ...], rg: bool) -> Tensor:
    """A view of ``shape`` taken from a fresh base, by one of four view ops."""
    forms = ["flat", "select"]
    if len(shape) >= 1:
        forms.append("narrow")
    if len(shape) >= 2:
        forms.append("permute")
    form = draw(st.sampled_from(forms))
    numel = int(np.prod(shape, dtype=np.int64))
    if form == "flat":
        base = dispatch.tensor(_array(draw, d, (numel,)), dtype=d, requires_grad=rg)
        return base.view(*shape) if shape else base.view([])
    if form == "select":
        k = draw(st.integers(1, 3))
        base = dispatch.tensor(_array(draw, d, (k, *shape)), dtype=d, requires_grad=rg)
        return base.select(0, draw(st.integers(-k, k - 1)))
    if form == "narrow":
        extra = draw(st.integers(1, 2))
        base = dispatch.tensor(
            _array(draw, d, (shape[0] + extra, *shape[1:])), dtype=d, requires_grad=rg
        )
        return base.narrow(0, draw(st.integers(0, extra)), shape[0])
    perm = draw(st.permutations(range(len(shape))))
    base = dispatch.tensor(
        _array(draw, d, tuple(shape[p] for p in perm)), dtype=d, requires_grad=rg
    )
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return base.permute(*inverse)


@st.composite
def _tensors(
    draw: st.DrawFn,
    kind: str | None,
    shape: Any,
    dtype: DType | st.SearchStrategy[DType] | None,
    requires_grad: bool | None,
    inference: bool | None,
) -> Tensor:
    inf = draw(st.booleans()) if inference is None else inference
    if kind == "non_leaf":
        inf = False
    if isinstance(dtype, DType):
        d = dtype
    elif dtype is not None:
        d = draw(dtype)
    elif requires_grad or kind == "non_leaf":
        d = draw(st.sampled_from(FLOAT_DTYPES))
    else:
        d = draw(st.sampled_from(ALL_DTYPES))
    if kind is None:
        choices = ["leaf", "view"]
        if not inf and d.is_floating_point and requires_grad is not False:
            choices.append("non_leaf")
        k = draw(st.sampled_from(choices))
    else:
        k = kind
    if k == "non_leaf":
        rg = True
    elif requires_grad is None:
        rg = d.is_floating_point and draw(st.booleans())
    else:
        rg = requires_grad
    if rg and not d.is_floating_point:
        raise InvalidArgument(f"tensors(): a {d} tensor cannot require grad")
    shp: tuple[int, ...]
    if shape is None:
        shp = draw(_shapes)
    elif isinstance(shape, st.SearchStrategy):
        shp = tuple(draw(shape))
    else:
        shp = tuple(shape)
    with default_tls():
        guard = modes.inference_mode() if inf else modes.enable_grad()
        with guard:
            if k == "leaf":
                return dispatch.tensor(_array(draw, d, shp), dtype=d, requires_grad=rg)
            if k == "view":
                v = _view_of(draw, d, shp, rg)
                if inf and rg:
                    v.requires_grad_(True)  # an untracked view: it does not inherit it
                return v
            leaf = dispatch.tensor(_array(draw, d, shp), dtype=d, requires_grad=True)
            how = draw(st.sampled_from(["clone", "mul", "add"]))
            out: Tensor = leaf.clone() if how == "clone" else leaf * 1 if how == "mul" else leaf + 0
            return out


def tensors(
    *,
    kind: str | None = None,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    dtype: DType | st.SearchStrategy[DType] | None = None,
    requires_grad: bool | None = None,
    inference: bool | None = None,
) -> st.SearchStrategy[Tensor]:
    """CPU tensors. Every parameter left as None is drawn.

    * ``kind``: ``"leaf"`` (a factory's result), ``"non_leaf"`` (the result of a
      differentiable op on a leaf that requires grad: it has a grad_fn), ``"view"``
      (a view of a fresh base, made by view / select / narrow / permute);
    * ``shape``: a tuple or a strategy of tuples (default up to 3 dims of size 1..4);
    * ``dtype``: a DType or a strategy of them (bool, int64, float32, float64);
    * ``requires_grad``: whether the tensor requires grad (for a view, its base does too);
    * ``inference``: made inside ``inference_mode()`` (an inference tensor; a view of one
      is not tracked as a view, as in torch). Inference tensors may require grad (set
      inside inference mode) but are never non-leaves.

    Tensors are made at the default thread-local state plus, for ``inference=True``,
    inference mode — whatever guards are open where the strategy is drawn.
    """
    if kind is not None and kind not in TENSOR_KINDS:
        raise InvalidArgument(f"tensors(kind={kind!r}): expected one of {TENSOR_KINDS} or None")
    if kind == "non_leaf" and inference:
        raise InvalidArgument("tensors(): an inference tensor is never a non-leaf")
    if kind == "non_leaf" and requires_grad is False:
        raise InvalidArgument("tensors(): a non-leaf always requires grad")
    if (
        isinstance(dtype, DType)
        and not dtype.is_floating_point
        and (requires_grad or kind == "non_leaf")
    ):
        raise InvalidArgument(f"tensors(): a {dtype} tensor cannot require grad")
    return _tensors(kind, shape, dtype, requires_grad, inference)


# ---------------------------------------------------------------------------------------
# schemas
# ---------------------------------------------------------------------------------------
_ARG_NAMES = (
    "self",
    "other",
    "x",
    "y",
    "z",
    "weight",
    "bias",
    "out",
    "alpha",
    "beta",
    "dim",
    "scale",
    "keepdim",
    "eps",
    "mode",
    "size",
    "index",
    "value",
)
_SCALAR_TYPES = ("int", "float", "bool", "Scalar", "str", "SymInt", "ScalarType")
_SCALAR_DEFAULTS: dict[str, st.SearchStrategy[str]] = {
    "int": st.integers(-3, 5).map(str),
    "SymInt": st.integers(0, 5).map(str),
    "float": st.sampled_from(["0.5", "1.", "-2.", "1e-05"]),
    "bool": st.sampled_from(["True", "False"]),
    "Scalar": st.sampled_from(["1", "0.5", "-1"]),
    "str": st.sampled_from(['"mean"', '"sum"', '"none"']),
    "ScalarType": st.none().map(lambda _: "None"),  # only as an optional
}
_ident = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("int", "float", "bool", "str")
)


@st.composite
def _schema_text(draw: st.DrawFn, namespace: str | None, max_args: int, max_returns: int) -> str:
    n = draw(st.integers(0, max_args))
    names = draw(st.permutations(_ARG_NAMES))[:n]
    letters = iter("abcdefghijklmnop")
    writable: list[str] = []  # the types of mutable single tensors, e.g. "Tensor(a!)"
    readable: list[str] = []  # alias sets of read-aliased single tensors
    types: list[str] = []
    default_of: list[st.SearchStrategy[str] | None] = []  # None: cannot have a default
    for _ in names:
        form = draw(
            st.sampled_from(["Tensor", "Tensor", "Tensor?", "Tensor[]", "scalar", "scalar[]"])
        )
        dflt: st.SearchStrategy[str] | None = None
        if form == "Tensor":
            alias = draw(st.sampled_from(["", "", "write", "read"]))
            typ = "Tensor"
            if alias == "write":
                typ = f"Tensor({next(letters)}!)"
                writable.append(typ)
            elif alias == "read":
                a = next(letters)
                typ = f"Tensor({a})"
                readable.append(a)
        elif form == "Tensor?":
            typ, dflt = "Tensor?", st.just("None")
        elif form == "Tensor[]":
            typ = f"Tensor({next(letters)}!)[]" if draw(st.booleans()) else "Tensor[]"
        elif form == "scalar":
            base = draw(st.sampled_from(_SCALAR_TYPES))
            optional = base == "ScalarType" or draw(st.booleans())
            typ = base + ("?" if optional else "")
            dflt = _SCALAR_DEFAULTS[base]
            if optional:
                dflt = st.just("None") | dflt if base != "ScalarType" else st.just("None")
        else:
            base = draw(st.sampled_from(["int", "float", "bool", "SymInt"]))
            size = draw(st.sampled_from(["", "", "2"]))
            typ = f"{base}[{size}]"
            elem = _SCALAR_DEFAULTS[base]
            dflt = st.tuples(elem, elem).map(lambda p: f"[{p[0]}, {p[1]}]")
        types.append(typ)
        default_of.append(dflt)
    first_kwonly = draw(st.integers(0, n))
    # positional defaults: a trailing run of arguments that can all have one
    k = first_kwonly
    while k > 0 and default_of[k - 1] is not None:
        k -= 1
    first_default = draw(st.integers(k, first_kwonly))
    parts: list[str] = []
    for i, (name, typ, dflt) in enumerate(zip(names, types, default_of)):
        if i == first_kwonly:
            parts.append("*")
        if dflt is not None and (
            first_default <= i < first_kwonly or (i >= first_kwonly and draw(st.booleans()))
        ):
            parts.append(f"{typ} {name}={draw(dflt)}")
        else:
            parts.append(f"{typ} {name}")
    rets: list[str] = []
    for _ in range(draw(st.integers(0, max_returns))):
        forms = ["Tensor", "Tensor[]"]
        if writable:
            forms += ["write", "write"]
        if readable:
            forms += ["read"]
        f = draw(st.sampled_from(forms))
        if f == "write":
            rets.append(writable.pop(draw(st.integers(0, len(writable) - 1))))
        elif f == "read":
            rets.append(f"Tensor({readable.pop(draw(st.integers(0, len(readable) - 1)))})")
        else:
            rets.append(f)
    name = draw(_ident) + draw(st.sampled_from(["", "", "_"]))
    overload = draw(st.none() | _ident.filter(lambda s: s != "default"))
    qual = f"{namespace}::{name}" if namespace else name
    if overload:
        qual += f".{overload}"
    ret_text = rets[0] if len(rets) == 1 else f"({', '.join(rets)})"
    return f"{qual}({', '.join(parts)}) -> {ret_text}"


def schemas(
    *, namespace: str | None = "testing", max_args: int = 5, max_returns: int = 3
) -> st.SearchStrategy[FunctionSchema]:
    """Valid operator schemas: Tensor, Tensor?, Tensor[], scalar and list arguments,
    keyword-only arguments, defaults, and alias annotations — mutable ``Tensor(a!)``
    arguments (some returned as ``Tensor(a!)``), read-aliased ``Tensor(a)`` arguments
    (some returned as views ``Tensor(a)``), mutable tensor lists ``Tensor(a!)[]``.
    ``str(schema)`` parses back to an equal schema."""
    return _schema_text(namespace, max_args, max_returns).map(parse_schema)


# ---------------------------------------------------------------------------------------
# operator calls
# ---------------------------------------------------------------------------------------
def resolve_op(op: OpOverload | OpOverloadPacket | str) -> OpOverload:
    """An ``OpOverload`` from an overload, a packet with one overload, or a name
    (``"ns::op.overload"``)."""
    if isinstance(op, OpOverload):
        return op
    if isinstance(op, OpOverloadPacket):
        names = op.overloads()
        if len(names) != 1:
            raise ValueError(
                f"{op!r} has overloads {names}: pass one of them (e.g. {op!r}.{names[0]})"
            )
        return getattr(op, names[0])  # type: ignore[no-any-return]
    if isinstance(op, str):
        entry = dispatcher.find_schema(op)
        handle = entry.handle
        assert isinstance(handle, OpOverload)
        return handle
    raise TypeError(f"expected an OpOverload, an OpOverloadPacket or a name, got {op!r}")


def _value_repr(v: Any) -> str:
    if isinstance(v, Tensor):
        text = repr(v).replace("\n", "")
        text = " ".join(text.split())
        return text
    if isinstance(v, list):
        return "[" + ", ".join(_value_repr(x) for x in v) + "]"
    return repr(v)


@attrs.frozen(eq=False, repr=False)
class OpCall:
    """An operator and the arguments to call it with."""

    op: OpOverload
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def __call__(self) -> Any:
        return self.op(*self.args, **self.kwargs)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))  # hypothesis prints drawn values with this

    def __repr__(self) -> str:
        schema = self.op._schema
        pos = [a.name for a in schema.arguments if not a.kwarg_only]
        shown = [f"{n}={_value_repr(v)}" for n, v in zip(pos, self.args)]
        shown += [f"{k}={_value_repr(v)}" for k, v in self.kwargs.items()]
        return f"{self.op!r}({', '.join(shown)})"


def _scalar_value(base: str) -> st.SearchStrategy[Any]:
    if base in ("int", "SymInt"):
        return st.integers(-2, 4)
    if base == "float":
        return st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)
    if base == "bool":
        return st.booleans()
    if base == "Scalar":
        return st.integers(-3, 3) | st.floats(-4, 4, allow_nan=False, width=32)
    if base == "str":
        return st.sampled_from(["mean", "sum", "none"])
    if base == "ScalarType":
        return st.sampled_from(FLOAT_DTYPES)
    if base == "Device":
        return st.just("cpu")
    return st.nothing()


def _arg_value(arg: Argument, tensor: st.SearchStrategy[Tensor]) -> st.SearchStrategy[Any]:
    if arg.base_type == "Tensor":
        elem: st.SearchStrategy[Any] = tensor
    else:
        elem = _scalar_value(arg.base_type)
    if arg.is_list:
        if arg.elem_optional:
            elem = st.none() | elem
        if arg.list_size is not None:
            value: st.SearchStrategy[Any] = st.lists(
                elem, min_size=arg.list_size, max_size=arg.list_size
            )
        else:
            value = st.lists(elem, min_size=1 if arg.base_type == "Tensor" else 0, max_size=3)
    else:
        value = elem
    if arg.is_optional:
        value = st.none() | value
    if value.is_empty:
        raise InvalidArgument(f"op_calls(): cannot make a value of type {arg.type_str()}")
    return value


@st.composite
def _op_calls(
    draw: st.DrawFn,
    op: OpOverload,
    tensor: Callable[[Argument], st.SearchStrategy[Tensor]] | st.SearchStrategy[Tensor] | None,
    shape: Any,
    dtype: Any,
    use_defaults: bool | None,
) -> OpCall:
    schema = op._schema
    if tensor is None:
        shp = (
            tuple(draw(_shapes if shape is None else shape))
            if not isinstance(shape, tuple | list)
            else tuple(shape)
        )
        d = (
            dtype
            if isinstance(dtype, DType)
            else draw(st.sampled_from(FLOAT_DTYPES) if dtype is None else dtype)
        )

        def default_tensor(arg: Argument) -> st.SearchStrategy[Tensor]:
            rg: bool | None = False if arg.is_mutable else None
            return tensors(kind="leaf", shape=shp, dtype=d, requires_grad=rg, inference=False)

        make: Callable[[Argument], st.SearchStrategy[Tensor]] = default_tensor
    elif isinstance(tensor, st.SearchStrategy):
        fixed = tensor

        def make(arg: Argument) -> st.SearchStrategy[Tensor]:
            return fixed

    else:
        make = tensor
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    skipped = False
    for a in schema.arguments:
        omit = a.default is not NO_DEFAULT and (
            draw(st.booleans()) if use_defaults is None else use_defaults
        )
        if omit:
            if not a.kwarg_only:
                skipped = True
            continue
        value = draw(_arg_value(a, make(a)))
        if a.kwarg_only or skipped:
            kwargs[a.name] = value
        else:
            args.append(value)
    return OpCall(op, tuple(args), kwargs)


def op_calls(
    op: OpOverload | OpOverloadPacket | str,
    *,
    tensors: Callable[[Argument], st.SearchStrategy[Tensor]]
    | st.SearchStrategy[Tensor]
    | None = None,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    dtype: DType | st.SearchStrategy[DType] | None = None,
    use_defaults: bool | None = None,
) -> st.SearchStrategy[OpCall]:
    """Well-typed calls of ``op``: a value of the right type for every argument of its
    schema (positional ones positionally, keyword-only ones by keyword; an argument with a
    default is left out when ``use_defaults`` is True, passed when False, either when None).

    By default the tensor arguments of one call are leaves of one drawn shape and one
    float dtype (so elementwise kernels accept them); mutable ``Tensor(a!)`` arguments do
    not require grad. ``tensors`` replaces that: a strategy for every tensor argument, or
    a function from the schema :class:`~dispatch.schema.Argument` to a strategy.
    Well-typed is not valid: an ``int dim`` may be out of range for the drawn shape.
    """
    return _op_calls(resolve_op(op), tensors, shape, dtype, use_defaults)


# ---------------------------------------------------------------------------------------
# programs
# ---------------------------------------------------------------------------------------
PROGRAM_SHAPES: tuple[tuple[int, ...], ...] = ((2, 3), (3,), (), (1, 3))
_UNARY = ("neg", "exp", "sin", "cos", "tanh", "sigmoid", "relu")
_BINARY = ("add", "sub", "mul", "div")
_VIEWS = ("view", "unsqueeze", "t", "transpose", "select", "detach", "expand")
_INPLACE = ("add_", "mul_", "zero_", "fill_", "copy_", "neg_", "t_", "unsqueeze_")
_FACTORIES = ("ones", "zeros", "rand", "randn")


@attrs.frozen
class Step:
    """One step of a :class:`Program`.

    ``kind`` is ``create``, ``enter``, ``exit``, ``functional``, ``view``, ``inplace``,
    ``requires_grad_`` or ``backward``; ``op`` the factory / method name; ``inputs`` pool
    indices; ``args`` constants; ``output`` the pool index of the tensor the step makes.
    """

    kind: str
    op: str = ""
    inputs: tuple[int, ...] = ()
    args: tuple[Any, ...] = ()
    guard: GuardSpec | None = None
    output: int | None = None

    def code(self) -> str:
        """The step as one line of Python (tensors are ``t0``, ``t1``, ...)."""
        t = [f"t{i}" for i in self.inputs]
        k, op, a = self.kind, self.op, self.args
        if k == "create":
            shape, dtype, rg = a
            dims = ", ".join(str(s) for s in shape)
            sep = ", " if dims else ""
            return (
                f"t{self.output} = dispatch.{op}({dims}{sep}dtype=dispatch.{dtype}, "
                f"requires_grad={rg})"
            )
        if k == "enter":
            return f"with {self.guard.code() if self.guard else ''}:"
        if k == "exit":
            return "# exit"
        if k in ("functional", "view"):
            return f"t{self.output} = {_method_call(t, op, a)}"
        if k == "inplace":
            return _method_call(t, op, a)
        if k == "requires_grad_":
            return f"{t[0]}.requires_grad_({a[0]})"
        return f"{t[0]}.sum().backward(retain_graph={a[0]})"


def _method_call(t: list[str], op: str, a: tuple[Any, ...]) -> str:
    if op == "select":
        return f"{t[0]}[0]"
    if op == "view":
        return f"{t[0]}.view(-1)"
    if op == "transpose":
        return f"{t[0]}.transpose(0, -1)"
    if op in ("unsqueeze", "unsqueeze_"):
        return f"{t[0]}.{op}(0)"
    if op == "expand":
        return f"{t[0]}.expand(2, *{t[0]}.shape)"
    if op == "fill_":
        return f"{t[0]}.fill_({a[0]!r})"
    operands = [*t[1:], *(repr(x) for x in a)]
    return f"{t[0]}.{op}({', '.join(operands)})"


@attrs.frozen
class StepOutcome:
    """What running one step did: the error it raised (``None`` if it succeeded), or that
    it was ``skipped`` because an input it needs was never made."""

    step: Step
    error: BaseException | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


@attrs.define
class ProgramRun:
    """The result of :meth:`Program.run`: the pool of tensors (``None`` where the step that
    would have made one failed) and one outcome per step."""

    tensors: list[Tensor | None]
    outcomes: list[StepOutcome]


@attrs.frozen(repr=False)
class Program:
    """A random dispatchsim program: tensor creation, guards (properly nested; all closed
    at the end), functional / view / in-place ops, ``requires_grad_`` and backward.
    ``repr`` is the program as Python code; :meth:`run` runs it."""

    steps: tuple[Step, ...]

    def code(self) -> str:
        lines: list[str] = []
        depth = 0
        for s in self.steps:
            if s.kind == "exit":
                depth -= 1
                if lines and lines[-1].rstrip().endswith(":"):
                    lines.append("    " * (depth + 1) + "pass")
                continue
            lines.append("    " * depth + s.code())
            if s.kind == "enter":
                depth += 1
        while depth > 0:
            depth -= 1
            if lines and lines[-1].rstrip().endswith(":"):
                lines.append("    " * (depth + 1) + "pass")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Program(\n{self.code()}\n)"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def run(
        self, on_step: Callable[[StepOutcome, list[Tensor | None]], None] | None = None
    ) -> ProgramRun:
        """Run the steps at the current thread-local state; errors an op raises are
        recorded, not raised (an ``AssertionError`` is raised). ``on_step(outcome, pool)``
        is called after every step, inside the guards open at that point."""
        pool: list[Tensor | None] = []
        outcomes: list[StepOutcome] = []
        stack = GuardStack()
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                for step in self.steps:
                    outcome = _run_step(step, pool, stack)
                    outcomes.append(outcome)
                    if on_step is not None:
                        on_step(outcome, pool)
        finally:
            stack.close()
        return ProgramRun(pool, outcomes)


def _run_step(step: Step, pool: list[Tensor | None], stack: GuardStack) -> StepOutcome:
    if step.kind == "enter":
        assert step.guard is not None
        stack.enter(step.guard)
        return StepOutcome(step)
    if step.kind == "exit":
        stack.exit()
        return StepOutcome(step)
    ins = [pool[i] for i in step.inputs]
    if any(t is None for t in ins):
        if step.output is not None:
            pool.append(None)
        return StepOutcome(step, skipped=True)
    ts: list[Tensor] = [t for t in ins if t is not None]
    try:
        out = _execute(step, ts)
    except AssertionError:
        raise
    except Exception as e:
        if step.output is not None:
            pool.append(None)
        return StepOutcome(step, error=e)
    if step.output is not None:
        pool.append(out)
    return StepOutcome(step)


def _execute(step: Step, t: list[Tensor]) -> Tensor | None:
    k, op, a = step.kind, step.op, step.args
    if k == "create":
        shape, dtype, rg = a
        fn = getattr(dispatch, op)
        out: Tensor = fn(*shape, dtype=getattr(dispatch, dtype), requires_grad=rg)
        return out
    if k == "functional":
        if op == "sum":
            return t[0].sum()
        if op == "clone":
            return t[0].clone()
        if op in _UNARY:
            return getattr(t[0], op)()  # type: ignore[no-any-return]
        other = t[1] if len(t) > 1 else a[0]
        return getattr(t[0], op)(other)  # type: ignore[no-any-return]
    if k == "view":
        x = t[0]
        if op == "view":
            return x.view(-1)
        if op == "unsqueeze":
            return x.unsqueeze(0)
        if op == "t":
            return x.t()
        if op == "transpose":
            return x.transpose(0, -1)
        if op == "select":
            return x[0]
        if op == "detach":
            return x.detach()
        return x.expand(2, *x.shape)
    if k == "inplace":
        x = t[0]
        if op in ("add_", "mul_"):
            getattr(x, op)(t[1] if len(t) > 1 else a[0])
        elif op == "copy_":
            x.copy_(t[1])
        elif op == "fill_":
            x.fill_(a[0])
        elif op == "unsqueeze_":
            x.unsqueeze_(0)
        else:
            getattr(x, op)()
        return None
    if k == "requires_grad_":
        t[0].requires_grad_(a[0])
        return None
    t[0].sum().backward(retain_graph=a[0])
    return None


@st.composite
def _programs(
    draw: st.DrawFn,
    min_steps: int,
    max_steps: int,
    guard: st.SearchStrategy[GuardSpec],
    max_depth: int,
) -> Program:
    n = draw(st.integers(min_steps, max_steps))
    steps: list[Step] = []
    size = 0
    depth = 0

    def pick() -> int:
        return draw(st.integers(0, size - 1))

    kinds = st.sampled_from(
        [
            "create",
            "functional",
            "functional",
            "view",
            "inplace",
            "inplace",
            "enter",
            "exit",
            "requires_grad_",
            "backward",
        ]
    )
    for _ in range(n):
        kind = "create" if size == 0 else draw(kinds)
        if kind == "enter":
            if depth >= max_depth:
                continue
            steps.append(Step("enter", guard=draw(guard)))
            depth += 1
        elif kind == "exit":
            if depth == 0:
                continue
            steps.append(Step("exit"))
            depth -= 1
        elif kind == "create":
            dtype = draw(st.sampled_from(["float32", "float64", "float32"]))
            steps.append(
                Step(
                    "create",
                    draw(st.sampled_from(_FACTORIES)),
                    args=(draw(st.sampled_from(PROGRAM_SHAPES)), dtype, draw(st.booleans())),
                    output=size,
                )
            )
            size += 1
        elif kind == "functional":
            op = draw(st.sampled_from((*_UNARY, *_BINARY, "sum", "clone")))
            if op in _BINARY and draw(st.booleans()):
                steps.append(Step(kind, op, (pick(), pick()), output=size))
            elif op in _BINARY:
                steps.append(
                    Step(
                        kind, op, (pick(),), (draw(st.sampled_from([2.0, -1.0, 0.5])),), output=size
                    )
                )
            else:
                steps.append(Step(kind, op, (pick(),), output=size))
            size += 1
        elif kind == "view":
            steps.append(Step(kind, draw(st.sampled_from(_VIEWS)), (pick(),), output=size))
            size += 1
        elif kind == "inplace":
            op = draw(st.sampled_from(_INPLACE))
            if op == "copy_" or (op in ("add_", "mul_") and draw(st.booleans())):
                steps.append(Step(kind, op, (pick(), pick())))
            elif op in ("add_", "mul_", "fill_"):
                steps.append(Step(kind, op, (pick(),), (draw(st.sampled_from([2.0, -1.0, 0.5])),)))
            else:
                steps.append(Step(kind, op, (pick(),)))
        elif kind == "requires_grad_":
            steps.append(Step(kind, inputs=(pick(),), args=(draw(st.booleans()),)))
        else:
            steps.append(Step("backward", inputs=(pick(),), args=(draw(st.booleans()),)))
    steps.extend(Step("exit") for _ in range(depth))
    return Program(tuple(steps))


def programs(
    *,
    min_steps: int = 1,
    max_steps: int = 20,
    guard: st.SearchStrategy[GuardSpec] | None = None,
    max_depth: int = 4,
) -> st.SearchStrategy[Program]:
    """Random programs of ``min_steps``..``max_steps`` steps (not counting the exits that
    close the guards still open at the end): tensor creation (``ones`` / ``zeros`` /
    ``rand`` / ``randn``; shapes (2, 3), (3,), (), (1, 3)), properly nested guards up to
    ``max_depth`` deep, functional / view / in-place ops on earlier tensors (some fail:
    shape mismatches, leaves that require grad, inference tensors, ...), ``requires_grad_``
    and ``.sum().backward()``."""
    if min_steps < 1 or max_steps < min_steps:
        raise InvalidArgument(f"programs(): bad sizes {min_steps}..{max_steps}")
    return _programs(min_steps, max_steps, guards() if guard is None else guard, max_depth)
