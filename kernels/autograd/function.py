"""Custom autograd Functions: mirrors ``torch.autograd.Function`` (torch/autograd/function.py)
over ``THPFunction_apply`` / ``process_outputs`` (torch/csrc/autograd/python_function.cpp),
``_wrap_outputs`` (torch/csrc/autograd/custom_function.cpp) and ``PyNode::apply``.

``F.apply(*args)`` follows PyTorch step by step:

1. unpack the inputs: which arguments are tensors, ``needs_input_grad`` (their
   ``requires_grad``, whatever the grad mode), and whether a node is recorded at all
   (``is_executable``: grad mode is on and a tensor input requires grad); the node's
   next edges are those of the *tensor* inputs only;
2. run ``forward`` with grad mode off (as torch's ``AutoGradMode(false)``);
3. wrap the outputs (``_wrap_outputs``): bump the versions of ``mark_dirty`` tensors;
   an input returned as-is becomes ``input.view_as(input)`` made in no_grad; a dirty
   input gets the node by ``rebase_history`` (a view's base gets CopySlices); other
   floating outputs get the node as grad_fn; every output that is a view gets
   ``CreationMeta.IN_CUSTOM_FUNCTION`` (``MULTI_OUTPUT_NODE`` when the Function has
   several differentiable outputs), so an in-place change of it raises PyTorch's error;
4. save ``save_for_backward`` tensors as :class:`SavedVariable` (inference tensors
   refused here, and only when a node is recorded).

The context object *is* the node, as in PyTorch: each Function subclass ``F`` gets a
node class ``FBackward`` (``F._backward_cls``), so ``y.grad_fn`` is the ``ctx`` that
``forward`` saw. Its :meth:`~BackwardCFunction.apply` is ``PyNode::apply`` followed by
the engine's ``validate_outputs``: it materializes undefined gradients as zeros
(unless ``ctx.set_materialize_grads(False)``), calls ``backward``, checks the number of
gradients, drops those of non-tensor inputs, then reduces (``sum_to``) and casts each
gradient to its input's shape and dtype, or raises PyTorch's error.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from dispatch.dtypes import DType
from dispatch.tensorimpl import CreationMeta, Tensor, _call
from dispatch.tls import per_thread as _per_thread
from kernels.ad_inplace_or_view import INFERENCE_INPLACE_ERROR
from kernels.autograd.derivatives import sum_to
from kernels.autograd.engine import is_expandable_to
from kernels.autograd.graph import (
    FREED_ERROR,
    Node,
    SavedVariable,
    collect_next_edges,
    input_metadata_of,
)
from kernels.autograd.variable import check_inplace, rebase_history

__all__ = [
    "BackwardCFunction",
    "Function",
    "FunctionCtx",
    "once_differentiable",
]

LEAF_MODIFIED_ERROR: Final = (
    "a leaf Variable that requires grad has been used in an in-place operation."
)
MARK_DIRTY_NOT_INPUT: Final = (
    "ctx.mark_dirty() received a tensor that was not an input. Only input Tensors that have "
    "been mutated should be passed to ctx.mark_dirty()."
)
DIRTY_VIEW_MULTI_OUTPUT_ERROR: Final = (
    "If your Function modifies inplace an input that is a view of another Tensor, your "
    "Function cannot return more than one Tensor. This is not supported by the current "
    "autograd engine. You should either make sure the input is not a view (using .clone() for "
    "example) or make your Function only return one Tensor (potentially splitting it into two "
    "Functions: one doing the inplace that returns a single Tensor and a second one that does "
    "the other operations). You can ask on the forum https://discuss.pytorch.org/ if you need "
    "help to do this change."
)
DIRTY_NOT_RETURNED_ERROR: Final = (
    "Some elements marked as dirty during the forward method were not returned as output. The "
    "inputs that are modified inplace must all be outputs of the Function."
)
# THPFunction_assert passes its extra arguments to a printf-style format string that has no
# conversion in it, so PyTorch 2.13's texts really end after "argument " / "got ".
MARK_DIRTY_TYPE_ERROR: Final = "mark_dirty can only accept variables, but argument "
MARK_NON_DIFF_TYPE_ERROR: Final = (
    "mark_non_differentiable only accepts variable arguments, but got "
)
ONCE_DIFFERENTIABLE_ERROR: Final = (
    "trying to differentiate twice a function that was marked with @once_differentiable"
)

# One output slot of a node: (shape, dtype, device type) of the output, or None when the
# output is not a tensor (then its gradient is always None).
_Info = tuple[tuple[int, ...], DType, str]
_UNDEFINED_INPUT: Final = ((), None, "")  # Node::undefined_input() in input_metadata


class FunctionCtx:
    """What ``forward`` records on ``ctx`` (torch's ``FunctionCtx``, formerly
    ``_ContextMethodMixin``). The methods only store their arguments; ``apply``
    interprets them after ``forward`` returns, as PyTorch does."""

    to_save: tuple[Any, ...] | None = None
    dirty_tensors: tuple[Any, ...] | None = None
    non_differentiable: tuple[Any, ...] | None = None
    materialize_grads: bool = True
    _materialize_non_diff_grads: bool = True

    def __init__(self) -> None:
        # torch::autograd::AutogradContext::saved_data (the C++ API's home for non-tensors;
        # plain attributes on ctx work as in Python)
        self.saved_data: dict[str, Any] = {}

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Save tensors (or None) for ``backward``; read them back with ``ctx.saved_tensors``."""
        self.to_save = tensors

    def mark_dirty(self, *args: Tensor) -> None:
        """Declare the inputs that ``forward`` modified in place (they must be returned)."""
        self.dirty_tensors = args

    def mark_non_differentiable(self, *args: Tensor) -> None:
        """Declare outputs that get no gradient (they do not require grad)."""
        self.non_differentiable = args

    def set_materialize_grads(self, value: bool) -> None:
        """Whether ``backward`` sees zeros (True, the default) or None for undefined grads."""
        if not isinstance(value, bool):
            raise TypeError(
                "set_materialize_grads received an invalid combination of arguments - got (), "
                "but expected (bool)"
            )
        self.materialize_grads = value


