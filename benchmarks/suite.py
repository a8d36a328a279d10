"""The full benchmark suite (``python -m benchmarks``): dispatchsim against numpy and
torch (when importable), in one process.

Timed groups (every cell is (group, op, shape, mode, library); the timing loop is
:mod:`benchmarks._timing`'s: calibrated batches, interleaved rounds, medians):

* ``ops``: ``a + b`` (functional), ``a.view(-1)`` (view), ``a[1:]`` (slicing) and
  ``a.add_(1)`` (in-place) on float32 (4,) and (64, 64) tensors, in five modes:
  ``normal`` (grad mode on, no tensor requires grad), ``grad`` (the inputs require
  grad: the op records a graph), ``no_grad``, ``IM-normal`` (tensors made outside
  InferenceMode, the op run inside) and ``IM-inference`` (tensors made inside, the op
  run inside). numpy has no modes: it is measured once per op and shape (mode ``-``;
  ``a.view(-1)`` is ``a.reshape(-1)``, ``a.add_(1)`` is ``a += 1``) and that figure
  is every mode's dsim/numpy denominator. ``a.add_(1)`` is not reset between calls
  (``a`` grows by one per call). Under ``grad`` the in-place op needs a non-leaf: each
  batch's untimed setup makes ``a = leaf * 1``, and the autograd chain grows within
  the batch (torch alike).
* ``guards``: ``with G(): pass`` for ``no_grad``, ``enable_grad``, ``inference_mode``
  and ``AutoDispatchBelowADInplaceOrView`` (torch: ``torch._C._AutoDispatchBelowADInplaceOrView``).
* ``loop``: 100 tiny ops on a (4,) tensor (25 x ``x + 1``, ``x * 0.5``,
  ``x.view(-1)``, ``x - 1``), per loop, in ``normal``, ``no_grad``, ``IM-inference``.
* ``mlp``: a 3-layer MLP (batch (16, 32), hidden 64, 10 outputs, ``x @ w + b`` and
  ``relu``) whose weights and biases require grad; ``forward`` in ``normal`` (a graph
  is recorded), ``no_grad`` and ``IM-normal``; ``forward+backward`` (grads set to
  None, forward, ``.sum().backward()``). numpy: the forward, and for
  forward+backward the forward plus a hand-written backward (labelled so).

torch runs with ``torch.set_num_threads(1)`` (``--torch-threads``): dispatchsim and numpy
run these small ops on one thread, and torch's intra-op pool on a busy shared machine
spends milliseconds waiting for a second core (an MLP forward went from ~20 us to ~2 ms).

Mode entry is never timed: the batch's setup enters the guard, its teardown leaves it;
the timed statement is only the op. Tensors are made before timing.

Untimed-loop groups:

* ``state_machine``: one hypothesis run of :class:`dispatch.testing.DispatchStateMachine`
  with fixed settings (derandomize, no database, no deadline, generate phase only,
  ``max_examples``, ``stateful_step_count``); examples and steps per second of wall
  time. dispatchsim only.
* ``memory``: bytes per (4,) float32 tensor object, N of them kept alive: the
  tracemalloc delta (the Python heap, numpy's data buffers included; torch's C++
  allocations are invisible to it) and the RSS delta from ``/proc/self/statm``.
* ``tracing``: :func:`benchmarks.bench_trace.run` with short settings — the cost of
  the dispatcher's tracer check when no trace is active.

Output: a table per group (medians in microseconds, dsim/numpy and dsim/torch ratios,
InferenceMode/no_grad ratios), then TARGETS — each target of issue #7 with its
measured value and met / not met / not measured — and a JSON file (default
``benchmarks/results/latest.json``) with the environment, the settings, every cell's
samples summary and the targets. Its ``results`` key keeps the per-op rows (normal
mode) of the earlier ``benchmarks.bench_ops`` format.

``python -m benchmarks [--quick] [--groups ops,guards,...] [--no-torch] [--repeats N]
[--target-ms MS] [--json PATH]``
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks._timing import Timer, calibrate, environment, interleave, summary

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
DEFAULT_JSON: Final = RESULTS_DIR / "latest.json"

LIBRARIES: Final = ("dispatchsim", "numpy", "torch")
GROUPS: Final = ("ops", "guards", "loop", "mlp", "state_machine", "memory", "tracing")
TIMED_GROUPS: Final = ("ops", "guards", "loop", "mlp")
SHAPES: Final[tuple[tuple[int, ...], ...]] = ((4,), (64, 64))
MODES: Final = ("normal", "grad", "no_grad", "IM-normal", "IM-inference")
NUMPY_MODE: Final = "-"

# op -> library -> statement; `a` and `b` are locals bound by the batch's setup.
OPS: Final[dict[str, dict[str, str]]] = {
    "a + b": {"dispatchsim": "a + b", "numpy": "a + b", "torch": "a + b"},
    "a.view(-1)": {"dispatchsim": "a.view(-1)", "numpy": "a.reshape(-1)", "torch": "a.view(-1)"},
    "a[1:]": {"dispatchsim": "a[1:]", "numpy": "a[1:]", "torch": "a[1:]"},
    "a.add_(1)": {"dispatchsim": "a.add_(1)", "numpy": "a += 1", "torch": "a.add_(1)"},
}
OP_KIND: Final = {
    "a + b": "functional",
    "a.view(-1)": "view",
    "a[1:]": "slicing",
    "a.add_(1)": "in-place",
}
GUARDS: Final = ("no_grad", "enable_grad", "inference_mode", "AutoDispatchBelowADInplaceOrView")
LOOP_MODES: Final = ("normal", "no_grad", "IM-inference")
LOOP_STMT: Final = {
    lib: (
        "x = a\n"
        "for _ in range(25):\n"
        "    x = x + 1\n"
        "    x = x * 0.5\n"
        f"    x = x.{view}\n"
        "    x = x - 1\n"
    )
    for lib, view in (("dispatchsim", "view(-1)"), ("numpy", "reshape(-1)"), ("torch", "view(-1)"))
}
MLP_MODES: Final = ("normal", "no_grad", "IM-normal")
_FWD = "y = ((x @ w1 + b1).relu() @ w2 + b2).relu() @ w3 + b3"
_NP_FWD = (
    "h1 = x @ w1 + b1\nr1 = np.maximum(h1, 0)\nh2 = r1 @ w2 + b2\nr2 = np.maximum(h2, 0)\n"
    "y = r2 @ w3 + b3"
)
_NP_BWD = (
    "gy = np.ones_like(y)\n"
    "gw3 = r2.T @ gy\ngb3 = gy.sum(0)\ngr2 = gy @ w3.T\n"
    "gh2 = gr2 * (h2 > 0)\ngw2 = r1.T @ gh2\ngb2 = gh2.sum(0)\ngr1 = gh2 @ w2.T\n"
    "gh1 = gr1 * (h1 > 0)\ngw1 = x.T @ gh1\ngb1 = gh1.sum(0)"
)
MLP_STMT: Final = {
    "forward": {"dispatchsim": _FWD, "torch": _FWD, "numpy": _NP_FWD},
    "forward+backward": {
        "dispatchsim": f"for p in P:\n    p.grad = None\n{_FWD}\ny.sum().backward()",
        "torch": f"for p in P:\n    p.grad = None\n{_FWD}\ny.sum().backward()",
        "numpy": f"{_NP_FWD}\n{_NP_BWD}",
    },
}
MLP_LABEL: Final = {"numpy": "numpy: forward + hand-written backward"}

FULL: Final = {
    "repeats": 21,
    "target_ms": 15.0,
    "sm_examples": 100,
    "sm_steps": 20,
    "memory_n": 20000,
    "trace_rounds": 41,  # the paired ratio is a difference of ~1%: many rounds
    "trace_target_ms": 5.0,
}
QUICK: Final = {
    "repeats": 3,
    "target_ms": 0.5,
    "sm_examples": 3,
    "sm_steps": 5,
    "memory_n": 2000,
    "trace_rounds": 2,
    "trace_target_ms": 0.2,
}

Cell = tuple[str, str, str, str, str]  # group, op, shape, mode, library


def shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# -- the libraries --------------------------------------------------------------------
class Lib:
    """What a cell needs from one library: tensors from numpy arrays, and the guards."""

    def __init__(self, name: str) -> None:
        import numpy as np

        self.name = name
        self.np = np
        self.rng = np.random.default_rng(0)
        self.guards: dict[str, Any] = {}
        if name == "dispatchsim":
            import dispatch
            import modes

            self.tensor: Callable[[Any], Any] = dispatch.tensor
            self.guards = {
                "no_grad": modes.no_grad,
                "enable_grad": modes.enable_grad,
                "inference_mode": modes.inference_mode,
                "AutoDispatchBelowADInplaceOrView": modes.AutoDispatchBelowADInplaceOrView,
            }
        elif name == "torch":
            import torch

            self.tensor = lambda arr: torch.from_numpy(arr).clone()
            self.guards = {
                "no_grad": torch.no_grad,
                "enable_grad": torch.enable_grad,
                "inference_mode": torch.inference_mode,
                "AutoDispatchBelowADInplaceOrView": torch._C._AutoDispatchBelowADInplaceOrView,
            }
        else:
            self.tensor = lambda arr: arr

    def make(self, shape: tuple[int, ...], mode: str, requires_grad: bool = False) -> Any:
        """A random float32 tensor as ``mode`` wants it (made inside InferenceMode for
        ``IM-inference``)."""
        arr = self.rng.random(shape, dtype=self.np.float32)
        if self.name == "numpy":
            return arr
        if mode == "IM-inference":
            with self.guards["inference_mode"]():
                t = self.tensor(arr)
        else:
            t = self.tensor(arr)
        return t.requires_grad_() if requires_grad else t

    def mode_guard(self, mode: str) -> Any:
        """The guard class a mode runs under (None: no guard)."""
        if self.name == "numpy" or mode in ("normal", "grad"):
            return None
        return self.guards["no_grad" if mode == "no_grad" else "inference_mode"]


def _mode_setup(guard: Any) -> tuple[str, str, dict[str, Any]]:
    if guard is None:
        return "", "pass", {}
    return "_g = _G()\n_g.__enter__()\n", "_g.__exit__(None, None, None)", {"_G": guard}


def _load_libs(
    use_torch: bool, torch_threads: int | None = 1
) -> tuple[dict[str, Lib], dict[str, str | None]]:
    import numpy as np

    libs = {"dispatchsim": Lib("dispatchsim"), "numpy": Lib("numpy")}
    versions: dict[str, str | None] = {"numpy": np.__version__, "torch": None}
    if use_torch:
        try:
            import torch
        except ImportError:
            pass
        else:
            versions["torch"] = str(torch.__version__)
            if torch_threads is not None:
                # dispatchsim and numpy run these small ops on one thread; torch's
                # intra-op pool on a busy shared machine waits for a second core
                torch.set_num_threads(torch_threads)
            libs["torch"] = Lib("torch")
    return libs, versions


# -- cells ----------------------------------------------------------------------------
def _ops_cells(libs: dict[str, Lib]) -> tuple[dict[Cell, Timer], list[list[Cell]]]:
    timers: dict[Cell, Timer] = {}
    groups: list[list[Cell]] = []
    for op in OPS:
        for shape in SHAPES:
            group: list[Cell] = []
            for name, lib in libs.items():
                stmt = OPS[op][name]
                for mode in MODES if name != "numpy" else (NUMPY_MODE,):
                    grad = mode == "grad"
                    pre, teardown, ns = _mode_setup(lib.mode_guard(mode))
                    ns["_a"] = lib.make(shape, mode, requires_grad=grad)
                    ns["_b"] = lib.make(shape, mode, requires_grad=grad)
                    # the in-place op under grad mode needs a fresh non-leaf per batch
                    bind = "a = _a * 1" if grad and op == "a.add_(1)" else "a = _a"
                    cell = ("ops", op, shape_str(shape), mode, name)
                    timers[cell] = Timer(stmt, pre + f"{bind}\nb = _b", teardown, ns)
                    group.append(cell)
            groups.append(group)
    return timers, groups


def _guard_cells(libs: dict[str, Lib]) -> tuple[dict[Cell, Timer], list[list[Cell]]]:
    timers: dict[Cell, Timer] = {}
    groups: list[list[Cell]] = []
    for guard in GUARDS:
        group: list[Cell] = []
        for name, lib in libs.items():
            if name == "numpy":
                continue
            cell = ("guards", guard, "-", "-", name)
            timers[cell] = Timer("with G():\n    pass", "G = _G", "pass", {"_G": lib.guards[guard]})
            group.append(cell)
        groups.append(group)
    return timers, groups


def _loop_cells(libs: dict[str, Lib]) -> tuple[dict[Cell, Timer], list[list[Cell]]]:
    timers: dict[Cell, Timer] = {}
    group: list[Cell] = []
    for name, lib in libs.items():
        for mode in LOOP_MODES if name != "numpy" else (NUMPY_MODE,):
            pre, teardown, ns = _mode_setup(lib.mode_guard(mode))
            ns["_a"] = lib.make((4,), mode)
            cell = ("loop", "100 tiny ops", "(4,)", mode, name)
            timers[cell] = Timer(LOOP_STMT[name], pre + "a = _a", teardown, ns)
            group.append(cell)
    return timers, [group]


def _mlp_params(lib: Lib, mode: str) -> dict[str, Any]:
    grad = lib.name != "numpy"
    sizes = {"w1": (32, 64), "b1": (64,), "w2": (64, 64), "b2": (64,), "w3": (64, 10)}
    sizes["b3"] = (10,)
    params = {k: lib.make(s, mode, requires_grad=grad) for k, s in sizes.items()}
    params["x"] = lib.make((16, 32), mode)
    return params


def _mlp_cells(libs: dict[str, Lib]) -> tuple[dict[Cell, Timer], list[list[Cell]]]:
    timers: dict[Cell, Timer] = {}
    groups: list[list[Cell]] = []
    names = ("x", "w1", "b1", "w2", "b2", "w3", "b3")
    bind = "".join(f"{k} = _{k}\n" for k in names) + "P = (w1, b1, w2, b2, w3, b3)\n"
    for op in MLP_STMT:
        group: list[Cell] = []
        for name, lib in libs.items():
            modes = MLP_MODES if op == "forward" else ("normal",)
            for mode in modes if name != "numpy" else (NUMPY_MODE,):
                pre, teardown, ns = _mode_setup(lib.mode_guard(mode))
                ns.update({f"_{k}": v for k, v in _mlp_params(lib, mode).items()})
                ns["np"] = lib.np
                cell = ("mlp", op, "(16, 32)", mode, name)
                timers[cell] = Timer(MLP_STMT[op][name], pre + bind, teardown, ns)
                group.append(cell)
        groups.append(group)
    return timers, groups


_CELL_MAKERS: Final = {
    "ops": _ops_cells,
    "guards": _guard_cells,
    "loop": _loop_cells,
    "mlp": _mlp_cells,
}


def _statement(group: str, op: str, library: str) -> str:
    if group == "ops":
        return OPS[op][library]
    if group == "guards":
        return f"with {op}(): pass"
    if group == "loop":
        return LOOP_STMT[library]
    return MLP_STMT[op][library]


def measure_timed(
    groups: list[str],
    libs: dict[str, Lib],
    repeats: int,
    target_ms: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Every timed cell of ``groups``, with ratios attached (see :func:`add_ratios`)."""
    timers: dict[Cell, Timer] = {}
    order: list[list[Cell]] = []
    for g in groups:
        if g in _CELL_MAKERS:
            t, o = _CELL_MAKERS[g](libs)
            timers.update(t)
            order += o
    if not timers:
        return []
    numbers = {c: calibrate(t, target_ms * 1e6) for c, t in timers.items()}
    log(f"calibrated {len(timers)} cells; measuring {repeats} interleaved rounds")
    samples = interleave(timers, order, numbers, repeats)
    cells = []
    for cell in timers:
        group, op, shape, mode, library = cell
        cells.append(
            {
                "group": group,
                "op": op,
                "shape": shape,
                "mode": mode,
                "library": library,
                "label": MLP_LABEL.get(library) if group == "mlp" else None,
                "statement": _statement(group, op, library),
                "us": summary(samples[cell], numbers[cell]),
            }
        )
    add_ratios(cells)
    return cells


