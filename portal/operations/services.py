"""Writes of the operator's side: suspensions, reservations, reservation requests.

Every write is one transaction with its audit entry; e-mails and backend calls are enqueued on
commit, so a rolled-back change never mails anyone or holds a GPU.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import GpuModel, InstanceType, Region
from portal.core.errors import ApplicationError
from portal.instances.models import Instance, State
from portal.operations import selectors
from portal.operations.models import (
    RequestState,
    Reservation,
    ReservationRequest,
    Suspension,
)
from portal.orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

REASON_MAX_LENGTH = 2000
MAX_RESERVATION_GPUS = 100_000
MAX_MONTHS = 36
# Only a running instance can be asked to stop (lifecycle.TRANSITIONS); one that is starting or
# rebooting is left to finish: staff stop it afterwards if they must.
STOPPABLE = (State.RUNNING,)


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


def _emails():
    from portal.operations import emails

    return emails


def _safely(send, **kwargs) -> None:
    try:
        send(**kwargs)
    except Exception:  # a mail server down must not undo a committed change
        logger.exception("could not send %s %s", send.__name__, kwargs)


# --- Suspensions ------------------------------------------------------------------------------


def organization_suspend(
    *, organization: Organization, reason: str, by: User, stop_instances: bool = False
) -> Suspension:
    """No new launches, API tokens refused, optionally its instances stopped; owners e-mailed.

    Suspending an organization that is suspended already is refused and changes nothing.
    """
    _staff(by)
    reason = _text(reason, field="reason", what="why the organization is suspended")
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        current = selectors.organization_suspension(organization)
        if current is not None:
            raise ApplicationError(
                f"{organization.name} is already suspended (since "
                f"{current.suspended_at:%Y-%m-%d %H:%M} UTC: {current.reason}). "
                "Nothing was changed.",
                code="already_suspended",
            )
        suspension = Suspension.objects.create(
            organization=organization, reason=reason, stop_instances=stop_instances, suspended_by=by
        )
        audit_record(
            action="org.suspended",
            organization=organization,
            actor=by,
            actor_kind="staff",
            target=organization,
            detail={"reason": reason, "stop_instances": stop_instances},
        )
        if stop_instances:
            _stop_all(organization=organization, by=by, reason=reason)
        pk = suspension.pk
        transaction.on_commit(lambda: _safely(_emails().send_suspended, suspension_id=pk))
    return suspension


def _stop_all(*, organization: Organization, by: User, reason: str) -> int:
    """Ask the instances app to stop every running instance (its tasks do the backend part)."""
    from portal.instances import services as instances

    count = 0
    for instance in Instance.objects.filter(organization=organization, state__in=STOPPABLE):
        try:
            instances.instance_stop_by_staff(
                user=by, instance=instance, message=f"Stopped: organization suspended. {reason}"
            )
        except ApplicationError as error:  # moved on meanwhile (ended, already stopping)
            logger.info("not stopping %s on suspension: %s", instance.pk, error.message)
        else:
            count += 1
    return count


def organization_unsuspend(*, organization: Organization, by: User, note: str = "") -> Suspension:
    """Lift the suspension: launches and API tokens work again; owners e-mailed."""
    _staff(by)
    note = _text(note, field="note", what="a note", required=False)
    with transaction.atomic():
        suspension = (
            Suspension.objects.select_for_update()
            .filter(organization=organization, lifted_at__isnull=True)
            .first()
        )
        if suspension is None:
            raise ApplicationError(
                f"{organization.name} is not suspended; nothing was changed.",
                code="not_suspended",
            )
        suspension.lifted_at = timezone.now()
        suspension.lifted_by = by
        suspension.lift_note = note
        suspension.save(update_fields=["lifted_at", "lifted_by", "lift_note"])
        audit_record(
            action="org.unsuspended",
            organization=organization,
            actor=by,
            actor_kind="staff",
            target=organization,
            detail={"note": note, "suspended_at": suspension.suspended_at},
        )
        pk = suspension.pk
        transaction.on_commit(lambda: _safely(_emails().send_unsuspended, suspension_id=pk))
    return suspension


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
        total = selectors.fleet().total.get((region.code, gpu_model.code), 0)
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
    request: ReservationRequest | None = None,
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
            actor_kind="staff" if by.is_staff and request is None else None,
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
        transaction.on_commit(lambda: _tasks().reservation_hold.delay(pk))
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
        transaction.on_commit(lambda: _tasks().reservation_release.delay(pk))
    return reservation


def _tasks():
    from portal.operations import tasks

    return tasks


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
    if selectors.organization_suspension(membership.organization_id) is not None:
        raise ApplicationError(
            selectors.organization_suspension_reason(membership.organization_id) or "",
            code="suspended",
        )
    if not isinstance(region, Region):
        region = Region.objects.filter(code=str(region or "").strip(), active=True).first()
        if region is None:
            raise ApplicationError("Choose a region.", field="region")
    if not isinstance(gpu_model, GpuModel):
        gpu_model = GpuModel.objects.filter(code=str(gpu_model or "").strip()).first()
        if gpu_model is None:
            raise ApplicationError("Choose a GPU model.", field="gpu_model")
    gpus = _check_gpus(gpus)
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ApplicationError(f"Reserve for 1 to {MAX_MONTHS} months.", field="months")
    if not isinstance(start_date, date) or start_date <= timezone.now().date():
        raise ApplicationError("Start from tomorrow or later.", field="start_date")
    _check_offered(region, gpu_model)
    note = _text(note, field="note", what="a note", required=False)
    with transaction.atomic():
        request = ReservationRequest.objects.create(
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
            target=request,
            detail={
                "gpus": gpus,
                "gpu_model": gpu_model.code,
                "region": region.code,
                "start_date": start_date,
                "months": months,
            },
        )
    return request


def reservation_request_quote(
    *, request: ReservationRequest, price_per_gpu_hour, by: User, note: str = ""
) -> ReservationRequest:
    """Staff quote a committed price, checked against the fleet's free capacity in the period."""
    _staff(by)
    price = parse_price(price_per_gpu_hour)
    note = _text(note, field="quote_note", what="a note", required=False)
    with transaction.atomic():
        request = (
            ReservationRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "gpu_model")
            .get(pk=request.pk)
        )
        if request.state not in (RequestState.SUBMITTED, RequestState.QUOTED):
            raise ApplicationError(
                f"Request #{request.pk} is {request.get_state_display().lower()}.",
                code="invalid_state",
            )
        start, end = request_period(request.start_date, request.months)
        check_fits(
            region=request.region,
            gpu_model=request.gpu_model,
            gpus=request.gpus,
            start=start,
            end=end,
        )
        request.state = RequestState.QUOTED
        request.quote_price = price
        request.quote_note = note
        request.quoted_at = timezone.now()
        request.quoted_by = by
        request.save(update_fields=["state", "quote_price", "quote_note", "quoted_at", "quoted_by"])
        audit_record(
            action="reservation.quoted",
            organization=request.organization,
            actor=by,
            actor_kind="staff",
            target=request,
            detail={"price_per_gpu_hour": price},
        )
        pk = request.pk
        transaction.on_commit(lambda: _safely(_emails().send_quote, request_id=pk))
    return request


