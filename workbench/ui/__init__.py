"""ipywidgets dashboards, one module per dashboard; the notebooks in notebooks/ only display them.

    from workbench.ui import ModelsDashboard
    app = ModelsDashboard()        # wb.open() by default, or ModelsDashboard(ws, project="demo")
    app                            # display it (a Voila page, or a JupyterLab cell)

Under Voila a dashboard opens on the project (and model) its address names:
`models.ipynb?project=movies&model=12`; its links carry them to the other dashboards.

Every dashboard is an ipywidgets VBox whose actions are methods and buttons, so they can be
driven headless in tests: `app.select(3); app.activate_button.click()`.

Shared parts: `page` (the address, links, navigation, style), `dashboard` (the base class),
`controls`, `tables`, `charts`, `monitor` (following a job), `format` (text and HTML), `files`
(paths and uploads a dashboard may read). Parts of one dashboard: `items` (Recommendations' item
finder, explanations and similar items), `segments` (Models' per-segment comparison and metric
definitions), `importance` (Tuning's insight into a job).
"""

from .data import DataDashboard
from .home import HomeDashboard
from .models import ModelsDashboard
from .recommendations import RecommendationsDashboard
from .training import TrainingDashboard
from .tuning import TuningDashboard

__all__ = [
    "DataDashboard", "HomeDashboard", "ModelsDashboard", "RecommendationsDashboard", "TrainingDashboard",
    "TuningDashboard",
]
