"""Two hot loops of every admin page in Python, with the HTML of Django's own (compared by
tests/web/test_admin_pages.py):

- `admin_app_list`: `admin/app_list.html`, the list of apps and models of the sidebar of every
  admin page and of the index, which `templates/admin/app_list.html` replaces with this tag.
  The portal registers some fifty models: the template's loop over them cost more than the
  rows of a 50-row list.
- `result_list`: the rows of a change list (`templates/admin/change_list.html` loads it in
  place of Django's tag of that name). Django's `items_for_result` looks every column up again
  on every row, reverses the row's URL, finds the date format and the boolean icons' static
  URLs per cell; here each column is looked at once per page and a row costs its values.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from html import escape  # django.utils.html.escape without its check for lazy strings
from typing import Any
from urllib.parse import quote

from django import template
from django.conf import settings
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.templatetags.admin_list import (  # type: ignore[attr-defined]  # private, not in the stubs
    ResultList,
    _boolean_icon,
    _coerce_field_name,
)
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.utils import (  # type: ignore[attr-defined]  # private, not in the stubs
    FieldIsAForeignKeyColumnName,
    _get_non_gfk_field,
    display_for_field,
    display_for_value,
    lookup_field,
)
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.db.models import ForeignKey, ManyToOneRel
from django.template import Context
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat
from django.utils.formats import get_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import (  # type: ignore[attr-defined]  # template_localtime: not in the stubs
    get_current_timezone,
    is_naive,
    template_localtime,
)
from django.utils.translation import gettext

from portal.web.admin import fast_escape

register = template.Library()


def _text(value: object) -> str:
    return escape(str(value))


@register.simple_tag(takes_context=True)
def admin_app_list(context: Context) -> SafeString:
    """`admin/app_list.html` for `app_list` and `show_changelinks` of the context."""
    app_list = context.get("app_list")
    if not app_list:
        return mark_safe(  # noqa: S308 - a translation of Django's own
            f"<p>{_text(gettext('You don’t have permission to view or edit anything.'))}</p>"
        )
    show_changelinks = context.get("show_changelinks")
    request = context.get("request")
    path = quote(str(request.path), safe="/") if request is not None else ""
    kept = getattr(app_list, "html", None)  # a list kept by the site (admin_site.KeptAppList)
    if kept is not None:
        key = (path, bool(show_changelinks))
        if key not in kept:
            if len(kept) >= KEPT_PAGES_MAX:
                kept.clear()
            kept[key] = _app_list_html(app_list, show_changelinks, path)
        return mark_safe(kept[key])  # noqa: S308 - written by _app_list_html
    return mark_safe(_app_list_html(app_list, show_changelinks, path))  # noqa: S308


KEPT_PAGES_MAX = 512  # the sidebar's HTML kept per page path, per kept app list


def _app_list_html(app_list: list, show_changelinks: Any, path: str) -> str:
    model_name_th = _text(gettext("Model name"))
    add_link_th = _text(gettext("Add link"))
    change_link_th = _text(gettext("Change or view list link"))
    add, view, change = _text(gettext("Add")), _text(gettext("View")), _text(gettext("Change"))
    out: list[str] = []
    for app in app_list:
        label = _text(app["app_label"])
        app_url = str(app["app_url"])
        current_app = " current-app" if app_url in path else ""
        title = gettext("Models in the %(name)s application") % {"name": _text(app["name"])}
        out.append(
            f'<div class="app-{label} module{current_app}"><table><caption>'
            f'<a href="{_text(app_url)}" class="section" title="{title}">{_text(app["name"])}</a>'
            f'</caption><thead class="visually-hidden"><tr><th scope="col">{model_name_th}</th>'
            f'<th scope="col">{add_link_th}</th><th scope="col">{change_link_th}</th></tr>'
            "</thead>"
        )
        for model in app["models"]:
            model_name = _text(str(model["object_name"]).lower())
            admin_url = model.get("admin_url")
            here = bool(admin_url) and str(admin_url) in path
            row_id = f"{label}-{model_name}"
            out.append(
                f'<tr class="model-{model_name}{" current-model" if here else ""}">'
                f'<th scope="row" id="{row_id}">'
            )
            if admin_url:
                current = ' aria-current="page"' if here else ""
                out.append(f'<a href="{_text(admin_url)}"{current}>{_text(model["name"])}</a>')
            else:
                out.append(_text(model["name"]))
            out.append("</th>")
            add_url = model.get("add_url")
            if add_url:
                out.append(
                    f'<td><a href="{_text(add_url)}" class="addlink" '
                    f'aria-describedby="{row_id}">{add}</a></td>'
                )
            else:
                out.append("<td></td>")
            if admin_url and show_changelinks:
                css, text = ("viewlink", view) if model.get("view_only") else ("changelink", change)
                out.append(
                    f'<td><a href="{_text(admin_url)}" class="{css}" '
                    f'aria-describedby="{row_id}">{text}</a></td>'
                )
            elif show_changelinks:
                out.append("<td></td>")
            out.append("</tr>")
        out.append("</table></div>")
    return "".join(out)  # constants and escaped values only


# --- The rows of a change list ----------------------------------------------------------------

_PK_MARK = "__pk__"


@dataclass
class _Column:
    """One column of `list_display`, looked at once per page (what `items_for_result` finds
    again on every row)."""

    name: Any
    row_class: str
    link: bool
    field: models.Field | None = None  # a model field: shown by display_for_field
    method: Callable[[Any], Any] | None = None  # a ModelAdmin method: called with the row
    boolean: bool = False
    empty: str = ""
    nowrap: bool = False  # a date, time or foreign key field
    choices: dict | None = None  # a field's flat choices
    datetime_format: str | None = None  # a DateTimeField's localized format
    datetime_text: Callable[[datetime.datetime], str] | None = None  # that format, kept parts
    local: Callable[[datetime.datetime], datetime.datetime] = template_localtime
    # Set for a text field without choices and for a field with choices: a cell's HTML
    # written from its value without `display_for_field`'s tests (`_plain_cell`).
    plain_text: bool = False
    choices_html: dict | None = None  # the choices' labels, escaped once per page
    empty_html: str = ""


def _columns(cl: ChangeList) -> list[_Column]:
    model_admin = cl.model_admin
    opts = cl.lookup_opts
    empty = model_admin.get_empty_value_display()
    columns = []
    for index, name in enumerate(cl.list_display):
        if cl.list_display_links is None:
            link = False
        else:
            link = (index == 0 and not cl.list_display_links) or name in cl.list_display_links
        column = _Column(
            name=name,
            row_class=f"field-{_coerce_field_name(name, index)}",
            link=link,
            empty=empty,
        )
        try:
            field = _get_non_gfk_field(opts, name)
        except (FieldDoesNotExist, FieldIsAForeignKeyColumnName):
            if not callable(name) and hasattr(model_admin, name) and name != "__str__":
                column.method = getattr(model_admin, name)
                column.empty = getattr(column.method, "empty_value_display", empty)
                column.boolean = getattr(column.method, "boolean", False)
                if name == "action_checkbox":
                    column.row_class = "action-checkbox"
        else:
            column.field = field
            column.nowrap = isinstance(field, models.DateField | models.TimeField | ForeignKey)
            column.empty_html = fast_escape(empty)
            if getattr(field, "flatchoices", None):
                try:
                    column.choices = dict(field.flatchoices)
                except TypeError:  # list-like choices: Django's own display
                    column.choices = None
                else:
                    column.choices_html = {
                        key: fast_escape(label) for key, label in column.choices.items()
                    }
            elif isinstance(field, _PLAIN_TEXT_FIELDS) and not isinstance(field, models.URLField):
                column.plain_text = True
            elif isinstance(field, models.DateTimeField):
                column.datetime_format = get_format("DATETIME_FORMAT")
                column.datetime_text = datetime_formatter(column.datetime_format)
                column.local = _localtime()
        columns.append(column)
    return columns


# Fields whose value display_for_field writes as `str(value)`, or the empty value's text when
# it is None or blank (a URL is a link: not among them).
_PLAIN_TEXT_FIELDS = (models.CharField, models.TextField, models.GenericIPAddressField)


def _plain_cell(column: _Column, value: Any) -> str | None:
    """A text or choices field's cell as `_field_text` and `fast_escape` write it, or None
    for a value they would treat otherwise (not a string from the database)."""
    if type(value) is str:
        value = value if value.strip() else ""
    elif value is not None:
        return None
    if column.choices_html is not None:
        return column.choices_html.get(value, column.empty_html)
    return escape(value) if value else column.empty_html


def _localtime() -> Callable[[datetime.datetime], datetime.datetime]:
    """`template_localtime` for the values of one page: the current time zone looked up once
    (a context variable's lookup per cell, as timezone.localtime does, cost more than the
    conversion)."""
    if not settings.USE_TZ:
        return template_localtime
    zone = get_current_timezone()

    def local(value: datetime.datetime) -> datetime.datetime:
        if is_naive(value) or not getattr(value, "convert_to_local_time", True):
            return value
        return value.astimezone(zone)

    return local


def _field_text(column: _Column, value: Any, icons: dict) -> Any:
    """`display_for_field` of a model field's value, with what it looks up per cell (the
    choices, the boolean icons' URLs, the date format) found once per page."""
    field = column.field
    assert field is not None
    if isinstance(field.remote_field, ManyToOneRel):
        return column.empty if value is None else value
    if column.choices is not None:
        return column.choices.get(value, column.empty)
    if isinstance(field, models.BooleanField):
        if value not in icons:
            icons[value] = _boolean_icon(value)
        return icons[value]
    if column.datetime_format is not None and value not in field.empty_values:
        if column.datetime_text is not None:
            return column.datetime_text(column.local(value))
        return dateformat.format(column.local(value), column.datetime_format)
    return display_for_field(value, field, column.empty, avoid_link=column.link)


