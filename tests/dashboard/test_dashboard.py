"""The organization dashboard: what runs, what it costs, what to do next."""

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.instances import lifecycle
from portal.instances.models import State
from portal.sshkeys.services import sshkey_add
from tests.instances.conftest import catalog, make_instance, quota  # noqa: F401
from tests.lib.keys import public_line

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_owner_sees_running_instances_gpus_and_this_months_spend(
    team,
    client_for,
    make_instance,  # noqa: F811
):
    running = make_instance(State.PROVISIONING, backend_id="m-dash")
    lifecycle.mark_running(running.pk, at=timezone.now() - timedelta(hours=2))
    make_instance(State.STOPPED)

    page = client_for(team.owner.user).get("/o/acme/").content.decode()

    assert "Running instances" in page
    assert "1 GPU in use" in page
    assert running.name in page
    assert "Spend this month" in page
    assert "$4.98" in page  # two hours of a 1x H100 at $2.49


def test_the_billing_role_sees_spend_but_no_instances(team, client_for):
    page = client_for(team.billing.user).get("/o/acme/").content.decode()

    assert "Spend this month" in page
    assert "Running instances" not in page
    assert "Launch instance" not in page


def test_a_viewer_sees_instances_but_not_spend_and_cannot_launch(team, client_for):
    page = client_for(team.viewer.user).get("/o/acme/").content.decode()

    assert "Running instances" in page
    assert "Spend this month" not in page
    assert "Launch instance" not in page


def test_the_checklist_ticks_off_the_first_launch(team, client_for, make_instance):  # noqa: F811
    client = client_for(team.member.user)
    assert '<a href="/o/acme/instances/launch/">Launch your first instance</a>' in (
        client.get("/o/acme/").content.decode()
    )

    make_instance(State.RUNNING)

    assert "Launch your first instance</a>" not in client.get("/o/acme/").content.decode()


def test_the_dashboard_costs_the_same_queries_for_1_and_30_instances(
    team,
    client_for,
    make_instance,  # noqa: F811
):
    client = client_for(team.owner.user)
    make_instance(State.RUNNING)
    client.get("/o/acme/")
    with CaptureQueriesContext(connection) as few:
        client.get("/o/acme/")
    for _ in range(29):
        make_instance(State.RUNNING)
    with CaptureQueriesContext(connection) as many:
        client.get("/o/acme/")

    assert len(many) == len(few)


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        ("owner", ["Instances", "Billing", "SSH keys", "Audit log"], []),
        ("member", ["Instances", "SSH keys"], ["Billing", "Audit log"]),
        ("billing", ["Billing"], ["Instances</a>", "SSH keys", "Audit log"]),
        ("viewer", ["Instances"], ["Billing", "SSH keys", "Audit log"]),
    ],
)
def test_the_navigation_offers_only_what_the_role_may_open(team, client_for, role, shown, hidden):
    nav = client_for(team.by_role(role).user).get("/o/acme/").content.decode()
    nav = nav[nav.index('<nav class="nav">') : nav.index("</nav>")]

    for link in shown:
        assert link in nav
    for link in hidden:
        assert link not in nav


def test_the_stats_count_each_state_and_the_members_card_shows_six_of_all(
    team,
    client_for,
    make_instance,  # noqa: F811
):
    from tests.factories import MembershipFactory

    for state in [State.RUNNING, State.RUNNING, State.STARTING, State.PENDING, State.STOPPED]:
        make_instance(state)
    make_instance(State.TERMINATED)
    make_instance(State.FAILED)
    for _ in range(3):
        MembershipFactory(organization=team.organization)
    members = team.organization.memberships.count()
    assert members > 6

    page = client_for(team.owner.user).get("/o/acme/").content.decode()

    values = re.findall(r'<div class="value">([^<]*)</div>', page)
    assert values[:3] == ["2", "2", "1"]  # running, changing state, stopped
    assert "2 GPUs in use" in page
    assert f"All {members} →" in page
    assert page.count('<span class="avatar" aria-hidden="true">') == 6
    assert page.count('data-testid="state"') == 5  # the five most recent


def _done(page: str) -> set[str]:
    """The checklist steps shown as done (ticked, no link)."""
    return set(
        re.findall(
            r'<li class="done">\s*<span class="tick">✓</span>\s*'
            r'<span class="text">([^<]+)</span>',
            page,
        )
    )


def test_the_checklist_ticks_off_each_step_for_the_member_who_did_it(team, client_for):
    member, other = team.member, team.admin
    EmailAddress.objects.filter(user=member.user).update(verified=False)
    # Another member's personal key is not one this member sees: not done for them.
    sshkey_add(membership=other, name="theirs", public_key=public_line(), shared=False)
    client = client_for(member.user)
    assert _done(client.get("/o/acme/").content.decode()) == set()

    EmailAddress.objects.filter(user=member.user).update(verified=True)
    TOTP.activate(member.user, generate_totp_secret())
    sshkey_add(membership=member, name="mine", public_key=public_line(), shared=False)

    assert _done(client.get("/o/acme/").content.decode()) == {
        "Verify your e-mail address",
        "Turn on two-factor authentication",
        "Add an SSH key",
    }
