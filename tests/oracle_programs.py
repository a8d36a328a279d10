"""Differential autograd programs: run the same torch-syntax program on torch and on
dispatchsim in lockstep and compare everything observable after every step.

A *program* is a list of one-line Python statements written in torch syntax
(``t3 = t1.view(-1)``, ``with torch.no_grad(): t2.add_(t0)``). Each line is
``exec``-ed twice: once in a namespace where ``torch`` is the real module and once
where ``torch`` is :func:`dispatchsim_torch` (a tiny stand-in mapping the few
module-level names the programs use onto ``dispatch`` / ``modes`` /
``kernels.autograd``). Tensor methods are spelled the same in both libraries, so
the text that ran is exactly the text printed when a program fails.

Tensors live in the namespaces as ``t0``, ``t1``, ...; after every step
:func:`observe` snapshots every live tensor (values, requires_grad, is_leaf,
grad_fn name and graph, view-ness, base, version, grad), each attribute read
guarded so that a raising read (a view whose base was modified under no_grad)
is itself an observation. A step that raises records the builtin exception type
and the exact message; both libraries must raise alike, and then the program
goes on.

This module does not import torch: the caller passes the torch module in.
"""

from __future__ import annotations

import math
import re
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "ELEMENTS",
    "SHAPES",
    "Lockstep",
    "ProgramGenerator",
    "dispatchsim_torch",
    "render",
]

_NAME = re.compile(r"t\d+\Z")


# ---------------------------------------------------------------------------------------------
# the dispatchsim stand-in for `torch` (module-level names only; methods are the tensors' own)
# ---------------------------------------------------------------------------------------------
def dispatchsim_torch() -> types.SimpleNamespace:
    """The module-level ``torch.*`` names the programs use, bound to dispatchsim."""
    import dispatch
    import modes
    from kernels import autograd

    return types.SimpleNamespace(
        tensor=dispatch.tensor,
        float64=dispatch.float64,
        float32=dispatch.float32,
        no_grad=modes.no_grad,
        enable_grad=modes.enable_grad,
        autograd=types.SimpleNamespace(grad=autograd.grad, backward=autograd.backward),
        matmul=dispatch.matmul,
    )


# ---------------------------------------------------------------------------------------------
# running and observing
# ---------------------------------------------------------------------------------------------
Error = tuple[str, str]  # (builtin exception type name, message)


def _error(e: BaseException) -> Error:
    """The first builtin class in the exception's MRO, and its text."""
    for cls in type(e).__mro__:
        if cls.__module__ == "builtins":
            return (cls.__name__, str(e))
    return (type(e).__name__, str(e))


def run_line(ns: dict[str, Any], code: str) -> Error | None:
    """``exec`` one program line in ``ns``; the error it raised, if any."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, "<program>", "exec"), ns)
    except Exception as e:
        return _error(e)
    return None


def live_names(ns: dict[str, Any]) -> list[str]:
    """The program's variables, in creation order."""
    return sorted((k for k in ns if _NAME.match(k)), key=lambda k: int(k[1:]))


def _is_tensor(x: Any) -> bool:
    # on the type: reading grad_fn itself may raise (a view whose base changed under no_grad)
    return hasattr(type(x), "grad_fn") and hasattr(type(x), "_is_view")


