"""A day of the operator's internal demand, run fast on the real simulator (slow).

The simulator's daily curve (trough, peak, seeded bursts) runs a day in DAY_SECONDS real
seconds. Customers keep the spare capacity busy with preemptible instances (various bids and
sizes) beside on-demand ones and a reserved one; the portal refreshes capacity as its periodic
task does, turns each shortfall into a reclaim order and ends the victims. At the end: every
order was met by its deadline with full notice, no on-demand or reserved machine was reclaimed,
the victims of each order follow the policy's order, and every victim had its e-mail, its
webhook and its metadata notice before it ended. Prints the fill rate and the order count.
"""

import json
import random
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.instances import services as instance_services
from portal.instances import sync, tasks
from portal.instances.models import FINAL_STATES, Instance, State
from portal.lib.errors import ApplicationError
from portal.notifications.models import Notification
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimVictim
from portal.reservations.services import reservation_create
from portal.webhooks.models import EventType
from portal.webhooks.services import webhook_endpoint_create
from tests.instances.conftest import set_quota
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow

DAY_SECONDS = 75  # one simulated day in 75 seconds
NOTICE = 5  # seconds of notice (a simulated 80 minutes): room for a busy machine
SEED = 15


def test_a_simulated_day_every_order_met_with_full_notice_and_by_policy(
    simulator, team, catalog, ssh_key, staff, eager, settings, django_capture_on_commit_callbacks
):
    settings.RECLAIM_MIN_NOTICE_SECONDS = NOTICE
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the local webhook receiver
    settings.INSTANCE_CAPACITY_MAX_AGE = 3600
    from portal.reclaims.models import ReclaimPolicy

    ReclaimPolicy.objects.update_or_create(pk=1, defaults={"notice_seconds": NOTICE})
    org = team.organization
    set_quota(org, catalog.us_east, catalog.h100, on_demand=16, preemptible=64)
    rng = random.Random(SEED)
    counter = iter(range(100_000))

    def step(callable_, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return callable_(*args, **kwargs)

    def launch(*, preemptible, itype, bid=None):
        try:
            instance = step(
                instance_services.instance_launch,
                membership=team.member,
                name=f"{'spot' if preemptible else 'od'}-{next(counter)}",
                instance_type=itype.code,
                region=catalog.us_east.code,
                image=catalog.ubuntu.code,
                ssh_key_ids=[ssh_key.pk],
                preemptible=preemptible,
                idempotency_key=None,
            )
        except ApplicationError:
            return None  # no capacity or no quota right now: the customer tries later
        if bid is not None:  # the customer's bid (max price per hour)
            Instance.objects.filter(pk=instance.pk).update(max_price_per_hour=bid)
        return instance

    with Receiver() as hooks:
        webhook_endpoint_create(
            membership=team.owner,
            url=hooks.url,
            event_types=[EventType.INSTANCE_INTERRUPTION_NOTICE],
        )
        step(sync.capacity_refresh)
        # Reserved: 8 GPUs held for the organization, used by an on-demand 8x machine.
        step(
            reservation_create,
            organization=org,
            region=catalog.us_east,
            gpu_model=catalog.h100,
            gpus=8,
            start=timezone.now() - timedelta(minutes=1),
            end=timezone.now() + timedelta(days=1),
            price_per_gpu_hour=Decimal("1.50"),
            by=staff,
        )
        reserved = launch(preemptible=False, itype=catalog.h100_8x)
        on_demand = [launch(preemptible=False, itype=catalog.h100_1x) for _ in range(3)]
        assert reserved is not None and all(on_demand)

        simulator.control.set_demand(
            seed=SEED,
            day_seconds=DAY_SECONDS,
            start_hour=0,
            curves=[
                {
                    "region": "us-east-1",
                    "gpu_model": "H100 80GB",
                    "trough": 0.25,
                    "peak": 0.8,
                    "peak_hour": 14,
                    "bursts_per_day": 8,
                    "burst_size": 0.15,
                    "burst_minutes": 45,
                }
            ],
        )
        metadata_seen: dict[int, float] = {}  # instance id -> when its metadata had the time
        samples = []  # (customer GPUs, fleet - internal GPUs)
        started = time.monotonic()
        while time.monotonic() - started < DAY_SECONDS:
            # Customers: fill what is spare with preemptible instances, bids of their own.
            for _ in range(rng.randint(1, 3)):
                itype = catalog.h100_8x if rng.random() < 0.2 else catalog.h100_1x
                launch(
                    preemptible=True,
                    itype=itype,
                    bid=Decimal(rng.choice(["0.80", "1.00", "1.20", "1.50"]))
                    * (8 if itype == catalog.h100_8x else 1)
                    if rng.random() < 0.8
                    else None,
                )
            # The periodic capacity refresh: shortfalls become orders, victims get notice.
            step(sync.capacity_refresh)
            entry = next(c for c in simulator.control.demand()["now"] if c["region"] == "us-east-1")
            held = sum(
                m["gpu_count"]
                for m in simulator.control.state()["machines"]
                if m["region"] == "us-east-1"
                and m["state"] not in ("stopped",)
                and m["state"] not in ("terminated", "failed", "interrupted")
            )
            samples.append((held, entry["fleet_gpus"] - entry["internal_gpus"]))
            # The machines' own processes poll their metadata during the notice.
            for instance in Instance.objects.filter(reclaim_at__isnull=False).exclude(
                state__in=list(FINAL_STATES)
            ):
                if instance.pk not in metadata_seen:
                    notice = simulator.control.interruption(instance.backend_id)
                    if notice is not None:
                        assert notice["time"].startswith(f"{instance.reclaim_at:%Y-%m-%dT%H:%M:%S}")
                        metadata_seen[instance.pk] = time.time()
            # The polls the tasks schedule at each victim's end.
            for instance in Instance.objects.filter(reclaim_at__lte=timezone.now()).exclude(
                state__in=list(FINAL_STATES)
            ):
                step(tasks.instance_poll.apply, args=[instance.pk])

        # Let the last notices run out.
        simulator.control.set_demand(curves=[])
        deadline = time.monotonic() + NOTICE + 10
        while ReclaimOrder.objects.filter(state=OrderState.OPEN).exists():
            assert time.monotonic() < deadline, "orders still open after their notice"
            for instance in Instance.objects.filter(reclaim_at__isnull=False).exclude(
                state__in=list(FINAL_STATES)
            ):
                step(tasks.instance_poll.apply, args=[instance.pk])
            time.sleep(0.3)
        received = list(hooks.requests)

    orders = list(ReclaimOrder.objects.exclude(state=OrderState.NOTHING))
    victims = list(ReclaimVictim.objects.select_related("instance", "order"))
    assert orders, "the day's demand made no reclaim order"
    assert victims

    # Every order met by its deadline, with full notice.
    for order in orders:
        assert order.state == OrderState.DONE
        assert order.feasible
        assert order.met is True, order.summary
    for victim in victims:
        assert victim.ended_at <= victim.order.deadline + timedelta(seconds=2)
        assert victim.ended_at - victim.noticed_at >= timedelta(seconds=NOTICE)
        assert victim.instance.state == State.INTERRUPTED

    # Never an on-demand or reserved machine.
    assert all(v.instance.preemptible for v in victims)
    for instance in [reserved, *on_demand]:
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
        assert instance.reclaim_at is None

    # The policy's order within each order: lowest price first, then the newest.
    for order in orders:
        ranked = sorted(order.victims.all(), key=lambda v: v.rank)
        keys = [(v.price_per_hour, -v.launched_at.timestamp()) for v in ranked]
        assert keys == sorted(keys), f"RO-{order.pk} out of policy order"

    # Every victim had its e-mail, its webhook and its metadata notice before it ended.
    mails = {
        n.params["instance_id"]: n.sent_at
        for n in Notification.objects.filter(kind="instance_reclaim_notice")
    }
    hooks_at = {}
    for request in received:
        body = json.loads(request.body)
        hooks_at.setdefault(body["data"]["instance"]["id"], request.at)
    for victim in victims:
        end = victim.reclaim_at.timestamp()
        pk = victim.instance_id
        assert mails.get(pk) is not None and mails[pk].timestamp() < end, f"{pk}: e-mail"
        assert pk in hooks_at and hooks_at[pk] < end, f"{pk}: webhook"
        assert pk in metadata_seen and metadata_seen[pk] < end, f"{pk}: metadata"

    sold = sum(s[0] for s in samples)
    not_internal = sum(s[1] for s in samples)
    fill_rate = sold / not_internal if not_internal else 0.0
    print(
        f"\nsimulated day: fill rate {fill_rate:.1%} (customer GPU-samples {sold} over "
        f"{not_internal} not used internally), {len(orders)} reclaim orders, "
        f"{len(victims)} instances reclaimed, "
        f"{ReclaimOrder.objects.filter(state=OrderState.NOTHING).count()} shortfalls with "
        "nothing preemptible to take"
    )
