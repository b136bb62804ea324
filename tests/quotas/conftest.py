import pytest

from portal.quotas import services
from portal.quotas.models import Kind
from tests.catalog import fixtures
from tests.factories import UserFactory

gpu_catalog = fixtures.gpu_catalog  # shared with tests/catalog

JUSTIFICATION = "Fine-tuning a 70B model for three weeks; 16 GPUs keep it under a month."


@pytest.fixture
def staff(db):
    return UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)


@pytest.fixture
def submit(team, gpu_catalog):
    """Submit a request with sensible defaults: `submit(requested_limit=16, by=team.admin)`."""

    def make(
        *,
        by=None,
        region=None,
        gpu_model=None,
        kind=Kind.ON_DEMAND,
        requested_limit=16,
        justification=JUSTIFICATION,
    ):
        return services.quota_request_submit(
            membership=by or team.owner,
            region=region or gpu_catalog.us_east,
            gpu_model=gpu_model or gpu_catalog.h100,
            kind=kind,
            requested_limit=requested_limit,
            justification=justification,
        )

    return make


@pytest.fixture
def set_limit(team, gpu_catalog, staff):
    """Set a limit of the team's organization (default: on-demand H100 in us-east-1)."""

    def make(limit, *, kind=Kind.ON_DEMAND, region=None, gpu_model=None, organization=None):
        return services.quota_limit_set(
            organization=organization or team.organization,
            region=region or gpu_catalog.us_east,
            gpu_model=gpu_model or gpu_catalog.h100,
            kind=kind,
            limit=limit,
            reason="Set up by the test.",
            changed_by=staff,
        )

    return make


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what services defer to after commit (e-mails): `with committed(): ...`."""

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    return run
