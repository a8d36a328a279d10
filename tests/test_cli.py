"""The ``dispatchsim`` command line (dispatch/__main__.py), run in-process through
``main([...])``, plus one real ``python -m dispatch`` and a smoke run of the benchmarks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dispatch
import modes
from dispatch.__main__ import STEPS, _use_colour, main
from dispatch.dispatcher import dispatcher as registry
from dispatch.tls import state as tls

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def sections(out: str) -> dict[int, str]:
    """Tour text output -> {step number: that step's text}."""
    parts = re.split(r"^\[(\d+)/\d+\] ", out, flags=re.MULTILINE)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}


def keys_run_line(section: str) -> list[str]:
    (line,) = [ln for ln in section.splitlines() if ln.startswith("  keys run: ")]
    return line.removeprefix("  keys run: ").split(" -> ")


def trace_keys(section: str) -> list[str]:
    return re.findall(r"\] \S+ -> (\w+) \[", section)


# -- tour -------------------------------------------------------------------------------
def test_tour_runs_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "tour")
    assert status == 0, err
    steps = sections(out)
    assert sorted(steps) == [1, 2, 3, 4, 5]
    for body in steps.values():
        for heading in ("  code:", "  trace:", "  keys run:", "  outcome:", "  why:"):
            assert heading in body
    # step 3, a.add_(1) on a normal tensor: autograd, then ADInplaceOrView, then CPU
    assert keys_run_line(steps[3]) == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert trace_keys(steps[3]) == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert re.search(r"a\._version\s+0 -> 1", steps[3])
    # step 4, the same op on an inference tensor inside inference_mode(): CPU only
    assert keys_run_line(steps[4]) == ["CPU"]
    assert trace_keys(steps[4]) == ["CPU"]
    assert "Inference tensors do not track version counter." in steps[4]
    assert re.search(r"out\.is_inference\(\)\s+True", steps[4])
    # step 2 makes a view; step 5 runs the user op and shows its table
    assert re.search(r"out\._is_view\(\)\s+True", steps[2])
    assert "myops::scale_" in steps[5] and "CPU: registered at" in steps[5]
    assert "\033[" not in out  # not a terminal: no colour


def test_tour_list(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "--list")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == len(STEPS) == 5
    assert [ln.split()[:2] for ln in lines] == [[str(i), s.name] for i, s in enumerate(STEPS, 1)]


@pytest.mark.parametrize("spec", ["3", "inplace", "INPLACE"])
def test_tour_one_step(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    status, out, _ = run(capsys, "tour", spec)
    assert status == 0
    steps = sections(out)
    assert list(steps) == [3]
    assert keys_run_line(steps[3]) == ["AutogradCPU", "ADInplaceOrView", "CPU"]


def test_tour_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "tour", "--format", "json")
    assert status == 0
    data = json.loads(out)
    steps = {s["number"]: s for s in data["steps"]}
    assert steps[3]["keys_run"] == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert steps[4]["keys_run"] == ["CPU"]
    assert steps[3]["outcome"]["version_before"] == 0
    assert steps[3]["outcome"]["version_after"] == 1
    assert steps[3]["outcome"]["out_is_a"] is True
    assert steps[4]["outcome"]["version_after"] is None
    assert steps[4]["outcome"]["version_error"] == "Inference tensors do not track version counter."
    assert steps[4]["outcome"]["is_inference"] is True
    assert steps[2]["outcome"]["is_view"] is True
    assert steps[5]["outcome"]["values"] == [2.0, 2.0, 2.0]
    assert all(s["error"] is None for s in data["steps"])
    first = steps[3]["trace"][0]
    assert first["op"] == "aten::add_.Tensor" and first["redispatch"] is False
    assert first["keyset"] == ["CPU", "ADInplaceOrView", "AutogradCPU"]


def test_format_before_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--format", "json", "tour", "--list")
    assert status == 0
    assert [s["name"] for s in json.loads(out)["steps"]] == [s.name for s in STEPS]


def test_tour_cleans_up_registrations_and_tls(capsys: pytest.CaptureFixture[str]) -> None:
    before = (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.tracer)
    with modes.no_grad():
        inside = (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.tracer)
        for _ in range(2):  # the "myops" DEF library is released, so it can run again
            assert main(["tour", "custom-op"]) == 0
            assert registry.find_op("myops::scale_") is None
            assert (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.tracer) == (
                inside
            )
    assert (tls.included, tls.excluded, tls.grad_mode, tls.inference_mode, tls.tracer) == before
    capsys.readouterr()


def test_failing_step_reports_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with dispatch.Library("myops", "DEF"):  # the tour's own DEF of "myops" must now fail
        status, out, err = run(capsys, "tour", "5")
        assert status == 1
        assert "error: RuntimeError: Only a single TORCH_LIBRARY" in out
        assert "step 5 (custom-op) failed" in err
    status, _, _ = run(capsys, "tour", "5")
    assert status == 0


# -- keys, table ----------------------------------------------------------------------------
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


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "table", "aten::add_.Tensor")
    assert status == 0
    assert out == dispatch.dump_table("aten::add_.Tensor")
    assert "ADInplaceOrView:" in out and "CPU:" in out


def test_table_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "table", "aten::add_.Tensor", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["op"] == "aten::add_.Tensor"
    assert data["dump"] == dispatch.dump_table("aten::add_.Tensor")
    by_key = {e["key"]: e for e in data["table"]}
    assert by_key["CPU"]["provenance"] == "kernel"
    assert set(by_key) >= {"CPU", "ADInplaceOrView", "AutogradCPU"}


# -- errors, help, colour -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tabel"], "invalid choice: 'tabel'"),
        ([], "required: COMMAND"),
        (["table", "aten::nope"], "operator aten::nope does not exist"),
        (["table", "aten::add_"], "did you mean: aten::add_.Scalar, aten::add_.Tensor"),
        (["table"], "required: OP"),
        (["tour", "9"], "unknown step '9'"),
        (["tour", "nope"], "unknown step 'nope'"),
        (["keys", "--under", "nope"], "invalid choice: 'nope'"),
        (["tour", "--format", "yaml"], "invalid choice: 'yaml'"),
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


@pytest.mark.parametrize("argv", [["--help"], ["tour", "--help"], ["keys", "-h"], ["table", "-h"]])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert out.startswith("usage: dispatchsim")
    assert "--format" in out


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


# -- subprocesses ---------------------------------------------------------------------------
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
    assert keys_run_line(steps[3]) == ["AutogradCPU", "ADInplaceOrView", "CPU"]
    assert keys_run_line(steps[4]) == ["CPU"]


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
