"""dispatch.testing's pytest plugin, run in inner pytest sessions (pytester): the fixtures,
--dispatch-trace-on-fail, the hypothesis profiles, the pytest11 entry point — and the
docs' thirteen-line example test file, which fails on a planted bug and passes without."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

import dispatch
from dispatch.testing._plugin import HYPOTHESIS_PROFILES, TRACE_LINES
from tests.test_docs import python_blocks

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "dispatch.testing._plugin"


@pytest.fixture
def sub(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocess runs import this worktree's packages."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    return pytester


def run_inline(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        "-p",
        PLUGIN,
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *args,
    )


# -- the docs' example: the planted bug is found, the fixed file passes ----------------------
def example_file() -> str:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    (block,) = [b for b in python_blocks(text) if "TestScale = " in b.text]
    return block.text


FIXED_CPU = 'lib.impl("scale", lambda x, s: x.detach() * s, "CPU")'
BUGGY_CPU = 'lib.impl("scale", lambda x, s: x.detach().mul_(s), "CPU")'


def test_the_docs_example_is_a_test_file_of_under_15_lines() -> None:
    code = example_file()
    lines = [ln for ln in code.splitlines() if ln.strip()]
    assert len(lines) < 15, lines
    assert code.count(FIXED_CPU) == 1
    assert BUGGY_CPU in (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")


def test_the_docs_example_finds_the_planted_bug_and_passes_without_it(
    sub: pytest.Pytester,
) -> None:
    fixed = example_file()
    buggy = fixed.replace(FIXED_CPU, BUGGY_CPU)
    assert buggy != fixed
    sub.makepyfile(test_buggy=buggy)
    result = sub.runpytest_subprocess(
        "-p", PLUGIN, "-p", "no:cacheprovider", "--hypothesis-profile=dev", "test_buggy.py"
    )
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # the state machine: the invariant's rule and the argument
    assert (
        "DispatchInvariantError: [schema-mutation] demo.scale.default: Argument x is not "
        "defined as mutable but was mutated" in out
    )
    assert "state.call_user_op(" in out or "state.call_op(" in out  # the shrunk steps
    # opcheck: the test, the rule and the argument
    assert (
        "OpCheckError: opcheck(op, ...): test_schema failed with Argument x is not defined "
        "as mutable but was mutated" in out
    )
    assert "rule: mutation (argument x)" in out

    (sub.path / "test_buggy.py").unlink()
    sub.makepyfile(test_fixed=fixed)
    result = sub.runpytest_subprocess(
        "-p", PLUGIN, "-p", "no:cacheprovider", "--hypothesis-profile=dev", "test_fixed.py"
    )
    result.assert_outcomes(passed=2)


# -- fixtures ----------------------------------------------------------------------------------
def test_library_fixture_defines_in_a_fresh_namespace_and_closes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import dispatch
        from dispatch.dispatcher import dispatcher

        seen = []

        def test_define(library):
            assert library.kind == "DEF" and library.ns.startswith("test_define_")
            library.define("twice(Tensor x) -> Tensor")
            library.impl("twice", lambda x: x.detach() * 2, "CPU")
            out = getattr(dispatch.ops, library.ns).twice(dispatch.ones(2))
            assert out.tolist() == [2.0, 2.0]
            seen.append(library.ns)

        def test_another(library):
            assert library.ns != seen[0]
            library.define("twice(Tensor x) -> Tensor")  # no clash with the first test's

        def test_closed_after_the_test():
            assert dispatcher.find_op(seen[0] + "::twice") is None
        """
    )
    run_inline(pytester).assert_outcomes(passed=3)


def test_clean_tls_fails_a_test_that_leaks_a_guard(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import modes

        def test_leaks(clean_tls):
            modes.inference_mode().__enter__()

        def test_restored():
            assert modes.is_grad_enabled() and not modes.is_inference_mode_enabled()

        def test_balanced(clean_tls):
            with modes.no_grad():
                pass

        def test_fails_and_leaks(clean_tls):
            modes.no_grad().__enter__()
            assert 1 == 2

        def test_restored_again():
            assert modes.is_grad_enabled()
        """
    )
    result = run_inline(pytester)
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert "FAILED test_clean_tls_fails_a_test_that_leaks_a_guard.py::test_leaks" in out
    assert "FAILED test_clean_tls_fails_a_test_that_leaks_a_guard.py::test_fails_and_leaks" in out
    assert "the test left the thread-local dispatch state changed (clean_tls): before " in out
    assert "grad_mode=True inference_mode=False; after" in out
    assert "grad_mode=False inference_mode=True" in out
    # a failing test that also leaks keeps its own failure, with the leak as a note
    assert "assert 1 == 2" in out
    assert out.count("the test left the thread-local dispatch state changed") >= 2


# -- --dispatch-trace-on-fail ------------------------------------------------------------------
TRACED = """
    import dispatch

    def test_fails():
        a = dispatch.ones(2, requires_grad=True)
        b = a + 1
        b.add_(1)
        assert b.tolist() == [0.0, 0.0]

    def test_passes():
        assert (dispatch.ones(1) * 3).tolist() == [3.0]
"""


def test_trace_on_fail_prints_the_dispatch_trace_of_a_failing_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TRACED)
    result = run_inline(pytester, "--dispatch-trace-on-fail")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "- dispatch trace -" in out
    assert "\n[call] aten::add.Tensor -> AutogradCPU [" in out
    assert "\n  [redispatch] aten::add.Tensor -> CPU [kernel]" in out
    assert "\n[call] aten::add_.Tensor -> AutogradCPU [" in out
    assert "\n  [redispatch] aten::add_.Tensor -> ADInplaceOrView [kernel]" in out
    assert "\n    [redispatch] aten::add_.Tensor -> CPU [kernel]" in out
    assert "aten::mul.Tensor" not in out  # the passing test's trace is not shown


def test_no_trace_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TRACED)
    result = run_inline(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert "dispatch trace" not in result.stdout.str()
    assert "aten::add.Tensor ->" not in result.stdout.str()


def test_a_long_trace_is_cut_to_its_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import dispatch

        def test_many_calls():
            x = dispatch.ones(1)
            for _ in range(300):
                x = x + 1
            assert False
        """
    )
    result = run_inline(pytester, "--dispatch-trace-on-fail")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "earlier lines omitted ..." in out
    # the report is the last TRACE_LINES lines of the test's trace: the same program traced here
    with dispatch.trace() as tr:
        x = dispatch.ones(1)
        for _ in range(300):
            x = x + 1
    tail = str(tr).splitlines()[-TRACE_LINES:]
    calls = sum("[call] aten::add.Tensor" in line for line in tail)
    assert 0 < calls < 300
    assert out.count("[call] aten::add.Tensor") == calls


