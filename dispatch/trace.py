"""Dispatch traces: what ``TORCH_SHOW_DISPATCH_TRACE`` prints in a debug build of
PyTorch (aten/src/ATen/core/dispatch/Dispatcher.h ``_print_dispatch_trace``),
recorded as data.

``with dispatch.trace() as tr: ...`` records every operator call and
redispatch made on this thread: the operator, the key set it was dispatched
with, the key whose kernel ran and where that kernel came from. ``str(tr)`` is
an indented tree. When no trace is active the dispatcher pays one ``is None``
check per call.
"""

from __future__ import annotations

from typing import Any

import attrs

from dispatch.dispatcher import run_entry
from dispatch.keys import KEY_BY_INDEX
from dispatch.keyset import DispatchKeySet
from dispatch.operator import OperatorEntry
from dispatch.tls import state as _tls

__all__ = ["DispatchEvent", "Trace", "trace"]


@attrs.define
class DispatchEvent:
    """One operator call or redispatch."""

    op: str
    keyset: DispatchKeySet
    key: str
    provenance: str
    redispatch: bool
    depth: int
    children: list[DispatchEvent] = attrs.field(factory=list)
    error: str | None = None

    def __str__(self) -> str:
        kind = "redispatch" if self.redispatch else "call"
        line = f"{'  ' * self.depth}[{kind}] {self.op} -> {self.key} [{self.provenance}]  ks={self.keyset}"
        if self.error:
            line += f"  !! {self.error}"
        return line


class Trace:
    """The recorder installed in the thread-local state while a trace is active."""

    def __init__(self) -> None:
        self.roots: list[DispatchEvent] = []
        self._stack: list[DispatchEvent] = []
        self._prev: Any = None

    @property
    def events(self) -> list[DispatchEvent]:
        """Every event, in call order (pre-order over the tree)."""
        out: list[DispatchEvent] = []

        def walk(evs: list[DispatchEvent]) -> None:
            for e in evs:
                out.append(e)
                walk(e.children)

        walk(self.roots)
        return out

    def keys_run(self) -> list[tuple[str, str]]:
        """(operator, key) for every kernel that ran, in order."""
        return [(e.op, e.key) for e in self.events]

    def on_call(
        self, entry: OperatorEntry, args: tuple[Any, ...], ks: int, redispatch: bool
    ) -> Any:
        i = ks.bit_length()
        te = entry.table[i]
        ev = DispatchEvent(
            op=entry.name,
            keyset=DispatchKeySet.from_raw(ks),
            key=KEY_BY_INDEX[i].name,
            provenance=te.provenance,
            redispatch=redispatch,
            depth=len(self._stack),
        )
        (self._stack[-1].children if self._stack else self.roots).append(ev)
        self._stack.append(ev)
        try:
            return run_entry(entry, ks, args)
        except BaseException as e:
            ev.error = f"{type(e).__name__}"
            raise
        finally:
            self._stack.pop()

    def __enter__(self) -> Trace:
        self._prev = _tls.tracer
        _tls.tracer = self
        return self

    def __exit__(self, *exc: object) -> None:
        _tls.tracer = self._prev

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.events)


def trace() -> Trace:
    """Record the dispatch of every operator call in the ``with`` block."""
    return Trace()
