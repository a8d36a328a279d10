"""The Gradient Modes document (shared/reference/gradient-modes.txt), statement by statement.

Every statement of the document gets one test named after it, whose docstring quotes it;
every code example of the document is run (``test_example_*``). Where a statement is true
*because of which dispatch keys run*, the test also checks a ``dispatch.trace()``. The
``oracle`` tests at the end run the same small programs on dispatchsim and on a real
``torch==2.13.0`` and compare what is observable (flags, version numbers, error texts,
gradients).

The document's C++ guards map onto dispatchsim as: ``torch::NoGradGuard`` ->
``modes.NoGradGuard``; ``c10::InferenceMode(enabled)`` -> ``modes.InferenceMode(enabled)``;
``at::AutoDispatchBelowADInplaceOrView`` -> ``modes.AutoDispatchBelowADInplaceOrView``; the
legacy ``AutoNonVariableTypeMode`` -> ``modes.AutoNonVariableTypeMode`` (an alias of the
previous one here, see docs/divergences.md; in torch's Python the renamed guard is
``torch._C._AutoDispatchBelowADInplaceOrView``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import dispatch
import modes
from dispatch import DispatchKey
from kernels import autograd
from tests.test_roi_align import (
    make_inputs,
    roi_align_backward_cpu,
    roi_align_cpu,
    roi_align_loop,
)

# ---------------------------------------------------------------------------------------------
# PyTorch 2.13's error texts (reference/pytorch-semantics.md, section (d))
# ---------------------------------------------------------------------------------------------
INPLACE_OUTSIDE_ERR = (
    "Inplace update to inference tensor outside InferenceMode is not allowed.You can make a "
    "clone to get a normal tensor before doing inplace update.See "
    "https://github.com/pytorch/rfcs/pull/17 for more details."
)
VERSION_ERR = "Inference tensors do not track version counter."
REQUIRES_GRAD_ERR = (
    "Setting requires_grad=True on inference tensor outside InferenceMode is not allowed."
)
SAVE_ERR = (
    "Inference tensors cannot be saved for backward. Please do not use Tensors created in "
    "inference mode in computation tracked by autograd. To work around this, you can make a "
    "clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` instead of "
    "`torch.inference_mode()`."
)
MISMATCH_PREFIX = (
    "one of the variables needed for gradient computation has been modified by an inplace operation"
)
LEAF_ERR = "a leaf Variable that requires grad is being used in an in-place operation."

AUTOGRAD_KEYS = frozenset({"AutogradOther", "AutogradCPU", "AutogradMeta"})


def exactly(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


# ---------------------------------------------------------------------------------------------
# Trace helpers
# ---------------------------------------------------------------------------------------------
def keys_of(tr: dispatch.Trace, op: str | None = None) -> list[str]:
    """The keys whose kernels ran (for one operator, or for all), in order."""
    return [k for o, k in tr.keys_run() if op is None or o == op]


def ran_autograd_or_view_kernels(tr: dispatch.Trace) -> set[str]:
    return {k for _, k in tr.keys_run() if k in AUTOGRAD_KEYS or k == "ADInplaceOrView"}


def kernels_per_call(tr: dispatch.Trace) -> list[tuple[str, int]]:
    """(operator, number of kernels that ran for it) for every top-level operator call."""

    def count(e: dispatch.DispatchEvent) -> int:
        return 1 + sum(count(c) for c in e.children)

    return [(root.op, count(root)) for root in tr.roots]


def error_of(fn: Callable[[], Any]) -> str | None:
    try:
        fn()
    except RuntimeError as e:
        return str(e)
    return None


# ---------------------------------------------------------------------------------------------
# A small model and the document's inference workload
# ---------------------------------------------------------------------------------------------
def save_model(directory: Path, seed: int = 0) -> Path:
    """Writes the weights of a 4 -> 8 -> 3 MLP to an .npz file: the ``saved_model``."""
    rng = np.random.default_rng(seed)
    path = directory / "model.npz"
    np.savez(
        path,
        w1=rng.standard_normal((8, 4)).astype(np.float32),
        b1=rng.standard_normal(8).astype(np.float32),
        w2=rng.standard_normal((3, 8)).astype(np.float32),
        b2=rng.standard_normal(3).astype(np.float32),
    )
    return path


def make_data(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 10.0, size=(5, 4)).astype(np.float32)


class TinyMLP:
    """``model.load_jit(saved_model)`` / ``model.forward(inputs)``; every tensor it makes is
    appended to ``seen``."""

    def __init__(self, seen: list[dispatch.Tensor]) -> None:
        self.seen = seen
        self.params: dict[str, dispatch.Tensor] = {}

    def keep(self, t: dispatch.Tensor) -> dispatch.Tensor:
        self.seen.append(t)
        return t

    def load_jit(self, saved_model: Path) -> None:
        with np.load(saved_model) as archive:
            self.params = {k: self.keep(dispatch.tensor(archive[k])) for k in archive.files}

    def forward(self, x: dispatch.Tensor) -> dispatch.Tensor:
        k, p = self.keep, self.params
        h = k(k(x @ k(p["w1"].t())) + p["b1"])
        h = k(h.relu())
        return k(k(h @ k(p["w2"].t())) + p["b2"])


def preprocess_tensors(data: np.ndarray, seen: list[dispatch.Tensor]) -> dispatch.Tensor:
    """Per-row standardisation."""
    k = seen.append
    x = dispatch.tensor(data)
    k(x)
    mean = x.mean(dim=1, keepdim=True)
    k(mean)
    centered = x - mean
    k(centered)
    sq = centered * centered
    k(sq)
    var = sq.mean(dim=1, keepdim=True)
    k(var)
    std = var**0.5
    k(std)
    denom = std + 1e-5
    k(denom)
    out = centered / denom
    k(out)
    return out


def postprocess_tensors(
    logits: dispatch.Tensor, seen: list[dispatch.Tensor]
) -> tuple[dispatch.Tensor, dispatch.Tensor]:
    """Softmax and a one-hot argmax mask (``p_c >= p_j`` for every ``j``)."""
    k = seen.append
    e = logits.exp()
    k(e)
    total = e.sum(dim=1, keepdim=True)
    k(total)
    probs = e / total
    k(probs)
    col, row = probs.unsqueeze(2), probs.unsqueeze(1)
    k(col)
    k(row)
    ge = col.ge(row)
    k(ge)
    wins = ge.sum(dim=2)
    k(wins)
    top = wins.eq(probs.shape[1])
    k(top)
    return probs, top


def reference_workload(saved_model: Path, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.load(saved_model) as a:
        w1, b1, w2, b2 = (a[k].astype(np.float64) for k in ("w1", "b1", "w2", "b2"))
    x = data.astype(np.float64)
    c = x - x.mean(axis=1, keepdims=True)
    x = c / (np.sqrt((c * c).mean(axis=1, keepdims=True)) + 1e-5)
    logits = np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    return probs, np.eye(3, dtype=bool)[probs.argmax(axis=1)]


def run_workload(
    guard: Any, saved_model: Path, data: np.ndarray
) -> tuple[tuple[dispatch.Tensor, dispatch.Tensor], list[dispatch.Tensor], dispatch.Trace]:
    """The document's "Inference Workload Example", under ``guard``."""
    seen: list[dispatch.Tensor] = []
    with dispatch.trace() as tr, guard:
        model = TinyMLP(seen)
        model.load_jit(saved_model)
        inputs = preprocess_tensors(data, seen)
        out = model.forward(inputs)
        outputs = postprocess_tensors(out, seen)
    return outputs, seen, tr


def check_workload_outputs(
    outputs: tuple[dispatch.Tensor, dispatch.Tensor], saved_model: Path, data: np.ndarray
) -> None:
    probs, top = outputs
    ref_probs, ref_top = reference_workload(saved_model, data)
    np.testing.assert_allclose(probs.numpy(), ref_probs, rtol=1e-4, atol=1e-6)
    assert top.dtype == dispatch.bool
    np.testing.assert_array_equal(top.numpy(), ref_top)


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    return save_model(tmp_path)


def legacy_guard() -> modes.AutoNonVariableTypeMode:
    """The legacy guard, constructed with its DeprecationWarning silenced (a dedicated test
    checks the warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return modes.AutoNonVariableTypeMode()


# =============================================================================================
# NoGradGuard
# =============================================================================================
def test_nogradguard_disables_gradient_computation_within_its_scope() -> None:
    """Statement: "class torch::NoGradGuard — RAII guard that disables gradient computation within
    its scope." """
    w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    before = w * 2
    with modes.NoGradGuard():
        inside = w * 2
        inside_view = w[0:2]
        assert not modes.is_grad_enabled()
    after = w * 2
    assert before.grad_fn is not None and before.grad_fn.name() == "MulBackward0"
    assert after.grad_fn is not None and after.grad_fn.name() == "MulBackward0"
    assert inside.grad_fn is None and not inside.requires_grad and inside.is_leaf
    assert inside_view.grad_fn is None
    # no graph was built inside: backward from the in-scope result is impossible
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        inside.sum().backward()
    # and outside the scope gradients flow again
    after.sum().backward()
    assert w.grad is not None and w.grad.tolist() == [2.0, 2.0, 2.0]


def test_nogradguard_constructor_disables_gradient_computation() -> None:
    """Statement: "NoGradGuard() — Disables gradient computation."

    It does so by turning grad mode off and nothing else: the key sets are untouched, the
    Autograd kernel still runs and decides itself not to record a node (a functional op runs
    AutogradCPU -> CPU, ADInplaceOrView being a fallthrough for it; an in-place op runs
    AutogradCPU -> ADInplaceOrView -> CPU and still bumps the version)."""
    w = dispatch.tensor([1.0, 2.0], requires_grad=True)
    tls_before = dispatch.tls_local_dispatch_key_set()
    guard = modes.NoGradGuard()
    with guard:
        assert not modes.is_grad_enabled()
        assert dispatch.tls_local_dispatch_key_set() == tls_before
        with dispatch.trace() as tr:
            y = w.mul(3.0)
            z = w.clone()
            z.add_(1.0)
    assert keys_of(tr, "aten::mul.Tensor") == ["AutogradCPU", "CPU"]
    assert keys_of(tr, "aten::add_.Tensor") == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is None and not z.requires_grad and z._version == 1
    assert y.tolist() == [3.0, 6.0] and z.tolist() == [2.0, 3.0]
    with dispatch.trace() as tr_on:
        y_on = w.mul(3.0)
    assert keys_of(tr_on) == keys_of(tr, "aten::mul.Tensor")  # same kernels with grad on
    assert y_on.grad_fn is not None