class BackwardCFunction(Node, FunctionCtx):
    """The node of a custom Function (``PyNode`` + ``THPFunction``); it is also the ``ctx``."""

    _forward_cls: ClassVar[type[Function]]
    _outputs_owned: ClassVar[bool] = False  # the user's backward may keep what it returns

    def __init__(self) -> None:
        Node.__init__(self, ())
        FunctionCtx.__init__(self)
        self.needs_input_grad: tuple[bool, ...] = ()
        self._is_variable_input: list[bool] = []
        self._input_info: list[_Info] = []
        self._output_info: list[_Info | None] = []
        self._saved_variables: list[SavedVariable] = []
        self._has_freed_buffers = False

    def name(self) -> str:
        return type(self).__name__

    # -- saved tensors ----------------------------------------------------------------------
    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        """The tensors given to ``save_for_backward``, version-checked on each access."""
        if self._has_freed_buffers:
            raise RuntimeError(FREED_ERROR)
        return tuple(sv.unpack(self) for sv in self._saved_variables)

    def release_variables(self) -> None:
        self._saved_variables = []
        self._has_freed_buffers = True

    # -- backward (PyNode::apply, then the engine's validate_outputs) -----------------------
    def _user_backward(self) -> Callable[..., Any]:
        fwd = self._forward_cls
        backward_fn = fwd.backward
        vjp_fn = fwd.vjp
        if backward_fn is not Function.backward and vjp_fn is not Function.vjp:
            raise RuntimeError(
                "Implementing both 'backward' and 'vjp' for a custom Function is not allowed. "
                "You should only implement one of them."
            )
        return vjp_fn if vjp_fn is not Function.vjp else backward_fn

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        user_fn = self._user_backward()
        args: list[Tensor | None] = []
        for i in range(max(self.num_outputs, len(grads))):
            g = grads[i] if i < len(grads) else None
            if g is None and self.materialize_grads:
                info = self._output_info[i] if i < len(self._output_info) else None
                undefined = i >= len(self.input_metadata) or self.input_metadata[i][1] is None
                if info is not None and not (undefined and not self._materialize_non_diff_grads):
                    g = _call("zeros", (list(info[0]), info[1], None, info[2], None))
            args.append(g)
        result = user_fn(self, *args)
        if not isinstance(result, tuple):
            result = (result,)
        n_inputs = len(self._is_variable_input)
        # returning too many results is fine as long as the extra ones are all None
        if len(result) > n_inputs and all(r is None for r in result[n_inputs:]):
            result = result[:n_inputs]
        if len(result) != n_inputs:
            raise RuntimeError(
                f"function {self.name()} returned an incorrect number of gradients "
                f"(expected {n_inputs}, got {len(result)})"
            )
        out: list[Tensor | None] = []
        for i, (r, is_var) in enumerate(zip(result, self._is_variable_input, strict=True)):
            if not is_var:
                if r is not None:
                    raise RuntimeError(
                        f"function {self.name()} returned a gradient different than None at "
                        f"position {i + 1}, but the corresponding forward input was not a "
                        "Variable"
                    )
                continue
            if r is not None and not isinstance(r, Tensor):
                raise RuntimeError(f"expected Variable or None (got {_typename(r)})")
            out.append(r)
        return self._validate_outputs(out)

    def _validate_outputs(self, grads: list[Tensor | None]) -> list[Tensor | None]:
        """``validate_outputs`` (engine.cpp) against the inputs' metadata recorded in forward."""
        for i, g in enumerate(grads):
            if g is None or i >= len(self._next_edges) or self._next_edges[i][0] is None:
                continue
            shape, dtype, device = self._input_info[i]
            if tuple(g.shape) != shape:
                if not is_expandable_to(shape, tuple(g.shape)):
                    raise RuntimeError(
                        f"Function {self.name()} returned an invalid gradient at index {i} - got "
                        f"{_fmt_shape(g.shape)} but expected shape compatible with "
                        f"{_fmt_shape(shape)}"
                    )
                g = sum_to(g, shape)
            if g.device.type != device:
                raise RuntimeError(
                    f"Function {self.name()} returned an invalid gradient at index {i} - "
                    f"expected device {device} but got {g.device.type}"
                )
            if g.dtype != dtype:
                g = g.to(dtype)
            grads[i] = g
        return grads


