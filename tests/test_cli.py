"""The ``dispatchsim`` command line (dispatch/__main__.py, dispatch/_cli/), run in-process
through ``main([...])``, plus real ``python -m dispatch`` runs and a smoke run of the
benchmarks.

Golden outputs live in tests/golden/. They are compared with registration line numbers
(``kernels/cpu.py:207``) replaced by ``<line>``, so editing a kernel file does not change
them; anything else that changes the output fails the comparison. To regenerate them after
an intended change, run this file with ``DISPATCHSIM_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import dispatch
import modes
from dispatch.__main__ import STEPS, _use_colour, main
from dispatch.dispatcher import dispatcher as registry
from dispatch.tls import state as tls

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
DEMO_SCRIPT = "docs/examples/trace_demo.py"  # relative to ROOT: the output shows it as given
UPDATE_GOLDEN = os.environ.get("DISPATCHSIM_UPDATE_GOLDEN", "") not in ("", "0")

N_STEPS = len(STEPS)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, so that script paths are the relative ones given."""
    monkeypatch.chdir(ROOT)


def tls_state() -> tuple[Any, ...]:
    return (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.tracer)


# -- golden files -------------------------------------------------------------------------
def normalized(text: str) -> str:
    return re.sub(r"(\.py):\d+", r"\1:<line>", text)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    actual = normalized(text)
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with DISPATCHSIM_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), f"golden/{name}", "output", lineterm=""
            )
        )
        pytest.fail(f"output differs from tests/golden/{name}:\n{diff[:6000]}")


def test_golden_normalization_keeps_everything_but_line_numbers() -> None:
    assert normalized("CPU: registered at kernels/cpu.py:207 [kernel]") == (
        "CPU: registered at kernels/cpu.py:<line> [kernel]"
    )
    assert normalized("registered at <dispatchsim tour step 5>:8") == (
        "registered at <dispatchsim tour step 5>:8"
    )
    assert normalized("ks={CPU} 0 -> 1") == "ks={CPU} 0 -> 1"


# -- reading the text output ----------------------------------------------------------------
def sections(out: str) -> dict[int, str]:
    """Tour text output -> {step number: that step's text}."""
    parts = re.split(r"^\[(\d+)/\d+\] ", out, flags=re.MULTILINE)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}


def step_number(name: str) -> int:
    (n,) = [i for i, s in enumerate(STEPS, 1) if s.name == name]
    return n


def traced_blocks(section: str) -> dict[str, list[str]]:
    """{label: the 'keys run' lines of that traced block} of one step's text."""
    blocks: dict[str, list[str]] = {}
    label = None
    in_keys = False
    for line in section.splitlines():
        m = re.match(r'^  trace "(.*)":$', line)
        if m:
            label, in_keys = m[1], False
            blocks[label] = []
        elif label is not None and re.match(r"^    keys run( \(first 4 calls\))?:$", line):
            in_keys = True
        elif in_keys and line.startswith("      "):
            blocks[label].append(line.strip())
        else:
            in_keys = False
    return blocks


def trace_keys(section: str) -> list[str]:
    """The key of every kernel line of the traces in a step's text."""
    return re.findall(r"\] \S+ -> (\w+) \[", section)


# =========================================================================================
# tour
# =========================================================================================
def test_tour_runs_every_step_and_every_statement_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = time.perf_counter()
    status, out, err = run(capsys, "tour")
    elapsed = time.perf_counter() - start
    assert status == 0, err
    assert err == ""
    steps = sections(out)
    assert sorted(steps) == list(range(1, N_STEPS + 1))
    for n, body in steps.items():
        assert "\n  code:\n" in body, n
        assert "\n  checks (what the document says):\n" in body, n
        assert "FAILED" not in body and "CONTRADICTED" not in body, n
        assert re.search(r"\n  => the (statement|example|step) holds \(observed\)\n", body), n
    assert out.rstrip("\n").endswith(f"{N_STEPS} of {N_STEPS} steps hold.")
    for section in ("NoGradGuard", "Inference tensors", "Migrating from AutoNonVariableTypeMode"):
        assert f"\n== {section} ==\n" in out
    assert "\033[" not in out  # not a terminal: no colour
    assert elapsed < 15, f"the tour took {elapsed:.1f} s"


