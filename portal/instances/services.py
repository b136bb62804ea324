"""What customers (and staff) do to instances. No backend call here: tasks do that.

Each service checks the rules, applies the transition through `lifecycle`, and enqueues the
task that talks to the backend with `transaction.on_commit`, so a task never sees a row that
was rolled back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.instances import lifecycle, tasks
from portal.instances.capacity import free_capacity
from portal.instances.models import (
    FINAL_STATES,
    NAME_HELP,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    Instance,
    InstanceEvent,
    State,
)
from portal.instances.reserved import (
    LaunchReservation,
    launch_reservation,
    reservation_may_apply,
)
from portal.instances.signals import instance_bid_changed
from portal.lib import logcontext, metrics
from portal.lib.errors import ApplicationError
from portal.lib.money import format_price
from portal.market.selectors import preemptible_price_now
from portal.market.services import check_currency, parse_price
from portal.orgs.models import Membership, Organization
from portal.orgs.standing import launch_hold_flags, organization_launch_hold
from portal.quotas.services import quota_reserve
from portal.sshkeys.selectors import sshkey_list_for_launch
from portal.volumes.services import volumes_attach, volumes_for_launch
from portal.web.sql import table

logger = logging.getLogger(__name__)


def _check_may_manage(membership: Membership) -> None:
    if not membership.can("instances.manage"):
        raise ApplicationError(
            "Your role in this organization cannot launch or change instances.", code="forbidden"
        )


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ApplicationError("Give the instance a name.", field="name", code="required")
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"A name can be at most {NAME_MAX_LENGTH} characters; this one has {len(name)}.",
            field="name",
        )
    if not NAME_PATTERN.match(name):
        raise ApplicationError(f"That name cannot be used: {NAME_HELP}", field="name")
    return name


def _code(model, value: Any) -> str:
    return value.code if isinstance(value, model) else str(value or "").strip()


def _lookup(model, value: Any, *, field: str, what: str, queryset=None):
    code = _code(model, value)
    if not code:
        raise ApplicationError(f"Choose {what}.", field=field, code="required")
    found = (model.objects if queryset is None else queryset).filter(code=code).first()
    if found is None:
        raise ApplicationError(f"There is no {what} “{code}”.", field=field, code="unknown")
    if not found.active:
        raise ApplicationError(
            f"{found.name} is no longer available; choose another {what}.",
            field=field,
            code="inactive",
        )
    return found


def _instance_types_for_launch(region_code: str):
    """Instance types with their GPU model and, in the same query, whether the type is offered
    in the region and has a price in force (three queries otherwise, on every launch)."""
    return InstanceType.objects.select_related("gpu_model").annotate(
        offered_in_region=Exists(
            InstanceType.regions.through.objects.filter(
                instancetype_id=OuterRef("pk"), region__code=region_code
            )
        ),
        priced=Exists(Price.objects.in_force().filter(instance_type_id=OuterRef("pk"))),
    )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise ApplicationError(
            "The form was damaged; reload the page and try again.", code="bad_token"
        ) from exc


def _check_capacity(*, region: Region, instance_type: InstanceType) -> None:
    free = free_capacity().get(region.code, instance_type.code)
    if free is not None and free < 1:
        raise ApplicationError(
            f"There is no free capacity for {instance_type.name} in {region.name} right now. "
            "Try another region or instance type, or try again later.",
            field="instance_type",
            code="no_capacity",
        )


def _check_bid(
    value: Any, *, currency: Any, preemptible: bool, region: Region, instance_type: InstanceType
) -> Decimal | None:
    """A preemptible launch's max price per hour (None: the on-demand price), refused below
    the spot price in force, with that price in the message."""
    if value in (None, ""):
        if currency not in (None, ""):
            check_currency(currency, field="currency")
        return None
    if not preemptible:
        raise ApplicationError(
            "A max price applies to preemptible instances only; leave it empty or choose "
            "preemptible.",
            field="max_price_per_hour",
            code="not_preemptible",
        )
    check_currency(currency, field="currency")
    bid = parse_price(value, field="max_price_per_hour", what="The max price per hour")
    current = preemptible_price_now(region=region, instance_type=instance_type)
    if current is not None and bid < current:
        raise ApplicationError(
            f"The spot price of {instance_type.name} in {region.code} is now "
            f"{format_price(current, settings.CURRENCY)}, above your max price of "
            f"{format_price(bid, settings.CURRENCY)}. Raise your max "
            "price to at least the current price, or try again when it falls.",
            field="max_price_per_hour",
            code="bid_below_price",
        )
    return bid


def _columns(model, alias: str) -> tuple[list[str], str]:
    fields = [f.attname for f in model._meta.concrete_fields]
    return fields, ", ".join(f'{alias}."{model._meta.get_field(f).column}"' for f in fields)


def _offer_in_one_query(
    type_code: str, region_code: str, image_code: str
) -> tuple[InstanceType, Region, Image] | None:
    """The common case of `offer_for_launch` in one query: the type (with its GPU model)
    active, offered in the active region and priced, and the image active. None when any of
    that is not so: the caller then looks at each, to say which."""
    type_fields, type_columns = _columns(InstanceType, "t")
    gpu_fields, gpu_columns = _columns(GpuModel, "g")
    region_fields, region_columns = _columns(Region, "r")
    image_fields, image_columns = _columns(Image, "i")

    offered = table(InstanceType.regions.through)
    # Table and column names from the models; every value is a parameter.
    sql = (
        f"SELECT {type_columns}, {gpu_columns}, {region_columns}, {image_columns} "  # noqa: S608
        f"FROM {table(InstanceType)} t "
        f"JOIN {table(GpuModel)} g ON g.id = t.gpu_model_id "
        f"JOIN {offered} o ON o.instancetype_id = t.id "
        f"JOIN {table(Region)} r ON r.id = o.region_id "
        f"JOIN {table(Image)} i ON i.code = %s AND i.active "
        "WHERE t.code = %s AND t.active AND r.code = %s AND r.active "
        f"AND EXISTS (SELECT 1 FROM {table(Price)} p "
        "WHERE p.instance_type_id = t.id AND p.valid_from <= %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [image_code, type_code, region_code, timezone.now()])
        row = cursor.fetchone()
    if row is None:
        return None
    ends = list(accumulate(map(len, (type_fields, gpu_fields, region_fields, image_fields))))
    alias = connection.alias
    itype = InstanceType.from_db(alias, type_fields, row[: ends[0]])
    itype.gpu_model = GpuModel.from_db(alias, gpu_fields, row[ends[0] : ends[1]])
    itype.offered_in_region = itype.priced = True  # type: ignore[attr-defined]
    place = Region.from_db(alias, region_fields, row[ends[1] : ends[2]])
    os_image = Image.from_db(alias, image_fields, row[ends[2] :])
    return itype, place, os_image


def offer_for_launch(
    *, instance_type: InstanceType | str, region: Region | str, image: Image | str
) -> tuple[InstanceType, Region, Image]:
    """The instance type, region and image of a launch (an instance's or a cluster's), the
    type offered and priced in the region; ApplicationError for each that is not."""
    codes = (_code(InstanceType, instance_type), _code(Region, region), _code(Image, image))
    if all(codes) and (found := _offer_in_one_query(*codes)) is not None:
        return found
    itype = _lookup(
        InstanceType,
        instance_type,
        field="instance_type",
        what="instance type",
        queryset=_instance_types_for_launch(_code(Region, region)),
    )
    place = _lookup(Region, region, field="region", what="region")
    os_image = _lookup(Image, image, field="image", what="image")
    if not itype.offered_in_region:
        raise ApplicationError(
            f"{itype.name} is not offered in {place.name}; choose another region or type.",
            field="region",
            code="not_offered",
        )
    if not itype.priced:
        raise ApplicationError(
            f"{itype.name} has no price yet and cannot be launched.",
            field="instance_type",
            code="no_price",
        )
    return itype, place, os_image


def _name_taken(name: str) -> ApplicationError:
    return ApplicationError(
        f"You already have an instance named “{name}”. Names are unique until an instance ends.",
        field="name",
        code="name_taken",
    )


def _check_no_hold(organization: Organization, may_hold: dict[str, bool] | None = None) -> None:
    if hold := organization_launch_hold(organization, may_hold):
        raise ApplicationError(hold.reason, code=hold.code)


@dataclass(frozen=True, slots=True)
class _LaunchFacts:
    may_hold: dict[str, bool]  # by kind of hold: whether it may hold (then it is asked)
    name_taken: bool  # a live instance of the organization has the name
    may_reserve: bool  # a reservation of the organization is in force there


def _launch_facts(
    organization: Organization,
    *,
    name: str,
    itype: InstanceType,
    place: Region,
    preemptible: bool,
) -> _LaunchFacts:
    """What a launch reads about its organization, in one query: whether each kind of launch
    hold may hold it (`portal.orgs.standing`), whether the name is taken, and whether a
    reservation there may cover the launch. Plain SQL: Django's ORM took longer to build the
    five EXISTS than PostgreSQL to answer them (~2 ms of a launch's CPU)."""
    holds = launch_hold_flags(organization.pk)
    taken_sql, taken_params = _name_taken_sql(organization.pk, name)
    reserve_sql, reserve_params = reservation_may_apply(
        organization.pk, region=place, instance_type=itype, preemptible=bool(preemptible)
    )
    parts = [*holds.values(), (taken_sql, taken_params), (reserve_sql, reserve_params)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(f"({sql})" for sql, _ in parts),
            [param for _, params in parts for param in params],
        )
        *flags, name_taken, may_reserve = cursor.fetchone()
    return _LaunchFacts(
        may_hold=dict(zip(holds, flags, strict=True)),
        name_taken=name_taken,
        may_reserve=may_reserve,
    )


def _name_taken_sql(organization_id: int, name: str) -> tuple[str, list[Any]]:
    """Whether a live instance of the organization has the name (the partial unique index
    `instance_name_unique_while_alive` answers it)."""
    final = ", ".join(["%s"] * len(FINAL_STATES))
    return (
        f"EXISTS (SELECT 1 FROM {table(Instance)} WHERE organization_id = %s AND name = %s "  # noqa: S608
        f"AND NOT state IN ({final}))",
        [organization_id, name, *(str(state) for state in sorted(FINAL_STATES))],
    )


def instance_launch(
    *,
    membership: Membership,
    name: str,
    instance_type: InstanceType | str,
    region: Region | str,
    image: Image | str,
    ssh_key_ids: Iterable[int | str],
    preemptible: bool,
    idempotency_key: uuid.UUID | str | None,
    max_price_per_hour: Any = None,
    currency: Any = None,
    volume_ids: Iterable[int | str] = (),
) -> Instance:
    """Record a new instance, reserve its quota and enqueue its provisioning.

    The same `idempotency_key` (the launch form's hidden token) returns the instance the first
    submit made instead of a second one. Raises ApplicationError for every bad input, with
    nothing written. `volume_ids`: the organization's volumes to attach (same region; see
    `portal.volumes.services.volumes_for_launch`), mounted at /data/<name>.
    """
    _check_may_manage(membership)
    organization = membership.organization
    try:
        key = _uuid_or_none(idempotency_key)
        if key is not None:
            existing = Instance.objects.filter(
                organization=organization, idempotency_key=key
            ).first()
            if existing is not None:
                _check_no_hold(organization)
                return existing
        name = _clean_name(name)
        itype, place, os_image = offer_for_launch(
            instance_type=instance_type, region=region, image=image
        )
    except ApplicationError:
        _check_no_hold(organization)  # a hold is what a held organization hears first
        raise
    facts = _launch_facts(
        organization, name=name, itype=itype, place=place, preemptible=preemptible
    )
    if any(facts.may_hold.values()):
        _check_no_hold(organization, facts.may_hold)
    bid = _check_bid(
        max_price_per_hour,
        currency=currency,
        preemptible=bool(preemptible),
        region=place,
        instance_type=itype,
    )
    keys = sshkey_list_for_launch(membership=membership, ids=list(ssh_key_ids or []))
    # A reservation in force adds its GPUs to the quota, and a launch it covers is never
    # refused for capacity: the backend holds those GPUs for the organization.
    reserved = (
        launch_reservation(
            organization=organization, region=place, instance_type=itype, preemptible=preemptible
        )
        if facts.may_reserve
        else LaunchReservation()
    )
    if not reserved.covers:
        _check_capacity(region=place, instance_type=itype)

    try:
        with transaction.atomic():
            if facts.name_taken:  # a launch of the name since then: the unique index refuses it
                raise _name_taken(name)
            volumes = volumes_for_launch(
                organization=organization, region=place, volume_ids=list(volume_ids or [])
            )
            quota_reserve(
                organization=organization,
                region=place,
                gpu_model=itype.gpu_model,
                gpus=itype.gpu_count,
                preemptible=bool(preemptible),
                allowance=reserved.gpus,
            )
            instance = Instance.objects.create(
                organization=organization,
                created_by=membership.user,
                name=name,
                instance_type=itype,
                region=place,
                image=os_image,
                preemptible=bool(preemptible),
                max_price_per_hour=bid,
                gpus=itype.gpu_count,
                ssh_keys=[
                    {"name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key}
                    for k in keys
                ],
                idempotency_key=key,
                log_context=logcontext.captured(),
            )
            volumes_attach(volumes=volumes, instance_id=instance.pk, instance_name=instance.name)
            transaction.on_commit(metrics.LAUNCHES.labels(region=place.code).inc)
            InstanceEvent.objects.create(
                instance=instance,
                at=instance.created_at,
                to_state=State.PENDING,
                message=f"Launched {itype.name} in {place.code}"
                + (" (preemptible)." if preemptible else "."),
                actor=membership.user,
            )
            audit_record(
                action="instance.launched",
                organization=organization,
                actor=membership,
                target=instance,
                detail={
                    "instance_type": itype.code,
                    "region": place.code,
                    "gpus": instance.gpus,
                    "preemptible": instance.preemptible,
                    **({"max_price_per_hour": str(bid)} if bid is not None else {}),
                    **({"volumes": [v.name for v in volumes]} if volumes else {}),
                },
            )
            tasks.enqueue_provision(instance.pk)
    except (ApplicationError, IntegrityError) as error:
        # A concurrent submit of the same form may have got there first (it held the quota
        # row; we then saw its instance's name, its GPUs, or its key): that is our instance.
        if key is not None:
            ours = Instance.objects.filter(organization=organization, idempotency_key=key)
            if ours.exists():
                return ours.get()
        if isinstance(error, IntegrityError):
            raise _name_taken(name) from None
        raise
    logger.info(
        "instance %s %s launched: %s in %s", instance.pk, instance.name, itype.code, place.code
    )
    return instance


# Customer actions. Each is allowed exactly where lifecycle.TRANSITIONS says.

_REQUESTS: dict[str, tuple[Callable[..., lifecycle.Change | None], Callable[[int], None]]] = {
    "stop": (lifecycle.request_stop, tasks.enqueue_stop),
    "start": (lifecycle.request_start, tasks.enqueue_start),
    "reboot": (lifecycle.request_reboot, tasks.enqueue_reboot),
    "terminate": (lifecycle.request_terminate, tasks.enqueue_terminate),
}


def _act(
    action: str, *, instance: Instance, actor: User | None, message: str = "", **staff: Any
) -> Instance:
    """`staff`: `reason` and `actor_kind` of an operator's termination (request_terminate)."""
    request, enqueue = _REQUESTS[action]
    with transaction.atomic():
        try:
            change = request(
                instance.pk,
                actor=actor,
                message=message,
                **{k: v for k, v in staff.items() if k != "actor_label"},
            )
        except lifecycle.IllegalTransition:
            instance.refresh_from_db()
            raise lifecycle.IllegalTransition(lifecycle.refusal(instance, action)) from None
        if change is not None:  # None: asked twice; the first request's task is on its way
            audit_record(
                action="instance.action",
                organization=change.instance.organization,
                actor=actor,
                actor_kind=staff.get("actor_kind"),
                actor_label=staff.get("actor_label"),
                target=change.instance,
                detail={
                    "action": action,
                    **({"reason": staff["reason"]} if "reason" in staff else {}),
                },
            )
            enqueue(instance.pk)
    instance.refresh_from_db()
    return instance


def _check_member_instance(membership: Membership, instance: Instance) -> None:
    _check_may_manage(membership)
    if instance.organization_id != membership.organization_id:
        raise ApplicationError("No such instance.", code="not_found")
    if instance.in_cluster:
        raise ApplicationError(
            f"{instance.name} is a node of a cluster: stop, start or terminate the cluster "
            "as a whole.",
            code="cluster_node",
        )


def instance_stop(*, membership: Membership, instance: Instance) -> Instance:
    _check_member_instance(membership, instance)
    return _act("stop", instance=instance, actor=membership.user)


def instance_start(*, membership: Membership, instance: Instance) -> Instance:
    _check_member_instance(membership, instance)
    return _act("start", instance=instance, actor=membership.user)


def instance_reboot(*, membership: Membership, instance: Instance) -> Instance:
    _check_member_instance(membership, instance)
    return _act("reboot", instance=instance, actor=membership.user)


def instance_terminate(
    *, membership: Membership, instance: Instance, confirm_name: str | None = None
) -> Instance:
    """Terminate; with `confirm_name` (the console's typed confirmation) it must match."""
    _check_member_instance(membership, instance)
    if confirm_name is not None and confirm_name.strip() != instance.name:
        raise ApplicationError(
            f"Type the instance's name, {instance.name}, to confirm.",
            field="confirm_name",
            code="confirmation",
        )
    return _act("terminate", instance=instance, actor=membership.user)


def instance_action(
    *, membership: Membership, instance: Instance, action: str, confirm_name: str | None = None
) -> Instance:
    if action == "terminate":
        return instance_terminate(
            membership=membership, instance=instance, confirm_name=confirm_name
        )
    services = {"stop": instance_stop, "start": instance_start, "reboot": instance_reboot}
    if action not in services:
        raise ApplicationError(f"There is no action “{action}”.", code="unknown_action")
    return services[action](membership=membership, instance=instance)


# Operator actions (Django admin).


def instance_terminate_by_staff(*, user: User, instance: Instance, reason: str = "") -> Instance:
    """Any instance, by operator staff. The reason is shown to the customer on the instance page."""
    reason = " ".join((reason or "").split())[:400] or "No reason was given."
    return _act(
        "terminate",
        instance=instance,
        actor=user,
        message="Terminated by the operator's staff.",
        reason=f"Terminated by the operator: {reason}",
        actor_kind="staff",
    )


def instance_stop_by_staff(*, user: User, instance: Instance, message: str) -> Instance:
    """Stop any instance, by operator staff (an organization's suspension stops its instances)."""
    return _act("stop", instance=instance, actor=user, message=message, actor_kind="staff")


def instance_stop_by_system(*, instance: Instance, message: str, label: str) -> Instance:
    """Stop an instance with no person behind it (a budget's hard limit); `label` names the
    rule in the audit log (portal/audit/actors.py gives it words)."""
    return _act("stop", instance=instance, actor=None, message=message, actor_label=label)


def instance_resync(*, instance: Instance) -> None:
    """Ask the backend again what the machine is doing and apply it (a task does it)."""
    transaction.on_commit(lambda: tasks.instance_resync.delay(instance.pk))


def instance_bid_change(
    *, membership: Membership, instance: Instance, max_price_per_hour: Any, currency: Any = None
) -> Instance:
    """Change a preemptible instance's max price per hour (its bid), at least the spot price
    in force. Raised during a price reclaim's notice, it cancels that reclaim (the reclaims
    app hears `instance_bid_changed`)."""
    _check_may_manage(membership)
    if instance.organization_id != membership.organization_id:
        raise ApplicationError("There is no such instance.", code="not_found")
    if not instance.preemptible:
        raise ApplicationError(
            "Only a preemptible instance has a max price.",
            field="max_price_per_hour",
            code="not_preemptible",
        )
    if instance.state in FINAL_STATES:
        raise ApplicationError(
            f"{instance.name} has ended; its max price can no longer change.",
            field="max_price_per_hour",
            code="ended",
        )
    bid = _check_bid(
        max_price_per_hour,
        currency=currency,
        preemptible=True,
        region=instance.region,
        instance_type=instance.instance_type,
    )
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        previous = locked.max_price_per_hour
        locked.max_price_per_hour = bid
        locked.save(update_fields=["max_price_per_hour"])
        InstanceEvent.objects.create(
            instance=locked,
            to_state="",
            message=(
                f"Max price set to {format_price(bid, settings.CURRENCY)}."
                if bid is not None
                else "Max price per hour set to the on-demand price."
            ),
            actor=membership.user,
        )
        audit_record(
            action="instance.bid_changed",
            organization=membership.organization,
            actor=membership,
            target=locked,
            detail={
                "previous": str(previous) if previous is not None else None,
                "max_price_per_hour": str(bid) if bid is not None else None,
            },
        )
        transaction.on_commit(
            lambda: instance_bid_changed.send(sender=Instance, instance=locked, previous=previous)
        )
    return locked
