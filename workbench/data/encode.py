"""The encode and sort kernels of an import: ids to dense codes in id order, rows in (user, item, time) order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# coo_tocsr is a stable counting sort by row and csr_sort_indices sorts each row by column: together
# they order 10M rows by (user_code, item_code) about 3x faster than numpy's argsort of a 64-bit key.
from scipy.sparse import _sparsetools

PARALLEL_ROWS = 1 << 18  # below this many rows, threads cost more than they save


def encode_columns(columns: list, pool: ThreadPoolExecutor | None) -> list:
    """_encode of each column; long columns in parts on `pool`, so that both cores work until the end.

    Hashing ids costs most for the column with more distinct values (usually the users): splitting
    each column in two parts, rather than giving each column a thread, keeps the load even.
    """
    dense = [encode_dense_integers(col) for col in columns]
    if pool is None:
        return [d or _encode(col) for d, col in zip(dense, columns)]
    jobs = []  # (column number, part)
    for number, col in enumerate(columns):
        if dense[number]:
            continue
        n = len(col)
        parts = 2 if n >= PARALLEL_ROWS else 1
        bounds = [n * k // parts for k in range(parts + 1)]
        jobs += [(number, col.slice(bounds[k], bounds[k + 1] - bounds[k])) for k in range(parts)]
    encoded = list(pool.map(lambda job: _dictionary_encode(job[1]), jobs))
    results = []
    for number in range(len(columns)):
        mine = [e for (j, _), e in zip(jobs, encoded) if j == number]
        results.append(dense[number] or _merge_encoded(mine, pool))
    return results


DENSE_SLOTS_PER_ROW = 4  # integer ids spread over at most this many values per row take encode_dense_integers


def encode_dense_integers(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray] | None:
    """_encode of integer ids that fill much of their range, by marking them in a table over it.

    Linear and cache-friendly where hashing is not: lastfm-2k's artist ids in 0.4 ms against 2.9 ms.
    None for text ids, or integers too sparse in their range (e.g. hashes) for a table.
    """
    if not pa.types.is_int64(col.type) or len(col) == 0:
        return None
    low, high = pc.min_max(col).values()
    slots = high.as_py() - low.as_py() + 1
    if slots > DENSE_SLOTS_PER_ROW * len(col) + (1 << 16):
        return None
    offsets = col.to_numpy() - low.as_py()  # below the slot count: fits in int64
    present = np.zeros(slots, dtype=bool)
    present[offsets] = True
    rank = np.cumsum(present, dtype=np.int32) - 1
    return pa.array(np.flatnonzero(present) + low.as_py()), rank[offsets]


def _dictionary_encode(col: pa.ChunkedArray) -> pa.DictionaryArray:
    return pc.dictionary_encode(col).combine_chunks()


def _encode(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The distinct values in sorted order, and each row's rank among them as int32."""
    return _merge_encoded([_dictionary_encode(col)], None)


def _merge_encoded(parts: list, pool: ThreadPoolExecutor | None) -> tuple[pa.Array, np.ndarray]:
    """One sorted dictionary for dictionary-encoded parts of a column, and each row's rank in it."""
    if len(parts) == 1:
        dictionary = parts[0].dictionary
        where = [np.arange(len(dictionary), dtype=np.int32)]
    else:  # the parts' dictionaries overlap: encode them again, together
        together = pc.dictionary_encode(pa.concat_arrays([p.dictionary for p in parts]))
        dictionary = together.dictionary
        positions = together.indices.to_numpy()
        bounds = np.cumsum([0] + [len(p.dictionary) for p in parts])
        where = [positions[bounds[k] : bounds[k + 1]] for k in range(len(parts))]
    order = pc.sort_indices(dictionary)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order.to_numpy()] = np.arange(len(order), dtype=np.int32)
    values = dictionary.take(order)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())

    def codes(k):
        return rank[where[k]][parts[k].indices.to_numpy()]

    chunks = list(pool.map(codes, range(len(parts)))) if pool is not None and len(parts) > 1 else [
        codes(k) for k in range(len(parts))]
    return values, chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def sort_rows(ucodes, icodes, t, n_users, n_items, duplicates, pool=None, w=None):
    """Rows ordered by (user, item, time, weight), with duplicate pairs kept or reduced to their latest
    row: (user codes, item codes, times or None, weights or None, number of rows dropped).

    Without a thread pool, two counting sorts (by item, then stably by user) order the rows in
    linear time: ml-100k in 1 ms against 3 ms for sorting each user's items. With one, the rows are
    grouped by user and the items of the first and second half of the users are sorted in parallel,
    which needs less memory at 10M rows (scipy's sparsetools release the GIL).
    """
    n = len(ucodes)
    index = np.int32 if n < 2**31 else np.int64
    ucodes, icodes = ucodes.astype(index, copy=False), icodes.astype(index, copy=False)
    # what travels with the rows: their times, or with weights their row numbers
    values = np.arange(n, dtype=index) if w is not None else np.zeros(n, dtype=np.int8) if t is None else t
    indptr, items, moved = np.empty(n_users + 1, dtype=index), np.empty(n, dtype=index), np.empty_like(values)
    if pool is None:
        by_item, item_users, item_values = np.empty(n_items + 1, dtype=index), np.empty(n, dtype=index), np.empty_like(values)
        _sparsetools.coo_tocsr(n_items, n_users, n, icodes, ucodes, values, by_item, item_users, item_values)
        _sparsetools.csr_tocsc(n_items, n_users, by_item, item_users, item_values, indptr, items, moved)
    else:
        _sparsetools.coo_tocsr(n_users, n_items, n, ucodes, icodes, values, indptr, items, moved)
        half = int(np.searchsorted(indptr, indptr[-1] // 2))  # users [0, half) hold about half the rows

        def sort_users(first, last):
            start, stop = indptr[first], indptr[last]
            _sparsetools.csr_sort_indices(last - first, indptr[first : last + 1] - start, items[start:stop], moved[start:stop])

        list(pool.map(sort_users, (0, half), (half, n_users)))
    if w is None:
        times, weights = (None if t is None else moved), None
    else:
        times, weights = (None if t is None else t[moved]), w[moved]
    users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr))
    items = items.astype(np.int32, copy=False)
    same = np.zeros(n + 1, dtype=bool)  # same[k]: row k has the pair of row k - 1; same[n] stays False
    np.equal(users[1:], users[:-1], out=same[1:n])
    same[1:n] &= items[1:] == items[:-1]
    n_dropped = 0
    if (t is not None or w is not None) and same.any():
        rows = np.flatnonzero(same[:n] | same[1:])  # rows of pairs seen more than once
        if w is None:  # order the times of each repeated pair (a dozen times faster than a lexsort)
            repeated = times[rows]
            starts = np.flatnonzero(~same[rows]).astype(index)
            _sparsetools.csr_sort_indices(len(starts), np.append(starts, index(len(rows))), repeated, np.zeros(len(rows), np.int8))
            times[rows] = repeated
        else:  # by time, then weight, within each repeated pair
            keys = [weights[rows]] + ([] if times is None else [times[rows]]) + [np.cumsum(~same[rows])]
            order = rows[np.lexsort(keys)]
            weights[rows] = weights[order]
            if times is not None:
                times[rows] = times[order]
        if duplicates == "last":
            keep = ~same[1:]  # the last row of each pair
            n_dropped = n - int(np.count_nonzero(keep))
            users, items, times = users[keep], items[keep], times[keep]
            weights = None if weights is None else weights[keep]
    return users, items, times, weights, n_dropped
