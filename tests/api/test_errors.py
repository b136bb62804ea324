"""Bad input of every kind: the one error shape, a clear code, nothing changed, never a 500."""

import pytest
from django.test import Client, override_settings

from portal.instances.models import Instance
from portal.sshkeys.models import SshKey
from tests.api.conftest import Api, assert_error

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400_invalid_json(api, catalog):
    for raw in ['{"name": ', "not json", "{'single': 'quotes'}", "\x00", '{"a": NaN'[:-1]]:
        error = assert_error(api.post("/ssh-keys/", raw=raw), 400, "invalid_json")
        assert "JSON" in error["message"]
    assert not SshKey.objects.exists()


@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"a string"', "42", "null", "true"])
def test_a_body_that_is_not_an_object_is_400(api, catalog, body):
    assert_error(api.post("/instances/", raw=body), 400, "validation_error")
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 12, "public_key": "ssh-ed25519 AAAA"}, "name"),
        ({"name": ["a"], "public_key": "ssh-ed25519 AAAA"}, "name"),
        ({"name": "a", "public_key": {"k": 1}}, "public_key"),
        ({"name": "a", "public_key": "ssh-ed25519 AAAA", "shared": "yes"}, "shared"),
        ({"name": "a", "public_key": "ssh-ed25519 AAAA", "shared": 1}, "shared"),
        ({"name": None, "public_key": "ssh-ed25519 AAAA"}, "name"),
    ],
)
def test_wrong_json_types_are_400_with_the_field(api, body, field):
    error = assert_error(api.post("/ssh-keys/", body), 400, "validation_error")

    assert field in error["details"]
    assert error["message"].startswith(f"{field}: ")
    assert not SshKey.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ssh_key_ids": "1"}, "ssh_key_ids"),
        ({"ssh_key_ids": [True]}, "ssh_key_ids.0"),
        ({"ssh_key_ids": ["1"]}, "ssh_key_ids.0"),
        ({"ssh_key_ids": [1.5]}, "ssh_key_ids.0"),
        ({"ssh_key_ids": [2**70]}, "ssh_key_ids.0"),
        ({"ssh_key_ids": []}, "ssh_key_ids"),
        ({"preemptible": "false"}, "preemptible"),
        ({"name": "x" * 64}, "name"),
    ],
)
def test_wrong_types_in_a_launch_name_the_field(api, catalog, ssh_key, body, field):
    launch = {
        "name": "train-1",
        "instance_type": catalog.h100_1x.code,
        "region": catalog.us_east.code,
        "image": catalog.ubuntu.code,
        "ssh_key_ids": [ssh_key.pk],
        **body,
    }

    error = assert_error(api.post("/instances/", launch), 400, "validation_error")

    assert field in error["details"], error
    assert not Instance.objects.exists()


def test_unknown_fields_are_400_unknown_field(api):
    body = {"name": "a", "public_key": "ssh-ed25519 AAAA", "sharde": True, "extra": 1}

    error = assert_error(api.post("/ssh-keys/", body), 400, "unknown_field")

    assert set(error["details"]) == {"extra", "sharde"}
    assert "Known fields: name, public_key, shared." in error["details"]["sharde"][0]
    assert not SshKey.objects.exists()


def test_an_action_refuses_a_body_with_fields(api, make_instance):
    instance = make_instance("running")

    assert_error(api.post(f"/instances/{instance.pk}/stop/", {"force": True}), 400, "unknown_field")
    instance.refresh_from_db()
    assert instance.state == "running"


def test_a_huge_body_is_413_without_being_read(api):
    body = {"name": "a", "public_key": "x" * 70_000}

    error = assert_error(api.post("/ssh-keys/", body), 413, "body_too_large")

    assert error["details"]["max_bytes"] == 64 * 1024
    assert not SshKey.objects.exists()


def test_a_huge_body_is_413_even_without_a_token(db):
    response = Client().post("/api/v1/instances/", "x" * 100_000, content_type="application/json")

    assert_error(response, 413, "body_too_large")


def test_form_data_is_415(api):
    response = api.client.post(
        "/api/v1/ssh-keys/",
        {"name": "a", "public_key": "b"},
        headers={"Authorization": f"Bearer {api.token}"},
    )

    assert_error(response, 415, "unsupported_media_type")


def test_an_unknown_url_under_the_api_is_404_in_the_shape(api):
    assert_error(api.get("/no-such-thing/"), 404, "not_found")
    assert_error(Client().get("/api/v2/instances/"), 404, "not_found")


