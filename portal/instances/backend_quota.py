"""The backend's own limits follow the portal's GPU quotas (the slurm driver's accounts).

With the slurm driver each organization has a Slurm account whose GrpTRES holds, per GPU model,
the organization's whole quota for that model: every region and both kinds (on-demand and
preemptible) added up, since Slurm's limit covers every partition and QOS of the account.
`portal.quotas.services.quota_limit_set` calls `enqueue_mirror` when a limit changes; the task
(`tasks.quota_mirror`) reads the total when it runs, so that retried or reordered runs all end
on the latest figure. With any other backend nothing is enqueued.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Sum

from portal.provisioning import slurm_accounts


def enqueue_mirror(*, organization_id: int, gpu_model: str) -> None:
    """After commit, mirror the organization's total for `gpu_model` into the backend."""
    if not slurm_accounts.configured():
        return
    from portal.instances import tasks

    transaction.on_commit(lambda: tasks.quota_mirror.delay(organization_id, gpu_model))


def total_limit(*, organization_id: int, gpu_model: str) -> int:
    """The organization's GPUs of a model over every region, on-demand plus preemptible."""
    from portal.quotas.models import Quota

    total = Quota.objects.filter(
        organization_id=organization_id, gpu_model__code=gpu_model
    ).aggregate(total=Sum(F("on_demand_limit") + F("preemptible_limit")))["total"]
    return int(total or 0)


def mirror(*, organization_id: int, gpu_model: str) -> bool:
    """Set the organization's Slurm account limit for `gpu_model` to its portal total (making
    the account if needed). Returns whether a backend took it (False: not the slurm driver,
    or the organization is gone)."""
    from portal.orgs.models import Organization

    slug = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first()
    if slug is None:
        return False
    limit = total_limit(organization_id=organization_id, gpu_model=gpu_model)
    return slurm_accounts.mirror_gpu_limit(slug, gpu_model, limit)
