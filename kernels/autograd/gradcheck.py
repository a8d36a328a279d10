"""Gradient checks: mirrors ``torch.autograd.gradcheck`` / ``gradgradcheck``
(torch/autograd/gradcheck.py).

:func:`gradcheck` compares the Jacobian that autograd computes (one backward
pass per output element, a one-hot ``grad_outputs`` each) with a numerical one
(central differences: each element of each input that requires grad is moved
by ``±eps`` in place and the function is run again). :func:`gradgradcheck`
gradchecks the function ``(inputs, grad_outputs) -> autograd.grad(fn(inputs),
inputs, grad_outputs, create_graph=True)``, i.e. the derivative formulas'
own derivatives.

As in PyTorch, the inputs are perturbed through their memory, behind autograd's
back (PyTorch writes through ``Tensor.data``; dispatchsim writes the numpy
array): their version counters do not move, and each element is restored
bit for bit before the next one is perturbed. Outputs are copied right after
each call, so an output that is a view of an input is not changed by the next
perturbation.

Supported: real (float) inputs given as the top-level arguments of ``fn``;
reverse mode only (dispatchsim has no forward-mode AD and no vmap, so
``check_forward_ad`` / ``check_batched_grad`` raise NotImplementedError).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dispatch import dtypes as _dt
from dispatch.factories import rand
from dispatch.factories import tensor as _tensor
from dispatch.tensorimpl import Tensor
from kernels.autograd.engine import grad as _grad
from kernels.autograd.graph import Node, collect_next_edges

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """Error raised by :func:`gradcheck` and :func:`gradgradcheck`."""


FAILED_NONDET_MSG = """\n
NOTE: If your op relies on non-deterministic operations i.e., it is listed here:
https://pytorch.org/docs/stable/generated/torch.use_deterministic_algorithms.html
this failure might be expected.

If you are adding a new operator, please file an issue and then use one of the
workarounds. The workaround depends on how your test invokes gradcheck/gradgradcheck.
If the test
- manually invokes gradcheck/gradgradcheck, then call gradcheck/gradgradcheck
  with `nondet_tol=<tol>` as a keyword argument.
- is OpInfo-based (e.g., in test_ops_gradients.py), then modify the OpInfo for the test
  to have `gradcheck_nondet_tol=<tol>`.
- is a Module test (e.g., in common_nn.py), then modify the corresponding
  module_test entry to have `gradcheck_nondet_tol=<tol>`
"""

FAST_FAIL_SLOW_OK_MSG = """
Fast gradcheck failed but element-wise differences are small. This means that the
test might've passed in slow_mode!

If you are adding a new operator, please file an issue and then use one of the
workarounds. The workaround depends on how your test invokes gradcheck/gradgradcheck:

If the test
- manually invokes gradcheck/gradgradcheck, then call gradcheck/gradgradcheck
  with `fast_mode=False` as a keyword argument.
- is OpInfo-based (e.g., in test_ops_gradients.py), then modify the OpInfo for the test
  to have `gradcheck_fast_mode=False`
- is a Module test (e.g., in common_nn.py), then modify the corresponding
  module_test entry to have `gradcheck_fast_mode=False`
""".strip()

Func = Callable[..., Any]
TensorOrTensors = Tensor | Sequence[Tensor]
Jacobian = np.ndarray[Any, Any]


# -- helpers ------------------------------------------------------------------------------------
def _as_tuple(x: Any) -> tuple[Any, ...]:
    if isinstance(x, tuple):
        return x
    if isinstance(x, list):
        return tuple(x)
    return (x,)


def _differentiable_outputs(x: Any) -> tuple[Tensor, ...]:
    return tuple(o for o in _as_tuple(x) if isinstance(o, Tensor) and o.requires_grad)


def _diff_inputs(tupled_inputs: tuple[Any, ...]) -> list[tuple[int, Tensor]]:
    return [
        (i, t) for i, t in enumerate(tupled_inputs) if isinstance(t, Tensor) and t.requires_grad
    ]


def _array(t: Tensor) -> np.ndarray[Any, Any]:
    """The tensor's numpy array (no autograd involved)."""
    return t._data


