"""``opcheck``: mirrors ``torch.library.opcheck`` (torch/testing/_internal/optests) for
dispatchsim operators.

Each test runs the operator on fresh copies of the sample arguments (the caller's are
never touched) and checks one contract:

* ``test_schema`` — the alias annotations match what the kernels do: an argument is
  mutated iff it is ``Tensor(a!)``, an output shares memory with an argument iff the
  schema puts them in one alias set, a non-mutable argument is never returned as is,
  outputs do not alias each other unexpectedly, and each ``Tensor(a!)`` argument's
  version counter moves exactly once (PyTorch's ``SchemaCheckMode``, plus versions);
* ``test_modes`` — the results (outputs and mutated arguments) are the same in normal
  mode, under ``no_grad()`` and in ``inference_mode()`` (with normal and with inference
  tensors as inputs);
* ``test_autograd_registration`` — an operator with tensor inputs and outputs but no
  kernel at an autograd key (``Autograd``, ``AutogradCPU``, ``CompositeImplicitAutograd``)
  gets a :class:`MissingAutogradWarning`; with no autograd kernel, an output that
  requires grad must come from the autograd fallback, not from the backend kernel
  (PyTorch's ``autograd_registration_check``);
* ``test_gradcheck`` — where an autograd kernel exists, :func:`kernels.autograd.gradcheck`
  passes for the floating-point tensor arguments (in float64; mutated arguments are
  cloned first).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

import numpy as np

import dispatch
import modes
from dispatch.dispatcher import OpOverload, OpOverloadPacket
from dispatch.keys import DispatchKey
from dispatch.schema import Argument, FunctionSchema
from dispatch.tensorimpl import Tensor
from dispatch.testing._model import default_tls
from dispatch.testing._strategies import resolve_op

__all__ = [
    "ALL_TEST_UTILS",
    "DEFAULT_TEST_UTILS",
    "MissingAutogradWarning",
    "OpCheckError",
    "OpCheckFailure",
    "opcheck",
]

K = DispatchKey


class OpCheckError(AssertionError):
    """An :func:`opcheck` test failed (``torch.testing._internal.optests.OpCheckError``).
    ``test`` names the test, ``rule`` the broken rule, ``argument`` the argument involved
    (or None)."""

    def __init__(
        self, message: str, *, test: str = "", rule: str = "", argument: str | None = None
    ) -> None:
        super().__init__(message)
        self.test = test
        self.rule = rule
        self.argument = argument


class OpCheckFailure(RuntimeError):
    """The failure of one rule inside a test: ``rule`` is a short name
    (``mutation``, ``alias``, ``version``, ...), ``argument`` the schema argument."""

    def __init__(self, rule: str, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.argument = argument


class MissingAutogradWarning(UserWarning):
    """An operator with tensor inputs and outputs has no autograd kernel."""


# ---------------------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------------------
def _leaves(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)


def _clone_tree(
    value: Any,
    memo: dict[int, Tensor],
    make: Callable[[Tensor], Tensor],
) -> Any:
    if isinstance(value, Tensor):
        if id(value) not in memo:
            memo[id(value)] = make(value)
        return memo[id(value)]
    if isinstance(value, list):
        return [_clone_tree(v, memo, make) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone_tree(v, memo, make) for v in value)
    return value


def _copy_tensor(
    t: Tensor,
    *,
    requires_grad: bool | None = None,
    inference: bool | None = None,
    dtype: Any = None,
) -> Tensor:
    """A fresh leaf with ``t``'s values (and, unless overridden, its dtype, requires_grad
    and inference-ness). Made at the default state, whatever guards are open."""
    inf = t.is_inference() if inference is None else inference
    rg = t.requires_grad if requires_grad is None else requires_grad
    d = t.dtype if dtype is None else dtype
    with default_tls(), modes.inference_mode() if inf else nullcontext():
        return dispatch.tensor(np.array(t._data, copy=True), dtype=d, requires_grad=rg)


class _Sample:
    """Copies of the sample arguments, with their schema arguments."""

    def __init__(
        self,
        schema: FunctionSchema,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        make: Callable[[Tensor], Tensor],
    ) -> None:
        memo: dict[int, Tensor] = {}
        self.args: tuple[Any, ...] = _clone_tree(args, memo, make)
        self.kwargs: dict[str, Any] = {k: _clone_tree(v, memo, make) for k, v in kwargs.items()}
        positional = [a for a in schema.arguments if not a.kwarg_only]
        self.named: list[tuple[Argument, Any]] = []
        by_name = {a.name: a for a in schema.arguments}
        for a, v in zip(positional, self.args):
            self.named.append((a, v))
        for k, v in self.kwargs.items():
            if k in by_name:
                self.named.append((by_name[k], v))

    def tensors(self) -> list[tuple[Argument, Tensor]]:
        return [(a, t) for a, v in self.named for t in _leaves(v)]


def _outputs(out: Any) -> list[Any]:
    if isinstance(out, tuple):
        return list(out)
    return [out]


def _snapshot(t: Tensor) -> tuple[np.ndarray[Any, Any], tuple[int, ...], tuple[int, ...]]:
    return np.array(t._data, copy=True), tuple(t.shape), tuple(t.stride())


def _changed(
    t: Tensor, snap: tuple[np.ndarray[Any, Any], tuple[int, ...], tuple[int, ...]]
) -> bool:
    data, shape, stride = snap
    if tuple(t.shape) != shape or tuple(t.stride()) != stride:
        return True
    now = np.asarray(t._data)
    return not np.array_equal(now, data, equal_nan=now.dtype.kind in "fc")


def _version(t: Tensor) -> int | None:
    vc = t._version_counter
    return None if vc is None else vc.version


def _shares(a: Tensor, b: Tensor) -> bool:
    if a._data.size == 0 or b._data.size == 0:
        return False
    return bool(np.shares_memory(a._data, b._data))


def _alias_sets(arg: Argument) -> set[str]:
    if arg.alias_info is None:
        return set()
    return set(arg.alias_info.before_sets) | set(arg.alias_info.after_sets)


def _may_alias(a: Argument, b: Argument) -> bool:
    sa, sb = _alias_sets(a), _alias_sets(b)
    return bool(sa and sb and ("*" in sa or "*" in sb or sa & sb))


def _short(v: Any) -> str:
    if isinstance(v, Tensor):
        return " ".join(repr(v).split())
    if isinstance(v, list | tuple):
        inner = ", ".join(_short(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    return repr(v)


def _describe_args(schema: FunctionSchema, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    positional = [a.name for a in schema.arguments if not a.kwarg_only]
    shown = [f"{n}={_short(v)}" for n, v in zip(positional, args)]
    shown += [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return ", ".join(shown)


# ---------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------
def _test_schema(op: OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any], **_: Any) -> None:
    schema = op._schema
    sample = _Sample(schema, args, kwargs, lambda t: _copy_tensor(t))
    tensors = sample.tensors()
    snaps = {id(t): _snapshot(t) for _, t in tensors}
    versions = {id(t): _version(t) for _, t in tensors}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = op(*sample.args, **sample.kwargs)
    outs = _outputs(out)
    mutable = [t for a, t in tensors if a.is_mutable]
    # mutation: an argument is mutated iff it is Tensor(a!)
    for a, t in tensors:
        changed = _changed(t, snaps[id(t)])
        if changed and not a.is_mutable and not any(m is t or _shares(m, t) for m in mutable):
            raise OpCheckFailure(
                "mutation", f"Argument {a.name} is not defined as mutable but was mutated", a.name
            )
        if a.is_mutable and not changed:
            raise OpCheckFailure(
                "mutation",
                f"Argument {a.name} is defined as mutable ({a.type_str()}) but was not mutated "
                "(with these sample arguments the kernel left its data, shape and strides "
                "as they were; choose samples for which the write is visible)",
                a.name,
            )
    # versions: each Tensor(a!) argument bumps its counter exactly once
    expected: dict[int, int] = {}
    counters: dict[int, tuple[str, Tensor]] = {}
    for a, t in tensors:
        vc = t._version_counter
        if vc is None:
            continue
        counters.setdefault(id(vc), (a.name, t))
        expected[id(vc)] = expected.get(id(vc), 0) + (1 if a.is_mutable else 0)
    for key, (name, t) in counters.items():
        before = versions[id(t)]
        after = _version(t)
        assert before is not None and after is not None
        if after - before != expected[key]:
            raise OpCheckFailure(
                "version",
                f"Argument {name}: its version counter moved by {after - before}, expected "
                f"{expected[key]} (one bump per Tensor(a!) argument it is passed as)",
                name,
            )
    # aliasing between outputs and arguments
    returns = schema.returns
    for j, o in enumerate(outs):
        for t in _leaves(o):
            ret = returns[j] if j < len(returns) else None
            for a, u in tensors:
                if _shares(t, u) and not (ret is not None and _may_alias(ret, a)):
                    raise OpCheckFailure(
                        "alias",
                        f"Argument {a.name} is not defined to alias output but was aliasing "
                        f"(output {j})",
                        a.name,
                    )
                if t is u and not a.is_mutable:
                    raise OpCheckFailure(
                        "alias",
                        "Dispatcher operators below autograd are not allowed to directly "
                        f"return inputs.\nHowever, we found that `outputs[{j}] is {a.name}",
                        a.name,
                    )
    for j, ret in enumerate(returns):
        if j >= len(outs) or ret.alias_info is None or "*" in _alias_sets(ret):
            continue
        for a, u in tensors:
            if not _may_alias(ret, a):
                continue
            for t in _leaves(outs[j]):
                if u._data.size and not _shares(t, u):
                    raise OpCheckFailure(
                        "alias",
                        f"Output {j} is defined to alias argument {a.name} "
                        f"({ret.type_str()}) but does not share its memory",
                        a.name,
                    )
    flat = [(j, t) for j, o in enumerate(outs) for t in _leaves(o)]
    for x in range(len(flat)):
        for y in range(x + 1, len(flat)):
            (i, ti), (j, tj) = flat[x], flat[y]
            if i == j or not _shares(ti, tj):
                continue
            ri = returns[i] if i < len(returns) else None
            rj = returns[j] if j < len(returns) else None
            if ri is None or rj is None or not _may_alias(ri, rj):
                raise OpCheckFailure("alias", f"Outputs {i} and {j} alias unexpectedly")


_MODES: Final[tuple[tuple[str, Callable[[], AbstractContextManager[Any]], bool], ...]] = (
    ("normal mode", nullcontext, False),
    ("no_grad", modes.no_grad, False),
    ("inference_mode", modes.inference_mode, False),
    ("inference_mode with inference tensors", modes.inference_mode, True),
)


def _run_mode(
    op: OpOverload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    guard: Callable[[], AbstractContextManager[Any]],
    inference: bool,
) -> tuple[list[Any], list[tuple[str, Tensor]]] | BaseException:
    sample = _Sample(
        op._schema,
        args,
        kwargs,
        lambda t: _copy_tensor(t, requires_grad=False, inference=inference),
    )
    dispatch.manual_seed(0)
    try:
        with warnings.catch_warnings(), default_tls(), guard():
            warnings.simplefilter("ignore")
            out = op(*sample.args, **sample.kwargs)
    except Exception as e:
        return e
    mutated = [(a.name, t) for a, t in sample.tensors() if a.is_mutable]
    return _outputs(out), mutated


def _values(x: Any) -> Any:
    if isinstance(x, Tensor):
        return (str(x.dtype), tuple(x.shape), np.array(x._data, copy=True))
    if isinstance(x, list | tuple):
        return [_values(v) for v in x]
    return x


def _same(a: Any, b: Any, rtol: float | None, atol: float | None) -> bool:
    if isinstance(a, tuple) and len(a) == 3 and isinstance(a[2], np.ndarray):
        if not (isinstance(b, tuple) and len(b) == 3 and a[:2] == b[:2]):
            return False
        x, y = a[2], b[2]
        if rtol is not None and atol is not None and x.dtype.kind in "fc":
            return bool(np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(p, q, rtol, atol) for p, q in zip(a, b))
    return bool(a == b)


def _test_modes(
    op: OpOverload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    results = [(name, _run_mode(op, args, kwargs, g, inf)) for name, g, inf in _MODES]
    ref_name, ref = results[0]
    if isinstance(ref, BaseException):
        raise ref
    ref_out = _values(ref[0])
    ref_mut = {n: _values(t) for n, t in ref[1]}
    for name, res in results[1:]:
        if isinstance(res, BaseException):
            raise OpCheckFailure(
                "modes",
                f"the operator ran in {ref_name} but raised in {name}: {type(res).__name__}: {res}",
            )
        out = _values(res[0])
        for j, (x, y) in enumerate(zip(ref_out, out)):
            if not _same(x, y, rtol, atol):
                raise OpCheckFailure(
                    "modes",
                    f"output {j} differs between {ref_name} and {name}: "
                    f"{_short(ref[0][j])} vs {_short(res[0][j])}",
                )
        for n, t in res[1]:
            if not _same(ref_mut[n], _values(t), rtol, atol):
                raise OpCheckFailure(
                    "modes",
                    f"Argument {n} is mutated differently in {ref_name} and {name}: "
                    f"{_short(dict(ref[1])[n])} vs {_short(t)}",
                    n,
                )


def _has_autograd_kernel(op: OpOverload) -> bool:
    entry = op.entry
    return any(
        entry.has_kernel_for(k) for k in (K.AutogradCPU, K.Autograd, K.CompositeImplicitAutograd)
    )


def _has_tensor_io(schema: FunctionSchema) -> bool:
    return any(a.base_type == "Tensor" for a in schema.arguments) and any(
        r.base_type == "Tensor" for r in schema.returns
    )


def _test_autograd_registration(
    op: OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any], **_: Any
) -> None:
    schema = op._schema
    if _has_autograd_kernel(op):
        return
    if _has_tensor_io(schema):
        warnings.warn(
            f"{op.name()}: the operator has tensor inputs and outputs but no autograd kernel "
            "registered to an autograd key (Autograd, AutogradCPU or CompositeImplicitAutograd): "
            "its outputs get a WarnNotImplemented grad_fn from the autograd fallback and "
            "backward through it computes no gradient. Register an autograd kernel, or "
            "fallthrough_kernel to Autograd if the operator is not differentiable.",
            MissingAutogradWarning,
            stacklevel=4,
        )
    flat = [t for t in _leaves((args, tuple(kwargs.values())))]
    if not any(t.requires_grad for t in flat):
        return  # as torch's opcheck: nothing to learn without an input that requires grad
    from kernels.fallbacks import WarnNotImplemented

    sample = _Sample(schema, args, kwargs, lambda t: _copy_tensor(t))
    with warnings.catch_warnings(), default_tls():
        warnings.simplefilter("ignore")
        out = op(*sample.args, **sample.kwargs)
    inputs = {id(t) for _, t in sample.tensors()}
    for t in _leaves(_outputs(out)):
        if id(t) in inputs or not t.requires_grad:
            continue
        if isinstance(t._grad_fn, WarnNotImplemented):
            continue
        raise OpCheckFailure(
            "autograd_registration",
            f"{op.name()}: at least one output of this operator has requires_grad=True but the "
            "operator does not have an autograd kernel defined at an autograd key (e.g. "
            "DispatchKey::Autograd). This could mean that you have incorrectly registered an "
            "autograd kernel to a non-Autograd DispatchKey, which may lead to silently "
            "incorrect results. If your operator consists of regular PyTorch operations, "
            "consider not using an operator at all or registering your operator as "
            "CompositeImplicitAutograd. If you have an autograd.Function registered to a "
            "backend (CPU/CUDA/XPU) key, the correct location for it is the Autograd key.",
        )


def _test_gradcheck(
    op: OpOverload,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> str:
    if not _has_autograd_kernel(op):
        return "SKIPPED"
    schema = op._schema
    sample = _Sample(schema, args, kwargs, lambda t: t)
    diff = [
        (a, t) for a, t in sample.tensors() if t.dtype.is_floating_point and not t.is_inference()
    ]
    if not diff or not any(r.base_type == "Tensor" for r in schema.returns):
        return "SKIPPED"
    from kernels.autograd.gradcheck import gradcheck

    mutable_ids = {id(t) for a, t in diff if a.is_mutable}
    inputs = tuple(_copy_tensor(t, requires_grad=True, dtype=dispatch.float64) for _, t in diff)
    originals = [t for _, t in diff]

    def fn(*xs: Tensor) -> tuple[Tensor, ...]:
        replace: dict[int, Tensor] = {}
        for orig, x in zip(originals, xs):
            replace[id(orig)] = x.clone() if id(orig) in mutable_ids else x
        memo: dict[int, Tensor] = {}
        call_args = _clone_tree(sample.args, memo, lambda t: replace.get(id(t), t))
        call_kwargs = {
            k: _clone_tree(v, memo, lambda t: replace.get(id(t), t))
            for k, v in sample.kwargs.items()
        }
        out = op(*call_args, **call_kwargs)
        res = [t for t in _leaves(_outputs(out)) if t.dtype.is_floating_point]
        res += [replace[i] for i in replace if i in mutable_ids]
        return tuple(res)

    kw: dict[str, Any] = {}
    if rtol is not None and atol is not None:
        kw = {"rtol": rtol, "atol": atol}
    with warnings.catch_warnings(), default_tls():
        warnings.simplefilter("ignore")
        gradcheck(fn, inputs, **kw)
    return "SUCCESS"


ALL_TEST_UTILS: Final[dict[str, Callable[..., Any]]] = {
    "test_schema": _test_schema,
    "test_modes": _test_modes,
    "test_autograd_registration": _test_autograd_registration,
    "test_gradcheck": _test_gradcheck,
}
DEFAULT_TEST_UTILS: Final[tuple[str, ...]] = tuple(ALL_TEST_UTILS)


def opcheck(
    op: OpOverload | OpOverloadPacket | str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    test_utils: str | Sequence[str] = DEFAULT_TEST_UTILS,
    raise_exception: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
) -> dict[str, Any]:
    """Check that ``op`` keeps the contracts its schema and registrations promise, on the
    sample arguments ``args`` / ``kwargs`` (``torch.library.opcheck``'s signature).

    Runs the tests named by ``test_utils`` (default: all — ``test_schema``, ``test_modes``,
    ``test_autograd_registration``, ``test_gradcheck``; see the module docstring) and
    returns ``{test: "SUCCESS" | "SKIPPED" | exception}``. The first failure raises
    :class:`OpCheckError` — whose message names the test, the broken rule, the argument
    and the sample — unless ``raise_exception=False``. ``rtol`` / ``atol`` (both or
    neither) loosen the comparisons of ``test_modes`` and ``test_gradcheck``.
    """
    if (rtol is None) != (atol is None):
        raise ValueError("opcheck(op, ...): if you specify one of rtol/atol, you must specify both")
    if kwargs is None:
        kwargs = {}
    overload = resolve_op(op)
    if test_utils == "ALL":
        test_utils = DEFAULT_TEST_UTILS
    if isinstance(test_utils, str):
        test_utils = (test_utils,)
    if not isinstance(test_utils, tuple | list) or not set(test_utils) <= set(ALL_TEST_UTILS):
        raise ValueError(
            f"opcheck(op, ..., test_utils={test_utils}), expected test_utils to be subset of "
            f"{tuple(ALL_TEST_UTILS)} but it was not"
        )
    results: dict[str, Any] = {}
    for name in test_utils:
        try:
            res = ALL_TEST_UTILS[name](overload, tuple(args), dict(kwargs), rtol=rtol, atol=atol)
            results[name] = res if isinstance(res, str) else "SUCCESS"
        except Exception as ex:
            if not raise_exception:
                results[name] = ex
                continue
            rule = getattr(ex, "rule", type(ex).__name__)
            argument = getattr(ex, "argument", None)
            raise OpCheckError(
                f"opcheck(op, ...): {name} failed with {ex} (scroll up for stack trace)\n"
                f"  operator: {overload._schema}\n"
                f"  rule: {rule}"
                + (f" (argument {argument})" if argument else "")
                + f"\n  sample: {_describe_args(overload._schema, tuple(args), kwargs)}",
                test=name,
                rule=rule,
                argument=argument,
            ) from ex
    return results
