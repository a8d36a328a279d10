"""What tracing costs when no trace is active.

The dispatcher's hot path pays one ``_tracers and s.tracer is not None`` check per call
(``dispatch.dispatcher.call``) and per redispatch (``redispatch_raw``); nothing else
in dispatchsim knows about tracing (the recorder infers what each kernel did from the
tensors, so kernels have no hooks). This benchmark times ``a + b``, ``a.add_(1)`` and
``a.view(-1)`` (float32, shape (4,): small tensors, so dispatch is as large a share of
the cost as it gets) with the dispatcher as it is, and with a variant of the two hot-path
functions whose check is removed — that is, the hot path as it would be without tracing.

The variant is made from the functions' own source with the check's two lines cut out,
compiled in the dispatcher module's namespace, and swapped in by replacing the
functions' ``__code__`` (so every caller, including kernels that imported
``redispatch_raw`` by name, runs it). The benchmark checks the swap took: with the
variant installed an active trace records nothing.

Both variants run in one process, in interleaved rounds (the order alternates from
round to round); each sample is one batch of calls (a loop count calibrated to the
target batch time, gc off). Reported per op: the median per-call time of each variant,
the median over rounds of the paired ratio (with check / without, adjacent batches of
the same round), and that ratio's spread. On a busy machine the spread is wider than
the effect, so the table also gives a low-noise estimate: the cost of each check alone
(a loop of nothing but that check's condition as written in the source, compiled in the
dispatcher's module, minus an empty loop; median over rounds) times the number of calls
and redispatches the op makes (counted with a trace), over the per-call time. The done-when of the tracing work is a ratio within 1.03.

``python -m benchmarks.bench_trace [--quick] [--rounds N] [--target-ms MS] [--json PATH]``
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType
from typing import Any, Final

from benchmarks._timing import FunctionTimer, calibrate

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
OPS: Final = ("a + b", "a.add_(1)", "a.view(-1)")
VARIANTS: Final = ("with check", "without check")
THRESHOLD: Final = 1.03


def _without_check(fn: Callable[..., Any]) -> CodeType:
    """``fn``'s code with its ``if ... tracer is not None:`` block (the check and the
    ``return`` under it) removed, compiled in ``fn``'s module namespace."""
    lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
    out: list[str] = []
    removed = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("if ") and "tracer is not None" in line:
            nxt = lines[i + 1]
            assert nxt.lstrip().startswith("return ") and "on_call" in nxt, nxt
            removed += 1
            i += 2
            continue
        out.append(line)
        i += 1
    if removed != 1:
        raise RuntimeError(f"expected one tracer check in {fn.__name__}, found {removed}")
    ns: dict[str, Any] = {}
    exec(
        compile("\n".join(out) + "\n", f"<{fn.__name__} without the tracer check>", "exec"),
        fn.__globals__,
        ns,
    )
    code: CodeType = ns[fn.__name__].__code__
    if code.co_freevars != fn.__code__.co_freevars:
        raise RuntimeError(f"{fn.__name__}: the variant does not fit the original's closure")
    return code


class HotPath:
    """Switches the dispatcher's two hot-path functions between their own code and the
    check-free variant."""

    def __init__(self) -> None:
        from dispatch import dispatcher as d

        self.functions = (d.call, d.redispatch_raw)
        self.original = tuple(f.__code__ for f in self.functions)
        self.variant = tuple(_without_check(f) for f in self.functions)

    @contextmanager
    def without_check(self) -> Iterator[None]:
        for f, code in zip(self.functions, self.variant):
            f.__code__ = code
        try:
            yield
        finally:
            for f, code in zip(self.functions, self.original):
                f.__code__ = code


