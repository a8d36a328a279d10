"""User registration: mirrors ``torch.library.Library`` (torch/library.py) over
``torch::Library`` (``TORCH_LIBRARY`` / ``TORCH_LIBRARY_IMPL`` / ``TORCH_LIBRARY_FRAGMENT``).

A :class:`Library` remembers every registration it made and ``close()`` undoes
exactly those, newest first, so the dispatch tables return to what they were.
A registration that fails changes nothing.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from dispatch.dispatcher import OpOverload, dispatcher, make_fallthrough
from dispatch.keys import DispatchKey
from dispatch.operator import KernelFunction, fallthrough_kernel
from dispatch.schema import parse_schema

__all__ = ["Library", "fallthrough_kernel"]

_KINDS = ("IMPL", "DEF", "FRAGMENT")
# ns -> debug string of the open DEF library that owns it (TORCH_LIBRARY is unique per namespace)
_def_libraries: dict[str, str] = {}
# "ns/op/Key" -> True for kernels registered through a Library (torch.library._impls)
_impls: set[str] = set()


def _debug(depth: int) -> str:
    f = sys._getframe(depth)
    return f"registered at {f.f_code.co_filename}:{f.f_lineno}"


class Library:
    """``Library(ns, kind, dispatch_key="")`` with kind ``"DEF"``, ``"IMPL"`` or ``"FRAGMENT"``.

    Usable as a context manager: leaving the block closes it.
    """

    def __init__(self, ns: str, kind: str, dispatch_key: str = "") -> None:
        if kind not in _KINDS:
            raise ValueError(f"Unsupported kind: {kind}")
        if not ns or not ns.replace("_", "a").isidentifier():
            raise ValueError(f"invalid namespace {ns!r}: expected an identifier")
        self.ns = ns
        self.kind = kind
        self.dispatch_key = dispatch_key
        if dispatch_key:
            DispatchKey.parse(dispatch_key)
        self._debug = _debug(2)
        self._undo: list[Callable[[], None]] = []
        self._op_impls: set[str] = set()
        self._op_defs: set[str] = set()
        self._closed = False
        if kind == "DEF":
            with dispatcher.lock:
                prev = _def_libraries.get(ns)
                if prev is not None:
                    raise RuntimeError(
                        f"Only a single TORCH_LIBRARY can be used to register the namespace {ns}; "
                        "please put all of your definitions in a single TORCH_LIBRARY block.  If "
                        "you were trying to specify implementations, consider using "
                        "TORCH_LIBRARY_IMPL (which can be duplicated).  If you really intended to "
                        "define operators for a single namespace in a distributed way, you can use "
                        "TORCH_LIBRARY_FRAGMENT to explicitly indicate this.  Previous registration "
                        f"of TORCH_LIBRARY was {prev}; latest registration was {self._debug}"
                    )
                _def_libraries[ns] = self._debug

                def release() -> None:
                    _def_libraries.pop(ns, None)

                self._undo.append(release)

    def __repr__(self) -> str:
        return f"Library(kind={self.kind}, ns={self.ns}, dispatch_key={self.dispatch_key})>"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Library object has been destroyed")

    # -- def ------------------------------------------------------------------------------
    def define(self, schema: str, alias_analysis: str = "", *, tags: Any = ()) -> str:
        """Define an operator in this library's namespace; returns its name without the
        overload (``"f"`` for ``"f.two(...)"``), as torch.library does."""
        self._check_open()
        if alias_analysis not in ("", "FROM_SCHEMA", "CONSERVATIVE"):
            raise RuntimeError(f"Invalid alias_analysis type {alias_analysis}")
        if self.kind == "IMPL":
            name = schema.split("(")[0].strip()
            raise RuntimeError(
                f'def("{name}"): Cannot define an operator inside of a TORCH_LIBRARY_IMPL block.  '
                "All def()s should be placed in the (unique) TORCH_LIBRARY block for their "
                f"namespace.  (Error occurred while processing TORCH_LIBRARY_IMPL block at "
                f"{self._debug[len('registered at ') :]})"
            )
        parsed = parse_schema(schema)
        if parsed.namespace is not None and parsed.namespace != self.ns:
            raise RuntimeError(
                f"Explicitly provided namespace ({parsed.namespace}) in schema string does not "
                f"match namespace of enclosing TORCH_LIBRARY block ({self.ns}).  Move this "
                "definition to the (unique) TORCH_LIBRARY block corresponding to this namespace "
                "(and consider deleting the namespace from your schema string.)  (Error occurred "
                f"while processing TORCH_LIBRARY block at {self._debug[len('registered at ') :]})"
            )
        parsed = parsed.with_namespace(self.ns)
        undo = dispatcher.register_def(parsed, _debug(2))
        self._undo.append(undo)
        self._op_defs.add(parsed.full_name)
        return parsed.name

    # -- impl -----------------------------------------------------------------------------
    def _resolve_name(self, op_name: str | OpOverload) -> str:
        if isinstance(op_name, OpOverload):
            name = op_name.entry.name
        elif not isinstance(op_name, str) or not op_name:
            raise TypeError(f"op_name must be a non-empty str or an OpOverload, not {op_name!r}")
        else:
            name = op_name if "::" in op_name else f"{self.ns}::{op_name}"
        ns = name.split("::", 1)[0]
        if ns != self.ns:
            block = {
                "DEF": "TORCH_LIBRARY",
                "IMPL": "TORCH_LIBRARY_IMPL",
                "FRAGMENT": "TORCH_LIBRARY_FRAGMENT",
            }[self.kind]
            raise RuntimeError(
                f'impl("{name}", ...): Explicitly provided namespace ({ns}) in operator name does '
                f"not match namespace of enclosing {block} block ({self.ns}).  Move this "
                f"definition to the {block} block corresponding to this namespace (and consider "
                "deleting the namespace from your schema string.)  (Error occurred while "
                f"processing {block} block at {self._debug[len('registered at ') :]})"
            )
        return name[: -len(".default")] if name.endswith(".default") else name

    def impl(
        self,
        op_name: str | OpOverload,
        fn: Callable[..., Any],
        dispatch_key: str | DispatchKey = "",
        *,
        with_keyset: bool = False,
        allow_override: bool = True,
    ) -> None:
        """Register ``fn`` as ``op_name``'s kernel for ``dispatch_key`` (a runtime or alias key;
        default: the library's key, else CompositeImplicitAutograd)."""
        self._check_open()
        if not callable(fn):
            raise TypeError(
                f"Input function is required to be a callable but found type {type(fn)}"
            )
        key_name = dispatch_key or self.dispatch_key or "CompositeImplicitAutograd"
        key = DispatchKey.parse(key_name)
        if key is DispatchKey.Undefined:
            raise RuntimeError("cannot register a kernel to the Undefined dispatch key")
        name = self._resolve_name(op_name)
        short = name.split("::", 1)[1]
        impl_key = f"{self.ns}/{short}/{key.name}"
        if not allow_override and impl_key in _impls:
            raise RuntimeError(
                "This is not allowed since there's already a kernel registered from python "
                f"overriding {short}'s behavior for {key.name} dispatch key and {self.ns} namespace."
            )
        debug = _debug(2)
        entry = dispatcher.find_op(name)
        if entry is not None and entry.has_kernel_for(key):
            prev = entry.kernel_for(key)
            warnings.warn(
                "Overriding a previously registered kernel for the same operator and the same "
                f"dispatch key\n  operator: {entry.schema if entry.schema else name}\n"
                f"    {entry.debug or 'no debug info'}\n  dispatch key: {key.name}\n"
                f"  previous kernel: {prev.debug if prev else 'no debug info'}\n"
                f"       new kernel: {debug}",
                UserWarning,
                stacklevel=2,
            )
        if fn is fallthrough_kernel:
            kernel = make_fallthrough(debug)
        else:
            kernel = KernelFunction(fn, with_keyset, debug, convention="python")
        undo = dispatcher.register_kernel(name, key, kernel)
        newly_added = impl_key not in _impls
        _impls.add(impl_key)
        self._op_impls.add(impl_key)

        def undo_impl() -> None:
            undo()
            if newly_added:
                _impls.discard(impl_key)

        self._undo.append(undo_impl)

    # -- fallback -------------------------------------------------------------------------
    def fallback(
        self,
        fn: Callable[..., Any],
        dispatch_key: str | DispatchKey = "",
        *,
        with_keyset: bool = False,
    ) -> None:
        """Register a backend fallback for every operator at ``dispatch_key``; ``fn(op, *args,
        **kwargs)`` (``fn(keyset, op, ...)`` with ``with_keyset``). Only the ``"_"`` namespace."""
        self._check_open()
        key_name = dispatch_key or self.dispatch_key
        if self.ns != "_":
            raise RuntimeError(
                'Fallback can only be registered using library fragment on the global namespace "_" '
                f"but it is {self.ns}"
            )
        if not key_name:
            raise RuntimeError("dispatch_key must not be empty for fallback")
        key = DispatchKey.parse(key_name)
        if not key.is_runtime:
            raise RuntimeError(
                f"fallback: {key.name} is an alias key; a backend fallback needs a runtime key"
            )
        debug = _debug(2)
        if fn is fallthrough_kernel:
            kernel = make_fallthrough(debug)
        else:
            kernel = KernelFunction(fn, with_keyset, debug, convention="fallback")
        self._undo.append(dispatcher.register_fallback(key, kernel))

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Undo every registration this library made, newest first. Idempotent."""
        if self._closed:
            return
        self._closed = True
        while self._undo:
            self._undo.pop()()

    _destroy = close

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
