"""Plain reference models the property tests compare dispatchsim against.

* :class:`TLSState` and :class:`GuardSpec`: what each guard does to the thread-local
  state (design.md's guard table), and :class:`GuardStack`, which enters real guards
  while keeping the model state next to them;
* :func:`expected_entry`: the dispatch table entry of one runtime key, computed from
  scratch from a list of registrations by ``OperatorEntry::computeDispatchTableEntry``'s
  precedence rules (written independently of :mod:`dispatch.operator`);
* invariant checks that hold for every tensor and every operator at every point:
  :func:`check_tensor`, :func:`check_dispatch_tables`, :func:`check_tls`.

Nothing here needs hypothesis.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import attrs

import modes
from dispatch.dispatcher import dispatcher
from dispatch.keys import AUTOGRAD_KEYS, BACKEND_FOR_AUTOGRAD_KEY, BACKEND_KEYS, DispatchKey
from dispatch.keyset import RAW_DEFAULT_EXCLUDED, RAW_DEFAULT_INCLUDED, RAW_FULL, DispatchKeySet
from dispatch.operator import KernelFunction, OperatorEntry, TableEntry
from dispatch.tensorimpl import Tensor
from dispatch.tls import per_thread as _per_thread

__all__ = [
    "GUARD_NAMES",
    "DispatchInvariantError",
    "GuardSpec",
    "GuardStack",
    "GuardStep",
    "Registration",
    "TLSState",
    "check_dispatch_tables",
    "check_tensor",
    "check_tls",
    "default_tls",
    "expected_entry",
    "run_guard_steps",
]

K = DispatchKey
ADIOV_SET = DispatchKeySet(K.ADInplaceOrView)
AUTOGRAD_SET = DispatchKeySet(*AUTOGRAD_KEYS)
_AUTOGRAD_RELATED = AUTOGRAD_SET | ADIOV_SET


class DispatchInvariantError(AssertionError):
    """A dispatch invariant does not hold. ``rule`` names the invariant; the message
    says what broke it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = rule


# ---------------------------------------------------------------------------------------
# thread-local state and guards
# ---------------------------------------------------------------------------------------
class TLSState(NamedTuple):
    """The thread-local dispatch state: what every guard edits and restores."""

    included: DispatchKeySet
    excluded: DispatchKeySet
    grad_mode: bool
    inference_mode: bool

    @classmethod
    def default(cls) -> TLSState:
        """A new thread's state: included {BackendSelect, ADInplaceOrView}, nothing
        excluded, grad mode on, inference mode off."""
        return cls(
            DispatchKeySet.from_raw(RAW_DEFAULT_INCLUDED),
            DispatchKeySet.from_raw(RAW_DEFAULT_EXCLUDED),
            True,
            False,
        )

    @classmethod
    def current(cls) -> TLSState:
        """This thread's state now."""
        s = _per_thread.state
        return cls(
            DispatchKeySet.from_raw(s.included),
            DispatchKeySet.from_raw(s.excluded),
            bool(s.grad_mode),
            bool(s.inference_mode),
        )

    def __str__(self) -> str:
        inc = ", ".join(k.name for k in self.included)
        exc = ", ".join(k.name for k in self.excluded)
        return (
            f"included={{{inc}}} excluded={{{exc}}} grad_mode={self.grad_mode} "
            f"inference_mode={self.inference_mode}"
        )


GUARD_NAMES = (
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "NoGradGuard",
    "AutoGradMode",
    "inference_mode",
    "InferenceMode",
    "AutoDispatchBelowAutograd",
    "AutoDispatchBelowADInplaceOrView",
    "AutoNonVariableTypeMode",
    "ExcludeDispatchKeyGuard",
    "IncludeDispatchKeyGuard",
)
_BOOL_GUARDS = ("set_grad_enabled", "AutoGradMode", "inference_mode", "InferenceMode")
_KEYSET_GUARDS = ("ExcludeDispatchKeyGuard", "IncludeDispatchKeyGuard")


