"""The dispatcher: mirrors ``c10::Dispatcher`` (aten/src/ATen/core/dispatch/Dispatcher.h)
and ``DispatchKeyExtractor``.

``call`` computes the dispatch key set of a call::

    ks = (union of the tensor arguments' key sets | TLS included) - TLS excluded
    ks &= the operator's non-fallthrough mask

and runs the kernel of ``ks``'s highest-priority key. A kernel registered
``with_keyset`` receives ``ks`` and may :func:`redispatch` below itself with
``ks & after_X_keyset``; redispatch reads no TLS and touches none.

Registration is serialised by one lock; each change recomputes the operator's
table and publishes it with one assignment, so callers never lock.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from dispatch.keys import KEY_BY_INDEX, RUNTIME_KEYS, DispatchKey
from dispatch.keyset import DispatchKeySet
from dispatch.operator import KernelFunction, OperatorEntry, TableEntry, fallthrough_kernel
from dispatch.schema import NO_DEFAULT, FunctionSchema, parse_schema
from dispatch.tensorimpl import Tensor, wrap_number  # a cycle: tensorimpl uses us lazily
from dispatch.tls import per_thread as _per_thread

__all__ = [
    "Dispatcher",
    "OpOverload",
    "OpOverloadPacket",
    "call",
    "dispatcher",
    "redispatch",
]


def caller_debug(depth: int = 2) -> str:
    """``registered at FILE:LINE`` of the frame ``depth`` levels up, as PyTorch records it."""
    f = sys._getframe(depth)
    return f"registered at {f.f_code.co_filename}:{f.f_lineno}"


# ----------------------------------------------------------------------------------------
# Argument binding: from a Python call to the full argument tuple in schema order.
# ----------------------------------------------------------------------------------------
class ArgumentError(TypeError, RuntimeError):
    """Arguments that do not fit an operator's schema. PyTorch raises RuntimeError
    with these texts; Python code expects TypeError — this is both."""


def _is_int(v: Any) -> bool:
    # int (and bool, as torch's int parsing takes it), numpy integers, 0-dim tensors
    return isinstance(v, int | Tensor) or (
        not isinstance(v, float | str) and hasattr(type(v), "__index__")
    )


def _is_float(v: Any) -> bool:
    return isinstance(v, float | int | Tensor | np.floating | np.integer)


def _is_number(v: Any) -> bool:
    # Scalar ("number"); dispatchsim also lets a Tensor through (torch.ops rejects it)
    return isinstance(v, int | float | complex | Tensor | np.number | np.bool_)


def _is_bool(v: Any) -> bool:
    return isinstance(v, int | Tensor | np.bool_ | np.integer)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


_SCALAR_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "int": _is_int,
    "SymInt": _is_int,
    "float": _is_float,
    "Scalar": _is_number,
    "bool": _is_bool,
    "str": _is_str,
}
_TORCH_TYPE_NAMES: Final = {"SymInt": "int", "Scalar": "number"}


def _torch_type_name(a: Any) -> str:
    """The type as torch's argument errors name it: ``Optional[List[int]]``, ``number``."""
    name = _TORCH_TYPE_NAMES.get(a.base_type, a.base_type)
    if a.is_list:
        name = f"List[{name}]"
    return f"Optional[{name}]" if a.is_optional else name


def _scalar_check(a: Any) -> Callable[[Any], bool] | None:
    """What a non-tensor argument accepts (None: not checked), as torch's ``toIValue``:
    ``int`` / ``SymInt`` / ``float`` / ``Scalar`` / ``bool`` / ``str`` and int lists
    (``int[2]`` also takes one int); ``None`` only where the type is optional."""
    elem = _SCALAR_CHECKS.get(a.base_type)
    if elem is None or (a.is_list and a.base_type not in ("int", "SymInt")):
        return None
    optional = bool(a.is_optional)
    if not a.is_list:
        if optional:
            return lambda v: v is None or elem(v)
        return elem
    one_int_ok = a.list_size is not None

    def int_list(v: Any) -> bool:
        if v is None:
            return optional
        if isinstance(v, list | tuple):
            return all(_is_int(x) for x in v)
        return one_int_ok and _is_int(v) and not isinstance(v, Tensor)

    return int_list