def test_tour_shows_the_keys_of_a_tracked_and_an_inference_in_place_op(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's "done when": Autograd -> ADInplaceOrView -> CPU for a tracked in-place
    op, CPU alone for an in-place op on an inference tensor inside InferenceMode."""
    status, out, _ = run(capsys, "tour")
    assert status == 0
    steps = sections(out)
    tracked = traced_blocks(steps[step_number("inplace")])
    assert tracked == {"a.add_(1)": ["aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU"]}
    assert trace_keys(steps[step_number("inplace")]) == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert re.search(r"\n    a\._version\s+= 1\n", steps[step_number("inplace")])
    inference = steps[step_number("inference")]
    assert traced_blocks(inference) == {"a.add_(1)": ["aten::add_.Tensor: CPU"]}
    assert trace_keys(inference) == ["CPU"]
    assert "'RuntimeError: Inference tensors do not track version counter.'" in inference
    # the document's statement about version bumps, side by side
    doc_step = steps[step_number("inplace-on-inference-tensor-does-not-bump-version")]
    assert traced_blocks(doc_step) == {
        "inference tensor, InferenceMode": ["aten::add_.Tensor: CPU", "aten::mul_.Tensor: CPU"],
        "normal tensor, InferenceMode": ["aten::add_.Tensor: ADInplaceOrView -> CPU"],
        "normal tensor, no_grad": ["aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU"],
    }
    # step 5 shows the table of the user's operator
    custom = steps[step_number("custom-op")]
    assert "myops::scale_: AutogradCPU -> ADInplaceOrView -> CPU" in custom
    assert "    CPU: registered at <dispatchsim tour step 5>:" in custom


def _statement_tests() -> list[tuple[str, str]]:
    """(test name, docstring) of tests/test_gradient_modes_doc.py's statement and example
    tests, in file order (the differential tests against torch left out)."""
    from tests import test_gradient_modes_doc as doc

    tests = [
        (name, fn)
        for name, fn in vars(doc).items()
        if name.startswith("test_") and inspect.isfunction(fn)
        if "matches_torch" not in name and "oracle" not in name
    ]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    return [(name, inspect.getdoc(fn) or "") for name, fn in tests]


def test_tour_mirrors_the_gradient_modes_document_tests() -> None:
    """After the basics, one tour step per test of tests/test_gradient_modes_doc.py, in the
    same order: a step for a "Statement:" test quotes the same statement, a step for an
    example test carries the document's example."""
    doc_steps = [s for s in STEPS if s.section != "Basics"]
    assert [s.section for s in STEPS[:5]] == ["Basics"] * 5
    assert STEPS[5:] == tuple(doc_steps)
    tests = _statement_tests()
    assert len(tests) == len(doc_steps) == 38
    for (name, docstring), step in zip(tests, doc_steps):
        m = re.match(r'Statement: "(.*?)"(?:\s|$)', docstring, re.DOTALL)
        if m:
            assert " ".join(m[1].split()) == step.statement, (name, step.name)
            assert not step.example
        else:
            assert name.startswith("test_example_") and step.name.startswith("example-"), name
            assert step.example and not step.statement, step.name
        assert step.checks, step.name
    assert len({s.name for s in STEPS}) == N_STEPS


def test_tour_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["failed"] == []
    steps = {s["name"]: s for s in data["steps"]}
    assert [s["number"] for s in data["steps"]] == list(range(1, N_STEPS + 1))
    for s in data["steps"]:
        assert s["ok"] is True and s["error"] is None
        assert s["checks"] and all(c["ok"] and c["observed"] is None for c in s["checks"])
        assert s["code"] == STEPS[s["number"] - 1].code.rstrip("\n")
    (inplace,) = steps["inplace"]["traces"]
    assert inplace["label"] == "a.add_(1)"
    assert inplace["keys_run"] == [["aten::add_.Tensor", ["AutogradCPU", "ADInplaceOrView", "CPU"]]]
    call = inplace["calls"][0]
    assert call["op"] == "aten::add_.Tensor" and call["redispatch"] is False
    assert call["keyset"] == ["CPU", "ADInplaceOrView", "AutogradCPU"]
    assert call["children"][0]["effects"][0]["type"] == "VersionBump"
    assert steps["inference"]["traces"][0]["keys_run"] == [["aten::add_.Tensor", ["CPU"]]]
    observed = {o["expr"]: o["value"] for o in steps["inference"]["observed"]}
    assert observed["error_of(lambda: a._version)"] == (
        "'RuntimeError: Inference tensors do not track version counter.'"
    )
    assert steps["custom-op"]["printed"].startswith("CPU: registered at <dispatchsim tour step 5>")
    nested = steps["example-nested-inference-mode"]
    assert nested["example"].startswith("{\n    c10::InferenceMode guard(true);")
    assert nested["traces"] == []


def test_tour_golden_text(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour")
    assert status == 0
    check_golden("tour.txt", out)


def test_tour_golden_json_of_three_steps(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "3", "4", "28", "--format", "json")
    assert status == 0
    assert [s["number"] for s in json.loads(out)["steps"]] == [3, 4, 28]
    check_golden("tour-3-4-28.json", out)


# -- mermaid -------------------------------------------------------------------------------
_PARTICIPANT = re.compile(r"^    participant (\w+)$")
_ARROW = re.compile(r"^    (\w+)(->>|-->>|--x)(\w+): ([^\n;#]+)$")
_NOTE = re.compile(r"^    Note (?:over (\w+),(\w+)|right of (\w+)): ([^\n;#]+)$")


def parse_mermaid(text: str) -> tuple[list[str], list[tuple[str, str, str, str]], list[str]]:
    """A sequence diagram as ``dispatch._cli.mermaid`` writes it: (participants, arrows
    (from, kind, to, text), notes); fails on any line that is none of these."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "sequenceDiagram"
    participants: list[str] = []
    arrows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    i = 1
    while i < len(lines) and _PARTICIPANT.match(lines[i]):
        participants.append(_PARTICIPANT.match(lines[i])[1])  # type: ignore[index]
        i += 1
    for line in lines[i:]:
        if m := _ARROW.match(line):
            assert m[1] in participants and m[3] in participants, line
            arrows.append((m[1], m[2], m[3], m[4]))
        elif m := _NOTE.match(line):
            assert all(p in participants for p in m.groups()[:3] if p is not None), line
            notes.append(m[4])
        else:
            pytest.fail(f"not a participant, arrow or note line: {line!r}")
    assert len(set(participants)) == len(participants)
    return participants, arrows, notes


def check_balanced(arrows: list[tuple[str, str, str, str]]) -> None:
    """Every call or redispatch arrow is answered by a return (or error) arrow back, in
    last-in first-out order."""
    stack: list[tuple[str, str]] = []
    for frm, kind, to, _ in arrows:
        if kind == "->>":
            stack.append((frm, to))
        else:
            assert stack and stack.pop() == (to, frm), (frm, kind, to)
    assert stack == []


def test_tour_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "3", "4", "--format", "mermaid")
    assert status == 0
    participants, arrows, notes = parse_mermaid(out)
    assert participants == ["Caller", "AutogradCPU", "ADInplaceOrView", "CPU"]
    assert notes == ["[3] inplace: a.add_(1)", "[4] inference: a.add_(1)"]
    assert arrows == [
        ("Caller", "->>", "AutogradCPU", "aten::add_.Tensor"),
        ("AutogradCPU", "->>", "ADInplaceOrView", "redispatch aten::add_.Tensor"),
        ("ADInplaceOrView", "->>", "CPU", "redispatch aten::add_.Tensor"),
        ("CPU", "-->>", "ADInplaceOrView", "return"),
        ("ADInplaceOrView", "-->>", "AutogradCPU", "version bump self (t0): 0 -> 1"),
        ("AutogradCPU", "-->>", "Caller", "return"),
        ("Caller", "->>", "CPU", "aten::add_.Tensor"),
        ("CPU", "-->>", "Caller", "return"),
    ]


def test_tour_mermaid_whole_tour_golden(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "--format", "mermaid")
    assert status == 0
    participants, arrows, notes = parse_mermaid(out)
    assert participants[0] == "Caller"
    assert {"AutogradCPU", "ADInplaceOrView", "CPU", "BackendSelect"} <= set(participants)
    check_balanced(arrows)
    assert any(kind == "--x" for _, kind, _, _ in arrows)  # the errors the steps provoke
    assert notes[0] == "[1] functional: a + b"
    assert "[31] example-nested-inference-mode: no traced block" in notes
    check_golden("tour.mmd", out)


# -- selecting and listing steps -------------------------------------------------------------
def test_tour_list(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "--list")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == N_STEPS
    assert [ln.split()[:2] for ln in lines] == [[str(i), s.name] for i, s in enumerate(STEPS, 1)]
    check_golden("tour-list.txt", out)
    status, out, _ = run(capsys, "tour", "--list", "--format", "json")
    assert [r["name"] for r in json.loads(out)["steps"]] == [s.name for s in STEPS]


@pytest.mark.parametrize("spec", ["3", "inplace", "INPLACE"])
def test_tour_one_step(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    status, out, _ = run(capsys, "tour", spec)
    assert status == 0
    steps = sections(out)
    assert list(steps) == [3]
    assert traced_blocks(steps[3])["a.add_(1)"] == [
        "aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU"
    ]
    assert not out.startswith("dispatchsim tour:")  # no introduction for a chosen step


def test_tour_several_steps_in_the_order_given(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "28", "inference", "28")
    assert status == 0
    assert list(sections(out)) == [28, 4]


def test_format_before_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--format", "json", "tour", "--list")
    assert status == 0
    assert [s["name"] for s in json.loads(out)["steps"]] == [s.name for s in STEPS]


# -- the tour observes; it does not recite ------------------------------------------------------
def test_tour_fails_when_observations_contradict_the_document(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With InferenceMode replaced by no_grad, the steps about inference mode observe
    something else than the document says: they fail, the tour exits 1, and each failure
    names the check and shows what was observed."""

    def fake_inference_mode(enabled: bool = True) -> Any:
        return modes.no_grad() if enabled else contextlib.nullcontext()

    monkeypatch.setattr(modes, "InferenceMode", fake_inference_mode)
    monkeypatch.setattr(modes, "inference_mode", fake_inference_mode)
    status, out, err = run(capsys, "tour")
    assert status == 1
    steps = sections(out)
    bump = steps[step_number("inplace-on-inference-tensor-does-not-bump-version")]
    assert (
        "    FAILED  keys('inference tensor, InferenceMode') == ['CPU', 'CPU']    (observed: "
        "['AutogradCPU', 'ADInplaceOrView', 'CPU', 'AutogradCPU', 'ADInplaceOrView', 'CPU'])"
    ) in bump
    assert "=> the statement CONTRADICTED (observed)" in bump
    assert "step 28 (inplace-on-inference-tensor-does-not-bump-version) failed: " in err
    # the steps that do not involve InferenceMode still hold
    for name in (
        "inplace",
        "nogradguard-scope",
        "legacy-guard-renamed-auto-dispatch-below-ad-inplace-or-view",
    ):
        assert "holds (observed)" in steps[step_number(name)], name
    failed = int(re.search(r"\n(\d+) of \d+ steps hold\.", out)[1])  # type: ignore[index]
    assert 10 < failed < N_STEPS
    status, out, _ = run(capsys, "tour", "inference", "--format", "json")
    assert status == 1
    data = json.loads(out)
    assert data["failed"] == ["inference"]
    failed_checks = [c for c in data["steps"][0]["checks"] if not c["ok"]]
    assert failed_checks[0] == {
        "expr": "keys('a.add_(1)') == ['CPU']",
        "ok": False,
        "observed": "['AutogradCPU', 'ADInplaceOrView', 'CPU']",
    }


def test_failing_step_reports_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with dispatch.Library("myops", "DEF"):  # the tour's own DEF of "myops" must now fail
        status, out, err = run(capsys, "tour", "5")
        assert status == 1
        assert "error: RuntimeError: Only a single TORCH_LIBRARY" in out
        assert "step 5 (custom-op) failed: RuntimeError: Only a single TORCH_LIBRARY" in err
        assert "checks (what the document says)" not in out  # nothing to check after an error
    status, _, _ = run(capsys, "tour", "5")
    assert status == 0


def test_tour_cleans_up_registrations_and_tls(capsys: pytest.CaptureFixture[str]) -> None:
    before = tls_state()
    with modes.no_grad():
        inside = tls_state()
        for _ in range(2):  # the DEF libraries are released, so the steps can run again
            assert main(["tour", "custom-op", "42", "43"]) == 0
            for op in ("myops::scale_", "torchvision::roi_align", "roi_guarded::roi_align"):
                assert registry.find_op(op) is None, op
            assert tls_state() == inside
    assert tls_state() == before
    capsys.readouterr()


# =========================================================================================
# explain
# =========================================================================================
def test_explain_in_place_op_in_inference_mode(capsys: pytest.CaptureFixture[str]) -> None:
    before = tls_state()
    status, out, _ = run(capsys, "explain", "ones(3).add_(1)", "--mode", "inference")
    assert status == 0
    assert tls_state() == before
    assert "result      tensor([2., 2., 2.])" in out
    assert "  aten::add_.Tensor: grad mode off, inference mode on" in out
    assert "  - TLS excluded        {AutogradOther, AutogradCPU, AutogradMeta}" in out
    assert "  = dispatch key set    {CPU}" in out
    assert out.rstrip("\n").endswith("  ran: CPU")
    check_golden("explain-inference.txt", out)
    status, out, _ = run(
        capsys, "explain", "ones(3).add_(1)", "--mode", "inference", "--format", "json"
    )
    assert status == 0
    data = json.loads(out)
    assert data["mode"] == "inference" and data["error"] is None
    assert data["keys_run"] == [
        ["aten::ones", ["BackendSelect", "CPU"]],
        ["aten::add_.Tensor", ["CPU"]],
    ]
    last = data["last_call"]
    assert last["op"] == "aten::add_.Tensor" and last["key"] == "CPU"
    assert last["keys_run"] == ["CPU"] and last["inference_mode"] is True
    assert last["formation"]["arguments"][0]["keyset"] == ["CPU"]
    check_golden("explain-inference.json", out)


@pytest.mark.parametrize(
    ("mode", "grad", "ran"),
    [
        ("normal", "on", "AutogradCPU -> ADInplaceOrView -> CPU"),
        ("no_grad", "off", "AutogradCPU -> ADInplaceOrView -> CPU"),
        ("inference", "off", "CPU"),
    ],
)
def test_explain_modes(capsys: pytest.CaptureFixture[str], mode: str, grad: str, ran: str) -> None:
    status, out, _ = run(capsys, "explain", "ones(3).view(3).add_(1)", "--mode", mode)
    assert status == 0
    assert f"aten::add_.Tensor: grad mode {grad}" in out
    assert out.rstrip("\n").endswith(f"  ran: {ran}")
    assert "operator calls (3), as traced:" in out
    if mode != "inference":  # the view of a normal tensor ran ADInplaceOrView
        assert "runs first: AutogradCPU: autograd_kernel [autograd kernel, from Autograd]" in out
    check_golden(f"explain-view-add-{mode}.txt", out)


def test_explain_statements_and_a_raising_expression(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "explain", "w = ones(3, requires_grad=True); w.add_(1)")
    assert status == 1
    assert "raised      RuntimeError: a leaf Variable that requires grad is being used" in out
    assert "  ran: AutogradCPU  (raised RuntimeError)" in out
    status, out, _ = run(
        capsys, "explain", "i = ones(3); j = i.mul(2); j._version", "--format", "json"
    )
    assert status == 0
    assert json.loads(out)["result"] == "0"
    status, out, _ = run(capsys, "explain", "ones(2) @ ones(2)")
    assert status == 0
    assert "the last call, aten::matmul, explained:" in out
    assert (
        "runs first: AutogradCPU: " in out
        and "[math kernel, from CompositeImplicitAutograd]" in out
    )
    status, out, _ = run(capsys, "explain", "[1, 2][0] + 1")
    assert status == 0
    assert "operator calls (0), as traced:\n  (none)" in out


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("ones(3", "cannot parse expression 'ones(3'"),
        ("", "empty expression"),
        ("nope(3)", "unknown name 'nope'; the names are: add, arange"),
        ("ones(3).__class__", "attribute '__class__' is not allowed"),
        ("ones(3)._keys", "attribute '_keys' is not allowed"),
        ("ones(3).numpy().tofile('x')", "attribute 'tofile' of a ndarray"),
        ("import os", "not Import"),
        ("(lambda: 1)()", "Lambda is not allowed"),
        ("[x for x in ones(3)]", "ListComp is not allowed"),
        ("ones(*[3])", "*args is not allowed"),
        ("ones(3).nope()", "has no attribute 'nope'"),
        ("ops.aten.nope(1)", "has no attribute 'nope'"),
        ("a, b = 1, 2", "only `name = expression` assignments are allowed"),
        ("__builtins__", "unknown name '__builtins__'"),
    ],
)
def test_explain_bad_expressions_exit_2(
    capsys: pytest.CaptureFixture[str], expr: str, message: str
) -> None:
    status, out, err = run(capsys, "explain", expr)
    assert status == 2
    assert message in err
    assert "usage: dispatchsim explain" in err
    assert out == ""


