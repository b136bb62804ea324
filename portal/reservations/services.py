"""Writes of reserved capacity: reservations (staff), customers' requests, quotes, answers.

Every write is one transaction with its audit entry; e-mails and backend calls are enqueued on
commit, so a rolled-back change never mails anyone or holds a GPU.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.capacity.selectors import fleet
from portal.catalog.models import GpuModel, InstanceType, Region
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Membership, Organization
from portal.orgs.selectors import organization_suspension_reason
from portal.reservations import selectors, tasks
from portal.reservations.models import (
    Reservation,
    ReservationRequest,
    ReservationRequestState,
)

REASON_MAX_LENGTH = 2000
MAX_RESERVATION_GPUS = 100_000
MAX_MONTHS = 36


def _staff(user: User | None) -> User:
    if user is None or not user.is_staff:
        raise ApplicationError("Only operator staff can do this.", code="forbidden")
    return user


def _text(value: str, *, field: str, what: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ApplicationError(f"Write {what}.", field=field, code="required")
    if len(value) > REASON_MAX_LENGTH:
        raise ApplicationError(
            f"Keep it under {REASON_MAX_LENGTH} characters; this has {len(value)}.", field=field
        )
    return value


def _check_not_suspended(organization_id: int) -> None:
    reason = organization_suspension_reason(organization_id)
    if reason is not None:
        raise ApplicationError(reason, code="suspended")


# --- Reservations -----------------------------------------------------------------------------


def parse_price(value, *, field: str = "price_per_gpu_hour") -> Decimal:
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ApplicationError("Give the price as a number, e.g. 1.85.", field=field) from None
    if not price.is_finite() or price < 0:
        raise ApplicationError("The price must be zero or more.", field=field)
    if price >= Decimal("1000000") or price != price.quantize(Decimal("0.0001")):
        raise ApplicationError(
            "The price has at most 4 decimals and stays under 1,000,000.", field=field
        )
    return price


def _check_gpus(gpus, *, field: str = "gpus") -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ApplicationError("Reserve at least one GPU.", field=field)
    if gpus > MAX_RESERVATION_GPUS:
        raise ApplicationError(f"At most {MAX_RESERVATION_GPUS} GPUs.", field=field)
    return gpus


def _check_offered(region: Region, gpu_model: GpuModel) -> None:
    if not InstanceType.objects.filter(active=True, gpu_model=gpu_model, regions=region).exists():
        raise ApplicationError(
            f"{gpu_model.name} GPUs are not offered in {region.code}.", field="gpu_model"
        )


def check_fits(
    *,
    region: Region,
    gpu_model: GpuModel,
    gpus: int,
    start: datetime,
    end: datetime,
    exclude_pk=None,
) -> int:
    """Refuse unless the fleet holds `gpus` more reserved GPUs over all of [start, end).

    Returns what is reservable. Counts the other reservations at their peak in the period.
    """
    reservable = selectors.reservable_gpus(
        region=region, gpu_model=gpu_model, start=start, end=end, exclude_pk=exclude_pk
    )
    if reservable is None:
        raise ApplicationError(
            "The fleet's size is not known yet (no capacity report from the backend); "
            "try again in a minute.",
            code="no_fleet",
        )
    if gpus > reservable:
        total = fleet().total.get((region.code, gpu_model.code), 0)
        raise ApplicationError(
            f"The fleet has {total} {gpu_model.name} GPUs in {region.code} and other "
            f"reservations hold up to {total - reservable} of them in that period, so at most "
            f"{reservable} can be reserved; {gpus} were asked. Nothing was saved.",
            field="gpus",
            code="exceeds_fleet",
        )
    return reservable


def reservation_create(
    *,
    organization: Organization,
    region: Region,
    gpu_model: GpuModel,
    gpus: int,
    start: datetime,
    end: datetime,
    price_per_gpu_hour,
    by: User,
    reservation_request: ReservationRequest | None = None,
) -> Reservation:
    """Staff reserve GPUs for an organization. The backend is asked to hold them on commit."""
    gpus = _check_gpus(gpus)
    price = parse_price(price_per_gpu_hour)
    if start is None or end is None:
        raise ApplicationError("Give the start and the end.", field="start")
    if end <= start:
        raise ApplicationError(
            "The end must be after the start. Nothing was saved.", field="end", code="end_first"
        )
    if not region.active:
        raise ApplicationError(f"{region.name} is closed.", field="region")
    _check_offered(region, gpu_model)
    with transaction.atomic():
        # One reservation of a place at a time: the fleet check and the insert are serialized.
        Region.objects.select_for_update().get(pk=region.pk)
        check_fits(region=region, gpu_model=gpu_model, gpus=gpus, start=start, end=end)
        reservation = Reservation.objects.create(
            organization=organization,
            region=region,
            gpu_model=gpu_model,
            gpus=gpus,
            start=start,
            end=end,
            price_per_gpu_hour=price,
            created_by=by,
        )
        audit_record(
            action="reservation.created",
            organization=organization,
            actor=by,
            actor_kind="staff" if by.is_staff and reservation_request is None else None,
            target=reservation,
            detail={
                "region": region.code,
                "gpu_model": gpu_model.code,
                "gpus": gpus,
                "start": start,
                "end": end,
                "price_per_gpu_hour": price,
            },
        )
        pk = reservation.pk
        transaction.on_commit(lambda: tasks.reservation_hold.delay(pk))
    return reservation


def reservation_cancel(*, reservation: Reservation, by: User) -> Reservation:
    _staff(by)
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().get(pk=reservation.pk)
        if reservation.cancelled_at is not None:
            raise ApplicationError("This reservation is already cancelled.", code="cancelled")
        reservation.cancelled_at = timezone.now()
        reservation.save(update_fields=["cancelled_at"])
        audit_record(
            action="reservation.cancelled",
            organization=reservation.organization,
            actor=by,
            actor_kind="staff",
            target=reservation,
        )
        pk = reservation.pk
        transaction.on_commit(lambda: tasks.reservation_release.delay(pk))
    return reservation


# --- Reservation requests ---------------------------------------------------------------------


def request_period(start_date: date, months: int) -> tuple[datetime, datetime]:
    """From midnight UTC of `start_date` to the same day `months` later."""
    start = datetime.combine(start_date, time(0), tzinfo=UTC)
    month_index = start_date.month - 1 + months
    year, month = start_date.year + month_index // 12, month_index % 12 + 1
    day = min(start_date.day, _days_in(year, month))
    return start, datetime(year, month, day, tzinfo=UTC)


def _days_in(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _check_may_request(membership: Membership) -> None:
    if not membership.can("quotas.request"):
        raise ApplicationError(
            "Only owners and admins of the organization can ask for reserved capacity.",
            code="forbidden",
        )


def reservation_request_submit(
    *,
    membership: Membership,
    region: Region | str,
    gpu_model: GpuModel | str,
    gpus,
    start_date: date,
    months,
    note: str = "",
) -> ReservationRequest:
    _check_may_request(membership)
    _check_not_suspended(membership.organization_id)
    if not isinstance(region, Region):
        found_region = Region.objects.filter(code=str(region or "").strip(), active=True).first()
        if found_region is None:
            raise ApplicationError("Choose a region.", field="region")
        region = found_region
    if not isinstance(gpu_model, GpuModel):
        found_model = GpuModel.objects.filter(code=str(gpu_model or "").strip()).first()
        if found_model is None:
            raise ApplicationError("Choose a GPU model.", field="gpu_model")
        gpu_model = found_model
    gpus = _check_gpus(gpus)
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ApplicationError(f"Reserve for 1 to {MAX_MONTHS} months.", field="months")
    if not isinstance(start_date, date) or start_date <= timezone.now().date():
        raise ApplicationError("Start from tomorrow or later.", field="start_date")
    _check_offered(region, gpu_model)
    note = _text(note, field="note", what="a note", required=False)
    with transaction.atomic():
        reservation_request = ReservationRequest.objects.create(
            organization=membership.organization,
            region=region,
            gpu_model=gpu_model,
            gpus=gpus,
            start_date=start_date,
            months=months,
            note=note,
            created_by=membership.user,
        )
        audit_record(
            action="reservation.requested",
            organization=membership.organization,
            actor=membership,
            target=reservation_request,
            detail={
                "gpus": gpus,
                "gpu_model": gpu_model.code,
                "region": region.code,
                "start_date": start_date,
                "months": months,
            },
        )
        notify("reservation_request_submitted", reservation_request_id=reservation_request.pk)
    return reservation_request


def quote_expiry(*, start: datetime, valid_until: date | None, now: datetime) -> datetime:
    """When a quote stops holding: the end of `valid_until` (UTC), by default
    RESERVATION_QUOTE_VALID_DAYS from now; never after the reservation would start."""
    if valid_until is None:
        expires = now + timedelta(days=settings.RESERVATION_QUOTE_VALID_DAYS)
    else:
        if valid_until < now.date():
            raise ApplicationError("The quote must hold until today or later.", field="valid_until")
        expires = datetime.combine(valid_until + timedelta(days=1), time.min, tzinfo=UTC)
    return min(expires, start)


def reservation_request_quote(
    *,
    reservation_request: ReservationRequest,
    price_per_gpu_hour,
    by: User,
    note: str = "",
    valid_until: date | None = None,
) -> ReservationRequest:
    """Staff quote a committed price, checked against the fleet's free capacity in the period.
    The quote holds until `quote_expires_at`; the customer is reminded before it lapses."""
    _staff(by)
    price = parse_price(price_per_gpu_hour)
    note = _text(note, field="quote_note", what="a note", required=False)
    with transaction.atomic():
        reservation_request = (
            ReservationRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "gpu_model")
            .get(pk=reservation_request.pk)
        )
        if reservation_request.state not in (
            ReservationRequestState.SUBMITTED,
            ReservationRequestState.QUOTED,
        ):
            raise ApplicationError(
                f"Request #{reservation_request.pk} is "
                f"{reservation_request.get_state_display().lower()}.",
                code="invalid_state",
            )
        start, end = request_period(reservation_request.start_date, reservation_request.months)
        check_fits(
            region=reservation_request.region,
            gpu_model=reservation_request.gpu_model,
            gpus=reservation_request.gpus,
            start=start,
            end=end,
        )
        reservation_request.state = ReservationRequestState.QUOTED
        reservation_request.quote_price = price
        reservation_request.quote_note = note
        reservation_request.quoted_at = timezone.now()
        reservation_request.quoted_by = by
        reservation_request.quote_expires_at = quote_expiry(
            start=start, valid_until=valid_until, now=reservation_request.quoted_at
        )
        reservation_request.quote_reminded_at = None
        reservation_request.save(
            update_fields=[
                "state",
                "quote_price",
                "quote_note",
                "quoted_at",
                "quoted_by",
                "quote_expires_at",
                "quote_reminded_at",
            ]
        )
        audit_record(
            action="reservation.quoted",
            organization=reservation_request.organization,
            actor=by,
            actor_kind="staff",
            target=reservation_request,
            detail={
                "price_per_gpu_hour": price,
                "valid_until": reservation_request.quote_expires_at,
            },
        )
        pk = reservation_request.pk
        notify("reservation_quote", reservation_request_id=pk)
    return reservation_request


def reservation_request_answer(
    *, membership: Membership, reservation_request: ReservationRequest, accept: bool
) -> ReservationRequest:
    """The customer accepts the quote (the reservation is made) or declines it."""
    _check_may_request(membership)
    if reservation_request.organization_id != membership.organization_id:
        raise ApplicationError("There is no such request.", code="not_found")
    with transaction.atomic():
        reservation_request = (
            ReservationRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "gpu_model")
            .get(pk=reservation_request.pk)
        )
        if reservation_request.state != ReservationRequestState.QUOTED:
            raise ApplicationError(
                f"This request is {reservation_request.get_state_display().lower()}; "
                "only a quoted request can be accepted or declined.",
                code="invalid_state",
            )
        reservation_request.answered_at = timezone.now()
        reservation_request.answered_by = membership.user
        expires = reservation_request.quote_expires_at
        if accept and expires is not None and expires <= timezone.now():
            raise ApplicationError(
                f"This quote expired on {expires:%B %-d, %Y at %H:%M} UTC; ask for a new quote.",
                code="expired",
            )
        if accept:
            _check_not_suspended(reservation_request.organization_id)
            start, end = request_period(reservation_request.start_date, reservation_request.months)
            if start <= timezone.now():
                raise ApplicationError(
                    "The quote's start date has passed; ask for a new quote.", code="expired"
                )
            reservation_request.reservation = reservation_create(
                organization=reservation_request.organization,
                region=reservation_request.region,
                gpu_model=reservation_request.gpu_model,
                gpus=reservation_request.gpus,
                start=start,
                end=end,
                price_per_gpu_hour=reservation_request.quote_price,
                by=membership.user,
                reservation_request=reservation_request,
            )
            reservation_request.state = ReservationRequestState.ACCEPTED
        else:
            reservation_request.state = ReservationRequestState.DECLINED
        reservation_request.save(
            update_fields=["state", "answered_at", "answered_by", "reservation"]
        )
        audit_record(
            action="reservation.accepted" if accept else "reservation.declined",
            organization=reservation_request.organization,
            actor=membership,
            target=reservation_request,
        )
        if accept:
            notify("reservation_confirmed", reservation_request_id=reservation_request.pk)
            notify("reservation_accepted", reservation_request_id=reservation_request.pk)
    return reservation_request


def reservation_request_refuse(
    *, reservation_request: ReservationRequest, by: User, note: str = ""
) -> ReservationRequest:
    _staff(by)
    with transaction.atomic():
        reservation_request = ReservationRequest.objects.select_for_update().get(
            pk=reservation_request.pk
        )
        if not reservation_request.is_open:
            raise ApplicationError(
                f"Request #{reservation_request.pk} is "
                f"{reservation_request.get_state_display().lower()}.",
                code="invalid_state",
            )
        reservation_request.state = ReservationRequestState.REFUSED
        reservation_request.quote_note = _text(
            note, field="quote_note", what="a note", required=False
        )
        reservation_request.quoted_by = by
        reservation_request.quoted_at = timezone.now()
        reservation_request.save(update_fields=["state", "quote_note", "quoted_by", "quoted_at"])
        audit_record(
            action="reservation.refused",
            organization=reservation_request.organization,
            actor=by,
            actor_kind="staff",
            target=reservation_request,
            detail={"note": reservation_request.quote_note},
        )
    return reservation_request
