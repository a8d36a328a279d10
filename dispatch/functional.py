"""Module-level operator functions, as ``torch.add``, ``torch.mul`` ... — thin
wrappers over the Tensor methods, with ``out=`` where the operator has an out
variant."""

from __future__ import annotations

from typing import Any

from dispatch.dtypes import DType
from dispatch.tensorimpl import _NO_DIM, Tensor, _call, _w

__all__ = [
    "add",
    "clone",
    "cos",
    "div",
    "exp",
    "log",
    "matmul",
    "mean",
    "mul",
    "neg",
    "pow",
    "relu",
    "sigmoid",
    "sin",
    "sub",
    "sum",
    "tanh",
]


def add(input: Tensor, other: Any, *, alpha: Any = 1, out: Tensor | None = None) -> Tensor:
    if out is not None:
        return _call("add.out", (_w(input), _w(other), alpha, out))
    return _w(input).add(other, alpha=alpha)


def mul(input: Tensor, other: Any, *, out: Tensor | None = None) -> Tensor:
    if out is not None:
        return _call("mul.out", (_w(input), _w(other), out))
    return _w(input).mul(other)


def sub(input: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    return _w(input).sub(other, alpha=alpha)


def div(input: Tensor, other: Any) -> Tensor:
    return _w(input).div(other)


def pow(input: Any, exponent: Any) -> Tensor:
    if isinstance(input, Tensor):
        return input.pow(exponent)
    return _call("pow.Scalar", (input, exponent))


def matmul(input: Tensor, other: Tensor) -> Tensor:
    return input.matmul(other)


def neg(input: Tensor) -> Tensor:
    return input.neg()


def exp(input: Tensor) -> Tensor:
    return input.exp()


def log(input: Tensor) -> Tensor:
    return input.log()


def sin(input: Tensor) -> Tensor:
    return input.sin()


def cos(input: Tensor) -> Tensor:
    return input.cos()


def relu(input: Tensor) -> Tensor:
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sum(
    input: Tensor, dim: Any = _NO_DIM, keepdim: bool = False, *, dtype: DType | None = None
) -> Tensor:
    return input.sum(dim, keepdim, dtype=dtype)


def mean(
    input: Tensor, dim: Any = _NO_DIM, keepdim: bool = False, *, dtype: DType | None = None
) -> Tensor:
    return input.mean(dim, keepdim, dtype=dtype)


def clone(input: Tensor) -> Tensor:
    return input.clone()
