import pytest

from tests.instances.conftest import catalog, make_instance, quota, ssh_key  # noqa: F401


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Nothing reaches Celery: instance tasks and webhook deliveries are recorded, not sent."""
    sent = []
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(
            f"portal.instances.tasks.instance_{name}.delay",
            lambda pk, name=name: sent.append((name, pk)),
        )
    monkeypatch.setattr(
        "portal.webhooks.tasks.webhook_deliver.delay", lambda pk: sent.append(("webhook", pk))
    )
    return sent
