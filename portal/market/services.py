"""What changes the spot market: price changes (by the market or by staff), the settings'
rules, capacity alerts. Every price change closes the row in force and opens a new one, in one
transaction, and announces itself on commit (`portal.market.signals.spot_price_changed`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.capacity.snapshot import CapacitySnapshot, capacity_snapshot
from portal.catalog.models import InstanceType, Region
from portal.lib.errors import ApplicationError
from portal.market import pricing
from portal.market.locks import spot_history_write_lock
from portal.market.models import (
    ALERT_TTL_DAYS,
    ALERTS_PER_ORGANIZATION,
    CapacityAlert,
    PriceReason,
    SpotMarket,
    SpotPrice,
)
from portal.market.selectors import catalog_price, spot_prices_current
from portal.market.signals import (
    capacity_alert_fired,
    spot_bids_asked,
    spot_history_rewritten,
    spot_price_changed,
)
from portal.notifications.services import notify

logger = logging.getLogger(__name__)

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


def _record(
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

    The market itself only ever appends (`_record`). Here the rows of each offer, old and new,
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


def _starting_price(market: SpotMarket) -> Decimal:
    price = catalog_price(market.instance_type_id)
    start = price.preemptible_hourly if price is not None else market.floor
    return pricing.clamp(start, market.floor, market.ceiling)


@transaction.atomic
def spot_price_adjust(
    *, market: SpotMarket, snapshot: CapacitySnapshot | None, now: datetime | None = None
) -> SpotPrice | None:
    """Move the offer's price one step toward its target share of the spare GPUs sold, from
    the capacity snapshot; at most once per `pricing.ADJUST_EVERY`.

    Without a fresh snapshot entry for the offer nothing moves (an unknown fleet is no reason
    to change a price). Returns the new row, or None if the price stays.
    """
    now = now or timezone.now()
    if snapshot is None or not snapshot.is_fresh:
        return None
    key = (market.region.code, market.instance_type.code)
    entry = snapshot.entries.get(key)
    if entry is None:
        return None
    free_instances, free_gpus, total_gpus = entry
    internal_gpus = snapshot.demand.get(key, (0, 0, 0, None))[0]
    share = pricing.sold_share(
        free_gpus=free_gpus, total_gpus=total_gpus, internal_gpus=internal_gpus
    )
    if share is None:
        return None
    current = (
        SpotPrice.objects.filter(
            region_id=market.region_id,
            instance_type_id=market.instance_type_id,
            valid_until__isnull=True,
        )
        .values_list("price", "valid_from")
        .first()
    )
    bounds = pricing.Bounds(
        floor=market.floor,
        ceiling=market.ceiling,
        target_share=market.target_share,
        max_step=market.max_step,
    )
    spare = total_gpus - internal_gpus
    detail = (
        f"{free_gpus} of {spare} spare GPUs free ({internal_gpus} of {total_gpus} in the "
        f"operator's use), {share}% sold (target {market.target_share}%)"
    )
    if current is None:
        return _record(
            region_id=market.region_id,
            instance_type_id=market.instance_type_id,
            price=_starting_price(market),
            at=now,
            reason=PriceReason.INITIAL,
            detail=detail,
            free_gpus=free_gpus,
            total_gpus=total_gpus,
            share=share,
        )
    price_now, since = current
    if now - since < pricing.ADJUST_EVERY:
        return None
    trial = _trial(market, cache.get(_trial_key(market.pk)), price=price_now, since=since)
    if trial is not None and trial.due(now):  # kept, or undone (see pricing's docstring)
        cache.delete(_trial_key(market.pk))
        bids = _running_bids(market)
        sold_now = sum(gpus for _bid, gpus in bids)
        if not pricing.cut_pays(trial=trial, sold_now=sold_now):
            cache.set(_undone_key(market.pk), now.timestamp(), timeout=_UNDONE_SECONDS)
            back = pricing.rise_within_bids(
                current=price_now,
                proposed=trial.before,
                bids=bids,
                room=max(
                    pricing.undo_room(trial=trial, sold_now=sold_now),
                    pricing.gpus_over_target(
                        share=share,
                        target_share=market.target_share,
                        spare_gpus=spare,
                    ),
                ),
            )
            if back <= price_now:
                return None
            return _record(
                region_id=market.region_id,
                instance_type_id=market.instance_type_id,
                price=back,
                at=now,
                reason=PriceReason.MARKET,
                detail=(
                    f"the cut from {trial.before} to {trial.after} did not pay: "
                    f"{trial.sold_before} preemptible GPUs before it, {sold_now} after; {detail}"
                ),
                free_gpus=free_gpus,
                total_gpus=total_gpus,
                share=share,
            )
        trial = None
    price = pricing.next_price(current=price_now, share=share, bounds=bounds)
    if price < price_now and not pricing.may_cut(
        under_since=_under_since(market, share=share, now=now),
        now=now,
        free_instances=free_instances,
        last_change=since,
        share=share,
        target_share=market.target_share,
        on_trial=trial is not None,
        undone_at=_undone_at(cache.get(_undone_key(market.pk)), now),
    ):
        return None
    if price > price_now:
        price = pricing.rise_within_bids(
            current=price_now,
            proposed=price,
            bids=_running_bids(market),
            room=pricing.gpus_over_target(
                share=share,
                target_share=market.target_share,
                spare_gpus=spare,
            ),
        )
        if price == price_now:  # held at a bid: a decision, as a step is, once per interval
            cache.set(_held_key(market.pk), now.timestamp(), timeout=_HELD_SECONDS)
    if price == price_now:
        return None
    sold_before = sum(gpus for _bid, gpus in _running_bids(market)) if price < price_now else 0
    row = _record(
        region_id=market.region_id,
        instance_type_id=market.instance_type_id,
        price=price,
        at=now,
        reason=PriceReason.MARKET,
        detail=detail,
        free_gpus=free_gpus,
        total_gpus=total_gpus,
        share=share,
    )
    if row is not None and price < price_now and sold_before > 0:  # on trial (see pricing)
        cache.set(
            _trial_key(market.pk),
            (str(price_now), str(price), sold_before, row.valid_from.timestamp()),
            timeout=_UNDER_SECONDS,
        )
    return row


# A cut on trial (`pricing.Trial`): (price before, cut price, GPUs sold before, start of the
# cut's row), and when the offer's last cut was undone (a timestamp). Kept in the cache: lost,
# a cut is kept untried, or may come sooner after an undo (the market as it was before trials).
_UNDONE_SECONDS = int(pricing.UNDONE_WAIT.total_seconds())


def _trial_key(market_id: int) -> str:
    return f"market:cut-on-trial:{market_id}"


def _undone_key(market_id: int) -> str:
    return f"market:cut-undone:{market_id}"


def _trial(
    market: SpotMarket, cached: Any, *, price: Decimal, since: datetime
) -> pricing.Trial | None:
    """The offer's cut on trial, if its price is still the one in force (from `since`)."""
    if cached is None:
        return None
    before, after, sold_before, at = cached
    trial = pricing.Trial(
        before=Decimal(before),
        after=Decimal(after),
        sold_before=int(sold_before),
        at=datetime.fromtimestamp(at, tz=since.tzinfo),
    )
    if trial.after != price or trial.at != since:  # raised or set since: the trial is over
        return None
    return trial


