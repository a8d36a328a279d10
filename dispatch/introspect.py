"""Looking at operators without running them: mirrors torch's ``_dispatch_dump``,
``_dispatch_dump_table`` and ``_dispatch_has_kernel_for_dispatch_key``, plus
:func:`explain`, which does a call's key-set arithmetic and shows which kernel each
key of the result would run.

* :func:`dump` — the registrations as made, per key (alias keys too), newest first;
* :func:`dump_table` — the computed table: per runtime key, the kernel and where it
  came from (PyTorch's provenance words), fallthroughs marked;
* :func:`registered_keys` — the keys that have a registration;
* :func:`explain` — ``explain(op, *args, **kwargs)``: the dispatch key set of that
  call, how it is formed, and the kernels of its keys, highest priority first.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs

from dispatch.dispatcher import OpOverload, OpOverloadPacket, dispatcher
from dispatch.keys import DispatchKey
from dispatch.operator import KernelFunction, OperatorEntry, TableEntry
from dispatch.tls import per_thread as _per_thread
from dispatch.trace import KeySetFormation, _ks_names, keyset_formation

__all__ = [
    "Explanation",
    "KernelChoice",
    "dump",
    "dump_table",
    "explain",
    "registered_keys",
    "resolve_entry",
]

Op = str | OpOverload | OpOverloadPacket | OperatorEntry


def _qualify(name: str) -> str:
    return name if "::" in name else f"aten::{name}"


def resolve_entry(op: Op) -> OperatorEntry:
    """The operator entry of ``op``: an ``OpOverload``, an operator name
    (``"aten::add.Tensor"``, ``"aten::sum"`` for the default overload; ``"aten::"`` may be
    left out), or a packet with a default overload."""
    if isinstance(op, OperatorEntry):
        return op
    if isinstance(op, OpOverload):
        return op.entry
    name = op._qualname if isinstance(op, OpOverloadPacket) else _qualify(op)
    entry = dispatcher.find_op(name)
    if entry is not None and (entry.schema is not None or entry.kernels):
        return entry
    packet = dispatcher.packets.get(name)
    if packet is not None and packet._overloads:
        default = packet._overloads.get("default")
        if default is not None:
            return default.entry
        raise RuntimeError(
            f"operator {name} has overloads {sorted(packet._overloads)}: name one, e.g. "
            f"{name}.{sorted(packet._overloads)[0]}"
        )
    raise RuntimeError(f"operator {name} does not exist")


def _resolve_call(
    op: Op, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[OperatorEntry, tuple[Any, ...]]:
    """The entry and the bound arguments, as calling ``op(*args, **kwargs)`` would bind them
    (a packet tries its overloads in order, as ``OpOverloadPacket.__call__`` does)."""
    packet: OpOverloadPacket | None = None
    if isinstance(op, OpOverloadPacket):
        packet = op
    elif isinstance(op, str):
        name = _qualify(op)
        entry = dispatcher.find_op(name)
        if entry is None or entry.schema is None:
            packet = dispatcher.packets.get(name)
    if packet is not None:
        default = packet._overloads.get("default")
        if default is not None:
            return default.entry, default.entry.binder.bind(args, kwargs)
        errors = []
        for ov in packet._overloads.values():
            try:
                return ov.entry, ov.entry.binder.bind(args, kwargs)
            except TypeError as e:
                errors.append(str(e))
        raise TypeError(
            f"no overload of {packet._qualname} accepts these arguments:\n  " + "\n  ".join(errors)
        )
    entry = resolve_entry(op)
    if entry.binder is None:
        raise RuntimeError(f"operator {entry.name} has no schema")
    return entry, entry.binder.bind(args, kwargs)


# ----------------------------------------------------------------------------------------
# dump / dump_table / registered_keys
# ----------------------------------------------------------------------------------------
def _kernel_state(kf: KernelFunction, derived: bool = False) -> str:
    """The ``[ ... ]`` part of a dump line (torch: ``KernelFunction::dumpState``)."""
    tags = []
    if kf.is_fallthrough:
        tags.append("fallthrough")
    tags.append(kf.convention)
    if kf.with_keyset:
        tags.append("with_keyset")
    if derived:
        tags.append("derived")
    return "[ " + " ".join(tags) + " ]"


K = DispatchKey
DUMP_ORDER: Final = (
    K.BackendSelect,
    K.Python,
    K.ADInplaceOrView,
    K.AutogradOther,
    K.CPU,
    K.Meta,
    K.AutogradCPU,
    K.AutogradMeta,
    K.Autograd,
    K.CompositeImplicitAutograd,
    K.CompositeExplicitAutograd,
)
"""The keys in ``c10::DispatchKey`` enum order, which ``_dispatch_dump`` follows:
functionality keys, then per-backend runtime keys, then alias keys."""
assert set(DUMP_ORDER) == set(DispatchKey) - {K.Undefined}


def _registrations(entry: OperatorEntry) -> list[tuple[DispatchKey, KernelFunction, bool, bool]]:
    """``(key, kernel, active, derived)`` for every registration, in :data:`DUMP_ORDER`,
    newest first within a key."""
    out = []
    cia = entry.kernel_for(DispatchKey.CompositeImplicitAutograd)
    for key in DUMP_ORDER:
        kernels = entry.kernels.get(key, [])
        for i, kf in enumerate(kernels):
            out.append((key, kf, i == 0, False))
        derived = entry.derived.get(key)
        if derived is not None and cia is None:
            # PyTorch generates ADInplaceOrView kernels only for non-composite operators
            # (OperatorEntry rule 1b); one registered to the key directly shadows it
            out.append((key, derived, not kernels, True))
    return out


def dump(op: Op) -> str:
    """``torch._C._dispatch_dump``: the operator's name, schema and every registration as
    made, one line per kernel (``KEY[alias]: <where> :: <kernel> [ <state> ]``), keys in
    ``c10::DispatchKey`` order; a kernel shadowed by a newer one on the same key is marked
    ``(inactive)``. The ADInplaceOrView kernel derived from the schema of a non-composite
    operator is listed as a registration (``derived``), as PyTorch's generated ones are."""
    entry = resolve_entry(op)
    lines = [f"name: {entry.name}"]
    if entry.schema is not None:
        lines.append(f"schema: {entry.schema}")
        lines.append(f"debug: {entry.debug}")
        lines.append("alias analysis kind: FROM_SCHEMA")
    else:
        lines.append("schema: (none)")
    for key, kf, active, derived in _registrations(entry):
        alias = "[alias]" if key.is_alias else ""
        inactive = "" if active else " (inactive)"
        lines.append(
            f"{key.name}{alias}{inactive}: {kf.debug} :: {kf.display_name} "
            f"{_kernel_state(kf, derived)}"
        )
    return "\n".join(lines) + "\n"