def test_nogradguard_restores_previous_gradient_mode() -> None:
    """Statement: "~NoGradGuard() — Restores previous gradient mode."

    The *previous* mode, whatever it was — not simply "on" — and even when the scope changed
    the mode itself or raised."""
    assert modes.is_grad_enabled()
    with modes.NoGradGuard():
        assert not modes.is_grad_enabled()
    assert modes.is_grad_enabled()
    # previous mode off: stays off
    with modes.no_grad():
        with modes.NoGradGuard():
            assert not modes.is_grad_enabled()
        assert not modes.is_grad_enabled()
    # the scope re-enabled grad mode: exiting restores the value saved on entry
    with modes.no_grad():
        with modes.NoGradGuard():
            modes.set_grad_enabled(True)
            assert modes.is_grad_enabled()
        assert not modes.is_grad_enabled()
    with modes.NoGradGuard():
        modes.set_grad_enabled(True)
    assert modes.is_grad_enabled()
    # exceptions
    with pytest.raises(ZeroDivisionError), modes.NoGradGuard():
        1 / 0  # noqa: B018
    assert modes.is_grad_enabled()
    w = dispatch.tensor([1.0], requires_grad=True)
    assert (w * 2).grad_fn is not None


def test_example_nogradguard_block() -> None:
    """The NoGradGuard example:

    {
        torch::NoGradGuard no_grad;
        // No gradients computed in this scope
        auto result = model->forward(input);
    }
    """
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((2, 3)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = dispatch.tensor(weight, requires_grad=True)
    b = dispatch.tensor(bias, requires_grad=True)

    def model(inp: dispatch.Tensor) -> dispatch.Tensor:
        return (inp @ w.t() + b).tanh()

    input = dispatch.tensor(x)
    with modes.NoGradGuard():
        result = model(input)
    assert result.grad_fn is None and not result.requires_grad
    assert not result.is_inference()  # NoGradGuard does not touch tensor creation
    np.testing.assert_allclose(result.numpy(), np.tanh(x @ weight.T + bias), rtol=1e-5)
    # the same call outside the scope computes gradients
    tracked = model(input)
    assert tracked.grad_fn is not None and tracked.grad_fn.name() == "TanhBackward0"
    tracked.sum().backward()
    assert w.grad is not None and b.grad is not None


# =============================================================================================
# InferenceMode: introduction
# =============================================================================================
def test_inference_mode_is_a_raii_guard_analogous_to_no_grad_mode() -> None:
    """Statement: "c10::InferenceMode is a RAII guard analogous to NoGradMode designed for use when
    you are certain your operations will have no interactions with autograd (e.g., model
    inference)." """
    w = dispatch.tensor([1.0, 2.0], requires_grad=True)
    results = {}
    for name, guard in (("no_grad", modes.NoGradGuard()), ("inference", modes.InferenceMode())):
        with guard:
            assert not modes.is_grad_enabled()
            results[name] = w * 2
        assert modes.is_grad_enabled() and not modes.is_inference_mode_enabled()
        # RAII: the scope is undone on an exception too
        with pytest.raises(KeyError), guard:
            raise KeyError("boom")
        assert modes.is_grad_enabled() and not modes.is_inference_mode_enabled()
    for r in results.values():
        assert r.grad_fn is None and not r.requires_grad and r.tolist() == [2.0, 4.0]
    # "no interactions with autograd": what InferenceMode produced cannot join a graph later
    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        _ = w * results["inference"]
    assert (w * results["no_grad"]).grad_fn is not None


def test_inference_mode_better_performance_than_no_grad() -> None:
    """Statement: "Compared to NoGradMode, code run under this mode gets better performance by
    disabling autograd-related work like view tracking and version counter bumps."

    Measured in kernels run, from a dispatch trace: a view op and an in-place op run
    AutogradCPU -> ADInplaceOrView -> CPU under no_grad, CPU only under InferenceMode."""

    def program() -> tuple[dispatch.Tensor, dispatch.Tensor]:
        x = dispatch.ones(2, 3)
        with dispatch.trace() as tr:
            v = x.view(-1)
            x.add_(1)
        programs.append(tr)
        return x, v

    programs: list[dispatch.Trace] = []
    with modes.no_grad():
        x_ng, v_ng = program()
    with modes.InferenceMode():
        x_im, v_im = program()
    tr_ng, tr_im = programs
    assert keys_of(tr_ng, "aten::view") == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert keys_of(tr_ng, "aten::add_.Tensor") == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert keys_of(tr_im, "aten::view") == ["CPU"]
    assert keys_of(tr_im, "aten::add_.Tensor") == ["CPU"]
    assert len(tr_im.keys_run()) == 2 < len(tr_ng.keys_run()) == 6
    # the work no_grad did and InferenceMode skipped: view tracking and a version bump
    assert v_ng._is_view() and v_ng._base is x_ng and x_ng._version == 1
    assert not v_im._is_view() and v_im._base is None
    with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
        _ = x_im._version
    # same results
    assert v_ng.tolist() == v_im.tolist() == [2.0] * 6


def test_tensors_created_inside_inference_mode_have_more_limitations_with_autograd() -> None:
    """Statement: "However, tensors created inside InferenceMode have more limitations when
    interacting with the autograd system."

    The same four interactions on a tensor created under no_grad work; on one created under
    InferenceMode they raise."""
    w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with modes.no_grad():
        n = dispatch.ones(3)
    with modes.InferenceMode():
        i = dispatch.ones(3)

    def interactions(t: dispatch.Tensor) -> list[str | None]:
        return [
            error_of(lambda: w * t),  # saved for backward
            error_of(lambda: t._version),  # version counter read
            error_of(lambda: t.add_(1)),  # in-place
            error_of(lambda: t.detach().requires_grad_()),  # becomes a leaf that needs grad
        ]

    assert interactions(n) == [None, None, None, None]
    assert interactions(i) == [SAVE_ERR, VERSION_ERR, INPLACE_OUTSIDE_ERR, REQUIRES_GRAD_ERR]
    # an op that saves nothing is still fine: the limitation is about autograd's bookkeeping
    y = w + i
    y.sum().backward()
    assert w.grad is not None and w.grad.tolist() == [1.0, 1.0, 1.0]


def test_inference_mode_enables_inference_mode_for_optimized_inference() -> None:
    """Statement: "class c10::InferenceMode — RAII guard that enables inference mode for optimized
    inference."

    Enabling it edits the thread-local key sets (design.md's table): ADInplaceOrView leaves
    the included set and the autograd keys join the excluded set, so an operation on a tensor
    created inside runs the CPU kernel and nothing else."""
    assert not modes.is_inference_mode_enabled()
    with modes.InferenceMode():
        assert modes.is_inference_mode_enabled()
        included, excluded = dispatch.tls_local_dispatch_key_set()
        assert DispatchKey.ADInplaceOrView not in included
        assert DispatchKey.AutogradCPU in excluded
        assert DispatchKey.ADInplaceOrView not in excluded
        x = dispatch.ones(4)
        with dispatch.trace() as tr:
            y = x.mul(2.0).relu()
    assert keys_of(tr) == ["CPU", "CPU"]
    assert y.tolist() == [2.0] * 4


def test_inference_mode_more_efficient_than_nogradguard_for_inference_only_workloads(
    saved_model: Path,
) -> None:
    """Statement: "This is more efficient than NoGradGuard for inference-only workloads."

    The document's workload (load, preprocess, forward, postprocess) under NoGradGuard and
    under InferenceMode: the same outputs, strictly fewer kernels under InferenceMode, and
    no Autograd or ADInplaceOrView kernel at all."""
    data = make_data()
    out_ng, _, tr_ng = run_workload(modes.NoGradGuard(), saved_model, data)
    out_im, _, tr_im = run_workload(modes.InferenceMode(), saved_model, data)
    check_workload_outputs(out_ng, saved_model, data)
    check_workload_outputs(out_im, saved_model, data)
    assert ran_autograd_or_view_kernels(tr_ng) == {"AutogradCPU", "ADInplaceOrView"}
    assert ran_autograd_or_view_kernels(tr_im) == set()
    assert len(tr_im.keys_run()) < len(tr_ng.keys_run())
    # same operator calls, fewer kernels for each
    ng, im = kernels_per_call(tr_ng), kernels_per_call(tr_im)
    assert [op for op, _ in ng] == [op for op, _ in im]
    assert all(n_im <= n_ng for (_, n_ng), (_, n_im) in zip(ng, im))


def test_inference_mode_constructor_enables_or_disables_inference_mode() -> None:
    """Statement: "explicit InferenceMode(bool enabled = true) — Enables or disables inference
    mode." """
    normal = dispatch.tls_local_dispatch_key_set()
    for guard in (modes.InferenceMode(), modes.InferenceMode(True)):
        assert guard.enabled is True
        with guard:
            assert modes.is_inference_mode_enabled() and not modes.is_grad_enabled()
            assert dispatch.tls_local_dispatch_key_set() != normal
            assert dispatch.ones(1).is_inference()
    # disabled, at top level: nothing changes
    with modes.InferenceMode(False):
        assert not modes.is_inference_mode_enabled() and modes.is_grad_enabled()
        assert dispatch.tls_local_dispatch_key_set() == normal
        assert not dispatch.ones(1).is_inference()
    # disabled, inside an enabled one: back to exactly the normal state
    with modes.InferenceMode(True), modes.InferenceMode(False):
        assert not modes.is_inference_mode_enabled() and modes.is_grad_enabled()
        assert dispatch.tls_local_dispatch_key_set() == normal
        assert not dispatch.ones(1).is_inference()
    # ... and inside no_grad too (InferenceMode(False) re-enables grad mode, as in torch)
    with modes.no_grad(), modes.InferenceMode(False):
        assert modes.is_grad_enabled()


# =============================================================================================
# Inference tensors
# =============================================================================================
def test_newly_allocated_tensors_inside_inference_mode_are_inference_tensors() -> None:
    """Statement: "Inside InferenceMode, all newly allocated (non-view) tensors are marked as
    inference tensors." """
    n = dispatch.tensor([1.0, 2.0], requires_grad=True)
    with modes.InferenceMode():
        allocated = {
            "tensor": dispatch.tensor([1.0, 2.0]),
            "tensor(requires_grad)": dispatch.tensor([1.0, 2.0], requires_grad=True),
            "ones": dispatch.ones(2),
            "zeros": dispatch.zeros(2),
            "full": dispatch.full((2,), 3.0),
            "empty": dispatch.empty(2),
            "arange": dispatch.arange(2),
            "rand": dispatch.rand(2),
            "randn": dispatch.randn(2),
            "functional op on a normal tensor": n * 2,
            "clone of a normal tensor": n.clone(),
            "functional op on an inference tensor": dispatch.ones(2) + 1,
            "reduction": n.sum(),
            "comparison": n.gt(1.0),
        }
    for name, t in allocated.items():
        assert t.is_inference(), name
        assert not t._is_view(), name
        assert t.key_set == dispatch.DispatchKeySet([DispatchKey.CPU]), name
    # requires_grad=True is kept on a factory's inference leaf
    assert allocated["tensor(requires_grad)"].requires_grad


def test_inference_tensors_do_not_have_a_version_counter() -> None:
    """Statement: "Inference tensors: Do not have a version counter, ..."

    Normal tensors start at version 0 and count in-place ops; an inference tensor has no
    counter to count with, inside or outside InferenceMode, and its clone outside gets a
    fresh one."""
    n = dispatch.ones(2)
    assert n._version == 0
    n.add_(1)
    assert n._version == 1
    with modes.InferenceMode():
        i = dispatch.ones(2)
        for _ in range(3):
            i.add_(1)  # in-place ops are fine, but there is nothing to bump
        with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
            _ = i._version
        c_in = i.clone()
    with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
        _ = i._version
    with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
        _ = c_in._version  # a clone made inside is an inference tensor as well
    c = i.clone()
    v0 = c._version  # readable: the clone made outside has a counter of its own
    c.add_(1)
    assert c._version == v0 + 1 and i.tolist() == [4.0, 4.0]


def test_reading_version_of_inference_tensor_raises() -> None:
    """Statement: "... so an error will be raised if you try to read their version (e.g., because
    you saved this tensor for backward)."

    Reading ``_version`` raises; saving for backward (which records the version) raises
    before anything is computed — in the Autograd kernel, the first key to run."""
    with modes.InferenceMode():
        i = dispatch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
        _ = i._version
    w = dispatch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    with dispatch.trace() as tr, pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        _ = w * i  # MulBackward0 saves both operands
    assert keys_of(tr, "aten::mul.Tensor") == ["AutogradCPU"]
    assert tr.events[0].error == "RuntimeError"
    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        _ = i.mul(w)
    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        _ = w.pow(i)
    # a custom Function's save_for_backward records the version as well
    with modes.InferenceMode():
        leaf = dispatch.tensor([1.0, 2.0], requires_grad=True)

    class Square(autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: dispatch.Tensor) -> dispatch.Tensor:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> dispatch.Tensor:
            (x,) = ctx.saved_tensors
            return 2 * x * g

    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        Square.apply(leaf)


def test_inference_tensors_are_immutable_outside_inference_mode() -> None:
    """Statement: "Are immutable outside InferenceMode."

    Every kind of in-place op — arithmetic, fill, copy, setitem, activation, metadata — on an
    inference tensor, or on a view of one, raises outside InferenceMode (under no_grad too),
    leaves the data alone (dispatchsim checks before mutating, docs/divergences.md), and the
    same ops are fine inside InferenceMode."""
    mutations: dict[str, Callable[[dispatch.Tensor], Any]] = {
        "add_": lambda t: t.add_(dispatch.ones(2, 3)),
        "mul_": lambda t: t.mul_(2.0),
        "zero_": lambda t: t.zero_(),
        "fill_": lambda t: t.fill_(7.0),
        "copy_": lambda t: t.copy_(dispatch.zeros(2, 3)),
        "setitem": lambda t: t.__setitem__(0, 5.0),
        "iadd": lambda t: t.__iadd__(1.0),
        "relu_": lambda t: t.relu_(),
        "exp_": lambda t: t.exp_(),
        "t_": lambda t: t.t_(),
        "unsqueeze_": lambda t: t.unsqueeze_(0),
        "view then add_": lambda t: t.view(-1).add_(1.0),
    }
    data = [[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]
    for name, mutate in mutations.items():
        with modes.InferenceMode():
            i = dispatch.tensor(data)
        for guard in (contextlib.nullcontext(), modes.no_grad()):
            with guard, pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
                mutate(i)
            assert i.tolist() == data and i.shape == (2, 3), name
        with modes.InferenceMode():
            mutate(i)  # inside: allowed
        assert i.is_inference(), name


def test_mutating_data_outside_inference_mode_raises() -> None:
    """Statement: "An error will be raised if you try to: Mutate their data outside InferenceMode."

    Because of keys: an inference tensor has no ADInplaceOrView key, but outside
    InferenceMode the thread-local included set brings ADInplaceOrView back, and that
    kernel (where versions are bumped) refuses the update. Inside InferenceMode neither the
    tensor nor the TLS carries it, so only CPU runs."""
    with modes.InferenceMode():
        i = dispatch.tensor([1.0, 2.0])
    with dispatch.trace() as tr, pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        i.fill_(5.0)  # no tensor but the inference one: the key comes from the TLS alone
    assert keys_of(tr) == ["ADInplaceOrView"]
    assert tr.events[0].error == "RuntimeError"
    assert i.tolist() == [1.0, 2.0]
    with modes.InferenceMode(), dispatch.trace() as tr_in:
        i.fill_(5.0)
    assert keys_of(tr_in) == ["CPU"]
    assert i.tolist() == [5.0, 5.0]
    # a Python number becomes a wrapped *normal* tensor, which brings AutogradCPU as well
    # (reference (f).2); the Autograd kernel lets it through and ADInplaceOrView refuses it
    with dispatch.trace() as tr, pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        i.mul_(3.0)
    assert keys_of(tr) == ["AutogradCPU", "ADInplaceOrView"]
    assert [e.error for e in tr.events] == ["RuntimeError", "RuntimeError"]
    with pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        i.add_(dispatch.ones(2))
    assert i.tolist() == [5.0, 5.0]
    with modes.InferenceMode():
        i.mul_(3.0)
    assert i.tolist() == [15.0, 15.0]


def test_setting_requires_grad_true_outside_inference_mode_raises() -> None:
    """Statement: "An error will be raised if you try to: Mutate them to requires_grad=True outside
    InferenceMode." """
    with modes.InferenceMode():
        i = dispatch.tensor([1.0, 2.0])
        j = dispatch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=exactly(REQUIRES_GRAD_ERR)):
        i.requires_grad_()
    with pytest.raises(RuntimeError, match=exactly(REQUIRES_GRAD_ERR)):
        i.requires_grad_(True)
    with pytest.raises(RuntimeError, match=exactly(REQUIRES_GRAD_ERR)):
        i.requires_grad = True
    with modes.no_grad(), pytest.raises(RuntimeError, match=exactly(REQUIRES_GRAD_ERR)):
        i.requires_grad_()
    assert not i.requires_grad
    # requires_grad=False is always allowed
    j.requires_grad_(False)
    assert not j.requires_grad
    i.requires_grad = False
    # inside InferenceMode it is allowed, and the tensor stays an inference tensor
    with modes.InferenceMode():
        i.requires_grad_()
    assert i.requires_grad and i.is_inference()


def test_clone_outside_inference_mode_gives_normal_tensor_that_can_be_mutated() -> None:
    """Statement: "To work around this, make a clone outside InferenceMode to get a normal tensor
    before mutating." """
    with modes.InferenceMode():
        i = dispatch.tensor([1.0, 2.0, 3.0])
    c = i.clone()
    assert not c.is_inference()
    assert c.key_set == dispatch.DispatchKeySet(
        [DispatchKey.CPU, DispatchKey.ADInplaceOrView, DispatchKey.AutogradCPU]
    )
    v0 = c._version  # it has a version counter (torch starts this one at 1, see below)
    with dispatch.trace() as tr:
        c.add_(1.0)
    assert keys_of(tr, "aten::add_.Tensor") == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert c._version == v0 + 1 and c.tolist() == [2.0, 3.0, 4.0]
    assert i.tolist() == [1.0, 2.0, 3.0]  # the clone owns its data
    c.requires_grad_()
    (c * c).sum().backward()  # and it can be saved for backward
    assert c.grad is not None and c.grad.tolist() == [4.0, 6.0, 8.0]
    # the clone must be made *outside*: one made inside is still an inference tensor
    with modes.InferenceMode():
        inside = i.clone()
    with pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        inside.add_(1.0)


def test_non_view_tensor_is_inference_iff_allocated_in_inference_mode() -> None:
    """Statement: "A non-view tensor is an inference tensor if and only if it was allocated inside
    InferenceMode."

    Whatever the inputs were: a functional op on inference tensors outside InferenceMode
    allocates a normal tensor, one on normal tensors inside allocates an inference tensor;
    other guards do not matter."""
    with modes.InferenceMode():
        inf = dispatch.ones(2)
    nrm = dispatch.ones(2, requires_grad=True)
    contexts: dict[str, Callable[[], Any]] = {
        "normal": contextlib.nullcontext,
        "no_grad": modes.no_grad,
        "InferenceMode": modes.InferenceMode,
        "InferenceMode(False)": lambda: modes.InferenceMode(False),
        "InferenceMode > InferenceMode(False)": lambda: _nested(
            modes.InferenceMode(), modes.InferenceMode(False)
        ),
        "no_grad > InferenceMode": lambda: _nested(modes.no_grad(), modes.InferenceMode()),
        "InferenceMode > no_grad": lambda: _nested(modes.InferenceMode(), modes.no_grad()),
        "InferenceMode > enable_grad": lambda: _nested(modes.InferenceMode(), modes.enable_grad()),
        "AutoDispatchBelowADInplaceOrView": modes.AutoDispatchBelowADInplaceOrView,
        "AutoDispatchBelowAutograd": modes.AutoDispatchBelowAutograd,
    }
    makers: dict[str, Callable[[], dispatch.Tensor]] = {
        "factory": lambda: dispatch.zeros(2),
        "op on inference": lambda: inf * 2,
        "op on normal": lambda: nrm * 2,
        "op on both": lambda: inf + nrm,
        "clone of inference": inf.clone,
        "clone of normal": nrm.clone,
    }
    for ctx_name, ctx in contexts.items():
        with ctx():
            in_mode = modes.is_inference_mode_enabled()
            made = {name: make() for name, make in makers.items()}
        for name, t in made.items():
            assert not t._is_view(), (ctx_name, name)
            assert t.is_inference() is in_mode, (ctx_name, name)
    assert [name for name, ctx in contexts.items() if _runs_in_inference_mode(ctx)] == [
        "InferenceMode",
        "no_grad > InferenceMode",
        "InferenceMode > no_grad",
        "InferenceMode > enable_grad",
    ]


@contextlib.contextmanager
def _nested(*guards: Any) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for g in guards:
            stack.enter_context(g)
        yield


def _runs_in_inference_mode(ctx: Callable[[], Any]) -> bool:
    with ctx():
        return modes.is_inference_mode_enabled()


def test_view_is_inference_iff_view_of_inference_tensor() -> None:
    """Statement: "A view tensor is an inference tensor if and only if it is a view of an inference
    tensor."

    Because of keys: a view copies its base's key set, wherever it is made."""
    with modes.InferenceMode():
        inf = dispatch.ones(2, 3)
    nrm = dispatch.ones(2, 3)
    views: dict[str, Callable[[dispatch.Tensor], dispatch.Tensor]] = {
        "view": lambda t: t.view(-1),
        "t": lambda t: t.t(),
        "transpose": lambda t: t.transpose(0, 1),
        "select": lambda t: t.select(0, 1),
        "getitem": lambda t: t[1],
        "narrow": lambda t: t.narrow(1, 0, 2),
        "unsqueeze": lambda t: t.unsqueeze(0),
        "expand": lambda t: t.unsqueeze(0).expand(2, 2, 3),
        "permute": lambda t: t.permute(1, 0),
        "unbind[0]": lambda t: t.unbind(0)[0],
        "split[1]": lambda t: t.split(1)[1],
        "view of view": lambda t: t.view(-1)[2:4],
        "detach": lambda t: t.detach(),
    }
    for mode in (contextlib.nullcontext, modes.no_grad, modes.InferenceMode):
        for name, make in views.items():
            with mode():
                v_inf, v_nrm = make(inf), make(nrm)
            assert v_inf.is_inference(), (mode, name)
            assert v_inf.key_set == inf.key_set, (mode, name)
            assert not v_nrm.is_inference(), (mode, name)
            assert v_nrm.key_set == nrm.key_set, (mode, name)
            # and they really are views: they share data with their bases
            assert np.shares_memory(v_inf.numpy(), inf.numpy()), (mode, name)
            assert np.shares_memory(v_nrm.numpy(), nrm.numpy()), (mode, name)


# =============================================================================================
# Performance guarantees
# =============================================================================================
def test_inference_mode_records_no_grad_fn_for_inference_and_normal_tensors() -> None:
    """Statement: "Inside an InferenceMode block: Like NoGradMode, all operations do not record
    grad_fn even if their inputs have requires_grad=True. This applies to both inference tensors and
    normal tensors."

    Because of keys: the autograd keys are excluded, so no Autograd kernel runs at all —
    where NoGradMode runs it and has it decide not to record."""
    leaf = dispatch.tensor([1.0, 2.0], requires_grad=True)
    nonleaf = leaf.clone()
    with modes.InferenceMode():
        inf_leaf = dispatch.tensor([3.0, 4.0], requires_grad=True)
        assert inf_leaf.requires_grad
        with dispatch.trace() as tr:
            outs = {
                "normal functional": leaf * 2,
                "normal matmul": leaf @ leaf,
                "normal view": leaf[0:1],
                "inference functional": inf_leaf * 2,
                "inference view": inf_leaf.view(2),
                "mixed": leaf * inf_leaf,  # not even a save error: nothing is saved
            }
            grad_fns = {name: t.grad_fn for name, t in outs.items()}
            nonleaf.add_(1.0)  # in-place on a normal non-leaf: no AddBackward0
            leaf.mul_(1.0)  # in-place on a leaf that requires grad: no leaf check either
            inf_leaf.add_(1.0)
    # (read before the in-place ops: afterwards the IM view of ``leaf`` raises on .grad_fn,
    # as torch's does — reference (c), row N1 / inference / v+i)
    assert grad_fns == dict.fromkeys(outs)
    for name in ("normal functional", "normal matmul", "inference functional", "mixed"):
        assert not outs[name].requires_grad, name
    assert nonleaf.grad_fn is not None and nonleaf.grad_fn.name() == "CloneBackward0"
    assert leaf.is_leaf and leaf.grad_fn is None
    assert inf_leaf.is_leaf and inf_leaf.grad_fn is None
    assert ran_autograd_or_view_kernels(tr) <= {"ADInplaceOrView"}
    assert not AUTOGRAD_KEYS & set(keys_of(tr))
    # the contrast: under NoGradMode the Autograd kernel runs (and records nothing)
    with modes.no_grad(), dispatch.trace() as tr_ng:
        y = leaf * 2
    assert y.grad_fn is None
    assert keys_of(tr_ng, "aten::mul.Tensor")[0] == "AutogradCPU"


def test_views_of_inference_tensors_are_not_tracked() -> None:
    """Statement: "View operations on inference tensors do not perform view tracking."

    Because of keys: view tracking is the ADInplaceOrView kernel's job, and for an inference
    tensor inside InferenceMode only the CPU kernel runs. A view of a normal tensor inside
    InferenceMode still is tracked (its ADInplaceOrView key comes from the tensor)."""
    with modes.InferenceMode():
        i = dispatch.ones(2, 3)
        with dispatch.trace() as tr:
            v = i.view(6)
            vv = v[1:3]
            s = i[0]
            parts = i.unbind(0)
    for t in (v, vv, s, *parts):
        assert not t._is_view() and t._base is None
        assert t.is_leaf and t.grad_fn is None
    assert keys_of(tr) == ["CPU"] * len(keys_of(tr)) and len(keys_of(tr)) >= 4
    # the same view of a normal tensor, same mode: tracked
    n = dispatch.ones(2, 3)
    with modes.InferenceMode(), dispatch.trace() as tr_n:
        nv = n.view(6)
    assert nv._is_view() and nv._base is n
    assert keys_of(tr_n, "aten::view") == ["ADInplaceOrView", "CPU"]
    nv.add_(1.0)
    assert n._version == nv._version == 1  # tracked views share the version counter


def test_view_and_non_view_inference_tensors_are_indistinguishable() -> None:
    """Statement: "View and non-view inference tensors are indistinguishable."

    A view of an inference tensor and a freshly allocated inference tensor of the same shape
    agree on every piece of autograd metadata and take the same path through the dispatcher,
    inside and outside InferenceMode."""
    with modes.InferenceMode():
        base = dispatch.ones(2, 3)
        view = base.view(6)
        fresh = dispatch.ones(6)

    def describe(t: dispatch.Tensor) -> dict[str, Any]:
        with modes.InferenceMode(), dispatch.trace() as tr_in:
            t.add_(0.0)
            t.view(2, 3)
        with dispatch.trace() as tr_out:
            err = error_of(lambda: t.mul_(1.0))
            t.view(3, 2)
        return {
            "is_inference": t.is_inference(),
            "_is_view": t._is_view(),
            "_base": t._base,
            "key_set": t.key_set,
            "is_leaf": t.is_leaf,
            "requires_grad": t.requires_grad,
            "grad_fn": t.grad_fn,
            "_version": error_of(lambda: t._version),
            "requires_grad_": error_of(lambda: t.requires_grad_()),
            "in-place outside": err,
            "keys inside": keys_of(tr_in),
            "keys outside": keys_of(tr_out),
            "shape": t.shape,
            "dtype": t.dtype,
        }

    d_view, d_fresh = describe(view), describe(fresh)
    assert d_view == d_fresh
    assert d_view["_is_view"] is False and d_view["_version"] == VERSION_ERR
    # by contrast a view of a normal tensor is distinguishable from a fresh normal tensor
    n = dispatch.ones(2, 3)
    assert n.view(6)._is_view() and not dispatch.ones(6)._is_view()


def test_inplace_on_inference_tensor_in_inference_mode_does_not_bump_version() -> None:
    """Statement: "Inplace operations on inference tensors are guaranteed not to do a version bump."

    Because of keys: the version bump happens in the ADInplaceOrView kernel; an in-place op
    on an inference tensor inside InferenceMode runs the CPU kernel only. On a normal tensor
    in the same block it runs ADInplaceOrView -> CPU and does bump."""
    with modes.InferenceMode():
        i = dispatch.ones(3)
    n = dispatch.ones(3)
    with modes.InferenceMode():
        with dispatch.trace() as tr_i:
            i.add_(1.0)
            i.mul_(2.0)
            i[0] = 9.0
            i.view(3).sub_(1.0)
        with dispatch.trace() as tr_n:
            n.add_(1.0)
        n_inside = n._version
        with pytest.raises(RuntimeError, match=exactly(VERSION_ERR)):
            _ = i._version
    assert set(keys_of(tr_i)) == {"CPU"}
    assert keys_of(tr_n, "aten::add_.Tensor") == ["ADInplaceOrView", "CPU"]
    assert n_inside == 1
    assert i.tolist() == [8.0, 3.0, 3.0]
    # on a normal tensor under no_grad the full chain runs and bumps
    with modes.no_grad(), dispatch.trace() as tr_ng:
        n.add_(1.0)
    assert keys_of(tr_ng, "aten::add_.Tensor") == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert n._version == 2


def test_example_inference_mode_basic_block() -> None:
    """The basic InferenceMode example:

    {
        c10::InferenceMode guard;
        // Optimized inference without gradient tracking
        auto result = model->forward(input);
    }
    """
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((2, 3)).astype(np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = dispatch.tensor(weight, requires_grad=True)
    input = dispatch.tensor(x)

    def model(inp: dispatch.Tensor) -> dispatch.Tensor:
        return (inp @ w.t()).sigmoid()

    with modes.InferenceMode():
        assert modes.is_inference_mode_enabled()
        with dispatch.trace() as tr:
            result = model(input)
    assert not modes.is_inference_mode_enabled()
    assert result.is_inference() and result.grad_fn is None and not result.requires_grad
    np.testing.assert_allclose(result.numpy(), 1 / (1 + np.exp(-(x @ weight.T))), rtol=1e-5)
    assert not AUTOGRAD_KEYS & set(keys_of(tr))  # no gradient tracking
    assert "AutogradCPU" in keys_of_call(model, input)  # outside the block: tracked


def keys_of_call(fn: Callable[..., Any], *args: Any) -> list[str]:
    with dispatch.trace() as tr:
        fn(*args)
    return keys_of(tr)


def test_example_inference_workload(saved_model: Path) -> None:
    """The inference workload example:

        c10::InferenceMode guard;
        model.load_jit(saved_model);
        auto inputs = preprocess_tensors(data);
        auto out = model.forward(inputs);
        auto outputs = postprocess_tensors(out);

    Every tensor the workload makes — loaded weights, their transposes (views), every
    intermediate and the outputs — is an inference tensor, and no Autograd or
    ADInplaceOrView kernel ran."""
    data = make_data()
    outputs, seen, tr = run_workload(modes.InferenceMode(), saved_model, data)
    check_workload_outputs(outputs, saved_model, data)
    assert len(seen) >= 25
    for k, t in enumerate(seen):
        assert t.is_inference(), (k, t)
        assert not t._is_view() and t.grad_fn is None
    assert all(t.is_inference() for t in outputs)
    assert ran_autograd_or_view_kernels(tr) == set()
    assert set(keys_of(tr)) <= {"CPU", "BackendSelect"}
    assert "aten::matmul" in {op for op, _ in tr.keys_run()}


# =============================================================================================
# Nested InferenceMode
# =============================================================================================
def test_example_nested_inference_mode_block() -> None:
    """The nested InferenceMode example:

    {
        c10::InferenceMode guard(true);
        // InferenceMode is on
        {
            c10::InferenceMode guard(false);
            // InferenceMode is off
        }
        // InferenceMode is on
    }
    // InferenceMode is off
    """
    assert not modes.is_inference_mode_enabled()
    with modes.InferenceMode(True):
        # InferenceMode is on
        assert modes.is_inference_mode_enabled()
        with modes.InferenceMode(False):
            # InferenceMode is off
            assert not modes.is_inference_mode_enabled()
        # InferenceMode is on
        assert modes.is_inference_mode_enabled()
    # InferenceMode is off
    assert not modes.is_inference_mode_enabled()


def test_inference_mode_nests_with_enabled_and_disabled_states() -> None:
    """Statement: "Unlike some other guards, InferenceMode can be nested with different
    enabled/disabled states"

    Each level is a complete mode — flag, grad mode, key sets, tensor creation, which keys
    run — and leaving it restores the level outside, at any depth."""
    normal_tls = dispatch.tls_local_dispatch_key_set()
    w = dispatch.tensor([1.0, 2.0], requires_grad=True)

    def observe() -> tuple[bool, bool, bool, bool, str]:
        t = dispatch.ones(2)
        with dispatch.trace() as tr:
            y = w * 2
        return (
            modes.is_inference_mode_enabled(),
            modes.is_grad_enabled(),
            t.is_inference(),
            y.grad_fn is not None,
            keys_of(tr)[0],
        )

    on = (True, False, True, False, "CPU")
    off = (False, True, False, True, "AutogradCPU")
    seen = [observe()]
    with modes.InferenceMode(True):
        seen.append(observe())
        with modes.InferenceMode(False):
            seen.append(observe())
            assert dispatch.tls_local_dispatch_key_set() == normal_tls
            with modes.InferenceMode(True):
                seen.append(observe())
                with modes.InferenceMode(False):
                    seen.append(observe())
                seen.append(observe())
            seen.append(observe())
        seen.append(observe())
    seen.append(observe())
    assert seen == [off, on, off, on, off, on, off, on, off]
    assert dispatch.tls_local_dispatch_key_set() == normal_tls


def test_inference_mode_can_be_nested_with_enabled_disabled_states_unlike_no_grad() -> None:
    """Statement: "InferenceMode vs NoGradMode — Key differences: InferenceMode can be nested with
    enabled/disabled states."

    ``InferenceMode(False)`` nested in an enabled block undoes *all* of it; NoGradGuard has
    no disabled state (it takes no argument), and a NoGradGuard nested in InferenceMode
    changes nothing about dispatch."""
    with modes.InferenceMode():
        outer = dispatch.tls_local_dispatch_key_set()
        with modes.NoGradGuard():
            assert dispatch.tls_local_dispatch_key_set() == outer
            assert dispatch.ones(1).is_inference()
        with modes.InferenceMode(False):
            assert dispatch.tls_local_dispatch_key_set() != outer
            assert modes.is_grad_enabled() and not dispatch.ones(1).is_inference()
    with pytest.raises(TypeError):
        modes.NoGradGuard(False)  # type: ignore[call-arg]


# =============================================================================================
# InferenceMode vs NoGradMode
# =============================================================================================
def test_inference_mode_preferred_over_no_grad_for_pure_inference_workloads() -> None:
    """Statement: "InferenceMode is preferred over NoGradMode for pure inference workloads because
    it provides better performance."

    The same decorated prediction function, ``@no_grad`` vs ``@inference_mode``: for every
    operator call it runs no more kernels under inference mode, strictly fewer overall, and
    no version bumps or view tracking, with identical results."""
    rng = np.random.default_rng(5)
    weight = dispatch.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    data = rng.standard_normal((6, 4)).astype(np.float32)

    def predict(x_np: np.ndarray) -> dispatch.Tensor:
        x = dispatch.tensor(x_np)
        x.sub_(x.mean())  # in-place centering
        h = x @ weight.t()
        h.relu_()
        return h.view(-1)

    results, traces = {}, {}
    for name, deco in (("no_grad", modes.no_grad), ("inference_mode", modes.inference_mode)):
        fn = deco(predict)
        with dispatch.trace() as tr:
            results[name] = fn(data)
        traces[name] = tr
    assert results["no_grad"].tolist() == results["inference_mode"].tolist()
    ng, im = kernels_per_call(traces["no_grad"]), kernels_per_call(traces["inference_mode"])
    assert [op for op, _ in ng] == [op for op, _ in im]
    assert all(n_im <= n_ng for (_, n_ng), (_, n_im) in zip(ng, im))
    assert sum(n for _, n in im) < sum(n for _, n in ng)
    out_ng, out_im = results["no_grad"], results["inference_mode"]
    assert out_ng._is_view() and out_ng._base is not None  # tracked under no_grad
    assert out_ng._base._version == 1  # relu_ bumped it
    assert not out_im._is_view() and out_im.is_inference()


def test_inference_mode_affects_tensor_creation_no_grad_does_not() -> None:
    """Statement: "Both guards affect tensor execution to skip work not related to inference, but
    InferenceMode also affects tensor creation while NoGradMode doesn't." """
    w = dispatch.tensor([1.0, 2.0], requires_grad=True)
    created = {}
    for name, guard in (("no_grad", modes.no_grad()), ("inference", modes.InferenceMode())):
        with guard:
            created[name] = (dispatch.ones(2), w * 2, w.clone())
    # execution: both skip recording
    for name, (_, y, c) in created.items():
        assert y.grad_fn is None and c.grad_fn is None, name
    # creation: only InferenceMode marks what it allocates
    for t in created["no_grad"]:
        assert not t.is_inference()
        assert t.key_set == dispatch.DispatchKeySet(
            [DispatchKey.CPU, DispatchKey.ADInplaceOrView, DispatchKey.AutogradCPU]
        )
        assert t._version == 0
    for t in created["inference"]:
        assert t.is_inference()
        assert t.key_set == dispatch.DispatchKeySet([DispatchKey.CPU])


def test_inference_tensor_limitations_apply_after_exiting() -> None:
    """Statement: "Tensors created inside InferenceMode are marked as inference tensors with certain
    limitations that apply after exiting InferenceMode."

    Inside the block the tensor can be mutated and made to require grad; after exiting, the
    same calls raise, and it stays an inference tensor for good."""
    with modes.InferenceMode():
        t = dispatch.zeros(3)
        t.add_(1.0)
        t.requires_grad_()
        t.requires_grad_(False)
        assert t.is_inference()
    assert t.is_inference()
    with pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        t.add_(1.0)
    with pytest.raises(RuntimeError, match=exactly(REQUIRES_GRAD_ERR)):
        t.requires_grad_()
    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        _ = dispatch.ones(3, requires_grad=True) * t
    # still so in a later block of normal mode nested in a new InferenceMode
    with (
        modes.InferenceMode(),
        modes.InferenceMode(False),
        pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)),
    ):
        t.add_(1.0)
    # and free again inside any later InferenceMode block
    with modes.InferenceMode():
        t.add_(1.0)
    assert t.tolist() == [2.0, 2.0, 2.0]