def _check_guard(instance: GuardSpec, attribute: Any, value: Any) -> None:
    if instance.name not in GUARD_NAMES:
        raise ValueError(f"unknown guard {instance.name!r}; expected one of {GUARD_NAMES}")


@attrs.frozen(repr=False)
class GuardSpec:
    """One guard, as data: ``name`` is the ``modes`` name; ``arg`` is the bool of
    ``set_grad_enabled`` / ``AutoGradMode`` / ``inference_mode`` / ``InferenceMode``
    (default True) and the tuple of keys of the key-set guards."""

    name: str = attrs.field(validator=_check_guard)
    arg: Any = None

    def build(self) -> contextlib.AbstractContextManager[Any]:
        """A fresh guard object (a context manager)."""
        n, a = self.name, self.arg
        if n == "no_grad":
            return modes.no_grad()
        if n == "enable_grad":
            return modes.enable_grad()
        if n == "NoGradGuard":
            return modes.NoGradGuard()
        if n == "set_grad_enabled":
            return modes.set_grad_enabled(bool(a))
        if n == "AutoGradMode":
            return modes.AutoGradMode(bool(a))
        if n == "inference_mode":
            return modes.inference_mode(True if a is None else bool(a))
        if n == "InferenceMode":
            return modes.InferenceMode(True if a is None else bool(a))
        if n == "AutoDispatchBelowAutograd":
            return modes.AutoDispatchBelowAutograd()
        if n == "AutoDispatchBelowADInplaceOrView":
            return modes.AutoDispatchBelowADInplaceOrView()
        if n == "AutoNonVariableTypeMode":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return modes.AutoNonVariableTypeMode()
        if n == "ExcludeDispatchKeyGuard":
            return modes.ExcludeDispatchKeyGuard(DispatchKeySet(self.keys))
        return modes.IncludeDispatchKeyGuard(DispatchKeySet(self.keys))

    @property
    def keys(self) -> tuple[DispatchKey, ...]:
        """The keys of a key-set guard (empty for the others)."""
        if self.name not in _KEYSET_GUARDS or self.arg is None:
            return ()
        return tuple(DispatchKey.parse(k) for k in self.arg)

    def apply(self, s: TLSState) -> TLSState:
        """The model: the state inside this guard when ``s`` is the state outside."""
        n, a = self.name, self.arg
        if n in ("no_grad", "NoGradGuard"):
            return s._replace(grad_mode=False)
        if n == "enable_grad":
            return s._replace(grad_mode=True)
        if n in ("set_grad_enabled", "AutoGradMode"):
            return s._replace(grad_mode=bool(a))
        if n in ("inference_mode", "InferenceMode"):
            if a is None or a:
                return TLSState(s.included - ADIOV_SET, s.excluded | AUTOGRAD_SET, False, True)
            return TLSState(s.included | ADIOV_SET, s.excluded - AUTOGRAD_SET, True, False)
        if n == "AutoDispatchBelowAutograd":
            return s._replace(excluded=s.excluded | AUTOGRAD_SET)
        if n in ("AutoDispatchBelowADInplaceOrView", "AutoNonVariableTypeMode"):
            return s._replace(excluded=s.excluded | AUTOGRAD_SET | ADIOV_SET)
        if n == "ExcludeDispatchKeyGuard":
            return s._replace(excluded=s.excluded | DispatchKeySet(self.keys))
        return s._replace(included=s.included | DispatchKeySet(self.keys))

    @property
    def excludes_adinplaceorview(self) -> bool:
        """Whether this guard puts ADInplaceOrView into the excluded set."""
        return ADIOV_SET.raw & self.apply(TLSState.default()).excluded.raw != 0

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))  # hypothesis prints drawn values with this

    def __repr__(self) -> str:
        if self.name in _KEYSET_GUARDS:
            return f"{self.name}({[k.name for k in self.keys]})"
        if self.name in _BOOL_GUARDS and self.arg is not None:
            return f"{self.name}({bool(self.arg)})"
        return self.name

    def code(self) -> str:
        """The Python expression that builds this guard."""
        if self.name in _KEYSET_GUARDS:
            keys = ", ".join(f"DispatchKey.{k.name}" for k in self.keys)
            return f"modes.{self.name}(DispatchKeySet([{keys}]))"
        if self.name in _BOOL_GUARDS:
            return f"modes.{self.name}({True if self.arg is None else bool(self.arg)})"
        return f"modes.{self.name}()"


