"""Recommendations: what a model recommends to a known user, a random user, or a new user's profile,
each item with the user's items it comes from; and the items a model finds similar to a chosen one.

The chosen model is loaded (read, verified, unpickled) in the background as soon as the page opens
or the choice changes, so a click answers with the model already in memory.
"""

from __future__ import annotations

import html
import threading
from concurrent.futures import Future
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import NotFoundError, ValidationError
from ..recommend import sample_recommendation, with_metadata
from .controls import section, set_options
from .dashboard import Dashboard
from .format import html_table
from .items import ItemFinder, item_names, recommendations_html, rows_frame, similar_html

MAX_PROFILE_ROWS = 30


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
    subtitle = "Top-N items from a trained model, with item metadata and why each is recommended."

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
        narrower = L(flex="2 1 0", min_width="0", margin="0 12px 0 0")  # the top-N, with its reasons, gets 3/5
        self.profile_html = w.HTML(layout=narrower)
        self.recs_html = w.HTML(layout=L(flex="3 1 0", min_width="0"))
        # new-user profile builder
        self.finder = ItemFinder(self.item_catalog)
        self.search, self.matches, self.matches_label = self.finder.search, self.finder.matches, self.finder.label
        self.add_button = w.Button(description="Add →", layout=L(width="90px"))
        self.remove_button = w.Button(description="← Remove", layout=L(width="90px"))
        self.clear_button = w.Button(description="Clear", layout=L(width="90px"))
        self.picked = w.Select(options=[], rows=8, layout=L(width="360px"))
        self.profile_button = w.Button(description="Recommend for this profile", icon="magic", button_style="primary",
                                       layout=L(width="240px"))
        self.new_message = self.outcome()
        self.new_recs_html = w.HTML()
        self.search.observe(self.guard(lambda _: self.finder.find()), "value")
        # similar items
        self.similar_finder = ItemFinder(self.item_catalog, rows=6)
        self.similar_finder.add_class("wb-similar-finder")
        self.similar_finder.search.observe(self.guard(lambda _: self.similar_finder.find()), "value")
        self.similar_button = w.Button(description="Similar items", icon="clone", button_style="primary",
                                       tooltip="the items the model finds most like the chosen one")
        self.similar_state = w.HTML()
        self.similar_message = self.outcome()
        self.similar_html = w.HTML()
        self.on_click(self.similar_button, self.show_similar, self.similar_message)
        self.on_click(self.add_button, self.add_item, self.new_message)
        self.on_click(self.remove_button, self.remove_item, self.new_message)
        self.on_click(self.clear_button, self.clear_profile, self.new_message)
        self.on_click(self.profile_button, self.recommend_profile, self.new_message)
        self.model.observe(self.guard(lambda _: self._model_changed()), "value")
        self.profile_items: list[Any] = []
        self.result: dict | None = None
        self.profile_result: list[dict] | None = None
        self.similar_result: list[dict] | None = None
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
            section("Similar items", w.HBox([self.similar_finder, w.VBox([self.similar_button, self.similar_state],
                                                                        layout=L(margin="0 0 0 12px", width="420px"))]),
                    self.similar_message, self.similar_html,
                    note="Search an item, pick it, and see the items this model finds most like it."),
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
            self.similar_result, self.similar_html.value = None, ""
        self.update_links()
        self.similar_state.value = ""
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
        loaded = future.result()
        users = loaded.user_ids
        self.user_id.placeholder = f"e.g. {users[min(41, len(users) - 1)]}" if len(users) else ""
        none = loaded.cannot_find_similar
        self.similar_state.value = f"<div class='wb-banner-info'>{html.escape(none)}</div>" if none else ""
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

    def item_catalog(self) -> tuple[pd.DataFrame | None, str | None, list]:
        """What the item finders search: the item metadata, else the loaded model's item ids."""
        frame, column = self.metadata()
        loaded = self.loader.loaded(self.model.value) if frame is None and self.model.value is not None else None
        return frame, column, (loaded.item_ids.tolist() if loaded is not None else [])

    def enrich(self, rows: list[dict]) -> list[dict]:
        frame, column = self.metadata()
        return with_metadata(rows, frame, column) if frame is not None else rows

    def names(self) -> dict[str, str]:
        """Item id (as text) -> title, for the explanations."""
        return item_names(*self.metadata())

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
                profile = model.profile(user)
                recommendations = model.recommend(user, cutoff=cutoff, explain=model.cannot_explain is None)
            except (NotFoundError, ValidationError):
                example = str(model.user_ids[0]) if len(model.user_ids) else ""
                raise ValidationError(f"User {user!r} is not in the training data of model #{model.model.id} (its user "
                                      f"ids look like {example!r}): press Random user, or build a profile under "
                                      "“A new user” below.") from None
            return {"user_id": user, "user_profile": [{"item_id": i} for i in profile],
                    "recommendations": list(recommendations), "unexplained": model.cannot_explain}

        self._show_when_done(work, background)

    def random_user(self, background: bool = True) -> None:
        cutoff = int(self.cutoff.value)
        if self.model.value is None:
            raise ValidationError("Choose a trained model first (train one in the Training dashboard).")

        def work() -> dict:
            model = self.recommender()
            explain = model.cannot_explain is None
            return {**sample_recommendation(self.ws, model, metadata=None, cutoff=cutoff, explain=explain),
                    "unexplained": model.cannot_explain}

        self._show_when_done(work, background)

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
        self.recs_html.value = (recommendations_html(f"Top {len(recs)} recommendations", recs, self.names(),
                                                     result.get("unexplained"))
                                if recs else "<span class='wb-muted'>No recommendation (the user has seen every item).</span>")

    # --- new users

    def find_items(self) -> None:
        self.finder.find()
        self.similar_finder.find()

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

        def work() -> tuple[Any, str | None]:
            model = self.recommender()
            return (model.recommend_for_profile(items, cutoff=cutoff, explain=model.cannot_explain is None),
                    model.cannot_explain)

        def done(answer: tuple[Any, str | None]) -> None:
            recs, unexplained = answer
            rows = self.enrich(list(recs))
            self.profile_result = rows
            note = (f"<div class='wb-muted'>Left out, unknown to the model: "
                    f"{html.escape(', '.join(map(str, recs.unknown_items)))}</div>" if recs.unknown_items else "")
            self.new_recs_html.value = note + recommendations_html(
                f"Top {len(rows)} for a new user with {len(items)} items", rows, self.names(), unexplained)

        self.new_recs_html.value = ""
        self.run_background(work, done, self.new_message, [self.profile_button], background=background)

    # --- similar items

    def show_similar(self, item_id: Any = None, background: bool = True) -> None:
        """The chosen item's most similar items in the model (Top N of them), with item metadata."""
        item = self.similar_finder.matches.value if item_id is None else item_id
        if item is None:
            raise ValidationError("Search an item and pick it in the list first.")
        cutoff = int(self.cutoff.value)

        def work() -> tuple[int, list[dict]]:
            model = self.recommender()
            return model.model.id, list(model.similar_items(item, cutoff=cutoff))

        def done(answer: tuple[int, list[dict]]) -> None:
            model_id, rows = answer
            self.similar_result = self.enrich(rows)
            self.similar_html.value = similar_html(item, self.similar_result, self.names(), model_id)

        self.similar_html.value = ""
        self.run_background(work, done, self.similar_message, [self.similar_button], background=background)
