"""Tensors: mirrors ``c10::TensorImpl`` with its ``VariableVersion`` and the
autograd metadata of ``torch::autograd::AutogradMeta`` / ``DifferentiableViewMeta``
(c10/core/TensorImpl.h, torch/csrc/autograd/variable.h).

A :class:`Tensor` is a numpy array plus a raw dispatch key set, a shared
version counter and view/autograd metadata. Its methods only bind arguments
and call operators: what a call *does* is decided by the keys that run.

Allocation follows ``TensorImpl``'s constructor: a non-view tensor allocated
while inference mode is on gets only its backend key and no version counter
(an *inference tensor*); otherwise it also gets ADInplaceOrView and its
backend's autograd key, and a version counter starting at 0.
"""

from __future__ import annotations

import enum
import math
import numbers
import operator
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from dispatch import dispatcher as _d
from dispatch import dtypes as _dt
from dispatch.dtypes import DType
from dispatch.keys import DEVICE_BACKEND, DispatchKey
from dispatch.keyset import RAW_ADINPLACEORVIEW, RAW_AUTOGRAD, DispatchKeySet
from dispatch.tls import per_thread as _per_thread

if TYPE_CHECKING:
    from dispatch.operator import OperatorEntry

__all__ = ["CreationMeta", "Device", "Size", "Tensor", "VersionCounter"]


class _NoDim:
    """The default of ``sum``/``mean``'s ``dim``: no dim given. torch picks the overload
    without dims then (``SumBackward0``); an explicit ``dim=None`` picks the dim overload
    (``SumBackward1``), so ``None`` cannot be the default."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no dim>"


_NO_DIM: Final[Any] = _NoDim()


def _no_dim_none(dim: Any) -> Any:
    return None if dim is _NO_DIM else dim


class VersionCounter:
    """``c10::VariableVersion``: one counter shared by a tensor, its views and detach()es."""

    __slots__ = ("version",)

    def __init__(self, version: int = 0) -> None:
        self.version = version

    def __repr__(self) -> str:
        return f"VersionCounter({self.version})"


class CreationMeta(enum.IntEnum):
    """``torch::autograd::CreationMeta``: how a view was made, which decides
    whether it may later be modified in place."""

    DEFAULT = 0
    IN_CUSTOM_FUNCTION = 1
    MULTI_OUTPUT_NODE = 2
    NO_GRAD_MODE = 3
    INFERENCE_MODE = 4

    def __str__(self) -> str:
        return f"CreationMeta.{self.name}"


class Size(tuple[int, ...]):
    """``torch.Size``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"dispatch.Size([{', '.join(str(d) for d in self)}])"

    def numel(self) -> int:
        return math.prod(self)


class Device:
    """``torch.device``: compares equal to its type string."""

    __slots__ = ("type",)
    type: str

    def __init__(self, type: str | Device) -> None:
        t = type.type if isinstance(type, Device) else str(type).split(":")[0]
        if t not in DEVICE_BACKEND:
            raise RuntimeError(
                f"Expected one of cpu, meta device type at start of device string: {type}"
            )
        object.__setattr__(self, "type", t)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Device):
            return self.type == other.type
        if isinstance(other, str):
            return self.type == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.type)

    def __repr__(self) -> str:
        return f"device(type='{self.type}')"

    def __str__(self) -> str:
        return self.type


_CPU_DEVICE: Final = Device("cpu")
_META_DEVICE: Final = Device("meta")
_CPU_BIT: Final = DispatchKey.CPU.bit
_META_BIT: Final = DispatchKey.Meta.bit
_NORMAL_CPU: Final = _CPU_BIT | RAW_ADINPLACEORVIEW | DispatchKey.AutogradCPU.bit
_NORMAL_META: Final = _META_BIT | RAW_ADINPLACEORVIEW | DispatchKey.AutogradMeta.bit
_AUTOGRAD_RELATED: Final = RAW_AUTOGRAD | RAW_ADINPLACEORVIEW


