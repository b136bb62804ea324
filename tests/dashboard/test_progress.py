"""The getting-started checklist: its query is built once per role and bound to each member's
ids, and answers as the query Django builds for that member would, at every view."""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from portal.dashboard import selectors
from portal.orgs.roles import Role
from portal.quotas.models import Quota
from portal.sshkeys.services import sshkey_add
from tests.instances.conftest import catalog  # noqa: F401
from tests.lib.keys import public_line


def by_orm(membership) -> selectors.Progress:
    row = selectors._progress_queryset(membership, membership.organization).get()
    return selectors.Progress(**row)


@pytest.mark.parametrize("role", [role.value for role in Role])
def test_the_checklist_answers_as_the_members_own_query_for_every_role(team, catalog, role):  # noqa: F811
    membership = team.by_role(role)
    EmailAddress.objects.filter(user=membership.user).update(verified=False)
    nothing = selectors.dashboard_progress(membership=membership)
    assert nothing == by_orm(membership)
    assert not nothing.email_verified and not nothing.two_factor and not nothing.has_quota

    EmailAddress.objects.filter(user=membership.user).update(verified=True)
    TOTP.activate(membership.user, generate_totp_secret())
    Quota.objects.create(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        on_demand_limit=8,
    )
    sshkey_add(membership=team.admin, name="shared", public_key=public_line(), shared=True)
    everything = selectors.dashboard_progress(membership=membership)
    assert everything == by_orm(membership)
    assert everything.email_verified and everything.two_factor and everything.has_quota
    # A billing member sees no keys; every other role sees the shared one.
    assert everything.has_ssh_key == (role != Role.BILLING)


def test_each_member_gets_their_own_answers_from_the_same_prepared_query(team):
    sshkey_add(membership=team.member, name="mine", public_key=public_line(), shared=False)
    mine = selectors.dashboard_progress(membership=team.member)
    admin = selectors.dashboard_progress(membership=team.admin)  # sees every key
    viewer = selectors.dashboard_progress(membership=team.viewer)  # not the member's own key
    assert (mine.has_ssh_key, admin.has_ssh_key, viewer.has_ssh_key) == (True, True, False)
    assert viewer == by_orm(team.viewer) and mine == by_orm(team.member)
