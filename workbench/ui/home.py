"""Home: every project with its counts and active model, and the way to the other dashboards."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .common import DASHBOARDS, Dashboard, DataTable, is_missing, section

DESCRIPTIONS = {
    "data": "create projects, import interactions and item metadata",
    "tuning": "search the best algorithm and parameters, train the winner",
    "training": "train a configuration on a training data set",
    "models": "list, compare, activate, download, retrain and delete models",
    "recommendations": "look at what a model recommends, for known and new users",
}


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
        self.guard(self.refresh)()  # an unreadable catalog shows as a message, not a traceback

    def refresh(self) -> None:
        if self.ws is None:
            return
        projects = self.ws.projects()
        self.catalog_label.value = f"<span class='wb-muted'>catalog: {html.escape(str(self.ws.catalog_path))}</span>"
        models = self.ws.models() if len(projects) else pd.DataFrame(columns=["id", "algorithm"])
        algorithm_of = dict(zip(models["id"], models["algorithm"]))
        rows = []
        for p in projects.itertuples(index=False):
            active = p.active_model_id
            if is_missing(active):
                active_html = "<span class='wb-muted'>none</span>"
            else:
                active_html = (f"<a href='recommendations.ipynb'>#{int(active)} "
                               f"{html.escape(str(algorithm_of.get(int(active), '')))}</a>")
            rows.append({
                "project": f"<b>{html.escape(p.name)}</b>",
                "user / item / time columns": " / ".join(str(c) for c in (p.user_column, p.item_column, p.time_column)
                                                         if not is_missing(c)),
                "training data": int(p.n_training_data),
                "configurations": int(p.n_configurations),
                "models": int(p.n_models),
                "active model": active_html,
                "open": " · ".join(f"<a href='{n}.ipynb'>{n}</a>" for n in ("data", "tuning", "training", "models")),
            })
        self.frame = pd.DataFrame(rows)
        self.table.set_frame(self.frame)
        if not len(projects):
            self.banner.info("The catalog has no project yet: create one in the Data dashboard, or run `workbench demo`.")

