"""The backward engine: mirrors ``torch::autograd::Engine`` (engine.cpp, input_buffer.cpp,
graph_task.h), ``THPEngine_run_backward`` (python_engine.cpp) and
``torch.autograd.backward`` / ``torch.autograd.grad`` (torch/autograd/__init__.py).

One backward is a *graph task*:

- ``compute_dependencies`` counts, for every node reachable from the root, how many
  edges lead into it; a node is ready once all of them have delivered (an undefined
  gradient counts as delivered).
- With ``inputs=`` (``init_to_execute``) only the nodes on a path to an input run:
  ``autograd.grad`` *captures* the gradient flowing into each input's edge (one capture
  per position in ``inputs``, so a tensor given twice is returned twice); ``backward``
  marks the inputs' nodes as needed (AccumulateGrad for a leaf, the grad_fn of a
  non-leaf, whose ``.grad`` comes from the ``retain_grad`` it gets).
- The ready queue is torch's ``std::priority_queue`` ordered by ``sequence_nr``, highest
  first, with libstdc++'s heap moves (ties come out as in torch). AccumulateGrad has
  ``sequence_nr`` UINT64_MAX: a leaf whose gradient is complete is updated before any
  other ready node runs.
- Gradients reaching the same input of a node add up in its *input buffer*. As in
  ``InputBuffer::accumulate``, with grad mode off the buffered gradient is updated in
  place (``old.add_(new)``, its version moves) when the engine holds the only reference
  to it and to its memory and it is non-overlapping and dense; otherwise ``old + new``.
  The engine's references are counted (``_Refs``) the way torch's use counts see them:
  buffer slots, outputs not yet placed, captured results, and the root gradients (held
  by the caller, so never exclusive). Gradients returned by user code (custom Functions,
  hooks) are treated as referenced elsewhere.
- A node runs with grad mode = ``create_graph``: its pre-hooks, ``apply``,
  ``validate_outputs`` (shape reduced with ``sum_to`` or refused, dtype cast), post-hooks;
  then, unless the graph is retained, its saved tensors are freed (not when it raised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dispatch.tensorimpl import Tensor, _call
from dispatch.tls import per_thread as _per_thread
from kernels.autograd import graph as _graph
from kernels.autograd.graph import (
    AccumulateGrad,
    Edge,
    GraphRoot,
    Node,
    gradient_edge,
    is_non_overlapping_and_dense,
)
from kernels.autograd.variable import current_grad_fn

__all__ = ["backward", "grad", "is_expandable_to", "run_backward"]

Buffer = list[Tensor | None]


def _tensors(x: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _tensor_or_tensors_to_tuple(
    tensors: Tensor | Sequence[Tensor | None] | None, length: int
) -> list[Tensor | None]:
    if tensors is None:
        return [None] * length
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _size_str(shape: Sequence[int]) -> str:
    return "torch.Size([" + ", ".join(str(d) for d in shape) + "])"


def _index_of(items: Sequence[Any], item: Any) -> int:
    """``tuple.index`` as torch's messages use it (the first element that is ``item``)."""
    return next(i for i, x in enumerate(items) if x is item)


def _make_grads(outputs: list[Tensor], grads: list[Tensor | None]) -> list[Tensor | None]:
    """``torch.autograd._make_grads``: check the given gradients against the outputs and
    create the implicit ones (``ones_like`` of a one-element output that requires grad)."""
    new_grads: list[Tensor | None] = []
    for out, g in zip(outputs, grads):
        if isinstance(g, Tensor):
            if tuple(g.shape) != tuple(out.shape):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{_index_of(grads, g)}] has a shape of "
                    f"{_size_str(g.shape)} and output[{_index_of(outputs, out)}] has a shape "
                    f"of {_size_str(out.shape)}."
                )
            new_grads.append(g)
        elif g is None:
            if out.requires_grad:
                if out.numel() != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                if not out.dtype.is_floating_point:
                    raise RuntimeError(
                        "grad can be implicitly created only for real scalar outputs but got "
                        f"{out.dtype}"
                    )
                new_grads.append(_call("ones_like", (out, None, None, None, None, None)))
            else:
                new_grads.append(None)
        else:
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
    return new_grads


