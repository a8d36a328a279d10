"""dispatchsim's pytest plugin (entry point ``pytest11``; or ``-p dispatch.testing._plugin``).

* fixture ``library``: a ``dispatch.Library(ns, "DEF")`` in a namespace of its own,
  closed after the test (its operators are ``getattr(dispatch.ops, library.ns)``);
* fixture ``clean_tls``: fails a test that leaves the thread-local dispatch state
  (included / excluded keys, grad mode, inference mode) changed, and restores it;
* option ``--dispatch-trace-on-fail``: record every test under ``dispatch.trace()`` and
  add the trace of a failing test to its report (section "dispatch trace");
* hypothesis profiles ``dev``, ``ci`` and ``thorough`` (select one with hypothesis's
  ``--hypothesis-profile`` or the ``HYPOTHESIS_PROFILE`` environment variable).

Loading this plugin needs neither hypothesis nor anything else beyond dispatchsim: it is
loaded in every pytest run of an environment where dispatchsim is installed.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Generator, Iterator
from typing import Any, Final

import pytest

import dispatch
from dispatch.tls import per_thread as _per_thread
from dispatch.trace import Trace

__all__ = ["HYPOTHESIS_PROFILES", "register_hypothesis_profiles"]

# name -> settings; the same as tests/conftest.py registers (a test keeps them equal)
HYPOTHESIS_PROFILES: Final[dict[str, dict[str, Any]]] = {
    "ci": {
        "max_examples": 60,
        "deadline": None,
        "derandomize": True,
        "suppress_health_check": ("too_slow",),
    },
    "dev": {"max_examples": 30, "deadline": None},
    "thorough": {"max_examples": 1000, "deadline": None, "suppress_health_check": ("too_slow",)},
}
TRACE_LINES: Final = 400
"""At most this many lines of a failing test's trace are shown (the last ones)."""

_TRACE_KEY: Final = pytest.StashKey[Trace]()
_TLS_KEY: Final = pytest.StashKey[tuple[Any, ...]]()
_ns_counter = itertools.count()


def register_hypothesis_profiles() -> bool:
    """Register :data:`HYPOTHESIS_PROFILES` with hypothesis; False if it is not installed."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return False
    base = settings.get_profile("default")  # not whatever profile is loaded now
    for name, values in HYPOTHESIS_PROFILES.items():
        kw = dict(values)
        kw["suppress_health_check"] = [HealthCheck[h] for h in kw.get("suppress_health_check", ())]
        settings.register_profile(name, parent=base, **kw)
    return True


# Registered when the plugin is imported: before hypothesis's own plugin reads
# --hypothesis-profile in its pytest_configure.
register_hypothesis_profiles()


def _tls_snapshot() -> tuple[Any, ...]:
    s = _per_thread.state
    return (s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode)


def _tls_restore(snap: tuple[Any, ...]) -> None:
    s = _per_thread.state
    s.included, s.excluded, s.grad_mode, s.inference_mode, s.fw_grad_mode = snap


def _tls_text(snap: tuple[Any, ...]) -> str:
    inc = dispatch.DispatchKeySet.from_raw(snap[0])
    exc = dispatch.DispatchKeySet.from_raw(snap[1])
    return f"included={inc} excluded={exc} grad_mode={snap[2]} inference_mode={snap[3]}"


# ---------------------------------------------------------------------------------------
# options, configuration
# ---------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dispatchsim")
    group.addoption(
        "--dispatch-trace-on-fail",
        action="store_true",
        default=False,
        help="record each test's dispatch trace (dispatch.trace()) and print it when the "
        "test fails",
    )


def pytest_configure(config: pytest.Config) -> None:
    profile = os.environ.get("HYPOTHESIS_PROFILE")
    if profile and not _hypothesis_profile_option(config):
        try:
            from hypothesis import settings
        except ImportError:
            return
        settings.load_profile(profile)


def _hypothesis_profile_option(config: pytest.Config) -> Any:
    try:
        return config.getoption("hypothesis_profile")
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------
@pytest.fixture
def library(request: pytest.FixtureRequest) -> Iterator[dispatch.Library]:
    """A ``Library(ns, "DEF")`` in a fresh namespace, closed after the test."""
    stem = re.sub(r"\W+", "_", request.node.name).strip("_").lower()[:40] or "test"
    ns = f"{stem}_{next(_ns_counter)}"
    if not ns[0].isalpha():
        ns = "t" + ns
    lib = dispatch.Library(ns, "DEF")
    try:
        yield lib
    finally:
        lib.close()


@pytest.fixture
def clean_tls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves the thread-local dispatch state changed."""
    snap = _tls_snapshot()
    request.node.stash[_TLS_KEY] = snap
    try:
        yield
    finally:
        # the check ran after the test call (pytest_runtest_call); restore in any case
        if _tls_snapshot() != snap:
            _tls_restore(snap)


# ---------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    trace: Trace | None = None
    if item.config.getoption("dispatch_trace_on_fail"):
        trace = Trace()
        item.stash[_TRACE_KEY] = trace
        trace.__enter__()
    try:
        result = yield
    except BaseException as exc:
        _finish(item, trace, failing=exc)
        raise
    _finish(item, trace, failing=None)
    return result


def _finish(item: pytest.Item, trace: Trace | None, failing: BaseException | None) -> None:
    if trace is not None:
        trace.__exit__(None, None, None)
    snap = item.stash.get(_TLS_KEY, None)
    if snap is None:
        return
    now = _tls_snapshot()
    if now == snap:
        return
    _tls_restore(snap)
    message = (
        f"the test left the thread-local dispatch state changed (clean_tls): before "
        f"{_tls_text(snap)}; after {_tls_text(now)}. Exit every guard you enter "
        "(use `with`)."
    )
    if failing is None:
        pytest.fail(message, pytrace=False)
    add_note = getattr(failing, "add_note", None)
    if add_note is not None:
        add_note(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and report.failed:
        trace = item.stash.get(_TRACE_KEY, None)
        if trace is not None:
            report.sections.append(("dispatch trace", _trace_text(trace)))
    return report


def _trace_text(trace: Trace) -> str:
    lines = str(trace).splitlines()
    if not lines:
        return "(no operator was called)"
    if len(lines) > TRACE_LINES:
        omitted = len(lines) - TRACE_LINES
        lines = [f"... {omitted} earlier lines omitted ...", *lines[-TRACE_LINES:]]
    return "\n".join(lines)