class Binder:
    """Binds ``(*args, **kwargs)`` to a schema and extracts the tensor key sets.

    Python numbers passed for a ``Tensor`` parameter become wrapped-number 0-dim
    tensors, as PyTorch's argument parser makes them (reference (a), (f).2).
    """

    __slots__ = (
        "defaults",
        "index",
        "kwonly_names",
        "n_args",
        "n_pos",
        "names",
        "scalar_checks",
        "schema",
        "tensor_pos",
        "tensorlist_pos",
    )

    def __init__(self, schema: FunctionSchema) -> None:
        self.schema = schema
        args = schema.arguments
        self.names = tuple(a.name for a in args)
        self.index = {a.name: i for i, a in enumerate(args)}
        self.n_args = len(args)
        self.n_pos = sum(1 for a in args if not a.kwarg_only)
        self.kwonly_names = tuple(a.name for a in args if a.kwarg_only)
        self.defaults = tuple(a.default for a in args)
        self.tensor_pos = tuple(
            i for i, a in enumerate(args) if a.base_type == "Tensor" and not a.is_list
        )
        self.tensorlist_pos = tuple(
            i for i, a in enumerate(args) if a.base_type == "Tensor" and a.is_list
        )
        # (position, accepts, torch's name of the type, N of an int[N]) of the checked
        # non-tensor arguments
        self.scalar_checks = tuple(
            (i, check, _torch_type_name(a), a.list_size or 0)
            for i, a in enumerate(args)
            if (check := _scalar_check(a)) is not None
        )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        schema = self.schema
        name = schema.full_name.split(".")[0]
        n_args = self.n_args
        if len(args) > self.n_pos:
            raise ArgumentError(
                f"{name}() takes {self.n_pos} positional argument(s) but {len(args)} was/were "
                f"given.  Declaration: {schema}"
            )
        full = list(args)
        full.extend([NO_DEFAULT] * (n_args - len(full)))
        if kwargs:
            index = self.index
            for key, value in kwargs.items():
                i = index.get(key)
                if i is None:
                    raise ArgumentError(
                        f"{name}() got an unexpected keyword argument '{key}'. Declaration: {schema}"
                    )
                if i < len(args):
                    raise ArgumentError(
                        f"{name}() got multiple values for argument '{key}'. Declaration: {schema}"
                    )
                full[i] = value
        for i in range(len(args), n_args):
            if full[i] is NO_DEFAULT:
                d = self.defaults[i]
                if d is NO_DEFAULT:
                    raise ArgumentError(
                        f"{name}() is missing value for argument '{self.names[i]}'. "
                        f"Declaration: {schema}"
                    )
                full[i] = list(d) if isinstance(d, list) else d
        return self.check_tensors(full)

    def check_tensors(self, full: list[Any]) -> tuple[Any, ...]:
        args = self.schema.arguments
        for i in self.tensor_pos:
            v = full[i]
            if isinstance(v, Tensor):
                continue
            if v is None and args[i].is_optional:
                continue
            if isinstance(v, bool | int | float):
                full[i] = wrap_number(v)
                continue
            self._type_error(i, v)
        for i in self.tensorlist_pos:
            v = full[i]
            if v is None and args[i].is_optional:
                continue
            if not isinstance(v, list | tuple) or not all(
                isinstance(t, Tensor) or (t is None and args[i].elem_optional) for t in v
            ):
                self._type_error(i, v)
        for i, accepts, type_name, size in self.scalar_checks:
            v = full[i]
            if not accepts(v):
                self._type_error(i, v, type_name)
            if size and isinstance(v, int):  # int[2] stride=1 -> [1, 1], as torch's parser
                full[i] = [v] * size
        return tuple(full)

    def _type_error(self, i: int, value: Any, type_name: str | None = None) -> None:
        schema = self.schema
        raise ArgumentError(
            f"{schema.full_name.split('.')[0]}() Expected a value of type "
            f"'{type_name or schema.arguments[i].type}' for argument '{self.names[i]}' but instead found type "
            f"'{type(value).__name__}'.\nPosition: {i}\nValue: {value!r}\nDeclaration: {schema}"
        )

    def tensor_keys(self, args: Sequence[Any]) -> int:
        """Union of the raw key sets of every tensor argument."""
        ks = 0
        for i in self.tensor_pos:
            t = args[i]
            if t is not None:
                ks |= t._keys
        for i in self.tensorlist_pos:
            lst = args[i]
            if lst:
                for t in lst:
                    if t is not None:
                        ks |= t._keys
        return ks

    def split(self, args: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Full tuple -> (positional, keyword-only) as torch.library passes them."""
        n = self.n_pos
        return tuple(args[:n]), dict(zip(self.kwonly_names, args[n:]))


# ----------------------------------------------------------------------------------------
# The public operator handles (torch._ops.OpOverload / OpOverloadPacket)
# ----------------------------------------------------------------------------------------
class OpOverload:
    """One operator overload, callable: ``dispatch.ops.aten.add.Tensor(a, b)``."""

    __slots__ = ("__weakref__", "_entry", "_name", "_overloadname", "_qualname")

    def __init__(self, entry: OperatorEntry) -> None:
        self._entry = entry
        schema = entry.schema
        assert schema is not None
        self._qualname = schema.qualified_name
        self._name = schema.name
        self._overloadname = schema.overload_name or "default"

    @property
    def _schema(self) -> FunctionSchema:
        schema = self._entry.schema
        if schema is None:
            raise RuntimeError(f"operator {self._entry.name} has been deregistered")
        return schema

    @property
    def entry(self) -> OperatorEntry:
        return self._entry

    def name(self) -> str:
        return self._entry.name if "." in self._entry.name else f"{self._entry.name}.default"

    @property
    def overloadpacket(self) -> OpOverloadPacket:
        return dispatcher.packet(self._qualname)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        entry = self._entry
        binder = entry.binder
        if binder is None:
            raise RuntimeError(f"operator {entry.name} has been deregistered")
        return call(entry, binder.bind(args, kwargs))

    def redispatch(self, ks: DispatchKeySet | int, /, *args: Any, **kwargs: Any) -> Any:
        return redispatch(self, ks, *args, **kwargs)

    def __repr__(self) -> str:
        ns, _, _ = self._qualname.partition("::")
        return f"{ns}.{self._name}.{self._overloadname}"

    def __str__(self) -> str:
        return self.__repr__()


class OpOverloadPacket:
    """All overloads of one operator name: ``dispatch.ops.aten.add``."""

    __slots__ = ("_overloads", "_qualname")

    def __init__(self, qualname: str) -> None:
        self._qualname = qualname
        self._overloads: dict[str, OpOverload] = {}

    def __getattr__(self, name: str) -> OpOverload:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._overloads[name]
        except KeyError:
            raise AttributeError(
                f"The underlying op of '{self._qualname.replace('::', '.')}' has no overload name "
                f"'{name}'"
            ) from None

    def overloads(self) -> list[str]:
        return list(self._overloads)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        default = self._overloads.get("default")
        if default is not None:
            return default(*args, **kwargs)
        overloads = tuple(self._overloads.values())  # another thread may change the dict
        if not overloads:
            raise RuntimeError(f"operator {self._qualname} has been deregistered")
        errors = []
        for ov in overloads:
            binder = ov._entry.binder
            if binder is None:
                continue
            try:
                bound = binder.bind(args, kwargs)
            except TypeError as e:
                errors.append(str(e))
                continue
            return call(ov._entry, bound)
        raise TypeError(
            f"no overload of {self._qualname} accepts these arguments:\n  " + "\n  ".join(errors)
        )

    def __repr__(self) -> str:
        return self._qualname.replace("::", ".")


class _OpNamespace:
    __slots__ = ("_ns",)

    def __init__(self, ns: str) -> None:
        self._ns = ns

    def __getattr__(self, name: str) -> OpOverloadPacket:
        if name.startswith("__"):
            raise AttributeError(name)
        packet = dispatcher.packets.get(f"{self._ns}::{name}")
        if packet is None or not packet._overloads:
            raise AttributeError(f"'_OpNamespace' '{self._ns}' object has no attribute '{name}'")
        return packet

    def __dir__(self) -> list[str]:
        prefix = f"{self._ns}::"
        return sorted(q[len(prefix) :] for q in dispatcher.packets if q.startswith(prefix))

    def __repr__(self) -> str:
        return f"dispatch.ops.{self._ns}"


class _Ops:
    """``dispatch.ops``: ``dispatch.ops.<ns>.<op>[.<overload>]``."""

    def __getattr__(self, ns: str) -> _OpNamespace:
        if ns.startswith("__"):
            raise AttributeError(ns)
        return _OpNamespace(ns)


ops: Final = _Ops()


# ----------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------
SchemaDerivedKernel = Callable[[OperatorEntry], "KernelFunction | None"]


class Dispatcher:
    """The global operator registry (``c10::Dispatcher::singleton()``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.operators: dict[str, OperatorEntry] = {}
        self.packets: dict[str, OpOverloadPacket] = {}
        # Backend fallbacks per runtime key, newest first.
        self.fallbacks: dict[DispatchKey, list[KernelFunction]] = {}
        # Kernels derived from a schema at def() time (the generic ADInplaceOrView kernel).
        self.schema_derived: dict[DispatchKey, SchemaDerivedKernel] = {}

    # -- lookup ------------------------------------------------------------------------
    def find_op(self, name: str) -> OperatorEntry | None:
        entry = self.operators.get(_canonical(name))
        return entry

    def find_schema(self, name: str) -> OperatorEntry:
        entry = self.find_op(name)
        if entry is None or entry.schema is None:
            raise RuntimeError(f"operator {name} does not exist")
        return entry

    def packet(self, qualname: str) -> OpOverloadPacket:
        return self.packets[qualname]

    def current_fallbacks(self) -> dict[DispatchKey, KernelFunction]:
        return {k: v[0] for k, v in self.fallbacks.items() if v}

    # -- registration ------------------------------------------------------------------
    def _entry(self, name: str) -> OperatorEntry:
        entry = self.operators.get(name)
        if entry is None:
            entry = self.operators[name] = OperatorEntry(name)
            self._refresh(entry)
        return entry

    def register_def(
        self, schema: FunctionSchema, debug: str, extra: dict[str, Any] | None = None
    ) -> Callable[[], None]:
        """Define an operator; returns the function that undoes exactly this.

        ``extra`` is per-operator data for the schema-derived kernels (e.g. the
        kind of view a ``Tensor(a)`` return is)."""
        with self.lock:
            name = schema.full_name
            entry = self._entry(name)
            if entry.schema is not None:
                raise RuntimeError(
                    f"Tried to register an operator ({schema}) with the same name and overload "
                    "name multiple times. Each overload's schema should only be registered with a "
                    "single call to def(). Duplicate registration: "
                    f"{debug}. Original registration: {entry.debug}"
                )
            entry.schema = schema
            entry.debug = debug
            entry.binder = Binder(schema)
            if extra:
                entry.extra.update(extra)
            handle = OpOverload(entry)
            entry.handle = handle
            packet = self.packets.get(schema.qualified_name)
            if packet is None:
                packet = self.packets[schema.qualified_name] = OpOverloadPacket(
                    schema.qualified_name
                )
            packet._overloads[handle._overloadname] = handle
            for key, factory in self.schema_derived.items():
                kf = factory(entry)
                if kf is not None:
                    entry.derived[key] = kf
            self._refresh(entry)

        def undo() -> None:
            with self.lock:
                entry.derived.clear()
                entry.schema = None
                entry.binder = None
                entry.debug = ""
                entry.extra.clear()
                packet._overloads.pop(handle._overloadname, None)
                if not packet._overloads:
                    self.packets.pop(schema.qualified_name, None)
                self._refresh(entry)
                self._maybe_drop(entry)

        return undo

    def register_kernel(
        self, name: str, key: DispatchKey, kernel: KernelFunction
    ) -> Callable[[], None]:
        with self.lock:
            entry = self._entry(_canonical(name))
            entry.add_kernel(key, kernel)
            self._refresh(entry)

        def undo() -> None:
            with self.lock:
                entry.remove_kernel(key, kernel)
                self._refresh(entry)
                self._maybe_drop(entry)

        return undo

    def register_fallback(self, key: DispatchKey, kernel: KernelFunction) -> Callable[[], None]:
        with self.lock:
            self.fallbacks.setdefault(key, []).insert(0, kernel)
            self._refresh_all()

        def undo() -> None:
            with self.lock:
                lst = self.fallbacks[key]
                lst.remove(kernel)
                if not lst:
                    del self.fallbacks[key]
                self._refresh_all()

        return undo

    def _maybe_drop(self, entry: OperatorEntry) -> None:
        if entry.schema is None and not entry.kernels:
            self.operators.pop(entry.name, None)

    def _refresh(self, entry: OperatorEntry) -> None:
        entry.install_table(entry.compute_table(self.current_fallbacks()), _make_call)

    def _refresh_all(self) -> None:
        fallbacks = self.current_fallbacks()
        for entry in list(self.operators.values()):
            entry.install_table(entry.compute_table(fallbacks), _make_call)


def _canonical(name: str) -> str:
    return name[: -len(".default")] if name.endswith(".default") else name


dispatcher: Final = Dispatcher()


# ----------------------------------------------------------------------------------------
# Building the callables the hot path invokes
# ----------------------------------------------------------------------------------------
def _make_call(entry: OperatorEntry, te: TableEntry) -> tuple[Callable[..., Any], bool]:
    """(callable, wants_keyset) for a table entry; the callable takes the full tuple."""
    kf = te.kernel
    if kf is None:
        return _missing_kernel(entry, te.key), False
    if kf.is_fallthrough:
        # Masked out of every key set, so never reached from call(); a redispatch
        # with a hand-made key set that still holds the key skips it the same way.
        return _fallthrough_call(entry, te.key), True
    func = kf.func
    if kf.convention == "full":
        return func, kf.with_keyset
    if kf.convention == "fallback":
        return _fallback_call(entry, func, kf.with_keyset), True
    if kf.convention == "fallback_full":
        # dispatchsim's own fallbacks: func(ks, op, *full_args), no re-binding.
        return (lambda ks, *a: func(ks, entry.handle, *a)), True
    binder = entry.binder
    if binder is None or not binder.kwonly_names:
        if kf.with_keyset:
            return (lambda ks, *a: func(DispatchKeySet.from_raw(ks), *a)), True
        return func, False
    n_pos, kw = binder.n_pos, binder.kwonly_names
    if kf.with_keyset:

        def adapted_ks(ks: int, *a: Any) -> Any:
            return func(DispatchKeySet.from_raw(ks), *a[:n_pos], **dict(zip(kw, a[n_pos:])))

        return adapted_ks, True

    def adapted(*a: Any) -> Any:
        return func(*a[:n_pos], **dict(zip(kw, a[n_pos:])))

    return adapted, False


def _fallback_call(entry: OperatorEntry, func: Callable[..., Any], with_keyset: bool) -> Any:
    def call_fallback(ks: int, *a: Any) -> Any:
        binder = entry.binder
        pos, kw = binder.split(a) if binder is not None else (a, {})
        if with_keyset:
            return func(DispatchKeySet.from_raw(ks), entry.handle, *pos, **kw)
        return func(entry.handle, *pos, **kw)

    return call_fallback


FALLTHROUGH_EXECUTED: Final = (
    '0 INTERNAL ASSERT FAILED at "/__w/pytorch/pytorch/aten/src/ATen/core/boxing/'
    'KernelFunction.cpp":14, please report a bug to PyTorch. fallthrough_kernel was executed '
    "but it should have been short-circuited by the dispatcher. This could occur if you "
    "registered a fallthrough kernel as a override for a specific operator (as opposed to a "
    "backend fallback); this is NOT currently supported, and we do not intend to add support "
    "for it in the near future.  If you do find yourself in need of this, let us know in the "
    "bug tracker."
)


def _fallthrough_call(entry: OperatorEntry, key: DispatchKey) -> Callable[..., Any]:
    if key is DispatchKey.Undefined:
        # an empty key set reached a fallthrough (e.g. one registered to
        # CompositeImplicitAutograd): there is no key below to skip to; torch runs
        # fallthrough_kernel itself, which asserts
        def executed(ks: int, *a: Any) -> Any:
            raise RuntimeError(FALLTHROUGH_EXECUTED)

        return executed

    def skip(ks: int, *a: Any) -> Any:
        return redispatch_raw(entry, ks & (key.bit - 1), a)

    return skip


def _missing_kernel(entry: OperatorEntry, key: DispatchKey) -> Callable[..., Any]:
    def missing(*a: Any) -> Any:
        raise NotImplementedError(missing_kernel_message(entry, key))

    return missing


def missing_kernel_message(entry: OperatorEntry, key: DispatchKey) -> str:
    """PyTorch's ``reportError`` text, with this operator's table appended."""
    name = entry.name
    available = ", ".join(k.name for k in entry.available_keys())
    table = entry.dump_table()
    if key is DispatchKey.Undefined:
        return (
            "There were no tensor arguments to this function (e.g., you passed an empty list of "
            "Tensors), but no fallback function is registered for schema "
            f"{name}.  This usually means that this function requires a non-empty list of "
            "Tensors, or that you (the operator writer) forgot to register a fallback function.  "
            f"Available functions are [{available}].\n\n{table}"
        )
    return (
        f"Could not run '{name}' with arguments from the '{key.name}' backend. This could be "
        "because the operator doesn't exist for this backend, or was omitted during the "
        "selective/custom build process (if using custom build). If you are a Facebook employee "
        "using PyTorch on mobile, please visit https://fburl.com/ptmfixes for possible "
        f"resolutions. '{name}' is only available for these backends: [{available}].\n\n{table}"
    )


# ----------------------------------------------------------------------------------------
# The hot path
# ----------------------------------------------------------------------------------------
_tracers = 0
"""How many dispatch recorders are active, in all threads (``dispatch.trace`` keeps it).
While it is 0 the hot path's tracing check is one module-global test and never reads
the thread-local recorder (a ``threading.local`` attribute read costs several times a
global's)."""


def call(entry: OperatorEntry, args: tuple[Any, ...]) -> Any:
    """Dispatch a call whose arguments are already bound (the full tuple in schema order).

    1. ks = union of the tensor arguments' key sets
    2. ks |= TLS included
    3. ks -= TLS excluded
    4. ks &= the operator's non-fallthrough mask
    5. run the kernel of ks's highest-priority key (Undefined when ks is empty)
    """
    s = _per_thread.state  # one TLS read per call
    mask, calls, wants, leading = entry.dispatch_state
    # 1. (an op whose tensors are its first one or two arguments: read them directly)
    if leading == 1:
        ks = args[0]._keys
    elif leading == 2:
        ks = args[0]._keys | args[1]._keys
    else:
        try:  # zero-cost unless it raises
            ks = entry.binder.tensor_keys(args)
        except AttributeError:
            if entry.binder is None:  # another thread closed the library since the call bound
                raise RuntimeError(f"operator {entry.name} has been deregistered") from None
            raise
    # 2.-4.
    ks = (ks | s.included) & ~s.excluded & mask
    if _tracers and s.tracer is not None:  # the one check a call pays for tracing
        return s.tracer.on_call(entry, args, ks, None)
    i = ks.bit_length()
    if wants[i]:
        return calls[i](ks, *args)
    return calls[i](*args)


def redispatch_raw(entry: OperatorEntry, ks: int, args: tuple[Any, ...]) -> Any:
    """Redispatch with an explicit raw key set; reads and writes no TLS."""
    mask, calls, wants, _ = entry.dispatch_state
    # the one check a redispatch pays for tracing:
    if _tracers and _per_thread.state.tracer is not None:
        return _per_thread.state.tracer.on_call(entry, args, ks & mask, ks)
    ks &= mask
    i = ks.bit_length()
    if wants[i]:
        return calls[i](ks, *args)
    return calls[i](*args)


def run_entry(entry: OperatorEntry, ks: int, args: tuple[Any, ...]) -> Any:
    """Run the kernel for ``ks``'s highest key with no tracing (the tracer calls this)."""
    _, calls, wants, _ = entry.dispatch_state
    i = ks.bit_length()
    if wants[i]:
        return calls[i](ks, *args)
    return calls[i](*args)


def redispatch(
    op: OpOverload | OperatorEntry, ks: DispatchKeySet | int, /, *args: Any, **kwargs: Any
) -> Any:
    """``Dispatcher::redispatch``: call ``op`` with the key set ``ks`` as given.

    ``ks`` is typically ``ks & after_autograd_keyset`` inside an Autograd kernel.
    Arguments are bound like a normal call.
    """
    entry = op._entry if isinstance(op, OpOverload) else op
    raw = ks.raw if isinstance(ks, DispatchKeySet) else ks
    binder = entry.binder
    if binder is None:
        raise RuntimeError(f"operator {entry.name} has no schema")
    return redispatch_raw(entry, raw, binder.bind(args, kwargs))


def highest_key(ks: int) -> DispatchKey:
    return KEY_BY_INDEX[ks.bit_length()]


def make_fallthrough(debug: str) -> KernelFunction:
    return KernelFunction(
        fallthrough_kernel, False, debug, convention="full", is_fallthrough=True, name="fallthrough"
    )


def tensor_args(entry: OperatorEntry, args: Sequence[Any]) -> list[Tensor]:
    """The tensors among a bound call's arguments (lists flattened)."""
    binder = entry.binder
    out: list[Tensor] = []
    if binder is None:
        return out
    for i in sorted(binder.tensor_pos + binder.tensorlist_pos):
        v = args[i]
        if v is None:
            continue
        if isinstance(v, list | tuple):
            out.extend(t for t in v if t is not None)
        else:
            out.append(v)
    return out


parse = parse_schema
assert RUNTIME_KEYS
