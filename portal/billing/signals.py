"""Writes of usage outside metering (the admin, data fixes, deleted instances) also retire the
organization's kept usage sums (`portal.billing.usage`); metering retires them itself."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.billing.models import UsageInterval
from portal.billing.usage import usage_changed
from portal.instances.models import Instance


@receiver(post_save, sender=UsageInterval, dispatch_uid="billing-usage-saved")
def usage_saved(sender, instance: UsageInterval, **kwargs) -> None:
    usage_changed(instance.organization_id)


@receiver(post_delete, sender=Instance, dispatch_uid="billing-instance-deleted")
def instance_deleted(sender, instance: Instance, **kwargs) -> None:
    usage_changed(instance.organization_id)
