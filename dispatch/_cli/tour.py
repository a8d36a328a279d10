"""``dispatchsim tour``: every statement of PyTorch's Gradient Modes document, run.

A :class:`Step` is a piece of code, the expressions to observe once it has run, and the
checks that say what the document's statement predicts. Running a step executes its
code (the code shown is the code run) in a fresh namespace, recording each
``with traced("label"):`` block with ``dispatch.trace()``; then it evaluates the
observations and the checks there. A step whose code raises or whose check fails has
contradicted the document: the tour reports it and exits with status 1.

Names the step code can use besides the builtins: ``dispatch``, ``modes``, ``traced``,
``error_of``, ``outcome`` and the first words of PyTorch's error messages
(:data:`ERRORS`); the checks and observations also ``keys``, ``calls`` and ``key_counts``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs

import dispatch
from dispatch._cli import mermaid
from dispatch._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    Style,
    UsageError,
    chain,
    close_libraries,
    emit_json,
    error_text,
    trace_block_lines,
)
from dispatch.trace import DispatchEvent, Trace

ERRORS: Final = {
    "INPLACE_ERR": "RuntimeError: Inplace update to inference tensor outside InferenceMode",
    "VERSION_ERR": "RuntimeError: Inference tensors do not track version counter",
    "SAVE_ERR": "RuntimeError: Inference tensors cannot be saved for backward",
    "REQUIRES_GRAD_ERR": (
        "RuntimeError: Setting requires_grad=True on inference tensor outside InferenceMode"
    ),
}
"""PyTorch's error messages about inference tensors, by their first words, as the
checks refer to them (``error_of`` returns ``"Type: message"``)."""


@attrs.frozen
class Step:
    """One tour step: ``code`` runs, then ``observe`` (shown with their values) and
    ``checks`` (each must be true: the document's statement, as an observable) are
    evaluated in the namespace the code left."""

    name: str
    section: str
    title: str
    code: str
    checks: tuple[str, ...]
    observe: tuple[str, ...] = ()
    statement: str = ""  # the document's sentence this step checks
    note: str = ""  # why it holds, in terms of keys
    example: str = ""  # the document's C++ example this step runs


# ----------------------------------------------------------------------------------------
# Running a step
# ----------------------------------------------------------------------------------------
class _Traces:
    """The ``traced(label)`` blocks of one step, in the order they ran."""

    def __init__(self) -> None:
        self.blocks: dict[str, Trace] = {}

    @contextlib.contextmanager
    def traced(self, label: str) -> Iterator[Trace]:
        if label in self.blocks:
            raise ValueError(f"traced({label!r}) used twice in one step")
        tr = Trace()
        self.blocks[label] = tr
        with tr:
            yield tr

    def get(self, label: str) -> Trace:
        try:
            return self.blocks[label]
        except KeyError:
            raise KeyError(f"no traced({label!r}) block ran") from None

    def keys(self, label: str, op: str | None = None) -> list[str]:
        """The keys whose kernels ran in the block (of operator ``op`` only, if given)."""
        return [e.key for e in self.get(label).events if op is None or op in (e.op, e.operator)]

    def calls(self, label: str) -> list[str]:
        """The operators called from Python in the block (top-level calls)."""
        return [r.op for r in self.get(label).roots]

    def key_counts(self, label: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.get(label).events:
            counts[e.key] = counts.get(e.key, 0) + 1
        return counts


def error_of(fn: Callable[[], Any]) -> str | None:
    """``"Type: message"`` of the exception ``fn()`` raises, or None if it returns."""
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def outcome(fn: Callable[[], Any]) -> Any:
    """What ``fn()`` returns, or ``"Type: message"`` of what it raises."""
    try:
        return fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _namespace(step: Step, traces: _Traces) -> dict[str, Any]:
    import modes  # modes depends on dispatch, not the other way round: import on use

    return {
        "__name__": f"__tour_{step.name.replace('-', '_')}__",
        "dispatch": dispatch,
        "modes": modes,
        "traced": traces.traced,
        "error_of": error_of,
        "outcome": outcome,
        **ERRORS,
    }


def _compare_left(expr: str) -> str | None:
    """The left operand's source of ``expr`` if it is a comparison (shown on failure)."""
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Compare):
        return ast.unparse(node.left)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ast.unparse(node.operand)
    return None


