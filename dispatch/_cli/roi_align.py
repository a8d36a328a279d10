"""ROIAlign for the tour: numpy CPU kernels (torchvision's algorithm, as in
docs/tutorial-roi-align.md and tests/test_roi_align.py) and :class:`RoiAlignOps`, which
defines the operators in a library and registers the Gradient Modes document's
``ROIAlignFunction`` as their Autograd kernel, calling below Autograd inside a guard of
the caller's choice.

ROIAlign average-pools each region of interest (``rois`` rows are
``[batch_index, x1, y1, x2, y2]``, scaled by ``spatial_scale``) into a
``pooled_height x pooled_width`` grid; each bin is the mean of bilinearly interpolated
samples on a ``sampling_ratio`` grid (adaptive when ``sampling_ratio <= 0``). Bilinear
interpolation in 2-D is a product of two 1-D ones, so a bin is ``wy @ image @ wx.T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import dispatch
from dispatch.tensorimpl import Tensor

ROI_ALIGN_SCHEMA = (
    "roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
    "int pooled_width, int sampling_ratio, bool aligned) -> Tensor"
)
ROI_ALIGN_BACKWARD_SCHEMA = (
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_height, "
    "int pooled_width, int batch_size, int channels, int height, int width, "
    "int sampling_ratio, bool aligned) -> Tensor"
)


def _axis_weights(coords: np.ndarray[Any, Any], size: int) -> np.ndarray[Any, Any]:
    """(bins, samples) sample coordinates -> (bins, size) summed interpolation weights
    (torchvision's border rules: a sample more than a pixel outside contributes nothing,
    others are clamped)."""
    bins, samples = coords.shape
    c = coords.reshape(-1)
    valid = (c >= -1.0) & (c <= size)
    c = np.where(c <= 0, 0.0, c)
    low = np.floor(c).astype(np.int64)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    high = np.where(at_end, size - 1, low + 1)
    frac = np.where(at_end, 0.0, c - low)
    rows = np.repeat(np.arange(bins), samples)
    w = np.zeros((bins, size))
    np.add.at(w, (rows[valid], low[valid]), 1.0 - frac[valid])
    np.add.at(w, (rows[valid], high[valid]), frac[valid])
    return w


def _roi_weights(
    roi: np.ndarray[Any, Any],
    height: int,
    width: int,
    scale: float,
    ph: int,
    pw: int,
    ratio: int,
    aligned: bool,
) -> tuple[int, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(batch index, y weights (ph, height) with each bin's mean folded in, x weights)."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * scale - offset for v in roi[1:])
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # legacy behaviour: a roi is at least one pixel
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    grid_h = ratio if ratio > 0 else math.ceil(roi_h / ph)
    grid_w = ratio if ratio > 0 else math.ceil(roi_w / pw)
    ys = y1 + (np.arange(ph)[:, None] + (np.arange(grid_h)[None, :] + 0.5) / grid_h) * roi_h / ph
    xs = x1 + (np.arange(pw)[:, None] + (np.arange(grid_w)[None, :] + 0.5) / grid_w) * roi_w / pw
    count = max(grid_h * grid_w, 1)
    return int(roi[0]), _axis_weights(ys, height) / count, _axis_weights(xs, width)


def roi_align_cpu(
    input: Tensor,
    rois: Tensor,
    scale: float,
    ph: int,
    pw: int,
    ratio: int,
    aligned: bool,
) -> Tensor:
    x, r = input.detach().numpy(), rois.detach().numpy()
    _, channels, height, width = x.shape
    out = np.zeros((r.shape[0], channels, ph, pw))
    for k in range(r.shape[0]):
        b, wy, wx = _roi_weights(r[k], height, width, scale, ph, pw, ratio, aligned)
        out[k] = np.einsum("ph,chw,qw->cpq", wy, x[b], wx)
    return dispatch.tensor(out, dtype=input.dtype)


def roi_align_backward_cpu(
    grad: Tensor,
    rois: Tensor,
    scale: float,
    ph: int,
    pw: int,
    n: int,
    c: int,
    height: int,
    width: int,
    ratio: int,
    aligned: bool,
) -> Tensor:
    g, r = grad.detach().numpy(), rois.detach().numpy()
    grad_input = np.zeros((n, c, height, width))
    for k in range(r.shape[0]):
        b, wy, wx = _roi_weights(r[k], height, width, scale, ph, pw, ratio, aligned)
        grad_input[b] += np.einsum("ph,cpq,qw->chw", wy, g[k], wx)
    return dispatch.tensor(grad_input, dtype=grad.dtype)


class RoiAlignOps:
    """``ns::roi_align`` and ``ns::_roi_align_backward`` with the numpy CPU kernels, and the
    document's ``ROIAlignFunction`` as ``roi_align``'s Autograd kernel; its forward calls
    the operator again inside ``guard()``. ``cpu_tls`` collects the thread-local key sets
    the CPU kernel ran with. ``close()`` removes the registrations."""

    def __init__(self, ns: str, guard: Callable[[], Any]) -> None:
        from kernels import autograd  # kernels depends on dispatch: import on use

        self.lib = dispatch.Library(ns, "DEF")
        self.lib.define(ROI_ALIGN_SCHEMA)
        self.lib.define(ROI_ALIGN_BACKWARD_SCHEMA)
        self.cpu_tls: list[dispatch.LocalDispatchKeySet] = []

        def cpu(*args: Any) -> Tensor:
            self.cpu_tls.append(dispatch.tls_local_dispatch_key_set())
            return roi_align_cpu(*args)

        self.lib.impl("roi_align", cpu, "CPU")
        self.lib.impl("_roi_align_backward", roi_align_backward_cpu, "CPU")
        ops = self.ops = getattr(dispatch.ops, ns)

        class ROIAlignFunction(autograd.Function):
            @staticmethod
            def forward(
                ctx: Any,
                input: Tensor,
                rois: Tensor,
                spatial_scale: float,
                pooled_height: int,
                pooled_width: int,
                sampling_ratio: int,
                aligned: bool,
            ) -> Tensor:
                ctx.saved_data["spatial_scale"] = spatial_scale
                ctx.saved_data["config"] = (pooled_height, pooled_width, sampling_ratio, aligned)
                ctx.saved_data["input_shape"] = tuple(input.shape)
                ctx.save_for_backward(rois)
                with guard():
                    result: Tensor = ops.roi_align(
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
            def backward(ctx: Any, grad_output: Tensor) -> tuple[Any, ...]:
                (rois,) = ctx.saved_tensors
                ph, pw, ratio, aligned = ctx.saved_data["config"]
                n, c, h, w = ctx.saved_data["input_shape"]
                scale = ctx.saved_data["spatial_scale"]
                args = (scale, ph, pw, n, c, h, w, ratio, aligned)
                grad_input = ops._roi_align_backward(grad_output, rois, *args)
                return grad_input, None, None, None, None, None, None

        self.Function = ROIAlignFunction
        self.lib.impl("roi_align", ROIAlignFunction.apply, "Autograd")

    def close(self) -> None:
        self.lib.close()
