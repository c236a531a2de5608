"""Printing rows as a rich table, JSON (an array of row objects) or CSV.

JSON output is exactly ``[{"column": value, ...}, ...]`` and always valid JSON
(NaN and infinities become null, dates ISO strings, bytes hex), because scripts
and outside checks parse it.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Output", "View", "emit", "plain"]


class Output(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class View(StrEnum):
    active = "active"
    deleted = "deleted"
    all = "all"


def plain(value: Any) -> Any:
    """A JSON-safe rendering of one cell."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item"):
        return plain(value.item())
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: Output,
    title: str | None = None,
) -> None:
    """Print ``rows`` (only ``columns``, in that order) in the chosen format."""
    if fmt is Output.json:
        data = [{c: plain(r.get(c)) for c in columns} for r in rows]
        sys.stdout.write(json.dumps(data, allow_nan=False) + "\n")
        return
    if fmt is Output.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else plain(r.get(c)) for c in columns])
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r.get(c)) for c in columns])
    Console().print(table)