def registered_keys(op: Op) -> list[DispatchKey]:
    """The keys (runtime and alias) with a registration for ``op``, in torch's enum order
    (``_dispatch_has_kernel_for_dispatch_key`` is true for exactly these) — including the
    ADInplaceOrView kernel derived from the schema when it is used (PyTorch's code
    generator registers one for its own operators; see docs/divergences.md for custom
    operators)."""
    seen: list[DispatchKey] = []
    for key, _, active, _ in _registrations(resolve_entry(op)):
        if active and key not in seen:
            seen.append(key)
    return seen


def dump_table(op: Op, *, missing: bool = False) -> str:
    """``torch._C._dispatch_dump_table``: per runtime key (``Undefined`` first), the
    kernel that runs and where it came from — ``KEY: [fallthrough ]<where> [provenance]``.
    Keys without a kernel are left out as in torch; ``missing=True`` lists them too as
    ``KEY: (no kernel) [missing]``."""
    entry = resolve_entry(op)
    if not missing:
        return entry.dump_table()
    lines = []
    for e in entry.table:
        if e.kernel is None:
            lines.append(f"{e.key.name}: (no kernel) [missing]")
            continue
        ft = "fallthrough " if e.kernel.is_fallthrough else ""
        lines.append(f"{e.key.name}: {ft}{e.kernel.debug} [{e.provenance}]")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# explain
