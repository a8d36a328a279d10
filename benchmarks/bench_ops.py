"""``python -m benchmarks.bench_ops``: the per-op group of the suite alone.

The per-op microbenchmarks (``a + b``, ``a.view(-1)``, ``a[1:]``, ``a.add_(1)`` on (4,)
and (64, 64) float32 tensors, per mode, dispatchsim vs numpy vs torch) are now the
``ops`` group of :mod:`benchmarks.suite`; this is ``python -m benchmarks --groups ops``.
The timing method is :mod:`benchmarks._timing`'s.
"""

from __future__ import annotations

import sys

from benchmarks.suite import main as _suite_main


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--groups" or a.startswith("--groups=") for a in args):
        args = ["--groups", "ops", *args]
    return _suite_main(args)


if __name__ == "__main__":
    sys.exit(main())
