"""The backend's own limits follow the portal's GPU quotas (quota mirroring).

A backend with the `QuotaMirroringBackend` capability (the slurm driver: each organization's
Slurm account's GrpTRES) enforces, per GPU model, the organization's whole quota for that
model: every region and both kinds (on-demand and preemptible) added up, since such a limit
covers the whole cluster. `services.quota_limit_set` calls `enqueue_mirror` when a limit
changes; the task (`tasks.quota_mirror`) sets every GPU model of the organization at once from
the quotas as they are when it runs, one run per organization at a time (a cache lock), so that
concurrent, retried or reordered runs all end on the latest figures: the backend replaces an
account's whole set of limits on every change, and two runs writing one model each would lose
one. With a backend without the capability nothing is enqueued.

This is the only module of the quotas app that calls the backend (`get_backend()`); it knows
the capability, never a driver.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Sum

from portal.orgs.models import Organization
from portal.provisioning import (
    driver_supports_quota_mirroring,
    get_backend,
    get_backend_class,
    supports_quota_mirroring,
)
from portal.quotas import tasks
from portal.quotas.models import Quota


def backend_mirrors_quotas() -> bool:
    """Whether the configured backend has the capability (told from its class, not built)."""
    try:
        return driver_supports_quota_mirroring(get_backend_class())
    except ValueError:
        return False  # no such backend: launches say so; quotas have nothing to mirror into


def enqueue_mirror(*, organization_id: int, gpu_model: str) -> None:
    """After commit, mirror the organization's total for `gpu_model` (and every other model's)
    into the backend; nothing when the backend keeps no limits of its own."""
    if not backend_mirrors_quotas():
        return
    transaction.on_commit(lambda: tasks.quota_mirror.delay(organization_id, gpu_model))


def total_limits(*, organization_id: int) -> dict[str, int]:
    """The organization's GPUs per model over every region, on-demand plus preemptible."""
    rows = (
        Quota.objects.filter(organization_id=organization_id)
        .values("gpu_model__code")
        .annotate(total=Sum(F("on_demand_limit") + F("preemptible_limit")))
    )
    return {row["gpu_model__code"]: int(row["total"] or 0) for row in rows}


def mirror(*, organization_id: int) -> bool:
    """Set the organization's limits in the backend to its portal totals, every GPU model in
    one call (the backend makes its account if needed). The caller holds `lock_key` so that two
    runs for one organization never interleave; reading the quotas inside it, the last run
    writes the latest figures. Returns whether a backend took them (False: the backend has no
    such capability, or the organization is gone)."""
    slug = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first()
    if slug is None:
        return False
    backend = get_backend()
    if not supports_quota_mirroring(backend):
        return False
    backend.set_account_limits(slug, total_limits(organization_id=organization_id))
    return True


def lock_key(organization_id: int) -> str:
    return f"quotas:mirror:{organization_id}"