def _index(cells: list[dict[str, Any]]) -> dict[Cell, dict[str, Any]]:
    return {(c["group"], c["op"], c["shape"], c["mode"], c["library"]): c for c in cells}


def add_ratios(cells: list[dict[str, Any]]) -> None:
    """On every dispatchsim cell: ``ratio_torch`` / ``ratio_numpy`` = its median over
    that library's median for the same (group, op, shape, mode) — numpy's mode-less
    figure when numpy has no cell of that mode — or None where there is none. On every
    dispatchsim and torch cell of ``ops`` under InferenceMode: ``ratio_over_no_grad``."""
    idx = _index(cells)
    for c in cells:
        g, op, shape, mode, lib = c["group"], c["op"], c["shape"], c["mode"], c["library"]
        if lib == "dispatchsim":
            ds = c["us"]["median"]
            t = idx.get((g, op, shape, mode, "torch"))
            n = idx.get((g, op, shape, mode, "numpy")) or idx.get(
                (g, op, shape, NUMPY_MODE, "numpy")
            )
            c["ratio_torch"] = ds / t["us"]["median"] if t else None
            c["ratio_numpy"] = ds / n["us"]["median"] if n else None
        if g == "ops" and mode.startswith("IM-") and lib != "numpy":
            ng = idx.get((g, op, shape, "no_grad", lib))
            c["ratio_over_no_grad"] = c["us"]["median"] / ng["us"]["median"] if ng else None


