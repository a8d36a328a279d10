"""The ``dispatchsim`` command line (also ``python -m dispatch``).

Subcommands:

* ``tour [STEP] [--list]`` — a short walk through what decides an op's meaning:
  for each step, the code, the key-by-key dispatch trace and the observed outcome;
* ``keys [--under GUARD]`` — the runtime keys in priority order, the alias keys
  and what they expand to, and the thread-local included/excluded sets;
* ``table OP`` — ``dispatch.dump_table(OP)``: per runtime key, the kernel and
  where it came from.

Every subcommand takes ``--format text|json``. Colour is used only when stdout
is a terminal and ``NO_COLOR`` is not set. Bad arguments print a message and
exit with status 2; a tour step that fails exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, Final, TextIO

import attrs

import dispatch
from dispatch.dispatcher import dispatcher as _registry
from dispatch.keys import ALIAS_KEYS, AUTOGRAD_KEYS, BACKEND_KEYS, RUNTIME_KEYS, DispatchKey
from dispatch.keyset import DispatchKeySet, get_runtime_dispatch_keyset
from dispatch.tls import state as _tls
from dispatch.trace import DispatchEvent, Trace

__all__ = ["main"]

PROG: Final = "dispatchsim"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


# ----------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------
class _Style:
    """ANSI styling, or none at all."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _sgr(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def key(self, text: str) -> str:
        return self._sgr("36", text)

    def bad(self, text: str) -> str:
        return self._sgr("31", text)


def _use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (or TERM is dumb)."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _keys(ks: DispatchKeySet) -> list[str]:
    """Key names of a set, in PyTorch's printing order (lowest priority first)."""
    return [k.name for k in ks]


@contextlib.contextmanager
def _preserved_tls() -> Iterator[None]:
    """Restore the thread-local dispatch state (and the active tracer) on exit, whatever
    the code inside did. Guards already restore what they edit; this is the backstop."""
    s = _tls
    saved = (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode, s.tracer)
    try:
        yield
    finally:
        (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode, s.tracer) = saved


def _ks_text(names: list[str]) -> str:
    """A key set's repr from its key names (as DispatchKeySet prints it)."""
    return f"DispatchKeySet({', '.join(names)})"


def _tls_dict() -> dict[str, Any]:
    included, excluded = dispatch.tls_local_dispatch_key_set()
    return {
        "included": _keys(included),
        "excluded": _keys(excluded),
        "grad_mode": _tls.grad_mode,
        "inference_mode": _tls.inference_mode,
    }


# ----------------------------------------------------------------------------------------
# tour
# ----------------------------------------------------------------------------------------
@attrs.frozen
class Step:
    """One tour step. ``setup`` runs untraced, ``op`` under ``dispatch.trace()``, both inside
    ``with <guard>:`` when a guard is given; ``teardown`` always runs. The code shown is the
    code run."""

    name: str
    title: str
    setup: str
    op: str
    note: str
    guard: str = ""
    teardown: str = ""
    table: str = ""  # an operator whose dispatch table is shown (before teardown)

    def code(self) -> str:
        body = self.setup.rstrip("\n").splitlines()
        body.append(f"{self.op}    # <- traced")
        if self.guard:
            body = [f"with {self.guard}:", *("    " + line if line else "" for line in body)]
        body.extend(self.teardown.rstrip("\n").splitlines())
        return "\n".join(body)


_SCALE_SETUP: Final = """\
def scale_cpu(self, s):
    self.numpy()[...] *= s
    return self

lib = dispatch.Library("myops", "DEF")
lib.define("scale_(Tensor(a!) self, float s) -> Tensor(a!)")
lib.impl("scale_", scale_cpu, "CPU")
a = dispatch.ones(3)
"""

