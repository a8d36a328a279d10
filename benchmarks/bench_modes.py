"""Normal mode vs no_grad vs InferenceMode: time per op and kernels run per op.

The Gradient Modes document claims InferenceMode is faster than NoGradMode because
it skips view tracking and version bumps. In dispatchsim that claim is about keys:
under no_grad every call still goes AutogradCPU -> (ADInplaceOrView ->) CPU, while
inside InferenceMode an inference tensor's calls go straight to CPU. This benchmark
counts the kernels each call runs (from a dispatch trace) and times it, in one
process, in interleaved rounds (the shared loop of :mod:`benchmarks._timing`), for dispatchsim and — where installed — torch (whose
kernel counts are not observable, so only its times and ratios are shown).

Cells: ``a + b`` (functional), ``a.view(-1)`` (view), ``a.add_(1)`` (in-place) on
(4,) float32 tensors, and an inference workload (a 3-layer MLP forward on a (16, 32)
batch) — under normal mode, no_grad, InferenceMode with normal tensors made outside
it, and InferenceMode with inference tensors made inside it.

``python -m benchmarks.bench_modes [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from benchmarks._timing import FunctionTimer, calibrate, interleave

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
MODES: Final = ("normal", "no_grad", "inference (normal tensors)", "inference (inference tensors)")
OPS: Final = ("a + b", "a.view(-1)", "a.add_(1)", "MLP forward")


def _library(name: str) -> dict[str, Any]:
    """The pieces of one library the cells need."""
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "torch":
        import torch

        # one thread, like dispatchsim (see benchmarks.suite: the intra-op pool waits
        # for a second core on a busy machine)
        torch.set_num_threads(1)

        def tensor(arr: Any) -> Any:
            return torch.from_numpy(arr).clone()

        return {
            "tensor": tensor,
            "no_grad": torch.no_grad,
            "inference_mode": torch.inference_mode,
            "rng": rng,
        }
    import dispatch
    import modes

    def ds_tensor(arr: Any) -> Any:
        return dispatch.tensor(arr)

    return {
        "tensor": ds_tensor,
        "no_grad": modes.no_grad,
        "inference_mode": modes.inference_mode,
        "rng": rng,
    }


def _make_cell(lib: dict[str, Any], op: str, mode: str) -> tuple[Callable[[int], None], Any]:
    """A function running ``op`` n times under ``mode``, and a one-call version for tracing."""
    rng = lib["rng"]
    tensor = lib["tensor"]

    def ctx() -> Any:
        if mode == "normal":
            return contextlib.nullcontext()
        if mode == "no_grad":
            return lib["no_grad"]()
        return lib["inference_mode"]()

    def make(*shape: int) -> Any:
        arr = rng.random(shape, dtype="float32")
        if mode == "inference (inference tensors)":
            with lib["inference_mode"]():
                return tensor(arr)
        return tensor(arr)

    if op == "MLP forward":
        x = make(16, 32)
        w1, w2, w3 = make(32, 64), make(64, 64), make(64, 10)

        def once() -> Any:
            return ((x @ w1).relu() @ w2).relu() @ w3

    else:
        a, b = make(4), make(4)
        once = {
            "a + b": lambda: a + b,
            "a.view(-1)": lambda: a.view(-1),
            "a.add_(1)": lambda: a.add_(1),
        }[op]

    def loop(n: int) -> None:
        with ctx():
            for _ in range(n):
                once()

    def traced() -> Any:
        with ctx():
            return once()

    return loop, traced


def _kernels_per_call(traced: Callable[[], Any]) -> int:
    import dispatch

    traced()  # warm caches
    with dispatch.trace() as tr:
        traced()
    return len(tr.events)


def run(repeats: int, target_ms: float, use_torch: bool = True) -> dict[str, Any]:
    libs = ["dispatchsim"]
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            libs.append("torch")
    loops: dict[tuple[str, str, str], Callable[[int], None]] = {}
    kernels: dict[tuple[str, str], int] = {}
    for lib_name in libs:
        lib = _library(lib_name)
        for op in OPS:
            for mode in MODES:
                loop, traced = _make_cell(lib, op, mode)
                loops[(lib_name, op, mode)] = loop
                if lib_name == "dispatchsim":
                    kernels[(op, mode)] = _kernels_per_call(traced)
    timers = {key: FunctionTimer(loop) for key, loop in loops.items()}
    numbers = {key: calibrate(t, target_ms * 1e6, 1 << 20) for key, t in timers.items()}
    samples = interleave(timers, [list(loops)], numbers, repeats)
    rows = []
    for op in OPS:
        for lib_name in libs:
            us = {m: statistics.median(samples[(lib_name, op, m)]) for m in MODES}
            rows.append(
                {
                    "op": op,
                    "library": lib_name,
                    "us": us,
                    "kernels": {m: kernels[(op, m)] for m in MODES}
                    if lib_name == "dispatchsim"
                    else None,
                    "ratio_inference_over_no_grad": {
                        "normal tensors": us["inference (normal tensors)"] / us["no_grad"],
                        "inference tensors": us["inference (inference tensors)"] / us["no_grad"],
                    },
                }
            )
    return {"repeats": repeats, "target_ms": target_ms, "modes": list(MODES), "rows": rows}


def format_table(data: dict[str, Any]) -> str:
    short = {
        "normal": "normal",
        "no_grad": "no_grad",
        "inference (normal tensors)": "IM/normal",
        "inference (inference tensors)": "IM/inference",
    }
    head = ["op", "lib"]
    head += [f"{short[m]} us" for m in MODES]
    head += [f"{short[m]} kernels" for m in MODES]
    head += ["IM/no_grad (normal t.)", "IM/no_grad (inference t.)"]
    lines = [head]
    for r in data["rows"]:
        k = r["kernels"]
        ratio = r["ratio_inference_over_no_grad"]
        lines.append(
            [r["op"], r["library"]]
            + [f"{r['us'][m]:.2f}" for m in MODES]
            + [str(k[m]) if k else "-" for m in MODES]
            + [f"{ratio['normal tensors']:.2f}", f"{ratio['inference tensors']:.2f}"]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = [
        "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return (
        "\n".join(out)
        + f"\n\nmedian of {data['repeats']} interleaved rounds; kernels = dispatch-trace events per call"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_modes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of ~1 ms batches")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "modes.json", metavar="PATH")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    repeats, target_ms = (3, 1.0) if args.quick else (15, 20.0)
    data = run(repeats, target_ms, use_torch=not args.no_torch)
    print(format_table(data))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
