"""dispatchsim: PyTorch's dispatcher, rebuilt in Python on numpy tensors.

``import dispatch`` gives tensors, the operator registry and the dispatcher;
it loads the standard operator set (``kernels``) on import.
"""

from __future__ import annotations

from dispatch.dispatcher import OpOverload, OpOverloadPacket, ops, redispatch
from dispatch.dtypes import DType, bool_, float16, float32, float64, int32, int64
from dispatch.factories import (
    arange,
    empty,
    full,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from dispatch.functional import (
    add,
    clone,
    cos,
    div,
    exp,
    log,
    matmul,
    mean,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sin,
    sub,
    sum,
    tanh,
)
from dispatch.introspect import (
    Explanation,
    KernelChoice,
    dump,
    dump_table,
    explain,
    registered_keys,
)
from dispatch.keys import DispatchKey
from dispatch.keyset import (
    DispatchKeySet,
    after_ADInplaceOrView_keyset,
    after_autograd_keyset,
    autograd_dispatch_keyset,
    autograd_dispatch_keyset_with_ADInplaceOrView,
    default_excluded_set,
    default_included_set,
    get_runtime_dispatch_keyset,
)
from dispatch.library import Library
from dispatch.operator import fallthrough_kernel
from dispatch.schema import FunctionSchema, SchemaParseError, parse_schema
from dispatch.tensorimpl import CreationMeta, Device, Size, Tensor
from dispatch.tls import LocalDispatchKeySet, tls_local_dispatch_key_set
from dispatch.trace import (
    ArgKeySet,
    DispatchEvent,
    Effect,
    GradFnRecorded,
    KeySetFormation,
    SavedVariableRecorded,
    TensorAllocated,
    Trace,
    VersionBump,
    ViewTracked,
    trace,
)

bool = bool_
float = float32
double = float64
long = int64

__all__ = [
    "ArgKeySet",
    "CreationMeta",
    "DType",
    "Device",
    "DispatchEvent",
    "DispatchKey",
    "DispatchKeySet",
    "Effect",
    "Explanation",
    "FunctionSchema",
    "GradFnRecorded",
    "KernelChoice",
    "KeySetFormation",
    "Library",
    "LocalDispatchKeySet",
    "OpOverload",
    "OpOverloadPacket",
    "SavedVariableRecorded",
    "SchemaParseError",
    "Size",
    "Tensor",
    "TensorAllocated",
    "Trace",
    "VersionBump",
    "ViewTracked",
    "add",
    "after_ADInplaceOrView_keyset",
    "after_autograd_keyset",
    "arange",
    "autograd_dispatch_keyset",
    "autograd_dispatch_keyset_with_ADInplaceOrView",
    "bool_",
    "clone",
    "cos",
    "default_excluded_set",
    "default_included_set",
    "div",
    "double",
    "dump",
    "dump_table",
    "empty",
    "exp",
    "explain",
    "fallthrough_kernel",
    "float16",
    "float32",
    "float64",
    "full",
    "get_runtime_dispatch_keyset",
    "int32",
    "int64",
    "log",
    "long",
    "manual_seed",
    "matmul",
    "mean",
    "mul",
    "neg",
    "ones",
    "ones_like",
    "ops",
    "parse_schema",
    "pow",
    "rand",
    "randn",
    "redispatch",
    "registered_keys",
    "relu",
    "sigmoid",
    "sin",
    "sub",
    "sum",
    "tanh",
    "tensor",
    "tls_local_dispatch_key_set",
    "trace",
    "zeros",
    "zeros_like",
]


# The one place `dispatch` loads the standard operator set.
import kernels as _kernels  # noqa: E402

_kernels.load()

# DISPATCHSIM_SHOW_DISPATCH_TRACE=1: print every dispatch to stderr from now on.
from dispatch.trace import install_env_printer as _install_env_printer  # noqa: E402

_install_env_printer()
