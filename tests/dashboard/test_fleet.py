"""The dashboard's stat cards and recent instances (one SQL statement) are what the ORM counts
and lists for the organization, and a change shows on the next view."""

from django.db.models import Sum

from portal.dashboard.selectors import dashboard_fleet
from portal.instances.models import TRANSITIONAL_STATES, Instance, State
from tests.instances.conftest import catalog, make_instance, quota  # noqa: F401


def _by_the_orm(organization) -> tuple:
    instances = Instance.objects.filter(organization=organization)
    running = instances.filter(state=State.RUNNING)
    recent = [
        (i.pk, i.name, i.state, i.instance_type.name, i.region.code)
        for i in instances.order_by("-created_at", "-id")[:5]
    ]
    return (
        running.count(),
        instances.filter(state__in=TRANSITIONAL_STATES).count(),
        instances.filter(state=State.STOPPED).count(),
        running.aggregate(g=Sum("gpus"))["g"] or 0,
        recent,
    )


def _shown(fleet) -> tuple:
    recent = [(i.pk, i.name, i.state, i.type_name, i.region_code) for i in fleet.recent]
    return (fleet.running, fleet.in_transition, fleet.stopped, fleet.gpus_running, recent)


def test_no_instance_is_all_zeros(team):
    fleet = dashboard_fleet(membership=team.owner)
    assert _shown(fleet) == (0, 0, 0, 0, []) == _by_the_orm(team.organization)


def test_the_figures_and_recent_rows_are_the_orms(team, catalog, make_instance, outsider):  # noqa: F811
    for state in (State.RUNNING, State.RUNNING, State.STOPPED, State.PROVISIONING):
        make_instance(state)
    make_instance(State.RUNNING, instance_type=catalog.h100_8x, gpus=8, region=catalog.eu_west)
    make_instance(State.TERMINATED)
    fleet = dashboard_fleet(membership=team.owner)
    assert _shown(fleet) == _by_the_orm(team.organization)
    assert (fleet.running, fleet.gpus_running, fleet.stopped, fleet.in_transition) == (3, 10, 1, 1)

    make_instance(State.PENDING)  # the next view counts it and lists it first
    fleet = dashboard_fleet(membership=team.owner)
    assert _shown(fleet) == _by_the_orm(team.organization)
    assert fleet.in_transition == 2 and fleet.recent[0].state == State.PENDING


def test_the_members_are_the_first_six_by_address_with_how_many_there_are(team):
    from portal.dashboard.selectors import dashboard_members
    from portal.orgs.selectors import membership_list_for_organization
    from tests.factories import MembershipFactory

    for _ in range(3):
        MembershipFactory(organization=team.organization)
    expected = list(membership_list_for_organization(organization=team.organization))
    members, count = dashboard_members(organization=team.organization)
    assert count == len(expected) == 8
    assert [(m.pk, m.role, m.user.display_name, m.user.initials) for m in members] == [
        (m.pk, m.role, m.user.display_name, m.user.initials) for m in expected[:6]
    ]
    assert members[0].get_role_display() == expected[0].get_role_display()
