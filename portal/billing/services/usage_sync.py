"""Metering: an instance's usage intervals recomputed from its timeline, for one instance or
many at once, and the sweeps that find what is left to meter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from portal.billing import clock, metering, sealing, usage
from portal.billing.models import (
    InstanceMeter,
    Invoice,
    UsageInterval,
)
from portal.billing.periods import midnight
from portal.catalog.models import Price
from portal.instances.models import Instance, InstanceEvent
from portal.market.locks import spot_history_read_lock
from portal.orgs.models import Organization
from portal.web.sql import Among, ReadBuiltOnce


class _Metered(NamedTuple):
    """An instance as metering reads it (under its row lock)."""

    pk: int
    organization_id: int
    instance_type_id: int
    region_id: int
    gpus: int
    preemptible: bool
    cluster_id: int | None


def _locked(ids: list[int]) -> QuerySet[Any, Any]:
    return (
        Instance.objects.select_for_update(of=("self",))
        .filter(Among(F("id"), ids))
        .order_by("pk")
        .values_list(
            *("id", "organization_id", "instance_type_id", "region_id", "gpus"),
            *("preemptible", "cluster_id"),
        )
    )


def _timelines(ids: list[int]) -> QuerySet[Any, Any]:
    return (
        InstanceEvent.objects.filter(Among(F("instance_id"), ids))
        .exclude(to_state="")
        .order_by("instance_id", "at", "id")
        .values_list("id", "instance_id", "at", "to_state")
    )


def _prices(ids: list[int]) -> QuerySet[Any, Any]:
    # Unordered: `metering.pieces` sorts them.
    return Price.objects.filter(Among(F("instance_type_id"), ids)).order_by()


def _frozen_before(ids: list[int]) -> QuerySet[Any, Any]:
    """Usage before the end of an organization's last invoiced month is never rewritten: that
    end per organization (none: nothing invoiced)."""
    return (
        Invoice.objects.filter(Among(F("organization_id"), ids))
        .values("organization_id")
        .annotate(end=Max("period_end"))
        .values_list("organization_id", "end")
    )


class _Held(NamedTuple):
    """A usage interval as metering compares it with the pieces it wants (read as a row
    rather than a model instance: a long timeline has one per day)."""

    pk: int
    instance_id: int
    start: datetime
    end: datetime | None
    kind: str
    unit_price: Any
    price_id: int | None
    currency: str

    def key(self) -> tuple:  # as `UsageInterval.key()`
        return metering.interval_key(self)


def _reaching(ids: list[int], frozen: datetime) -> QuerySet[Any, Any]:
    return (
        UsageInterval.objects.filter(Among(F("instance_id"), ids))
        .filter(Q(start__gte=frozen) | Q(end__isnull=True) | Q(end__gt=frozen))
        .order_by()
        .values_list(
            *("id", "instance_id", "start", "end", "kind", "unit_price", "price_id"),
            "currency",
        )
    )


# Metering's reads, at every state change: built once, whatever the number of instances.
_LOCKED = ReadBuiltOnce(_locked, ids=list)
_TIMELINES = ReadBuiltOnce(_timelines, ids=list)
_PRICES = ReadBuiltOnce(_prices, ids=list)
_FROZEN_BEFORE = ReadBuiltOnce(_frozen_before, ids=list)
_REACHING = ReadBuiltOnce(_reaching, ids=list, frozen=datetime)
# Before any usage: what reaches past it is everything.
_BEFORE_ALL = datetime(1, 1, 1, tzinfo=UTC)


def usage_sync_instance(*, instance_id: int) -> None:
    """Bring the instance's usage intervals in line with its timeline. Idempotent.

    Recomputes the billed pieces from every state change of the instance (so an event that
    reconciliation backdates, or a task that runs twice, changes nothing that is already right)
    and writes the difference, inside one transaction holding the instance's row lock. Months
    already invoiced are left alone; an open piece reaching into them is closed at their end.
    """
    usage_sync_instances(instance_ids=[instance_id])


def usage_sync_instances(*, instance_ids: Iterable[int]) -> None:
    """`usage_sync_instance` of many instances at once (a cluster's nodes that changed state
    together), in one transaction holding their row locks: the same intervals, each
    instance's computed from its own timeline by `metering.pieces`, read and written with
    one query per kind of row rather than per instance."""
    ids = sorted(set(instance_ids))
    if not ids:
        return
    now = clock.now()
    with transaction.atomic():
        instances = [_Metered(*row) for row in _LOCKED.rows(ids=ids)]
        if not instances:
            return
        ids = [instance.pk for instance in instances]
        # What closes here is sealed at the spot prices.
        for type_id in sorted({i.instance_type_id for i in instances if i.preemptible}):
            spot_history_read_lock(type_id)
        events: dict[int, list[tuple[int, Any, str]]] = defaultdict(list)
        for pk, instance_id, at, state in _TIMELINES.rows(ids=ids):
            events[instance_id].append((pk, at, state))
        prices: dict[int, list[metering.PricePoint]] = defaultdict(list)
        for p in _PRICES.objects(ids=sorted({i.instance_type_id for i in instances})):
            prices[p.instance_type_id].append(metering.PricePoint.of(p))
        frozen_of: dict[int, Any] = dict(
            _FROZEN_BEFORE.rows(ids=sorted({i.organization_id for i in instances}))
        )
        # What is invoiced stays, but for what reaches across it: one read from the earliest
        # boundary among the instances' organizations, each instance's kept from its own.
        earliest = min(frozen_of.get(i.organization_id, _BEFORE_ALL) for i in instances)
        existing: dict[int, list[_Held]] = defaultdict(list)
        organization_of = {instance.pk: instance.organization_id for instance in instances}
        for row in map(_Held._make, _REACHING.rows(ids=ids, frozen=earliest)):
            frozen = frozen_of.get(organization_of[row.instance_id])
            if frozen is None or row.start >= frozen or row.end is None or row.end > frozen:
                existing[row.instance_id].append(row)

        crossing: dict[Any, list[int]] = defaultdict(list)  # by the boundary they close at
        sealed_crossing: list[int] = []  # of preemptible instances
        changed: dict[int, bool] = {}  # organization: whether sealed usage changed
        stale: list[int] = []
        new: list[UsageInterval] = []
        preemptible_new: set[int] = set()
        meters: list[InstanceMeter] = []
        for instance in instances:
            timeline = events[instance.pk]
            wanted = metering.pieces(
                [metering.Transition(at=at, to_state=state) for _, at, state in timeline],
                preemptible=instance.preemptible,
                prices=prices[instance.instance_type_id],
                now=now,
                default_currency=settings.CURRENCY,
            )
            rows = existing[instance.pk]
            frozen = frozen_of.get(instance.organization_id)
            closed_at_invoice = False
            if frozen is not None:
                # What was still open when its month was invoiced ends at the invoiced
                # boundary; the rest of the timeline before it stays as it was billed.
                across = [row.pk for row in rows if row.start < frozen]
                if across:
                    closed_at_invoice = True
                    crossing[frozen] += across
                    if instance.preemptible:
                        sealed_crossing += across
                rows = [row for row in rows if row.start >= frozen]
                wanted = [
                    _after(piece, frozen)
                    for piece in wanted
                    if piece.end is None or piece.end > frozen
                ]
            have = {row.key(): row.pk for row in rows}
            want = {piece.key(): piece for piece in wanted}
            stale += [pk for key, pk in have.items() if key not in want]
            # Keys begin with the start: a change to a day before today is a change to sealed
            # usage.
            touched = [key[0] for key in have if key not in want]
            touched += [key[0] for key in want if key not in have]
            if closed_at_invoice or touched:
                sealed = closed_at_invoice or any(start < midnight(now) for start in touched)
                organization_id = instance.organization_id
                changed[organization_id] = changed.get(organization_id, False) or sealed
            for key, piece in want.items():
                if key in have:
                    continue
                new.append(
                    UsageInterval(
                        instance_id=instance.pk,
                        organization_id=instance.organization_id,
                        instance_type_id=instance.instance_type_id,
                        region_id=instance.region_id,
                        gpus=instance.gpus,
                        kind=piece.kind,
                        start=piece.start,
                        end=piece.end,
                        price_id=piece.price_id,
                        unit_price=piece.unit_price,
                        currency=piece.currency,
                        cluster=instance.cluster_id is not None,
                    )
                )
            if instance.preemptible:
                preemptible_new.add(instance.pk)
            meters.append(
                InstanceMeter(
                    instance_id=instance.pk,
                    last_event_id=max((pk for pk, _, _ in timeline), default=0),
                    synced_at=now,
                )
            )
        for frozen, pks in crossing.items():
            UsageInterval.objects.filter(pk__in=pks).update(end=frozen)
        for organization_id, sealed in changed.items():
            usage.usage_changed(organization_id, sealed=sealed)
        if stale:
            UsageInterval.objects.filter(pk__in=stale).delete()
        created = UsageInterval.objects.bulk_create(new)
        closed = [
            row.pk for row in created if row.end is not None and row.instance_id in preemptible_new
        ]
        closed += sealed_crossing
        if closed:
            sealing.spot_seal_ids(closed)
        InstanceMeter.objects.bulk_create(  # one upsert
            meters,
            update_conflicts=True,
            unique_fields=["instance"],
            update_fields=["last_event_id", "synced_at"],
        )


def _after(piece: metering.Piece, boundary) -> metering.Piece:
    if piece.start >= boundary:
        return piece
    return metering.Piece(boundary, *piece.key()[1:])


def _with_new_events(after_event: int) -> QuerySet[Any, Any]:
    seen = Subquery(
        InstanceMeter.objects.filter(instance_id=OuterRef("instance_id")).values("last_event_id")
    )
    return (
        InstanceEvent.objects.filter(id__gt=after_event)
        .exclude(to_state="")
        .annotate(seen=Coalesce(seen, 0))
        .filter(id__gt=F("seen"))
        .order_by()  # else DISTINCT would be over the model's ordering's columns too
        .values_list("instance_id")
        .distinct()
    )


def _open_pieces_due(midnight: datetime, now: datetime) -> QuerySet[Any, Any]:
    return (
        UsageInterval.objects.filter(end__isnull=True)
        .filter(
            Q(start__lt=midnight)
            | Exists(
                Price.objects.filter(
                    instance_type_id=OuterRef("instance_type_id"),
                    valid_from__gt=OuterRef("start"),
                    valid_from__lte=now,
                )
            )
        )
        .order_by()
        .values_list("instance_id")
    )


# The periodic usage sweep's two reads: built once.
_WITH_NEW_EVENTS = ReadBuiltOnce(_with_new_events, after_event=int)
_OPEN_PIECES_DUE = ReadBuiltOnce(
    _open_pieces_due,
    midnight=datetime,
    now=datetime,
)


def instances_needing_sync(*, after_event: int = 0) -> list[int]:
    """Instances whose usage may be out of date: a state change not read yet (of the events
    after `after_event`: see `usage_sync_pending`), or an open piece that crossed a UTC
    midnight or a price change since it was written."""
    now = clock.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ids = {row[0] for row in _WITH_NEW_EVENTS.rows(after_event=after_event)}
    ids |= {row[0] for row in _OPEN_PIECES_DUE.rows(midnight=midnight, now=now)}
    return sorted(ids)


# Events up to the highest id of a run at least this long ago are known read: a transaction
# that took its event's id before then has committed by now (a longer one is looked for
# again only by a run whose mark is older than it).
PENDING_LAG = timedelta(minutes=10)
PENDING_MARKS_KEY = "billing:usage-pending-marks"


def usage_sync_pending() -> int:
    """Sync every instance that needs it; returns how many were synced.

    Runs every minute as a safety net (state changes are metered on commit), so it does not
    read every state change ever made: a completed run notes the highest event id there was
    when it began, and a later run looks only after the mark of a run at least PENDING_LAG
    old. A run that fails notes nothing; without the marks (a cache flushed) it reads all."""
    now = clock.now().timestamp()
    marks: list[tuple[float, int]] = cache.get(PENDING_MARKS_KEY) or []
    settled = [mark for mark in marks if mark[0] <= now - PENDING_LAG.total_seconds()]
    after = max((event_id for _at, event_id in settled), default=0)
    top = InstanceEvent.objects.aggregate(top=Max("id"))["top"] or 0
    if after > top:  # the database went back (a restore) under a cache that did not: read all
        marks, settled, after = [], [], 0
    ids = instances_needing_sync(after_event=after)
    for instance_id in ids:
        usage_sync_instance(instance_id=instance_id)
    recent = [mark for mark in marks if mark[0] > now - PENDING_LAG.total_seconds()]
    cache.set(PENDING_MARKS_KEY, [*settled[-1:], *recent, (now, top)], timeout=None)
    return len(ids)


def usage_sync_organization(*, organization: Organization, since=None) -> None:
    """Sync the organization's instances that may have usage after `since` (all if None)."""
    instances = Instance.objects.filter(organization=organization)
    if since is not None:
        instances = instances.filter(Q(terminated_at__isnull=True) | Q(terminated_at__gte=since))
    for instance_id in instances.values_list("pk", flat=True):
        usage_sync_instance(instance_id=instance_id)
