"""Autograd metadata of tensors: mirrors ``torch::autograd::VariableHooks`` and the
helpers of torch/csrc/autograd/variable.cpp and VariableTypeUtils.h —
``grad_fn`` of views (regenerated after an in-place change), ``check_inplace``,
``handle_view_on_rebase``, ``rebase_history`` and ``set_history``.

``dispatch.tensorimpl`` calls in here through :data:`dispatch.tensorimpl.variable_hooks`,
as ``TensorImpl`` calls ``at::impl::VariableHooks``: the tensor core needs no import
of the autograd package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispatch.tensorimpl import CreationMeta, Tensor
from dispatch.tls import per_thread as _per_thread
from kernels.autograd import graph as _graph
from kernels.autograd.graph import (
    CopySlices,
    Node,
    collect_next_edges,
    geometry,
    gradient_edge,
    input_metadata_of,
    message_name,
)

__all__ = [
    "anomaly_enabled",
    "check_inplace",
    "current_grad_fn",
    "handle_view_on_rebase",
    "rebase_history",
    "set_history",
]

_anomaly = [False]


def anomaly_enabled() -> bool:
    return _anomaly[0]


def set_detect_anomaly(mode: bool) -> None:
    _anomaly[0] = bool(mode)


LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF_ERROR = (
    "a view of a leaf Variable that requires grad is being used in an in-place operation."
)


def handle_view_on_rebase(view: Tensor, indirect: bool = False) -> None:
    """Raise PyTorch's error for an in-place change of a view whose creation meta forbids it."""
    meta = view._creation_meta
    if meta is CreationMeta.DEFAULT:
        return
    grad_fn = view._grad_fn
    modified = "its base or another view of its base has been" if indirect else "is being"
    if meta in (CreationMeta.INFERENCE_MODE, CreationMeta.NO_GRAD_MODE) or grad_fn is None:
        if grad_fn is not None:
            prefix = (
                f"Output {view._output_nr} of {message_name(grad_fn)} is a view of a view which "
                "was created in"
            )
        else:
            prefix = "A view was created in"
        if meta is CreationMeta.INFERENCE_MODE:
            msg = f"{prefix} inference mode and {modified} modified inplace in normal mode."
        else:
            msg = f"{prefix} no_grad mode and {modified} modified inplace with grad mode enabled."
    else:
        msg = (
            f"Output {view._output_nr} of {message_name(grad_fn)} is a view and {modified} "
            "modified inplace."
        )
    if meta is CreationMeta.MULTI_OUTPUT_NODE:
        msg += (
            " This view is the output of a function that returns multiple views. Such functions "
            "do not allow the output views to be modified inplace. You should replace the "
            "inplace operation by an out-of-place one."
        )
    elif meta is CreationMeta.NO_GRAD_MODE:
        msg += (
            " Given that this use case is ambiguous and error-prone, it is forbidden. You can "
            "clarify your code by moving both the view and the inplace either both inside the "
            "no_grad block (if you don't want the inplace to be tracked) or both outside (if you "
            "want the inplace to be tracked)."
        )
    elif meta is CreationMeta.INFERENCE_MODE:
        msg += (
            " Given that this use case is ambiguous and error-prone, it is forbidden. You can "
            "clarify your code by moving both the view and the inplace either both inside the "
            "inference_mode block (if you don't want the inplace to be tracked) or both outside "
            "(if you want the inplace to be tracked)."
        )
    elif meta is CreationMeta.IN_CUSTOM_FUNCTION:
        msg += (
            " This view was created inside a custom Function (or because an input was returned "
            "as-is) and the autograd logic to handle view+inplace would override the custom "
            "backward associated with the custom Function, leading to incorrect gradients. This "
            "behavior is forbidden. You can fix this by cloning the output of the custom "
            "Function."
        )
    raise RuntimeError(msg)


class AsStridedBackward0(Node):
    """The regenerated grad_fn of a view whose base changed in place: one node for the
    whole chain of view ops, addressed by the view's geometry within its base."""

    _name = "AsStridedBackward0"

    def __init__(self, base: Tensor, view: Tensor) -> None:
        super().__init__(collect_next_edges([base]))
        self.base_geometry = geometry(base, base)
        self.view_geometry = geometry(view, base)

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        g = grads[0]
        if g is None:
            return [None]
        size, stride, offset = self.view_geometry
        return [as_strided_backward(g, self.base_geometry, size, stride, offset)]


