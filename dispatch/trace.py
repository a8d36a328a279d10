"""Dispatch traces: what ``TORCH_SHOW_DISPATCH_TRACE`` prints in a debug build of
PyTorch (aten/src/ATen/core/dispatch/Dispatcher.h ``_print_dispatch_trace``),
recorded as data.

``with dispatch.trace() as tr: ...`` records every operator call and redispatch
made on this thread, as a tree of :class:`DispatchEvent` (a redispatch is a
child of the kernel that made it). Each event holds

* the operator and overload, the key set it was dispatched with and how that
  key set was formed (:class:`KeySetFormation`: the tensor arguments' key sets,
  TLS included, TLS excluded, the operator's fallthrough keys);
* the key whose kernel ran and where that kernel came from (the provenance
  words of ``dump_table``: ``kernel``, ``autograd kernel``, ``math kernel``,
  ``default backend kernel``, ``backend fallback``, ``missing``);
* what that kernel did (:data:`Effect` records: :class:`GradFnRecorded`,
  :class:`SavedVariableRecorded`, :class:`VersionBump`, :class:`ViewTracked`,
  :class:`TensorAllocated`), and the error it raised, if any.

``str(tr)`` is an indented tree, ``tr.to_json()`` the same as JSON
(:meth:`Trace.from_json` reads it back), ``tr.events`` every event in call order.
``DISPATCHSIM_SHOW_DISPATCH_TRACE=1`` in the environment prints the same tree to
stderr as calls happen (read when ``dispatch`` is imported).

How effects are found: the recorder looks at the call's tensor arguments before
the kernel runs and at them and the returned tensors after, and subtracts what the
kernels below (its children) already accounted for. No kernel reports anything, so
when no trace is active the dispatcher pays one ``tracer is not None`` check per
call and redispatch, and nothing else. Effects are read from the tensors' raw
fields (never through a property that could regenerate a view's ``grad_fn``), so
tracing changes nothing it observes.

Recording is per thread (the recorder lives in the thread-local state). Traces
nest: an inner ``with dispatch.trace()`` records the calls made inside it, and so
does every trace around it, each with its own tree.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, ClassVar, Final, TypeAlias

import attrs
import numpy as np

from dispatch import dispatcher as _dispatcher
from dispatch.dispatcher import run_entry
from dispatch.keys import KEY_BY_INDEX, DispatchKey
from dispatch.keyset import RAW_AUTOGRAD_WITH_ADINPLACEORVIEW as _AUTOGRAD_RELATED
from dispatch.keyset import RAW_FULL, DispatchKeySet
from dispatch.operator import OperatorEntry, TableEntry
from dispatch.tensorimpl import Tensor
from dispatch.tls import per_thread as _per_thread

__all__ = [
    "ArgKeySet",
    "DispatchEvent",
    "Effect",
    "GradFnRecorded",
    "KeySetFormation",
    "SavedVariableRecorded",
    "TensorAllocated",
    "Trace",
    "VersionBump",
    "ViewTracked",
    "keyset_formation",
    "trace",
]

ENV_VAR: Final = "DISPATCHSIM_SHOW_DISPATCH_TRACE"


def _ks_text(ks: DispatchKeySet) -> str:
    """``{CPU, ADInplaceOrView}``: a key set's keys, lowest priority first (as torch prints)."""
    return "{" + ", ".join(k.name for k in ks) + "}"


def _ks_names(ks: DispatchKeySet) -> list[str]:
    return [k.name for k in ks]


def _ks_from(names: Sequence[str]) -> DispatchKeySet:
    return DispatchKeySet([DispatchKey.parse(n) for n in names])


def _opt_ks(value: Any) -> DispatchKeySet | None:
    return None if value is None else _ks_from(value)


# ----------------------------------------------------------------------------------------
# How a key set was formed
# ----------------------------------------------------------------------------------------
@attrs.frozen
class ArgKeySet:
    """One tensor argument's contribution to a call's key set."""

    name: str  # the schema argument ("self", "other", "tensors[1]")
    keyset: DispatchKeySet
    tensor: str | None = None  # the trace's label of the tensor ("t0"); None outside a trace
    wrapped_number: bool = False  # a Python number the binder wrapped into a 0-dim tensor

    def __str__(self) -> str:
        who = self.name if self.tensor is None else f"{self.name}={self.tensor}"
        wrapped = " (wrapped number)" if self.wrapped_number else ""
        return f"{who}{wrapped} {_ks_text(self.keyset)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keyset": _ks_names(self.keyset),
            "tensor": self.tensor,
            "wrapped_number": self.wrapped_number,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArgKeySet:
        return cls(d["name"], _ks_from(d["keyset"]), d["tensor"], d["wrapped_number"])


