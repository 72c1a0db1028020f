"""The `workbench` command: demo data, dashboards, and batch work."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import WorkbenchError

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
    print(f"Created project {project['name']!r} in {ws.catalog_path}.")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    print(ws.catalog_path)
    print(ws.projects().to_string(index=False))
    return 0


def voila_command(host: str, port: int, notebooks: Path = NOTEBOOKS, preheat: bool = True) -> list[str]:
    """The Voila command line that serves the dashboards."""
    voila = shutil.which("voila", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    command = [
        voila or "voila", str(notebooks), "--no-browser", f"--Voila.ip={host}", f"--port={port}",
        "--strip_sources=True", "--show_tracebacks=False", "--Voila.tornado_settings={'autoreload': False}",
    ]
    if preheat:
        command += ["--preheat_kernel=True", "--pool_size=1"]
    return command


def cmd_serve(args: argparse.Namespace) -> int:
    env = dict(os.environ, WORKBENCH_HOME=str(_workspace(args).home))
    print(f"Dashboards: http://{args.host}:{args.port}/voila/render/home.ipynb", flush=True)
    return subprocess.call(voila_command(args.host, args.port, preheat=not args.no_preheat), env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__)
    parser.add_argument("--home", default=None, help="workspace folder or .duckdb file (default: WORKBENCH_HOME or here)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="create the synthetic demo project")
    demo.add_argument("--if-empty", action="store_true", help="only when the catalog has no project")
    demo.add_argument("--name", default="demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    info = commands.add_parser("info", help="show the catalog and its projects")
    info.set_defaults(func=cmd_info)

    serve = commands.add_parser("serve", help="serve the Voila dashboards")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8866)
    serve.add_argument("--no-preheat", action="store_true")
    serve.set_defaults(func=cmd_serve)
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
