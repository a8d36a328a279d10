"""Shared pytest set-up: hypothesis profiles, the oracle marker, TLS hygiene."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# "ci" replays the same examples on every run (derandomize): a CI result depends on the
# commit, not on the day. New examples come from the "dev"/"thorough" profiles and the
# fuzzers' environment variables, run by hand; what they find is kept as a named regression.
# Each profile derives from hypothesis's "default" one, not from whatever profile is loaded
# (hypothesis loads its own "ci" profile when the CI environment variable is set).
_DEFAULT = settings.get_profile("default")
settings.register_profile(
    "ci",
    parent=_DEFAULT,
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", parent=_DEFAULT, max_examples=30, deadline=None)
settings.register_profile(
    "thorough",
    parent=_DEFAULT,
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _tls_is_restored():
    """Every test must leave the thread-local dispatch state as it found it."""
    from dispatch.tls import state

    before = (state.included, state.excluded, state.grad_mode, state.inference_mode)
    yield
    after = (state.included, state.excluded, state.grad_mode, state.inference_mode)
    if after != before:
        state.included, state.excluded, state.grad_mode, state.inference_mode = before
        pytest.fail(f"test leaked thread-local state: {before} -> {after}")
