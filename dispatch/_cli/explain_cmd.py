"""``dispatchsim explain "EXPR"``: evaluate a small expression over dispatch tensors under
a chosen mode, trace it, and explain the key-set arithmetic of its last operator call.

The expression is not handed to ``eval``: :class:`Evaluator` walks its syntax tree and
allows only literals, names from :data:`NAMESPACE` (dispatch's factories, functions,
dtypes and ``ops``), names the expression assigned itself (``a = ones(3); a.add_(1)``),
calls, arithmetic and comparison operators, subscripts, and attribute access on tensors,
operator namespaces and autograd nodes (public names, plus ``_version``, ``_base`` and
``_is_view``). Nothing else — no builtins, no imports, no dunder attributes — so an
expression cannot reach the file system or the interpreter.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any, Final

import dispatch
import dispatch.factories
import dispatch.functional
from dispatch._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    MODE_GUARD_TEXT,
    Style,
    UsageError,
    chain,
    emit_json,
    error_text,
    mode_guard,
    preserved_tls,
    tree_lines,
)
from dispatch.dispatcher import OpOverload, OpOverloadPacket, _OpNamespace, _Ops
from dispatch.introspect import Explanation, explanation_for, resolve_entry
from dispatch.tensorimpl import Tensor
from dispatch.trace import DispatchEvent, Trace

_FACTORIES: Final = tuple(n for n in dispatch.factories.__all__ if n != "manual_seed")
_FUNCTIONS: Final = tuple(dispatch.functional.__all__)
_DTYPES: Final = ("bool_", "double", "float16", "float32", "float64", "int32", "int64", "long")

NAMESPACE: Final[dict[str, Any]] = {
    **{name: getattr(dispatch, name) for name in _FACTORIES + _FUNCTIONS + _DTYPES},
    "bool": dispatch.bool_,
    "ops": dispatch.ops,
}
"""The names an expression can use (besides the ones it assigns)."""

_TENSOR_PRIVATE: Final = frozenset({"_version", "_base", "_is_view"})

_BINOPS: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.MatMult: operator.matmul,
    ast.Pow: operator.pow,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


class ExpressionError(UsageError):
    """The expression is not one ``explain`` evaluates (exit status 2)."""


def _node_types() -> tuple[type[Any], ...]:
    from kernels.autograd.graph import Node  # kernels depends on dispatch: import on use

    return (Tensor, _Ops, _OpNamespace, OpOverloadPacket, OpOverload, Node)


def parse(source: str) -> list[ast.stmt]:
    """The statements of ``source``: expressions and ``name = expression``, ``;``-separated."""
    try:
        tree = ast.parse(source.strip(), mode="exec")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse expression {source!r}: {exc.msg}") from None
    if not tree.body:
        raise ExpressionError("empty expression")
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise ExpressionError("only `name = expression` assignments are allowed")
            if stmt.targets[0].id.startswith("_"):
                raise ExpressionError(f"name {stmt.targets[0].id!r} is not allowed")
        elif not isinstance(stmt, ast.Expr):
            raise ExpressionError(
                f"only expressions and `name = expression` are allowed, not {type(stmt).__name__}"
            )
    return tree.body


class Evaluator:
    """Evaluates the parsed statements; :class:`ExpressionError` for anything not allowed.
    Exceptions the operators raise propagate unchanged."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = dict(NAMESPACE)
        self.attribute_types = _node_types()

    def run(self, stmts: list[ast.stmt]) -> Any:
        value: Any = None
        for stmt in stmts:
            if isinstance(stmt, ast.Assign):
                value = self.eval(stmt.value)
                target = stmt.targets[0]
                assert isinstance(target, ast.Name)
                self.names[target.id] = value
            else:
                assert isinstance(stmt, ast.Expr)
                value = self.eval(stmt.value)
        return value

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                known = ", ".join(sorted(self.names))
                raise ExpressionError(f"unknown name {node.id!r}; the names are: {known}")
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            return self._attribute(self.eval(node.value), node.attr)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.List):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.eval(e) for e in node.elts)
        if isinstance(node, ast.Subscript):
            return self.eval(node.value)[self.eval(node.slice)]
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(None if p is None else self.eval(p) for p in parts))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.eval(node.operand))
        if isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
            left = self.eval(node.left)
            result: Any = True
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node)
                result = _COMPARE[type(op)](left, right)
                if not result:
                    return result
                left = right
            return result
        raise ExpressionError(f"{ast.unparse(node)!r}: {type(node).__name__} is not allowed")

    def _attribute(self, obj: Any, name: str) -> Any:
        if not isinstance(obj, self.attribute_types):
            raise ExpressionError(
                f"attribute {name!r} of a {type(obj).__name__}: only tensors, ops namespaces "
                "and autograd nodes have attributes here"
            )
        private = name.startswith("_")
        if private and not (isinstance(obj, Tensor) and name in _TENSOR_PRIVATE):
            raise ExpressionError(f"attribute {name!r} is not allowed")
        try:
            return getattr(obj, name)
        except AttributeError as exc:
            raise ExpressionError(str(exc)) from None
        except RuntimeError as exc:
            if isinstance(obj, Tensor):  # e.g. an inference tensor's _version
                raise
            raise ExpressionError(str(exc)) from None

    def _call(self, node: ast.Call) -> Any:
        fn = self.eval(node.func)
        if not callable(fn):
            raise ExpressionError(f"{ast.unparse(node.func)!r} is not callable")
        args: list[Any] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise ExpressionError("*args is not allowed")
            args.append(self.eval(a))
        kwargs: dict[str, Any] = {}
        for k in node.keywords:
            if k.arg is None:
                raise ExpressionError("**kwargs is not allowed")
            kwargs[k.arg] = self.eval(k.value)
        return fn(*args, **kwargs)