@attrs.frozen
class GuardStep:
    """One step of a guard sequence: ``enter`` a guard, or ``exit`` the innermost one."""

    action: str  # "enter" | "exit"
    guard: GuardSpec | None = None

    def __repr__(self) -> str:
        return f"enter {self.guard!r}" if self.action == "enter" else "exit"


class GuardStack:
    """Real guards entered and exited in stack order, with the model state next to them.

    ``model`` is the state the guard model predicts; :meth:`check` compares it with the
    real thread-local state. :meth:`close` exits every open guard (innermost first).
    """

    def __init__(self, start: TLSState | None = None) -> None:
        self._stacks: list[contextlib.ExitStack] = []
        self.guards: list[GuardSpec] = []
        self.models: list[TLSState] = [TLSState.current() if start is None else start]

    @property
    def depth(self) -> int:
        return len(self._stacks)

    @property
    def model(self) -> TLSState:
        return self.models[-1]

    def enter(self, guard: GuardSpec) -> None:
        es = contextlib.ExitStack()
        es.enter_context(guard.build())
        self._stacks.append(es)
        self.guards.append(guard)
        self.models.append(guard.apply(self.model))

    def exit(self) -> None:
        if not self._stacks:
            raise IndexError("exit() with no open guard")
        self._stacks.pop().close()
        self.guards.pop()
        self.models.pop()

    def close(self) -> None:
        while self._stacks:
            self.exit()

    def check(self) -> None:
        check_tls(self.model, self.guards)

    def __enter__(self) -> GuardStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_tls(expected: TLSState, guards: Sequence[GuardSpec] = ()) -> None:
    """Raise :class:`DispatchInvariantError` unless the thread-local state is ``expected``."""
    got = TLSState.current()
    if got != expected:
        raise DispatchInvariantError(
            "tls-model",
            f"inside {list(guards)}: thread-local state is {got}, the guard model says {expected}",
        )


def default_tls() -> contextlib.AbstractContextManager[None]:
    """A context manager that runs its body at the default thread-local state (whatever
    guards are open around it) and restores the exact previous state on exit."""
    return _default_tls()


@contextlib.contextmanager
def _default_tls() -> Iterator[None]:
    s = _per_thread.state
    saved = (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode)
    s.included, s.excluded = RAW_DEFAULT_INCLUDED, RAW_DEFAULT_EXCLUDED
    s.grad_mode, s.inference_mode, s.fw_grad_mode = True, False, True
    try:
        yield
    finally:
        s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode = saved


def run_guard_steps(steps: Iterable[GuardStep], *, check: bool = True) -> GuardStack:
    """Run a guard sequence, checking the state against the model after every step
    (``check=True``); returns the stack (still open if the sequence leaves guards open)."""
    stack = GuardStack()
    try:
        for step in steps:
            if step.action == "enter":
                assert step.guard is not None
                stack.enter(step.guard)
            else:
                stack.exit()
            if check:
                stack.check()
    except BaseException:
        stack.close()
        raise
    return stack


# ---------------------------------------------------------------------------------------
# dispatch tables
# ---------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class Registration:
    """One kernel registration: the key it went to and the kernel function (or
    ``dispatch.fallthrough_kernel``)."""

    key: DispatchKey
    func: Any
    fallthrough: bool = False


_BACKENDS = frozenset(BACKEND_KEYS)


