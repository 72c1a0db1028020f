"""Recommendations: what a model recommends to a known user, a random user, or a new user's profile.

The chosen model is loaded (read, verified, unpickled) in the background as soon as the page opens
or the choice changes, so a click answers with the model already in memory.
"""

from __future__ import annotations

import html
import threading
from concurrent.futures import Future
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import NotFoundError, ValidationError
from ..recommend import sample_recommendation, with_metadata
from .controls import section, set_options
from .dashboard import Dashboard
from .format import html_table, shown_of

MAX_MATCHES = 50
MAX_PROFILE_ROWS = 30


def rows_frame(rows: list[dict], with_rank: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if with_rank and len(frame):
        frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


class ModelLoader:
    """Keeps the chosen model loaded: `prepare(id)` starts loading it in a thread, `get(id)` waits for it.
    One model is kept at a time; a load that failed is tried again on the next call."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._model_id: int | None = None
        self._future: Future | None = None
        self.threads: list[threading.Thread] = []

    def prepare(self, model_id: int) -> Future:
        with self._lock:
            stale = self._future is None or self._model_id != model_id
            failed = self._future is not None and self._future.done() and self._future.exception() is not None
            if stale or failed:
                self._model_id, self._future = model_id, Future()
                thread = threading.Thread(target=self._load, args=(model_id, self._future), daemon=True,
                                          name=f"load-model-{model_id}")
                self.threads = [t for t in self.threads if t.is_alive()] + [thread]
                thread.start()
            return self._future

    def _load(self, model_id: int, future: Future) -> None:
        try:
            future.set_result(self.ws.load_model(model_id))
        except BaseException as error:  # handed to whoever waits for the model
            future.set_exception(error)

    def get(self, model_id: int) -> Any:
        return self.prepare(model_id).result()

    def loaded(self, model_id: int) -> Any:
        """The model if it is loaded already, else None (never waits)."""
        with self._lock:
            future = self._future if self._model_id == model_id else None
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()


class RecommendationsDashboard(Dashboard):
    name = "recommendations"
    title = "Recommendations"
    subtitle = "Top-N items from a trained model, with item metadata."

    def __init__(self, ws: Any = None, project: Any = None, model: Any = None) -> None:
        super().__init__(ws, project, model)
        w, L = widgets, widgets.Layout
        self.loader = ModelLoader(self.ws)
        self.model = w.Dropdown(description="Model", options=[], layout=L(width="460px"),
                                style={"description_width": "60px"})
        self.model_state = w.HTML()
        self.cutoff = w.BoundedIntText(description="Top N", value=10, min=1, max=200, layout=L(width="160px"),
                                       style={"description_width": "50px"})
        self.user_id = w.Text(description="User id", placeholder="e.g. u42", layout=L(width="260px"),
                              style={"description_width": "60px"}, continuous_update=False)
        self.recommend_button = w.Button(description="Recommend", icon="magic", button_style="primary")
        self.random_button = w.Button(description="Random user", icon="random")
        self.message = self.outcome()
        self.on_click(self.recommend_button, self.recommend_user, self.message)
        self.on_click(self.random_button, self.random_user, self.message)
        half = L(flex="1 1 0", min_width="0", margin="0 12px 0 0")
        self.profile_html = w.HTML(layout=half)
        self.recs_html = w.HTML(layout=L(flex="1 1 0", min_width="0"))
        # new-user profile builder
        self.search = w.Text(description="Search", placeholder="title, genre or item id", layout=L(width="360px"),
                             style={"description_width": "60px"})
        self.matches = w.Select(options=[], rows=8, layout=L(width="360px"))
        self.matches_label = w.HTML()
        self.add_button = w.Button(description="Add →", layout=L(width="90px"))
        self.remove_button = w.Button(description="← Remove", layout=L(width="90px"))
        self.clear_button = w.Button(description="Clear", layout=L(width="90px"))
        self.picked = w.Select(options=[], rows=8, layout=L(width="360px"))
        self.profile_button = w.Button(description="Recommend for this profile", icon="magic", button_style="primary",
                                       layout=L(width="240px"))
        self.new_message = self.outcome()
        self.new_recs_html = w.HTML()
        self.search.observe(self.guard(lambda _: self.find_items()), "value")
        self.on_click(self.add_button, self.add_item, self.new_message)
        self.on_click(self.remove_button, self.remove_item, self.new_message)
        self.on_click(self.clear_button, self.clear_profile, self.new_message)
        self.on_click(self.profile_button, self.recommend_profile, self.new_message)
        self.model.observe(self.guard(lambda _: self._model_changed()), "value")
        self.profile_items: list[Any] = []
        self.result: dict | None = None
        self.profile_result: list[dict] | None = None
        self._metadata: tuple[int | None, pd.DataFrame | None, str | None] = (None, None, None)
        self.body.children = [
            w.HBox([self.model, self.cutoff, self.model_state], layout=L(align_items="center")),
            section("A known user", w.HBox([self.user_id, self.recommend_button, self.random_button]),
                    self.message, w.HBox([self.profile_html, self.recs_html], layout=L(align_items="flex-start"))),
            section("A new user", w.HBox([
                w.VBox([self.search, self.matches, self.matches_label]),
                w.VBox([self.add_button, self.remove_button, self.clear_button], layout=L(margin="28px 6px 0 6px")),
                w.VBox([w.HTML("<b>Profile</b>"), self.picked]),
            ]), self.profile_button, self.new_message, self.new_recs_html,
                note="Search items, add them to a profile, and see what the model recommends to such a user."),
        ]
        self.open_page()

    # --- state

    @property
    def current_model(self) -> int | None:
        return self.model.value

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
        wanted, self.wanted_model = self.wanted_model, None
        if wanted is not None and wanted not in [v for _, v in options]:
            self.message.error(f"Model #{wanted} is not a trained model of this project: showing another one.")
        self._quiet = True  # one load for the final choice, below
        try:
            set_options(self.model, options, wanted)
        finally:
            self._quiet = False
        if not options:
            self.message.info("No trained model in this project yet: train one in the Training or Tuning dashboard.")
        self._model_changed(clear=False)

    def _model_changed(self, clear: bool = True) -> None:
        if self._quiet:
            return
        if clear:
            self.clear_outcomes()
            self.result, self.profile_html.value, self.recs_html.value = None, "", ""
        self.update_links()
        if self.model.value is not None:
            self.model_state.value = "<span class='wb-muted'>loading the model…</span>"
            self.loader.prepare(self.model.value).add_done_callback(self._model_loaded)
        else:
            self.model_state.value = ""
        self.find_items()

    def _model_loaded(self, future: Future) -> None:
        error = future.exception()
        self.model_state.value = ("<span class='wb-muted'>model loaded</span>" if error is None else
                                  f"<span style='color:#b00'>{html.escape(str(error))}</span>")
        if error is not None:
            return
        users = future.result().user_ids
        self.user_id.placeholder = f"e.g. {users[min(41, len(users) - 1)]}" if len(users) else ""
        if self.metadata()[0] is None:
            self.find_items()  # the item list comes from the model itself

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
        """The chosen model, loaded (waiting for the background load if it is still running)."""
        if self.model.value is None:
            raise ValidationError("Choose a trained model first (train one in the Training dashboard).")
        return self.loader.get(self.model.value)

    def enrich(self, rows: list[dict]) -> list[dict]:
        frame, column = self.metadata()
        return with_metadata(rows, frame, column) if frame is not None else rows

    def wait(self, timeout: float = 120.0) -> None:
        self._threads += self.loader.threads
        super().wait(timeout)

    # --- known users

    def recommend_user(self, user_id: Any = None, background: bool = True) -> None:
        user = (self.user_id.value if user_id is None else str(user_id)).strip()
        if not user:
            raise ValidationError("Type a user id first, or press Random user.")
        cutoff = int(self.cutoff.value)

        def work() -> dict:
            model = self.recommender()
            try:
                profile, recommendations = model.profile(user), model.recommend(user, cutoff=cutoff)
            except (NotFoundError, ValidationError):
                example = str(model.user_ids[0]) if len(model.user_ids) else ""
                raise ValidationError(f"User {user!r} is not in the training data of model #{model.model.id} (its user "
                                      f"ids look like {example!r}): press Random user, or build a profile under "
                                      "“A new user” below.") from None
            return {"user_id": user, "user_profile": [{"item_id": i} for i in profile],
                    "recommendations": list(recommendations)}

        self._show_when_done(work, background)

    def random_user(self, background: bool = True) -> None:
        cutoff = int(self.cutoff.value)
        if self.model.value is None:
            raise ValidationError("Choose a trained model first (train one in the Training dashboard).")
        self._show_when_done(lambda: sample_recommendation(self.ws, self.recommender(), metadata=None, cutoff=cutoff),
                             background)

    def _show_when_done(self, work, background: bool) -> None:
        self.recs_html.value = self.profile_html.value = ""
        self.run_background(work, self.show, self.message, [self.recommend_button, self.random_button],
                            background=background)

    def show(self, result: dict) -> None:
        profile = self.enrich(result["user_profile"])
        recs = self.enrich(result["recommendations"])
        self.result = {**result, "user_profile": profile, "recommendations": recs}
        self.user_id.value = str(result["user_id"])
        self.profile_html.value = (f"<b>Profile of user {html.escape(str(result['user_id']))}</b> "
                                   f"<span class='wb-muted'>({len(profile):,} items in training)</span>"
                                   + html_table(rows_frame(profile, with_rank=False), max_rows=MAX_PROFILE_ROWS,
                                                noun="items"))
        self.recs_html.value = (f"<b>Top {len(recs)} recommendations</b>" + html_table(rows_frame(recs), best=["score"])
                                if recs else "<span class='wb-muted'>No recommendation (the user has seen every item).</span>")

    # --- new users

    def find_items(self) -> None:
        query = self.search.value.strip().lower()
        frame, column = self.metadata()
        matches: list[tuple[str, Any]] = []
        total = 0
        if frame is not None:
            text_columns = [c for c in frame.columns if frame[c].dtype == object or str(frame[c].dtype).startswith("str")]
            found = frame
            if query:
                hit = np.zeros(len(frame), dtype=bool)
                for c in text_columns:
                    hit |= frame[c].astype(str).str.lower().str.contains(query, regex=False).to_numpy()
                found = frame[hit]
            total = len(found)
            label_column = next((c for c in ("title", "name") if c in frame.columns), None)
            found = found.head(MAX_MATCHES)
            labels = found[label_column].astype(str) if label_column else found[column].astype(str)
            matches = [(f"{label} ({item})" if label_column else label, item)
                       for item, label in zip(found[column].tolist(), labels)]
        elif self.model.value is not None:
            loaded = self.loader.loaded(self.model.value)
            items = loaded.item_ids.tolist() if loaded is not None else []
            found = [i for i in items if query in str(i).lower()] if query else items
            total = len(found)
            matches = [(str(i), i) for i in found[:MAX_MATCHES]]
        self.matches.options = matches
        self.matches_label.value = f"<span class='wb-muted'>{shown_of(len(matches), total, 'matches')}</span>"

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
        if not self.profile_items:
            raise ValidationError("Add at least one item to the profile first.")
        items, cutoff = list(self.profile_items), int(self.cutoff.value)

        def done(recs: Any) -> None:
            rows = self.enrich(list(recs))
            self.profile_result = rows
            note = (f"<div class='wb-muted'>Left out, unknown to the model: "
                    f"{html.escape(', '.join(map(str, recs.unknown_items)))}</div>" if recs.unknown_items else "")
            self.new_recs_html.value = (f"<b>Top {len(rows)} for a new user with {len(items)} items</b>" + note
                                        + html_table(rows_frame(rows), best=["score"]))

        self.new_recs_html.value = ""
        self.run_background(lambda: self.recommender().recommend_for_profile(items, cutoff=cutoff), done,
                            self.new_message, [self.profile_button], background=background)