STEPS: Final[tuple[Step, ...]] = (
    Step(
        name="functional",
        title="a functional op: a + b",
        setup="a = dispatch.ones(3)\nb = dispatch.ones(3)\n",
        op="out = a + b",
        note=(
            "The call's key set is the union of the arguments' sets plus the TLS included set. "
            "The autograd key runs first (it would record a grad_fn if an input required "
            "grad); add is neither a mutation nor a view, so ADInplaceOrView is a fallthrough "
            "for it and CPU computes a fresh tensor. a._version is untouched."
        ),
    ),
    Step(
        name="view",
        title="a view: a.view(-1)",
        setup="a = dispatch.ones(2, 3)\n",
        op="out = a.view(-1)",
        note=(
            "view's schema returns Tensor(a), an alias of self, so the ADInplaceOrView kernel "
            "runs: it records the view's base and makes it share a's version counter. CPU "
            "returns a real numpy view; nothing is written, so no version bump."
        ),
    ),
    Step(
        name="inplace",
        title="an in-place op on a normal tensor: a.add_(1)",
        setup="a = dispatch.ones(3)\n",
        op="out = a.add_(1)",
        note=(
            "add_'s schema marks self as Tensor(a!): the ADInplaceOrView kernel bumps "
            "a._version once the CPU kernel has written the data. out is a itself."
        ),
    ),
    Step(
        name="inference",
        title="the same in-place op on an inference tensor inside inference_mode()",
        guard="modes.inference_mode()",
        setup="a = dispatch.ones(3)\n",
        op="out = a.add_(1)",
        note=(
            "inference_mode() only edits the TLS: ADInplaceOrView leaves the included set and "
            "the autograd keys join the excluded set. a, allocated inside, carries only CPU. "
            "So only the CPU kernel runs: no autograd, no version counter to bump (reading "
            "a._version raises)."
        ),
    ),
    Step(
        name="custom-op",
        title="a user-defined operator registered with only a CPU kernel",
        setup=_SCALE_SETUP,
        op="out = dispatch.ops.myops.scale_(a, 2.0)",
        teardown="lib.close()\n",
        table="myops::scale_",
        note=(
            "Only CPU was registered, yet three keys run: the autograd key resolves to its "
            "backend fallback, and ADInplaceOrView runs the generic kernel derived from the "
            "schema's Tensor(a!), so the version bump comes for free. The table shows where "
            "each entry came from."
        ),
    ),
)


def _find_step(spec: str) -> Step | None:
    if spec.isdigit():
        n = int(spec)
        return STEPS[n - 1] if 1 <= n <= len(STEPS) else None
    for step in STEPS:
        if step.name == spec.lower():
            return step
    return None


def _event_dict(e: DispatchEvent) -> dict[str, Any]:
    return {
        "op": e.op,
        "key": e.key,
        "provenance": e.provenance,
        "redispatch": e.redispatch,
        "depth": e.depth,
        "keyset": _keys(e.keyset),
        "error": e.error,
    }


def _version_of(t: Any) -> tuple[int | None, str | None]:
    try:
        return int(t._version), None
    except RuntimeError as exc:
        return None, str(exc)


def _observe(ns: dict[str, Any], before: int | None) -> dict[str, Any]:
    a, out = ns["a"], ns.get("out")
    after, version_error = _version_of(a)
    obs: dict[str, Any] = {
        "result": repr(out),
        "values": out.tolist() if isinstance(out, dispatch.Tensor) else None,
        "version_before": before,
        "version_after": after,
        "version_error": version_error,
    }
    if isinstance(out, dispatch.Tensor):
        obs["out_version"] = _version_of(out)[0]
        obs["out_is_a"] = out is a
        obs["is_view"] = out._is_view()
        obs["is_inference"] = out.is_inference()
    return obs


def _close_libraries(ns: dict[str, Any]) -> None:
    for value in ns.values():
        if isinstance(value, dispatch.Library):
            value.close()


