"""The e-mails of the operator's side. Each takes ids: they run after the commit that made them."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.mail import send_templated
from portal.operations.models import Reservation, ReservationRequest, Suspension
from portal.orgs.models import Organization
from portal.orgs.roles import Role


def owners_of(organization: Organization) -> list[str]:
    return sorted(
        set(organization.memberships.filter(role=Role.OWNER).values_list("user__email", flat=True))
    )


def managers_of(organization: Organization) -> list[str]:
    return sorted(
        set(
            organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN]).values_list(
                "user__email", flat=True
            )
        )
    )


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def send_suspended(*, suspension_id: int) -> None:
    suspension = Suspension.objects.select_related("organization").get(pk=suspension_id)
    organization = suspension.organization
    send_templated(
        template="operations_suspended",
        to=owners_of(organization),
        context={
            "organization": organization,
            "suspension": suspension,
            "operator_email": settings.OPERATOR_EMAIL,
            "url": _url("dashboard_org", organization.slug),
        },
    )


def send_unsuspended(*, suspension_id: int) -> None:
    suspension = Suspension.objects.select_related("organization").get(pk=suspension_id)
    organization = suspension.organization
    send_templated(
        template="operations_unsuspended",
        to=owners_of(organization),
        context={
            "organization": organization,
            "suspension": suspension,
            "url": _url("dashboard_org", organization.slug),
        },
    )


def send_quote(*, request_id: int) -> None:
    request = ReservationRequest.objects.select_related("organization", "region", "gpu_model").get(
        pk=request_id
    )
    send_templated(
        template="operations_quote",
        to=managers_of(request.organization),
        context={
            "organization": request.organization,
            "r": request,
            "currency": settings.CURRENCY,
            "url": _url("operations:request_detail", request.organization.slug, request.pk),
        },
    )


def send_reservation_soon(*, reservation_id: int, what: str) -> None:
    """`what`: "starting" or "ending", seven days ahead."""
    reservation = Reservation.objects.select_related("organization", "region", "gpu_model").get(
        pk=reservation_id
    )
    send_templated(
        template=f"operations_reservation_{what}",
        to=managers_of(reservation.organization),
        context={
            "organization": reservation.organization,
            "reservation": reservation,
            "url": _url("operations:reservations", reservation.organization.slug),
        },
    )
