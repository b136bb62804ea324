"""Reads of the audit log, scoped to one organization for customers."""

from datetime import date, datetime, time, timedelta

from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from portal.audit.models import AuditEntry


def audit_entry_list_for_organization(
    *,
    organization: models.Model,
    action: str = "",
    actor: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEntry]:
    """The organization's entries, newest first.

    `action` is a group ("instance") or a code ("instance.launched"): the code itself and every
    code under it match. `actor` is part of the actor's e-mail or token name. `since` and `until`
    are days, both included, in the portal's time zone.
    """
    entries = AuditEntry.objects.filter(organization=organization)
    if action:
        entries = entries.filter(Q(action=action) | Q(action__startswith=f"{action}."))
    if actor:
        entries = entries.filter(actor_label__icontains=actor)
    if since:
        entries = entries.filter(at__gte=_start_of(since))
    if until:
        entries = entries.filter(at__lt=_start_of(until + timedelta(days=1)))
    return entries.order_by("-at", "-id")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
