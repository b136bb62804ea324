"""The early warning, like a rebalance recommendation: "reclaim risk elevated".

The forecast, per region and GPU model, of the internal demand 15 minutes ahead is the larger
of two simple figures:

- the backend's own forecast (`Capacity.internal_forecast_gpus`): the simulator gives its
  daily curve 15 minutes ahead (without bursts); a backend that cannot say gives None;
- the trend: the internal GPUs now, plus their change since the previous capacity report
  carried on linearly for 15 minutes (a rise only; the previous report is kept in the cache).

When that forecast exceeds what customers leave free (fleet − customer-held GPUs), the excess,
less the GPUs already under a reclaim notice, is at risk: the instances the policy would take
first for that many GPUs get the warning once (the instance page, and the
`instance.reclaim_risk` webhook; no e-mail). A warning stands while its place is at risk (it
covers its GPUs; newer arrivals the policy would put first are warned only for what it leaves
uncovered); instances whose place has not been at risk for 15 minutes (the forecast's
horizon: the warning said "within 15 minutes") lose the warning. The trend of 30-second
reports swings in and out of risk from one report to the next; without that hold every
swing cleared the warnings and the next one gave them again, a webhook each time.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.db import transaction

from portal.audit.services import audit_record_many
from portal.capacity.selectors import PlaceDemand, demand_by_place
from portal.capacity.snapshot import CapacitySnapshot
from portal.instances import lifecycle
from portal.instances.models import FINAL_STATES, Instance
from portal.reclaims import selectors, signals
from portal.reclaims.services import policy_get

HORIZON = timedelta(minutes=15)
TREND_KEY = "reclaims:risk:previous"
# (region code, GPU model code) -> when the place was last at risk (a timestamp).
AT_RISK_KEY = "reclaims:risk:last-at-risk"


def forecast_internal(place: PlaceDemand, previous: tuple[float, int] | None, now: float) -> int:
    """Internal GPUs forecast 15 minutes ahead (see the module's docstring)."""
    forecast = place.internal + place.shortfall  # what the operator's work wants now
    if place.forecast is not None:
        forecast = max(forecast, place.forecast)
    if previous is not None:
        then, internal_then = previous
        elapsed = now - then
        rise = place.internal + place.shortfall - internal_then
        if elapsed > 0 and rise > 0:
            trend = place.internal + place.shortfall + rise * HORIZON.total_seconds() / elapsed
            forecast = max(forecast, round(trend))
    return forecast


def reclaim_risk_check(snapshot: CapacitySnapshot | None) -> list[int]:
    """Warn the instances most at risk; returns the ids warned now.

    Runs after every capacity report (every 30 s), so it reads set-wise, whatever the number
    of places, and only what the report needs: the warned instances, each with whether the
    policy may still take it, in one query; where a forecast exceeds what customers leave,
    the GPUs under notice in one; only where a place is at risk beyond what its standing
    warnings cover, the policy and the candidates of every such place in one each (most
    reports of a lasting risk find it covered and rank nothing); the warned instances' rows
    for the webhook in one query per place."""
    if snapshot is None:
        return []
    now = snapshot.taken_at.timestamp()
    previous: dict = cache.get(TREND_KEY) or {}
    places = demand_by_place(snapshot)
    cache.set(
        TREND_KEY,
        {key: (now, p.internal + p.shortfall) for key, p in places.items()},
        timeout=int(HORIZON.total_seconds() * 4),
    )
    if not places:
        return []
    warned_by_place = selectors.warned_by_place()
    forecasts = {
        key: forecast_internal(place, previous.get(key), now) for key, place in places.items()
    }
    # What the forecast wants beyond what customers leave, before the GPUs under notice: a
    # place where it is none and no warning stands has nothing to warn or clear.
    exposed = {
        key: forecasts[key] - (place.fleet - place.customer) for key, place in places.items()
    }
    if not warned_by_place and all(gpus <= 0 for gpus in exposed.values()):
        return []
    exposed_places = [key for key, gpus in exposed.items() if gpus > 0]
    under_notice = selectors.gpus_under_notice_by_place() if exposed_places else {}
    at_risk = {key: exposed[key] - under_notice.get(key, 0) for key in places}
    last_at_risk: dict = cache.get(AT_RISK_KEY) or {}
    last_at_risk.update({key: now for key in places if at_risk[key] > 0})
    cache.set(AT_RISK_KEY, last_at_risk, timeout=int(HORIZON.total_seconds() * 4))
    # Where warnings stand: at risk now, or within the horizon of the last time it was.
    held = {
        key
        for key in places
        if now - last_at_risk.get(key, float("-inf")) < HORIZON.total_seconds()
        and (at_risk[key] > 0 or warned_by_place.get(key))
    }
    # A warning stands while its place is at risk and the policy may still take its instance:
    # it covers its GPUs, and only what it leaves uncovered warns more (in the policy's
    # order). Moving it to each newer or cheaper arrival would warn and clear again and
    # again, a webhook each time. The ranking of the candidates is read only for the places
    # where the standing warnings leave GPUs uncovered.
    kept: dict[tuple[str, str], list[selectors.Warned]] = {
        key: [w for w in warned_by_place.get(key, []) if w.eligible] for key in held
    }
    uncovered = {key: at_risk[key] - sum(w.gpus for w in kept[key]) for key in held}
    needy = [key for key in places if key in held and uncovered[key] > 0]
    by_place = selectors.reclaim_ranked_by_place(needy, policy=policy_get()) if needy else {}
    warned: list[int] = []
    for key, place in places.items():
        forecast = forecasts[key]
        before = {w.pk for w in warned_by_place.get(key, [])}
        chosen = selectors.reclaim_choose(
            candidates=[c for c in by_place.get(key, []) if c.pk not in before],
            gpus=uncovered.get(key, 0),
        )
        stale = before - {w.pk for w in kept.get(key, [])}
        if not chosen and not stale:
            continue
        with transaction.atomic():
            if stale:
                lifecycle.clear_reclaim_risk(sorted(stale))
            # The place's warnings at once (one locking read, UPDATE and INSERT), in the
            # policy's order.
            noted = lifecycle.note_reclaim_risk_many(
                [candidate.pk for candidate in chosen], at=snapshot.taken_at
            )
            claimed = [candidate.pk for candidate in chosen if candidate.pk in noted]
            instances = Instance.objects.select_related(
                "organization", "region", "instance_type"
            ).in_bulk(claimed)
            entries = []
            for pk in claimed:
                instance = instances[pk]
                entries.append(
                    {
                        "action": "reclaim.risk_warned",
                        "organization": instance.organization,
                        "actor_kind": "system",
                        "actor_label": "reclaims",
                        "target": instance,
                        "detail": {
                            "forecast_internal_gpus": forecast,
                            "fleet": place.fleet,
                            "customer_gpus": place.customer,
                        },
                    }
                )
                warned.append(instance.pk)
            if entries:  # the place's warnings in one INSERT, their webhooks together
                signals.instances_reclaim_risk.send(
                    sender=Instance, instances=[instances[pk] for pk in claimed]
                )
                audit_record_many(entries)
    return warned


def risk_instances_clear_final() -> int:
    return Instance.objects.filter(
        state__in=list(FINAL_STATES), reclaim_risk_at__isnull=False
    ).update(reclaim_risk_at=None)