# What each of `dateformat`'s specifiers reads of a (local) datetime: the date, or part of the
# time. Others (time zone, ISO and RFC forms, epoch seconds) are formatted by `dateformat`.
_DATE_SPECIFIERS = frozenset("bdDEFjlLmMnNoStwWyYz")
_TIME_SPECIFIERS: dict[str, Callable[[datetime.datetime], Any]] = {
    **dict.fromkeys("aAgGhH", lambda t: t.hour),
    **dict.fromkeys("fP", lambda t: (t.hour, t.minute)),
    "i": lambda t: t.minute,
    "s": lambda t: t.second,
    "u": lambda t: t.microsecond,
}


def datetime_formatter(format_string: str) -> Callable[[datetime.datetime], str] | None:
    """`dateformat.format(value, format_string)` for the values of one page: each specifier's
    text kept for the date or the part of the time it reads (a page's rows mostly share their
    day), so that a row formats what its neighbours did not. None if the format has a
    specifier of another kind."""
    parts = dateformat.re_formatchars.split(format_string)
    specifiers = parts[1::2]
    if any(s not in _DATE_SPECIFIERS and s not in _TIME_SPECIFIERS for s in specifiers):
        return None
    pieces = [
        (part, None if i % 2 else dateformat.re_escaped.sub(r"\1", part))
        for i, part in enumerate(parts)
    ]
    kept: dict[tuple, str] = {}

    def text(value: datetime.datetime) -> str:
        out = []
        formatter = None
        for part, literal in pieces:
            if literal is not None:
                out.append(literal)
                continue
            if part == "P" and (value.minute or value.hour % 12):
                # "1:30 p.m.": the hour and minute written, the translated half of the day
                # kept (Django's TimeFormat.P, whose key would be each row's minute).
                hour = value.hour % 12 or 12
                half = kept.get(("a", value.hour > 11))
                if half is None:
                    formatter = formatter or dateformat.DateFormat(value)
                    half = kept[("a", value.hour > 11)] = str(formatter.a())
                clock = f"{hour}:{value.minute:02d}" if value.minute else str(hour)
                out.append(f"{clock} {half}")
                continue
            reads = _TIME_SPECIFIERS.get(part)
            key = (part, value.date() if reads is None else reads(value), value.tzinfo)
            found = kept.get(key)
            if found is None:
                if formatter is None:
                    formatter = dateformat.DateFormat(value)
                found = kept[key] = str(getattr(formatter, part)())
            out.append(found)
        return "".join(out)

    return text


