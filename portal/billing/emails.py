"""The e-mails of billing, one builder per kind (see portal.notifications.registry)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.urls import reverse

from portal.billing.documents import invoice_filename, invoice_pdf
from portal.billing.models import Budget, BudgetAlert, Invoice
from portal.billing.money import Money
from portal.billing.periods import Month
from portal.billing.selectors import billing_recipients, invoice_balance_due
from portal.instances.models import Instance
from portal.notifications.registry import Email, email_kind


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


@email_kind("invoice_issued", category="invoices")
def invoice_issued(*, invoice_id: int) -> list[Email]:
    """To the owners and billing members, with the PDF attached (made in the worker)."""
    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    organization = invoice.organization
    return [
        Email(
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
            attachments=[
                (invoice_filename(invoice, "pdf"), invoice_pdf(invoice), "application/pdf")
            ],
        )
    ]


@email_kind("budget_threshold", category="budget")
def budget_threshold(*, alert_id: int) -> list[Email]:
    """To the owners and billing members: the month's spend reached a share of the budget."""
    alert = BudgetAlert.objects.select_related("organization").get(pk=alert_id)
    organization = alert.organization
    budget = Budget.objects.filter(organization=organization).first()
    currency = budget.currency if budget else settings.CURRENCY
    return [
        Email(
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
    ]


@email_kind("budget_hard_limit_stopped")
def budget_hard_limit_stopped(
    *, alert_id: int, instance_ids: list[int], stop_at: str | None = None
) -> list[Email]:
    """To the owners and billing members: the hard limit stops these running instances at
    `stop_at` (the end of their notice), unless the budget is raised before."""
    alert = BudgetAlert.objects.select_related("organization").get(pk=alert_id)
    organization = alert.organization
    budget = Budget.objects.filter(organization=organization).first()
    currency = budget.currency if budget else settings.CURRENCY
    instances = list(
        Instance.objects.filter(pk__in=instance_ids, organization=organization)
        .select_related("instance_type", "region")
        .order_by("name")
    )
    return [
        Email(
            template="budget_hard_limit_stopped",
            to=billing_recipients(organization=organization),
            context={
                "alert": alert,
                "organization": organization,
                "month": Month.of(alert.month),
                "spend": Money(alert.spend, currency),
                "budget": Money(alert.budget_amount, currency),
                "instances": instances,
                "stop_at": datetime.fromisoformat(stop_at) if stop_at else None,
                "budget_url": _url("billing:budget", organization.slug),
                "instances_url": _url("instances:list", organization.slug),
            },
        )
    ]


@email_kind("invoice_overdue")
def invoice_overdue(
    *,
    invoice_id: int,
    days_overdue: int,
    suspend_in_days: int | None = None,
    pause_in_days: int = 0,
) -> list[Email]:
    """To the owners and billing members: the invoice is overdue, whether launches are paused
    (or in how many days they will be), and what comes next."""
    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    if invoice.paid_at is not None:
        return []  # paid since the reminder was queued
    organization = invoice.organization
    return [
        Email(
            template="invoice_overdue",
            to=billing_recipients(organization=organization),
            context={
                "invoice": invoice,
                "organization": organization,
                "days_overdue": days_overdue,
                "suspend_in_days": suspend_in_days,
                "pause_in_days": pause_in_days,
                "balance": Money(invoice_balance_due(invoice), invoice.currency),
                "url": _url("billing:invoice", organization.slug, invoice.pk),
            },
        )
    ]