class Function:
    """Base class of custom autograd Functions (``torch.autograd.Function``).

    Subclasses define ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` as static methods
    and are called as ``F.apply(*args)``; ``backward`` returns one gradient (or None) per
    argument of ``forward``.
    """

    _backward_cls: ClassVar[type[BackwardCFunction]]
    # not modelled beyond these class attributes: forward-mode AD (jvp), vmap, functorch
    generate_vmap_rule: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``FunctionMeta``: every Function class gets its node class ``<Name>Backward``."""
        super().__init_subclass__(**kwargs)
        cls._backward_cls = _make_backward_cls(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            f"{self.__class__} should not be instantiated. Methods on autograd functions are all "
            "static, so you should invoke them on the class itself. Instantiating an autograd "
            "function will raise an error in a future version of PyTorch.",
            DeprecationWarning,
            stacklevel=2,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please use "
            "new-style autograd function with static forward method. (Example: "
            "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)"
        )

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "You must implement the forward function for custom autograd.Function."
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    vjp = backward

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` and, when autograd records this call, attach the node."""
        overridden_setup_context = cls.setup_context is not Function.setup_context
        if kwargs:
            args = _resolve_kwargs(cls, args, kwargs, overridden_setup_context)
        # 1. unpack_input
        is_variable_input = [isinstance(a, Tensor) for a in args]
        input_vars: list[Tensor] = [a for a in args if isinstance(a, Tensor)]
        needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        is_executable = _per_thread.state.grad_mode and any(needs_input_grad)
        ctx = cls._backward_cls()
        if is_executable:
            ctx._next_edges = collect_next_edges(input_vars)
        ctx.needs_input_grad = needs_input_grad
        ctx._is_variable_input = is_variable_input
        # 2. forward, with grad mode off
        s = _per_thread.state
        prev = s.grad_mode
        s.grad_mode = False
        try:
            if overridden_setup_context:
                output = cls.forward(*args)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args)
        finally:
            s.grad_mode = prev
        # 3./4. process_outputs
        return _process_outputs(ctx, input_vars, output, is_executable)


def _make_backward_cls(cls: type[Function]) -> type[BackwardCFunction]:
    return type(
        cls.__name__ + "Backward",
        (BackwardCFunction,),
        {"_forward_cls": cls, "__module__": __name__, "__qualname__": cls.__name__ + "Backward"},
    )


Function._backward_cls = _make_backward_cls(Function)


