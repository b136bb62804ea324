"""The OpenAPI document: valid OpenAPI 3, every endpoint in it, each with its errors; the docs
page runs under our Content-Security-Policy (scripts from our own static files only)."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

NOT_DESCRIBED = {"schema", "docs"}  # the document and the docs page themselves


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _api_routes():
    """(OpenAPI path, methods) of every view under /api/v1/, read from the URLconf."""
    resolver = get_resolver()
    api = resolver.namespace_dict["api"][1].namespace_dict["api_v1"][1]
    for pattern in api.url_patterns:
        assert isinstance(pattern, URLPattern)
        if pattern.name in NOT_DESCRIBED:
            continue
        path = "/api/v1/" + re.sub(r"<int:(\w+)>", "{id}", str(pattern.pattern))
        view = pattern.callback.cls
        methods = {m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        yield path, methods


def test_the_document_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # drf-spectacular's check against the OpenAPI 3 JSON Schema


def test_every_endpoint_and_method_is_described(schema):
    routes = dict(_api_routes())
    assert len(routes) >= 20

    described = {
        path: set(ops) & {"get", "post", "put", "patch", "delete"}
        for path, ops in schema["paths"].items()
    }
    assert described == routes


def test_every_operation_has_bearer_auth_an_id_and_the_error_shape(schema):
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    operation_ids = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation["security"] == [{"bearerAuth": []}], where
            assert operation.get("summary"), where
            operation_ids.add(operation["operationId"])
            responses = operation["responses"]
            for status in ("400", "401", "403", "406", "429"):
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == error_ref, where
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
            if "{id}" in path:
                assert "404" in responses, where
            if method in ("post", "delete"):
                assert {"413", "415"} <= set(responses), where
            assert any(code.startswith("2") for code in responses), where
    assert len(operation_ids) == sum(len(ops) for ops in schema["paths"].values())


def test_the_bearer_scheme_is_declared(schema):
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


def test_request_bodies_are_closed(schema):
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            assert component["additionalProperties"] is False, name


def test_the_launch_documents_idempotency_key_and_409(schema):
    launch = schema["paths"]["/api/v1/instances/"]["post"]
    header = next(p for p in launch["parameters"] if p["in"] == "header")

    assert header["name"] == "Idempotency-Key"
    assert "409" in launch["responses"] and "201" in launch["responses"]


def test_the_served_document_is_the_same_json(db):
    response = Client().get("/api/v1/schema/", headers={"Accept": "application/json"})

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Backfill API"


def test_the_docs_page_loads_its_scripts_from_our_static_files(db):
    client = Client()
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "script-src 'self'" in response["Content-Security-Policy"]
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in s for s in sources)
    assert re.search(r"<script>\s*\S", page) is None  # no inline script for the CSP to block
    init = next(s for s in sources if "script=" in s)
    script = client.get(init.replace("&amp;", "&"))
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_every_create_takes_an_idempotency_key(schema):
    creates = [
        (path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method == "post" and "201" in operation["responses"]
    ]
    assert len(creates) >= 6
    for path, operation in creates:
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in headers, path