def _from_array(a: np.ndarray[Any, Any]) -> Tensor:
    """A new tensor that does not require grad (never through ``*_like``: those would be
    recorded by autograd when their argument requires grad)."""
    return _tensor(a, dtype=_dt.from_numpy(a.dtype))


def _allclose(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], rtol: float, atol: float) -> bool:
    """``torch.allclose(a, b, rtol, atol)`` after type promotion: |a - b| <= atol + rtol*|b|."""
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=False))


def _notallclose_msg(
    analytical: np.ndarray[Any, Any], numerical: np.ndarray[Any, Any], out_idx: int, in_idx: int
) -> str:
    return (
        f"Jacobian mismatch for output {out_idx:d} with respect to input {in_idx:d},\n"
        f"numerical:{_from_array(numerical)}\nanalytical:{_from_array(analytical)}\n"
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside this module
    (the user's call of gradcheck or gradgradcheck)."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _check_inputs(tupled_inputs: tuple[Any, ...]) -> None:
    any_input_requiring_grad = False
    for idx, inp in enumerate(tupled_inputs):
        if isinstance(inp, Tensor) and inp.requires_grad:
            if inp.dtype is not _dt.float64:
                warnings.warn(
                    f"Input #{idx} requires gradient and "
                    "is not a double precision floating point or complex. "
                    "This check will likely fail if all the inputs are "
                    "not of double precision floating point or complex. ",
                    UserWarning,
                    stacklevel=_caller_stacklevel(),
                )
            # (an empty tensor has nothing to overlap, whatever strides it reports)
            if inp.numel() and not all(
                st > 0 or sz <= 1 for st, sz in zip(inp.stride(), inp.shape)
            ):
                raise RuntimeError(
                    f"The {idx}th input has a dimension with stride 0. gradcheck only "
                    "supports inputs that are non-overlapping to be able to "
                    "compute the numerical gradients correctly. You should call "
                    ".contiguous on the input before passing it to gradcheck."
                )
            if inp.is_meta:
                raise ValueError(
                    f"Input #{idx} is a meta tensor: gradcheck needs values to differentiate "
                    "numerically"
                )
            any_input_requiring_grad = True
    if not any_input_requiring_grad:
        raise ValueError(
            "gradcheck expects at least one input tensor to require gradient, "
            "but none of them have requires_grad=True."
        )


def _evaluate(func: Func, tupled_inputs: tuple[Any, ...]) -> list[np.ndarray[Any, Any] | None]:
    """Run ``func`` and copy its tensor outputs (an output may be a view of an input)."""
    return [
        np.array(_array(o), copy=True) if isinstance(o, Tensor) else None
        for o in _as_tuple(func(*tupled_inputs))
    ]


def _check_same_dtype_and_shape(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], eps: float, idx: Any = None
) -> None:
    on_index = f"on index {idx} " if idx is not None else ""
    if a.shape != b.shape:
        raise AssertionError(
            f"Expected `func` to return outputs with the same shape"
            f" when inputs are perturbed {on_index}by {eps}, but got:"
            f" shapes {tuple(a.shape)} and {tuple(b.shape)}."
        )
    if a.dtype != b.dtype:
        raise AssertionError(
            f"Expected `func` to return outputs with the same dtype"
            f" when inputs are perturbed {on_index}by {eps}, but got:"
            f" dtypes {a.dtype} and {b.dtype}."
        )


def _central_difference(
    func: Func,
    tupled_inputs: tuple[Any, ...],
    arr: np.ndarray[Any, Any],
    where: Any,
    delta: Any,
    eps: float,
    idx: Any = None,
) -> list[np.ndarray[Any, Any] | None]:
    """(f(x + delta) - f(x - delta)) / (2 eps) per output, ``x`` = ``arr[where]`` moved in
    place and restored exactly."""
    orig = np.array(arr[where], copy=True)
    try:
        arr[where] = orig - delta
        outa = _evaluate(func, tupled_inputs)
        arr[where] = orig + delta
        outb = _evaluate(func, tupled_inputs)
    finally:
        arr[where] = orig
    out: list[np.ndarray[Any, Any] | None] = []
    for a, b in zip(outa, outb):
        if a is None or b is None:
            out.append(None)
            continue
        _check_same_dtype_and_shape(a, b, eps, idx)
        out.append(((b - a) / (2 * eps)).reshape(-1))
    return out


def _numerical_jacobian(
    func: Func, tupled_inputs: tuple[Any, ...], inp: Tensor, eps: float, func_out: tuple[Any, ...]
) -> list[Jacobian | None]:
    """Per output of ``func`` (``func_out`` is one call's result): the
    ``(inp.numel(), out.numel())`` Jacobian of that output with respect to ``inp``
    (None for an output that is not a float tensor)."""
    arr = _array(inp)
    jacobians: list[Jacobian | None] = [
        np.zeros((arr.size, o.numel()), dtype=_array(o).dtype)
        if isinstance(o, Tensor) and o.dtype.is_floating_point
        else None
        for o in func_out
    ]
    for k in range(arr.size):
        idx = tuple(int(i) for i in np.unravel_index(k, arr.shape))
        cols = _central_difference(func, tupled_inputs, arr, idx, eps, eps, idx)
        if len(cols) != len(jacobians):
            raise AssertionError(
                f"Expected `func` to return the same number of outputs when inputs are "
                f"perturbed on index {idx} by {eps}, but got {len(cols)} and {len(jacobians)}."
            )
        for jac, col in zip(jacobians, cols):
            if jac is not None and col is not None:
                jac[k] = col
    return jacobians


def _analytical_rows(
    output: Tensor, diff_inputs: list[Tensor], v: np.ndarray[Any, Any] | None
) -> list[list[Tensor | None]]:
    """``rows[i][j]``: d(output)/d(input i) contracted with the j-th one-hot grad_output
    (or, with ``v``, with ``v`` only: one row per input)."""
    shape = tuple(output.shape)
    dtype = _array(output).dtype
    rows: list[list[Tensor | None]] = [[] for _ in diff_inputs]
    grad_outs: list[np.ndarray[Any, Any]]
    if v is not None:
        grad_outs = [v.reshape(shape).astype(dtype)]
    else:
        grad_outs = []
        for j in range(output.numel()):
            one_hot = np.zeros(output.numel(), dtype=dtype)
            one_hot[j] = 1
            grad_outs.append(one_hot.reshape(shape))
    for go in grad_outs:
        grads = _grad(output, diff_inputs, _from_array(go), retain_graph=True, allow_unused=True)
        for i, g in enumerate(grads):
            rows[i].append(None if g is None else _from_array(np.array(_array(g), copy=True)))
    return rows


def _stack_rows(
    rows: list[list[Tensor | None]], diff_inputs: list[Tensor], n_rows: int
) -> tuple[list[Jacobian], bool, bool]:
    jacobians: list[Jacobian] = []
    sizes_ok = True
    types_ok = True
    for inp, inp_rows in zip(diff_inputs, rows):
        jac = np.zeros((inp.numel(), n_rows), dtype=_array(inp).dtype)
        for j, g in enumerate(inp_rows):
            if g is None:
                continue
            if tuple(g.shape) != tuple(inp.shape):
                sizes_ok = False
                continue
            if g.dtype is not inp.dtype:
                types_ok = False
            jac[:, j] = _array(g).reshape(-1)
        jacobians.append(jac)
    return jacobians, sizes_ok, types_ok


def _analytical_jacobian(
    diff_inputs: list[Tensor],
    output: Tensor,
    nondet_tol: float,
    check_grad_dtypes: bool,
    v: np.ndarray[Any, Any] | None = None,
) -> list[Jacobian]:
    """Per differentiable input, its ``(numel, output.numel())`` Jacobian (with ``v``:
    ``(numel, 1)``, the vector-Jacobian product); computed twice to check reentrancy."""
    n_rows = 1 if v is not None else output.numel()
    jac1, sizes_ok, types_ok = _stack_rows(
        _analytical_rows(output, diff_inputs, v), diff_inputs, n_rows
    )
    jac2, _, _ = _stack_rows(_analytical_rows(output, diff_inputs, v), diff_inputs, n_rows)
    reentrant = all(
        j1.size == 0 or float(np.abs(j1 - j2).max()) <= nondet_tol for j1, j2 in zip(jac1, jac2)
    )
    if not types_ok and check_grad_dtypes:
        raise GradcheckError("Gradient has dtype mismatch")
    if not sizes_ok:
        raise GradcheckError("Analytical gradient has incorrect size")
    if not reentrant:
        raise GradcheckError(
            "Backward is not reentrant, i.e., running backward with "
            "same input and grad_output multiple times gives different values, "
            "although analytical gradient matches numerical gradient."
            f"The tolerance for nondeterminism was {nondet_tol}." + FAILED_NONDET_MSG
        )
    return jac1


# -- slow mode ------------------------------------------------------------------------------------
def _slow_gradcheck(
    func: Func,
    func_out: tuple[Any, ...],
    tupled_inputs: tuple[Any, ...],
    outputs: tuple[Tensor, ...],
    eps: float,
    rtol: float,
    atol: float,
    check_grad_dtypes: bool,
    nondet_tol: float,
) -> None:
    diff = _diff_inputs(tupled_inputs)
    # numerical[input k][output of func j]
    numerical = [_numerical_jacobian(func, tupled_inputs, t, eps, func_out) for _, t in diff]
    if not outputs:
        for per_input in numerical:
            for jac in per_input:
                if jac is not None and np.count_nonzero(jac) > 0:
                    raise GradcheckError("Numerical gradient for function expected to be zero")
        return
    out_positions = [j for j, o in enumerate(func_out) if isinstance(o, Tensor) and o.requires_grad]
    diff_inputs = [t for _, t in diff]
    for i, (pos, o) in enumerate(zip(out_positions, outputs)):
        analytical = _analytical_jacobian(diff_inputs, o, nondet_tol, check_grad_dtypes)
        for k, a in enumerate(analytical):
            n = numerical[k][pos]
            if n is None:  # a non-float output cannot require grad; kept for safety
                continue
            if a.shape != n.shape or not _allclose(a, n, rtol, atol):
                raise GradcheckError(_notallclose_msg(a, n, i, k))


# -- fast mode ------------------------------------------------------------------------------------
def _unit_vector(n: int, dtype: Any, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    vec = rng.random(n).astype(dtype)
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def _fast_gradcheck(
    func: Func,
    func_out: tuple[Any, ...],
    tupled_inputs: tuple[Any, ...],
    outputs: tuple[Tensor, ...],
    eps: float,
    rtol: float,
    atol: float,
    check_grad_dtypes: bool,
    nondet_tol: float,
) -> None:
    """https://github.com/pytorch/pytorch/issues/53876: compare v^T J u computed both ways
    for random unit vectors u (per input) and v (per output)."""
    rng = np.random.default_rng(67280421310721)  # torch.Generator()'s default seed
    diff = _diff_inputs(tupled_inputs)
    diff_inputs = [t for _, t in diff]
    all_u = [_unit_vector(t.numel(), _array(t).dtype, rng) for t in diff_inputs]
    all_v = [_unit_vector(o.numel(), _array(o).dtype, rng) for o in outputs]
    out_positions = [j for j, o in enumerate(func_out) if isinstance(o, Tensor) and o.requires_grad]
    # numerical J u, per input, per output of func
    all_ju: list[list[np.ndarray[Any, Any] | None]] = []
    for t, u in zip(diff_inputs, all_u):
        arr = _array(t)
        all_ju.append(
            _central_difference(func, tupled_inputs, arr, (...,), u.reshape(arr.shape) * eps, eps)
        )
    if not outputs:
        for per_input in all_ju:
            for ju in per_input:
                if ju is not None and ju.size and float(np.abs(ju).max()) > nondet_tol:
                    raise GradcheckError("Numerical gradient for function expected to be zero")
        return
    for j, (pos, o, v) in enumerate(zip(out_positions, outputs, all_v)):
        vj = _analytical_jacobian(diff_inputs, o, nondet_tol, check_grad_dtypes, v=v)
        for i, (u, row) in enumerate(zip(all_u, vj)):
            ju = all_ju[i][pos]
            if ju is None:
                continue
            a = np.asarray(row.reshape(-1) @ u)
            n = np.asarray(v @ ju)
            adjusted_atol = atol * float(u.sum()) * float(v.sum())
            if not _allclose(a, n, rtol, adjusted_atol):
                raise GradcheckError(
                    _notallclose_msg(a, n, j, i)
                    + _slow_mode_error(func, tupled_inputs, diff_inputs, o, pos, i, rtol, atol, eps)
                )


def _slow_mode_error(
    func: Func,
    tupled_inputs: tuple[Any, ...],
    diff_inputs: list[Tensor],
    output: Tensor,
    out_pos: int,
    input_idx: int,
    rtol: float,
    atol: float,
    eps: float,
) -> str:
    slow_numerical = _numerical_jacobian(
        func, tupled_inputs, diff_inputs[input_idx], eps, _as_tuple(func(*tupled_inputs))
    )[out_pos]
    slow_analytical = _analytical_jacobian(diff_inputs, output, float("inf"), False)[input_idx]
    assert slow_numerical is not None
    slow_max_diff = float(np.abs(slow_numerical - slow_analytical).max(initial=0.0))
    slow_allclose = _allclose(slow_analytical, slow_numerical, rtol, atol)
    msg = (
        "\nThe above quantities relating the numerical and analytical jacobians are computed \n"
        "in fast mode. See: https://github.com/pytorch/pytorch/issues/53876 for more background \n"
        "about fast mode. Below, we recompute numerical and analytical jacobians in slow mode:\n\n"
        f"Numerical:\n {_from_array(slow_numerical)}\n"
        f"Analytical:\n{_from_array(slow_analytical)}\n\n"
        f"The max per-element difference (slow mode) is: {slow_max_diff}.\n"
    )
    if slow_allclose:
        msg += FAST_FAIL_SLOW_OK_MSG
    return msg


# -- the checks every mode runs -------------------------------------------------------------------
def _test_backward_mul_by_grad_output(
    outputs: tuple[Tensor, ...], tupled_inputs: tuple[Any, ...]
) -> None:
    diff_inputs = [t for _, t in _diff_inputs(tupled_inputs)]
    if not diff_inputs:
        raise GradcheckError("no Tensors requiring grad found in input")
    zeros = [_from_array(np.zeros(tuple(o.shape), dtype=_array(o).dtype)) for o in outputs]
    grads_input = _grad(list(outputs), diff_inputs, zeros, allow_unused=True)
    for gi, di in zip(grads_input, diff_inputs):
        if gi is None:
            continue
        if np.count_nonzero(_array(gi)) != 0:
            raise GradcheckError("backward not multiplied by grad_output")
        if gi.dtype is not di.dtype:
            raise GradcheckError("grad is incorrect type")
        if gi.device != di.device:
            raise GradcheckError("grad is incorrect device")
        if tuple(gi.shape) != tuple(di.shape):
            raise GradcheckError("grad is incorrect size")


class UndefinedGrad(Node):
    """``torch._C._functions.UndefinedGrad``: passes an *undefined* gradient (None) on, so
    the nodes behind it see a missing output gradient."""

    _name = "UndefinedGradBackward"

    def apply(self, grads: list[Tensor | None]) -> list[Tensor | None]:
        return [None] * len(self._next_edges)


def _undefined_grad(t: Tensor) -> Tensor:
    out = t.detach()
    out._grad_fn = UndefinedGrad(collect_next_edges([t]))
    out._output_nr = 0
    return out


def _test_undefined_backward_mode(
    func: Func, outputs: tuple[Tensor, ...], tupled_inputs: tuple[Any, ...]
) -> None:
    diff_inputs = [t for _, t in _diff_inputs(tupled_inputs)]
    if not diff_inputs:
        raise GradcheckError("no Tensors requiring grad found in input")

    def warn_bc_breaking() -> None:
        warnings.warn(
            "Backwards compatibility: New undefined gradient support checking "
            "feature is enabled by default, but it may break existing callers "
            "of this function. If this is true for you, you can call this "
            'function with "check_undefined_grad=False" to disable the feature',
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )

    def check(output_to_check: list[Tensor]) -> None:
        zeros = [
            _from_array(np.zeros(tuple(o.shape), dtype=_array(o).dtype)) for o in output_to_check
        ]
        try:
            grads_input = _grad(output_to_check, diff_inputs, zeros, allow_unused=True)
        # a formula that does not handle a missing gradient fails in Python with one of these
        except (RuntimeError, TypeError, AttributeError, StopIteration) as e:
            warn_bc_breaking()
            raise GradcheckError(
                "Expected backward function to handle undefined output grads. "
                'Please look at "Notes about undefined output gradients" in '
                '"tools/autograd/derivatives.yaml"'
            ) from e
        for gi in grads_input:
            if gi is not None and np.count_nonzero(_array(gi)) != 0:
                warn_bc_breaking()
                raise GradcheckError(
                    "Expected all input grads to be undefined or zero when all output grads "
                    'are undefined or zero. Please look at "Notes about undefined output '
                    'gradients" in "tools/autograd/derivatives.yaml"'
                )

    check([_undefined_grad(o) for o in _differentiable_outputs(func(*tupled_inputs))])
    # with several outputs, undefining one at a time must work too
    if len(outputs) > 1:
        for undef_idx in range(len(outputs)):
            outs = _differentiable_outputs(func(*tupled_inputs))
            check([_undefined_grad(o) if k == undef_idx else o for k, o in enumerate(outs)])


# -- the API --------------------------------------------------------------------------------------
def gradcheck(
    func: Func,
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_forward_ad: bool = False,
    check_backward_ad: bool = True,
    fast_mode: bool = False,
) -> bool:
    """``torch.autograd.gradcheck``: check the gradients autograd computes for ``func`` at
    ``inputs`` (a tensor or a tuple) against central finite differences, for every input
    that requires grad. Returns True; on a mismatch raises :class:`GradcheckError` (with
    PyTorch's message) or, with ``raise_exception=False``, returns False."""
    if not (check_forward_ad or check_backward_ad):
        raise AssertionError(
            "Expected at least one of check_forward_ad or check_backward_ad to be True"
        )
    if check_forward_ad:
        raise NotImplementedError("gradcheck: forward-mode AD is not modelled by dispatchsim")
    if check_batched_grad:
        raise NotImplementedError(
            "gradcheck: batched gradients (vmap) are not modelled by dispatchsim"
        )
    try:
        return _gradcheck_helper(
            func,
            inputs,
            eps,
            atol,
            rtol,
            nondet_tol,
            check_undefined_grad,
            check_grad_dtypes,
            fast_mode,
        )
    except GradcheckError:
        if raise_exception:
            raise
        return False


def _gradcheck_helper(
    func: Func,
    inputs: Any,
    eps: float,
    atol: float,
    rtol: float,
    nondet_tol: float,
    check_undefined_grad: bool,
    check_grad_dtypes: bool,
    fast_mode: bool,
) -> bool:
    tupled_inputs = _as_tuple(inputs)
    _check_inputs(tupled_inputs)
    func_out = _as_tuple(func(*tupled_inputs))
    outputs = _differentiable_outputs(func_out)
    check = _fast_gradcheck if fast_mode else _slow_gradcheck
    check(func, func_out, tupled_inputs, outputs, eps, rtol, atol, check_grad_dtypes, nondet_tol)
    _test_backward_mul_by_grad_output(outputs, tupled_inputs)
    if check_undefined_grad:
        _test_undefined_backward_mode(func, outputs, tupled_inputs)
    return True


def _random_grad_output(o: Tensor, noncontiguous: bool) -> Tensor:
    """``torch.testing.make_tensor(shape, low=-1, high=1, requires_grad=True)``, from
    dispatchsim's generator (``dispatch.manual_seed`` makes it repeatable)."""
    dtype = o.dtype if o.dtype.is_floating_point else _dt.float64
    shape = list(o.shape)
    values = _array(rand(shape, dtype=dtype)) * 2 - 1
    if noncontiguous and values.size > 1:
        doubled = np.repeat(values, 2, axis=-1)
        base = _from_array(doubled)
        t = base[..., ::2]
    else:
        t = _from_array(values.astype(dtype.numpy))
    return t.requires_grad_()


def gradgradcheck(
    func: Func,
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
    check_batched_grad: bool = False,
    check_fwd_over_rev: bool = False,
    check_rev_over_rev: bool = True,
    fast_mode: bool = False,
) -> bool:
    """``torch.autograd.gradgradcheck``: gradcheck the map ``(inputs, grad_outputs) ->
    autograd.grad(func(inputs), inputs, grad_outputs, create_graph=True)``. Without
    ``grad_outputs``, random float64 ones in [-1, 1) that require grad are made."""
    if not (check_fwd_over_rev or check_rev_over_rev):
        raise AssertionError(
            "Expected at least one of check_fwd_over_rev or check_rev_over_rev to be True"
        )
    if check_undefined_grad and not check_rev_over_rev:
        raise AssertionError(
            "Setting check_undefined_grad=True requires check_rev_over_rev to be True"
        )
    if check_batched_grad and not check_rev_over_rev:
        raise AssertionError(
            "Setting check_batched_grad=True requires check_rev_over_rev to be True"
        )
    tupled_inputs = _as_tuple(inputs)
    if grad_outputs is None:
        outs = _differentiable_outputs(func(*tupled_inputs))
        tupled_grad_outputs = tuple(
            _random_grad_output(o, gen_non_contig_grad_outputs) for o in outs
        )
    else:
        tupled_grad_outputs = _as_tuple(grad_outputs)
    num_outputs = len(tupled_grad_outputs)
    diff_input_args_indices = {
        i for i, x in enumerate(tupled_inputs) if isinstance(x, Tensor) and x.requires_grad
    }
    diff_grad_output_indices = {
        i for i, x in enumerate(tupled_grad_outputs) if isinstance(x, Tensor) and x.requires_grad
    }

    def new_func(*args: Any) -> tuple[Tensor, ...]:
        n_in = len(args) - num_outputs
        input_args = tuple(
            x.requires_grad_() if i in diff_input_args_indices else x
            for i, x in enumerate(args[:n_in])
        )
        outputs = _differentiable_outputs(func(*input_args))
        gos = tuple(
            x.requires_grad_() if i in diff_grad_output_indices else x
            for i, x in enumerate(args[n_in:])
        )
        diff_input_args = [x for i, x in enumerate(input_args) if i in diff_input_args_indices]
        grad_inputs = _grad(
            list(outputs), diff_input_args, list(gos), create_graph=True, allow_unused=True
        )
        return tuple(g for g in grad_inputs if g is not None)

    return gradcheck(
        new_func,
        tupled_inputs + tupled_grad_outputs,
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
        nondet_tol=nondet_tol,
        check_undefined_grad=check_undefined_grad,
        check_grad_dtypes=check_grad_dtypes,
        check_batched_grad=check_batched_grad,
        check_forward_ad=check_fwd_over_rev,
        check_backward_ad=check_rev_over_rev,
        fast_mode=fast_mode,
    )