# -- state machine, memory, tracing ---------------------------------------------------
def measure_state_machine(examples: int, steps: int) -> dict[str, Any]:
    """One derandomized hypothesis run of DispatchStateMachine; examples/s and steps/s.
    Steps are counted with an extra invariant (hypothesis checks invariants once before
    the first step and after every step), examples with the machine's teardown."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import invariant, run_state_machine_as_test

    from dispatch.testing import DispatchStateMachine

    counts = {"examples": 0, "checks": 0}

    class Counted(DispatchStateMachine):
        @invariant()
        def _bench_count_checks(self) -> None:
            counts["checks"] += 1

        def teardown(self) -> None:
            counts["examples"] += 1
            super().teardown()

    s = settings(
        max_examples=examples,
        stateful_step_count=steps,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    t0 = time.perf_counter()
    run_state_machine_as_test(Counted, settings=s)
    seconds = time.perf_counter() - t0
    n_steps = counts["checks"] - counts["examples"]
    return {
        "library": "dispatchsim",
        "settings": {
            "max_examples": examples,
            "stateful_step_count": steps,
            "derandomize": True,
            "database": None,
            "deadline": None,
            "phases": ["generate"],
        },
        "seconds": seconds,
        "examples": counts["examples"],
        "steps": n_steps,
        "examples_per_second": counts["examples"] / seconds,
        "steps_per_second": n_steps / seconds,
    }


_RSS_SCRIPT: Final = """
import gc, os, sys
lib, n = sys.argv[1], int(sys.argv[2])
if lib == "numpy":
    import numpy as np
    make = lambda: np.zeros(4, dtype=np.float32)
