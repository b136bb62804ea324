"""Tunables of billing, read from Django settings with these defaults."""

from django.conf import settings

DEFAULTS = {
    # An issued invoice is due this many days after it is issued; unpaid after that, it is
    # overdue (and launches pause BILLING_DUNNING_PAUSE_DAYS later).
    "BILLING_OVERDUE_DAYS": 14,
    # Prefix of invoice and credit note numbers: BF-2026-000001, BF-CN-2026-000001.
    "BILLING_NUMBER_PREFIX": "BF",
    # Which payment adapter collects issued invoices (see portal.billing.payments).
    "BILLING_PAYMENT_PROVIDER": "invoice",
    # Shown on invoices under "How to pay" by the invoice-and-pay adapter.
    "BILLING_PAYMENT_INSTRUCTIONS": (
        "Pay by bank transfer within the due date, quoting the invoice number as the reference."
    ),
    # Who issues the invoices, printed on them.
    "BILLING_ISSUER": "Backfill Compute Ltd.",
    "BILLING_ISSUER_ADDRESS": "1 Spare Capacity Way, Dublin, Ireland",
    # Budget e-mails at these percentages of the monthly amount, each once a month.
    "BILLING_BUDGET_THRESHOLDS": (50, 80, 100),
    # Overdue invoices (dunning): a reminder this many days after the due date, launches paused
    # this many days after it (0: from the due date), and, if set, the organization suspended
    # this many days after it (0: never). Every step is e-mailed and audited; paying lifts all.
    "BILLING_DUNNING_REMINDER_DAYS": (1, 7, 14),
    "BILLING_DUNNING_PAUSE_DAYS": 7,
    "BILLING_DUNNING_SUSPEND_DAYS": 0,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
