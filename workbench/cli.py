"""The `workbench` command: demo data, dashboards, and batch work.

Importing this module imports no library beyond the standard one: each command imports what it
needs when it runs, so `--help` and argument errors answer at once, before any kernel starts.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ValidationError, WorkbenchError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _workspace(args: argparse.Namespace):
    from .workspace import open_workspace

    return open_workspace(args.home)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import create_demo_project

    ws = _workspace(args)
    if args.if_empty and len(ws.projects()):
        print(f"{ws.catalog_path}: already has projects; demo not created.")
        return 0
    project = create_demo_project(ws, name=args.name, seed=args.seed)
    print(f"Created project {project.name!r} in {ws.catalog_path}.")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    print(ws.catalog_path)
    print(ws.projects().to_string(index=False))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """One user's top-N as JSON lines, or every user's to a file (the active model unless --model)."""
    if args.all == (args.user is not None):
        raise ValidationError("Give either --user ID or --all --out PATH.")
    if args.all and not args.out:
        raise ValidationError("--all writes a file: give --out PATH (.parquet, .csv or .duckdb).")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    if args.all:
        from .export import FORMATS

        out = Path(args.out)
        if out.suffix.lower() not in FORMATS:
            raise ValidationError(f"--out {args.out!r}: the suffix sets the format: {', '.join(sorted(FORMATS))}.")
        if not out.parent.is_dir():
            raise ValidationError(f"--out {args.out!r}: the folder {out.parent} does not exist.")
    ws = _workspace(args)
    if args.all:
        def progress(done: int, total: int) -> None:
            print(f"\r{done:,} of {total:,} users ({done / max(total, 1):.0%})", end="", file=sys.stderr, flush=True)

        path = ws.export_recommendations(args.project, args.out, cutoff=args.cutoff, columns=columns,
                                         model=args.model, progress=progress)
        print(file=sys.stderr)
        print(path)
        return 0
    model = ws.model(args.model) if args.model is not None else ws.active_model(args.project)
    if model is None:
        raise ValidationError(f"Project {args.project!r} has no active model; pass --model ID.")
    for row in ws.load_model(model.id).recommend(args.user, cutoff=args.cutoff):
        print(json.dumps(row, default=str))
    return 0


def voila_command(host: str, port: int, notebooks: Path = NOTEBOOKS, preheat: bool = True, token: bool = True,
                  options: Sequence[str] = ()) -> list[str]:
    """The command that serves the dashboards: workbench.voila_server (Voila serving only the six
    dashboards, behind a token and a Host check, with capped kernels; see its docstring).

    Preheating (Voila 0.5: one kernel per dashboard runs the notebook before any request; the
    environment, WORKBENCH_HOME included, reaches it) covers the served dashboards only. The token
    reaches the server through WORKBENCH_TOKEN (kept off the command line, where `ps` shows it);
    without it the server makes one. `options` are more Voila options (`--Class.trait=value`).
    """
    command = [sys.executable, "-m", "workbench.voila_server", str(notebooks), "--no-browser", f"--Voila.ip={host}",
               f"--port={port}"]
    if not preheat:
        command.append("--preheat_kernel=False")
    if not token:
        command.append("--no-token")
    return command + list(options)


def serve_options(args: argparse.Namespace) -> list[str]:
    """Voila options for `workbench serve`'s host names and kernel limits."""
    options = [f"--DashboardServer.allowed_hosts={name}" for name in args.allow_host or []]
    if args.max_kernels is not None:
        options.append(f"--DashboardKernelManager.max_kernels={args.max_kernels}")
    if args.cull_idle is not None:
        options.append(f"--DashboardKernelManager.cull_idle_timeout={args.cull_idle}")
    if args.cull_unconnected is not None:
        options.append(f"--DashboardKernelManager.unconnected_timeout={args.cull_unconnected}")
    return options