def run_step(number: int, step: Step) -> tuple[dict[str, Any], list[DispatchEvent]]:
    """Run one step in a fresh namespace: (its JSON-ready result, the traced events).

    The thread-local state and the operator registry are left as they were found: the
    guard restores the TLS (with a backstop), and every Library the step opened is closed.
    """
    import modes  # modes depends on dispatch, not the other way round: import on use

    ns: dict[str, Any] = {"__name__": f"__tour_{step.name}__", "dispatch": dispatch, "modes": modes}
    filename = f"<{PROG} tour step {number}>"
    tr = Trace()
    error: str | None = None
    outcome: dict[str, Any] = {}
    table: str | None = None
    with _preserved_tls():
        try:
            with contextlib.ExitStack() as stack:
                if step.guard:
                    stack.enter_context(eval(step.guard, ns))
                exec(compile(step.setup, filename, "exec"), ns)
                before, _ = _version_of(ns["a"])
                with tr:
                    exec(compile(step.op, filename, "exec"), ns)
                outcome = _observe(ns, before)
            if step.table:
                table = dispatch.dump_table(step.table)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                if step.teardown:
                    exec(compile(step.teardown, filename, "exec"), ns)
            except Exception as exc:  # e.g. setup failed before defining what it undoes
                error = error or f"{type(exc).__name__}: {exc}"
            finally:
                _close_libraries(ns)
    events = tr.events
    result: dict[str, Any] = {
        "number": number,
        "name": step.name,
        "title": step.title,
        "code": step.code(),
        "trace": [_event_dict(e) for e in events],
        "keys_run": [e.key for e in events],
        "outcome": outcome,
        "table_op": step.table or None,
        "table": table,
        "note": step.note,
        "error": error,
    }
    return result, events


def _format_event(e: DispatchEvent, style: _Style) -> str:
    line = str(e)
    if style.enabled:
        line = line.replace(f"-> {e.key} ", f"-> {style.key(e.key)} ", 1)
        if e.error:
            line = line.replace(f"!! {e.error}", style.bad(f"!! {e.error}"))
    return line


def _outcome_rows(o: dict[str, Any]) -> list[tuple[str, str]]:
    if o["version_error"] is not None:
        version = f"n/a (RuntimeError: {o['version_error']})"
    else:
        version = f"{o['version_before']} -> {o['version_after']}"
    rows = [("out", o["result"]), ("a._version", version)]
    if "is_view" in o:
        rows += [
            ("out._version", "n/a" if o["out_version"] is None else str(o["out_version"])),
            ("out is a", str(o["out_is_a"])),
            ("out._is_view()", str(o["is_view"])),
            ("out.is_inference()", str(o["is_inference"])),
        ]
    return rows


def _render_step(
    res: dict[str, Any], events: list[DispatchEvent], total: int, style: _Style
) -> list[str]:
    out = [style.bold(f"[{res['number']}/{total}] {res['name']} - {res['title']}"), "  code:"]
    out.extend("    " + line if line else "" for line in res["code"].splitlines())
    out.append("  trace:")
    if events:
        out.extend("    " + _format_event(e, style) for e in events)
    else:
        out.append("    (no operator calls)")
    keys = " -> ".join(style.key(k) for k in res["keys_run"]) or "(none)"
    out.append(f"  keys run: {keys}")
    if res["error"]:
        out.append("  " + style.bad(f"error: {res['error']}"))
    if res["outcome"]:
        rows = _outcome_rows(res["outcome"])
        width = max(len(name) for name, _ in rows)
        out.append("  outcome:")
        out.extend(f"    {name.ljust(width)}  {value}" for name, value in rows)
    if res["table"]:
        out.append(f"  dispatch table (dispatch.dump_table({res['table_op']!r})):")
        out.extend("    " + line for line in res["table"].rstrip("\n").splitlines())
    why = textwrap.wrap(
        res["note"], width=92, initial_indent="  why: ", subsequent_indent="       "
    )
    out.extend(style.dim(line) for line in why)
    return out


