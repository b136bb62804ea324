"""The e-mails of billing. Each takes ids: they run after the commit that caused them."""

from __future__ import annotations

import logging

from django.conf import settings
from django.urls import reverse

from portal.billing.models import BudgetAlert, Invoice
from portal.billing.money import Money
from portal.billing.periods import Month
from portal.notifications.mail import send_templated

logger = logging.getLogger(__name__)


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def send_invoice_issued(*, invoice_id: int) -> bool:
    """To the owners and billing members, with the PDF attached. Sent once per invoice."""
    from portal.billing import clock
    from portal.billing.documents import invoice_filename, invoice_pdf
    from portal.billing.selectors import billing_recipients

    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    if invoice.emailed_at is not None:
        return False
    claimed = Invoice.objects.filter(pk=invoice_id, emailed_at__isnull=True).update(
        emailed_at=clock.now()
    )
    if not claimed:
        return False
    organization = invoice.organization
    send_templated(
        template="invoice_issued",
        to=billing_recipients(organization=organization),
        context={
            "invoice": invoice,
            "organization": organization,
            "month": Month.of(invoice.month),
            "total": invoice.money("total"),
            "amount_due": invoice.money("amount_due"),
            "url": _url("billing:invoice", organization.slug, invoice.pk),
        },
        attachments=[(invoice_filename(invoice, "pdf"), invoice_pdf(invoice), "application/pdf")],
    )
    return True


def send_invoice_issued_safely(*, invoice_id: int) -> None:
    try:
        send_invoice_issued(invoice_id=invoice_id)
    except Exception:  # a mail server down must not undo an issued invoice
        logger.exception("could not e-mail invoice %s", invoice_id)


def send_budget_threshold(*, alert_id: int) -> None:
    """To the owners and billing members: the month's spend reached a share of the budget."""
    from portal.billing.models import Budget
    from portal.billing.selectors import billing_recipients

    alert = BudgetAlert.objects.select_related("organization").get(pk=alert_id)
    organization = alert.organization
    budget = Budget.objects.filter(organization=organization).first()
    currency = budget.currency if budget else settings.CURRENCY
    send_templated(
        template="budget_threshold",
        to=billing_recipients(organization=organization),
        context={
            "alert": alert,
            "organization": organization,
            "month": Month.of(alert.month),
            "spend": Money(alert.spend, currency),
            "budget": Money(alert.budget_amount, currency),
            "percent": int(alert.spend * 100 / alert.budget_amount),
            "hard_limit": bool(budget and budget.hard_limit),
            "blocked": bool(budget and budget.hard_limit and alert.threshold >= 100),
            "url": _url("billing:overview", organization.slug),
            "budget_url": _url("billing:budget", organization.slug),
        },
    )


def send_budget_threshold_safely(*, alert_id: int) -> None:
    try:
        send_budget_threshold(alert_id=alert_id)
    except Exception:
        logger.exception("could not send budget e-mail %s", alert_id)