def _undone_at(cached: Any, now: datetime) -> datetime | None:
    return datetime.fromtimestamp(cached, tz=now.tzinfo) if cached is not None else None


# An offer whose rise a bid held: when (a timestamp), so that it is weighed again only after
# `pricing.ADJUST_EVERY` (not at every report in between, a query of its bids each).
_HELD_SECONDS = int(pricing.ADJUST_EVERY.total_seconds())


def _held_key(market_id: int) -> str:
    return f"market:held-at-bid:{market_id}"


# An offer under its target (beyond the hold): since when (a timestamp), for `pricing.may_cut`.
# Kept in the cache, written by `spot_prices_adjust` at each report: lost, the wait starts
# again (the price holds a little longer, never falls sooner).
_UNDER_SECONDS = 7 * 86400


def _under_key(market_id: int) -> str:
    return f"market:under-target-since:{market_id}"


def _under_since(market: SpotMarket, *, share: Decimal, now: datetime) -> datetime | None:
    """Since when the offer has been under its target (now, if it was not known to be)."""
    if not pricing.under_target(share=share, target_share=market.target_share):
        return None
    since = cache.get(_under_key(market.pk))
    if since is None:
        cache.set(_under_key(market.pk), now.timestamp(), timeout=_UNDER_SECONDS)
        return now
    return datetime.fromtimestamp(since, tz=now.tzinfo)


def _running_bids(market: SpotMarket) -> list[tuple[Decimal, int]]:
    """(bid, GPUs) of the offer's running instances that a higher price would reclaim, as the
    apps that reclaim them answer."""
    bids: list[tuple[Decimal, int]] = []
    for _receiver, answer in spot_bids_asked.send(
        sender=SpotMarket, region_id=market.region_id, instance_type_id=market.instance_type_id
    ):
        if isinstance(answer, list):
            bids += answer
    return bids


