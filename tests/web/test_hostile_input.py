"""Every URL of the URLconf, with hostile query strings and bodies, answers without a 5xx.

The URLs are read from the URLconf itself (pages, htmx regions and the API), so a new view is
walked as soon as it exists. A signed-in owner (the widest role) sends, to each URL: GETs whose
query string sets every known parameter to a hostile value (huge and non-ASCII numbers, far
dates, NUL bytes, a 1 MB string), as htmx too; form POSTs with the same values in every field of
every form class of the portal; and, under /api/, JSON bodies of those values, deeply nested
JSON and a broken Content-Length. Route ids are our own objects where the route names one, and
a huge id otherwise. Refusals (4xx) and redirects are fine; a server error is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django import forms
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from portal.api.models import Scope
from portal.api.services import api_token_create
from portal.instances.models import State
from portal.orgs.services import invitation_create
from portal.quotas.services import quota_request_submit
from portal.webhooks import secrets as webhook_secrets
from portal.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

HUGE = "9" * 30
MEGABYTE = "x" * 1_000_000
HOSTILE = {
    "huge": HUGE,
    "negative huge": "-" + HUGE,
    "float overflow": "1e999",
    "not a number": "NaN",
    "far date": "9999-12-31",
    "year zero": "0000-00-00",
    "far datetime": "9999-12-31T23:59:59+14:00",
    "superscript": "\u00b2",
    "arabic digits": "\u0661\u0662\u0663",
    "nul": "a\x00b",
    "month": "9999-13",
    "megabyte": MEGABYTE,
}
# Query parameters the views and the API read, and ones they might.
PARAMS = [
    "page", "page_size", "limit", "offset", "cursor", "from", "since", "until", "start", "end",
    "month", "m", "year", "region", "gpu", "gpu_model", "kind", "state", "status", "action",
    "actor", "organization", "email", "inline", "q", "instance_type", "event", "next", "days",
    "ordering", "before", "after", "at", "type", "name", "delivery", "scope",
]  # fmt: skip
# Real objects for the routes that name one, by a word of the route.
ROUTE_OBJECTS = [
    ("invitation", "invitation"),
    ("member", "membership"),
    ("quota", "quota_request"),
    ("key", "ssh_key"),
    ("token", "token"),
    ("webhook", "endpoint"),
    ("instance", "instance"),
]


def _walk(patterns, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _form_fields() -> list[str]:
    """The field names of every form class of the portal (and allauth's), loaded by the URLconf."""
    names: set[str] = set()
    stack = list(forms.BaseForm.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        names.update(getattr(cls, "base_fields", {}))
    return sorted(names)


def _path(route: str, objects: dict[str, int]) -> str:
    """A route with its converters filled: our objects where the route names one, else huge."""
    if route.startswith("^"):  # the admin's regex routes and static files: a plain prefix
        route = route.lstrip("^").split("(")[0].rstrip("$")
    pk = next((objects[kind] for word, kind in ROUTE_OBJECTS if word in route), int(HUGE[:18]))

    def fill(match: re.Match) -> str:
        converter, _, name = match.group(1).rpartition(":")
        if converter == "int" or name in ("pk", "id"):
            return str(pk)
        if name == "org" or converter == "slug":
            return "acme"
        if converter == "uuid":
            return "00000000-0000-0000-0000-000000000000"
        return "a\u00b2"

    return "/" + re.sub(r"<([^>]+)>", fill, route)


@pytest.fixture
def world(team, catalog, make_instance, ssh_key, quota):
    owner = team.owner
    instance = make_instance(State.RUNNING, name="walked")
    quota_request = quota_request_submit(
        membership=owner,
        region="us-east-1",
        gpu_model="h100",
        kind="on_demand",
        requested_limit=64,
        justification="A walk.",
    )
    invitation = invitation_create(actor=owner, email="walk@example.com", role="member")[0]
    token, value = api_token_create(membership=owner, name="walker", scope=Scope.READ_WRITE)
    endpoint = WebhookEndpoint.objects.create(
        organization=team.organization,
        url="https://hooks.example.com/in",
        secret_encrypted=webhook_secrets.encrypt("s" * 32),
        secret_hint="ssss",
    )
    return {
        "token value": value,
        "instance": instance.pk,
        "ssh_key": ssh_key.pk,
        "quota_request": quota_request.pk,
        "invitation": invitation.pk,
        "membership": team.member.pk,
        "token": token.pk,
        "endpoint": endpoint.pk,
    }


def _rotated(names: list[str], turn: int) -> dict[str, str]:
    """Each name a hostile value, a different one on each turn (the megabyte on the first)."""
    values = [value for label, value in HOSTILE.items() if label != "megabyte"]
    chosen = {name: values[(turn + i) % len(values)] for i, name in enumerate(names)}
    if turn == 0:
        chosen[names[0]] = MEGABYTE
    return chosen


def _requests(path: str, fields: list[str]):
    """(label, method, path, data, content_type, extra) for one URL."""
    for turn in range(2):
        yield f"query {turn}", "get", path, _rotated(PARAMS, turn), None, {}
    yield "htmx", "get", path, _rotated(PARAMS, 5), None, {"HTTP_HX_REQUEST": "true"}
    yield "form", "post", path, _rotated(fields, 0), None, {}
    if path.startswith("/api/"):
        keys = ["name", "public_key", "url", "events", "region", "instance_type", "scope"]
        for turn, method in enumerate(("post", "put", "patch")):
            body = json.dumps(_rotated(keys, turn + 1))
            yield f"json {turn}", method, path, body, "application/json", {}
        nested = json.dumps({"name": json.loads("[" * 900 + "]" * 900)})
        yield "nested JSON", "post", path, nested, "application/json", {}
        yield "too deep", "post", path, "[" * 50_000, "application/json", {}
        yield "length", "post", path, "{}", "application/json", {"CONTENT_LENGTH": "\u00b2"}


def test_no_url_answers_hostile_input_with_a_server_error(team, world, client):
    client = Client(raise_request_exception=False)
    client.force_login(team.owner.user)
    api = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {world['token value']}")
    routes = sorted(set(_walk(get_resolver().url_patterns)))
    assert len(routes) > 150  # the walk found the URLconf
    fields = _form_fields()
    assert {"name", "email", "public_key"} <= set(fields)
    errors = []
    for route in routes:
        path = _path(route, world)
        if path.startswith(("/static/", "/media/", "/accounts/logout")):
            continue
        sender = api if path.startswith("/api/") else client
        for label, method, url, data, content_type, extra in _requests(path, fields):
            kwargs = {"content_type": content_type} if content_type else {}
            response = getattr(sender, method)(url, data, **kwargs, **extra)
            if path == "/readyz" and response.status_code == 503:
                continue  # the readiness probe's answer: no worker has a heartbeat in tests
            if response.status_code >= 500:
                errors.append(f"{method.upper()} {route} ({label}): {response.status_code}")
    assert not errors, "\n".join(errors)
