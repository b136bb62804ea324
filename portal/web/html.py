"""Helpers for template tags that write a table's rows in Python, a page's hot loop (the
instance list's, the audit log's, the SSH keys'): the same text as the template filters and
tags they stand for, for less work."""

from __future__ import annotations

import html
from datetime import date, datetime
from typing import Any

from django.template import Context
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils.html import conditional_escape
from django.utils.text import Truncator

from portal.web.sql import stand_in

NONE = '<span class="faint">—</span>'  # an empty cell


def escaped(value: object) -> str:
    """What autoescaping prints for `value` (`conditional_escape`), without its checks for lazy
    text when `value` is a plain string."""
    if type(value) is str:
        return html.escape(value)  # what django.utils.html.escape does with a str
    return conditional_escape(value)  # type: ignore[arg-type]  # any value prints


def truncated(text: str, length: int) -> str:
    """`{{ text|truncatechars:length }}`; a short ASCII text as it is, without the Truncator."""
    if type(text) is str and len(text) <= length and text.isascii():
        return text
    return Truncator(text).chars(length)


def day_text(context: Context, at: datetime, format: str = "M j, Y") -> str:
    """`{{ at|date:format }}` for a format of the day only (its month's name translated),
    worked out once per day and format on the page being rendered."""
    kept: Any = context.render_context  # the stubs type its values narrowly
    days: dict[tuple[str, date], str] = kept.setdefault("web_html_days", {})
    key = (format, at.date())
    text = days.get(key)
    if text is None:
        text = days[key] = date_filter(at, format)
    return text


# A stand-in for the last argument, which no real id is (see url_with_id).
_ID = stand_in(int, 0)


def url_with_id(context: Context, name: str, *args: object, pk: int) -> str:
    """`{% url name *args pk %}` with one reverse() per page and route, not one per row: the
    URL is reversed once with a stand-in id, kept in the render context, and the row's id put
    in its place (the last occurrence: the id is the route's last argument)."""
    kept: Any = context.render_context
    parts: dict[tuple, tuple[str, str]] = kept.setdefault("web_html_urls", {})
    key = (name, *args)
    around = parts.get(key)
    if around is None:
        before, _, after = reverse(name, args=[*args, _ID]).rpartition(str(_ID))
        around = parts[key] = (before, after)
    return f"{around[0]}{pk}{around[1]}"
