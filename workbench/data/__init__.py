"""Import interaction and item-metadata files into immutable Parquet snapshots, and read them back.

DuckDB reads every file, except that a plain CSV/TSV file in a simple dialect is parsed by Arrow's
faster CSV reader (see workbench.data.delimited). The modules, in the order an import uses them:
sources (what a source is, and opening it), readers and delimited (each kind of source), normalise
(ids and times), encode (ids to codes, rows sorted), snapshots (the files, and reading them back),
importing (the two pipelines). Imports allocate Arrow memory through the system allocator (workbench.memory).
"""

from .importing import build_interaction_snapshot, build_metadata_snapshot
from .sandbox import DATA_DIRS_VARIABLE, SqlSandbox
from .snapshots import (
    WEIGHTINGS,
    InteractionSnapshot,
    MetadataSnapshot,
    interaction_matrix,
    read_interactions,
    read_metadata,
    snapshot_info,
)
from .sources import PREVIEW_ROWS, Preview, is_sql_query, preview

__all__ = [
    "DATA_DIRS_VARIABLE", "PREVIEW_ROWS", "SqlSandbox", "InteractionSnapshot", "MetadataSnapshot", "Preview", "preview",
    "build_interaction_snapshot", "build_metadata_snapshot", "interaction_matrix", "is_sql_query",
    "read_interactions", "read_metadata", "snapshot_info", "WEIGHTINGS",
]