def spot_prices_adjust(*, now: datetime | None = None) -> int:
    """Every enabled offer due for a step (each in its own transaction). How many prices
    changed. Runs after every capacity report: the offers whose price changed less than
    `pricing.ADJUST_EVERY` ago are left out with one query for all of them."""
    now = now or timezone.now()
    snapshot = capacity_snapshot()
    if snapshot is None or not snapshot.is_fresh:
        return 0
    markets = list(
        SpotMarket.objects.filter(enabled=True).select_related("region", "instance_type")
    )
    if not markets:
        return 0
    current = spot_prices_current()
    cached = cache.get_many(
        [_held_key(market.pk) for market in markets]
        + [_under_key(m.pk) for m in markets]
        + [_trial_key(m.pk) for m in markets]
        + [_undone_key(m.pk) for m in markets]
    )
    # Since when each offer has been under its target: noted when it goes under, forgotten
    # when it is back (at every report, whether or not its price may move now).
    under_since: dict[int, float] = {}
    went_under: dict[str, float] = {}
    back: list[str] = []
    for market in markets:
        key = _under_key(market.pk)
        share = _share(market, snapshot)
        if share is not None and pricing.under_target(
            share=share, target_share=market.target_share
        ):
            under_since[market.pk] = cached.get(key, now.timestamp())
            if key not in cached:
                went_under[key] = now.timestamp()
        elif key in cached:
            back.append(key)
    if went_under:
        cache.set_many(went_under, timeout=_UNDER_SECONDS)
    if back:
        cache.delete_many(back)
    changed = 0
    for market in markets:
        row = current.get((market.region_id, market.instance_type_id))
        trial = None
        if row is not None:
            trial = _trial(
                market, cached.get(_trial_key(market.pk)), price=row.price, since=row.valid_from
            )
        if (
            row is not None
            and not (trial is not None and trial.due(now))  # to be judged
            and not _may_move(
                market,
                row,
                snapshot,
                now,
                under_since=under_since.get(market.pk),
                on_trial=trial is not None,
                undone_at=_undone_at(cached.get(_undone_key(market.pk)), now),
            )
        ):
            continue
        held_at = cached.get(_held_key(market.pk))
        if held_at is not None and 0 <= now.timestamp() - held_at < _HELD_SECONDS:
            continue
        if spot_price_adjust(market=market, snapshot=snapshot, now=now) is not None:
            changed += 1
    return changed


def _share(market: SpotMarket, snapshot: CapacitySnapshot) -> Decimal | None:
    """The offer's sold share in the snapshot (None: not in it, or nothing spare)."""
    key = (market.region.code, market.instance_type.code)
    entry = snapshot.entries.get(key)
    if entry is None:
        return None
    return pricing.sold_share(
        free_gpus=entry[1],
        total_gpus=entry[2],
        internal_gpus=snapshot.demand.get(key, (0, 0, 0, None))[0],
    )


