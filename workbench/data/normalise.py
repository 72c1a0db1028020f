"""Normalising columns: ids as int64 or text, times as microseconds since 1970 (UTC), weights as
float64, one type per kind of value."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import ValidationError

MAX_ID_CHARACTERS = 1024
LATEST_TIME_US = 4_102_444_800_000_000  # 2100-01-01 UTC
_UNIT_US = {"s": 1_000_000, "ms": 1_000}
# Numbers below _SECONDS_BELOW are unix seconds (until the year 5138), others milliseconds; numbers from
# _SECONDS_FROM (1973-03-03 as seconds, 1970-01-02 as milliseconds) beside milliseconds are seconds mixed in.
_SECONDS_FROM, _SECONDS_BELOW = 1e8, 1e11
_NUMBER = r"(?i)^\s*[-+]?((\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?|nan|inf|infinity)\s*$"  # what Arrow casts to a float


def _plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decoded dictionaries, string views as large strings."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string_view(col.type):
        col = col.cast(pa.large_string())
    return col


def canonical(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """One type per kind of value, so that CSV and Parquet copies of a table compare equal."""
    col = _plain(col)
    kind = col.type
    if pa.types.is_integer(kind) and kind != pa.uint64():
        return col.cast(pa.int64())
    if pa.types.is_floating(kind):
        return col.cast(pa.float64())
    if pa.types.is_string(kind):
        return col.cast(pa.large_string())
    if pa.types.is_timestamp(kind):
        return col.cast(pa.timestamp("us", kind.tz), safe=False)
    return col


def normalise_ids(col: pa.ChunkedArray, src: str, name: str) -> tuple[pa.ChunkedArray, str]:
    """Ids as int64 ("integer") or text ("string")."""
    col = _plain(col)
    kind = col.type
    if pa.types.is_integer(kind):
        try:
            return col.cast(pa.int64()), "integer"
        except pa.ArrowInvalid:
            raise ValidationError(f"{src}: column {name!r} has integer ids too large for 64 bits") from None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # A character takes at least one byte: count characters only when some id has too many bytes.
        longest = max((_longest_bytes(chunk) for chunk in col.chunks), default=0)
        if longest > MAX_ID_CHARACTERS:
            longest = pc.max(pc.utf8_length(col)).as_py() or 0
        if longest > MAX_ID_CHARACTERS:
            raise ValidationError(
                f"{src}: column {name!r} has an id of {longest:,} characters; ids may have at most "
                f"{MAX_ID_CHARACTERS:,} characters (is this the right column?)"
            )
        return col, "string"
    if pa.types.is_floating(kind):  # e.g. a pandas integer column that holds NaN, or "nan" in a file
        col = col.cast(pa.float64())
        nan = pc.is_nan(col)
        if pc.any(nan).as_py():  # NaN is no id: a missing one, dropped or refused as such
            col = pc.if_else(nan, pa.scalar(None, pa.float64()), col)
        values = col.to_numpy()  # nulls become NaN
        present = values[~np.isnan(values)]
        if not np.all(np.isfinite(present)):
            raise ValidationError(f"{src}: column {name!r} holds infinite numbers; ids must be text or integers")
        if np.all(present == np.round(present)) and np.all(np.abs(present) < 2**63):
            return col.cast(pa.int64(), safe=False), "integer"
        raise ValidationError(f"{src}: column {name!r} holds fractional numbers; ids must be text or integers")
    raise ValidationError(f"{src}: column {name!r} holds {kind} values; ids must be text or integers")


def normalise_weights(col: pa.ChunkedArray, src: str, name: str) -> pa.ChunkedArray:
    """Weights (ratings, play counts) as float64 numbers >= 0; NaN and empty values are missing (null)."""
    col = _plain(col)
    kind = col.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            col = col.cast(pa.float64())
        except pa.ArrowInvalid:
            bad = pc.invert(pc.match_substring_regex(col, _NUMBER))
            first = pc.index(bad, True).as_py()
            example = f", e.g. {col[first].as_py()!r} (data row {first + 1})" if first >= 0 else ""
            raise ValidationError(f"{src}: column {name!r} holds values that are not numbers{example}; "
                                  "weights must be numbers") from None
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        raise ValidationError(f"{src}: column {name!r} holds {kind} values; weights must be numbers")
    col = col.cast(pa.float64())
    nan = pc.is_nan(col)
    if pc.any(nan).as_py():
        col = pc.if_else(nan, pa.scalar(None, pa.float64()), col)
    low, high = pc.min_max(col).values()
    if high.as_py() == float("inf"):
        raise ValidationError(f"{src}: column {name!r} holds infinite weights")
    if low.as_py() is not None and low.as_py() < 0:
        first = pc.index(pc.less(col, 0), True).as_py()
        raise ValidationError(
            f"{src}: column {name!r} holds negative weights, e.g. {col[first].as_py()!r} (data row {first + 1}); "
            "weights (ratings, counts) must be 0 or more"
        )
    return col


def _longest_bytes(chunk: pa.Array) -> int:
    """The byte length of the longest value of a string or large_string array (nulls count as empty)."""
    if len(chunk) == 0:
        return 0
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
    return int(np.diff(offsets).max())


def epoch_us(col: pa.ChunkedArray, con, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    """Times as int64 microseconds since 1970-01-01 UTC (nulls stay null), between 1970 and 2100."""
    us = _parse_times(col, con, src, name, unit)
    bounds = pc.min_max(us)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and low < 0:
        raise ValidationError(
            f"{src}: column {name!r} has times before 1970-01-01 (negative unix times); interaction times "
            "must lie between 1970 and 2100"
        )
    if high is not None and high >= LATEST_TIME_US:
        raise ValidationError(
            f"{src}: column {name!r} has times after 2100-01-01, out of range; interaction times must lie "
            "between 1970 and 2100"
        )
    return us


def _parse_times(col: pa.ChunkedArray, con, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    col = _plain(col)
    kind = col.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if unit is not None:
            raise ValidationError(f"{src}: column {name!r} already holds dates or times; time_unit applies to numbers")
        target = pa.timestamp("us", kind.tz if pa.types.is_timestamp(kind) else None)
        return col.cast(target, safe=False).cast(pa.int64())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _numeric_times(col, src, name, unit)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ValidationError(f"{src}: column {name!r} holds {kind} values, not times")
    con.register("_times", pa.table({"t": col}))
    parsed = con.sql(
        "SELECT TRY_CAST(t AS DOUBLE) AS number, epoch_us(TRY_CAST(t AS TIMESTAMPTZ)) AS us FROM _times"
    ).to_arrow_table()
    numbers, stamps = parsed.column("number"), parsed.column("us")
    numeric = unit is not None or numbers.null_count <= stamps.null_count  # the reading that fits more values
    chosen = numbers if numeric else stamps
    if chosen.null_count != col.null_count:
        bad = pc.and_(chosen.is_null(), col.is_valid()).to_numpy(zero_copy_only=False)
        examples = list(dict.fromkeys(col.filter(pa.array(bad)).to_pylist()))[:3]
        expected = f"numbers (time_unit={unit!r})" if unit else (
            "unix seconds or milliseconds" if numeric else "ISO 8601 text like 2024-01-31 or 2024-01-31T12:00:00"
        )
        raise ValidationError(
            f"{src}: column {name!r} has {int(bad.sum())} values that are not times, e.g. "
            f"{', '.join(map(repr, examples))} (first at data row {int(np.argmax(bad)) + 1}); expected {expected}"
        )
    return _numeric_times(numbers, src, name, unit) if numeric else stamps


def _refuse_seconds_among_milliseconds(col: pa.ChunkedArray, src: str, name: str, biggest: float) -> None:
    """Refuse numbers of both magnitudes: read as milliseconds, the seconds would land in 1970."""
    magnitude = pc.abs(col)
    seconds = pc.and_(pc.greater_equal(magnitude, _SECONDS_FROM), pc.less(magnitude, _SECONDS_BELOW))
    count = pc.sum(seconds).as_py()
    if count:
        first = pc.index(seconds, True).as_py()
        raise ValidationError(
            f"{src}: column {name!r} mixes unix seconds and milliseconds: {count} values look like seconds, "
            f"e.g. {col[first].as_py()!r} (data row {first + 1}), the others like milliseconds (up to "
            f"{biggest:.0f}); convert them to one unit, or give time_unit='s' or 'ms' if they are all in one"
        )


def _numeric_times(col: pa.ChunkedArray, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type) and not pc.all(pc.is_finite(col)).as_py():
        raise ValidationError(f"{src}: column {name!r} has infinite or NaN times")
    bounds = pc.min_max(col)
    biggest = max(abs(bounds["min"].as_py() or 0), abs(bounds["max"].as_py() or 0))
    if unit is None:
        if biggest >= 1e14:
            raise ValidationError(
                f"{src}: column {name!r} has numbers up to {biggest:.0f}, too large for unix seconds or "
                "milliseconds; convert them to one of those"
            )
        unit = "s" if biggest < _SECONDS_BELOW else "ms"
        if unit == "ms":
            _refuse_seconds_among_milliseconds(col, src, name, biggest)
    elif biggest * _UNIT_US[unit] >= 2**63:
        raise ValidationError(f"{src}: column {name!r} has numbers up to {biggest:.0f}, out of range as {unit}")
    values = (pc.fill_null(col, 0) if col.null_count else col).to_numpy()
    if pa.types.is_integer(col.type):
        us = np.multiply(values, _UNIT_US[unit], dtype=np.int64)
    else:
        us = np.rint(values * _UNIT_US[unit]).astype(np.int64)
    mask = None if col.null_count == 0 else pc.is_null(col).to_numpy(zero_copy_only=False)
    return pa.chunked_array([pa.array(us, mask=mask)])
