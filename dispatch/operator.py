"""Operators and their dispatch tables: mirrors ``c10::impl::OperatorEntry``
(aten/src/ATen/core/dispatch/OperatorEntry.cpp).

An :class:`OperatorEntry` keeps, per dispatch key (runtime or alias), the list
of kernels registered to it, newest first, and a *computed* dispatch table
with one entry per runtime key. The table is recomputed from scratch on every
registration and deregistration — with eight runtime keys that costs less than
PyTorch's incremental update, and it can never go stale (PyTorch's can: see
reference (f).10 and docs/divergences.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from dispatch.keys import (
    BACKEND_FOR_AUTOGRAD_KEY,
    KEY_BY_INDEX,
    NUM_RUNTIME_KEYS,
    RUNTIME_KEYS,
    DispatchKey,
)
from dispatch.keyset import RAW_AUTOGRAD, RAW_BACKENDS, RAW_FULL, RAW_MATH

if TYPE_CHECKING:
    from dispatch.schema import FunctionSchema

__all__ = ["KernelFunction", "OperatorEntry", "TableEntry", "fallthrough_kernel"]


def fallthrough_kernel(*args: Any, **kwargs: Any) -> Any:
    """Register this to make a key a no-op for an operator: the dispatcher masks
    the key out before the lookup, so the call goes straight to the next key.
    Mirrors ``torch.library.fallthrough_kernel``."""
    raise NotImplementedError("fallthrough_kernel() should never be called")


@attrs.frozen(eq=False)
class KernelFunction:
    """One registration: ``c10::KernelFunction`` plus its debug string.

    ``func`` is what was registered; ``convention`` says how to call it:

    * ``"full"`` — dispatchsim's own kernels: ``func([ks,] *args)`` with
      ``args`` the full argument tuple in schema order and ``ks`` a raw int;
    * ``"python"`` — a user kernel, called as torch.library calls it:
      positional arguments positionally, keyword-only ones by keyword, and a
      :class:`DispatchKeySet` first when ``with_keyset``;
    * ``"fallback"`` — a backend fallback: ``func([ks,] op, *args, **kwargs)``;
    * ``"fallback_full"`` — dispatchsim's own fallbacks: ``func(ks, op, *args)``
      with the full argument tuple.
    """

    func: Callable[..., Any]
    with_keyset: bool
    debug: str
    convention: str = "python"
    is_fallthrough: bool = False
    name: str = ""

    @property
    def display_name(self) -> str:
        return self.name or getattr(self.func, "__qualname__", repr(self.func))


@attrs.frozen
class TableEntry:
    """A computed dispatch-table entry and why it was chosen.

    ``provenance`` uses PyTorch's words: ``kernel``, ``default backend kernel``,
    ``math kernel``, ``autograd kernel``, ``backend fallback``, ``missing``.
    ``source`` is the key the kernel was registered to (an alias key for
    alias-derived entries, the runtime key itself for a fallback).
    """

    key: DispatchKey
    kernel: KernelFunction | None
    provenance: str
    source: DispatchKey | None

    @property
    def is_fallthrough(self) -> bool:
        return self.kernel is not None and self.kernel.is_fallthrough

    @property
    def is_missing(self) -> bool:
        return self.kernel is None


# Index i of a table is runtime key KEY_BY_INDEX[i]; 0 is Undefined.
TABLE_SIZE: Final = NUM_RUNTIME_KEYS + 1


class OperatorEntry:
    """Kernels per key and the computed dispatch table of one operator.

    The dispatcher's hot path reads :attr:`dispatch_state` — one tuple
    ``(non_fallthrough_mask, calls, wants_keyset, leading_tensors)`` replaced whole on
    every change — so that a concurrent call never sees half of an update.
    """

    __slots__ = (
        "__weakref__",
        "binder",
        "debug",
        "derived",
        "dispatch_state",
        "extra",
        "handle",
        "kernels",
        "name",
        "schema",
        "table",
    )

    def __init__(self, name: str) -> None:
        self.name = name  # "ns::op.overload" (no ".overload" when it is "")
        self.schema: FunctionSchema | None = None
        self.debug = ""
        self.kernels: dict[DispatchKey, list[KernelFunction]] = {}
        # Kernels derived from the schema at def() time (the generic ADInplaceOrView kernel).
        self.derived: dict[DispatchKey, KernelFunction] = {}
        self.table: tuple[TableEntry, ...] = ()
        self.dispatch_state: tuple[int, tuple[Callable[..., Any], ...], tuple[bool, ...], int] = (
            RAW_FULL,
            (),
            (),
            0,
        )
        self.binder: Any = None  # set by the dispatcher once a schema is known
        self.extra: dict[str, Any] = {}  # per-operator data kernels attach (e.g. view kind)
        self.handle: Any = None  # the public OpOverload, set by the dispatcher

    def __repr__(self) -> str:
        return f"OperatorEntry({self.name})"

    # -- registration ----------------------------------------------------------
    def has_kernel_for(self, key: DispatchKey) -> bool:
        return bool(self.kernels.get(key))

    def kernel_for(self, key: DispatchKey) -> KernelFunction | None:
        ks = self.kernels.get(key)
        return ks[0] if ks else None

    def add_kernel(self, key: DispatchKey, kernel: KernelFunction) -> None:
        self.kernels.setdefault(key, []).insert(0, kernel)

    def remove_kernel(self, key: DispatchKey, kernel: KernelFunction) -> None:
        lst = self.kernels[key]
        lst.remove(kernel)
        if not lst:
            del self.kernels[key]

    # -- table computation -----------------------------------------------------
    def compute_entry(
        self, key: DispatchKey, fallbacks: dict[DispatchKey, KernelFunction]
    ) -> TableEntry:
        """``computeDispatchTableEntryWithDebug``: the first rule that matches wins.

        1. a kernel registered directly to ``key``                 -> "kernel"
        1b. a kernel derived from the schema for ``key`` (ADInplaceOrView of
            an op with alias annotations), unless the op has a
            CompositeImplicitAutograd kernel — PyTorch generates
            ADInplaceOrView kernels only for non-composite ops      -> "kernel"
        2.2 CompositeExplicitAutograd, if ``key`` is a backend key
            (or Undefined)                                          -> "default backend kernel"
        2.3 CompositeImplicitAutograd, if ``key`` is a backend or autograd
            key (or Undefined) — for an autograd key only when neither its
            backend key nor CompositeExplicitAutograd has a kernel  -> "math kernel"
        2.4 Autograd, if ``key`` is an autograd key                  -> "autograd kernel"
        3. the backend fallback registered for ``key``              -> "backend fallback"
        4. nothing                                                  -> "missing"
        """
        K = DispatchKey
        bit = key.bit
        undefined = key is K.Undefined
        # 1.
        direct = self.kernel_for(key)
        if direct is not None:
            return TableEntry(key, direct, "kernel", key)
        cia = self.kernel_for(K.CompositeImplicitAutograd)
        # 1b.
        derived = self.derived.get(key)
        if derived is not None and cia is None:
            return TableEntry(key, derived, "kernel", key)
        # 2.2
        cea = self.kernel_for(K.CompositeExplicitAutograd)
        if cea is not None and (undefined or bit & RAW_BACKENDS):
            return TableEntry(key, cea, "default backend kernel", K.CompositeExplicitAutograd)
        # 2.3
        if cia is not None and (undefined or bit & RAW_MATH):
            backend = BACKEND_FOR_AUTOGRAD_KEY.get(key)
            has_backend_kernel = cea is not None or (
                backend is not None and self.has_kernel_for(backend)
            )
            if not has_backend_kernel:
                return TableEntry(key, cia, "math kernel", K.CompositeImplicitAutograd)
        # 2.4
        if bit & RAW_AUTOGRAD:
            ag = self.kernel_for(K.Autograd)
            if ag is not None:
                return TableEntry(key, ag, "autograd kernel", K.Autograd)
        # 3.
        fb = fallbacks.get(key)
        if fb is not None:
            return TableEntry(key, fb, "backend fallback", key)
        # 4.
        return TableEntry(key, None, "missing", None)

    def compute_table(self, fallbacks: dict[DispatchKey, KernelFunction]) -> tuple[TableEntry, ...]:
        return tuple(self.compute_entry(k, fallbacks) for k in KEY_BY_INDEX)

    def install_table(
        self,
        table: tuple[TableEntry, ...],
        make_call: Callable[[OperatorEntry, TableEntry], tuple[Callable[..., Any], bool]],
    ) -> None:
        """Publish a computed table: one atomic assignment of the hot-path tuple."""
        mask = RAW_FULL
        calls: list[Callable[..., Any]] = []
        wants: list[bool] = []
        for entry in table:
            if entry.is_fallthrough:
                mask &= ~entry.key.bit
            fn, wk = make_call(self, entry)
            calls.append(fn)
            wants.append(wk)
        self.table = table
        self.dispatch_state = (mask, tuple(calls), tuple(wants), self._leading_tensors())

    def _leading_tensors(self) -> int:
        """1 or 2 when the tensor arguments are exactly the first one or two, required
        (the dispatcher then reads their key sets directly); 0 otherwise."""
        binder = self.binder
        if binder is None or binder.tensorlist_pos or binder.tensor_pos not in ((0,), (0, 1)):
            return 0
        args = binder.schema.arguments
        if any(args[i].is_optional for i in binder.tensor_pos):
            return 0
        return len(binder.tensor_pos)

    @property
    def non_fallthrough_mask(self) -> int:
        return self.dispatch_state[0]

    def available_keys(self) -> list[DispatchKey]:
        """Runtime keys with a non-missing entry, lowest first (PyTorch's error lists them)."""
        return [e.key for e in self.table[1:] if not e.is_missing]

    def dump_table(self) -> str:
        """``_dispatch_dump_table``: one ``Key: [fallthrough ]registered at ... [provenance]`` line per
        runtime key that has an entry."""
        lines = []
        for e in self.table:
            if e.kernel is None:
                continue
            ft = "fallthrough " if e.kernel.is_fallthrough else ""
            lines.append(f"{e.key.name}: {ft}{e.kernel.debug} [{e.provenance}]")
        return "\n".join(lines) + "\n"


assert len(RUNTIME_KEYS) == NUM_RUNTIME_KEYS
