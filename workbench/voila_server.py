"""Voila as `workbench serve` runs it: `python -m workbench.voila_server NOTEBOOKS [voila options]`.

This is plain Voila (`voila.app.Voila`) plus one setting the command line cannot carry: a page-config
hook that gives each dashboard page only the front-end extensions it uses. bqplot's front end
(about 1.2 MB of JavaScript, a third of the widget start-up work in Chromium) is left out of the
dashboards that never draw a chart; a notebook not named here keeps every allowed extension.
"""

from __future__ import annotations

import re
import sys
from typing import Any

# Dashboards that never display a bqplot widget (tuning and models draw charts). Matched like the
# preheat list in workbench.cli: the notebook's name, in the served folder or a subfolder of it.
CHART_FREE = re.compile(r"^(.*/)?(home|data|training|recommendations)[.]ipynb$")
CHART_EXTENSIONS = {"bqplot"}


def page_config_hook(page_config: dict[str, Any], base_url: str = "", settings: Any = None, log: Any = None,
                     voila_configuration: Any = None, notebook_path: str = "", **_: Any) -> dict[str, Any]:
    """Voila's page config for one notebook, without the chart extension where no chart is shown."""
    if notebook_path and CHART_FREE.match(str(notebook_path).replace("\\", "/")):
        page_config = dict(page_config)
        page_config["federated_extensions"] = [
            extension for extension in page_config.get("federated_extensions", [])
            if extension.get("name") not in CHART_EXTENSIONS
        ]
    return page_config


def main(argv: list[str] | None = None) -> None:
    from traitlets.config import Config
    from voila.app import Voila

    config = Config()
    config.VoilaConfiguration.page_config_hook = page_config_hook
    Voila.launch_instance(argv if argv is not None else sys.argv[1:], config=config)


if __name__ == "__main__":
    main()
