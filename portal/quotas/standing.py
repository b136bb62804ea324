"""Whether an organization is in good standing: what automatic approval and staff look at."""

from dataclasses import dataclass

from allauth.account.models import EmailAddress

from portal.orgs.models import Organization
from portal.orgs.roles import Role
from portal.orgs.standing import organization_hold


def organization_has_unpaid_invoice(organization: Organization) -> bool:
    """True when an issued invoice of the organization is past due and not paid.

    It is the one place the quota rules ask; billing answers through the hold it registers
    (settings.BILLING_OVERDUE_DAYS).
    """
    return organization_hold(organization, "invoice_overdue") is not None


def organization_email_verified(organization: Organization) -> bool:
    """True when at least one owner has a verified e-mail address."""
    return EmailAddress.objects.filter(
        verified=True,
        user__memberships__organization=organization,
        user__memberships__role=Role.OWNER,
    ).exists()


@dataclass(frozen=True)
class Standing:
    email_verified: bool
    unpaid_invoice: bool

    @property
    def good(self) -> bool:
        return self.email_verified and not self.unpaid_invoice


def organization_standing(organization: Organization) -> Standing:
    return Standing(
        email_verified=organization_email_verified(organization),
        unpaid_invoice=organization_has_unpaid_invoice(organization),
    )
