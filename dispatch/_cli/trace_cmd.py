"""``dispatchsim trace SCRIPT.py [ARGS...]``: run a script as ``python SCRIPT.py`` would
(``__name__ == "__main__"``, ``sys.argv``, its directory first on ``sys.path``), under an
optional mode, record every operator call it makes, and print the trace.

What the script prints is captured and shown before the trace (``stdout`` in JSON), so
that the output stays one document. If the script raises, the trace up to the error is
still printed, the traceback goes to stderr and the exit status is 1. Libraries the
script left open are closed afterwards.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import sys
import traceback
from pathlib import Path
from typing import Any

from dispatch._cli import mermaid
from dispatch._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    MODE_GUARD_TEXT,
    Style,
    UsageError,
    chain,
    close_libraries,
    emit_json,
    error_text,
    keys_run_lines,
    mode_guard,
    preserved_tls,
    tree_lines,
)
from dispatch.trace import Trace


def _run_script(path: str, argv: list[str], mode: str, tr: Trace) -> tuple[str, str | None]:
    """Run the script; (what it printed, the error it raised or None)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
        code = compile(source, path, "exec")
    except OSError as exc:
        raise UsageError(f"cannot read script {path!r}: {exc.strerror or exc}") from None
    except (SyntaxError, ValueError) as exc:
        raise UsageError(f"cannot compile script {path!r}: {exc}") from None
    ns: dict[str, Any] = {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
    out = io.StringIO()
    error: str | None = None
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    sys.path.insert(0, str(Path(path).resolve().parent))
    try:
        with preserved_tls(), contextlib.redirect_stdout(out), mode_guard(mode), tr:
            exec(code, ns)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f"SystemExit: {exc.code}"
    except Exception as exc:
        error = error_text(exc)
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # from the script
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        close_libraries(ns)
    return out.getvalue(), error


def cmd_trace(path: str, argv: list[str], mode: str, fmt: str, colour: bool) -> int:
    tr = Trace()
    printed, error = _run_script(path, argv, mode, tr)
    roots = tr.roots
    status = EXIT_FAILED if error is not None else EXIT_OK
    if fmt == "json":
        emit_json(
            {
                "script": path,
                "argv": argv,
                "mode": mode,
                "stdout": printed,
                "error": error,
                "calls": [r.to_dict() for r in roots],
                "keys_run": [[r.op, chain(r)] for r in roots],
            }
        )
        return status
    if fmt == "mermaid":
        print(mermaid.diagram([(None, roots)]))
        return status
    st = Style(colour)
    kernels = sum(1 for r in roots for _ in r.walk())
    out = [f"script  {path}", f"mode    {mode} ({MODE_GUARD_TEXT[mode]})"]
    if printed:
        out.append(st.bold("printed:"))
        out.extend("  " + line for line in printed.rstrip("\n").splitlines())
    out.append(st.bold(f"trace ({len(roots)} operator calls, {kernels} kernels):"))
    out.extend("  " + line for line in tree_lines(roots, st))
    if roots:
        out.append(st.bold("keys run, per call:"))
        out.extend("  " + line for line in keys_run_lines(roots, st))
    if error is not None:
        out.append(st.bad(f"the script raised {error}"))
    print("\n".join(out))
    return status
