"""Recommendations: what a model recommends to a known user, a random user, or a new user's profile."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import ValidationError
from ..recommend import with_metadata
from .common import Banner, Dashboard, html_table, section, set_options

MAX_MATCHES = 50


def rows_frame(rows: list[dict], with_rank: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if with_rank and len(frame):
        frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


class RecommendationsDashboard(Dashboard):
    name = "recommendations"
    title = "Recommendations"
    subtitle = "Top-N items from a trained model, with item metadata."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        self.model = w.Dropdown(description="Model", options=[], layout=L(width="460px"),
                                style={"description_width": "60px"})
        self.cutoff = w.BoundedIntText(description="Top N", value=10, min=1, max=200, layout=L(width="160px"),
                                       style={"description_width": "50px"})
        self.user_id = w.Text(description="User id", placeholder="e.g. u42", layout=L(width="260px"),
                              style={"description_width": "60px"}, continuous_update=False)
        self.recommend_button = w.Button(description="Recommend", icon="magic", button_style="primary")
        self.random_button = w.Button(description="Random user", icon="random")
        self.recommend_button.on_click(self.guard(lambda _: self.recommend_user()))
        self.random_button.on_click(self.guard(lambda _: self.random_user()))
        self.message = Banner()
        self.profile_html = w.HTML(layout=L(margin="0 24px 0 0"))
        self.recs_html = w.HTML()
        # new-user profile builder
        self.search = w.Text(description="Search", placeholder="title, genre or item id", layout=L(width="360px"),
                             style={"description_width": "60px"})
        self.matches = w.Select(options=[], rows=8, layout=L(width="360px"))
        self.add_button = w.Button(description="Add →", layout=L(width="90px"))
        self.remove_button = w.Button(description="← Remove", layout=L(width="90px"))
        self.clear_button = w.Button(description="Clear", layout=L(width="90px"))
        self.picked = w.Select(options=[], rows=8, layout=L(width="360px"))
        self.profile_button = w.Button(description="Recommend for this profile", icon="magic", button_style="primary",
                                       layout=L(width="240px"))
        self.new_message = Banner()
        self.new_recs_html = w.HTML()
        self.search.observe(self.guard(lambda _: self.find_items()), "value")
        self.add_button.on_click(self.guard(lambda _: self.add_item()))
        self.remove_button.on_click(self.guard(lambda _: self.remove_item()))
        self.clear_button.on_click(self.guard(lambda _: self.clear_profile()))
        self.profile_button.on_click(self.guard(lambda _: self.recommend_profile()))
        self.model.observe(self.guard(lambda _: self._model_changed()), "value")
        self.profile_items: list[Any] = []
        self.result: dict | None = None
        self.profile_result: list[dict] | None = None
        self._metadata: tuple[int | None, pd.DataFrame | None, str | None] = (None, None, None)
        self.body.children = [
            w.HBox([self.model, self.cutoff]),
            section("A known user", w.HBox([self.user_id, self.recommend_button, self.random_button]),
                    self.message, w.HBox([self.profile_html, self.recs_html], layout=L(align_items="flex-start"))),
            section("A new user", w.HBox([
                w.VBox([self.search, self.matches]),
                w.VBox([self.add_button, self.remove_button, self.clear_button], layout=L(margin="28px 6px 0 6px")),
                w.VBox([w.HTML("<b>Profile</b>"), self.picked]),
            ]), self.profile_button, self.new_message, self.new_recs_html,
                note="Search items, add them to a profile, and see what the model recommends to such a user."),
        ]
        self.guard(self.refresh)()  # an unreadable catalog shows as a message, not a traceback

    # --- state


    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        models = self.ws.models(project) if project is not None else pd.DataFrame(columns=["status"])
        ready = models[models["status"] == "SUCCESS"] if len(models) else models
        if len(ready):
            ready = ready.sort_values(["active", "id"], ascending=[False, False])
        options = [(f"#{r.id} {r.algorithm} · {r.configuration}" + (" · active" if bool(r.active) else ""), int(r.id))
                   for r in ready.itertuples(index=False)]
        set_options(self.model, options)
        if not options:
            self.message.info("No trained model in this project yet: train one in the Training or Tuning dashboard.")
        self.find_items()

    def _model_changed(self) -> None:
        self.message.clear()
        self.find_items()

    def metadata(self) -> tuple[pd.DataFrame | None, str | None]:
        """The project's latest item metadata and its item column (cached per project)."""
        project = self.project
        if project is None:
            return None, None
        record = self.ws.latest_item_metadata(project)
        key = None if record is None else record.id
        if self._metadata[0] != key or (key is None and self._metadata[1] is not None):
            if record is None:
                self._metadata = (None, None, None)
            else:
                frame = self.ws.item_metadata_frame(record)
                column = "item_id" if "item_id" in frame.columns else record.item_column
                self._metadata = (key, frame, column)
        return self._metadata[1], self._metadata[2]

    def recommender(self) -> Any:
        if self.model.value is None:
            raise ValidationError("Choose a trained model first (train one in the Training dashboard).")
        return self.ws.load_model(self.model.value)

    def enrich(self, rows: list[dict]) -> list[dict]:
        frame, column = self.metadata()
        return with_metadata(rows, frame, column) if frame is not None else rows

    # --- known users

    def recommend_user(self, user_id: Any = None, background: bool = True) -> None:
        self.message.clear()
        user = (self.user_id.value if user_id is None else str(user_id)).strip()
        if not user:
            self.message.error("Type a user id first, or press Random user.")
            return
        model_id, cutoff = self.model.value, int(self.cutoff.value)

        def work() -> dict:
            recommender = self.recommender()
            return {"user_id": user, "user_profile": [{"item_id": i} for i in recommender.profile(user)],
                    "recommendations": list(recommender.recommend(user, cutoff=cutoff))}

        self._run(work, model_id, background)

    def random_user(self, background: bool = True) -> None:
        self.message.clear()
        model_id, cutoff = self.model.value, int(self.cutoff.value)
        if model_id is None:
            raise ValidationError("Choose a trained model first (train one in the Training dashboard).")

        def work() -> dict:
            return self.ws.sample_recommendation(model_id, metadata=None, cutoff=cutoff)

        self._run(work, model_id, background)

    def _run(self, work, model_id, background: bool) -> None:
        def done(result: dict) -> None:
            self.show(result)

        def guarded() -> dict | None:
            try:
                return work()
            except Exception as error:
                self.message.error(error)
                self.recs_html.value = self.profile_html.value = ""
                return None

        def finish(result: dict | None) -> None:
            if result is not None:
                done(result)

        if background:
            self.run_background(guarded, finish, buttons=[self.recommend_button, self.random_button])
        else:
            finish(guarded())

    def show(self, result: dict) -> None:
        profile = self.enrich(result["user_profile"])
        recs = self.enrich(result["recommendations"])
        self.result = {**result, "user_profile": profile, "recommendations": recs}
        self.user_id.value = str(result["user_id"])
        self.profile_html.value = (f"<b>Profile of user {html.escape(str(result['user_id']))}</b> "
                                   f"<span class='wb-muted'>({len(profile)} items in training)</span>"
                                   + html_table(rows_frame(profile, with_rank=False), max_rows=30))
        self.recs_html.value = (f"<b>Top {len(recs)} recommendations</b>" + html_table(rows_frame(recs))
                                if recs else "<span class='wb-muted'>No recommendation (the user has seen every item).</span>")

    # --- new users

    def find_items(self) -> None:
        query = self.search.value.strip().lower()
        frame, column = self.metadata()
        matches: list[tuple[str, Any]] = []
        if frame is not None:
            text_columns = [c for c in frame.columns if frame[c].dtype == object or str(frame[c].dtype).startswith("str")]
            if query:
                hit = np.zeros(len(frame), dtype=bool)
                for c in text_columns:
                    hit |= frame[c].astype(str).str.lower().str.contains(query, regex=False).to_numpy()
                found = frame[hit]
            else:
                found = frame
            label_column = next((c for c in ("title", "name") if c in frame.columns), None)
            found = found.head(MAX_MATCHES)
            labels = found[label_column].astype(str) if label_column else found[column].astype(str)
            for item, label in zip(found[column].tolist(), labels):
                matches.append((f"{label} ({item})" if label_column else label, item))
        elif self.model.value is not None:
            items = self.ws.load_model(self.model.value).item_ids
            found = [i for i in items.tolist() if query in str(i).lower()] if query else items[:MAX_MATCHES].tolist()
            matches = [(str(i), i) for i in found[:MAX_MATCHES]]
        self.matches.options = matches

    def add_item(self, item_id: Any = None) -> None:
        item = self.matches.value if item_id is None else item_id
        if item is None:
            raise ValidationError("Pick an item in the search results first.")
        if item not in self.profile_items:
            self.profile_items.append(item)
        self._show_picked()

    def remove_item(self) -> None:
        if self.picked.value in self.profile_items:
            self.profile_items.remove(self.picked.value)
        self._show_picked()

    def clear_profile(self) -> None:
        self.profile_items = []
        self._show_picked()
        self.new_recs_html.value = ""

    def _show_picked(self) -> None:
        labels = dict((v, k) for k, v in self.matches.options)
        frame, column = self.metadata()
        if frame is not None and "title" in frame.columns:
            titles = dict(zip(frame[column].astype(str), frame["title"].astype(str)))
            labels.update({i: f"{titles.get(str(i), '')} ({i})" for i in self.profile_items})
        self.picked.options = [(labels.get(i, str(i)), i) for i in self.profile_items]

    def recommend_profile(self, background: bool = True) -> None:
        self.new_message.clear()
        if not self.profile_items:
            self.new_message.error("Add at least one item to the profile first.")
            return
        items, cutoff = list(self.profile_items), int(self.cutoff.value)

        def work() -> Any:
            return self.recommender().recommend_for_profile(items, cutoff=cutoff)

        def done(recs: Any) -> None:
            if recs is None:
                return
            rows = self.enrich(list(recs))
            self.profile_result = rows
            note = (f"<div class='wb-muted'>Ignored items the model does not know: "
                    f"{html.escape(', '.join(map(str, recs.unknown_items)))}</div>" if recs.unknown_items else "")
            self.new_recs_html.value = (f"<b>Top {len(rows)} for a new user with {len(items)} items</b>" + note
                                        + html_table(rows_frame(rows)))

        def guarded() -> Any:
            try:
                return work()
            except Exception as error:
                self.new_message.error(error)
                return None

        if background:
            self.run_background(guarded, done, buttons=[self.profile_button])
        else:
            done(guarded())
