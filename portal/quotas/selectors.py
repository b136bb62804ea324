"""Reads for quotas, scoped to one organization."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.http import Http404

from portal.catalog.models import GpuModel, Region
from portal.catalog.selectors import offered_pairs
from portal.orgs.models import Organization
from portal.orgs.roles import Role
from portal.quotas.models import (
    OPEN_STATES,
    Kind,
    Quota,
    QuotaChange,
    QuotaRequest,
    QuotaRequestQuerySet,
)
from portal.web.sql import ReadBuiltOnce


@dataclass(frozen=True)
class LimitUse:
    limit: int
    used: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def percent_used(self) -> int:
        if not self.limit:
            return 100 if self.used else 0
        return min(100, round(100 * self.used / self.limit))


@dataclass
class QuotaLine:
    """One region and GPU model: both limits, their use, and the open requests for them."""

    region: Region
    gpu_model: GpuModel
    on_demand: LimitUse
    preemptible: LimitUse
    offered: bool
    open_requests: list[QuotaRequest] = field(default_factory=list)

    def open_request(self, kind: str) -> QuotaRequest | None:
        return next((r for r in self.open_requests if r.kind == kind), None)

    @property
    def open_on_demand_request(self) -> QuotaRequest | None:
        return self.open_request(Kind.ON_DEMAND)

    @property
    def open_preemptible_request(self) -> QuotaRequest | None:
        return self.open_request(Kind.PREEMPTIBLE)


def quota_lines(*, organization: Organization) -> list[QuotaLine]:
    """Every limit the organization has, and a zero line for every place it could ask for one.

    A fixed number of queries: quotas, offered pairs, their regions and GPU models, open requests.
    """
    quotas = Quota.objects.filter(organization=organization, gpu_model__isnull=False)
    return _quota_lines(
        quotas.select_related("region", "gpu_model"),
        quota_request_list_for_organization(organization=organization).open(),
    )


@dataclass
class StorageLine:
    """One region's volume storage: the limit in GB, its use, and an open request for it."""

    region: Region
    use: LimitUse
    open_request: QuotaRequest | None = None


def storage_lines(*, organization: Organization) -> list[StorageLine]:
    """The storage limit and use of every active region (zero where none was granted)."""
    return _storage_lines(
        Quota.objects.filter(organization=organization, gpu_model__isnull=True),
        QuotaRequest.objects.open().filter(organization=organization, kind=Kind.STORAGE),
    )


@dataclass(frozen=True)
class QuotasPage:
    """What the quotas page shows: the lines per place, the storage per region, the open
    requests, the latest past requests and the latest changes of limits."""

    lines: list[QuotaLine]
    storage_lines: list[StorageLine]
    open_requests: list[QuotaRequest]
    past_requests: list[QuotaRequest]
    changes: list[QuotaChange]


HISTORY_ROWS = 25  # past requests, and changes of limits, on the quotas page


def quotas_page(*, organization: Organization) -> QuotasPage:
    """`quota_lines`, `storage_lines`, the open requests and the history, with the
    organization's quotas and open requests read once for all of them, each read built once
    per process (`ReadBuiltOnce`: the page made the ORM build six queries with their joins)."""
    quotas = _QUOTAS.objects(organization_id=organization.pk)
    open_requests = _OPEN_REQUESTS.objects(organization_id=organization.pk)
    return QuotasPage(
        lines=_quota_lines(
            [q for q in quotas if q.gpu_model_id is not None],
            [r for r in open_requests if r.gpu_model_id is not None],
        ),
        storage_lines=_storage_lines(
            [q for q in quotas if q.gpu_model_id is None],
            [r for r in open_requests if r.kind == Kind.STORAGE],
        ),
        open_requests=open_requests,
        past_requests=_PAST_REQUESTS.objects(organization_id=organization.pk),
        changes=_CHANGES.objects(organization_id=organization.pk),
    )


def _requests_of(organization_id: int) -> QuotaRequestQuerySet:
    return quota_request_list_for_organization(organization=Organization(pk=organization_id))


def _changes_of(organization_id: int) -> QuerySet[QuotaChange]:
    return quota_change_list_for_organization(organization=Organization(pk=organization_id))


_QUOTAS = ReadBuiltOnce(
    lambda organization_id: Quota.objects.filter(organization_id=organization_id).select_related(
        "region", "gpu_model"
    ),
    organization_id=int,
)
_OPEN_REQUESTS = ReadBuiltOnce(
    lambda organization_id: _requests_of(organization_id).open(), organization_id=int
)
_PAST_REQUESTS = ReadBuiltOnce(
    lambda organization_id: _requests_of(organization_id).exclude(state__in=OPEN_STATES)[
        :HISTORY_ROWS
    ],
    organization_id=int,
)
_CHANGES = ReadBuiltOnce(
    lambda organization_id: _changes_of(organization_id)[:HISTORY_ROWS], organization_id=int
)


