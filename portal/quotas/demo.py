"""Demo quotas for `manage.py seed_demo`: defaults, an automatic rule, and the demo org's limits."""

from portal.catalog.models import GpuModel, Region
from portal.orgs.models import Organization
from portal.quotas.models import AutoApprovalRule, Kind, Quota, QuotaDefault
from portal.quotas.services import quota_apply_defaults, quota_limit_set

# gpu model code -> (on-demand, preemptible) default for every region; zero is a real default
DEFAULTS = {"l40s": (2, 4), "a100": (0, 0), "h100": (0, 0)}
DEMO_LIMITS = [("us-east-1", "h100", Kind.ON_DEMAND, 8), ("us-east-1", "h100", Kind.PREEMPTIBLE, 8)]
# region -> GB of volume storage the demo organization may keep there
DEMO_STORAGE = [("us-east-1", 1000)]


def seed_quotas(*, organization: Organization) -> None:
    """Creates what is missing, changes nothing that exists: defaults and the rule only if
    absent, the demo limits only for a limit the organization did not have yet (never set back
    under its running instances)."""
    regions = list(Region.objects.filter(active=True))
    gpu_models = {g.code: g for g in GpuModel.objects.filter(code__in=DEFAULTS)}
    for region in regions:
        for code, (on_demand, preemptible) in DEFAULTS.items():
            if code in gpu_models:
                QuotaDefault.objects.get_or_create(
                    region=region,
                    gpu_model=gpu_models[code],
                    defaults={"on_demand_limit": on_demand, "preemptible_limit": preemptible},
                )
    if "l40s" in gpu_models:
        AutoApprovalRule.objects.get_or_create(
            name="Small L40S requests",
            defaults={
                "gpu_model": gpu_models["l40s"],
                "max_limit": 8,
                "position": 10,
                "require_verified_email": True,
                "require_no_unpaid_invoice": True,
            },
        )
    had = set(
        Quota.objects.filter(organization=organization).values_list(
            "region__code", "gpu_model__code"
        )
    )
    quota_apply_defaults(organization=organization)
    for region_code, gpu_code, kind, limit in DEMO_LIMITS:
        found = next((r for r in regions if r.code == region_code), None)
        if found is None or gpu_code not in gpu_models or (region_code, gpu_code) in had:
            continue
        quota_limit_set(
            organization=organization,
            region=found,
            gpu_model=gpu_models[gpu_code],
            kind=kind,
            limit=limit,
            reason="Demo data.",
        )
    for region_code, gb in DEMO_STORAGE:
        found = next((r for r in regions if r.code == region_code), None)
        if found is None or (region_code, None) in had:
            continue
        quota_limit_set(
            organization=organization,
            region=found,
            gpu_model=None,
            kind=Kind.STORAGE,
            limit=gb,
            reason="Demo data.",
        )
