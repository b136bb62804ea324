import pytest

from portal.webhooks.models import EventType
from portal.webhooks.services import webhook_endpoint_create
from tests.instances.conftest import catalog, make_instance, quota  # noqa: F401


@pytest.fixture
def local_receivers(settings):
    """The tests' receivers listen on 127.0.0.1: the explicit allow-list lets it (and plain
    http to it) through, as nothing in any settings module does."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return settings


@pytest.fixture
def endpoint_for(team, local_receivers):
    """`endpoint_for(url, events=[...])`: an endpoint of team's organization and its secret."""

    def make(url: str, events=None, membership=None):
        return webhook_endpoint_create(
            membership=membership or team.owner,
            url=url,
            event_types=events or list(EventType.values),
        )

    return make


@pytest.fixture
def no_delay(settings):
    """Retries without waiting, so that a task's retries run at once."""
    settings.WEBHOOK_RETRY_BASE = 0
    settings.WEBHOOK_TIMEOUT = (2.0, 5.0)
    return settings