def _quota_lines(
    quota_rows: Iterable[Quota], open_requests: Iterable[QuotaRequest]
) -> list[QuotaLine]:
    quotas = {(q.region_id, q.gpu_model_id): q for q in quota_rows if q.gpu_model_id is not None}
    offered = offered_pairs()
    missing = offered - set(quotas)
    regions = Region.objects.in_bulk({r for r, _ in missing}) if missing else {}
    gpu_models = GpuModel.objects.in_bulk({g for _, g in missing}) if missing else {}
    lines = {}
    for key, quota in quotas.items():
        assert quota.gpu_model is not None
        lines[key] = QuotaLine(
            region=quota.region,
            gpu_model=quota.gpu_model,
            on_demand=LimitUse(quota.on_demand_limit, quota.on_demand_used),
            preemptible=LimitUse(quota.preemptible_limit, quota.preemptible_used),
            offered=key in offered,
        )
    for region_id, gpu_id in missing:
        lines[(region_id, gpu_id)] = QuotaLine(
            region=regions[region_id],
            gpu_model=gpu_models[gpu_id],
            on_demand=LimitUse(0, 0),
            preemptible=LimitUse(0, 0),
            offered=True,
        )
    for quota_request in open_requests:
        if quota_request.gpu_model_id is None:
            continue  # a storage request: see storage_lines
        line = lines.get((quota_request.region_id, quota_request.gpu_model_id))
        if line is not None:
            line.open_requests.append(quota_request)
    return sorted(
        lines.values(),
        key=lambda line: (
            not (line.on_demand.limit or line.preemptible.limit),
            line.region.code,
            line.gpu_model.name,
        ),
    )


def _storage_lines(
    quota_rows: Iterable[Quota], open_requests: Iterable[QuotaRequest]
) -> list[StorageLine]:
    rows = {q.region_id: q for q in quota_rows}
    open_by_region = {r.region_id: r for r in open_requests}
    lines = []
    for region in Region.objects.filter(active=True).order_by("code"):
        row = rows.get(region.pk)
        lines.append(
            StorageLine(
                region=region,
                use=LimitUse(row.storage_limit_gb, row.storage_used_gb) if row else LimitUse(0, 0),
                open_request=open_by_region.get(region.pk),
            )
        )
    return lines


def quota_request_list_for_organization(*, organization: Organization) -> QuotaRequestQuerySet:
    return QuotaRequest.objects.filter(organization=organization).select_related(
        "region", "gpu_model", "created_by", "decided_by", "decided_by_rule"
    )


def quota_request_get_for_organization(*, organization: Organization, pk: int) -> QuotaRequest:
    """A request of this organization; any other organization's request is a 404."""
    quota_request = (
        quota_request_list_for_organization(organization=organization).filter(pk=pk).first()
    )
    if quota_request is None:
        raise Http404("No such quota request")
    return quota_request


def quota_request_conversation(*, quota_request: QuotaRequest):
    return quota_request.messages.select_related("user", "rule")


def quota_change_list_for_organization(*, organization: Organization) -> QuerySet[QuotaChange]:
    return QuotaChange.objects.filter(quota__organization=organization).select_related(
        "quota__region", "quota__gpu_model", "changed_by", "rule", "quota_request"
    )


def quota_notification_recipients(*, organization: Organization) -> list[str]:
    """Who hears of decisions on the organization's requests: its owners and admins."""
    return sorted(
        set(
            organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN]).values_list(
                "user__email", flat=True
            )
        )
    )


def quota_get(
    *, organization: Organization, region: Region, gpu_model: GpuModel | None
) -> Quota | None:
    return Quota.objects.filter(
        organization=organization, region=region, gpu_model=gpu_model
    ).first()


def quota_above_zero_for_organization(*, organization: Organization) -> QuerySet[Quota]:
    """The organization's quotas with some limit above zero (either kind)."""
    return Quota.objects.filter(organization=organization).filter(
        Q(on_demand_limit__gt=0) | Q(preemptible_limit__gt=0)
    )


def quota_any_for_organization(*, organization: Organization) -> bool:
    """Whether the organization may run any GPU at all (some limit above zero, either kind)."""
    return quota_above_zero_for_organization(organization=organization).exists()
