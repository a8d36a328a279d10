"""dispatchsim's performance suite (not part of the test run).

``python -m benchmarks`` runs the full suite (:mod:`benchmarks.suite`): ops per mode,
guards, a 100-op loop, an MLP, the state machine, memory per tensor and the tracer
check, dispatchsim against numpy and torch (when importable), with issue #7's targets.
The shared timing loop is :mod:`benchmarks._timing`; :mod:`benchmarks.bench_modes`
and :mod:`benchmarks.bench_trace` are focused benchmarks of their own.
"""
