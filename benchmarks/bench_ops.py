"""Per-op microbenchmarks: dispatchsim against numpy and torch, in one process.

For each op and shape, each library gets a :class:`timeit.Timer` (``time.perf_counter_ns``;
timeit compiles the statement into a loop and turns the garbage collector off while it
runs). The inner loop count is calibrated per cell — doubled until one batch takes at
least the target time — and then the measurement runs in *rounds*: every round times one
batch of every (op, shape, library) cell, rotating the library order from round to round,
so that machine noise (frequency scaling, other processes) falls on all libraries alike.
The reported figure is the median over rounds of the per-call time.

Ops (``a``, ``b`` are float32 tensors of the given shape, made contiguous):

=============  ===============  ==================  ===============
op             dispatchsim      numpy               torch
=============  ===============  ==================  ===============
``a + b``      ``a + b``        ``a + b``           ``a + b``
``a.add_(1)``  ``a.add_(1)``    ``a += 1``          ``a.add_(1)``
``view(-1)``   ``a.view(-1)``   ``a.reshape(-1)``   ``a.view(-1)``
``a[1:]``      ``a[1:]``        ``a[1:]``           ``a[1:]``
=============  ===============  ==================  ===============

``a.add_(1)`` is **not** reset between calls: ``a`` grows by one per call (its version
counter too). The cost of an add does not depend on the values, and a reset would add a
copy to every call. ``a.reshape(-1)`` of a contiguous numpy array is a view, like
``view(-1)``. dispatchsim runs with its defaults (grad mode on, no tensor requires grad).

``python -m benchmarks [--quick] [--json PATH] [--repeats N] [--target-ms MS] [--no-torch]``
prints a table and writes the results, with the environment, as JSON (default:
``benchmarks/results/latest.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
DEFAULT_JSON: Final = RESULTS_DIR / "latest.json"

LIBRARIES: Final = ("dispatchsim", "numpy", "torch")
SHAPES: Final[tuple[tuple[int, ...], ...]] = ((4,), (64, 64))

# op -> library -> statement; `a` and `b` are bound (as locals) in the timing loop.
OPS: Final[dict[str, dict[str, str]]] = {
    "a + b": {"dispatchsim": "a + b", "numpy": "a + b", "torch": "a + b"},
    "a.add_(1)": {"dispatchsim": "a.add_(1)", "numpy": "a += 1", "torch": "a.add_(1)"},
    "a.view(-1)": {"dispatchsim": "a.view(-1)", "numpy": "a.reshape(-1)", "torch": "a.view(-1)"},
    "a[1:]": {"dispatchsim": "a[1:]", "numpy": "a[1:]", "torch": "a[1:]"},
}

FULL: Final = {"repeats": 15, "target_ms": 20.0}
QUICK: Final = {"repeats": 3, "target_ms": 1.0}
MAX_NUMBER: Final = 1 << 24

Factory = Callable[[tuple[int, ...]], Any]


def _factories(use_torch: bool) -> tuple[dict[str, Factory], dict[str, str | None]]:
    """The available libraries: name -> factory of a random float32 tensor, and versions."""
    import numpy as np

    import dispatch

    rng = np.random.default_rng(0)

    def np_rand(shape: tuple[int, ...]) -> Any:
        return rng.random(shape, dtype=np.float32)

    def ds_rand(shape: tuple[int, ...]) -> Any:
        return dispatch.tensor(np_rand(shape).tolist(), dtype=dispatch.float32)

    factories: dict[str, Factory] = {"dispatchsim": ds_rand, "numpy": np_rand}
    versions: dict[str, str | None] = {"numpy": np.__version__, "torch": None}
    if use_torch:
        try:
            import torch
        except ImportError:
            pass
        else:
            versions["torch"] = str(torch.__version__)

            def torch_rand(shape: tuple[int, ...]) -> Any:
                return torch.from_numpy(np_rand(shape)).clone()

            factories["torch"] = torch_rand
    return factories, versions


def _environment(versions: dict[str, str | None]) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        dsim: str = version("dispatchsim")
    except Exception:  # run from a source tree without installing
        dsim = "source tree (not installed)"
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cpus = None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "usable_cpu_count": usable_cpus,
        "dispatchsim": dsim,
        "numpy": versions["numpy"],
        "torch": versions["torch"],
        "torch_num_threads": None,
    }
    if versions["torch"] is not None:
        import torch

        env["torch_num_threads"] = torch.get_num_threads()
    return env


def _calibrate(timer: timeit.Timer, target_ns: float) -> int:
    """The smallest power-of-two loop count whose batch takes at least ``target_ns``."""
    number = 1
    while number < MAX_NUMBER:
        if timer.timeit(number) >= target_ns:
            break
        number *= 2
    return number


def run(
    repeats: int, target_ms: float, use_torch: bool = True, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure every (op, shape, library) cell; return the JSON-ready results."""
    factories, versions = _factories(use_torch)
    libs = [lib for lib in LIBRARIES if lib in factories]
    target_ns = target_ms * 1e6
    cells: list[tuple[str, tuple[int, ...], str]] = [
        (op, shape, lib) for op in OPS for shape in SHAPES for lib in libs
    ]
    timers: dict[tuple[str, tuple[int, ...], str], timeit.Timer] = {}
    numbers: dict[tuple[str, tuple[int, ...], str], int] = {}
    samples: dict[tuple[str, tuple[int, ...], str], list[float]] = {c: [] for c in cells}
    for cell in cells:  # calibration doubles as warm-up
        op, shape, lib = cell
        make = factories[lib]
        ns = {"_a": make(shape), "_b": make(shape)}
        timer = timeit.Timer(
            OPS[op][lib], setup="a = _a; b = _b", timer=time.perf_counter_ns, globals=ns
        )
        timers[cell] = timer
        numbers[cell] = _calibrate(timer, target_ns)
    if log:
        log(f"calibrated {len(cells)} cells; measuring {repeats} interleaved rounds")
    for r in range(repeats):
        for op in OPS:
            for shape in SHAPES:
                shift = r % len(libs)
                for lib in libs[shift:] + libs[:shift]:  # rotate who goes first
                    cell = (op, shape, lib)
                    n = numbers[cell]
                    samples[cell].append(timers[cell].timeit(n) / n / 1e3)
    results: list[dict[str, Any]] = []
    for op in OPS:
        for shape in SHAPES:
            row: dict[str, Any] = {"op": op, "shape": list(shape), "statements": {}, "us": {}}
            for lib in LIBRARIES:
                cell = (op, shape, lib)
                if lib not in libs:
                    row["us"][lib] = None
                    continue
                s = samples[cell]
                row["statements"][lib] = OPS[op][lib]
                row["us"][lib] = {
                    "median": statistics.median(s),
                    "min": min(s),
                    "max": max(s),
                    "rounds": len(s),
                    "inner_loops": numbers[cell],
                }
            ds = row["us"]["dispatchsim"]["median"]
            row["ratio_numpy"] = ds / row["us"]["numpy"]["median"]
            torch_us = row["us"]["torch"]
            row["ratio_torch"] = ds / torch_us["median"] if torch_us else None
            results.append(row)
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": _environment(versions),
        "settings": {
            "repeats": repeats,
            "target_batch_ms": target_ms,
            "timer": "time.perf_counter_ns via timeit.Timer (gc off while timing)",
            "statistic": "median over interleaved rounds of per-call microseconds",
            "dtype": "float32",
            "add_inplace_reset": False,
            "add_inplace_note": "a.add_(1) is not reset between calls; a grows by 1 per call",
            "ratios": "ratio_numpy / ratio_torch = dispatchsim median / that library's median",
        },
        "libraries": libs,
        "results": results,
    }


