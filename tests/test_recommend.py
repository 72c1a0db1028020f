"""The exact top-N used by every recommendation call."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.recommend import top_n


@settings(max_examples=200, deadline=None)
@given(n_rows=st.integers(1, 70), n_items=st.integers(1, 300), cutoff=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_top_n_equals_a_full_sort(n_rows, n_items, cutoff, seed, ties):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, (n_rows, n_items)).astype(np.float32) if ties else rng.standard_normal((n_rows, n_items))
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    rows, columns, values = top_n(scores, cutoff)
    for row in range(n_rows):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row, finite], kind="stable")][:cutoff]
        assert list(columns[rows == row]) == list(expected)
        assert np.array_equal(values[rows == row], scores[row, expected])
