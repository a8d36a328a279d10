"""Differential autograd fuzzing against a real ``torch==2.13.0``.

Hypothesis draws random programs over a small pool of float64 tensors — functional
ops (broadcasting binary, unary, reductions over dims, the matmul family), views
(view/reshape/t/transpose/permute/unsqueeze/squeeze/expand/narrow/select/indexing/
split/chunk/unbind/view_as/contiguous), in-place ops (on leaves, clones, views of
clones; view-metadata in-place ops; setitem), clone/detach/detach_, requires_grad_,
retain_grad, steps under ``no_grad``, backward / ``autograd.grad`` in the middle —
and ends with a scalar loss and ``backward()`` or ``autograd.grad``. Every line runs
on torch and on dispatchsim in lockstep (tests/oracle_programs.py); after every line
every live tensor is compared (values, requires_grad, is_leaf, grad_fn name and graph,
_is_view, _base, _version, grad), and a line that raises must raise the same builtin
exception type with the same text in both. A failure prints the (shrunk) program as
runnable torch code.

Besides the random programs: handwritten programs for the tricky cases of the reference
((c), (f)) and the programs the fuzzer found (``FOUND_BY_FUZZING``), one test each.

Not generated: inference mode (tests/test_inference_fuzz.py covers it), create_graph /
``gradient=``, negative slice steps and tensor indices, and a view-metadata in-place op
on a tensor that retains grad (torch 2.13 trips an internal assert there). Operators
dispatchsim does not have are not generated either (sigmoid_/tanh_/log_/sin_/cos_,
squeeze_(dim), clamp, flatten, swapdims/movedim, diagonal, where, masked_fill_, ...).

``DISPATCHSIM_FUZZ_EXAMPLES`` overrides the number of fuzzed programs (default 800 —
about 20 s — or 5000 under the "thorough" profile); ``DISPATCHSIM_FUZZ_STEPS`` the
maximum number of random steps per program (12).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oracle_programs import Lockstep, ProgramGenerator

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.oracle

# ~20 ms a program: the default keeps the "ci" profile's run well under a minute
_DEFAULT_EXAMPLES = {"thorough": 5000, "dev": 200}.get(
    os.environ.get("HYPOTHESIS_PROFILE", ""), 800
)
FUZZ_EXAMPLES = int(os.environ.get("DISPATCHSIM_FUZZ_EXAMPLES", _DEFAULT_EXAMPLES))
MAX_STEPS = int(os.environ.get("DISPATCHSIM_FUZZ_STEPS", "12"))


def _run_random_program(data: st.DataObject) -> None:
    run = Lockstep(torch)
    gen = ProgramGenerator(data, run.torch_ns)
    for _ in range(data.draw(st.integers(1, 3))):
        run.step(gen.leaf())
    for _ in range(data.draw(st.integers(0, MAX_STEPS))):
        run.step(gen.step())
    loss_line, loss = gen.final_loss()
    run.step(loss_line)
    run.step(gen.final_backward(loss))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_programs_match_torch(data: st.DataObject) -> None:
    _run_random_program(data)


# ---------------------------------------------------------------------------------------------
# handwritten regressions: the tricky cases of reference (c) and (f)
# ---------------------------------------------------------------------------------------------
X = "np.array([[1.0, 2.0, -1.0], [0.5, -2.0, 3.0]])"
LEAF = f"t0 = torch.tensor({X}, requires_grad=True)"
PLAIN = f"t9 = torch.tensor({X})"  # a leaf that does not require grad

REGRESSIONS: dict[str, list[str]] = {
    # in-place on views of non-leaves: base gets CopySlices, view AsStridedBackward0
    "inplace_on_view_of_nonleaf": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0]",
        "t2.mul_(2.0)",
        "t3 = t1.sum()",
        "t3.backward()",
    ],
    "inplace_on_view_of_view_of_nonleaf": [
        LEAF,
        "t1 = t0.exp()",
        "t2 = t1.t()",
        "t3 = t2[1:, 0]",
        "t3.add_(t0[0, 1:])",
        "t4 = t1.sum() + t2.sum()",
        "t4.backward()",
    ],
    "inplace_on_view_with_grad_operand_makes_base_require_grad": [
        LEAF,
        PLAIN,
        "t9[1].mul_(t0[0])",
        "t8 = t9.sum()",
        "t8.backward()",
    ],
    "setitem_on_plain_leaf_from_grad_tensor": [LEAF, PLAIN, "t9[0] = t0[1]", "t9.sum().backward()"],
    "base_modified_after_view_regenerates_grad_fn": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[:, 1]",
        "t1.mul_(t0)",
        "t3 = (t2 * 2.0).sum()",
        "t3.backward()",
    ],
    # multi-output views modified in place
    "unbind_output_modified_inplace": [
        LEAF,
        "t1 = t0.clone()",
        "(t2, t3,) = t1.unbind(0)",
        "t2.add_(1.0)",
        "t3.mul_(t0[0])",
    ],
    "split_output_modified_inplace": [
        LEAF,
        "t1 = t0.clone()",
        "(t2, t3,) = t1.split(1, 0)",
        "t2.zero_()",
    ],
    "chunk_output_view_modified_inplace": [
        LEAF,
        "t1 = t0.clone()",
        "(t2, t3,) = t1.chunk(2, 1)",
        "t4 = t2.view(-1)",
        "t4.add_(1.0)",
    ],
    "unbind_in_no_grad_then_inplace": [
        LEAF,
        "t1 = t0.clone()",
        "with torch.no_grad(): (t2, t3,) = t1.unbind(0)",
        "t2.add_(1.0)",
    ],
    # no_grad views modified in place: direct and indirect errors
    "no_grad_view_modified_with_grad_direct": [
        LEAF,
        "t1 = t0.clone()",
        "with torch.no_grad(): t2 = t1.view(-1)",
        "t2.add_(1.0)",
    ],
    "no_grad_view_of_view_direct": [
        LEAF,
        "t1 = t0.clone()",
        "with torch.no_grad(): t2 = t1.view(-1)",
        "t3 = t2[1:]",
        "t3.add_(1.0)",
    ],
    "no_grad_view_base_modified_with_grad_indirect": [
        LEAF,
        "t1 = t0.clone()",
        "with torch.no_grad(): t2 = t1[0]",
        "t1.add_(1.0)",
        "t3 = t2 * 2.0",
    ],
    "no_grad_view_base_modified_in_no_grad_indirect": [
        LEAF,
        "t1 = t0.clone()",
        "with torch.no_grad(): t2 = t1[0]",
        "with torch.no_grad(): t1.mul_(2.0)",
        "t3 = t2 * 2.0",
    ],
    "no_grad_view_of_leaf_inplace_in_no_grad": [
        LEAF,
        "with torch.no_grad(): t1 = t0.view(-1)",
        "with torch.no_grad(): t1.add_(1.0)",
        "t2 = (t1 * 2.0).sum()",
        "t2.backward()",
    ],
    # leaves and views of leaves
    "view_of_leaf_inplace_error": [LEAF, "t1 = t0[0]", "t1.add_(1.0)", "t0[1] = 5.0"],
    "leaf_inplace_error": [LEAF, "t0.add_(1.0)", "t0 += 1.0", "t0.zero_()", "t0.t_()"],
    "leaf_inplace_in_no_grad_is_allowed": [
        LEAF,
        "with torch.no_grad(): t0.mul_(2.0)",
        "with torch.no_grad(): t0[0] = 1.0",
        "t0.sum().backward()",
    ],
    "plain_leaf_inplace_with_grad_operand": [LEAF, PLAIN, "t9 += t0", "t9.sum().backward()"],
    "detach_of_view_error": [LEAF, "t1 = t0.clone()", "t2 = t1[0]", "t2.detach_()", "t1.detach_()"],
    "inplace_on_expanded_error": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0].expand(2, 3)",
        "t2.add_(1.0)",
    ],
    # saved tensors modified in place: version errors
    "saved_result_modified": [
        LEAF,
        "t1 = t0.exp()",
        "t1.add_(1.0)",
        "t1.sum().backward()",
    ],
    "saved_input_of_nonleaf_modified": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1 * t1",
        "t1.add_(1.0)",
        "t1.add_(1.0)",
        "t1.t_()",
        "t2.sum().backward()",
    ],
    "saved_plain_leaf_modified": [
        LEAF,
        PLAIN,
        "t1 = t0 * t9",
        "t9.add_(1.0)",
        "t1.sum().backward()",
    ],
    "saved_view_base_modified": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0]",
        "t3 = t2.sin()",
        "t1.mul_(2.0)",
        "t3.sum().backward()",
    ],
    "detach_then_inplace_breaks_backward": [
        LEAF,
        "t1 = t0.sigmoid()",
        "t2 = t1.detach()",
        "t2.zero_()",
        "t1.sum().backward()",
    ],
    "no_grad_inplace_breaks_backward": [
        LEAF,
        "t1 = t0.tanh()",
        "with torch.no_grad(): t1 *= 2.0",
        "t1.sum().backward()",
    ],
    # the result of an in-place op on a view is saved with the view's grad_fn of that time,
    # named while that node lives (torch's weak_grad_fn_), else the node that saved it
    "saved_result_of_inplace_on_view_names_view_node": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0]",
        "t2.exp_()",
        "t3 = t2 * 2.0",
        "with torch.no_grad(): t2.add_(1.0)",
        "t1.sum().backward()",
    ],
    "saved_result_of_inplace_on_view_dead_view_node": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0]",
        "t2.relu_()",
        "t2.add_(1.0)",
        "t1.sum().backward()",
    ],
    # a saved output detached in place is unpacked with the node that saved it (no error)
    "saved_output_detached_inplace_still_unpacks": [
        LEAF,
        "t1 = t0.exp()",
        "t2 = t1 * 2.0",
        "t1.detach_()",
        "t2.sum().backward()",
    ],
    # pow's gradient for self is where(exponent == 0, 0, ...): 0 even for a nan self or an
    # infinite incoming gradient
    "pow_zero_exponent_masks_nan_self": [
        "t0 = torch.tensor(np.array([-1.0, 2.0]), requires_grad=True)",
        "t1 = torch.tensor(np.array([0.0, 0.0]), requires_grad=True)",
        "t2 = t0.log().pow(t1)",
        "t2.sum().backward()",
    ],
    "pow_zero_exponent_masks_inf_grad": [
        "t0 = torch.tensor(np.array([0.0, 2.0]), requires_grad=True)",
        "t1 = torch.tensor(np.array([0.0, 0.0]), requires_grad=True)",
        "t2 = (t0 * 1.0).pow(t1) * t0.reciprocal()",
        "t2.sum().backward()",
    ],
    # backward twice, retain_graph
    "backward_twice_error": [LEAF, "t1 = (t0 * 2.0).sum()", "t1.backward()", "t1.backward()"],
    "backward_twice_through_saved_result": [
        LEAF,
        "t1 = t0.exp().sum()",
        "t1.backward()",
        "t1.backward()",
    ],
    "retain_graph_accumulates": [
        LEAF,
        "t1 = (t0 * t0).sum()",
        "t1.backward(retain_graph=True)",
        "t1.backward()",
        "t1.backward()",
    ],
    "autograd_grad_retain_graph": [
        LEAF,
        "t1 = (t0.sin() * t0).sum()",
        "(t2,) = torch.autograd.grad(t1, (t0,), retain_graph=True)",
        "(t3,) = torch.autograd.grad(t1, (t0,))",
        "(t4,) = torch.autograd.grad(t1, (t0,))",
    ],
    "backward_on_non_scalar_and_on_no_grad": [
        LEAF,
        PLAIN,
        "t1 = t0 * 2.0",
        "t1.backward()",
        "t9.sum().backward()",
        "(t2,) = torch.autograd.grad(t1.sum(), (t9,))",
    ],
    "autograd_grad_unused": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t0.exp().sum()",
        "(t3,) = torch.autograd.grad(t2, (t1,), retain_graph=True)",
        "(t4,) = torch.autograd.grad(t2, (t1,), allow_unused=True)",
    ],
    "requires_grad_on_non_leaf": [LEAF, "t1 = t0 * 2.0", "t1.requires_grad_(False)"],
    "retain_grad_on_view_modified_inplace": [
        LEAF,
        "t1 = t0.clone()",
        "t1.retain_grad()",
        "t2 = t1[0]",
        "t2.mul_(3.0)",
        "t1.sum().backward()",
    ],
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_program_matches_torch(name: str) -> None:
    Lockstep(torch).run(REGRESSIONS[name])


# ---------------------------------------------------------------------------------------------
# programs the fuzzer found (shrunk, then cleaned by hand): each one differed from torch when
# found; those that pass now guard the fix, the others fail until dispatchsim matches torch
# ---------------------------------------------------------------------------------------------
FOUND_BY_FUZZING: dict[str, list[str]] = {
    # gradients returned by autograd.grad: torch accumulates a second contribution in place (version 1)
    "grad_output_version": [
        LEAF,
        "t1 = (t0.sin() * t0).sum()",
        "(t2,) = torch.autograd.grad(t1, (t0,))",
    ],
    # ... and returns sum_to's result as a non-view
    "grad_output_is_view": [
        LEAF,
        "t1 = torch.tensor(np.array(1.0), requires_grad=True)",
        "t2 = t0.add(t1)",
        "(t3,) = torch.autograd.grad(t2.sum(), (t1,))",
    ],
    "grad_output_requires_grad": [
        "t0 = torch.tensor(np.array(1.0), requires_grad=True)",
        "(t1,) = torch.autograd.grad(t0.sum(), (t0,))",
    ],
    # the same tensor twice in autograd.grad's inputs gets its gradient twice
    "grad_same_input_twice": [
        LEAF,
        "t1 = t0.contiguous()",
        "(t2, t3,) = torch.autograd.grad(t0.sum(), (t0, t1,))",
    ],
    # backward(inputs=...) stores a gradient that later accumulates in place
    "backward_inputs_then_backward": [
        LEAF,
        "t0.sum().backward(inputs=[t0])",
        "t0.sum().backward()",
    ],
    "accumulate_into_readonly_grad": [
        "t0 = torch.tensor(np.array(1.0), requires_grad=True)",
        "t1 = t0.view(-1)",
        "with torch.no_grad(): t0.add_(t0)",
        "t1.sum().backward()",
        "t0.backward()",
    ],
    # AccumulateGrad runs before other ready nodes (torch: sequence_nr UINT64_MAX)
    "accumulate_grad_runs_first": [
        "t0 = torch.tensor(np.ones((3, 3)), requires_grad=True)",
        "t1 = torch.tensor(np.ones((2, 3)), requires_grad=True)",
        "t2 = t1.neg()",
        "t3 = t0 @ t0",
        "with torch.no_grad(): t0.add_(t0)",
        "t4 = t1.sum() + t3.sum()",
        "t4.backward()",
    ],
    "accumulate_after_requires_grad_false": [
        LEAF,
        "t1 = t0.clone()",
        "t0.requires_grad_(False)",
        "t1.sum().backward()",
    ],
    "accumulate_after_detach_": [LEAF, "t1 = t0.neg()", "t0.detach_()", "t1.sum().backward()"],
    # the engine validates gradients against the recorded input metadata
    "leaf_shape_changed_in_no_grad": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = t0.neg()",
        "with torch.no_grad(): t0.unsqueeze_(1)",
        "t0.sum().backward()",
    ],
    # _make_grads (scalar check) runs before the engine's requires-grad check
    "backward_nonscalar_no_grad_view": [
        LEAF,
        "with torch.no_grad(): t1 = t0.view(-1)",
        "t1.backward()",
        "(t2,) = torch.autograd.grad(t1, (t0,))",
    ],
    # a node none of whose inputs need a gradient computes nothing
    "formula_runs_without_needed_inputs": [
        LEAF,
        PLAIN,
        "with torch.no_grad(): t1 = t0.permute(0, 1)",
        "t2 = t9.div(t1)",
        "t2.sum().backward()",
    ],
    # ... but saves (and so unpacks, checking versions) what several formulas use
    "unneeded_node_still_checks_versions": [
        LEAF,
        PLAIN,
        "with torch.no_grad(): t1 = t0.permute(0, 1)",
        "t2 = t9.div(t1)",
        "with torch.no_grad(): t1.mul_(2.0)",
        "t2.sum().backward()",
    ],
    # saved tensors are unpacked eagerly, in torch's per-node order (mul/mm: other first; mv/dot: self first)
    "saved_unpack_order": [
        "t1 = torch.tensor(np.array([[1.0], [1.0]]), requires_grad=True)",
        "(t2, t3,) = t1.unbind(0)",
        "t4 = t2 @ t3",
        "with torch.no_grad(): t1.neg_()",
        "t4.backward()",
    ],
    "saved_unpack_order_mv": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = torch.tensor(np.ones(3), requires_grad=True).clone()",
        "t3 = t1.mv(t2)",
        "t1.add_(1.0)",
        "t2.add_(1.0)",
        "t2.add_(1.0)",
        "t3.sum().backward()",
    ],
    "saved_unpack_order_pow": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = torch.tensor(np.ones(3), requires_grad=True).clone()",
        "t3 = t1.pow(t2)",
        "t1.add_(1.0)",
        "t2.add_(1.0)",
        "t2.add_(1.0)",
        "t3.sum().backward()",
    ],
    "pow_zero_unpacks_saved_self": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1.pow(0)",
        "t1.add_(t0)",
        "t2.sum().backward()",
    ],
    # what PowBackward saves
    "pow_scalar_base_saves_exponent": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = 2.0 ** t1",
        "t1.add_(1.0)",
        "t2.sum().backward()",
    ],
    "pow_inplace_tensor_saves_result": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t0 * 1.0",
        "t1.pow_(t2)",
        "t1.mul_(1.0)",
        "t1.sum().backward()",
    ],
    # a saved non-leaf detached in place
    "saved_tensor_detached_inplace": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = t0.neg()",
        "t2 = t0 @ t1",
        "t1.detach_()",
        "t2.backward()",
    ],
    # version-error texts
    "version_msg_saved_output": [LEAF, "t1 = t0.exp()", "t1.add_(1.0)", "t1.sum().backward()"],
    "version_msg_node_suffix": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1 * t1",
        "t1.t_()",
        "t2.sum().backward()",
    ],
    "version_msg_saved_output_shape": [LEAF, "t1 = t0.exp()", "t1.t_()", "t1.sum().backward()"],
    # ReluBackward0 is threshold_backward (a mask, not a product)
    "relu_backward_inf": [
        "t0 = torch.tensor(np.array([1.0, -1.0]), requires_grad=True)",
        "t1 = t0.relu()",
        "t2 = t0.div(t1)",
        "t2.sum().backward()",
    ],
    "relu_backward_nan": [
        "t0 = torch.tensor(np.array([1.0, -1.0]), requires_grad=True)",
        "t1 = t0.log()",
        "t2 = t1.relu()",
        "t2.sum().backward()",
    ],
    # relu is clamp_min(0): x < 0 ? 0 : x keeps -0.0 (1 / -0.0 = -inf)
    "relu_keeps_negative_zero": [
        "t0 = torch.tensor(np.array([-1.0, 2.0]), requires_grad=True)",
        "t1 = t0 * 0.0",
        "t2 = t1.relu()",
        "t3 = t1.clone().relu_()",
        "t4 = 1.0 / t2 + 1.0 / t3",
        "t4.sum().backward()",
    ],
    # pow.Tensor_Scalar's fast paths: x ** -0.5 is rsqrt, 1 / sqrt(-0.0) = -inf
    "pow_half_at_negative_zero": [
        "t0 = torch.tensor(np.array([-0.0, 0.0, 4.0]), requires_grad=True)",
        "t1 = t0.pow(0.5)",
        "t2 = t0.pow(-0.5)",
        "t1.sum().backward()",
    ],
    # error messages name a node by forward_op_name: CopyBackwards is kept whole
    "version_msg_copy_backwards_name": [
        LEAF,
        "t1 = t0.sum(0)",
        "t1.mul_(t1)",
        "t1[...] = t1",
        "t1.sum().backward()",
    ],
    # t_/transpose_/unsqueeze_/squeeze_ on a view: the view's own node, base untouched
    "view_metadata_inplace_on_view": [LEAF, "t1 = t0.neg()", "t2 = t1.view(-1, 2)", "t2.t_()"],
    "retain_grad_then_t_": [
        "t0 = torch.tensor(np.ones((2, 1)), requires_grad=True)",
        "t1 = t0.neg()",
        "t1.retain_grad()",
        "t1.t_()",
        "t1.sum().backward()",
    ],
    # retain_grad on views
    "retain_grad_stale_no_grad_view": [
        LEAF,
        "with torch.no_grad(): t1 = t0.view(-1)",
        "with torch.no_grad(): t0.neg_()",
        "t1.retain_grad()",
    ],
    "retain_grad_view_regenerated": [
        LEAF,
        "t1 = t0.view(-1)",
        "t1.retain_grad()",
        "with torch.no_grad(): t0.mul_(2.0)",
        "t2 = t1.sum()",
        "t2.backward()",
    ],
    # AsStridedBackward0 (a view regenerated after its base changed in place) is torch's
    # as_strided_backward: the gradient is a view of a fresh "storage", written once (version 1)
    "regenerated_view_grad_is_view_of_storage": [
        LEAF,
        "t1 = t0.view(-1)",
        "with torch.no_grad(): t0.mul_(2.0)",
        "(t2,) = torch.autograd.grad(t1.sum(), (t0,))",
    ],
    # ... an empty view's is at::zeros (empty + zero_(): version 1, not a view)
    "regenerated_empty_view_grad": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0:0]",
        "t1.mul_(2.0)",
        "(t3,) = torch.autograd.grad(t2.sum(), (t1,))",
    ],
    # ... a view overlapping itself scatter-adds (index_add_ in torch)
    "regenerated_overlapping_view_grad": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1.as_strided((2, 2, 2), (3, 1, 1), 0)",
        "t1.mul_(2.0)",
        "(t3,) = torch.autograd.grad((t2 * t2).sum(), (t1,))",
    ],
    # backward(inputs=[non-leaf]) calls retain_grad() on it (autograd.cpp run_backward): its
    # .grad is filled by the hook (once), here and in any later backward / autograd.grad
    "backward_inputs_non_leaf_retains_grad": [
        LEAF,
        "t1 = t0.neg()",
        "t0.sum().backward(inputs=[t1])",
        "(t2,) = torch.autograd.grad(t1.sum(), (t0,))",
    ],
    "backward_inputs_non_leaf_twice": [
        LEAF,
        "t1 = t0.neg()",
        "(t1 * 2.0).sum().backward(inputs=[t1, t1])",
        "(t1 * 2.0).sum().backward(inputs=[t0])",
    ],
    "backward_inputs_not_requiring_grad": [
        LEAF,
        "t9 = torch.tensor(np.array([1.0]))",
        "t0.sum().backward(inputs=[t9])",
    ],
    # setitem follows torch's copy_to: whole index -> self, scalar -> fill_, value view+expand
    "setitem_whole_index_leaf": [LEAF, "t0[...] = 1.0"],
    "setitem_whole_slice_nonleaf": [LEAF, "t1 = t0.clone()", "t1[0:2] = 1.0"],
    "setitem_scalar_fill": [LEAF, "t1 = t0.clone()", "t1[:] = 1.0"],
    "setitem_value_view_expand": [
        LEAF,
        "t9 = torch.tensor(np.zeros((2, 3)))",
        "t9[0, None] = t0[1]",
    ],
    "setitem_leading_ones": [
        "t9 = torch.tensor(np.zeros(3))",
        "t8 = torch.tensor(np.ones((1, 1, 2)))",
        "t9[0:2] = t8",
    ],
    "setitem_bad_value_shape": [LEAF, "t0[None, 0] = t0"],
    # getitem's slice optimisation
    "getitem_single_full_slice": [LEAF, "t1 = t0[:]"],
    "getitem_tuple_full_slice": [LEAF, "t1 = t0[0:2, 0]", "t2 = t0[0, 0:3]", "t3 = t0[..., 0:3]"],
    "getitem_zero_dim_slice": [
        "t0 = torch.tensor(np.array(1.0), requires_grad=True)",
        "t1 = t0[:]",
    ],
    "getitem_two_ellipsis": [LEAF, "t1 = t0[..., ...]"],
    "index_error_dim_with_none": [LEAF, "t1 = t0[None, 5]"],
    # matmul's decomposition (at::native::_matmul_impl): results are not views
    "matmul_1d_2d": [
        "t0 = torch.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)",
        "t1 = torch.tensor(np.ones((3, 2)), requires_grad=True)",
        "t2 = t0 @ t1",
    ],
    "matmul_2d_3d": [
        "t0 = torch.tensor(np.ones((2, 3)), requires_grad=True)",
        "t1 = torch.tensor(np.ones((2, 3, 2)), requires_grad=True)",
        "t2 = t0 @ t1",
    ],
    "matmul_3d_2d": [
        "t0 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t1 = torch.tensor(np.ones((3, 2)), requires_grad=True)",
        "t2 = t0 @ t1",
    ],
    "matmul_3d_1d_error": [
        "t0 = torch.tensor(np.ones((2, 3, 2)), requires_grad=True)",
        "t1 = torch.tensor(np.ones(3), requires_grad=True)",
        "t2 = t0 @ t1",
    ],
    "mv_zero_dim": ["t0 = torch.tensor(np.array(1.0), requires_grad=True)", "t1 = t0.mv(t0)"],
    "rsub_node": [LEAF, "t1 = 2.0 - t0"],
    "rdiv_node": [LEAF, "t1 = 2.0 / t0"],
    "reshape_alias_node": [LEAF, "t1 = t0.t()", "t2 = t1.reshape(1, 3, 2)"],
    # ... and gives an overlapping (expanded) input dense strides in its strides' order
    "clone_of_expanded_is_dense": [
        "t0 = torch.tensor(np.array([[1.0, 2.0, -1.0]]))",
        "t1 = t0.expand(2, 3)",
        "t2 = t1.clone()",
        "t3 = t2.view(3, 2)",
    ],
    "clone_preserves_strides": [
        LEAF,
        "t1 = t0.t()",
        "t2 = t1.clone()",
        "t3 = t2.contiguous()",
        "t4 = t2.view(-1)",
    ],
    # dim checks and error texts
    "zero_dim_sum_dims": [
        "t0 = torch.tensor(np.array(1.0), requires_grad=True)",
        "t1 = t0.sum((0, -1))",
        "t2 = t0.sum(1)",
    ],
    "zero_dim_unbind_dim": [
        "t0 = torch.tensor(np.array(1.0), requires_grad=True)",
        "(t1,) = t0.unbind(1)",
    ],
    "expand_error_dim": [LEAF, "t1 = t0.expand(3, 4)"],
    "split_sizes_error_dim": [LEAF, "(t1,) = t0.split([3, 1], -1)"],
    "narrow_negative_length": [LEAF, "t1 = t0.narrow(1, 1, -1)"],
    "t__error_text": [
        "t0 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t1 = t0.neg()",
        "t1.t_()",
    ],
    # memory overlap
    "fill_on_expanded": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[0:1].expand(2, 3)",
        "t2.zero_()",
        "t2.fill_(2.0)",
    ],
    "partial_overlap_copy": [PLAIN, "t9.copy_(t9[0])", "t9.add_(t9[1])"],
    "partial_overlap_permuted": [
        "t0 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t1 = t0 * 1.0",
        "t2 = t1.permute(1, 0, 2)",
        "t1.sub_(t2)",
    ],
    "inplace_from_strided_view_of_itself": [
        "t0 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t1 = t0.clone()",
        "t2 = t1.select(1, 0)",
        "t1.add_(t2)",
    ],
    "empty_clone_and_inplace": [
        LEAF,
        "t1 = t0.narrow(0, 0, 0)",
        "t2 = t1.clone()",
        "t9 = torch.tensor(np.ones((0, 3)))",
        "t9.add_(1.0)",
    ],
    # AsStridedBackward0 returns the input's geometry over a fresh storage: a view, version 1
    "as_strided_backward_is_a_view_of_its_storage": [
        "t0 = torch.tensor(np.array([1.0, 1.0, 1.0]), requires_grad=True)",
        "t1 = t0.detach()",
        "t2 = t0.view(-1)",
        "t1.add_(t0)",
        "(t3,) = torch.autograd.grad(t2.sum(), (t0,))",
    ],
    "as_strided_backward_of_a_narrowed_view": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1[:, 1:]",
        "t1.mul_(2.0)",
        "(t3,) = torch.autograd.grad(t2.sum(), (t0,))",
    ],
    # unsqueeze keeps the other strides (inferUnsqueezeGeometry): t2[None] and the expanded
    # value have equal strides, a full overlap, so the copy is allowed
    "setitem_unsqueezed_self_full_overlap": [
        "t0 = torch.tensor(np.array([[1.0, 1.0, 1.0]]), requires_grad=True)",
        "t2 = t0.t()",
        "with torch.no_grad(): t2[None] = t2",
    ],
    # TensorIterator checks memory overlap before shapes (and shapes before dtypes)
    "partial_overlap_before_broadcast_shape": [
        "t0 = torch.tensor(np.array([[1.0], [1.0]]))",
        "t2 = t0.view(-1)",
        "t0.add_(t2)",
        "t0.copy_(t2)",
        "t0.pow_(t2)",
    ],
    # a broadcasting op lays its output out like TensorIterator (the operands' stride order),
    # so a view of it can fail as torch's does
    "broadcast_output_layout_then_view": [
        "t0 = torch.tensor(np.ones((3, 2)), requires_grad=True)",
        "t1 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t4 = t0.t().add(t1)",
        "t5 = t4.view(-1)",
    ],
    # SqueezeBackward passes the gradient through when there is no size-1 dimension to restore
    "squeeze_backward_without_size_one_dims": [
        "t0 = torch.tensor(np.ones((2, 2, 3)), requires_grad=True)",
        "t1 = t0.squeeze(0)",
        "t2 = t0.squeeze()",
        "(t3,) = torch.autograd.grad(t1.neg().sum(), (t0,))",
        "(t4,) = torch.autograd.grad(t2.neg().sum(), (t0,))",
        "t5 = torch.tensor(np.ones((2, 1, 3)), requires_grad=True)",
        "(t6,) = torch.autograd.grad(t5.squeeze(1).neg().sum(), (t5,))",
        "(t7,) = torch.autograd.grad(t5.squeeze().neg().sum(), (t5,))",
    ],
    # reshape of a contiguous tensor goes straight to view: its Autograd kernel's grad_fn
    # check runs before any size check
    "reshape_contiguous_is_view_first": [
        "t1 = torch.tensor(np.array([1.0, 1.0, 1.0]), requires_grad=True)",
        "(t3, t4, t5,) = t1.unbind(0)",
        "with torch.no_grad(): t1.neg_()",
        "t9 = t3.reshape(2)",
    ],
    "second_backward_through_copyslices": [
        "t0 = torch.tensor(np.array([[1.0, 1.0, 1.0]]), requires_grad=True)",
        "t1 = t0.view(-1)",
        "t2 = t0.neg()",
        "t2[0, None, 0] = 1.0",
        "t3 = t2 @ t1",
        "t3.backward()",
        "t9 = t2.sum()",
        "t9.backward()",
    ],
}


@pytest.mark.parametrize("name", list(FOUND_BY_FUZZING))
def test_program_found_by_fuzzing_matches_torch(name: str) -> None:
    Lockstep(torch).run(FOUND_BY_FUZZING[name])


# ---------------------------------------------------------------------------------------------
# the engine (engine.cpp / input_buffer.cpp / accumulate_grad.h), written by hand against torch:
# input-buffer accumulation in place only when the engine holds the gradient alone, captures,
# backward(inputs=), the ready queue's order, validate_outputs
# ---------------------------------------------------------------------------------------------
ENGINE_PROGRAMS: dict[str, list[str]] = {
    # the same gradient reaches an input twice (a + a): shared, so added out of place (version 0)
    "buffer_shared_gradient_added_out_of_place": [
        LEAF,
        "t1 = t0 + t0",
        "(t2,) = torch.autograd.grad(t1.sum(), (t0,))",
    ],
    # ... and once the sum is the engine's own, the next contribution goes in place
    "buffer_shared_then_owned": [
        LEAF,
        "t1 = t0 + t0 + t0.exp()",
        "(t2,) = torch.autograd.grad(t1.sum(), (t0,))",
    ],
    "buffer_three_contributions": [
        LEAF,
        "t1 = t0.exp() + t0.sin() + t0.cos()",
        "(t2,) = torch.autograd.grad(t1.sum(), (t0,))",
    ],
    # a view (t of a product) is never repurposed, its base holds its memory too (version 0);
    # a fresh gradient buffered first is (version 1)
    "buffer_view_added_out_of_place": [
        LEAF,
        "t1 = t0.exp()",
        "t2 = (t0.t() * 2.0).t() + t1",
        "(t3,) = torch.autograd.grad(t2.sum(), (t0,))",
    ],
    "buffer_fresh_then_view_added_in_place": [
        LEAF,
        "t1 = t0.t() * 2.0",
        "t2 = t1.t() + t0.exp()",
        "(t3,) = torch.autograd.grad(t2.sum(), (t0,))",
    ],
    "buffer_broadcast_reduced": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = torch.tensor(np.ones((2, 3)), requires_grad=True)",
        "t2 = t0 * t1 + t0.exp()",
        "(t3,) = torch.autograd.grad(t2.sum(), (t0,))",
    ],
    # a captured gradient stays as captured while it flows on
    "captured_gradient_flows_on": [
        LEAF,
        "t1 = t0.exp()",
        "t2 = t1 * t1 + t0",
        "(t3, t4,) = torch.autograd.grad(t2.sum(), (t1, t0,))",
    ],
    "captured_gradient_passed_through": [
        LEAF,
        "t1 = t0.clone()",
        "t2 = t1 + t0.exp()",
        "(t3, t4,) = torch.autograd.grad(t2.sum(), (t1, t0,))",
    ],
    # backward(inputs=) calls retain_grad() on each input first
    "backward_inputs_not_requiring_grad": [
        LEAF,
        "t9 = torch.tensor(np.ones(3))",
        "t0.sum().backward(inputs=[t9])",
    ],
    "backward_inputs_non_leaf": [
        LEAF,
        "t1 = t0 * 2.0",
        "t2 = t1 * t1",
        "t2.sum().backward(inputs=[t1])",
    ],
    # AccumulateGrad steals a gradient that obeys the layout contract
    "accumulate_steals_then_adds_in_place": [
        LEAF,
        "t1 = t0.t() * 2.0",
        "t1.t().sum().backward()",
        "t0.sum().backward()",
    ],
    # ready AccumulateGrad nodes of equal sequence_nr run in torch's heap order: the first edge's
    # leaf is updated before the second one raises
    "accumulate_grad_order_first_edge": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = torch.tensor(np.ones(3), requires_grad=True)",
        "t2 = t0 + t1",
        "t1.requires_grad_(False)",
        "t1.add_(t0)",
        "t2.sum().backward()",
    ],
    "accumulate_grad_order_second_edge": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = torch.tensor(np.ones(3), requires_grad=True)",
        "t2 = t1 + t0",
        "t1.requires_grad_(False)",
        "t1.add_(t0)",
        "t2.sum().backward()",
    ],
    # a node whose outputs fail validate_outputs keeps its saved tensors
    "invalid_gradient_keeps_graph": [
        "t0 = torch.tensor(np.ones(3), requires_grad=True)",
        "t1 = t0.exp()",
        "with torch.no_grad(): t0.unsqueeze_(1)",
        "t2 = t1.sum()",
        "t2.backward()",
        "with torch.no_grad(): t0.squeeze_()",
        "t2.backward()",
    ],
    # the root of autograd.grad runs its retain_grad hook even when nothing needs it
    "retain_grad_on_unneeded_root": [
        LEAF,
        "t1 = t0 * 2.0",
        "t1.retain_grad()",
        "t9 = torch.tensor(np.ones(3), requires_grad=True)",
        "(t2,) = torch.autograd.grad(t1.sum(), (t9,), allow_unused=True)",
    ],
}


@pytest.mark.parametrize("name", list(ENGINE_PROGRAMS))
def test_engine_program_matches_torch(name: str) -> None:
    Lockstep(torch).run(ENGINE_PROGRAMS[name])


def test_lockstep_detects_a_difference() -> None:
    """The harness can fail: a program whose two runs differ is reported with its listing."""
    run = Lockstep(torch)
    run.step(LEAF)
    run.sim_ns["t0"].requires_grad_(False)  # sabotage the dispatchsim side only
    with pytest.raises(AssertionError, match=r"(?s)t0 = torch\.tensor.*t0\.requires_grad"):
        run.step("t1 = t0 * 2.0")


def test_view_strides_match_torch() -> None:
    """Strides decide overlap checks and copies: every view op on odd layouts gives torch's."""

    def strides(m: object) -> list[tuple[int, ...]]:
        out = []
        b = m.ones(2, 1, 3)  # type: ignore[attr-defined]
        row = m.ones(1, 3)  # type: ignore[attr-defined]
        for x in (row.t(), row, b, b.permute(2, 0, 1), b[:, :, 0:1], b.transpose(0, 1)):
            out += [x.unsqueeze(d).stride() for d in range(-x.dim() - 1, x.dim() + 1)]
            out += [x.squeeze().stride(), x[None].stride(), x[:, None].stride()]
            out += [x.squeeze(d).stride() for d in range(x.dim())]
            out += [x.expand(2, *x.shape).stride(), x.reshape(-1).stride(), x.clone().stride()]
            y = x.clone()
            y.unsqueeze_(1)
            out.append(y.stride())
        return out

    import dispatch

    assert strides(dispatch) == strides(torch)


def test_pointwise_output_strides_match_torch() -> None:
    """TensorIterator's output layout: same-layout operands keep it, broadcasting orders the
    output's dimensions by the operands' strides."""
    import dispatch

    def strides(m: Any) -> list[tuple[int, ...]]:
        a, b, c = m.ones(3, 2), m.ones(2, 2, 3), m.ones(2, 1, 3)
        at, bp = a.t(), b.permute(2, 0, 1)
        return [
            (at + b).stride(),
            (at * 2).stride(),
            (2 - at).stride(),
            (at + c).stride(),
            (bp + c.permute(2, 0, 1)).stride(),
            (b[:, :, ::2] + 1).stride(),
            (at > b).stride(),
            at.pow(b).stride(),
            (at / m.ones(3)).stride(),
            at.neg().stride(),
        ]

    assert strides(dispatch) == strides(torch)
