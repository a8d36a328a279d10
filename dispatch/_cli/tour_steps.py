"""The tour's steps: five basics, then every statement and example of PyTorch's Gradient
Modes document (shared/reference/gradient-modes.txt), in the document's order — the same
list as tests/test_gradient_modes_doc.py, one step per test.

The document's C++ guards map onto dispatchsim as ``torch::NoGradGuard`` ->
``modes.NoGradGuard``, ``c10::InferenceMode(enabled)`` -> ``modes.InferenceMode(enabled)``,
``at::AutoDispatchBelowADInplaceOrView`` -> ``modes.AutoDispatchBelowADInplaceOrView`` and
the legacy ``AutoNonVariableTypeMode`` -> ``modes.AutoNonVariableTypeMode``.
"""

from __future__ import annotations

import textwrap
from typing import Final

from dispatch._cli.tour import Step

BASICS: Final = "Basics"
NO_GRAD: Final = "NoGradGuard"
INFERENCE_MODE: Final = "InferenceMode"
INFERENCE_TENSORS: Final = "Inference tensors"
PERFORMANCE: Final = "Performance guarantees"
NESTED: Final = "Nested InferenceMode"
VERSUS: Final = "InferenceMode vs NoGradMode"
MIGRATION: Final = "Migrating from AutoNonVariableTypeMode"

_LEGACY: Final = """\
import warnings


def legacy():  # the legacy guard, its DeprecationWarning silenced (step 37 shows it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return modes.AutoNonVariableTypeMode()
"""


def _step(
    name: str,
    section: str,
    title: str,
    code: str,
    checks: tuple[str, ...],
    observe: tuple[str, ...] = (),
    statement: str = "",
    note: str = "",
    example: str = "",
    legacy: bool = False,
) -> Step:
    """A step; ``legacy``: the code starts by defining ``legacy()``, the legacy guard."""
    body = textwrap.dedent(code).strip("\n") + "\n"
    return Step(
        name=name,
        section=section,
        title=title,
        code=_LEGACY + "\n" + body if legacy else body,
        checks=checks,
        observe=observe,
        statement=" ".join(statement.split()),
        note=" ".join(note.split()),
        example=textwrap.dedent(example).strip("\n"),
    )