class Tensor:
    """A tensor over a numpy array (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "_attr_version",
        "_base",
        "_creation_meta",
        "_data",
        "_grad",
        "_grad_accumulator",
        "_grad_fn",
        "_is_wrapped_number",
        "_keys",
        "_output_nr",
        "_requires_grad",
        "_retains_grad",
        "_version_counter",
    )

    _data: np.ndarray[Any, Any]
    _keys: int
    _version_counter: VersionCounter | None
    _base: Tensor | None
    _creation_meta: CreationMeta
    _requires_grad: bool
    _grad: Tensor | None
    _grad_fn: Any
    _grad_accumulator: Any
    _output_nr: int
    _retains_grad: bool
    _is_wrapped_number: bool
    _attr_version: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "dispatch.Tensor is not constructed directly; use dispatch.tensor(data), "
            "dispatch.ones(...), dispatch.empty(...)"
        )

    # -- construction (allocation) --------------------------------------------------------
    @classmethod
    def _make(cls, data: np.ndarray[Any, Any], keys: int, vc: VersionCounter | None) -> Tensor:
        return _alloc(data, keys, vc)

    # -- identity -------------------------------------------------------------------------
    @property
    def key_set(self) -> DispatchKeySet:
        return DispatchKeySet.from_raw(self._keys)

    @property
    def device(self) -> Device:
        # devices are immutable: one object per type (autograd records one per output)
        return _META_DEVICE if self._keys & _META_BIT else _CPU_DEVICE

    @property
    def is_meta(self) -> bool:
        return bool(self._keys & _META_BIT)

    @property
    def is_cpu(self) -> bool:
        return not self._keys & _META_BIT

    @property
    def dtype(self) -> DType:
        return _dt.from_numpy(self._data.dtype)

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None) -> Any:
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    def stride(self, dim: int | None = None) -> Any:
        a = self._data
        if a.size == 0:  # numpy gives empty arrays zero strides; torch keeps contiguous ones
            acc, out = 1, []
            for d in reversed(a.shape):
                out.append(acc)
                acc *= max(d, 1)
            strides = tuple(reversed(out))
        else:
            item = a.itemsize
            strides = tuple(s // item for s in a.strides)
        return strides if dim is None else strides[_wrap_dim(dim, self._data.ndim)]

    def dim(self) -> int:
        return self._data.ndim

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def nelement(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return int(self._data.itemsize)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_contiguous(self) -> bool:
        return bool(self._data.flags["C_CONTIGUOUS"])

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self._data.shape[0])

    # -- inference / versions / views -----------------------------------------------------
    def is_inference(self) -> bool:
        """``TensorImpl::is_inference``: carries neither ADInplaceOrView nor an autograd key."""
        return not self._keys & _AUTOGRAD_RELATED

    @property
    def _version(self) -> int:
        vc = self._version_counter
        if vc is None:
            raise RuntimeError("Inference tensors do not track version counter.")
        return vc.version

    def _is_view(self) -> bool:
        return self._base is not None

    # -- autograd metadata (the Autograd key gives these their meaning) ---------------------
    @property
    def requires_grad(self) -> bool:
        if self._requires_grad or self._grad_fn is not None:
            return True
        base = self._base
        return base is not None and base.requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.is_inference() and not _per_thread.state.inference_mode:
            raise RuntimeError(
                "Setting requires_grad=True on inference tensor outside InferenceMode is not allowed."
            )
        if self._grad_fn is not None:  # the stored grad_fn, as torch's is_leaf() here
            if requires_grad:
                return self
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad_fn(self) -> Any:
        if self._base is None:
            return self._grad_fn
        # a view's grad_fn is regenerated after its base changed in place
        return variable_hooks.current_grad_fn(self)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def retain_grad(self) -> None:
        """Keep ``.grad`` for a non-leaf tensor after backward (a no-op on leaves)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        # the stored grad_fn decides leafness here (VariableHooks::is_leaf), then grad_fn()
        # (which regenerates a stale view's) receives the hook
        if self._grad_fn is None or self._retains_grad:
            return
        fn = self.grad_fn
        import weakref

        ref = weakref.ref(self)

        def retain(grad: Tensor) -> None:
            t = ref()
            if t is not None:
                t._grad = grad.clone() if t._grad is None else t._grad + grad

        fn.add_retains_grad_hook(self._output_nr, retain)
        self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """``Tensor.backward``: accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        variable_hooks.backward(self, gradient, retain_graph, create_graph, inputs)

    @property
    def data(self) -> Tensor:
        """``Tensor.data``: the same memory, detached, with a version counter of its own
        (so changes through it are invisible to autograd — PyTorch's behaviour)."""
        keys = self._keys
        out = Tensor._make(self._data, keys, VersionCounter() if keys & _AUTOGRAD_RELATED else None)
        return out

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(
                f"assigned grad expected to be a Tensor or None but got {type(value).__name__}"
            )
        self._grad = value

    @property
    def output_nr(self) -> int:
        return self._output_nr

    # -- conversion -----------------------------------------------------------------------
    def numpy(self) -> np.ndarray[Any, Any]:
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        if self.is_meta:
            raise TypeError(
                "can't convert meta device type tensor to numpy. Use Tensor.cpu() to copy the "
                "tensor to host memory first."
            )
        return self._data

    def item(self) -> Any:
        if self._data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        if self.is_meta:
            raise RuntimeError("Tensor.item() cannot be called on meta tensors")
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        if self.is_meta:
            raise RuntimeError("Tensor.tolist() cannot be called on meta tensors")
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __repr__(self) -> str:
        from dispatch._format import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    def __hash__(self) -> int:
        return id(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        a = self.detach().numpy()
        return a if dtype is None else a.astype(dtype)

    # -- pointwise arithmetic ---------------------------------------------------------------
    def add(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return _call("add.Tensor", (self, _w(other), alpha))

    def add_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return _call("add_.Tensor", (self, _w(other), alpha))

    def sub(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return _call("sub.Tensor", (self, _w(other), alpha))

    def sub_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        return _call("sub_.Tensor", (self, _w(other), alpha))

    def mul(self, other: Any) -> Tensor:
        return _call("mul.Tensor", (self, _w(other)))

    def mul_(self, other: Any) -> Tensor:
        return _call("mul_.Tensor", (self, _w(other)))

    def div(self, other: Any) -> Tensor:
        return _call("div.Tensor", (self, _w(other)))

    def div_(self, other: Any) -> Tensor:
        return _call("div_.Tensor", (self, _w(other)))

    def pow(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return _call("pow.Tensor_Tensor", (self, exponent))
        return _call("pow.Tensor_Scalar", (self, _scalar(exponent)))

    def pow_(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return _call("pow_.Tensor", (self, exponent))
        return _call("pow_.Scalar", (self, _scalar(exponent)))

    def neg(self) -> Tensor:
        return _call("neg", (self,))

    def neg_(self) -> Tensor:
        return _call("neg_", (self,))

    def reciprocal(self) -> Tensor:
        return _call("reciprocal", (self,))

    def exp(self) -> Tensor:
        return _call("exp", (self,))

    def exp_(self) -> Tensor:
        return _call("exp_", (self,))

    def log(self) -> Tensor:
        return _call("log", (self,))

    def sin(self) -> Tensor:
        return _call("sin", (self,))

    def cos(self) -> Tensor:
        return _call("cos", (self,))

    def relu(self) -> Tensor:
        return _call("relu", (self,))

    def relu_(self) -> Tensor:
        return _call("relu_", (self,))

    def sigmoid(self) -> Tensor:
        return _call("sigmoid", (self,))

    def tanh(self) -> Tensor:
        return _call("tanh", (self,))

    def eq(self, other: Any) -> Tensor:
        return _call("eq.Tensor", (self, _w(other)))

    def ne(self, other: Any) -> Tensor:
        return _call("ne.Tensor", (self, _w(other)))

    def lt(self, other: Any) -> Tensor:
        return _call("lt.Tensor", (self, _w(other)))

    def le(self, other: Any) -> Tensor:
        return _call("le.Tensor", (self, _w(other)))

    def gt(self, other: Any) -> Tensor:
        return _call("gt.Tensor", (self, _w(other)))

    def ge(self, other: Any) -> Tensor:
        return _call("ge.Tensor", (self, _w(other)))

    # -- reductions / linear algebra ----------------------------------------------------------
    # an explicit dim, even None, selects the dim overload (torch's argument parser): x.sum()
    # is SumBackward0, x.sum(None) SumBackward1
    def sum(
        self, dim: Any = _NO_DIM, keepdim: bool = False, *, dtype: DType | None = None
    ) -> Tensor:
        if dim is _NO_DIM and not keepdim:
            return _call("sum", (self, dtype))
        return _call("sum.dim_IntList", (self, _dims(_no_dim_none(dim)), keepdim, dtype))

    def mean(
        self, dim: Any = _NO_DIM, keepdim: bool = False, *, dtype: DType | None = None
    ) -> Tensor:
        if dim is _NO_DIM and not keepdim:
            return _call("mean", (self, dtype))
        return _call("mean.dim", (self, _dims(_no_dim_none(dim)), keepdim, dtype))

    def any(self) -> Tensor:
        return _call("any", (self,))

    def all(self) -> Tensor:
        return _call("all", (self,))

    def matmul(self, other: Tensor) -> Tensor:
        return _call("matmul", (self, other))

    def mm(self, mat2: Tensor) -> Tensor:
        return _call("mm", (self, mat2))

    def mv(self, vec: Tensor) -> Tensor:
        return _call("mv", (self, vec))

    def dot(self, other: Tensor) -> Tensor:
        return _call("dot", (self, other))

    def bmm(self, mat2: Tensor) -> Tensor:
        return _call("bmm", (self, mat2))

    # -- copies ---------------------------------------------------------------------------------
    def clone(self, *, memory_format: Any = None) -> Tensor:
        return _call("clone", (self, memory_format))

    def contiguous(self, memory_format: Any = "contiguous_format") -> Tensor:
        return _call("contiguous", (self, memory_format))

    def detach(self) -> Tensor:
        return _call("detach", (self,))

    def detach_(self) -> Tensor:
        return _call("detach_", (self,))

    def copy_(self, src: Any, non_blocking: bool = False) -> Tensor:
        return _call("copy_", (self, _w(src), non_blocking))

    def zero_(self) -> Tensor:
        return _call("zero_", (self,))

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor):
            return _call("fill_.Tensor", (self, value))
        return _call("fill_.Scalar", (self, _scalar(value)))

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        for a in args:
            if isinstance(a, DType):
                dtype = a
            elif isinstance(a, str | Device):
                device = a
            else:
                raise TypeError(f"to() received an invalid argument {a!r}")
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        same_dtype = dtype is None or dtype == self.dtype
        same_device = device is None or Device(device) == self.device
        if same_dtype and same_device:
            return self
        return _call(
            "_to_copy",
            (self, dtype, None, None if device is None else str(Device(device)), None, False, None),
        )

    def float(self) -> Tensor:
        return self.to(_dt.float32)

    def double(self) -> Tensor:
        return self.to(_dt.float64)

    def long(self) -> Tensor:
        return self.to(_dt.int64)

    def bool(self) -> Tensor:
        return self.to(_dt.bool_)

    # -- views ----------------------------------------------------------------------------------
    def view(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and type(shape[0]) is int:  # view(-1): no size list to parse
            return _call("view", (self, [shape[0]]))
        if len(shape) == 1 and isinstance(shape[0], DType):
            raise NotImplementedError("view(dtype) is not modelled by dispatchsim")
        return _call("view", (self, _shape(shape)))

    def as_strided(self, size: Any, stride: Any, storage_offset: int | None = None) -> Tensor:
        return _call("as_strided", (self, _shape([size]), _shape([stride]), storage_offset))

    def storage_offset(self) -> int:
        """Elements from the start of the view family's storage (its base's first element)."""
        a = self._data
        root = (self._base if self._base is not None else self)._data
        start: int = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return start // a.itemsize

    def view_as(self, other: Tensor) -> Tensor:
        return _call("view_as", (self, other))

    def reshape(self, *shape: Any) -> Tensor:
        return _call("reshape", (self, _shape(shape)))

    def t(self) -> Tensor:
        return _call("t", (self,))

    def t_(self) -> Tensor:
        return _call("t_", (self,))

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.dim())))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _call("transpose.int", (self, dim0, dim1))

    def transpose_(self, dim0: int, dim1: int) -> Tensor:
        return _call("transpose_", (self, dim0, dim1))

    def permute(self, *dims: Any) -> Tensor:
        return _call("permute", (self, _shape(dims)))

    def unsqueeze(self, dim: int) -> Tensor:
        return _call("unsqueeze", (self, dim))

    def unsqueeze_(self, dim: int) -> Tensor:
        return _call("unsqueeze_", (self, dim))

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return _call("squeeze", (self,))
        return _call("squeeze.dim", (self, dim))

    def squeeze_(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return _call("squeeze_", (self,))
        return _call("squeeze_.dim", (self, dim))

    def expand(self, *sizes: Any) -> Tensor:
        return _call("expand", (self, _shape(sizes), False))

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(*other.shape)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        return _call("narrow", (self, dim, start, length))

    def select(self, dim: int, index: int) -> Tensor:
        return _call("select.int", (self, dim, index))

    def split(self, split_size: Any, dim: int = 0) -> tuple[Tensor, ...]:
        if isinstance(split_size, int):
            return tuple(_call_list("split.Tensor", (self, split_size, dim)))
        return tuple(_call_list("split_with_sizes", (self, list(split_size), dim)))

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return tuple(_call_list("chunk", (self, chunks, dim)))

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        return tuple(_call_list("unbind.int", (self, dim)))

    def __getitem__(self, index: Any) -> Tensor:
        return _getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        # torch's copy_to: one in-place op (copy_ or fill_) into the indexed view, one bump
        _setitem(self, index, value)

    # -- operators ------------------------------------------------------------------------------
    # (aliases where the operator is the method: `a + b` is one Python call, not two)
    __add__ = add

    __radd__ = add

    __iadd__ = add_

    __sub__ = sub

    def __rsub__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other.sub(self)
        return _call("rsub.Scalar", (self, _scalar(other), 1))

    __isub__ = sub_

    __mul__ = mul

    __rmul__ = mul

    __imul__ = mul_

    __truediv__ = div

    def __rtruediv__(self, other: Any) -> Tensor:
        # torch: reciprocal, then a multiplication by the number
        if isinstance(other, Tensor):
            return other.div(self)
        return self.reciprocal().mul(other)

    __itruediv__ = div_

    __pow__ = pow

    def __rpow__(self, base: Any) -> Tensor:
        return _call("pow.Scalar", (_scalar(base), self))

    __ipow__ = pow_

    __matmul__ = matmul

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return _w(other).matmul(self)

    __neg__ = neg

    def __pos__(self) -> Tensor:
        return self

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self.eq(other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self.ne(other)

    def __lt__(self, other: Any) -> Tensor:
        return self.lt(other)

    def __le__(self, other: Any) -> Tensor:
        return self.le(other)

    def __gt__(self, other: Any) -> Tensor:
        return self.gt(other)

    def __ge__(self, other: Any) -> Tensor:
        return self.ge(other)


# ---------------------------------------------------------------------------------------------
# Allocation: TensorImpl's constructor decides the key set from the inference-mode flag.
# ---------------------------------------------------------------------------------------------
_new_object: Final = object.__new__


def _alloc(data: np.ndarray[Any, Any], keys: int, vc: VersionCounter | None) -> Tensor:
    """A new tensor object (TensorImpl's constructor): the allocation functions below call
    this directly, without the classmethod's binding, as they run for every op's result."""
    t: Tensor = _new_object(Tensor)
    t._data = data
    t._keys = keys
    t._version_counter = vc
    t._base = None
    t._creation_meta = CreationMeta.DEFAULT
    t._requires_grad = False
    t._grad = None
    t._grad_fn = None
    t._grad_accumulator = None
    t._output_nr = 0
    t._retains_grad = False
    t._is_wrapped_number = False
    t._attr_version = 0
    return t


def new_tensor(data: np.ndarray[Any, Any], device: str = "cpu") -> Tensor:
    """Allocate a non-view tensor over ``data`` on ``device`` (``at::empty`` + fill)."""
    meta = device == "meta"
    if _per_thread.state.inference_mode:
        return _alloc(data, _META_BIT if meta else _CPU_BIT, None)
    return _alloc(data, _NORMAL_META if meta else _NORMAL_CPU, VersionCounter())


def new_cpu_tensor(data: np.ndarray[Any, Any]) -> Tensor:
    """``new_tensor(data, "cpu")``, inlined for the CPU kernels' hot path."""
    if _per_thread.state.inference_mode:
        return _alloc(data, _CPU_BIT, None)
    return _alloc(data, _NORMAL_CPU, VersionCounter())


def new_view_tensor(data: np.ndarray[Any, Any], base: Tensor) -> Tensor:
    """``alias_with_sizes_and_strides``: a new TensorImpl over the base's memory
    with the base's key set. It is not a view yet: ADInplaceOrView makes it one
    (shares the version counter, records ``_base``); without that key it keeps a
    counter of its own, as under AutoDispatchBelowADInplaceOrView."""
    keys = base._keys
    return _alloc(data, keys, VersionCounter() if keys & _AUTOGRAD_RELATED else None)


def meta_array(shape: Sequence[int], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """The array of a meta tensor: its shape, dtype and logical (contiguous) strides over a
    one-element buffer, read-only. Views of it are computed by numpy as for real data, so
    strides and contiguity behave as on CPU; its elements are never read (meta kernels are
    shape-only, and every data accessor refuses a meta tensor)."""
    shape = tuple(shape)
    itemsize = np.dtype(dtype).itemsize
    strides = []
    acc = itemsize
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    buffer = np.zeros(1, dtype=dtype)
    return np.lib.stride_tricks.as_strided(
        buffer, shape=shape, strides=tuple(reversed(strides)), writeable=False
    )


def wrap_number(value: bool | int | float) -> Tensor:
    """``scalar_to_tensor`` + ``set_wrapped_number``: a 0-dim CPU tensor, allocated
    like any other, that loses type promotion to real tensors."""
    if isinstance(value, bool):
        arr = np.array(value, dtype=np.bool_)
    elif isinstance(value, int):
        arr = np.array(value, dtype=np.int64)
    else:
        arr = np.array(value, dtype=np.float64)
    t = new_cpu_tensor(arr)
    t._is_wrapped_number = True
    return t


def _w(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, bool | int | float):
        return wrap_number(x)
    if isinstance(x, numbers.Real):
        return wrap_number(float(x))
    raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")


def _scalar(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.item()
    if isinstance(x, bool | int | float):
        return x
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"expected a Python number, got {type(x).__name__}")


def _shape(args: Sequence[Any]) -> list[int]:
    if len(args) == 1:
        first = args[0]
        if type(first) is int:  # view(-1), reshape(n): the common case
            return [first]
        if isinstance(first, list | tuple | Size):
            args = first
    out = []
    for a in args:
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise TypeError(f"expected a sequence of ints, got element {a!r}")
        out.append(int(a))
    return out


def _dims(dim: Any) -> list[int] | None:
    if dim is None:
        return None
    if isinstance(dim, int):
        return [dim]
    return [int(d) for d in dim]


def _wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim + n if dim < 0 else dim


class _NoAutograd:
    """Stands in until ``kernels`` installs the autograd hooks (``VariableHooksRegisterer``)."""

    @staticmethod
    def current_grad_fn(t: Tensor) -> Any:
        return t._grad_fn

    @staticmethod
    def backward(*args: Any) -> None:
        raise RuntimeError("autograd is not loaded")


variable_hooks: Any = _NoAutograd()

_ENTRIES: dict[str, OperatorEntry] = {}


def _call_any(name: str, args: tuple[Any, ...]) -> Any:
    """Call ``aten::<name>`` with an already-complete argument tuple."""
    entry = _ENTRIES.get(name)
    if entry is None or entry.binder is None:
        entry = _d.dispatcher.find_schema("aten::" + name)
        _ENTRIES[name] = entry
    return _d.call(entry, args)


if TYPE_CHECKING:

    def _call(name: str, args: tuple[Any, ...]) -> Tensor:
        """Call an operator that returns one tensor."""

    def _call_list(name: str, args: tuple[Any, ...]) -> list[Tensor]:
        """Call an operator that returns ``Tensor[]``."""

else:  # typed aliases: every Tensor method calls one, so no wrapper frame at run time
    _call = _call_list = _call_any


# ---------------------------------------------------------------------------------------------
# Basic indexing: torch/csrc/autograd/python_variable_indexing.cpp (THPVariable_getitem /
# THPVariable_setitem, applySlicing, valueToTensor) over aten/src/ATen/TensorIndexing.h
# (applySelect, applySlice, handleDimInMultiDimIndexing, copy_to, slicePrefix1sSize)
# ---------------------------------------------------------------------------------------------
_INDEX_MAX: Final = 2**63 - 1  # PY_SSIZE_T_MAX: a slice's missing stop


def _invalid_index(obj: Any) -> IndexError:
    return IndexError(
        "only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
        f"are valid indices (got {type(obj).__name__})"
    )


def _is_long(obj: Any) -> bool:
    """``THPUtils_checkLong``: a Python or numpy integer (not a bool, not a tensor)."""
    return isinstance(obj, int | np.integer) and not isinstance(obj, bool | np.bool_)


def _unpack_slice(s: slice) -> tuple[int, int, int]:
    """``PySlice_Unpack``: missing parts filled in for a positive step."""
    start, stop, step = s.start, s.stop, s.step
    if step is None and type(start) is int:  # a[i:], a[i:j]: the common slices
        if stop is None:
            return start, _INDEX_MAX, 1
        if type(stop) is int:
            return start, stop, 1
    step = 1 if s.step is None else operator.index(s.step)
    if step == 0:
        raise ValueError("slice step cannot be zero")
    start = (0 if step > 0 else _INDEX_MAX) if s.start is None else operator.index(s.start)
    stop = (
        (_INDEX_MAX if step > 0 else -_INDEX_MAX - 1) if s.stop is None else operator.index(s.stop)
    )
    return start, stop, step


def _size_at(sizes: Sequence[int], dim: int) -> int:
    # torch reads sizes[dim] unchecked; past the last dimension (only reachable with several
    # ellipses) it reads an unused, zero slot of the inline size storage
    return sizes[dim] if 0 <= dim < len(sizes) else 0


def _apply_select(t: Tensor, dim: int, index: int, real_dim: int) -> Tensor:
    """``impl::applySelect``; ``real_dim`` is the position in the index tuple."""
    sizes = t.shape
    if index == 0 and dim == 0 and len(sizes) == 0:
        raise IndexError(
            "invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
            "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number"
        )
    size = _size_at(sizes, dim)
    if not (size > -1 - index and size > index):
        raise IndexError(
            f"index {index} is out of bounds for dimension {real_dim} with size {size}"
        )
    return _call("select.int", (t, dim, index))


def _apply_slice(t: Tensor, dim: int, s: slice, disable_slice_optimization: bool) -> Tensor:
    """``impl::applySlice``: a slice over the whole dimension returns ``t`` itself unless
    the optimisation is disabled (a lone slice in getitem)."""
    start, stop, step = _unpack_slice(s)
    if step <= 0:
        raise ValueError("step must be greater than zero")
    if not disable_slice_optimization:
        sizes = t._data.shape
        if len(sizes) > 0 and start == 0 and _size_at(sizes, dim) <= stop and step == 1:
            return t
    return _call("slice.Tensor", (t, dim, start, stop, step))


def _specified_dims(index: tuple[Any, ...]) -> int:
    """``count_specified_dimensions``: everything but None, Ellipsis and bools."""
    return sum(1 for i in index if i is not None and i is not Ellipsis and not isinstance(i, bool))


def _apply_slicing(t: Tensor, index: tuple[Any, ...]) -> Tensor:
    """``applySlicing``: each element of the index tuple in turn
    (``handleDimInMultiDimIndexing``); ``dim`` is the position in the result."""
    specified = _specified_dims(index)
    if specified > t.dim():
        raise IndexError(f"too many indices for tensor of dimension {t.dim()}")
    result = t
    dim = 0
    for real_dim, obj in enumerate(index):
        if _is_long(obj):
            result = _apply_select(result, dim, int(obj), real_dim)
        elif isinstance(obj, slice):
            result = _apply_slice(result, dim, obj, disable_slice_optimization=False)
            dim += 1
        elif obj is Ellipsis:
            dim += t.dim() - specified
        elif obj is None:
            result = _call("unsqueeze", (result, dim))
            dim += 1
        elif (
            isinstance(obj, Tensor)
            and obj.dim() == 0
            and not obj.is_floating_point()
            and obj.dtype is not _dt.bool_
        ):
            result = _apply_select(result, dim, int(obj.item()), real_dim)
        elif isinstance(obj, Tensor | bool | list | tuple):
            # advanced indexing (tensors, sequences, bools) is not modelled
            raise _invalid_index(obj)
        else:
            try:
                k = operator.index(obj)  # PyNumber_Index
            except TypeError:
                raise _invalid_index(obj) from None
            result = _apply_select(result, dim, k, real_dim)
    return result


def _as_index_tuple(index: Any) -> tuple[Any, ...]:
    return index if isinstance(index, tuple) else (index,)


def _getitem(t: Tensor, index: Any) -> Tensor:
    """``THPVariable_getitem`` (basic indexing)."""
    if index is None:
        return _call("unsqueeze", (t, 0))
    if index is Ellipsis:
        return _call("alias", (t,))
    if _is_long(index):
        return _apply_select(t, 0, int(index), 0)
    if isinstance(index, slice):
        return _apply_slice(t, 0, index, disable_slice_optimization=True)
    sliced = _apply_slicing(t, _as_index_tuple(index))
    if sliced is t:
        # ensure we return a shallow copy for things like x[...]
        sliced = _call("alias", (t,))
    return sliced


def _type_string(t: Tensor) -> str:
    """``options_to_string``: ``torch.DoubleTensor``, ``torch.meta.FloatTensor``."""
    names = {"float16": "Half", "float32": "Float", "float64": "Double", "int32": "Int"}
    name = names.get(t.dtype.name, {"int64": "Long", "bool": "Bool"}.get(t.dtype.name, ""))
    return f"torch.{'meta.' if t.is_meta else ''}{name}Tensor"


def _value_to_tensor(t: Tensor, value: Any) -> Tensor:
    """``valueToTensor``: a tensor as is; a Python number becomes a (non-wrapped) 0-dim
    tensor of ``t``'s dtype on ``t``'s device."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool | int | np.integer):
        scalar: Any = int(value)
    elif isinstance(value, float | np.floating):
        scalar = float(value)
    else:
        raise TypeError(f"can't assign a {type(value).__name__} to a {_type_string(t)}")
    dtype = t.dtype.numpy
    if t.is_meta:
        return new_tensor(meta_array((), dtype), "meta")
    return new_tensor(np.array(scalar).astype(dtype))


def _slice_prefix_1s_size(sizes: Sequence[int]) -> list[int]:
    """``slicePrefix1sSize``: numpy's leading unit dimensions of a value dropped."""
    first = next((i for i, n in enumerate(sizes) if n != 1), len(sizes))
    return list(sizes[first:])


def _copy_to(dst: Tensor, src: Tensor) -> None:
    """``at::indexing::copy_to``: same shape -> copy_; a 0-dim CPU value -> fill_; else the
    value viewed without leading 1s, expanded to the destination (``expand_inplace``), copied."""
    if dst.shape == src.shape:
        dst.copy_(src)
        return
    if src.dim() == 0 and src.is_cpu:
        _call("fill_.Tensor", (dst, src))
        return
    src_view = src.view(_slice_prefix_1s_size(src.shape))
    if src_view.shape != dst.shape:
        src_view = src_view.expand(*dst.shape)
    dst.copy_(src_view)


def _setitem(t: Tensor, index: Any, py_value: Any) -> None:
    """``THPVariable_setitem`` (basic indexing): the value converted first, the indexed view
    computed as getitem does (but a lone slice keeps the whole-dimension optimisation and
    nothing is aliased), then ``copy_to``."""
    value = _value_to_tensor(t, py_value)
    if index is False:
        return
    if index is Ellipsis:
        _copy_to(t, value)
    elif index is None or index is True:
        _copy_to(_call("unsqueeze", (t, 0)), value)
    elif _is_long(index):
        _copy_to(_apply_select(t, 0, int(index), 0), value)
    elif isinstance(index, slice):
        _copy_to(_apply_slice(t, 0, index, disable_slice_optimization=False), value)
    else:
        _copy_to(_apply_slicing(t, _as_index_tuple(index)), value)
