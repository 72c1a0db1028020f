"""The dashboards the server serves and the pages link to: each notebook's name and its label."""

DASHBOARDS = (
    ("home", "Home"),
    ("data", "Data"),
    ("tuning", "Tuning"),
    ("training", "Training"),
    ("models", "Models"),
    ("recommendations", "Recommendations"),
)
DASHBOARD_NAMES = tuple(name for name, _ in DASHBOARDS)
CHART_FREE = ("home", "data", "training", "recommendations")  # pages that never draw a bqplot chart
