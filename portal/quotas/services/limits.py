"""Limits and their audit, and reserving GPUs and storage for launches and volumes.

Reserving and releasing lock only the quota row."""

from __future__ import annotations

import logging
from functools import lru_cache

from django.db import connection, transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import GpuModel, Region
from portal.lib.errors import ApplicationError
from portal.orgs.models import Organization
from portal.quotas import sync
from portal.quotas.models import (
    AutoApprovalRule,
    Kind,
    Quota,
    QuotaChange,
    QuotaDefault,
    QuotaRequest,
    kind_of,
)
from portal.quotas.services.checks import (
    QuotaExceeded,
    StorageQuotaExceeded,
    check_kind,
    check_limit_number,
    clean_text,
    quota_for_update,
    rule_label,
)
from portal.web.sql import column, table

logger = logging.getLogger(__name__)

# --- limits -----------------------------------------------------------------------------------


@transaction.atomic
def quota_limit_set(
    *,
    organization: Organization,
    region: Region,
    gpu_model: GpuModel | None,
    kind: str,
    limit: int,
    reason: str,
    changed_by: User | None = None,
    rule: AutoApprovalRule | None = None,
    quota_request: QuotaRequest | None = None,
) -> Quota:
    """Set one limit and record the change (who, old, new, why). Setting the same value is a no-op.

    A limit may be set below what is in use (staff may want to stop new launches); running
    instances are not touched, there is just nothing free until use falls under the limit.
    """
    check_kind(kind)
    if (kind == Kind.STORAGE) != (gpu_model is None):
        raise ApplicationError("A storage limit has no GPU model; a GPU limit has one.")
    check_limit_number(limit, field="limit", kind=kind)
    reason = clean_text(reason, field="reason", what="why the limit changes", max_length=2000)
    quota = quota_for_update(organization=organization, region=region, gpu_model=gpu_model)
    old = quota.limit(kind)
    if old == limit:
        return quota
    setattr(quota, Quota.limit_field(kind), limit)
    quota.save(update_fields=[Quota.limit_field(kind), "updated_at"])
    QuotaChange.objects.create(
        quota=quota,
        kind=kind,
        old_limit=old,
        new_limit=limit,
        changed_by=changed_by,
        rule=rule,
        reason=reason,
        quota_request=quota_request,
    )
    audit_record(
        action="quota.limit_changed",
        organization=organization,
        actor=changed_by,
        actor_kind="staff" if changed_by is not None else None,
        actor_label=None if changed_by is not None else rule_label(rule),
        target=quota,
        detail={"kind": kind, "from": old, "to": limit, "reason": reason},
    )
    # The backend's own limit follows (the slurm driver's account); a no-op for the others.
    if gpu_model is not None:
        sync.enqueue_mirror(organization_id=organization.pk, gpu_model=gpu_model.code)
    logger.info(
        "quota limit %s %s/%s %s: %s -> %s",
        organization.slug,
        region.code,
        gpu_model.code if gpu_model is not None else "storage",
        kind,
        old,
        limit,
    )
    return quota


@transaction.atomic
def quota_apply_defaults(*, organization: Organization) -> list[Quota]:
    """Give a new organization the operator's default limits. Running it twice changes nothing."""
    quotas = []
    for default in QuotaDefault.objects.select_related("region", "gpu_model"):
        if Quota.objects.filter(
            organization=organization, region=default.region, gpu_model=default.gpu_model
        ).exists():
            continue
        for kind, limit in (
            (Kind.ON_DEMAND, default.on_demand_limit),
            (Kind.PREEMPTIBLE, default.preemptible_limit),
        ):
            quota = quota_limit_set(
                organization=organization,
                region=default.region,
                gpu_model=default.gpu_model,
                kind=kind,
                limit=limit,
                reason="Default limit for new organizations.",
            )
        quotas.append(quota)
    return quotas


# --- reserving GPUs for launches ---------------------------------------------------------------


