"""Home: every project with its counts and active model, and the way to each dashboard of that project."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..dashboards import DASHBOARDS
from .controls import section
from .dashboard import Dashboard
from .format import is_missing
from .page import anchor, page_link
from .tables import DataTable

DESCRIPTIONS = {
    "data": "create projects, import interactions and item metadata",
    "tuning": "search the best algorithm and parameters, train the winner",
    "training": "train a configuration on a training data set",
    "models": "list, compare, activate, download, retrain and delete models",
    "recommendations": "look at what a model recommends, for known and new users",
}
PROJECT_PAGES = ("data", "tuning", "training", "models", "recommendations")


class HomeDashboard(Dashboard):
    name = "home"
    title = "Rec Workbench"
    subtitle = "Tuned, signed and compared recommenders from your interaction logs."

    def __init__(self, ws: Any = None) -> None:
        super().__init__(ws, with_project=False)
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="110px"))
        self.refresh_button.on_click(self.guard(lambda _: self.refresh()))
        self.table = DataTable(page_size=25, html_columns={"project", "active model", "open"},
                               empty="No project yet: create one in the Data dashboard.")
        self.catalog_label = widgets.HTML()
        links = "".join(
            f"<li><a href='{name}.ipynb'>{label}</a> <span class='wb-muted'>{html.escape(DESCRIPTIONS[name])}</span></li>"
            for name, label in DASHBOARDS if name != "home"
        )
        self.links = widgets.HTML(f"<ul style='margin:2px 0'>{links}</ul>")
        self.body.children = [
            section("Projects", self.table, widgets.HBox([self.refresh_button, self.catalog_label])),
            section("Dashboards", self.links),
        ]
        self.frame = pd.DataFrame()
        self.open_page()

    def refresh(self) -> None:
        if self.ws is None:
            return
        projects = self.ws.projects()
        self.catalog_label.value = f"<span class='wb-muted'>catalog: {html.escape(str(self.ws.catalog_path))}</span>"
        models = self.ws.models() if len(projects) else pd.DataFrame(columns=["id", "algorithm"])
        algorithm_of = dict(zip(models["id"], models["algorithm"]))
        rows = []
        for p in projects.itertuples(index=False):
            active = None if is_missing(p.active_model_id) else int(p.active_model_id)
            rows.append({
                "project": f"<b>{anchor(page_link('data', p.name), p.name)}</b>",
                "user / item / time columns": " / ".join(str(c) for c in (p.user_column, p.item_column, p.time_column)
                                                         if not is_missing(c)),
                "training data": int(p.n_training_data),
                "configurations": int(p.n_configurations),
                "models": int(p.n_models),
                "active model": ("<span class='wb-muted'>none</span>" if active is None else
                                 anchor(page_link("recommendations", p.name, active),
                                        f"#{active} {algorithm_of.get(active, '')}".strip())),
                "open": " · ".join(anchor(page_link(name, p.name), name) for name in PROJECT_PAGES),
            })
        self.frame = pd.DataFrame(rows)
        self.table.set_frame(self.frame)
        if not len(projects):
            self.banner.info("The catalog has no project yet: create one in the Data dashboard.")
