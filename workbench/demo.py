"""Synthetic, learnable demo data: a small movie catalogue and who watched what, made without network."""

from __future__ import annotations

import numpy as np
import pandas as pd

GENRES = ("Drama", "Comedy", "Action", "Sci-Fi", "Horror", "Romance", "Documentary", "Animation")
_WORDS = {  # (adjectives, nouns) per genre, for titles
    "Drama": (("Silent", "Broken", "Last", "Quiet", "Distant", "Bitter"), ("River", "Promise", "Winter", "Letter", "Harbor", "Verdict")),
    "Comedy": (("Crazy", "Lucky", "Awkward", "Big", "Accidental", "Wild"), ("Wedding", "Weekend", "Roommates", "Road Trip", "Neighbors", "Plan")),
    "Action": (("Final", "Iron", "Rogue", "Deadly", "Black", "Rapid"), ("Strike", "Pursuit", "Protocol", "Fury", "Outpost", "Heist")),
    "Sci-Fi": (("Quantum", "Lost", "Stellar", "Hidden", "Infinite", "Red"), ("Horizon", "Signal", "Colony", "Machine", "Orbit", "Paradox")),
    "Horror": (("Haunted", "Hollow", "Crimson", "Endless", "Forgotten", "Dark"), ("House", "Woods", "Night", "Whisper", "Cellar", "Ritual")),
    "Romance": (("Sweet", "Second", "Summer", "Secret", "Paper", "Golden"), ("Kiss", "Chance", "Hearts", "Garden", "Dance", "Vows")),
    "Documentary": (("Inside", "Beyond", "Untold", "Wild", "Real", "Hidden"), ("Planet", "Oceans", "Empire", "Kitchen", "Frontier", "Story")),
    "Animation": (("Little", "Brave", "Magic", "Tiny", "Flying", "Happy"), ("Dragon", "Robot", "Kingdom", "Fox", "Island", "Friends")),
}


def generate_demo(
    seed: int = 0,
    n_users: int = 1500,
    n_items: int = 800,
    n_clusters: int = len(GENRES),
    mean_interactions: float = 45.0,
    in_cluster: float = 0.8,
    start: str = "2024-01-01",
    days: int = 240,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Interactions (user_id, item_id, timestamp) and items (item_id, title, genres, year).

    Users and items belong to taste clusters (one per genre); a user picks a share `in_cluster` of
    items from their own cluster, the rest from everywhere; item popularity is Zipf-like and user
    activity lognormal. The same seed always gives the same data.
    """
    if not 1 <= n_clusters <= len(GENRES):
        raise ValueError(f"n_clusters must be between 1 and {len(GENRES)}")
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, n_clusters, n_items)
    popularity = 1.0 / rng.permutation(np.arange(1, n_items + 1)) ** 1.0
    user_cluster = rng.integers(0, n_clusters, n_users)
    counts = np.clip(rng.lognormal(np.log(mean_interactions) - 0.4, 0.9, n_users), 5, n_items // 4).astype(int)

    start_ts = pd.Timestamp(start).value // 10**9
    span = days * 86_400
    users, items, times = [], [], []
    for user in range(n_users):
        in_own = item_cluster == user_cluster[user]
        weights = popularity * np.where(in_own, in_cluster / popularity[in_own].sum(), (1 - in_cluster) / popularity[~in_own].sum())
        chosen = rng.choice(n_items, size=counts[user], replace=False, p=weights / weights.sum())
        first = rng.uniform(0, span * 0.8)
        active = min(rng.exponential(span * 0.25), span - first)
        users.append(np.full(len(chosen), user))
        items.append(chosen)
        times.append(np.sort(first + rng.uniform(0, active, len(chosen))))
    item_ids = _ids("i", n_items)
    interactions = pd.DataFrame({
        "user_id": _ids("u", n_users)[np.concatenate(users)],
        "item_id": item_ids[np.concatenate(items)],
        "timestamp": pd.to_datetime(start_ts + np.concatenate(times).astype(np.int64), unit="s"),
    })
    return interactions, _catalogue(rng, item_ids, item_cluster, n_clusters)


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{k:05d}" for k in range(n)], dtype=object)


def _catalogue(rng: np.random.Generator, item_ids: np.ndarray, item_cluster: np.ndarray, n_clusters: int) -> pd.DataFrame:
    titles, genres, seen = [], [], {}
    for cluster in item_cluster:
        genre = GENRES[cluster]
        adjectives, nouns = _WORDS[genre]
        title = f"The {rng.choice(adjectives)} {rng.choice(nouns)}"
        seen[title] = seen.get(title, 0) + 1
        titles.append(title if seen[title] == 1 else f"{title} {_roman(seen[title])}")
        other = rng.integers(0, n_clusters)
        genres.append(genre if other == cluster or rng.random() < 0.6 else f"{genre}|{GENRES[other]}")
    years = np.clip(2024 - rng.gamma(1.6, 9.0, len(item_cluster)).astype(int), 1950, 2024)
    return pd.DataFrame({
        "item_id": item_ids,
        "title": titles,
        "genres": genres,
        "year": years.astype(np.int64),
    })


def _roman(n: int) -> str:
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, letters in numerals:
        while n >= value:
            out, n = out + letters, n - value
    return out


def create_demo_project(ws, name: str = "demo", seed: int = 0, **sizes):
    """Create project `name` in a workspace from `generate_demo` (interactions and item metadata)."""
    interactions, items = generate_demo(seed=seed, **sizes)
    project = ws.create_project(name, user_column="user_id", item_column="item_id", time_column="timestamp")
    ws.import_training_data(project, interactions, name=f"demo interactions (seed {seed})")
    ws.import_item_metadata(project, items)
    return ws.project(project.id)
