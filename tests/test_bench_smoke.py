"""`make bench` in miniature: every benchmark runs and reports (its numbers are asserted nowhere)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SECTIONS = ["## Machine", "## Targets", "## Import", "## Growth from 1M to 10M interactions, and peak memory",
            "## train() overhead", "## Recommendations", "## Tuning at an equal trial budget"]
PLOTS = ["import", "scale_seconds", "scale_memory", "train_overhead", "recommend_all_users", "tuning"]


@pytest.mark.slow
def test_smoke_report_has_every_section_target_and_plot(tmp_path):
    browser = shutil.which("chromium") is not None
    result = subprocess.run([sys.executable, str(BENCH / "report.py"), "--smoke", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    for heading in SECTIONS + (["## Dashboard first paint"] if browser else []):
        assert heading in report
    for plot in PLOTS + (["dashboards"] if browser else []):
        png = tmp_path / "plots" / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"(plots/{plot}.png)" in report
    targets = report.split("## Targets")[1].split("\n## ")[0]
    for kind in ["import never slower than the pandas path", "`::` import >= 10x", "train() overhead",
                 "single-user top-10 p50", "all users >= 50,000 users/s"] + (["preheated first paint"] if browser else []):
        assert kind in targets
    assert re.search(r"\d+ targets: \d+ pass, \d+ miss", report)
    assert "| CPU |" in report and "irspack 0.5" in report
    # the report can be re-rendered from the raw results it left behind
    (tmp_path / "REPORT.md").unlink()
    subprocess.run([sys.executable, str(BENCH / "report.py"), "--render", str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / "REPORT.md").read_text().split("## Import")[1] == report.split("## Import")[1]
