"""``dispatchsim keys`` and ``dispatchsim table``."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from typing import Any, Final

import dispatch
from dispatch._cli.common import (
    EXIT_OK,
    Style,
    UsageError,
    emit_json,
    error_text,
    key_names,
    ks_text,
    preserved_tls,
    tls_dict,
)
from dispatch.dispatcher import dispatcher as _registry
from dispatch.introspect import resolve_entry
from dispatch.keys import ALIAS_KEYS, AUTOGRAD_KEYS, BACKEND_KEYS, RUNTIME_KEYS, DispatchKey
from dispatch.keyset import get_runtime_dispatch_keyset
from dispatch.trace import Trace

GUARD_NAMES: Final = (
    "none",
    "no_grad",
    "inference_mode",
    "AutoDispatchBelowAutograd",
    "AutoDispatchBelowADInplaceOrView",
)


def _guards() -> dict[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    import modes  # modes depends on dispatch: import on use

    return {
        "none": contextlib.nullcontext,
        "no_grad": modes.no_grad,
        "inference_mode": modes.inference_mode,
        "AutoDispatchBelowAutograd": modes.AutoDispatchBelowAutograd,
        "AutoDispatchBelowADInplaceOrView": modes.AutoDispatchBelowADInplaceOrView,
    }


def _key_kind(k: DispatchKey) -> str:
    if k in BACKEND_KEYS:
        return "backend"
    if k in AUTOGRAD_KEYS:
        return "autograd"
    return "functionality"


def keys_report(under: str) -> dict[str, Any]:
    runtime = [
        {"name": k.name, "priority": len(RUNTIME_KEYS) - i, "kind": _key_kind(k)}
        for i, k in enumerate(reversed(RUNTIME_KEYS))
    ]
    alias = {k.name: key_names(get_runtime_dispatch_keyset(k)) for k in ALIAS_KEYS}
    with preserved_tls(), _guards()[under]():
        tls = tls_dict()
        t = dispatch.ones(3)
        tr = Trace()
        error: str | None = None
        try:
            with tr:
                t.add_(1)
        except Exception as exc:
            error = error_text(exc)
        new_tensor = {
            "key_set": key_names(t.key_set),
            "is_inference": t.is_inference(),
            "add_keys_run": [e.key for e in tr.events],
            "add_error": error,
        }
    return {
        "runtime_keys": runtime,
        "alias_keys": alias,
        "under": under,
        "tls": tls,
        "new_cpu_tensor": new_tensor,
    }


def cmd_keys(under: str, fmt: str, colour: bool) -> int:
    report = keys_report(under)
    if fmt == "json":
        emit_json(report)
        return EXIT_OK
    st = Style(colour)
    width = max(len(k.name) for k in RUNTIME_KEYS)
    out = [st.bold("Runtime keys, highest priority first:")]
    for r in report["runtime_keys"]:
        out.append(f"  {r['priority']}  {st.key(r['name'].ljust(width))}  {r['kind']}")
    out.append(st.bold("Alias keys (registration only; expand to runtime keys):"))
    awidth = max(len(n) for n in report["alias_keys"])
    for name, keys in report["alias_keys"].items():
        out.append(f"  {name.ljust(awidth)}  -> {', '.join(keys)}")
    where = "default" if under == "none" else f"under {under}"
    tls = report["tls"]
    nt = report["new_cpu_tensor"]
    out += [
        st.bold(f"Thread-local state ({where}):"),
        f"  included        {ks_text(tls['included'])}",
        f"  excluded        {ks_text(tls['excluded'])}",
        f"  grad mode       {'on' if tls['grad_mode'] else 'off'}",
        f"  inference mode  {'on' if tls['inference_mode'] else 'off'}",
        st.bold(f"A CPU tensor allocated now (t = dispatch.ones(3), {where}):"),
        f"  t.key_set       {ks_text(nt['key_set'])}",
        f"  is_inference()  {nt['is_inference']}",
        f"  t.add_(1) runs  {' -> '.join(st.key(k) for k in nt['add_keys_run']) or '(nothing)'}",
    ]
    if nt["add_error"]:
        out.append("  " + st.bad(f"t.add_(1) raised {nt['add_error']}"))
    print("\n".join(out))
    return EXIT_OK


def _suggest(name: str) -> list[str]:
    names = sorted(_registry.operators)
    prefix = name if "::" in name else f"aten::{name}"
    starts = [n for n in names if n.startswith(prefix + ".") or n == prefix]
    return starts or difflib.get_close_matches(prefix, names, n=5, cutoff=0.6)


def cmd_table(op: str, fmt: str) -> int:
    try:
        text = dispatch.dump_table(op)
        entry = resolve_entry(op)
    except RuntimeError as exc:
        hint = _suggest(op)
        msg = f"{exc}"
        if hint:
            msg += f" (did you mean: {', '.join(hint)}?)"
        msg += "; the table needs a full overload name such as aten::add_.Tensor"
        raise UsageError(msg) from None
    if fmt == "json":
        entries = [
            {
                "key": e.key.name,
                "kernel": e.kernel.display_name if e.kernel is not None else None,
                "debug": e.kernel.debug if e.kernel is not None else None,
                "provenance": e.provenance,
                "source": e.source.name if e.source is not None else None,
                "fallthrough": e.is_fallthrough,
            }
            for e in entry.table[1:]
        ]
        emit_json({"op": entry.name, "schema": str(entry.schema), "table": entries, "dump": text})
    else:
        print(text, end="")
    return EXIT_OK