def test_a_method_not_allowed_is_405_with_allow(api, make_instance):
    instance = make_instance("running")

    response = api.put(f"/instances/{instance.pk}/")

    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    assert_error(api.get(f"/instances/{instance.pk}/stop/"), 405, "method_not_allowed")


@pytest.mark.parametrize("pk", ["0", "999999", str(2**63), str(2**80)])
def test_ids_that_do_not_exist_are_404_whatever_their_size(api, pk):
    for path in (f"/instances/{pk}/", f"/ssh-keys/{pk}/", f"/quota-requests/{pk}/"):
        assert_error(api.get(path), 404, "not_found")
    assert_error(api.post(f"/instances/{pk}/stop/"), 404, "not_found")


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page_size": "0"},
        {"page_size": "101"},
        {"page": "٣"},  # an Arabic-Indic digit: isdigit() but not ASCII
    ],
)
def test_bad_pagination_parameters_are_400(api, params):
    error = assert_error(api.get("/instances/", params), 400, "invalid_parameter")
    assert set(error["details"]) <= {"page", "page_size"}


@pytest.mark.parametrize(
    "params",
    [{"state": "sleeping"}, {"state": "RUNNING"}, {"region": "x" * 33}, {"region": "a\x00b"}],
)
def test_bad_filters_are_400(api, params):
    assert_error(api.get("/instances/", params), 400, "validation_error")


@override_settings(API_RATE="3/minute")
def test_the_rate_limit_is_per_token_with_retry_after(team, api_as):
    first, second = api_as(team.member), api_as(team.member)
    for _ in range(3):
        assert first.get("/token/").status_code == 200

    response = first.get("/token/")

    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"]["retry_after"] == retry_after
    assert second.get("/token/").status_code == 200  # another token has its own budget


@override_settings(API_WRITE_RATE="1/minute")
def test_writes_have_a_stricter_limit_than_reads(team, api, make_instance):
    instance = make_instance("running")
    assert api.post(f"/instances/{instance.pk}/reboot/").status_code == 202

    assert_error(api.post(f"/instances/{instance.pk}/stop/"), 429, "rate_limited")
    assert api.get(f"/instances/{instance.pk}/").status_code == 200


def test_an_unexpected_crash_is_a_500_in_the_shape(api, monkeypatch):
    """Not bad input (that is never a 500), but if the server fails, the shape holds."""

    def boom(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("portal.api.v1.sshkeys.selectors.sshkey_list_for_member", boom)
    api.client.raise_request_exception = False

    error = assert_error(api.get("/ssh-keys/"), 500, "server_error")

    assert "bug" not in error["message"]


def test_the_docs_and_schema_need_no_token(db):
    assert Client().get("/api/v1/schema/").status_code == 200
    assert Client().get("/api/v1/docs/").status_code == 200


def test_errors_outside_the_api_keep_their_html(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_token_never_needs_csrf(team, token_for):
    client = Client(enforce_csrf_checks=True)
    api = Api(client, token_for(team.owner))

    response = api.post("/ssh-keys/", {"name": "a", "public_key": "nonsense"})

    assert_error(response, 400)  # the key is refused by the service, not CSRF's 403


def test_a_path_without_its_trailing_slash_is_answered_not_redirected(team, api, settings):
    settings.DEBUG = True  # where APPEND_SLASH would refuse a POST with a 500

    response = api.client.post(
        "/api/v1/ssh-keys",
        '{"name": "a"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.token}"},
    )

    error = assert_error(response, 400, "validation_error")
    assert "public_key" in error["details"]
    assert (
        api.client.get(
            "/api/v1/token", headers={"Authorization": f"Bearer {api.token}"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("length", ["\xb2", "١٢", "-1", "1e3", " 12"])
def test_a_content_length_that_is_not_a_plain_number_is_400_before_authentication(db, length):
    """ "²".isdigit() is true but int("²") is an error: the header is checked as ASCII digits."""
    response = Client().post(
        "/api/v1/instances/", "{}", content_type="application/json", CONTENT_LENGTH=length
    )

    error = assert_error(response, 400, "bad_request")
    assert "Content-Length" in error["message"]


@pytest.mark.parametrize("body", ["[" * 50_000, '{"a":' * 12_000, "[" * 5_000 + "]" * 5_000])
def test_deeply_nested_json_is_400_invalid_json(api, catalog, body):
    error = assert_error(api.post("/ssh-keys/", raw=body), 400, "invalid_json")

    assert "nested" in error["message"]
    assert not SshKey.objects.exists()


def test_an_accept_header_other_than_json_is_a_406_in_the_error_shape(api):
    for path in ["/instances/", "/webhooks/"]:
        assert_error(api.get(path, headers={"Accept": "text/csv"}), 406, "not_acceptable")
