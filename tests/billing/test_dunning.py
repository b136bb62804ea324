"""Overdue invoices: reminders on the operator's days, launches paused, then suspension; all
lifted on payment."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from portal.audit.models import AuditEntry
from portal.billing import dunning, services
from portal.billing.selectors import launch_block_reason
from portal.orgs.selectors import organization_suspension
from portal.orgs.services import organization_suspend, organization_unsuspend
from tests.billing.conftest import at
from tests.factories import InvoiceFactory


@pytest.fixture
def unpaid(team, clock):
    """Invoice T-1 of Acme AI, $120.00, due March 14."""
    issued = at("2026-02-28 02:00:00")
    return InvoiceFactory(
        organization=team.organization,
        number="BF-2026-000001",
        month=issued.date().replace(day=1),
        period_start=at("2026-02-01 00:00:00"),
        period_end=at("2026-03-01 00:00:00"),
        issued_at=issued,
        due_at=at("2026-03-14 00:00:00"),
        amount=Decimal("120.00"),
    )


@pytest.fixture
def run(clock, django_capture_on_commit_callbacks):
    def at_time(when: str) -> int:
        clock.set(when)
        with django_capture_on_commit_callbacks(execute=True):
            return dunning.dunning_run()

    return at_time


def overdue_mails():
    return [m for m in mail.outbox if "overdue" in m.subject]


def test_reminders_then_launches_paused_each_once_on_the_operators_days(
    team, unpaid, run, settings
):
    settings.BILLING_DUNNING_REMINDER_DAYS = (1, 7)
    settings.BILLING_DUNNING_PAUSE_DAYS = 5

    assert run("2026-03-14 12:00:00") == 0  # due, not a day late yet
    assert run("2026-03-15 01:00:00") == 1
    assert run("2026-03-15 02:00:00") == 0
    assert launch_block_reason(organization=team.organization) is None  # reminded, not paused
    assert run("2026-03-19 01:00:00") == 1  # the pause: a step of its own
    assert launch_block_reason(organization=team.organization).startswith(
        "Launches are paused: invoice BF-2026-000001"
    )
    assert run("2026-03-21 01:00:00") == 1
    assert run("2026-03-30 01:00:00") == 0  # no more days set

    assert [m.subject for m in overdue_mails() if m.to[0] == team.owner.user.email] == [
        "[Backfill] Invoice BF-2026-000001 is 1 day overdue: launches pause in 4 days",
        "[Backfill] Invoice BF-2026-000001 is 5 days overdue: launches are paused",
        "[Backfill] Invoice BF-2026-000001 is 7 days overdue: launches are paused",
    ]
    assert sorted({m.to[0] for m in overdue_mails()}) == sorted(
        [team.owner.user.email, team.billing.user.email]
    )
    first, paused = overdue_mails()[0].body, overdue_mails()[-1].body
    assert "$120.00 is still unpaid" in first
    assert "If it is still unpaid in 4 days, new launches of Acme AI will be refused" in first
    assert "new launches of Acme AI are refused" in paused
    assert "with BF-2026-000001 as the reference" in paused
    reminders = AuditEntry.objects.filter(action="invoice.overdue_reminder")
    assert reminders.count() == 2
    pause = AuditEntry.objects.get(action="invoice.launches_paused")
    assert pause.detail["days_overdue"] == 5
    assert {e.actor_display for e in [*reminders, pause]} == {"Backfill, overdue invoices"}


def test_launches_pause_on_the_due_date_when_the_operator_sets_no_grace(
    team, unpaid, run, settings
):
    settings.BILLING_DUNNING_PAUSE_DAYS = 0

    assert run("2026-03-14 12:00:00") == 1  # the pause, e-mailed at once

    assert launch_block_reason(organization=team.organization) is not None
    assert [m.subject for m in overdue_mails()][0].endswith("0 days overdue: launches are paused")


def test_days_missed_while_the_task_was_down_make_one_e_mail(unpaid, run, settings):
    settings.BILLING_DUNNING_REMINDER_DAYS = (1, 7)

    assert run("2026-03-22 00:00:00") == 2  # the reminders, and launches paused on day 7

    assert len({m.subject for m in overdue_mails()}) == 1
    assert AuditEntry.objects.filter(action="invoice.launches_paused").count() == 1


def test_then_suspension_and_payment_lifts_everything(team, staff, unpaid, run, settings):
    settings.BILLING_DUNNING_REMINDER_DAYS = (1,)
    settings.BILLING_DUNNING_SUSPEND_DAYS = 10
    run("2026-03-15 01:00:00")
    assert "will be suspended" in overdue_mails()[0].body
    assert launch_block_reason(organization=team.organization) is None  # paused on day 7

    run("2026-03-24 01:00:00")
    assert launch_block_reason(organization=team.organization).startswith(
        "Launches are paused: invoice BF-2026-000001"
    )
    assert organization_suspension(team.organization) is not None
    run("2026-03-25 01:00:00")  # once
    assert team.organization.suspensions.count() == 1
    suspended = [m for m in mail.outbox if "suspended" in m.subject.lower()]
    assert suspended and "BF-2026-000001 ($120.00) is 10 days overdue" in suspended[0].body
    entry = AuditEntry.objects.get(action="org.suspended")
    assert entry.actor_display == "Backfill, overdue invoices"

    services.invoice_mark_paid(invoice=unpaid, by=staff, reference="TRX-1")

    assert organization_suspension(team.organization) is None
    assert launch_block_reason(organization=team.organization) is None
    lifted = AuditEntry.objects.get(action="org.unsuspended")
    assert lifted.actor_display == "Backfill, overdue invoices"
    assert lifted.detail["note"] == "Invoice BF-2026-000001 is paid."
    mail.outbox.clear()
    assert run("2026-03-30 01:00:00") == 0
    assert overdue_mails() == []


def test_a_suspension_by_staff_is_not_lifted_by_the_payment(team, staff, unpaid, run, settings):
    settings.BILLING_DUNNING_SUSPEND_DAYS = 10
    organization_suspend(organization=team.organization, reason="Abuse report.", by=staff)
    run("2026-03-25 01:00:00")  # suspended already: dunning adds nothing

    services.invoice_mark_paid(invoice=unpaid, by=staff)

    assert organization_suspension(team.organization).reason == "Abuse report."
    organization_unsuspend(organization=team.organization, by=staff)


def test_without_suspension_days_nobody_is_suspended(team, unpaid, run):
    run("2026-06-01 00:00:00")
    assert organization_suspension(team.organization) is None


def test_a_paid_invoice_gets_no_reminder(team, staff, unpaid, run, clock):
    clock.set("2026-03-13 00:00:00")
    services.invoice_mark_paid(invoice=unpaid, by=staff)
    assert run("2026-03-20 00:00:00") == 0
    assert overdue_mails() == []
    assert unpaid.due_at - unpaid.issued_at == timedelta(days=13, hours=22)
