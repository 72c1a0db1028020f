"""The README's first-session example runs as written, and the modules it names exist."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _first_session() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A first session in a notebook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_HOME"}
    result = subprocess.run([sys.executable, "-c", _first_session()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data" / "workbench.sqlite").exists()
    assert "item_id" in result.stdout and "SUCCESS" in result.stdout


def test_every_module_the_readme_names_exists():
    named = set(re.findall(r"`(workbench/[\w/.*]+)`", (ROOT / "README.md").read_text()))
    assert len(named) > 20
    missing = [path for path in sorted(named) if not list(ROOT.glob(path))]
    assert missing == []
