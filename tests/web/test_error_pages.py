"""The branded error pages: what happened and where to go, in the console's layout."""

import pytest
from django.db import OperationalError
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def _boom(request):
    raise RuntimeError("the database fell over")


def _database_down(request):
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')


urlpatterns = [
    *portal_urlpatterns,
    path("boom/", _boom),
    path("database-down/", _database_down),
    path("api/v1/database-down/", _database_down),
]
handler500 = "portal.web.views.server_error"


@pytest.mark.django_db
def test_404_for_a_stranger_offers_sign_in(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body
    assert "<code>/no/such/page/</code>" in body
    assert "Sign in" in body and 'class="sidebar"' not in body


def test_404_in_the_console_for_someone_signed_in(team, client_for):
    client = client_for(team.member.user)
    response = client.get("/o/acme/instances/999999/")
    assert response.status_code == 404
    body = response.content.decode()
    assert 'class="sidebar"' in body  # the console's layout, with its navigation
    assert "Go to Acme AI's dashboard" in body


def test_404_for_another_organization(team, outsider, client_for):
    response = client_for(outsider.user).get("/o/acme/instances/")
    assert response.status_code == 404
    assert "This page does not exist" in response.content.decode()


def test_403_names_the_role(team, client_for):
    response = client_for(team.viewer.user).get("/o/acme/sso/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "You are not allowed to do this" in body
    assert "Your role in Acme AI is <strong>Viewer</strong>" in body
    assert 'class="sidebar"' in body


@pytest.mark.urls("tests.web.test_error_pages")
def test_500_is_branded_and_needs_no_database(client, settings):
    settings.SUPPORT_EMAIL = "support@backfill.example"
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert "mailto:support@backfill.example" in body
    assert "the database fell over" not in body


@pytest.mark.urls("tests.web.test_error_pages")
@pytest.mark.parametrize("debug", [False, True])
def test_a_database_outage_is_a_branded_503_without_a_traceback(client, settings, debug):
    settings.DEBUG = debug
    client.raise_request_exception = False
    response = client.get("/database-down/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.content.decode()
    assert "Backfill is back in a moment" in body
    assert "cannot reach its database" in body
    assert "Traceback" not in body and "5432" not in body


@pytest.mark.urls("tests.web.test_error_pages")
def test_a_database_outage_under_the_api_has_the_error_shape(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/database-down/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json()["error"]["code"] == "unavailable"


@pytest.mark.urls("tests.web.test_error_pages")
def test_handler500_answers_503_for_a_database_outage_outside_a_view(rf):
    from portal.web.views import server_error

    request = rf.get("/")
    try:
        raise OperationalError("the server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    assert "Backfill is back in a moment" in response.content.decode()
