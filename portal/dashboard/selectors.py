"""What the organization dashboard shows: a summary in a fixed number of queries."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.db import connection
from django.db.models import IntegerField
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
from portal.web.sql import column, table

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
    instances = table(Instance)
    organization, state = column(Instance, "organization"), column(Instance, "state")
    marks = ", ".join(["%s"] * len(states))
    return RawSQL(  # noqa: S611 - the model's table and columns; values are parameters
        f"SELECT COALESCE({what}, 0) FROM {instances} "  # noqa: S608 - the model's names
        f"WHERE {organization} = %s AND {state} IN ({marks})",
        (organization_id, *sorted(states)),
        output_field=IntegerField(),
    )


@functools.cache
def _recent_sql() -> str:
    """The SQL of the recent instances (their `{figures}` to fill in), from the models' tables
    and columns."""

    row, types, regions = table(Instance), table(InstanceType), table(Region)
    return (
        f"SELECT {row}.{column(Instance, 'id')}, {row}.{column(Instance, 'name')},"  # noqa: S608
        f" {row}.{column(Instance, 'state')}, t.{column(InstanceType, 'name')} AS type_name,"
        f" r.{column(Region, 'code')} AS region_code, {{figures}} FROM {row}"
        f" JOIN {types} t"
        f" ON t.{column(InstanceType, 'id')} = {row}.{column(Instance, 'instance_type')}"
        f" JOIN {regions} r ON r.{column(Region, 'id')} = {row}.{column(Instance, 'region')}"
        f" WHERE {row}.{column(Instance, 'organization')} = %s"
        f" ORDER BY {row}.{column(Instance, 'created_at')} DESC,"
        f" {row}.{column(Instance, 'id')} DESC"
        " LIMIT %s"
    )


def dashboard_fleet(*, membership: Membership, recent: int = 5) -> FleetSummary:
    """The counts of the stat cards and the recent instances, in one query: the latest rows
    with the organization's figures beside each. Without a row there is no instance, and
    every figure is 0."""
    organization_id = membership.organization_id
    gpus = column(Instance, "gpus")
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

    columns = ", ".join(
        f"m.{column(Membership, field)}" for field in ("id", "organization", "user", "role")
    )
    memberships, users = table(Membership), table(User)
    return (
        f"SELECT {columns}, m.{column(Membership, 'created_at')}, COUNT(*) OVER () AS total,"  # noqa: S608
        f" u.{column(User, 'email')} AS user_email, u.{column(User, 'full_name')} AS user_full_name"
        f" FROM {memberships} m JOIN {users} u"
        f" ON u.{column(User, 'id')} = m.{column(Membership, 'user')}"
        f" WHERE m.{column(Membership, 'organization')} = %s"
        f" ORDER BY u.{column(User, 'email')} LIMIT %s"
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

    key_user = column(SshKey, "user")
    return (
        "SELECT"  # noqa: S608 - the models' tables and columns; values are parameters
        f" EXISTS(SELECT 1 FROM {table(EmailAddress)} WHERE {column(EmailAddress, 'user')} = %s"
        f" AND {column(EmailAddress, 'verified')}),"
        f" EXISTS(SELECT 1 FROM {table(Authenticator)} WHERE {column(Authenticator, 'user')} = %s),"
        f" EXISTS(SELECT 1 FROM {table(Quota)} WHERE {column(Quota, 'organization')} = %s"
        f" AND ({column(Quota, 'on_demand_limit')} > 0"
        f" OR {column(Quota, 'preemptible_limit')} > 0)),"
        f" EXISTS(SELECT 1 FROM {table(SshKey)} WHERE {column(SshKey, 'organization')} = %s"
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
    # minute (a few ms with the month's usage kept, see billing.usage), as the billing page
    # shows its own (billing.page, which a write also renews at once).
    return cache.get_or_set(
        f"dashboard-spend:{organization.pk}:{now:%Y-%m}",
        lambda: month_spend(organization=organization, month=Month.of(now), now=now),
        timeout=DASHBOARD_SPEND_TTL,
    )