def _cells(cl: ChangeList, columns: list[_Column], obj: Any, url: str | None, icons: dict) -> str:
    """One row's cells, as `items_for_result` writes them."""
    out = []
    first = True
    for column in columns:
        row_class = column.row_class
        field = column.field
        if field is not None and not field.auto_created:
            value = getattr(obj, field.name)
            if column.nowrap:
                row_class += " nowrap"
            if column.plain_text or column.choices_html is not None:
                html = _plain_cell(column, value)
                if html is not None:
                    out.append(_cell(column, row_class, html, url, first))
                    first = first and not column.link
                    continue
            if isinstance(value, str) and value.strip() == "":
                value = ""
            text = _field_text(column, value, icons)
        else:
            empty, boolean = column.empty, column.boolean
            if column.method is not None:
                value = column.method(obj)
            else:  # a field made by Django, a callable, a model's attribute: Django's lookup
                try:
                    _f, attr, value = lookup_field(column.name, obj, cl.model_admin)
                except ObjectDoesNotExist:
                    out.append(f'<td class="{row_class}">{fast_escape(empty)}</td>')
                    continue
                empty = getattr(attr, "empty_value_display", empty)
                boolean = getattr(attr, "boolean", False)
                if isinstance(attr, property) and hasattr(attr, "fget"):
                    boolean = getattr(attr.fget, "boolean", False)
            if isinstance(value, str) and value.strip() == "":
                value = ""
            if type(value) is str and not boolean:  # what display_for_value gives a str
                text = value or empty
            else:
                text = display_for_value(value, empty, boolean)
            if isinstance(value, datetime.date | datetime.time):
                row_class += " nowrap"
        out.append(_cell(column, row_class, fast_escape(text), url, first))
        first = first and not column.link
    return "".join(out)