elif lib == "torch":
    import torch
    make = lambda: torch.zeros(4, dtype=torch.float32)
else:
    import dispatch
    make = lambda: dispatch.zeros(4, dtype=dispatch.float32)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
keep = [None] * n
keep[0] = make()
gc.collect()
before = rss()
for i in range(n):
    keep[i] = make()
print(rss() - before)
"""


def _rss_per_tensor(lib: str, n: int) -> float | None:
    """RSS growth per tensor in a fresh interpreter (in this one, memory freed by the
    timed groups would be reused and hide the growth); None where /proc is missing."""
    if not os.path.exists("/proc/self/statm"):
        return None
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, lib, str(n)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"RSS measurement of {lib} failed:\n{proc.stderr}")
    return int(proc.stdout.split()[-1]) / n


def _traced_per_tensor(make: Callable[[], Any], n: int) -> float:
    keep: list[Any] = [None] * n  # the list exists before the measurement
    keep[0] = make()  # warm any caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            keep[i] = make()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
        del keep
        gc.collect()


def measure_memory(libs: dict[str, Lib], n: int) -> dict[str, Any]:
    """Bytes per (4,) float32 tensor object, ``n`` kept alive."""
    import numpy as np

    makers: dict[str, Callable[[], Any]] = {"numpy": lambda: np.zeros(4, dtype=np.float32)}
    import dispatch

    makers["dispatchsim"] = lambda: dispatch.zeros(4, dtype=dispatch.float32)
    if "torch" in libs:
        import torch

        makers["torch"] = lambda: torch.zeros(4, dtype=torch.float32)
    out = {
        lib: {
            "n": n,
            "tracemalloc_bytes_per_tensor": _traced_per_tensor(makers[lib], n),
            "rss_bytes_per_tensor": _rss_per_tensor(lib, n),
        }
        for lib in LIBRARIES
        if lib in makers
    }
    return {
        "what": {
            "dispatchsim": "Tensor + VersionCounter + ndarray (+ its data), dispatch.zeros(4)",
            "numpy": "ndarray (+ its data), np.zeros(4, float32)",
            "torch": "torch.zeros(4): the Python object; the C++ TensorImpl/storage are "
            "invisible to tracemalloc (see RSS)",
        },
        "note": "tracemalloc: Python heap delta per object, in this process; RSS: "
        "/proc/self/statm delta per object in a fresh interpreter (page-granular, "
        "allocator-dependent)",
        "libraries": out,
    }


def measure_tracing(rounds: int, target_ms: float) -> dict[str, Any]:
    from benchmarks import bench_trace

    data = bench_trace.run(rounds, target_ms)
    data["worst_ratio_median"] = max(r["ratio_median"] for r in data["rows"])
    data["worst_estimated_ratio"] = max(r["estimated_ratio"] for r in data["rows"])
    return data


# -- targets --------------------------------------------------------------------------
def target(name: str, value: float | None, limit: float, note: str = "") -> dict[str, Any]:
    """A target ``value <= limit``; ``met`` is None when the value was not measured."""
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "comparison": "<=",
        "met": None if value is None else bool(value <= limit),
        "note": note,
    }


def evaluate_targets(
    cells: list[dict[str, Any]], tracing: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Issue #7's targets from the measured figures (dsim/torch ratios of the same run,
    dispatchsim's own IM/no_grad ratios, the tracer check's paired ratio)."""
    idx = _index(cells)

    def ds(group: str, op: str, shape: str, mode: str, key: str) -> float | None:
        c = idx.get((group, op, shape, mode, "dispatchsim"))
        v = c.get(key) if c else None
        return None if v is None else float(v)

    out = []
    for op in ("a + b", "a.view(-1)", "a.add_(1)"):
        for mode in ("normal", "no_grad", "IM-normal", "IM-inference", "grad"):
            out.append(
                target(
                    f"{OP_KIND[op]} {op} (4,) {mode}: dsim/torch",
                    ds("ops", op, "(4,)", mode, "ratio_torch"),
                    3.0,
                )
            )
    for guard in ("no_grad", "inference_mode"):
        out.append(
            target(
                f"guard {guard} enter+exit: dsim/torch",
                ds("guards", guard, "-", "-", "ratio_torch"),
                2.0,
            )
        )
    for mode in MLP_MODES:
        out.append(
            target(
                f"MLP forward {mode}: dsim/torch",
                ds("mlp", "forward", "(16, 32)", mode, "ratio_torch"),
                2.0,
            )
        )
    for op in ("a + b", "a.view(-1)", "a.add_(1)"):
        out.append(
            target(
                f"{OP_KIND[op]} {op} (4,): dsim IM-inference / dsim no_grad",
                ds("ops", op, "(4,)", "IM-inference", "ratio_over_no_grad"),
                0.8,
            )
        )
    value = None if tracing is None else float(tracing["worst_ratio_median"])
    note = (
        ""
        if tracing is None
        else f"estimate from the check's own cost: {tracing['worst_estimated_ratio']:.4f}"
    )
    out.append(target("tracing off: worst paired ratio with/without the check", value, 1.03, note))
    return out


