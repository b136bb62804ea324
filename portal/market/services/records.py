"""The price rows: every price change closes the row in force and opens a new one, in one
transaction, and announces itself on commit (`portal.market.signals.spot_price_changed`); the
settings' rules; prices set by staff; history written in bulk."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.lib.errors import ApplicationError
from portal.market.locks import spot_history_write_lock
from portal.market.models import (
    PriceReason,
    SpotMarket,
    SpotPrice,
)
from portal.market.signals import (
    spot_history_rewritten,
    spot_price_changed,
)

MAX_PRICE = Decimal("999999.9999")


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def parse_price(value: Any, *, field: str, what: str = "A price") -> Decimal:
    """A positive amount per hour with at most 4 decimals, or an ApplicationError."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ApplicationError(
            f"{what} must be an amount per hour such as 1.25.", field=field, code="invalid_price"
        ) from exc
    if not amount.is_finite():
        raise ApplicationError(
            f"{what} must be an amount per hour such as 1.25.", field=field, code="invalid_price"
        )
    if amount <= 0:
        raise ApplicationError(f"{what} must be more than 0.", field=field, code="invalid_price")
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ApplicationError(
            f"{what} can have at most 4 decimals.", field=field, code="invalid_price"
        )
    if amount > MAX_PRICE:
        raise ApplicationError(f"{what} is too large.", field=field, code="invalid_price")
    return amount


def check_currency(currency: Any, *, field: str = "currency") -> str:
    code = str(currency or settings.CURRENCY).strip().upper()
    if code != settings.CURRENCY:
        raise ApplicationError(
            f"Prices are in {settings.CURRENCY}; {code} is not accepted.",
            field=field,
            code="currency",
        )
    return code


def spot_market_check(
    *,
    floor: Decimal | None,
    ceiling: Decimal | None,
    target_share: Decimal | None,
    max_step: Decimal | None,
) -> dict[str, str]:
    """The settings' rules: errors per field (empty when the settings are good)."""
    errors: dict[str, str] = {}
    if floor is not None and floor < 0:
        errors["floor"] = "The floor cannot be negative."
    if ceiling is not None and ceiling < 0:
        errors["ceiling"] = "The ceiling cannot be negative."
    if (
        floor is not None
        and ceiling is not None
        and "floor" not in errors
        and "ceiling" not in errors
        and floor > ceiling
    ):
        errors["floor"] = f"The floor ({floor}) is above the ceiling ({ceiling})."
    if max_step is not None and max_step <= 0:
        errors["max_step"] = "The largest step must be more than 0."
    if target_share is not None and not Decimal(0) <= target_share <= Decimal(100):
        errors["target_share"] = "The target share is a percentage from 0 to 100."
    return errors


def record_price(
    *,
    region_id: int,
    instance_type_id: int,
    price: Decimal,
    at: datetime,
    reason: str,
    detail: str = "",
    free_gpus: int | None = None,
    total_gpus: int | None = None,
    share: Decimal | None = None,
    set_by=None,
) -> SpotPrice | None:
    """Close the row in force (locked) and open one at `price` from `at`. None if the price in
    force is already `price` (nothing written)."""
    at = whole_second(at)
    spot_history_write_lock(instance_type_id)
    current = (
        SpotPrice.objects.select_for_update(of=("self",))
        .filter(region_id=region_id, instance_type_id=instance_type_id, valid_until__isnull=True)
        .first()
    )
    previous = current.price if current is not None else None
    before: SpotPrice | None
    if current is not None:
        if current.price == price:
            return None
        # Two changes in one second (a frozen clock): the later one starts a second later,
        # so that every price row lasts at least a second.
        at = max(at, current.valid_from + timedelta(seconds=1))
        current.valid_until = at
        current.save(update_fields=["valid_until"])
        before = current
    else:  # the first price of the offer, or one after a gap (a history loaded as it was)
        before = (
            SpotPrice.objects.select_for_update(of=("self",))
            .filter(region_id=region_id, instance_type_id=instance_type_id)
            .order_by("-valid_from")
            .first()
        )
        if before is not None and before.valid_until is not None:
            at = max(at, before.valid_until)
    seconds_before, price_seconds_before = (
        before.sums_after() if before is not None else (0, Decimal(0))
    )
    row = SpotPrice.objects.create(
        region_id=region_id,
        instance_type_id=instance_type_id,
        price=price,
        currency=settings.CURRENCY,
        valid_from=at,
        reason=reason,
        detail=detail[:300],
        free_gpus=free_gpus,
        total_gpus=total_gpus,
        sold_share=share,
        set_by=set_by,
        seconds_before=seconds_before,
        price_seconds_before=price_seconds_before,
    )
    # Usage sealed before this row committed but reaching past `at` (a seal racing this
    # change; the lock makes it commit first) is re-sealed here.
    spot_history_rewritten.send(
        sender=SpotPrice, region_id=region_id, instance_type_id=instance_type_id, since=at
    )
    _announce(region_id, instance_type_id, price, previous, at)
    return row


