"""dispatch.testing.opcheck: it passes for the standard operators and correct custom ones,
and each of its rules fails, naming itself and the argument, for an operator that breaks
it."""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import dispatch
import modes
from dispatch.testing import MissingAutogradWarning, OpCheckError, opcheck
from kernels.autograd.gradcheck import GradcheckError

A = dispatch.ops.aten
_ns = itertools.count()


@contextlib.contextmanager
def user_op(schema: str, **kernels: Any) -> Iterator[dispatch.OpOverload]:
    """``schema`` in a fresh namespace with ``kernels`` (key -> fn; ``Autograd`` kernels are
    factories ``op -> kernel`` registered with_keyset)."""
    ns = f"opchecktest{next(_ns)}"
    with dispatch.Library(ns, "DEF") as lib:
        name = lib.define(schema)
        op = getattr(getattr(dispatch.ops, ns), name).default
        for key, fn in kernels.items():
            lib.impl(name, fn(op) if key == "Autograd" else fn, key, with_keyset=key == "Autograd")
        yield op


def straight_through(slope: float | None = None) -> Callable[[dispatch.OpOverload], Any]:
    """Autograd kernel for ``op(x, s)``: the CPU value, gradient ``slope`` (default s)."""

    def make(op: dispatch.OpOverload) -> Any:
        def kernel(ks: Any, x: Any, s: float) -> Any:
            y = op.redispatch(ks & dispatch.after_autograd_keyset, x, s)
            return y.detach() + (x - x.detach()) * (s if slope is None else slope)

        return kernel

    return make


def passthrough(op: dispatch.OpOverload) -> Any:
    return lambda ks, *args: op.redispatch(ks & dispatch.after_autograd_keyset, *args)


_rng = np.random.default_rng(0)


def randn(*shape: int, requires_grad: bool = False) -> dispatch.Tensor:
    return dispatch.tensor(_rng.normal(size=shape), requires_grad=requires_grad)


def fails(op: Any, args: tuple[Any, ...], test: str, rule: str, argument: str | None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingAutogradWarning)
        with pytest.raises(OpCheckError) as info:
            opcheck(op, args)
    e = info.value
    assert (e.test, e.rule, e.argument) == (test, rule, argument), str(e)
    text = str(e)
    assert text.startswith(f"opcheck(op, ...): {test} failed with ")
    assert f"\n  rule: {rule}" in text
    assert "\n  sample: " in text
    return text


SUCCESS = {
    "test_schema": "SUCCESS",
    "test_modes": "SUCCESS",
    "test_autograd_registration": "SUCCESS",
    "test_gradcheck": "SUCCESS",
}


# -- it passes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "args"),
    [
        (A.add.Tensor, lambda: (randn(3, requires_grad=True), randn(3))),
        (A.add_.Tensor, lambda: (randn(2, 3), randn(3))),
        (A.mul_.Tensor, lambda: (randn(3), 2.0)),
        (A.copy_.default, lambda: (randn(3), randn(3))),
        (A.view.default, lambda: (randn(2, 3), [3, 2])),
        (A.t_.default, lambda: (randn(2, 3),)),
        (A.transpose.int, lambda: (randn(2, 3), 0, 1)),
        (A.split.Tensor, lambda: (randn(4, 3), 2)),
        (A.sum.dim_IntList, lambda: (randn(2, 3, requires_grad=True), [1])),
        (A.matmul.default, lambda: (randn(2, 3), randn(3, 2))),
    ],
    ids=lambda v: str(v) if isinstance(v, dispatch.OpOverload) else "",
)
def test_standard_operators_pass(op: dispatch.OpOverload, args: Callable[[], Any]) -> None:
    assert opcheck(op, args()) == SUCCESS


def test_a_correct_custom_operator_passes_and_its_arguments_are_untouched() -> None:
    with user_op(
        "scale(Tensor x, float s) -> Tensor",
        CPU=lambda x, s: x.detach() * s,
        Autograd=straight_through(),
    ) as op:
        x = randn(3, requires_grad=True)
        data = x.detach().numpy().copy()
        assert opcheck(op, (x, 2.0)) == SUCCESS
        assert opcheck(op, (), {"x": x, "s": -1.5}) == SUCCESS  # arguments by keyword
        np.testing.assert_array_equal(x.detach().numpy(), data)
        assert x._version == 0 and x.grad is None


