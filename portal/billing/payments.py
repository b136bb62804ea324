"""How issued invoices get paid: one small interface, one adapter per way of paying.

The default, `InvoiceAndPay`, collects nothing itself: the customer pays by bank transfer and
staff mark the invoice paid in admin. A card adapter (Stripe) would implement the same protocol
(create a payment intent when an invoice is issued, mark it paid from a webhook) and be chosen
with settings.BILLING_PAYMENT_PROVIDER; nothing else in billing would change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from portal.billing.conf import setting

if TYPE_CHECKING:
    from portal.billing.models import Invoice


class PaymentProvider(Protocol):
    name: str
    label: str

    def invoice_issued(self, invoice: Invoice) -> None:
        """Called in the issuing transaction; start collecting (enqueue work on commit)."""

    def payment_instructions(self, invoice: Invoice) -> str:
        """What the invoice tells the customer to do."""


class InvoiceAndPay:
    """Pay by bank transfer against the invoice; staff record the payment."""

    name = "invoice"
    label = "Invoice and pay (bank transfer)"

    def invoice_issued(self, invoice: Invoice) -> None:
        return None  # nothing to collect: the e-mailed invoice is the request to pay

    def payment_instructions(self, invoice: Invoice) -> str:
        return setting("BILLING_PAYMENT_INSTRUCTIONS")


PROVIDERS: dict[str, type] = {InvoiceAndPay.name: InvoiceAndPay}


def get_provider(name: str | None = None) -> PaymentProvider:
    name = name or setting("BILLING_PAYMENT_PROVIDER")
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise LookupError(
            f"Unknown payment provider {name!r}; known: {sorted(PROVIDERS)}"
        ) from None