def _fmt_us(v: dict[str, Any] | None) -> str:
    if v is None:
        return "-"
    us = float(v["median"])
    return f"{us:.3f}" if us < 1 else f"{us:.2f}" if us < 100 else f"{us:.0f}"


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.1f}x"


def format_table(data: dict[str, Any]) -> str:
    head = ("op", "shape", "dispatchsim us", "numpy us", "torch us", "dsim/numpy", "dsim/torch")
    rows = [head]
    for r in data["results"]:
        rows.append(
            (
                r["op"],
                "(" + ", ".join(map(str, r["shape"])) + ("," if len(r["shape"]) == 1 else "") + ")",
                _fmt_us(r["us"]["dispatchsim"]),
                _fmt_us(r["us"]["numpy"]),
                _fmt_us(r["us"]["torch"]),
                _fmt_ratio(r["ratio_numpy"]),
                _fmt_ratio(r["ratio_torch"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    env = data["environment"]
    footer = (
        f"python {env['python']}, numpy {env['numpy']}, torch {env['torch'] or 'not installed'}, "
        f"{env['cpu_count']} CPUs; median of {data['settings']['repeats']} interleaved rounds; "
        "a.add_(1) not reset between calls"
    )
    return "\n".join([line(head), rule, *(line(r) for r in rows[1:]), "", footer])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Per-op microseconds of dispatchsim, numpy and torch (when importable), "
            "measured in one process in interleaved rounds."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK['repeats']} rounds of ~{QUICK['target_ms']:g} ms batches",
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
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    repeats = int(args.repeats if args.repeats is not None else preset["repeats"])
    target_ms = float(args.target_ms if args.target_ms is not None else preset["target_ms"])
    if repeats < 1 or target_ms <= 0:
        parser.error("--repeats must be >= 1 and --target-ms > 0")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    data = run(repeats, target_ms, use_torch=not args.no_torch, log=log)
    data["settings"]["quick"] = bool(args.quick)
    print(format_table(data))
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0