def test_the_callers_arguments_are_not_mutated_by_an_inplace_operator() -> None:
    x = randn(3)
    before = x.numpy().copy()
    assert opcheck(A.mul_.Tensor, (x, 3.0)) == SUCCESS
    np.testing.assert_array_equal(x.numpy(), before)
    assert x._version == 0


# -- test_schema -----------------------------------------------------------------------------
def test_mutating_an_argument_not_marked_mutable_fails() -> None:
    def cpu(x: Any, s: float) -> Any:
        a = x.detach().numpy()
        a *= s
        return dispatch.tensor(a)

    with user_op("scale(Tensor x, float s) -> Tensor", CPU=cpu, Autograd=straight_through()) as op:
        text = fails(op, (randn(3), 2.0), "test_schema", "mutation", "x")
        assert "failed with Argument x is not defined as mutable but was mutated" in text
        assert "\n  sample: x=tensor([" in text and ", s=2.0" in text


def test_an_argument_marked_mutable_but_not_written_fails() -> None:
    with user_op("touch_(Tensor(a!) x) -> Tensor(a!)", CPU=lambda x: x) as op:
        text = fails(op, (randn(3),), "test_schema", "mutation", "x")
        assert "Argument x is defined as mutable (Tensor(a!)) but was not mutated" in text


def test_a_version_bumped_twice_fails() -> None:
    def cpu(x: Any) -> Any:
        x._data[...] = -x._data
        return x

    def autograd(op: dispatch.OpOverload) -> Any:
        def kernel(ks: Any, x: Any) -> Any:
            x.add_(0)  # a second, dispatched in-place call: a second bump
            return op.redispatch(ks & dispatch.after_autograd_keyset, x)

        return kernel

    with user_op("neg2_(Tensor(a!) x) -> Tensor(a!)", CPU=cpu, Autograd=autograd) as op:
        text = fails(op, (randn(3),), "test_schema", "version", "x")
        assert "Argument x: its version counter moved by 2, expected 1" in text


def test_an_unannotated_alias_of_an_argument_fails() -> None:
    with user_op("f(Tensor x) -> Tensor", CPU=lambda x: dispatch.ops.aten.alias(x)) as op:
        text = fails(op, (randn(3),), "test_schema", "alias", "x")
        assert "Argument x is not defined to alias output but was aliasing (output 0)" in text


def test_an_argument_marked_mutable_whose_write_changes_nothing_fails() -> None:
    x = randn(3)
    text = fails(A.copy_.default, (x, x.clone()), "test_schema", "mutation", "self")
    assert "choose samples for which the write is visible" in text


def test_an_annotated_alias_that_is_a_copy_fails() -> None:
    with user_op("v(Tensor(a) x) -> Tensor(a)", CPU=lambda x: x.detach().clone()) as op:
        text = fails(op, (randn(3),), "test_schema", "alias", "x")
        assert "Output 0 is defined to alias argument x (Tensor(a)) but does not share" in text


def test_returning_a_non_mutable_input_as_is_fails() -> None:
    # (a composite kernel: the derived ADInplaceOrView kernel does not run)
    with user_op("v(Tensor(a) x) -> Tensor(a)", CompositeImplicitAutograd=lambda x: x) as op:
        text = fails(op, (randn(3),), "test_schema", "alias", "x")
        assert (
            "Dispatcher operators below autograd are not allowed to directly return inputs.\n"
            "However, we found that `outputs[0] is x" in text
        )


def test_outputs_aliasing_each_other_fail() -> None:
    def cpu(x: Any) -> Any:
        y = x.detach().clone()
        return y, y.view(-1)

    with user_op("two(Tensor x) -> (Tensor, Tensor)", CPU=cpu) as op:
        text = fails(op, (randn(3),), "test_schema", "alias", None)
        assert "Outputs 0 and 1 alias unexpectedly" in text


# -- test_modes ------------------------------------------------------------------------------
def test_results_that_depend_on_the_mode_fail() -> None:
    def cpu(x: Any) -> Any:
        return x.detach() + (1.0 if modes.is_grad_enabled() else 2.0)

    with user_op("f(Tensor x) -> Tensor", CPU=cpu, Autograd=passthrough) as op:
        text = fails(op, (randn(3),), "test_modes", "modes", None)
        assert "output 0 differs between normal mode and no_grad" in text


