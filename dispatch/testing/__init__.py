"""Property-testing toolkit for dispatchsim (and for operators users register with it).

* strategies (hypothesis): :func:`dispatch_keys`, :func:`keysets`, :func:`guards`,
  :func:`guard_stacks`, :func:`tls_states`, :func:`tensors`, :func:`schemas`,
  :func:`op_calls`, :func:`programs`;
* :class:`DispatchStateMachine`: a ``RuleBasedStateMachine`` checking the dispatch
  invariants after every step; ``DispatchStateMachine.for_ops(op).TestCase`` tests ``op``;
* :func:`opcheck`: ``torch.library.opcheck`` for dispatchsim operators;
* the reference models and invariant checks they use (:class:`GuardSpec`,
  :class:`TLSState`, :func:`check_tensor`, :func:`check_dispatch_tables`, ...);
* a pytest plugin (``dispatch.testing._plugin``, entry point ``pytest11``).

Needs hypothesis (``pip install 'dispatchsim[test]'``); ``import dispatch`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import hypothesis as _hypothesis
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    _MISSING: ImportError | None = _exc
else:
    _MISSING = None
    del _hypothesis

__all__ = [
    "GUARD_NAMES",
    "DispatchInvariantError",
    "DispatchStateMachine",
    "GuardSpec",
    "GuardStack",
    "GuardStep",
    "MissingAutogradWarning",
    "OpCall",
    "OpCheckError",
    "Program",
    "ProgramRun",
    "Registration",
    "Step",
    "StepOutcome",
    "TLSState",
    "check_dispatch_tables",
    "check_operator_table",
    "check_tensor",
    "check_tls",
    "default_tls",
    "dispatch_keys",
    "expected_entry",
    "guard_stacks",
    "guards",
    "keysets",
    "op_calls",
    "opcheck",
    "programs",
    "resolve_op",
    "run_guard_steps",
    "schemas",
    "tensors",
    "tls_states",
]

_NEEDS_HYPOTHESIS = (
    "dispatch.testing needs hypothesis, which is not installed: "
    "pip install 'dispatchsim[test]' (or pip install hypothesis)"
)

if _MISSING is None or TYPE_CHECKING:
    from dispatch.testing._machine import DispatchStateMachine
    from dispatch.testing._model import (
        GUARD_NAMES,
        DispatchInvariantError,
        GuardSpec,
        GuardStack,
        GuardStep,
        Registration,
        TLSState,
        check_dispatch_tables,
        check_operator_table,
        check_tensor,
        check_tls,
        default_tls,
        expected_entry,
        run_guard_steps,
    )
    from dispatch.testing._opcheck import MissingAutogradWarning, OpCheckError, opcheck
    from dispatch.testing._strategies import (
        OpCall,
        Program,
        ProgramRun,
        Step,
        StepOutcome,
        dispatch_keys,
        guard_stacks,
        guards,
        keysets,
        op_calls,
        programs,
        resolve_op,
        schemas,
        tensors,
        tls_states,
    )
else:  # pragma: no cover - exercised in a subprocess test

    def __getattr__(name: str) -> Any:
        if name in __all__:
            raise ImportError(_NEEDS_HYPOTHESIS) from _MISSING
        raise AttributeError(f"module 'dispatch.testing' has no attribute '{name}'")
