"""The `workbench` command line: help and every argument error answer before any kernel starts.

Each error exits 2 with a message naming the problem, writes nothing under the workspace (no report in
runs/, no lock), and imports no heavy library it does not need: the command's speed comes from that
(bench/bench_cli.py measures it; no test here depends on timing).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from test_ui import SMALL_DEMO, build_demo_home

from workbench import cli

HEAVY = ("irspack", "sklearn", "scipy", "pandas", "pyarrow", "duckdb", "papermill", "nbformat", "jupyter_client",
         "voila", "tornado")
KERNEL = ("papermill", "jupyter_client", "nbformat")  # what starting a kernel takes
WORKSPACE = tuple(m for m in HEAVY if m not in KERNEL)  # opening the catalog today (workbench.workspace)
# Runs the command in a fresh interpreter and reports, on exit, which of HEAVY it imported.
PROBE = """
import atexit, sys
heavy = set(sys.argv[1].split(","))
atexit.register(lambda: print("imported:", *sorted({m.split(".")[0] for m in sys.modules} & heavy), file=sys.stderr))
from workbench.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "home"
    build_demo_home(path, models=False, **SMALL_DEMO)
    return path


def workbench(home: Path, *args: str) -> tuple[int, str, str, set[str]]:
    """(exit status, stdout, stderr without the probe's line, the heavy modules imported)."""
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "--home", str(home), *args],
                          capture_output=True, text=True, cwd=home, timeout=300)
    err, _, imported = done.stderr.rpartition("imported:")
    return done.returncode, done.stdout, err, set(imported.split())


def test_help_lists_every_command_and_imports_nothing_heavy(home):
    code, out, err, imported = workbench(home, "--help")
    assert code == 0 and not err and imported == set(), (err, imported)
    for command in ("demo", "info", "serve", "retrain", "doctor", "tune-worker"):
        assert command in out
        code, out_command, _, imported = workbench(home, command, "--help")
        assert code == 0 and out_command.startswith(f"usage: workbench {command}") and imported == set(), command


# (arguments, what the message says, heavy modules the check may import)
ERRORS = [
    (["frobnicate"], "invalid choice: 'frobnicate'", ()),
    (["retrain", "--project", "demo", "-p", "n_trails", "3"], "Unknown parameter(s) n_trails; the retrain notebook "
                                                               "takes: project, new_data", ()),
    (["retrain", "--project", "demo", "-p", "n_trials", "many"], "Parameter n_trials takes int values", ()),
    (["retrain", "--project", "demo", "-p", "append", "maybe"], "Parameter append takes bool values", ()),
    (["retrain", "-p", "mode", "retune"], "Give the project: --project NAME.", ()),
    (["retrain", "--project", "demo", "--execution-timeout", "0"], "--execution-timeout must be a positive", ()),
    (["retrain", "--project", "demo", "--output", "no/such/folder/report.ipynb"], "its folder does not exist", ()),
    (["retrain", "--project", "demo", "-p"], "expected 2 arguments", ()),
    (["retrain", "--project", "demo", "--notebook", "missing.ipynb"], "not a readable notebook", ()),
    (["retrain", "--project", "demo", "-p", "new_data", "missing.csv"], "'missing.csv': no such file",
     ("scipy", "pandas", "pyarrow", "duckdb")),  # telling a path from a DuckDB query takes workbench.data
    (["retrain", "--project", "demo", "--kernel", "no-such-kernel"], "No Jupyter kernel named 'no-such-kernel'",
     ("jupyter_client", "tornado")),
    (["retrain", "--project", "../demo"], "is not allowed", WORKSPACE),
    (["retrain", "--project", "nowhere"], "There is no project named 'nowhere'", WORKSPACE),
    (["serve", "--port", "0"], "argument --port: expected a whole number of at least 1", ()),
    (["serve", "--port", "70000"], "a port is at most 65535", ()),
    (["serve", "--max-kernels", "none"], "argument --max-kernels: expected a whole number", ()),
    (["serve", "--token", "x", "--no-token"], "argument --no-token: not allowed with argument --token", ()),
    (["doctor", "--stale-after", "soon"], "argument --stale-after: invalid float value", ()),
    (["tune-worker", "--storage", "sqlite://"], "the following arguments are required: --job", ()),
]


def files_of(home: Path) -> list[Path]:
    """The workspace's files, without SQLite's own -wal/-shm beside the catalog (an opener that exits may leave
    them; the next one to close removes them) and the kernels' IPython folder."""
    return sorted(p.relative_to(home) for p in home.rglob("*")
                  if "ipython" not in p.parts and not p.name.endswith(("-wal", "-shm")))


@pytest.mark.parametrize("args, message, may_import", ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_argument_errors_exit_2_with_a_message_start_no_kernel_and_write_nothing(home, args, message, may_import):
    before = files_of(home)
    code, out, err, imported = workbench(home, *args)
    assert code == 2 and message in err and not out, (code, out, err)
    assert "Traceback" not in err
    assert imported <= set(may_import), imported - set(may_import)
    assert not (home / "runs").exists() and not (home / "data" / "locks").exists()
    assert files_of(home) == before


def test_parameter_names_and_defaults_are_read_as_papermill_reads_them():
    import papermill

    ours = cli.notebook_parameters(cli.RETRAIN_NOTEBOOK)
    theirs = papermill.inspect_notebook(str(cli.RETRAIN_NOTEBOOK))
    assert list(ours) == list(theirs) and "new_data" in ours and "home" in ours
    assert ours == {name: ast.literal_eval(p["default"]) for name, p in theirs.items()}


def test_parameter_values_are_read_like_papermill_and_kept_to_their_default_kind():
    value = cli.parameter_value
    assert [value("n_trials", "40", 20), value("tolerance", "1", 0.0), value("append", "False", True)] == [40, 1, False]
    assert value("project", "123", "demo") == "123"  # a name stays text
    assert value("timeout", "None", None) is None and value("timeout", "900", None) == 900
    assert value("new_data", "SELECT 1", None) == "SELECT 1"
    for name, text, default in (("n_trials", "2.5", 20), ("n_trials", "True", 20), ("append", "1", True),
                                ("tolerance", "tiny", 0.0)):
        with pytest.raises(cli.ValidationError, match=f"Parameter {name} takes"):
            value(name, text, default)


def test_serve_hands_the_token_over_by_environment_never_on_the_command_line(home, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    cli.main(["--home", str(home), "serve", "--token", "s3cret-token", "--allow-host", "wb.example",
              "--allow-host", "wb2.example", "--max-kernels", "4", "--cull-idle", "300", "--cull-unconnected", "60"])
    cli.main(["--home", str(home), "serve", "--no-token", "--no-preheat"])
    cli.main(["--home", str(home), "serve"])
    (with_token, env), (open_one, open_env), (default, default_env) = calls
    assert "s3cret-token" not in " ".join(with_token) and env["WORKBENCH_TOKEN"] == "s3cret-token"
    assert env["WORKBENCH_HOME"] == str(home.resolve())
    assert {"--DashboardServer.allowed_hosts=wb.example", "--DashboardServer.allowed_hosts=wb2.example",
            "--DashboardKernelManager.max_kernels=4", "--DashboardKernelManager.cull_idle_timeout=300",
            "--DashboardKernelManager.unconnected_timeout=60"} <= set(with_token)
    assert "--no-token" in open_one and "--preheat_kernel=False" in open_one and "WORKBENCH_TOKEN" not in open_env
    assert "--no-token" not in default and "WORKBENCH_TOKEN" not in default_env  # the server makes one
