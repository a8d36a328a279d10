"""Differential fuzzing of grad modes x inference mode against a real ``torch==2.13.0``.

Hypothesis draws random programs made of

* properly nested guards: ``no_grad``, ``enable_grad``, ``inference_mode(True)``,
  ``inference_mode(False)``, ``_AutoDispatchBelowADInplaceOrView`` (up to four deep);
* tensors created in and out of inference mode, with and without ``requires_grad``;
* functional ops (unary, binary with tensors or Python numbers, reductions), view ops
  (view/reshape/t/transpose/unsqueeze/squeeze/narrow/select/indexing/expand/unbind/
  split/chunk/contiguous), in-place ops (binary, unary, ``zero_``/``fill_``/``copy_``,
  setitem, augmented assignment, ``t_``/``transpose_``/``unsqueeze_``/``squeeze_``,
  ``detach_``) on tensors of every kind — normal, inference, views, views made in
  inference mode or under the guards;
* ``clone``, ``detach``, ``requires_grad_(True/False)`` and ``x.sum().backward()``.

Each program runs on torch and on dispatchsim in lockstep: every guard entry/exit and
every statement runs on both, and after EVERY step the fuzzer compares the thread-local
state (grad mode, inference mode, ADInplaceOrView included/excluded, autograd keys
excluded/included) and, for every live tensor, its values (allclose), shape, dtype,
``is_inference()``, ``_version`` (or the error reading it raises), ``requires_grad``,
``is_leaf`` (or its error), ``grad_fn.name()`` (or its error), ``_is_view()`` and
``.grad``. A statement that raises must raise the same builtin exception type with the
same message, byte for byte, in both; the program then goes on.

The one allowed difference (docs/divergences.md): an in-place op on an inference tensor
outside InferenceMode. PyTorch's ADInplaceOrView kernel mutates the data (or, for
``t_``/``unsqueeze_``/..., the sizes and strides) and only then raises from
``VariableVersion::bump()``; dispatchsim raises before touching anything. When torch
raises that error (and dispatchsim raised the same one), the fuzzer re-syncs torch to
dispatchsim's view of the world: it restores, on the torch side, the storage bytes and
the size/stride/offset of every live inference tensor as they were before the statement
(snapshots taken before every statement; only inference tensors can be reached by that
error, and every alias of an inference tensor is an inference tensor). It does not copy
anything from dispatchsim, so the comparison that follows still checks that dispatchsim
left the data untouched. A listing marks such lines with a comment.

A failure prints the failing program as plain runnable torch code, guards as ``with``
blocks and raising lines wrapped in try/except: hypothesis's shrunk example, further
minimized (statements and empty guard blocks deleted one at a time while it still fails
the same way, variables renumbered), followed by the unminimized listing. The
handwritten ``PROGRAMS`` pin the inference-mode cases of reference (c), (e), (f);
``DIVERGENCES`` holds one minimal program per difference the fuzzer found (they fail
until dispatchsim is fixed or the difference is documented as deliberate). ``DISPATCHSIM_FUZZ_PROGRAMS`` sets the
number of programs (default 800); ``DISPATCHSIM_FUZZ_STEPS`` the maximum program length.
"""

from __future__ import annotations

import math
import os
import re
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch.keys import DispatchKey

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.oracle

FUZZ_PROGRAMS = int(os.environ.get("DISPATCHSIM_FUZZ_PROGRAMS", "800"))
MAX_STEPS = int(os.environ.get("DISPATCHSIM_FUZZ_STEPS", "24"))
MAX_DEPTH = 4

INFERENCE_INPLACE = (
    "Inplace update to inference tensor outside InferenceMode is not allowed."
    "You can make a clone to get a normal tensor before doing inplace update."
    "See https://github.com/pytorch/rfcs/pull/17 for more details."
)

# guard name -> the expression that builds it (the same text for both libraries)
GUARDS: dict[str, str] = {
    "no_grad": "torch.no_grad()",
    "enable_grad": "torch.enable_grad()",
    "inference_mode": "torch.inference_mode(True)",
    "inference_mode_off": "torch.inference_mode(False)",
    "below_adiov": "torch._C._AutoDispatchBelowADInplaceOrView()",
}


def sim_torch() -> types.SimpleNamespace:
    """The module-level ``torch`` names the programs use, bound to dispatchsim."""
    return types.SimpleNamespace(
        tensor=dispatch.tensor,
        ones=dispatch.ones,
        zeros=dispatch.zeros,
        full=dispatch.full,
        float32=dispatch.float32,
        no_grad=modes.no_grad,
        enable_grad=modes.enable_grad,
        inference_mode=modes.inference_mode,
        is_grad_enabled=modes.is_grad_enabled,
        is_inference_mode_enabled=modes.is_inference_mode_enabled,
        _C=types.SimpleNamespace(
            _AutoDispatchBelowADInplaceOrView=modes.AutoDispatchBelowADInplaceOrView
        ),
    )


# ---------------------------------------------------------------------------------------------
# observing
# ---------------------------------------------------------------------------------------------
Error = tuple[str, str]  # (builtin exception type name, message)
_NAME = re.compile(r"t\d+\Z")


def _error(e: BaseException) -> Error:
    """The first builtin class in the exception's MRO, and its text."""
    for cls in type(e).__mro__:
        if cls.__module__ == "builtins":
            return (cls.__name__, str(e))
    return (type(e).__name__, str(e))


def run_line(ns: dict[str, Any], code: str) -> Error | None:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            exec(compile(code, "<program>", "exec"), ns)
    except Exception as e:
        return _error(e)
    return None


def live_names(ns: dict[str, Any]) -> list[str]:
    return sorted((k for k in ns if _NAME.match(k)), key=lambda k: int(k[1:]))