STEPS: Final[tuple[Step, ...]] = (
    # ------------------------------------------------------------------------------------
    # Basics
    # ------------------------------------------------------------------------------------
    _step(
        "functional",
        BASICS,
        "a functional op: a + b",
        """
        a = dispatch.ones(3)
        b = dispatch.ones(3)
        with traced("a + b"):
            out = a + b
        """,
        checks=(
            "keys('a + b') == ['AutogradCPU', 'CPU']",
            "a._version == 0",
            "not out._is_view()",
        ),
        observe=("out", "a._version"),
        note="""The call's key set is the union of the arguments' sets plus the TLS included
        set. The autograd key runs first (it would record a grad_fn if an input required
        grad); add is neither a mutation nor a view, so ADInplaceOrView is a fallthrough for
        it and CPU computes a fresh tensor.""",
    ),
    _step(
        "view",
        BASICS,
        "a view: a.view(-1)",
        """
        a = dispatch.ones(2, 3)
        with traced("a.view(-1)"):
            out = a.view(-1)
        """,
        checks=(
            "keys('a.view(-1)') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "out._is_view() and out._base is a",
            "a._version == 0",
        ),
        observe=("out", "out._is_view()", "a._version"),
        note="""view's schema returns Tensor(a), an alias of self, so the ADInplaceOrView
        kernel runs: it records the view's base and makes it share a's version counter. CPU
        returns a real numpy view; nothing is written, so no version bump.""",
    ),
    _step(
        "inplace",
        BASICS,
        "an in-place op on a normal tensor: a.add_(1)",
        """
        a = dispatch.ones(3)
        with traced("a.add_(1)"):
            out = a.add_(1)
        """,
        checks=(
            "keys('a.add_(1)') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "a._version == 1",
            "out is a",
        ),
        observe=("out", "a._version"),
        note="""add_'s schema marks self as Tensor(a!): the ADInplaceOrView kernel bumps
        a._version once the CPU kernel has written the data. out is a itself.""",
    ),
    _step(
        "inference",
        BASICS,
        "the same in-place op on an inference tensor inside inference_mode()",
        """
        with modes.inference_mode():
            a = dispatch.ones(3)
            with traced("a.add_(1)"):
                out = a.add_(1)
        """,
        checks=(
            "keys('a.add_(1)') == ['CPU']",
            "a.is_inference() and out is a",
            "error_of(lambda: a._version).startswith(VERSION_ERR)",
        ),
        observe=("out", "a.is_inference()", "error_of(lambda: a._version)"),
        note="""inference_mode() only edits the TLS: ADInplaceOrView leaves the included set
        and the autograd keys join the excluded set. a, allocated inside, carries only CPU.
        So only the CPU kernel runs: no autograd, no version counter to bump.""",
    ),
    _step(
        "custom-op",
        BASICS,
        "a user-defined operator registered with only a CPU kernel",
        """
        def scale_cpu(self, s):
            self.numpy()[...] *= s
            return self


        with dispatch.Library("myops", "DEF") as lib:
            lib.define("scale_(Tensor(a!) self, float s) -> Tensor(a!)")
            lib.impl("scale_", scale_cpu, "CPU")
            a = dispatch.ones(3)
            with traced("scale_"):
                out = dispatch.ops.myops.scale_(a, 2.0)
            print(dispatch.dump_table("myops::scale_"), end="")
        """,
        checks=(
            "keys('scale_') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "a._version == 1",
            "out.tolist() == [2.0, 2.0, 2.0]",
        ),
        observe=("out", "a._version"),
        note="""Only CPU was registered, yet three keys run: the autograd key resolves to its
        backend fallback, and ADInplaceOrView runs the generic kernel derived from the
        schema's Tensor(a!), so the version bump comes for free. The table shows where each
        entry came from.""",
    ),
    # ------------------------------------------------------------------------------------
    # NoGradGuard
    # ------------------------------------------------------------------------------------
    _step(
        "nogradguard-scope",
        NO_GRAD,
        "NoGradGuard disables gradient computation within its scope",
        """
        w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        with modes.NoGradGuard():
            with traced("inside"):
                inside = w * 2
        with traced("after"):
            after = w * 2
        backward_inside = error_of(lambda: inside.sum().backward())
        after.sum().backward()
        """,
        statement="""class torch::NoGradGuard — RAII guard that disables gradient computation
        within its scope.""",
        checks=(
            "inside.grad_fn is None and not inside.requires_grad",
            "after.grad_fn is not None",
            "backward_inside is not None",
            "w.grad.tolist() == [2.0, 2.0, 2.0]",
        ),
        observe=("inside.grad_fn", "after.grad_fn.name()", "backward_inside"),
        note="""Both calls run AutogradCPU -> CPU; inside the scope the Autograd kernel finds
        grad mode off and records no node (the trace has no '+ grad_fn' line).""",
    ),
    _step(
        "nogradguard-constructor",
        NO_GRAD,
        "NoGradGuard() turns grad mode off, and nothing else",
        """
        w = dispatch.tensor([1.0, 2.0], requires_grad=True)
        tls_before = dispatch.tls_local_dispatch_key_set()
        with modes.NoGradGuard():
            grad_mode = modes.is_grad_enabled()
            tls_inside = dispatch.tls_local_dispatch_key_set()
            with traced("w.mul(3.0), no grad"):
                y = w.mul(3.0)
        with traced("w.mul(3.0), grad"):
            y_on = w.mul(3.0)
        """,
        statement="NoGradGuard() — Disables gradient computation.",
        checks=(
            "grad_mode is False",
            "tls_inside == tls_before",
            "keys('w.mul(3.0), no grad') == keys('w.mul(3.0), grad') == ['AutogradCPU', 'CPU']",
            "y.grad_fn is None and y_on.grad_fn is not None",
        ),
        observe=("grad_mode", "tls_inside", "y.grad_fn", "y_on.grad_fn.name()"),
        note="""No key set changes: the same kernels run with grad mode on and off; the
        Autograd kernel reads the flag and decides not to record.""",
    ),
    _step(
        "nogradguard-destructor",
        NO_GRAD,
        "leaving the scope restores the previous grad mode",
        """
        seen = [modes.is_grad_enabled()]
        with modes.NoGradGuard():
            seen.append(modes.is_grad_enabled())
        seen.append(modes.is_grad_enabled())
        with modes.no_grad():
            with modes.NoGradGuard():
                modes.set_grad_enabled(True)  # changed inside the scope
            seen.append(modes.is_grad_enabled())  # the previous mode: off
        try:
            with modes.NoGradGuard():
                raise KeyError("boom")
        except KeyError:
            pass
        seen.append(modes.is_grad_enabled())
        w = dispatch.tensor([1.0], requires_grad=True)
        with traced("w * 2 afterwards"):
            y = w * 2
        """,
        statement="~NoGradGuard() — Restores previous gradient mode.",
        checks=("seen == [True, False, True, False, True]", "y.grad_fn is not None"),
        observe=("seen", "y.grad_fn.name()"),
        note="""The guard saves the mode on entry and puts that value back on exit, whatever
        happened inside, exceptions included.""",
    ),
    _step(
        "example-nogradguard",
        NO_GRAD,
        "the document's NoGradGuard example",
        """
        weight = dispatch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], requires_grad=True)


        def forward(x):
            return (x @ weight.t()).tanh()


        input = dispatch.ones(4, 3)
        with modes.NoGradGuard():
            # No gradients computed in this scope
            with traced("forward(input)"):
                result = forward(input)
        tracked = forward(input)
        """,
        example="""
        {
            torch::NoGradGuard no_grad;
            // No gradients computed in this scope
            auto result = model->forward(input);
        }
        """,
        checks=(
            "result.grad_fn is None and not result.requires_grad",
            "not result.is_inference()",
            "tracked.grad_fn.name() == 'TanhBackward0'",
            "result.tolist() == tracked.tolist()",
            "'AutogradCPU' in keys('forward(input)')",
        ),
        observe=("result.grad_fn", "result.is_inference()", "tracked.grad_fn.name()"),
        note="""Same values, no graph; the result is a normal tensor (NoGradGuard does not
        touch tensor creation).""",
    ),
    # ------------------------------------------------------------------------------------
    # InferenceMode
    # ------------------------------------------------------------------------------------
    _step(
        "inference-mode-analogous-to-no-grad",
        INFERENCE_MODE,
        "InferenceMode: like NoGradMode, for code with no autograd interactions",
        """
        w = dispatch.tensor([1.0, 2.0], requires_grad=True)
        with modes.NoGradGuard():
            y_no_grad = w * 2
        with modes.InferenceMode():
            y_inference = w * 2
            inside = (modes.is_grad_enabled(), modes.is_inference_mode_enabled())
        after = (modes.is_grad_enabled(), modes.is_inference_mode_enabled())
        with traced("w * y_no_grad"):
            later_no_grad = error_of(lambda: w * y_no_grad)
        with traced("w * y_inference"):
            later_inference = error_of(lambda: w * y_inference)
        """,
        statement="""c10::InferenceMode is a RAII guard analogous to NoGradMode designed for
        use when you are certain your operations will have no interactions with autograd
        (e.g., model inference).""",
        checks=(
            "y_no_grad.grad_fn is None and y_inference.grad_fn is None",
            "inside == (False, True) and after == (True, False)",
            "later_no_grad is None",
            "later_inference.startswith(SAVE_ERR)",
        ),
        observe=("inside", "after", "later_no_grad", "later_inference"),
        note="""Both guards stop recording. But what InferenceMode produced cannot interact
        with autograd later: the Autograd kernel refuses to save an inference tensor for
        backward.""",
    ),
    _step(
        "inference-mode-better-performance",
        INFERENCE_MODE,
        "no view tracking and no version bumps: fewer kernels than under no_grad",
        """
        with modes.no_grad():
            x_ng = dispatch.ones(2, 3)
            with traced("no_grad"):
                v_ng = x_ng.view(-1)
                x_ng.add_(1)
        with modes.InferenceMode():
            x_im = dispatch.ones(2, 3)
            with traced("InferenceMode"):
                v_im = x_im.view(-1)
                x_im.add_(1)
        """,
        statement="""Compared to NoGradMode, code run under this mode gets better performance
        by disabling autograd-related work like view tracking and version counter bumps.""",
        checks=(
            "keys('no_grad') == ['AutogradCPU', 'ADInplaceOrView', 'CPU'] * 2",
            "keys('InferenceMode') == ['CPU', 'CPU']",
            "v_ng._is_view() and v_ng._base is x_ng and x_ng._version == 1",
            "not v_im._is_view() and v_im._base is None",
            "error_of(lambda: x_im._version).startswith(VERSION_ERR)",
            "v_ng.tolist() == v_im.tolist()",
        ),
        observe=("len(keys('no_grad'))", "len(keys('InferenceMode'))", "x_ng._version"),
        note="""View tracking and version bumps are the ADInplaceOrView kernel's work. Under
        no_grad it runs (after the Autograd kernel); for a tensor created in InferenceMode
        neither key is in the call's key set, so the CPU kernel runs alone.""",
    ),
    _step(
        "inference-tensors-more-limitations",
        INFERENCE_MODE,
        "tensors created inside InferenceMode are limited with autograd",
        """
        w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        with modes.no_grad():
            n = dispatch.ones(3)
        with modes.InferenceMode():
            i = dispatch.ones(3)


        def interactions(t):
            return [
                error_of(lambda: w * t),  # saved for backward
                error_of(lambda: t._version),  # version counter read
                error_of(lambda: t.add_(1)),  # in-place update
                error_of(lambda: t.detach().requires_grad_()),  # made to require grad
            ]


        made_under_no_grad = interactions(n)
        made_under_inference_mode = interactions(i)
        """,
        statement="""However, tensors created inside InferenceMode have more limitations when
        interacting with the autograd system.""",
        checks=(
            "made_under_no_grad == [None, None, None, None]",
            "all(e is not None for e in made_under_inference_mode)",
        ),
        observe=("made_under_no_grad", "made_under_inference_mode"),
    ),
    _step(
        "inference-mode-enables-inference-mode",
        INFERENCE_MODE,
        "InferenceMode edits the TLS: ops on inference tensors run CPU only",
        """
        with modes.InferenceMode():
            enabled = modes.is_inference_mode_enabled()
            tls = dispatch.tls_local_dispatch_key_set()
            x = dispatch.ones(4)
            with traced("x.mul(2.0).relu()"):
                y = x.mul(2.0).relu()
        """,
        statement="""class c10::InferenceMode — RAII guard that enables inference mode for
        optimized inference.""",
        checks=(
            "enabled",
            "dispatch.DispatchKey.ADInplaceOrView not in tls.included",
            "dispatch.DispatchKey.AutogradCPU in tls.excluded",
            "keys('x.mul(2.0).relu()') == ['CPU', 'CPU']",
            "y.tolist() == [2.0, 2.0, 2.0, 2.0]",
        ),
        observe=("enabled", "tls"),
        note="""Enabling it removes ADInplaceOrView from the included set and adds the
        autograd keys to the excluded set; a tensor allocated inside carries CPU alone.""",
    ),
    _step(
        "inference-mode-more-efficient-for-inference-workloads",
        INFERENCE_MODE,
        "the document's workload: same outputs, fewer kernels than NoGradGuard",
        """
        from dispatch._cli.workload import (
            Model,
            data,
            postprocess_tensors,
            preprocess_tensors,
            saved_model,
        )


        def workload():
            model = Model()
            model.load_jit(saved_model)
            inputs = preprocess_tensors(data)
            out = model.forward(inputs)
            return postprocess_tensors(out)


        with modes.NoGradGuard(), traced("NoGradGuard"):
            probs_ng, top_ng = workload()
        with modes.InferenceMode(), traced("InferenceMode"):
            probs_im, top_im = workload()
        """,
        statement="This is more efficient than NoGradGuard for inference-only workloads.",
        checks=(
            "probs_ng.tolist() == probs_im.tolist() and top_ng.tolist() == top_im.tolist()",
            "calls('NoGradGuard') == calls('InferenceMode')",
            "len(keys('InferenceMode')) < len(keys('NoGradGuard'))",
            "not {'AutogradCPU', 'ADInplaceOrView'} & set(keys('InferenceMode'))",
        ),
        observe=("key_counts('NoGradGuard')", "key_counts('InferenceMode')"),
        note="""The same operator calls; under NoGradGuard every one also runs its Autograd
        kernel (and views their ADInplaceOrView kernel), under InferenceMode none does.""",
    ),
    _step(
        "inference-mode-enabled-argument",
        INFERENCE_MODE,
        "InferenceMode(True) enables, InferenceMode(False) disables",
        """
        normal = dispatch.tls_local_dispatch_key_set()
        with modes.InferenceMode():
            default = (modes.is_inference_mode_enabled(), dispatch.ones(1).is_inference())
        with modes.InferenceMode(True):
            enabled = (modes.is_inference_mode_enabled(), dispatch.ones(1).is_inference())
            i = dispatch.ones(3)
            with traced("InferenceMode(True): i.add_(1)"):
                i.add_(1)
        with modes.InferenceMode(False):
            disabled = (modes.is_inference_mode_enabled(), dispatch.ones(1).is_inference())
            tls_disabled = dispatch.tls_local_dispatch_key_set()
            n = dispatch.ones(3)
            with traced("InferenceMode(False): n.add_(1)"):
                n.add_(1)
        """,
        statement="explicit InferenceMode(bool enabled = true) — Enables or disables inference mode.",
        checks=(
            "default == enabled == (True, True)",
            "disabled == (False, False)",
            "tls_disabled == normal",
            "keys('InferenceMode(True): i.add_(1)') == ['CPU']",
            "keys('InferenceMode(False): n.add_(1)') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
        ),
        observe=("default", "enabled", "disabled"),
    ),
    # ------------------------------------------------------------------------------------
    # Inference tensors
    # ------------------------------------------------------------------------------------
    _step(
        "newly-allocated-tensors-are-inference-tensors",
        INFERENCE_TENSORS,
        "everything allocated inside InferenceMode is an inference tensor",
        """
        n = dispatch.tensor([1.0, 2.0], requires_grad=True)
        with modes.InferenceMode():
            with traced("allocations"):
                made = {
                    "tensor": dispatch.tensor([1.0, 2.0]),
                    "ones": dispatch.ones(2),
                    "zeros": dispatch.zeros(2),
                    "arange": dispatch.arange(2),
                    "randn": dispatch.randn(2),
                    "op on a normal tensor": n * 2,
                    "clone of a normal tensor": n.clone(),
                    "reduction": n.sum(),
                }
        """,
        statement="""Inside InferenceMode, all newly allocated (non-view) tensors are marked
        as inference tensors.""",
        checks=(
            "all(t.is_inference() for t in made.values())",
            "not any(t._is_view() for t in made.values())",
            "all(t.key_set == dispatch.DispatchKeySet([dispatch.DispatchKey.CPU]) "
            "for t in made.values())",
        ),
        observe=("{name: t.is_inference() for name, t in made.items()}", "made['ones'].key_set"),
        note="""An inference tensor is one whose key set has no autograd key and no
        ADInplaceOrView: allocating inside InferenceMode gives exactly that.""",
    ),
    _step(
        "inference-tensors-have-no-version-counter",
        INFERENCE_TENSORS,
        "inference tensors have no version counter",
        """
        n = dispatch.ones(2)
        n.add_(1)
        with modes.InferenceMode():
            i = dispatch.ones(2)
            with traced("i.add_(1), inside"):
                i.add_(1)
            version_inside = error_of(lambda: i._version)
        version_outside = error_of(lambda: i._version)
        c = i.clone()  # made outside: a normal tensor, with a counter of its own
        """,
        statement="Inference tensors: Do not have a version counter, ...",
        checks=(
            "n._version == 1",
            "keys('i.add_(1), inside') == ['CPU']",
            "version_inside.startswith(VERSION_ERR)",
            "version_outside.startswith(VERSION_ERR)",
            "isinstance(c._version, int)",
        ),
        observe=("n._version", "version_inside", "version_outside", "c._version"),
    ),
    _step(
        "reading-version-of-inference-tensor-raises",
        INFERENCE_TENSORS,
        "reading the version, or saving for backward, raises",
        """
        with modes.InferenceMode():
            i = dispatch.tensor([1.0, 2.0, 3.0])
        w = dispatch.tensor([1.0, 1.0, 1.0], requires_grad=True)
        read = error_of(lambda: i._version)
        with traced("w * i"):
            saved = error_of(lambda: w * i)  # MulBackward0 saves both operands
        """,
        statement="""... so an error will be raised if you try to read their version (e.g.,
        because you saved this tensor for backward).""",
        checks=(
            "read.startswith(VERSION_ERR)",
            "saved.startswith(SAVE_ERR)",
            "keys('w * i', 'aten::mul.Tensor') == ['AutogradCPU']",
        ),
        observe=("read", "saved"),
        note="""Saving a tensor records its version; the Autograd kernel raises before any
        kernel below it runs.""",
    ),
    _step(
        "inference-tensors-immutable-outside-inference-mode",
        INFERENCE_TENSORS,
        "every kind of in-place op on an inference tensor raises outside",
        """
        data = [[1.0, -2.0], [3.0, -4.0]]
        mutations = {
            "add_": lambda t: t.add_(1.0),
            "mul_": lambda t: t.mul_(2.0),
            "zero_": lambda t: t.zero_(),
            "copy_": lambda t: t.copy_(dispatch.zeros(2, 2)),
            "setitem": lambda t: t.__setitem__(0, 5.0),
            "relu_": lambda t: t.relu_(),
            "t_": lambda t: t.t_(),
            "view then add_": lambda t: t.view(-1).add_(1.0),
        }
        outside, unchanged, inside = {}, {}, {}
        for name, mutate in mutations.items():
            with modes.InferenceMode():
                i = dispatch.tensor(data)
            outside[name] = error_of(lambda: mutate(i))
            unchanged[name] = i.tolist() == data
            with modes.InferenceMode():
                inside[name] = error_of(lambda: mutate(i))
        with modes.InferenceMode():
            j = dispatch.tensor(data)
        with traced("j.mul_(2.0) outside"):
            error_of(lambda: j.mul_(2.0))
        """,
        statement="Are immutable outside InferenceMode.",
        checks=(
            "all(e.startswith(INPLACE_ERR) for e in outside.values())",
            "all(unchanged.values())",
            "all(e is None for e in inside.values())",
        ),
        observe=("sorted(outside)", "set(outside.values())", "inside"),
        note="""Outside InferenceMode the TLS included set brings ADInplaceOrView back into the
        call, and that kernel refuses to update an inference tensor (before any data is
        written).""",
    ),
    _step(
        "mutating-data-outside-inference-mode-raises",
        INFERENCE_TENSORS,
        "in-place update outside: ADInplaceOrView raises; inside: CPU alone",
        """
        with modes.InferenceMode():
            i = dispatch.tensor([1.0, 2.0])
        with traced("i.fill_(5.0) outside"):
            outside = error_of(lambda: i.fill_(5.0))
        after_failure = i.tolist()
        with modes.InferenceMode(), traced("i.fill_(5.0) inside"):
            i.fill_(5.0)
        """,
        statement="An error will be raised if you try to: Mutate their data outside InferenceMode.",
        checks=(
            "keys('i.fill_(5.0) outside') == ['ADInplaceOrView']",
            "outside.startswith(INPLACE_ERR)",
            "after_failure == [1.0, 2.0]",
            "keys('i.fill_(5.0) inside') == ['CPU']",
            "i.tolist() == [5.0, 5.0]",
        ),
        observe=("outside", "after_failure", "i.tolist()"),
        note="""The inference tensor carries CPU only, so ADInplaceOrView comes from the TLS
        included set alone: outside InferenceMode it is there, inside it is not.""",
    ),
    _step(
        "setting-requires-grad-outside-inference-mode-raises",
        INFERENCE_TENSORS,
        "requires_grad=True outside InferenceMode raises",
        """
        with modes.InferenceMode():
            i = dispatch.tensor([1.0, 2.0])
        method = error_of(lambda: i.requires_grad_())


        def set_attribute():
            i.requires_grad = True


        attribute = error_of(set_attribute)
        to_false = error_of(lambda: i.requires_grad_(False))
        with modes.InferenceMode():
            inside = error_of(lambda: i.requires_grad_())
        """,
        statement="""An error will be raised if you try to: Mutate them to requires_grad=True
        outside InferenceMode.""",
        checks=(
            "method.startswith(REQUIRES_GRAD_ERR)",
            "attribute.startswith(REQUIRES_GRAD_ERR)",
            "to_false is None and inside is None",
            "i.requires_grad and i.is_inference()",
        ),
        observe=("method", "to_false", "inside", "i.requires_grad"),
    ),
    _step(
        "clone-outside-inference-mode-to-mutate",
        INFERENCE_TENSORS,
        "a clone made outside is a normal tensor: it can be mutated",
        """
        with modes.InferenceMode():
            i = dispatch.tensor([1.0, 2.0, 3.0])
        c = i.clone()
        v0 = c._version
        with traced("c.add_(1.0)"):
            c.add_(1.0)
        c.requires_grad_()
        (c * c).sum().backward()
        with modes.InferenceMode():
            inside = i.clone()  # made inside: still an inference tensor
        """,
        statement="""To work around this, make a clone outside InferenceMode to get a normal
        tensor before mutating.""",
        checks=(
            "not c.is_inference()",
            "keys('c.add_(1.0)') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "c._version == v0 + 1 and c.tolist() == [2.0, 3.0, 4.0]",
            "i.tolist() == [1.0, 2.0, 3.0]",
            "c.grad.tolist() == [4.0, 6.0, 8.0]",
            "error_of(lambda: inside.add_(1.0)).startswith(INPLACE_ERR)",
        ),
        observe=("c.key_set", "c.grad"),
    ),
    _step(
        "non-view-tensor-inference-iff-allocated-inside",
        INFERENCE_TENSORS,
        "a non-view tensor is inference iff allocated inside InferenceMode",
        """
        import contextlib

        with modes.InferenceMode():
            inf = dispatch.ones(2)
        nrm = dispatch.ones(2, requires_grad=True)
        guards = {
            "no guard": contextlib.nullcontext,
            "no_grad": modes.no_grad,
            "InferenceMode": modes.InferenceMode,
            "InferenceMode(False)": lambda: modes.InferenceMode(False),
            "AutoDispatchBelowADInplaceOrView": modes.AutoDispatchBelowADInplaceOrView,
        }
        made = {}
        for name, guard in guards.items():
            with guard():
                tensors = [dispatch.zeros(2), inf * 2, nrm * 2, inf + nrm, inf.clone()]
            made[name] = [t.is_inference() for t in tensors]
        with traced("inf * 2 outside"):
            inf * 2
        with modes.InferenceMode(), traced("nrm * 2 inside"):
            nrm * 2
        """,
        statement="""A non-view tensor is an inference tensor if and only if it was allocated
        inside InferenceMode.""",
        checks=(
            "made['InferenceMode'] == [True] * 5",
            "all(flags == [False] * 5 for name, flags in made.items() if name != 'InferenceMode')",
        ),
        observe=("made",),
        note="""Whatever the inputs were: the CPU kernel allocates an inference tensor exactly
        when inference mode is on (see '+ allocated ... inference|normal' in the traces).""",
    ),
    _step(
        "view-inference-iff-view-of-inference-tensor",
        INFERENCE_TENSORS,
        "a view is inference iff its base is",
        """
        import contextlib

        with modes.InferenceMode():
            inf = dispatch.ones(2, 3)
        nrm = dispatch.ones(2, 3)
        views = {
            "view": lambda t: t.view(-1),
            "t": lambda t: t.t(),
            "select": lambda t: t[1],
            "unbind[0]": lambda t: t.unbind(0)[0],
            "detach": lambda t: t.detach(),
        }
        pairs = {}
        for mode, guard in [
            ("no guard", contextlib.nullcontext),
            ("no_grad", modes.no_grad),
            ("InferenceMode", modes.InferenceMode),
        ]:
            with guard():
                made = [(f(inf), f(nrm)) for f in views.values()]
            pairs[mode] = [(a.is_inference(), b.is_inference()) for a, b in made]
        with traced("inf.view(-1) outside"):
            v = inf.view(-1)
        """,
        statement="""A view tensor is an inference tensor if and only if it is a view of an
        inference tensor.""",
        checks=(
            "all(p == (True, False) for ps in pairs.values() for p in ps)",
            "v.key_set == inf.key_set and v.is_inference()",
        ),
        observe=("pairs['no guard']", "v.key_set"),
        note="""A view's TensorImpl copies its base's key set, wherever it is made.""",
    ),
    # ------------------------------------------------------------------------------------
    # Performance guarantees
    # ------------------------------------------------------------------------------------
    _step(
        "inference-mode-records-no-grad-fn",
        PERFORMANCE,
        "no grad_fn inside InferenceMode, for inference and normal tensors",
        """
        leaf = dispatch.tensor([1.0, 2.0], requires_grad=True)
        with modes.InferenceMode():
            inf_leaf = dispatch.tensor([3.0, 4.0], requires_grad=True)
            with traced("InferenceMode"):
                outs = {
                    "normal": leaf * 2,
                    "inference": inf_leaf * 2,
                    "mixed": leaf * inf_leaf,
                }
        with modes.no_grad(), traced("no_grad"):
            y = leaf * 2
        """,
        statement="""Inside an InferenceMode block: Like NoGradMode, all operations do not
        record grad_fn even if their inputs have requires_grad=True. This applies to both
        inference tensors and normal tensors.""",
        checks=(
            "leaf.requires_grad and inf_leaf.requires_grad",
            "all(t.grad_fn is None and not t.requires_grad for t in outs.values())",
            "not [k for k in keys('InferenceMode') if k.startswith('Autograd')]",
            "keys('no_grad') == ['AutogradCPU', 'CPU'] and y.grad_fn is None",
        ),
        observe=("{name: t.grad_fn for name, t in outs.items()}",),
        note="""The autograd keys are excluded: no Autograd kernel runs at all, where
        NoGradMode runs it and has it decide not to record.""",
    ),
    _step(
        "views-of-inference-tensors-are-not-tracked",
        PERFORMANCE,
        "views of inference tensors: CPU alone, no view tracking",
        """
        n = dispatch.ones(2, 3)
        with modes.InferenceMode():
            i = dispatch.ones(2, 3)
            with traced("views of an inference tensor"):
                v = i.view(6)
                s = i[0]
            with traced("a view of a normal tensor"):
                nv = n.view(6)
        """,
        statement="View operations on inference tensors do not perform view tracking.",
        checks=(
            "set(keys('views of an inference tensor')) == {'CPU'}",
            "not v._is_view() and v._base is None and not s._is_view()",
            "keys('a view of a normal tensor') == ['ADInplaceOrView', 'CPU']",
            "nv._is_view() and nv._base is n",
        ),
        observe=("v._is_view()", "nv._is_view()"),
        note="""View tracking is the ADInplaceOrView kernel's job. A normal tensor brings that
        key itself, so its view is still tracked inside InferenceMode.""",
    ),
    _step(
        "view-and-non-view-inference-tensors-indistinguishable",
        PERFORMANCE,
        "a view of an inference tensor looks exactly like a fresh one",
        """
        with modes.InferenceMode():
            base = dispatch.ones(2, 3)
            view = base.view(6)
            fresh = dispatch.ones(6)


        def describe(t, label):
            with traced(label):
                in_place_outside = error_of(lambda: t.mul_(1.0))
            return {
                "is_inference": t.is_inference(),
                "_is_view": t._is_view(),
                "_base": t._base,
                "key_set": t.key_set,
                "requires_grad": t.requires_grad,
                "grad_fn": t.grad_fn,
                "_version": error_of(lambda: t._version),
                "in-place outside": in_place_outside,
            }


        d_view = describe(view, "view.mul_(1.0)")
        d_fresh = describe(fresh, "fresh.mul_(1.0)")
        """,
        statement="View and non-view inference tensors are indistinguishable.",
        checks=(
            "d_view == d_fresh",
            "keys('view.mul_(1.0)') == keys('fresh.mul_(1.0)')",
        ),
        observe=("d_view",),
    ),
    _step(
        "inplace-on-inference-tensor-does-not-bump-version",
        PERFORMANCE,
        "in-place on an inference tensor: CPU alone, no version bump",
        """
        n = dispatch.ones(3)
        with modes.InferenceMode():
            i = dispatch.ones(3)
            with traced("inference tensor, InferenceMode"):
                i.add_(1.0)
                i.mul_(2.0)
            with traced("normal tensor, InferenceMode"):
                n.add_(1.0)
        with modes.no_grad(), traced("normal tensor, no_grad"):
            n.add_(1.0)
        """,
        statement="Inplace operations on inference tensors are guaranteed not to do a version bump.",
        checks=(
            "keys('inference tensor, InferenceMode') == ['CPU', 'CPU']",
            "keys('normal tensor, InferenceMode') == ['ADInplaceOrView', 'CPU']",
            "keys('normal tensor, no_grad') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "n._version == 2",
            "error_of(lambda: i._version).startswith(VERSION_ERR)",
            "i.tolist() == [4.0, 4.0, 4.0]",
        ),
        observe=("n._version", "error_of(lambda: i._version)"),
        note="""The version bump happens in the ADInplaceOrView kernel. A tracked in-place op
        runs Autograd -> ADInplaceOrView -> CPU; on an inference tensor inside InferenceMode
        only CPU runs, so there is nothing that could bump.""",
    ),
    _step(
        "example-inference-mode-basic",
        PERFORMANCE,
        "the document's basic InferenceMode example",
        """
        weight = dispatch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], requires_grad=True)


        def forward(x):
            return (x @ weight.t()).sigmoid()


        input = dispatch.ones(4, 3)
        with modes.InferenceMode():
            # Optimized inference without gradient tracking
            with traced("forward(input)"):
                result = forward(input)
        with traced("forward(input) outside"):
            tracked = forward(input)
        """,
        example="""
        {
            c10::InferenceMode guard;
            // Optimized inference without gradient tracking
            auto result = model->forward(input);
        }
        """,
        checks=(
            "result.is_inference() and result.grad_fn is None and not result.requires_grad",
            "not [k for k in keys('forward(input)') if k.startswith('Autograd')]",
            "'AutogradCPU' in keys('forward(input) outside')",
            "result.tolist() == tracked.tolist()",
        ),
        observe=("result.is_inference()", "tracked.grad_fn.name()"),
    ),
    _step(
        "example-inference-workload",
        PERFORMANCE,
        "the document's inference workload, inside InferenceMode",
        """
        import numpy as np

        from dispatch._cli.workload import (
            Model,
            data,
            postprocess_tensors,
            preprocess_tensors,
            reference,
            saved_model,
        )

        with modes.InferenceMode(), traced("workload"):
            model = Model()
            model.load_jit(saved_model)
            inputs = preprocess_tensors(data)
            out = model.forward(inputs)
            outputs = postprocess_tensors(out)
        probs, top = outputs
        """,
        example="""
        c10::InferenceMode guard;
        model.load_jit(saved_model);
        auto inputs = preprocess_tensors(data);
        auto out = model.forward(inputs);
        auto outputs = postprocess_tensors(out);
        """,
        checks=(
            "all(t.is_inference() for t in [inputs, out, probs, top, *model.params.values()])",
            "not {'AutogradCPU', 'ADInplaceOrView'} & set(keys('workload'))",
            "np.allclose(probs.numpy(), reference(saved_model, data), atol=1e-5)",
            "top.sum(dim=1).tolist() == [1] * len(data)",
        ),
        observe=("key_counts('workload')", "probs.shape"),
    ),
    # ------------------------------------------------------------------------------------
    # Nested InferenceMode
    # ------------------------------------------------------------------------------------
    _step(
        "example-nested-inference-mode",
        NESTED,
        "the document's nested InferenceMode example",
        """
        seen = [modes.is_inference_mode_enabled()]
        with modes.InferenceMode(True):
            seen.append(modes.is_inference_mode_enabled())  # InferenceMode is on
            with modes.InferenceMode(False):
                seen.append(modes.is_inference_mode_enabled())  # InferenceMode is off
            seen.append(modes.is_inference_mode_enabled())  # InferenceMode is on
        seen.append(modes.is_inference_mode_enabled())  # InferenceMode is off
        """,
        example="""
        {
            c10::InferenceMode guard(true);
            // InferenceMode is on
            {
                c10::InferenceMode guard(false);
                // InferenceMode is off
            }
            // InferenceMode is on
        }
        // InferenceMode is off
        """,
        checks=("seen == [False, True, False, True, False]",),
        observe=("seen",),
    ),
    _step(
        "inference-mode-nests-with-enabled-disabled-states",
        NESTED,
        "each nesting level is a complete mode: flags, creation, kernels",
        """
        w = dispatch.tensor([1.0, 2.0], requires_grad=True)


        def level(label):
            t = dispatch.ones(2)
            with traced(label):
                y = w * 2
            return (
                modes.is_inference_mode_enabled(),
                modes.is_grad_enabled(),
                t.is_inference(),
                y.grad_fn is not None,
            )


        seen = [level("outside")]
        with modes.InferenceMode(True):
            seen.append(level("on"))
            with modes.InferenceMode(False):
                seen.append(level("off, nested"))
                with modes.InferenceMode(True):
                    seen.append(level("on, nested twice"))
                seen.append(level("off again"))
            seen.append(level("on again"))
        seen.append(level("outside again"))
        """,
        statement="""Unlike some other guards, InferenceMode can be nested with different
        enabled/disabled states""",
        checks=(
            "all(s == (False, True, False, True) for s in seen[0::2])",
            "all(s == (True, False, True, False) for s in seen[1::2])",
            "keys('on') == keys('on, nested twice') == ['CPU']",
            "keys('off, nested') == keys('outside') == ['AutogradCPU', 'CPU']",
        ),
        observe=("seen",),
        note="""InferenceMode(False) inside an enabled block restores the normal TLS, so the
        Autograd kernel runs again and records.""",
    ),
    # ------------------------------------------------------------------------------------
    # InferenceMode vs NoGradMode
    # ------------------------------------------------------------------------------------
    _step(
        "inference-mode-nests-unlike-no-grad",
        VERSUS,
        "InferenceMode(False) undoes an enclosing InferenceMode; NoGradGuard has no off",
        """
        with modes.InferenceMode():
            outer = dispatch.tls_local_dispatch_key_set()
            with modes.NoGradGuard():
                under_no_grad = (
                    dispatch.tls_local_dispatch_key_set() == outer,
                    dispatch.ones(1).is_inference(),
                )
            with modes.InferenceMode(False):
                disabled = (
                    dispatch.tls_local_dispatch_key_set() == outer,
                    modes.is_grad_enabled(),
                    dispatch.ones(1).is_inference(),
                )
                n = dispatch.ones(3)
                with traced("InferenceMode > InferenceMode(False): n.add_(1)"):
                    n.add_(1)
        no_grad_false = error_of(lambda: modes.NoGradGuard(False))
        """,
        statement="""InferenceMode vs NoGradMode — Key differences: InferenceMode can be nested
        with enabled/disabled states.""",
        checks=(
            "under_no_grad == (True, True)",
            "disabled == (False, True, False)",
            "keys('InferenceMode > InferenceMode(False): n.add_(1)') == "
            "['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "no_grad_false.startswith('TypeError')",
        ),
        observe=("under_no_grad", "disabled", "no_grad_false"),
    ),
    _step(
        "inference-mode-preferred-for-pure-inference",
        VERSUS,
        "the same prediction: fewer kernels under inference_mode than no_grad",
        """
        weight = dispatch.tensor(
            [[0.5, -1.0, 2.0, 0.0], [1.5, 0.25, -0.5, 1.0], [-1.0, 0.5, 0.5, 2.0]],
            requires_grad=True,
        )
        rows = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]]


        def predict(raw):
            x = dispatch.tensor(raw)
            x.sub_(x.mean())  # in-place centering
            h = x @ weight.t()
            h.relu_()
            return h.view(-1)


        with traced("no_grad"):
            out_ng = modes.no_grad(predict)(rows)
        with traced("inference_mode"):
            out_im = modes.inference_mode(predict)(rows)
        """,
        statement="""InferenceMode is preferred over NoGradMode for pure inference workloads
        because it provides better performance.""",
        checks=(
            "out_ng.tolist() == out_im.tolist()",
            "calls('no_grad') == calls('inference_mode')",
            "len(keys('inference_mode')) < len(keys('no_grad'))",
            "out_ng._is_view() and not out_im._is_view()",
        ),
        observe=("key_counts('no_grad')", "key_counts('inference_mode')"),
    ),
    _step(
        "inference-mode-affects-tensor-creation",
        VERSUS,
        "both skip recording; only InferenceMode changes the tensors it creates",
        """
        w = dispatch.tensor([1.0, 2.0], requires_grad=True)
        created = {}
        for name, guard in [("no_grad", modes.no_grad), ("InferenceMode", modes.InferenceMode)]:
            with guard(), traced(name):
                created[name] = [dispatch.ones(2), w * 2, w.clone()]
        """,
        statement="""Both guards affect tensor execution to skip work not related to inference,
        but InferenceMode also affects tensor creation while NoGradMode doesn't.""",
        checks=(
            "all(t.grad_fn is None for ts in created.values() for t in ts)",
            "[t.is_inference() for t in created['no_grad']] == [False, False, False]",
            "[t.is_inference() for t in created['InferenceMode']] == [True, True, True]",
        ),
        observe=("{name: [t.key_set for t in ts] for name, ts in created.items()}",),
    ),
    _step(
        "inference-tensor-limitations-apply-after-exiting",
        VERSUS,
        "allowed inside InferenceMode, refused after exiting it",
        """
        with modes.InferenceMode():
            t = dispatch.zeros(3)
            with traced("t.add_(1.0) inside"):
                t.add_(1.0)
            requires_grad_inside = error_of(lambda: t.requires_grad_())
            t.requires_grad_(False)
        with traced("t.add_(1.0) after exiting"):
            add_after = error_of(lambda: t.add_(1.0))
        requires_grad_after = error_of(lambda: t.requires_grad_())
        save_after = error_of(lambda: dispatch.ones(3, requires_grad=True) * t)
        """,
        statement="""Tensors created inside InferenceMode are marked as inference tensors with
        certain limitations that apply after exiting InferenceMode.""",
        checks=(
            "keys('t.add_(1.0) inside') == ['CPU'] and requires_grad_inside is None",
            "add_after.startswith(INPLACE_ERR)",
            "requires_grad_after.startswith(REQUIRES_GRAD_ERR)",
            "save_after.startswith(SAVE_ERR)",
            "t.is_inference() and t.tolist() == [1.0, 1.0, 1.0]",
        ),
        observe=("add_after", "requires_grad_after", "save_after"),
    ),
    # ------------------------------------------------------------------------------------
    # Migrating from AutoNonVariableTypeMode
    # ------------------------------------------------------------------------------------
    _step(
        "legacy-guard-is-deprecated",
        MIGRATION,
        "AutoNonVariableTypeMode warns, naming both replacements",
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            guard = modes.AutoNonVariableTypeMode()
            modes.AutoDispatchBelowADInplaceOrView()  # the replacements do not warn
            modes.InferenceMode()
        message = str(caught[0].message)
        """,
        statement="Migrating from AutoNonVariableTypeMode",
        checks=(
            "len(caught) == 1 and caught[0].category is DeprecationWarning",
            "'AutoDispatchBelowADInplaceOrView' in message and 'InferenceMode' in message",
        ),
        observe=("message",),
    ),
    _step(
        "legacy-guard-renamed-auto-dispatch-below-ad-inplace-or-view",
        MIGRATION,
        "the legacy guard and its new name do the same thing",
        """
        x = dispatch.ones(2, 3, requires_grad=True)
        seen = {}
        for name, guard in [
            ("AutoNonVariableTypeMode", legacy),
            ("AutoDispatchBelowADInplaceOrView", modes.AutoDispatchBelowADInplaceOrView),
        ]:
            with guard(), traced(name):
                tls = dispatch.tls_local_dispatch_key_set()
                y = x.view(-1) * 2
            seen[name] = (tls, y.requires_grad)
        """,
        statement="""The legacy AutoNonVariableTypeMode guard (now renamed to
        AutoDispatchBelowADInplaceOrView) ...""",
        checks=(
            "seen['AutoNonVariableTypeMode'] == seen['AutoDispatchBelowADInplaceOrView']",
            "keys('AutoNonVariableTypeMode') == keys('AutoDispatchBelowADInplaceOrView') == "
            "['CPU', 'CPU']",
            "dispatch.DispatchKey.ADInplaceOrView in tls.excluded",
            "dispatch.DispatchKey.AutogradCPU in tls.excluded",
        ),
        observe=("seen['AutoDispatchBelowADInplaceOrView']",),
        note="""Both exclude the autograd keys and ADInplaceOrView: everything goes straight to
        the backend kernel.""",
        legacy=True,
    ),
    _step(
        "legacy-guard-is-unsafe-wrong-results",
        MIGRATION,
        "under the legacy guard a stale saved tensor silently gives a wrong gradient",
        """
        import contextlib


        def program(guard, label):
            w = dispatch.tensor([1.0, 2.0, 3.0], requires_grad=True)
            with guard():
                x = dispatch.tensor([1.0, 1.0, 1.0]) * 2  # a buffer: [2, 2, 2]
            loss = (w * x).sum()  # saves x: d loss / d w == x == [2, 2, 2]
            with guard(), traced(label):
                x.mul_(3.0)  # the buffer is updated in place: [6, 6, 6]
            loss.backward()
            return w.grad.tolist()


        legacy_grad = outcome(lambda: program(legacy, "x.mul_(3.0), legacy guard"))
        plain = outcome(lambda: program(contextlib.nullcontext, "x.mul_(3.0), no guard"))
        inference = outcome(lambda: program(modes.InferenceMode, "x.mul_(3.0), InferenceMode"))
        """,
        statement="""... was commonly used for inference workloads but is unsafe — it can
        silently bypass safety checks and produce wrong results.""",
        checks=(
            "legacy_grad == [6.0, 6.0, 6.0]  # the right gradient is x as saved: [2, 2, 2]",
            "keys('x.mul_(3.0), legacy guard') == ['CPU']",
            "keys('x.mul_(3.0), no guard') == ['AutogradCPU', 'ADInplaceOrView', 'CPU']",
            "plain.startswith('RuntimeError: one of the variables needed for gradient "
            "computation has been modified by an inplace operation')",
            "inference.startswith(SAVE_ERR)",
        ),
        observe=("legacy_grad", "plain", "inference"),
        note="""Under the legacy guard the in-place update runs the CPU kernel only: no
        version bump, so backward cannot tell that the saved x changed. Without a guard the
        bump makes backward refuse; under InferenceMode x is an inference tensor and cannot
        be saved in the first place.""",
        legacy=True,
    ),
    _step(
        "legacy-guard-bypasses-safety-checks",
        MIGRATION,
        "three checks the legacy guard turns off without a word",
        """
        leaf = dispatch.ones(3, requires_grad=True)
        leaf_check = error_of(lambda: leaf.add_(1.0))
        with legacy(), traced("leaf.add_(1.0), legacy guard"):
            leaf.add_(1.0)  # silently allowed

        with modes.InferenceMode():
            inf = dispatch.ones(3)
        inference_check = error_of(lambda: inf.add_(1.0))
        with legacy():
            inf.add_(1.0)  # an inference tensor mutated outside InferenceMode

        base = dispatch.ones(4)
        with legacy():
            untracked = base[2:4]
            untracked.add_(1.0)  # the base's version counter never hears of it
        """,
        statement="... it can silently bypass safety checks ...",
        checks=(
            "leaf_check.startswith('RuntimeError: a leaf Variable that requires grad is being "
            "used in an in-place operation.')",
            "leaf.tolist() == [2.0, 2.0, 2.0] and leaf._version == 0",
            "keys('leaf.add_(1.0), legacy guard') == ['CPU']",
            "inference_check.startswith(INPLACE_ERR)",
            "inf.tolist() == [2.0, 2.0, 2.0]",
            "not untracked._is_view() and base._version == 0",
            "base.tolist() == [1.0, 1.0, 2.0, 2.0]",
        ),
        observe=("leaf_check", "inference_check", "base._version"),
        legacy=True,
    ),
    _step(
        "inference-mode-drop-in-replacement",
        MIGRATION,
        "InferenceMode in place of the legacy guard: same kernels, protected results",
        """
        from dispatch._cli.workload import (
            Model,
            data,
            postprocess_tensors,
            preprocess_tensors,
            saved_model,
        )


        def workload():
            model = Model()
            model.load_jit(saved_model)
            return postprocess_tensors(model.forward(preprocess_tensors(data)))


        with legacy(), traced("legacy guard"):
            probs_legacy, _ = workload()
        with modes.InferenceMode(), traced("InferenceMode"):
            probs_im, _ = workload()
        w = dispatch.ones(3, requires_grad=True)
        """,
        statement="""For inference-only workloads (e.g. loading a pretrained JIT model and
        running inference in C++ runtime), use c10::InferenceMode as a drop-in replacement. It
        preserves the performance characteristics while providing correctness
        guarantees.""",
        checks=(
            "probs_legacy.tolist() == probs_im.tolist()",
            "keys('legacy guard') == keys('InferenceMode')",
            "not probs_legacy.is_inference() and probs_im.is_inference()",
            "error_of(lambda: w * probs_legacy) is None",
            "error_of(lambda: w * probs_im).startswith(SAVE_ERR)",
            "error_of(lambda: probs_im.add_(1.0)).startswith(INPLACE_ERR)",
        ),
        observe=("key_counts('legacy guard')", "key_counts('InferenceMode')"),
        note="""Kernel for kernel the same dispatch (CPU only); but InferenceMode's results are
        inference tensors, which autograd and in-place updates refuse.""",
        legacy=True,
    ),
    _step(
        "example-roi-align-function",
        MIGRATION,
        "the document's ROIAlignFunction, as roi_align's Autograd kernel",
        """
        import numpy as np

        from dispatch._cli.roi_align import (
            ROI_ALIGN_BACKWARD_SCHEMA,
            ROI_ALIGN_SCHEMA,
            roi_align_backward_cpu,
            roi_align_cpu,
        )
        from kernels import autograd

        lib = dispatch.Library("torchvision", "DEF")
        lib.define(ROI_ALIGN_SCHEMA)
        lib.define(ROI_ALIGN_BACKWARD_SCHEMA)
        lib.impl("roi_align", roi_align_cpu, "CPU")
        lib.impl("_roi_align_backward", roi_align_backward_cpu, "CPU")
        ops = dispatch.ops.torchvision


        class ROIAlignFunction(autograd.Function):
            @staticmethod
            def forward(ctx, input, rois, spatial_scale, pooled_height, pooled_width,
                        sampling_ratio, aligned):
                ctx.saved_data["spatial_scale"] = spatial_scale
                ctx.saved_data["config"] = (pooled_height, pooled_width, sampling_ratio, aligned)
                ctx.saved_data["input_shape"] = tuple(input.shape)
                ctx.save_for_backward(rois)
                with modes.AutoDispatchBelowADInplaceOrView():
                    result = ops.roi_align(input, rois, spatial_scale, pooled_height,
                                           pooled_width, sampling_ratio, aligned)
                return result

            @staticmethod
            def backward(ctx, grad_output):
                (rois,) = ctx.saved_tensors
                ph, pw, ratio, aligned = ctx.saved_data["config"]
                n, c, h, w = ctx.saved_data["input_shape"]
                args = (ctx.saved_data["spatial_scale"], ph, pw, n, c, h, w, ratio, aligned)
                return ops._roi_align_backward(grad_output, rois, *args), *[None] * 6


        lib.impl("roi_align", ROIAlignFunction.apply, "Autograd")

        # a linear image: every bin (all samples inside) averages to the value at its centre
        yy, xx = np.mgrid[0:8, 0:10]
        image = dispatch.tensor((0.75 * yy - 0.5 * xx + 3.0)[None, None], requires_grad=True)
        boxes = dispatch.tensor([[0, 1.5, 2.0, 6.5, 7.0]], dtype=dispatch.float64)
        with traced("ops.roi_align(image, boxes, 1.0, 2, 3, 2, True)"):
            out = ops.roi_align(image, boxes, 1.0, 2, 3, 2, True)
        cy = 1.5 + (np.arange(2) + 0.5) * 5.0 / 2  # bin centres (box shifted by half a pixel)
        cx = 1.0 + (np.arange(3) + 0.5) * 5.0 / 3
        centres = 0.75 * cy[:, None] - 0.5 * cx[None, :] + 3.0
        node = out.grad_fn
        (saved_rois,) = node.saved_tensors
        out.sum().backward()
        small = dispatch.tensor(np.linspace(-1.0, 1.0, 30).reshape(1, 1, 5, 6), requires_grad=True)
        gradcheck_ok = autograd.gradcheck(
            lambda x: ops.roi_align(x, boxes, 0.5, 2, 2, 0, False), (small,)
        )
        lib.close()
        """,
        example="""
        class ROIAlignFunction : public torch::autograd::Function<ROIAlignFunction> {
         public:
          static torch::autograd::variable_list forward(
              torch::autograd::AutogradContext* ctx,
              const torch::autograd::Variable& input,
              const torch::autograd::Variable& rois,
              double spatial_scale, int64_t pooled_height,
              int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
            ctx->saved_data["spatial_scale"] = spatial_scale;
            ctx->save_for_backward({rois});
            at::AutoDispatchBelowADInplaceOrView guard;
            auto result = roi_align(input, rois, spatial_scale,
                pooled_height, pooled_width, sampling_ratio, aligned);
            return {result};
          }
        };
        """,
        checks=(
            "node.name() == 'ROIAlignFunctionBackward'",
            "node.saved_data['spatial_scale'] == 1.0 and saved_rois is boxes",
            "np.allclose(out.detach().numpy()[0, 0], centres)",
            "abs(image.grad.sum().item() - 6.0) < 1e-9  # each of the 6 bins is a mean",
            "gradcheck_ok",
        ),
        observe=("node.name()", "out.shape", "round(image.grad.sum().item(), 9)"),
    ),
    _step(
        "custom-autograd-kernel-redispatches-below-autograd",
        MIGRATION,
        "under AutoDispatchBelowADInplaceOrView the inner call goes straight to CPU",
        """
        import contextlib

        from dispatch._cli.roi_align import RoiAlignOps  # step 42's definitions, guard chosen

        x = dispatch.ones(1, 1, 4, 4, requires_grad=True)
        rois = dispatch.tensor([[0, 0.0, 0.0, 3.0, 3.0]])

        guarded = RoiAlignOps("roi_guarded", guard=modes.AutoDispatchBelowADInplaceOrView)
        with traced("with the guard"):
            out = guarded.ops.roi_align(x, rois, 1.0, 2, 2, 2, True)
        cpu_excluded = guarded.cpu_tls[-1].excluded
        guarded.close()

        entries = []


        def no_guard():  # no guard; stops at the second entry (it would recurse forever)
            entries.append(1)
            if len(entries) > 1:
                raise RuntimeError("re-entered the Autograd kernel")
            return contextlib.nullcontext()


        unguarded = RoiAlignOps("roi_unguarded", guard=no_guard)
        with traced("without a guard"):
            without = error_of(lambda: unguarded.ops.roi_align(x, rois, 1.0, 2, 2, 2, True))
        unguarded.close()
        """,
        statement="""For custom autograd kernels that need to redispatch below the Autograd
        dispatch key, use AutoDispatchBelowADInplaceOrView instead""",
        checks=(
            "keys('with the guard', 'roi_guarded::roi_align') == ['AutogradCPU', 'CPU']",
            "'ADInplaceOrView' not in keys('with the guard')",
            "dispatch.DispatchKey.AutogradCPU in cpu_excluded",
            "dispatch.DispatchKey.ADInplaceOrView in cpu_excluded",
            "out.grad_fn.name() == 'ROIAlignFunctionBackward' and modes.is_grad_enabled()",
            "keys('without a guard', 'roi_unguarded::roi_align') == ['AutogradCPU', 'AutogradCPU']",
            "without == 'RuntimeError: re-entered the Autograd kernel'",
        ),
        observe=("cpu_excluded", "without"),
        note="""The Function is the operator's kernel at AutogradCPU. Its own call of the
        operator, inside the guard, excludes Autograd and ADInplaceOrView, so it reaches the
        CPU kernel directly; without the guard it lands in the Autograd kernel again.""",
    ),
)
