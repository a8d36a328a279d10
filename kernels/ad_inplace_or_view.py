"""The ADInplaceOrView kernel: mirrors the generated ``ADInplaceOrViewType``
code (torch/csrc/autograd/generated/ADInplaceOrViewType_*.cpp) and ``as_view``
/ ``increment_version`` (torch/csrc/autograd/VariableTypeUtils.h).

ONE generic kernel, derived from the schema, serves every operator:

* a mutable argument ``Tensor(a!)`` has its version bumped once, after the
  backend ran;
* an aliasing return ``Tensor(a)`` becomes a view of its argument: it records
  ``_base`` and the creation meta and shares the base's version counter —
  unless the base is an inference tensor (no view tracking).

It runs under ``AutoDispatchBelowADInplaceOrView`` as PyTorch's does, so
operators a backend kernel calls do not re-enter Autograd or this key.

One deliberate difference from PyTorch: mutating an inference tensor outside
inference mode raises *before* the backend touches the data (PyTorch's check
lives in ``VariableVersion::bump()`` and fires after the mutation).
"""

from __future__ import annotations

from typing import Any, Final

from dispatch.dispatcher import redispatch_raw
from dispatch.keys import DispatchKey
from dispatch.keyset import RAW_AFTER_ADINPLACEORVIEW, RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
from dispatch.operator import KernelFunction, OperatorEntry
from dispatch.tensorimpl import CreationMeta, Tensor
from dispatch.tls import ThreadState
from dispatch.tls import per_thread as _per_thread

__all__ = ["INFERENCE_INPLACE_ERROR", "as_view", "make_ad_inplace_or_view_kernel"]

INFERENCE_INPLACE_ERROR: Final = (
    "Inplace update to inference tensor outside InferenceMode is not allowed."
    "You can make a clone to get a normal tensor before doing inplace update."
    "See https://github.com/pytorch/rfcs/pull/17 for more details."
)

_DEBUG: Final = "registered at kernels/ad_inplace_or_view.py (derived from the schema)"


def creation_meta_for_new_view(s: ThreadState, multi_output: bool) -> CreationMeta:
    """``InferenceMode::is_enabled() ? INFERENCE_MODE : (GradMode ? DEFAULT : NO_GRAD_MODE)``
    in the thread state ``s``; multi-output views use MULTI_OUTPUT_NODE where DEFAULT
    would be."""
    if s.inference_mode:
        return CreationMeta.INFERENCE_MODE
    if not s.grad_mode:
        return CreationMeta.NO_GRAD_MODE
    return CreationMeta.MULTI_OUTPUT_NODE if multi_output else CreationMeta.DEFAULT


def propagate_creation_meta(prev: CreationMeta, new: CreationMeta) -> CreationMeta:
    """``propagate_creation_meta``: a view of a view keeps the more restrictive meta."""
    if new is CreationMeta.DEFAULT:
        return prev
    return prev if prev is CreationMeta.INFERENCE_MODE else new


def as_view(base: Tensor, out: Tensor, creation_meta: CreationMeta, differentiable: bool) -> Tensor:
    """Make ``out`` a view of ``base``. Views of inference tensors are not tracked; a kernel
    that returns its input object itself leaves it as it is (torch hands the same object
    back, not a view of itself)."""
    if out is base or not base._keys & _AUTOGRAD_RELATED:  # or base.is_inference()
        return out
    vc = base._version_counter
    out._version_counter = vc
    if not differentiable:
        return out
    out._attr_version = vc.version if vc is not None else 0
    if base._base is not None:
        out._base = base._base
        out._creation_meta = propagate_creation_meta(base._creation_meta, creation_meta)
    else:
        out._base = base
        out._creation_meta = creation_meta
    return out


_AUTOGRAD_RELATED: Final = RAW_AUTOGRAD_WITH_ADINPLACEORVIEW


