"""A small script to run under ``dispatchsim trace`` (see docs/cli.md)."""

import dispatch
import modes

w = dispatch.ones(3, requires_grad=True)
a = w * 2  # functional: the Autograd kernel records MulBackward0
a.add_(1)  # tracked in-place: AutogradCPU -> ADInplaceOrView -> CPU, and a version bump
with modes.inference_mode():
    i = dispatch.ones(3)
    i.add_(1)  # an inference tensor inside InferenceMode: the CPU kernel alone
print(a.tolist(), i.tolist())
