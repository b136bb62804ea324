"""What the organization dashboard shows: a summary in a fixed number of queries."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.db.models import Count, Exists, Sum, Window

from portal.billing import clock
from portal.billing.periods import Month
from portal.billing.selectors import month_spend
from portal.instances.models import FINAL_STATES, TRANSITIONAL_STATES, Instance, State
from portal.orgs.models import Membership, Organization
from portal.orgs.selectors import membership_list_for_organization
from portal.quotas.selectors import quota_above_zero_for_organization
from portal.sshkeys.selectors import sshkey_list_for_member

DASHBOARD_SPEND_TTL = 60  # seconds


@dataclass(frozen=True)
class FleetSummary:
    running: int
    in_transition: int
    stopped: int
    gpus_running: int
    recent: list[Instance]


def dashboard_fleet(*, membership: Membership, recent: int = 5) -> FleetSummary:
    instances = Instance.objects.filter(organization_id=membership.organization_id)
    by_state = {
        row["state"]: row
        for row in instances.exclude(state__in=FINAL_STATES)
        .values("state")
        .annotate(count=Count("id"), gpus=Sum("gpus"))
        .order_by()
    }

    def count(*states: str) -> int:
        return sum(by_state[state]["count"] for state in states if state in by_state)

    # What the recent table shows: name, state, type and region.
    latest = list(
        instances.select_related("instance_type", "region")
        .only("name", "state", "instance_type__name", "region__code")
        .order_by("-created_at", "-id")[:recent]
    )
    return FleetSummary(
        running=count(State.RUNNING),
        in_transition=count(*TRANSITIONAL_STATES),
        stopped=count(State.STOPPED),
        gpus_running=by_state.get(State.RUNNING, {}).get("gpus") or 0,
        recent=latest,
    )


def dashboard_members(
    *, organization: Organization, first: int = 6
) -> tuple[Sequence[Membership], int]:
    """The first members by e-mail and how many there are, in one query."""
    members = list(
        membership_list_for_organization(organization=organization).annotate(
            total=Window(Count("id"))
        )[:first]
    )
    return members, members[0].total if members else 0


@dataclass(frozen=True)
class Progress:
    """What the getting-started checklist asks of the member and the organization."""

    email_verified: bool
    two_factor: bool  # allauth's `is_mfa_enabled`: any authenticator of the user
    has_quota: bool  # `quota_any_for_organization`
    has_ssh_key: bool  # a key the member sees (`sshkey_list_for_member`)


def dashboard_progress(*, membership: Membership) -> Progress:
    """The checklist's four questions in one query (an EXISTS each)."""
    user_id = membership.user_id
    row = (
        Membership.objects.filter(pk=membership.pk)
        .annotate(
            email_verified=Exists(EmailAddress.objects.filter(user_id=user_id, verified=True)),
            two_factor=Exists(Authenticator.objects.filter(user_id=user_id)),
            has_quota=Exists(
                quota_above_zero_for_organization(organization=membership.organization)
            ),
            has_ssh_key=Exists(sshkey_list_for_member(membership=membership)),
        )
        .values("email_verified", "two_factor", "has_quota", "has_ssh_key")
        .get()
    )
    return Progress(**row)


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
