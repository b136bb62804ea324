"""The clusters app's reactions to the apps below it, connected in ClustersConfig.ready()."""

from datetime import timedelta

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from portal.clusters import lifecycle, tasks
from portal.clusters.conf import setting
from portal.clusters.models import FINAL_STATES, TRANSITIONAL_STATES, Cluster, State
from portal.instances.models import FINAL_STATES as NODE_FINAL_STATES
from portal.instances.models import Instance
from portal.instances.models import State as NodeState
from portal.instances.signals import instance_reclaim_noticed, instances_reconciled


@receiver(instances_reconciled, dispatch_uid="clusters-redrive-on-reconcile")
def redrive_on_reconcile(sender, report, redrive: bool, **kwargs) -> None:
    """Re-drive clusters whose task went quiet, and look at every living cluster that has an
    ended node (a lost or reclaimed machine found by reconciliation): it ends whole."""
    if not redrive:
        return
    stale = timezone.now() - timedelta(seconds=setting("CLUSTER_STALE_AFTER"))
    stuck = Cluster.objects.filter(state__in=TRANSITIONAL_STATES, state_changed_at__lt=stale)
    broken = (
        Instance.objects.filter(cluster_id__isnull=False, state__in=NODE_FINAL_STATES)
        .exclude(cluster_id__in=Cluster.objects.filter(state__in=FINAL_STATES).values("pk"))
        .values("cluster_id")
    )
    alive_with_broken = Cluster.objects.exclude(state__in=FINAL_STATES).filter(pk__in=broken)
    # Nodes stopped one by one (a suspension, a budget's hard limit): the cluster stops whole.
    stopped = Instance.objects.filter(
        cluster_id__isnull=False, state__in=(NodeState.STOPPING, NodeState.STOPPED)
    ).values("cluster_id")
    running_with_stopped = Cluster.objects.filter(state=State.RUNNING, pk__in=stopped)
    for cluster_id in {
        *stuck.values_list("pk", flat=True),
        *alive_with_broken.values_list("pk", flat=True),
        *running_with_stopped.values_list("pk", flat=True),
    }:
        tasks.enqueue(cluster_id, "act")


@receiver(instance_reclaim_noticed, dispatch_uid="clusters-reclaim-whole")
def reclaim_whole(sender, instance, **kwargs) -> None:
    """A node's reclaim notice is the cluster's (it is reclaimed whole): note it once, and
    look at the cluster just after the notice ends, so that it ends whole at that second."""
    if instance.cluster_id is None or instance.reclaim_at is None:
        return
    cluster_id, reclaim_at = instance.cluster_id, instance.reclaim_at
    if lifecycle.note_reclaim(cluster_id, reclaim_at=reclaim_at):
        countdown = max(0.0, (reclaim_at - timezone.now()).total_seconds()) + 1
        transaction.on_commit(
            lambda: tasks.cluster_drive.apply_async((cluster_id, "poll"), countdown=countdown)
        )
