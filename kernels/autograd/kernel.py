"""The Autograd kernel: mirrors the generated ``VariableType`` kernels
(torch/csrc/autograd/generated/VariableType_*.cpp) and VariableTypeUtils.h.

ONE generic kernel, built per operator from its schema and its entry in
:mod:`kernels.autograd.derivatives`, registered under the ``Autograd`` alias key:

1. ``compute_requires_grad``: grad mode is on and a differentiable input requires grad;
2. out= variants refuse inputs that require grad; in-place variants ``check_inplace``;
3. build the node, save what the formula will need (``SavedVariable`` refuses
   inference tensors and records versions) — all *before* the kernel runs;
4. redispatch below Autograd, under ``AutoDispatchBelowADInplaceOrView`` for
   functional and view ops or ``AutoDispatchBelowAutograd`` for in-place / out=
   ops (so operators a backend kernel calls go straight to the backend);
5. ``set_history`` on the outputs, or ``rebase_history`` on an in-place op's self —
   except for an in-place *view* op (``t_``, ``transpose_``...: torch's ``inplace_view``
   tag), whose self gets ``set_history`` as a view op's output does (gen_variable_type:
   ``"rebase" if modifies_arguments(f) and view_info is None else "set"``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from dispatch.dispatcher import redispatch_raw
from dispatch.dtypes import DTYPE_OF_NUMPY, from_numpy
from dispatch.keys import DispatchKey
from dispatch.keyset import RAW_AFTER_AUTOGRAD, RAW_AUTOGRAD, RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
from dispatch.operator import KernelFunction, OperatorEntry
from dispatch.tensorimpl import Tensor
from dispatch.tls import per_thread as _per_thread
from kernels.autograd.derivatives import Ctx, Derivative
from kernels.autograd.graph import (
    NO_EDGE,
    AccumulateGrad,
    Node,
    SavedVariable,
    gradient_edge,
)
from kernels.autograd.variable import check_inplace, rebase_history, set_history

__all__ = ["FormulaNode", "make_autograd_kernel", "node_class"]

_DEBUG = "registered at kernels/autograd/kernel.py (generic Autograd kernel)"
META: Final = DispatchKey.Meta.bit


_NO_SAVED: Final[Mapping[str, SavedVariable]] = MappingProxyType({})


class FormulaNode(Node):
    """A node whose backward is a formula of the derivatives table.

    What the formula may read of the call is one tuple, ``record``, in schema order: a
    tensor argument's (shape, numpy dtype) — ``None`` for an absent optional one — and
    every other argument itself; ``geometries`` holds (size, stride, offset) of the
    inputs the formula needs those of. Both are built by the autograd kernel.
    """

    derivative: Derivative
    arg_index: ClassVar[dict[str, int]] = {}  # argument name -> position in ``record``
    record: tuple[Any, ...] = ()
    geometries: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], int]] = MappingProxyType({})
    # only an op that saves something gives its node a dict of its own
    saved_variables: Mapping[str, SavedVariable] = _NO_SAVED

    def arg(self, name: str) -> Any:
        return self.record[self.arg_index[name]]

    def shape_of(self, name: str) -> tuple[int, ...]:
        shape: tuple[int, ...] = self.record[self.arg_index[name]][0]
        return shape

    def dtype_of(self, name: str) -> Any:
        return from_numpy(self.record[self.arg_index[name]][1])

    def apply(self, grads: list[Tensor | None]) -> Any:
        # as the generated ``XBackward::apply``: unpack every saved variable first (each
        # checks its version), saved inputs by name then saved outputs, whatever
        # gradients are needed; then compute only the gradients some input needs
        saved = self.saved_variables
        unpacked: dict[str, Tensor | None] = {}
        for name in sorted(saved, key=_unpack_key):
            # the generated code hands the node itself only to its saved outputs
            unpacked[name] = saved[name].unpack(self if name == "result" else None)
        n = len(self._next_edges)
        if all(g is None for g in grads) or not any(
            self.should_compute_output(i) for i in range(n)
        ):
            return [None] * n
        if self.num_outputs > 1:
            grads = list(grads)
        out = self.derivative.formula(Ctx(self, unpacked), grads)  # type: ignore[arg-type]
        return list(out)

    def release_variables(self) -> None:
        for sv in self.saved_variables.values():
            sv.reset_data()


def _unpack_key(name: str) -> tuple[bool, str]:
    """Torch declares (and unpacks) a node's saved inputs sorted by name, then its saved
    outputs sorted by name; ``result`` is the only saved output here."""
    return (name == "result", name)


_NODE_CLASSES: dict[str, type[FormulaNode]] = {}


def node_class(d: Derivative) -> type[FormulaNode]:
    """One Python class per node name, so ``type(t.grad_fn).__name__`` reads as in torch."""
    cls = _NODE_CLASSES.get(d.op)
    if cls is None:
        short = d.node.rsplit("::", 1)[-1]
        cls = type(short, (FormulaNode,), {"_name": d.node, "derivative": d, "__slots__": ()})
        _NODE_CLASSES[d.op] = cls
    return cls


def _save_guard(d: Derivative, used_by: tuple[int, ...]) -> int:
    """gen_variable_type's ``guard_for``: an argument that only one input's formula uses
    is saved when that input needs a gradient (returns its index); one that several
    formulas use, or the formula of a node with one input, or of a ``*_backward`` op,
    is always saved (-1)."""
    if len(used_by) != 1 or len(d.inputs) <= 1 or "backward" in d.op:
        return -1
    return used_by[0]


def _record_builder(args: Any) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The function that makes a node's ``record`` from the call's arguments, generated
    from the schema as torch generates each op's node-filling code: one tuple display,
    no loop (it runs for every recorded op)."""
    items = []
    for i, arg in enumerate(args):
        if arg.base_type == "Tensor" and not arg.is_list:
            item = f"(a[{i}]._data.shape, a[{i}]._data.dtype)"
            if arg.is_optional:
                item = f"(None if a[{i}] is None else {item})"
        else:
            item = f"a[{i}]"
        items.append(item + ",")
    builder: Callable[[tuple[Any, ...]], tuple[Any, ...]] = eval(f"lambda a: ({' '.join(items)})")
    return builder


