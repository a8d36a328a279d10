"""The backward engine: mirrors ``torch::autograd::Engine`` (engine.cpp) and
``torch.autograd.backward`` / ``torch.autograd.grad`` (torch/autograd/__init__.py).

Execution is dependency-counted: a node runs once every node that feeds it a
gradient has run, highest ``sequence_nr`` first among the ready ones (PyTorch's
ready queue order on one device). Grad mode is off while nodes run unless
``create_graph=True``; saved tensors are freed afterwards unless the graph is
retained.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from dispatch.tensorimpl import Tensor, _call
from dispatch.tls import state as _tls
from kernels.autograd.graph import AccumulateGrad, GraphRoot, Node, gradient_edge
from kernels.autograd.variable import current_grad_fn

__all__ = ["backward", "grad", "run_backward"]


def _tensors(x: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _make_grads(outputs: list[Tensor], grads: list[Tensor | None]) -> list[Tensor]:
    out: list[Tensor] = []
    for o, g in zip(outputs, grads):
        if g is None:
            if o.requires_grad:
                if o.numel() != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                if not o.dtype.is_floating_point:
                    raise RuntimeError(
                        "grad can be implicitly created only for real scalar outputs but got "
                        f"{o.dtype}"
                    )
                g = _call("ones_like", (o, None, None, None, None, None))
            else:
                g = None
        elif not isinstance(g, Tensor):
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
        elif tuple(g.shape) != tuple(o.shape):
            raise RuntimeError(
                f"Mismatch in shape: grad_output[{len(out)}] has a shape of {g.shape} and "
                f"output[{len(out)}] has a shape of {o.shape}."
            )
        out.append(g)  # type: ignore[arg-type]
    return out


def run_backward(
    outputs: list[Tensor],
    grad_outputs: list[Tensor | None],
    retain_graph: bool,
    create_graph: bool,
    inputs: list[Tensor] | None,
    accumulate: bool,
    allow_unused: bool = False,
    retain_inputs: bool = False,
) -> list[Tensor | None]:
    """Execute the graph behind ``outputs``. With ``accumulate`` leaves' ``.grad`` are
    filled (``backward``); otherwise the gradients of ``inputs`` are returned (``grad``)."""
    roots: list[tuple[Node | None, int]] = []
    for i, o in enumerate(outputs):
        fn = current_grad_fn(o)
        if fn is None and not o._requires_grad:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
        roots.append(gradient_edge(o))
    grads = _make_grads(outputs, grad_outputs)

    # where to capture gradients for autograd.grad(inputs=...)
    captures: dict[tuple[int, int], int] = {}
    capture_nodes: set[int] = set()
    input_edges: list[tuple[Node | None, int]] = []
    if inputs is not None:
        for k, t in enumerate(inputs):
            if retain_inputs:  # backward(inputs=...): torch's run_backward retains their grad
                t.retain_grad()
            if not t.requires_grad:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            edge = gradient_edge(t)
            input_edges.append(edge)
            if edge[0] is not None:
                captures[(id(edge[0]), edge[1])] = k
                capture_nodes.add(id(edge[0]))

    graph_root = GraphRoot(roots, grads)

    # dependencies: how many gradients each node waits for
    dependencies: dict[int, int] = {}
    nodes: dict[int, Node] = {id(graph_root): graph_root}
    stack: list[Node] = [graph_root]
    seen = {id(graph_root)}
    while stack:
        n = stack.pop()
        for nxt, _ in n._next_edges:
            if nxt is None:
                continue
            dependencies[id(nxt)] = dependencies.get(id(nxt), 0) + 1
            if id(nxt) not in seen:
                seen.add(id(nxt))
                nodes[id(nxt)] = nxt
                stack.append(nxt)

    # with inputs=, run only what leads to an input (PyTorch's exec_info)
    needed: dict[int, bool] | None = None
    if inputs is not None:
        needed = _exec_info(nodes.values(), capture_nodes)

    results: list[Tensor | None] = [None] * (len(inputs) if inputs is not None else 0)
    buffers: dict[int, list[Tensor | None]] = {}
    ready: list[tuple[int, int, Node]] = [(-graph_root.sequence_nr, id(graph_root), graph_root)]
    prev_grad_mode = _tls.grad_mode
    _tls.grad_mode = create_graph
    try:
        while ready:
            _, _, node = heapq.heappop(ready)
            key = id(node)
            buf = buffers.pop(key, [None] * max(node.num_outputs, 1))
            for i, g in enumerate(buf):
                cap = captures.get((key, i))
                if cap is not None and g is not None:
                    results[cap] = g
                hook = node._retains_grad_hooks.get(i)
                if hook is not None and g is not None:
                    hook(g)
            for pre in node._pre_hooks:
                r = pre(tuple(buf))
                if r is not None:
                    buf = list(r)
            if isinstance(node, AccumulateGrad) and not accumulate:
                out_grads: Sequence[Tensor | None] = ()
            elif needed is not None and not needed.get(key, False):
                out_grads = ()
            else:
                out_grads = node.apply(buf)
                for hook in node._hooks:
                    r = hook(tuple(out_grads), tuple(buf))
                    if r is not None:
                        out_grads = list(r)
                if not retain_graph:
                    node.release_variables()
                out_grads = _validate_outputs(node, out_grads)
            for i, (nxt, input_nr) in enumerate(node._next_edges):
                if nxt is None:
                    continue
                nkey = id(nxt)
                g = out_grads[i] if i < len(out_grads) else None
                if g is not None:
                    nbuf = buffers.get(nkey)
                    if nbuf is None:
                        nbuf = buffers[nkey] = [None] * max(nxt.num_outputs, 1)
                    while len(nbuf) <= input_nr:
                        nbuf.append(None)
                    nbuf[input_nr] = g if nbuf[input_nr] is None else nbuf[input_nr] + g
                dependencies[nkey] -= 1
                if dependencies[nkey] == 0:
                    heapq.heappush(ready, (-nxt.sequence_nr, nkey, nxt))
    finally:
        _tls.grad_mode = prev_grad_mode

    if inputs is not None:
        for k in range(len(inputs)):
            if results[k] is None and not allow_unused:
                raise RuntimeError(
                    f"The differentiated Tensor at index {k} appears to not have been used in "
                    "the graph. Set allow_unused=True if this is the desired behavior."
                )
    return results


def _expected_metadata(node: Node, input_nr: int) -> Any:
    meta = node.input_metadata
    if input_nr < len(meta) and meta[input_nr] is not None and meta[input_nr][1] is not None:
        return meta[input_nr]
    return None


def _validate_outputs(node: Node, grads: Sequence[Tensor | None]) -> list[Tensor | None]:
    """``validate_outputs``: each gradient must fit the input it flows to — reduced when
    broadcast (``sum_to``), cast to its dtype, otherwise PyTorch's error."""
    from kernels.autograd.derivatives import sum_to

    out = list(grads)
    for i, (nxt, input_nr) in enumerate(node._next_edges):
        if nxt is None or i >= len(out) or out[i] is None:
            continue
        meta = _expected_metadata(nxt, input_nr)
        if meta is None:
            continue
        g = out[i]
        assert g is not None
        shape, dtype = meta[0], meta[1]
        if isinstance(nxt, AccumulateGrad) and tuple(g.shape) == tuple(nxt.variable.shape):
            shape = tuple(g.shape)  # a leaf whose metadata changed since: take it as it is now
        if tuple(g.shape) != tuple(shape):
            if not is_expandable_to(shape, tuple(g.shape)):
                got = "[" + ", ".join(str(d) for d in g.shape) + "]"
                want = "[" + ", ".join(str(d) for d in shape) + "]"
                raise RuntimeError(
                    f"Function {node.name()} returned an invalid gradient at index {i} - got "
                    f"{got} but expected shape compatible with {want}"
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


def _exec_info(nodes: Any, targets: set[int]) -> dict[int, bool]:
    """Which nodes lie on a path to a capture target (iterative: graphs can be deep)."""
    needed: dict[int, bool] = {}
    for start in nodes:
        if id(start) in needed:
            continue
        stack: list[tuple[Node, int]] = [(start, 0)]
        needed[id(start)] = id(start) in targets
        while stack:
            n, i = stack.pop()
            edges = n._next_edges
            while i < len(edges):
                nxt = edges[i][0]
                i += 1
                if nxt is None:
                    continue
                if id(nxt) not in needed:
                    needed[id(nxt)] = id(nxt) in targets
                    stack.append((n, i - 1))
                    stack.append((nxt, 0))
                    break
                if needed[id(nxt)]:
                    needed[id(n)] = True
            else:
                continue
    return needed


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Tensor | Sequence[Tensor] | None = None,
) -> None:
    """``torch.autograd.backward``: accumulate gradients into the leaves' ``.grad``."""
    outputs = _tensors(tensors)
    grads: list[Tensor | None]
    if grad_tensors is None:
        grads = [None] * len(outputs)
    elif isinstance(grad_tensors, Tensor):
        grads = [grad_tensors]
    else:
        grads = list(grad_tensors)
    if len(grads) != len(outputs):
        raise RuntimeError(f"got {len(grads)} tensors and {len(outputs)} gradients")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        # accumulate only into the given leaves: run as grad(), then accumulate
        ins = _tensors(inputs)
        res = run_backward(outputs, grads, retain_graph, create_graph, ins, False, True, True)
        for t, g in zip(ins, res):
            # a non-leaf input got its gradient from its retains-grad hook
            if g is not None and t._grad_fn is None:
                t._grad = g if t._grad is None else t._grad + g
        return
    run_backward(outputs, grads, retain_graph, create_graph, None, True)


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
    outs = _tensors(outputs)
    ins = _tensors(inputs)
    gos: list[Tensor | None]
    if grad_outputs is None:
        gos = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor):
        gos = [grad_outputs]
    else:
        gos = list(grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    res = run_backward(outs, gos, retain_graph, create_graph, ins, False, allow_unused)
    if materialize_grads:
        res = [
            r if r is not None else _call("zeros_like", (t, None, None, None, None, None))
            for r, t in zip(res, ins)
        ]
    return tuple(res)


_ = Any