def _loops() -> dict[str, Callable[[int], None]]:
    import numpy as np

    import dispatch

    rng = np.random.default_rng(0)

    def make() -> Any:
        return dispatch.tensor(rng.random(4, dtype=np.float32).tolist(), dtype=dispatch.float32)

    a, b, c = make(), make(), make()

    def add(n: int) -> None:
        for _ in range(n):
            a + b

    def add_(n: int) -> None:
        for _ in range(n):
            c.add_(1)

    def view(n: int) -> None:
        for _ in range(n):
            a.view(-1)

    return {"a + b": add, "a.add_(1)": add_, "a.view(-1)": view}


def _kernels(hot: HotPath, variant: str) -> int:
    """Events an active trace records for one ``a + b`` under ``variant`` (the check-free
    variant must record none: proof that the swap took)."""
    import dispatch

    a = dispatch.ones(2)
    if variant == "without check":
        with hot.without_check(), dispatch.trace() as tr:
            a + a
    else:
        with dispatch.trace() as tr:
            a + a
    return len(tr.events)


def _check_condition(fn: Callable[..., Any]) -> str:
    """The condition of ``fn``'s tracer check, as written in its source."""
    for line in inspect.getsource(fn).splitlines():
        stripped = line.strip()
        if stripped.startswith("if ") and "tracer is not None" in stripped:
            return stripped[3:].split(":", 1)[0]
    raise RuntimeError(f"no tracer check in {fn.__name__}")


def _check_loops(fn: Callable[..., Any]) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """A loop doing nothing but ``fn``'s tracer check (its own condition, compiled in its
    module, with ``s`` bound as ``call`` binds it), and the same loop without it."""
    cond = _check_condition(fn)
    src = (
        "def checks(n):\n"
        "    s = _per_thread.state\n"
        "    for _ in range(n):\n"
        f"        if {cond}:\n"
        "            raise AssertionError('a trace is active')\n"
        "def empty(n):\n"
        "    s = _per_thread.state\n"
        "    for _ in range(n):\n"
        "        if s is None:\n"
        "            raise AssertionError\n"
    )
    ns: dict[str, Any] = {}
    exec(compile(src, f"<the tracer check of {fn.__name__}>", "exec"), fn.__globals__, ns)
    return ns["checks"], ns["empty"]


def _dispatches_per_call() -> dict[str, tuple[int, int]]:
    """(calls, redispatches) each op makes: how many checked entries it goes through."""
    import dispatch

    loops = _loops()
    out = {}
    for op, loop in loops.items():
        with dispatch.trace() as tr:
            loop(1)
        n_redispatch = sum(1 for e in tr.events if e.redispatch)
        out[op] = (len(tr.events) - n_redispatch, n_redispatch)
    return out


def _time(loop: Callable[[int], None], n: int) -> float:
    """Nanoseconds per call of one batch of ``n`` (gc off)."""
    return FunctionTimer(loop).time(n) / n


def _calibrate(loop: Callable[[int], None], target_ns: float) -> int:
    return calibrate(FunctionTimer(loop), target_ns, 1 << 22)


