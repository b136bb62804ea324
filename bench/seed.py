"""Data for the benchmarks: the catalog, and organizations of a given size.

An organization gets `n` instances in a mix of states spread over the last 12 months, each with
its timeline (InstanceEvent), the usage intervals billing derives from that timeline
(`portal.billing.metering.pieces`, the function `usage_sync_instance` uses, written in one bulk
insert instead of one sync per instance), 50 SSH keys, a few members and quotas, and one issued
invoice per past month (`invoice_issue`; 11 of them paid).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

from allauth.account.models import EmailAddress
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.billing import metering
from portal.billing.models import InstanceMeter, UsageInterval
from portal.billing.periods import Month
from portal.billing.services import invoice_issue, invoice_mark_paid
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.instances.models import FINAL_STATES, Instance, InstanceEvent, State
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role
from portal.orgs.services import organization_create
from portal.quotas.models import Kind
from portal.quotas.services import quota_limit_set
from portal.sshkeys.services import sshkey_add

TYPES = ["gpu_1x_h100", "gpu_8x_h100", "gpu_8x_a100", "gpu_1x_l40s"]
REGIONS = ["us-east-1", "eu-west-1"]
IMAGE = "ubuntu-22.04-cuda-12.4"
# One hundred instances' worth of states; an organization repeats this mix.
STATE_MIX = (
    [State.RUNNING] * 40
    + [State.STOPPED] * 15
    + [State.TERMINATED] * 25
    + [State.FAILED] * 5
    + [State.INTERRUPTED] * 5
    + [State.PROVISIONING] * 3
    + [State.PENDING] * 2
    + [State.STOPPING] * 2
    + [State.STARTING, State.REBOOTING, State.TERMINATING]
)
YEAR = timedelta(days=365)


@dataclass
class Seeded:
    organization: Organization
    owner: User
    membership: Membership
    instances: int
    keys: int
    invoices: int
    usage_intervals: int
    detail_instance_id: int


def seed_catalog() -> None:
    """seed_demo's catalog, plus an older price per type so that 12 months of usage are priced
    (and rating meets a price change on 2026-01-01)."""
    call_command("seed_demo", stdout=io.StringIO())
    start = datetime(2000, 1, 1, tzinfo=UTC)
    for itype in InstanceType.objects.all():
        current = itype.prices.order_by("valid_from").first()
        if current is None or current.valid_from <= start:
            continue
        Price.objects.create(
            instance_type=itype,
            valid_from=start,
            on_demand_hourly=current.on_demand_hourly * Decimal("1.1"),
            preemptible_hourly=current.preemptible_hourly * Decimal("1.1"),
            stopped_hourly=current.stopped_hourly,
        )


def user(email: str, name: str = "") -> User:
    person = User.objects.create(email=email, full_name=name or email.split("@")[0])
    EmailAddress.objects.create(user=person, email=email, verified=True, primary=True)
    return person


def public_key(comment: str) -> str:
    line = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return f"{line} {comment}"


def quotas(organization: Organization, limit: int, by: User) -> None:
    for region in Region.objects.filter(active=True):
        for gpu_model in GpuModel.objects.all():
            for kind in (Kind.ON_DEMAND, Kind.PREEMPTIBLE):
                quota_limit_set(
                    organization=organization,
                    region=region,
                    gpu_model=gpu_model,
                    kind=kind,
                    limit=limit,
                    reason="Benchmark organization",
                    changed_by=by,
                )


def organization(name: str, *, owner_email: str) -> tuple[Organization, User, Membership]:
    owner = user(owner_email, f"{name} owner")
    org = organization_create(user=owner, name=name)
    return org, owner, Membership.objects.get(organization=org, user=owner)


def _timeline(state: str, created: datetime, now: datetime) -> list[tuple[datetime, str]]:
    """(at, to_state) from launch to `state`, every step before `now`."""
    steps = [(created, State.PENDING)]
    if state == State.PENDING:
        return steps
    steps.append((created + timedelta(seconds=20), State.PROVISIONING))
    if state == State.PROVISIONING:
        return steps
    if state == State.FAILED:
        return [*steps, (created + timedelta(minutes=5), State.FAILED)]
    up = created + timedelta(minutes=2)
    steps.append((up, State.RUNNING))
    soon = now - timedelta(minutes=1)
    middle = up + (now - up) / 2
    lived = min(up + timedelta(days=3), soon)
    match state:
        case State.RUNNING:
            pass
        case State.REBOOTING:
            steps.append((soon, State.REBOOTING))
        case State.STOPPING:
            steps.append((soon, State.STOPPING))
        case State.STOPPED | State.STARTING:
            steps += [(middle, State.STOPPING), (middle + timedelta(minutes=1), State.STOPPED)]
            if state == State.STARTING:
                steps.append((soon, State.STARTING))
        case State.TERMINATING:
            steps.append((soon, State.TERMINATING))
        case State.TERMINATED:
            steps += [(lived, State.TERMINATING), (lived + timedelta(seconds=30), State.TERMINATED)]
        case State.INTERRUPTED:
            steps.append((lived, State.INTERRUPTED))
    return steps


def instances(org: Organization, owner: User, n: int, *, keys: list[dict]) -> int:
    """`n` instances with timelines and usage; returns the number of usage intervals."""
    now = timezone.now().replace(microsecond=0)
    types = {t.code: t for t in InstanceType.objects.select_related("gpu_model")}
    regions = {r.code: r for r in Region.objects.all()}
    image = Image.objects.get(code=IMAGE)
    prices = {
        code: [metering.PricePoint.of(p) for p in Price.objects.filter(instance_type=itype)]
        for code, itype in types.items()
    }
    rows, timelines = [], []
    for i in range(n):
        state = STATE_MIX[i % len(STATE_MIX)]
        itype = types[TYPES[i % len(TYPES)]]
        created = now - YEAR * (i + 1) / n
        steps = _timeline(state, created, now)
        preemptible = state == State.INTERRUPTED or i % 7 == 0
        running_since, running_seconds = None, 0
        for (at, to), nxt in zip(steps, [*steps[1:], None], strict=True):
            if to in (State.RUNNING, State.REBOOTING):
                if nxt is None or nxt[1] in (State.RUNNING, State.REBOOTING):
                    running_since = running_since or at
                else:
                    running_seconds += int((nxt[0] - at).total_seconds())
        alive = state not in FINAL_STATES
        has_machine = state not in (State.PENDING, State.FAILED)
        rows.append(
            Instance(
                organization=org,
                created_by=owner,
                name=f"{'node' if alive else 'old'}-{i:05d}",
                instance_type=itype,
                region=regions[REGIONS[i % len(REGIONS)]],
                image=image,
                preemptible=preemptible,
                gpus=itype.gpu_count,
                ssh_keys=keys,
                backend_id=f"m-{org.slug}-{i:05d}" if has_machine else "",
                state=state,
                state_reason="The backend reported a failure." if state == State.FAILED else "",
                state_changed_at=steps[-1][0],
                ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" if alive and has_machine else None,
                created_at=created,
                launched_at=steps[1][0] if has_machine else None,
                running_since=running_since if state in (State.RUNNING, State.REBOOTING) else None,
                running_seconds=running_seconds,
                terminated_at=steps[-1][0] if not alive else None,
                quota_released_at=steps[-1][0] if not alive else None,
                synced_at=now if alive else None,
            )
        )
        timelines.append(steps)
    with transaction.atomic():
        Instance.objects.bulk_create(rows, batch_size=1000)
        events = []
        for instance, steps in zip(rows, timelines, strict=True):
            previous = ""
            for at, to in steps:
                events.append(
                    InstanceEvent(
                        instance=instance,
                        at=at,
                        from_state=previous,
                        to_state=to,
                        message="Launched." if not previous else "",
                        actor=owner if not previous else None,
                    )
                )
                previous = to
        InstanceEvent.objects.bulk_create(events, batch_size=5000)
        intervals, meters = [], []
        last_event = {}
        for event in events:
            last_event[event.instance_id] = max(last_event.get(event.instance_id, 0), event.pk)
        for instance, steps in zip(rows, timelines, strict=True):
            for piece in metering.pieces(
                [metering.Transition(at=at, to_state=to) for at, to in steps],
                preemptible=instance.preemptible,
                prices=prices[instance.instance_type.code],
                now=now,
                default_currency=settings.CURRENCY,
            ):
                intervals.append(
                    UsageInterval(
                        instance=instance,
                        organization=org,
                        instance_type=instance.instance_type,
                        region=instance.region,
                        gpus=instance.gpus,
                        kind=piece.kind,
                        start=piece.start,
                        end=piece.end,
                        price_id=piece.price_id,
                        unit_price=piece.unit_price,
                        currency=piece.currency,
                    )
                )
            meters.append(
                InstanceMeter(
                    instance=instance, last_event_id=last_event[instance.pk], synced_at=now
                )
            )
        UsageInterval.objects.bulk_create(intervals, batch_size=5000)
        InstanceMeter.objects.bulk_create(meters, batch_size=5000)
    return len(intervals)


def invoices(org: Organization, *, by: User, months: int = 12) -> int:
    """One issued invoice per past month, all paid but the last. Usage is already metered in
    full, so the per-month re-sync of `invoice_issue` is skipped (it would redo the same rows)."""
    month = Month.of(timezone.now())
    past = []
    for _ in range(months):
        month = Month(month.year - (month.month == 1), (month.month - 2) % 12 + 1)
        past.append(month)
    issued = []
    with mock.patch("portal.billing.services.invoices.usage_sync_organization"):
        for month in reversed(past):
            issued.append(invoice_issue(organization=org, month=month, issued_by=by))
    for invoice in issued[:-1]:
        invoice_mark_paid(invoice=invoice, by=by, reference=f"bench-{invoice.number}")
    return len(issued)


def organization_of_size(name: str, n: int, *, staff: User) -> Seeded:
    slug_hint = name.lower().replace(" ", "-")
    org, owner, membership = organization(name, owner_email=f"owner@{slug_hint}.bench")
    for role in (Role.ADMIN, Role.MEMBER, Role.MEMBER, Role.BILLING, Role.VIEWER):
        colleague = user(f"{role}-{uuid.uuid4().hex[:6]}@{slug_hint}.bench")
        Membership.objects.create(organization=org, user=colleague, role=role)
    quotas(org, 64, staff)
    keys = [
        sshkey_add(
            membership=membership,
            name=f"key-{k:02d}",
            public_key=public_key(f"person{k}@{slug_hint}"),
            shared=True,
        )
        for k in range(50)
    ]
    launched = [
        {"name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key} for k in keys[:2]
    ]
    intervals = instances(org, owner, n, keys=launched)
    count = invoices(org, by=staff)
    detail = (
        Instance.objects.filter(organization=org, state=State.RUNNING)
        .order_by("created_at")
        .values_list("pk", flat=True)
        .first()
    )
    return Seeded(
        organization=org,
        owner=owner,
        membership=membership,
        instances=n,
        keys=len(keys),
        invoices=count,
        usage_intervals=intervals,
        detail_instance_id=detail,
    )