# -- legacy rows (the earlier bench_ops JSON) -----------------------------------------
def legacy_results(cells: list[dict[str, Any]], libs: list[str]) -> list[dict[str, Any]]:
    """The normal-mode ``ops`` cells in the earlier ``bench_ops`` row format."""
    idx = _index(cells)
    rows = []
    for op in OPS:
        for shape in SHAPES:
            s = shape_str(shape)
            ds = idx.get(("ops", op, s, "normal", "dispatchsim"))
            if ds is None:
                continue
            row: dict[str, Any] = {"op": op, "shape": list(shape), "statements": {}, "us": {}}
            for lib in LIBRARIES:
                c = idx.get(("ops", op, s, NUMPY_MODE if lib == "numpy" else "normal", lib))
                row["us"][lib] = c["us"] if c else None
                if c:
                    row["statements"][lib] = c["statement"]
            row["ratio_numpy"] = ds["ratio_numpy"]
            row["ratio_torch"] = ds["ratio_torch"]
            rows.append(row)
    return rows


# -- the run --------------------------------------------------------------------------
def run(
    groups: list[str],
    repeats: int,
    target_ms: float,
    preset: dict[str, float],
    use_torch: bool = True,
    log: Callable[[str], None] = lambda _: None,
    torch_threads: int | None = 1,
) -> dict[str, Any]:
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    libs, versions = _load_libs(use_torch, torch_threads)
    t0 = time.perf_counter()
    cells = measure_timed(groups, libs, repeats, target_ms, log)
    seconds["timed groups"] = time.perf_counter() - t0
    data: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(versions),
        "settings": {
            "groups": groups,
            "repeats": repeats,
            "target_batch_ms": target_ms,
            "timer": "time.perf_counter_ns around a compiled loop (gc off while timing)",
            "statistic": "median over interleaved rounds of per-call microseconds",
            "untimed": "tensor creation, mode guard entry/exit, the grad-mode in-place "
            "non-leaf (per-batch setup/teardown)",
            "dtype": "float32",
            "add_inplace_reset": False,
            "add_inplace_note": "a.add_(1) is not reset between calls; a grows by 1 per call",
            "ratios": "ratio_numpy / ratio_torch = dispatchsim median / that library's median",
            "numpy_modes": "numpy is measured once per op/shape (mode '-'); that figure is "
            "every mode's dsim/numpy denominator",
            "state_machine": {"max_examples": preset["sm_examples"], "steps": preset["sm_steps"]},
            "memory_n": preset["memory_n"],
            "tracing": {"rounds": preset["trace_rounds"], "target_ms": preset["trace_target_ms"]},
            "torch_threads": torch_threads,
            "torch_threads_note": "torch.set_num_threads (None: torch's default); "
            "dispatchsim and numpy run single-threaded",
        },
        "libraries": list(libs),
        "groups": groups,
        "cells": cells,
        "results": legacy_results(cells, list(libs)),
    }
    if "state_machine" in groups:
        log("state machine")
        t0 = time.perf_counter()
        data["state_machine"] = measure_state_machine(
            int(preset["sm_examples"]), int(preset["sm_steps"])
        )
        seconds["state_machine"] = time.perf_counter() - t0
    if "memory" in groups:
        log("memory")
        t0 = time.perf_counter()
        data["memory"] = measure_memory(libs, int(preset["memory_n"]))
        seconds["memory"] = time.perf_counter() - t0
    tracing = None
    if "tracing" in groups:
        log("tracing")
        t0 = time.perf_counter()
        tracing = measure_tracing(int(preset["trace_rounds"]), float(preset["trace_target_ms"]))
        seconds["tracing"] = time.perf_counter() - t0
        data["tracing"] = tracing
    data["targets"] = evaluate_targets(cells, tracing)
    data["seconds"] = time.perf_counter() - t_start
    data["seconds_by_part"] = seconds
    return data


