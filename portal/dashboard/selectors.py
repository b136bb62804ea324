"""What the organization dashboard shows: a summary in a fixed number of queries."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.db import connection
from django.db.models import Field, IntegerField, Model
from django.db.models.expressions import RawSQL

from portal.accounts.models import User
from portal.billing import clock
from portal.billing.periods import Month
from portal.billing.selectors import month_spend
from portal.catalog.models import InstanceType, Region
from portal.instances.models import TRANSITIONAL_STATES, Instance, State
from portal.orgs.models import Membership, Organization
from portal.quotas.models import Quota
from portal.sshkeys.models import SshKey, manages_all_keys

DASHBOARD_SPEND_TTL = 60  # seconds


@dataclass(frozen=True)
class FleetSummary:
    running: int
    in_transition: int
    stopped: int
    gpus_running: int
    recent: list[Instance]


def _fleet_figure(organization_id: int, states: frozenset[str], what: str) -> RawSQL:
    """A figure of the organization's instances in `states` (COUNT(*) or SUM(gpus)), beside
    each recent row: an InitPlan, run once per query."""
    meta = Instance._meta
    table = connection.ops.quote_name(meta.db_table)
    organization = connection.ops.quote_name(meta.get_field("organization").attname)
    state = connection.ops.quote_name(meta.get_field("state").attname)
    marks = ", ".join(["%s"] * len(states))
    return RawSQL(  # noqa: S611 - the model's table and columns; values are parameters
        f"SELECT COALESCE({what}, 0) FROM {table} "  # noqa: S608 - the model's names
        f"WHERE {organization} = %s AND {state} IN ({marks})",
        (organization_id, *sorted(states)),
        output_field=IntegerField(),
    )


@functools.cache
def _recent_sql() -> str:
    """The SQL of the recent instances (their `{figures}` to fill in), from the models' tables
    and columns."""

    def name(model: type[Model], field: str) -> str:
        column = model._meta.get_field(field)
        assert isinstance(column, Field) and column.column
        return connection.ops.quote_name(column.column)

    row = connection.ops.quote_name(Instance._meta.db_table)
    types = connection.ops.quote_name(InstanceType._meta.db_table)
    regions = connection.ops.quote_name(Region._meta.db_table)
    return (
        f"SELECT {row}.{name(Instance, 'id')}, {row}.{name(Instance, 'name')},"  # noqa: S608
        f" {row}.{name(Instance, 'state')}, t.{name(InstanceType, 'name')} AS type_name,"
        f" r.{name(Region, 'code')} AS region_code, {{figures}} FROM {row}"
        f" JOIN {types} t ON t.{name(InstanceType, 'id')} = {row}.{name(Instance, 'instance_type')}"
        f" JOIN {regions} r ON r.{name(Region, 'id')} = {row}.{name(Instance, 'region')}"
        f" WHERE {row}.{name(Instance, 'organization')} = %s"
        f" ORDER BY {row}.{name(Instance, 'created_at')} DESC, {row}.{name(Instance, 'id')} DESC"
        " LIMIT %s"
    )


def dashboard_fleet(*, membership: Membership, recent: int = 5) -> FleetSummary:
    """The counts of the stat cards and the recent instances, in one query: the latest rows
    with the organization's figures beside each. Without a row there is no instance, and
    every figure is 0."""
    organization_id = membership.organization_id
    gpus = connection.ops.quote_name(Instance._meta.get_field("gpus").attname)
    running = frozenset({State.RUNNING})
    figures = {
        "fleet_running": _fleet_figure(organization_id, running, "COUNT(*)"),
        "fleet_in_transition": _fleet_figure(organization_id, TRANSITIONAL_STATES, "COUNT(*)"),
        "fleet_stopped": _fleet_figure(organization_id, frozenset({State.STOPPED}), "COUNT(*)"),
        "fleet_gpus_running": _fleet_figure(organization_id, running, f"SUM({gpus})"),
    }
    # What the recent table shows: name, state, type and region (as the instance list's rows),
    # as SQL: the ORM took longer to build the query (~1 ms) than PostgreSQL to answer it.
    beside = ", ".join(f"({figure.sql}) AS {name}" for name, figure in figures.items())
    latest: list[Instance] = list(
        Instance.objects.raw(
            _recent_sql().format(figures=beside),
            [*(value for figure in figures.values() for value in figure.params)]
            + [organization_id, recent],
        )
    )
    running_now, in_transition, stopped, gpus_running = (
        getattr(latest[0], name) if latest else 0 for name in figures
    )
    return FleetSummary(
        running=running_now,
        in_transition=in_transition,
        stopped=stopped,
        gpus_running=gpus_running,
        recent=latest,
    )


@functools.cache
def _members_sql() -> str:
    """The SQL of `dashboard_members`, from the models' tables and columns."""

    def name(model: type[Model], field: str) -> str:
        column = model._meta.get_field(field)
        assert isinstance(column, Field) and column.column
        return connection.ops.quote_name(column.column)

    columns = ", ".join(
        f"m.{name(Membership, field)}" for field in ("id", "organization", "user", "role")
    )
    memberships = connection.ops.quote_name(Membership._meta.db_table)
    users = connection.ops.quote_name(User._meta.db_table)
    return (
        f"SELECT {columns}, m.{name(Membership, 'created_at')}, COUNT(*) OVER () AS total,"  # noqa: S608
        f" u.{name(User, 'email')} AS user_email, u.{name(User, 'full_name')} AS user_full_name"
        f" FROM {memberships} m JOIN {users} u"
        f" ON u.{name(User, 'id')} = m.{name(Membership, 'user')}"
        f" WHERE m.{name(Membership, 'organization')} = %s"
        f" ORDER BY u.{name(User, 'email')} LIMIT %s"
    )