def make_ad_inplace_or_view_kernel(entry: OperatorEntry) -> KernelFunction | None:
    """The ADInplaceOrView kernel for ``entry``'s schema, or None when the schema
    has no alias annotation (then ADInplaceOrView falls through)."""
    schema = entry.schema
    assert schema is not None
    args = schema.arguments
    bumps = entry.extra.get("bump", True)
    mutable = tuple(i for i, a in enumerate(args) if a.is_mutable and bumps)
    mutable_lists = tuple(i for i in mutable if args[i].is_list)
    mutable_single = tuple(i for i in mutable if not args[i].is_list)
    views: list[tuple[int, int]] = []  # (return index, argument index)
    for ri, r in enumerate(schema.returns):
        if r.alias_info is None or r.alias_info.is_write:
            continue
        for ai, a in enumerate(args):
            if a.alias_info is not None and a.alias_info.before_set == r.alias_info.before_set:
                views.append((ri, ai))
                break
    if not mutable and not views:
        return None
    view_kind = entry.extra.get("view")
    differentiable = view_kind != "non_differentiable"
    list_return = len(schema.returns) == 1 and schema.returns[0].is_list
    multi = view_kind == "multi" or list_return
    single_return = len(schema.returns) == 1

    if not mutable and len(views) == 1 and single_return and not list_return:
        # the kernel of every single-output view op (view, slice, select, expand, t...):
        # the general kernel below, specialised so a view call does only its own work
        base_pos = views[0][1]
        default_meta = CreationMeta.MULTI_OUTPUT_NODE if multi else CreationMeta.DEFAULT

        def ad_inplace_or_view_view_op(ks: int, *a: Any) -> Any:
            s = _per_thread.state
            prev = s.excluded
            s.excluded = prev | RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
            try:
                out = redispatch_raw(entry, ks & RAW_AFTER_ADINPLACEORVIEW, a)
            finally:
                s.excluded = prev
            # creation_meta_for_new_view, inlined: this runs for every view op
            if s.inference_mode:
                meta = CreationMeta.INFERENCE_MODE
            elif not s.grad_mode:
                meta = CreationMeta.NO_GRAD_MODE
            else:
                meta = default_meta
            base = a[base_pos]
            if (
                out is base
                or not differentiable
                or base._base is not None
                or not base._keys & _AUTOGRAD_RELATED
            ):
                return as_view(base, out, meta, differentiable)
            # as_view's commonest case, inlined: a view of a tracked non-view tensor
            vc = base._version_counter
            out._version_counter = vc
            out._attr_version = vc.version if vc is not None else 0
            out._base = base
            out._creation_meta = meta
            return out

        return KernelFunction(
            ad_inplace_or_view_view_op, True, _DEBUG, convention="full", name="ad_inplace_or_view"
        )

    def ad_inplace_or_view(ks: int, *a: Any) -> Any:
        s = _per_thread.state
        if mutable and not s.inference_mode:
            # Checked before the data is touched (PyTorch checks after; see the module doc).
            for i in mutable_single:
                t = a[i]
                if t is not None and t._version_counter is None:
                    raise RuntimeError(INFERENCE_INPLACE_ERROR)
            for i in mutable_lists:
                for t in a[i] or ():
                    if t is not None and t._version_counter is None:
                        raise RuntimeError(INFERENCE_INPLACE_ERROR)
        # AutoDispatchBelowADInplaceOrView, inlined: this is on every in-place and view call.
        prev = s.excluded
        s.excluded = prev | RAW_AUTOGRAD_WITH_ADINPLACEORVIEW
        try:
            out = redispatch_raw(entry, ks & RAW_AFTER_ADINPLACEORVIEW, a)
        finally:
            s.excluded = prev
        for i in mutable_single:
            t = a[i]
            if t is not None:
                vc = t._version_counter
                if vc is not None:  # inference tensor inside inference mode: no counter, no-op
                    vc.version += 1
        for i in mutable_lists:
            for t in a[i] or ():
                if t is not None and t._version_counter is not None:
                    t._version_counter.version += 1
        if views:
            meta = creation_meta_for_new_view(s, multi)
            for ri, ai in views:
                base = a[ai]
                if list_return:
                    for o in out:
                        as_view(base, o, meta, differentiable)
                else:
                    o = out if single_return else out[ri]
                    as_view(base, o, meta, differentiable)
        return out

    return KernelFunction(
        ad_inplace_or_view,
        True,
        _DEBUG,
        convention="full",
        name="ad_inplace_or_view",
    )


KEY: Final = DispatchKey.ADInplaceOrView