# ---------------------------------------------------------------------------------------------
# the graph task
# ---------------------------------------------------------------------------------------------
def _storage(t: Tensor) -> Any:
    """The ndarray that owns ``t``'s memory (its storage)."""
    a: Any = t._data
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Refs:
    """The engine's references to gradients, counted per tensor (torch's ``use_count()``
    as the engine's own holders make it up), and how many of the tensors it holds share
    each storage (``storage().use_count()``)."""

    def __init__(self) -> None:
        self._held: dict[int, list[Any]] = {}  # id(tensor) -> [tensor, count, storage]
        self._storages: dict[int, int] = {}  # id(storage) -> held tensors over it

    def hold(self, t: Tensor | None) -> None:
        if t is None:
            return
        e = self._held.get(id(t))
        if e is None:
            storage = _storage(t)
            self._held[id(t)] = [t, 1, storage]
            self._storages[id(storage)] = self._storages.get(id(storage), 0) + 1
        else:
            e[1] += 1

    def release(self, t: Tensor | None) -> None:
        if t is None:
            return
        e = self._held[id(t)]
        e[1] -= 1
        if e[1] == 0:
            del self._held[id(t)]
            key = id(e[2])
            self._storages[key] -= 1
            if self._storages[key] == 0:
                del self._storages[key]

    def sole_owner(self, t: Tensor) -> bool:
        """Does the engine hold the only reference to ``t`` (``is_tensor_stealable``)?"""
        e = self._held.get(id(t))
        return e is not None and e[1] == 1

    def sole_owner_of_storage(self, t: Tensor) -> bool:
        """... and to its memory (``storage().use_count() == 1``): a view's base holds it
        too, and so does any other gradient over the same memory."""
        if not self.sole_owner(t) or t._base is not None:
            return False
        return self._storages[id(self._held[id(t)][2])] == 1