def expected_entry(
    key: DispatchKey,
    registrations: Sequence[Registration],
    *,
    derived: bool = False,
    fallbacks: dict[DispatchKey, KernelFunction] | None = None,
) -> tuple[str, DispatchKey | None, Registration | KernelFunction | None]:
    """``(provenance, source key, winner)`` of ``key``'s table entry, from scratch.

    ``registrations`` are in registration order (the newest registration to a key wins);
    ``derived`` says whether the schema gives the operator an ADInplaceOrView kernel;
    ``fallbacks`` are the backend fallbacks (default: the live ones). The rules:
    a direct kernel; the schema-derived ADInplaceOrView kernel unless there is a
    CompositeImplicitAutograd kernel; CompositeExplicitAutograd for backend keys;
    CompositeImplicitAutograd for backend and autograd keys (for an autograd key only
    if neither its backend nor CompositeExplicitAutograd has a kernel); Autograd for
    autograd keys; the backend fallback; else missing.
    """
    newest: dict[DispatchKey, Registration] = {}
    for r in registrations:
        newest[r.key] = r
    if fallbacks is None:
        fallbacks = dispatcher.current_fallbacks()
    undefined = key is K.Undefined
    is_backend = undefined or key in _BACKENDS
    is_autograd = key in AUTOGRAD_KEYS
    if key in newest:
        return "kernel", key, newest[key]
    cia = newest.get(K.CompositeImplicitAutograd)
    cea = newest.get(K.CompositeExplicitAutograd)
    if key is K.ADInplaceOrView and derived and cia is None:
        return "kernel", key, None
    if cea is not None and is_backend:
        return "default backend kernel", K.CompositeExplicitAutograd, cea
    if cia is not None and (is_backend or is_autograd):
        backend = BACKEND_FOR_AUTOGRAD_KEY.get(key)
        if not is_autograd or (cea is None and (backend is None or backend not in newest)):
            return "math kernel", K.CompositeImplicitAutograd, cia
    if is_autograd and K.Autograd in newest:
        return "autograd kernel", K.Autograd, newest[K.Autograd]
    fb = fallbacks.get(key)
    if fb is not None:
        return "backend fallback", key, fb
    return "missing", None, None


def _describe(te: TableEntry) -> str:
    kernel = "none" if te.kernel is None else te.kernel.display_name
    src = te.source.name if te.source is not None else None
    return f"{te.provenance} from {src} ({kernel})"


def check_operator_table(
    entry: OperatorEntry,
    registrations: Sequence[Registration] | None = None,
    *,
    memo: dict[int, tuple[Any, ...]] | None = None,
) -> None:
    """The live table of ``entry`` equals one recomputed from scratch, its hot-path
    fallthrough mask matches its fallthrough entries, and — given the registrations
    made to it — every entry follows the precedence model of :func:`expected_entry`.

    ``memo`` (a dict kept by the caller) skips the recomputation when neither the table's
    inputs (kernels, derived kernels, fallbacks, registrations) nor the live table and
    hot-path state objects changed since the last check that passed."""
    fallbacks = dispatcher.current_fallbacks()
    key: tuple[Any, ...] = ()
    if memo is not None:
        key = (
            entry.table,
            entry.dispatch_state,
            tuple((k, tuple(v)) for k, v in entry.kernels.items()),
            tuple(entry.derived.items()),
            tuple(fallbacks.items()),
            None if registrations is None else tuple(registrations),
        )
        seen = memo.get(id(entry))
        if seen is not None and seen[0] is key[0] and seen[1] is key[1] and seen[2:] == key[2:]:
            return
    _check_operator_table(entry, registrations, fallbacks)
    if memo is not None:
        memo[id(entry)] = key