# =============================================================================================
# Migrating from AutoNonVariableTypeMode
# =============================================================================================
def test_auto_non_variable_type_mode_warns_deprecation_naming_both_replacements() -> None:
    """Statement: "Migrating from AutoNonVariableTypeMode" — the legacy guard warns: a
    DeprecationWarning that names both replacements (AutoDispatchBelowADInplaceOrView for kernels,
    InferenceMode for inference workloads), pointing at the caller."""
    with pytest.warns(DeprecationWarning) as record:
        guard = modes.AutoNonVariableTypeMode()
    assert len(record) == 1
    message = str(record[0].message)
    assert "AutoNonVariableTypeMode is deprecated" in message
    assert "AutoDispatchBelowADInplaceOrView" in message
    assert "InferenceMode" in message
    assert record[0].filename == __file__
    with guard:  # entering does not warn again
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modes.AutoDispatchBelowADInplaceOrView()  # the replacement does not warn
        modes.InferenceMode()


def test_auto_non_variable_type_mode_is_renamed_auto_dispatch_below_ad_inplace_or_view() -> None:
    """Statement: "The legacy AutoNonVariableTypeMode guard (now renamed to
    AutoDispatchBelowADInplaceOrView) ..."

    Same thread-local edit (autograd keys and ADInplaceOrView excluded), same kernels run."""
    x = dispatch.ones(2, 3, requires_grad=True)
    seen = []
    for guard in (legacy_guard(), modes.AutoDispatchBelowADInplaceOrView()):
        with guard:
            tls = dispatch.tls_local_dispatch_key_set()
            with dispatch.trace() as tr:
                y = x.view(-1) * 2
        seen.append((tls, keys_of(tr), y.grad_fn, y.requires_grad))
    assert seen[0] == seen[1]
    tls, keys, _, _ = seen[0]
    assert DispatchKey.ADInplaceOrView in tls.excluded
    assert DispatchKey.AutogradCPU in tls.excluded
    assert keys == ["CPU", "CPU"]


