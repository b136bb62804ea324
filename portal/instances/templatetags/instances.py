"""Template tags of the instance pages and the dashboard's recent instances.

The list renders these once per row, so each is plain Python with the same output as the
template fragment or Django filter it stands for (tests/instances/test_templatetags.py compares
them): no include, reverse(), lazy translation or format lookup per row.
"""

from datetime import datetime
from decimal import Decimal
from html import escape  # django.utils.html.escape without its check for lazy strings

from django import template
from django.contrib.humanize.templatetags.humanize import (
    NaturalTimeFormatter,
    intcomma,
    naturaltime,
)
from django.template import Context
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.formats import get_format
from django.utils.safestring import mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]  # not in the stubs
from django.utils.translation import get_language

from portal.instances.models import State
from portal.instances.selectors import InstanceRow
from portal.web.html import NONE, url_with_id
from portal.web.timesince import KeptWords, since

register = template.Library()

TONES: dict[str, str] = {
    State.RUNNING: "ok",
    State.FAILED: "danger",
    State.INTERRUPTED: "warn",
    State.STOPPED: "",
    State.TERMINATED: "",
}
LABELS = dict(State.choices)
PULSE = '<span class="dot pulse"></span>'


@register.filter
def state_tone(state: str) -> str:
    """The badge class of a state: ok, danger, warn, info (in transition) or plain."""
    return TONES.get(state, "info")


@register.simple_tag
def state_badge(instance) -> str:
    """`{% state_badge instance %}`: the state as a badge, pulsing while in transition."""
    tone = TONES.get(instance.state, "info")
    dot = PULSE if instance.is_transitional else ""
    label = escape(LABELS.get(instance.state, instance.state))  # get_state_display()
    html = f'<span class="badge {tone}" data-testid="state">{dot}{label}</span>'
    return mark_safe(html)  # noqa: S308 - constants and the escaped label


@register.simple_tag(takes_context=True)
def instance_url(context, org_slug: str, pk: int) -> str:
    """`{% url 'instances:detail' org_slug pk %}` with one reverse() per page, not per row
    (`url_with_id`)."""
    return url_with_id(context, "instances:detail", org_slug, pk=pk)


PREEMPTIBLE = (
    ' <span class="badge accent" title="May be reclaimed by the operator, with notice">'
    "preemptible</span>"
)


@register.simple_tag(takes_context=True)
def instance_row(context: Context, row: InstanceRow, org_slug: str) -> str:
    """One `<tr>` of the instance list, the page's hot loop: its cells in one f-string rather
    than a dozen template nodes (same HTML; tests/instances/test_templatetags.py).

    Every value from the database or a translation goes through escape().
    """
    instance = row.instance
    extra = PREEMPTIBLE if instance.preemptible else ""
    if instance.reclaim_pending:
        at = date_filter(template_localtime(instance.reclaim_at, context.use_tz), "H:i:s")
        extra += f' <span class="badge warn">interruption at {escape(at)}</span>'
    ip = f'<span class="mono">{escape(instance.ip)}</span>' if instance.ip else NONE
    lang = context.render_context.get("instance_row_language")
    if lang is None:  # once per page
        lang = context.render_context["instance_row_language"] = get_language()
    cost = NONE if row.hourly_price is None else f"${escape(_thousands(row.cost, lang))}"
    created = timestamp(template_localtime(instance.created_at, context.use_tz))
    name = escape(instance.name)
    # Values of the row (instance_list_rows), not a type and a region made for each row.
    type_name: str = instance.type_name  # type: ignore[attr-defined]
    region_code: str = instance.region_code  # type: ignore[attr-defined]
    return mark_safe(  # noqa: S308 - constants and escaped values only
        f'<tr data-instance="{name}">'
        f'<td><a href="{escape(instance_url(context, org_slug, instance.pk))}">'
        f"<strong>{name}</strong></a>{extra}</td>"
        f"<td>{state_badge(instance)}</td>"
        f"<td>{escape(type_name)}</td>"
        f'<td><span class="mono">{escape(region_code)}</span></td>'
        f"<td>{ip}</td>"
        f'<td class="hide-sm muted" title="{escape(created)} UTC">'
        f"{escape(_age(instance.created_at, lang))}</td>"
        f'<td class="num">{cost}</td>'
        "</tr>"
    )


