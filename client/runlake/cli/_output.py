"""Printing rows as a rich table, JSON (an array of row objects) or CSV."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table


class Output(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item"):
        return value.item()
    return value


def emit(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Output, title: str | None = None
) -> None:
    if fmt is Output.json:
        json.dump([{c: _plain(r.get(c)) for c in columns} for r in rows], sys.stdout, default=str)
        sys.stdout.write("\n")
        return
    if fmt is Output.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in columns])
    Console().print(table)
