"""Properties of metering, over many generated timelines.

1. The pure pieces never overlap, never cross a midnight or a price change, and cost exactly
   what an independent second-by-second reading of the timeline says.
2. In the database, however often and whenever the sync runs while events arrive (in any order,
   some backdated), the intervals end up the same as one sync at the end: no second twice.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.billing import metering
from portal.billing.models import UsageInterval
from portal.instances.models import InstanceEvent
from tests.billing.conftest import sync

STATES = [
    "pending",
    "provisioning",
    "running",
    "stopping",
    "stopped",
    "starting",
    "rebooting",
    "terminating",
    "terminated",
    "failed",
    "interrupted",
]
BASE = datetime(2026, 3, 30, 20, 0, tzinfo=UTC)

transitions = st.lists(
    st.tuples(st.integers(min_value=0, max_value=12 * 3600), st.sampled_from(STATES)),
    min_size=1,
    max_size=12,
)
price_points = st.lists(
    st.tuples(
        st.integers(min_value=-3600, max_value=3 * 86400),
        st.decimals(min_value="0.01", max_value="40", places=4),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda p: p[0],
)


def build(steps, price_list):
    moment = BASE
    timeline = []
    for delta, state in steps:
        moment += timedelta(seconds=delta)
        timeline.append(metering.Transition(at=moment, to_state=state))
    prices = [
        metering.PricePoint(
            id=index,
            valid_from=BASE + timedelta(seconds=offset),
            on_demand=value,
            preemptible=value / 2,
            stopped=Decimal("0.02"),
            currency="USD",
        )
        for index, (offset, value) in enumerate(sorted(price_list))
    ]
    return timeline, prices


def independent_cost(timeline, prices, horizon):
    """Walk the timeline state by state, and each state's stretch price change by price change."""
    cost = Decimal(0)
    for index, transition in enumerate(timeline):
        if transition.to_state in metering.FINAL_STATES:
            break
        start = transition.at
        end = timeline[index + 1].at if index + 1 < len(timeline) else horizon
        kind = metering.billed_kind(transition.to_state, preemptible=False)
        if kind is None or end <= start:
            continue
        bounds = sorted({start, end, *(p.valid_from for p in prices if start < p.valid_from < end)})
        for a, b in zip(bounds, bounds[1:], strict=False):
            price = metering.price_at(prices, a)
            cost += Decimal(int((b - a).total_seconds())) * metering.unit_price(price, kind)
    return cost


@settings(max_examples=300, deadline=None)
@given(transitions, price_points, st.integers(min_value=0, max_value=4 * 86400))
def test_pieces_partition_the_billed_time_and_cost_what_the_timeline_says(steps, prices_, later):
    timeline, prices = build(steps, prices_)
    now = timeline[-1].at + timedelta(seconds=later)
    pieces = metering.pieces(
        timeline, preemptible=False, prices=prices, now=now, default_currency="USD"
    )
    # Sorted, not overlapping, only the last one open.
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.end is not None and before.end <= after.start
    for piece in pieces:
        end = piece.end or now
        assert piece.start < end or piece.end is None
        # Never across a midnight or a price change.
        assert piece.start.date() == (end - timedelta(microseconds=1)).date() or end == piece.start
        assert not [p for p in prices if piece.start < p.valid_from < end]
        assert piece.unit_price == metering.unit_price(
            metering.price_at(prices, piece.start), piece.kind
        )
    cost = sum(
        (
            Decimal(int(((p.end or now) - p.start).total_seconds())) * p.unit_price
            for p in pieces
            if (p.end or now) > p.start
        ),
        Decimal(0),
    )
    # Whole seconds: the timeline's own times here are whole seconds already.
    assert cost == independent_cost(timeline, prices, now)


def test_syncing_at_any_moment_while_events_arrive_never_bills_a_second_twice(
    team, make_instance, clock
):
    randomness = random.Random(20260315)
    for scenario in range(40):
        instance = make_instance(team.organization, name=f"prop-{scenario}")
        moment = BASE
        events = []
        for _ in range(randomness.randint(1, 10)):
            moment += timedelta(seconds=randomness.randint(0, 9 * 3600))
            events.append((moment, randomness.choice(STATES)))
        # Events are recorded in an order of their own: some late, stamped in the past.
        order = list(range(len(events)))
        randomness.shuffle(order)
        recorded_at = BASE
        for index in order:
            at, state = events[index]
            InstanceEvent.objects.create(instance=instance, at=at, to_state=state)
            recorded_at = max(recorded_at, at) + timedelta(seconds=randomness.randint(0, 7200))
            clock.moment = recorded_at
            if randomness.random() < 0.7:
                sync(instance)
            if randomness.random() < 0.2:
                sync(instance)  # a task that runs twice
        clock.moment = recorded_at + timedelta(hours=1)
        sync(instance)
        incremental = list(
            UsageInterval.objects.filter(instance=instance)
            .order_by("start")
            .values_list("start", "end", "kind", "unit_price")
        )
        UsageInterval.objects.filter(instance=instance).delete()
        sync(instance)  # from scratch, knowing everything
        fresh = list(
            UsageInterval.objects.filter(instance=instance)
            .order_by("start")
            .values_list("start", "end", "kind", "unit_price")
        )
        assert incremental == fresh, scenario
        for (_, end, *_), (start, *_) in zip(fresh, fresh[1:], strict=False):
            assert end is not None and end <= start