@register.filter
def duration(seconds: int) -> str:
    """3725 -> "1 h 2 min"; 59 -> "59 s"."""
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter(expects_localtime=True)
def timestamp(value) -> str:
    """`{{ value|date:"Y-m-d H:i:s" }}` (in the current time zone) without the format machinery."""
    if not isinstance(value, datetime):
        return date_filter(value, "Y-m-d H:i:s")
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


# Translated phrases, by (language, phrase, count): translations do not change while the
# process runs, and each key has few counts (under 60 seconds, minutes; under 24 hours...).
_phrases: dict[tuple, str] = {}


def _phrase(lang: str, name: str, count: int | None = None) -> str:
    key = (lang, name, count)
    text = _phrases.get(key)
    if text is None:
        phrase = NaturalTimeFormatter.time_strings[name]
        text = _phrases[key] = str(phrase if count is None else phrase % {"count": count})
    return text


# naturaltime's "%(num)d days", kept per language and number.
_PAST_WORDS = KeptWords(NaturalTimeFormatter.past_substrings)


@register.filter
def age(value):
    """`{{ value|naturaltime }}` for the past ("5 minutes ago", "1 week, 2 days ago").

    Django's own words and arithmetic (timesince's, in `portal.web.timesince`), with the
    translated phrases looked up once per language and count rather than through lazy
    translation on every call. Anything but an aware datetime in the past goes to
    naturaltime itself.
    """
    return _age(value, get_language())


def _age(value, lang: str) -> str:
    """`age` in the active language `lang` (the list looks it up once per page)."""
    if not isinstance(value, datetime) or timezone.is_naive(value):
        return naturaltime(value)
    now = timezone.now()
    if timezone.is_naive(now) or value >= now:
        return naturaltime(value)
    delta = now - value
    if delta.days != 0:
        # timesince(value, now, time_strings=naturaltime's past substrings), in `lang`
        return _phrase(lang, "past-day") % {"delta": since(value, now, _PAST_WORDS, lang=lang)}
    if delta.seconds == 0:
        return _phrase(lang, "now")
    if delta.seconds < 60:
        return _phrase(lang, "past-second", delta.seconds)
    if delta.seconds // 60 < 60:
        return _phrase(lang, "past-minute", delta.seconds // 60)
    return _phrase(lang, "past-hour", delta.seconds // 60 // 60)


# Languages whose numbers read 1,234.56 (looked up once per language).
_plain_grouping: dict[str, bool] = {}


@register.filter(is_safe=True)
def thousands(value):
    """`{{ amount|intcomma }}` for a Decimal amount: "1,234.56"; other values go to intcomma."""
    return _thousands(value, get_language())


def _thousands(value, lang: str) -> str:
    """`thousands` in the active language `lang` (the list looks it up once per page)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return intcomma(value)
    plain = _plain_grouping.get(lang)
    if plain is None:
        plain = _plain_grouping[lang] = (
            get_format("DECIMAL_SEPARATOR", lang, use_l10n=True),
            get_format("THOUSAND_SEPARATOR", lang, use_l10n=True),
            get_format("NUMBER_GROUPING", lang, use_l10n=True),
        ) == (".", ",", 3)
    _, digits, exponent = value.as_tuple()
    # (The exponent of a finite Decimal is an int.) numberformat writes 1e200 and beyond so.
    if not plain or not isinstance(exponent, int) or abs(exponent) + len(digits) > 200:
        return intcomma(value)
    return f"{value:,f}"
