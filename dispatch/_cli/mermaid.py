"""A dispatch trace as a Mermaid ``sequenceDiagram``.

Participants are ``Caller`` (the Python code) and the dispatch keys whose kernels ran,
highest priority first. Each operator call is an arrow from the caller (or from the
kernel that made it) to the key whose kernel ran; each redispatch an arrow from one key
to the next (``redispatch OP``); each return a dashed arrow back, labelled with what the
kernel did (version bumps, grad_fns, views, allocations; one per ``<br/>``-separated
line), or a cross (``--x``) when the kernel raised. ``Note`` lines separate the sections of a tour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from dispatch.keys import RUNTIME_KEYS
from dispatch.trace import DispatchEvent

CALLER: Final = "Caller"
_PRIORITY: Final = {k.name: i for i, k in enumerate(reversed(RUNTIME_KEYS))}
_MAX_TEXT: Final = 120


def text(s: str) -> str:
    """Message or note text Mermaid accepts: one line, no ``;`` or ``#``, not too long."""
    s = " ".join(s.split()).replace(";", ",").replace("#", "")
    return s if len(s) <= _MAX_TEXT else s[: _MAX_TEXT - 3] + "..."


def participants(roots: Sequence[DispatchEvent]) -> list[str]:
    keys = {e.key for r in roots for e in r.walk()}
    return [CALLER, *sorted(keys, key=lambda k: _PRIORITY.get(k, len(_PRIORITY)))]


def _event_lines(e: DispatchEvent, frm: str) -> list[str]:
    label = f"redispatch {e.op}" if e.redispatch else e.op
    out = [f"    {frm}->>{e.key}: {text(label)}"]
    for c in e.children:
        out.extend(_event_lines(c, e.key))
    if e.error is not None:
        if e.error_propagated:
            why = f"{e.error} (raised below)"
        else:
            first = (e.error_message or "").splitlines()
            why = f"{e.error}: {first[0]}" if first else e.error
        out.append(f"    {e.key}--x{frm}: {text(why)}")
    else:
        done = "<br/>".join(text(str(x)) for x in e.effects) or "return"
        out.append(f"    {e.key}-->>{frm}: {done}")
    return out


def arrow_lines(roots: Sequence[DispatchEvent]) -> list[str]:
    return [line for r in roots for line in _event_lines(r, CALLER)]


def note_line(names: Sequence[str], note: str) -> str:
    where = f"over {names[0]},{names[-1]}" if len(names) > 1 else f"right of {names[0]}"
    return f"    Note {where}: {text(note)}"


def diagram(sections: Sequence[tuple[str | None, Sequence[DispatchEvent]]]) -> str:
    """One diagram: for each ``(note, top-level events)`` section, the note (if any) and
    the arrows of its calls."""
    names = participants([r for _, roots in sections for r in roots])
    lines = ["sequenceDiagram", *(f"    participant {n}" for n in names)]
    for note, roots in sections:
        if note is not None:
            lines.append(note_line(names, note))
        lines.extend(arrow_lines(roots))
    if not any(roots for _, roots in sections):
        lines.append(note_line(names, "no operator calls"))
    return "\n".join(lines)