def explanation_of(event: DispatchEvent, grad_mode: bool, inference_mode: bool) -> Explanation:
    """``dispatch.explain``'s answer for a call the trace recorded: its key-set arithmetic
    as it happened, and the kernel each key of the result would run, highest first."""
    entry = resolve_entry(event.op)
    assert event.formation is not None
    return explanation_for(entry, event.formation, grad_mode, inference_mode)


def cmd_explain(source: str, mode: str, fmt: str, colour: bool) -> int:
    stmts = parse(source)
    evaluator = Evaluator()
    tr = Trace()
    result: Any = None
    error: str | None = None
    with preserved_tls():
        with mode_guard(mode):
            import modes

            grad_mode = modes.is_grad_enabled()
            inference_mode = modes.is_inference_mode_enabled()
            try:
                with tr:
                    result = evaluator.run(stmts)
            except ExpressionError:
                raise
            except Exception as exc:
                error = error_text(exc)
        result_text = None if error is not None else repr(result)
    roots = tr.roots
    last = roots[-1] if roots else None
    ex = explanation_of(last, grad_mode, inference_mode) if last is not None else None
    if fmt == "json":
        emit_json(
            {
                "expression": source,
                "mode": mode,
                "result": result_text,
                "error": error,
                "calls": [r.to_dict() for r in roots],
                "keys_run": [[r.op, chain(r)] for r in roots],
                "last_call": None
                if ex is None or last is None
                else {**ex.as_dict(), "keys_run": chain(last), "error": last.error},
            }
        )
        return EXIT_FAILED if error is not None else EXIT_OK
    st = Style(colour)
    out = [
        f"expression  {source}",
        f"mode        {mode} ({MODE_GUARD_TEXT[mode]})",
    ]
    if error is not None:
        out.append("raised      " + st.bad(error))
    else:
        out.append(f"result      {result_text}")
    out.append(st.bold(f"operator calls ({len(roots)}), as traced:"))
    out.extend("  " + line for line in tree_lines(roots, st))
    if not roots:
        out.append("  (none)")
    if ex is not None and last is not None:
        out.append(st.bold(f"the last call, {last.op}, explained:"))
        out.extend("  " + line for line in ex.lines())
        ran = " -> ".join(st.key(k) for k in chain(last))
        out.append(f"  ran: {ran}" + (st.bad(f"  (raised {last.error})") if last.error else ""))
    print("\n".join(out))
    return EXIT_FAILED if error is not None else EXIT_OK