# -- hypothesis profiles -----------------------------------------------------------------------
def test_the_plugin_profiles_agree_with_the_test_suites() -> None:
    """tests/conftest.py registers the same profiles (read in a process of its own, so
    that the plugin's registrations cannot hide a difference)."""
    code = textwrap.dedent(
        """
        import json
        from hypothesis import settings
        import tests.conftest
        out = {}
        for name in ("dev", "ci", "thorough"):
            p = settings.get_profile(name)
            out[name] = [
                p.max_examples,
                p.deadline,
                p.derandomize,
                sorted(h.name for h in p.suppress_health_check),
            ]
        print(json.dumps(out))
        """
    )
    conftest = json.loads(
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout
    )
    ours = {
        name: [
            v["max_examples"],
            v["deadline"],
            v.get("derandomize", False),
            sorted(v.get("suppress_health_check", ())),
        ]
        for name, v in HYPOTHESIS_PROFILES.items()
    }
    assert ours == conftest
    for name, (n, deadline, derandomize, suppressed) in ours.items():  # and as registered here
        p = settings.get_profile(name)
        assert [p.max_examples, p.deadline, p.derandomize] == [n, deadline, derandomize]
        assert sorted(h.name for h in p.suppress_health_check) == suppressed


PROFILE_PROBE = """
    from hypothesis import settings

    def test_profile():
        print("max_examples", settings.default.max_examples, "deadline", settings.default.deadline)
"""


@pytest.mark.parametrize(("name", "n"), [("dev", 30), ("ci", 60), ("thorough", 1000)])
def test_profiles_are_selected_with_the_hypothesis_option(
    sub: pytest.Pytester, name: str, n: int
) -> None:
    sub.makepyfile(PROFILE_PROBE)
    result = sub.runpytest_subprocess(
        "-p", PLUGIN, "-p", "no:cacheprovider", "-s", f"--hypothesis-profile={name}"
    )
    result.assert_outcomes(passed=1)
    assert f"max_examples {n} deadline None" in result.stdout.str()


def test_profiles_are_selected_with_the_environment_and_agree_with_the_conftest(
    sub: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin and a conftest that registers the same profiles load together."""
    sub.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    sub.makepyfile(PROFILE_PROBE)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "dev")
    result = sub.runpytest_subprocess("-p", PLUGIN, "-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    assert "max_examples 30 deadline None" in result.stdout.str()


# -- the entry point ---------------------------------------------------------------------------
def pytest11_entry_points(pyproject: str) -> dict[str, str]:
    """The ``[project.entry-points.pytest11]`` table (simple ``"key" = "value"`` lines; no
    tomllib on Python 3.10)."""
    section = pyproject.split("[project.entry-points.pytest11]\n", 1)[1].split("\n[", 1)[0]
    pairs = re.findall(r'^"?([\w.]+)"?\s*=\s*"([^"]+)"\s*$', section, flags=re.MULTILINE)
    return dict(pairs)


def test_the_pytest11_entry_point_loads_the_plugin(sub: pytest.Pytester, tmp_path: Path) -> None:
    """A dist-info made from pyproject.toml's entry points, as pip would install it: the
    plugin loads by itself, and once only when -p names it too."""
    eps = pytest11_entry_points((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert eps == {PLUGIN: PLUGIN}  # named after its module: `-p` finds it registered
    site = tmp_path / "site"
    info = site / "dispatchsim-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dispatchsim\nVersion: 0.1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    os.environ["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}"
    sub.makepyfile(
        """
        def test_fixture_from_the_entry_point(library):
            assert library.ns
        """
    )
    for extra in ((), ("-p", PLUGIN)):
        result = sub.runpytest_subprocess("-p", "no:cacheprovider", *extra)
        result.assert_outcomes(passed=1)
    result = sub.runpytest_subprocess("-p", "no:cacheprovider", "-p", f"no:{PLUGIN}")
    result.assert_outcomes(errors=1)  # disabled by name: no `library` fixture


def test_dispatch_and_the_plugin_import_without_hypothesis() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed
        import dispatch
        import dispatch.testing._plugin as plugin
        assert plugin.register_hypothesis_profiles() is False
        assert dispatch.ones(1).tolist() == [1.0]
        try:
            from dispatch.testing import opcheck
        except ImportError as e:
            print("ImportError:", e)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    assert out == (
        "ImportError: dispatch.testing needs hypothesis, which is not installed: "
        "pip install 'dispatchsim[test]' (or pip install hypothesis)\n"
    )
