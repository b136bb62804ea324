"""The getting-started checklist's questions, asked in one SQL statement, answer as the rules
they stand for (allauth's is_mfa_enabled, quota_above_zero_for_organization,
sshkey_list_for_member) for every role and every state of the organization."""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled

from portal.dashboard.selectors import Progress, dashboard_progress
from portal.orgs.roles import Role
from portal.quotas.selectors import quota_any_for_organization
from portal.sshkeys.selectors import sshkey_list_for_member
from tests.instances.conftest import catalog, set_quota  # noqa: F401
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db

ROLES = [role.value for role in Role]


def _by_the_rules(membership) -> Progress:
    return Progress(
        email_verified=EmailAddress.objects.filter(user=membership.user, verified=True).exists(),
        two_factor=is_mfa_enabled(membership.user),
        has_quota=quota_any_for_organization(organization=membership.organization),
        has_ssh_key=sshkey_list_for_member(membership=membership).exists(),
    )


@pytest.mark.parametrize("role", ROLES)
def test_nothing_done_yet(team, role):
    membership = team.by_role(role)
    assert dashboard_progress(membership=membership) == _by_the_rules(membership)
    progress = dashboard_progress(membership=membership)
    assert not progress.two_factor and not progress.has_quota and not progress.has_ssh_key


@pytest.mark.parametrize("role", ROLES)
def test_a_personal_key_of_another_member(team, role):
    SshKeyFactory(membership=team.member)  # the member's own, not shared
    membership = team.by_role(role)
    progress = dashboard_progress(membership=membership)
    assert progress == _by_the_rules(membership)
    # The member's own key; owners and admins see every key; a viewer and billing not this one.
    assert progress.has_ssh_key == (role in {"member", "owner", "admin"})


@pytest.mark.parametrize("role", ROLES)
def test_a_shared_key(team, role):
    SshKeyFactory(membership=team.owner, shared=True)
    membership = team.by_role(role)
    assert dashboard_progress(membership=membership) == _by_the_rules(membership)


@pytest.mark.parametrize("role", ROLES)
def test_everything_done(team, catalog, role):  # noqa: F811
    membership = team.by_role(role)
    EmailAddress.objects.update_or_create(
        user=membership.user, email=membership.user.email, defaults={"verified": True}
    )
    Authenticator.objects.create(user=membership.user, type=Authenticator.Type.TOTP, data={})
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=1)
    SshKeyFactory(membership=membership if membership.can("instances.manage") else team.owner)
    progress = dashboard_progress(membership=membership)
    assert progress == _by_the_rules(membership)
    assert progress.email_verified and progress.two_factor and progress.has_quota


def test_quota_at_zero_is_no_quota_and_an_unverified_address_is_not_verified(
    team,
    catalog,  # noqa: F811
):
    membership = team.owner
    EmailAddress.objects.update_or_create(
        user=membership.user, email=membership.user.email, defaults={"verified": False}
    )
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=0, preemptible=0)
    progress = dashboard_progress(membership=membership)
    assert progress == _by_the_rules(membership)
    assert not progress.email_verified and not progress.has_quota


def test_another_organizations_key_and_quota_do_not_count(team, outsider, catalog):  # noqa: F811
    SshKeyFactory(membership=outsider, shared=True)
    set_quota(outsider.organization, catalog.us_east, catalog.h100, on_demand=8)
    progress = dashboard_progress(membership=team.owner)
    assert progress == _by_the_rules(team.owner)
    assert not progress.has_ssh_key and not progress.has_quota