def hazard_program(guard: Callable[[], Any]) -> list[float]:
    """The legacy inference-workload pattern gone wrong: a buffer made under the guard is
    used in an autograd computation (and saved for backward), then updated in place under
    the guard before ``backward``. Returns ``w.grad``."""
    w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with guard():
        x = dispatch.tensor([1.0, 1.0, 1.0]) * 2  # a buffer: [2, 2, 2]
    loss = (w * x).sum()  # MulBackward0 saves x; d loss / d w == x == [2, 2, 2]
    with guard():
        x.mul_(3.0)  # the buffer is updated in place: [6, 6, 6]
    loss.backward()
    assert w.grad is not None
    return list(w.grad.tolist())


def test_legacy_guard_is_unsafe_silently_produces_wrong_gradient() -> None:
    """Statement: "... was commonly used for inference workloads but is unsafe — it can silently
    bypass safety checks and produce wrong results."

    Concretely: under the legacy guard the in-place update skips the version bump (no
    ADInplaceOrView kernel runs), so ``backward`` reads the modified saved tensor and returns
    a wrong gradient without a word. The same program without any guard raises the
    version-mismatch error; under InferenceMode the buffer is an inference tensor and
    autograd refuses to save it."""
    correct = [2.0, 2.0, 2.0]  # d/dw sum(w * x) = x as it was when the loss was computed

    with pytest.warns(DeprecationWarning):
        wrong = hazard_program(modes.AutoNonVariableTypeMode)
    assert wrong == [6.0, 6.0, 6.0]
    assert wrong != correct  # silently wrong: no error, no warning beyond the deprecation
    # the renamed guard behaves identically (that is the point of the migration advice)
    assert hazard_program(modes.AutoDispatchBelowADInplaceOrView) == wrong

    # why: the in-place op under the guard ran the CPU kernel only, and bumped nothing
    x = dispatch.ones(3)
    with legacy_guard(), dispatch.trace() as tr:
        x.mul_(3.0)
    assert keys_of(tr) == ["CPU"] and x._version == 0

    # without any guard the version counter catches it
    with pytest.raises(RuntimeError) as e:
        hazard_program(contextlib.nullcontext)
    assert str(e.value).startswith(
        MISMATCH_PREFIX + ": [torch.FloatTensor [3]] is at version 1; expected version 0 instead."
    )
    # under InferenceMode the buffer is an inference tensor: it cannot be saved
    with pytest.raises(RuntimeError, match=exactly(SAVE_ERR)):
        hazard_program(modes.InferenceMode)
    # and had it been saved some other way, its in-place update outside would be refused
    with modes.InferenceMode():
        buf = dispatch.tensor([2.0, 2.0, 2.0])
    with pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        buf.mul_(3.0)

    # the correct value, computed separately: no in-place update at all
    w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (w * (dispatch.ones(3) * 2)).sum().backward()
    assert w.grad is not None and w.grad.tolist() == correct