def _process_outputs(
    ctx: BackwardCFunction, input_vars: list[Tensor], raw: Any, is_executable: bool
) -> Any:
    unpack_output = not isinstance(raw, tuple)
    raw_outputs: tuple[Any, ...] = (raw,) if unpack_output else raw
    if is_executable:
        ctx._input_info = [input_metadata_of(t) for t in input_vars]
    # _get_tensors_to_save: before anything is wrapped
    tensors_to_save: list[Tensor | None] = []
    if ctx.to_save is not None:
        for i, obj in enumerate(ctx.to_save):
            if obj is None:
                tensors_to_save.append(None)
            elif isinstance(obj, Tensor):
                if is_executable:
                    tensors_to_save.append(obj)
            elif is_executable:
                raise TypeError(
                    f"save_for_backward can only save variables, but argument {i} is of type "
                    f"{_typename(obj)}"
                )
        ctx.to_save = None
    outputs = _wrap_outputs(ctx, input_vars, raw_outputs, is_executable)
    # SavedVariables are made after the outputs have their grad_fn
    if is_executable and tensors_to_save:
        output_ids = {id(o) for o in outputs if isinstance(o, Tensor)}
        ctx._saved_variables = [
            SavedVariable(t, is_output=t is not None and id(t) in output_ids)
            for t in tensors_to_save
        ]
    return outputs[0] if unpack_output else tuple(outputs)


def _wrap_outputs(
    ctx: BackwardCFunction,
    input_vars: list[Tensor],
    raw_outputs: tuple[Any, ...],
    is_executable: bool,
) -> list[Any]:
    """``_wrap_outputs`` / ``_process_backward_mode_ad`` (custom_function.cpp)."""
    non_differentiable: set[int] = set()
    if ctx.non_differentiable is not None:
        for t in ctx.non_differentiable:
            if not isinstance(t, Tensor):
                raise RuntimeError(MARK_NON_DIFF_TYPE_ERROR)
            non_differentiable.add(id(t))
        ctx.non_differentiable = None
    dirty: set[int] = set()
    if ctx.dirty_tensors is not None:
        for t in ctx.dirty_tensors:
            if not isinstance(t, Tensor):
                raise RuntimeError(MARK_DIRTY_TYPE_ERROR)
            dirty.add(id(t))
            _bump_version(t)
        ctx.dirty_tensors = None
    node = ctx if is_executable else None
    input_ids = {id(t) for t in input_vars}
    num_outputs = len(raw_outputs)
    if node is not None:
        node.num_outputs = num_outputs
        node.input_metadata = []
        node._output_info = []
    outputs: list[Any] = []
    raw_ids: set[int] = set()
    num_diff_outputs = 0
    for i, obj in enumerate(raw_outputs):
        if not isinstance(obj, Tensor):
            if node is not None:
                node.input_metadata.append(_UNDEFINED_INPUT)
                node._output_info.append(None)
            outputs.append(obj)
            continue
        var: Tensor = obj
        is_input = id(var) in input_ids
        is_modified = id(var) in dirty
        is_differentiable = (
            node is not None and id(var) not in non_differentiable and var.dtype.is_floating_point
        )
        if node is not None:
            node.input_metadata.append(
                input_metadata_of(var) if is_differentiable else _UNDEFINED_INPUT
            )
        var = _set_history(var, node, i, is_input, is_modified, is_differentiable, num_outputs)
        if not (is_input and is_modified) and var._base is not None:
            var._creation_meta = CreationMeta.IN_CUSTOM_FUNCTION
        if is_differentiable:
            num_diff_outputs += 1
        if node is not None:
            node._output_info.append(input_metadata_of(var))
        raw_ids.add(id(obj))
        outputs.append(var)
    # several differentiable outputs: none of their views may be modified in place
    if num_diff_outputs > 1:
        for o in outputs:
            if isinstance(o, Tensor) and o._base is not None:
                o._creation_meta = CreationMeta.MULTI_OUTPUT_NODE
    # every modified input must be returned as-is
    if not dirty <= raw_ids:
        raise RuntimeError(DIRTY_NOT_RETURNED_ERROR)
    return outputs


def _set_history(
    var: Tensor,
    node: BackwardCFunction | None,
    output_nr: int,
    is_input: bool,
    is_modified: bool,
    is_differentiable: bool,
    num_outputs: int,
) -> Tensor:
    """The ``set_history`` lambda of ``_process_backward_mode_ad``; returns the output to use."""
    if not is_differentiable:
        if not var.requires_grad:
            if is_input and not is_modified:
                var = _view_as_self_with_no_grad(var)
            return var
        # detached aliases of inputs rather than changing their requires_grad; a view of an
        # input is left alone (as a view made in a no_grad block requires grad)
        if is_input:
            var = var.detach()
        elif var._base is None:
            var.detach_()
        return var
    assert node is not None
    if is_modified:
        # C++ is_leaf(): the raw grad_fn field, not the getter that regenerates a view's
        # grad_fn (its version already moved: forward modified it)
        if var._grad_fn is None and var.requires_grad:
            raise RuntimeError(LEAF_MODIFIED_ERROR)
        is_view = var._base is not None
        if not is_input:
            if is_view:
                raise RuntimeError(MARK_DIRTY_NOT_INPUT)
            warnings.warn(MARK_DIRTY_NOT_INPUT, UserWarning, stacklevel=4)
        if is_view and num_outputs > 1:
            raise RuntimeError(DIRTY_VIEW_MULTI_OUTPUT_ERROR)
        if is_view:
            # the checks an in-place op on this view would make (creation meta, view of a leaf)
            check_inplace(var, True)
        var._grad = None
        # a view's base gets CopySlices (single output, so output_nr 0)
        rebase_history(var, node, 0 if is_view else output_nr)
        return var
    if is_input:
        var = _view_as_self_with_no_grad(var)
    _set_gradient_edge(var, node, output_nr)
    return var


