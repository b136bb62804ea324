"""Structured logs: JSON in production, readable lines in development, the request's context on
every line (and in the tasks it enqueues), and never a secret."""

import io
import json
import logging

import pytest
import structlog

from portal.lib import logs
from portal.runtime import celery_hooks
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

API_TOKEN = "bf_0123abcd_" + "A1b2C3d4" * 5 + "xyz"


@pytest.fixture
def captured():
    """Every line logged during the test, rendered as production renders them (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    yield lines
    root.removeHandler(handler)
    structlog.contextvars.clear_contextvars()


def test_a_json_line_has_the_event_its_level_its_logger_and_the_time(captured):
    logging.getLogger("portal.test").warning("disk %s is %d%% full", "/var", 91)

    (line,) = captured()
    assert line["event"] == "disk /var is 91% full"
    assert line["level"] == "warning" and line["logger"] == "portal.test"
    assert line["timestamp"].endswith("Z")


def test_development_lines_are_readable():
    record = logging.LogRecord("portal.test", logging.INFO, __file__, 1, "hello %s", ("you",), None)

    text = logs.formatter("console").format(record)

    assert "hello you" in text and "[info" in text and "{" not in text


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"Authorization: Bearer {API_TOKEN}", API_TOKEN),
        (f"token {API_TOKEN} was used", API_TOKEN),
        ("connecting to postgres://backfill:s3cr3t-pw@db:5432/backfill", "s3cr3t-pw"),
        ("redis://:r3d1s-pw@cache:6379/0 is down", "r3d1s-pw"),
        ("login with password=hunter2hunter2 failed", "hunter2hunter2"),
        ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ],
)
def test_secrets_are_masked_wherever_they_appear(captured, text, secret):
    logging.getLogger("portal.test").info(text)
    logging.getLogger("portal.test").info("failed", extra={})

    assert secret not in json.dumps(captured())


def test_the_values_of_secret_settings_are_masked(captured, monkeypatch):
    monkeypatch.setenv("PROVISIONING_TOKEN", "backend-shared-secret-123")
    logs.remember_secrets(logs.secret_values())

    logging.getLogger("portal.test").error("backend said no to backend-shared-secret-123")
    try:
        raise ValueError("token backend-shared-secret-123 refused")
    except ValueError:
        logging.getLogger("portal.test").exception("call failed")

    rendered = json.dumps(captured())
    assert "backend-shared-secret-123" not in rendered
    assert "ValueError" in rendered  # the traceback is there, masked


def test_fields_named_like_secrets_are_never_written(captured):
    structlog.get_logger("portal.test").info("signed in", password="pw-1", api_key="k-1", user=3)

    (line,) = captured()
    assert line["password"] == "[redacted]" and line["api_key"] == "[redacted]"
    assert line["user"] == 3


def test_every_line_of_a_request_carries_its_id_organization_and_user(client, captured):
    membership = MembershipFactory()
    client.force_login(membership.user)
    slug = membership.organization.slug

    response = client.get(f"/o/{slug}/instances/999999/")  # not found: Django says so

    assert response.status_code == 404
    request_id = response["X-Request-ID"]
    lines = [line for line in captured() if line.get("request_id") == request_id]
    assert lines, captured()
    assert all(line["org"] == slug and line["user_id"] == membership.user.pk for line in lines)


def test_the_request_context_travels_with_the_tasks_it_enqueues():
    structlog.contextvars.bind_contextvars(request_id="req-123456789", org="acme", user_id=7)
    headers: dict = {}

    celery_hooks.add_log_context(headers=headers)
    structlog.contextvars.clear_contextvars()

    assert headers[celery_hooks.CONTEXT_HEADER] == {
        "request_id": "req-123456789",
        "org": "acme",
        "user_id": 7,
    }

    class Request:
        is_eager = False
        delivery_info = {"routing_key": "backfill"}
        eta = None

    Request.backfill_context = headers[celery_hooks.CONTEXT_HEADER]
    Request.backfill_sent_at = headers[celery_hooks.SENT_AT_HEADER]

    class Task:
        name = "portal.instances.tasks.instance_provision"
        request = Request()

    celery_hooks.bind_log_context(task_id="task-1", task=Task())
    try:
        assert structlog.contextvars.get_contextvars() == {
            "request_id": "req-123456789",
            "org": "acme",
            "user_id": 7,
            "task": "portal.instances.tasks.instance_provision",
            "task_id": "task-1",
        }
    finally:
        celery_hooks.measure_task(task_id="task-1", task=Task(), state="SUCCESS")
        structlog.contextvars.clear_contextvars()
