"""The backend's own limits follow the portal's GPU quotas (the slurm driver's accounts).

With the slurm driver each organization has a Slurm account whose GrpTRES holds, per GPU model,
the organization's whole quota for that model: every region and both kinds (on-demand and
preemptible) added up, since Slurm's limit covers every partition and QOS of the account.
`portal.quotas.services.quota_limit_set` calls `enqueue_mirror` when a limit changes; the task
(`tasks.quota_mirror`) sets every GPU model of the organization at once from the quotas as they
are when it runs, one run per organization at a time (a cache lock), so that concurrent,
retried or reordered runs all end on the latest figures: slurmdbd replaces an account's whole
GrpTRES list on every change, and two runs writing one model each would lose one. With any
other backend nothing is enqueued.
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


def total_limits(*, organization_id: int) -> dict[str, int]:
    """The organization's GPUs per model over every region, on-demand plus preemptible."""
    from portal.quotas.models import Quota

    rows = (
        Quota.objects.filter(organization_id=organization_id)
        .values("gpu_model__code")
        .annotate(total=Sum(F("on_demand_limit") + F("preemptible_limit")))
    )
    return {row["gpu_model__code"]: int(row["total"] or 0) for row in rows}


def mirror(*, organization_id: int) -> bool:
    """Set the organization's Slurm account limits to its portal totals, every GPU model in
    one call (making the account if needed). The caller holds `lock_key` so that two runs for
    one organization never interleave; reading the quotas inside it, the last run writes the
    latest figures. Returns whether a backend took them (False: not the slurm driver, or the
    organization is gone)."""
    from portal.orgs.models import Organization

    slug = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first()
    if slug is None:
        return False
    return slurm_accounts.mirror_gpu_limits(slug, total_limits(organization_id=organization_id))


def lock_key(organization_id: int) -> str:
    return f"instances:quota-mirror:{organization_id}"
