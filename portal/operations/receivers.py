"""The operator's side reacts to each capacity report: one sample of the fleet over time
(portal.capacity.history), with what is sold from the database."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.capacity.history import Sample, history_record
from portal.capacity.models import CapacityPeriod
from portal.capacity.selectors import demand_by_place
from portal.capacity.signals import capacity_snapshot_stored
from portal.operations.history import history_changed
from portal.operations.selectors import sold_by_place


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
