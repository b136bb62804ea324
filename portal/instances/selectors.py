"""Reads of instances, scoped to the member's organization. A fixed number of queries each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import F, Field, Model, QuerySet
from django.db.models.expressions import Col, RawSQL
from django.db.models.options import Options
from django.http import Http404
from django.utils import timezone

from portal.accounts.models import User
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.catalog.selectors import Offer, active_regions, catalog_offers
from portal.instances.capacity import FreeCapacity, free_capacity
from portal.instances.interruptions import Interruptions, interruption_rates
from portal.instances.models import Instance, InstanceEvent
from portal.market.models import SpotPrice
from portal.market.selectors import spot_prices_current
from portal.orgs.models import Membership
from portal.quotas.models import Kind, Quota
from portal.sshkeys.models import SshKey
from portal.sshkeys.selectors import sshkey_list_for_member
from portal.volumes.models import Attachment, Volume
from portal.volumes.selectors import (
    volume_attachable_for_organization,
    volume_attachment_list_for_instance,
)
from portal.web.sql import column

CENT = Decimal("0.01")
SECONDS_PER_HOUR = Decimal(3600)


def instance_list_for_organization(*, membership: Membership) -> QuerySet[Instance]:
    """Every instance of the member's organization, newest first, with what the API and the
    instance page show (type and GPU model, region, image, who launched it). Price a page of
    them with instance_hourly_prices()."""
    return (
        Instance.objects.filter(organization_id=membership.organization_id)
        .select_related("instance_type__gpu_model", "region", "image", "created_by")
        .order_by("-created_at", "-id")
    )


# What a row of the instance list reads: what it shows, its cost so far and whether to poll.
LIST_ROW_FIELDS = (
    "name",
    "preemptible",
    "state",
    "reclaim_at",
    "stop_at",
    "ip",
    "created_at",
    "running_since",
    "running_seconds",
)


def instance_list_rows(*, membership: Membership) -> QuerySet[Instance]:
    """The list's rows: the organization's instances, newest first, only what a row shows,
    with their type's name (`type_name`) and region's code (`region_code`) as values of the
    row rather than a type and a region made per row (a third of the page's rows' cost).
    Make the page's rows with instance_row_list()."""
    return (
        Instance.objects.filter(organization_id=membership.organization_id)
        .only(*LIST_ROW_FIELDS)
        .annotate(type_name=F("instance_type__name"), region_code=F("region__code"))
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """A row of the instance list: the instance, its running price in force (None without
    one) and what it has cost so far."""

    instance: Instance
    hourly_price: Decimal | None
    cost: Decimal


def instance_hourly_prices(
    instances: Iterable[Instance], at: datetime | None = None
) -> dict[int, Decimal | None]:
    """The running price in force at `at` (default now) of each instance, by id: its type's
    on-demand or preemptible price (now: the spot price where the market prices the offer),
    None without one. One query for all the instances' types (and one for spot prices).
    """
    instances = list(instances)
    type_ids = {instance.instance_type_id for instance in instances}
    latest: dict[int, Price] = {}
    if type_ids:
        prices = (
            Price.objects.in_force(at or timezone.now())
            .filter(instance_type_id__in=type_ids)
            .order_by("instance_type_id", "-valid_from")
        )
        for price in prices:  # each type's newest start first: keep that one
            latest.setdefault(price.instance_type_id, price)
    hourly: dict[int, Decimal | None] = {}
    for instance in instances:
        in_force = latest.get(instance.instance_type_id)
        hourly[instance.pk] = (
            None
            if in_force is None
            else (
                in_force.preemptible_hourly if instance.preemptible else in_force.on_demand_hourly
            )
        )
    if any(instance.preemptible for instance in instances) and at is None:
        # A preemptible instance pays the spot price in force (one query for all offers).
        spot = spot_prices_current()
        for instance in instances:
            row = spot.get((instance.region_id, instance.instance_type_id))
            if instance.preemptible and row is not None:
                hourly[instance.pk] = row.price
    return hourly


def instance_row_list(
    instances: Iterable[Instance], at: datetime | None = None
) -> list[InstanceRow]:
    """A page of the list's instances as rows, priced in one query."""
    instances = list(instances)
    prices = instance_hourly_prices(instances, at)
    return [
        InstanceRow(
            instance=instance,
            hourly_price=prices[instance.pk],
            cost=instance_cost_so_far(instance=instance, hourly_price=prices[instance.pk], at=at),
        )
        for instance in instances
    ]


@cache
def _hourly_price_sql() -> str:
    """The SQL of `_hourly_price_now`, from the models' tables and columns."""
    instance, price, spot = Instance._meta, Price._meta, SpotPrice._meta

    row = connection.ops.quote_name(instance.db_table)
    prices, spots = (
        connection.ops.quote_name(price.db_table),
        connection.ops.quote_name(spot.db_table),
    )
    type_id, region_id = column(instance, "instance_type"), column(instance, "region")

    def catalog(hourly: str) -> str:
        return (
            f"(SELECT p.{column(price, hourly)} FROM {prices} p"  # noqa: S608 - the models' names
            f" WHERE p.{column(price, 'instance_type')} = {row}.{type_id}"
            f" AND p.{column(price, 'valid_from')} <= %s"
            f" ORDER BY p.{column(price, 'valid_from')} DESC LIMIT 1)"
        )

    spot_now = (
        f"(SELECT s.{column(spot, 'price')} FROM {spots} s"  # noqa: S608 - the models' names
        f" WHERE s.{column(spot, 'region')} = {row}.{region_id}"
        f" AND s.{column(spot, 'instance_type')} = {row}.{type_id}"
        f" AND s.{column(spot, 'valid_until')} IS NULL LIMIT 1)"
    )
    return (
        f"CASE WHEN {row}.{column(instance, 'preemptible')}"
        f" THEN COALESCE({spot_now}, {catalog('preemptible_hourly')})"
        f" ELSE {catalog('on_demand_hourly')} END"
    )


def _hourly_price_now(now: datetime) -> RawSQL:
    """`instance_hourly_prices` as an expression of an instance row: the spot price in force
    of its offer if preemptible and the market prices it, else its type's catalog price in
    force at `now` (on-demand or preemptible), None without one. Correlated lookups by index,
    for the rows the query returns. Plain SQL: Django's Case of three Subqueries costs more
    to compile (1.4 ms) than the rest of the list's query; tests compare the two rules."""
    return RawSQL(  # noqa: S611 - the SQL names only tables and columns; `now` is a parameter
        _hourly_price_sql(), (now, now), output_field=Price._meta.get_field("on_demand_hourly")
    )


@cache
def _instance_count_sql() -> str:
    """The organization's number of instances, beside each row of a page (an InitPlan, run
    once: a window count would join every row to its type and region before the LIMIT)."""
    meta = Instance._meta
    table = connection.ops.quote_name(meta.db_table)
    column = connection.ops.quote_name(meta.get_field("organization").column)
    return f"SELECT COUNT(*) FROM {table} WHERE {column} = %s"  # noqa: S608 - the model's names


@cache
def _list_page_sql() -> str:
    """The SQL of a page of `instance_list_rows`, each row with its running price in force
    (`_hourly_price_now`) and the organization's number of instances (`_instance_count_sql`),
    from the models' tables and columns."""
    quote = connection.ops.quote_name

    meta = Instance._meta
    row = quote(meta.db_table)  # unaliased: the price's SQL names the row by its table
    types, regions = InstanceType._meta, Region._meta
    fields = ", ".join(f"{row}.{column(meta, name)}" for name in ("id", *LIST_ROW_FIELDS))
    return (
        f"SELECT {fields}, t.{column(types, 'name')} AS type_name,"  # noqa: S608 - the models'
        f" r.{column(regions, 'code')} AS region_code,"
        f" ({_hourly_price_sql()}) AS listed_hourly, ({_instance_count_sql()}) AS listed_total"
        f" FROM {row}"
        f" JOIN {quote(types.db_table)} t"
        f" ON t.{column(types, 'id')} = {row}.{column(meta, 'instance_type')}"
        f" JOIN {quote(regions.db_table)} r"
        f" ON r.{column(regions, 'id')} = {row}.{column(meta, 'region')}"
        f" WHERE {row}.{column(meta, 'organization')} = %s"
        f" ORDER BY {row}.{column(meta, 'created_at')} DESC, {row}.{column(meta, 'id')} DESC"
        " LIMIT %s OFFSET %s"
    )


class _CountedPaginator(Paginator):
    """A paginator told its count (read with the page's rows) instead of counting again."""

    def __init__(self, object_list: list[Instance], per_page: int, count: int):
        super().__init__(object_list, per_page)
        self.__dict__["count"] = count  # Paginator.count is a cached_property


def instance_list_page(
    *, membership: Membership, number: str | None, per_page: int
) -> tuple[Page, list[InstanceRow]]:
    """A page of the instance list (`Paginator.get_page(number)`) and its rows, priced, in one
    query: the rows of the page with their running price in force and the organization's
    number of instances beside each. An empty page past the first (a page
    number beyond the last, or one that is not a number) goes the paginator's way instead.
    """
    page_number = int(number) if number and number.isdigit() and len(number) < 10 else 1
    if number and str(page_number) != number:
        page_number = 0  # not a plain page number: the paginator's own rules below
    now = timezone.now()
    found: list[Instance] = []
    if page_number >= 1:
        organization_id, offset = membership.organization_id, (page_number - 1) * per_page
        # `instances` with the price and count, a page of it, as SQL: the ORM took longer to
        # build the query (~1.2 ms) than PostgreSQL to answer it; tests compare the two.
        found = list(
            Instance.objects.raw(
                _list_page_sql(),
                # The price's two moments, the count's and the rows' organization, the page.
                [now, now, organization_id, organization_id, per_page, offset],
            )
        )
    if not found and page_number != 1:
        page = Paginator(instance_list_rows(membership=membership), per_page).get_page(number)
        return page, instance_row_list(page.object_list)
    total = found[0].listed_total if found else 0  # type: ignore[attr-defined]
    # The page's own rows stand for the paginator's list: it only counts (told) and numbers
    # pages, and building the queryset it never reads cost a tenth of the rows' time.
    page = Page(found, page_number, _CountedPaginator(found, per_page, total))
    rows = [
        InstanceRow(
            instance=instance,
            hourly_price=instance.listed_hourly,  # type: ignore[attr-defined]
            cost=instance_cost_so_far(
                instance=instance,
                hourly_price=instance.listed_hourly,  # type: ignore[attr-defined]
                at=now,
            ),
        )
        for instance in found
    ]
    return page, rows


def instance_get_for_member(*, membership: Membership, pk: int) -> Instance:
    """The instance with this id in the member's organization; 404 for any other."""
    instance = instance_list_for_organization(membership=membership).filter(pk=pk).first()
    if instance is None:
        raise Http404("No such instance")
    return instance


# The models `instance_priced_for_member` reads, each as the instance's relation it fills
# (None for the instance itself), its table's alias and whether it may be missing.
_DETAIL_MODELS: tuple[tuple[str | None, str, type[Model], bool], ...] = (
    (None, "", Instance, False),
    ("instance_type", "t", InstanceType, False),
    ("instance_type.gpu_model", "g", GpuModel, False),
    ("region", "r", Region, False),
    ("image", "m", Image, False),
    ("created_by", "u", User, True),
)


@dataclass(frozen=True)
class _DetailQuery:
    """`instance_priced_for_member`'s SQL and, per model, its columns' fields and converters."""

    sql: str
    models: list[tuple[str | None, type[Model], list[str], list[tuple[int, tuple[Col, list]]]]]
    price_column: Col  # the price's output field, as a column: its converters'
    price_converters: list


@cache
def _detail_query() -> _DetailQuery:
    """The SQL of `instance_priced_for_member`, from the models' tables and columns: the
    instance with its type and GPU model, region, image and who launched it (each whole, as
    `instance_list_for_organization` selects them), its price in force (`_hourly_price_sql`)
    and whether it has volumes."""
    quote = connection.ops.quote_name
    meta = Instance._meta
    row = quote(meta.db_table)  # unaliased: the price's SQL names the row by its table
    selected: list[str] = []
    models: list[tuple[str | None, type[Model], list[str], list[tuple[int, tuple[Col, list]]]]]
    models = []
    for relation, alias, model, _nullable in _DETAIL_MODELS:
        table = alias or row
        fields = model._meta.concrete_fields
        converters = []
        for index, each in enumerate(fields):
            column = each.get_col(table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((index, (column, found)))
        selected += [f"{table}.{quote(each.column)}" for each in fields]
        models.append((relation, model, [each.attname for each in fields], converters))

    def join(alias: str, model: type[Model], on: str, *, left: bool = False) -> str:
        kind, table = "LEFT JOIN" if left else "JOIN", quote(model._meta.db_table)
        return f" {kind} {table} {alias} ON {alias}.{quote(model._meta.pk.column)} = {on}"

    def fk(meta: Options, name: str) -> str:
        field = meta.get_field(name)
        assert isinstance(field, Field) and field.column
        return quote(field.column)

    attachment = Attachment._meta
    sql = (
        f"SELECT {', '.join(selected)}, ({_hourly_price_sql()}) AS listed_hourly,"  # noqa: S608
        f" EXISTS(SELECT 1 FROM {quote(attachment.db_table)} a"
        f" WHERE a.{fk(attachment, 'instance_id')} = {row}.{quote(meta.pk.column)}) AS has_volumes"
        f" FROM {row}"
        + join("t", InstanceType, f"{row}.{fk(meta, 'instance_type')}")
        + join("g", GpuModel, f"t.{fk(InstanceType._meta, 'gpu_model')}")
        + join("r", Region, f"{row}.{fk(meta, 'region')}")
        + join("m", Image, f"{row}.{fk(meta, 'image')}")
        + join("u", User, f"{row}.{fk(meta, 'created_by')}", left=True)
        + f" WHERE {row}.{fk(meta, 'organization')} = %s AND {row}.{quote(meta.pk.column)} = %s"
    )
    price = Price._meta.get_field("on_demand_hourly")
    assert isinstance(price, Field)
    price_column = price.get_col("p")
    price_converters = connection.ops.get_db_converters(
        price_column
    ) + price_column.get_db_converters(connection)
    return _DetailQuery(
        sql=sql, models=models, price_column=price_column, price_converters=price_converters
    )


def instance_priced_for_member(
    *, membership: Membership, pk: int
) -> tuple[Instance, Decimal | None]:
    """The instance with this id in the member's organization (404 for any other) and its
    running price in force now (`instance_hourly_price`), read together, with whether it has
    volumes (`instance_volume_list` reads them only then). Plain SQL built once
    (`_detail_query`): the ORM took ~1.6 ms to build the same query, with its four joins, the
    price and the volumes' Exists; tests compare the two."""
    query = _detail_query()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(query.sql, [now, now, membership.organization_id, pk])
        found = cursor.fetchone()
    if found is None:
        raise Http404("No such instance")
    read: dict[str | None, Model | None] = {}
    at = 0
    for relation, model, names, converters in query.models:
        values = list(found[at : at + len(names)])
        at += len(names)
        for index, (expression, functions) in converters:
            for convert in functions:
                values[index] = convert(values[index], expression, connection)
        made = None if values[0] is None else model.from_db(connection.alias, names, values)
        read[relation] = made
        if relation is not None:  # fill the relation as select_related would
            owner, _, name = relation.rpartition(".")
            parent = read[owner or None]
            assert parent is not None
            parent._meta.get_field(name).set_cached_value(parent, made)  # type: ignore[union-attr]
    instance = read[None]
    assert isinstance(instance, Instance)
    hourly = found[at]
    for convert in query.price_converters:
        hourly = convert(hourly, query.price_column, connection)
    instance.listed_hourly = hourly  # type: ignore[attr-defined]
    instance.has_volumes = found[at + 1]  # type: ignore[attr-defined]
    return instance, hourly


def instance_event_list_for_instance(*, instance: Instance) -> QuerySet[InstanceEvent]:
    return instance.events.select_related("actor").order_by("-at", "-id")


@cache
def _timeline_sql() -> str:
    """The SQL of `instance_timeline`, from the models' tables and columns."""
    quote = connection.ops.quote_name
    event, user = InstanceEvent._meta, User._meta

    columns = ", ".join(
        f"e.{column(event, name)}" for name in ("id", "at", "from_state", "to_state", "message")
    )
    full_name, email = column(user, "full_name"), column(user, "email")
    return (
        f"SELECT {columns}, COALESCE(NULLIF(u.{full_name}, ''), u.{email}) AS actor_name"  # noqa: S608
        f" FROM {quote(event.db_table)} e LEFT JOIN {quote(user.db_table)} u"
        f" ON u.{quote(user.pk.column)} = e.{column(event, 'actor')}"
        f" WHERE e.{column(event, 'instance')} = %s"
        f" ORDER BY e.{column(event, 'at')} DESC, e.{column(event, 'id')} DESC"
    )


def instance_timeline(*, instance: Instance) -> list[InstanceEvent]:
    """The instance page's timeline, newest first: its events, each with the display name of
    who made it (`actor_name`, as `User.display_name` has it; None for Backfill itself). Plain
    SQL: the same query through the ORM, with the actor's user, costs ~1.3 ms to build for a
    handful of rows; `instance_event_list_for_instance` is the ORM's (the API's)."""
    return list(InstanceEvent.objects.raw(_timeline_sql(), [instance.pk]))


def any_in_transition(instances: Iterable[Instance]) -> bool:
    """Whether a page showing these instances should keep polling."""
    return any(instance.needs_watching for instance in instances)


def instance_hourly_price(*, instance: Instance) -> Decimal | None:
    """The running price per hour in force now (one query)."""
    return instance_hourly_prices([instance])[instance.pk]


def instance_cost_so_far(
    *, instance: Instance, hourly_price: Decimal | None, at: datetime | None = None
) -> Decimal:
    """Running seconds so far times the running price in force (`hourly_price`), to the cent.

    An estimate for the console. Billing proper (its own issue) rates usage against the price
    history and replaces this one function.
    """
    if not hourly_price:
        return Decimal("0.00")
    cost = Decimal(instance.billed_seconds(at)) * hourly_price / SECONDS_PER_HOUR
    return cost.quantize(CENT)


# The launch page


@dataclass(frozen=True)
class RegionChoice:
    region: Region
    free: int | None  # free instances now (snapshot minus launches since); None if unknown
    quota_free: int  # GPUs of this type's model the organization may still launch here
    quota_free_preemptible: int
    # How often preemptible instances of the type were interrupted here (last 30 days).
    interruptions: Interruptions | None = None
    gpus_per_machine: int = 1  # the type's GPU count: the page says GPUs, machines in brackets

    @property
    def free_gpus(self) -> int | None:
        return None if self.free is None else self.free * self.gpus_per_machine

    @property
    def quota_machines(self) -> int:
        return self.quota_free // self.gpus_per_machine

    @property
    def quota_machines_preemptible(self) -> int:
        return self.quota_free_preemptible // self.gpus_per_machine


@dataclass(frozen=True)
class LaunchOffer:
    offer: Offer
    places: list[RegionChoice]
    # One entry per LaunchOptions.regions, None where the type is not offered.
    cells: list[RegionChoice | None]

    @property
    def instance_type(self) -> InstanceType:
        return self.offer.instance_type

    def place(self, region_code: str) -> RegionChoice | None:
        return next((p for p in self.places if p.region.code == region_code), None)


@dataclass(frozen=True)
class LaunchOptions:
    offers: list[LaunchOffer]
    regions: list[Region]
    images: list[Image]
    keys: list[SshKey]
    capacity: FreeCapacity
    # The organization's available volumes, every region (the page shows each one's region).
    volumes: list[Volume] = field(default_factory=list)

    def offer(self, code: str) -> LaunchOffer | None:
        return next((o for o in self.offers if o.instance_type.code == code), None)

    @property
    def capacity_taken_at(self) -> datetime | None:
        return self.capacity.snapshot.taken_at if self.capacity.snapshot else None

    @property
    def capacity_is_fresh(self) -> bool:
        return bool(self.capacity.snapshot and self.capacity.snapshot.is_fresh)


def launch_options(*, membership: Membership) -> LaunchOptions:
    """What this member can launch: types with prices, free capacity and quota left per region.

    A fixed number of queries, however many types, regions and keys there are.
    """
    offers = catalog_offers()
    capacity = free_capacity()
    quotas = {
        (q.region_id, q.gpu_model_id): q
        for q in Quota.objects.filter(organization_id=membership.organization_id)
    }

    def quota_free(region: Region, itype: InstanceType, kind: str) -> int:
        quota = quotas.get((region.pk, itype.gpu_model_id))
        return quota.free(kind) if quota else 0

    regions = list(active_regions())
    rates = interruption_rates()
    launch_offers = []
    for offer in offers:
        itype = offer.instance_type
        places = [
            RegionChoice(
                region=region,
                free=capacity.get(region.code, itype.code),
                quota_free=quota_free(region, itype, Kind.ON_DEMAND),
                quota_free_preemptible=quota_free(region, itype, Kind.PREEMPTIBLE),
                interruptions=rates.get((itype.pk, region.pk)),
                gpus_per_machine=itype.gpu_count,
            )
            for region in offer.regions
        ]
        by_region = {place.region.pk: place for place in places}
        launch_offers.append(
            LaunchOffer(offer=offer, places=places, cells=[by_region.get(r.pk) for r in regions])
        )
    return LaunchOptions(
        offers=launch_offers,
        regions=regions,
        images=list(Image.objects.filter(active=True).order_by("name")),
        keys=list(sshkey_list_for_member(membership=membership)),
        capacity=capacity,
        volumes=list(volume_attachable_for_organization(organization=membership.organization)),
    )


def instance_volume_list(*, instance: Instance) -> list:
    """The volumes attached to the instance (at launch), with where they are mounted; none
    without a query for an instance read by `instance_priced_for_member` without any."""
    if getattr(instance, "has_volumes", True) is False:
        return []
    return list(volume_attachment_list_for_instance(instance_id=instance.pk))