@transaction.atomic
def spot_price_history_add(*, rows: Iterable[SpotPrice]) -> list[SpotPrice]:
    """Write price rows as they are given (unsaved; a history loaded at once, such as an
    import or a benchmark's month), in any order, also before or between existing rows.

    The market itself only ever appends (`record_price`). Here the rows of each offer, old and new,
    must not overlap and must start and end on whole seconds, or nothing is written. Every
    row's `seconds_before` and `price_seconds_before` are set, and the existing rows after a
    new one are updated, in the same transaction (the offer's rows locked).
    """
    new_rows = list(rows)
    offers: dict[tuple[int, int], list[SpotPrice]] = {}
    for row in new_rows:
        for moment in (row.valid_from, row.valid_until):
            if moment is not None and moment.microsecond:
                raise ApplicationError(
                    f"A price row starts and ends on a whole second, not at {moment}.",
                    code="invalid_price_row",
                )
        offers.setdefault((row.region_id, row.instance_type_id), []).append(row)
    changed: list[SpotPrice] = []
    for instance_type_id in sorted({type_id for _, type_id in offers}):  # one lock order
        spot_history_write_lock(instance_type_id)
    firsts = {offer: min(row.valid_from for row in added) for offer, added in offers.items()}
    for (region_id, instance_type_id), added in offers.items():
        first = firsts[(region_id, instance_type_id)]
        existing = list(
            SpotPrice.objects.select_for_update(of=("self",))
            .filter(region_id=region_id, instance_type_id=instance_type_id)
            .order_by("valid_from")
        )
        earlier = [row for row in existing if row.valid_from < first]
        later = [row for row in existing if row.valid_from >= first]
        history = sorted([*later, *added], key=lambda row: row.valid_from)
        before = earlier[-1] if earlier else None
        for row in history:
            if before is not None and (
                before.valid_until is None or before.valid_until > row.valid_from
            ):
                raise ApplicationError(
                    f"The price from {row.valid_from} overlaps the one from {before.valid_from}.",
                    code="overlapping_price_rows",
                )
            sums = before.sums_after() if before is not None else (0, Decimal(0))
            if row.pk is not None and sums != (row.seconds_before, row.price_seconds_before):
                changed.append(row)
            row.seconds_before, row.price_seconds_before = sums
            before = row
    SpotPrice.objects.bulk_update(
        changed, ["seconds_before", "price_seconds_before"], batch_size=1000
    )
    written = SpotPrice.objects.bulk_create(new_rows, batch_size=5000)
    for (region_id, instance_type_id), first in firsts.items():
        spot_history_rewritten.send(
            sender=SpotPrice, region_id=region_id, instance_type_id=instance_type_id, since=first
        )
    return written


def _announce(
    region_id: int, instance_type_id: int, price: Decimal, previous: Decimal | None, at: datetime
) -> None:
    transaction.on_commit(
        lambda: spot_price_changed.send(
            sender=SpotPrice,
            region_id=region_id,
            instance_type_id=instance_type_id,
            price=price,
            previous=previous,
            at=at,
        )
    )


@transaction.atomic
def spot_price_set(
    *, market: SpotMarket, price: Any, user, request=None, note: str = ""
) -> SpotPrice | None:
    """Staff set the offer's price by hand (within floor and ceiling), audited."""
    amount = parse_price(price, field="price", what="The price")
    if not market.floor <= amount <= market.ceiling:
        raise ApplicationError(
            f"The price must be between the floor ({market.floor}) and the ceiling "
            f"({market.ceiling}).",
            field="price",
            code="out_of_bounds",
        )
    row = record_price(
        region_id=market.region_id,
        instance_type_id=market.instance_type_id,
        price=amount,
        at=timezone.now(),
        reason=PriceReason.MANUAL,
        detail=(note or f"Set by {user}")[:300],
        set_by=user,
    )
    if row is not None:
        audit_record(
            action="market.price_set",
            actor=user,
            actor_kind="staff",
            request=request,
            target=row,
            detail={
                "region": market.region.code,
                "instance_type": market.instance_type.code,
                "price": str(amount),
                "note": note,
            },
        )
    return row
