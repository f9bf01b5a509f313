"""Do the benchmark scripts run end to end (their seconds-long smoke versions)?"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["bench_metrics.py", "bench_data.py", "lab_times.py",
                                    "grading_throughput.py", "offset_explorer.py"])
def test_benchmark_smoke_run(script, tmp_path):
    """Does the benchmark finish, print a markdown table and write its JSON?"""
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "|---" in proc.stdout
    assert json.loads(out.read_text())
