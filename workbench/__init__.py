"""Rec Workbench: turn interaction logs into tuned, signed, compared and retrained recommenders.

    import workbench as wb
    ws = wb.open()          # data/workbench.sqlite under the home folder, created if absent
"""

import warnings

from .version import __version__

# irspack's console progress bars (fastprogress) complain under Jupyter; the workbench reports its own progress.
warnings.filterwarnings("ignore", message="Couldn't import ipywidgets properly")

from .errors import (  # noqa: E402
    CatalogBusyError,
    CatalogDamagedError,
    DiskFullError,
    JobFailedError,
    ModelFileError,
    NotFoundError,
    ReadOnlyWorkspaceError,
    ValidationError,
    WorkbenchError,
)


def __getattr__(name: str):
    """`Workspace`, `open_workspace` and `open` (wb.open(), as in the design), imported on first use: the
    workspace pulls in irspack, scikit-learn and pandas, which `workbench --help` has no need for."""
    if name in ("Workspace", "open_workspace", "open"):
        from . import workspace

        return workspace.open_workspace if name == "open" else getattr(workspace, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "CatalogBusyError", "CatalogDamagedError", "DiskFullError", "JobFailedError", "ModelFileError", "NotFoundError",
    "ReadOnlyWorkspaceError", "ValidationError", "WorkbenchError", "Workspace", "__version__", "open", "open_workspace",
]
