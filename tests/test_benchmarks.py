"""The benchmark suite (``python -m benchmarks``): quick smoke runs checking the JSON's
structure and that every ratio and target verdict is computed from the measured figures,
plus unit tests of the pieces (target evaluation on synthetic data, the timing loop's
untimed setup/teardown, the numpy MLP's hand-written backward). Timings themselves are
never asserted: they are noise on a shared machine."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dispatch
import modes
from benchmarks import suite
from benchmarks._timing import Timer, calibrate, interleave

ROOT = Path(__file__).resolve().parents[1]
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _run_quick(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--repeats",
            "2",
            "--target-ms",
            "0.2",
            "--json",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def _check_structure(data: dict[str, Any], stdout: str, torch_used: bool) -> None:
    libs = ["dispatchsim", "numpy", *(["torch"] if torch_used else [])]
    assert data["libraries"] == libs
    assert data["groups"] == list(suite.GROUPS)
    assert (data["environment"]["torch"] is not None) == torch_used
    cells = data["cells"]
    by_key = {(c["group"], c["op"], c["shape"], c["mode"], c["library"]): c for c in cells}
    assert len(by_key) == len(cells)
    # every timed group, with every library, and every op/shape/mode of ops
    for group in suite.TIMED_GROUPS:
        got = {c["library"] for c in cells if c["group"] == group}
        assert got == (set(libs) - {"numpy"} if group == "guards" else set(libs)), group
    for op in suite.OPS:
        for shape in ("(4,)", "(64, 64)"):
            assert ("ops", op, shape, suite.NUMPY_MODE, "numpy") in by_key
            for mode in suite.MODES:
                for lib in libs:
                    if lib != "numpy":
                        assert ("ops", op, shape, mode, lib) in by_key
    for c in cells:
        us = c["us"]
        assert us["median"] > 0 and us["min"] <= us["median"] <= us["max"], c
        assert us["rounds"] == 2 and us["inner_loops"] >= 1
        assert c["statement"]
        if c["library"] != "dispatchsim":
            continue
        key = (c["group"], c["op"], c["shape"], c["mode"])
        t = by_key.get((*key, "torch"))
        n = by_key.get((*key, "numpy")) or by_key.get((*key[:3], suite.NUMPY_MODE, "numpy"))
        if t is None:
            assert c["ratio_torch"] is None and not torch_used
        else:
            assert c["ratio_torch"] == pytest.approx(us["median"] / t["us"]["median"])
        if n is None:
            assert c["ratio_numpy"] is None and c["group"] == "guards"
        else:
            assert c["ratio_numpy"] == pytest.approx(us["median"] / n["us"]["median"])
        if c["group"] == "ops" and c["mode"].startswith("IM-"):
            ng = by_key[(*key[:3], "no_grad", "dispatchsim")]
            assert c["ratio_over_no_grad"] == pytest.approx(us["median"] / ng["us"]["median"])
    # untimed groups
    sm = data["state_machine"]
    assert sm["examples"] >= 1 and sm["steps"] >= 1 and sm["seconds"] > 0
    assert sm["examples_per_second"] == pytest.approx(sm["examples"] / sm["seconds"])
    assert sm["settings"]["derandomize"] is True and sm["settings"]["database"] is None
    mem = data["memory"]["libraries"]
    assert list(mem) == libs
    for m in mem.values():
        assert m["tracemalloc_bytes_per_tensor"] > 0
    # a dispatchsim tensor holds an ndarray, so it costs more Python heap than one
    assert (
        mem["dispatchsim"]["tracemalloc_bytes_per_tensor"]
        > mem["numpy"]["tracemalloc_bytes_per_tensor"]
    )
    tr = data["tracing"]
    assert [r["op"] for r in tr["rows"]] == ["a + b", "a.add_(1)", "a.view(-1)"]
    assert tr["worst_ratio_median"] == max(r["ratio_median"] for r in tr["rows"])
    # targets: recomputed from the cells, and met iff value <= limit
    targets = data["targets"]
    assert targets == suite.evaluate_targets(cells, tr)
    assert len(targets) == 24
    for t in targets:
        if t["value"] is None:
            assert t["met"] is None and "dsim/torch" in t["name"] and not torch_used
        else:
            assert t["met"] is (t["value"] <= t["limit"])
    im = [t for t in targets if "IM-inference / dsim no_grad" in t["name"]]
    assert len(im) == 3 and all(isinstance(t["met"], bool) for t in im)
    assert isinstance(targets[-1]["met"], bool)  # tracing
    # the earlier bench_ops rows are kept (tests/test_cli.py reads them)
    assert len(data["results"]) == 8
    assert "TARGETS" in stdout and "dsim/torch" in stdout and "dsim/numpy" in stdout
    for group in suite.GROUPS:
        assert f"== {group}" in stdout


def test_quick_run_without_torch(tmp_path: Path) -> None:
    data, stdout = _run_quick(tmp_path, "--no-torch")
    _check_structure(data, stdout, torch_used=False)
    assert all(t["met"] is None for t in data["targets"] if "dsim/torch" in t["name"])


@pytest.mark.oracle
@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
def test_quick_run_with_torch(tmp_path: Path) -> None:
    data, stdout = _run_quick(tmp_path)
    _check_structure(data, stdout, torch_used=True)
    assert data["environment"]["torch_num_threads"] == data["settings"]["torch_threads"] == 1
    assert all(isinstance(t["met"], bool) for t in data["targets"])


def test_groups_subset(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    rc = suite.main(
        ["--quick", "--no-torch", "--groups", "guards,memory", "--repeats", "1", "--json", str(out)]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["groups"] == ["guards", "memory"]
    assert {c["group"] for c in data["cells"]} == {"guards"}
    assert "memory" in data and "state_machine" not in data and "tracing" not in data
    assert all(t["met"] is None for t in data["targets"])  # nothing a target needs was run


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(SystemExit) as e:
        suite.main(["--groups", "ops,nope"])
    assert e.value.code == 2


# -- target evaluation on synthetic figures --------------------------------------------
def _cell(group: str, op: str, shape: str, mode: str, lib: str, us: float) -> dict[str, Any]:
    return {
        "group": group,
        "op": op,
        "shape": shape,
        "mode": mode,
        "library": lib,
        "us": {"median": us, "min": us, "max": us, "rounds": 1, "inner_loops": 1},
    }


def _synthetic(ratio: float, im_ratio: float, guard_ratio: float) -> list[dict[str, Any]]:
    """dsim/torch = ``ratio`` for every (4,) op and mode, and ``guard_ratio`` for the
    guards, 2 * ``guard_ratio`` for the MLP; dsim IM-inference / no_grad = ``im_ratio``."""
    cells = []
    for op in ("a + b", "a.view(-1)", "a.add_(1)"):
        cells.append(_cell("ops", op, "(4,)", "-", "numpy", 0.5))
        for mode in suite.MODES:
            ds = 10.0 * (im_ratio if mode == "IM-inference" else 1.0)
            cells.append(_cell("ops", op, "(4,)", mode, "dispatchsim", ds))
            cells.append(_cell("ops", op, "(4,)", mode, "torch", ds / ratio))
    for guard in ("no_grad", "inference_mode"):
        cells.append(_cell("guards", guard, "-", "-", "dispatchsim", 3.0))
        cells.append(_cell("guards", guard, "-", "-", "torch", 3.0 / guard_ratio))
    for mode in suite.MLP_MODES:
        cells.append(_cell("mlp", "forward", "(16, 32)", mode, "dispatchsim", 40.0))
        cells.append(_cell("mlp", "forward", "(16, 32)", mode, "torch", 20.0 * guard_ratio))
    suite.add_ratios(cells)
    return cells


def _tracing(worst: float) -> dict[str, Any]:
    return {"worst_ratio_median": worst, "worst_estimated_ratio": 1.001}


def test_add_ratios_divides_dispatchsim_by_each_library() -> None:
    cells = _synthetic(ratio=2.5, im_ratio=0.5, guard_ratio=1.0)
    idx = {(c["group"], c["op"], c["mode"], c["library"]): c for c in cells}
    c = idx[("ops", "a + b", "IM-inference", "dispatchsim")]
    assert c["us"]["median"] == 5.0
    assert c["ratio_torch"] == pytest.approx(2.5)
    assert c["ratio_numpy"] == pytest.approx(10.0)  # numpy's mode-less figure, 0.5 us
    assert c["ratio_over_no_grad"] == pytest.approx(0.5)
    assert idx[("ops", "a + b", "IM-inference", "torch")]["ratio_over_no_grad"] == pytest.approx(
        0.5
    )
    assert "ratio_torch" not in idx[("ops", "a + b", "normal", "torch")]
    g = idx[("guards", "no_grad", "-", "dispatchsim")]
    assert g["ratio_numpy"] is None and g["ratio_torch"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ratio", "im", "guard", "trace", "expect"),
    [
        (2.9, 0.7, 1.9, 1.02, True),
        (3.0, 0.8, 2.0, 1.03, True),  # the limits themselves are met (<=)
        (3.1, 0.7, 1.9, 1.02, False),
        (2.9, 0.85, 1.9, 1.02, False),
        (2.9, 0.7, 2.1, 1.02, False),
        (2.9, 0.7, 1.9, 1.04, False),
    ],
)
def test_evaluate_targets(
    ratio: float, im: float, guard: float, trace: float, expect: bool
) -> None:
    cells = _synthetic(ratio, im, guard)
    targets = suite.evaluate_targets(cells, _tracing(trace))
    kinds = {
        "ops": [t for t in targets if "(4,)" in t["name"] and "dsim/torch" in t["name"]],
        "im": [t for t in targets if "IM-inference / dsim no_grad" in t["name"]],
        "guard": [t for t in targets if t["name"].startswith("guard ")],
        "mlp": [t for t in targets if t["name"].startswith("MLP forward")],
        "trace": [t for t in targets if t["name"].startswith("tracing")],
    }
    assert [len(v) for v in kinds.values()] == [15, 3, 2, 3, 1]
    assert sum(len(v) for v in kinds.values()) == len(targets)
    values = {"ops": ratio, "im": im, "guard": guard, "mlp": 2.0 / guard, "trace": trace}
    for kind, ts in kinds.items():
        for t in ts:
            assert t["value"] == pytest.approx(values[kind]), t
    bad = {
        "ops": ratio > 3.0,
        "im": im > 0.8,
        "guard": guard > 2.0,
        "mlp": 2.0 / guard > 2.0,
        "trace": trace > 1.03,
    }
    for kind, ts in kinds.items():
        assert all(t["met"] is (not bad[kind]) for t in ts), (kind, ts)
    assert all(t["met"] for t in targets) is expect


def test_targets_without_figures_are_not_measured() -> None:
    targets = suite.evaluate_targets([], None)
    assert targets and all(t["value"] is None and t["met"] is None for t in targets)


# -- the timing loop ---------------------------------------------------------------------
def test_timer_setup_and_teardown_bracket_the_loop() -> None:
    seen: list[bool] = []
    timer = Timer(
        "seen.append(is_grad_enabled())",
        setup="_g = no_grad()\n_g.__enter__()",
        teardown="_g.__exit__(None, None, None)\nseen.append('done')",
        namespace={
            "seen": seen,
            "no_grad": modes.no_grad,
            "is_grad_enabled": modes.is_grad_enabled,
        },
    )
    assert timer.time(3) > 0
    assert seen == [False, False, False, "done"]
    assert modes.is_grad_enabled()


def test_timer_teardown_runs_when_the_statement_raises() -> None:
    seen: list[str] = []
    timer = Timer(
        "1 / 0",
        setup="_g = no_grad()\n_g.__enter__()",
        teardown="_g.__exit__(None, None, None)\nseen.append('exited')",
        namespace={"seen": seen, "no_grad": modes.no_grad},
    )
    with pytest.raises(ZeroDivisionError):
        timer.time(1)
    assert seen == ["exited"] and modes.is_grad_enabled()


def test_calibrate_and_interleave() -> None:
    timer = Timer("x += 1", setup="x = 0")
    n = calibrate(timer, 1e5)
    assert n >= 1 and n & (n - 1) == 0  # a power of two
    assert timer.time(n) > 0
    samples = interleave({"a": timer, "b": timer}, [["a", "b"]], {"a": n, "b": 1}, 3)
    assert [len(v) for v in samples.values()] == [3, 3]
    assert all(s > 0 for v in samples.values() for s in v)


# -- the numpy MLP's hand-written backward is the real gradient --------------------------
def test_numpy_mlp_backward_matches_autograd() -> None:
    rng = np.random.default_rng(1)
    shapes = {
        "x": (16, 32),
        "w1": (32, 64),
        "b1": (64,),
        "w2": (64, 64),
        "b2": (64,),
        "w3": (64, 10),
        "b3": (10,),
    }
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    ns: dict[str, Any] = {"np": np, **{k: v.copy() for k, v in arrays.items()}}
    exec(suite.MLP_STMT["forward+backward"]["numpy"], ns)
    ts = {k: dispatch.tensor(v) for k, v in arrays.items()}
    params = ("w1", "b1", "w2", "b2", "w3", "b3")
    for k in params:
        ts[k].requires_grad_()
    dns: dict[str, Any] = {**ts, "P": tuple(ts[k] for k in params)}
    exec(suite.MLP_STMT["forward+backward"]["dispatchsim"], dns)
    np.testing.assert_allclose(ns["y"], dns["y"].detach().numpy(), rtol=1e-5, atol=1e-5)
    for k in params:
        got, want = ns["g" + k], ts[k].grad.numpy()
        assert got.shape == want.shape, k
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=k)
    assert not math.isnan(float(ns["gw1"].sum()))
