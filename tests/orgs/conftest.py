import pytest

from portal.orgs import services


@pytest.fixture
def invite(team):
    """An open invitation to `team`'s organization: `invitation, token = invite(email, role)`."""

    def create(email: str = "newcomer@example.com", role: str = "member", by=None):
        return services.invitation_create(actor=by or team.owner, email=email, role=role)

    return create
