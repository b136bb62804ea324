"""Tables for people (rich), JSON for scripts; messages and progress on stderr.

stdout carries only the result (a table, or JSON with --output json), so that
`backfill -o json instances list | jq` works; everything else goes to stderr.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?(Z|\+00:00)$")


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str) and (match := _TIMESTAMP.match(value)):
        return f"{match.group(1)} {match.group(2)} UTC"  # the API's times are UTC
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def table(rows: Iterable[dict], columns: Sequence[tuple[str, str]], *, empty: str) -> None:
    """`columns`: (heading, key) pairs; a key may be dotted ("price.currency")."""
    rows = list(rows)
    if not rows:
        err.print(empty, markup=False)
        return
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for heading, _key in columns:
        grid.add_column(heading, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell(_dig(row, key))) for _heading, key in columns))
    out.print(grid)


def record(row: dict, fields: Sequence[tuple[str, str]]) -> None:
    """One object as 'label  value' lines."""
    grid = Table(box=None, pad_edge=False, show_header=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, key in fields:
        grid.add_row(label, Text(cell(_dig(row, key))))
    out.print(grid)


def _dig(row: dict, key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def note(message: str) -> None:
    err.print(message, highlight=False, markup=False)
