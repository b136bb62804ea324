"""The e-mails of reserved capacity, one builder per kind (see portal.notifications.registry)."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.registry import Email, email_kind
from portal.orgs.selectors import organization_manager_emails
from portal.reservations.models import Reservation, ReservationRequest


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


@email_kind("reservation_quote", category="reservations")
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


@email_kind("reservation_starting", category="reservations")
def reservation_starting(*, reservation_id: int) -> list[Email]:
    return _reservation_soon("starting", reservation_id)


@email_kind("reservation_ending", category="reservations")
def reservation_ending(*, reservation_id: int) -> list[Email]:
    return _reservation_soon("ending", reservation_id)


def _request(pk: int) -> ReservationRequest:
    return ReservationRequest.objects.select_related(
        "organization", "region", "gpu_model", "reservation", "created_by", "answered_by"
    ).get(pk=pk)


def _staff_email(template: str, reservation_request_id: int) -> list[Email]:
    reservation_request = _request(reservation_request_id)
    return [
        Email(
            template=template,
            to=[settings.OPERATOR_EMAIL],
            context={
                "organization": reservation_request.organization,
                "r": reservation_request,
                "currency": settings.CURRENCY,
                "url": _url("admin:reservations_reservationrequest_change", reservation_request.pk),
                "quote_url": _url(
                    "admin:reservations_reservationrequest_quote", reservation_request.pk
                ),
            },
        )
    ]


@email_kind("reservation_request_submitted")
def reservation_request_submitted(*, reservation_request_id: int) -> list[Email]:
    """To operator staff: a customer asks for reserved capacity; quote it or refuse it."""
    return _staff_email("reservation_request_submitted", reservation_request_id)


@email_kind("reservation_accepted")
def reservation_accepted(*, reservation_request_id: int) -> list[Email]:
    """To operator staff: a customer accepted a quote; the reservation now holds the GPUs."""
    return _staff_email("reservation_accepted", reservation_request_id)


def _customer_email(template: str, reservation_request_id: int) -> list[Email]:
    reservation_request = _request(reservation_request_id)
    organization = reservation_request.organization
    return [
        Email(
            template=template,
            to=organization_manager_emails(organization=organization),
            context={
                "organization": organization,
                "r": reservation_request,
                "reservation": reservation_request.reservation,
                "currency": settings.CURRENCY,
                "url": _url(
                    "reservations:request_detail", organization.slug, reservation_request.pk
                ),
                "new_request_url": _url("reservations:list", organization.slug),
            },
        )
    ]


@email_kind("reservation_confirmed", category="reservations")
def reservation_confirmed(*, reservation_request_id: int) -> list[Email]:
    """To the organization's owners and admins: the quote is accepted, the GPUs are held."""
    return _customer_email("reservation_confirmed", reservation_request_id)


@email_kind("reservation_quote_expiring", category="reservations")
def reservation_quote_expiring(*, reservation_request_id: int) -> list[Email]:
    """To the organization's owners and admins: the quote lapses soon; accept or decline."""
    return _customer_email("reservation_quote_expiring", reservation_request_id)


@email_kind("reservation_quote_expired", category="reservations")
def reservation_quote_expired(*, reservation_request_id: int) -> list[Email]:
    """To the organization's owners and admins: the quote lapsed unanswered."""
    return _customer_email("reservation_quote_expired", reservation_request_id)
