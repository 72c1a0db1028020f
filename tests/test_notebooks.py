"""Every notebook in notebooks/ runs clean (nbval --nbval-lax) against a throwaway demo home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_ui import SMALL_DEMO, build_demo_home

from workbench.cli import kernel_ipython_dir
from workbench.dashboards import DASHBOARD_NAMES as DASHBOARDS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_dashboard_has_a_thin_notebook():
    for name in DASHBOARDS:
        notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        source = "".join(code[0]["source"])
        assert len(code) == 1 and "from workbench.ui import" in source and len(source.splitlines()) <= 5
        assert not code[0]["outputs"], f"{name}.ipynb is committed with outputs"
        assert notebook["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_all_notebooks_run_under_nbval(tmp_path):
    home = tmp_path / "home"
    build_demo_home(home, **SMALL_DEMO)
    notebooks = sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))
    assert len(notebooks) >= len(DASHBOARDS)
    env = dict(os.environ, WORKBENCH_HOME=str(home), IPYTHONDIR=str(kernel_ipython_dir(tmp_path)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "addopts=", "--nbval-current-env", *notebooks],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    cells = sum(1 for path in notebooks for c in json.loads(Path(path).read_text())["cells"] if c["cell_type"] == "code")
    assert f"{cells} passed" in result.stdout and "failed" not in result.stdout, result.stdout[-2000:]
