"""The lifecycle and tuning benchmarks run and report (their numbers are asserted nowhere)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize("script, marker", [("bench_lifecycle.py", "train() overhead"),
                                            ("bench_tuning.py", "| synthetic | workbench |")])
def test_benchmark_runs_and_reports(script, marker):
    result = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker in result.stdout