def test_an_operator_that_refuses_inference_tensors_fails() -> None:
    def cpu(x: Any) -> Any:
        if x.is_inference():
            raise RuntimeError("no inference tensors, please")
        return x.detach() * 2

    with user_op("f(Tensor x) -> Tensor", CPU=cpu, Autograd=passthrough) as op:
        text = fails(op, (randn(3),), "test_modes", "modes", None)
        assert "ran in normal mode but raised in inference_mode with inference tensors" in text
        assert "no inference tensors, please" in text


def test_a_mutation_that_depends_on_the_mode_fails() -> None:
    def cpu(x: Any) -> Any:
        x._data[...] = x._data * (3 if modes.is_inference_mode_enabled() else 2)
        return x

    with user_op("f_(Tensor(a!) x) -> Tensor(a!)", CPU=cpu, Autograd=passthrough) as op:
        text = fails(op, (randn(3),), "test_modes", "modes", None)
        assert "output 0 differs between normal mode and inference_mode" in text


# -- test_autograd_registration --------------------------------------------------------------
def test_an_operator_without_an_autograd_kernel_warns() -> None:
    with user_op("f(Tensor x) -> Tensor", CPU=lambda x: x.detach() * 2) as op:
        with pytest.warns(MissingAutogradWarning, match=r"^opchecktest\d+::f.default: the op"):
            result = opcheck(op, (randn(3),))
        assert result["test_autograd_registration"] == "SUCCESS"
        assert result["test_gradcheck"] == "SKIPPED"


def test_an_operator_without_tensor_outputs_does_not_warn() -> None:
    with user_op("f(Tensor x) -> int", CPU=lambda x: 3) as op, warnings.catch_warnings():
        warnings.simplefilter("error", MissingAutogradWarning)
        assert opcheck(op, (randn(3),), test_utils="test_autograd_registration") == {
            "test_autograd_registration": "SUCCESS"
        }


def test_autograd_recorded_by_the_backend_kernel_fails() -> None:
    # the CPU kernel is reached by the autograd fallback with nothing excluded: the ops it
    # calls record autograd themselves, and the output's grad_fn is theirs
    with user_op("f(Tensor x) -> Tensor", CPU=lambda x: x * 2) as op:
        text = fails(
            op,
            (randn(3, requires_grad=True),),
            "test_autograd_registration",
            "autograd_registration",
            None,
        )
        assert "at least one output of this operator has requires_grad=True but the" in text


# -- test_gradcheck --------------------------------------------------------------------------
def test_a_wrong_backward_fails_gradcheck() -> None:
    with user_op(
        "scale(Tensor x, float s) -> Tensor",
        CPU=lambda x, s: x.detach() * s,
        Autograd=straight_through(slope=1.0),
    ) as op:
        with pytest.raises(OpCheckError) as info:
            opcheck(op, (randn(3, requires_grad=True), 2.0))
        assert info.value.test == "test_gradcheck"
        assert info.value.rule == "GradcheckError"
        assert isinstance(info.value.__cause__, GradcheckError)
        assert "Jacobian mismatch for output 0 with respect to input 0" in str(info.value)


def test_gradcheck_differentiates_an_inplace_operator_through_a_clone() -> None:
    with user_op(
        "scale_(Tensor(a!) x, float s) -> Tensor(a!)",
        CPU=lambda x, s: x.copy_(x * s),
        CompositeImplicitAutograd=lambda x, s: x.mul_(s),
    ) as op:
        assert opcheck(op, (randn(3), 3.0))["test_gradcheck"] == "SUCCESS"


# -- the interface ---------------------------------------------------------------------------
def test_raise_exception_false_returns_the_failures() -> None:
    with user_op("v(Tensor(a) x) -> Tensor(a)", CPU=lambda x: x.detach().clone()) as op:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingAutogradWarning)
            result = opcheck(op, (randn(3),), raise_exception=False)
        assert isinstance(result["test_schema"], RuntimeError)
        assert "does not share its memory" in str(result["test_schema"])
        assert result["test_modes"] == "SUCCESS"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="if you specify one of rtol/atol, you must specify both"):
        opcheck(A.add.Tensor, (randn(3), randn(3)), rtol=1e-3)
    with pytest.raises(ValueError, match="expected test_utils to be subset of"):
        opcheck(A.add.Tensor, (randn(3), randn(3)), test_utils=("test_faketensor",))
    with pytest.raises(ValueError, match="has overloads"):
        opcheck(A.add, (randn(3), randn(3)))
    assert opcheck("aten::add.Tensor", (randn(3), randn(3)), test_utils="test_schema") == {
        "test_schema": "SUCCESS"
    }