class _ReadyQueue:
    """``ReadyQueue``: libstdc++'s ``std::priority_queue`` with ``CompareNodeTaskTime``
    (the greatest ``sequence_nr`` on top), with the same heap moves as ``push_heap`` /
    ``pop_heap`` so that equal sequence numbers come out in torch's order."""

    def __init__(self) -> None:
        self._heap: list[tuple[Node, Buffer]] = []

    def __bool__(self) -> bool:
        return bool(self._heap)

    @staticmethod
    def _less(a: tuple[Node, Buffer], b: tuple[Node, Buffer]) -> bool:
        return a[0].sequence_nr < b[0].sequence_nr

    def push(self, task: tuple[Node, Buffer]) -> None:
        self._heap.append(task)
        self._push_heap(len(self._heap) - 1, 0, task)

    def pop(self) -> tuple[Node, Buffer]:
        h = self._heap
        n = len(h)
        if n > 1:  # pop_heap: the last element is sifted down from the top
            value = h[n - 1]
            h[n - 1] = h[0]
            self._adjust_heap(0, n - 1, value)
        return h.pop()

    def _push_heap(self, hole: int, top: int, value: tuple[Node, Buffer]) -> None:
        h = self._heap
        parent = (hole - 1) // 2
        while hole > top and self._less(h[parent], value):
            h[hole] = h[parent]
            hole = parent
            parent = (hole - 1) // 2
        h[hole] = value

    def _adjust_heap(self, hole: int, length: int, value: tuple[Node, Buffer]) -> None:
        h = self._heap
        top = hole
        child = hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if self._less(h[child], h[child - 1]):
                child -= 1
            h[hole] = h[child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            h[hole] = h[child - 1]
            hole = child - 1
        self._push_heap(hole, top, value)


class _GraphTask:
    def __init__(self, keep_graph: bool, grad_mode: bool, num_captures: int) -> None:
        self.keep_graph = keep_graph
        self.grad_mode = grad_mode
        self.refs = _Refs()
        self.dependencies: dict[int, int] = {}
        self.not_ready: dict[int, Buffer] = {}
        # exec_info: empty (run everything) unless inputs were given
        self.has_exec_info = False
        self.needed: set[int] = set()
        self.captures: dict[int, list[tuple[int, int]]] = {}
        self.captured: list[Tensor | None] = [None] * num_captures
        self.queue = _ReadyQueue()

    def should_execute(self, fn: Node) -> bool:
        return id(fn) in self.needed or id(fn) in self.captures

    # -- compute_dependencies / init_to_execute ---------------------------------------------
    def compute_dependencies(self, root: Node) -> None:
        seen: set[int] = set()
        queue = [root]
        deps = self.dependencies
        while queue:
            fn = queue.pop()
            for nxt, _ in fn._next_edges:
                if nxt is None:
                    continue
                deps[id(nxt)] = deps.get(id(nxt), 0) + 1
                if id(nxt) not in seen:
                    seen.add(id(nxt))
                    queue.append(nxt)

    def init_to_execute(self, root: Node, outputs: list[Edge | None], accumulate: bool) -> None:
        """Mark what must run: the nodes of ``outputs`` (needed for backward, captured for
        grad) and every node with a path to one of them."""
        self.has_exec_info = True
        for output_idx, edge in enumerate(outputs):
            if edge is None or edge[0] is None:  # unreachable input (torch: an Identity node)
                continue
            fn, input_nr = edge
            if accumulate:
                self.needed.add(id(fn))
            else:
                self.captures.setdefault(id(fn), []).append((input_nr, output_idx))
        # iterative DFS: a node is needed when one of its children should execute
        stack: list[list[Any]] = [[root, 0]]
        seen: set[int] = set()
        while stack:
            frame = stack[-1]
            fn = frame[0]
            edges = fn._next_edges
            child: Node | None = None
            while frame[1] < len(edges):
                c = edges[frame[1]][0]
                frame[1] += 1
                if c is None:
                    continue
                if id(c) in seen:
                    if self.should_execute(c):
                        self.needed.add(id(fn))
                    continue
                seen.add(id(c))
                child = c
                break
            if child is not None:
                stack.append([child, 0])
            else:
                stack.pop()
                if self.should_execute(fn) and stack:
                    self.needed.add(id(stack[-1][0]))

    # -- InputBuffer::add / accumulate ------------------------------------------------------
    def buffer_add(self, buf: Buffer, pos: int, var: Tensor | None) -> None:
        """Place ``var`` (whose reference the caller hands over) in slot ``pos``."""
        if var is None:
            return
        old = buf[pos]
        if old is None:
            buf[pos] = var
            return
        refs = self.refs
        if _per_thread.state.grad_mode:
            new = _call("add.Tensor", (old, var, 1))
        elif is_non_overlapping_and_dense(old) and refs.sole_owner_of_storage(old):
            old.add_(var)  # the buffered gradient is repurposed: its version moves
            refs.release(var)
            return
        else:
            new = _call("add.Tensor", (old, var, 1))
        refs.release(old)
        refs.release(var)
        refs.hold(new)
        buf[pos] = new

    def release_buffer(self, buf: Sequence[Tensor | None]) -> None:
        for t in buf:
            self.refs.release(t)

    # -- Engine::evaluate_function ----------------------------------------------------------
    def evaluate_function(self, fn: Node, inputs: Buffer) -> None:
        refs = self.refs
        if self.has_exec_info:
            needed = id(fn) in self.needed
            new_inputs = inputs
            if not needed:  # the tensor pre-hooks run once in any case
                new_inputs = _call_tensor_pre_hooks(fn, inputs, refs)
            for input_idx, output_idx in self.captures.get(id(fn), ()):
                g = new_inputs[input_idx] if input_idx < len(new_inputs) else None
                refs.hold(g)
                refs.release(self.captured[output_idx])
                self.captured[output_idx] = g
            if not needed:
                self.release_buffer(new_inputs)
                return

        outputs = self.call_function(fn, inputs)
        if not self.keep_graph:
            fn.release_variables()
        if len(outputs) == 0:
            return

        for i, (nxt, input_nr) in enumerate(fn._next_edges):
            output = outputs[i] if i < len(outputs) else None
            if nxt is None:
                refs.release(output)
                continue
            key = id(nxt)
            self.dependencies[key] -= 1
            is_ready = self.dependencies[key] == 0
            if is_ready:
                del self.dependencies[key]
            buf = self.not_ready.get(key)
            if buf is None:
                if self.has_exec_info and not self.should_execute(nxt):
                    refs.release(output)
                    continue
                buf = [None] * _num_inputs(nxt, input_nr)
                self.buffer_add(buf, input_nr, output)
                if is_ready:
                    self.queue.push((nxt, buf))
                else:
                    self.not_ready[key] = buf
            else:
                while len(buf) <= input_nr:
                    buf.append(None)
                self.buffer_add(buf, input_nr, output)
                if is_ready:
                    self.queue.push((nxt, buf))
                    del self.not_ready[key]

    def call_function(self, fn: Node, inputs: Buffer) -> list[Tensor | None]:
        """``call_function``: pre-hooks, apply, ``validate_outputs``, post-hooks. The
        outputs come back held (one reference each); the inputs are released."""
        refs = self.refs
        inputs = _call_tensor_pre_hooks(fn, inputs, refs)
        inputs = _call_pre_hooks(fn, inputs, refs)
        _graph._engine_refs.append(refs)
        try:
            raw = fn.apply(inputs)
        finally:
            _graph._engine_refs.pop()
        outputs: list[Tensor | None] = list(raw)
        outputs = validate_outputs(
            fn._next_edges, outputs, lambda msg: f"Function {fn.name()} returned an {msg}"
        )
        shared = not fn._outputs_owned
        for hook in fn._hooks:
            r = hook(tuple(outputs), tuple(inputs))
            if r is not None:
                outputs = list(r)
                shared = True
        for t in outputs:
            refs.hold(t)
            if shared:
                refs.hold(t)  # referenced by user code as well: never exclusive
        self.release_buffer(inputs)
        return outputs


def _num_inputs(fn: Node, input_nr: int) -> int:
    return max(fn.num_outputs, 1, input_nr + 1)


def _call_tensor_pre_hooks(fn: Node, inputs: Buffer, refs: _Refs) -> Buffer:
    """The tensor pre-hooks (``retain_grad``'s) see the gradient flowing into each output."""
    for i, g in enumerate(inputs):
        hook = fn._retains_grad_hooks.get(i)
        if hook is not None and g is not None:
            hook(g)
    return inputs


def _call_pre_hooks(fn: Node, inputs: Buffer, refs: _Refs) -> Buffer:
    for pre in fn._pre_hooks:
        r = pre(tuple(inputs))
        if r is not None:
            new = list(r)
            for t in new:
                refs.hold(t)
                refs.hold(t)  # given by user code: referenced elsewhere
            for t in inputs:
                refs.release(t)
            inputs = new
    return inputs


# ---------------------------------------------------------------------------------------------
# validate_outputs
# ---------------------------------------------------------------------------------------------
def _expected_metadata(node: Node, input_nr: int) -> Any:
    meta = node.input_metadata
    if input_nr < len(meta) and meta[input_nr] is not None and meta[input_nr][1] is not None:
        return meta[input_nr]
    return None


def validate_outputs(
    edges: Sequence[Edge], grads: list[Tensor | None], format_error: Callable[[str], str]
) -> list[Tensor | None]:
    """``validate_outputs``: each gradient must fit the input metadata of the node it flows
    to — reduced when broadcast (``sum_to``), cast to its dtype, otherwise torch's error."""
    from kernels.autograd.derivatives import sum_to

    out = list(grads)
    for i, (nxt, input_nr) in enumerate(edges):
        if nxt is None or i >= len(out) or out[i] is None:
            continue
        meta = _expected_metadata(nxt, input_nr)
        if meta is None:
            continue
        g = out[i]
        assert g is not None
        shape, dtype = tuple(meta[0]), meta[1]
        if tuple(g.shape) != shape:
            if not is_expandable_to(shape, tuple(g.shape)):
                got = "[" + ", ".join(str(d) for d in g.shape) + "]"
                want = "[" + ", ".join(str(d) for d in shape) + "]"
                raise RuntimeError(
                    format_error(
                        f"invalid gradient at index {i} - got {got} but expected shape "
                        f"compatible with {want}"
                    )
                )
            g = sum_to(g, shape)
        if g.dtype is not dtype:
            g = g.to(dtype)
        out[i] = g
    return out


def is_expandable_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(a in (b, 1) for a, b in zip(reversed(shape), reversed(target)))


# ---------------------------------------------------------------------------------------------
# THPEngine_run_backward + Engine::execute
# ---------------------------------------------------------------------------------------------
def _try_get_grad_accumulator(t: Tensor) -> AccumulateGrad | None:
    ref = t._grad_accumulator
    acc = ref() if ref is not None else None
    return acc if isinstance(acc, AccumulateGrad) else None


def run_backward(
    outputs: list[Tensor],
    grad_outputs: list[Tensor | None],
    retain_graph: bool,
    create_graph: bool,
    inputs: list[Tensor] | None,
    accumulate: bool,
    allow_unused: bool = False,
) -> list[Tensor | None]:
    """Execute the graph behind ``outputs``. With ``accumulate`` leaves' ``.grad`` are
    filled (``backward``; ``inputs`` limits which); otherwise the gradients of ``inputs``
    are returned (``grad``)."""
    if len(outputs) != len(grad_outputs):
        raise RuntimeError(f"got {len(outputs)} tensors and {len(grad_outputs)} gradients")
    roots: list[Edge] = []
    grads: list[Tensor] = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        edge = gradient_edge(o)
        if edge[0] is None:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
        roots.append(edge)
        if g is None:
            # unreachable after _make_grads: an output with an edge requires grad
            raise RuntimeError(
                f"element {i} of gradients tuple is None, but the corresponding Tensor "
                "requires grad"
            )
        grads.append(g)

    output_edges: list[Edge | None] = []
    if inputs is not None:
        for t in inputs:
            fn = current_grad_fn(t)
            out_edge: Edge | None = (fn, t._output_nr) if fn is not None else None
            if out_edge is None:
                acc = _try_get_grad_accumulator(t)
                out_edge = (acc, 0) if acc is not None else None
            if accumulate:
                t.retain_grad()
            if not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            output_edges.append(out_edge)

    results = _execute(roots, grads, retain_graph, create_graph, accumulate, output_edges)

    if inputs is not None and not accumulate:
        for k in range(len(inputs)):
            if results[k] is None and not allow_unused:
                raise RuntimeError(
                    f"The differentiated Tensor at index {k} appears to not have been used in "
                    "the graph. Set allow_unused=True if this is the desired behavior."
                )
        return results
    return []


def _execute(
    roots: list[Edge],
    root_grads: list[Tensor],
    keep_graph: bool,
    create_graph: bool,
    accumulate: bool,
    outputs: list[Edge | None],
) -> list[Tensor | None]:
    """``Engine::execute``."""
    checked = validate_outputs(roots, list[Tensor | None](root_grads), lambda msg: msg)
    grads = [g for g in checked if g is not None]  # none is: each output has its gradient
    task = _GraphTask(keep_graph, create_graph, len(outputs))
    for g in grads:
        task.refs.hold(g)  # the caller's: never exclusive to the engine

    root_fn: Node
    first: Buffer
    if len(roots) == 1:  # skip the dummy GraphRoot
        fn, input_nr = roots[0]
        assert fn is not None
        root_fn = fn
        first = [None] * _num_inputs(fn, input_nr)
        task.refs.hold(grads[0])
        task.buffer_add(first, input_nr, grads[0])
    else:
        root_fn = GraphRoot(roots, grads)
        first = []

    task.compute_dependencies(root_fn)
    if outputs:
        task.init_to_execute(root_fn, outputs, accumulate)

    prev_grad_mode = _per_thread.state.grad_mode
    _per_thread.state.grad_mode = create_graph
    try:
        task.queue.push((root_fn, first))
        while task.queue:
            fn, buf = task.queue.pop()
            task.evaluate_function(fn, buf)
    finally:
        _per_thread.state.grad_mode = prev_grad_mode
    return task.captured


# ---------------------------------------------------------------------------------------------
# torch.autograd.backward / torch.autograd.grad
# ---------------------------------------------------------------------------------------------
def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Tensor | Sequence[Tensor] | None = None,
) -> None:
    """``torch.autograd.backward``: accumulate gradients into the leaves' ``.grad``."""
    ins: list[Tensor] | None = None
    if inputs is not None:
        ins = _tensors(inputs)
        if len(ins) == 0:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    outputs = _tensors(tensors)
    grads = _make_grads(outputs, _tensor_or_tensors_to_tuple(grad_tensors, len(outputs)))
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(outputs, grads, retain_graph, create_graph, ins, True, True)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """``torch.autograd.grad``: the gradients of ``outputs`` with respect to ``inputs``."""
    if materialize_grads and allow_unused is False:
        raise ValueError(
            "Expected allow_unused to be True or not passed when materialize_grads=True, "
            "but got: allow_unused=False."
        )
    if allow_unused is None:
        allow_unused = materialize_grads
    outs = _tensors(outputs)
    ins = _tensors(inputs)
    if len(ins) == 0:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    gos = _make_grads(outs, _tensor_or_tensors_to_tuple(grad_outputs, len(outs)))
    if retain_graph is None:
        retain_graph = create_graph
    res = run_backward(outs, gos, retain_graph, create_graph, ins, False, allow_unused)
    if materialize_grads:
        res = [
            r if r is not None else _zeros_like(t, requires_grad=create_graph)
            for r, t in zip(res, ins)
        ]
    return tuple(res)


def _zeros_like(t: Tensor, requires_grad: bool) -> Tensor:
    z = _call("zeros_like", (t, None, None, None, None, None))
    return z.requires_grad_(True) if requires_grad else z
