"""The standard operator set, registered key by key.

:func:`load` defines every operator of :mod:`kernels.native_functions` and
registers its kernels: CPU and Meta (numpy / shape-only), BackendSelect for
factories, the composite kernels, the schema-derived ADInplaceOrView kernel
and the backend fallbacks. ``import dispatch`` calls it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["load"]

_loaded = False
_load_lock = threading.Lock()


def _debug(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return "registered at kernels"
    path = code.co_filename.replace("\\", "/")
    i = path.rfind("/kernels/")
    return f"registered at {path[i + 1 :] if i >= 0 else path}:{code.co_firstlineno}"


def load() -> None:
    """Register the standard operator set (idempotent)."""
    global _loaded
    with _load_lock:
        if _loaded:
            return
        _load()
        _loaded = True


def _load() -> None:
    from dispatch.dispatcher import dispatcher
    from dispatch.keys import DispatchKey
    from dispatch.operator import KernelFunction
    from dispatch.schema import parse_schema
    from kernels import _registry as R
    from kernels import composite, cpu, meta  # noqa: F401  (modules register on import)
    from kernels.ad_inplace_or_view import make_ad_inplace_or_view_kernel
    from kernels.backend_select import make_backend_select_kernel
    from kernels.fallbacks import standard_fallbacks
    from kernels.native_functions import NATIVE_FUNCTIONS

    K = DispatchKey
    dispatcher.schema_derived[K.ADInplaceOrView] = make_ad_inplace_or_view_kernel
    for key, kf in standard_fallbacks():
        dispatcher.register_fallback(key, kf)

    def kernel(fn: Callable[..., Any], with_keyset: bool = False) -> KernelFunction:
        return KernelFunction(
            fn, with_keyset, _debug(fn), convention="full", name=getattr(fn, "__name__", "")
        )

    for nf in NATIVE_FUNCTIONS:
        schema = parse_schema(nf.schema)
        extra: dict[str, Any] = {}
        if nf.view:
            extra["view"] = nf.view
        if not nf.bump_version:
            extra["bump"] = False
        if nf.inplace_view:
            extra["inplace_view"] = True
        dispatcher.register_def(schema, _debug(load), extra)
        full = schema.full_name
        short = full.split("::", 1)[1]
        tables: list[tuple[DispatchKey, dict[str, Callable[..., Any]]]]
        if nf.kind == "cpu":
            tables = [(K.CPU, R.CPU), (K.Meta, R.META)]
        elif nf.kind == "factory":
            tables = [(K.CPU, R.CPU), (K.Meta, R.META)]
            entry = dispatcher.find_schema(full)
            bs = make_backend_select_kernel(entry)
            dispatcher.register_kernel(
                full,
                K.BackendSelect,
                KernelFunction(
                    bs,
                    True,
                    _debug(make_backend_select_kernel),
                    convention="full",
                    name="backend_select",
                ),
            )
        elif nf.kind == "cia":
            tables = [(K.CompositeImplicitAutograd, R.COMPOSITE_IMPLICIT)]
        elif nf.kind == "cea":
            tables = [(K.CompositeExplicitAutograd, R.COMPOSITE_EXPLICIT)]
        else:
            raise AssertionError(f"unknown kernel kind {nf.kind!r} for {full}")
        for key, table in tables:
            fn = table.get(short)
            if fn is None:
                raise AssertionError(f"no {key.name} kernel for {full}")
            dispatcher.register_kernel(full, key, kernel(fn))
    _register_autograd(K)
    declared = {f.schema.split("(")[0].split("::")[1] for f in NATIVE_FUNCTIONS}
    for table in (R.CPU, R.META, R.COMPOSITE_IMPLICIT, R.COMPOSITE_EXPLICIT):
        stray = set(table) - declared
        if stray:
            raise AssertionError(f"kernels for undeclared operators: {sorted(stray)}")


def _register_autograd(K: Any) -> None:
    """The generic Autograd kernel for every operator with a backend kernel (composite
    implicit ones get their autograd from the operators they call)."""
    from dispatch import tensorimpl
    from dispatch.dispatcher import dispatcher
    from kernels.autograd import variable
    from kernels.autograd.derivatives import DERIVATIVES
    from kernels.autograd.kernel import make_autograd_kernel, make_detach_inplace_kernel
    from kernels.native_functions import NATIVE_FUNCTIONS

    tensorimpl.variable_hooks = variable
    for nf in NATIVE_FUNCTIONS:
        if nf.kind not in ("cpu", "cea"):
            continue
        entry = dispatcher.find_schema(nf.schema.split("(")[0])
        short = entry.name.split("::", 1)[1]
        if short == "detach_":
            kernel = make_detach_inplace_kernel(entry)
        else:
            kernel = make_autograd_kernel(entry, DERIVATIVES.get(short))
        dispatcher.register_kernel(entry.name, K.Autograd, kernel)
    stray = set(DERIVATIVES) - {nf.schema.split("(")[0].split("::")[1] for nf in NATIVE_FUNCTIONS}
    if stray:
        raise AssertionError(f"derivatives for undeclared operators: {sorted(stray)}")