# =========================================================================================
# trace
# =========================================================================================
def test_trace_demo_script(capsys: pytest.CaptureFixture[str], at_root: None) -> None:
    before = (tls_state(), list(sys.argv), list(sys.path))
    status, out, _ = run(capsys, "trace", DEMO_SCRIPT)
    assert status == 0
    assert (tls_state(), sys.argv, sys.path) == before
    assert out.startswith(f"script  {DEMO_SCRIPT}\nmode    normal (no guard)\nprinted:\n")
    assert "  [3.0, 3.0, 3.0] [2.0, 2.0, 2.0]\n" in out
    assert "trace (5 operator calls, 10 kernels):" in out
    keys = out.split("keys run, per call:\n")[1].splitlines()
    assert keys == [
        "  aten::ones: BackendSelect -> CPU",
        "  aten::mul.Tensor: AutogradCPU -> CPU",
        "  aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU",
        "  aten::ones: BackendSelect -> CPU",
        "  aten::add_.Tensor: CPU",
    ]
    check_golden("trace-demo.txt", out)


def test_trace_demo_script_json(capsys: pytest.CaptureFixture[str], at_root: None) -> None:
    status, out, _ = run(capsys, "trace", DEMO_SCRIPT, "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["script"] == DEMO_SCRIPT and data["error"] is None
    assert data["stdout"] == "[3.0, 3.0, 3.0] [2.0, 2.0, 2.0]\n"
    assert [c["op"] for c in data["calls"]] == [op for op, _ in data["keys_run"]]
    assert data["keys_run"][2] == ["aten::add_.Tensor", ["AutogradCPU", "ADInplaceOrView", "CPU"]]
    assert data["keys_run"][4] == ["aten::add_.Tensor", ["CPU"]]
    restored = dispatch.Trace.from_dict({"calls": data["calls"]})
    assert [e.key for e in restored.events][-1] == "CPU"
    check_golden("trace-demo.json", out)


def test_trace_demo_script_mermaid(capsys: pytest.CaptureFixture[str], at_root: None) -> None:
    status, out, _ = run(capsys, "trace", DEMO_SCRIPT, "--format", "mermaid")
    assert status == 0
    participants, arrows, notes = parse_mermaid(out)
    assert participants == ["Caller", "AutogradCPU", "ADInplaceOrView", "BackendSelect", "CPU"]
    assert notes == []
    check_balanced(arrows)
    calls = [(frm, to, text) for frm, kind, to, text in arrows if kind == "->>"]
    assert calls[4:7] == [
        ("Caller", "AutogradCPU", "aten::add_.Tensor"),
        ("AutogradCPU", "ADInplaceOrView", "redispatch aten::add_.Tensor"),
        ("ADInplaceOrView", "CPU", "redispatch aten::add_.Tensor"),
    ]
    assert calls[-1] == ("Caller", "CPU", "aten::add_.Tensor")
    check_golden("trace-demo.mmd", out)


def test_trace_under_a_mode(capsys: pytest.CaptureFixture[str], at_root: None) -> None:
    """--mode inference runs the whole script inside inference_mode(): every tensor is an
    inference tensor, and no Autograd or ADInplaceOrView kernel runs."""
    status, out, _ = run(capsys, "trace", DEMO_SCRIPT, "--mode", "inference", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["mode"] == "inference" and data["error"] is None
    assert [op for op, _ in data["keys_run"]] == [
        "aten::ones",
        "aten::mul.Tensor",
        "aten::add_.Tensor",
        "aten::ones",
        "aten::add_.Tensor",
    ]
    assert {k for _, keys in data["keys_run"] for k in keys} == {"BackendSelect", "CPU"}
    status, out, _ = run(capsys, "trace", DEMO_SCRIPT, "--mode", "no_grad")
    assert status == 0
    assert "mode    no_grad (inside modes.no_grad())" in out
    assert "aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU" in out
    assert "grad_fn MulBackward0" not in out  # grad mode off: nothing recorded


def write_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_trace_script_that_raises(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "import dispatch\n"
        "import modes\n"
        "lib = dispatch.Library('trace_test_ns', 'DEF')\n"
        "lib.define('f(Tensor x) -> Tensor')\n"
        "with modes.inference_mode():\n"
        "    i = dispatch.ones(2)\n"
        "print('before')\n"
        "i.add_(1)\n"
        "print('not reached')\n",
    )
    before = tls_state()
    status, out, err = run(capsys, "trace", script)
    assert status == 1
    assert tls_state() == before
    assert registry.find_op("trace_test_ns::f") is None  # the script's library was closed
    assert "printed:\n  before\ntrace (2 operator calls" in out
    assert "the script raised RuntimeError: Inplace update to inference tensor outside" in out
    assert "aten::add_.Tensor: AutogradCPU -> ADInplaceOrView" in out
    assert "Traceback (most recent call last):" in err
    assert f'File "{script}", line 8' in err
    assert "dispatch/_cli" not in err  # the traceback starts in the script


def test_trace_script_arguments_and_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = write_script(
        tmp_path,
        "import sys\nimport dispatch\n"
        "print(sys.argv[1:], __name__)\n"
        "dispatch.ones(int(sys.argv[1]))\n"
        "sys.exit(int(sys.argv[2]))\n",
    )
    status, out, _ = run(capsys, "trace", script, "2", "0", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["stdout"] == "['2', '0'] __main__\n"
    assert data["argv"] == ["2", "0"]
    assert data["keys_run"] == [["aten::ones", ["BackendSelect", "CPU"]]]
    status, out, _ = run(capsys, "trace", script, "--format", "json", "--", "3", "4")
    assert status == 1
    data = json.loads(out)
    assert data["argv"] == ["3", "4"] and data["error"] == "SystemExit: 4"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "does/not/exist.py"], "cannot read script 'does/not/exist.py'"),
        (["trace"], "required: SCRIPT"),
    ],
)
def test_trace_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert message in err and "usage: dispatchsim trace" in err
    assert out == ""


