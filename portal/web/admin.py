"""Helpers for the operator's admin pages of every app."""

import datetime
import functools
import hashlib
import operator
from functools import cached_property
from html import escape as std_escape
from typing import Any, ClassVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, ChangeList
from django.core.cache import cache
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connection
from django.forms import BaseForm
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import TIME_STRINGS
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from portal.web.sql import ReadBuiltOnce
from portal.web.timesince import KeptWords, since

# The checkbox label's translation, per language: looked up once, not for each row.
_checkbox_labels: dict[str | None, str] = {}


def _checkbox_label() -> str:
    language = get_language()
    found = _checkbox_labels.get(language)
    if found is None:
        found = _checkbox_labels[language] = _("Select this object for an action - {}")
    return found


def fast_escape(value: Any) -> str:
    """`conditional_escape(value)`, the same text, without the lazy-string check that
    `keep_lazy` adds to every call: a list's cells call it some 500 times a page."""
    html = getattr(value, "__html__", None)
    if html is not None:
        return html()
    return SafeString(std_escape(str(value)))


class QuickCheckboxes:
    """Each row's action checkbox as markup, not a form widget rendered through a template:
    the same HTML (format_html's, written directly), without a quarter of a 100-row list's
    rendering time."""

    def checkbox_label(self, obj: Any) -> str:
        """What a row's checkbox says the row is: `str()` of it, as Django's."""
        return str(obj)

    def action_checkbox(self, obj: Any) -> SafeString:
        label = _checkbox_label().format(fast_escape(self.checkbox_label(obj)))
        return mark_safe(  # noqa: S308 - the escaped key and label, constants otherwise
            f'<input type="checkbox" name="{helpers.ACTION_CHECKBOX_NAME}" '
            f'value="{fast_escape(obj.pk)}" class="action-select" aria-label="{label}">'
        )


# timesince's words ("2\xa0days"), kept per language and number: a list writes an age on
# every row.
_TIME_WORDS = KeptWords(TIME_STRINGS)


def list_age(value: datetime.datetime, depth: int = 1) -> str:
    """`timesince(value, depth=depth)` for a list's column: the same text, the translations
    kept per language and number instead of asked of gettext for every row."""
    return since(value, timezone.now(), _TIME_WORDS, depth)


# An unfiltered list of at least this many rows says "about N", from the planner's statistics.
ESTIMATED_FROM = 50_000
# A filtered or searched list counts its rows exactly up to this many (20 pages of 50); past
# it, it says "about N" from the planner's estimate of the filter's rows.
COUNTED_UP_TO = 1_000
# How long a list's filter, once found past COUNTED_UP_TO, keeps its estimate: the next pages
# and views of that filter neither count nor ask the planner again.
ESTIMATE_KEPT_SECONDS = 60