def run_step(number: int, step: Step) -> dict[str, Any]:
    """Run one step; its JSON-ready result (plus ``"_roots"``: the traced events per label,
    for the text and mermaid renderers).

    The step runs in a thread of its own, so it starts from the default thread-local state
    (grad mode on, no guard, no active trace) whatever the caller's thread is doing, as it
    would at the top level of a fresh ``python``, and leaves the caller's state alone. Every
    Library the step left open is closed.
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = _run_step(number, step)
        except BaseException as exc:  # a bug of the tour itself: re-raised below
            box["exc"] = exc

    worker = threading.Thread(target=work, name=f"{PROG}-tour-step-{number}")
    worker.start()
    worker.join()
    if "exc" in box:
        raise box["exc"]
    result: dict[str, Any] = box["result"]
    return result


def _run_step(number: int, step: Step) -> dict[str, Any]:
    traces = _Traces()
    ns = _namespace(step, traces)
    filename = f"<{PROG} tour step {number}>"
    error: str | None = None
    printed = io.StringIO()
    observed: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(step.code, filename, "exec"), ns)
    except Exception as exc:
        error = error_text(exc)
    finally:
        close_libraries(ns)
    if error is None:
        env = {**ns, "keys": traces.keys, "calls": traces.calls, "key_counts": traces.key_counts}
        for expr in step.observe:
            try:
                value = repr(eval(expr, env))
            except Exception as exc:
                value = f"<raised {error_text(exc)}>"
                error = error or f"observing {expr}: {error_text(exc)}"
            observed.append({"expr": expr, "value": value})
        for expr in step.checks:
            seen: str | None = None
            try:
                ok = bool(eval(expr, env))
            except Exception as exc:
                ok, seen = False, f"raised {error_text(exc)}"
            if not ok and seen is None:
                left = _compare_left(expr)
                if left is not None:
                    try:
                        seen = repr(eval(left, env))
                    except Exception as exc:
                        seen = f"raised {error_text(exc)}"
            checks.append({"expr": expr, "ok": ok, "observed": seen})
        close_libraries(env)
    blocks = {label: list(tr.roots) for label, tr in traces.blocks.items()}
    return {
        "number": number,
        "name": step.name,
        "section": step.section,
        "title": step.title,
        "statement": step.statement or None,
        "example": step.example or None,
        "code": step.code.rstrip("\n"),
        "traces": [
            {
                "label": label,
                "calls": [r.to_dict() for r in roots],
                "keys_run": [[r.op, chain(r)] for r in roots],
            }
            for label, roots in blocks.items()
        ],
        "printed": printed.getvalue(),
        "observed": observed,
        "checks": checks,
        "note": step.note or None,
        "error": error,
        "ok": error is None and all(c["ok"] for c in checks),
        "_roots": blocks,
    }


def _public(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if not k.startswith("_")}


# ----------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------
def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=96, initial_indent=first, subsequent_indent=rest)


def render_step(res: dict[str, Any], total: int, style: Style) -> list[str]:
    out = [style.bold(f"[{res['number']}/{total}] {res['name']} - {res['title']}")]
    if res["statement"]:
        out.extend(_wrap(f'"{res["statement"]}"', "  statement: ", "             "))
    if res["example"]:
        out.append("  the document's example (C++):")
        out.extend("    " + line for line in res["example"].splitlines())
    out.append("  code:")
    out.extend("    " + line if line else "" for line in res["code"].splitlines())
    roots: dict[str, list[DispatchEvent]] = res["_roots"]
    for label, events in roots.items():
        out.append(f'  trace "{label}":')
        out.extend(trace_block_lines(events, style, indent="    "))
    if not roots:
        out.append("  trace: (no traced block)")
    if res["printed"]:
        out.append("  printed:")
        out.extend("    " + line for line in res["printed"].rstrip("\n").splitlines())
    if res["observed"]:
        out.append("  observed:")
        width = max(len(o["expr"]) for o in res["observed"])
        out.extend(f"    {o['expr'].ljust(width)}  = {o['value']}" for o in res["observed"])
    if res["checks"]:
        out.append("  checks (what the document says):")
        for c in res["checks"]:
            if c["ok"]:
                out.append(f"    {style.good('ok')}      {c['expr']}")
            else:
                seen = f"    (observed: {c['observed']})" if c["observed"] is not None else ""
                out.append(f"    {style.bad('FAILED')}  {c['expr']}{seen}")
    if res["error"]:
        out.append("  " + style.bad(f"error: {res['error']}"))
    if res["note"]:
        out.extend(style.dim(line) for line in _wrap(res["note"], "  why: ", "       "))
    verdict = "holds" if res["ok"] else "CONTRADICTED"
    what = "the statement" if res["statement"] else "the example" if res["example"] else "the step"
    out.append("  " + (style.good if res["ok"] else style.bad)(f"=> {what} {verdict} (observed)"))
    return out


TOUR_INTRO: Final = (
    "dispatchsim tour: PyTorch's Gradient Modes document, statement by statement, run on",
    "dispatchsim. What an operator call means is decided by which dispatch keys run: a",
    "call's key set is (its tensors' keys | TLS included) - TLS excluded, the kernel of the",
    "highest-priority key runs and may redispatch below itself. Each step shows its code,",
    "the dispatch trace of its traced blocks, what it observed, and checks the statement.",
    "Trace lines: [call|redispatch] OPERATOR -> KEY [where the kernel came from]  ks=KEY SET",
    "  ': ks = ...' how the key set was formed, '+ ...' what the kernel did, '!! ...' an error.",
    "error_of(f) is 'Type: message' of what f() raised (None if nothing); the checks name",
    "PyTorch's messages by their first words:",
    *(f"  {name} = {text!r}" for name, text in ERRORS.items()),
)


# ----------------------------------------------------------------------------------------
# The subcommand
# ----------------------------------------------------------------------------------------
def find_step(steps: tuple[Step, ...], spec: str) -> int | None:
    """The 0-based index of the step a number (1-based) or a name designates."""
    if spec.isdigit():
        n = int(spec)
        return n - 1 if 1 <= n <= len(steps) else None
    for i, step in enumerate(steps):
        if step.name == spec.lower():
            return i
    return None


def list_steps(steps: tuple[Step, ...], fmt: str) -> None:
    rows = [
        {"number": i, "name": s.name, "section": s.section, "title": s.title}
        for i, s in enumerate(steps, 1)
    ]
    if fmt == "json":
        emit_json({"steps": rows})
        return
    width = max(len(s.name) for s in steps)
    for r in rows:
        print(f"{r['number']:>2}  {str(r['name']).ljust(width)}  {r['section']}: {r['title']}")


def cmd_tour(
    steps: tuple[Step, ...], specs: list[str], fmt: str, listing: bool, colour: bool
) -> int:
    if listing:
        list_steps(steps, fmt)
        return EXIT_OK
    total = len(steps)
    if specs:
        chosen: list[int] = []
        for spec in specs:
            i = find_step(steps, spec)
            if i is None:
                names = ", ".join(s.name for s in steps)
                raise UsageError(
                    f"unknown step {spec!r}: choose 1-{total} or one of: {names}"
                    f" (dispatchsim tour --list shows them)"
                )
            if i not in chosen:
                chosen.append(i)
    else:
        chosen = list(range(total))
    style = Style(colour)
    results = [run_step(i + 1, steps[i]) for i in chosen]
    if fmt == "json":
        failed = [r["name"] for r in results if not r["ok"]]
        emit_json({"steps": [_public(r) for r in results], "failed": failed})
    elif fmt == "mermaid":
        sections: list[tuple[str | None, list[DispatchEvent]]] = []
        for r in results:
            for label, roots in r["_roots"].items():
                sections.append((f"[{r['number']}] {r['name']}: {label}", roots))
            if not r["_roots"]:
                sections.append((f"[{r['number']}] {r['name']}: no traced block", []))
        print(mermaid.diagram(sections))
    else:
        lines: list[str] = list(TOUR_INTRO) if not specs else []
        section = None
        for r in results:
            if not specs and r["section"] != section:
                section = r["section"]
                lines += ["", style.bold(f"== {section} ==")]
            if lines:
                lines.append("")
            lines.extend(render_step(r, total, style))
        if not specs:
            n_ok = sum(r["ok"] for r in results)
            lines += ["", f"{n_ok} of {len(results)} steps hold."]
        print("\n".join(lines))
    failed_steps = [r for r in results if not r["ok"]]
    for r in failed_steps:
        why = r["error"] or "; ".join(c["expr"] for c in r["checks"] if not c["ok"])
        print(f"{PROG} tour: step {r['number']} ({r['name']}) failed: {why}", file=sys.stderr)
    return EXIT_FAILED if failed_steps else EXIT_OK