def kernel_ipython_dir(data_dir: Path) -> Path:
    """An IPython folder for dashboard kernels, with history off: kernels started together
    would otherwise fight over one history database and print "database is locked" on a page."""
    folder = Path(data_dir) / "ipython"
    config = folder / "profile_default" / "ipython_kernel_config.py"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("c.HistoryManager.enabled = False\n")
    return folder


def cmd_serve(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    env = dict(os.environ, WORKBENCH_HOME=str(ws.home), IPYTHONDIR=str(kernel_ipython_dir(ws.data_dir)))
    if args.token:
        env["WORKBENCH_TOKEN"] = args.token
    command = voila_command(args.host, args.port, preheat=not args.no_preheat, token=not args.no_token,
                            options=serve_options(args))
    return subprocess.call(command, env=env)


RETRAIN_NOTEBOOK = NOTEBOOKS / "retrain.ipynb"
EXIT_FAILED, EXIT_BUSY = 1, 75  # 75 = EX_TEMPFAIL: another retrain of the project was running


def papermill_value(text: str):
    """A -p value read the way papermill's own CLI reads it: True/False/None, int, float, else text."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _kernel_for_this_python() -> str:
    """A Jupyter kernel that runs this very interpreter (the venv's), preferring `python3`."""
    from jupyter_client.kernelspec import KernelSpecManager

    manager = KernelSpecManager()
    version = sys.version_info
    own_names = {"python", f"python{version[0]}", f"python{version[0]}.{version[1]}"}  # jupyter_client runs sys.executable for these
    specs = manager.find_kernel_specs()
    for name in sorted(specs, key=lambda n: n != "python3"):
        try:
            argv = manager.get_kernel_spec(name).argv
        except Exception:  # a broken spec elsewhere must not stop us
            continue
        if argv and (argv[0] in own_names or os.path.abspath(argv[0]) == os.path.abspath(sys.executable)):
            return name
    raise WorkbenchError(
        f"No Jupyter kernel runs this Python ({sys.executable}); install one with "
        f"`{sys.executable} -m ipykernel install --sys-prefix`, or pass --kernel NAME."
    )


def _report_path(runs: Path, project: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = runs / (f"{project}-{stamp}.ipynb" if n == 1 else f"{project}-{stamp}-{n}.ipynb")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # claim the name
            return path
        except FileExistsError:
            continue
    raise WorkbenchError(f"Too many reports named {project}-{stamp}*.ipynb in {runs}.")


def _outcome_summary(report: Path) -> dict | None:
    import nbformat

    try:
        notebook = nbformat.read(str(report), as_version=4)
    except Exception:
        return None
    for cell in notebook.cells:
        if "outcome" in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                summary = output.get("data", {}).get("application/json")
                if isinstance(summary, dict):
                    return summary
    return None


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a Papermill notebook declares (the assignments of its cell tagged "parameters"), with
    their defaults (None where a default is not a literal). Read with json and ast: checking `-p` names
    needs no papermill and no kernel."""
    try:
        cells = json.loads(Path(path).read_text())["cells"]
    except (OSError, ValueError, KeyError) as error:
        raise ValidationError(f"{path}: not a readable notebook ({error}).") from None
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            found: dict[str, Any] = {}
            for node in ast.parse(source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
                for target in (t for t in targets if isinstance(t, ast.Name)):
                    try:
                        found[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                    except ValueError:
                        found[target.id] = None
            return found
    return {}


def parameter_value(name: str, text: str, default: Any) -> Any:
    """A -p value read like papermill's, checked against the kind of the parameter's default."""
    value = papermill_value(text)
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return text  # text stays text, even "123"
    if not ok:
        raise ValidationError(f"Parameter {name} takes {type(default).__name__} values like its default "
                              f"{default!r}, got {text!r}.")
    return value


def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    known = KernelSpecManager().find_kernel_specs()
    if name not in known:
        raise ValidationError(f"No Jupyter kernel named {name!r}; installed: {', '.join(sorted(known)) or 'none'}.")


def _known_project(home: str | None, project: str):
    """The workspace layout, once `project` is known to its catalog (read without the model stack)."""
    from .layout import Layout, safe_name

    safe_name(project, "project")
    layout = Layout.of(home)
    if not layout.catalog_path.exists():  # a new or not yet converted workspace: open it properly
        _workspace(argparse.Namespace(home=home)).project(project)
        return layout
    from .store import Catalog

    catalog = Catalog(layout.catalog_path, home=layout.home, read_only=True)
    names = [row["name"] for row in catalog.query("SELECT name FROM projects ORDER BY name")]
    catalog.close()
    if project not in names:
        from .errors import NotFoundError

        raise NotFoundError(f"There is no project named {project!r}. Projects: {', '.join(names) or 'none yet'}.")
    return layout


def cmd_retrain(args: argparse.Namespace) -> int:
    """Every argument is checked before a report is claimed or a kernel starts (exit 2)."""
    notebook = Path(args.notebook) if args.notebook else RETRAIN_NOTEBOOK
    declared = notebook_parameters(notebook)
    unknown = sorted({name for name, _ in args.parameter or []} - set(declared))
    if unknown:
        raise ValidationError(f"Unknown parameter(s) {', '.join(unknown)}; the retrain notebook takes: "
                              f"{', '.join(declared)}.")
    params = {name: parameter_value(name, text, declared[name]) for name, text in args.parameter or []}
    if args.project is not None:
        params["project"] = args.project
    project = params.get("project")
    if not isinstance(project, str):
        raise ValidationError("Give the project: --project NAME.")
    if args.execution_timeout is not None and args.execution_timeout <= 0:
        raise ValidationError(f"--execution-timeout must be a positive number of seconds, got {args.execution_timeout}.")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise ValidationError(f"--output {args.output}: its folder does not exist.")
    new_data = params.get("new_data")
    if isinstance(new_data, str) and Path(new_data).is_file():
        params["new_data"] = str(Path(new_data).resolve())  # the report shows where the data came from
    elif isinstance(new_data, str):
        from .queries import is_sql_query

        if not is_sql_query(new_data):
            raise ValidationError(f"new_data {new_data!r}: no such file (relative to {os.getcwd()}).")
    if args.kernel:
        _check_kernel(args.kernel)
    layout = _known_project(args.home, project)  # an unknown project fails here, before a kernel starts
    home = str(layout.home)
    params["home"] = home
    os.environ["WORKBENCH_HOME"] = home  # for anything in the kernel that opens the default workspace
    import papermill

    kernel = args.kernel or _kernel_for_this_python()
    output = Path(args.output).resolve() if args.output else _report_path(layout.home / "runs", project)
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=params, kernel_name=kernel, progress_bar=False,
            log_output=args.log_output, request_save_on_cell_execute=True, execution_timeout=args.execution_timeout,
        )
    except papermill.PapermillExecutionError as error:
        evalue = (error.evalue or "").strip()
        print(f"workbench retrain: failed in cell [{error.exec_count}]: {error.ename}: {evalue}", file=sys.stderr)
        print(f"workbench retrain: report: {output}", file=sys.stderr)
        return EXIT_BUSY if error.ename == "RetrainBusyError" else EXIT_FAILED
    except Exception as error:  # the kernel died, a cell timed out, the notebook could not be written...
        print(f"workbench retrain: the run failed: {type(error).__name__}: {error}", file=sys.stderr)
        if output.exists():
            print(f"workbench retrain: report: {output}", file=sys.stderr)
        return EXIT_FAILED
    summary = _outcome_summary(output)
    if summary:
        old = f" vs active {summary['old_score']:.4f}" if summary.get("old_score") is not None else ""
        new = f"{summary['new_score']:.4f}" if summary.get("new_score") is not None else "-"
        what = (f"activated model {summary['new_model_id']}" if summary.get("activated") else
                f"registered model {summary['new_model_id']}, active model stays {summary['active_model_id']}")
        print(f"{summary['project']}: {what} ({summary['mode']}; {summary['metric']} new {new}{old}; "
              f"policy {summary['policy']})")
    print(output)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.rebuild:
        from .recovery import rebuild

        print(rebuild(args.home, force=args.force).text())
        return 0
    from .doctor import check

    report = check(_workspace(args), repair=args.repair, stale_after=args.stale_after)
    print(report.text())
    return report.exit_code


def cmd_tune_worker(args: argparse.Namespace) -> int:
    from .tuning import run_worker

    if args.n_trials is not None and args.n_trials < 1:
        raise ValidationError(f"--n-trials must be a positive whole number, got {args.n_trials}.")
    result = run_worker(args.job, args.storage, snapshot=args.snapshot, n_trials=args.n_trials, worker=args.worker,
                        wait=args.wait, log=lambda line: print(line, flush=True))
    if result is not None:
        print(f"tuning job {args.job}: best so far {result.best_algorithm} {result.metric_name}={result.best_score:.4f} "
              f"({result.n_complete} complete trials in the study)", flush=True)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    parser.add_argument("--home", default=None, help="workspace folder or catalog file (default: WORKBENCH_HOME or here)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="create the synthetic demo project")
    demo.add_argument("--if-empty", action="store_true", help="only when the catalog has no project")
    demo.add_argument("--name", default="demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    recommend = commands.add_parser(
        "recommend", help="a user's recommendations, or every user's written to a file for production",
        description="With --user: one known user's top-N (JSON lines). With --all --out PATH: every known user's "
                    "top-N from the project's active model (or --model), written atomically to a .parquet, .csv or "
                    ".duckdb file that records the model id, data fingerprint and time.",
    )
    recommend.add_argument("--project", required=True, help="the project's name")
    recommend.add_argument("--user", help="a user id")
    recommend.add_argument("--all", action="store_true", help="every known user (with --out)")
    recommend.add_argument("--out", help="where --all writes: .parquet, .csv or .duckdb")
    recommend.add_argument("--cutoff", type=_positive_int, default=10, help="items per user (default 10)")
    recommend.add_argument("--columns", help="item metadata columns to add, comma-separated (e.g. title,genres)")
    recommend.add_argument("--model", type=_positive_int, help="a model id of the project (default: the active model)")
    recommend.set_defaults(func=cmd_recommend)

    info = commands.add_parser("info", help="show the catalog and its projects")
    info.set_defaults(func=cmd_info)

    serve = commands.add_parser(
        "serve", help="serve the Voila dashboards (only them, behind a token); prints the URL once they are ready",
        description="Serve the six dashboards with Voila. The URL printed carries a token (?token=...; the browser "
                    "keeps it in a cookie): from WORKBENCH_TOKEN or --token, else a random one. Requests whose Host "
                    "header is not localhost, 127.0.0.1, ::1, the address bound or an --allow-host name are refused. "
                    "Each open page holds a kernel; kernels of pages that were left are shut down.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8866)
    serve.add_argument("--no-preheat", action="store_true", help="start no kernel before a page is requested")
    token = serve.add_mutually_exclusive_group()
    token.add_argument("--token", default=None, help="the token to require (default: WORKBENCH_TOKEN, else random; "
                                                     "prefer WORKBENCH_TOKEN: `ps` shows command lines)")
    token.add_argument("--no-token", action="store_true", help="require no token: anyone who reaches the port gets in")
    serve.add_argument("--allow-host", action="append", metavar="NAME",
                       help="also answer requests for this Host name (repeatable; '*': any, e.g. behind a proxy)")
    serve.add_argument("--max-kernels", type=_positive_int, default=None, metavar="N",
                       help="most pages open at once, each holding a kernel (default 10; preheated ones not counted)")
    serve.add_argument("--cull-idle", type=_positive_int, default=None, metavar="SECONDS",
                       help="shut down a kernel whose page was closed after this long idle (default 600)")
    serve.add_argument("--cull-unconnected", type=_positive_int, default=None, metavar="SECONDS",
                       help="shut down a kernel whose page never connected after this long (default 120)")
    serve.set_defaults(func=cmd_serve)

    retrain = commands.add_parser(
        "retrain", help="retrain a project's model headless (Papermill); prints the report notebook's path",
        description="Run notebooks/retrain.ipynb with Papermill. The executed notebook, saved under "
                    "HOME/runs/<project>-<UTC time>.ipynb, is the report. Exit status: 0 when the new model was "
                    "activated or the active one kept by the policy, 1 when the run failed, 75 when another "
                    "retrain of the project was running, 2 for bad arguments (an unknown project or parameter, "
                    "a missing new_data file), found before any kernel starts.",
    )
    retrain.add_argument("--project", help="the project's name (same as -p project NAME)")
    retrain.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                         help="a notebook parameter (new_data, append, mode, n_trials, timeout, holdout, activate, "
                              "tolerance, metric, cutoff, seed, export); values are read as papermill does: "
                              "True/False/None, numbers, text")
    retrain.add_argument("--output", help="where to write the report notebook (default: HOME/runs/...)")
    retrain.add_argument("--kernel", help="Jupyter kernel name (default: one that runs this Python)")
    retrain.add_argument("--notebook", help=argparse.SUPPRESS)
    retrain.add_argument("--execution-timeout", type=int, default=None, metavar="SECONDS",
                         help="stop a cell running longer than this (the next retrain cleans up after it)")
    retrain.add_argument("--log-output", action="store_true", help="echo the notebook's output while it runs")
    retrain.set_defaults(func=cmd_retrain)

    doctor = commands.add_parser(
        "doctor", help="check the catalog, model files and snapshots for what crashes left; --repair fixes it",
        description="Find dead jobs, crashed retrains, model files without records, SUCCESS models without a "
                    "verified file (altered files are moved to HOME/quarantine, never deleted), leftover temp files "
                    "and unreferenced snapshots. Exit status: 0 when all is consistent (after --repair: when "
                    "everything found was fixed), 1 when problems remain.",
    )
    doctor.add_argument("--repair", action="store_true", help="fix what was found")
    doctor.add_argument("--rebuild", action="store_true",
                        help="rebuild a lost or damaged catalog from the snapshots and signed model headers (the "
                             "damaged file is kept beside it); prints what could not be recovered")
    doctor.add_argument("--force", action="store_true", help="with --rebuild: rebuild even a readable catalog")
    doctor.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                        help="leave temp files and unreferenced snapshots younger than this alone (a live import or "
                             "training may own them; default 600)")
    doctor.set_defaults(func=cmd_doctor)

    worker = commands.add_parser(
        "tune-worker", help="join a tuning job's Optuna study from this process or machine (no catalog needed)",
        description="Run trials of tuning job ID, whose coordinator was started with "
                    "ws.tune(..., storage=URL). The study's user attributes say what to search; the data is the "
                    "job's Parquet snapshot folder (--snapshot, default: the path the coordinator recorded, fine on "
                    "a shared filesystem), checked against the study's fingerprint first. Stops when the study has "
                    "its n_trials. Exit status: 0 when done, 2 for a wrong snapshot, an unknown job or bad arguments.",
    )
    worker.add_argument("--job", type=int, required=True, metavar="ID", help="the tuning job's id")
    worker.add_argument("--storage", required=True, metavar="URL",
                        help="the study's database, e.g. postgresql://user:password@host:5432/optuna")
    worker.add_argument("--snapshot", metavar="PATH_OR_URL", help="the job's snapshot folder (path or file:// URL)")
    worker.add_argument("--n-trials", type=int, default=None, metavar="N",
                        help="run at most N trials here (default: until the study-wide budget is used)")
    worker.add_argument("--worker", type=int, default=None, metavar="ID",
                        help="a number recorded with this worker's trials (default: the process id)")
    worker.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the coordinator to create the study (default 60)")
    worker.set_defaults(func=cmd_tune_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as error:
        print(f"workbench: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