@attrs.frozen
class KeySetFormation:
    """The key-set arithmetic of one dispatch, in ``DispatchKeySet`` parts.

    A call (``Dispatcher::call``, ``DispatchKeyExtractor``)::

        final = ((tensors | included) - excluded) - fallthrough

    A redispatch reads no TLS: ``final = requested - fallthrough``, where
    ``requested`` is the key set the kernel handed to ``redispatch`` (``included`` and
    ``excluded`` are still recorded: they are what the kernels below will see).
    ``fallthrough`` is every key whose table entry is a fallthrough (the complement of
    the operator's non-fallthrough mask).
    """

    kind: str  # "call" or "redispatch"
    arguments: tuple[ArgKeySet, ...]
    tensors: DispatchKeySet  # union of the arguments' key sets
    included: DispatchKeySet
    excluded: DispatchKeySet
    fallthrough: DispatchKeySet
    final: DispatchKeySet
    requested: DispatchKeySet | None = None

    def compute(self) -> DispatchKeySet:
        """The final key set, recomputed from the parts with DispatchKeySet algebra."""
        if self.kind == "redispatch":
            assert self.requested is not None
            return self.requested - self.fallthrough
        return ((self.tensors | self.included) - self.excluded) - self.fallthrough

    @property
    def masked(self) -> DispatchKeySet:
        """Keys the fallthrough mask removed from this dispatch (skipped, never run)."""
        before = self.requested if self.kind == "redispatch" else self.tensors | self.included
        assert before is not None
        return (before - self.excluded if self.kind == "call" else before) & self.fallthrough

    @property
    def highest_key(self) -> str:
        return self.final.highest_priority_key().name

    def __str__(self) -> str:
        """One line: ``(self=t0 {..} | other=t1 {..}) | included {..} - excluded {..} -
        fallthrough {..} = {..}``."""
        if self.kind == "redispatch":
            assert self.requested is not None
            return (
                f"requested {_ks_text(self.requested)} - fallthrough {_ks_text(self.fallthrough)}"
                f" = {_ks_text(self.final)}"
            )
        args = " | ".join(str(a) for a in self.arguments) or "no tensors"
        return (
            f"({args}) | included {_ks_text(self.included)} - excluded "
            f"{_ks_text(self.excluded)} - fallthrough {_ks_text(self.fallthrough)}"
            f" = {_ks_text(self.final)}"
        )

    def lines(self) -> list[str]:
        """The arithmetic one operand per line (``dispatch.explain`` prints this)."""
        out: list[str] = []
        if self.kind == "redispatch":
            assert self.requested is not None
            out.append(f"  requested key set   {_ks_text(self.requested)}")
        else:
            if not self.arguments:
                out.append("  tensor arguments    (none)")
            for i, a in enumerate(self.arguments):
                head = "  tensor arguments    " if i == 0 else "                      "
                out.append(f"{head}{a}")
            out.append(f"  union               {_ks_text(self.tensors)}")
            out.append(f"| TLS included        {_ks_text(self.included)}")
            out.append(f"- TLS excluded        {_ks_text(self.excluded)}")
        out.append(f"- fallthrough keys    {_ks_text(self.fallthrough)}")
        out.append(f"= dispatch key set    {_ks_text(self.final)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arguments": [a.to_dict() for a in self.arguments],
            "tensors": _ks_names(self.tensors),
            "included": _ks_names(self.included),
            "excluded": _ks_names(self.excluded),
            "fallthrough": _ks_names(self.fallthrough),
            "requested": None if self.requested is None else _ks_names(self.requested),
            "final": _ks_names(self.final),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeySetFormation:
        return cls(
            kind=d["kind"],
            arguments=tuple(ArgKeySet.from_dict(a) for a in d["arguments"]),
            tensors=_ks_from(d["tensors"]),
            included=_ks_from(d["included"]),
            excluded=_ks_from(d["excluded"]),
            fallthrough=_ks_from(d["fallthrough"]),
            final=_ks_from(d["final"]),
            requested=_opt_ks(d["requested"]),
        )


def tensor_arguments(entry: OperatorEntry, args: Sequence[Any]) -> list[tuple[str, Tensor]]:
    """``(argument name, tensor)`` for every tensor among a bound call's arguments
    (a list argument's elements as ``name[i]``), in schema order."""
    binder = entry.binder
    if binder is None:
        return []
    names = binder.names
    out: list[tuple[str, Tensor]] = []
    for i in sorted(binder.tensor_pos + binder.tensorlist_pos):
        v = args[i]
        if v is None:
            continue
        if isinstance(v, list | tuple):
            out.extend((f"{names[i]}[{j}]", t) for j, t in enumerate(v) if t is not None)
        else:
            out.append((names[i], v))
    return out


def keyset_formation(
    entry: OperatorEntry,
    args: Sequence[Any],
    requested: int | None = None,
    label: Callable[[Tensor], str] | None = None,
    tensors: Sequence[tuple[str, Tensor]] | None = None,
) -> KeySetFormation:
    """The key-set arithmetic the dispatcher does for ``entry`` called with the bound
    ``args`` now (``requested`` given: a redispatch with that raw key set), computed
    the way ``dispatcher.call`` / ``redispatch_raw`` compute it."""
    if tensors is None:
        tensors = tensor_arguments(entry, args)
    s = _per_thread.state
    mask = entry.dispatch_state[0]
    union = 0
    parts = []
    for name, t in tensors:
        union |= t._keys
        parts.append(
            ArgKeySet(
                name,
                DispatchKeySet.from_raw(t._keys),
                None if label is None else label(t),
                t._is_wrapped_number,
            )
        )
    final = (union | s.included) & ~s.excluded & mask if requested is None else requested & mask
    return KeySetFormation(
        kind="call" if requested is None else "redispatch",
        arguments=tuple(parts),
        tensors=DispatchKeySet.from_raw(union),
        included=DispatchKeySet.from_raw(s.included),
        excluded=DispatchKeySet.from_raw(s.excluded),
        fallthrough=DispatchKeySet.from_raw(RAW_FULL & ~mask),
        final=DispatchKeySet.from_raw(final),
        requested=None if requested is None else DispatchKeySet.from_raw(requested & RAW_FULL),
    )


# ----------------------------------------------------------------------------------------
# What a kernel did
# ----------------------------------------------------------------------------------------
def _tuple_of_edges(value: Any) -> tuple[tuple[str | None, int], ...]:
    return tuple((None if n is None else str(n), int(nr)) for n, nr in value)


def _int_tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in value)


