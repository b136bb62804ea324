"""The audit log's row tag prints exactly what the template code it replaced did."""

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from portal.audit.models import ActorKind, AuditEntry

# The row as the audit page's template wrote it before the tag (without the whitespace
# between cells, which the page does not show).
OLD_ROW = (
    "{% load audit %}"
    '<tr data-action="{{ entry.action }}">'
    '<td class="when" title="{{ entry.at|date:\'c\' }}">{{ entry.at|date:"M j, Y" }}<br>'
    '<span class="muted mono">{{ entry.at|date:"H:i:s" }}</span></td>'
    "<td><strong>{{ entry.action_label }}</strong><br>"
    '<span class="code mono">{{ entry.action }}</span></td>'
    '<td class="actor">{% with who=entry.actor_display %}{% if who %}'
    '<span title="{{ entry.actor_label }}">{{ who|truncatechars:40 }}</span>{% endif %}'
    "{% endwith %}{% with kind=entry.actor_kind|actor_kind_badge %}"
    "{% if kind and entry.actor_kind != 'system' %} <span class=\"badge"
    "{% if entry.actor_kind == 'staff' %} warn{% elif entry.actor_kind == 'api_token' %} accent"
    '{% endif %}">{{ kind }}</span>{% endif %}{% endwith %}</td>'
    '<td{% if not entry.target_type %} class="blank"{% endif %}>{% if entry.target_type %}'
    '<span title="{{ entry.target_label }}">{{ entry.target_label|truncatechars:48 }}</span><br>'
    '<span class="muted small">{{ entry.target_type|target_name }}</span>{% else %}'
    '<span class="faint">—</span>{% endif %}</td>'
    '<td class="hide-sm">{% if entry.ip %}<span class="mono">{{ entry.ip }}</span>{% else %}'
    '<span class="faint">—</span>{% endif %}</td>'
    '<td class="detail{% if not entry.detail %} blank{% endif %}">'
    "{% for key, value in entry.detail|detail_items %}<div>{% if key %}"
    '<span class="muted">{{ key }}</span> {% endif %}{{ value }}</div>{% empty %}'
    '<span class="faint">—</span>{% endfor %}</td>'
    "</tr>"
)
NEW_ROW = "{% load audit %}{% audit_row entry %}"

AT = datetime(2026, 3, 1, 23, 30, 5, 123_456, tzinfo=UTC)

ENTRIES = {
    "a member's change with a from and to": dict(
        action="member.role_changed",
        actor_kind=ActorKind.USER,
        actor_label="ana@example.com",
        target_type="orgs.membership",
        target_label="bo@example.com",
        ip="203.0.113.7",
        detail={"from": "member", "to": "admin"},
    ),
    "staff, with markup in every text": dict(
        action="org.suspended",
        actor_kind=ActorKind.STAFF,
        actor_label='<b>ops</b>@backfill.example"',
        target_type="orgs.organization",
        target_label="Acme <script>alert(1)</script> & Sons " + "x" * 60,
        ip="2001:db8::1",
        detail={"reason": "<i>unpaid</i>", "invoice_number": 12, "note": "y" * 120},
    ),
    "an API token, nothing aimed at": dict(
        action="instance.launched",
        actor_kind=ActorKind.API_TOKEN,
        actor_label="token ci-" + "z" * 50,
        target_type="",
        target_label="",
        ip=None,
        detail={},
    ),
    "the system, by a task's name": dict(
        action="instance.reclaimed",
        actor_kind=ActorKind.SYSTEM,
        actor_label="portal.reclaims.tasks.reclaim_sweep",
        target_type="instances.instance",
        target_label="train-1",
        ip=None,
        detail={"gpus": [1, 2], "spot": None},
    ),
}


def rendered(source: str, entry: AuditEntry) -> str:
    return Template(source).render(Context({"entry": entry}))


@pytest.mark.parametrize("case", ENTRIES)
@pytest.mark.parametrize("zone,language", [("UTC", "en"), ("Asia/Kolkata", "de")])
def test_an_audit_row_reads_as_the_template_wrote_it(case, zone, language):
    entry = AuditEntry(at=AT, **ENTRIES[case])
    with timezone.override(zone), translation.override(language):
        assert rendered(NEW_ROW, entry) == rendered(OLD_ROW, entry)


def test_an_audit_row_shows_the_time_in_the_viewers_zone_and_escapes_what_people_typed():
    entry = AuditEntry(at=AT, **ENTRIES["staff, with markup in every text"])
    with timezone.override("Asia/Kolkata"):
        row = rendered(NEW_ROW, entry)
    assert "Mar 2, 2026" in row and "05:00:05" in row  # 23:30 UTC is the next morning there
    assert "<script>" not in row and "&lt;script&gt;" in row
    assert "<i>" not in row and "&lt;i&gt;unpaid&lt;/i&gt;" in row