_TOUR_INTRO: Final = (
    "dispatchsim tour: what an operator call means is decided by which dispatch keys run.",
    "A call's key set is (its tensors' keys | TLS included) - TLS excluded; the kernel of the",
    "highest-priority key runs and may redispatch below itself. Each trace line reads",
    "  [call|redispatch] OPERATOR -> KEY [where the kernel came from]  ks=KEY SET",
)


def cmd_tour(args: argparse.Namespace) -> int:
    total = len(STEPS)
    if args.list:
        rows = [{"number": i, "name": s.name, "title": s.title} for i, s in enumerate(STEPS, 1)]
        if args.format == "json":
            _emit_json({"steps": rows})
        else:
            width = max(len(s.name) for s in STEPS)
            for r in rows:
                print(f"{r['number']}  {str(r['name']).ljust(width)}  {r['title']}")
        return EXIT_OK
    if args.step is None:
        selected = list(enumerate(STEPS, 1))
    else:
        step = _find_step(args.step)
        if step is None:
            names = ", ".join(s.name for s in STEPS)
            args.parser.error(f"unknown step {args.step!r}: choose 1-{total} or one of: {names}")
            return EXIT_USAGE  # not reached: error() exits
        selected = [(STEPS.index(step) + 1, step)]
    style = _Style(args.colour)
    results: list[dict[str, Any]] = []
    lines: list[str] = list(_TOUR_INTRO) if args.step is None else []
    for number, step in selected:
        res, events = run_step(number, step)
        results.append(res)
        if lines:
            lines.append("")
        lines.extend(_render_step(res, events, total, style))
    if args.format == "json":
        _emit_json({"steps": results})
    else:
        print("\n".join(lines))
    failed = [r for r in results if r["error"]]
    for r in failed:
        print(
            f"{PROG} tour: step {r['number']} ({r['name']}) failed: {r['error']}", file=sys.stderr
        )
    return EXIT_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------------------