def _read(fn: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ("ok", fn())
    except Exception as e:
        return ("raises", *_error(e))


def _node_name(node: Any) -> str | None:
    return None if node is None else str(node.name())


def _graph(node: Any, depth: int = 6) -> Any:
    """The autograd graph below ``node`` as nested ``(name, ((child, input_nr), ...))``."""
    if node is None:
        return None
    if depth == 0:
        return (node.name(), "...")
    return (
        node.name(),
        tuple((_graph(n, depth - 1), int(nr)) for n, nr in node.next_functions),
    )


def _array(t: Any) -> np.ndarray[Any, Any]:
    return np.array(t.detach().numpy(), copy=True)


def observe(ns: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Everything observable about every live program variable."""
    names = live_names(ns)
    by_id = {id(ns[n]): n for n in names}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        t = ns[name]
        if not _is_tensor(t):
            out[name] = {"object": ("ok", type(t).__name__ if t is not None else None)}
            continue

        def base_name(t: Any = t) -> str | None:
            b = t._base
            return None if b is None else by_id.get(id(b), "<a tensor outside the program>")

        def grad(t: Any = t) -> Any:
            g = t.grad
            return None if g is None else (tuple(g.shape), bool(g.requires_grad), _array(g))

        out[name] = {
            "shape": _read(lambda t=t: tuple(t.shape)),
            "dtype": _read(lambda t=t: str(t.dtype).rsplit(".", 1)[-1]),
            "value": _read(lambda t=t: _array(t)),
            "requires_grad": _read(lambda t=t: bool(t.requires_grad)),
            "is_leaf": _read(lambda t=t: bool(t.is_leaf)),
            "grad_fn": _read(lambda t=t: _node_name(t.grad_fn)),
            "next_functions": _read(lambda t=t: _graph(t.grad_fn)),
            "_is_view()": _read(lambda t=t: bool(t._is_view())),
            "_base": _read(base_name),
            "_version": _read(lambda t=t: int(t._version)),
            "grad": _read(grad),
        }
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-7, atol=1e-9, equal_nan=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _show(v: Any) -> str:
    if isinstance(v, tuple) and v and v[0] == "ok":
        v = v[1]
    elif isinstance(v, tuple) and v and v[0] == "raises":
        return f"raises {v[1]}: {v[2]}"
    if isinstance(v, np.ndarray):
        return np.array2string(v, precision=6, separator=", ")
    if isinstance(v, tuple) and v and isinstance(v[-1], np.ndarray):
        return f"{_show(v[-1])} (requires_grad={v[1]})" if len(v) == 3 else _show(v[-1])
    return repr(v)


def diff_observations(
    expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> list[str]:
    """Human-readable differences, torch (expected) first."""
    out = []
    if list(expected) != list(actual):
        out.append(f"live variables: torch {list(expected)} vs dispatchsim {list(actual)}")
    for name, attrs in expected.items():
        other = actual.get(name)
        if other is None:
            continue
        for attr, v in attrs.items():
            w = other.get(attr, ("missing",))
            if not _same(v, w):
                out.append(
                    f"{name}.{attr}:\n      torch:       {_show(v)}\n      dispatchsim: {_show(w)}"
                )
    return out


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------
def render(lines: Sequence[str], errors: Sequence[Error | None], problem: str | None = None) -> str:
    """The program as plain runnable torch code; lines that raised in torch are wrapped
    in try/except (the program goes on after them, as in the lockstep run)."""
    out = [
        "import numpy as np",
        "import torch",
        "# (dispatchsim: `from tests.oracle_programs import dispatchsim_torch; "
        "torch = dispatchsim_torch()`)",
        "",
    ]
    for line, err in zip(lines, errors):
        if err is None:
            out.append(line)
        else:
            out.append("try:")
            out.append(f"    {line}")
            out.append(f"except {err[0]} as e:  # {err[1][:100]!r}")
            out.append("    print(e)")
    if problem:
        out.append("")
        out.extend("# " + p for p in problem.splitlines())
    return "\n".join(out)


class Lockstep:
    """Runs program lines on torch and dispatchsim together and asserts they agree."""

    def __init__(self, torch: Any) -> None:
        self.torch_ns: dict[str, Any] = {"torch": torch, "np": np}
        self.sim_ns: dict[str, Any] = {"torch": dispatchsim_torch(), "np": np}
        self.lines: list[str] = []
        self.errors: list[Error | None] = []

    def fail(self, problem: str) -> None:
        listing = render(self.lines, self.errors, problem)
        raise AssertionError("dispatchsim differs from torch on this program:\n\n" + listing + "\n")

    def step(self, code: str) -> Error | None:
        self.lines.append(code)
        expected = run_line(self.torch_ns, code)
        actual = run_line(self.sim_ns, code)
        self.errors.append(expected)
        self.check(expected, actual)
        return expected

    def check(self, expected: Error | None, actual: Error | None) -> None:
        """Fail unless both raised alike and every live tensor looks the same."""
        if expected != actual:
            self.fail(
                f"MISMATCH at the last line:\n  torch:       "
                f"{'no error' if expected is None else f'{expected[0]}: {expected[1]}'}\n"
                f"  dispatchsim: "
                f"{'no error' if actual is None else f'{actual[0]}: {actual[1]}'}"
            )
        diffs = diff_observations(observe(self.torch_ns), observe(self.sim_ns))
        if diffs:
            self.fail("MISMATCH after the last line:\n  " + "\n  ".join(diffs))

    def run(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.step(line)


# ---------------------------------------------------------------------------------------------
# program generation (hypothesis draws, guided by the shapes of the torch side)
# ---------------------------------------------------------------------------------------------
# simple values first: hypothesis shrinks towards the start of a sampled_from list
ELEMENTS = (1.0, 2.0, -1.0, 0.5, -0.5, 1.5, -2.0, 0.0, 3.0, -0.25)
SHAPES = ((2, 3), (3,), (), (1, 3), (2, 1), (3, 2), (2, 2, 3), (3, 3), (2, 3, 1))
UNARY = ("neg", "exp", "log", "sin", "cos", "relu", "sigmoid", "tanh", "reciprocal")
BINARY = ("add", "sub", "mul", "div", "pow")
INPLACE_BINARY = ("add_", "sub_", "mul_", "div_")
INPLACE_UNARY = ("neg_", "relu_", "exp_", "zero_")
SCALARS = (2.0, 0.5, -1.0, 1.5, 3, 0)


def broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    out = []
    for x, y in zip(reversed(tuple(a)), reversed(tuple(b))):
        if x != y and x != 1 and y != 1:
            return None
        out.append(max(x, y) if min(x, y) != 0 else 0)
    longer = a if len(a) > len(b) else b
    return tuple(longer[: abs(len(a) - len(b))]) + tuple(reversed(out))


def matmul_ok(a: Sequence[int], b: Sequence[int]) -> bool:
    if not a or not b:
        return False
    if len(a) == 1 and len(b) == 1:
        return a[0] == b[0]
    if len(b) == 1:
        return a[-1] == b[0]
    if len(a) == 1:
        return a[0] == b[-2]
    return a[-1] == b[-2] and broadcast(a[:-2], b[:-2]) is not None


def single_term_product(a: Sequence[int], b: Sequence[int]) -> bool:
    """A matrix product of two operands of 2+ dimensions whose contracted dimension is 1.
    KNOWN divergence (docs/divergences.md; tests/test_inference_fuzz.py
    ``signed_zero_of_single_term_matrix_product``): the sign of a zero it produces follows
    numpy's BLAS, not torch's gemm, so the random programs do not make one."""
    return len(a) >= 2 and len(b) >= 2 and a[-1] == 1


def _fmt_index(parts: Sequence[Any]) -> str:
    def one(p: Any) -> str:
        if p is None:
            return "None"
        if p is Ellipsis:
            return "..."
        if isinstance(p, slice):
            s = "" if p.start is None else str(p.start)
            s += ":" + ("" if p.stop is None else str(p.stop))
            if p.step is not None:
                s += ":" + str(p.step)
            return s
        return str(p)

    if not parts:
        return "..."
    return ", ".join(one(p) for p in parts)


class ProgramGenerator:
    """Draws program lines one at a time, looking at the torch namespace (shapes,
    requires_grad) so that most drawn operations are well-formed; a few are drawn
    ill-formed on purpose, to compare the error texts."""

    def __init__(self, data: Any, ns: dict[str, Any]) -> None:
        self.data = data
        self.ns = ns
        self.counter = 0

    # -- drawing helpers ----------------------------------------------------------------------
    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def rare(self, one_in: int = 8) -> bool:
        """True once in ``one_in`` draws (shrinks to False)."""
        return bool(self.draw(st.integers(0, one_in - 1)) == one_in - 1)

    def fresh(self) -> str:
        name = f"t{self.counter}"
        self.counter += 1
        return name

    def tensors(self) -> list[str]:
        return [n for n in live_names(self.ns) if _is_tensor(self.ns[n])]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.ns[name].shape)

    def attr(self, name: str, attr: str) -> Any:
        try:
            return getattr(self.ns[name], attr)
        except Exception:
            return None

    def pick(self, prefer: Callable[[str], bool] | None = None) -> str:
        """A live tensor; one satisfying ``prefer`` unless a rare draw says otherwise."""
        names = self.tensors()
        if prefer is not None and not self.rare(10):
            good = [n for n in names if prefer(n)]
            if good:
                names = good
        return str(self.draw(st.sampled_from(names)))

    def dim(self, name: str, extra: int = 0) -> int:
        nd = len(self.shape(name)) + extra
        n = max(nd, 1)
        if self.rare(12):
            return int(self.draw(st.sampled_from([n, -n - 1])))
        return int(self.draw(st.integers(-n, n - 1)))

    def scalar(self) -> Any:
        return self.draw(st.sampled_from(SCALARS))

    def operand(self, target: tuple[int, ...] | None, into: bool = False) -> str:
        """A scalar or a tensor broadcastable with ``target`` (to exactly it if ``into``)."""
        if self.draw(st.integers(0, 3)) == 3:
            return repr(self.scalar())

        def ok(n: str) -> bool:
            if target is None:
                return True
            b = broadcast(target, self.shape(n))
            return b is not None and (not into or b == target)

        return self.pick(ok)

    # -- leaves ---------------------------------------------------------------------------------
    def leaf(self) -> str:
        shape = self.draw(st.sampled_from(SHAPES))
        n = math.prod(shape)
        vals = self.draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n))
        arr = np.array(vals, dtype=np.float64).reshape(shape).tolist()
        rg = not self.rare(3)
        return f"{self.fresh()} = torch.tensor(np.array({arr!r}), requires_grad={rg})"

    # -- operations -----------------------------------------------------------------------------
    def functional(self) -> str:
        kind = self.draw(st.sampled_from(("unary", "binary", "reduce", "matmul", "scalar_op")))
        if kind == "unary":
            a = self.pick()
            op = self.draw(st.sampled_from(UNARY))
            expr = self.draw(st.sampled_from((f"{a}.{op}()", f"-{a}", f"{a}.pow(2)")))
        elif kind == "binary":
            a = self.pick()
            op = self.draw(st.sampled_from(BINARY))
            b = self.operand(self.shape(a))
            form = self.draw(st.integers(0, 2))
            if form == 1 and op != "pow":
                sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
                expr = f"{a} {sym} {b}"
            elif form == 2 and op in ("add", "sub"):
                expr = f"{a}.{op}({b}, alpha={self.draw(st.sampled_from((2, -1, 0.5)))})"
            else:
                expr = f"{a}.{op}({b})"
        elif kind == "scalar_op":
            a = self.pick()
            s = self.scalar()
            sym = self.draw(st.sampled_from(("+", "-", "*", "/", "**")))
            expr = f"{s!r} {sym} {a}"
        elif kind == "reduce":
            a = self.pick()
            op = self.draw(st.sampled_from(("sum", "mean")))
            form = self.draw(st.integers(0, 3))
            if form == 0:
                expr = f"{a}.{op}()"
            elif form == 1:
                expr = f"{a}.{op}({self.dim(a)})"
            elif form == 2:
                expr = f"{a}.{op}({self.dim(a)}, keepdim=True)"
            else:
                dims = sorted({self.dim(a), self.dim(a)})
                keep = self.draw(st.booleans())
                expr = f"{a}.{op}({tuple(dims)!r}, keepdim={keep})"
        else:
            form = self.draw(st.sampled_from(("@", "matmul", "mm", "mv", "dot", "bmm")))
            nd = {"mm": (2, 2), "mv": (2, 1), "dot": (1, 1), "bmm": (3, 3)}.get(form)
            if nd is None:
                a = self.pick(lambda n: len(self.shape(n)) >= 1)
                b = self.pick(lambda n: matmul_ok(self.shape(a), self.shape(n)))
            else:
                a = self.pick(lambda n: len(self.shape(n)) == nd[0])
                b = self.pick(
                    lambda n: (
                        len(self.shape(n)) == nd[1]
                        and matmul_ok(self.shape(a), self.shape(n))
                        and self.shape(a)[:-2] == self.shape(n)[:-2]
                    )
                )
            expr = f"{a} @ {b}" if form == "@" else f"{a}.{form}({b})"
            if matmul_ok(self.shape(a), self.shape(b)) and single_term_product(
                self.shape(a), self.shape(b)
            ):
                expr = f"{a}.neg()"  # steered around a documented divergence (below)
        return f"{self.fresh()} = {expr}"

    def _shape_for_view(self, a: str) -> tuple[int, ...]:
        shape = self.shape(a)
        n = math.prod(shape)
        cands: list[tuple[int, ...]] = [(-1,), (n,), tuple(reversed(shape)), (1, *shape)]
        if n and n % 2 == 0:
            cands += [(2, -1), (-1, 2)]
        if n and n % 3 == 0:
            cands += [(3, -1)]
        if self.rare(10):
            cands = [(n + 1,), (-1, -1)]
        return tuple(self.draw(st.sampled_from(cands)))

    def _index(self, a: str) -> str:
        shape = self.shape(a)
        parts: list[Any] = []
        k = self.draw(st.integers(0, len(shape) + (1 if self.rare(10) else 0)))
        used_ellipsis = False
        for i in range(k):
            size = shape[i] if i < len(shape) else 1
            kind = self.draw(st.sampled_from(("int", "slice", "none", "ellipsis", "full")))
            if kind == "int":
                lo, hi = (-size, size - 1) if not self.rare(12) else (size, size)
                parts.append(self.draw(st.integers(lo, max(lo, hi))))
            elif kind == "slice":
                start = self.draw(st.none() | st.integers(-size, size))
                stop = self.draw(st.none() | st.integers(-size, size + 1))
                step = self.draw(st.none() | st.integers(1, 2))
                parts.append(slice(start, stop, step))
            elif kind == "none":
                parts.append(None)
            elif kind == "ellipsis" and not used_ellipsis:
                used_ellipsis = True
                parts.append(Ellipsis)
            else:
                parts.append(slice(None))
        return _fmt_index(parts)

    def _multi(self, expr: str) -> str:
        """``tA, tB = expr`` with as many names as torch returns outputs."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                count = len(eval(expr, dict(self.ns)))
        except Exception:
            count = 1
        names = [self.fresh() for _ in range(max(count, 1))]
        return f"({', '.join(names)},) = {expr}"

    def view(self) -> str:
        a = self.pick()
        shape = self.shape(a)
        nd = len(shape)
        kind = self.draw(
            st.sampled_from(
                (
                    "view",
                    "getitem",
                    "reshape",
                    "t",
                    "transpose",
                    "permute",
                    "unsqueeze",
                    "squeeze",
                    "expand",
                    "narrow",
                    "select",
                    "split",
                    "chunk",
                    "unbind",
                    "view_as",
                    "contiguous",
                )
            )
        )
        if kind in ("view", "reshape"):
            s = self._shape_for_view(a)
            args = "()" if not s else ", ".join(map(str, s))
            expr = f"{a}.{kind}({args})"
        elif kind == "getitem":
            expr = f"{a}[{self._index(a)}]"
        elif kind == "t":
            expr = f"{a}.t()"
        elif kind == "transpose":
            expr = f"{a}.transpose({self.dim(a)}, {self.dim(a)})"
        elif kind == "permute":
            perm = self.draw(st.permutations(list(range(nd))))
            if self.rare(10):
                perm = [*perm, 0]
            expr = f"{a}.permute({', '.join(map(str, perm))})" if perm else f"{a}.permute(())"
        elif kind == "unsqueeze":
            expr = f"{a}.unsqueeze({self.dim(a, extra=1)})"
        elif kind == "squeeze":
            expr = f"{a}.squeeze()" if self.draw(st.booleans()) else f"{a}.squeeze({self.dim(a)})"
        elif kind == "expand":
            sizes: list[int] = [2] * self.draw(st.integers(0, 1))
            for s in shape:
                opts = [-1, s] if s != 1 else [-1, 1, 2, 3]
                if self.rare(12):
                    opts = [s + 1]
                sizes.append(self.draw(st.sampled_from(opts)))
            expr = f"{a}.expand({', '.join(map(str, sizes))})" if sizes else f"{a}.expand(())"
        elif kind == "narrow":
            d = self.dim(a)
            size = shape[d] if -nd <= d < nd else 1
            start = self.draw(st.integers(-size, max(size - 1, -size)))
            s0 = start + size if start < 0 else start
            length = self.draw(st.integers(0, max(size - s0, 0) + (1 if self.rare(12) else 0)))
            expr = f"{a}.narrow({d}, {start}, {length})"
        elif kind == "select":
            d = self.dim(a)
            size = shape[d] if -nd <= d < nd else 1
            i = self.draw(st.integers(-size, size - 1)) if size and not self.rare(12) else size
            expr = f"{a}.select({d}, {i})"
        elif kind == "split":
            d = self.dim(a)
            size = shape[d] if -nd <= d < nd else 1
            if self.draw(st.booleans()):
                expr = f"{a}.split({self.draw(st.integers(1, max(size, 1)))}, {d})"
            else:
                cut = sorted(self.draw(st.lists(st.integers(0, size), max_size=2)))
                sizes = [y - x for x, y in zip([0, *cut], [*cut, size])]
                if self.rare(10):
                    sizes.append(1)
                expr = f"{a}.split({sizes!r}, {d})"
            return self._multi(expr)
        elif kind == "chunk":
            expr = f"{a}.chunk({self.draw(st.integers(1, 4))}, {self.dim(a)})"
            return self._multi(expr)
        elif kind == "unbind":
            return self._multi(f"{a}.unbind({self.dim(a)})")
        elif kind == "view_as":
            b = self.pick(lambda n: math.prod(self.shape(n)) == math.prod(shape))
            expr = f"{a}.view_as({b})"
        else:
            expr = f"{a}.contiguous()"
        return f"{self.fresh()} = {expr}"

    def copy(self) -> str:
        a = self.pick()
        op = self.draw(st.sampled_from(("clone", "detach", "clone", "clone")))
        return f"{self.fresh()} = {a}.{op}()"

    def inplace(self) -> str:
        a = self.pick()
        shape = self.shape(a)
        kind = self.draw(
            st.sampled_from(
                ("binary", "unary", "augmented", "copy", "fill", "setitem", "pow", "metadata")
            )
        )
        if kind == "binary":
            op = self.draw(st.sampled_from(INPLACE_BINARY))
            return f"{a}.{op}({self.operand(shape, into=True)})"
        if kind == "unary":
            return f"{a}.{self.draw(st.sampled_from(INPLACE_UNARY))}()"
        if kind == "augmented":
            sym = self.draw(st.sampled_from(("+=", "-=", "*=", "/=")))
            return f"{a} {sym} {self.operand(shape, into=True)}"
        if kind == "copy":
            return f"{a}.copy_({self.pick(lambda n: broadcast(shape, self.shape(n)) == shape)})"
        if kind == "fill":
            if self.draw(st.booleans()):
                return f"{a}.fill_({self.scalar()!r})"
            b = self.pick(lambda n: self.shape(n) == ())
            return f"{a}.fill_({b})"
        if kind == "pow":
            return f"{a}.pow_({self.draw(st.sampled_from((2, 0.5, 3)))})"
        if kind == "setitem":
            idx = self._index(a)
            try:
                target: tuple[int, ...] | None = tuple(eval(f"{a}[{idx}]", dict(self.ns)).shape)
            except Exception:
                target = None
            return f"{a}[{idx}] = {self.operand(target, into=True)}"
        if self.attr(a, "retains_grad"):
            # torch 2.13 itself breaks here: retain_grad() followed by t_()/unsqueeze_() and
            # another in-place op fails "INTERNAL ASSERT FAILED at variable.cpp:207"
            return f"{a}.neg_()"
        op = self.draw(st.sampled_from(("t_", "transpose_", "unsqueeze_", "squeeze_")))
        if op == "transpose_":
            return f"{a}.transpose_({self.dim(a)}, {self.dim(a)})"
        if op == "unsqueeze_":
            return f"{a}.unsqueeze_({self.dim(a, extra=1)})"
        return f"{a}.{op}()"

    def requires_rg(self, n: str) -> bool:
        return bool(self.attr(n, "requires_grad"))

    def autograd_step(self) -> str:
        kind = self.draw(
            st.sampled_from(
                ("backward", "sum_backward", "grad", "requires_grad_", "retain_grad", "detach_")
            )
        )
        if kind == "backward":
            a = self.pick(lambda n: self.shape(n) == () and self.requires_rg(n))
            retain = self.draw(st.booleans())
            return f"{a}.backward()" if not retain else f"{a}.backward(retain_graph=True)"
        if kind == "sum_backward":
            a = self.pick(self.requires_rg)
            retain = self.draw(st.booleans())
            if self.rare(5):
                return f"{a}.sum().backward(inputs=[{self.pick(self.requires_rg)}])"
            return f"{a}.sum().backward(retain_graph={retain})"
        if kind == "grad":
            return self.grad_line(self.pick(self.requires_rg), retain=self.draw(st.booleans()))
        if kind == "requires_grad_":
            a = self.pick(lambda n: not self.requires_rg(n))
            flag = "" if not self.rare(4) else "False"
            return f"{a}.requires_grad_({flag})"
        if kind == "retain_grad":
            return f"{self.pick(self.requires_rg)}.retain_grad()"
        return f"{self.pick()}.detach_()"

    def grad_line(self, out: str, retain: bool) -> str:
        """``(tA, tB,) = torch.autograd.grad(out.sum(), (leaves...,), ...)``."""

        def leafy(n: str) -> bool:
            return self.requires_rg(n) and bool(self.attr(n, "is_leaf"))

        k = self.draw(st.integers(1, 2))
        inputs = sorted({self.pick(leafy) for _ in range(k)}, key=lambda n: int(n[1:]))
        names = [self.fresh() for _ in inputs]
        unused = not self.rare(4)
        target = f"{out}.sum()" if not self.rare(8) else out
        return (
            f"({', '.join(names)},) = torch.autograd.grad({target}, ({', '.join(inputs)},), "
            f"allow_unused={unused}, retain_graph={retain})"
        )

    def step(self) -> str:
        kind = self.draw(
            st.sampled_from(("functional", "view", "inplace", "copy", "autograd", "leaf"))
        )
        line = {
            "functional": self.functional,
            "view": self.view,
            "inplace": self.inplace,
            "copy": self.copy,
            "autograd": self.autograd_step,
            "leaf": self.leaf,
        }[kind]()
        if self.rare(4):
            line = f"with torch.no_grad(): {line}"
        return line

    def final_loss(self) -> tuple[str, str]:
        """A scalar loss from one or two tensors (preferably ones requiring grad)."""
        parts = sorted(
            {self.pick(self.requires_rg) for _ in range(self.draw(st.integers(1, 2)))},
            key=lambda n: int(n[1:]),
        )
        loss = self.fresh()
        return f"{loss} = " + " + ".join(f"{p}.sum()" for p in parts), loss

    def final_backward(self, loss: str) -> str:
        """``loss.backward()`` or ``torch.autograd.grad`` with respect to some leaves."""
        if self.draw(st.booleans()):
            return f"{loss}.backward()"
        return self.grad_line(loss, retain=False)
