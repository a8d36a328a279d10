"""A custom Function as an operator's Autograd kernel: the ROIAlign example at the end of
the Gradient Modes document (shared/reference/gradient-modes.txt, torchvision's
``ROIAlignFunction``), rebuilt on dispatchsim.

* ``roi_align`` and ``roi_align_backward`` are defined in a Library and get numpy CPU
  kernels (bilinear-interpolated average pooling over regions of interest, torchvision's
  algorithm: ``aligned`` half-pixel offset, ``sampling_ratio`` or an adaptive grid);
* ``RoiAlignFunction`` is the document's C++ Function in Python: ``saved_data`` holds the
  non-tensor arguments, ``save_for_backward(rois)``, and ``forward`` calls the operator again
  under ``AutoDispatchBelowADInplaceOrView`` so the call goes straight to the CPU kernel;
* ``RoiAlignFunction.apply`` is registered as the operator's ``Autograd`` kernel.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dispatch
import modes
from dispatch import DispatchKey
from kernels import autograd

_ns_counter = itertools.count()


# ---------------------------------------------------------------------------------------------
# The numpy kernels
# ---------------------------------------------------------------------------------------------
def _np(t: dispatch.Tensor) -> np.ndarray:
    """A kernel's view of a tensor's data (``detach`` is itself an operator call)."""
    return t.detach().numpy()


def _axis_weights(coords: np.ndarray, size: int) -> np.ndarray:
    """Bilinear interpolation along one axis, torchvision's ``bilinear_interpolate`` rules:
    a sample outside ``[-1, size]`` contributes nothing; a sample below 0 is clamped to 0; one
    at or past the last pixel uses the last pixel. ``coords`` is ``(bins, samples)``; the
    result ``(bins, size)`` sums the weights of a bin's samples. Interpolation in 2-D is the
    product of the two axes' weights, so a bin's sum over its sample grid factorizes."""
    bins, samples = coords.shape
    c = coords.reshape(-1).astype(np.float64)
    valid = (c >= -1.0) & (c <= size)
    c = np.where(c <= 0, 0.0, c)
    low = np.floor(c).astype(np.int64)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    high = np.where(at_end, size - 1, low + 1)
    c = np.where(at_end, low.astype(np.float64), c)
    frac = c - low
    rows = np.repeat(np.arange(bins), samples)
    w = np.zeros((bins, size))
    np.add.at(w, (rows[valid], low[valid]), 1.0 - frac[valid])
    np.add.at(w, (rows[valid], high[valid]), frac[valid])
    return w


def _roi_geometry(
    roi: np.ndarray,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> tuple[int, np.ndarray, np.ndarray, int]:
    """(batch index, y sample coords (ph, gh), x sample coords (pw, gw), sample count)."""
    offset = 0.5 if aligned else 0.0
    batch = int(roi[0])
    x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in roi[1:])
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # the legacy behaviour: a roi is at least one pixel
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / pooled_height, roi_w / pooled_width
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_height)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_width)
    count = max(grid_h * grid_w, 1)
    ys = (
        y1
        + np.arange(pooled_height)[:, None] * bin_h
        + (np.arange(grid_h)[None, :] + 0.5) * bin_h / grid_h
    )
    xs = (
        x1
        + np.arange(pooled_width)[:, None] * bin_w
        + (np.arange(grid_w)[None, :] + 0.5) * bin_w / grid_w
    )
    return batch, ys, xs, count


def roi_align_cpu(
    input: dispatch.Tensor,
    rois: dispatch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> dispatch.Tensor:
    x, r = _np(input), _np(rois)
    _, channels, height, width = x.shape
    out = np.zeros((r.shape[0], channels, pooled_height, pooled_width))
    for k in range(r.shape[0]):
        b, ys, xs, count = _roi_geometry(
            r[k], spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
        )
        wy, wx = _axis_weights(ys, height), _axis_weights(xs, width)
        out[k] = np.einsum("ph,chw,qw->cpq", wy, x[b], wx) / count
    return dispatch.tensor(out.astype(x.dtype))


def roi_align_backward_cpu(
    grad: dispatch.Tensor,
    rois: dispatch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> dispatch.Tensor:
    g, r = _np(grad), _np(rois)
    grad_input = np.zeros((batch_size, channels, height, width))
    for k in range(r.shape[0]):
        b, ys, xs, count = _roi_geometry(
            r[k], spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
        )
        wy, wx = _axis_weights(ys, height), _axis_weights(xs, width)
        grad_input[b] += np.einsum("ph,cpq,qw->chw", wy, g[k], wx) / count
    return dispatch.tensor(grad_input.astype(g.dtype))


# ---------------------------------------------------------------------------------------------
# The straightforward loop implementation (torchvision's roi_align_forward_kernel_impl)
# ---------------------------------------------------------------------------------------------
def _bilinear(img: np.ndarray, y: float, x: float) -> float:
    height, width = img.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return float(
        hy * hx * img[y_low, x_low]
        + hy * lx * img[y_low, x_high]
        + ly * hx * img[y_high, x_low]
        + ly * lx * img[y_high, x_high]
    )


def roi_align_loop(
    x: np.ndarray,
    rois: np.ndarray,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> np.ndarray:
    out = np.zeros((rois.shape[0], x.shape[1], pooled_height, pooled_width))
    offset = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois):
        b = int(roi[0])
        start_w = roi[1] * spatial_scale - offset
        start_h = roi[2] * spatial_scale - offset
        end_w = roi[3] * spatial_scale - offset
        end_h = roi[4] * spatial_scale - offset
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_height, roi_w / pooled_width
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_height)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_width)
        count = max(grid_h * grid_w, 1)
        for c in range(x.shape[1]):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    total = 0.0
                    for iy in range(grid_h):
                        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            xx = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total += _bilinear(x[b, c], y, xx)
                    out[k, c, ph, pw] = total / count
    return out


# ---------------------------------------------------------------------------------------------
# The custom Function (gradient-modes.txt, ROIAlignFunction)
# ---------------------------------------------------------------------------------------------
def make_roi_align_function(ns: str, guard: Any = modes.AutoDispatchBelowADInplaceOrView) -> Any:
    ops = getattr(dispatch.ops, ns)

    class RoiAlignFunction(autograd.Function):
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
                    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
                )
            return result

        @staticmethod
        def backward(ctx: Any, grad_output: dispatch.Tensor) -> tuple[Any, ...]:
            (rois,) = ctx.saved_tensors
            d = ctx.saved_data
            batch_size, channels, height, width = d["input_shape"]
            grad_in = ops.roi_align_backward(
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
            return grad_in, None, None, None, None, None, None

    return RoiAlignFunction


SCHEMA = (
    "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
    "int pooled_width, int sampling_ratio, bool aligned) -> Tensor"
)
BACKWARD_SCHEMA = (
    "roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_height, "
    "int pooled_width, int batch_size, int channels, int height, int width, "
    "int sampling_ratio, bool aligned) -> Tensor"
)


class RoiOps:
    """An open Library with both operators, their CPU kernels and the Function's Autograd
    kernel; ``tls_seen`` records the TLS each CPU kernel ran under."""

    def __init__(self, guard: Any = modes.AutoDispatchBelowADInplaceOrView) -> None:
        self.ns = f"t_roi_align_{next(_ns_counter)}"
        self.lib = dispatch.Library(self.ns, "DEF")
        self.tls_seen: list[tuple[str, dispatch.LocalDispatchKeySet]] = []
        self.lib.define(SCHEMA)
        self.lib.define(BACKWARD_SCHEMA)

        def fwd(*args: Any) -> dispatch.Tensor:
            self.tls_seen.append(("roi_align", dispatch.tls_local_dispatch_key_set()))
            return roi_align_cpu(*args)

        def bwd(*args: Any) -> dispatch.Tensor:
            self.tls_seen.append(("roi_align_backward", dispatch.tls_local_dispatch_key_set()))
            return roi_align_backward_cpu(*args)

        self.lib.impl("roi_align", fwd, "CPU")
        self.lib.impl("roi_align_backward", bwd, "CPU")
        self.Function = make_roi_align_function(self.ns, guard)
        self.lib.impl("roi_align", self.Function.apply, "Autograd")
        self.ops = getattr(dispatch.ops, self.ns)

    def roi_align(self, *args: Any) -> dispatch.Tensor:
        out: dispatch.Tensor = self.ops.roi_align(*args)
        return out


@pytest.fixture
def roi() -> Iterator[RoiOps]:
    r = RoiOps()
    try:
        yield r
    finally:
        r.lib.close()


def make_inputs(
    seed: int, n: int = 2, c: int = 3, h: int = 7, w: int = 9, k: int = 4, dtype: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    rois = np.zeros((k, 5))
    rois[:, 0] = rng.integers(0, n, size=k)
    xy1 = rng.uniform(-2.0, max(h, w), size=(k, 2))
    wh = rng.uniform(0.0, 6.0, size=(k, 2))
    rois[:, 1:3] = xy1
    rois[:, 3:5] = xy1 + wh
    return x, rois


def t64(a: np.ndarray, requires_grad: bool = False) -> dispatch.Tensor:
    return dispatch.tensor(a, dtype=dispatch.float64, requires_grad=requires_grad)


CONFIGS = [
    # spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned
    (1.0, 2, 3, 2, True),
    (1.0, 3, 2, 0, True),
    (0.5, 2, 2, 0, False),
    (1.0, 1, 1, 1, False),
    (2.0, 3, 3, 3, True),
]


# ---------------------------------------------------------------------------------------------
# Forward values
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_forward_matches_the_loop_implementation(roi: RoiOps, config: tuple[Any, ...]) -> None:
    x, rois = make_inputs(0)
    out = roi.roi_align(t64(x), t64(rois), *config)
    assert out.shape == (rois.shape[0], x.shape[1], config[1], config[2])
    assert out.dtype == dispatch.float64
    np.testing.assert_allclose(
        out.numpy(), roi_align_loop(x, rois, *config), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    ph=st.integers(1, 3),
    pw=st.integers(1, 3),
    sampling_ratio=st.integers(0, 3),
    aligned=st.booleans(),
)
def test_forward_matches_the_loop_implementation_property(
    seed: int, scale: float, ph: int, pw: int, sampling_ratio: int, aligned: bool
) -> None:
    r = RoiOps()
    try:
        x, rois = make_inputs(seed, n=2, c=2, h=5, w=6, k=3)
        config = (scale, ph, pw, sampling_ratio, aligned)
        out = r.roi_align(t64(x), t64(rois), *config)
        np.testing.assert_allclose(
            out.numpy(), roi_align_loop(x, rois, *config), rtol=1e-12, atol=1e-12
        )
    finally:
        r.lib.close()


def test_forward_reference_math(roi: RoiOps) -> None:
    """Torchvision-free closed forms: bilinear interpolation reproduces a linear image
    exactly, and a bin's samples are symmetric about its centre, so each output is the
    linear function at the bin centre; a constant image gives the constant; a roi entirely
    outside the image (beyond the one-pixel margin) gives zeros."""
    h, w = 8, 10
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64))
    image = (0.75 * yy.T - 0.5 * xx.T + 3.0)[None, None]  # (1, 1, h, w): f(y, x)
    # aligned: roi corner (x1, y1) maps to x1 * scale - 0.5; keep every sample inside [0, size-1]
    rois = np.array([[0, 1.5, 2.0, 6.5, 7.0], [0, 2.0, 1.0, 9.0, 5.0]])
    ph, pw = 2, 3
    out = roi.roi_align(t64(image), t64(rois), 1.0, ph, pw, 2, True).numpy()
    for k, (_, x1, y1, x2, y2) in enumerate(rois):
        x1, y1, x2, y2 = x1 - 0.5, y1 - 0.5, x2 - 0.5, y2 - 0.5
        for i in range(ph):
            for j in range(pw):
                cy = y1 + (i + 0.5) * (y2 - y1) / ph
                cx = x1 + (j + 0.5) * (x2 - x1) / pw
                assert out[k, 0, i, j] == pytest.approx(0.75 * cy - 0.5 * cx + 3.0, abs=1e-12)
    const = np.full((1, 2, h, w), 2.5)
    out = roi.roi_align(t64(const), t64(rois), 1.0, ph, pw, 0, True).numpy()
    np.testing.assert_allclose(out, 2.5, rtol=1e-12)
    outside = np.array([[0, w + 3.0, h + 3.0, w + 6.0, h + 6.0], [0, -9.0, -9.0, -4.0, -3.0]])
    out = roi.roi_align(t64(const), t64(outside), 1.0, ph, pw, 2, True).numpy()
    assert np.all(out == 0.0)
    # one sample per roi (not aligned: a roi is at least one pixel, the sample at its centre):
    # y == h and y == -1 are still inside the margin (clamped to the last / first row),
    # y == -1.1 is outside
    edges = np.array(
        [[0, 4.0, h - 0.5, 5.0, h + 0.5], [0, 4.0, -1.5, 5.0, -0.5], [0, 4.0, -1.6, 5.0, -0.6]]
    )
    out = roi.roi_align(t64(image), t64(edges), 1.0, 1, 1, 1, False).numpy()[:, 0, 0, 0]
    f = lambda y, x: 0.75 * y - 0.5 * x + 3.0  # noqa: E731
    np.testing.assert_allclose(out, [f(h - 1, 4.5), f(0, 4.5), 0.0], atol=1e-12)


def test_float32_in_float32_out(roi: RoiOps) -> None:
    x, rois = make_inputs(3)
    out = roi.roi_align(dispatch.tensor(x, dtype=dispatch.float32), t64(rois), 1.0, 2, 2, 2, True)
    assert out.dtype == dispatch.float32
    np.testing.assert_allclose(
        out.numpy(), roi_align_loop(x.astype(np.float32), rois, 1.0, 2, 2, 2, True), rtol=1e-5
    )


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS[:3])
def test_gradient_matches_finite_differences(roi: RoiOps, config: tuple[Any, ...]) -> None:
    x, rois = make_inputs(1, n=2, c=2, h=5, w=6, k=3)
    weights = np.random.default_rng(2).standard_normal((3, 2, config[1], config[2]))
    inp = t64(x, requires_grad=True)
    out = roi.roi_align(inp, t64(rois), *config)
    (out * t64(weights)).sum().backward()
    assert inp.grad is not None
    analytic = inp.grad.numpy()

    def loss(a: np.ndarray) -> float:
        with modes.no_grad():
            o = roi.roi_align(t64(a), t64(rois), *config)
        return float((o.numpy() * weights).sum())

    eps = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    assert np.abs(analytic).sum() > 0  # the rois do cover some pixels


def test_rois_get_no_gradient(roi: RoiOps) -> None:
    x, rois = make_inputs(4)
    inp = t64(x, requires_grad=True)
    r = t64(rois, requires_grad=True)
    out = roi.roi_align(inp, r, 1.0, 2, 2, 2, True)
    assert out.grad_fn.needs_input_grad == (True, True, False, False, False, False, False)
    out.sum().backward()
    assert inp.grad is not None
    assert r.grad is None


def test_gradient_accumulates_across_rois_of_one_image(roi: RoiOps) -> None:
    # two identical rois: the input gradient is exactly twice that of one
    x, _ = make_inputs(5, n=1)
    one = np.array([[0, 1.0, 1.0, 5.0, 4.0]])
    grads = []
    for rois in (one, np.concatenate([one, one])):
        inp = t64(x, requires_grad=True)
        roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True).sum().backward()
        assert inp.grad is not None
        grads.append(inp.grad.numpy())
    np.testing.assert_allclose(grads[1], 2 * grads[0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Which keys run
# ---------------------------------------------------------------------------------------------
def _key_events(tr: dispatch.Trace, op: str) -> list[tuple[str, bool, int]]:
    return [(e.key, e.redispatch, e.depth) for e in tr.events if e.op == op]


@pytest.mark.parametrize("requires_grad", [True, False])
def test_trace_autograd_then_cpu_without_ad_inplace_or_view(
    roi: RoiOps, requires_grad: bool
) -> None:
    x, rois = make_inputs(6)
    inp = t64(x, requires_grad=requires_grad)
    with dispatch.trace() as tr:
        out = roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True)
    # the Function's apply ran at AutogradCPU; its forward called the operator again under
    # AutoDispatchBelowADInplaceOrView, which went straight to CPU
    assert _key_events(tr, f"{roi.ns}::roi_align") == [
        ("AutogradCPU", False, 0),
        ("CPU", False, 1),
    ]
    # nothing inside the forward reached ADInplaceOrView: not even the kernel's own
    # `detach` (an aliasing op whose ADInplaceOrView kernel is real)
    assert all(e.key != "ADInplaceOrView" for e in tr.events)
    detaches = [e for e in tr.events if e.op == "aten::detach"]
    assert detaches and all(e.key == "CPU" for e in detaches)
    # the CPU kernel ran with the autograd keys and ADInplaceOrView excluded
    name, (_, excluded) = roi.tls_seen[-1]
    assert name == "roi_align"
    assert DispatchKey.ADInplaceOrView in excluded
    assert DispatchKey.AutogradCPU in excluded
    assert (out.grad_fn is not None) is requires_grad


def test_trace_with_only_autograd_excluded_shows_ad_inplace_or_view() -> None:
    """The contrast: AutoDispatchBelowAutograd leaves ADInplaceOrView in, so view ops the
    backend kernel calls go through it (what the document warns about)."""
    r = RoiOps(guard=modes.AutoDispatchBelowAutograd)
    try:
        x, rois = make_inputs(7)
        with dispatch.trace() as tr:
            r.roi_align(t64(x, requires_grad=True), t64(rois), 1.0, 2, 2, 2, True)
        assert _key_events(tr, f"{r.ns}::roi_align") == [
            ("AutogradCPU", False, 0),
            ("CPU", False, 1),
        ]
        assert any(e.op == "aten::detach" and e.key == "ADInplaceOrView" for e in tr.events)
    finally:
        r.lib.close()


def test_backward_reaches_the_backward_cpu_kernel(roi: RoiOps) -> None:
    x, rois = make_inputs(8)
    inp = t64(x, requires_grad=True)
    out = roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True)
    with dispatch.trace() as tr:
        out.sum().backward()
    keys = [k for k, _, _ in _key_events(tr, f"{roi.ns}::roi_align_backward")]
    assert keys[-1] == "CPU"
    assert roi.tls_seen[-1][0] == "roi_align_backward"


def test_graph_node(roi: RoiOps) -> None:
    x, rois = make_inputs(9)
    inp = t64(x, requires_grad=True)
    r = t64(rois)
    out = roi.roi_align(inp, r, 0.5, 3, 2, 0, False)
    fn = out.grad_fn
    assert fn.name() == "RoiAlignFunctionBackward"
    assert type(fn).__name__ == "RoiAlignFunctionBackward"
    assert isinstance(fn, autograd.Node) and isinstance(fn, autograd.FunctionCtx)
    (acc, nr), (none, _) = fn.next_functions
    assert acc.name() == "torch::autograd::AccumulateGrad" and acc.variable is inp and nr == 0
    assert none is None
    assert fn.saved_data == {
        "spatial_scale": 0.5,
        "pooled_height": 3,
        "pooled_width": 2,
        "sampling_ratio": 0,
        "aligned": False,
        "input_shape": tuple(x.shape),
    }
    (saved,) = fn.saved_tensors
    assert saved is r
    assert out.is_leaf is False and out.requires_grad and not out._is_view()


def test_backward_twice_and_modified_rois(roi: RoiOps) -> None:
    x, rois = make_inputs(10)
    inp = t64(x, requires_grad=True)
    out = roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True)
    out.sum().backward(retain_graph=True)
    out.sum().backward()
    with pytest.raises(RuntimeError, match=r"^Trying to backward through the graph a second time"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match=r"^Trying to backward through the graph a second time"):
        _ = out.grad_fn.saved_tensors
    r = t64(rois)
    out = roi.roi_align(inp, r, 1.0, 2, 2, 2, True)
    r.add_(0.0)
    with pytest.raises(RuntimeError) as e:
        out.sum().backward()
    assert str(e.value).startswith(
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [torch.DoubleTensor [{rois.shape[0]}, 5]] is at version 1; expected "
        "version 0 instead."
    )


# ---------------------------------------------------------------------------------------------
# Grad modes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("requires_grad", [True, False])
def test_inference_mode(roi: RoiOps, requires_grad: bool) -> None:
    x, rois = make_inputs(11)
    inp = t64(x, requires_grad=requires_grad)
    with modes.inference_mode():
        with dispatch.trace() as tr:
            out = roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True)
        assert out.is_inference()
    assert out.grad_fn is None and not out.requires_grad
    # the autograd keys are excluded: the Function never ran, the call went to CPU
    assert _key_events(tr, f"{roi.ns}::roi_align") == [("CPU", False, 0)]
    np.testing.assert_allclose(out.numpy(), roi_align_loop(x, rois, 1.0, 2, 2, 2, True))


def test_inference_mode_calling_the_function_directly(roi: RoiOps) -> None:
    """InferenceModeTest.TestCustomFunction's point for this Function: apply inside
    inference mode (grad mode off) records nothing and saves nothing, so no inference
    tensor is ever saved."""
    x, rois = make_inputs(12)
    with modes.inference_mode():
        inp = t64(x, requires_grad=True)
        r = t64(rois)
        out = roi.Function.apply(inp, r, 1.0, 2, 2, 2, True)
        assert out.is_inference() and out.grad_fn is None and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), roi_align_loop(x, rois, 1.0, 2, 2, 2, True))


def test_no_grad(roi: RoiOps) -> None:
    x, rois = make_inputs(13)
    inp = t64(x, requires_grad=True)
    with modes.no_grad(), dispatch.trace() as tr:
        out = roi.roi_align(inp, t64(rois), 1.0, 2, 2, 2, True)
    assert out.grad_fn is None and not out.requires_grad and not out.is_inference()
    # the Autograd kernel (the Function) still ran; it just recorded nothing
    assert _key_events(tr, f"{roi.ns}::roi_align") == [("AutogradCPU", False, 0), ("CPU", False, 1)]


def test_grad_mode_restored_after_apply(roi: RoiOps) -> None:
    x, rois = make_inputs(14)
    seen = []

    class Spy(autograd.Function):
        @staticmethod
        def forward(ctx: Any, a: dispatch.Tensor) -> dispatch.Tensor:
            seen.append(modes.is_grad_enabled())
            return a * 2

        @staticmethod
        def backward(ctx: Any, g: dispatch.Tensor) -> dispatch.Tensor:
            return g * 2

    out = roi.roi_align(t64(x, requires_grad=True), t64(rois), 1.0, 2, 2, 2, True)
    Spy.apply(out)
    assert seen == [False] and modes.is_grad_enabled()
