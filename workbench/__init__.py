"""Rec Workbench: turn interaction logs into tuned, signed, compared and retrained recommenders.

    import workbench as wb
    ws = wb.open()          # data/workbench.sqlite under the home folder, created if absent
"""

__version__ = "0.1.0"

import warnings  # noqa: E402

# irspack's console progress bars (fastprogress) complain under Jupyter; the workbench reports its own progress.
warnings.filterwarnings("ignore", message="Couldn't import ipywidgets properly")

from .errors import (  # noqa: E402
    CatalogBusyError,
    JobFailedError,
    ModelFileError,
    NotFoundError,
    ValidationError,
    WorkbenchError,
)
from .workspace import Workspace, open_workspace  # noqa: E402

open = open_workspace  # noqa: A001  (wb.open(), as in the design)

__all__ = [
    "CatalogBusyError", "JobFailedError", "ModelFileError", "NotFoundError", "ValidationError",
    "WorkbenchError", "Workspace", "open", "open_workspace",
]
