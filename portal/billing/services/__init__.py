"""Writes of billing: metering, invoices, credits, credit notes, payments, budgets.

Every function here may run twice without harm: metering recomputes an instance's intervals
from its timeline under a row lock; invoices are unique per organization and month and take
their number from a locked counter in the same transaction; budget e-mails claim a unique
marker row before they are sent.

The package: `usage_sync` (metering), `invoices` (invoices, payments, credit notes and
grants) and `budgets`.
"""

from portal.billing.services.budgets import (
    budget_check,
    budget_set,
    budgets_check_all,
)
from portal.billing.services.invoices import (
    MAX_MONEY,
    credit_grant,
    credit_note_issue,
    invoice_issue,
    invoice_mark_paid,
    invoices_issue_for_month,
    organizations_to_invoice,
    parse_amount,
)
from portal.billing.services.usage_sync import (
    PENDING_LAG,
    PENDING_MARKS_KEY,
    instances_needing_sync,
    usage_sync_instance,
    usage_sync_instances,
    usage_sync_organization,
    usage_sync_pending,
)

__all__ = [
    "MAX_MONEY",
    "PENDING_LAG",
    "PENDING_MARKS_KEY",
    "budget_check",
    "budget_set",
    "budgets_check_all",
    "credit_grant",
    "credit_note_issue",
    "instances_needing_sync",
    "invoice_issue",
    "invoice_mark_paid",
    "invoices_issue_for_month",
    "organizations_to_invoice",
    "parse_amount",
    "usage_sync_instance",
    "usage_sync_instances",
    "usage_sync_organization",
    "usage_sync_pending",
]