class EstimatedCountPaginator(Paginator):
    """A list's paginator that counts cheaply at fleet scale, on PostgreSQL:
    - a whole large table (no filter, no search) from the planner's estimate
      (`pg_class.reltuples`, kept by autovacuum) instead of a COUNT(*) of every row (4 ms of
      PostgreSQL at 100,000 instances, on every page);
    - a filtered or searched list exactly up to COUNTED_UP_TO rows, and past them from the
      planner's estimate of the filter (EXPLAIN), instead of a COUNT(*) of every match
      (2.4 ms for the 10,000 running instances of a region, 3.4 ms for 60,000 terminated).
    A small table and other databases are counted exactly. `estimated` says which, for the
    page to write "about" (`more_than` when the estimate is below what was counted); the page
    links of an estimated count go past it, to an empty page at worst, never to an error.
    An estimate is kept ESTIMATE_KEPT_SECONDS for the filter (`kept_as`)."""

    estimated = False
    more_than: int | None = None
    kept_as: str | None = None  # the cache key of this list's estimate (FleetListAdmin's)

    @cached_property
    def count(self) -> int:
        queryset: Any = self.object_list
        query = getattr(queryset, "query", None)
        if (
            query is None
            or connection.vendor != "postgresql"
            or query.distinct
            or query.combinator
            or query.low_mark
            or query.high_mark is not None
        ):
            return super().count
        if query.where:
            return self._filtered_count(queryset)
        # One query either way (the same count at 10 rows as at 100,000): the estimate, or
        # below ESTIMATED_FROM the table's COUNT(*), which CASE evaluates only then.
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples >= %s, CASE WHEN reltuples >= %s THEN reltuples::bigint "  # noqa: S608 - a quoted table name
                f"ELSE (SELECT COUNT(*) FROM {table}) END "
                "FROM pg_class WHERE oid = to_regclass(%s)",
                [ESTIMATED_FROM, ESTIMATED_FROM, table],
            )
            row = cursor.fetchone()
        if row is None:
            return super().count
        self.estimated, count = bool(row[0]), int(row[1])
        return count

    def _filtered_count(self, queryset: Any) -> int:
        if self.kept_as is not None:
            kept = cache.get(self.kept_as)
            if kept is not None:
                count, self.more_than = kept
                self.estimated = True
                return count
        count = self._count_or_estimate(queryset)
        if self.estimated and self.kept_as is not None:
            cache.set(self.kept_as, (count, self.more_than), ESTIMATE_KEPT_SECONDS)
        return count

    def _count_or_estimate(self, queryset: Any) -> int:
        counted = int(queryset.order_by()[: COUNTED_UP_TO + 1].count())
        if counted <= COUNTED_UP_TO:
            return counted
        sql, params = queryset.order_by().values_list("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            (plan,) = cursor.fetchone()  # json: psycopg gives it parsed
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        self.estimated = True
        if estimate < counted:  # a search's selectivity is a guess: say what is known
            self.more_than = COUNTED_UP_TO
            return counted
        return estimate

    def validate_number(self, number: Any) -> int:
        try:
            return super().validate_number(number)  # counts first
        except EmptyPage:
            # Past an estimated count there may still be rows: an empty page at worst.
            if not self.estimated or int(number) < 1:
                raise
            return int(number)

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        if not self.estimated:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        return Page(self.object_list[bottom : bottom + self.per_page], number, self)


class ShownColumnsChangeList(ChangeList):
    """A change list whose page of rows reads only `list_columns` of its ModelAdmin (the
    columns the rows show, as `only()` names them), not every column of the model and of each
    related row, and `list_annotations` (values of related rows, as `annotate()` takes them);
    the actions' querysets (`get_queryset`) still load whole rows."""

    def get_results(self, request: HttpRequest) -> None:
        columns = getattr(self.model_admin, "list_columns", ())
        annotations = getattr(self.model_admin, "list_annotations", {})
        everything = self.queryset
        if columns:
            self.queryset = everything.only(*columns)
        if annotations:
            self.queryset = self.queryset.annotate(**annotations)
        try:
            if self.query and self.page_num == 1 and not self.show_all and not self.list_editable:
                self._first_page_of_a_search(request)
            else:
                super().get_results(request)
        finally:
            self.queryset = everything

    def _first_page_of_a_search(self, request: HttpRequest) -> None:
        """Django's get_results for a search's first page, read with one row more than the
        page shows: without that row every match is on the page, and the rows are their count.
        A search usually finds a handful, and counting them is the search again (a second
        trigram scan of the fleet)."""
        per_page = self.list_per_page
        rows = list(self.queryset[: per_page + 1])
        paginator = self.model_admin.get_paginator(request, self.queryset, per_page)
        if len(rows) <= per_page:
            vars(paginator)["count"] = len(rows)  # the cached_property, known without a query
        result_count = paginator.count
        full_result_count = None
        if self.model_admin.show_full_result_count:
            full_result_count = self.root_queryset.count()
        self.result_count = result_count
        self.show_full_result_count = self.model_admin.show_full_result_count
        self.show_admin_actions = not self.show_full_result_count or bool(full_result_count)
        self.full_result_count = full_result_count
        self.result_list = rows[:per_page]
        self.can_show_all = result_count <= self.list_max_show_all
        self.multi_page = result_count > per_page
        self.paginator = paginator


class _KeptRender:
    """A widget whose HTML is kept per name, value, attributes, choices and language: the
    action form's two fields, rendered through the form templates, cost ~1 ms of every list
    page for the same few lines of HTML."""

    kept: ClassVar[dict[tuple, SafeString]] = {}

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> Any:
        choices = getattr(self, "choices", ())
        key = (
            type(self),
            get_language(),
            name,
            repr(value),
            repr(sorted((attrs or {}).items())),
            repr(sorted(self.attrs.items())),  # type: ignore[attr-defined]  # the widget's
            repr([(str(choice), str(label)) for choice, label in choices]),
        )
        found = self.kept.get(key)
        if found is None:
            if len(self.kept) >= KEPT_WIDGETS_MAX:
                self.kept.clear()
            found = self.kept[key] = super().render(name, value, attrs, renderer)  # type: ignore[misc]
        return found


KEPT_WIDGETS_MAX = 256


class _KeptSelect(_KeptRender, forms.Select):
    pass


class _KeptHiddenInput(_KeptRender, forms.HiddenInput):
    pass


class KeptActionForm(helpers.ActionForm):
    """Django's action form, its widgets' HTML kept (`_KeptRender`)."""

    action = forms.ChoiceField(label=_lazy("Action:"), widget=_KeptSelect)
    select_across = forms.BooleanField(
        label="",
        required=False,
        initial=0,
        widget=_KeptHiddenInput({"class": "select-across"}),
    )


@functools.lru_cache(maxsize=64)
def _choices_read(model: type[Any], ordering: tuple[str, ...]) -> ReadBuiltOnce:
    def build() -> Any:
        rows = model._default_manager.all()
        return rows.order_by(*ordering) if ordering else rows

    return ReadBuiltOnce(build)


class CatalogFilter(admin.RelatedFieldListFilter):
    """A list's filter by a relation to a small catalog table (regions, instance types, GPU
    models): Django's, its choices read by SQL the ORM builds once per process and ordering
    (building it took about as long as PostgreSQL's answer, on every view of a fleet's list).
    The rows are read at every view, as Django's are."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list:
        if field.get_limit_choices_to():
            return super().field_choices(field, request, model_admin)
        ordering = tuple(self.field_admin_ordering(field, request, model_admin))
        value = operator.attrgetter(field.remote_field.get_related_field().attname)
        return [
            (value(row), str(row)) for row in _choices_read(field.related_model, ordering).objects()
        ]


class FleetListAdmin(QuickCheckboxes, admin.ModelAdmin):
    """A list of a table that grows with the fleet (instances, quota requests): the page's
    rows read the columns shown (`list_columns`) and the related rows' values they show
    (`list_annotations`), a whole large table is counted from the planner's estimate, and no
    COUNT(*) of the whole table for a filtered page ("Show all")."""

    list_columns: tuple[str, ...] = ()
    # What the rows show of related rows, read as values of the row (name: expression) rather
    # than as related models made per row by `list_select_related`: the instance list's page
    # of rows, read as four models a row, was a sixth of its view at 100,000 instances.
    list_annotations: ClassVar[dict[str, Any]] = {}
    paginator = EstimatedCountPaginator
    action_form = KeptActionForm
    show_full_result_count = False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ShownColumnsChangeList

    def get_paginator(self, request: HttpRequest, queryset: Any, per_page: int, *args, **kwargs):
        paginator = super().get_paginator(request, queryset, per_page, *args, **kwargs)
        if isinstance(paginator, EstimatedCountPaginator) and request.GET:
            # The list's filter and search, whatever the page and order: one estimate for all.
            shown = sorted(
                (name, value)
                for name, values in request.GET.lists()
                if name not in (PAGE_VAR, ORDER_VAR)
                for value in values
            )
            digest = hashlib.sha256(urlencode(shown).encode()).hexdigest()[:32]
            paginator.kept_as = f"admin:estimate:{self.opts.label_lower}:{digest}"
        return paginator


def admin_form_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    title: str,
    form: BaseForm,
    intro: str = "",
    extra: dict[str, Any] | None = None,
) -> TemplateResponse:
    """A form of a staff action in the admin's layout (web/admin_form.html)."""
    return TemplateResponse(
        request,
        "web/admin_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": title,
            "form": form,
            "intro": intro,
            **(extra or {}),
        },
    )
