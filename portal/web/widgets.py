"""Widgets of the console's forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.safestring import SafeString


class KeptSelect(forms.Select):
    """A select whose options are written in the code and never change while the process runs
    (the audit log's hundred actions): its HTML is kept per name, value and attributes.

    Django renders every option through a template of its own, about 7 ms for a hundred
    options on every view of the page. Not for choices read from the database or set per form:
    the kept HTML is shared by every copy of the field's widget (a form's fields are deep
    copies of its declaration's, which share this dict).
    """

    KEPT_AT_MOST = 64  # a value from the query string may be anything: the dict stays small

    def __init__(self, attrs: dict[str, Any] | None = None, choices: Any = ()) -> None:
        super().__init__(attrs, choices)
        self._kept: dict[tuple, SafeString] = {}

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> SafeString:
        try:
            key = (
                name,
                tuple(self.format_value(value)),
                frozenset(self.build_attrs(self.attrs, attrs).items()),
                renderer,
            )
            html = self._kept.get(key)
        except TypeError:  # an attribute that cannot be a key: rendered every time
            return super().render(name, value, attrs, renderer)
        if html is None:
            html = super().render(name, value, attrs, renderer)
            if len(self._kept) >= self.KEPT_AT_MOST:
                self._kept.clear()
            self._kept[key] = html
        return html
