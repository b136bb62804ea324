"""The operator's side reacts to each capacity report: one sample of the fleet over time
(portal.capacity.history), with what is sold from the database; and to every write that
moves a part of the overview kept between views (portal.operations.kept)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.billing.models import Invoice
from portal.capacity.history import Sample, history_record
from portal.capacity.models import CapacityPeriod
from portal.capacity.selectors import demand_by_place
from portal.capacity.signals import capacity_snapshot_stored
from portal.catalog.models import GpuModel, InstanceType, Region
from portal.clusters.models import Cluster
from portal.instances.models import Instance
from portal.instances.signals import instance_state_changed, instances_state_changed
from portal.operations import kept
from portal.operations.history import history_changed
from portal.operations.selectors import sold_by_place
from portal.orgs.models import Organization, Suspension
from portal.quotas.models import QuotaRequest
from portal.reservations.models import Reservation, ReservationRequest


@receiver(capacity_snapshot_stored, dispatch_uid="operations-capacity-history")
def on_capacity_snapshot_stored(sender, snapshot, **kwargs) -> None:
    sold = sold_by_place(snapshot.taken_at)
    samples = []
    for place, numbers in demand_by_place(snapshot).items():
        on_demand, preemptible, reserved = sold.get(place, (0, 0, 0))
        samples.append(
            Sample(
                region=place[0],
                gpu_model=place[1],
                fleet=numbers.fleet,
                internal=numbers.internal,
                on_demand=on_demand,
                preemptible=preemptible,
                reserved=reserved,
                free=numbers.free,
            )
        )
    history_record(at=snapshot.taken_at, samples=samples)
    history_changed()


@receiver(post_save, sender=CapacityPeriod, dispatch_uid="operations-history-saved")
@receiver(post_delete, sender=CapacityPeriod, dispatch_uid="operations-history-deleted")
def on_capacity_period_written(sender, **kwargs) -> None:
    history_changed()


# --- The overview's kept parts (portal/operations/kept.py) --------------------------------------
#
# Every write that moves what a kept part shows replaces its version. State changes go through
# the lifecycle's transitions (their signals; `transition_many` updates the rows in bulk); a
# launch creates its instance with `create` (post_save), a cluster its nodes in bulk in the
# transaction that saves the cluster (post_save of the cluster, retired again on commit).


@receiver(instance_state_changed, dispatch_uid="operations-kept-instance-moved")
@receiver(instances_state_changed, dispatch_uid="operations-kept-instances-moved")
@receiver(post_save, sender=Instance, dispatch_uid="operations-kept-instance-saved")
@receiver(post_delete, sender=Instance, dispatch_uid="operations-kept-instance-deleted")
@receiver(post_save, sender=Cluster, dispatch_uid="operations-kept-cluster-saved")
def on_instances_written(sender, **kwargs) -> None:
    kept.changed(kept.INSTANCES)


@receiver(post_save, sender=QuotaRequest, dispatch_uid="operations-kept-quota-request-saved")
@receiver(post_delete, sender=QuotaRequest, dispatch_uid="operations-kept-quota-request-deleted")
@receiver(post_save, sender=ReservationRequest, dispatch_uid="operations-kept-rr-saved")
@receiver(post_delete, sender=ReservationRequest, dispatch_uid="operations-kept-rr-deleted")
@receiver(post_save, sender=Suspension, dispatch_uid="operations-kept-suspension-saved")
@receiver(post_delete, sender=Suspension, dispatch_uid="operations-kept-suspension-deleted")
@receiver(post_save, sender=Invoice, dispatch_uid="operations-kept-invoice-saved")
@receiver(post_delete, sender=Invoice, dispatch_uid="operations-kept-invoice-deleted")
def on_requests_written(sender, **kwargs) -> None:
    kept.changed(kept.REQUESTS)


@receiver(post_save, sender=Reservation, dispatch_uid="operations-kept-reservation-saved")
@receiver(post_delete, sender=Reservation, dispatch_uid="operations-kept-reservation-deleted")
def on_reservations_written(sender, **kwargs) -> None:
    kept.changed(kept.RESERVATIONS)


# Names and codes both parts show (an organization's on the failed list and the requests).
@receiver(post_save, sender=Organization, dispatch_uid="operations-kept-organization-saved")
@receiver(post_delete, sender=Organization, dispatch_uid="operations-kept-organization-deleted")
@receiver(post_save, sender=Region, dispatch_uid="operations-kept-region-saved")
@receiver(post_delete, sender=Region, dispatch_uid="operations-kept-region-deleted")
@receiver(post_save, sender=GpuModel, dispatch_uid="operations-kept-gpu-model-saved")
@receiver(post_delete, sender=GpuModel, dispatch_uid="operations-kept-gpu-model-deleted")
@receiver(post_save, sender=InstanceType, dispatch_uid="operations-kept-type-saved")
@receiver(post_delete, sender=InstanceType, dispatch_uid="operations-kept-type-deleted")
def on_names_written(sender, **kwargs) -> None:
    kept.changed()  # every part