_EFFECT_TYPES: dict[str, type[Any]] = {}


def _effect(cls: type[Any]) -> type[Any]:
    _EFFECT_TYPES[cls.__name__] = cls
    return cls


class _EffectBase:
    """Shared JSON helpers of the effect records."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)  # type: ignore[arg-type]
        for k, v in d.items():
            if isinstance(v, DispatchKeySet):
                d[k] = _ks_names(v)
            elif isinstance(v, tuple):
                d[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return {"type": type(self).__name__, **d}


@_effect
@attrs.frozen
class GradFnRecorded(_EffectBase):
    """The kernel made ``name`` the ``grad_fn`` of a tensor (``set_history`` on an
    output, ``rebase_history`` on an in-place op's ``self``; ``CopySlices`` on the base
    of a view modified in place, wrapping the op's own node)."""

    name: str
    next_functions: tuple[tuple[str | None, int], ...] = attrs.field(converter=_tuple_of_edges)
    tensor: str = ""  # which tensor: "result", "result[1]", "self", "self._base"
    tensor_id: str = ""  # the trace's label of that tensor
    wraps: str | None = None  # CopySlices: the node it routes the view's gradient through

    def __str__(self) -> str:
        nf = ", ".join(f"({n}, {nr})" for n, nr in self.next_functions)
        wraps = f" wrapping {self.wraps}" if self.wraps else ""
        return (
            f"grad_fn {self.name}{wraps} on {self.tensor} ({self.tensor_id}); next_functions ({nf})"
        )


@_effect
@attrs.frozen
class SavedVariableRecorded(_EffectBase):
    """The node just recorded saved a tensor for backward (``SavedVariable``) at this
    version of its version counter."""

    name: str  # the formula's name for it: "self", "other", "result"
    version: int
    node: str = ""
    tensor_id: str | None = None
    is_output: bool = False

    def __str__(self) -> str:
        what = "output" if self.is_output else "input"
        tid = f" ({self.tensor_id})" if self.tensor_id else ""
        return f"saved {self.node}.{self.name}{tid} at version {self.version} ({what})"


@_effect
@attrs.frozen
class VersionBump(_EffectBase):
    """The kernel moved a version counter from ``old`` to ``new`` (``increment_version``);
    views share their base's counter, so this is reported once per counter."""

    tensor: str  # the argument: "self", "out"
    old: int
    new: int
    tensor_id: str = ""

    def __str__(self) -> str:
        return f"version bump {self.tensor} ({self.tensor_id}): {self.old} -> {self.new}"


@_effect
@attrs.frozen
class ViewTracked(_EffectBase):
    """The kernel made a returned tensor a view of ``base`` (``as_view``): it shares the
    base's version counter and, if differentiable, records ``_base`` and how it was made."""

    base: str  # the argument it is a view of ("self"); "<base of self>" for a view of a view
    creation_meta: str | None  # "DEFAULT", "NO_GRAD_MODE", ...; None: not differentiable
    tensor: str = ""  # "result", "result[0]"
    tensor_id: str = ""
    base_id: str = ""  # the label of the recorded ``_base`` (the root of a view chain)
    differentiable: bool = True

    def __str__(self) -> str:
        kind = "view" if self.differentiable else "non-differentiable view"
        meta = f"; creation_meta {self.creation_meta}" if self.creation_meta is not None else ""
        return f"{kind}: {self.tensor} ({self.tensor_id}) of {self.base} ({self.base_id}){meta}"


@_effect
@attrs.frozen
class TensorAllocated(_EffectBase):
    """The kernel returned a tensor it allocated: an inference tensor (no autograd keys,
    no version counter) iff inference mode was on, a normal one otherwise. A view's new
    TensorImpl copies its base's key set (``alias_of`` names the base argument)."""

    is_inference: bool
    shape: tuple[int, ...] = attrs.field(converter=_int_tuple)
    dtype: str
    tensor: str = ""
    tensor_id: str = ""
    device: str = "cpu"
    keyset: DispatchKeySet = attrs.field(factory=DispatchKeySet)
    alias_of: str | None = None

    def __str__(self) -> str:
        kind = "inference" if self.is_inference else "normal"
        shape = "[" + ", ".join(str(d) for d in self.shape) + "]"
        alias = f", aliasing {self.alias_of}" if self.alias_of else ""
        return (
            f"allocated {self.tensor} ({self.tensor_id}): {kind} {self.dtype}{shape} "
            f"{_ks_text(self.keyset)}{alias}"
        )


Effect: TypeAlias = (
    GradFnRecorded | SavedVariableRecorded | VersionBump | ViewTracked | TensorAllocated
)


def effect_from_dict(d: dict[str, Any]) -> Effect:
    d = dict(d)
    cls = _EFFECT_TYPES[d.pop("type")]
    if "keyset" in d:
        d["keyset"] = _ks_from(d["keyset"])
    effect: Effect = cls(**d)
    return effect


# ----------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------
_ORIGIN: Final = {
    "kernel": "direct",
    "default backend kernel": "alias",
    "math kernel": "alias",
    "autograd kernel": "alias",
    "backend fallback": "fallback",
    "missing": "missing",
}


@attrs.frozen
class DispatchEvent:
    """One operator call or redispatch: the kernel of one key, and its children (the
    dispatches that kernel made)."""

    op: str  # "aten::add_.Tensor" (no ".overload" when the overload name is empty)
    keyset: DispatchKeySet
    key: str
    provenance: str  # as dump_table says it
    redispatch: bool
    depth: int
    children: tuple[DispatchEvent, ...] = ()
    error: str | None = None  # the exception's type name
    error_message: str | None = None
    error_propagated: bool = False  # raised by a dispatch below this one, not by this kernel
    formation: KeySetFormation | None = None
    kernel: str = ""  # the kernel's name
    source: str | None = None  # the key it was registered to (an alias key for alias entries)
    debug: str = ""  # where it was registered
    effects: tuple[Effect, ...] = ()

    # -- derived ------------------------------------------------------------------------
    @property
    def operator(self) -> str:
        """``aten::add_``."""
        return self.op.split(".", 1)[0] if "." in self.op.split("::", 1)[-1] else self.op

    @property
    def overload(self) -> str:
        """``Tensor`` for ``aten::add_.Tensor``; ``default`` for an empty overload name."""
        name = self.op.split("::", 1)[-1]
        return name.split(".", 1)[1] if "." in name else "default"

    @property
    def kind(self) -> str:
        return "redispatch" if self.redispatch else "call"

    @property
    def origin(self) -> str:
        """Where the kernel came from: ``direct`` (registered to this key, or derived from
        the schema), ``alias`` (an alias key's kernel), ``fallback`` (a backend
        fallback) or ``missing``."""
        return _ORIGIN.get(self.provenance, self.provenance)

    def walk(self) -> Iterator[DispatchEvent]:
        """This event and every event below it, in call order."""
        yield self
        for c in self.children:
            yield from c.walk()

    # -- text ---------------------------------------------------------------------------
    def header(self) -> str:
        return (
            f"{'  ' * self.depth}[{self.kind}] {self.op} -> {self.key} [{self.provenance}]"
            f"  ks={self.keyset}"
        )

    def __str__(self) -> str:
        """The event's own line (no children, no effects)."""
        line = self.header()
        if self.error:
            line += f"  !! {self.error}"
        return line

    def opening_lines(self) -> list[str]:
        """The lines the tree shows before this event's children."""
        pad = "  " * (self.depth + 1)
        out = [self.header()]
        f = self.formation
        if f is not None and (f.kind == "call" or f.masked):
            out.append(f"{pad}: ks = {f}")
        return out

    def closing_lines(self) -> list[str]:
        """The lines the tree shows after this event's children: effects, then the error."""
        pad = "  " * (self.depth + 1)
        out = [f"{pad}+ {e}" for e in self.effects]
        if self.error is not None:
            if self.error_propagated:
                out.append(f"{pad}!! {self.error} (raised below)")
            else:
                msg = (self.error_message or "").splitlines()
                out.append(f"{pad}!! {self.error}: {msg[0] if msg else ''}".rstrip())
        return out

    def tree_lines(self) -> list[str]:
        out = self.opening_lines()
        for c in self.children:
            out.extend(c.tree_lines())
        out.extend(self.closing_lines())
        return out

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "operator": self.operator,
            "overload": self.overload,
            "kind": self.kind,
            "redispatch": self.redispatch,
            "depth": self.depth,
            "key": self.key,
            "keyset": _ks_names(self.keyset),
            "provenance": self.provenance,
            "origin": self.origin,
            "kernel": self.kernel,
            "source": self.source,
            "debug": self.debug,
            "formation": None if self.formation is None else self.formation.to_dict(),
            "effects": [e.to_dict() for e in self.effects],
            "error": self.error,
            "error_message": self.error_message,
            "error_propagated": self.error_propagated,
            "children": [c.to_dict() for c in self.children],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DispatchEvent:
        f = d.get("formation")
        return cls(
            op=d["op"],
            keyset=_ks_from(d["keyset"]),
            key=d["key"],
            provenance=d["provenance"],
            redispatch=d["redispatch"],
            depth=d["depth"],
            children=tuple(cls.from_dict(c) for c in d["children"]),
            error=d["error"],
            error_message=d["error_message"],
            error_propagated=d["error_propagated"],
            formation=None if f is None else KeySetFormation.from_dict(f),
            kernel=d["kernel"],
            source=d["source"],
            debug=d["debug"],
            effects=tuple(effect_from_dict(e) for e in d["effects"]),
        )


# ----------------------------------------------------------------------------------------
# The recorder
# ----------------------------------------------------------------------------------------
# (argument name, tensor, its version counter, the counter's version, grad_fn, _base,
#  the base's grad_fn) before the kernel ran
_Snap: TypeAlias = tuple[str, Tensor, Any, int, Any, "Tensor | None", Any]


class _Frame:
    """An event being recorded (its kernel is running)."""

    __slots__ = (
        "child_bumps",
        "child_exc",
        "children",
        "depth",
        "entry",
        "formation",
        "ks",
        "redispatch",
        "snaps",
        "te",
    )

    def __init__(
        self,
        entry: OperatorEntry,
        te: TableEntry,
        ks: int,
        redispatch: bool,
        depth: int,
        formation: KeySetFormation,
        snaps: list[_Snap],
    ) -> None:
        self.entry = entry
        self.te = te
        self.ks = ks
        self.redispatch = redispatch
        self.depth = depth
        self.formation = formation
        self.snaps = snaps
        self.children: list[DispatchEvent] = []
        # version counter id -> (counter, bumps the dispatches below accounted for)
        self.child_bumps: dict[int, tuple[Any, int]] = {}
        self.child_exc: BaseException | None = None


def _outputs(result: Any) -> list[tuple[str, Tensor]]:
    if isinstance(result, Tensor):
        return [("result", result)]
    if isinstance(result, list | tuple):
        return [(f"result[{i}]", t) for i, t in enumerate(result) if isinstance(t, Tensor)]
    return []


def _saved_variables(node: Any) -> list[tuple[str, Any]]:
    """``(name, SavedVariable)`` of a node, by duck typing (dispatch does not import the
    autograd package): formula nodes keep a dict, custom Function nodes a list."""
    saved = getattr(node, "saved_variables", None)
    if isinstance(saved, dict):
        return list(saved.items())
    lst = getattr(node, "_saved_variables", None)
    if isinstance(lst, list):
        return [(f"saved_tensors[{i}]", sv) for i, sv in enumerate(lst)]
    return []


_count_lock = threading.Lock()


def _count_recorder(delta: int) -> None:
    """Keep ``dispatcher._tracers`` (active recorders, all threads) up to date: the hot
    path looks at the thread's recorder only while it is non-zero."""
    with _count_lock:
        _dispatcher._tracers += delta


class _StderrProxy:
    """``sys.stderr`` as it is at each write (pytest's capsys replaces it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class Trace:
    """Records the dispatch of every operator call made while it is active.

    ``with Trace() as tr:`` (or ``with dispatch.trace() as tr:``) makes it the thread's
    recorder; ``stream=`` also writes the tree there as calls happen; ``keep=False``
    keeps no events (a pure printer).
    """

    def __init__(self, *, stream: IO[str] | Any | None = None, keep: bool = True) -> None:
        self.roots: list[DispatchEvent] = []
        self._stack: list[_Frame] = []
        self._prev: Any = None
        self._active = False
        self._stream = stream
        self._keep = keep
        self._labels: dict[int, tuple[weakref.ref[Tensor], str]] = {}
        self._next_label = 0
        # per top-level call: what an inner dispatch already reported (ids, objects pinned
        # so that an id cannot be reused before the call ends)
        self._claimed: set[tuple[str, int]] = set()
        self._pins: list[Any] = []

    # -- reading ------------------------------------------------------------------------
    @property
    def events(self) -> list[DispatchEvent]:
        """Every recorded event, in call order (pre-order over the tree)."""
        return [e for root in self.roots for e in root.walk()]

    def keys_run(self) -> list[tuple[str, str]]:
        """(operator, key) for every kernel that ran, in order."""
        return [(e.op, e.key) for e in self.events]

    def find(self, op: str | None = None, key: str | None = None) -> list[DispatchEvent]:
        """The events of operator ``op`` (full name, or without the overload) and/or ``key``."""
        return [
            e
            for e in self.events
            if (op is None or e.op == op or e.operator == op) and (key is None or e.key == key)
        ]

    def effects(self) -> list[tuple[DispatchEvent, Effect]]:
        """``(event, effect)`` for every effect, in the order the tree shows them."""
        out: list[tuple[DispatchEvent, Effect]] = []

        def walk(e: DispatchEvent) -> None:
            for c in e.children:
                walk(c)
            out.extend((e, x) for x in e.effects)

        for root in self.roots:
            walk(root)
        return out

    def lines(self) -> list[str]:
        return [line for root in self.roots for line in root.tree_lines()]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<dispatch.Trace: {len(self.roots)} calls, {len(self.events)} kernels>"

    def as_dict(self) -> dict[str, Any]:
        return {"calls": [r.to_dict() for r in self.roots]}

    to_dict = as_dict

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        tr = cls()
        tr.roots = [DispatchEvent.from_dict(r) for r in d["calls"]]
        return tr

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))

    # -- activation ---------------------------------------------------------------------
    def __enter__(self) -> Trace:
        if self._active:
            raise RuntimeError("this dispatch.Trace is already recording")
        _count_recorder(+1)
        self._prev = _per_thread.state.tracer
        self._active = True
        _per_thread.state.tracer = self
        return self

    def __exit__(self, *exc: object) -> None:
        _per_thread.state.tracer = self._prev
        self._prev = None
        self._active = False
        _count_recorder(-1)

    # -- recording ----------------------------------------------------------------------
    def _label(self, t: Tensor) -> str:
        k = id(t)
        known = self._labels.get(k)
        if known is not None and known[0]() is t:
            return known[1]
        label = f"t{self._next_label}"
        self._next_label += 1
        labels = self._labels

        def forget(ref: weakref.ref[Tensor], k: int = k) -> None:
            known = labels.get(k)
            if known is not None and known[0] is ref:
                del labels[k]

        labels[k] = (weakref.ref(t, forget), label)
        return label

    def _claim(self, kind: str, obj: Any) -> bool:
        """True the first time ``obj`` is reported as ``kind`` during this top-level call."""
        key = (kind, id(obj))
        if key in self._claimed:
            return False
        self._claimed.add(key)
        self._pins.append(obj)
        return True

    def _write(self, lines: list[str]) -> None:
        stream = self._stream
        if stream is not None and lines:
            stream.write("".join(line + "\n" for line in lines))

    def on_call(self, entry: OperatorEntry, args: tuple[Any, ...], ks: int, requested: Any) -> Any:
        """Called by the dispatcher instead of running the kernel: ``ks`` is the final key
        set, ``requested`` the key set a redispatch was given (None for a call)."""
        te = entry.table[ks.bit_length()]
        tensors = tensor_arguments(entry, args)
        formation = keyset_formation(entry, args, requested, self._label, tensors)
        snaps: list[_Snap] = []
        for name, t in tensors:
            vc = t._version_counter
            base = t._base
            snaps.append(
                (
                    name,
                    t,
                    vc,
                    vc.version if vc is not None else 0,
                    t._grad_fn,
                    base,
                    base._grad_fn if base is not None else None,
                )
            )
        frame = _Frame(entry, te, ks, requested is not None, len(self._stack), formation, snaps)
        if self._stream is not None:
            probe = self._event(frame, (), None, False)
            self._write(probe.opening_lines())
        self._stack.append(frame)
        result: Any = None
        exc: BaseException | None = None
        try:
            prev = self._prev
            if prev is not None:
                result = prev.on_call(entry, args, ks, requested)
            else:
                result = run_entry(entry, ks, args)
            return result
        except BaseException as e:
            exc = e
            raise
        finally:
            self._stack.pop()
            effects = self._effects(frame, result, exc is None)
            event = self._event(frame, effects, exc, exc is not None and exc is frame.child_exc)
            if self._stack:
                parent = self._stack[-1]
                parent.children.append(event)
                if exc is not None:
                    parent.child_exc = exc
            else:
                if self._keep:
                    self.roots.append(event)
                self._claimed.clear()
                self._pins.clear()
            self._write(event.closing_lines())

    def _event(
        self,
        frame: _Frame,
        effects: Sequence[Effect],
        exc: BaseException | None,
        propagated: bool,
    ) -> DispatchEvent:
        te = frame.te
        kf = te.kernel
        return DispatchEvent(
            op=frame.entry.name,
            keyset=frame.formation.final,
            key=KEY_BY_INDEX[frame.ks.bit_length()].name,
            provenance=te.provenance,
            redispatch=frame.redispatch,
            depth=frame.depth,
            children=tuple(frame.children),
            error=None if exc is None else type(exc).__name__,
            error_message=None if exc is None else str(exc),
            error_propagated=propagated,
            formation=frame.formation,
            kernel="" if kf is None else kf.display_name,
            source=None if te.source is None else te.source.name,
            debug="" if kf is None else kf.debug,
            effects=tuple(effects),
        )

    def _effects(self, frame: _Frame, result: Any, ok: bool) -> list[Effect]:
        effects: list[Effect] = []
        label = self._label
        # 1. version bumps, once per counter; what the dispatches below did is theirs
        totals: dict[int, tuple[Any, int]] = {}
        for name, t, vc, before, *_ in frame.snaps:
            if vc is None or id(vc) in totals:
                continue
            total = vc.version - before
            totals[id(vc)] = (vc, total)
            below = frame.child_bumps.get(id(vc), (vc, 0))[1]
            own = total - below
            if own:
                effects.append(VersionBump(name, vc.version - own, vc.version, label(t)))
        if self._stack:  # hand the subtree's totals up (counters tracked here or below)
            up = self._stack[-1].child_bumps
            merged = dict(frame.child_bumps)
            merged.update(totals)
            for k, (vc, n) in merged.items():
                up[k] = (vc, up.get(k, (vc, 0))[1] + n)
        # 2. grad_fn set on an argument (in-place) or on its base (CopySlices)
        for name, t, _, _, grad_fn, base, base_grad_fn in frame.snaps:
            new = t._grad_fn
            if new is not None and new is not grad_fn:
                self._grad_fn(effects, new, name, t)
            b = t._base if t._base is not None else base
            if b is not None:
                nb = b._grad_fn
                if nb is not None and nb is not base_grad_fn:
                    self._grad_fn(effects, nb, f"{name}._base", b)
        if not ok:
            return effects
        # 3. returned tensors that are not arguments: allocated, made views, given a grad_fn
        arg_ids = {id(s[1]) for s in frame.snaps}
        counters = {id(s[2]): s for s in frame.snaps if s[2] is not None}
        for name, o in _outputs(result):
            if id(o) in arg_ids:
                continue
            if self._claim("alloc", o):
                alias = None
                for aname, t, *_ in frame.snaps:
                    if np.may_share_memory(o._data, t._data):
                        alias = aname
                        break
                effects.append(
                    TensorAllocated(
                        is_inference=not o._keys & _AUTOGRAD_RELATED,
                        shape=o._data.shape,
                        dtype=o.dtype.name,
                        tensor=name,
                        tensor_id=label(o),
                        device=o.device.type,
                        keyset=DispatchKeySet.from_raw(o._keys),
                        alias_of=alias,
                    )
                )
            vbase = o._base
            shared = (
                counters.get(id(o._version_counter)) if o._version_counter is not None else None
            )
            if (vbase is not None or shared is not None) and self._claim("view", o):
                if vbase is not None:
                    of = next(
                        (s[0] for s in frame.snaps if s[1] is vbase),
                        next((f"{s[0]}._base" for s in frame.snaps if s[5] is vbase), "?"),
                    )
                    effects.append(
                        ViewTracked(
                            of,
                            o._creation_meta.name,
                            tensor=name,
                            tensor_id=label(o),
                            base_id=label(vbase),
                        )
                    )
                else:
                    assert shared is not None
                    effects.append(
                        ViewTracked(
                            shared[0],
                            None,
                            tensor=name,
                            tensor_id=label(o),
                            base_id=label(shared[1]),
                            differentiable=False,
                        )
                    )
            if o._grad_fn is not None:
                self._grad_fn(effects, o._grad_fn, name, o)
        return effects

    def _grad_fn(self, effects: list[Effect], node: Any, name: str, t: Tensor) -> None:
        if not self._claim("node", node):
            return
        inner = getattr(node, "fn", None)
        wraps = inner.name() if inner is not None and hasattr(inner, "name") else None
        effects.append(
            GradFnRecorded(
                node.name(),
                tuple((None if n is None else n.name(), nr) for n, nr in node.next_functions),
                tensor=name,
                tensor_id=self._label(t),
                wraps=wraps,
            )
        )
        holder: Any = inner if wraps is not None else node
        for sname, sv in _saved_variables(holder):
            # a saved input (or leaf) is kept as the tensor itself; a saved output as a
            # snapshot of its metadata over the output's array
            data = getattr(sv, "_data", None)
            if getattr(sv, "_saved_original", False):
                st = data
            elif data is not None and data is t._data:
                st = t
            else:
                st = None
            effects.append(
                SavedVariableRecorded(
                    sname,
                    int(getattr(sv, "_saved_version", 0)),
                    node=holder.name(),
                    tensor_id=None if st is None else self._label(st),
                    is_output=bool(getattr(sv, "_is_output", False)),
                )
            )


def trace(*, stream: IO[str] | None = None) -> Trace:
    """Record the dispatch of every operator call in the ``with`` block (``stream``: also
    write the tree there as calls happen)."""
    return Trace(stream=stream)


# ----------------------------------------------------------------------------------------
# DISPATCHSIM_SHOW_DISPATCH_TRACE=1
# ----------------------------------------------------------------------------------------
def _env_enabled(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def _stderr_printer() -> Trace:
    return Trace(stream=_StderrProxy(), keep=False)


_install_lock = threading.Lock()


def install_env_printer() -> bool:
    """If ``DISPATCHSIM_SHOW_DISPATCH_TRACE`` is set, make every thread's default recorder
    one that prints the tree to stderr. Returns whether it did."""
    if not _env_enabled(os.environ.get(ENV_VAR)):
        return False
    from dispatch import tls

    with _install_lock:
        tls.set_default_tracer_factory(_stderr_printer)
        _count_recorder(+1)  # for good: every thread now has a recorder
        if _per_thread.state.tracer is None:
            _per_thread.state.tracer = _stderr_printer()
    return True