# -- the table ------------------------------------------------------------------------
def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    return [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def format_report(data: dict[str, Any]) -> str:
    out: list[str] = []
    cells = data["cells"]
    idx = _index(cells)
    for group in TIMED_GROUPS:
        ds_cells = [c for c in cells if c["group"] == group and c["library"] == "dispatchsim"]
        if not ds_cells:
            continue
        out += ["", f"== {group} (median us per call" + (", per loop)" if group == "loop" else ")")]
        rows: list[tuple[str, ...]] = []
        for c in ds_cells:
            key = (group, c["op"], c["shape"])
            t = idx.get((*key, c["mode"], "torch"))
            n = idx.get((*key, c["mode"], "numpy")) or idx.get((*key, NUMPY_MODE, "numpy"))
            imr = c.get("ratio_over_no_grad")
            timr = t.get("ratio_over_no_grad") if t else None
            rows.append(
                (
                    c["op"],
                    c["shape"],
                    c["mode"],
                    _fmt_us(c["us"]["median"]),
                    _fmt_us(n["us"]["median"] if n else None),
                    _fmt_us(t["us"]["median"] if t else None),
                    _fmt_ratio(c["ratio_numpy"]),
                    _fmt_ratio(c["ratio_torch"]),
                    _fmt_ratio(imr) if group == "ops" else "",
                    _fmt_ratio(timr) if group == "ops" else "",
                )
            )
        head: tuple[str, ...] = (
            "op",
            "shape",
            "mode",
            "dsim us",
            "numpy us",
            "torch us",
            "dsim/numpy",
            "dsim/torch",
        )
        if group == "ops":
            head += ("dsim IM/no_grad", "torch IM/no_grad")
            out += _table(head, rows, 3)
        else:
            out += _table(head, [r[:8] for r in rows], 3)
        if group == "mlp":
            out.append("numpy forward+backward: the forward plus a hand-written backward")
    sm = data.get("state_machine")
    if sm:
        out += [
            "",
            "== state_machine (dispatchsim)",
            f"{sm['examples']} examples, {sm['steps']} steps in {sm['seconds']:.2f} s: "
            f"{sm['examples_per_second']:.1f} examples/s, {sm['steps_per_second']:.0f} steps/s "
            f"(max_examples={sm['settings']['max_examples']}, "
            f"stateful_step_count={sm['settings']['stateful_step_count']}, derandomized)",
        ]
    mem = data.get("memory")
    if mem:
        mrows = [
            (
                lib,
                f"{m['tracemalloc_bytes_per_tensor']:.0f}",
                "-" if m["rss_bytes_per_tensor"] is None else f"{m['rss_bytes_per_tensor']:.0f}",
            )
            for lib, m in mem["libraries"].items()
        ]
        n = next(iter(mem["libraries"].values()))["n"]
        out += ["", f"== memory (bytes per (4,) float32 tensor, {n} kept alive)"]
        out += _table(("library", "tracemalloc", "RSS"), mrows, 1)
        out.append("tracemalloc sees the Python heap only: torch's C++ allocations show in RSS")
    tr = data.get("tracing")
    if tr:
        out += [
            "",
            "== tracing (the dispatcher's tracer check, no trace active)",
            "; ".join(f"{r['op']}: {r['ratio_median']:.4f}" for r in tr["rows"])
            + f" (paired medians with/without, {tr['rounds']} rounds); "
            f"estimate from the check's cost: at most {tr['worst_estimated_ratio']:.4f}",
        ]
    out += ["", "== TARGETS"]
    trows = []
    for t in data["targets"]:
        v = t["value"]
        verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT MET"
        trows.append(
            (
                t["name"],
                "-" if v is None else f"{v:.3f}",
                f"{t['comparison']} {t['limit']:g}",
                verdict,
            )
        )
    out += _table(("target", "value", "limit", "verdict"), trows, 1)
    measured = [t for t in data["targets"] if t["met"] is not None]
    out.append(f"{sum(t['met'] for t in measured)}/{len(measured)} measured targets met")
    env = data["environment"]
    s = data["settings"]
    out += [
        "",
        f"python {env['python']}, numpy {env['numpy']}, torch {env['torch'] or 'not used'}, "
        f"{env['cpu_count']} CPUs, torch threads {env['torch_num_threads']}; median of {s['repeats']} interleaved rounds of "
        f"~{s['target_batch_ms']:g} ms batches; a.add_(1) not reset between calls; "
        f"took {data['seconds']:.0f} s",
    ]
    return "\n".join(out).lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "dispatchsim vs numpy vs torch (when importable), in one process, interleaved: "
            "ops per mode, guards, a 100-op loop, an MLP, the state machine, memory, tracing."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK['repeats']} rounds of ~{QUICK['target_ms']:g} ms batches",
    )
    parser.add_argument(
        "--groups",
        default=",".join(GROUPS),
        metavar="G,...",
        help=f"a subset of {','.join(GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="write the results here (default: benchmarks/results/latest.json)",
    )
    parser.add_argument("--repeats", type=int, metavar="N", help="rounds (overrides --quick)")
    parser.add_argument(
        "--target-ms",
        type=float,
        metavar="MS",
        help="minimum batch time per cell (overrides --quick)",
    )
    parser.add_argument("--no-torch", action="store_true", help="do not import torch")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        metavar="N",
        help="torch.set_num_threads(N) (default 1, like dispatchsim and numpy; 0: torch's default)",
    )
    args = parser.parse_args(argv)
    preset = dict(QUICK if args.quick else FULL)
    repeats = int(args.repeats if args.repeats is not None else preset["repeats"])
    target_ms = float(args.target_ms if args.target_ms is not None else preset["target_ms"])
    if repeats < 1 or target_ms <= 0:
        parser.error("--repeats must be >= 1 and --target-ms > 0")
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        parser.error(
            f"unknown group(s) {','.join(unknown) or '(none given)'}; choose from {','.join(GROUPS)}"
        )
    groups = [g for g in GROUPS if g in groups]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    data = run(
        groups,
        repeats,
        target_ms,
        preset,
        use_torch=not args.no_torch,
        log=log,
        torch_threads=args.torch_threads or None,
    )
    data["settings"]["quick"] = bool(args.quick)
    print(format_report(data))
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0
