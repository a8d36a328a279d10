"""BackendSelect kernels for factory functions: mirrors the generated
``RegisterBackendSelect.cpp``.

A factory has no tensor argument to take a backend key from; its BackendSelect
kernel reads ``device=`` and redispatches with that backend's key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatch.dispatcher import redispatch_raw
from dispatch.keys import DEVICE_BACKEND, DispatchKey
from dispatch.operator import OperatorEntry
from dispatch.tensorimpl import Device

_AFTER_BACKEND_SELECT = DispatchKey.BackendSelect.bit - 1


def make_backend_select_kernel(entry: OperatorEntry) -> Callable[..., Any]:
    schema = entry.schema
    assert schema is not None
    device_pos = next(i for i, a in enumerate(schema.arguments) if a.name == "device")

    def backend_select(ks: int, *args: Any) -> Any:
        device = args[device_pos]
        backend = DEVICE_BACKEND[Device(device).type if device is not None else "cpu"]
        return redispatch_raw(entry, (ks & _AFTER_BACKEND_SELECT) | backend.bit, args)

    return backend_select