def dashboard_members(
    *, organization: Organization, first: int = 6
) -> tuple[Sequence[Membership], int]:
    """The first members by e-mail (as `membership_list_for_organization` orders them) and how
    many there are, in one SQL statement (the ORM took ~1 ms to build it), each with its user's
    name and address (the user's other fields are read only if asked for)."""
    members = list(Membership.objects.raw(_members_sql(), [organization.pk, first]))
    for member in members:
        member.user = User.from_db(
            "default",
            ["id", "email", "full_name"],
            [member.user_id, member.user_email, member.user_full_name],  # type: ignore[attr-defined]
        )
    return members, members[0].total if members else 0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Progress:
    """What the getting-started checklist asks of the member and the organization."""

    email_verified: bool
    two_factor: bool  # allauth's `is_mfa_enabled`: any authenticator of the user
    has_quota: bool  # `quota_any_for_organization`
    has_ssh_key: bool  # a key the member sees (`sshkey_list_for_member`)


@functools.cache
def _progress_sql() -> str:
    """The SQL of `dashboard_progress`, from the models' tables and columns."""

    def name(model: type[Model], field: str | None = None) -> str:
        if field is None:
            return connection.ops.quote_name(model._meta.db_table)
        column = model._meta.get_field(field)
        assert isinstance(column, Field) and column.column
        return connection.ops.quote_name(column.column)

    key_user = name(SshKey, "user")
    return (
        "SELECT"  # noqa: S608 - the models' tables and columns; values are parameters
        f" EXISTS(SELECT 1 FROM {name(EmailAddress)} WHERE {name(EmailAddress, 'user')} = %s"
        f" AND {name(EmailAddress, 'verified')}),"
        f" EXISTS(SELECT 1 FROM {name(Authenticator)} WHERE {name(Authenticator, 'user')} = %s),"
        f" EXISTS(SELECT 1 FROM {name(Quota)} WHERE {name(Quota, 'organization')} = %s"
        f" AND ({name(Quota, 'on_demand_limit')} > 0 OR {name(Quota, 'preemptible_limit')} > 0)),"
        f" EXISTS(SELECT 1 FROM {name(SshKey)} WHERE {name(SshKey, 'organization')} = %s"
        f" AND %s AND (%s OR {key_user} IS NULL OR {key_user} = %s))"
    )


def dashboard_progress(*, membership: Membership) -> Progress:
    """The checklist's four questions in one query (an EXISTS each), written as SQL: Django
    takes ten times longer to build the four EXISTS (about 1.5 ms) than PostgreSQL to answer
    them. The rules are those of allauth's `is_mfa_enabled`,
    `quota_above_zero_for_organization` and `sshkey_list_for_member` (shared keys, the
    member's own, every key for the roles that manage all; none without instances.view);
    tests/dashboard/test_progress.py compares them."""
    with connection.cursor() as cursor:
        cursor.execute(
            _progress_sql(),
            [
                membership.user_id,
                membership.user_id,
                membership.organization_id,
                membership.organization_id,
                membership.can("instances.view"),
                manages_all_keys(membership),
                membership.user_id,
            ],
        )
        email_verified, two_factor, has_quota, has_ssh_key = cursor.fetchone()
    return Progress(
        email_verified=email_verified,
        two_factor=two_factor,
        has_quota=has_quota,
        has_ssh_key=has_ssh_key,
    )


def dashboard_spend(*, membership: Membership) -> Decimal | None:
    """This month's spend so far, for roles that may see billing; None for the others."""
    if not membership.can("billing.view"):
        return None
    now = clock.now()
    organization = membership.organization
    # The dashboard shows it to the minute: one reading of the month per organization a
    # minute (a few ms with the month's usage kept, see billing.usage); the billing page is
    # exact to the second.
    return cache.get_or_set(
        f"dashboard-spend:{organization.pk}:{now:%Y-%m}",
        lambda: month_spend(organization=organization, month=Month.of(now), now=now),
        timeout=DASHBOARD_SPEND_TTL,
    )
