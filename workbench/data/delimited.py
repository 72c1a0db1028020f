"""Delimited text (CSV, TSV, `::`-separated): the delimiter, DuckDB's sniffed dialect and types, and
Arrow's faster CSV reader for files in a plain dialect (DuckDB reads the rest, and gives the errors)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv

from .engine import identifiers, limit_clause, literal, struct, wrap_error
from .engine import options as sql_options
from .readers import SAMPLE_BYTES, Source, check_width

DELIMITERS = ("::", "||", "\t", ",", ";", "|")  # multi-character ones first
_SNIFF_ROWS = 2048
# DuckDB types of CSV columns that Arrow's CSV reader parses the same way.
_ARROW_CSV_TYPES = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}


def detect_delimiter(head: bytes) -> str | None:
    """The delimiter found the same number of times on every sampled line (the most often, if several).

    None when none is consistent (e.g. quoted fields holding delimiters): DuckDB's sniffer decides then.
    """
    pieces = head.split(b"\n", 200)  # the first 200 lines, then the rest in one piece
    lines = b"\n".join(pieces[:200]).decode("utf-8", "replace").splitlines()[:200]
    if len(pieces) <= 200 and len(head) == SAMPLE_BYTES:
        lines = lines[:-1]  # the sample ends inside its last line
    lines = [line for line in lines if line.strip()]
    best, best_count = None, 0
    for delim in DELIMITERS:
        counts = {line.count(delim) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > best_count:
            if len(delim) > 1:
                return delim
            best, best_count = delim, count
    return best


def open_csv(path: Path, gzipped: bool, head: bytes, con, src: str, delimiter: str | None) -> Source:
    """A delimited text file, its dialect and column types sniffed by DuckDB (`head`: its first bytes)."""
    delim = delimiter or detect_delimiter(head)
    first_line = head.split(b"\n", 1)[0]
    fields = 1 + max(first_line.count(d.encode()) for d in ([delim] if delim else DELIMITERS))
    # before sniffing, which takes seconds to minutes for tens of thousands of columns
    check_width(fields, src, at_least=len(first_line) == len(head), hint="is the delimiter right?")
    options = {"compression": "gzip" if gzipped else "none"}
    if delim:
        options["delim"] = delim
    if b'"' not in head and b"'" not in head and head.count(b"\n") > _SNIFF_ROWS:
        options.update(quote="", escape="")  # what the sniffer finds for these rows, in half its time
    try:
        sniffed = con.execute(
            f"SELECT Delimiter, Quote, Escape, SkipRows, HasHeader, Columns, DateFormat, TimestampFormat "
            f"FROM sniff_csv({literal(str(path))}, sample_size={_SNIFF_ROWS}{sql_options(options)})"
        ).fetchall()[0]
    except duckdb.Error as error:
        raise wrap_error(src, error) from None
    delim, quote, escape, skip, header, columns, date_format, ts_format = sniffed
    quote = "" if quote == "(empty)" else quote
    escape = quote if escape == "(empty)" else escape  # RFC 4180 doubles quotes inside quoted fields
    options.update(auto_detect=False, header=header, delim=delim, skip=skip, quote=quote, escape=escape)
    if date_format:
        options["dateformat"] = date_format
    if ts_format:
        options["timestampformat"] = ts_format
    types = {c["name"]: c["type"] for c in columns}
    empty_hint = " (only a header line)" if header and b"\n" not in head.strip() else ""

    fast = _arrow_csv_options(path, gzipped, options, list(types))

    def fetch(names, typed, limit):
        nonlocal fast
        spec = {name: typed.get(name, "VARCHAR") for name in types}
        if fast is not None and limit is None and all(spec[n] in _ARROW_CSV_TYPES for n in names):
            read, parse = fast
            convert = pa_csv.ConvertOptions(
                column_types={n: _ARROW_CSV_TYPES[spec[n]] for n in names}, include_columns=list(names),
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
            )
            try:
                return pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
            except (pa.ArrowException, ValueError, OSError):
                fast = None  # DuckDB reads it, or says what is wrong with it
        sql = (
            f"SELECT {identifiers(names)} FROM read_csv({literal(str(path))}"
            f"{sql_options(options)}, columns={struct(spec)}){limit_clause(limit)}"
        )
        return con.sql(sql).to_arrow_table()

    return Source(src, list(types), fetch, types, empty_hint)


def _arrow_csv_options(path: Path, gzipped: bool, options: dict, columns: list):
    """Arrow CSV read and parse options equivalent to DuckDB's sniffed dialect, or None.

    Arrow's multi-threaded CSV reader takes about half the CPU time of DuckDB's for a large file
    (and converts to Arrow as it goes), and a third of its wall time for a small one (ml-100k's
    u.data: 7 ms against 23 ms). It is used only for a plain file in a dialect both read the same
    way (one-byte delimiter, '"' or no quoting, quotes escaped by doubling) and only for BIGINT,
    DOUBLE and VARCHAR columns (see open_csv); a file it does not read without error is read by
    DuckDB, which also gives the error message.
    """
    delim, quote, escape = options["delim"], options["quote"], options["escape"]
    if (gzipped or len(delim.encode()) != 1 or delim in "\r\n\""
            or quote not in ('"', "") or escape not in (quote, "") or len(set(columns)) != len(columns)):
        return None
    # blocks are parsed in parallel: a small file in several blocks, a large one in blocks of 4 MiB
    block_size = min(1 << 22, max(1 << 18, path.stat().st_size // 8))
    read = pa_csv.ReadOptions(
        column_names=columns, skip_rows=options["skip"] + bool(options["header"]), block_size=block_size)
    parse = pa_csv.ParseOptions(
        delimiter=delim, quote_char=quote or False, double_quote=bool(quote), escape_char=False,
        newlines_in_values=bool(quote), ignore_empty_lines=True,
    )
    return read, parse