def _view_as_self_with_no_grad(t: Tensor) -> Tensor:
    """An input returned as-is is returned as ``t.view_as(t)`` made in no_grad mode."""
    s = _per_thread.state
    prev = s.grad_mode
    s.grad_mode = False
    try:
        return t.view_as(t)
    finally:
        s.grad_mode = prev


def _set_gradient_edge(t: Tensor, node: Node, output_nr: int) -> None:
    t._grad_fn = node
    t._output_nr = output_nr
    if t._base is not None:
        vc = t._version_counter
        t._attr_version = vc.version if vc is not None else 0


def _bump_version(t: Tensor) -> None:
    """``impl::bump_version``: refused for an inference tensor outside inference mode."""
    vc = t._version_counter
    if vc is None:
        if not _per_thread.state.inference_mode:
            raise RuntimeError(INFERENCE_INPLACE_ERROR)
        return
    vc.version += 1


def _resolve_kwargs(
    cls: type[Function], args: tuple[Any, ...], kwargs: dict[str, Any], no_ctx: bool
) -> tuple[Any, ...]:
    """``resolve_kwargs_to_positional``: keyword arguments of ``apply`` by ``forward``'s
    parameter names (no defaults are filled in, as in PyTorch's C implementation)."""
    params = [
        p.name
        for p in inspect.signature(cls.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not no_ctx:
        params = params[1:]
    n_pos = len(args)
    slots: dict[int, Any] = {}
    for key, value in kwargs.items():
        if key not in params:
            raise TypeError(f"forward() got an unexpected keyword argument '{key}'")
        idx = params.index(key)
        if idx < n_pos:
            raise TypeError(f"forward() got multiple values for argument '{key}'")
        slots[idx] = value
    total = max([n_pos - 1, *slots]) + 1
    if total > len(params):
        raise TypeError(
            f"forward() takes {len(params)} positional arguments but {total} were given"
        )
    out = list(args)
    for i in range(n_pos, total):
        if i not in slots:
            raise TypeError(f"forward() missing required argument: '{params[i]}' (position {i})")
        out.append(slots[i])
    return tuple(out)


# -- helpers -------------------------------------------------------------------------------
def _typename(obj: Any) -> str:
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# -- once_differentiable ----------------------------------------------------------------------
class DelayedErrorNode(Node):
    """``torch::autograd::Error``: the grad_fn of a ``@once_differentiable`` backward's
    results; running it (double backward) raises."""

    _name = "torch::autograd::Error"

    def __init__(self, msg: str, next_edges: Any) -> None:
        super().__init__(next_edges)
        self.msg = msg

    def apply(self, grads: list[Tensor | None]) -> Sequence[Tensor | None]:
        raise RuntimeError(self.msg)


def once_differentiable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``backward`` in no_grad mode; if a graph is being built (create_graph) its results
    get a grad_fn that raises when differentiated (torch's ``DelayedError``)."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        s = _per_thread.state
        prev = s.grad_mode
        s.grad_mode = False
        try:
            outputs = fn(ctx, *args, **kwargs)
        finally:
            s.grad_mode = prev
        if not s.grad_mode:
            return outputs
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return outputs
        outs: tuple[Any, ...] = outputs if isinstance(outputs, tuple) else (outputs,)
        fakes = [None if v is None else v.detach().requires_grad_(True) for v in outs]
        err = DelayedErrorNode(ONCE_DIFFERENTIABLE_ERROR, collect_next_edges(fakes))
        err.num_outputs = len(outs)
        results: list[Tensor | None] = []
        for i, v in enumerate(fakes):
            if v is None:
                results.append(None)
                continue
            r = v.data  # tensor_data(): same memory, own version counter, no history
            r._grad_fn = err
            r._output_nr = i
            results.append(r)
        return tuple(results)

    return wrapper