def test_legacy_guard_silently_bypasses_safety_checks() -> None:
    """Statement: "... it can silently bypass safety checks ..."

    Three checks the legacy guard turns off without a word, each raising without it: the
    leaf check, the immutability of inference tensors, and view tracking (a view's update no
    longer reaches its base's version counter)."""
    leaf = dispatch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=exactly(LEAF_ERR)):
        leaf.add_(1.0)
    with legacy_guard():
        leaf.add_(1.0)  # silently allowed
    assert leaf.tolist() == [2.0, 2.0, 2.0] and leaf._version == 0

    with modes.InferenceMode():
        inf = dispatch.ones(3)
    with pytest.raises(RuntimeError, match=exactly(INPLACE_OUTSIDE_ERR)):
        inf.add_(1.0)
    with legacy_guard():
        inf.add_(1.0)  # an inference tensor mutated outside InferenceMode
    assert inf.tolist() == [2.0, 2.0, 2.0]

    base = dispatch.ones(4)
    tracked = base[0:2]
    tracked.add_(1.0)
    assert tracked._is_view() and base._version == 1
    with legacy_guard(), dispatch.trace() as tr:
        untracked = base[2:4]
        untracked.add_(1.0)
    assert not untracked._is_view() and untracked._base is None
    assert base._version == 1 and base.tolist() == [2.0, 2.0, 2.0, 2.0]
    assert set(keys_of(tr)) == {"CPU"}


