"""The market's own price steps: after each capacity report every offer's price one step
toward its target share of the spare GPUs sold (`pricing` holds the rules), with what the cache
remembers between reports (a cut on trial, a rise held at a bid, since when under target)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from portal.capacity.snapshot import CapacitySnapshot, capacity_snapshot
from portal.catalog.selectors import price_in_force
from portal.market import pricing
from portal.market.models import (
    PriceReason,
    SpotMarket,
    SpotPrice,
)
from portal.market.selectors import spot_prices_current
from portal.market.services.records import record_price
from portal.market.signals import spot_bids_asked, spot_launches_asked
from portal.web.sql import ReadBuiltOnce


def _starting_price(market: SpotMarket) -> Decimal:
    price = price_in_force(market.instance_type_id)
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
        return record_price(
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
        launched = _launched_bids(market, since=trial.at)
        if not pricing.cut_pays(trial=trial, launched=launched):
            gained, anyway = pricing.brought(trial=trial, launched=launched)
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
            return record_price(
                region_id=market.region_id,
                instance_type_id=market.instance_type_id,
                price=back,
                at=now,
                reason=PriceReason.MARKET,
                detail=(
                    f"the cut from {trial.before} to {trial.after} did not pay: it brought "
                    f"{gained} preemptible GPUs, {anyway} would have been sold at "
                    f"{trial.before}; {detail}"
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
    row = record_price(
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


def _launched_bids(market: SpotMarket, *, since: datetime) -> list[tuple[Decimal, int]]:
    """(bid, GPUs) of the offer's preemptible instances launched since `since`, as the apps
    that launch them answer."""
    return _answers(spot_launches_asked, market, since=since)


def _answers(question: Signal, market: SpotMarket, **asked: Any) -> list[tuple[Decimal, int]]:
    """The (bid, GPUs) lists the receivers of `question` answer about the offer, together."""
    bids: list[tuple[Decimal, int]] = []
    for _receiver, answer in question.send(
        sender=SpotMarket,
        region_id=market.region_id,
        instance_type_id=market.instance_type_id,
        **asked,
    ):
        if isinstance(answer, list):
            bids += answer
    return bids


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
    return _answers(spot_bids_asked, market)


# Read after every capacity report (every 30 s): built once.
_ENABLED_MARKETS = ReadBuiltOnce(
    lambda: SpotMarket.objects.filter(enabled=True).select_related("region", "instance_type")
)


def spot_prices_adjust(*, now: datetime | None = None) -> int:
    """Every enabled offer due for a step (each in its own transaction). How many prices
    changed. Runs after every capacity report: the offers whose price changed less than
    `pricing.ADJUST_EVERY` ago are left out with one query for all of them."""
    now = now or timezone.now()
    snapshot = capacity_snapshot()
    if snapshot is None or not snapshot.is_fresh:
        return 0
    markets = _ENABLED_MARKETS.objects()
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
