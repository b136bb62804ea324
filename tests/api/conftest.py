"""Fixtures for API tests: tokens, a JSON client, the instances catalog, and no broker."""

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from portal.api.models import Scope
from portal.api.scopes import role_can_write
from portal.api.services import api_token_create
from tests.instances.conftest import catalog, launch, make_instance, quota, ssh_key  # noqa: F401
from tests.operations.conftest import fleet, staff  # noqa: F401

BASE = "/api/v1"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Nothing reaches Celery: enqueued instance tasks and webhook deliveries are recorded."""
    sent = []
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(
            f"portal.instances.tasks.instance_{name}.delay",
            lambda pk, name=name: sent.append((name, pk)),
        )
    monkeypatch.setattr(
        "portal.webhooks.tasks.webhook_deliver.delay", lambda pk: sent.append(("webhook", pk))
    )
    for name in ("create", "resize", "delete"):
        monkeypatch.setattr(
            f"portal.volumes.tasks.volume_{name}.delay",
            lambda pk, name=name: sent.append((f"volume_{name}", pk)),
        )
    return sent


@dataclass
class Api:
    """A test client that sends one token: `api.get("/instances/")`, `api.post(path, {...})`."""

    client: Client
    token: str | None

    def _headers(self, headers: dict | None) -> dict:
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**sent, **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(BASE + path, params or {}, headers=self._headers(headers))

    def post(self, path: str, data=None, headers: dict | None = None, raw: str | None = None):
        body = raw if raw is not None else ("" if data is None else json.dumps(data))
        return self.client.post(
            BASE + path, body, content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str, headers: dict | None = None):
        return self.client.delete(BASE + path, headers=self._headers(headers))

    def put(self, path: str, data=None, headers: dict | None = None):
        return self.client.put(
            BASE + path,
            json.dumps(data or {}),
            content_type="application/json",
            headers=self._headers(headers),
        )

    def patch(self, path: str, data=None, headers: dict | None = None):
        return self.client.patch(
            BASE + path,
            json.dumps(data or {}),
            content_type="application/json",
            headers=self._headers(headers),
        )


@pytest.fixture
def token_for(db):
    """`token_for(team.member, scope="read")`: a new token's value for that membership."""

    def make(membership, scope: str | None = None, **kwargs) -> str:
        if scope is None and "scopes" not in kwargs:
            # Read and write where the role writes anything; read only otherwise.
            scope = Scope.READ_WRITE if role_can_write(membership) else Scope.READ
        _token, value = api_token_create(
            membership=membership, name=kwargs.pop("name", "test"), scope=scope, **kwargs
        )
        return value

    return make


@pytest.fixture
def api_as(token_for):
    """`api_as(team.member)`, `api_as(team.viewer, scope="read")`: an Api with a fresh token."""

    def make(membership, scope: str | None = None, **kwargs) -> Api:
        return Api(Client(), token_for(membership, scope=scope, **kwargs))

    return make


@pytest.fixture
def api(api_as, team) -> Api:
    """The member's read and write token."""
    return api_as(team.member)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the one error shape, with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