def test_inference_mode_is_drop_in_replacement_for_inference_workload(saved_model: Path) -> None:
    """Statement: "For inference-only workloads (e.g. loading a pretrained JIT model and running
    inference in C++ runtime), use c10::InferenceMode as a drop-in replacement. It preserves the
    performance characteristics while providing correctness guarantees."

    The workload with the legacy guard swapped for InferenceMode, nothing else changed: the
    same outputs, the very same kernels (CPU only), and what it produced is now protected."""
    data = make_data(2)
    out_legacy, seen_legacy, tr_legacy = run_workload(legacy_guard(), saved_model, data)
    out_im, seen_im, tr_im = run_workload(modes.InferenceMode(), saved_model, data)
    check_workload_outputs(out_legacy, saved_model, data)
    check_workload_outputs(out_im, saved_model, data)
    for a, b in zip(out_legacy, out_im):
        assert a.tolist() == b.tolist()
    # performance characteristics: kernel for kernel the same dispatch
    assert tr_legacy.keys_run() == tr_im.keys_run()
    assert ran_autograd_or_view_kernels(tr_im) == set()
    # correctness guarantees: the legacy guard's tensors are normal tensors whose in-place
    # updates under it go unrecorded; InferenceMode's are inference tensors
    assert not any(t.is_inference() for t in seen_legacy)
    assert all(t.is_inference() for t in seen_im)
    probs_legacy, probs_im = out_legacy[0], out_im[0]
    w = dispatch.ones(3, requires_grad=True)
    assert error_of(lambda: w * probs_legacy) is None
    assert error_of(lambda: w * probs_im) == SAVE_ERR
    assert error_of(lambda: probs_im.add_(1.0)) == INPLACE_OUTSIDE_ERR


# ---------------------------------------------------------------------------------------------
# The custom autograd kernel: ROIAlignFunction
# ---------------------------------------------------------------------------------------------
_ns = itertools.count()


class RoiAlignOp:
    """``roi_align`` defined in a Library with a CPU kernel (tests/test_roi_align.py's numpy
    kernels) and the document's ``ROIAlignFunction`` as its Autograd kernel."""

    def __init__(self, guard: Callable[[], Any] = modes.AutoDispatchBelowADInplaceOrView) -> None:
        self.ns = f"t_gm_doc_roi_{next(_ns)}"
        self.lib = dispatch.Library(self.ns, "DEF")
        self.lib.define(
            "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
            "int pooled_width, int sampling_ratio, bool aligned) -> Tensor"
        )
        self.lib.define(
            "roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, "
            "int pooled_height, int pooled_width, int batch_size, int channels, int height, "
            "int width, int sampling_ratio, bool aligned) -> Tensor"
        )
        self.cpu_tls: list[dispatch.LocalDispatchKeySet] = []

        def cpu(*args: Any) -> dispatch.Tensor:
            self.cpu_tls.append(dispatch.tls_local_dispatch_key_set())
            return roi_align_cpu(*args)

        self.lib.impl("roi_align", cpu, "CPU")
        self.lib.impl("roi_align_backward", roi_align_backward_cpu, "CPU")
        ops = getattr(dispatch.ops, self.ns)
        self.ops = ops

        class ROIAlignFunction(autograd.Function):
            @staticmethod
            def forward(
                ctx: Any,
                input: dispatch.Tensor,
                rois: dispatch.Tensor,
                spatial_scale: float,
                pooled_height: int,
                pooled_width: int,
                sampling_ratio: int,
                aligned: bool,
            ) -> dispatch.Tensor:
                ctx.saved_data["spatial_scale"] = spatial_scale
                ctx.saved_data["pooled_height"] = pooled_height
                ctx.saved_data["pooled_width"] = pooled_width
                ctx.saved_data["sampling_ratio"] = sampling_ratio
                ctx.saved_data["aligned"] = aligned
                ctx.saved_data["input_shape"] = tuple(input.shape)
                ctx.save_for_backward(rois)
                with guard():
                    result: dispatch.Tensor = ops.roi_align(
                        input,
                        rois,
                        spatial_scale,
                        pooled_height,
                        pooled_width,
                        sampling_ratio,
                        aligned,
                    )
                return result

            @staticmethod
            def backward(ctx: Any, grad_output: dispatch.Tensor) -> tuple[Any, ...]:
                (rois,) = ctx.saved_tensors
                d = ctx.saved_data
                batch_size, channels, height, width = d["input_shape"]
                grad_input = ops.roi_align_backward(
                    grad_output,
                    rois,
                    d["spatial_scale"],
                    d["pooled_height"],
                    d["pooled_width"],
                    batch_size,
                    channels,
                    height,
                    width,
                    d["sampling_ratio"],
                    d["aligned"],
                )
                return grad_input, None, None, None, None, None, None

        self.Function = ROIAlignFunction
        self.lib.impl("roi_align", ROIAlignFunction.apply, "Autograd")


