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
from .workspace import Workspace, open_workspace  # noqa: E402

open = open_workspace  # noqa: A001  (wb.open(), as in the design)

__all__ = [
    "CatalogBusyError", "CatalogDamagedError", "DiskFullError", "JobFailedError", "ModelFileError", "NotFoundError",
    "ReadOnlyWorkspaceError", "ValidationError", "WorkbenchError", "Workspace", "__version__", "open", "open_workspace",
]