def _is_tensor(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, dispatch.Tensor))


def _read(fn: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ("ok", fn())
    except Exception as e:
        return ("raises", *_error(e))


def _values(t: Any) -> np.ndarray[Any, Any]:
    """The tensor's data, read without dispatching on the dispatchsim side."""
    if isinstance(t, torch.Tensor):
        return np.array(t.detach().numpy(), copy=True)
    return np.array(t._data, copy=True)


def _tls(lib_torch: Any) -> dict[str, Any]:
    """Grad mode, inference mode, and where ADInplaceOrView / the autograd keys are."""
    if lib_torch is torch:
        c = torch._C
        k = c.DispatchKey
        return {
            "grad_mode": torch.is_grad_enabled(),
            "inference_mode": torch.is_inference_mode_enabled(),
            "ADInplaceOrView included": c._dispatch_tls_is_dispatch_key_included(k.ADInplaceOrView),
            "ADInplaceOrView excluded": c._dispatch_tls_is_dispatch_key_excluded(k.ADInplaceOrView),
            # AutogradCPU = AutogradFunctionality + CPU bit; the TLS sets hold functionality
            # bits only (docs/divergences.md, "Every runtime key has its own bit")
            "autograd included": c._dispatch_tls_is_dispatch_key_included(k.AutogradFunctionality),
            "autograd excluded": c._dispatch_tls_is_dispatch_key_excluded(k.AutogradFunctionality),
        }
    inc, exc = dispatch.tls_local_dispatch_key_set()
    return {
        "grad_mode": modes.is_grad_enabled(),
        "inference_mode": modes.is_inference_mode_enabled(),
        "ADInplaceOrView included": DispatchKey.ADInplaceOrView in inc,
        "ADInplaceOrView excluded": DispatchKey.ADInplaceOrView in exc,
        "autograd included": DispatchKey.AutogradCPU in inc,
        "autograd excluded": DispatchKey.AutogradCPU in exc,
    }


def observe(ns: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Everything the comparison looks at: the TLS and every live program variable."""
    out: dict[str, dict[str, Any]] = {"<thread-local state>": _tls(ns["torch"])}
    for name in live_names(ns):
        t = ns[name]
        if not _is_tensor(t):
            out[name] = {"object": ("ok", type(t).__name__)}
            continue

        def grad(t: Any = t) -> Any:
            g = t.grad
            return None if g is None else _values(g)

        out[name] = {
            "shape": _read(lambda t=t: tuple(t.shape)),
            "dtype": _read(lambda t=t: str(t.dtype).rsplit(".", 1)[-1]),
            "value": _read(lambda t=t: _values(t)),
            "is_inference()": _read(lambda t=t: bool(t.is_inference())),
            "_version": _read(lambda t=t: int(t._version)),
            "requires_grad": _read(lambda t=t: bool(t.requires_grad)),
            "is_leaf": _read(lambda t=t: bool(t.is_leaf)),
            "grad_fn": _read(lambda t=t: None if t.grad_fn is None else str(t.grad_fn.name())),
            "_is_view()": _read(lambda t=t: bool(t._is_view())),
            "grad": _read(grad),
        }
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _show(v: Any) -> str:
    if isinstance(v, tuple) and v and v[0] == "raises":
        return f"raises {v[1]}: {v[2]}"
    if isinstance(v, tuple) and v and v[0] == "ok":
        v = v[1]
    if isinstance(v, np.ndarray):
        return np.array2string(v, precision=5, separator=", ")
    return repr(v)


def diff_observations(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    out = []
    if list(expected) != list(actual):
        out.append(f"live variables: torch {list(expected)} vs dispatchsim {list(actual)}")
    for name, attrs in expected.items():
        other = actual.get(name, {})
        for attr, v in attrs.items():
            w = other.get(attr, ("missing",))
            if not _same(v, w):
                out.append(
                    f"{name} {attr}:\n    torch:       {_show(v)}\n    dispatchsim: {_show(w)}"
                )
    return out


# ---------------------------------------------------------------------------------------------
# the lockstep runner
# ---------------------------------------------------------------------------------------------
class Lockstep:
    """Runs guard entries/exits and statements on torch and dispatchsim together and
    asserts after every step that both agree. ``close()`` exits every open guard (both
    sides), so a failing program never leaks thread-local state."""

    def __init__(self) -> None:
        self.torch_ns: dict[str, Any] = {"torch": torch}
        self.sim_ns: dict[str, Any] = {"torch": sim_torch()}
        self.events: list[tuple[Any, ...]] = []
        self._torch_guards: list[Any] = []
        self._sim_guards: list[Any] = []

    @property
    def depth(self) -> int:
        return len(self._torch_guards)

    # -- steps ----------------------------------------------------------------------------
    def enter(self, expr: str) -> None:
        self.events.append(("enter", expr))
        g = eval(expr, self.torch_ns)
        g.__enter__()
        self._torch_guards.append(g)
        s = eval(expr, self.sim_ns)
        s.__enter__()
        self._sim_guards.append(s)
        self.check(None, None)

    def exit(self) -> None:
        self.events.append(("exit",))
        self._torch_guards.pop().__exit__(None, None, None)
        self._sim_guards.pop().__exit__(None, None, None)
        self.check(None, None)

    def stmt(self, code: str) -> Error | None:
        snapshot = self._snapshot_torch_inference_tensors()
        expected = run_line(self.torch_ns, code)
        actual = run_line(self.sim_ns, code)
        resynced = False
        if expected is not None and expected[1] == INFERENCE_INPLACE and actual == expected:
            # the documented divergence: torch mutated, then raised; dispatchsim raised first
            self._restore(snapshot)
            resynced = True
        self.events.append(("stmt", code, expected, resynced))
        self.check(expected, actual)
        return expected

    def close(self) -> None:
        while self._torch_guards:
            self._torch_guards.pop().__exit__(None, None, None)
        while self._sim_guards:
            self._sim_guards.pop().__exit__(None, None, None)

    def run(self, program: str) -> None:
        """Run a program written as plain Python (``with`` blocks for guards)."""
        try:
            for kind, arg in parse(program):
                if kind == "enter":
                    self.enter(arg)
                elif kind == "exit":
                    self.exit()
                else:
                    self.stmt(arg)
            while self.depth:
                self.exit()
        finally:
            self.close()

    # -- the re-sync for torch's mutate-then-raise ------------------------------------------
    def _snapshot_torch_inference_tensors(self) -> list[tuple[Any, ...]]:
        snap = []
        for name in live_names(self.torch_ns):
            t = self.torch_ns[name]
            if isinstance(t, torch.Tensor) and t.is_inference():
                snap.append(
                    (t, tuple(t.shape), t.stride(), t.storage_offset(), t.untyped_storage().clone())
                )
        return snap

    @staticmethod
    def _restore(snapshot: list[tuple[Any, ...]]) -> None:
        with torch.inference_mode():  # inference tensors have no version counter to bump
            for t, size, stride, offset, storage in snapshot:
                t.untyped_storage().copy_(storage)
                if (tuple(t.shape), t.stride(), t.storage_offset()) != (size, stride, offset):
                    t.as_strided_(size, stride, offset)

    # -- comparing ------------------------------------------------------------------------
    def check(self, expected: Error | None, actual: Error | None) -> None:
        if expected != actual:
            self.fail(
                "MISMATCH at the marked step:\n  torch:       "
                + ("no error" if expected is None else f"{expected[0]}: {expected[1]}")
                + "\n  dispatchsim: "
                + ("no error" if actual is None else f"{actual[0]}: {actual[1]}")
            )
        diffs = diff_observations(observe(self.torch_ns), observe(self.sim_ns))
        if diffs:
            self.fail("MISMATCH after the marked step:\n  " + "\n  ".join(diffs))

    def fail(self, problem: str) -> None:
        raise AssertionError(
            "dispatchsim differs from torch 2.13 on this program:\n\n"
            + render(self.events, mark_last=True)
            + "\n\n"
            + problem
        )


# ---------------------------------------------------------------------------------------------
# programs as plain Python: rendering and parsing
# ---------------------------------------------------------------------------------------------
HEADER = (
    "import torch\n"
    "# dispatchsim: from tests.test_inference_fuzz import sim_torch; torch = sim_torch()\n"
)


def render(events: list[tuple[Any, ...]], mark_last: bool = False) -> str:
    """The program as runnable torch code: guards as ``with`` blocks, lines that raised
    (in torch) inside try/except."""
    out = [HEADER]
    depth = 0
    has_body = [True]
    for i, ev in enumerate(events):
        ind = "    " * depth
        mark = "  # <-- HERE" if mark_last and i == len(events) - 1 else ""
        if ev[0] == "enter":
            has_body[-1] = True
            out.append(f"{ind}with {ev[1]}:{mark}")
            depth += 1
            has_body.append(False)
        elif ev[0] == "exit":
            if not has_body.pop():
                out.append(f"{ind}pass")
            depth -= 1
            if mark:
                out.append(f"{'    ' * depth}# <-- HERE (end of the block above)")
        else:
            has_body[-1] = True
            _, code, err, resynced = ev
            if err is None:
                out.append(f"{ind}{code}{mark}")
            else:
                out.append(f"{ind}try:")
                out.append(f"{ind}    {code}{mark}")
                out.append(f"{ind}except {err[0]} as e:  # {err[1][:90]!r}")
                out.append(f"{ind}    print(e)")
                if resynced:
                    out.append(
                        f"{ind}# torch changed the data before raising; dispatchsim did not "
                        "(docs/divergences.md): the fuzzer restored torch's inference tensors"
                    )
    while has_body and len(has_body) > 1:
        if not has_body.pop():
            out.append("    " * (len(has_body)) + "pass")
    return "\n".join(out)


def parse(program: str) -> Iterator[tuple[str, str]]:
    """The inverse of :func:`render`, for handwritten programs: ``with G:`` enters a
    guard, a dedent exits it; try/except wrappers and comments are skipped."""
    depth = 0
    lines = [ln for ln in program.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    i = 0
    while i < len(lines):
        line = lines[i]
        level = (len(line) - len(line.lstrip())) // 4
        text = line.strip()
        if text.startswith(("import ", "except ", "print(")) or text == "pass":
            i += 1
            continue
        if text == "try:":
            i += 1
            while depth > level:
                depth -= 1
                yield ("exit", "")
            yield ("stmt", lines[i].strip().split("  #")[0])
            i += 1
            continue
        while depth > level:
            depth -= 1
            yield ("exit", "")
        if text.startswith("with ") and text.endswith(":"):
            depth += 1
            yield ("enter", text[5:-1])
        else:
            yield ("stmt", text.split("  #")[0])
        i += 1
    while depth:
        depth -= 1
        yield ("exit", "")


# ---------------------------------------------------------------------------------------------
# program generation (guided by the torch side: shapes, requires_grad, inference-ness)
# ---------------------------------------------------------------------------------------------
ELEMENTS = (1.0, 2.0, -1.0, 0.5, -0.5, 1.5, -2.0, 3.0)
SHAPES = ((2, 3), (3,), (), (1, 3), (2, 1), (3, 2))
# no exp/exp_: chains like sin(exp(exp(x))) leave float32's exact range, where numpy's and
# torch's libm disagree arbitrarily (exp is compared by tests/test_autograd_oracle.py in float64)
UNARY = ("neg", "sin", "cos", "tanh", "sigmoid", "relu")
BINARY = ("add", "mul", "sub", "div")
INPLACE_BINARY = ("add_", "mul_", "sub_", "div_")
INPLACE_UNARY = ("zero_", "neg_", "relu_")
SCALARS = (2.0, 0.5, -1.0, 1.5, 3)


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and y != 1:
            return None
        out.append(max(x, y))
    longer = a if len(a) > len(b) else b
    return tuple(longer[: abs(len(a) - len(b))]) + tuple(reversed(out))


# weights by repetition: guards are entered more often than exited (so that most statements
# run inside some guard), and inference_mode(True) is the guard drawn most often
STEP_KINDS = (
    *("create",) * 2,
    *("functional",) * 3,
    *("view",) * 3,
    *("inplace",) * 4,
    *("enter",) * 3,
    "exit",
    "copy",
    "requires_grad_",
    "backward",
)
GUARD_CHOICES = ("inference_mode", "inference_mode", "inference_mode", *GUARDS)


class ProgramGenerator:
    def __init__(self, data: st.DataObject, run: Lockstep) -> None:
        self.data = data
        self.run = run
        self.ns = run.torch_ns
        self.counter = 0

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def rare(self, one_in: int) -> bool:
        return bool(self.draw(st.integers(0, one_in - 1)) == one_in - 1)

    def fresh(self) -> str:
        name = f"t{self.counter}"
        self.counter += 1
        return name

    def tensors(self) -> list[str]:
        return [n for n in live_names(self.ns) if isinstance(self.ns[n], torch.Tensor)]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.ns[name].shape)

    def pick(self, prefer: Callable[[str], bool] | None = None) -> str:
        """A live tensor: one satisfying ``prefer`` (unless a rare draw says otherwise), and
        often an inference tensor or a view, the kinds this fuzzer is about."""
        names = self.tensors()
        if prefer is not None and not self.rare(8):
            good = [n for n in names if prefer(n)]
            if good:
                names = good
        kind = self.draw(st.sampled_from(("any", "inference", "view", "any")))
        if kind != "any":
            special = [n for n in names if self._kind(n) == kind]
            if special:
                names = special
        return str(self.draw(st.sampled_from(names)))

    def _kind(self, n: str) -> str:
        t = self.ns[n]
        return "inference" if t.is_inference() else "view" if t._is_view() else "normal"

    def _rg(self, n: str) -> bool:
        try:
            return bool(self.ns[n].requires_grad)
        except Exception:
            return False

    def scalar(self) -> Any:
        return self.draw(st.sampled_from(SCALARS))

    def operand(self, target: tuple[int, ...], into: bool) -> str:
        """A Python number or a live tensor broadcastable with (into) ``target``."""
        if self.draw(st.integers(0, 2)) == 2:
            return repr(self.scalar())

        def ok(n: str) -> bool:
            b = broadcast(target, self.shape(n))
            return b is not None and (not into or b == target)

        names = [n for n in self.tensors() if ok(n)]
        if not names:
            return repr(self.scalar())
        return str(self.draw(st.sampled_from(names)))

    # -- statements -----------------------------------------------------------------------------
    def create(self) -> str:
        shape = self.draw(st.sampled_from(SHAPES))
        rg = self.draw(st.booleans())
        if self.draw(st.booleans()):
            n = math.prod(shape)
            vals = self.draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n))
            arr = np.array(vals, dtype=np.float64).reshape(shape).tolist()
            return f"{self.fresh()} = torch.tensor({arr!r}, requires_grad={rg})"
        factory = self.draw(st.sampled_from(("ones", "zeros")))
        dims = ", ".join(map(str, shape)) if shape else "()"
        return f"{self.fresh()} = torch.{factory}({dims}, requires_grad={rg})"

    # -- steering away from the documented divergences (docs/divergences.md, KNOWN below) ----
    def _inference_outside_im(self, name: str) -> bool:
        return bool(self.run.sim_ns[name].is_inference() and not modes.is_inference_mode_enabled())

    def functional(self) -> str:
        a = self.pick()
        kinds = ["unary", "binary", "operator"]
        if not self._inference_outside_im(a):  # KNOWN: version_of_reductions_of_inference_tensors
            kinds.append("reduce")
        kind = self.draw(st.sampled_from(kinds))
        if kind == "unary":
            expr = f"{a}.{self.draw(st.sampled_from(UNARY))}()"
        elif kind == "binary":
            expr = f"{a}.{self.draw(st.sampled_from(BINARY))}({self.operand(self.shape(a), False)})"
        elif kind == "operator":
            sym = self.draw(st.sampled_from(("+", "*", "-")))
            b = self.operand(self.shape(a), False)
            expr = f"{b} {sym} {a}" if self.draw(st.booleans()) else f"{a} {sym} {b}"
        else:
            nd = len(self.shape(a))
            op = self.draw(st.sampled_from(("sum", "mean")))
            if nd and self.draw(st.booleans()):
                expr = f"{a}.{op}({self.draw(st.integers(-nd, nd - 1))})"
            else:
                expr = f"{a}.{op}()"
        return f"{self.fresh()} = {expr}"

    def view(self) -> str:
        a = self.pick()
        shape = self.shape(a)
        nd = len(shape)
        kinds = ["view", "reshape", "unsqueeze", "squeeze", "expand", "contiguous"]
        if nd <= 2:
            kinds.append("t")
        if nd >= 1:
            kinds += ["transpose", "narrow", "select", "getitem", "unbind", "split", "chunk"]
        kind = self.draw(st.sampled_from(kinds))
        if kind in ("view", "reshape"):
            expr = f"{a}.{kind}(-1)"
        elif kind == "unsqueeze":
            expr = f"{a}.unsqueeze({self.draw(st.integers(-nd - 1, nd))})"
        elif kind == "squeeze":
            expr = f"{a}.squeeze()"
        elif kind == "expand":
            expr = f"{a}.expand({', '.join(map(str, (2, *shape)))})"
        elif kind == "contiguous":
            expr = f"{a}.contiguous()"
        elif kind == "t":
            expr = f"{a}.t()"
        elif kind == "transpose":
            expr = f"{a}.transpose(0, -1)"
        elif kind == "narrow":
            expr = f"{a}.narrow(0, 0, 1)"
        elif kind == "select":
            expr = f"{a}.select(0, {self.draw(st.sampled_from((0, -1)))})"
        elif kind == "getitem":
            idx = ["0", "1:", "-1"] + ([":, :1", "..., 0"] if nd >= 2 else [])
            expr = f"{a}[{self.draw(st.sampled_from(idx))}]"
        else:
            n = shape[0]
            expr = {"unbind": f"{a}.unbind(0)", "split": f"{a}.split(1, 0)"}.get(
                kind, f"{a}.chunk(2, 0)"
            )
            if kind == "chunk":
                count = math.ceil(n / math.ceil(n / 2)) if n else 2
            elif kind == "split":
                count = n if n else 1
            else:
                count = n
            names = ", ".join(self.fresh() for _ in range(count))
            return f"({names},) = {expr}"
        return f"{self.fresh()} = {expr}"

    def copy(self) -> str:
        a = self.pick()
        # KNOWN: detach_of_inference_tensor_outside_inference_mode
        how = ("clone",) if self._inference_outside_im(a) else ("clone", "detach")
        return f"{self.fresh()} = {a}.{self.draw(st.sampled_from(how))}()"

    def inplace(self) -> str:
        a = self.pick()
        shape = self.shape(a)
        nd = len(shape)
        t = self.run.sim_ns[a]
        if self._inference_outside_im(a):
            # KNOWN: invalid_inplace_on_inference_tensor_outside_inference_mode and
            # inplace_on_expanded_inference_tensor_outside_inference_mode (which error wins)
            kinds = ["unary", "fill"] if 0 not in t.stride() else []
            kinds.append("detach_")
        else:
            kinds = ["binary", "unary", "fill", "copy", "augmented"]
            kinds += ["unsqueeze_", "squeeze_"] + (["transpose_"] if nd >= 1 else [])
            if nd <= 2:
                kinds.append("t_")
            if nd >= 1:
                kinds.append("setitem")
            kinds.append("detach_")
        kind = self.draw(st.sampled_from(kinds))
        if kind == "binary":
            op = self.draw(st.sampled_from(INPLACE_BINARY))
            return f"{a}.{op}({self.operand(shape, True)})"
        if kind == "unary":
            return f"{a}.{self.draw(st.sampled_from(INPLACE_UNARY))}()"
        if kind == "fill":
            return f"{a}.fill_({self.scalar()!r})"
        if kind == "copy":
            src = self.operand(shape, True)
            if not _NAME.match(src):
                src = a
            return f"{a}.copy_({src})"
        if kind == "augmented":
            return (
                f"{a} {self.draw(st.sampled_from(('+=', '*=', '-=')))} {self.operand(shape, True)}"
            )
        if kind == "setitem":
            return f"{a}[0] = {self.operand(shape[1:], True)}"
        if kind == "unsqueeze_":
            return f"{a}.unsqueeze_(0)"
        if kind == "transpose_":
            return f"{a}.transpose_(0, -1)"
        return f"{a}.{kind}()"

    def requires_grad(self) -> str:
        flag = self.draw(st.booleans())
        a = self.pick(lambda n: self._rg(n) != flag)
        return f"{a}.requires_grad_()" if flag else f"{a}.requires_grad_(False)"

    def backward(self) -> str:
        a = self.pick(self._rg)
        return f"{a}.sum().backward()"

    def step(self) -> None:
        run = self.run
        kind = self.draw(st.sampled_from(STEP_KINDS))
        if kind == "enter" and run.depth < MAX_DEPTH:
            run.enter(GUARDS[self.draw(st.sampled_from(GUARD_CHOICES))])
            return
        if kind == "exit" and run.depth:
            run.exit()
            return
        if not self.tensors() or kind in ("create", "enter", "exit"):
            run.stmt(self.create())
            return
        line = {
            "functional": self.functional,
            "view": self.view,
            "inplace": self.inplace,
            "copy": self.copy,
            "requires_grad_": self.requires_grad,
            "backward": self.backward,
        }[kind]()
        run.stmt(line)


def run_random_program(data: st.DataObject) -> None:
    run = Lockstep()
    gen = ProgramGenerator(data, run)
    try:
        for _ in range(data.draw(st.integers(1, MAX_STEPS))):
            gen.step()
        while run.depth:
            run.exit()
    except AssertionError as e:
        if not _final_hypothesis_run():
            raise
        run.close()
        shorter = minimize(run.events)
        if len(shorter) >= len(run.events):
            raise
        raise AssertionError(f"{replay(shorter)[1]}\n\n(minimized from:)\n{e}") from None
    finally:
        run.close()


def _final_hypothesis_run() -> bool:
    """Whether hypothesis is replaying the (shrunk) example it will report; minimizing
    only then keeps shrinking fast."""
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:
        return False


def replay(events: list[tuple[Any, ...]]) -> tuple[int | None, str]:
    """Run recorded events on a fresh lockstep: the index of the failing event (None if the
    program passes) and the failure text."""
    run = Lockstep()
    try:
        for i, ev in enumerate(events):
            try:
                if ev[0] == "enter":
                    run.enter(ev[1])
                elif ev[0] == "exit":
                    run.exit()
                else:
                    run.stmt(ev[1])
            except AssertionError as e:
                return i, str(e)
        return None, ""
    finally:
        run.close()


def minimize(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Delete statements (and then empty guard blocks) one at a time while the program
    still fails at its last step, the same way ("at" / "after" the step, same error pair).
    Hypothesis's shrinking keeps lines that only feed its draws; this removes them."""

    def signature(text: str) -> str:
        problem = text.rsplit("\n\nMISMATCH", 1)[-1]
        return problem.split("\n  t", 1)[0] if "after the marked" in problem else problem

    idx, text = replay(events)
    if idx != len(events) - 1:
        return events
    target = signature(text)

    def still_fails(cand: list[tuple[Any, ...]]) -> bool:
        i, t = replay(cand)
        return i == len(cand) - 1 and signature(t) == target

    changed = True
    while changed:
        changed = False
        for k in range(len(events) - 2, -1, -1):
            ev = events[k]
            if ev[0] == "stmt":
                cand = events[:k] + events[k + 1 :]
            elif ev[0] == "enter" and k + 1 < len(events) - 1 and events[k + 1][0] == "exit":
                cand = events[:k] + events[k + 2 :]
            else:
                continue
            if still_fails(cand):
                events = cand
                changed = True
                break
    renamed = _renumber(events)
    return renamed if still_fails(renamed) else events


def _renumber(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``t0, t1, ...`` in order of first appearance (minimizing leaves gaps)."""
    names: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        return names.setdefault(m.group(0), f"t{len(names)}")

    return [
        (ev[0], re.sub(r"\bt\d+\b", sub, ev[1]), *ev[2:]) if ev[0] == "stmt" else ev
        for ev in events
    ]


@settings(
    max_examples=FUZZ_PROGRAMS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_programs_match_torch(data: st.DataObject) -> None:
    run_random_program(data)


# ---------------------------------------------------------------------------------------------
# handwritten programs: the inference-mode cases of reference (c), (e) and (f)
# ---------------------------------------------------------------------------------------------
N1 = "t0 = torch.ones(2, 3, requires_grad=True)"
I0 = "with torch.inference_mode(True):\n    t1 = torch.ones(2, 3)"
I1 = "with torch.inference_mode(True):\n    t2 = torch.ones(2, 3, requires_grad=True)"

PROGRAMS: dict[str, str] = {
    "inference_tensor_in_every_mode": f"""
{I0}
{I1}
t3 = t1 * 2.0
t4 = t2 * 2.0
t5 = t1.view(-1)
t6 = t2.view(-1)
with torch.no_grad():
    t7 = t2 * 2.0
    t8 = t2.view(-1)
with torch.inference_mode(True):
    t9 = t1 * 2.0
    t10 = t2.view(-1)
    t1.add_(1.0)
    t2.add_(1.0)
    t10.mul_(2.0)
""",
    "inplace_on_inference_tensor_outside_inference_mode": f"""
{I0}
{I1}
t3 = torch.ones(2, 3)
t1.zero_()
t1.fill_(3.0)
t1.copy_(t3)
t1.add_(t3)
t1[0] = 5.0
t1 += 1.0
t1.t_()
t1.unsqueeze_(0)
t2.add_(1.0)
t2.zero_()
t2.add_(t1)
t1.view(-1).add_(1.0)
with torch.no_grad():
    t1.mul_(2.0)
    t2.mul_(2.0)
with torch.inference_mode(True):
    with torch.inference_mode(False):
        t1.zero_()
""",
    "normal_tensor_in_inference_mode": f"""
{N1}
t1 = t0.clone()
with torch.inference_mode(True):
    t2 = t0 * 2.0
    t3 = t0.view(-1)
    t4 = t1.view(-1)
    t0.add_(1.0)
    t1.add_(1.0)
    t4.mul_(2.0)
    t5 = t3[1:]
t6 = t3 * 2.0
t7 = t4.sum()
t3.add_(1.0)
t5.add_(1.0)
t1.sum().backward()
""",
    "mix_inference_and_normal_tensors": f"""
{N1}
{I1}
t3 = t2.add(t0)
t3.sum().backward()
t4 = t2.mul(t0)
t5 = t0.mul(t2)
t6 = torch.ones(2, 3)
t6.mul_(t2)
t0.clone().mul_(t2)
t7 = t2.view_as(t0)
t8 = t0.view_as(t2)
t6.copy_(t2)
""",
    "existing_autograd_session": f"""
{N1}
t1 = t0.clone()
t2 = t1 * t1
with torch.inference_mode(True):
    t1.mul_(2.0)
t2.sum().backward()
""",
    "requires_grad_on_inference_tensors": f"""
{I0}
t1.requires_grad_()
t1.requires_grad_(False)
with torch.inference_mode(True):
    t1.requires_grad_()
t1.requires_grad_(False)
t3 = t1 + 1.0
t3.requires_grad_()
""",
    "below_adinplaceorview": f"""
{N1}
t1 = torch.ones(2, 3)
with torch._C._AutoDispatchBelowADInplaceOrView():
    t2 = t0.view(-1)
    t3 = t0 * 2.0
    t1.add_(1.0)
    t0.add_(1.0)
    t4 = t1[0]
    with torch.inference_mode(False):
        t1.add_(1.0)
        t5 = t0 * 2.0
t1.add_(1.0)
t4.add_(1.0)
""",
    "grad_mode_guards_inside_and_around_inference_mode": f"""
{N1}
with torch.no_grad():
    with torch.inference_mode(False):
        t1 = t0 * 2.0
with torch.inference_mode(True):
    with torch.enable_grad():
        t2 = t0 * 2.0
        t3 = t0.view(-1)
        with torch.inference_mode(False):
            t4 = t0 * 2.0
            t5 = t4.view(-1)
        with torch.no_grad():
            t6 = t0 * 2.0
t4.sum().backward()
t5.add_(1.0)
""",
    "inference_views_modified_outside": f"""
{N1}
t1 = t0.clone()
with torch.inference_mode(True):
    t2 = t1.view(-1)
    t3 = t1[0]
t2.add_(1.0)
t1.add_(1.0)
t4 = t3 * 2.0
with torch.no_grad():
    t5 = t3[0:1]
""",
    "backward_through_and_into_inference_mode": f"""
{N1}
{I0}
t3 = t0 + t1
t3.sum().backward()
with torch.inference_mode(True):
    t4 = t0 * 2.0
    t4.sum().backward()
t5 = (t1 + 1.0)
t5.sum().backward()
""",
    # found by this fuzzer, fixed in f857429: `2.0 - t` is aten::rsub.Scalar
    "reflected_sub_grad_fn": """
t0 = torch.ones(2, 3, requires_grad=True)
t1 = 2.0 - t0
""",
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_matches_torch(name: str) -> None:
    Lockstep().run(PROGRAMS[name])


# ---------------------------------------------------------------------------------------------
# divergences the fuzzer found (minimal programs; each fails until dispatchsim is fixed or the
# difference is documented as deliberate in docs/divergences.md and removed from here)
# ---------------------------------------------------------------------------------------------
DIVERGENCES: dict[str, str] = {
    # torch's TensorIterator refuses partially overlapping input/output (kernels/cpu.py)
    "partial_overlap_of_input_and_output": """
t0 = torch.ones(2, 3)
t1 = t0.narrow(0, 0, 1)
t0.add_(t1)
""",
    # fill_/zero_ allow an internally overlapping target, and a non-overlapping view of an
    # expanded tensor is writable (kernels/cpu.py `_writable` looks at numpy's read-only flag)
    "fill_of_expanded_tensor": """
t0 = torch.ones(1, 3)
t1 = t0.expand(2, 3)
t1.zero_()
""",
    "inplace_on_non_overlapping_view_of_expanded_tensor": """
t0 = torch.ones(1, 3)
t1 = t0.expand(2, 3)
t2 = t1[0]
t2.add_(1.0)
""",
    # view-metadata in-place ops on a view: torch gives the view e.g. UnsqueezeBackward1 and
    # leaves the base alone (set_history, not rebase_history: no CopySlices)
    "inplace_view_op_on_view_of_non_leaf": """
t0 = torch.ones(2, 3, requires_grad=True)
t1 = t0.clone()
t2 = t1.view(-1)
t2.unsqueeze_(0)
""",
    # detach_ is an Autograd-key kernel in torch (VariableTypeManual.cpp); with the autograd
    # keys excluded nothing of it runs: no view check, requires_grad kept
    "detach__in_inference_mode": """
t0 = torch.ones(3, requires_grad=True)
t1 = t0.clone()
t2 = t1.view(-1)
with torch.inference_mode(True):
    t2.detach_()
    t0.detach_()
""",
    # AccumulateGrad skips a leaf that no longer requires grad (engine / graph.py)
    "accumulate_grad_skips_leaf_that_stopped_requiring_grad": """
t0 = torch.ones(2, 3, requires_grad=True)
t1 = t0 * 2.0
t0.requires_grad_(False)
t1.sum().backward()
""",
    # AccumulateGrad accumulates in place (`grad += new`): a leaf resized in no_grad fails
    "accumulate_grad_after_leaf_metadata_change": """
t0 = torch.ones(2, 3, requires_grad=True)
t0.sum().backward()
with torch.no_grad():
    t0.unsqueeze_(0)
t0.sum().backward()
""",
    # THPVariable_requires_grad_ reads the raw grad_fn_ (no regeneration, no view error)
    "requires_grad__on_view_whose_base_changed_in_no_grad": """
t0 = torch.ones(2, 3, requires_grad=True)
with torch.no_grad():
    t1 = t0.view(-1)
    t0.add_(1.0)
t1.requires_grad_(False)
""",
    # torch: detach() of an inference tensor outside inference mode is an inference tensor
    # WITH a version counter, and in-place ops on it are allowed (they write the inference
    # tensor's memory)
    "detach_of_inference_tensor_outside_inference_mode": """
with torch.inference_mode(True):
    t0 = torch.ones(2, 3)
t1 = t0.detach()
t1.add_(1.0)
""",
    # error precedence: torch's kernel validates (shapes, overlap) before the version bump
    # raises, so an invalid in-place op on an inference tensor outside inference mode reports
    # the kernel's error; dispatchsim's early inference check (docs/divergences.md) pre-empts it
    "invalid_inplace_on_inference_tensor_outside_inference_mode": """
with torch.inference_mode(True):
    t0 = torch.ones(2, 3)
t1 = torch.ones(3, 3)
t0.add_(t1)
""",
    "inplace_on_expanded_inference_tensor_outside_inference_mode": """
with torch.inference_mode(True):
    t0 = torch.ones(1, 3)
t1 = t0.expand(2, 3)
t1.add_(1.0)
""",
    # kernels that torch implements through an out=/in-place call on the fresh output bump
    # it when no Autograd kernel set AutoDispatchBelowADInplaceOrView (inference inputs,
    # outside inference mode): sum, mean (version 2), mv, matmul, dot, ...
    "version_of_reductions_of_inference_tensors": """
with torch.inference_mode(True):
    t0 = torch.ones(2, 3)
t1 = t0.sum()
t2 = t0.mean()
t3 = t0.sum(0)
""",
    # CopySlices releases its wrapped node after a backward without retain_graph
    "copy_slices_backward_twice": """
t0 = torch.ones(2, 3)
t1 = torch.ones(3, requires_grad=True)
t0[0] = t1
t0.sum().backward()
t0.sum().backward()
""",
    # an indexing that slices nothing returns `self.alias()` (AliasBackward0)
    "no_op_slice_is_an_alias": """
t0 = torch.ones(2, 1, requires_grad=True)
t1 = t0[:, :1]
""",
    # reshape of a non-contiguous tensor that can be viewed is aten::_reshape_alias
    # (ReshapeAliasBackward0); only a contiguous input gives view (kernels/composite.py)
    "reshape_of_non_contiguous_viewable_tensor": """
t0 = torch.ones(2, 3, requires_grad=True)
t1 = t0.t().reshape(3, 2)
""",
    # clone() keeps the strides of a non-overlapping dense input (preserve_format)
    "clone_preserves_strides": """
t0 = torch.ones(2, 3)
t1 = t0.t().clone()
t2 = t1.view(-1)
""",
}


# (found by tests/test_autograd_oracle.py's random programs): the sign of a zero from a
# matrix product follows numpy's BLAS; torch's gemm keeps -0.0 for a single-term (k = 1)
# product of these sizes, so 1 / it is -inf in torch and inf here
DIVERGENCES["signed_zero_of_single_term_matrix_product"] = """
t0 = torch.zeros(4, 1)
t1 = torch.ones(1, 5).neg()
t2 = t0.mm(t1)
t3 = 1.0 / t2
"""

# Still different from torch, listed in docs/divergences.md ("Known differences found by the
# fuzzers"); the random programs steer around them (see the KNOWN comments in the generator).
# Each must still differ: a fix turns its strict xfail into a failure, which asks for it to
# be removed from here, from the generator's steering and from the docs.
KNOWN = frozenset(
    {
        "detach_of_inference_tensor_outside_inference_mode",
        "invalid_inplace_on_inference_tensor_outside_inference_mode",
        "inplace_on_expanded_inference_tensor_outside_inference_mode",
        "version_of_reductions_of_inference_tensors",
        "signed_zero_of_single_term_matrix_product",
    }
)


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_divergence_program_matches_torch(name: str, request: pytest.FixtureRequest) -> None:
    """Every program the fuzzer once found divergent: fixed ones must now match torch."""
    if name in KNOWN:
        request.applymarker(
            pytest.mark.xfail(strict=True, raises=AssertionError, reason="documented divergence")
        )
    Lockstep().run(DIVERGENCES[name])


def test_known_divergences_are_listed_programs() -> None:
    assert set(DIVERGENCES) >= KNOWN


# ---------------------------------------------------------------------------------------------
# the harness itself
# ---------------------------------------------------------------------------------------------
def test_lockstep_detects_a_difference() -> None:
    run = Lockstep()
    run.stmt("t0 = torch.ones(2, 3, requires_grad=True)")
    run.sim_ns["t0"].requires_grad_(False)  # sabotage the dispatchsim side only
    with pytest.raises(AssertionError, match=r"(?s)t0 = torch\.ones.*t0 requires_grad"):
        run.stmt("t1 = t0 * 2.0")


def test_lockstep_detects_a_tls_difference_and_cleans_up() -> None:
    run = Lockstep()
    try:
        run.enter("torch.no_grad()")
        modes.enable_grad().__enter__()  # sabotage: dispatchsim's grad mode back on
        with pytest.raises(AssertionError, match="grad_mode"):
            run.stmt("t0 = torch.ones(3)")
    finally:
        run.close()
        dispatch.tls.state.grad_mode = True  # the sabotage guard is never exited
    assert torch.is_grad_enabled() and modes.is_grad_enabled()


def test_resync_is_needed_and_still_checks_dispatchsim() -> None:
    program = I0 + "\nt1.zero_()\nt1.t_()\nt1.unsqueeze_(0)"
    # torch really mutates before raising: without the re-sync the comparison fails
    run = Lockstep()
    run._restore = lambda snapshot: None  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match="t1 value"):
        run.run(program)
    # with it the program passes, and every such line is marked in the listing
    run = Lockstep()
    run.run(program)
    assert [e[3] for e in run.events if e[0] == "stmt"] == [False, True, True, True]
    assert render(run.events).count("the fuzzer restored torch's inference tensors") == 3
    # the re-sync copies nothing from dispatchsim: a dispatchsim that mutated is caught
    run.sim_ns["t1"]._data[...] = 0.0
    with pytest.raises(AssertionError, match="t1 value"):
        run.check(None, None)


def test_render_and_parse_round_trip() -> None:
    run = Lockstep()
    run.run(PROGRAMS["grad_mode_guards_inside_and_around_inference_mode"])
    listing = render(run.events)
    compile(listing, "<listing>", "exec")  # plain runnable Python
    again = Lockstep()
    again.run(listing)
    assert [e[:2] for e in again.events] == [e[:2] for e in run.events]


def test_minimize_keeps_only_what_the_failure_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = dispatch.Tensor.neg
    monkeypatch.setattr(dispatch.Tensor, "neg", lambda self: orig(self) * 2.0)  # a planted bug
    events = [
        ("stmt", "t0 = torch.ones(2, 3, requires_grad=True)", None, False),
        ("stmt", "t1 = torch.ones(3)", None, False),
        ("enter", "torch.inference_mode(True)"),
        ("stmt", "t2 = t1 * 2.0", None, False),
        ("exit",),
        ("enter", "torch.no_grad()"),
        ("stmt", "t3 = t1 + 1.0", None, False),
        ("stmt", "t4 = t3.neg()", None, False),
    ]
    shorter = minimize(events)
    assert [e[:2] for e in shorter] == [
        ("stmt", "t0 = torch.ones(3)"),
        ("enter", "torch.no_grad()"),
        ("stmt", "t1 = t0 + 1.0"),
        ("stmt", "t2 = t1.neg()"),
    ]
    assert "t2 value" in replay(shorter)[1]
