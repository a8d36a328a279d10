"""``dispatchsim check MODULE``: import a user's module and run :func:`opcheck` on every
operator it registered, with arguments drawn by :func:`op_calls` (hypothesis finds and
shrinks a failing sample)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import attrs
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.reporting import with_reporter

from dispatch.dispatcher import OpOverload, dispatcher
from dispatch.testing._opcheck import (
    DEFAULT_TEST_UTILS,
    MissingAutogradWarning,
    OpCheckError,
    _copy_tensor,
    _Sample,
    opcheck,
)
from dispatch.testing._strategies import OpCall, op_calls

__all__ = ["CheckResult", "ModuleImportError", "check_module", "find_operators", "import_module"]

_COLUMNS = ("schema", "modes", "autograd", "gradcheck")
_TEST_OF = {
    "schema": "test_schema",
    "modes": "test_modes",
    "autograd": "test_autograd_registration",
    "gradcheck": "test_gradcheck",
}


class ModuleImportError(Exception):
    """The module to check could not be imported."""


@attrs.define
class CheckResult:
    """The outcome of checking one operator."""

    op: str
    status: str  # "ok" | "failed" | "untested"
    tests: dict[str, str] = attrs.field(factory=dict)
    examples: int = 0
    message: str = ""
    warnings: list[str] = attrs.field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _defined_ops() -> dict[str, str]:
    return {name: e.debug for name, e in dispatcher.operators.items() if e.schema is not None}


def import_module(spec: str) -> tuple[ModuleType, set[str]]:
    """Import ``spec`` (a dotted module name, or a path to a ``.py`` file) and return it
    with the names of the operators defined while it was imported."""
    before = set(_defined_ops())
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.is_file():
            if not path.is_file():
                raise ModuleImportError(f"no such file: {spec}")
            name = f"_dispatchsim_check_{path.stem}_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ModuleImportError(f"cannot import {spec}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            sys.path.insert(0, str(path.resolve().parent))
            try:
                loader_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            if "" not in sys.path and "." not in sys.path:
                sys.path.insert(0, "")
            module = importlib.import_module(spec)
    except ModuleImportError:
        raise
    except Exception as e:
        raise ModuleImportError(f"importing {spec} failed: {type(e).__name__}: {e}") from e
    new = set(_defined_ops()) - before
    return module, new


def find_operators(module: ModuleType, new: set[str]) -> list[OpOverload]:
    """The operators ``module`` defined: those new since before the import, and those whose
    definition was made from the module's file (when it had been imported already)."""
    file = getattr(module, "__file__", None)
    names = set(new)
    if file:
        prefix = f"registered at {file}:"
        names |= {n for n, debug in _defined_ops().items() if debug.startswith(prefix)}
    ops = []
    for n in sorted(names):
        entry = dispatcher.find_op(n)
        if entry is not None and isinstance(entry.handle, OpOverload):
            ops.append(entry.handle)
    return ops


def _runs(call: OpCall) -> bool:
    """Whether the operator accepts this sample at all (in normal mode, on copies)."""
    sample = _Sample(call.op._schema, call.args, call.kwargs, lambda t: _copy_tensor(t))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call.op(*sample.args, **sample.kwargs)
    except Exception:
        return False
    return True


def check_operator(op: OpOverload, *, examples: int = 20, seed: int | None = None) -> CheckResult:
    """opcheck ``op`` on up to ``examples`` drawn samples (those the operator rejects
    with an error are skipped); a failure is shrunk to a small sample."""
    result = CheckResult(op.name(), "ok")
    seen_warnings: set[str] = set()
    counter = [0]
    last: dict[str, Any] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,  # one OpCheckError, never an ExceptionGroup of them
    )
    @given(call=op_calls(op))
    def run(call: OpCall) -> None:
        if not _runs(call):
            reject()
        counter[0] += 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MissingAutogradWarning)
            res = opcheck(op, call.args, call.kwargs)
        for w in caught:
            if issubclass(w.category, MissingAutogradWarning):
                seen_warnings.add(str(w.message))
        last.update(res)

    if seed is not None:
        from hypothesis import seed as hseed

        run = hseed(seed)(run)
    try:
        with with_reporter(lambda text: None):  # the message below names the sample
            run()
    except OpCheckError as e:
        result.status = "failed"
        result.message = str(e)
        for col, test in _TEST_OF.items():
            if test == e.test:
                result.tests[col] = "FAILED"
    except Unsatisfiable:
        result.status = "untested"
        result.message = (
            f"no sample was accepted by {op.name()}: every drawn call raised; give the "
            "operator arguments op_calls() can draw, or test it with opcheck directly"
        )
    result.examples = counter[0]
    result.warnings = sorted(seen_warnings)
    for col, test in _TEST_OF.items():
        result.tests.setdefault(col, str(last.get(test, "-")) if result.status == "ok" else "-")
    if result.warnings and result.tests.get("autograd") == "SUCCESS":
        result.tests["autograd"] = "WARNING"
    return result


class _Progress:
    """A one-line progress bar, drawn only on a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty is not None and isatty())
        self.stream = stream
        self.total = total
        self.start = time.monotonic()

    def update(self, done: int, label: str) -> None:
        if not self.enabled:
            return
        width = 24
        filled = width * done // max(self.total, 1)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {label[:50]:<50}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


def format_table(results: list[CheckResult]) -> str:
    """The summary table: one row per operator."""
    header = ("operator", *_COLUMNS, "examples", "result")
    rows = [
        (r.op, *(r.tests.get(c, "-") for c in _COLUMNS), str(r.examples), r.status) for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def check_module(
    ops: list[OpOverload],
    *,
    examples: int = 20,
    seed: int | None = None,
    stream: TextIO | None = None,
) -> list[CheckResult]:
    """:func:`check_operator` for each of ``ops``, with a progress bar on ``stream`` when
    it is a terminal."""
    out = sys.stdout if stream is None else stream
    progress = _Progress(out, len(ops))
    results = []
    try:
        for i, op in enumerate(ops):
            progress.update(i, op.name())
            results.append(check_operator(op, examples=examples, seed=seed))
        progress.update(len(ops), "done")
    finally:
        progress.close()
    return results


assert set(_TEST_OF.values()) == set(DEFAULT_TEST_UTILS)