def _cell(column: _Column, row_class: str, html: str, url: str | None, first: bool) -> str:
    """A cell of escaped `html`: the row's first link column is its <th>, a link."""
    if column.link:
        tag = "th" if first else "td"
        if url is not None:
            html = f'<a href="{escape(url)}">{html}</a>'
        return f'<{tag} class="{row_class}">{html}</{tag}>'
    return f'<td class="{row_class}">{html}</td>'


def _row_url(cl: ChangeList) -> Callable[[Any], str | None]:
    """The change URL of a row with the list's filters preserved: reversed once for the page
    with a mark where the primary key goes (an integer key needs no quoting)."""
    opts = cl.opts
    context: dict[str, Any] = {"preserved_filters": cl.preserved_filters, "opts": opts}
    try:
        pattern = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=(_PK_MARK,),
            current_app=cl.model_admin.admin_site.name,
        )
    except NoReverseMatch:
        return lambda obj: None
    pattern = add_preserved_filters(context, pattern)

    def url(obj: Any) -> str | None:
        pk = getattr(obj, cl.pk_attname)
        if isinstance(pk, int):
            return pattern.replace(_PK_MARK, str(pk), 1)
        try:
            return add_preserved_filters(context, cl.url_for_result(obj))
        except NoReverseMatch:
            return None

    return url


def fast_results(cl: ChangeList) -> list[ResultList]:
    """`admin_list.results(cl)` of a list without editable fields, popup or `to_field`: each
    row one ResultList of one item, its cells."""
    columns = _columns(cl)
    url = _row_url(cl)
    icons: dict = {}
    return [
        ResultList(None, [mark_safe(_cells(cl, columns, obj, url(obj), icons))])  # noqa: S308 - escaped values and Django's safe ones
        for obj in cl.result_list
    ]


def _result_list(cl: ChangeList) -> dict[str, Any]:
    if cl.formset or cl.is_popup or cl.to_field:
        return admin_list.result_list(cl)  # Django's own, cell by cell
    headers = list(admin_list.result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(admin_list.result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": fast_results(cl),
    }


@register.tag(name="result_list")
def result_list_tag(parser, token):
    """Django's `{% result_list cl %}` with the rows of `fast_results`."""
    return InclusionAdminNode(
        parser,
        token,
        func=_result_list,
        template_name="change_list_results.html",
        takes_context=False,
    )
