"""New organizations start with the operator's default limits.

A post_save receiver rather than a call in orgs.services.organization_create: organizations
do not know about quotas (quotas depend on orgs, never the other way round), and every way an
organization comes to exist (sign-up, the console, admin, the demo seed) passes through here.
The receiver only hands over to the service that does the work and writes the audit.
"""

from django.db.models.signals import post_save
from django.dispatch import receiver

from portal.orgs.models import Organization
from portal.quotas.services import quota_apply_defaults


@receiver(post_save, sender=Organization, dispatch_uid="quotas_apply_defaults")
def apply_default_quotas(sender, instance: Organization, created: bool, raw=False, **kwargs):
    if created and not raw:
        quota_apply_defaults(organization=instance)
