"""The autograd graph: mirrors ``torch::autograd::Node`` and its edges
(torch/csrc/autograd/function.h), ``AccumulateGrad`` (functions/accumulate_grad.h),
``CopySlices`` (functions/tensor.h) and ``SavedVariable`` (saved_variable.cpp).

A node's ``next_edges`` are ``(node, input_nr)`` pairs, one per differentiable
input of the operation that created it, ``(None, 0)`` for an input that does
not require grad. ``apply`` maps the gradients of the node's outputs to the
gradients of its inputs.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final

from dispatch.dtypes import from_numpy
from dispatch.keys import DispatchKey
from dispatch.tensorimpl import Tensor
from dispatch.tls import per_thread as _per_thread

__all__ = [
    "AccumulateGrad",
    "CopySlices",
    "Edge",
    "GraphRoot",
    "Node",
    "SavedVariable",
    "collect_next_edges",
    "grad_accumulator",
    "gradient_edge",
    "message_name",
]

Edge = tuple["Node | None", int]
InputMetadata = tuple[tuple[int, ...], Any, str]


def input_metadata_of(t: Tensor) -> InputMetadata:
    """``InputMetadata``: (shape, dtype, device type) of a tensor as it is now — what the
    engine checks a gradient flowing to it against."""
    data = t._data
    return (data.shape, from_numpy(data.dtype), "meta" if t._keys & _META else "cpu")


_sequence = itertools.count()
_META: Final = DispatchKey.Meta.bit

INFERENCE_SAVE_ERROR = (
    "Inference tensors cannot be saved for backward. Please do not use Tensors created in "
    "inference mode in computation tracked by autograd. To work around this, you can make a "
    "clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` instead of "
    "`torch.inference_mode()`."
)
FREED_ERROR = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward."
)


def message_name(node: Node | None) -> str:
    """``Node::forward_op_name``, the name PyTorch 2.13's error messages print: ``name()``
    without a trailing ``Backward<digits>``, keeping the digits unless they are ``0``
    (AddBackward0 -> Add, TBackward1 -> T1, a custom Function's FBackward -> F); a name
    with anything else after its last "Backward" (CopyBackwards) is kept whole."""
    if node is None:
        return ""
    name = node.name()
    pos = name.rfind("Backward")
    if pos < 0:
        return name
    suffix = name[pos + len("Backward") :]
    if suffix and not all(ch in "0123456789" for ch in suffix):
        return name
    return name[:pos] if suffix in ("", "0") else name[:pos] + suffix


class Node:
    """A backward function in the graph (``torch::autograd::Node``)."""

    _name: ClassVar[str] = "Node"
    # the gradients ``apply`` returns are new tensors or its incoming ones, referenced by
    # nothing else (False for user code: a custom Function's backward may keep them)
    _outputs_owned: ClassVar[bool] = True

    # Hooks are rare: until one is registered a node reads these shared empty class
    # attributes (never mutated: the first registration gives the node its own container),
    # which keeps a recorded op from allocating three containers it will not use.
    _retains_grad_hooks: Mapping[int, Callable[[Tensor], None]] = MappingProxyType({})
    _pre_hooks: Sequence[Callable[..., Any]] = ()
    _hooks: Sequence[Callable[..., Any]] = ()
    num_outputs: int = 1  # how many forward outputs (= gradient inputs) this node has

    def __init__(self, next_edges: Sequence[Edge] = ()) -> None:
        # a list handed over by the autograd kernel is the node's own (no copy)
        self._next_edges: list[Edge] = next_edges if type(next_edges) is list else list(next_edges)
        self.sequence_nr = next(_sequence)
        self.input_metadata: list[InputMetadata] = []

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self) -> tuple[Edge, ...]:
        return tuple(self._next_edges)

    def next_edge(self, i: int) -> Edge:
        return self._next_edges[i]

    def should_compute_output(self, i: int) -> bool:
        """``task_should_compute_output``: does input ``i`` lead anywhere?"""
        return i < len(self._next_edges) and self._next_edges[i][0] is not None

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        raise NotImplementedError(f"{self.name()} has no backward")

    def release_variables(self) -> None:
        """Free saved tensors after a backward pass that did not retain the graph."""

    def register_hook(self, fn: Callable[..., Any]) -> Any:
        hooks = self._hooks
        if type(hooks) is not list:
            hooks = self._hooks = list(hooks)
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    def register_prehook(self, fn: Callable[..., Any]) -> Any:
        hooks = self._pre_hooks
        if type(hooks) is not list:
            hooks = self._pre_hooks = list(hooks)
        hooks.append(fn)
        return _RemovableHandle(hooks, fn)

    def add_retains_grad_hook(self, output_nr: int, hook: Callable[[Tensor], None]) -> None:
        hooks = self._retains_grad_hooks
        if type(hooks) is not dict:
            hooks = self._retains_grad_hooks = dict(hooks)
        hooks[output_nr] = hook

    def pop_retains_grad_hook(self, output_nr: int) -> Callable[[Tensor], None] | None:
        hooks = self._retains_grad_hooks
        return hooks.pop(output_nr, None) if type(hooks) is dict else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {id(self):#x}>"


class _RemovableHandle:
    def __init__(self, lst: list[Callable[..., Any]], fn: Callable[..., Any]) -> None:
        self._lst, self._fn = lst, fn

    def remove(self) -> None:
        if self._fn in self._lst:
            self._lst.remove(self._fn)


class GraphRoot(Node):
    """The engine's root: hands the initial gradients to the outputs' edges."""

    _name = "GraphRoot"

    def __init__(self, edges: Sequence[Edge], grads: Sequence[Tensor]) -> None:
        super().__init__(edges)
        self.grads = list(grads)

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        return self.grads


# torch gives AccumulateGrad sequence_nr UINT64_MAX (the ready queue's highest priority)
_UINT64_MAX = 2**64 - 1

# the running engines' reference counts (innermost last): does the engine hold the only
# reference to a gradient? (torch: ``is_tensor_stealable``, a use count)
_engine_refs: list[Any] = []


def _is_stealable(t: Tensor) -> bool:
    return bool(_engine_refs) and bool(_engine_refs[-1].sole_owner(t))


def is_non_overlapping_and_dense(t: Tensor) -> bool:
    """``TensorImpl::is_non_overlapping_and_dense``: some permutation of the dimensions lays
    the elements out contiguously."""
    from kernels.cpu import non_overlapping_and_dense

    return non_overlapping_and_dense(t._data)


def obeys_layout_contract(grad: Tensor, variable: Tensor) -> bool:
    """``utils::obeys_layout_contract``: the gradient's strides are the variable's (if the
    variable is non-overlapping and dense), else it is contiguous."""
    if is_non_overlapping_and_dense(variable):
        var_strides = variable.stride()
        for size, stride, var_stride in zip(grad.shape, grad.stride(), var_strides):
            if size != 1:
                if stride != var_stride:
                    return False
            elif stride == 0:  # a 0-strided size-1 dimension: a view, really
                return False
        return True
    return grad.is_contiguous()


def clone_obey_contract(new_grad: Tensor, variable: Tensor) -> Tensor:
    """``utils::clone_obey_contract``: a copy with the variable's strides (or contiguous).
    With grad mode on the copy stays attached to ``new_grad``'s history."""
    from dispatch.tensorimpl import _call

    if is_non_overlapping_and_dense(variable):
        fresh = _call(
            "empty_strided",
            (list(variable.shape), list(variable.stride()), new_grad.dtype, None, "cpu", None),
        )
        return fresh.copy_(new_grad)
    return _call("clone", (new_grad, None))


class AccumulateGrad(Node):
    """Accumulates the incoming gradient into its leaf's ``.grad``
    (``AccumulateGrad::apply`` and ``accumulateGrad``, functions/accumulate_grad.h)."""

    _name = "torch::autograd::AccumulateGrad"

    def __init__(self, variable: Tensor) -> None:
        # Node's constructor, inlined without taking a sequence number (torch's
        # AccumulateGrad is built with UINT64_MAX and consumes none): a leaf's accumulator
        # is remade by every recorded op once the previous graph is gone
        self._next_edges = []
        self.sequence_nr = _UINT64_MAX
        # what gradients are checked against: the leaf as it is now (input_metadata_of,
        # written out: a recorded op on a leaf makes one whenever the previous graph is gone)
        data = variable._data
        self.input_metadata = [
            (data.shape, from_numpy(data.dtype), "meta" if variable._keys & _META else "cpu")
        ]
        self.variable = variable

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        new_grad = grads[0]
        if new_grad is None:
            return ()
        var = self.variable
        if var._grad_fn is not None:
            raise RuntimeError("leaf variable has been moved into the graph interior")
        if not var.requires_grad:  # requires_grad_(False) or detach_() since the graph was built
            return ()
        grad = var._grad
        if grad is None:
            if (
                not _per_thread.state.grad_mode
                and _is_stealable(new_grad)
                and obeys_layout_contract(new_grad, var)
            ):
                # nothing else references new_grad and its layout is right: steal it
                var._grad = new_grad.detach()
            else:
                var._grad = clone_obey_contract(new_grad, var)
        elif not _per_thread.state.grad_mode:
            grad.add_(new_grad)  # `variable_grad += new_grad`: in place
        else:
            var._grad = grad + new_grad  # create_graph: out of place, keeping the history
        return ()


DETACHED_INPLACE_ERROR = (
    "Trying to use a saved tensor that has been detached in-place, i.e. with .detach_()."
    "This is not supported, please use out-of-place `.detach()` instead"
)


def _import_current_grad_fn(t: Tensor) -> Any:
    from kernels.autograd.variable import current_grad_fn

    return current_grad_fn(t)


# variable.current_grad_fn; variable.py (which imports this module) rebinds it to itself
_current_grad_fn: Callable[[Tensor], Any] = _import_current_grad_fn


class SavedVariable:
    """``torch::autograd::SavedVariable``: a tensor saved for backward, with the
    version it had when saved; unpacking checks the version has not moved.

    As torch's: an input (or a leaf) is saved as the original tensor, whose grad_fn,
    version counter and sizes are read again when it is unpacked; an output that is
    not a leaf is saved as a shallow copy (``tensor_data()``: the sizes and strides of
    save time over the same memory, sharing the version counter), unpacked with the
    node that saved it — or, for the result of an in-place op on a view, with the
    view's grad_fn at save time while that node is alive — as its grad_fn."""

    __slots__ = (
        "_data",
        "_is_inplace_on_view",
        "_is_leaf",
        "_is_output",
        "_keys",
        "_output_nr",
        "_saved_original",
        "_saved_version",
        "_version_counter",
        "_was_default_constructed",
        "_weak_grad_fn",
    )

    def __init__(
        self, tensor: Tensor | None, is_output: bool = False, is_inplace_on_view: bool = False
    ) -> None:
        self._data: Any = None  # the tensor (saved original) or its array at save time
        self._was_default_constructed = tensor is None
        self._is_output = is_output
        self._is_inplace_on_view = is_inplace_on_view
        self._weak_grad_fn: Any = None
        self._saved_original = False
        self._saved_version = 0
        self._version_counter: Any = None
        self._is_leaf = True
        self._output_nr = 0  # torch leaves output_nr_ at 0 for a saved original
        self._keys = 0
        if tensor is None:
            return
        if tensor.is_inference():
            raise RuntimeError(INFERENCE_SAVE_ERROR)
        vc = tensor._version_counter
        self._saved_version = vc.version if vc is not None else 0
        # torch's is_leaf() asks grad_fn() (current_grad_fn: only a view's may be stale)
        grad_fn = tensor._grad_fn if tensor._base is None else _current_grad_fn(tensor)
        self._is_leaf = grad_fn is None
        if is_inplace_on_view:
            assert not self._is_leaf and is_output
            self._weak_grad_fn = weakref.ref(grad_fn)
        if not is_output or self._is_leaf:
            self._saved_original = True
            self._data = tensor
            return
        # tensor_data(): this TensorImpl's metadata now, over the same memory and counter
        self._data = tensor._data
        self._keys = tensor._keys
        self._version_counter = vc
        self._output_nr = tensor._output_nr

    def unpack(self, saved_for: Node | None = None) -> Tensor | None:
        """``SavedVariable::unpack``: ``saved_for`` is the node unpacking it — torch's
        generated nodes pass it for their saved outputs only, custom Functions always."""
        if self._was_default_constructed:
            return None
        if self._data is None:
            raise RuntimeError(FREED_ERROR)
        grad_fn: Node | None
        if self._is_inplace_on_view:
            grad_fn = self._weak_grad_fn()
        elif self._saved_original:
            grad_fn = _current_grad_fn(self._data)
        else:
            grad_fn = None
        if not self._is_leaf and grad_fn is None:
            # a saved input's autograd metadata was cleared by detach_()
            if saved_for is None:
                raise RuntimeError(DETACHED_INPLACE_ERROR)
            grad_fn = saved_for
        vc = self._data._version_counter if self._saved_original else self._version_counter
        current = vc.version if vc is not None else 0
        if current != self._saved_version:
            raise RuntimeError(self._version_error(current, grad_fn))
        if self._saved_original:
            t: Tensor = self._data
            return t
        # a new (non-view) tensor over the saved memory, with the saved output's edge
        var = Tensor._make(self._data, self._keys, self._version_counter)
        var._grad_fn = grad_fn
        var._output_nr = self._output_nr
        return var

    def _version_error(self, current: int, grad_fn: Node | None) -> str:
        data = self._data._data if self._saved_original else self._data
        shape = ", ".join(str(d) for d in data.shape)
        type_name = {
            "float32": "FloatTensor",
            "float64": "DoubleTensor",
            "float16": "HalfTensor",
            "int64": "LongTensor",
            "int32": "IntTensor",
            "bool": "BoolTensor",
        }[data.dtype.name]
        from kernels.autograd.variable import anomaly_enabled

        where = (
            f", which is output {self._output_nr} of {message_name(grad_fn)},"
            if grad_fn is not None
            else ""
        )
        if anomaly_enabled():
            hint = (
                "Hint: the backtrace further above shows the operation that failed to compute "
                "its gradient. The variable in question was changed in there or anywhere later. "
                "Good luck!"
            )
        else:
            hint = (
                "Hint: enable anomaly detection to find the operation that failed to compute its "
                "gradient, with torch.autograd.set_detect_anomaly(True, check_nan=False)."
            )
        return (
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [torch.{type_name} [{shape}]]{where} is at version {current}; "
            f"expected version {self._saved_version} instead. {hint}"
        )

    def reset_data(self) -> None:
        self._data = None
        self._weak_grad_fn = None

    @property
    def was_freed(self) -> bool:
        return self._data is None and not self._was_default_constructed


def grad_accumulator(t: Tensor) -> AccumulateGrad | None:
    """The leaf's AccumulateGrad node, created once and held weakly by the tensor."""
    if not t._requires_grad:
        return None
    ref = t._grad_accumulator
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._grad_accumulator = weakref.ref(acc)
    return acc


def gradient_edge(t: Tensor) -> Edge:
    """``gradient_edge``: (grad_fn, output_nr), or (AccumulateGrad, 0) for a leaf."""
    # a view's grad_fn may need regenerating (current_grad_fn); anything else's is stored
    fn = t._grad_fn if t._base is None else _current_grad_fn(t)
    if fn is not None:
        return (fn, t._output_nr)
    return (grad_accumulator(t), 0)


NO_EDGE: Final[Edge] = (None, 0)
"""The edge of an input that needs no gradient (shared: edges are immutable tuples)."""


def collect_next_edges(tensors: Sequence[Tensor | None]) -> list[Edge]:
    out: list[Edge] = []
    for t in tensors:
        if t is None or not t.requires_grad:
            out.append(NO_EDGE)
        else:
            out.append(gradient_edge(t))
    return out


class CopySlices(Node):
    """``torch::autograd::CopySlices``: the base's new grad_fn after an in-place op on one
    of its views. It routes the slice of the base's gradient that the view covers through
    the in-place op's own node, and the rest straight to the base's previous history."""

    _name = "torch::autograd::CopySlices"

    def __init__(
        self,
        base: Tensor,
        view_geometry: Geometry,
        fn: Node,
        base_edge: Edge,
    ) -> None:
        super().__init__([base_edge, *fn._next_edges[1:]])
        self.base_geometry = geometry(base, base)
        self.view_geometry = view_geometry
        self.fn: Node | None = fn

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        from dispatch.tensorimpl import _call

        grad = grads[0]
        if self.fn is None:
            raise RuntimeError(FREED_ERROR)
        if grad is None:
            return [None] * len(self._next_edges)
        size, stride, _ = self.base_geometry
        # result has the base's geometry, so the view's geometry addresses the same elements
        result = _call("empty_strided", (list(size), list(stride), grad.dtype, None, "cpu", None))
        result.copy_(grad)
        view_size, view_stride, view_offset = self.view_geometry
        grad_slice = _call("as_strided", (result, list(view_size), list(view_stride), view_offset))
        res = self.fn.apply([_call("clone", (grad_slice, None))])
        out: list[Tensor | None] = [None] * len(self._next_edges)
        if res and res[0] is not None:
            grad_slice.copy_(res[0])
        else:
            grad_slice.zero_()
        out[0] = result
        for i in range(1, len(self._next_edges)):
            out[i] = res[i] if i < len(res) else None
        return out

    def release_variables(self) -> None:
        # torch drops the wrapped node: a second backward through here is an error
        if self.fn is not None:
            self.fn.release_variables()
        self.fn = None


Geometry = tuple[tuple[int, ...], tuple[int, ...], int]


def geometry(t: Tensor, root: Tensor) -> Geometry:
    """(size, stride, storage_offset) of ``t`` in elements; the offset counts from
    ``root``'s first element (the storage start of a view family)."""
    a, r = t._data, root._data
    item = a.itemsize
    offset = (a.__array_interface__["data"][0] - r.__array_interface__["data"][0]) // item
    return tuple(a.shape), tuple(s // item for s in a.strides), int(offset)