def _maybe_overlapping_memory(sizes: Sequence[int], strides: Sequence[int]) -> bool:
    """``_maybe_overlapping_memory`` (FunctionsManual.cpp), on sizes > 1 and strides > 0."""
    if not sizes:
        return False
    pairs = sorted(zip(strides, sizes))
    max_index_in_slice = 0
    for st, sz in pairs:
        if st <= max_index_in_slice:
            return True
        max_index_in_slice += st * (sz - 1)
    return False


def _min_storage_size(sizes: Sequence[int], strides: Sequence[int], offset: int) -> int:
    return offset + 1 + sum((n - 1) * s for n, s in zip(sizes, strides))


def as_strided_backward(
    grad: Tensor,
    input_geometry: tuple[Sequence[int], Sequence[int], int],
    sizes: Sequence[int],
    strides: Sequence[int],
    storage_offset: int,
) -> Tensor:
    """torch's ``as_strided_backward`` (FunctionsManual.cpp), in operators: scatter the
    view's gradient into a fresh zero "storage", then read the base's geometry back as a
    view of it — so the gradient is a view at version 1, as torch's. A scatter onto
    overlapping positions, and the division for an overlapping input, use dispatchsim's
    ``_as_strided_backward`` where torch uses ``index_add_``."""
    from dispatch.tensorimpl import _call

    inp_sizes, inp_strides, inp_offset = input_geometry

    def zeros(n: Sequence[int]) -> Tensor:  # grad.new_zeros(n)
        return _call("zeros", (list(n), grad.dtype, None, grad.device.type, None))

    def at_zeros(n: Sequence[int]) -> Tensor:
        # at::zeros called from C++ is empty().zero_() with ADInplaceOrView active (torch's
        # Python-facing factories add AutoDispatchBelowADInplaceOrView): version 1
        t = _call("empty.memory_format", (list(n), grad.dtype, None, grad.device.type, None, None))
        return t.zero_()

    out_sizes_: list[int] = []
    out_strides_: list[int] = []
    for i in range(grad.dim() - 1, -1, -1):
        size_i, stride_i = sizes[i], strides[i]
        if size_i == 0:
            return at_zeros(inp_sizes)
        if size_i == 1:
            grad = _call("squeeze.dim", (grad, i))
        elif stride_i == 0:
            grad = _call("sum.dim_IntList", (grad, [i], False, None))
        else:
            out_sizes_.insert(0, size_i)
            out_strides_.insert(0, stride_i)
    out_maybe_overlap = _maybe_overlapping_memory(out_sizes_, out_strides_)
    inp_sizes_: list[int] = []
    inp_strides_: list[int] = []
    for i in range(len(inp_sizes) - 1, -1, -1):
        size_i, stride_i = inp_sizes[i], inp_strides[i]
        if size_i == 0:
            return at_zeros(inp_sizes)
        if size_i != 1:
            inp_sizes_.insert(0, size_i)
            inp_strides_.insert(0, stride_i)
    inp_maybe_overlap = _maybe_overlapping_memory(inp_sizes_, inp_strides_)
    shared_offset = min(inp_offset, storage_offset)
    inp_effective_offset = inp_offset - shared_offset
    out_effective_offset = storage_offset - shared_offset
    base_size = max(
        _min_storage_size(inp_sizes_, inp_strides_, inp_effective_offset),
        _min_storage_size(out_sizes_, out_strides_, out_effective_offset),
    )
    storage = zeros([base_size])
    if out_maybe_overlap:
        scattered = _call(
            "_as_strided_backward",
            (grad, [base_size], [1], 0, out_sizes_, out_strides_, out_effective_offset),
        )
        storage.add_(scattered)
    else:
        view = _call("as_strided", (storage, out_sizes_, out_strides_, out_effective_offset))
        view.copy_(grad)
    if inp_maybe_overlap:
        ones = _call("ones", (list(inp_sizes_), grad.dtype, None, grad.device.type, None))
        count = _call(
            "_as_strided_backward",
            (ones, [base_size], [1], 0, inp_sizes_, inp_strides_, inp_effective_offset),
        )
        storage.div_(count)
    return _call("as_strided", (storage, list(inp_sizes), list(inp_strides), inp_effective_offset))