def _check_operator_table(
    entry: OperatorEntry,
    registrations: Sequence[Registration] | None,
    fallbacks: dict[DispatchKey, KernelFunction],
) -> None:
    live = entry.table
    fresh = entry.compute_table(fallbacks)
    if live != fresh:
        diff = [
            f"{a.key.name}: live {_describe(a)}, recomputed {_describe(b)}"
            for a, b in zip(live, fresh)
            if a != b
        ]
        raise DispatchInvariantError(
            "dispatch-table",
            f"{entry.name}: the live table differs from one recomputed from scratch: "
            + "; ".join(diff),
        )
    mask, calls, wants, _ = entry.dispatch_state
    ft_bits = 0
    for te in live:
        if te.is_fallthrough:
            ft_bits |= te.key.bit
    expected_mask = RAW_FULL & ~ft_bits
    if mask != expected_mask or len(calls) != len(live) or len(wants) != len(live):
        raise DispatchInvariantError(
            "dispatch-table",
            f"{entry.name}: the hot-path state is stale: fallthrough mask "
            f"{DispatchKeySet.from_raw(mask)}, the table's fallthrough entries say "
            f"{DispatchKeySet.from_raw(expected_mask)}",
        )
    if registrations is None:
        return
    derived = K.ADInplaceOrView in entry.derived
    for te in live:
        prov, src, winner = expected_entry(
            te.key, registrations, derived=derived, fallbacks=fallbacks
        )
        got_kernel: Any = te.kernel
        ok = te.provenance == prov and te.source == src
        if ok and isinstance(winner, Registration):
            ok = got_kernel is not None and (
                got_kernel.is_fallthrough if winner.fallthrough else got_kernel.func is winner.func
            )
        elif ok and isinstance(winner, KernelFunction):
            ok = got_kernel is winner
        if not ok:
            regs = ", ".join(
                f"{r.key.name}{' (fallthrough)' if r.fallthrough else ''}" for r in registrations
            )
            raise DispatchInvariantError(
                "dispatch-table",
                f"{entry.name}: entry {te.key.name} is {_describe(te)}; from the registrations "
                f"[{regs}] the precedence rules give {prov} from "
                f"{src.name if src is not None else None}",
            )


def check_dispatch_tables(entries: Iterable[OperatorEntry] | None = None) -> None:
    """:func:`check_operator_table` (without a registration model) for ``entries``,
    default every operator in the registry."""
    if entries is None:
        with dispatcher.lock:
            entries = list(dispatcher.operators.values())
    for e in entries:
        check_operator_table(e)


# ---------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------
def check_tensor(t: Tensor) -> None:
    """Invariants every tensor satisfies at every point:

    * ``is_inference()`` iff the key set has neither ADInplaceOrView nor an autograd key
      (an inference tensor carries no autograd keys);
    * a CPU tensor has ADInplaceOrView and AutogradCPU, or neither;
    * reading ``_version`` raises (torch's text) iff the tensor is an inference tensor;
    * a tracked view is never an inference tensor, nor is its base.
    """
    ks = t.key_set
    inference = t.is_inference()
    has_autograd = ks.has_any(_AUTOGRAD_RELATED)
    if inference == has_autograd:
        raise DispatchInvariantError(
            "inference-keys",
            f"is_inference() is {inference} but the key set {ks} "
            f"{'has' if has_autograd else 'lacks'} autograd-related keys",
        )
    if K.CPU in ks and (K.ADInplaceOrView in ks) != (K.AutogradCPU in ks):
        raise DispatchInvariantError(
            "inference-keys", f"CPU tensor with half of the autograd-related keys: {ks}"
        )
    try:
        version: int | None = t._version
    except RuntimeError as e:
        if str(e) != "Inference tensors do not track version counter.":
            raise DispatchInvariantError("inference-keys", f"_version raised {e!r}") from e
        version = None
    if (version is None) != inference:
        raise DispatchInvariantError(
            "inference-keys",
            f"{'an inference' if inference else 'a normal'} tensor "
            f"{'has' if version is not None else 'lacks'} a version counter",
        )
    base = t._base
    if base is not None and (inference or base.is_inference()):
        raise DispatchInvariantError(
            "inference-keys", "a view of an inference tensor is tracked as a view"
        )