# keys
# ----------------------------------------------------------------------------------------
def _guards() -> dict[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    import modes

    return {
        "none": contextlib.nullcontext,
        "no_grad": modes.no_grad,
        "inference_mode": modes.inference_mode,
        "AutoDispatchBelowAutograd": modes.AutoDispatchBelowAutograd,
        "AutoDispatchBelowADInplaceOrView": modes.AutoDispatchBelowADInplaceOrView,
    }


GUARD_NAMES: Final = (
    "none",
    "no_grad",
    "inference_mode",
    "AutoDispatchBelowAutograd",
    "AutoDispatchBelowADInplaceOrView",
)


def _key_kind(k: DispatchKey) -> str:
    if k in BACKEND_KEYS:
        return "backend"
    if k in AUTOGRAD_KEYS:
        return "autograd"
    return "functionality"


def _keys_report(under: str) -> dict[str, Any]:
    runtime = [
        {"name": k.name, "priority": len(RUNTIME_KEYS) - i, "kind": _key_kind(k)}
        for i, k in enumerate(reversed(RUNTIME_KEYS))
    ]
    alias = {k.name: _keys(get_runtime_dispatch_keyset(k)) for k in ALIAS_KEYS}
    with _preserved_tls(), _guards()[under]():
        tls = _tls_dict()
        t = dispatch.ones(3)
        tr = Trace()
        error: str | None = None
        try:
            with tr:
                t.add_(1)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        new_tensor = {
            "key_set": _keys(t.key_set),
            "is_inference": t.is_inference(),
            "add_keys_run": [e.key for e in tr.events],
            "add_error": error,
        }
    return {
        "runtime_keys": runtime,
        "alias_keys": alias,
        "under": under,
        "tls": tls,
        "new_cpu_tensor": new_tensor,
    }


def cmd_keys(args: argparse.Namespace) -> int:
    report = _keys_report(args.under)
    if args.format == "json":
        _emit_json(report)
        return EXIT_OK
    st = _Style(args.colour)
    width = max(len(k.name) for k in RUNTIME_KEYS)
    out = [st.bold("Runtime keys, highest priority first:")]
    for r in report["runtime_keys"]:
        out.append(f"  {r['priority']}  {st.key(r['name'].ljust(width))}  {r['kind']}")
    out.append(st.bold("Alias keys (registration only; expand to runtime keys):"))
    awidth = max(len(n) for n in report["alias_keys"])
    for name, keys in report["alias_keys"].items():
        out.append(f"  {name.ljust(awidth)}  -> {', '.join(keys)}")
    where = "default" if args.under == "none" else f"under {args.under}"
    tls = report["tls"]
    nt = report["new_cpu_tensor"]
    out += [
        st.bold(f"Thread-local state ({where}):"),
        f"  included        {_ks_text(tls['included'])}",
        f"  excluded        {_ks_text(tls['excluded'])}",
        f"  grad mode       {'on' if tls['grad_mode'] else 'off'}",
        f"  inference mode  {'on' if tls['inference_mode'] else 'off'}",
        st.bold(f"A CPU tensor allocated now (t = dispatch.ones(3), {where}):"),
        f"  t.key_set       {_ks_text(nt['key_set'])}",
        f"  is_inference()  {nt['is_inference']}",
        f"  t.add_(1) runs  {' -> '.join(st.key(k) for k in nt['add_keys_run']) or '(nothing)'}",
    ]
    if nt["add_error"]:
        out.append("  " + st.bad(f"t.add_(1) raised {nt['add_error']}"))
    print("\n".join(out))
    return EXIT_OK


# ----------------------------------------------------------------------------------------
# table
# ----------------------------------------------------------------------------------------
def _suggest(name: str) -> list[str]:
    names = sorted(_registry.operators)
    prefix = name if "::" in name else f"aten::{name}"
    starts = [n for n in names if n.startswith(prefix + ".") or n == prefix]
    return starts or difflib.get_close_matches(prefix, names, n=5, cutoff=0.6)


def cmd_table(args: argparse.Namespace) -> int:
    op: str = args.op
    try:
        text = dispatch.dump_table(op)
    except RuntimeError as exc:
        hint = _suggest(op)
        msg = f"{exc}"
        if hint:
            msg += f" (did you mean: {', '.join(hint)}?)"
        msg += "; the table needs a full overload name such as aten::add_.Tensor"
        args.parser.error(msg)
        return EXIT_USAGE  # not reached: error() exits
    if args.format == "json":
        entry = _registry.find_schema(op)
        entries = [
            {
                "key": e.key.name,
                "kernel": e.kernel.display_name if e.kernel is not None else None,
                "debug": e.kernel.debug if e.kernel is not None else None,
                "provenance": e.provenance,
                "source": e.source.name if e.source is not None else None,
                "fallthrough": e.is_fallthrough,
            }
            for e in entry.table[1:]
        ]
        _emit_json({"op": entry.name, "schema": str(entry.schema), "table": entries, "dump": text})
    else:
        print(text, end="")
    return EXIT_OK


# ----------------------------------------------------------------------------------------
# check
# ----------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """``check MODULE``: import MODULE and opcheck every operator it registered; a progress
    bar on a terminal, then a summary table (exit 1 if an operator failed)."""
    try:
        from dispatch.testing import _check
    except ImportError as exc:
        args.parser.error(str(exc))
        return EXIT_USAGE  # not reached: error() exits
    try:
        module, new = _check.import_module(args.module)
    except _check.ModuleImportError as exc:
        args.parser.error(str(exc))
        return EXIT_USAGE
    ops = _check.find_operators(module, new)
    if not ops:
        args.parser.error(f"{args.module} registered no operators (define them with a Library)")
        return EXIT_USAGE
    results = _check.check_module(ops, examples=args.examples, seed=args.seed)
    failed = [r for r in results if r.status != "ok"]
    if args.format == "json":
        _emit_json({"module": args.module, "operators": [r.as_dict() for r in results]})
        return EXIT_FAILED if failed else EXIT_OK
    style = _Style(args.colour)
    print(_check.format_table(results))
    for r in results:
        for w in r.warnings:
            print(f"\n{style.bold('warning')}: {w}")
        if r.status != "ok":
            print(f"\n{style.bad(r.status.upper())} {r.op}:\n{textwrap.indent(r.message, '  ')}")
    verdict = f"{len(results) - len(failed)} of {len(results)} operators passed"
    print(f"\n{style.bad(verdict) if failed else style.bold(verdict)}")
    return EXIT_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------------------
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dispatchsim")
    except Exception:  # not installed: run from a source tree
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument(
        "--format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="output format (default: text); json prints machine-readable dicts",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "dispatchsim: PyTorch's dispatcher rebuilt in Python on numpy tensors.\n"
            "See which dispatch keys run for an operator call, and what follows from it."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} tour              walk through five calls, key by key\n"
            f"  {PROG} tour 4            only step 4 (inference mode)\n"
            f"  {PROG} keys --under inference_mode\n"
            f"  {PROG} table aten::add_.Tensor\n"
            f"  {PROG} tour --format json\n\n"
            "Colour is used only when stdout is a terminal and NO_COLOR is unset.\n"
            "Exit status: 0 ok, 1 a tour step failed, 2 bad arguments or unknown operator."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[fmt],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "tour",
        parents=[fmt],
        help="a short walk: code, key-by-key trace and outcome per step",
        description=(
            "Run the built-in tour: for each step print the code, the key-by-key dispatch "
            "trace and the observed outcome (result, _version before/after, _is_view(), "
            "is_inference())."
        ),
    )
    p.add_argument("step", nargs="?", help="run only this step (its number or name)")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.set_defaults(func=cmd_tour, parser=p)

    p = sub.add_parser(
        "keys",
        parents=[fmt],
        help="the runtime key order and the thread-local included/excluded sets",
        description=(
            "Print the runtime dispatch keys in priority order, the alias keys and their "
            "expansion, the thread-local included/excluded key sets and grad/inference mode, "
            "and the key set of a CPU tensor allocated under that state."
        ),
    )
    p.add_argument(
        "--under",
        choices=GUARD_NAMES,
        default="none",
        metavar="GUARD",
        help=f"show the state inside this guard; one of: {', '.join(GUARD_NAMES)}",
    )
    p.set_defaults(func=cmd_keys, parser=p)

    p = sub.add_parser(
        "table",
        parents=[fmt],
        help="an operator's computed dispatch table (dispatch.dump_table)",
        description=(
            "Print dispatch.dump_table(OP): per runtime key, the kernel that runs and where "
            "it came from (kernel, math kernel, backend fallback, ...)."
        ),
    )
    p.add_argument("op", metavar="OP", help="full operator name, e.g. aten::add_.Tensor")
    p.set_defaults(func=cmd_table, parser=p)

    p = sub.add_parser(
        "check",
        parents=[fmt],
        help="opcheck every operator a module registers",
        description=(
            "Import MODULE (a dotted name or a .py file) and run dispatch.testing.opcheck on "
            "every operator it defined, with sample arguments drawn by hypothesis; print a "
            "summary table. Exit status 1 if an operator failed, 2 if MODULE cannot be "
            "imported or defines no operator."
        ),
    )
    p.add_argument("module", metavar="MODULE", help="e.g. myproject.ops or path/to/ops.py")
    p.add_argument("--examples", type=int, default=20, help="samples per operator (default 20)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: derandomized)")
    p.set_defaults(func=cmd_check, parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dispatchsim`` and ``python -m dispatch``; returns the exit status
    (0 ok, 1 a tour step failed, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "format"):
            args.format = "text"
        args.colour = args.format == "text" and _use_colour(sys.stdout)
        status: int = args.func(args)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except BrokenPipeError:  # e.g. `dispatchsim tour | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
