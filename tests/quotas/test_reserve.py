"""quota_reserve and quota_release: the enforcement that launching calls."""

import pytest

from portal.lib.errors import ApplicationError
from portal.quotas.models import Kind, Quota
from portal.quotas.services import QuotaExceeded, quota_release, quota_reserve

pytestmark = pytest.mark.django_db


@pytest.fixture
def reserve(team, gpu_catalog):
    def call(gpus, preemptible=False):
        return quota_reserve(
            organization=team.organization,
            region=gpu_catalog.us_east,
            gpu_model=gpu_catalog.h100,
            gpus=gpus,
            preemptible=preemptible,
        )

    return call


@pytest.fixture
def release(team, gpu_catalog):
    def call(gpus, preemptible=False):
        return quota_release(
            organization=team.organization,
            region=gpu_catalog.us_east,
            gpu_model=gpu_catalog.h100,
            gpus=gpus,
            preemptible=preemptible,
        )

    return call


def quota(team) -> Quota:
    return Quota.objects.get(organization=team.organization)


def test_reserve_within_the_limit_counts_the_gpus(team, set_limit, reserve):
    set_limit(8)
    reserve(1)
    reserve(7)
    assert quota(team).on_demand_used == 8
    assert quota(team).preemptible_used == 0


def test_over_the_limit_is_refused_with_limit_use_and_free(team, set_limit, reserve):
    set_limit(8)
    reserve(6)
    with pytest.raises(QuotaExceeded) as refused:
        reserve(8)
    error = refused.value
    assert isinstance(error, ApplicationError) and error.code == "quota_exceeded"
    assert (error.limit, error.used, error.free, error.requested) == (8, 6, 2, 8)
    assert error.message == (
        "This needs 8 on-demand NVIDIA H100 80GB SXM GPUs in us-east-1, but your on-demand "
        "limit there is 8 GPUs with 6 in use, so 2 are free. "
        "Ask for a higher limit on the Quotas page."
    )
    assert error.request_url == (
        "/o/acme/quotas/requests/new/?region=us-east-1&gpu=h100&kind=on_demand&limit=14"
    )
    assert quota(team).on_demand_used == 6


def test_without_a_quota_row_the_limit_is_zero(team, reserve):
    with pytest.raises(QuotaExceeded, match="limit there is 0 GPUs with 0 in use, so 0 are free"):
        reserve(1)
    assert not Quota.objects.exists()


def test_preemptible_gpus_have_their_own_limit(team, set_limit, reserve):
    set_limit(8)
    set_limit(2, kind=Kind.PREEMPTIBLE)
    reserve(2, preemptible=True)
    with pytest.raises(QuotaExceeded, match="preemptible limit there is 2 GPUs"):
        reserve(1, preemptible=True)
    reserve(8)
    assert (quota(team).on_demand_used, quota(team).preemptible_used) == (8, 2)


@pytest.mark.parametrize("gpus", [0, -1, True])
def test_a_launch_takes_at_least_one_gpu(team, set_limit, reserve, gpus):
    set_limit(8)
    with pytest.raises(ApplicationError, match="at least one GPU"):
        reserve(gpus)


def test_release_gives_gpus_back(team, set_limit, reserve, release):
    set_limit(8)
    reserve(8)
    release(3)
    assert quota(team).on_demand_used == 5
    reserve(3)


def test_release_never_goes_below_zero(team, set_limit, reserve, release):
    set_limit(8)
    set_limit(8, kind=Kind.PREEMPTIBLE)
    reserve(2)
    reserve(1, preemptible=True)
    release(5)
    release(1, preemptible=True)
    release(1, preemptible=True)
    assert (quota(team).on_demand_used, quota(team).preemptible_used) == (0, 0)


def test_release_without_a_quota_row_does_nothing(team, release):
    release(4)
    assert not Quota.objects.exists()


def test_lowering_a_limit_below_use_leaves_nothing_free(team, set_limit, reserve):
    set_limit(8)
    reserve(6)
    set_limit(4)
    with pytest.raises(QuotaExceeded, match="limit there is 4 GPUs with 6 in use, so 0 are free"):
        reserve(1)
