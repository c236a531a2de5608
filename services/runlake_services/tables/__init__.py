"""The Delta tables runlake maintains: their schemas and how a fold output merges in."""

from runlake_services.tables.schema import (
    TABLES,
    FoldResult,
    MergeMode,
    TableSpec,
    empty_table,
)

__all__ = ["TABLES", "FoldResult", "MergeMode", "TableSpec", "empty_table"]