# ----------------------------------------------------------------------------------------
@attrs.frozen
class KernelChoice:
    """The table entry of one runtime key: the kernel it would run and where it came from."""

    key: str
    kernel: str | None  # None: no kernel (missing)
    provenance: str
    source: str | None  # the key the kernel was registered to
    debug: str
    fallthrough: bool

    @classmethod
    def of(cls, te: TableEntry) -> KernelChoice:
        kf = te.kernel
        return cls(
            key=te.key.name,
            kernel=None if kf is None else kf.display_name,
            provenance=te.provenance,
            source=None if te.source is None else te.source.name,
            debug="" if kf is None else kf.debug,
            fallthrough=kf is not None and kf.is_fallthrough,
        )

    def __str__(self) -> str:
        if self.kernel is None:
            return f"{self.key}: no kernel [missing] -> NotImplementedError"
        via = f", from {self.source}" if self.source is not None and self.source != self.key else ""
        ft = "fallthrough " if self.fallthrough else ""
        return f"{self.key}: {ft}{self.kernel} [{self.provenance}{via}]"

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelChoice:
        return cls(**d)


@attrs.frozen
class Explanation:
    """What ``dispatch.explain(op, *args, **kwargs)`` found: the call's key-set arithmetic
    (:class:`~dispatch.trace.KeySetFormation`), the key whose kernel runs first, and the
    kernel every key of the key set would run, highest priority first (a kernel that
    redispatches below itself reaches the next one; whether it does is up to the kernel)."""

    op: str
    formation: KeySetFormation
    key: str  # the key whose kernel runs first (Undefined for an empty key set)
    first: KernelChoice
    below: tuple[KernelChoice, ...]  # the other keys of the key set, highest first
    masked: tuple[KernelChoice, ...]  # keys the fallthrough mask removed (never run)
    grad_mode: bool
    inference_mode: bool

    @property
    def keyset(self) -> Any:
        return self.formation.final

    @property
    def kernels(self) -> tuple[KernelChoice, ...]:
        """Every key of the key set, highest first (``first`` and then ``below``)."""
        return (self.first, *self.below) if self.key != "Undefined" else (self.first,)

    def lines(self) -> list[str]:
        out = [
            f"{self.op}: grad mode {'on' if self.grad_mode else 'off'}, inference mode "
            f"{'on' if self.inference_mode else 'off'}"
        ]
        out.extend(self.formation.lines())
        if self.masked:
            out.append(
                "  (fallthrough keys removed from this call: "
                + ", ".join(c.key for c in self.masked)
                + ")"
            )
        out.append(f"runs first: {self.first}")
        if self.below:
            out.append("below it, each reached if the kernel above redispatches:")
            out.extend(f"  {c}" for c in self.below)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "formation": self.formation.to_dict(),
            "key": self.key,
            "keyset": _ks_names(self.formation.final),
            "first": self.first.to_dict(),
            "below": [c.to_dict() for c in self.below],
            "masked": [c.to_dict() for c in self.masked],
            "grad_mode": self.grad_mode,
            "inference_mode": self.inference_mode,
        }

    to_dict = as_dict

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.as_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        return cls(
            op=d["op"],
            formation=KeySetFormation.from_dict(d["formation"]),
            key=d["key"],
            first=KernelChoice.from_dict(d["first"]),
            below=tuple(KernelChoice.from_dict(c) for c in d["below"]),
            masked=tuple(KernelChoice.from_dict(c) for c in d["masked"]),
            grad_mode=d["grad_mode"],
            inference_mode=d["inference_mode"],
        )

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(json.loads(text))


def explain(op: Op, *args: Any, **kwargs: Any) -> Explanation:
    """The dispatch of ``op(*args, **kwargs)`` in the current thread-local state, without
    running it: the key set (tensor arguments | TLS included - TLS excluded -
    fallthrough keys), the key whose kernel runs first and what each key would run."""
    entry, bound = _resolve_call(op, args, kwargs)
    return explanation_for(
        entry,
        keyset_formation(entry, bound),
        _per_thread.state.grad_mode,
        _per_thread.state.inference_mode,
    )


def explanation_for(
    entry: OperatorEntry, formation: KeySetFormation, grad_mode: bool, inference_mode: bool
) -> Explanation:
    """The kernel each key of ``formation``'s final set would run, highest first."""
    table = entry.table
    final = formation.final
    choices = [KernelChoice.of(table[k.value]) for k in reversed(list(final))]
    first = choices[0] if choices else KernelChoice.of(table[0])
    return Explanation(
        op=entry.name,
        formation=formation,
        key=final.highest_priority_key().name,
        first=first,
        below=tuple(choices[1:]),
        masked=tuple(KernelChoice.of(table[k.value]) for k in reversed(list(formation.masked))),
        grad_mode=grad_mode,
        inference_mode=inference_mode,
    )
