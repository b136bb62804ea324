"""The plain-text part and the subject of every e-mail show names as they were written."""

import pytest
from django.core import mail

from portal.notifications.services import notify
from portal.orgs.models import Invitation
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

ODD_NAME = """O'Brien & "Sons" <Labs>"""


def test_an_invitation_from_an_organization_with_an_odd_name_reads_as_written():
    owner = MembershipFactory(organization=OrganizationFactory(name=ODD_NAME), role="owner")
    invitation = Invitation.objects.create(
        organization=owner.organization,
        email="newcomer@example.com",
        role="member",
        invited_by=owner.user,
        token_hash="x" * 64,
        expires_at=Invitation.default_expiry(),
    )

    notify("invitation", invitation_id=invitation.pk, token="tok")

    (message,) = mail.outbox
    assert ODD_NAME in message.body
    assert "&amp;" not in message.body and "&#x27;" not in message.body
    html = message.alternatives[0][0]
    assert "O&#x27;Brien &amp; &quot;Sons&quot; &lt;Labs&gt;" in html  # still escaped in HTML


def test_an_account_mail_keeps_apostrophes_in_its_text(client):
    client.post(
        "/accounts/signup/",
        {
            "email": "ada@example.com",
            "password1": "a-long-and-unusual-passphrase",
            "password2": "a-long-and-unusual-passphrase",
            "full_name": "Ada O'Neil",
        },
    )
    (message,) = mail.outbox
    assert "&#x27;" not in message.body and "&#x27;" not in message.subject