def run(rounds: int, target_ms: float) -> dict[str, Any]:
    hot = HotPath()
    traced = {v: _kernels(hot, v) for v in VARIANTS}
    if traced["with check"] == 0 or traced["without check"] != 0:
        raise RuntimeError(f"the check-free variant did not take effect: {traced}")
    loops = _loops()
    dispatches = _dispatches_per_call()
    check_loops = [_check_loops(f) for f in hot.functions]  # call, redispatch_raw
    n_checks = [_calibrate(c, target_ms * 1e6) for c, _ in check_loops]
    check_ns: list[list[float]] = [[], []]
    numbers = {op: _calibrate(loop, target_ms * 1e6) for op, loop in loops.items()}
    samples: dict[tuple[str, str], list[float]] = {(op, v): [] for op in OPS for v in VARIANTS}
    paired: dict[str, list[float]] = {op: [] for op in OPS}
    for r in range(rounds):
        for j, (checks, empty) in enumerate(check_loops):
            check_ns[j].append(_time(checks, n_checks[j]) - _time(empty, n_checks[j]))
        for op in OPS:
            loop, n = loops[op], numbers[op]
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            got: dict[str, float] = {}
            for v in order:
                if v == "without check":
                    with hot.without_check():
                        got[v] = _time(loop, n)
                else:
                    got[v] = _time(loop, n)
            for v in VARIANTS:
                samples[(op, v)].append(got[v])
            paired[op].append(got["with check"] / got["without check"])
    call_check, redispatch_check = (max(statistics.median(c), 0.0) for c in check_ns)
    rows: list[dict[str, Any]] = []
    for op in OPS:
        ratios = sorted(paired[op])
        without = statistics.median(samples[(op, "without check")])
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else (ratios[0],) * 3
        rows.append(
            {
                "op": op,
                "inner_loops": numbers[op],
                "ns_per_call": {v: statistics.median(samples[(op, v)]) for v in VARIANTS},
                "ratio_median": statistics.median(ratios),
                "ratio_of_medians": statistics.median(samples[(op, "with check")])
                / statistics.median(samples[(op, "without check")]),
                "ratio_iqr": [q1, q3],
                "calls_redispatches": list(dispatches[op]),
                "estimated_ratio": 1
                + (dispatches[op][0] * call_check + dispatches[op][1] * redispatch_check) / without,
            }
        )
    overall = math.exp(statistics.fmean(math.log(r["ratio_median"]) for r in rows))
    return {
        "rounds": rounds,
        "target_ms": target_ms,
        "trace_events_for_a_plus_b": traced,
        "check_ns": {"call": call_check, "redispatch_raw": redispatch_check},
        "check_conditions": [_check_condition(f) for f in hot.functions],
        "rows": rows,
        "overall_ratio": overall,
        "threshold": THRESHOLD,
        "within_threshold": all(r["ratio_median"] <= THRESHOLD for r in rows),
        "estimate_within_threshold": all(r["estimated_ratio"] <= THRESHOLD for r in rows),
    }


def format_table(data: dict[str, Any]) -> str:
    head = [
        "op",
        "with check ns",
        "without ns",
        "ratio (paired median)",
        "IQR",
        "ratio of medians",
        "calls+redisp.",
        "estimate",
    ]
    lines = [head]
    for r in data["rows"]:
        ns = r["ns_per_call"]
        lo, hi = r["ratio_iqr"]
        lines.append(
            [
                r["op"],
                f"{ns['with check']:.0f}",
                f"{ns['without check']:.0f}",
                f"{r['ratio_median']:.4f}",
                f"{lo:.3f}..{hi:.3f}",
                f"{r['ratio_of_medians']:.4f}",
                "+".join(map(str, r["calls_redispatches"])),
                f"{r['estimated_ratio']:.4f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    verdict = "within" if data["within_threshold"] else "NOT within"
    worst = max(r["estimated_ratio"] for r in data["rows"])
    out += [
        "",
        f"measured: geometric mean of the paired medians {data['overall_ratio']:.4f}; "
        f"every op's paired median {verdict} {data['threshold']:.2f}",
        f"estimated from the check's own cost: at most {worst:.4f}",
        f"{data['rounds']} interleaved rounds of ~{data['target_ms']:g} ms batches; "
        "the variant is the dispatcher's call/redispatch_raw with the tracer check cut out",
        "estimate = 1 + (calls x one call check + redispatches x one redispatch check) / "
        "per-call time without the check;",
        f"  the checks timed alone: {data['check_ns']['call']:.1f} ns "
        f"(`{data['check_conditions'][0]}`), {data['check_ns']['redispatch_raw']:.1f} ns "
        f"(`{data['check_conditions'][1]}`)",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_trace", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of ~1 ms batches")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--target-ms", type=float, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "trace.json", metavar="PATH")
    args = parser.parse_args(argv)
    rounds, target_ms = (3, 1.0) if args.quick else (41, 20.0)
    if args.rounds is not None:
        rounds = args.rounds
    if args.target_ms is not None:
        target_ms = args.target_ms
    data = run(rounds, target_ms)
    print(format_table(data))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