def _may_move(
    market: SpotMarket,
    row: SpotPrice,
    snapshot: CapacitySnapshot,
    now,
    *,
    under_since: float | None = None,
    on_trial: bool = False,
    undone_at: datetime | None = None,
) -> bool:
    """Whether `spot_price_adjust` could change the price in force (`row`), told without a
    query: not within `pricing.ADJUST_EVERY` of its last change, a step away from it, and a
    cut only if `pricing.may_cut` lets it (`under_since`: a timestamp)."""
    if now - row.valid_from < pricing.ADJUST_EVERY:
        return False
    share = _share(market, snapshot)
    if share is None:
        return False
    bounds = pricing.Bounds(
        floor=market.floor,
        ceiling=market.ceiling,
        target_share=market.target_share,
        max_step=market.max_step,
    )
    price = pricing.next_price(current=row.price, share=share, bounds=bounds)
    if price < row.price:
        entry = snapshot.entries[(market.region.code, market.instance_type.code)]
        since = None
        if under_since is not None:
            since = datetime.fromtimestamp(under_since, tz=now.tzinfo)
        return pricing.may_cut(
            under_since=since,
            now=now,
            free_instances=entry[0],
            last_change=row.valid_from,
            share=share,
            target_share=market.target_share,
            on_trial=on_trial,
            undone_at=undone_at,
        )
    return price != row.price


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
    row = _record(
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


# Capacity alerts ---------------------------------------------------------------------------


def capacity_alert_create(
    *, membership, region: Any, instance_type: Any, count: Any = 1, max_price: Any = None
) -> CapacityAlert:
    """ "Tell me when `count` × `instance_type` are free in `region`" for the member."""
    organization = membership.organization
    region_code = getattr(region, "code", None) or str(region or "").strip()
    type_code = getattr(instance_type, "code", None) or str(instance_type or "").strip()
    place = Region.objects.filter(code=region_code, active=True).first()
    if place is None:
        raise ApplicationError(
            f"There is no region “{region_code}”.", field="region", code="unknown"
        )
    itype = InstanceType.objects.filter(code=type_code, active=True).first()
    if itype is None:
        raise ApplicationError(
            f"There is no instance type “{type_code}”.", field="instance_type", code="unknown"
        )
    if not itype.regions.filter(pk=place.pk).exists():
        raise ApplicationError(
            f"{itype.name} is not offered in {place.name}.", field="region", code="not_offered"
        )
    try:
        number = int(str(count).strip())
    except (TypeError, ValueError) as exc:
        raise ApplicationError(
            "The number of instances must be a whole number from 1 to 100.", field="count"
        ) from exc
    if not 1 <= number <= 100:
        raise ApplicationError(
            "The number of instances must be a whole number from 1 to 100.", field="count"
        )
    price = None
    if max_price not in (None, ""):
        price = parse_price(max_price, field="max_price", what="The max spot price")
    with transaction.atomic():
        # One organization at a time (its row locked), so two requests cannot pass 20 together.
        type(organization).objects.select_for_update().filter(pk=organization.pk).first()
        live = CapacityAlert.objects.filter(
            organization=organization, expires_at__gt=timezone.now()
        ).count()
        if live >= ALERTS_PER_ORGANIZATION:
            raise ApplicationError(
                f"An organization can have at most {ALERTS_PER_ORGANIZATION} capacity alerts; "
                "remove one first.",
                code="too_many",
            )
        now = timezone.now()
        alert = CapacityAlert.objects.create(
            organization=organization,
            created_by=membership.user,
            region=place,
            instance_type=itype,
            count=number,
            max_price=price,
            created_at=now,
            expires_at=now + timedelta(days=ALERT_TTL_DAYS),
        )
        audit_record(
            action="capacity_alert.created",
            organization=organization,
            actor=membership.user,
            target=alert,
            detail={
                "region": place.code,
                "instance_type": itype.code,
                "count": number,
                "max_price": str(price) if price is not None else None,
            },
        )
    return alert


def capacity_alert_remove(*, membership, alert: CapacityAlert) -> None:
    if alert.organization_id != membership.organization_id:
        raise ApplicationError("There is no such alert.", code="not_found")
    with transaction.atomic():
        audit_record(
            action="capacity_alert.removed",
            organization=membership.organization,
            actor=membership.user,
            target=alert,
            detail={"region": alert.region.code, "instance_type": alert.instance_type.code},
        )
        alert.delete()


def capacity_alerts_check(*, now: datetime | None = None) -> int:
    """Fire the alerts that came true in the latest capacity snapshot (once each: the
    conditional UPDATE of `fired_at` is the lock), let those that are false again rest no
    more, and remove the expired ones. How many fired."""
    now = now or timezone.now()
    alerts = list(CapacityAlert.objects.select_related("region", "instance_type", "organization"))
    expired = [alert.pk for alert in alerts if alert.expires_at <= now]
    if expired:
        CapacityAlert.objects.filter(pk__in=expired).delete()
        alerts = [alert for alert in alerts if alert.pk not in expired]
    snapshot = capacity_snapshot()
    if not alerts or snapshot is None or not snapshot.is_fresh:
        return 0
    prices = {offer: row.price for offer, row in spot_prices_current().items()}
    fired = 0
    for alert in alerts:
        entry = snapshot.entries.get((alert.region.code, alert.instance_type.code))
        free = entry[0] if entry is not None else 0
        price = prices.get((alert.region_id, alert.instance_type_id))
        if price is None:
            catalog = catalog_price(alert.instance_type_id)
            price = catalog.preemptible_hourly if catalog is not None else None
        true = free >= alert.count and (
            alert.max_price is None or (price is not None and price <= alert.max_price)
        )
        if not true:
            if alert.fired_at is not None:
                CapacityAlert.objects.filter(pk=alert.pk).update(fired_at=None)
            continue
        if alert.fired_at is not None:
            continue  # resting until false again
        with transaction.atomic():
            claimed = CapacityAlert.objects.filter(pk=alert.pk, fired_at__isnull=True).update(
                fired_at=now, last_fired_at=now
            )
            if claimed != 1:
                continue
            notify("capacity_available", alert_id=alert.pk, free_instances=free)
            capacity_alert_fired.send(
                sender=CapacityAlert, alert=alert, free_instances=free, price=price
            )
        fired += 1
    return fired
