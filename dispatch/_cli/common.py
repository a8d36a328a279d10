"""What the subcommands share: styling, JSON, the thread-local backstop, the ``--mode``
guards and the text rendering of a trace."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TextIO

import dispatch
from dispatch.keyset import DispatchKeySet
from dispatch.tls import per_thread as _per_thread
from dispatch.trace import DispatchEvent

PROG: Final = "dispatchsim"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class UsageError(Exception):
    """A bad argument: ``main`` prints the message with the subcommand's usage and exits 2."""


# ----------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------
class Style:
    """ANSI styling, or none at all."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _sgr(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled and text else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def key(self, text: str) -> str:
        return self._sgr("36", text)

    def good(self, text: str) -> str:
        return self._sgr("32", text)

    def bad(self, text: str) -> str:
        return self._sgr("31", text)


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to a non-empty value
    (https://no-color.org) or ``TERM`` is ``dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def key_names(ks: DispatchKeySet) -> list[str]:
    """Key names of a set, in PyTorch's printing order (lowest priority first)."""
    return [k.name for k in ks]


def ks_text(names: Sequence[str]) -> str:
    """A key set's repr from its key names (as DispatchKeySet prints it)."""
    return f"DispatchKeySet({', '.join(names)})"


def tls_dict() -> dict[str, Any]:
    included, excluded = dispatch.tls_local_dispatch_key_set()
    return {
        "included": key_names(included),
        "excluded": key_names(excluded),
        "grad_mode": _per_thread.state.grad_mode,
        "inference_mode": _per_thread.state.inference_mode,
    }


@contextlib.contextmanager
def preserved_tls() -> Iterator[None]:
    """Restore the thread-local dispatch state (and the active tracer) on exit, whatever
    the code inside did. Guards already restore what they edit; this is the backstop."""
    s = _per_thread.state
    saved = (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode, s.tracer)
    try:
        yield
    finally:
        (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode, s.tracer) = saved


def close_libraries(ns: dict[str, Any]) -> None:
    """Close every ``dispatch.Library`` a namespace holds (closing twice is harmless)."""
    for value in list(ns.values()):
        if isinstance(value, dispatch.Library):
            value.close()


# ----------------------------------------------------------------------------------------
# --mode
# ----------------------------------------------------------------------------------------
MODE_NAMES: Final = ("normal", "no_grad", "inference")
MODE_GUARD_TEXT: Final = {
    "normal": "no guard",
    "no_grad": "inside modes.no_grad()",
    "inference": "inside modes.inference_mode()",
}


def mode_guard(mode: str) -> contextlib.AbstractContextManager[Any]:
    """The guard ``--mode`` names (``modes`` is imported on use: it depends on dispatch)."""
    import modes

    makers: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "normal": contextlib.nullcontext,
        "no_grad": modes.no_grad,
        "inference": modes.inference_mode,
    }
    return makers[mode]()


# ----------------------------------------------------------------------------------------
# Traces as text
# ----------------------------------------------------------------------------------------
def error_text(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    msg = str(exc).splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg and msg[0] else type(exc).__name__


def chain(root: DispatchEvent) -> list[str]:
    """The keys whose kernels ran for one top-level call (nested calls included), in order."""
    return [e.key for e in root.walk()]


def keys_run_lines(roots: Sequence[DispatchEvent], style: Style) -> list[str]:
    """``OP: KEY -> KEY -> ...`` per top-level call."""
    return [f"{r.op}: {' -> '.join(style.key(k) for k in chain(r))}" for r in roots]


def _styled_tree_line(line: str, style: Style) -> str:
    if not style.enabled:
        return line
    stripped = line.lstrip(" ")
    if stripped.startswith("["):
        return re.sub(r"(-> )(\w+)( \[)", lambda m: m[1] + style.key(m[2]) + m[3], line, count=1)
    if stripped.startswith("!!"):
        return style.bad(line)
    if stripped.startswith(":") or stripped.startswith("+"):
        return style.dim(line)
    return line


def tree_lines(roots: Sequence[DispatchEvent], style: Style) -> list[str]:
    """The trace tree, as ``str(trace)`` prints it."""
    return [_styled_tree_line(line, style) for r in roots for line in r.tree_lines()]


def trace_block_lines(
    roots: Sequence[DispatchEvent], style: Style, *, full_up_to: int = 8, indent: str = "  "
) -> list[str]:
    """A trace for a person: the whole tree when it has at most ``full_up_to`` top-level
    calls, otherwise a summary (calls, kernels per key, the first calls' keys); then the
    keys each top-level call ran."""
    out: list[str] = []
    if not roots:
        return [f"{indent}(no operator calls)"]
    if len(roots) <= full_up_to:
        out.extend(indent + line for line in tree_lines(roots, style))
        out.append(f"{indent}keys run:")
        out.extend(f"{indent}  {line}" for line in keys_run_lines(roots, style))
        return out
    kernels = [e.key for r in roots for e in r.walk()]
    counts = Counter(kernels)
    per_key = ", ".join(f"{style.key(k)} x{n}" for k, n in sorted(counts.items()))
    out.append(f"{indent}{len(roots)} operator calls, {len(kernels)} kernels ({per_key})")
    errors = [e for r in roots for e in r.walk() if e.error and not e.error_propagated]
    for e in errors:
        out.append(indent + style.bad(f"!! {e.op} at {e.key}: {e.error}: {e.error_message}"))
    out.append(f"{indent}keys run (first 4 calls):")
    out.extend(f"{indent}  {line}" for line in keys_run_lines(roots[:4], style))
    out.append(f"{indent}  ... and {len(roots) - 4} more")
    return out