@pytest.fixture
def roi() -> Iterator[RoiAlignOp]:
    op = RoiAlignOp()
    try:
        yield op
    finally:
        op.lib.close()


def f64(a: np.ndarray, requires_grad: bool = False) -> dispatch.Tensor:
    return dispatch.tensor(a, dtype=dispatch.float64, requires_grad=requires_grad)


def test_example_roi_align_function(roi: RoiAlignOp) -> None:
    """The ROIAlignFunction example:

        static variable_list forward(AutogradContext* ctx, const Variable& input,
            const Variable& rois, double spatial_scale, int64_t pooled_height,
            int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
          ctx->saved_data["spatial_scale"] = spatial_scale;
          ctx->save_for_backward({rois});
          at::AutoDispatchBelowADInplaceOrView guard;
          auto result = roi_align(input, rois, spatial_scale,
              pooled_height, pooled_width, sampling_ratio, aligned);
          return {result};
        }

    Forward matches the reference loop implementation; the node keeps ``spatial_scale`` in
    ``saved_data`` and ``rois`` in ``saved_tensors``; backward gives the exact gradient
    (ROIAlign is linear in its input, so the Jacobian is built column by column from the
    loop implementation)."""
    config = (0.5, 2, 3, 2, True)  # spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned
    x, rois = make_inputs(21, n=2, c=2, h=4, w=5, k=3)
    rois[:, 1:] *= 2.0  # spatial_scale 0.5 maps them back onto the image
    inp = f64(x, requires_grad=True)
    r = f64(rois)
    out = roi.ops.roi_align(inp, r, *config)
    np.testing.assert_allclose(out.detach().numpy(), roi_align_loop(x, rois, *config), atol=1e-12)
    fn = out.grad_fn
    assert fn.name() == "ROIAlignFunctionBackward"
    assert fn.saved_data["spatial_scale"] == 0.5
    (saved,) = fn.saved_tensors
    assert saved is r

    weights = np.random.default_rng(22).standard_normal(out.shape)
    (out * f64(weights)).sum().backward()
    assert inp.grad is not None
    expected = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        basis = np.zeros_like(x)
        basis[idx] = 1.0
        expected[idx] = (roi_align_loop(basis, rois, *config) * weights).sum()
    np.testing.assert_allclose(inp.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert np.abs(expected).sum() > 0


def test_custom_autograd_kernel_redispatches_below_autograd_with_auto_dispatch_below_ad_inplace_or_view(
    roi: RoiAlignOp,
) -> None:
    """Statement: "For custom autograd kernels that need to redispatch below the Autograd dispatch
    key, use AutoDispatchBelowADInplaceOrView instead"

    Because of keys: the operator's Autograd kernel (the Function) runs at AutogradCPU; the
    call it makes under AutoDispatchBelowADInplaceOrView goes straight to CPU — neither back
    into the Autograd kernel nor through ADInplaceOrView — and the CPU kernel runs with both
    excluded. Without the guard the same call re-enters the Autograd kernel."""
    x, rois = make_inputs(23, n=1, c=1, h=4, w=4, k=2)
    inp = f64(x, requires_grad=True)
    with dispatch.trace() as tr:
        out = roi.ops.roi_align(inp, f64(rois), 1.0, 2, 2, 2, True)
    events = [(e.key, e.depth) for e in tr.events if e.op == f"{roi.ns}::roi_align"]
    assert events == [("AutogradCPU", 0), ("CPU", 1)]
    assert "ADInplaceOrView" not in keys_of(tr)
    _, excluded = roi.cpu_tls[-1]
    assert DispatchKey.AutogradCPU in excluded and DispatchKey.ADInplaceOrView in excluded
    assert out.grad_fn is not None and out.grad_fn.name() == "ROIAlignFunctionBackward"
    assert modes.is_grad_enabled()
    assert DispatchKey.AutogradCPU not in dispatch.tls_local_dispatch_key_set().excluded

    # without the guard: the forward's call lands in the Autograd kernel again
    depth = {"entries": 0}

    class Reentered(Exception):
        pass

    def no_guard() -> Any:
        depth["entries"] += 1
        if depth["entries"] > 1:
            raise Reentered
        return contextlib.nullcontext()

    unguarded = RoiAlignOp(guard=no_guard)
    try:
        with dispatch.trace() as tr2, pytest.raises(Reentered):
            unguarded.ops.roi_align(f64(x, requires_grad=True), f64(rois), 1.0, 2, 2, 2, True)
        keys = [e.key for e in tr2.events if e.op == f"{unguarded.ns}::roi_align"]
        assert keys == ["AutogradCPU", "AutogradCPU"]
    finally:
        unguarded.lib.close()


# =============================================================================================
# Side by side with torch
# =============================================================================================
DS = SimpleNamespace(
    name="dispatchsim",
    tensor=dispatch.tensor,
    ones=dispatch.ones,
    zeros=dispatch.zeros,
    no_grad=modes.no_grad,
    enable_grad=modes.enable_grad,
    set_grad_enabled=modes.set_grad_enabled,
    inference_mode=modes.inference_mode,
    below_ad_inplace_or_view=modes.AutoDispatchBelowADInplaceOrView,
    is_grad_enabled=modes.is_grad_enabled,
    is_inference_mode_enabled=modes.is_inference_mode_enabled,
)


def torch_api() -> SimpleNamespace:
    torch = pytest.importorskip("torch")
    return SimpleNamespace(
        name="torch",
        tensor=torch.tensor,
        ones=torch.ones,
        zeros=torch.zeros,
        no_grad=torch.no_grad,
        enable_grad=torch.enable_grad,
        set_grad_enabled=torch.set_grad_enabled,
        inference_mode=torch.inference_mode,
        below_ad_inplace_or_view=torch._C._AutoDispatchBelowADInplaceOrView,
        is_grad_enabled=torch.is_grad_enabled,
        is_inference_mode_enabled=torch.is_inference_mode_enabled,
    )


def discard(_: Any) -> None:
    """Evaluates to None whatever an in-place op returned."""


def outcome(fn: Callable[[], Any]) -> Any:
    """A plain-data result: ``("ok", value)`` or ``("error", message)``."""
    try:
        return ("ok", fn())
    except RuntimeError as e:
        return ("error", str(e))


def p_nogradguard_disables_gradient_computation(L: Any) -> Any:
    w = L.ones(2, requires_grad=True)
    with L.no_grad():
        inside = w * 2
        flag = L.is_grad_enabled()
    after = w * 2
    return [flag, inside.requires_grad, inside.grad_fn is None, after.grad_fn.name()]


def p_nogradguard_restores_previous_gradient_mode(L: Any) -> Any:
    seen = []
    with L.no_grad():
        with L.no_grad():
            L.set_grad_enabled(True)
            seen.append(L.is_grad_enabled())
        seen.append(L.is_grad_enabled())
    seen.append(L.is_grad_enabled())
    return seen


def p_inference_tensors_have_no_version_counter(L: Any) -> Any:
    with L.inference_mode():
        i = L.tensor([1.0, 2.0])
        inside = outcome(lambda: i._version)
        i.add_(1.0)
    w = L.ones(2, requires_grad=True)
    return [
        inside,
        outcome(lambda: i._version),
        outcome(lambda: (w * i).sum().item()),
        type(i.clone()._version).__name__,
    ]


def p_mutating_data_outside_inference_mode_raises(L: Any) -> Any:
    res = []
    for mutate in (
        lambda t: t.add_(1.0),
        lambda t: t.mul_(L.ones(2)),
        lambda t: t.zero_(),
        lambda t: t.fill_(3.0),
        lambda t: t.copy_(L.ones(2)),
        lambda t: t.__setitem__(0, 5.0),
        lambda t: t.view(2).add_(1.0),
    ):
        with L.inference_mode():
            i = L.tensor([1.0, 2.0])
        res.append(outcome(lambda m=mutate, i=i: discard(m(i))))
        with L.no_grad():
            res.append(outcome(lambda m=mutate, i=i: discard(m(i))))
        with L.inference_mode():
            res.append(outcome(lambda m=mutate, i=i: discard(m(i))))
    return res


def p_setting_requires_grad_true_outside_inference_mode_raises(L: Any) -> Any:
    with L.inference_mode():
        i = L.tensor([1.0, 2.0])
        j = L.tensor([1.0], requires_grad=True)

    def set_attr() -> None:
        i.requires_grad = True

    res = [
        outcome(lambda: discard(i.requires_grad_())),
        outcome(set_attr),
        outcome(lambda: j.requires_grad_(False).requires_grad),
    ]
    with L.inference_mode():
        res.append(outcome(lambda: i.requires_grad_().requires_grad))
    res.append(i.is_inference())
    return res


def p_clone_outside_inference_mode(L: Any) -> Any:
    with L.inference_mode():
        i = L.tensor([1.0, 2.0])
        inside = i.clone()
    c = i.clone()
    v0 = c._version
    res = [c.is_inference()]
    c.add_(1.0)
    res += [c._version - v0, c.tolist(), inside.is_inference()]
    c.requires_grad_()
    (c * c).sum().backward()
    res.append(c.grad.tolist())
    return res


def p_non_view_tensor_is_inference_iff_allocated_in_inference_mode(L: Any) -> Any:
    with L.inference_mode():
        inf = L.ones(2)
    nrm = L.ones(2, requires_grad=True)
    res = []
    for mode in (
        lambda: contextlib.nullcontext(),
        L.no_grad,
        L.inference_mode,
        lambda: L.inference_mode(False),
        L.below_ad_inplace_or_view,
    ):
        with mode():
            made = [L.ones(2), inf * 2, nrm * 2, inf + nrm, inf.clone(), nrm.clone()]
        res.append([t.is_inference() for t in made])
    with L.inference_mode(), L.inference_mode(False):
        res.append([L.ones(1).is_inference(), (inf * 1).is_inference()])
    with L.inference_mode(), L.enable_grad():
        res.append([L.ones(1).is_inference(), (nrm * 1).is_inference()])
    return res


def p_view_is_inference_iff_view_of_inference_tensor(L: Any) -> Any:
    with L.inference_mode():
        inf = L.ones(2, 3)
    nrm = L.ones(2, 3)
    res = []
    for mode in (lambda: contextlib.nullcontext(), L.no_grad, L.inference_mode):
        with mode():
            for base in (inf, nrm):
                vs = [base.view(-1), base.t(), base[1], base.unbind(0)[0], base.detach()]
                res.append([v.is_inference() for v in vs])
    return res


def p_inference_mode_records_no_grad_fn(L: Any) -> Any:
    leaf = L.tensor([1.0, 2.0], requires_grad=True)
    nonleaf = leaf.clone()
    with L.inference_mode():
        inf_leaf = L.tensor([3.0, 4.0], requires_grad=True)
        outs = [leaf * 2, leaf[0:1], inf_leaf * 2, inf_leaf.view(2), leaf * inf_leaf]
        no_grad_fn = [o.grad_fn is None for o in outs]
        nonleaf.add_(1.0)
        leaf.mul_(1.0)
    return [
        no_grad_fn,
        outcome(lambda: outs[1].grad_fn),  # the IM view of a base modified in place
        [o.requires_grad for o in outs],
        nonleaf.grad_fn.name(),
        leaf.is_leaf,
        leaf._version,
    ]


def p_views_of_inference_tensors_are_not_tracked(L: Any) -> Any:
    n = L.ones(2, 3)
    with L.inference_mode():
        i = L.ones(2, 3)
        vs = [i.view(6), i[0], i.t(), i.view(6)[1:3]]
        nv = n.view(6)
    res = [[(v._is_view(), v._base is None, v.is_leaf) for v in vs], nv._is_view()]
    nv.add_(1.0)
    res.append((n._version, nv._version))
    return res


def p_view_and_non_view_inference_tensors_are_indistinguishable(L: Any) -> Any:
    with L.inference_mode():
        base = L.ones(2, 3, requires_grad=True)
        view = base.view(6)
        fresh = L.ones(6)

    def describe(t: Any) -> Any:
        return [
            t.is_inference(),
            t._is_view(),
            t._base is None,
            t.is_leaf,
            t.requires_grad,
            t.grad_fn is None,
            outcome(lambda: t._version),
            outcome(lambda: discard(t.add_(1.0))),
        ]

    return [describe(view), describe(fresh)]


def p_inplace_on_inference_tensor_does_not_bump(L: Any) -> Any:
    n = L.ones(3)
    with L.inference_mode():
        i = L.ones(3)
        res = [outcome(lambda: i.add_(1.0).tolist()), outcome(lambda: i._version)]
        n.add_(1.0)
        res.append(n._version)
    return res


def p_inference_mode_affects_tensor_creation(L: Any) -> Any:
    w = L.ones(2, requires_grad=True)
    res = []
    for guard in (L.no_grad, L.inference_mode):
        with guard():
            made = [L.ones(2), w * 2, w.clone(), w.view(2)]
        res.append([(t.is_inference(), t.grad_fn is None) for t in made])
    return res


def p_inference_tensor_limitations_apply_after_exiting(L: Any) -> Any:
    with L.inference_mode():
        t = L.zeros(3)
        inside = [
            outcome(lambda: discard(t.add_(1.0))),
            outcome(lambda: discard(t.requires_grad_(True))),
        ]
        t.requires_grad_(False)
    return [
        *inside,
        outcome(lambda: discard(t.add_(1.0))),
        outcome(lambda: discard(t.requires_grad_(True))),
        outcome(lambda: (L.ones(3, requires_grad=True) * t).sum().item()),
    ]


def p_nested_inference_mode(L: Any) -> Any:
    def state() -> Any:
        return (L.is_inference_mode_enabled(), L.is_grad_enabled(), L.ones(1).is_inference())

    seen = [state()]
    with L.inference_mode(True):
        seen.append(state())
        with L.inference_mode(False):
            seen.append(state())
            with L.inference_mode(True):
                seen.append(state())
            seen.append(state())
        seen.append(state())
    seen.append(state())
    return seen


def p_legacy_guard_is_unsafe(L: Any) -> Any:
    def program(guard: Callable[[], Any]) -> Any:
        w = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
        with guard():
            x = L.tensor([1.0, 1.0, 1.0]) * 2
        loss = (w * x).sum()
        with guard():
            x.mul_(3.0)
        loss.backward()
        return w.grad.tolist()

    return [
        outcome(lambda: program(L.below_ad_inplace_or_view)),
        outcome(lambda: program(contextlib.nullcontext)),
        outcome(lambda: program(L.inference_mode)),
    ]


def p_legacy_guard_bypasses_safety_checks(L: Any) -> Any:
    leaf = L.ones(3, requires_grad=True)
    res = [outcome(lambda: discard(leaf.add_(1.0)))]
    with L.below_ad_inplace_or_view():
        res.append(outcome(lambda: discard(leaf.add_(1.0))))
    res.append((leaf.detach().tolist(), leaf._version))
    with L.inference_mode():
        inf = L.ones(3)
    res.append(outcome(lambda: discard(inf.add_(1.0))))
    with L.below_ad_inplace_or_view():
        res.append(outcome(lambda: discard(inf.add_(1.0))))
    base = L.ones(4)
    with L.below_ad_inplace_or_view():
        v = base[2:4]
        v.add_(1.0)
    res.append((v._is_view(), v._base is None, base._version, base.tolist()))
    return res


ORACLE_PROGRAMS: dict[str, Callable[[Any], Any]] = {
    "nogradguard_disables_gradient_computation": p_nogradguard_disables_gradient_computation,
    "nogradguard_restores_previous_gradient_mode": p_nogradguard_restores_previous_gradient_mode,
    "inference_tensors_have_no_version_counter": p_inference_tensors_have_no_version_counter,
    "mutating_data_outside_inference_mode_raises": p_mutating_data_outside_inference_mode_raises,
    "setting_requires_grad_true_outside_inference_mode_raises": (
        p_setting_requires_grad_true_outside_inference_mode_raises
    ),
    "clone_outside_inference_mode": p_clone_outside_inference_mode,
    "non_view_tensor_is_inference_iff_allocated_in_inference_mode": (
        p_non_view_tensor_is_inference_iff_allocated_in_inference_mode
    ),
    "view_is_inference_iff_view_of_inference_tensor": (
        p_view_is_inference_iff_view_of_inference_tensor
    ),
    "inference_mode_records_no_grad_fn": p_inference_mode_records_no_grad_fn,
    "views_of_inference_tensors_are_not_tracked": p_views_of_inference_tensors_are_not_tracked,
    "view_and_non_view_inference_tensors_are_indistinguishable": (
        p_view_and_non_view_inference_tensors_are_indistinguishable
    ),
    "inplace_on_inference_tensor_does_not_bump": p_inplace_on_inference_tensor_does_not_bump,
    "inference_mode_affects_tensor_creation": p_inference_mode_affects_tensor_creation,
    "inference_tensor_limitations_apply_after_exiting": (
        p_inference_tensor_limitations_apply_after_exiting
    ),
    "nested_inference_mode": p_nested_inference_mode,
    "legacy_guard_is_unsafe": p_legacy_guard_is_unsafe,
    "legacy_guard_bypasses_safety_checks": p_legacy_guard_bypasses_safety_checks,
}


@pytest.mark.oracle
@pytest.mark.parametrize("name", list(ORACLE_PROGRAMS))
def test_statement_matches_torch(name: str) -> None:
    """Each program above exercises one statement of the document; dispatchsim and torch
    2.13 must observe the same flags, versions, values and error texts."""
    torch_L = torch_api()
    program = ORACLE_PROGRAMS[name]
    ours = program(DS)
    theirs = program(torch_L)
    assert ours == theirs


def p_clone_of_inference_tensor_version(L: Any) -> Any:
    with L.inference_mode():
        i = L.ones(2, 3)
    n = L.ones(2, 3)
    return {
        "inference.clone()": i.clone()._version,
        "inference.t().contiguous()": i.t().contiguous()._version,
        "inference.double()": i.double()._version,
        "normal.clone()": n.clone()._version,
        "normal.t().contiguous()": n.t().contiguous()._version,
    }


@pytest.mark.oracle
def test_clone_of_inference_tensor_outside_inference_mode_version_matches_torch() -> None:
    """Statement: "To work around this, make a clone outside InferenceMode to get a normal
    tensor" — the clone's starting version, side by side with torch."""
    torch_L = torch_api()
    assert p_clone_of_inference_tensor_version(DS) == p_clone_of_inference_tensor_version(torch_L)


def test_oracle_programs_are_not_vacuous() -> None:
    """The oracle programs observe something on dispatchsim alone: spot-check a few
    results so a program that silently observes nothing would be noticed."""
    assert p_legacy_guard_is_unsafe(DS)[0] == ("ok", [6.0, 6.0, 6.0])
    assert p_legacy_guard_is_unsafe(DS)[2] == ("error", SAVE_ERR)
    assert p_nested_inference_mode(DS) == [
        (False, True, False),
        (True, False, True),
        (False, True, False),
        (True, False, True),
        (False, True, False),
        (True, False, True),
        (False, True, False),
    ]
    assert p_inference_tensors_have_no_version_counter(DS) == [
        ("error", VERSION_ERR),
        ("error", VERSION_ERR),
        ("error", SAVE_ERR),
        "int",
    ]
    errors = p_mutating_data_outside_inference_mode_raises(DS)
    assert (
        errors == [("error", INPLACE_OUTSIDE_ERR), ("error", INPLACE_OUTSIDE_ERR), ("ok", None)] * 7
    )
