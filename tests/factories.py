from datetime import timedelta
from decimal import Decimal

import factory
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.utils import timezone

from portal.accounts.models import User
from portal.billing.models import Invoice
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        """Users have a verified primary address unless `verified=False` is passed."""
        if not create:
            return
        self.save()
        EmailAddress.objects.create(
            user=self, email=self.email, primary=True, verified=extracted is not False
        )

    @factory.post_generation
    def two_factor(self, create, extracted, **kwargs):
        """Staff have an authenticator app (the admin needs two-factor) unless
        `two_factor=False` is passed; others only with `two_factor=True`."""
        if create and (extracted or (self.is_staff and extracted is None)):
            self.totp_secret = generate_totp_secret()  # for a test that signs in with a code
            TOTP.activate(self, self.totp_secret)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class InvoiceFactory(factory.django.DjangoModelFactory):
    """An issued, unpaid invoice of `amount` (USD, no tax), due 14 days after issue; the period
    is the 30 days before issue unless given."""

    class Meta:
        model = Invoice

    class Params:
        amount = Decimal("1.00")

    organization = factory.SubFactory(OrganizationFactory)
    number = factory.Sequence(lambda n: f"T-{n}")
    issued_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyAttribute(lambda o: o.issued_at + timedelta(days=14))
    period_end = factory.LazyAttribute(lambda o: o.issued_at)
    period_start = factory.LazyAttribute(lambda o: o.period_end - timedelta(days=30))
    month = factory.LazyAttribute(lambda o: o.period_start.date().replace(day=1))
    customer_name = factory.LazyAttribute(lambda o: o.organization.name)
    currency = "USD"
    subtotal = factory.LazyAttribute(lambda o: o.amount)
    tax_rate = Decimal("0")
    tax = Decimal("0")
    total = factory.LazyAttribute(lambda o: o.amount)
    amount_due = factory.LazyAttribute(lambda o: o.amount)
    payment_provider = "invoice"