def _differentiable(t: Any) -> bool:
    return isinstance(t, Tensor) and t.dtype.is_floating_point


def make_autograd_kernel(entry: OperatorEntry, d: Derivative | None) -> KernelFunction:
    schema = entry.schema
    assert schema is not None
    args = schema.arguments
    index = {a.name: i for i, a in enumerate(args)}
    mutable = [i for i, a in enumerate(args) if a.is_mutable]
    is_out = schema.is_out_fn
    is_inplace = bool(mutable) and not is_out
    self_pos = mutable[0] if is_inplace else -1
    rebase = is_inplace and not entry.extra.get("inplace_view", False)
    op_name = schema.name
    below = RAW_AUTOGRAD if (is_inplace or is_out) else RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
    tensor_pos = [i for i, a in enumerate(args) if a.base_type == "Tensor" and not a.is_list]

    if d is None:
        out_error = f"{op_name}(): functions with out=... arguments don't support automatic differentiation, but one of the arguments requires grad."

        def no_formula(ks: int, *a: Any) -> Any:
            s = _per_thread.state
            if is_out and s.grad_mode:
                for i in tensor_pos:
                    t = a[i]
                    if t is not None and i not in mutable and t.requires_grad:
                        raise RuntimeError(out_error)
            prev = s.excluded
            s.excluded = prev | below
            try:
                return redispatch_raw(entry, ks & RAW_AFTER_AUTOGRAD, a)
            finally:
                s.excluded = prev

        return KernelFunction(no_formula, True, _DEBUG, convention="full", name="autograd_kernel")

    diff_pos = [index[n] for n in d.inputs]
    cls = node_class(d)
    cls.arg_index = index
    save_pos = [(name, index[name], _save_guard(d, used_by)) for name, used_by in d.save]
    make_record = _record_builder(args)
    clone_guard = None if d.save_self_clone is None else _save_guard(d, d.save_self_clone)
    geometry_pos = [(name, index[name]) for name in d.geometry]
    saves = bool(save_pos) or clone_guard is not None or d.save_result
    one_tensor_output = len(schema.returns) == 1 and schema.returns[0].type == "Tensor"

    def autograd_kernel(ks: int, *a: Any) -> Any:
        s = _per_thread.state
        # 1. compute_requires_grad
        requires = False
        if s.grad_mode:
            for i in diff_pos:
                t = a[i]
                if t is not None and (  # Tensor.requires_grad, inlined
                    t._requires_grad
                    or t._grad_fn is not None
                    or (t._base is not None and t._base.requires_grad)
                ):
                    requires = True
                    break
        # 2. (check_inplace has nothing to check unless the op records)
        if is_inplace and requires:
            check_inplace(a[self_pos], requires)
        # 3.
        node: FormulaNode | None = None
        if requires:
            # collect_next_edges, with gradient_edge's common case (a non-view with a
            # grad_fn) inlined: this runs for every input of every recorded op
            edges: list[Any] = []
            for i in diff_pos:
                t = a[i]
                if t is None:
                    edges.append(NO_EDGE)
                elif t._base is None and t._grad_fn is not None:
                    edges.append((t._grad_fn, t._output_nr))
                elif t._base is None and t._requires_grad:
                    # a leaf: grad_accumulator, inlined (held weakly: a new graph makes a
                    # new one once the previous graph is gone, as torch's weak_ptr does)
                    ref = t._grad_accumulator
                    acc = ref() if ref is not None else None
                    if acc is None:
                        acc = AccumulateGrad(t)
                        t._grad_accumulator = weakref.ref(acc)
                    edges.append((acc, 0))
                elif t.requires_grad:
                    edges.append(gradient_edge(t))
                else:
                    edges.append(NO_EDGE)
            node = cls(edges)
            node.record = make_record(a)
            if geometry_pos:
                node.geometries = {
                    name: (tuple(a[i]._data.shape), tuple(a[i].stride()), a[i].storage_offset())
                    for name, i in geometry_pos
                }
            if saves:
                saved: dict[str, SavedVariable] = {}
                node.saved_variables = saved
                for name, i, guard in save_pos:
                    # (should_compute_output, inlined: does input ``guard`` lead anywhere)
                    if guard < 0 or edges[guard][0] is not None:
                        saved[name] = SavedVariable(a[i])
                if clone_guard is not None and (
                    clone_guard < 0 or edges[clone_guard][0] is not None
                ):
                    saved["self"] = SavedVariable(a[self_pos].clone())
        # 4.
        prev = s.excluded
        s.excluded = prev | below
        try:
            out = redispatch_raw(entry, ks & RAW_AFTER_AUTOGRAD, a)
        finally:
            s.excluded = prev
        # 5.
        if node is not None:
            if rebase:
                rebase_history(a[self_pos], node)
            elif is_inplace:
                set_history([a[self_pos]], node)
            elif one_tensor_output:
                if isinstance(out, Tensor) and out._data.dtype.kind == "f":  # differentiable
                    # set_history of one output, inlined (graph.input_metadata_of's triple
                    # written out: this runs for every recorded op)
                    out._grad_fn = node
                    out._output_nr = 0
                    data = out._data
                    node.input_metadata.append(
                        (
                            data.shape,
                            DTYPE_OF_NUMPY[data.dtype],
                            "meta" if out._keys & META else "cpu",
                        )
                    )
                    if out._base is not None:
                        vc = out._version_counter
                        out._attr_version = vc.version if vc is not None else 0
            elif isinstance(out, list | tuple):
                node.num_outputs = len(out)
                set_history([o if _differentiable(o) else None for o in out], node)
            elif _differentiable(out):
                set_history([out], node)
            if d.save_result:
                # an in-place op's result is self, saved with its (view) grad_fn when a view
                saved_vars = node.saved_variables
                assert isinstance(saved_vars, dict)  # given to the node above (``saves``)
                saved_vars["result"] = SavedVariable(
                    out, is_output=True, is_inplace_on_view=is_inplace and out._base is not None
                )
        return out

    return KernelFunction(autograd_kernel, True, _DEBUG, convention="full", name="autograd_kernel")


DETACH_VIEW_ERROR = (
    "Can't detach views in-place. Use detach() instead. If you are using "
    "DistributedDataParallel (DDP) for training, and gradient_as_bucket_view is set as True, "
    "gradients are views of DDP buckets, and hence detach_() cannot be called on these "
    "gradients. To fix this error, please refer to the Optimizer.zero_grad() function in "
    "torch/optim/optimizer.py as the solution."
)


def make_detach_inplace_kernel(entry: OperatorEntry) -> KernelFunction:
    """``detach_`` at the Autograd key (VariableTypeManual.cpp): refuse views, drop the
    tensor's autograd history. Inside InferenceMode this kernel does not run at all."""

    def detach_(ks: int, self: Tensor) -> Any:
        if self._base is not None:
            raise RuntimeError(DETACH_VIEW_ERROR)
        self._requires_grad = False
        self._grad_fn = None
        self._output_nr = 0
        return redispatch_raw(entry, ks & RAW_AFTER_AUTOGRAD, (self,))

    return KernelFunction(detach_, True, _DEBUG, convention="full", name="detach_")
