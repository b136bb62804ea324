"""The SSO tests' identity provider: tests/oidc_provider as a real separate process."""

import pytest

from tests.oidc_provider.process import IdentityProviderProcess
from tests.operations.conftest import staff  # noqa: F401


def callback_uris(base_url: str, slug: str = "acme") -> list[str]:
    """The portal's callback as a browser on localhost or 127.0.0.1 would send it."""
    path = f"/accounts/oidc/org-{slug}/login/callback/"
    port = base_url.rsplit(":", 1)[1]
    return [f"http://{host}:{port}{path}" for host in ("localhost", "127.0.0.1")]


@pytest.fixture(scope="session")
def idp(live_server, tmp_path_factory):
    """The identity provider, registered with the live server's callback (for "acme")."""
    with IdentityProviderProcess(
        tmp_path_factory.mktemp("idp"), redirect_uris=callback_uris(live_server.url)
    ) as process:
        yield process


@pytest.fixture
def insecure_issuers(settings):
    """The test provider speaks plain http on 127.0.0.1; only tests let that through."""
    settings.SSO_ALLOW_INSECURE_ISSUERS = True
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # and the discovery fetch may reach it
    return settings