def test_trace_uncompilable_script_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = run(capsys, "trace", write_script(tmp_path, "def (:\n"))
    assert status == 2
    assert "cannot compile script" in err


# =========================================================================================
# keys, table
# =========================================================================================
def test_keys(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "keys")
    assert status == 0
    order = [
        "AutogradMeta",
        "AutogradCPU",
        "AutogradOther",
        "ADInplaceOrView",
        "Python",
        "BackendSelect",
        "Meta",
        "CPU",
    ]
    positions = [out.index(f"  {name} ") for name in order]
    assert positions == sorted(positions)
    assert "included        DispatchKeySet(BackendSelect, ADInplaceOrView)" in out
    assert "excluded        DispatchKeySet()" in out
    check_golden("keys.txt", out)


def test_keys_json_under_inference_mode(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "keys", "--under", "inference_mode", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert [k["name"] for k in data["runtime_keys"]][:2] == ["AutogradMeta", "AutogradCPU"]
    assert data["tls"]["included"] == ["BackendSelect"]
    assert data["tls"]["excluded"] == ["AutogradOther", "AutogradCPU", "AutogradMeta"]
    assert data["tls"]["inference_mode"] is True
    assert data["new_cpu_tensor"]["key_set"] == ["CPU"]
    assert data["new_cpu_tensor"]["add_keys_run"] == ["CPU"]
    assert data["alias_keys"]["Autograd"] == ["AutogradOther", "AutogradCPU", "AutogradMeta"]
    assert not modes.is_inference_mode_enabled()
    check_golden("keys-inference_mode.json", out)


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "table", "aten::add_.Tensor")
    assert status == 0
    assert out == dispatch.dump_table("aten::add_.Tensor")
    assert "ADInplaceOrView:" in out and "CPU:" in out
    check_golden("table-add_.Tensor.txt", out)


