"""dispatchsim's performance suite (not part of the test run).

``python -m benchmarks`` times the per-op cost of a few tensor operations in
dispatchsim, numpy and (when importable) torch; see :mod:`benchmarks.bench_ops`.
"""
