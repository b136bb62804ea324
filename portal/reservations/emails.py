"""The e-mails of reserved capacity, one builder per kind (see portal.notifications.registry)."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.registry import Email, email_kind
from portal.orgs.selectors import organization_manager_emails
from portal.reservations.models import Reservation, ReservationRequest


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


@email_kind("reservation_quote")
def reservation_quote(*, reservation_request_id: int) -> list[Email]:
    """To the organization's owners and admins: staff quoted a price; accept or decline."""
    reservation_request = ReservationRequest.objects.select_related(
        "organization", "region", "gpu_model"
    ).get(pk=reservation_request_id)
    organization = reservation_request.organization
    return [
        Email(
            template="reservation_quote",
            to=organization_manager_emails(organization=organization),
            context={
                "organization": organization,
                "r": reservation_request,
                "currency": settings.CURRENCY,
                "url": _url(
                    "reservations:request_detail", organization.slug, reservation_request.pk
                ),
            },
        )
    ]


def _reservation_soon(what: str, reservation_id: int) -> list[Email]:
    reservation = Reservation.objects.select_related("organization", "region", "gpu_model").get(
        pk=reservation_id
    )
    organization = reservation.organization
    return [
        Email(
            template=f"reservation_{what}",
            to=organization_manager_emails(organization=organization),
            context={
                "organization": organization,
                "reservation": reservation,
                "url": _url("reservations:list", organization.slug),
            },
        )
    ]


@email_kind("reservation_starting")
def reservation_starting(*, reservation_id: int) -> list[Email]:
    return _reservation_soon("starting", reservation_id)


@email_kind("reservation_ending")
def reservation_ending(*, reservation_id: int) -> list[Email]:
    return _reservation_soon("ending", reservation_id)