def test_table_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "table", "aten::add_.Tensor", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["op"] == "aten::add_.Tensor"
    assert data["dump"] == dispatch.dump_table("aten::add_.Tensor")
    by_key = {e["key"]: e for e in data["table"]}
    assert by_key["CPU"]["provenance"] == "kernel"
    assert set(by_key) >= {"CPU", "ADInplaceOrView", "AutogradCPU"}
    check_golden("table-add_.Tensor.json", out)


# =========================================================================================
# errors, help, colour
# =========================================================================================
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tabel"], "invalid choice: 'tabel'"),
        ([], "required: COMMAND"),
        (["table", "aten::nope"], "operator aten::nope does not exist"),
        (["table", "aten::add_"], "did you mean: aten::add_.Scalar, aten::add_.Tensor"),
        (["table"], "required: OP"),
        (["tour", "99"], "unknown step '99'"),
        (["tour", "3", "nope"], "unknown step 'nope'"),
        (["keys", "--under", "nope"], "invalid choice: 'nope'"),
        (["tour", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["explain"], "required: EXPR"),
        (["explain", "ones(3)", "--mode", "eval"], "invalid choice: 'eval'"),
        (["keys", "--format", "mermaid"], "invalid choice: 'mermaid'"),
        (["--format", "mermaid", "table", "aten::add"], "not table"),
        (["explain", "ones(3)", "--format", "mermaid"], "invalid choice: 'mermaid'"),
    ],
)
def test_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert message in err
    assert "usage: dispatchsim" in err
    assert out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["tour", "--help"],
        ["trace", "-h"],
        ["explain", "-h"],
        ["keys", "-h"],
        ["table", "-h"],
    ],
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert out.startswith("usage: dispatchsim")
    assert "--format" in out
    if argv[0] in ("tour", "trace"):
        assert "mermaid" in out
    if argv[0] in ("trace", "explain"):
        assert "--mode" in out


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colour_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert _use_colour(_Stream(tty=True))  # type: ignore[arg-type]
    assert not _use_colour(_Stream(tty=False))  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _use_colour(_Stream(tty=True))  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value does not count
    assert _use_colour(_Stream(tty=True))  # type: ignore[arg-type]
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not _use_colour(_Stream(tty=True))  # type: ignore[arg-type]