def quota_reserve(
    *,
    organization: Organization,
    region: Region,
    gpu_model: GpuModel,
    gpus: int,
    preemptible: bool,
    allowance: int = 0,
) -> None:
    """Count `gpus` against the limit, or raise QuotaExceeded and count nothing.

    One conditional UPDATE: it adds the GPUs only where they fit under the limit. It locks the
    quota row until the caller's transaction ends, and a concurrent launch's UPDATE waits for
    that lock and then checks the limit again against the committed use (PostgreSQL re-reads
    the row under READ COMMITTED), so launches together can never exceed a limit. Call it in
    the same transaction that records the launch, before any backend call. `allowance`: GPUs
    on top of the limit (a reservation in force of the organization, see portal.reservations).
    """
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ApplicationError("A launch takes at least one GPU.", code="invalid_gpus")
    kind = kind_of(preemptible)
    used_field, limit_field = Quota.used_field(kind), Quota.limit_field(kind)
    if allowance:  # a reservation counts even where no limit was ever set
        Quota.objects.get_or_create(organization=organization, region=region, gpu_model=gpu_model)
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute(
                _reserve_sql(used_field, limit_field),
                [gpus, timezone.now(), organization.pk, region.pk, gpu_model.pk, allowance - gpus],
            )
            if cursor.rowcount:
                return
        # Refused: read why, for the message. A release may have come in between: then try
        # again (the UPDATE, not this read, decides).
        quota = Quota.objects.filter(
            organization=organization, region=region, gpu_model=gpu_model
        ).first()
        limit = (quota.limit(kind) if quota else 0) + allowance
        used = quota.used(kind) if quota else 0
        if quota is None or used + gpus > limit:
            break
    raise QuotaExceeded(
        organization=organization,
        region=region,
        gpu_model=gpu_model,
        preemptible=preemptible,
        requested=gpus,
        limit=limit,
        used=used,
    )


@lru_cache(maxsize=4)
def _reserve_sql(used_field: str, limit_field: str) -> str:
    """quota_reserve's conditional UPDATE, as SQL built once: Django took longer to build it
    than PostgreSQL to run it, at every launch."""
    used, limit = column(Quota, used_field), column(Quota, limit_field)
    return (
        f"UPDATE {table(Quota)} SET {used} = {used} + %s, {column(Quota, 'updated_at')} = %s"  # noqa: S608 - the model's names
        f" WHERE {column(Quota, 'organization')} = %s AND {column(Quota, 'region')} = %s"
        f" AND {column(Quota, 'gpu_model')} = %s AND {used} <= {limit} + %s"
    )


@transaction.atomic(savepoint=False)  # inside a transition's transaction: no savepoint of its own
def quota_release(
    *, organization: Organization, region: Region, gpu_model: GpuModel, gpus: int, preemptible: bool
) -> None:
    """Give back `gpus` reserved by quota_reserve (on termination). Use never falls below zero."""
    if gpus <= 0:
        return
    kind = kind_of(preemptible)
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=gpu_model)
        .first()
    )
    if quota is None:
        logger.warning(
            "quota_release of %s GPUs without a quota row: %s %s/%s",
            gpus,
            organization.slug,
            region.code,
            gpu_model.code,
        )
        return
    used = quota.used(kind)
    if gpus > used:
        logger.warning(
            "quota_release of %s %s GPUs but only %s in use: %s %s/%s",
            gpus,
            kind,
            used,
            organization.slug,
            region.code,
            gpu_model.code,
        )
    setattr(quota, Quota.used_field(kind), max(0, used - gpus))
    quota.save(update_fields=[Quota.used_field(kind), "updated_at"])


# --- reserving storage for volumes --------------------------------------------------------------


@transaction.atomic
def quota_storage_reserve(*, organization: Organization, region: Region, gb: int) -> None:
    """Count `gb` of volume storage against the region's storage limit, or raise
    StorageQuotaExceeded and count nothing. Locks the row like `quota_reserve`: call it in the
    transaction that records the volume (or its growth), before any backend call."""
    if isinstance(gb, bool) or not isinstance(gb, int) or gb < 1:
        raise ApplicationError("A volume takes at least 1 GB.", field="size_gb")
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=None)
        .first()
    )
    limit = quota.storage_limit_gb if quota else 0
    used = quota.storage_used_gb if quota else 0
    if quota is None or used + gb > limit:
        raise StorageQuotaExceeded(
            organization=organization, region=region, requested=gb, limit=limit, used=used
        )
    quota.storage_used_gb = used + gb
    quota.save(update_fields=["storage_used_gb", "updated_at"])


@transaction.atomic
def quota_storage_release(*, organization: Organization, region: Region, gb: int) -> None:
    """Give back `gb` counted by quota_storage_reserve (a deleted volume). Never below zero."""
    if gb <= 0:
        return
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=None)
        .first()
    )
    if quota is None:
        logger.warning("quota_storage_release of %s GB without a row: %s", gb, organization.slug)
        return
    quota.storage_used_gb = max(0, quota.storage_used_gb - gb)
    quota.save(update_fields=["storage_used_gb", "updated_at"])
