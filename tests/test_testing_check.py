"""``dispatchsim check MODULE``: opcheck every operator a module registers (run in-process
through ``main([...])``)."""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dispatch
from dispatch.__main__ import main
from dispatch.dispatcher import dispatcher
from dispatch.testing._check import check_module, check_operator

_ns = itertools.count()

MODULE = """
import dispatch

lib = dispatch.Library("{ns}", "DEF")
lib.define("scale(Tensor x, float s) -> Tensor")
lib.define("bad_scale(Tensor x, float s) -> Tensor")
lib.define("plain(Tensor x) -> Tensor")
op = dispatch.ops.{ns}.scale.default


def autograd(ks, x, s):
    y = op.redispatch(ks & dispatch.after_autograd_keyset, x, s)
    return y.detach() + (x - x.detach()) * s


def bad(x, s):
    a = x.detach().numpy()
    a *= s  # writes into x
    return dispatch.tensor(a)


lib.impl("scale", lambda x, s: x.detach() * s, "CPU")
lib.impl("scale", autograd, "Autograd", with_keyset=True)
lib.impl("bad_scale", bad, "CPU")
lib.impl("plain", lambda x: x.detach() + 1, "CPU")
"""


@pytest.fixture
def module_file(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A module file defining three operators in a fresh namespace; its library is closed
    afterwards."""
    ns = f"checkmod{next(_ns)}"
    path = tmp_path / f"{ns}_ops.py"
    path.write_text(MODULE.format(ns=ns))
    yield path, ns
    for mod in list(sys.modules.values()):
        lib = getattr(mod, "lib", None)
        if getattr(mod, "__file__", None) == str(path) and isinstance(lib, dispatch.Library):
            lib.close()
    assert dispatcher.find_op(f"{ns}::scale") is None


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_check_reports_each_operator(
    capsys: pytest.CaptureFixture[str], module_file: tuple[Path, str]
) -> None:
    path, ns = module_file
    status, out, _ = run(capsys, "check", str(path), "--examples", "10")
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == [
        "operator",
        "schema",
        "modes",
        "autograd",
        "gradcheck",
        "examples",
        "result",
    ]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:5]}
    assert rows[f"{ns}::bad_scale.default"][0] == "FAILED"
    assert rows[f"{ns}::bad_scale.default"][-1] == "failed"
    assert rows[f"{ns}::scale.default"][:4] == ["SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert rows[f"{ns}::scale.default"][-1] == "ok"
    # no autograd kernel: a warning, and no gradcheck
    assert rows[f"{ns}::plain.default"][:4] == ["SUCCESS", "SUCCESS", "WARNING", "SKIPPED"]
    assert f"warning: {ns}::plain.default: the operator has tensor inputs and outputs" in out
    # the failure names the test, the rule, the argument and a (shrunk) sample
    assert f"FAILED {ns}::bad_scale.default:" in out
    assert "test_schema failed with Argument x is not defined as mutable but was mutated" in out
    assert "rule: mutation (argument x)" in out
    assert "sample: x=tensor(" in out
    assert out.rstrip().endswith("2 of 3 operators passed")
    assert "\r" not in out  # no progress bar when stdout is not a terminal


def test_check_json(capsys: pytest.CaptureFixture[str], module_file: tuple[Path, str]) -> None:
    path, ns = module_file
    status, out, _ = run(capsys, "check", str(path), "--examples", "5", "--format", "json")
    assert status == 1
    data = json.loads(out)
    by_op = {r["op"]: r for r in data["operators"]}
    assert by_op[f"{ns}::scale.default"]["status"] == "ok"
    assert by_op[f"{ns}::bad_scale.default"]["status"] == "failed"
    assert by_op[f"{ns}::bad_scale.default"]["tests"]["schema"] == "FAILED"


def test_check_a_dotted_module_name(
    capsys: pytest.CaptureFixture[str],
    module_file: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = module_file
    good = path.read_text().replace('lib.impl("bad_scale", bad, "CPU")', "")
    good = good.replace('lib.define("bad_scale(Tensor x, float s) -> Tensor")', "")
    path.write_text(good)
    monkeypatch.syspath_prepend(str(path.parent))
    status, out, _ = run(capsys, "check", path.stem, "--examples", "5", "--seed", "1")
    assert status == 0, out
    assert out.rstrip().endswith("2 of 2 operators passed")


def test_check_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "check", str(tmp_path / "missing.py"))
    assert status == 2 and "no such file" in err
    (tmp_path / "empty_mod.py").write_text("x = 1\n")
    status, _, err = run(capsys, "check", str(tmp_path / "empty_mod.py"))
    assert status == 2 and "registered no operators" in err
    (tmp_path / "broken_mod.py").write_text("raise ValueError('nope')\n")
    status, _, err = run(capsys, "check", str(tmp_path / "broken_mod.py"))
    assert status == 2 and "importing" in err and "ValueError: nope" in err


def test_an_operator_no_sample_fits_is_untested() -> None:
    ns = f"checkmod{next(_ns)}"
    with dispatch.Library(ns, "DEF") as lib:
        lib.define("picky(Tensor x) -> Tensor")

        def picky(x: dispatch.Tensor) -> dispatch.Tensor:
            raise RuntimeError("never")

        lib.impl("picky", picky, "CPU")
        result = check_operator(getattr(dispatch.ops, ns).picky.default, examples=5)
    assert result.status == "untested"
    assert "no sample was accepted" in result.message


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only() -> None:
    op = dispatch.ops.aten.sin.default
    tty = _Terminal()
    check_module([op], examples=3, stream=tty)
    drawn = tty.getvalue()
    assert "\r[------------------------] 0/1 aten::sin" in drawn
    assert "\r[########################] 1/1 done" in drawn
    assert drawn.endswith("\r")  # the bar is wiped at the end
    plain = io.StringIO()
    check_module([op], examples=3, stream=plain)
    assert plain.getvalue() == ""


def test_check_help_describes_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "check", "--help")
    assert status == 0
    text = " ".join(out.split())
    assert "Exit status 1 if an operator failed, 2 if MODULE cannot be imported" in text
    assert "--examples EXAMPLES" in out and "--seed SEED" in out


def test_an_operator_failing_two_ways_reports_one_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``x.detach().mul_(s)`` breaks two rules (a version bump and, where the values
    change, a mutation): hypothesis finds both, and ``check`` still reports one failure
    instead of crashing on an exception group."""
    ns = f"checkmod{next(_ns)}"
    path = tmp_path / f"{ns}_two.py"
    path.write_text(
        "import dispatch\n"
        f'lib = dispatch.Library("{ns}", "DEF")\n'
        'lib.define("bad_scale(Tensor x, float s) -> Tensor")\n'
        'lib.impl("bad_scale", lambda x, s: x.detach().mul_(s), "CPU")\n'
    )
    try:
        status, out, _ = run(capsys, "check", str(path), "--examples", "20")
    finally:
        for mod in list(sys.modules.values()):
            lib = getattr(mod, "lib", None)
            if getattr(mod, "__file__", None) == str(path) and isinstance(lib, dispatch.Library):
                lib.close()
    assert status == 1
    assert f"FAILED {ns}::bad_scale.default:" in out
    assert "test_schema failed with Argument x" in out
    assert out.rstrip().endswith("0 of 1 operators passed")