def reservation_request_answer(
    *, membership: Membership, request: ReservationRequest, accept: bool
) -> ReservationRequest:
    """The customer accepts the quote (the reservation is made) or declines it."""
    _check_may_request(membership)
    if request.organization_id != membership.organization_id:
        raise ApplicationError("There is no such request.", code="not_found")
    with transaction.atomic():
        request = (
            ReservationRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "gpu_model")
            .get(pk=request.pk)
        )
        if request.state != RequestState.QUOTED:
            raise ApplicationError(
                f"This request is {request.get_state_display().lower()}; "
                "only a quoted request can be accepted or declined.",
                code="invalid_state",
            )
        request.answered_at = timezone.now()
        request.answered_by = membership.user
        if accept:
            if selectors.organization_suspension(request.organization_id) is not None:
                raise ApplicationError(
                    selectors.organization_suspension_reason(request.organization_id) or "",
                    code="suspended",
                )
            start, end = request_period(request.start_date, request.months)
            if start <= timezone.now():
                raise ApplicationError(
                    "The quote's start date has passed; ask for a new quote.", code="expired"
                )
            request.reservation = reservation_create(
                organization=request.organization,
                region=request.region,
                gpu_model=request.gpu_model,
                gpus=request.gpus,
                start=start,
                end=end,
                price_per_gpu_hour=request.quote_price,
                by=membership.user,
                request=request,
            )
            request.state = RequestState.ACCEPTED
        else:
            request.state = RequestState.DECLINED
        request.save(update_fields=["state", "answered_at", "answered_by", "reservation"])
        audit_record(
            action="reservation.accepted" if accept else "reservation.declined",
            organization=request.organization,
            actor=membership,
            target=request,
        )
    return request


def reservation_request_refuse(
    *, request: ReservationRequest, by: User, note: str = ""
) -> ReservationRequest:
    _staff(by)
    with transaction.atomic():
        request = ReservationRequest.objects.select_for_update().get(pk=request.pk)
        if not request.is_open:
            raise ApplicationError(
                f"Request #{request.pk} is {request.get_state_display().lower()}.",
                code="invalid_state",
            )
        request.state = RequestState.REFUSED
        request.quote_note = _text(note, field="quote_note", what="a note", required=False)
        request.quoted_by = by
        request.quoted_at = timezone.now()
        request.save(update_fields=["state", "quote_note", "quoted_by", "quoted_at"])
        audit_record(
            action="reservation.refused",
            organization=request.organization,
            actor=by,
            actor_kind="staff",
            target=request,
            detail={"note": request.quote_note},
        )
    return request


# --- Reminders --------------------------------------------------------------------------------


def reservation_reminders_send(*, now: datetime | None = None) -> int:
    """E-mail "starting in 7 days" and "ending in 7 days", each once per reservation.

    A conditional UPDATE claims each reminder, so two runs never send it twice.
    """
    now = now or timezone.now()
    horizon = now + timedelta(days=7)
    sent = 0
    for field, moment, what in (
        ("starting_notified_at", "start", "starting"),
        ("ending_notified_at", "end", "ending"),
    ):
        due = Reservation.objects.in_force().filter(
            **{f"{field}__isnull": True, f"{moment}__gt": now, f"{moment}__lte": horizon}
        )
        for pk in due.values_list("pk", flat=True):
            claimed = Reservation.objects.filter(pk=pk, **{f"{field}__isnull": True}).update(
                **{field: now}
            )
            if claimed:
                _safely(_emails().send_reservation_soon, reservation_id=pk, what=what)
                sent += 1
    return sent
