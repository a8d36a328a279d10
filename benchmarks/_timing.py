"""The timing loop every benchmark here shares.

Method:

* a *cell* is one statement timed in batches: a :class:`Timer` (a statement compiled
  into a loop, like :class:`timeit.Timer`, but with a per-batch *setup* and *teardown*
  that are not timed) or a :class:`FunctionTimer` (a ``loop(n)`` function);
* the clock is :func:`time.perf_counter_ns`; the garbage collector is off while a batch
  runs (as :mod:`timeit` does);
* :func:`calibrate` picks each cell's inner loop count — after one untimed warm-up call,
  doubled from 1 until one batch takes at least the target time (calibration goes on
  warming up);
* :func:`interleave` then measures in *rounds*: every round times one batch of every
  cell, group after group, rotating the order inside each group from round to round, so
  that machine noise (frequency scaling, the other processes on a shared machine) falls
  on all the cells of a group alike;
* a cell's figure is the median over rounds of the per-call time (:func:`summary`).

What a setup does (binding tensors to locals, entering a mode guard, making a fresh
non-leaf for an in-place op under grad mode) and what a teardown does (leaving the
guard) run once per batch, outside the timed region; the timed region is only the loop
over the statement.
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import statistics
import textwrap
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

MAX_NUMBER: Final = 1 << 24

K = TypeVar("K", bound=Hashable)

_TEMPLATE: Final = """\
def inner(_n, _timer):
{setup}
    try:
        _t0 = _timer()
        for _i in _repeat(None, _n):
{stmt}
        _t1 = _timer()
    finally:
{teardown}
    return _t1 - _t0
"""


class BatchTimer(Protocol):
    def time(self, n: int) -> int:
        """Nanoseconds one batch of ``n`` calls takes."""
        ...


def _gc_off(fn: Callable[[], int]) -> int:
    was = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if was:
            gc.enable()


class Timer:
    """``stmt`` compiled into a loop, with an untimed per-batch ``setup`` and ``teardown``
    (``teardown`` runs even if the loop raises). Names the statements use come from
    ``namespace`` (globals); bind them to locals in ``setup`` for the fastest lookups."""

    def __init__(
        self,
        stmt: str,
        setup: str = "pass",
        teardown: str = "pass",
        namespace: Mapping[str, Any] | None = None,
    ) -> None:
        self.stmt, self.setup, self.teardown = stmt, setup, teardown
        src = _TEMPLATE.format(
            setup=textwrap.indent(textwrap.dedent(setup), " " * 4),
            stmt=textwrap.indent(textwrap.dedent(stmt), " " * 12),
            teardown=textwrap.indent(textwrap.dedent(teardown), " " * 8),
        )
        ns: dict[str, Any] = dict(namespace or {})
        ns["_repeat"] = itertools.repeat
        exec(compile(src, "<benchmark cell>", "exec"), ns)
        self._inner: Callable[[int, Callable[[], int]], int] = ns["inner"]

    def time(self, n: int) -> int:
        return _gc_off(lambda: self._inner(n, time.perf_counter_ns))


class FunctionTimer:
    """A ``loop(n)`` function that runs the measured call ``n`` times."""

    def __init__(self, loop: Callable[[int], object]) -> None:
        self.loop = loop

    def time(self, n: int) -> int:
        def once() -> int:
            t0 = time.perf_counter_ns()
            self.loop(n)
            return time.perf_counter_ns() - t0

        return _gc_off(once)


def calibrate(timer: BatchTimer, target_ns: float, max_number: int = MAX_NUMBER) -> int:
    """The smallest power-of-two loop count whose batch takes at least ``target_ns``.

    One untimed batch runs first: a statement's first call can pay one-time costs (torch
    initialising autograd took over 15 ms once), which would otherwise end calibration at
    one call per batch and leave every sample dominated by the batch's own overhead."""
    timer.time(1)
    number = 1
    while number < max_number:
        if timer.time(number) >= target_ns:
            break
        number *= 2
    return number


def interleave(
    timers: Mapping[K, BatchTimer],
    groups: Sequence[Sequence[K]],
    numbers: Mapping[K, int],
    repeats: int,
) -> dict[K, list[float]]:
    """Per-call microseconds of every cell, one sample per round. Each round runs the
    ``groups`` in order; inside a group the starting cell rotates with the round."""
    samples: dict[K, list[float]] = {k: [] for g in groups for k in g}
    for r in range(repeats):
        for group in groups:
            keys = list(group)
            shift = r % len(keys) if keys else 0
            for key in keys[shift:] + keys[:shift]:
                n = numbers[key]
                samples[key].append(timers[key].time(n) / n / 1e3)
    return samples


def summary(samples: Sequence[float], inner_loops: int) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "rounds": len(samples),
        "inner_loops": inner_loops,
    }


def environment(versions: Mapping[str, str | None]) -> dict[str, Any]:
    """Python, platform, CPUs and the library versions (``numpy``, ``torch`` keys)."""
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
        "numpy": versions.get("numpy"),
        "torch": versions.get("torch"),
        "torch_num_threads": None,
    }
    if versions.get("torch") is not None:
        import torch

        env["torch_num_threads"] = torch.get_num_threads()
    return env
