"""``python -m benchmarks``: run :mod:`benchmarks.bench_ops`."""

from __future__ import annotations

import sys

from benchmarks.bench_ops import main

if __name__ == "__main__":
    sys.exit(main())
