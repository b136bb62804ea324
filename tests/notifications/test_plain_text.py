"""The plain-text part and the subject of every e-mail show names as they were written."""

import pytest
from django.core import mail
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from portal.notifications.registry import kinds
from portal.notifications.services import notify
from portal.orgs.models import Invitation
from tests.factories import InvoiceFactory, MembershipFactory, OrganizationFactory

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


# --- Every kind ------------------------------------------------------------------------------
# Each registered e-mail kind, sent about an organization, a person and notes with an odd name;
# a kind missing here fails `test_every_kind_is_covered`: add it.

ESCAPED = ("&#x27;", "&#39;", "&amp;", "&quot;", "&lt;", "&gt;")


@pytest.fixture
def odd(team, catalog, quota, make_instance, staff, fleet, monkeypatch):
    """Rows of every sort the e-mails speak of, named ODD_NAME where a person types a name."""
    from datetime import timedelta
    from decimal import Decimal

    from portal.billing.models import BudgetAlert
    from portal.billing.services import budget_set
    from portal.market.models import CapacityAlert
    from portal.orgs.services import organization_suspend, organization_unsuspend
    from portal.quotas.models import Author, QuotaRequestMessage, QuotaRequestState
    from portal.quotas.services import quota_request_submit
    from portal.reservations import services as reservations
    from portal.reservations.models import ReservationRequest

    monkeypatch.setattr("portal.reservations.tasks.reservation_hold.delay", lambda pk: None)
    organization = team.organization
    organization.name = ODD_NAME
    organization.save(update_fields=["name"])
    for membership in (team.owner, team.admin, team.member):
        membership.user.full_name = ODD_NAME
        membership.user.save(update_fields=["full_name"])
    now = timezone.now()
    instance = make_instance(state="running")
    quota_request = quota_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        kind="on_demand",
        requested_limit=64,
        justification=ODD_NAME,
    )
    message = QuotaRequestMessage.objects.create(
        quota_request=quota_request,
        author=Author.STAFF,
        user=staff,
        state=QuotaRequestState.MORE_INFO_NEEDED,
        body=ODD_NAME,
    )
    budget_set(
        organization=organization, amount=Decimal("100"), hard_limit=False, by=team.owner.user
    )
    budget_alert = BudgetAlert.objects.create(
        organization=organization,
        month=now.date().replace(day=1),
        threshold=80,
        spend=Decimal("80"),
        budget_amount=Decimal("100"),
        sent_at=now,
    )
    invoice = InvoiceFactory(
        organization=organization,
        number="T-1",
        month=now.date().replace(day=1),
        period_start=now - timedelta(days=30),
        period_end=now,
        issued_at=now,
        customer_name=ODD_NAME,
    )
    suspension = organization_suspend(organization=organization, reason=ODD_NAME, by=staff)
    organization_unsuspend(organization=organization, by=staff, note=ODD_NAME)
    reservation_request = ReservationRequest.objects.create(
        organization=organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start_date=(now + timedelta(days=10)).date(),
        months=1,
        note=ODD_NAME,
        created_by=team.owner.user,
        state="quoted",
        quote_price=Decimal("1.85"),
        quote_note=ODD_NAME,
        quoted_at=now,
        quote_expires_at=now + timedelta(days=7),
        answered_by=team.admin.user,
    )
    reservation = reservations.reservation_create(
        organization=organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start=now + timedelta(days=10),
        end=now + timedelta(days=40),
        price_per_gpu_hour="1.85",
        by=staff,
        reservation_request=reservation_request,
    )
    reservation_request.reservation = reservation
    reservation_request.save(update_fields=["reservation"])
    capacity_alert = CapacityAlert.objects.create(
        organization=organization,
        created_by=team.member.user,
        region=catalog.us_east,
        instance_type=catalog.h100_1x,
        expires_at=now + timedelta(days=7),
    )
    invitation = Invitation.objects.create(
        organization=organization,
        email="newcomer@example.com",
        role="member",
        invited_by=team.owner.user,
        token_hash="y" * 64,
        expires_at=Invitation.default_expiry(),
        accepted_by=team.member.user,
        accepted_at=now,
    )
    from portal.volumes.models import OrphanVolume, Volume

    volume = Volume.objects.create(
        organization=organization,
        region=catalog.us_east,
        name="datasets",
        size_gb=100,
        backend_id="v-odd",
        detail=ODD_NAME,
    )
    orphan = OrphanVolume.objects.create(backend_id="v-orphan", name=ODD_NAME, size_gb=5)
    from portal.clusters.models import Cluster

    cluster = Cluster.objects.create(
        organization=organization,
        created_by=team.owner.user,
        name="odd-cluster",
        instance_type=catalog.h100_8x,
        region=catalog.us_east,
        image=catalog.ubuntu,
        node_count=2,
        gpus_per_node=8,
        state_reason=ODD_NAME,
    )
    mail.outbox.clear()
    return {
        "cluster_failed": {"cluster_id": cluster.pk},
        "cluster_interrupted": {"cluster_id": cluster.pk},
        "cluster_reclaim_notice": {"cluster_id": cluster.pk},
        "cluster_running": {"cluster_id": cluster.pk},
        "volume_failed": {"volume_id": volume.pk},
        "volume_lost": {"volume_id": volume.pk},
        "volume_orphan_found": {"orphan_id": orphan.pk},
        "account_mail": {"to": "a@example.com", "subject": ODD_NAME, "text": ODD_NAME},
        "budget_threshold": {"alert_id": budget_alert.pk},
        "budget_hard_limit_stopped": {"alert_id": budget_alert.pk, "instance_ids": [instance.pk]},
        "capacity_available": {"alert_id": capacity_alert.pk, "free_instances": 2},
        "instance_failed": {"instance_id": instance.pk},
        "instance_interrupted": {"instance_id": instance.pk},
        "instance_reclaim_notice": {"instance_id": instance.pk},
        "instance_running": {"instance_id": instance.pk},
        "invitation": {"invitation_id": invitation.pk, "token": "tok"},
        "invitation_accepted": {"invitation_id": invitation.pk},
        "invoice_issued": {"invoice_id": invoice.pk},
        "invoice_overdue": {"invoice_id": invoice.pk, "days_overdue": 3, "suspend_in_days": 4},
        "organization_suspended": {"suspension_id": suspension.pk},
        "organization_unsuspended": {"suspension_id": suspension.pk},
        "quota_request_answered": {"message_id": message.pk},
        "quota_request_decided": {"message_id": message.pk},
        "quota_request_submitted": {"quota_request_id": quota_request.pk},
        "reservation_accepted": {"reservation_request_id": reservation_request.pk},
        "reservation_confirmed": {"reservation_request_id": reservation_request.pk},
        "reservation_ending": {"reservation_id": reservation.pk},
        "reservation_quote": {"reservation_request_id": reservation_request.pk},
        "reservation_quote_expired": {"reservation_request_id": reservation_request.pk},
        "reservation_quote_expiring": {"reservation_request_id": reservation_request.pk},
        "reservation_request_submitted": {"reservation_request_id": reservation_request.pk},
        "reservation_starting": {"reservation_id": reservation.pk},
    }


def test_every_kind_is_covered(odd):
    assert sorted(odd) == kinds()


def _pages_missing(kind: str) -> bool:
    """The spot market's e-mail links to its pages, which land with the market's own work."""
    if kind != "capacity_available":
        return False
    try:
        reverse("market:alerts", args=["acme"])
    except NoReverseMatch:
        return True
    return False


def test_every_kind_shows_odd_names_as_written_in_its_text_and_subject(odd):
    for kind, params in odd.items():
        if _pages_missing(kind):
            continue
        mail.outbox.clear()
        notify(kind, **params)
        assert mail.outbox, f"{kind} sent nothing"
        for message in mail.outbox:
            for part in (message.subject, message.body):
                assert not any(entity in part for entity in ESCAPED), (kind, part)
            html = message.alternatives[0][0] if message.alternatives else ""
            if "O&#x27;Brien &amp; &quot;Sons&quot; &lt;Labs&gt;" in html:
                assert ODD_NAME in message.subject + message.body, kind
