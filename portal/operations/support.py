"""The support desk: find a customer by what the caller says (an e-mail, the organization, an
instance's name or IP address), then everything about that organization on one page."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from portal.accounts.models import User
from portal.audit.models import AuditEntry
from portal.billing import clock
from portal.billing.models import Invoice
from portal.billing.periods import Month
from portal.billing.selectors import invoice_balance_due, month_spend
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.operations.models import StaffNote
from portal.orgs.models import Organization, Suspension
from portal.quotas.models import Quota, QuotaRequest
from portal.reservations.models import Reservation, ReservationRequest

NOTE_MAX_LENGTH = 4000
SPEND_MONTHS = 6


def customer_search(*, query: str) -> QuerySet[Organization]:
    """Organizations matching a name or slug, a member's e-mail, an instance name or IP."""
    query = (query or "").strip()
    if not query:
        return Organization.objects.none()
    match = (
        Q(name__icontains=query)
        | Q(slug__icontains=query)
        | Q(memberships__user__email__icontains=query)
        | Q(instances__name__icontains=query)
    )
    try:
        ipaddress.ip_address(query)
    except ValueError:
        pass  # not an address: the IP column is not asked
    else:
        match |= Q(instances__ip=query)
    return Organization.objects.filter(match).distinct().order_by("name")[:50]


@dataclass
class MonthSpend:
    month: Month
    spend: Decimal


@dataclass
class CustomerPage:
    organization: Organization
    members: list
    instances: list
    spend: list[MonthSpend]
    invoices: list[tuple[Invoice, Decimal]]
    quotas: list
    quota_requests: list
    reservations: list
    reservation_requests: list
    suspensions: list
    audit: list
    notes: list


def customer_page(*, organization: Organization) -> CustomerPage:
    now = clock.now()
    month = Month.of(now)
    months = []
    for _ in range(SPEND_MONTHS):
        months.append(month)
        month = month.previous()
    return CustomerPage(
        organization=organization,
        members=list(
            organization.memberships.select_related("user").order_by("role", "user__email")
        ),
        instances=list(
            Instance.objects.filter(organization=organization)
            .select_related("instance_type", "region", "created_by")
            .order_by("-created_at")[:50]
        ),
        spend=[
            MonthSpend(m, month_spend(organization=organization, month=m, now=now)) for m in months
        ],
        invoices=[
            (invoice, invoice_balance_due(invoice))
            for invoice in Invoice.objects.filter(organization=organization).order_by("-month")[:24]
        ],
        quotas=list(
            Quota.objects.filter(organization=organization).select_related("region", "gpu_model")
        ),
        quota_requests=list(
            QuotaRequest.objects.filter(organization=organization)
            .select_related("region", "gpu_model", "created_by")
            .order_by("-created_at")[:20]
        ),
        reservations=list(
            Reservation.objects.filter(organization=organization).select_related(
                "region", "gpu_model"
            )[:20]
        ),
        reservation_requests=list(
            ReservationRequest.objects.filter(organization=organization).select_related(
                "region", "gpu_model"
            )[:20]
        ),
        suspensions=list(
            Suspension.objects.filter(organization=organization)
            .select_related("suspended_by", "lifted_by")
            .order_by("-suspended_at")
        ),
        audit=list(AuditEntry.objects.filter(organization_id=organization.pk)[:50]),
        notes=list(StaffNote.objects.filter(organization=organization).select_related("author")),
    )


def staff_note_add(*, organization: Organization, by: User, body: str) -> StaffNote:
    if not by.is_staff:
        raise ApplicationError("Only operator staff can do this.", code="forbidden")
    body = (body or "").strip()
    if not body:
        raise ApplicationError("Write the note.", field="body")
    if len(body) > NOTE_MAX_LENGTH:
        raise ApplicationError(
            f"Keep it under {NOTE_MAX_LENGTH} characters; this has {len(body)}.", field="body"
        )
    # Not in the organization's audit log: its owners read that, and the notes are staff's.
    return StaffNote.objects.create(
        organization=organization, author=by, author_email=by.email, body=body
    )
