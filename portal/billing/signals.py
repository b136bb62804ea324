"""What the billing app announces, for apps above it to react to (webhooks). Sent inside the
transaction that makes the change."""

from django.dispatch import Signal

# An invoice was issued: `invoice`.
invoice_issued = Signal()
# This month's spend reached a threshold of the budget (told once): `alert`.
budget_threshold_reached = Signal()