def test_colour_is_used_for_text_on_a_terminal_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dispatch.__main__ as cli

    monkeypatch.setattr(cli, "use_colour", lambda stream: True)
    for argv in (["tour", "3"], ["explain", "ones(3).add_(1)"], ["keys"]):
        status, out, _ = run(capsys, *argv)
        assert status == 0
        assert "\033[36mAutogradCPU\033[0m" in out or "\033[36mCPU\033[0m" in out, argv
    status, out, _ = run(capsys, "tour", "3", "--format", "json")
    assert "\033[" not in out
    json.loads(out)
    plain = re.sub(r"\033\[\d+m", "", run(capsys, "tour", "3")[1])
    monkeypatch.setattr(cli, "use_colour", lambda stream: False)
    assert run(capsys, "tour", "3")[1] == plain  # colour adds escapes and nothing else


# =========================================================================================
# docs/cli.md: every console example is what the command prints
# =========================================================================================
def console_examples() -> list[tuple[int, list[str], str, int]]:
    """(line, argv, expected stdout, expected status) of every ```console block of
    docs/cli.md: a ``$ dispatchsim ...`` line, then the output, optionally ending with an
    ``[exit status N]`` line."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```console\n(.*?)^```$", text, re.DOTALL | re.MULTILINE):
        lines = m[1].splitlines()
        assert lines[0].startswith("$ dispatchsim "), lines[0]
        argv = shlex.split(lines[0][2:])[1:]
        body = lines[1:]
        status = 0
        if body and (s := re.fullmatch(r"\[exit status (\d+)\]", body[-1])):
            status, body = int(s[1]), body[:-1]
        line = text[: m.start()].count("\n") + 2
        out.append((line, argv, "".join(b + "\n" for b in body), status))
    return out


def test_docs_cli_console_examples_are_real(
    capsys: pytest.CaptureFixture[str], at_root: None
) -> None:
    examples = console_examples()
    assert len(examples) >= 5
    commands = {argv[0] for _, argv, _, _ in examples}
    assert commands >= {"tour", "trace", "explain", "table", "keys"}
    for line, argv, expected, expected_status in examples:
        status, out, _ = run(capsys, *argv)
        assert status == expected_status, f"docs/cli.md line {line}: {argv}"
        if normalized(out) != normalized(expected):
            diff = "\n".join(
                difflib.unified_diff(
                    expected.splitlines(), out.splitlines(), "docs/cli.md", "output", lineterm=""
                )
            )
            pytest.fail(f"docs/cli.md line {line}: `dispatchsim {shlex.join(argv)}`:\n{diff}")


# =========================================================================================
# subprocesses
# =========================================================================================
def test_python_dash_m_dispatch_tour() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dispatch", "tour"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    steps = sections(proc.stdout)
    assert len(steps) == N_STEPS
    assert traced_blocks(steps[3])["a.add_(1)"] == [
        "aten::add_.Tensor: AutogradCPU -> ADInplaceOrView -> CPU"
    ]
    assert traced_blocks(steps[4])["a.add_(1)"] == ["aten::add_.Tensor: CPU"]


def test_python_dash_m_dispatch_bad_argument_exit_status() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dispatch", "table", "aten::nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "operator aten::nope does not exist" in proc.stderr


def test_benchmarks_quick_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dsim/numpy" in proc.stdout
    data = json.loads(out.read_text())
    assert {"created", "environment", "settings", "libraries", "results"} <= set(data)
    env = data["environment"]
    assert {"python", "numpy", "torch", "cpu_count"} <= set(env)
    assert data["settings"]["quick"] is True
    assert data["settings"]["add_inplace_reset"] is False
    cells = {(r["op"], tuple(r["shape"])) for r in data["results"]}
    assert cells == {
        (op, shape)
        for op in ("a + b", "a.add_(1)", "a.view(-1)", "a[1:]")
        for shape in ((4,), (64, 64))
    }
    for r in data["results"]:
        assert r["us"]["dispatchsim"]["median"] > 0
        assert r["us"]["numpy"]["median"] > 0
        assert r["ratio_numpy"] > 0
        assert (r["us"]["torch"] is None) == (r["ratio_torch"] is None) == (env["torch"] is None)
