"""The capacity app reacts to the catalog: the instance types' GPU models it keeps for the
snapshots (`snapshot.catalog_gpu_models`) are read again after any change to them."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.capacity.snapshot import catalog_gpu_models_changed
from portal.catalog.models import GpuModel, InstanceType


@receiver(post_save, sender=InstanceType, dispatch_uid="capacity-instance-type-saved")
@receiver(post_delete, sender=InstanceType, dispatch_uid="capacity-instance-type-deleted")
@receiver(post_save, sender=GpuModel, dispatch_uid="capacity-gpu-model-saved")
@receiver(post_delete, sender=GpuModel, dispatch_uid="capacity-gpu-model-deleted")
def on_catalog_changed(sender, **kwargs) -> None:
    catalog_gpu_models_changed()
    # Again once committed: a report between the two would have read the catalog as it was.
    transaction.on_commit(catalog_gpu_models_changed)