def current_grad_fn(t: Tensor) -> Any:
    """``VariableHooks::grad_fn``: for a view whose version moved since its grad_fn was
    set (its base or another view was modified in place), check the creation meta
    (the *indirect* error) and regenerate the grad_fn as AsStridedBackward0."""
    base = t._base
    if base is None:
        return t._grad_fn
    if t._grad_fn is None and not base.requires_grad:
        return None
    vc = t._version_counter
    current = vc.version if vc is not None else 0
    if t._attr_version != current:
        handle_view_on_rebase(t, indirect=True)
        fn = AsStridedBackward0(base, t)
        fn.input_metadata = [input_metadata_of(t)]
        _move_retains_grad(t, fn)
        t._grad_fn = fn
        t._output_nr = 0
        t._attr_version = current
    return t._grad_fn


_graph._current_grad_fn = current_grad_fn  # gradient_edge calls it without an import


def check_inplace(t: Tensor, requires_grad: bool) -> None:
    """``check_inplace``: may ``t`` be modified in place by an op that records autograd?"""
    if not (requires_grad and _per_thread.state.grad_mode):
        return
    base = t._base
    if base is not None:
        handle_view_on_rebase(t)
        if t.requires_grad and current_grad_fn(base) is None:
            raise RuntimeError(VIEW_OF_LEAF_ERROR)
    if t.requires_grad and current_grad_fn(t) is None:
        raise RuntimeError(LEAF_ERROR)


def set_history(outputs: Sequence[Tensor | None], fn: Node) -> None:
    """``set_history``: the outputs of a recorded op get ``fn`` as grad_fn."""
    for i, o in enumerate(outputs):
        if o is None:
            continue
        o._grad_fn = fn
        o._output_nr = i
        _record_input_metadata(fn, i, o)
        if o._base is not None:
            vc = o._version_counter
            o._attr_version = vc.version if vc is not None else 0


def rebase_history(t: Tensor, fn: Node, output_nr: int = 0) -> None:
    """``rebase_history``: after an in-place op recorded ``fn`` on ``t``. For a view, the
    base gets CopySlices (so the base's gradient flows through ``fn`` where the view
    is) and the view's own grad_fn is regenerated on next access."""
    base = t._base
    if base is not None:
        base_edge = gradient_edge(base)
        copy_slices = CopySlices(base, geometry(t, base), fn, base_edge)
        copy_slices.input_metadata = [input_metadata_of(base)]
        _move_retains_grad(base, copy_slices)
        base._grad_fn = copy_slices
        base._output_nr = 0
        # the view's grad_fn is now stale: regenerate it (AsStridedBackward0) right away
        t._attr_version = -1
        current_grad_fn(t)
        return
    _move_retains_grad(t, fn, output_nr)
    t._grad_fn = fn
    t._output_nr = output_nr
    _record_input_metadata(fn, output_nr, t)


def _move_retains_grad(t: Tensor, new_fn: Node, output_nr: int = 0) -> None:
    """``update_tensor_hooks_on_new_gradfn``: ``t``'s grad_fn is about to change from its
    stored one to ``new_fn``; a retains-grad hook moves along (only ``rebase_history`` and
    the regeneration of a view's grad_fn call this: ``set_history`` of an in-place view op
    leaves the hook where it was, as torch's does)."""
    old = t._grad_fn
    if t._retains_grad and old is not None:
        hook = old.pop_retains_grad_hook(t._output_nr)
        if hook is not None:
            new_fn.add_retains_grad_hook(output_nr, hook)


def _record_input_metadata(fn: Node, i: int, t: Tensor) -> None:
    """What the engine checks the gradient for output ``i`` of ``fn`` against."""
    meta = fn.input_metadata
    while len(meta) <= i:
        meta.append(None)  # type: ignore[arg-type]
    meta[i] = input_metadata_of(t)


def backward(
    t: Tensor, gradient: Tensor | None, retain_graph: bool | None, create_graph: bool, inputs: Any
) -> None:
    from kernels.autograd.engine import backward as run

    run(t, None if gradient is None else [gradient], retain_graph, create_graph, inputs)
