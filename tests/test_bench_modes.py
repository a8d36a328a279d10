"""The modes benchmark runs, and its kernel counts say what the Gradient Modes document
claims: InferenceMode runs strictly fewer kernels than no_grad for view and in-place
ops. (Counts are deterministic; times are reported by the benchmark, never asserted.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_modes_quick_run_and_kernel_counts(tmp_path: Path) -> None:
    out = tmp_path / "modes.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_modes",
            "--quick",
            "--no-torch",
            "--json",
            str(out),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    rows = {r["op"]: r for r in data["rows"] if r["library"] == "dispatchsim"}
    for op in ("a.view(-1)", "a.add_(1)"):
        k = rows[op]["kernels"]
        assert k["inference (inference tensors)"] < k["no_grad"], (op, k)
        assert k["inference (normal tensors)"] < k["no_grad"], (op, k)
        assert k["normal"] == k["no_grad"] == 3  # Autograd -> ADInplaceOrView -> CPU
        assert k["inference (inference tensors)"] == 1  # CPU alone
    assert rows["a + b"]["kernels"]["inference (inference tensors)"] == 1
    assert "IM/no_grad" in proc.stdout
