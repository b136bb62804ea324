"""Admin pieces for lists that span every organization (instances, quota requests).

An operator has thousands of organizations: a filter that lists them all reads and renders
every one on each page, and a search that ORs an organization's name with the listed model's
own columns joins the two tables and reads every row of both. Here the organization is chosen
by the link in a row, and a search reads the few matching organizations first.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import smart_split, unescape_string_literal

from portal.accounts.models import User
from portal.orgs.models import Organization

# A search term names at most this many organizations; past it, it is no organization's name.
MATCHING_ORGANIZATIONS_MAX = 200


class OrganizationFilter(admin.SimpleListFilter):
    """By organization, without listing every organization: it shows the chosen one, which a
    row's organization link chooses (`?organization__id__exact=<id>`)."""

    title = "organization"
    parameter_name = "organization__id__exact"

    def lookups(self, request, model_admin):
        value = self.value()
        if value and value.isdigit():
            name = Organization.objects.filter(pk=value).values_list("name", flat=True).first()
            if name is not None:
                return [(value, name)]
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"organization {value!r} is not an id")
        return queryset.filter(organization_id=int(value))


def organization_filter_link(organization_id: int, name: str) -> SafeString:
    """A row's organization, as the link that filters the list by it (format_html's markup,
    written directly: it is a cell of every row)."""
    return mark_safe(  # noqa: S308 - a constant, an integer and the escaped name
        f'<a href="?{OrganizationFilter.parameter_name}={int(organization_id)}" '
        f'title="Only this organization">{conditional_escape(name)}</a>'
    )


def search_terms(search_term: str) -> list[str]:
    """The words of an admin search, split and unquoted as Django's own search does."""
    terms = []
    for bit in smart_split(search_term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def organizations_named(term: str) -> list[int]:
    """The organizations whose name or slug holds `term` (none when too many do)."""
    ids = list(
        Organization.objects.filter(Q(name__icontains=term) | Q(slug__icontains=term))
        .order_by()
        .values_list("pk", flat=True)[: MATCHING_ORGANIZATIONS_MAX + 1]
    )
    return [] if len(ids) > MATCHING_ORGANIZATIONS_MAX else ids


def people_named(term: str) -> list[int]:
    """The people whose e-mail holds `term` (none when too many do)."""
    ids = list(
        User.objects.filter(email__icontains=term)
        .order_by()
        .values_list("pk", flat=True)[: MATCHING_ORGANIZATIONS_MAX + 1]
    )
    return [] if len(ids) > MATCHING_ORGANIZATIONS_MAX else ids


def search_with_organizations(
    request: HttpRequest,
    queryset: QuerySet,
    search_term: str,
    own_fields: list[str],
    person_field: str = "",
) -> QuerySet:
    """Rows where every word is in one of `own_fields` (icontains, or equal for `=field`), in
    the name of the row's organization or (with `person_field`) in that person's e-mail:
    conditions on the listed table alone, so that the database can use its indexes instead of
    reading every row of a join."""
    for term in search_terms(search_term):
        condition = Q()
        for field in own_fields:
            if field.startswith("="):
                name = field[1:]
                try:
                    value = queryset.model._meta.get_field(name).to_python(term)
                except ValidationError:
                    continue  # "abc" is no id: that field cannot match it
                condition |= Q(**{name: value})
            else:
                condition |= Q(**{f"{field}__icontains": term})
        organizations = organizations_named(term)
        if organizations:
            condition |= Q(organization_id__in=organizations)
        people = people_named(term) if person_field else []
        if people:
            condition |= Q(**{f"{person_field}_id__in": people})
        if not condition:
            return queryset.none()
        queryset = queryset.filter(condition)
    return queryset
